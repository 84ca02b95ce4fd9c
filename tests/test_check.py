"""`check` as a library: parallel ranges give exactly the sequential result."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from syslogban import check as check_module
from syslogban.blocker import BlockerConfig
from syslogban.check import check, check_path
from syslogban.signatures import load_rules, select

SIGNATURES = select(load_rules(), enable=["all"])
SAMPLE = Path(__file__).resolve().parent.parent / "contrib" / "sample" / "mail.log"
NOW = 1_800_000_000.0


def mixed_log(tmp_path: Path) -> Path:
    """The sample log shuffled with odd lines, so range cuts land anywhere."""
    rng = random.Random(5)
    lines = SAMPLE.read_bytes().splitlines()
    odd = [b"", b"   ", b"\xff\xfe broken", b"ctrl \x01 char", b"x" * 9000, b"bare text"]
    mixed = lines + [rng.choice(odd) for _ in range(200)]
    rng.shuffle(mixed)
    path = tmp_path / "mixed.log"
    path.write_bytes(b"\n".join(mixed))  # and no newline at the very end
    return path


@pytest.mark.parametrize("processes", [2, 3, 7])
def test_parallel_ranges_equal_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           processes: int) -> None:
    path = mixed_log(tmp_path)
    serial_out = io.StringIO()
    with open(path, "rb") as stream:
        serial = check(stream, SIGNATURES, jsonl=serial_out, replay=None,
                       max_size=8192, now=NOW)
    monkeypatch.setattr(check_module, "PARALLEL_MIN_BYTES", 0)
    with open(tmp_path / "parallel.jsonl", "w+") as parallel_out:
        parallel = check_path(str(path), SIGNATURES, jsonl=parallel_out, replay=None,
                              max_size=8192, processes=processes, now=NOW)
        parallel_out.seek(0)
        assert parallel_out.read() == serial_out.getvalue()
    assert parallel.processes == processes
    assert serial.processes == 1
    assert parallel.counters == serial.counters
    assert parallel.addresses == serial.addresses
    assert serial.counters.lines == 1700
    assert set(serial.counters.rejected) == {"empty", "invalid-utf8", "control-char", "too-long"}
    assert serial_out.getvalue().count("\n") == sum(serial.counters.attacks.values()) > 100


@pytest.mark.parametrize("processes", [2, 3])
def test_parallel_ranges_count_a_line_written_to_two_logs_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int) -> None:
    """Exim's main and reject log (two severities): the parent, which counts the
    ranges' attempts, knows the copies as the pipeline does, across range cuts too."""
    path = tmp_path / "exim.log"
    with open(path, "w") as log:
        for n in range(600):
            line = (f"Dec  3 10:13:38 mx exim[{9000 + n}]: LOGIN authenticator failed for (vm) "
                    f"[198.51.100.{n % 200}]: 535 Incorrect authentication data\n")
            log.write(f"<22>{line}<21>{line}")
    monkeypatch.setattr(check_module, "PARALLEL_MIN_BYTES", 0)
    parallel = check_path(str(path), SIGNATURES, jsonl=None, replay=None, max_size=8192,
                          processes=processes, now=NOW)
    assert parallel.processes == processes
    assert sum(parallel.attempts.values()) == 600  # was 900 and more: each range's copies
    assert sum(parallel.addresses.values()) == 1200


def test_small_files_and_replay_stay_in_one_process(tmp_path: Path) -> None:
    path = mixed_log(tmp_path)
    assert check_path(str(path), SIGNATURES, jsonl=None, replay=None, max_size=8192,
                      processes=4, now=NOW).processes == 1
    result = check_path(str(path), SIGNATURES, jsonl=None, replay=BlockerConfig(),
                        max_size=8192,
                        processes=4, now=NOW)
    assert result.processes == 1 and result.replay is not None and result.replay.blocks


def test_missing_file_raises_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        check_path(str(tmp_path / "nope"), SIGNATURES, jsonl=None, replay=None,
                   max_size=8192, processes=2)


def test_the_first_range_is_shorter_for_the_attempts_it_counts() -> None:
    """The parent process checks the first range, then counts the attempts of
    the whole file: with that at a fifth of the cost of checking, two ranges
    split the file 40:60 (and 1:3-ish more with the bindings' warm-up)."""
    from syslogban.check import _shares
    assert [round(s, 6) for s in _shares(2, 0.0, 0.2)] == [0.4, 1.0]
    assert [round(s, 6) for s in _shares(4, 0.0, 0.0)] == [0.25, 0.5, 0.75, 1.0]
    first, last = _shares(3, 0.25, 0.2)[0], _shares(3, 0.25, 0.2)[-1]
    assert 0 < first < 1 / 3 and round(last, 6) == 1.0
