"""Addresses: only literals pass, and every address has exactly one spelling."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import PROPERTY
from syslogban.address import (NEVER_BLOCKED, never_blocked, normalize_address, parse_address,
                               unblockable)


@pytest.mark.parametrize("text, normal", [
    ("192.0.2.1", "192.0.2.1"),
    ("0.0.0.0", "0.0.0.0"),
    ("255.255.255.255", "255.255.255.255"),
    ("10.0.0.1", "10.0.0.1"),
    ("2001:db8::1", "2001:db8::1"),
    ("2001:DB8::1", "2001:db8::1"),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
    ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
    ("::", "::"),
    ("::1", "::1"),
    ("::ffff:1.2.3.4", "1.2.3.4"),
    ("::FFFF:C000:0201", "192.0.2.1"),
    ("0:0:0:0:0:ffff:198.51.100.7", "198.51.100.7"),
    ("::1.2.3.4", "::102:304"),  # IPv4-compatible, not mapped: stays IPv6
    ("fe80::1%eth0", "fe80::1"),
    ("FE80::A%en0.100", "fe80::a"),
    ("::ffff:192.0.2.1%eth0", "192.0.2.1"),
])
def test_normal_form(text: str, normal: str) -> None:
    assert normalize_address(text) == normal
    assert str(parse_address(text)) == normal


@pytest.mark.parametrize("text", [
    "", " ", "%eth0", "localhost", "mx.example.org", "unknown",
    "010.0.0.1", "1.2.3.04", "00.1.2.3",  # leading zeros are ambiguous (octal)
    "256.0.0.1", "1.2.3.256", "999.1.1.1", "1.2.3", "1.2.3.4.5", "1.2.3.", ".1.2.3",
    "1..2.3", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4\n", "+1.2.3.4", "-1.2.3.4",
    "1.2.3.4/32", "1.2.3.4:25", "[::1]", "::ffff:999.1.1.1", "2001:db8::1::2",
    "1:2:3:4:5:6:7:8:9", "12345::", "g::1", ":::", "2001:db8:::1",
])
def test_not_an_address(text: str) -> None:
    assert normalize_address(text) is None
    assert parse_address(text) is None


def test_parse_address_types() -> None:
    assert parse_address("::ffff:1.2.3.4") == ipaddress.IPv4Address("1.2.3.4")
    assert parse_address("fe80::1%eth0") == ipaddress.IPv6Address("fe80::1")
    assert parse_address("2001:db8::1") == ipaddress.IPv6Address("2001:db8::1")
    assert parse_address("192.0.2.1") == ipaddress.IPv4Address("192.0.2.1")


@pytest.mark.parametrize("text", ["1.2.3.\u0664", "\uff11.2.3.4", "12\u0667.0.0.1"])
def test_unicode_digits_are_not_an_address(text: str) -> None:
    assert normalize_address(text) is None


def expected_normal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


@PROPERTY
@given(address=st.ip_addresses())
def test_every_address_spelling_normalises_to_one(address) -> None:
    normal = expected_normal(address)
    assert normalize_address(str(address)) == normal
    assert normalize_address(address.exploded) == normal
    assert normalize_address(address.exploded.upper()) == normal
    assert normalize_address(normal) == normal  # idempotent
    assert parse_address(str(address)) == ipaddress.ip_address(normal)


@PROPERTY
@given(address=st.ip_addresses(v=4))
def test_mapped_ipv4_is_ipv4(address: ipaddress.IPv4Address) -> None:
    assert normalize_address(f"::ffff:{address}") == str(address)
    assert normalize_address(str(ipaddress.IPv6Address(f"::ffff:{address}"))) == str(address)


@PROPERTY
@given(address=st.ip_addresses(v=6), zone=st.from_regex(r"[A-Za-z0-9.]{1,16}",
                                                        fullmatch=True))
def test_zone_id_is_dropped(address: ipaddress.IPv6Address, zone: str) -> None:
    assert normalize_address(f"{address}%{zone}") == expected_normal(address)


def reference(text: str) -> str | None:
    """What ipaddress makes of a string without '%' or ':': the IPv4 oracle."""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        return None


OCTETS = st.one_of(st.integers(0, 300).map(str),
                   st.from_regex(r"[0-9]{1,4}", fullmatch=True))
DOTTED = st.one_of(
    st.lists(OCTETS, min_size=4, max_size=4).map(".".join),
    st.lists(OCTETS, min_size=1, max_size=6).map(".".join),
    st.text(alphabet="0123456789.", max_size=20),
    st.text(alphabet="0123456789. x-+/", max_size=20))


@PROPERTY
@given(text=DOTTED)
def test_fast_ipv4_path_agrees_with_ipaddress(text: str) -> None:
    assert normalize_address(text) == reference(text)


# ------------------------------------------------- addresses never blocked

NEVER = ["0.0.0.0", "0.1.2.3", "255.255.255.255", "224.0.0.1", "239.255.255.250",
         "169.254.169.254", "::", "ff02::1", "ff05::1:3", "fe80::1", "febf:ffff::1"]
BLOCKABLE = ["192.0.2.1", "198.51.100.7", "203.0.113.255", "2001:db8::1", "1.0.0.1",
             "223.255.255.255", "240.0.0.1", "169.253.255.255", "fec0::1", "ff::1", "::2"]


@pytest.mark.parametrize("address", NEVER)
def test_unspecified_broadcast_multicast_link_local_are_never_blocked(address: str) -> None:
    assert never_blocked(address)
    reason = unblockable(ipaddress.ip_network(address))
    assert reason is not None and "never blocked" in reason


@pytest.mark.parametrize("address", BLOCKABLE)
def test_documentation_and_ordinary_addresses_stay_blockable(address: str) -> None:
    assert not never_blocked(address)
    assert unblockable(ipaddress.ip_network(address)) is None


@pytest.mark.parametrize("prefix, reason", [
    ("0.0.0.0/0", "covers the unspecified range 0.0.0.0/8"),
    ("::/0", "covers the unspecified range ::/128"),
    ("224.0.0.0/3", "covers the multicast range 224.0.0.0/4"),
    ("239.1.0.0/16", "is inside the multicast range 224.0.0.0/4"),
    ("169.254.0.0/24", "is inside the link-local range 169.254.0.0/16"),
    ("255.255.255.0/24", "covers the broadcast range 255.255.255.255/32"),
    ("fe80::/64", "is inside the link-local range fe80::/10"),
    ("ff00::/8", "is inside the multicast range ff00::/8"),
])
def test_no_prefix_touching_them(prefix: str, reason: str) -> None:
    assert unblockable(ipaddress.ip_network(prefix)) == f"{reason}: never blocked"


@given(st.integers(0, 2**32 - 1))
@PROPERTY
def test_the_fast_check_agrees_with_the_networks(value: int) -> None:
    address = str(ipaddress.IPv4Address(value))
    assert never_blocked(address) == any(ipaddress.IPv4Address(value) in network
                                         for network in NEVER_BLOCKED)
