"""Sources: where record bytes come from, handed to the daemon as they arrive.

Rules of this file:
* Only bytes move here: reading, framing TCP streams (RFC 6587), telling the
  end of a stream, and refusing senders (allow-list, rate). Parsing and
  deciding happen downstream, in the daemon's single loop.
* Network inputs bind where they are told (loopback by default); a record
  from a sender outside the allow-list never reaches the matcher.
* A source never blocks the event loop. A pipe, FIFO, socket or terminal is
  read by the loop itself (backpressure reaches the writer when syslogban is
  busy); anything else (`syslogban run --stdin < file`, `< /dev/null`) is read
  in a thread, since epoll cannot watch files and devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import grp
import ipaddress
import os
import socket
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .framing import OctetFramer
from .slots import Slots

READ_SIZE = 1 << 20

Consumer = Callable[[bytes], None]


async def stdin_reader() -> asyncio.StreamReader:
    """Standard input as a stream the loop reads (omprog: rsyslog's pipe)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_SIZE)
    if not _pollable(0):  # a file (tests, replays), /dev/null: read in a thread
        async def pump() -> None:
            while data := await loop.run_in_executor(None, os.read, 0, READ_SIZE):
                reader.feed_data(data)
            reader.feed_eof()
        asyncio.ensure_future(pump())
        return reader
    pipe = os.fdopen(os.dup(0), "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader


async def read_stream(fd: int, consume: Consumer) -> None:
    """Feeds everything readable from `fd` to `consume`; returns at end of stream.

    A pipe is read by the loop in blocks of up to READ_SIZE (the pipe widened
    to hold that much; asyncio's pipe transport reads 256 KiB at most), so that
    a busy writer's records reach the scanner in big chunks.
    """
    loop = asyncio.get_running_loop()
    if not _pollable(fd):
        while data := await loop.run_in_executor(None, os.read, fd, READ_SIZE):
            consume(data)
        return
    own = os.dup(fd)  # closed here; the caller's fd stays open
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        try:
            data = os.read(own, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # the writer's end is gone: the end of the stream
        if not data:
            loop.remove_reader(own)
            if not done.done():
                done.set_result(None)
            return
        consume(data)

    try:
        os.set_blocking(own, False)
        widen_pipe(own)
        loop.add_reader(own, readable)
        await done
    finally:
        loop.remove_reader(own)
        os.close(own)


def widen_pipe(fd: int) -> None:
    """Lets a pipe hold READ_SIZE bytes (Linux; 64 KiB by default), so that one
    read takes what a fast writer wrote; anything else is left as it is."""
    with contextlib.suppress(OSError, AttributeError):
        if stat.S_ISFIFO(os.fstat(fd).st_mode) and fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) < READ_SIZE:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, READ_SIZE)


def _pollable(fd: int) -> bool:
    """Whether the event loop can watch `fd`: a pipe, FIFO, socket or terminal."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


# ------------------------------------------------------------------ listeners

@dataclass(slots=True)
class InputCounters:
    received: int = 0
    refused_sender: int = 0    # not in the sender allow-list: dropped, never matched
    rate_limited: int = 0      # over the per-sender rate: dropped
    connections: int = 0
    connections_refused: int = 0   # the table was full and the sender held its fair share
    connections_evicted: int = 0   # closed to make room for another (slots.py)
    frame_timeouts: int = 0        # closed with a frame left incomplete too long
    framing_errors: int = 0    # TCP streams whose framing was lost (closed)
    kernel_drops: int = 0      # UDP datagrams the kernel dropped (full buffer)


class SenderGate:
    """Which senders may feed records, and how fast (a token bucket each).

    Pure: the time is an argument. A sender outside `allow` is refused; a
    sender over `rate` records a second (bursts up to one second's worth) is
    refused until its bucket refills, so one noisy host cannot starve others.
    """

    __slots__ = ("allow", "rate", "_buckets", "_known")

    def __init__(self, allow: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
                 rate: float) -> None:
        self.allow = tuple(allow)
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}
        self._known: dict[str, bool] = {}  # senders are few: decide each once

    def allowed(self, sender: str) -> bool:
        known = self._known.get(sender)
        if known is None:
            known = self._decide(sender)
            if len(self._known) < 65536:
                self._known[sender] = known
        return known

    def _decide(self, sender: str) -> bool:
        try:
            address = ipaddress.ip_address(sender.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.allow)

    def take(self, sender: str, now: float, count: int = 1) -> int:
        """How many of `count` records the sender may pass now."""
        tokens, last = self._buckets.get(sender, (self.rate, now))
        tokens = min(self.rate, tokens + (now - last) * self.rate)
        passed = min(count, int(tokens))
        self._buckets[sender] = (tokens - passed, now)
        if len(self._buckets) > 65536:  # senders come and go: forget the idle ones
            self._buckets = {s: b for s, b in self._buckets.items() if now - b[1] < 60}
        return passed


Records = Callable[[list[bytes]], None]


DATAGRAMS_PER_WAKEUP = 1024


def _read_datagrams(sock: socket.socket, deliver: Callable[[list[bytes], str], None]) -> None:
    """Everything the socket holds (up to a bound), grouped by sender, in one go.

    One callback per datagram (asyncio's datagram protocol) tops out near
    20,000 a second here; reading on in one wake-up is what keeps up.
    """
    batches: dict[str, list[bytes]] = {}
    for _ in range(DATAGRAMS_PER_WAKEUP):
        try:
            data, addr = sock.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            break  # e.g. ICMP errors surfacing on the socket: the next read goes on
        sender = addr[0] if isinstance(addr, tuple) else "local"
        batches.setdefault(sender, []).append(data)
    for sender, records in batches.items():
        deliver(records, sender)


def _watch(sock: socket.socket, deliver: Callable[[list[bytes], str], None],
           buffer: int) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
    sock.setblocking(False)
    asyncio.get_running_loop().add_reader(sock.fileno(), _read_datagrams, sock, deliver)


def _bind_activated(family: int, kind: int, address: Any,
                    activated: list[socket.socket]) -> socket.socket | None:
    """A socket systemd passed (LISTEN_FDS) that matches, taken out of the list."""
    for sock in activated:
        if sock.family == family and sock.type == kind and sock.getsockname() == address:
            activated.remove(sock)
            return sock
    return None


def activated_sockets(environ: Mapping[str, str] = os.environ) -> list[socket.socket]:
    """The sockets of systemd socket activation, when they are ours (LISTEN_PID)."""
    if environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    count = int(environ.get("LISTEN_FDS", "0"))
    return [socket.socket(fileno=fd) for fd in range(3, 3 + count)]


async def listen_udp(host: str, port: int, deliver: Callable[[list[bytes], str], None],
                     buffer: int, activated: list[socket.socket]) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = (host, port) if family == socket.AF_INET else (host, port, 0, 0)
    sock = _bind_activated(family, socket.SOCK_DGRAM, address, activated)
    if sock is None:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((host, port))
    _watch(sock, deliver, buffer)
    return sock


async def listen_unix(path: str, deliver: Callable[[list[bytes], str], None], buffer: int,
                      mode: int, group: str, activated: list[socket.socket]) -> socket.socket:
    sock = _bind_activated(socket.AF_UNIX, socket.SOCK_DGRAM, path, activated)
    if sock is None:
        _replace_stale_socket(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        if group:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        os.chmod(path, mode)
    _watch(sock, deliver, buffer)
    return sock


def _replace_stale_socket(path: str) -> None:
    """A socket file nobody reads is removed; anything else is refused."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise OSError(f"{path}: exists and is not a socket; not touching it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # stale: its owner is gone
        return
    finally:
        probe.close()
    raise OSError(f"{path}: another program is reading this socket")


@dataclass(frozen=True, slots=True)
class TcpLimits:
    max_size: int                 # record size limit (framing)
    connections: int              # slots in all
    per_sender: int               # slots one sender address may hold
    idle: float                   # seconds a connection may stay silent between frames
    frame_timeout: float          # seconds a frame may stay incomplete


async def listen_tcp(host: str, port: int, deliver: Callable[[list[bytes], str], None],
                     limits: TcpLimits, counters: InputCounters,
                     activated: list[socket.socket]) -> asyncio.Server:
    """RFC 6587 over TCP; each connection framed on its own, none can stall
    another, and no sender can hold the slots of others (slots.py)."""
    loop = asyncio.get_running_loop()
    slots = Slots(limits.connections, limits.per_sender)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        sender = peer[0] if isinstance(peer, tuple) else "local"
        slot = slots.admit(sender, loop.time(), writer.transport.abort)
        counters.connections_evicted = slots.evicted
        if slot is None:
            counters.connections_refused += 1
            writer.transport.abort()
            return
        counters.connections += 1
        framer = OctetFramer(limits.max_size)
        try:
            while not framer.broken:
                wait = limits.idle if slot.partial_since is None else \
                    slot.partial_since + limits.frame_timeout - loop.time()
                try:
                    data = await asyncio.wait_for(reader.read(READ_SIZE), max(wait, 0.0))
                except asyncio.TimeoutError:
                    if slot.partial_since is not None:
                        counters.frame_timeouts += 1
                    break
                if not data:
                    break
                records = framer.feed(data)
                slots.progress(slot, loop.time(), bool(records), framer.pending)
                if records:
                    deliver(records, sender)
            if framer.broken:
                counters.framing_errors += 1
        except ConnectionError:
            pass  # gone (or evicted): the connection ends, the others go on
        finally:
            slots.release(slot)
            writer.close()

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = (host, port) if family == socket.AF_INET else (host, port, 0, 0)
    sock = _bind_activated(family, socket.SOCK_STREAM, address, activated)
    if sock is not None:
        return await asyncio.start_server(serve, sock=sock, limit=READ_SIZE)
    return await asyncio.start_server(serve, host, port, limit=READ_SIZE, reuse_address=True)


def udp_drops(sock: socket.socket) -> int:
    """Datagrams the kernel dropped on this socket (Linux /proc/net/udp*), else 0."""
    inode = str(os.fstat(sock.fileno()).st_ino)
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                for line in f:
                    fields = line.split()
                    if len(fields) > 12 and fields[9] == inode:
                        return int(fields[-1])
        except OSError:
            continue
    return 0
