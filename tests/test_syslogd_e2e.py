"""Real syslog daemons end to end: rsyslog and syslog-ng hand mail records to
syslogban, which blocks the attacker in nftables inside a network namespace.

What each test proves is what a user's setup does: the snippets shipped in
contrib/rsyslog and contrib/syslog-ng are used as they are, with only their
paths (binary, configuration, log file) replaced, and records are written by
util-linux `logger` the way mail servers' syslog(3) calls write them.

Every daemon is a private instance: its own configuration file, work
directory, pid file and sockets under the test's tmp_path. Nothing here
touches /dev/log, port 514 or the system's configuration. syslogban (and,
when they talk over UDP/TCP, the syslog daemon) runs inside the test's own
network namespace, with only its loopback up: port 5514 there is free
whatever the host runs, so the snippets keep their port. Unix sockets live in
tmp_path and reach across namespaces, so `logger --socket` runs outside.

Installed by contrib/setup-venv.sh (as root): rsyslog from Debian (its
service never started) and syslog-ng unpacked privately (the package
conflicts with rsyslog). Without them the tests skip, saying why (and fail
on CI: system.py).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import pytest

from netns import netns, nft_json, requires_netns, requires_nft  # noqa: F401 (fixture)
from system import need

pytestmark = [requires_netns, requires_nft]

ROOT = Path(__file__).resolve().parent.parent
CONTRIB = ROOT / "contrib"
INSTALL = "contrib/setup-venv.sh installs it, as root"
# omprog starts its child with an empty environment: no PATH, so an absolute
# path, and the console script, which finds the venv's Python by itself.
SYSLOGBAN_BIN = Path(sys.executable).with_name("syslogban")
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
E2E_DIR = Path(os.environ.get("SYSLOGBAN_E2E_DIR")
               or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
               / "syslogban-e2e")
SYSLOG_NG = E2E_DIR / "bin" / "syslog-ng"
LOGGER = shutil.which("logger") or "/usr/bin/logger"
PORT = 5514          # the snippets' port, free in the test's own namespace
TIMEOUT = 30.0       # for anything to show up; a healthy run takes well under a second
ATTACK = "warning: unknown[{}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"
BLOCKED = re.compile(r"WARNING syslogban: blocked (\S+) for")


# ------------------------------------------------------------ prerequisites

@functools.cache
def _syslogban_inputs() -> str:
    """Why the new inputs cannot be tested, or "" when `run --help` shows them."""
    if not SYSLOGBAN_BIN.exists():
        return f"no console script {SYSLOGBAN_BIN} (install syslogban into the venv)"
    usage = subprocess.run([str(SYSLOGBAN_BIN), "run", "--help"], capture_output=True,
                           text=True, timeout=60, check=False).stdout
    missing = [flag for flag in ("--omprog", "--listen") if flag not in usage]
    return f"syslogban run has no {' or '.join(missing)} yet" if missing else ""


def need_rsyslog() -> None:
    need(os.access(RSYSLOGD, os.X_OK), f"rsyslogd is not installed: {INSTALL}")


def need_syslog_ng() -> None:
    need(os.access(SYSLOG_NG, os.X_OK), f"no private syslog-ng at {SYSLOG_NG}: {INSTALL}")


def need_inputs() -> None:
    reason = _syslogban_inputs()
    need(not reason, reason)


# ------------------------------------------------------------------ waiting

class Proc:
    """A process this test started, its output going to `log`."""

    def __init__(self, name: str, argv: Sequence[str], log: Path) -> None:
        self.name, self.log = name, log
        self.stopped = False  # by the test: its exit is no failure
        with open(log, "ab") as out:  # the child keeps its own copy
            self.popen = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, cwd=ROOT)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, as an init system stops it; SIGKILL when that does not do."""
        self.stopped = True
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


class Procs:
    """Everything a test started, stopped in reverse order however it ended.

    The syslogban processes our syslog daemons start (omprog, program()) are
    ours too: they are remembered whenever seen, and killed by pid should
    one outlive its parent.
    """

    def __init__(self) -> None:
        self.started: list[Proc] = []
        self.children: set[int] = set()
        self.logs: list[Path] = []

    def start(self, name: str, argv: Sequence[str], log: Path) -> Proc:
        proc = Proc(name, argv, log)
        self.started.append(proc)
        self.logs.append(log)
        return proc

    def watch(self, *logs: Path) -> None:
        """Files shown when the test fails (logs of processes others start)."""
        self.logs.extend(logs)

    def children_of(self, proc: Proc) -> list[int]:
        """The syslogban processes among `proc`'s descendants."""
        found = [pid for pid in _descendants(proc.pid) if "syslogban run" in _cmdline(pid)]
        self.children.update(found)
        return found

    def close(self) -> None:
        for proc in reversed(self.started):
            self.children_of(proc)
            proc.stop()
        for pid in self.children:
            if "syslogban run" in _cmdline(pid):  # still the process seen, not a reused pid
                os.kill(pid, signal.SIGKILL)

    def failure(self, what: str) -> AssertionError:
        tails = "\n".join(f"--- {log.name} ---\n{_tail(log)}" for log in self.logs)
        return AssertionError(f"{what}\n{tails}")

    def wait_for(self, condition: Callable[[], object], what: str,
                 timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for proc in self.started:
                if not proc.stopped and proc.popen.poll() is not None:
                    raise self.failure(f"{proc.name} exited ({proc.popen.returncode}) "
                                       f"waiting for {what}")
            if time.monotonic() > deadline:
                raise self.failure(f"timed out waiting for {what}")
            time.sleep(0.05)


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(none)"


@pytest.fixture()
def ns(netns: str) -> str:  # noqa: F811 (the fixture it builds on)
    """The test's network namespace with its loopback up (for UDP/TCP)."""
    subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], check=True)
    return netns


@pytest.fixture()
def procs(ns: str) -> Iterator[Procs]:
    """Asks for the namespace first, so that every process is gone before it is."""
    started = Procs()
    yield started
    started.close()


# --------------------------------------------------------------- syslogban

def syslogban_toml(tmp: Path, **extra: object) -> Path:
    """The configuration file a syslog daemon's child syslogban reads."""
    values: dict[str, object] = {
        "backend": "nftables", "state": str(tmp / "state.db"),
        "control": str(tmp / "control.sock"), "log_file": str(tmp / "syslogban.log"),
        "allow_own_addresses": False, "batch_delay": 0.001, **extra}
    path = tmp / "syslogban.toml"
    path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()))
    return path


def start_listener(procs: Procs, tmp: Path, ns: str, *urls: str, args: Sequence[str] = ()) -> Proc:
    """syslogban on its own in the namespace, with --listen URLs, until it listens."""
    argv = ["ip", "netns", "exec", ns, str(SYSLOGBAN_BIN), "run",
            *[part for url in urls for part in ("--listen", url)],
            "--backend", "nftables", "--state", str(tmp / "state.db"),
            "--control", str(tmp / "control.sock"), "--allow-own-addresses", "false",
            "--batch-delay", "0.001", *args]
    log = tmp / "syslogban.log"
    proc = procs.start("syslogban", argv, log)

    def listening(url: str) -> bool:  # a unix socket is there once bound
        kind, where = url.split("://", 1)
        return Path(where).exists() if kind == "unix" else f"listening on {url}" in _text(log)

    procs.wait_for(lambda: answers(tmp / "control.sock") and all(map(listening, urls)),
                   "syslogban's listeners")
    return proc


def answers(control: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(control))
        except OSError:  # not there yet, or left by a killed daemon
            return False
    return True


def ctl(control: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SYSLOGBAN_BIN), *args, "--control", str(control)],
                          capture_output=True, text=True, timeout=30, check=False)


def state_blocks(control: Path) -> set[str]:
    """What syslogban itself says it blocks (empty while it is not answering)."""
    result = ctl(control, "list", "--json")
    if result.returncode != 0:
        return set()
    return {b["target"] for b in json.loads(result.stdout)["blocks"]}


def kernel_hosts(ns: str) -> set[str]:
    """The kernel's IPv4 host set (empty while syslogban's table is not there)."""
    try:
        items = nft_json(ns, "list", "set", "inet", "syslogban", "hosts4")["nftables"]
    except subprocess.CalledProcessError:
        return set()
    return {elem["elem"]["val"] if isinstance(elem, dict) else elem
            for item in items for elem in item.get("set", {}).get("elem", [])}


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


# ------------------------------------------------------------------ senders

def logger(*args: str, lines: Iterable[str] = (), ns: str | None = None) -> None:
    """util-linux logger; each line of `lines` is a message of its own."""
    argv = [*(("ip", "netns", "exec", ns) if ns else ()), LOGGER, *args]
    subprocess.run(argv, input="".join(f"{line}\n" for line in lines), text=True,
                   check=True, timeout=60, capture_output=True)


def attacks(*addresses: str, count: int = 3) -> list[str]:
    """`count` SASL failures per address, the default threshold's worth."""
    return [ATTACK.format(a) for a in addresses for _ in range(count)]


def postfix(target: Sequence[str], messages: Sequence[str], priority: str = "mail.warning",
            ns: str | None = None) -> None:
    """Messages as postfix/smtpd logs them, through `target` (logger options)."""
    logger(*target, "-t", "postfix/smtpd", "--id=4242", "-p", priority, lines=messages, ns=ns)


def injection(sock: Path, victim: str) -> None:
    """Three datagrams as glibc's syslog(3) sends them, each holding a newline
    and, after it, a whole attack line naming `victim`: text a client could get
    into a log. A record is never split: the victim must stay unblocked."""
    forged = f"Nov 21 10:00:00 mx postfix/smtpd[77]: {ATTACK.format(victim)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        for _ in range(3):
            s.sendto(f"<22>Nov 21 10:00:00 postfix/smtpd[77]: connect from unknown[203.0.113.5]"
                     f"\n{forged}".encode(), str(sock))


def expect_blocked(procs: Procs, tmp: Path, ns: str, blocked: set[str],
                   not_blocked: Iterable[str] = ()) -> None:
    """The kernel's set, and syslogban's own list, hold exactly `blocked`. The
    others were sent first, so once `blocked` is there they were judged."""
    procs.wait_for(lambda: kernel_hosts(ns) >= blocked, f"{sorted(blocked)} in the kernel")
    held = kernel_hosts(ns)
    assert not held & set(not_blocked), "blocked an address it must not"
    assert held == blocked
    assert state_blocks(tmp / "control.sock") == blocked


# ------------------------------------------------------------------- rsyslog

class Rsyslog:
    """A private rsyslogd: its input is a unix socket in tmp (imuxsock, without
    the system socket), everything it gets is also written to all.log, and
    `body` says where mail records go."""

    def __init__(self, procs: Procs, tmp: Path, ns: str, body: str) -> None:
        self.procs, self.tmp = procs, tmp
        self.socket = tmp / "rsyslog.sock"
        self.all = tmp / "rsyslog-all.log"
        work = tmp / "rsyslog-work"
        work.mkdir()
        conf = tmp / "rsyslog.conf"
        conf.write_text(
            f'global(workDirectory="{work}")\n'
            'module(load="imuxsock" SysSock.Use="off")\n'
            f'input(type="imuxsock" Socket="{self.socket}" RateLimit.Interval="0")\n'
            f'*.* action(type="omfile" file="{self.all}" template="RSYSLOG_FileFormat")\n'
            f"{body}\n")
        procs.watch(self.all)
        check = subprocess.run([RSYSLOGD, "-N1", "-f", str(conf)], capture_output=True,
                               text=True, timeout=60, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        self.proc = procs.start("rsyslogd", ["ip", "netns", "exec", ns, RSYSLOGD, "-n",
                                             "-f", str(conf), "-i", str(tmp / "rsyslog.pid")],
                                tmp / "rsyslogd.out")
        probe(procs, self.socket, self.all)

    @property
    def target(self) -> list[str]:
        return ["--socket", str(self.socket), "--socket-errors=on"]


def probe(procs: Procs, sock: Path, seen_in: Path) -> None:
    """Waits until the daemon behind `sock` takes records (its socket exists
    once it runs; its file shows the probe once its rules are in force)."""
    marker = f"syslogban-e2e-probe-{time.monotonic_ns()}"

    def arrived() -> bool:
        if marker in _text(seen_in):
            return True
        if sock.exists():
            subprocess.run([LOGGER, "--socket", str(sock), "-p", "user.info", "-t", "probe",
                            marker], capture_output=True, timeout=10, check=False)
            time.sleep(0.1)
        return False

    procs.wait_for(arrived, f"the probe through {sock.name}")


def omprog_snippet(procs: Procs, tmp: Path, **toml: object) -> str:
    """contrib/rsyslog/syslogban-omprog.conf with this test's paths."""
    text = (CONTRIB / "rsyslog" / "syslogban-omprog.conf").read_text()
    text = text.replace("/usr/bin/syslogban", str(SYSLOGBAN_BIN))
    text = text.replace("/etc/syslogban/syslogban.toml", str(syslogban_toml(tmp, **toml)))
    procs.watch(tmp / "syslogban.log", tmp / "omprog-output.log")
    return text.replace("/var/log/syslogban.log", str(tmp / "omprog-output.log"))


def omprog_child(procs: Procs, rsyslog: Rsyslog, other_than: Iterable[int] = ()) -> int:
    """The pid of the syslogban rsyslog runs (a new one when `other_than`).

    rsyslog starts it with the action's queue worker, on the first record
    for it: a harmless mail record asks for it."""
    found: list[int] = []
    old = set(other_than)

    def started() -> bool:
        found[:] = [p for p in procs.children_of(rsyslog.proc) if p not in old]
        if not found:
            postfix(rsyslog.target, ["connect from unknown[203.0.113.5]"], "mail.info")
            time.sleep(0.1)
        return bool(found) and answers(rsyslog.tmp / "control.sock")

    procs.wait_for(started, "the syslogban rsyslog starts")
    assert len(found) == 1, f"forceSingleInstance: one syslogban, found {found}"
    return found[0]


def test_rsyslog_omprog_starts_syslogban_which_blocks(
        tmp_path: Path, ns: str, procs: Procs) -> None:
    """rsyslog starts syslogban itself (omprog, confirmMessages), forwards
    HUP to it, and stops it cleanly; only mail records reach it."""
    need_rsyslog()
    need_inputs()
    rsyslog = Rsyslog(procs, tmp_path, ns, omprog_snippet(procs, tmp_path))
    child = omprog_child(procs, rsyslog)
    injection(rsyslog.socket, "192.0.2.66")
    postfix(rsyslog.target, attacks("198.51.100.9"), priority="auth.warning")  # not mail
    postfix(rsyslog.target, attacks("192.0.2.1"))
    expect_blocked(procs, tmp_path, ns, {"192.0.2.1"}, {"192.0.2.66", "198.51.100.9"})
    log = tmp_path / "syslogban.log"

    rsyslog.proc.popen.send_signal(signal.SIGHUP)
    procs.wait_for(lambda: "reloaded:" in _text(log), "syslogban's reload on rsyslog's HUP")
    assert omprog_child(procs, rsyslog) == child  # reloaded, not restarted

    assert rsyslog.proc.stop() == 0
    procs.wait_for(lambda: "blocks kept in place" in _text(log), "syslogban's clean stop")
    assert not Path(f"/proc/{child}").exists() or "syslogban" not in _cmdline(child)
    assert kernel_hosts(ns) == {"192.0.2.1"}  # blocks outlive the daemon


def distinct_addresses(count: int) -> list[str]:
    """Documentation-range addresses, 762 at most (no traffic goes to them)."""
    nets = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
    hosts = [str(h) for net in nets for h in ipaddress.ip_network(net).hosts()]
    assert count <= len(hosts)
    return hosts[:count]


def test_rsyslog_omprog_restarts_lose_no_record(tmp_path: Path, ns: str, procs: Procs) -> None:
    """While logger keeps sending, the syslogban rsyslog runs is killed
    (SIGKILL), and later stopped (SIGTERM); rsyslog starts a new one each time
    and sends again what was not confirmed. Every record is an attack from an
    address of its own that blocks at once (attempts = 1): the addresses
    blocked, in the kernel and in syslogban's state, are exactly those sent."""
    need_rsyslog()
    need_inputs()
    rsyslog = Rsyslog(procs, tmp_path, ns, omprog_snippet(procs, tmp_path, attempts=1, block_time="1h"))
    first = omprog_child(procs, rsyslog)
    sent = distinct_addresses(600)
    control = tmp_path / "control.sock"
    log = tmp_path / "syslogban.log"

    sender = subprocess.Popen([LOGGER, *rsyslog.target, "-t", "postfix/smtpd", "--id=4242",
                               "-p", "mail.warning"], stdin=subprocess.PIPE, text=True)
    assert sender.stdin is not None

    def send() -> None:  # 600 records over ~3 s: the restarts happen mid-stream
        assert sender.stdin is not None
        for address in sent:
            sender.stdin.write(ATTACK.format(address) + "\n")
            sender.stdin.flush()
            time.sleep(0.005)
        sender.stdin.close()

    def kill(pid: int, sig: signal.Signals) -> None:
        if "syslogban" not in _cmdline(pid):
            raise procs.failure(f"syslogban {pid} died by itself before the test's {sig.name}")
        os.kill(pid, sig)

    writer = threading.Thread(target=send)
    writer.start()
    try:
        procs.wait_for(lambda: len(BLOCKED.findall(_text(log))) >= 100, "100 blocks")
        kill(first, signal.SIGKILL)
        second = omprog_child(procs, rsyslog, other_than={first})
        procs.wait_for(lambda: len(BLOCKED.findall(_text(log))) >= 300, "300 blocks")
        kill(second, signal.SIGTERM)
        third = omprog_child(procs, rsyslog, other_than={first, second})
    finally:
        writer.join()
        assert sender.wait(timeout=60) == 0
    procs.wait_for(lambda: state_blocks(control) == set(sent), "every address sent blocked",
                   timeout=60)
    assert kernel_hosts(ns) == set(sent)
    reported = BLOCKED.findall(_text(log))
    assert len(reported) == len(set(reported)), "an address was blocked twice"
    assert set(reported) <= set(sent)
    starts = _text(log).count(" blocks restored, ")
    assert starts == 3 and omprog_child(procs, rsyslog) == third, (
        f"{starts} syslogban instances ran, 3 expected (one per kill): one died by itself\n"
        + _text(tmp_path / "omprog-output.log"))


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rsyslog_forwards_to_the_listener(
        tmp_path: Path, ns: str, procs: Procs, transport: str) -> None:
    """contrib/rsyslog/syslogban-forward.conf: omfwd to syslogban's listener,
    TCP with octet counting or UDP, RFC 5424 records; syslogban filters the
    facility again (auth is not read by default)."""
    need_rsyslog()
    need_inputs()
    start_listener(procs, tmp_path, ns, f"{transport}://127.0.0.1:{PORT}")
    snippet = (CONTRIB / "rsyslog" / "syslogban-forward.conf").read_text()
    if transport == "udp":
        snippet = snippet.replace("then call syslogban_tcp", "then call syslogban_udp")
    # auth too, so that it is syslogban that leaves the auth record out
    snippet = snippet.replace('prifilt("mail.*")', 'prifilt("mail.*;auth.*")')
    rsyslog = Rsyslog(procs, tmp_path, ns, snippet)
    injection(rsyslog.socket, "192.0.2.66")
    postfix(rsyslog.target, attacks("198.51.100.9"), priority="auth.warning")
    postfix(rsyslog.target, attacks("192.0.2.1"))
    expect_blocked(procs, tmp_path, ns, {"192.0.2.1"}, {"192.0.2.66", "198.51.100.9"})


# ----------------------------------------------------------------- syslog-ng

class SyslogNg:
    """A private syslog-ng (-F, own persist file, pid file and control
    socket): its source s_src is a unix datagram socket in tmp, everything it
    gets is also written to all.log, and contrib/syslog-ng/syslogban.conf is
    included with this test's paths and destination."""

    def __init__(self, procs: Procs, tmp: Path, ns: str, destination: str,
                 facilities: str = "mail") -> None:
        self.socket = tmp / "syslog-ng.sock"
        self.all = tmp / "syslog-ng-all.log"
        snippet = (CONTRIB / "syslog-ng" / "syslogban.conf").read_text()
        snippet = snippet.replace("facility(mail);", f"facility({facilities});")
        snippet = snippet.replace("/usr/bin/syslogban", str(SYSLOGBAN_BIN))
        snippet = snippet.replace("/etc/syslogban/syslogban.toml", str(syslogban_toml(tmp)))
        snippet = snippet.replace("destination(d_syslogban_program);",
                                  f"destination({destination});")
        (tmp / "syslogban-snippet.conf").write_text(snippet)
        procs.watch(tmp / "syslogban.log", self.all)
        conf = tmp / "syslog-ng.conf"
        conf.write_text(
            "@version: 3.38\n"
            "options { keep-hostname(yes); };\n"
            f'source s_src {{ unix-dgram("{self.socket}"); }};\n'
            f'destination d_all {{ file("{self.all}"); }};\n'
            "log { source(s_src); destination(d_all); };\n"
            f'@include "{tmp / "syslogban-snippet.conf"}"\n')
        self.proc = procs.start("syslog-ng", [
            "ip", "netns", "exec", ns, str(SYSLOG_NG), "-F", "-e", "--no-caps",
            "--cfgfile", str(conf), "--persist-file", str(tmp / "syslog-ng.persist"),
            "--pidfile", str(tmp / "syslog-ng.pid"), "--control", str(tmp / "syslog-ng.ctl")],
            tmp / "syslog-ng.out")
        probe(procs, self.socket, self.all)

    @property
    def target(self) -> list[str]:
        return ["--socket", str(self.socket), "--socket-errors=on"]


def test_syslog_ng_program_destination(tmp_path: Path, ns: str, procs: Procs) -> None:
    """syslog-ng starts `syslogban run --stdin` as its program() destination
    and pipes it mail records, one per line (a newline inside a message must
    not make a second record). Needs only `--stdin`, none of the new inputs."""
    need_syslog_ng()
    sng = SyslogNg(procs, tmp_path, ns, "d_syslogban_program")
    procs.wait_for(lambda: answers(tmp_path / "control.sock"), "the syslogban syslog-ng starts")
    injection(sng.socket, "192.0.2.66")
    postfix(sng.target, attacks("198.51.100.9"), priority="auth.warning")
    postfix(sng.target, attacks("192.0.2.1"))
    expect_blocked(procs, tmp_path, ns, {"192.0.2.1"}, {"192.0.2.66", "198.51.100.9"})
    assert procs.children_of(sng.proc), "syslogban runs as syslog-ng's child"
    assert sng.proc.stop() == 0
    procs.wait_for(lambda: "blocks kept in place" in _text(tmp_path / "syslogban.log"),
                   "syslogban's clean stop at EOF")


@pytest.mark.parametrize("destination", ["d_syslogban_tcp", "d_syslogban_network"])
def test_syslog_ng_to_the_tcp_listener(
        tmp_path: Path, ns: str, procs: Procs, destination: str) -> None:
    """syslog-ng's syslog() driver (RFC 5424, octet-counted) and network()
    with the snippet's template (newline-framed, newlines in messages turned
    into spaces) to syslogban's TCP listener. Both carry the PRI: auth records
    are let through syslog-ng here so that syslogban is seen to leave them out."""
    need_syslog_ng()
    need_inputs()
    start_listener(procs, tmp_path, ns, f"tcp://127.0.0.1:{PORT}")
    sng = SyslogNg(procs, tmp_path, ns, destination, facilities="mail, auth")
    injection(sng.socket, "192.0.2.66")
    postfix(sng.target, attacks("198.51.100.9"), priority="auth.warning")
    postfix(sng.target, attacks("192.0.2.1"))
    expect_blocked(procs, tmp_path, ns, {"192.0.2.1"}, {"192.0.2.66", "198.51.100.9"})


# ------------------------------------------- no syslog daemon: logger itself

def test_unix_socket_takes_glibc_datagrams(tmp_path: Path, ns: str, procs: Procs) -> None:
    """syslogban as /dev/log would be: a unix datagram socket that logger (and
    glibc's syslog(3)) write to, in its local format and in RFC 5424."""
    need_inputs()
    sock = tmp_path / "log.sock"
    start_listener(procs, tmp_path, ns, f"unix://{sock}")
    target = ["--socket", str(sock), "--socket-errors=on"]
    injection(sock, "192.0.2.66")
    postfix(target, attacks("198.51.100.9"), priority="auth.warning")
    postfix(target, attacks("192.0.2.1"))
    postfix([*target, "--rfc5424"], attacks("192.0.2.2"))
    postfix([*target, "--rfc3164"], attacks("192.0.2.3"))
    expect_blocked(procs, tmp_path, ns, {"192.0.2.1", "192.0.2.2", "192.0.2.3"},
                   {"192.0.2.66", "198.51.100.9"})


@pytest.mark.parametrize("target", [
    pytest.param(["-d"], id="udp-rfc5424"),
    pytest.param(["-d", "--rfc3164"], id="udp-rfc3164"),
    pytest.param(["-T", "--octet-count"], id="tcp-octet-counted"),
    pytest.param(["-T"], id="tcp-newline"),
])
def test_logger_to_the_network_listeners(
        tmp_path: Path, ns: str, procs: Procs, target: list[str]) -> None:
    """logger straight to the UDP and TCP listeners (RFC 6587 both ways)."""
    need_inputs()
    transport = "tcp" if "-T" in target else "udp"
    start_listener(procs, tmp_path, ns, f"{transport}://127.0.0.1:{PORT}")
    where = ["-n", "127.0.0.1", "-P", str(PORT), *target]
    postfix(where, attacks("198.51.100.9"), priority="auth.warning", ns=ns)
    postfix(where, attacks("192.0.2.1"), ns=ns)
    expect_blocked(procs, tmp_path, ns, {"192.0.2.1"}, {"198.51.100.9"})


# ------------------------------------------ the syslog daemons alone (always)

def test_rsyslog_alone_feeds_a_pipe(tmp_path: Path, ns: str, procs: Procs) -> None:
    """The daemon side without syslogban's new inputs: rsyslog's omprog
    (without confirmations) feeds `syslogban run --stdin`, which blocks.
    Shows that rsyslog, its snippet's template and filter work here."""
    need_rsyslog()
    toml = syslogban_toml(tmp_path)
    procs.watch(tmp_path / "syslogban.log")
    body = ('module(load="omprog")\n'
            'if prifilt("mail.*") then action(type="omprog" template="RSYSLOG_FileFormat" '
            f'binary="{SYSLOGBAN_BIN} run --stdin --config {toml}" forceSingleInstance="on")')
    rsyslog = Rsyslog(procs, tmp_path, ns, body)
    postfix(rsyslog.target, attacks("198.51.100.9"), priority="auth.warning")
    postfix(rsyslog.target, attacks("192.0.2.1"))
    expect_blocked(procs, tmp_path, ns, {"192.0.2.1"}, {"198.51.100.9"})
