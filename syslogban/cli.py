"""The `syslogban` command line: argument parsing and error reporting only."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .check import DEFAULT_SESSIONS, check_path, default_processes, report
from .examples import check_examples
from .record import DEFAULT_MAX_SIZE
from .signatures import RuleError, Signature, load_rules, make_signature, select


class UsageError(Exception):
    """A mistake on the command line, reported without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (RuleError, UsageError) as exc:
        print(f"syslogban: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"syslogban: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `syslogban check ... | head`
        sys.stderr.close()
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syslogban", description="Blocks mail-server attackers from syslog records.")
    parser.add_argument("--version", action="version", version=f"syslogban {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rules_options = argparse.ArgumentParser(add_help=False)
    rules_options.add_argument(
        "--rules", metavar="DIR", action="append", type=Path,
        help="load rule files (*.toml) from DIR instead of the bundled rules (repeatable)")
    selection = argparse.ArgumentParser(add_help=False)
    selection.add_argument("--enable", metavar="ID|SERVICE|all", action="append", default=[],
                           help="turn on signatures that are off by default (repeatable)")
    selection.add_argument("--disable", metavar="ID|SERVICE|all", action="append", default=[],
                           help="turn signatures off (repeatable)")

    p = commands.add_parser(
        "check", parents=[rules_options, selection],
        help="show what syslogban recognises in a log file",
        description="Reads a log (FILE, or - for stdin) and reports which records matched "
                    "which signature, what was rejected and why, and the top addresses.")
    p.add_argument("file", metavar="FILE|-")
    p.add_argument("--jsonl", action="store_true",
                   help="print one JSON object per attack on stdout (summary on stderr)")
    p.add_argument("--replay", action="store_true",
                   help="run the default scoring over the log's own timestamps")
    p.add_argument("--pattern", metavar="REGEX", action="append", default=[],
                   help="test an ad-hoc pattern with <ADDR> instead of the rules (repeatable)")
    p.add_argument("--program", metavar="TAG", action="append", default=[],
                   help="program tag (glob) the --pattern applies to (repeatable; "
                        "default: any record)")
    p.add_argument("--max-record-size", metavar="BYTES", type=int, default=DEFAULT_MAX_SIZE,
                   help="reject records longer than this (default %(default)s)")
    p.add_argument("--scanner", choices=("auto", "hyperscan", "plain"), default="auto",
                   help="line prefilter engine (default: hyperscan when installed)")
    p.add_argument("--sessions", metavar="N", type=int, default=DEFAULT_SESSIONS,
                   help="remember at most N session ids for multi-line signatures "
                        "(default %(default)s; the oldest is forgotten first)")
    p.add_argument("--processes", metavar="N", type=int, default=default_processes(),
                   help="check a large file in N processes (default: the CPUs, at most 4)")
    p.set_defaults(func=_check)

    p = commands.add_parser("rules", help="list, show or check signatures")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("list", parents=[rules_options, selection],
                           help="list signatures and whether they are in use")
    a.set_defaults(func=_rules_list)
    a = actions.add_parser("show", parents=[rules_options], help="print a signature as loaded")
    a.add_argument("id")
    a.set_defaults(func=_rules_show)
    a = actions.add_parser("check", parents=[rules_options],
                           help="validate rule files and run their inline examples")
    a.set_defaults(func=_rules_check)
    return parser


def _signatures(args: argparse.Namespace) -> tuple[list[Signature], list[Signature]]:
    """(all loaded, in use)."""
    loaded = load_rules(args.rules)
    return loaded, select(loaded, args.enable, args.disable)


def _check(args: argparse.Namespace) -> int:
    if args.max_record_size < 64:
        raise UsageError("--max-record-size must be at least 64 bytes")
    if args.processes < 1 or args.sessions < 1:
        raise UsageError("--processes and --sessions must be at least 1")
    if args.program and not args.pattern:
        raise UsageError("--program goes with --pattern")
    if args.pattern:
        active = [make_signature(f"pattern.{n}", "pattern", "ad-hoc --pattern",
                                 tuple(args.program), text)
                  for n, text in enumerate(args.pattern, start=1)]
    else:
        active = _signatures(args)[1]
    result = check_path(args.file, active, jsonl=sys.stdout if args.jsonl else None,
                        replay=args.replay, max_size=args.max_record_size,
                        scanner_engine=args.scanner, sessions=args.sessions,
                        processes=args.processes)
    name = "<stdin>" if args.file == "-" else args.file
    report(name, result, active, sys.stderr if args.jsonl else sys.stdout)
    return 0


def _rules_list(args: argparse.Namespace) -> int:
    loaded, active = _signatures(args)
    in_use = {s.id for s in active}
    for s in loaded:
        state = "on " if s.id in in_use else "off"
        print(f"{state}  {s.id:<40} danger {s.danger:<4} {s.description}")
    print(f"{len(in_use)} of {len(loaded)} signatures in use")
    return 0


def _rules_show(args: argparse.Namespace) -> int:
    for s in load_rules(args.rules):
        if s.id == args.id:
            print(f"id           {s.id}\nservice      {s.service}\n"
                  f"description  {s.description}\nsource       {s.source}\n"
                  f"enabled      {'yes' if s.enabled else 'no (turn on with --enable)'}\n"
                  f"danger       {s.danger}\nprograms     {', '.join(s.programs) or '(any)'}\n"
                  f"pattern      {s.pattern}\nliteral      {s.literal!r}"
                  f"{' (any case)' if s.caseless else ''}")
            for e in s.examples:
                print(f"{e.kind:<15}{e.address or '-':<16} {e.line}")
            return 0
    raise UsageError(f"no signature '{args.id}' (see 'syslogban rules list')")


def _rules_check(args: argparse.Namespace) -> int:
    loaded = load_rules(args.rules)
    failures = check_examples(loaded)
    examples = sum(len(s.examples) for s in loaded)
    for failure in failures:
        print(failure)
    print(f"{len(loaded)} signatures, {examples} examples, {len(failures)} failed")
    return 1 if failures else 0
