"""The vSwitch model's pure parts and the SM's refusal when VF LIDs run out."""

from __future__ import annotations

import pytest

from ibmig.core.sm.manager import SubnetManager
from ibmig.core.sm.vswitch import (
    MAX_UNICAST_LID,
    VfLidMoved,
    VfLids,
    VfLidsExhausted,
    VfLidsExhaustedError,
    VSwitchTable,
    full_reroute_smps,
    vf_lids_needed,
)


def test_full_reroute_counts_every_block_up_to_the_top_on_every_switch() -> None:
    assert full_reroute_smps(7, 63) == 7
    assert full_reroute_smps(7, 64) == 14
    assert full_reroute_smps(1_620, 49_151) == 1_620 * 768


def test_lids_needed_per_scheme() -> None:
    assert vf_lids_needed(VfLids.PREPOPULATED, 10, 4, 16) == 160
    assert vf_lids_needed(VfLids.DYNAMIC, 10, 4, 16) == 40


def test_lowest_free_skips_taken_lids_and_refuses_past_the_unicast_range() -> None:
    table = VSwitchTable(port_of_lid={2: 1})
    assert table.lowest_free({1, 4}, 3) == [3, 5, 6]
    with pytest.raises(VfLidsExhaustedError, match=r"needs 49,152 unicast LIDs.*49,151"):
        table.lowest_free(set(range(1, MAX_UNICAST_LID)), 2)


def test_the_sm_refuses_a_vf_lid_past_the_unicast_range_with_an_event() -> None:
    sm = SubnetManager()
    sm.vswitch.scheme = VfLids.DYNAMIC
    sm.vswitch.port_of_lid.update(dict.fromkeys(range(1, MAX_UNICAST_LID + 1), 0xA))
    with pytest.raises(VfLidsExhaustedError) as info:
        sm.vswitch_place(0x1234, 0xA, 5)
    assert info.value.needed == MAX_UNICAST_LID + 1
    events = [e for e in iter(sm.next_event, None) if isinstance(e, VfLidsExhausted)]
    assert events == [VfLidsExhausted(5, MAX_UNICAST_LID + 1, MAX_UNICAST_LID)]
    assert 0x1234 not in sm.vswitch.lid_of_vm  # nothing half-assigned


def test_a_prepopulated_port_without_a_free_vf_is_refused() -> None:
    sm = SubnetManager()
    sm.vswitch.port_of_lid[40] = 0xA  # as `vswitch_add_port` leaves a one-VF port
    sm.vswitch.free[0xA] = [40]
    assert sm.vswitch_place(0x1, 0xA, 0) == 40
    with pytest.raises(VfLidsExhaustedError):
        sm.vswitch_place(0x2, 0xA, 0)
    assert sm.vswitch.lid_of_vm == {0x1: 40}


def test_a_move_during_a_sweep_is_left_to_the_sweep_and_says_so() -> None:
    sm = SubnetManager()  # never swept: not up, so no LFT is written now
    table = sm.vswitch
    table.port_of_lid.update({40: 0xA, 41: 0xB})
    table.lid_of_vm[0x77] = 40
    table.free[0xB] = [41]
    assert sm.vswitch_place(0x77, 0xB, 7) == 40
    assert table.port_of_lid == {40: 0xB, 41: 0xA}  # swapped
    assert table.free == {0xB: [], 0xA: [41]}
    [moved] = [e for e in iter(sm.next_event, None) if isinstance(e, VfLidMoved)]
    assert moved.deferred and moved.lft_smps == 0 and moved.swapped_lid == 41
    assert sm.packets_to_send() == []
