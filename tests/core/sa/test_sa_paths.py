"""PathRecord: the LFT walk (`resolve_path`) and SubnAdmGet/GetTable(PathRecord)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibmig.core.sa import (
    SaConfig,
    SubnetAdministrator,
    hop_packet_life_time,
    port_rate,
    resolve_path,
)
from ibmig.core.sa.paths import (
    RATE_TENTHS_GBPS,
    RATES_BY_BANDWIDTH,
    PathError,
    port_mtu,
    rate_below,
)
from ibmig.fabric.generators import fat_tree_2level
from ibmig.wire.mad import MadStatus, Method
from ibmig.wire.sa import PathRecord, PathRecordComp, SaAttr, SaMad, SaStatus, Selector
from ibmig.wire.smp_attrs import PortCapability
from tests.core.sa.sa_util import (
    H1_GUID,
    H1_LID,
    H2_GUID,
    H2_LID,
    H3_GUID,
    H3_LID,
    H3_NODE,
    PREFIX,
    SM_LID,
    SM_NODE,
    SM_PORT_GUID,
    SW1,
    SW1_LID,
    SW2,
    SW2_LID,
    SaSim,
    ask,
    build_subnet,
    make_sa,
    one,
    port_info,
    request,
)
from tests.helpers import gid

PR = SaAttr.PATH_RECORD
SGID, DGID = PathRecordComp.SGID, PathRecordComp.DGID
SLID, DLID = PathRecordComp.SLID, PathRecordComp.DLID
QDR_4X = 7  # 40 Gb/s
SDR_1X = 2  # 2.5 Gb/s


# --- resolve_path ------------------------------------------------------------------


def test_path_through_two_switches() -> None:
    db = build_subnet().db
    path = resolve_path(db, SM_LID, H2_LID)
    assert path.hops == ((SM_NODE, 1), (SW1, 3), (SW2, 2))
    assert path.hop_count == 3
    assert (path.src, path.dst) == ((SM_NODE, 1), (0xC0, 1))
    assert (path.mtu, path.rate) == (5, QDR_4X)


def test_slow_last_link_limits_mtu_and_rate() -> None:
    db = build_subnet().db
    path = resolve_path(db, SM_LID, H3_LID)
    assert (path.mtu, path.rate) == (4, SDR_1X)
    back = resolve_path(db, H3_LID, SM_LID)
    assert back.hops == ((H3_NODE, 1), (SW2, 1), (SW1, 1))
    assert (back.mtu, back.rate) == (4, SDR_1X)


def test_switch_end_ports() -> None:
    db = build_subnet().db
    to_switch = resolve_path(db, SM_LID, SW2_LID)
    assert to_switch.hops == ((SM_NODE, 1), (SW1, 3))
    assert to_switch.dst == (SW2, 0)
    from_switch = resolve_path(db, SW1_LID, H2_LID)
    assert from_switch.hops == ((SW1, 3), (SW2, 2))
    between = resolve_path(db, SW1_LID, SW2_LID)
    assert between.hops == ((SW1, 3),)


def test_loopback_path() -> None:
    db = build_subnet().db
    path = resolve_path(db, H1_LID, H1_LID)
    assert path.hops == () and path.hop_count == 0
    assert (path.mtu, path.rate) == (5, QDR_4X)
    assert resolve_path(db, SW1_LID, SW1_LID).hops == ()


def test_neighbor_mtu_lowers_the_path_mtu() -> None:
    db = build_subnet().db
    record = db.nodes[SW1].ports[2]
    assert record.info is not None
    record.info = replace(record.info, neighbor_mtu=3)
    assert resolve_path(db, SM_LID, H1_LID).mtu == 3
    assert resolve_path(db, SM_LID, H2_LID).mtu == 5


def test_switch_port_0_counts_its_mtu_cap_not_its_neighbor_mtu() -> None:
    # ibsim's switch port 0: MTUCap 1024, NeighborMTU 256; OpenSM's PathRecord to
    # the switch has MTU 1024 (measured on ibsim, ft2-36).
    db = build_subnet().db
    record = db.nodes[SW2].ports[0]
    assert record.info is not None
    record.info = replace(record.info, mtu_cap=3, neighbor_mtu=1)
    assert resolve_path(db, SM_LID, SW2_LID).mtu == 3
    assert resolve_path(db, SW2_LID, SM_LID).mtu == 3
    assert resolve_path(db, SW2_LID, SW2_LID).mtu == 3
    assert resolve_path(db, SM_LID, H2_LID).mtu == 5  # port 0 is not on this path
    # A linked port is still lowered to its NeighborMTU.
    link = db.nodes[SW2].ports[2]
    assert link.info is not None
    link.info = replace(link.info, neighbor_mtu=2)
    assert resolve_path(db, SM_LID, H2_LID).mtu == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("unknown_slid", "no end port has LID 9"),
        ("unknown_dlid", "no end port has LID 9"),
        ("no_route", "does not route LID 5"),
        ("no_link", "no link at"),
        ("loop", "exceeds 64 hops"),
        ("into_ca", "routed into channel adapter"),
    ],
)
def test_no_path(change: str, message: str) -> None:
    db = build_subnet().db
    slid, dlid = SM_LID, H2_LID
    sw1_lft, sw2_lft = db.nodes[SW1].lft, db.nodes[SW2].lft
    assert sw1_lft is not None and sw2_lft is not None
    if change == "unknown_slid":
        slid = 9
    elif change == "unknown_dlid":
        dlid = 9
    elif change == "no_route":
        sw2_lft[H2_LID] = 0xFF
    elif change == "no_link":
        del db.links[(SW2, 2)]
    elif change == "loop":
        sw2_lft[H2_LID] = 1  # back to sw1, which sends it to sw2 again
    elif change == "into_ca":
        sw1_lft[H2_LID] = 2  # into h1
    with pytest.raises(PathError, match=message):
        resolve_path(db, slid, dlid)


def test_paths_follow_the_simulated_fabric() -> None:
    """On a fabric brought up by the real SM and SMAs, every path's hop count is the
    number of links the transport's own LFT walk crosses."""
    sim = SaSim(fat_tree_2level(leaves=3, hosts_per_leaf=2, spines=2))
    sim.start()
    assert sim.run_until_up() is not None
    db = sim.sm.db
    lids = sorted(db.lid_owner)
    for slid in lids:
        for dlid in lids:
            path = resolve_path(db, slid, dlid)
            src_switch = db.nodes[path.src[0]].is_switch
            dst_switch = db.nodes[path.dst[0]].is_switch
            leaf_hops = (0 if src_switch else 1) + (0 if dst_switch else 1)
            assert leaf_hops <= path.hop_count <= leaf_hops + 2 or slid == dlid
            # every switch hop is what the SMA's LFT (not the SM's copy) says
            for node_guid, out in path.hops:
                node = db.nodes[node_guid]
                if node.is_switch:
                    index = sim.names.index(node.description)
                    assert sim.agents[index].lft[dlid] == out
            assert path.mtu == 5
            assert path.rate == 16  # 4x EDR, extended speeds, 100 Gb/s


# --- rate and lifetime helpers ------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "speed", "ext", "caps", "code"),
    [
        (0x01, 0x1, 0, 0, 2),  # 1x SDR 2.5
        (0x02, 0x1, 0, 0, 3),  # 4x SDR 10
        (0x08, 0x1, 0, 0, 4),  # 12x SDR 30
        (0x01, 0x2, 0, 0, 5),  # 1x DDR 5
        (0x02, 0x2, 0, 0, 6),  # 4x DDR 20
        (0x02, 0x4, 0, 0, 7),  # 4x QDR 40
        (0x08, 0x4, 0, 0, 10),  # 12x QDR 120
        (0x10, 0x4, 0, 0, 6),  # 2x QDR 20
        (0x02, 0x4, 0x1, PortCapability.IS_EXTENDED_SPEEDS_SUPPORTED, 12),  # 4x FDR 56
        (0x02, 0x4, 0x2, PortCapability.IS_EXTENDED_SPEEDS_SUPPORTED, 16),  # 4x EDR 100
        (0x02, 0x4, 0x4, PortCapability.IS_EXTENDED_SPEEDS_SUPPORTED, 17),  # 4x HDR 200
        (0x02, 0x4, 0x8, PortCapability.IS_EXTENDED_SPEEDS_SUPPORTED, 21),  # 4x NDR 400
        (0x02, 0x4, 0x2, 0, 7),  # extended speed ignored without the capability
        (0x00, 0x4, 0, 0, 0),  # unknown width
    ],
)
def test_port_rate(width: int, speed: int, ext: int, caps: int, code: int) -> None:
    info = replace(port_info(width=width, speed=speed, caps=caps), link_speed_ext_active=ext)
    assert port_rate(info, bool(caps)) == code


def test_rate_order_and_rate_below() -> None:
    bandwidths = [RATE_TENTHS_GBPS[code] for code in RATES_BY_BANDWIDTH]
    assert bandwidths == sorted(bandwidths) and len(set(bandwidths)) == len(bandwidths)
    assert rate_below(3) == 5  # below 10 Gb/s comes 5 Gb/s
    assert rate_below(7) == 4  # below 40 Gb/s comes 30 Gb/s (12x SDR)
    assert rate_below(2) == 0
    assert port_mtu(port_info(mtu=4)) == 4


@given(st.integers(0, 200), st.integers(0, 40))
def test_hop_packet_life_time_covers_every_link(hops: int, per_hop: int) -> None:
    plt = hop_packet_life_time(hops, per_hop)
    assert 0 <= plt <= 0x3F
    if hops == 0:
        assert plt == 0
    elif plt < 0x3F:
        assert (1 << plt) >= hops << per_hop  # covers every link
        assert plt == per_hop or (1 << (plt - 1)) < hops << per_hop  # and is the smallest


# --- SubnAdmGet(PathRecord) -----------------------------------------------------------


def _get(sa: SubnetAdministrator, record: PathRecord, mask: int) -> SaMad:
    return one(sa, request(PR, Method.GET, record, mask=mask))


def _path(answer: SaMad) -> PathRecord:
    assert answer.status == 0, hex(answer.status)
    record = answer.record()
    assert isinstance(record, PathRecord)
    return record


def test_get_by_gids_gives_the_exact_record() -> None:
    sa = make_sa()
    query = PathRecord(sgid=gid(H1_GUID), dgid=gid(H3_GUID))
    answer = one(sa, request(PR, Method.GET, query, mask=SGID | DGID, tid=77))
    assert answer.header.method == Method.GET_RESP
    assert answer.status == 0 and answer.tid == 77
    assert answer.attribute_offset == 8 and answer.sm_key == 0
    assert answer.component_mask == SGID | DGID
    assert _path(answer) == PathRecord(
        dgid=gid(H3_GUID),
        sgid=gid(H1_GUID),
        dlid=H3_LID,
        slid=H1_LID,
        reversible=True,
        numb_path=0,
        pkey=0xFFFF,
        sl=0,
        mtu_selector=Selector.EXACTLY,
        mtu=4,
        rate_selector=Selector.EXACTLY,
        rate=SDR_1X,
        packet_life_time_selector=Selector.EXACTLY,
        packet_life_time=18,  # 3 links: 16 + ceil(log2 3)
    )


def test_get_by_lids_and_packet_lifetime_by_hops() -> None:
    sa = make_sa(SaConfig(packet_life_time=None))
    record = _path(_get(sa, PathRecord(slid=SM_LID, dlid=H1_LID), SLID | DLID))
    assert (record.slid, record.dlid) == (SM_LID, H1_LID)
    assert record.sgid == gid(SM_PORT_GUID) and record.dgid == gid(H1_GUID)
    assert record.packet_life_time == 17  # 2 links
    assert (record.mtu, record.rate) == (5, QDR_4X)
    loop = _path(_get(sa, PathRecord(slid=H1_LID, dlid=H1_LID), SLID | DLID))
    assert loop.packet_life_time == 0


def test_fixed_packet_life_time_as_opensm_by_default() -> None:
    # osm_sa_path_record.c: subnet_timeout (0x12) for every path, 0 for a loopback one.
    sa = make_sa()
    for dlid in (H1_LID, H2_LID):
        record = _path(_get(sa, PathRecord(slid=SM_LID, dlid=dlid), SLID | DLID))
        assert record.packet_life_time == 0x12
    loop = _path(_get(sa, PathRecord(slid=H1_LID, dlid=H1_LID), SLID | DLID))
    assert loop.packet_life_time == 0
    sa = make_sa(SaConfig(packet_life_time=12))
    record = _path(_get(sa, PathRecord(slid=SM_LID, dlid=H1_LID), SLID | DLID))
    assert record.packet_life_time == 12


def test_link_local_prefix_accepted_other_prefix_gives_no_record() -> None:
    sa = make_sa()
    query = PathRecord(sgid=gid(H1_GUID, 0xFE80 << 48), dgid=gid(H2_GUID))
    assert _get(sa, query, SGID | DGID).status == 0
    foreign = PathRecord(sgid=gid(H1_GUID, 0x1234 << 48), dgid=gid(H2_GUID))
    assert _get(sa, foreign, SGID | DGID).status == SaStatus.ERR_NO_RECORDS


def test_site_local_subnet_prefix() -> None:
    sm = build_subnet()
    sm.db.subnet_prefix = 0xFEC0_0000_0000_0042
    sa = make_sa(sm=sm)
    query = PathRecord(sgid=gid(H1_GUID, 0xFEC0_0000_0000_0042), dgid=gid(H2_GUID, 0xFEC0 << 48))
    answer = _get(sa, query, SGID | DGID)
    assert answer.status == SaStatus.ERR_NO_RECORDS
    query = PathRecord(sgid=gid(H1_GUID, 0xFEC0_0000_0000_0042), dgid=gid(H2_GUID))
    record = _path(_get(sa, query, SGID | DGID))
    assert record.dgid == gid(H2_GUID)  # as requested (link local)


@pytest.mark.parametrize(
    ("query", "mask", "status"),
    [
        (PathRecord(sgid=gid(0x999), dgid=gid(H2_GUID)), SGID | DGID, SaStatus.ERR_NO_RECORDS),
        (PathRecord(slid=H1_LID, dlid=40), SLID | DLID, SaStatus.ERR_NO_RECORDS),
        (PathRecord(sgid=gid(H1_GUID), slid=H2_LID), SGID | SLID, SaStatus.ERR_REQ_INVALID),
        (PathRecord(dgid=gid(H1_GUID), dlid=H2_LID), DGID | DLID, SaStatus.ERR_REQ_INVALID),
        (
            PathRecord(slid=H1_LID, dlid=H2_LID, service_id=5),
            SLID | DLID | PathRecordComp.SERVICE_ID_LSB,
            SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS,
        ),
        (
            PathRecord(slid=H1_LID, dlid=H2_LID, mtu_selector=2, mtu=6),
            SLID | DLID | PathRecordComp.MTU | PathRecordComp.MTU_SELECTOR,
            SaStatus.ERR_REQ_INVALID,
        ),
        (
            PathRecord(slid=H1_LID, dlid=H2_LID, rate_selector=2, rate=1),
            SLID | DLID | PathRecordComp.RATE | PathRecordComp.RATE_SELECTOR,
            SaStatus.ERR_REQ_INVALID,
        ),
        (
            PathRecord(dgid=b"\xff\x02" + bytes(14)),  # multicast: no groups here
            DGID,
            SaStatus.ERR_NO_RECORDS,
        ),
    ],
)
def test_invalid_or_unknown_end_points(query: PathRecord, mask: int, status: int) -> None:
    sa = make_sa()
    answer = _get(sa, query, mask)
    assert answer.status == status
    assert answer.header.method == Method.GET_RESP
    assert answer.data == query.pack().ljust(200, b"\0")


def test_both_service_id_halves_are_fine() -> None:
    sa = make_sa()
    query = PathRecord(slid=H1_LID, dlid=H2_LID, service_id=5)
    answer = _get(sa, query, SLID | DLID | PathRecordComp.SERVICE_ID)
    assert answer.status == 0
    assert _path(answer).service_id == 0  # OpenSM returns 0


def _mtu_rate(sa: SubnetAdministrator, mask: int, **fields: int) -> tuple[int, int] | int:
    query = PathRecord(slid=H1_LID, dlid=H2_LID, **fields)  # type: ignore[arg-type]
    answer = _get(sa, query, SLID | DLID | mask)
    if answer.status:
        return answer.status
    record = _path(answer)
    return record.mtu, record.rate


MTU = PathRecordComp.MTU | PathRecordComp.MTU_SELECTOR
RATE = PathRecordComp.RATE | PathRecordComp.RATE_SELECTOR
NONE = SaStatus.ERR_NO_RECORDS


@pytest.mark.parametrize(
    ("mask", "fields", "expected"),
    [
        (MTU, {"mtu_selector": Selector.GREATER_THAN, "mtu": 4}, (5, QDR_4X)),
        (MTU, {"mtu_selector": Selector.GREATER_THAN, "mtu": 5}, NONE),
        (MTU, {"mtu_selector": Selector.LESS_THAN, "mtu": 4}, (3, QDR_4X)),
        (MTU, {"mtu_selector": Selector.LESS_THAN, "mtu": 1}, NONE),
        (MTU, {"mtu_selector": Selector.EXACTLY, "mtu": 2}, (2, QDR_4X)),
        (MTU, {"mtu_selector": Selector.LARGEST, "mtu": 1}, (5, QDR_4X)),
        (PathRecordComp.MTU, {"mtu_selector": Selector.GREATER_THAN, "mtu": 5}, (5, QDR_4X)),
        (RATE, {"rate_selector": Selector.GREATER_THAN, "rate": 3}, (5, QDR_4X)),
        (RATE, {"rate_selector": Selector.GREATER_THAN, "rate": QDR_4X}, NONE),
        (RATE, {"rate_selector": Selector.LESS_THAN, "rate": 3}, (5, 5)),  # below 10: 5 Gb/s
        (RATE, {"rate_selector": Selector.LESS_THAN, "rate": 2}, NONE),
        (RATE, {"rate_selector": Selector.EXACTLY, "rate": QDR_4X}, (5, QDR_4X)),
        (RATE, {"rate_selector": Selector.EXACTLY, "rate": 3}, NONE),  # exactly, by bandwidth
        (RATE, {"rate_selector": Selector.LARGEST, "rate": 2}, (5, QDR_4X)),
    ],
)
def test_mtu_and_rate_selectors(mask: int, fields: dict[str, int], expected: object) -> None:
    assert _mtu_rate(make_sa(), mask, **fields) == expected


@pytest.mark.parametrize(
    ("selector", "wanted", "expected"),
    [
        (Selector.GREATER_THAN, 17, 18),
        (Selector.GREATER_THAN, 18, None),
        (Selector.LESS_THAN, 10, 9),
        (Selector.LESS_THAN, 1, None),
        (Selector.EXACTLY, 12, 12),
        (Selector.EXACTLY, 19, None),
        (Selector.LARGEST, 0, 18),
    ],
)
def test_packet_life_time_selectors(selector: int, wanted: int, expected: int | None) -> None:
    sa = make_sa()
    query = PathRecord(
        slid=H1_LID, dlid=H2_LID, packet_life_time_selector=selector, packet_life_time=wanted
    )
    mask = SLID | DLID | PathRecordComp.PACKET_LIFE_TIME | PathRecordComp.PACKET_LIFE_TIME_SELECTOR
    answer = _get(sa, query, mask)
    if expected is None:
        assert answer.status == SaStatus.ERR_NO_RECORDS
    else:
        assert _path(answer).packet_life_time == expected


def test_pkey_sl_and_raw_traffic() -> None:
    sa = make_sa()
    base = SLID | DLID
    pkey = base | PathRecordComp.PKEY
    limited = _get(sa, PathRecord(slid=H1_LID, dlid=H2_LID, pkey=0x7FFF), pkey)
    assert _path(limited).pkey == 0x7FFF
    other = _get(sa, PathRecord(slid=H1_LID, dlid=H2_LID, pkey=0x8001), pkey)
    assert other.status == SaStatus.ERR_NO_RECORDS
    sl = _get(sa, PathRecord(slid=H1_LID, dlid=H2_LID, sl=3), base | PathRecordComp.SL)
    assert _path(sl).sl == 3
    raw_mask = base | PathRecordComp.RAW_TRAFFIC
    raw = _get(sa, PathRecord(slid=H1_LID, dlid=H2_LID, raw_traffic=True), raw_mask)
    assert _path(raw).pkey == 0


def test_reversible_and_numb_path() -> None:
    sm = build_subnet()
    sw1_lft = sm.db.nodes[SW1].lft
    assert sw1_lft is not None
    sw1_lft[H1_LID] = 0xFF  # h2 can no longer reach h1; h1 still reaches h2
    sa = make_sa(sm=sm)
    one_way = _path(_get(sa, PathRecord(slid=H1_LID, dlid=H2_LID), SLID | DLID))
    assert not one_way.reversible
    required = PathRecord(slid=H1_LID, dlid=H2_LID, reversible=True)
    answer = _get(sa, required, SLID | DLID | PathRecordComp.REVERSIBLE)
    assert answer.status == SaStatus.ERR_NO_RECORDS
    dont_care = PathRecord(slid=H1_LID, dlid=H2_LID, reversible=False)
    assert _get(sa, dont_care, SLID | DLID | PathRecordComp.REVERSIBLE).status == 0
    table = ask(
        sa,
        request(
            PR,
            Method.GET_TABLE,
            PathRecord(slid=H1_LID, dlid=H2_LID, numb_path=0),
            mask=SLID | DLID | PathRecordComp.NUMB_PATH,
        ),
    )
    assert table[0][1].attribute_offset == 0  # an empty table


def test_alias_gids_resolve_to_their_port() -> None:
    sm = build_subnet()
    record = sm.db.nodes[0xC0].ports[1]
    record.alias_guids[1] = 0x5000
    sm.db.alias_owner[0x5000] = H2_GUID
    sa = make_sa(sm=sm)
    answer = _get(sa, PathRecord(sgid=gid(H1_GUID), dgid=gid(0x5000)), SGID | DGID)
    found = _path(answer)
    assert found.dgid == gid(0x5000) and found.dlid == H2_LID
    # DLID only: one record per GUID of the port, its own and its alias
    table = ask(
        sa,
        request(PR, Method.GET_TABLE, PathRecord(sgid=gid(H1_GUID), dlid=H2_LID), mask=SGID | DLID),
    )
    segments = [mad for _, mad in table]
    assert segments[0].rmpp.payload_length == 20 + 2 * 64
    first = PathRecord.unpack(segments[0].data)
    second = PathRecord.unpack(segments[0].data, 64)
    assert (first.dgid, second.dgid) == (gid(H2_GUID), gid(0x5000))
    # an alias whose port left the subnet is not known
    del sm.db.port_lid[H2_GUID]
    gone = _get(sa, PathRecord(sgid=gid(H1_GUID), dgid=gid(0x5000)), SGID | DGID)
    assert gone.status == SaStatus.ERR_NO_RECORDS


def test_get_world_gives_one_record_and_get_table_all_pairs() -> None:
    sa = make_sa(SaConfig(rmpp=False))
    answer = _get(sa, PathRecord(), 0)
    record = _path(answer)
    # OpenSM's order: destination outer, source inner, both in GUID order
    assert (record.sgid, record.dgid) == (gid(SW1, PREFIX), gid(SW1, PREFIX))
    assert record.packet_life_time == 0


def test_get_table_with_wildcard_destination() -> None:
    sa = make_sa(SaConfig(rmpp=False))
    table = one(sa, request(PR, Method.GET_TABLE, PathRecord(slid=H1_LID), mask=SLID))
    assert table.header.method == Method.GET_TABLE_RESP
    # rmpp=False: the three PathRecords that fit one MAD
    records = table.records()
    assert [r.dlid for r in records if isinstance(r, PathRecord)] == [
        SW1_LID,
        SW2_LID,
        SM_LID,
    ]  # GUID order 0x10, 0x20, 0xA1
    assert table.rmpp.payload_length == 20 + 3 * 64
    assert sa.counters["records_trimmed"] == 3


def test_unsupported_path_record_method() -> None:
    sa = make_sa()
    answer = one(sa, request(PR, Method.SET, PathRecord(), mask=0))
    assert answer.status == MadStatus.METHOD_ATTR_NOT_SUPPORTED
    assert answer.header.method == Method.GET_RESP
