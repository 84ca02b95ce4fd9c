"""Remote decisions in: through the bounds, into the blocker.

Rules of this file:
* Pure: the daemon hands over what a remote part delivered and the time,
  and gets back the changes to commit and apply, and the refusals to log.
  Every remote part (fleet, CrowdSec) goes through here, so the local
  allow-list and the bounds hold whoever sends.
* A block already in force here at least as long is left alone (a host's
  own decision coming back from the fleet, a second copy). A revocation
  lifts the block whoever made it: unblocking anywhere acts everywhere.
* A complete list (a full sync) also lifts this origin's blocks that are no
  longer in it: revocations missed while the remote was away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .blocker import Block, Blocker
from .bounds import Gate
from .remote import RemoteDecision


@dataclass(slots=True)
class Adopted:
    blocks: list[tuple[Block, list[str]]] = field(default_factory=list)  # with evidence
    unblocks: list[Block] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


def adopt(blocker: Blocker, gate: Gate, remote: str, decisions: Sequence[RemoteDecision],
          complete: bool, now: float) -> Adopted:
    """What the decisions of the remote part called `remote` change here."""
    result = Adopted()
    listed = set()
    for offered in decisions:
        admission = gate.admit(offered, now)
        decision = admission.decision
        if decision is None:
            result.refusals.append(f"{offered.origin}: {admission.refusal}")
            continue
        current = blocker.active.get(decision.target)
        if decision.revoked:
            if current is not None:
                blocker.unblock(decision.target)
                result.unblocks.append(current)
            continue
        listed.add(decision.target)
        if current is not None and current.until >= decision.until:
            continue
        block = blocker.adopt(Block(decision.target, decision.since, decision.until,
                                    decision.reason, decision.score, decision.signatures,
                                    decision.nth, decision.lifetime, decision.origin))
        lines = [f"{decision.origin}: {line}" for line in decision.evidence]
        result.blocks.append((block, lines or [f"decided by {decision.origin}"]))
    if complete:
        for target, block in list(blocker.active.items()):
            if block.origin.startswith(f"{remote}:") and target not in listed:
                blocker.unblock(target)
                result.unblocks.append(block)
    return result
