"""Whom the sign-in pages' rate limit counts."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_login_redirect.gateway.limits import rate_limit_key


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "::ffff:192.0.2.7"),
        ("not an address", "not an address"),
    ],
)
def test_key(address: str, key: str) -> None:
    assert rate_limit_key(address) == key


@settings(max_examples=300)
@given(st.ip_addresses(v=6), st.integers(0, 2**64 - 1))
def test_one_slash_64_is_one_client(address: ipaddress.IPv6Address, host: int) -> None:
    """Every address of a /64 counts as the same client; other /64s do not."""
    if address.ipv4_mapped is not None:
        return
    sibling = ipaddress.IPv6Address((int(address) >> 64 << 64) | host)
    assert rate_limit_key(str(address)) == rate_limit_key(str(sibling))
    neighbour = ipaddress.IPv6Address(int(address) ^ (1 << 64))
    if neighbour.ipv4_mapped is None:
        assert rate_limit_key(str(neighbour)) != rate_limit_key(str(address))
