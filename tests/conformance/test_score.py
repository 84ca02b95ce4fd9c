"""The scorer, on a hand-written corpus and two made-up signatures: which lines
each run considers, and how a detection becomes found, missed or a false positive."""

from __future__ import annotations

from conformance.corpus import load_filter
from conformance.differences import ALL, DEFAULT, OFF_BY_DEFAULT, Difference
from conformance.score import Outcome, Report, Score, score_all
from syslogban.signatures import make_signature

CORPUS = b"""\
# filterOptions: [{}, {"mode": "aggressive"}]
# failJSON: { "match": true, "host": "192.0.2.1" }
Jan  1 00:00:01 mx svc[1]: bad login from 192.0.2.1
# failJSON: { "match": true, "host": "192.0.2.2" }
Jan  1 00:00:02 mx svc[1]: bad login from 192.0.2.99 for 192.0.2.2
# failJSON: { "match": true, "host": "mail.example.com" }
Jan  1 00:00:03 mx svc[1]: bad login from mail.example.com
# failJSON: { "match": true, "host": "::ffff:192.0.2.4" }
Jan  1 00:00:04 mx svc[1]: bad login from ::ffff:192.0.2.4
# failJSON: { "match": true, "host": "192.0.2.5" }
Jan  1 00:00:05 mx svc[1]: nothing we know from 192.0.2.5
# failJSON: { "match": false }
Jan  1 00:00:06 mx svc[1]: slow client from 192.0.2.6
Jan  1 00:00:07 mx svc[1]: bad login from 192.0.2.7
# failJSON: { "match": true, "host": "192.0.2.8" }
Jan  1 00:00:08 mx svc[1]: bad login from 192.0.2.8 (known scanner)

# filterOptions: [{"mode": "ddos"}, {"mode": "aggressive"}]
# failJSON: { "match": true, "host": "192.0.2.9" }
Jan  1 00:00:09 mx svc[1]: slow client from 192.0.2.9
# failJSON: { "match": false }
Jan  1 00:00:10 mx svc[1]: bad login from 192.0.2.10 (a good one)

# filterOptions: [{"mode": "extra"}]
# failJSON: { "match": false }
Jan  1 00:00:11 mx svc[1]: bad login from 192.0.2.11 (harmless only in extra mode)
"""

SIGNATURES = [
    make_signature("svc.bad-login", "svc", "login failed", ("svc",), r"bad login from <ADDR>"),
    make_signature("svc.slow", "svc", "slow client", ("svc",), r"slow client from <ADDR>",
                   enabled=False),
]
KNOWN_SCANNER = Difference("svc", r"known scanner", "a made-up reason")
UNUSED = Difference("svc", r"no such line", "stale")


def _report(has_modes: bool = True) -> Report:
    filter_ = load_filter("svc", {"svc": CORPUS}, {"svc": "mode = normal" if has_modes else ""})
    return score_all([filter_], "test", SIGNATURES, [KNOWN_SCANNER, UNUSED])


def _outcomes(score: Score) -> dict[int, Outcome]:
    return {f.lineno: f.outcome for f in score.findings}


def test_default_run_scores_default_mode_blocks_with_default_signatures() -> None:
    report = _report()
    (score,) = report.of_run("default")
    assert _outcomes(score) == {
        3: Outcome.FOUND,
        5: Outcome.WRONG_ADDRESS,    # the daemon's field is not the annotated one
        7: Outcome.NOT_APPLICABLE,   # a hostname
        9: Outcome.FOUND,            # IPv4-mapped is IPv4
        11: Outcome.MISSED,
        14: Outcome.UNANNOTATED,
        16: Outcome.EXCLUDED,
        # 13: "slow client" is no false positive: its signature is not a default one
        # 20, 22, 26: blocks of modes the default run does not consider
    }
    assert (score.attacks, score.found, score.missed, score.false_positives) == (4, 2, 2, 0)
    assert score.percent == 50.0
    assert report.unused_differences == [UNUSED]


def test_all_run_scores_every_attack_and_aggressive_non_attacks() -> None:
    (score,) = _report().of_run("all")
    outcomes = _outcomes(score)
    assert outcomes[13] is Outcome.FALSE_POSITIVE  # harmless even in aggressive mode
    assert outcomes[20] is Outcome.FOUND           # a ddos-mode attack, signature enabled
    assert outcomes[22] is Outcome.FALSE_POSITIVE
    assert 26 not in outcomes                      # harmless in extra mode only: not considered
    missed = score.listed(Outcome.MISSED)
    assert [(f.lineno, f.note) for f in missed] == [
        (11, "program='svc' message='nothing we know from 192.0.2.5'")]


def test_a_filter_without_modes_has_every_non_attack_in_its_aggressive_scope() -> None:
    (score,) = _report(has_modes=False).of_run("all")
    assert _outcomes(score)[26] is Outcome.FALSE_POSITIVE


def test_failures_name_the_missed_targets() -> None:
    assert _report().failures() == [
        "run default: 50.0 % of attacks found (target 99 %)",
        "run all: 60.0 % of attacks found (target 99.5 %)",  # 3 of 5
        "run all, svc: 2 false positives",
    ]


def test_differences_can_be_limited_to_attacks_and_runs() -> None:
    slow_attacks = Difference("svc", r"slow client", "made up", ALL, attack=True)
    filter_ = load_filter("svc", {"svc": CORPUS}, {"svc": "mode = normal"})
    (score,) = score_all([filter_], "test", SIGNATURES, [slow_attacks]).of_run("all")
    outcomes = _outcomes(score)
    assert outcomes[13] is Outcome.FALSE_POSITIVE and outcomes[20] is Outcome.EXCLUDED


def test_an_off_by_default_claim_must_hold_in_the_all_run() -> None:
    claim = Difference("svc", r"nothing we know", OFF_BY_DEFAULT + "svc.none", DEFAULT)
    filter_ = load_filter("svc", {"svc": CORPUS}, {"svc": "mode = normal"})
    report = score_all([filter_], "test", SIGNATURES, [claim])
    assert report.false_claims() == [
        f"svc:11: excluded as {claim.reason!r}, but --enable all does not find it"]
