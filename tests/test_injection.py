"""Injection suite: for each service, every way text a client controls can
carry an address; none may make syslogban block that address.

Each template (tests/injection_templates.py) is a real log line of a daemon
with a placeholder in every field a remote client or a local user controls.
Every field gets a battery of payloads carrying a foreign address (6.6.6.6,
2001:db8:6666::6) in every shape we could think of: the daemons' own address
fields, whole fake records of every bundled signature (derived from the rule
files' own examples), closers of the field's delimiters, fake daemon tails,
Unicode lookalikes, control characters, and padding up to and past the record
size limit; then all fields at once, then seeded random combinations of
delimiters and daemon fragments. Every line goes the whole way of a real
record, through the real pipeline (scanner, record parser, matcher) with ALL
signatures enabled; session bindings (OpenSMTPD, Sendmail, sshd) are fed
first, in the same case.

The properties, for every detection of every case:
* its address is the real client's (192.0.2.77 or 2001:db8:77::77, as the
  case writes it), never the foreign one, never the server's own, and no
  address at all when the line names no client;
* it occurs literally in the record it was taken from (normalised), or for a
  session signature in the case's binding record;
* records that hold a line break, NUL, another control character, invalid
  UTF-8 or more than 8 KiB are rejected whole, the others accepted.
And, over every detection of the suite, the blocker never blocks a foreign
address (nor a prefix that holds one).

`pytest -s tests/test_injection.py` prints per service how many lines were
generated and how many were detected with the right address.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache

import pytest

import injection_templates as it
from conftest import NOW, UTC
from syslogban.address import normalize_address
from syslogban.blocker import Aggregation, Blocker, BlockerConfig
from syslogban.correlation import Correlator
from syslogban.attempts import Counted
from syslogban.matcher import Attack, Matcher
from syslogban.pipeline import Detection, Pipeline
from syslogban.record import DEFAULT_MAX_SIZE, Malformed, RecordParser
from syslogban.scanner import Scanner
from syslogban.signatures import Signature, load_rules, select

SERVICES = sorted(it.TEMPLATES)
SIGNATURES: tuple[Signature, ...] = tuple(select(load_rules(), enable=["all"]))
BY_ID = {s.id: s for s in SIGNATURES}
FUZZ_PER_TEMPLATE = 100
# Foreign addresses in every spelling a payload uses, normalised.
FOREIGN = frozenset(a for a in (normalize_address(t) for t in (
    it.FOREIGN4, it.FOREIGN6, "::ffff:6.6.6.6", "0:0:0:0:0:ffff:606:606", "::6.6.6.6")) if a)
REALS = {4: it.REAL4, 6: it.REAL6}


@dataclass(frozen=True)
class Known:
    """An injection found and not fixed yet: foreign detections by these
    signatures in cases of these templates. They are left out of
    test_no_injection and the blocker test, and asserted in
    test_known_injection, strictly expected to fail: a fix shows as XPASS."""

    templates: frozenset[str]
    signatures: frozenset[str]
    reason: str


# Injections found and fixed (kept as inline examples in the rule files):
# Dovecot passdb signatures reading a PAM record's trailing user name or a
# plain given password; Exim's DN="..."/SNI="..." swallowing the real host
# description after a junk HELO.
KNOWN: dict[str, Known] = {}


# ------------------------------------------------------------------ cases

@dataclass
class Case:
    template: it.Template
    field: str          # the field under attack; "*" all of them; "-" none (neutral)
    payload: str        # the payload's name
    real: str | None    # the normalised real client address; None: the line names none
    lines: list[bytes]  # whole records, context first

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.template.name, self.field, self.payload)


def _plant(message: str, signatures: tuple[Signature, ...], foreign: str) -> str | None:
    """`message` with the address a signature takes from it replaced by `foreign`."""
    for s in signatures:
        if "addr" not in s.regex.groupindex:
            continue
        m = s.regex.match(message)
        if m is not None:
            return message[:m.start("addr")] + foreign + message[m.end("addr"):]
    return None


def _tag(signature: Signature) -> str:
    glob = signature.programs[0] if signature.programs else "x"
    return glob.replace("(*)", "(1)").replace("*", "")


@cache
def example_fakes() -> tuple[tuple[str, str], ...]:
    """A whole fake record of every signature: its first example's message with
    the address replaced by a foreign one, bare and behind a fake syslog header."""
    parser = RecordParser(DEFAULT_MAX_SIZE, UTC)
    fakes: list[tuple[str, str]] = []
    for i, signature in enumerate(SIGNATURES):
        example = next(e for e in signature.examples if e.kind == "example")
        foreign = it.FOREIGN4 if i % 2 == 0 else it.FOREIGN6
        messages = []
        line_msg = parser.parse(example.line.encode(), NOW).message
        if signature.resolves:
            messages.append(line_msg)  # no address in it: a session record
            for context in example.context:
                planted = _plant(parser.parse(context.encode(), NOW).message, SIGNATURES, foreign)
                if planted is not None:
                    messages.insert(0, planted)
        else:
            planted = _plant(line_msg, (signature,), foreign)
            assert planted is not None, signature.id
            messages.append(planted)
        for message in messages:
            fakes.append((f"{signature.id} bare", message))
            fakes.append((f"{signature.id} header",
                          f"Nov 21 10:00:27 mx1 {_tag(signature)}[1]: {message}"))
        # Every example that ends in a closing delimiter, without it: the
        # daemon's own closing character (of a quoted command, a given
        # password in parentheses, a <sender>) completes the fake.
        if signature.resolves:
            continue
        for j, other in enumerate(e for e in signature.examples if e.kind == "example"):
            message = parser.parse(other.line.encode(), NOW).message.rstrip()
            planted = _plant(message, (signature,), foreign)
            if planted is not None and planted[-1:] in ")>]\"'":
                fakes.append((f"{signature.id} open {j}", planted[:-1]))
    return tuple(fakes)


@cache
def battery() -> tuple[it.Payload, ...]:
    return tuple(it.payloads(example_fakes()))


def _written(template: it.Template, family: int) -> tuple[str, str]:
    """The real address as the template's daemon writes it, and plain."""
    plain = REALS[family]
    return (template.addr4 if family == 4 else template.addr6).format(a=plain), plain


def render(template: it.Template, values: dict[str, str | it.Payload], family: int,
           style: str) -> list[bytes]:
    written, plain = _written(template, family)
    head = it.header(style, template.program, template.pid)

    def one(message: str, fill: dict[str, str]) -> bytes:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            return written if name == "addr" else plain if name == "ip" else fill[name]
        return (head + re.sub(r"\{(\w+)\}", sub, message)).encode("utf-8", "surrogateescape")

    neutral = {n: template.value(n) for n in template.fields}
    lines = []
    for message in template.messages:
        fill = dict(neutral)
        for name, value in values.items():
            if isinstance(value, it.Payload):  # padding is measured on the line
                value = value.render(lambda text: one(message, {**neutral, name: text}))
            fill[name] = value
        lines.append(one(message, fill))
    return lines


def cases(template: it.Template) -> list[Case]:
    """Every case of one template: neutral, each field x each payload, all
    fields x each payload, seeded random combinations."""
    out: list[Case] = []
    styles = template.headers

    def add(field_name: str, payload: str, values: dict[str, str | it.Payload]) -> None:
        n = len(out)
        family = 4 if n % 2 == 0 else 6
        style = styles[(n // 2) % len(styles)]
        real = REALS[family] if template.has_client else None
        out.append(Case(template, field_name, payload, real,
                        render(template, values, family, style)))

    for style in styles:  # every header style, both families
        for family in (4, 6):
            out.append(Case(template, "-", f"neutral {style}",
                            REALS[family] if template.has_client else None,
                            render(template, {}, family, style)))
    for name, kind in template.fields.items():
        for payload in (it.HOST_PAYLOADS if kind == it.HOST else battery()):
            if kind == it.HOST or it.fits(kind, payload.text):
                add(name, payload.name, {name: payload})
    free = [n for n, k in template.fields.items() if k != it.HOST]
    if len(free) > 1:
        for payload in battery():
            if not payload.every_field:
                continue
            add("*", payload.name, {n: payload for n in free
                                    if it.fits(template.fields[n], payload.text)})
    for name, values in it.pair_values(template):
        add("pair", name, dict(values))
    for i, values in enumerate(it.fuzz_values(template, FUZZ_PER_TEMPLATE)):
        add("fuzz", f"fuzz {i} {values!r}", dict(values))
    return out


# --------------------------------------------------------------- checking

_CANDIDATE = re.compile(r"[0-9A-Fa-f:.]*[:.][0-9A-Fa-f:.]*(?:%[\w.-]+)?")
_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def literal_addresses(text: str) -> set[str]:
    """Every address written in `text`, normalised (sendmail's "IPv6:" prefix,
    zone ids and trailing punctuation taken off)."""
    found = set()
    for token in _CANDIDATE.findall(text.replace("IPv6:", " ")):
        address = normalize_address(token.rstrip(".:"))
        if address is not None:
            found.add(address)
    return found


def occurs(address: str, text: str) -> bool:
    """Whether `address` is written in `text` (in any spelling)."""
    if re.search(rf"(?<![\w:.]){re.escape(address)}(?![\w:]|\.\d)", text):
        return True  # as itself, standing alone: the usual case, and quick
    return address in literal_addresses(text)


def must_reject(record: bytes) -> bool:
    """The record rules of README/record.py, restated: whole records only."""
    body = record[:-1] if record.endswith(b"\n") else record
    body = body[:-1] if body.endswith(b"\r") else body
    if len(body) > DEFAULT_MAX_SIZE or _BAD.search(body):
        return True
    try:
        return not body.decode("utf-8").strip(" \t")
    except UnicodeDecodeError:
        return True


@dataclass
class Result:
    service: str
    lines: int = 0
    cases: int = 0
    rejected: int = 0
    detections: int = 0
    right: int = 0                 # detections with the real client's address
    foreign: int = 0               # detections with a foreign address
    self_incriminating: int = 0    # detections (real address) on a line that is no attack
    per_template: Counter[str] = field(default_factory=Counter)
    per_signature: Counter[str] = field(default_factory=Counter)
    neutral: dict[str, list[Detection]] = field(default_factory=dict)  # case key -> detections
    violations: list[str] = field(default_factory=list)
    known: dict[str, list[str]] = field(default_factory=dict)  # issue -> cases
    attacks: list[Attack] = field(default_factory=list)        # of cases without known issues
    known_attacks: list[Attack] = field(default_factory=list)  # of cases with one


def make_pipeline(engine: str = "auto") -> Pipeline:
    matcher = Matcher(SIGNATURES)
    scanner = Scanner(matcher.prefilters(), DEFAULT_MAX_SIZE, engine)
    # No timestamps, as the daemon parses (it decides on its own clock).
    return Pipeline(RecordParser(DEFAULT_MAX_SIZE, UTC, timestamps=False), matcher, scanner)


def run_case(pipeline: Pipeline, case: Case) -> tuple[list[Detection], int]:
    """The detections of a case in fresh session bindings, and how many of its
    records were rejected."""
    pipeline.matcher.correlator = Correlator()
    before = pipeline.counters.rejected.total()
    if any(b"\n" in line for line in case.lines):  # records that arrive whole
        found = [d for line in case.lines
                 if (d := pipeline.feed_record(line, NOW)) is not None]
    else:  # a stream of newline-terminated records
        found = pipeline.feed(b"".join(line + b"\n" for line in case.lines), NOW)
    return found, pipeline.counters.rejected.total() - before


def parsed_messages(lines: list[bytes]) -> list[str]:
    parser = RecordParser(DEFAULT_MAX_SIZE, UTC)
    messages = []
    for line in lines:
        try:
            messages.append(parser.parse(line, NOW).message)
        except Malformed:
            pass
    return messages


@dataclass(frozen=True)
class Problem:
    kind: str                # "foreign", "wrong-address", "not-literal", "rejection"
    signature: str | None
    text: str


def check_case(case: Case, found: list[Detection], rejected: int) -> list[Problem]:
    problems = []
    expected_rejects = sum(map(must_reject, case.lines))
    if rejected != expected_rejects:
        problems.append(Problem("rejection", None, f"{rejected} records rejected, expected "
                                                   f"{expected_rejects}"))
    messages: list[str] | None = None
    for d in found:
        address, signature = d.attack.address, d.attack.signature
        if address != case.real:
            kind = "foreign" if address in FOREIGN else "wrong-address"
            problems.append(Problem(kind, signature, f"{kind} address {address} by {signature} "
                                                     f"(real client: {case.real})"))
        if BY_ID[signature].resolves:
            if messages is None:
                messages = parsed_messages(case.lines)
            sources = messages
        else:
            sources = [d.record.message]
        if not any(occurs(address, m) for m in sources):
            problems.append(Problem("not-literal", signature,
                                    f"address {address} by {signature} does not occur literally "
                                    "in the record (or the case's binding record)"))
    return problems


def known_issue(case: Case, problems: list[Problem]) -> str | None:
    """The known injection that explains all of a case's problems, if any."""
    for name, known in KNOWN.items():
        if case.template.name in known.templates and all(
                p.kind == "foreign" and p.signature in known.signatures for p in problems):
            return name
    return None


@cache
def run_service(service: str) -> Result:
    result = Result(service)
    pipeline = make_pipeline()
    for template in it.TEMPLATES[service]:
        for case in cases(template):
            found, rejected = run_case(pipeline, case)
            result.cases += 1
            result.lines += len(case.lines)
            result.rejected += rejected
            if case.field == "-":
                result.neutral[" ".join(case.key)] = found
            problems = check_case(case, found, rejected)
            issue = known_issue(case, problems) if problems else None
            for d in found:
                result.detections += 1
                result.per_signature[d.attack.signature] += 1
                (result.known_attacks if issue else result.attacks).append(d.attack)
                if d.attack.address == case.real:
                    result.right += 1
                    result.per_template[template.name] += 1
                    if template.signature is None:
                        result.self_incriminating += 1
                elif d.attack.address in FOREIGN:
                    result.foreign += 1
            if not problems:
                continue
            report = (f"{template.name} field={case.field} payload={case.payload}: "
                      + "; ".join(p.text for p in problems) + f"\n    line: {case.lines[-1]!r}")
            if issue:
                result.known.setdefault(issue, []).append(report)
            else:
                result.violations.append(report)
    return result


# ------------------------------------------------------------------ tests

@pytest.mark.parametrize("service", SERVICES)
def test_templates_hit_their_signatures(service: str) -> None:
    """The neutral line of every template, in every header form and both address
    families, is the attack its template says (or none): the templates are real
    lines that reach the signatures."""
    result = run_service(service)
    wrong = []
    for template in it.TEMPLATES[service]:
        for key, found in result.neutral.items():
            if not key.startswith(template.name + " - "):
                continue
            got = [(d.attack.signature, d.attack.address) for d in found]
            if template.signature is None:
                if got:
                    wrong.append(f"{key}: no attack expected, got {got}")
            elif len(got) != 1 or got[0][0] != template.signature:
                wrong.append(f"{key}: expected {template.signature}, got {got}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("service", SERVICES)
def test_no_injection(service: str) -> None:
    result = run_service(service)
    print(f"\n{service}: {result.cases} cases, {result.lines} lines, {result.rejected} rejected, "
          f"{result.detections} detections, {result.right} with the real client's address, "
          f"{result.foreign} foreign")
    assert not result.violations, (f"{len(result.violations)} violations:\n"
                                   + "\n".join(result.violations[:40]))
    # The suite really exercises the signatures: every attack template is
    # detected, with the right address, for many of its payloads.
    for template in it.TEMPLATES[service]:
        if template.signature is not None:
            assert result.per_template[template.name] >= 8, template.name


KNOWN_PARAMS = [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=known.reason))
                for name, known in sorted(KNOWN.items())] or [
    pytest.param(None, marks=pytest.mark.skip(reason="no known injection"))]


@pytest.mark.parametrize("issue", KNOWN_PARAMS)
def test_known_injection(issue: str | None) -> None:
    """A known injection (KNOWN): strictly expected to fail until it is fixed."""
    assert issue is not None
    cases = [c for s in SERVICES for c in run_service(s).known.get(issue, [])]
    print(f"\n{issue}: {len(cases)} cases, e.g.\n" + "\n".join(cases[:3]))
    assert not cases, f"{len(cases)} cases inject a foreign address"


AGGREGATIONS = pytest.mark.parametrize(
    "aggregation", [Aggregation(), Aggregation(ipv4=24, ipv6=64), Aggregation(adaptive=1)],
    ids=["hosts", "prefixes", "adaptive"])


def foreign_blocks(attacks: list[Attack], aggregation: Aggregation) -> tuple[list[str], set[str]]:
    """Runs the attacks through the blocker (default scoring): the blocks, active
    or past, that cover a foreign address, and every target blocked. With
    aggregation (slower: a prefix per attack) each distinct attack is kept at
    most 50 times, in order: enough to cross every threshold many times."""
    if aggregation != Aggregation():
        seen: Counter[Attack] = Counter()
        kept = []
        for attack in attacks:
            seen[attack] += 1
            if seen[attack] <= 50:
                kept.append(attack)
        attacks = kept
    blocker = Blocker(BlockerConfig(aggregation=aggregation))
    blocks = []
    for i, attack in enumerate(attacks):
        if (block := blocker.observe(attack, NOW + i * 0.5)) is not None:
            blocks.append(block)
    foreign = [ipaddress.ip_address(a) for a in FOREIGN]
    bad = []
    for block in blocks + list(blocker.active.values()):
        network = ipaddress.ip_network(block.target, strict=False)
        if any(a in network for a in foreign if a.version == network.version):
            bad.append(f"{block.target} ({', '.join(block.signatures)})")
    return bad, {b.target for b in blocks}


@AGGREGATIONS
def test_blocker_never_blocks_a_foreign_address(aggregation: Aggregation) -> None:
    """The daemon-level guarantee: every detection of the suite (but those of
    known injections) through the blocker; no block covers a foreign address."""
    attacks = [a for s in SERVICES for a in run_service(s).attacks]
    bad, blocked = foreign_blocks(attacks, aggregation)
    assert not bad
    if aggregation == Aggregation():
        assert {it.REAL4, it.REAL6} <= blocked


@pytest.mark.skipif(not KNOWN, reason="no known injection")
@pytest.mark.xfail(strict=True, reason="the known injections (KNOWN) make the blocker block "
                                       "a foreign address")
@AGGREGATIONS
def test_blocker_with_known_injections(aggregation: Aggregation) -> None:
    attacks = [a for s in SERVICES for a in run_service(s).attacks + run_service(s).known_attacks]
    bad, _ = foreign_blocks(attacks, aggregation)
    assert not bad, f"blocked: {sorted(set(bad))}"


def test_the_checks_catch_what_they_must() -> None:
    """The checker is not vacuous: a foreign, a wrong and an invented address,
    and a record with a line break that got through, are all reported."""
    template = next(t for t in it.TEMPLATES["sshd"] if t.name == "sshd.invalid-user")
    line = b"Nov 21 10:00:27 mx1 sshd[1]: Invalid user x from 6.6.6.6 port 1 from 192.0.2.77 port 2"
    case = Case(template, "user", "test", it.REAL4, [line])
    record = RecordParser(DEFAULT_MAX_SIZE, UTC).parse(line, NOW)
    found = [Detection(1, Attack(address, "sshd.invalid-user", "sshd", 10), record,
                       Counted(1, 1, 10)) for address in ("6.6.6.6", "192.0.2.78")]
    assert [p.kind for p in check_case(case, found, 0)] == [
        "foreign", "wrong-address", "not-literal"]
    assert known_issue(case, check_case(case, found[:1], 0)) is None
    broken = Case(template, "user", "test", it.REAL4, [b"a\nb", b"x" * 8193, b"\xff"])
    assert [p.kind for p in check_case(broken, [], 0)] == ["rejection"]
    assert literal_addresses("relay=mx [IPv6:2001:DB8::1], rip=::ffff:192.0.2.7, "
                             "x=fe80::1%eth0: [203.0.113.5]:25 999.1.1.1") == {
        "2001:db8::1", "192.0.2.7", "fe80::1", "203.0.113.5"}
    assert occurs("192.0.2.7", "error,relay=::ffff:192.0.2.7,msg=x")
    assert not occurs("192.0.2.7", "from 192.0.2.77 port 2")


def test_summary() -> None:
    """Prints the table (pytest -s) and checks the suite's size."""
    rows = [run_service(s) for s in SERVICES]
    templates = {s: len(it.TEMPLATES[s]) for s in SERVICES}
    print(f"\n{len(battery())} payloads for text fields ({len(example_fakes())} of them whole "
          f"fake records of the {len(SIGNATURES)} signatures), {len(it.HOST_PAYLOADS)} for "
          f"reverse DNS names, {FUZZ_PER_TEMPLATE} random combinations per template")
    print(f"{'service':<10} {'templates':>9} {'cases':>7} {'lines':>7} {'rejected':>8} "
          f"{'detected':>8} {'right addr':>10} {'foreign':>7} {'self-inc':>8} {'sigs hit':>8}")
    for r in rows:
        print(f"{r.service:<10} {templates[r.service]:>9} {r.cases:>7} {r.lines:>7} "
              f"{r.rejected:>8} {r.detections:>8} {r.right:>10} {r.foreign:>7} "
              f"{r.self_incriminating:>8} {len(r.per_signature):>8}")
    total = sum(r.lines for r in rows)
    print(f"{'total':<10} {sum(templates.values()):>9} {sum(r.cases for r in rows):>7} "
          f"{total:>7} {sum(r.rejected for r in rows):>8} {sum(r.detections for r in rows):>8} "
          f"{sum(r.right for r in rows):>10} {sum(r.foreign for r in rows):>7}")
    for r in rows:
        assert r.right > 100, r.service
    assert total > 50_000
