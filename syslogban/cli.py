"""The `syslogban` command line: argument parsing and error reporting only."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from . import __version__, display, heap
from . import config as configuration
from .blocker import BlockerConfig
from .check import (DEFAULT_SESSIONS, check_path, default_processes, print_lines, report,
                    summary)
from .durations import parse_duration
from .errors import SyslogbanError, os_error
from .examples import check_examples, check_session_examples
from .record import DEFAULT_MAX_SIZE
from .signatures import (RuleError, Signature, load_rules, load_session_examples,
                         make_signature, select)


class UsageError(SyslogbanError):
    """A mistake on the command line, reported without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's own parser, with its usage, not the top one's
        args.usage.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command != "check":  # check reads a configuration only when told (--replay)
        args.config = configuration.config_path(getattr(args, "config", None))
    try:
        status = int(args.func(args))
        sys.stdout.flush()  # here, not at exit: a reader gone meanwhile is caught below
        return status
    except SyslogbanError as exc:
        for line in str(exc).splitlines():  # a configuration: one line per problem
            print(f"syslogban: error: {line}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `syslogban check ... | head`: an OSError, caught first
        return _reader_gone()
    except OSError as exc:
        print(f"syslogban: error: {os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _reader_gone() -> int:
    """The reader of our output left (head, less): stop quietly, as a program
    killed by SIGPIPE would, without the interpreter's flush at exit failing again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    return 128 + signal.SIGPIPE


def make_parser() -> argparse.ArgumentParser:
    """The whole command line; also the source of the man page and shell completion."""
    parser = argparse.ArgumentParser(
        prog="syslogban",
        description="Blocks mail-server attackers from syslog records. 'check' shows what it "
                    "finds in a log, 'run' is the daemon, and status, list, why, block, "
                    "unblock and reload ask the running daemon. Without --config, "
                    f"{configuration.DEFAULT_PATH} is read where it exists.")
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
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true",
                         help="print the answer as JSON, for scripts")

    p = commands.add_parser(
        "check", parents=[rules_options, selection, as_json],
        help="show what syslogban recognises in a log file",
        description="Reads a log (FILE, or - for stdin) and reports which records matched "
                    "which signature, what was rejected and why, and the top addresses.")
    p.add_argument("file", metavar="FILE|-")
    p.add_argument("--jsonl", action="store_true",
                   help="print one JSON object per attack on stdout (summary on stderr)")
    p.add_argument("--print-matched", action="store_true",
                   help="print the lines that matched (with their numbers)")
    p.add_argument("--print-missed", action="store_true",
                   help="print the lines that matched nothing (with their numbers)")
    p.add_argument("--replay", action="store_true",
                   help="run the scoring over the log's own timestamps (the default "
                        "policy, or the one of --config)")
    p.add_argument("--config", metavar="FILE",
                   help="with --replay: replay this configuration's policy (scoring, "
                        "services, allow-list; also its rules, enable and disable)")
    p.add_argument("--pattern", metavar="REGEX", action="append", default=[],
                   help="test an ad-hoc pattern instead of the rules (repeatable): a Python "
                        "regular expression with <ADDR> (or fail2ban's <HOST>; both take "
                        "literal IPv4/IPv6 addresses only, never host names), anchored at "
                        "the start of the message, after the program tag and pid: write "
                        "'warning: \\S+\\[<ADDR>\\]: SASL', not the date or host name")
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
    p.set_defaults(func=_check, usage=p)

    # Every configuration key is a flag: the usage names them in one line, --help lists them.
    keys = "[--config FILE] [--KEY VALUE ...]"
    p = commands.add_parser(
        "run", help="run the daemon", usage=f"syslogban run {keys}",
        description="Receives syslog records, blocks attackers. Every configuration key "
                    "is also a flag; flags override the file.")
    configuration.add_flags(p)
    p.set_defaults(func=_run, usage=p)

    p = commands.add_parser("config", help="check or show the configuration")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser(
        "check", parents=[as_json], help="check the configuration as 'run' would load it",
        usage=f"syslogban config check [--json] {keys}",
        description="Loads the configuration exactly as 'syslogban run' would (the same "
                    "flags, the rules, the firewall driver with its options) and lists "
                    "every problem, one line each: file, key, reason. Exit status 0 when "
                    "'run' would start, 2 when it would refuse.")
    configuration.add_flags(a)
    a.set_defaults(func=_config_check, usage=a)
    a = actions.add_parser(
        "show", parents=[as_json], help="print the configuration in effect as TOML",
        usage=f"syslogban config show [--json] {keys}",
        description="Prints the configuration 'syslogban run' would use with these "
                    "flags, as a TOML file: every key with its value (defaults "
                    "included) and each per-service policy in full.")
    configuration.add_flags(a)
    a.set_defaults(func=_config_show, usage=a)

    control = argparse.ArgumentParser(add_help=False, parents=[as_json])
    control.add_argument("--control", metavar="PATH",
                         help="the daemon's control socket (default: from --config, "
                              "else /run/syslogban/control.sock)")
    control.add_argument("--config", metavar="FILE",
                         help="read the control path from here (default "
                              f"{configuration.DEFAULT_PATH} where it exists)")
    asks = " Asks the running daemon over its control socket."
    for name, text, description in (
            ("status", "show the running daemon's configuration and counters",
             "The policies, allow-list and rule files in force, and every counter: records "
             "read and rejected, attempts, blocks, inputs, the firewall."),
            ("reload", "reload rules, allow-list and configuration",
             "Rereads the configuration file and the rules, as SIGHUP does. A file with a "
             "problem is refused whole (the old one stays in force); changes that wait for "
             "a restart are named."),
            ("list", "list active blocks: since, until, time left",
             "The active blocks: target, reason, score, the how-many-th block of the target, "
             "start, end, time left, signatures, and who decided those made elsewhere.")):
        p = commands.add_parser(name, parents=[control], help=text, description=description + asks)
        p.set_defaults(func=_control_command, usage=p)
    p = commands.add_parser(
        "block", parents=[control], help="block an address or prefix",
        description="Blocks an address or a prefix (at most a /8, or /16 for IPv6) now, in the "
                    "firewall and the state. Allow-listed addresses are refused; a block in "
                    "force that lasts longer stays unless --replace." + asks)
    p.add_argument("target", metavar="ADDR", help="an IPv4 or IPv6 address, or a prefix")
    p.add_argument("--for", dest="duration", metavar="DURATION", default="permanent",
                   type=_duration_text,
                   help="30s, 10m, 2h, 1d, 1w (at most 3650d) or permanent (default)")
    p.add_argument("--replace", action="store_true",
                   help="replace a block in force that lasts longer")
    p.set_defaults(func=_control_command, usage=p)
    for name, text, description in (
            ("unblock", "lift a block now",
             "Lifts the block of ADDR now, or the prefix block that holds it (and says which)."),
            ("why", "show the evidence, signatures and score behind a block",
             "The block of ADDR (or the prefix block holding it), its history, the attempts "
             "per service within the window, and the last log lines seen, per attempt.")):
        p = commands.add_parser(name, parents=[control], help=text, description=description + asks)
        p.add_argument("target", metavar="ADDR", help="an IPv4 or IPv6 address, or a prefix")
        p.set_defaults(func=_control_command, usage=p)

    p = commands.add_parser("fleet", help="set up or look at the fleet's database (PostgreSQL)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("init", help="create or migrate the fleet schema (idempotent)",
                           description="Run as the schema's owner (contrib/postgresql/README.md).")
    a.add_argument("--dsn", required=True, metavar="URI",
                   help="libpq URI, e.g. postgresql://syslogban@db.example.org/syslogban")
    a.set_defaults(func=_fleet_init, usage=a)
    a = actions.add_parser("status", parents=[as_json],
                           help="the hosts, their last contact and backlog")
    a.add_argument("--dsn", metavar="URI", help="default: [fleet] dsn of --config")
    a.add_argument("--config", metavar="FILE", help=configuration.CONFIG_HELP)
    a.set_defaults(func=_fleet_status, usage=a)

    p = commands.add_parser(
        "flush", help="take syslogban's blocks out of the firewall (the daemon stopped)",
        description="Removes what syslogban put into the firewall (nftables: its table; "
                    "ipset: the sets' elements; pf, ipfw: the table's entries), as "
                    "flush_on_exit does at a stop. The daemon must be stopped; its state is "
                    "kept, so the next start puts the active blocks back. Package removal "
                    "runs it.")
    p.add_argument("--config", metavar="FILE", help=configuration.CONFIG_HELP)
    p.set_defaults(func=_flush, usage=p)

    p = commands.add_parser("rules", help="list, show or check signatures")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("list", parents=[rules_options, selection, as_json],
                           help="list signatures and whether they are in use")
    a.set_defaults(func=_rules_list, usage=a)
    a = actions.add_parser("show", parents=[rules_options, as_json],
                           help="print a signature as loaded")
    a.add_argument("id")
    a.set_defaults(func=_rules_show, usage=a)
    a = actions.add_parser("check", parents=[rules_options, as_json],
                           help="validate rule files and run their inline examples")
    a.set_defaults(func=_rules_check, usage=a)
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
    from .daemon import run  # refuses what `config check` lists (engine.py, preflight.py)
    return run(args.config, args)


def _checked_config(args: argparse.Namespace) -> configuration.Config:
    """The configuration `run` would use, or ConfigError with every problem."""
    from .preflight import check
    config, found = configuration.read(args.config, args)
    found += check(config)[1]
    if found:
        raise configuration.ConfigError("\n".join(map(str, found)))
    return config


def _config_check(args: argparse.Namespace) -> int:
    from .preflight import check
    config, found = configuration.read(args.config, args)
    found += check(config)[1]
    if args.json:
        _print_json({"source": config.source, "ok": not found,
                     "problems": [{"where": p.where, "key": p.key, "reason": p.reason}
                                  for p in found]})
    elif not found:
        own = ", ".join(config.services) or "none"
        missing = not Path(configuration.DEFAULT_PATH).exists()
        source = config.source if args.config else "no configuration file" + (
            f" ({configuration.DEFAULT_PATH} does not exist)" if missing else "") + \
            ", the defaults"
        print(f"{source}: ok (backend {config.backend}, per-service policies: {own})")
    for problem in found if not args.json else ():
        print(f"syslogban: error: {problem}", file=sys.stderr)
    return 2 if found else 0


def _config_show(args: argparse.Namespace) -> int:
    config = _checked_config(args)
    if args.json:
        _print_json(config.effective())
    else:
        print(config.toml(), end="")
    return 0


def _control_command(args: argparse.Namespace) -> int:
    from .control import request  # the daemon's modules only for the daemon's commands
    # only the control path matters here: a mistake elsewhere in the file is for
    # `config check` and `reload` to report, not a reason to refuse `status`
    path = args.control or configuration.read(args.config)[0].control
    command: dict[str, object] = {"command": args.command}
    if args.command in ("block", "unblock", "why"):
        command["target"] = args.target
    if args.command == "block":
        command["for"] = args.duration
        command["replace"] = args.replace
    answer = request(path, command)
    answer.pop("ok", None)
    if args.json:
        _print_json(answer)
    else:
        print(_HUMAN[args.command](answer, time.time()), end="")
    return 0


_HUMAN: dict[str, Callable[[dict[str, Any], float], str]] = {
    "status": lambda answer, now: display.status(answer),
    "list": lambda answer, now: display.blocks(answer["blocks"], now),
    "why": display.why,
    "block": display.blocked,
    "unblock": lambda answer, now: display.unblocked(answer),
    "reload": lambda answer, now: display.reloaded(answer),
}


def _print_json(data: object) -> None:
    """Indented JSON; never NaN or Infinity (not JSON): the daemon says `permanent`."""
    print(json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False))


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
        _print_json(answer)
        return 0
    print(f"fleet schema version {answer['version']}, {len(answer['hosts'])} hosts, "
          f"{answer['active_decisions']} active decisions, "
          f"{answer['events_last_hour']} events in the last hour")
    print("\n".join(display.table(("HOST", "LAST CONTACT", "BACKLOG", "EVENTS SENT"),
                                  [(h["name"], h["last_contact"], h["backlog"], h["last_seq"])
                                   for h in answer["hosts"]])))
    return 0


def _flush(args: argparse.Namespace) -> int:
    from .backends import create
    from .control import ControlError, request
    config = configuration.load(args.config)
    try:
        request(config.control, {"command": "status"}, timeout=5)
    except ControlError:
        pass  # nobody answers: stopped
    else:
        raise UsageError(f"syslogban is running ({config.control} answers): stop it first, "
                         "or it would put its blocks back at its next firewall check")
    create(config.backend, **config.backend_options).stop(flush=True)
    print(f"syslogban's blocks removed from the firewall ({config.backend})")
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
        active = [_ad_hoc(n, text, tuple(args.program))
                  for n, text in enumerate(args.pattern, start=1)]
    else:
        active = _signatures(args)[1]
    policy = None
    if args.replay:
        policy = (BlockerConfig() if config is None else
                  config.blocker(configuration.resolve_allow(config.allow)))
    name = "<stdin>" if args.file == "-" else args.file
    out = sys.stderr if args.jsonl else sys.stdout
    heap.settle()
    with contextlib.ExitStack() as stack:
        path, detections = args.file, sys.stdout if args.jsonl else None
        if args.print_matched or args.print_missed:  # the lines are read twice
            if path == "-":
                path = stack.enter_context(_copy_of_stdin()).name
            detections = stack.enter_context(tempfile.TemporaryFile("w+", encoding="ascii"))
        result = check_path(path, active, jsonl=detections,
                            replay=policy, max_size=args.max_record_size,
                            scanner_engine=args.scanner, sessions=args.sessions,
                            processes=args.processes)
        if detections is not None and detections is not sys.stdout:
            detections.seek(0)
            matched = _linenos(detections, sys.stdout if args.jsonl else None)
            print_lines(path, matched, out, matched=args.print_matched,
                        missed=args.print_missed)
    if args.json:
        print(json.dumps(summary(name, result, active), indent=2, allow_nan=False), file=out)
    else:
        report(name, result, active, out)
    return 0


def _ad_hoc(number: int, text: str, programs: tuple[str, ...]) -> Signature:
    """A --pattern as a signature; its mistakes said in the terms of --pattern."""
    pattern = text.replace("<HOST>", "<ADDR>")
    if pattern.count("<ADDR>") != 1:
        raise UsageError(f"--pattern '{text}': write <ADDR> (or <HOST>) once, where the "
                         "client's address stands")
    try:
        return make_signature(f"pattern.{number}", "pattern", "ad-hoc --pattern", programs,
                              pattern)
    except RuleError as exc:
        raise UsageError(f"--pattern '{text}': {exc}") from None


def _copy_of_stdin() -> IO[bytes]:
    copy = tempfile.NamedTemporaryFile("w+b")
    shutil.copyfileobj(sys.stdin.buffer, copy)
    copy.flush()
    return copy


def _linenos(detections: IO[str], jsonl: IO[str] | None) -> set[int]:
    """The line numbers of the detections (JSON lines), passed on to `jsonl` if asked."""
    linenos = set()
    for line in detections:
        linenos.add(json.loads(line)["lineno"])
        if jsonl is not None:
            jsonl.write(line)
    return linenos


def _rules_list(args: argparse.Namespace) -> int:
    loaded, active = _signatures(args)
    in_use = {s.id for s in active}
    rows = [{"id": s.id, "service": s.service, "in_use": s.id in in_use,
             "enabled_by_default": s.enabled, "danger": s.danger,
             "description": s.description} for s in loaded]
    if args.json:
        _print_json(rows)
    else:
        print(display.signatures(rows), end="")
    return 0


def _rules_show(args: argparse.Namespace) -> int:
    for s in load_rules(args.rules):
        if s.id == args.id:
            facts = {"id": s.id, "service": s.service, "description": s.description,
                     "source": s.source, "enabled": s.enabled, "danger": s.danger,
                     "role": s.role, "serves": list(s.serves),
                     "programs": list(s.programs), "pattern": s.pattern,
                     "literal": s.literal, "caseless": s.caseless,
                     "examples": [{"kind": e.kind, "address": e.address, "line": e.line}
                                  for e in s.examples]}
            if args.json:
                _print_json(facts)
                return 0
            shown = {**facts, "enabled": "yes" if s.enabled else "no (turn on with --enable)",
                     "danger": f"{s.danger} per attempt", "role": _role(s),
                     "programs": ", ".join(s.programs) or "(any)",
                     "literal": json.dumps(s.literal) + (" (any case)" if s.caseless else "")}
            del shown["caseless"], shown["examples"], shown["serves"]
            print("\n".join(display.sections(shown)))
            print("\n".join(display.table(("EXAMPLE", "ADDRESS", "LINE"),
                                          [(e.kind, e.address, e.line) for e in s.examples])))
            return 0
    raise UsageError(f"no signature '{args.id}' (see 'syslogban rules list')")


def _role(s: Signature) -> str:
    """What the signature's line is to attempt accounting, in words."""
    if s.binds:
        return "binds a session to an address (no attack)"
    session = ("the record's process" if s.by_pid
               else "its <SESSION>, where written" if s.sessioned
               else "its <ID>" if s.resolves else "none (time ties its lines)")
    serves = f"; also reports attempts of {', '.join(s.serves)}" if s.serves else ""
    return f"{s.role}{serves}; session: {session}"


def _rules_check(args: argparse.Namespace) -> int:
    from .signatures import risks
    loaded = load_rules(args.rules)
    sessions = load_session_examples(args.rules)
    failures = check_examples(loaded) + check_session_examples(loaded, sessions)
    examples = sum(len(s.examples) for s in loaded)
    # Risky constructs (ReDoS) are warnings: they never change the exit status.
    warnings = [f"{s.source}: {s.id}: warning: {risk}" for s in loaded for risk in risks(s)]
    if args.json:
        _print_json({"signatures": len(loaded), "examples": examples,
                     "session_examples": len(sessions),
                     "failures": [str(f) for f in failures], "warnings": warnings})
    else:
        for line in [*map(str, failures), *warnings]:
            print(line)
        print(f"{len(loaded)} signatures, {examples} examples, {len(sessions)} session "
              f"examples, {len(failures)} failed, {len(warnings)} warnings")
    return 1 if failures else 0
