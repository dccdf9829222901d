"""The HCA's demultiplexing of an arriving packet among the functions of one port.

In the shared-port SR-IOV model every VF uses the physical port's LID, so the LRH
cannot tell them apart: the HCA looks at the DGID in the GRH and delivers the packet
to the function whose GUIDInfo entry holds the DGID's interface ID, *as the port's
table holds it* (what the SM last wrote), not as anyone wishes it were. The rules:

- no DGID, a QP0 packet, or the port's own GID: the physical function, i.e. dom0.
  Data-plane packets (QP > 1) for the PF are dropped ("no_qp"): dom0 runs no RDMA
  workload;
- a DGID whose GUID sits at the index of a VF whose vport is up (`HostAgent.vm_behind`):
  that VF's VM;
- anything else is dropped ("no_vf"), exactly how a stale path fails on hardware
  after a migration: the old port no longer holds the VM's GUID;
- a multicast DGID (first byte 0xFF, IBA Vol 1, 4.1.1): a copy to each function
  of the port (`Delivery.multicast`; each guest checks that its QP is attached to
  the group), as the HCA replicates a multicast packet to the QPs attached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ibmig.core.engine import QP1, Datagram
from ibmig.core.host.agent import HostAgent


class Delivery(NamedTuple):
    """Where the HCA hands a packet: to `vm`, to dom0 (`vm` None), to every VM of
    the port (`multicast`), or nowhere (`drop` names why)."""

    vm: str | None = None
    drop: str | None = None
    multicast: bool = False


TO_DOM0 = Delivery()
NO_QP = Delivery(drop="no_qp")
NO_VF = Delivery(drop="no_vf")
TO_GROUP = Delivery(multicast=True)


def demultiplex(
    datagram: Datagram, dom0: HostAgent, guid_index: Callable[[int], int | None]
) -> Delivery:
    """Where the HCA hands `datagram` (module docstring). `guid_index(guid)` is the
    GUIDInfo index of the port's table holding `guid`, or None."""
    dgid = datagram.dgid
    if dgid is not None and dgid[0] == 0xFF and datagram.dqp > QP1:
        return TO_GROUP
    if datagram.dqp == 0 or dgid is None or dgid == dom0.port_gid:
        return NO_QP if datagram.dqp > QP1 else TO_DOM0
    index = guid_index(int.from_bytes(dgid[8:], "big"))
    vm = None if index is None else dom0.vm_behind(index)
    return NO_VF if vm is None else Delivery(vm)
