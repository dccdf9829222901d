"""The switch settings OpenSM makes and its PathRecord values, against `ibmig sm
--ibsim` on the same ibsim fabric (issue 12, item 4).

On ft2-36, after SUBNET UP, read with `smpquery` and `saquery` from the same CA:

- every linked port of a leaf switch and of a spine: VLStallCount and HOQLife
  (OpenSM: 7 and 16 toward a CA, 7 and 18 toward a switch; osm_link_mgr.c with
  osm_base.h's defaults);
- every switch's SwitchInfo LifeTimeValue (OpenSM: 18, its packet_life_time) and
  PortStateChange (OpenSM clears it: ibsim sets it when links come up);
- PathRecords from the CA to a CA on its leaf, to a CA on another leaf, to its
  leaf switch, to a spine and to itself, and from the leaf switch to a CA: MTU,
  rate and PacketLifeTime with their selectors. MTU toward a switch is 1024 for
  both (the switch's port 0 MTUCap; its NeighborMTU is 256 on ibsim).

PacketLifeTime: OpenSM gives its subnet_timeout (18, 0x92 with the selector
"exactly") to every path but a loopback one (0x80); so does ibmig by default
(`--packet-life-time 18` said explicitly here), and with `--packet-life-time hops`
the hop-based value (`SaConfig.hop_packet_life_time`, 16 per link: 16 for one link,
17 for two, 18 for three or four). Both runs of ibmig are checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ibmig.fabric import Fabric
from ibmig.ibsim.harness import Harness, Ibsim

pytestmark = pytest.mark.interop

PORT_LINE = re.compile(r"^(SW|CA)\s+(\d+)\s+\d+\s+(0x[0-9a-f]+)", re.MULTILINE)
FIELD = re.compile(r"^\s*(\w[\w/ ]*?)\s*:?\.{2,}\s*(\S+)", re.MULTILINE)
PATH_FIELDS = ("mtu", "rate", "pkt_life")
# (name, source, destination): "ca" is the CA the tools run at, "near" a CA on its
# leaf, "far" a CA on another leaf, "leaf" its leaf switch, "spine" a spine.
PATHS = (
    ("to a CA on the same leaf", "ca", "near"),
    ("to a CA on another leaf", "ca", "far"),
    ("to its leaf switch", "ca", "leaf"),
    ("to a spine", "ca", "spine"),
    ("to itself", "ca", "ca"),
    ("from the leaf switch to a CA", "leaf", "far"),
)
HOPS = {  # links crossed on ft2-36 (minhop)
    "to a CA on the same leaf": 2,
    "to a CA on another leaf": 4,
    "to its leaf switch": 1,
    "to a spine": 2,
    "to itself": 0,
    "from the leaf switch to a CA": 3,
}


@dataclass
class Seen:
    port_timeouts: dict[tuple[str, int], tuple[str, str]]  # (switch, port): stall, hoq
    switch_info: dict[str, tuple[str, str]]  # switch: LifeTime, StateChange
    paths: dict[str, dict[str, str]]  # path name: field -> value
    leaf_ports_to_cas: set[int]  # ports toward a CA (on the leaf; a spine has none)
    leaf: str


def _fields(text: str) -> dict[str, str]:
    return {key.strip(): value for key, value in FIELD.findall(text)}


def _ends(fabric: Fabric) -> tuple[dict[str, int], int, int]:
    """GUIDs of the named end ports (the tools run at the first CA), the leaf's
    node index and a spine's."""

    def switch_of(ca_index: int) -> int:
        peer = fabric.peer(ca_index, 1)
        assert peer is not None
        return peer.node_index

    ca = fabric.cas[0]
    leaf = switch_of(ca.index)
    near = next(c for c in fabric.cas[1:] if switch_of(c.index) == leaf)
    far = next(c for c in fabric.cas if switch_of(c.index) != leaf)
    spine = next(
        s
        for s in fabric.switches
        if all(
            (peer := fabric.peer(s.index, p)) is None or fabric.nodes[peer.node_index].is_switch
            for p in range(1, s.num_ports + 1)
        )
    )
    guids = {
        "ca": fabric.port(ca.index, 1).port_guid,
        "near": fabric.port(near.index, 1).port_guid,
        "far": fabric.port(far.index, 1).port_guid,
        "leaf": fabric.nodes[leaf].node_guid,
        "spine": spine.node_guid,
    }
    return guids, leaf, spine.index


def _look(harness: Harness, sim: Ibsim) -> Seen:
    fabric = sim.fabric
    listing = harness.tool(sim, ["ibnetdiscover", "-p"]).stdout
    lid_of = {int(guid, 16): int(lid) for _, lid, guid in PORT_LINE.findall(listing)}
    guids, leaf_index, spine_index = _ends(fabric)
    timeouts: dict[tuple[str, int], tuple[str, str]] = {}
    leaf_to_cas: set[int] = set()
    for index in (leaf_index, spine_index):
        node = fabric.nodes[index]
        lid = lid_of[node.node_guid]
        for port in range(1, node.num_ports + 1):
            peer = fabric.peer(index, port)
            if peer is None:
                continue
            if not fabric.nodes[peer.node_index].is_switch:
                leaf_to_cas.add(port)
            text = harness.tool(sim, ["smpquery", "portinfo", str(lid), str(port)]).stdout
            info = _fields(text)
            timeouts[(node.name, port)] = (info["VLStallCount"], info["HoqLife"])
    switch_info = {}
    for node in fabric.switches:
        text = harness.tool(sim, ["smpquery", "switchinfo", str(lid_of[node.node_guid])]).stdout
        info = _fields(text)
        switch_info[node.name] = (info["LifeTime"], info["StateChange"])
    paths = {}
    for name, src, dst in PATHS:
        route = f"{lid_of[guids[src]]}:{lid_of[guids[dst]]}"
        text = harness.tool(sim, ["saquery", "-p", "--src-to-dst", route]).stdout
        found = _fields(text)
        paths[name] = {key: found[key] for key in PATH_FIELDS}
    return Seen(timeouts, switch_info, paths, leaf_to_cas, fabric.nodes[leaf_index].name)


@pytest.fixture(scope="module")
def seen(ibsim_tools: None, net_file: Callable[[str], Path]) -> Iterator[dict[str, Seen]]:
    found = {}
    for side in ("opensm", "ibmig", "ibmig-plt18"):
        with Harness() as harness:
            sim = harness.start_ibsim(net_file("ft2-36"))
            if side == "opensm":
                harness.start_opensm(sim).wait_up(120)
            else:
                args = ["--packet-life-time", "18" if side == "ibmig-plt18" else "hops"]
                harness.start_ibmig_sm(sim, args=args).wait_up(120)
            found[side] = _look(harness, sim)
    yield found


def test_opensm_sets_what_the_reference_notes_say(seen: dict[str, Seen]) -> None:
    osm = seen["opensm"]
    assert osm.leaf_ports_to_cas
    assert len({switch for switch, _ in osm.port_timeouts}) == 2  # the leaf and a spine
    for (switch, port), value in osm.port_timeouts.items():
        to_ca = switch == osm.leaf and port in osm.leaf_ports_to_cas
        assert value == ("7", "16" if to_ca else "18"), (switch, port)
    assert set(osm.switch_info.values()) == {("18", "0")}
    for name, _, _ in PATHS:
        # selector "exactly" (2) in bits 7..6; 0 for a loopback path (IBA Table 205)
        assert osm.paths[name]["pkt_life"] == ("0x80" if name == "to itself" else "0x92"), name


@pytest.mark.parametrize("side", ["ibmig", "ibmig-plt18"])
def test_switch_settings_are_opensm_s(seen: dict[str, Seen], side: str) -> None:
    assert seen[side].port_timeouts == seen["opensm"].port_timeouts
    assert seen[side].switch_info == seen["opensm"].switch_info


def test_path_records_are_opensm_s_with_its_packet_life_time(seen: dict[str, Seen]) -> None:
    assert seen["ibmig-plt18"].paths == seen["opensm"].paths


def test_default_packet_life_time_is_hop_based_the_rest_is_opensm_s(
    seen: dict[str, Seen],
) -> None:
    for name, _, _ in PATHS:
        ours, theirs = seen["ibmig"].paths[name], seen["opensm"].paths[name]
        assert (ours["mtu"], ours["rate"]) == (theirs["mtu"], theirs["rate"]), name
        hops = HOPS[name]
        # 16 per link, one more per doubling of links (paths.hop_packet_life_time)
        want = 0 if hops == 0 else 16 + (hops - 1).bit_length()
        assert ours["pkt_life"] == f"{0x80 | want:#x}", name
    mtu_to_switch = seen["opensm"].paths["to its leaf switch"]["mtu"]
    assert mtu_to_switch == "0x83"  # exactly 1024: the switch's port 0 MTUCap
