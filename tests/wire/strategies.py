"""Hypothesis strategies the wire tests share: unsigned fields, GIDs, blobs, IPs.

Record strategies stay in the test module of their codec; what several modules
build records from lives here.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from hypothesis import strategies as st


def bits(n: int) -> st.SearchStrategy[int]:
    """Any value of an n-bit unsigned field."""
    return st.integers(0, (1 << n) - 1)


def blob(n: int) -> st.SearchStrategy[bytes]:
    """Any n bytes (a fixed-size field such as Private Data)."""
    return st.binary(min_size=n, max_size=n)


u4 = bits(4)
u8 = bits(8)
u16 = bits(16)
u24 = bits(24)
u32 = bits(32)
u64 = bits(64)
gids = blob(16)
ipv4s = u32.map(IPv4Address)
ipv6s = bits(128).map(IPv6Address)
