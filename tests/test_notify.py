"""Notifications: configuration, the pure composers and rate limiter, and the
Notifier against real peers: an aiosmtpd sink on 127.0.0.1 and hook scripts."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope
from conftest import BERLIN, NOW, PROPERTY, UTC, at
from hypothesis import given
from hypothesis import strategies as st

from syslogban import notify
from syslogban.blocker import Block
from syslogban.config import ConfigError
from syslogban.display import MAX_LINE
from syslogban.notify import (
    DIGEST_LIMIT,
    HOOK_PATH,
    DigestEntry,
    Notifier,
    NotifyConfig,
    RateLimiter,
    compose_block_mail,
    compose_digest,
    hook_argv,
    hook_env,
    next_digest_time,
    printable,
)

TO = "postmaster@example.org"
FROM = "syslogban@mx.example.org"
MAIL = NotifyConfig.from_mapping({"mail_to": [TO], "mail_from": FROM})

# Evidence as an attacker would write it: header injection, shell syntax,
# terminal escapes, a bidi override, a Unicode line separator.
HOSTILE = ("Nov 21 10:00:27 mx postfix/smtpd[1]: warning: unknown[192.0.2.1]: SASL LOGIN "
           "authentication failed: \r\nBcc: victim@example.org",
           "sasl_username=$(rm -rf /)",
           "helo=`touch /tmp/pwned`",
           "user=\x00\x1b[2J\u202eevil\u2028Subject: spoofed")


def make_block(target: str = "192.0.2.1", since: float = NOW, seconds: float = 7200.0,
               nth: int = 1) -> Block:
    return Block(target, since, since + seconds, "score", 30,
                 ("postfix.sasl", "dovecot.auth-failed"), nth, 30)


def headers(message: EmailMessage) -> list[tuple[str, str]]:
    return [(name, str(value)) for name, value in message.items()]


def reparsed(message: EmailMessage) -> EmailMessage:
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")  # as received over SMTP: CRLF


# ------------------------------------------------------------ configuration

def notify_config(**values: object) -> NotifyConfig:
    """A [notify] table, checked by the configuration's schema like the daemon's."""
    return NotifyConfig.from_mapping(values)


def test_config_defaults_send_nothing() -> None:
    config = notify_config()
    assert (config.mail_to, config.exec_argv) == ((), ())
    assert (config.smtp_host, config.smtp_port, config.max_mails_per_hour) == ("localhost", 25, 12)


def test_config_takes_lists_as_tuples() -> None:
    config = notify_config(mail_to=[TO], exec_argv=["/usr/local/bin/on-block", "--"])
    assert config.mail_to == (TO,)
    assert config.exec_argv == ("/usr/local/bin/on-block", "--")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mail_to": 25}, "notify.mail_to: must be a list of strings"),
    ({"mail_to": ["root"]}, 'notify.mail_to: "root" is not a mail address'),
    ({"mail_to": ["a@example.org\r\nBcc: victim@example.org"]}, "is not a mail address"),
    ({"mail_to": ["a@example.org, b@example.org"]}, "is not a mail address"),
    ({"mail_to": [25]}, "mail_to: must be a list of strings"),
    ({"mail_from": "Syslogban <s@example.org>"}, "mail_from: .* is not a mail address"),
    ({"smtp_host": "mail host"}, 'smtp_host: "mail host" is not a host name'),
    ({"smtp_host": 25}, "smtp_host: 25 is not a host name"),
    ({"smtp_port": 0}, "smtp_port: must be a whole number from 1 to 65535"),
    ({"smtp_port": 65536}, "smtp_port"),
    ({"smtp_port": True}, "smtp_port"),
    ({"smtp_port": "twenty"}, "smtp_port: must be a whole number"),
    ({"smtp_timeout": 0}, "smtp_timeout"),
    ({"exec_timeout": math.nan}, "exec_timeout"),
    ({"exec_timeout": "soon"}, "exec_timeout: .soon. is not a duration"),
    ({"max_mails_per_hour": -1}, "max_mails_per_hour"),
    ({"digest_hour": 24}, "digest_hour: must be a whole number from 0 to 23"),
    ({"digest": "maybe"}, "digest: must be true or false"),
    ({"exec_concurrency": 0}, "exec_concurrency"),
    ({"exec_argv": ["on-block"]}, "must be an absolute path"),
    ({"exec_argv": ["sh", "-c", "echo"]}, "must be an absolute path"),
    ({"exec_argv": ["/bin/hook", "a\0b"]}, "NUL"),
    ({"mail_too": "a@example.org"}, r"notify.mail_too: unknown key in \[notify\] \(did you mean mail_to"),
])
def test_config_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        notify_config(**kwargs)


def test_config_from_mapping_converts_flag_strings() -> None:
    config = notify_config(mail_to="a@example.org, b@example.org", smtp_port="2525",
                           digest="yes", smtp_timeout="5s", exec_timeout=60,
                           exec_argv=["/usr/local/bin/on-block"], max_mails_per_hour=3)
    assert config == notify_config(mail_to=["a@example.org", "b@example.org"], smtp_port=2525,
                                   digest=True, smtp_timeout=5.0, exec_timeout=60.0,
                                   exec_argv=["/usr/local/bin/on-block"], max_mails_per_hour=3)
    assert config.smtp_timeout == 5.0 and config.exec_argv == ("/usr/local/bin/on-block",)


# ------------------------------------------------------------ the pure core

def test_rate_limiter_is_a_sliding_hour() -> None:
    limiter = RateLimiter(3)
    assert [limiter.take(NOW + t) for t in (0, 10, 20, 30)] == [True, True, True, False]
    assert not limiter.take(NOW + 3599)
    assert limiter.take(NOW + 3600)       # the first send left the window
    assert not limiter.take(NOW + 3605)
    assert limiter.take(NOW + 3610)       # ... and the second
    assert not RateLimiter(0).take(NOW)


@pytest.mark.parametrize(("text", "shown"), [
    ("plain text, ä, 日本語", "plain text, ä, 日本語"),
    ("a\r\nBcc: x@example.org", "a\\r\\nBcc: x@example.org"),
    ("tab\there", "tab\\there"),
    ("\x00\x1b[31m\x7f", "\\x00\\x1b[31m\\x7f"),
    ("\u202eevil\u2028next\u200b", "\\u202eevil\\u2028next\\u200b"),
    ("bad utf-8 \udcff", "bad utf-8 \\udcff"),
    ("$(rm -rf /) `id`", "$(rm -rf /) `id`"),  # printable: inert text in a mail body
])
def test_printable(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_printable_cuts_long_lines() -> None:
    assert printable("x" * MAX_LINE) == "x" * MAX_LINE
    assert printable("x" * (MAX_LINE + 1)) == "x" * (MAX_LINE - 1) + "…"
    assert printable("\x1b" * MAX_LINE) == ("\\x1b" * MAX_LINE)[:MAX_LINE - 1] + "…"


@PROPERTY
@given(st.text())
def test_printable_is_printable_short_and_idempotent(text: str) -> None:
    shown = printable(text, 50)
    assert shown.isprintable()
    assert len(shown) <= 50
    assert printable(shown, 50) == shown


def test_next_digest_time_once_a_day_at_the_hour() -> None:
    assert next_digest_time(at(2026, 11, 21, 7, 59), 8, UTC) == at(2026, 11, 21, 8)
    assert next_digest_time(at(2026, 11, 21, 8), 8, UTC) == at(2026, 11, 22, 8)
    assert next_digest_time(at(2026, 11, 21, 23, 30), 0, UTC) == at(2026, 11, 22, 0)
    # 08:00 local time on both sides of a change to summer time.
    assert next_digest_time(at(2026, 3, 28, 9, tz=BERLIN), 8, BERLIN) \
        == at(2026, 3, 29, 8, tz=BERLIN) == at(2026, 3, 29, 6)


def test_block_mail_headers_are_exact() -> None:
    message = compose_block_mail(make_block(), ["a line"], MAIL, NOW + 1, UTC)
    assert headers(message) == [
        ("From", FROM), ("To", TO), ("Subject", "syslogban: blocked 192.0.2.1 for 2h"),
        ("Date", "Sat, 21 Nov 2026 10:00:01 +0000"), ("Auto-Submitted", "auto-generated"),
        ("Content-Type", 'text/plain; charset="utf-8"'),
        ("Content-Transfer-Encoding", "7bit"), ("MIME-Version", "1.0")]


def test_block_mail_body_has_the_facts() -> None:
    config = notify_config(mail_to=(TO, "abuse@example.org"), mail_from=FROM)
    message = compose_block_mail(make_block(nth=3), ["first", "second"], config, NOW, BERLIN)
    assert message["To"] == f"{TO}, abuse@example.org"
    assert body(message) == (
        "syslogban blocked 192.0.2.1 for 2h.\n"
        "\n"
        "Target:          192.0.2.1\n"
        "Reason:          score\n"
        "Score:           30\n"
        "Signatures:      postfix.sasl, dovecot.auth-failed\n"
        "Since:           2026-11-21T11:00:00+01:00\n"
        "Until:           2026-11-21T13:00:00+01:00\n"
        "Block:           number 3 of this target\n"
        "Lifetime danger: 30\n"
        "\n"
        "Evidence (the last log lines; characters that are not printable are escaped):\n"
        "    first\n"
        "    second\n")


def test_block_mail_of_a_permanent_prefix() -> None:
    block = make_block("2001:db8::/64", seconds=math.inf)
    message = compose_block_mail(block, [], MAIL, NOW, UTC)
    assert message["Subject"] == "syslogban: blocked 2001:db8::/64 permanently"
    assert "Until:           permanent\n" in body(message)
    assert "    (none)\n" in body(message)


def test_hostile_evidence_stays_escaped_in_the_body() -> None:
    message = compose_block_mail(make_block(), HOSTILE, MAIL, NOW, UTC)
    parsed = reparsed(message)
    assert headers(parsed) == headers(message)
    assert parsed["Bcc"] is None and parsed["Subject"] == "syslogban: blocked 192.0.2.1 for 2h"
    text = body(parsed)
    evidence = text.split("escaped):\n", 1)[1].splitlines()
    assert evidence == [
        "    Nov 21 10:00:27 mx postfix/smtpd[1]: warning: unknown[192.0.2.1]: SASL LOGIN "
        "authentication failed: \\r\\nBcc: victim@example.org",
        "    sasl_username=$(rm -rf /)",
        "    helo=`touch /tmp/pwned`",
        "    user=\\x00\\x1b[2J\\u202eevil\\u2028Subject: spoofed"]
    raw = message.as_bytes()
    assert b"\r\nBcc:" not in raw and b"\nBcc:" not in raw and b"\x1b" not in raw


def test_block_mail_keeps_the_last_lines_cut() -> None:
    evidence = [f"line {i}" for i in range(30)] + ["y" * 5000]
    text = body(compose_block_mail(make_block(), evidence, MAIL, NOW, UTC))
    lines = text.split("escaped):\n", 1)[1].splitlines()
    assert lines == [f"    line {i}" for i in range(21, 30)] + ["    " + "y" * (MAX_LINE - 1) + "…"]


@pytest.mark.parametrize("target", [
    "192.0.2.1\r\nBcc: victim@example.org", "192.0.2.1; touch /tmp/pwned", "$(id)",
    "-rf", "mail.example.org", "",
])
def test_invalid_targets_reach_no_header_and_no_argv(target: str) -> None:
    block = make_block(target)
    config = notify_config(exec_argv=("/usr/local/bin/on-block",))
    for compose in (lambda: compose_block_mail(block, [], MAIL, NOW),
                    lambda: compose_digest([DigestEntry.of(block, [], False)], MAIL, NOW, NOW),
                    lambda: hook_argv(config, block), lambda: hook_env(block)):
        with pytest.raises(ValueError):
            compose()


def test_digest_lists_blocks_marks_new_ones_and_counts_the_rest() -> None:
    entries = [DigestEntry.of(make_block("192.0.2.1"), ["old", "a\r\nBcc: x@example.org"], True),
               DigestEntry.of(make_block("198.51.100.0/24", NOW + 60, math.inf),
                              [f"l{i}" for i in range(9)], False)]
    config = notify_config(mail_to=(TO,), mail_from=FROM, max_mails_per_hour=5)
    message = compose_digest(entries, config, at(2026, 11, 21, 8), NOW + 120, 7, UTC)
    assert message["Subject"] == "syslogban: 9 blocks since 2026-11-21 08:00"
    assert [name for name, _ in headers(reparsed(message))] == [
        "From", "To", "Subject", "Date", "Auto-Submitted", "Content-Type",
        "Content-Transfer-Encoding", "MIME-Version"]
    assert body(message) == (
        "syslogban blocked 9 blocks from 2026-11-21T08:00:00+00:00 to 2026-11-21T10:02:00+00:00.\n"
        "1 block marked [new] had no mail of their own before this one (the rate limit of "
        "5 mails an hour held it back, or it failed).\n"
        f"The last 7 blocks are not listed (a digest lists at most {DIGEST_LIMIT}); "
        "`syslogban list` shows every active block.\n"
        "\n"
        "192.0.2.1 for 2h since 2026-11-21T10:00:00+00:00: score 30 from "
        "postfix.sasl, dovecot.auth-failed\n"
        "    old\n"
        "    a\\r\\nBcc: x@example.org\n"
        "\n"
        "198.51.100.0/24 permanently since 2026-11-21T10:01:00+00:00: score 30 from "
        "postfix.sasl, dovecot.auth-failed [new]\n"
        "    l6\n"
        "    l7\n"
        "    l8\n")


def test_hook_argv_and_env_hold_facts_only() -> None:
    config = notify_config(exec_argv=("/usr/local/bin/on-block", "--"))
    assert hook_argv(config, make_block("2001:db8::/64")) == (
        "/usr/local/bin/on-block", "--", "2001:db8::/64")
    assert hook_env(make_block(since=1_800_000_000.5)) == {
        "SYSLOGBAN_TARGET": "192.0.2.1", "SYSLOGBAN_REASON": "score",
        "SYSLOGBAN_UNTIL": "1800007200", "PATH": HOOK_PATH,
        "SYSLOGBAN_SIGNATURES": "postfix.sasl,dovecot.auth-failed"}
    assert hook_env(make_block(seconds=math.inf))["SYSLOGBAN_UNTIL"] == "permanent"


# ------------------------------------------------------- mail, for real

class Sink:
    """An SMTP server's mailbox: every message it accepted."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: object, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    @property
    def messages(self) -> list[EmailMessage]:
        parsed = [message_from_bytes(e.content, policy=policy.default)  # type: ignore[arg-type]
                  for e in self.envelopes]
        return [m for m in parsed if isinstance(m, EmailMessage)]

    @property
    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


@asynccontextmanager
async def smtp_sink(sink: Sink, port: int = 0) -> AsyncIterator[int]:
    """An aiosmtpd server on 127.0.0.1 in the running loop; yields its port."""
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(sink, hostname="sink.test"), "127.0.0.1", port)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def mail_config(port: int, **kwargs: object) -> NotifyConfig:
    return notify_config(mail_to=(TO,), mail_from=FROM, smtp_host="127.0.0.1",
                        smtp_port=port, smtp_timeout=5.0, **kwargs)  # type: ignore[arg-type]


def test_smtp_round_trip() -> None:
    async def main() -> Sink:
        sink = Sink()
        async with smtp_sink(sink) as port:
            notifier = Notifier(mail_config(port), NOW, UTC)
            await notifier.on_block(make_block(), HOSTILE, NOW)
            await notifier.close()
            assert notifier.counters.mails_sent == 1
        return sink

    sink = asyncio.run(main())
    [envelope] = sink.envelopes
    assert (envelope.mail_from, envelope.rcpt_tos) == (FROM, [TO])
    [message] = sink.messages
    assert (message["From"], message["To"]) == (FROM, TO)
    assert message["Subject"] == "syslogban: blocked 192.0.2.1 for 2h"
    assert message["Message-ID"].endswith("@mx.example.org>")
    assert message["Bcc"] is None
    text = body(message)
    assert "Signatures:      postfix.sasl, dovecot.auth-failed\n" in text
    assert "    sasl_username=$(rm -rf /)\n" in text
    assert "failed: \\r\\nBcc: victim@example.org\n" in text


def test_default_sender_is_this_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getfqdn", lambda name="": "mx.example.org")

    async def main() -> Sink:
        sink = Sink()
        async with smtp_sink(sink) as port:
            config = notify_config(mail_to=(TO,), smtp_host="127.0.0.1", smtp_port=port)
            await Notifier(config, NOW, UTC).on_block(make_block(), [], NOW)
        return sink

    sink = asyncio.run(main())
    assert sink.envelopes[0].mail_from == "syslogban@mx.example.org"
    assert sink.messages[0]["From"] == "syslogban@mx.example.org"


def test_rate_limit_holds_the_13th_block_for_the_next_digest() -> None:
    async def main() -> tuple[Sink, Notifier]:
        sink = Sink()
        async with smtp_sink(sink) as port:
            notifier = Notifier(mail_config(port), NOW, UTC)
            for i in range(14):  # one a minute: 12 mails, then the limit
                await notifier.on_block(make_block(f"192.0.2.{i + 1}", NOW + 60 * i), [f"e{i}"],
                                        NOW + 60 * i)
            assert len(sink.envelopes) == 12 and notifier.counters.mails_held == 2
            await notifier.tick(NOW + 3599)  # the first mail is still in the window
            assert len(sink.envelopes) == 12
            await notifier.tick(NOW + 3600)  # a slot: the held blocks leave in one digest
            await notifier.tick(NOW + 3601)
            assert len(sink.envelopes) == 13
            later = NOW + 3600 + 60 * 12
            await notifier.on_block(make_block("203.0.113.9", later), [], later)
            return sink, notifier

    sink, notifier = asyncio.run(main())
    assert sink.subjects[:12] == [f"syslogban: blocked 192.0.2.{i + 1} for 2h" for i in range(12)]
    assert sink.subjects[12:] == ["syslogban: 2 blocks since 2026-11-21 10:00",
                                  "syslogban: blocked 203.0.113.9 for 2h"]
    digest = body(sink.messages[12])
    assert "192.0.2.13 for 2h since 2026-11-21T10:12:00+00:00: score 30 from postfix.sasl, " \
           "dovecot.auth-failed [new]\n    e12\n" in digest
    assert "192.0.2.14 for 2h" in digest and "192.0.2.12 " not in digest
    assert (notifier.counters.mails_sent, notifier.counters.mails_held) == (14, 2)


def test_daily_digest_at_its_hour_lists_mailed_and_held_blocks() -> None:
    day = at(2026, 11, 21, 7)

    async def main() -> tuple[Sink, Notifier]:
        sink = Sink()
        async with smtp_sink(sink) as port:
            config = mail_config(port, digest=True, max_mails_per_hour=1)
            notifier = Notifier(config, day, UTC)
            await notifier.on_block(make_block("192.0.2.1", day + 600), ["one"], day + 600)
            await notifier.on_block(make_block("192.0.2.2", day + 1200), ["two"], day + 1200)
            for hour in (7.99, 8, 8.5, 23, 24 + 8):  # the next day's 08:00 has nothing to say
                await notifier.tick(day - 7 * 3600 + hour * 3600)
            assert len(sink.envelopes) == 2
            third = day + 86400 + 7200
            await notifier.on_block(make_block("192.0.2.3", third), ["three"], third)
            await notifier.tick(day + 2 * 86400 + 3600)
            return sink, notifier

    sink, notifier = asyncio.run(main())
    assert sink.subjects == ["syslogban: blocked 192.0.2.1 for 2h",
                             "syslogban: 2 blocks since 2026-11-21 07:00",
                             "syslogban: blocked 192.0.2.3 for 2h",
                             "syslogban: 1 block since 2026-11-22 08:00"]
    first = body(sink.messages[1])
    assert "dovecot.auth-failed\n    one\n" in first
    assert "dovecot.auth-failed [new]\n    two\n" in first
    assert "192.0.2.3 for 2h since 2026-11-22T09:00:00+00:00" in body(sink.messages[3])
    assert (notifier.counters.mails_sent, notifier.counters.mails_held) == (4, 1)


def test_no_mails_per_hour_means_the_digest_only() -> None:
    async def main() -> Sink:
        sink = Sink()
        async with smtp_sink(sink) as port:
            notifier = Notifier(mail_config(port, digest=True, max_mails_per_hour=0), NOW, UTC)
            for i in range(50):
                await notifier.on_block(make_block(f"192.0.2.{i}", NOW + i), [], NOW + i)
            await notifier.tick(at(2026, 11, 22, 8))
        return sink

    sink = asyncio.run(main())
    assert sink.subjects == ["syslogban: 50 blocks since 2026-11-21 10:00"]
    assert body(sink.messages[0]).count(" [new]\n") == 50


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_smtp_down_is_counted_and_the_next_mail_still_tried(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="syslogban.notify")
    port = free_port()  # nothing listens there yet

    async def main() -> tuple[Sink, Notifier]:
        notifier = Notifier(mail_config(port), NOW, UTC)
        await notifier.on_block(make_block("192.0.2.1"), ["one"], NOW)
        await notifier.tick(NOW + 30)  # tried again, as a digest, within the rate limit
        await notifier.on_block(make_block("192.0.2.2", NOW + 60), ["two"], NOW + 60)
        assert (notifier.counters.mails_failed, notifier.counters.mails_sent) == (2, 0)
        sink = Sink()
        async with smtp_sink(sink, port):
            await notifier.tick(NOW + 120)
            await notifier.on_block(make_block("192.0.2.3", NOW + 180), [], NOW + 180)
        return sink, notifier

    sink, notifier = asyncio.run(main())
    assert (notifier.counters.mails_failed, notifier.counters.mails_sent) == (2, 2)
    assert notifier.counters.mails_held == 1  # queued behind the first
    assert sink.subjects == ["syslogban: 2 blocks since 2026-11-21 10:00",
                             "syslogban: blocked 192.0.2.3 for 2h"]
    assert [line for line in body(sink.messages[0]).splitlines() if line.endswith("[new]")] == [
        f"192.0.2.{i} for 2h since 2026-11-21T10:0{i - 1}:00+00:00: score 30 from "
        "postfix.sasl, dovecot.auth-failed [new]" for i in (1, 2)]
    failures = [r.getMessage() for r in caplog.records if r.name == "syslogban.notify"]
    assert [f.split(" failed: ")[0] for f in failures] == [
        f"mail 'syslogban: blocked 192.0.2.1 for 2h' via 127.0.0.1:{port}",
        f"mail 'syslogban: 1 block since 2026-11-21 10:00' via 127.0.0.1:{port}"]


# ------------------------------------------------------- the hook, for real

def script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def recorder(tmp_path: Path) -> tuple[Path, Path]:
    """A hook that appends its argv and environment to calls.jsonl."""
    calls = tmp_path / "calls.jsonl"
    hook = script(tmp_path / "on-block", f"""#!{sys.executable}
import json, os, sys
with open({str(calls)!r}, "a") as out:
    out.write(json.dumps({{"argv": sys.argv, "env": dict(os.environ)}}) + "\\n")
""")
    return hook, calls


def run_hooks(config: NotifyConfig, blocks: Sequence[Block],
              evidence: Sequence[str] = HOSTILE) -> Notifier:
    async def main() -> Notifier:
        notifier = Notifier(config, NOW, UTC)
        for block in blocks:
            await notifier.on_block(block, evidence, NOW)
        await notifier.close()
        return notifier
    return asyncio.run(main())


def test_hook_gets_the_target_as_one_argument_and_no_evidence(tmp_path: Path) -> None:
    hook, calls = recorder(tmp_path)
    marker = f"EVIDENCE $(touch {tmp_path}/pwned) `touch {tmp_path}/pwned2`"
    config = notify_config(exec_argv=(str(hook), "--"))
    blocks = [make_block("192.0.2.1"), make_block("2001:db8::/64", seconds=math.inf)]
    notifier = run_hooks(config, blocks, [*HOSTILE, marker])
    assert (notifier.counters.hooks_run, notifier.counters.hooks_failed) == (2, 0)
    records = sorted((json.loads(line) for line in calls.read_text().splitlines()),
                     key=lambda r: r["argv"][-1])
    assert [r["argv"] for r in records] == [[str(hook), "--", "192.0.2.1"],
                                            [str(hook), "--", "2001:db8::/64"]]
    # Python may add LC_CTYPE to its own environment (PEP 538 locale coercion).
    envs = [{k: v for k, v in r["env"].items() if k != "LC_CTYPE"} for r in records]
    assert envs == [hook_env(block) for block in blocks]
    seen = calls.read_text()
    assert "EVIDENCE" not in seen and "rm -rf" not in seen and "Bcc" not in seen
    assert not list(tmp_path.glob("pwned*"))


def test_invalid_target_runs_no_hook_and_sends_no_mail(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    hook, calls = recorder(tmp_path)
    config = notify_config(mail_to=(TO,), smtp_port=free_port(), exec_argv=(str(hook),))
    notifier = run_hooks(config, [make_block(f"192.0.2.1 $(touch {tmp_path}/pwned)"),
                                  make_block("-rf\n192.0.2.1")])
    assert notifier.counters == notify.NotifyCounters()
    assert not calls.exists() and not (tmp_path / "pwned").exists()
    assert [r.getMessage() for r in caplog.records] == [
        "not notifying about a block of an invalid target "
        f"'192.0.2.1 $(touch {tmp_path}/pwned)'",
        "not notifying about a block of an invalid target '-rf\\n192.0.2.1'"]


def process_gone(pid: int) -> bool:
    """Whether a process has ended (a zombie counts: it runs no more)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_hook_timeout_kills_it_and_its_children(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pidfile = tmp_path / "child.pid"
    hook = script(tmp_path / "hang", f"#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\nwait\n")
    started = time.monotonic()
    notifier = run_hooks(notify_config(exec_argv=(str(hook),), exec_timeout=0.5),
                         [make_block()])
    assert time.monotonic() - started < 10
    assert (notifier.counters.hooks_run, notifier.counters.hooks_failed) == (0, 1)
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while not process_gone(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process_gone(child)
    assert "exec hook for 192.0.2.1 failed (killed after 0.5s)" in caplog.text


def test_hook_concurrency_limit_skips_and_counts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    release = tmp_path / "release"
    hook = script(tmp_path / "slow", f"""#!{sys.executable}
import os, time
deadline = time.monotonic() + 20
while not os.path.exists({str(release)!r}) and time.monotonic() < deadline:
    time.sleep(0.01)
""")
    config = notify_config(exec_argv=(str(hook),), exec_concurrency=2)

    async def main() -> Notifier:
        notifier = Notifier(config, NOW, UTC)
        for i in range(5):
            await notifier.on_block(make_block(f"192.0.2.{i}"), [], NOW)
        assert notifier.counters.hooks_skipped == 3
        release.touch()
        await notifier.close()
        await notifier.on_block(make_block("192.0.2.9"), [], NOW)
        await notifier.close()
        return notifier

    notifier = asyncio.run(main())
    assert (notifier.counters.hooks_run, notifier.counters.hooks_skipped) == (3, 3)
    assert [r.getMessage() for r in caplog.records] == [
        "exec hook: 2 hooks still running (exec_concurrency); skipping the hook for "
        "192.0.2.2 and later blocks until one ends",
        "exec hook: skipped for 3 blocks while busy"]


def test_hook_failures_are_counted_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    hook = script(tmp_path / "fail", "#!/bin/sh\nprintf 'boom\\033[2J\\n'\nexit 3\n")
    notifier = run_hooks(notify_config(exec_argv=(str(hook),)), [make_block()])
    missing = run_hooks(notify_config(exec_argv=(str(tmp_path / "missing"),)), [make_block()])
    assert (notifier.counters.hooks_run, notifier.counters.hooks_failed) == (0, 1)
    assert (missing.counters.hooks_run, missing.counters.hooks_failed) == (0, 1)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "exec hook for 192.0.2.1 failed (exit status 3): boom\\x1b[2J\\n"
    assert messages[1].startswith("exec hook for 192.0.2.1 failed (cannot start: ")


def test_hook_output_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syslogban.notify")
    hook = script(tmp_path / "chatty", "#!/bin/sh\necho \"blocked $1 until $SYSLOGBAN_UNTIL\"\n")
    notifier = run_hooks(notify_config(exec_argv=(str(hook),)), [make_block()])
    assert notifier.counters.hooks_run == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"exec hook for 192.0.2.1: blocked 192.0.2.1 until {int(NOW + 7200)}\\n"]
