"""The SM brings simulated subnets up; the programmed LFTs are checked independently
of the routing engine that computed them (walks through the tables the switches'
agents hold)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from ibmig.core.engine import Datagram
from ibmig.core.sm.manager import RoutingFallback, SmConfig, SubnetManager, SubnetUp
from ibmig.core.sm.routing import (
    RoutingInput,
    check_all_pairs,
    is_shortest,
    obeys_updown,
)
from ibmig.core.sm.routing_base import U8Array
from ibmig.fabric import Fabric, preset, read_net
from ibmig.sim.subnet import SubnetSim, TraceWriter
from ibmig.wire.capture import CaptureWriter, read_capture
from ibmig.wire.packet import Packet
from ibmig.wire.smp_attrs import PortState
from tests.shared_files import TOPOLOGIES
from tests.wire.tshark_util import tshark_fields

SMALL = ["ft2-36.net", "ft3-32.net", "ibsim-example.net.2sw2path4hca"]
LARGE = ["ft2-324.net", "ft2-648.net", "ft3-1296.net", "ft3-3240.net"]


def shared(name: str) -> Fabric:
    return read_net(TOPOLOGIES / name)


def programmed_lfts(sim: SubnetSim) -> tuple[U8Array, RoutingInput]:
    """The LFTs as the switches hold them, rows in the SM's switch order."""
    sm = sim.sm
    inp = sm.routing_input
    assert inp is not None
    index = {node.node_guid: node.index for node in sim.fabric.nodes}
    rows = [
        np.frombuffer(bytes(sim.agents[index[guid]].lft[: inp.max_lid + 1]), dtype=np.uint8)
        for guid in sm.switch_order
    ]
    return np.stack(rows), inp


def bring_up(
    fabric: Fabric,
    routing: str = "minhop",
    fallbacks: list[RoutingFallback] | None = None,
    **kwargs: object,
) -> SubnetSim:
    """Bring `fabric` up; the SM's RoutingFallback events go to `fallbacks`."""
    sim = SubnetSim(fabric, sm_config=SmConfig(routing=routing), **kwargs)  # type: ignore[arg-type]
    if fallbacks is not None:
        sim.add_event_hook(lambda node, event: fallbacks.append(event), RoutingFallback)
    sim.start()
    up = sim.run_until_up()
    assert isinstance(up, SubnetUp)
    return sim


def check_subnet(sim: SubnetSim, routing: str) -> None:
    fabric = sim.fabric
    lft, inp = programmed_lfts(sim)
    check_all_pairs(lft, inp)  # raises naming the first unreachable pair
    # Every cabled CA port is Active with a unique LID, as the SM recorded it.
    lids = set()
    for node in fabric.cas:
        agent = sim.agents[node.index]
        for port in node.port_nums:
            if fabric.peer(node.index, port) is None:
                continue
            assert agent.port_state(port) == PortState.ACTIVE
            lid = agent.port_lid(port)
            assert lid not in lids
            lids.add(lid)
            guid = fabric.ports[node.port_index(port)].port_guid
            assert sim.sm.db.port_lid[guid] == lid
    assert len(sim.sm.db.lid_owner) == len(lids) + fabric.num_switches
    result = sim.sm.routing_result
    assert result is not None
    if routing == "minhop":
        assert is_shortest(lft, inp)
    elif result.engine == routing:
        assert result.ranks is not None
        assert obeys_updown(lft, inp, result.ranks)
    assert sim.stats.drops == {}


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("routing", ["minhop", "updn", "ftree"])
def test_small_shared_topologies_come_up(name: str, routing: str) -> None:
    fell_back: list[RoutingFallback] = []
    sim = bring_up(shared(name), routing, fell_back)
    if routing == "ftree" and name.startswith("ibsim-example"):
        # ibsim's example cables its two switches to each other: not a fat tree, so
        # ftree refuses it (as OpenSM's does) and minhop routes it.
        assert [e.engine for e in fell_back] == ["ftree"]
        check_subnet(sim, "minhop")
        return
    assert fell_back == []
    check_subnet(sim, routing)


def test_the_fallback_check_sees_a_fallback() -> None:
    """The check above can fail: bring_up collects the SM's RoutingFallback events
    (it once filtered `subnet_up_events`, which only ever holds SubnetUp)."""
    from ibmig.fabric import random_topology

    fell_back: list[RoutingFallback] = []
    bring_up(random_topology(8, 12, seed=3, max_degree=4), "ftree", fell_back)
    assert [e.engine for e in fell_back] == ["ftree"]


def test_ftree_on_a_non_fat_tree_falls_back_to_minhop() -> None:
    from ibmig.fabric import random_topology

    fabric = random_topology(8, 12, seed=3, max_degree=4)
    sim = SubnetSim(fabric, sm_config=SmConfig(routing="ftree"))
    events: list[object] = []
    sim.event_hooks.append(lambda node, event: events.append(event))
    sim.start()
    assert sim.run_until_up() is not None
    assert any(isinstance(e, RoutingFallback) for e in events)
    assert sim.sm.routing_result is not None and sim.sm.routing_result.engine == "minhop"
    check_subnet(sim, "minhop")


@pytest.mark.parametrize("routing", ["minhop", "updn"])
@pytest.mark.parametrize("seed", [1, 2])
def test_irregular_topologies_come_up(routing: str, seed: int) -> None:
    from ibmig.fabric import random_topology

    sim = bring_up(random_topology(12, 30, seed=seed, max_degree=5), routing)
    check_subnet(sim, routing)


@pytest.mark.slow
@pytest.mark.parametrize("name", LARGE)
@pytest.mark.parametrize("routing", ["minhop", "updn", "ftree"])
def test_large_shared_topologies_come_up(name: str, routing: str) -> None:
    check_subnet(bring_up(shared(name), routing), routing)


@pytest.mark.slow
@pytest.mark.parametrize("routing", ["minhop", "updn", "ftree"])
def test_11664_host_fat_tree_comes_up(routing: str) -> None:
    fabric = preset("ft3-11664")
    assert fabric.num_cas == 11_664
    check_subnet(bring_up(fabric, routing), routing)


def test_smp_count_is_below_opensm_on_ft2_36() -> None:
    # OpenSM 3.3.23 on ibsim: 1,275 SMPs for ft2-36 (../shared/reference-notes.md).
    sim = bring_up(shared("ft2-36.net"))
    assert sim.sm.smps_sent < 1_275


def _trace(seed: int) -> tuple[str, bytes]:
    stream = io.StringIO()
    capture = io.BytesIO()
    bring_up(
        shared("ft3-32.net"), seed=seed, trace=TraceWriter(stream), capture=CaptureWriter(capture)
    )
    return stream.getvalue(), capture.getvalue()


def test_same_topology_and_seed_give_a_byte_identical_trace() -> None:
    trace, capture = _trace(5)
    assert trace.count("\n") > 100
    assert (trace, capture) == _trace(5)
    # The seed reaches the SM (its TIDs), so the captured bytes differ, but nothing
    # else in a loss-free bring-up is random: the event trace is the same.
    other_trace, other_capture = _trace(6)
    assert other_capture != capture
    assert other_trace == trace


def test_lost_smps_are_retransmitted() -> None:
    fabric = shared("ft2-36.net")
    sim = SubnetSim(fabric, sm_config=SmConfig(max_retries=12))
    sw = next(n for n in fabric.switches if any(fabric.peer(n.index, p) for p in n.port_nums))
    port = next(p for p in range(1, sw.num_ports + 1) if fabric.peer(sw.index, p) is not None)
    sim.set_link_loss(sw.index, port, 0.3)
    sim.start()
    assert sim.run_until_up() is not None
    assert sim.stats.drops["lost"] > 0
    # Every lost request or response costs the SM one timeout and one retransmission.
    assert sim.sm.retransmissions == sim.stats.drops["lost"]
    sim.set_link_loss(sw.index, port, 0.0)
    check_subnet_after_loss(sim)


def check_subnet_after_loss(sim: SubnetSim) -> None:
    lft, inp = programmed_lfts(sim)
    check_all_pairs(lft, inp)


def test_link_down_and_up_resweeps_without_rediscovery() -> None:
    fabric = shared("ft3-32.net")
    sim = bring_up(fabric)
    first_sweep_smps = sim.sm.smps_sent
    # A leaf-to-mid cable: both ends are switches.
    link = next(
        lk
        for lk in fabric.links
        if fabric.nodes[lk.node_a].is_switch and fabric.nodes[lk.node_b].is_switch
    )
    sim.set_link(link.node_a, link.port_a, False)
    sim.run()  # both switches trap: one light resweep each, then quiet
    assert sim.sm.subnet_up and sim.sm.sweep in (2, 3)
    down_smps = sim.sm.smps_sent - first_sweep_smps
    assert 0 < down_smps < first_sweep_smps / 4  # light resweep, not a full one
    lft, inp = programmed_lfts(sim)
    check_all_pairs(lft, inp)
    switch_links = [
        lk
        for lk in fabric.links
        if fabric.nodes[lk.node_a].is_switch and fabric.nodes[lk.node_b].is_switch
    ]
    assert len(inp.links) == len(switch_links) - 1
    sweeps = sim.sm.sweep
    sim.set_link(link.node_a, link.port_a, True)
    sim.run()
    assert sim.sm.subnet_up and sim.sm.sweep > sweeps
    lft, inp = programmed_lfts(sim)
    check_all_pairs(lft, inp)
    assert is_shortest(lft, inp)


def test_host_link_down_removes_the_port_and_up_restores_its_lid() -> None:
    fabric = shared("ft2-36.net")
    sim = bring_up(fabric)
    host = fabric.cas[-1]
    guid = fabric.ports[host.port_index(1)].port_guid
    lid = sim.sm.db.port_lid[guid]
    sim.set_link(host.index, 1, False)
    sim.run()
    assert guid not in sim.sm.db.port_lid
    sim.set_link(host.index, 1, True)
    sim.run()
    assert sim.sm.db.port_lid[guid] == lid  # LIDs are stable across resweeps
    assert sim.agents[host.index].port_state(1) == PortState.ACTIVE


def test_unchanged_lft_blocks_are_not_rewritten() -> None:
    sim = bring_up(shared("ft2-36.net"))
    sm: SubnetManager = sim.sm
    before = sm.smp_counts.copy()
    sim.start()  # a second heavy sweep
    assert sim.run_until_up() is not None
    delta = sm.smp_counts - before
    lft_sets = sum(v for (attr, method), v in delta.items() if attr == 0x0019 and method == 0x02)
    assert lft_sets == 0
    assert sum(delta.values()) > 0


@pytest.mark.interop
def test_tshark_decodes_a_bring_up_capture_with_correct_crcs(tshark: str, tmp_path: Path) -> None:
    path = tmp_path / "up.pcap"
    with path.open("wb") as stream:
        bring_up(shared("ft2-36.net"), capture=CaptureWriter(stream))
    captured = read_capture(path)
    assert len(captured) > 1_000
    packets = [Packet.unpack(c.data) for c in captured]
    assert all(p.icrc_ok and p.vcrc_ok for p in packets)
    sample = [c.data for c in captured[:300]]
    fields = tshark_fields(
        tmp_path, sample, ["infiniband.mad.attributeid", "infiniband.mad.transactionid"]
    )
    for packet, decoded in zip(packets[:300], fields, strict=True):
        payload = packet.payload
        assert int(decoded["infiniband.mad.attributeid"][0], 0) == (payload[16] << 8 | payload[17])
        assert int(decoded["infiniband.mad.transactionid"][0], 0) == int.from_bytes(
            payload[8:16], "big"
        )


def test_ibmig_path_asks_the_sa_and_prints_the_route() -> None:
    from ibmig.cli.path import run_path

    fabric = shared("ft2-36.net")
    out = io.StringIO()
    assert run_path(fabric, "h0_0", "h3_8", routing="minhop", out=out) == 0
    text = out.getvalue()
    assert "  DGID              fe80::10:47\n" in text
    assert "route (4 links):" in text  # host, leaf, spine, leaf, host
    assert text.rstrip().endswith("-> h3_8[1] (LID 43)")


def _memo_matches_fresh_walks(sim: SubnetSim) -> None:
    for (node, port, dlid, management), route in sim._routes.items():
        assert sim._walk(node, port, dlid, management) == route


def test_memoised_routes_follow_link_lft_and_port_changes() -> None:
    fabric = shared("ft3-32.net")
    sim = bring_up(fabric)
    arrivals: list[tuple[int, int, int]] = []
    deliver = sim._deliver

    def record(arg: tuple[int, Datagram]) -> None:
        node, datagram = arg
        if datagram.dqp == 2:
            arrivals.append((node, datagram.port, sim.kernel.now_ns))
        deliver(arg)

    sim._deliver = record  # type: ignore[method-assign]
    src, dst = fabric.cas[0], fabric.cas[-1]
    dst_lid = sim.agents[dst.index].port_lid(1)
    src_lid = sim.agents[src.index].port_lid(1)

    def settle() -> None:
        # Bounded: with stale routes the SM's sweeps may never settle.
        sim.run(until_ns=sim.kernel.now_ns + 2_000_000_000)

    def send() -> None:
        sim.send(src.index, Datagram(bytes(64), 1, src_lid, dst_lid, 2, 2, opcode=0x04))
        settle()

    send()
    send()  # the second from the memo
    assert [a[:2] for a in arrivals] == [(dst.index, 1)] * 2
    assert sim._routes and len(sim._routes) == 1
    _memo_matches_fresh_walks(sim)

    # The destination's cable goes: data is dropped where it went, not where it was.
    sim.set_link(dst.index, 1, False)
    drops = sim.stats.drops["link_down"] + sim.stats.drops["port_not_active"]
    send()
    assert len(arrivals) == 2
    assert sim.stats.drops["link_down"] + sim.stats.drops["port_not_active"] == drops + 1
    sim.set_link(dst.index, 1, True)
    settle()  # the SM brings the port back to Active (an SMA port state change)
    send()
    assert arrivals[-1][:2] == (dst.index, 1)
    _memo_matches_fresh_walks(sim)

    # A switch-to-switch cable on the way goes: the SM reprograms LFTs, packets
    # take the new route and the memo agrees with a fresh walk.
    first_switch = sim.peer[src.index][1]
    assert first_switch is not None
    leaf = first_switch[0]
    uplink = sim.agents[leaf].lft[dst_lid]
    sim.set_link(leaf, uplink, False)
    settle()
    assert sim.agents[leaf].lft[dst_lid] != uplink
    send()
    assert arrivals[-1][:2] == (dst.index, 1)
    _memo_matches_fresh_walks(sim)
