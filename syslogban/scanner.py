"""The scanner: finds, in a chunk of records, the lines worth parsing.

Rules of this file:
* It decides nothing. A line it passes over is one the record parser would
  accept (printable, valid UTF-8, not blank, within the size limit) and the
  matcher could not match (it matches no signature's prefilter). Everything
  else, attack or oddity, goes to the parser as usual.
* Two engines give the same answer: Hyperscan, and the plain one (the
  standard library alone) where Hyperscan is not installed. The test suite
  checks that they agree.

Theory of operation. signatures.py derives a prefilter from each pattern: its
literal texts in order, gaps between them. A line is a candidate when some
prefilter matches it, or when it is odd: control characters, bytes beyond
ASCII (only the parser validates UTF-8), blank or long. Its mask has bit i
set when prefilter i matches (an odd line: ALL).
* Hyperscan runs every prefilter and oddity over the chunk in one pass at
  memory speed.
* The plain engine first looks for each prefilter's *factors*: texts one of
  which every line the prefilter matches contains (its most selective run of
  text, or one text per alternative). Then, on each line found, it runs the
  prefilters of the factors that line holds as Python regular expressions.
  It finds the factors in one pass over the chunk with an Aho-Corasick
  automaton (ahocorasick_rs, where its wheel exists: every platform
  Hyperscan's does not cover but FreeBSD), else with a bytes.find pass per
  factor, ten times slower with the default signatures' 85 factors.

Why: CPython spends about a microsecond just to run one regular expression
over one line; most lines of a mail log are not attacks. Finding the few
lines that contain a signature's text in one pass over a chunk, and parsing
only those, is what makes syslogban faster than a C parser that looks at
every line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from itertools import product
from pathlib import Path
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

try:
    import hyperscan
except ImportError:  # not on every platform: the plain engine is always there
    hyperscan = None
try:  # the plain engine's factors in one pass (Rust's aho-corasick: SIMD, memory speed)
    import ahocorasick_rs
except ImportError:  # not on every platform: then a bytes.find pass per factor
    ahocorasick_rs = None

# Oddities that send a line to the parser: control characters (the parser
# rejects them; `\n` separates lines and is not one of them), bytes beyond
# ASCII (only the parser validates UTF-8) and blank lines.
_ODD = rb"[\x00-\x08\x0b-\x1f\x7f-\xff]"
_ODD_BYTES = re.compile(_ODD)
_NORMAL = bytes(range(0x20, 0x7F)) + b"\t\n"  # deleted, they leave the odd bytes
ALL = -1  # the mask of every prefilter: try every signature
_BLANK = rb"^[ \t]*\n"
_BLANK_LEAD = re.compile(rb"\n(?=[\n \t])")  # the plain engine's: where a blank line may start
_TO_END = rb"[^\n]*\n"  # a pattern's match runs to the end of its line
# Lines longer than this are looked at one by one. It only has to be at most
# the record size limit; a larger repeat makes Hyperscan compile slowly (50 ms
# for 8 KiB) and mail logs rarely hold lines this long.
_LONG = 1024
# A factor set is a product of alternatives: at most this many texts.
_MOST_TEXTS = 64


def _cache_file(expressions: list[bytes], flags: list[int]) -> Path | None:
    """Where a compiled database of these expressions is kept between runs.

    Compiling a hundred expressions takes a fifth of a second, loading them a
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


# ------------------------------------------------------------------ factors

def factors(prefilter: str) -> frozenset[str]:
    """Texts one of which every line the prefilter matches contains.

    The candidates are each run of literal text, alone or with the
    alternatives next to it multiplied out (up to _MOST_TEXTS texts), and
    each alternative whose branches all have factors (their union). Fewest
    texts win among those whose shortest text is long enough (_SELECTIVE):
    each text is a pass over the chunk, a short one finds many lines.
    ValueError when there is none (a prefilter that is all gaps);
    signatures.py guarantees a literal of MIN_LITERAL characters.
    """
    found = _candidates(sre_parse.parse(prefilter))
    if not found:
        raise ValueError(f"the prefilter {prefilter!r} holds no literal text")
    return max(found, key=_worth)


_SELECTIVE = 10  # characters: a text this long is rare enough in a log


def _worth(texts: frozenset[str]) -> tuple[int, int, int]:
    shortest = min(map(len, texts))
    return min(shortest, _SELECTIVE), -len(texts), shortest


def _texts(items: Any) -> list[str] | None:
    """Every text `items` (a parsed sequence) can match, if they are few; else None."""
    texts = [""]
    for op, arg in items:
        if op is sre_parse.LITERAL:
            texts = [t + chr(arg) for t in texts]
            continue
        branches = _branches(op, arg)
        if branches is None:
            return None
        options = [_texts(branch) for branch in branches]
        if any(o is None for o in options):
            return None
        texts = [t + o for t, o in product(texts, [x for o in options for x in o])]  # type: ignore[union-attr]
        if len(texts) > _MOST_TEXTS:
            return None
    return texts


def _branches(op: Any, arg: Any) -> list[Any] | None:
    """The alternatives of a group or alternation, None for anything else."""
    if op is sre_parse.SUBPATTERN and not arg[1] and not arg[2]:
        return [arg[3]]
    if op is sre_parse.BRANCH:
        return list(arg[1])
    return None


def _candidates(items: Any) -> list[frozenset[str]]:
    """Every factor set found in a parsed sequence (see factors())."""
    found: list[frozenset[str]] = []
    run = [""]  # the texts the current run of literal text can be
    for op, arg in items:
        if op is sre_parse.LITERAL:
            run = [t + chr(arg) for t in run]
            continue
        if all(run):
            found.append(frozenset(run))
        branches = _branches(op, arg)
        if branches is None:  # a gap ends the run
            run = [""]
            continue
        inner = [_candidates(branch) for branch in branches]
        if all(inner):
            found.append(frozenset().union(*(max(i, key=_worth) for i in inner)))
        texts = _texts([(op, arg)])
        run = ([t + x for t, x in product(run, texts)]
               if texts is not None and len(run) * len(texts) <= _MOST_TEXTS else [""])
    if all(run):
        found.append(frozenset(run))
    return found


def _automata(factors: list[tuple[bytes, bool]]) -> list[tuple[Any, tuple[int, ...], bool]]:
    """Aho-Corasick automata of the factors, one per case: (automaton, the
    bit of each of its factors, caseless). They report overlapping matches:
    a line holds every factor found in it, as with a search per factor."""
    automata = []
    for case in (False, True):
        ours = [(1 << i, text) for i, (text, caseless) in enumerate(factors) if caseless is case]
        if ours:
            automata.append((ahocorasick_rs.BytesAhoCorasick([text for _, text in ours]),
                             tuple(bit for bit, _ in ours), case))
    return automata


# ------------------------------------------------------------------ scanner

class Scanner:
    """`lines(chunk)` gives the (start, end, mask) of each line to parse."""

    __slots__ = ("engine", "_db", "_long", "_odd_id", "_long_id", "_hits", "_overlong",
                 "_factors", "_caseless", "_verify", "_choices", "_automata")

    def __init__(self, prefilters: Sequence[tuple[str, bool]], max_size: int,
                 engine: str = "auto") -> None:
        if engine == "auto":
            engine = "hyperscan" if hyperscan is not None else "plain"
        if engine == "hyperscan" and hyperscan is None:
            raise RuntimeError("the hyperscan module is not installed")
        if engine not in ("hyperscan", "plain"):
            raise ValueError(f"unknown scanner engine {engine!r}")
        self.engine = engine
        self._long = min(_LONG, max_size)
        self._hits: list[tuple[int, int]] = []
        self._overlong = False
        self._odd_id = len(prefilters)  # then the blank-line and the long-line patterns
        self._long_id = len(prefilters) + 2
        self._db = self._compile(prefilters) if engine == "hyperscan" else None
        # The plain engine's factors, each (text, caseless) once, and per factor
        # the prefilters it stands for, as (bit, regex) to run on its lines.
        serves: dict[tuple[bytes, bool], int] = {}
        if engine == "plain":
            for i, (text, caseless) in enumerate(prefilters):
                for factor in factors(text):
                    key = (factor.lower() if caseless else factor).encode("ascii"), caseless
                    serves[key] = serves.get(key, 0) | 1 << i
        for key in sorted(serves, key=lambda k: len(k[0])):  # a line with B holds A in B
            if key not in serves:
                continue
            text, caseless = key
            for other in [k for k in serves if k != key and k[1] == caseless and text in k[0]]:
                serves[key] |= serves.pop(other)
        self._factors = list(serves)
        self._caseless = any(caseless for _, caseless in self._factors)
        self._automata = _automata(self._factors) if ahocorasick_rs is not None else None
        regexes = [re.compile(text.encode("ascii"), re.IGNORECASE if caseless else 0)
                   for text, caseless in prefilters] if serves else []
        self._verify = [tuple((1 << i, regexes[i]) for i in range(len(prefilters))
                              if bits >> i & 1) for bits in serves.values()]
        self._choices: dict[int, tuple[tuple[int, re.Pattern[bytes]], ...]] = {}

    def _compile(self, prefilters: Sequence[tuple[str, bool]]) -> object:
        assert hyperscan is not None
        # Each pattern runs on to the end of its line, so that it is reported
        # once per line: Hyperscan reports every end of a match, and a line
        # full of a signature's own words held ten thousand of them, each a
        # Python call (13 ms for an 8 KiB record, where a plain one takes 0.1).
        expressions = [text.encode("ascii") + _TO_END for text, _ in prefilters]
        flags = [hyperscan.HS_FLAG_CASELESS if caseless else 0 for _, caseless in prefilters]
        expressions += [_ODD + _TO_END, _BLANK, rb"[^\n]{%d}" % (self._long + 1)]
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

    def lines(self, chunk: bytes) -> list[tuple[int, int, int]]:
        """Candidate lines of `chunk` (whole records, each ending in a newline).

        Each is (start, end, mask): bit i of the mask is set when prefilter i
        matches the line, so the matcher need try only those signatures. An
        odd line (control characters, bytes beyond ASCII, blank, long) gets
        ALL: the parser rejects it or the matcher tries every signature.
        """
        if self._db is not None:
            masks = self._hyperscan(chunk)
            index = chunk.index
            return [(start, index(b"\n", start), masks[start]) for start in sorted(masks)]
        return self._verified(chunk, self._plain(chunk))

    def _verified(self, chunk: bytes, found: dict[int, int]) -> list[tuple[int, int, int]]:
        """The plain engine's second pass: the prefilters of the factors each line holds."""
        spans = []
        choices = self._choices
        index = chunk.index
        for start in sorted(found):
            end = index(b"\n", start)
            bits = found[start]
            if bits == ALL:
                spans.append((start, end, ALL))
                continue
            verify = choices.get(bits)
            if verify is None:
                verify = self._choose(bits)
            mask = 0
            for bit, regex in verify:
                if regex.search(chunk, start, end) is not None:
                    mask |= bit
            if mask:
                spans.append((start, end, mask))
        return spans

    def _choose(self, bits: int) -> tuple[tuple[int, re.Pattern[bytes]], ...]:
        """The prefilters to run on a line that holds the factors `bits`."""
        chosen: dict[int, re.Pattern[bytes]] = {}
        for factor, prefilters in enumerate(self._verify):
            if bits >> factor & 1:
                chosen.update(prefilters)
        verify = tuple(sorted(chosen.items(), key=lambda item: item[0]))
        if len(self._choices) < 4096:  # lines hold few factors: few combinations
            self._choices[bits] = verify
        return verify

    # ------------------------------------------------------- the first pass

    def _hyperscan(self, chunk: bytes) -> dict[int, int]:
        """Line start -> the prefilters found in it (bits), or ALL for an odd line."""
        self._hits.clear()
        self._overlong = False
        self._db.scan(chunk, match_event_handler=self._on_match)  # type: ignore[attr-defined]
        # Every hit ends just after its line's newline (a long line's on a
        # byte of it), so the line starts after the newline before that.
        found: dict[int, int] = {}
        odd = self._odd_id
        rfind = chunk.rfind
        for end, pattern in self._hits:
            start = rfind(b"\n", 0, end - 1) + 1
            found[start] = ALL if pattern >= odd else found.get(start, 0) | (1 << pattern)
        if self._overlong:
            self._mark_long(chunk, found)
        return found

    def _on_match(self, pattern: int, start: int, end: int, flags: int,
                  context: object) -> None:
        if pattern == self._long_id:
            self._overlong = True
        else:
            self._hits.append((end, pattern))

    def _plain(self, chunk: bytes) -> dict[int, int]:
        """Line start -> the factors found in it (bits), or ALL for an odd line."""
        found: dict[int, int] = {}
        get = found.get
        rfind = chunk.rfind
        lowered = chunk.lower() if self._caseless else chunk  # ASCII only, as Hyperscan's
        if self._automata is not None:
            for automaton, bits, caseless in self._automata:
                for factor, at, _ in automaton.find_matches_as_indexes(
                        lowered if caseless else chunk, overlapping=True):
                    start = rfind(b"\n", 0, at) + 1
                    found[start] = get(start, 0) | bits[factor]
        else:
            for bit, (text, caseless) in enumerate(self._factors):
                where = lowered if caseless else chunk
                find = where.find
                at = find(text)
                while at >= 0:
                    start = rfind(b"\n", 0, at) + 1
                    found[start] = get(start, 0) | (1 << bit)
                    at = find(text, chunk.index(b"\n", at))  # the next line's
        if not chunk.isascii() or chunk.translate(None, _NORMAL):  # both are fast
            for match in _ODD_BYTES.finditer(chunk):
                found[rfind(b"\n", 0, match.start()) + 1] = ALL
        self._mark_blank(chunk, found)
        self._mark_long(chunk, found)
        return found

    @staticmethod
    def _mark_blank(chunk: bytes, found: dict[int, int]) -> None:
        """Blank lines (empty, or spaces and tabs only) get ALL."""
        starts = [0] if chunk[:1] in (b"\n", b" ", b"\t") else []
        starts += [match.end() for match in _BLANK_LEAD.finditer(chunk)]  # one pass
        for start in starts:
            if not chunk[start:chunk.index(b"\n", start)].strip(b" \t"):
                found[start] = ALL

    def _mark_long(self, chunk: bytes, found: dict[int, int]) -> None:
        """Lines longer than the threshold get ALL: a window of that many bytes
        and one more holds a newline, or the line at its start is long."""
        long, pos, size = self._long, 0, len(chunk)
        while pos < size:
            newline = chunk.rfind(b"\n", pos, pos + long + 1)
            if newline < 0:
                found[pos] = ALL
                newline = chunk.index(b"\n", pos)
            pos = newline + 1
