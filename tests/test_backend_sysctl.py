"""The sysctl reader of the BSD drivers, on this (non-BSD) machine.

On FreeBSD it reads kern.osreldate and net.pf.request_maxcount with
sysctlbyname(3); here libc has no such function, and the drivers must then
see "no value" (None), never an exception: the tests of the drivers hand
them FreeBSD's values through their `sysctl` argument instead.
"""

from __future__ import annotations

import ctypes
import platform

import pytest

from syslogban.backends.sysctl import read_sysctl


@pytest.mark.skipif(platform.system() == "FreeBSD", reason="FreeBSD has sysctlbyname")
def test_a_machine_without_sysctlbyname_reads_nothing() -> None:
    assert not hasattr(ctypes.CDLL(None), "sysctlbyname")
    assert read_sysctl("kern.osreldate") is None
    assert read_sysctl("net.pf.request_maxcount") is None
