"""What an admin reads: the answers of the commands as aligned tables and lines.

Rules of this file:
* Pure: it takes the answers (the same data `--json` prints) and the current
  time, and returns text. No sockets, no clock of its own.
* Never a Python repr: numbers, words, durations as `2m` or `1d 3h`, local
  times as `2024-11-21 10:00:27`; `permanent` for what never ends, `-` for
  nothing. Nested data becomes indented sections, never a one-line dump.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from .blocker import Block
from .durations import PERMANENT, format_duration
from .pipeline import shorten, untagged_summary

MAX_LINE = 1000  # characters of one log line shown

_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def human_duration(seconds: float | None) -> str:
    """`2m`, `1d 3h`, `45s`: the two largest units, rounded down; `permanent`."""
    if seconds is None or seconds == PERMANENT or not math.isfinite(seconds):
        return "permanent"
    left = max(0, round(seconds))
    parts = []
    for unit, size in _UNITS:
        if left >= size or (parts and len(parts) < 2):
            count, left = divmod(left, size)
            if count:
                parts.append(f"{count}{unit}")
            if len(parts) == 2 or parts and not count:
                break
    return " ".join(parts) or "0s"


def local_time(stamp: float | None, tz: tzinfo | None = None) -> str:
    """`2024-11-21 10:00:27` in local time (`tz` None: the system's); `-` for none."""
    if stamp is None or not math.isfinite(stamp):
        return "-"
    return datetime.fromtimestamp(stamp, tz).strftime("%Y-%m-%d %H:%M:%S")


def printable(text: str, limit: int = MAX_LINE) -> str:
    """`text` safe to show: every character that is not printable escaped
    (\\r, \\n, \\x1b, \\u202e, ...), at most `limit` characters ("…" marks a cut).
    Log lines are attacker text: a terminal escape must never reach the admin's terminal."""
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                    for c in text[:limit])
    if len(text) > limit or len(shown) > limit:
        return shown[:limit - 1] + "…"
    return shown


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Aligned columns; numbers to the right, text to the left; the last column ragged."""
    values = [list(row) for row in rows]
    numeric = [bool(values) and all(isinstance(row[i], (int, float))
                                    and not isinstance(row[i], bool) for row in values)
               for i in range(len(headers))]
    cells = [[_cell(value) for value in row] for row in values]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *cells]:
        parts = [text.rjust(widths[i]) if numeric[i] else
                 text if i == len(row) - 1 else text.ljust(widths[i])
                 for i, text in enumerate(row)]
        lines.append("  ".join(parts).rstrip())
    return lines


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else "permanent"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value) or "-"
    return printable(str(value))  # a sample line in a counter is attacker text too


def sections(data: Mapping[str, Any], indent: str = "") -> list[str]:
    """Nested data as `name  value` lines, a table within a table indented under its name."""
    lines: list[str] = []
    width = max((len(_words(k)) for k, v in data.items() if not isinstance(v, Mapping) or not v),
                default=0)
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            lines.append(f"{indent}{_words(key)}")
            lines += sections(value, indent + "  ")
        elif isinstance(value, Mapping):  # an empty table: nothing to list, in line
            lines.append(f"{indent}{_words(key).ljust(width)}  -")
        else:
            lines.append(f"{indent}{_words(key).ljust(width)}  {_cell(value)}".rstrip())
    return lines


def _words(key: str) -> str:
    return key.replace("_", " ")


# ------------------------------------------------------------ blocks in words

def because(reason: str, score: int, signatures: Sequence[str], lifetime: int = 0,
            origin: str = "") -> str:
    """Why a block was made, in one phrase: "score 30 from postfix.sasl-auth-failed"."""
    named = ", ".join(signatures)
    if reason == "score":
        text = f"score {score}" + (f" from {named}" if named else "")
    elif reason == "blacklist":
        text = f"blacklisted, lifetime danger {lifetime}" + (f" from {named}" if named else "")
    elif reason == "adaptive":  # its signatures are the hosts that were blocked
        text = f"{_count(score, 'of its hosts', 'of its hosts')} blocked" + \
            (f": {named}" if named else "")
    elif reason == "manual":
        text = "by an admin"
    else:  # a remote part's own reason (crowdsec): the origin says the rest
        text = reason if not origin else ""
    if origin:
        text += (", " if text else "") + f"decided by {printable(origin)}"
    return text


def block_said(block: Block) -> str:
    """A block in one line, as the log and the remote parts say it:
    "192.0.2.7 for 2m: score 30 from postfix.sasl-auth-failed (1st block)"."""
    length = ("for good" if block.permanent
              else f"for {format_duration(block.until - block.since)}")
    return (f"{block.target} {length}: "
            f"{because(block.reason, block.score, block.signatures, block.lifetime, block.origin)}"
            f" ({ordinal(block.nth)} block)")


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# ------------------------------------------------------------ the commands

def blocks(answer: Sequence[Mapping[str, Any]], now: float, tz: tzinfo | None = None) -> str:
    """`syslogban list`: one row per block, with when it started, ends, and what is left;
    who decided it (another host, CrowdSec) where any block was decided elsewhere."""
    remote = any(b.get("origin") for b in answer)
    rows = [(b["target"], b["reason"], b["score"], b["nth"], local_time(b["since"], tz),
             local_time(b["until"], tz) if b["until"] is not None else "permanent",
             human_duration(b["until"] - now if b["until"] is not None else None),
             b["signatures"], *((b.get("origin") or "-",) if remote else ()))
            for b in answer]
    headers = ("TARGET", "REASON", "SCORE", "NTH", "STARTED", "ENDS", "LEFT", "SIGNATURES",
               *(("ORIGIN",) if remote else ()))
    lines = table(headers, rows) if rows else []
    return "\n".join([*lines, f"{_count(len(rows), 'active block')}"]) + "\n"


def blocked(answer: Mapping[str, Any], now: float, tz: tzinfo | None = None) -> str:
    """`syslogban block ADDR`: what was blocked, until when, and what it replaced."""
    block, replaced = answer["block"], answer.get("replaced")
    until = block["until"]
    line = (f"blocked {block['target']} permanently" if until is None else
            f"blocked {block['target']} until {local_time(until, tz)} "
            f"({human_duration(until - now)} left)")
    if replaced:
        line += f", replacing a {replaced['duration']} {replaced['reason']} block"
    return line + "\n"


def unblocked(answer: Mapping[str, Any]) -> str:
    """`syslogban unblock ADDR`: what was lifted (the prefix block holding ADDR, say)."""
    covered = f" (it held {answer['covered']})" if answer.get("covered") else ""
    remote = "".join(f"{line}\n" for line in answer.get("remote", ()))  # the fleet's word
    return f"unblocked {answer['unblocked']}{covered}\n{remote}"


def why(answer: Mapping[str, Any], now: float, tz: tzinfo | None = None) -> str:
    """`syslogban why ADDR`: the block, the history and the evidence behind it."""
    facts: dict[str, Any] = {"target": answer["target"]}
    if answer.get("allowed"):
        facts["allow-listed"] = "yes: never blocked"
    block = answer.get("block")
    if block:
        until = block["until"]
        covered = f" (as part of {answer['covered_by']})" if answer.get("covered_by") else ""
        facts["blocked"] = (f"yes{covered}, its {ordinal(block['nth'])} block: "
                            + because(block["reason"], block["score"], (),
                                      block.get("lifetime", 0), block.get("origin", "")))
        facts["started"] = local_time(block["since"], tz)
        facts["ends"] = local_time(until, tz) if until is not None else "permanent"
        facts["left"] = human_duration(until - now if until is not None else None)
        facts["signatures"] = block["signatures"]
    else:
        facts["blocked"] = "no"
    history = answer.get("history")
    if history:
        facts["history"] = (f"{_count(history['blocks'], 'block')} so far, "
                            f"lifetime danger {history['lifetime']}")
    attempts = answer.get("attempts") or {}
    if attempts:
        facts["attempts"] = ", ".join(f"{n} {service}" for service, n in
                                      sorted(attempts.items())) + " (within the window)"
    lines = sections(facts)
    groups = answer.get("per_attempt") or []
    evidence = answer.get("evidence") or []
    if groups:  # the lines of one attempt together, the oldest attempt first
        lines.append(f"evidence (the last lines seen: {_count(len(groups), 'attempt')}, "
                     "oldest first)")
        for number, group in enumerate(groups, start=1):
            lines.append(f"  {number}. {group['service']}")
            lines += [f"     {printable(line)}" for line in group["lines"]]
    else:
        lines.append(f"evidence (the last {_count(len(evidence), 'line')} seen)" if evidence
                     else "evidence  -")
        lines += [f"  {printable(line)}" for line in evidence]
    return "\n".join(lines) + "\n"


def status(answer: Mapping[str, Any]) -> str:
    """`syslogban status`: who runs, with what, and the counters, section by section."""
    counters = dict(answer["counters"])
    config = answer["config"]
    lines = [f"syslogban {answer['version']}, up {human_duration(answer['uptime'])}, "
             f"backend {answer['backend']}, {answer['signatures']} signatures in use",
             f"configuration  {config.get('source', '-')} "
             "(all of it: syslogban status --json)",
             f"scoring        {_policy(config)}"]
    for name, policy in config.get("services", {}).items():
        lines.append(f"  {name:<13}{_policy({**config, **policy})}")
    blacklist = config["blacklist"]
    lines.append(f"blacklist      {f'lifetime danger {blacklist}' if blacklist else 'off'}")
    lines.append(f"allow-list     {', '.join(answer['allow']) or '-'}")
    for directory, names in _by_directory(answer["rule_files"]).items():
        lines.append(f"rule files     {directory}: {', '.join(names)}")
    attacks = counters.pop("attacks", {})
    untagged, sample = counters.pop("records_untagged", 0), counters.pop("untagged_sample", "")
    if untagged:  # said as `check` says it: a format that loses the tag hides attacks
        lines += [f"untagged       {untagged_summary(untagged)}",
                  f"  e.g. {printable(shorten(sample or ''))}"]
    lines += ["", *sections(counters)]
    others = {k: v for k, v in answer.items() if k not in _STATUS_SHOWN}
    if others:  # what other rooms add (fleet, CrowdSec): shown whatever it is
        lines += ["", *sections(others)]
    if attacks:
        lines += ["", *table(("SIGNATURE", "ATTACKS"),
                             sorted(attacks.items(), key=lambda item: (-item[1], item[0])))]
    return "\n".join(lines) + "\n"


def reloaded(answer: Mapping[str, Any]) -> str:
    """`syslogban reload`: what took effect, and what waits for a restart."""
    lines = [f"reloaded: {answer['signatures']} signatures in use"]
    if answer.get("backend_options_applied"):
        lines.append("backend options applied")
    if answer.get("restart_needed"):
        lines.append("changed, but applied only at the next start (restart syslogban): "
                     + ", ".join(answer["restart_needed"]))
    return "\n".join(lines) + "\n"


def signatures(rows: Iterable[Mapping[str, Any]]) -> str:
    """`syslogban rules list`: one row per signature, in use or not."""
    rows = list(rows)
    lines = table(("STATE", "ID", "DANGER", "DESCRIPTION"),
                  [("on" if r["in_use"] else "off", r["id"], r["danger"], r["description"])
                   for r in rows])
    used = sum(r["in_use"] for r in rows)
    return "\n".join([*lines, f"{used} of {len(rows)} signatures in use"]) + "\n"


_STATUS_SHOWN = {"version", "uptime", "backend", "signatures", "config", "allow", "rule_files",
                 "counters"}


def _by_directory(paths: Iterable[str]) -> dict[str, list[str]]:
    """/etc/x/a.toml, /etc/x/b.toml -> {"/etc/x": ["a", "b"]}."""
    grouped: dict[str, list[str]] = {}
    for path in paths:
        directory, _, name = path.rpartition("/")
        grouped.setdefault(directory or ".", []).append(name.removesuffix(".toml"))
    return grouped


def _policy(config: Mapping[str, Any]) -> str:
    """One policy in words; durations arrive as the configuration writes them (30m)."""
    attempts = config.get("attempts")
    trigger = f"{attempts} attempts" if attempts else f"score {config['threshold']}"
    if config["block_time"] == "permanent":
        return f"{trigger} within {config['window']}: blocked for good"
    return (f"{trigger} within {config['window']}: blocked for {config['block_time']}, "
            f"x{config['multiplier']:g} for each earlier block, at most "
            f"{config['max_block_time']}")


def _count(n: int, thing: str, things: str = "") -> str:
    return f"{n} {thing if n == 1 else things or thing + 's'}"
