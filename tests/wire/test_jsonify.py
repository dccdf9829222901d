"""JSON rendering of wire records (what traces and `ibmig decode --json` print)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from ibmig.wire.ipoib import IpoibArp
from ibmig.wire.jsonify import to_json
from ibmig.wire.rdma_cm import IpCmHeader
from tests.helpers import gid


def test_ip_addresses_render_as_text() -> None:
    # Dynamic address assignment traces events carrying IP addresses; rendering them
    # raised TypeError, so `ibmig run --trace` died on such a scenario.
    arp = IpoibArp.gratuitous(IPv4Address("10.0.0.7"), 0x48, gid(0x1234))
    rendered = to_json(arp)
    assert rendered["sender_ip"] == rendered["target_ip"] == "10.0.0.7"
    assert rendered["sender_gid"] == "fe80::1234"
    header = IpCmHeader(IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2"), 7)
    assert to_json(header) == {"src_ip": "2001:db8::1", "dst_ip": "2001:db8::2", "src_port": 7}
