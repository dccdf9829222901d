"""Live migration of a VM with an SR-IOV VF: Xen-style pre-copy, stop-and-copy and
the VF swap, as one state machine (`LiveMigration`, `ibmig.core.migration.machine`)
whose durations all come from `MigrationTiming` (`ibmig.core.migration.timing`).
"""

from ibmig.core.migration.machine import (
    TRANSITIONS,
    AttachVf,
    DetachVf,
    LiveMigration,
    MigrationAction,
    MigrationDone,
    MigrationStateError,
    PauseVm,
    Phase,
    PhaseEntered,
    PhaseRecord,
    ReinitDriver,
    ReleaseAlias,
    ResumeVm,
    SetAlias,
    Stimulus,
    next_phase,
)
from ibmig.core.migration.timing import (
    NS_PER_S,
    PAGE_SIZE_BYTES,
    CopyRound,
    MigrationTiming,
    PreCopyPlan,
    plan_precopy,
    transfer_ns,
)

__all__ = [
    "NS_PER_S",
    "PAGE_SIZE_BYTES",
    "TRANSITIONS",
    "AttachVf",
    "CopyRound",
    "DetachVf",
    "LiveMigration",
    "MigrationAction",
    "MigrationDone",
    "MigrationStateError",
    "MigrationTiming",
    "PauseVm",
    "Phase",
    "PhaseEntered",
    "PhaseRecord",
    "PreCopyPlan",
    "ReinitDriver",
    "ReleaseAlias",
    "ResumeVm",
    "SetAlias",
    "Stimulus",
    "next_phase",
    "plan_precopy",
    "transfer_ns",
]
