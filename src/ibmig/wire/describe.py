"""Whole packets and MADs as JSON-ready dicts: what `ibmig decode` prints.

Each layer decodes as far as it can: an unknown management class shows its MAD
header and raw data, an unknown attribute its raw bytes. Only bytes that cannot be
a packet (or a MAD) at all raise `WireError`.
"""

from __future__ import annotations

from typing import Any

from ibmig.errors import WireError
from ibmig.wire.cm import CM_MESSAGES, CmMad
from ibmig.wire.jsonify import to_json
from ibmig.wire.mad import MAD_HEADER_SIZE, MAD_SIZE, MadHeader, MgmtClass
from ibmig.wire.notice import Notice
from ibmig.wire.packet import Packet
from ibmig.wire.sa import SaMad
from ibmig.wire.smp import Smp
from ibmig.wire.smp_attrs import SMP_ATTRIBUTES, SmpAttr

_NOTICE = int(SmpAttr.NOTICE)


def _header(header: MadHeader) -> dict[str, Any]:
    out: dict[str, Any] = to_json(header)
    out["tid"] = f"0x{header.tid:016x}"
    return out


def _attribute(name: str, record: object) -> dict[str, Any]:
    body = to_json(record)
    return {"name": name, **body} if isinstance(body, dict) else {"name": name, "value": body}


def describe_smp(data: bytes) -> dict[str, Any]:
    smp = Smp.unpack(data)
    out: dict[str, Any] = {
        "mad": _header(MadHeader.unpack(data)),
        "smp": {
            "m_key": f"0x{smp.m_key:016x}",
        },
    }
    if smp.directed:
        out["mad"]["status"] = smp.status
        out["smp"].update(
            {
                "d": smp.direction,
                "hop_pointer": smp.hop_pointer,
                "hop_count": smp.hop_count,
                "dr_slid": smp.dr_slid,
                "dr_dlid": smp.dr_dlid,
                "initial_path": list(smp.initial_ports),
                "return_path": list(smp.return_ports),
            }
        )
    attribute_id = smp.attribute_id
    if attribute_id == _NOTICE:
        out["attribute"] = _safe(lambda: _attribute("Notice", Notice.unpack_smp(smp.data)))
    else:
        record_type = SMP_ATTRIBUTES.get(attribute_id)
        if record_type is None:
            out["attribute"] = {"name": f"0x{attribute_id:04x}", "raw": smp.data.hex()}
        else:
            name = record_type.__name__
            out["attribute"] = _safe(
                lambda: _attribute(name, record_type.unpack(smp.data)),
                raw=smp.data,
                name=name,
            )
    return out


def describe_sa(data: bytes) -> dict[str, Any]:
    sa = SaMad.unpack(data)
    out: dict[str, Any] = {
        "mad": _header(sa.header),
        "rmpp": to_json(sa.rmpp),
        "sa": {
            "sm_key": f"0x{sa.sm_key:016x}",
            "attribute_offset": sa.attribute_offset,
            "component_mask": f"0x{sa.component_mask:016x}",
        },
    }
    try:
        records = sa.records()
    except WireError as exc:
        out["records"] = []
        out["undecoded"] = {"reason": str(exc), "raw": sa.data.hex()}
        return out
    out["records"] = [_attribute(type(r).__name__, r) for r in records]
    return out


def describe_cm(data: bytes) -> dict[str, Any]:
    header = MadHeader.unpack(data)
    out: dict[str, Any] = {"mad": _header(header)}
    if header.attribute_id not in CM_MESSAGES:
        out["attribute"] = {"name": f"0x{header.attribute_id:04x}", "raw": data[24:].hex()}
        return out
    cm = CmMad.unpack(data)
    out["attribute"] = _attribute(type(cm.message).__name__, cm.message)
    return out


def _safe(decode: Any, raw: bytes | None = None, name: str = "attribute") -> dict[str, Any]:
    try:
        result: dict[str, Any] = decode()
    except WireError as exc:
        return {"name": name, "error": str(exc), "raw": raw.hex() if raw else None}
    return result


_DECODERS = {
    MgmtClass.SUBN_LID_ROUTED: describe_smp,
    MgmtClass.SUBN_DIRECTED_ROUTE: describe_smp,
    MgmtClass.SUBN_ADM: describe_sa,
    MgmtClass.COMM_MGT: describe_cm,
}


def describe_mad(data: bytes) -> dict[str, Any]:
    """One 256-byte MAD; unknown classes keep their header and raw data."""
    if len(data) != MAD_SIZE:
        raise WireError(f"a MAD is {MAD_SIZE} bytes, got {len(data)}")
    header = MadHeader.unpack(data)
    decoder = _DECODERS.get(header.mgmt_class)  # type: ignore[call-overload]
    if decoder is not None:
        try:
            result: dict[str, Any] = decoder(data)
        except WireError as exc:
            return {"mad": _header(header), "error": str(exc), "raw": data.hex()}
        return result
    return {"mad": _header(header), "raw": data[MAD_HEADER_SIZE:].hex()}


def describe_packet(data: bytes) -> dict[str, Any]:
    """A whole packet (LRH through VCRC) with its MAD decoded when it carries one."""
    packet = Packet.unpack(data)
    out: dict[str, Any] = {"lrh": to_json(packet.lrh)}
    if packet.grh is not None:
        out["grh"] = to_json(packet.grh)
    out["bth"] = to_json(packet.bth)
    if packet.deth is not None:
        out["deth"] = to_json(packet.deth)
    # MADs travel on QP0 and QP1 only (IBA Vol 1, 13.5).
    if packet.bth.dest_qp in (0, 1) and len(packet.payload) == MAD_SIZE:
        out.update(describe_mad(packet.payload))
    else:
        out["payload"] = packet.payload.hex()
    out["icrc"] = f"0x{packet.icrc:08x}"
    out["icrc_ok"] = packet.icrc_ok
    out["vcrc"] = f"0x{packet.vcrc:04x}"
    out["vcrc_ok"] = packet.vcrc_ok
    return out
