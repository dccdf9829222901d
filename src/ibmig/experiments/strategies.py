"""Signalling strategies: which engines the path-change signalling turns on.

A strategy is three switches over engines that already exist in `ibmig.core`:

- the SA's alias-GUID move detection (`SaConfig.detect_alias_moves`): without it
  no path-change notice (trap 69) is ever raised;
- the per-host subscription: each dom0 subscribes once with its physical port GUID
  and forwards Reports to its guests over the intra-host channel
  (`HostConfig.subscribe_path_changes`), n Reports per event;
- the per-VM subscription: every guest subscribes itself (`GuestAgent(subscribe=)`),
  n*m Reports per event;
- targeted Reports (`SaConfig.targeted_reports`): the SA sends a path-change notice
  only to the subscribers whose port resolved a PathRecord to the moved GID. With
  per-host subscriptions ("targeted") that is the h_p hosts holding a peer of the
  VM, h_p <= n. The SA tracks the requesters of PathRecords rather than asking
  clients for GID-specific InformInfo subscriptions (IBA Vol 1, 13.4.8.3), which
  would need a subscription per (host, remote GID), made and withdrawn as paths
  come and go; `ibmig.core.sa.admin`'s module docstring says more.

A new strategy is one entry in `STRATEGIES` (plus, if it needs new behaviour, the
engine module that implements it). Scenarios name a strategy with its `name`
(`[signalling] strategy = "per-host"`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Strategy:
    """One signalling strategy by name, and what it turns on."""

    name: str
    detect_alias_moves: bool
    """The SA notices a vGUID behind a new LID and raises trap 69."""
    dom0_subscribes: bool
    """Each dom0 subscribes for trap 69 and forwards it to its VMs (the paper's)."""
    guest_subscribes: bool
    """Every VM subscribes for trap 69 itself (the naive scheme)."""
    summary: str
    targeted: bool = False
    """The SA tells only the subscribers whose port resolved a path to the GID."""


STRATEGIES: Mapping[str, Strategy] = {
    strategy.name: strategy
    for strategy in (
        Strategy("none", False, False, False, "stock OpenSM: no event when an alias GUID moves"),
        Strategy("per-vm", True, False, True, "every VM subscribes: n*m Reports per event"),
        Strategy("per-host", True, True, False, "dom0 subscribes and forwards: n per event"),
        Strategy(
            "targeted",
            True,
            True,
            False,
            "as per-host, but only to hosts whose port resolved a path to the VM: h_p",
            targeted=True,
        ),
    )
}
"""Every signalling strategy by name, in the order the tables list them."""

PAPER_STRATEGIES: tuple[str, ...] = ("none", "per-vm", "per-host")
"""The strategies of Guay et al. (2012): what `ibmig reproduce` and `ibmig plan`
measure; "targeted" goes beyond the paper (`ibmig compare`)."""
