"""Which subscriptions a notice goes to (IBA Vol 1, 13.4.8.3 InformInfo; 13.4.11
event forwarding; OpenSM osm_inform.c `match_notice_to_inf_rec`).

A notice matches an InformInfo when every component the subscriber constrained
agrees:

    InformInfo        Notice
    GID (non-zero)    the notice's subject GID, exactly
    LIDRange          the subject LID within [LIDRangeBegin, LIDRangeEnd], only when
                      GID is zero and LIDRangeBegin is not 0xFFFF (all); an End of
                      0 means "Begin only" (13.4.8.3)
    IsGeneric         IsGeneric, always
    Type              Type, unless 0xFFFF
    TrapNumber        TrapNumber (generic) / DeviceID (vendor), unless 0xFFFF
    ProducerType      ProducerType (generic) / VendorID (vendor), unless 0xFFFFFF

The subject is what the notice is about. For the traps the SM issues about a
port or group (64..67: GIDADDR of the DataDetails) and for ibmig's path-change
notice (69: GIDADDR, the migrated VM's GID, at NewLID) it is that GID; for the
SMA traps that name a LID (128..131, 144, 145: LIDADDR) it is the issuer's GID at
that LID; otherwise the issuer (IssuerGID, IssuerLID). OpenSM compares InformInfo
GID and LIDRange with IssuerGID and IssuerLID in every case, so with OpenSM a
subscription naming a port's GID never matches that port's trap 64 or 65 (whose
issuer is the SM); it uses the DataDetails GID only for its partition check.
Matching the subject is what a subscriber asking for one GID means, and it lets a
peer subscribe to the path changes of one VM.
"""

from __future__ import annotations

from ibmig.core.sm.db import SubnetDb
from ibmig.wire.notice import (
    GidDetails,
    LinkStateChangeDetails,
    LocalChangesDetails,
    Notice,
    PathChangeDetails,
    PortThresholdDetails,
    SystemImageGuidChangedDetails,
)
from ibmig.wire.sa import InformInfo

ALL_LIDS = 0xFFFF
ALL_TYPES = 0xFFFF
ALL_TRAPS = 0xFFFF
ALL_PRODUCERS = 0xFFFFFF
_ZERO_GID = bytes(16)


def guid_of(gid: bytes) -> int:
    """The interface ID (low 64 bits) of a GID."""
    return int.from_bytes(gid[8:16], "big")


def make_gid(prefix: int, guid: int) -> bytes:
    """GID = 64-bit subnet prefix || 64-bit GUID (IBA Vol 1, 4.1.1)."""
    return prefix.to_bytes(8, "big") + guid.to_bytes(8, "big")


def notice_subject(notice: Notice, db: SubnetDb) -> tuple[bytes, int | None]:
    """(GID, LID) the notice is about (module docstring); the LID is None when no
    end port has it any more."""
    details = notice.details
    if notice.is_generic:
        if isinstance(details, GidDetails):
            return details.gid, db.lid_of_guid(guid_of(details.gid))
        if isinstance(details, PathChangeDetails):
            return details.gid, details.new_lid
        if isinstance(
            details,
            LinkStateChangeDetails
            | PortThresholdDetails
            | LocalChangesDetails
            | SystemImageGuidChangedDetails,
        ):
            return notice.issuer_gid, details.lid
    return notice.issuer_gid, notice.issuer_lid


def inform_matches(
    info: InformInfo, notice: Notice, subject_gid: bytes, subject_lid: int | None
) -> bool:
    """Does `notice` (about `subject_gid` at `subject_lid`) match the subscription?"""
    if bool(info.is_generic) != notice.is_generic:
        return False
    if info.gid != _ZERO_GID:
        if info.gid != subject_gid:
            return False
    elif info.lid_range_begin != ALL_LIDS:
        end = info.lid_range_end or info.lid_range_begin
        if subject_lid is None or not info.lid_range_begin <= subject_lid <= end:
            return False
    if info.type not in (ALL_TYPES, notice.type):
        return False
    if info.trap_number not in (ALL_TRAPS, notice.trap_number):
        return False
    return info.producer_type in (ALL_PRODUCERS, notice.producer_type)
