"""Runs the inline examples of rule files: the rule author's own tests.

Each example line goes the whole way a real record goes (record parser, tag
dispatch, matcher with every signature loaded), so an example also proves that
its program tag is dispatched to its signature and that no earlier signature
shadows it. The context lines of an example (the record that binds a session
id) go first, into fresh session bindings. A session example's lines go, in
order and on their own clock, through the pipeline and attempt accounting;
the attempts each address made must be the ones the example states.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .correlation import Correlator
from .matcher import Attack, Matcher
from .pipeline import Pipeline
from .record import Malformed, Record, RecordParser
from .scanner import Scanner
from .signatures import Example, SessionExample, Signature

# Examples carry RFC 3164 dates without a year; any fixed clock will do.
EXAMPLE_CLOCK = 1_800_000_000.0


def check_examples(signatures: Sequence[Signature]) -> list[str]:
    """One message per failing example; empty when all pass."""
    matcher = Matcher(replace(s, enabled=True) for s in signatures)
    parser = RecordParser()
    failures = []
    for signature in signatures:
        for example in signature.examples:
            problem = check_example(signature, example, matcher, parser)
            if problem:
                failures.append(f"{signature.source}: {signature.id}: {example.kind} "
                                f"{example.line!r}: {problem}")
    return failures


def check_example(signature: Signature, example: Example, matcher: Matcher,
                  parser: RecordParser) -> str | None:
    """What is wrong with one example of `signature` (None: it passes); the
    matcher holds every signature, its session bindings are reset here."""
    matcher.correlator = Correlator()
    for line in example.context:
        problem = _feed(line, matcher, parser)
        if isinstance(problem, str):
            return f"context line {line!r}: {problem}"
    record_or_problem = _record(example.line, parser)
    if isinstance(record_or_problem, str):
        return record_or_problem
    record = record_or_problem
    attack = matcher.match(record, EXAMPLE_CLOCK)
    found = _found(signature, attack, record)
    if example.address is None:
        if found is not None:
            return f"must not match, but matched with address {found}"
        return None
    if all(s.id != signature.id for s in matcher.candidates(record.program)):
        return (f"program tag {record.program!r} is not one of "
                f"{list(signature.programs)}")
    if found is None:
        if attack is not None:
            return f"matched by {attack.signature} first"
        return "does not match" + (" (or its session id was never bound)"
                                   if signature.resolves else "")
    if found != example.address:
        return f"address {found}, expected {example.address}"
    return None


def _found(signature: Signature, attack: Attack | None, record: Record) -> str | None:
    """The address this signature took from the line: attacked, or bound by it alone."""
    if signature.binds:
        alone = Matcher([replace(signature, enabled=True)])
        alone.match(record, EXAMPLE_CLOCK)
        bound = alone.correlator.addresses()
        return bound[-1] if bound else None
    if attack is not None and attack.signature == signature.id:
        return attack.address
    return None


def _record(line: str, parser: RecordParser) -> Record | str:
    try:
        return parser.parse(line.encode("utf-8"), EXAMPLE_CLOCK)
    except Malformed as exc:
        return f"not a valid record: {exc}"


def _feed(line: str, matcher: Matcher, parser: RecordParser) -> str | None:
    record = _record(line, parser)
    if isinstance(record, str):
        return record
    matcher.match(record, EXAMPLE_CLOCK)
    return None


def check_session_examples(signatures: Sequence[Signature],
                           examples: Sequence[SessionExample]) -> list[str]:
    """One message per session example whose attempts differ from the stated ones."""
    matcher = Matcher(replace(s, enabled=True) for s in signatures)
    parser = RecordParser()
    failures = []
    for example in examples:
        found = session_attempts(example.lines, matcher, parser)
        expected = dict(example.attempts)
        if found != expected:
            failures.append(f"{example.source}: session example {example.description!r}: "
                            f"attempts {found or '{}'}, expected {expected}")
    return failures


def session_attempts(lines: Sequence[str], matcher: Matcher,
                     parser: RecordParser) -> dict[str, int]:
    """The attempts per address that `lines` (fresh sessions, fresh accounting) hold."""
    matcher.correlator = Correlator()
    pipeline = Pipeline(parser, matcher, Scanner(matcher.prefilters(), parser.max_size,
                                                 "plain"))
    chunk = "".join(line + "\n" for line in lines).encode("utf-8")
    attempts: dict[str, int] = {}
    for detection in pipeline.feed(chunk, EXAMPLE_CLOCK):
        address = detection.attack.address
        attempts[address] = attempts.get(address, 0) + detection.counted.new
    return attempts
