"""Inputs: RFC 6587 framing, the sender gate, and the daemon's listeners and
omprog mode, as real sockets and a real process."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import PROPERTY
from syslogban.framing import OctetFramer
from syslogban.sources import SenderGate
from syslogban.state import State
from test_daemon import SYSLOGBAN, ROOT, Daemon, attack_lines, daemons, start  # noqa: F401

import ipaddress

ATTACK = attack_lines("192.0.2.1", count=1).rstrip(b"\n")


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ framing

def test_octet_counting_and_lf_frames_mixed() -> None:
    f = OctetFramer(100)
    assert f.feed(b"5 hello3 abc") == [b"hello", b"abc"]
    assert f.feed(b"plain line\n11 hel") == [b"plain line"]
    assert f.feed(b"lo world") == [b"hello world"]
    assert f.feed(b"12 two\nlines ok") == [b"two\nlines ok"]  # the parser rejects it


def test_an_overlong_counted_frame_is_cut_and_skipped_as_it_arrives() -> None:
    f = OctetFramer(20)
    assert f.feed(b"100 " + b"x" * 30) == [b"x" * 22]
    assert f.feed(b"y" * 70) == []
    assert f.feed(b"ok\n") == [b"ok"]
    assert not f.broken


@pytest.mark.parametrize("data", [b"12a3 x", b"1" * 11 + b" x", b"x" * 30])
def test_lost_framing_breaks_the_stream(data: bytes) -> None:
    f = OctetFramer(20)
    f.feed(data)
    assert f.broken and f.feed(b"5 hello") == []


@PROPERTY
@given(records=st.lists(st.binary(min_size=1, max_size=50).filter(lambda b: b"\n" not in b
                                                                  and not b[:1].isdigit()),
                        max_size=20),
       cuts=st.lists(st.integers(1, 30), max_size=20), counted=st.booleans())
def test_any_split_gives_the_same_records(records: list[bytes], cuts: list[int],
                                          counted: bool) -> None:
    stream = b"".join(b"%d %s" % (len(r), r) if counted else r + b"\n" for r in records)
    f = OctetFramer(1000)
    got, pos = [], 0
    for cut in cuts + [len(stream)]:
        got += f.feed(stream[pos:pos + cut])
        pos += cut
    assert got == records and not f.broken


# --------------------------------------------------------------------- gate

def test_gate_allow_list_and_mapped_addresses() -> None:
    gate = SenderGate([ipaddress.ip_network("127.0.0.0/8"),
                       ipaddress.ip_network("2001:db8::/32")], rate=10)
    assert gate.allowed("127.0.0.1") and gate.allowed("::ffff:127.0.0.9")
    assert gate.allowed("2001:db8::1%eth0") and not gate.allowed("192.0.2.1")
    assert not gate.allowed("not an address")


def test_gate_rate_is_per_sender_and_refills() -> None:
    gate = SenderGate([], rate=10)
    assert gate.take("a", now=0.0, count=25) == 10
    assert gate.take("b", now=0.0, count=5) == 5      # another sender is not starved
    assert gate.take("a", now=0.0, count=1) == 0
    assert gate.take("a", now=0.5, count=10) == 5     # half a second: half the rate


# ------------------------------------------------------------ the listeners

def listening(tmp: Path, daemons: list[Daemon], *args: str) -> Daemon:
    """A daemon whose listeners are bound (they start after its control socket)."""
    d = start(daemons, tmp, "--stdin", "false", *args)
    d.wait_for(lambda: d.log.read_text().count("listening on ") == args.count("--listen"),
               "the listeners")
    return d


def test_udp_listener_blocks_and_counts(tmp_path: Path, daemons: list[Daemon]) -> None:
    port = free_port(socket.SOCK_DGRAM)
    d = listening(tmp_path, daemons, "--listen", f"udp://127.0.0.1:{port}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(3):
            s.sendto(b"<20>" + ATTACK, ("127.0.0.1", port))
        s.sendto(b"<20>two\nlines in one datagram", ("127.0.0.1", port))
    d.wait_for(lambda: d.reported() == ["192.0.2.1"], "the block")
    status = json.loads(d.ctl_json("status"))
    assert status["counters"]["inputs"]["received"] == 4
    assert status["counters"]["records_rejected"] == {"control-char": 1}


def test_facility_filter_applies_to_records_with_a_pri(tmp_path: Path,
                                                      daemons: list[Daemon]) -> None:
    port = free_port(socket.SOCK_DGRAM)
    d = listening(tmp_path, daemons, "--listen", f"udp://127.0.0.1:{port}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(3):  # <38> is auth.info: not read by default
            s.sendto(b"<38>" + ATTACK, ("127.0.0.1", port))
    d.wait_for(lambda: json.loads(d.ctl_json("status"))["counters"]["records_filtered"] == 3,
               "three filtered records")
    assert d.reported() == []


def test_senders_outside_the_allow_list_never_block(tmp_path: Path,
                                                  daemons: list[Daemon]) -> None:
    port = free_port(socket.SOCK_DGRAM)
    d = listening(tmp_path, daemons, "--listen", f"udp://127.0.0.1:{port}",
                  "--listen-allow", "127.0.0.2/32")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(5):
            s.sendto(ATTACK, ("127.0.0.1", port))
    d.wait_for(lambda: json.loads(d.ctl_json("status"))["counters"]["inputs"]
               ["refused_sender"] == 5, "five refused")
    assert d.reported() == []


def test_tcp_listener_octet_counting_and_slow_clients(tmp_path: Path,
                                                     daemons: list[Daemon]) -> None:
    port = free_port(socket.SOCK_STREAM)
    d = listening(tmp_path, daemons, "--listen", f"tcp://127.0.0.1:{port}")
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"500 half a frame")  # a client that stops mid-frame stalls nobody
    with socket.create_connection(("127.0.0.1", port)) as s:
        frame = b"<20>" + ATTACK
        s.sendall(b"".join(b"%d %s" % (len(frame), frame) for _ in range(2)))
        s.sendall(frame + b"\n")  # LF framing on the same connection
    d.wait_for(lambda: d.reported() == ["192.0.2.1"], "the block")
    slow.close()


def test_unix_listener_mode_and_stale_socket(tmp_path: Path, daemons: list[Daemon]) -> None:
    path = tmp_path / "log.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(path))
    stale.close()  # left behind, as by a killed daemon
    d = listening(tmp_path, daemons, "--listen", f"unix://{path}", "--unix-mode", "0620")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o620
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        for _ in range(3):  # as glibc's syslog(3) writes to /dev/log: no hostname
            s.sendto(b"<20>Nov 21 10:00:00 postfix/smtpd[7]: warning: unknown[192.0.2.1]: "
                     b"SASL LOGIN authentication failed: x", str(path))
    d.wait_for(lambda: d.reported() == ["192.0.2.1"], "the block")


def test_a_file_in_the_way_of_the_unix_socket_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "log.sock"
    path.write_text("precious")
    result = subprocess.run([*SYSLOGBAN, "run", "--backend", "null", "--listen",
                             f"unix://{path}", "--state", str(tmp_path / "s.db"),
                             "--control", str(tmp_path / "c.sock")],
                            capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert result.returncode != 0 and "not a socket" in result.stderr
    assert path.read_text() == "precious"


# ------------------------------------------------------------------- omprog

def omprog(tmp: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*SYSLOGBAN, "run", "--omprog", "--backend", "null", "--state", str(tmp / "s.db"),
         "--control", str(tmp / "c.sock"), "--allow-own-addresses", "false", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(tmp / "log", "wb"),
        cwd=ROOT)


def converse(proc: subprocess.Popen[bytes], line: bytes) -> bytes:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + b"\n")
    proc.stdin.flush()
    return proc.stdout.readline().rstrip(b"\n")


def test_omprog_confirms_each_record_after_handling_it(tmp_path: Path) -> None:
    proc = omprog(tmp_path)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"OK\n"  # ready
    assert [converse(proc, ATTACK) for _ in range(3)] == [b"OK"] * 3
    # the block the third record caused was committed before its OK
    assert State(tmp_path / "s.db").load(time.time())[0][0].target == "192.0.2.1"
    assert converse(proc, b"\xff\xfe garbage") == b"OK"  # counted and skipped: handled
    proc.stdin.close()  # EOF: a quiet exit
    assert proc.wait(timeout=30) == 0


def test_omprog_transactions_and_signals(tmp_path: Path) -> None:
    import signal
    proc = omprog(tmp_path)
    assert proc.stdout is not None and proc.stdout.readline() == b"OK\n"
    assert converse(proc, b"BEGIN TRANSACTION") == b"OK"
    assert [converse(proc, ATTACK) for _ in range(2)] == [b"DEFER_COMMIT"] * 2
    assert converse(proc, b"COMMIT TRANSACTION") == b"OK"
    proc.send_signal(signal.SIGHUP)  # rsyslog's hup.signal: a reload, not a death
    time.sleep(0.5)
    assert proc.poll() is None and converse(proc, ATTACK) == b"OK"
    proc.send_signal(signal.SIGTERM)  # signalOnClose
    assert proc.wait(timeout=30) == 0
    assert "stopped (blocks kept in place" in (tmp_path / "log").read_text()


# ---------------------------------------------- TCP: no sender takes every slot

def _hold_half_frames(port: int, count: int, sources: list[str]) -> list[socket.socket]:
    """`count` connections, spread over the source addresses, each stopped in
    the middle of a frame (octet-counted or LF), as a greedy local process would."""
    held = []
    for n in range(count):
        s = socket.socket()
        s.bind((sources[n % len(sources)], 0))
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(b"500 half a frame" if n % 2 else b"<20>a line without its end")
        except OSError:  # refused or reset by the listener: it holds nothing
            s.close()
            continue
        held.append(s)
    return held


@pytest.mark.parametrize("attackers, relay", [
    (["127.0.0.1"], "127.0.0.2"),                          # one greedy sender
    ([f"127.0.1.{n}" for n in range(1, 21)], "127.0.0.2"),  # twenty of them fill the table
    (["127.0.0.1"], "127.0.0.1"),                          # the relay shares its address
])
def test_hundreds_of_half_frames_leave_a_relay_its_slot(
        tmp_path: Path, daemons: list[Daemon], attackers: list[str], relay: str) -> None:
    """300 connections stopped mid-frame (the table holds 256), then a relay's
    records: blocked within a second, long before any timeout frees a slot."""
    port = free_port(socket.SOCK_STREAM)
    d = listening(tmp_path, daemons, "--listen", f"tcp://127.0.0.1:{port}",
                  "--tcp-frame-timeout", "1h", "--tcp-idle", "1h")
    held = _hold_half_frames(port, 300, attackers)
    try:
        d.wait_for(lambda: json.loads(d.ctl_json("status"))["counters"]["inputs"]
                   ["connections"] >= 256, "the greedy connections")
        started = time.monotonic()
        with socket.socket() as s:
            s.bind((relay, 0))
            s.connect(("127.0.0.1", port))
            s.sendall(b"".join(b"<20>" + ATTACK + b"\n" for _ in range(3)))
            d.wait_for(lambda: d.reported() == ["192.0.2.1"], "the relay's block", timeout=10)
        took = time.monotonic() - started
        print(f"relay's records blocked {took * 1000:.0f} ms after it connected, "
              f"{len(held)} greedy connections attempted")
        assert took < 1.0
        inputs = json.loads(d.ctl_json("status"))["counters"]["inputs"]
        assert inputs["connections_evicted"] >= 1
    finally:
        for s in held:
            s.close()


def test_an_incomplete_frame_is_closed_after_its_deadline(tmp_path: Path,
                                                          daemons: list[Daemon]) -> None:
    port = free_port(socket.SOCK_STREAM)
    d = listening(tmp_path, daemons, "--listen", f"tcp://127.0.0.1:{port}",
                  "--tcp-frame-timeout", "0.5s")
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"500 half a frame")
        time.sleep(0.2)
        s.sendall(b" and a little more")   # trickling does not extend the deadline
        s.settimeout(10)
        assert s.recv(1) == b""            # closed by the listener
    with socket.create_connection(("127.0.0.1", port)) as idle:
        time.sleep(1.0)                    # silent between frames: tcp_idle applies
        idle.sendall(b"<20>" + ATTACK + b"\n")
    inputs = json.loads(d.ctl_json("status"))["counters"]["inputs"]
    assert inputs["frame_timeouts"] == 1 and inputs["connections"] == 2
