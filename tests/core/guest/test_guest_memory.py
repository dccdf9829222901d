"""A guest's instance dictionary shares its keys with every other guest's (CPython's
split tables): a large placement holds hundreds of thousands of guests, and an
unshared dictionary costs about 1.3 kB more per guest (0.85 GB on the 40,960-host
preset). CPython stops sharing when a class's instances grow past 30 attributes or
an instance gains more names than its class's table held when it was made (plus a
margin that shrinks with every instance made), so the test runs a migration (the
guest subscribes, joins the broadcast group, resolves addresses and reconnects) and
checks every guest afterwards."""

from __future__ import annotations

import random
import sys
from collections import Counter
from typing import Any

import pytest

from ibmig.core.guest import GuestAgent
from ibmig.core.guest.agent import _LAZY, _NO_TIMERS
from ibmig.core.sa_client import NOTICES
from ibmig.errors import ConfigError
from ibmig.experiments.metrics import RunResult
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import scenario_from_dict


def _run_keeping_guests(data: dict[str, Any], name: str) -> tuple[RunResult, list[Any]]:
    """Run the scenario; its guests as they are when the run is measured."""
    guests: list[Any] = []

    def on_stage(stage: str, sim: Any) -> None:
        if stage == "measure":
            guests.extend(vm.guest for vm in sim.vms.values())

    return run_scenario(scenario_from_dict(data, name), on_stage=on_stage), guests


@pytest.mark.slow  # a lab migration with traffic: about 15 s alone, more when loaded
def test_every_guest_keeps_a_key_sharing_dictionary_through_a_migration() -> None:
    data = {
        "topology": {"file": "ft2-36"},
        "hosts": {"n": 6, "m": 2, "vfs": 3},
        "workload": {"peers": 3},
        "signalling": {"assignment": "dynamic", "strategy": "per-vm"},
        "migrations": [{"vm": 0, "at_ms": 10}],
        "run": {"duration_ms": 14000, "seed": 1},
        "timing": {"migration": {"memory_bytes": 64 * 1024 * 1024}},
    }
    result, guests = _run_keeping_guests(data, "memory")
    assert result.migrations[0].done_ns is not None
    assert guests and any(g.subscribe for g in guests)
    for guest in guests:
        shared = sys.getsizeof(vars(guest))
        combined = sys.getsizeof(dict(vars(guest)))  # a copy has a table of its own
        assert shared < combined, (guest.name, len(vars(guest)), shared, combined)


def test_guests_share_one_never_armed_timers_until_their_first_deadline() -> None:
    """A guest's timers are its own from its first deadline on; before, it holds a
    shared empty one (`agent._NO_TIMERS`) that nothing may arm."""
    data = {
        "topology": {"file": "ft2-36"},
        "hosts": {"n": 6, "m": 2, "vfs": 3},
        "workload": {"peers": 1, "interval_us": 50000},
        "migrations": [{"vm": 0, "at_ms": 1}],
        "run": {"duration_ms": 4000, "seed": 1},
        "timing": {"migration": {"memory_bytes": 16 * 1024 * 1024}},
    }
    result, guests = _run_keeping_guests(data, "timers")
    assert result.migrations[0].done_ns is not None
    assert len(_NO_TIMERS) == 0 and _NO_TIMERS.next_deadline() is None
    own = [g.name for g in guests if g._timers is not _NO_TIMERS]
    assert own == ["vm0", "vm3"]  # the one client and its server (CM, data timers)


def test_a_guest_makes_its_clients_and_tables_on_first_use() -> None:
    """A guest builds its SA client, path cache, neighbour table, counters and
    connection tables when first used (most guests of a large placement never do),
    each once, with what the constructor was given; a bad `notice` is refused at
    construction all the same."""
    guest = GuestAgent(ip="10.0.0.1", rng=random.Random(1), notice="trap64-65")
    lazy = set(_LAZY)
    assert lazy == {"sent", "counters", "delivered", "sa", "paths", "neighbours", "_conns",
                    "_by_qpn", "_server_conns"}  # fmt: skip
    assert not lazy & set(vars(guest))
    assert guest.sa.traps == NOTICES["trap64-65"]
    assert guest.paths.retry is guest.sa.retry and guest.paths.policy == "cached"
    assert guest.sa is guest.sa and guest.counters is guest.counters
    assert lazy & set(vars(guest)) == {"sa", "paths", "counters"}
    guest.sent["arp"] += 1
    assert guest.sent == Counter(arp=1)
    # Attaching asks whether it is a MadAgent: answered by the class, made nothing.
    assert getattr(guest, "mad_departed", None) is None
    assert getattr(guest, "response_arrived", None) is None
    with pytest.raises(AttributeError, match="no_such"):
        _ = guest.no_such  # type: ignore[attr-defined]
    with pytest.raises(ConfigError):
        GuestAgent(ip="10.0.0.2", rng=random.Random(1), notice="trap70")


def test_a_guest_made_among_many_keeps_sharing_keys_as_it_makes_its_tables() -> None:
    """CPython gives an instance room for fewer new keys the more instances exist;
    the lazy attributes' names are in the table before any guest is made
    (`agent._share_lazy_keys`), so a late guest using all of them still shares."""
    guests = [GuestAgent(ip=f"10.1.{i // 250}.{i % 250 + 1}", rng=random.Random(i))
              for i in range(300)]  # fmt: skip
    last = guests[-1]
    for name in _LAZY:
        getattr(last, name)
    for guest in (guests[0], last):
        shared = sys.getsizeof(vars(guest))
        assert shared < sys.getsizeof(dict(vars(guest))), (len(vars(guest)), shared)
