"""The command line: `ibmig up --dump-lfts`, `ibmig sweep`, `ibmig reproduce --json`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ibmig.cli import main
from ibmig.experiments.strategies import STRATEGIES
from ibmig.fabric import preset


def test_up_dump_lfts_has_the_documented_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = tmp_path / "lfts.json"
    assert main(["up", "ft2-36", "--dump-lfts", str(dump)]) == 0
    out = capsys.readouterr().out
    assert "SUBNET UP" in out and "LinearForwardingTable" in out
    data = json.loads(dump.read_text())
    fabric = preset("ft2-36")
    assert set(data) == {"switches", "cas", "links"}
    assert len(data["switches"]) == fabric.num_switches
    assert len(data["cas"]) == fabric.num_cas
    switch_links = [
        lk
        for lk in fabric.links
        if fabric.nodes[lk.node_a].is_switch and fabric.nodes[lk.node_b].is_switch
    ]
    assert len(data["links"]) == len(switch_links)
    lids = {entry["lid"] for entry in data["cas"].values()}
    for guid, entry in data["switches"].items():
        assert guid.startswith("0x") and len(guid) == 18
        lft = {int(k): v for k, v in entry["lft"].items()}
        assert lft[entry["lid"]] == 0  # the switch's own LID goes to port 0
        assert lids <= set(lft)  # every CA LID is routed by every switch
    for guid, entry in data["cas"].items():
        assert entry["switch"] in data["switches"]
        # Following the leaf switch's LFT for the CA's own LID leads out of its port.
        assert data["switches"][entry["switch"]]["lft"][str(entry["lid"])] == entry["port"]
        assert int(guid, 16) > 0


def test_sweep_writes_one_csv_row_per_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        '[topology]\nfile = "ft2-36"\n[hosts]\nn = 3\nm = 1\nvfs = 2\n'
        "[workload]\npeers = 0\n"
        '[signalling]\nassignment = "static"\n'
        "[[migrations]]\nvm = 0\nat_ms = 1\n"
        "[run]\nduration_ms = 4000\n"
        "[timing.migration]\nmemory_bytes = 8388608\n"
    )
    out = tmp_path / "grid.csv"
    code = main(["sweep", str(scenario), "--param", "n=2,3", "--param",
                 "strategy=per-vm,per-host", "--out", str(out)])  # fmt: skip
    assert code == 0
    assert "4 runs written" in capsys.readouterr().out
    with out.open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 4
    by_point = {(r["param.n"], r["param.strategy"]): r for r in rows}
    assert by_point[("2", "per-host")]["reports_per_event"] == "2"
    assert by_point[("3", "per-host")]["reports_per_event"] == "3"
    assert by_point[("3", "per-vm")]["reports_per_event"] == "3"  # m = 1


def test_sweep_refuses_a_bad_parameter_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text('[topology]\nfile = "ft2-36"\n')
    assert main(["sweep", str(scenario), "--param", "m=1,zero"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hosts.m" in err[0]


@pytest.mark.slow
def test_reproduce_json_has_the_documented_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reproduce", "--out", str(tmp_path), "--json", "--quick", "--seeds", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["downtime"]) == 12  # 2 assignments x 3 strategies x 2 path caches
    for row in data["downtime"]:
        assert {"assignment", "strategy", "path_cache", "seeds", "peers", "connected_after",
                "peer_downtime_ms", "last_peer_downtime_ms", "vm_pause_ms",
                "vm_rdma_down_ms"} <= set(row)  # fmt: skip
        assert set(row["peer_downtime_ms"]) >= {"median", "low", "high", "coverage"}
    assert len(data["downtime_runs"]) == 24  # each configuration with seeds 1 and 2
    for row in data["downtime_runs"]:
        assert {"seed", "assignment", "strategy", "path_cache", "peers", "connected_after",
                "service_downtime_us", "peer_downtime_us", "vm_downtime_us",
                "migration_downtime_us"} <= set(row)  # fmt: skip
    for row in data["messages"]:
        assert {"strategy", "n", "m", "reports_per_event", "fabric_mads_per_event",
                "intra_host_forwards_per_event", "notification_makespan_ms",
                "sa_busy_ms_per_event", "sa_max_queue",
                "reports_resent_per_event"} <= set(row)  # fmt: skip
        expected = row["n"] if row["strategy"] == "per-host" else row["n"] * row["m"]
        assert row["reports_per_event"] == expected
    broken = [
        r
        for r in data["downtime"]
        if (r["assignment"], r["strategy"], r["path_cache"]) == ("static", "none", "cached")
    ]
    assert broken[0]["connected_after"] == 0
    for name in ("report.html", "timeline.png", "messages.png", "makespan.png",
                 "results.json", "downtime.csv", "downtime_runs.csv",
                 "messages.csv"):  # fmt: skip
        assert (tmp_path / name).stat().st_size > 0


def test_the_example_scenario_is_valid() -> None:
    from ibmig.experiments.scenario import load_scenario

    path = Path(__file__).resolve().parents[2] / "examples" / "lab.toml"
    scenario = load_scenario(str(path))
    assert (scenario.hosts.n, scenario.hosts.m, scenario.workload.peers) == (6, 2, 3)
    assert scenario.signalling.strategy is STRATEGIES["per-host"]
    assert dict(scenario.migration_timing) == {"memory_bytes": 268435456}


def test_sweep_refuses_an_unwritable_out_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Defect: the sweep ran every point, then died writing the CSV with a traceback.
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        '[topology]\nfile = "ft2-36"\n[hosts]\nn = 2\nm = 1\nvfs = 2\n'
        "[workload]\npeers = 0\n[[migrations]]\nvm = 0\nat_ms = 1\n"
        "[run]\nduration_ms = 2000\n[timing.migration]\nmemory_bytes = 8388608\n"
    )
    out = tmp_path / "missing" / "x.csv"
    code = main(["sweep", str(scenario), "--param", "n=2,3", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "--out" in err[0], err
    assert not out.parent.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "SCENARIO", "--capture", "BAD"],
        ["run", "SCENARIO", "--trace", "BAD"],
        ["reproduce", "--out", "BAD"],
        ["up", "ft2-36", "--dump-lfts", "BAD"],
        ["up", "ft2-36", "--capture", "BAD"],
        ["up", "ft2-36", "--trace", "BAD"],
    ],
)
def test_every_output_path_is_checked_before_any_work(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text('[topology]\nfile = "ft2-36"\n')
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    bad = str(blocker / "x")  # under a regular file: neither writable nor creatable
    args = [str(scenario) if a == "SCENARIO" else bad if a == "BAD" else a for a in argv]
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and bad in err[0], err
    assert captured.out == ""  # nothing ran: not even the banner line


def test_the_cli_offers_every_registered_routing_engine() -> None:
    from ibmig.cli import build_parser
    from ibmig.core.sm.routing import ROUTING_ENGINES

    for name in ROUTING_ENGINES:
        args = build_parser().parse_args(["up", "ft2-36", "--routing", name])
        assert args.routing == name
