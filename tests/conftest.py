"""Shared fixtures.

`tshark`: the path of Wireshark's tshark, the independent decoder wire tests
check their bytes against (helpers in tests/wire/tshark_util.py). Without
tshark the test is skipped, except under CI=true, where it fails: CI must not
silently lose the interoperability checks (the rule is `tests.helpers.missing_tools`).
"""

from __future__ import annotations

import pytest

from tests.wire.tshark_util import require_tshark


@pytest.fixture(scope="session")
def tshark() -> str:
    return require_tshark()
