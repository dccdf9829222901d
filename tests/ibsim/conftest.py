"""Fixtures for the ibsim interop tests.

`ibsim_tools`: ibsim, libumad2sim.so, OpenSM and the infiniband-diags tools the
tests drive. Without them a test is skipped, except under CI=true, where it fails:
CI must not silently lose the interoperability checks.

`net_file(name)`: a topology from ../shared/topologies, or the same fabric written
from ibmig's built-in preset of that name when the shared folder is absent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ibmig.fabric import PRESETS, preset, write_net
from ibmig.ibsim.harness import missing_tools
from tests.helpers import missing_tools as skip_or_fail
from tests.shared_files import TOPOLOGIES


@pytest.fixture(scope="session")
def ibsim_tools() -> None:
    missing = missing_tools()
    if missing:
        skip_or_fail(
            f"ibsim interop tools missing: {', '.join(missing)}"
            " (install ibsim-utils libumad2sim0 opensm infiniband-diags)"
        )


@pytest.fixture(scope="session")
def net_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    made: dict[str, Path] = {}

    def find(name: str) -> Path:
        path = TOPOLOGIES / f"{name}.net"
        if path.exists():
            return path
        if name not in PRESETS:
            pytest.skip(f"{path} not present and no preset named {name}")
        if name not in made:
            target = tmp_path_factory.mktemp("topologies") / f"{name}.net"
            write_net(preset(name), target)
            made[name] = target
        return made[name]

    return find
