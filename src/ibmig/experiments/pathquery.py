"""A PathRecord asked of the simulated SA (`ibmig path TOPOLOGY SRC DST`): bring the
subnet up, send a real SubnAdmGet(PathRecord) MAD from SRC's port to the SA over the
simulated fabric, and walk the hop-by-hop route of the answer through the
programmed LFTs."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from ibmig.core.engine import QP1, Datagram
from ibmig.core.sa import PathError, PathInfo, resolve_path
from ibmig.core.sm.manager import SmConfig
from ibmig.errors import ConfigError, WireError
from ibmig.fabric import Fabric, find_node
from ibmig.sim.subnet import SubnetSim
from ibmig.wire.mad import MadStatus, Method
from ibmig.wire.packet import QP1_QKEY
from ibmig.wire.sa import PathRecord, PathRecordComp, SaMad


class PathQuery:
    """A one-shot SA client: sends one PathRecord Get and keeps the answer."""

    event_filter: Container[type] | None = None  # it has no events

    def __init__(self, port: int, slid: int, sa_lid: int, sgid: bytes, dgid: bytes) -> None:
        record = PathRecord(sgid=sgid, dgid=dgid, numb_path=1, reversible=True)
        mask = (
            PathRecordComp.SGID | PathRecordComp.DGID | PathRecordComp.NUMB_PATH
            | PathRecordComp.REVERSIBLE
        )  # fmt: skip
        mad = SaMad.from_record(record, method=Method.GET, tid=0x1A7B, component_mask=mask)
        self._outbox = [Datagram(mad.pack(), port, slid, sa_lid, QP1, QP1, qkey=QP1_QKEY)]
        self.answer: SaMad | None = None

    def receive(self, datagram: Datagram, now_ns: int) -> None:
        try:
            self.answer = SaMad.unpack(datagram.payload)
        except WireError:
            return

    def handle_timer(self, now_ns: int) -> None:
        return

    def packets_to_send(self) -> list[Datagram]:
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> int | None:
        return None

    def next_event(self) -> Any | None:
        return None


def _end_port(fabric: Fabric, sim: SubnetSim, text: str) -> tuple[int, int, int]:
    """(node index, port, port GUID) of SRC/DST given as a LID, GUID or node name."""
    db = sim.sm.db
    if text.isdigit():
        owner = db.lid_owner.get(int(text))
        if owner is None:
            raise ConfigError(f"no end port has LID {text}", "path")
        node = fabric.node_by_guid(owner[0])
        return node.index, owner[1], fabric.ports[node.port_index(owner[1])].port_guid
    index = find_node(fabric, text)
    node = fabric.nodes[index]
    port = 0 if node.is_switch else 1
    return index, port, fabric.ports[node.port_index(port)].port_guid


@dataclass(frozen=True, slots=True)
class PathAnswer:
    """The SA's answer, and the route its LIDs take through the LFTs."""

    sgid: bytes
    dgid: bytes
    status: int
    record: PathRecord | None
    """None unless the status is OK."""
    route: PathInfo | None
    route_error: str | None
    dst_node: int
    dst_port: int


def query_path(fabric: Fabric, src: str, dst: str, *, routing: str) -> PathAnswer:
    """SRC and DST are LIDs, GUIDs or node names; SRC must be a channel adapter."""
    sim = SubnetSim(fabric, sm_config=SmConfig(routing=routing))
    sim.start()
    if sim.run_until_up() is None:
        raise ConfigError("the subnet did not come up", "path")
    src_node, src_port, src_guid = _end_port(fabric, sim, src)
    dst_node, dst_port, dst_guid = _end_port(fabric, sim, dst)
    if fabric.nodes[src_node].is_switch:
        raise ConfigError("SRC must be a channel adapter (it sends the SA query)", "path")
    prefix = sim.sm.config.subnet_prefix.to_bytes(8, "big")
    sgid = prefix + src_guid.to_bytes(8, "big")
    dgid = prefix + dst_guid.to_bytes(8, "big")
    slid = sim.agents[src_node].port_lid(src_port)
    query = PathQuery(src_port, slid, sim.sm.db.sm_lid, sgid, dgid)
    sim.attach(src_node, query, 0)  # the query leaves now; its answer comes back to it
    sim.pump(src_node, query)
    sim.run()
    answer = query.answer
    if answer is None:
        raise ConfigError("the SA did not answer", "path")
    if answer.status != MadStatus.OK:
        return PathAnswer(sgid, dgid, answer.status, None, None, None, dst_node, dst_port)
    record = answer.record()
    assert isinstance(record, PathRecord)
    try:
        info = resolve_path(sim.sm.db, record.slid, record.dlid)
    except PathError as exc:
        return PathAnswer(sgid, dgid, answer.status, record, None, str(exc), dst_node, dst_port)
    return PathAnswer(sgid, dgid, answer.status, record, info, None, dst_node, dst_port)
