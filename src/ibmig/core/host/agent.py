"""The management domain (dom0) of one physical host: VFs, alias GUIDs, path changes.

One `HostAgent` serves one HCA port in the shared-port SR-IOV model: the physical
function (PF) and `num_vfs` virtual functions share the port's LID, and VF i owns
GUIDInfo index i of the port (IBA Vol 1, 14.2.5.5 GUIDInfo; index 0 is the port
GUID, the PF's). A VM on VF i is addressed by its GID, subnet prefix || the GUID at
index i, and the HCA hands arriving datagrams to it by DGID.

Alias GUIDs through the SA
--------------------------
dom0 does not write GUIDInfo itself: it asks the SA with a SubnAdmSet of a
GUIDInfoRecord (IBA Vol 1, 15.2.5.18; OpenSM osm_sa_guidinfo_record.c), and the SM
writes the port. It writes a record (a block of eight GUIDs) at a time, as mlx4's
alias GUID service does (Linux drivers/infiniband/hw/mlx4/alias_GUID.c): the record
names the port's LID and the block (index // 8); the ComponentMask selects LID,
BlockNum and the GUIDn (index % 8) of every entry the request writes, so the
block's other entries are left alone. SubnAdmDelete with such a mask removes the
entries. The SA answers a Set with GetResp and a Delete with DeleteResp, both
carrying the block as the port now holds it. Each entry has its own outcome: a Set
is acknowledged for the entries of that block that hold the requested GUID; an
entry that does not, the SA refused (another port holds that GUID: a migrating VM's
source has not released it yet; OpenSM's set_guidinfo leaves such an entry alone and
writes the others).

Operations on one entry run one at a time, in the order asked; a Delete whose GUID
is no longer at the entry when its turn comes is done without asking the SA. The
work that starts them (`_write_entries`, mlx4's `alias_guid_work`) takes the
operation at the head of every entry's queue that is ready -- none of the entry's
running, none waiting for a retry -- and sends one request per block and method
(mlx4's `set_required_record` names one method per request), the Deletes first: a
GUID moving between two entries of the port is free once its Delete is done. A
toolstack call queues one entry, so the work runs once the calls of the moment are
done (a timer due now: mlx4 queues its work with no delay,
`mlx4_ib_init_alias_guid_work`): 16 VMs placed on a host are three Sets (VFs 1-7,
8-15, 16), not sixteen. Unlike mlx4, which has one request per port in flight,
entries of different requests proceed independently, as each did when it had a
request of its own: a refused entry does not hold up the others. The migration
engine asks for the Set at the destination once the source's Delete is answered
(`AliasReleased`; `ibmig.core.migration.machine`, `await_alias_release`), and
`AliasReleased` still means that entry's Delete is done, batched or not.

A vport is up (`VfUp(vm, vf, gid, lid)`) once the VF is attached to the VM *and*
the SA has acknowledged its alias GUID. Address assignment:

- `static`: the VM brings its own vGUID, which follows it when it migrates:
  `release_alias(vguid)` at the source sends the Delete, `set_alias(vm, vguid=...)`
  (or `attach_vf`) at the destination the Set. The SA refuses a GUID another port
  still holds, so the Delete must come first (the migration engine orders them).
- `dynamic`: the VM takes the GUID of the VF it lands on. Each VF has its own GUID
  (`vf_guids`, or `derived_vf_guid`: a locally administered EUI-64 built from the
  port GUID and the VF index) and it is still registered with the SA, so that the
  VF's GID resolves; it stays registered when the VM leaves (it is the VF's).

SA transactions
---------------
Requests go from QP1 of the port (SLID = port LID) to QP1 at the SA's LID, Q_Key
0x80010000, with a GRH (SGID = prefix || port GUID, DGID = the SA's GID) only when
`HostConfig.send_grh` asks and the SA's GID is known. Each request has a fresh
32-bit TID; an answer is matched on its low 32 bits, as libibmad matches them
(rpc.c `_do_madrpc`). A request with no usable answer after `sa_timeout_ns` is
sent again with the same TID, at most `sa_retries` times after the first send
(the SA-client rule, `ibmig.core.sa_client`; the defaults are libibmad's: 1 s, 3
sends in all), then given up (`AliasFailed` / `SubscriptionFailed`, reason
"timeout"). An alias GUID request given up so is not the end of it: it is asked
again later as a new request, as mlx4's alias GUID service does (Linux
drivers/infiniband/hw/mlx4/alias_GUID.c, `aliasguid_query_handler`): an entry the
SA declined ("refused") after 1 s, then 2, 4, ... up to 60 s between attempts; a
request that failed (no answer, a busy status) after 1 s each time; without end
(`HostConfig.alias_retry_ns`, `alias_retry_max_ns`, `alias_retry_limit`;
`AliasRetryScheduled` each time, `AliasFailed` only once a limit set is spent).
Answers that may change on a retry -- status busy (0x0001), the SA's
ERR_NO_RESOURCES (the SM's write of the port timed out) and a refused alias -- wait
for that timer; any other error status fails the request at once. A request some
of whose entries were refused is narrowed to them: the done ones are finished, and
the resend (same TID) names only the refused ones, so it cannot undo what was
asked of the others since. Given up, each entry is asked again on its own count;
entries whose waits end together are asked together, as mlx4 re-asks a record
with every entry still pending in it.

Path changes (the per-host strategy)
------------------------------------
With `subscribe_path_changes` dom0 subscribes once, from the physical port, with
the SA client's path-change InformInfo Set (`ibmig.core.sa_client`: trap 69 from
every subject). It subscribes when the port becomes active (`port_active`) and
again after `client_reregister` (PortInfo:ClientReregister, IBA Vol 1, 14.2.5.6:
the SA may have lost its subscriptions). Every SubnAdmReport(Notice) is answered
with a ReportResp, and a resend of a Report (the same SA and TID, recently) is
answered again but processed once, by the SA client's rules.

A path-change notice updates the vGUID -> LID mapping table (GIDADDR's interface
ID -> NewLID) and is forwarded over the intra-host channel
(`ibmig.core.host.messages`) to the local VMs that registered a path to GIDADDR:
one `ForwardPathChange(vm_id, gid, new_lid, path)` each (`path`: the new path's
values of a "trap69-path" notice, else None), out of `intra_host_to_send()`,
counted in `counters["intra_host_sent"]`, apart from the MADs
(`counters["mads_sent"]`). The table also holds this host's own VMs (their alias
GUID -> the port LID, entered when the SA acknowledges the alias). Registrations
stay until the guest withdraws them (`PathUnregistered`) or the runtime removes
the VM (`remove_vm`, when it leaves the host). A registration names the LID of the
guest's cached path; when a subscribing dom0's table already holds another LID for
that GID, the guest is told at once: it arrived after the Report (it was migrating
itself while its peer moved) and would otherwise keep the stale path.

With `path_change_notice="trap64-65"` dom0 subscribes to traps 65 and 64 (one
InformInfo each, as OFED's local SA cache does) instead of 69. They name only the
GID: on trap 64 dom0 asks the SA for the GID's PathRecord (SGID its port GID) and
handles the answer as a trap 69 with that LID; trap 65 changes nothing. One query
per host per event, beside the two Reports.

A subscription made again after a gap -- PortInfo:ClientReregister, a restart, the
port's or the SA's LID changed -- may have missed Reports sent while it was down (a
host whose cable was down when a VM moved subscribes after the Report went out).
Once it is in place (or has failed), dom0 drops the mapping entries it learnt from
Reports (its own VMs' stay) and tells every local VM to resolve its cached paths
again (`RevalidatePaths`; `MappingResynced`), as mlx4 hands a ClientReregister on
to its VFs (drivers/infiniband/hw/mlx4/mad.c, `handle_client_rereg_event`) and
IPoIB then marks its cached paths invalid. Notices that come after the new
subscription arrive as usual; those before it are covered by the fresh queries.

The channel's latency belongs to the runtime, as the fabric's does.

Restart
-------
`restart(now)`: dom0 died and came back. What lived in its memory is gone: SA
requests in flight, the subscription, the mapping table, the guests' path
registrations, the Reports remembered. What the hardware and the toolstack hold
stays: the VFs and which VM each is attached to or reserved for, the GUIDInfo
entries the port holds, and the alias writes the toolstack asked for. It then
registers every VM's alias again (the SA acknowledges at once what the port holds,
which refills the table's local entries), subscribes again once the runtime calls
`port_active`, and the runtime tells its guests, which register their paths again.
"""

from __future__ import annotations

import random
from bisect import insort
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from ibmig.core.engine import QP1, Datagram, EventLog
from ibmig.core.host.events import (
    AliasAcknowledged,
    AliasFailed,
    AliasReleased,
    AliasRetryScheduled,
    DomainRestarted,
    HostEvent,
    MappingResynced,
    MappingUpdated,
    PathChangeForwarded,
    ReportReceived,
    SaRequestRetried,
    Subscribed,
    SubscriptionFailed,
    Unsubscribed,
    VfDown,
    VfUp,
)
from ibmig.core.host.messages import (
    ForwardPathChange,
    GuestToHost,
    HostToGuest,
    PathRegistered,
    PathUnregistered,
    RevalidatePaths,
)
from ibmig.core.sa_client import (
    LIBIBMAD_SENDS,
    LIBIBMAD_TIMEOUT_NS,
    NOTICES,
    SaClient,
    SaRequest,
    report_resp,
)
from ibmig.core.timers import Timers
from ibmig.errors import ConfigError, WireError
from ibmig.wire.fastrecord import fast_constructor
from ibmig.wire.mad import MAD_SIZE, MadStatus, Method, MgmtClass
from ibmig.wire.notice import (
    PATH_CHANGE_TRAP,
    PathValues,
    TrapNumber,
    peek_gid_service,
    peek_path_move,
)
from ibmig.wire.packet import QP1_QKEY
from ibmig.wire.sa import (
    SA_HEADER_SIZE,
    GUIDInfoRecord,
    GUIDInfoRecordComp,
    PathRecord,
    PathRecordComp,
    SaAttr,
    SaMad,
    SaStatus,
)
from ibmig.wire.smp_attrs import GUID_BLOCK_SIZE, GUIDInfo

DEFAULT_GID_PREFIX: Final = 0xFE80_0000_0000_0000
"""The link-local subnet prefix (IBA Vol 1, 4.1.1)."""

TID_MASK: Final = 0xFFFF_FFFF
"""dom0 uses 32-bit TIDs and matches answers on the low 32 bits: the layers below
(the kernel's umad agent, ibsim) may rewrite the upper ones."""

DEFAULT_PKEY: Final = 0xFFFF
MAX_GUID: Final = (1 << 64) - 1
MAX_VFS: Final = 254  # GUIDCap is one byte and index 0 is the PF's

MLX4_ALIAS_RETRY_NS: Final = 1_000_000_000
"""mlx4 alias_GUID.c `aliasguid_query_handler`: a failed GUIDInfoRecord query is
asked again 1 s later, and a declined entry first after 1 s (`guids_retry_schedule`
0 -> 1 s)."""
MLX4_ALIAS_RETRY_MAX_NS: Final = 60_000_000_000
"""mlx4 alias_GUID.c: a declined entry's wait doubles, `min(60, schedule * 2)` s."""

_GUID_SET_KEY: Final = int(GUIDInfoRecordComp.LID | GUIDInfoRecordComp.BLOCK_NUM)
_ALIAS_WORK: Final = 0
"""The `_retry_timers` key of the deferred alias GUID work (`HostAgent._pump`):
GUIDInfo index 0 is the port GUID, which dom0 never writes."""
_PATH_QUERY_MASK: Final = int(PathRecordComp.DGID | PathRecordComp.SGID | PathRecordComp.NUMB_PATH)
_RETRYABLE: Final = frozenset((int(MadStatus.BUSY), int(SaStatus.ERR_NO_RESOURCES)))
_GET_RESP: Final = int(Method.GET_RESP)
_DELETE_RESP: Final = int(Method.DELETE_RESP)
_REPORT: Final = int(Method.REPORT)
_NOTICE: Final = int(SaAttr.NOTICE)
_SUBN_ADM: Final = int(MgmtClass.SUBN_ADM)
# Built once per Report: one per migration in the subnet, at every dom0.
_new_report_received = fast_constructor(ReportReceived)
_new_mapping_updated = fast_constructor(MappingUpdated)
# Built once per VM placed (and per migration).
_new_alias_acknowledged = fast_constructor(AliasAcknowledged)
_new_vf_up = fast_constructor(VfUp)
_NOTICE_TRAP: Final = SA_HEADER_SIZE + 4  # the Notice's TrapNumber in an SA MAD


class AddressAssignment(StrEnum):
    """How a VM's GUID is chosen (module docstring)."""

    STATIC = "static"
    DYNAMIC = "dynamic"


class HostError(RuntimeError):
    """A call the host agent cannot honour in its current state (no free VF, an
    unknown VM, ...): a bug or a scenario the runtime should not have produced."""


@dataclass(frozen=True, slots=True)
class HostConfig:
    """Settings of a host agent; validated on construction (ConfigError, where
    "host.<field>")."""

    num_vfs: int = 16
    """Virtual functions of the port (VF i uses GUIDInfo index i, 1..num_vfs).
    ASSUMPTION: 16; the SMA's default GUIDCap of 32 leaves room for 31."""
    assignment: AddressAssignment = AddressAssignment.STATIC
    """`static` or `dynamic` address assignment (module docstring)."""
    subscribe_path_changes: bool = True
    """The per-host strategy: subscribe to trap 69 and forward to local VMs."""
    sa_timeout_ns: int = LIBIBMAD_TIMEOUT_NS
    """Wait for an SA answer before resending: libibmad MAD_DEF_TIMEOUT_MS (1000)."""
    sa_retries: int = LIBIBMAD_SENDS - 1
    """Resends of an unanswered SA request after the first send (`ibmig.core.sa_client`):
    2, so 3 sends in all, as libibmad's MAD_DEF_RETRIES (3), which counts every send
    (rdma-core libibmad/rpc.c `_do_madrpc`). (Formerly `sa_attempts`, which counted
    sends: sa_attempts = n is sa_retries = n - 1.)"""
    inform_resp_time_value: int = 18
    """InformInfo RespTimeValue (4.096 us x 2^n: how long the SA waits for our
    ReportResp). ASSUMPTION: 18 (about 1.07 s), OpenSM's default subnet_timeout."""
    send_grh: bool = False
    """Send SA requests with a GRH (SGID = the port GID) when the SA's GID is known."""
    report_memory: int = 256
    """Recent (SA LID, TID) pairs of Reports remembered to spot resends
    (`ibmig.core.sa_client.ReportMemory`)."""
    alias_retry_ns: int = MLX4_ALIAS_RETRY_NS
    """Wait before an alias GUID request given up (every resend spent, or declined)
    is asked again as a new request: mlx4's 1 s (module docstring)."""
    alias_retry_max_ns: int = MLX4_ALIAS_RETRY_MAX_NS
    """A declined request's wait doubles up to this: mlx4's 60 s."""
    alias_retry_limit: int | None = None
    """Requests again before `AliasFailed`; None: without end, as mlx4."""
    path_change_notice: str = "trap69"
    """The notice subscribed to: "trap69", or "trap64-65" (traps 65 and 64, one
    InformInfo each; a trap 64 makes dom0 ask for the GID's PathRecord)."""

    vf_lids: bool = False
    """The vSwitch model (`ibmig.core.sm.vswitch`): every VF has a LID of its own,
    given by the SM, not the port's. The mapping table then takes no entry for this
    host's VMs (it would name the port's LID, which is not theirs); only notices
    fill it."""

    def __post_init__(self) -> None:
        try:
            assignment = AddressAssignment(self.assignment)
        except ValueError:
            raise ConfigError(
                f"assignment must be 'static' or 'dynamic', not {self.assignment!r}",
                "host.assignment",
            ) from None
        object.__setattr__(self, "assignment", assignment)
        for name, low, high in (
            ("num_vfs", 1, MAX_VFS),
            ("sa_timeout_ns", 1, None),
            ("sa_retries", 0, None),
            ("inform_resp_time_value", 0, 31),
            ("report_memory", 1, None),
            ("alias_retry_ns", 1, None),
            ("alias_retry_max_ns", self.alias_retry_ns, None),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, not {value!r}", f"host.{name}")
            if value < low or (high is not None and value > high):
                bounds = f"{low}..{high}" if high is not None else f">= {low}"
                raise ConfigError(f"{name} {value} is outside {bounds}", f"host.{name}")
        limit = self.alias_retry_limit
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ConfigError(
                f"alias_retry_limit must be an integer >= 0 or None, not {limit!r}",
                "host.alias_retry_limit",
            )
        for name in ("subscribe_path_changes", "send_grh", "vf_lids"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false", f"host.{name}")
        if self.path_change_notice not in NOTICES:
            raise ConfigError(
                f"must be one of {', '.join(NOTICES)}, not {self.path_change_notice!r}",
                "host.path_change_notice",
            )


def derived_vf_guid(port_guid: int, index: int) -> int:
    """The GUID dom0 gives VF `index` under dynamic assignment unless told otherwise:
    a locally administered EUI-64 (bit 1 of the first octet set, so it cannot
    collide with a manufacturer-assigned GUID), the VF index in the second octet and
    the low 48 bits of the port GUID."""
    if not 0 < index <= 0xFF:
        raise ValueError(f"VF index {index} outside 1..255")
    return (0x02 << 56) | (index << 48) | (port_guid & 0xFFFF_FFFF_FFFF)


def make_gid(prefix: int, guid: int) -> bytes:
    """GID = 64-bit subnet prefix || 64-bit GUID (IBA Vol 1, 4.1.1)."""
    return prefix.to_bytes(8, "big") + guid.to_bytes(8, "big")


# --- internal state ------------------------------------------------------------------


class _Vf:
    __slots__ = ("acked", "alias", "attached", "index", "own_guid", "restored", "vm")

    def __init__(self, index: int, own_guid: int) -> None:
        self.index = index
        self.own_guid = own_guid
        self.vm: str | None = None  # the VM the VF is reserved for / attached to
        self.alias = 0  # the GUID wanted at the VF's entry for that VM
        self.acked = False  # the SA acknowledged `alias`
        self.attached = False
        self.restored = False  # re-registered after a restart: its vport is up already


class _EntryOp:
    """One GUIDInfoRecord Set or Delete of one entry, queued per entry."""

    __slots__ = ("guid", "index", "retries", "setting", "tid", "vm", "waiting")

    def __init__(self, index: int, guid: int, setting: bool, vm: str | None) -> None:
        self.index = index
        self.guid = guid
        self.setting = setting
        self.vm = vm
        self.tid: int | None = None  # the transaction carrying it, once started
        self.retries = 0  # times asked again after a give-up (mlx4's schedule)
        self.waiting = False  # until its retry timer (`_retry_timers`) fires


class _Transaction(SaRequest):
    __slots__ = ("attribute_id", "datagram", "gid", "method", "ops", "reason", "subscribe",
                 "trap_number")  # fmt: skip

    def __init__(
        self,
        tid: int,
        attribute_id: int,
        method: int,
        datagram: Datagram,
        ops: list[_EntryOp] | None = None,
        subscribe: bool = True,
        trap_number: int = PATH_CHANGE_TRAP,
        gid: bytes | None = None,
    ) -> None:
        super().__init__(tid)
        self.attribute_id = attribute_id
        self.method = method
        self.datagram = datagram
        self.ops = ops  # the entries of a GUIDInfoRecord Set or Delete, by index
        self.subscribe = subscribe
        self.trap_number = trap_number  # of an InformInfo Set
        self.gid = gid  # the DGID of a PathRecord query (after a trap 64)
        self.reason = "timeout"  # why a give-up happens, if it does


class HostAgent(EventLog[HostEvent]):
    """dom0 of one host (module docstring); an `ibmig.core.engine.Engine`."""

    port_gid: bytes
    """The port's GID: `subnet_prefix` || port GUID (kept with the prefix)."""

    def __init__(
        self,
        host_id: str,
        port_guid: int,
        *,
        rng: random.Random,
        config: HostConfig | None = None,
        subnet_prefix: int = DEFAULT_GID_PREFIX,
        port_num: int = 1,
        vf_guids: Sequence[int] | None = None,
        record_events: bool = True,
    ) -> None:
        self.host_id = host_id
        self.port_guid = port_guid
        self.config = config or HostConfig()
        self.subnet_prefix = subnet_prefix
        self.port_num = port_num
        self._init_event_log(record_events)
        self.rng = rng
        k = self.config.num_vfs
        if vf_guids is None:
            guids = [derived_vf_guid(port_guid, i) for i in range(1, k + 1)]
        else:
            guids = list(vf_guids)
            if len(guids) != k:
                raise ConfigError(f"{len(guids)} VF GUIDs for {k} VFs", "host.vf_guids")
            if any(not 0 < g <= MAX_GUID for g in guids) or len(set(guids)) != k:
                raise ConfigError(
                    "VF GUIDs must be distinct non-zero 64-bit values", "host.vf_guids"
                )
        self.port_lid: int | None = None
        self.sa_lid: int | None = None
        self.sa_gid: bytes | None = None
        self.mapping: dict[int, int] = {}
        """The vGUID -> LID mapping table (from Reports and from this host's VMs)."""
        self._counters: Counter[str] = Counter()
        # The Reports answered and, of those, the resends, not yet in `_counters`
        # (`counters` adds them in when read).
        self._reports_answered = 0
        self._reports_resent = 0
        self._vfs: dict[int, _Vf] = {i: _Vf(i, guids[i - 1]) for i in range(1, k + 1)}
        self._vm_vf: dict[str, int] = {}
        # The VFs held by no VM (`_Vf.vm` None), ascending: where `_free_vfs` looks,
        # so that placing a host's m VMs does not test the VFs taken before each.
        # Exact, kept where `vm` changes (`_reserve`, `detach_vf`).
        self._unheld: list[int] = list(self._vfs)
        # VF index -> VM whose vport came up there (VfUp) and has not been detached:
        # the VFs the HCA delivers to (`vm_behind`).
        self._vport_up: dict[int, str] = {}
        self._entries: dict[int, int] = {}  # GUIDInfo index -> GUID the SA acknowledged
        # GUIDInfo index -> GUID a request given up without an answer may have left
        # there (the SA may have carried it out and the answer been lost): a Delete
        # of it asks the SA, and the VF is not free until one has.
        self._unsure: dict[int, int] = {}
        # GUIDInfo index -> its operations in order. Lists, not deques: a queue holds
        # one or two operations, and a placement has every VM's queued at once (an
        # empty deque is 600 bytes; 655,344 of them on the 40,960-host preset).
        self._queues: dict[int, list[_EntryOp]] = {}
        self._transactions: dict[int, _Transaction] = {}
        self._inform_tids: dict[int, int] = {}  # TID -> trap of an InformInfo Set out
        self._confirmed: set[int] = set()  # traps whose subscription the SA confirmed
        self._subscribed = False
        self._want_subscription = self.config.subscribe_path_changes
        # Why the subscription in progress follows a gap in which Reports may have
        # been missed (module docstring); None for the first one.
        self._resync: str | None = None
        self._registrations: dict[bytes, dict[str, None]] = {}  # GID -> VMs, ordered
        cfg = self.config
        self.sa = SaClient(
            timeout_ns=cfg.sa_timeout_ns,
            retries=cfg.sa_retries,
            report_memory=cfg.report_memory,
            inform_resp_time_value=cfg.inform_resp_time_value,
            notice=cfg.path_change_notice,
        )
        self._timers: Timers[int] = Timers()  # TID -> when to resend or give up
        self._retry_timers: Timers[int] = Timers()  # GUIDInfo index -> when to ask again
        self._tid = rng.getrandbits(32)
        self._outbox: list[Datagram] = []
        self._intra_outbox: list[HostToGuest] = []

    # --- engine contract ------------------------------------------------------------

    def packets_to_send(self) -> list[Datagram]:
        out, self._outbox = self._outbox, []
        return out

    def intra_host_to_send(self) -> list[HostToGuest]:
        """Messages for local guests (each names its guest: `vm_id`)."""
        out, self._intra_outbox = self._intra_outbox, []
        return out

    def get_timer(self) -> int | None:
        deadline = self._timers.next_deadline()
        retry = self._retry_timers.next_deadline()
        if retry is not None and (deadline is None or retry < deadline):
            return retry
        return deadline

    def handle_timer(self, now_ns: int) -> None:
        write = False
        while (index := self._retry_timers.pop_due(now_ns)) is not None:
            queue = self._queues.get(index)  # None for _ALIAS_WORK
            if queue:
                queue[0].waiting = False
            write = True
        if write:
            # Entries whose waits end together go out together, as mlx4 re-asks a
            # record with every entry still pending in it.
            self._write_entries(now_ns)
        timers = self._timers
        while (tid := timers.pop_due(now_ns)) is not None:
            transaction = self._transactions[tid]
            if not self.sa.resend(transaction):
                self._give_up(transaction, transaction.reason, now_ns)
                continue
            transaction.reason = "timeout"
            self._transmit(transaction, now_ns)
            self.counters["sa_retries"] += 1
            self._emit(
                SaRequestRetried(
                    transaction.attribute_id,
                    transaction.method,
                    transaction.tid,
                    transaction.attempt,
                    now_ns,
                )
            )

    def receive(self, datagram: Datagram, now_ns: int) -> None:
        payload = datagram.payload
        if len(payload) == MAD_SIZE:
            if payload[3] == _REPORT and payload[1] == _SUBN_ADM:
                # One per migration in the subnet: read from the bytes, not decoded,
                # and counted apart (`counters`).
                self._on_report(payload, datagram, now_ns)
                return
            if payload[1] != _SUBN_ADM:
                self._counters["mads_received"] += 1
                self._counters["not_sa"] += 1  # dom0 only speaks SA on QP1
                return
        self._counters["mads_received"] += 1
        try:
            mad = SaMad.unpack(payload)
        except WireError:
            self.counters["malformed"] += 1
            return
        method = mad.header.method
        if method in (_GET_RESP, _DELETE_RESP):
            self._on_response(mad, now_ns)
        else:
            self.counters["unexpected_method"] += 1

    @property
    def counters(self) -> Counter[str]:
        """What happened, by name: MADs, Reports, SA requests, alias writes...

        A subscribed dom0 answers one Report per migration in the subnet, and each
        counts in four counters; the Report path counts them in two plain ints
        instead, added in here."""
        answered = self._reports_answered
        if answered:
            resent = self._reports_resent
            counters = self._counters
            for name in ("mads_received", "mads_sent", "report_resps_sent"):
                counters[name] += answered
            if answered > resent:
                counters["reports_received"] += answered - resent
            if resent:
                counters["reports_duplicate"] += resent
            self._reports_answered = self._reports_resent = 0
        return self._counters

    # --- port -----------------------------------------------------------------------

    @property
    def subnet_prefix(self) -> int:
        return self._subnet_prefix

    @subnet_prefix.setter
    def subnet_prefix(self, prefix: int) -> None:
        self._subnet_prefix = prefix
        # The port GID is read for every packet the HCA demultiplexes
        # (`ibmig.core.host.demux`) and every ReportResp: built once per prefix (the
        # port GUID is the HCA's and never changes).
        self.port_gid = make_gid(prefix, self.port_guid)

    def port_active(
        self,
        lid: int,
        sa_lid: int,
        now_ns: int,
        *,
        subnet_prefix: int | None = None,
        sa_gid: bytes | None = None,
    ) -> None:
        """The port is active with base LID `lid` and the SA answers at `sa_lid`
        (the SM's LID): start the subscription and any queued alias writes. Called
        again with other values (the SM moved the port or itself), it subscribes
        again and re-announces the VFs that are up with the new LID."""
        if not 0 < lid < 0xC000 or not 0 < sa_lid < 0xC000:
            raise HostError(f"LIDs must be unicast: port {lid}, SA {sa_lid}")
        changed = (lid, sa_lid) != (self.port_lid, self.sa_lid)
        lid_changed = self.port_lid is not None and lid != self.port_lid
        moved = self.port_lid is not None  # subscribed (or meant to) before
        self.port_lid = lid
        self.sa_lid = sa_lid
        if subnet_prefix is not None:
            self.subnet_prefix = subnet_prefix
        if sa_gid is not None:
            self.sa_gid = sa_gid
        if changed and self._want_subscription:
            if moved and self._resync is None:
                self._resync = "port"
            self._subscribed = False
            self._send_inform(True, now_ns)
        if lid_changed:
            for vf in self._vfs.values():
                if vf.vm is not None and vf.acked:
                    self._set_mapping(vf.alias, lid, "local", now_ns)
                    if vf.attached:
                        self._vport_up[vf.index] = vf.vm
                        self._emit(VfUp(vf.vm, vf.index, self._gid(vf.alias), lid, now_ns))
        # Every entry it has to write is queued by now: no need to wait.
        self._write_entries(now_ns)

    def restart(self, now_ns: int) -> None:
        """dom0 died and came back (module docstring, Restart): forget what lived in
        its memory, keep what the hardware and the toolstack hold, and register
        every VM's alias again. The runtime then calls `port_active`."""
        self._transactions.clear()
        self._timers = Timers()
        self._retry_timers = Timers()
        self._inform_tids.clear()
        self._confirmed.clear()
        self._subscribed = False
        self._want_subscription = self.config.subscribe_path_changes
        self._resync = "restart" if self._want_subscription else None
        self.mapping.clear()
        self._registrations.clear()
        cfg = self.config
        self.sa = SaClient(
            timeout_ns=cfg.sa_timeout_ns,
            retries=cfg.sa_retries,
            report_memory=cfg.report_memory,
            inform_resp_time_value=cfg.inform_resp_time_value,
            notice=cfg.path_change_notice,
        )
        self._outbox.clear()
        self._intra_outbox.clear()
        self.port_lid = None
        self.sa_lid = None
        self.counters["restarts"] += 1
        self._emit(DomainRestarted(now_ns))
        queues = self._queues
        for queue in queues.values():
            for op in queue:
                op.tid = None  # asked again from scratch
                op.waiting = False
                op.retries = 0
        for vf in self._vfs.values():
            if vf.vm is None or not vf.acked:
                continue
            vf.acked = False
            vf.restored = self._vport_up.get(vf.index) == vf.vm
            if not self._pending_set(vf.index, vf.alias):
                self._queues.setdefault(vf.index, []).append(
                    _EntryOp(vf.index, vf.alias, True, vf.vm)
                )

    def client_reregister(self, now_ns: int, sa_lid: int | None = None) -> None:
        """The SM set PortInfo:ClientReregister (IBA Vol 1, 14.2.5.6). `sa_lid`: the
        port's MasterSMLID now; another one (a new master) is where SA requests go
        from now on (`port_active`, which subscribes there). The SA may have lost its
        subscriptions, so subscribe again; and it may have lost the alias
        GUIDs registered with it (a new master without the old one's database), so
        register every VM's alias again at once, as mlx4 does on the port's
        CLIENT_REREGISTER event (drivers/infiniband/hw/mlx4/alias_GUID.c,
        `mlx4_ib_invalidate_all_guid_record`: every record marked for a new Set and
        the alias GUID work run now, a retry waiting for its timer included). The
        VMs' vports stay up meanwhile: the port still holds their GUIDs."""
        if sa_lid and self.port_lid is not None and sa_lid != self.sa_lid:
            self.port_active(self.port_lid, sa_lid, now_ns)
        elif self._want_subscription and self.port_lid is not None:
            self._resync = "client_reregister"
            self._subscribed = False
            self._send_inform(True, now_ns)
        for vf in self._vfs.values():
            # The VMs running here (vport up); a migrating VM's alias at its
            # destination is being set already, or will be.
            if (
                vf.vm is not None
                and vf.acked
                and self._vport_up.get(vf.index) == vf.vm
                and not self._pending_set(vf.index, vf.alias)
            ):
                vf.restored = True  # its vport stays up
                self._queues.setdefault(vf.index, []).append(
                    _EntryOp(vf.index, vf.alias, True, vf.vm)
                )
                self.counters["aliases_reregistered"] += 1
        for index, queue in self._queues.items():
            if queue and queue[0].waiting:
                self._retry_timers.cancel(index)
                queue[0].waiting = False
        self._write_entries(now_ns)  # every record at once, as mlx4 (docstring)

    def subscribe(self, now_ns: int) -> None:
        """Subscribe to path changes (also done by `port_active` when configured)."""
        self._want_subscription = True
        if self.port_lid is not None:
            self._send_inform(True, now_ns)

    def unsubscribe(self, now_ns: int) -> None:
        """Withdraw the subscription (InformInfo Set with Subscribe 0)."""
        self._want_subscription = False
        if self.port_lid is not None and (self._subscribed or self._inform_tids):
            self._send_inform(False, now_ns)

    @property
    def subscribed(self) -> bool:
        return self._subscribed

    # --- VFs and alias GUIDs ------------------------------------------------------------

    def vf_guid(self, vf: int) -> int:
        """The VF's own GUID (what a VM gets on it under dynamic assignment)."""
        return self._vf(vf).own_guid

    def vm_behind(self, vf: int) -> str | None:
        """The VM whose vport is up on VF `vf` (VfUp seen, not detached since)."""
        return self._vport_up.get(vf)

    def vf_of(self, vm: str) -> int | None:
        """The VF reserved for or attached to `vm`, if any."""
        return self._vm_vf.get(vm)

    def free_vfs(self) -> list[int]:
        """VFs a VM can take now: held by no VM and, under static assignment, with no
        departed VM's alias in their GUIDInfo entry (registered, or being deleted).
        That alias stays after `detach_vf` until `release_alias` deletes it; a VM
        given the VF before then would overwrite the entry under the release."""
        return list(self._free_vfs())

    def _free_vfs(self) -> Iterator[int]:
        """`free_vfs` lazily, lowest first: placing a VM takes the first one, and
        listing all of them for each of a host's m VMs cost O(m^2) per host (the
        test of a free VF's queue is the dear part). Over `_unheld` itself: take a VF only
        after the last `next`."""
        if self.config.assignment is AddressAssignment.DYNAMIC:
            return iter(self._unheld)
        entries, unsure, queues = self._entries, self._unsure, self._queues
        return (
            i
            for i in self._unheld
            if not entries.get(i)
            and i not in unsure
            and not any(not op.setting for op in queues.get(i, ()))
        )

    def alias_index(self, guid: int) -> int | None:
        """The GUIDInfo index that holds `guid` (acknowledged, or a Set of it queued),
        if any: where a departed VM's alias would be set again."""
        return self._index_of(guid)

    def is_up(self, vm: str) -> bool:
        index = self._vm_vf.get(vm)
        if index is None:
            return False
        vf = self._vfs[index]
        return vf.attached and vf.acked

    def entry(self, index: int) -> int:
        """The GUID the SA last acknowledged at GUIDInfo index `index` (0: none)."""
        return self._entries.get(index, 0)

    def set_alias(
        self, vm: str, now_ns: int, *, vguid: int | None = None, vf: int | None = None
    ) -> int:
        """Reserve a VF for `vm` (the one it has, `vf`, or the lowest free one) and
        register its GUID with the SA: `vguid` under static assignment, the VF's own
        GUID under dynamic. Returns the VF index. `AliasAcknowledged` follows when
        the SA has it (at once when it already does)."""
        if vm in self._vm_vf:
            index = self._vm_vf[vm]
            if vf is not None and vf != index:
                raise HostError(f"{vm} already holds VF {index}, not {vf}")
            slot = self._vfs[index]
        else:
            slot = self._reserve(vm, vf)
        guid = self._alias_for(slot, vguid)
        if slot.alias == guid and (slot.acked or self._pending_set(slot.index, guid)):
            return slot.index
        slot.alias = guid
        slot.acked = False
        queue = self._queues.get(slot.index)
        if not queue and self._entries.get(slot.index) == guid:
            self._acknowledge(slot, now_ns)  # the SA has it already
            return slot.index
        self._enqueue(_EntryOp(slot.index, guid, True, vm), now_ns)
        return slot.index

    def attach_vf(
        self, vm: str, now_ns: int, *, vguid: int | None = None, vf: int | None = None
    ) -> int:
        """Attach a VF to `vm` (reserving one and setting its alias first if
        `set_alias` was not called). `VfUp` follows once the alias is acknowledged."""
        index = self._vm_vf.get(vm)
        if index is None:
            index = self.set_alias(vm, now_ns, vguid=vguid, vf=vf)
        elif vf is not None and vf != index:
            raise HostError(f"{vm} already holds VF {index}, not {vf}")
        slot = self._vfs[index]
        if slot.attached:
            raise HostError(f"VF {index} is already attached to {vm}")
        slot.attached = True
        if slot.acked:
            self._vf_up(slot, now_ns)
        return index

    def detach_vf(self, vm: str, now_ns: int) -> int:
        """Detach `vm` from its VF and free the VF. The alias stays registered: under
        static assignment `release_alias` removes it (the migration's source does);
        under dynamic assignment it is the VF's own GUID and stays."""
        index = self._vm_vf.pop(vm, None)
        if index is None:
            raise HostError(f"{vm} holds no VF on {self.host_id}")
        slot = self._vfs[index]
        self._vport_up.pop(index, None)
        if slot.attached:
            self._emit(VfDown(vm, index, now_ns))
        slot.vm = None
        insort(self._unheld, index)
        slot.attached = False
        slot.acked = False
        slot.alias = 0
        slot.restored = False
        queue = self._queues.get(index)
        if queue and queue[0].waiting and queue[0].setting and queue[0].vm == vm:
            # A Set waiting to be asked again is no longer wanted.
            del queue[0]
            self._retry_timers.cancel(index)
            self._pump(now_ns)
        return index

    def release_alias(self, vguid: int, now_ns: int) -> int:
        """Remove `vguid` from this port with a GUIDInfoRecord Delete; returns the
        index. `AliasReleased` follows. The VF holding it must be detached."""
        index = self._index_of(vguid)
        if index is None:
            raise HostError(f"{vguid:#018x} is not an alias GUID of {self.host_id}")
        slot = self._vfs[index]
        if slot.vm is not None and slot.alias == vguid:
            raise HostError(f"{vguid:#018x} still belongs to {slot.vm} on VF {index}")
        self._enqueue(_EntryOp(index, vguid, False, None), now_ns)
        return index

    # --- intra-host channel ---------------------------------------------------------

    def receive_intra_host(self, vm_id: str, message: GuestToHost, now_ns: int) -> None:
        """A message from guest `vm_id` over the intra-host channel."""
        self.counters["intra_host_received"] += 1
        if isinstance(message, PathRegistered):
            self._registrations.setdefault(message.gid, {})[vm_id] = None
            # A notice this dom0 already took in is news to a guest that registers
            # afterwards: it arrived at a new host, having missed the Reports sent
            # while it was migrating itself (both ends of a connection moving at
            # once). Only a subscribing dom0's table is kept current by Reports.
            known = self.mapping.get(int.from_bytes(message.gid[8:16], "big"))
            if (
                self.config.subscribe_path_changes
                and message.lid
                and known is not None
                and known != message.lid
            ):
                self._intra_outbox.append(ForwardPathChange(vm_id, message.gid, known))
                self.counters["intra_host_sent"] += 1
                self._emit(PathChangeForwarded(vm_id, message.gid, known, now_ns))
        elif isinstance(message, PathUnregistered):
            vms = self._registrations.get(message.gid)
            if vms is not None:
                vms.pop(vm_id, None)
                if not vms:
                    del self._registrations[message.gid]
        else:
            self.counters["intra_host_unknown"] += 1

    def remove_vm(self, vm_id: str) -> None:
        """Forget the path registrations of a VM that left this host."""
        for gid in list(self._registrations):
            vms = self._registrations[gid]
            vms.pop(vm_id, None)
            if not vms:
                del self._registrations[gid]

    def registered_vms(self, gid: bytes) -> tuple[str, ...]:
        """The local VMs that hold a path to `gid`, in registration order."""
        return tuple(self._registrations.get(gid, ()))

    def lookup(self, gid: bytes) -> int | None:
        """The mapping table's LID for the GUID of `gid`."""
        return self.mapping.get(int.from_bytes(gid[8:16], "big"))

    # --- internals: VFs -------------------------------------------------------------

    def _vf(self, index: int) -> _Vf:
        slot = self._vfs.get(index)
        if slot is None:
            raise HostError(f"{self.host_id} has VFs 1..{len(self._vfs)}, not {index}")
        return slot

    def _reserve(self, vm: str, index: int | None) -> _Vf:
        if index is None:
            index = next(self._free_vfs(), None)
            if index is None:
                raise HostError(f"no free VF on {self.host_id} for {vm}")
        slot = self._vf(index)
        if slot.vm is not None:
            raise HostError(f"VF {index} of {self.host_id} is taken by {slot.vm}")
        slot.vm = vm
        self._unheld.remove(index)
        self._vm_vf[vm] = index
        return slot

    def _alias_for(self, slot: _Vf, vguid: int | None) -> int:
        if self.config.assignment is AddressAssignment.DYNAMIC:
            if vguid is not None and vguid != slot.own_guid:
                raise HostError(
                    f"dynamic assignment: VF {slot.index} has GUID {slot.own_guid:#018x}, "
                    f"not {vguid:#018x}"
                )
            return slot.own_guid
        if vguid is None:
            raise HostError("static assignment needs the VM's vGUID")
        if not 0 < vguid <= MAX_GUID:
            raise HostError(f"vGUID {vguid:#x} is not a non-zero 64-bit GUID")
        return vguid

    def _index_of(self, guid: int) -> int | None:
        for index, held in self._entries.items():
            if held == guid:
                return index
        for index, held in self._unsure.items():
            if held == guid:
                return index
        for index, queue in self._queues.items():
            if any(op.setting and op.guid == guid for op in queue):
                return index
        return None

    def _pending_set(self, index: int, guid: int) -> bool:
        queue = self._queues.get(index)
        if not queue:
            return False
        last = queue[-1]
        return last.setting and last.guid == guid

    def _gid(self, guid: int) -> bytes:
        return make_gid(self.subnet_prefix, guid)

    def _acknowledge(self, slot: _Vf, now_ns: int) -> None:
        slot.acked = True
        assert slot.vm is not None
        self._emit(_new_alias_acknowledged(slot.vm, slot.index, slot.alias, now_ns))
        if self.port_lid is not None:
            self._set_mapping(slot.alias, self.port_lid, "local", now_ns)
        if slot.restored:
            slot.restored = False  # its vport never went down
        elif slot.attached:
            self._vf_up(slot, now_ns)

    def _vf_up(self, slot: _Vf, now_ns: int) -> None:
        assert slot.vm is not None and self.port_lid is not None
        self._counters["vf_up"] += 1  # the Counter itself: `counters` is a property
        self._vport_up[slot.index] = slot.vm
        self._emit(_new_vf_up(slot.vm, slot.index, self._gid(slot.alias), self.port_lid, now_ns))

    def _set_mapping(self, vguid: int, lid: int, source: str, now_ns: int) -> None:
        if source == "local" and self.config.vf_lids:
            return  # a VF's LID is its own, not `lid` (`HostConfig.vf_lids`)
        old = self.mapping.get(vguid)
        if old == lid:
            return
        self.mapping[vguid] = lid
        if self._wants(MappingUpdated):
            self._record(_new_mapping_updated(vguid, old, lid, source, now_ns))

    # --- internals: GUIDInfoRecord writes ---------------------------------------------

    def _enqueue(self, op: _EntryOp, now_ns: int) -> None:
        self._queues.setdefault(op.index, []).append(op)
        self._pump(now_ns)

    def _pump(self, now_ns: int) -> None:
        """Run the alias GUID work once the caller is done (`_write_entries`), for
        the toolstack's calls, which queue one entry each: mlx4 queues its per-port
        work with no delay (`mlx4_ib_init_alias_guid_work`), so the VFs a toolstack
        sets up together, or several VMs leaving a host at once, reach the SA as one
        request per block. (Calls that queue every entry at once, and answers, write
        at once.)"""
        if self.port_lid is None or self.sa_lid is None:
            return  # `port_active` runs it
        if not any(self._queues.values()):
            self._queues.clear()
            return
        if self._retry_timers.deadline(_ALIAS_WORK) is None:
            self._retry_timers.arm(_ALIAS_WORK, now_ns)

    def _write_entries(self, now_ns: int) -> None:
        """Start the operations at the heads of the entries' queues that are ready
        (none running, not waiting for a retry): one GUIDInfoRecord request per block
        and method, as mlx4's `set_required_record` names every pending entry of a
        record whose operation is the same. Deletes go first: a GUID moving between
        two entries of this port is free only once the Delete is done."""
        if self.port_lid is None or self.sa_lid is None:
            return
        self._retry_timers.cancel(_ALIAS_WORK)  # done here
        entries = self._entries
        unsure = self._unsure
        batches: dict[tuple[bool, int], list[_EntryOp]] = {}
        for index in sorted(self._queues):
            queue = self._queues[index]
            while queue:
                op = queue[0]
                if op.tid is not None or op.waiting:
                    break
                if (
                    not op.setting
                    and entries.get(index) != op.guid
                    and unsure.get(index) != op.guid
                ):
                    del queue[0]  # nothing to delete any more
                    self._emit(AliasReleased(op.guid, index, now_ns))
                    continue
                batches.setdefault((op.setting, index // GUID_BLOCK_SIZE), []).append(op)
                break
            if not queue:
                del self._queues[index]
        for (setting, _), ops in sorted(batches.items()):
            method = Method.SET if setting else Method.DELETE
            tid = self._next_tid()
            for op in ops:
                op.tid = tid
            datagram = self._guid_info_request(ops, method, tid)
            self._start(
                _Transaction(tid, SaAttr.GUID_INFO_RECORD, method, datagram, ops=ops), now_ns
            )

    def _guid_info_request(self, ops: list[_EntryOp], method: int, tid: int) -> Datagram:
        """A GUIDInfoRecord Set or Delete of `ops` (entries of one block): the mask
        selects LID, BlockNum and their GUIDn, so the block's other entries are left
        alone; OpenSM's Delete, too, is given the GUIDs it removes."""
        assert self.port_lid is not None
        guids = [0] * GUID_BLOCK_SIZE
        mask = _GUID_SET_KEY
        for op in ops:
            entry = op.index % GUID_BLOCK_SIZE
            guids[entry] = op.guid
            mask |= int(GUIDInfoRecordComp.GUID0) << entry
        block = ops[0].index // GUID_BLOCK_SIZE
        record = GUIDInfoRecord(self.port_lid, block, GUIDInfo(tuple(guids)))
        mad = SaMad.from_record(record, method=method, tid=tid, component_mask=mask)
        return self._request(mad.pack())

    def _retry_later(self, op: _EntryOp, reason: str, now_ns: int) -> None:
        """Ask `op` again as a new request after mlx4's wait: declined, 1 s doubling
        up to `alias_retry_max_ns`; failed, `alias_retry_ns` each time."""
        cfg = self.config
        wait = cfg.alias_retry_ns
        if reason == "refused":
            wait = min(cfg.alias_retry_ns << min(op.retries, 62), cfg.alias_retry_max_ns)
        op.retries += 1
        op.tid = None
        op.waiting = True
        self.counters["alias_retries"] += 1
        self._retry_timers.arm(op.index, now_ns + wait)
        operation = "set" if op.setting else "delete"
        self._emit(
            AliasRetryScheduled(
                op.vm, op.index, op.guid, operation, reason, op.retries, now_ns + wait, now_ns
            )
        )

    def _entry_done(self, op: _EntryOp, now_ns: int, reason: str | None) -> None:
        """Finish `op` (reason None: success); the caller then starts what follows
        (`_write_entries`)."""
        queue = self._queues.get(op.index)
        if queue and queue[0] is op:
            del queue[0]
        slot = self._vfs[op.index]
        if reason is None:
            self._unsure.pop(op.index, None)
            if op.setting:
                self._entries[op.index] = op.guid
                if slot.vm is not None and slot.vm == op.vm and slot.alias == op.guid:
                    self._acknowledge(slot, now_ns)
            else:
                self._entries.pop(op.index, None)
                self._emit(AliasReleased(op.guid, op.index, now_ns))
        else:
            if reason == "timeout":
                # No answer: the SA may have done it. Neither believe the entry
                # holds the GUID nor that it does not.
                if not op.setting:
                    self._entries.pop(op.index, None)
                self._unsure[op.index] = op.guid
            self.counters["alias_failed"] += 1
            operation = "set" if op.setting else "delete"
            self._emit(AliasFailed(op.vm, op.index, op.guid, operation, reason, now_ns))

    # --- internals: subscription ------------------------------------------------------

    def _send_inform(self, subscribe: bool, now_ns: int) -> None:
        """One InformInfo Set per trap of the notice variant (`SaClient.traps`)."""
        for tid in self._inform_tids:
            self._end(tid)  # superseded
        self._inform_tids.clear()
        self._confirmed.clear()
        if self.port_lid is None or self.sa_lid is None:
            return
        for trap in self.sa.traps:
            tid = self._next_tid()
            payload = self.sa.subscription(tid, subscribe=subscribe, trap_number=trap)
            self._inform_tids[tid] = trap
            self._start(
                _Transaction(tid, SaAttr.INFORM_INFO, Method.SET, self._request(payload),
                             subscribe=subscribe, trap_number=trap),
                now_ns,
            )  # fmt: skip

    def _inform_done(self, transaction: _Transaction, now_ns: int, reason: str | None) -> None:
        self._inform_tids.pop(transaction.tid, None)
        trap = transaction.trap_number
        if reason is not None:
            self.counters["subscription_failed"] += 1
            self._emit(SubscriptionFailed(trap, transaction.subscribe, reason, now_ns))
        elif transaction.subscribe:
            self._confirmed.add(trap)
            self._subscribed = self._confirmed.issuperset(self.sa.traps)
            self._emit(Subscribed(trap, now_ns))
        else:
            self._confirmed.discard(trap)
            self._subscribed = False
            self._emit(Unsubscribed(trap, now_ns))
        # Once every InformInfo of the variant is answered (or given up), Reports
        # reach this host again: what was missed before is resolved afresh.
        if transaction.subscribe and self._resync is not None and not self._inform_tids:
            self._resync_guests(self._resync, now_ns)

    def _resync_guests(self, cause: str, now_ns: int) -> None:
        """After a gap in the subscription (module docstring): forget what Reports
        taught the mapping table and have every local VM resolve its paths again."""
        self._resync = None
        local = {vf.alias for vf in self._vfs.values() if vf.vm is not None and vf.acked}
        stale = [vguid for vguid in self.mapping if vguid not in local]
        for vguid in stale:
            del self.mapping[vguid]
        vms = tuple(vf.vm for vf in self._vfs.values() if vf.vm is not None and vf.attached)
        for vm in vms:
            self._intra_outbox.append(RevalidatePaths(vm))
        self.counters["resyncs"] += 1
        self.counters["intra_host_revalidate"] += len(vms)
        self._emit(MappingResynced(cause, len(stale), vms, now_ns))

    # --- internals: SA transactions -------------------------------------------------------

    def _next_tid(self) -> int:
        self._tid = (self._tid + 1) & TID_MASK or 1
        return self._tid

    def _request(self, payload: bytes) -> Datagram:
        assert self.port_lid is not None and self.sa_lid is not None
        grh = self.config.send_grh and self.sa_gid is not None
        return Datagram(
            payload,
            self.port_num,
            self.port_lid,
            self.sa_lid,
            QP1,
            QP1,
            pkey=DEFAULT_PKEY,
            qkey=QP1_QKEY,
            sgid=self.port_gid if grh else None,
            dgid=self.sa_gid if grh else None,
        )

    def _start(self, transaction: _Transaction, now_ns: int) -> None:
        self._transactions[transaction.tid] = transaction
        self.counters["sa_requests"] += 1
        self._transmit(transaction, now_ns)

    def _transmit(self, transaction: _Transaction, now_ns: int) -> None:
        self._timers.arm(transaction.tid, now_ns + self.sa.timeout_ns)
        self._send(transaction.datagram)

    def _end(self, tid: int) -> None:
        """Forget a transaction (answered, given up or superseded) and its timer."""
        self._transactions.pop(tid, None)
        self._timers.cancel(tid)

    def _send(self, datagram: Datagram) -> None:
        self._outbox.append(datagram)
        self._counters["mads_sent"] += 1

    def _give_up(
        self, transaction: _Transaction, reason: str, now_ns: int, *, final: bool = False
    ) -> None:
        """Give a request up; an alias write is asked again later (module docstring)
        unless `final` (an answer that cannot change) or its retries are spent."""
        self._end(transaction.tid)
        self.counters["sa_gave_up"] += 1
        ops = transaction.ops
        if ops is not None:
            limit = self.config.alias_retry_limit
            for op in ops:  # each entry by its own count (mlx4's per-entry schedule)
                if final or (limit is not None and op.retries >= limit):
                    self._entry_done(op, now_ns, reason)
                else:
                    self._retry_later(op, reason, now_ns)
            self._write_entries(now_ns)
        elif transaction.tid in self._inform_tids:
            self._inform_done(transaction, now_ns, reason)

    def _on_response(self, mad: SaMad, now_ns: int) -> None:
        tid = mad.header.tid & TID_MASK
        transaction = self._transactions.get(tid)
        if transaction is None or mad.header.attribute_id != transaction.attribute_id:
            self.counters["responses_unmatched"] += 1
            return
        status = mad.header.status
        if status:
            reason = f"status {status:#06x}"
            if status in _RETRYABLE:
                transaction.reason = reason  # the timer resends or gives up
                self.counters["sa_retryable_errors"] += 1
                return
            self._give_up(transaction, reason, now_ns, final=True)
            return
        ops = transaction.ops
        if ops is None:
            self._end(tid)
            if transaction.gid is not None:
                self._on_path_record(mad, transaction.gid, now_ns)
            else:
                self._inform_done(transaction, now_ns, None)
            return
        try:
            record = mad.record()
        except WireError:
            self.counters["malformed"] += 1
            return
        if not isinstance(record, GUIDInfoRecord):
            self.counters["malformed"] += 1
            return
        held = record.guid_info.guids
        done: list[_EntryOp] = []
        refused: list[_EntryOp] = []
        for op in ops:
            guid = held[op.index % GUID_BLOCK_SIZE]
            if (guid != op.guid) if op.setting else (guid == op.guid):
                refused.append(op)
            else:
                done.append(op)
        if refused:
            # A Set refused: another port holds the GUID (the source of a migration
            # has not released it yet): try again when the timer says so. The
            # request is narrowed to the refused entries, so that its resend leaves
            # the done ones (and whatever is asked of them next) alone.
            transaction.reason = "refused"
            self.counters["alias_refused"] += len(refused)
            if done:
                transaction.ops = refused
                transaction.datagram = self._guid_info_request(refused, transaction.method, tid)
        else:
            self._end(tid)
        for op in done:
            self._entry_done(op, now_ns, None)
        # What waited behind the entries done goes now, a record at a time.
        self._write_entries(now_ns)

    # --- internals: Reports -----------------------------------------------------------

    def _on_report(self, payload: bytes, datagram: Datagram, now_ns: int) -> None:
        if (payload[16] << 8) | payload[17] != _NOTICE:
            self._counters["mads_received"] += 1
            self._counters["unexpected_report"] += 1
            return
        port_lid = self.port_lid if self.port_lid is not None else datagram.dlid
        self._outbox.append(report_resp(datagram, lid=port_lid, gid=self.port_gid))
        tid = int.from_bytes(payload[8:16], "big")
        duplicate = self.sa.reports.duplicate(datagram.slid, tid)
        self._reports_answered += 1
        if self._wants(ReportReceived):
            # TrapNumber, or the DeviceID of a vendor-specific notice (same bytes).
            trap = (payload[_NOTICE_TRAP] << 8) | payload[_NOTICE_TRAP + 1]
            self._record(_new_report_received(trap, tid, duplicate, now_ns))
        if duplicate:
            self._reports_resent += 1
            return
        moved = peek_path_move(payload, SA_HEADER_SIZE)
        if moved is None:
            service = peek_gid_service(payload, SA_HEADER_SIZE)
            if service is not None and service[0] in self.sa.traps:
                self._on_gid_service(service[0], service[1], now_ns)
            return
        gid, new_lid, path = moved
        self._path_moved(gid, int.from_bytes(gid[8:16], "big"), new_lid, now_ns, path)

    def _path_moved(
        self, gid: bytes, vguid: int, new_lid: int, now_ns: int, path: PathValues | None = None
    ) -> None:
        """The mapping table takes the new LID; the registered local VMs are told
        (with the new path's values when the notice carried them)."""
        self._set_mapping(vguid, new_lid, "report", now_ns)
        for vm in self._registrations.get(gid, ()):
            self._intra_outbox.append(ForwardPathChange(vm, gid, new_lid, path))
            self._counters["intra_host_sent"] += 1
            if self._wants(PathChangeForwarded):
                self._record(PathChangeForwarded(vm, gid, new_lid, now_ns))

    def _on_gid_service(self, trap: int, gid: bytes, now_ns: int) -> None:
        """Trap 65 or 64 (the "trap64-65" variant). They carry no LID: on trap 64 dom0
        asks the SA for the GID's PathRecord, as OFED's local SA cache does
        (local_sa.c), and the answer is handled as a trap 69 would be. Trap 65 alone
        changes nothing: the table keeps the last LID known until trap 64's answer."""
        if trap != TrapNumber.GID_IN_SERVICE or self.port_lid is None or self.sa_lid is None:
            return
        tid = self._next_tid()
        query = PathRecord(dgid=gid, sgid=self.port_gid, numb_path=1)
        payload = SaMad.from_record(
            query, method=Method.GET, tid=tid, component_mask=_PATH_QUERY_MASK
        ).pack()
        self.counters["path_queries"] += 1
        self._start(
            _Transaction(tid, SaAttr.PATH_RECORD, Method.GET, self._request(payload), gid=gid),
            now_ns,
        )

    def _on_path_record(self, mad: SaMad, gid: bytes, now_ns: int) -> None:
        try:
            record = mad.record()
        except WireError:
            self.counters["malformed"] += 1
            return
        if not isinstance(record, PathRecord) or record.dgid != gid:
            self.counters["malformed"] += 1
            return
        self._path_moved(gid, int.from_bytes(gid[8:16], "big"), record.dlid, now_ns)

    # --- plumbing ---------------------------------------------------------------------


__all__ = [
    "DEFAULT_GID_PREFIX",
    "TID_MASK",
    "AddressAssignment",
    "HostAgent",
    "HostConfig",
    "HostError",
    "derived_vf_guid",
    "make_gid",
]
