"""Subnet management packets: LID-routed (class 0x01) and directed-route (class 0x81).

Both are 256-byte MADs (IBA Vol 1, 14.2.1 "Subnet Management Packets"):

    byte    LID routed (14.2.1.1)          directed route (14.2.1.2)
    0..3    BaseVersion, MgmtClass, ClassVersion, R | Method
    4..5    Status                          D (bit 15) | Status (bits 14..0)
    6..7    reserved                        HopPointer, HopCount
    8..23   TransactionID, AttributeID, reserved, AttributeModifier
    24..31  M_Key                           M_Key
    32..35  reserved                        DrSLID, DrDLID
    36..63  reserved                        reserved
    64..127 SMP data (64 bytes)             SMP data (64 bytes)
    128..191 reserved                       InitialPath (64 bytes)
    192..255 reserved                       ReturnPath (64 bytes)

Shape: one record, `Smp`, for both; `directed` is derived from `mgmt_class`. The
directed-route fields (`direction`, `hop_pointer`, `hop_count`, `dr_slid`, `dr_dlid`,
`initial_path`, `return_path`) are reserved in a LID-routed SMP: they must be zero
there to pack, and decode as zero whatever the reserved bytes hold. `status` is the
15-bit status of a DR SMP (the D bit is `direction`) and the whole 16-bit status of
a LID-routed one. `data`, `initial_path` and `return_path` are always exactly 64
bytes; the builders pad. Paths are indexed by hop: byte 0 is unused and
`initial_path[i]` is the port the SMP leaves node i-1 by (node 0 is where the
directed part starts), so a path given as a tuple `(p1, p2, ...)` fills bytes 1.. .

Directed-route processing (IBA Vol 1, 14.2.2, compliance statements C14-6 to C14-13)
is two pure functions for the simulator's transport and the SMAs: `dr_originate`
(the local SM hands down a request, or the local SMA a response) and `dr_receive`
(an SMP arrives from the wire on a port). Each returns a `DrStep`: the SMP with its
hop pointer (and, outbound, return path) updated, and what to do next.

Outbound (D = 0). The SM sends with HopPointer 0. Where the directed part starts,
HopPointer becomes 1 and the SMP leaves by InitialPath[1]. A node that receives it
with 1 <= HopPointer < HopCount must be a switch: it records the arrival port in
ReturnPath[HopPointer], increments HopPointer and sends it out of
InitialPath[HopPointer]. At HopPointer == HopCount the directed part ends: the
arrival port goes to ReturnPath[HopCount], HopPointer becomes HopCount + 1 and the
SMP is delivered to the local SMA when DrDLID is the permissive LID 0xFFFF, or (on a
switch) routed on by LID to DrDLID, whose SMA receives it with HopPointer ==
HopCount + 1. Any other hop pointer is discarded.

Returning (D = 1). The responder keeps the hop pointer of the request. Each step
decrements HopPointer and sends the SMP out of ReturnPath[HopPointer]; intermediate
nodes must be switches. When HopPointer drops to 0 the directed part is over: the
SMP goes to the local SM when DrSLID is permissive, else (on a switch) by LID to
DrSLID, where it arrives with HopPointer 0.

A HopCount above 63 is discarded everywhere (C14-6). When the first outbound segment
is LID routed (DrSLID not permissive) the SM addresses the packet to the LID of the
node where the directed part starts; that LID is in the LRH only, so `DrStep.lid` is
None there and the caller supplies it; the same holds for a response whose request
arrived over a LID-routed last segment.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, TypeVar

from ibmig.errors import WireError
from ibmig.wire.mad import MAD_SIZE, RESPONSE_BIT, Method, MgmtClass, check_mad_size
from ibmig.wire.smp_attrs import SmpAttribute

PERMISSIVE_LID = 0xFFFF
SMP_DATA_SIZE = 64
SMP_PATH_SIZE = 64
MAX_HOP_COUNT = 63
D_BIT = 0x8000

_ZERO64 = bytes(64)

# Directed route: header, M_Key, DrSLID, DrDLID, 28 reserved, data, paths.
_DR = struct.Struct(">BBBBHBBQHHIQHH28x64s64s64s")
# LID routed: header (class-specific word reserved), M_Key, 32 reserved, data, 128 reserved.
_LR = struct.Struct(">BBBBHHQHHIQ32x64s128x")

_SUBN_LID_ROUTED = MgmtClass.SUBN_LID_ROUTED.value
_SUBN_DIRECTED_ROUTE = MgmtClass.SUBN_DIRECTED_ROUTE.value
# Where `_DR`'s data and InitialPath sit in the MAD (IBA Vol 1, 14.2.1.2).
_DR_DATA_OFFSET = 64
_DR_INITIAL_PATH_OFFSET = _DR_DATA_OFFSET + SMP_DATA_SIZE

A = TypeVar("A", bound=SmpAttribute)


@dataclass(frozen=True, slots=True)
class Smp:
    """A subnet management packet, LID routed or directed route (see the module doc)."""

    mgmt_class: int
    method: int
    attribute_id: int
    attribute_modifier: int = 0
    tid: int = 0
    status: int = 0
    direction: bool = False
    """The D bit of a DR SMP: False outbound (requests, traps), True returning."""
    hop_pointer: int = 0
    hop_count: int = 0
    m_key: int = 0
    dr_slid: int = 0
    dr_dlid: int = 0
    data: bytes = _ZERO64
    initial_path: bytes = _ZERO64
    return_path: bytes = _ZERO64
    class_version: int = 1
    base_version: int = 1

    SIZE: ClassVar[int] = MAD_SIZE

    @property
    def directed(self) -> bool:
        return self.mgmt_class == _SUBN_DIRECTED_ROUTE

    @property
    def is_response(self) -> bool:
        return bool(self.method & RESPONSE_BIT)

    @property
    def initial_ports(self) -> tuple[int, ...]:
        """InitialPath[1..HopCount]: the egress port at each node of the directed part."""
        return tuple(self.initial_path[1 : self.hop_count + 1])

    @property
    def return_ports(self) -> tuple[int, ...]:
        """ReturnPath[1..HopCount]: the arrival port at each node after the first."""
        return tuple(self.return_path[1 : self.hop_count + 1])

    def decode_data(self, record_type: type[A]) -> A:
        """Decode the data slot as `record_type`, checking the attribute id."""
        if self.attribute_id != record_type.ATTRIBUTE_ID:
            raise WireError(
                f"SMP carries attribute 0x{self.attribute_id:04x}, not "
                f"{record_type.__name__} (0x{record_type.ATTRIBUTE_ID:04x})"
            )
        return record_type.unpack(self.data)

    def pack(self) -> bytes:
        if len(self.data) != SMP_DATA_SIZE:
            raise WireError(f"SMP data must be {SMP_DATA_SIZE} bytes, got {len(self.data)}")
        if self.mgmt_class == _SUBN_DIRECTED_ROUTE:
            if not 0 <= self.status <= 0x7FFF:
                raise WireError(f"DR SMP status {self.status} does not fit 15 bits")
            if len(self.initial_path) != SMP_PATH_SIZE:
                raise WireError(
                    f"InitialPath must be {SMP_PATH_SIZE} bytes, got {len(self.initial_path)}"
                )
            if len(self.return_path) != SMP_PATH_SIZE:
                raise WireError(
                    f"ReturnPath must be {SMP_PATH_SIZE} bytes, got {len(self.return_path)}"
                )
            try:
                return _DR.pack(
                    self.base_version,
                    self.mgmt_class,
                    self.class_version,
                    self.method,
                    (D_BIT if self.direction else 0) | self.status,
                    self.hop_pointer,
                    self.hop_count,
                    self.tid,
                    self.attribute_id,
                    0,
                    self.attribute_modifier,
                    self.m_key,
                    self.dr_slid,
                    self.dr_dlid,
                    self.data,
                    self.initial_path,
                    self.return_path,
                )
            except struct.error as exc:
                raise WireError(f"DR SMP field out of range: {exc}") from None
        if self.mgmt_class != _SUBN_LID_ROUTED:
            raise WireError(f"management class 0x{self.mgmt_class:02x} is not an SMP class")
        if (
            self.direction
            or self.hop_pointer
            or self.hop_count
            or self.dr_slid
            or self.dr_dlid
            or self.initial_path != _ZERO64
            or self.return_path != _ZERO64
        ):
            raise WireError(
                "a LID-routed SMP has no D bit, hop pointer, hop count, DrSLID, DrDLID "
                "or paths (reserved fields must be zero)"
            )
        try:
            return _LR.pack(
                self.base_version,
                self.mgmt_class,
                self.class_version,
                self.method,
                self.status,
                0,
                self.tid,
                self.attribute_id,
                0,
                self.attribute_modifier,
                self.m_key,
                self.data,
            )
        except struct.error as exc:
            raise WireError(f"LID-routed SMP field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes) -> Smp:
        check_mad_size(data)
        mgmt_class = data[1]
        if mgmt_class == _SUBN_DIRECTED_ROUTE:
            (
                bv,
                mclass,
                cver,
                method,
                status,
                hop_pointer,
                hop_count,
                tid,
                attr,
                _rsv,
                amod,
                m_key,
                dr_slid,
                dr_dlid,
                smp_data,
                initial_path,
                return_path,
            ) = _DR.unpack(data)
            return cls(
                mclass,
                method,
                attr,
                amod,
                tid,
                status & 0x7FFF,
                bool(status & D_BIT),
                hop_pointer,
                hop_count,
                m_key,
                dr_slid,
                dr_dlid,
                smp_data,
                initial_path,
                return_path,
                cver,
                bv,
            )
        if mgmt_class == _SUBN_LID_ROUTED:
            (bv, mclass, cver, method, status, _cs, tid, attr, _rsv, amod, m_key, smp_data) = (
                _LR.unpack(data)
            )
            return cls(
                mclass,
                method,
                attr,
                amod,
                tid,
                status,
                m_key=m_key,
                data=smp_data,
                class_version=cver,
                base_version=bv,
            )
        raise WireError(f"management class 0x{mgmt_class:02x} is not an SMP class")


def peek_directed(data: bytes) -> tuple[bytes, tuple[int, ...]] | None:
    """(`Smp.data`, `Smp.initial_ports`) of a whole directed-route SMP, read
    straight from its bytes; None for any other class. For an SM reading the
    answers of a bring-up (several per port), which need nothing else."""
    if data[1] != _SUBN_DIRECTED_ROUTE:
        return None
    path = _DR_INITIAL_PATH_OFFSET + 1
    return (
        bytes(data[_DR_DATA_OFFSET:_DR_INITIAL_PATH_OFFSET]),
        tuple(data[path : path + data[7]]),
    )


def _slot(data: SmpAttribute | bytes) -> bytes:
    raw = data if isinstance(data, bytes | bytearray | memoryview) else data.pack()
    if len(raw) > SMP_DATA_SIZE:
        raise WireError(f"SMP data holds {SMP_DATA_SIZE} bytes, got {len(raw)}")
    return bytes(raw).ljust(SMP_DATA_SIZE, b"\x00")


def path_bytes(path: tuple[int, ...]) -> bytes:
    """InitialPath bytes for the ports `path` (byte 0 unused, ports from byte 1)."""
    if len(path) > MAX_HOP_COUNT:
        raise WireError(f"a directed route has at most {MAX_HOP_COUNT} hops, got {len(path)}")
    try:
        return bytes((0, *path)).ljust(SMP_PATH_SIZE, b"\x00")
    except (ValueError, TypeError) as exc:
        raise WireError(f"directed route port out of range: {exc}") from None


def make_request(
    method: int,
    attribute_id: int,
    *,
    tid: int,
    attribute_modifier: int = 0,
    data: SmpAttribute | bytes = b"",
    path: tuple[int, ...] | None = None,
    m_key: int = 0,
    dr_slid: int = PERMISSIVE_LID,
    dr_dlid: int = PERMISSIVE_LID,
) -> Smp:
    """An SMP request: LID routed when `path` is None, else directed route along `path`
    (the egress port at each hop; `()` addresses the local node). `dr_slid` and
    `dr_dlid` apply to directed routes only; the default is pure DR (both permissive).
    """
    if path is None:
        return Smp(
            _SUBN_LID_ROUTED,
            method,
            attribute_id,
            attribute_modifier,
            tid,
            m_key=m_key,
            data=_slot(data),
        )
    return Smp(
        _SUBN_DIRECTED_ROUTE,
        method,
        attribute_id,
        attribute_modifier,
        tid,
        hop_count=len(path),
        m_key=m_key,
        dr_slid=dr_slid,
        dr_dlid=dr_dlid,
        data=_slot(data),
        initial_path=path_bytes(path),
    )


def make_get(
    attribute_id: int,
    *,
    tid: int,
    attribute_modifier: int = 0,
    path: tuple[int, ...] | None = None,
    m_key: int = 0,
    dr_slid: int = PERMISSIVE_LID,
    dr_dlid: int = PERMISSIVE_LID,
) -> Smp:
    """SubnGet(attribute) (IBA Vol 1, 14.2.1; methods 13.4.5), routed as `make_request`."""
    return make_request(
        Method.GET,
        attribute_id,
        tid=tid,
        attribute_modifier=attribute_modifier,
        path=path,
        m_key=m_key,
        dr_slid=dr_slid,
        dr_dlid=dr_dlid,
    )


def make_set(
    attribute: SmpAttribute,
    *,
    tid: int,
    attribute_modifier: int = 0,
    path: tuple[int, ...] | None = None,
    m_key: int = 0,
    dr_slid: int = PERMISSIVE_LID,
    dr_dlid: int = PERMISSIVE_LID,
) -> Smp:
    """SubnSet(attribute) carrying `attribute`, routed as `make_request`."""
    return make_request(
        Method.SET,
        attribute.ATTRIBUTE_ID,
        tid=tid,
        attribute_modifier=attribute_modifier,
        data=attribute,
        path=path,
        m_key=m_key,
        dr_slid=dr_slid,
        dr_dlid=dr_dlid,
    )


def pack_directed_request(
    method: int,
    attribute_id: int,
    data: bytes,
    *,
    tid: int,
    path_slot: bytes,
    hop_count: int,
    attribute_modifier: int = 0,
    m_key: int = 0,
) -> bytes:
    """The bytes of `make_request(method, ...).pack()` for a pure directed-route
    request (DrSLID = DrDLID = permissive), without building the record: an SM
    bringing up a large subnet sends millions of SMPs (2.5 M LinearForwardingTable
    blocks on a 44,544-LID, 3,584-switch fat tree, and a PortInfo Get and two or
    three Sets per port), each of which would otherwise be built as an attribute, an
    `Smp` and then packed. `path_slot` is `path_bytes(path)` (computed once per
    destination), `hop_count` the path's length; `data` at most 64 bytes (zero
    padded; empty for a Get)."""
    if len(data) > SMP_DATA_SIZE:
        raise WireError(f"SMP data holds {SMP_DATA_SIZE} bytes, got {len(data)}")
    if not 0 <= hop_count <= MAX_HOP_COUNT or len(path_slot) != SMP_PATH_SIZE:
        raise WireError(f"bad directed route: {hop_count} hops, {len(path_slot)} path bytes")
    try:
        return _DR.pack(
            1,
            _SUBN_DIRECTED_ROUTE,
            1,
            method,
            0,
            0,
            hop_count,
            tid,
            attribute_id,
            0,
            attribute_modifier,
            m_key,
            PERMISSIVE_LID,
            PERMISSIVE_LID,
            data,
            path_slot,
            _ZERO64,
        )
    except struct.error as exc:
        raise WireError(f"DR SMP field out of range: {exc}") from None


# A directed-route request split where `DirectedRequests` varies it: bytes 0..7
# (versions, class, method, status, hop pointer and count), TransactionID, bytes
# 16..19 (AttributeID, reserved), AttributeModifier, bytes 24..35 (M_Key, DrSLID,
# DrDLID), 28 reserved, data, both paths.
_DR_VARYING = struct.Struct(">8sQ4sI12s28x64s128s")


class DirectedRequests:
    """Pure directed-route requests of one method and attribute along one path,
    differing only in TID, AttributeModifier and data: the SM writing a switch's
    LinearForwardingTable blocks (696 per switch on a 44,544-LID subnet). The fixed
    fields are packed once; `pack` gives exactly the bytes of
    `pack_directed_request` with one precompiled struct call, a third of its time."""

    __slots__ = ("_attribute", "_head", "_middle", "_tail")

    def __init__(
        self, method: int, attribute_id: int, *, path_slot: bytes, hop_count: int, m_key: int = 0
    ) -> None:
        fixed = pack_directed_request(
            method, attribute_id, b"", tid=0, path_slot=path_slot, hop_count=hop_count,
            m_key=m_key,
        )  # fmt: skip
        self._head = fixed[0:8]
        self._attribute = fixed[16:20]
        self._middle = fixed[24:36]
        self._tail = fixed[_DR_INITIAL_PATH_OFFSET:]

    def pack(self, tid: int, attribute_modifier: int, data: bytes) -> bytes:
        if len(data) > SMP_DATA_SIZE:  # "64s" would cut it short silently
            raise WireError(f"SMP data holds {SMP_DATA_SIZE} bytes, got {len(data)}")
        try:
            return _DR_VARYING.pack(
                self._head, tid, self._attribute, attribute_modifier, self._middle, data,
                self._tail,
            )  # fmt: skip
        except struct.error as exc:
            raise WireError(f"DR SMP field out of range: {exc}") from None


def make_get_resp(
    request: Smp, data: SmpAttribute | bytes | None = None, *, status: int = 0
) -> Smp:
    """The SubnGetResp answering `request` (a Get or a Set; IBA Vol 1, 14.2.1).

    It keeps the TID, attribute, modifier and M_Key; a DR response also keeps the hop
    pointer, hop count, DrSLID, DrDLID and both paths and sets the D bit, so that
    `dr_originate` can send it back along the return path. `data` defaults to the
    request's data (what an SMA returns with an error status).
    """
    if request.is_response:
        raise WireError(f"method 0x{request.method:02x} is already a response")
    slot = request.data if data is None else _slot(data)
    if request.mgmt_class == _SUBN_DIRECTED_ROUTE:
        if not 0 <= status <= 0x7FFF:
            raise WireError(f"DR SMP status {status} does not fit 15 bits")
        return Smp(
            request.mgmt_class,
            Method.GET_RESP,
            request.attribute_id,
            request.attribute_modifier,
            request.tid,
            status,
            True,
            request.hop_pointer,
            request.hop_count,
            request.m_key,
            request.dr_slid,
            request.dr_dlid,
            slot,
            request.initial_path,
            request.return_path,
            request.class_version,
            request.base_version,
        )
    if not 0 <= status <= 0xFFFF:
        raise WireError(f"SMP status {status} does not fit 16 bits")
    return Smp(
        request.mgmt_class,
        Method.GET_RESP,
        request.attribute_id,
        request.attribute_modifier,
        request.tid,
        status,
        m_key=request.m_key,
        data=slot,
        class_version=request.class_version,
        base_version=request.base_version,
    )


# --- Directed-route hop processing (IBA Vol 1, 14.2.2) ---------------------------------


class DrAction(IntEnum):
    """What a node's SMI does with a directed-route SMP."""

    DISCARD = 0
    SEND = 1  # out of physical port `DrStep.port`, still directed
    LID_ROUTE = 2  # on by LID to `DrStep.lid` (None: the LRH address the caller knows)
    DELIVER = 3  # to the local SMA (outbound) or the local SM (returning)


@dataclass(frozen=True, slots=True)
class DrStep:
    """The outcome of one directed-route processing step."""

    action: DrAction
    smp: Smp
    port: int = 0
    lid: int | None = None
    reason: str = ""
    """Why a DISCARD happened (for traces); empty otherwise."""


def _moved(smp: Smp, hop_pointer: int, return_path: bytes | None = None) -> Smp:
    return Smp(
        smp.mgmt_class,
        smp.method,
        smp.attribute_id,
        smp.attribute_modifier,
        smp.tid,
        smp.status,
        smp.direction,
        hop_pointer,
        smp.hop_count,
        smp.m_key,
        smp.dr_slid,
        smp.dr_dlid,
        smp.data,
        smp.initial_path,
        smp.return_path if return_path is None else return_path,
        smp.class_version,
        smp.base_version,
    )


def _send(smp: Smp, port: int, num_ports: int, which: str) -> DrStep:
    if not 1 <= port <= num_ports:
        return DrStep(
            DrAction.DISCARD, smp, reason=f"{which} port {port} is not a port of this node"
        )
    return DrStep(DrAction.SEND, smp, port=port)


def _check_dr(smp: Smp) -> DrStep | None:
    if smp.mgmt_class != _SUBN_DIRECTED_ROUTE:
        raise WireError(f"class 0x{smp.mgmt_class:02x} is not a directed-route SMP")
    if smp.hop_count > MAX_HOP_COUNT:
        return DrStep(DrAction.DISCARD, smp, reason=f"hop count {smp.hop_count} > {MAX_HOP_COUNT}")
    return None


def dr_originate(smp: Smp, *, num_ports: int) -> DrStep:
    """The local SM (D = 0, hop pointer 0) or SMA (D = 1, a response) hands `smp` to
    this node's SMI to send (IBA Vol 1, 14.2.2). `num_ports` is the node's number of
    physical ports."""
    bad = _check_dr(smp)
    if bad is not None:
        return bad
    hp, hc = smp.hop_pointer, smp.hop_count
    if not smp.direction:
        if hp != 0:
            return DrStep(DrAction.DISCARD, smp, reason=f"new request with hop pointer {hp}")
        if hc == 0:
            out = _moved(smp, 1)
            if smp.dr_dlid == PERMISSIVE_LID:
                return DrStep(DrAction.DELIVER, out)
            return DrStep(DrAction.LID_ROUTE, out, lid=smp.dr_dlid)
        if smp.dr_slid != PERMISSIVE_LID:
            # First segment LID routed to the node where the directed part starts.
            return DrStep(DrAction.LID_ROUTE, smp)
        return _send(_moved(smp, 1), smp.initial_path[1], num_ports, "InitialPath[1]")
    # A response starts where its request was delivered: hop pointer HopCount + 1.
    if hp != hc + 1:
        return DrStep(DrAction.DISCARD, smp, reason=f"response hop pointer {hp} != hop count + 1")
    if hc == 0:
        out = _moved(smp, 0)
        if smp.dr_slid == PERMISSIVE_LID:
            return DrStep(DrAction.DELIVER, out)
        return DrStep(DrAction.LID_ROUTE, out, lid=smp.dr_slid)
    if smp.dr_dlid != PERMISSIVE_LID:
        # The request came over a LID-routed last segment: answer back along it.
        return DrStep(DrAction.LID_ROUTE, smp)
    return _send(_moved(smp, hc), smp.return_path[hc], num_ports, f"ReturnPath[{hc}]")


def dr_receive(smp: Smp, in_port: int, *, is_switch: bool, num_ports: int) -> DrStep:
    """`smp` arrives from the wire on physical port `in_port` of a node with
    `num_ports` physical ports (IBA Vol 1, 14.2.2: C14-9 outbound, C14-13 returning).
    The returned SMP has the hop pointer and, outbound, the return path updated."""
    bad = _check_dr(smp)
    if bad is not None:
        return bad
    if not 0 <= in_port <= 0xFF:
        raise WireError(f"arrival port {in_port} does not fit a path byte")
    hp, hc = smp.hop_pointer, smp.hop_count
    if not smp.direction:
        if hp == 0 and hc != 0:
            # Arrived over a LID-routed first segment: the directed part starts here.
            if smp.dr_slid == PERMISSIVE_LID:
                return DrStep(
                    DrAction.DISCARD, smp, reason="hop pointer 0 on a pure directed route"
                )
            if not is_switch:
                return DrStep(DrAction.DISCARD, smp, reason="directed part must start at a switch")
            return _send(_moved(smp, 1), smp.initial_path[1], num_ports, "InitialPath[1]")
        if 0 < hp < hc:
            if not is_switch:
                return DrStep(DrAction.DISCARD, smp, reason="only switches forward SMPs")
            path = bytearray(smp.return_path)
            path[hp] = in_port
            out = _moved(smp, hp + 1, bytes(path))
            return _send(out, smp.initial_path[hp + 1], num_ports, f"InitialPath[{hp + 1}]")
        if hp == hc:
            if hc:
                path = bytearray(smp.return_path)
                path[hp] = in_port
                out = _moved(smp, hp + 1, bytes(path))
            else:
                out = _moved(smp, hp + 1)
            if smp.dr_dlid == PERMISSIVE_LID:
                return DrStep(DrAction.DELIVER, out)
            if not is_switch:
                return DrStep(DrAction.DISCARD, smp, reason="only switches route on by LID")
            return DrStep(DrAction.LID_ROUTE, out, lid=smp.dr_dlid)
        if hp == hc + 1:
            return DrStep(DrAction.DELIVER, smp)
        return DrStep(
            DrAction.DISCARD, smp, reason=f"outbound hop pointer {hp} > hop count {hc} + 1"
        )
    if hc and hp == hc + 1:
        # Response arrived over the LID-routed last segment: the directed part resumes.
        if not is_switch:
            return DrStep(DrAction.DISCARD, smp, reason="directed part must end at a switch")
        return _send(_moved(smp, hc), smp.return_path[hc], num_ports, f"ReturnPath[{hc}]")
    if 2 <= hp <= hc:
        if not is_switch:
            return DrStep(DrAction.DISCARD, smp, reason="only switches forward SMPs")
        return _send(
            _moved(smp, hp - 1), smp.return_path[hp - 1], num_ports, f"ReturnPath[{hp - 1}]"
        )
    if hp == 1:
        out = _moved(smp, 0)
        if smp.dr_slid == PERMISSIVE_LID:
            return DrStep(DrAction.DELIVER, out)
        if not is_switch:
            return DrStep(DrAction.DISCARD, smp, reason="only switches route on by LID")
        return DrStep(DrAction.LID_ROUTE, out, lid=smp.dr_slid)
    if hp == 0:
        return DrStep(DrAction.DELIVER, smp)
    return DrStep(DrAction.DISCARD, smp, reason=f"returning hop pointer {hp} > hop count {hc} + 1")
