"""The integration files in contrib/ (rsyslog, syslog-ng, FreeBSD, OpenBSD,
systemd) checked by the tools that read them, as far as this machine has
them, and the promises their READMEs make run for real: the systemd unit's
privileges suffice for nftables, socket activation hands over the listeners,
FreeBSD's pipe line starts a working syslogban.

The running daemons themselves are tested in test_syslogd_e2e.py.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from netns import netns, requires_netns, requires_nft  # noqa: F401 (fixture)
from system import requires
from test_syslogd_e2e import (ATTACK, BLOCKED, CONTRIB, LOGGER, RSYSLOGD,  # noqa: F401
                              SYSLOG_NG, SYSLOGBAN_BIN, Procs, _text, answers, expect_blocked,
                              kernel_hosts, need_inputs, need_rsyslog, need_syslog_ng, ns,
                              postfix, procs, syslogban_toml)

ROOT = CONTRIB.parent
SERVICE = CONTRIB / "systemd" / "syslogban.service"
SOCKET = CONTRIB / "systemd" / "syslogban.socket"


# ------------------------------------------------------------------ systemd

def _unit_values(path: Path, key: str) -> list[str]:
    """Every value of `key` in a unit file, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    return [line.split("=", 1)[1].strip() for line in text.splitlines()
            if line.startswith(f"{key}=")]


@requires(shutil.which("systemd-analyze"), "needs systemd-analyze (Debian package systemd)")
def test_systemd_units_verify(tmp_path: Path) -> None:
    """systemd's own parser accepts both units (with an ExecStart that exists
    here, since verify checks the binary)."""
    (tmp_path / "syslogban.service").write_text(
        SERVICE.read_text().replace("/usr/bin/syslogban", str(SYSLOGBAN_BIN)))
    shutil.copy(SOCKET, tmp_path / "syslogban.socket")
    result = subprocess.run(["systemd-analyze", "verify", "--man=no",
                             str(tmp_path / "syslogban.service"),
                             str(tmp_path / "syslogban.socket")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_systemd_listen_urls_name_the_sockets() -> None:
    """syslogban takes a passed socket only when a --listen URL names it
    exactly: the service's URLs and the socket unit's Listen lines agree."""
    command = shlex.split(_unit_values(SERVICE, "ExecStart")[0])
    urls = {command[i + 1] for i, word in enumerate(command) if word == "--listen"}
    sockets = set()
    for kind, value in [("dgram", v) for v in _unit_values(SOCKET, "ListenDatagram")] + \
                       [("stream", v) for v in _unit_values(SOCKET, "ListenStream")]:
        if value.startswith("/"):
            assert kind == "dgram", "syslogban's unix listener is a datagram socket"
            sockets.add(f"unix://{value}")
        else:
            sockets.add(f"{'udp' if kind == 'dgram' else 'tcp'}://{value}")
    assert urls == sockets


def test_systemd_paths_match_syslogban_defaults() -> None:
    """The directories the unit makes writable hold syslogban's default state
    file and control socket."""
    from syslogban.config import load
    config = load(None, None)
    assert Path(config.state).parent == Path("/var/lib") / _unit_values(SERVICE, "StateDirectory")[0]
    assert Path(config.control).parent == Path("/run") / _unit_values(SERVICE, "RuntimeDirectory")[0]


def reachable_checkout(keep: Path) -> list[str]:
    """A prefix for a command that runs this checkout's syslogban as another
    user. A checkout under a private directory (/root/syslogban on a CI
    machine: /root is 0700) cannot be reached by that user: the command then
    runs in a mount namespace of its own where a tmpfs (0755) replaces the
    outermost such directory and the checkout is bound back at its own path,
    which the venv's scripts name (`keep`, an empty directory, holds it
    meanwhile). Nothing outside that namespace changes."""
    hidden = [p for p in reversed(ROOT.parents) if not p.stat().st_mode & 0o001]
    if not hidden:
        return []
    script = ('mount --bind "$1" "$2" && mount -t tmpfs -o mode=755 tmpfs "$3" && '
              'mkdir -p "$1" && mount --bind "$2" "$1" && shift 3 && exec "$@"')
    keep.mkdir()
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            str(ROOT), keep, str(hidden[0])]


@requires_netns
@requires_nft
@requires(shutil.which("setpriv"), "needs setpriv (Debian package util-linux)")
def test_the_units_privileges_suffice_for_nftables(
        tmp_path: Path, ns: str, procs: Procs) -> None:
    """As the unit runs it: an unprivileged user, CAP_NET_ADMIN as its only
    (ambient) capability, no new privileges. setpriv sets exactly what
    User=, AmbientCapabilities=, CapabilityBoundingSet= and NoNewPrivileges=
    set; the blocks reach the kernel."""
    # The user's own directories, as StateDirectory= and RuntimeDirectory=
    # make them (pytest's tmp_path is root's, mode 0700).
    work = Path(tempfile.mkdtemp(prefix="syslogban-unit-"))
    nobody = pwd.getpwnam("nobody")
    os.chown(work, nobody.pw_uid, nobody.pw_gid)
    argv = [*reachable_checkout(work / "checkout"),
            "ip", "netns", "exec", ns, "setpriv", f"--reuid={nobody.pw_uid}",
            f"--regid={nobody.pw_gid}", "--clear-groups", "--inh-caps=-all,+net_admin",
            "--ambient-caps=-all,+net_admin", "--bounding-set=-all,+net_admin",
            "--no-new-privs", "env", f"HOME={work}", str(SYSLOGBAN_BIN), "run", "--stdin",
            "--backend", "nftables", "--state", str(work / "state.db"),
            "--control", str(work / "control.sock"), "--allow-own-addresses", "false"]
    log = tmp_path / "syslogban.log"
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=open(log, "ab"))
    try:
        assert proc.stdin is not None
        proc.stdin.write("".join(f"Nov 21 10:00:0{n} mx postfix/smtpd[1]: "
                                 f"{ATTACK.format('192.0.2.1')}\n" for n in range(3)).encode())
        proc.stdin.flush()  # kept open: EOF would stop it
        deadline = time.monotonic() + 30
        while kernel_hosts(ns) != {"192.0.2.1"}:
            assert proc.poll() is None and time.monotonic() < deadline, _text(log)
            time.sleep(0.05)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert re.search(rf"^Uid:\s+{nobody.pw_uid}\s", status, re.M), status
        assert re.search(r"^CapEff:\s+0*1000$", status, re.M), status  # CAP_NET_ADMIN (12)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    assert "Traceback" not in _text(log)


@requires_netns
@requires_nft
@requires(shutil.which("systemd-socket-activate"),
          "needs systemd-socket-activate (Debian package systemd)")
@pytest.mark.parametrize("kind", ["datagram", "stream"])
def test_socket_activation_hands_over_the_listeners(
        tmp_path: Path, ns: str, procs: Procs, kind: str) -> None:
    """systemd-socket-activate holds the sockets as syslogban.socket would
    and starts syslogban at the first record: syslogban takes the sockets
    over (LISTEN_FDS) and reads the records that waited in them."""
    need_inputs()
    sock = tmp_path / "log.sock"
    if kind == "datagram":
        listens, urls = ["--datagram", "-l", str(sock), "-l", "127.0.0.1:5514"], \
            [f"unix://{sock}", "udp://127.0.0.1:5514"]
    else:
        listens, urls = ["-l", "127.0.0.1:5514"], ["tcp://127.0.0.1:5514"]
    argv = ["ip", "netns", "exec", ns, "systemd-socket-activate", *listens,
            str(SYSLOGBAN_BIN), "run", *[p for u in urls for p in ("--listen", u)],
            "--backend", "nftables", "--state", str(tmp_path / "state.db"),
            "--control", str(tmp_path / "control.sock"), "--allow-own-addresses", "false",
            "--batch-delay", "0.001"]
    log = tmp_path / "syslogban.log"
    procs.start("systemd-socket-activate", argv, log)
    procs.wait_for(lambda: "127.0.0.1:5514" in _text(log), "the sockets")
    assert not answers(tmp_path / "control.sock")  # nothing started yet
    if kind == "datagram":
        postfix(["--socket", str(sock), "--socket-errors=on"], [ATTACK.format("192.0.2.1")] * 3)
        postfix(["-n", "127.0.0.1", "-P", "5514", "-d"], [ATTACK.format("192.0.2.2")] * 3,
                ns=ns)
        blocked = {"192.0.2.1", "192.0.2.2"}
    else:
        postfix(["-n", "127.0.0.1", "-P", "5514", "-T", "--octet-count"],
                [ATTACK.format("192.0.2.1")] * 3, ns=ns)
        blocked = {"192.0.2.1"}
    expect_blocked(procs, tmp_path, ns, blocked)
    assert "systemd passed a socket" not in _text(log)
    assert "another program" not in _text(log)


# ---------------------------------------------------------- rsyslog, syslog-ng

@pytest.mark.parametrize("name", ["syslogban-omprog.conf", "syslogban-forward.conf"])
def test_rsyslog_snippets_validate(tmp_path: Path, name: str) -> None:
    """rsyslogd -N1: the snippet loads into a configuration of its own."""
    need_rsyslog()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(f'global(workDirectory="{tmp_path}")\n'
                    f'include(file="{CONTRIB / "rsyslog" / name}")\n')
    result = subprocess.run([RSYSLOGD, "-N1", "-f", str(conf)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in (result.stdout + result.stderr).lower()


def test_syslog_ng_snippet_syntax(tmp_path: Path) -> None:
    """syslog-ng --syntax-only, with Debian's source s_src stood in for."""
    need_syslog_ng()
    conf = tmp_path / "syslog-ng.conf"
    conf.write_text("@version: 3.38\n"
                    f'source s_src {{ unix-dgram("{tmp_path / "log.sock"}"); }};\n'
                    f'@include "{CONTRIB / "syslog-ng" / "syslogban.conf"}"\n')
    result = subprocess.run([str(SYSLOG_NG), "--syntax-only", "--cfgfile", str(conf)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- BSD files

@pytest.mark.parametrize("script, shell", [("freebsd/rc.d/syslogban", "sh"),
                                           ("openbsd/rc.d/syslogban", "bash")])
def test_rc_scripts_parse(script: str, shell: str) -> None:
    """Syntax only (rc.subr is not here). FreeBSD's is POSIX sh; OpenBSD's is
    ksh, for which bash's parser stands in."""
    path = CONTRIB / script
    assert os.access(path, os.X_OK)
    result = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


def test_freebsd_rc_script_passes_a_working_command_line() -> None:
    """The syslogban command daemon(8) is given parses: every flag exists."""
    text = (CONTRIB / "freebsd" / "rc.d" / "syslogban").read_text()
    assert 'procname="daemon"' in text and "-P ${pidfile}" in text
    usage = subprocess.run([str(SYSLOGBAN_BIN), "run", "--help"], capture_output=True,
                           text=True, timeout=60, check=True).stdout
    flags = set(re.findall(r"(--[a-z-]+) \$\{", text)) | {"--listen"}
    for flag in flags:
        assert flag in usage, flag


def test_freebsd_pipe_line_starts_a_working_syslogban(tmp_path: Path) -> None:
    """syslog.conf's action, run the way FreeBSD's syslogd runs it (sh -c),
    with this test's paths and the null backend: it reads mail records from
    the pipe and blocks."""
    line = next(l for l in (CONTRIB / "freebsd" / "syslog.conf").read_text().splitlines()
                if l.startswith("mail."))
    selector, action = line.split("\t", 1)
    assert selector == "mail.info" and action.startswith("|exec ")
    toml = syslogban_toml(tmp_path, backend="null")
    command = action[1:].replace("/usr/local/bin/syslogban", str(SYSLOGBAN_BIN)) \
                        .replace("/usr/local/etc/syslogban/syslogban.toml", str(toml))
    proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.PIPE)
    try:
        assert proc.stdin is not None
        proc.stdin.write("".join(f"Nov 21 10:00:0{n} mx postfix/smtpd[1]: "
                                 f"{ATTACK.format('192.0.2.1')}\n" for n in range(3)).encode())
        proc.stdin.flush()
        log = tmp_path / "syslogban.log"
        deadline = time.monotonic() + 30
        while BLOCKED.findall(_text(log)) != ["192.0.2.1"]:
            assert proc.poll() is None and time.monotonic() < deadline, _text(log)
            time.sleep(0.05)
        # exec: syslogd's child is syslogban itself, no shell in between
        assert "syslogban" in Path(f"/proc/{proc.pid}/cmdline").read_text()
    finally:
        proc.kill()
        proc.wait()


def test_bsd_syslog_conf_forward_to_a_listener_url() -> None:
    """The forwarding lines point at the port the rc scripts listen on."""
    freebsd = (CONTRIB / "freebsd" / "syslog.conf").read_text()
    openbsd = (CONTRIB / "openbsd" / "syslog.conf").read_text()
    rc_free = (CONTRIB / "freebsd" / "rc.d" / "syslogban").read_text()
    rc_open = (CONTRIB / "openbsd" / "rc.d" / "syslogban").read_text()
    assert "@127.0.0.1:5514" in freebsd and "udp://127.0.0.1:5514" in rc_free
    assert re.search(r"^mail\.\*\s+@tcp://127\.0\.0\.1:5514$", openbsd, re.M)
    assert "--listen tcp://127.0.0.1:5514" in rc_open


def test_the_logger_used_here_is_util_linux() -> None:
    """The end-to-end tests rely on util-linux logger's --socket, -d, -T and
    --octet-count."""
    usage = subprocess.run([LOGGER, "--help"], capture_output=True, text=True,
                           check=False).stdout
    for option in ("--socket", "--udp", "--tcp", "--octet-count", "--rfc5424", "--rfc3164"):
        assert option in usage, option
