"""The subnet management agent under a hand-driven clock (IBA Vol 1, 14.2).

SMPs are built with `ibmig.wire.smp`; directed-route ones go through the real hop
processing (`dr_originate` at the SM's node, `dr_receive` at the agent's) so that
the agent sees exactly what the transport would hand it, and its answers are sent
back with `dr_originate` to check they find the way home.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibmig.core.engine import PERMISSIVE_LID, Datagram
from ibmig.core.sma import (
    DEFAULT_GID_PREFIX,
    NO_ROUTE,
    PORT_TRANSITIONS,
    TRAP_INTERVAL_UNIT_NS,
    ClientReregisterRequested,
    ForwardingChanged,
    GuidInfoChanged,
    LftBlockWritten,
    LidAssigned,
    LinearFdbTopChanged,
    LinkDownRequested,
    LinkEnableRequested,
    MasterSmLidChanged,
    MKeyLeaseExpired,
    MKeyViolation,
    NodeSpec,
    PKeyTableChanged,
    PortSpec,
    PortStateChanged,
    PortStimulus,
    PortTransitionError,
    SmaEvent,
    SubnetManagementAgent,
    TrapAbandoned,
    TrapRepressed,
    TrapSent,
    next_port_state,
)
from ibmig.errors import ConfigError
from ibmig.wire.mad import MadStatus, Method, MgmtClass
from ibmig.wire.notice import (
    LinkStateChangeDetails,
    Notice,
    NoticeType,
    ProducerType,
    TrapNumber,
)
from ibmig.wire.smp import (
    DrAction,
    Smp,
    dr_originate,
    dr_receive,
    make_get,
    make_get_resp,
    make_request,
    make_set,
)
from ibmig.wire.smp_attrs import (
    GUIDInfo,
    LinearForwardingTable,
    LinkSpeed,
    LinkSpeedExt,
    LinkWidth,
    Mtu,
    MulticastForwardingTable,
    NodeDescription,
    NodeInfo,
    NodeType,
    PhysPortState,
    PKeyTable,
    PortInfo,
    PortState,
    SMInfo,
    SmpAttr,
    SmState,
    SwitchInfo,
)

FAST = settings(deadline=None, max_examples=100)

SW_GUID = 0x0002C90000200000
CA_GUID = 0x0002C90000100000
SM_LID = 1
SM_PORT_GUID = 0x0002C900000A0001
SW_PORTS = 8
OK = MadStatus.OK
INVALID = MadStatus.INVALID_FIELD


def switch(**kw: Any) -> SubnetManagementAgent:
    spec = NodeSpec(NodeType.SWITCH, SW_GUID, SW_PORTS, description="leaf 1", lft_cap=1024)
    return SubnetManagementAgent(spec, **kw)


def ca(num_ports: int = 2, **kw: Any) -> SubnetManagementAgent:
    spec = NodeSpec(
        NodeType.CA,
        CA_GUID,
        num_ports,
        port_guids=tuple(CA_GUID + 0x100 + p for p in range(1, num_ports + 1)),
        system_image_guid=CA_GUID,
        description="host1 HCA-1",
        device_id=0x1017,
        revision=0x10,
        guid_cap=20,
        partition_cap=40,
    )
    return SubnetManagementAgent(spec, **kw)


def drain(agent: SubnetManagementAgent) -> list[SmaEvent]:
    """The agent's events for observers (`ForwardingChanged`, the transport's, aside)."""
    events: list[SmaEvent] = []
    while (event := agent.next_event()) is not None:
        if not isinstance(event, ForwardingChanged):
            events.append(event)
    return events


# --- delivery helpers ----------------------------------------------------------------


def dr_deliver(smp: Smp, in_port: int, agent: SubnetManagementAgent) -> Smp:
    """Run the transport's hop processing for a pure DR request whose last hop
    arrives at `agent` on `in_port` (path of one hop) or that is local (no hops)."""
    step = dr_originate(smp, num_ports=4)
    if smp.hop_count:
        assert step.action == DrAction.SEND
        step = dr_receive(
            step.smp, in_port, is_switch=agent.is_switch, num_ports=agent.spec.num_ports
        )
    assert step.action == DrAction.DELIVER
    return step.smp


def ask(
    agent: SubnetManagementAgent,
    smp: Smp,
    *,
    port: int = 1,
    slid: int = SM_LID,
    now_ns: int = 0,
) -> tuple[Smp, Datagram]:
    """Deliver `smp` to `agent` on `port` and return its single answer."""
    out = send(agent, smp, port=port, slid=slid, now_ns=now_ns)
    assert len(out) == 1, out
    response = Smp.unpack(out[0].payload)
    return response, out[0]


def send(
    agent: SubnetManagementAgent,
    smp: Smp,
    *,
    port: int = 1,
    slid: int = SM_LID,
    now_ns: int = 0,
) -> list[Datagram]:
    if smp.directed:
        delivered = dr_deliver(smp, port, agent)
        datagram = Datagram(delivered.pack(), port, PERMISSIVE_LID, PERMISSIVE_LID, 0, 0)
    else:
        delivered = smp
        datagram = Datagram(smp.pack(), port, slid, agent.port_lid(port), 0, 0, sl=3)
    agent.receive(datagram, now_ns)
    out = agent.packets_to_send()
    for answer in out:
        if answer.dqp == 0 and Smp.unpack(answer.payload).method == Method.GET_RESP:
            check_response(delivered, answer, agent)
    return out


def check_response(request: Smp, answer: Datagram, agent: SubnetManagementAgent) -> None:
    """The answer is the codec's own GetResp for the request, addressed as specified."""
    response = Smp.unpack(answer.payload)
    expected = make_get_resp(request, response.data, status=response.status)
    assert answer.payload == expected.pack()
    assert answer.port == (request.return_path[request.hop_count] or answer.port)
    assert (answer.sqp, answer.dqp) == (0, 0)
    # Built from its fields past the constructor: every later one at its default.
    fields = (answer.payload, answer.port, answer.slid, answer.dlid, 0, 0, answer.sl, answer.pkey)
    assert answer == Datagram(*fields) and len(answer) == len(Datagram._fields)
    if request.directed:
        assert (answer.slid, answer.dlid) == (PERMISSIVE_LID, PERMISSIVE_LID)
        back = dr_originate(response, num_ports=agent.spec.num_ports)
        if request.hop_count:
            assert back.action == DrAction.SEND
            assert back.port == answer.port
        else:
            assert back.action == DrAction.DELIVER
    else:
        assert answer.dlid == SM_LID
        assert answer.slid == agent.port_lid(answer.port)
        assert answer.sl == 3


ROUTES = pytest.mark.parametrize("path", [None, (2,), ()], ids=["lid", "dr", "dr-local"])


def get(attr: int, path: tuple[int, ...] | None, **kw: Any) -> Smp:
    return make_get(attr, tid=kw.pop("tid", 0x1234), path=path, **kw)


def put(attribute: Any, path: tuple[int, ...] | None, **kw: Any) -> Smp:
    return make_set(attribute, tid=kw.pop("tid", 0x5678), path=path, **kw)


def port_info_update(agent: SubnetManagementAgent, port: int, **changes: Any) -> PortInfo:
    """What an SM sends: the current PortInfo with some fields changed and the
    "no change" codes in the state and enable fields."""
    base: dict[str, Any] = {
        "port_state": PortState.NO_CHANGE,
        "port_physical_state": PhysPortState.NO_CHANGE,
        "link_down_default_state": PhysPortState.NO_CHANGE,
        "link_width_enabled": 0,
        "link_speed_enabled": 0,
        "link_speed_ext_enabled": 0,
    }
    base.update(changes)
    return dataclasses.replace(agent.port_info(port), **base)


def set_port_info(
    agent: SubnetManagementAgent,
    port: int,
    *,
    arrival: int | None = None,
    key: int = 0,
    **changes: Any,
) -> Smp:
    """PortInfo Set of `port` by DR through `arrival`, with `key` as the SMP's M_Key."""
    info = port_info_update(agent, port, **changes)
    modifier = port if agent.is_switch else 0
    response, _ = ask(
        agent,
        put(info, (arrival or port,), attribute_modifier=modifier, m_key=key),
        port=arrival or port,
    )
    return response


def configure_switch(agent: SubnetManagementAgent, *, lid: int = 7, timeout: int = 10) -> None:
    response = set_port_info(
        agent, 0, arrival=1, lid=lid, master_sm_lid=SM_LID, subnet_timeout=timeout
    )
    assert response.status == OK
    drain(agent)


# --- NodeInfo, NodeDescription ------------------------------------------------------


@ROUTES
def test_node_info_switch(path: tuple[int, ...] | None) -> None:
    sw = switch()
    response, answer = ask(sw, get(SmpAttr.NODE_INFO, path), port=5)
    assert response.status == OK and response.method == Method.GET_RESP
    info = response.decode_data(NodeInfo)
    assert info == NodeInfo(
        node_type=NodeType.SWITCH,
        num_ports=SW_PORTS,
        node_guid=SW_GUID,
        port_guid=SW_GUID,
        partition_cap=128,
        local_port_num=5,
        vendor_id=0x0002C9,
    )
    assert answer.port == 5


def test_node_info_switch_every_port_is_the_record_packed() -> None:
    # A switch's per-port NodeInfo bytes are one record patched at LocalPortNum:
    # each (port 0 too) must be exactly what packing that port's record gives.
    sw = switch()
    for port in range(SW_PORTS + 1):
        expected = NodeInfo(
            node_type=NodeType.SWITCH, num_ports=SW_PORTS, node_guid=SW_GUID,
            port_guid=SW_GUID, partition_cap=128, local_port_num=port, vendor_id=0x0002C9,
        ).pack()  # fmt: skip
        assert sw._node_info_bytes[port] == expected.ljust(64, b"\x00")
    response, _ = ask(sw, get(SmpAttr.NODE_INFO, (1,)), port=SW_PORTS)
    assert response.decode_data(NodeInfo).local_port_num == SW_PORTS


@ROUTES
def test_node_info_ca_port_guid_is_arrival_port(path: tuple[int, ...] | None) -> None:
    agent = ca()
    for port in (1, 2):
        response, _ = ask(agent, get(SmpAttr.NODE_INFO, path), port=port)
        info = response.decode_data(NodeInfo)
        assert info.node_type == NodeType.CA
        assert info.port_guid == CA_GUID + 0x100 + port
        assert info.local_port_num == port
        assert (info.system_image_guid, info.device_id, info.revision) == (CA_GUID, 0x1017, 0x10)


def test_node_info_vector_by_hand() -> None:
    """A LID-routed NodeInfo GetResp checked byte by byte against IBA 14.2.1.1 and
    14.2.5.3, without the codecs."""
    agent = ca()
    request = bytearray(256)
    request[0:4] = bytes((1, 0x01, 1, 0x01))  # BaseVersion, class, ClassVersion, Get
    request[8:16] = (0x0102030405060708).to_bytes(8, "big")
    request[16:18] = (0x0011).to_bytes(2, "big")
    request[40] = 0xEE  # reserved byte: the response must carry zero there
    agent.receive(Datagram(bytes(request), 2, 9, 0, 0, 0), 0)
    (answer,) = agent.packets_to_send()
    raw = answer.payload
    assert raw[0:4] == bytes((1, 0x01, 1, 0x81))
    assert raw[4:6] == b"\x00\x00"
    assert raw[8:16] == bytes(range(1, 9))
    assert raw[16:18] == b"\x00\x11"
    assert raw[32:64] == bytes(32)
    data = raw[64:128]
    assert data[0:4] == bytes((1, 1, 1, 2))  # versions, NodeType CA, NumPorts 2
    assert int.from_bytes(data[4:12], "big") == CA_GUID  # SystemImageGUID
    assert int.from_bytes(data[12:20], "big") == CA_GUID  # NodeGUID
    assert int.from_bytes(data[20:28], "big") == CA_GUID + 0x102  # PortGUID of port 2
    assert int.from_bytes(data[28:30], "big") == 40  # PartitionCap
    assert int.from_bytes(data[30:32], "big") == 0x1017
    assert int.from_bytes(data[32:36], "big") == 0x10
    assert data[36] == 2  # LocalPortNum
    assert data[37:40] == b"\x00\x02\xc9"
    assert raw[128:] == bytes(128)
    assert (answer.port, answer.slid, answer.dlid) == (2, 0, 9)


@ROUTES
def test_node_description(path: tuple[int, ...] | None) -> None:
    agent = ca()
    response, _ = ask(agent, get(SmpAttr.NODE_DESCRIPTION, path))
    assert response.decode_data(NodeDescription).description == "host1 HCA-1"
    response, _ = ask(agent, put(NodeDescription("x"), path))
    assert response.status == MadStatus.METHOD_ATTR_NOT_SUPPORTED
    assert response.decode_data(NodeDescription).description == "x"  # request data echoed


def test_node_info_set_is_not_supported() -> None:
    response, _ = ask(switch(), put(NodeInfo(NodeType.SWITCH, 1, 1, 1), (1,)))
    assert response.status == MadStatus.METHOD_ATTR_NOT_SUPPORTED


# --- PortInfo ------------------------------------------------------------------------


@ROUTES
def test_port_info_switch_modifier_selects_port(path: tuple[int, ...] | None) -> None:
    sw = switch()
    sw.set_link(4, True, 0)
    response, _ = ask(sw, get(SmpAttr.PORT_INFO, path, attribute_modifier=4), port=2)
    info = response.decode_data(PortInfo)
    assert info.local_port_num == 2  # the port the SMP came in on
    assert info.port_state == PortState.INIT
    assert info.port_physical_state == PhysPortState.LINK_UP
    assert info.link_width_active == LinkWidth.WIDTH_4X
    assert info.link_speed_ext_active == LinkSpeedExt.GBPS_25
    response, _ = ask(sw, get(SmpAttr.PORT_INFO, path, attribute_modifier=0), port=2)
    port0 = response.decode_data(PortInfo)
    assert port0.port_state == PortState.ACTIVE  # base port 0
    assert port0.guid_cap == 1
    response, _ = ask(sw, get(SmpAttr.PORT_INFO, path, attribute_modifier=(1 << 31) | 4))
    assert response.status == OK  # bit 31 ignored


def test_initial_port_info_is_per_spec_and_per_agent() -> None:
    # Starting PortInfo bytes are built once per distinct starting state and shared
    # between agents: a write to one agent's port must not show at another's, and a
    # spec that differs in a field the port starts with gets its own bytes.
    first, second = switch(), switch()
    first.set_link(3, True, 0)
    assert first.port_info(3).port_state == PortState.INIT
    assert second.port_info(3).port_state == PortState.DOWN
    assert second.port_info(3) == switch().port_info(3)
    spec = NodeSpec(
        NodeType.SWITCH, SW_GUID, SW_PORTS, lft_cap=1024, subnet_timeout=7,
        ports=(PortSpec(mtu_cap=Mtu.MTU_256),) * SW_PORTS,
    )  # fmt: skip
    other = SubnetManagementAgent(spec)
    assert other.port_info(3).subnet_timeout == 7
    assert other.port_info(3).mtu_cap == Mtu.MTU_256
    assert second.port_info(3).mtu_cap == Mtu.MTU_4096
    assert (first.port_info(0).guid_cap, first.port_info(1).guid_cap) == (1, 0)
    assert ca().port_info(1).guid_cap == 20


@ROUTES
def test_port_info_bad_port_modifier(path: tuple[int, ...] | None) -> None:
    sw = switch()
    response, _ = ask(sw, get(SmpAttr.PORT_INFO, path, attribute_modifier=SW_PORTS + 1))
    assert response.status == INVALID
    assert sw.counters.invalid_field == 1


@ROUTES
def test_port_info_ca_ignores_modifier(path: tuple[int, ...] | None) -> None:
    agent = ca()
    agent.set_link(2, True, 0)
    response, _ = ask(agent, get(SmpAttr.PORT_INFO, path, attribute_modifier=1), port=2)
    info = response.decode_data(PortInfo)
    assert info.local_port_num == 2
    assert info.port_state == PortState.INIT
    assert info.guid_cap == 20
    assert info.gid_prefix == DEFAULT_GID_PREFIX
    assert info.mtu_cap == Mtu.MTU_4096
    response, _ = ask(agent, get(SmpAttr.PORT_INFO, path, attribute_modifier=200), port=1)
    assert response.status == OK
    assert response.decode_data(PortInfo).port_state == PortState.DOWN


@ROUTES
def test_port_info_set_lid_ca(path: tuple[int, ...] | None) -> None:
    agent = ca()
    info = port_info_update(
        agent, 1, lid=0x20, lmc=1, master_sm_lid=SM_LID, master_sm_sl=2, subnet_timeout=18
    )
    response, _ = ask(agent, put(info, path, attribute_modifier=2), port=1)
    assert response.status == OK
    got = response.decode_data(PortInfo)
    assert (got.lid, got.lmc, got.master_sm_lid, got.master_sm_sl) == (0x20, 1, SM_LID, 2)
    assert got.subnet_timeout == 18
    assert agent.port_lid(1) == 0x20 and agent.port_lid(2) == 0
    assert agent.lid == 0x20
    assert drain(agent) == [LidAssigned(1, 0x20, 1), MasterSmLidChanged(1, SM_LID)]
    # A LID-routed Get now comes back from the new LID.
    _, answer = ask(agent, get(SmpAttr.PORT_INFO, None), port=1)
    assert answer.slid == 0x20


def test_switch_ports_share_port0_lid() -> None:
    sw = switch()
    configure_switch(sw, lid=0x33)
    assert [sw.port_lid(p) for p in range(SW_PORTS + 1)] == [0x33] * (SW_PORTS + 1)
    _, answer = ask(sw, get(SmpAttr.NODE_INFO, None), port=6)
    assert (answer.port, answer.slid, answer.dlid) == (6, 0x33, SM_LID)
    # Addressing fields written on an external port are not the switch's.
    response = set_port_info(sw, 3, lid=0x99)
    assert response.status == OK
    assert sw.port_lid(3) == 0x33
    assert sw.port_info(3).lid == 0


def test_port_info_set_keeps_read_only_fields() -> None:
    agent = ca()
    before = agent.port_info(1)
    garbage = port_info_update(
        agent,
        1,
        lid=5,
        capability_mask=0xFFFFFFFF,
        diag_code=0x1234,
        local_port_num=77,
        link_width_supported=0xFF,
        link_width_active=0x08,
        link_speed_supported=0xF,
        link_speed_active=0x1,
        vl_cap=1,
        init_type=5,
        vl_arbitration_high_cap=99,
        vl_arbitration_low_cap=98,
        mtu_cap=Mtu.MTU_256,
        guid_cap=200,
        resp_time_value=3,
        max_credit_hint=77,
        link_round_trip_latency=12345,
        capability_mask2=0xABCD,
        link_speed_ext_active=0xF,
        link_speed_ext_supported=0xF,
        client_reregister=True,
    )
    response, _ = ask(agent, put(garbage, (1,)))
    assert response.status == OK
    after = agent.port_info(1)
    assert after == dataclasses.replace(before, lid=5)
    assert ClientReregisterRequested(1) in drain(agent)
    assert not response.decode_data(PortInfo).client_reregister


def test_port_info_set_writable_fields() -> None:
    agent = ca()
    update = port_info_update(
        agent,
        1,
        m_key=0x1122334455667788,
        gid_prefix=0xFEC0000000000001,
        lid=0x40,
        master_sm_lid=3,
        m_key_lease_period=60,
        m_key_protect_bits=1,
        lmc=2,
        master_sm_sl=5,
        neighbor_mtu=Mtu.MTU_2048,
        vl_high_limit=9,
        init_type_reply=3,
        vl_stall_count=4,
        hoq_life=0x13,
        operational_vls=2,
        partition_enforcement_inbound=True,
        filter_raw_outbound=True,
        multicast_pkey_trap_suppression_enabled=2,
        subnet_timeout=17,
        local_phy_errors=8,
        overrun_errors=9,
        link_down_default_state=PhysPortState.SLEEP,
        link_width_enabled=LinkWidth.WIDTH_1X,
        link_speed_enabled=LinkSpeed.GBPS_2_5,
        link_speed_ext_enabled=LinkSpeedExt.GBPS_14,
    )
    response, _ = ask(agent, put(update, (1,)))
    assert response.status == OK
    expected = dataclasses.replace(
        update,
        port_state=PortState.DOWN,
        port_physical_state=PhysPortState.POLLING,
    )
    assert agent.port_info(1) == expected
    assert response.decode_data(PortInfo) == dataclasses.replace(expected, local_port_num=1)


def test_port_info_set_enable_codes() -> None:
    agent = ca()
    ask(agent, put(port_info_update(agent, 1, link_width_enabled=1, link_speed_enabled=1), (1,)))
    narrowed = agent.port_info(1)
    assert (narrowed.link_width_enabled, narrowed.link_speed_enabled) == (1, 1)
    # 0 = no change
    ask(agent, put(port_info_update(agent, 1), (1,)))
    assert agent.port_info(1) == narrowed
    # all ones = everything supported
    update = port_info_update(
        agent, 1, link_width_enabled=0xFF, link_speed_enabled=0xF, link_speed_ext_enabled=0x1F
    )
    ask(agent, put(update, (1,)))
    info = agent.port_info(1)
    assert info.link_width_enabled == info.link_width_supported
    assert info.link_speed_enabled == info.link_speed_supported
    assert info.link_speed_ext_enabled == info.link_speed_ext_supported
    # 0x1E switches extended speeds off; the link then trains without them.
    ask(agent, put(port_info_update(agent, 1, link_speed_ext_enabled=0x1E), (1,)))
    agent.set_link(1, True, 0)
    assert agent.port_info(1).link_speed_ext_active == 0
    assert agent.port_info(1).link_speed_active == LinkSpeed.GBPS_10


@pytest.mark.parametrize(
    "changes",
    [
        {"lid": 0xC000},
        {"master_sm_lid": 0xFFFF},
        {"neighbor_mtu": 0},
        {"neighbor_mtu": 6},
        {"operational_vls": 5},
        {"link_width_enabled": LinkWidth.WIDTH_12X},
        {"link_speed_enabled": 0x8},
        {"link_speed_ext_enabled": LinkSpeedExt.GBPS_50},
        {"port_physical_state": PhysPortState.LINK_UP},
        {"port_state": PortState.ARMED, "port_physical_state": PhysPortState.DISABLED},
        {"link_down_default_state": PhysPortState.DISABLED},
        {"port_state": PortState.INIT},
        {"port_state": 5},
        {"port_state": PortState.ACTIVE},
    ],
)
def test_port_info_set_invalid_changes_nothing(changes: dict[str, Any]) -> None:
    agent = ca()
    agent.set_link(1, True, 0)
    drain(agent)
    before = agent.port_info(1)
    update = port_info_update(agent, 1, m_key=0x77, **{"lid": 9, **changes})
    response, _ = ask(agent, put(update, (1,)))
    assert response.status == INVALID
    assert agent.port_info(1) == before
    assert response.decode_data(PortInfo) == dataclasses.replace(before, local_port_num=1)
    assert drain(agent) == []


def test_violation_counters_reset_by_zero() -> None:
    agent = ca()
    set_port_info(agent, 1, m_key=0x42)
    for _ in range(3):
        send(agent, put(PortInfo(), None, m_key=0x41))
    assert agent.port_info(1).m_key_violations == 3
    response = set_port_info(agent, 1, key=0x42, m_key_violations=3)
    assert response.decode_data(PortInfo).m_key_violations == 3
    response = set_port_info(agent, 1, key=0x42, m_key_violations=0)
    assert response.decode_data(PortInfo).m_key_violations == 0


# --- port state machine --------------------------------------------------------------

_ALL_STATES = (PortState.DOWN, PortState.INIT, PortState.ARMED, PortState.ACTIVE)


def test_transition_table() -> None:
    legal = {
        (PortState.DOWN, PortStimulus.SET_DOWN): PortState.DOWN,
        (PortState.INIT, PortStimulus.SET_DOWN): PortState.DOWN,
        (PortState.ARMED, PortStimulus.SET_DOWN): PortState.DOWN,
        (PortState.ACTIVE, PortStimulus.SET_DOWN): PortState.DOWN,
        (PortState.INIT, PortStimulus.SET_ARMED): PortState.ARMED,
        (PortState.ARMED, PortStimulus.SET_ACTIVE): PortState.ACTIVE,
        (PortState.DOWN, PortStimulus.LINK_UP): PortState.INIT,
    }
    for state in _ALL_STATES:
        for stimulus in PortStimulus:
            key = (state, stimulus)
            if stimulus == PortStimulus.LINK_DOWN:
                assert next_port_state(state, stimulus) == PortState.DOWN
            elif stimulus == PortStimulus.LINK_UP and state != PortState.DOWN:
                assert next_port_state(state, stimulus) == state
            elif key in legal:
                assert next_port_state(state, stimulus) == legal[key]
            else:
                assert key not in PORT_TRANSITIONS
                with pytest.raises(PortTransitionError):
                    next_port_state(state, stimulus)


def _bring_to(agent: SubnetManagementAgent, port: int, state: PortState) -> None:
    if state == PortState.DOWN:
        return
    agent.set_link(port, True, 0)
    if state in (PortState.ARMED, PortState.ACTIVE):
        assert set_port_info(agent, port, port_state=PortState.ARMED).status == OK
    if state == PortState.ACTIVE:
        assert set_port_info(agent, port, port_state=PortState.ACTIVE).status == OK
    assert agent.port_state(port) == state
    drain(agent)


@pytest.mark.parametrize("state", _ALL_STATES)
@pytest.mark.parametrize("target", [1, 2, 3, 4, 5, 15])
@pytest.mark.parametrize("kind", ["ca", "switch"])
def test_port_state_set(state: PortState, target: int, kind: str) -> None:
    agent = ca() if kind == "ca" else switch()
    _bring_to(agent, 2, state)
    response = set_port_info(agent, 2, port_state=target)
    legal = (state, target) in PORT_TRANSITIONS
    assert response.status == (OK if legal else INVALID)
    new = PORT_TRANSITIONS[(state, target)] if legal else state
    assert agent.port_state(2) == new
    assert response.decode_data(PortInfo).port_state == new
    events = drain(agent)
    if new != state:
        assert PortStateChanged(2, state, new) in events
    else:
        assert not any(isinstance(e, PortStateChanged) for e in events)


def test_bring_up_sequence_events() -> None:
    agent = ca()
    agent.set_link(1, True, 100)
    set_port_info(agent, 1, port_state=PortState.ARMED)
    set_port_info(agent, 1, port_state=PortState.ACTIVE)
    states = [e for e in drain(agent) if isinstance(e, PortStateChanged)]
    assert states == [
        PortStateChanged(1, PortState.DOWN, PortState.INIT),
        PortStateChanged(1, PortState.INIT, PortState.ARMED),
        PortStateChanged(1, PortState.ARMED, PortState.ACTIVE),
    ]
    agent.set_link(1, True, 200)  # already up: nothing
    assert drain(agent) == []
    agent.set_link(1, False, 300)
    assert drain(agent) == [PortStateChanged(1, PortState.ACTIVE, PortState.DOWN)]
    info = agent.port_info(1)
    assert (info.port_state, info.port_physical_state) == (PortState.DOWN, PhysPortState.POLLING)


def test_sm_down_retrains_and_disable() -> None:
    agent = ca()
    _bring_to(agent, 1, PortState.ACTIVE)
    response = set_port_info(agent, 1, port_state=PortState.DOWN)
    assert response.status == OK
    info = agent.port_info(1)
    assert (info.port_state, info.port_physical_state) == (PortState.DOWN, PhysPortState.POLLING)
    assert LinkDownRequested(1, False) in drain(agent)
    agent.set_link(1, False, 0)  # the runtime takes the wire down: no news
    assert drain(agent) == []
    agent.set_link(1, True, 0)  # retrained
    assert agent.port_state(1) == PortState.INIT
    drain(agent)

    response = set_port_info(agent, 1, port_physical_state=PhysPortState.DISABLED)
    assert response.status == OK
    info = agent.port_info(1)
    assert (info.port_state, info.port_physical_state) == (PortState.DOWN, PhysPortState.DISABLED)
    assert LinkDownRequested(1, True) in drain(agent)
    assert not agent.link_enabled(1)
    agent.set_link(1, True, 0)  # a disabled port does not train
    assert agent.port_state(1) == PortState.DOWN
    agent.set_link(1, False, 0)
    assert agent.port_info(1).port_physical_state == PhysPortState.DISABLED

    response = set_port_info(agent, 1, port_physical_state=PhysPortState.POLLING)
    assert response.status == OK
    assert agent.port_info(1).port_physical_state == PhysPortState.POLLING
    assert drain(agent) == [LinkEnableRequested(1)]
    assert agent.link_enabled(1)
    agent.set_link(1, True, 0)
    assert agent.port_state(1) == PortState.INIT


def test_set_link_width_and_speed_given() -> None:
    agent = ca()
    agent.set_link(
        1,
        True,
        0,
        link_width_active=LinkWidth.WIDTH_1X,
        link_speed_active=LinkSpeed.GBPS_2_5,
        link_speed_ext_active=0,
    )
    info = agent.port_info(1)
    assert (info.link_width_active, info.link_speed_active, info.link_speed_ext_active) == (
        1,
        1,
        0,
    )
    with pytest.raises(ValueError, match="external port"):
        agent.set_link(0, True, 0)
    with pytest.raises(ValueError, match="out of range"):
        agent.set_link(2, True, 0, link_speed_active=0x10)


def test_switch_base_port0_ignores_state_fields() -> None:
    sw = switch()
    response = set_port_info(sw, 0, arrival=3, port_state=PortState.DOWN, neighbor_mtu=0, lid=4)
    assert response.status == OK
    info = sw.port_info(0)
    assert (info.port_state, info.lid) == (PortState.ACTIVE, 4)


# --- SwitchInfo -----------------------------------------------------------------------


@ROUTES
def test_switch_info_get_and_set(path: tuple[int, ...] | None) -> None:
    sw = switch()
    response, _ = ask(sw, get(SmpAttr.SWITCH_INFO, path))
    info = response.decode_data(SwitchInfo)
    assert info.linear_fdb_cap == 1024
    assert info.partition_enforcement_cap == 32
    assert (info.linear_fdb_top, info.port_state_change) == (0, False)
    # What OpenSM and our SM send: a fresh record with LinearFDBTop.
    response, _ = ask(sw, put(SwitchInfo(linear_fdb_top=300, life_time_value=0x12), path))
    assert response.status == OK
    info = response.decode_data(SwitchInfo)
    assert (info.linear_fdb_top, info.life_time_value, info.linear_fdb_cap) == (300, 0x12, 1024)
    assert drain(sw) == [LinearFdbTopChanged(300)]
    response, _ = ask(sw, put(SwitchInfo(linear_fdb_top=1024), path))
    assert response.status == INVALID
    assert sw.switch_info() == info


def test_port_state_change_bit() -> None:
    sw = switch()
    sw.set_link(3, True, 0)
    assert sw.switch_info().port_state_change  # type: ignore[union-attr]
    # Writing 0 leaves it; writing 1 clears it (IBA 14.2.5.4).
    response, _ = ask(sw, put(SwitchInfo(linear_fdb_top=5, port_state_change=False), (1,)))
    assert response.decode_data(SwitchInfo).port_state_change
    response, _ = ask(sw, put(SwitchInfo(linear_fdb_top=5, port_state_change=True), (1,)))
    assert not response.decode_data(SwitchInfo).port_state_change
    # A SubnSet changing the port state does not set it...
    set_port_info(sw, 3, port_state=PortState.ARMED)
    set_port_info(sw, 3, port_state=PortState.DOWN)
    assert not sw.switch_info().port_state_change  # type: ignore[union-attr]
    # ...a link event does.
    sw.set_link(3, True, 0)
    assert sw.switch_info().port_state_change  # type: ignore[union-attr]


@pytest.mark.parametrize("attr", [SmpAttr.SWITCH_INFO, SmpAttr.LINEAR_FORWARDING_TABLE])
def test_switch_attributes_not_on_ca(attr: int) -> None:
    response, _ = ask(ca(), get(attr, (1,)))
    assert response.status == MadStatus.METHOD_ATTR_NOT_SUPPORTED


# --- LinearForwardingTable -----------------------------------------------------------


@ROUTES
def test_lft_blocks(path: tuple[int, ...] | None) -> None:
    sw = switch()
    assert len(sw.lft) == 1024 and set(sw.lft) == {NO_ROUTE}
    ports = tuple((i % SW_PORTS) + 1 for i in range(64))
    response, _ = ask(sw, put(LinearForwardingTable(ports), path, attribute_modifier=3))
    assert response.status == OK
    assert response.decode_data(LinearForwardingTable).ports == ports
    assert bytes(sw.lft[192:256]) == bytes(ports)
    assert set(sw.lft[:192]) == {NO_ROUTE} and set(sw.lft[256:]) == {NO_ROUTE}
    assert drain(sw) == [LftBlockWritten(3)]
    response, _ = ask(sw, get(SmpAttr.LINEAR_FORWARDING_TABLE, path, attribute_modifier=3))
    assert response.decode_data(LinearForwardingTable).ports == ports
    response, _ = ask(sw, get(SmpAttr.LINEAR_FORWARDING_TABLE, path, attribute_modifier=15))
    assert response.decode_data(LinearForwardingTable).ports == (NO_ROUTE,) * 64
    for block in (16, 0xFFFFFFFF):
        response, _ = ask(sw, get(SmpAttr.LINEAR_FORWARDING_TABLE, path, attribute_modifier=block))
        assert response.status == INVALID


@ROUTES
def test_mft_blocks_by_position(path: tuple[int, ...] | None) -> None:
    """IBA 14.2.5.11: position p of a block holds bits for ports 16p .. 16p + 15."""
    sw = switch()
    assert len(sw.mft) == 1024 and set(sw.mft) == {0}
    response, _ = ask(sw, get(SmpAttr.SWITCH_INFO, path))
    assert response.decode_data(SwitchInfo).multicast_fdb_cap == 1024
    masks = (0x8005,) + (0,) * 30 + (0x0002,)
    response, _ = ask(sw, put(MulticastForwardingTable(masks), path, attribute_modifier=1))
    assert response.status == OK
    assert response.decode_data(MulticastForwardingTable).port_masks == masks
    assert sw.multicast_ports(0xC020) == 0x8005 and sw.multicast_ports(0xC03F) == 0x0002
    assert sw.multicast_ports(0xC000) == 0 and sw.multicast_ports(0xC000 + 1024) == 0
    response, _ = ask(sw, get(SmpAttr.MULTICAST_FORWARDING_TABLE, path, attribute_modifier=1))
    assert response.decode_data(MulticastForwardingTable).port_masks[31] == 0x0002
    too_far = (SW_PORTS // 16 + 1) << 28
    for modifier in (32, too_far, 0x0000_0200):
        response, _ = ask(
            sw, get(SmpAttr.MULTICAST_FORWARDING_TABLE, path, attribute_modifier=modifier)
        )
        assert response.status == INVALID
    response, _ = ask(ca(), get(SmpAttr.MULTICAST_FORWARDING_TABLE, path))
    assert response.status == MadStatus.METHOD_ATTR_NOT_SUPPORTED


def test_mft_positions_of_a_wide_switch() -> None:
    sw = SubnetManagementAgent(NodeSpec(NodeType.SWITCH, SW_GUID, 20, lft_cap=1024))
    ask(sw, put(MulticastForwardingTable((0x8005,) * 32), (1,), attribute_modifier=0))
    response, _ = ask(
        sw, put(MulticastForwardingTable((0x0011,) * 32), (1,), attribute_modifier=1 << 28)
    )
    assert response.status == OK
    assert sw.multicast_ports(0xC000) == 0x0011_8005  # ports 0, 2, 15, 16 and 20
    response, _ = ask(sw, get(SmpAttr.MULTICAST_FORWARDING_TABLE, (1,), attribute_modifier=0))
    assert response.decode_data(MulticastForwardingTable).port_masks == (0x8005,) * 32
    response, _ = ask(sw, get(SmpAttr.MULTICAST_FORWARDING_TABLE, (1,), attribute_modifier=2 << 28))
    assert response.status == INVALID  # ports 32..47: the switch has 20


def test_egress_port_honours_linear_fdb_top() -> None:
    sw = switch()
    ask(sw, put(LinearForwardingTable(tuple(range(64))), (1,), attribute_modifier=1))
    assert sw.lft[70] == 6
    assert sw.egress_port(70) == NO_ROUTE  # LinearFDBTop is 0
    ask(sw, put(SwitchInfo(linear_fdb_top=100), (1,)))
    assert sw.egress_port(70) == 6
    assert sw.egress_port(101) == NO_ROUTE
    assert ca().egress_port(1) == NO_ROUTE


# --- GUIDInfo ---------------------------------------------------------------------------


@ROUTES
def test_guid_info_set_then_get(path: tuple[int, ...] | None) -> None:
    agent = ca()
    response, _ = ask(agent, get(SmpAttr.GUID_INFO, path), port=2)
    assert response.decode_data(GUIDInfo).guids == (CA_GUID + 0x102,) + (0,) * 7
    vguids = tuple(0xAA00 + i for i in range(8))
    response, _ = ask(agent, put(GUIDInfo(vguids), path), port=2)
    assert response.status == OK
    # Index 0 is the port GUID and stays.
    assert response.decode_data(GUIDInfo).guids == (CA_GUID + 0x102, *vguids[1:])
    assert drain(agent) == [GuidInfoChanged(2, 0)]
    response, _ = ask(agent, put(GUIDInfo(vguids), path, attribute_modifier=2), port=2)
    # GUIDCap 20: block 2 holds indices 16..19 and nothing beyond.
    assert response.decode_data(GUIDInfo).guids == (*vguids[:4], 0, 0, 0, 0)
    response, _ = ask(agent, get(SmpAttr.GUID_INFO, path, attribute_modifier=2), port=2)
    assert response.decode_data(GUIDInfo).guids == (*vguids[:4], 0, 0, 0, 0)
    table = agent.guid_table(2)
    assert len(table) == 20 and table[0] == CA_GUID + 0x102 and table[16:] == vguids[:4]
    assert agent.guid_table(1) == (CA_GUID + 0x101,) + (0,) * 19
    response, _ = ask(agent, get(SmpAttr.GUID_INFO, path, attribute_modifier=3), port=2)
    assert response.status == INVALID
    # The same Set again changes nothing: no event.
    drain(agent)
    ask(agent, put(GUIDInfo(vguids), path), port=2)
    assert drain(agent) == []


def test_guid_info_switch() -> None:
    sw = switch()
    response, _ = ask(sw, get(SmpAttr.GUID_INFO, (1,)), port=4)
    assert response.decode_data(GUIDInfo).guids == (SW_GUID,) + (0,) * 7
    response, _ = ask(sw, put(GUIDInfo((1, 2, 3, 4, 5, 6, 7, 8)), (1,)), port=4)
    assert response.decode_data(GUIDInfo).guids == (SW_GUID,) + (0,) * 7
    response, _ = ask(sw, get(SmpAttr.GUID_INFO, (1,), attribute_modifier=1))
    assert response.status == INVALID


# --- P_KeyTable --------------------------------------------------------------------------


@ROUTES
def test_pkey_table(path: tuple[int, ...] | None) -> None:
    agent = ca()
    response, _ = ask(agent, get(SmpAttr.P_KEY_TABLE, path), port=1)
    assert response.decode_data(PKeyTable).pkeys == (0xFFFF,) + (0,) * 31
    keys = tuple(0x8000 | i for i in range(32))
    # PartitionCap 40: block 1 holds entries 32..39; the CA ignores the port bits.
    response, _ = ask(agent, put(PKeyTable(keys), path, attribute_modifier=(9 << 16) | 1), port=1)
    assert response.decode_data(PKeyTable).pkeys == (*keys[:8],) + (0,) * 24
    assert agent.pkey_table(1)[32:] == keys[:8]
    assert drain(agent) == [PKeyTableChanged(1, 1)]
    response, _ = ask(agent, get(SmpAttr.P_KEY_TABLE, path, attribute_modifier=2), port=1)
    assert response.status == INVALID


def test_pkey_table_switch_port_in_modifier() -> None:
    sw = switch()
    keys = tuple(range(1, 33))
    response, _ = ask(sw, put(PKeyTable(keys), (1,), attribute_modifier=(5 << 16) | 0))
    assert response.decode_data(PKeyTable).pkeys == keys
    assert sw.pkey_table(5) == keys
    assert sw.pkey_table(4)[0] == 0xFFFF
    response, _ = ask(sw, get(SmpAttr.P_KEY_TABLE, (1,), attribute_modifier=(9 << 16)))
    assert response.status == INVALID
    response, _ = ask(sw, get(SmpAttr.P_KEY_TABLE, (1,), attribute_modifier=(5 << 16) | 1))
    assert response.status == INVALID  # PartitionEnforcementCap 32: one block
    assert len(sw.pkey_table(0)) == 128  # port 0: NodeInfo PartitionCap


# --- SMInfo --------------------------------------------------------------------------


class FakeSm:
    def __init__(self) -> None:
        self.controls: list[int] = []

    def sm_info_get(self) -> SMInfo:
        return SMInfo(SM_PORT_GUID, 0, 42, 7, SmState.MASTER)

    def sm_info_set(self, control: int, info: SMInfo) -> SMInfo | None:
        self.controls.append(control)
        return None if control == 99 else self.sm_info_get()


@ROUTES
def test_sm_info(path: tuple[int, ...] | None) -> None:
    agent = ca()
    response, _ = ask(agent, get(SmpAttr.SM_INFO, path))
    assert response.status == MadStatus.METHOD_ATTR_NOT_SUPPORTED
    sm = FakeSm()
    agent.sm_info_handler = sm
    response, _ = ask(agent, get(SmpAttr.SM_INFO, path))
    assert response.decode_data(SMInfo) == sm.sm_info_get()
    response, _ = ask(agent, put(SMInfo(), path, attribute_modifier=2))
    assert response.status == OK and response.decode_data(SMInfo).act_count == 42
    response, _ = ask(agent, put(SMInfo(), path, attribute_modifier=99))
    assert response.status == MadStatus.METHOD_ATTR_NOT_SUPPORTED
    assert sm.controls == [2, 99]


# --- status codes and what is ignored -------------------------------------------------


@ROUTES
def test_bad_class_version(path: tuple[int, ...] | None) -> None:
    agent = ca()
    smp = dataclasses.replace(get(SmpAttr.NODE_INFO, path), class_version=2)
    response, _ = ask(agent, smp)
    assert response.status == MadStatus.BAD_VERSION
    assert response.class_version == 2
    assert agent.counters.bad_version == 1


@ROUTES
@pytest.mark.parametrize("method", [Method.SEND, Method.TRAP, Method.REPORT, 0x04, 0x7F])
def test_unknown_method(path: tuple[int, ...] | None, method: int) -> None:
    response, _ = ask(ca(), make_request(method, SmpAttr.NODE_INFO, tid=3, path=path))
    assert response.status == MadStatus.METHOD_NOT_SUPPORTED


@ROUTES
@pytest.mark.parametrize(
    "attr",
    [SmpAttr.NOTICE, SmpAttr.SL_TO_VL_MAPPING_TABLE, SmpAttr.VENDOR_DIAG, 0xFF00, 0x0001],
)
def test_unsupported_attribute(path: tuple[int, ...] | None, attr: int) -> None:
    agent = switch()
    for method in (Method.GET, Method.SET):
        response, _ = ask(agent, make_request(method, attr, tid=3, path=path))
        assert response.status == MadStatus.METHOD_ATTR_NOT_SUPPORTED
    assert agent.counters.unsupported == 2


def test_dr_with_lid_routed_last_segment() -> None:
    """DrDLID not permissive: the request came the last way by LID (IBA 14.2.2), so
    the answer leaves by LID for the request's SLID."""
    agent = ca()
    set_port_info(agent, 1, lid=0x50)
    request = make_get(SmpAttr.NODE_INFO, tid=9, path=(3,), dr_dlid=0x50)
    step = dr_originate(request, num_ports=4)
    step = dr_receive(step.smp, 7, is_switch=True, num_ports=8)
    assert step.action == DrAction.LID_ROUTE
    delivered = step.smp
    agent.receive(Datagram(delivered.pack(), 1, 0x21, 0x50, 0, 0), 0)
    (answer,) = agent.packets_to_send()
    response = Smp.unpack(answer.payload)
    assert answer.payload == make_get_resp(delivered, response.data).pack()
    assert (answer.port, answer.slid, answer.dlid) == (1, 0x50, 0x21)
    assert dr_originate(response, num_ports=2).action == DrAction.LID_ROUTE


@pytest.mark.parametrize("path", [None, (1,)])
def test_responses_are_ignored(path: tuple[int, ...] | None) -> None:
    agent = ca()
    request = get(SmpAttr.NODE_INFO, path)
    for response in (make_get_resp(request), dataclasses.replace(request, method=0x86)):
        agent.receive(Datagram(response.pack(), 1, 1, 0, 0, 0), 0)
    assert agent.packets_to_send() == []
    assert agent.counters.responses_ignored == 2


def _malformed() -> list[tuple[bytes, int]]:
    good = get(SmpAttr.NODE_INFO, None).pack()
    dr_back = dataclasses.replace(get(SmpAttr.NODE_INFO, (1,)), direction=True).pack()
    sa = bytearray(good)
    sa[1] = MgmtClass.SUBN_ADM
    base = bytearray(good)
    base[0] = 2
    return [
        (b"", 1),
        (good[:255], 1),
        (good + b"\x00", 1),
        (bytes(sa), 1),
        (bytes(base), 1),
        (good, 0),  # a CA has no port 0
        (good, 3),  # nor port 3
        (dr_back, 1),  # a returning DR SMP is not for the SMA
    ]


@pytest.mark.parametrize(("payload", "port"), _malformed())
def test_malformed_is_counted_and_ignored(payload: bytes, port: int) -> None:
    agent = ca()
    agent.receive(Datagram(payload, port, 1, 0, 0, 0), 0)
    assert agent.packets_to_send() == []
    assert agent.counters.malformed == 1
    assert drain(agent) == []


@FAST
@given(st.binary(max_size=300), st.integers(0, 300), st.booleans())
def test_arbitrary_bytes_never_raise(payload: bytes, port: int, on_switch: bool) -> None:
    agent = switch() if on_switch else ca()
    agent.receive(Datagram(payload, port, 1, 0, 0, 0), 0)
    for answer in agent.packets_to_send():
        Smp.unpack(answer.payload)


smp_requests = st.builds(
    make_request,
    method=st.sampled_from([Method.GET, Method.SET, Method.SEND, Method.TRAP_REPRESS]),
    attribute_id=st.sampled_from([int(a) for a in SmpAttr] + [0xABCD]),
    tid=st.integers(0, (1 << 64) - 1),
    attribute_modifier=st.one_of(st.integers(0, 40), st.integers(0, (1 << 32) - 1)),
    data=st.binary(min_size=64, max_size=64),
    path=st.one_of(st.none(), st.lists(st.integers(1, 8), max_size=3).map(tuple)),
    m_key=st.integers(0, (1 << 64) - 1),
)


@FAST
@given(smp_requests, st.integers(1, 2), st.booleans(), st.integers(0, 7))
def test_any_request_gets_the_codecs_response(
    smp: Smp, port: int, on_switch: bool, class_version: int
) -> None:
    """Whatever the request, the answer (if any) is `make_get_resp` of it."""
    agent = switch() if on_switch else ca()
    smp = dataclasses.replace(smp, class_version=class_version)
    if smp.directed:
        smp = dataclasses.replace(smp, hop_pointer=smp.hop_count + 1)
        dg = Datagram(smp.pack(), port, PERMISSIVE_LID, PERMISSIVE_LID, 0, 0)
    else:
        dg = Datagram(smp.pack(), port, 5, 0, 0, 0)
    agent.receive(dg, 0)
    out = agent.packets_to_send()
    assert len(out) <= 1
    if smp.method == Method.TRAP_REPRESS and class_version == 1:
        assert out == []
    for answer in out:
        response = Smp.unpack(answer.payload)
        assert answer.payload == make_get_resp(smp, response.data, status=response.status).pack()
        assert answer.port == port


# --- trap 128 -----------------------------------------------------------------------------


def test_no_trap_without_lid() -> None:
    sw = switch()
    sw.set_link(2, True, 0)
    assert sw.packets_to_send() == []
    assert sw.counters.traps_suppressed == 1
    assert sw.get_timer() is None
    assert sw.switch_info().port_state_change  # type: ignore[union-attr]


def test_ca_link_events_raise_no_trap() -> None:
    agent = ca()
    set_port_info(agent, 1, lid=5, master_sm_lid=1)
    agent.set_link(1, True, 0)
    agent.set_link(1, False, 0)
    assert agent.packets_to_send() == []
    assert agent.get_timer() is None


def _trap_of(answer: Datagram) -> tuple[Smp, Notice]:
    smp = Smp.unpack(answer.payload)
    return smp, Notice.unpack_smp(smp.data)


def test_trap_128_repeats_until_repressed() -> None:
    sw = switch()
    configure_switch(sw, lid=7, timeout=10)
    interval = TRAP_INTERVAL_UNIT_NS << 10  # 4.096 us * 2^10
    t0 = 1_000_000
    sw.set_link(3, True, t0)
    (trap,) = sw.packets_to_send()
    smp, notice = _trap_of(trap)
    assert (smp.mgmt_class, smp.method, smp.attribute_id) == (
        MgmtClass.SUBN_LID_ROUTED,
        Method.TRAP,
        0x0002,
    )
    assert notice == Notice(
        is_generic=True,
        type=NoticeType.URGENT,
        producer_type=ProducerType.SWITCH,
        trap_number=TrapNumber.LINK_STATE_CHANGE,
        issuer_lid=7,
        details=LinkStateChangeDetails(7),
    )
    assert (trap.port, trap.slid, trap.dlid, trap.sqp, trap.dqp) == (0, 7, SM_LID, 0, 0)
    events = drain(sw)
    assert PortStateChanged(3, PortState.DOWN, PortState.INIT) in events
    assert TrapSent(128, smp.tid, 1) in events
    assert sw.pending_traps() == ((128, smp.tid),)

    assert sw.get_timer() == t0 + interval
    sw.handle_timer(t0 + interval - 1)
    assert sw.packets_to_send() == []
    sw.handle_timer(t0 + interval)
    (again,) = sw.packets_to_send()
    assert again.payload == trap.payload  # same TID, same notice
    assert sw.get_timer() == t0 + 2 * interval
    assert drain(sw) == [TrapSent(128, smp.tid, 2)]

    # Another link change while the same notice is pending raises nothing new.
    sw.set_link(4, True, t0 + interval + 5)
    assert sw.packets_to_send() == []
    drain(sw)

    # A TrapRepress with another TID is not ours.
    repress = make_request(Method.TRAP_REPRESS, 0x0002, tid=smp.tid + 1)
    assert send(sw, repress, port=2) == []
    assert sw.counters.unmatched_represses == 1
    assert sw.get_timer() == t0 + 2 * interval
    # TrapRepress for another attribute is not either.
    repress = make_request(Method.TRAP_REPRESS, SmpAttr.NODE_INFO, tid=smp.tid)
    assert send(sw, repress, port=2) == []
    assert sw.counters.unmatched_represses == 2

    repress = make_request(Method.TRAP_REPRESS, 0x0002, tid=smp.tid)
    assert send(sw, repress, port=2) == []  # never answered
    assert drain(sw) == [TrapRepressed(128, smp.tid)]
    assert sw.get_timer() is None
    assert sw.pending_traps() == ()
    sw.handle_timer(t0 + 10 * interval)
    assert sw.packets_to_send() == []

    # The next change is a new trap with a new TID.
    sw.set_link(3, False, t0 + 11 * interval)
    (trap2,) = sw.packets_to_send()
    assert Smp.unpack(trap2.payload).tid != smp.tid


def test_trap_interval_follows_subnet_timeout() -> None:
    sw = switch()
    configure_switch(sw, timeout=18)
    sw.set_link(1, True, 0)
    assert sw.get_timer() == 4096 << 18  # about 1.07 s


def test_trap_retry_limit() -> None:
    sw = switch(trap_retry_limit=2)
    configure_switch(sw, timeout=0)
    sw.set_link(1, True, 0)
    now = 0
    sent = len(sw.packets_to_send())
    while (deadline := sw.get_timer()) is not None:
        now = deadline
        sw.handle_timer(now)
        sent += len(sw.packets_to_send())
    assert sent == 3  # first transmission and two repeats
    events = drain(sw)
    assert isinstance(events[-1], TrapAbandoned)
    assert now == 3 * TRAP_INTERVAL_UNIT_NS


def test_trap_repress_needs_the_m_key() -> None:
    sw = switch()
    configure_switch(sw)
    set_port_info(sw, 0, arrival=1, m_key=0xBEEF, m_key_protect_bits=1)
    sw.set_link(1, True, 0)
    (trap,) = sw.packets_to_send()
    smp = Smp.unpack(trap.payload)
    assert smp.m_key == 0xBEEF
    send(sw, make_request(Method.TRAP_REPRESS, 0x0002, tid=smp.tid, m_key=1))
    assert sw.pending_traps() == ((128, smp.tid),)
    send(sw, make_request(Method.TRAP_REPRESS, 0x0002, tid=smp.tid, m_key=0xBEEF))
    assert sw.pending_traps() == ()


# --- M_Key -------------------------------------------------------------------------------

KEY = 0x0123456789ABCDEF


def _protect(agent: SubnetManagementAgent, bits: int, lease: int = 0) -> None:
    port = 0 if agent.is_switch else 1
    response = set_port_info(
        agent,
        port,
        arrival=1,
        key=agent.port_info(port).m_key,
        m_key=KEY,
        m_key_protect_bits=bits,
        m_key_lease_period=lease,
    )
    assert response.status == OK
    drain(agent)


@pytest.mark.parametrize("bits", [0, 1, 2, 3])
@pytest.mark.parametrize("path", [None, (1,)])
def test_m_key_get(bits: int, path: tuple[int, ...] | None) -> None:
    agent = ca()
    _protect(agent, bits)
    out = send(agent, get(SmpAttr.PORT_INFO, path, m_key=KEY ^ 1))
    if bits >= 2:
        assert out == []
        assert agent.counters.m_key_dropped == 1
        assert agent.port_info(1).m_key_violations == 1
        assert drain(agent) == [MKeyViolation(1, Method.GET, SmpAttr.PORT_INFO)]
    else:
        info = Smp.unpack(out[0].payload).decode_data(PortInfo)
        assert info.m_key == (0 if bits == 1 else KEY)
        assert agent.port_info(1).m_key_violations == 0
    # The right key always works and shows the key.
    response, _ = ask(agent, get(SmpAttr.PORT_INFO, path, m_key=KEY))
    assert response.decode_data(PortInfo).m_key == KEY
    # Other attributes answer normally to a wrong key below level 2.
    out = send(agent, get(SmpAttr.NODE_INFO, path, m_key=0))
    assert len(out) == (0 if bits >= 2 else 1)


@pytest.mark.parametrize("bits", [0, 1, 2, 3])
def test_m_key_set_always_checked(bits: int) -> None:
    agent = ca()
    _protect(agent, bits)
    out = send(agent, put(port_info_update(agent, 1, lid=9), (1,), m_key=0))
    assert out == []
    assert agent.port_lid(1) == 0
    assert agent.port_info(1).m_key_violations == 1
    response, _ = ask(agent, put(port_info_update(agent, 1, lid=9), (1,), m_key=KEY))
    assert response.status == OK and agent.port_lid(1) == 9


def test_m_key_zero_means_unprotected() -> None:
    agent = ca()
    response, _ = ask(agent, put(port_info_update(agent, 1, lid=3), (1,), m_key=0xFFFF))
    assert response.status == OK


def test_switch_m_key_is_port0s() -> None:
    sw = switch()
    _protect(sw, 2)
    assert send(sw, get(SmpAttr.NODE_INFO, (1,), m_key=0), port=6) == []
    assert sw.port_info(0).m_key_violations == 1
    response, _ = ask(sw, get(SmpAttr.NODE_INFO, (1,), m_key=KEY), port=6)
    assert response.status == OK


def test_m_key_lease() -> None:
    agent = ca()
    _protect(agent, 2, lease=2)
    t0 = 5_000
    assert send(agent, get(SmpAttr.NODE_INFO, None, m_key=1), now_ns=t0) == []
    assert agent.get_timer() == t0 + 2_000_000_000
    # More violations do not restart it.
    send(agent, get(SmpAttr.NODE_INFO, None, m_key=1), now_ns=t0 + 10)
    assert agent.get_timer() == t0 + 2_000_000_000
    # A valid key stops it.
    ask(agent, get(SmpAttr.NODE_INFO, None, m_key=KEY), now_ns=t0 + 20)
    assert agent.get_timer() is None
    send(agent, get(SmpAttr.NODE_INFO, None, m_key=1), now_ns=t0 + 30)
    deadline = agent.get_timer()
    assert deadline == t0 + 30 + 2_000_000_000
    agent.handle_timer(deadline - 1)
    assert agent.port_info(1).m_key_protect_bits == 2
    agent.handle_timer(deadline)
    assert agent.port_info(1).m_key_protect_bits == 0
    assert MKeyLeaseExpired(1) in drain(agent)
    assert agent.get_timer() is None
    # Level 0 now: a Get with a wrong key is answered (a Set still is not).
    response, _ = ask(agent, get(SmpAttr.PORT_INFO, None, m_key=1))
    assert response.decode_data(PortInfo).m_key == KEY
    assert send(agent, put(PortInfo(), None, m_key=1)) == []


def test_m_key_violation_counter_saturates() -> None:
    agent = ca(record_events=False)
    _protect(agent, 2)
    bad = Datagram(get(SmpAttr.NODE_INFO, None, m_key=0).pack(), 1, 1, 0, 0, 0)
    for _ in range(0xFFFF + 2):
        agent.receive(bad, 0)
    assert agent.port_info(1).m_key_violations == 0xFFFF
    assert agent.counters.m_key_dropped == 0xFFFF + 2
    # Writing a non-zero value leaves the counter; zero resets it.
    response = set_port_info(agent, 1, key=KEY, m_key_violations=5)
    assert response.decode_data(PortInfo).m_key_violations == 0xFFFF


# --- events, specs, engine shape --------------------------------------------------------


def test_events_can_be_switched_off() -> None:
    sw = switch(record_events=False)
    configure_switch(sw)
    sw.set_link(1, True, 0)
    assert len(sw.packets_to_send()) == 1  # the trap
    ask(sw, put(LinearForwardingTable(), (1,)))
    set_port_info(sw, 1, port_state=PortState.DOWN)
    assert drain(sw) == []
    assert sw.counters.traps_sent == 1


def test_forwarding_changes_are_announced_even_without_events() -> None:
    """A transport that memoises routes learns of LFT, LID and port-state changes
    from `ForwardingChanged`, which `record_events=False` does not silence; a Set
    that writes what is already there announces nothing."""
    sw = switch(record_events=False)
    configure_switch(sw)
    while sw.next_event() is not None:
        pass
    lft = LinearForwardingTable((1,) * 64)
    ask(sw, put(lft, (1,)))
    assert sw.next_event() == ForwardingChanged()
    assert sw.next_event() is None
    ask(sw, put(lft, (1,)))  # the same block again
    assert sw.next_event() is None
    set_port_info(sw, 1, port_state=PortState.DOWN)
    assert sw.next_event() == ForwardingChanged()


def test_packets_to_send_empties_outbox() -> None:
    agent = ca()
    agent.receive(Datagram(get(SmpAttr.NODE_INFO, None).pack(), 1, 1, 0, 0, 0), 0)
    assert len(agent.packets_to_send()) == 1
    assert agent.packets_to_send() == []


def test_default_port_capabilities() -> None:
    info = ca().port_info(1)
    assert info.link_width_supported == LinkWidth.WIDTH_1X | LinkWidth.WIDTH_4X
    assert info.link_speed_ext_supported == LinkSpeedExt.GBPS_14 | LinkSpeedExt.GBPS_25
    assert info.port_state == PortState.DOWN
    assert info.port_physical_state == PhysPortState.POLLING
    sw = switch()
    assert sw.port_info(0).port_state == PortState.ACTIVE
    assert sw.port_info(3).guid_cap == 0


def test_set_capability_mask() -> None:
    agent = ca()
    agent.set_capability_mask(1, 0x2)
    response, _ = ask(agent, get(SmpAttr.PORT_INFO, (1,)))
    assert response.decode_data(PortInfo).capability_mask == 0x2
    with pytest.raises(ValueError):
        agent.set_capability_mask(1, 1 << 32)


def test_port_specs_per_port() -> None:
    spec = NodeSpec(
        NodeType.CA,
        CA_GUID,
        2,
        ports=(
            PortSpec(),
            PortSpec(link_width_supported=LinkWidth.WIDTH_12X, mtu_cap=Mtu.MTU_2048),
        ),
    )
    agent = SubnetManagementAgent(spec)
    assert agent.port_info(2).link_width_supported == LinkWidth.WIDTH_12X
    assert agent.port_info(2).mtu_cap == Mtu.MTU_2048
    assert agent.port_info(1).mtu_cap == Mtu.MTU_4096
    assert spec.port_guid(2) == CA_GUID + 2  # ibsim's convention without port_guids


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"num_ports": 0}, "num_ports"),
        ({"num_ports": 255}, "num_ports"),
        ({"port_guids": (1,)}, "port GUIDs"),
        ({"port_guids": (0, 1)}, "non-zero"),
        ({"description": "x" * 65}, "NodeDescription"),
        ({"guid_cap": 0}, "GUIDCap"),
        ({"partition_cap": 0}, "PartitionCap"),
        ({"vendor_id": 1 << 24}, "VendorID"),
        ({"ports": (PortSpec(),)}, "port specs"),
        ({"ports": (PortSpec(mtu_cap=9), PortSpec())}, "MTUCap"),
        ({"ports": (PortSpec(vl_cap=0), PortSpec())}, "VLCap"),
        ({"subnet_timeout": 32}, "SubnetTimeOut"),
        ({"node_type": 7}, "node type"),
        ({"node_guid": 1 << 64}, "64 bits"),
    ],
)
def test_node_spec_errors(kw: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"node_type": NodeType.CA, "node_guid": CA_GUID, "num_ports": 2}
    args.update(kw)
    with pytest.raises(ConfigError, match=match):
        NodeSpec(**args)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"lft_cap": 100}, "LinearFDBCap"),
        ({"lft_cap": 0xC040}, "LinearFDBCap"),
        ({"port_guids": (5,)}, "only GUID"),
    ],
)
def test_switch_spec_errors(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        NodeSpec(NodeType.SWITCH, SW_GUID, 4, **kw)


def test_node_spec_accepts_switch_guid_tuple() -> None:
    spec = NodeSpec(NodeType.SWITCH, SW_GUID, 4, port_guids=(SW_GUID,))
    assert spec.port_guid(3) == SW_GUID


def test_struct_layouts_match_codecs() -> None:
    """The agent's own byte offsets agree with the PortInfo codec (IBA 14.2.5.6)."""
    info = PortInfo(
        m_key=0x1111111111111111,
        lid=0x2222,
        master_sm_lid=0x3333,
        m_key_protect_bits=3,
        lmc=5,
        port_state=PortState.ARMED,
        port_physical_state=PhysPortState.LINK_UP,
        subnet_timeout=0x15,
        client_reregister=True,
    )
    raw = info.pack()
    assert struct.unpack_from(">Q8xH16xB", raw) == (0x1111111111111111, 0x2222, 0xC5)
    assert raw[32] & 0x0F == PortState.ARMED
    assert raw[33] >> 4 == PhysPortState.LINK_UP
    assert raw[51] == 0x80 | 0x15


def test_switch_ports_with_other_capabilities_start_with_their_own_port_info() -> None:
    # Starting PortInfo is cached by capabilities: a switch whose external ports
    # differ must still start each with its own.
    plain = PortSpec()
    no_ext = PortSpec(link_speed_ext_supported=0)
    narrow = PortSpec(link_width_supported=0x01, mtu_cap=3)
    ports = (plain, no_ext, plain, narrow, dataclasses.replace(plain))
    switch = SubnetManagementAgent(NodeSpec(NodeType.SWITCH, 0x200, 5, ports=ports))
    alone = [
        SubnetManagementAgent(NodeSpec(NodeType.SWITCH, 0x200, 5, ports=(ps,) * 5)) for ps in ports
    ]
    for port, ps in enumerate(ports, start=1):
        assert switch.port_info(port) == alone[port - 1].port_info(port)
        info = switch.port_info(port)
        assert (info.link_width_supported, info.mtu_cap) == (
            ps.link_width_supported, ps.mtu_cap,
        )  # fmt: skip
        assert info.link_speed_ext_supported == ps.link_speed_ext_supported
    # Port 0 answers with port 1's capabilities, as before.
    assert switch.port_info(0) == alone[0].port_info(0)
    assert switch.port_info(2).capability_mask != switch.port_info(1).capability_mask
