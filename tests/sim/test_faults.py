"""Faults during bring-up (issue 13): the SM's own cable failing, parts of the
fabric it cannot reach, lost SMPs, more end ports than unicast LIDs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ibmig.cli import main
from ibmig.core.sm import manager
from ibmig.core.sm.manager import SmPortDown, SweepFailed
from ibmig.experiments.bringup import BringUp
from ibmig.fabric import Fabric, find_node, load_topology, parse_net
from ibmig.fabric.generators import fat_tree_2level
from ibmig.sim.subnet import SubnetSim
from ibmig.wire.smp_attrs import PortState


def chain(switches: int, island: bool = False) -> str:
    """`switches` switches in a line, a CA at each end (h0 hosts the SM); with
    `island`, two more cabled to each other and to nothing else."""
    lines = ['Hca 1 "h0"', '[1] "s0"[1]', ""]
    for i in range(switches):
        lines.append(f'Switch 3 "s{i}"')
        lines.append(f'[1] "{f"s{i - 1}" if i else "h0"}"[{2 if i else 1}]')
        lines.append(f'[2] "{f"s{i + 1}" if i + 1 < switches else "h1"}"[1]')
        lines.append("")
    lines += ['Hca 1 "h1"', f'[1] "s{switches - 1}"[2]', ""]
    if island:
        lines += [
            'Switch 3 "lost_sw"',
            '[1] "lost_ca"[1]',
            "",
            'Hca 1 "lost_ca"',
            '[1] "lost_sw"[1]',
        ]
    return "\n".join(lines) + "\n"


def fabric_of(text: str) -> Fabric:
    return parse_net(text, source="chain.net")


def unconfigured_cas(sim: SubnetSim) -> list[str]:
    bad = []
    for node in sim.fabric.nodes:
        if node.is_switch or node.name in ("lost_ca",):
            continue
        agent = sim.agents[node.index]
        if agent.port_lid(1) == 0 or agent.port_state(1) != PortState.ACTIVE:
            bad.append(node.name)
    return bad


# --- 1. the SM's own cable ---------------------------------------------------------


@pytest.mark.parametrize(
    ("sm_node", "link"), [(None, "h0_0:1"), (None, "leaf0:1"), ("h1_0", "leaf1:1")]
)
def test_sm_link_failing_ends_with_sm_port_down(sm_node: str | None, link: str) -> None:
    fabric = load_topology("ft2-36")
    job = BringUp(fabric, sm_node=sm_node)
    assert job.sweep("bring-up", first=True).up is not None
    node, _, port = link.rpartition(":")
    index = find_node(fabric, node)
    events: list[object] = []
    job.sim.add_event_hook(lambda _n, e: events.append(e), SmPortDown)
    job.sim.set_link(index, int(port), False)
    down = job.sweep("down")  # looped for ever before
    assert down.up is None
    assert down.failure == "the SM's port is down"
    assert len(events) == 1
    assert not job.sim.sm.subnet_up
    job.sim.set_link(index, int(port), True)
    back = job.sweep("up")
    assert back.up is not None
    assert unconfigured_cas(job.sim) == []


def test_up_cli_reports_sm_port_down(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "ft2-36", "--fail-link", "h0_0:1"]) == 0
    out = capsys.readouterr().out
    assert "link h0_0[1] down: the SM's port is down; subnet not up" in out
    assert "link h0_0[1] up: SUBNET UP" in out


# --- 2. islands and the hop limit -------------------------------------------------------


def test_island_is_named() -> None:
    job = BringUp(fabric_of(chain(3, island=True)))
    report = job.sweep("bring-up", first=True)
    assert report.up is not None  # the reachable part comes up, as with OpenSM
    assert report.unreached == ["lost_sw", "lost_ca"]
    assert report.beyond_hop_limit == []


def test_chain_beyond_directed_route_limit_is_named(tmp_path: Path) -> None:
    text = chain(300)
    job = BringUp(fabric_of(text))
    report = job.sweep("bring-up", first=True)
    assert report.up is not None
    # h0 -> s0 is one hop: s62 is 63 hops away, the last a directed route reaches.
    assert report.beyond_hop_limit == [f"s{i}" for i in range(63, 300)] + ["h1"]
    assert report.unreached == []
    assert job.sim.sm.hop_limited_ports  # the SM says where it had to stop
    net = tmp_path / "chain.net"
    net.write_text(text)
    out = io.StringIO()
    from ibmig.cli.up import print_sweep

    print_sweep(report, out)
    assert "238 nodes beyond the 63-hop limit of directed routes: s63, s64" in out.getvalue()


# --- 3. loss during bring-up ------------------------------------------------------------


@pytest.mark.parametrize(("rate", "seed"), [(0.05, 0), (0.05, 5), (0.1, 2), (0.2, 1)])
def test_lossy_bring_up_declares_up_only_when_every_ca_is_configured(
    rate: float, seed: int
) -> None:
    fabric = load_topology("ft2-36")
    sim = SubnetSim(fabric, seed=seed)
    for link in fabric.links:
        sim.set_link_loss(link.node_a, link.port_a, rate)
    sim.start()
    up = sim.run_until_up()
    assert up is not None
    assert sim.sm.retransmissions > 0
    assert unconfigured_cas(sim) == []


def test_permanent_loss_gives_up_without_subnet_up() -> None:
    fabric = load_topology("ft2-36")
    sim = SubnetSim(fabric, sm_config=manager.SmConfig(max_error_sweeps=2))
    leaf = find_node(fabric, "leaf1")
    sim.set_link_loss(leaf, 1, 1.0)
    sim.start()
    assert sim.run_until_up() is None
    assert "3 sweeps in a row had SMPs fail" in sim.sweep_failures[-1].reason


# --- 4. more end ports than unicast LIDs --------------------------------------------------


def test_lid_space_exhausted(monkeypatch: pytest.MonkeyPatch) -> None:
    # 43 end ports (36 CAs, 7 switches) against a LID space shrunk to 40.
    monkeypatch.setattr(manager, "MAX_UNICAST_LID", 40)
    sim = SubnetSim(load_topology("ft2-36"))
    sim.start()
    assert sim.run_until_up() is None
    failure = sim.sweep_failures[-1]
    assert isinstance(failure, SweepFailed)
    assert "needs 43 unicast LIDs" in failure.reason
    assert all(
        sim.agents[i].port_lid(1) <= 40 for i, n in enumerate(sim.fabric.nodes) if not n.is_switch
    )


def test_lid_space_exhausted_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(manager, "MAX_UNICAST_LID", 40)
    assert main(["up", "ft2-36"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "ft2-36: the fabric needs 43 unicast LIDs (one per end port); only 40 exist" in err[0]


# --- 5. a port found again ----------------------------------------------------------------


def test_a_port_found_again_gets_client_reregister_and_no_other() -> None:
    """A CA whose cable goes down is dropped by the SM's resweep; when it comes back,
    the SM sets ClientReregister on its port (OpenSM osm_lid_mgr.c: a port whose
    is_new is set), so its clients subscribe again after what they may have missed.
    The first bring-up sets it nowhere, and no other port gets it."""
    from ibmig.core.sma import ClientReregisterRequested

    sim = SubnetSim(load_topology("ft2-36"), seed=1)
    rereg: list[str] = []
    sim.add_event_hook(
        lambda node, event: rereg.append(sim.fabric.nodes[node].name), ClientReregisterRequested
    )
    sim.start()
    assert sim.run_until_up() is not None
    assert rereg == []
    last = sim.fabric.cas[-1]
    sim.set_link(last.index, 1, False)
    sim.run()
    assert sim.agents[last.index].port_state(1) != PortState.ACTIVE
    sim.set_link(last.index, 1, True)
    sim.run()
    assert sim.agents[last.index].port_state(1) == PortState.ACTIVE
    assert rereg == [last.name]


# --- 6. repair sweeps: same route for lost SMPs, rediscovery for broken routes ------------


def _sweep_log(sim: SubnetSim) -> list[object]:
    log: list[object] = []
    sim.add_event_hook(
        lambda _node, event: log.append(event),
        manager.SweepStarted,
        manager.SweepIncomplete,
        manager.SubnetUp,
        manager.SweepFailed,
    )
    return log


def test_lost_smps_are_repaired_along_the_same_route() -> None:
    """Every SMP across leaf1 port 1 is lost in the first sweep (the link is up, its
    route is sound), then the loss stops: the repair is a light sweep that sends the
    failed NodeInfo probe again along the same directed route, and nothing else is
    rediscovered."""
    fabric = load_topology("ft2-36")
    sim = SubnetSim(fabric, seed=0)
    leaf = find_node(fabric, "leaf1")
    sim.set_link_loss(leaf, 1, 1.0)
    log = _sweep_log(sim)
    failed: list[manager.SmpFailed] = []
    sim.add_event_hook(lambda _node, event: failed.append(event), manager.SmpFailed)
    sim.add_event_hook(
        lambda _node, _event: sim.set_link_loss(leaf, 1, 0.0), manager.SweepIncomplete
    )
    sim.start()
    up = sim.run_until_up()
    assert up is not None and up.sweep == 2
    kinds = [(type(e).__name__, getattr(e, "sweep", None), getattr(e, "light", None)) for e in log]
    assert kinds == [
        ("SweepStarted", 1, False),
        ("SweepIncomplete", 1, None),
        ("SweepStarted", 2, True),
        ("SubnetUp", 2, None),
    ]
    assert [(f.attribute_id, f.path) for f in failed] == [(0x0011, failed[0].path)]
    # Sweep 1 sent the NodeInfo Gets of a clean bring-up (the lost probe among them;
    # its resends count as retransmissions); the repair sent that probe once more.
    clean = SubnetSim(fabric, seed=0)
    clean.start()
    assert clean.run_until_up() is not None
    assert sim.sm.smp_counts[(0x0011, 0x01)] == clean.sm.smp_counts[(0x0011, 0x01)] + 1
    assert unconfigured_cas(sim) == []


def test_failed_gets_on_a_broken_route_are_not_resent_but_rediscovered() -> None:
    """The case Hypothesis found (tests/sim/test_subnet_stateful.py): leaf1 loses its
    host h1_0 and leaf0 its cable to spine0 at once. The light sweep for leaf1's trap
    reads leaf1 through leaf0 port 3 and loses every SMP; the repair sweep reads
    leaf0 (its trap came meanwhile) and loses them again; then the database knows
    that route is broken, and the next sweep rediscovers the subnet along working
    links instead of resending along it (which used to go on for 32 sweeps)."""
    fabric = fat_tree_2level(leaves=3, hosts_per_leaf=2, spines=2)
    sim = SubnetSim(fabric, seed=0)
    sim.start()
    assert sim.run_until_up() is not None
    log = _sweep_log(sim)
    sim.set_link(1, 1, False)  # leaf1 port 1 - h1_0
    sim.set_link(0, 3, False)  # leaf0 port 3 - spine0; the SM is on h0_0 behind leaf0
    sim.run(until_ns=sim.kernel.now_ns + 60_000_000_000)
    kinds = [(type(e).__name__, getattr(e, "sweep", None), getattr(e, "light", None)) for e in log]
    assert kinds[:6] == [
        ("SweepStarted", 2, True),
        ("SweepIncomplete", 2, None),
        ("SweepStarted", 3, True),
        ("SweepIncomplete", 3, None),
        ("SweepStarted", 4, False),  # the rediscovery
        ("SubnetUp", 4, None),
    ]
    assert not any(isinstance(e, manager.SweepFailed) for e in log)
    sm = sim.sm
    assert sm.subnet_up
    leaf1 = sm.db.nodes[fabric.nodes[1].node_guid]
    assert leaf1.path == (1, 4, 2)  # via spine1
    assert fabric.nodes[7].node_guid not in sm.db.nodes  # h1_0 is gone
    for index in (5, 6, 8, 9, 10):
        agent = sim.agents[index]
        guid = fabric.ports[fabric.nodes[index].port_index(1)].port_guid
        assert agent.port_state(1) == PortState.ACTIVE
        assert sm.db.port_lid[guid] == agent.port_lid(1) != 0
