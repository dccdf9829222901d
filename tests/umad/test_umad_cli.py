"""`ibmig sm --umad`: arguments and errors, without ibsim."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ibmig.cli.sm import main


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("LD_PRELOAD", None)
    return env


@pytest.mark.skipif(
    Path("/sys/class/infiniband_mad").exists(), reason="this machine has a real umad interface"
)
def test_without_a_umad_interface_is_one_clear_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ibmig.cli", "sm", "--umad"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "no user MAD interface (/sys/class/infiniband_mad/abi_version" in result.stderr


def test_umad_and_ibsim_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--umad", "--ibsim"]) == 2
    assert "--umad: give one of --ibsim and --umad" in capsys.readouterr().err
