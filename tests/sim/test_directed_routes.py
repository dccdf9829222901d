"""Directed-route SMPs through the simulated fabric: the walk's outcome, its timing
with and without contention, and its memo (forgotten on a link change)."""

from __future__ import annotations

import pytest

from ibmig.core.engine import Datagram
from ibmig.fabric import Fabric, find_node, parse_net
from ibmig.sim import subnet
from ibmig.sim.latency import LatencyModel
from ibmig.sim.subnet import SubnetSim
from ibmig.wire.smp import make_get
from ibmig.wire.smp_attrs import NodeInfo
from tests.sim.test_multicast import Listener

PERMISSIVE = 0xFFFF
RETURN_PATH = 192  # offset of the SMP's return path (IBA Vol 1, 14.2.1.2)

# h0 -[1] s0 [2]-[1] s1 [2]- h1: from h1, out of port 1 at every hop leads to h0.
CHAIN = """Hca 1 "h0"
[1] "s0"[1]

Switch 3 "s0"
[1] "h0"[1]
[2] "s1"[1]

Switch 3 "s1"
[1] "s0"[2]
[2] "h1"[1]

Hca 1 "h1"
[1] "s1"[2]
"""


class Recorder(Listener):
    """A `Listener` that also keeps when each datagram reached it (as the node's QP0
    manager: the SMAs' answers)."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[tuple[int, Datagram]] = []

    def receive(self, datagram: Datagram, now_ns: int) -> None:
        super().receive(datagram, now_ns)
        self.got.append((now_ns, datagram))


def chain_sim(contention: bool) -> tuple[SubnetSim, Fabric, Recorder]:
    fabric = parse_net(CHAIN, source="chain.net")
    sim = SubnetSim(fabric, latency=LatencyModel(contention=contention), sm_node="h0")
    recorder = Recorder()
    sim.attach(find_node(fabric, "h1"), recorder, 0, smi=True)
    return sim, fabric, recorder


def dr_get(path: tuple[int, ...], tid: int) -> Datagram:
    payload = make_get(NodeInfo.ATTRIBUTE_ID, tid=tid, path=path).pack()
    return Datagram(payload, 1, PERMISSIVE, PERMISSIVE, 0, 0)


def ask(sim: SubnetSim, fabric: Fabric, path: tuple[int, ...], tid: int) -> int:
    """Send a NodeInfo Get from h1 along `path`; the time it was sent."""
    sent = sim.kernel.now_ns
    sim.send(find_node(fabric, "h1"), dr_get(path, tid))
    sim.kernel.run()
    return sent


def test_a_directed_get_and_its_answer_retrace_the_path_in_the_fixed_delay_model() -> None:
    sim, fabric, recorder = chain_sim(contention=False)
    latency = sim.latency
    sent = ask(sim, fabric, (1, 1, 1), tid=1)
    ((arrived, answer),) = recorder.got
    # Three cables and two switches each way, and the SMA at h0 between them.
    one_way = 3 * latency.link_ns + 2 * latency.switch_ns
    assert arrived - sent == 2 * one_way + latency.sma_ns
    # The answer comes back with the ports the Get arrived by at each hop (14.2.2)
    # and its hop pointer run down to 0.
    assert answer.payload[RETURN_PATH + 1 : RETURN_PATH + 4] == bytes([2, 2, 1])
    assert answer.payload[6] == 0
    assert answer.payload[4] & 0x80  # returning


def test_the_memoised_walk_is_forgotten_when_a_cable_on_it_goes_down() -> None:
    sim, fabric, recorder = chain_sim(contention=False)
    first = ask(sim, fabric, (1, 1, 1), tid=1)
    second = ask(sim, fabric, (1, 1, 1), tid=2)
    (t1, _), (t2, a2) = recorder.got
    assert t2 - second == t1 - first  # the same walk, the same time
    assert a2.payload[RETURN_PATH + 1 : RETURN_PATH + 4] == bytes([2, 2, 1])
    s0 = find_node(fabric, "s0")
    sim.set_link(s0, 1, False)  # s0 - h0
    sim.kernel.run()
    ask(sim, fabric, (1, 1, 1), tid=3)
    assert len(recorder.got) == 2
    assert sim.stats.drops["link_down"] == 1
    sim.set_link(s0, 1, True)
    sim.kernel.run()
    ask(sim, fabric, (1, 1, 1), tid=4)
    assert len(recorder.got) == 3
    assert sim.stats.drops["link_down"] == 1


def test_a_channel_adapter_on_the_way_drops_the_smp() -> None:
    sim, fabric, recorder = chain_sim(contention=False)
    ask(sim, fabric, (1, 1, 1, 1), tid=1)  # one hop past h0
    assert recorder.got == []
    assert sim.stats.drops["dr_through_ca"] == 1


def test_answers_sent_at_once_arrive_one_serialisation_apart() -> None:
    sim, fabric, recorder = chain_sim(contention=True)
    latency = sim.latency
    h0 = find_node(fabric, "h0")
    # Two answers from h0 back to h1 as the SMA at h0 would send them: returning,
    # hop pointer past the last hop, the return path the Get wrote.
    packet = bytearray(dr_get((1, 1, 1), tid=1).payload)
    packet[3] = 0x81  # GetResp
    packet[4] |= 0x80
    packet[6] = 4
    packet[RETURN_PATH + 1 : RETURN_PATH + 4] = bytes([2, 2, 1])
    for tid in (1, 2):
        packet[8:16] = tid.to_bytes(8, "big")
        sim.send(h0, Datagram(bytes(packet), 1, PERMISSIVE, PERMISSIVE, 0, 0))
    sim.kernel.run()
    (t1, a1), (t2, a2) = recorder.got
    # 256 bytes of MAD, LRH 8, BTH 12, DETH 8, ICRC 4, VCRC 2 at 4x SDR (8 Gb/s).
    ser = (256 + 8 + 12 + 8 + 4 + 2) * 8 // 8
    assert t1 == 3 * latency.cable_ns + 2 * latency.switch_ns + ser
    assert t2 - t1 == ser  # the second waited for the first at h0's port
    assert a1.payload[6] == a2.payload[6] == 0


def test_a_full_memo_is_cleared_and_walks_come_out_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(subnet, "_DR_WALKS_KEPT", 1)
    sim, fabric, recorder = chain_sim(contention=False)
    sent = [ask(sim, fabric, path, tid) for tid, path in enumerate([(1, 1, 1), (1,), (1, 1, 1)])]
    assert [t - s for (t, _), s in zip(recorder.got, sent, strict=True)] == [
        2600,
        2080,
        2600,
    ]  # 2 x (3 x 40 + 2 x 90) or 2 x 40, + 2000
    assert len(sim._dr_walks) == 1
