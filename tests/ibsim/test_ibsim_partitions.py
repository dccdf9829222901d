"""P_Key tables from a partitions.conf, OpenSM against `ibmig sm --ibsim
--partitions` on the same ibsim fabric (issue 12, item 3).

Both SMs get the same file (OpenSM with `-P`): a default partition with the switches
full and the CAs (the SM's port among them) limited, two tenants, one port in both
(`both`, which is full with OpenSM's allow_both_pkeys off). After SUBNET UP,
`smpquery pkeys` reads every CA port, every switch's port 0 and every switch port
toward a CA (OpenSM copies the CA's table there, osm_pkey_mgr.c), and `smpquery
portinfo` that port's partition enforcement bits (which ibsim does not keep). The
tables must be the same, entry for entry (the non-default entries come in
OpenSM's map order, which this file's P_Keys make file order)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ibmig.ibsim.harness import Harness, Ibsim

pytestmark = pytest.mark.interop

PORT_LINE = re.compile(r"^(SW|CA)\s+(\d+)\s+\d+\s+(0x[0-9a-f]+)", re.MULTILINE)
PKEY = re.compile(r"0x[0-9a-f]{4}")
ENFORCEMENT = re.compile(r"^(PartEnforce\w*|FilterRaw\w*):\.*(\S+)", re.MULTILINE)

Seen = dict[tuple[str, int], tuple[str, ...]]


def _conf(guids: list[int]) -> str:
    a, b, c = guids
    return (
        "Default=0x7fff : ALL_SWITCHES=full, SELF=full, ALL_CAS=limited ;\n"
        f"Red=0x0101 : {a:#x}=full, {b:#x} ;  # {b:#x} limited\n"
        f"Blue=0x0102, ipoib : {c:#x}=full, {a:#x}=both ;\n"
    )


def _look(harness: Harness, sim: Ibsim) -> Seen:
    fabric = sim.fabric
    listing = harness.tool(sim, ["ibnetdiscover", "-p"]).stdout
    lid_of = {int(guid, 16): int(lid) for _, lid, guid in PORT_LINE.findall(listing)}

    def pkeys(lid: int, *port: int) -> tuple[str, ...]:
        text = harness.tool(sim, ["smpquery", "pkeys", str(lid), *map(str, port)]).stdout
        return tuple(k for k in PKEY.findall(text) if k != "0x0000")

    seen: Seen = {}
    for ca in fabric.cas:
        seen[(ca.name, 1)] = pkeys(lid_of[fabric.port(ca.index, 1).port_guid])
    for switch in fabric.switches:
        lid = lid_of[switch.node_guid]
        seen[(switch.name, 0)] = pkeys(lid, 0)
        for port in range(1, switch.num_ports + 1):
            peer = fabric.peer(switch.index, port)
            if peer is None or fabric.nodes[peer.node_index].is_switch:
                continue
            seen[(switch.name, port)] = pkeys(lid, port)
            text = harness.tool(sim, ["smpquery", "portinfo", str(lid), str(port)]).stdout
            seen[(switch.name, -port)] = tuple(f"{k}={v}" for k, v in ENFORCEMENT.findall(text))
    return seen


@pytest.fixture(scope="module")
def seen(
    ibsim_tools: None, net_file: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Seen]]:
    found = {}
    conf = tmp_path_factory.mktemp("partitions") / "partitions.conf"
    for side in ("opensm", "ibmig"):
        with Harness() as harness:
            sim = harness.start_ibsim(net_file("ft2-36"))
            cas = sim.fabric.cas
            conf.write_text(_conf([sim.fabric.port(c.index, 1).port_guid for c in cas[1:4]]))
            if side == "opensm":
                harness.start_opensm(sim, extra_args=["-P", str(conf)]).wait_up(120)
            else:
                harness.start_ibmig_sm(sim, args=["--partitions", str(conf)]).wait_up(120)
            found[side] = _look(harness, sim)
    yield found


def test_opensm_tables_are_what_the_file_says(seen: dict[str, Seen]) -> None:
    osm = seen["opensm"]
    cas = sorted(name for name, port in osm if port == 1 and name.startswith("h"))
    a, b, c = sorted(cas)[1:4]
    assert osm[(a, 1)] == ("0x7fff", "0x8101", "0x8102")
    assert osm[(b, 1)] == ("0x7fff", "0x0101")
    assert osm[(c, 1)] == ("0x7fff", "0x8102")
    assert osm[(sorted(cas)[0], 1)] == ("0x7fff",)  # the SM's port: ALL_CAS came last
    switches = {name for name, port in osm if port == 0}
    assert {osm[(s, 0)] for s in switches} == {("0xffff",)}
    # ibsim's PortInfo Set keeps no enforcement bit (sim_mad.c), so both SMs' show
    # 0 there; tests/sim/test_partitions.py checks ibmig's on its own agents.
    enforcement = {v for (_, port), v in osm.items() if port < 0}
    assert enforcement == {
        ("PartEnforceInb=0", "PartEnforceOutb=0", "FilterRawInb=0", "FilterRawOutb=0")
    }


def test_ibmig_writes_opensm_s_tables_and_enforcement(seen: dict[str, Seen]) -> None:
    assert seen["ibmig"] == seen["opensm"]
