"""`ibmig sm`: arguments, errors, and its life as a resident process on ibsim."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ibmig.cli.sm import add_parser, main, run_sm
from ibmig.ibsim.harness import Harness, Ibsim


def test_add_parser_gives_a_subcommand_with_its_handler() -> None:
    parser = argparse.ArgumentParser(prog="ibmig")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["sm", "--ibsim", "--node", "h0_1", "--routing", "updn"])
    assert args.handler is run_sm
    assert (args.ibsim, args.node, args.routing, args.sockname) == (True, "h0_1", "updn", None)
    assert args.max_outstanding == 4


def test_without_ibsim_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "give --ibsim" in capsys.readouterr().err


def test_no_ibsim_listening_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--ibsim", "--sockname", "ibmig-test-nobody-listens"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no ibsim listening on ibmig-test-nobody-listens:ctl" in err


def test_bad_window_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--ibsim", "--max-outstanding", "0"]) == 2
    assert "--max-outstanding: must be at least 1" in capsys.readouterr().err


def test_bad_packet_life_time_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--ibsim", "--packet-life-time", "64"]) == 2
    assert "--packet-life-time: must be 0..63" in capsys.readouterr().err
    assert main(["--ibsim", "--packet-life-time", "hop"]) == 2
    assert "--packet-life-time: must be 0..63 or 'hops', got 'hop'" in capsys.readouterr().err


def test_packet_life_time_choices_reach_the_sa() -> None:
    from ibmig.cli.sm import build_sa
    from ibmig.core.sa import SubnetAdministrator
    from tests.core.sa.sa_util import build_subnet

    def life(value: int | str | None) -> int | None:
        sa = build_sa(build_subnet(), 1, value)
        assert isinstance(sa, SubnetAdministrator)
        return sa.config.packet_life_time

    assert (life(None), life("hops"), life(12)) == (18, None, 12)


def test_notice_and_targeted_reach_the_sa() -> None:
    from ibmig.cli.sm import build_sa
    from ibmig.core.sa import SubnetAdministrator
    from tests.core.sa.sa_util import build_subnet

    parser = argparse.ArgumentParser(prog="ibmig")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["sm", "--ibsim", "--notice", "trap69-path", "--targeted"])
    sa = build_sa(build_subnet(), 1, "hops", notice=args.notice, targeted=args.targeted)
    assert isinstance(sa, SubnetAdministrator)
    config = sa.config
    assert (config.path_change_notice, config.targeted_reports) == ("trap69-path", True)
    assert config.packet_life_time is None
    default = parser.parse_args(["sm", "--ibsim"])
    sa = build_sa(build_subnet(), 1, None, notice=default.notice, targeted=default.targeted)
    assert isinstance(sa, SubnetAdministrator)
    assert (sa.config.path_change_notice, sa.config.targeted_reports) == ("trap69", False)


@pytest.fixture
def sim(ibsim_tools: None, net_file: Callable[[str], Path]) -> Iterator[tuple[Harness, Ibsim]]:
    with Harness() as harness:
        yield harness, harness.start_ibsim(net_file("ft2-36"))


@pytest.mark.interop
def test_sigint_exits_cleanly_after_subnet_up(sim: tuple[Harness, Ibsim]) -> None:
    harness, ibsim = sim
    sm = harness.start_ibmig_sm(ibsim, node="h2_1", args=["--routing", "updn"])
    sm.wait_up(120)
    assert "client 0 at node 'h2_1' port 1" in sm.output()
    sm.proc.send_signal(signal.SIGINT)
    assert sm.proc.wait(10) == 0
    assert sm.output().rstrip().endswith("ibmig sm: SIGINT, exiting")
    # The slot and the SM role on h2_1 are free again: a second SM may attach there.
    again = harness.start_ibmig_sm(ibsim, node="h2_1", args=["--exit-after-up"])
    assert again.proc.wait(60) == 0, again.output()
    # The fabric was up already: the second SM keeps the LIDs and only reads.
    match = re.search(r"^SUBNET UP sweep 1 \(heavy\): (\d+) SMPs", again.output(), re.M)
    assert match is not None, again.output()


@pytest.mark.interop
def test_a_second_sm_on_the_same_node_is_refused(sim: tuple[Harness, Ibsim]) -> None:
    harness, ibsim = sim
    first = harness.start_ibmig_sm(ibsim)
    first.wait_up(120)
    second = subprocess.run(
        [sys.executable, "-m", "ibmig.cli.sm", "--ibsim", "--sockname", ibsim.sockname],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=harness_env(),
    )
    assert second.returncode == 2
    assert "refused CONNECT at node 'h0_0'" in second.stderr
    assert first.stop() == 0


def harness_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@pytest.mark.interop
def test_ibsim_dying_after_subnet_up_ends_the_sm(sim: tuple[Harness, Ibsim]) -> None:
    """Issue 13: `ibmig sm` went on silently, idle, once ibsim had died."""
    harness, ibsim = sim
    sm = harness.start_ibmig_sm(ibsim)
    sm.wait_up(120)
    ibsim.proc.kill()
    ibsim.proc.wait(10)
    status = sm.proc.wait(30)  # before: never returned
    assert status == 2
    last = sm.output().rstrip().splitlines()[-1]
    assert "ibsim on" in last and "is gone" in last, sm.output()
