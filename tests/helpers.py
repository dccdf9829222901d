"""Helpers shared by tests in several packages.

`require_tools`: the CI rule for external tools. A test that needs a program
(tshark, ibsim, ibnetdiscover...) is skipped when it is missing, except under
CI=true, where it fails: CI must not silently lose an interoperability check.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def running_in_ci() -> bool:
    return os.environ.get("CI") == "true"


def missing_tools(message: str) -> NoReturn:
    """Skip the calling test because of `message`, or fail it under CI=true."""
    if running_in_ci():
        pytest.fail(f"{message} but CI=true")
    pytest.skip(message)


def gid(guid: int, prefix: int = 0xFE80000000000000) -> bytes:
    """The GID of a port or vGUID: subnet prefix || GUID (IBA Vol 1, 4.1.1); the
    default prefix is the link-local one."""
    return prefix.to_bytes(8, "big") + guid.to_bytes(8, "big")
