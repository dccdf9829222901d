"""Bad input at every front door: one error line naming the file and the key,
exit status 2 -- never a traceback, a run without end or a late failure."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from ibmig.cli import main
from ibmig.errors import ConfigError
from ibmig.experiments.building import build_fabric, check_lid_space
from ibmig.experiments.scenario import (
    HCA_GUID_CAP,
    MAX_DURATION_MS,
    MAX_WORKLOAD_MESSAGES,
    scenario_from_dict,
)
from ibmig.fabric import Fabric, FabricBuilder, NodeType
from ibmig.sim.subnet import node_spec

SMALL: dict[str, Any] = {
    "hosts": {"n": 4, "m": 2},
    "workload": {"peers": 1, "interval_us": 1000},
    "run": {"duration_ms": 20},
}


def with_(base: dict[str, Any], **tables: dict[str, Any] | list[Any]) -> dict[str, Any]:
    """`base` with each named table merged in (a list replaces)."""
    data: dict[str, Any] = json.loads(json.dumps(base))
    for name, table in tables.items():
        if isinstance(table, list):
            data[name] = table
        else:
            data.setdefault(name, {}).update(table)
    return data


def toml_value(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return json.dumps(value)


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    """A minimal TOML writer for the tables the tests use (nan/inf included)."""
    lines: list[str] = []

    def table(name: str, body: dict[str, Any]) -> None:
        plain = {k: v for k, v in body.items() if not isinstance(v, dict)}
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in plain.items())
        for key, value in body.items():
            if isinstance(value, dict):
                table(f"{name}.{key}", value)

    for name, body in data.items():
        if isinstance(body, list):
            for entry in body:
                lines.append(f"[[{name}]]")
                lines.extend(f"{k} = {toml_value(v)}" for k, v in entry.items())
        else:
            table(name, body)
    path.write_text("\n".join(lines) + "\n")
    return path


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], *names: str) -> str:
    """Run the CLI; it must exit 2 with one stderr line that names each of `names`."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for name in names:
        assert name in err[0], err[0]
    return err[0]


# --- numbers: finite, and within bounds that keep a run finite -----------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("run", "duration_ms"),
        ("workload", "interval_us"),
        ("migrations", "at_ms"),
        ("latency", "switch_ns"),
        ("timing.migration", "memory_bytes"),
        ("timing.guest", "backoff_jitter"),
    ],
)
def test_non_finite_numbers_are_refused_with_their_key(
    table: str, key: str, bad: float, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if table == "migrations":
        data = with_(SMALL, migrations=[{"vm": 0, "at_ms": bad}])
    elif table.startswith("timing."):
        data = with_(SMALL, timing={table.split(".")[1]: {key: bad}})
    else:
        data = with_(SMALL, **{table: {key: bad}})
    path = write_toml(tmp_path / "s.toml", data)
    where = "migrations[0].at_ms" if table == "migrations" else f"{table}.{key}"
    refused(["run", str(path)], capsys, str(path), where)


def test_a_duration_beyond_the_bound_is_refused_and_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_toml(tmp_path / "s.toml", with_(SMALL, run={"duration_ms": 1e300}))
    line = refused(["run", str(path)], capsys, str(path), "run.duration_ms")
    assert f"{MAX_DURATION_MS:,}" in line
    assert "day" in line
    # The bound itself is accepted.
    scenario_from_dict(with_(SMALL, workload={"peers": 0}, run={"duration_ms": MAX_DURATION_MS}))


def test_the_lowest_interval_is_one_microsecond(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_toml(tmp_path / "s.toml", with_(SMALL, workload={"interval_us": 0.01}))
    refused(["run", str(path)], capsys, str(path), "workload.interval_us", ">= 1")
    assert scenario_from_dict(with_(SMALL, workload={"interval_us": 1})).workload.interval_us == 1


def test_a_workload_beyond_the_message_budget_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 3 peers x 1 migration x 1e9 us / 10 us = 3e8 messages.
    data = with_(SMALL, workload={"peers": 3, "interval_us": 10}, run={"duration_ms": 1e6})
    path = write_toml(tmp_path / "s.toml", data)
    line = refused(["run", str(path)], capsys, str(path), "workload.interval_us")
    assert "300,000,000 messages" in line
    assert f"{MAX_WORKLOAD_MESSAGES:,}" in line
    # A guest timing override of the interval is held to the same budget.
    data = with_(SMALL, timing={"guest": {"message_interval_ns": 1}}, run={"duration_ms": 1e5})
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(data, "s.toml")
    assert info.value.where == "s.toml: timing.guest.message_interval_ns"
    # Without peers there is no workload to bound.
    scenario_from_dict(
        with_(SMALL, workload={"peers": 0, "interval_us": 1}, run={"duration_ms": 1e6})
    )


def test_a_latency_longer_than_the_sm_waits_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It used to bring the subnet "up" with every SMP timed out, then fail in dom0
    # with "LIDs must be unicast".
    path = write_toml(tmp_path / "s.toml", with_(SMALL, latency={"switch_ns": 1_000_000_000}))
    line = refused(["run", str(path)], capsys, str(path), "latency.switch_ns")
    assert "transaction timeout" in line
    scenario_from_dict(with_(SMALL, latency={"switch_ns": 1_000_000}))


# --- migrations consistent with each other ----------------------------------------------


def test_a_vm_migrates_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = with_(SMALL, migrations=[{"vm": 0, "at_ms": 1}, {"vm": 0, "at_ms": 5}])
    path = write_toml(tmp_path / "s.toml", data)
    line = refused(["run", str(path)], capsys, str(path), "migrations[1].vm")
    assert "migrations[0]" in line


def test_a_destination_that_is_the_vms_own_host_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = with_(SMALL, migrations=[{"vm": 3, "to_host": 1, "at_ms": 1}])
    path = write_toml(tmp_path / "s.toml", data)
    refused(["run", str(path)], capsys, str(path), "migrations[0].to_host", "host1")


def test_more_incoming_vms_than_free_vfs_is_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # host1 has one VF spare (m = 2, vfs = 3); two VMs heading there at once used to
    # pass the check at start and fail in dom0 at the second SetAlias.
    data = with_(
        SMALL,
        hosts={"vfs": 3},
        migrations=[{"vm": 0, "to_host": 1, "at_ms": 1}, {"vm": 4, "to_host": 1, "at_ms": 2}],
    )
    path = write_toml(tmp_path / "s.toml", data)
    refused(["run", str(path)], capsys, str(path), "migrations[1].to_host", "no free VF")


@pytest.mark.parametrize("strategy", ["per-host", "none"])
def test_a_vm_leaves_the_host_another_vm_is_migrating_to(
    strategy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # lab.toml's vm0 goes to host1 and arrives about 6.09 s later; vm2 leaves host1
    # just before. vm0 used to take vm2's VF while vm2's alias GUID was still
    # registered there, and vm2's release then failed with a HostError.
    lab = Path(__file__).parents[2] / "examples" / "lab.toml"
    import tomllib

    data = tomllib.loads(lab.read_text())
    data["migrations"] = [{"vm": 0, "at_ms": 50}, {"vm": 2, "at_ms": 5600}]
    data["signalling"]["strategy"] = strategy
    data["run"]["duration_ms"] = 14000
    from ibmig.experiments.runner import run_scenario

    result = run_scenario(scenario_from_dict(data, "lab-overlap.toml"))
    assert [(m.vm, m.src, m.dst) for m in result.migrations] == [
        ("vm0", "host0", "host1"),
        ("vm2", "host1", "host2"),
    ]
    assert all(m.total_ns is not None for m in result.migrations)


# --- hosts, VFs and LIDs within what the hardware and the SM handle ---------------------


def test_vfs_are_bounded_by_the_hcas_guid_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_toml(tmp_path / "s.toml", with_(SMALL, hosts={"m": 255, "vfs": 255}))
    line = refused(["run", str(path)], capsys, str(path), "hosts.vfs")
    assert str(HCA_GUID_CAP - 1) in line
    path = write_toml(tmp_path / "m.toml", with_(SMALL, hosts={"m": 200}))
    refused(["run", str(path)], capsys, str(path), "hosts.")


def test_the_hca_guid_table_size_is_the_simulators() -> None:
    builder = FabricBuilder()
    ca = builder.add_node(NodeType.CA, "h", 1)
    fabric = builder.build()
    assert node_spec(fabric.nodes[ca], fabric).guid_cap == HCA_GUID_CAP


def test_too_few_hosts_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_toml(tmp_path / "s.toml", with_(SMALL, hosts={"n": 36}))
    refused(["run", str(path)], capsys, str(path), "hosts.n", "35")


def chain(switches: int, cas_per_switch: int) -> Fabric:
    builder = FabricBuilder()
    previous = None
    for s in range(switches):
        sw = builder.add_node(NodeType.SWITCH, f"s{s}", cas_per_switch + 2)
        for c in range(cas_per_switch):
            ca = builder.add_node(NodeType.CA, f"h{s}-{c}", 1)
            builder.connect(sw, c + 1, ca, 1)
        if previous is not None:
            builder.connect(previous, cas_per_switch + 2, sw, cas_per_switch + 1)
        previous = sw
    return builder.build()


def test_a_fabric_within_the_lid_space_passes() -> None:
    check_lid_space(chain(3, 4), "s.toml: topology")


def test_the_full_64_port_three_level_fat_tree_is_refused_naming_its_lids() -> None:
    # 64 pods x 32 leaves x 32 hosts, 64 x 64 leaves and mids, 1,024 cores: 65,536
    # hosts and 5,120 switches need 70,656 LIDs. The preset ft3-40960 (40 pods) fits.
    data = {
        "topology": {"generator": "fat_tree_3level", "pods": 64, "leaves_per_pod": 32,
                     "hosts_per_leaf": 32, "mids_per_pod": 32, "cores_per_group": 32,
                     "switch_ports": 64},
    }  # fmt: skip
    with pytest.raises(ConfigError) as info:
        build_fabric(scenario_from_dict(data, "full.toml"))
    assert info.value.where == "full.toml: topology"
    assert info.value.message == (
        "the fabric needs 70,656 unicast LIDs (5,120 switches and the CA and router "
        "ports), more than the 49,151 a subnet has"
    )


def test_a_generated_fabric_beyond_the_lid_space_is_refused_before_bring_up() -> None:
    # 200 leaves x 250 hosts + 204 switches: 50,204 LIDs, more than 0x0001..0xBFFF.
    data = {
        "topology": {"generator": "fat_tree_2level", "leaves": 200, "hosts_per_leaf": 250,
                     "spines": 4, "switch_ports": 254},
    }  # fmt: skip
    scenario = scenario_from_dict(data, "big.toml")
    with pytest.raises(ConfigError) as info:
        build_fabric(scenario)
    assert info.value.where == "big.toml: topology"
    assert "50,204 unicast LIDs" in info.value.message
    assert "49,151" in info.value.message


# --- command-line arguments -------------------------------------------------------------


def test_a_negative_seed_is_refused_on_the_command_line_as_in_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_toml(tmp_path / "s.toml", SMALL)
    refused(["run", str(path), "--seed", "-1"], capsys, "--seed", ">= 0")
    refused(["up", "ft2-36", "--seed", "-1"], capsys, "--seed", ">= 0")
    bad = write_toml(tmp_path / "b.toml", with_(SMALL, run={"seed": -1}))
    refused(["run", str(bad)], capsys, str(bad), "run.seed", ">= 0")


def test_an_overlong_ibsim_socket_name_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(["sm", "--ibsim", "--sockname", "s" * 120], capsys, "--sockname")
    assert "s" * 120 not in line


def test_a_huge_bad_token_is_not_echoed_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "x" * 3_000_000
    path = write_toml(tmp_path / "s.toml", with_(SMALL, signalling={"strategy": token}))
    line = refused(["run", str(path)], capsys, str(path), "signalling.strategy")
    assert len(line) < 500
    net = tmp_path / "t.net"
    net.write_text(token + "\n")
    line = refused(["up", str(net)], capsys, str(net))
    assert len(line) < 500


@pytest.mark.parametrize("command", ["run", "sweep", "plan", "up", "path"])
def test_a_file_that_is_not_utf8_is_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every reader of a user's file decodes it as UTF-8 itself: bytes that are not
    text are bad input (one line naming the file, exit 2), not a UnicodeDecodeError."""
    suffix = ".toml" if command in ("run", "sweep") else ".net"
    bad = tmp_path / f"latin1{suffix}"
    bad.write_bytes(b"[run]\nseed = 1 # caf\xe9\n" if suffix == ".toml" else b"Switch\t\xe9\xff\n")
    argv = {
        "run": ["run", str(bad)],
        "sweep": ["sweep", str(bad), "--param", "seed=1,2"],
        "plan": ["plan", str(bad), "--vms-per-host", "2"],
        "up": ["up", str(bad)],
        "path": ["path", str(bad), "h0_0", "h0_1"],
    }[command]
    refused(argv, capsys, str(bad))
