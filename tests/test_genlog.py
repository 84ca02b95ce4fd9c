"""Checks for the benchmark log generator tests/bench/genlog.py.

The generator is not part of the syslogban package, so it is loaded from its
path. A few thousand lines keep the whole file well under two seconds.
"""

import importlib.util
import itertools
import re
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType

import pytest

GENLOG_PATH = Path(__file__).parent / "bench" / "genlog.py"
LINES = 4000
RFC3164 = re.compile(
    r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ( [1-9]|[12]\d|3[01]) "
    r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d mx1 \S+: \S")


def _load_genlog() -> ModuleType:
    spec = importlib.util.spec_from_file_location("genlog", GENLOG_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["genlog"] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


genlog = _load_genlog()


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return list(genlog.generate(LINES, seed=11))


def test_same_arguments_give_identical_output(lines: list[str]) -> None:
    assert list(genlog.generate(LINES, seed=11)) == lines
    assert list(genlog.generate(LINES, seed=12)) != lines


def test_line_count_and_written_file(lines: list[str], tmp_path: Path) -> None:
    assert len(lines) == LINES
    out = tmp_path / "mail.log"
    genlog.write(out, LINES, seed=11)
    assert out.read_bytes() == "".join(f"{line}\n" for line in lines).encode()


@pytest.mark.parametrize("ratio", [0.0, 0.07, 0.3])
def test_attack_ratio_within_tolerance(ratio: float) -> None:
    labelled = list(genlog.generate_labeled(LINES, seed=3, attack_ratio=ratio))
    attacks = [line for line in labelled if line.attacker is not None]
    assert abs(len(attacks) / LINES - ratio) < 0.02
    # The label names the address the line is about (mapped ones unmapped).
    assert all(line.attacker in line.text for line in attacks)


def test_every_line_starts_with_rfc3164_timestamp(lines: list[str]) -> None:
    bad = [line for line in lines if not RFC3164.match(line)]
    assert bad == []


def test_single_digit_days_are_space_padded() -> None:
    first = next(genlog.generate(1, start=datetime(2026, 11, 1, 8, 5, 3)))
    assert first.startswith("Nov  1 08:05:03 mx1 ")


def test_timestamps_never_go_backwards(lines: list[str]) -> None:
    stamps = [datetime.strptime(f"2026 {line[:15]}", "%Y %b %d %H:%M:%S")
              for line in lines]
    assert stamps[0] == genlog.DEFAULT_START
    assert all(a <= b for a, b in itertools.pairwise(stamps))
    assert stamps[-1] > stamps[0]
