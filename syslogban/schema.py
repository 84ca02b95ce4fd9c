"""The configuration file's schema: tables of typed keys, checked in one pass.

Rules of this file:
* One vocabulary for every table of the file. An Option names a key, the Kind
  of its value (how it is read, and how it is written back as TOML), its
  default and its help. A Table holds options ([notify]), or the same options
  once per name ([services.NAME]), or leaves its keys to their consumer
  ([backend_options]: the firewall driver checks its own).
* Every problem is collected, not only the first: `syslogban config check`
  lists them all, one line each, with the file, the dotted key and the reason.
* Pure: no files, no network, no knowledge of which tables exist (config.py
  declares them). The caller reads the TOML and checks the world around it.

Theory of operation: `parse` turns a nested mapping (a TOML document, or the
flags turned into one) into the values that were given, parsed, plus the
problems; `merge` lays one such result over another (flags over the file);
`complete` fills in the defaults; `render` writes values back as TOML.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .durations import PERMANENT, format_duration, parse_duration


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration: where, which key, why."""

    where: str   # the file, "command line" or "defaults"
    key: str     # dotted: threshold, services.sshd.window, notify.smtp_port
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.key}: {self.reason}" if self.key else \
            f"{self.where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Kind:
    """How a value is read (from TOML or from a flag's text) and written back."""

    parse: Callable[[Any], Any]            # raises ValueError with the reason
    show: Callable[[Any], Any] = lambda value: value
    switch: bool = False                   # a flag that may stand alone (--dry-run)


@dataclass(frozen=True, slots=True)
class Option:
    key: str
    kind: Kind
    default: Any
    help: str
    flag: str = ""        # default: --key with dashes
    metavar: str = "VALUE"
    repeat: bool = False  # a list flag given several times
    per_service: bool = False  # also a key of [services.NAME] (a policy key)
    restart: bool = False  # read at start only: a reload says a restart is needed

    @property
    def flags(self) -> str:
        return self.flag or "--" + self.key.replace("_", "-")


@dataclass(frozen=True, slots=True)
class Table:
    """A table of the file; name "" is the top level."""

    name: str
    options: tuple[Option, ...] = ()
    help: str = ""
    named: bool = False  # [name.NAME]: one table of these options per NAME
    open: bool = False   # any key; the consumer checks them (backend_options)
    # Rules between keys (one needs another): the given values in, reasons out.
    # Run once the file and the flags are merged.
    check: Callable[[Mapping[str, Any]], list[str]] | None = None
    # What the table's values make, for its consumer (FleetSettings): config.fleet
    make: Callable[..., Any] | None = None
    restart: bool = False  # the whole table is read at start only

    def option(self, key: str) -> Option | None:
        return next((o for o in self.options if o.key == key), None)


Values = dict[str, Any]


# ------------------------------------------------------------ kinds of values

def _hidden(value: Any) -> Any:
    return "***" if value else ""


def secret(kind: Kind) -> Kind:
    """A password or key: read like `kind`, shown as *** (status, config show)."""
    return Kind(kind.parse, _hidden, kind.switch)


def whole(minimum: int, maximum: int) -> Kind:
    def parse(value: Any) -> int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            raise ValueError(f"must be a whole number from {minimum} to {maximum}, "
                             f"not {shown(value)}")
        return value
    return Kind(parse)


def number(minimum: float, maximum: float) -> Kind:
    def parse(value: Any) -> float:
        try:
            result = math.nan if isinstance(value, bool) else float(value)
        except (TypeError, ValueError):
            result = math.nan
        if not minimum <= result <= maximum:  # also false for nan
            raise ValueError(f"must be a number from {minimum:g} to {maximum:g}, "
                             f"not {shown(value)}")
        return result
    return Kind(parse)


def _boolean(value: Any) -> bool:
    words = {"yes": True, "true": True, "on": True, "1": True,
             "no": False, "false": False, "off": False, "0": False}
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise ValueError(f"must be true or false, not {shown(value)}")


BOOL = Kind(_boolean, switch=True)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {shown(value)}")
    return value


TEXT = Kind(_text)


def _texts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # from a flag: comma-separated
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"must be a list of strings, not {shown(value)}")
    return tuple(v.strip() for v in value)


TEXTS = Kind(_texts, list)


def choice(*names: str) -> Kind:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in names:
            raise ValueError(f"must be one of {', '.join(names)}, not {shown(value)}")
        return value.strip().lower()
    return Kind(parse)


def texts_each(check: Callable[[str], None]) -> Kind:
    """A list of strings, each checked by `check` (which raises ValueError);
    the reasons of every bad item, not only the first."""
    def parse(value: Any) -> tuple[str, ...]:
        items = _texts(value)
        reasons = []
        for item in items:
            try:
                check(item)
            except ValueError as exc:
                reasons.append(str(exc))
        if reasons:
            raise ValueError("; ".join(reasons))
        return items
    return Kind(parse, list)


def duration(above: float | None = None, maximum: float = PERMANENT,
             minimum: float = 0.0) -> Kind:
    """Seconds, written as 30s, 10m, 2h, 1d, 1w or permanent; longer than `above`
    (when given), from `minimum` to `maximum`."""
    def parse(value: Any) -> float:
        seconds = parse_duration(value)
        if above is not None and seconds <= above:
            raise ValueError(f"must be longer than {format_duration(above)}, not {shown(value)}")
        if not minimum <= seconds <= maximum:
            low = f"from {format_duration(minimum)} to " if minimum else "at most "
            raise ValueError(f"must be {low}{format_duration(maximum)}, not {shown(value)}")
        return seconds
    return Kind(parse, format_duration)


POSITIVE_DURATION = duration(above=0.0)


def _network(text: str) -> None:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{shown(text)} is not an address or a prefix (CIDR)") from None


NETWORKS = texts_each(_network)

# RFC 1123 host names: labels of letters, digits and hyphens.
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?",
                       re.ASCII)
_LOOKS_NUMERIC = re.compile(r"[0-9.:/]+|[0-9A-Fa-f:./]*:[0-9A-Fa-f:./]*", re.ASCII)


def _network_or_name(text: str) -> None:
    if _LOOKS_NUMERIC.fullmatch(text) or "/" in text:
        _network(text)
    elif not _HOSTNAME.fullmatch(text):
        raise ValueError(f"{shown(text)} is not an address, a prefix (CIDR) or a host name")


NETWORKS_OR_NAMES = texts_each(_network_or_name)


def shown(value: Any) -> str:
    """A value as the admin wrote it, for a message: TOML-ish, never a Python repr."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "a table"
    return str(value)


# ------------------------------------------------------------ checking

def parse(schema: Iterable[Table], data: Mapping[str, Any], where: str
          ) -> tuple[Values, list[Problem]]:
    """The values `data` gives, parsed (no defaults), and every problem in it."""
    tables = {t.name: t for t in schema}
    top = tables[""]
    values: Values = {}
    problems: list[Problem] = []
    for key, raw in data.items():
        table = tables.get(key)
        if table is not None and key:
            if not isinstance(raw, Mapping):
                problems.append(Problem(where, key, f"must be a table ([{key}])"))
            elif table.named:
                values[key] = {}
                for name, sub in raw.items():
                    path = f"{key}.{name}"
                    if not isinstance(sub, Mapping):
                        problems.append(Problem(where, path, f"must be a table ([{path}])"))
                    else:
                        values[key][name] = _parse_table(table, sub, path, where, problems)
            else:
                values[key] = _parse_table(table, raw, key, where, problems)
            continue
        option = top.option(key)
        if option is None and isinstance(raw, Mapping):
            problems.append(_unknown(where, "", key, [t for t in tables if t], table=True))
        elif option is None:
            problems.append(_unknown(where, "", key, [o.key for o in top.options]))
        else:
            _parse_value(option, raw, key, where, values, problems)
    return values, problems


def _parse_table(table: Table, data: Mapping[str, Any], path: str, where: str,
                 problems: list[Problem]) -> Values:
    if table.open:
        return dict(data)
    values: Values = {}
    for key, raw in data.items():
        option = table.option(key)
        if option is None:
            problems.append(_unknown(where, path, key, [o.key for o in table.options]))
        else:
            _parse_value(option, raw, f"{path}.{key}", where, values, problems)
    return values


def _parse_value(option: Option, raw: Any, path: str, where: str, values: Values,
                 problems: list[Problem]) -> None:
    try:
        values[option.key] = option.kind.parse(raw)
    except ValueError as exc:
        problems.append(Problem(where, path, str(exc)))


def _unknown(where: str, path: str, key: str, known: list[str], table: bool = False
             ) -> Problem:
    near = difflib.get_close_matches(key, known, n=1)
    if near:
        hint = f" (did you mean {near[0]}?)"
    else:
        hint = f" (one of {', '.join(known)})" if len(known) <= 12 else ""
    what = "unknown table" if table else f"unknown key in [{path}]" if path else "unknown key"
    return Problem(where, f"{path}.{key}" if path else key, f"{what}{hint}")


def check_tables(schema: Iterable[Table], given: Values, where: str) -> list[Problem]:
    """The rules between keys of each table (Table.check), on the merged values."""
    return [Problem(where, table.name, reason) for table in schema if table.check is not None
            for reason in table.check(given.get(table.name, {}))]


def merge(base: Values, over: Values) -> Values:
    """`over` laid on `base`, table by table (flags over the file)."""
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def complete(schema: Iterable[Table], given: Values) -> Values:
    """Every key: the given values over the defaults. Named tables keep only
    what was given (a service's policy is the top level's plus its own keys)."""
    result: Values = {}
    for table in schema:
        defaults = {o.key: o.default for o in table.options}
        if not table.name:
            result.update(defaults)
            result.update({k: v for k, v in given.items() if table.option(k) is not None})
        elif table.named or table.open:
            result[table.name] = dict(given.get(table.name, {}))
        else:
            result[table.name] = {**defaults, **given.get(table.name, {})}
    return result


# ------------------------------------------------------------ writing back

def show(schema: Iterable[Table], values: Values) -> Values:
    """`values` (complete) as TOML would hold them: durations as "30m", lists as lists."""
    result: Values = {}
    for table in schema:
        if not table.name:
            result.update({o.key: o.kind.show(values[o.key]) for o in table.options})
        elif table.open:
            result[table.name] = dict(values.get(table.name, {}))
        elif table.named:
            result[table.name] = {name: _shown_table(table, sub)
                                  for name, sub in sorted(values.get(table.name, {}).items())}
        else:
            result[table.name] = _shown_table(table, values[table.name])
    return result


def _shown_table(table: Table, values: Mapping[str, Any]) -> Values:
    return {o.key: o.kind.show(values[o.key]) for o in table.options if o.key in values}


def render(schema: Iterable[Table], values: Values, comments: bool = True) -> str:
    """`values` (complete) as a TOML document, each key after its help as a comment."""
    schema = list(schema)
    shown_values = show(schema, values)
    out: list[str] = []
    for table in schema:
        if table.name:
            out.append("")
            if comments and table.help:
                out.append(f"# {table.help}")
        sub = shown_values if not table.name else shown_values[table.name]
        if table.named:
            for name, keys in sub.items():
                out.append(f"[{table.name}.{_key(name)}]")
                out.extend(f"{key} = {_toml(value)}" for key, value in keys.items())
            continue
        if table.name:
            out.append(f"[{table.name}]")
        for key, value in sub.items():
            if isinstance(value, Mapping) and not table.name:
                continue  # a table: written after the keys of the top level
            option = table.option(key)
            if comments and option is not None:
                out.append(f"# {option.help}")
            out.append(f"{_key(key)} = {_toml(value)}")
    return "\n".join(out) + "\n"


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


def _toml(value: Any) -> str:
    """A TOML value: strings as basic strings (JSON's escapes are TOML's), lists inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return json.dumps("permanent")
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value), ensure_ascii=False)  # a date in [backend_options]
