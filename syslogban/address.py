"""Attacker addresses: validation and normal form.

Rules of this file:
* Only literal IPv4/IPv6 addresses leave it; a hostname is never resolved here
  or anywhere else in the matching path (DNS in the parser lets an attacker
  choose the victim and stalls the pipeline).
* One address has one spelling: IPv4-mapped IPv6 becomes IPv4, IPv6 zone ids
  are dropped, IPv6 is compressed. The blocker, the state and the firewall all
  key on this spelling, so two spellings can never dodge a threshold.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Exactly what ipaddress accepts as IPv4 (no leading zeros), at regex speed:
# a dotted quad that passes is already in normal form.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # not \d: Unicode digits
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def parse_address(text: str) -> IPAddress | None:
    """The address written in `text`, normalised, or None when it is not one."""
    if "%" in text:
        text = text.split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def normalize_address(text: str) -> str | None:
    """The canonical spelling of the address in `text`, or None."""
    if _IPV4.fullmatch(text):
        return text
    return _normalize_slow(text)


@lru_cache(maxsize=4096)
def _normalize_slow(text: str) -> str | None:
    addr = parse_address(text)
    return None if addr is None else str(addr)
