"""The scanner: finds, in a chunk of records, the lines worth parsing.

Rules of this file:
* It decides nothing. A line it passes over is one the record parser would
  accept (printable, valid UTF-8, not blank, within the size limit) and the
  matcher could not match (it lacks every signature's literal). Everything
  else, attack or oddity, goes to the parser as usual.
* Two engines give the same answer: Hyperscan, which finds all literals and
  oddities of a chunk in one pass at memory speed, and the plain one, which
  sends every line to the parser. The test suite checks that they agree.

Why: CPython spends about a microsecond just to run one regular expression
over one line; most lines of a mail log are not attacks. Scanning a chunk once
in C and parsing only the few lines that contain a signature literal is what
makes syslogban faster than a C parser that looks at every line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

try:
    import hyperscan
except ImportError:  # not on every platform: the plain engine is always there
    hyperscan = None

# Oddities that send a line to the parser: control characters (the parser
# rejects them; `\n` separates lines and is not one of them), bytes beyond
# ASCII (only the parser validates UTF-8) and blank lines.
_ODD = rb"[\x00-\x08\x0b-\x1f\x7f-\xff]"
ALL = -1  # the mask of every prefilter: try every signature
_BLANK = rb"^[ \t]*\n"
# Lines longer than this are looked at one by one. It only has to be at most
# the record size limit; a larger repeat makes Hyperscan compile slowly (50 ms
# for 8 KiB) and mail logs rarely hold lines this long.
_LONG = 1024


def _cache_file(expressions: list[bytes], flags: list[int]) -> Path | None:
    """Where a compiled database of these expressions is kept between runs.

    Compiling a hundred prefilters takes a fifth of a second, loading them a
    hundred microseconds. The key covers the expressions, their flags and the
    Hyperscan version; a file that does not load (another CPU, corruption) is
    compiled again and replaced. SYSLOGBAN_CACHE_DIR= (empty) turns it off.
    """
    directory = os.environ.get("SYSLOGBAN_CACHE_DIR")
    if directory is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                 ".cache")
        directory = os.path.join(base, "syslogban")
    if not directory:
        return None
    key = hashlib.sha256(repr((expressions, flags, hyperscan.__version__ if hyperscan
                               else "")).encode()).hexdigest()[:32]
    return Path(directory) / f"scanner-{key}.hsdb"


def _store(path: Path, data: bytes) -> None:
    """Writes the cache file privately and atomically; a cache that fails is no error."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".scanner-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)


class Scanner:
    """`lines(chunk)` gives the (start, end) of each line to parse, or None for all."""

    __slots__ = ("engine", "_db", "_long", "_odd_id", "_long_id", "_hits", "_overlong")

    def __init__(self, prefilters: Sequence[tuple[str, bool]], max_size: int,
                 engine: str = "auto") -> None:
        if engine == "auto":
            engine = "hyperscan" if hyperscan is not None else "plain"
        if engine == "hyperscan" and hyperscan is None:
            raise RuntimeError("the hyperscan module is not installed")
        if engine not in ("hyperscan", "plain"):
            raise ValueError(f"unknown scanner engine {engine!r}")
        self.engine = engine
        self._hits: list[tuple[int, int]] = []
        self._overlong = False
        self._db = None
        self._long = min(_LONG, max_size)
        self._odd_id = len(prefilters)  # then the blank-line and the long-line patterns
        self._long_id = len(prefilters) + 2
        if engine == "hyperscan":
            self._db = self._compile(prefilters)

    def _compile(self, prefilters: Sequence[tuple[str, bool]]) -> object:
        assert hyperscan is not None
        expressions = [text.encode("ascii") for text, _ in prefilters]
        flags = [hyperscan.HS_FLAG_CASELESS if caseless else 0 for _, caseless in prefilters]
        expressions += [_ODD, _BLANK, rb"[^\n]{%d}" % (self._long + 1)]
        flags += [0, hyperscan.HS_FLAG_MULTILINE, hyperscan.HS_FLAG_SINGLEMATCH]
        cached = _cache_file(expressions, flags)
        if cached is not None:
            with contextlib.suppress(OSError, hyperscan.error):
                db = hyperscan.loadb(cached.read_bytes(), hyperscan.HS_MODE_BLOCK)
                db.scratch = hyperscan.Scratch(db)
                return db
        db = hyperscan.Database()
        db.compile(expressions=expressions, ids=list(range(len(expressions))),
                   elements=len(expressions), flags=flags)
        if cached is not None:
            _store(cached, hyperscan.dumpb(db))
        return db

    def lines(self, chunk: bytes) -> list[tuple[int, int, int]] | None:
        """Candidate lines of `chunk` (whole records, each ending in a newline).

        Each is (start, end, mask): bit i of the mask is set when prefilter i
        was found in the line, so the matcher need try only those signatures.
        An odd line (control characters, bytes beyond ASCII, overlong) gets
        ALL: Hyperscan's caseless matching knows ASCII only.
        """
        if self._db is None:
            return None
        self._hits.clear()
        self._overlong = False
        self._db.scan(chunk, match_event_handler=self._on_match)  # type: ignore[attr-defined]
        # Every hit ends on a byte of its line (a blank line's on its newline),
        # so the line starts after the newline before that byte.
        masks: dict[int, int] = {}
        odd = self._odd_id
        for end, pattern in self._hits:
            start = chunk.rfind(b"\n", 0, end - 1) + 1
            masks[start] = ALL if pattern >= odd else masks.get(start, 0) | (1 << pattern)
        if self._overlong:  # rare: find the long lines the simple way
            start = 0
            for line in chunk.split(b"\n")[:-1]:
                if len(line) > self._long:
                    masks[start] = ALL
                start += len(line) + 1
        return [(start, chunk.index(b"\n", start), masks[start]) for start in sorted(masks)]

    def _on_match(self, pattern: int, start: int, end: int, flags: int,
                  context: object) -> None:
        if pattern == self._long_id:
            self._overlong = True
        else:
            self._hits.append((end, pattern))

