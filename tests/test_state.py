"""The state file: round trips, migrations, privacy, failures that say why."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from syslogban.blocker import Block, History
from syslogban.durations import PERMANENT
from syslogban.state import MIGRATIONS, State, StateError

B1 = Block("192.0.2.1", 100.0, 220.0, "score", 30, ("postfix.sasl",), 1, 30)
B2 = Block("2001:db8::/64", 100.0, PERMANENT, "manual", 0, (), 2, 0)


def test_round_trip_with_permanent_blocks_history_and_evidence(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    state.record([(B1, ["line one", "line two"]), (B2, [])],
                 {"192.0.2.1": History(1, 30), "2001:db8::/64": History(2, 0)})
    state.close()
    again = State(tmp_path / "state.db")
    active, history, ended = again.load(now=150.0)
    assert sorted(active, key=lambda b: b.target) == [B1, B2]
    assert history == {"192.0.2.1": History(1, 30), "2001:db8::/64": History(2, 0)}
    assert ended == [] and again.evidence("192.0.2.1") == ["line one", "line two"]


def test_blocks_that_ended_while_down_are_returned_once_and_removed(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    state.record([(B1, []), (B2, [])], {})
    active, _, ended = state.load(now=1000.0)
    assert active == [B2] and ended == [B1]
    assert state.load(now=1000.0)[2] == [] and state.count() == 1


def test_history_outlives_the_block(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    state.record([(B1, [])], {"192.0.2.1": History(1, 30)})
    state.remove(["192.0.2.1"])
    state.save_history({"192.0.2.1": History(1, 45)})
    assert state.load(now=0.0)[:2] == ([], {"192.0.2.1": History(1, 45)})


def test_file_is_private_and_its_directory_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "state.db"
    State(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.chmod(path, 0o644)
    State(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_schema_version_and_a_file_from_the_future(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    assert State(path).version == len(MIGRATIONS)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StateError, match="newer than this syslogban"):
        State(path)


def test_wal_mode_and_durable_commits(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    assert state._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert state._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    durable = State(tmp_path / "durable.db", durable=True)
    assert durable._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_read_only_database_fails_with_state_error_not_sqlite_error(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    state._db.execute("PRAGMA query_only=ON")
    with pytest.raises(StateError, match="cannot write"):
        state.record([(B1, [])], {})
    with pytest.raises(StateError, match="cannot write"):
        state.remove(["192.0.2.1"])


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="state file"):
        State(path)


def test_memory_state_for_dry_runs() -> None:
    state = State(":memory:")
    state.record([(B1, [])], {})
    assert state.count() == 1


def test_a_restore_skips_logs_and_counts_rows_it_cannot_restore(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An older syslogban took a block of a million years; a hand-edited or
    damaged file holds worse. Those rows are skipped, each logged, and
    counted; every other block comes back."""
    state = State(tmp_path / "state.db")
    state.record([(B1, []), (B2, [])], {})
    state.close()
    db = sqlite3.connect(tmp_path / "state.db")
    bad = [("198.51.100.1", 100.0, 150.0 + 1e20), ("198.51.100.2", 100.0, 150.0 + 3660 * 86400),
           ("mail.example.org", 100.0, 220.0), ("224.0.0.1", 100.0, None),
           ("0.0.0.0/0", 100.0, 220.0), ("::FFFF:192.0.2.9", 100.0, 220.0),
           ("198.51.100.3", "soon", 220.0)]
    db.executemany("INSERT INTO blocks (target, since, until, reason, score, signatures, nth,"
                   " lifetime, evidence) VALUES (?, ?, ?, 'manual', 0, '[]', 1, 0, '[]')", bad)
    db.execute("INSERT INTO blocks (target, since, until, reason, score, signatures, nth,"
               " lifetime, evidence) VALUES ('198.51.100.4', 100, 220, 'score', 30, 'not json',"
               " 1, 30, '[]')")
    db.commit()
    db.close()
    again = State(tmp_path / "state.db")
    with caplog.at_level("WARNING", logger="syslogban.state"):
        active, _, ended = again.load(now=150.0)
    assert sorted(active, key=lambda b: b.target) == [B1, B2] and ended == []
    assert again.skipped == len(bad) + 1
    logged = caplog.text
    for target, *_ in bad:
        assert f"block row {target!r} not restored" in logged
    assert "beyond the longest block" in logged and "never blocked" in logged
    assert again.count() == 2 + len(bad) + 1  # left in the file for the admin


def test_counts_past_sqlites_integers_are_stored_at_its_limit(tmp_path: Path) -> None:
    """A block with an absurd count (a fleet peer's lifetime of 2**63 - 1, raised
    by one more attack) is still written: an overflow would fail the write and
    every later one that waits with it."""
    huge = Block("192.0.2.1", 100.0, 220.0, "score", 2**70, (), 2**64, 2**63)
    state = State(tmp_path / "state.db")
    state.record([(huge, [])], {"192.0.2.1": History(2**64, 2**63)})
    state.close()
    active, history, _ = State(tmp_path / "state.db").load(now=150.0)
    limit = 2**63 - 1
    assert [(b.score, b.nth, b.lifetime) for b in active] == [(limit, limit, limit)]
    assert history == {"192.0.2.1": History(limit, limit)}
