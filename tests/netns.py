"""Throwaway network namespaces for tests against the real kernel.

Each test gets a namespace of its own (`ip netns add`), removed afterwards
whatever happened; code runs inside it in a forked child that entered it with
setns(2), so the test process itself never changes namespace. Root only: the
tests that need it skip, saying so, elsewhere, and fail on CI (system.py).
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import shutil
import subprocess
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from system import requires

T = TypeVar("T")
_names = itertools.count()

requires_netns = requires(
    os.geteuid() == 0 and shutil.which("ip") is not None,
    "needs root and the ip command (Debian package iproute2) to create a network namespace")
requires_nft = requires(
    shutil.which("nft") is not None,
    "needs the nft command (Debian package nftables) to read the kernel's view")


def create() -> str:
    name = f"syslogban-test-{os.getpid()}-{next(_names)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    return name


def delete(name: str) -> None:
    subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


@pytest.fixture()
def netns() -> Iterator[str]:
    """A fresh network namespace, deleted after the test."""
    name = create()
    try:
        yield name
    finally:
        delete(name)


def enter(name: str) -> None:
    """Moves the calling process into the namespace (for a forked child)."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        _setns(fd)
    finally:
        os.close(fd)


def _setns(fd: int) -> None:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns")


def run_in(name: str, func: Callable[..., T], *args: Any) -> T:
    """func(*args) in a child inside the namespace; its result or its exception."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            enter(name)
            payload = pickle.dumps((True, func(*args)))
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the test
            payload = pickle.dumps((False, f"{exc!r}\n{traceback.format_exc()}"))
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    ok, value = pickle.loads(data)
    if not ok:
        raise AssertionError(f"in namespace {name}: {value}")
    return value  # type: ignore[no-any-return]


def nft_json(name: str, *command: str) -> Any:
    """`nft -j COMMAND` inside the namespace: the kernel's own view."""
    out = subprocess.run(["ip", "netns", "exec", name, "nft", "-j", *command],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)
