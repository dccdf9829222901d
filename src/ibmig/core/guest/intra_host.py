"""The guest's side of the intra-host channel to dom0.

The messages are the host package's (`ibmig.core.host.messages`), re-exported here
so the guest stack names them in one place. Plain records, not MADs: the channel
is the hypervisor's (a Xen event channel / xenstore), not InfiniBand.

Guest -> dom0 (`GuestAgent.intra_host_to_send()`): `PathRegistered(gid, lid)` when the
guest starts to hold a path to `gid` (its first connection attempt to that
server), `PathUnregistered(gid)` when it no longer does (the peer was removed, or
its IP moved to another GID). After it attaches at a new host the guest registers
every path again, as the new dom0 knows nothing of it; `lid` is the DLID of its
cached path (0: none), so dom0 can tell it a change it missed while migrating.

dom0 -> guest (`GuestAgent.receive_intra_host()`): `ForwardPathChange(vm_id, gid,
new_lid)`, handled as `path_changed(gid, new_lid, via="dom0")`; `RevalidatePaths`
(dom0 may have missed path changes), handled as `revalidate_paths()`.
"""

from __future__ import annotations

from ibmig.core.host.messages import (
    ForwardPathChange,
    GuestToHost,
    HostToGuest,
    PathRegistered,
    PathUnregistered,
    RevalidatePaths,
)

__all__ = [
    "ForwardPathChange",
    "GuestToHost",
    "HostToGuest",
    "PathRegistered",
    "PathUnregistered",
    "RevalidatePaths",
]
