"""Paths through the programmed subnet: the walk behind every PathRecord.

`resolve_path(db, slid, dlid)` follows a packet from the end port that owns
`slid` to the one that owns `dlid` through the linear forwarding tables the SM
last programmed (`NodeRecordData.lft`) and the links it discovered (`SubnetDb.links`),
exactly as the fabric would forward it, and collects what a PathRecord reports
(IBA Vol 1, 15.2.5.16): the number of links crossed, the smallest MTU and the
lowest static rate along the way. It is a pure function of the database, used by
the SA, by `ibmig path` and by tests.

Which ports count (OpenSM `pr_rcv_get_path_parms` walks the same way): the source
end port, then for every link both its ports (the egress port of the node the
packet leaves and the ingress port of the node it enters), and port 0 of a switch
that is the source or the destination. For each port:

- MTU: the port's MTUCap, lowered to its NeighborMTU when the SM or the port has
  set one (NeighborMTU is the MTU actually negotiated on the link, 14.2.5.6;
  OpenSM looks only at MTUCap). Port 0 of a switch has no link, so only its
  MTUCap counts, as in OpenSM (ibsim's switch port 0 reports MTUCap 1024 with
  NeighborMTU 256: a path to or from a switch has MTU 1024 there).
- Rate: LinkWidthActive lanes x the per-lane LinkSpeedActive, or
  LinkSpeedExtActive when the port (or, on a switch, its port 0) advertises
  IsExtendedSpeedsSupported and an extended speed is active (as OpenSM's
  `ib_port_info_compute_rate`), encoded in the PathRecord rate enumeration
  (15.2.5.16 Table 205; OpenSM `IB_PATH_RECORD_RATE_*`). Rates are compared by
  bandwidth, not by code: code 5 (5 Gb/s) is slower than code 3 (10 Gb/s).
  A port whose width or speed is unknown (0) does not constrain the rate.

A loopback path (`slid == dlid`) crosses no link; its MTU and rate are the end
port's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ibmig.core.sm.db import NodeRecordData, SubnetDb
from ibmig.wire.smp_attrs import PortCapability, PortInfo

MAX_HOPS: Final = 64
"""Longest path followed before giving up (a routing loop); OpenSM's MAX_HOPS."""

UNREACHABLE_PORT: Final = 0xFF

# PathRecord rate codes -> bandwidth in units of 0.1 Gb/s (IBA Vol 1, 15.2.5.16,
# Table 205; codes above 10 from later releases, as in OpenSM ib_types.h).
RATE_TENTHS_GBPS: Final[dict[int, int]] = {
    2: 25,
    3: 100,
    4: 300,
    5: 50,
    6: 200,
    7: 400,
    8: 600,
    9: 800,
    10: 1200,
    11: 140,
    12: 560,
    13: 1120,
    14: 1680,
    15: 250,
    16: 1000,
    17: 2000,
    18: 3000,
    19: 280,
    20: 500,
    21: 4000,
    22: 6000,
    23: 8000,
    24: 12000,
}
_RATE_OF_TENTHS: Final = {tenths: code for code, tenths in RATE_TENTHS_GBPS.items()}
RATES_BY_BANDWIDTH: Final[tuple[int, ...]] = tuple(
    sorted(RATE_TENTHS_GBPS, key=RATE_TENTHS_GBPS.__getitem__)
)
"""Valid rate codes, slowest first."""

MIN_RATE: Final = 2  # 2.5 Gb/s
MIN_MTU: Final = 1  # 256 bytes
MAX_MTU: Final = 5  # 4096 bytes

# LinkWidthActive bit -> lanes; LinkSpeedActive / LinkSpeedExtActive bit -> tenths
# of Gb/s per lane (IBA Vol 1, 14.2.5.6).
_LANES: Final = {0x01: 1, 0x02: 4, 0x04: 8, 0x08: 12, 0x10: 2}
_LANE_SPEED: Final = {0x1: 25, 0x2: 50, 0x4: 100}
_LANE_SPEED_EXT: Final = {0x01: 140, 0x02: 250, 0x04: 500, 0x08: 1000}
_EXT_CAPABLE: Final = int(PortCapability.IS_EXTENDED_SPEEDS_SUPPORTED)


class PathError(Exception):
    """No path: an unknown LID, a missing link, no LFT entry, or a loop."""


@dataclass(frozen=True, slots=True)
class PathInfo:
    """The path from the end port owning `slid` to the one owning `dlid`.

    `hops` lists, source first, every (node GUID, port) the packet leaves by: the
    source CA port (or the egress port of a source switch), then the egress port
    of every switch it crosses. `mtu` is an MTU code (1..5), `rate` a PathRecord
    rate code.
    """

    slid: int
    dlid: int
    src: tuple[int, int]
    dst: tuple[int, int]
    hops: tuple[tuple[int, int], ...]
    mtu: int
    rate: int

    @property
    def hop_count(self) -> int:
        """Links crossed (0 for a loopback path)."""
        return len(self.hops)


def port_rate(info: PortInfo, extended_capable: bool) -> int:
    """PathRecord rate code of one port's active link, 0 when it is unknown."""
    lanes = _LANES.get(info.link_width_active)
    if lanes is None:
        return 0
    if extended_capable and info.link_speed_ext_active:
        lane = _LANE_SPEED_EXT.get(info.link_speed_ext_active)
        if lane is not None:
            return _RATE_OF_TENTHS.get(lanes * lane, 0)
    lane = _LANE_SPEED.get(info.link_speed_active)
    if lane is None:
        return 0
    return _RATE_OF_TENTHS.get(lanes * lane, 0)


def port_mtu(info: PortInfo) -> int:
    """MTU code a port can carry: MTUCap, lowered to NeighborMTU when that is set."""
    mtu = info.mtu_cap
    if info.neighbor_mtu and (not mtu or info.neighbor_mtu < mtu):
        mtu = info.neighbor_mtu
    return mtu


def rate_bandwidth(rate: int) -> int:
    """Bandwidth of a rate code in tenths of Gb/s (0 for an invalid code)."""
    return RATE_TENTHS_GBPS.get(rate, 0)


def rate_below(rate: int) -> int:
    """The fastest valid rate strictly slower than `rate`, 0 if there is none
    (OpenSM `ib_path_rate_get_prev`)."""
    limit = RATE_TENTHS_GBPS.get(rate, 0)
    best = 0
    for code in RATES_BY_BANDWIDTH:
        if RATE_TENTHS_GBPS[code] < limit:
            best = code
    return best


class _Limits:
    __slots__ = ("mtu", "rate", "rate_tenths")

    def __init__(self) -> None:
        self.mtu = 0
        self.rate = 0
        self.rate_tenths = 0

    def add(self, node: NodeRecordData, port: int) -> None:
        record = node.ports.get(port)
        if record is None or record.info is None:
            return
        info = record.info
        mtu = info.mtu_cap if port == 0 and node.is_switch else port_mtu(info)
        if mtu and (not self.mtu or mtu < self.mtu):
            self.mtu = mtu
        capable = bool(info.capability_mask & _EXT_CAPABLE)
        if not capable and node.is_switch and port:
            base = node.ports.get(0)
            base_info = base.info if base is not None else None
            capable = base_info is not None and bool(base_info.capability_mask & _EXT_CAPABLE)
        rate = port_rate(info, capable)
        tenths = RATE_TENTHS_GBPS.get(rate, 0)
        if tenths and (not self.rate_tenths or tenths < self.rate_tenths):
            self.rate = rate
            self.rate_tenths = tenths


def _out_port(node: NodeRecordData, dlid: int) -> int:
    lft = node.lft
    if lft is None or dlid >= len(lft):
        raise PathError(f"switch {node.node_guid:#x} has no LFT entry for LID {dlid}")
    port = lft[dlid]
    if port == UNREACHABLE_PORT or port > node.info.num_ports:
        raise PathError(f"switch {node.node_guid:#x} does not route LID {dlid}")
    return port


def resolve_path(db: SubnetDb, slid: int, dlid: int) -> PathInfo:
    """Walk the programmed LFTs from the end port of `slid` to that of `dlid`.

    Raises `PathError` when either LID belongs to no end port or the packet would
    be dropped (no link, no LFT entry, a channel adapter that is not the
    destination, more than `MAX_HOPS` links).
    """
    src = db.lid_owner.get(slid)
    if src is None:
        raise PathError(f"no end port has LID {slid}")
    dst = db.lid_owner.get(dlid)
    if dst is None:
        raise PathError(f"no end port has LID {dlid}")
    nodes = db.nodes
    node = nodes.get(src[0])
    if node is None or nodes.get(dst[0]) is None:
        raise PathError(f"LID {slid} or {dlid} belongs to a node no longer in the subnet")
    limits = _Limits()
    limits.add(node, src[1])
    hops: list[tuple[int, int]] = []
    if src == dst:
        return PathInfo(slid, dlid, src, dst, (), limits.mtu, limits.rate or MIN_RATE)
    out = _out_port(node, dlid) if node.is_switch else src[1]
    if out == 0:
        raise PathError(f"switch {node.node_guid:#x} routes LID {dlid} to itself")
    links = db.links
    while True:
        if len(hops) >= MAX_HOPS:
            raise PathError(f"path from LID {slid} to LID {dlid} exceeds {MAX_HOPS} hops")
        hops.append((node.node_guid, out))
        limits.add(node, out)
        far = links.get((node.node_guid, out))
        if far is None:
            raise PathError(f"no link at {node.node_guid:#x} port {out} towards LID {dlid}")
        next_node = nodes.get(far[0])
        if next_node is None:
            raise PathError(f"link at {node.node_guid:#x} port {out} leads to an unknown node")
        node = next_node
        limits.add(node, far[1])
        if far == dst:
            break
        if not node.is_switch:
            raise PathError(f"LID {dlid} routed into channel adapter {node.node_guid:#x}")
        out = _out_port(node, dlid)
        if out == 0:
            if dst != (node.node_guid, 0):
                raise PathError(f"switch {node.node_guid:#x} claims LID {dlid}")
            limits.add(node, 0)
            break
    return PathInfo(slid, dlid, src, dst, tuple(hops), limits.mtu, limits.rate or MIN_RATE)


def hop_packet_life_time(hop_count: int, per_hop: int) -> int:
    """PacketLifeTime exponent for a path of `hop_count` links when each link
    (and the switch queue behind it) may hold a packet for 4.096 us x 2^per_hop:
    the smallest exponent whose lifetime covers them all, 6 bits at most; 0 for a
    loopback path (IBA Vol 1, 15.2.5.16: PacketLifeTime of a loopback path is 0)."""
    if hop_count <= 0:
        return 0
    return min(0x3F, per_hop + (hop_count - 1).bit_length())
