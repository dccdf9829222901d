"""Signalling strategies: which engines the path-change signalling turns on.

A strategy is three switches over engines that already exist in `ibmig.core`:

- the SA's alias-GUID move detection (`SaConfig.detect_alias_moves`): without it
  no path-change notice (trap 69) is ever raised;
- the per-host subscription: each dom0 subscribes once with its physical port GUID
  and forwards Reports to its guests over the intra-host channel
  (`HostConfig.subscribe_path_changes`), n Reports per event;
- the per-VM subscription: every guest subscribes itself (`GuestAgent(subscribe=)`),
  n*m Reports per event.

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


STRATEGIES: Mapping[str, Strategy] = {
    strategy.name: strategy
    for strategy in (
        Strategy("none", False, False, False, "stock OpenSM: no event when an alias GUID moves"),
        Strategy("per-vm", True, False, True, "every VM subscribes: n*m Reports per event"),
        Strategy("per-host", True, True, False, "dom0 subscribes and forwards: n per event"),
    )
}
"""Every signalling strategy by name, in the order the tables list them."""
