"""The `syslogban` command line: argument parsing and error reporting only."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from . import config as configuration
from .blocker import BlockerConfig
from .check import DEFAULT_SESSIONS, check_path, default_processes, report
from .durations import format_duration, parse_duration
from .errors import SyslogbanError
from .examples import check_examples, check_session_examples
from .pipeline import shorten, untagged_summary
from .record import DEFAULT_MAX_SIZE
from .signatures import Signature, load_rules, load_session_examples, make_signature, select


class UsageError(SyslogbanError):
    """A mistake on the command line, reported without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SyslogbanError as exc:
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
                   help="run the scoring over the log's own timestamps (the default "
                        "policy, or the one of --config)")
    p.add_argument("--config", metavar="FILE",
                   help="with --replay: replay this configuration's policy (scoring, "
                        "services, allow-list; also its rules, enable and disable)")
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

    p = commands.add_parser(
        "run", help="run the daemon",
        description="Receives syslog records, blocks attackers. Every configuration key "
                    "is also a flag; flags override the file.")
    configuration.add_flags(p)
    p.set_defaults(func=_run)

    control = argparse.ArgumentParser(add_help=False)
    control.add_argument("--control", metavar="PATH",
                         help="the daemon's control socket (default: from --config, "
                              "else /run/syslogban/control.sock)")
    control.add_argument("--config", metavar="FILE", help="read the control path from here")
    for name, text in (("status", "show the running daemon's configuration and counters"),
                       ("reload", "reload rules, allow-list and configuration")):
        p = commands.add_parser(name, parents=[control], help=text)
        p.set_defaults(func=_control_command)
    p = commands.add_parser("list", parents=[control], help="list active blocks")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=_control_command)
    p = commands.add_parser("block", parents=[control], help="block an address or prefix")
    p.add_argument("target", metavar="ADDR")
    p.add_argument("--for", dest="duration", metavar="DURATION", default="permanent",
                   type=_duration_text,
                   help="30s, 10m, 2h, 1d, 1w (at most 3650d) or permanent (default)")
    p.add_argument("--replace", action="store_true",
                   help="replace a block in force that lasts longer")
    p.set_defaults(func=_control_command)
    for name, text in (("unblock", "lift a block now"),
                       ("why", "show the evidence, signatures and score behind a block")):
        p = commands.add_parser(name, parents=[control], help=text)
        p.add_argument("target", metavar="ADDR")
        p.set_defaults(func=_control_command)

    p = commands.add_parser("fleet", help="set up or look at the fleet's database (PostgreSQL)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("init", help="create or migrate the fleet schema (idempotent)",
                           description="Run as the schema's owner (contrib/postgresql/README.md).")
    a.add_argument("--dsn", required=True, metavar="URI",
                   help="libpq URI, e.g. postgresql://syslogban@db.example.org/syslogban")
    a.set_defaults(func=_fleet_init)
    a = actions.add_parser("status", help="the hosts, their last contact and backlog")
    a.add_argument("--dsn", metavar="URI", help="default: [fleet] dsn of --config")
    a.add_argument("--config", metavar="FILE", help="read the dsn from here")
    a.add_argument("--json", action="store_true", help="as JSON")
    a.set_defaults(func=_fleet_status)

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


def _duration_text(text: str) -> str:
    """A duration as the daemon will read it, checked here so that a bad one
    is refused before any daemon is asked."""
    try:
        parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _run(args: argparse.Namespace) -> int:
    from .daemon import run
    return run(args.config, args)


def _control_command(args: argparse.Namespace) -> int:
    from .control import request  # the daemon's modules only for the daemon's commands
    path = args.control or configuration.load(args.config).control
    command: dict[str, object] = {"command": args.command}
    if args.command in ("block", "unblock", "why"):
        command["target"] = args.target
    if args.command == "block":
        command["for"] = args.duration
        command["replace"] = args.replace
    answer = request(path, command)
    if args.command == "list" and not args.json:
        _print_blocks(answer["blocks"])
    elif args.command == "status":
        _print_status(answer)
    elif args.command == "why":
        _print_why(answer)
    else:
        answer.pop("ok")
        print(json.dumps(answer, indent=2 if args.command != "list" else None))
    return 0


def _print_blocks(blocks: list[dict[str, object]]) -> None:
    for b in blocks:
        print(f"{b['target']:<39}  {b['reason']:<9}  {b['duration']:>9}  "
              f"score {b['score']:<4}  {', '.join(b['signatures'])}")  # type: ignore[arg-type]
    print(f"{len(blocks)} active blocks")


def _print_status(answer: dict[str, object]) -> None:
    c: dict[str, object] = answer["counters"]  # type: ignore[assignment]
    cfg: dict[str, object] = answer["config"]  # type: ignore[assignment]
    print(f"syslogban {answer['version']}, up {format_duration(float(answer['uptime']))}, "  # type: ignore[arg-type]
          f"backend {answer['backend']}, {answer['signatures']} signatures")
    print(f"scoring   threshold {cfg['threshold']} (attempts {cfg['attempts'] or 'off'}) "
          f"within {cfg['window']}s; block {cfg['block_time']}s x{cfg['multiplier']} "
          f"up to {cfg['max_block_time']}s; blacklist {cfg['blacklist'] or 'off'}")
    print(f"records   {c['records_read']} read, {c['records_parsed']} parsed, "
          f"rejected {c['records_rejected'] or 0}, filtered {c['records_filtered']}")
    if c.get("records_untagged"):
        print(f"untagged  {untagged_summary(int(c['records_untagged']))}")  # type: ignore[call-overload]
        print(f"  e.g. {shorten(str(c['untagged_sample']))}")
    print(f"attacks   {c['attacks'] or 0}")
    print(f"blocks    {c['blocks_active']} active, blocker {c['blocker']}")
    print(f"firewall  {c['batches']} batches, {c['backend_errors']} errors, "
          f"{c['repairs']} repairs; state errors {c['state_errors']}")
    print(f"inputs    {c['inputs']}")
    print("rule files " + ", ".join(answer["rule_files"]))  # type: ignore[arg-type]
    print("allow      " + ", ".join(answer["allow"]))  # type: ignore[arg-type]
    print("config    " + json.dumps(cfg))


def _print_why(answer: dict[str, object]) -> None:
    print(f"{answer['target']}{'  (allow-listed: never blocked)' if answer['allowed'] else ''}")
    block = answer.get("block")
    if block:
        covered = f" (as part of {answer['covered_by']})" if answer.get("covered_by") else ""
        print(f"blocked   {block['reason']} for {block['duration']}{covered}, score "  # type: ignore[index]
              f"{block['score']}, block #{block['nth']}: {', '.join(block['signatures'])}")  # type: ignore[index]
    else:
        print("blocked   no")
    if answer.get("history"):
        print(f"history   {answer['history']}")
    attempts: dict[str, int] = answer.get("attempts") or {}  # type: ignore[assignment]
    if attempts:
        print("attempts  " + ", ".join(f"{n} {service}" for service, n in sorted(attempts.items()))
              + " (within the window)")
    groups: list[dict[str, object]] = answer.get("per_attempt") or []  # type: ignore[assignment]
    if groups:
        for group in groups:  # the lines of one attempt together
            print(f"  attempt of line {group['attempt']} ({group['service']}):")
            for line in group["lines"]:  # type: ignore[attr-defined]
                print(f"    {line}")
    else:
        for line in answer.get("evidence") or []:  # type: ignore[attr-defined]
            print(f"  {line}")


def _fleet_init(args: argparse.Namespace) -> int:
    from .fleet.admin import init
    print(init(args.dsn))
    return 0


def _fleet_status(args: argparse.Namespace) -> int:
    from .fleet.admin import status
    dsn = args.dsn or configuration.load(args.config).fleet.dsn
    if not dsn:
        raise UsageError("no fleet configured: give --dsn or a [fleet] dsn in --config")
    answer = status(dsn)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"fleet schema version {answer['version']}, {len(answer['hosts'])} hosts, "
          f"{answer['active_decisions']} active decisions, "
          f"{answer['events_last_hour']} events in the last hour")
    for h in answer["hosts"]:
        print(f"{h['name']:<32} last contact {h['last_contact']}  backlog {h['backlog']}  "
              f"events sent {h['last_seq']}")
    return 0


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
    if args.config and not args.replay:
        raise UsageError("--config goes with --replay")
    config = configuration.load(args.config) if args.config else None
    if config is not None:  # its signatures, where the command line names none
        args.rules = args.rules or [Path(d) for d in config.rules] or None
        args.enable = [*config.enable, *args.enable]
        args.disable = [*config.disable, *args.disable]
    if args.pattern:
        active = [make_signature(f"pattern.{n}", "pattern", "ad-hoc --pattern",
                                 tuple(args.program), text)
                  for n, text in enumerate(args.pattern, start=1)]
    else:
        active = _signatures(args)[1]
    policy = None
    if args.replay:
        policy = (BlockerConfig() if config is None else
                  config.blocker(configuration.resolve_allow(config.allow)))
    result = check_path(args.file, active, jsonl=sys.stdout if args.jsonl else None,
                        replay=policy, max_size=args.max_record_size,
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
    from .signatures import risks
    loaded = load_rules(args.rules)
    sessions = load_session_examples(args.rules)
    failures = check_examples(loaded) + check_session_examples(loaded, sessions)
    examples = sum(len(s.examples) for s in loaded)
    for failure in failures:
        print(failure)
    # Risky constructs (ReDoS) are warnings: they never change the exit status.
    warnings = [f"{s.source}: {s.id}: warning: {risk}" for s in loaded for risk in risks(s)]
    for warning in warnings:
        print(warning)
    print(f"{len(loaded)} signatures, {examples} examples, {len(sessions)} session examples, "
          f"{len(failures)} failed, "
          f"{len(warnings)} warnings")
    return 1 if failures else 0
