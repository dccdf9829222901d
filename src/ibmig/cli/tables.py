"""Names and tables the subcommands print: protocol numbers by their enum names,
SMP counts by attribute and method."""

from __future__ import annotations

from collections import Counter
from enum import IntEnum

from ibmig.wire.mad import Method
from ibmig.wire.smp_attrs import SmpAttr


def enum_name(enum: type[IntEnum], value: int, digits: int = 2) -> str:
    """`enum(value).name`, or the value in hex (`digits` wide) when it has none."""
    try:
        return enum(value).name
    except ValueError:
        return f"0x{value:0{digits}x}"


_ATTRIBUTE_NAMES: dict[int, str] = {
    SmpAttr.NODE_INFO: "NodeInfo",
    SmpAttr.NODE_DESCRIPTION: "NodeDescription",
    SmpAttr.SWITCH_INFO: "SwitchInfo",
    SmpAttr.PORT_INFO: "PortInfo",
    SmpAttr.GUID_INFO: "GUIDInfo",
    SmpAttr.P_KEY_TABLE: "P_KeyTable",
    SmpAttr.LINEAR_FORWARDING_TABLE: "LinearForwardingTable",
    SmpAttr.SM_INFO: "SMInfo",
    SmpAttr.NOTICE: "Notice",
}


def attribute_name(attribute_id: int) -> str:
    """The SMP attribute's name as the specification spells it."""
    return _ATTRIBUTE_NAMES.get(attribute_id) or enum_name(SmpAttr, attribute_id, 4)


def smp_table(counts: Counter[tuple[int, int]]) -> list[str]:
    """SMPs by (attribute, method): one row per attribute, one column per method."""
    methods = sorted({m for _, m in counts})
    attrs = sorted({a for a, _ in counts})
    names = [enum_name(Method, m, 4) for m in methods]
    width = max([len(attribute_name(a)) for a in attrs] + [9])
    lines = [f"  {'attribute':<{width}} " + " ".join(f"{n:>9}" for n in names) + f" {'total':>9}"]
    for attr in attrs:
        row = [counts.get((attr, m), 0) for m in methods]
        cells = " ".join(f"{v:>9,}" for v in row)
        lines.append(f"  {attribute_name(attr):<{width}} {cells} {sum(row):>9,}")
    return lines
