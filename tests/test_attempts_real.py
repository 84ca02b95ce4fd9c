"""Attempts as the real daemons write them, driven by real clients.

Private instances of Postfix 3.7 (with Dovecot SASL), Dovecot 2.3 (passwd-file,
PAM and SQLite passdbs; IMAP, POP3, submission), OpenSSH's sshd, Exim 4.96 and
OpenSMTPD 6.8 (both unpacked privately: they conflict with Postfix) run in a
lab (tests/maild.py: a network namespace, a private /dev/log, private users),
each started once for the module. swaks, curl, ssh and Python's smtplib log
in with wrong passwords from an address per scenario, one failed login at a
time; after each, the lab waits until the daemons have written everything
about it and marks the place in the stream of records.

Then, for each scenario, the real records go through what the daemon runs
(pipeline, attempt accounting, decisions), on their arrival times:
* the attempts counted for the address are the failed logins the client made;
* with `attempts = N` in the service's policy it is blocked at the N-th failed
  login and never before (N = 1..5); with the defaults, never after 2 and
  blocked after 3; a mistyped password followed by the right one never blocks.
OpenSMTPD 6.8 as Debian 12 ships it cannot do TLS with OpenSSL 3
(OpenSMTPD/OpenSMTPD#1171, #1239), and it offers AUTH only over TLS: its
scenario is the bot's AUTH where AUTH is not offered.
Needs root (network and mount namespaces) and the mail daemons that
contrib/setup-venv.sh installs; on CI a missing one fails (system.py).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from base64 import b64encode
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import system
from maild import E2E_DIR, Lab

from syslogban.blocker import BlockerConfig, Policy
from syslogban.decisions import Decisions
from syslogban.matcher import Matcher
from syslogban.pipeline import Pipeline
from syslogban.record import RecordParser
from syslogban.scanner import Scanner
from syslogban.signatures import load_rules, select

PASSWORD = "right-password"
WRONG_PLAIN = b64encode(b"\0alice\0wrong-password").decode()  # AUTH PLAIN's argument
TOOLS = ("postfix", "dovecot", "swaks", "curl", "ssh", "sshd", "openssl", "sqlite3")
EXIM_UID = 5001
missing = [tool for tool in TOOLS
           if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()]
missing += [str(path) for path in (E2E_DIR / "exim/usr/sbin/exim4",
                                   E2E_DIR / "opensmtpd/usr/sbin/smtpd") if not path.exists()]
pytestmark = [
    system.requires(os.geteuid() == 0, "needs root (network and mount namespaces)"),
    system.requires(not missing, f"needs {', '.join(missing)}: contrib/setup-venv.sh "
                                 "installs them, as root")]

MX = "192.0.2.1"        # Postfix, and Dovecot with passwd-file (Postfix's SASL)
DOVECOT_PAM = "192.0.2.2"
DOVECOT_SQL = "192.0.2.3"
SSHD = "192.0.2.5"
SSHD_PAM = "192.0.2.6"
EXIM = "192.0.2.7"
OPENSMTPD = "192.0.2.8"
SERVERS = (MX, DOVECOT_PAM, DOVECOT_SQL, SSHD, SSHD_PAM, EXIM, OPENSMTPD)
EXIM_BIN = E2E_DIR / "exim" / "usr" / "sbin" / "exim4"
OPENSMTPD_BIN = E2E_DIR / "opensmtpd" / "usr" / "sbin" / "smtpd"


# ------------------------------------------------------------------ scenarios

@dataclass
class Scenario:
    name: str
    service: str          # whose policy applies
    address: str          # the client's own address
    login: Callable[[Lab, str, bool], None]  # (lab, address, right password?)
    failures: int = 5     # sessions with failed logins made
    per_session: int = 1  # failed logins in each
    success_after: int = 0  # a successful login after this many failures (0: none)
    marks: list[int] = field(default_factory=list)  # records after each failed login


def swaks(port: int, server: str = MX, auth: str = "LOGIN", extra: tuple[str, ...] = ()
          ) -> Callable[[Lab, str, bool], None]:
    def login(lab: Lab, address: str, right: bool) -> None:
        lab.run(["swaks", "--server", f"{server}:{port}", "--local-interface", address,
                 "--auth", auth, "--auth-user", "alice", "--auth-password",
                 PASSWORD if right else "wrong-password", "--quit-after", "AUTH",
                 "--timeout", "20", *extra])
    return login


def auth_not_offered(port: int, server: str = MX) -> Callable[[Lab, str, bool], None]:
    """A bot's AUTH where it is not offered (smtpd_tls_auth_only, no STARTTLS)."""
    def login(lab: Lab, address: str, right: bool) -> None:
        lab.run(["python3", "-c", f"""
import smtplib
s = smtplib.SMTP("{server}", {port}, source_address=("{address}", 0), timeout=20)
s.ehlo("bot.example")
print(s.docmd("AUTH", "PLAIN {WRONG_PLAIN}"))
s.quit()
"""])
    return login


def smtp_session(attempts: int) -> Callable[[Lab, str, bool], None]:
    """One SMTP session (smtplib) with `attempts` failed AUTH commands."""
    def login(lab: Lab, address: str, right: bool) -> None:
        lab.run(["python3", "-c", f"""
import smtplib
s = smtplib.SMTP("{MX}", 587, source_address=("{address}", 0), timeout=20)
s.ehlo("bot.example")
for _ in range({attempts}):
    print(s.docmd("AUTH", "PLAIN {WRONG_PLAIN}"))
s.quit()
"""])
    return login


def curl(scheme: str, server: str) -> Callable[[Lab, str, bool], None]:
    def login(lab: Lab, address: str, right: bool) -> None:
        lab.run(["curl", "-s", "--max-time", "20", "--interface", address,
                 "--user", f"alice:{PASSWORD if right else 'wrong-password'}",
                 f"{scheme}://{server}/"])
    return login


def ssh(server: str, prompts: int = 1) -> Callable[[Lab, str, bool], None]:
    def login(lab: Lab, address: str, right: bool) -> None:
        askpass = lab.root / ("askpass-right" if right else "askpass-wrong")
        lab.run(["ssh", "-b", address, "-F", "/dev/null", "-o", "BatchMode=no",
                 "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                 "-o", "PreferredAuthentications=password,keyboard-interactive",
                 "-o", f"NumberOfPasswordPrompts={prompts}", "-o", "ConnectTimeout=20",
                 f"alice@{server}", "true"],
                env={"SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force",
                     "DISPLAY": ":0"})
    return login


SCENARIOS = [
    Scenario("postfix-submission-dovecot-sasl", "postfix", "198.51.100.11", swaks(587)),
    Scenario("postfix-smtpd-v", "postfix", "198.51.100.12", swaks(2525)),
    Scenario("postfix-auth-not-offered", "postfix", "198.51.100.13", auth_not_offered(2526)),
    Scenario("postfix-auth-not-offered-v", "postfix", "198.51.100.14", auth_not_offered(2527)),
    Scenario("postfix-typo-then-login", "postfix", "198.51.100.15", swaks(587),
             failures=1, success_after=1),
    Scenario("postfix-3-auth-per-session", "postfix", "198.51.100.16", smtp_session(3),
             failures=2, per_session=3),
    Scenario("dovecot-imap-passwd-file", "dovecot", "198.51.100.21", curl("imap", MX)),
    Scenario("dovecot-pop3-passwd-file", "dovecot", "198.51.100.22", curl("pop3", MX)),
    Scenario("dovecot-submission-passwd-file", "dovecot", "198.51.100.23",
             swaks(1587, auth="PLAIN")),
    Scenario("dovecot-imap-pam", "dovecot", "198.51.100.24", curl("imap", DOVECOT_PAM)),
    Scenario("dovecot-pop3-pam", "dovecot", "198.51.100.25", curl("pop3", DOVECOT_PAM)),
    Scenario("dovecot-imap-sql", "dovecot", "198.51.100.26", curl("imap", DOVECOT_SQL)),
    Scenario("dovecot-submission-sql", "dovecot", "198.51.100.27",
             swaks(1587, server=DOVECOT_SQL, auth="PLAIN")),
    Scenario("dovecot-typo-then-login", "dovecot", "198.51.100.28", curl("imap", MX),
             failures=1, success_after=1),
    Scenario("sshd-password", "sshd", "198.51.100.31", ssh(SSHD)),
    Scenario("sshd-pam", "sshd", "198.51.100.32", ssh(SSHD_PAM)),
    Scenario("sshd-typo-then-login", "sshd", "198.51.100.34", ssh(SSHD),
             failures=1, success_after=1),
    Scenario("sshd-3-passwords-per-connection", "sshd", "198.51.100.33", ssh(SSHD, prompts=3),
             failures=2, per_session=3),
    Scenario("exim-plaintext-login", "exim", "198.51.100.41", swaks(2525, server=EXIM)),
    Scenario("exim-typo-then-login", "exim", "198.51.100.42", swaks(2525, server=EXIM),
             failures=1, success_after=1),
    Scenario("opensmtpd-auth-not-offered", "opensmtpd", "198.51.100.43",
             auth_not_offered(2525, OPENSMTPD)),
]
CLIENTS = [s.address for s in SCENARIOS]


# ------------------------------------------------------------------ the daemons

def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def dovecot(lab: Lab, name: str, address: str, passdb: str, verbose: bool,
            extra: str = "") -> None:
    home = lab.root / f"dovecot-{name}"
    (home / "run").mkdir(parents=True)
    config = write(home / "dovecot.conf", f"""
protocols = imap pop3 submission
listen = {address}
base_dir = {home}/run
state_dir = {home}/state
log_path = syslog
syslog_facility = mail
auth_verbose = {"yes" if verbose else "no"}
disable_plaintext_auth = no
ssl = no
auth_mechanisms = plain login
mail_location = maildir:{lab.root}/mail/%u
hostname = mx.lab
submission_relay_host = 127.0.0.1
submission_relay_port = 9
passdb {{
{passdb}
}}
userdb {{
  driver = static
  args = uid=5000 gid=5000 home={lab.root}/mail/%u
}}
service imap-login {{
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3s {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 1587
  }}
}}
{extra}
""")
    lab.start(["dovecot", "-F", "-c", str(config)],
              ready=lambda: lab.listening(address, 143) and lab.listening(address, 1587))


def postfix(lab: Lab, sasl: Path) -> None:
    home = lab.root / "postfix"
    etc, spool = home / "etc", home / "spool"
    spool.mkdir(parents=True)
    write(etc / "main.cf", f"""
compatibility_level = 3.6
queue_directory = {spool}
data_directory = {home}/data
myhostname = mx.lab
inet_interfaces = {MX}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
smtputf8_enable = no
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {sasl}
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
""")
    services = "\n".join(
        line.replace(" y ", " n ", 1) if " unix " in line else line  # no chroot
        for line in Path("/etc/postfix/master.cf").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "smtp ", "submission ", "smtps "))
        and not line.startswith((" ", "\t")))
    write(etc / "master.cf", services + f"""
{MX}:submission inet n - n - - smtpd
{MX}:2525 inet n - n - - smtpd -v
{MX}:2526 inet n - n - - smtpd -o smtpd_tls_auth_only=yes
{MX}:2527 inet n - n - - smtpd -v -o smtpd_tls_auth_only=yes
""")
    # in the lab's namespace: postfix checks that inet_interfaces are local
    created = lab.run(["postfix", "-c", str(etc), "set-permissions", "create-missing"])
    assert created.returncode == 0, created.stderr
    lab.start(["postfix", "-c", str(etc), "start-fg"],
              ready=lambda: lab.listening(MX, 587) and lab.listening(MX, 2527))


def sshd(lab: Lab, address: str, pam: bool) -> None:
    home = lab.root / f"sshd-{address}"
    home.mkdir()
    key = home / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                   check=True)
    config = write(home / "sshd_config", f"""
ListenAddress {address}
HostKey {key}
PidFile {home}/sshd.pid
SyslogFacility AUTH
LogLevel INFO
PasswordAuthentication yes
KbdInteractiveAuthentication {"yes" if pam else "no"}
UsePAM {"yes" if pam else "no"}
PermitRootLogin no
MaxAuthTries 10
""")
    lab.start(["/usr/sbin/sshd", "-D", "-f", str(config)],
              ready=lambda: lab.listening(address, 22))


def exim(lab: Lab) -> None:
    """Exim with plaintext authenticators and syslog (each refusal goes to its
    main and its reject log: twice, at two severities)."""
    home = lab.root / "exim"
    spool = home / "spool"
    spool.mkdir(parents=True)
    os.chown(spool, EXIM_UID, EXIM_UID)
    check = "${if and {{eq{$auth%d}{alice}}{eq{$auth%d}{%s}}}}"
    config = write(home / "exim.conf", f"""
exim_path = {EXIM_BIN}
primary_hostname = mx.lab
daemon_smtp_ports = 2525
local_interfaces = {EXIM}
spool_directory = {spool}
log_file_path = syslog
syslog_facility = mail
exim_user = Debian-exim
exim_group = Debian-exim
tls_advertise_hosts =
keep_environment =
acl_smtp_rcpt = acl_check_rcpt
begin acl
acl_check_rcpt:
  accept authenticated = *
  deny
begin authenticators
PLAIN:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = {check % (2, 3, PASSWORD)}
  server_set_id = $auth2
LOGIN:
  driver = plaintext
  public_name = LOGIN
  server_prompts = <| Username: | Password:
  server_condition = {check % (1, 2, PASSWORD)}
  server_set_id = $auth1
""")
    lab.start([str(EXIM_BIN), "-C", str(config), "-bdf"],
              ready=lambda: lab.listening(EXIM, 2525))


def opensmtpd(lab: Lab) -> None:
    """OpenSMTPD with its spool and privsep directory private to it."""
    home = lab.root / "opensmtpd"
    (home / "spool").mkdir(parents=True)
    (home / "lib" / "opensmtpd" / "empty").mkdir(parents=True)
    config = write(home / "smtpd.conf", f"""
listen on {OPENSMTPD} port 2525
action "local" mbox
match from any for local action "local"
""")
    lab.start([str(OPENSMTPD_BIN), "-F", "-f", str(config)],
              ready=lambda: lab.listening(OPENSMTPD, 2525),
              binds=[(home / "spool", "/var/spool"), (home / "lib", "/var/lib")])


def hashed(password: str) -> str:
    return subprocess.run(["openssl", "passwd", "-6", password], capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    # Not under pytest's private (0700) directory: the daemons' users must reach it.
    root = Path(tempfile.mkdtemp(prefix="syslogban-maild-"))
    lab = Lab(root, SERVERS, CLIENTS, users=[
        f"alice:5000:{hashed(PASSWORD)}", f"Debian-exim:{EXIM_UID}:*", "opensmtpd:5002:*",
        "opensmtpq:5003:*"])
    try:
        for name, right in (("askpass-right", True), ("askpass-wrong", False)):
            write(root / name, f"#!/bin/sh\necho {PASSWORD if right else 'wrong-password'}\n",
                  0o755)
        users = write(root / "dovecot-file-users", f"alice:{{PLAIN}}{PASSWORD}\n")
        sasl = root / "dovecot-file" / "auth-postfix"
        dovecot(lab, "file", MX, f"  driver = passwd-file\n  args = {users}", verbose=True,
                extra=f"service auth {{\n  unix_listener {sasl} {{\n    mode = 0666\n  }}\n}}")
        dovecot(lab, "pam", DOVECOT_PAM, "  driver = pam", verbose=True)
        database = root / "users.db"
        with sqlite3.connect(database) as db:
            db.execute("CREATE TABLE users (username TEXT, password TEXT)")
            db.execute("INSERT INTO users VALUES ('alice', ?)", (PASSWORD,))
        database.chmod(0o644)
        sql = write(root / "dovecot-sql.conf.ext", f"""
driver = sqlite
connect = {database}
default_pass_scheme = PLAIN
password_query = SELECT username AS user, password FROM users WHERE username = '%u'
""")
        dovecot(lab, "sql", DOVECOT_SQL, f"  driver = sql\n  args = {sql}", verbose=False)
        postfix(lab, sasl)
        sshd(lab, SSHD, pam=False)
        sshd(lab, SSHD_PAM, pam=True)
        exim(lab)
        opensmtpd(lab)
        with ThreadPoolExecutor(len(SCENARIOS)) as pool:
            list(pool.map(lambda s: drive(lab, s), SCENARIOS))
        yield lab
    finally:
        lab.close()
        shutil.rmtree(root, ignore_errors=True)


def drive(lab: Lab, scenario: Scenario) -> None:
    """The scenario's failed logins one at a time, a mark after each."""
    for number in range(1, scenario.failures + 1):
        scenario.login(lab, scenario.address, False)
        scenario.marks.append(lab.collector.settle(scenario.address))
        if number == scenario.success_after:
            scenario.login(lab, scenario.address, True)
            scenario.marks[-1] = lab.collector.settle(scenario.address)


# ------------------------------------------------------------------ replaying

SIGNATURES = select(load_rules())


def replay(records: list[tuple[float, bytes]], scenario: Scenario,
           config: BlockerConfig) -> tuple[int | None, int, int]:
    """(after how many failed logins the address is first blocked, or None;
    the attempts counted for it; its lines), as the daemon decides on these records."""
    matcher = Matcher(SIGNATURES)
    pipeline = Pipeline(RecordParser(timestamps=False), matcher,  # as engine.py builds it
                        Scanner(matcher.prefilters(), 8192, "plain"))
    decisions = Decisions(config)
    blocked_at, attempts, lines, position = None, 0, 0, 0
    ends = [*scenario.marks, len(records)]
    for number, end in enumerate(ends, start=1):
        for arrived, data in records[position:end]:
            detection = pipeline.feed_record(data, arrived)
            if detection is None or detection.attack.address != scenario.address:
                continue
            attempts += detection.counted.new
            lines += 1
            decisions.decide(detection, arrived)
        position = end
        if blocked_at is None and scenario.address in decisions.blocker.active and number <= len(
                scenario.marks):
            blocked_at = number
    return blocked_at, attempts, lines


def text(records: list[tuple[float, bytes]], address: str) -> str:
    return "\n".join(data.decode(errors="replace") for _, data in records
                     if address.encode() in data)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_attempts_are_the_failed_logins(lab: Lab, scenario: Scenario) -> None:
    records = lab.collector.snapshot()
    _, attempts, lines = replay(records, scenario, BlockerConfig())
    print(f"\n{scenario.name}: {scenario.failures * scenario.per_session} failed logins, "
          f"{lines} lines matched, {attempts} attempts counted")
    assert attempts == scenario.failures * scenario.per_session, text(records,
                                                                      scenario.address)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS
                                      if not s.success_after and s.per_session == 1],
                         ids=lambda s: s.name)
def test_attempts_n_blocks_at_the_nth_failed_login(lab: Lab, scenario: Scenario) -> None:
    records = lab.collector.snapshot()
    for n in range(1, 6):
        policy = Policy(threshold=n, count_attempts=True)
        blocked_at, _, _ = replay(records, scenario,
                                  BlockerConfig(services={scenario.service: policy}))
        assert blocked_at == n, f"attempts = {n}:\n" + text(records, scenario.address)
    blocked_at, _, _ = replay(records, scenario, BlockerConfig())
    assert blocked_at == 3, "defaults:\n" + text(records, scenario.address)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.success_after],
                         ids=lambda s: s.name)
def test_a_typo_then_the_right_password_never_blocks(lab: Lab, scenario: Scenario) -> None:
    records = lab.collector.snapshot()
    for config in (BlockerConfig(), BlockerConfig(Policy(threshold=2, count_attempts=True))):
        blocked_at, attempts, _ = replay(records, scenario, config)
        assert (blocked_at, attempts) == (None, 1), text(records, scenario.address)
