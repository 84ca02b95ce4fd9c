"""Data of the injection suite (tests/test_injection.py): templates of real
log lines, with a placeholder in every field a remote client (or a local
user) controls, and the payloads that go into them.

Templates follow the formats the daemons write (the rule files' examples,
fail2ban's corpus and the daemons' sources for the field order); none is a
copy of a corpus line. In a message:

* ``{addr}`` is the real client's address as the daemon writes it (the
  template's `addr4`/`addr6` style, e.g. sendmail's ``IPv6:`` prefix),
  ``{ip}`` the same address plain;
* ``{NAME}`` is a field the client controls; its kind says what the daemon
  lets through: TEXT (anything printable: user names, senders, recipients,
  HELO with helo_accept_junk_hosts, pipelined bytes, quoted commands), TOKEN
  (one word: an SMTP command argument such as the AUTH mechanism), HOST (a
  reverse DNS name, which the owner of the client's PTR record chooses but the
  resolver only lets through as letters, digits, dots and hyphens).

The last message of a template is the line under test; earlier ones are fed
first (the binding record of a session: OpenSMTPD's "smtp connected",
Sendmail's envelope record, sshd's "Connection from"). Fields may appear in
any of them, and a field that appears twice (postfix repeats the recipient)
gets the same value in both places.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

# The real client, and the foreign addresses every payload tries to plant.
REAL4 = "192.0.2.77"
REAL6 = "2001:db8:77::77"
FOREIGN4 = "6.6.6.6"
FOREIGN6 = "2001:db8:6666::6"
SERVER4 = "192.0.2.1"  # this server's own address (lip=, I=[...]): never the client either

TEXT, TOKEN, HOST = "text", "token", "host"

# Neutral values: what an ordinary client sends.
NEUTRAL: dict[str, str] = {
    "user": "alice",
    "user2": "bob",
    "auth": "alice",
    "admin": "master",
    "password": "secret",
    "sender": "bob@example.org",
    "rcpt": "carol@example.net",
    "helo": "mail.example.org",
    "name": "client.example.net",
    "mech": "LOGIN",
    "arg": "LOGIN",
    "cmd": "RSET",
    "input": "QUIT\\r\\n",
    "bytes": "EHLO ylmf-pc\\r\\n",
    "msgid": "20261121.1234@example.org",
    "ident": "nobody",
    "ident_version": "GET / HTTP/1.1",
    "path": "/",
    "msg": "Bye Bye",
    "reason": "UGFzc3dvcmQ6",
    "dn": "CN=client.example.net",
    "sni": "mx1.example.org",
    "chost": "ws1.example.org",
    "offer": "aes256-cbc,3des-cbc",
}


@dataclass(frozen=True)
class Template:
    name: str                      # service.what
    program: str                   # the program tag the daemon logs with
    messages: tuple[str, ...]      # context messages first, the line under test last
    fields: dict[str, str]         # client-controlled field -> kind
    signature: str | None          # what the neutral line is (None: no attack)
    pid: int | None = 4242
    addr4: str = "{a}"             # how the daemon writes the real IPv4 / IPv6 address
    addr6: str = "{a}"
    headers: tuple[str, ...] = ("bsd", "pri-nohost", "iso", "rfc5424")
    neutral: dict[str, str] = field(default_factory=dict)  # overrides of NEUTRAL
    has_client: bool = True        # False: the line names no client address at all

    def value(self, name: str) -> str:
        return self.neutral.get(name, NEUTRAL[name])


def header(style: str, program: str, pid: int | None) -> str:
    """The syslog (or Exim main log) header of a line."""
    tag = program if pid is None else f"{program}[{pid}]"
    if style == "bsd":
        return f"Nov 21 10:00:27 mx1 {tag}: "
    if style == "pri-nohost":
        return f"<22>Nov 21 10:00:27 {tag}: "
    if style == "iso":
        return f"2026-11-21T10:00:27.123456+00:00 mx1 {tag}: "
    if style == "rfc5424":
        return f"<22>1 2026-11-21T10:00:27Z mx1 {program} {pid if pid is not None else '-'} - - "
    if style == "exim-main":  # Exim's own main log: the date, [pid], the message
        return "2026-11-21 10:00:27 " + (f"[{pid}] " if pid is not None else "")
    if style == "exim-syslog-ts":  # syslog, with Exim's own timestamp repeated
        return f"Nov 21 10:00:27 mx1 {tag}: 2026-11-21 10:00:27 "
    raise ValueError(style)


def T(name: str, program: str, *messages: str, signature: str | None,
      **kwargs: object) -> Template:
    """A template; fields are found in the messages (kind TEXT unless given)."""
    kinds: dict[str, str] = dict(kwargs.pop("kinds", {}))  # type: ignore[arg-type]
    found = []
    for message in messages:
        for f in re.findall(r"\{(\w+)\}", message):
            if f not in ("addr", "ip") and f not in found:
                found.append(f)
    fields = {f: kinds.get(f, HOST if f == "name" else TEXT) for f in found}
    return Template(name, program, tuple(messages), fields, signature,
                    **kwargs)  # type: ignore[arg-type]


EXIM_HEADERS = ("bsd", "exim-main", "exim-syslog-ts", "rfc5424")
SENDMAIL6 = "IPv6:{a}"

TEMPLATES: dict[str, list[Template]] = {
    "postfix": [
        T("postfix.sasl", "postfix/smtpd",
          "warning: {name}[{addr}]: SASL {mech} authentication failed: {reason}, sasl_username={user}",
          signature="postfix.sasl-auth-failed", kinds={"mech": TOKEN}),
        T("postfix.sasl-port", "postfix/submission/smtpd",
          "warning: {name}[{addr}]:50123: SASL {mech} authentication failed: authentication failure",
          signature="postfix.sasl-auth-failed", kinds={"mech": TOKEN}),
        T("postfix.relay-denied", "postfix/smtpd",
          "NOQUEUE: reject: RCPT from {name}[{addr}]: 554 5.7.1 <{rcpt}>: Relay access denied; "
          "from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<{helo}>",
          signature="postfix.relay-denied"),
        T("postfix.sender-rejected", "postfix/smtpd",
          "NOQUEUE: reject: RCPT from {name}[{addr}]: 450 4.1.8 <{sender}>: Sender address rejected: "
          "Domain not found; from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<{helo}>",
          signature="postfix.sender-rejected"),
        T("postfix.helo-rejected", "postfix/smtpd",
          "NOQUEUE: reject: EHLO from {name}[{addr}]: 504 5.5.2 <{helo}>: Helo command rejected: "
          "need fully-qualified hostname; proto=SMTP helo=<{helo}>",
          signature="postfix.helo-rejected"),
        T("postfix.recipient-unknown", "postfix/smtpd",
          "NOQUEUE: reject: RCPT from {name}[{addr}]:40404: 550 5.1.1 <{rcpt}>: Recipient address "
          "rejected: User unknown in virtual mailbox table; from=<{sender}> to=<{rcpt}> "
          "proto=ESMTP helo=<{helo}>",
          signature="postfix.recipient-unknown"),
        T("postfix.vrfy", "postfix/smtpd",
          "NOQUEUE: reject: VRFY from {name}[{addr}]: 550 5.1.1 <{rcpt}>: Recipient address rejected: "
          "User unknown in local recipient table; to=<{rcpt}> proto=SMTP helo=<{helo}>",
          signature="postfix.vrfy-rejected"),
        T("postfix.rbl", "postfix/smtpd",
          "NOQUEUE: reject: RCPT from {name}[{addr}]: 554 5.7.1 Service unavailable; Client host "
          "[{addr}] blocked using zen.example.org; from=<{sender}> to=<{rcpt}> proto=ESMTP "
          "helo=<{helo}>",
          signature="postfix.rbl-blocked"),
        T("postfix.rbl-helo", "postfix/smtpd",
          "NOQUEUE: reject: RCPT from {name}[{addr}]: 554 5.7.1 Service unavailable; Helo command "
          "[{helo}] blocked using dbl.example.org; from=<{sender}> to=<{rcpt}> proto=ESMTP "
          "helo=<{helo}>",
          signature="postfix.rbl-blocked"),
        T("postfix.milter-reject", "postfix/cleanup",
          "1D8CC1CA0A7F: milter-reject: END-OF-MESSAGE from {name}[{addr}]: 5.7.1 Spam message "
          "rejected; from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<{helo}>",
          signature="postfix.milter-rejected"),
        T("postfix.client-rejected", "postfix/smtpd",
          "NOQUEUE: reject: RCPT from {name}[{addr}]: 450 4.7.1 Client host rejected: cannot find "
          "your hostname, [{addr}]; from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<{helo}>",
          signature="postfix.client-rejected"),
        T("postfix.milter", "postfix/smtpd",
          "4F3A21C0A2F: milter-reject: END-OF-MESSAGE from {name}[{addr}]: 550 5.7.1 Command rejected; "
          "from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<{helo}>",
          signature="postfix.command-rejected"),
        T("postfix.pipelining", "postfix/smtpd",
          "improper command pipelining after EHLO from {name}[{addr}]:51000: {bytes}",
          signature="postfix.improper-pipelining"),
        T("postfix.non-smtp", "postfix/smtpd",
          "warning: non-SMTP command from {name}[{addr}]: {cmd}",
          signature="postfix.non-smtp-command", neutral={"cmd": "GET / HTTP/1.1"}),
        T("postfix.lost-after-auth", "postfix/smtpd",
          "lost connection after AUTH from {name}[{addr}]", signature="postfix.lost-after-auth"),
        T("postfix.disconnect-stats", "postfix/smtpd",
          "disconnect from {name}[{addr}] ehlo=1 auth=0/1 quit=1 commands=2/3",
          signature="postfix.auth-disconnect-stats"),
        T("postfix.hostname-mismatch", "postfix/smtpd",
          "warning: hostname {name} does not resolve to address {ip}: Name or service not known",
          signature="postfix.hostname-mismatch"),
        T("postfix.pregreet", "postfix/postscreen",
          "PREGREET 14 after 0.08 from [{addr}]:59415: {bytes}",
          signature="postfix.postscreen-pregreet"),
        T("postfix.postscreen-rbl", "postfix/postscreen",
          "NOQUEUE: reject: RCPT from [{addr}]:60591: 550 5.7.1 Service unavailable; client [{addr}] "
          "blocked using zen.example.org; from=<{sender}>, to=<{rcpt}>, proto=ESMTP, helo=<{helo}>",
          signature="postfix.postscreen-rbl"),
        T("postfix.sasl-mechanism", "postfix/smtpd",
          "warning: {name}[{addr}]: SASL {mech} authentication failed: Invalid authentication "
          "mechanism",
          signature="postfix.sasl-invalid-mechanism", kinds={"mech": TOKEN}),
        T("postfix.too-many-errors", "postfix/smtpd",
          "too many errors after RCPT from {name}[{addr}]", signature="postfix.too-many-errors"),
        T("postfix.lost-connection", "postfix/smtpd",
          "lost connection after EHLO from {name}[{addr}]", signature="postfix.lost-connection"),
        T("postfix.auth-rate", "postfix/submission/smtpd",
          "warning: AUTH command rate limit exceeded: 11 from {name}[{addr}] for service submission",
          signature="postfix.auth-rate-limit"),
        T("postfix.verbose-command", "postfix/smtpd",
          "< {name}[{addr}]: {cmd}", signature=None, neutral={"cmd": "AUTH LOGIN"}),
        T("postfix.postscreen-pipelining", "postfix/postscreen",
          "COMMAND PIPELINING from [{addr}]:42211 after EHLO: {bytes}", signature=None),
        T("postfix.illegal-address", "postfix/smtpd",
          "warning: Illegal address syntax from {name}[{addr}] in MAIL command: <{sender}>",
          signature=None),
        T("postfix.helo-warning", "postfix/smtpd",
          "NOQUEUE: warn: RCPT from {name}[{addr}]: {helo}; from=<{sender}> to=<{rcpt}> "
          "proto=ESMTP helo=<{helo}>",
          signature=None),
    ],
    "sendmail": [
        T("sendmail.auth", "sm-mta",
          "06I02CNi016764: AUTH failure ({mech}): authentication failure (-13) SASL(-13): "
          "authentication failure: checkpass failed, user={user}, relay={name} [{addr}]",
          signature="sendmail.auth-failure", addr6=SENDMAIL6, kinds={"mech": TOKEN}),
        T("sendmail.auth-forged", "sendmail",
          "06I02CNi016765: AUTH failure (PLAIN): user not found (-20) SASL(-13): user not found: "
          "unable to canonify user and get auxprops, user={user}, relay={name} [{addr}] (may be forged)",
          signature="sendmail.auth-failure", addr6=SENDMAIL6),
        T("sendmail.open-proxy", "sendmail",
          "m2QFKldb022438: {name} [{addr}]: probable open proxy: command={input}",
          signature="sendmail.open-proxy", addr6=SENDMAIL6, neutral={"input": "GET / HTTP/1.0"}),
        T("sendmail.relaying-denied", "sm-mta",
          "s1P819mk027713: ruleset=check_rcpt, arg1=<{rcpt}>, relay={name} [{addr}], "
          "reject=550 5.7.1 <{rcpt}>... Relaying denied. Proper authentication required.",
          signature="sendmail.relaying-denied", addr6=SENDMAIL6),
        T("sendmail.sender-domain", "sm-mta",
          "s1N7vR47006519: ruleset=check_rcpt, arg1=<{rcpt}>, relay=[{addr}], reject=553 5.1.8 "
          "<{rcpt}>... Domain of sender address {sender} does not exist",
          signature="sendmail.check-rcpt-rejected", addr6=SENDMAIL6),
        T("sendmail.user-unknown-rcpt", "sm-mta",
          "s1REn1un088377: ruleset=check_rcpt, arg1=<{rcpt}>, relay={name} [{addr}], "
          "reject=550 5.1.1 <{rcpt}>... User unknown",
          signature="sendmail.check-rcpt-user-unknown", addr6=SENDMAIL6),
        T("sendmail.vrfy", "sm-mta",
          "s1NKIkZa093301: {name} [{addr}]: VRFY {arg} [rejected]",
          signature="sendmail.expn-vrfy-rejected", addr6=SENDMAIL6, neutral={"arg": "root"}),
        T("sendmail.attack", "sm-mta",
          "s1GNXHYB005133: {name} [{addr}]: possible SMTP attack: command=AUTH, count=5",
          signature="sendmail.possible-smtp-attack", addr6=SENDMAIL6),
        T("sendmail.no-mail", "sm-mta",
          "v26LtRA0020949: {name} [{addr}] did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA",
          signature="sendmail.no-mail-transaction", addr6=SENDMAIL6),
        T("sendmail.pregreet", "sm-mta",
          "s1R9r60D044307: rejecting commands from {name} [{addr}] due to pre-greeting traffic "
          "after 0 seconds",
          signature="sendmail.pregreet", addr6=SENDMAIL6),
        T("sendmail.check-relay", "sm-mta",
          "ruleset=check_relay, arg1={name}, arg2={addr}, relay={name} [{addr}], "
          "reject=421 4.3.2 Connection rate limit exceeded.",
          signature="sendmail.check-relay-rejected", addr6=SENDMAIL6),
        T("sendmail.may-be-forged", "sm-mta",
          "rA37ZTSC026254: from=<{sender}>, size=1234, class=0, nrcpts=1, msgid=<{msgid}>, "
          "proto=ESMTP, daemon=MTA, relay={name} [{addr}] (may be forged)",
          signature="sendmail.may-be-forged", addr6=SENDMAIL6),
        T("sendmail.session-user-unknown", "sm-mta",
          "rA37ZTSC026255: from=<{sender}>, size=1234, class=0, nrcpts=1, msgid=<{msgid}>, "
          "proto=ESMTP, daemon=MTA, relay={name} [{addr}]",
          "rA37ZTSC026255: <{rcpt}>... User unknown",
          signature="sendmail.user-unknown", addr6=SENDMAIL6),
        T("sendmail.lost-input", "sm-mta",
          "s1IHYWxQ005589: lost input channel from {name} [{addr}] to MTA after rcpt",
          signature="sendmail.lost-input-channel", addr6=SENDMAIL6),
        T("sendmail.check-mail", "sm-mta",
          "s1N7vR47006520: ruleset=check_mail, arg1=<{sender}>, relay=[{addr}], reject=451 4.1.8 "
          "Domain of sender address {sender} does not resolve",
          signature=None, addr6=SENDMAIL6),
        T("sendmail.delivery", "sm-mta",
          "s1N7vR47006521: to=<{rcpt}>, delay=00:00:01, xdelay=00:00:01, mailer=local, pri=30456, "
          "dsn=5.1.1, stat=User unknown",
          signature=None, has_client=False),
    ],
    "dovecot": [
        T("dovecot.imap-login", "dovecot",
          "imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<{user}>, method=PLAIN, "
          "rip={addr}, lip=192.0.2.1, TLS, session=<YADINsQCDs5BH8Pg>",
          signature="dovecot.auth-failed", pid=None),
        T("dovecot.pop3-login", "pop3-login",
          "Info: Aborted login (auth failed, 3 attempts in 15 secs): user=<{user}>, method={mech}, "
          "rip={addr}, lip=192.0.2.1",
          signature="dovecot.auth-failed", kinds={"mech": TOKEN}, neutral={"mech": "PLAIN"}),
        T("dovecot.disabled-auth", "dovecot",
          "pop3-login: Aborted login (tried to use disallowed plaintext auth): user=<{user}>, "
          "rip={addr}, lip=192.0.2.1, session=<LgDINsQCkttVIMPg>",
          signature="dovecot.disabled-auth"),
        T("dovecot.pam", "dovecot",
          "auth-worker(2211): pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 "
          "tty=dovecot ruser={user} rhost={addr}  user={user}",
          signature="dovecot.pam-auth-failure", pid=None),
        T("dovecot.pam-auth-tag", "auth",
          "pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot "
          "ruser={user} rhost={addr}  user={user}",
          signature="dovecot.pam-auth-failure"),
        T("dovecot.pam-sss", "auth",
          "pam_sss(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser= "
          "rhost={addr} user={user}",
          signature=None),
        T("dovecot.unknown-user", "dovecot",
          "auth-worker(31326): sql({user},{addr},<n4JLdHNVngZGpV2j>): unknown user",
          signature="dovecot.unknown-user"),
        T("dovecot.unknown-user-new", "dovecot",
          "auth({user},{addr},sasl:plain)<J0jfumw8zNasEQAB>: passwd-file: unknown user",
          signature="dovecot.unknown-user"),
        T("dovecot.password-mismatch", "auth",
          "passwd-file({user},{addr}): Password mismatch (SHA1 of given password: f638ff)",
          signature="dovecot.password-mismatch"),
        T("dovecot.checkpassword", "auth",
          "checkpassword({user},{addr},<QwjguGw81qOsEQAC>): Login failed (status=1)",
          signature="dovecot.checkpassword-failed"),
        T("dovecot.oauth2", "auth",
          "oauth2({user},{addr},<QwjguGw81qOsEQAC>): oauth2 failed: Provided token is not valid",
          signature="dovecot.oauth2-failed"),
        T("dovecot.pam-authenticate", "dovecot",
          "auth-worker(304): pam({user},{addr}): pam_authenticate() failed: Authentication failure "
          "(password mismatch?)",
          signature="dovecot.pam-authenticate-failed"),
        T("dovecot.invalid-credentials", "dovecot",
          "auth: ldap({user},{addr},<Abc+/def>): invalid credentials",
          signature="dovecot.invalid-credentials"),
        T("dovecot.no-auth", "dovecot",
          "imap-login: Disconnected (client didn't finish SASL auth, waited 2 secs): user=<{user}>, "
          "method=PLAIN, rip={addr}, lip=192.0.2.1, TLS",
          signature="dovecot.no-auth-attempts"),
        T("dovecot.login-ok", "dovecot",
          "imap-login: Login: user=<{user}>, method=PLAIN, rip={addr}, lip=192.0.2.1, mpid=4243, TLS, "
          "session=<q454Xu/vMwBZApgg>",
          signature=None),
        T("dovecot.plain-password", "dovecot",
          "auth: passwd-file({user},{addr}): Password mismatch (given password: {password})",
          signature=None),
    ],
    "courier": [
        T("courier.imap-login", "imapd",
          "LOGIN FAILED, user={user}, ip=[{addr}]",
          signature="courier.login-failed", pid=None, addr4="::ffff:{a}"),
        T("courier.pop3-method", "pop3d-ssl",
          "LOGIN FAILED, method={mech}, ip=[{addr}], port=[51234]",
          signature="courier.login-failed", addr4="::ffff:{a}", kinds={"mech": TOKEN},
          neutral={"mech": "PLAIN"}),
        T("courier.smtp-auth", "courieresmtpd",
          'error,relay={addr},ident={ident},msg="535 Authentication failed.",cmd: AUTH LOGIN {user}',
          signature="courier.smtp-auth-failed", addr4="::ffff:{a}"),
        T("courier.smtp-relay", "courieresmtpd",
          "error,relay={addr},from=<{sender}>,to=<{rcpt}>: 513 Relaying denied.",
          signature="courier.smtp-relay-denied", addr4="::ffff:{a}", pid=None),
        T("courier.smtp-user-unknown", "courieresmtpd",
          "error,relay={addr},port=40002,ident={ident},from=<{sender}>,to=<{rcpt}>: 550 User unknown.",
          signature="courier.smtp-user-unknown", addr4="::ffff:{a}"),
        T("courier.login-ok", "imapd",
          "LOGIN, user={user}, ip=[{addr}], port=[51000], protocol=IMAP",
          signature=None, addr4="::ffff:{a}", pid=None),
    ],
    "cyrus": [
        T("cyrus.plaintext", "cyrus/imap",
          "badlogin: {name} [{addr}] plaintext {user} SASL(-13): authentication failure: checkpass failed",
          signature="cyrus.auth-failed"),
        T("cyrus.sasl", "imapd",
          "badlogin: {name} [{addr}] {mech} [SASL(-13): authentication failure: client response "
          "doesn't match what we generated]",
          signature="cyrus.auth-failed", kinds={"mech": TOKEN}, neutral={"mech": "DIGEST-MD5"}),
        T("cyrus.pop3-auth", "cyrus/pop3",
          "badlogin: {name} [{addr}] {mech} ({user}) [authentication failure]",
          signature="cyrus.auth-failed", kinds={"mech": TOKEN}, neutral={"mech": "PLAIN"}),
        T("cyrus.old-client", "cyrus/pop3s",
          "badlogin: {name}[{addr}] plaintext {user} SASL(-13): user not found: checkpass failed",
          signature="cyrus.auth-failed"),
        T("cyrus.invalid-user", "cyrus/imap",
          "badlogin: [{addr}] plaintext {user} invalid user",
          signature="cyrus.invalid-user"),
        T("cyrus.login-ok", "cyrus/imap",
          "login: {name} [{addr}] {user} plaintext+TLS User logged in SESSIONID=<mx1-5359-1>",
          signature=None),
    ],
    "uwimap": [
        T("uwimap.login", "imapd",
          "Login failed user={user} auth={auth} host={name} [{addr}]",
          signature="uwimap.login-failed"),
        T("uwimap.excessive", "ipop3d",
          "Login excessive login failures user={user} auth={auth} host=[{addr}]",
          signature="uwimap.login-failed"),
        T("uwimap.authenticate", "imapd",
          "AUTHENTICATE {mech} failure host={name} [{addr}]",
          signature="uwimap.authenticate-failed", kinds={"mech": TOKEN}, neutral={"mech": "PLAIN"}),
        T("uwimap.authentication-failed", "imapd",
          "Authentication failed user={user} host={name} [{addr}]",
          signature="uwimap.authenticate-failed"),
        T("uwimap.override", "imapd",
          "Failed {admin} override of user={user} host={name} [{addr}]",
          signature="uwimap.override-failed"),
        T("uwimap.login-ok", "imapd",
          "Login user={user} host={name} [{addr}]", signature=None),
    ],
    "exim": [
        T("exim.auth", "exim4",
          "dovecot_login authenticator failed for {name} ({helo}) [{addr}]:50123 I=[192.0.2.1]:587: "
          "535 Incorrect authentication data (set_id={user})",
          signature="exim.auth-failed", headers=EXIM_HEADERS),
        T("exim.auth-not-advertised", "exim4",
          'SMTP protocol error in "AUTH {arg}" H=({helo}) [{addr}]:60723 I=[192.0.2.1]:25 '
          "AUTH command used when not advertised",
          signature="exim.auth-not-advertised", headers=EXIM_HEADERS),
        T("exim.mech-unsupported", "exim4",
          'SMTP protocol error in "AUTH {arg}" H={name} ({helo}) [{addr}] {mech} authentication '
          "mechanism not supported",
          signature="exim.auth-mechanism-unsupported", headers=EXIM_HEADERS,
          kinds={"mech": TOKEN}),
        T("exim.relay", "exim4",
          "H=({helo}) [{addr}]:3755 I=[192.0.2.1]:25 F=<{sender}> rejected RCPT <{rcpt}>: "
          "relay not permitted",
          signature="exim.relay-denied", headers=EXIM_HEADERS),
        T("exim.relay-tls", "exim",
          "H={name} ({helo}) [{addr}]:55001 I=[192.0.2.1]:25 X=TLS1.3:TLS_AES_256_GCM_SHA384:256 "
          "CV=no F=<{sender}> rejected RCPT <{rcpt}>: relay not permitted",
          signature="exim.relay-denied", headers=EXIM_HEADERS),
        T("exim.relay-tls-peer", "exim4",
          "H=({helo}) [{addr}]:55002 I=[192.0.2.1]:25 X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no "
          'DN="{dn}" SNI="{sni}" F=<{sender}> rejected RCPT <{rcpt}>: relay not permitted',
          signature="exim.relay-denied", headers=EXIM_HEADERS,
          neutral={"dn": "CN=client.example.net", "sni": "mx1.example.org"}),
        T("exim.no-mail-tls", "exim4",
          "no MAIL in SMTP connection from ({helo}) [{addr}]:28891 I=[192.0.2.1]:25 D=3s "
          'X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no SNI="{sni}" C=EHLO,STARTTLS,EHLO,AUTH,QUIT',
          signature="exim.no-mail", headers=EXIM_HEADERS, neutral={"sni": "mx1.example.org"}),
        T("exim.sender-verify", "exim4",
          "H={name} ({helo}) [{addr}] F=<{sender}> rejected RCPT <{rcpt}>: Sender verify failed",
          signature="exim.sender-verify-failed", headers=EXIM_HEADERS),
        T("exim.sender-verify-reason", "exim4",
          "H=({helo}) [{addr}]:1025 I=[192.0.2.1]:25 sender verify fail for <{sender}>: "
          "Unrouteable address",
          signature="exim.sender-verify-reason", headers=EXIM_HEADERS),
        T("exim.unknown-rcpt", "exim4",
          "H=({helo}) [{addr}] F=<{sender}> rejected RCPT <{rcpt}>: Unknown user",
          signature="exim.unknown-recipient", headers=EXIM_HEADERS),
        T("exim.sync-greeting", "exim4",
          "SMTP protocol synchronization error (input sent without waiting for greeting): rejected "
          'connection from H=[{addr}]:25936 I=[192.0.2.1]:25 input="{input}"',
          signature="exim.sync-before-greeting", headers=EXIM_HEADERS),
        T("exim.sync-pipelining", "exim4",
          "SMTP protocol synchronization error (next input sent too soon: pipelining was not "
          'advertised): rejected "{cmd}" H=({helo}) [{addr}]:58302 I=[192.0.2.1]:25 '
          'next input="{input}"',
          signature="exim.sync-pipelining", headers=EXIM_HEADERS),
        T("exim.too-many", "exim4",
          "SMTP call from ({helo}) [{addr}]:3767 I=[192.0.2.1]:25 dropped: too many unrecognized "
          'commands (last was "{cmd}")',
          signature="exim.too-many-errors", headers=EXIM_HEADERS),
        T("exim.drop", "exim4",
          "SMTP connection from {name} ({helo}) [{addr}]:44884 I=[192.0.2.1]:25 closed by DROP in ACL",
          signature="exim.dropped-by-acl", headers=EXIM_HEADERS),
        T("exim.no-mail", "exim4",
          "no MAIL in SMTP connection from {name} ({helo}) [{addr}]:28890 I=[192.0.2.1]:25 D=21s "
          "C=EHLO,AUTH,QUIT",
          signature="exim.no-mail", headers=EXIM_HEADERS),
        T("exim.local-scan", "exim4",
          "1Ai79e-0000Dq-8i F={sender} H=({helo}) [{addr}] P=esmtp rejected by local_scan(): "
          "Rejected: hits=7.5 required=5.0 trigger=5.0",
          signature="exim.local-scan-rejected", headers=EXIM_HEADERS),
        T("exim.spam", "exim4",
          "1Unmew-0000ea-SE H=({helo}) [{addr}]:32706 I=[192.0.2.1]:25 F=<{sender}> rejected after "
          "DATA: This message contains a virus (Eicar-Test-Signature).",
          signature="exim.spam-rejected", headers=EXIM_HEADERS),
        T("exim.dnsbl", "exim4",
          "H=({helo}) [{addr}] F=<{sender}> rejected RCPT <{rcpt}>: rejected because {ip} is in a "
          "black list at dnsbl.example.org",
          signature="exim.dnsbl-rejected", headers=EXIM_HEADERS),
        T("exim.connect-acl", "exim4",
          "H={name} [{addr}]:18146 U={ident} temporarily rejected connection in \"connect\" ACL: "
          "\"Host is ratelimited\"",
          signature="exim.connect-rejected", headers=EXIM_HEADERS, kinds={"ident": TOKEN}),
        T("exim.sa-tossed", "exim4",
          "1VxHRO-000NiI-Ly SA: Action: silently tossed message: score=31.0 required=5.0 "
          "trigger=30.0 (scanned in 6/6 secs | Message-Id: {msgid}). From <{sender}> "
          "(host={name} [{addr}]) for {rcpt}",
          signature="exim.spamassassin-tossed", headers=EXIM_HEADERS),
        T("exim.sa-flagged", "exim4",
          "1VxPit-000MMd-U4 SA: Action: flagged as Spam but accepted: score=8.2 required=5.0 "
          "(scanned in 6/6 secs | Message-Id: {msgid}). From <{sender}> (host={name} [{addr}]) "
          "for {rcpt}",
          signature="exim.spamassassin-flagged", headers=EXIM_HEADERS),
        T("exim.forward-dns", "exim4",
          "no IP address found for host {name} (during SMTP connection from [{addr}])",
          signature="exim.forward-dns-mismatch", headers=EXIM_HEADERS),
        T("exim.accepted", "exim4",
          "1abcDE-000123-XY <= {sender} H={name} ({helo}) [{addr}]:51234 I=[192.0.2.1]:587 "
          "P=esmtpsa A=dovecot_plain:{user} S=1234",
          signature=None, headers=EXIM_HEADERS),
        T("exim.bounce", "exim4",
          "1abcDE-000124-XY ** {rcpt} R=localuser: Unrouteable address",
          signature=None, headers=EXIM_HEADERS, has_client=False),
    ],
    "opensmtpd": [
        T("opensmtpd.auth", "smtpd",
          "1a2b3c4d5e6f7a8b smtp connected address={addr} host={name}",
          '1a2b3c4d5e6f7a8b smtp failed-command command="AUTH {arg}" result="535 Authentication failed"',
          signature="opensmtpd.auth-failed", addr6="[{a}]", neutral={"arg": "LOGIN (password)"}),
        T("opensmtpd.auth-not-offered", "smtpd",
          "c1a89cb774083905 smtp connected address={addr} host={name}",
          'c1a89cb774083905 smtp failed-command command="AUTH {arg}" '
          'result="503 5.5.1 Invalid command: Command not supported"',
          signature="opensmtpd.auth-not-offered", addr6="IPv6:{a}"),
        T("opensmtpd.http", "smtpd",
          "6e6e6e6e6e6e6e6e smtp connected address={addr} host={name}",
          '6e6e6e6e6e6e6e6e smtp failed-command command="GET {path} HTTP/1.1" '
          'result="500 5.5.1 Invalid command: Command unrecognized"',
          signature="opensmtpd.non-smtp-command", addr6="[{a}]"),
        T("opensmtpd.out-of-order", "smtpd",
          "3e3e3e3e3e3e3e3e smtp connected address={addr} host={name}",
          '3e3e3e3e3e3e3e3e smtp failed-command command="MAIL FROM:<{sender}>" '
          'result="503 5.5.1 Invalid command: Command not allowed at this point."',
          signature="opensmtpd.command-out-of-order", addr6="[{a}]"),
        T("opensmtpd.invalid-rcpt", "smtpd",
          "2cd79d8bacbe2c12 smtp connected address={addr} host={name}",
          '2cd79d8bacbe2c12 smtp failed-command command="RCPT TO:<{rcpt}>" '
          'result="550 Invalid recipient: <{rcpt}>"',
          signature="opensmtpd.invalid-recipient", addr6="[{a}]"),
        T("opensmtpd.unknown-command", "smtpd",
          "6b6b6b6b6b6b6b6b smtp connected address={addr} host={name}",
          '6b6b6b6b6b6b6b6b smtp failed-command command="{cmd}" '
          'result="500 5.5.1 Invalid command: Command unrecognized"',
          signature="opensmtpd.unknown-command", addr6="[{a}]", neutral={"cmd": "VRFY root"}),
        T("opensmtpd.permfail", "smtpd",
          "0a0b0c0d0e0f1011 smtp connected address={addr} host={name}",
          "0a0b0c0d0e0f1011 smtp authentication user={user} result=permfail",
          signature="opensmtpd.auth-permfail", addr6="[{a}]"),
        T("opensmtpd.old", "smtpd",
          "smtp-in: New session 08d856b172f69c5c from host {name} [{addr}]",
          'smtp-in: Failed command on session 08d856b172f69c5c: "AUTH {arg}" => 535 Authentication '
          "failed",
          signature="opensmtpd.old-auth-failed", addr6="IPv6:{a}"),
        T("opensmtpd.helo", "smtpd",
          "4d4d4d4d4d4d4d4d smtp connected address={addr} host={name}",
          '4d4d4d4d4d4d4d4d smtp failed-command command="HELO {helo}" '
          'result="501 5.5.4 Invalid command arguments: Invalid domain name"',
          signature=None, addr6="[{a}]"),
    ],
    "sshd": [
        T("sshd.invalid-user", "sshd",
          "Invalid user {user} from {addr} port 50000", signature="sshd.invalid-user"),
        T("sshd.failed-password-invalid", "sshd",
          "Failed password for invalid user {user} from {addr} port 50000 ssh2",
          signature="sshd.failed-auth"),
        T("sshd.failed-password", "sshd-session",
          "Failed password for {user} from {addr} port 50000 ssh2", signature="sshd.failed-auth"),
        T("sshd.failed-kbd", "sshd",
          "Failed keyboard-interactive/pam for invalid user {user} from {addr} port 33723 ssh2",
          signature="sshd.failed-auth"),
        T("sshd.failed-publickey-invalid", "sshd",
          "Failed publickey for invalid user {user} from {addr} port 37954 ssh2: RSA "
          "SHA256:v3dpapGleDaUKf4V1vKyR9ZyUgjaJAmoCTcb2PLljIo",
          signature="sshd.failed-publickey-invalid-user"),
        T("sshd.hostbased", "sshd",
          "Failed hostbased for root from {addr} port 45785 ssh2: RSA "
          'SHA256:v3dpapGleDaUKf4V1vKyR9ZyUgjaJAmoCTcb2PLljIo, client user "{user}", client host '
          '"{chost}"',
          signature="sshd.failed-auth-known-user", neutral={"chost": "ws1.example.org"}),
        T("sshd.ssh1-ruser", "sshd",
          "Failed password for root from {addr} port 20000 ssh1: ruser {user}",
          signature="sshd.failed-auth-known-user"),
        T("sshd.pam-error", "sshd",
          "error: PAM: Authentication failure for illegal user {user} from {addr}",
          signature="sshd.pam-auth-error"),
        T("sshd.max-attempts", "sshd",
          "error: maximum authentication attempts exceeded for invalid user {user} from {addr} "
          "port 49940 ssh2 [preauth]",
          signature="sshd.max-auth-attempts"),
        T("sshd.not-allowed", "sshd",
          "User {user} from {addr} not allowed because not listed in AllowUsers",
          signature="sshd.not-allowed"),
        T("sshd.change-of-username", "sshd",
          "Disconnecting invalid user {user} {addr} port 44004: Change of username or service not "
          "allowed: ({user},ssh-connection) -> ({user2},ssh-connection) [preauth]",
          signature="sshd.change-of-username"),
        T("sshd.bad-version", "sshd",
          "Bad protocol version identification '{ident_version}' from {addr} port 31778",
          signature="sshd.bad-protocol-version"),
        T("sshd.auth-fail-disconnect", "sshd",
          "Received disconnect from {addr} port 7736:3: {msg}: Auth fail [preauth]",
          signature="sshd.disconnect-auth-fail",
          neutral={"msg": "com.jcraft.jsch.JSchException"}),
        T("sshd.bye", "sshd",
          "Received disconnect from {addr} port 58846:11: {msg} [preauth]",
          signature="sshd.disconnect-preauth"),
        T("sshd.refused-connect", "sshd",
          "refused connect from {ident}@{name} ({addr})", signature="sshd.refused-connect",
          kinds={"ident": TOKEN}),
        T("sshd.preauth-invalid-user", "sshd",
          "Connection closed by invalid user {user} {addr} port 46038 [preauth]",
          signature="sshd.preauth-invalid-user-disconnect"),
        T("sshd.preauth-user", "sshd",
          "Disconnected from authenticating user {user} {addr} port 46038 [preauth]",
          signature="sshd.preauth-user-disconnect"),
        T("sshd.protocol-garbage", "sshd",
          "ssh_dispatch_run_fatal: Connection from invalid user {user} {addr} port 48680: "
          "message authentication code incorrect [preauth]",
          signature="sshd.protocol-garbage"),
        T("sshd.not-allowed-other-reason", "sshd",
          "User {user} from {addr} not allowed because not in any group",
          signature="sshd.not-allowed"),
        T("sshd.failed-gssapi", "sshd",
          "Failed gssapi-with-mic for {user} from {addr} port 42746 ssh2: alice@EXAMPLE.ORG",
          signature="sshd.failed-auth"),
        T("sshd.failed-method", "sshd",
          "Failed {mech} for invalid user {user} from {addr} port 42746 ssh2",
          signature="sshd.failed-auth", neutral={"mech": "xyz"}),
        # the address comes after the failure: the close of the same process reports it
        T("sshd.too-many-late", "sshd",
          "Disconnecting: Too many authentication failures for {user} [preauth]",
          "Connection closed by authenticating user {user2} {addr} port 51353 [preauth]",
          signature="sshd.too-many-auth-failures"),
        T("sshd.pam-unix", "sshd",
          "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
          "rhost={addr}  user={user}",
          signature="sshd.pam-unix-auth-failure"),
        T("sshd.pam-more", "sshd",
          "PAM 4 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={addr}  "
          "user={user}",
          signature="sshd.pam-more-failures"),
        T("sshd.too-many-failures", "sshd",
          "Connection from {addr} port 51353 on 192.0.2.1 port 22",
          "Disconnecting: Too many authentication failures for invalid user {user} [preauth]",
          signature="sshd.too-many-auth-failures"),
        T("sshd.publickey-binding", "sshd",
          "Failed publickey for {user} from {addr} port 57910 ssh2: RSA SHA256:AbCdEf0123456789",
          "Disconnecting: Too many authentication failures [preauth]",
          signature="sshd.too-many-auth-failures"),
        T("sshd.rebinding", "sshd",
          "Connection from {addr} port 51354",
          "Failed publickey for {user} from {addr} port 51354 ssh2",
          "Disconnecting: Too many authentication failures for {user2} [preauth]",
          signature="sshd.too-many-auth-failures"),
        T("sshd.kex", "sshd",
          "Connection from {addr} port 62004 on 192.0.2.1 port 22",
          'error: kex_exchange_identification: client sent invalid protocol identifier "{ident_version}"',
          signature="sshd.kex-scanner"),
        T("sshd.negotiation", "sshd",
          "Unable to negotiate with {addr} port 55419: no matching cipher found. Their offer: "
          "{offer} [preauth]",
          signature="sshd.negotiation-failed"),
        T("sshd.negotiation-session", "sshd",
          "Connection from {addr} port 39678 on 192.0.2.1 port 22",
          "fatal: no matching cipher found: client {offer} server aes128-ctr,aes256-ctr [preauth]",
          signature="sshd.negotiation-failed-session"),
        T("sshd.no-auth-methods", "sshd",
          "Received disconnect from {addr} port 1684:14: No supported authentication methods "
          "available{msg} [preauth]",
          signature="sshd.disconnect-no-auth-methods", neutral={"msg": " (publickey)"}),
        T("sshd.accepted", "sshd",
          "Accepted password for {user} from {addr} port 52100 ssh2", signature=None),
        T("sshd.userauth-request", "sshd",
          "input_userauth_request: invalid user {user} [preauth]", signature=None,
          has_client=False),
    ],
}

# ---------------------------------------------------------------- payloads


@dataclass(frozen=True)
class Payload:
    name: str
    text: str
    pad: int = 0             # this many filler characters ...
    pad_to: int = 0          # ... or as many as make the line this many bytes long
    pad_side: str = "before"  # where the filler goes, around `text`
    filler: str = "x"
    every_field: bool = True  # also tried in all fields of a template at once

    def render(self, line_without: Callable[[str], bytes]) -> str:
        """The payload as it goes into a line; `line_without(text)` gives the
        line with `text` in the field (to measure it for pad_to)."""
        n = self.pad
        if self.pad_to:
            n = max(0, self.pad_to - len(line_without(self.text)))
        filler = (self.filler * (n // len(self.filler) + 1))[:n]
        return filler + self.text if self.pad_side == "before" else self.text + filler


SPELLINGS4 = ("6.6.6.6", "::FFFF:6.6.6.6", "6.6.6.6%eth0", "0:0:0:0:0:ffff:606:606")
SPELLINGS6 = ("2001:db8:6666::6", "2001:DB8:6666:0:0:0:0:6%eth0")

# Daemon-written structures around an address, {a} the address.
FRAMES = (
    "{a}", "[{a}]", "unknown[{a}]", "unknown[{a}]:25", "x [{a}]", "[IPv6:{a}]",
    "rip={a}, lip={a}", "rip={a}, lip=", " from {a} port 22", "from {a} port 22 ssh2",
    " from {a} port 22 ssh2 [preauth]", "relay=[{a}]", ", relay=x [{a}]",
    ", relay=[{a}], reject=550 5.7.1 <x>... Relaying denied", ") [{a}]:25", "H=(x) [{a}]",
    "address={a} host=", "ip=[{a}]", ", ip=[{a}]", "rhost={a}", "host=[{a}]", "host=x [{a}]",
    ",{a}): unknown user", "({a})", "{a}-22;", "client [{a}] blocked using",
    "error,relay={a},", "Client host [{a}]", "arg2={a}, relay=[{a}]", "{a}: possible SMTP attack",
    "from [{a}]:1: ", "connected address={a} host=x", " (host=x [{a}]) for y",
)

# Daemon tails appended to a fake address, so that a fake can end like the real line.
TAILS = (
    ": SASL LOGIN authentication failed: x", " port 22 ssh2", " [preauth]", " port 22",
    "]: 535 Incorrect authentication data", ", lip=192.0.2.1, TLS",
    " (may be forged)", "): unknown user", "]:25 I=[192.0.2.1]:25 closed by DROP in ACL",
    "], port=[1]", " did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA",
)

# What a client types to leave its field: each closer, then a fake.
CLOSERS = (">", '"', ")", "]", ">,", "',", '\\"', ">: ", ")) ", "'", ">, ", ", ", " ")
CLOSER_CORES = ("unknown[6.6.6.6]", " rip=6.6.6.6, lip=6.6.6.6", " from 6.6.6.6 port 22 ssh2",
                " relay=[6.6.6.6]", " H=(x) [6.6.6.6]", " [6.6.6.6]:25",
                " ip=[2001:db8:6666::6]")

LOOKALIKES = (
    ("fullwidth", "６.６.６.６"), ("arabic-indic", "٦.٦.٦.٦"), ("ext-arabic", "۶.۶.۶.۶"),
    ("devanagari", "६.६.६.६"), ("math-bold", "𝟔.𝟔.𝟔.𝟔"), ("fullwidth-dot", "6．6．6．6"),
    ("ideographic-dot", "6。6。6。6"), ("one-dot-leader", "6․6․6․6"), ("mixed", "6.6.6.６"),
    ("superscript", "⁶.⁶.⁶.⁶"), ("fullwidth-v6", "２００１:db8:6666::6"),
    ("fullwidth-colon", "2001：db8：6666：：6"), ("zero-width", "6.6\u200b.6.6"),
    ("rtl", "\u202e6.6.6.6"), ("combining", "6\u0336.6.6.6"),
)
LOOKALIKE_FRAMES = ("[{a}]", " from {a} port 22", "rip={a}, lip=", "relay=[{a}]",
                    ",{a}): unknown user", " from 6.6.6.6 port {port}")

# Whitespace and control characters: (name, text, must the record be rejected?)
# Only complete records ever reach the parser (a datagram, an octet-counted
# frame): one with a line break inside is refused whole, never split.
CONTROL = (
    ("lf-fake-record", "x\nNov 21 10:00:27 mx1 sshd[1]: Invalid user x from 6.6.6.6 port 22", True),
    ("lf-fake-postfix", "x\n<22>Nov 21 10:00:27 postfix/smtpd[1]: warning: unknown[6.6.6.6]: "
                        "SASL LOGIN authentication failed: x", True),
    ("lf", "\n", True), ("cr-fake", "x\rfrom 6.6.6.6 port 22", True),
    ("crlf-fake", "x\r\nrip=6.6.6.6, lip=1.1.1.1", True),
    ("nul", "x\x00 from 6.6.6.6 port 22", True), ("nul-only", "\x00", True),
    ("esc", "\x1b[2K[6.6.6.6]", True), ("del", "\x7f[6.6.6.6]", True),
    ("vt", "\x0b from 6.6.6.6 port 22", True), ("ff", "\x0crip=6.6.6.6,", True),
    ("bell", "\x07unknown[6.6.6.6]", True), ("backspace", "\x08\x08\x08[6.6.6.6]", True),
    ("invalid-utf8", "\udcff[6.6.6.6]", True), ("overlong-dot", "6\udcc0\udcae6.6.6", True),
    ("lone-continuation", "\udc80 from 6.6.6.6 port 22", True),
    ("tab", "\tfrom 6.6.6.6 port 22", False), ("tab-frame", "x\t[6.6.6.6]\t", False),
    ("nbsp", " from\u00a06.6.6.6\u00a0port 22", False),
    ("nel", "\u0085 from 6.6.6.6 port 22", False), ("ls", "\u2028rip=6.6.6.6, lip=x", False),
    ("ps", "\u2029unknown[6.6.6.6]", False),
    ("escaped-lf", "#012Nov 21 10:00:27 mx1 sshd[1]: Invalid user x from 6.6.6.6 port 22", False),
    ("backslash-n", "\\r\\nwarning: unknown[6.6.6.6]: SASL LOGIN authentication failed", False),
    ("caret-m", "^M from 6.6.6.6 port 22", False),
)

PAD_CORES = (" from 6.6.6.6 port 22 ssh2", "x [6.6.6.6]", ", relay=[6.6.6.6]",
             "rip=6.6.6.6, lip=6.6.6.6", " ip=[::ffff:6.6.6.6]")


def payloads(fakes: tuple[tuple[str, str], ...] = ()) -> list[Payload]:
    """The battery for TEXT fields; `fakes` are whole fake records (name, text)."""
    out: list[Payload] = [Payload("neutral-x", "x"), Payload("empty", "")]
    for frame in FRAMES:
        for spelling in SPELLINGS4 + SPELLINGS6:
            out.append(Payload(f"frame {frame!r} {spelling}", frame.format(a=spelling),
                               every_field=spelling in (FOREIGN4, FOREIGN6)))
    for tail in TAILS:
        for spelling in ("6.6.6.6", "2001:db8:6666::6"):
            out.append(Payload(f"tail {tail!r} {spelling}", f"x [{spelling}" + tail
                               if tail.startswith("]") else f"x from {spelling}{tail}"))
            out.append(Payload(f"tail2 {tail!r} {spelling}", f"unknown[{spelling}]{tail}"))
    for closer in CLOSERS:
        for core in CLOSER_CORES:
            out.append(Payload(f"closer {closer!r} {core!r}", f"x{closer}{core}"))
    for name, text in LOOKALIKES:
        for frame in LOOKALIKE_FRAMES:
            port = text if "{port}" in frame else "22"
            out.append(Payload(f"lookalike {name} {frame!r}", frame.format(a=text, port=port),
                               every_field=False))
    for name, text, _ in CONTROL:
        out.append(Payload(f"control {name}", text, every_field=False))
    for core in PAD_CORES:
        for count in (200, 256, 600, 1000, 2000):
            for side, filler in (("before", "x"), ("after", " ")):
                out.append(Payload(f"pad {count} {side} {core!r}", core, pad=count,
                                   pad_side=side, filler=filler, every_field=False))
        for target in (8191, 8192, 8193):
            for side in ("before", "after"):
                out.append(Payload(f"pad-to {target} {side} {core!r}", core, pad_to=target,
                                   pad_side=side, filler="a ", every_field=False))
    for name, text in fakes:
        out.append(Payload(f"fake {name}", text, every_field="header" not in name))
    return out


# Reverse DNS names (HOST fields): what a resolver lets through.
HOST_PAYLOADS = [Payload(f"host {h}", h) for h in (
    "6.6.6.6", "unknown", "6-6-6-6.dsl.example.net", "x.6.6.6.6", "6.6.6.6.in-addr.arpa",
    "ffff.6.6.6.6", "2001.db8.6666..6", "rip.6.6.6.6", "host-6.6.6.6", "a" * 255,
    ("a" * 63 + ".") * 3 + "6.6.6.6", "localhost", "192.0.2.1", "IPv6.2001.db8",
)]


def fits(kind: str, text: str) -> bool:
    """Whether the daemon would log `text` in a field of this kind."""
    if kind == TOKEN:
        return not any(c.isspace() for c in text) and text != ""
    return True


# Fragments for the seeded random combinations: delimiters, field names and
# tails of every daemon, and fake addresses.
FRAGMENTS = (
    '"', "<", ">", "(", ")", "[", "]", ",", " ", ": ", ", ", "=", "x", "'", "\\",
    "6.6.6.6", "[6.6.6.6]", "::ffff:6.6.6.6", "2001:db8:6666::6", "[IPv6:2001:db8:6666::6]",
    "unknown[6.6.6.6]", "unknown[6.6.6.6]:25", " from 6.6.6.6", " port 22", " ssh2", " [preauth]",
    "rip=6.6.6.6", ", lip=", "lip=", "relay=", ", relay=", "relay=[6.6.6.6]",
    " reject=550 5.7.1 ", "... Relaying denied", "... User unknown", "H=", " DN=\"", " SNI=\"",
    " F=<", " F=", " A=", " U=", " X=", " CV=no", " rejected RCPT ", ": relay not permitted",
    ": Unknown user", ": Sender verify failed", " I=[6.6.6.6]:25", "host=", "host=x [6.6.6.6]",
    "ip=[6.6.6.6]", ", ip=[", "rhost=6.6.6.6", " user=", "  user=", " ruser=",
    "address=6.6.6.6 host=", ": SASL LOGIN authentication failed", ": SASL ",
    ": 535 Incorrect authentication data", " (may be forged)",
    " did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA", ",6.6.6.6): unknown user",
    ",6.6.6.6,<s>): ", "): Password mismatch", " invalid user", "Invalid user ", " for ",
    " authentication failure", " SASL(-13): authentication failure", " plaintext ",
    " (auth failed, 1 attempts)", ": user=<", ">, method=PLAIN, ", "LOGIN FAILED, ",
    " Login failed user=", " host=[6.6.6.6]", " AUTH command used when not advertised",
    " authentication mechanism not supported", ") [6.6.6.6]:1", " (set_id=", "535 ",
    "\" result=\"535 ", " smtp connected address=6.6.6.6 host=", " 1a2b3c4d5e6f7a8b ",
    " next input=\"", " input=\"", " closed by DROP in ACL", " D=1s", " C=EHLO",
    " dropped: too many nonmail commands (last was \"",
    " not allowed because not listed in AllowUsers",
    ": Change of username or service not allowed: (", ",ssh-connection) -> (", " Auth fail",
    " 3: ", " 11: ", " (6.6.6.6)", "@", "%eth0", " (host=", ") for ", ". From <",
    " P=esmtp rejected by local_scan(): ", " rejected after DATA: spam",
)


# Pairs of fields: the first ends in a fake address and opens a field that
# the pattern allows further on (Exim's DN="...", a <sender>, a quoted
# command); the second field closes it (or the daemon's own delimiter does)
# and reopens the field the daemon writes around it, so that the field opened
# by the client swallows the real address in between. The fake either stops
# after its address or replays the daemon's own text that follows the real one.
OPENERS = ('DN="', 'SNI="', 'F=<', "A=<", 'input="', 'next input="', '(last was "', "(set_id=",
           "msgid=<", "(given password: ", '"', "<", "(", "[")
_CLOSING = {'"': '"', "<": ">", "(": ")", "[": "]", "=": ")", " ": ")"}


def _segment(message: str, start: int, stop: str) -> str:
    end = message.find(stop, start)
    return message[start:end] if end >= 0 else ""


def pair_values(template: Template) -> Iterator[tuple[str, dict[str, str]]]:
    """(name, values) of coordinated two-field payloads, for every pair of fields
    where the first comes before the real address."""
    for message in template.messages:
        at = message.find("{addr}")
        if at < 0:
            continue
        names = [m for m in re.finditer(r"\{(\w+)\}", message)
                 if m.group(1) in template.fields and template.fields[m.group(1)] != HOST]
        rest = message[at + len("{addr}"):]
        for i, first in enumerate(names):
            if first.start() > at:
                continue
            between = _segment(message, first.end(), "{addr}")
            for second in names[i + 1:]:
                if second.group(1) == first.group(1):
                    continue
                words = message[:second.start()].split(" ")
                replayed = message[at + len("{addr}"):second.start()].rsplit(" ", 1)[0]
                for tail_name, tail in (("short", rest.split(" ", 1)[0]), ("replay", replayed)):
                    if "{" in tail:
                        continue
                    for opener in OPENERS:
                        closing = _CLOSING[opener[-1]]
                        for n in (1, 3):
                            prefix = " ".join(words[-n:])
                            # closed in the second field, or by the daemon's own
                            # delimiter that opens it
                            for close in (closing, ""):
                                values = {
                                    first.group(1): f"x{between}{FOREIGN4}{tail} {opener}",
                                    second.group(1): f"{close} {prefix}b",
                                }
                                yield (f"pair {first.group(1)}/{second.group(1)} {tail_name} "
                                       f"{opener} {n}{'' if close else ' open'}", values)


def fuzz_values(template: Template, count: int) -> Iterator[dict[str, str]]:
    """`count` seeded random fillings of all the template's fields at once."""
    rng = random.Random(zlib.crc32(template.name.encode()))
    for _ in range(count):
        values = {}
        for name, kind in template.fields.items():
            if kind == HOST:
                values[name] = rng.choice(HOST_PAYLOADS).text
                continue
            text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 6)))
            if kind == TOKEN:
                text = "".join(text.split()) or "x"
            values[name] = text
        yield values
