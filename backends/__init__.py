"""Firewall drivers, installed as syslogban.backends.

One file per firewall behind the small interface of base.py. A driver is
looked up by name here, and imported only when chosen, so that a machine
without nftables can still run the pf driver and the other way round.
"""

from __future__ import annotations

import inspect
from importlib import import_module
from typing import Any

from .base import Backend, BackendError, Change

DRIVERS: dict[str, str] = {
    "null": "syslogban.backends.null:NullBackend",
    "pf": "syslogban.backends.pf:PfBackend",
    "ipfw": "syslogban.backends.ipfw:IpfwBackend",
    "ipset": "syslogban.backends.ipset:IpsetBackend",
    "nftables": "syslogban.backends.nftables:NftablesBackend",
}

__all__ = ["DRIVERS", "Backend", "BackendError", "Change", "create"]


def create(name: str, **options: Any) -> Backend:
    """The driver called `name`, configured with `options`."""
    try:
        module_name, class_name = DRIVERS[name].split(":")
    except KeyError:
        raise BackendError(f"unknown firewall backend {name!r} "
                           f"(one of: {', '.join(sorted(DRIVERS))})") from None
    driver: type[Backend] = getattr(import_module(module_name), class_name)
    known = _options(driver)
    for key in options:
        if key not in known:
            said = f"options: {', '.join(known)}" if known else "it takes none"
            raise BackendError(f"{name}: no option {key!r} ({said})")
    try:
        return driver(**options)
    except (TypeError, ValueError) as exc:  # a value the driver did not check itself
        raise BackendError(f"{name}: an option's value is of the wrong kind ({exc}); see "
                           "the driver's options in contrib/") from None


def _options(driver: type[Backend]) -> list[str]:
    """The options an admin may give the driver (not the hooks tests pass in,
    whose defaults are functions)."""
    parameters = list(inspect.signature(driver.__init__).parameters.values())[1:]
    return [p.name for p in parameters if not callable(p.default)]
