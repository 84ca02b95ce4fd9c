"""Sources: where record bytes come from, handed to the daemon as they arrive.

Rules of this file:
* Only bytes move here: reading, and telling the end of a stream. Framing,
  parsing and deciding happen downstream, in the daemon's single loop.
* A source never blocks the event loop. A pipe, FIFO, socket or terminal is
  read by the loop itself (backpressure reaches the writer when syslogban is
  busy); a regular file (`syslogban run --stdin < file`) is read in a thread,
  since epoll cannot watch files.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable

READ_SIZE = 1 << 20

Consumer = Callable[[bytes], None]


class _PipeProtocol(asyncio.Protocol):
    def __init__(self, consume: Consumer, done: asyncio.Future[None]) -> None:
        self.consume = consume
        self.done = done

    def data_received(self, data: bytes) -> None:
        self.consume(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def read_stream(fd: int, consume: Consumer) -> None:
    """Feeds everything readable from `fd` to `consume`; returns at end of stream."""
    loop = asyncio.get_running_loop()
    if stat.S_ISREG(os.fstat(fd).st_mode):
        while data := await loop.run_in_executor(None, os.read, fd, READ_SIZE):
            consume(data)
        return
    done: asyncio.Future[None] = loop.create_future()
    pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: _PipeProtocol(consume, done), pipe)
    try:
        await done
    finally:
        transport.close()
