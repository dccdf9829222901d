"""ibsim / ibnetdiscover topology files: the shared files, ibsim's GUID rules,
real ibnetdiscover output, round trips and malformed input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from ibmig.errors import ConfigError
from ibmig.fabric import (
    Fabric,
    FabricBuilder,
    LinkSpeed,
    LinkWidth,
    NodeType,
    format_net,
    parse_net,
    read_net,
    write_net,
)
from tests.shared_files import TOPOLOGIES

SHARED = TOPOLOGIES

# file, switches, CAs, links, ports per switch, ports per CA
SHARED_COUNTS = [
    ("ft2-36.net", 7, 36, 72, 36, 1),
    ("ft3-32.net", 24, 32, 96, 36, 1),
    ("ft2-324.net", 36, 324, 648, 36, 1),
    ("ft2-648.net", 54, 648, 1296, 36, 1),
    ("ft3-1296.net", 180, 1296, 3888, 36, 1),
    ("ft3-3240.net", 684, 3240, 9720, 36, 1),
    ("ibsim-example.net.2sw2path4hca", 2, 4, 6, 8, 2),
]


def shared(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.fail(f"{path} is not available (tests/data/topologies is part of the repository)")
    return path


@pytest.mark.parametrize("row", SHARED_COUNTS, ids=[row[0] for row in SHARED_COUNTS])
def test_shared_files_parse(row: tuple[str, int, int, int, int, int]) -> None:
    name, switches, cas, links, sw_ports, ca_ports = row
    fabric = read_net(shared(name))
    assert (fabric.num_switches, fabric.num_cas, fabric.num_routers) == (switches, cas, 0)
    assert len(fabric.links) == links
    assert {n.num_ports for n in fabric.switches} == {sw_ports}
    assert {n.num_ports for n in fabric.cas} == {ca_ports}
    # Every CA has at least one cable, all to switches, and all links are 4x SDR.
    for ca in fabric.cas:
        peers = [fabric.peer(ca.index, p) for p in range(1, ca.num_ports + 1)]
        assert any(peer is not None for peer in peers)
        for peer in peers:
            if peer is not None:
                assert fabric.nodes[peer.node_index].is_switch
    assert {(ln.width, ln.speed) for ln in fabric.links} == {(LinkWidth.X4, LinkSpeed.SDR)}


def test_shared_files_use_ibsim_default_guids() -> None:
    fabric = read_net(shared("ft2-36.net"))
    switch_guids = [n.node_guid for n in fabric.switches]
    assert switch_guids == list(range(0x200000, 0x200007))
    ca_guids = [n.node_guid for n in fabric.cas]
    assert ca_guids == list(range(0x100000, 0x100000 + 2 * 36, 2))
    for node in fabric.nodes:
        assert node.system_image_guid == node.node_guid
        for port_num in node.port_nums:
            port = fabric.port(node.index, port_num)
            expected = node.node_guid if node.is_switch else node.node_guid + port_num
            assert port.port_guid == expected
    # What ibnetdiscover reported against ibsim on this file.
    assert fabric.node_by_name("leaf3").node_guid == 0x200003
    assert fabric.node_by_name("spine0").node_guid == 0x200004
    assert fabric.node_by_name("h3_0").node_guid == 0x100036
    assert fabric.port_by_guid(0x100037).node_index == fabric.node_by_name("h3_0").index
    peer = fabric.peer(fabric.node_by_name("leaf3").index, 10)
    assert peer is not None
    assert (fabric.nodes[peer.node_index].name, peer.port_num) == ("spine0", 10)


def test_two_port_hcas_take_three_guids() -> None:
    fabric = read_net(shared("ibsim-example.net.2sw2path4hca"))
    assert [(n.name, n.node_guid) for n in fabric.nodes] == [
        ("Switch1", 0x200000),
        ("Switch2", 0x200001),
        ("Hca1", 0x100000),
        ("Hca2", 0x100003),
        ("Hca3", 0x100006),
        ("Hca4", 0x100009),
    ]
    hca2 = fabric.node_by_name("Hca2")
    assert fabric.port(hca2.index, 2).port_guid == 0x100005
    assert fabric.peer(hca2.index, 2) is None


# A file probing ibsim's rules, and what ibsim 0.10 showed for it through
# ibnetdiscover (GUIDs, devid, LIDs, enhanced port 0, negotiated rates).
IBSIM_PROBE = """\
# crafted
Hca	2 "ca0"	# "first ca"
[1]	"sw0"[1]
[2]	"sw1"[1]

devid=0x1234
Switch	8 "sw0" # "switch zero" enhanced port 0 lid 7 lmc 0
[1]	"ca0"[1]
[2]	"sw1"[2] w=3 s=7
[3]	"ca1"[1]
[4]	"rt0"[1]

switchguid=0x5000
Switch	8 "sw1"
[1]	"ca0"[2]
[2]	"sw0"[2] w=1 s=3
[3]	"ca2"

caguid=0x7000
Ca	1 "ca1"
[1]	"sw0"[3]	# lid 9 lmc 1 "x" lid 7 4xSDR

Hca	3 "ca2"
[1]	"sw1"[3]

Rt	2 "rt0"
[1]	"sw0"[4]
"""


def test_guid_allocation_matches_ibsim() -> None:
    fabric = parse_net(IBSIM_PROBE, source="probe")
    got = {
        n.name: (n.node_type, n.node_guid, n.system_image_guid, n.device_id, n.description)
        for n in fabric.nodes
    }
    assert got == {
        "ca0": (NodeType.CA, 0x100000, 0x100000, 0, "first ca"),
        "sw0": (NodeType.SWITCH, 0x200000, 0x200000, 0x1234, "switch zero"),
        "sw1": (NodeType.SWITCH, 0x5000, 0x5000, 0x1234, "sw1"),
        "ca1": (NodeType.CA, 0x7000, 0x7000, 0x1234, "ca1"),
        "ca2": (NodeType.CA, 0x7002, 0x7002, 0x1234, "ca2"),
        "rt0": (NodeType.ROUTER, 0x0, 0x0, 0x1234, "rt0"),
    }
    ca0 = fabric.node_by_name("ca0")
    assert [fabric.port(ca0.index, p).port_guid for p in (1, 2)] == [0x100001, 0x100002]
    assert fabric.port(fabric.node_by_name("rt0").index, 1).port_guid == 0x1
    sw0 = fabric.node_by_name("sw0")
    assert sw0.enhanced_port0
    assert not fabric.node_by_name("sw1").enhanced_port0
    port0 = fabric.port(sw0.index, 0)
    assert (port0.lid, port0.lmc, port0.port_guid) == (7, 0, 0x200000)
    ca1_port = fabric.port(fabric.node_by_name("ca1").index, 1)
    assert (ca1_port.lid, ca1_port.lmc) == (9, 1)
    link = fabric.link_at(sw0.index, 2)
    assert link is not None
    assert (link.width, link.speed) == (LinkWidth.X1, LinkSpeed.DDR)
    # "ca2" without [n] is port 1.
    peer = fabric.peer(fabric.node_by_name("sw1").index, 3)
    assert peer is not None
    assert (peer.node_index, peer.port_num) == (fabric.node_by_name("ca2").index, 1)


def test_relative_guid_base_and_width_speed_defaults() -> None:
    text = """\
switchguid=0x1000
Switch 4 "a"
[1] "b"[1]

switchguid+0x10
width=3
speed=3
Switch 4 "b"
[1] "a"[1]
[2] "c"[1]

Hca 1 "c"
[1] "b"[2]
"""
    fabric = parse_net(text)
    assert [n.node_guid for n in fabric.nodes] == [0x1000, 0x1010, 0x100000]
    ab = fabric.link_at(0, 1)
    bc = fabric.link_at(1, 2)
    assert ab is not None
    assert bc is not None
    # a enables 4x SDR (the defaults), b and c 1x|4x SDR|DDR: ibsim takes the best common bits.
    assert (ab.width, ab.speed) == (LinkWidth.X4, LinkSpeed.SDR)
    assert (bc.width, bc.speed) == (LinkWidth.X4, LinkSpeed.DDR)


def test_no_common_width_is_an_error() -> None:
    text = 'width=1\nSwitch 4 "a"\n[1] "b"[1]\n\nwidth=2\nSwitch 4 "b"\n[1] "a"[1]\n'
    with pytest.raises(ConfigError, match="no common width") as info:
        parse_net(text, source="t.net")
    assert info.value.where == "t.net:3"


# Shaped like ibnetdiscover's output (infiniband-diags ibnetdiscover.c: out_switch,
# out_ca, out_switch_port, out_ca_port), with port GUIDs that are not node + port.
IBNETDISCOVER_DUMP = """\
#
# Topology file: generated on Tue Nov 24 10:00:00 2026
#
# Initiated from node f452140300ab1230 port f452140300ab1231

vendid=0x2c9
devid=0xcb20
sysimgguid=0xb8599f0300c5d2e0
switchguid=0xb8599f0300c5d2e0(b8599f0300c5d2e0)
Switch	36 "S-b8599f0300c5d2e0"		# "MF0;sw-a:MSB7700" enhanced port 0 lid 1 lmc 0
[1]	"H-f452140300ab1230"[1](f452140300ab1231) 		# "node01 HCA-1" lid 5 4xEDR
[2]	"H-f452140300ab1240"[1](f452140300ab1241) 		# "node02 HCA-1" lid 6 4xEDR
[35]	"S-b8599f0300c5d300"[35]		# "MF0;sw-b:MSB7700" lid 2 4xEDR
[36]	"S-b8599f0300c5d300"[36]		# "MF0;sw-b:MSB7700" lid 2 4xFDR

vendid=0x2c9
devid=0xcb20
sysimgguid=0xb8599f0300c5d300
switchguid=0xb8599f0300c5d300(b8599f0300c5d300)
Switch	36 "S-b8599f0300c5d300"		# "MF0;sw-b:MSB7700" enhanced port 0 lid 2 lmc 0
[2]	"H-f452140300ab1240"[2](f452140300ab1242) 		# "node02 HCA-1" lid 7 4xEDR
[35]	"S-b8599f0300c5d2e0"[35]		# "MF0;sw-a:MSB7700" lid 1 4xEDR
[36]	"S-b8599f0300c5d2e0"[36]		# "MF0;sw-a:MSB7700" lid 1 4xFDR
vendid=0x2c9
devid=0x1013
sysimgguid=0xf452140300ab1233
caguid=0xf452140300ab1230
Ca	1 "H-f452140300ab1230"		# "node01 HCA-1"
[1](f452140300ab1231) 	"S-b8599f0300c5d2e0"[1]		# lid 5 lmc 0 "MF0;sw-a:MSB7700" lid 1 4xEDR

vendid=0x2c9
devid=0x1013
sysimgguid=0xf452140300ab1243
caguid=0xf452140300ab1240
Ca	2 "H-f452140300ab1240"		# "node02 HCA-1"
[1](f452140300ab1241) 	"S-b8599f0300c5d2e0"[2]		# lid 6 lmc 0 "MF0;sw-a:MSB7700" lid 1 4xEDR
[2](f452140300ab1299) 	"S-b8599f0300c5d300"[2]		# lid 7 lmc 0 "MF0;sw-b:MSB7700" lid 2 4xEDR
"""


def test_ibnetdiscover_dump_as_the_file_says() -> None:
    fabric = parse_net(IBNETDISCOVER_DUMP, as_ibsim=False)
    assert (fabric.num_switches, fabric.num_cas, len(fabric.links)) == (2, 2, 5)
    sw_a = fabric.node_by_guid(0xB8599F0300C5D2E0)
    assert sw_a.name == "S-b8599f0300c5d2e0"
    assert sw_a.description == "MF0;sw-a:MSB7700"
    assert (sw_a.vendor_id, sw_a.device_id, sw_a.enhanced_port0) == (0x2C9, 0xCB20, True)
    assert fabric.port(sw_a.index, 0).lid == 1
    node02 = fabric.node_by_name("H-f452140300ab1240")
    assert node02.system_image_guid == 0xF452140300AB1243
    assert node02.device_id == 0x1013
    assert fabric.port(node02.index, 2).port_guid == 0xF452140300AB1299
    assert [fabric.port(node02.index, p).lid for p in (1, 2)] == [6, 7]
    assert fabric.port_by_guid(0xF452140300AB1299).port_num == 2
    fdr = fabric.link_at(sw_a.index, 36)
    edr = fabric.link_at(sw_a.index, 35)
    assert fdr is not None
    assert edr is not None
    assert (fdr.width, fdr.speed) == (LinkWidth.X4, LinkSpeed.FDR)
    assert (edr.width, edr.speed) == (LinkWidth.X4, LinkSpeed.EDR)


def test_ibnetdiscover_dump_as_ibsim_shows_it() -> None:
    fabric = parse_net(IBNETDISCOVER_DUMP)
    node02 = fabric.node_by_name("H-f452140300ab1240")
    # GUID lines count; port GUID annotations, sysimgguid, vendid, rates in comments do not.
    assert node02.node_guid == 0xF452140300AB1240
    assert node02.system_image_guid == node02.node_guid
    assert node02.vendor_id == 0
    assert fabric.port(node02.index, 2).port_guid == 0xF452140300AB1242
    assert {(ln.width, ln.speed) for ln in fabric.links} == {(LinkWidth.X4, LinkSpeed.SDR)}
    assert [fabric.port(node02.index, p).lid for p in (1, 2)] == [6, 7]


def test_ibnetdiscover_extras_are_accepted() -> None:
    text = """\
# Chassis-grouped output (ibnetdiscover -g)

Chassis 1 (guid 0x8f104004128a0)
Hostname: node01

# Spine Nodes
Switch	4 "S-1"		# "spine" base port 0 lid 3 lmc 0
[1][ext 1]	"H-2"[1](20001) 		# "host" lid 4 4xQDR
pdebug=0
Ca	1 "H-2"		# "host"
[1](20001) 	"S-1"[1][ext 1]		# lid 4 lmc 0 "spine" lid 3 4xQDR
"""
    fabric = parse_net(text, as_ibsim=False)
    assert (fabric.num_switches, fabric.num_cas) == (1, 1)
    link = fabric.links[0]
    assert (link.width, link.speed) == (LinkWidth.X4, LinkSpeed.QDR)


def test_records_without_blank_lines_and_comments_inside() -> None:
    text = 'Switch 2 "a"\n# inside a record\n[1] "b"[1]\nHca 1 "b"\n[1] "a"[1]\n'
    fabric = parse_net(text)
    assert [n.name for n in fabric.nodes] == ["a", "b"]
    assert len(fabric.links) == 1


def test_include(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "hosts.net").write_text('Hca 1 "h"\n[1] "s"[1]\n')
    (tmp_path / "top.net").write_text('Switch 2 "s"\n[1] "h"[1]\n\ninclude "sub/hosts.net"\n')
    fabric = read_net(tmp_path / "top.net")
    assert [n.name for n in fabric.nodes] == ["s", "h"]
    (tmp_path / "loop.net").write_text('include "loop.net"\n')
    with pytest.raises(ConfigError, match="include loop") as info:
        read_net(tmp_path / "loop.net")
    assert info.value.where == f"{tmp_path / 'loop.net'}:1"


def test_read_net_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_net(tmp_path / "absent.net")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('Swtch 8 "a"\n', 1, "unknown keyword 'Swtch'"),
        ('Switch 2 "a"\n[3] "a"[1]\n', 2, "port 3 out of range 1..2"),
        ('Switch 2 "a"\n[0] "a"[1]\n', 2, "port 0 out of range"),
        ('Switch 2 "a"\n[1] "b"[1]\n\nSwitch 2 "b"\n[1] "a"[2]\n', 2, "asymmetric link"),
        ('Switch 2 "a"\n[1] "b"[1]\n\nSwitch 2 "b"\n', 2, "lists nothing"),
        ('Switch 2 "a"\n\nHca 1 "a"\n', 3, "duplicate node 'a'"),
        ('Switch 2 "a"\n[1] "zz"[1]\n', 2, "no node named 'zz'"),
        ('Switch 2 "a"\n[1] "b"[2]\n\nHca 1 "b"\n[1] "a"[1]\n', 2, "'b' has no port 2"),
        ('Switch x "a"\n', 1, "bad number for number of ports"),
        ('Switch 0 "a"\n', 1, "0 ports"),
        ('Switch 255 "a"\n', 1, "255 ports"),
        ("devid=zz\n", 1, "bad number for devid"),
        ("devid=0x10000\n", 1, "out of range"),
        ("switchguid 0x10\n", 1, "missing '=' or '+'"),
        ('Switch 2 "a"\n[x] "a"[2]\n', 2, "bad port number"),
        ('Switch 2 "a"\n[1] "a"[y]\n', 2, "bad peer port number"),
        ('Switch 2 "a"\n[1] "a"[0]\n', 2, "ports start at 1"),
        ('Switch 2 "a"\n[1] "a"[2]\n[2] "a"[1]\n[1] "a"[2]\n', 4, "port 1 listed twice"),
        ('Switch 2 "a"\n\n[1] "a"[2]\n', 3, "outside a node record"),
        ('Switch 2 "a"\n  [1] "a"[2]\n', 2, "indentation"),
        ('Switch 2 "a"\n[1]\n', 2, "expected [port]"),
        ('Switch 2 "a"\n[1] "a" [2]\n', 2, "must follow its closing quote"),
        ('Switch 2 "a"\n[1] "a"[2] x=3\n', 2, "unexpected text in port line"),
        ('Switch 2 "a"\n[1] "a"[2] w=16\n', 2, "port option w 16 out of range"),
        ('Switch 2 "a" junk\n', 1, "unexpected text after the node name"),
        ("Switch 2 a\n", 1, "quoted"),
        ('Switch 2 "a#b"\n', 1, "bad node name"),
        ('Switch 2 ""\n', 1, "bad node name"),
        ('Switch 2 "a"\n@[1] "x"\n', 2, "aliases"),
        ("do echo\n", 1, "'do' commands"),
        ('module="m"\n', 1, "'module'"),
        ('switchguid=0x10\nSwitch 2 "a"\n\nswitchguid=0x10\nSwitch 2 "b"\n', 5, "already belongs"),
        ('Switch 2 "a"\n[1] "a"[1]\n', 2, "cabled to itself"),
        ('Hca 1 "a"\n[1] "b"[1]\t# lid 0x10000\n\nHca 1 "b"\n[1] "a"[1]\n', 2, "LID"),
        ('Hca 1 "a"\n[1](xyz) "b"[1]\n\nHca 1 "b"\n[1] "a"[1]\n', 2, "bad port GUID"),
    ],
)
def test_malformed(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_net(text, source="bad.net")
    assert message in info.value.message
    assert info.value.where == f"bad.net:{line}"
    assert str(info.value).startswith(f"bad.net:{line}: ")


def test_disagreeing_rates_in_comments() -> None:
    text = 'Hca 1 "a"\n[1] "b"[1] # 4xEDR\n\nHca 1 "b"\n[1] "a"[1] # 4xHDR\n'
    assert parse_net(text).links[0].speed == LinkSpeed.SDR  # ibsim ignores comments
    with pytest.raises(ConfigError, match="disagree on the speed") as info:
        parse_net(text, source="r.net", as_ibsim=False)
    assert info.value.where == "r.net:2"


def test_bad_utf8(tmp_path: Path) -> None:
    path = tmp_path / "x.net"
    path.write_bytes(b'Switch 2 "\xff"\n')
    with pytest.raises(ConfigError, match="UTF-8"):
        read_net(path)


def test_ibsim_mode_cuts_descriptions_to_63_bytes() -> None:
    desc = "d" * 64
    text = f'Switch 2 "a" # "{desc}"\n'
    assert parse_net(text).nodes[0].description == "d" * 63
    assert parse_net(text, as_ibsim=False).nodes[0].description == desc
    assert parse_net('Switch 2 "' + "n" * 64 + '"\n').nodes[0].description == "n" * 63


def test_unquoted_description_like_ibsim() -> None:
    fabric = parse_net('Switch 2 "a" # my switch lid 3 lmc 1\n')
    node = fabric.nodes[0]
    assert node.description == "my switch"
    assert (fabric.port(0, 0).lid, fabric.port(0, 0).lmc) == (3, 1)
    # Without a leading blank, " lid " is not found: all of it is the description.
    fabric = parse_net('Switch 2 "a" # lid 3\n')
    assert fabric.nodes[0].description == "lid 3"
    assert fabric.port(0, 0).lid == 0


def test_c_style_numbers() -> None:
    fabric = parse_net('devid=010\nswitchguid=0X1f\nSwitch 0x24 "a"\n')
    node = fabric.nodes[0]
    assert (node.device_id, node.node_guid, node.num_ports) == (8, 0x1F, 36)


# -- writer -------------------------------------------------------------------


@pytest.mark.parametrize("name", [row[0] for row in SHARED_COUNTS])
def test_writer_reproduces_shared_files(name: str) -> None:
    path = shared(name)
    text = path.read_text()
    fabric = read_net(path)
    if name.startswith("ft"):
        header = [line[2:] for line in text.split("\n")[:2]]
        assert format_net(fabric, comments=header) == text
    for style in ("ibsim", "ibnetdiscover"):
        assert parse_net(format_net(fabric, style=style)) == fabric


def test_write_net(tmp_path: Path) -> None:
    fabric = parse_net(IBSIM_PROBE)
    write_net(fabric, tmp_path / "out.net", style="ibnetdiscover", comments=["hello"])
    text = (tmp_path / "out.net").read_text()
    assert text.startswith(
        "# hello\n\nvendid=0x0\ndevid=0x0\nsysimgguid=0x100000\ncaguid=0x100000\n"
    )
    assert read_net(tmp_path / "out.net") == fabric


def test_writer_states_what_differs_from_ibsim_defaults() -> None:
    text = format_net(parse_net(IBSIM_PROBE))
    assert text == textwrap.dedent(
        """\
        Hca	2 "ca0"	# "first ca"
        [1]	"sw0"[1]
        [2]	"sw1"[1]

        devid=0x1234
        Switch	8 "sw0"	# "switch zero" enhanced port 0 lid 7 lmc 0
        [1]	"ca0"[1]
        [2]	"sw1"[2]	w=1 s=2	# 1xDDR
        [3]	"ca1"[1]
        [4]	"rt0"[1]

        switchguid=0x5000
        Switch	8 "sw1"
        [1]	"ca0"[2]
        [2]	"sw0"[2]	w=1 s=2	# 1xDDR
        [3]	"ca2"[1]

        caguid=0x7000
        Hca	1 "ca1"
        [1]	"sw0"[3]	# lid 9 lmc 1

        Hca	3 "ca2"
        [1]	"sw1"[3]

        Rt	2 "rt0"
        [1]	"sw0"[4]

        """
    )


# -- round trips ------------------------------------------------------------------

_NAME_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"#@')
_DESC_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"')
_GUID = st.integers(0, 2**64 - 1)


@st.composite
def fabrics(draw: st.DrawFn, ibsim_only: bool) -> Fabric:
    """Random fabrics; LIDs and port GUIDs only on cabled ports (a net file
    states them on port lines, which exist for cabled ports only)."""
    types = draw(
        st.lists(st.sampled_from([NodeType.SWITCH, NodeType.CA, NodeType.ROUTER]), max_size=8)
    )
    builder = FabricBuilder()
    try:
        for i, node_type in enumerate(types):
            is_switch = node_type == NodeType.SWITCH
            lid = (draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 7)))
            builder.add_node(
                node_type,
                draw(st.text(_NAME_CHARS, min_size=1, max_size=10)) + f"_{i}",
                draw(st.integers(1, 6)),
                description=draw(
                    st.none() | st.text(_DESC_CHARS, max_size=63 if ibsim_only else 64)
                ),
                node_guid=draw(st.none() | _GUID),
                system_image_guid=None if ibsim_only else draw(st.none() | _GUID),
                lids={0: lid} if is_switch and draw(st.booleans()) else None,
                vendor_id=0 if ibsim_only else draw(st.integers(0, 0xFFFFFF)),
                device_id=draw(st.integers(0, 0xFFFF)),
                enhanced_port0=is_switch and draw(st.booleans()),
            )
        slots = [(i, p) for i in range(len(builder)) for p in range(1, builder.num_ports_of(i) + 1)]
        slots = draw(st.permutations(slots))
        widths = [LinkWidth.X1, LinkWidth.X4, LinkWidth.X8, LinkWidth.X12]
        speeds = [LinkSpeed.SDR, LinkSpeed.DDR, LinkSpeed.QDR]
        if not ibsim_only:
            widths = list(LinkWidth)
            speeds = list(LinkSpeed)
        for k in range(draw(st.integers(0, len(slots) // 2))):
            ends = slots[2 * k : 2 * k + 2]
            (a, pa), (b, pb) = ends
            width = draw(st.sampled_from(widths))
            builder.connect(a, pa, b, pb, width=width, speed=draw(st.sampled_from(speeds)))
            for node_index, port_num in ends:
                if types[node_index] == NodeType.SWITCH:
                    continue
                lids = {port_num: (draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 7)))}
                guids = {port_num: draw(_GUID)} if not ibsim_only and draw(st.booleans()) else {}
                builder.set_port_details(node_index, lids=lids, port_guids=guids)
        return builder.build()
    except ConfigError:  # a drawn GUID collided
        reject()


@settings(max_examples=150, deadline=None)
@given(fabrics(ibsim_only=False), st.sampled_from(["ibsim", "ibnetdiscover"]))
def test_round_trip_as_file(fabric: Fabric, style: str) -> None:
    text = format_net(fabric, style=style)  # type: ignore[arg-type]
    assert parse_net(text, as_ibsim=False) == fabric


@settings(max_examples=150, deadline=None)
@given(fabrics(ibsim_only=True), st.sampled_from(["ibsim", "ibnetdiscover"]))
def test_round_trip_as_ibsim(fabric: Fabric, style: str) -> None:
    text = format_net(fabric, style=style)  # type: ignore[arg-type]
    assert parse_net(text) == fabric
    assert parse_net(text, as_ibsim=False) == fabric


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(list('SwitchHcaRt []"#=wsx0123456789abcdef\n\t@()'))))
def test_arbitrary_text_gives_fabric_or_config_error(text: str) -> None:
    try:
        parse_net(text)
    except ConfigError as exc:
        assert exc.where is None or exc.where.startswith("<net>:")


# `ibnetdiscover > f 2>&1` on a fabric with a dead link: libibmad's IBWARN lines
# ("ibwarn: [pid] function: ...", on stderr, unbuffered, so first) and the tool's
# IBEXIT-style "ibnetdiscover: iberror: ..." line land in the dump. ibsim ignores
# any line it has no keyword for (sim_net.c parse_netconf); so does this reader for
# these diagnostics, wherever they fall.
STDERR_LINES = """\
ibwarn: [22811] _do_madrpc: recv failed: Connection timed out
ibwarn: [22811] mad_rpc: _do_madrpc failed; dport (DR path slid 0; dlid 0; 0,1,31,18)
ibwarn: [22811] handle_port: NodeInfo on DR path slid 0; dlid 0; 0,1,31,18 failed, skipping port
"""


def test_a_dump_with_the_tools_own_stderr_lines_reads_as_without() -> None:
    clean = parse_net(IBNETDISCOVER_DUMP, as_ibsim=False)
    lines = IBNETDISCOVER_DUMP.splitlines(keepends=True)
    inside = lines.index('Ca\t1 "H-f452140300ab1230"\t\t# "node01 HCA-1"\n') + 1
    lines.insert(inside, "ibnetdiscover: iberror: [pid 22811] main: failed: discover failed\n")
    noisy = STDERR_LINES + "".join(lines)
    fabric = parse_net(noisy, source="dump.net", as_ibsim=False)
    assert format_net(fabric, style="ibnetdiscover") == format_net(clean, style="ibnetdiscover")
    assert format_net(parse_net(noisy)) == format_net(parse_net(IBNETDISCOVER_DUMP))


def test_text_that_merely_looks_like_a_diagnostic_is_still_refused() -> None:
    with pytest.raises(ConfigError) as info:
        parse_net("ibwarnings are not diagnostics\n", source="d.net")
    assert info.value.where == "d.net:1"


def test_a_huge_bad_token_is_cut_in_the_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_net("y" * 3_000_000 + "\n", source="big.net")
    assert len(str(info.value)) < 200
    assert "3,000,002 characters" in info.value.message
