"""The fuzz target's corpus, replayed in the normal test suite; a short fuzz run.

Why: the seed corpus holds the inputs worth keeping (attack lines of every
service, injections, odd framing, and every crash the fuzzer ever found, once
added), so each test run checks them against the fuzz target's invariants
without atheris. The short run lets atheris mutate them for a few seconds where
it is installed.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fuzz_pipeline
from fuzz_pipeline import FuzzInput, InvariantViolation, check, decode, encode

HERE = Path(__file__).resolve().parent
CORPUS = sorted((HERE / "corpus").iterdir())
SHORT_RUNS = 4000  # about 5 s: the long run is in README.md


def test_corpus_has_seeds() -> None:
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_file_keeps_the_invariants(path: Path) -> None:
    check(path.read_bytes())


def test_encode_and_decode_are_inverse() -> None:
    for octet, max_size, piece in [(False, 8192, 4096), (True, 64, 1), (True, 512, 300)]:
        case = FuzzInput(b"5 hello\n", octet, max_size, piece)
        assert decode(encode(case.stream, octet=octet, max_size=max_size, piece=piece)) == case


@pytest.mark.skipif(fuzz_pipeline.atheris is None, reason="atheris not installed")
def test_fallback_decoder_is_atheris_own() -> None:
    """Without atheris the corpus decodes exactly as under atheris."""
    rng = random.Random(7)
    for _ in range(2000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 9)))
        assert (decode(data, fuzz_pipeline.atheris.FuzzedDataProvider)
                == decode(data, fuzz_pipeline._Provider))


def test_check_catches_a_wrong_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The invariants bite: an address that is not in the text is a violation."""
    def wrong(address: str, text: str) -> bool:
        return False
    monkeypatch.setattr(fuzz_pipeline, "written_in", wrong)
    with pytest.raises(InvariantViolation, match="is not in"):
        check((HERE / "corpus" / "sshd-invalid-user").read_bytes())


@pytest.mark.skipif(fuzz_pipeline.atheris is None,
                    reason="atheris not installed (.venv/bin/pip install atheris)")
def test_short_fuzz_run(tmp_path: Path) -> None:
    """A few thousand mutated inputs; libFuzzer writes new inputs and crashes to tmp_path."""
    corpus = tmp_path / "corpus"
    shutil.copytree(HERE / "corpus", corpus)
    result = subprocess.run(
        [sys.executable, str(HERE / "fuzz_pipeline.py"), str(corpus), f"-runs={SHORT_RUNS}",
         f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"fuzzing found a violation (input saved in {tmp_path}):\n{result.stderr[-4000:]}")
