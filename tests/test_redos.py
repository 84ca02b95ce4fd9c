"""ReDoS budget: no shipped signature may take long on any record an attacker writes.

Every candidate record runs one anchored pattern per signature of its program,
in the one thread that reads the log; a pattern that backtracks badly lets a
single client stall detection for everybody. So each shipped signature is timed
on adversarial messages (the text after the syslog header, where its pattern
runs), up to the record limit:

* runs: for every repeat of the pattern (nested ones too), a text that leads
  the engine to it (the pattern's own prefix, sampled from its parse tree)
  followed by a long run of each kind of character the repeat accepts, and
  by a sample of its body pumped over and over, then the end or a character
  it rejects: the classic `(x+)+` catastrophic input;
* near misses: each inline example's message with its last character changed,
  with its tail repeated up to the limit, and with a character at each of
  PUMP places pumped into a long run in place.

Kinds of character come from the parse tree: characters that every atom of the
pattern treats alike (the same literals and classes accept them) behave alike,
so one of each kind stands for all.

Each message is timed once; the RETIME slowest per signature are timed
REPEATS times more and the minimum kept, which is robust to a busy machine
without timing everything several times. The budget is for one record of the
default size limit. `pytest -s tests/test_redos.py` prints the table.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from functools import cache
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import pytest

from syslogban.record import DEFAULT_MAX_SIZE, Malformed, RecordParser
from syslogban.signatures import Signature, _children, load_rules, make_signature

BUDGET = 0.005               # seconds per record of DEFAULT_MAX_SIZE bytes
LIMIT = DEFAULT_MAX_SIZE     # a message is at most the record, in UTF-8 bytes
REPEATS = 3                  # timings of a slow candidate; the minimum counts
RETIME = 5                   # how many of a signature's slowest candidates are retimed
PUMP = 32                    # positions of an example message pumped into runs
NOW = 1_800_000_000.0

# Every character a message can hold that might matter: printable ASCII, tab
# (the only control character a record may carry) and some beyond ASCII that
# \w, \s or \d accept in Python's Unicode mode.
ALPHABET = ("".join(chr(c) for c in range(0x20, 0x7F)) + "\t"
            + "é\u00a0\u2003日٣_\U0001F600")

_REPEAT_OPS = (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT)
_ATOMS = (sre_parse.LITERAL, sre_parse.NOT_LITERAL, sre_parse.ANY, sre_parse.IN)


@cache
def signatures() -> tuple[Signature, ...]:
    """Every shipped signature, the ones off by default too."""
    return tuple(load_rules())


# --- characters, as the pattern sees them --------------------------------------------

def _category(code: Any, flags: int) -> Callable[[str], bool]:
    text = {sre_parse.CATEGORY_DIGIT: r"\d", sre_parse.CATEGORY_NOT_DIGIT: r"\D",
            sre_parse.CATEGORY_SPACE: r"\s", sre_parse.CATEGORY_NOT_SPACE: r"\S",
            sre_parse.CATEGORY_WORD: r"\w", sre_parse.CATEGORY_NOT_WORD: r"\W"}[code]
    regex = re.compile(text, flags & re.ASCII)
    return lambda ch: regex.match(ch) is not None


def _accepts(op: Any, arg: Any, flags: int) -> Callable[[str], bool]:
    """A predicate: does this single-character atom accept `ch`?"""
    if op is sre_parse.LITERAL:
        test = lambda ch: ord(ch) == arg  # noqa: E731
    elif op is sre_parse.NOT_LITERAL:
        test = lambda ch: ord(ch) != arg  # noqa: E731
    elif op is sre_parse.ANY:
        test = lambda ch: ch != "\n"  # noqa: E731
    else:
        negate = False
        tests: list[Callable[[str], bool]] = []
        for item, value in arg:
            if item is sre_parse.NEGATE:
                negate = True
            elif item is sre_parse.LITERAL:
                tests.append(lambda ch, v=value: ord(ch) == v)
            elif item is sre_parse.RANGE:
                tests.append(lambda ch, v=value: v[0] <= ord(ch) <= v[1])
            elif item is sre_parse.CATEGORY:
                tests.append(_category(value, flags))
        test = lambda ch: any(t(ch) for t in tests) != negate  # noqa: E731
    if flags & re.IGNORECASE:
        return lambda ch: test(ch) or test(ch.lower()) or test(ch.upper())
    return test


def _atoms(items: Any, flags: int) -> Iterator[Callable[[str], bool]]:
    """The single-character atoms of `items`, as predicates, inline flags applied."""
    for op, arg in items:
        if op in _ATOMS:
            yield _accepts(op, arg, flags)
        elif op is sre_parse.SUBPATTERN:
            yield from _atoms(arg[3], (flags | arg[1]) & ~arg[2])
        else:
            for child in _children(op, arg):
                yield from _atoms(child, flags)


class Kinds:
    """The characters of ALPHABET in kinds: alike for every atom of a pattern."""

    def __init__(self, parsed: Any) -> None:
        self.flags = parsed.state.flags
        self.atoms = list(_atoms(parsed, self.flags))
        kinds: dict[tuple[bool, ...], str] = {}
        for ch in ALPHABET:
            kinds.setdefault(tuple(atom(ch) for atom in self.atoms), ch)
        self.representatives = list(kinds.values())

    def accepted_by(self, items: Any) -> list[str]:
        """One character of every kind that some atom of `items` accepts."""
        atoms = list(_atoms(items, self.flags))
        return [ch for ch in self.representatives if any(atom(ch) for atom in atoms)]

    def sample(self, op: Any, arg: Any) -> str:
        """A character this atom accepts, preferring plain ones."""
        accepts = _accepts(op, arg, self.flags)
        return next((ch for ch in "a0A .-:,=_[]" + ALPHABET if accepts(ch)), "")


# --- texts that reach each repeat ------------------------------------------------------

class Sampler:
    """Short texts that match parts of a pattern: what leads the engine to a repeat."""

    def __init__(self, parsed: Any, kinds: Kinds) -> None:
        self.kinds = kinds
        self.groups: dict[int, str] = {}
        self.contexts: list[tuple[str, Any]] = []  # (text before, repeat node)
        self._walk(parsed, "")

    def text(self, items: Any, at_least_once: bool = False) -> str:
        """A text matching `items` (repeats as few times as allowed, or once)."""
        out = []
        for op, arg in items:
            if op in _ATOMS:
                out.append(self.kinds.sample(op, arg))
            elif op is sre_parse.SUBPATTERN:
                body = self.text(arg[3], at_least_once)
                if arg[0] is not None:
                    self.groups[arg[0]] = body
                out.append(body)
            elif op in _REPEAT_OPS:
                count = max(arg[0], 1) if at_least_once else arg[0]
                out.append(self.text(arg[2], at_least_once) * count)
            elif op is sre_parse.BRANCH:
                out.append(self.text(arg[1][0], at_least_once))
            elif op is sre_parse.ATOMIC_GROUP:
                out.append(self.text(arg, at_least_once))
            elif op is sre_parse.GROUPREF:
                out.append(self.groups.get(arg, ""))
            elif op is sre_parse.GROUPREF_EXISTS:
                branch = arg[1] if arg[0] in self.groups else arg[2]
                out.append(self.text(branch or [], at_least_once))
        return "".join(out)

    def _walk(self, items: Any, before: str) -> str:
        """Records (text before, node) for every repeat; returns the text after `items`."""
        for op, arg in items:
            if op in _REPEAT_OPS:
                self.contexts.append((before, (op, arg)))
            for child in _children(op, arg):  # groups, alternatives, lookaround
                self._walk(child, before)
            before += self.text([(op, arg)])
        return before


# --- adversarial messages ---------------------------------------------------------------

def _fill(head: str, unit: str, tail: str = "") -> str:
    """`head`, then `unit` repeated, then `tail`: at most LIMIT bytes of UTF-8."""
    room = LIMIT - len((head + tail).encode())
    size = len(unit.encode())
    if room <= 0 or not size:
        return (head + tail).encode()[:LIMIT].decode(errors="ignore")
    return head + unit * (room // size) + tail


def _example_messages(signature: Signature) -> list[str]:
    parser = RecordParser()
    messages = []
    for example in signature.examples:
        for line in (*example.context, example.line):
            try:
                messages.append(parser.parse(line.encode(), NOW).message)
            except Malformed:
                pass
    return list(dict.fromkeys(m for m in messages if m))


def adversarial(signature: Signature) -> Iterator[tuple[str, str]]:
    """(how it was made, message) pairs for `signature`."""
    parsed = sre_parse.parse(signature.regex.pattern, signature.regex.flags)
    kinds = Kinds(parsed)
    sampler = Sampler(parsed, kinds)
    for before, (_op, arg) in sampler.contexts:
        body = arg[2]
        accepted = kinds.accepted_by(body)
        rejected = [ch for ch in kinds.representatives if ch not in accepted][:3]
        for ch in accepted:
            yield f"run of {ch!r} after {before[-20:]!r}", _fill(before, ch)
        pumped = sampler.text(body, at_least_once=True)
        if pumped:
            yield f"({pumped[:12]!r})+ after {before[-20:]!r}", _fill(before, pumped)
            for ch in rejected:
                yield (f"({pumped[:12]!r})+{ch!r} after {before[-20:]!r}",
                       _fill(before, pumped, ch))
    for message in _example_messages(signature):
        last = message[-1]
        for ch in (c for c in "X!0 " if c != last):
            yield f"example, last char {ch!r}: {message[:30]!r}", message[:-1] + ch
        for size in (1, 2, 3, 5, 8, 13, 32):
            tail = message[-size:]
            yield f"example, tail {tail!r} repeated", _fill(message, tail)
        step = max(1, len(message) // PUMP)
        for i in range(0, len(message), step):
            yield (f"example, {message[i]!r} pumped at {i}: {message[:30]!r}",
                   _fill(message[:i], message[i], message[i:]))


def _time_once(regex: re.Pattern[str], message: str) -> float:
    start = time.perf_counter()
    regex.match(message)
    return time.perf_counter() - start


@cache
def worst_case(sig_id: str) -> tuple[float, str, int]:
    """(worst time of one match, what the message was, how many were tried)."""
    signature = next(s for s in signatures() if s.id == sig_id)
    regex = signature.regex
    timed = []
    seen: set[str] = set()
    for label, message in adversarial(signature):
        if message not in seen:
            seen.add(message)
            assert len(message.encode()) <= LIMIT, label
            timed.append((_time_once(regex, message), label, message))
    timed.sort(key=lambda t: t[0], reverse=True)
    worst, label = 0.0, ""
    for _, candidate_label, message in timed[:RETIME]:
        best = min(_time_once(regex, message) for _ in range(REPEATS))
        if best > worst:
            worst, label = best, candidate_label
    return worst, label, len(timed)


@pytest.mark.parametrize("sig_id", [s.id for s in signatures()])
def test_signature_within_budget(sig_id: str) -> None:
    worst, label, _ = worst_case(sig_id)
    assert worst <= BUDGET, (f"{sig_id}: {worst * 1e3:.2f} ms on {label} "
                             f"(budget {BUDGET * 1e3:.0f} ms per {LIMIT}-byte record)")


def test_worst_case_table() -> None:
    """The table of worst times, slowest first (shown with `pytest -s`)."""
    rows = sorted(((*worst_case(s.id), s.id) for s in signatures()), reverse=True)
    print(f"\nReDoS worst case per record of {LIMIT} bytes "
          f"(budget {BUDGET * 1e3:.1f} ms; min of {REPEATS}):")
    print(f"{'ms':>7}  {'tried':>5}  {'signature':<40} input")
    for worst, label, tried, sig_id in rows:
        print(f"{worst * 1e3:7.3f}  {tried:5d}  {sig_id:<40} {label}")
    assert len(rows) == len(signatures())


def test_the_inputs_expose_catastrophic_backtracking() -> None:
    """The generator's inputs do find exponential backtracking where it exists.

    Cut to 26 characters: the time doubles with every character (at 8 KiB it
    would never end), and 26 already take several times the budget.
    """
    bad = make_signature("demo.bad", "demo", "nested repeats", ("demo",),
                         r"login: (?:\w+\s?)+ from <ADDR>")
    assert any(_time_once(bad.regex, message[:26]) > BUDGET
               for _, message in adversarial(bad))
