"""The book of CrowdSec decisions: stream answers in, target changes out (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import NOW, PROPERTY
from syslogban.crowdsec.decisions import EARLY, Book, Decision, Update, go_duration


def entry(decision_id: int, value: str, duration: str = "4h", scope: str = "Ip",
          kind: str = "ban", origin: str = "cscli",
          scenario: str = "manual 'ban' from 'admin'") -> dict[str, Any]:
    return {"id": decision_id, "value": value, "duration": duration, "scope": scope,
            "type": kind, "origin": origin, "scenario": scenario}


def answer(new: list[dict[str, Any]] | None = None,
           deleted: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"new": new, "deleted": deleted}


ADMIN = "crowdsec:cscli/manual 'ban' from 'admin'"


@pytest.mark.parametrize(("text", "seconds"), [
    ("4h", 14400.0), ("3h59m58.5s", 14398.5), ("1m0s", 60.0), ("0s", 0.0), ("0", 0.0),
    ("-1m2s", -62.0), ("1.5h", 5400.0), ("500ms", 0.5), ("2µs", 2e-6), ("1h0m0.000000001s",
                                                                        3600.000000001),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "4", "h", "1x", "1h 2m", "--1s", "1e3s", "nan", "1h-2m"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        go_duration(text)


def test_startup_blocks_every_live_ban_with_its_origin() -> None:
    book = Book()
    applied = book.apply(answer([entry(1, "192.0.2.9"), entry(2, "198.51.100.0/24", "1h",
                                                             scope="Range")]),
                         NOW, startup=True)
    assert applied.updates == [Update("192.0.2.9", NOW + 14400, ADMIN),
                               Update("198.51.100.0/24", NOW + 3600, ADMIN)]
    assert [d.id for d in applied.added] == [1, 2]
    assert [u.decision for u in applied.updates] == [1, 2]


def test_1_4_writes_null_for_empty_lists() -> None:
    assert Book().apply({"deleted": None, "new": None}, NOW, startup=True).updates == []


def test_only_bans_of_scope_ip_and_range() -> None:
    book = Book()
    applied = book.apply(answer([entry(1, "192.0.2.1", kind="captcha"),
                                 entry(2, "FR", scope="Country"),
                                 entry(3, "bob", scope="Username"),
                                 entry(4, "192.0.2.4", scope="ip")]), NOW, startup=True)
    assert [u.target for u in applied.updates] == ["192.0.2.4"]
    assert book.counters.ignored == 3


@pytest.mark.parametrize("bad", [
    entry(1, "example.org"), entry(1, "192.0.2.0/24"), entry(1, "192.0.2.1", "forever"),
    {"id": "1", "value": "192.0.2.1", "duration": "1h", "scope": "Ip", "type": "ban"},
    {"value": "192.0.2.1", "duration": "1h", "scope": "Ip", "type": "ban"}, "192.0.2.1", None,
    # ids the state file cannot hold (an SQLite INTEGER): the book would know it, the file not
    entry(10**30, "192.0.2.1"), entry(2**63, "192.0.2.1"), entry(0, "192.0.2.1"),
    entry(-7, "192.0.2.1"),
])
def test_malformed_entries_are_counted_and_skipped(bad: Any) -> None:
    book = Book()
    applied = book.apply(answer([bad, entry(2, "192.0.2.2")]), NOW, startup=True)
    assert [u.target for u in applied.updates] == ["192.0.2.2"]
    assert book.counters.malformed == 1


def test_an_answer_that_is_not_a_stream_is_an_error() -> None:
    for bad in ([], "x", {"new": {"id": 1}}):
        with pytest.raises(ValueError, match="stream"):
            Book().apply(bad, NOW, startup=True)


def test_addresses_take_their_normal_form() -> None:
    applied = Book().apply(answer([entry(1, "::ffff:192.0.2.7"),
                                   entry(2, "2001:DB8:0::1"),
                                   entry(3, "192.0.2.77/24", scope="Range"),
                                   entry(4, "192.0.2.8/32", scope="Range")]),
                           NOW, startup=True)
    assert [u.target for u in applied.updates] == ["192.0.2.0/24", "192.0.2.7", "192.0.2.8",
                                                   "2001:db8::1"]


def test_an_admins_deletion_lifts_the_target() -> None:
    book = Book()
    book.apply(answer([entry(1, "192.0.2.9")]), NOW, startup=True)
    # cscli decisions delete moves the end to "now": a little in the past when served
    applied = book.apply(answer(deleted=[entry(1, "192.0.2.9", "-1.5s")]), NOW + 30, False)
    assert applied.updates == [Update("192.0.2.9", 0.0, ADMIN, lift=True)]
    assert applied.removed == [1] and book.by_id == {}


def test_an_expiry_needs_no_lift() -> None:
    book = Book()
    book.apply(answer([entry(1, "192.0.2.9", "1m")]), NOW, startup=True)
    applied = book.apply(answer(deleted=[entry(1, "192.0.2.9", "-3s")]), NOW + 63, False)
    assert applied.updates == [] and applied.removed == [1]


def test_several_decisions_for_one_target_the_longest_counts() -> None:
    book = Book()
    book.apply(answer([entry(1, "192.0.2.9", "1h")]), NOW, startup=True)
    longer = book.apply(answer([entry(2, "192.0.2.9", "5h", origin="crowdsec",
                                      scenario="crowdsecurity/ssh-bf")]), NOW + 10, False)
    assert longer.updates == [Update("192.0.2.9", NOW + 10 + 5 * 3600,
                                     "crowdsec:crowdsec/crowdsecurity/ssh-bf")]
    shorter = book.apply(answer([entry(3, "192.0.2.9", "2h")]), NOW + 20, False)
    assert shorter.updates == []  # the longest is unchanged
    # the longest deleted early: the next longest stands
    rest = book.apply(answer(deleted=[entry(2, "192.0.2.9", "0s")]), NOW + 30, False)
    assert rest.updates == [Update("192.0.2.9", NOW + 20 + 7200, ADMIN)]
    book.apply(answer(deleted=[entry(3, "192.0.2.9", "0s")]), NOW + 40, False)
    last = book.apply(answer(deleted=[entry(1, "192.0.2.9", "0s")]), NOW + 50, False)
    assert last.updates == [Update("192.0.2.9", 0.0, ADMIN, lift=True)]


def test_startup_after_a_restart_lifts_what_was_deleted_meanwhile() -> None:
    book = Book()
    book.restore([Decision(1, "192.0.2.1", NOW + 3600, ADMIN),
                  Decision(2, "192.0.2.2", NOW + 3600, ADMIN),
                  Decision(3, "192.0.2.3", NOW + 2, ADMIN)])
    applied = book.apply(answer([entry(2, "192.0.2.2", "1h")]), NOW, startup=True)
    # 1 is gone before its end (deleted); 3 simply ended; 2 is live and known
    assert applied.updates == [Update("192.0.2.1", 0.0, ADMIN, lift=True)]
    assert sorted(applied.removed) == [1, 3] and applied.added == []


def test_own_decisions_change_nothing_until_deleted_early() -> None:
    book = Book()
    own = Decision(7, "192.0.2.7", NOW + 7200, "crowdsec:syslogban/syslogban/postfix.sasl",
                   own=True)
    assert [d.id for d in book.own([own]).added] == [7]
    seen = book.apply(answer([entry(7, "192.0.2.7", "2h", origin="syslogban",
                                    scenario="syslogban/postfix.sasl")]), NOW + 1, False)
    assert seen.updates == [] and seen.added == []
    # a shorter remote decision for the same address: this host's block covers it
    other = book.apply(answer([entry(8, "192.0.2.7", "1h")]), NOW + 2, False)
    assert other.updates == []
    deleted = book.apply(answer(deleted=[entry(7, "192.0.2.7", "0s", origin="syslogban",
                                               scenario="syslogban/postfix.sasl"),
                                         entry(8, "192.0.2.7", "0s")]), NOW + 3, False)
    assert deleted.updates == [Update("192.0.2.7", 0.0, own.origin, lift=True)]
    assert deleted.updates[0].own


def test_own_deleted_early_while_a_remote_one_lives_hands_over_to_it() -> None:
    book = Book()
    book.own([Decision(7, "192.0.2.7", NOW + 7200, "crowdsec:syslogban/x", own=True)])
    assert book.apply(answer([entry(8, "192.0.2.7", "1h")]), NOW, False).updates == []
    applied = book.apply(answer(deleted=[entry(7, "192.0.2.7", "0s")]), NOW + 1, False)
    assert applied.updates == [Update("192.0.2.7", NOW + 3600, ADMIN)]


def test_in_force_lists_the_remote_blocks_not_this_hosts_own() -> None:
    book = Book()
    book.own([Decision(7, "192.0.2.7", NOW + 7200, "crowdsec:syslogban/x", own=True)])
    book.apply(answer([entry(8, "192.0.2.7", "1h"), entry(9, "192.0.2.9", "1h"),
                       entry(10, "192.0.2.9", "2h")]), NOW, False)
    assert book.in_force() == [Update("192.0.2.9", NOW + 7200, ADMIN)]
    assert book.in_force()[0].decision == 10


def test_a_longer_remote_decision_outlasts_an_own_block() -> None:
    book = Book()
    book.own([Decision(7, "192.0.2.7", NOW + 600, "crowdsec:syslogban/x", own=True)])
    applied = book.apply(answer([entry(8, "192.0.2.7", "1h")]), NOW, False)
    assert applied.updates == [Update("192.0.2.7", NOW + 3600, ADMIN)]


def test_a_new_own_block_forgets_the_decisions_of_the_previous_one() -> None:
    book = Book()
    book.own([Decision(7, "192.0.2.7", NOW + 120, "crowdsec:syslogban/x", own=True)])
    applied = book.own([Decision(9, "192.0.2.7", NOW + 600, "crowdsec:syslogban/x", own=True)])
    assert applied.removed == [7] and set(book.by_id) == {9}
    # the old one's expiry, reported late, lifts nothing
    assert book.apply(answer(deleted=[entry(7, "192.0.2.7", "-1s")]), NOW + 121,
                      False).updates == []
    assert book.forget_own("192.0.2.7") == [9] and book.by_id == {}


def test_origin_text_is_printable_and_bounded() -> None:
    applied = Book().apply(answer([entry(1, "192.0.2.1", scenario="evil\x1b[2J\n" + "x" * 500)]),
                           NOW, startup=True)
    origin = applied.updates[0].origin
    assert origin.startswith("crowdsec:cscli/evil?[2J?x") and origin.isprintable()
    assert len(origin) <= len("crowdsec:") + 160


@PROPERTY
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(0, 3), st.integers(-10, 7200),
                          st.booleans()), max_size=40))
def test_book_matches_a_simple_model(steps: list[tuple[int, int, int, bool]]) -> None:
    """After any stream of new/deleted entries, every target that has live
    decisions has been reported with the end of its longest one, and every
    target whose last decision was deleted early has been lifted."""
    book, now = Book(), NOW
    enforced: dict[str, float] = {}
    live: dict[int, tuple[str, float]] = {}
    for decision_id, host, seconds, delete in steps:
        now += 1
        target = f"192.0.2.{host}"
        if delete and decision_id in live:
            target = live[decision_id][0]
            body = answer(deleted=[entry(decision_id, target, "-0.5s")])
        else:
            body = answer([entry(decision_id, target, f"{seconds}s")])
        for update in book.apply(body, now, startup=False).updates:
            if update.lift:
                enforced.pop(update.target, None)
            else:
                enforced[update.target] = update.until
        live = {d.id: (d.target, d.until) for d in book.by_id.values()}
    expected: dict[str, float] = {}
    for target, until in live.values():
        expected[target] = max(until, expected.get(target, 0.0))
    for target, until in expected.items():
        assert enforced.get(target) == until
    for target in set(enforced) - set(expected):
        assert enforced[target] <= now + EARLY  # only expiries are left to run out
