"""The blocker: attacks and the time in, block decisions out.

Rules of this file:
* Pure: the time is an argument, nothing is read or written. The daemon
  persists what it returns; `check --replay` runs it over a log's own times.
* The policy is data (Policy, Aggregation, BlockerConfig), not code paths.
* Whatever must survive a restart leaves in the values it returns (Block,
  History) and comes back through `restore`: a restarted blocker decides
  exactly as the old one would have.

Theory of operation (sshguard's model, with fail2ban's persistence): the
unit is an attempt (one failed login, one rejected probe; attempts.py groups
the lines that report one). Each attempt adds its danger (or 1, for a policy
that counts attempts) to its address's score; a line that reports an attempt
already counted adds nothing. Attempts older than the detection window fall
out of it. A
score at or over the threshold blocks the address for block_time, multiplied
by `multiplier` for every earlier block of the same address and capped at
max_block_time. A block starts a fresh score; attacks that arrive while the
address is blocked (connections already open) are counted but do not block
again. An address whose lifetime danger reaches the blacklist threshold is
blocked for good. Allow-listed addresses are never blocked; their attacks are
counted. A service with a policy of its own is scored apart from the others.
Aggregation blocks (or scores) a whole prefix instead of one host; adaptive
aggregation blocks a prefix once enough of its hosts were blocked within the
window.
"""

from __future__ import annotations

import heapq
import ipaddress
import socket
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .address import normalize_address, unblockable
from .attempts import Counted
from .durations import MAX_DURATION, PERMANENT
from .matcher import Attack
from .window import Window

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# The widest prefix an admin may block: as wide as aggregation may go.
WIDEST_PREFIX = {4: 8, 6: 16}
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                 ipaddress.ip_network("::1/128"))


@dataclass(frozen=True, slots=True)
class Policy:
    threshold: int = 30
    window: float = 1800.0
    block_time: float = 120.0
    multiplier: float = 2.0
    max_block_time: float = 86400.0
    count_attempts: bool = False  # the threshold counts attacks, not their danger

    def duration(self, earlier_blocks: int) -> float:
        """block_time, grown by the multiplier per earlier block up to
        max_block_time. A permanent block_time is permanent; a grown time
        never passes MAX_DURATION, so a permanent max_block_time cannot make
        a duration the firewall refuses."""
        if self.block_time == PERMANENT:  # what the admin wrote, never capped
            return PERMANENT
        grown = self.block_time * self.multiplier ** min(earlier_blocks, 64)
        return min(grown, self.max_block_time, MAX_DURATION)


@dataclass(frozen=True, slots=True)
class Aggregation:
    ipv4: int = 32                 # block the offender's /ipv4 (or /ipv6) instead of it
    ipv6: int = 128
    score_by_prefix: bool = False  # and score the whole prefix together
    adaptive: int = 0              # this many blocked hosts of one prefix block it (0: off)
    adaptive_ipv4: int = 24
    adaptive_ipv6: int = 64


@dataclass(frozen=True, slots=True)
class BlockerConfig:
    policy: Policy = field(default_factory=Policy)
    services: Mapping[str, Policy] = field(default_factory=dict)
    blacklist: int | None = None   # lifetime danger that blocks for good; None: off
    allow: tuple[Network, ...] = LOOPBACK
    aggregation: Aggregation = field(default_factory=Aggregation)


@dataclass(frozen=True, slots=True)
class Block:
    target: str                  # an address, or a prefix such as 192.0.2.0/24
    since: float
    until: float                 # PERMANENT (infinity) for good
    reason: str                  # score, blacklist, adaptive or manual
    score: int
    signatures: tuple[str, ...]  # behind the score, first seen first
    nth: int                     # the target's how-many-th block, 1 for the first
    lifetime: int                # the target's danger over all time (see History)
    origin: str = ""             # who decided it elsewhere ("fleet:mx2"); "": this host

    @property
    def permanent(self) -> bool:
        return self.until == PERMANENT


@dataclass(slots=True)
class History:
    """What is remembered of a target across restarts.

    Lifetime danger is kept for every attacking address while the blacklist is
    on; otherwise for addresses that were blocked at least once.
    """

    blocks: int = 0
    lifetime: int = 0


@dataclass(slots=True)
class BlockerCounters:
    attacks: int = 0
    allowed: int = 0        # attacks from allow-listed addresses: counted, never blocked
    while_blocked: int = 0  # attacks from addresses already blocked
    blocks: int = 0


class _AllowList:
    """Membership in a set of networks in O(log n), without ipaddress objects."""

    def __init__(self, networks: Iterable[Network]) -> None:
        self._seen: dict[str, bool] = {}
        self.ranges: dict[int, tuple[list[int], list[int]]] = {}
        for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
            spans = sorted((int(n.network_address), int(n.broadcast_address))
                           for n in networks if n.version == version)
            merged: list[list[int]] = []
            for start, end in spans:
                if merged and start <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], end)
                else:
                    merged.append([start, end])
            self.ranges[family] = ([s for s, _ in merged], [e for _, e in merged])

    def __contains__(self, address: str) -> bool:
        found = self._seen.get(address)
        if found is None:  # attackers come back: each is looked up once in a while
            if len(self._seen) >= 4096:
                self._seen.clear()
            found = self._seen[address] = self._holds(address)
        return found

    def _holds(self, address: str) -> bool:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        starts, ends = self.ranges[family]
        if not starts:
            return False
        value = int.from_bytes(socket.inet_pton(family, address), "big")
        i = bisect_right(starts, value) - 1
        return i >= 0 and value <= ends[i]


def normal_target(text: str) -> str:
    """An address or prefix as the blocker keys it; ValueError if it is neither."""
    if "/" not in text:
        address = normalize_address(text)
        if address is None:
            raise ValueError(f"{text!r} is not an IP address")
        return address
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or prefix") from None
    if network.prefixlen == network.max_prefixlen:
        return normal_target(str(network.network_address))
    return str(network)


def _merged(first: list[object], second: list[object]) -> list[object]:
    """Two keys' event lists as one, oldest first (the window drops from the front)."""
    stride = Window.STRIDE
    events = sorted((events[i:i + stride] for events in (first, second)
                     for i in range(0, len(events), stride)),
                    key=lambda event: event[0])  # type: ignore[arg-type, return-value]
    return [field for event in events for field in event]


def prefix_of(address: str, ipv4: int, ipv6: int) -> str:
    """The address itself for a full-length prefix, else its network, e.g. 192.0.2.0/24."""
    length = ipv6 if ":" in address else ipv4
    if length >= (128 if ":" in address else 32):
        return address
    return str(ipaddress.ip_network(f"{address}/{length}", strict=False))


class Blocker:
    # Per scoring key, one flat list [t, points, attempts, group, signature, t, ...]
    # (a list per event would triple the memory of a million offenders), kept
    # by window.py in a table of arrays while it holds one event.
    _STRIDE = Window.STRIDE

    def __init__(self, config: BlockerConfig | None = None) -> None:
        self.config = config or BlockerConfig()
        self.counters = BlockerCounters()
        self.active: dict[str, Block] = {}
        self.history: dict[str, History] = {}
        self._allow = _AllowList(self.config.allow)
        self._groups = [self.config.policy, *dict.fromkeys(self.config.services.values())]
        self._group_of = {service: self._groups.index(policy)
                          for service, policy in self.config.services.items()}
        self._events = Window()  # scoring key -> its events, compact (see window.py)
        self._longest = max(p.window for p in self._groups)  # events older are of no use
        agg = self.config.aggregation
        self._whole_hosts = agg.ipv4 == 32 and agg.ipv6 == 128
        self._expiry: list[tuple[float, str]] = []          # heap of (until, target)
        self._recent: dict[str, list[tuple[float, str]]] = {}  # adaptive: prefix -> blocks

    # ------------------------------------------------------------ restoring

    def restore(self, blocks: Iterable[Block], history: Mapping[str, History]) -> None:
        """Takes back what a previous run persisted (active blocks, history)."""
        self.history.update(history)
        for block in blocks:
            self._activate(block)

    def take_over(self, old: Blocker) -> None:
        """Everything the blocker of the previous policy knew (a reload): active
        blocks, history, counters, every score in progress and the hosts that
        count towards an adaptive prefix block. Each carried attack counts
        from now on as its service's policy and the aggregation say here: a
        reload never forgets an attack in the window (2 attacks, reload, 1
        attack blocks), whatever changed."""
        self.restore(old.active.values(), old.history)
        self.counters = old.counters
        agg, before = self.config.aggregation, old.config.aggregation
        if (agg.adaptive_ipv4, agg.adaptive_ipv6) == (before.adaptive_ipv4,
                                                       before.adaptive_ipv6):
            self._recent = old._recent
        same_groups = self._group_of == old._group_of
        same_keys = (not agg.score_by_prefix and not before.score_by_prefix) or (
            agg == before and self.config.allow == old.config.allow)
        if same_groups and same_keys:  # the usual reload: nothing to redo
            self._events = old._events
            return
        stride = self._STRIDE
        for key, events in old._events.items():
            if not same_groups:  # a service's policy group (signature ids start with it)
                for i in range(3, len(events), stride):
                    service = str(events[i + 1]).split(".", 1)[0]
                    events[i] = self._group_of.get(service, 0)
            new_key = key if same_keys else self._scoring_key(key)
            if new_key is not None:
                earlier = self._events.take(new_key)
                self._events.put(new_key, _merged(earlier, events) if earlier else events)

    def _scoring_key(self, key: str) -> str | None:
        """Where an address's (or prefix's) score counts under this aggregation;
        None for a prefix's that cannot be split among its hosts."""
        agg = self.config.aggregation
        if "/" in key:
            length = int(key.rsplit("/", 1)[1])
            wanted = agg.ipv6 if ":" in key else agg.ipv4
            return key if agg.score_by_prefix and length == wanted else None
        return self._prefix(key, agg.ipv4, agg.ipv6) if agg.score_by_prefix else key

    def _prefix(self, address: str, ipv4: int, ipv6: int) -> str:
        """The address's prefix, or the address alone when the prefix would also
        cover an allow-listed network (a /16 around an attacker must not cut
        off the relay next door) or addresses never blocked (address.unblockable)."""
        prefix = prefix_of(address, ipv4, ipv6)
        if prefix != address:
            network = ipaddress.ip_network(prefix)
            if unblockable(network) or any(network.overlaps(allowed)
                                       for allowed in self.config.allow):
                return address
        return prefix

    def allows(self, address: str) -> bool:
        """Whether the address is allow-listed (never blocked)."""
        return address in self._allow

    # ------------------------------------------------------------- deciding

    def observe(self, attack: Attack, now: float, counted: Counted | None = None) -> Block | None:
        """The block this line causes, if any; `counted`: what it adds (attempts.py),
        by default one attempt of its danger."""
        points, attempts = ((attack.danger, 1) if counted is None
                            else (counted.points, counted.new))
        address = attack.address
        self.counters.attacks += 1
        if address in self._allow:
            self.counters.allowed += 1
            return None
        agg = self.config.aggregation
        target = address if self._whole_hosts else self._prefix(address, agg.ipv4, agg.ipv6)
        key = target if agg.score_by_prefix else address
        if self.config.blacklist is not None:
            self._remember(key).lifetime += points
        elif key in self.history:
            self.history[key].lifetime += points
        if self._covered(address, target, now):
            self.counters.while_blocked += 1
            return None
        if not points and not attempts:
            return None  # it reports an attempt already scored
        group = self._group_of.get(attack.service, 0)
        policy = self._groups[group]
        events = self._events.take(key)
        events += (now, points, attempts, group, attack.signature)
        score, signatures = self._score(events, group, policy, now)
        lifetime = self.history[key].lifetime if key in self.history else 0
        if self.config.blacklist is not None and lifetime >= self.config.blacklist:
            self._events.put(key, events)
            return self._block(target, now, PERMANENT, "blacklist", score, signatures)
        if score < policy.threshold:
            self._events.put(key, events)
            return None
        earlier = self.history[target].blocks if target in self.history else 0
        block = self._block(target, now, now + policy.duration(earlier), "score", score,
                            signatures)
        return self._adapt(address, now, policy) or block

    def _score(self, events: list[object], group: int, policy: Policy,
               now: float) -> tuple[int, tuple[str, ...]]:
        """Drops events that left every window; the score of `group` within its own."""
        stride, horizon = self._STRIDE, now - self._longest
        start = 0
        while start < len(events) and events[start] <= horizon:  # type: ignore[operator]
            start += stride
        del events[:start]
        own_horizon = now - policy.window
        score, signatures = 0, []
        field = 2 if policy.count_attempts else 1
        for i in range(0, len(events), stride):
            if events[i + 3] == group and events[i] > own_horizon:  # type: ignore[operator]
                score += events[i + field]  # type: ignore[operator]
                signatures.append(events[i + 4])
        return score, tuple(dict.fromkeys(signatures))  # type: ignore[arg-type]

    def _covered(self, address: str, target: str, now: float) -> bool:
        """Whether a live block already covers the address (as host or prefix)."""
        active = self.active
        if not active:
            return False
        candidates = [address] if target == address else [address, target]
        agg = self.config.aggregation
        if agg.adaptive:
            candidates.append(prefix_of(address, agg.adaptive_ipv4, agg.adaptive_ipv6))
        for candidate in candidates:
            block = active.get(candidate)
            if block is not None and now < block.until:
                return True
        return False

    def _adapt(self, address: str, now: float, policy: Policy) -> Block | None:
        agg = self.config.aggregation
        if not agg.adaptive:
            return None
        prefix = self._prefix(address, agg.adaptive_ipv4, agg.adaptive_ipv6)
        if prefix == address:
            return None
        recent = [(t, host) for t, host in self._recent.get(prefix, ())
                  if t > now - policy.window and host != address] + [(now, address)]
        self._recent[prefix] = recent
        if len(recent) < agg.adaptive:
            return None
        del self._recent[prefix]
        earlier = self.history[prefix].blocks if prefix in self.history else 0
        hosts = tuple(host for _, host in recent)
        return self._block(prefix, now, now + policy.duration(earlier), "adaptive",
                           len(hosts), hosts)

    def _block(self, target: str, now: float, until: float, reason: str, score: int,
               signatures: tuple[str, ...]) -> Block:
        history = self._remember(target)
        history.blocks += 1
        if reason != "adaptive" and self.config.blacklist is None:
            history.lifetime = max(history.lifetime, score)
        block = Block(target, now, until, reason, score, signatures, history.blocks,
                      history.lifetime)
        self._activate(block)
        self.counters.blocks += 1
        return block

    def _remember(self, target: str) -> History:
        found = self.history.get(target)
        if found is None:
            found = self.history[target] = History()
        return found

    def _activate(self, block: Block) -> None:
        self.active[block.target] = block
        if not block.permanent:
            heapq.heappush(self._expiry, (block.until, block.target))

    # ------------------------------------------------------ time and admins

    def expire(self, now: float) -> list[Block]:
        """The blocks whose time is up, no longer active."""
        ended = []
        while self._expiry and self._expiry[0][0] <= now:
            until, target = heapq.heappop(self._expiry)
            block = self.active.get(target)
            if block is not None and block.until == until:
                del self.active[target]
                ended.append(block)
        return ended

    def next_expiry(self) -> float | None:
        return self._expiry[0][0] if self._expiry else None

    def block(self, target: str, until: float, now: float, reason: str = "manual") -> Block:
        """An admin's block of an address or prefix (allow-listed ones, and
        those address.unblockable() names or wider than WIDEST_PREFIX, are refused)."""
        normal = normal_target(target)
        network = ipaddress.ip_network(normal)
        refused = unblockable(network)
        if refused:
            raise ValueError(f"{target} {refused}")
        allowed = next((a for a in self.config.allow if network.overlaps(a)), None)
        if allowed is not None:  # say which entry: it may be this host's own address
            held = "is in" if network.subnet_of(allowed) else "covers"  # type: ignore[arg-type]
            raise ValueError(f"{target} {held} {allowed}, which is allow-listed (allow, "
                             "loopback or this host's own addresses): never blocked")
        if network.prefixlen < WIDEST_PREFIX[network.version]:
            raise ValueError(f"{target} is wider than /{WIDEST_PREFIX[network.version]}, "
                             "the widest block allowed")
        return self._block(normal, now, until, reason, 0, ())

    def adopt(self, block: Block) -> Block:
        """A block decided elsewhere (admitted by bounds.py) in force here too.

        The target's history rises to what the remote counted, so that
        escalation and the blacklist count the fleet's history; a block
        starts a fresh score, as one of this host's own does."""
        history = self._remember(block.target)
        history.blocks = max(history.blocks, block.nth)
        history.lifetime = max(history.lifetime, block.lifetime)
        self._events.drop(block.target)
        self._activate(block)
        return block

    def covering(self, target: str, now: float) -> Block | None:
        """The live block of `target` itself, else of the longest prefix covering it
        (an aggregated, adaptive or manual block of its /24, /64, ...)."""
        block = self.active.get(target)
        if block is not None and now < block.until:
            return block
        network = ipaddress.ip_network(target)
        for length in range(network.prefixlen - 1, -1, -1):
            prefix = str(network.supernet(new_prefix=length))
            block = self.active.get(prefix)
            if block is not None and now < block.until:
                return block
        return None

    def unblock(self, target: str) -> Block | None:
        """Ends a block now (the expiry heap forgets it lazily)."""
        block = self.active.pop(target, None)
        self._events.drop(target)
        return block

    def prune(self, now: float) -> int:
        """Forgets scores that left every window; returns how many addresses."""
        return self._events.prune(now - self._longest)

    def attempts(self, key: str, now: float) -> dict[str, int]:
        """Attempts per service of an address (or scored prefix) within the longest window."""
        events = self._events.get(key) or []
        horizon = now - self._longest
        found: dict[str, int] = {}
        for i in range(0, len(events), self._STRIDE):
            if events[i] > horizon:  # type: ignore[operator]
                service = str(events[i + 4]).split(".", 1)[0]
                found[service] = found.get(service, 0) + events[i + 2]  # type: ignore[operator]
        return found

    def tracked(self) -> int:
        """Addresses (or prefixes) with a score in the window."""
        return len(self._events)
