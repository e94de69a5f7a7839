"""The address guard judges every IPv6 form that carries an IPv4 address as that address.

Each form is built around four embedded addresses (private, loopback, link-local, public) and
checked with the guard's own decision functions: no request is ever sent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from hub.security.netguard import (
    AddressGuard,
    BlockedAddressError,
    embedded_ipv4,
    is_forbidden_address,
)
from hub.settings import Settings

V4 = ipaddress.IPv4Address

EMBEDDED = {
    "private": V4("10.1.2.3"),
    "loopback": V4("127.0.0.1"),
    "link-local": V4("169.254.7.9"),
    "public": V4("8.8.8.8"),
}


def _hex(v4: V4, xor: int = 0) -> str:
    value = int(v4) ^ xor
    return f"{value >> 16:x}:{value & 0xFFFF:x}"


FORMS: dict[str, Callable[[V4], str]] = {
    "IPv4-mapped": lambda v4: f"::ffff:{v4}",
    "SIIT": lambda v4: f"::ffff:0:{v4}",
    "IPv4-compatible": lambda v4: f"::{v4}",
    "NAT64": lambda v4: f"64:ff9b::{v4}",
    "NAT64 local-use": lambda v4: f"64:ff9b:1::{v4}",
    "6to4": lambda v4: f"2002:{_hex(v4)}::1",
    # Teredo: the server's address in bits 32-64 (here the client is a public 8.8.8.8) ...
    "Teredo server": lambda v4: f"2001:0:{_hex(v4)}:8000:63bf:f7f7:f7f7",
    # ... and the client's address, obfuscated (every bit inverted), in the last 32 bits.
    "Teredo client": lambda v4: f"2001:0:4136:e378:8000:63bf:{_hex(v4, 0xFFFFFFFF)}",
    "ISATAP": lambda v4: f"2001:4860:1::5efe:{v4}",
    "ISATAP universal": lambda v4: f"2001:4860:1::200:5efe:{v4}",
}

# What a public embedded address gives: the forms that lead to it are as public as it is;
# the deprecated ones are not publicly routable whatever they carry; the local-use NAT64
# prefix is read in every RFC 6052 layout, and the /48, /56 and /64 readings of
# 64:ff9b:1::8.8.8.8 fall in 0.0.0.0/8.
PUBLIC_VERDICT: dict[str, str | None] = {
    "IPv4-mapped": None,
    "SIIT": "reserved",
    "IPv4-compatible": "reserved",
    "NAT64": None,
    "NAT64 local-use": "unspecified",
    "6to4": None,
    "Teredo server": None,
    "Teredo client": None,
    "ISATAP": None,
    "ISATAP universal": None,
}


@pytest.mark.parametrize("kind", ["private", "loopback", "link-local"])
@pytest.mark.parametrize("form", sorted(FORMS))
def test_embedded_address_refused_like_the_plain_address(form: str, kind: str) -> None:
    embedded = EMBEDDED[kind]
    address = ipaddress.IPv6Address(FORMS[form](embedded))
    assert is_forbidden_address(embedded) == kind
    assert is_forbidden_address(address) == kind, address
    with pytest.raises(BlockedAddressError) as info:
        AddressGuard().check("example.com", address)
    assert info.value.reason == kind


@pytest.mark.parametrize("form", sorted(FORMS))
def test_public_embedded_address(form: str) -> None:
    address = ipaddress.IPv6Address(FORMS[form](EMBEDDED["public"]))
    assert is_forbidden_address(address) == PUBLIC_VERDICT[form], address


def test_siit_form_of_loopback_is_refused() -> None:
    """The form the probe found open: ``::ffff:0:127.0.0.1``."""
    with pytest.raises(BlockedAddressError) as info:
        AddressGuard().check("example.com", ipaddress.ip_address("::ffff:0:127.0.0.1"))
    assert info.value.reason == "loopback"


@pytest.mark.parametrize(
    ("address", "forms"),
    [
        ("::ffff:0:10.1.2.3", {("IPv4-translated (SIIT)", "10.1.2.3")}),
        ("::ffff:10.1.2.3", {("IPv4-mapped", "10.1.2.3")}),
        ("::10.1.2.3", {("IPv4-compatible", "10.1.2.3")}),
        ("64:ff9b::a01:203", {("NAT64", "10.1.2.3")}),
        ("2002:a01:203::1", {("6to4", "10.1.2.3")}),
        (
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            {("Teredo", "65.54.227.120"), ("Teredo", "192.0.2.45")},
        ),
        ("fe80::200:5efe:a01:203", {("ISATAP", "10.1.2.3")}),
        ("fe80::300:5efe:a01:203", {("ISATAP", "10.1.2.3")}),
        ("2606:4700:4700::1111", set()),
        ("fe80::100:5eff:fe01:203", set()),
    ],
)
def test_embedded_ipv4_reads_each_form(address: str, forms: set[tuple[str, str]]) -> None:
    found = {(form, str(v4)) for form, v4 in embedded_ipv4(ipaddress.IPv6Address(address))}
    assert found == forms


def test_local_use_nat64_reads_every_layout() -> None:
    """The operator picks the prefix length inside 64:ff9b:1::/48, so every RFC 6052 layout
    is read: an address hidden in the /48 layout is refused although its /96 reading is
    public, and an address whose every reading is public is allowed."""
    hidden = ipaddress.IPv6Address("64:ff9b:1:a01:3:808:808:808")  # /48 layout: 10.1.3.8
    assert str(embedded_ipv4(hidden)[0][1]) == "8.8.8.8"  # the /96 reading
    assert is_forbidden_address(hidden) == "private"
    everywhere_public = ipaddress.IPv6Address("64:ff9b:1:808:8:808:808:808")
    assert {str(v4) for _, v4 in embedded_ipv4(everywhere_public)} == {"8.8.8.8"}
    assert is_forbidden_address(everywhere_public) is None


def test_isatap_under_a_link_local_prefix_is_judged_by_the_prefix() -> None:
    assert is_forbidden_address("fe80::5efe:8.8.8.8") == "link-local"
    assert is_forbidden_address("fd12:3456::5efe:8.8.8.8") == "private"
    assert is_forbidden_address("2001:4860:1::5efe:8.8.8.8") is None


def test_unallocated_ipv6_space_is_reserved() -> None:
    """Only 2000::/3 is global unicast; Python calls some other blocks global."""
    assert is_forbidden_address("4000::1") == "reserved"
    assert is_forbidden_address("::1:0:0:1") == "reserved"
    assert is_forbidden_address("2606:4700:4700::1111") is None


@pytest.mark.parametrize(
    "form",
    ["IPv4-mapped", "SIIT", "IPv4-compatible", "NAT64", "6to4", "Teredo client", "ISATAP"],
)
def test_allowed_network_allows_its_embedded_forms(form: str) -> None:
    guard = AddressGuard.from_settings(Settings(allow_hosts=("10.1.0.0/16",)))
    guard.check("example.com", ipaddress.IPv6Address(FORMS[form](V4("10.1.2.3"))))
    # An address outside the allowed network, in the same form, is still refused.
    with pytest.raises(BlockedAddressError) as info:
        guard.check("example.com", ipaddress.IPv6Address(FORMS[form](V4("10.2.0.1"))))
    assert info.value.reason == "private"
    with pytest.raises(BlockedAddressError):
        guard.check("example.com", ipaddress.IPv6Address(FORMS[form](EMBEDDED["loopback"])))


def test_teredo_with_one_allowed_address_is_judged_on_both() -> None:
    """A Teredo address carries two IPv4 addresses: allowing one does not allow the other."""
    guard = AddressGuard.from_settings(Settings(allow_hosts=("10.1.0.0/16",)))
    address = ipaddress.IPv6Address(f"2001:0:{_hex(V4('127.0.0.1'))}:8000:63bf:f5fe:fdfc")
    assert {str(v4) for _, v4 in embedded_ipv4(address)} == {"127.0.0.1", "10.1.2.3"}
    assert not guard.address_allowed(address)
    with pytest.raises(BlockedAddressError) as info:
        guard.check("example.com", address)
    assert info.value.reason == "loopback"
