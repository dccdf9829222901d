"""Turn wire records into JSON-ready values, by the naming conventions of `ibmig.wire`.

Every codec names GUID fields `*guid` (ints) and GID fields `*gid` (16 bytes), so
one generic walk over a record's dataclass fields can render them the way network
engineers read them: GUIDs as 0x-prefixed 16-digit hex, GIDs in IPv6 text form,
integers as numbers, IP addresses as text, other byte strings as hex.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from enum import Enum
from typing import Any

JsonValue = Any


def gid_text(gid: bytes) -> str:
    """A GID in IPv6 text form (IBA Vol 1, 4.1.1: GIDs are IPv6 addresses)."""
    return str(ipaddress.IPv6Address(gid))


def guid_text(guid: int) -> str:
    return f"0x{guid:016x}"


def _field(name: str, value: object) -> JsonValue:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if name.endswith("guid") and not isinstance(value, Enum):
            return guid_text(value)
        return int(value)
    if isinstance(value, (bytes, bytearray)):
        if name.endswith("gid") and len(value) == 16:
            return gid_text(bytes(value))
        return bytes(value).hex()
    if isinstance(value, (tuple, list)):
        singular = name[:-1] if name.endswith("s") else name
        return [_field(singular, item) for item in value]
    return to_json(value)


def to_json(record: object) -> JsonValue:
    """A dict of the record's fields (recursively), or the value itself for scalars."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: _field(f.name, getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, Enum):
        return record.value
    if record is None or isinstance(record, (int, str, float, bool)):
        return record
    if isinstance(record, (bytes, bytearray)):
        return bytes(record).hex()
    if isinstance(record, (tuple, list)):
        return [to_json(item) for item in record]
    if isinstance(record, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(record)  # IPoIB ARP and the IP CM header carry IP addresses
    raise TypeError(f"cannot render {type(record).__name__} as JSON")
