"""Deliberate differences from fail2ban: corpus lines left out of the score.

Each entry names a filter, a regular expression searched in the corpus line,
the runs it applies to, and a one-line reason. An excluded line is still fed
to syslogban and listed in the report ("excluded: reason"); it only does not
count as found, missed or false positive.

Keep this table short and honest: it is for what syslogban decides not to
do, never for a signature nobody has written yet. Two kinds of line are left
out without an entry here, because they follow from syslogban's design (see
score.not_applicable): an annotated address that is a hostname (syslogban
never resolves names) or not a literal address in normal form.

An entry whose reason starts with OFF_BY_DEFAULT claims that `--enable all`
finds the line; the report checks that claim (score.Report.false_claims).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

BOTH_RUNS = frozenset({"default", "all"})


@dataclass(frozen=True, slots=True)
class Difference:
    filter: str
    pattern: str          # regular expression, searched in the corpus line
    reason: str           # one line: why syslogban deliberately differs
    runs: frozenset[str] = BOTH_RUNS
    attack: bool | None = None  # only lines annotated as attacks (True) or not (False)
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(self.pattern))

    def applies(self, filter_name: str, run: str, text: str, attack: bool) -> bool:
        return (filter_name == self.filter and run in self.runs
                and self.attack in (None, attack) and bool(self.regex.search(text)))


DEFAULT = frozenset({"default"})
ALL = frozenset({"all"})
OFF_BY_DEFAULT = "off by default, found with --enable all: "

DIFFERENCES: tuple[Difference, ...] = (
    # Signatures their authors keep off by default, for the reason quoted from the rule file.
    Difference("postfix", r"reject: RCPT from .*: Recipient address rejected: "
               r"(?:User unknown|undeliverable address)",
               OFF_BY_DEFAULT + "postfix.recipient-unknown (a legitimate sender's typo "
               "looks the same)", DEFAULT, attack=True),
    Difference("sendmail-reject", r"reject=550 5\.1\.1 .*\.\.\. User unknown$",
               OFF_BY_DEFAULT + "sendmail.check-rcpt-user-unknown (a legitimate sender's "
               "typo looks the same)", DEFAULT, attack=True),
    # The envelope record names the client after its queue id's "User unknown"
    # (held until then, correlation.py), and reports it.
    Difference("sendmail-reject", r": from=<[^>]*>, size=\d+, class=\d+, nrcpts=0, ",
               OFF_BY_DEFAULT + "sendmail.user-unknown (a legitimate sender's typo looks "
               "the same)", DEFAULT, attack=True),
    Difference("exim-spam", r".",
               OFF_BY_DEFAULT + "exim's spam and virus signatures (spam is not an attack "
               "on the server)", DEFAULT, attack=True),
    Difference("sshd", r"pam_unix\(sshd:auth\): authentication failure",
               OFF_BY_DEFAULT + "sshd.pam-unix-auth-failure (sshd logs the same attempt "
               "as \"Failed password\")", DEFAULT, attack=True),
    Difference("sshd", r"Received disconnect from \S+(?: port \d+)?: ?(?:11|3): ",
               OFF_BY_DEFAULT + "sshd.disconnect-preauth, sshd.disconnect-auth-fail (the "
               "disconnect reason is the client's text; the failed logins are counted on "
               "sshd's own records)", DEFAULT, attack=True),
    # fail2ban's multi-line accounting, which syslogban does not copy.
    Difference("sshd", r"pam_unix\(sshd:auth\): authentication failure",
               "fail2ban holds a lone pam_unix failure until the session's next record; "
               "syslogban counts it where it is logged", ALL, attack=False),
    Difference("sshd", r"Accepted password for ",
               "fail2ban reports held pam_unix failures on the session's successful login; "
               "syslogban never counts a successful login as an attack", attack=True),
    # Where the address is: syslogban takes the field the daemon wrote.
    Difference("sshd", r"Failed password for invalid user .* ssh2: .*from \S+ port \d+ ssh2$",
               "sshd writes nothing after 'ssh2' for a password failure, so the text there is "
               "the client's user name and the last address is the client's; fail2ban's "
               "first address lets a user name choose whom to block", attack=True),
)
