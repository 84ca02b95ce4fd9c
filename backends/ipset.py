"""The ipset driver: two hash:net sets with kernel timeouts, for iptables users (Linux).

Rules of this file:
* syslogban owns two sets and nothing else: NAME4 (hash:net, family inet) and
  NAME6 (hash:net, family inet6), both made with timeout support. The
  iptables rules that use them are the administrator's (contrib/ipset/);
  no rule is ever touched here, and start() never flushes a set.
* Each element carries its own kernel timeout: until - now in whole seconds,
  at most the kernel's 2147483 s (24.8 days; a longer block is cut to that,
  with a warning, and the daemon's firewall check puts it back when the
  kernel ends it early). A permanent block has timeout 0, which in a set with
  timeout support means "never expires". The kernel ends blocks itself, also
  those of a dead daemon (kernel_expiry). Blocking again sets the new end.
* Netlink only, through pyroute2's AsyncIPSet: no ipset command, no shell.
  All netlink work runs on one private thread with an event loop of its own:
  pyroute2 keeps its socket per thread and cannot run inside the daemon's
  running loop; one thread also keeps apply, sync and list from interleaving.
* ipset has no transaction spanning several messages, so
  - apply checks the whole batch before the first message, then changes one
    element a message (unblocks first, so that a full set makes room) and, if
    the kernel refuses one, puts back every element it already changed
    (removed again, or re-added with the timeout it had): all or nothing.
    The old timeouts come from one read of the set, made only by a batch that
    unblocks or blocks again: a batch of new blocks reads nothing;
  - sync fills a fresh temporary set per family, in messages of many elements
    each, and swaps it with the live one (IPSET_CMD_SWAP, atomic in the
    kernel, allowed while iptables rules use the set); the live sets never
    hold a partial state, and a failed sync leaves them as they were.

Options: set_name ("syslogban": sets syslogban4 and syslogban6), maxelem
(1000000, the most elements a set may hold; ipset's own default is 65536).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import math
import re
import socket
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .base import PERMANENT, Backend, BackendError, Change

try:
    from pyroute2.ipset import AsyncIPSet, NoSuchObject
    from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST, NLMSG_ERROR
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.nfnetlink.ipset import (IPSET_CMD_ADD, IPSET_ERR_BUSY,
                                                  IPSET_ERR_EXIST, IPSET_ERR_PROTOCOL,
                                                  IPSET_ERR_TYPE_SPECIFIC,
                                                  IPSET_FLAG_LIST_HEADER, ipset_msg)
except ImportError as exc:  # not Linux, or pyroute2 not installed: __init__ says so
    _MISSING: ImportError | None = exc
else:
    _MISSING = None

log = logging.getLogger("syslogban.backend.ipset")

T = TypeVar("T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Steps = list[tuple[Network, int | None]]   # elements with a timeout, or None
Elements = list[tuple[Network, int]]       # elements with a timeout (0: permanent)

MAX_TIMEOUT = 2147483      # seconds: the kernel's IPSET_MAX_TIMEOUT; more is cut to it
CHUNK = 256                # elements per message when sync fills a set (< 64 KiB)
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
_FAMILY_NAMES = {socket.AF_INET: "inet", socket.AF_INET6: "inet6"}
_ADDRESS_ATTR = {4: "IPSET_ATTR_IPADDR_IPV4", 6: "IPSET_ATTR_IPADDR_IPV6"}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,24}")   # + "6-sync" fits ipset's 31
_TEMPORARY = "-sync"


def _reason(exc: Exception) -> str:
    """What the kernel said, in words (pyroute2 leaves some codes unexplained)."""
    code = getattr(exc, "code", None) or getattr(exc, "errno", None)
    known = {
        errno.EPERM: "operation not permitted (needs root or CAP_NET_ADMIN)",
        errno.ENOENT: "the set does not exist",
        IPSET_ERR_TYPE_SPECIFIC: "the set is full (raise the backend option maxelem)",
        IPSET_ERR_BUSY: "the set is in use by a firewall rule",
        IPSET_ERR_PROTOCOL: "the kernel refused the message (ipset protocol error)",
    }
    if code in known:
        return known[code]
    text = exc.args[1] if len(exc.args) > 1 else str(exc)  # pyroute2: (code, message)
    return f"{text} (error {code})"


def _parse(target: str) -> Network:
    try:
        network = ipaddress.ip_network(target)
    except ValueError as exc:
        raise BackendError(f"ipset: bad target {target!r}: {exc}") from None
    if network.prefixlen == 0:
        raise BackendError(f"ipset: bad target {target!r}: a hash:net set holds no /0")
    return network


def _spelling(network: Network) -> str:
    """A host as its address, a prefix as address/length: the blocker's spelling."""
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def _timeout(target: str, until: float, now: float) -> int:
    """The element timeout for a block until `until`: 0 is permanent."""
    if until == PERMANENT:
        return 0
    seconds = max(1, math.ceil(until - now))
    if seconds > MAX_TIMEOUT:
        log.warning("ipset: the block of %s is cut to %d s, the kernel's longest timeout; "
                    "the firewall check puts it back when it ends early", target, MAX_TIMEOUT)
        return MAX_TIMEOUT
    return seconds


def _is_reply_end(msg: Any) -> bool:
    return bool(msg["header"]["type"] == NLMSG_ERROR)


class IpsetBackend(Backend):
    name = "ipset"
    kernel_expiry = True

    def __init__(self, set_name: str = "syslogban", maxelem: int | str = 1_000_000) -> None:
        if _MISSING is not None:
            raise BackendError(f"ipset: pyroute2 is needed ({_MISSING}); "
                               "install it in syslogban's environment (Linux only)")
        if not isinstance(set_name, str) or not _NAME.fullmatch(set_name):
            raise BackendError(f"ipset: set_name {set_name!r}: a letter, then letters, digits, "
                               "_ . or -, at most 25 in all")
        try:
            self.maxelem = int(maxelem)
        except (ValueError, TypeError):
            raise BackendError(f"ipset: maxelem {maxelem!r} is not a number") from None
        if not 1 <= self.maxelem < 2**32:
            raise BackendError(f"ipset: maxelem {self.maxelem} is out of range")
        self.sets = {version: f"{set_name}{version}" for version in FAMILIES}
        self._loop = asyncio.new_event_loop()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="syslogban-ipset")
        self._socket: AsyncIPSet | None = None
        self._protocol = 0   # the ipset protocol version the kernel speaks
        self._stopped = False

    # ------------------------------------------------------------ the interface

    def start(self) -> None:
        for name, references in self._run(self._ensure_sets).items():
            if not references:
                log.warning("ipset: no firewall rule uses set %s yet: nothing is blocked "
                            "until rules like those of contrib/ipset/ are loaded", name)

    def apply(self, changes: Sequence[Change], now: float) -> None:
        plan: dict[Network, int | None] = {}   # element -> timeout; None: unblock
        for change in changes:                  # the last change of a target wins
            network = _parse(change.target)
            plan[network] = _timeout(change.target, change.until, now) if change.block else None
        if plan:
            unblocks = [(n, t) for n, t in plan.items() if t is None]
            blocks = [(n, t) for n, t in plan.items() if t is not None]
            self._run(self._apply, unblocks + blocks)

    def sync(self, active: Mapping[str, float], now: float) -> None:
        wanted: dict[int, Elements] = {version: [] for version in FAMILIES}
        for target, until in active.items():
            network = _parse(target)
            if until > now:
                wanted[network.version].append((network, _timeout(target, until, now)))
        self._run(self._sync, wanted)

    def list(self) -> dict[str, float]:
        return self._run(self._list)

    def stop(self, flush: bool = False) -> None:
        if self._stopped:
            return
        try:
            if flush:
                self._run(self._flush)
        finally:
            self._stopped = True
            self._worker.submit(self._loop.run_until_complete, self._close()).result()
            self._worker.submit(self._loop.close).result()
            self._worker.shutdown()

    # ------------------------------------------------------------ the worker

    def _run(self, work: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """work(*args) on the netlink thread; the caller waits for its result."""
        if self._stopped:
            raise BackendError("ipset: the backend was stopped")
        return self._worker.submit(lambda: self._loop.run_until_complete(work(*args))).result()

    async def _netlink(self) -> AsyncIPSet:
        if self._socket is None:
            sock = AsyncIPSet()
            try:
                await sock.setup_endpoint()
                reply = await sock.get_proto_version()
            except (NetlinkError, OSError) as exc:
                sock.close()
                raise BackendError(f"ipset: cannot open netlink: {_reason(exc)}") from exc
            self._socket = sock
            self._protocol = reply[0].get_attr("IPSET_ATTR_PROTOCOL")
        return self._socket

    async def _close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def _call(self, what: str, coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            return await coroutine
        except (NetlinkError, OSError) as exc:
            raise BackendError(f"ipset: cannot {what}: {_reason(exc)}") from exc

    # ------------------------------------------------------------ the sets

    async def _header(self, name: str) -> Any | None:
        """The set's header (type, family, create options), or None when it is missing."""
        sock = await self._netlink()
        try:
            headers = [msg async for msg in await sock.list(name, flags=IPSET_FLAG_LIST_HEADER)]
            return headers[0]
        except NoSuchObject:
            return None
        except (NetlinkError, OSError) as exc:
            raise BackendError(f"ipset: cannot read set {name}: {_reason(exc)}") from exc

    async def _ensure_sets(self) -> dict[str, int]:
        """Creates the sets that are missing; how many rules use each."""
        references: dict[str, int] = {}
        for version, family in FAMILIES.items():
            name = self.sets[version]
            header = await self._header(name)
            if header is None:
                sock = await self._netlink()
                await self._call(f"create set {name}", sock.create(
                    name, stype="hash:net", family=family, timeout=0, maxelem=self.maxelem))
                log.info("ipset: created set %s (hash:net, timeout, maxelem %d)",
                         name, self.maxelem)
                references[name] = 0
            else:
                data = header.get_attr("IPSET_ATTR_DATA")
                found = (header.get_attr("IPSET_ATTR_TYPENAME"),
                         _FAMILY_NAMES.get(header.get_attr("IPSET_ATTR_FAMILY"), "?"),
                         data.get_attr("IPSET_ATTR_TIMEOUT") is not None)
                if found != ("hash:net", _FAMILY_NAMES[family], True):
                    raise BackendError(
                        f"ipset: set {name} exists but is {found[0]} family {found[1]}"
                        f"{'' if found[2] else ' without timeout support'}; syslogban needs "
                        f"hash:net family {_FAMILY_NAMES[family]} with timeout support: "
                        f"destroy the set, or give syslogban another set_name")
                references[name] = data.get_attr("IPSET_ATTR_REFERENCES") or 0
        return references

    async def _read(self, version: int) -> dict[Network, int]:
        """The elements of one set now, with their timeouts (0: permanent)."""
        name = self.sets[version]
        sock = await self._netlink()
        held: dict[Network, int] = {}
        try:
            async for msg in await sock.list(name):
                adt = msg.get_attr("IPSET_ATTR_ADT")
                for data in adt.get_attrs("IPSET_ATTR_DATA") if adt else ():
                    address = data.get_attr("IPSET_ATTR_IP_FROM").get_attr(
                        _ADDRESS_ATTR[version])
                    length = data.get_attr("IPSET_ATTR_CIDR")
                    held[ipaddress.ip_network(f"{address}/{length}")] = (
                        data.get_attr("IPSET_ATTR_TIMEOUT") or 0)
        except (NetlinkError, OSError) as exc:
            raise BackendError(f"ipset: cannot list set {name}: {_reason(exc)}") from exc
        return held

    async def _list(self) -> dict[str, float]:
        now = time.time()
        return {_spelling(network): PERMANENT if timeout == 0 else now + timeout
                for version in FAMILIES
                for network, timeout in (await self._read(version)).items()}

    async def _add(self, network: Network, timeout: int, exclusive: bool = False) -> bool:
        """Adds or refreshes an element; False when `exclusive` and it was there."""
        name = self.sets[network.version]
        sock = await self._netlink()
        try:
            await sock.add(name, str(network), family=FAMILIES[network.version], etype="net",
                           timeout=timeout, exclusive=exclusive)
        except (NetlinkError, OSError) as exc:
            if exclusive and getattr(exc, "code", None) == IPSET_ERR_EXIST:
                return False
            raise BackendError(f"ipset: cannot add {_spelling(network)} to {name}: "
                               f"{_reason(exc)}") from exc
        return True

    async def _delete(self, network: Network) -> None:
        name = self.sets[network.version]
        sock = await self._netlink()
        await self._call(f"remove {_spelling(network)} from {name}", sock.delete(
            name, str(network), family=FAMILIES[network.version], etype="net",
            exclusive=False))

    async def _flush(self) -> None:
        sock = await self._netlink()
        for name in self.sets.values():
            try:
                await sock.flush(name)
            except NoSuchObject:
                continue
            except (NetlinkError, OSError) as exc:
                raise BackendError(f"ipset: cannot flush set {name}: {_reason(exc)}") from exc

    # ------------------------------------------------------------ apply

    async def _apply(self, plan: Steps) -> None:
        """Unblocks (None), then blocks; on a refusal every element changed so far goes back."""
        done: Steps = []   # element, its timeout before the batch (None: absent)
        snapshots: dict[int, dict[Network, int]] = {}

        async def before(network: Network) -> int | None:
            # Read once a batch, and only when needed: a batch of new blocks reads nothing.
            if network.version not in snapshots:
                snapshots[network.version] = await self._read(network.version)
            return snapshots[network.version].get(network)

        try:
            for network, timeout in plan:
                if timeout is None:
                    previous = await before(network)
                    await self._delete(network)
                elif network.version not in snapshots and await self._add(network, timeout,
                                                                           exclusive=True):
                    previous = None
                else:
                    previous = await before(network)
                    await self._add(network, timeout)
                done.append((network, previous))
        except BackendError as exc:
            raise BackendError(f"{exc}; {await self._undo(done)}") from exc

    async def _undo(self, done: Steps) -> str:
        failed = []
        for network, previous in reversed(done):
            try:
                if previous is None:
                    await self._delete(network)
                else:
                    await self._add(network, previous)
            except BackendError as exc:
                failed.append(str(exc))
        if failed:
            return (f"undoing the batch failed too, the sets may hold part of it until the "
                    f"next sync: {'; '.join(failed)}")
        return "nothing of the batch was kept"

    # ------------------------------------------------------------ sync

    async def _sync(self, wanted: dict[int, Elements]) -> None:
        await self._ensure_sets()
        sock = await self._netlink()
        temporary = {version: name + _TEMPORARY for version, name in self.sets.items()}
        swapped: list[int] = []
        try:
            for version, elements in wanted.items():
                await self._fill(temporary[version], version, elements)
            for version in wanted:
                await self._call(f"swap {temporary[version]} with {self.sets[version]}",
                                 sock.swap(self.sets[version], temporary[version]))
                swapped.append(version)
        except BackendError:
            for version in reversed(swapped):   # swapping again restores the old content
                await self._call(f"swap {self.sets[version]} back",
                                 sock.swap(self.sets[version], temporary[version]))
            raise
        finally:
            for name in temporary.values():
                await self._destroy(name)

    async def _fill(self, name: str, version: int, elements: Elements) -> None:
        """A fresh set `name` holding `elements`, CHUNK elements a message."""
        sock = await self._netlink()
        await self._destroy(name)   # left over by a sync that was interrupted
        await self._call(f"create set {name}", sock.create(
            name, stype="hash:net", family=FAMILIES[version], timeout=0, maxelem=self.maxelem))
        for start in range(0, len(elements), CHUNK):
            msg = ipset_msg()
            msg["attrs"] = [
                ["IPSET_ATTR_PROTOCOL", self._protocol],
                ["IPSET_ATTR_SETNAME", name],
                ["IPSET_ATTR_LINENO", 0],   # the kernel wants it with a list of elements
                ["IPSET_ATTR_ADT", {"attrs": [
                    ["IPSET_ATTR_DATA", {"attrs": [
                        ["IPSET_ATTR_IP_FROM", {"attrs": [
                            [_ADDRESS_ATTR[version], str(network.network_address)]]}],
                        ["IPSET_ATTR_CIDR", network.prefixlen],
                        ["IPSET_ATTR_TIMEOUT", timeout]]}]
                    for network, timeout in elements[start:start + CHUNK]]}],
            ]
            await self._call(f"fill set {name}", sock.request(
                msg, IPSET_CMD_ADD, msg_flags=NLM_F_REQUEST | NLM_F_ACK,
                terminate=_is_reply_end))

    async def _destroy(self, name: str) -> None:
        sock = await self._netlink()
        try:
            await sock.destroy(name)
        except NoSuchObject:
            pass
        except (NetlinkError, OSError) as exc:
            log.warning("ipset: cannot destroy the temporary set %s: %s", name, _reason(exc))
