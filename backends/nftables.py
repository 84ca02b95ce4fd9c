"""The nftables driver: sets with kernel timeouts, one libnftables call a batch.

Rules of this file:
* Everything goes through libnftables (Debian's python3-nftables, the JSON
  API for elements); no `nft` process, no shell.
* Every apply and every sync is ONE libnftables call, which the kernel runs as
  one transaction: all of it happens, or none does.
* start() creates what is missing and keeps every element: a restart of
  syslogban never opens a gap in the protection.
* The kernel ends blocks itself (per-element timeouts): a block outlives a
  dead daemon and still ends on time.

Layout (table name configurable): four sets, hosts and prefixes apart (single
adds into an interval set slow down to ~20 ms at 10k elements, measured; a
plain set stays at ~0.2 ms), and a chain at `hook input priority -10` (and
optionally `hook forward`, for a gateway) that drops, or rejects TCP with a
reset, what the sets hold, optionally only for some TCP ports. hooks = []
makes no chain: the admin's own ruleset refers to the sets.

    table inet syslogban {
        set hosts4 { type ipv4_addr; flags timeout; }
        set hosts6 { type ipv6_addr; flags timeout; }
        set nets4 { type ipv4_addr; flags interval, timeout; }
        set nets6 { type ipv6_addr; flags interval, timeout; }
        chain input { type filter hook input priority -10; policy accept;
            ip saddr @hosts4 drop ... }
    }

Options: table ("syslogban"), hooks (["input"]; also "forward"; [] for none),
action ("drop" or "reject"), ports ([] for all traffic; e.g. [25, 465, 587,
993, 995] or the names smtp, submissions, ...), priority (-10).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .base import PERMANENT, Backend, BackendError, Change

SETS = {(4, False): "hosts4", (6, False): "hosts6", (4, True): "nets4", (6, True): "nets6"}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
_PORT = re.compile(r"[a-z][a-z0-9-]{0,31}|[0-9]{1,5}")


def _words(key: str, value: str | Iterable[Any]) -> list[str]:
    """A list option, from TOML (a list) or a flag ("a,b")."""
    if not isinstance(value, (str, list, tuple)):
        raise BackendError(f"nftables: {key}: a list or a text of names, such as "
                           "[\"smtp\", \"submission\"] or \"smtp,submission\"")
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


def _priority(value: int | str) -> int:
    """The chains' priority, from TOML (a number) or a flag (its digits)."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,10}\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not -2**31 <= value < 2**31:
        raise BackendError(f"nftables: priority {value!r}: a whole number (the chains' "
                           "priority, such as -10)")
    return value


class NftablesBackend(Backend):
    name = "nftables"
    kernel_expiry = True

    def __init__(self, table: str = "syslogban", hooks: str | Iterable[str] = ("input",),
                 action: str = "drop", ports: str | Iterable[Any] = (),
                 priority: int | str = -10) -> None:
        self.table = table
        self.hooks = _words("hooks", hooks)
        self.action = action
        self.ports = _words("ports", ports)
        self.priority = _priority(priority)
        if not isinstance(table, str) or not _NAME.fullmatch(table):
            raise BackendError(f"nftables: table name {table!r}: letters, digits and _ only")
        if not set(self.hooks) <= {"input", "forward"}:
            raise BackendError("nftables: hooks may be input and forward (or none)")
        if action not in ("drop", "reject"):
            raise BackendError("nftables: action is drop or reject (a TCP reset)")
        if not all(_PORT.fullmatch(p) for p in self.ports):
            raise BackendError("nftables: ports are numbers or service names (smtp, imaps...)")
        try:
            import nftables
        except ImportError:
            raise BackendError("nftables: the Python module is missing: install Debian's "
                               "python3-nftables (it is not on PyPI) and use a virtual "
                               "environment made with --system-site-packages") from None
        self._nft = nftables.Nftables()
        self._nft.set_json_output(True)

    # ------------------------------------------------------------ the calls

    def _run(self, commands: list[dict[str, Any]], what: str) -> Any:
        if not commands:
            return None
        rc, output, error = self._nft.json_cmd({"nftables": commands})
        if rc != 0:
            raise BackendError(f"nftables: {what} refused: {_brief(error)}")
        return output

    def _script(self, text: str, what: str) -> None:
        rc, _, error = self._nft.cmd(text)
        if rc != 0:
            raise BackendError(f"nftables: {what} refused: {_brief(error)}")

    # ------------------------------------------------------------ interface

    def start(self) -> None:
        t = f"inet {self.table}"
        lines = [f"add table {t}"]
        for (_, interval), name in SETS.items():
            kind = "ipv4_addr" if name.endswith("4") else "ipv6_addr"
            flags = "interval, timeout" if interval else "timeout"
            lines.append(f"add set {t} {name} {{ type {kind}; flags {flags}; }}")
        for hook in self.hooks:
            lines.append(f"add chain {t} {hook} {{ type filter hook {hook} priority "
                         f"{self.priority}; policy accept; }}")
            lines.append(f"flush chain {t} {hook}")  # its rules, never the sets
            lines += [f"add rule {t} {hook} {rule}" for rule in self._rules()]
        self._script("\n".join(lines), "creating the table, sets and chains")

    def _rules(self) -> list[str]:
        ports = f"tcp dport {{ {', '.join(self.ports)} }} " if self.ports else ""
        rules = []
        for name in SETS.values():
            match = f"{'ip' if name.endswith('4') else 'ip6'} saddr @{name}"
            if self.action == "reject":
                rules.append(f"{ports}{match} meta l4proto tcp reject with tcp reset")
            if self.action == "drop" or not self.ports:
                rules.append(f"{ports}{match} drop")
        return rules

    def apply(self, changes: Sequence[Change], now: float) -> None:
        """Blocks are add, delete, add: whether or not an element was there, it
        ends up there with the new timeout (kernels before 6.12 keep the old
        timeout of an element added again). Unblocks are add, delete: no error
        when the kernel already ended it. Only a target's last change counts."""
        last = {change.target: change for change in changes}
        blocks: dict[str, list[tuple[Any, int | None]]] = {}
        unblocks: dict[str, list[tuple[Any, int | None]]] = {}
        for change in last.values():
            name, value = self._element(change.target)
            timeout = _timeout(change.until, now) if change.block else None
            if change.block and timeout == 0:
                continue  # ended already
            (blocks if change.block else unblocks).setdefault(name, []).append((value, timeout))
        commands: list[dict[str, Any]] = []
        for name, elems in unblocks.items():
            bare = [(value, None) for value, _ in elems]
            commands += [self._elements("add", name, bare), self._elements("delete", name, bare)]
        for name, elems in blocks.items():
            bare = [(value, None) for value, _ in elems]
            commands += [self._elements("add", name, elems), self._elements("delete", name, bare),
                         self._elements("add", name, elems)]
        self._run(commands, f"a batch of {len(changes)} changes")

    def sync(self, active: Mapping[str, float], now: float) -> None:
        wanted: dict[str, list[tuple[Any, int | None]]] = {name: [] for name in SETS.values()}
        for target, until in active.items():
            timeout = _timeout(until, now)
            if timeout != 0:
                name, value = self._element(target)
                wanted[name].append((value, timeout))
        commands = [{"flush": {"set": {"family": "inet", "table": self.table, "name": name}}}
                    for name in SETS.values()]
        commands += [self._elements("add", name, elems) for name, elems in wanted.items()
                     if elems]
        self._run(commands, f"replacing the sets with {len(active)} blocks")

    def list(self) -> dict[str, float]:
        now = time.time()
        held: dict[str, float] = {}
        for name in SETS.values():
            output = self._run([{"list": {"set": {"family": "inet", "table": self.table,
                                                  "name": name}}}], f"listing set {name}")
            for item in _json(output).get("nftables", []):
                for elem in item.get("set", {}).get("elem", []):
                    target, expires = _parse_elem(elem)
                    held[target] = now + expires if expires is not None else PERMANENT
        return held

    def stop(self, flush: bool = False) -> None:
        if flush:  # "add" first: one transaction that also succeeds when there is none
            self._script(f"add table inet {self.table}\ndelete table inet {self.table}",
                         "removing the table")

    # -------------------------------------------------------------- helpers

    def _element(self, target: str) -> tuple[str, Any]:
        network = ipaddress.ip_network(target, strict=False)
        prefix = network.prefixlen < network.max_prefixlen
        name = SETS[(network.version, prefix)]
        if not prefix:
            return name, str(network.network_address)
        return name, {"prefix": {"addr": str(network.network_address),
                                 "len": network.prefixlen}}

    def _elements(self, verb: str, name: str,
                  elems: Sequence[tuple[Any, int | None]]) -> dict[str, Any]:
        return {verb: {"element": {
            "family": "inet", "table": self.table, "name": name,
            "elem": [value if timeout is None else {"elem": {"val": value, "timeout": timeout}}
                     for value, timeout in elems]}}}


def _timeout(until: float, now: float) -> int | None:
    """Seconds left, rounded up; None for good; 0 when it has ended."""
    if until == PERMANENT:
        return None
    return max(0, math.ceil(until - now))


def _parse_elem(elem: Any) -> tuple[str, int | None]:
    expires = None
    if isinstance(elem, dict) and "elem" in elem:
        expires = elem["elem"].get("expires")
        elem = elem["elem"]["val"]
    if isinstance(elem, dict) and "prefix" in elem:
        return f"{elem['prefix']['addr']}/{elem['prefix']['len']}", expires
    return str(elem), expires


def _json(output: Any) -> dict[str, Any]:
    if isinstance(output, dict):
        return output
    return json.loads(output) if output else {}


def _brief(error: str) -> str:
    text = " ".join(str(error).split())
    hint = " (needs root or CAP_NET_ADMIN)" if "Operation not permitted" in text else ""
    return text[:300] + ("..." if len(text) > 300 else "") + hint
