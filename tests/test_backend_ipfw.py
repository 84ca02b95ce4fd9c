"""The ipfw driver against a fake ipfw that records argv and command files,
and the golden bytes of the IP_FW3 request of the sockopt option.

Nothing here ran against a FreeBSD kernel: the transcripts below are what
the driver sends, checked against ipfw's table syntax (sbin/ipfw/tables.c,
main.c), and the IP_FW3 bytes are derived by hand from sys/netinet/ip_fw.h.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.tool import FakeTool, install
from syslogban.backends import BackendError, Change, create
from syslogban.backends.base import PERMANENT
from syslogban.backends.bsd_structs import (IP_FW_TABLE_XADD, IP_FW_TABLE_XDEL, ipfw3_layout,
                                             network)
from syslogban.backends.ipfw import IpfwBackend

NOW = 1_800_000_000.0


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


def test_start_creates_the_table_and_its_staging_twin_once(ipfw: FakeTool) -> None:
    backend = backend_on(ipfw)
    backend.start()
    assert take(ipfw) == [call("table", "all", "info"),
                          call("-q", "table", "syslogban", "create", "type", "addr"),
                          call("-q", "table", "syslogban_sync", "create", "type", "addr")]
    backend.apply([Change(True, "192.0.2.1", NOW + 60)], NOW)
    take(ipfw)
    backend.start()
    assert take(ipfw) == [call("table", "all", "info")]
    assert ipfw.state() == {"syslogban": ["192.0.2.1/32"], "syslogban_sync": []}


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


def test_a_mixed_batch_swaps_in_the_whole_table(ipfw: FakeTool) -> None:
    ipfw.set_state({"syslogban": ["192.0.2.1/32", "192.0.2.2/32"], "syslogban_sync": []})
    backend = backend_on(ipfw)
    backend.apply([Change(True, "2001:db8::/64", NOW + 60), Change(False, "192.0.2.1", 0)], NOW)
    assert take(ipfw) == [LIST,
                          file_call("table syslogban_sync flush",
                                    "table syslogban_sync add 192.0.2.2",
                                    "table syslogban_sync add 2001:db8::/64",
                                    "table syslogban swap syslogban_sync"),
                          call("-q", "table", "syslogban_sync", "flush")]
    assert ipfw.state() == {"syslogban": ["192.0.2.2/32", "2001:db8::/64"], "syslogban_sync": []}


@pytest.mark.parametrize("failing, batch", [
    ("atomic add", [Change(True, "192.0.2.5", NOW + 60), Change(True, "192.0.2.6", NOW + 60)]),
    ("delete", [Change(False, "192.0.2.1", 0)]),
    ("swap", [Change(True, "192.0.2.5", NOW + 60), Change(False, "192.0.2.1", 0)]),
    ("add 192.0.2.5", [Change(True, "192.0.2.5", NOW + 60), Change(False, "192.0.2.1", 0)])])
def test_a_failing_batch_changes_nothing(ipfw: FakeTool, failing: str,
                                         batch: list[Change]) -> None:
    ipfw.set_state({"syslogban": ["192.0.2.1/32"], "syslogban_sync": []})
    ipfw.fail(failing)
    with pytest.raises(BackendError, match=r"failed \(exit status 71\): ipfw: \w.*: "
                                           r"Operation not permitted \(fake failure\)"):
        backend_on(ipfw).apply(batch, NOW)
    assert ipfw.state()["syslogban"] == ["192.0.2.1/32"]


def test_sync_fills_the_staging_table_and_swaps(ipfw: FakeTool) -> None:
    ipfw.set_state({"syslogban": ["10.0.0.0/8", "192.0.2.1/32"], "syslogban_sync": []})
    backend = backend_on(ipfw)
    backend.sync({"2001:db8::/64": PERMANENT, "192.0.2.7": NOW + 60}, NOW)
    assert take(ipfw) == [file_call("table syslogban_sync flush",
                                    "table syslogban_sync add 192.0.2.7",
                                    "table syslogban_sync add 2001:db8::/64",
                                    "table syslogban swap syslogban_sync"),
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
    assert [c["argv"] for c in calls] == [LIST["argv"], ["ipfw", "-q", "FILE"],
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


# --- legacy numbered tables ---------------------------------------------------

def test_legacy_numbered_table(ipfw: FakeTool) -> None:
    ipfw.set_state({"5": ["192.0.2.1/32", "192.0.2.2/32"]})
    backend = backend_on(ipfw, legacy_number=5)
    backend.start()
    assert take(ipfw) == [call("table", "5", "list")]
    backend.apply([Change(True, "2001:db8::/64", NOW + 60), Change(False, "192.0.2.1", 0)], NOW)
    assert take(ipfw) == [call("table", "5", "list"),
                          file_call("table 5 delete 192.0.2.1", "table 5 add 2001:db8::/64")]
    backend.sync({"192.0.2.2": NOW + 60, "192.0.2.3": PERMANENT}, NOW)
    assert take(ipfw) == [call("table", "5", "list"),
                          file_call("table 5 delete 2001:db8::/64", "table 5 add 192.0.2.3")]
    assert backend.list() == {"192.0.2.2": PERMANENT, "192.0.2.3": PERMANENT}


def test_legacy_batch_failing_part_way_is_undone(ipfw: FakeTool) -> None:
    ipfw.set_state({"5": ["192.0.2.1/32", "192.0.2.9/32"]})
    backend = backend_on(ipfw, legacy_number=5)
    ipfw.fail("add 192.0.2.4")
    batch = [Change(False, "192.0.2.1", 0), Change(True, "192.0.2.3", NOW + 60),
             Change(True, "192.0.2.4", NOW + 60), Change(True, "192.0.2.9", NOW + 60)]
    with pytest.raises(BackendError, match="fake failure") as raised:
        backend.apply(batch, NOW)
    assert "restoring" not in str(raised.value)
    assert take(ipfw)[1:] == [
        file_call("table 5 delete 192.0.2.1", "table 5 add 192.0.2.3", "table 5 add 192.0.2.4",
                  "table 5 add 192.0.2.9"),
        file_call("table 5 add 192.0.2.1", "table 5 delete 192.0.2.3",
                  "table 5 delete 192.0.2.4")]
    assert ipfw.state() == {"5": ["192.0.2.1/32", "192.0.2.9/32"]}


def test_legacy_restore_that_fails_says_so(ipfw: FakeTool) -> None:
    ipfw.set_state({"5": []})
    ipfw.fail("192.0.2.4")
    with pytest.raises(BackendError, match="restoring table 5 failed too .*: it may hold part "
                                           "of this batch until the next sync"):
        backend_on(ipfw, legacy_number=5).apply(
            [Change(True, "192.0.2.3", NOW + 60), Change(True, "192.0.2.4", NOW + 60)], NOW)


def test_legacy_stop(ipfw: FakeTool) -> None:
    backend_on(ipfw, legacy_number="0").stop(flush=True)  # as --backend-option gives it
    assert take(ipfw) == [call("-q", "table", "0", "flush")]


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


def test_start_fails_clearly_when_ipfw_fails(ipfw: FakeTool) -> None:
    ipfw.fail("table 7 list")
    with pytest.raises(BackendError, match=r"ipfw table 7 list failed \(exit status 71\): "
                                           "ipfw: failed to request table info: Operation not"):
        backend_on(ipfw, legacy_number=7).start()


def test_list_refuses_lines_it_does_not_understand(ipfw: FakeTool, tmp_path: Path) -> None:
    program = tmp_path / "ipfw-list"
    program.write_text("#!/bin/sh\necho '--- table(syslogban), set(0) ---'\n"
                       "echo '192.0.2.1/32 0'\necho 'eth0 0'\n")
    program.chmod(0o755)
    with pytest.raises(BackendError, match="unexpected line from .*: 'eth0 0'"):
        IpfwBackend(ipfw=str(program)).list()


def test_through_the_registry(ipfw: FakeTool) -> None:
    backend = create("ipfw", ipfw="ipfw", table="mail")
    backend.apply([Change(True, "192.0.2.1", NOW + 60)], NOW)
    assert take(ipfw) == [call("-q", "table", "mail", "atomic", "add", "192.0.2.1", "0")]
    assert backend.kernel_expiry is False and backend.name == "ipfw"


# --- the IP_FW3 request (sockopt) -------------------------------------------------

def ip_fw3_header(opcode: int) -> bytes:
    """ipfw_obj_header by hand (FreeBSD sys/netinet/ip_fw.h), 96 bytes."""
    return bytes.fromhex(
        f"{opcode:02x}00" "0100" "00000000"      # ip_fw3_opheader: opcode, version 1, reserved
        "00000000" "0100" "00" "00"              # spare, idx 1, objtype, objsubtype
        "0100" "0000" "50000000"                 # ntlv head: TBL_NAME, flags, length 80
        "0100" "00" "01" "00000000"              # idx 1, set 0, type IPFW_TABLE_ADDR, spare
    ) + b"syslogban".ljust(64, b"\0")            # name[64]


def ip_fw3_ctlv(count: int, atomic: bool) -> bytes:
    """ipfw_obj_ctlv: TBLENT_LIST, length 16 + 120 * count, count, objsize 120,
    version 0, flags IPFW_CTF_ATOMIC or 0; 16 bytes."""
    return (bytes.fromhex("0800" "0000") + (16 + 120 * count).to_bytes(4, "little")
            + count.to_bytes(4, "little") + bytes.fromhex("7800" "00") + bytes([atomic]))


def ip_fw3_tentry(subtype: int, masklen: int, key: str, update: bool) -> bytes:
    """ipfw_obj_tentry, 120 bytes: head (TBL_ENT, IPFW_TF_UPDATE or 0, length
    120), subtype, masklen, result, spare0, idx 1, spare1, then the 40-byte key
    union (the tflow_entry is its largest member) and the 64-byte value (0)."""
    return (bytes.fromhex("0500") + bytes([update, 0]) + bytes.fromhex("78000000")
            + bytes([subtype, masklen, 0, 0]) + bytes.fromhex("0100" "0000")
            + bytes.fromhex(key).ljust(40, b"\0") + bytes(64))


XADD = (ip_fw3_header(86) + ip_fw3_ctlv(2, atomic=True)
        + ip_fw3_tentry(2, 32, "c0000201", update=True)                      # AF_INET, /32
        + ip_fw3_tentry(28, 48, "20010db80001", update=True))                # AF_INET6 = 28, /48
XDEL = ip_fw3_header(87) + ip_fw3_ctlv(1, atomic=False) + ip_fw3_tentry(2, 32, "c0000201", False)


class FakeIpFw3:
    """Records each IP_FW3 request; answers with `error` and writes `results`."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.error = 0
        self.results: list[int] = []

    def __call__(self, request: bytearray) -> int:
        self.requests.append(bytes(request))
        for i, result in enumerate(self.results):
            request[112 + 120 * i + 10] = result
        return self.error


def test_ip_fw3_request_sizes_and_golden_bytes() -> None:
    layout = ipfw3_layout()
    assert (layout.header.sizeof(), layout.ctlv.sizeof(), layout.entry_size) == (96, 16, 120)
    nets = [network("192.0.2.1"), network("2001:db8:1::/48")]
    assert bytes(layout.request(IP_FW_TABLE_XADD, "syslogban", nets, atomic=True)) == XADD
    assert bytes(layout.request(IP_FW_TABLE_XDEL, "syslogban", nets[:1])) == XDEL
    assert len(XADD) == 96 + 16 + 2 * 120


def test_sockopt_sends_single_kind_batches_as_one_request(ipfw: FakeTool) -> None:
    kernel = FakeIpFw3()
    backend = backend_on(ipfw, sockopt=True, ip_fw3=kernel)
    backend.apply([Change(True, "2001:db8:1::/48", NOW + 60), Change(True, "192.0.2.1", NOW + 60)],
                  NOW)
    backend.apply([Change(False, "192.0.2.1", 0)], NOW)
    assert kernel.requests == [XADD, XDEL]
    assert take(ipfw) == []
    kernel.error = errno.ENOENT  # some entries were gone already: not an error
    backend.apply([Change(False, "192.0.2.1", 0)], NOW)


def test_sockopt_failure_names_the_entries_the_kernel_refused(ipfw: FakeTool) -> None:
    kernel = FakeIpFw3()
    kernel.error, kernel.results = errno.EFBIG, [4, 0]    # IPFW_TR_LIMIT, IPFW_TR_IGNORED
    backend = backend_on(ipfw, sockopt=True, ip_fw3=kernel)
    with pytest.raises(BackendError, match=r"IP_FW_TABLE_XADD on table syslogban failed: "
                                           r"File too large \(192.0.2.1 limit\)$"):
        backend.apply([Change(True, "192.0.2.1", NOW + 60), Change(True, "192.0.2.2", NOW)], NOW)


def test_sockopt_leaves_mixed_batches_to_the_swap(ipfw: FakeTool) -> None:
    ipfw.set_state({"syslogban": ["192.0.2.1/32"], "syslogban_sync": []})
    kernel = FakeIpFw3()
    backend_on(ipfw, sockopt=True, ip_fw3=kernel).apply(
        [Change(True, "192.0.2.2", NOW + 60), Change(False, "192.0.2.1", 0)], NOW)
    assert kernel.requests == []
    assert ipfw.state()["syslogban"] == ["192.0.2.2/32"]
    with pytest.raises(BackendError, match="sockopt needs a named table"):
        IpfwBackend(legacy_number=1, sockopt=True)
