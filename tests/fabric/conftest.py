"""Fixtures for the fabric tests.

`ibsim_run`: starts ibsim on a net file under a private socket name, runs
`ibnetdiscover` through the umad2sim shim against it, stops that ibsim, and
returns the discovered topology text. Without ibsim, ibnetdiscover or the shim
the test is skipped, except under CI=true, where it fails.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ibmig.ibsim.harness import find_umad2sim
from tests.helpers import missing_tools

_counter = itertools.count()


def _tools() -> tuple[str, str, str]:
    ibsim = shutil.which("ibsim") or (
        "/usr/sbin/ibsim" if Path("/usr/sbin/ibsim").is_file() else None
    )
    ibnetdiscover = shutil.which("ibnetdiscover") or (
        "/usr/sbin/ibnetdiscover" if Path("/usr/sbin/ibnetdiscover").is_file() else None
    )
    shim = find_umad2sim()
    if ibsim is None or ibnetdiscover is None or shim is None:
        missing = [
            name
            for name, path in (("ibsim", ibsim), ("ibnetdiscover", ibnetdiscover), ("shim", shim))
            if path is None
        ]
        missing_tools(f"not installed: {', '.join(missing)} (ibsim-utils, infiniband-diags)")
    return ibsim, ibnetdiscover, shim


@pytest.fixture
def ibsim_run(tmp_path: Path) -> Callable[[Path], str]:
    ibsim, ibnetdiscover, shim = _tools()

    def run(net: Path) -> str:
        sockname = f"ibmigfab{os.getpid()}n{next(_counter)}"
        env = dict(os.environ, IBSIM_SOCKNAME=sockname)
        log = tmp_path / f"{sockname}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [ibsim, "-s", "-n", str(net)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp_path,
            )
        try:
            deadline = time.monotonic() + 20
            while "Network simulator ready" not in log.read_text():
                if proc.poll() is not None:
                    pytest.fail(f"ibsim refused {net.name}:\n{log.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"ibsim did not start on {net.name}")
                time.sleep(0.05)
            result = subprocess.run(
                [ibnetdiscover],
                env=dict(env, LD_PRELOAD=shim),
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if result.returncode != 0:
                pytest.fail(f"ibnetdiscover failed ({result.returncode}):\n{result.stderr}")
            return result.stdout
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    return run
