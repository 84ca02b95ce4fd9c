"""The per-service policy examples of contrib/syslogban.toml do what their comments say.

Each commented example is taken from the file as it is, uncommented, and
replayed by `syslogban check --replay --config` (the admin's own tool) over
realistic sessions: the failed logins that must not block yet, then the one
that must, for the time the comment names.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from syslogban.display import local_time
from syslogban.durations import format_duration

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "contrib" / "syslogban.toml"


def examples() -> dict[str, tuple[str, str]]:
    """service -> (its commented comment, the uncommented TOML table)."""
    found: dict[str, tuple[str, str]] = {}
    service = None
    for line in EXAMPLE.read_text().splitlines():
        header = re.fullmatch(r"# (\[services\.([a-z0-9-]+)\])\s+# (.+)", line)
        if header:
            service = header.group(2)
            found[service] = (header.group(3), header.group(1) + "\n")
        elif service and re.fullmatch(r"# [a-z_]+ = .+", line):
            comment, table = found[service]
            found[service] = (comment, table + line[2:] + "\n")
        else:
            service = None
    return found


# One failed login of each service as its daemons write it (several lines each).
def sshd_failure(stamp: str, pid: int) -> list[str]:
    return [f"{stamp} mx1 sshd[{pid}]: Failed password for root from 198.51.100.7 port "
            f"{40000 + pid} ssh2",
            f"{stamp} mx1 sshd[{pid}]: Received disconnect from 198.51.100.7 port "
            f"{40000 + pid}:11: Bye Bye [preauth]"]


def postfix_failure(stamp: str, pid: int) -> list[str]:
    client = "unknown[198.51.100.7]"
    return [f"{stamp} mx1 postfix/submission/smtpd[{pid}]: connect from {client}",
            f"{stamp} mx1 dovecot: auth: passwd-file(alice,198.51.100.7): Password mismatch",
            f"{stamp} mx1 postfix/submission/smtpd[{pid}]: warning: {client}: SASL LOGIN "
            "authentication failed: (reason unavailable), sasl_username=alice",
            f"{stamp} mx1 postfix/submission/smtpd[{pid}]: lost connection after AUTH from "
            f"{client}",
            f"{stamp} mx1 postfix/submission/smtpd[{pid}]: disconnect from {client} ehlo=1 "
            "auth=0/1 commands=1/2"]


def dovecot_failure(stamp: str, pid: int) -> list[str]:
    return [f"{stamp} mx1 auth-worker({pid}): pam_unix(dovecot:auth): authentication failure;"
            " logname= uid=0 euid=0 tty=dovecot ruser=alice rhost=198.51.100.7  user=alice",
            f"{stamp} mx1 dovecot: auth-worker({pid}): pam(alice,198.51.100.7,<s{pid}>): "
            "pam_authenticate() failed: Authentication failure (password mismatch?)",
            f"{stamp} mx1 dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 "
            f"secs): user=<alice>, method=PLAIN, rip=198.51.100.7, lip=192.0.2.1, "
            f"session=<s{pid}>"]


# service: (a failed login, its times, how many must not block, the block expected,
#           what the comment says)
CASES = {
    "sshd": (sshd_failure, ["Nov 21 10:00:00", "Nov 21 10:01:00", "Nov 21 10:02:00"], 2, "5m",
             "3rd failed login -> blocked for 5 minutes"),
    "postfix": (postfix_failure, ["Nov 20 10:00:00", "Nov 21 06:00:00"], 1, "1d",
                "2 failed logins within 24 h -> blocked for 24 h"),
    "dovecot": (dovecot_failure, ["Nov 21 10:00:00", "Nov 21 10:05:00", "Nov 21 10:20:00"],
                2, "permanent", "3rd failed login (the default score) -> blocked for good"),
}


def replay(tmp_path: Path, table: str, lines: list[str]) -> list[str]:
    """The blocks the replay decides, each as "TARGET for DURATION at HH:MM:SS"."""
    config = tmp_path / "syslogban.toml"
    config.write_text(table)
    log = tmp_path / "mail.log"
    log.write_text("".join(line + "\n" for line in lines))
    result = subprocess.run([sys.executable, "-m", "syslogban", "check", "--replay", "--json",
                             "--config", str(config), str(log)],
                            capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return [f"{b['target']} for "
            f"{'permanent' if b['until'] is None else format_duration(b['until'] - b['since'])}"
            f" at {local_time(b['since'])[-8:]}"
            for b in json.loads(result.stdout)["replay"]["blocks"]]


def test_the_file_has_an_example_per_case() -> None:
    assert set(examples()) == set(CASES)


@pytest.mark.parametrize("service", sorted(CASES))
def test_example_policy_does_what_its_comment_says(tmp_path: Path, service: str) -> None:
    comment, table = examples()[service]
    failure, stamps, harmless, duration, says = CASES[service]
    assert says in comment
    sessions = [failure(stamp, 100 + n) for n, stamp in enumerate(stamps)]
    assert replay(tmp_path, table, [line for s in sessions[:harmless] for line in s]) == []
    [block] = replay(tmp_path, table, [line for s in sessions for line in s])
    # at the last failed login, not before
    assert block == f"198.51.100.7 for {duration} at {stamps[-1][-8:]}"
    # the same lines with the default policy: blocked at the third failed login only
    defaults = replay(tmp_path, "", [line for s in sessions for line in s])
    assert len(defaults) == (1 if len(stamps) >= 3 else 0), defaults


def commented_tables() -> dict[str, str]:
    """Every commented-out table of the example file, uncommented: name -> TOML."""
    found: dict[str, str] = {}
    name = None
    for line in EXAMPLE.read_text().splitlines():
        header = re.fullmatch(r"# (\[([a-z_.]+)\])(\s+#.*)?", line)
        if header:
            name = header.group(2)
            found[name] = header.group(1) + "\n"
        elif name and re.fullmatch(r"# [a-z_]+ = .+", line):
            found[name] += line[2:] + "\n"
        else:
            name = None
    return found


def test_every_commented_table_is_accepted_as_written(tmp_path: Path) -> None:
    """Uncommenting an example (backend options, CrowdSec, a policy) gives a file
    `config check` takes: no example teaches a key or value that is refused."""
    tables = commented_tables()
    assert {"backend_options", "crowdsec", "services.sshd"} <= set(tables)
    for name, table in tables.items():
        config = tmp_path / f"{name}.toml"
        config.write_text(table)
        result = subprocess.run([sys.executable, "-m", "syslogban", "config", "check",
                                 "--config", str(config)],
                                capture_output=True, text=True, check=False, cwd=ROOT)
        assert result.returncode == 0, (name, table, result.stderr)
