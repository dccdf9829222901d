"""The subnet management agent (SMA) of one switch or channel adapter, sans I/O.

Every InfiniBand node has an SMA on QP0 that answers the subnet manager's SMPs
(IBA Vol 1, 14.2 "Subnet Management Agent"; methods 14.2.3, attributes 14.2.5).
`SubnetManagementAgent` is that agent as an engine in the shape of
`ibmig.core.engine.Engine`: the runtime hands it SMPs already delivered to this
node (`receive`), physical link events (`set_link`) and the clock (`handle_timer`);
it hands back responses and traps (`packets_to_send`), its next deadline
(`get_timer`) and events (`next_event`).

What the transport does, not the SMA. Directed-route hop processing
(`ibmig.wire.smp.dr_receive` / `dr_originate`, IBA 14.2.2) happens outside: the SMA
sees a DR SMP only once it is addressed to this node, and answers with a GetResp
that keeps the request's hop pointer, hop count, DrSLID, DrDLID and both paths
(exactly `ibmig.wire.smp.make_get_resp`), D bit set, for the transport to send
back along the return path. Forwarding of data packets through a switch is also
the transport's: it reads the switch's table directly from `agent.lft`.

Receive pipeline (the order of the checks follows the MAD layer first, then the
SMA; IBA 13.4.7 status codes, 14.2.4 M_Key):

1. not 256 bytes, not class 0x01/0x81, BaseVersion != 1, an arrival port this node
   does not have, or a DR request with the D bit set: dropped, counted `malformed`;
2. a response (R bit set): dropped, counted `responses_ignored`;
3. ClassVersion != 1: GetResp with status 0x0004 (bad version);
4. a method other than Get, Set or TrapRepress: GetResp with 0x0008;
5. the M_Key check (below): on failure the SMP is dropped and counted;
6. TrapRepress: stops the pending trap with the same TID; never answered;
7. Get/Set: an attribute this node does not implement, or a Set of a read-only one:
   0x000C; a modifier out of range (port, block): 0x001C, data echoed; an invalid
   value in a Set (illegal port state transition, LID out of the unicast range,
   NeighborMTU above MTUCap, ...): 0x001C, nothing changed, current value returned.

Addressing of responses: out of the arrival port, to the request's SLID, from the
port's LID (a switch's LID is port 0's; 0 while none is assigned). A DR response
goes to the permissive LID and carries it as SLID as well, as HCAs put it in the
LRH of any SMP sent to the permissive DLID; only when the request's DrDLID is not
permissive (its last segment was LID routed) does the response start by LID, to
the request's SLID. QP0 to QP0; SL and P_Key echo the request.

Attributes (modifiers as in `ibmig.wire.smp_attrs`):

- NodeInfo, NodeDescription: Get only. NodeInfo LocalPortNum is the arrival port;
  PortGUID is the arrival port's GUID (the node GUID on a switch).
- PortInfo: switches select the port with the modifier (bit 31 ignored, as ibsim
  does); channel adapters ignore the modifier and answer for the arrival port.
  LocalPortNum in the answer is the arrival port. Set writes only the writable
  fields (IBA 14.2.5.6 Table 146 "RW" column): M_Key, GIDPrefix, LID, MasterSMLID,
  M_KeyLeasePeriod, LinkWidthEnabled, PortState, PortPhysicalState,
  LinkDownDefaultState, M_KeyProtectBits, LMC, LinkSpeedEnabled, NeighborMTU,
  MasterSMSL, VLHighLimit, InitTypeReply, VLStallCount, HOQLife, OperationalVLs,
  the partition-enforcement and raw-filter bits, the violation counters (writing 0
  resets them), ClientReregister (a request, reported as an event and read back
  as 0), MulticastPKeyTrapSuppressionEnabled, SubnetTimeOut, the error thresholds
  and LinkSpeedExtEnabled. Capabilities, "supported" and "active" fields, GUIDCap,
  LocalPortNum, VLCap, MTUCap and the like keep their values. The addressing
  fields of a switch live on port 0 (a switch's external ports share its LID); on
  base port 0 of a switch PortState and the link fields do not apply and are
  ignored (port 0 is always Active/LinkUp, as in ibsim).
- SwitchInfo (switches): Set writes LinearFDBTop (must be below LinearFDBCap),
  the default ports, LifeTimeValue and MulticastFDBTop. PortStateChange is set
  when a link event changes the state of an external port (Down->Init, any->Down;
  not when a SubnSet changes it) and is cleared by a Set that writes it as 1;
  writing 0 leaves it (IBA 14.2.5.4; OpenSM clears it that way, ibsim likewise).
- LinearForwardingTable (switches): modifier = block of 64 LIDs; `agent.lft` is a
  `bytearray` of LinearFDBCap entries, 0xFF (no route) at power-up.
- MulticastForwardingTable (switches, IBA 14.2.5.11): modifier = position << 28 |
  block of 32 MLIDs from 0xC000; `agent.mft` holds one port mask per MLID of
  MulticastFDBCap, all clear at power-up. A block beyond the cap or a position
  beyond the switch's ports: status 0x001C (invalid field).
- GUIDInfo: CA ports, GUIDCap entries in blocks of 8; index 0 is the port GUID and
  read-only, a Set writes the other entries of the block (alias GUIDs: the vGUIDs
  of SR-IOV virtual functions). A switch answers for its port 0 (one entry).
- P_KeyTable: modifier bits 15..0 = block of 32; on switches bits 31..16 = port.
  Entry 0 is 0xFFFF at power-up.
- SMInfo: answered only where an SM lives (`sm_info_handler`), else 0x000C.
- Notice: only TrapRepress is meaningful to an SMA; Get/Set of Notice give 0x000C.

M_Key (IBA 14.2.4): the key that counts is the arrival port's (a switch: port 0's).
The check passes when that key is 0 or equals the SMP's M_Key. On failure, by
M_KeyProtectBits: 0: a Get succeeds; 1: a Get succeeds but PortInfo:M_Key reads as
0; 2 and 3: a Get fails. A Set or TrapRepress always fails. A failure drops the SMP,
counts PortInfo:M_KeyViolations (saturating at 0xFFFF) and, with a non-zero
M_KeyLeasePeriod, starts the lease timer unless it runs; an SMP that passes the
check stops it. When it expires the protect bits fall back to 0.

Port state machine (IBA 7.2 and PortInfo:PortState, 14.2.5.6) is the table
`PORT_TRANSITIONS`: the link coming up takes a Down port to Init; the link
failing takes any state to Down; the SM may set Down from anywhere, Armed only
from Init and Active only from Armed. Anything else raises `PortTransitionError`,
which a Set turns into status 0x001C. A Set of PortState Down (or of any
PortPhysicalState) takes the link down: PortPhysicalState becomes Polling (the
link retrains), or Disabled/Sleep when the Set asked for that, and the agent
emits `LinkDownRequested` for the runtime to act on the wire. A disabled port
ignores `set_link(port, True)` until the SM writes PortPhysicalState Polling
(`LinkEnableRequested`).

Traps (IBA 13.4.8.2 Notice, 14.2.5.1 trap 128): a switch whose external port
changes state through a link event raises trap 128, "link state of at least one
port of switch at LIDADDR has changed": a generic, urgent Notice from a switch
producer, issuer LID and LIDADDR the switch's LID, sent as a LID-routed SubnTrap
(class 0x01, method 0x05) from port 0 to MasterSMLID, QP0 to QP0, SL MasterSMSL,
with port 0's M_Key. `Datagram.port` 0 means "the switch's management port": the
transport routes it through the switch's own LFT. Nothing is sent while the switch
has no LID or no SM LID (PortStateChange stays set for the SM's next sweep, as in
ibsim). The trap repeats with the same TID every 4.096 us x 2^SubnetTimeOut (port
0's value when the repeat is scheduled) until a TrapRepress with that TID
arrives, or until `trap_retry_limit` repeats (None: no limit). A new trap whose
Notice equals one still pending is not raised again.

Speed: the hot attributes never decode or re-encode unchanged state. NodeInfo and
NodeDescription are packed once per port at construction. Each port's PortInfo
*is* its 64 packed bytes: a Get copies them (patching LocalPortNum), a Set checks
and copies the writable fields byte by byte, and a `PortInfo` record is decoded
only when someone asks (`port_info()`). SwitchInfo is cached packed and re-packed
only after a change; an LFT Set copies the 64 request bytes straight into `lft`.
The response is built from the request bytes with one precompiled `struct` call.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Final, Protocol

from ibmig.core.engine import PERMISSIVE_LID, QP0, Datagram, EventLog
from ibmig.core.sma.events import (
    ClientReregisterRequested,
    ForwardingChanged,
    GuidInfoChanged,
    LftBlockWritten,
    LidAssigned,
    LinearFdbTopChanged,
    LinkDownRequested,
    LinkEnableRequested,
    MasterSmLidChanged,
    MKeyLeaseExpired,
    MKeyViolation,
    PKeyTableChanged,
    PortStateChanged,
    SmaEvent,
    TrapAbandoned,
    TrapRepressed,
    TrapSent,
)
from ibmig.core.sma.spec import (
    DEFAULT_SWITCH_GUID_CAP,
    MAX_UNICAST_LID,
    NodeSpec,
    PortSpec,
    blocks_for,
)
from ibmig.core.timers import Timers
from ibmig.errors import WireError
from ibmig.wire.mad import MAD_SIZE, RESPONSE_BIT, MadStatus, Method, MgmtClass
from ibmig.wire.notice import (
    NOTICE_ATTRIBUTE_ID,
    LinkStateChangeDetails,
    Notice,
    NoticeType,
    ProducerType,
    TrapNumber,
)
from ibmig.wire.smp import D_BIT, SMP_DATA_SIZE, make_request
from ibmig.wire.smp_attrs import (
    GUID_BLOCK_SIZE,
    LFT_BLOCK_SIZE,
    MFT_BLOCK_SIZE,
    MFT_PORTS_PER_POSITION,
    MULTICAST_LID_BASE,
    PKEY_BLOCK_SIZE,
    LinkWidth,
    MulticastForwardingTable,
    NodeDescription,
    NodeInfo,
    NodeType,
    PhysPortState,
    PortInfo,
    PortState,
    SMInfo,
    SmpAttr,
    SwitchInfo,
    mft_block_position,
)

DEFAULT_GID_PREFIX: Final = 0xFE80_0000_0000_0000
"""The link-local subnet prefix every port starts with (IBA Vol 1, 4.1.1)."""

TRAP_INTERVAL_UNIT_NS: Final = 4096
"""4.096 us: the unit of SubnetTimeOut (IBA Vol 1, 14.2.5.6)."""

NO_ROUTE: Final = 0xFF
PKEY_DEFAULT: Final = 0xFFFF
MAX_COUNTER16: Final = 0xFFFF

_OK = MadStatus.OK.value
_BAD_VERSION = MadStatus.BAD_VERSION.value
_METHOD_NOT_SUPPORTED = MadStatus.METHOD_NOT_SUPPORTED.value
_ATTR_NOT_SUPPORTED = MadStatus.METHOD_ATTR_NOT_SUPPORTED.value
_INVALID_FIELD = MadStatus.INVALID_FIELD.value

_GET = Method.GET.value
_SET = Method.SET.value
_TRAP_REPRESS = Method.TRAP_REPRESS.value
_GET_RESP = Method.GET_RESP.value
_REQUEST_METHODS = frozenset((_GET, _SET, _TRAP_REPRESS))
_LID_ROUTED = MgmtClass.SUBN_LID_ROUTED.value
_DIRECTED = MgmtClass.SUBN_DIRECTED_ROUTE.value

# The first 32 bytes of an SMP: BaseVersion, MgmtClass, ClassVersion, R|Method,
# Status, HopPointer, HopCount (reserved when LID routed), TID, AttributeID,
# reserved, AttributeModifier, M_Key (IBA Vol 1, 14.2.1.1 and 14.2.1.2).
_HEADER = struct.Struct(">BBBBHBBQHHIQ")
# GetResp built from the request's bytes (the same bytes `make_get_resp(...).pack()`
# gives): LID routed keeps bytes 0..2, TID and AttributeID (8..17), modifier and
# M_Key (20..31) and zeroes every reserved byte; directed route also keeps the hop
# pointer and count (6..7), DrSLID and DrDLID (32..35) and both paths (128..255).
_LR_RESPONSE = struct.Struct(">3sBH2x10s2x12s32x64s128x")
_DR_RESPONSE = struct.Struct(">3sBH12s2x16s28x64s128s")
_GUID_BLOCK = struct.Struct(">8Q")
_PKEY_BLOCK = struct.Struct(">32H")

_ZERO_M_KEY = bytes(8)
# A response's Datagram: the fields after `pkey` keep their defaults (`_respond`).
_DATAGRAM_DEFAULTS = Datagram(b"", 0, 0, 0, 0, 0)[8:]
_new_tuple = tuple.__new__
_PERMISSIVE_BYTES = PERMISSIVE_LID.to_bytes(2, "big")

# PortInfo byte offsets (IBA Vol 1, 14.2.5.6, Table 146; the layout is drawn in
# `ibmig.wire.smp_attrs.PortInfo`). The agent keeps each port's PortInfo as its 64
# packed bytes and edits fields in place: a Set or a link event then costs a few
# byte operations instead of a 51-field record rebuild.
_PI_M_KEY = 0  # 8 bytes
_PI_LID = 16  # 2 bytes; MasterSMLID follows at 18
_PI_CAPABILITY_MASK = 20  # 4 bytes
_PI_M_KEY_LEASE = 26  # 2 bytes
_PI_LOCAL_PORT_NUM = 28
_PI_WIDTH_ENABLED = 29
_PI_WIDTH_SUPPORTED = 30
_PI_WIDTH_ACTIVE = 31
_PI_SPEED_SUPPORTED_STATE = 32  # LinkSpeedSupported 7..4 | PortState 3..0
_PI_PHYS_DOWN_DEFAULT = 33  # PortPhysicalState 7..4 | LinkDownDefaultState 3..0
_PI_PROTECT_LMC = 34  # M_KeyProtectBits 7..6 | LMC 2..0
_PI_SPEED_ACTIVE_ENABLED = 35  # LinkSpeedActive 7..4 | LinkSpeedEnabled 3..0
_PI_MTU_SM_SL = 36  # NeighborMTU 7..4 | MasterSMSL 3..0
_PI_VL_CAP = 37  # VLCap 7..4 | InitType 3..0
_PI_VL_HIGH_LIMIT = 38
_PI_INIT_REPLY_MTU_CAP = 41  # InitTypeReply 7..4 | MTUCap 3..0
_PI_STALL_HOQ = 42  # VLStallCount 7..5 | HOQLife 4..0
_PI_OP_VLS_FILTERS = 43  # OperationalVLs 7..4 | enforcement and filter bits 3..0
_PI_VIOLATIONS = (44, 46, 48)  # M_Key, P_Key, Q_Key violation counters, 2 bytes each
_PI_REREG_TIMEOUT = 51  # ClientReregister 7 | McastPKeyTrapSuppression 6..5 | SubnetTimeOut
_PI_ERROR_THRESHOLDS = 53  # LocalPhyErrors 7..4 | OverrunErrors 3..0
_PI_EXT_ACTIVE_SUPPORTED = 62  # LinkSpeedExtActive 7..4 | LinkSpeedExtSupported 3..0
_PI_EXT_ENABLED = 63  # LinkSpeedExtEnabled 4..0
# M_Key, LID and the protect-bits byte, read after every change of a port.
_PI_KEY_FIELDS = struct.Struct(">Q8xH16xB")
_PI_LIDS = struct.Struct(">HH")
_U16 = struct.Struct(">H")

_DISABLED_PHYS = frozenset({PhysPortState.DISABLED, PhysPortState.SLEEP})
_WIDTH_PREFERENCE = (
    LinkWidth.WIDTH_12X,
    LinkWidth.WIDTH_8X,
    LinkWidth.WIDTH_4X,
    LinkWidth.WIDTH_2X,
    LinkWidth.WIDTH_1X,
)
_ALL_WIDTHS = 0xFF
_ALL_SPEEDS = 0xF
_ALL_EXT_SPEEDS = 0x1F
_EXT_SPEEDS_DISABLED = 0x1E


# --- port state machine -----------------------------------------------------------


class PortStimulus(IntEnum):
    """What can move a port's logical state: a SubnSet(PortInfo) PortState value
    (the same codes) or the physical link (IBA Vol 1, 7.2)."""

    SET_DOWN = PortState.DOWN.value
    SET_INIT = PortState.INIT.value  # never legal: only the link brings a port to Init
    SET_ARMED = PortState.ARMED.value
    SET_ACTIVE = PortState.ACTIVE.value
    LINK_UP = 0x10
    LINK_DOWN = 0x11


class PortTransitionError(Exception):
    """An illegal port state transition. Internal: a Set turns it into MAD status
    INVALID_FIELD (0x001C) and changes nothing."""


_DOWN, _INIT, _ARMED, _ACTIVE = (
    PortState.DOWN,
    PortState.INIT,
    PortState.ARMED,
    PortState.ACTIVE,
)

PORT_TRANSITIONS: Final[Mapping[tuple[int, int], PortState]] = {
    # The SM takes a port down from any state (IBA 14.2.5.6 PortState, Set value 1).
    (_DOWN, PortStimulus.SET_DOWN): _DOWN,
    (_INIT, PortStimulus.SET_DOWN): _DOWN,
    (_ARMED, PortStimulus.SET_DOWN): _DOWN,
    (_ACTIVE, PortStimulus.SET_DOWN): _DOWN,
    # Armed only from Init, Active only from Armed (7.2: the SM drives these two).
    (_INIT, PortStimulus.SET_ARMED): _ARMED,
    (_ARMED, PortStimulus.SET_ACTIVE): _ACTIVE,
    # Link training finished: Down -> Init; an already-up port is unaffected.
    (_DOWN, PortStimulus.LINK_UP): _INIT,
    (_INIT, PortStimulus.LINK_UP): _INIT,
    (_ARMED, PortStimulus.LINK_UP): _ARMED,
    (_ACTIVE, PortStimulus.LINK_UP): _ACTIVE,
    # The link failed: every state falls to Down.
    (_DOWN, PortStimulus.LINK_DOWN): _DOWN,
    (_INIT, PortStimulus.LINK_DOWN): _DOWN,
    (_ARMED, PortStimulus.LINK_DOWN): _DOWN,
    (_ACTIVE, PortStimulus.LINK_DOWN): _DOWN,
}
"""(current PortState, stimulus) -> new PortState; a missing pair is illegal."""


def next_port_state(state: int, stimulus: int) -> PortState:
    """Look up `PORT_TRANSITIONS`; raise `PortTransitionError` for an illegal pair."""
    try:
        return PORT_TRANSITIONS[(state, stimulus)]
    except KeyError:
        raise PortTransitionError(
            f"port state {state} does not accept stimulus {stimulus:#x}"
        ) from None


class _InvalidField(Exception):
    """A Set carries a value the SMA must refuse (status 0x001C)."""


# --- collaborators and bookkeeping --------------------------------------------------


class SmInfoHandler(Protocol):
    """The SM living on this node, as seen by its SMA (SMInfo, IBA Vol 1, 14.2.5.13)."""

    def sm_info_get(self) -> SMInfo: ...

    def sm_info_set(self, control: int, info: SMInfo) -> SMInfo | None:
        """Handle SubnSet(SMInfo) with control code `control` (the modifier); return
        the SMInfo to answer with, or None when Set is not supported (0x000C)."""
        ...


@dataclass(slots=True)
class SmaCounters:
    """What the agent counted (plain ints, cheap to bump)."""

    received: int = 0
    responses_sent: int = 0
    malformed: int = 0
    responses_ignored: int = 0
    bad_version: int = 0
    unsupported: int = 0
    invalid_field: int = 0
    m_key_dropped: int = 0
    traps_sent: int = 0
    traps_suppressed: int = 0
    trap_represses: int = 0
    unmatched_represses: int = 0


@dataclass(slots=True)
class _PendingTrap:
    tid: int
    trap_number: int
    notice_bytes: bytes
    datagram: Datagram
    port: int
    deadline_ns: int
    attempts: int


def _pad(raw: bytes) -> bytes:
    return raw.ljust(SMP_DATA_SIZE, b"\x00")


def _best_width(mask: int) -> int:
    for width in _WIDTH_PREFERENCE:
        if mask & width:
            return int(width)
    return 0


def _highest_bit(mask: int) -> int:
    return 1 << (mask.bit_length() - 1) if mask > 0 else 0


def _trap_interval_ns(subnet_timeout: int) -> int:
    return TRAP_INTERVAL_UNIT_NS << subnet_timeout


# An attribute handler: (is_set, modifier, arrival port, request bytes, hide M_Key)
# -> (status, 64 bytes of response data).
_Handler = Callable[[bool, int, int, bytes, bool], tuple[int, bytes]]


_FORWARDING_CHANGED = ForwardingChanged()
_NI_LOCAL_PORT_NUM = 36  # NodeInfo byte 36: LocalPortNum (IBA Vol 1, 14.2.5.3)


@functools.lru_cache(maxsize=1024)  # bounded: specs in tests vary widely
def _initial_port_info(
    ps: PortSpec, capability_mask: int, base_port0: bool, guid_cap: int, subnet_timeout: int
) -> bytes:
    """The packed PortInfo a port starts with. Cached: a large fabric has hundreds
    of thousands of ports (315,000 on the 40,960-host tree) but a handful of
    distinct starting states, and building and packing a 51-field record for each
    was a tenth of the simulated subnet's construction."""
    return PortInfo(
        gid_prefix=DEFAULT_GID_PREFIX,
        capability_mask=capability_mask,
        link_width_enabled=ps.link_width_supported,
        link_width_supported=ps.link_width_supported,
        link_width_active=_best_width(ps.link_width_supported),
        link_speed_supported=ps.link_speed_supported,
        port_state=PortState.ACTIVE if base_port0 else PortState.DOWN,
        port_physical_state=PhysPortState.LINK_UP if base_port0 else PhysPortState.POLLING,
        link_down_default_state=PhysPortState.POLLING,
        link_speed_active=_highest_bit(ps.link_speed_supported),
        link_speed_enabled=ps.link_speed_supported,
        neighbor_mtu=ps.mtu_cap,
        vl_cap=ps.vl_cap,
        vl_arbitration_high_cap=8,
        vl_arbitration_low_cap=8,
        mtu_cap=ps.mtu_cap,
        hoq_life=0x10,
        operational_vls=ps.vl_cap,
        guid_cap=guid_cap,
        subnet_timeout=subnet_timeout,
        resp_time_value=0x10,
        link_speed_ext_active=_highest_bit(ps.link_speed_ext_supported),
        link_speed_ext_supported=ps.link_speed_ext_supported,
        link_speed_ext_enabled=ps.link_speed_ext_supported,
    ).pack()


class SubnetManagementAgent(EventLog[SmaEvent]):
    """The SMA of one node (module docstring). Implements `ibmig.core.engine.Engine`.

    `record_events` False skips building events (for large simulations), except
    `ForwardingChanged`, which a transport that memoises routes needs;
    `sm_info_handler` answers SMInfo where an SM lives (it can be set later);
    `trap_retry_limit` bounds the repeats of an unrepressed trap (None: forever).
    """

    def __init__(
        self,
        spec: NodeSpec,
        *,
        record_events: bool = True,
        sm_info_handler: SmInfoHandler | None = None,
        trap_retry_limit: int | None = None,
    ) -> None:
        self.spec = spec
        self.sm_info_handler = sm_info_handler
        self._init_event_log(record_events)
        self.trap_retry_limit = trap_retry_limit
        self.counters = SmaCounters()
        self.is_switch = spec.node_type == NodeType.SWITCH
        self._first_port = spec.first_port
        self._num_ports = spec.num_ports
        self._outbox: list[Datagram] = []
        self._traps: dict[int, _PendingTrap] = {}
        self._lease_deadline_ns: dict[int, int] = {}
        # Keys: ("trap", TID) for an unrepressed trap's repeat, ("lease", port) for an
        # M_Key lease running out.
        self._timers: Timers[tuple[str, int]] = Timers()
        self._tid_high = (spec.node_guid & 0xFFFFFFFF) << 32
        self._tid_low = 0

        ports = range(spec.num_ports + 1)
        # PortInfo state: packed bytes (LocalPortNum 0), a lazily decoded record, and
        # mirrors of what every SMP needs (M_Key, protect bits, LID).
        self._pi_raw: list[bytearray] = [bytearray(self._initial_port_info(p)) for p in ports]
        self._pi_record: list[PortInfo | None] = [None] * len(ports)
        self._m_key: list[int] = [0] * len(ports)
        self._protect: list[int] = [0] * len(ports)
        self._lid: list[int] = [0] * len(ports)
        for p in ports:
            self._refresh(p)
        if self.is_switch:
            # A switch's ports share its port GUID and differ only in LocalPortNum:
            # one record packed and patched per port (65 ports each on a 64-port
            # switch, 233,000 on the 40,960-host tree).
            base = _pad(self._node_info(0).pack())
            at = _NI_LOCAL_PORT_NUM
            self._node_info_bytes = [base[:at] + bytes((p,)) + base[at + 1 :] for p in ports]
        else:
            self._node_info_bytes = [_pad(self._node_info(p).pack()) for p in ports]
        self._node_description_bytes = NodeDescription(spec.description).pack()
        self._guids: list[list[int]] = [[] for _ in ports]
        self._pkeys: list[list[int]] = [[] for _ in ports]
        for p in ports:
            guid_cap = self._guid_cap(p)
            if guid_cap:
                self._guids[p] = [spec.port_guid(p)] + [0] * (guid_cap - 1)
            pkey_cap = self._pkey_cap(p)
            if pkey_cap and (p or self.is_switch):
                self._pkeys[p] = [PKEY_DEFAULT] + [0] * (pkey_cap - 1)

        self._switch_info: SwitchInfo | None = None
        self._switch_info_bytes = b""
        if self.is_switch:
            self.lft = bytearray([NO_ROUTE]) * spec.lft_cap
            self._lft_blocks = spec.lft_cap // LFT_BLOCK_SIZE
            self.mft: list[int] = [0] * spec.mft_cap
            self._set_switch_info(
                SwitchInfo(
                    linear_fdb_cap=spec.lft_cap,
                    multicast_fdb_cap=spec.mft_cap,
                    partition_enforcement_cap=spec.partition_enforcement_cap,
                    enhanced_port0=spec.enhanced_port0,
                )
            )
        else:
            self.lft = bytearray()
            self._lft_blocks = 0
            self.mft = []

        handlers: dict[int, _Handler] = {
            SmpAttr.NODE_DESCRIPTION: self._attr_node_description,
            SmpAttr.NODE_INFO: self._attr_node_info,
            SmpAttr.PORT_INFO: self._attr_port_info,
            SmpAttr.GUID_INFO: self._attr_guid_info,
            SmpAttr.P_KEY_TABLE: self._attr_pkey_table,
            SmpAttr.SM_INFO: self._attr_sm_info,
        }
        if self.is_switch:
            handlers[SmpAttr.SWITCH_INFO] = self._attr_switch_info
            handlers[SmpAttr.LINEAR_FORWARDING_TABLE] = self._attr_lft
            handlers[SmpAttr.MULTICAST_FORWARDING_TABLE] = self._attr_mft
        self._handlers = {int(k): v for k, v in handlers.items()}

    # --- construction helpers ---------------------------------------------------------

    def _node_info(self, port: int) -> NodeInfo:
        spec = self.spec
        return NodeInfo(
            node_type=spec.node_type,
            num_ports=spec.num_ports,
            node_guid=spec.node_guid,
            port_guid=spec.port_guid(port) if port or self.is_switch else 0,
            system_image_guid=spec.system_image_guid,
            partition_cap=spec.partition_cap,
            device_id=spec.device_id,
            revision=spec.revision,
            local_port_num=port,
            vendor_id=spec.vendor_id,
        )

    def _pkey_cap(self, port: int) -> int:
        if self.is_switch and port:
            return self.spec.partition_enforcement_cap
        return self.spec.partition_cap

    def _guid_cap(self, port: int) -> int:
        if self.is_switch:
            return DEFAULT_SWITCH_GUID_CAP if port == 0 else 0
        return self.spec.guid_cap if port else 0

    def _initial_port_info(self, port: int) -> bytes:
        """The packed PortInfo `port` starts with (LocalPortNum 0)."""
        spec = self.spec
        return _initial_port_info(
            spec.port_spec(port),
            spec.default_capability_mask(port),
            self.is_switch and port == 0,
            self._guid_cap(port),
            spec.subnet_timeout,
        )

    def _refresh(self, port: int) -> None:
        """After `_pi_raw[port]` changed: drop the decoded record, update the mirrors."""
        self._pi_record[port] = None
        m_key, lid, protect_lmc = _PI_KEY_FIELDS.unpack_from(self._pi_raw[port])
        self._m_key[port] = m_key
        self._lid[port] = lid
        self._protect[port] = protect_lmc >> 6
        self._forwarding_changed()

    # --- Engine interface ---------------------------------------------------------------

    def receive(self, datagram: Datagram, now_ns: int) -> None:
        """Handle one SMP addressed to this node, arrived on `datagram.port`."""
        counters = self.counters
        counters.received += 1
        payload = datagram.payload
        if type(payload) is not bytes:
            payload = bytes(payload)
        if len(payload) != MAD_SIZE:
            counters.malformed += 1
            return
        (bv, mclass, cver, method, status, _hp, _hc, tid, attr, _rsv, amod, m_key) = (
            _HEADER.unpack_from(payload)
        )
        if mclass == _LID_ROUTED:
            directed = False
        elif mclass == _DIRECTED:
            directed = True
        else:
            counters.malformed += 1
            return
        port = datagram.port
        if bv != 1 or not self._first_port <= port <= self._num_ports:
            counters.malformed += 1
            return
        if method & RESPONSE_BIT:
            counters.responses_ignored += 1
            return
        if directed and status & D_BIT:
            counters.malformed += 1
            return
        if cver != 1:
            counters.bad_version += 1
            self._respond(datagram, payload, directed, _BAD_VERSION, payload[64:128])
            return
        if method not in _REQUEST_METHODS:
            counters.unsupported += 1
            self._respond(datagram, payload, directed, _METHOD_NOT_SUPPORTED, payload[64:128])
            return

        # M_Key check (IBA Vol 1, 14.2.4.1): the key of the arrival port, port 0 on a switch.
        key_port = 0 if self.is_switch else port
        port_key = self._m_key[key_port]
        hide_m_key = False
        if port_key and m_key != port_key:
            protect = self._protect[key_port]
            if method == _GET and protect < 2:
                hide_m_key = protect == 1
            else:
                self._m_key_violation(key_port, method, attr, now_ns)
                return
        elif key_port in self._lease_deadline_ns:
            # A request with the right key stops the lease (IBA 14.2.4.2).
            del self._lease_deadline_ns[key_port]
            self._timers.cancel(("lease", key_port))

        if method == _TRAP_REPRESS:
            self._trap_repress(tid, attr)
            return
        handler = self._handlers.get(attr)
        if handler is None:
            counters.unsupported += 1
            self._respond(datagram, payload, directed, _ATTR_NOT_SUPPORTED, payload[64:128])
            return
        try:
            result, data = handler(method == _SET, amod, port, payload, hide_m_key)
        except WireError:
            # A Set whose data does not decode; the codecs used here accept any 64
            # bytes, so this is defensive.
            result, data = _INVALID_FIELD, payload[64:128]
        if result:
            if result == _ATTR_NOT_SUPPORTED:
                counters.unsupported += 1
            else:
                counters.invalid_field += 1
        self._respond(datagram, payload, directed, result, data)

    def handle_timer(self, now_ns: int) -> None:
        """Repeat due traps and expire M_Key leases."""
        while (key := self._timers.pop_due(now_ns)) is not None:
            kind, which = key
            if kind == "trap":
                trap = self._traps[which]
                limit = self.trap_retry_limit
                if limit is not None and trap.attempts > limit:
                    del self._traps[trap.tid]
                    self._emit(TrapAbandoned(trap.trap_number, trap.tid))
                    continue
                trap.attempts += 1
                self._send_trap(trap, now_ns)
            else:
                del self._lease_deadline_ns[which]
                # The lease ran out: protection falls back to level 0 (IBA 14.2.4.2).
                self._pi_raw[which][_PI_PROTECT_LMC] &= 0x3F
                self._refresh(which)
                self._emit(MKeyLeaseExpired(which))

    def packets_to_send(self) -> list[Datagram]:
        out = self._outbox
        if out:
            self._outbox = []
        return out

    def get_timer(self) -> int | None:
        return self._timers.next_deadline()

    def _forwarding_changed(self) -> None:
        """Where this node forwards or accepts a packet changed (an LFT block, a
        port's LID or state): a transport that memoises routes must forget them. One
        event until it is collected; recorded whatever `record_events` says."""
        events = self._events
        if not events or events[-1] is not _FORWARDING_CHANGED:
            self._record(_FORWARDING_CHANGED)

    # --- runtime API --------------------------------------------------------------------

    def set_link(
        self,
        port: int,
        up: bool,
        now_ns: int,
        *,
        link_width_active: int | None = None,
        link_speed_active: int | None = None,
        link_speed_ext_active: int | None = None,
    ) -> None:
        """The physical link of external port `port` came up (trained) or went down.

        Up: a Down port goes to Init and PortPhysicalState LinkUp; the active width and
        speeds become the ones given, else the best enabled ones. A port the SM
        disabled (PortPhysicalState Disabled or Sleep) does not come up. Down:
        PortState Down, PortPhysicalState Polling (Disabled/Sleep stay). On a switch a
        state change sets SwitchInfo:PortStateChange and raises trap 128.
        """
        if not 1 <= port <= self._num_ports:
            raise ValueError(f"port {port} is not an external port of this node")
        raw = self._pi_raw[port]
        old_state = raw[_PI_SPEED_SUPPORTED_STATE] & 0x0F
        old_phys = raw[_PI_PHYS_DOWN_DEFAULT] >> 4
        if up:
            if old_phys in _DISABLED_PHYS:
                return
            new_state = next_port_state(old_state, PortStimulus.LINK_UP)
            new_phys = PhysPortState.LINK_UP.value
            if old_phys != new_phys:
                width, speed, ext = self._trained_link(
                    raw, link_width_active, link_speed_active, link_speed_ext_active
                )
                raw[_PI_WIDTH_ACTIVE] = width
                raw[_PI_SPEED_ACTIVE_ENABLED] = (speed << 4) | (
                    raw[_PI_SPEED_ACTIVE_ENABLED] & 0x0F
                )
                raw[_PI_EXT_ACTIVE_SUPPORTED] = (ext << 4) | (raw[_PI_EXT_ACTIVE_SUPPORTED] & 0x0F)
        else:
            new_state = next_port_state(old_state, PortStimulus.LINK_DOWN)
            new_phys = old_phys if old_phys in _DISABLED_PHYS else PhysPortState.POLLING.value
        if new_state == old_state and new_phys == old_phys:
            return
        raw[_PI_SPEED_SUPPORTED_STATE] = (raw[_PI_SPEED_SUPPORTED_STATE] & 0xF0) | new_state
        raw[_PI_PHYS_DOWN_DEFAULT] = (new_phys << 4) | (raw[_PI_PHYS_DOWN_DEFAULT] & 0x0F)
        self._refresh(port)
        if new_state == old_state:
            return
        if self.record_events:
            self._emit(PortStateChanged(port, old_state, new_state))
        if self.is_switch:
            info = self._switch_info
            assert info is not None
            if not info.port_state_change:
                self._set_switch_info(replace(info, port_state_change=True))
            self._raise_trap_128(now_ns)

    @staticmethod
    def _trained_link(
        raw: bytearray, width: int | None, speed: int | None, ext: int | None
    ) -> tuple[int, int, int]:
        if width is None:
            width = _best_width(raw[_PI_WIDTH_ENABLED] & raw[_PI_WIDTH_SUPPORTED])
        if speed is None:
            speed = _highest_bit(
                raw[_PI_SPEED_ACTIVE_ENABLED] & raw[_PI_SPEED_SUPPORTED_STATE] >> 4 & 0x0F
            )
        if ext is None:
            enabled = raw[_PI_EXT_ENABLED] & 0x1F
            supported = raw[_PI_EXT_ACTIVE_SUPPORTED] & 0x0F
            ext = _highest_bit(enabled & supported) if enabled <= 0x0F else 0
        if not (0 <= width <= 0xFF and 0 <= speed <= 0x0F and 0 <= ext <= 0x0F):
            raise ValueError(f"active width/speed/ext speed {width}/{speed}/{ext} out of range")
        return width, speed, ext

    def link_enabled(self, port: int) -> bool:
        """False while the SM keeps `port` Disabled or asleep (it cannot train)."""
        return self._pi_raw[port][_PI_PHYS_DOWN_DEFAULT] >> 4 not in _DISABLED_PHYS

    def set_capability_mask(self, port: int, capability_mask: int) -> None:
        """Local software (an SM, a CM agent) changes PortInfo:CapabilityMask of `port`."""
        if not 0 <= capability_mask <= 0xFFFFFFFF:
            raise ValueError(f"CapabilityMask {capability_mask:#x} exceeds 32 bits")
        self._pi_raw[port][_PI_CAPABILITY_MASK : _PI_CAPABILITY_MASK + 4] = (
            capability_mask.to_bytes(4, "big")
        )
        self._refresh(port)

    # --- queries --------------------------------------------------------------------------

    def port_info(self, port: int) -> PortInfo:
        """The stored PortInfo of `port` (LocalPortNum 0; M_Key not hidden)."""
        record = self._pi_record[port]
        if record is None:
            record = PortInfo.unpack(bytes(self._pi_raw[port]))
            self._pi_record[port] = record
        return record

    def port_state(self, port: int) -> int:
        return self._pi_raw[port][_PI_SPEED_SUPPORTED_STATE] & 0x0F

    def port_lid(self, port: int) -> int:
        """The LID that addresses `port` (a switch: its port 0 LID); 0 when unassigned."""
        return self._lid[0 if self.is_switch else port]

    @property
    def lid(self) -> int:
        """A switch's LID, or the base LID of a CA's port 1."""
        return self._lid[self._first_port]

    def switch_info(self) -> SwitchInfo | None:
        return self._switch_info

    def egress_port(self, dlid: int) -> int:
        """The LFT's port for `dlid`, or 0xFF when none (beyond LinearFDBTop or the table,
        IBA Vol 1, 14.2.5.4 LinearFDBTop). CAs have no table: always 0xFF."""
        info = self._switch_info
        if info is None or dlid > info.linear_fdb_top or dlid >= len(self.lft):
            return NO_ROUTE
        return self.lft[dlid]

    def guid_table(self, port: int) -> tuple[int, ...]:
        """GUIDInfo of `port` (index 0 = the port GUID; 0 = unused entry)."""
        return tuple(self._guids[port])

    def guid_index(self, port: int, guid: int) -> int | None:
        """The GUIDInfo index of `port` that holds `guid`, or None: how the HCA tells
        apart the virtual functions sharing the port's LID (by their GIDs)."""
        if not guid:
            return None  # 0 marks an unused entry, not a GUID
        try:
            return self._guids[port].index(guid)
        except ValueError:
            return None

    def pkey_table(self, port: int) -> tuple[int, ...]:
        return tuple(self._pkeys[port])

    def pending_traps(self) -> tuple[tuple[int, int], ...]:
        """(trap number, TID) of every trap still waiting for its TrapRepress."""
        return tuple((t.trap_number, t.tid) for t in self._traps.values())

    # --- responses ------------------------------------------------------------------------

    def _respond(
        self, request: Datagram, payload: bytes, directed: bool, status: int, data: bytes
    ) -> None:
        if directed:
            raw = _DR_RESPONSE.pack(
                payload[0:3],
                _GET_RESP,
                D_BIT | status,
                payload[6:18],
                payload[20:36],
                data,
                payload[128:256],
            )
            if payload[34:36] == _PERMISSIVE_BYTES:
                slid = dlid = PERMISSIVE_LID
            else:
                # DrDLID not permissive: the request's last segment was LID routed,
                # so the answer's first one goes back by LID to where it came from.
                slid = self._lid[0 if self.is_switch else request.port]
                dlid = request.slid
        else:
            raw = _LR_RESPONSE.pack(
                payload[0:3], _GET_RESP, status, payload[8:18], payload[20:32], data
            )
            slid = self._lid[0 if self.is_switch else request.port]
            dlid = request.slid
        # All fields given, past the NamedTuple's Python-level __new__ (half the cost
        # of building it; one per SMP answered).
        fields = (raw, request.port, slid, dlid, QP0, QP0, request.sl, request.pkey)
        self._outbox.append(_new_tuple(Datagram, (*fields, *_DATAGRAM_DEFAULTS)))
        self.counters.responses_sent += 1

    # --- attributes -----------------------------------------------------------------------
    # Each handler: (is_set, modifier, arrival port, request bytes, hide M_Key)
    # -> (status, 64 bytes of response data).

    def _attr_node_description(
        self, is_set: bool, amod: int, port: int, payload: bytes, hide: bool
    ) -> tuple[int, bytes]:
        if is_set:
            return _ATTR_NOT_SUPPORTED, payload[64:128]
        return _OK, self._node_description_bytes

    def _attr_node_info(
        self, is_set: bool, amod: int, port: int, payload: bytes, hide: bool
    ) -> tuple[int, bytes]:
        if is_set:
            return _ATTR_NOT_SUPPORTED, payload[64:128]
        return _OK, self._node_info_bytes[port]

    def _attr_switch_info(
        self, is_set: bool, amod: int, port: int, payload: bytes, hide: bool
    ) -> tuple[int, bytes]:
        if is_set:
            info = self._switch_info
            assert info is not None
            new = SwitchInfo.unpack(payload, 64)
            if new.linear_fdb_top >= info.linear_fdb_cap:
                return _INVALID_FIELD, self._switch_info_bytes
            if (
                new.linear_fdb_top != info.linear_fdb_top
                or new.default_port != info.default_port
                or new.default_multicast_primary_port != info.default_multicast_primary_port
                or new.default_multicast_not_primary_port != info.default_multicast_not_primary_port
                or new.life_time_value != info.life_time_value
                or new.multicast_fdb_top != info.multicast_fdb_top
                or (new.port_state_change and info.port_state_change)
            ):
                self._set_switch_info(
                    replace(
                        info,
                        linear_fdb_top=new.linear_fdb_top,
                        default_port=new.default_port,
                        default_multicast_primary_port=new.default_multicast_primary_port,
                        default_multicast_not_primary_port=new.default_multicast_not_primary_port,
                        life_time_value=new.life_time_value,
                        multicast_fdb_top=new.multicast_fdb_top,
                        # Cleared by writing one; a zero leaves it (IBA 14.2.5.4).
                        port_state_change=info.port_state_change and not new.port_state_change,
                    )
                )
                if new.linear_fdb_top != info.linear_fdb_top and self.record_events:
                    self._emit(LinearFdbTopChanged(new.linear_fdb_top))
        return _OK, self._switch_info_bytes

    def _attr_lft(
        self, is_set: bool, amod: int, port: int, payload: bytes, hide: bool
    ) -> tuple[int, bytes]:
        if amod >= self._lft_blocks:
            return _INVALID_FIELD, payload[64:128]
        start = amod * LFT_BLOCK_SIZE
        if is_set:
            block = payload[64:128]
            if self.lft[start : start + LFT_BLOCK_SIZE] != block:
                self.lft[start : start + LFT_BLOCK_SIZE] = block
                self._forwarding_changed()
            if self.record_events:
                self._emit(LftBlockWritten(amod))
            return _OK, block
        return _OK, bytes(self.lft[start : start + LFT_BLOCK_SIZE])

    def _attr_mft(
        self, is_set: bool, amod: int, port: int, payload: bytes, hide: bool
    ) -> tuple[int, bytes]:
        block, position = mft_block_position(amod)
        start = block * MFT_BLOCK_SIZE
        if (
            start >= len(self.mft)
            or amod & 0x0FFFFE00
            or position * MFT_PORTS_PER_POSITION > self.spec.num_ports
        ):
            return _INVALID_FIELD, payload[64:128]
        shift = position * MFT_PORTS_PER_POSITION
        keep = ~(0xFFFF << shift)
        if is_set:
            masks = MulticastForwardingTable.unpack(payload, 64).port_masks
            for i, mask in enumerate(masks):
                self.mft[start + i] = (self.mft[start + i] & keep) | (mask << shift)
        block_masks = [(m >> shift) & 0xFFFF for m in self.mft[start : start + MFT_BLOCK_SIZE]]
        return _OK, MulticastForwardingTable(tuple(block_masks)).pack()

    def multicast_ports(self, mlid: int) -> int:
        """The port mask (bit p = port p) a switch forwards MLID `mlid` to; 0 when the
        MLID is beyond its MulticastFDBCap."""
        offset = mlid - MULTICAST_LID_BASE
        return self.mft[offset] if 0 <= offset < len(self.mft) else 0

    def _attr_port_info(
        self, is_set: bool, amod: int, port: int, payload: bytes, hide: bool
    ) -> tuple[int, bytes]:
        if self.is_switch:
            target = amod & 0x7FFFFFFF
            if target > self._num_ports:
                return _INVALID_FIELD, payload[64:128]
        else:
            target = port  # CAs answer for the arrival port whatever the modifier.
        status = _OK
        if is_set:
            try:
                self._port_info_set(target, payload)
            except (_InvalidField, PortTransitionError):
                status = _INVALID_FIELD
        out = bytearray(self._pi_raw[target])
        out[_PI_LOCAL_PORT_NUM] = port
        if hide:
            out[_PI_M_KEY : _PI_M_KEY + 8] = _ZERO_M_KEY
        return status, bytes(out)

    def _attr_guid_info(
        self, is_set: bool, amod: int, port: int, payload: bytes, hide: bool
    ) -> tuple[int, bytes]:
        target = 0 if self.is_switch else port
        table = self._guids[target]
        if amod >= blocks_for(len(table), GUID_BLOCK_SIZE):
            return _INVALID_FIELD, payload[64:128]
        start = amod * GUID_BLOCK_SIZE
        if is_set:
            changed = False
            for i, guid in enumerate(_GUID_BLOCK.unpack_from(payload, 64)):
                index = start + i
                # Index 0 is the port GUID and read-only (IBA Vol 1, 14.2.5.5).
                if index == 0 or index >= len(table) or table[index] == guid:
                    continue
                table[index] = guid
                changed = True
            if changed and self.record_events:
                self._emit(GuidInfoChanged(target, amod))
        block = table[start : start + GUID_BLOCK_SIZE]
        block.extend([0] * (GUID_BLOCK_SIZE - len(block)))
        return _OK, _GUID_BLOCK.pack(*block)

    def _attr_pkey_table(
        self, is_set: bool, amod: int, port: int, payload: bytes, hide: bool
    ) -> tuple[int, bytes]:
        if self.is_switch:
            target = amod >> 16
            if target > self._num_ports:
                return _INVALID_FIELD, payload[64:128]
        else:
            target = port
        table = self._pkeys[target]
        block_num = amod & 0xFFFF
        if block_num >= blocks_for(len(table), PKEY_BLOCK_SIZE):
            return _INVALID_FIELD, payload[64:128]
        start = block_num * PKEY_BLOCK_SIZE
        if is_set:
            changed = False
            for i, pkey in enumerate(_PKEY_BLOCK.unpack_from(payload, 64)):
                index = start + i
                if index >= len(table) or table[index] == pkey:
                    continue
                table[index] = pkey
                changed = True
            if changed and self.record_events:
                self._emit(PKeyTableChanged(target, block_num))
        block = table[start : start + PKEY_BLOCK_SIZE]
        block.extend([0] * (PKEY_BLOCK_SIZE - len(block)))
        return _OK, _PKEY_BLOCK.pack(*block)

    def _attr_sm_info(
        self, is_set: bool, amod: int, port: int, payload: bytes, hide: bool
    ) -> tuple[int, bytes]:
        handler = self.sm_info_handler
        if handler is None:
            return _ATTR_NOT_SUPPORTED, payload[64:128]
        if is_set:
            answer = handler.sm_info_set(amod, SMInfo.unpack(payload, 64))
            if answer is None:
                return _ATTR_NOT_SUPPORTED, payload[64:128]
            return _OK, _pad(answer.pack())
        return _OK, _pad(handler.sm_info_get().pack())

    # --- PortInfo Set -----------------------------------------------------------------------

    def _port_info_set(self, target: int, payload: bytes) -> None:
        """Apply SubnSet(PortInfo) in `payload` to port `target` (IBA Vol 1, 14.2.5.6).

        The new bytes are built field by field from the current ones and the
        request's writable fields; everything is checked before the port changes.
        Raise `_InvalidField` or `PortTransitionError` for a value the port refuses.
        """
        cur = self._pi_raw[target]
        req = payload[64:128]
        new = bytearray(cur)
        base_port0 = self.is_switch and target == 0

        if not self.is_switch or base_port0:
            # Addressing and management fields: CA ports and a switch's port 0.
            lid, sm_lid = _PI_LIDS.unpack_from(req, _PI_LID)
            if lid > MAX_UNICAST_LID or sm_lid > MAX_UNICAST_LID:
                raise _InvalidField(f"LID {lid} or MasterSMLID {sm_lid} is not unicast")
            new[0:20] = req[0:20]  # M_Key, GIDPrefix, LID, MasterSMLID
            new[_PI_M_KEY_LEASE : _PI_M_KEY_LEASE + 2] = req[_PI_M_KEY_LEASE : _PI_M_KEY_LEASE + 2]
            new[_PI_PROTECT_LMC] = req[_PI_PROTECT_LMC] & 0xC7  # protect bits, LMC
            new[_PI_MTU_SM_SL] = (cur[_PI_MTU_SM_SL] & 0xF0) | (req[_PI_MTU_SM_SL] & 0x0F)
            # McastPKeyTrapSuppressionEnabled and SubnetTimeOut; ClientReregister is a
            # request, not state: it reads back as 0.
            new[_PI_REREG_TIMEOUT] = req[_PI_REREG_TIMEOUT] & 0x7F

        old_state = cur[_PI_SPEED_SUPPORTED_STATE] & 0x0F
        old_phys = cur[_PI_PHYS_DOWN_DEFAULT] >> 4
        new_state, new_phys = old_state, old_phys
        if not base_port0:
            state = req[_PI_SPEED_SUPPORTED_STATE] & 0x0F
            phys = req[_PI_PHYS_DOWN_DEFAULT] >> 4
            down_default = req[_PI_PHYS_DOWN_DEFAULT] & 0x0F
            if phys > PhysPortState.DISABLED:
                raise _InvalidField(f"PortPhysicalState {phys} cannot be Set")
            if phys and state not in (PortState.NO_CHANGE, PortState.DOWN):
                raise _InvalidField("PortPhysicalState written with a PortState other than Down")
            if state:
                new_state = next_port_state(old_state, state)
            elif phys:
                # Writing a physical state takes the link down first.
                new_state = next_port_state(old_state, PortStimulus.SET_DOWN)
            if phys:
                new_phys = phys
            elif new_state == PortState.DOWN and old_state != PortState.DOWN:
                new_phys = PhysPortState.POLLING  # the link retrains
            if down_default > PhysPortState.POLLING:
                raise _InvalidField(f"LinkDownDefaultState {down_default} invalid")
            new[_PI_SPEED_SUPPORTED_STATE] = (cur[_PI_SPEED_SUPPORTED_STATE] & 0xF0) | new_state
            new[_PI_PHYS_DOWN_DEFAULT] = (new_phys << 4) | (
                down_default or cur[_PI_PHYS_DOWN_DEFAULT] & 0x0F
            )

            mtu = req[_PI_MTU_SM_SL] >> 4
            if not 1 <= mtu <= cur[_PI_INIT_REPLY_MTU_CAP] & 0x0F:
                raise _InvalidField(f"NeighborMTU {mtu} outside 1..MTUCap")
            new[_PI_MTU_SM_SL] = (mtu << 4) | (new[_PI_MTU_SM_SL] & 0x0F)
            op_vls = req[_PI_OP_VLS_FILTERS] >> 4
            if op_vls > cur[_PI_VL_CAP] >> 4:
                raise _InvalidField(f"OperationalVLs {op_vls} above VLCap")
            new[_PI_OP_VLS_FILTERS] = ((op_vls or cur[_PI_OP_VLS_FILTERS] >> 4) << 4) | (
                req[_PI_OP_VLS_FILTERS] & 0x0F
            )

            # Enabled widths and speeds: 0 = no change, all ones = everything supported.
            width = req[_PI_WIDTH_ENABLED]
            supported = cur[_PI_WIDTH_SUPPORTED]
            if width == _ALL_WIDTHS:
                width = supported
            elif width & ~supported:
                raise _InvalidField(f"LinkWidthEnabled {width:#x} not supported")
            if width:
                new[_PI_WIDTH_ENABLED] = width
            speed = req[_PI_SPEED_ACTIVE_ENABLED] & 0x0F
            supported = cur[_PI_SPEED_SUPPORTED_STATE] >> 4
            if speed == _ALL_SPEEDS:
                speed = supported
            elif speed & ~supported:
                raise _InvalidField(f"LinkSpeedEnabled {speed:#x} not supported")
            if speed:
                new[_PI_SPEED_ACTIVE_ENABLED] = (cur[_PI_SPEED_ACTIVE_ENABLED] & 0xF0) | speed
            ext = req[_PI_EXT_ENABLED] & 0x1F
            supported = cur[_PI_EXT_ACTIVE_SUPPORTED] & 0x0F
            if ext == _ALL_EXT_SPEEDS:
                ext = supported
            elif ext != _EXT_SPEEDS_DISABLED and ext & ~supported:
                raise _InvalidField(f"LinkSpeedExtEnabled {ext:#x} not supported")
            if ext:
                new[_PI_EXT_ENABLED] = ext

            new[_PI_VL_HIGH_LIMIT] = req[_PI_VL_HIGH_LIMIT]
            new[_PI_INIT_REPLY_MTU_CAP] = (req[_PI_INIT_REPLY_MTU_CAP] & 0xF0) | (
                cur[_PI_INIT_REPLY_MTU_CAP] & 0x0F
            )
            new[_PI_STALL_HOQ] = req[_PI_STALL_HOQ]  # VLStallCount, HOQLife
            new[_PI_ERROR_THRESHOLDS] = req[_PI_ERROR_THRESHOLDS]

        # Violation counters: writing 0 resets them, any other value leaves them.
        for offset in _PI_VIOLATIONS:
            if not req[offset] and not req[offset + 1]:
                new[offset] = new[offset + 1] = 0

        self._pi_raw[target] = new
        self._refresh(target)
        if req[_PI_REREG_TIMEOUT] & 0x80:
            # Recorded whatever `record_events` and the event filter say: the port's
            # clients (dom0, guests) act on it, as on ForwardingChanged.
            self._record(ClientReregisterRequested(target))
        if not self.record_events:
            return
        emit = self._emit
        if new[16:18] != cur[16:18] or (new[_PI_PROTECT_LMC] ^ cur[_PI_PROTECT_LMC]) & 0x07:
            emit(LidAssigned(target, self._lid[target], new[_PI_PROTECT_LMC] & 0x07))
        if new[18:20] != cur[18:20]:
            emit(MasterSmLidChanged(target, _U16.unpack_from(new, 18)[0]))
        if new_state != old_state:
            emit(PortStateChanged(target, old_state, new_state))
        was_disabled = old_phys in _DISABLED_PHYS
        now_disabled = new_phys in _DISABLED_PHYS
        if new_state == PortState.DOWN and old_state != PortState.DOWN:
            emit(LinkDownRequested(target, now_disabled))
        elif now_disabled and not was_disabled:
            emit(LinkDownRequested(target, True))
        elif was_disabled and not now_disabled:
            emit(LinkEnableRequested(target))

    def _set_switch_info(self, info: SwitchInfo) -> None:
        self._switch_info = info
        self._switch_info_bytes = _pad(info.pack())

    # --- M_Key ----------------------------------------------------------------------------

    def _m_key_violation(self, key_port: int, method: int, attr: int, now_ns: int) -> None:
        self.counters.m_key_dropped += 1
        raw = self._pi_raw[key_port]
        offset = _PI_VIOLATIONS[0]
        count = _U16.unpack_from(raw, offset)[0]
        if count < MAX_COUNTER16:
            _U16.pack_into(raw, offset, count + 1)
            self._refresh(key_port)
        lease_s = _U16.unpack_from(raw, _PI_M_KEY_LEASE)[0]
        if lease_s and key_port not in self._lease_deadline_ns:
            self._lease_deadline_ns[key_port] = now_ns + lease_s * 1_000_000_000
            self._timers.arm(("lease", key_port), self._lease_deadline_ns[key_port])
        if self.record_events:
            self._emit(MKeyViolation(key_port, method, attr))

    # --- traps ----------------------------------------------------------------------------

    def _raise_trap_128(self, now_ns: int) -> None:
        lid = self._lid[0]
        if not lid or not _U16.unpack_from(self._pi_raw[0], 18)[0]:
            self.counters.traps_suppressed += 1
            return
        notice = Notice(
            is_generic=True,
            type=NoticeType.URGENT,
            producer_type=ProducerType.SWITCH,
            trap_number=TrapNumber.LINK_STATE_CHANGE,
            issuer_lid=lid,
            details=LinkStateChangeDetails(lid),
        )
        self._raise_trap(notice, 0, now_ns)

    def _raise_trap(self, notice: Notice, port: int, now_ns: int) -> None:
        data = notice.pack_smp()
        for pending in self._traps.values():
            if pending.notice_bytes == data:
                return  # the same notice is still outstanding
        self._tid_low = (self._tid_low + 1) & 0xFFFFFFFF
        tid = self._tid_high | self._tid_low
        pi = self.port_info(port)
        smp = make_request(Method.TRAP, NOTICE_ATTRIBUTE_ID, tid=tid, data=data, m_key=pi.m_key)
        datagram = Datagram(smp.pack(), port, pi.lid, pi.master_sm_lid, QP0, QP0, pi.master_sm_sl)
        trap = _PendingTrap(tid, notice.trap_number, data, datagram, port, now_ns, 1)
        self._traps[tid] = trap
        self._send_trap(trap, now_ns)

    def _send_trap(self, trap: _PendingTrap, now_ns: int) -> None:
        self._outbox.append(trap.datagram)
        self.counters.traps_sent += 1
        subnet_timeout = self._pi_raw[trap.port][_PI_REREG_TIMEOUT] & 0x1F
        trap.deadline_ns = now_ns + _trap_interval_ns(subnet_timeout)
        self._timers.arm(("trap", trap.tid), trap.deadline_ns)
        if self.record_events:
            self._emit(TrapSent(trap.trap_number, trap.tid, trap.attempts))

    def _trap_repress(self, tid: int, attr: int) -> None:
        trap = self._traps.pop(tid, None) if attr == NOTICE_ATTRIBUTE_ID else None
        if trap is not None:
            self._timers.cancel(("trap", tid))
        if trap is None:
            self.counters.unmatched_represses += 1
            return
        self.counters.trap_represses += 1
        if self.record_events:
            self._emit(TrapRepressed(trap.trap_number, tid))


__all__ = [
    "DEFAULT_GID_PREFIX",
    "NO_ROUTE",
    "PORT_TRANSITIONS",
    "TRAP_INTERVAL_UNIT_NS",
    "PortStimulus",
    "PortTransitionError",
    "SmInfoHandler",
    "SmaCounters",
    "SubnetManagementAgent",
    "next_port_state",
]
