"""Runs the inline examples of rule files: the rule author's own tests.

Each example line goes the whole way a real record goes (record parser, tag
dispatch, matcher with every signature loaded), so an example also proves that
its program tag is dispatched to its signature and that no earlier signature
shadows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .matcher import Matcher
from .record import Malformed, RecordParser
from .signatures import Signature

# Examples carry RFC 3164 dates without a year; any fixed clock will do.
EXAMPLE_CLOCK = 1_800_000_000.0


def check_examples(signatures: Sequence[Signature]) -> list[str]:
    """One message per failing example; empty when all pass."""
    matcher = Matcher(replace(s, enabled=True) for s in signatures)
    parser = RecordParser()
    failures = []
    for signature in signatures:
        for example in signature.examples:
            problem = _check(signature, example.line, example.address, example.kind,
                             matcher, parser)
            if problem:
                failures.append(f"{signature.source}: {signature.id}: {example.kind} "
                                f"{example.line!r}: {problem}")
    return failures


def _check(signature: Signature, line: str, expected: str | None, kind: str,
           matcher: Matcher, parser: RecordParser) -> str | None:
    try:
        record = parser.parse(line.encode("utf-8"), EXAMPLE_CLOCK)
    except Malformed as exc:
        return f"not a valid record: {exc}"
    attack = matcher.match(record)
    if expected is None:
        if attack is not None and attack.signature == signature.id:
            return f"must not match, but matched with address {attack.address}"
        return None
    if all(s.id != signature.id for s in matcher.candidates(record.program)):
        return (f"program tag {record.program!r} is not one of "
                f"{list(signature.programs)}")
    if attack is None:
        return "does not match"
    if attack.signature != signature.id:
        return f"matched by {attack.signature} first"
    if attack.address != expected:
        return f"address {attack.address}, expected {expected}"
    return None
