"""Fixtures for the ibsim interop tests.

`ibsim_tools`: ibsim, libumad2sim.so, OpenSM and the infiniband-diags tools the
tests drive. Without them a test is skipped, except under CI=true, where it fails:
CI must not silently lose the interoperability checks.

`net_file(name)`: a topology from ../shared/topologies, or the same fabric written
from ibmig's built-in preset of that name when the shared folder is absent.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ibmig.fabric import PRESETS, preset, write_net
from ibmig.ibsim.harness import missing_tools
from tests.shared_files import TOPOLOGIES


@pytest.fixture(scope="session")
def ibsim_tools() -> None:
    missing = missing_tools()
    if missing:
        message = f"ibsim interop tools missing: {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"{message} but CI=true: install ibsim-utils libumad2sim0 opensm infiniband-diags"
            )
        pytest.skip(message)


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
