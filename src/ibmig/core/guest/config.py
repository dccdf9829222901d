"""Every timing and size default of the guest stack, in one place.

Each default is cited (where a real stack has the same knob) or labelled
ASSUMPTION. Scenarios override them from `[timing.guest]` through
`GuestConfig.with_overrides`, which validates names, types and ranges and raises
`ConfigError` naming the key.

InfiniBand expresses its time-outs as 5-bit exponents: the time is
4.096 us * 2**value (IBA Vol 1, 12.6.5 "REQ" for the CM response time-outs,
9.7.6.1.3 for the local ACK time-out, 13.4.6.2 for RespTimeValue). `iba_time_ns`
converts one exactly (4.096 us is 4096 ns).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from ibmig.errors import ConfigError

IBA_TIME_UNIT_NS: Final = 4096
"""4.096 us, the unit of every IBA time-out exponent."""

PATH_CACHE_POLICIES: Final = ("cached", "query")
RECONNECT_POLICIES: Final = ("rds", "doubling")


def iba_time_ns(exponent: int) -> int:
    """4.096 us * 2**exponent, in ns (IBA Vol 1, 12.6.5 and 9.7.6.1.3)."""
    return IBA_TIME_UNIT_NS << exponent


def cm_timeout_ns(exponent: int) -> int:
    """A CM time-out exponent as Linux's ib_cm waits it: `cm_convert_to_ms` in
    drivers/infiniband/core/cm.c approximates 4.096 us * 2**exponent by
    2**max(exponent - 8, 0) ms (so 20 waits 4.096 s, not 4.29 s, and anything up to
    8 waits 1 ms). It times REQ, REP and DREQ resends (`timeout_ms`)."""
    return 1_000_000 << max(exponent - 8, 0)


def cm_ack_timeout(ca_ack_delay: int, packet_life_time: int) -> int:
    """The Local ACK Timeout exponent Linux's ib_cm derives (`cm_ack_timeout` in
    drivers/infiniband/core/cm.c): about 2 * PacketLifeTime + the CA's ACK delay,
    computed on the exponents, capped at 31. The active side puts it in the REQ with
    its own ACK delay (`cm_format_req`) and, on the REP, sets its QP's timeout to it
    with the REP's Target ACK Delay (`cm_rep_handler`); the passive side's QP takes
    the REQ's value (`cm_format_path_from_req` then `cm_init_av_by_path`:
    PacketLifeTime + 1 of a lifetime one below it), both through
    `cm_init_qp_rts_attr`. With OpenSM's PacketLifeTime 18 and an ACK delay up to
    17 that is 19: 2.1 s per try."""
    ack_timeout = packet_life_time + 1
    if ack_timeout >= ca_ack_delay:
        ack_timeout += 1 if ca_ack_delay >= ack_timeout - 1 else 0
    else:
        ack_timeout = ca_ack_delay + (1 if ack_timeout >= ca_ack_delay - 1 else 0)
    return min(31, ack_timeout)


@dataclass(frozen=True, slots=True)
class GuestConfig:
    """Settings of one guest's RDMA stack and workload.

    Exponents are 5-bit IBA time-out values (module docstring); everything else
    carries its unit in its name.
    """

    path_cache: str = "cached"
    """`cached`: a resolved PathRecord is kept until flushed (a path-change event);
    `query`: every connection attempt asks the SA and nothing is reused."""

    sa_timeout_ns: int = 1_000_000_000
    """Wait for an SA response before resending (libibmad MAD_DEF_TIMEOUT_MS 1000)."""
    sa_retries: int = 3
    """Resends of an unanswered SA request after the first send (`ibmig.core.sa_client`),
    so 4 sends in all. Not libibmad's default: its MAD_DEF_RETRIES (3) counts sends,
    2 resends (dom0 follows it). ASSUMPTION: kept at 3 so that published runs
    do not change."""
    report_memory: int = 64
    """Recent (SA LID, TID) pairs of Reports remembered to spot resends
    (`ibmig.core.sa_client.ReportMemory`). ASSUMPTION: 64."""

    cm_response_timeout: int = 20
    """Local and Remote CM Response Timeout of a REQ (Linux rdma_cm, drivers/infiniband/
    core/cma.c CMA_CM_RESPONSE_TIMEOUT 20; the cma module's cma_cm_response_timeout
    parameter since Linux 5.13, same default). A REQ is resent after
    2 * PacketLifeTime + this, each converted by `cm_timeout_ns` (ib_send_cm_req:
    2 * 1.024 s + 4.096 s = 6.144 s with PacketLifeTime 18)."""
    max_cm_retries: int = 15
    """Resends of an unanswered REQ, REP or DREQ (Linux rdma_cm CMA_MAX_CM_RETRIES 15,
    the cma_cm_max_retries module parameter's default)."""

    local_ack_timeout: int | None = None
    """QP Local ACK Timeout exponent. None (default): derived from the PathRecord's
    PacketLifeTime and the CA ACK delays as Linux ib_cm derives it for rdma_cm
    users (`cm_ack_timeout`: 19 with OpenSM's PacketLifeTime 18). A number fixes it,
    as verbs applications that set up their QPs without the CM do (perftest's
    DEF_QP_TIME is 14: 67 ms). 0 disables the timer (IBA Vol 1, 9.7.6.1.3)."""
    ca_ack_delay: int = 16
    """Local CA ACK Delay exponent, sent as REP Target ACK Delay. ASSUMPTION: what
    ConnectX HCAs report as local_ca_ack_delay."""
    retry_count: int = 7
    """RC retransmissions before the QP goes to Error (rping's conn_param.retry_count
    7, the 3-bit maximum; IBA Vol 1, 9.7.6.1.3)."""
    rnr_retry_count: int = 7
    """Sent in REQ/REP (rping/librdmacm examples use 7). No RNR NAK is modelled."""
    send_queue_depth: int = 128
    """Outstanding (unacknowledged) SENDs a QP holds; a message posted to a full
    queue is not sent. ASSUMPTION (perftest's bandwidth tests default to a TX
    depth of 128)."""

    message_interval_ns: int = 20_000
    """A client sends one message per interval. ASSUMPTION (the scenario default
    interval_us = 20)."""
    message_bytes: int = 64
    """SEND payload: an 8-byte big-endian sequence number, zero padded. ASSUMPTION
    (the scenario default message_bytes = 64)."""

    reconnect_policy: str = "rds"
    """How a client waits before trying again after a failed connection attempt
    (`ibmig.core.guest.workload.backoff_ns`). `rds`: as Linux's RDS, an rdma_cm
    client in the kernel, reconnects (net/rds/threads.c `rds_queue_reconnect`): a
    broken connection is retried at once, and after the n-th failed attempt the
    wait is drawn uniformly from [0, min(`reconnect_backoff_max_ns`,
    `reconnect_backoff_ns` * 2**(n-1))). `doubling`: the wait is exactly that
    ceiling, lengthened by a random fraction below `backoff_jitter` of itself
    (ibmig's earlier rule, an ASSUMPTION kept as an option)."""
    reconnect_backoff_ns: int = 1_000_000
    """The first ceiling: RDS's reconnect_min_delay_ms sysctl (net/rds/sysctl.c,
    `rds_sysctl_reconnect_min_jiffies` = msecs_to_jiffies(1): 1 ms at HZ=1000)."""
    reconnect_backoff_max_ns: int = 1_000_000_000
    """The ceiling's ceiling: RDS's reconnect_max_delay_ms sysctl
    (`rds_sysctl_reconnect_max_jiffies` = HZ: 1 s)."""
    retry_while_detached: bool = False
    """What a client stream does while its VF is away (hot-unplugged for a
    migration). False (default): it waits, and tries at once when the VF is attached
    again (ASSUMPTION: an application that reconnects when its device and address
    return; so that published runs do not change). True: as RDS's reconnect worker,
    it keeps trying: the connection dropped with the device (net/rds/ib.c
    `rds_ib_remove_one` -> `rds_ib_dev_shutdown` drops every connection on it), the
    first attempt is at once (net/rds/threads.c `rds_queue_reconnect`, whose
    `cp_reconnect_jiffies` a completed connection left at 0) and each attempt fails
    at once, as `rdma_resolve_addr` finds no device for the source address
    (net/rds/ib_cm.c `rds_ib_conn_path_connect`), so the backoff of
    `reconnect_policy` grows meanwhile; `rds_ib_add_one` starts no attempt, so the
    first one after the VF is back is when the pending wait ends."""
    backoff_jitter: float = 0.25
    """`doubling` only: each wait is lengthened by a random fraction in [0, jitter)
    of itself, drawn from the agent's rng. ASSUMPTION."""

    service_port: int = 18515
    """Every guest listens on rdma_cm's TCP port space at this port: Service ID
    0x0000000001060000 + port (Linux cma_get_service_id, RDMA_PS_TCP 0x0106).
    ASSUMPTION: perftest's default port 18515."""
    inform_resp_time_value: int = 16
    """InformInfo RespTimeValue of the per-VM subscription: the SA resends an
    unanswered Report after 4.096 us * 2**value (268 ms). ASSUMPTION."""
    dreq_on_detach: bool = True
    """When the VF goes (hot-unplug before a migration), every established
    connection sends one DREQ before the device disappears: the rdma_cm IDs are
    destroyed on device removal and Linux's ib_cm sends a DREQ when an established
    connection's ID is destroyed (drivers/infiniband/core/cm.c `cm_destroy_id`, case
    IB_CM_ESTABLISHED: `cm_send_dreq_locked`). Nobody is left to resend it or to
    take the DREP. False: the guest goes silent, and peers learn of it only from
    their own time-outs."""
    disconnect_on_error: bool = True
    """After a QP error or a path change the client sends a DREQ on the old
    connection before reconnecting (an rdma_disconnect(), as rping does on an
    error). ASSUMPTION: applications tear connections down this way."""

    join_ipoib_broadcast: bool = False
    """IPoIB joins the broadcast group ff12:401b:ffff::ffff:ffff (RFC 4391, P_Key
    0xFFFF) with the VM's GID when the VF comes up, at the destination again after a
    migration and after a ClientReregister (Linux ipoib_mcast_join_task), and leaves
    it when the VF goes (ipoib_mcast_dev_flush). ASSUMPTION: off by default, so that
    published runs do not change; a scenario with dynamic address assignment turns
    it on (`ibmig.experiments.building`), since there address resolution by
    broadcast ARP is part of the recovery (`ibmig.core.guest.ipoib`)."""

    # The IPoIB neighbour state machine (`ibmig.core.guest.ipoib`): Linux's ARP table
    # defaults, net/ipv4/arp.c `arp_tbl`.
    arp_reachable_ns: int = 30_000_000_000
    """REACHABLE lasts this long after a confirmation, then STALE (BASE_REACHABLE_TIME
    30 s; Linux randomises it over [base/2, 3·base/2), the model does not)."""
    arp_delay_first_probe_ns: int = 5_000_000_000
    """A STALE entry used waits this long in DELAY before probing (DELAY_PROBE_TIME)."""
    arp_retrans_ns: int = 1_000_000_000
    """Between two ARP requests of one resolution (RETRANS_TIME 1 s)."""
    arp_ucast_probes: int = 3
    """Unicast ARP requests in PROBE before FAILED (UCAST_PROBES)."""
    arp_mcast_probes: int = 3
    """Broadcast ARP requests of a resolution from scratch before FAILED (MCAST_PROBES)."""
    arp_use_on_connect: bool = False
    """Whether a connection attempt counts as a use of a STALE entry (DELAY, then
    unicast probes). False, as rdma_cm: addr.c `dst_fetch_ha` takes a valid entry as
    it is and calls `neigh_event_send` only for one that is not; True stands for IP
    traffic the application sends its peer besides RDMA (ASSUMPTION, not modelled)."""
    addr_resolve_timeout_ns: int = 5_000_000_000
    """How long a client's rdma_resolve_addr waits for an address that is not yet
    resolved before the attempt fails and is retried: RDS's
    RDS_RDMA_RESOLVE_TIMEOUT_MS 5000 (net/rds/rdma_transport.h)."""

    def __post_init__(self) -> None:
        if not isinstance(self.join_ipoib_broadcast, bool):
            raise ConfigError(
                f"must be true or false, got {self.join_ipoib_broadcast!r}",
                "join_ipoib_broadcast",
            )
        if self.path_cache not in PATH_CACHE_POLICIES:
            raise ConfigError(
                f"must be one of {', '.join(PATH_CACHE_POLICIES)}, got {self.path_cache!r}",
                "path_cache",
            )
        _check_int("sa_timeout_ns", self.sa_timeout_ns, 1)
        _check_int("sa_retries", self.sa_retries, 0)
        _check_int("report_memory", self.report_memory, 1)
        _check_int("cm_response_timeout", self.cm_response_timeout, 0, 31)
        _check_int("max_cm_retries", self.max_cm_retries, 0, 15)
        if self.local_ack_timeout is not None:
            _check_int("local_ack_timeout", self.local_ack_timeout, 0, 31)
        _check_int("ca_ack_delay", self.ca_ack_delay, 0, 31)
        _check_int("retry_count", self.retry_count, 0, 7)
        _check_int("rnr_retry_count", self.rnr_retry_count, 0, 7)
        _check_int("send_queue_depth", self.send_queue_depth, 1)
        _check_int("message_interval_ns", self.message_interval_ns, 1)
        _check_int("message_bytes", self.message_bytes, 8)
        if self.reconnect_policy not in RECONNECT_POLICIES:
            raise ConfigError(
                f"must be one of {', '.join(RECONNECT_POLICIES)}, got {self.reconnect_policy!r}",
                "reconnect_policy",
            )
        _check_int("reconnect_backoff_ns", self.reconnect_backoff_ns, 0)
        _check_int("reconnect_backoff_max_ns", self.reconnect_backoff_max_ns, 0)
        if isinstance(self.backoff_jitter, bool) or not isinstance(
            self.backoff_jitter, int | float
        ):
            raise ConfigError(f"must be a number, got {self.backoff_jitter!r}", "backoff_jitter")
        if not 0.0 <= self.backoff_jitter <= 1.0:
            raise ConfigError(f"must be 0..1, got {self.backoff_jitter}", "backoff_jitter")
        _check_int("service_port", self.service_port, 0, 0xFFFF)
        _check_int("inform_resp_time_value", self.inform_resp_time_value, 0, 31)
        for name in ("arp_delay_first_probe_ns", "arp_retrans_ns", "addr_resolve_timeout_ns"):
            _check_int(name, getattr(self, name), 1)
        _check_int("arp_reachable_ns", self.arp_reachable_ns, 0)
        _check_int("arp_ucast_probes", self.arp_ucast_probes, 0)
        _check_int("arp_mcast_probes", self.arp_mcast_probes, 1)
        for name in (
            "disconnect_on_error",
            "dreq_on_detach",
            "arp_use_on_connect",
            "retry_while_detached",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"must be true or false, got {getattr(self, name)!r}", name)

    def with_overrides(self, pairs: Iterable[tuple[str, Any]], where: str = "") -> GuestConfig:
        """A copy with `pairs` (name, value) applied; `ConfigError` naming
        `where`.name for an unknown name or a bad value."""
        names = {f.name for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for name, value in pairs:
            if name not in names:
                raise ConfigError(
                    f"unknown key (known: {', '.join(sorted(names))})", _key(where, name)
                )
            changes[name] = value
        try:
            return dataclasses.replace(self, **changes)
        except ConfigError as error:
            raise ConfigError(error.message, _key(where, error.where or "")) from None

    @property
    def service_id(self) -> int:
        """The Service ID every guest listens on (see `service_port`)."""
        return RDMA_PS_TCP_SERVICE_BASE + self.service_port


RDMA_PS_TCP_SERVICE_BASE: Final = 0x0106 << 16
"""rdma_cm's Service ID for port-space TCP: (RDMA_PS_TCP 0x0106 << 16) + port."""


def _key(where: str, name: str) -> str:
    if not where:
        return name
    return f"{where} {name}" if where.endswith(":") else f"{where}.{name}"


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"must be an integer, got {value!r}", name)
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ConfigError(f"must be {bound}, got {value}", name)
