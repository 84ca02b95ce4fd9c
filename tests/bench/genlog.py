"""Generate a realistic, deterministic mail-server syslog for benchmarks and demos.

syslogban has to be measured on input that looks like a real /var/log/mail.log:
mostly benign Postfix, Dovecot and Sendmail traffic, interleaved across
concurrent sessions, with a minority of attack lines (SASL brute force, relay
probes, postscreen pregreeters, Dovecot login failures, Sendmail AUTH abuse)
coming from a skewed pool of attackers: a few very active ones, many light.
Real logs cannot be shipped or shared, so this module synthesises one.

Lines are classic RFC 3164 lines as rsyslog writes them, e.g.
``Nov 21 10:00:27 mx1 postfix/smtpd[12345]: connect from ...``.
The same arguments always give byte-identical output; only ``random.Random``
seeded with ``seed`` is used, never the clock or hash order.

Addresses come from documentation ranges (192.0.2.0/24, 198.51.100.0/24,
2001:db8::/32), the benchmarking range 198.18.0.0/15 and public-looking
ranges. The six opening attack campaigns, the busiest attackers of a short
file, always use documentation ranges.

Usage::

    python tests/bench/genlog.py --lines 1000000 [--seed 1] \\
        [--attack-ratio 0.07] [--start 2026-11-20T00:00:00] OUTFILE

``generate_labeled`` also tells, for every line, which attacker (canonical
address, IPv4-mapped IPv6 unmapped) it reports a failure for: ground truth
for checking a blocker's verdicts.
"""

import argparse
import base64
import ipaddress
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple, TypeVar

DEFAULT_SEED = 1
DEFAULT_ATTACK_RATIO = 0.07
DEFAULT_START = datetime(2026, 11, 20)

HOST = "mx1"
FQDN = "mx1.example.com"
LIP4 = "203.0.113.25"
LIP6 = "2001:db8:25::25"
LINES_PER_SECOND = 35  # mean rate; each gap is uniform in [0, 2/rate)
ODD_RATIO = 0.0001  # UTF-8 user names and ~600-character reject lines
CONCURRENT_SESSIONS = 8  # benign sessions whose lines interleave
HOME_FAMILY_SHARE = 0.85  # an attacker's episodes on its favourite service

# Who attacks: a few concurrent campaigns (one busy attacker each, replaced
# when its budget of episodes runs out) make 75 % of the attack episodes; the
# rest is background noise spread over the whole pool, so most attackers stay
# light. The opening campaigns come from documentation ranges, so even a
# 1500-line file shows a handful of clear repeat offenders.
ATTACKER_POOL = 4000
CAMPAIGN_SHARE = 0.75
CAMPAIGN_WEIGHTS = (6, 4, 3, 3, 2, 2)  # one per concurrent campaign
CAMPAIGN_MIN, CAMPAIGN_MEAN = 50, 500  # episodes per campaign

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SENDMAIL_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx"
ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"

FIRST_NAMES = (
    "anna", "ben", "carla", "david", "elena", "felix", "greta", "hugo", "ines",
    "jonas", "katrin", "lars", "maria", "nils", "olga", "paul", "rosa", "sven",
    "tina", "uwe", "vera", "walter", "yara", "zoe", "amir", "bianca", "chen",
    "diego", "emma", "farid", "hana", "ivan", "julia", "kofi", "lena", "mateo",
    "noor", "oscar", "priya", "quinn", "ravi", "sofia", "tomas", "wei", "yusuf",
)
LAST_NAMES = (
    "schmidt", "meyer", "novak", "rossi", "garcia", "kowalski", "jensen",
    "dubois", "silva", "okafor", "tanaka", "nguyen", "berg", "costa", "weber",
    "lindqvist", "horvat", "moreau", "fischer", "haddad",
)
LOCAL_DOMAINS = ("example.com", "example.org")
REMOTE_DOMAINS = (
    "northwind.example", "contoso.test", "fabrikam.example", "globex.test",
    "initech.example", "umbrella.test", "acme.example", "hooli.test",
    "vandelay.example", "wonka.test", "stark.example", "tyrell.test",
    "cyberdyne.example", "soylent.test", "aperture.example", "massive.test",
    "lists.example.net", "newsletter.example.net", "shop.example.net",
    "bank.example.net", "school.test", "city-council.test",
)
ISP_DOMAINS = ("dyn.telco.example", "cable.isp.test", "dsl.provider.example",
               "mobile.carrier.test", "fiber.net.example")
HOSTER_DOMAINS = ("vps.hoster.example", "cloud.compute.test",
                  "static.colo.example", "server.rent.test")
GUESSED_USERS = (
    "admin", "info", "test", "user", "support", "sales", "office", "contact",
    "postmaster", "webmaster", "root", "backup", "noreply", "marketing", "hr",
    "mail", "guest", "billing", "scanner", "administrator", "demo", "oracle",
    "www", "ftp", "abuse", "office1", "info2024",
)
UTF8_USERS = ("jürgen.müller", "administración", "администратор", "søren",
              "zoë.brontë", "管理员", "françois", "łukasz.wróbel")
BOT_HELOS = ("ylmf-pc", "User", "localhost", "ADMIN-PC", "kali", "example.com",
             "mail.example.com", "WIN-6A0KEE6QVP5", "WIN-R2D8Q4CLT1N")
PUBLIC_FIRST_OCTETS = (
    5, 23, 31, 37, 41, 45, 46, 62, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87,
    88, 89, 91, 93, 94, 95, 103, 109, 110, 111, 112, 113, 114, 116, 117, 118,
    119, 121, 122, 123, 124, 125, 138, 141, 151, 154, 156, 159, 160, 161, 163,
    164, 165, 167, 168, 170, 171, 175, 176, 177, 178, 179, 180, 181, 182, 183,
    185, 186, 187, 188, 189, 190, 191, 193, 194, 195, 196, 197, 200, 201, 202,
    210, 211, 212, 213, 217, 218, 219, 220, 221, 222,
)
TLS_CIPHERS = ("TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
               "TLSv1.3 with cipher TLS_CHACHA20_POLY1305_SHA256 (256/256 bits)",
               "TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)")
AUTH_FAIL_STATS = ("ehlo=1 auth=0/1 quit=1 commands=2/3",
                   "ehlo=1 auth=0/1 commands=1/2",
                   "ehlo=1 auth=0/1 rset=1 quit=1 commands=3/4",
                   "ehlo=2 starttls=1 auth=0/1 quit=1 commands=4/5")
SMTPD_SERVICES = ("smtpd", "submission/smtpd", "submission/smtpd", "smtps/smtpd")
# Long-running workers: service -> (pool size, chance per use of a new pid).
WORKER_POOLS = {
    "smtpd": (12, 0.01), "cleanup": (4, 0.005), "smtp": (6, 0.005),
    "lmtp": (3, 0.005), "local": (2, 0.01), "auth-worker": (3, 0.002),
    "qmgr": (1, 0.0), "pickup": (1, 0.0), "postscreen": (1, 0.0),
    "anvil": (1, 0.0),
}

T = TypeVar("T")


class LogLine(NamedTuple):
    """One generated line and, for attack lines, the attacker it reports."""

    text: str
    attacker: str | None  # canonical address; None for benign lines


@dataclass(frozen=True, slots=True)
class Client:
    """A remote peer as the mail daemons see it."""

    addr: str  # canonical address, the ground-truth label
    shown: str  # as logged; "::ffff:a.b.c.d" for IPv4-mapped peers
    rname: str  # reverse DNS name, "unknown" when there is none

    @property
    def namaddr(self) -> str:
        """Postfix's ``name[address]`` form."""
        return f"{self.rname}[{self.shown}]"

    @property
    def bracketed(self) -> str:
        """Sendmail's ``[address]`` form (``[IPv6:...]`` for IPv6)."""
        return f"[IPv6:{self.shown}]" if ":" in self.shown else f"[{self.shown}]"

    @property
    def lip(self) -> str:
        """The local address this peer connected to."""
        if self.shown.startswith("::ffff:"):
            return f"::ffff:{LIP4}"
        return LIP6 if ":" in self.shown else LIP4


class Clock:
    """Monotonic syslog time: advances a little on every line."""

    def __init__(self, rng: random.Random, start: datetime) -> None:
        self._rng = rng
        self._start = start
        self._elapsed = 0.0
        self._second = -1
        self.now = start
        self.stamp = ""

    def tick(self) -> str:
        """Advance by one line's worth of time; return the RFC 3164 stamp."""
        self._elapsed += self._rng.random() * (2.0 / LINES_PER_SECOND)
        second = int(self._elapsed)
        if second != self._second:
            self._second = second
            self.now = now = self._start + timedelta(seconds=second)
            self.stamp = (f"{MONTHS[now.month - 1]} {now.day:2d} "
                          f"{now.hour:02d}:{now.minute:02d}:{now.second:02d}")
        return self.stamp


class Pids:
    """Process ids: fresh ones from a growing counter, reused worker pools."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._last = 1000 + int(rng.random() * 30000)
        self._pools = {name: [self.fresh() for _ in range(size)]
                       for name, (size, _) in WORKER_POOLS.items()}

    def fresh(self) -> int:
        """A new, larger pid (wrapping like Linux pid_max)."""
        self._last += 1 + int(self._rng.random() * 30)
        if self._last > 4_194_304:
            self._last = 300
        return self._last

    def of(self, service: str) -> int:
        """The pid of some running worker of ``service``."""
        pool = self._pools[service]
        i = int(self._rng.random() * len(pool))
        if self._rng.random() < WORKER_POOLS[service][1]:
            pool[i] = self.fresh()
        return pool[i]


@dataclass(frozen=True, slots=True)
class Attacker:
    """An attacking client and the service family it prefers."""

    client: Client
    home: "Callable[[World, Client], list[str]]"


class World:
    """Everything the line templates draw from: randomness, time, pools."""

    def __init__(self, seed: int, start: datetime) -> None:
        self.rng = random.Random(seed)
        self.clock = Clock(self.rng, start)
        self.pids = Pids(self.rng)
        self._taken: set[str] = {LIP4, LIP6}
        self.local_users = self._users(300, LOCAL_DOMAINS)
        self.remote_users = self._users(1500, REMOTE_DOMAINS)
        self.servers = [self._benign_client(0.12, server=True) for _ in range(2000)]
        self.roamers = [self._benign_client(0.20, server=False) for _ in range(1000)]
        self.attackers = AttackerMix(self)

    # -- small random helpers -------------------------------------------------

    def pick(self, items: Sequence[T]) -> T:
        return items[int(self.rng.random() * len(items))]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def between(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return low + int(self.rng.random() * (high - low + 1))

    def port(self) -> int:
        return self.between(1024, 65535)

    def token(self, length: int) -> str:
        return "".join(self.pick(ALNUM) for _ in range(length))

    def b64(self, nbytes: int) -> str:
        raw = self.rng.getrandbits(8 * nbytes).to_bytes(nbytes, "big")
        return base64.b64encode(raw).decode().rstrip("=")

    def postfix_qid(self) -> str:
        if self.chance(0.5):
            return f"{self.rng.getrandbits(40):010X}"
        return f"{self.rng.getrandbits(44):011X}"

    def sendmail_qid(self, pid: int) -> str:
        """Sendmail's id: base-60 time digits, a sequence pair, the pid."""
        now, d = self.clock.now, SENDMAIL_DIGITS
        stamp = (d[(now.year - 1900) % 60] + d[now.month - 1] + d[now.day]
                 + d[now.hour] + d[now.minute] + d[now.second])
        return f"{stamp}{self.pick(d)}{self.pick(d)}{pid:06d}"

    def message_id(self, domain: str) -> str:
        if self.chance(0.4):
            return f"<{self.clock.now:%Y%m%d%H%M%S}.{self.postfix_qid()}@{domain}>"
        if self.chance(0.5):
            h = f"{self.rng.getrandbits(128):032x}"
            return f"<{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}@{domain}>"
        return f"<CA+{self.b64(30)}@mail.{domain}>"

    # -- pools ----------------------------------------------------------------

    def _users(self, count: int, domains: Sequence[str]) -> list[str]:
        users: dict[str, None] = {}  # insertion-ordered set
        while len(users) < count:
            first, last = self.pick(FIRST_NAMES), self.pick(LAST_NAMES)
            local = self.pick((f"{first}.{last}", f"{first[0]}.{last}", first,
                               f"{first}{self.between(1, 99)}"))
            users[f"{local}@{self.pick(domains)}"] = None
        return list(users)

    def _unique(self, make: Callable[[], str]) -> str:
        while (addr := make()) in self._taken:
            pass
        self._taken.add(addr)
        return addr

    def _public_ipv4(self) -> str:
        return (f"{self.pick(PUBLIC_FIRST_OCTETS)}.{self.between(0, 255)}."
                f"{self.between(0, 255)}.{self.between(1, 254)}")

    def _benign_ipv4(self) -> str:
        """Mostly public-looking, 30 % from the 198.18.0.0/15 benchmark range."""
        if self.chance(0.3):
            return f"198.{self.between(18, 19)}.{self.between(0, 255)}.{self.between(1, 254)}"
        return self._public_ipv4()

    def _ipv6(self, net: int) -> str:
        """An address in 2001:db8:<net>::/48, short or fully random suffix."""
        value = (0x20010DB8 << 96) | (net << 80) | (self.rng.getrandbits(16) << 64)
        value |= self.rng.getrandbits(64) if self.chance(0.5) else self.between(1, 0xFFFF)
        return ipaddress.IPv6Address(value).compressed

    def _benign_client(self, v6_share: float, server: bool) -> Client:
        if self.chance(v6_share):
            addr = self._unique(lambda: self._ipv6(self.between(0x100, 0x7FFF)))
        else:
            addr = self._unique(self._benign_ipv4)
        if server:
            domain = self.pick(REMOTE_DOMAINS)
            rname = self.pick((f"mail{self.between(1, 40)}.{domain}",
                               f"mx{self.between(1, 9)}.{domain}",
                               f"out-{self.between(1, 400)}.smtp.{domain}"))
            if self.chance(0.15):
                rname = "unknown"
        else:
            rname = f"{addr.replace('.', '-').replace(':', '-')}.{self.pick(ISP_DOMAINS)}"
        return Client(addr, addr, rname)

    def _attacker_client(self, kind: str, addr: str) -> Client:
        """kind is "v4", "v6" or "mapped" (IPv4 logged as ::ffff:a.b.c.d)."""
        shown = f"::ffff:{addr}" if kind == "mapped" else addr
        rname = "unknown"
        if self.chance(0.3):
            dashed = addr.replace(".", "-").replace(":", "-")
            rname = self.pick((f"{dashed}.{self.pick(ISP_DOMAINS)}",
                               f"vps{self.between(100, 99999)}.{self.pick(HOSTER_DOMAINS)}"))
        return Client(addr, shown, rname)

    def _attacker(self, kind: str, addr: str) -> Attacker:
        home = self.rng.choices(ATTACK_FAMILIES, weights=ATTACK_FAMILY_WEIGHTS)[0]
        return Attacker(self._attacker_client(kind, addr), home)

    def opening_attackers(self) -> list[Attacker]:
        """The first campaigns' attackers, from documentation ranges."""
        def doc4(net: str) -> str:
            return self._unique(lambda: f"{net}.{self.between(1, 254)}")
        kinds = (("v4", doc4("192.0.2")), ("mapped", doc4("198.51.100")),
                 ("v6", self._unique(lambda: self._ipv6(0xBAD))),
                 ("v4", doc4("198.51.100")), ("v4", doc4("192.0.2")),
                 ("v4", doc4("192.0.2")))
        return [self._attacker(kind, addr) for kind, addr in kinds]

    def random_attacker(self) -> Attacker:
        """9 % IPv6, 7 % IPv4 logged as IPv4-mapped IPv6, the rest IPv4."""
        roll = self.rng.random()
        if roll < 0.09:
            addr = self._unique(lambda: self._ipv6(self.between(0x8000, 0xFFFF)))
            return self._attacker("v6", addr)
        addr = self._unique(self._public_ipv4)
        return self._attacker("mapped" if roll < 0.16 else "v4", addr)


@dataclass(slots=True)
class Campaign:
    """One attacker hammering away for ``remaining`` more episodes."""

    attacker: Attacker
    remaining: int


class AttackerMix:
    """Picks the attacker of each attack episode: campaigns plus noise."""

    def __init__(self, w: World) -> None:
        self._w = w
        self._pool = [w.random_attacker() for _ in range(ATTACKER_POOL)]
        self._campaigns = [Campaign(a, self._budget()) for a in w.opening_attackers()]

    def _budget(self) -> int:
        return CAMPAIGN_MIN + int(self._w.rng.expovariate(1 / CAMPAIGN_MEAN))

    def next(self) -> Attacker:
        w = self._w
        if not w.chance(CAMPAIGN_SHARE):
            return w.pick(self._pool)
        campaign = w.rng.choices(self._campaigns, weights=CAMPAIGN_WEIGHTS)[0]
        campaign.remaining -= 1
        attacker = campaign.attacker
        if campaign.remaining == 0:
            campaign.attacker, campaign.remaining = w.pick(self._pool), self._budget()
        return attacker


def _num(x: float) -> str:
    """Postfix-style short number: 0.14, 1.2, 0."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _delays(w: World) -> str:
    parts = [w.rng.random() * 0.3, w.rng.random() * 0.02, w.rng.random() * 0.1,
             w.rng.random() * 0.4]
    return f"delay={_num(sum(parts))}, delays={'/'.join(_num(p) for p in parts)}"


def _helo(c: Client, domain: str) -> str:
    return c.rname if c.rname != "unknown" else f"mail.{domain}"


# -- benign sessions: generators of syslog message bodies ---------------------

def postfix_inbound(w: World) -> Iterator[str]:
    """Mail from another MTA through postscreen to Dovecot LMTP."""
    c, port, qid = w.pick(w.servers), w.port(), w.postfix_qid()
    sender, rcpt = w.pick(w.remote_users), w.pick(w.local_users)
    msgid = w.message_id(sender.split("@")[1])
    screen = f"postfix/postscreen[{w.pids.of('postscreen')}]"
    yield f"{screen}: CONNECT from [{c.shown}]:{port} to [{c.lip}]:25"
    yield f"{screen}: PASS OLD [{c.shown}]:{port}"
    smtpd = f"postfix/smtpd[{w.pids.of('smtpd')}]"
    yield f"{smtpd}: connect from {c.namaddr}"
    tls = w.chance(0.7)
    if tls:
        yield f"{smtpd}: Anonymous TLS connection established from {c.namaddr}: {w.pick(TLS_CIPHERS)}"
    yield f"{smtpd}: {qid}: client={c.namaddr}"
    yield f"postfix/cleanup[{w.pids.of('cleanup')}]: {qid}: message-id={msgid}"
    qmgr = f"postfix/qmgr[{w.pids.of('qmgr')}]"
    yield f"{qmgr}: {qid}: from=<{sender}>, size={w.between(1500, 90000)}, nrcpt=1 (queue active)"
    stats = "ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7" if tls \
        else "ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"
    yield f"{smtpd}: disconnect from {c.namaddr} {stats}"
    session = w.b64(16)
    yield f"dovecot: lmtp({rcpt})<{w.pids.fresh()}><{session}>: msgid={msgid}: saved mail to INBOX"
    yield (f"postfix/lmtp[{w.pids.of('lmtp')}]: {qid}: to=<{rcpt}>, "
           f"relay={FQDN}[private/dovecot-lmtp], {_delays(w)}, dsn=2.0.0, "
           f"status=sent (250 2.0.0 <{rcpt}> {session} Saved)")
    yield f"{qmgr}: {qid}: removed"


def postfix_greylisted(w: World) -> Iterator[str]:
    """A first-time sender told to come back later (450, not an attack)."""
    c, port = w.pick(w.servers), w.port()
    sender, rcpt = w.pick(w.remote_users), w.pick(w.local_users)
    screen = f"postfix/postscreen[{w.pids.of('postscreen')}]"
    yield f"{screen}: CONNECT from [{c.shown}]:{port} to [{c.lip}]:25"
    yield f"{screen}: PASS NEW [{c.shown}]:{port}"
    smtpd = f"postfix/smtpd[{w.pids.of('smtpd')}]"
    yield f"{smtpd}: connect from {c.namaddr}"
    yield (f"{smtpd}: NOQUEUE: reject: RCPT from {c.namaddr}: 450 4.2.0 <{rcpt}>: "
           f"Recipient address rejected: Greylisted, see "
           f"http://postgrey.example.net/help/{rcpt.split('@')[1]}.html; "
           f"from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<{_helo(c, sender.split('@')[1])}>")
    yield f"{smtpd}: disconnect from {c.namaddr} ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4"


def postfix_submission(w: World) -> Iterator[str]:
    """An authenticated user sending mail out through port 587."""
    c, qid = w.pick(w.roamers), w.postfix_qid()
    user, rcpt = w.pick(w.local_users), w.pick(w.remote_users)
    domain = rcpt.split("@")[1]
    smtpd = f"postfix/submission/smtpd[{w.pids.of('smtpd')}]"
    yield f"{smtpd}: connect from {c.namaddr}"
    yield f"{smtpd}: Anonymous TLS connection established from {c.namaddr}: {w.pick(TLS_CIPHERS)}"
    yield f"{smtpd}: {qid}: client={c.namaddr}, sasl_method=PLAIN, sasl_username={user}"
    yield f"postfix/cleanup[{w.pids.of('cleanup')}]: {qid}: message-id={w.message_id(user.split('@')[1])}"
    qmgr = f"postfix/qmgr[{w.pids.of('qmgr')}]"
    yield f"{qmgr}: {qid}: from=<{user}>, size={w.between(900, 400000)}, nrcpt=1 (queue active)"
    yield (f"{smtpd}: disconnect from {c.namaddr} "
           f"ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8")
    mx = w.pick(w.servers)
    reply = (f"250 2.0.0 Ok: queued as {w.postfix_qid()}" if w.chance(0.6)
             else f"250 2.0.0 OK  {int(w.clock.now.timestamp())} {w.token(12)}")
    yield (f"postfix/smtp[{w.pids.of('smtp')}]: {qid}: to=<{rcpt}>, "
           f"relay=mx{w.between(1, 3)}.{domain}[{mx.shown}]:25, {_delays(w)}, "
           f"dsn=2.0.0, status=sent ({reply})")
    yield f"{qmgr}: {qid}: removed"


def postfix_cron_mail(w: World) -> Iterator[str]:
    """A local cron report delivered to the admin's mailbox."""
    qid, admin = w.postfix_qid(), w.pick(w.local_users)
    yield f"postfix/pickup[{w.pids.of('pickup')}]: {qid}: uid=0 from=<root>"
    yield f"postfix/cleanup[{w.pids.of('cleanup')}]: {qid}: message-id={w.message_id(FQDN)}"
    qmgr = f"postfix/qmgr[{w.pids.of('qmgr')}]"
    yield f"{qmgr}: {qid}: from=<root@{FQDN}>, size={w.between(600, 4000)}, nrcpt=1 (queue active)"
    yield (f"postfix/local[{w.pids.of('local')}]: {qid}: to=<{admin}>, orig_to=<root>, "
           f"relay=local, {_delays(w)}, dsn=2.0.0, status=sent (delivered to mailbox)")
    yield f"{qmgr}: {qid}: removed"


def postfix_anvil(w: World) -> Iterator[str]:
    """Anvil's periodic statistics, which name a client address."""
    anvil = f"postfix/anvil[{w.pids.of('anvil')}]: statistics: max"
    client, at = f"(smtp:{w.pick(w.servers).shown})", f"at {w.clock.stamp}"
    yield f"{anvil} connection rate {w.between(1, 4)}/60s for {client} {at}"
    yield f"{anvil} connection count {w.between(1, 3)} for {client} {at}"
    yield f"{anvil} cache size {w.between(2, 40)} {at}"


def dovecot_imap(w: World) -> Iterator[str]:
    """An IMAP client logging in and, later, out."""
    c, user, mpid, session = w.pick(w.roamers), w.pick(w.local_users), w.pids.fresh(), w.b64(12)
    yield (f"dovecot: imap-login: Login: user=<{user}>, method=PLAIN, rip={c.shown}, "
           f"lip={c.lip}, mpid={mpid}, TLS, session=<{session}>")
    totals = f"in={w.between(40, 9000)} out={w.between(300, 900000)}"
    if w.chance(0.3):
        yield (f"dovecot: imap({user})<{mpid}><{session}>: Disconnected: Connection closed "
               f"(IDLE finished {_num(w.rng.random() * 1800)} secs ago) {totals}")
    else:
        yield (f"dovecot: imap({user})<{mpid}><{session}>: Logged out {totals} deleted=0 "
               f"expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0")


def dovecot_pop3(w: World) -> Iterator[str]:
    """A POP3 client fetching its mail."""
    c, user, mpid, session = w.pick(w.roamers), w.pick(w.local_users), w.pids.fresh(), w.b64(12)
    yield (f"dovecot: pop3-login: Login: user=<{user}>, method=PLAIN, rip={c.shown}, "
           f"lip={c.lip}, mpid={mpid}, TLS, session=<{session}>")
    count = w.between(0, 6)
    size = count * w.between(2000, 60000)
    yield (f"dovecot: pop3({user})<{mpid}><{session}>: Disconnected: Logged out "
           f"top=0/0, retr={count}/{size}, del={count}/{count}, size={size}")


def sendmail_inbound(w: World) -> Iterator[str]:
    """Mail accepted by Sendmail and delivered locally."""
    c, pid = w.pick(w.servers), w.pids.fresh()
    qid, sender, rcpt = w.sendmail_qid(pid), w.pick(w.remote_users), w.pick(w.local_users)
    relay = c.bracketed if c.rname == "unknown" else f"{c.rname} {c.bracketed}"
    proto = "ESMTP"
    if w.chance(0.6):
        proto = "ESMTPS"
        cipher = "TLS_AES_256_GCM_SHA384, bits=256/256"
        yield f"sm-mta[{pid}]: STARTTLS=server, relay={relay}, version=TLSv1.3, verify=NO, cipher={cipher}"
    size = w.between(1200, 120000)
    yield (f"sm-mta[{pid}]: {qid}: from=<{sender}>, size={size}, class=0, nrcpts=1, "
           f"msgid={w.message_id(sender.split('@')[1])}, bodytype=8BITMIME, "
           f"proto={proto}, daemon=MTA, relay={relay}")
    delay = f"00:00:0{w.between(0, 3)}"
    yield (f"sm-mta[{w.pids.fresh()}]: {qid}: to=<{rcpt}>, delay={delay}, xdelay={delay}, "
           f"mailer=local, pri={size + 30000}, dsn=2.0.0, stat=Sent")


BENIGN_SESSIONS: tuple[Callable[[World], Iterator[str]], ...] = (
    postfix_inbound, postfix_greylisted, postfix_submission, postfix_cron_mail,
    postfix_anvil, dovecot_imap, dovecot_pop3, sendmail_inbound)
BENIGN_WEIGHTS = (30, 8, 12, 3, 1, 40, 6, 20)


# -- attack episodes: 1-2 failure lines from one connection -------------------

def _sasl_failure(w: World, a: Client, smtpd: str) -> str:
    port = f":{w.port()}" if w.chance(0.3) else ""
    mech, reason = w.pick((("LOGIN", "UGFzc3dvcmQ6"), ("PLAIN", "authentication failure")))
    return f"{smtpd}: warning: {a.namaddr}{port}: SASL {mech} authentication failed: {reason}"


def _relay_denied(w: World, a: Client, smtpd: str, sender: str, helo: str) -> str:
    rcpt = f"{w.token(w.between(5, 10))}@{w.pick(REMOTE_DOMAINS)}"
    return (f"{smtpd}: NOQUEUE: reject: RCPT from {a.namaddr}: 554 5.7.1 <{rcpt}>: "
            f"Relay access denied; from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<{helo}>")


def postfix_attack(w: World, a: Client) -> list[str]:
    """SASL guessing, relay probing, pregreeting or pipelining at Postfix."""
    pid = w.pids.of("smtpd")
    smtpd = f"postfix/{w.pick(SMTPD_SERVICES)}[{pid}]"
    roll = w.rng.random()
    if roll < 0.35:
        return [_sasl_failure(w, a, smtpd),
                f"{smtpd}: disconnect from {a.namaddr} {w.pick(AUTH_FAIL_STATS)}"]
    if roll < 0.55:
        return [_sasl_failure(w, a, smtpd), f"{smtpd}: lost connection after AUTH from {a.namaddr}"]
    if roll < 0.65:
        return [f"{smtpd}: too many errors after AUTH from {a.namaddr}"]
    if roll < 0.80:
        sender = f"{w.pick(GUESSED_USERS)}@{w.pick(LOCAL_DOMAINS + REMOTE_DOMAINS)}"
        helo = w.pick((*BOT_HELOS, f"[{a.shown}]"))
        return [_relay_denied(w, a, f"postfix/smtpd[{pid}]", sender, helo)]
    screen, port = f"postfix/postscreen[{w.pids.of('postscreen')}]", w.port()
    if roll < 0.93:
        command = w.pick(("EHLO ", "HELO ")) + w.pick(BOT_HELOS)
        lines = [f"{screen}: PREGREET {len(command) + 2} after {_num(w.rng.random() * 0.5)} "
                 f"from [{a.shown}]:{port}: {command}\\r\\n"]
        if w.chance(0.5):
            lines.append(f"{screen}: HANGUP after {_num(0.5 + w.rng.random() * 20)} "
                         f"from [{a.shown}]:{port} in tests after SMTP handshake")
        return lines
    command = w.pick(("QUIT", "EHLO User", "HELO " + w.pick(BOT_HELOS)))
    return [f"postfix/smtpd[{pid}]: improper command pipelining after CONNECT "
            f"from {a.namaddr}: {command}\\r\\n"]


def _login_failure(w: World, a: Client, user: str, session: str = "") -> str:
    """The login process's summary. `session`: the login's id, which Dovecot's
    auth lines for that login carry too."""
    service = w.pick(("imap", "imap", "pop3"))
    attempts = w.between(1, 3)
    verb = w.pick(("Disconnected", "Disconnected", "Aborted login", "Disconnected: Inactivity"))
    tls = ", TLS" if w.chance(0.6) else ""
    secs, method = attempts * w.between(2, 5), w.pick(("PLAIN", "LOGIN"))
    drawn = w.b64(12)  # drawn even when given, so that the rest of a seed's log stays as it was
    return (f"dovecot: {service}-login: {verb} (auth failed, {attempts} attempts in "
            f"{secs} secs): user=<{user}>, method={method}, "
            f"rip={a.shown}, lip={a.lip}{tls}, session=<{session or drawn}>")


def _guessed_user(w: World) -> str:
    if w.chance(0.3):
        return w.pick(w.local_users)
    return w.pick(GUESSED_USERS)


def dovecot_attack(w: World, a: Client) -> list[str]:
    """IMAP/POP3 password guessing seen by the login and auth processes."""
    user = _guessed_user(w)
    roll = w.rng.random()
    if roll < 0.35:
        worker = f"dovecot: auth-worker({w.pids.of('auth-worker')})"
        reason = w.pick(("unknown user",
                         "pam_authenticate() failed: Authentication failure (password mismatch?)"))
        session = w.b64(12)  # one login: the auth process names its session
        return [f"{worker}: pam({user},{a.shown},<{session}>): {reason}",
                _login_failure(w, a, user, session)]
    if roll < 0.55:
        known = f"  user={user}" if w.chance(0.5) else ""
        return [f"dovecot: auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 "
                f"euid=0 tty=dovecot ruser={user} rhost={a.shown}{known}"]
    return [_login_failure(w, a, user)]


def _sendmail_relay(w: World, a: Client) -> str:
    if a.rname == "unknown":
        return a.bracketed
    forged = " (may be forged)" if w.chance(0.3) else ""
    return f"{a.rname} {a.bracketed}{forged}"


def sendmail_attack(w: World, a: Client) -> list[str]:
    """AUTH guessing, relay probing and idle connections at Sendmail."""
    pid = w.pids.fresh()
    head, relay = f"sm-mta[{pid}]: {w.sendmail_qid(pid)}", _sendmail_relay(w, a)
    auth_failure = (f"{head}: AUTH failure ({w.pick(('LOGIN', 'PLAIN'))}): authentication failure "
                    f"(-13) SASL(-13): authentication failure: checkpass failed, "
                    f"user={_guessed_user(w)}, relay={relay}")
    roll = w.rng.random()
    if roll < 0.25:
        return [auth_failure]
    if roll < 0.45:
        return [auth_failure, f"{head}: {relay}: possible SMTP attack: command=AUTH, count={w.between(5, 6)}"]
    if roll < 0.70:
        rcpt = f"{w.token(w.between(5, 10))}@{w.pick(REMOTE_DOMAINS)}"
        suffix = w.pick(("", ". Proper authentication required."))
        return [f"{head}: ruleset=check_rcpt, arg1=<{rcpt}>, relay={relay}, "
                f"reject=550 5.7.1 <{rcpt}>... Relaying denied{suffix}",
                f"{head}: lost input channel from {relay} to MTA after rcpt"]
    return [f"{head}: {relay} did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA"]


ATTACK_FAMILIES = (postfix_attack, dovecot_attack, sendmail_attack)
ATTACK_FAMILY_WEIGHTS = (55, 30, 15)


def attack_episode(w: World, attacker: Attacker) -> list[str]:
    """An attack from its home family, now and then from another one."""
    family = attacker.home
    if not w.chance(HOME_FAMILY_SHARE):
        family = w.pick(ATTACK_FAMILIES)
    return family(w, attacker.client)


# -- odd lines: rare shapes a parser must survive -----------------------------

def _filler_hostname(w: World, length: int) -> str:
    """A made-up hostname of about ``length`` characters (labels <= 63)."""
    labels = []
    while length > 64:
        labels.append(w.token(60))
        length -= 61
    labels.append(w.token(max(length - 8, 1)))
    return ".".join(labels) + ".example"


def _long_reject(w: World, c: Client, rcpt: str, reason: str) -> str:
    """A ~600-character NOQUEUE reject: VERP sender, absurd HELO name."""
    sender = f"bounce-{w.token(48)}={rcpt.replace('@', '=')}@{w.token(12)}.bulk.mailer.example"
    line = (f"postfix/smtpd[{w.pids.of('smtpd')}]: NOQUEUE: reject: RCPT from {c.namaddr}: "
            f"{reason}; from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<>")
    return line[:-1] + _filler_hostname(w, 600 - len(line)) + ">"


def odd_line(w: World, attack: bool) -> LogLine:
    """A UTF-8 user name or a very long reject; attack or benign."""
    if attack:
        a = w.attackers.next().client
        if w.chance(0.5):
            return LogLine(_login_failure(w, a, w.pick(UTF8_USERS)), a.addr)
        rcpt = f"{w.token(8)}@{w.pick(REMOTE_DOMAINS)}"
        return LogLine(_long_reject(w, a, rcpt, f"554 5.7.1 <{rcpt}>: Relay access denied"), a.addr)
    c = w.pick(w.roamers)
    if w.chance(0.5):
        user = f"{w.pick(UTF8_USERS)}@{w.pick(LOCAL_DOMAINS)}"
        return LogLine(f"dovecot: imap-login: Login: user=<{user}>, method=PLAIN, rip={c.shown}, "
                       f"lip={c.lip}, mpid={w.pids.fresh()}, TLS, session=<{w.b64(12)}>", None)
    rcpt = w.pick(w.local_users)
    reason = (f"450 4.2.0 <{rcpt}>: Recipient address rejected: Greylisted, see "
              f"http://postgrey.example.net/help/{rcpt.split('@')[1]}.html")
    return LogLine(_long_reject(w, w.pick(w.servers), rcpt, reason), None)


# -- streams and the public API ------------------------------------------------

class BenignStream:
    """Interleaves the lines of a few concurrent benign sessions."""

    def __init__(self, w: World) -> None:
        self._w = w
        self._slots = [self._new_session() for _ in range(CONCURRENT_SESSIONS)]

    def _new_session(self) -> Iterator[str]:
        session = self._w.rng.choices(BENIGN_SESSIONS, weights=BENIGN_WEIGHTS)[0]
        return session(self._w)

    def next(self) -> str:
        i = int(self._w.rng.random() * CONCURRENT_SESSIONS)
        line = next(self._slots[i], None)
        while line is None:
            self._slots[i] = self._new_session()
            line = next(self._slots[i], None)
        return line


class AttackStream:
    """Attack lines, episode by episode, labelled with the attacker."""

    def __init__(self, w: World) -> None:
        self._w = w
        self._pending: list[str] = []
        self._attacker = ""

    def next(self) -> LogLine:
        if not self._pending:
            attacker = self._w.attackers.next()
            self._attacker = attacker.client.addr
            self._pending = attack_episode(self._w, attacker)[::-1]
        return LogLine(self._pending.pop(), self._attacker)


def generate_labeled(lines: int, seed: int = DEFAULT_SEED,
                     attack_ratio: float = DEFAULT_ATTACK_RATIO,
                     start: datetime = DEFAULT_START) -> Iterator[LogLine]:
    """Yield ``lines`` log lines (no newline), each with its attacker label.

    The label is the canonical address of the attacker whose failure the line
    reports (IPv4-mapped addresses unmapped), or None for benign lines.
    """
    if not 0.0 <= attack_ratio <= 1.0:
        raise ValueError(f"attack_ratio must be within [0, 1], not {attack_ratio}")
    w = World(seed, start)
    benign, attacks = BenignStream(w), AttackStream(w)
    rand, tick = w.rng.random, w.clock.tick
    for _ in range(lines):
        prefix = f"{tick()} {HOST} "
        attack = rand() < attack_ratio
        if rand() < ODD_RATIO:
            body, attacker = odd_line(w, attack)
        elif attack:
            body, attacker = attacks.next()
        else:
            body, attacker = benign.next(), None
        yield LogLine(prefix + body, attacker)


def generate(lines: int, seed: int = DEFAULT_SEED,
             attack_ratio: float = DEFAULT_ATTACK_RATIO,
             start: datetime = DEFAULT_START) -> Iterator[str]:
    """Yield ``lines`` log lines without trailing newline."""
    for line in generate_labeled(lines, seed, attack_ratio, start):
        yield line.text


def write(path: str | Path, lines: int, seed: int = DEFAULT_SEED,
          attack_ratio: float = DEFAULT_ATTACK_RATIO,
          start: datetime = DEFAULT_START) -> None:
    """Write ``lines`` generated lines to ``path`` (UTF-8, LF endings)."""
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.writelines(f"{line}\n" for line in generate(lines, seed, attack_ratio, start))


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, required=True, help="number of lines to write")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default 1)")
    parser.add_argument("--attack-ratio", type=float, default=DEFAULT_ATTACK_RATIO,
                        help="share of attack lines (default 0.07)")
    parser.add_argument("--start", type=datetime.fromisoformat, default=DEFAULT_START,
                        help="time of the first line (default 2026-11-20T00:00:00)")
    parser.add_argument("outfile", type=Path, help="file to write")
    args = parser.parse_args(argv)
    if args.lines < 0 or not 0.0 <= args.attack_ratio <= 1.0:
        parser.error("--lines must be >= 0 and --attack-ratio within [0, 1]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    began = time.perf_counter()
    write(args.outfile, args.lines, args.seed, args.attack_ratio, args.start)
    print(f"genlog: wrote {args.lines} lines to {args.outfile} in "
          f"{time.perf_counter() - began:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
