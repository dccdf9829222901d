"""The scenario parser turns the names in a file into registry entries."""

from __future__ import annotations

import pytest

from ibmig.core.host import AddressAssignment
from ibmig.core.sm.routing import ROUTING_ENGINES
from ibmig.errors import ConfigError
from ibmig.experiments.scenario import scenario_from_dict
from ibmig.experiments.strategies import STRATEGIES
from ibmig.fabric import GENERATORS


def test_names_become_registry_entries() -> None:
    scenario = scenario_from_dict(
        {
            "topology": {"generator": "kary_ntree", "k": 2, "n": 3},
            "hosts": {"n": 4, "m": 1},
            "workload": {"peers": 1},
            "signalling": {"assignment": "dynamic", "strategy": "per-vm"},
            "run": {"routing": "updn"},
        }
    )
    assert scenario.topology.generator is GENERATORS["kary_ntree"]
    assert scenario.signalling.assignment is AddressAssignment.DYNAMIC
    assert scenario.signalling.strategy is STRATEGIES["per-vm"]
    assert scenario.run.routing is ROUTING_ENGINES["updn"]
    assert scenario.topology.generator(**dict(scenario.topology.params)).num_cas == 8


def test_defaults_are_registry_entries() -> None:
    scenario = scenario_from_dict({})
    assert scenario.signalling.assignment is AddressAssignment.STATIC
    assert scenario.signalling.strategy is STRATEGIES["per-host"]
    assert scenario.run.routing is ROUTING_ENGINES["minhop"]
    assert scenario.topology.generator is None


def test_what_each_strategy_turns_on() -> None:
    flags = {
        name: (s.detect_alias_moves, s.dom0_subscribes, s.guest_subscribes)
        for name, s in STRATEGIES.items()
    }
    assert flags == {
        "none": (False, False, False),
        "per-vm": (True, False, True),
        "per-host": (True, True, False),
    }


@pytest.mark.parametrize(
    ("data", "where", "known"),
    [
        ({"run": {"routing": "lash"}}, "run.routing", "minhop, updn, ftree"),
        ({"signalling": {"assignment": "sticky"}}, "signalling.assignment", "static, dynamic"),
        ({"signalling": {"strategy": "all"}}, "signalling.strategy", "none, per-vm, per-host"),
        ({"topology": {"generator": "torus"}}, "topology.generator", "fat_tree_2level"),
    ],
)
def test_an_unknown_name_lists_the_registry(
    data: dict[str, object], where: str, known: str
) -> None:
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(data, "s.toml")
    text = str(info.value)
    assert text.startswith(f"s.toml: {where}: must be one of") and known in text
