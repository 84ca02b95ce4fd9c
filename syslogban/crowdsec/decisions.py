"""CrowdSec decisions: the LAPI's decision stream in, changes of targets out.

Rules of this file:
* Pure: JSON values and the time in, updates out. No HTTP, no clock, no
  state file (the bridge persists what `apply` says changed).
* It keeps the book of live decisions per target (the LAPI may hold several
  for one address: a scenario's, an admin's, another machine's) and reports
  only what changes a target: its first decision, a longer one, an early end
  that shortens it, and the early end of its last one.
* It takes `ban` decisions of scope Ip and Range; other types and scopes
  (captcha, Country, AS, Username) are counted and ignored. Values are
  checked here (literal addresses and prefixes only); the local allow-list
  and the bounds on remote decisions are the daemon's, applied to every
  update this file returns.
* This host's own decisions (its blocks, pushed as alerts) are known by id:
  their arrival changes nothing, and their deletion before their time (an
  admin's `cscli decisions delete`) lifts the local block.

Theory of operation: GET /v1/decisions/stream answers {"new": [...],
"deleted": [...]}, each decision {id, origin, scenario, scope, value, type,
duration}, where duration is the time left, as Go writes durations
("3h59m58.5s"; negative once over). With startup=true, "new" is every live
decision and "deleted" every expired one: the book is replaced, and targets
it no longer holds are lifted. Later calls give what changed since the
previous call. The LAPI reports a decision as deleted both when it expired
and when an admin deleted it (its end is then moved to "now"): a deletion
more than EARLY seconds before the end the book knows is an admin's; an
expiry needs no action, since every block carries its own end.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..blocker import normal_target

EARLY = 5.0          # seconds: a deletion this much before its end was an admin's
SCOPES = {"ip": "Ip", "range": "Range"}
ORIGIN_LIMIT = 160   # characters of origin/scenario kept (LAPI text, shown by `why`)
_GO_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
             "m": 60.0, "h": 3600.0}


def go_duration(text: str) -> float:
    """Seconds of a Go duration string ("1h2m3.5s", "-1m0s", "0s"); ValueError if not one."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration")
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    position, seconds = 0, 0.0
    while position < len(body):
        m = _GO_DURATION.match(body, position)
        if m is None:
            raise ValueError(f"{text!r} is not a duration")
        seconds += float(m.group(1)) * _GO_UNITS[m.group(2)]
        position = m.end()
    if not body or not math.isfinite(seconds):
        raise ValueError(f"{text!r} is not a duration")
    return -seconds if text.startswith("-") else seconds


@dataclass(frozen=True, slots=True)
class Decision:
    """One live LAPI decision as the book keeps it."""

    id: int
    target: str    # normal form: an address, or a prefix such as 192.0.2.0/24
    until: float
    origin: str    # crowdsec:<origin>/<scenario>
    own: bool = False  # this host's block, pushed as an alert


@dataclass(frozen=True, slots=True)
class Update:
    """A target's change: block it until `until` (replacing a remote block), or lift it."""

    target: str
    until: float
    origin: str
    lift: bool = False
    decision: int = field(default=0, compare=False)  # the id of the deciding decision
    own: bool = field(default=False, compare=False)  # a lift of this host's own block


@dataclass(slots=True)
class StreamCounters:
    decisions: int = 0  # entries read from the stream
    ignored: int = 0    # not a ban of scope Ip or Range
    malformed: int = 0  # missing fields, bad value or duration


@dataclass(slots=True)
class Applied:
    """What one stream answer changed: updates for the daemon, rows for the state."""

    updates: list[Update] = field(default_factory=list)
    added: list[Decision] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)


def origin_of(entry: Mapping[str, Any]) -> str:
    """crowdsec:<origin>/<scenario>, printable and bounded (it is shown to admins)."""
    text = f"{entry.get('origin') or '?'}/{entry.get('scenario') or '?'}"
    text = "".join(c if c.isprintable() else "?" for c in text)
    return "crowdsec:" + text[:ORIGIN_LIMIT]


class Book:
    """The live decisions this host knows of, by target and by id."""

    def __init__(self) -> None:
        self.by_id: dict[int, Decision] = {}
        self.by_target: dict[str, dict[int, Decision]] = {}
        self.counters = StreamCounters()

    def restore(self, decisions: Iterable[Decision]) -> None:
        """Takes back the book a previous run persisted."""
        for decision in decisions:
            self._add(decision)

    def own(self, decisions: Iterable[Decision]) -> Applied:
        """Records this host's decisions for a block it pushed; older own
        decisions of the same target are forgotten (their block is over)."""
        applied = Applied()
        for decision in decisions:
            for old in [d for d in self.by_target.get(decision.target, {}).values() if d.own]:
                self._remove(old.id)
                applied.removed.append(old.id)
            self._add(decision)
            applied.added.append(decision)
        return applied

    def forget_own(self, target: str) -> list[int]:
        """This host lifted its block of `target`: the ids of its decisions to delete."""
        ids = [d.id for d in self.by_target.get(target, {}).values() if d.own]
        for decision_id in ids:
            self._remove(decision_id)
        return ids

    def in_force(self) -> list[Update]:
        """Every target a remote decision blocks (this host's own blocks aside)."""
        found = []
        for target in sorted(self.by_target):
            longest = self._longest(target)
            if longest is not None and not longest.own:
                found.append(Update(target, longest.until, longest.origin,
                                    decision=longest.id))
        return found

    # ----------------------------------------------------------- the stream

    def apply(self, answer: Any, now: float, startup: bool) -> Applied:
        """One stream answer; ValueError when it is not one at all."""
        if not isinstance(answer, dict):
            raise ValueError("the decision stream answer is not a JSON object")
        new = self._entries(answer.get("new"), now)
        deleted = self._entries(answer.get("deleted"), now)
        touched = {d.target for d in new} | {self.by_id[d.id].target for d in deleted
                                             if d.id in self.by_id}
        if startup:
            touched |= set(self.by_target)
        before = {t: self._longest(t) for t in touched}
        applied = Applied()
        lifted: dict[str, str] = {}
        if startup:
            live = {d.id for d in new}
            for decision in [d for d in self.by_id.values() if d.id not in live]:
                self._drop(decision, applied, lifted, early=decision.until > now + EARLY)
        for decision in deleted:
            known = self.by_id.get(decision.id)
            if known is not None:
                self._drop(known, applied, lifted, early=known.until > decision.until + EARLY)
        for decision in new:
            if decision.id not in self.by_id and decision.until > now:
                self._add(decision)
                applied.added.append(decision)
        for target in sorted(touched):
            self._report(target, before[target], lifted.get(target), applied)
        return applied

    def _drop(self, decision: Decision, applied: Applied, lifted: dict[str, str],
              early: bool) -> None:
        self._remove(decision.id)
        applied.removed.append(decision.id)
        if early:  # an admin's deletion, not an expiry
            lifted[decision.target] = decision.origin

    def _report(self, target: str, before: Decision | None, lifted_by: str | None,
                applied: Applied) -> None:
        after = self._longest(target)
        remote_after = self._longest(target, own=False)
        if after is not None and after.own:
            return  # this host's own block covers it: nothing to enforce
        if remote_after is not None:
            if before is None or before.own or remote_after.until != before.until:
                applied.updates.append(Update(target, remote_after.until, remote_after.origin,
                                              decision=remote_after.id))
        elif lifted_by is not None:  # named after what was enforced until now
            origin = before.origin if before is not None else lifted_by
            applied.updates.append(Update(target, 0.0, origin, lift=True,
                                          decision=before.id if before is not None else 0,
                                          own=before is not None and before.own))

    def _longest(self, target: str, own: bool | None = None) -> Decision | None:
        found = [d for d in self.by_target.get(target, {}).values()
                 if own is None or d.own == own]
        return max(found, key=lambda d: d.until, default=None)

    def _entries(self, entries: Any, now: float) -> list[Decision]:
        if entries is None:  # 1.4 writes null for an empty list
            return []
        if not isinstance(entries, list):
            raise ValueError("the decision stream's lists are not JSON arrays")
        decisions = []
        for entry in entries:
            self.counters.decisions += 1
            decision = self._decision(entry, now)
            if decision is not None:
                decisions.append(decision)
        return decisions

    def _decision(self, entry: Any, now: float) -> Decision | None:
        if not isinstance(entry, dict):
            self.counters.malformed += 1
            return None
        scope = SCOPES.get(str(entry.get("scope", "")).lower())
        if scope is None or str(entry.get("type", "")).lower() != "ban":
            self.counters.ignored += 1
            return None
        try:
            decision_id = entry["id"]
            if not isinstance(decision_id, int) or isinstance(decision_id, bool) \
                    or not 0 < decision_id < 2**63:  # the LAPI's ids, as the state file keeps them
                raise ValueError("no id")
            target = normal_target(str(entry["value"]))
            if scope == "Ip" and "/" in target:
                raise ValueError("a prefix in scope Ip")
            until = now + go_duration(entry["duration"])
        except (KeyError, ValueError):
            self.counters.malformed += 1
            return None
        own = self.by_id.get(decision_id)
        return Decision(decision_id, target, until, origin_of(entry),
                        own=own is not None and own.own)

    def _add(self, decision: Decision) -> None:
        self.by_id[decision.id] = decision
        self.by_target.setdefault(decision.target, {})[decision.id] = decision

    def _remove(self, decision_id: int) -> None:
        decision = self.by_id.pop(decision_id, None)
        if decision is None:
            return
        same = self.by_target[decision.target]
        del same[decision_id]
        if not same:
            del self.by_target[decision.target]
