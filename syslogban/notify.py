"""Notifications of blocks: a mail per block, a daily digest, an exec hook.

Rules of this file:
* The core is pure: NotifyConfig, RateLimiter, next_digest_time, the
  compose_* functions and hook_argv/hook_env take the time as an argument and
  return values. Notifier is the shell around them: SMTP (in a worker thread,
  so the event loop never waits for a mail server), subprocesses, logging.
* No shell, anywhere, and no log text in any command. fail2ban's mail-whois
  action piped whois output, which the attacker controls, through a shell into
  mail(1), whose `~!` escapes ran it: remote code execution, CVE-2021-32749.
  Here mail leaves through smtplib; the hook is exec'd from an argv with the
  address as an argument of its own and an environment built from the Block
  alone. No whois and no DNS about the attacker, either.
* Log lines (the evidence) are attacker text: user names, HELO names. They go
  only into the body of a mail, each line cut at display.MAX_LINE characters with every
  character that is not printable escaped; never into a header, never to the
  hook. Headers are set through the email API, which refuses line breaks.
* The target is checked again (normal_target) before it enters a subject or an
  argv: an address or prefix holds no space, quote, `$`, newline or leading `-`.
* A flood must not become a mail bomb: at most max_mails_per_hour mails leave
  in any hour (and the daily digest). Blocks beyond that are held for the next
  digest, never dropped; so are blocks whose own mail failed.

Theory of operation: every block starts the hook (unless exec_concurrency hooks
are still running: then it is skipped and counted) and asks the rate limiter
for a mail. With `digest` on, every block also waits in the daily digest, sent
at digest_hour whether or not the limiter has room; max_mails_per_hour = 0
then means "the digest only". With `digest` off, only blocks without a mail
of their own (held, or their mail failed) wait: as soon as the limiter has room
they leave together in one digest, and new blocks queue behind them, so a long
flood (or a mail server that is down) costs at most max_mails_per_hour mails
(or attempts) an hour. A digest lists at most DIGEST_LIMIT blocks and counts
the rest; one that fails to send keeps its blocks for the next one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import smtplib
import socket
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from .blocker import Block, normal_target
from .display import because, printable
from .durations import format_duration

log = logging.getLogger("syslogban.notify")

HOUR = 3600.0
EVIDENCE_LINES = 10        # the last lines of evidence in a block mail
DIGEST_EVIDENCE_LINES = 3  # ... and for each block of a digest
DIGEST_LIMIT = 1000        # blocks listed in one digest; the rest are counted
HOOK_OUTPUT = 2000         # bytes of a hook's output kept for the log
HOOK_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


# ------------------------------------------------------------ configuration

@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """The [notify] table, checked by the configuration's schema (config.py),
    which holds the keys, their defaults and what a value may be."""

    mail_to: tuple[str, ...]       # empty: no mail
    mail_from: str                 # empty: syslogban@<this host's FQDN>
    smtp_host: str
    smtp_port: int
    smtp_timeout: float
    max_mails_per_hour: int        # beyond: held for the next digest
    digest: bool                   # a summary mail every day at digest_hour
    digest_hour: int               # local time
    exec_argv: tuple[str, ...]     # empty: no hook; the target is appended
    exec_timeout: float
    exec_concurrency: int

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> NotifyConfig:
        """From the [notify] table, or --notify KEY=VALUE flags (strings, lists
        comma-separated, durations as `30s`); raises ConfigError."""
        from .config import parse_table
        return cls(**parse_table("notify", table))


# ------------------------------------------------------------ the pure core

@dataclass(slots=True)
class RateLimiter:
    """At most `limit` mails in any `window` seconds (a sliding window)."""

    limit: int
    window: float = HOUR
    sent: deque[float] = field(default_factory=deque)

    def take(self, now: float) -> bool:
        """Whether a mail may leave now; if so, it is counted."""
        while self.sent and self.sent[0] <= now - self.window:
            self.sent.popleft()
        if len(self.sent) >= self.limit:
            return False
        self.sent.append(now)
        return True


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """A block waiting for the digest, its evidence already made safe and short."""

    block: Block
    evidence: tuple[str, ...]
    mailed: bool  # False: its own mail was held back by the rate limit, or failed

    @classmethod
    def of(cls, block: Block, evidence: Sequence[str], mailed: bool) -> DigestEntry:
        return cls(block, safe_evidence(evidence, DIGEST_EVIDENCE_LINES), mailed)


def safe_evidence(evidence: Sequence[str], lines: int) -> tuple[str, ...]:
    """The last `lines` lines of evidence, each made printable and cut."""
    return tuple(printable(line) for line in list(evidence)[-lines:])


def next_digest_time(after: float, hour: int, tz: tzinfo | None = None) -> float:
    """The first `hour`:00 strictly after `after`, local time in `tz` (None: the system's)."""
    due = datetime.fromtimestamp(after, tz).replace(hour=hour, minute=0, second=0,
                                                    microsecond=0)
    if due.timestamp() <= after:
        due += timedelta(days=1)  # wall-clock arithmetic: 08:00 stays 08:00 across DST
    return due.timestamp()


def compose_block_mail(block: Block, evidence: Sequence[str], config: NotifyConfig,
                       now: float, tz: tzinfo | None = None) -> EmailMessage:
    """The mail about one block. Headers hold only the config, the validated
    target and the duration; the evidence is made safe in the body.

    From is left out when config.mail_from is empty: the sender fills it in.
    """
    target = normal_target(block.target)
    message = _message(config, f"syslogban: blocked {target} {_for(block)}", now, tz)
    body = [f"syslogban blocked {target} {_for(block)}.", "", *_facts(block, tz), "",
            "Evidence (the last log lines; characters that are not printable are escaped):",
            *_indented(evidence, EVIDENCE_LINES)]
    message.set_content("\n".join(body) + "\n")
    return message


def compose_digest(entries: Sequence[DigestEntry], config: NotifyConfig, since: float,
                   now: float, unlisted: int = 0, tz: tzinfo | None = None) -> EmailMessage:
    """One mail listing the blocks decided since `since` (and `unlisted` more,
    counted but not listed)."""
    total = len(entries) + unlisted
    new = sum(not entry.mailed for entry in entries)
    subject = f"syslogban: {_blocks(total)} since {_local(since, tz):%Y-%m-%d %H:%M}"
    message = _message(config, subject, now, tz)
    body = [f"syslogban blocked {_blocks(total)} from {_iso(since, tz)} to {_iso(now, tz)}."]
    if new:
        body.append(f"{_blocks(new)} marked [new] had no mail of their own before this one "
                    f"(the rate limit of {config.max_mails_per_hour} mails an hour held it "
                    "back, or it failed).")
    if unlisted:
        body.append(f"The last {_blocks(unlisted)} are not listed (a digest lists at most "
                    f"{DIGEST_LIMIT}); `syslogban list` shows every active block.")
    for entry in entries:
        body += ["", _summary(entry, tz), *_indented(entry.evidence, DIGEST_EVIDENCE_LINES)]
    message.set_content("\n".join(body) + "\n")
    return message


def hook_argv(config: NotifyConfig, block: Block) -> tuple[str, ...]:
    """The hook's argv: the configured one, then the validated target as one argument."""
    return (*config.exec_argv, normal_target(block.target))


def hook_env(block: Block) -> dict[str, str]:
    """The hook's whole environment: facts of the block, never log text."""
    return {"SYSLOGBAN_TARGET": normal_target(block.target),
            "SYSLOGBAN_REASON": block.reason,
            "SYSLOGBAN_UNTIL": "permanent" if block.permanent else str(int(block.until)),
            "SYSLOGBAN_SIGNATURES": ",".join(block.signatures),
            "PATH": HOOK_PATH}


def _message(config: NotifyConfig, subject: str, now: float,
             tz: tzinfo | None) -> EmailMessage:
    message = EmailMessage()
    if config.mail_from:
        message["From"] = config.mail_from
    message["To"] = ", ".join(config.mail_to)
    message["Subject"] = subject
    message["Date"] = format_datetime(_local(now, tz))
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to it
    return message


def _facts(block: Block, tz: tzinfo | None) -> list[str]:
    facts = (("Target", block.target), ("Reason", block.reason), ("Score", block.score),
             ("Signatures", ", ".join(block.signatures) or "-"),
             ("Since", _iso(block.since, tz)),
             ("Until", "permanent" if block.permanent else _iso(block.until, tz)),
             ("Block", f"number {block.nth} of this target"),
             ("Lifetime danger", block.lifetime))
    return [f"{label + ':':<17}{value}" for label, value in facts]


def _summary(entry: DigestEntry, tz: tzinfo | None) -> str:
    block = entry.block
    return (f"{normal_target(block.target)} {_for(block)} since {_iso(block.since, tz)}: "
            + because(block.reason, block.score, block.signatures, block.lifetime,
                      block.origin)
            + ("" if entry.mailed else " [new]"))


def _indented(evidence: Sequence[str], lines: int) -> list[str]:
    return [f"    {line}" for line in safe_evidence(evidence, lines)] or ["    (none)"]


def _for(block: Block) -> str:
    return "permanently" if block.permanent else f"for {format_duration(block.until - block.since)}"


def _blocks(count: int) -> str:
    return f"{count} block" if count == 1 else f"{count} blocks"


def _local(t: float, tz: tzinfo | None) -> datetime:
    return datetime.fromtimestamp(t, UTC).astimezone(tz)


def _iso(t: float, tz: tzinfo | None) -> str:
    return _local(t, tz).isoformat(timespec="seconds")


# ------------------------------------------------------- the imperative shell

@dataclass(slots=True)
class NotifyCounters:
    mails_sent: int = 0     # block mails and digests the SMTP server accepted
    mails_failed: int = 0   # ... and those it did not (or could not be reached)
    mails_held: int = 0     # blocks held for the digest by the rate limit (or queued
                            # behind blocks waiting for it), without a mail of their own
    hooks_run: int = 0      # hooks that exited with status 0 in time
    hooks_failed: int = 0   # hooks that could not start, exited non-zero or were killed
    hooks_skipped: int = 0  # blocks without a hook: exec_concurrency hooks were running


class Notifier:
    """Sends what the core composes and runs the hook; never raises.

    `on_block` waits for its mail (sent in a worker thread, bounded by
    smtp_timeout), not for the hook; run it as a task to wait for neither.
    Call `tick` now and then (a minute apart is plenty): it sends the digests,
    the daily one and that of blocks waiting for the rate limit.
    """

    def __init__(self, config: NotifyConfig, now: float, tz: tzinfo | None = None) -> None:
        self.config = config
        self.counters = NotifyCounters()
        self._tz = tz
        self._limiter = RateLimiter(config.max_mails_per_hour)
        self._pending: list[DigestEntry] = []
        self._unlisted = 0                    # pending blocks beyond DIGEST_LIMIT
        self._since = now                     # of the pending digest
        self._next_digest = next_digest_time(now, config.digest_hour, tz)
        self._hooks: set[asyncio.Task[None]] = set()
        self._skipped_in_a_row = 0

    async def on_block(self, block: Block, evidence: Sequence[str], now: float) -> None:
        """Notifies about a block: the hook, a mail or a place in the digest."""
        try:
            normal_target(block.target)
        except ValueError:
            log.error("not notifying about a block of an invalid target %s",
                      printable(repr(block.target), 100))
            return
        try:
            self._start_hook(block)
            if self.config.mail_to:
                await self._mail_block(block, evidence, now)
        except Exception:  # a bug in notifying must not stop the daemon
            log.exception("notifying about the block of %s failed", block.target)

    async def tick(self, now: float) -> None:
        """Sends the digest when it is due."""
        if not self.config.mail_to:
            return
        try:
            await self._send_digest_if_due(now)
        except Exception:  # a bug in notifying must not stop the daemon
            log.exception("sending the digest failed")

    async def close(self) -> None:
        """Waits for the running hooks (each ends within exec_timeout)."""
        await asyncio.gather(*self._hooks, return_exceptions=True)

    # ------------------------------------------------------------ mail

    async def _mail_block(self, block: Block, evidence: Sequence[str], now: float) -> None:
        # Without a daily digest, blocks waiting for one leave first: new ones queue behind.
        waiting = self._pending or self._unlisted
        if (self.config.digest or not waiting) and self._limiter.take(now):
            mailed = await self._send(compose_block_mail(block, evidence, self.config, now,
                                                         self._tz))
        else:
            mailed = False
            self.counters.mails_held += 1
            log.info("mail about %s held back by the rate limit for the next digest",
                     block.target)
        if self.config.digest or not mailed:
            self._add_pending(DigestEntry.of(block, evidence, mailed))

    def _add_pending(self, entry: DigestEntry) -> None:
        if len(self._pending) < DIGEST_LIMIT:
            self._pending.append(entry)
        else:
            self._unlisted += 1

    def _digest_due(self, now: float) -> bool:
        if self.config.digest:
            return now >= self._next_digest
        return bool(self._pending or self._unlisted) and self._limiter.take(now)

    async def _send_digest_if_due(self, now: float) -> None:
        if not self._digest_due(now):
            return
        self._next_digest = next_digest_time(now, self.config.digest_hour, self._tz)
        entries, unlisted, since = self._pending, self._unlisted, self._since
        self._pending, self._unlisted, self._since = [], 0, now
        if not entries and not unlisted:
            return
        message = compose_digest(entries, self.config, since, now, unlisted, self._tz)
        if not await self._send(message):
            self._requeue(entries, unlisted, since)

    def _requeue(self, entries: list[DigestEntry], unlisted: int, since: float) -> None:
        """Puts the blocks of a digest that failed back before those added since."""
        waiting = entries + self._pending
        self._pending = waiting[:DIGEST_LIMIT]
        self._unlisted += unlisted + len(waiting[DIGEST_LIMIT:])
        self._since = since

    async def _send(self, message: EmailMessage) -> bool:
        try:
            await asyncio.to_thread(_deliver, message, self.config)
        except (OSError, smtplib.SMTPException) as exc:
            self.counters.mails_failed += 1
            log.error("mail %r via %s:%d failed: %s", message["Subject"],
                      self.config.smtp_host, self.config.smtp_port, exc)
            return False
        self.counters.mails_sent += 1
        return True

    # ------------------------------------------------------------ hook

    def _start_hook(self, block: Block) -> None:
        if not self.config.exec_argv:
            return
        if len(self._hooks) >= self.config.exec_concurrency:
            self.counters.hooks_skipped += 1
            if not self._skipped_in_a_row:
                log.warning("exec hook: %d hooks still running (exec_concurrency); skipping "
                            "the hook for %s and later blocks until one ends",
                            len(self._hooks), block.target)
            self._skipped_in_a_row += 1
            return
        if self._skipped_in_a_row:
            log.warning("exec hook: skipped for %d blocks while busy", self._skipped_in_a_row)
            self._skipped_in_a_row = 0
        task = asyncio.create_task(self._run_hook(block))
        self._hooks.add(task)
        task.add_done_callback(self._hooks.discard)

    async def _run_hook(self, block: Block) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                *hook_argv(self.config, block), env=hook_env(block),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True)  # its own process group: a timeout ends its children
        except (OSError, ValueError) as exc:
            self._hook_failed(block, f"cannot start: {exc}", b"")
            return
        assert process.stdout is not None
        try:
            output, status = await asyncio.wait_for(
                asyncio.gather(_read_capped(process.stdout, HOOK_OUTPUT), process.wait()),
                self.config.exec_timeout)
        except TimeoutError:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            self._hook_failed(block, f"killed after {self.config.exec_timeout:g}s", b"")
            return
        if status != 0:
            self._hook_failed(block, f"exit status {status}", output)
            return
        self.counters.hooks_run += 1
        if output:
            log.info("exec hook for %s: %s", block.target, _shown(output))

    def _hook_failed(self, block: Block, why: str, output: bytes) -> None:
        self.counters.hooks_failed += 1
        log.warning("exec hook for %s failed (%s)%s", block.target, why,
                    f": {_shown(output)}" if output else "")


def _deliver(message: EmailMessage, config: NotifyConfig) -> None:
    """Hands one message to the SMTP server. Blocking: run it in a worker thread."""
    sender = config.mail_from or f"syslogban@{socket.getfqdn()}"
    if message["From"] is None:
        message["From"] = sender
    message["Message-ID"] = make_msgid(domain=sender.partition("@")[2])
    with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.smtp_timeout) as smtp:
        smtp.send_message(message, sender, list(config.mail_to))


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> bytes:
    """The first `limit` bytes of a stream, read to its end (a hook that writes
    much must not stall on a full pipe)."""
    kept = bytearray()
    while chunk := await stream.read(65536):
        kept += chunk[:limit - len(kept)]
    return bytes(kept)


def _shown(output: bytes) -> str:
    return printable(output.decode("utf-8", "replace"), HOOK_OUTPUT)
