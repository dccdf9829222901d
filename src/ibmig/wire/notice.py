"""The Notice attribute and the DataDetails of the traps ibmig uses.

A Notice (attribute 0x0002; IBA Vol 1, 13.4.8.2 "Notice") is what an SMA sends to
the SM in a SubnTrap() and what the SA sends to subscribers in a SubnAdmReport().
It is 80 bytes:

    byte 0   IsGeneric (bit 7) | Type (bits 6..0)
    byte 1   ProducerType (generic) or VendorID (vendor specific), 24 bits
    byte 4   TrapNumber (generic) or DeviceID (vendor specific)
    byte 6   IssuerLID
    byte 8   NoticeToggle (bit 15) | NoticeCount (bits 14..0)
    byte 10  DataDetails, 54 bytes, laid out per trap number
    byte 64  IssuerGID

A SubnTrap() SMP has only 64 bytes of data, so it carries bytes 0..63 and no
IssuerGID; the SM fills IssuerGID in from the trap's source before it reports the
notice (OpenSM does the same in osm_trap_rcv.c). `Notice.pack_smp()` and
`Notice.unpack_smp()` handle that 64-byte form.

Type, and for generic notices ProducerType and TrapNumber, decode to their enum
member when known and stay plain ints otherwise. `Notice.details` is a typed
record when the notice is generic and its trap number has one
(`details_class()`), and the raw 54 bytes otherwise. Typed DataDetails
(IBA Vol 1, 14.2.5.1 "Notices and Traps", Tables for traps 64..259; layouts
cross-checked with OpenSM ib_types.h `ib_mad_notice_attr_t` and Wireshark
packet-infiniband.c `parse_NoticeDataDetails`):

    64, 65, 66, 67  GidDetails: 6 reserved bytes, GIDADDR (the port GID that
                    came into / went out of service, or the multicast MGID that
                    was created / deleted).
    128             LinkStateChangeDetails: LIDADDR of the switch.
    129, 130, 131   PortThresholdDetails: 2 reserved bytes, LIDADDR, PORTNO.
    144             LocalChangesDetails: 2 reserved, LIDADDR, 7 reserved bits,
                    OtherLocalChanges, CapabilityMask, 10 reserved bits, six
                    change flags (LocalChangeFlags), CapabilityMask2.
    145             SystemImageGuidChangedDetails: 2 reserved, LIDADDR, 2 reserved,
                    SystemImageGUID.
    69              PathChangeDetails: the migration path-change notice below.

Traps 256..259 (bad M_Key, P_Key, Q_Key, switch P_Key) and vendor-specific
notices stay raw bytes.

The path-change notice (ibmig's definition)
-------------------------------------------
What exists: besides 64..67, the SA-generated generic traps of IBA 1.2 (the
release OpenSM's and Wireshark's definitions follow) are 68 "UnPath" (the paths
selected by a PathRecord and a ComponentMask are no longer valid) and 69
"RePath" (those paths have been recomputed). Their DataDetails start with a
64-bit ComponentMask and a WaitForRepath bit; the PathRecord itself travels as
ClassTrapSpecificData after IssuerGID. OpenSM defines SM_UNPATH_TRAP = 68 and
SM_REPATH_TRAP = 69 ("UnPath, Path no longer valid", "RePath, Path
recomputed") but never sends them; Wireshark labels them "Paths indicated by
<PATH_REC> and <COMP_MASK> are no longer valid / have been recomputed" and
decodes `infiniband.trap.comp_mask` (DataDetails bytes 0..7) and
`infiniband.trap.wait_for_repath` (byte 8, bit 7). Neither knows any trap in
60..63 or 70..127; 128..131, 144 and 145 are SMA traps, 256..259 security traps
(bad M_Key, P_Key, Q_Key, switch P_Key). Stock OpenSM raises nothing when an
alias GUID (vGUID) moves to another port, which is the gap the signalling
mechanism fills.

ibmig therefore reports a migrated vGUID as a generic RePath notice, keeping
the IBA 1.2 fields where 1.2 put them and using the 45 bytes it left reserved
for the migration itself:

    IsGeneric = 1, Type = 3 (subnet management), ProducerType = 4 (class
    manager), TrapNumber = 69, IssuerLID = the SM's LID, IssuerGID = the SM
    port's GID (as OpenSM does for the SA-generated traps 64..67).

    DataDetails (54 bytes):
    byte 0   ComponentMask (64): PathRecord component mask selecting the paths
             that changed; ibmig sets PathRecordComp.DGID, meaning "every path
             whose DGID is GIDADDR below".
    byte 8   bit 7 WaitForRepath (0 in a RePath), bit 6 PathValues: bytes 46..49
             hold the new path's values (ibmig's "trap69-path"), bits 5..0
             reserved
    byte 9   reserved
    byte 10  GIDADDR (128): GID of the migrated VM = subnet prefix || vGUID
    byte 26  NewLID (16): LID of the port the VM now sits behind
    byte 28  OldLID (16): LID of the port it left
    byte 30  NewPortGUID (64): physical port GUID of the destination port
    byte 38  OldPortGUID (64): physical port GUID of the source port
    byte 46  with PathValues: bits 3..0 SL (bits 7..4 reserved), else reserved
    byte 47  with PathValues: bits 5..0 MTU (PathRecord MTU code, selector
             "exactly" implied), else reserved
    byte 48  with PathValues: bits 5..0 Rate (PathRecord code), else reserved
    byte 49  with PathValues: bits 5..0 PacketLifeTime (exponent), else reserved
    byte 50  reserved, 4 bytes

The PathValues are those of the PathRecord the receiver would get for its
port -> GIDADDR (the SA computes them per subscriber), in the encodings and bit
widths the PathRecord gives them (IBA Vol 1, 15.2.5.16). A receiver holding a
cached PathRecord to GIDADDR takes DLID = NewLID and these values without a
PathRecord query.

No ClassTrapSpecificData is sent: the SA data after the 80-byte Notice is zero.
A peer flushes its cached path for GIDADDR and resolves a new PathRecord (DLID =
NewLID); a dom0, subscribed once from its physical port, updates its vGUID ->
LID table from GIDADDR and NewLID and forwards the event to its local VMs. tshark
shows such a notice as trap 69 with its ComponentMask; it does not display the
migration fields.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from enum import IntEnum, IntFlag
from typing import ClassVar, Final

from ibmig.errors import WireError
from ibmig.wire.fastrecord import fast_constructor

NOTICE_ATTRIBUTE_ID: Final = 0x0002
NOTICE_SIZE: Final = 80
NOTICE_SMP_SIZE: Final = 64
DATA_DETAILS_SIZE: Final = 54
GID_SIZE: Final = 16


class NoticeType(IntEnum):
    """Notice Type (IBA Vol 1, 13.4.8.2)."""

    FATAL = 0x00
    URGENT = 0x01
    SECURITY = 0x02
    SM = 0x03  # subnet management
    INFO = 0x04
    EMPTY = 0x7F


class ProducerType(IntEnum):
    """ProducerType of a generic notice (IBA Vol 1, 13.4.8.2)."""

    CA = 0x000001
    SWITCH = 0x000002
    ROUTER = 0x000003
    CLASS_MANAGER = 0x000004


class TrapNumber(IntEnum):
    """Generic trap numbers (IBA Vol 1, 14.2.5.1 and 13.4.8.2; OpenSM ib_types.h)."""

    GID_IN_SERVICE = 0x0040  # 64
    GID_OUT_OF_SERVICE = 0x0041  # 65
    MCAST_GROUP_CREATED = 0x0042  # 66
    MCAST_GROUP_DELETED = 0x0043  # 67
    UNPATH = 0x0044  # 68, IBA 1.2
    REPATH = 0x0045  # 69, IBA 1.2; ibmig's path-change notice
    LINK_STATE_CHANGE = 0x0080  # 128
    LINK_INTEGRITY_THRESHOLD = 0x0081  # 129
    BUFFER_OVERRUN_THRESHOLD = 0x0082  # 130
    WATCHDOG_TIMER_EXPIRED = 0x0083  # 131
    LOCAL_CHANGES = 0x0090  # 144
    SYSTEM_IMAGE_GUID_CHANGED = 0x0091  # 145
    BAD_M_KEY = 0x0100  # 256
    BAD_P_KEY = 0x0101  # 257
    BAD_Q_KEY = 0x0102  # 258
    BAD_SWITCH_P_KEY = 0x0103  # 259


PATH_CHANGE_TRAP: Final = TrapNumber.REPATH
"""The trap number of ibmig's migration path-change notice (module docstring)."""

# Bit 2 of the PathRecord component mask (IBA Vol 1, 15.2.5.16): DGID. Repeated
# here rather than imported so that `notice` does not depend on `sa`.
_PATH_COMP_DGID: Final = 1 << 2


class LocalChangeFlags(IntFlag):
    """Change flags of trap 144 DataDetails (IBA Vol 1, 14.2.5.1; OpenSM TRAP_144_MASK_*)."""

    NODE_DESCRIPTION_CHANGE = 0x01
    LINK_WIDTH_ENABLED_CHANGE = 0x02
    LINK_SPEED_ENABLED_CHANGE = 0x04
    SM_PRIORITY_CHANGE = 0x08
    HIERARCHY_INFO_CHANGE = 0x10
    CAPABILITY_MASK2_CHANGE = 0x20


def _check_gid(name: str, gid: bytes) -> None:
    if not isinstance(gid, bytes) or len(gid) != GID_SIZE:
        raise WireError(f"{name} must be {GID_SIZE} bytes, got {gid!r}")


def _need(data: bytes, offset: int, size: int, what: str) -> None:
    if offset < 0 or len(data) - offset < size:
        raise WireError(f"{what} needs {size} bytes at offset {offset}, got {len(data) - offset}")


_GID_DETAILS = struct.Struct(">6x16s32x")
_LID_DETAILS = struct.Struct(">H52x")
_PORT_DETAILS = struct.Struct(">2xHB49x")
_LOCAL_DETAILS = struct.Struct(">2xHxBIHH40x")
_SYSGUID_DETAILS = struct.Struct(">2xH2xQ40x")
_PATH_DETAILS = struct.Struct(">QBx16sHHQQBBBB4x")
_PATH_VALUES_FLAG = 0x40
# What a receiver of trap 69 acts on: the flags byte, GIDADDR and NewLID; then the
# path's values (layout in the module docstring).
_PATH_MOVE = struct.Struct(">8xBx16sH")
_PATH_MOVE_VALUES = struct.Struct(">46xBBBB")


@dataclass(frozen=True, slots=True)
class GidDetails:
    """DataDetails of traps 64..67 (IBA Vol 1, 14.2.5.1): 6 reserved bytes, GIDADDR.

    `gid` is the port GID in or out of service (64, 65) or the MGID of the
    multicast group created or deleted (66, 67).
    """

    gid: bytes

    SIZE: ClassVar[int] = DATA_DETAILS_SIZE
    TRAP_NUMBERS: ClassVar[tuple[int, ...]] = (64, 65, 66, 67)

    def pack(self) -> bytes:
        _check_gid("GIDADDR", self.gid)
        return _GID_DETAILS.pack(self.gid)

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> GidDetails:
        _need(data, offset, DATA_DETAILS_SIZE, "trap 64..67 DataDetails")
        return cls(_GID_DETAILS.unpack_from(data, offset)[0])


@dataclass(frozen=True, slots=True)
class LinkStateChangeDetails:
    """DataDetails of trap 128 (IBA Vol 1, 14.2.5.1): LIDADDR of the switch whose
    port changed link state; the rest is reserved."""

    lid: int

    SIZE: ClassVar[int] = DATA_DETAILS_SIZE
    TRAP_NUMBERS: ClassVar[tuple[int, ...]] = (128,)

    def pack(self) -> bytes:
        try:
            return _LID_DETAILS.pack(self.lid)
        except struct.error as exc:
            raise WireError(f"trap 128 LIDADDR out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> LinkStateChangeDetails:
        _need(data, offset, DATA_DETAILS_SIZE, "trap 128 DataDetails")
        return cls(_LID_DETAILS.unpack_from(data, offset)[0])


@dataclass(frozen=True, slots=True)
class PortThresholdDetails:
    """DataDetails of traps 129, 130, 131 (IBA Vol 1, 14.2.5.1): 2 reserved bytes,
    LIDADDR, PORTNO (link integrity, buffer overrun, flow control watchdog)."""

    lid: int
    port_num: int

    SIZE: ClassVar[int] = DATA_DETAILS_SIZE
    TRAP_NUMBERS: ClassVar[tuple[int, ...]] = (129, 130, 131)

    def pack(self) -> bytes:
        try:
            return _PORT_DETAILS.pack(self.lid, self.port_num)
        except struct.error as exc:
            raise WireError(f"trap 129..131 DataDetails field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> PortThresholdDetails:
        _need(data, offset, DATA_DETAILS_SIZE, "trap 129..131 DataDetails")
        lid, port = _PORT_DETAILS.unpack_from(data, offset)
        return cls(lid, port)


@dataclass(frozen=True, slots=True)
class LocalChangesDetails:
    """DataDetails of trap 144 (IBA Vol 1, 14.2.5.1): a port's CapabilityMask,
    NodeDescription, enabled link width/speed, SM priority... changed.

    byte 2 LIDADDR; byte 5 bit 0 OtherLocalChanges; byte 6 CapabilityMask (new
    value); byte 10 change flags (low 6 bits, `LocalChangeFlags`); byte 12
    CapabilityMask2.
    """

    lid: int
    other_local_changes: bool = False
    capability_mask: int = 0
    change_flags: int = 0
    capability_mask2: int = 0

    SIZE: ClassVar[int] = DATA_DETAILS_SIZE
    TRAP_NUMBERS: ClassVar[tuple[int, ...]] = (144,)

    def pack(self) -> bytes:
        if not 0 <= self.change_flags <= 0x3F:
            raise WireError(f"trap 144 change flags {self.change_flags:#x} do not fit 6 bits")
        try:
            return _LOCAL_DETAILS.pack(
                self.lid,
                1 if self.other_local_changes else 0,
                self.capability_mask,
                self.change_flags,
                self.capability_mask2,
            )
        except struct.error as exc:
            raise WireError(f"trap 144 DataDetails field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> LocalChangesDetails:
        _need(data, offset, DATA_DETAILS_SIZE, "trap 144 DataDetails")
        lid, other, capmask, flags, capmask2 = _LOCAL_DETAILS.unpack_from(data, offset)
        return cls(lid, bool(other & 0x01), capmask, flags & 0x3F, capmask2)


@dataclass(frozen=True, slots=True)
class SystemImageGuidChangedDetails:
    """DataDetails of trap 145 (IBA Vol 1, 14.2.5.1): LIDADDR and the new
    SystemImageGUID."""

    lid: int
    system_image_guid: int

    SIZE: ClassVar[int] = DATA_DETAILS_SIZE
    TRAP_NUMBERS: ClassVar[tuple[int, ...]] = (145,)

    def pack(self) -> bytes:
        try:
            return _SYSGUID_DETAILS.pack(self.lid, self.system_image_guid)
        except struct.error as exc:
            raise WireError(f"trap 145 DataDetails field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> SystemImageGuidChangedDetails:
        _need(data, offset, DATA_DETAILS_SIZE, "trap 145 DataDetails")
        lid, guid = _SYSGUID_DETAILS.unpack_from(data, offset)
        return cls(lid, guid)


@dataclass(frozen=True, slots=True)
class PathValues:
    """The values of a PathRecord a path-carrying trap 69 carries (module docstring):
    PathRecord codes, as the SA would answer them."""

    sl: int
    mtu: int
    rate: int
    packet_life_time: int

    def __post_init__(self) -> None:
        if not 0 <= self.sl <= 0xF:
            raise WireError(f"path SL {self.sl} does not fit 4 bits")
        for name in ("mtu", "rate", "packet_life_time"):
            value = getattr(self, name)
            if not 0 <= value <= 0x3F:
                raise WireError(f"path {name} {value} does not fit 6 bits")


@dataclass(frozen=True, slots=True)
class PathChangeDetails:
    """DataDetails of ibmig's path-change notice, trap 69 (layout in the module docstring).

    `gid` is the migrated VM's GID (subnet prefix || vGUID); `new_lid` and
    `new_port_guid` name the port it now sits behind, `old_lid` and
    `old_port_guid` the one it left. `component_mask` keeps the IBA 1.2 RePath
    meaning (which PathRecord components select the changed paths).
    """

    gid: bytes
    new_lid: int
    old_lid: int
    new_port_guid: int
    old_port_guid: int = 0
    component_mask: int = _PATH_COMP_DGID
    wait_for_repath: bool = False
    path: PathValues | None = None
    """The new path's values ("trap69-path"); None: not carried."""

    SIZE: ClassVar[int] = DATA_DETAILS_SIZE
    TRAP_NUMBERS: ClassVar[tuple[int, ...]] = (69,)

    @property
    def subnet_prefix(self) -> int:
        return int.from_bytes(self.gid[:8], "big")

    @property
    def vguid(self) -> int:
        """The interface ID of `gid`: the VM's virtual GUID."""
        return int.from_bytes(self.gid[8:], "big")

    def pack(self) -> bytes:
        _check_gid("path-change GIDADDR", self.gid)
        try:
            path = self.path
            flags = (0x80 if self.wait_for_repath else 0) | (_PATH_VALUES_FLAG if path else 0)
            return _PATH_DETAILS.pack(
                self.component_mask,
                flags,
                self.gid,
                self.new_lid,
                self.old_lid,
                self.new_port_guid,
                self.old_port_guid,
                *((path.sl, path.mtu, path.rate, path.packet_life_time) if path else (0,) * 4),
            )
        except struct.error as exc:
            raise WireError(f"path-change DataDetails field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> PathChangeDetails:
        _need(data, offset, DATA_DETAILS_SIZE, "path-change DataDetails")
        mask, flags, gid, new_lid, old_lid, new_guid, old_guid, sl, mtu, rate, plt = (
            _PATH_DETAILS.unpack_from(data, offset)
        )
        path = _path_values(sl, mtu, rate, plt) if flags & _PATH_VALUES_FLAG else None
        build = _new_path_change_details if cls is PathChangeDetails else cls
        return build(gid, new_lid, old_lid, new_guid, old_guid, mask, bool(flags & 0x80), path)


# Every dom0 decodes one per migration in the subnet.
_new_path_change_details = fast_constructor(PathChangeDetails)


def _path_values(sl: int, mtu: int, rate: int, packet_life_time: int) -> PathValues:
    """The PathValues of DataDetails bytes 46..49, reserved bits dropped."""
    return PathValues(sl & 0xF, mtu & 0x3F, rate & 0x3F, packet_life_time & 0x3F)


NoticeDetails = (
    GidDetails
    | LinkStateChangeDetails
    | PortThresholdDetails
    | LocalChangesDetails
    | SystemImageGuidChangedDetails
    | PathChangeDetails
)
"""Any typed DataDetails record."""

_DETAIL_CLASSES: tuple[type[NoticeDetails], ...] = (
    GidDetails,
    LinkStateChangeDetails,
    PortThresholdDetails,
    LocalChangesDetails,
    SystemImageGuidChangedDetails,
    PathChangeDetails,
)

TRAP_DETAILS: Final[dict[int, type[NoticeDetails]]] = {
    number: klass for klass in _DETAIL_CLASSES for number in klass.TRAP_NUMBERS
}
"""Generic trap number -> typed DataDetails class."""


def details_class(trap_number: int) -> type[NoticeDetails] | None:
    """The typed DataDetails class of a generic trap, or None (details stay bytes)."""
    return TRAP_DETAILS.get(trap_number)


# Known enumerated values decode to the enum member, others stay plain ints.
_NOTICE_TYPES: dict[int, int] = {int(m): m for m in NoticeType}
_PRODUCER_TYPES: dict[int, int] = {int(m): m for m in ProducerType}
_TRAP_NUMBERS: dict[int, int] = {int(m): m for m in TrapNumber}

_NOTICE = struct.Struct(">IHHH54s16s")
_DETAILS_OFFSET = 10
_NOTICE_SMP = struct.Struct(">IHHH54s")


@dataclass(frozen=True, slots=True)
class Notice:
    """The Notice attribute (IBA Vol 1, 13.4.8.2); 80 bytes, 64 in an SMP.

    For a vendor-specific notice (`is_generic` False) `producer_type` holds the
    VendorID and `trap_number` the DeviceID (see the `vendor_id` and `device_id`
    properties). `details` is a typed record for the generic traps listed in
    `TRAP_DETAILS` and 54 raw bytes otherwise; `pack()` accepts raw bytes for any
    trap, but `unpack()` always types the details of a known generic trap.
    """

    is_generic: bool = True
    type: int = NoticeType.SM
    producer_type: int = ProducerType.CLASS_MANAGER
    trap_number: int = 0
    issuer_lid: int = 0
    notice_toggle: bool = False
    notice_count: int = 0
    details: NoticeDetails | bytes = bytes(DATA_DETAILS_SIZE)
    issuer_gid: bytes = bytes(GID_SIZE)

    ATTRIBUTE_ID: ClassVar[int] = NOTICE_ATTRIBUTE_ID
    SIZE: ClassVar[int] = NOTICE_SIZE
    SMP_SIZE: ClassVar[int] = NOTICE_SMP_SIZE
    ATTRIBUTE_OFFSET: ClassVar[int] = NOTICE_SIZE // 8

    @property
    def vendor_id(self) -> int:
        return self.producer_type

    @property
    def device_id(self) -> int:
        return self.trap_number

    def _head(self) -> tuple[int, int, int, int, bytes]:
        if not 0 <= self.type <= 0x7F:
            raise WireError(f"Notice Type {self.type:#x} does not fit 7 bits")
        if not 0 <= self.producer_type <= 0xFFFFFF:
            raise WireError(f"Notice ProducerType/VendorID {self.producer_type:#x} exceeds 24 bits")
        if not 0 <= self.notice_count <= 0x7FFF:
            raise WireError(f"NoticeCount {self.notice_count} does not fit 15 bits")
        details = self.details
        if isinstance(details, bytes):
            if len(details) != DATA_DETAILS_SIZE:
                raise WireError(
                    f"Notice DataDetails must be {DATA_DETAILS_SIZE} bytes, got {len(details)}"
                )
            raw = details
        else:
            expected = TRAP_DETAILS.get(self.trap_number) if self.is_generic else None
            if expected is not details.__class__:
                kind = "generic" if self.is_generic else "vendor-specific"
                raise WireError(
                    f"{details.__class__.__name__} is not the DataDetails of {kind} "
                    f"trap {self.trap_number}"
                )
            raw = details.pack()
        first = (0x80000000 if self.is_generic else 0) | (self.type << 24) | self.producer_type
        toggle_count = (0x8000 if self.notice_toggle else 0) | self.notice_count
        return first, self.trap_number, self.issuer_lid, toggle_count, raw

    def pack(self) -> bytes:
        """The 80-byte attribute as carried in SA MADs (with IssuerGID)."""
        first, trap, lid, toggle_count, raw = self._head()
        _check_gid("IssuerGID", self.issuer_gid)
        try:
            return _NOTICE.pack(first, trap, lid, toggle_count, raw, self.issuer_gid)
        except struct.error as exc:
            raise WireError(f"Notice field out of range: {exc}") from None

    def pack_smp(self) -> bytes:
        """The 64-byte form carried in a SubnTrap() SMP: IssuerGID is left out."""
        first, trap, lid, toggle_count, raw = self._head()
        try:
            return _NOTICE_SMP.pack(first, trap, lid, toggle_count, raw)
        except struct.error as exc:
            raise WireError(f"Notice field out of range: {exc}") from None

    @classmethod
    def _decode(cls, head: tuple[int, int, int, int, bytes], gid: bytes) -> Notice:
        first, trap, lid, toggle_count, raw = head
        generic = bool(first & 0x80000000)
        notice_type = (first >> 24) & 0x7F
        producer = first & 0xFFFFFF
        details: NoticeDetails | bytes = raw
        if generic:
            klass = TRAP_DETAILS.get(trap)
            if klass is not None:
                details = klass.unpack(raw)
            producer = _PRODUCER_TYPES.get(producer, producer)
            trap = _TRAP_NUMBERS.get(trap, trap)
        return cls(
            generic,
            _NOTICE_TYPES.get(notice_type, notice_type),
            producer,
            trap,
            lid,
            bool(toggle_count & 0x8000),
            toggle_count & 0x7FFF,
            details,
            gid,
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> Notice:
        """Decode the 80-byte attribute starting at `offset` (a fixed-size slot)."""
        _need(data, offset, NOTICE_SIZE, "Notice")
        first, trap, lid, toggle_count, raw, gid = _NOTICE.unpack_from(data, offset)
        return cls._decode((first, trap, lid, toggle_count, raw), gid)

    @classmethod
    def unpack_smp(cls, data: bytes, offset: int = 0) -> Notice:
        """Decode the 64-byte SMP form; `issuer_gid` comes back as zeros."""
        _need(data, offset, NOTICE_SMP_SIZE, "SMP Notice")
        return cls._decode(_NOTICE_SMP.unpack_from(data, offset), bytes(GID_SIZE))


def peek_trap_number(data: bytes, offset: int = 0) -> int | None:
    """TrapNumber of the encoded Notice at `offset`, or None for a vendor-specific
    notice (whose bytes 4..5 are a DeviceID), without decoding the rest."""
    _need(data, offset, NOTICE_SIZE, "Notice")
    if not data[offset] & 0x80:
        return None
    return (data[offset + 4] << 8) | data[offset + 5]


def peek_path_change(data: bytes, offset: int = 0) -> PathChangeDetails | None:
    """The DataDetails of the encoded Notice at `offset` when it is the generic
    path-change notice (trap 69), else None; nothing else is decoded (a receiver
    that acts on the move alone reads less: `peek_path_move`)."""
    if peek_trap_number(data, offset) != PATH_CHANGE_TRAP:
        return None
    return PathChangeDetails.unpack(data, offset + _DETAILS_OFFSET)


def peek_path_move(data: bytes, offset: int = 0) -> tuple[bytes, int, PathValues | None] | None:
    """(GIDADDR, NewLID, the new path's values or None) of the encoded Notice at
    `offset` when it is the generic path-change notice (trap 69), else None: the
    fields a receiver acts on, read without decoding the rest (every subscribed
    dom0 reads one per migration in the subnet; `peek_path_change` gives the whole
    DataDetails)."""
    if peek_trap_number(data, offset) != PATH_CHANGE_TRAP:
        return None
    details = offset + _DETAILS_OFFSET
    flags, gid, new_lid = _PATH_MOVE.unpack_from(data, details)
    if not flags & _PATH_VALUES_FLAG:
        return gid, new_lid, None
    return gid, new_lid, _path_values(*_PATH_MOVE_VALUES.unpack_from(data, details))


def path_change_notice(
    *,
    gid: bytes,
    new_lid: int,
    old_lid: int,
    new_port_guid: int,
    old_port_guid: int = 0,
    issuer_lid: int = 0,
    issuer_gid: bytes = bytes(GID_SIZE),
    notice_toggle: bool = False,
    notice_count: int = 0,
) -> Notice:
    """ibmig's migration path-change notice (trap 69, module docstring), ready to Report."""
    return Notice(
        is_generic=True,
        type=NoticeType.SM,
        producer_type=ProducerType.CLASS_MANAGER,
        trap_number=PATH_CHANGE_TRAP,
        issuer_lid=issuer_lid,
        notice_toggle=notice_toggle,
        notice_count=notice_count,
        details=PathChangeDetails(gid, new_lid, old_lid, new_port_guid, old_port_guid),
        issuer_gid=issuer_gid,
    )


def with_path_values(notice: Notice, path: PathValues | None) -> Notice:
    """A trap 69 notice whose DataDetails carry `path` (None: as it is)."""
    details = notice.details
    if path is None or not isinstance(details, PathChangeDetails):
        return notice
    return replace(notice, details=replace(details, path=path))


def gid_service_notice(
    trap_number: int, *, gid: bytes, issuer_lid: int = 0, issuer_gid: bytes = bytes(GID_SIZE)
) -> Notice:
    """Trap 64 (GID in service) or 65 (GID out of service) about `gid`, as the SM
    issues it (IBA Vol 1, 14.2.5.1: DataDetails GIDADDR; OpenSM osm_state_mgr.c)."""
    if trap_number not in (TrapNumber.GID_IN_SERVICE, TrapNumber.GID_OUT_OF_SERVICE):
        raise ValueError(f"trap {trap_number} is neither 64 nor 65")
    return Notice(
        is_generic=True,
        type=NoticeType.SM,
        producer_type=ProducerType.CLASS_MANAGER,
        trap_number=trap_number,
        issuer_lid=issuer_lid,
        details=GidDetails(gid),
        issuer_gid=issuer_gid,
    )


def peek_gid_service(data: bytes, offset: int = 0) -> tuple[int, bytes] | None:
    """(trap number, GIDADDR) of the encoded Notice at `offset` when it is trap 64
    or 65, else None; nothing else is decoded."""
    trap = peek_trap_number(data, offset)
    if trap not in (TrapNumber.GID_IN_SERVICE, TrapNumber.GID_OUT_OF_SERVICE):
        return None
    return trap, GidDetails.unpack(data, offset + _DETAILS_OFFSET).gid
