"""Privileges: give up root after start-up, keep only CAP_NET_ADMIN.

Rules of this file:
* Called once, after everything that needs root is done: sockets bound,
  state file opened, firewall tables created. From then on the process that
  parses attacker-controlled text runs as an ordinary user.
* What stays is CAP_NET_ADMIN in the effective and permitted sets (the
  nftables and ipset drivers talk netlink with it), nothing in the
  inheritable or ambient sets, a bounding set of that capability alone, and
  no_new_privs: no child (the notification hook) and no exec can get more.

Why this and not a separate privileged helper (sshguard's split): the only
privileged act is a netlink batch, and CAP_NET_ADMIN is exactly that right;
a second process would add a protocol between parser and firewall without
taking anything more away from an attacker who owns the parser. Linux only
(capabilities); elsewhere (pf, ipfw) run it as root or use the listeners.
"""

from __future__ import annotations

import ctypes
import os
import pwd
from pathlib import Path

from .errors import SyslogbanError

CAP_NET_ADMIN = 12
_CAP_LAST = 63
_PR_CAPBSET_DROP = 24
_PR_SET_KEEPCAPS = 8
_PR_SET_NO_NEW_PRIVS = 38
_CAPABILITY_VERSION_3 = 0x20080522


class PrivilegeError(SyslogbanError):
    """The privileges could not be dropped; the daemon must not go on as root."""


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_to(user: str, keep_net_admin: bool, files: list[Path]) -> None:
    """Becomes `user` (and its group), keeping CAP_NET_ADMIN when asked.

    `files` (the state file and its directory) are handed to the user first,
    so that SQLite can go on writing them.
    """
    if os.geteuid() != 0:
        raise PrivilegeError("--user needs syslogban to be started as root")
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"no such user {user!r}") from None
    for path in files:
        if path.exists():
            os.chown(path, entry.pw_uid, entry.pw_gid)
    libc = ctypes.CDLL(None, use_errno=True)
    keep = {CAP_NET_ADMIN} if keep_net_admin else set()
    for cap in range(_CAP_LAST + 1):
        if cap not in keep:
            libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the kernel's last: fine
    _check(libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0), "keeping capabilities across setuid")
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    mask = sum(1 << cap for cap in keep)
    header = _Header(_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)(_Data(mask, mask, 0), _Data(0, 0, 0))
    _check(libc.capset(ctypes.byref(header), data), "setting capabilities")
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "setting no_new_privs")
    if os.getuid() == 0 or os.geteuid() == 0:
        raise PrivilegeError("still root after setuid")


def _check(result: int, what: str) -> None:
    if result != 0:
        raise PrivilegeError(f"{what}: {os.strerror(ctypes.get_errno())}")


def capabilities(pid: int | str = "self") -> dict[str, int]:
    """The capability sets of a process (from /proc), for status and tests."""
    sets = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            sets[key] = int(value.strip(), 16)
    return sets

