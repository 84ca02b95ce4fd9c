"""The ipfw driver against a fake ipfw that behaves as sbin/ipfw/tables.c and the
kernel's ip_fw_table.c say (tests/fakes/ipfw), and the IP_FW3 request of the
sockopt option in both kernel layouts, as golden bytes and against a fake
kernel handler that reads them by the headers' offsets (tests/fakes/ip_fw3.py).

Nothing here ran against a FreeBSD kernel: no BSD kernel can run on this
machine. The transcripts are what the driver sends; the bytes are derived by
hand from sys/netinet/ip_fw.h of FreeBSD 14 and of FreeBSD 15 (main, 2025).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.ip_fw3 import IpFw3Kernel
from fakes.tool import FakeTool, install
from syslogban.backends import BackendError, Change, create
from syslogban.backends.base import PERMANENT
from syslogban.backends.bsd_structs import (IP_FW_TABLE_XADD, IP_FW_TABLE_XDEL, ipfw3_layout,
                                             ipfw3_layout_for, network)
from syslogban.backends.ipfw import IpfwBackend, table_infos

NOW = 1_800_000_000.0
FREEBSD_14 = 1403000   # kern.osreldate of 14.3-RELEASE
FREEBSD_15 = 1500068


@pytest.fixture
def ipfw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTool]:
    yield install("ipfw", tmp_path, monkeypatch)


def call(*argv: str) -> dict[str, Any]:
    return {"argv": ["ipfw", *argv], "data": None}


def file_call(*lines: str) -> dict[str, Any]:
    """A command file run (`ipfw -q /tmp/.../x.rules`), with its path left out."""
    return {"argv": ["ipfw", "-q", "FILE"], "data": "".join(line + "\n" for line in lines),
            "modes": ["0o600", "0o700"]}


def take(fake: FakeTool) -> list[dict[str, Any]]:
    """The calls, each command file's path replaced by FILE once it is checked
    to be absolute (ipfw reads only those) and removed after the run."""
    calls = fake.take()
    for record in calls:
        if record["data"] is not None:
            path = record["argv"][-1]
            assert os.path.isabs(path) and not os.path.exists(path)
            assert not os.path.exists(os.path.dirname(path))
            record["argv"][-1] = "FILE"
    return calls


def backend_on(fake: FakeTool, **options: Any) -> IpfwBackend:
    return IpfwBackend(ipfw=str(fake.program), **options)


LIST = call("table", "syslogban", "list")
INFO = call("table", "all", "info")


def swap_file(table: str, *entries: str) -> dict[str, Any]:
    return file_call(f"table {table}_sync flush",
                     *(f"table {table}_sync add {entry}" for entry in entries),
                     f"table {table} swap {table}_sync")


# --- tables: created when missing, numbered or named --------------------------

def test_start_creates_the_table_and_its_staging_twin_once(ipfw: FakeTool) -> None:
    backend = backend_on(ipfw)
    backend.start()
    assert take(ipfw) == [INFO, call("-q", "table", "syslogban", "create", "type", "addr"),
                          call("-q", "table", "syslogban_sync", "create", "type", "addr")]
    backend.apply([Change(True, "192.0.2.1", NOW + 60)], NOW)
    take(ipfw)
    backend.start()
    assert take(ipfw) == [INFO]
    assert ipfw.state() == {"syslogban": ["192.0.2.1/32"], "syslogban_sync": []}


def test_a_numbered_table_that_no_rule_created_yet_is_created(ipfw: FakeTool) -> None:
    # FreeBSD >= 11: `ipfw table 5 list` on a kernel without table 5 fails
    # (tables.c table_get_info -> ESRCH); the old driver's start() did just that.
    backend = backend_on(ipfw, legacy_number=5)
    backend.start()
    assert take(ipfw) == [INFO, call("-q", "table", "5", "create", "type", "addr"),
                          call("-q", "table", "5_sync", "create", "type", "addr")]
    backend.apply([Change(True, "192.0.2.1", NOW + 60), Change(True, "192.0.2.2", NOW + 60)],
                  NOW)
    backend.apply([Change(True, "2001:db8::/64", NOW + 60), Change(False, "192.0.2.1", 0)], NOW)
    assert take(ipfw) == [call("-q", "table", "5", "atomic", "add", "192.0.2.1", "0",
                               "192.0.2.2", "0"),
                          call("table", "5", "list"),
                          swap_file("5", "192.0.2.2", "2001:db8::/64"),
                          call("table", "5", "list"),
                          call("-q", "table", "5_sync", "flush")]
    assert backend.list() == {"192.0.2.2": PERMANENT, "2001:db8::/64": PERMANENT}
    assert ipfw.state() == {"5": ["192.0.2.2/32", "2001:db8::/64"], "5_sync": []}


def test_a_numbered_table_a_rule_created_is_kept(ipfw: FakeTool) -> None:
    ipfw.set_state({"5": ["192.0.2.1/32"]})
    backend = backend_on(ipfw, legacy_number="5")  # as --backend-option gives it
    backend.start()
    assert take(ipfw) == [INFO, call("-q", "table", "5_sync", "create", "type", "addr")]
    assert backend.list() == {"192.0.2.1": PERMANENT}


def test_a_missing_numbered_table_cannot_be_listed(ipfw: FakeTool) -> None:
    """The fake follows tables.c: this is what the old start() ran into."""
    with pytest.raises(BackendError, match=r"ipfw table 7 list failed \(exit status 71\): "
                                           "ipfw: failed to request table info: No such "
                                           "process$"):
        backend_on(ipfw, legacy_number=7).list()


@pytest.mark.parametrize("meta, said", [
    ({"algo": "addr:kfib", "locked": True}, "algorithm addr:kfib, locked"),
    ({"type": "iface", "algo": "iface:array"}, "of type iface"),
    ({"locked": True}, "addr:radix, locked")])
def test_a_table_syslogban_cannot_change_is_refused_at_start(
        ipfw: FakeTool, meta: dict[str, Any], said: str) -> None:
    ipfw.set_state({"syslogban": {"entries": [], **meta}, "syslogban_sync": []})
    with pytest.raises(BackendError, match="^ipfw table syslogban is of type ") as raised:
        backend_on(ipfw).start()
    assert said in str(raised.value) and "needs an unlocked table of type addr" in str(raised.value)


def test_table_infos_reads_every_block_of_table_all_info() -> None:
    text = ("--- table(1), set(0) ---\n kindex: 4, type: addr, locked\n"
            " references: 1, valtype: legacy\n algorithm: addr:radix\n items: 0, size: 296\n"
            "--- table(flows), set(0) ---\n kindex: 2, type: flow:src-ip,proto\n"
            " references: 0, valtype: skipto,fib\n algorithm: flow:hash\n items: 3, size: 5\n"
            " limit: 10\n")
    infos = table_infos(text)
    assert set(infos) == {"1", "flows"}
    assert (infos["1"].type, infos["1"].algorithm, infos["1"].locked) == ("addr", "addr:radix",
                                                                            True)
    assert (infos["flows"].type, infos["flows"].locked) == ("flow:src-ip,proto", False)


# --- batches ------------------------------------------------------------------

def test_blocks_are_one_atomic_add_and_unblocks_one_delete(ipfw: FakeTool) -> None:
    backend = backend_on(ipfw)
    backend.start()
    take(ipfw)
    backend.apply([Change(True, "2001:db8::1", NOW + 60), Change(True, "198.51.100.0/24", PERMANENT),
                   Change(True, "2001:db8:1::/48", NOW + 60), Change(True, "192.0.2.1", NOW + 60)],
                  NOW)
    assert take(ipfw) == [call("-q", "table", "syslogban", "atomic", "add", "192.0.2.1", "0",
                               "198.51.100.0/24", "0", "2001:db8::1", "0", "2001:db8:1::/48", "0")]
    backend.apply([Change(False, "2001:db8::1", 0), Change(False, "198.51.100.0/24", 0)], NOW)
    assert take(ipfw) == [call("-q", "table", "syslogban", "delete", "198.51.100.0/24",
                               "2001:db8::1")]
    assert backend.list() == {"192.0.2.1": PERMANENT, "2001:db8:1::/48": PERMANENT}
    assert take(ipfw) == [LIST]


def test_a_mixed_batch_swaps_in_the_whole_table_and_checks_it(ipfw: FakeTool) -> None:
    ipfw.set_state({"syslogban": ["192.0.2.1/32", "192.0.2.2/32"], "syslogban_sync": []})
    backend = backend_on(ipfw)
    backend.apply([Change(True, "2001:db8::/64", NOW + 60), Change(False, "192.0.2.1", 0)], NOW)
    assert take(ipfw) == [LIST, swap_file("syslogban", "192.0.2.2", "2001:db8::/64"), LIST,
                          call("-q", "table", "syslogban_sync", "flush")]
    assert ipfw.state() == {"syslogban": ["192.0.2.2/32", "2001:db8::/64"], "syslogban_sync": []}


@pytest.mark.parametrize("failing, batch, message", [
    ("atomic add", [Change(True, "192.0.2.5", NOW + 60), Change(True, "192.0.2.6", NOW + 60)],
     r"ipfw: Adding record failed: Operation not permitted"),
    ("delete", [Change(False, "192.0.2.1", 0)],
     r"ipfw: Deleting record failed: Operation not permitted"),
    ("add 192.0.2.5", [Change(True, "192.0.2.5", NOW + 60), Change(False, "192.0.2.1", 0)],
     r"Line 2: Adding record failed: Operation not permitted")])
def test_a_failing_batch_changes_nothing(ipfw: FakeTool, failing: str, batch: list[Change],
                                         message: str) -> None:
    ipfw.set_state({"syslogban": ["192.0.2.1/32"], "syslogban_sync": []})
    ipfw.fail(failing)
    with pytest.raises(BackendError, match=r"failed \(exit status 71\): " + message):
        backend_on(ipfw).apply(batch, NOW)
    assert ipfw.state()["syslogban"] == ["192.0.2.1/32"]


def test_a_swap_the_kernel_refuses_is_found_and_keeps_the_staging_content(
        ipfw: FakeTool) -> None:
    # ipfw exits 0 when the swap fails with EPERM (tables.c table_swap only
    # reports EINVAL and EFBIG): the old driver flushed the new content away.
    ipfw.set_state({"syslogban": ["192.0.2.1/32"], "syslogban_sync": []})
    ipfw.fail("swap")
    with pytest.raises(BackendError, match=r"^ipfw table syslogban swap syslogban_sync did not "
                                           r"take effect .*: syslogban holds 1 entries, 2 wanted; "
                                           r"syslogban_sync keeps them for the next attempt$"):
        backend_on(ipfw).sync({"192.0.2.7": NOW + 60, "2001:db8::/64": PERMANENT}, NOW)
    assert take(ipfw)[-1] == LIST  # no flush of the staging table after the check
    assert ipfw.state() == {"syslogban": ["192.0.2.1/32"],
                            "syslogban_sync": ["192.0.2.7/32", "2001:db8::/64"]}


def test_a_swap_with_a_read_only_table_is_found(ipfw: FakeTool) -> None:
    # An addr:kfib table (TA_FLAG_READONLY): swap_tables returns EACCES, ipfw exits 0.
    ipfw.set_state({"syslogban": {"entries": [], "algo": "addr:kfib", "locked": True},
                    "syslogban_sync": []})
    with pytest.raises(BackendError, match="did not take effect"):
        backend_on(ipfw).sync({"192.0.2.7": NOW + 60}, NOW)
    assert ipfw.state()["syslogban_sync"] == ["192.0.2.7/32"]


def test_a_live_table_removed_behind_syslogbans_back_is_an_error(ipfw: FakeTool) -> None:
    ipfw.set_state({"syslogban_sync": []})
    with pytest.raises(BackendError, match="failed to request table info: No such process"):
        backend_on(ipfw).sync({"192.0.2.7": NOW + 60}, NOW)
    assert ipfw.state() == {"syslogban_sync": ["192.0.2.7/32"]}


def test_a_missing_staging_table_is_auto_created_by_the_add(ipfw: FakeTool) -> None:
    # `table T_sync flush` on a missing table is no error under -q, and the
    # first `add` creates it (tables.c table_modify_record, compat layer).
    ipfw.set_state({"syslogban": ["192.0.2.1/32"]})
    backend_on(ipfw).sync({"192.0.2.7": NOW + 60}, NOW)
    assert ipfw.state() == {"syslogban": ["192.0.2.7/32"], "syslogban_sync": []}


def test_sync_fills_the_staging_table_and_swaps(ipfw: FakeTool) -> None:
    ipfw.set_state({"syslogban": ["10.0.0.0/8", "192.0.2.1/32"], "syslogban_sync": []})
    backend = backend_on(ipfw)
    backend.sync({"2001:db8::/64": PERMANENT, "192.0.2.7": NOW + 60}, NOW)
    assert take(ipfw) == [swap_file("syslogban", "192.0.2.7", "2001:db8::/64"), LIST,
                          call("-q", "table", "syslogban_sync", "flush")]
    assert backend.list() == {"192.0.2.7": PERMANENT, "2001:db8::/64": PERMANENT}


def test_a_failing_staging_flush_after_the_swap_is_only_logged(
        ipfw: FakeTool, caplog: pytest.LogCaptureFixture) -> None:
    ipfw.set_state({"syslogban": [], "syslogban_sync": []})
    ipfw.fail("-q table syslogban_sync flush")
    backend_on(ipfw).sync({"192.0.2.7": NOW + 60}, NOW)
    assert ipfw.state()["syslogban"] == ["192.0.2.7/32"]
    assert "staging table keeps the old blocks" in caplog.text


def test_batches_too_large_for_one_command_take_the_swap(ipfw: FakeTool) -> None:
    ipfw.set_state({"syslogban": [], "syslogban_sync": []})
    hosts = [f"10.0.{i // 256}.{i % 256}" for i in range(1001)]
    backend_on(ipfw).apply([Change(True, h, NOW + 60) for h in hosts], NOW)
    calls = take(ipfw)
    assert [c["argv"] for c in calls] == [LIST["argv"], ["ipfw", "-q", "FILE"], LIST["argv"],
                                          ["ipfw", "-q", "table", "syslogban_sync", "flush"]]
    assert len(ipfw.state()["syslogban"]) == 1001


def test_stop_flushes_only_when_asked(ipfw: FakeTool) -> None:
    ipfw.set_state({"syslogban": ["192.0.2.1/32"], "syslogban_sync": []})
    backend = backend_on(ipfw)
    backend.stop()
    assert take(ipfw) == []
    backend.stop(flush=True)
    assert take(ipfw) == [call("-q", "table", "syslogban", "flush")]
    assert ipfw.state()["syslogban"] == []


# --- what the fake does where the driver relies on it (tables.c) -------------

def test_fake_delete_from_a_missing_table_exits_65(ipfw: FakeTool) -> None:
    with pytest.raises(BackendError, match=r"\(exit status 65\): ipfw: Table syslogban does "
                                           "not exist$"):
        backend_on(ipfw).apply([Change(False, "192.0.2.1", 0)], NOW)


def test_fake_list_of_one_table_has_no_header_but_all_list_has(ipfw: FakeTool) -> None:
    ipfw.set_state({"2": ["192.0.2.1/32"], "10": []})
    backend = backend_on(ipfw, legacy_number=2)
    assert backend._run("table", "2", "list") == "192.0.2.1/32 0\n"
    assert backend._run("table", "all", "list") == ("--- table(2), set(0) ---\n192.0.2.1/32 0\n"
                                                    "--- table(10), set(0) ---\n")


def test_list_refuses_lines_it_does_not_understand(tmp_path: Path) -> None:
    program = tmp_path / "ipfw-list"
    program.write_text("#!/bin/sh\necho '192.0.2.1/32 0'\necho '--- table(syslogban), set(0) ---'\n")
    program.chmod(0o755)
    with pytest.raises(BackendError, match=r"unexpected line from .*: '--- table\(syslogban\)"):
        IpfwBackend(ipfw=str(program)).list()


# --- options and errors ---------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    ({"table": "all"}, "not 'all'"), ({"table": "a b"}, "ipfw table name"),
    ({"table": "x" * 59}, "1 to 58"), ({"legacy_number": 65535}, "from 0 to 65534"),
    ({"legacy_number": True}, "legacy_number True"), ({"legacy_number": "x"}, "'x'"),
    ({"sockopt": "perhaps"}, "sockopt must be true or false"), ({"timeout": "-1"}, "timeout")])
def test_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(BackendError, match=message):
        IpfwBackend(**options)


def test_missing_ipfw_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match="/nowhere/ipfw not found"):
        IpfwBackend(ipfw="/nowhere/ipfw").start()


def test_through_the_registry(ipfw: FakeTool) -> None:
    backend = create("ipfw", ipfw="ipfw", table="mail")
    backend.apply([Change(True, "192.0.2.1", NOW + 60)], NOW)
    assert take(ipfw) == [call("-q", "table", "mail", "atomic", "add", "192.0.2.1", "0")]
    assert backend.kernel_expiry is False and backend.name == "ipfw"


# --- the IP_FW3 request (sockopt), FreeBSD 11-14 ("v0") and 15 ("v1") ---------

def ip_fw3_header(opcode: int, layout: str) -> bytes:
    """ipfw_obj_header by hand (sys/netinet/ip_fw.h), 96 bytes."""
    if layout == "v0":
        indexes = ("00000000" "0100" "00" "00"       # spare u32, idx u16 1, objtype, subtype
                   "0100" "0000" "50000000"          # ntlv head: TBL_NAME, flags, length 80
                   "0100" "00" "01" "00000000")      # idx u16 1, set 0, type ADDR, spare u32
    else:
        indexes = ("01000000" "0000" "00" "00"       # idx u32 1, spare u16, objtype, subtype
                   "0100" "0000" "50000000"          # ntlv head: TBL_NAME, flags, length 80
                   "01000000" "00" "01" "0000")      # idx u32 1, set 0, type ADDR, spare u16
    return (bytes.fromhex(f"{opcode:02x}00" "0100" "00000000" + indexes)  # opheader: version 1
            + b"syslogban".ljust(64, b"\0"))         # name[64]


def ip_fw3_ctlv(count: int, atomic: bool) -> bytes:
    """ipfw_obj_ctlv: TBLENT_LIST, length 16 + 120 * count, count, objsize 120,
    version 0, flags IPFW_CTF_ATOMIC or 0; 16 bytes."""
    return (bytes.fromhex("0800" "0000") + (16 + 120 * count).to_bytes(4, "little")
            + count.to_bytes(4, "little") + bytes.fromhex("7800" "00") + bytes([atomic]))


def ip_fw3_tentry(subtype: int, masklen: int, key: str, update: bool, layout: str) -> bytes:
    """ipfw_obj_tentry, 120 bytes: head (TBL_ENT, IPFW_TF_UPDATE or 0, length
    120), subtype, masklen, result, spare0, then idx 1 (v0: u16 + spare1 u16;
    v1: u32), the 40-byte key union (tflow_entry is its largest member) and
    the 64-byte value (0)."""
    index = "0100" "0000" if layout == "v0" else "01000000"
    return (bytes.fromhex("0500") + bytes([update, 0]) + bytes.fromhex("78000000")
            + bytes([subtype, masklen, 0, 0]) + bytes.fromhex(index)
            + bytes.fromhex(key).ljust(40, b"\0") + bytes(64))


def xadd(layout: str) -> bytes:
    return (ip_fw3_header(86, layout) + ip_fw3_ctlv(2, atomic=True)
            + ip_fw3_tentry(2, 32, "c0000201", update=True, layout=layout)     # AF_INET, /32
            + ip_fw3_tentry(28, 48, "20010db80001", update=True, layout=layout))  # AF_INET6 28


def xdel(layout: str) -> bytes:
    return (ip_fw3_header(87, layout) + ip_fw3_ctlv(1, atomic=False)
            + ip_fw3_tentry(2, 32, "c0000201", False, layout))


NETS = [network("192.0.2.1"), network("2001:db8:1::/48")]


@pytest.mark.parametrize("layout", ["v0", "v1"])
def test_ip_fw3_request_sizes_and_golden_bytes(layout: str) -> None:
    built = ipfw3_layout(layout)
    assert (built.header.sizeof(), built.ctlv.sizeof(), built.entry_size) == (96, 16, 120)
    assert bytes(built.request(IP_FW_TABLE_XADD, "syslogban", NETS, atomic=True)) == xadd(layout)
    assert bytes(built.request(IP_FW_TABLE_XDEL, "syslogban", NETS[:1])) == xdel(layout)
    assert len(xadd(layout)) == 96 + 16 + 2 * 120


def test_the_v0_request_read_as_v1_names_no_table() -> None:
    """Why FreeBSD 15 refuses the 14 layout: ntlv.idx 0x01000001, ntlv.type 0."""
    as_v1 = ipfw3_layout("v1").header.parse(xadd("v0")[:96])
    assert (as_v1.idx, as_v1.ntlv.idx, as_v1.ntlv.objtype) == (0, 0x01000001, 0)


@pytest.mark.parametrize("sent, kernel", [("v0", "v1"), ("v1", "v0")])
def test_each_kernel_refuses_the_other_layout(sent: str, kernel: str) -> None:
    handler = IpFw3Kernel(kernel, {"syslogban": set()})
    assert handler(bytearray(xadd(sent))) == errno.EINVAL
    assert handler.tables == {"syslogban": set()}


@pytest.mark.parametrize("osreldate, layout", [
    (1100000, "v0"), (FREEBSD_14, "v0"), (1499999, "v0"), (1500000, "v1"), (FREEBSD_15, "v1")])
def test_the_layout_follows_kern_osreldate(osreldate: int, layout: str) -> None:
    assert ipfw3_layout_for(osreldate) == layout


@pytest.mark.parametrize("osreldate, layout", [(FREEBSD_14, "v0"), (FREEBSD_15, "v1")])
def test_sockopt_speaks_the_layout_of_the_running_kernel(ipfw: FakeTool, osreldate: int,
                                                         layout: str) -> None:
    ipfw.set_state({"syslogban": [], "syslogban_sync": []})
    kernel = IpFw3Kernel(layout, {"syslogban": set()})
    backend = backend_on(ipfw, sockopt=True, ip_fw3=kernel,
                         sysctl={"kern.osreldate": osreldate}.get)
    backend.start()
    backend.apply([Change(True, "2001:db8:1::/48", NOW + 60), Change(True, "192.0.2.1", NOW + 60)],
                  NOW)
    assert kernel.tables == {"syslogban": {"192.0.2.1/32", "2001:db8:1::/48"}}
    backend.apply([Change(False, "192.0.2.1", 0)], NOW)
    backend.apply([Change(False, "192.0.2.1", 0)], NOW)  # gone already (ENOENT): no error
    assert kernel.requests[:2] == [xadd(layout), xdel(layout)]
    assert kernel.tables == {"syslogban": {"2001:db8:1::/48"}}
    assert [c["argv"] for c in take(ipfw)] == [INFO["argv"]]


@pytest.mark.parametrize("osreldate, reason", [
    (None, "kern.osreldate cannot be read, so this is not a FreeBSD kernel"),
    (1003000, "kern.osreldate 1003000: the IP_FW3 table layout of this FreeBSD is not known"),
    (1600000, "kern.osreldate 1600000: the IP_FW3 table layout")])
def test_sockopt_refuses_a_kernel_whose_layout_is_unknown(ipfw: FakeTool, osreldate: int | None,
                                                          reason: str) -> None:
    kernel = IpFw3Kernel("v1", {"syslogban": set()})
    backend = backend_on(ipfw, sockopt=True, ip_fw3=kernel,
                         sysctl={"kern.osreldate": osreldate}.get)
    with pytest.raises(BackendError, match=f"^ipfw sockopt: {reason}.*; set sockopt = false "
                                           "to let ipfw\\(8\\) talk to the kernel$"):
        backend.start()
    with pytest.raises(BackendError, match="set sockopt = false"):
        backend.apply([Change(True, "192.0.2.1", NOW + 60)], NOW)
    assert kernel.requests == []


def test_sockopt_failure_names_the_entries_the_kernel_refused(ipfw: FakeTool) -> None:
    kernel = IpFw3Kernel("v0", {"syslogban": {"192.0.2.1/32"}})
    backend = backend_on(ipfw, sockopt=True, ip_fw3=kernel,
                         sysctl={"kern.osreldate": FREEBSD_14}.get)
    # Without IPFW_TF_UPDATE an existing entry is EEXIST; with CTF_ATOMIC the rest rolls back.
    request = ipfw3_layout("v0").request(IP_FW_TABLE_XADD, "syslogban",
                                         [network("192.0.2.2"), network("192.0.2.1")])
    request[112 + 2] = request[112 + 120 + 2] = 0
    request[96 + 15] = 1
    assert kernel(request) == errno.EEXIST
    assert ipfw3_layout("v0").results(request, 2) == [1, 6]   # added (reverted), exists
    assert kernel.tables == {"syslogban": {"192.0.2.1/32"}}
    with pytest.raises(BackendError, match=r"^IP_FW_TABLE_XADD on table nowhere failed: "
                                           r"No such process$"):
        backend_on(ipfw, table="nowhere", sockopt=True, ip_fw3=kernel,
                   sysctl={"kern.osreldate": FREEBSD_14}.get).apply(
            [Change(True, "192.0.2.9", NOW + 60)], NOW)
    kernel.tables["syslogban"] = set()
    backend.apply([Change(True, "192.0.2.9", NOW + 60)], NOW)
    assert kernel.tables == {"syslogban": {"192.0.2.9/32"}}


def test_sockopt_reports_the_per_entry_results(ipfw: FakeTool) -> None:
    def limit_hit(request: bytearray) -> int:
        request[112 + 10] = 4                    # IPFW_TR_LIMIT
        return errno.EFBIG

    backend = backend_on(ipfw, sockopt=True, ip_fw3=limit_hit,
                         sysctl={"kern.osreldate": FREEBSD_15}.get)
    with pytest.raises(BackendError, match=r"IP_FW_TABLE_XADD on table syslogban failed: "
                                           r"File too large \(192.0.2.1 limit\)$"):
        backend.apply([Change(True, "192.0.2.1", NOW + 60), Change(True, "192.0.2.2", NOW)], NOW)


def test_sockopt_leaves_mixed_batches_to_the_swap_and_works_with_numbered_tables(
        ipfw: FakeTool) -> None:
    ipfw.set_state({"3": ["192.0.2.1/32"], "3_sync": []})
    kernel = IpFw3Kernel("v1", {"3": set()})
    backend = backend_on(ipfw, legacy_number=3, sockopt=True, ip_fw3=kernel,
                         sysctl={"kern.osreldate": FREEBSD_15}.get)
    backend.apply([Change(True, "192.0.2.2", NOW + 60), Change(False, "192.0.2.1", 0)], NOW)
    assert kernel.requests == []
    assert ipfw.state()["3"] == ["192.0.2.2/32"]
    backend.apply([Change(True, "192.0.2.3", NOW + 60)], NOW)
    assert kernel.tables == {"3": {"192.0.2.3/32"}}
