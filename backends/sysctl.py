"""Reading a number from the BSD kernel by its sysctl name.

Rules of this file:
* It only reads, with sysctlbyname(3) from libc: no process is started.
* A machine without sysctlbyname (Linux, OpenBSD) or a name the kernel does
  not know gives None, never an exception; the drivers decide what a missing
  value means.
* The drivers take the reader as an argument (`sysctl=`), so that the tests
  hand them the values a FreeBSD kernel would report.

Names the BSD drivers read (FreeBSD):
  kern.osreldate            int, __FreeBSD_version of the running kernel
                            (sys/kern/kern_mib.c); the ipfw driver picks the
                            IP_FW3 layout with it
  net.pf.request_maxcount   u_long, pf_ioctl_maxcount (sys/net/pfvar.h,
                            sys/netpfil/pf/pf_ioctl.c): the most table
                            entries one DIOCR* request may carry
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

SysctlReader = Callable[[str], int | None]


def read_sysctl(name: str) -> int | None:
    """The integer value of sysctl `name` (int or long), None when there is none."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sysctlbyname
    except (OSError, AttributeError):
        return None
    value = ctypes.create_string_buffer(8)
    length = ctypes.c_size_t(8)
    if function(name.encode(), value, ctypes.byref(length), None, ctypes.c_size_t(0)) != 0:
        return None
    if length.value not in (4, 8):
        return None
    return int.from_bytes(value.raw[:length.value], sys.byteorder)
