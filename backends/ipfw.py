"""The ipfw driver (FreeBSD 11 and later): blocks are the entries of an ipfw lookup table.

Rules of this file:
* It changes one table and its staging twin `<table>_sync`, and reads them
  back; it never adds or deletes rules. contrib/ipfw/ has the rule that uses
  the table.
* ipfw runs with argv lists, never through a shell; command files go to a
  private temporary file (0600 in a 0700 directory, removed afterwards),
  which ipfw reads as `ipfw -q /path`. Tool errors become BackendError with
  ipfw's own message (see pf.run_tool, shared by the two BSD drivers).
* ipfw(8) reports success for some refusals (a swap the kernel refused), so
  what matters is checked by reading the table back, never taken from the
  exit status alone.
* After a failure the table holds what it held before (see Atomicity).

Options (keyword arguments from the configuration):
  table          "syslogban"    the named table (`ipfw table syslogban create
                                type addr`); rules use `table(syslogban)`
  ipfw           "/sbin/ipfw"   the ipfw program
  legacy_number  None           a number N to use the table of an old rule set
                                that says `table(N)` instead of `table`
  sockopt        False          send a batch of only blocks or only unblocks
                                as one IP_FW3 request from this process
                                (bsd_structs.py builds it in the layout of the
                                running kernel; needs root) instead of ipfw
  timeout        30             seconds an ipfw run may take

Tables. Since FreeBSD 11 every table is a named kernel object; a numbered
table N of an old rule set is simply the table named "N" (the kernel turns
a number into its decimal name, sys/netpfil/ipfw/ip_fw_table.c
find_table_err). Like any table it does not exist until a rule that uses it
is loaded or someone creates it: `ipfw table N list` then fails with "failed
to request table info: No such process" (sbin/ipfw/tables.c,
ipfw_table_handler -> table_get_info -> ESRCH). So start() lists all tables
and creates the table and its twin when missing, numbered or named alike.

Atomicity:
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
  the kernel does in one step. But ipfw exits 0 when the kernel refuses the
  swap with ESRCH or EACCES (tables.c table_swap), so the driver reads T
  back: only when it holds the wanted content is the staging table flushed;
  otherwise BackendError says so and T_sync keeps the new content for the
  next attempt. For a batch, the wanted content is read with `table T list`
  first; this assumes no other program writes the same table.

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
from dataclasses import dataclass

from .base import PERMANENT, Backend, BackendError, Change
from .bsd_structs import (IP_FW3, IP_FW_TABLE_XADD, IP_FW_TABLE_XDEL, IPFW_TR_NAMES, IPPROTO_IP,
                          Ipfw3Layout, Network, canonical, ipfw3_layout, ipfw3_layout_for,
                          network, sort_key)
from .pf import networks, option_bool, option_seconds, run_tool, split_changes
from .sysctl import SysctlReader, read_sysctl

log = logging.getLogger("syslogban.backend.ipfw")

# Valid ipfw object names: [a-zA-Z0-9._-]{1,63}; "all" means every table.
_NAME = re.compile(r"[A-Za-z0-9._-]{1,58}")
_STAGING_SUFFIX = "_sync"
# Entries per single-command request; larger batches take the swap path.
_MAX_ARGV_ENTRIES = 1000
# The lines of `ipfw table all info` that matter here (tables.c table_show_info).
_INFO = re.compile(r"^--- table\((?P<name>.*)\), set\(\d+\) ---\n"
                   r" kindex: \d+, type: (?P<type>.*?)(?P<locked>, locked)?\n"
                   r"(?: .*\n)*? algorithm: (?P<algorithm>\S*)$", re.MULTILINE)

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


@dataclass(frozen=True, slots=True)
class TableInfo:
    """What `ipfw table all info` says of one table."""

    type: str
    algorithm: str
    locked: bool


def table_infos(text: str) -> dict[str, TableInfo]:
    """The tables in the output of `ipfw table all info`, by name."""
    return {m["name"]: TableInfo(m["type"], m["algorithm"], bool(m["locked"]))
            for m in _INFO.finditer(text)}


class IpfwBackend(Backend):
    name = "ipfw"
    kernel_expiry = False

    def __init__(self, table: str = "syslogban", ipfw: str = "/sbin/ipfw",
                 legacy_number: int | str | None = None, sockopt: bool | str = False,
                 timeout: float | str = 30.0, ip_fw3: IpFw3Function = _kernel_ip_fw3,
                 sysctl: SysctlReader = read_sysctl) -> None:
        sockopt, timeout = option_bool("sockopt", sockopt), option_seconds("timeout", timeout)
        if isinstance(legacy_number, str) and legacy_number.strip().isdigit():
            legacy_number = int(legacy_number)  # from --backend-option legacy_number=N
        if legacy_number is not None:
            if isinstance(legacy_number, bool) or not isinstance(legacy_number, int) \
                    or not 0 <= legacy_number <= 65534:
                raise BackendError(f"ipfw legacy_number {legacy_number!r}: a table number "
                                   "from 0 to 65534")
            table = str(legacy_number)
        elif not isinstance(table, str) or not _NAME.fullmatch(table) or table == "all":
            raise BackendError(f"ipfw table name {table!r}: 1 to 58 letters, digits, "
                               "'.', '_' or '-', and not 'all'")
        self.ipfw, self.timeout = ipfw, timeout
        self.table = table
        self.staging = table + _STAGING_SUFFIX
        self.sockopt, self.ip_fw3, self.sysctl = sockopt, ip_fw3, sysctl
        self.layout: Ipfw3Layout | None = None

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
        present = table_infos(self._run("table", "all", "info"))
        for name in (self.table, self.staging):
            info = present.get(name)
            if info is None:
                self._run("-q", "table", name, "create", "type", "addr")
            elif info.type != "addr" or info.algorithm == "addr:kfib" or info.locked:
                raise BackendError(
                    f"ipfw table {name} is of type {info.type}, algorithm {info.algorithm}"
                    f"{', locked' if info.locked else ''}: syslogban needs an unlocked table "
                    f"of type addr that it can change (ipfw table {name} destroy, then "
                    "restart syslogban to create it)")
        if self.sockopt:
            self._ipfw3()
        log.info("ipfw: table %s%s", self.table, f" (IP_FW3 layout {self.layout.name})"
                 if self.layout else "")

    def apply(self, changes: Sequence[Change], now: float) -> None:
        adds, deletes = split_changes(changes)
        if not adds and not deletes:
            return
        if adds and not deletes and self.sockopt:
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
        self._swap_in(set(networks(active)))

    def list(self) -> dict[str, float]:
        return {canonical(net): PERMANENT for net in self._show()}

    def stop(self, flush: bool = False) -> None:
        if flush:
            self._run("-q", "table", self.table, "flush")

    def _show(self) -> Networks:
        # "192.0.2.1/32 0" per entry, and no header for one named table
        # (tables.c table_show_one -> table_show_list(oh, need_header = 0)).
        nets: Networks = []
        for line in self._run("table", self.table, "list").splitlines():
            try:
                nets.append(network(line.split()[0]))
            except (IndexError, ValueError):
                raise BackendError(f"unexpected line from {self.ipfw} table {self.table} "
                                   f"list: {line!r}") from None
        return nets

    def _ipfw3(self) -> Ipfw3Layout:
        """The IP_FW3 layout of the running kernel, found once from kern.osreldate."""
        if self.layout is None:
            try:
                name = ipfw3_layout_for(self.sysctl("kern.osreldate"))
            except ValueError as exc:
                raise BackendError(f"ipfw sockopt: {exc}; set sockopt = false to let "
                                   "ipfw(8) talk to the kernel") from None
            self.layout = ipfw3_layout(name, sys.byteorder)
        return self.layout

    def _request(self, opcode: int, nets: Networks) -> None:
        """One IP_FW3 request: an atomic add (updating entries that exist), or a
        delete for which entries already gone are no error."""
        layout = self._ipfw3()
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
        """Makes the table hold exactly `wanted`, in one kernel swap, and checks it did."""
        lines = [f"table {self.staging} flush"]
        lines += [f"table {self.staging} add {canonical(n)}" for n in sorted(wanted, key=sort_key)]
        lines.append(f"table {self.table} swap {self.staging}")
        self._run_file(lines)
        held = set(self._show())
        if held != wanted:
            raise BackendError(
                f"ipfw table {self.table} swap {self.staging} did not take effect (ipfw exits 0 "
                f"when the kernel refuses a swap): {self.table} holds {len(held)} entries, "
                f"{len(wanted)} wanted; {self.staging} keeps them for the next attempt")
        try:
            self._run("-q", "table", self.staging, "flush")
        except BackendError as exc:
            log.warning("ipfw: the staging table keeps the old blocks: %s", exc)
