"""The SA-client rules dom0 and guests share: retries counted as resends, Reports
de-duplicated by (SA LID, TID), ReportResp built by `report_response()`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibmig.core.engine import QP1
from ibmig.core.guest import GuestConfig
from ibmig.core.host import HostConfig
from ibmig.core.sa_client import (
    LIBIBMAD_SENDS,
    ReportMemory,
    SaClient,
    SaRequest,
    SaRetry,
    path_change_subscription,
    report_resp,
)
from ibmig.errors import ConfigError
from ibmig.wire.mad import Method
from ibmig.wire.notice import PATH_CHANGE_TRAP
from ibmig.wire.packet import QP1_QKEY
from ibmig.wire.sa import InformInfo, SaAttr, SaMad, report_response
from tests.core.sa_fakes import SA_GID, SA_LID, move_notice, report
from tests.helpers import gid

LID = 7
GUID = 0x0002_C903_0000_0D01


def sends(retry: SaRetry) -> int:
    """How many times a request that is never answered goes out."""
    request = SaRequest(tid=1)
    count = 1
    while retry.resend(request):
        count += 1
    return count


@pytest.mark.parametrize("retries", [0, 1, 2, 3, 7])
def test_retries_count_resends_after_the_first_send(retries: int) -> None:
    retry = SaRetry(timeout_ns=10, retries=retries)
    assert sends(retry) == 1 + retries == retry.max_sends


def test_defaults_keep_libibmad_for_dom0_and_four_sends_for_guests() -> None:
    # libibmad's MAD_DEF_RETRIES counts sends: 3 sends are 2 resends.
    assert HostConfig().sa_retries == LIBIBMAD_SENDS - 1 == 2
    assert GuestConfig().sa_retries == 3
    host = SaClient(
        timeout_ns=1, retries=HostConfig().sa_retries, report_memory=1, inform_resp_time_value=0
    )
    assert sends(host.retry) == 3


def test_bad_rule_values_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        SaRetry(timeout_ns=0, retries=1)
    with pytest.raises(ConfigError):
        SaRetry(timeout_ns=1, retries=-1)
    with pytest.raises(ConfigError):
        ReportMemory(0)


def test_duplicates_are_told_by_sa_lid_and_low_32_tid_bits() -> None:
    memory = ReportMemory(8)
    assert not memory.duplicate(SA_LID, 0x10)
    assert memory.duplicate(SA_LID, 0x10)
    assert memory.duplicate(SA_LID, 0xABCD_0000_0000_0010)  # upper TID bits ignored
    assert not memory.duplicate(SA_LID + 1, 0x10)  # another SA, same TID: a new Report
    assert not memory.duplicate(SA_LID, 0x11)


def test_the_least_recently_seen_report_is_forgotten_first() -> None:
    memory = ReportMemory(2)
    memory.duplicate(SA_LID, 1)
    memory.duplicate(SA_LID, 2)
    assert memory.duplicate(SA_LID, 1)  # seen again: now the most recent
    assert not memory.duplicate(SA_LID, 3)  # forgets 2, not 1
    assert len(memory) == 2
    assert memory.duplicate(SA_LID, 1)
    assert not memory.duplicate(SA_LID, 2)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 4),
    st.lists(
        st.tuples(
            st.sampled_from([0, 1, 2, 0xBFFF, 0xFFFF]),
            st.sampled_from([0, 1, 2, 0xFFFF_FFFF, 1 << 32, (1 << 32) | 1, (1 << 64) - 1]),
        ),
        max_size=30,
    ),
)
def test_report_memory_is_a_bounded_lru_of_sa_lid_and_low_tid_bits(
    size: int, reports: list[tuple[int, int]]
) -> None:
    """Against a plain model: a list of (SA LID, TID & 0xFFFFFFFF), most recent
    last, the oldest dropped beyond `size`."""
    memory = ReportMemory(size)
    model: list[tuple[int, int]] = []
    for sa_lid, tid in reports:
        key = (sa_lid, tid & 0xFFFF_FFFF)
        seen = key in model
        if seen:
            model.remove(key)
        model.append(key)
        del model[:-size]
        assert memory.duplicate(sa_lid, tid) == seen
        assert len(memory) == len(model)


def test_report_resp_is_report_response_back_to_the_sender() -> None:
    received = report(move_notice(gid(0xBEEF), 5, 3), 0x4242, LID, sa_lid=SA_LID)
    resp = report_resp(received, lid=LID, gid=gid(GUID))
    assert resp.payload == report_response(received.payload)
    assert (resp.slid, resp.dlid, resp.sqp, resp.dqp, resp.qkey) == (
        LID,
        SA_LID,
        QP1,
        received.sqp,
        QP1_QKEY,
    )
    assert resp.sgid is None and resp.dgid is None  # no GRH in, none out
    mad = SaMad.unpack(resp.payload)
    assert mad.header.method == Method.REPORT_RESP and mad.tid == 0x4242


def test_report_resp_with_grh_swaps_the_gids() -> None:
    received = report(move_notice(gid(0xBEEF), 5, 3), 9, LID, dgid=gid(0x55))
    resp = report_resp(received, lid=LID, gid=gid(GUID))
    assert resp.payload == report_response(received.payload)
    assert (resp.sgid, resp.dgid) == (gid(0x55), SA_GID)


def test_the_subscription_is_the_path_change_inform_info() -> None:
    for subscribe in (True, False):
        mad = SaMad.unpack(path_change_subscription(0x33, subscribe=subscribe, resp_time_value=18))
        assert (mad.header.method, mad.attribute_id, mad.tid) == (
            Method.SET,
            SaAttr.INFORM_INFO,
            0x33,
        )
        info = InformInfo.unpack(mad.data)
        assert info.subscribe == int(subscribe)
        assert (info.is_generic, info.trap_number, info.qpn) == (1, PATH_CHANGE_TRAP, QP1)
        assert (info.gid, info.lid_range_begin, info.type, info.producer_type) == (
            bytes(16),
            0xFFFF,
            0xFFFF,
            0xFFFFFF,
        )
        assert info.resp_time_value == 18
