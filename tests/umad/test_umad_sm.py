"""`ibmig sm --umad` on ibsim through libumad2sim.so: the same interop checks as
`ibmig sm --ibsim`, on the code path a real /dev/infiniband/umad device takes.

The SM runs as a child process under `LD_PRELOAD=libumad2sim.so` with `SIM_HOST`
set, exactly as OpenSM and the diags run on ibsim. The checks are those of
tests/ibsim, imported here so that they run against this module's fixtures:
`ibnetdiscover`, `smpquery`, `ibroute`, `ibtracert`, `saquery` and `sminfo` on the
fabric it brought up (test_ibsim_fabric), and subscriptions, Reports with their
ReportResps, traps from ibsim's console and alias GUIDs (test_ibsim_events). Then
`osmtest -f e` and the process's life: a clean exit on SIGINT that frees the port's
SM role, clear errors without a device or without ibsim.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ibmig.ibsim.client import IbsimClient
from ibmig.ibsim.harness import Harness, Ibsim, find_umad2sim
from tests.ibsim.test_ibsim_events import (
    Setup,
    test_guid_info_record_shows_an_alias_guid_ibsim_cannot_hold,
    test_informinfo_record_lists_our_subscriptions,
    test_link_down_and_up_reach_subscribers_who_acknowledge,
    test_moving_an_alias_guid_gives_one_path_change_notice_per_subscriber,
)
from tests.ibsim.test_ibsim_fabric import (
    UP_LINE,
    UpFabric,
    test_every_ca_port_is_active_with_the_lid_our_sm_assigned,
    test_ibnetdiscover_sees_the_whole_fabric,
    test_ibroute_shows_our_lfts_on_every_switch,
    test_ibtracert_and_pathrecord_agree_with_our_routes,
    test_saquery_node_record_by_lid,
    test_sminfo_reads_our_sm,
    test_subnet_up_counts_every_node_and_end_port,
)

IMPORTED = [
    test_subnet_up_counts_every_node_and_end_port,
    test_ibnetdiscover_sees_the_whole_fabric,
    test_every_ca_port_is_active_with_the_lid_our_sm_assigned,
    test_ibroute_shows_our_lfts_on_every_switch,
    test_ibtracert_and_pathrecord_agree_with_our_routes,
    test_saquery_node_record_by_lid,
    test_sminfo_reads_our_sm,
    test_informinfo_record_lists_our_subscriptions,
    test_guid_info_record_shows_an_alias_guid_ibsim_cannot_hold,
    test_link_down_and_up_reach_subscribers_who_acknowledge,
    test_moving_an_alias_guid_gives_one_path_change_notice_per_subscriber,
]
TOPOLOGIES = ["ft2-36", "ft3-32"]

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module", params=TOPOLOGIES)
def up(
    request: pytest.FixtureRequest, ibsim_tools: None, net_file: Callable[[str], Path]
) -> Iterator[UpFabric]:
    with Harness() as harness:
        sim = harness.start_ibsim(net_file(request.param))
        dump_path = harness.dir / "state.json"
        # Hop-based PacketLifeTime (not OpenSM's fixed 18): the PathRecords the
        # route test reads show the hop counts.
        sm = harness.start_ibmig_sm_umad(
            sim, args=["--dump", str(dump_path), "--packet-life-time", "hops"]
        )
        sm.wait_up(300)
        match = UP_LINE.search(sm.output())
        assert match is not None, sm.output()
        assert "ibmig sm: umad /dev/infiniband/umad0 (ibsim0 port 1, libumad2sim.so)" in (
            sm.output()
        )
        dump = json.loads(dump_path.read_text())
        lids = {int(p["port_guid"], 16): p["lid"] for p in dump["ports"]}
        yield UpFabric(harness, sim, sm, sim.fabric, match, dump, lids)
        assert sm.stop() == 0, sm.output()
        assert "SIGTERM, exiting" in sm.output()


@pytest.fixture
def ours(ibsim_tools: None, net_file: Callable[[str], Path]) -> Iterator[Setup]:
    with Harness() as harness:
        sim = harness.start_ibsim(net_file("ft2-36"))
        # Someone holds ibsim's slot 0, so that our SM is slot 1: ibsim writes the slot
        # into the top 16 bits of every request's TID, umad2sim its agent id into bits
        # 32-47, and the answers must still match what the engines sent.
        with IbsimClient(sockname=sim.sockname, node="h3_7"):
            sm = harness.start_ibmig_sm_umad(sim)
            sm.wait_up(120)
            yield Setup(harness, sim, sim.fabric, sm)
            assert sm.stop() == 0, sm.output()


@pytest.fixture
def sim(ibsim_tools: None, net_file: Callable[[str], Path]) -> Iterator[tuple[Harness, Ibsim]]:
    with Harness() as harness:
        yield harness, harness.start_ibsim(net_file("ft2-36"))


def test_the_imported_checks_are_collected_here() -> None:
    # pytest collects the functions imported above as tests of this module, with this
    # module's fixtures; a rename upstream must not silently drop one.
    module = sys.modules[__name__]
    for check in IMPORTED:
        assert getattr(module, check.__name__) is check


def test_osmtest_event_forwarding_flow_passes(up: UpFabric) -> None:
    result = up.harness.tool(
        up.sim, ["osmtest", "-f", "e"], node=up.fabric.cas[-1].name, timeout_s=120
    )
    assert 'OSMTEST: TEST "Event Forwarding" PASS' in result.stdout, result.stdout


def test_sigint_exits_cleanly_and_frees_the_sm_role(sim: tuple[Harness, Ibsim]) -> None:
    harness, ibsim = sim
    sm = harness.start_ibmig_sm_umad(ibsim, node="h2_1", args=["--routing", "updn"])
    sm.wait_up(120)
    assert "routing updn" in sm.output()
    sm.proc.send_signal(signal.SIGINT)
    assert sm.proc.wait(30) == 0
    assert sm.output().rstrip().endswith("ibmig sm: SIGINT, exiting")
    # The port's SM role is free again: a second SM there comes up, keeping the LIDs,
    # and answers SMInfo from elsewhere.
    again = harness.start_ibmig_sm_umad(ibsim, node="h2_1")
    again.wait_up(120)
    assert re.search(r"^SUBNET UP sweep 1 \(heavy\): (\d+) SMPs", again.output(), re.M)
    text = harness.tool(ibsim, ["sminfo"], node="h3_8").stdout
    fabric = ibsim.fabric
    guid = fabric.port(fabric.node_by_name("h2_1").index, 1).port_guid
    assert f"sm guid 0x{guid:x}," in text, text
    assert again.stop() == 0, again.output()


def test_ibsim_dying_after_subnet_up_ends_the_sm(sim: tuple[Harness, Ibsim]) -> None:
    """As `--ibsim` does: once ibsim has died the SM says so in one line and exits 2,
    instead of waiting on umad2sim for ever."""
    harness, ibsim = sim
    sm = harness.start_ibmig_sm_umad(ibsim)
    sm.wait_up(120)
    ibsim.proc.kill()
    ibsim.proc.wait(10)
    status = sm.proc.wait(30)  # before: never returned
    assert status == 2, sm.output()
    # umad2sim's own warnings (ibwarn) as the port closes come after ours.
    ours = [line for line in sm.output().splitlines() if not line.startswith("ibwarn:")]
    assert ours[-1].startswith("ibmig: error: ibsim on") and "is gone" in ours[-1], ours


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("LD_PRELOAD", None)
    return env


def test_preloaded_without_ibsim_is_one_clear_line_not_a_hang(
    ibsim_tools: None, tmp_path: Path
) -> None:
    shim = find_umad2sim()
    assert shim is not None
    env = _env()
    env["LD_PRELOAD"] = shim
    env["IBSIM_SOCKNAME"] = "ibmig-test-nobody-listens"
    result = subprocess.run(
        [sys.executable, "-m", "ibmig.cli", "sm", "--umad"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,  # umad2sim writes ./sys-<pid>/ there
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "libumad2sim.so is preloaded but no ibsim listens" in result.stderr


def test_a_ca_or_port_that_is_not_there_is_one_clear_line(
    sim: tuple[Harness, Ibsim], tmp_path: Path
) -> None:
    _harness, ibsim = sim
    env = ibsim.tool_env("h1_1")
    env.update({k: v for k, v in _env().items() if k == "PYTHONPATH"})
    for argv, wanted in (
        (["--ca", "mlx5_0"], "no umad device for mlx5_0 port any (have: ibsim0 port 1)"),
        (["--ca", "ibsim0", "--port", "2"], "no umad device for ibsim0 port 2 (have: ibsim0"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "ibmig.cli", "sm", "--umad", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,  # umad2sim writes ./sys-<pid>/ there
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert wanted in result.stderr, result.stderr
