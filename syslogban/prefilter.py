"""Prefilters looked for in Python, in linear time.

Rules of this file:
* Pure. It answers one question for the matcher: does some signature's
  prefilter (signatures._prefilter) occur in this line? The scanner answers
  it with Hyperscan for most lines; this file for the lines it hands over
  whole (long or odd ones, datagrams, TCP frames) and for the plain engine.
* Time linear in the line, whatever the line holds. A prefilter is literal
  runs and alternatives of them joined by "anything within the line";
  Python's regex engine backtracks over every such gap, so `a.*b.*c` costs
  the cube of the line's length on a line full of a's and b's: an 8 KiB
  record of the signatures' own words took minutes.

Theory of operation: each prefilter is expanded into its alternatives (at
most a few dozen in the bundled rules), each a sequence of fixed strings
that must occur in order with anything between them. A sequence occurs iff
taking each string at its first occurrence after the previous one finds
them all, which str.find does in C. Caseless prefilters compare ASCII
letters without case, as Hyperscan does.
"""

from __future__ import annotations

from collections.abc import Iterable
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

Sequence = tuple[str, ...]


def sequences(expression: str) -> list[Sequence]:
    """The alternatives of a prefilter, each as the strings it needs in order."""
    found = []
    for option in _expand(sre_parse.parse(expression)):
        strings, run = [], ""
        for part in option:
            if part is None:  # a gap: the run so far is one string
                strings.append(run)
                run = ""
            else:
                run += part
        strings.append(run)
        found.append(tuple(s for s in strings if s))
    return list(dict.fromkeys(found))


def _expand(items: Any) -> list[list[str | None]]:
    """Every way through `items`: characters, and None for "anything"."""
    options: list[list[str | None]] = [[]]
    for op, arg in items:
        if op is sre_parse.LITERAL:
            ways: list[list[str | None]] = [[chr(arg)]]
        elif op is sre_parse.MAX_REPEAT:  # [^\n]*, the only repeat a prefilter has
            ways = [[None]]
        elif op is sre_parse.SUBPATTERN:
            ways = _expand(arg[3])
        elif op is sre_parse.BRANCH:
            ways = [way for branch in arg[1] for way in _expand(branch)]
        else:
            raise ValueError(f"not a prefilter: {op}")
        options = [option + way for option in options for way in ways]
    return options


class AnyPrefilter:
    """Whether a line holds some prefilter of a set (the matcher's prefilters())."""

    __slots__ = ("_exact", "_caseless")

    def __init__(self, prefilters: Iterable[tuple[str, bool]]) -> None:
        self._exact: list[Sequence] = []
        self._caseless: list[Sequence] = []
        for expression, caseless in prefilters:
            if caseless:
                self._caseless += [tuple(s.translate(_ASCII_LOWER) for s in seq)
                                   for seq in sequences(expression)]
            else:
                self._exact += sequences(expression)

    def search(self, line: str) -> bool:
        if _any_in(self._exact, line):
            return True
        return bool(self._caseless) and _any_in(self._caseless, line.translate(_ASCII_LOWER))


def _any_in(options: list[Sequence], line: str) -> bool:
    first: dict[str, int] = {}  # a string that begins several options is found once
    for strings in options:
        if not strings:
            return True  # a prefilter of nothing but "anything"
        at = first.get(strings[0])
        if at is None:
            at = first[strings[0]] = line.find(strings[0])
        end = at + len(strings[0])
        for text in strings[1:]:
            if at < 0:
                break
            at = line.find(text, end)
            end = at + len(text)
        if at >= 0:
            return True
    return False
