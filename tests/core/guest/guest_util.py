"""A hand-driven clock, a tiny wire and a fake SA for the guest agent tests.

The wire delivers every datagram after a fixed delay. Like the simulator's HCA it
hands a datagram to the guest whose port LID is the DLID and whose GID is the
DGID (the shared-port SR-IOV model); a datagram to the SA's LID goes to the fake
SA; anything else is dropped ("no_vf"). It also drops everything addressed to
the LIDs in `drop_lids` (an unreachable port). The fake SA answers PathRecord
queries from `paths` (GID -> LID; an unknown GID gets ERR_NO_RECORDS), accepts
InformInfo subscriptions and sends path-change Reports to its subscribers.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from ibmig.core.engine import QP1, Datagram
from ibmig.core.guest import GuestAgent, GuestConfig, Peer
from ibmig.wire.mad import MadHeader, Method
from ibmig.wire.packet import QP1_QKEY as QKEY
from ibmig.wire.sa import InformInfo, PathRecord, SaAttr, SaMad, SaStatus
from tests.core.sa_fakes import SA_GID, SA_LID, move_notice, report
from tests.helpers import gid

SA_GIDS = (None, SA_GID)
"""What reaches the SA's port: no GRH, or its port GID."""

FAST = GuestConfig(
    sa_timeout_ns=1_000_000,
    sa_retries=2,
    cm_response_timeout=10,  # 4.19 ms
    max_cm_retries=3,
    local_ack_timeout=8,  # 1.05 ms
    retry_count=3,
    message_interval_ns=10_000,
    reconnect_backoff_ns=500_000,
    reconnect_backoff_max_ns=4_000_000,
    reconnect_policy="doubling",
    backoff_jitter=0.0,
    dreq_on_detach=False,
)
"""Short timings so a test covers several time-outs in a few simulated ms; exact
(jitter-free) doubling backoff, and a VF that goes silently (the tests of DREQs on
detach and of RDS's backoff say so)."""


@dataclass
class FakeSa:
    """Answers PathRecord Gets and InformInfo Sets; sends Reports."""

    lid: int = SA_LID
    paths: dict[bytes, int] = field(default_factory=dict)
    silent: bool = False
    packet_life_time: int = 0
    subscribers: list[tuple[int, int, bytes | None]] = field(default_factory=list)
    requests: list[tuple[int, SaMad, Datagram]] = field(default_factory=list)
    report_resps: list[tuple[int, SaMad, Datagram]] = field(default_factory=list)
    tid: int = 0x5000

    def handle(self, datagram: Datagram, now_ns: int) -> list[Datagram]:
        mad = SaMad.unpack(datagram.payload)
        if mad.method == Method.REPORT_RESP:
            self.report_resps.append((now_ns, mad, datagram))
            return []
        self.requests.append((now_ns, mad, datagram))
        if self.silent:
            return []
        if mad.attribute_id == SaAttr.PATH_RECORD and mad.method == Method.GET:
            query = PathRecord.unpack(mad.data)
            lid = self.paths.get(query.dgid)
            if lid is None:
                answer = SaMad(
                    header=MadHeader(
                        mad.header.mgmt_class,
                        Method.GET_RESP,
                        mad.header.attribute_id,
                        mad.tid,
                        status=SaStatus.ERR_NO_RECORDS,
                        class_version=2,
                    ),
                    component_mask=mad.component_mask,
                    data=mad.data,
                )
            else:
                record = PathRecord(
                    dgid=query.dgid,
                    sgid=query.sgid,
                    dlid=lid,
                    slid=datagram.slid,
                    reversible=True,
                    pkey=0xFFFF,
                    sl=0,
                    mtu_selector=2,
                    mtu=4,
                    rate_selector=2,
                    rate=7,
                    packet_life_time_selector=2,
                    packet_life_time=self.packet_life_time,
                )
                answer = SaMad.from_record(
                    record,
                    method=Method.GET_RESP,
                    tid=mad.tid,
                    component_mask=mad.component_mask,
                    attribute_offset=PathRecord.ATTRIBUTE_OFFSET,
                )
            return [self._reply(datagram, answer.pack())]
        if mad.attribute_id == SaAttr.INFORM_INFO and mad.method == Method.SET:
            info = InformInfo.unpack(mad.data)
            key = (datagram.slid, datagram.sqp, datagram.sgid)
            if info.subscribe and key not in self.subscribers:
                self.subscribers.append(key)
            answer = SaMad.from_record(info, method=Method.GET_RESP, tid=mad.tid)
            return [self._reply(datagram, answer.pack())]
        return []

    def _reply(self, request: Datagram, payload: bytes) -> Datagram:
        return Datagram(
            payload,
            1,
            self.lid,
            request.slid,
            QP1,
            request.sqp,
            qkey=QKEY,
            sgid=gid(0xA1) if request.sgid is not None else None,
            dgid=request.sgid,
        )

    def reports(self, moved_gid: bytes, new_lid: int, old_lid: int) -> list[Datagram]:
        """A path-change Report for every subscriber (one TID per subscriber)."""
        notice = move_notice(moved_gid, new_lid, old_lid, new_port_guid=0x77)
        out = []
        for lid, qpn, report_gid in self.subscribers:
            self.tid += 1
            out.append(report(notice, self.tid, lid, qpn, sa_lid=self.lid, dgid=report_gid))
        return out


class Wire:
    """Guests and a fake SA on a hand-driven clock (module docstring)."""

    def __init__(self, delay_ns: int = 1_000) -> None:
        self.now = 0
        self.delay_ns = delay_ns
        self.sa = FakeSa()
        self.guests: dict[str, GuestAgent] = {}
        self.drop_lids: set[int] = set()
        self.drops: Counter[str] = Counter()
        self.sent: list[tuple[int, str, Datagram]] = []
        self.events: list[tuple[int, str, Any]] = []
        self.intra: list[tuple[int, str, Any]] = []
        self._flight: list[tuple[int, int, str, Datagram]] = []
        self._seq = 0

    def add(
        self,
        name: str,
        guid: int,
        lid: int,
        *,
        ip: str,
        peers: Iterable[tuple[str, int]] = (),
        config: GuestConfig = FAST,
        seed: int = 0,
        subscribe: bool = False,
        attach: bool = True,
        notice: str = "trap69",
    ) -> GuestAgent:
        agent = GuestAgent(
            ip=ip,
            rng=random.Random(f"{seed}:{name}"),
            peers=[Peer(IPv4Address(peer_ip), gid(peer_guid)) for peer_ip, peer_guid in peers],
            config=config,
            subscribe=subscribe,
            notice=notice,
            name=name,
        )
        self.guests[name] = agent
        self.sa.paths[gid(guid)] = lid
        if attach:
            agent.attach(1, lid, gid(guid), self.sa.lid, self.now)
            self.pump(name)
        return agent

    def pump(self, name: str) -> None:
        agent = self.guests[name]
        for datagram in agent.packets_to_send():
            self.send(name, datagram)
        for message in agent.intra_host_to_send():
            self.intra.append((self.now, name, message))
        event = agent.next_event()
        while event is not None:
            self.events.append((self.now, name, event))
            event = agent.next_event()

    def send(self, source: str, datagram: Datagram) -> None:
        self.sent.append((self.now, source, datagram))
        if datagram.dlid in self.drop_lids:
            self.drops["drop_lid"] += 1
            return
        self._seq += 1
        heapq.heappush(self._flight, (self.now + self.delay_ns, self._seq, source, datagram))

    def _deliver(self, datagram: Datagram) -> None:
        if 0xC000 <= datagram.dlid < 0xFFFF:  # multicast: every other attached guest
            for name, agent in self.guests.items():
                if agent.attached and agent.gid != datagram.sgid:
                    agent.receive(datagram, self.now)
                    self.pump(name)
            return
        if datagram.dlid == self.sa.lid and datagram.dqp == QP1 and datagram.dgid in SA_GIDS:
            for reply in self.sa.handle(datagram, self.now):
                self.send("sa", reply)
            return
        for name, agent in self.guests.items():
            if agent.attached and agent.lid == datagram.dlid and agent.gid == datagram.dgid:
                agent.receive(datagram, self.now)
                self.pump(name)
                return
        self.drops["no_vf"] += 1

    def inject(self, datagrams: Iterable[Datagram]) -> None:
        for datagram in datagrams:
            self.send("sa", datagram)

    def run_until(self, end_ns: int) -> None:
        while True:
            next_packet = self._flight[0][0] if self._flight else None
            next_timer: int | None = None
            timer_owner = ""
            for name, agent in self.guests.items():
                deadline = agent.get_timer()
                if deadline is not None and (next_timer is None or deadline < next_timer):
                    next_timer, timer_owner = deadline, name
            candidates = [t for t in (next_packet, next_timer) if t is not None]
            if not candidates or min(candidates) > end_ns:
                break
            if next_packet is not None and (next_timer is None or next_packet <= next_timer):
                when, _, _, datagram = heapq.heappop(self._flight)
                self.now = max(self.now, when)
                self._deliver(datagram)
            else:
                assert next_timer is not None
                self.now = max(self.now, next_timer)
                self.guests[timer_owner].handle_timer(self.now)
                self.pump(timer_owner)
        self.now = max(self.now, end_ns)

    def run_for(self, duration_ns: int) -> None:
        self.run_until(self.now + duration_ns)

    # --- queries for assertions ---------------------------------------------------------

    def events_of(self, kind: type, name: str | None = None) -> list[Any]:
        return [e for _, n, e in self.events if isinstance(e, kind) and (name is None or n == name)]

    def sent_by(self, name: str, since_ns: int = 0) -> list[Datagram]:
        return [d for t, n, d in self.sent if n == name and t >= since_ns]

    def migrate(self, name: str, new_lid: int, *, new_guid: int | None = None) -> GuestAgent:
        """Detach `name`, move it behind `new_lid` (optionally with a new GUID: dynamic
        assignment) and resume it; the fake SA learns the new LID."""
        agent = self.guests[name]
        agent.detach(self.now)
        self.pump(name)
        old_gid = agent.gid
        new_gid = gid(new_guid) if new_guid is not None else old_gid
        self.sa.paths.pop(old_gid, None)
        self.sa.paths[new_gid] = new_lid
        agent.resume(self.now, port_num=1, lid=new_lid, gid=new_gid, sa_lid=self.sa.lid)
        self.pump(name)
        return agent


__all__ = ["FAST", "QKEY", "SA_GIDS", "SA_LID", "FakeSa", "Wire", "gid"]
