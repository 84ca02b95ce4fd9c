"""The matcher: one parsed record in, at most one attack out.

Rules of this file:
* Pure and deterministic: no I/O, no clock, no DNS.
* A signature only ever sees records whose program tag it names: the tag is
  written by the syslog daemon, the message partly by the attacker.
* The address comes from the pattern's <ADDR> group and must be a literal
  IPv4/IPv6 address; anything else is counted and dropped, never resolved.
* Signatures are tried in load order and the first match wins, so one record
  is one attack and danger is never counted twice.

Theory of operation: records are dispatched on their program tag (the list of
candidate signatures is computed once per distinct tag and cached), then each
candidate's literal is looked for with `in` (C speed), and only then is the
anchored pattern run.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import NamedTuple

from .address import normalize_address
from .record import Record
from .signatures import Signature

_DISPATCH_CACHE_LIMIT = 4096  # distinct program tags; attackers may invent tags


class Attack(NamedTuple):
    """What the matcher found (a NamedTuple for the reason given on Record)."""

    address: str
    signature: str
    service: str
    danger: int


class Matcher:
    __slots__ = ("signatures", "invalid_addresses", "_dispatch")

    def __init__(self, signatures: Iterable[Signature]) -> None:
        self.signatures = tuple(signatures)
        self.invalid_addresses = 0
        self._dispatch: dict[str | None, tuple[Signature, ...]] = {}

    def prefilters(self) -> list[tuple[str, bool]]:
        """(expression, caseless) for every signature: what the scanner looks for."""
        return sorted({(s.prefilter, s.caseless) for s in self.signatures})

    def candidates(self, program: str | None) -> tuple[Signature, ...]:
        found = self._dispatch.get(program)
        if found is None:
            found = tuple(s for s in self.signatures if _applies(s, program))
            if len(self._dispatch) < _DISPATCH_CACHE_LIMIT:
                self._dispatch[program] = found
        return found

    def match(self, record: Record) -> Attack | None:
        message = record.message
        lowered = None
        for signature in self.candidates(record.program):
            if signature.caseless:
                if lowered is None:
                    lowered = message.lower()
                if signature.literal not in lowered:
                    continue
            elif signature.literal not in message:
                continue
            m = signature.regex.match(message)
            if m is None:
                continue
            address = normalize_address(m.group("addr"))
            if address is None:
                self.invalid_addresses += 1
                continue
            return Attack(address, signature.id, signature.service, signature.danger)
        return None


def _applies(signature: Signature, program: str | None) -> bool:
    if not signature.programs:
        return True
    return program is not None and any(fnmatchcase(program, p) for p in signature.programs)
