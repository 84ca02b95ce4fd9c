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


class OctetFramer:
    """RFC 6587 framing of a syslog TCP stream, one instance per connection.

    A frame that starts with a digit is octet-counted ("LEN SP MSG", MSG may
    hold newlines, which the record parser then rejects); any other frame
    ends at LF. A frame longer than the limit keeps its first `max_size + 2`
    bytes (rejected whole downstream as too long); the rest is skipped as it
    arrives, so a client announcing 10 GB costs nothing. A count that is not
    a number of at most 10 digits ends the stream: the framing is lost and
    nothing after it can be attributed.
    """

    __slots__ = ("max_size", "_buffer", "_skip", "broken")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = b""
        self._skip = 0          # bytes of an overlong counted frame still to drop
        self.broken = False     # framing lost: the caller closes the connection

    @property
    def pending(self) -> bool:
        """Whether a frame is begun and not complete (bytes kept or still to skip)."""
        return bool(self._buffer or self._skip)

    def feed(self, data: bytes) -> list[bytes]:
        if self.broken:
            return []
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        buffer = self._buffer + data
        records: list[bytes] = []
        pos = 0
        while pos < len(buffer):
            if buffer[pos:pos + 1].isdigit():
                space = buffer.find(b" ", pos, pos + 11)
                if space < 0:
                    if len(buffer) - pos > 10 or not buffer[pos:].isdigit():
                        self.broken = True
                        return records
                    break  # the count is still arriving
                count_text = buffer[pos:space]
                if not count_text.isdigit():
                    self.broken = True
                    return records
                count, start = int(count_text), space + 1
                if count > self.max_size + 2:
                    kept = buffer[start:start + self.max_size + 2]
                    if len(kept) < self.max_size + 2 and start + count > len(buffer):
                        break  # wait for the head of the frame
                    records.append(kept)
                    end = start + count
                    self._skip = max(0, end - len(buffer))
                    pos = min(end, len(buffer))
                    continue
                if start + count > len(buffer):
                    break
                records.append(buffer[start:start + count])
                pos = start + count
            else:
                end = buffer.find(b"\n", pos)
                if end < 0:
                    if len(buffer) - pos > self.max_size + 2:
                        records.append(buffer[pos:pos + self.max_size + 2])
                        self.broken = True  # an endless line: nothing more to trust
                        return records
                    break
                records.append(buffer[pos:end])
                pos = end + 1
        self._buffer = buffer[pos:]
        return records
