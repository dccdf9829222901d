"""The README runs as written on a clean clone.

- Its "Other commands" block: every command line is run, in order, in a scratch
  folder holding what a clone has (`examples/`, `tests/data/topologies/`), and must
  exit 0 with the output it promises. `ibmig sm --ibsim --sockname NAME` is run
  against a real ibsim started under that NAME (an interop test).
- Its scenario example is `examples/lab.toml`, key for key.
- Its two set-up commands: the first half of each (the virtual environment and the
  install) is run in a copy of the repository with the machine's system Python first
  on PATH (Debian's /usr/bin/python3, which refuses `pip install` outside a venv).
  They download from the package index (or its cache) and take minutes: slow.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

from ibmig.experiments.scenario import scenario_from_dict
from tests.helpers import missing_tools

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def code_blocks(section: str) -> list[tuple[str, str]]:
    """(language, text) of each fenced block under the `## section` heading."""
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end >= 0 else len(text)]
    return re.findall(r"^```(\w*)\n(.*?)^```$", body, re.M | re.S)


def command_lines(block: str) -> list[str]:
    """The commands of a shell block: comment lines and trailing comments dropped."""
    out = []
    for line in block.splitlines():
        command = line.split(" #", 1)[0].strip()
        if command and not command.startswith("#"):
            out.append(command)
    return out


def ibmig_argv() -> list[str]:
    """`ibmig` as installed beside this interpreter (the venv's console script)."""
    script = Path(sys.executable).parent / "ibmig"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ibmig.cli"]


Check = Callable[[Path, str], None]


def _version(_: Path, out: str) -> None:
    assert out.strip() == f"ibmig {metadata.version('ibmig')}"


def _run(work: Path, out: str) -> None:
    assert "peer connections: vm3: " in out, out
    events = [json.loads(line) for line in (work / "lab.jsonl").read_text().splitlines()]
    assert any(e["event"] == "PhaseEntered" and e["node"] == "toolstack" for e in events)


def _sweep(work: Path, out: str) -> None:
    assert "9 runs written to grid.csv" in out
    with (work / "grid.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert {(r["param.n"], r["param.m"]) for r in rows} == {
        (n, m) for n in ("4", "16", "64") for m in ("1", "4", "16")
    }
    for row in rows:  # per-host signalling: n Reports per event, whatever m
        assert row["reports_per_event"] == row["param.n"], row


def _up_file(work: Path, out: str) -> None:
    assert "SUBNET UP" in out and "routing ftree" in out
    assert len(json.loads((work / "lfts.json").read_text())["switches"]) == 180


def _up_fail(work: Path, out: str) -> None:
    assert "SUBNET UP" in out and "link_down" in out
    assert (work / "up.pcap").stat().st_size > 0 and (work / "up.jsonl").stat().st_size > 0


def _path(_: Path, out: str) -> None:
    assert re.search(r"^  MTU +4096 bytes", out, re.M) and "100 Gb/s (4x EDR" in out
    assert out.rstrip().endswith("-> h3_8[1] (LID 43)")


def _plan(_: Path, out: str) -> None:
    # ft2-324: 323 hypervisors with 16 VMs: per-host n Reports, per-VM n*m.
    assert re.search(r"^per-host +323 +n = 323 ", out, re.M), out
    assert re.search(r"^per-vm +5,168 +n\*m = 5,168 ", out, re.M), out


def _decode(_: Path, out: str) -> None:
    assert out.startswith("packet 0 ") and "GET(NodeInfo)" in out


CHECKS: dict[str, Check] = {
    "ibmig --version": _version,
    "ibmig run examples/lab.toml": _run,
    "ibmig sweep examples/sweep.toml": _sweep,
    "ibmig up tests/data/topologies/ft3-1296.net": _up_file,
    "ibmig up ft2-36 --fail-link": _up_fail,
    "ibmig path ft2-36": _path,
    "ibmig decode up.pcap": _decode,
    "ibmig plan tests/data/topologies/ft2-324.net": _plan,
}
"""How each README command's output is judged, by the command's start."""

IBSIM_COMMAND = "ibmig sm --ibsim --sockname NAME"


def _check_for(command: str) -> Check:
    matches = [check for start, check in CHECKS.items() if command.startswith(start)]
    assert len(matches) == 1, f"README command without one check here: {command!r}"
    return matches[0]


def clone_like(tmp: Path, *folders: str) -> Path:
    """A scratch folder with the repository's `folders`, as a clone has them."""
    work = tmp / "clone"
    work.mkdir()
    for folder in folders:
        shutil.copytree(ROOT / folder, work / folder)
    return work


def other_commands() -> list[str]:
    blocks = [text for lang, text in code_blocks("Other commands") if lang == "sh"]
    assert len(blocks) == 1
    return command_lines(blocks[0])


@pytest.mark.slow
def test_every_other_command_runs_as_written(tmp_path: Path) -> None:
    work = clone_like(tmp_path, "examples", "tests/data/topologies")
    commands = [c for c in other_commands() if c != IBSIM_COMMAND]
    assert len(commands) == len(CHECKS), commands  # each check used once
    for command in commands:
        check = _check_for(command)
        argv = shlex.split(command)
        assert argv[0] == "ibmig"
        done = subprocess.run(
            ibmig_argv() + argv[1:], cwd=work, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stderr}"
        assert done.stderr == "", f"{command}: {done.stderr}"
        check(work, done.stdout)


@pytest.mark.interop
def test_the_ibsim_command_runs_as_written_against_a_running_ibsim(tmp_path: Path) -> None:
    from ibmig.fabric import preset, write_net
    from ibmig.ibsim.harness import Harness
    from ibmig.ibsim.harness import missing_tools as missing_ibsim_tools

    assert IBSIM_COMMAND in other_commands()
    missing = missing_ibsim_tools()
    if missing:
        missing_tools(f"ibsim interop tools missing: {', '.join(missing)}")
    net = tmp_path / "ft2-36.net"
    write_net(preset("ft2-36"), net)
    with Harness(tmp_path / "harness") as harness:
        ibsim = harness.start_ibsim(net)
        argv = shlex.split(IBSIM_COMMAND.replace("NAME", ibsim.sockname))
        log = tmp_path / "sm.log"
        with log.open("w") as stream:
            proc = subprocess.Popen(ibmig_argv() + argv[1:], stdout=stream, stderr=stream)
        try:
            # No wall-time limit: wait for the line, or for the process to end.
            while "SUBNET UP" not in log.read_text() and proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(0.2)
            assert proc.poll() is None, log.read_text()
            proc.send_signal(signal.SIGINT)
            assert proc.wait() == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert re.search(r"^SUBNET UP sweep 1 \(heavy\): \d+ SMPs", text, re.M), text
    assert text.rstrip().endswith("ibmig sm: SIGINT, exiting")


def test_the_scenario_example_is_examples_lab_toml() -> None:
    blocks = [text for lang, text in code_blocks("Other commands") if lang == "toml"]
    text, faults, partitions = blocks
    lab = tomllib.loads((ROOT / "examples" / "lab.toml").read_text())
    assert tomllib.loads(text) == lab
    # The faults block is a valid [faults] table for that scenario.
    scenario = scenario_from_dict({**lab, **tomllib.loads(faults)}, "README")
    assert scenario.faults
    # So is the partitions block.
    scenario = scenario_from_dict({**lab, **tomllib.loads(partitions)}, "README")
    assert scenario.partitions is not None
    assert "ibmig run examples/lab.toml --trace lab.jsonl" in other_commands()


def test_the_sweep_example_is_a_valid_scenario_for_its_largest_point() -> None:
    from ibmig.experiments.scenario import scenario_from_dict

    data = tomllib.loads((ROOT / "examples" / "sweep.toml").read_text())
    data["hosts"].update(n=64, m=16)
    scenario = scenario_from_dict(data, "examples/sweep.toml")
    assert scenario.hosts.vfs > 16


# --- the two set-up commands -----------------------------------------------------

SETUP_IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "__pycache__", ".mypy_cache", ".ruff_cache",
    ".pytest_cache", ".hypothesis", "build", "ibmig-report",
)  # fmt: skip


def setup_commands() -> tuple[str, str]:
    blocks = [text for lang, text in code_blocks("Set-up: two commands") if lang == "sh"]
    first, second = command_lines(blocks[0])
    return first, second


def system_python() -> Path:
    """Debian's python3 where there is one, else the Python this venv was made from."""
    debian = Path("/usr/bin/python3")
    if debian.exists():
        return debian
    base = Path(getattr(sys, "_base_executable", sys.executable))
    if not base.exists():
        missing_tools("no system Python to make a virtual environment from")
    return base


def system_env(python: Path, tmp: Path) -> dict[str, str]:
    """The environment of a shell where `python3` is the system Python (through a
    folder of its own first on PATH) and no venv is active."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    bindir = tmp / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(python)
    env["PATH"] = f"{bindir}:/usr/bin:/bin"
    return env


def _run_shell(command: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_the_first_setup_command_installs_into_a_fresh_venv(tmp_path: Path) -> None:
    first, _ = setup_commands()
    *install, last = [part.strip() for part in first.split("&&")]
    assert install[0] == "python3 -m venv .venv" and last == ".venv/bin/ibmig reproduce"
    python = system_python()
    clone = tmp_path / "clone"
    shutil.copytree(ROOT, clone, ignore=SETUP_IGNORED)
    env = system_env(python, tmp_path)
    _run_shell(" && ".join(install), clone, env)
    venv_python = clone / ".venv" / "bin" / "python"
    where = _run_shell(
        f"{venv_python} -c 'import ibmig, sys; print(ibmig.__file__); print(sys.base_prefix)'",
        tmp_path,
        env,
    ).split()
    assert Path(where[0]).is_relative_to(clone / ".venv")  # installed, not the source tree
    expected_prefix = _run_shell(f"{python} -c 'import sys; print(sys.base_prefix)'", clone, env)
    assert where[1] == expected_prefix.strip()
    assert _run_shell(".venv/bin/ibmig --version", clone, env).strip() == (
        f"ibmig {metadata.version('ibmig')}"
    )
    # The package data came along: `ibmig decode` shows the shipped sample capture.
    assert '"name": "NodeInfo"' in _run_shell(f"{clone}/.venv/bin/ibmig decode", tmp_path, env)


@pytest.mark.slow
def test_the_second_setup_command_makes_and_fills_its_venv(tmp_path: Path) -> None:
    _, second = setup_commands()
    assert second == "./scripts/test.sh"
    clone = tmp_path / "clone"
    shutil.copytree(ROOT, clone, ignore=SETUP_IGNORED)
    env = system_env(system_python(), tmp_path)
    # The command's first half: the same script, stopping after its installs.
    out = _run_shell(f"{second} --setup-only", clone, env)
    assert "== creating .venv with python3" in out
    venv = clone / ".venv" / "bin"
    for tool in ("ruff", "mypy", "pytest"):
        assert _run_shell(f"{venv / 'python'} -m {tool} --version", clone, env).strip()
    located = _run_shell(
        f"{venv / 'python'} -c 'import ibmig; print(ibmig.__file__)'", tmp_path, env
    )
    assert Path(located.strip()) == clone / "src" / "ibmig" / "__init__.py"  # editable
    # Run again, it keeps the venv it made.
    assert "creating" not in _run_shell(f"{second} --setup-only", clone, env)
