"""SM roles on ibsim against OpenSM (IBA Vol 1, 14.4; issue 12, item 2): ibmig beside
a master OpenSM goes STANDBY and sets nothing; OpenSM beside a master ibmig of higher
priority goes STANDBY; killing the master lets the standby take over. Polling is
shortened on both sides (OpenSM: sminfo_polling_timeout, polling_retry_number in a
config file) so that a takeover takes seconds, not a minute."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ibmig.ibsim.harness import Harness, Ibsim, OpenSM

pytestmark = pytest.mark.interop

POLL = ["--polling-timeout", "0.5", "--polling-retries", "2"]
_SMINFO = re.compile(
    r"sm lid (\d+) sm guid 0x([0-9a-f]+), activity count (\d+) priority (\d+) state (\d) (\w+)"
)


@pytest.fixture
def sim(ibsim_tools: None, net_file: Callable[[str], Path]) -> Iterator[tuple[Harness, Ibsim]]:
    with Harness() as harness:
        yield harness, harness.start_ibsim(net_file("ft2-36"))


def sminfo_local(harness: Harness, ibsim: Ibsim, node: str) -> re.Match[str]:
    """SMInfo of the SM at `node`, read over the zero-hop directed route."""
    text = harness.tool(ibsim, ["sminfo", "-D", "0"], node=node).stdout
    match = _SMINFO.search(text)
    assert match is not None, text
    return match


def port_info(harness: Harness, ibsim: Ibsim, node: str) -> dict[str, str]:
    text = harness.tool(ibsim, ["smpquery", "-D", "portinfo", "0"], node=node).stdout
    return dict(re.findall(r"^(\w+):\.+(.*)$", text, re.MULTILINE))


def osm_log_wait(osm: OpenSM, text: str, timeout_s: float = 120.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        log = osm.log_path.read_text(errors="replace") if osm.log_path.exists() else ""
        if text in log:
            return log
        assert osm.proc.poll() is None, f"OpenSM exited before {text!r}"
        time.sleep(0.05)
    raise AssertionError(f"OpenSM logged no {text!r} in {timeout_s} s")


def test_ibmig_beside_a_master_opensm_is_standby_then_takes_over(
    sim: tuple[Harness, Ibsim],
) -> None:
    harness, ibsim = sim
    osm = harness.start_opensm(ibsim, node="h0_0", extra_args=["-p", "10"])
    osm.wait_up()
    before = port_info(harness, ibsim, "h3_1")
    sm = harness.start_ibmig_sm(ibsim, node="h3_1", args=[*POLL, "--priority", "0"])
    line = sm.wait_for(r"^SM state STANDBY \(master 0x([0-9a-f]+)\).*; \d+ SMPs sent, (\d+) Sets$")
    assert int(line.group(2)) == 0  # discovery reads only
    # OpenSM found us too (IsSM is set) and keeps its mastership.
    ours = sminfo_local(harness, ibsim, "h3_1")
    assert (ours.group(4), ours.group(6)) == ("0", "SMINFO_STANDBY")
    osm_info = sminfo_local(harness, ibsim, "h0_0")
    assert osm_info.group(6) == "SMINFO_MASTER" and osm_info.group(4) == "10"
    assert int(line.group(1), 16) == int(osm_info.group(2), 16)
    after = port_info(harness, ibsim, "h3_1")
    assert int(after["CapMask"], 16) & 0x2  # IsSM
    # The standby changed no port: ours keeps the LID and SM LID OpenSM gave it.
    assert (after["Lid"], after["SMLid"]) == (before["Lid"], before["SMLid"])
    # Polls only: a few polling periods later still no Set.
    time.sleep(1.5)
    assert "SUBNET UP" not in sm.output() and " Sets" in sm.output()
    # The master dies: the standby takes over and brings the subnet up.
    harness.stop(osm.proc)
    sm.wait_for(r"^SM state DISCOVERING: polling timeout", 60)
    sm.wait_for(r"^SM state MASTER: discovery completed", 60)
    sm.wait_up(120)
    ours = sminfo_local(harness, ibsim, "h3_1")
    assert ours.group(6) == "SMINFO_MASTER"
    assert port_info(harness, ibsim, "h0_1")["SMLid"] == after["Lid"]


def test_opensm_beside_a_master_ibmig_is_standby_then_takes_over(
    sim: tuple[Harness, Ibsim],
) -> None:
    harness, ibsim = sim
    sm = harness.start_ibmig_sm(ibsim, node="h0_0", args=["--priority", "10"])
    sm.wait_up(120)
    conf = harness.dir / "osm-polling.conf"
    conf.write_text("sminfo_polling_timeout 500\npolling_retry_number 2\n")
    osm = harness.start_opensm(ibsim, node="h3_1", extra_args=["-F", str(conf)])
    osm_log_wait(osm, "Entering STANDBY state")
    info = sminfo_local(harness, ibsim, "h3_1")
    assert info.group(6) == "SMINFO_STANDBY"
    ours = sminfo_local(harness, ibsim, "h0_0")
    assert (ours.group(4), ours.group(6)) == ("10", "SMINFO_MASTER")
    # OpenSM polls us and stays standby; it programmed nothing (MasterSMLID is ours).
    time.sleep(1.5)
    log = osm.log_path.read_text(errors="replace")
    assert "Entering MASTER state" not in log and "SUBNET UP" not in log
    assert port_info(harness, ibsim, "h1_1")["SMLid"] == port_info(harness, ibsim, "h0_0")["Lid"]
    # The master dies: OpenSM takes over.
    assert sm.stop() == 0
    osm_log_wait(osm, "Entering MASTER state", 60)
    osm.wait_up(120)
    assert sminfo_local(harness, ibsim, "h3_1").group(6) == "SMINFO_MASTER"
