"""Firewall drivers, installed as syslogban.backends.

One file per firewall behind the small interface of base.py. A driver is
looked up by name here, and imported only when chosen, so that a machine
without nftables can still run the pf driver and the other way round.
"""

from __future__ import annotations

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
    try:
        return driver(**options)
    except TypeError as exc:  # an option the driver does not know
        raise BackendError(f"{name}: {str(exc).split('(', 1)[-1].rstrip(')')} "
                           f"(see the driver's options in contrib/)") from None
