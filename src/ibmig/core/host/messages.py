"""Messages of the intra-host channel between dom0 and its guests.

The channel is not InfiniBand: it stands for whatever a hypervisor offers between
the management domain and a guest (Xen's xenstore or an event channel). Its
messages are plain frozen dataclasses that never touch the fabric, so the runtime
delivers them with the channel's own latency and counts them apart from MADs.

Guest -> dom0 (`HostAgent.receive_intra_host(vm, message, now_ns)`):

- `PathRegistered(gid, lid)`: the guest holds a path to `gid` (a cached PathRecord
  or a connection) naming `lid` (0: none cached yet); dom0 forwards path changes of
  that GID to it, and if its mapping table already knows another LID for the GID
  (a notice that came before the registration: the guest was migrating itself), it
  forwards that at once.
- `PathUnregistered(gid)`: it no longer does.

dom0 -> guest (`HostAgent.intra_host_to_send()`):

- `ForwardPathChange(vm_id, gid, new_lid, path)`: the SA reported that the VM behind
  `gid` now sits behind `new_lid` (trap 69); `vm_id` names the receiving guest;
  `path`: the new path's values when the notice carried them ("trap69-path").
- `RevalidatePaths(vm_id)`: dom0 subscribed again after a gap (ClientReregister, a
  restart, a new port LID). Reports sent during the gap never reached it, so the
  guest's cached paths may be stale: it must resolve them again before use, as
  Linux's IPoIB marks its paths invalid on IB_EVENT_CLIENT_REREGISTER
  (drivers/infiniband/ulp/ipoib/ipoib_ib.c, `__ipoib_ib_dev_flush`, light flush).
"""

from __future__ import annotations

from dataclasses import dataclass

from ibmig.wire.notice import PathValues


@dataclass(frozen=True, slots=True)
class PathRegistered:
    """A guest tells dom0 it holds a path to `gid` (16 bytes)."""

    gid: bytes
    lid: int = 0
    """The DLID of the guest's cached path to `gid` (0: none cached)."""


@dataclass(frozen=True, slots=True)
class PathUnregistered:
    """A guest tells dom0 it no longer holds a path to `gid`."""

    gid: bytes


@dataclass(frozen=True, slots=True)
class ForwardPathChange:
    """dom0 tells guest `vm_id` that `gid` now resolves to `new_lid`."""

    vm_id: str
    gid: bytes
    new_lid: int
    path: PathValues | None = None
    """The new path's values when the notice carried them ("trap69-path")."""


@dataclass(frozen=True, slots=True)
class RevalidatePaths:
    """dom0 tells guest `vm_id` that path changes may have been missed: drop every
    cached path and resolve it again."""

    vm_id: str


GuestToHost = PathRegistered | PathUnregistered
"""What a guest may send dom0 over the intra-host channel."""

HostToGuest = ForwardPathChange | RevalidatePaths
"""What dom0 sends a guest over the intra-host channel."""

__all__ = [
    "ForwardPathChange",
    "GuestToHost",
    "HostToGuest",
    "PathRegistered",
    "PathUnregistered",
    "RevalidatePaths",
]
