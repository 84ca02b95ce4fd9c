"""Syslog records: the bytes of one record in, one `Record` (or a rejection) out.

Rules of this file:
* Pure: no I/O and no clock. The receive time (`now`) and the zone of
  timestamps that carry none are arguments, so every result is reproducible.
* It knows every header form a receiver meets and nothing about services,
  signatures or addresses.
* A record is taken whole or rejected whole, with a reason from
  REJECT_REASONS. It is never split, truncated or repaired: a piece of a long
  record parsed as a record of its own is how attackers smuggle text into a
  position the daemon itself writes.

Theory of operation: the byte-level checks come first (size, NUL, control
characters, UTF-8, blank), then the header. `<PRI>1 ` announces RFC 5424;
anything else is tried as `[<PRI>]TIMESTAMP [HOST] TAG[PID]: MSG` with an
RFC 3164 or ISO 8601 timestamp, or a TAI64N label (multilog). A line that
starts with a date and a time
separated by a space (no PRI) and has no host and tag of the strict form is a
line of Exim's own main log. What has no recognisable header is a bare
message: it is kept, with no program, and only tag-free signatures see it.
An invalid PRI is part of the message (RFC 3164 section 4.3.3); an impossible
date leaves the timestamp unknown. Hence the invariant the bulk scanner relies
on: every non-blank printable ASCII line within the size limit parses.

The other forms syslog daemons write, each as its source writes it (socklog's
prefix is looked for first, behind a test of a character or two; the others
only where the usual form does not fit, so ordinary lines pay next to nothing):
* socklog: `FAC.LEVEL: ` and the datagram as the client sent it (glibc:
  `Mmm dd hh:mm:ss TAG[PID]: MSG`), often behind a timestamp of svlogd
  (`@TAI64N`, UTC `YYYY-MM-DD_hh:mm:ss.xxxxx` or with a T), multilog
  (`@TAI64N`) or tai64nlocal (local `YYYY-MM-DD hh:mm:ss.nnnnnnnnn`);
* FreeBSD `syslogd -v` / `-vv`: `<FAC.PRI> ` (numbers or names) between the
  timestamp and the host (usr.sbin/syslogd/syslogd.c, fprintlog_first, 13 and 14);
* busybox syslogd: `HOST FAC.LEVEL TAG[PID]: MSG` (syslogd.c, timestamp_and_log);
* `TAG[PID] MSG` without the colon (rsyslog templates that drop it) and
  metalog's `[TAG] MSG` right after an RFC 3164 timestamp.
Facility and level names count only when they are syslog's own (the tables
below), a PID only in brackets: a form never takes a free word for a tag
where the strict form would not, so no new form lets message text, which
comes after the tag, pick the program or the host.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from datetime import datetime, timedelta, timezone, tzinfo

DEFAULT_MAX_SIZE = 8192

REJECT_REASONS: dict[str, str] = {
    "too-long": "longer than the record size limit (rejected whole, never split)",
    "nul-byte": "contains a NUL byte",
    "control-char": "contains control characters (binary or multi-line data)",
    "invalid-utf8": "is not valid UTF-8",
    "empty": "is empty or blank",
}

FACILITIES: tuple[str, ...] = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
    "uucp", "cron", "authpriv", "ftp", "ntp", "security", "console",
    "solaris-cron", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
)

# The names syslog daemons print for facilities and levels (glibc's and
# FreeBSD's facilitynames/prioritynames, socklog's, busybox's): name -> code.
FACILITY_CODES: dict[str, int] = {name: code for code, name in enumerate(FACILITIES)}
SEVERITY_CODES: dict[str, int] = {
    "emerg": 0, "panic": 0, "alert": 1, "crit": 2, "err": 3, "error": 3,
    "warning": 4, "warn": 4, "notice": 5, "info": 6, "debug": 7,
}

MONTHS: dict[str, int] = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)
}

# A date this far ahead of the receiver's clock belongs to an earlier year;
# less than that is clock skew between sender and receiver.
FUTURE_SLACK = 3600.0
_YEARS_BACK = 8  # enough to reach the previous 29 February

# Only tab is allowed among C0 controls; CR only as part of a CRLF ending.
_CONTROL = re.compile(r"[\x01-\x08\x0a-\x1f\x7f]")
_PRI = re.compile(r"<([0-9]{1,3})>")

# ": *": rsyslog templates that put a space before %msg% (which keeps the
# space RFC 3164 puts after the colon) write two; the message starts after them.
_TAG = r"(?P<prog>[^\s\[\]:]{1,64})(?:\[(?P<pid>\d{1,10})\])?: *(?P<msg>.*)"
# A host name (letters, digits, . _ - /) or an IPv6 literal: never a token like
# "H=(helo" that a client can put at the start of a message.
_HOST_NAME = r"[\w./-]{1,255}"
_HOST = rf"(?P<host>[0-9A-Fa-f]{{0,4}}:[0-9A-Fa-f]{{0,4}}:[0-9A-Fa-f:.]{{0,41}}|{_HOST_NAME})"
_BSD_TS = (r"(?P<bsd>(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) "
           r"(?P<hms>\d\d:\d\d:\d\d))(?P<frac>\.\d{1,9})?")
_ISO_TS = (r"(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?P<ifrac>\.\d{1,9})?"
           r"(?P<off>Z|[+-]\d\d:?\d\d)?")
# re.ASCII: \d and \s mean what RFC 3164/5424 mean, not any Unicode digit.
_FLAGS = re.DOTALL | re.ASCII
_TIMESTAMP = re.compile(rf"(?:{_BSD_TS}|{_ISO_TS}) +", _FLAGS)
# The usual form in one expression: [<PRI>]TIMESTAMP [HOST ]TAG[PID]: MSG.
_COMMON = re.compile(rf"(?:<(?P<pri>\d{{1,3}})>)?(?:{_BSD_TS}|{_ISO_TS}) +(?:{_HOST} )?{_TAG}",
                     _FLAGS)
_HOST_TAG = re.compile(rf"(?:{_HOST} )?{_TAG}", _FLAGS)
_HOST_ONLY = re.compile(r"(?P<host>[^\s]{1,255})(?: (?P<msg>.*))?", _FLAGS)
_TAG_ONLY = re.compile(_TAG, _FLAGS)

_SD_ELEMENT = r'\[[^\]"]*(?:"(?:[^"\\]|\\.)*"[^\]"]*)*\]'
_RFC5424 = re.compile(
    r"1 (?P<ts>-|\S{1,64}) (?P<host>\S{1,255}) (?P<app>\S{1,48}) "
    rf"(?P<procid>\S{{1,128}}) (?P<msgid>\S{{1,32}}) (?P<sd>-|(?:{_SD_ELEMENT})+)"
    r"(?: (?P<msg>.*))?$", _FLAGS)
_ISO_FULL = re.compile(rf"{_ISO_TS}$", re.ASCII)
# A date with a space instead of the T: syslog (some templates write it so),
# Dovecot's own log file, or Exim's main log, whose lines start with a message
# id, [pid] or H=... So that a client's HELO can never pass for a host and tag
# here, an Exim message id is no host name and a tag has no "=".
_EXIM_ID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}"
# daemontools/runit multilog: "@" and a TAI64N label, then "tag: msg".
_TAI64N = re.compile(rf"@(?P<tai>[0-9a-f]{{16}})(?P<nano>[0-9a-f]{{8}}) {_TAG}", _FLAGS)
_TAI64_EPOCH = (1 << 62) + 10  # TAI64 label of 1970-01-01 00:00:00 UTC (10 s TAI-UTC)
_SPACE_DATED = re.compile(
    rf"(?P<iso>\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d)(?P<ifrac>\.\d{{1,9}})?(?P<off>Z|[+-]\d\d:?\d\d)? +"
    rf"(?:(?P<host>(?!{_EXIM_ID} )[0-9A-Fa-f]{{0,4}}:[0-9A-Fa-f]{{0,4}}:[0-9A-Fa-f:.]{{0,41}}"
    rf"|(?!{_EXIM_ID} ){_HOST_NAME}) )?"
    r"(?P<prog>[^\s\[\]:=]{1,64})(?:\[(?P<pid>\d{1,10})\])?: ?(?P<msg>.*)", _FLAGS)
# Exim's own main log (a file, not syslog): "2026-11-21 10:00:27[.123] [+0100] [[pid]] msg".
# Its lines carry no program tag; they are Exim's by their date alone, a space
# where syslog's ISO dates have a T. Never tried as "host tag: msg": the HELO
# a client sends comes early in Exim's lines and could forge a tag.
_EXIM = re.compile(r"(?P<iso>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?P<ifrac>\.\d{1,6})?"
                   r"(?: (?P<off>[+-]\d{4}))?(?: \[(?P<pid>\d{1,10})\])? (?P<msg>.*)", _FLAGS)


def _names(table: dict[str, int]) -> str:
    """An alternation of the table's names, longest first ("authpriv" before "auth")."""
    return "|".join(sorted(table, key=len, reverse=True))


_FAC_NAME = rf"(?P<fname>{_names(FACILITY_CODES)})\.(?P<sname>{_names(SEVERITY_CODES)})"
# socklog's prefix, behind the stamp of svlogd, multilog or tai64nlocal if any.
_FACILITY_START = frozenset(name[0] for name in FACILITY_CODES)
_SOCKLOG_STAMPED = frozenset("@0123456789")
_SOCKLOG = re.compile(
    r"(?:(?:@(?P<tai>[0-9a-f]{16})(?P<nano>[0-9a-f]{8})"            # svlogd -t, multilog t
    r"|(?P<utc>\d{4}-\d\d-\d\d[_T]\d\d:\d\d:\d\d)(?P<ufrac>\.\d{5})"  # svlogd -tt, -ttt
    r"|(?P<local>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?P<lfrac>\.\d{9})) )?"   # tai64nlocal
    rf"{_FAC_NAME}: ", _FLAGS)
# FreeBSD syslogd -v ("<4.6> ") and -vv ("<auth.info> ", a number where no name).
_FREEBSD_V = re.compile(
    rf"<(?:(?P<fnum>1?\d|2[0-3])|(?P<fname>{_names(FACILITY_CODES)}))"
    rf"\.(?:(?P<snum>[0-7])|(?P<sname>{_names(SEVERITY_CODES)}))> ", _FLAGS)
_BUSYBOX = re.compile(rf"{_HOST} {_FAC_NAME} {_TAG}", _FLAGS)
_NO_COLON = re.compile(
    rf"(?:{_HOST} )?(?P<prog>[^\s\[\]:]{{1,64}})\[(?P<pid>\d{{1,10}})\] (?P<msg>.*)", _FLAGS)
_METALOG = re.compile(r"\[(?P<prog>[^\s\[\]:]{1,64})(?:\[(?P<pid>\d{1,10})\])?\]:? (?P<msg>.*)",
                      _FLAGS)


class Malformed(ValueError):
    """A record that cannot be taken; `reason` is a key of REJECT_REASONS."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"record {REJECT_REASONS[reason]}")
        self.reason = reason


class Record(NamedTuple):
    """One parsed record. A NamedTuple: immutable like a frozen dataclass, but
    built four times faster (0.27 against 1.1 us, measured), and the parser
    builds one for every candidate line."""

    message: str
    program: str | None = None
    pid: int | None = None
    hostname: str | None = None
    timestamp: float | None = None  # seconds since the epoch, None if unknown
    facility: int | None = None
    severity: int | None = None


_new = tuple.__new__  # _new(Record, fields): Record(*fields) without its keyword handling
_UNSEEN = object()


class RecordParser:
    """Parses records; holds its limits and a timestamp cache.

    The cache of day starts is what makes timestamps cheap (datetime with a
    time zone costs microseconds, a log spans few days). It holds nothing that
    depends on `now`, so results never depend on the records parsed before.
    """

    __slots__ = ("max_size", "tz", "timestamps", "_cache", "_year", "_year_minute", "_stamps")

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE, tz: tzinfo | None = None,
                 timestamps: bool = True) -> None:
        self.max_size = max_size
        self.tz = tz  # None: the local time of the C library (TZ)
        # False: every timestamp is None. For callers that decide on their own
        # clock (the daemon) or never look (check without --replay): a third of
        # the cost of a record.
        self.timestamps = timestamps
        self._cache: dict[tuple[int, int, int, tzinfo | None], tuple[float, bool] | None] = {}
        self._year = 0
        self._year_minute = -1  # zone offsets are whole minutes: years change on one
        # RFC 3164 stamp text -> seconds, for the current minute of `now` only.
        self._stamps: dict[str, float] = {}

    def parse(self, data: bytes, now: float, clean: bool = False) -> Record:
        """The record in `data`; Malformed when it must be rejected.

        `clean`: the caller checked the bytes already (the scanner passes a
        line as clean when it is printable ASCII, not blank, within the size
        limit and holds no CR): only the header is left to read.
        """
        if clean:
            text = data.decode("ascii")
        else:
            if data.endswith(b"\n"):
                data = data[:-1]
            if data.endswith(b"\r"):
                data = data[:-1]
            if len(data) > self.max_size:
                raise Malformed("too-long")
            if b"\0" in data:
                raise Malformed("nul-byte")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise Malformed("invalid-utf8") from None
            if not text.isprintable() and _CONTROL.search(text):  # isprintable: fast path
                raise Malformed("control-char")
            if not text.strip(" \t"):
                raise Malformed("empty")
        if self.timestamps:
            minute = int(now // 60)
            if minute != self._year_minute:
                self._year_minute = minute
                self._year = datetime.fromtimestamp(now, self.tz).year
                self._stamps.clear()
            if len(self._cache) > 4096:
                self._cache.clear()
        first = text[0]
        # A stamp before socklog's prefix ends at 25 (TAI64N, svlogd) or 29
        # (tai64nlocal): a cheap test that spares other dated lines the regex.
        if first in _FACILITY_START or (first in _SOCKLOG_STAMPED and (
                text[25:26] == " " or text[29:30] == " ")):
            socklog = _SOCKLOG.match(text)
            if socklog is not None:
                return self._socklog(text, socklog, now)
        if first == "@":
            tai = _TAI64N.fullmatch(text)
            if tai is not None:
                stamp = int(tai.group("tai"), 16) - _TAI64_EPOCH + int(tai.group("nano"), 16) / 1e9
                return _tagged(tai, stamp, None, None)
        if text[10:11] == " ":
            dated = _SPACE_DATED.fullmatch(text)
            if dated is not None:
                return _tagged(dated, self._timestamp(dated, now), None, None)
            exim = _EXIM.fullmatch(text)
            if exim is not None:
                pid = exim.group("pid")
                return Record(exim.group("msg"), "exim", None if pid is None else int(pid),
                              None, self._timestamp(exim, now))
        m = _COMMON.fullmatch(text)
        if m is not None:
            pri, msg, prog, pid, host = m.group("pri", "msg", "prog", "pid", "host")
            if pri is None:
                facility = severity = None
            elif (value := int(pri)) < 192:
                facility, severity = value >> 3, value & 7
            else:
                return self._header(text, now)
            # The commonest form of all: the groups read directly, the tuple
            # built without Record's keyword handling.
            return _new(Record, (msg, prog, None if pid is None else int(pid), host,
                            self._common_timestamp(m, now) if self.timestamps else None,
                            facility, severity))
        return self._header(text, now)

    def _common_timestamp(self, m: re.Match[str], now: float) -> float | None:
        """_timestamp for _COMMON's match: RFC 3164 stamps are looked up first
        (a log repeats each second many times; see _stamps)."""
        bsd = m.group("bsd")
        if bsd is None or m.group("frac") is not None:
            return self._timestamp(m, now)
        stamp = self._stamps.get(bsd, _UNSEEN)
        if stamp is _UNSEEN:
            stamp = self._timestamp(m, now)
            # Kept only where any `now` of this minute gives the same answer:
            # _bsd picks the year by the limit now + FUTURE_SLACK.
            low = self._year_minute * 60 + FUTURE_SLACK
            if stamp is not None and stamp <= low and stamp + 365 * 86400 > low + 60:
                if len(self._stamps) >= 4096:  # a log moves on: its old seconds are done
                    self._stamps.clear()
                self._stamps[bsd] = stamp
        return stamp  # type: ignore[return-value]

    def _header(self, text: str, now: float) -> Record:
        facility = severity = None
        pos = 0
        pri = _PRI.match(text)
        if pri and int(pri.group(1)) < 192:
            value = int(pri.group(1))
            facility, severity = value >> 3, value & 7
            pos = pri.end()
            if text.startswith("1 ", pos):
                record = self._rfc5424(text, pos, facility, severity, now)
                if record is not None:
                    return record
        ts = _TIMESTAMP.match(text, pos)
        if ts is None:
            tagged = _TAG_ONLY.fullmatch(text, pos) if facility is not None else None
            if tagged is None:
                return Record(text[pos:], facility=facility, severity=severity)
            return _tagged(tagged, None, facility, severity)
        timestamp = self._timestamp(ts, now)
        rest = ts.end()
        if facility is None:
            verbose = _FREEBSD_V.match(text, rest)
            if verbose is not None:
                facility, severity = _codes(verbose)
                rest = verbose.end()
        tagged = _HOST_TAG.fullmatch(text, rest)
        if tagged is not None:
            return _tagged(tagged, timestamp, facility, severity)
        busybox = _BUSYBOX.fullmatch(text, rest)
        if busybox is not None:
            return _tagged(busybox, timestamp, *_codes(busybox))
        tagged = _NO_COLON.fullmatch(text, rest)
        if tagged is None and ts.group("bsd") is not None:
            tagged = _METALOG.fullmatch(text, rest)
        if tagged is not None:
            return _tagged(tagged, timestamp, facility, severity)
        host = _HOST_ONLY.fullmatch(text, rest)
        if host is None:
            return Record(text[rest:], timestamp=timestamp, facility=facility, severity=severity)
        return Record(host.group("msg") or "", hostname=host.group("host"),
                      timestamp=timestamp, facility=facility, severity=severity)

    def _socklog(self, text: str, m: re.Match[str], now: float) -> Record:
        """socklog's `FAC.LEVEL: ` and the datagram as sent, maybe behind a stamp."""
        facility, severity = _codes(m)
        stamp: float | None = None
        if m.group("tai") is not None:
            stamp = (int(m.group("tai"), 16) - _TAI64_EPOCH
                     + int(m.group("nano"), 16) / 1e9)
        elif m.group("utc") is not None:
            stamp = self._wall(m.group("utc"), m.group("ufrac"), timezone.utc)
        elif m.group("local") is not None:
            stamp = self._wall(m.group("local"), m.group("lfrac"), self.tz)
        pos = m.end()
        ts = _TIMESTAMP.match(text, pos)
        if ts is None:  # a stripped datagram: "TAG[PID]: MSG", as behind a PRI
            tagged = _TAG_ONLY.fullmatch(text, pos)
            if tagged is None:
                return Record(text[pos:], timestamp=stamp, facility=facility,
                              severity=severity)
            return _tagged(tagged, stamp, facility, severity)
        if stamp is None:
            stamp = self._timestamp(ts, now)
        tagged = _HOST_TAG.fullmatch(text, ts.end())
        if tagged is None:
            return Record(text[ts.end():], timestamp=stamp, facility=facility,
                          severity=severity)
        return _tagged(tagged, stamp, facility, severity)

    def _rfc5424(self, text: str, pos: int, facility: int, severity: int,
                 now: float) -> Record | None:
        m = _RFC5424.match(text, pos)
        if m is None:
            return None
        timestamp = None
        if m.group("ts") != "-":
            iso = _ISO_FULL.match(m.group("ts"))
            if iso is None:
                return None
            timestamp = self._timestamp(iso, now)
        msg = m.group("msg") or ""
        if msg.startswith("\ufeff"):
            msg = msg[1:]
        procid = m.group("procid")
        return Record(
            msg,
            program=_nil(m.group("app")),
            pid=int(procid) if procid.isascii() and procid.isdigit() and len(procid) <= 10
            else None,
            hostname=_nil(m.group("host")),
            timestamp=timestamp, facility=facility, severity=severity)

    def _timestamp(self, m: re.Match[str], now: float) -> float | None:
        if not self.timestamps:
            return None
        iso = m.group("iso")
        if iso is not None:
            zone = self._zone(m.group("off"))
            if zone is False:
                return None
            return self._wall(iso, m.group("ifrac"), zone)
        month = MONTHS.get(m.group("mon"))
        if month is None:
            return None
        stamp = self._bsd(month, int(m.group("day")), m.group("hms"), now + FUTURE_SLACK)
        frac = m.group("frac")
        if stamp is None or frac is None:
            return stamp
        return stamp + float(frac)

    def _wall(self, iso: str, frac: str | None, zone: tzinfo | None) -> float | None:
        """Seconds since the epoch of `YYYY-MM-DD?hh:mm:ss` and its fraction in `zone`."""
        if not self.timestamps:
            return None
        stamp = self._at(int(iso[:4]), int(iso[5:7]), int(iso[8:10]), iso[11:], zone)
        if stamp is None or frac is None:
            return stamp
        return stamp + float(frac)

    def _bsd(self, month: int, day: int, hms: str, limit: float) -> float | None:
        """RFC 3164 has no year: the latest one in which the date is not after `limit`."""
        stamp = self._at(self._year, month, day, hms, self.tz)
        if stamp is not None and stamp <= limit:
            if stamp + 365 * 86400 <= limit:  # late December: maybe already next year's
                following = self._at(self._year + 1, month, day, hms, self.tz)
                if following is not None and following <= limit:
                    return following
            return stamp
        for year in range(self._year - 1, self._year - _YEARS_BACK, -1):
            stamp = self._at(year, month, day, hms, self.tz)
            if stamp is not None and stamp <= limit:
                return stamp
        return None

    def _at(self, year: int, month: int, day: int, hms: str, zone: tzinfo | None) -> float | None:
        """Seconds since the epoch of a wall-clock time, None if there is no such time.

        The start of each day is cached; a time is its day's start plus the
        seconds since midnight, unless the zone changes its offset that day.
        """
        hour, minute, second = int(hms[:2]), int(hms[3:5]), int(hms[6:8])
        if hour > 23 or minute > 59 or second > 59:
            return None
        key = (year, month, day, zone)
        try:
            start = self._cache[key]
        except KeyError:
            start = self._cache[key] = _day_start(year, month, day, zone)
        if start is None:
            return None
        midnight, regular = start
        if regular:
            return midnight + hour * 3600 + minute * 60 + second
        return datetime(year, month, day, hour, minute, second, tzinfo=zone).timestamp()

    def _zone(self, offset: str | None) -> tzinfo | None | bool:
        """The zone of an ISO offset (False: an impossible one)."""
        if offset is None:
            return self.tz
        if offset == "Z":
            return timezone.utc
        hours, minutes = int(offset[1:3]), int(offset[-2:])
        if hours > 23 or minutes > 59:
            return False
        sign = -1 if offset[0] == "-" else 1
        return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _day_start(year: int, month: int, day: int,
               zone: tzinfo | None) -> tuple[float, bool] | None:
    """(start of the day, whether it has 86400 seconds), None for no such day."""
    try:
        midnight = datetime(year, month, day, tzinfo=zone)
        start = midnight.timestamp()
        return start, (midnight + timedelta(days=1)).timestamp() - start == 86400
    except (ValueError, OverflowError, OSError):  # no such day, or beyond what time_t holds
        return None


def _nil(value: str) -> str | None:
    return None if value == "-" else value


def _codes(m: re.Match[str]) -> tuple[int | None, int | None]:
    """(facility, severity) of a match with fname/sname (names) or fnum/snum groups."""
    groups = m.groupdict()
    name, number = groups.get("fname"), groups.get("fnum")
    facility = FACILITY_CODES[name] if name is not None else None
    if number is not None:
        facility = int(number)
    name, number = groups.get("sname"), groups.get("snum")
    severity = SEVERITY_CODES[name] if name is not None else None
    if number is not None:
        severity = int(number)
    return facility, severity


def _tagged(m: re.Match[str], timestamp: float | None,
            facility: int | None, severity: int | None) -> Record:
    msg, prog, pid = m.group("msg", "prog", "pid")
    host = m.group("host") if "host" in m.re.groupindex else None
    return Record(msg, prog, None if pid is None else int(pid), host,
                  timestamp, facility, severity)
