"""Every delay the simulator charges, in one place, each cited or labelled an assumption.

Scenarios override any field by name (`LatencyModel.with_overrides`). Times are
integer nanoseconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ibmig.errors import ConfigError


@dataclass(frozen=True, slots=True)
class LatencyModel:
    # Cable: ASSUMPTION of a 3 m copper cable at about 5 ns/m propagation (typical
    # for twinax), plus serialising a 256-byte MAD with its headers (about 300
    # bytes) at 4x EDR's 100 Gb/s data rate (IBA Vol 1 Release 1.3, 6.4: EDR lane
    # rate 25.78125 Gb/s, 64b/66b) = 24 ns. Rounded to 40 ns per link hop.
    link_ns: int = 40
    # Switch port-to-port latency: 90 ns, Mellanox SB7800 (Switch-IB 2, EDR)
    # product brief.
    switch_ns: int = 90
    # ASSUMPTION: time for an SMA (HCA or switch firmware) to process one SMP and
    # start its response. Not published by vendors; OpenSM's defaults budget far
    # more (SubnetTimeOut). 2 us is in the range ibsim-free measurements of
    # `smpquery` round trips on ConnectX HCAs suggest (tens of us including the
    # host stack), taken low because firmware, not the host, answers.
    sma_ns: int = 2_000
    # ASSUMPTION: the SM's processing time per MAD it receives or sends (OpenSM on
    # one core handles a few hundred thousand SMPs per second, see the reference
    # notes: 197,498 SMPs in about 5 s on ibsim, i.e. ~25 us each including ibsim).
    sm_ns: int = 1_000
    # ASSUMPTION: the SA's processing time per query (PathRecord lookup and
    # response) and per Report it sends.
    sa_ns: int = 5_000
    # ASSUMPTION: dom0 <-> guest over the intra-host channel (a Xen event channel
    # notification plus a shared-ring copy), one way.
    intra_host_ns: int = 10_000
    # ASSUMPTION: a guest's RDMA stack handling one packet or MAD (verbs completion,
    # CM or SA client work) before it answers.
    guest_ns: int = 1_000

    def with_overrides(self, overrides: dict[str, Any], where: str = "latency") -> LatencyModel:
        names = {f.name for f in dataclasses.fields(self)}
        for key, value in overrides.items():
            if key not in names:
                raise ConfigError(
                    f"unknown latency parameter {key!r} (known: {', '.join(sorted(names))})",
                    where,
                )
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{key} must be a non-negative integer (ns)", where)
        return dataclasses.replace(self, **overrides)
