"""Partition configuration in OpenSM's partitions.conf format, and what it makes of a
subnet's P_Key tables.

Grammar (OpenSM doc/partition-config.txt, osm_prtn_config.c)::

    [Name][=PKey][,indx0][,ipoib][,mgroup_flag]*[,defmember=full|limited|both] :
        [PortGUID[=full|limited|both] | ALL | ALL_CAS | ALL_SWITCHES | ALL_ROUTERS
         | SELF | mgid=GID[,mgroup_flag]*] [, ...] ;

`#` starts a comment; white space may surround every delimiter; a definition may
span lines. Only the low 15 bits of a P_Key count; a definition without one gets
the next free value from 1 up (OpenSM generate_pkey). Definitions with the same
P_Key are merged under the first name. A membership OpenSM does not recognise is
taken as limited (as OpenSM does, with a warning, collected here in `warnings`;
a prefix such as "limi" counts, as OpenSM compares prefixes); unknown partition
flags are ignored with a warning. A port named twice in a partition takes the
later rule's membership; `both` is full (OpenSM with allow_both_pkeys off). What
OpenSM refuses, this parser refuses with a `ConfigError` naming the file and the
line the definition starts on: no ':' before ';', a bad P_Key, a bad port GUID,
a non-multicast mgid, text after the last ';'.

Implicit default partition (doc/partition-config.txt, osm_prtn.c): OpenSM makes
`Default=0x7fff : ALL=limited, SELF=full ;` before it reads the file, whose rules
for 0x7FFF then apply on top (so `Default=0x7fff : ALL_CAS=limited ;` makes the
SM's port, a CA port, limited again).

Virtual functions (ibmig's model of shared-port SR-IOV)
-------------------------------------------------------
A port GUID in the file may be a VM's virtual GUID (an alias GUID in its host's
GUIDInfo table). A shared-port VF has no P_Key table of its own on the wire: the HCA
virtualises the physical port's table, showing each VF the entries its hypervisor
mapped to it (mlx4's per-VF virtual-to-physical P_Key index map). So:

- a physical port's table holds every partition of the port GUID itself and of
  every alias GUID it holds now (a VM's partitions follow it to its new host);
- a VM (alias GUID) is a member of exactly the partitions naming its vGUID, or
  ALL / ALL_CAS (these keywords cover VMs, so `Default=0x7fff : ALL=full ;` still
  connects everything). The SA checks partitions of an alias GUID with these,
  the physical port's with its table. OpenSM, which knows no VFs, uses the
  physical port's table for both.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Final

from ibmig.errors import ConfigError, shown

DEFAULT_PKEY: Final = 0x7FFF
"""The default partition's P_Key base (IBA Vol 1, 10.9.1.2)."""
FULL_MEMBER: Final = 0x8000
KEYWORDS: Final = frozenset({"ALL", "ALL_CAS", "ALL_SWITCHES", "ALL_ROUTERS", "SELF"})
_MGROUP_FLAGS: Final = frozenset({"rate", "mtu", "sl", "scope", "q_key", "tclass", "flowlabel"})


class Membership(Enum):
    FULL = "full"
    LIMITED = "limited"
    BOTH = "both"

    def table_key(self, pkey: int) -> int:
        """The P_Key table entry of a member (bit 15 = full membership). `both` is a
        full member, as OpenSM with allow_both_pkeys off (its default)."""
        return pkey if self is Membership.LIMITED else pkey | FULL_MEMBER


@dataclass(frozen=True, slots=True)
class PortSpecifier:
    target: str | int
    """A keyword of `KEYWORDS`, or a port GUID (or a VM's vGUID)."""
    membership: Membership


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    pkey: int
    """The low 15 bits."""
    members: tuple[PortSpecifier, ...] = ()
    ipoib: bool = False
    index0: bool = False
    mgids: tuple[str, ...] = ()
    """Multicast groups the file pre-creates (parsed and checked; not created here)."""


@dataclass(frozen=True, slots=True)
class PartitionConfig:
    partitions: tuple[Partition, ...]
    source: str = "partitions.conf"
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def by_pkey(self, pkey: int) -> Partition | None:
        return next((p for p in self.partitions if p.pkey == pkey & 0x7FFF), None)

    def with_implicit_default(self) -> PartitionConfig:
        """The configuration as OpenSM applies it (osm_prtn.c prtn_make_default): the
        default partition made first, every port a limited member and the SM's a
        full one, the file's rules for 0x7FFF applied after those."""
        implicit = (
            PortSpecifier("ALL", Membership.LIMITED),
            PortSpecifier("SELF", Membership.FULL),
        )
        given = self.by_pkey(DEFAULT_PKEY)
        if given is None:
            default = Partition("Default", DEFAULT_PKEY, implicit)
        elif given.members[:2] == implicit:
            return self  # applied already
        else:
            default = replace(given, members=implicit + given.members)
        rest = tuple(p for p in self.partitions if p.pkey != DEFAULT_PKEY)
        return PartitionConfig((default, *rest), self.source, self.warnings)


@dataclass(frozen=True, slots=True)
class EndPortKind:
    """What a member of a partition is, for the keywords."""

    guid: int
    is_switch: bool = False
    is_router: bool = False
    is_sm: bool = False
    is_alias: bool = False


def resolve_keys(config: PartitionConfig, port: EndPortKind) -> tuple[int, ...]:
    """The P_Keys (with membership bit) `port` has under `config` (give it
    `with_implicit_default()` for OpenSM's default partition), in table order: an
    `indx0` partition first, then the default partition, then the others in file
    order. A port named again in a partition takes the later rule's membership
    (OpenSM osm_prtn_add_port: "Will overwrite")."""
    keys: list[int] = []
    ordered = sorted(
        config.partitions, key=lambda p: (not p.index0, p.pkey != DEFAULT_PKEY)
    )  # stable: file order otherwise
    for partition in ordered:
        key = None
        for member in partition.members:
            if _covers(member.target, port):
                key = member.membership.table_key(partition.pkey)
        if key is not None:
            keys.append(key)
    return tuple(keys)


def _covers(target: str | int, port: EndPortKind) -> bool:
    if isinstance(target, int):
        return target == port.guid
    if target == "ALL":
        return True
    if target == "ALL_CAS":
        return not port.is_switch and not port.is_router
    if target == "ALL_SWITCHES":
        return port.is_switch and not port.is_alias
    if target == "ALL_ROUTERS":
        return port.is_router and not port.is_alias
    return target == "SELF" and port.is_sm and not port.is_alias


def shares_partition(a: Iterable[int], b: Iterable[int], pkey: int | None = None) -> bool:
    """Do two P_Key sets share a partition (of `pkey`, if given) with at least one
    side a full member? (IBA Vol 1, 10.9.3; OpenSM osm_physp_share_pkey, with
    allow_both_pkeys off: a partition counts when either side holds its full key.)"""
    limited_a: dict[int, bool] = {}
    for key in a:
        base = key & 0x7FFF
        if base:
            limited_a[base] = limited_a.get(base, False) or bool(key & FULL_MEMBER)
    for key in b:
        base = key & 0x7FFF
        if not base or base not in limited_a:
            continue
        if pkey is not None and base != pkey & 0x7FFF:
            continue
        if key & FULL_MEMBER or limited_a[base]:
            return True
    return False


def common_pkey(a: Iterable[int], b: Iterable[int]) -> int | None:
    """The P_Key a PathRecord between two ports carries when none was asked for: the
    lowest partition both share with one side a full member, as the first side's
    table holds it (OpenSM osm_physp_find_common_pkey); None if none."""
    keys_b: dict[int, bool] = {}
    for key in b:
        if key & 0x7FFF:
            keys_b[key & 0x7FFF] = keys_b.get(key & 0x7FFF, False) or bool(key & FULL_MEMBER)
    for key in sorted(a, key=lambda k: (k & 0x7FFF, not k & FULL_MEMBER)):
        base = key & 0x7FFF
        if base in keys_b and (key & FULL_MEMBER or keys_b[base]):
            return key
    return None


# --- parsing -------------------------------------------------------------------------

_NAME_PKEY = re.compile(r"^\s*([^=,]*?)\s*(?:=\s*([^,]*?)\s*)?$")


def load_partitions(path: str | Path) -> PartitionConfig:
    """Read a partitions.conf file (`ConfigError` if missing or malformed)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read partition configuration: {exc}", str(path)) from None
    return parse_partitions(text, str(path))


def parse_partitions(
    text: str, source: str = "partitions.conf", names: Mapping[str, int] | None = None
) -> PartitionConfig:
    """Parse partitions.conf text (module docstring). `names`: port names a file may
    use in place of GUIDs (a scenario's "host3", "vm7"), with their GUIDs."""
    # Statements end at ';'; each remembers the line it started on.
    statements: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for lineno, raw_line in enumerate(text.splitlines(), 1):
        rest = raw_line.split("#", 1)[0]
        while rest:
            head, sep, rest = rest.partition(";")
            if head.strip() and not "".join(current).strip():
                start = lineno
            current.append(head)
            if not sep:
                current.append("\n")
                break
            body = "".join(current).strip()
            if body:
                statements.append((start or lineno, body))
            current = []
            start = 0
    leftover = "".join(current).strip()
    if leftover:
        raise ConfigError(
            f"definition without its closing ';': {shown(leftover)}", f"{source}:{start}"
        )
    merged: dict[int, Partition] = {}
    warnings: list[str] = []
    used = {_explicit_pkey(body, source, lineno) for lineno, body in statements} - {None}
    counter = 0
    for lineno, body in statements:
        where = f"{source}:{lineno}"
        definition, colon, properties = body.partition(":")
        if not colon:
            raise ConfigError("no partition definition found (missing ':')", where)
        name, pkey, flags = _definition(definition, where, warnings)
        if pkey is None:
            while True:
                counter += 1
                if counter >= DEFAULT_PKEY:
                    raise ConfigError("no P_Key left to generate", where)
                if counter not in used:
                    break
            pkey = counter
            used.add(pkey)
        members, mgids = _properties(properties, flags.default_member, where, warnings, names)
        old = merged.get(pkey)
        if old is None:
            merged[pkey] = Partition(name, pkey, members, flags.ipoib, flags.index0, mgids)
        else:
            merged[pkey] = Partition(
                old.name,
                pkey,
                old.members + members,
                old.ipoib or flags.ipoib,
                old.index0 or flags.index0,
                old.mgids + mgids,
            )
    return PartitionConfig(tuple(merged.values()), source, tuple(warnings))


@dataclass(slots=True)
class _Flags:
    ipoib: bool = False
    index0: bool = False
    default_member: Membership = Membership.LIMITED


def _explicit_pkey(body: str, source: str, lineno: int) -> int | None:
    definition, colon, _ = body.partition(":")
    if not colon:
        return None
    match = _NAME_PKEY.match(definition.split(",", 1)[0])
    if match is None or match.group(2) is None:
        return None
    return _pkey(match.group(2), f"{source}:{lineno}")


def _pkey(text: str, where: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise ConfigError(f"bad P_Key {shown(text)}", where) from None
    if not 0 <= value <= 0xFFFF or not value & 0x7FFF:
        raise ConfigError(f"bad P_Key {shown(text)} (16 bits, low 15 not all zero)", where)
    return value & 0x7FFF


def _definition(text: str, where: str, warnings: list[str]) -> tuple[str, int | None, _Flags]:
    first, *rest = text.split(",")
    match = _NAME_PKEY.match(first)
    if match is None:
        raise ConfigError(f"bad partition definition {shown(first.strip())}", where)
    name = match.group(1)
    pkey = None if match.group(2) is None else _pkey(match.group(2), where)
    flags = _Flags()
    for item in rest:
        key, _, value = (part.strip() for part in item.partition("="))
        lowered = key.lower()
        if lowered == "ipoib":
            flags.ipoib = True
        elif lowered == "indx0":
            flags.index0 = True
        elif lowered == "defmember":
            member = _membership(value)
            if member is None:
                raise ConfigError(f"bad partition flags: defmember={shown(value)}", where)
            flags.default_member = member
        elif lowered in _MGROUP_FLAGS:
            _flag_value(key, value, where)
        elif not key:
            raise ConfigError("bad partition flags: empty flag", where)
        else:
            warnings.append(f"{where}: unrecognized partition flag {key!r}, ignored")
    return name, pkey, flags


def _flag_value(key: str, value: str, where: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise ConfigError(f"bad value for {key}: {shown(value)}", where) from None


def _membership(text: str) -> Membership | None:
    """full, limited or both, or any prefix of one, as OpenSM compares them
    (strncmp over the flag's length: "limi" is limited)."""
    text = text.strip()
    if not text:
        return None
    return next((m for m in Membership if m.value.startswith(text)), None)


def _properties(
    text: str,
    default: Membership,
    where: str,
    warnings: list[str],
    names: Mapping[str, int] | None,
) -> tuple[tuple[PortSpecifier, ...], tuple[str, ...]]:
    members: list[PortSpecifier] = []
    mgids: list[str] = []
    in_group = False
    for raw in re.split(r"[,\n]", text):
        item = raw.strip()
        if not item:
            continue
        key, eq, value = (part.strip() for part in item.partition("="))
        if key.lower() == "mgid":
            try:
                address = ipaddress.IPv6Address(value)
            except ValueError:
                raise ConfigError(f"mgid {shown(value)}: not a GID", where) from None
            if address.packed[0] != 0xFF:
                raise ConfigError(f"mgid {shown(value)}: gid is not multicast", where)
            mgids.append(str(address))
            in_group = True
            continue
        if in_group and key.lower() in _MGROUP_FLAGS:
            _flag_value(key, value, where)
            continue
        in_group = False
        membership = default
        if eq:
            found = _membership(value)
            if found is None:
                warnings.append(f"{where}: membership {value!r} not recognized, limited assumed")
                membership = Membership.LIMITED
            else:
                membership = found
        if key in KEYWORDS:
            members.append(PortSpecifier(key, membership))
            continue
        if names is not None and key in names:
            members.append(PortSpecifier(names[key], membership))
            continue
        try:
            guid = int(key, 0)
        except ValueError:
            raise ConfigError(f"bad PortGUID {shown(key)}", where) from None
        if not 0 < guid < 1 << 64:
            raise ConfigError(f"bad PortGUID {shown(key)}", where)
        members.append(PortSpecifier(guid, membership))
    return tuple(members), tuple(mgids)


__all__ = [
    "DEFAULT_PKEY",
    "FULL_MEMBER",
    "EndPortKind",
    "Membership",
    "Partition",
    "PartitionConfig",
    "PortSpecifier",
    "common_pkey",
    "load_partitions",
    "parse_partitions",
    "resolve_keys",
    "shares_partition",
]
