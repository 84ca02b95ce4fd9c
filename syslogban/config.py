"""Configuration: one TOML file, every key also a command-line flag.

Rules of this file:
* OPTIONS is the one table of keys: name, type, default, help. The file
  reader, the flags of `syslogban run`, the effective configuration shown by
  `status` and contrib/syslogban.toml all follow it.
* Defaults work with no file at all. Precedence: defaults < file < flags.
* A bad value is reported with the key (and file) and why; it never half-applies.
* It resolves nothing over the network itself: names in `allow` are resolved
  by the daemon at start and on reload, through `resolve_allow`.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import math
import platform
import re
import socket
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .blocker import LOOPBACK, Aggregation, BlockerConfig, Network, Policy
from .correlation import DEFAULT_SIZE, DEFAULT_TTL
from .crowdsec.settings import CrowdSecSettings
from .durations import PERMANENT, format_duration, parse_duration
from .errors import SyslogbanError
from .fleet.settings import FleetSettings
from .record import DEFAULT_MAX_SIZE, FACILITIES

log = logging.getLogger("syslogban.config")


class ConfigError(SyslogbanError):
    """A configuration that cannot be used, with the key and the reason."""


def _int(minimum: int, maximum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            raise ValueError(f"must be a whole number from {minimum} to {maximum}")
        return value
    return parse


def _float(minimum: float, maximum: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not minimum <= number <= maximum:  # also false for nan
            raise ValueError(f"must be a number from {minimum:g} to {maximum:g}")
        return number
    return parse


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("yes", "true", "on", "1", "no", "false",
                                                     "off", "0"):
        return value.lower() in ("yes", "true", "on", "1")
    raise ValueError("must be true or false")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _texts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return tuple(v.strip() for v in value)


def _duration(value: Any) -> float:
    return parse_duration(value)


def _facilities(value: Any) -> tuple[str, ...]:
    names = _texts(value)
    unknown = [n for n in names if n not in FACILITIES]
    if unknown:
        raise ValueError(f"unknown facility {', '.join(unknown)} (one of {', '.join(FACILITIES)})")
    return names


def _listen_urls(value: Any) -> tuple[str, ...]:
    urls = _texts(value)
    for url in urls:
        kind, sep, where = url.partition("://")
        if not sep or kind not in ("udp", "tcp", "unix") or not where:
            raise ValueError(f"{url!r}: write udp://HOST:PORT, tcp://HOST:PORT or unix:///PATH")
        if kind == "unix":
            if not where.startswith("/"):
                raise ValueError(f"{url!r}: the path must be absolute (unix:///run/...)")
            continue
        host, _, port = where.rpartition(":")
        try:
            ipaddress.ip_address(host.strip("[]"))
            if not 0 < int(port) < 65536:
                raise ValueError
        except ValueError:
            raise ValueError(f"{url!r}: HOST must be an IP address and PORT 1-65535 "
                             "(e.g. udp://127.0.0.1:5514, tcp://[::1]:5514)") from None
    return urls


def _octal(value: Any) -> str:
    text = str(value)
    if not text.isdigit() or not set(text) <= set("01234567") or int(text, 8) > 0o777:
        raise ValueError("must be an octal mode such as 0660")
    return text


def _blacklist(value: Any) -> int | None:
    if value is False or value == 0 or value == "off":
        return None
    return _int(1, 10**9)(value)


def _level(value: Any) -> str:
    name = _text(value).upper()
    if name not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be debug, info, warning or error")
    return name


@dataclass(frozen=True, slots=True)
class Option:
    key: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    flag: str = ""        # default: --key with dashes
    metavar: str = "VALUE"
    repeat: bool = False  # a list flag given several times

    @property
    def flags(self) -> str:
        return self.flag or "--" + self.key.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    # inputs
    Option("stdin", _bool, False, "read records from standard input (a syslog pipe)",
           metavar="BOOL"),
    Option("omprog", _bool, False,
           "be rsyslog's omprog child: read records on stdin, confirm each (confirmMessages)",
           metavar="BOOL"),
    Option("listen", _listen_urls, (),
           "listen for syslog: udp://HOST:PORT, tcp://HOST:PORT, unix:///PATH (repeatable)",
           metavar="URL", repeat=True),
    Option("listen_allow", _texts, ("127.0.0.0/8", "::1/128"),
           "sender networks the listeners take records from (others are dropped, counted)",
           metavar="CIDR", repeat=True),
    Option("listen_rate", _int(1, 10**7), 50000,
           "datagrams a second one sender may send (bursts of a second's worth)", metavar="N"),
    Option("udp_buffer", _int(65536, 1 << 30), 8 << 20,
           "receive buffer of UDP and unix sockets, bytes", metavar="BYTES"),
    Option("unix_mode", _octal, "0660", "mode of unix listening sockets", metavar="MODE"),
    Option("unix_group", _text, "", "group of unix listening sockets", metavar="GROUP"),
    Option("tcp_max_connections", _int(1, 65536), 256,
           "TCP connections at once (more are refused, counted)", metavar="N"),
    Option("tcp_idle", _duration, 300.0, "close a TCP connection silent this long",
           metavar="DURATION"),
    Option("facilities", _facilities, ("mail",),
           "syslog facilities to read where records carry a PRI (e.g. mail,auth,authpriv)",
           metavar="LIST"),
    Option("max_record_size", _int(64, 1 << 20), DEFAULT_MAX_SIZE,
           "reject records longer than this many bytes, whole", metavar="BYTES"),
    # signatures
    Option("rules", _texts, (), "rule directories instead of the bundled rules", metavar="DIR",
           repeat=True),
    Option("enable", _texts, (), "signatures or services to turn on (ID, SERVICE or all)",
           metavar="ID", repeat=True),
    Option("disable", _texts, (), "signatures or services to turn off", metavar="ID",
           repeat=True),
    Option("sessions", _int(1, 10**8), DEFAULT_SIZE,
           "session ids remembered for multi-line signatures", metavar="N"),
    Option("session_ttl", _duration, DEFAULT_TTL, "how long a session id is remembered",
           metavar="DURATION"),
    # scoring
    Option("threshold", _int(1, 10**9), 30, "score (sum of danger) that blocks", metavar="N"),
    Option("attempts", _int(0, 10**9), 0,
           "block after this many attacks instead of a score (0: use threshold)", metavar="N"),
    Option("window", _duration, 1800.0, "detection window", metavar="DURATION"),
    Option("block_time", _duration, 120.0, "first block time", metavar="DURATION"),
    Option("multiplier", _float(1, 1000), 2.0, "block time factor for each earlier block",
           metavar="X"),
    Option("max_block_time", _duration, 86400.0, "longest block (except the blacklist)",
           metavar="DURATION"),
    Option("blacklist", _blacklist, None,
           "lifetime danger that blocks for good (0 or false: off)", metavar="N"),
    Option("allow", _texts, (), "addresses, prefixes or host names never blocked",
           metavar="ADDR", repeat=True),
    Option("allow_own_addresses", _bool, True, "never block this host's own addresses",
           metavar="BOOL"),
    Option("aggregate_ipv4", _int(8, 32), 32, "block the offender's /N instead of the host",
           metavar="N"),
    Option("aggregate_ipv6", _int(16, 128), 128, "block the offender's /M instead of the host",
           metavar="M"),
    Option("score_by_prefix", _bool, False, "score attacks of a whole prefix together",
           metavar="BOOL"),
    Option("adaptive", _int(0, 1 << 16), 0,
           "block a /24 (/64) once this many of its hosts were blocked (0: off)", metavar="K"),
    Option("adaptive_ipv4", _int(8, 31), 24, "prefix length of adaptive blocks (IPv4)",
           metavar="N"),
    Option("adaptive_ipv6", _int(16, 127), 64, "prefix length of adaptive blocks (IPv6)",
           metavar="M"),
    # firewall and state
    Option("backend", _text, "nftables" if platform.system() == "Linux" else "pf",
           "firewall backend: nftables, ipset, pf, ipfw, or null (logs only)", metavar="NAME"),
    Option("firewall_check", _duration, 60.0,
           "how often to compare the firewall with the state (and repair it)",
           metavar="DURATION"),
    Option("dry_run", _bool, False, "decide and log, but change no firewall and keep no state",
           flag="--dry-run", metavar="BOOL"),
    Option("flush_on_exit", _bool, False, "remove all blocks when stopping", metavar="BOOL"),
    Option("batch_delay", _float(0, 60), 0.0,
           "seconds to wait before a batch leaves (0: as soon as the previous one is done)",
           metavar="SECONDS"),
    Option("state", _text, "/var/lib/syslogban/state.db", "state file (SQLite)",
           metavar="PATH"),
    Option("state_durable", _bool, False,
           "wait for the disk on every commit: blocks survive a power loss, not only a "
           "crash of syslogban (costs a disk flush per batch)", metavar="BOOL"),
    Option("control", _text, "/run/syslogban/control.sock", "control socket", metavar="PATH"),
    Option("user", _text, "",
           "after start-up, run as this user keeping only CAP_NET_ADMIN (Linux; empty: stay)",
           metavar="USER"),
    Option("control_group", _text, "", "group allowed to use the control socket (mode 0660)",
           metavar="GROUP"),
    # observability
    Option("log_level", _level, "INFO", "debug, info, warning or error", metavar="LEVEL"),
    Option("log_file", _text, "", "log to this file instead of stderr", metavar="PATH"),
    Option("metrics_file", _text, "",
           "write counters in Prometheus text format to this file (node_exporter textfile)",
           metavar="PATH"),
    Option("metrics_interval", _duration, 15.0, "how often to write the metrics file",
           metavar="DURATION"),
)
_BY_KEY = {o.key: o for o in OPTIONS}
SERVICE_KEYS = ("threshold", "attempts", "window", "block_time", "multiplier",
                "max_block_time")
TABLES = ("services", "notify", "backend_options", "fleet", "crowdsec")


@dataclass(frozen=True, slots=True)
class Config:
    values: Mapping[str, Any]
    services: Mapping[str, Mapping[str, Any]]
    notify: Mapping[str, Any]
    backend_options: Mapping[str, Any]  # keyword arguments of the backend's driver
    source: str  # the file, or "defaults"
    fleet: FleetSettings = field(default_factory=FleetSettings)
    crowdsec: CrowdSecSettings = field(default_factory=CrowdSecSettings)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.values[key]
        except KeyError:
            raise AttributeError(key) from None

    def policy(self, overrides: Mapping[str, Any] | None = None) -> Policy:
        v = {**{k: self.values[k] for k in SERVICE_KEYS}, **(overrides or {})}
        if "max_block_time" not in (overrides or {}):  # a service's longer block_time
            v["max_block_time"] = max(v["max_block_time"], v["block_time"])  # is honoured
        attempts = v["attempts"]
        return Policy(threshold=attempts or v["threshold"], window=v["window"],
                      block_time=v["block_time"], multiplier=v["multiplier"],
                      max_block_time=v["max_block_time"], count_attempts=bool(attempts))

    def blocker(self, allow: Iterable[Network]) -> BlockerConfig:
        return BlockerConfig(
            policy=self.policy(),
            services={name: self.policy(o) for name, o in self.services.items()},
            blacklist=self.values["blacklist"],
            allow=(*LOOPBACK, *allow),
            aggregation=Aggregation(self.aggregate_ipv4, self.aggregate_ipv6,
                                    self.score_by_prefix, self.adaptive,
                                    self.adaptive_ipv4, self.adaptive_ipv6))

    def effective(self) -> dict[str, Any]:
        """Everything in effect, for `syslogban status`."""
        shown = {k: ("permanent" if v == PERMANENT else v) for k, v in self.values.items()}
        fleet = {**asdict(self.fleet), "dsn": _without_password(self.fleet.dsn)}
        return {**shown, "services": dict(self.services), "notify": dict(self.notify),
                "backend_options": dict(self.backend_options), "fleet": fleet,
                "crowdsec": self.crowdsec.shown(), "source": self.source}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per key; unset flags leave the file's value alone."""
    parser.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"dest": option.key, "default": argparse.SUPPRESS,
                                  "metavar": option.metavar, "help": option.help}
        if option.parse is _bool:
            kwargs.update(nargs="?", const="true")
        if option.repeat:
            kwargs["action"] = "append"
        parser.add_argument(option.flags, **kwargs)
    parser.add_argument("--service", dest="service_flags", action="append", default=[],
                        metavar="NAME.KEY=VALUE",
                        help=f"a per-service policy key ({', '.join(SERVICE_KEYS)})")
    parser.add_argument("--notify", dest="notify_flags", action="append", default=[],
                        metavar="KEY=VALUE", help="a notification key (see the example file)")
    parser.add_argument("--fleet", dest="fleet_flags", action="append", default=[],
                        metavar="KEY=VALUE", help="a fleet key (see README, Several hosts)")
    parser.add_argument("--crowdsec", dest="crowdsec_flags", action="append", default=[],
                        metavar="KEY=VALUE", help="a [crowdsec] key (see README, CrowdSec)")
    parser.add_argument("--backend-option", dest="backend_flags", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="an option of the backend's driver (see contrib/ for each)")


def load(path: str | None, flags: argparse.Namespace | None = None) -> Config:
    """The configuration in effect: defaults, then the file, then the flags."""
    data: dict[str, Any] = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    where = path or "flags"
    unknown = set(data) - set(_BY_KEY) - set(TABLES)
    if unknown:
        raise ConfigError(f"{where}: unknown key {', '.join(sorted(unknown))}")
    values = {o.key: o.default for o in OPTIONS}
    for key, raw in data.items():
        if key not in TABLES:
            values[key] = _parse(_BY_KEY[key], raw, where)
    services = _services(data.get("services", {}), where)
    notify = _table(data.get("notify", {}), "notify", where)
    backend_options = _table(data.get("backend_options", {}), "backend_options", where)
    fleet = _table(data.get("fleet", {}), "fleet", where)
    crowdsec = _table(data.get("crowdsec", {}), "crowdsec", where)
    if flags is not None:
        for option in OPTIONS:
            if hasattr(flags, option.key):
                raw = getattr(flags, option.key)
                if option.repeat:
                    raw = [part for item in raw for part in _texts(item)]
                values[option.key] = _parse(option, raw, "command line")
        for item in getattr(flags, "service_flags", []):
            name, key, value = _assignment(item, service=True)
            services.setdefault(name, {})[key] = _parse(_BY_KEY[key], value, "--service")
        for item in getattr(flags, "notify_flags", []):
            _, key, value = _assignment(item, service=False)
            notify[key] = value
        for item in getattr(flags, "backend_flags", []):
            _, key, value = _assignment(item, service=False)
            backend_options[key] = value
        for name, table in (("fleet", fleet), ("crowdsec", crowdsec)):
            for item in getattr(flags, f"{name}_flags", []):
                _, key, value = _assignment(item, service=False)
                table[key] = value
    for name, table in [("", values), *((f"services.{n}: ", t) for n, t in services.items())]:
        if "block_time" in table and table["block_time"] != PERMANENT and \
                table["block_time"] > table.get("max_block_time", PERMANENT):
            raise ConfigError(f"{where}: {name}block_time ({format_duration(table['block_time'])})"
                              f" is longer than max_block_time "
                              f"({format_duration(table['max_block_time'])}): raise "
                              "max_block_time, or write block_time = \"permanent\"")
    if values["stdin"] and values["omprog"]:
        raise ConfigError(f"{where}: stdin and omprog both read standard input: choose one")
    from .notify import NotifyConfig  # here: check and rules never pay for mail modules
    try:  # checked here, so that a bad [notify] is a configuration error like any other
        NotifyConfig.from_mapping(notify)
    except ValueError as exc:
        raise ConfigError(f"{where}: notify: {exc}") from None
    try:
        fleet_settings = FleetSettings.from_mapping(fleet)
        crowdsec_settings = CrowdSecSettings.from_mapping(crowdsec)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return Config(values, services, notify, backend_options, path or "defaults", fleet_settings,
                  crowdsec_settings)


def _without_password(dsn: str) -> str:
    """A libpq URI as `status` may show it: the password replaced by ***."""
    dsn = re.sub(r"(?<=[?&])password=[^&]*", "password=***", dsn)
    scheme, sep, rest = dsn.partition("://")
    userinfo, at, host = rest.partition("@")
    if not sep or not at or ":" not in userinfo:
        return dsn
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def _parse(option: Option, raw: Any, where: str) -> Any:
    try:
        return option.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{where}: {option.key}: {exc}") from None


def _table(value: Any, name: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    return dict(value)


def _services(value: Any, where: str) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for name, table in _table(value, "services", where).items():
        table = _table(table, f"services.{name}", where)
        unknown = set(table) - set(SERVICE_KEYS)
        if unknown:
            raise ConfigError(f"{where}: services.{name}: unknown key "
                              f"{', '.join(sorted(unknown))} (one of {', '.join(SERVICE_KEYS)})")
        result[name] = {k: _parse(_BY_KEY[k], v, f"{where}: services.{name}")
                        for k, v in table.items()}
    return result


def _assignment(text: str, service: bool) -> tuple[str, str, str]:
    left, sep, value = text.partition("=")
    name, dot, key = left.partition(".") if service else ("", "", left)
    if not sep or (service and (not dot or key not in SERVICE_KEYS)):
        form = "NAME.KEY=VALUE with KEY one of " + ", ".join(SERVICE_KEYS) if service \
            else "KEY=VALUE"
        raise ConfigError(f"{text!r}: write {form}")
    return name.strip(), key.strip(), value.strip()


def resolve_allow(entries: Iterable[str], own: Iterable[str] = ()) -> list[Network]:
    """Networks of the allow-list: literals as they are, names resolved now.

    Called at start and on reload only, never while matching. A name that does
    not resolve is reported and skipped (the rest of the list still holds).
    """
    networks: list[Network] = []
    for entry in [*entries, *own]:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(entry, None, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            log.warning("allow-list: cannot resolve %s (%s); it is not allowed", entry, exc)
            continue
        for info in infos:
            networks.append(ipaddress.ip_network(str(info[4][0]).split("%")[0]))
    return networks


def own_addresses() -> list[str]:
    """This host's addresses (pyroute2, netlink); [] where that is not available."""
    try:
        from pyroute2 import IPRoute
    except ImportError:
        return []
    with IPRoute() as ip:
        return [str(msg.get_attr("IFA_ADDRESS")) for msg in ip.get_addr()
                if msg.get_attr("IFA_ADDRESS")]
