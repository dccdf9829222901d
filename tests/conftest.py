"""Shared fixtures.

`tshark`: the path of Wireshark's tshark, the independent decoder wire tests
check their bytes against (helpers in tests/wire/tshark_util.py). Without
tshark the test is skipped, except under CI=true, where it fails: CI must not
silently lose the interoperability checks.
"""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(scope="session")
def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tshark is not installed but CI=true: install it (apt-get install tshark)")
        pytest.skip("tshark is not installed")
    return path
