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
import socket
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


# Never blocked, whatever a record or an admin says: no peer ever sends from
# these (RFC 6890: "this network" is a source only while a host boots,
# broadcast and multicast are destinations only, link-local never leaves the
# link), and a block of them cuts off the host's own DHCP, ARP-less
# neighbours, mDNS, router advertisements... A forged record naming them must
# not be able to do that. Documentation ranges (192.0.2.0/24, 2001:db8::/32)
# stay blockable: they are what tests and examples use.
NEVER_BLOCKED: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, str] = {
    ipaddress.ip_network(network): kind for network, kind in (
        ("0.0.0.0/8", "unspecified"), ("169.254.0.0/16", "link-local"),
        ("224.0.0.0/4", "multicast"), ("255.255.255.255/32", "broadcast"),
        ("::/128", "unspecified"), ("fe80::/10", "link-local"), ("ff00::/8", "multicast"))}
_NEVER_V4 = [(int(n.network_address), int(n.broadcast_address))
             for n in NEVER_BLOCKED if n.version == 4]


def never_blocked(address: str) -> bool:
    """Whether a normalised address (normalize_address) is one of NEVER_BLOCKED."""
    if ":" not in address:
        value = int.from_bytes(socket.inet_aton(address), "big")
        return any(low <= value <= high for low, high in _NEVER_V4)
    return _never_blocked_v6(address)


@lru_cache(maxsize=4096)
def _never_blocked_v6(address: str) -> bool:
    addr = ipaddress.IPv6Address(address)
    return any(addr in network for network in NEVER_BLOCKED if network.version == 6)


def unblockable(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str | None:
    """Why this address or prefix touches NEVER_BLOCKED, or None when it does not."""
    for never, kind in NEVER_BLOCKED.items():
        if not network.overlaps(never):
            continue
        if network.num_addresses == 1:
            article = "an" if kind[0] in "aeiou" else "a"
            return f"is {article} {kind} address ({never}): never blocked"
        inside = never.supernet_of(network)  # type: ignore[arg-type]
        return f"{'is inside' if inside else 'covers'} the {kind} range {never}: never blocked"
    return None
