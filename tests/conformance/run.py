"""Scores syslogban's signatures against fail2ban's test corpus and prints the table.

    .venv/bin/python tests/conformance/run.py              # table, then every miss, FP, exclusion
    .venv/bin/python tests/conformance/run.py --markdown   # the table for README.md
    .venv/bin/python tests/conformance/run.py --filter postfix --filter exim

Exit status: 0 when both runs find their share of the attacks (score.TARGET_PERCENT) with no false
positive, 1 when a target is missed, 2 when the corpus cannot be had.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

if not __package__:  # run as a script: make the `conformance` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.corpus import Filter, load_filter  # noqa: E402
from conformance.differences import DIFFERENCES  # noqa: E402
from conformance.fetch import CorpusUnavailable, Package, load_package  # noqa: E402
from conformance.score import (  # noqa: E402
    FILTERS, RUNS, TARGET_PERCENT, Finding, Outcome, Report, Score, score_all)

# The order of the lists after the table, and their headings.
SECTIONS: tuple[tuple[str, tuple[Outcome, ...]], ...] = (
    ("missed", (Outcome.MISSED, Outcome.WRONG_ADDRESS)),
    ("false positives", (Outcome.FALSE_POSITIVE,)),
    ("excluded (deliberate differences)", (Outcome.EXCLUDED,)),
    ("not applicable", (Outcome.NOT_APPLICABLE,)),
    ("unannotated detections (not scored)", (Outcome.UNANNOTATED,)),
)
COLUMNS = ("filter", "attacks", "found", "missed", "FP", "found %", "n/a", "excluded",
           "unannotated")


def load_filters(package: Package, names: Sequence[str] = FILTERS) -> list[Filter]:
    return [load_filter(name, package.logs, package.filters) for name in names]


def conformance(names: Sequence[str] = FILTERS) -> Report:
    """Both runs on the named filters of the corpus (raises CorpusUnavailable)."""
    package = load_package()
    return score_all(load_filters(package, names), package.version)


def _row(score: Score) -> tuple[str, ...]:
    return (score.filter, str(score.attacks), str(score.found), str(score.missed),
            str(score.false_positives), f"{score.percent:.1f}",
            str(score.count(Outcome.NOT_APPLICABLE)), str(score.count(Outcome.EXCLUDED)),
            str(score.count(Outcome.UNANNOTATED)))


def _run_title(run: str) -> str:
    return next(f"run {r.name}: {r.description}" for r in RUNS if r.name == run)


def print_table(report: Report, out: TextIO) -> None:
    """The plain-text table: per run, one row per filter and the total."""
    print(f"fail2ban {report.version} test corpus", file=out)
    for run in report.runs():
        rows = [COLUMNS] + [_row(s) for s in report.of_run(run)] + [_row(report.total(run))]
        widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
        print(f"\n{_run_title(run)}", file=out)
        for n, row in enumerate(rows):
            if n == len(rows) - 1:
                print("  ".join("-" * w for w in widths), file=out)
            print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                            for i, (cell, w) in enumerate(zip(row, widths))), file=out)


def print_details(report: Report, out: TextIO) -> None:
    """Every miss, false positive, exclusion and n/a line, per filter and run."""
    for score in report.scores:
        sections = [(title, score.listed(*outcomes)) for title, outcomes in SECTIONS]
        if not any(found for _, found in sections):
            continue
        print(f"\n== {score.filter}, run {score.run}", file=out)
        for title, findings in sections:
            if findings:
                print(f"  {title}:", file=out)
                for finding in findings:
                    print(_describe(finding), file=out)
    if report.unused_differences:
        print("\nunused deliberate differences (stale entries of differences.py):", file=out)
        for difference in report.unused_differences:
            print(f"  {difference.filter}: /{difference.pattern}/ ({difference.reason})", file=out)


def _describe(finding: Finding) -> str:
    facts = []
    if finding.outcome is Outcome.WRONG_ADDRESS:
        facts.append("wrong address")
    if finding.expected:
        facts.append(f"expected {', '.join(finding.expected)}")
    if finding.detected:
        facts.append(f"detected {finding.detected}")
    if finding.note:
        facts.append(finding.note)
    return (f"    {finding.file}:{finding.lineno}: {'; '.join(facts)}\n"
            f"      {finding.text}")


def print_targets(report: Report, out: TextIO) -> None:
    problems = report.failures()
    if problems:
        print("\ntargets NOT met:", file=out)
        for problem in problems:
            print(f"  {problem}", file=out)
    else:
        print(f"\ntargets met: >= {TARGET_PERCENT['default']:g} % / {TARGET_PERCENT['all']:g} % "
              "of attacks found (default / all), "
              "no false positive", file=out)


def print_markdown(report: Report, out: TextIO) -> None:
    """The README table: the plain-text table's rows, both runs, in Markdown."""
    print(f"fail2ban {report.version} test corpus\n", file=out)
    print("| run | " + " | ".join(COLUMNS) + " |", file=out)
    print("|---|---|" + "|".join(["--:"] * (len(COLUMNS) - 1)) + "|", file=out)
    for run in report.runs():
        for score in report.of_run(run):
            print(f"| {run} | " + " | ".join(_row(score)) + " |", file=out)
        total = _row(report.total(run))
        print(f"| **{run}** | " + " | ".join(f"**{cell}**" for cell in total) + " |", file=out)
    print("\nDeliberate differences (tests/conformance/differences.py):\n", file=out)
    print("| filter | runs | lines annotated as | matching | reason |", file=out)
    print("|---|---|---|---|---|", file=out)
    for d in DIFFERENCES:
        runs = ", ".join(r for r in report.runs() if r in d.runs)
        kind = {None: "any", True: "attack", False: "no attack"}[d.attack]
        pattern = d.pattern.replace("|", "\\|")  # a bar would end the table cell
        print(f"| {d.filter} | {runs} | {kind} | `{pattern}` | {d.reason} |", file=out)


def render(report: Report) -> str:
    """The full text report: table, lists and the verdict."""
    out = io.StringIO()
    print_table(report, out)
    print_details(report, out)
    print_targets(report, out)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the README table only")
    parser.add_argument("--filter", action="append", choices=FILTERS, metavar="NAME",
                        help="score only this filter (repeatable)")
    args = parser.parse_args(argv)
    try:
        report = conformance(args.filter or FILTERS)
    except CorpusUnavailable as exc:
        print(f"conformance: corpus unavailable: {exc}", file=sys.stderr)
        return 2
    if args.markdown:
        print_markdown(report, sys.stdout)
    else:
        sys.stdout.write(render(report))
    return 1 if report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
