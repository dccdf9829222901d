"""The SA's read-only table records: LinkRecord, SwitchInfoRecord, SMInfoRecord,
P_KeyTableRecord, SLtoVLMappingTableRecord, VLArbitrationTableRecord and
LinearForwardingTableRecord (IBA Vol 1, 15.2.5), answered from the SM's database
with OpenSM's ComponentMask rules (osm_sa_link_record.c, osm_sa_sw_info_record.c,
osm_sa_sminfo_record.c, osm_sa_pkey_record.c, osm_sa_slvl_record.c,
osm_sa_vlarb_record.c, osm_sa_lft_record.c).

Each query function takes the SM and the request and returns the matching
records; `ibmig.core.sa.admin` answers them (Get: exactly one, else
ERR_NO_RECORDS / ERR_TOO_MANY_RECORDS; GetTable: all, RMPP when asked).
Only SubnAdmGet and SubnAdmGetTable are served (OpenSM answers other methods with
UNSUP_METHOD_ATTR, as the SA's handler table does).

Order. A query over the whole subnet walks nodes (LinkRecord), switches
(SwitchInfoRecord, LFTRecord) or end ports (the table records) in OpenSM's order:
its maps are keyed by the GUID in network byte order compared as a host
(little-endian) integer, i.e. by the GUID's bytes read lowest first
(`osm_map_order`). On ibsim, where a requester sees only the first MAD of a table,
this makes ibmig's first MAD hold the records OpenSM's does.

Common rules. A LID in the mask names an end port (a switch's port 0 or a CA
port; any LID of its LMC range); a LID no port has gives no record. Records of
a switch carry the LID of its port 0, of a CA port that port's LID. Every port
is taken to share the requester's partitions here (OpenSM checks the requester
against each port; ibmig does that for PathRecords, InformInfo, Reports and
GUIDInfoRecord writes, `ibmig.core.sa.admin`).

What the tables hold:
- LinkRecord: every link the SM discovered, one record per direction.
- SwitchInfoRecord: SwitchInfo as the switch last answered the SM (Get or Set).
- SMInfoRecord: this SM only (it tracks no other SM), its SMInfo with SM_Key 0 as
  OpenSM answers it; LID the SM's port LID.
- P_KeyTableRecord: only for a trusted requester (SM_Key = the SA key), else
  ERR_REQ_INVALID, as OpenSM. Blocks per port as OpenSM reads them: a CA port or
  switch port 0 has ceil(NodeInfo.PartitionCap / 32), a switch's other port
  ceil(SwitchInfo.PartitionEnforcementCap / 32). The contents are the SM's
  view: the table it last wrote with a partition configuration
  (`SubnetManager.pkey_tables`), else the default P_Key 0xFFFF in entry 0 of
  block 0 (a requested block beyond the table is answered with zeros, as OpenSM
  does).
- SLtoVLMappingTableRecord and VLArbitrationTableRecord: OpenSM with QoS off (its
  default) neither reads nor writes these tables and its SA answers them from its
  zero-filled port objects; ibmig's SM does not touch them either and answers the
  same zeros. A CA has one SL2VL record (ports 0/0) and four VLArb blocks on its
  own port; a switch one SL2VL record per (input, output) pair of ports 0..N and
  four VLArb blocks per port.
- LFTRecord: the blocks the SM programmed, 0 .. max LID / 64 (OpenSM's "blocks
  in use").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Final

from ibmig.core.sm.db import NodeRecordData, PortRecordData, SubnetDb
from ibmig.core.sm.manager import SubnetManager
from ibmig.wire.sa import (
    LFTRecord,
    LFTRecordComp,
    LinkRecord,
    LinkRecordComp,
    PKeyTableRecord,
    PKeyTableRecordComp,
    SaAttr,
    SaMad,
    SaRecord,
    SaStatus,
    SLtoVLMappingTableRecord,
    SLtoVLMappingTableRecordComp,
    SMInfoRecord,
    SMInfoRecordComp,
    SwitchInfoRecord,
    SwitchInfoRecordComp,
    VLArbitrationTableRecord,
    VLArbitrationTableRecordComp,
)
from ibmig.wire.smp_attrs import (
    LFT_BLOCK_SIZE,
    PKEY_BLOCK_SIZE,
    LinearForwardingTable,
    PKeyTable,
    SwitchInfo,
)

DEFAULT_PKEY: Final = 0xFFFF
VL_ARB_BLOCKS: Final = (1, 2, 3, 4)  # low priority 1-2, high priority 3-4 (14.2.5.9)
_DEFAULT_PKEY_BLOCK: Final = PKeyTable((DEFAULT_PKEY,) + (0,) * (PKEY_BLOCK_SIZE - 1))
_EMPTY_PKEY_BLOCK: Final = PKeyTable()


class RequestError(Exception):
    """Answer the request with this MAD status (and optionally other data)."""

    def __init__(self, status: int, data: bytes | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.data = data


Query = Callable[[SubnetManager, SaMad], Sequence[SaRecord]]


def osm_map_order(guid: int) -> int:
    """Sort key giving OpenSM's map order of GUIDs (module docstring)."""
    return int.from_bytes(guid.to_bytes(8, "big"), "little")


def _nodes(db: SubnetDb) -> list[NodeRecordData]:
    return sorted(db.nodes.values(), key=lambda node: osm_map_order(node.node_guid))


def _base_lid(db: SubnetDb, node: NodeRecordData, port: int) -> int:
    """LID of the end port a port belongs to: a switch's port 0, a CA port itself."""
    record = node.ports.get(0 if node.is_switch else port)
    return 0 if record is None else db.port_lid.get(record.port_guid, 0)


def _lmc(record: PortRecordData) -> int:
    return record.info.lmc if record.info is not None else 0


def _end_port(db: SubnetDb, lid: int) -> tuple[NodeRecordData, int] | None:
    """(node, port) of the end port with `lid` in its LMC range."""
    owner = db.lid_owner.get(lid)
    if owner is not None:
        node = db.nodes.get(owner[0])
        return None if node is None else (node, owner[1])
    for base, (node_guid, port) in db.lid_owner.items():  # a non-base LID (LMC > 0)
        node = db.nodes.get(node_guid)
        record = None if node is None else node.ports.get(port)
        if node is not None and record is not None and base < lid < base + (1 << _lmc(record)):
            return node, port
    return None


def _end_ports(db: SubnetDb) -> Iterator[tuple[NodeRecordData, int]]:
    """Every end port in OpenSM's port-map order (by port GUID)."""
    ports = []
    for node in db.nodes.values():
        for port in node.end_ports:
            record = node.ports.get(port)
            if record is not None and record.port_guid in db.port_lid:
                ports.append((osm_map_order(record.port_guid), node, port))
    ports.sort(key=lambda item: item[0])
    for _, node, port in ports:
        yield node, port


def _ports_of(mad: SaMad, lid_bit: int, lid: int, db: SubnetDb) -> list[tuple[NodeRecordData, int]]:
    """The end ports a query addresses: the one with `lid` when the mask names it."""
    if mad.component_mask & lid_bit:
        found = _end_port(db, lid)
        return [] if found is None else [found]
    return list(_end_ports(db))


def _physical_ports(node: NodeRecordData) -> list[int]:
    """Ports 0..N of a switch, as far as the SM read them (OpenSM's physp table)."""
    return sorted(node.ports)


# --- LinkRecord -------------------------------------------------------------------------


def link_records(sm: SubnetManager, mad: SaMad) -> list[LinkRecord]:
    """LinkRecord (15.2.5.13; osm_sa_link_record.c)."""
    db = sm.db
    query = LinkRecord.unpack(mad.data)
    mask = mad.component_mask
    src = dst = None
    if mask & LinkRecordComp.FROM_LID:
        src = _end_port(db, query.from_lid)
        if src is None:
            return []
    if mask & LinkRecordComp.TO_LID:
        dst = _end_port(db, query.to_lid)
        if dst is None:
            return []

    def numbered(node: NodeRecordData) -> list[int]:
        return sorted(p for p in node.ports if p != 0)

    candidates: list[tuple[int, int]] = []  # (node GUID, port) of a link's from side
    if src is not None:
        node = src[0]
        if dst is None and mask & LinkRecordComp.FROM_PORT:
            ports = [query.from_port_num] if query.from_port_num in node.ports else []
        else:
            ports = numbered(node)
        candidates = [(node.node_guid, port) for port in ports]
    elif dst is not None:
        node = dst[0]
        if mask & LinkRecordComp.TO_PORT:
            ports = [query.to_port_num] if query.to_port_num in node.ports else []
        else:
            ports = numbered(node)
        candidates = [db.links[end] for p in ports if (end := (node.node_guid, p)) in db.links]
    else:
        candidates = [(node.node_guid, p) for node in _nodes(db) for p in numbered(node)]
    records = []
    for end in candidates:
        peer = db.links.get(end)
        if peer is None:
            continue
        from_node, to_node = db.nodes.get(end[0]), db.nodes.get(peer[0])
        if from_node is None or to_node is None:
            continue
        if dst is not None and to_node is not dst[0]:
            continue
        if mask & LinkRecordComp.FROM_PORT and end[1] != query.from_port_num:
            continue
        if mask & LinkRecordComp.TO_PORT and peer[1] != query.to_port_num:
            continue
        from_lid = _base_lid(db, from_node, end[1])
        to_lid = _base_lid(db, to_node, peer[1])
        # LMC 0 throughout: OpenSM compares base LIDs under the subnet's LMC mask.
        if mask & LinkRecordComp.FROM_LID and from_lid != query.from_lid:
            continue
        if mask & LinkRecordComp.TO_LID and to_lid != query.to_lid:
            continue
        records.append(LinkRecord(from_lid, end[1], peer[1], to_lid))
    return records


# --- SwitchInfoRecord -------------------------------------------------------------------


def _switch_info(node: NodeRecordData) -> SwitchInfo:
    if node.switch_info is not None:
        return node.switch_info
    return SwitchInfo(linear_fdb_cap=node.lft_cap, linear_fdb_top=node.lft_top)


def switch_info_records(sm: SubnetManager, mad: SaMad) -> list[SwitchInfoRecord]:
    """SwitchInfoRecord (15.2.5.5; osm_sa_sw_info_record.c): every switch, or the one
    whose port 0 has the LID."""
    db = sm.db
    query = SwitchInfoRecord.unpack(mad.data)
    match_lid = query.lid if mad.component_mask & SwitchInfoRecordComp.LID else None
    if match_lid == 0:
        return []
    records = []
    for node in _nodes(db):
        if not node.is_switch:
            continue
        lid = _base_lid(db, node, 0)
        if not lid:
            continue
        if match_lid is not None:
            found = _end_port(db, match_lid)
            if found is None or found[0] is not node:
                continue
        records.append(SwitchInfoRecord(lid, _switch_info(node)))
    return records


# --- SMInfoRecord -----------------------------------------------------------------------


def sm_info_records(sm: SubnetManager, mad: SaMad) -> list[SMInfoRecord]:
    """SMInfoRecord (15.2.5.10; osm_sa_sminfo_record.c): this SM's SMInfo."""
    db = sm.db
    query = SMInfoRecord.unpack(mad.data)
    mask = mad.component_mask
    if mask & SMInfoRecordComp.LID:
        found = _end_port(db, query.lid)
        if found is None:
            return []
        record = found[0].ports.get(found[1])
        if record is None or record.port_guid != db.sm_port_guid:
            return []  # another SM's port: ibmig tracks no other SM
    info = sm.sm_info()
    wanted = query.sm_info
    if mask & SMInfoRecordComp.GUID and info.guid != wanted.guid:
        return []
    if mask & SMInfoRecordComp.PRIORITY and info.priority != wanted.priority:
        return []
    if mask & SMInfoRecordComp.SM_STATE and info.sm_state != wanted.sm_state:
        return []
    lid = db.port_lid.get(db.sm_port_guid, db.sm_lid)
    return [SMInfoRecord(lid, replace(info, sm_key=0))]


# --- P_KeyTableRecord -------------------------------------------------------------------


def pkey_blocks(node: NodeRecordData, port: int) -> int:
    """Blocks of a port's P_Key table, as OpenSM reads them (module docstring)."""
    if not node.is_switch or port == 0:
        cap = node.info.partition_cap
    else:
        cap = _switch_info(node).partition_enforcement_cap
    return -(-cap // PKEY_BLOCK_SIZE)


def pkey_block(
    node: NodeRecordData, port: int, block: int, written: Sequence[int] | None = None
) -> PKeyTable:
    """A P_Key table block as the SM knows it: as it wrote it (`written`), else the
    default partition only."""
    if written is not None:
        chunk = tuple(written[block * PKEY_BLOCK_SIZE : (block + 1) * PKEY_BLOCK_SIZE])
        return PKeyTable(chunk + (0,) * (PKEY_BLOCK_SIZE - len(chunk)))
    if block == 0 and pkey_blocks(node, port):
        return _DEFAULT_PKEY_BLOCK
    return _EMPTY_PKEY_BLOCK


def pkey_table_records(sm: SubnetManager, mad: SaMad) -> list[PKeyTableRecord]:
    """P_KeyTableRecord (15.2.5.11; osm_sa_pkey_record.c)."""
    if not mad.sm_key:
        raise RequestError(SaStatus.ERR_REQ_INVALID)  # trusted requesters only
    db = sm.db
    query = PKeyTableRecord.unpack(mad.data)
    mask = mad.component_mask
    records = []
    for node, end_port in _ports_of(mad, PKeyTableRecordComp.LID, query.lid, db):
        lid = _base_lid(db, node, end_port)
        if not node.is_switch:
            ports = [end_port]
        elif mask & PKeyTableRecordComp.PORT:
            ports = [query.port_num] if query.port_num in node.ports else []
        else:
            ports = _physical_ports(node)
        for port in ports:
            if mask & PKeyTableRecordComp.BLOCK:
                blocks: Sequence[int] = (query.block_num,)
            else:
                blocks = range(pkey_blocks(node, port))
            for block in blocks:
                written = sm.pkey_tables.get((node.node_guid, port))
                table = pkey_block(node, port, block, written)
                records.append(PKeyTableRecord(lid, block, port, table))
    return records


# --- SLtoVLMappingTableRecord -----------------------------------------------------------


def sl_to_vl_records(sm: SubnetManager, mad: SaMad) -> list[SLtoVLMappingTableRecord]:
    """SLtoVLMappingTableRecord (15.2.5.4; osm_sa_slvl_record.c); tables all zero."""
    db = sm.db
    query = SLtoVLMappingTableRecord.unpack(mad.data)
    mask = mad.component_mask
    records = []
    for node, end_port in _ports_of(mad, SLtoVLMappingTableRecordComp.LID, query.lid, db):
        lid = _base_lid(db, node, end_port)
        if not node.is_switch:
            records.append(SLtoVLMappingTableRecord(lid, 0, 0))
            continue
        ports = _physical_ports(node)
        outs = [query.out_port_num] if mask & SLtoVLMappingTableRecordComp.OUT_PORT else ports
        ins = [query.in_port_num] if mask & SLtoVLMappingTableRecordComp.IN_PORT else ports
        for out_port in outs:
            if out_port not in node.ports:
                continue
            for in_port in ins:
                if in_port in node.ports:
                    records.append(SLtoVLMappingTableRecord(lid, in_port, out_port))
    return records


# --- VLArbitrationTableRecord -----------------------------------------------------------


def vl_arbitration_records(sm: SubnetManager, mad: SaMad) -> list[VLArbitrationTableRecord]:
    """VLArbitrationTableRecord (15.2.5.9; osm_sa_vlarb_record.c); tables all zero."""
    db = sm.db
    query = VLArbitrationTableRecord.unpack(mad.data)
    mask = mad.component_mask
    if mask & VLArbitrationTableRecordComp.BLOCK:
        blocks: Sequence[int] = [b for b in VL_ARB_BLOCKS if b == query.block_num]
    else:
        blocks = VL_ARB_BLOCKS
    records = []
    for node, end_port in _ports_of(mad, VLArbitrationTableRecordComp.LID, query.lid, db):
        lid = _base_lid(db, node, end_port)
        if not node.is_switch:
            ports = [end_port]
        elif mask & VLArbitrationTableRecordComp.OUT_PORT:
            ports = [query.out_port_num] if query.out_port_num in node.ports else []
        else:
            ports = _physical_ports(node)
        for port in ports:
            for block in blocks:
                records.append(VLArbitrationTableRecord(lid, port, block))
    return records


# --- LinearForwardingTableRecord --------------------------------------------------------


def lft_records(sm: SubnetManager, mad: SaMad) -> list[LFTRecord]:
    """LinearForwardingTableRecord (15.2.5.6; osm_sa_lft_record.c): the blocks in use of
    every switch, or of the one whose port 0 has the LID."""
    db = sm.db
    query = LFTRecord.unpack(mad.data)
    mask = mad.component_mask
    target = None
    if mask & LFTRecordComp.LID:
        target = _end_port(db, query.lid)
        if target is None:
            return []
    records = []
    for node in _nodes(db):
        if not node.is_switch or node.lft is None:
            continue
        if target is not None and target[0] is not node:
            continue
        lid = _base_lid(db, node, 0)
        last = len(node.lft) // LFT_BLOCK_SIZE - 1
        if mask & LFTRecordComp.BLOCK:
            if query.block_num > last:
                continue
            blocks: Sequence[int] = (query.block_num,)
        else:
            blocks = range(last + 1)
        for block in blocks:
            start = block * LFT_BLOCK_SIZE
            ports = tuple(node.lft[start : start + LFT_BLOCK_SIZE])
            records.append(LFTRecord(lid, block, LinearForwardingTable(ports)))
    return records


QUERIES: Final[dict[int, tuple[Query, int]]] = {
    SaAttr.LINK_RECORD: (link_records, LinkRecord.ATTRIBUTE_OFFSET),
    SaAttr.SWITCH_INFO_RECORD: (switch_info_records, SwitchInfoRecord.ATTRIBUTE_OFFSET),
    SaAttr.SM_INFO_RECORD: (sm_info_records, SMInfoRecord.ATTRIBUTE_OFFSET),
    SaAttr.P_KEY_TABLE_RECORD: (pkey_table_records, PKeyTableRecord.ATTRIBUTE_OFFSET),
    SaAttr.SL_TO_VL_MAPPING_TABLE_RECORD: (
        sl_to_vl_records,
        SLtoVLMappingTableRecord.ATTRIBUTE_OFFSET,
    ),
    SaAttr.VL_ARBITRATION_TABLE_RECORD: (
        vl_arbitration_records,
        VLArbitrationTableRecord.ATTRIBUTE_OFFSET,
    ),
    SaAttr.LINEAR_FORWARDING_TABLE_RECORD: (lft_records, LFTRecord.ATTRIBUTE_OFFSET),
}
"""SA attribute -> (query function, AttributeOffset of its records); Get and GetTable."""

__all__ = ["QUERIES", "RequestError", "osm_map_order", "pkey_block", "pkey_blocks"]
