"""Fixtures for the lab tests: the ibsim interop fixtures (`ibsim_tools`, which
fails rather than skips under CI=true, and `net_file`), shared with tests/ibsim."""

from __future__ import annotations

from tests.ibsim.conftest import ibsim_tools, net_file

__all__ = ["ibsim_tools", "net_file"]
