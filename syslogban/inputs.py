"""Inputs: the daemon's sources opened, fed to detection a chunk at a time.

Rules of this file:
* It opens what the configuration names (stdin, rsyslog's omprog, --listen
  URLs or systemd's sockets) with the readers of sources.py, applies the
  sender gate, and hands records to the two callables it is given: `detect`
  for a chunk of whole lines, `detect_record` for one record that holds a
  newline. It parses nothing and decides nothing.
* Records arrive as the sources read them; the listeners' records are
  collected in an inbox and handed over once per turn of the loop, so that
  the scanner sees big chunks however many datagrams arrive.
* omprog confirms a record only once what it caused is committed (`commit`):
  rsyslog sends again what was not confirmed, so nothing is lost to a crash.
* Its only output is stdout for omprog's replies; nothing else goes there.

The readers return at the end of their input; the daemon decides what that
means (it stops).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .config import Config
from .framing import LineFramer
from .sources import (READ_SIZE, InputCounters, SenderGate, TcpLimits, activated_sockets,
                      listen_tcp, listen_udp, listen_unix, read_stream, stdin_reader,
                      udp_drops)

log = logging.getLogger("syslogban")

Detect = Callable[[bytes, float], None]  # records (a chunk of lines, or one record), the time


class Inputs:
    def __init__(self, config: Config, detect: Detect, detect_record: Detect,
                 commit: Callable[[], Awaitable[bool]]) -> None:
        self.config = config
        self.counters = InputCounters()
        self._detect = detect
        self._detect_record = detect_record
        self._commit = commit
        self._gate = SenderGate([ipaddress.ip_network(a) for a in config.listen_allow],
                                config.listen_rate)
        self._framer = LineFramer(config.max_record_size)  # stdin's
        self._inbox: list[bytes] = []
        self._sockets: list[Any] = []   # datagram sockets (UDP, unix), for their drops
        self._servers: list[Any] = []   # TCP servers

    # ------------------------------------------------------------ listeners

    async def listen(self) -> None:
        """Starts every --listen URL (or takes it from systemd's LISTEN_FDS)."""
        config = self.config
        activated = activated_sockets()
        for url in config.listen:
            kind, where = url.split("://", 1)
            host, _, port = where.rpartition(":")
            host = host.strip("[]")
            if kind == "unix":
                self._sockets.append(await listen_unix(
                    where, self.receive, config.udp_buffer, int(config.unix_mode, 8),
                    config.unix_group, activated))
            elif kind == "udp":
                self._sockets.append(await listen_udp(host, int(port), self.receive,
                                                      config.udp_buffer, activated))
            else:
                limits = TcpLimits(config.max_record_size, config.tcp_max_connections,
                                   config.tcp_per_sender, config.tcp_idle,
                                   config.tcp_frame_timeout)
                self._servers.append(await listen_tcp(
                    host, int(port), self.receive_stream, limits, self.counters, activated))
            log.info("listening on %s", url)
        for sock in activated:
            log.warning("systemd passed a socket no --listen names: %s", sock.getsockname())
        if not (config.listen or config.stdin or config.omprog):
            log.warning("no input (--stdin, --omprog or --listen): no record is read; blocks "
                        "come only from the fleet or CrowdSec and 'syslogban block'")

    def close(self) -> None:
        """Stops accepting connections and hands over what is in the inbox."""
        for server in self._servers:
            server.close()
        self.drain()

    def receive(self, records: list[bytes], sender: str, paced: bool = False) -> None:
        """Records from a listener: the sender's allow-list and rate, then the inbox.

        The rate applies to datagrams; a TCP sender is paced by TCP itself (the
        loop reads each connection in turn), and local senders are the host's.
        """
        self.counters.received += len(records)
        if sender != "local":
            if not self._gate.allowed(sender):
                self.counters.refused_sender += len(records)
                return
            passed = len(records) if paced else self._gate.take(sender, time.monotonic(),
                                                                len(records))
            if passed < len(records):
                self.counters.rate_limited += len(records) - passed
                records = records[:passed]
        if not self._inbox:  # one drain per turn of the loop, however many arrive
            asyncio.get_running_loop().call_soon(self.drain)
        self._inbox.extend(records)

    def receive_stream(self, records: list[bytes], sender: str) -> None:
        self.receive(records, sender, paced=True)

    def drain(self) -> None:
        """The inbox as one chunk for the scanner: a record per line.

        A record holding a newline cannot be a line of the chunk (it would
        become two records): it goes to the parser alone, which rejects it.
        """
        records, self._inbox = self._inbox, []
        lines: list[bytes] = []
        whole: list[bytes] = []
        for record in records:
            if record.endswith(b"\n"):
                record = record[:-1]
            (whole if b"\n" in record else lines).append(record)
        now = time.time()
        if lines:
            self._detect(b"\n".join(lines) + b"\n", now)
        for record in whole:
            self._detect_record(record, now)

    def count_kernel_drops(self) -> None:
        """Datagrams the kernel dropped on our sockets (full buffers), so far."""
        self.counters.kernel_drops = sum(udp_drops(s) for s in self._sockets
                                         if s.family != socket.AF_UNIX)

    # -------------------------------------------------------------- readers

    async def read_stdin(self) -> None:
        """Lines on stdin (the end of a syslog pipe), until its end."""
        await read_stream(sys.stdin.fileno(), self._consume)
        tail = self._framer.close()
        if tail:
            self._detect(tail, time.time())

    def _consume(self, data: bytes) -> None:
        chunk = self._framer.feed(data)
        if chunk:
            self._detect(chunk, time.time())

    async def read_omprog(self) -> None:
        """rsyslog's omprog with confirmMessages: OK when ready, then a reply per
        line once what it caused is committed (an unconfirmed record is sent
        again after a restart: none is lost). Transactions: OK for the marks,
        DEFER_COMMIT for the records in between."""
        reader = await stdin_reader()
        framer = LineFramer(self.config.max_record_size)
        in_transaction = False
        _reply([b"OK"])
        while True:
            data = await reader.read(READ_SIZE)
            chunk = framer.feed(data) if data else framer.close()
            if chunk:
                replies, records = [], []
                for line in chunk.split(b"\n")[:-1]:
                    mark = line.rstrip(b"\r")
                    if mark in (b"BEGIN TRANSACTION", b"COMMIT TRANSACTION"):
                        in_transaction = mark == b"BEGIN TRANSACTION"
                        replies.append(b"OK")
                    else:
                        records.append(line)
                        replies.append(b"DEFER_COMMIT" if in_transaction else b"OK")
                if records:
                    self._detect(b"\n".join(records) + b"\n", time.time())
                if not await self._commit():
                    # rsyslog keeps what is not confirmed and sends it again
                    replies = [b"ERROR the state file cannot be written"] * len(replies)
                _reply(replies)
            if not data:
                break


def _reply(replies: list[bytes]) -> None:
    """omprog's channel back to rsyslog: stdout, nothing else ever goes there."""
    data = b"\n".join(replies) + b"\n"
    while data:
        data = data[os.write(1, data):]
