"""scripts/fuzz.py run briefly through its own entry point, as users run it: every
wire decoder gives a record or WireError, the topology and scenario readers a
Fabric/Scenario or ConfigError."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from ibmig.errors import WireError

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fuzz.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def test_fuzz_finds_nothing(tmp_path: Path) -> None:
    crashes = tmp_path / "crashes"
    result = run(
        "--engine", "random", "--iterations", "300", "--seed", "13", "--crash-dir", str(crashes)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    targets = run("--list").stdout.splitlines()
    assert len(targets) >= 20
    assert f"{300 * len(targets)} inputs over {len(targets)} targets" in result.stdout
    assert "0 findings" in result.stdout
    assert not crashes.exists()


def test_a_finding_is_printed_and_saved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An exception outside the target's rule is a finding: printed with its input in
    hex, saved under the crash directory; an allowed one is not."""
    spec = importlib.util.spec_from_file_location("fuzz_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    fuzz = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_script"] = fuzz
    spec.loader.exec_module(fuzz)

    def decoder(data: bytes) -> object:
        if data == b"\xab\xcd":
            raise IndexError("planted")
        raise WireError("malformed")

    findings = fuzz.Findings(tmp_path / "crashes")
    target = fuzz.Target("planted", decoder, (WireError,), ())
    findings.check(target, b"\x01")
    assert findings.count == 0 and not (tmp_path / "crashes").exists()
    findings.check(target, b"\xab\xcd")
    assert findings.count == 1
    out = capsys.readouterr().out
    assert "FINDING planted: IndexError: planted" in out and "abcd" in out
    [saved] = (tmp_path / "crashes").iterdir()
    assert saved.name.startswith("planted-") and saved.read_bytes() == b"\xab\xcd"


def test_bad_arguments_exit_2() -> None:
    result = run("--target", "no-such-decoder")
    assert result.returncode == 2
    assert "unknown target" in result.stderr
