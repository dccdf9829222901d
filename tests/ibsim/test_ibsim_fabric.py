"""`ibmig sm --ibsim` configures an ibsim fabric that the standard tools then check.

For each topology: our SM (a child process, exactly as a user runs it) brings the
fabric up; then infiniband-diags tools, attached through libumad2sim.so at other
nodes, see what it did: `ibnetdiscover` the whole fabric, `smpquery portinfo`
every CA port Active with the LID our SM assigned, `ibroute` every switch's LFT as
our SM computed it, `ibtracert` the same paths and hop counts as our LFT walk and
our SA's PathRecord, `saquery` our SA's PathRecord and NodeRecord, `sminfo` our
SM's ActCount.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ibmig.core.sa import SaConfig, hop_packet_life_time
from ibmig.fabric import Fabric
from ibmig.ibsim.harness import Harness, IbmigSm, Ibsim

pytestmark = pytest.mark.interop

TOPOLOGIES = ["ft2-36", "ft3-32", "ft2-324"]
UP_LINE = re.compile(
    r"^SUBNET UP sweep 1 \(heavy\): (\d+) SMPs in ([\d.]+) s \(CPU [\d.]+ s\), (\d+) nodes, "
    r"(\d+) end ports, "
    r"SM LID (\d+)$",
    re.MULTILINE,
)


@dataclass
class UpFabric:
    harness: Harness
    sim: Ibsim
    sm: IbmigSm
    fabric: Fabric
    up: re.Match[str]
    dump: dict[str, Any]
    lid_of_port_guid: dict[int, int]

    def tool(self, *argv: str, node: str | None = None) -> str:
        # Tools attach at the last CA: anywhere but the SM's node.
        where = node or self.fabric.cas[-1].name
        return self.harness.tool(self.sim, list(argv), node=where).stdout

    def lft(self, switch_guid: int) -> list[int]:
        table: list[int] = self.dump["lfts"][f"0x{switch_guid:016x}"]
        return table

    def ca_ports(self) -> list[tuple[str, int, int]]:
        """(node name, port, port GUID) of every cabled CA port."""
        fabric = self.fabric
        found = []
        for node in fabric.cas:
            for port in node.port_nums:
                if fabric.peer(node.index, port) is not None:
                    found.append((node.name, port, fabric.port(node.index, port).port_guid))
        return found


@pytest.fixture(scope="module", params=TOPOLOGIES)
def up(
    request: pytest.FixtureRequest, ibsim_tools: None, net_file: Callable[[str], Path]
) -> Iterator[UpFabric]:
    with Harness() as harness:
        sim = harness.start_ibsim(net_file(request.param))
        dump_path = harness.dir / "state.json"
        # Hop-based PacketLifeTime (not OpenSM's fixed 18), so that the PathRecords
        # below show the routes' hop counts.
        sm = harness.start_ibmig_sm(
            sim, args=["--dump", str(dump_path), "--packet-life-time", "hops"]
        )
        sm.wait_up(300)
        match = UP_LINE.search(sm.output())
        assert match is not None, sm.output()
        dump = json.loads(dump_path.read_text())
        lids = {int(p["port_guid"], 16): p["lid"] for p in dump["ports"]}
        yield UpFabric(harness, sim, sm, sim.fabric, match, dump, lids)
        assert sm.stop() == 0, sm.output()
        assert "SIGTERM, exiting" in sm.output()


def test_subnet_up_counts_every_node_and_end_port(up: UpFabric) -> None:
    fabric = up.fabric
    smps, _seconds, nodes, end_ports, sm_lid = up.up.groups()
    assert int(nodes) == len(fabric.nodes)
    assert int(end_ports) == fabric.num_switches + len(up.ca_ports())
    assert int(smps) > 0
    assert int(sm_lid) == up.dump["sm_lid"] > 0
    assert len(up.lid_of_port_guid) == int(end_ports)
    assert len(set(up.lid_of_port_guid.values())) == int(end_ports)  # LIDs are unique


def test_ibnetdiscover_sees_the_whole_fabric(up: UpFabric) -> None:
    text = up.tool("ibnetdiscover")
    guid_of: dict[str, int] = {}
    links: set[frozenset[tuple[int, int]]] = set()
    node_guid = 0
    for line in text.splitlines():
        header = re.match(r'^(Switch|Ca)\s+\d+\s+"([SH]-[0-9a-f]+)"', line)
        if header:
            node_guid = int(header.group(2)[2:], 16)
            guid_of[header.group(2)] = node_guid
            continue
        port = re.match(r'^\[(\d+)\]\s+"([SH])-([0-9a-f]+)"\[(\d+)\]', line)
        if port:
            links.add(
                frozenset(
                    {(node_guid, int(port.group(1))), (int(port.group(3), 16), int(port.group(4)))}
                )
            )
    fabric = up.fabric
    assert set(guid_of.values()) == {node.node_guid for node in fabric.nodes}
    expected = {
        frozenset(
            {
                (fabric.nodes[link.node_a].node_guid, link.port_a),
                (fabric.nodes[link.node_b].node_guid, link.port_b),
            }
        )
        for link in fabric.links
    }
    assert links == expected


def test_every_ca_port_is_active_with_the_lid_our_sm_assigned(up: UpFabric) -> None:
    sm_lid = up.dump["sm_lid"]

    def check(entry: tuple[str, int, int]) -> tuple[str, str | None]:
        name, _port, port_guid = entry
        lid = up.lid_of_port_guid[port_guid]
        # LID routed: it also proves the switches forward to this LID.
        text = up.tool("smpquery", "portinfo", str(lid))
        fields = dict(re.findall(r"^(\w+):\.+(.*)$", text, re.MULTILINE))
        problems = []
        if fields.get("Lid") != str(lid):
            problems.append(f"Lid {fields.get('Lid')} != {lid}")
        if fields.get("LinkState") != "Active":
            problems.append(f"LinkState {fields.get('LinkState')}")
        if fields.get("SMLid") != str(sm_lid):
            problems.append(f"SMLid {fields.get('SMLid')} != {sm_lid}")
        return name, "; ".join(problems) or None

    with ThreadPoolExecutor(max_workers=4) as pool:  # ibsim takes 10 clients at once
        results = list(pool.map(check, up.ca_ports()))
    bad = [f"{name}: {problem}" for name, problem in results if problem]
    assert not bad, bad[:10]


def test_ibroute_shows_our_lfts_on_every_switch(up: UpFabric) -> None:
    def check(switch_guid: int) -> str | None:
        lid = up.lid_of_port_guid[switch_guid]
        text = up.tool("ibroute", str(lid))
        shown = {
            int(lid_hex, 16): int(port)
            for lid_hex, port in re.findall(r"^(0x[0-9a-f]+) (\d+) :", text, re.MULTILINE)
        }
        ours = {
            dlid: port for dlid, port in enumerate(up.lft(switch_guid)) if dlid and port != 0xFF
        }
        return None if shown == ours else f"switch 0x{switch_guid:x}: {shown} != {ours}"

    switches = [node.node_guid for node in up.fabric.switches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        bad = [problem for problem in pool.map(check, switches) if problem]
    assert not bad, bad[:3]


def _lft_walk(up: UpFabric, src: tuple[str, int], dlid: int) -> list[tuple[int, int]]:
    """(node GUID, ingress port) of every node after the source, as our LFTs forward
    a packet for `dlid` from CA port `src`."""
    fabric = up.fabric
    node = fabric.node_by_name(src[0])
    peer = fabric.peer(node.index, src[1])
    assert peer is not None
    hops = []
    for _ in range(64):
        here = fabric.nodes[peer.node_index]
        hops.append((here.node_guid, peer.port_num))
        if not here.is_switch:
            return hops
        out = up.lft(here.node_guid)[dlid]
        assert out not in (0, 0xFF), f"{here.name} has no route to LID {dlid}"
        peer = fabric.peer(here.index, out)
        assert peer is not None
    raise AssertionError("routing loop")


def test_ibtracert_and_pathrecord_agree_with_our_routes(up: UpFabric) -> None:
    cas = up.ca_ports()
    pairs = random.Random(7).sample([(a, b) for a in cas for b in cas if a != b], 6)
    per_hop = SaConfig().hop_packet_life_time
    for (src_name, src_port, src_guid), (dst_name, _dst_port, dst_guid) in pairs:
        slid = up.lid_of_port_guid[src_guid]
        dlid = up.lid_of_port_guid[dst_guid]
        walk = _lft_walk(up, (src_name, src_port), dlid)
        trace = up.tool("ibtracert", str(slid), str(dlid))
        steps = re.findall(r"-> \w+ port \{0x([0-9a-f]+)\}\[(\d+)\]", trace)
        # ibtracert names a switch by its node GUID and a CA port by its port GUID.
        traced = [(int(guid, 16), int(port)) for guid, port in steps]
        expected = [
            (guid if up.fabric.node_by_guid(guid).is_switch else dst_guid, port)
            for guid, port in walk
        ]
        assert traced == expected, trace
        assert f"To ca {{0x{up.fabric.node_by_name(dst_name).node_guid:016x}}}" in trace
        record = up.tool("saquery", "--src-to-dst", f"{slid}:{dlid}")
        fields = dict(re.findall(r"^\s+(\w+)\.+(\S+)$", record, re.MULTILINE))
        assert int(fields["slid"]) == slid and int(fields["dlid"]) == dlid, record
        life = int(fields["pkt_life"], 16)
        # Selector "exactly" (2), and the hop-based PacketLifeTime of len(walk) links.
        assert life >> 6 == 2
        assert life & 0x3F == hop_packet_life_time(len(walk), per_hop)


def test_saquery_node_record_by_lid(up: UpFabric) -> None:
    fabric = up.fabric
    picks = random.Random(3).sample(up.dump["ports"], 5)
    for entry in picks:
        text = up.tool("saquery", "NR", str(entry["lid"]))
        fields = dict(re.findall(r"^\s+(\w+)\.+(.*)$", text, re.MULTILINE))
        node = fabric.node_by_guid(int(entry["node_guid"], 16))
        assert int(fields["lid"]) == entry["lid"], text
        assert int(fields["node_guid"], 16) == node.node_guid
        assert int(fields["port_guid"], 16) == int(entry["port_guid"], 16)
        assert fields["NodeDescription"] == node.description


def test_sminfo_reads_our_sm(up: UpFabric) -> None:
    text = up.tool("sminfo")
    match = re.search(r"sm lid (\d+) sm guid 0x([0-9a-f]+), activity count (\d+)", text)
    assert match is not None, text
    assert int(match.group(1)) == up.dump["sm_lid"]
    assert int(match.group(2), 16) == int(up.dump["sm_port_guid"], 16)
    # ActCount counts every SMP sent (retransmissions too), as OpenSM counts it.
    assert int(match.group(3)) == up.dump["smps_sent"] >= int(up.up.group(1))
    assert "SMINFO_MASTER" in text
