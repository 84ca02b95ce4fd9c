"""Signatures: loading rule files (TOML) and compiling their patterns.

Rules of this file:
* Everything about the rule file format lives here: keys, defaults,
  placeholders, validation and the error messages a rule author reads.
* A broken file is never half-loaded: the first problem raises `RuleError`
  naming the file, the signature id and the reason.
* It matches nothing itself (that is matcher.py) and runs no examples (that is
  examples.py).

Theory of operation: a pattern is a Python regular expression, anchored at the
start of the message (the text after `program[pid]: `), with placeholders:
<ADDR> (required, exactly once) captures an IPv4/IPv6 literal, <PORT> and
<USER> are optional, <COUNT> is the number a line of the role "count" carries.
Each signature also says what its line is to attempt accounting (`role`,
`serves`, the `session` that ties lines together; see attempts.py). From each compiled pattern we derive its longest
mandatory literal: a record whose line lacks it cannot match, which is what
lets the scanner skip most lines without parsing them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from .address import normalize_address
from .errors import SyslogbanError

DEFAULT_DANGER = 10
MIN_LITERAL = 4

PLACEHOLDERS: dict[str, str] = {
    "<ADDR>": (r"(?P<addr>[0-9]{1,3}(?:\.[0-9]{1,3}){3}"
               r"|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]{1,44}(?:%[\w.-]{1,32})?)"),
    "<PORT>": r"(?P<port>[0-9]{1,5})",
    "<USER>": r"(?P<user>.{0,256}?)",
    "<ID>": r"(?P<id>[0-9A-Za-z]{4,64})",
    "<COUNT>": r"(?P<count>[0-9]{1,6})",
    "<SESSION>": r"(?P<session>[\w+/=.-]{1,64})",
}

_ID = re.compile(r"[a-z0-9][a-z0-9-]*(?:\.[a-z0-9][a-z0-9-]*)+")
_FILE_KEYS = {"service", "programs", "session", "signature", "sessions"}
_SIGNATURE_KEYS = {"id", "description", "programs", "pattern", "danger", "enabled", "role",
                   "serves", "binds", "session", "examples", "injections", "counterexamples"}
SESSION_KINDS = ("id", "pid")  # the session is <ID> in the pattern, or the record's PID
_EXAMPLE_KEYS = {"line", "address", "context"}
_SESSION_KEYS = {"description", "lines", "attempts"}

# What a matching line says about attempts (see attempts.py and rules/README.md).
ATTEMPT = "attempt"            # the daemon's report of one failed login, probe or abuse
CORROBORATES = "corroborates"  # a further report of an attempt another line reports
COUNT = "count"                # carries how many attempts its session made: <COUNT>
ROLES = (ATTEMPT, CORROBORATES, COUNT)
# The most attempts one line of the role "count" reports. A session ends long
# before (Postfix's smtpd_hard_error_limit, 20 by default, counts each failed
# AUTH); a line claiming more (a forged `auth=0/999999`) must not weigh more.
MAX_COUNT = 100


class RuleError(SyslogbanError):
    """A rule file that cannot be used, with where and why."""


@dataclass(frozen=True, slots=True)
class Example:
    """An inline example: `address` None means the line must not match."""

    line: str
    address: str | None
    kind: str  # "example", "injection" or "counterexample"
    context: tuple[str, ...] = ()  # lines fed first (the binding of a session id)


@dataclass(frozen=True, slots=True)
class Signature:
    id: str
    service: str
    description: str
    programs: tuple[str, ...]  # glob patterns; empty: any record, bare ones too
    pattern: str               # as written, with placeholders
    regex: re.Pattern[str]
    literal: str               # lower case when `caseless`
    caseless: bool
    prefilter: str             # for the scanner: see _prefilter
    danger: int = DEFAULT_DANGER
    enabled: bool = True
    binds: bool = False        # records session -> <ADDR> for later records; no attack
    resolves: bool = False     # an attack whose address is the one bound to its session
    by_pid: bool = False       # the session is the record's PID, not an <ID> in the text
    examples: tuple[Example, ...] = ()
    source: str = "<command line>"
    role: str = ATTEMPT
    serves: tuple[str, ...] = ()  # other services whose attempts its lines also report
    sessioned: bool = False       # its <SESSION> names the session of its attempts


@dataclass(frozen=True, slots=True)
class SessionExample:
    """A rule file's multi-line example: the attempts each address made in it."""

    description: str
    lines: tuple[str, ...]
    attempts: tuple[tuple[str, int], ...]  # (address, failed logins), as written
    source: str


def bundled_rules_dir() -> Path:
    return Path(str(resources.files("syslogban.rules")))


def rule_files(dirs: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for directory in dirs:
        if not directory.is_dir():
            raise RuleError(f"{directory}: not a directory of rule files")
        files.extend(sorted(directory.glob("*.toml")))
    return files


def load_rules(dirs: Iterable[Path] | None = None) -> list[Signature]:
    """All signatures of the rule files in `dirs` (default: the bundled rules)."""
    dirs = [bundled_rules_dir()] if dirs is None else list(dirs)
    files = rule_files(dirs)
    if not files:
        raise RuleError(f"{', '.join(map(str, dirs))}: no rule files (*.toml)")
    signatures: list[Signature] = []
    seen: dict[str, str] = {}
    for path in files:
        for signature in load_file(path):
            if signature.id in seen:
                raise RuleError(f"{path}: {signature.id}: duplicate id "
                                f"(already defined in {seen[signature.id]})")
            seen[signature.id] = str(path)
            signatures.append(signature)
    return signatures


def load_file(path: Path) -> list[Signature]:
    return parse_rules(_read(path), str(path))


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise RuleError(f"{path}: cannot read: not UTF-8 text ({exc.reason} at byte "
                        f"{exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{path}: not valid TOML: {exc}") from None


def load_session_examples(dirs: Iterable[Path] | None = None) -> list[SessionExample]:
    """The [[session_example]] tables of the rule files in `dirs` (default: bundled)."""
    dirs = [bundled_rules_dir()] if dirs is None else list(dirs)
    return [example for path in rule_files(dirs)
            for example in parse_session_examples(_read(path), str(path))]


def parse_session_examples(data: dict[str, Any], source: str) -> list[SessionExample]:
    tables = data.get("session_example", [])
    if not isinstance(tables, list):
        raise RuleError(f"{source}: 'session_example' must be [[session_example]] tables")
    examples = []
    for number, table in enumerate(tables, start=1):
        where = f"{source}: session_example #{number}"
        if not isinstance(table, dict) or set(table) - _SESSION_KEYS:
            raise RuleError(f"{where}: a session example has the keys "
                            f"{_names(_SESSION_KEYS)}")
        description, lines, attempts = (table.get(k) for k in ("description", "lines",
                                                               "attempts"))
        if not isinstance(description, str) or not description.strip():
            raise RuleError(f"{where}: 'description' is missing")
        if (not isinstance(lines, list) or not lines
                or not all(isinstance(line, str) for line in lines)):
            raise RuleError(f"{where}: 'lines' must list the session's log lines")
        if not isinstance(attempts, dict) or not attempts:
            raise RuleError(f"{where}: 'attempts' must map addresses to failed logins, "
                            'e.g. { "192.0.2.7" = 3 }')
        expected = []
        for address, count in attempts.items():
            normal = normalize_address(address)
            if normal is None:
                raise RuleError(f"{where}: '{address}' in 'attempts' is not an IP address")
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise RuleError(f"{where}: the attempts of {address} must be a whole number")
            expected.append((normal, count))
        examples.append(SessionExample(description, tuple(lines), tuple(expected), source))
    return examples


def parse_rules(data: dict[str, Any], source: str) -> list[Signature]:
    unknown = set(data) - _FILE_KEYS - {"session_example"}
    if unknown:
        raise RuleError(f"{source}: unknown key {_names(unknown)} "
                        f"(a file has {_names(_FILE_KEYS)})")
    service = data.get("service")
    if not isinstance(service, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", service):
        raise RuleError(f"{source}: 'service' must be a lower-case name like \"postfix\"")
    default_programs = data.get("programs")
    default_session = data.get("session", "id")
    tables = data.get("signature")
    if not isinstance(tables, list) or not tables:
        raise RuleError(f"{source}: no [[signature]] tables")
    signatures: list[Signature] = []
    ids: set[str] = set()
    for number, table in enumerate(tables, start=1):
        name = table.get("id") if isinstance(table, dict) else None
        where = f"{source}: {name if isinstance(name, str) else f'signature #{number}'}"
        try:
            signature = _parse_signature(table, service, default_programs, default_session,
                                         source)
        except RuleError as exc:
            raise RuleError(f"{where}: {exc}") from None
        if signature.id in ids:
            raise RuleError(f"{where}: duplicate id")
        ids.add(signature.id)
        signatures.append(signature)
    return signatures


def _parse_signature(table: Any, service: str, default_programs: Any, default_session: Any,
                     source: str) -> Signature:
    if not isinstance(table, dict):
        raise RuleError("a [[signature]] must be a table")
    unknown = set(table) - _SIGNATURE_KEYS
    if unknown:
        raise RuleError(f"unknown key {_names(unknown)} (a signature has "
                        f"{_names(_SIGNATURE_KEYS)})")
    sig_id = table.get("id")
    if not isinstance(sig_id, str) or not _ID.fullmatch(sig_id):
        raise RuleError("'id' must look like \"service.short-name\"")
    if not sig_id.startswith(service + "."):
        raise RuleError(f"id must start with the file's service \"{service}.\"")
    description = table.get("description")
    if not isinstance(description, str) or not description.strip():
        raise RuleError("'description' is missing")
    programs = table.get("programs", default_programs)
    if programs is None:
        raise RuleError("no 'programs': say which program tags this signature applies to")
    if not isinstance(programs, list) or not all(isinstance(p, str) and p for p in programs):
        raise RuleError("'programs' must be a list of program tags (globs allowed)")
    pattern = table.get("pattern")
    if not isinstance(pattern, str):
        raise RuleError("'pattern' is missing")
    danger = table.get("danger", DEFAULT_DANGER)
    if not isinstance(danger, int) or isinstance(danger, bool) or not 0 < danger <= 1000:
        raise RuleError("'danger' must be a whole number from 1 to 1000")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError("'enabled' must be true or false")
    binds = table.get("binds", False)
    if not isinstance(binds, bool):
        raise RuleError("'binds' must be true or false")
    session = table.get("session", default_session)
    if session not in SESSION_KINDS:
        raise RuleError("'session' must be \"id\" (an <ID> in the pattern) or \"pid\" "
                        "(the process id of the record)")
    role = table.get("role", ATTEMPT)
    if role not in ROLES:
        raise RuleError(f"'role' must be one of {', '.join(ROLES)}")
    if binds and "role" in table:
        raise RuleError("a binding signature ('binds = true') is no attack: it has no 'role'")
    serves = table.get("serves", [])
    if not isinstance(serves, list) or not all(
            isinstance(name, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]*", name)
            for name in serves):
        raise RuleError("'serves' must be a list of service names like [\"postfix\"]")
    examples = (_examples(table, "examples", required_address=True)
                + _examples(table, "injections", required_address=False)
                + _counterexamples(table))
    return make_signature(sig_id, service, description, tuple(programs), pattern,
                          danger=danger, enabled=enabled, binds=binds,
                          by_pid=session == "pid", examples=examples, source=source,
                          role=role, serves=tuple(serves))


def make_signature(sig_id: str, service: str, description: str,
                   programs: tuple[str, ...], pattern: str, *,
                   danger: int = DEFAULT_DANGER, enabled: bool = True, binds: bool = False,
                   by_pid: bool = False, examples: tuple[Example, ...] = (),
                   source: str = "<command line>", role: str = ATTEMPT,
                   serves: tuple[str, ...] = ()) -> Signature:
    regex, literal, caseless, prefilter = compile_pattern(pattern, binds, by_pid, role)
    resolves = not binds and "<ADDR>" not in pattern
    return Signature(sig_id, service, description, programs, pattern, regex, literal,
                     caseless, prefilter, danger, enabled, binds, resolves, by_pid,
                     examples, source, role, serves, "<SESSION>" in pattern)


def compile_pattern(pattern: str, binds: bool = False, by_pid: bool = False,
                    role: str = ATTEMPT) -> tuple[re.Pattern[str], str, bool, str]:
    """The compiled pattern, its literal, whether that is caseless, its prefilter."""
    addrs, ids = pattern.count("<ADDR>"), pattern.count("<ID>")
    if pattern.count("<COUNT>") != (1 if role == COUNT and not binds else 0):
        raise RuleError("a pattern contains <COUNT> (exactly once) if and only if its "
                        "'role' is \"count\"")
    if by_pid:
        if ids or addrs > 1 or (binds and addrs != 1):
            raise RuleError("with 'session = \"pid\"' the pattern has no <ID>; <ADDR> at "
                            "most once, and exactly once when it binds")
    elif binds and (addrs, ids) != (1, 1):
        raise RuleError("a binding pattern ('binds = true') must contain <ID> and <ADDR> "
                        "exactly once each")
    elif not binds and (addrs, ids) not in ((1, 0), (0, 1)):
        raise RuleError("the pattern must contain <ADDR> exactly once, or instead <ID> "
                        "once for the address that a binding signature recorded")
    for name in ("<PORT>", "<USER>", "<SESSION>"):
        if pattern.count(name) > 1:
            raise RuleError(f"the pattern may contain {name} only once")
    if "<SESSION>" in pattern and (binds or addrs != 1):
        raise RuleError("<SESSION> (a session id next to the address) goes in a pattern with "
                        "<ADDR> that does not bind")
    expanded = pattern
    for name, regex in PLACEHOLDERS.items():
        expanded = expanded.replace(name, regex)
    try:
        compiled = re.compile(expanded)
    except (re.error, OverflowError, RecursionError) as exc:  # huge bounds, deep nesting
        # exc.pos counts in the pattern with its placeholders expanded: not the author's
        reason = exc.msg if isinstance(exc, re.error) else exc
        raise RuleError(f"bad regular expression: {reason}") from None
    caseless = bool(compiled.flags & re.IGNORECASE)
    parsed = sre_parse.parse(expanded)
    literal = _longest_literal(parsed)
    if len(literal) < MIN_LITERAL:
        raise RuleError(f"the pattern needs a fixed text of at least {MIN_LITERAL} "
                        "characters outside groups, alternatives and repeats "
                        "(it lets most records be skipped without matching)")
    return compiled, literal.lower() if caseless else literal, caseless, _prefilter(parsed)


def _longest_literal(parsed: Any) -> str:
    """The longest run of literal ASCII characters every match must contain."""
    best = ""
    run: list[str] = []

    def flush() -> None:
        nonlocal best
        if len(run) > len(best):
            best = "".join(run)
        run.clear()

    def walk(items: Any) -> None:
        for op, arg in items:
            if op is sre_parse.LITERAL and arg < 128:
                run.append(chr(arg))
            elif op is sre_parse.SUBPATTERN and not arg[1] and not arg[2]:
                walk(arg[3])  # a plain group is just a sequence
            elif op is sre_parse.AT:
                continue  # anchors are zero-width: the run goes on
            else:
                flush()
    walk(parsed)
    flush()
    return best


_ANY = "[^\\n]*"  # the prefilter's "anything within the line"


def _prefilter(parsed: Any) -> str:
    """A Hyperscan expression that every line holding a match also matches.

    It keeps the pattern's literal characters and its alternatives of them, in
    order, and widens everything else to "anything within the line"; lookaround
    is dropped. So it accepts a superset of the lines the pattern accepts,
    made of the parts Hyperscan finds fastest, and far more selective than one
    literal: `disconnect from ...auth=0/` skips the ordinary disconnects.
    """
    def walk(items: Any) -> list[str]:
        out: list[str] = []
        for op, arg in items:
            if op is sre_parse.LITERAL and arg < 128:
                out.append("\\x%02x" % arg)
            elif op is sre_parse.SUBPATTERN and not arg[1] and not arg[2]:
                out.extend(walk(arg[3]))
            elif op is sre_parse.BRANCH:
                branches = ["".join(walk(b)) for b in arg[1]]
                out.append(_ANY if {"", _ANY} & set(branches)
                           else f"(?:{'|'.join(branches)})")
            elif op in (sre_parse.AT, sre_parse.ASSERT, sre_parse.ASSERT_NOT):
                continue  # zero-width: dropping it only widens
            elif not out or out[-1] != _ANY:
                out.append(_ANY)
        return out
    return "".join(_trim(walk(parsed)))


def _trim(parts: list[str]) -> list[str]:
    """Without weak ends: "anything" and literal runs too short to look for.

    The search is unanchored, so any prefix or suffix can go; short ones only
    make Hyperscan track partial matches that common characters keep alive.
    """
    def weak_end(indices: range) -> int:
        """How many leading parts (in the order of `indices`) are weak."""
        cut = run = 0
        for count, i in enumerate(indices, start=1):
            if parts[i] == _ANY:
                cut, run = count, 0
            elif parts[i].startswith("\\x"):
                run += 1
                if run >= MIN_LITERAL:
                    break
            else:
                break
        return cut
    start = weak_end(range(len(parts)))
    end = len(parts) - weak_end(range(len(parts) - 1, start - 1, -1))
    return parts[start:end]


def _examples(table: dict[str, Any], key: str, *, required_address: bool) -> tuple[Example, ...]:
    items = table.get(key)
    if not isinstance(items, list) or not items:
        raise RuleError(f"'{key}' is missing: every signature needs at least one")
    result = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("line"), str):
            raise RuleError(f"each of '{key}' must be a table with a 'line'")
        unknown = set(item) - _EXAMPLE_KEYS
        if unknown:
            raise RuleError(f"unknown key {_names(unknown)} in '{key}'")
        context = item.get("context", [])
        if not isinstance(context, list) or not all(isinstance(c, str) for c in context):
            raise RuleError(f"'context' in '{key}' must be a list of lines")
        address = item.get("address")
        if address is None and required_address:
            raise RuleError(f"an entry of '{key}' has no 'address': {item['line']!r}")
        if address is not None:
            normal = normalize_address(address) if isinstance(address, str) else None
            if normal is None:
                raise RuleError(f"'{address}' in '{key}' is not an IP address")
            address = normal
        result.append(Example(item["line"], address, key.rstrip("s"), tuple(context)))
    return tuple(result)


def _counterexamples(table: dict[str, Any]) -> tuple[Example, ...]:
    items = table.get("counterexamples")
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise RuleError("'counterexamples' must list at least one line that must not match")
    return tuple(Example(line, None, "counterexample") for line in items)


def select(signatures: Sequence[Signature], enable: Iterable[str] = (),
           disable: Iterable[str] = ()) -> list[Signature]:
    """The signatures in effect: defaults, then --enable, then --disable.

    Each name is a signature id, a service name or "all"; an unknown name is an
    error (a typo must not silently leave a service unprotected).
    """
    enable, disable = list(enable), list(disable)
    known = {s.id for s in signatures} | {s.service for s in signatures} | {"all"}
    for name in enable + disable:
        if name not in known:
            raise RuleError(f"unknown signature or service '{name}' "
                            "(see 'syslogban rules list')")

    def named(signature: Signature, names: list[str]) -> bool:
        return any(n in ("all", signature.id, signature.service) for n in names)

    chosen = [s for s in signatures
              if (s.enabled or named(s, enable)) and not named(s, disable)]
    # A binding serves only the resolving signatures of its service and kind of
    # session; without one in use it would only cost time (every Sendmail
    # envelope record is a binding).
    served = {(s.service, s.by_pid) for s in chosen if s.resolves}
    return [s for s in chosen if not s.binds or (s.service, s.by_pid) in served]


def _names(keys: Iterable[str]) -> str:
    return ", ".join(f"'{k}'" for k in sorted(keys))


# Risky constructs: what `syslogban rules check` warns about.
#
# A pattern runs on text that an attacker partly writes, once per candidate
# record, so a pattern whose matching time grows faster than the record (ReDoS)
# lets one client stall the whole pipeline. Python's re backtracks; these are
# the shapes that make it backtrack badly. They are warnings, not errors: each
# is sometimes harmless, and tests/test_redos.py times the bundled rules on
# adversarial input.

HUGE_REPEAT = 10_000      # a bound above this: far beyond a record (8 KiB by default)
BOUNDING_LITERAL = 3      # a fixed text this long after `.*` limits its backtracking
_REPEATS = (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT)  # possessive ones never backtrack
_PLACEHOLDER_GROUPS = {"addr": "<ADDR>", "port": "<PORT>", "user": "<USER>", "id": "<ID>",
                       "count": "<COUNT>", "session": "<SESSION>"}


def risks(signature: Signature) -> list[str]:
    """Warnings about constructs of the signature's pattern that can backtrack badly.

    * nested quantifiers: a repeat whose body holds an unbounded repeat, like
      `(a+)+` or `(\\w+\\s?)*`: on a near miss the engine tries every way of
      splitting the text between the two, exponentially many;
    * unanchored .* before <ADDR>: an unbounded repeat of a broad class (`.`,
      a negated class such as `\\S` or `[^,]`, a tempered `(?:(?!x).)`) in the
      pattern's top-level sequence before <ADDR>, not followed by a fixed text
      of at least BOUNDING_LITERAL characters (after at most single
      characters) that pins where it may stop: every backtracking step tries
      <ADDR> and what follows again;
    * huge bounds: a repeat bound above HUGE_REPEAT, far beyond any record.

    Pure: it looks at the parsed pattern only, and never runs it.
    """
    parsed = sre_parse.parse(signature.regex.pattern, signature.regex.flags)
    names = {number: _PLACEHOLDER_GROUPS.get(name, name)
             for name, number in signature.regex.groupindex.items()}
    found: list[str] = []
    _nested_repeats(parsed, names, found)
    addr = signature.regex.groupindex.get("addr")
    if addr is not None:
        _broad_before_addr(parsed, addr, names, found)
    _huge_bounds(parsed, names, found)
    return list(dict.fromkeys(found))  # each construct once, by kind


def _children(op: Any, arg: Any) -> list[Any]:
    """The sub-sequences of one parse-tree node."""
    if op is sre_parse.SUBPATTERN:
        return [arg[3]]
    if op in (*_REPEATS, sre_parse.POSSESSIVE_REPEAT):
        return [arg[2]]
    if op is sre_parse.BRANCH:
        return list(arg[1])
    if op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
        return [arg[1]]
    if op is sre_parse.ATOMIC_GROUP:
        return [arg]
    if op is sre_parse.GROUPREF_EXISTS:
        return [arg[1]] + ([arg[2]] if arg[2] is not None else [])
    return []


def _has_unbounded_repeat(items: Any) -> bool:
    """Whether a backtracking repeat without upper bound occurs anywhere in `items`."""
    for op, arg in items:
        if op in _REPEATS and arg[1] == sre_parse.MAXREPEAT:
            return True
        if op is not sre_parse.ATOMIC_GROUP and any(
                _has_unbounded_repeat(child) for child in _children(op, arg)):
            return True
    return False


def _nested_repeats(items: Any, names: dict[int, str], found: list[str]) -> None:
    for op, arg in items:
        if op in _REPEATS and arg[1] > 1 and _has_unbounded_repeat(arg[2]):
            found.append(f"nested quantifiers: {_show([(op, arg)], names)} repeats a "
                         "group holding an unbounded repeat; on a near miss the engine "
                         "tries every way of splitting the text between them "
                         "(catastrophic backtracking)")
            continue  # the inner repeats are part of this one warning
        if op is not sre_parse.ATOMIC_GROUP:  # an atomic group never backtracks into itself
            for child in _children(op, arg):
                _nested_repeats(child, names, found)


def _huge_bounds(items: Any, names: dict[int, str], found: list[str]) -> None:
    for op, arg in items:
        if op in (*_REPEATS, sre_parse.POSSESSIVE_REPEAT):
            low, high = arg[0], arg[1]
            if low > HUGE_REPEAT or (high != sre_parse.MAXREPEAT and high > HUGE_REPEAT):
                found.append(f"huge repeat bound: {_show([(op, arg)], names)} has a bound "
                             f"above {HUGE_REPEAT}, far beyond any record; use a bound "
                             "a record can reach")
        for child in _children(op, arg):
            _huge_bounds(child, names, found)


def _is_broad(items: Any) -> bool:
    """Whether `items` is one character class that accepts almost anything:
    `.`, `[^...]`, `\\S`, `\\D`, `\\W` (a whole field and its delimiters), also
    in a group or tempered by a lookahead like `(?:(?!, ).)`."""
    items = [(op, arg) for op, arg in items
             if op not in (sre_parse.AT, sre_parse.ASSERT, sre_parse.ASSERT_NOT)]
    if len(items) != 1:
        return False
    op, arg = items[0]
    if op is sre_parse.SUBPATTERN:
        return _is_broad(arg[3])
    if op in (sre_parse.ANY, sre_parse.NOT_LITERAL):
        return True
    if op is sre_parse.IN:
        return any(o is sre_parse.NEGATE
                   or (o is sre_parse.CATEGORY and a in (sre_parse.CATEGORY_NOT_SPACE,
                                                          sre_parse.CATEGORY_NOT_DIGIT,
                                                          sre_parse.CATEGORY_NOT_WORD))
                   for o, a in arg)
    return False


def _top_level(items: Any, addr: int, optional: bool = False) -> list[tuple[Any, Any, bool]]:
    """The pattern's top-level sequence up to <ADDR> as (op, arg, optional).

    Groups are opened (their items are in sequence) and so are optional parts
    `(...)?`, whose items are marked optional; the sequence ends at <ADDR>,
    which is the last item.
    """
    out: list[tuple[Any, Any, bool]] = []
    for op, arg in items:
        if op is sre_parse.SUBPATTERN and arg[0] != addr:
            out.extend(_top_level(arg[3], addr, optional))
        elif op in _REPEATS and (arg[0], arg[1]) == (0, 1):
            out.extend(_top_level(arg[2], addr, True))
        else:
            out.append((op, arg, optional))
        if out and out[-1][0] is sre_parse.SUBPATTERN and out[-1][1][0] == addr:
            break
    return out


def _broad_before_addr(parsed: Any, addr: int, names: dict[int, str],
                       found: list[str]) -> None:
    items = _top_level(parsed, addr)
    if not items or items[-1][0] is not sre_parse.SUBPATTERN or items[-1][1][0] != addr:
        return  # <ADDR> is inside an alternative or a repeat: no top-level sequence
    for index, (op, arg, _) in enumerate(items):
        if (op in _REPEATS and arg[1] == sre_parse.MAXREPEAT and _is_broad(arg[2])
                and not _bounded_after(items[index + 1:])):
            found.append(f"unanchored .* before <ADDR>: {_show([(op, arg)], names)} is not "
                         f"followed by a fixed text of at least {BOUNDING_LITERAL} "
                         "characters, so on a near miss it backtracks over the rest of "
                         "the record, trying <ADDR> and all that follows at every step")


def _bounded_after(items: list[tuple[Any, Any, bool]]) -> bool:
    """Whether a fixed text of BOUNDING_LITERAL characters follows, after at
    most single characters (zero-width assertions do not count)."""
    run = 0
    for op, _arg, optional in items:
        if op in (sre_parse.AT, sre_parse.ASSERT, sre_parse.ASSERT_NOT):
            continue
        if op is sre_parse.LITERAL and not optional:
            run += 1
            if run >= BOUNDING_LITERAL:
                return True
            continue
        if op not in (sre_parse.LITERAL, sre_parse.NOT_LITERAL, sre_parse.ANY, sre_parse.IN):
            return False
        run = 0  # a single character: the fixed text may still follow
    return False


# Rendering parse trees back into (roughly) the pattern, for warnings.

_SPECIAL = set(".^$*+?{}[]\\|()")
_CATEGORY_TEXT = {
    sre_parse.CATEGORY_DIGIT: r"\d", sre_parse.CATEGORY_NOT_DIGIT: r"\D",
    sre_parse.CATEGORY_SPACE: r"\s", sre_parse.CATEGORY_NOT_SPACE: r"\S",
    sre_parse.CATEGORY_WORD: r"\w", sre_parse.CATEGORY_NOT_WORD: r"\W",
}
_AT_TEXT = {
    sre_parse.AT_BEGINNING: "^", sre_parse.AT_END: "$", sre_parse.AT_BOUNDARY: r"\b",
    sre_parse.AT_NON_BOUNDARY: r"\B", sre_parse.AT_BEGINNING_STRING: r"\A",
    sre_parse.AT_END_STRING: r"\Z",
}
_SHOW_LIMIT = 60


def _show(items: Any, names: dict[int, str]) -> str:
    """`items` as pattern text, placeholders by name, cut to _SHOW_LIMIT characters."""
    text = _render(items, names)
    return f"'{text}'" if len(text) <= _SHOW_LIMIT else f"'{text[:_SHOW_LIMIT - 3]}...'"


def _char(code: int, in_class: bool = False) -> str:
    ch = chr(code)
    if ch in _SPECIAL or (in_class and ch in "^-"):
        return "\\" + ch
    return ch if ch.isprintable() else f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"


def _render(items: Any, names: dict[int, str]) -> str:
    out = []
    for op, arg in items:
        if op is sre_parse.LITERAL:
            out.append(_char(arg))
        elif op is sre_parse.NOT_LITERAL:
            out.append(f"[^{_char(arg, True)}]")
        elif op is sre_parse.ANY:
            out.append(".")
        elif op is sre_parse.IN:
            out.append(_render_class(arg))
        elif op in (*_REPEATS, sre_parse.POSSESSIVE_REPEAT):
            low, high, body = arg
            inner = _render(body, names)
            if len(body) != 1 or body[0][0] in (sre_parse.BRANCH,):
                inner = f"(?:{inner})"
            quantifier = {(0, sre_parse.MAXREPEAT): "*", (1, sre_parse.MAXREPEAT): "+",
                          (0, 1): "?"}.get((low, high))
            if quantifier is None:
                quantifier = ("{%d}" % low if low == high else "{%d,}" % low
                              if high == sre_parse.MAXREPEAT else "{%d,%d}" % (low, high))
            suffix = ("?" if op is sre_parse.MIN_REPEAT
                      else "+" if op is sre_parse.POSSESSIVE_REPEAT else "")
            out.append(inner + quantifier + suffix)
        elif op is sre_parse.SUBPATTERN:
            group, body = arg[0], arg[3]
            if group in names and names[group].startswith("<"):
                out.append(names[group])
            elif group is not None:
                name = names.get(group)
                out.append(f"(?P<{name}>" if name else "(")
                out.append(_render(body, names) + ")")
            else:
                out.append(f"(?:{_render(body, names)})")
        elif op is sre_parse.BRANCH:
            out.append("|".join(_render(branch, names) for branch in arg[1]))
        elif op is sre_parse.AT:
            out.append(_AT_TEXT.get(arg, ""))
        elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
            kind = ("=" if op is sre_parse.ASSERT else "!")
            out.append(f"(?{'<' if arg[0] < 0 else ''}{kind}{_render(arg[1], names)})")
        elif op is sre_parse.ATOMIC_GROUP:
            out.append(f"(?>{_render(arg, names)})")
        elif op is sre_parse.GROUPREF:
            out.append(f"(?P={names[arg]})" if arg in names else f"\\{arg}")
        else:
            out.append("...")
    return "".join(out)


def _render_class(items: Any) -> str:
    if len(items) == 1 and items[0][0] is sre_parse.CATEGORY:
        return _CATEGORY_TEXT.get(items[0][1], "[...]")
    parts = []
    for op, arg in items:
        if op is sre_parse.NEGATE:
            parts.append("^")
        elif op is sre_parse.LITERAL:
            parts.append(_char(arg, True))
        elif op is sre_parse.RANGE:
            parts.append(f"{_char(arg[0], True)}-{_char(arg[1], True)}")
        elif op is sre_parse.CATEGORY:
            parts.append(_CATEGORY_TEXT.get(arg, ""))
    return f"[{''.join(parts)}]"
