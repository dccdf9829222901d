"""Sweeps on Dask (issue 14): a real `dask scheduler` and two `dask worker` processes on
loopback run a grid through `ibmig sweep --scheduler`, with the local pool's CSV byte
for byte; a failing point is reported the same way by every backend.

The `ibmig` commands run as subprocesses of this interpreter, as a user runs them
(Dask's client threads and logging stay out of pytest's process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from ibmig.cli import main
from ibmig.experiments.sweep import Done, PointFailure, PointsFailed

P = TypeVar("P")
R = TypeVar("R")

HANG_GUARD_S = 300
"""Generous limit on any one command or start-up: a guard against a hang, not a budget."""

SCENARIO = (
    '[topology]\nfile = "ft2-36"\n[hosts]\nn = 3\nm = 1\nvfs = 2\n'
    "[workload]\npeers = 0\n"
    '[signalling]\nassignment = "static"\n'
    "[[migrations]]\nvm = 0\nat_ms = 1\n"
    "[run]\nduration_ms = 2000\n"
    "[timing.migration]\nmemory_bytes = 8388608\n"
)
GRID = ["--param", "n=2,3", "--param", "strategy=per-vm,per-host"]
# An SA that takes 100 s per query: the VMs' alias GUIDs are never registered within
# the run, so the point fails while running (it validates: the SM's SMPs are in time).
FAILING = "latency.sa_ns=5000,100000000000"
FAILING_GRID = ["--param", "n=2,3", "--param", FAILING]


def dask_cli() -> Path:
    path = Path(sys.executable).parent / "dask"
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("the dask command is missing: CI installs ibmig[test], which has it")
        pytest.skip("the dask command is missing (pip install 'dask[distributed]')")
    return path


def ibmig(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from ibmig.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=cwd, capture_output=True, text=True, timeout=HANG_GUARD_S, check=False,
    )  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a `dask scheduler` on a free loopback port with two single-threaded
    `dask worker` processes attached; all three stopped afterwards by their pids."""
    dask = dask_cli()
    work = tmp_path_factory.mktemp("dask")
    info = work / "scheduler.json"
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *argv: str) -> None:
        log = (work / f"{name}.log").open("wb")
        processes.append(
            subprocess.Popen([str(dask), *argv], cwd=work, stdout=log, stderr=subprocess.STDOUT)
        )
        log.close()

    def wait_for(what: str, ready: object) -> None:
        deadline = time.monotonic() + HANG_GUARD_S
        while not callable(ready) or not ready():
            dead = [p.args for p in processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(p.read_text() for p in sorted(work.glob("*.log")))
                pytest.fail(f"{what} did not happen (exited: {dead}):\n{logs}")
            time.sleep(0.1)

    try:
        start(
            "scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0",
            "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(info),
        )  # fmt: skip
        wait_for("the scheduler's start", lambda: info.exists() and info.stat().st_size > 0)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for i in range(2):
            start(
                f"worker{i}", "worker", address, "--host", "127.0.0.1", "--name", f"w{i}",
                "--nthreads", "1", "--no-nanny", "--no-dashboard",
                "--local-directory", str(work / f"w{i}"),
            )  # fmt: skip
        # The scheduler writes each worker's registration into its log.
        wait_for(
            "two workers registering",
            lambda: (work / "scheduler.log").read_text().count("Register worker") >= 2,
        )
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)


@pytest.fixture()
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    return path


@pytest.mark.slow
def test_a_grid_on_a_dask_cluster_writes_the_local_pools_csv(
    scheduler: str, scenario: Path, tmp_path: Path
) -> None:
    local = ibmig("sweep", str(scenario), *GRID, "--out", "local.csv", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    dask = ibmig(
        "sweep", str(scenario), *GRID, "--out", "dask.csv", "--scheduler", scheduler, cwd=tmp_path
    )
    assert dask.returncode == 0, dask.stderr
    assert "4 runs written to dask.csv" in dask.stdout
    expected = (tmp_path / "local.csv").read_bytes()
    assert expected.count(b"\n") == 5  # a header and four rows
    assert (tmp_path / "dask.csv").read_bytes() == expected


# Two set-ups (n), three points on each: what varies comes after the set-up.
SHARED_GRID = [
    "--param",
    "n=2,3",
    "--param",
    "timing.migration.memory_bytes=4194304,8388608,16777216",
]


@pytest.mark.slow
def test_a_grid_sharing_set_ups_on_a_dask_cluster_writes_the_local_pools_csv(
    scheduler: str, scenario: Path, tmp_path: Path
) -> None:
    local = ibmig("sweep", str(scenario), *SHARED_GRID, "--out", "local.csv", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    dask = ibmig(
        "sweep", str(scenario), *SHARED_GRID, "--out", "dask.csv", "--scheduler", scheduler,
        "--reuse-set-up", cwd=tmp_path,
    )  # fmt: skip
    assert dask.returncode == 0, dask.stderr
    assert "6 runs written to dask.csv" in dask.stdout
    expected = (tmp_path / "local.csv").read_bytes()
    assert expected.count(b"\n") == 7
    assert (tmp_path / "dask.csv").read_bytes() == expected


def _failure_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ibmig: ")]


@pytest.mark.slow
def test_a_failing_point_on_dask_is_reported_as_the_local_pool_reports_it(
    scheduler: str, scenario: Path, tmp_path: Path
) -> None:
    runs = {}
    for name, extra in (("local", []), ("dask", ["--scheduler", scheduler])):
        argv = ["sweep", str(scenario), *FAILING_GRID, "--out", f"{name}.csv", *extra]
        runs[name] = ibmig(*argv, cwd=tmp_path)
    local, dask = runs["local"], runs["dask"]
    assert local.returncode == dask.returncode == 1
    assert "2 runs written" in dask.stdout
    lines = _failure_lines(dask.stderr)
    assert lines == _failure_lines(local.stderr)
    assert len(lines) == 3, dask.stderr  # one per failed point, then the summary
    assert lines[0].startswith("ibmig: sweep: point n=2,latency.sa_ns=100000000000 failed: ")
    assert "VMs never came up" in lines[0]
    assert lines[-1] == (
        "ibmig: error: 2 of 4 points failed: "
        "n=2,latency.sa_ns=100000000000; n=3,latency.sa_ns=100000000000"
    )
    rows = (tmp_path / "dask.csv").read_bytes()
    assert rows == (tmp_path / "local.csv").read_bytes()
    assert rows.count(b"\n") == 3 and rows.count(b"\n2,5000,") == 1


def test_a_failing_point_in_the_local_pool_writes_the_others(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "grid.csv"
    assert main(["sweep", str(scenario), *FAILING_GRID, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "2 runs written" in captured.out
    errors = captured.err.strip().splitlines()
    assert len(errors) == 3
    assert errors[1].startswith("ibmig: sweep: point n=3,latency.sa_ns=100000000000 failed: ")
    assert errors[2].endswith("n=2,latency.sa_ns=100000000000; n=3,latency.sa_ns=100000000000")
    lines = out.read_text().splitlines()
    assert [line.split(",")[:2] for line in lines[1:]] == [["2", "5000"], ["3", "5000"]]


@pytest.mark.slow
def test_a_local_dask_cluster_writes_the_local_pools_csv(scenario: Path, tmp_path: Path) -> None:
    dask_cli()
    grid = ["--param", "n=2,3"]
    local = ibmig("sweep", str(scenario), *grid, "--out", "local.csv", cwd=tmp_path)
    dask = ibmig("sweep", str(scenario), *grid, "--out", "dask.csv", "--cluster", "local",
                 cwd=tmp_path)  # fmt: skip
    assert local.returncode == 0 and dask.returncode == 0, dask.stderr
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


@pytest.mark.parametrize("option", [["--cluster", "local"], ["--scheduler", "tcp://x:1"]])
def test_without_dask_installed_the_error_names_the_package(
    option: list[str],
    scenario: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    out = tmp_path / "grid.csv"
    assert main(["sweep", str(scenario), "--param", "n=2", "--out", str(out), *option]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"ibmig: error: {option[0]}")
    assert "pip install 'dask[distributed]'" in line
    assert not out.exists()


def test_scheduler_and_cluster_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["sweep", "s.toml", "--param", "n=2", "--scheduler", "tcp://x:1",
              "--cluster", "local"])  # fmt: skip
    assert caught.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


class _FirstPointFails:
    """A backend whose first point fails and whose others never run."""

    def map(self, job: Callable[[P], R], points: Sequence[P], done: Done | None = None) -> list[R]:
        raise PointsFailed([None] * len(points), [PointFailure(0, "Boom: x")])


def test_reproduce_names_a_failed_run_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ibmig.cli.reproduce import reproduce_command
    from ibmig.experiments.reproduction import points

    first = points(quick=True)[0][1].source
    code = reproduce_command(
        str(tmp_path / "r"), as_json=False, out=sys.stdout, quick=True, backend=_FirstPointFails()
    )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"ibmig: reproduce: point {first} failed: Boom: x"
    assert err[-1].startswith("ibmig: error: 1 of ")
    assert not (tmp_path / "r" / "report.html").exists()


@pytest.mark.parametrize("address", ["nonsense", "tcp://host", "", "tcp://a b:1"])
def test_a_malformed_scheduler_address_is_one_error_line(
    address: str, scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Defect: Dask's client took 40 s to give up on "nonsense", then printed a traceback.
    argv = ["sweep", str(scenario), "--param", "n=2", "--out", str(tmp_path / "g.csv")]
    assert main([*argv, "--scheduler", address]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("ibmig: error: --scheduler: expected the scheduler's address")


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "10.0.0.1:8786", "tls://[::1]:1"])
def test_well_formed_scheduler_addresses_pass(address: str) -> None:
    from ibmig.cli.backends import ADDRESS

    assert ADDRESS.fullmatch(address)
