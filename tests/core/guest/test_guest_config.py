"""The guest stack's defaults, overrides and IBA time arithmetic."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ibmig.core.guest import GuestConfig, cm_ack_timeout, cm_timeout_ns, iba_time_ns
from ibmig.core.guest.workload import backoff_ns
from ibmig.errors import ConfigError


def test_defaults_are_the_cited_ones() -> None:
    config = GuestConfig()
    assert config.cm_response_timeout == 20  # CMA_CM_RESPONSE_TIMEOUT
    assert config.max_cm_retries == 15  # CMA_MAX_CM_RETRIES
    assert config.retry_count == 7
    assert config.local_ack_timeout is None  # derived as Linux ib_cm derives it
    assert config.dreq_on_detach  # Linux cm_destroy_id sends a DREQ when ESTABLISHED
    # Linux RDS (net/rds): 1 ms doubling to 1 s, a uniform draw below it.
    assert (config.reconnect_policy, config.reconnect_backoff_ns) == ("rds", 1_000_000)
    assert config.reconnect_backoff_max_ns == 1_000_000_000
    assert (config.sa_timeout_ns, config.sa_retries) == (1_000_000_000, 3)  # libibmad
    assert config.service_id == 0x0000_0000_0106_0000 + 18515
    assert config.path_cache == "cached"


def test_iba_time() -> None:
    assert iba_time_ns(0) == 4096
    assert iba_time_ns(14) == 67_108_864  # 67 ms
    assert iba_time_ns(20) == 4096 << 20  # about 4.3 s


def test_cm_timeouts_as_linux_converts_them() -> None:
    # cm_convert_to_ms: 2**max(exponent - 8, 0) ms.
    assert cm_timeout_ns(20) == 4_096_000_000
    assert cm_timeout_ns(18) == 1_024_000_000
    assert cm_timeout_ns(9) == 2_000_000
    assert cm_timeout_ns(8) == cm_timeout_ns(0) == 1_000_000
    # A REQ's resend time with OpenSM's PacketLifeTime and rdma_cm's response time.
    assert 2 * cm_timeout_ns(18) + cm_timeout_ns(20) == 6_144_000_000


@pytest.mark.parametrize(
    ("ack_delay", "life_time", "expected"),
    [(16, 18, 19), (16, 0, 16), (16, 13, 16), (16, 14, 17), (16, 15, 17), (0, 0, 2), (31, 31, 31)],
)
def test_linux_cm_ack_timeout(ack_delay: int, life_time: int, expected: int) -> None:
    assert cm_ack_timeout(ack_delay, life_time) == expected


def test_overrides() -> None:
    config = GuestConfig().with_overrides(
        [("max_cm_retries", 3), ("local_ack_timeout", None), ("path_cache", "query")]
    )
    assert (config.max_cm_retries, config.local_ack_timeout, config.path_cache) == (
        3,
        None,
        "query",
    )


@pytest.mark.parametrize(
    ("pairs", "where", "message"),
    [
        ([("bogus", 1)], "s.toml: timing.guest.bogus", "unknown key"),
        ([("retry_count", 8)], "s.toml: timing.guest.retry_count", "0..7"),
        ([("retry_count", "7")], "s.toml: timing.guest.retry_count", "integer"),
        ([("retry_count", True)], "s.toml: timing.guest.retry_count", "integer"),
        ([("message_bytes", 4)], "s.toml: timing.guest.message_bytes", ">= 8"),
        ([("path_cache", "never")], "s.toml: timing.guest.path_cache", "cached, query"),
        ([("backoff_jitter", 2.0)], "s.toml: timing.guest.backoff_jitter", "0..1"),
        ([("disconnect_on_error", 1)], "s.toml: timing.guest.disconnect_on_error", "true"),
    ],
)
def test_bad_overrides(pairs: list[tuple[str, Any]], where: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        GuestConfig().with_overrides(pairs, "s.toml: timing.guest")
    assert info.value.where == where


def test_doubling_backoff() -> None:
    config = GuestConfig(
        reconnect_policy="doubling",
        reconnect_backoff_ns=100,
        reconnect_backoff_max_ns=1_000,
        backoff_jitter=0.0,
    )
    rng = random.Random(0)
    assert [backoff_ns(config, n, rng) for n in range(6)] == [0, 100, 200, 400, 800, 1_000]
    jittered = GuestConfig(reconnect_policy="doubling", reconnect_backoff_ns=1_000,
                           backoff_jitter=0.5)  # fmt: skip
    values = {backoff_ns(jittered, 1, rng) for _ in range(50)}
    assert min(values) >= 1_000 and max(values) < 1_500 and len(values) > 1


def test_rds_backoff_draws_below_a_doubling_ceiling() -> None:
    # rds_queue_reconnect: rand % cp_reconnect_jiffies, which doubles up to the max.
    config = GuestConfig(reconnect_backoff_ns=100, reconnect_backoff_max_ns=1_000)
    ceilings = [100, 200, 400, 800, 1_000, 1_000]
    twin = random.Random(7)
    expected = [twin.randrange(c) for c in ceilings]
    rng = random.Random(7)
    assert backoff_ns(config, 0, rng) == 0  # no failure yet: at once
    assert [backoff_ns(config, n, rng) for n in range(1, 7)] == expected
    assert all(0 <= d < c for d, c in zip(expected, ceilings, strict=True))


def test_bad_reconnect_policy() -> None:
    with pytest.raises(ConfigError, match="rds, doubling") as info:
        GuestConfig().with_overrides([("reconnect_policy", "never")], "s.toml: timing.guest")
    assert info.value.where == "s.toml: timing.guest.reconnect_policy"
