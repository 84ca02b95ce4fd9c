"""The pf driver: golden bytes of the kernel structures, the ioctl path against
a recording stand-in for /dev/pf, and the pfctl path against a fake pfctl.

Nothing here ran against a BSD kernel. The golden bytes are derived by hand
from the headers (FreeBSD and OpenBSD sys/net/pfvar.h, sys/sys/ioccom.h,
sys/sys/socket.h); the derivation is in the comments next to each value.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import logging
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.tool import FakeTool, install
from syslogban.backends import BackendError, Change, create
from syslogban.backends.base import PERMANENT
from syslogban.backends.bsd_structs import network, pf_layout
from syslogban.backends.pf import PfBackend

NOW = 1_800_000_000.0

# --- golden bytes ---------------------------------------------------------
# struct pfr_addr for 192.0.2.1/32 on FreeBSD (20 bytes):
#   0..15  pfra_u: in_addr c0 00 02 01, the rest of the 16-byte union zero
#   16     pfra_af    = AF_INET = 2
#   17     pfra_net   = 32 = 0x20
#   18, 19 pfra_not, pfra_fback = 0
FREEBSD_V4 = bytes.fromhex("c0000201" "000000000000000000000000" "02" "20" "00" "00")
# 2001:db8:1::/48 on FreeBSD: AF_INET6 = 28 = 0x1c, net 48 = 0x30.
FREEBSD_V6 = bytes.fromhex("20010db8000100000000000000000000" "1c" "30" "00" "00")
# struct pfr_addr on OpenBSD (52 bytes):
#   0..15  pfra_u            16..31 pfra_ifname[IFNAMSIZ = 16]
#   32..35 pfra_states (u32) 36..37 pfra_weight (u16)
#   38 af, 39 net, 40 not, 41 fback, 42 type (PFRKE_PLAIN = 0)
#   43..49 pad[7], 50..51 tail padding up to the 4-byte alignment of the union
OPENBSD_V4 = bytes.fromhex("c0000201" "000000000000000000000000" + "00" * 16 + "00000000" "0000"
                           "02" "20" "00" "00" "00" + "00" * 7 + "0000")
# 2001:db8:1::/48 on OpenBSD: AF_INET6 = 24 = 0x18.
OPENBSD_V6 = bytes.fromhex("20010db8000100000000000000000000" + "00" * 16 + "00000000" "0000"
                           "18" "30" "00" "00" "00" + "00" * 7 + "0000")


def pfr_table(name: str, anchor: str = "", flags: int = 0) -> bytes:
    """struct pfr_table by hand: pfrt_anchor[1024] at 0, pfrt_name[32] at 1024,
    pfrt_flags (u32, little-endian) at 1056, pfrt_fback at 1060, then 3 bytes
    of padding to 1064, a multiple of the u32 alignment."""
    return (anchor.encode().ljust(1024, b"\0") + name.encode().ljust(32, b"\0")
            + flags.to_bytes(4, "little") + b"\0" + b"\0" * 3)


def pfioc_table(table: bytes, esize: int, size: int, pointer: int = 0) -> bytes:
    """struct pfioc_table (LP64) by hand: pfrio_table at 0 (1064 bytes),
    pfrio_buffer (8-byte pointer) at 1064, then int esize, size, size2, nadd,
    ndel, nchange, flags at 1072..1099 and u32 ticket at 1100: 1104 bytes."""
    return (table + pointer.to_bytes(8, "little") + esize.to_bytes(4, "little")
            + size.to_bytes(4, "little") + b"\0" * 4 * 5 + b"\0" * 4)


# _IOWR('D', n, struct pfioc_table): IOC_INOUT 0xC0000000 | (1104 = 0x450) << 16
# | 'D' (0x44) << 8 | n, the same on FreeBSD and OpenBSD.
IOCTLS = {
    "DIOCRADDTABLES": 0xC450443D,   # n = 61
    "DIOCRCLRADDRS": 0xC4504442,    # n = 66
    "DIOCRADDADDRS": 0xC4504443,    # n = 67
    "DIOCRDELADDRS": 0xC4504444,    # n = 68
    "DIOCRSETADDRS": 0xC4504445,    # n = 69
    "DIOCRGETADDRS": 0xC4504446,    # n = 70
}


@pytest.mark.parametrize("system, addr_size", [("freebsd", 20), ("openbsd", 52)])
def test_sizes(system: str, addr_size: int) -> None:
    layout = pf_layout(system)  # type: ignore[arg-type]
    assert layout.addr_size == addr_size
    assert layout.table_size == 1064
    assert layout.ioc_size == 1104


@pytest.mark.parametrize("system", ["freebsd", "openbsd"])
def test_ioctl_numbers(system: str) -> None:
    layout = pf_layout(system)  # type: ignore[arg-type]
    assert {name: layout.ioctl(name) for name in IOCTLS} == IOCTLS


@pytest.mark.parametrize("system, v4, v6", [("freebsd", FREEBSD_V4, FREEBSD_V6),
                                             ("openbsd", OPENBSD_V4, OPENBSD_V6)])
def test_pfr_addr_golden(system: str, v4: bytes, v6: bytes) -> None:
    layout = pf_layout(system)  # type: ignore[arg-type]
    assert layout.addr(network("192.0.2.1")) == v4
    assert layout.addr(network("2001:db8:1::/48")) == v6
    assert layout.parse_addrs(v4 + v6, 2) == [network("192.0.2.1"), network("2001:db8:1::/48")]


@pytest.mark.parametrize("system", ["freebsd", "openbsd"])
@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_a_large_table_round_trips(system: str, byteorder: str) -> None:
    """Thousands of entries, as a big table's sync sends and reads them back
    (construct took 100 us an entry; a 70,000-entry sync took seven seconds)."""
    layout = pf_layout(system, byteorder)  # type: ignore[arg-type]
    nets = [ipaddress.ip_network(f"10.0.{n >> 8}.{n & 255}") for n in range(6000)]
    nets += [ipaddress.ip_network(f"2001:db8:{n:x}::/48") for n in range(1000)]
    data = layout.addrs(nets)
    assert len(data) == 7000 * layout.addr_size
    assert data[:layout.addr_size] == layout.addr(nets[0])
    assert layout.parse_addrs(data, len(nets)) == nets


def test_negated_entries_are_skipped_and_unknown_families_refused() -> None:
    layout = pf_layout("freebsd")
    negated = FREEBSD_V4[:18] + b"\x01" + FREEBSD_V4[19:]
    assert layout.parse_addrs(negated + FREEBSD_V6, 2) == [network("2001:db8:1::/48")]
    openbsd_v6_on_freebsd = FREEBSD_V6[:16] + b"\x18" + FREEBSD_V6[17:]
    with pytest.raises(ValueError, match="unknown address family 24"):
        layout.parse_addrs(openbsd_v6_on_freebsd, 1)


def test_pfr_table_with_anchor_golden() -> None:
    built = pf_layout("openbsd").table("syslogban", "syslogban/mail", flags=1)
    assert built == pfr_table("syslogban", "syslogban/mail", flags=1)
    assert built[1024:1033] == b"syslogban" and built[1056:1060] == b"\x01\0\0\0"


def test_pfioc_table_golden() -> None:
    layout = pf_layout("freebsd")
    built = layout.ioc("syslogban", "mail", buffer=0x00007F0012345678, esize=20, size=3)
    assert bytes(built) == pfioc_table(pfr_table("syslogban", "mail"), 20, 3, 0x00007F0012345678)
    assert built[1064:1072] == bytes.fromhex("78563412007f0000")


def test_big_endian_layout_swaps_the_integers() -> None:
    built = pf_layout("freebsd", "big").ioc("t", esize=20, size=3)
    assert built[1072:1080] == bytes.fromhex("00000014" "00000003")


# --- the ioctl path ---------------------------------------------------------

class FakeDevPf:
    """Stands in for fcntl.ioctl on /dev/pf: keeps tables as the kernel would,
    and records (request name, pfioc_table with its pointer zeroed, array).

    It follows FreeBSD sys/netpfil/pf/pf_ioctl.c pfioctl (main at 186c9554bad7):
    DIOCRADDADDRS, DIOCRDELADDRS, DIOCRGETADDRS with pfrio_size above
    pf_ioctl_maxcount (`maxcount`, net.pf.request_maxcount) and DIOCRSETADDRS
    with max(size, size2) above it fail with EINVAL; and pf_table.c
    pfr_get_addrs: a table larger than pfrio_size copies nothing and only
    reports the size it needs. OpenBSD's pf_ioctl.c has no such limit
    (maxcount None)."""

    def __init__(self, system: str, maxcount: int | None = None) -> None:
        self.layout = pf_layout(system)  # type: ignore[arg-type]
        self.names = {self.layout.ioctl(name): name for name in IOCTLS}
        self.tables: dict[tuple[str, str], set[Any]] = {}
        self.calls: list[tuple[str, bytes, bytes]] = []
        self.fail: dict[str, int] = {}
        self.maxcount = maxcount

    def __call__(self, fd: int, request: int, arg: bytearray) -> None:
        name = self.names[request]
        ioc = self.layout.parse_ioc(arg)
        array = ctypes.string_at(ioc.buffer, ioc.size * ioc.esize) if ioc.size else b""
        if name == "DIOCRGETADDRS":
            array = b""  # an output buffer: what goes in is meaningless
        self.calls.append((name, bytes(arg[:1064]) + bytes(8) + bytes(arg[1072:]), array))
        if name in self.fail:
            raise OSError(self.fail[name], "fake")
        if name != "DIOCRADDTABLES" and self.maxcount is not None \
                and max(ioc.size, ioc.size2) > self.maxcount:
            raise OSError(errno.EINVAL, "Invalid argument")
        key = (ioc.table.anchor, ioc.table.name)
        if name == "DIOCRADDTABLES":
            table = self.layout.pfr_table.parse(array)
            self.tables.setdefault((table.anchor, table.name), set())
            return
        if key not in self.tables:
            raise OSError(errno.ESRCH, "No such process")
        if name == "DIOCRGETADDRS":
            held = sorted(self.tables[key], key=lambda n: (n.version, int(n.network_address)))
            if len(held) <= ioc.size:
                data = self.layout.addrs(held)
                ctypes.memmove(ioc.buffer, data, len(data))
            struct.pack_into("<i", arg, 1076, len(held))
            return
        nets = set(self.layout.parse_addrs(array, ioc.size))
        if name == "DIOCRADDADDRS":
            self.tables[key] |= nets
        elif name == "DIOCRDELADDRS":
            self.tables[key] -= nets
        elif name == "DIOCRSETADDRS":
            self.tables[key] = nets
        elif name == "DIOCRCLRADDRS":
            self.tables[key] = set()

    def take(self) -> list[tuple[str, bytes, bytes]]:
        calls, self.calls = self.calls, []
        return calls


@pytest.fixture
def device(tmp_path: Path) -> str:
    path = tmp_path / "pf"
    path.write_bytes(b"")
    return str(path)


def ioctl_backend(system: str, device: str, maxcount: int | None = None,
                  **options: Any) -> tuple[PfBackend, FakeDevPf]:
    kernel = FakeDevPf(system, maxcount)
    backend = PfBackend(method="ioctl", device=device, system=system, ioctl=kernel,
                        sysctl={"net.pf.request_maxcount": maxcount}.get, **options)
    return backend, kernel


@pytest.mark.parametrize("system, v4, v6", [("freebsd", FREEBSD_V4, FREEBSD_V6),
                                             ("openbsd", OPENBSD_V4, OPENBSD_V6)])
def test_ioctl_requests_are_byte_exact(device: str, system: str, v4: bytes, v6: bytes) -> None:
    backend, kernel = ioctl_backend(system, device)
    backend.start()
    persist = pfr_table("syslogban", flags=1)
    addtables = ("DIOCRADDTABLES", pfioc_table(pfr_table(""), 1064, 1), persist)
    assert kernel.take() == [addtables]
    backend.apply([Change(True, "2001:db8:1::/48", NOW + 60), Change(True, "192.0.2.1", NOW + 60)],
                  NOW)
    named = pfr_table("syslogban")
    assert kernel.take() == [addtables,
                             ("DIOCRADDADDRS", pfioc_table(named, len(v4), 2), v4 + v6)]
    backend.apply([Change(False, "192.0.2.1", 0)], NOW)
    assert kernel.take() == [("DIOCRDELADDRS", pfioc_table(named, len(v4), 1), v4)]
    assert backend.list() == {"2001:db8:1::/48": PERMANENT}
    assert kernel.take() == [("DIOCRGETADDRS", pfioc_table(named, len(v4), 256), b"")]
    backend.stop(flush=True)
    assert kernel.take() == [("DIOCRCLRADDRS", pfioc_table(named, 0, 0), b"")]
    assert backend.io.fd is None  # type: ignore[attr-defined]


def test_ioctl_anchor_mixed_batch_and_sync(device: str) -> None:
    backend, kernel = ioctl_backend("freebsd", device, anchor="syslogban/mail")
    backend.start()
    backend.apply([Change(True, "192.0.2.1", NOW + 60)], NOW)
    kernel.take()
    backend.apply([Change(False, "192.0.2.1", 0), Change(True, "2001:db8:1::/48", NOW + 60)], NOW)
    in_anchor = pfr_table("syslogban", "syslogban/mail")
    assert [(name, ioc[:1064]) for name, ioc, _ in kernel.take()] == [
        ("DIOCRGETADDRS", in_anchor), ("DIOCRADDTABLES", bytes(1064)),
        ("DIOCRSETADDRS", in_anchor)]
    assert kernel.tables[("syslogban/mail", "syslogban")] == {network("2001:db8:1::/48")}
    backend.sync({"192.0.2.1": NOW + 60, "2001:db8:1::/48": PERMANENT}, NOW)
    *_, (name, ioc, array) = kernel.take()
    assert (name, ioc, array) == ("DIOCRSETADDRS", pfioc_table(in_anchor, 20, 2),
                                  FREEBSD_V4 + FREEBSD_V6)


def test_ioctl_list_grows_its_buffer(device: str) -> None:
    backend, kernel = ioctl_backend("openbsd", device)
    backend.start()
    hosts = {f"10.0.{i // 256}.{i % 256}" for i in range(300)}
    backend.sync(dict.fromkeys(hosts, NOW + 60), NOW)
    kernel.take()
    assert backend.list() == dict.fromkeys(hosts, PERMANENT)
    sizes = [struct.unpack_from("<i", ioc, 1076)[0] for _, ioc, _ in kernel.take()]
    assert sizes == [256, 300]


# --- more entries than net.pf.request_maxcount (FreeBSD) ---------------------

def sizes(calls: list[tuple[str, bytes, bytes]], request: str) -> list[int]:
    return [struct.unpack_from("<i", ioc, 1076)[0] for name, ioc, _ in calls if name == request]


def test_ioctl_batches_above_request_maxcount_go_in_chunks(device: str) -> None:
    backend, kernel = ioctl_backend("freebsd", device, maxcount=3)
    backend.sync({"192.0.2.1": NOW + 60}, NOW)
    kernel.take()
    hosts = [f"192.0.2.{i}" for i in range(1, 8)]
    backend.apply([Change(True, h, NOW + 60) for h in hosts], NOW)
    calls = kernel.take()
    assert [name for name, _, _ in calls if name != "DIOCRADDTABLES"] == [
        "DIOCRGETADDRS", "DIOCRADDADDRS", "DIOCRADDADDRS", "DIOCRADDADDRS"]
    assert sizes(calls, "DIOCRADDADDRS") == [3, 3, 1]
    assert kernel.tables[("", "syslogban")] == {network(h) for h in hosts}
    # Deletes too; the table is read first (for the undo), so it must fit one request.
    kernel.tables[("", "syslogban")] = {network(h) for h in hosts[:3]}
    backend.apply([Change(False, h, 0) for h in hosts[1:]], NOW)
    assert sizes(kernel.take(), "DIOCRDELADDRS") == [3, 3]
    assert backend.list() == {"192.0.2.1": PERMANENT}


@pytest.mark.parametrize("block", [True, False])
def test_a_chunk_that_fails_undoes_the_earlier_ones(device: str, block: bool) -> None:
    backend, kernel = ioctl_backend("freebsd", device, maxcount=2)
    before = {"192.0.2.1": NOW + 60, "192.0.2.4": NOW + 60}
    backend.sync(before, NOW)
    request = "DIOCRADDADDRS" if block else "DIOCRDELADDRS"
    seen = []

    def second_fails(fd: int, number: int, arg: bytearray) -> None:
        seen.append(kernel.names[number])
        if seen.count(request) == 2 and kernel.names[number] == request:
            raise OSError(errno.ENOMEM, "fake")
        kernel(fd, number, arg)

    backend.io.ioctl = second_fails  # type: ignore[attr-defined]
    hosts = [f"192.0.2.{i}" for i in range(1, 6)]
    with pytest.raises(BackendError, match=f"^{request} on table <syslogban> failed: "
                                           "Cannot allocate memory$"):
        backend.apply([Change(block, h, NOW + 60) for h in hosts], NOW)
    assert backend.list() == dict.fromkeys(before, PERMANENT)


def test_a_replace_or_read_that_cannot_fit_names_the_sysctl(device: str) -> None:
    backend, kernel = ioctl_backend("freebsd", device, maxcount=3)
    hosts = {f"192.0.2.{i}": NOW + 60 for i in range(1, 5)}
    with pytest.raises(BackendError) as raised:
        backend.sync(hosts, NOW)
    assert str(raised.value) == ("pf table <syslogban>: 4 entries in one request, more than "
                                 "net.pf.request_maxcount (3) allows; raise it: "
                                 "sysctl net.pf.request_maxcount=4")
    assert "DIOCRSETADDRS" not in [name for name, _, _ in kernel.take()]
    kernel.tables[("", "syslogban")] = {network(h) for h in hosts} | {network("192.0.2.9")}
    with pytest.raises(BackendError, match=r"^pf table <syslogban>: 5 entries in one request, "
                                           r".*sysctl net.pf.request_maxcount=5$"):
        backend.list()
    assert sizes(kernel.take(), "DIOCRGETADDRS") == [3]   # never more than the kernel takes


def test_without_the_sysctl_a_batch_is_one_request(device: str) -> None:
    # OpenBSD has no net.pf.request_maxcount (its pf_ioctl.c checks no count).
    backend, kernel = ioctl_backend("openbsd", device)
    hosts = [str(ipaddress.ip_address(0x0A000000 + i)) for i in range(1000)]
    backend.apply([Change(True, h, NOW + 60) for h in hosts], NOW)
    assert sizes(kernel.take(), "DIOCRADDADDRS") == [1000]


def test_ioctl_errors_say_which_request_and_why(device: str) -> None:
    backend, kernel = ioctl_backend("freebsd", device)
    backend.start()
    kernel.fail["DIOCRDELADDRS"] = errno.EPERM
    with pytest.raises(BackendError, match="DIOCRDELADDRS on table <syslogban> failed: "
                                           "Operation not permitted"):
        backend.apply([Change(False, "192.0.2.1", 0)], NOW)


def test_ioctl_device_that_cannot_be_opened(tmp_path: Path) -> None:
    backend, _ = ioctl_backend("freebsd", str(tmp_path / "missing"))
    with pytest.raises(BackendError, match="cannot open .*missing: No such file"):
        backend.start()


def test_method_choice(device: str, tmp_path: Path) -> None:
    assert PfBackend(method="auto", device=device, system="openbsd").method == "ioctl"
    assert PfBackend(method="auto", device=str(tmp_path / "none"), system="freebsd").method \
        == "pfctl"
    with pytest.raises(BackendError, match='needs system = "freebsd" or "openbsd"'):
        PfBackend(method="ioctl", device=device)  # these tests run on Linux
    with pytest.raises(BackendError, match="pf method 'pipe'"):
        PfBackend(method="pipe")
    with pytest.raises(BackendError, match="pf system 'netbsd'"):
        PfBackend(system="netbsd")


@pytest.mark.parametrize("options, message", [
    ({"table": "x" * 32}, "1 to 31"), ({"table": "bad table"}, "pf table name"),
    ({"table": 5}, "pf table name 5"), ({"anchor": "a b"}, "pf anchor"),
    ({"anchor": "-x"}, "pf anchor"), ({"kill_states": "maybe"}, "kill_states must be true"),
    ({"timeout": "0"}, "timeout must be a number of seconds"),
    ({"timeout": True}, "timeout must be")])
def test_names_are_checked(options: dict[str, str], message: str) -> None:
    with pytest.raises(BackendError, match=message):
        PfBackend(**options)  # type: ignore[arg-type]


# --- the pfctl path -----------------------------------------------------------

@pytest.fixture
def pfctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTool]:
    yield install("pfctl", tmp_path, monkeypatch)


def call(*argv: str, data: str | None = None) -> dict[str, Any]:
    return {"argv": ["pfctl", *argv], "data": data}


ADD = call("-q", "-t", "syslogban", "-T", "add", "-f", "-", data="")
SHOW = call("-q", "-t", "syslogban", "-T", "show")


def backend_on(fake: FakeTool, **options: Any) -> PfBackend:
    return PfBackend(pfctl=str(fake.program), **options)


def test_start_twice_creates_nothing_twice_and_flushes_nothing(pfctl: FakeTool) -> None:
    pfctl.set_state({"tables": {":syslogban": ["192.0.2.9"]}, "killed": []})
    backend = backend_on(pfctl)
    backend.start()
    backend.start()
    assert pfctl.take() == [ADD, ADD]
    assert pfctl.state()["tables"] == {":syslogban": ["192.0.2.9"]}


def test_blocks_and_unblocks_hosts_and_prefixes_of_both_families(pfctl: FakeTool) -> None:
    backend = backend_on(pfctl)
    backend.start()
    pfctl.take()
    backend.apply([Change(True, "2001:db8::1", NOW + 60), Change(True, "198.51.100.0/24", PERMANENT),
                   Change(True, "2001:db8:1::/48", NOW + 60), Change(True, "192.0.2.1", NOW + 60)],
                  NOW)
    assert pfctl.take() == [call("-q", "-t", "syslogban", "-T", "add", "-f", "-",
                                 data="192.0.2.1\n198.51.100.0/24\n2001:db8::1\n2001:db8:1::/48\n")]
    backend.apply([Change(False, "2001:db8::1", 0), Change(False, "198.51.100.0/24", 0)], NOW)
    assert pfctl.take() == [call("-q", "-t", "syslogban", "-T", "delete", "-f", "-",
                                 data="198.51.100.0/24\n2001:db8::1\n")]
    assert backend.list() == {"192.0.2.1": PERMANENT, "2001:db8:1::/48": PERMANENT}
    assert pfctl.take() == [SHOW]


def test_mixed_batch_is_one_replace_of_the_whole_table(pfctl: FakeTool) -> None:
    pfctl.set_state({"tables": {":syslogban": ["192.0.2.1", "192.0.2.2"]}, "killed": []})
    backend = backend_on(pfctl)
    backend.apply([Change(True, "192.0.2.3", NOW + 60), Change(False, "192.0.2.1", 0)], NOW)
    assert pfctl.take() == [SHOW, call("-q", "-t", "syslogban", "-T", "replace", "-f", "-",
                                       data="192.0.2.2\n192.0.2.3\n")]
    assert pfctl.state()["tables"][":syslogban"] == ["192.0.2.2", "192.0.2.3"]


def test_last_change_of_a_target_wins(pfctl: FakeTool) -> None:
    pfctl.set_state({"tables": {":syslogban": ["192.0.2.1"]}, "killed": []})
    backend = backend_on(pfctl)
    backend.apply([Change(True, "192.0.2.1", NOW + 60), Change(False, "192.0.2.1", 0)], NOW)
    assert pfctl.take() == [call("-q", "-t", "syslogban", "-T", "delete", "-f", "-",
                                 data="192.0.2.1\n")]
    backend.apply([], NOW)
    assert pfctl.take() == []


@pytest.mark.parametrize("failing, batch", [
    ("-T add", [Change(True, "192.0.2.5", NOW + 60)]),
    ("-T delete", [Change(False, "192.0.2.1", 0)]),
    ("-T replace", [Change(True, "192.0.2.5", NOW + 60), Change(False, "192.0.2.1", 0)])])
def test_a_failing_batch_changes_nothing(pfctl: FakeTool, failing: str,
                                         batch: list[Change]) -> None:
    pfctl.set_state({"tables": {":syslogban": ["192.0.2.1"]}, "killed": []})
    pfctl.fail(failing)
    with pytest.raises(BackendError, match=r"pfctl -q -t syslogban -T \w+ -f - failed "
                                           r"\(exit status 1\): pfctl: Operation not "
                                           r"permitted\.$"):
        backend_on(pfctl).apply(batch, NOW)
    assert pfctl.state()["tables"] == {":syslogban": ["192.0.2.1"]}


def test_sync_replaces_atomically(pfctl: FakeTool) -> None:
    pfctl.set_state({"tables": {":syslogban": ["192.0.2.1", "10.0.0.0/8"]}, "killed": []})
    backend = backend_on(pfctl)
    backend.sync({"2001:db8::/64": PERMANENT, "192.0.2.7": NOW + 60}, NOW)
    assert pfctl.take() == [call("-q", "-t", "syslogban", "-T", "replace", "-f", "-",
                                 data="192.0.2.7\n2001:db8::/64\n")]
    assert backend.list() == {"192.0.2.7": PERMANENT, "2001:db8::/64": PERMANENT}
    pfctl.fail("replace")
    with pytest.raises(BackendError):
        backend.sync({}, NOW)
    assert pfctl.state()["tables"][":syslogban"] == ["192.0.2.7", "2001:db8::/64"]


def test_stop_flushes_only_when_asked(pfctl: FakeTool) -> None:
    pfctl.set_state({"tables": {":syslogban": ["192.0.2.1"]}, "killed": []})
    backend = backend_on(pfctl)
    backend.stop()
    assert pfctl.take() == []
    backend.stop(flush=True)
    assert pfctl.take() == [call("-q", "-t", "syslogban", "-T", "flush")]
    assert pfctl.state()["tables"] == {":syslogban": []}


def test_anchor(pfctl: FakeTool) -> None:
    backend = backend_on(pfctl, anchor="syslogban", table="mail")
    backend.start()
    backend.apply([Change(True, "192.0.2.1", NOW + 60)], NOW)
    assert pfctl.take() == [
        call("-q", "-a", "syslogban", "-t", "mail", "-T", "add", "-f", "-", data=""),
        call("-q", "-a", "syslogban", "-t", "mail", "-T", "add", "-f", "-", data="192.0.2.1\n")]
    assert pfctl.state()["tables"] == {"syslogban:mail": ["192.0.2.1"]}


def test_state_kill_for_new_blocks(pfctl: FakeTool, caplog: pytest.LogCaptureFixture) -> None:
    pfctl.set_state({"tables": {":syslogban": ["192.0.2.1"]}, "killed": []})
    backend = backend_on(pfctl, kill_states=True)
    backend.apply([Change(True, "2001:db8::/64", NOW + 60), Change(True, "192.0.2.9", NOW + 60),
                   Change(False, "192.0.2.1", 0)], NOW)
    assert pfctl.take()[2:] == [call("-q", "-k", "192.0.2.9"), call("-q", "-k", "2001:db8::/64")]
    pfctl.fail("-k")
    with caplog.at_level(logging.WARNING, logger="syslogban.backend.pf"):
        backend.apply([Change(True, "192.0.2.10", NOW + 60)], NOW)
    assert "blocked 192.0.2.10, but its states stay" in caplog.text
    assert "192.0.2.10" in pfctl.state()["tables"][":syslogban"]


def test_list_skips_negated_entries_and_refuses_garbage(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    program = tmp_path / "pfctl-show"
    program.write_text("#!/bin/sh\nprintf '   192.0.2.1\\n ! 10.0.0.0/8\\n   2001:db8::/64\\n'\n"
                       "[ -n \"$GARBAGE\" ] && echo '   no-address'\nexit 0\n")
    program.chmod(0o755)
    backend = PfBackend(pfctl=str(program))
    assert backend.list() == {"192.0.2.1": PERMANENT, "2001:db8::/64": PERMANENT}
    monkeypatch.setenv("GARBAGE", "1")
    with pytest.raises(BackendError, match="unexpected line from .* -T show: '   no-address'"):
        backend.list()


def test_missing_pfctl_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"/nowhere/pfctl not found: install it or set its "
                                           r"path in the backend options"):
        PfBackend(pfctl="/nowhere/pfctl").start()


def test_found_on_path_and_through_the_registry(pfctl: FakeTool) -> None:
    # Options given as --backend-option KEY=VALUE arrive as text.
    backend = create("pf", pfctl="pfctl", table="mail", kill_states="false", timeout="5")
    backend.apply([Change(True, "192.0.2.1", NOW + 60)], NOW)
    assert pfctl.take() == [call("-q", "-t", "mail", "-T", "add", "-f", "-", data="192.0.2.1\n")]
    assert backend.kernel_expiry is False and backend.name == "pf"


def test_targets_that_are_not_addresses_are_refused(pfctl: FakeTool) -> None:
    backend = backend_on(pfctl)
    with pytest.raises(BackendError, match="not an address or prefix: '192.0.2.1/24'"):
        backend.apply([Change(True, "192.0.2.1/24", NOW + 60)], NOW)
    with pytest.raises(BackendError, match="not an address or prefix"):
        backend.sync({"mail.example": NOW}, NOW)
    assert pfctl.take() == []


@pytest.fixture
def limited(pfctl: FakeTool) -> FakeTool:
    """pfctl of FreeBSD 14 with net.pf.request_maxcount = 2."""
    pfctl.monkeypatch.setenv("SYSLOGBAN_FAKE_MAXCOUNT", "2")
    return pfctl


def test_pfctl_batches_above_the_limit_go_in_chunks(limited: FakeTool) -> None:
    backend = backend_on(limited, sysctl={"net.pf.request_maxcount": 2}.get)
    backend.start()
    limited.take()
    backend.apply([Change(True, f"192.0.2.{i}", NOW + 60) for i in range(1, 6)], NOW)
    assert limited.take() == [call("-q", "-t", "syslogban", "-T", "show"),
                              ADD_DATA("192.0.2.1\n192.0.2.2\n"),
                              ADD_DATA("192.0.2.3\n192.0.2.4\n"), ADD_DATA("192.0.2.5\n")]
    assert len(limited.state()["tables"][":syslogban"]) == 5


def ADD_DATA(data: str) -> dict[str, Any]:
    return call("-q", "-t", "syslogban", "-T", "add", "-f", "-", data=data)


def test_pfctl_replace_and_show_above_the_limit_name_the_sysctl(limited: FakeTool) -> None:
    backend = backend_on(limited, sysctl={"net.pf.request_maxcount": 2}.get)
    with pytest.raises(BackendError) as raised:
        backend.sync(dict.fromkeys(["192.0.2.1", "192.0.2.2", "192.0.2.3"], NOW + 60), NOW)
    assert str(raised.value) == ("pf table <syslogban>: 3 entries in one request, more than "
                                 "net.pf.request_maxcount (2) allows; raise it: "
                                 "sysctl net.pf.request_maxcount=3")
    limited.set_state({"tables": {":syslogban": ["192.0.2.1", "192.0.2.2", "192.0.2.3"]},
                       "killed": []})
    with pytest.raises(BackendError, match=r"^pfctl cannot read pf table <syslogban>: .* more "
                                           r"entries than net.pf.request_maxcount \(2\); .*"
                                           r"sysctl net.pf.request_maxcount=N$"):
        backend.list()


def test_pfctl_without_the_limit_replaces_in_one_run(pfctl: FakeTool) -> None:
    # pfctl of FreeBSD 15 sends tables over netlink, which has no such limit:
    # the replace is tried, and works, even with a small request_maxcount.
    backend = backend_on(pfctl, sysctl={"net.pf.request_maxcount": 2}.get)
    backend.sync(dict.fromkeys(["192.0.2.1", "192.0.2.2", "192.0.2.3"], NOW + 60), NOW)
    assert len(pfctl.take()) == 1
    assert len(pfctl.state()["tables"][":syslogban"]) == 3
