"""The pf driver (FreeBSD, OpenBSD): blocks are the entries of a pf table.

Rules of this file:
* It changes one table, `<table>` (in `anchor`), and reads it back; it never
  touches rules, other tables or pf.conf. contrib/pf/ has the rules that use
  the table.
* Two ways to the kernel, chosen by `method`: the pfctl program (argv lists,
  the addresses on its stdin with `-f -`, never a shell), or the table ioctls
  on /dev/pf with the structures of bsd_structs.py. Both offer the same five
  table operations (`_Table`); everything above them is shared.
* A failure is a BackendError that says which command or ioctl failed and
  why (pfctl's own message, trimmed); after it the table holds what it held.

Options (keyword arguments from the configuration):
  table        "syslogban"    the pf table, as in `table <syslogban> persist`
  anchor       ""             the anchor holding the table ("" = main ruleset)
  pfctl        "/sbin/pfctl"  the pfctl program
  kill_states  False          also kill the states of newly blocked hosts
                              (`pfctl -k HOST`), ending their open connections
  method       "pfctl"        "pfctl"; "ioctl" (talk to `device` directly); or
                              "auto" (ioctl when `device` is writable)
  device       "/dev/pf"      the pf device of the ioctl method
  system       this machine   "freebsd" or "openbsd": the ioctl structures
                              differ (struct pfr_addr, AF_INET6)
  timeout      30             seconds a pfctl run may take

Atomicity. A batch of only blocks is one `pfctl -T add` (one DIOCRADDADDRS),
a batch of only unblocks one `pfctl -T delete` (DIOCRDELADDRS): the kernel
applies each whole or not at all. A batch that mixes both is NOT sent as a
delete followed by an add: a failing add would leave the deletes done. It is
one `pfctl -T replace` (DIOCRSETADDRS) with the whole wanted content, read
with `-T show` just before: one kernel transaction, so truly atomic. What it
cannot see is another program changing the same table between the read and
the replace; the table belongs to syslogban (keep manual blocks in another
table). `sync` is one replace too.

Size of a request. FreeBSD refuses a DIOCR* request that carries more
entries than net.pf.request_maxcount (pf_ioctl_maxcount, default 65535:
sys/netpfil/pf/pf_ioctl.c pfioctl, DIOCRADDADDRS to DIOCRGETADDRS, EINVAL),
and pfctl of FreeBSD 14 and older sends each -T command as one such request
(sbin/pfctl/pfctl_radix.c -> lib/libpfctl). So, on a kernel that has the
sysctl (read each time: an admin may raise it):
* blocks and unblocks are sent in requests of at most that many entries;
  if one fails part-way, the requests already made are undone (the table is
  read first to know what to restore), so the batch stays all-or-nothing;
* a replace and a read cannot be split (DIOCRSETADDRS is one transaction;
  DIOCRGETADDRS has no offset, pfr_get_addrs only reports the size it
  needs), so when they do not fit, BackendError says which sysctl to raise
  and to what. The ioctl method checks before asking; the pfctl method asks
  (pfctl of FreeBSD 15 talks netlink, which has no such limit) and explains
  pfctl's "Invalid argument" when it comes. OpenBSD has no such limit.

The ioctl method on FreeBSD 15. pfctl moved its table commands to netlink
(PFNL_CMD_TABLE_* in sys/netpfil/pf/pf_nl.h), but the kernel still serves
the DIOCR* table ioctls, unchanged and not behind COMPAT_FREEBSD14
(sys/net/pfvar.h and pf_ioctl.c of FreeBSD main at 186c9554bad7, 2025), with
the same struct pfioc_table, pfr_table and pfr_addr. So both methods work
there; nothing here speaks netlink.

Expiry. pf tables keep no time per entry, so `kernel_expiry` is False: the
daemon unblocks expired entries, and `list()` reports every entry as
PERMANENT (the daemon keeps the real times in its state).

State kill runs `pfctl -k` once per newly blocked target, after the batch is
in the table; a failed kill is logged, never raised (the block stands).

run_tool, split_changes, networks and the option_* checks are shared with
the ipfw driver, the other BSD one.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import math
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from .base import PERMANENT, Backend, BackendError, Change
from .bsd_structs import (MAXPATHLEN, PF_TABLE_NAME_SIZE, PFR_TFLAG_PERSIST, SYSTEMS, Network,
                          PfLayout, System, canonical, network, pf_layout, sort_key)
from .sysctl import SysctlReader, read_sysctl

log = logging.getLogger("syslogban.backend.pf")

METHODS = ("pfctl", "ioctl", "auto")
IoctlFunction = Callable[[int, int, bytearray], object]
# The most entries one request may carry (net.pf.request_maxcount), None for no limit.
Limit = Callable[[], int | None]

_TABLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_ANCHOR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")
_STDERR_LIMIT = 400


def run_tool(argv: Sequence[str], data: bytes = b"", timeout: float = 30.0) -> str:
    """Runs a firewall tool without a shell, `data` on its stdin (never the
    daemon's own stdin); its stdout, or BackendError with its trimmed stderr."""
    command = " ".join(argv)
    try:
        done = subprocess.run(list(argv), input=data, capture_output=True, timeout=timeout,
                              check=False, env={**os.environ, "LC_ALL": "C"})
    except FileNotFoundError:
        raise BackendError(f"{argv[0]} not found: install it or set its path "
                           f"in the backend options") from None
    except subprocess.TimeoutExpired:
        raise BackendError(f"{command} did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise BackendError(f"{argv[0]} cannot be run: {exc.strerror}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or "no message"
        if len(message) > _STDERR_LIMIT:
            message = message[:_STDERR_LIMIT] + " ..."
        raise BackendError(f"{command} failed (exit status {done.returncode}): {message}")
    return done.stdout.decode(errors="replace")


def option_bool(name: str, value: object) -> bool:
    """A yes/no option, from TOML (a bool) or from --backend-option (text)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise BackendError(f"{name} must be true or false, not {value!r}")


def option_seconds(name: str, value: object) -> float:
    """A finite number of seconds above 0, from TOML or from --backend-option (text)."""
    seconds = 0.0
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except ValueError:
            pass
    if not 0 < seconds < math.inf:
        raise BackendError(f"{name} must be a number of seconds above 0, not {value!r}")
    return seconds


def split_changes(changes: Iterable[Change]) -> tuple[list[Network], list[Network]]:
    """(to block, to unblock) of a batch, sorted; the last change of a target wins."""
    final: dict[Network, bool] = {}
    for change in changes:
        try:
            net = network(change.target)
        except ValueError:
            raise BackendError(f"not an address or prefix: {change.target!r}") from None
        final[net] = change.block
    adds = sorted((n for n, block in final.items() if block), key=sort_key)
    deletes = sorted((n for n, block in final.items() if not block), key=sort_key)
    return adds, deletes


def networks(targets: Iterable[str]) -> list[Network]:
    """The targets of a sync, parsed and sorted."""
    try:
        return sorted((network(t) for t in targets), key=sort_key)
    except ValueError as exc:
        raise BackendError(f"not an address or prefix: {exc}") from None


def too_many(table: str, count: int | None, limit: int) -> BackendError:
    """The one line an admin sees when a request cannot fit net.pf.request_maxcount."""
    if count is None:
        return BackendError(f"pfctl cannot read pf table <{table}>: on FreeBSD, \"Invalid "
                            f"argument\" there means it holds more entries than "
                            f"net.pf.request_maxcount ({limit}); raise it above the table's "
                            f"size (pfctl -vvsTables shows it): sysctl net.pf.request_maxcount=N")
    return BackendError(f"pf table <{table}>: {count} entries in one request, more than "
                        f"net.pf.request_maxcount ({limit}) allows; raise it: "
                        f"sysctl net.pf.request_maxcount={count}")


class _Table(Protocol):
    """One pf table, reached through pfctl or /dev/pf."""

    def ensure(self) -> None: ...
    def add(self, nets: list[Network]) -> None: ...
    def delete(self, nets: list[Network]) -> None: ...
    def replace(self, nets: list[Network]) -> None: ...
    def show(self) -> list[Network]: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class _Pfctl:
    """The table through pfctl: addresses as text lines on stdin (`-f -`)."""

    def __init__(self, pfctl: str, table: str, anchor: str, timeout: float,
                 limit: Limit) -> None:
        self.pfctl, self.table, self.timeout, self.limit = pfctl, table, timeout, limit
        self.prefix = [pfctl, "-q", *(["-a", anchor] if anchor else []), "-t", table, "-T"]

    def _run(self, command: str, nets: list[Network] | None = None) -> str:
        argv = [*self.prefix, command]
        data = None if nets is None else "".join(canonical(n) + "\n" for n in nets).encode()
        try:
            if data is None:
                return run_tool(argv, timeout=self.timeout)
            return run_tool([*argv, "-f", "-"], data, self.timeout)
        except BackendError as exc:
            # pfctl says only "Invalid argument." for a request above the limit
            # (pfctl_table.c radix_perror of the ioctl's EINVAL).
            limit, count = self.limit(), None if nets is None else len(nets)
            if limit is not None and "Invalid argument" in str(exc) \
                    and (count is None or count > limit):
                raise too_many(self.table, count, limit) from None
            raise

    def ensure(self) -> None:
        # Adding nothing creates the table (persist) if it is missing, keeps it if not.
        self._run("add", [])

    def add(self, nets: list[Network]) -> None:
        self._run("add", nets)

    def delete(self, nets: list[Network]) -> None:
        self._run("delete", nets)

    def replace(self, nets: list[Network]) -> None:
        self._run("replace", nets)

    def show(self) -> list[Network]:
        # Lines are "   192.0.2.1" or "   2001:db8::/64"; " ! ..." marks a
        # negated entry, which no block of syslogban is.
        nets = []
        for line in self._run("show").splitlines():
            text = line.strip()
            if not text or text.startswith("!"):
                continue
            try:
                nets.append(network(text.split()[0]))
            except ValueError:
                raise BackendError(f"unexpected line from {self.pfctl} -T show: "
                                   f"{line!r}") from None
        return nets

    def flush(self) -> None:
        self._run("flush")

    def kill(self, net: Network) -> None:
        run_tool([self.pfctl, "-q", "-k", canonical(net)], timeout=self.timeout)

    def close(self) -> None:
        """Nothing to release."""


def _kernel_ioctl(fd: int, request: int, arg: bytearray) -> object:
    return fcntl.ioctl(fd, request, arg, True)


class _Ioctl:
    """The table through the DIOCR* ioctls on /dev/pf.

    Each pfioc_table points at a ctypes buffer holding the pfr_addr (or
    pfr_table) array; the buffer lives until the ioctl returns."""

    def __init__(self, layout: PfLayout, device: str, table: str, anchor: str,
                 ioctl: IoctlFunction, limit: Limit) -> None:
        self.layout, self.device, self.name, self.anchor = layout, device, table, anchor
        self.ioctl, self.limit = ioctl, limit
        self.fd: int | None = None

    def _call(self, request: str, buffer: ctypes.Array[ctypes.c_char], esize: int,
              size: int, named: bool = True) -> bytearray:
        if self.fd is None:
            try:
                self.fd = os.open(self.device, os.O_RDWR | os.O_CLOEXEC)
            except OSError as exc:
                raise BackendError(f"cannot open {self.device}: {exc.strerror} "
                                   f"(the ioctl method needs root)") from None
        ioc = self.layout.ioc(self.name if named else "", self.anchor if named else "",
                              ctypes.addressof(buffer), esize, size)
        try:
            self.ioctl(self.fd, self.layout.ioctl(request), ioc)
        except OSError as exc:
            raise BackendError(f"{request} on table <{self.name}> failed: "
                               f"{os.strerror(exc.errno or 0)}") from None
        return ioc

    def _fits(self, count: int) -> None:
        """Refuses, before asking, what the kernel would refuse with EINVAL."""
        limit = self.limit()
        if limit is not None and count > limit:
            raise too_many(self.name, count, limit)

    def _addrs(self, request: str, nets: list[Network]) -> None:
        self._fits(len(nets))
        data = self.layout.addrs(nets)
        self._call(request, ctypes.create_string_buffer(data, len(data)),
                   self.layout.addr_size, len(nets))

    def ensure(self) -> None:
        table = self.layout.table(self.name, self.anchor, PFR_TFLAG_PERSIST)
        self._call("DIOCRADDTABLES", ctypes.create_string_buffer(table, len(table)),
                   self.layout.table_size, 1, named=False)

    def add(self, nets: list[Network]) -> None:
        self.ensure()
        self._addrs("DIOCRADDADDRS", nets)

    def delete(self, nets: list[Network]) -> None:
        self._addrs("DIOCRDELADDRS", nets)

    def replace(self, nets: list[Network]) -> None:
        self.ensure()
        self._addrs("DIOCRSETADDRS", nets)

    def show(self) -> list[Network]:
        capacity = min(256, self.limit() or 256)
        while True:
            buffer = ctypes.create_string_buffer(capacity * self.layout.addr_size)
            ioc = self._call("DIOCRGETADDRS", buffer, self.layout.addr_size, capacity)
            size = self.layout.parse_ioc(ioc).size
            if size <= capacity:
                return self.layout.parse_addrs(buffer.raw, size)
            self._fits(size)
            capacity = size  # pfr_get_addrs said how many there are: ask with room for all

    def flush(self) -> None:
        self._call("DIOCRCLRADDRS", ctypes.create_string_buffer(0), 0, 0)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _system(configured: str | None) -> System | None:
    """The configured system (already checked), else this machine's if it has pf tables."""
    name = configured or platform.system().lower()
    return next((s for s in SYSTEMS if s == name), None)


class PfBackend(Backend):
    name = "pf"
    kernel_expiry = False

    def __init__(self, table: str = "syslogban", anchor: str = "", pfctl: str = "/sbin/pfctl",
                 kill_states: bool | str = False, method: str = "pfctl", device: str = "/dev/pf",
                 system: str | None = None, timeout: float | str = 30.0,
                 ioctl: IoctlFunction = _kernel_ioctl, sysctl: SysctlReader = read_sysctl) -> None:
        if not isinstance(table, str) or len(table) >= PF_TABLE_NAME_SIZE \
                or not _TABLE_NAME.fullmatch(table):
            raise BackendError(f"pf table name {table!r}: 1 to {PF_TABLE_NAME_SIZE - 1} "
                               f"letters, digits, '_', '.' or '-'")
        if not isinstance(anchor, str) or anchor and (len(anchor) >= MAXPATHLEN
                                                      or not _ANCHOR_NAME.fullmatch(anchor)):
            raise BackendError(f"pf anchor {anchor!r}: letters, digits, '_', '.', '-' "
                               f"and '/' between names")
        seconds = option_seconds("timeout", timeout)
        if method not in METHODS:
            raise BackendError(f"pf method {method!r}: one of {', '.join(METHODS)}")
        if system is not None and system not in SYSTEMS:
            raise BackendError(f"pf system {system!r}: one of {', '.join(SYSTEMS)}")
        chosen = _system(system)
        if method == "auto":
            method = "ioctl" if chosen and os.access(device, os.W_OK) else "pfctl"
        self.table, self.anchor, self.method = table, anchor, method
        self.kill_states = option_bool("kill_states", kill_states)
        self.sysctl = sysctl
        self.pfctl = _Pfctl(pfctl, table, anchor, seconds, self._limit)
        self.io: _Table = self.pfctl
        if method == "ioctl":
            if chosen is None:
                raise BackendError("the pf ioctl method needs system = \"freebsd\" or "
                                   f"\"openbsd\" (this machine is {platform.system()})")
            self.io = _Ioctl(pf_layout(chosen, sys.byteorder), device, table, anchor, ioctl,
                             self._limit)

    def _limit(self) -> int | None:
        """net.pf.request_maxcount now (FreeBSD); None where there is no such limit."""
        limit = self.sysctl("net.pf.request_maxcount")
        return None if limit is None else max(limit, 1)

    def start(self) -> None:
        self.io.ensure()
        log.info("pf: table <%s>%s through %s", self.table,
                 f" in anchor {self.anchor}" if self.anchor else "", self.method)

    def apply(self, changes: Sequence[Change], now: float) -> None:
        adds, deletes = split_changes(changes)
        if adds and deletes:
            held = set(self.io.show())
            self.io.replace(sorted((held - set(deletes)) | set(adds), key=sort_key))
        elif adds:
            self._chunked(self.io.add, self.io.delete, adds, restore_held=False)
        elif deletes:
            self._chunked(self.io.delete, self.io.add, deletes, restore_held=True)
        if self.kill_states:
            for net in adds:
                try:
                    self.pfctl.kill(net)
                except BackendError as exc:
                    log.warning("blocked %s, but its states stay: %s", canonical(net), exc)

    def _chunked(self, send: Callable[[list[Network]], None],
                 undo: Callable[[list[Network]], None], nets: list[Network],
                 restore_held: bool) -> None:
        """Sends `nets` in requests of at most net.pf.request_maxcount entries; if
        one fails, undoes what the earlier ones changed: the entries the table
        did not hold (an add), or did hold (a delete), before the batch."""
        limit = self._limit()
        if limit is None or len(nets) <= limit:
            send(nets)
            return
        held = set(self.io.show())
        done: list[Network] = []
        try:
            for start in range(0, len(nets), limit):
                send(nets[start:start + limit])
                done += nets[start:start + limit]
        except BackendError as exc:
            changed = [n for n in done if (n in held) == restore_held]
            try:
                for start in range(0, len(changed), limit):
                    undo(changed[start:start + limit])
            except BackendError as again:
                raise BackendError(f"{exc}; undoing the {len(done)} entries sent before "
                                   f"failed too ({again}): the table may hold part of this "
                                   "batch until the next sync") from None
            raise

    def sync(self, active: Mapping[str, float], now: float) -> None:
        self.io.replace(networks(active))

    def list(self) -> dict[str, float]:
        return {canonical(net): PERMANENT for net in self.io.show()}

    def stop(self, flush: bool = False) -> None:
        try:
            if flush:
                self.io.flush()
        finally:
            self.io.close()
