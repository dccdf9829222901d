"""Helpers for the SA tests: a tiny subnet built by hand, request builders, answer
decoding, a simulated subnet with the SA attached and a scripted SA client.

The hand-built subnet (LIDs in brackets, ports on the cables):

    sm-host [1] 1 ---- 1 sw1 [2] 2 ---- 1 h1 [3]
                         3
                         |
                         1
                        sw2 [4] 2 ---- 1 h2 [5]
                            3 ---- 1 h3 [6]   (1x SDR, 2048-byte MTU)

Every other link is 4x QDR (40 Gb/s, rate code 7) with a 4096-byte MTU. The SM
runs on sm-host port 1. DR paths are the ones the SM would have found.
"""

from __future__ import annotations

import random
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import Any

from ibmig.core.engine import QP1, Datagram
from ibmig.core.sa import SaConfig, SubnetAdministrator
from ibmig.core.sm.db import NodeRecordData, PortRecordData
from ibmig.core.sm.manager import SmConfig, SubnetManager, SubnetUp
from ibmig.sim.subnet import SubnetSim
from ibmig.wire.mad import MadHeader, Method, MgmtClass, RmppFlags, RmppHeader, RmppType
from ibmig.wire.packet import QP1_QKEY
from ibmig.wire.sa import SA_CLASS_VERSION, SA_DATA_SIZE, SaMad, SaRecord
from ibmig.wire.smp import Smp, make_get_resp
from ibmig.wire.smp_attrs import (
    LFT_BLOCK_SIZE,
    NodeInfo,
    NodeType,
    PhysPortState,
    PortCapability,
    PortInfo,
    PortState,
)
from tests.helpers import gid

PREFIX = 0xFE80_0000_0000_0000
QKEY = QP1_QKEY

SM_NODE, SM_PORT_GUID, SM_LID = 0xA0, 0xA1, 1
SW1, SW1_LID = 0x10, 2
H1_NODE, H1_GUID, H1_LID = 0xB0, 0xB1, 3
SW2, SW2_LID = 0x20, 4
H2_NODE, H2_GUID, H2_LID = 0xC0, 0xC1, 5
H3_NODE, H3_GUID, H3_LID = 0xD0, 0xD1, 6

CA_CAPS = int(
    PortCapability.IS_SM
    | PortCapability.IS_TRAP_SUPPORTED
    | PortCapability.IS_SYSTEM_IMAGE_GUID_SUPPORTED
)
SWITCH_CAPS = int(PortCapability.IS_SYSTEM_IMAGE_GUID_SUPPORTED)


def port_info(
    lid: int = 0,
    *,
    local_port: int = 1,
    mtu: int = 5,
    width: int = 0x02,
    speed: int = 0x4,
    caps: int = CA_CAPS,
    guid_cap: int = 0,
    m_key: int = 0,
) -> PortInfo:
    return PortInfo(
        m_key=m_key,
        gid_prefix=PREFIX,
        lid=lid,
        master_sm_lid=SM_LID,
        capability_mask=caps,
        local_port_num=local_port,
        link_width_enabled=width,
        link_width_supported=0x03,
        link_width_active=width,
        link_speed_supported=0x7,
        port_state=PortState.ACTIVE,
        port_physical_state=PhysPortState.LINK_UP,
        link_speed_active=speed,
        link_speed_enabled=0x7,
        neighbor_mtu=mtu,
        mtu_cap=mtu,
        guid_cap=guid_cap,
        subnet_timeout=18,
    )


def _ca(
    node_guid: int, port_guid: int, lid: int, name: str, path: tuple[int, ...], **kw: Any
) -> NodeRecordData:
    info = NodeInfo(NodeType.CA, 1, node_guid, port_guid, system_image_guid=node_guid)
    node = NodeRecordData(info, name, path)
    node.ports[1] = PortRecordData(node_guid, 1, port_guid, port_info(lid, guid_cap=32, **kw))
    return node


def _switch(
    node_guid: int, lid: int, name: str, path: tuple[int, ...], routes: dict[int, int]
) -> NodeRecordData:
    info = NodeInfo(NodeType.SWITCH, 3, node_guid, node_guid, system_image_guid=node_guid)
    node = NodeRecordData(info, name, path)
    node.ports[0] = PortRecordData(
        node_guid, 0, node_guid, port_info(lid, local_port=0, caps=SWITCH_CAPS, guid_cap=1)
    )
    for port in (1, 2, 3):
        node.ports[port] = PortRecordData(
            node_guid, port, node_guid, port_info(0, local_port=port, caps=SWITCH_CAPS)
        )
    lft = bytearray(b"\xff" * LFT_BLOCK_SIZE)
    for dlid, port in routes.items():
        lft[dlid] = port
    node.lft = lft
    node.lft_top = 6
    node.lft_cap = 0xC000
    return node


def build_subnet(config: SmConfig | None = None) -> SubnetManager:
    """The hand-built subnet of the module docstring, in a fresh SM's database."""
    sm = SubnetManager(port_num=1, config=config, rng=random.Random(1))
    db = sm.db
    nodes = [
        _ca(SM_NODE, SM_PORT_GUID, SM_LID, "sm-host", ()),
        _switch(SW1, SW1_LID, "sw1", (1,), {1: 1, 2: 0, 3: 2, 4: 3, 5: 3, 6: 3}),
        _ca(H1_NODE, H1_GUID, H1_LID, "h1", (1, 2)),
        _switch(SW2, SW2_LID, "sw2", (1, 3), {1: 1, 2: 1, 3: 1, 4: 0, 5: 2, 6: 3}),
        _ca(H2_NODE, H2_GUID, H2_LID, "h2", (1, 3, 2)),
        _ca(H3_NODE, H3_GUID, H3_LID, "h3", (1, 3, 3), mtu=4, width=0x01, speed=0x1),
    ]
    for node in nodes:
        db.nodes[node.node_guid] = node
    # The slow link's switch end.
    sw2_port3 = db.nodes[SW2].ports[3]
    assert sw2_port3.info is not None
    sw2_port3.info = port_info(0, local_port=3, mtu=4, width=0x01, speed=0x1, caps=SWITCH_CAPS)
    for a, b in (
        ((SM_NODE, 1), (SW1, 1)),
        ((SW1, 2), (H1_NODE, 1)),
        ((SW1, 3), (SW2, 1)),
        ((SW2, 2), (H2_NODE, 1)),
        ((SW2, 3), (H3_NODE, 1)),
    ):
        db.links[a] = b
        db.links[b] = a
    for node_guid, port, port_guid, lid in (
        (SM_NODE, 1, SM_PORT_GUID, SM_LID),
        (SW1, 0, SW1, SW1_LID),
        (H1_NODE, 1, H1_GUID, H1_LID),
        (SW2, 0, SW2, SW2_LID),
        (H2_NODE, 1, H2_GUID, H2_LID),
        (H3_NODE, 1, H3_GUID, H3_LID),
    ):
        db.lid_owner[lid] = (node_guid, port)
        db.port_lid[port_guid] = lid
    db.sm_lid = SM_LID
    db.sm_port_guid = SM_PORT_GUID
    db.max_lid = 6
    return sm


def make_sa(
    config: SaConfig | None = None, *, up: bool = True, sm: SubnetManager | None = None
) -> SubnetAdministrator:
    sm = sm or build_subnet()
    sa = SubnetAdministrator(sm, rng=random.Random(5), config=config)
    if up:
        sa.subnet_up(SubnetUp(1, 0, 0, len(sm.db.nodes), len(sm.db.lid_owner)), 0)
    return sa


def request(
    attribute: int,
    method: int,
    record: SaRecord | bytes = b"",
    *,
    mask: int = 0,
    tid: int = 0x1234,
    slid: int = H1_LID,
    sqp: int = 1,
    sgid: bytes | None = None,
    sm_key: int = 0,
    modifier: int = 0,
    class_version: int = SA_CLASS_VERSION,
) -> Datagram:
    """An SA request datagram from `slid` to the SA."""
    data = record if isinstance(record, bytes) else record.pack()
    mad = SaMad(
        MadHeader(
            MgmtClass.SUBN_ADM,
            method,
            attribute,
            tid,
            modifier,
            class_version=class_version,
        ),
        RmppHeader.NONE,
        sm_key,
        0,
        mask,
        data.ljust(SA_DATA_SIZE, b"\0"),
    )
    return Datagram(
        mad.pack(),
        1,
        slid,
        SM_LID,
        sqp,
        QP1,
        qkey=QKEY,
        sgid=sgid,
        dgid=gid(SM_PORT_GUID) if sgid is not None else None,
    )


def drain(sa: SubnetAdministrator) -> list[tuple[Datagram, SaMad]]:
    """Everything the SA has to send, decoded."""
    return [(d, SaMad.unpack(d.payload)) for d in sa.packets_to_send()]


def ask(
    sa: SubnetAdministrator, datagram: Datagram, now_ns: int = 1_000
) -> list[tuple[Datagram, SaMad]]:
    sa.receive(datagram, now_ns)
    return drain(sa)


def one(sa: SubnetAdministrator, datagram: Datagram, now_ns: int = 1_000) -> SaMad:
    """The single answer to a request."""
    answers = ask(sa, datagram, now_ns)
    assert len(answers) == 1, answers
    return answers[0][1]


def events(engine: Any) -> list[Any]:
    found = []
    while (event := engine.next_event()) is not None:
        found.append(event)
    return found


def answer_smps(sm: SubnetManager, now_ns: int, *, status: int = 0) -> list[Smp]:
    """Play every SMA the SM is talking to: answer each SMP it sent by echoing it
    (a GUIDInfo Set answered with the block as written), or with an error status."""
    answered = []
    for datagram in sm.packets_to_send():
        smp = Smp.unpack(datagram.payload)
        answered.append(smp)
        response = make_get_resp(smp, status=status)
        sm.receive(Datagram(response.pack(), 1, 0xFFFF, 0xFFFF, 0, 0), now_ns)
    return answered


def table_records(segments: Sequence[SaMad]) -> tuple[SaRecord, ...]:
    from ibmig.core.sa.rmpp import reassemble
    from ibmig.wire.sa import decode_records

    payload = reassemble(segments)
    first = segments[0]
    if not first.attribute_offset:
        return ()
    return decode_records(first.attribute_id, payload, first.attribute_offset)


def rmpp_ack(segment: SaMad, *, slid: int, window_last: int, number: int | None = None) -> Datagram:
    """The requester's ACK of an RMPP DATA segment."""
    header = segment.header
    ack = SaMad(
        MadHeader(
            MgmtClass.SUBN_ADM,
            header.method ^ 0x80,
            header.attribute_id,
            header.tid,
            header.attribute_modifier,
            class_version=SA_CLASS_VERSION,
        ),
        RmppHeader(
            1,
            RmppType.ACK,
            0,
            RmppFlags.ACTIVE,
            0,
            segment.rmpp.segment_number if number is None else number,
            window_last,
        ),
        0,
        segment.attribute_offset,
        segment.component_mask,
    )
    return Datagram(ack.pack(), 1, slid, SM_LID, 1, QP1, qkey=QKEY)


def report_resp(report: SaMad, *, slid: int) -> Datagram:
    """A subscriber's ReportResp to a Report."""
    resp = SaMad(
        MadHeader(
            MgmtClass.SUBN_ADM,
            Method.REPORT_RESP,
            report.attribute_id,
            report.tid,
            class_version=SA_CLASS_VERSION,
        ),
        RmppHeader.NONE,
        0,
        0,
        0,
        report.data,
    )
    return Datagram(resp.pack(), 1, slid, SM_LID, 1, QP1, qkey=QKEY)


# --- a simulated subnet with the SA ---------------------------------------------------


class SaSim(SubnetSim):
    """SubnetSim with helpers to name nodes and their LIDs."""

    def node_index(self, name: str) -> int:
        return self.names.index(name)

    def lid_of(self, name: str, port: int = 1) -> int:
        return self.agents[self.node_index(name)].port_lid(port)


@dataclass
class SaClient:
    """A scripted SA client on one host port: sends requests, collects answers,
    ACKs RMPP segments (receiver window `window`) and answers Reports."""

    sim: SaSim
    node: int
    port: int = 1
    window: int = 4
    ack_rmpp: bool = True
    answer_reports: bool = True
    received: list[tuple[int, Datagram, SaMad]] = field(default_factory=list)
    reports: list[SaMad] = field(default_factory=list)
    _window_last: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sim.attach(self.node, self, self.sim.latency.sa_ns, gsi_classes=(MgmtClass.SUBN_ADM,))
        self._outbox: list[Datagram] = []
        self.event_filter: Container[type] | None = None  # it has no events

    @property
    def lid(self) -> int:
        return self.sim.agents[self.node].port_lid(self.port)

    def send(self, datagram: Datagram) -> None:
        """Send a request made by `request()` from this client's LID."""
        sm_lid = self.sim.sm.db.sm_lid
        self.sim.send(self.node, datagram._replace(port=self.port, slid=self.lid, dlid=sm_lid))

    # engine contract
    def receive(self, datagram: Datagram, now_ns: int) -> None:
        mad = SaMad.unpack(datagram.payload)
        self.received.append((now_ns, datagram, mad))
        rmpp = mad.rmpp
        if mad.header.method == Method.REPORT:
            self.reports.append(mad)
            if self.answer_reports:
                self._reply(report_resp(mad, slid=self.lid))
        elif rmpp.flags & RmppFlags.ACTIVE and rmpp.rmpp_type == RmppType.DATA and self.ack_rmpp:
            number = rmpp.segment_number
            tid = mad.tid
            last = self._window_last.get(tid, 1)
            if number == last or rmpp.flags & RmppFlags.LAST:
                self._window_last[tid] = number + self.window
                self._reply(rmpp_ack(mad, slid=self.lid, window_last=number + self.window))

    def _reply(self, datagram: Datagram) -> None:
        self._outbox.append(datagram._replace(port=self.port, dlid=self.sim.sm.db.sm_lid))

    def handle_timer(self, now_ns: int) -> None:
        return None

    def packets_to_send(self) -> list[Datagram]:
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> int | None:
        return None

    def next_event(self) -> Any | None:
        return None

    def segments(self, tid: int) -> list[SaMad]:
        """The DATA segments received for `tid`, each once, in order."""
        found: dict[int, SaMad] = {}
        for _, _, mad in self.received:
            if mad.tid == tid and mad.rmpp.rmpp_type == RmppType.DATA:
                found.setdefault(mad.rmpp.segment_number, mad)
        return [found[n] for n in sorted(found)]

    def answers(self, tid: int) -> list[SaMad]:
        return [mad for _, _, mad in self.received if mad.tid == tid]
