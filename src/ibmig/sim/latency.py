"""Every delay the simulator charges, in one place, each cited or labelled an assumption.

Scenarios override any field by name (`LatencyModel.with_overrides`, the
`[latency]` table). Times are integer nanoseconds.

With `contention` on (the default) the agents' times (`sma_ns`, `sm_ns`, `sa_ns`,
`guest_ns`) are service times of single-server FIFOs: each MAD an engine receives
and each it emits costs one service time, and work waits while the engine is busy
(`ibmig.sim.subnet` says how). A link then costs `cable_ns` plus the packet's
serialisation at the link's data rate (`data_rate_gbps`), and ports queue. With
`contention = false` every output leaves one agent time after the step that made
it, and every cable costs `link_ns`: no queue anywhere (the model before queueing,
kept for comparison).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ibmig.errors import ConfigError
from ibmig.fabric.model import LinkSpeed, LinkWidth

# Data rate of one lane, Gb/s: the signalling rate less the line code. SDR, DDR and
# QDR use 8b/10b; FDR and later 64b/66b (IBA Vol 1 Release 1.3, 6.4 and 5.2.1; HDR
# and NDR as Release 1.4/1.5 define them, FEC overhead left out).
_LINE_CODE = {True: Fraction(8, 10), False: Fraction(64, 66)}
_LANE_DATA_GBPS: dict[LinkSpeed, Fraction] = {
    speed: Fraction(str(speed.lane_gbps)) * _LINE_CODE[speed.value < LinkSpeed.FDR.value]
    for speed in LinkSpeed
}


def data_rate_gbps(width: LinkWidth, speed: LinkSpeed) -> Fraction:
    """A link's data rate in Gb/s (= bits per ns): lanes x lane data rate. 4x SDR:
    8; 4x EDR: 100."""
    return width.lanes * _LANE_DATA_GBPS[speed]


def serialisation_ns(size_bytes: int, rate_gbps: Fraction) -> int:
    """Time a port takes to put `size_bytes` on a link of `rate_gbps`, rounded up
    to the nanosecond."""
    bits = size_bytes * 8 * rate_gbps.denominator
    return -(-bits // rate_gbps.numerator)


@dataclass(frozen=True, slots=True)
class LatencyModel:
    # Queueing at engines and ports (module docstring); false: fixed delays only.
    contention: bool = True
    # Cable, without contention: ASSUMPTION of a 3 m copper cable at about 5 ns/m
    # propagation (typical for twinax), plus serialising a 256-byte MAD with its headers (about 300
    # bytes) at 4x EDR's 100 Gb/s data rate (IBA Vol 1 Release 1.3, 6.4: EDR lane
    # rate 25.78125 Gb/s, 64b/66b) = 24 ns. Rounded to 40 ns per link hop.
    link_ns: int = 40
    # Cable, with contention: the 3 m cable's propagation alone (the serialisation
    # is computed per packet from the link's width and speed). Those come from the
    # topology, not from `link_ns`'s EDR: a .net file without speeds and the
    # generated presets give 4x SDR (8 Gb/s, about 300 ns per MAD with headers)
    # unless `[topology] link_width`/`link_speed` say otherwise.
    cable_ns: int = 15
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
    # The SA's service time per MAD it receives or sends (a PathRecord query and its
    # answer cost two; a Report and its ReportResp two). Measured on ibsim here with
    # benchmarks/sa_service.py (2026-12-04, ft2-324, osmtest's single-MAD PathRecord
    # stress flow, 100,000 queries per round): OpenSM used 23.0 us of CPU per query
    # (median of 3 rounds; 8.5-44 us on this shared, loaded machine), i.e. 11.5 us
    # per MAD. Through ibsim a query's round trip took 139 us, inflated by ibsim's
    # four socket hops and the client: the SA's CPU time is the figure taken.
    sa_ns: int = 11_500
    # ASSUMPTION: dom0's processing time per MAD it receives or sends (its SA client
    # and the Reports it acknowledges and forwards), the value the SA's was before
    # the SA's was measured: a host agent in user space answers a MAD in a few us.
    dom0_ns: int = 5_000
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
            if key == "contention":
                if not isinstance(value, bool):
                    raise ConfigError("contention must be true or false", f"{where}.{key}")
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{key} must be a non-negative integer (ns)", where)
        return dataclasses.replace(self, **overrides)
