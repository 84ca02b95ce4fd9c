"""The engine: what a configuration builds for detection, swapped whole on reload.

Rules of this file:
* It only builds: signatures (loaded and selected), the detection pipeline
  (parser, scanner, matcher) and the resolved allow-list. Running them is the
  daemon's; blocking is the decisions'.
* Building may fail (a broken rule file, a name that does not resolve): it
  then raises and the caller keeps the engine it has. A reload builds the
  new engine from the previous one, so that sessions in flight and the
  pipeline's counters survive it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .attempts import Accountant
from .blocker import BlockerConfig
from .config import Config, ConfigError, own_addresses, resolve_allow
from .correlation import Correlator
from .matcher import Matcher
from .pipeline import Pipeline
from .preflight import check
from .record import FACILITIES, RecordParser
from .scanner import Scanner
from .signatures import Signature, select


@dataclass(slots=True)
class Engine:
    """Everything a configuration builds, swapped as a whole on reload."""

    config: Config
    signatures: list[Signature]
    pipeline: Pipeline
    allow: list[str]

    @classmethod
    def build(cls, config: Config, previous: Engine | None = None) -> Engine:
        """Raises ConfigError with every problem `syslogban config check` would
        list (preflight.py): a start and a reload refuse the same things."""
        loaded, found = check(config)
        if found or loaded is None:
            raise ConfigError("\n".join(map(str, found)))
        signatures = select(loaded, config.enable, config.disable)
        matcher = Matcher(signatures, Correlator(config.sessions, config.session_ttl))
        accountant = Accountant(config.sessions, config.session_ttl)
        if previous is not None:  # sessions and attempts in flight survive a reload
            matcher.correlator = previous.pipeline.matcher.correlator
            accountant = previous.pipeline.accountant
        parser = RecordParser(config.max_record_size, timestamps=False)  # its own clock decides
        scanner = Scanner(matcher.prefilters(), config.max_record_size)
        facilities = frozenset(FACILITIES.index(f) for f in config.facilities)
        pipeline = Pipeline(parser, matcher, scanner, facilities=facilities,
                            ignored_programs=frozenset({"syslogban"}), accountant=accountant)
        if previous is not None:
            pipeline.counters = previous.pipeline.counters
        own = own_addresses() if config.allow_own_addresses else []
        allow = [str(n) for n in resolve_allow(config.allow, own)]
        return cls(config, signatures, pipeline, allow)

    def blocker_config(self) -> BlockerConfig:
        """The blocker's policy, with this engine's allow-list."""
        return self.config.blocker([ipaddress.ip_network(a) for a in self.allow])
