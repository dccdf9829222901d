"""`ibmig dom0`, `ibmig guest` and `ibmig lab` as commands: bad input is one line and
exit status 2; the lab prints its report and stops every process cleanly."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ibmig.cli import main
from ibmig.daemons.log import read_log


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["guest", "--channel", "x", "--vm", "vm0", "--ip", "10.0.0.300"], "--ip"),
        (
            ["guest", "--channel", "x", "--vm", "vm0", "--ip", "10.0.0.1", "--peer", "10.0.0.2"],
            "--peer: a GID is 32 hex digits",
        ),
        (
            ["guest", "--channel", "x", "--vm", "v", "--ip", "10.0.0.1", "--peer", "1.2.3.4=zz"],
            "--peer: expected IP=GID",
        ),
        (["lab", "--ibsim", "x.net"], "--ibsim x.net: no such net file"),
        (["lab", "--ibsim", __file__, "--n", "1"], "--n/--m: a migration needs n >= 2"),
        (["lab", "--ibsim", __file__, "--n", "10"], "--n: ibsim takes 10 clients"),
    ],
)
def test_bad_arguments_are_one_line_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], ibsim_tools: None
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ibmig: error: ") and message in err and err.count("\n") == 1


def test_dom0_without_a_umad_device_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    if os.path.exists("/sys/class/infiniband_mad/abi_version"):
        pytest.skip("this machine has a umad device")
    assert main(["dom0", "--umad", "--control", "/tmp/never.sock"]) == 2
    assert "no user MAD interface" in capsys.readouterr().err


@pytest.mark.interop
def test_the_lab_reports_and_stops_every_process_cleanly(
    ibsim_tools: None,
    net_file: Callable[[str], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    net = net_file("ft2-36")
    argv = ["lab", "--ibsim", str(net), "--strategy", "per-host", "--keep", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "== per-host: vm0 host0 -> host1" in out
    assert "Reports (trap 69) sent by the SA: 3 (simulator: 3); received by subscribers: 3" in out
    assert "  vm1: heard +" in out and "  vm2: heard +" in out
    assert "  dom0 host0: " in out and "  guest vm0: " in out
    # Each daemon and guest left on its SIGTERM, with its count of MADs sent.
    logs = sorted((tmp_path / "per-host").glob("*-*/*.out"))
    names = [p.name for p in logs if p.name.startswith(("dom0", "guest"))]
    assert sorted(names) == [
        "dom0-host0.out", "dom0-host1.out", "dom0-host2.out",
        "guest-vm0.out", "guest-vm1.out", "guest-vm2.out",
    ]  # fmt: skip
    for path in logs:
        if path.name.startswith(("dom0", "guest")):
            last = read_log(path)[-1]
            assert last["event"] == "exiting" and last["signal"] == "SIGTERM", path
            assert isinstance(last["sent"], dict) and last["sent"], json.dumps(last)
    sm_out = next((tmp_path / "per-host").glob("*-ibmig-sm-umad/sm.out")).read_text()
    assert "ibmig sm: SIGTERM, exiting" in sm_out
