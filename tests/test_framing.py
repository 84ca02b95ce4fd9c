"""Framing: whole newline-terminated records out, overlong ones kept rejectable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import NOW, PROPERTY, UTC, lines_of
from syslogban.framing import LineFramer
from syslogban.record import Malformed, RecordParser

MAX = 16


def feed_pieces(framer: LineFramer, data: bytes, size: int) -> bytes:
    """All the framer gives for `data` fed `size` bytes at a time."""
    out = []
    for i in range(0, len(data), size):
        chunk = framer.feed(data[i:i + size])
        assert chunk == b"" or chunk.endswith(b"\n")
        out.append(chunk)
    return b"".join(out)


def frame(data: bytes, size: int, max_size: int = MAX) -> bytes:
    framer = LineFramer(max_size)
    return feed_pieces(framer, data, size) + framer.close()


def assert_too_long(line: bytes, max_size: int = MAX) -> None:
    with pytest.raises(Malformed) as info:
        RecordParser(max_size, UTC).parse(line + b"\n", NOW)
    assert info.value.reason == "too-long"


def test_chunks_end_on_newlines_and_keep_the_rest() -> None:
    framer = LineFramer(MAX)
    assert framer.feed(b"one\ntwo\nthr") == b"one\ntwo\n"
    assert framer.feed(b"ee") == b""
    assert framer.feed(b"") == b""
    assert framer.feed(b"\nfour") == b"three\n"
    assert framer.feed(b"\n") == b"four\n"
    assert framer.close() == b""


def test_record_split_across_many_feeds_reassembles() -> None:
    framer = LineFramer(MAX)
    assert [framer.feed(bytes([c])) for c in b"ab\r\n"] == [b"", b"", b"", b"ab\r\n"]


def test_many_records_per_feed() -> None:
    data = b"".join(b"r%d\n" % i for i in range(1000))
    assert LineFramer(MAX).feed(data) == data


def test_empty_records_pass_through() -> None:
    assert LineFramer(MAX).feed(b"\n\na\n\n") == b"\n\na\n\n"


def test_close_returns_the_last_unterminated_record_with_a_newline() -> None:
    framer = LineFramer(MAX)
    assert framer.feed(b"a\nlast") == b"a\n"
    assert framer.close() == b"last\n"
    assert framer.close() == b""  # and forgets it


def test_close_without_pending_data() -> None:
    framer = LineFramer(MAX)
    assert framer.close() == b""
    assert framer.feed(b"a\n") == b"a\n"
    assert framer.close() == b""


def test_record_of_exactly_the_limit_with_crlf_is_kept_whole() -> None:
    record = b"x" * MAX + b"\r"
    assert frame(record + b"\nnext\n", 1) == record + b"\nnext\n"
    assert frame(record + b"\nnext\n", 100) == record + b"\nnext\n"


@pytest.mark.parametrize("size", [1, 2, 3, 7, MAX, MAX + 1, MAX + 2, 50, 10_000])
@pytest.mark.parametrize("length", [MAX + 1, MAX + 2, MAX + 3, 40, 1000])
def test_overlong_record_is_one_rejectable_line(size: int, length: int) -> None:
    long = bytes(65 + i % 26 for i in range(length))
    data = b"before\n" + long + b"\nafter\nlast\n"
    lines = lines_of(frame(data, size))
    assert len(lines) == 4
    assert lines[0] == b"before" and lines[2:] == [b"after", b"last"]
    assert long.startswith(lines[1]) and len(lines[1]) > MAX
    assert_too_long(lines[1])


@pytest.mark.parametrize("size", [1, 5, MAX + 3])
def test_overlong_record_fed_in_pieces_keeps_its_first_max_plus_two_bytes(size: int) -> None:
    long = b"0123456789" * 10
    assert frame(long + b"\nnext\n", size) == long[:MAX + 2] + b"\nnext\n"


def test_overlong_record_fed_in_one_piece_alone_then_ended() -> None:
    framer = LineFramer(MAX)
    assert framer.feed(b"x" * 100) == b""
    assert framer.feed(b"y" * 100) == b""  # still inside the same record
    assert framer.feed(b"z\nnext\n") == b"x" * (MAX + 2) + b"\nnext\n"


def test_overlong_record_then_close() -> None:
    framer = LineFramer(MAX)
    assert feed_pieces(framer, b"a\n" + b"x" * 100, 3) == b"a\n"
    tail = framer.close()
    assert tail == b"x" * (MAX + 2) + b"\n"
    assert_too_long(tail[:-1])
    assert framer.feed(b"fresh\n") == b"fresh\n"  # close() ended the discarding


def test_overlong_records_back_to_back() -> None:
    data = b"a" * 50 + b"\n" + b"b" * 50 + b"\n" + b"ok\n"
    for size in (1, 4, 17, 33, 1000):
        assert lines_of(frame(data, size)) in (
            [b"a" * 50, b"b" * 50, b"ok"],  # whole in one feed
            [b"a" * (MAX + 2), b"b" * (MAX + 2), b"ok"],
            [b"a" * 50, b"b" * (MAX + 2), b"ok"],
            [b"a" * (MAX + 2), b"b" * 50, b"ok"])


def test_overlong_record_with_cr_after_the_limit_stays_rejectable() -> None:
    long = b"x" * MAX + b"\rmore text beyond the limit"
    lines = lines_of(frame(long + b"\n", 1))
    assert len(lines) == 1
    assert_too_long(lines[0])


def test_memory_is_bounded_on_a_stream_without_newlines() -> None:
    framer = LineFramer(1024)
    piece = b"x" * 65536
    for _ in range(160):  # 10 MiB
        assert framer.feed(piece) == b""
        assert len(framer._partial) <= 1024 + 2
    assert framer.feed(b"\nok\n") == b"x" * 1026 + b"\nok\n"


def test_memory_is_bounded_after_one_huge_feed() -> None:
    framer = LineFramer(1024)
    assert framer.feed(b"a\n" + b"x" * (10 << 20)) == b"a\n"
    assert len(framer._partial) <= 1024 + 2
    assert framer.close() == b"x" * 1026 + b"\n"


def as_record(data: bytes) -> bytes:
    return data.replace(b"\n", b"").replace(b"\r", b"")


RECORDS = st.one_of(st.binary(max_size=3 * MAX),
                    st.text(max_size=2 * MAX).map(str.encode)).map(as_record)


@PROPERTY
@given(records=st.lists(RECORDS, max_size=12), cuts=st.lists(st.integers(0, 600), max_size=20),
       terminated=st.booleans())
def test_any_stream_in_any_pieces_gives_one_line_per_record(records, cuts, terminated) -> None:
    stream = b"\n".join(records) + (b"\n" if terminated and records else b"")
    framer = LineFramer(MAX)
    out, last = [], 0
    for cut in sorted(set(cuts)) + [len(stream)]:
        chunk = framer.feed(stream[last:cut])
        assert chunk == b"" or chunk.endswith(b"\n")
        out.append(chunk)
        last = max(last, cut)
    out.append(framer.close())
    lines = lines_of(b"".join(out))
    if records and not terminated and records[-1] == b"":
        records = records[:-1]  # an empty unterminated tail is no record
    assert len(lines) == len(records)
    for line, record in zip(lines, records):
        if len(record) <= MAX + 2:
            assert line == record
        else:
            assert record.startswith(line) and len(line) > MAX
        if len(record) > MAX:
            assert_too_long(line)
