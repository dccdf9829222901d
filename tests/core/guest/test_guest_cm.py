"""The connection manager: REQ/REP/RTU, time-outs and retries, REJ, DREQ/DREP,
replacement of a client's old connection, and the CM state table."""

from __future__ import annotations

import itertools
from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from ibmig.core.engine import QP1, Datagram
from ibmig.core.guest import (
    CM_TRANSITIONS,
    CmState,
    CmTransitionError,
    ConnectFailed,
    ConnectionBroken,
    ConnectionUp,
    MessageDelivered,
    PathUnregistered,
    QpState,
    RcQp,
    cm_ack_timeout,
    cm_timeout_ns,
    iba_time_ns,
    parse_cma_header,
)
from ibmig.core.guest.cm import Connection
from ibmig.wire.cm import CmMad, Drep, Dreq, Rej, RejReason, Rep, Req, Rtu
from tests.core.guest.guest_util import FAST, QKEY, Wire, gid

S_GUID, S_LID, S_IP = 0x100, 10, "10.0.0.1"
C_GUID, C_LID, C_IP = 0x200, 20, "10.0.0.2"


def two(config_c: object = FAST, **kwargs: object) -> Wire:
    wire = Wire()
    wire.add("s", S_GUID, S_LID, ip=S_IP)
    wire.add("c", C_GUID, C_LID, ip=C_IP, peers=[(S_IP, S_GUID)], config=config_c, **kwargs)  # type: ignore[arg-type]
    return wire


def cm_messages(wire: Wire, name: str) -> list[CmMad]:
    return [CmMad.unpack(d.payload) for d in wire.sent_by(name) if d.payload[1] == 0x07]


def first_cm_datagram(wire: Wire, name: str) -> Datagram:
    return next(d for d in wire.sent_by(name) if d.payload[1] == 0x07)


def test_connection_setup() -> None:
    wire = two()
    wire.run_for(20_000)
    c, s = wire.guests["c"], wire.guests["s"]
    client_cm = cm_messages(wire, "c")
    server_cm = cm_messages(wire, "s")
    assert [type(m.message) for m in client_cm] == [Req, Rtu]
    assert [type(m.message) for m in server_cm] == [Rep]
    req_mad, rtu_mad = client_cm
    req = req_mad.message
    assert isinstance(req, Req)
    # REQ carries the PathRecord's primary path and the stack's CM parameters.
    assert req.service_id == 0x0000_0000_0106_0000 + 18515
    path = req.primary_path
    assert (path.local_lid, path.remote_lid) == (C_LID, S_LID)
    assert (path.local_gid, path.remote_gid) == (gid(C_GUID), gid(S_GUID))
    assert (path.sl, path.packet_rate, path.local_ack_timeout) == (0, 7, FAST.local_ack_timeout)
    assert path.subnet_local
    assert req.path_packet_payload_mtu == 4
    assert req.partition_key == 0xFFFF
    assert req.retry_count == FAST.retry_count
    assert req.max_cm_retries == FAST.max_cm_retries
    assert req.local_cm_response_timeout == req.remote_cm_response_timeout == 10
    assert req.local_ca_guid == C_GUID
    assert parse_cma_header(req.private_data) == (IPv4Address(C_IP), IPv4Address(S_IP))
    client_conn = c.connections()[0]
    assert req.local_comm_id == client_conn.local_comm_id
    assert req.local_qpn == client_conn.qp.qpn
    assert req.starting_psn == client_conn.starting_psn
    rep = server_cm[0].message
    assert isinstance(rep, Rep)
    server_conn = s.connections()[0]
    assert rep.remote_comm_id == req.local_comm_id
    assert rep.local_comm_id == server_conn.local_comm_id
    assert rep.local_qpn == server_conn.qp.qpn
    assert server_cm[0].tid == req_mad.tid == rtu_mad.tid  # REP and RTU keep the REQ's TID
    rtu = rtu_mad.message
    assert isinstance(rtu, Rtu)
    assert (rtu.local_comm_id, rtu.remote_comm_id) == (req.local_comm_id, rep.local_comm_id)
    # Both QPs are in RTS, pointing at each other.
    assert client_conn.state is server_conn.state is CmState.ESTABLISHED
    assert client_conn.qp.state is server_conn.qp.state is QpState.RTS
    assert client_conn.qp.remote_qpn == server_conn.qp.qpn
    assert server_conn.qp.remote_qpn == client_conn.qp.qpn
    assert server_conn.qp.rq_psn == (req.starting_psn + len(wire.events_of(MessageDelivered))) & (
        (1 << 24) - 1
    )
    ups = wire.events_of(ConnectionUp)
    assert [(e.role, e.peer_lid) for e in ups] == [("client", S_LID), ("server", C_LID)]
    # The server learned the client's IP address from the REQ's private data.
    entry = s.neighbours.get(IPv4Address(C_IP))
    assert entry is not None and (entry.gid, entry.lid) == (gid(C_GUID), C_LID)


def test_cm_mads_are_addressed_with_grh() -> None:
    wire = two()
    wire.run_for(5_000)
    for name, lid, peer_lid, own, peer in (
        ("c", C_LID, S_LID, C_GUID, S_GUID),
        ("s", S_LID, C_LID, S_GUID, C_GUID),
    ):
        for d in wire.sent_by(name):
            if d.payload[1] != 0x07:
                continue
            assert (d.sqp, d.dqp, d.qkey, d.opcode) == (QP1, QP1, QKEY, 0x64)
            assert (d.slid, d.dlid) == (lid, peer_lid)
            assert (d.sgid, d.dgid) == (gid(own), gid(peer))


def test_req_time_out_and_retries() -> None:
    wire = two()
    wire.drop_lids.add(S_LID)
    wire.run_for(120_000_000)
    reqs = [(t, d) for t, n, d in wire.sent if n == "c" and d.payload[1] == 0x07]
    # 2 * PacketLifeTime + Remote CM Response Timeout, as Linux converts them
    # (cm_convert_to_ms): 0 -> 1 ms, 10 -> 4 ms.
    timeout = 2 * cm_timeout_ns(0) + cm_timeout_ns(10)
    assert timeout == 6_000_000
    first_attempt = reqs[: 1 + FAST.max_cm_retries]
    times = [t for t, _ in first_attempt]
    assert [b - a for a, b in itertools.pairwise(times)] == [timeout] * FAST.max_cm_retries
    comm_ids = {CmMad.unpack(d.payload).message.local_comm_id for _, d in first_attempt}
    assert len(comm_ids) == 1  # resends of one REQ
    failures = wire.events_of(ConnectFailed)
    assert failures[0].reason == "cm_timeout"
    assert failures[0].time_ns == times[-1] + timeout
    assert failures[0].backoff_ns == FAST.reconnect_backoff_ns
    # The next attempt starts after the backoff, with a new comm ID.
    next_req = reqs[1 + FAST.max_cm_retries]
    assert next_req[0] == failures[0].time_ns + FAST.reconnect_backoff_ns
    assert CmMad.unpack(next_req[1].payload).message.local_comm_id not in comm_ids
    # Backoff doubles per consecutive failure, up to the ceiling.
    assert [f.backoff_ns for f in failures[:4]] == [500_000, 1_000_000, 2_000_000, 4_000_000]
    assert wire.guests["c"].sent["cm_req"] == len(reqs)


def test_reject_for_an_unknown_service() -> None:
    wire = two(replace(FAST, service_port=1234))
    wire.run_for(3_000_000)
    rejs = [m.message for m in cm_messages(wire, "s") if isinstance(m.message, Rej)]
    assert rejs
    assert rejs[0].reason == RejReason.INVALID_SERVICE_ID
    assert rejs[0].message_rejected == 0  # the REQ
    failures = wire.events_of(ConnectFailed, "c")
    assert failures[0].reason == "rejected_0x08"
    assert [f.backoff_ns for f in failures[:3]] == [500_000, 1_000_000, 2_000_000]
    assert not wire.guests["s"].connections()
    assert not wire.events_of(ConnectionUp)


def test_disconnect_with_dreq_and_drep() -> None:
    wire = two()
    wire.run_for(50_000)
    c, s = wire.guests["c"], wire.guests["s"]
    server_qpn = s.connections()[0].qp.qpn
    c.remove_peer(S_IP, wire.now)
    wire.pump("c")
    wire.run_for(10_000)
    dreqs = [m for m in cm_messages(wire, "c") if isinstance(m.message, Dreq)]
    dreps = [m for m in cm_messages(wire, "s") if isinstance(m.message, Drep)]
    assert len(dreqs) == len(dreps) == 1
    assert dreps[0].tid == dreqs[0].tid
    dreq = dreqs[0].message
    assert isinstance(dreq, Dreq)
    assert dreq.remote_qpn_eecn == server_qpn
    assert not c.connections() and not s.connections()
    broken = wire.events_of(ConnectionBroken)
    assert [(e.role, e.reason) for e in broken] == [
        ("client", "disconnected"),
        ("server", "disconnect_request"),
    ]
    assert ("c", PathUnregistered(gid(S_GUID))) in [(n, m) for _, n, m in wire.intra]
    assert c.sent["cm_dreq"] == 1 and s.sent["cm_drep"] == 1


def test_dreq_is_resent_then_given_up() -> None:
    wire = two()
    wire.run_for(50_000)
    c = wire.guests["c"]
    wire.drop_lids.add(S_LID)
    c.remove_peer(S_IP, wire.now)
    wire.pump("c")
    wire.run_for(30_000_000)
    assert c.sent["cm_dreq"] == 1 + FAST.max_cm_retries
    assert c.counters["dreq_timeout"] == 1
    assert not c.connections()


def test_dreq_for_an_unknown_connection_is_answered() -> None:
    wire = two()
    wire.run_for(20_000)
    s = wire.guests["s"]
    stray = CmMad(Dreq(0xDEAD, 0xBEEF, 0), tid=9).pack()
    s.receive(first_cm_datagram(wire, "c")._replace(payload=stray), wire.now)
    wire.pump("s")
    drep = cm_messages(wire, "s")[-1]
    assert isinstance(drep.message, Drep)
    assert (drep.message.local_comm_id, drep.message.remote_comm_id) == (0xBEEF, 0xDEAD)
    assert s.counters["dreq_unknown"] == 1


def test_lost_rep_is_resent_after_the_reqs_response_timeout() -> None:
    wire = two()
    wire.run_until(2_999)  # the REQ reaches the server at 3 us, which answers at once
    wire.drop_lids.add(C_LID)
    wire.run_until(3_500)
    wire.drop_lids.clear()
    wire.run_for(10_000_000)
    s = wire.guests["s"]
    reps = [t for t, n, d in wire.sent if n == "s" and d.payload[1] == 0x07]
    # The passive side waits the REQ's Local CM Response Timeout for the RTU, which
    # is shorter than the active side's wait for the REP (no PacketLifeTime added).
    assert reps == [3_000, 3_000 + cm_timeout_ns(FAST.cm_response_timeout)]
    assert wire.guests["c"].sent["cm_req"] == 1
    assert len(s.server_connections()) == 1
    assert len(wire.events_of(ConnectionUp, "s")) == 1
    assert wire.events_of(MessageDelivered)


def test_resent_req_draws_the_same_rep() -> None:
    wire = two()
    wire.run_until(3_000)  # the server has answered the REQ and waits for the RTU
    s = wire.guests["s"]
    req = first_cm_datagram(wire, "c")
    s.receive(req, wire.now)
    wire.pump("s")
    reps = [d for d in wire.sent_by("s") if d.payload[1] == 0x07]
    assert len(reps) == 2 and reps[0].payload == reps[1].payload
    assert len(s.connections()) == 1
    wire.run_for(100_000)
    s.receive(req, wire.now)  # once established, a stale REQ is ignored
    wire.pump("s")
    assert s.counters["req_duplicate"] == 1
    assert len(wire.events_of(ConnectionUp, "s")) == 1


def test_lost_rtu_first_send_establishes() -> None:
    wire = two()
    wire.run_until(3_999)
    wire.drop_lids.add(S_LID)
    wire.run_until(4_000)  # the RTU leaves now and is lost
    wire.drop_lids.clear()
    wire.run_for(100_000)
    s = wire.guests["s"]
    up = wire.events_of(ConnectionUp, "s")
    first = wire.events_of(MessageDelivered)[0]
    assert len(up) == 1 and up[0].time_ns == first.time_ns
    assert s.connections()[0].qp.state is QpState.RTS


def test_new_req_replaces_the_clients_old_connection() -> None:
    wire = two()
    wire.run_for(50_000)
    s, c = wire.guests["s"], wire.guests["c"]
    old = s.server_connections()[(gid(C_GUID), FAST.service_id)]
    # The client VM is paused and resumed in place: a new REQ, same GID and service.
    c.detach(wire.now)
    c.resume(wire.now, port_num=1, lid=C_LID, gid=gid(C_GUID), sa_lid=1)
    wire.pump("c")
    wire.run_for(50_000)
    new = s.server_connections()[(gid(C_GUID), FAST.service_id)]
    assert new is not old and old.state is CmState.CLOSED
    assert len(s.connections()) == 1
    replaced = [e for e in wire.events_of(ConnectionBroken, "s") if e.reason == "replaced"]
    assert len(replaced) == 1
    assert s.qp(old.qp.qpn) is None
    # Messages keep their sequence numbers across the reconnection.
    seqs = [e.seq for e in wire.events_of(MessageDelivered)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_rep_for_an_unknown_connection_is_rejected() -> None:
    wire = two()
    wire.run_for(20_000)
    c = wire.guests["c"]
    template = first_cm_datagram(wire, "s")
    stray = CmMad(Rep(local_comm_id=0x1234, remote_comm_id=0x9999), tid=5).pack()
    c.receive(template._replace(payload=stray), wire.now)
    wire.pump("c")
    rej = cm_messages(wire, "c")[-1].message
    assert isinstance(rej, Rej)
    assert rej.reason == RejReason.INVALID_COMM_ID and rej.remote_comm_id == 0x1234


# --- the state table ----------------------------------------------------------------


def _conn_in(state: CmState) -> Connection:
    conn = Connection("client", 1, 2, bytes(16), 3, 0, RcQp(0x100))
    path = {
        CmState.IDLE: [],
        CmState.REQ_SENT: [CmState.REQ_SENT],
        CmState.REP_SENT: [CmState.REP_SENT],
        CmState.ESTABLISHED: [CmState.REQ_SENT, CmState.ESTABLISHED],
        CmState.DREQ_SENT: [CmState.REQ_SENT, CmState.ESTABLISHED, CmState.DREQ_SENT],
        CmState.CLOSED: [CmState.CLOSED],
    }[state]
    for step in path:
        conn.transition(step)
    return conn


@pytest.mark.parametrize(("start", "target"), list(itertools.product(list(CmState), repeat=2)))
def test_cm_transitions_follow_the_table(start: CmState, target: CmState) -> None:
    conn = _conn_in(start)
    if target in CM_TRANSITIONS[start]:
        conn.transition(target)
        assert conn.state is target
    else:
        with pytest.raises(CmTransitionError):
            conn.transition(target)


def test_local_ack_timeout_from_the_path_as_linux_ib_cm() -> None:
    wire = Wire()
    wire.sa.packet_life_time = 4
    config = replace(FAST, local_ack_timeout=None)
    wire.add("s", S_GUID, S_LID, ip=S_IP, config=config)
    wire.add("c", C_GUID, C_LID, ip=C_IP, peers=[(S_IP, S_GUID)], config=config)
    wire.drop_lids.add(S_LID)
    wire.run_for(7_000_000)
    reqs = [(t, CmMad.unpack(d.payload).message) for t, n, d in wire.sent
            if n == "c" and d.payload[1] == 0x07]  # fmt: skip
    req = reqs[0][1]
    assert isinstance(req, Req)
    assert req.primary_path.local_ack_timeout == cm_ack_timeout(FAST.ca_ack_delay, 4) == 16
    # The REP wait counts the round trip: 2 * PacketLifeTime + Remote CM Response Timeout.
    assert reqs[1][0] - reqs[0][0] == 2 * cm_timeout_ns(4) + cm_timeout_ns(10)
    wire.drop_lids.clear()
    wire.run_for(10_000_000)
    conn = wire.guests["c"].connections()[0]
    assert conn.qp.timeout_ns == iba_time_ns(16)


def test_active_qp_timeout_takes_the_rep_target_ack_delay_as_linux() -> None:
    # cm_format_req puts cm_ack_timeout(own ACK delay, PacketLifeTime) in the REQ (the
    # passive side's QP takes it); cm_rep_handler gives the active QP
    # cm_ack_timeout(REP Target ACK Delay, PacketLifeTime).
    wire = Wire()
    wire.sa.packet_life_time = 4
    client = replace(FAST, local_ack_timeout=None)
    server = replace(client, ca_ack_delay=20)
    wire.add("s", S_GUID, S_LID, ip=S_IP, config=server)
    wire.add("c", C_GUID, C_LID, ip=C_IP, peers=[(S_IP, S_GUID)], config=client)
    wire.run_for(1_000_000)
    assert cm_ack_timeout(16, 4) == 16 and cm_ack_timeout(20, 4) == 20
    (c_conn,) = wire.guests["c"].connections()
    (s_conn,) = wire.guests["s"].server_connections().values()
    assert c_conn.qp.timeout_ns == iba_time_ns(20)
    assert s_conn.qp.timeout_ns == iba_time_ns(16)
