"""Configuration: one TOML file, every key also a command-line flag.

Rules of this file:
* SCHEMA declares every table of the file and every key (schema.py is the
  vocabulary): kind, default, help. The file reader, the flags of `syslogban
  run`, `syslogban config check` / `config show`, the effective configuration
  shown by `status` and contrib/syslogban.toml all follow it.
* Defaults work with no file at all. Precedence: defaults < file < flags.
  The file is --config FILE, else DEFAULT_PATH where it exists (as the
  Debian package installs it), so that `run`, `config check` and the
  commands that ask the daemon read the same file without being told.
* A bad value is reported with the key (and file) and why; it never half-applies.
* It resolves nothing over the network itself: names in `allow` are resolved
  by the daemon at start and on reload, through `resolve_allow`.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import platform
import re
import socket
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .blocker import LOOPBACK, Aggregation, BlockerConfig, Network, Policy
from .correlation import DEFAULT_SIZE, DEFAULT_TTL
from .crowdsec.settings import CROWDSEC
from .durations import PERMANENT, format_duration
from .errors import SyslogbanError
from .fleet.settings import FLEET
from .record import DEFAULT_MAX_SIZE, FACILITIES
from .schema import (
    BOOL,
    check_tables,
    NETWORKS,
    NETWORKS_OR_NAMES,
    POSITIVE_DURATION,
    TEXT,
    TEXTS,
    Kind,
    Option,
    Problem,
    Table,
    choice,
    complete,
    duration,
    merge,
    number,
    parse,
    render,
    show,
    shown,
    texts_each,
    whole,
)

log = logging.getLogger("syslogban.config")


class ConfigError(SyslogbanError, ValueError):
    """A configuration that cannot be used: every problem, one per line, with the
    file, the key and the reason."""


def _listen_url(url: str) -> None:
    kind, sep, where = url.partition("://")
    if not sep or kind not in ("udp", "tcp", "unix") or not where:
        raise ValueError(f"{shown(url)}: write udp://HOST:PORT, tcp://HOST:PORT or unix:///PATH")
    if kind == "unix":
        if not where.startswith("/"):
            raise ValueError(f"{shown(url)}: the path must be absolute (unix:///run/...)")
        return
    host, _, port = where.rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
        if not 0 < int(port) < 65536:
            raise ValueError
    except ValueError:
        raise ValueError(f"{shown(url)}: HOST must be an IP address and PORT 1-65535 "
                         "(e.g. udp://127.0.0.1:5514, tcp://[::1]:5514)") from None


def _facility(name: str) -> None:
    if name not in FACILITIES:
        raise ValueError(f"unknown facility {name} (one of {', '.join(FACILITIES)})")


def _octal(value: Any) -> str:
    text = str(value)
    if not text.isdigit() or not set(text) <= set("01234567") or int(text, 8) > 0o777:
        raise ValueError(f"must be an octal mode such as \"0660\", not {shown(value)}")
    return text


def _blacklist(value: Any) -> int | None:
    if value is False or value == 0 or value == "off":
        return None
    return int(whole(1, 10**9).parse(value))


# RFC 5322 dot-atom addresses, ASCII only: no quotes, spaces, commas or line breaks,
# so that an address can never add a header or a recipient.
_MAIL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*",
                   re.ASCII)
_HOST = re.compile(r"[A-Za-z0-9._:-]+", re.ASCII)


def _mail_address(text: str) -> None:
    if not _MAIL.fullmatch(text):
        raise ValueError(f"{shown(text)} is not a mail address such as root@example.org")


def _mail_from(value: Any) -> str:
    text = TEXT.parse(value)
    if text:
        _mail_address(text)
    return text


def _host(value: Any) -> str:
    if not isinstance(value, str) or not _HOST.fullmatch(value):
        raise ValueError(f"{shown(value)} is not a host name or address")
    return value


def _argv(value: Any) -> tuple[str, ...]:
    argv = TEXTS.parse(value)
    if argv and not argv[0].startswith("/"):
        raise ValueError(f"the program must be an absolute path, not {shown(argv[0])} "
                         "(it is run without a shell or PATH)")
    if any("\0" in arg for arg in argv):
        raise ValueError("an argument holds a NUL character")
    return argv


DURATION = duration()
LISTEN_URLS = texts_each(_listen_url)
FACILITY_NAMES = texts_each(_facility)
OCTAL = Kind(_octal)
BLACKLIST = Kind(_blacklist, lambda value: value or 0)
LEVEL = Kind(lambda value: choice("debug", "info", "warning", "error").parse(value).upper(),
             str.lower)  # logging wants INFO, the admin writes info
MAIL_ADDRESSES = texts_each(_mail_address)
MAIL_FROM = Kind(_mail_from)
HOST = Kind(_host)
ARGV = Kind(_argv, list)


OPTIONS: tuple[Option, ...] = (
    # inputs
    Option("stdin", BOOL, False, "read records from standard input (a syslog pipe)",
           metavar="BOOL", restart=True),
    Option("omprog", BOOL, False,
           "be rsyslog's omprog child: read records on stdin, confirm each (confirmMessages)",
           metavar="BOOL", restart=True),
    Option("listen", LISTEN_URLS, (),
           "listen for syslog: udp://HOST:PORT, tcp://HOST:PORT, unix:///PATH (repeatable)",
           metavar="URL", repeat=True, restart=True),
    Option("listen_allow", NETWORKS, ("127.0.0.0/8", "::1/128"),
           "sender networks the listeners take records from (others are dropped, counted)",
           metavar="CIDR", repeat=True, restart=True),
    Option("listen_rate", whole(1, 10**7), 50000,
           "datagrams a second one sender may send (bursts of a second's worth)", metavar="N",
           restart=True),
    Option("udp_buffer", whole(65536, 1 << 30), 8 << 20,
           "receive buffer of UDP and unix sockets, bytes", metavar="BYTES", restart=True),
    Option("unix_mode", OCTAL, "0660", "mode of unix listening sockets", metavar="MODE",
           restart=True),
    Option("unix_group", TEXT, "", "group of unix listening sockets", metavar="GROUP",
           restart=True),
    Option("tcp_max_connections", whole(1, 65536), 256,
           "TCP connections at once (more are refused, counted)", metavar="N", restart=True),
    Option("tcp_per_sender", whole(1, 65536), 32,
           "TCP connections one sender address may hold (a new one replaces its stalest)",
           metavar="N", restart=True),
    Option("tcp_idle", POSITIVE_DURATION, 300.0, "close a TCP connection silent this long",
           metavar="DURATION", restart=True),
    Option("tcp_frame_timeout", POSITIVE_DURATION, 10.0,
           "close a TCP connection whose frame stays incomplete this long",
           metavar="DURATION", restart=True),
    Option("facilities", FACILITY_NAMES, ("mail",),
           "syslog facilities to read where records carry a PRI (e.g. mail,auth,authpriv)",
           metavar="LIST"),
    Option("max_record_size", whole(64, 1 << 20), DEFAULT_MAX_SIZE,
           "reject records longer than this many bytes, whole", metavar="BYTES"),
    # signatures
    Option("rules", TEXTS, (), "rule directories instead of the bundled rules", metavar="DIR",
           repeat=True),
    Option("enable", TEXTS, (), "signatures or services to turn on (ID, SERVICE or all)",
           metavar="ID", repeat=True),
    Option("disable", TEXTS, (), "signatures or services to turn off", metavar="ID",
           repeat=True),
    Option("sessions", whole(1, 10**8), DEFAULT_SIZE,
           "session ids remembered for multi-line signatures", metavar="N"),
    Option("session_ttl", POSITIVE_DURATION, DEFAULT_TTL, "how long a session id is remembered",
           metavar="DURATION"),
    # scoring (per_service: also a key of [services.NAME])
    Option("threshold", whole(1, 10**9), 30,
           "score that blocks: each attempt adds its danger (10 by default)", metavar="N",
           per_service=True),
    Option("attempts", whole(0, 10**9), 0,
           "block at the N-th attempt (failed login, probe) instead of by score (0: use "
           "threshold)", metavar="N", per_service=True),
    Option("window", POSITIVE_DURATION, 1800.0, "detection window", metavar="DURATION",
           per_service=True),
    Option("block_time", POSITIVE_DURATION, 120.0, "first block time", metavar="DURATION",
           per_service=True),
    Option("multiplier", number(1, 1000), 2.0, "block time factor for each earlier block",
           metavar="X", per_service=True),
    Option("max_block_time", POSITIVE_DURATION, 86400.0,
           "longest block (except the blacklist)", metavar="DURATION", per_service=True),
    Option("blacklist", BLACKLIST, None,
           "lifetime danger that blocks for good (0 or false: off)", metavar="N"),
    Option("allow", NETWORKS_OR_NAMES, (), "addresses, prefixes or host names never blocked",
           metavar="ADDR", repeat=True),
    Option("allow_own_addresses", BOOL, True, "never block this host's own addresses",
           metavar="BOOL"),
    Option("aggregate_ipv4", whole(8, 32), 32, "block the offender's /N instead of the host",
           metavar="N"),
    Option("aggregate_ipv6", whole(16, 128), 128, "block the offender's /M instead of the host",
           metavar="M"),
    Option("score_by_prefix", BOOL, False, "score attacks of a whole prefix together",
           metavar="BOOL"),
    Option("adaptive", whole(0, 1 << 16), 0,
           "block a /24 (/64) once this many of its hosts were blocked (0: off)", metavar="K"),
    Option("adaptive_ipv4", whole(8, 31), 24, "prefix length of adaptive blocks (IPv4)",
           metavar="N"),
    Option("adaptive_ipv6", whole(16, 127), 64, "prefix length of adaptive blocks (IPv6)",
           metavar="M"),
    # firewall and state
    Option("backend", TEXT, "nftables" if platform.system() == "Linux" else "pf",
           "firewall backend: nftables, ipset, pf, ipfw, or null (logs only)", metavar="NAME",
           restart=True),
    Option("firewall_check", POSITIVE_DURATION, 60.0,
           "how often to compare the firewall with the state (and repair it)",
           metavar="DURATION"),
    Option("dry_run", BOOL, False, "decide and log, but change no firewall and keep no state",
           flag="--dry-run", metavar="BOOL", restart=True),
    Option("flush_on_exit", BOOL, False, "remove all blocks when stopping", metavar="BOOL",
           restart=True),
    Option("batch_delay", number(0, 60), 0.0,
           "seconds to wait before a batch leaves (0: as soon as the previous one is done)",
           metavar="SECONDS"),
    Option("state", TEXT, "/var/lib/syslogban/state.db", "state file (SQLite)",
           metavar="PATH", restart=True),
    Option("state_durable", BOOL, False,
           "wait for the disk on every commit: blocks survive a power loss, not only a "
           "crash of syslogban (costs a disk flush per batch)", metavar="BOOL", restart=True),
    Option("control", TEXT, "/run/syslogban/control.sock", "control socket", metavar="PATH",
           restart=True),
    Option("user", TEXT, "",
           "after start-up, run as this user keeping only CAP_NET_ADMIN (Linux; empty: stay)",
           metavar="USER", restart=True),
    Option("control_group", TEXT, "", "group allowed to use the control socket (mode 0660)",
           metavar="GROUP", restart=True),
    # observability
    Option("log_level", LEVEL, "INFO", "debug, info, warning or error", metavar="LEVEL"),
    Option("log_file", TEXT, "", "log to this file instead of stderr", metavar="PATH"),
    Option("metrics_file", TEXT, "",
           "write counters in Prometheus text format to this file (node_exporter textfile)",
           metavar="PATH"),
    Option("metrics_interval", POSITIVE_DURATION, 15.0, "how often to write the metrics file",
           metavar="DURATION"),
)

NOTIFY_OPTIONS: tuple[Option, ...] = (
    Option("mail_to", MAIL_ADDRESSES, (), "who gets a mail per block (empty: no mail)"),
    Option("mail_from", MAIL_FROM, "", "the sender (empty: syslogban@ this host's name)"),
    Option("smtp_host", HOST, "localhost", "the mail server that takes the mails"),
    Option("smtp_port", whole(1, 65535), 25, "its port"),
    Option("smtp_timeout", POSITIVE_DURATION, 10.0, "give up on the mail server after this"),
    Option("max_mails_per_hour", whole(0, 10**6), 12,
           "beyond that, blocks wait for a digest (never dropped)"),
    Option("digest", BOOL, False, "also one summary mail a day"),
    Option("digest_hour", whole(0, 23), 8, "the hour of the daily digest (local time)"),
    Option("exec_argv", ARGV, (),
           "a hook run per block, without a shell: the address is appended "
           "(e.g. [\"/usr/local/sbin/on-block\", \"--\"])"),
    Option("exec_timeout", POSITIVE_DURATION, 30.0, "kill a hook running longer"),
    Option("exec_concurrency", whole(1, 1024), 4, "hooks at once (more are skipped, counted)"),
)

# Every table of the file. A new table is one more line here (and its options);
# a new policy key is one more Option above with per_service=True.
SCHEMA: tuple[Table, ...] = (
    Table("", OPTIONS),
    Table("services", tuple(o for o in OPTIONS if o.per_service), named=True,
          help="per-service policies (fail2ban's jails), scored apart"),
    Table("notify", NOTIFY_OPTIONS, help="notifications of blocks", restart=True),
    Table("backend_options", open=True, help="options of the firewall backend's driver"),
    FLEET,
    CROWDSEC,
)
_TABLES = {t.name: t for t in SCHEMA}
SERVICE_KEYS = tuple(o.key for o in _TABLES["services"].options)


@dataclass(frozen=True, slots=True)
class Config:
    """The configuration in effect: every key of every table, parsed."""

    values: Mapping[str, Any]  # the top level; tables under their names
    source: str  # the file, or "defaults"

    def __getattr__(self, key: str) -> Any:
        """A key's value; a table's values, or what its Table.make makes of them."""
        try:
            value = self.values[key]
        except KeyError:
            raise AttributeError(key) from None
        table = _TABLES.get(key)
        return table.make(**value) if table is not None and table.make else value

    def policy(self, overrides: Mapping[str, Any] | None = None) -> Policy:
        v = self.policy_values(overrides)
        attempts = v["attempts"]
        return Policy(threshold=attempts or v["threshold"], window=v["window"],
                      block_time=v["block_time"], multiplier=v["multiplier"],
                      max_block_time=v["max_block_time"], count_attempts=bool(attempts))

    def policy_values(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A service's whole policy: the top level's keys, then its own."""
        v = {**{k: self.values[k] for k in SERVICE_KEYS}, **(overrides or {})}
        if "max_block_time" not in (overrides or {}):  # a service's longer block_time
            v["max_block_time"] = max(v["max_block_time"], v["block_time"])  # is honoured
        return v

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
        """Everything in effect, as TOML would write it (durations as 30m), for `status`."""
        return {**show(SCHEMA, self.values), "source": self.source}

    def toml(self, comments: bool = True) -> str:
        """The configuration in effect as a TOML file (`syslogban config show`); each
        service with a policy of its own shows all of it, not only its own keys."""
        services = {name: self.policy_values(own) for name, own in self.services.items()}
        return render(SCHEMA, {**self.values, "services": services}, comments)


# Where the configuration lives when --config does not say (the BSDs keep
# what ports install under /usr/local/etc).
DEFAULT_PATH = ("/etc/syslogban/syslogban.toml" if platform.system() == "Linux"
                else "/usr/local/etc/syslogban/syslogban.toml")
CONFIG_HELP = (f"configuration file (TOML; default {DEFAULT_PATH} where it exists, "
               "'' for none)")


def config_path(given: str | None) -> str | None:
    """The file to read: the one given ('' for none), else DEFAULT_PATH where it exists."""
    if given is not None:
        return given or None
    return DEFAULT_PATH if Path(DEFAULT_PATH).exists() else None


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per key; unset flags leave the file's value alone."""
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"dest": option.key, "default": argparse.SUPPRESS,
                                  "metavar": option.metavar, "help": option.help}
        if option.kind.switch:
            kwargs.update(nargs="?", const="true")
        if option.repeat:
            kwargs["action"] = "append"
        parser.add_argument(option.flags, **kwargs)
    for table in SCHEMA:
        if table.name:
            form = "NAME.KEY=VALUE" if table.named else "KEY=VALUE"
            keys = f" ({', '.join(o.key for o in table.options)})" if table.named else ""
            parser.add_argument(_table_flag(table), dest=f"table_{table.name}",
                                action="append", default=[], metavar=form,
                                help=f"a key of [{table.name}]: {table.help}{keys}")


def _table_flag(table: Table) -> str:
    """--service, --notify, --backend-option: the table's name, singular."""
    return "--" + table.name.removesuffix("s").replace("_", "-")


def load(path: str | None, flags: argparse.Namespace | None = None) -> Config:
    """The configuration in effect: defaults, then the file, then the flags.

    Raises ConfigError listing every problem, one per line.
    """
    config, problems = read(path, flags)
    if problems:
        raise ConfigError("\n".join(map(str, problems)))
    return config


def read(path: str | None, flags: argparse.Namespace | None = None
         ) -> tuple[Config, list[Problem]]:
    """The configuration and every problem in it; a key with a problem keeps
    its default, so that the rest can still be checked (`config check`)."""
    data: dict[str, Any] = {}
    problems: list[Problem] = []
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            problems.append(Problem(path, "", f"cannot read: {exc.strerror}"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            problems.append(Problem(path, "", f"not valid TOML: {exc}"))
    given, schema_problems = parse(SCHEMA, data, path or "defaults")
    problems += schema_problems
    if flags is not None:
        shape: list[Problem] = []
        from_flags, flag_problems = parse(SCHEMA, _flag_data(flags, shape), "command line")
        given = merge(given, from_flags)
        problems += shape + flag_problems
    problems += check_tables(SCHEMA, given, path or "command line")
    values = complete(SCHEMA, given)
    problems += _block_times(values, path or "command line")
    if values["stdin"] and values["omprog"]:
        problems.append(Problem(path or "command line", "stdin",
                                "stdin and omprog both read standard input: choose one"))
    return Config(values, path or "defaults"), problems


def _block_times(values: Mapping[str, Any], where: str) -> list[Problem]:
    """A block_time longer than the max_block_time beside it cannot be meant."""
    found = []
    tables = [("", values), *((f"services.{n}.", t) for n, t in values["services"].items())]
    for prefix, table in tables:
        if "block_time" in table and table["block_time"] != PERMANENT and \
                table["block_time"] > table.get("max_block_time", PERMANENT):
            found.append(Problem(where, f"{prefix}block_time",
                                 f"{format_duration(table['block_time'])} is longer than "
                                 f"max_block_time ({format_duration(table['max_block_time'])}):"
                                 " raise max_block_time, or write block_time = \"permanent\""))
    return found


def restart_needed(old: Config, new: Config) -> list[str]:
    """The keys and tables whose change a reload cannot apply (Option.restart,
    Table.restart): they take effect at the next start."""
    changed = [o.key for o in OPTIONS if o.restart and old.values[o.key] != new.values[o.key]]
    return changed + [t.name for t in SCHEMA if t.restart and
                      old.values[t.name] != new.values[t.name]]


def parse_table(name: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """One table alone, every key (defaults filled in); raises ConfigError."""
    given, problems = parse(SCHEMA, {name: data}, "configuration")
    problems += check_tables([_TABLES[name]], given, "configuration")
    if problems:
        raise ConfigError("\n".join(map(str, problems)))
    return dict(complete(SCHEMA, given)[name])


def _flag_data(flags: argparse.Namespace, problems: list[Problem]) -> dict[str, Any]:
    """The flags given, as the TOML document that would say the same."""
    data: dict[str, Any] = {}
    for option in OPTIONS:
        if hasattr(flags, option.key):
            raw = getattr(flags, option.key)
            data[option.key] = [p for item in raw for p in TEXTS.parse(item)] \
                if option.repeat else raw
    for table in SCHEMA:
        for item in getattr(flags, f"table_{table.name}", []) if table.name else []:
            left, sep, value = item.partition("=")
            path = [part.strip() for part in left.split(".")]
            if not sep or len(path) != (2 if table.named else 1) or not all(path):
                form = "NAME.KEY=VALUE" if table.named else "KEY=VALUE"
                problems.append(Problem("command line", _table_flag(table),
                                        f"{shown(item)}: write {form}"))
                continue
            place = data.setdefault(table.name, {})
            for part in path[:-1]:
                place = place.setdefault(part, {})
            place[path[-1]] = value.strip()
    return data


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
