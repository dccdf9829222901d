"""The vSwitch SR-IOV model: a LID per VF, moved with its VM by rewriting LFT entries.

Theory of operation
-------------------
In the vSwitch architecture (Tasoulas, Gran, Johnsen, Begnum, Skeie, "Towards the
InfiniBand SR-IOV vSwitch Architecture", IEEE Cluster 2015; extended in CCPE 2019)
the HCA presents itself as a switch whose ports are the PF and the VFs, each with a
LID of its own. A VM keeps its LID (and GID) when it migrates, so the path records
its peers hold stay valid; instead the SM rewrites, on every switch, the LFT entry
of that LID so that it leads to the destination's physical port. Two ways of
handing out VF LIDs:

- prepopulated: every VF of every hypervisor gets a LID at bring-up, routed as an
  end port. A migration *swaps* two LIDs: the VM's LID goes to the destination's
  (free) VF, that VF's LID comes back to the VF the VM left.
- dynamic: a LID is given when a VM starts and routed then; a migration *copies*
  the destination PF's egress into the VM's LID's entries.

What is modelled, and how it differs from the paper's hardware design:

- The vSwitch is not discovered as a switch. A hypervisor reports its port's VFs
  to the SM (`SubnetManager.vswitch_add_port`) and the SM records each VF LID as one
  more LID of that physical port, like the extra LIDs of an LMC (IBA Vol 1, 4.1.3).
  Nothing goes on the wire for the vSwitch ports themselves (no NodeInfo/PortInfo of
  vports); the HCA accepts a VF LID as soon as the SM assigns it.
- The SM learns where a VM runs from the toolstack (`SubnetManager.vswitch_place`):
  when it starts, and when a migration brings its VF up at the destination (or an
  abort brings it back to the source). VF LIDs given at the same instant are routed
  together, so a block of 64 new LIDs costs one SMP per switch.
- Routing a VF LID: every switch forwards it out of the port it forwards the PF's
  LID out of (the engines route the PF; the VF LIDs copy its column). The paper's
  prepopulated scheme routes each VF as an end port of its own, which can spread VF
  LIDs over more paths; here they share the PF's path, which is what its dynamic
  scheme and its "copy" migration do.
- On migration the SM sends one SubnSet(LinearForwardingTable) per (switch, 64-entry
  block, IBA Vol 1, 14.2.5.10) whose content changes, and nothing else; what a full
  re-route would send (every block up to LinearFDBTop on every switch, as OpenSM
  does when it reprograms a fabric from scratch) is counted beside it.

This module holds the SM's table of VF LIDs, its events and its counts;
`SubnetManager` (manager.py) owns the SMPs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from ibmig.wire.smp_attrs import LFT_BLOCK_SIZE

MAX_UNICAST_LID = 0xBFFF
"""Unicast LIDs are 0x0001-0xBFFF (IBA Vol 1, 4.1.3): 49,151."""


class VfLids(Enum):
    """When VF LIDs are handed out (module docstring)."""

    PREPOPULATED = "prepopulated"
    DYNAMIC = "dynamic"


@dataclass(frozen=True, slots=True)
class VfLidAssigned:
    """The SM gave `lid` to a VF of `port_guid` (to VM `vguid`, 0 for a free VF)."""

    time_ns: int
    port_guid: int
    lid: int
    vguid: int


@dataclass(frozen=True, slots=True)
class VfLidMoved:
    """A VM's LID now leads to `dst_port_guid`; the LFT Sets that did it.

    `swapped_lid`: the destination VF's LID that went back to the source VF
    (prepopulated), 0 when the LID was copied (dynamic). `lft_smps`: LFT blocks sent
    (one SMP each), on `switches_changed` switches; `full_reroute_smps`: what
    rewriting every block of every switch would have sent. `deferred`: a sweep was
    under way, so its ROUTE phase (or its SUBNET UP) writes the entries instead,
    among its own LFT blocks, and `lft_smps` is 0."""

    time_ns: int
    vguid: int
    lid: int
    swapped_lid: int
    src_port_guid: int
    dst_port_guid: int
    switches_changed: int
    lft_smps: int
    full_reroute_smps: int
    deferred: bool = False


@dataclass(frozen=True, slots=True)
class VfLidsExhausted:
    """The SM refused a VF LID: the subnet would need `needed` unicast LIDs."""

    time_ns: int
    needed: int
    available: int


class VfLidsExhaustedError(Exception):
    """Raised to the caller that asked for a LID the unicast space has not got."""

    def __init__(self, needed: int, available: int) -> None:
        super().__init__(
            f"the vSwitch model needs {needed:,} unicast LIDs (a LID per VF); "
            f"only {available:,} exist (0x0001-0xBFFF)"
        )
        self.needed = needed
        self.available = available


@dataclass(slots=True)
class VSwitchTable:
    """The SM's VF LIDs: which physical port each sits behind, which VM holds it."""

    scheme: VfLids = VfLids.PREPOPULATED
    port_of_lid: dict[int, int] = field(default_factory=dict)
    """VF LID -> port GUID of the physical (PF) port it is routed to."""
    lid_of_vm: dict[int, int] = field(default_factory=dict)
    """vGUID -> its VF LID."""
    free: dict[int, list[int]] = field(default_factory=dict)
    """Port GUID -> its VF LIDs held by no VM (prepopulated), lowest first."""

    def __bool__(self) -> bool:
        return bool(self.port_of_lid)

    def lowest_free(self, taken: Iterable[int], count: int) -> list[int]:
        """The `count` lowest unicast LIDs in neither `taken` nor this table;
        `VfLidsExhaustedError` when there are not so many."""
        used = set(taken)
        used.update(self.port_of_lid)
        out: list[int] = []
        lid = 1
        while len(out) < count:
            while lid in used:
                lid += 1
            if lid > MAX_UNICAST_LID:
                needed = sum(1 for x in used if x <= MAX_UNICAST_LID) + count
                raise VfLidsExhaustedError(needed, MAX_UNICAST_LID)
            out.append(lid)
            lid += 1
        return out


def vf_lids_needed(scheme: VfLids, hosts: int, vms_per_host: int, vfs_per_host: int) -> int:
    """VF LIDs the SM hands out for `hosts` hypervisors: one per VF when
    prepopulated, one per running VM when dynamic (besides the LIDs of the switches
    and the CA ports themselves)."""
    return hosts * (vfs_per_host if scheme is VfLids.PREPOPULATED else vms_per_host)


def full_reroute_smps(switches: int, top: int) -> int:
    """LFT blocks a full re-route writes: every block up to LinearFDBTop `top` on
    each of `switches` switches."""
    return switches * (top // LFT_BLOCK_SIZE + 1)
