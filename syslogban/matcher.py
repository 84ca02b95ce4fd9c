"""The matcher: one parsed record in, at most one attack out.

Rules of this file:
* Pure and deterministic: no I/O, no clock, no DNS.
* A signature only ever sees records whose program tag it names: the tag is
  written by the syslog daemon, the message partly by the attacker.
* The address comes from the pattern's <ADDR> group and must be a literal
  IPv4/IPv6 address that may be blocked (address.NEVER_BLOCKED: not
  unspecified, broadcast, multicast or link-local); anything else is counted
  and dropped, never resolved.
* Signatures are tried in load order and the first match wins, so one record
  is one attack and danger is never counted twice. Binding signatures
  (session id -> address) are tried before all others, record their binding
  and let the search go on. A failure of a session no record has named yet
  is held (correlation.py); the binding record that names it later reports
  it, in place of any attack of its own (which would report the same
  connection's end).
* A record in rsyslog's "message repeated N times: [...]" wrapper is matched
  on the message inside (a failed login in it counts its N copies too), one
  with Solaris' "[ID N facility.level] " on the message after it.

Theory of operation: records are dispatched on their program tag (the list of
candidate signatures is computed once per distinct tag and cached), then each
candidate's literal is looked for with `in` (C speed), and only then is the
anchored pattern run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import NamedTuple

from .address import never_blocked, normalize_address
from .correlation import Correlator, Held
from .prefilter import AnyPrefilter
from .record import Record
from .signatures import ATTEMPT, COUNT, MAX_COUNT, Signature

_DISPATCH_CACHE_LIMIT = 4096  # distinct program tags; attackers may invent tags
UNTAGGED_SEARCH = 1024        # characters of an untagged record searched for signature text


class Attack(NamedTuple):
    """What the matcher found (a NamedTuple for the reason given on Record).

    The last four fields are for attempt accounting (attempts.py): the
    signature's role, the session that ties lines of one connection together
    (its <ID>, or "pid:N" where the record's process is the session), the
    number of attempts a line of the role "count" carries, and the services
    whose attempts the line may also report.
    """

    address: str
    signature: str
    service: str
    danger: int
    role: str = ATTEMPT
    session: str | None = None
    count: int = 1
    serves: tuple[str, ...] = ()


class Matcher:
    __slots__ = ("signatures", "correlator", "invalid_addresses", "_dispatch", "_bits",
                 "_any_prefilter", "_by_id", "_by_mask")

    def __init__(self, signatures: Iterable[Signature],
                 correlator: Correlator | None = None) -> None:
        self.signatures = tuple(signatures)
        self.correlator = correlator if correlator is not None else Correlator()
        self.invalid_addresses = 0
        self._dispatch: dict[str | None, tuple[tuple[Signature, int], ...]] = {}
        self._by_mask: dict[tuple[str | None, int], tuple[tuple[Signature, int], ...]] = {}
        # A signature's bit: 1 << the index of its prefilter in prefilters(),
        # as the scanner reports which prefilters a line holds.
        index = {p: i for i, p in enumerate(self.prefilters())}
        self._bits = {s.id: 1 << index[(s.prefilter, s.caseless)] for s in self.signatures}
        self._any_prefilter: AnyPrefilter | None = None
        self._by_id = {s.id: s for s in self.signatures}

    def prefilters(self) -> list[tuple[str, bool]]:
        """(expression, caseless) for every signature: what the scanner looks for."""
        return sorted({(s.prefilter, s.caseless) for s in self.signatures})

    def holds_signature_text(self, line: str, mask: int = -1) -> bool:
        """Whether some signature's prefilter finds `line` (any program tag).

        `mask` as in match(): the scanner's bits, or -1 when nobody looked,
        then the prefilters are looked for here, in linear time
        (prefilter.py; as regular expressions they backtrack without end).
        Only records without a tag ask, and few of them: it tells the
        records that no signature could see for want of a tag and that
        might have been attacks from those that never could be. Those are
        short: only the first UNTAGGED_SEARCH characters are looked at, so a
        client's 8 KiB of signature words costs what a real record does (the
        scanner hands over whole only lines longer than that, or odd ones).
        """
        if mask != -1:
            return mask != 0
        if self._any_prefilter is None:
            self._any_prefilter = AnyPrefilter(self.prefilters())
        return self._any_prefilter.search(line[:UNTAGGED_SEARCH])

    def candidates(self, program: str | None) -> tuple[Signature, ...]:
        return tuple(s for s, _ in self._candidates(program))

    def _candidates(self, program: str | None) -> tuple[tuple[Signature, int], ...]:
        found = self._dispatch.get(program)
        if found is None:
            # Binding signatures first: every record they match binds, whatever
            # attack it also is, so bindings depend on binding signatures alone.
            found = tuple((s, self._bits[s.id]) for s in sorted(
                (s for s in self.signatures if _applies(s, program)), key=lambda s: not s.binds))
            if len(self._dispatch) < _DISPATCH_CACHE_LIMIT:
                self._dispatch[program] = found
        return found

    def _masked(self, program: str | None, mask: int) -> tuple[tuple[Signature, int], ...]:
        """The candidates for `program` whose prefilter is in `mask` (cached: lines
        hold few prefilters, so there are few combinations)."""
        key = (program, mask)
        found = self._by_mask.get(key)
        if found is None:
            found = tuple(c for c in self._candidates(program) if mask & c[1])
            if len(self._by_mask) < _DISPATCH_CACHE_LIMIT:
                self._by_mask[key] = found
        return found

    def match(self, record: Record, now: float, mask: int = -1) -> Attack | None:
        """The attack in `record`; `now` ages the session bindings.

        `mask`: the prefilters the scanner found in the line (bits, see
        prefilters()); -1, all of them, when nobody looked.
        """
        message = record.message
        repeats = 0
        if message.startswith(_WRAPPED):
            message, repeats = _unwrapped(message)
        lowered = None
        late: Attack | None = None
        for signature, _ in (self._candidates(record.program) if mask == -1
                             else self._masked(record.program, mask)):
            if late is not None and not signature.binds:
                break  # binding signatures come first: the rest could only report this record
            if mask == -1:
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
            session = _session(signature, m, record)
            if signature.resolves:
                if session is None:
                    self.correlator.counters.unresolved += 1
                    continue  # counted, never guessed
                key = (signature.service, record.hostname, session)
                address = self.correlator.resolve(key, now)
                if address is None:
                    self.correlator.hold(key, signature.id, now)  # a later record may name it
                    continue
            else:
                address = _blockable(m.group("addr"))
                if address is None:
                    self.invalid_addresses += 1
                    continue
                if signature.binds:
                    if session is not None:
                        held = self.correlator.bind(
                            (signature.service, record.hostname, session), address, now)
                        if held is not None and late is None:
                            late = self._late(held, address, session, record)
                    continue
            # <COUNT> may sit in one alternative ("proxy dest auth failed"): then 1.
            count = 1
            if signature.role == COUNT:
                count = min(int(m.group("count") or 1), MAX_COUNT)
            role = signature.role
            if repeats and role == ATTEMPT:
                # the first of them was logged before: a count that takes it in
                role, count = COUNT, min(repeats + 1, MAX_COUNT)
            if signature.sessioned:  # the session id the daemon writes next to the address
                session = m.group("session") or session
            if session is not None and record.hostname is not None:
                session = f"{record.hostname}/{session}"  # ids of different hosts never meet
            return _new(Attack, (address, signature.id, signature.service, signature.danger,
                                 role, session, count, signature.serves))
        return late

    def _late(self, held: Held, address: str, session: str, record: Record) -> Attack:
        """The failures held for `session`, reported by the record that named `address`."""
        signature = self._by_id[held.signature]
        if record.hostname is not None:
            session = f"{record.hostname}/{session}"
        # Several lines of one signature are as many attempts: a count.
        role, count = ((signature.role, 1) if held.count == 1
                       else (COUNT, min(held.count, MAX_COUNT)))
        return Attack(address, signature.id, signature.service, signature.danger,
                      role, session, count, signature.serves)


_new = tuple.__new__  # _new(Attack, fields): Attack(*fields) without its keyword handling
_BLOCKABLE: dict[str, str | None] = {}  # address text -> its normal spelling, None: never


def _blockable(text: str) -> str | None:
    """The normal spelling of the address in `text`, None when it is not one or is
    never blocked. Cached: a log names the same attackers again and again."""
    found = _BLOCKABLE.get(text, _UNSEEN)
    if found is _UNSEEN:
        found = normalize_address(text)
        if found is not None and never_blocked(found):
            found = None
        if len(_BLOCKABLE) >= _ADDRESS_CACHE_LIMIT:
            _BLOCKABLE.clear()
        _BLOCKABLE[text] = found
    return found  # type: ignore[return-value]


_UNSEEN = object()
_ADDRESS_CACHE_LIMIT = 4096


# What the system, not the program, puts in front of a program's message:
# * rsyslog's repeated-message reduction (runtime/ratelimit.c,
#   $RepeatedMsgReduction, on in Ubuntu's rsyslog.conf): " message repeated %d
#   times: [%.800s]" in place of the suppressed copies, the message inside;
# * Solaris' syslog(3) message id, "[ID %u %s.%s] " (msgid, facility.level).
_WRAPPED = ("message repeated ", "[ID ")
_REPEATED = re.compile(r"message repeated (\d{1,9}) times: \[ *+(.*)\]", re.DOTALL)
_SOLARIS_ID = re.compile(r"\[ID \d{1,10} [a-z0-9]{1,16}\.[a-z]{1,16}\] ")


def _unwrapped(message: str) -> tuple[str, int]:
    """The program's message inside the system's wrapper, and how often
    rsyslog suppressed it."""
    m = _REPEATED.fullmatch(message)
    if m is not None:
        return m.group(2), int(m.group(1))
    m = _SOLARIS_ID.match(message)
    return (message, 0) if m is None else (message[m.end():], 0)


def _session(signature: Signature, m: re.Match[str], record: Record) -> str | None:
    """The session id: <ID> of the text, or the process id ("pid:" never meets an <ID>)."""
    if not signature.by_pid:
        return m.group("id") if signature.binds or signature.resolves else None
    return None if record.pid is None else f"pid:{record.pid}"


def _applies(signature: Signature, program: str | None) -> bool:
    if not signature.programs:
        return True
    return program is not None and any(fnmatchcase(program, p) for p in signature.programs)
