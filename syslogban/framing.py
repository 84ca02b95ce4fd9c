"""Framing: a byte stream in, chunks of whole newline-terminated records out.

Rules of this file:
* Sans-I/O: callers feed the bytes they read and get chunks back.
* Memory is bounded by the chunk size plus the record size limit, whatever
  the stream holds: a record longer than the limit keeps only its first
  `max_size + 2` bytes, so the record parser still rejects it whole as
  "too-long" at its own line number. The rest is dropped unparsed; a piece of
  a long record is never handed on as a record of its own.
"""

from __future__ import annotations


class LineFramer:
    __slots__ = ("max_size", "_partial", "_discarding")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._partial = b""
        self._discarding = False  # inside an overlong record, skipping to its end

    def feed(self, data: bytes) -> bytes:
        """The whole records completed by `data` (each ending in b"\\n"), possibly b""."""
        if self._discarding:
            end = data.find(b"\n")
            if end < 0:
                return b""
            self._discarding = False
            data = data[end:]  # the newline ends the kept head of the record
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            self._keep(data)
            return b""
        chunk = self._partial + data[:cut] if self._partial else data[:cut]
        self._partial = b""
        self._keep(data[cut:])
        return chunk

    def close(self) -> bytes:
        """The last record when the stream did not end with a newline."""
        tail, self._partial, self._discarding = self._partial, b"", False
        return tail + b"\n" if tail else b""

    def _keep(self, data: bytes) -> None:
        if not data:
            return
        self._partial += data
        # Two bytes over the limit stay too long even when the parser strips a
        # CR at the end as part of a CRLF ending.
        if len(self._partial) > self.max_size + 2:
            self._partial = self._partial[: self.max_size + 2]
            self._discarding = True
