"""HCAs as vSwitches (ibmig.fabric.vswitch): the topology, and ibmig's SM finding
every VF by SMP discovery, giving it a LID and routing it through the vSwitch."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from ibmig.core.sm.manager import SmConfig
from ibmig.errors import ConfigError
from ibmig.fabric import Fabric, NodeType, load_topology, parse_net, write_net
from ibmig.fabric.vswitch import VF_GUID_STEP, VSWITCH_GUID_FLAG, embed_vswitches
from ibmig.ibsim.harness import Harness
from ibmig.sim.subnet import SubnetSim
from tests.ibsim.conftest import ibsim_tools

__all__ = ["ibsim_tools"]  # the fixture that fails rather than skips under CI=true

HOSTS = ("h0_1", "h1_0", "h3_8")
VFS = 4


def fabric() -> tuple[Fabric, Fabric]:
    plain = load_topology("ft2-36")
    return plain, embed_vswitches(plain, HOSTS, VFS)


def test_each_named_ca_moves_behind_a_vswitch_with_a_port_per_vf() -> None:
    plain, vsw = fabric()
    assert vsw.num_switches == plain.num_switches + len(HOSTS)
    assert vsw.num_cas == plain.num_cas + len(HOSTS) * VFS
    assert len(vsw.links) == len(plain.links) + len(HOSTS) * (1 + VFS)
    for name in HOSTS:
        old_pf, pf = plain.node_by_name(name), vsw.node_by_name(name)
        # The PF keeps its GUIDs: a hypervisor's port GUID does not change.
        assert (pf.node_guid, pf.node_type, pf.num_ports) == (old_pf.node_guid, NodeType.CA, 1)
        assert vsw.port(pf.index, 1).port_guid == plain.port(old_pf.index, 1).port_guid
        switch = vsw.node_by_name(f"{name}-vsw")
        assert switch.is_switch and switch.num_ports == VFS + 2
        assert switch.node_guid == old_pf.node_guid | VSWITCH_GUID_FLAG
        # Port 1: the PF's old cable, to the same leaf port.
        old_peer = plain.peer(old_pf.index, 1)
        up = vsw.peer(switch.index, 1)
        assert old_peer is not None and up is not None
        assert (vsw.nodes[up.node_index].name, up.port_num) == (
            plain.nodes[old_peer.node_index].name,
            old_peer.port_num,
        )
        pf_end = vsw.peer(switch.index, 2)
        assert pf_end is not None and pf_end.node_index == pf.index
        for vf in range(1, VFS + 1):
            node = vsw.node_by_name(f"{name}-vf{vf}")
            assert (node.node_type, node.num_ports) == (NodeType.CA, 1)
            assert node.node_guid == switch.node_guid + vf * VF_GUID_STEP
            assert vsw.port(node.index, 1).port_guid == node.node_guid + 1
            end = vsw.peer(switch.index, vf + 2)
            assert end is not None and end.node_index == node.index
    # Every other node and cable is as it was.
    for node in plain.nodes:
        if node.name not in HOSTS:
            assert vsw.node_by_name(node.name).node_guid == node.node_guid


@pytest.mark.parametrize(
    ("cas", "vfs", "error"),
    [
        (["nope"], 4, "no node named 'nope'"),
        (["leaf0"], 4, "not a one-port channel adapter"),
        (["h0_1"], 0, "1..252 VFs"),
        (["h0_1"], 253, "1..252 VFs"),
    ],
)
def test_bad_requests_are_config_errors(cas: list[str], vfs: int, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        embed_vswitches(load_topology("ft2-36"), cas, vfs)


def egress(sim: SubnetSim, switch: int, lid: int) -> int:
    """The node a packet for `lid` entering `switch` reaches, walking the LFTs the
    switches hold."""
    node = switch
    for _ in range(16):
        if not sim.fabric.nodes[node].is_switch:
            return node
        port = sim.agents[node].lft[lid]
        peer = sim.fabric.peer(node, port)
        assert peer is not None, f"{sim.fabric.nodes[node].name} sends LID {lid} to port {port}"
        node = peer.node_index
    raise AssertionError(f"LID {lid} loops")


@pytest.mark.parametrize("routing", ["minhop", "updn"])
def test_the_sm_discovers_every_vf_gives_it_a_lid_and_routes_it_through_its_vswitch(
    routing: str,
) -> None:
    _, vsw = fabric()
    sim = SubnetSim(vsw, sm_config=SmConfig(routing=routing))
    sim.start()
    up = sim.run_until_up()
    assert up is not None
    assert up.nodes == len(vsw.nodes)  # the vSwitches and VFs were found by SMPs
    end_ports = [n for n in vsw.nodes if not n.is_switch]
    lids = {n.name: sim.agents[n.index].port_lid(1) for n in end_ports}
    assert all(lids.values()) and len(set(lids.values())) == len(lids)
    switches = [n.index for n in vsw.nodes if n.is_switch]
    for name in HOSTS:
        vswitch = vsw.node_by_name(f"{name}-vsw").index
        for vf in range(1, VFS + 1):
            node = vsw.node_by_name(f"{name}-vf{vf}")
            lid = lids[node.name]
            # The vSwitch's own LFT leads the VF's LID to the VF's port, and every
            # switch of the fabric reaches the VF through it.
            assert sim.agents[vswitch].lft[lid] == vf + 2
            assert all(egress(sim, s, lid) == node.index for s in switches)
        assert all(egress(sim, s, lids[name]) == vsw.node_by_name(name).index for s in switches)


@pytest.mark.interop
def test_on_ibsim_every_vf_answers_at_the_lid_ibmigs_sm_gave_it(
    ibsim_tools: None, ibsim_run: Callable[[Path], str], tmp_path: Path
) -> None:
    """ibsim holds the same vSwitch fabric (ibnetdiscover sees it), and ibmig's SM on
    it finds every VF by SMPs: an SMP sent to each VF's LID, forwarded by the LFTs
    ibsim's switches hold (the vSwitches' included), reaches that VF's port."""
    _, vsw = fabric()
    path = tmp_path / "vswitch.net"
    write_net(vsw, path)
    discovered = parse_net(ibsim_run(path), source="ibnetdiscover", as_ibsim=False)
    assert sorted(n.node_guid for n in discovered.nodes) == sorted(n.node_guid for n in vsw.nodes)
    dump = tmp_path / "dump.json"
    with Harness() as harness:
        ibsim = harness.start_ibsim(path)
        sm = harness.start_ibmig_sm(ibsim, args=["--routing", "updn", "--dump", str(dump)])
        sm.wait_up(120)
        ports = {p["port_guid"]: p["lid"] for p in json.loads(dump.read_text())["ports"]}
        for name in HOSTS:
            switch = vsw.node_by_name(f"{name}-vsw")
            info = harness.tool(
                ibsim, ["smpquery", "nodeinfo", str(ports[f"0x{switch.node_guid:016x}"])]
            )
            assert re.search(r"^NodeType:\.+Switch", info.stdout, re.M), info.stdout
            for vf in range(1, VFS + 1):
                node = vsw.node_by_name(f"{name}-vf{vf}")
                guid = vsw.port(node.index, 1).port_guid
                lid = ports[f"0x{guid:016x}"]
                answer = harness.tool(ibsim, ["smpquery", "portinfo", str(lid), "1"])
                assert re.search(rf"^Lid:\.+{lid}$", answer.stdout, re.M), answer.stdout
                guidinfo = harness.tool(ibsim, ["smpquery", "nodeinfo", str(lid)])
                assert re.search(rf"^PortGuid:\.+0x{guid:016x}$", guidinfo.stdout, re.M)
        sm.stop()
