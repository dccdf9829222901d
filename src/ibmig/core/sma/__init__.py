"""The subnet management agent (SMA) of every switch and channel adapter.

`SubnetManagementAgent` answers SMPs (NodeInfo, NodeDescription, PortInfo,
SwitchInfo, LinearForwardingTable, GUIDInfo, P_KeyTable, SMInfo), runs the port
state machine, checks M_Keys and raises trap 128 on a switch's link changes; see
`ibmig.core.sma.agent` for the theory of operation. `NodeSpec` says what node it
serves; the events it reports are in `ibmig.core.sma.events`.
"""

from ibmig.core.sma.agent import (
    DEFAULT_GID_PREFIX,
    NO_ROUTE,
    PORT_TRANSITIONS,
    TRAP_INTERVAL_UNIT_NS,
    PortStimulus,
    PortTransitionError,
    SmaCounters,
    SmInfoHandler,
    SubnetManagementAgent,
    next_port_state,
)
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
from ibmig.core.sma.spec import NodeSpec, PortSpec

__all__ = [
    "DEFAULT_GID_PREFIX",
    "NO_ROUTE",
    "PORT_TRANSITIONS",
    "TRAP_INTERVAL_UNIT_NS",
    "ClientReregisterRequested",
    "ForwardingChanged",
    "GuidInfoChanged",
    "LftBlockWritten",
    "LidAssigned",
    "LinearFdbTopChanged",
    "LinkDownRequested",
    "LinkEnableRequested",
    "MKeyLeaseExpired",
    "MKeyViolation",
    "MasterSmLidChanged",
    "NodeSpec",
    "PKeyTableChanged",
    "PortSpec",
    "PortStateChanged",
    "PortStimulus",
    "PortTransitionError",
    "SmInfoHandler",
    "SmaCounters",
    "SmaEvent",
    "SubnetManagementAgent",
    "TrapAbandoned",
    "TrapRepressed",
    "TrapSent",
    "next_port_state",
]
