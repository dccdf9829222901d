"""Contention in the simulator runtime: engines as single servers with a FIFO of
work, ports that serialise packets at their link's data rate, and what the queues
do to the SA's Reports. Every expected time is worked out by hand from the
latency model's figures."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ibmig.core.engine import QP1, Datagram
from ibmig.core.sa import ReportAcked, ReportSent
from ibmig.fabric import Fabric, LinkSpeed, LinkWidth, preset
from ibmig.sim.latency import LatencyModel, data_rate_gbps
from ibmig.sim.subnet import SubnetSim
from ibmig.wire.mad import Method, MgmtClass
from ibmig.wire.notice import GidDetails, Notice, NoticeType, ProducerType
from ibmig.wire.packet import QP1_QKEY
from tests.sim.test_reports import Subscriber

REPORT = int(Method.REPORT)


class LeaveTimes(SubnetSim):
    """Records when each Report leaves the SM's node (the transport's `send` is
    called when the engine's queue lets a MAD go)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.report_left_ns: list[int] = []

    def send(self, node: int, datagram: Datagram, delay_ns: int = 0) -> None:
        payload = datagram.payload
        if node == self.sm_node and datagram.dqp == QP1 and payload[3] == REPORT:
            self.report_left_ns.append(self.kernel.now_ns + delay_ns)
        super().send(node, datagram, delay_ns)


class Burst:
    """Sends the datagrams it is given all at once; records when its own arrive."""

    event_filter: Container[type] | None = None

    def __init__(self) -> None:
        self.outbox: list[Datagram] = []
        self.arrived_ns: list[int] = []

    def receive(self, datagram: Datagram, now_ns: int) -> None:
        self.arrived_ns.append(now_ns)

    def handle_timer(self, now_ns: int) -> None:
        return

    def packets_to_send(self) -> list[Datagram]:
        out, self.outbox = self.outbox, []
        return out

    def get_timer(self) -> int | None:
        return None

    def next_event(self) -> Any | None:
        return None


def _up(
    fabric: Fabric, latency: LatencyModel | None = None, cls: type[SubnetSim] = SubnetSim
) -> Any:
    sim = cls(fabric, latency=latency)
    sim.start()
    assert sim.run_until_up() is not None
    sim.run()
    return sim


def _subscribers(sim: SubnetSim, count: int) -> list[Subscriber]:
    hosts = [n for n in sim.fabric.cas if n.index != sim.sm_node][:count]
    subscribers = []
    for host in hosts:
        subscriber = Subscriber(1, sim.agents[host.index].port_lid(1), sim.sm.db.sm_lid)
        sim.attach(host.index, subscriber, 0, gsi_classes=(MgmtClass.SUBN_ADM,))
        sim.pump(host.index, subscriber, 0)
        subscribers.append(subscriber)
    sim.run()
    assert all(s.subscribed for s in subscribers)
    return subscribers


def _notice(sim: SubnetSim) -> Notice:
    return Notice(
        is_generic=True,
        type=NoticeType.SM,
        producer_type=ProducerType.CLASS_MANAGER,
        trap_number=64,
        issuer_lid=sim.sm.db.sm_lid,
        details=GidDetails(bytes(16)),
    )


def _idle(sim: SubnetSim) -> int:
    """Run on 1 ms past the last event: every engine's queue is empty and idle."""
    sim.run(until_ns=sim.kernel.now_ns + 1_000_000)
    return sim.kernel.now_ns


def test_n_reports_emitted_at_once_leave_the_sa_one_service_time_apart() -> None:
    sim = _up(preset("ft2-36"), cls=LeaveTimes)
    _subscribers(sim, 5)
    start = _idle(sim)
    sim.report_left_ns.clear()
    assert sim.sa.report_notice(_notice(sim), start) == 5
    sim.pump(sim.sm_node, sim.sm_engine)
    sim.run()
    s = sim.latency.sa_ns
    # The k-th of N leaves at start + k*s.
    assert sim.report_left_ns == [start + k * s for k in range(1, 6)]
    server = sim.server(sim.sm_engine)
    assert server.max_queue >= 5


def test_reports_arriving_while_the_engine_is_busy_wait_their_turn() -> None:
    """The five ReportResps come back while the SA still sends Reports; each is
    handled one service time after the work before it, so the SA is busy without a
    gap from the first Report to the last ReportResp: 10 service times."""
    sim = _up(preset("ft2-36"), latency=LatencyModel(sa_ns=100_000))
    _subscribers(sim, 5)
    start = _idle(sim)
    acked: list[int] = []
    sim.add_event_hook(lambda node, e: acked.append(e.time_ns), ReportAcked)
    sim.sa.report_notice(_notice(sim), start)
    sim.pump(sim.sm_node, sim.sm_engine)
    sim.run()
    s = 100_000
    # Each ReportResp is back a few microseconds after its Report left, well
    # within one service time, so it waits: the engine sees the k-th at
    # start + 5s + (k-1)s (it is handled during the following s).
    assert acked == [start + 5 * s + k * s for k in range(5)]
    assert sim.server(sim.sm_engine).busy_until_ns == start + 10 * s


def _wire_bytes_of_a_mad() -> int:
    # LRH 8 + BTH 12 + DETH 8 + MAD 256 + ICRC 4 + VCRC 2 (IBA Vol 1, 5.4).
    return 8 + 12 + 8 + 256 + 4 + 2


def _same_leaf_cas(sim: SubnetSim, count: int) -> list[int]:
    """`count` CAs other than the SM's, cabled to the same leaf switch."""
    by_leaf: dict[int, list[int]] = {}
    for node in sim.fabric.cas:
        if node.index == sim.sm_node:
            continue
        far = sim.peer[node.index][1]
        assert far is not None
        by_leaf.setdefault(far[0], []).append(node.index)
    return next(cas for cas in by_leaf.values() if len(cas) >= count)[:count]


def _mad_to(sim: SubnetSim, src: int, dst: int, tid: int) -> Datagram:
    payload = bytearray(256)
    payload[0], payload[1], payload[2], payload[3] = 1, 0x0A, 1, 0x06  # vendor class, Send
    payload[8:16] = tid.to_bytes(8, "big")
    return Datagram(
        bytes(payload),
        1,
        sim.agents[src].port_lid(1),
        sim.agents[dst].port_lid(1),
        QP1,
        QP1,
        qkey=QP1_QKEY,
    )


def test_a_burst_through_one_port_arrives_spaced_by_its_serialisation_time() -> None:
    fabric = preset("ft2-36")
    link = fabric.links[0]
    assert (link.width, link.speed) == (LinkWidth.X4, LinkSpeed.SDR)
    sim = _up(fabric)
    src, dst = _same_leaf_cas(sim, 2)
    sender, receiver = Burst(), Burst()
    sim.attach(src, sender, 0)
    sim.attach(dst, receiver, 0, gsi_classes=(0x0A,))
    start = _idle(sim)
    sender.outbox = [_mad_to(sim, src, dst, tid) for tid in range(4)]
    sim.pump(src, sender, 0)
    sim.run()
    # 4x SDR: 4 lanes x 2.5 Gb/s x 8/10 (8b/10b) = 8 Gb/s, i.e. 8 bits per ns.
    assert data_rate_gbps(LinkWidth.X4, LinkSpeed.SDR) == 8
    ser = _wire_bytes_of_a_mad() * 8 // 8  # 290 ns
    lat = sim.latency
    # Head: out of the CA, over a cable, through the leaf (cut-through), over a
    # cable; delivered when the tail is in. The k-th waits k*ser at the CA's port.
    first = start + lat.cable_ns + lat.switch_ns + lat.cable_ns + ser
    assert receiver.arrived_ns == [first + k * ser for k in range(4)]


def test_packets_from_two_ports_queue_at_the_switch_output_port() -> None:
    sim = _up(preset("ft2-36"))
    a, b, dst = _same_leaf_cas(sim, 3)
    senders = [Burst(), Burst()]
    receiver = Burst()
    sim.attach(a, senders[0], 0)
    sim.attach(b, senders[1], 0)
    sim.attach(dst, receiver, 0, gsi_classes=(0x0A,))
    start = _idle(sim)
    senders[0].outbox = [_mad_to(sim, a, dst, 1)]
    senders[1].outbox = [_mad_to(sim, b, dst, 2)]
    sim.pump(a, senders[0], 0)
    sim.pump(b, senders[1], 0)
    sim.run()
    ser = _wire_bytes_of_a_mad()  # ns at 8 Gb/s
    lat = sim.latency
    first = start + 2 * lat.cable_ns + lat.switch_ns + ser
    # Both reach the leaf at once; the second waits for the output port.
    assert receiver.arrived_ns == [first, first + ser]


def test_without_contention_a_burst_arrives_at_once() -> None:
    sim = _up(preset("ft2-36"), latency=LatencyModel(contention=False))
    src, dst = _same_leaf_cas(sim, 2)
    sender, receiver = Burst(), Burst()
    sim.attach(src, sender, 0)
    sim.attach(dst, receiver, 0, gsi_classes=(0x0A,))
    start = _idle(sim)
    sender.outbox = [_mad_to(sim, src, dst, tid) for tid in range(3)]
    sim.pump(src, sender, 0)
    sim.run()
    lat = sim.latency
    assert receiver.arrived_ns == [start + 2 * lat.link_ns + lat.switch_ns] * 3


def _report_resends(contention: bool) -> tuple[list[tuple[int, int, int]], int]:
    """Two subscribers; the SA takes 150 ms per MAD. (tid, attempt, time) of every
    Report sent after the notice, and the time of the notice."""
    latency = LatencyModel(sa_ns=150_000_000, contention=contention)
    sim = _up(preset("ft2-36"), latency=latency)
    _subscribers(sim, 2)
    start = _idle(sim)
    sent: list[tuple[int, int, int]] = []
    sim.add_event_hook(lambda node, e: sent.append((e.tid, e.attempt, e.time_ns)), ReportSent)
    sim.sa.report_notice(_notice(sim), start)
    sim.pump(sim.sm_node, sim.sm_engine)
    sim.run()
    return sent, start


def test_a_report_resp_waiting_in_the_sa_queue_is_not_late() -> None:
    """Two Reports emitted at t=0 leave at 150 ms and 300 ms; each ReportResp is back
    at the SA's port a few microseconds after its Report left, and waits behind the
    SA's work (the second Report, then the first ReportResp). The 200 ms timeout
    counts from each Report's departure and stops when its ReportResp reaches the
    port, as in the kernel MAD layer (`ibmig.core.sa.admin`): no resend, although
    the second ReportResp is read at 600 ms. (Counting from emission and until the
    SA reads it, both Reports were resent.)"""
    sent, start = _report_resends(contention=True)
    assert [(attempt, t - start) for _, attempt, t in sent] == [(0, 0), (0, 0)]

    sent, start = _report_resends(contention=False)
    assert [attempt for _, attempt, _ in sent] == [0, 0]


def test_a_report_whose_resp_is_late_because_of_queueing_at_the_subscriber_is_resent() -> None:
    """One subscriber that takes p = 60 ms per MAD it reads and per MAD it sends gets
    two Reports, which leave the SA at s and 2s (s = the SA's service time). The
    first ReportResp leaves the subscriber 2p after the first Report arrives (read,
    then sent), well within the 200 ms timeout; the second Report waits for that,
    and its ReportResp leaves 4p = 240 ms after the first Report arrived: past
    200 ms after the second Report left. So the SA resends the second Report at
    exactly 2s + 200 ms, its departure plus OpenSM's transaction timeout, with the
    same TID; the late ReportResp still retires it and the answer to the resend
    finds nothing to match."""
    sim = _up(preset("ft2-36"))
    host = next(n for n in sim.fabric.cas if n.index != sim.sm_node)
    subscriber = Subscriber(1, sim.agents[host.index].port_lid(1), sim.sm.db.sm_lid)
    sim.attach(host.index, subscriber, 60_000_000, gsi_classes=(MgmtClass.SUBN_ADM,))
    sim.pump(host.index, subscriber, 0)
    sim.run()
    assert subscriber.subscribed
    start = _idle(sim)
    sent: list[tuple[int, int, int]] = []
    acked: list[int] = []
    sim.add_event_hook(lambda node, e: sent.append((e.tid, e.attempt, e.time_ns)), ReportSent)
    sim.add_event_hook(lambda node, e: acked.append(e.tid), ReportAcked)
    assert sim.sa.report_notice(_notice(sim), start) == 1
    assert sim.sa.report_notice(_notice(sim), start) == 1
    sim.pump(sim.sm_node, sim.sm_engine)
    sim.run()
    s = sim.latency.sa_ns
    tids = [tid for tid, attempt, _ in sent if attempt == 0]
    assert [(attempt, t - start) for _, attempt, t in sent] == [
        (0, 0),
        (0, 0),
        (1, 2 * s + 200_000_000),
    ]
    assert sent[2][0] == tids[1]
    assert sorted(acked) == sorted(tids)
    assert sim.sa.counters["report_retransmissions"] == 1
    assert sim.sa.counters["report_resp_unmatched"] == 1
    assert sim.sa.outstanding_reports == 0


def _first_fit(busy: list[tuple[int, int]], ready_ns: int, ser_ns: int) -> int:
    """The reference: the first start from `ready_ns` at which `ser_ns` fits between
    the intervals held (half open: touching is free), found by trying each end."""
    candidates = sorted({ready_ns} | {end for _, end in busy if end > ready_ns})
    return next(
        t for t in candidates if all(end <= t or start >= t + ser_ns for start, end in busy)
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3_000),  # time passing before the packet is sent
            st.lists(st.integers(0, 3), min_size=1, max_size=4),  # its ports
            st.integers(0, 2_000),  # when it leaves its engine, from now
            st.sampled_from([40, 290, 2_100]),  # its size on the wire
        ),
        max_size=60,
    )
)
def test_reserving_a_path_books_each_port_at_its_first_fit(
    packets: list[tuple[int, list[int], int, int]],
) -> None:
    """Whatever a port holds (idle, booked back to back, booked ahead with gaps to
    fill, far more intervals than are kept unpruned), a packet gets each port of its
    path at the first free interval from when its head gets there, and the delay
    returned is when its tail reaches the end: checked against first fit over every
    interval ever booked, pruned or not. The ports run at 8 bits per ns (4x SDR)."""
    fabric = preset("ft2-36")
    sim = SubnetSim(fabric)
    sim.kernel.now_ns = 1_000
    one, two = (node.index for node in fabric.switches[:2])
    ports = [sim._calendar(node, port) for node, port in ((one, 1), (one, 2), (two, 1), (two, 3))]
    lat = sim.latency
    step = lat.cable_ns + lat.switch_ns
    busy: list[list[tuple[int, int]]] = [[] for _ in ports]
    for passing, path, delay, size in packets:
        sim.kernel.now_ns += passing
        now = sim.kernel.now_ns
        ser = size  # ns: 8 bits a byte at 8 bits a ns
        t = now + delay
        for hop in path:
            t = _first_fit(busy[hop], t, ser)
            busy[hop].append((t, t + ser))
            t += step
        expected = t - lat.switch_ns + ser - now
        assert sim._reserve(tuple(ports[hop] for hop in path), size, delay) == expected


def _fabric_ports(sim: SubnetSim, count: int) -> list[int]:
    """Calendar indices of `count` switch ports of `sim` (4x SDR: 8 bits per ns)."""
    return [
        sim._calendar(node.index, port)
        for node in sim.fabric.switches
        for port in range(1, node.num_ports + 1)
    ][:count]


def _busy(sim: SubnetSim, port: int, now_ns: int) -> list[tuple[int, int]]:
    """When the port is busy from `now_ns` on: its intervals, touching ones merged."""
    held = sim._ahead[port]
    pairs = (
        list(zip(*held, strict=True))
        if held is not None
        else [(sim._busy_start[port], sim._busy_end[port])]
    )
    merged: list[tuple[int, int]] = []
    for start, end in sorted(pairs):
        if end <= now_ns:
            continue
        if merged and merged[-1][1] >= start:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((max(start, now_ns), end))
    return merged


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(  # bookings already held: (ports, ready from now, size)
        st.tuples(
            st.lists(st.integers(0, 8), min_size=1, max_size=3),
            st.integers(0, 3_000),
            st.sampled_from([40, 290]),
        ),
        max_size=6,
    ),
    st.lists(  # the burst: (a port per level, or -1 to stop there; ready step; size)
        st.tuples(
            st.lists(st.integers(-1, 2), min_size=3, max_size=3),
            st.integers(0, 400),
            st.sampled_from([40, 290, 2_100]),
        ),
        min_size=1,
        max_size=40,
    ),
    st.booleans(),  # a packet ready before the one emitted before it
    st.lists(st.tuples(st.integers(0, 8), st.integers(0, 5_000)), max_size=8),  # after
)
def test_a_burst_books_as_one_packet_after_another_would(
    held: list[tuple[list[int], int, int]],
    burst: list[tuple[list[int], int, int]],
    disorder: bool,
    after: list[tuple[int, int]],
) -> None:
    """`_book_burst` books a burst a hop at a time; whenever it does (and says None,
    booking nothing, when it cannot), every packet's delay and every later booking
    are what booking the packets one after another gives."""
    fabric = preset("ft2-36")
    sims = [SubnetSim(fabric), SubnetSim(fabric)]
    calendars = []
    for sim in sims:
        sim.kernel.now_ns = 10_000
        calendars.append(_fabric_ports(sim, 9))
        for ports, delay, size in held:
            sim._reserve(tuple(calendars[-1][p] for p in ports), size, delay)
    # Level j of a path is one of ports 3j..3j+2: each port one hop of every path.
    paths, sizes, ready = [], [], []
    t = sims[0].kernel.now_ns
    for levels, gap, size in burst:
        ports = []
        for level, choice in enumerate(levels):
            if choice < 0:
                break
            ports.append(3 * level + choice)
        paths.append(tuple(calendars[0][p] for p in ports or [0]))
        sizes.append(size)
        t += gap
        ready.append(t)
    if disorder and len(ready) > 1:
        ready[-1] = ready[0] - 1  # reaches the first port before the one before it
    booked = sims[0]._book_burst(paths, [8 * size for size in sizes], ready)
    one_by_one = [
        sims[1]._reserve(path, size, when - sims[1].kernel.now_ns)
        for path, size, when in zip(paths, sizes, ready, strict=True)
    ]
    if booked is None:
        booked = [
            sims[0]._reserve(path, size, when - sims[0].kernel.now_ns)
            for path, size, when in zip(paths, sizes, ready, strict=True)
        ]
    assert booked == one_by_one
    now = sims[0].kernel.now_ns
    assert [_busy(sims[0], port, now) for port in calendars[0]] == [
        _busy(sims[1], port, now) for port in calendars[1]
    ]
    for port, later in after:
        results = []
        for sim, calendar in zip(sims, calendars, strict=True):
            sim.kernel.now_ns += 97  # some of what was booked is past by now
            results.append(sim._reserve((calendar[port],), 290, later))
        assert results[0] == results[1]
