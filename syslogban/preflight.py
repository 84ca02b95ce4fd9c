"""What `run` refuses before it starts, beyond the schema: checks against the world.

Rules of this file:
* `syslogban config check`, `syslogban run` and `reload` ask the same
  questions here, so that a file `config check` passes is one `run` takes,
  and a reload refuses what a start would refuse.
* It reports every problem as a Problem (file, key, reason), never only the
  first, and changes nothing: rule files are read, the firewall driver is
  built with its options but never started, files are not created.
"""

from __future__ import annotations

import difflib
import grp
import os
import pwd
import stat
from collections.abc import Sequence
from pathlib import Path

from .config import Config
from .schema import Problem
from .signatures import RuleError, Signature, load_rules, select


def check(config: Config) -> tuple[list[Signature] | None, list[Problem]]:
    """The rules `run` would load (None when they cannot be), and everything that
    would stop `run` with this configuration."""
    found: list[Problem] = []
    loaded: list[Signature] | None = None
    try:
        loaded = load_rules([Path(d) for d in config.rules] or None)
    except RuleError as exc:
        found.append(Problem(config.source, "rules", str(exc)))
    if loaded is not None:
        found += _selection(config, loaded)
    found += _backend(config)
    for key in ("log_file", "metrics_file"):
        reason = unwritable(getattr(config, key))
        if reason:
            found.append(Problem(config.source, key, reason))
    if _occupied(config.control):
        found.append(Problem(config.source, "control", f"{config.control} exists and is "
                             "not a socket: the control socket needs a path of its own"))
    found += _accounts(config)
    return loaded, found


def _accounts(config: Config) -> list[Problem]:
    """The user and groups named must exist on this host (checked before anything
    starts, not when the socket is already bound)."""
    found = []
    if config.user:
        try:
            pwd.getpwnam(config.user)
        except KeyError:
            found.append(Problem(config.source, "user", f"no such user {config.user!r} on "
                                 "this host (Debian's package creates 'syslogban')"))
    for key in ("control_group", "unix_group"):
        group = getattr(config, key)
        if group:
            try:
                grp.getgrnam(group)
            except KeyError:
                found.append(Problem(config.source, key, f"no such group {group!r} on this host"))
    return found


def _occupied(path: str) -> bool:
    """Whether `path` holds something other than a (perhaps stale) socket, which
    syslogban must neither replace nor remove."""
    try:
        return not stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _selection(config: Config, loaded: Sequence[Signature]) -> list[Problem]:
    found: list[Problem] = []
    try:
        select(loaded, config.enable, config.disable)
    except RuleError as exc:
        found.append(Problem(config.source, "enable/disable", str(exc)))
    services = sorted({s.service for s in loaded})
    for name in config.services:
        if name not in services:
            near = difflib.get_close_matches(name, services, n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            found.append(Problem(config.source, f"services.{name}",
                                 f"no rule file has a service {name} ({hint}services: "
                                 f"{', '.join(services)})"))
    return found


def _backend(config: Config) -> list[Problem]:
    if config.dry_run:
        return []
    from .backends import DRIVERS, BackendError, create  # the drivers only when asked for
    try:
        create(config.backend, **config.backend_options)
    except BackendError as exc:
        known = config.backend in DRIVERS
        return [Problem(config.source, "backend_options" if known else "backend", str(exc))]
    return []


def unwritable(path: str) -> str:
    """Why syslogban could not write `path` ("" when it can, or when no path is set)."""
    if not path:
        return ""
    file = Path(path)
    if file.is_dir():
        return f"{path} is a directory"
    if file.exists():
        return "" if os.access(file, os.W_OK) else f"{path} is not writable"
    parent = file.parent
    if not parent.is_dir():
        return f"{parent} does not exist"
    return "" if os.access(parent, os.W_OK | os.X_OK) else \
        f"cannot create {path}: {parent} is not writable"
