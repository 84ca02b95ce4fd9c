"""The bridge's outbox and book in the state file."""

from __future__ import annotations

import threading
from pathlib import Path

from conftest import NOW
from syslogban.blocker import Block
from syslogban.crowdsec.decisions import Decision
from syslogban.crowdsec.store import Store
from syslogban.state import State


def test_operations_wait_in_order_and_survive_a_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    State(path).close()
    store = Store(path)
    first = store.queue("192.0.2.1", "alert", {"since": NOW, "evidence": 3})
    second = store.queue("192.0.2.2", "alert", {"since": NOW})
    follow = store.finish([first.id], [("192.0.2.1", "lookup", {"alert_id": 4})],
                          added=[Decision(9, "192.0.2.9", NOW + 60, "crowdsec:cscli/x")])
    store.close()
    again = Store(path)
    assert [(o.target, o.kind, o.body) for o in again.operations()] == [
        ("192.0.2.2", "alert", {"since": NOW}), ("192.0.2.1", "lookup", {"alert_id": 4})]
    assert [o.id for o in again.operations()] == [second.id, follow[0].id]
    assert again.decisions() == [Decision(9, "192.0.2.9", NOW + 60, "crowdsec:cscli/x")]
    again.finish([second.id, follow[0].id], removed=[9])
    assert again.operations() == [] and again.decisions() == []


def test_the_daemon_and_the_bridge_write_at_once(tmp_path: Path) -> None:
    """Two connections, two threads: SQLite (WAL) serialises them, nothing is lost."""
    path = str(tmp_path / "state.db")
    state, store = State(path), Store(path)

    def blocks() -> None:
        for n in range(200):
            state.record([(Block(f"192.0.2.{n % 250}", NOW, NOW + 60, "score", 30, (), 1, 30),
                           [])], {})

    thread = threading.Thread(target=blocks)
    thread.start()
    for n in range(200):
        store.queue(f"198.51.100.{n % 250}", "alert", {"n": n})
    thread.join()
    assert len(store.operations()) == 200 and state.count() == 200
