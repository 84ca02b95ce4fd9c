"""Adversarial cost: no record an attacker writes may cost more than BUDGET
through the whole detection path, for any signature under any program tag.

test_redos.py times each pattern alone. An attacker has more to play with:
one record passes the record parser, the check for signature text in
untagged records, the literal test and the anchored pattern of EVERY
signature its tag dispatches to, the session correlation and the attempt
accounting, then the blocker. Records built from the signatures' own words
make every one of those steps work (an 8 KiB Dovecot record of them cost
3-4.5 ms; an untagged one holding them took minutes in the check for
signature text). So this test SEARCHES for the worst record, per tag:

* seeds: for every signature, at every tag it applies to and under two header
  forms, 8 KiB records made of its literal, its sampled match, its examples
  and their near misses, each repeated and each followed or preceded by all
  literals of the tag's signatures, overlapping;
* search: the slowest seeds are mutated (a literal of the tag's signatures
  inserted, a slice pumped, two records spliced, a slice dropped) for a few
  rounds, keeping whatever costs more.

A record costs what it takes through the pipeline as a datagram or TCP frame
(feed_record) and as a line of a chunk (feed, the scanner first), plus the
blocker when it is an attack; the larger counts. Costs are this thread's CPU
time (what other processes take from a busy machine does not count), the
minimum of REPEATS runs; the search keeps the records that timed slowest,
which on a busy machine favours a timing that other processes disturbed
(caches, a shared core), so its last few are timed again FINAL_REPEATS
times and that minimum is what counts. `pytest -s` prints the worst
records per tag; the module's last line prints the worst case in ms/record.
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path
from collections.abc import Iterator
from fnmatch import fnmatchcase
from functools import cache
from re import _parser as sre_parse  # type: ignore[attr-defined]

from test_redos import Kinds, Sampler, _example_messages

from syslogban.config import load
from syslogban.decisions import Decisions
from syslogban.engine import Engine
from syslogban.record import DEFAULT_MAX_SIZE
from syslogban.signatures import Signature

ROOT = Path(__file__).resolve().parent.parent

BUDGET = 0.001               # seconds per record of DEFAULT_MAX_SIZE bytes
LIMIT = DEFAULT_MAX_SIZE - 1  # bytes of a record, its newline aside
REPEATS = 5                  # timings of a record; the minimum counts
KEEP = 6                     # seeds per tag that the search mutates
FINAL = 3                    # of those, the slowest timed again, FINAL_REPEATS times
FINAL_REPEATS = 25
ROUNDS = 40                  # mutations per tag
NOW = 1_800_000_000.0
HEADERS = ("<22>Nov 21 10:00:00 mx {tag}[123]: ", "<22>1 2026-11-21T10:00:00Z mx {tag} 123 - - ")


@dataclasses.dataclass
class Lab:
    """What the daemon runs: its engine (every signature on, the ones off by
    default too) and its decisions."""

    engine: Engine
    decisions: Decisions

    @classmethod
    def build(cls, rules: tuple[str, ...] = ()) -> Lab:
        config = load(None, None)
        values = {**config.values, "enable": ("all",), "allow_own_addresses": False,
                  "rules": rules}
        built = Engine.build(dataclasses.replace(config, values=values))
        return cls(built, Decisions(built.blocker_config()))

    def cost(self, record: bytes, repeats: int = REPEATS) -> float:
        """Seconds this record takes through the pipeline (the worse of both ways in)."""
        pipeline, decide = self.engine.pipeline, self.decisions.decide
        best_record = best_line = 1.0
        line = record + b"\n"
        for _ in range(repeats):
            start = time.thread_time()
            found = pipeline.feed_record(record, NOW)
            if found is not None:
                decide(found, NOW)
            best_record = min(best_record, time.thread_time() - start)
            start = time.thread_time()
            for detection in pipeline.feed(line, NOW):
                decide(detection, NOW)
            best_line = min(best_line, time.thread_time() - start)
        return max(best_record, best_line)


@cache
def shipped() -> Lab:
    return Lab.build()


def tags(signatures: list[Signature]) -> dict[str, list[Signature]]:
    """Every program tag a signature names (globs made concrete), an unknown
    one, and none (bare records), with the signatures each dispatches to."""
    names = {glob.replace("*", "x").replace("?", "x").replace("[", "").replace("]", "")
             for s in signatures for glob in s.programs} | {"unknown", ""}
    return {tag: [s for s in signatures if not s.programs or
                  any(fnmatchcase(tag, glob) for glob in s.programs)] for tag in sorted(names)}


def fill(head: str, unit: str, tail: str = "") -> bytes:
    """`head`, `unit` repeated, `tail`: LIMIT bytes (cut at a character)."""
    room = LIMIT - len((head + tail).encode())
    size = max(1, len(unit.encode()))
    return (head + unit * max(0, room // size) + tail).encode()[:LIMIT] \
        .decode(errors="ignore").encode()


def _texts(signature: Signature, examples: bool) -> Iterator[str]:
    """The signature's own words: its literal, a sampled match, and (with
    `examples`) its examples and their near misses."""
    yield signature.literal
    parsed = sre_parse.parse(signature.regex.pattern, signature.regex.flags)
    yield Sampler(parsed, Kinds(parsed)).text(parsed, at_least_once=True)
    for message in _example_messages(signature) if examples else ():
        yield message
        yield message[:-1] + ("X" if message[-1] != "X" else "Y")


def seeds(tag: str, signatures: list[Signature], every: list[Signature]) -> Iterator[bytes]:
    """`signatures`: those of the tag; `every`: all (an untagged record may hold any words)."""
    words = " ".join(s.literal for s in (signatures or every)) + " "
    for header in HEADERS:
        head = header.format(tag=tag) if tag else "<22>Nov 21 10:00:00 mx "
        yield fill(head, words)
        for signature in signatures or every:
            # Under its own tags a signature's examples too; every signature
            # without a tag gives only its literal and sample (they all apply).
            for text in _texts(signature, examples=bool(signatures)):
                yield fill(head, text + " ")
                yield fill(head + text, words)
                yield fill(head, words, text)
                yield fill(head, text)  # overlapping: no separator


def mutate(rng: random.Random, record: bytes, other: bytes, words: list[str]) -> bytes:
    text, how = record.decode(), rng.randrange(4)
    cut = rng.randrange(len(text) + 1)
    if how == 0:    # a literal of the tag's signatures, here
        text = text[:cut] + rng.choice(words) + text[cut:]
    elif how == 1:  # a slice pumped
        size = rng.randrange(1, 64)
        text = text[:cut] + text[cut:cut + size] * 64 + text[cut:]
    elif how == 2:  # spliced with another slow record
        text = text[:cut] + other.decode()[cut:]
    else:           # a slice dropped
        text = text[:cut] + text[cut + rng.randrange(1, 256):]
    return text.encode()[:LIMIT].decode(errors="ignore").encode()


def worst_for(lab: Lab, tag: str, signatures: list[Signature]) -> tuple[float, bytes]:
    """The slowest record the search finds for this tag: (seconds, record)."""
    every = lab.engine.signatures
    # Every seed timed once, the slowest again as the budget says.
    timed = sorted(((lab.cost(r, 1), r) for r in dict.fromkeys(seeds(tag, signatures, every))),
                   reverse=True)
    top = sorted(((lab.cost(r), r) for _, r in timed[:KEEP]), reverse=True)
    rng = random.Random(f"adversarial {tag}")
    words = [s.literal for s in signatures or every]
    for _ in range(ROUNDS):
        base, other = rng.choice(top)[1], rng.choice(top)[1]
        candidate = mutate(rng, base, other, words)
        spent = lab.cost(candidate)
        if spent > top[-1][0]:
            top = sorted([*top[:-1], (spent, candidate)], reverse=True)
    return max((lab.cost(r, FINAL_REPEATS), r) for _, r in top[:FINAL])


def test_no_record_costs_more_than_the_budget_through_the_pipeline() -> None:
    lab = shipped()
    results = {tag: worst_for(lab, tag, signatures)
               for tag, signatures in tags(lab.engine.signatures).items()}
    print(f"\nworst record per tag, through the pipeline (budget {BUDGET * 1e3:.1f} ms per "
          f"{LIMIT + 1}-byte record; min of {FINAL_REPEATS}):")
    for tag, (spent, record) in sorted(results.items(), key=lambda item: -item[1][0])[:10]:
        print(f"{spent * 1e3:7.3f} ms  {tag or '(no tag)':<24} {record[:90]!r}")
    tag, (worst, record) = max(results.items(), key=lambda item: item[1][0])
    print(f"adversarial worst case: {worst * 1e3:.3f} ms per record ({tag or 'no tag'})")
    assert worst <= BUDGET, (f"{worst * 1e3:.2f} ms for a record under tag {tag!r}: "
                             f"{record[:200]!r}...")


def test_the_search_finds_what_made_dovecot_slow(tmp_path: Path) -> None:
    """The search is not blind: given Dovecot's auth patterns as they were
    (the user field unbounded, `(?:...)*` before ",ADDR"), it finds records
    over the budget, and many times a plain record of the tag."""
    shipped_rules = (ROOT / "rules" / "dovecot.toml").read_text()
    bounded = "(?:(?!\\(given password: ).){0,64},<ADDR>"
    assert shipped_rules.count(bounded) >= 4
    (tmp_path / "dovecot.toml").write_text(
        shipped_rules.replace(bounded, bounded.replace("{0,64}", "*")))
    lab = Lab.build((str(tmp_path),))
    plain = lab.cost(fill(HEADERS[0].format(tag="auth"), "nothing to see here "))
    spent, record = worst_for(lab, "auth", tags(lab.engine.signatures)["auth"])
    print(f"\nunbounded Dovecot patterns: {spent * 1e3:.2f} ms, a plain record {plain * 1e3:.3f} ms")
    assert spent > BUDGET and spent > 10 * plain, (spent, plain, record[:100])
