"""Prefilters in Python: the same answer as the regular expression, in linear time."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from conftest import PROPERTY
from syslogban.prefilter import AnyPrefilter, sequences
from syslogban.signatures import load_rules

GAP = "[^\\n]*"
# As signatures._prefilter writes them: literal runs, alternatives (some
# holding gaps), gaps; and the bundled ones.
SHAPES = [("Invalid user ", False), ("auth failed", True),
          (f"disconnect from {GAP}auth=0/", False),
          (f"(?:ab{GAP}cd|b)e{GAP}(?:f|gh{GAP}i)", False),
          (f"(?:Login|LOGIN) {GAP}FAILED", True)]
BUNDLED = sorted({(s.prefilter, s.caseless) for s in load_rules()})


def test_an_expression_becomes_its_alternatives_of_strings_in_order() -> None:
    assert sequences(f"(?:ab{GAP}cd|b)e{GAP}(?:f|gh{GAP}i)") == [
        ("ab", "cde", "f"), ("ab", "cde", "gh", "i"), ("be", "f"), ("be", "gh", "i")]
    assert sequences("\\x61\\x62") == [("ab",)]


@given(st.lists(st.sampled_from(["ab", "cd", "b", "e", "f", "gh", "i", "x", " ", "AB", "E",
                                 "Invalid user ", "AUTH FAILED", "disconnect from ",
                                 "auth=0/", "login", "FAILED"]), max_size=12))
@PROPERTY
def test_the_same_answer_as_the_regular_expressions(pieces: list[str]) -> None:
    line = "".join(pieces)
    for shape in SHAPES:
        expected = re.search(shape[0], line, re.IGNORECASE if shape[1] else 0) is not None
        assert AnyPrefilter([shape]).search(line) == expected, (shape, line)


def test_every_bundled_prefilter_is_found_in_its_own_matches() -> None:
    finder = {shape: AnyPrefilter([shape]) for shape in BUNDLED}
    for signature in load_rules():
        for example in signature.examples:
            if example.address is None:  # lines that must not match
                continue
            if signature.regex.search(example.line) is None:
                continue  # reported late, by the record that names the address (matcher.py)
            assert finder[(signature.prefilter, signature.caseless)].search(example.line), \
                (signature.id, example.line)
