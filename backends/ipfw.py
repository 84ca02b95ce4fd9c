"""The ipfw driver (FreeBSD): blocks are the entries of an ipfw lookup table.

Rules of this file:
* It changes one table (and, for named tables, its staging twin
  `<table>_sync`) and reads it back; it never adds or deletes rules.
  contrib/ipfw/ has the rule that uses the table.
* ipfw runs with argv lists, never through a shell; command files go to a
  private temporary file (0600 in a 0700 directory, removed afterwards),
  which ipfw reads as `ipfw -q /path`. Tool errors become BackendError with
  ipfw's own message (see pf.run_tool, shared by the two BSD drivers).
* After a failure the table holds what it held before (see Atomicity).

Options (keyword arguments from the configuration):
  table          "syslogban"    the named table (`ipfw table syslogban create
                                type addr`); rules use `table(syslogban)`
  ipfw           "/sbin/ipfw"   the ipfw program
  legacy_number  None           a number N to use the numbered table N of
                                old rule sets (`table(N)`) instead of `table`
  sockopt        False          send a batch of only blocks or only unblocks
                                as one IP_FW3 request from this process
                                (bsd_structs.py builds it; needs root and a
                                named table) instead of running ipfw
  timeout        30             seconds an ipfw run may take

Atomicity, named tables (FreeBSD 11 and later):
* A batch of only blocks is one request, `ipfw -q table T atomic add A 0 B 0
  ...`: the kernel adds all entries or rolls them all back. `-q` also makes
  ipfw update an entry that exists instead of failing on it.
* A batch of only unblocks is one request, `ipfw -q table T delete A B ...`
  (an entry already gone is not an error).
* With `sockopt`, these two are the same requests (IP_FW_TABLE_XADD with
  IPFW_CTF_ATOMIC and IPFW_TF_UPDATE, IP_FW_TABLE_XDEL), built here.
* A batch mixing both, a batch too large for one command line, and `sync`
  replace the whole content: one command file flushes and fills the staging
  table `T_sync` and ends with `table T swap T_sync`. ipfw stops at the
  first failing line, so the live table changes only with the swap, which
  the kernel does in one step. The staging table is flushed afterwards.
  For a batch, the wanted content is read with `table T list` first; like
  pf's replace, this assumes no other program writes the same table.
Atomicity, legacy numbered tables: old ipfw has neither `atomic` nor `swap`,
so a batch is a command file of one `table N delete|add ADDR` per line.
If it fails part-way, the driver restores what it changed (it listed the
table before) and raises BackendError; if even the restore fails, the error
says so, and the next `sync` repairs the table. Not atomic for packets
that pass in between, only all-or-nothing in its outcome.

Expiry: ipfw tables keep no time per entry (`kernel_expiry` is False);
`list()` reports every entry as PERMANENT.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import re
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence

from .base import PERMANENT, Backend, BackendError, Change
from .bsd_structs import (IP_FW3, IP_FW_TABLE_XADD, IP_FW_TABLE_XDEL, IPFW_TR_NAMES, IPPROTO_IP,
                          Network, canonical, ipfw3_layout, network, sort_key)
from .pf import networks, option_bool, option_seconds, run_tool, split_changes

log = logging.getLogger("syslogban.backend.ipfw")

# Valid ipfw object names: [a-zA-Z0-9._-]{1,63}; "all" means every table.
_NAME = re.compile(r"[A-Za-z0-9._-]{1,58}")
_STAGING_SUFFIX = "_sync"
# Entries per single-command request; larger batches take the swap path.
_MAX_ARGV_ENTRIES = 1000

Networks = list[Network]  # spelled once here: inside the class, `list` is the method

# Sends an IP_FW3 request in place (the kernel writes results into it); the errno, 0 if none.
IpFw3Function = Callable[[bytearray], int]
# Per-entry results that explain a failed request (not "added", "ignored", ...).
_BAD_RESULTS = {"limit", "exists", "error"}


def _kernel_ip_fw3(request: bytearray) -> int:
    """getsockopt(IPPROTO_IP, IP_FW3) on a raw socket, as ipfw(8) does:
    Python's socket.getsockopt cannot pass a request in, so libc's is called."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except OSError as exc:
        return exc.errno or errno.EPERM
    with sock:
        buffer = (ctypes.c_char * len(request)).from_buffer(request)
        length = ctypes.c_uint32(len(request))
        if libc.getsockopt(sock.fileno(), IPPROTO_IP, IP_FW3, buffer, ctypes.byref(length)):
            return ctypes.get_errno()
    return 0


class IpfwBackend(Backend):
    name = "ipfw"
    kernel_expiry = False

    def __init__(self, table: str = "syslogban", ipfw: str = "/sbin/ipfw",
                 legacy_number: int | str | None = None, sockopt: bool | str = False,
                 timeout: float | str = 30.0, ip_fw3: IpFw3Function = _kernel_ip_fw3) -> None:
        sockopt, timeout = option_bool("sockopt", sockopt), option_seconds("timeout", timeout)
        if isinstance(legacy_number, str) and legacy_number.strip().isdigit():
            legacy_number = int(legacy_number)  # from --backend-option legacy_number=N
        if legacy_number is not None:
            if isinstance(legacy_number, bool) or not isinstance(legacy_number, int) \
                    or not 0 <= legacy_number <= 65534:
                raise BackendError(f"ipfw legacy_number {legacy_number!r}: a table number "
                                   "from 0 to 65534")
            if sockopt:
                raise BackendError("ipfw sockopt needs a named table, not legacy_number")
            table = str(legacy_number)
        elif not isinstance(table, str) or not _NAME.fullmatch(table) or table == "all":
            raise BackendError(f"ipfw table name {table!r}: 1 to 58 letters, digits, "
                               "'.', '_' or '-', and not 'all'")
        self.ipfw, self.timeout = ipfw, timeout
        self.table = table
        self.legacy = legacy_number is not None
        self.staging = table + _STAGING_SUFFIX
        self.sockopt, self.ip_fw3 = sockopt, ip_fw3

    def _run(self, *args: str) -> str:
        return run_tool([self.ipfw, *args], timeout=self.timeout)

    def _run_file(self, lines: Sequence[str]) -> None:
        """Runs `ipfw -q FILE` on `lines`, from a private temporary file."""
        with tempfile.TemporaryDirectory(prefix="syslogban-ipfw-") as directory:
            fd, path = tempfile.mkstemp(dir=directory, suffix=".rules")
            with os.fdopen(fd, "w") as file:
                file.write("".join(line + "\n" for line in lines))
            self._run("-q", path)

    def start(self) -> None:
        if self.legacy:
            # Numbered tables exist without being created; listing checks access.
            self._run("table", self.table, "list")
        else:
            info = self._run("table", "all", "info")
            present = set(re.findall(r"^--- table\((.*)\), set\(\d+\) ---$", info, re.MULTILINE))
            for name in (self.table, self.staging):
                if name not in present:
                    self._run("-q", "table", name, "create", "type", "addr")
        log.info("ipfw: table %s%s", self.table, " (numbered)" if self.legacy else "")

    def apply(self, changes: Sequence[Change], now: float) -> None:
        adds, deletes = split_changes(changes)
        if not adds and not deletes:
            return
        if self.legacy:
            self._legacy_change(set(self._show()), adds, deletes)
        elif adds and not deletes and self.sockopt:
            self._request(IP_FW_TABLE_XADD, adds)
        elif deletes and not adds and self.sockopt:
            self._request(IP_FW_TABLE_XDEL, deletes)
        elif adds and not deletes and len(adds) <= _MAX_ARGV_ENTRIES:
            pairs = [word for net in adds for word in (canonical(net), "0")]
            self._run("-q", "table", self.table, "atomic", "add", *pairs)
        elif deletes and not adds and len(deletes) <= _MAX_ARGV_ENTRIES:
            self._run("-q", "table", self.table, "delete", *map(canonical, deletes))
        else:
            held = set(self._show())
            self._swap_in((held - set(deletes)) | set(adds))

    def sync(self, active: Mapping[str, float], now: float) -> None:
        wanted = networks(active)
        if self.legacy:
            held = set(self._show())
            self._legacy_change(held, [n for n in wanted if n not in held],
                                sorted(held - set(wanted), key=sort_key))
        else:
            self._swap_in(set(wanted))

    def list(self) -> dict[str, float]:
        return {canonical(net): PERMANENT for net in self._show()}

    def stop(self, flush: bool = False) -> None:
        if flush:
            self._run("-q", "table", self.table, "flush")

    def _show(self) -> Networks:
        # "192.0.2.1/32 0" per entry; newer ipfw prints a "--- table(...) ---" header.
        nets: Networks = []
        for line in self._run("table", self.table, "list").splitlines():
            if not line.strip() or line.startswith("---"):
                continue
            try:
                nets.append(network(line.split()[0]))
            except ValueError:
                raise BackendError(f"unexpected line from {self.ipfw} table {self.table} "
                                   f"list: {line!r}") from None
        return nets

    def _request(self, opcode: int, nets: Networks) -> None:
        """One IP_FW3 request: an atomic add (updating entries that exist), or a
        delete for which entries already gone are no error."""
        layout = ipfw3_layout(sys.byteorder)
        request = layout.request(opcode, self.table, nets, atomic=opcode == IP_FW_TABLE_XADD)
        error = self.ip_fw3(request)
        if error == 0 or (opcode == IP_FW_TABLE_XDEL and error == errno.ENOENT):
            return
        name = "IP_FW_TABLE_XADD" if opcode == IP_FW_TABLE_XADD else "IP_FW_TABLE_XDEL"
        results = [IPFW_TR_NAMES[r] if r < len(IPFW_TR_NAMES) else f"result {r}"
                   for r in layout.results(request, len(nets))]
        bad = [f"{canonical(n)} {r}" for n, r in zip(nets, results) if r in _BAD_RESULTS]
        raise BackendError(f"{name} on table {self.table} failed: {os.strerror(error)}"
                           + (f" ({', '.join(bad)})" if bad else ""))

    def _swap_in(self, wanted: set[Network]) -> None:
        """Makes the named table hold exactly `wanted`, in one kernel swap.

        Both tables must exist (start() creates them): ipfw reports success for
        a swap whose table is missing. A table that rules use cannot be destroyed."""
        lines = [f"table {self.staging} flush"]
        lines += [f"table {self.staging} add {canonical(n)}" for n in sorted(wanted, key=sort_key)]
        lines.append(f"table {self.table} swap {self.staging}")
        self._run_file(lines)
        try:
            self._run("-q", "table", self.staging, "flush")
        except BackendError as exc:
            log.warning("ipfw: the staging table keeps the old blocks: %s", exc)

    def _legacy_change(self, held: set[Network], adds: Networks, deletes: Networks) -> None:
        """Deletes then adds, one line each; undoes them if the file fails part-way."""
        if not adds and not deletes:
            return
        lines = [f"table {self.table} delete {canonical(n)}" for n in deletes]
        lines += [f"table {self.table} add {canonical(n)}" for n in adds]
        try:
            self._run_file(lines)
        except BackendError as exc:
            undo = [f"table {self.table} add {canonical(n)}" for n in deletes if n in held]
            undo += [f"table {self.table} delete {canonical(n)}" for n in adds if n not in held]
            try:
                if undo:
                    self._run_file(undo)
            except BackendError as again:
                raise BackendError(f"{exc}; restoring table {self.table} failed too ({again}): "
                                   "it may hold part of this batch until the next sync") from None
            raise
