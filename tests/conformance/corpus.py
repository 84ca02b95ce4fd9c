"""Reading fail2ban's annotated sample logs (tests/files/logs/<filter>).

The format is defined by the code that reads it, fail2ban's
tests/samplestestcase.py; this module follows it line for line:

* `# failJSON: {...}` annotates the physical line right after it, whatever
  that line is: `"match": true` with `"host"` (or `"ip4"`/`"ip6"`) is an
  attack from that address, `"match": false` a line that must not match.
  `"constraint"` is an expression over `name` (the filter) and `opts` (one
  option set); the annotation holds only for the option sets where it is true.
* `# filterOptions: {...}` or `[{...}, ...]` starts a block: the option sets
  (mostly `{"mode": ...}`; `{}` is the filter's default mode) under which every
  annotation up to the next `filterOptions` holds. Before the first one, the
  block is `[{}]`. `"test.condition"` drops an option set (or the whole block)
  for other filters; `# fileOptions: {...}` is merged into every later option
  set of the file (e.g. `"logtype": "journal"`).
* `# addFILE: "name"` makes another file part of this filter's corpus.
* Any other line starting with `#`, and blank lines, are comments; a log line
  without an annotation is expected to match nothing.

fail2ban's multi-line filters emit a failure on the line that completes it,
and the annotation sits on that line; the runner keeps that meaning (it feeds
each file to syslogban whole, so session state carries across its lines).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Options = Mapping[str, Any]  # one filter option set, e.g. {"mode": "aggressive"}

ANNOTATION = re.compile(r"#+ ?(failJSON|(?:file|filter)Options|addFILE):(.+)")
ADDRESS_KEYS = ("host", "ip4", "ip6")  # where fail2ban's failJSON names the address

# What a journal entry looks like on the way to syslogban: `journalctl -o short`
# writes the entry's time first; fail2ban's journal backend passes it beside
# the text, so the corpus lines of logtype "journal" have none.
JOURNAL_STAMP = b"Jan  1 00:00:00 "

_MODE_LINE = re.compile(r"^mode\s*=", re.MULTILINE)


class CorpusError(Exception):
    """A corpus file this reader does not understand (so the scores would be wrong)."""


@dataclass(frozen=True, slots=True)
class Annotation:
    match: bool
    addresses: tuple[str, ...]     # as written: IPs, hostnames; empty if none annotated
    desc: str
    options: tuple[Options, ...]   # the option sets under which this annotation holds

    @property
    def modes(self) -> frozenset[str | None]:
        """The filter modes it holds in; None is the filter's default mode (`{}`)."""
        return frozenset(o.get("mode") for o in self.options)


@dataclass(frozen=True, slots=True)
class LogLine:
    """A line of a sample log that fail2ban feeds to its filter."""

    lineno: int                    # 1-based in its file
    text: str                      # as in the file (for reports)
    data: bytes                    # what syslogban reads
    annotation: Annotation | None  # None: not annotated (expected to match nothing)


@dataclass(frozen=True, slots=True)
class CorpusFile:
    name: str
    line_count: int                # physical lines, comments included
    lines: tuple[LogLine, ...]
    includes: tuple[str, ...]      # addFILE names, in order

    def stream(self) -> bytes:
        """The log lines, each at its own line number; comments become blank lines.

        Blank lines keep syslogban's line numbers equal to the file's, and a
        blank line is rejected before any matching: comments (which quote
        addresses) can never be mistaken for records.
        """
        rows = [b""] * self.line_count
        for line in self.lines:
            rows[line.lineno - 1] = line.data
        return b"\n".join(rows) + b"\n"


@dataclass(frozen=True, slots=True)
class Filter:
    name: str
    has_modes: bool                # its filter.d conf has `mode =`; if not, `{}` is its only mode
    files: tuple[CorpusFile, ...]  # its own file first, then the files it adds


def load_filter(name: str, logs: Mapping[str, bytes], filters: Mapping[str, str]) -> Filter:
    """The corpus of filter `name`: its sample log and every file it adds."""
    if name not in logs:
        raise CorpusError(f"the corpus has no sample log for filter {name!r}")
    files: list[CorpusFile] = []
    pending = [name]
    while pending:  # breadth first, like fail2ban's growing list of file names
        file_name = pending.pop(0)
        if any(f.name == file_name for f in files):
            continue
        if file_name not in logs:
            raise CorpusError(f"{name}: addFILE names {file_name!r}, which is not in the corpus")
        parsed = parse_file(file_name, logs[file_name], name)
        files.append(parsed)
        pending.extend(parsed.includes)
    has_modes = bool(_MODE_LINE.search(filters.get(name, "")))
    return Filter(name, has_modes, tuple(files))


def parse_file(file_name: str, data: bytes, filter_name: str) -> CorpusFile:
    """One sample log, read as fail2ban reads it when testing `filter_name`."""
    raw = data.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()  # the final newline ends the last line; a missing one is tolerated
    file_options: dict[str, Any] = {}
    block: tuple[Options, ...] = ({},)
    lines: list[LogLine] = []
    includes: list[str] = []
    pending: tuple[int, dict[str, Any]] | None = None  # (line number, failJSON) awaiting its line
    for lineno, row in enumerate(raw, start=1):
        text = row.decode("utf-8", "replace").rstrip("\r")
        if pending is not None:  # the annotated line, whatever it looks like
            lines.extend(_annotated(file_name, lineno, text, row, pending, block, filter_name))
            pending = None
            continue
        m = ANNOTATION.fullmatch(text)
        if m is None:
            if block and not text.startswith("#") and text.strip():
                lines.append(LogLine(lineno, text, _feed(row, block), None))
            continue
        kind, value = m.group(1), _json(file_name, lineno, m.group(2))
        if kind == "fileOptions":
            file_options = _dict(file_name, lineno, value)
        elif kind == "filterOptions":
            block = _block(file_name, lineno, value, file_options, filter_name)
        elif kind == "addFILE":
            includes.append(str(value))
        else:
            pending = (lineno, _dict(file_name, lineno, value))
    if pending is not None:
        raise CorpusError(f"{file_name}:{pending[0]}: failJSON on the last line annotates nothing")
    return CorpusFile(file_name, len(raw), tuple(lines), tuple(includes))


def _annotated(file_name: str, lineno: int, text: str, row: bytes,
               pending: tuple[int, dict[str, Any]], block: tuple[Options, ...],
               filter_name: str) -> list[LogLine]:
    """The annotated line, or nothing when its block or constraint drops it for this filter."""
    where, fail = pending
    constraint = fail.get("constraint")
    options = tuple(o for o in block
                    if not constraint or condition_holds(constraint, filter_name, o, where))
    if not options:
        return []
    addresses: list[str] = []
    for key in ADDRESS_KEYS:
        value = fail.get(key)
        if value is not None:
            addresses.extend(value if isinstance(value, list) else [value])
    annotation = Annotation(bool(fail.get("match", False)), tuple(map(str, addresses)),
                            str(fail.get("desc", "")), options)
    return [LogLine(lineno, text, _feed(row, options), annotation)]


def _block(file_name: str, lineno: int, value: Any, file_options: dict[str, Any],
           filter_name: str) -> tuple[Options, ...]:
    """The option sets of a filterOptions line that apply to `filter_name` (may be none)."""
    block = []
    for item in value if isinstance(value, list) else [value]:
        options = {**file_options, **_dict(file_name, lineno, item)}
        condition = options.get("test.condition")
        if condition and not condition_holds(condition, filter_name, options, lineno):
            continue
        block.append(options)
    return tuple(block)


def _feed(row: bytes, options: tuple[Options, ...]) -> bytes:
    """The line as syslogban reads it: as in the file, journal entries with their time."""
    logtypes = {o.get("logtype", "file") for o in options}
    if len(logtypes) != 1:
        raise CorpusError(f"one block mixes log types {sorted(logtypes)}")
    if logtypes == {"journal"}:
        prefixes = {str(o.get("test.prefix-line", "")) for o in options}
        return JOURNAL_STAMP + prefixes.pop().encode() + row
    return row


def _json(file_name: str, lineno: int, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CorpusError(f"{file_name}:{lineno}: {exc}") from None


def _dict(file_name: str, lineno: int, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CorpusError(f"{file_name}:{lineno}: expected a JSON object, got {value!r}")
    return value


def condition_holds(expression: str, name: str, options: Options, lineno: int = 0) -> bool:
    """A fail2ban test condition (Python in the corpus) evaluated without eval().

    fail2ban eval()s these; we accept only what they are made of: `name`,
    `opts.get('key')`, string constants, ==, !=, not, and, or. Anything else
    is a CorpusError, so a new construct is noticed instead of guessed.
    """
    try:
        tree = ast.parse(expression, mode="eval")
        return bool(_evaluate(tree.body, name, options))
    except (SyntaxError, _Unsupported):
        raise CorpusError(f"line {lineno}: unsupported condition {expression!r}") from None


class _Unsupported(Exception):
    pass


def _evaluate(node: ast.expr, name: str, options: Options) -> Any:
    match node:
        case ast.Constant(value=value) if value is None or isinstance(value, (str, bool, int)):
            return value
        case ast.Name(id="name"):
            return name
        case ast.Call(func=ast.Attribute(value=ast.Name(id="opts"), attr="get"),
                      args=[key, *default], keywords=[]) if len(default) <= 1:
            fallback = _evaluate(default[0], name, options) if default else None
            return options.get(_evaluate(key, name, options), fallback)
        case ast.Compare(left=left, ops=[ast.Eq() | ast.NotEq() as op], comparators=[right]):
            equal = _evaluate(left, name, options) == _evaluate(right, name, options)
            return equal if isinstance(op, ast.Eq) else not equal
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return not _evaluate(operand, name, options)
        case ast.BoolOp(op=ast.And(), values=values):
            return all(_evaluate(v, name, options) for v in values)
        case ast.BoolOp(op=ast.Or(), values=values):
            return any(_evaluate(v, name, options) for v in values)
    raise _Unsupported
