"""The window: the same answers as a dict of lists, in less memory."""

from __future__ import annotations

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import PROPERTY
from syslogban.window import Window

KEYS = st.sampled_from(["192.0.2.1", "192.0.2.2", "198.51.100.7", "0.0.0.1",
                        "255.255.255.255", "2001:db8::1", "192.0.2.0/24", "10.1.2.3"])
EVENTS = st.tuples(st.floats(0, 1e10, allow_nan=False), st.integers(0, 5000),
                   st.integers(0, 20), st.integers(0, 17),
                   st.sampled_from(["postfix.sasl", "dovecot.auth", "sendmail.relay"]))
OPERATIONS = st.lists(st.tuples(st.sampled_from(["add", "get", "drop", "prune", "clear"]),
                                KEYS, EVENTS), max_size=60)


def add(window: Window, model: dict[str, list[object]], key: str, event: tuple) -> None:
    events = window.take(key)
    assert events == model.get(key, [])
    events += event
    window.put(key, events)
    model[key] = list(events)


@PROPERTY
@given(operations=OPERATIONS)
def test_the_window_answers_as_a_dict_of_lists(operations) -> None:
    window, model = Window(), {}
    for operation, key, event in operations:
        if operation == "add":
            add(window, model, key, event)
        elif operation == "get":
            assert window.get(key) == model.get(key)
        elif operation == "drop":
            window.drop(key)
            model.pop(key, None)
        elif operation == "clear":  # the blocker took the events and blocked
            window.take(key)
            model.pop(key, None)
        else:
            horizon = event[0]
            stale = [k for k, e in model.items() if e[-5] <= horizon]
            assert window.prune(horizon) == len(stale)
            for k in stale:
                del model[k]
        assert len(window) == len(model)
    for key in set(model) | {"203.0.113.9"}:
        assert window.get(key) == model.get(key)
    assert dict(window.items()) == model  # what a reload carries


@settings(max_examples=20, deadline=None)
@given(count=st.integers(1, 3000), step=st.sampled_from([1, 256, 65536, 16777216]))
def test_many_addresses_grow_and_prune_the_table(count: int, step: int) -> None:
    """Neighbouring addresses, and addresses that differ only in high bits."""
    window = Window()
    keys = list(dict.fromkeys(".".join(str(n * step >> s & 255) for s in (24, 16, 8, 0))
                              for n in range(count)))
    for n, key in enumerate(keys):
        window.put(key, window.take(key) + [float(n), 10, 1, 0, "postfix.sasl"])
    assert len(window) == len(keys)
    assert all(window.get(key) == [float(n), 10, 1, 0, "postfix.sasl"]
               for n, key in enumerate(keys))
    half = len(keys) // 2
    assert window.prune(half - 0.5) == half
    assert len(window) == len(keys) - half
    assert all(window.get(key) is None for key in keys[:half])
    assert all(window.get(key) == [float(n), 10, 1, 0, "postfix.sasl"]
               for n, key in enumerate(keys) if n >= half)


def test_one_event_per_address_costs_few_bytes() -> None:
    """The point of the table: a million offenders with one attempt each fit."""
    tracemalloc.start()
    window = Window()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(50_000):
        key = f"11.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        window.put(key, window.take(key) + [1.5e9 + n, 10, 1, 0, "postfix.sasl"])
    per_address = (tracemalloc.get_traced_memory()[0] - before) / 50_000
    tracemalloc.stop()
    assert len(window) == 50_000
    assert per_address < 60, per_address  # a dict of lists: about 230 bytes
