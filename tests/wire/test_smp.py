"""SMP codec (IBA Vol 1, 14.2.1) and directed-route processing (14.2.2)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibmig.errors import WireError
from ibmig.wire.mad import MadHeader, Method, MgmtClass
from ibmig.wire.smp import (
    MAX_HOP_COUNT,
    PERMISSIVE_LID,
    DirectedRequests,
    DrAction,
    DrStep,
    Smp,
    dr_originate,
    dr_receive,
    make_get,
    make_get_resp,
    make_request,
    make_set,
    pack_directed_request,
    path_bytes,
    peek_directed,
)
from ibmig.wire.smp_attrs import (
    LinearForwardingTable,
    NodeInfo,
    NodeType,
    PortInfo,
    PortState,
    SMInfo,
    SmpAttr,
)
from tests.wire.strategies import bits

FAST = settings(deadline=None, max_examples=150)


blocks64 = st.binary(min_size=64, max_size=64)

dr_smps = st.builds(
    Smp,
    mgmt_class=st.just(0x81),
    method=bits(8),
    attribute_id=bits(16),
    attribute_modifier=bits(32),
    tid=bits(64),
    status=bits(15),
    direction=st.booleans(),
    hop_pointer=bits(8),
    hop_count=bits(8),
    m_key=bits(64),
    dr_slid=bits(16),
    dr_dlid=bits(16),
    data=blocks64,
    initial_path=blocks64,
    return_path=blocks64,
    class_version=bits(8),
    base_version=bits(8),
)
lr_smps = st.builds(
    Smp,
    mgmt_class=st.just(0x01),
    method=bits(8),
    attribute_id=bits(16),
    attribute_modifier=bits(32),
    tid=bits(64),
    status=bits(16),
    m_key=bits(64),
    data=blocks64,
    class_version=bits(8),
    base_version=bits(8),
)


# --- codec ---------------------------------------------------------------------------


@FAST
@given(st.one_of(dr_smps, lr_smps))
def test_round_trip(smp: Smp) -> None:
    raw = smp.pack()
    assert len(raw) == 256
    assert Smp.unpack(raw) == smp
    # The common header agrees with the generic MAD codec.
    header = MadHeader.unpack(raw)
    assert (header.mgmt_class, header.method, header.attribute_id, header.tid) == (
        smp.mgmt_class,
        smp.method,
        smp.attribute_id,
        smp.tid,
    )
    assert header.attribute_modifier == smp.attribute_modifier


@FAST
@given(st.binary(min_size=256, max_size=256), st.sampled_from([0x01, 0x81]))
def test_any_smp_bytes_decode(data: bytes, mgmt_class: int) -> None:
    raw = data[:1] + bytes([mgmt_class]) + data[2:]
    smp = Smp.unpack(raw)
    assert smp.directed == (mgmt_class == 0x81)
    again = smp.pack()
    if smp.directed:
        # Only the reserved bytes 18..19 and 36..63 may differ.
        assert again[:18] == raw[:18]
        assert again[20:36] == raw[20:36]
        assert again[64:] == raw[64:]
    else:
        assert again[:6] == raw[:6]
        assert again[8:18] == raw[8:18]
        assert again[20:32] == raw[20:32]
        assert again[64:128] == raw[64:128]
        assert again[128:] == bytes(128)


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    try:
        smp = Smp.unpack(data)
    except WireError:
        return
    assert len(smp.pack()) == 256


def test_dr_vector() -> None:
    # IBA Vol 1, 14.2.1.2, built byte by byte: a returning SubnGetResp(NodeInfo).
    raw = bytearray(256)
    raw[0:4] = b"\x01\x81\x01\x81"  # BaseVersion, DR class, ClassVersion, GetResp
    raw[4:6] = (0x8000 | 0x001C).to_bytes(2, "big")  # D bit + status
    raw[6] = 2  # HopPointer
    raw[7] = 3  # HopCount
    raw[8:16] = (0x0000_1234_DEAD_BEEF).to_bytes(8, "big")  # TID
    raw[16:18] = b"\x00\x11"  # NodeInfo
    raw[20:24] = (0x05).to_bytes(4, "big")  # AttributeModifier
    raw[24:32] = (0x0102030405060708).to_bytes(8, "big")  # M_Key
    raw[32:34] = b"\xff\xff"  # DrSLID
    raw[34:36] = b"\x00\x07"  # DrDLID
    raw[64:68] = b"\x01\x01\x02\x24"  # data: start of a NodeInfo
    raw[128:132] = b"\x00\x01\x05\x09"  # InitialPath: -, 1, 5, 9
    raw[192:196] = b"\x00\x03\x04\x02"  # ReturnPath
    smp = Smp(
        mgmt_class=MgmtClass.SUBN_DIRECTED_ROUTE,
        method=Method.GET_RESP,
        attribute_id=SmpAttr.NODE_INFO,
        attribute_modifier=5,
        tid=0x0000_1234_DEAD_BEEF,
        status=0x1C,
        direction=True,
        hop_pointer=2,
        hop_count=3,
        m_key=0x0102030405060708,
        dr_slid=0xFFFF,
        dr_dlid=7,
        data=b"\x01\x01\x02\x24" + bytes(60),
        initial_path=b"\x00\x01\x05\x09" + bytes(60),
        return_path=b"\x00\x03\x04\x02" + bytes(60),
    )
    assert smp.pack() == bytes(raw)
    assert Smp.unpack(bytes(raw)) == smp
    assert smp.directed
    assert smp.is_response
    assert smp.initial_ports == (1, 5, 9)
    assert smp.return_ports == (3, 4, 2)


def test_lid_routed_vector() -> None:
    # IBA Vol 1, 14.2.1.1: SubnSet(PortInfo) to port 3; reserved areas zero.
    raw = bytearray(256)
    raw[0:4] = b"\x01\x01\x01\x02"
    raw[4:6] = b"\x00\x00"
    raw[8:16] = (42).to_bytes(8, "big")
    raw[16:18] = b"\x00\x15"
    raw[20:24] = (3).to_bytes(4, "big")
    raw[24:32] = (0xABCD).to_bytes(8, "big")
    port_info = PortInfo(lid=0x0C, port_state=PortState.ARMED)
    raw[64:128] = port_info.pack()
    smp = make_set(port_info, tid=42, attribute_modifier=3, m_key=0xABCD)
    assert smp.pack() == bytes(raw)
    assert Smp.unpack(bytes(raw)) == smp
    assert not smp.directed
    assert smp.decode_data(PortInfo) == port_info
    # Reserved bytes are ignored on decode.
    dirty = bytearray(raw)
    dirty[6:8] = b"\x12\x34"
    dirty[32:64] = b"\xee" * 32
    dirty[128:] = b"\x77" * 128
    assert Smp.unpack(bytes(dirty)) == smp


def test_d_bit_and_status_split() -> None:
    raw = bytearray(make_get(SmpAttr.NODE_INFO, tid=1, path=(1,)).pack())
    raw[4:6] = b"\x80\x00"
    smp = Smp.unpack(bytes(raw))
    assert smp.direction is True
    assert smp.status == 0
    raw[4:6] = b"\x7f\xff"
    smp = Smp.unpack(bytes(raw))
    assert smp.direction is False
    assert smp.status == 0x7FFF
    # A LID-routed SMP keeps all 16 status bits.
    lr = bytearray(make_get(SmpAttr.NODE_INFO, tid=1).pack())
    lr[4:6] = b"\x80\x1c"
    assert Smp.unpack(bytes(lr)).status == 0x801C


def test_unpack_errors() -> None:
    with pytest.raises(WireError, match="256"):
        Smp.unpack(bytes(255))
    with pytest.raises(WireError, match="256"):
        Smp.unpack(bytes(257))
    raw = bytearray(256)
    raw[1] = 0x03
    with pytest.raises(WireError, match="0x03"):
        Smp.unpack(bytes(raw))


LR = Smp(0x01, 0x01, 0x0011)
DR = Smp(0x81, 0x01, 0x0011)


@pytest.mark.parametrize(
    ("smp", "match"),
    [
        (dataclasses.replace(DR, status=0x8000), "15 bits"),
        (dataclasses.replace(DR, status=-1), "15 bits"),
        (dataclasses.replace(LR, status=0x10000), "out of range"),
        (dataclasses.replace(DR, hop_pointer=256), "out of range"),
        (dataclasses.replace(DR, hop_count=-1), "out of range"),
        (dataclasses.replace(DR, dr_slid=0x10000), "out of range"),
        (dataclasses.replace(DR, tid=1 << 64), "out of range"),
        (dataclasses.replace(LR, attribute_modifier=1 << 32), "out of range"),
        (dataclasses.replace(LR, method=256), "out of range"),
        (dataclasses.replace(DR, data=bytes(63)), "data must be 64"),
        (dataclasses.replace(LR, data=bytes(65)), "data must be 64"),
        (dataclasses.replace(DR, initial_path=bytes(63)), "InitialPath"),
        (dataclasses.replace(DR, return_path=bytes(65)), "ReturnPath"),
        (dataclasses.replace(LR, direction=True), "reserved"),
        (dataclasses.replace(LR, hop_count=1), "reserved"),
        (dataclasses.replace(LR, hop_pointer=1), "reserved"),
        (dataclasses.replace(LR, dr_dlid=PERMISSIVE_LID), "reserved"),
        (dataclasses.replace(LR, initial_path=b"\x01" + bytes(63)), "reserved"),
        (dataclasses.replace(LR, return_path=b"\x01" + bytes(63)), "reserved"),
        (dataclasses.replace(LR, mgmt_class=0x03), "not an SMP class"),
    ],
)
def test_pack_errors(smp: Smp, match: str) -> None:
    with pytest.raises(WireError, match=match):
        smp.pack()


# --- builders ------------------------------------------------------------------------


def test_make_get_lid_routed() -> None:
    smp = make_get(SmpAttr.PORT_INFO, tid=7, attribute_modifier=2, m_key=9)
    assert smp == Smp(0x01, 0x01, 0x0015, 2, 7, m_key=9)
    assert smp.data == bytes(64)


def test_make_get_directed() -> None:
    smp = make_get(SmpAttr.NODE_INFO, tid=7, path=(1, 4, 17))
    assert smp.mgmt_class == 0x81
    assert smp.method == Method.GET
    assert (smp.hop_pointer, smp.hop_count) == (0, 3)
    assert (smp.dr_slid, smp.dr_dlid) == (0xFFFF, 0xFFFF)
    assert smp.initial_path == b"\x00\x01\x04\x11" + bytes(60)
    assert smp.return_path == bytes(64)
    assert smp.initial_ports == (1, 4, 17)
    local = make_get(SmpAttr.NODE_INFO, tid=7, path=())
    assert local.hop_count == 0
    assert local.initial_path == bytes(64)


def test_make_set_pads_attribute() -> None:
    info = SMInfo(guid=5, priority=1, sm_state=3)
    smp = make_set(info, tid=1, path=(2,), dr_slid=4, dr_dlid=PERMISSIVE_LID)
    assert smp.attribute_id == SmpAttr.SM_INFO
    assert smp.method == Method.SET
    assert smp.data == info.pack() + bytes(43)
    assert smp.dr_slid == 4
    assert smp.decode_data(SMInfo) == info
    with pytest.raises(WireError, match="not NodeInfo"):
        smp.decode_data(NodeInfo)


def test_builder_errors() -> None:
    with pytest.raises(WireError, match="at most 63"):
        make_get(SmpAttr.NODE_INFO, tid=1, path=(1,) * 64)
    make_get(SmpAttr.NODE_INFO, tid=1, path=(1,) * 63).pack()
    with pytest.raises(WireError, match="port out of range"):
        make_get(SmpAttr.NODE_INFO, tid=1, path=(1, 256))
    with pytest.raises(WireError, match="64 bytes"):
        make_request(Method.SET, 0x0011, tid=1, data=bytes(65))
    assert path_bytes((3, 2)) == b"\x00\x03\x02" + bytes(61)


def test_make_get_resp_directed() -> None:
    req = make_get(SmpAttr.NODE_INFO, tid=0x55, attribute_modifier=0, path=(1, 2), m_key=3)
    req = dataclasses.replace(req, hop_pointer=3, return_path=b"\x00\x07\x08" + bytes(61))
    info = NodeInfo(node_type=NodeType.CA, num_ports=1, node_guid=10, port_guid=11)
    resp = make_get_resp(req, info)
    assert resp.method == Method.GET_RESP
    assert resp.direction is True
    assert resp.status == 0
    assert (resp.tid, resp.attribute_id, resp.m_key) == (0x55, SmpAttr.NODE_INFO, 3)
    assert (resp.hop_pointer, resp.hop_count) == (3, 2)
    assert resp.initial_path == req.initial_path
    assert resp.return_path == req.return_path
    assert resp.decode_data(NodeInfo) == info
    raw = resp.pack()
    assert raw[3] == 0x81
    assert raw[4] & 0x80
    err = make_get_resp(req, status=0x1C)
    assert err.status == 0x1C
    assert err.data == req.data
    with pytest.raises(WireError, match="15 bits"):
        make_get_resp(req, status=0x8000)
    with pytest.raises(WireError, match="already a response"):
        make_get_resp(resp)


def test_make_get_resp_lid_routed() -> None:
    req = make_set(LinearForwardingTable((1,) * 64), tid=9, attribute_modifier=2)
    resp = make_get_resp(req, status=0x8000)
    assert resp == dataclasses.replace(req, method=Method.GET_RESP, status=0x8000)
    assert not resp.direction
    with pytest.raises(WireError, match="16 bits"):
        make_get_resp(req, status=0x10000)


# --- directed-route processing: a toy fabric -----------------------------------------


@dataclass
class Node:
    name: str
    is_switch: bool
    num_ports: int
    lid: int = 0


@dataclass
class Fabric:
    nodes: dict[str, Node] = field(default_factory=dict)
    links: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)

    def add(self, node: Node) -> None:
        self.nodes[node.name] = node

    def link(self, a: str, pa: int, b: str, pb: int) -> None:
        self.links[(a, pa)] = (b, pb)
        self.links[(b, pb)] = (a, pa)

    def lid_route(self, lid: int) -> str:
        # The toy fabric delivers LID-routed packets straight to the LID's owner.
        return next(n.name for n in self.nodes.values() if n.lid == lid)

    def walk(self, start: str, step: DrStep, dest: str | None = None) -> tuple[str, DrStep, int]:
        """Follow `step` until a DELIVER or DISCARD; (node, final step, hops)."""
        node, hops = start, 0
        while step.action in (DrAction.SEND, DrAction.LID_ROUTE):
            hops += 1
            assert hops < 200
            if step.action == DrAction.SEND:
                node, in_port = self.links[(node, step.port)]
            else:
                node = self.lid_route(step.lid) if step.lid is not None else (dest or "")
                in_port = 0
            n = self.nodes[node]
            # The SMP crosses the wire as bytes.
            smp = Smp.unpack(step.smp.pack())
            step = dr_receive(smp, in_port, is_switch=n.is_switch, num_ports=n.num_ports)
        return node, step, hops


def chain_fabric(n_switches: int) -> Fabric:
    """sm(CA) port 1 -- s0 ... s{n-1} -- host(CA) port 2; switches link via 3 -> 7."""
    fabric = Fabric()
    fabric.add(Node("sm", False, 1, lid=1))
    fabric.add(Node("host", False, 2, lid=99))
    for i in range(n_switches):
        fabric.add(Node(f"s{i}", True, 36, lid=10 + i))
    fabric.link("sm", 1, "s0", 5)
    for i in range(n_switches - 1):
        fabric.link(f"s{i}", 3, f"s{i + 1}", 7)
    fabric.link(f"s{n_switches - 1}", 3, "host", 2)
    return fabric


def chain_path(n_switches: int) -> tuple[int, ...]:
    return (1,) + (3,) * n_switches


def test_pure_dr_round_trip_through_switches() -> None:
    fabric = chain_fabric(3)
    req = make_get(SmpAttr.NODE_INFO, tid=0xAB, path=chain_path(3))
    node, step, hops = fabric.walk("sm", dr_originate(req, num_ports=1))
    assert (node, step.action, hops) == ("host", DrAction.DELIVER, 4)
    arrived = step.smp
    assert arrived.hop_pointer == arrived.hop_count + 1 == 5
    # Arrival ports: s0 port 5, s1 port 7, s2 port 7, host port 2.
    assert arrived.return_ports == (5, 7, 7, 2)
    info = NodeInfo(node_type=NodeType.CA, num_ports=2, node_guid=1, port_guid=3)
    resp = make_get_resp(arrived, info)
    node, step, hops = fabric.walk("host", dr_originate(resp, num_ports=2))
    assert (node, step.action, hops) == ("sm", DrAction.DELIVER, 4)
    # As ibsim shows it: D bit set, hop pointer back to 0.
    assert step.smp.direction is True
    assert step.smp.hop_pointer == 0
    assert step.smp.decode_data(NodeInfo) == info


def test_dr_to_a_switch_sma() -> None:
    fabric = chain_fabric(2)
    req = make_get(SmpAttr.SWITCH_INFO, tid=1, path=(1, 3))
    node, step, _ = fabric.walk("sm", dr_originate(req, num_ports=1))
    assert (node, step.action) == ("s1", DrAction.DELIVER)
    assert step.smp.return_ports == (5, 7)
    node, step, _ = fabric.walk("s1", dr_originate(make_get_resp(step.smp), num_ports=36))
    assert (node, step.action, step.smp.hop_pointer) == ("sm", DrAction.DELIVER, 0)


def test_dr_local_node() -> None:
    req = make_get(SmpAttr.NODE_INFO, tid=1, path=())
    step = dr_originate(req, num_ports=1)
    assert step.action == DrAction.DELIVER
    assert step.smp.hop_pointer == 1
    back = dr_originate(make_get_resp(step.smp), num_ports=1)
    assert back.action == DrAction.DELIVER
    assert back.smp.hop_pointer == 0


@FAST
@given(
    st.integers(1, 20),
    st.data(),
)
def test_dr_random_chain(n_switches: int, data: st.DataObject) -> None:
    # Random port numbers on a chain: the response retraces the request exactly.
    fabric = Fabric()
    fabric.add(Node("n0", False, 2))
    ports_out: list[int] = [data.draw(st.integers(1, 2), label="ca port")]
    prev, prev_port = "n0", ports_out[0]
    arrival: list[int] = []
    for i in range(1, n_switches + 1):
        name = f"n{i}"
        fabric.add(Node(name, True, 48))
        pin = data.draw(st.integers(1, 48), label="in")
        skip = data.draw(st.integers(1, 47), label="out")
        pout = skip if skip < pin else skip + 1
        fabric.link(prev, prev_port, name, pin)
        arrival.append(pin)
        ports_out.append(pout)
        prev, prev_port = name, pout
    fabric.add(Node("end", False, 1))
    fabric.link(prev, prev_port, "end", 1)
    arrival.append(1)
    req = make_get(SmpAttr.NODE_INFO, tid=5, path=tuple(ports_out))
    node, step, hops = fabric.walk("n0", dr_originate(req, num_ports=2))
    assert (node, step.action, hops) == ("end", DrAction.DELIVER, n_switches + 1)
    assert step.smp.return_ports == tuple(arrival)
    node, step, hops = fabric.walk("end", dr_originate(make_get_resp(step.smp), num_ports=1))
    assert (node, step.action, hops) == ("n0", DrAction.DELIVER, n_switches + 1)
    assert step.smp.hop_pointer == 0


def test_dr_lid_routed_last_segment() -> None:
    # SM -> s0 -> s1 directed, then by LID to the host (DrDLID 99), and back.
    fabric = chain_fabric(2)
    req = make_get(SmpAttr.NODE_INFO, tid=1, path=(1, 3), dr_dlid=99)
    step = dr_originate(req, num_ports=1)
    node, step, _ = fabric.walk("sm", step, dest=None)
    assert (node, step.action) == ("host", DrAction.DELIVER)
    assert step.smp.hop_pointer == 3
    resp = make_get_resp(step.smp)
    first = dr_originate(resp, num_ports=2)
    assert first.action == DrAction.LID_ROUTE
    assert first.lid is None  # back to the LRH source: s1
    node, step, _ = fabric.walk("host", first, dest="s1")
    assert (node, step.action, step.smp.hop_pointer) == ("sm", DrAction.DELIVER, 0)


def test_dr_lid_routed_first_segment() -> None:
    # SM (LID 1) -> by LID to s0 (LID 10), then directed s0 -> s1 -> host.
    fabric = chain_fabric(2)
    req = make_get(SmpAttr.NODE_INFO, tid=1, path=(3, 3), dr_slid=1)
    first = dr_originate(req, num_ports=1)
    assert first.action == DrAction.LID_ROUTE
    assert first.lid is None
    node, step, _ = fabric.walk("sm", first, dest="s0")
    assert (node, step.action) == ("host", DrAction.DELIVER)
    resp = make_get_resp(step.smp)
    node, step, _ = fabric.walk("host", dr_originate(resp, num_ports=2))
    assert (node, step.action, step.smp.hop_pointer) == ("sm", DrAction.DELIVER, 0)


def test_dr_all_lid_routed() -> None:
    # Hop count 0 with both LIDs given: LID routed there and back.
    fabric = chain_fabric(1)
    req = make_get(SmpAttr.NODE_INFO, tid=1, path=(), dr_slid=1, dr_dlid=99)
    step = dr_originate(req, num_ports=1)
    assert (step.action, step.lid) == (DrAction.LID_ROUTE, 99)
    node, step, _ = fabric.walk("sm", step)
    assert (node, step.action, step.smp.hop_pointer) == ("host", DrAction.DELIVER, 1)
    back = dr_originate(make_get_resp(step.smp), num_ports=2)
    assert (back.action, back.lid) == (DrAction.LID_ROUTE, 1)
    node, step, _ = fabric.walk("host", back)
    assert (node, step.action, step.smp.hop_pointer) == ("sm", DrAction.DELIVER, 0)


def test_dr_ca_does_not_forward() -> None:
    # A path that tries to go through a CA is discarded there.
    fabric = Fabric()
    fabric.add(Node("sm", False, 1))
    fabric.add(Node("ca", False, 2))
    fabric.add(Node("far", False, 1))
    fabric.link("sm", 1, "ca", 1)
    fabric.link("ca", 2, "far", 1)
    req = make_get(SmpAttr.NODE_INFO, tid=1, path=(1, 2))
    node, step, _ = fabric.walk("sm", dr_originate(req, num_ports=1))
    assert (node, step.action) == ("ca", DrAction.DISCARD)
    assert "switch" in step.reason


def test_dr_bad_egress_port() -> None:
    fabric = chain_fabric(1)
    req = make_get(SmpAttr.NODE_INFO, tid=1, path=(1, 40))
    node, step, _ = fabric.walk("sm", dr_originate(req, num_ports=1))
    assert (node, step.action) == ("s0", DrAction.DISCARD)
    assert "InitialPath[2] port 40" in step.reason
    assert dr_originate(make_get(0x11, tid=1, path=(2,)), num_ports=1).action == DrAction.DISCARD
    assert dr_originate(make_get(0x11, tid=1, path=(0,)), num_ports=1).action == DrAction.DISCARD


def _dr(hop_pointer: int, hop_count: int, direction: bool = False, **kw: Any) -> Smp:
    return dataclasses.replace(
        make_get(SmpAttr.NODE_INFO, tid=1, path=(1,) * min(hop_count, 63)),
        hop_pointer=hop_pointer,
        hop_count=hop_count,
        direction=direction,
        **kw,
    )


@pytest.mark.parametrize(
    ("smp", "is_switch"),
    [
        (_dr(0, 64), True),  # C14-6: hop count above 63
        (_dr(0, 3), True),  # pure DR cannot arrive with hop pointer 0
        (_dr(5, 3), True),  # beyond hop count + 1
        (_dr(5, 3, True), True),  # returning, beyond hop count + 1
        (_dr(3, 3, dr_dlid=99), False),  # a CA cannot route on by LID
        (_dr(1, 3, True, dr_slid=1), False),
        (_dr(0, 3, dr_slid=1), False),  # the directed part starts at a switch
        (_dr(4, 3, True, dr_dlid=99), False),
    ],
)
def test_dr_receive_discards(smp: Smp, is_switch: bool) -> None:
    step = dr_receive(smp, 1, is_switch=is_switch, num_ports=4)
    assert step.action == DrAction.DISCARD
    assert step.reason
    assert step.smp == smp


def test_dr_originate_discards() -> None:
    assert dr_originate(_dr(0, 64), num_ports=1).action == DrAction.DISCARD
    assert dr_originate(_dr(1, 3), num_ports=1).action == DrAction.DISCARD
    assert dr_originate(_dr(3, 3, True), num_ports=1).action == DrAction.DISCARD


def test_max_hop_count() -> None:
    assert MAX_HOP_COUNT == 63
    assert dr_receive(_dr(63, 63), 1, is_switch=True, num_ports=4).action == DrAction.DELIVER


def test_dr_processing_rejects_lid_routed() -> None:
    with pytest.raises(WireError, match="directed-route"):
        dr_originate(make_get(0x11, tid=1), num_ports=1)
    with pytest.raises(WireError, match="directed-route"):
        dr_receive(make_get(0x11, tid=1), 1, is_switch=True, num_ports=1)
    with pytest.raises(WireError, match="arrival port"):
        dr_receive(_dr(1, 3), 256, is_switch=True, num_ports=1)


@FAST
@given(dr_smps, bits(8), st.booleans(), st.integers(1, 64))
def test_dr_steps_never_crash(smp: Smp, in_port: int, is_switch: bool, num_ports: int) -> None:
    for step in (
        dr_receive(smp, in_port, is_switch=is_switch, num_ports=num_ports),
        dr_originate(smp, num_ports=num_ports),
    ):
        assert isinstance(step.action, DrAction)
        if step.action == DrAction.SEND:
            assert 1 <= step.port <= num_ports
        assert len(step.smp.pack()) == 256
        # Only the hop pointer and the return path change.
        assert (
            dataclasses.replace(step.smp, hop_pointer=smp.hop_pointer, return_path=smp.return_path)
            == smp
        )


@settings(max_examples=200, deadline=None)
@given(
    ports=st.binary(min_size=64, max_size=64),
    tid=st.integers(0, (1 << 64) - 1),
    block=st.integers(0, 0x2FF),
    m_key=st.integers(0, (1 << 64) - 1),
    path=st.lists(st.integers(0, 255), max_size=MAX_HOP_COUNT).map(tuple),
)
def test_pack_directed_request_is_make_set_packed(
    ports: bytes, tid: int, block: int, m_key: int, path: tuple[int, ...]
) -> None:
    # The SM's LFT fast path must put the very bytes of the record path on the wire.
    expected = make_set(
        LinearForwardingTable(tuple(ports)), tid=tid, attribute_modifier=block,
        path=path, m_key=m_key,
    ).pack()  # fmt: skip
    got = pack_directed_request(
        Method.SET, LinearForwardingTable.ATTRIBUTE_ID, ports, tid=tid,
        path_slot=path_bytes(path), hop_count=len(path), attribute_modifier=block, m_key=m_key,
    )  # fmt: skip
    assert got == expected
    assert Smp.unpack(got).decode_data(LinearForwardingTable).ports == tuple(ports)


# Directed-route requests of every shape, for the packers checked against each other.
_directed_requests = given(
    method=st.sampled_from([Method.GET, Method.SET]),
    attribute_id=st.integers(0, 0xFFFF),
    data=st.binary(max_size=64),
    tid=st.integers(0, (1 << 64) - 1),
    modifier=st.integers(0, (1 << 32) - 1),
    m_key=st.integers(0, (1 << 64) - 1),
    path=st.lists(st.integers(0, 255), max_size=MAX_HOP_COUNT).map(tuple),
)


@settings(max_examples=200, deadline=None)
@_directed_requests
def test_the_directed_request_packers_pack_what_make_request_packs(
    method: Method,
    attribute_id: int,
    data: bytes,
    tid: int,
    modifier: int,
    m_key: int,
    path: tuple[int, ...],
) -> None:
    # The SM's PortInfo Gets and Sets take the first fast path, its LFT block Sets
    # the second (a per-switch template). Short data (a Get's none) is zero padded
    # as `make_request` pads it.
    expected = make_request(
        method, attribute_id, tid=tid, attribute_modifier=modifier, data=data, path=path,
        m_key=m_key,
    ).pack()  # fmt: skip
    slot = path_bytes(path)
    got = pack_directed_request(
        method, attribute_id, data, tid=tid, path_slot=slot, hop_count=len(path),
        attribute_modifier=modifier, m_key=m_key,
    )  # fmt: skip
    assert got == expected
    template = DirectedRequests(
        method, attribute_id, path_slot=slot, hop_count=len(path), m_key=m_key
    )
    assert template.pack(tid, modifier, data) == expected


def test_directed_requests_refuse_what_does_not_fit() -> None:
    template = DirectedRequests(Method.SET, 0x19, path_slot=path_bytes((1, 2)), hop_count=2)
    with pytest.raises(WireError, match="64 bytes"):
        template.pack(1, 0, bytes(65))
    with pytest.raises(WireError, match="out of range"):
        template.pack(1 << 64, 0, bytes(64))
    with pytest.raises(WireError, match="out of range"):
        template.pack(1, 1 << 32, bytes(64))
    with pytest.raises(WireError, match="directed route"):
        DirectedRequests(Method.SET, 0x19, path_slot=path_bytes((1, 2)), hop_count=64)


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=64),
    path=st.lists(st.integers(0, 255), max_size=MAX_HOP_COUNT).map(tuple),
)
def test_peek_directed_reads_what_unpack_decodes(data: bytes, path: tuple[int, ...]) -> None:
    # The SM reads its directed-route answers this way instead of `Smp.unpack`.
    request = make_request(Method.GET, 0x15, tid=7, data=data, path=path)
    raw = make_get_resp(request, data).pack()
    decoded = Smp.unpack(raw)
    assert peek_directed(raw) == (decoded.data, decoded.initial_ports)
    assert peek_directed(make_get(0x15, tid=7).pack()) is None  # LID routed


def test_pack_directed_request_refuses_what_does_not_fit() -> None:
    slot = path_bytes((1, 2))
    with pytest.raises(WireError, match="64 bytes"):
        pack_directed_request(Method.SET, 0x19, bytes(65), tid=1, path_slot=slot, hop_count=2)
    with pytest.raises(WireError, match="directed route"):
        pack_directed_request(Method.SET, 0x19, bytes(64), tid=1, path_slot=slot, hop_count=64)
    with pytest.raises(WireError, match="out of range"):
        pack_directed_request(Method.SET, 0x19, bytes(64), tid=1 << 64, path_slot=slot, hop_count=2)
