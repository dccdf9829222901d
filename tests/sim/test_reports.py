"""InformInfo subscribers on a simulated subnet receive and acknowledge the SA's
Reports for traps 128, 64 and 65 when a link goes down and up; lost Reports are sent
again."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from ibmig.core.engine import QP1, Datagram
from ibmig.core.sa import ReportAcked, ReportSent
from ibmig.core.sm.manager import SubnetUp, SweepFailed
from ibmig.core.sma import ForwardingChanged
from ibmig.fabric import Fabric, preset
from ibmig.sim.subnet import SubnetSim
from ibmig.wire.mad import MadHeader, Method, MgmtClass
from ibmig.wire.notice import GidDetails, LinkStateChangeDetails, Notice
from ibmig.wire.packet import QP1_QKEY
from ibmig.wire.sa import InformInfo, SaAttr, SaMad


class Subscriber:
    """A minimal GSI client: subscribes to every generic trap, acknowledges Reports."""

    event_filter: Container[type] | None = None  # it has no events

    def __init__(self, port: int, lid: int, sa_lid: int) -> None:
        self.port, self.lid, self.sa_lid = port, lid, sa_lid
        inform = InformInfo(
            gid=bytes(16), lid_range_begin=0xFFFF, is_generic=1, subscribe=1, type=0xFFFF,
            trap_number=0xFFFF, qpn=1, resp_time_value=10, producer_type=0xFFFFFF,
        )  # fmt: skip
        mad = SaMad.from_record(inform, method=Method.SET, tid=0x51)
        self._outbox = [self._datagram(mad.pack())]
        self.subscribed = False
        self.notices: list[tuple[int, Notice]] = []  # (TID, notice), duplicates included

    def _datagram(self, payload: bytes) -> Datagram:
        return Datagram(payload, self.port, self.lid, self.sa_lid, QP1, QP1, qkey=QP1_QKEY)

    def receive(self, datagram: Datagram, now_ns: int) -> None:
        mad = SaMad.unpack(datagram.payload)
        if mad.method == Method.GET_RESP and mad.attribute_id == SaAttr.INFORM_INFO:
            self.subscribed = mad.status == 0
        elif mad.method == Method.REPORT:
            notice = mad.record()
            assert isinstance(notice, Notice)
            self.notices.append((mad.tid, notice))
            header = MadHeader(MgmtClass.SUBN_ADM, Method.REPORT_RESP, mad.attribute_id,
                               tid=mad.tid, class_version=mad.header.class_version)  # fmt: skip
            self._outbox.append(self._datagram(SaMad(header, data=mad.data).pack()))

    def handle_timer(self, now_ns: int) -> None:
        return

    def packets_to_send(self) -> list[Datagram]:
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> int | None:
        return None

    def next_event(self) -> Any | None:
        return None


def up_with_subscriber(fabric: Fabric) -> tuple[SubnetSim, Subscriber, int]:
    sim = SubnetSim(fabric)
    sim.start()
    assert sim.run_until_up() is not None
    host = next(n for n in fabric.cas if n.index != sim.sm_node)
    subscriber = Subscriber(1, sim.agents[host.index].port_lid(1), sim.sm.db.sm_lid)
    sim.attach(host.index, subscriber, sim.latency.sa_ns, gsi_classes=(MgmtClass.SUBN_ADM,))
    sim.pump(host.index, subscriber, 0)
    sim.run()
    assert subscriber.subscribed
    return sim, subscriber, host.index


def test_link_down_and_up_reports_traps_128_65_64() -> None:
    fabric = preset("ft2-36")
    sim, subscriber, me = up_with_subscriber(fabric)
    # A host on another leaf switch loses its cable, then gets it back.
    victim = fabric.cas[-1]
    guid = fabric.ports[victim.port_index(1)].port_guid
    gid = sim.sm.config.subnet_prefix.to_bytes(8, "big") + guid.to_bytes(8, "big")
    leaf = fabric.peer(victim.index, 1)
    assert leaf is not None
    leaf_lid = sim.agents[leaf.node_index].port_lid(0)
    acked: list[ReportAcked] = []
    sim.event_hooks.append(
        lambda node, ev: acked.append(ev) if isinstance(ev, ReportAcked) else None
    )

    sim.set_link(victim.index, 1, False)
    sim.run()
    traps = [n.trap_number for _, n in subscriber.notices]
    assert 128 in traps and 65 in traps and 64 not in traps
    link = next(n for _, n in subscriber.notices if n.trap_number == 128)
    assert isinstance(link.details, LinkStateChangeDetails) and link.details.lid == leaf_lid
    gone = next(n for _, n in subscriber.notices if n.trap_number == 65)
    assert isinstance(gone.details, GidDetails) and gone.details.gid == gid

    subscriber.notices.clear()
    sim.set_link(victim.index, 1, True)
    sim.run()
    traps = [n.trap_number for _, n in subscriber.notices]
    assert 128 in traps and 64 in traps
    back = next(n for _, n in subscriber.notices if n.trap_number == 64)
    assert isinstance(back.details, GidDetails) and back.details.gid == gid
    # Every Report was acknowledged, and nothing is left to resend.
    assert len(acked) >= 4
    assert sim.sa.get_timer() is None
    assert me != victim.index


def test_lost_reports_are_sent_again_until_acknowledged() -> None:
    fabric = preset("ft2-36")
    sim, subscriber, me = up_with_subscriber(fabric)
    sent: list[ReportSent] = []
    sim.event_hooks.append(lambda node, ev: sent.append(ev) if isinstance(ev, ReportSent) else None)
    sim.set_link_loss(me, 1, 0.5)  # the subscriber's own cable loses half its packets
    victim = fabric.cas[-1]
    sim.set_link(victim.index, 1, False)
    sim.run()
    lost = sim.stats.drops["lost"]
    assert lost > 0
    tids = [tid for tid, _ in subscriber.notices]
    distinct = set(tids)
    # Each notice arrived at least once; the SA sent more Reports than notices it had.
    assert {n.trap_number for _, n in subscriber.notices} >= {128, 65}
    assert len(sent) > len(distinct)
    assert sim.sa.get_timer() is None  # all acknowledged or given up, nothing pending


def test_engines_record_only_what_observers_ask_for_unless_everything_is_watched() -> None:
    sim = SubnetSim(preset("ft2-36"))
    seen: list[object] = []
    sim.add_event_hook(lambda node, event: seen.append(event), ReportSent)
    # SubnetUp, SweepFailed and ForwardingChanged are the simulator's own (SUBNET UP or
    # why not, the route memo).
    wanted = frozenset({ReportSent, SubnetUp, SweepFailed, ForwardingChanged})
    assert sim.wanted_event_types() == wanted
    sim.narrow_engine_events()
    assert sim.sa.event_filter == wanted
    assert sim.sa._wants(ReportSent) and not sim.sa._wants(ReportAcked)
    sim.event_hooks.append(lambda node, event: None)  # a hook for every event
    assert sim.wanted_event_types() is None
    sim.narrow_engine_events()
    assert sim.sa.event_filter is None and sim.sa._wants(ReportAcked)
