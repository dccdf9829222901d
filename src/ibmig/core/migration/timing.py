"""Every duration, size and rate of a live migration, and the pre-copy plan they give.

`MigrationTiming` holds them all, with their defaults in this one place; each is
either taken from a cited source or labelled ASSUMPTION. Scenarios override them
by name (`with_overrides`). Durations are integer nanoseconds, sizes bytes, rates
bytes per second.

Pre-copy, as Xen's libxc does it
--------------------------------
Xen's live migration (xc_domain_save.c, Xen 3.x-4.5; Clark et al., "Live Migration
of Virtual Machines", NSDI 2005) copies memory in rounds while the guest runs:
round 0 sends every page; each later round sends the pages dirtied while the
previous round was being sent. After a round it suspends the guest and goes to
the last iteration (stop-and-copy) when

- the round sent fewer than 50 pages (`sent_this_iter + skip_this_iter < 50`),
- or `DEF_MAX_ITERS` = 29 rounds have run ("limit us to 30 times round loop": 29
  live rounds and the final one),
- or more than `DEF_MAX_FACTOR` = 3 times the guest's memory has been sent.

Stop-and-copy then sends what the last live round let the guest dirty, plus the
device and vCPU state; the guest is resumed at the destination afterwards.

The model here (`plan_precopy`) follows that loop with a constant dirty rate D
(bytes of distinct memory dirtied per second, capped at the memory size M: the
writable working set is not modelled -- ASSUMPTION) and a constant migration
bandwidth B. With s_0 = M and t_i = ceil(s_i * 1e9 / B) ns:

    dirtied during round i:  d_i = min(M, floor(D * t_i / 1e9))
    round i+1 sends          s_{i+1} = d_i
    stop after round i when  i + 1 >= max_precopy_rounds
                             or s_i < stop_threshold_bytes
                             or s_0 + ... + s_i > max_copy_factor * M
    stop-and-copy sends      d_last + device_state_bytes, taking
                             ceil((d_last + device_state_bytes) * 1e9 / B) ns.

Xen's `to_skip` refinement (pages dirtied again during the round are left for
the next one) and its pre-4.0 rate-limit test are not modelled.

The defaults are those of the legacy loop above, the Xen of the paper's time
(2012). Xen 4.6 replaced it (migration v2, xc_sr_save.c `send_memory_live`): at
most 5 live rounds (round 0 and up to 4 more, `max_iterations = 5`) before the
suspended one, and it stops as soon as the pages dirtied during a round are at
most 50 (`dirty_threshold`), i.e. it tests d_i where the legacy loop tests s_i;
it has no copy-factor limit. Overriding `max_precopy_rounds` to 5 and
`max_copy_factor` high approximates it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ibmig.errors import ConfigError

NS_PER_S: Final = 1_000_000_000
PAGE_SIZE_BYTES: Final = 4096
"""x86 page, the unit Xen counts dirty memory in."""


@dataclass(frozen=True, slots=True)
class MigrationTiming:
    """The durations, sizes and rates of one live migration (module docstring).

    Validated on construction: every field is an int, durations and sizes >= 0,
    `memory_bytes`, `bandwidth_bytes_per_s`, `max_precopy_rounds` and
    `max_copy_factor` >= 1 (ConfigError, where "migration.<field>").
    """

    # --- the guest and its workload -----------------------------------------------
    memory_bytes: int = 2 * 1024**3
    """Guest memory copied in round 0. ASSUMPTION: 2 GiB."""
    dirty_rate_bytes_per_s: int = 32 * 1024**2
    """Distinct memory the guest dirties per second while it runs (constant).
    ASSUMPTION: 32 MiB/s, a moderate HPC working set."""
    device_state_bytes: int = 1024**2
    """vCPU, device-model and remaining device state sent during stop-and-copy.
    ASSUMPTION: 1 MiB."""

    # --- the copy ---------------------------------------------------------------------
    bandwidth_bytes_per_s: int = 125_000_000
    """Migration stream throughput. ASSUMPTION: 1 Gbit/s, the Ethernet management
    network Xen's migration stream (TCP) usually runs over, taken at line rate."""
    stop_threshold_bytes: int = 50 * PAGE_SIZE_BYTES
    """Stop pre-copy after a round that sent less than this: Xen libxc
    xc_domain_save.c, `sent_this_iter + skip_this_iter < 50` pages (of 4 KiB)."""
    max_precopy_rounds: int = 29
    """Live rounds at most: Xen libxc DEF_MAX_ITERS 29 ("limit us to 30 times round
    loop", the 30th being stop-and-copy)."""
    max_copy_factor: int = 3
    """Stop pre-copy once more than this many times the memory was sent: Xen libxc
    DEF_MAX_FACTOR 3 ("never send more than 3x p2m_size")."""

    # --- the VF and the guest around the copy ---------------------------------------------
    vf_detach_ns: int = 500_000_000
    """Hot-unplug of the VF from the running guest (ACPI/PCI hot-plug event, the
    guest's mlx4 VF driver removing its device), before pre-copy starts.
    ASSUMPTION: 0.5 s. Guay et al. (JPDC 2015, "Early experiences with live
    migration of SR-IOV enabled InfiniBand"; ICPADS 2012) measured VF detach,
    attach and driver re-initialisation on Xen with ConnectX VFs; their figures
    were not available here, so these three are placeholders."""
    resume_ns: int = 100_000_000
    """Restoring the received state and unpausing the guest at the destination.
    ASSUMPTION: 0.1 s (the order of the downtimes Clark et al. 2005 report)."""
    vf_attach_ns: int = 500_000_000
    """Hot-plug of the destination VF into the resumed guest (its vport comes up
    later, once the SA has acknowledged its alias GUID). ASSUMPTION: 0.5 s (see
    `vf_detach_ns`)."""
    driver_reinit_ns: int = 2_000_000_000
    """The guest's IB driver stack re-initialising on the new VF until its port is
    usable (device probe, port active, address resolution ready). ASSUMPTION: 2 s
    (see `vf_detach_ns`)."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            _check(field.name, getattr(self, field.name), "migration")

    def with_overrides(self, overrides: Mapping[str, object], where: str) -> MigrationTiming:
        """A copy with the named fields replaced. `where` names the overrides' place
        for errors (a scenario file and table): an unknown key, a value that is not
        an integer (an integral float such as 1e9 is accepted) or one out of range
        raises ConfigError at "<where>.<key>"."""
        known = {field.name for field in dataclasses.fields(self)}
        changes: dict[str, int] = {}
        for key, value in overrides.items():
            if not isinstance(key, str) or key not in known:
                raise ConfigError(
                    f"unknown migration timing {key!r} (known: {', '.join(sorted(known))})",
                    f"{where}.{key}",
                )
            changes[key] = _check(key, value, where)
        return dataclasses.replace(self, **changes)


_AT_LEAST_ONE: Final = frozenset(
    ("memory_bytes", "bandwidth_bytes_per_s", "max_precopy_rounds", "max_copy_factor")
)


def _check(name: str, value: object, where: str) -> int:
    """The value as an int, or ConfigError."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, not {value!r}", f"{where}.{name}")
    low = 1 if name in _AT_LEAST_ONE else 0
    if value < low:
        raise ConfigError(f"{name} must be at least {low}, not {value}", f"{where}.{name}")
    return value


# --- the pre-copy plan ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CopyRound:
    """One pre-copy round: it sent `sent_bytes` in `duration_ns` while the guest
    dirtied `dirtied_bytes`."""

    round: int
    sent_bytes: int
    duration_ns: int
    dirtied_bytes: int


@dataclass(frozen=True, slots=True)
class PreCopyPlan:
    """What the copy will do under a `MigrationTiming` (module docstring)."""

    rounds: tuple[CopyRound, ...]
    stop_reason: str
    """Why pre-copy ended: "threshold", "max_rounds" or "max_factor"."""
    stop_copy_bytes: int
    """Dirtied during the last round plus the device state."""
    stop_copy_ns: int

    @property
    def precopy_ns(self) -> int:
        return sum(r.duration_ns for r in self.rounds)

    @property
    def total_sent_bytes(self) -> int:
        return sum(r.sent_bytes for r in self.rounds) + self.stop_copy_bytes


def transfer_ns(size_bytes: int, bandwidth_bytes_per_s: int) -> int:
    """Nanoseconds to send `size_bytes` at the bandwidth, rounded up."""
    return -(-size_bytes * NS_PER_S // bandwidth_bytes_per_s)


def plan_precopy(timing: MigrationTiming) -> PreCopyPlan:
    """The pre-copy rounds and the stop-and-copy of Xen's loop (module docstring)."""
    memory = timing.memory_bytes
    bandwidth = timing.bandwidth_bytes_per_s
    rounds: list[CopyRound] = []
    to_send = memory
    sent_total = 0
    while True:
        duration = transfer_ns(to_send, bandwidth)
        dirtied = min(memory, timing.dirty_rate_bytes_per_s * duration // NS_PER_S)
        rounds.append(CopyRound(len(rounds), to_send, duration, dirtied))
        sent_total += to_send
        if len(rounds) >= timing.max_precopy_rounds:
            reason = "max_rounds"
        elif to_send < timing.stop_threshold_bytes:
            reason = "threshold"
        elif sent_total > timing.max_copy_factor * memory:
            reason = "max_factor"
        else:
            to_send = dirtied
            continue
        final = dirtied + timing.device_state_bytes
        return PreCopyPlan(tuple(rounds), reason, final, transfer_ns(final, bandwidth))


__all__ = [
    "NS_PER_S",
    "PAGE_SIZE_BYTES",
    "CopyRound",
    "MigrationTiming",
    "PreCopyPlan",
    "plan_precopy",
    "transfer_ns",
]
