"""Attempt accounting: matched lines in, failed logins (attempts) out.

Rules of this file:
* Pure: the time is an argument; nothing is read or written.
* It says what one line adds to its address's attempts, and nothing more:
  scoring and blocking are blocker.py's, matching is matcher.py's.
* Memory is bounded: at most `size` addresses (the least recently seen is
  forgotten first), at most PER_ADDRESS attempts each, none older than `ttl`.
  A forgotten attempt can only make a later line count again, never vanish.

Theory of operation. A daemon often writes several lines for one attempt
(Postfix: the SASL warning, "lost connection after AUTH", the disconnect
statistics; Dovecot with PAM: pam_unix, pam_authenticate, the login summary),
and Dovecot's auth process writes one more for the SMTP AUTH that Postfix
asked it to check. An attempt here is the group of lines that report it; it
counts once, when its first line arrives. Each later line joins the oldest
open attempt of its address that it can belong to, or else begins a new one:

* an attempt holds at most one line of each signature, and at most one line
  of the role "attempt" per service (a daemon reports each attempt once);
* the attempt's front is the service the client talked to. A line of another
  service joins only if it `serves` the front (Dovecot's auth lines serve
  Postfix and Exim); an attempt seen so far only through such serving lines
  has no front yet, and the first line they serve becomes its front. Such an
  attempt counts only then, for its front's service: "2 failed SMTP logins"
  must not become failed Dovecot logins. A serving line that names its own
  session (Dovecot's login session id) is its own service's front line;
* where both name a session of the front (a session id, or the process of a
  daemon that forks per connection), the sessions must be equal, and the
  attempt stays open for as long as `ttl` (Sendmail's "did not issue MAIL"
  ends the connection). A line that names its session never joins a front's
  attempt that names none: that one came from a process serving every
  client (postscreen), another connection. Otherwise only time ties them:
  the line must come within `pair` seconds of the attempt's last line;
* a line of the role "count" (`auth=0/3`, `3 attempts`) ends its session: it
  claims up to that many open attempts of its front (its own session's
  first, newest first: a process serves one connection after another) and
  of lines that serve it, and adds what is missing;
  a claimed attempt is closed and takes only serving lines (another daemon's
  log may come late).

An attempt's danger is the highest of its lines'; a line that raises it adds
the difference (its points), a new attempt adds its danger per attempt.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

from .matcher import Attack
from .signatures import ATTEMPT, COUNT

DEFAULT_SIZE = 65536   # addresses
DEFAULT_TTL = 3600.0   # seconds an attempt stays open within its session
PAIR = 15.0            # seconds between lines of one attempt that share no session
PER_ADDRESS = 16       # attempts kept per address (a brute force keeps the newest)


class Counted(NamedTuple):
    """What one line adds: the attempt it belongs to and its share."""

    attempt: int  # the reference (line number) of the attempt's first line: its id
    new: int      # attempts it adds: 0 when an earlier line counted its attempt
    points: int   # danger it adds


@dataclass(slots=True, eq=False)  # compared by identity: `in` over a list stays cheap
class _Attempt:
    ref: int
    origin: str                  # service of its first line
    fronts: tuple[str, ...]      # services its first line may report for
    front: str | None            # the service the client talked to; None: not known yet
    session: str | None          # the front's session
    last: float
    danger: int
    signatures: tuple[str, ...]  # tuples: most attempts hold one line, their tuple shared
    reported: tuple[str, ...]    # services whose line of the role "attempt" it holds
    closed: bool = False
    counted: bool = True         # False while only serving lines reported it


@dataclass(slots=True)
class AttemptCounters:
    attempts: int = 0   # failed logins counted
    joined: int = 0     # lines that reported an attempt already counted
    forgotten: int = 0  # addresses evicted to stay within `size`


@dataclass(slots=True)
class Accountant:
    size: int = DEFAULT_SIZE
    ttl: float = DEFAULT_TTL
    pair: float = PAIR
    counters: AttemptCounters = field(default_factory=AttemptCounters)
    _open: OrderedDict[str, list[_Attempt]] = field(default_factory=OrderedDict)

    def observe(self, attack: Attack, now: float, ref: int) -> Counted:
        """What the line `ref` (a matched line, at time `now`) adds to its address."""
        attempts = self._attempts(attack.address, now)
        if attack.role == COUNT:
            counted = self._count(attempts, attack, now, ref)
        else:
            found = self._joinable(attempts, attack, now)
            counted = (self._join(found, attack, now) if found is not None
                       else self._begin(attempts, attack, now, ref))
        if counted.new:
            self.counters.attempts += counted.new
        else:
            self.counters.joined += 1
        return counted

    def __len__(self) -> int:
        return len(self._open)

    # ----------------------------------------------------------- the rules

    def _attempts(self, address: str, now: float) -> list[_Attempt]:
        """The address's attempts still open, oldest first (and the address made young)."""
        attempts = self._open.get(address)
        if attempts is None:
            attempts = self._open[address] = []
            if len(self._open) > self.size:
                self._open.popitem(last=False)
                self.counters.forgotten += 1
        else:
            self._open.move_to_end(address)
            horizon = now - self.ttl
            if attempts and attempts[0].last < horizon:
                attempts[:] = [a for a in attempts if a.last >= horizon]
        return attempts

    def _joinable(self, attempts: list[_Attempt], attack: Attack, now: float) -> _Attempt | None:
        """The oldest open attempt the line can report (its signature not in it yet).

        One loop over the address's attempts with the line's facts read once:
        a busy attacker has PER_ADDRESS of them, and each of its lines asks.
        """
        signature, service, session = attack.signature, attack.service, attack.session
        serves = attack.serves
        serving = bool(serves) and session is None  # see _serving
        reports = attack.role == ATTEMPT
        pair, ttl = self.pair, self.ttl
        for attempt in attempts:
            if signature in attempt.signatures or (reports and service in attempt.reported):
                continue
            front = attempt.front
            if serving:  # an authentication server's line, for itself or the fronts it serves
                if front is None:
                    if attempt.origin != service:
                        continue
                elif front != service and front not in serves:
                    continue
            else:
                if attempt.closed:
                    continue
                if front is None:
                    if service not in attempt.fronts:
                        continue
                elif front != service:
                    continue
            # How long after its last line the attempt can still take this line:
            # its session's whole life where both name the front's session,
            # only `pair` seconds where the line names none (nothing but time
            # ties them), never where only the line names one (a line of one
            # connection, an attempt of none: another process's, postscreen's
            # PREGREET, not smtpd's AUTH).
            if front != service or session is None:
                reach = pair
            elif attempt.session is None:
                reach = -1.0
            else:
                reach = ttl if attempt.session == session else -1.0
            if now - attempt.last <= reach:
                return attempt
        return None

    def _join(self, attempt: _Attempt, attack: Attack, now: float) -> Counted:
        attempt.signatures += (attack.signature,)
        attempt.last = max(attempt.last, now)
        if attack.role == ATTEMPT:
            attempt.reported += (attack.service,)
        serving = _serving(attack)
        if not serving and attempt.front is None:
            attempt.front, attempt.session = attack.service, attack.session
        elif attempt.front == attack.service and attempt.session is None:
            attempt.session = attack.session
        if not attempt.counted and not serving:  # now it is known whose attempt it is
            return _new(Counted, (attempt.ref, 1, self._settle(attempt, attack.danger)))
        return _new(Counted, (attempt.ref, 0, self._raise(attempt, attack.danger)))

    def _begin(self, attempts: list[_Attempt], attack: Attack, now: float,
               ref: int, count: int = 1, closed: bool = False) -> Counted:
        serving = _serving(attack) and not closed
        attempts.append(_Attempt(
            ref, attack.service, (attack.service, *attack.serves) if serving else (),
            None if serving else attack.service, None if serving else attack.session,
            now, attack.danger, _one(attack.signature),
            _one(attack.service) if attack.role == ATTEMPT else (), closed, not serving))
        if len(attempts) > PER_ADDRESS:
            del attempts[0]
        if serving:  # whose attempt it is, its front will tell
            return _new(Counted, (ref, 0, 0))
        return _new(Counted, (ref, count, count * attack.danger))

    def _count(self, attempts: list[_Attempt], attack: Attack, now: float,
               ref: int) -> Counted:
        """A session's summary: N attempts, less those its session already counted."""
        service, session = attack.service, attack.session
        # One pass: its own session's attempts (newest first), then the others
        # it may claim: the front's that name no session (or any, where the
        # line names none) and those with no front yet that it may be.
        own: list[_Attempt] = []
        others: list[_Attempt] = []
        ttl = self.ttl
        for a in attempts:
            if a.closed:
                continue
            front = a.front
            if front == service:
                if session is not None and a.session == session:
                    own.append(a)
                elif (a.session is None or session is None) and now - a.last <= ttl:
                    others.append(a)
            elif front is None and service in a.fronts and now - a.last <= ttl:
                others.append(a)
        own.reverse()
        claimed = (own + others)[:attack.count]
        points = new = 0
        for attempt in claimed:
            attempt.closed = True
            attempt.signatures += (attack.signature,)
            if attempt.front is None:
                attempt.front, attempt.session = service, session
            if attempt.counted:
                points += self._raise(attempt, attack.danger)
            else:
                new += 1
                points += self._settle(attempt, attack.danger)
        missing = attack.count - len(claimed)
        first = claimed[0].ref if claimed else ref
        if missing <= 0:
            return _new(Counted, (first, new, points))
        begun = self._begin(attempts, attack, now, ref, missing, closed=True)
        return _new(Counted, (first, new + missing, points + begun.points))

    @staticmethod
    def _settle(attempt: _Attempt, danger: int) -> int:
        """Counts an attempt that only serving lines reported so far: its points."""
        attempt.counted = True
        attempt.danger = max(attempt.danger, danger)
        return attempt.danger

    @staticmethod
    def _raise(attempt: _Attempt, danger: int) -> int:
        """The points a line adds by raising its attempt's danger to its own."""
        if danger <= attempt.danger:
            return 0
        added, attempt.danger = danger - attempt.danger, danger
        return added


_new = tuple.__new__  # _new(Counted, fields): without NamedTuple's keyword handling
_ONES: dict[str, tuple[str]] = {}


def _one(name: str) -> tuple[str]:
    """(name,), one tuple per signature or service name (a million attempts share them)."""
    found = _ONES.get(name)
    if found is None:  # names come from the loaded rules: few
        found = _ONES[name] = (name,)
    return found


def _serving(attack: Attack) -> bool:
    """Whether the line may report another service's attempt: it serves others and
    names no session of its own (a login session id makes it its own service's)."""
    return bool(attack.serves) and attack.session is None
