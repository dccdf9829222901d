"""The scenario parser turns the names in a file into registry entries."""

from __future__ import annotations

import pytest

from ibmig.core.host import AddressAssignment
from ibmig.core.migration import AliasRegistration
from ibmig.core.sm.routing import ROUTING_ENGINES
from ibmig.errors import ConfigError
from ibmig.experiments.building import Settings, build_fabric, build_subnet
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
        name: (s.detect_alias_moves, s.dom0_subscribes, s.guest_subscribes, s.targeted)
        for name, s in STRATEGIES.items()
    }
    assert flags == {
        "none": (False, False, False, False),
        "per-vm": (True, False, True, False),
        "per-host": (True, True, False, False),
        "targeted": (True, True, False, True),
    }


@pytest.mark.parametrize(
    ("data", "where", "known"),
    [
        ({"run": {"routing": "lash"}}, "run.routing", "minhop, updn, ftree"),
        ({"signalling": {"assignment": "sticky"}}, "signalling.assignment", "static, dynamic"),
        (
            {"signalling": {"strategy": "all"}},
            "signalling.strategy",
            "none, per-vm, per-host, targeted",
        ),
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


def test_orchestration_and_sa_keys_and_their_defaults() -> None:
    default = scenario_from_dict({})
    assert default.orchestration.alias_registration is AliasRegistration.AFTER_REINIT
    assert default.orchestration.dreq_on_detach is True
    assert (default.sa.packet_life_time, default.sa.guid_info_answer) == (18, "before_write")
    scenario = scenario_from_dict(
        {
            "orchestration": {"alias_registration": "before_stop_copy", "dreq_on_detach": False},
            "sa": {"packet_life_time": "hops", "guid_info_answer": "after_write"},
        }
    )
    assert scenario.orchestration.alias_registration is AliasRegistration.BEFORE_STOP_COPY
    assert scenario.orchestration.dreq_on_detach is False
    assert (scenario.sa.packet_life_time, scenario.sa.guid_info_answer) == (None, "after_write")
    assert scenario_from_dict({"sa": {"packet_life_time": 12}}).sa.packet_life_time == 12


def test_the_keys_reach_the_engines() -> None:
    scenario = scenario_from_dict(
        {
            "orchestration": {"dreq_on_detach": False},
            "sa": {"packet_life_time": 16, "guid_info_answer": "after_write"},
        }
    )
    assert Settings.of(scenario).guest.dreq_on_detach is False
    sim = build_subnet(scenario, build_fabric(scenario), Settings.of(scenario).latency,
                       capture=None, trace=None)  # fmt: skip
    assert (sim.sa.config.packet_life_time, sim.sa.config.guid_info_answer) == (16, "after_write")
    # [timing.guest] still has the last word on the guest's own key.
    overridden = scenario_from_dict(
        {"orchestration": {"dreq_on_detach": False}, "timing": {"guest": {"dreq_on_detach": True}}}
    )
    assert Settings.of(overridden).guest.dreq_on_detach is True


@pytest.mark.parametrize(
    ("data", "where", "message"),
    [
        ({"orchestration": {"alias_registration": "now"}}, "orchestration.alias_registration",
         "after_reinit, at_attach, before_stop_copy"),
        ({"orchestration": {"dreq_on_detach": 1}}, "orchestration.dreq_on_detach",
         "true or false"),
        ({"orchestration": {"dreq": True}}, "orchestration.dreq", "unknown key"),
        ({"sa": {"packet_life_time": 64}}, "sa.packet_life_time", "0..63"),
        ({"sa": {"packet_life_time": "hop"}}, "sa.packet_life_time", '"hops"'),
        ({"sa": {"guid_info_answer": "never"}}, "sa.guid_info_answer",
         "before_write, after_write"),
    ],
)  # fmt: skip
def test_bad_orchestration_and_sa_keys_name_the_key(
    data: dict[str, object], where: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(data, "s.toml")
    text = str(info.value)
    assert text.startswith(f"s.toml: {where}: ") and message in text
