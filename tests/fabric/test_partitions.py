"""partitions.conf as OpenSM reads it (doc/partition-config.txt, osm_prtn_config.c),
and the P_Key tables it gives ports and VMs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ibmig.errors import ConfigError
from ibmig.fabric.partitions import (
    EndPortKind,
    Membership,
    Partition,
    PortSpecifier,
    common_pkey,
    load_partitions,
    parse_partitions,
    resolve_keys,
    shares_partition,
)

# OpenSM's own examples (doc/partition-config.txt), a definition split over lines.
EXAMPLE = """\
 Default=0x7fff : ALL, SELF=full ;
 NewPartition , ipoib : 0x123456=full, 0x3456789034=limi, 0x2134af2306 ;

 YetAnotherOne = 0x300 : SELF=full ;
 YetAnotherOne = 0x300 : ALL=limited ;

 ShareIO = 0x80 , defmember=full : 0x123451, 0x123452;
 # 0x123453, 0x123454 will be limited
 ShareIO = 0x80 : 0x123453, 0x123454, 0x123455=full;
 Tenant = 0x8001, indx0 :
        mgid=ff12:401b::0707,sl=1 # random IPv4 group
        0x123451=both;
"""


def test_opensm_examples() -> None:
    config = parse_partitions(EXAMPLE, "p.conf")
    by_name = {p.name: p for p in config.partitions}
    assert by_name["Default"].members == (
        PortSpecifier("ALL", Membership.LIMITED),
        PortSpecifier("SELF", Membership.FULL),
    )
    # No P_Key: generated from 1 up, skipping the ones the file uses.
    assert by_name["NewPartition"].pkey == 0x0002  # 0x8001 & 0x7FFF = 1 is taken
    assert by_name["NewPartition"].ipoib
    assert by_name["NewPartition"].members == (
        PortSpecifier(0x123456, Membership.FULL),
        PortSpecifier(0x3456789034, Membership.LIMITED),  # "limi": a prefix, as OpenSM
        PortSpecifier(0x2134AF2306, Membership.LIMITED),
    )
    assert config.warnings == ()
    # Same P_Key: merged under the first name, defmember per definition.
    assert by_name["YetAnotherOne"].members == (
        PortSpecifier("SELF", Membership.FULL),
        PortSpecifier("ALL", Membership.LIMITED),
    )
    assert [(m.target, m.membership) for m in by_name["ShareIO"].members] == [
        (0x123451, Membership.FULL),
        (0x123452, Membership.FULL),
        (0x123453, Membership.LIMITED),
        (0x123454, Membership.LIMITED),
        (0x123455, Membership.FULL),
    ]
    tenant = by_name["Tenant"]
    assert (tenant.pkey, tenant.index0, tenant.mgids) == (0x0001, True, ("ff12:401b::707",))
    assert tenant.members == (PortSpecifier(0x123451, Membership.BOTH),)
    assert len(config.partitions) == 5


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("A=0x8000 : ALL ;", 1, "bad P_Key '0x8000'"),
        ("\n\nA=0x1 : 0xzz ;", 3, "bad PortGUID '0xzz'"),
        ("A=0x1 : ALL ;\nB=0x2 : ALL", 2, "definition without its closing ';'"),
        ("A=0x1, defmember=some : ALL ;", 1, "bad partition flags: defmember='some'"),
        ("A=0x1 ALL ;", 1, "no partition definition found"),
        ("A=0x1 : mgid=fe80::1 ;", 1, "gid is not multicast"),
        ("A=0x1, rate=fast : ALL ;", 1, "bad value for rate"),
    ],
)
def test_errors_name_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_partitions(text, "parts.conf")
    assert caught.value.where == f"parts.conf:{line}"
    assert message in caught.value.message


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_partitions(tmp_path / "none.conf")
    assert caught.value.where == str(tmp_path / "none.conf")


def test_load(tmp_path: Path) -> None:
    path = tmp_path / "partitions.conf"
    path.write_text("Default=0x7fff, ipoib : ALL=full ;\n")
    assert load_partitions(path).partitions == (
        Partition("Default", 0x7FFF, (PortSpecifier("ALL", Membership.FULL),), ipoib=True),
    )


def test_implicit_default_partition() -> None:
    """`Default=0x7fff : ALL=limited, SELF=full ;` comes first; the file's rules for
    0x7FFF apply on top (osm_prtn.c prtn_make_default)."""
    config = parse_partitions("A=0x10 : 0x5=full ;").with_implicit_default()
    assert resolve_keys(config, EndPortKind(0x5)) == (0x7FFF, 0x8010)
    assert resolve_keys(config, EndPortKind(0x6)) == (0x7FFF,)
    assert resolve_keys(config, EndPortKind(0x7, is_sm=True)) == (0xFFFF,)
    assert config.with_implicit_default() == config
    given = parse_partitions("Default=0x7fff : ALL_CAS=limited, 0x6=full ;")
    config = given.with_implicit_default()
    assert resolve_keys(config, EndPortKind(0x7, is_sm=True)) == (0x7FFF,)
    assert resolve_keys(config, EndPortKind(0x6)) == (0xFFFF,)
    assert resolve_keys(config, EndPortKind(0x8, is_switch=True)) == (0x7FFF,)


def test_table_order_and_keywords() -> None:
    config = parse_partitions(
        """
        Storage=0x20 : ALL_SWITCHES=full, 0x9=limited ;
        Default=0x7fff : ALL_CAS=full ;
        First=0x30, indx0 : 0x9=both, 0xA, 0xA=f ;
        """
    )
    # indx0 first, then the default partition, then file order; `both` is full.
    assert resolve_keys(config, EndPortKind(0x9)) == (0x8030, 0xFFFF, 0x0020)
    # A later rule overwrites an earlier one (OpenSM osm_prtn_add_port).
    later = parse_partitions("P=0x40 : 0x9=full, ALL=limited ; P=0x40 : 0xB=l, 0xB=full ;")
    assert resolve_keys(later, EndPortKind(0x9)) == (0x0040,)
    assert resolve_keys(later, EndPortKind(0xB)) == (0x8040,)
    assert resolve_keys(config, EndPortKind(0xA, is_switch=True)) == (0x8030, 0x8020)
    # A VM (alias GUID) is covered by ALL_CAS, not by ALL_SWITCHES.
    assert resolve_keys(config, EndPortKind(0xB, is_alias=True)) == (0xFFFF,)


def test_sharing() -> None:
    assert shares_partition([0x8001], [0x0001])
    assert not shares_partition([0x0001], [0x0001])  # two limited members
    assert not shares_partition([0x8001], [0x8002])
    assert shares_partition([0x7FFF, 0x8002], [0x0002], pkey=0x8002)
    assert not shares_partition([0x7FFF, 0x8002], [0x7FFF, 0x0002], pkey=0x7FFF)
    assert shares_partition([0x7FFF, 0x8002], [0x7FFF, 0x0002])
    # OpenSM osm_physp_find_common_pkey: the lowest shared one, as the first side holds it.
    assert common_pkey([0xFFFF, 0x0005, 0x8003], [0x7FFF, 0x8005, 0x0003]) == 0x8003
    assert common_pkey([0xFFFF, 0x0005, 0x0003], [0x7FFF, 0x8005, 0x0003]) == 0x0005
    assert common_pkey([0x7FFF], [0x7FFF]) is None
