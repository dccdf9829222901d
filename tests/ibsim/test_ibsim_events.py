"""Subscriptions, Reports and alias GUIDs on ibsim, against real saquery and OpenSM.

Our SM+SA run as `ibmig sm --ibsim` on ft2-36; subscribers are `SaClient`s (pure
Python ibsim clients with their own QP, so that Reports reach them). ibsim's
console takes links down and up (`Unlink`/`ReLink`), which makes its switches send
trap 128. The baseline runs OpenSM on the same file: moving an alias GUID from one
port to another (GUIDInfoRecord Delete, then Set) raises no notice at all there,
and exactly one path-change notice (trap 69) per subscriber with ours.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ibmig.fabric import Fabric
from ibmig.ibsim.client import IbsimClient
from ibmig.ibsim.harness import Harness, IbmigSm, Ibsim
from ibmig.ibsim.sa_client import SaClient
from ibmig.wire.notice import GidDetails, LinkStateChangeDetails, PathChangeDetails, TrapNumber
from ibmig.wire.sa import GUIDInfoRecord, PathRecord
from tests.helpers import gid

pytestmark = pytest.mark.interop

PREFIX = (0xFE80_0000_0000_0000).to_bytes(8, "big")
VGUID = 0x0002_C900_00AB_CDEF
QUIET_S = 1.5  # how long we listen for notices that must not come


@dataclass
class Setup:
    harness: Harness
    sim: Ibsim
    fabric: Fabric
    sm: IbmigSm | None

    def client(self, node: str, qp: int) -> SaClient:
        return SaClient(sockname=self.sim.sockname, node=node, qp=qp)

    def port_guid(self, node: str) -> int:
        index = self.fabric.node_by_name(node).index
        return self.fabric.port(index, 1).port_guid

    def saquery(self, *argv: str) -> str:
        return self.harness.tool(self.sim, ["saquery", *argv], node="h3_8").stdout


@pytest.fixture
def ours(ibsim_tools: None, net_file: Callable[[str], Path]) -> Iterator[Setup]:
    with Harness() as harness:
        sim = harness.start_ibsim(net_file("ft2-36"))
        # Someone holds ibsim's slot 0, so that our SM gets slot 1: ibsim writes the
        # slot into the top 16 bits of every request's TID, Reports included, and
        # the ReportResps must still match.
        with IbsimClient(sockname=sim.sockname, node="h3_7"):
            sm = harness.start_ibmig_sm(sim)
            sm.wait_up(120)
            assert "client 1 at node 'h0_0'" in sm.output()
            yield Setup(harness, sim, sim.fabric, sm)
            assert sm.stop() == 0, sm.output()


@pytest.fixture
def opensm(ibsim_tools: None, net_file: Callable[[str], Path]) -> Iterator[Setup]:
    with Harness() as harness:
        sim = harness.start_ibsim(net_file("ft2-36"))
        harness.start_opensm(sim).wait_up(120)
        yield Setup(harness, sim, sim.fabric, None)


def test_informinfo_record_lists_our_subscriptions(ours: Setup) -> None:
    with ours.client("h1_3", 7) as one, ours.client("h2_2", 9) as two:
        assert one.subscribe(TrapNumber.GID_IN_SERVICE).status == 0
        assert two.subscribe().status == 0
        text = ours.saquery("-I")
    subscribers = re.findall(r"SubscriberGID\.+(\S+)", text)
    traps = re.findall(r"trap_num\.+(\d+)", text)
    expected = [str(ipaddress.IPv6Address(gid(ours.port_guid(n)))) for n in ("h1_3", "h2_2")]
    assert sorted(subscribers) == sorted(expected), text
    assert sorted(traps) == ["64", "65535"], text


def test_guid_info_record_shows_an_alias_guid_ibsim_cannot_hold(ours: Setup) -> None:
    with ours.client("h1_3", 7) as client:
        lid = client.lid
        answer = client.set_guid_info(lid, 0, {1: VGUID})
        assert answer.status == 0
        record = answer.record()
        assert isinstance(record, GUIDInfoRecord)
        assert record.guid_info.guids[:2] == (ours.port_guid("h1_3"), VGUID)
        # Our SA answers a Get from its own table...
        got = client.get_guid_info(lid, 0).record()
        assert isinstance(got, GUIDInfoRecord) and got.guid_info.guids[1] == VGUID
    # ...and so does it for the real saquery; ibsim's port itself still holds GUID0 only.
    text = ours.saquery("GIR", str(lid))
    assert re.search(r"Block\.+0\s+GUID 0\.+0x0*100019\s+GUID 1\.+0x0002c90000abcdef", text), text
    assert ours.sm is not None
    assert "kept in the SM's database" in ours.sm.wait_for(
        r"^SMP failed: attribute 0x0014.*$"
    ).group(0)


def test_link_down_and_up_reach_subscribers_who_acknowledge(ours: Setup) -> None:
    assert ours.sm is not None
    gone = gid(ours.port_guid("h0_3"))
    with ours.client("h1_3", 7) as one, ours.client("h2_2", 9) as two:
        for client in (one, two):
            assert client.subscribe().status == 0  # every trap
        start = len(ours.sm.output())
        ours.sim.console('Unlink "h0_3"[1]')
        ours.sm.wait_for(r"^SUBNET UP sweep 2 \(light\)", start=start)
        ours.sim.console('ReLink "h0_3"[1]')
        ours.sm.wait_for(r"^SUBNET UP sweep 3 \(light\)", start=start)
        for client in (one, two):
            reports = client.wait_reports(4, timeout_s=10)
            numbers = [r.notice.trap_number for r in reports]
            assert numbers.count(TrapNumber.LINK_STATE_CHANGE) == 2, numbers
            assert numbers.count(TrapNumber.GID_OUT_OF_SERVICE) == 1, numbers
            assert numbers.count(TrapNumber.GID_IN_SERVICE) == 1, numbers
            # Down before up; the GID is the one that left and came back.
            assert numbers.index(TrapNumber.GID_OUT_OF_SERVICE) < numbers.index(
                TrapNumber.GID_IN_SERVICE
            )
            for report in reports:
                notice = report.notice
                if notice.trap_number in (64, 65):
                    assert isinstance(notice.details, GidDetails)
                    assert notice.details.gid == gone
                else:
                    assert isinstance(notice.details, LinkStateChangeDetails)
                    assert notice.issuer_lid == notice.details.lid  # leaf0 itself
        # Every Report was acknowledged with a ReportResp (the SA logs each one).
        deadline = time.monotonic() + 10
        while True:
            output = ours.sm.output()[start:]
            acked = len(re.findall(r"^ReportResp trap", output, re.MULTILINE))
            if acked >= 8 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert len(re.findall(r"^Report trap", output, re.MULTILINE)) == 8, output
    assert acked == 8, output
    assert "no ReportResp" not in output


def _move_alias(setup: Setup, first: SaClient, second: SaClient) -> None:
    """Put VGUID on `first`'s port, delete it there, put it on `second`'s port."""
    a, b = first.lid, second.lid
    assert first.set_guid_info(a, 0, {1: VGUID}).status == 0
    assert first.delete_guid_info(a, 0, [1]).status == 0
    assert second.set_guid_info(b, 0, {1: VGUID}).status == 0


def test_moving_an_alias_guid_gives_one_path_change_notice_per_subscriber(ours: Setup) -> None:
    with ours.client("h1_3", 7) as one, ours.client("h2_2", 9) as two:
        for client in (one, two):
            assert client.subscribe().status == 0
        old_lid, new_lid = one.lid, two.lid
        _move_alias(ours, one, two)
        for client in (one, two):
            client.wait_reports(1, trap_number=TrapNumber.REPATH)
            client.poll(QUIET_S)  # anything more would be a duplicate
            # One Report transaction each: the SA answers the Set before it reports
            # the move, so `two` (its Set answered) and `one` may each sit unpolled
            # past the SA's Report time-out while the other is checked, and get the
            # Report again with its TID -- the same notice, not a second one.
            notices = list({r.tid: r.notice for r in client.reports}.values())
            assert [n.trap_number for n in notices] == [TrapNumber.REPATH], notices
            details = notices[0].details
            assert isinstance(details, PathChangeDetails)
            assert details.vguid == VGUID and details.gid == gid(VGUID)
            assert (details.old_lid, details.new_lid) == (old_lid, new_lid)
            assert details.old_port_guid == ours.port_guid("h1_3")
            assert details.new_port_guid == ours.port_guid("h2_2")
            assert notices[0].issuer_lid == one.sm_lid
        # The vGUID now resolves to the new port, for any requester.
        path = one.path_record(gid(ours.port_guid("h1_3")), gid(VGUID)).record()
        assert isinstance(path, PathRecord)
        assert (path.slid, path.dlid, path.dgid) == (old_lid, new_lid, gid(VGUID))
    assert ours.sm is not None
    assert "path change: vGUID 0x0002c90000abcdef" in ours.sm.output()


def test_opensm_raises_no_notice_when_an_alias_guid_moves(opensm: Setup) -> None:
    with opensm.client("h1_3", 7) as one, opensm.client("h2_2", 9) as two:
        for client in (one, two):
            assert client.subscribe().status == 0
        _move_alias(opensm, one, two)
        # OpenSM took the alias (its SA lists it on the new port)...
        got = two.get_guid_info(two.lid, 0).record()
        assert isinstance(got, GUIDInfoRecord) and got.guid_info.guids[1] == VGUID
        for client in (one, two):
            client.poll(QUIET_S)
            assert client.reports == []
        # ...and its Reports do reach these subscribers: a link change does.
        opensm.sim.console('Unlink "h0_3"[1]')
        reports = one.wait_reports(1, trap_number=TrapNumber.LINK_STATE_CHANGE, timeout_s=10)
        assert reports, "OpenSM sent no Report at all"
        assert reports[0].slid == one.sm_lid


def test_a_switch_link_down_and_up_is_rerouted_and_brought_back(
    ibsim_tools: None, net_file: Callable[[str], Path]
) -> None:
    with Harness() as harness:
        sim = harness.start_ibsim(net_file("ft2-36"))
        dump = harness.dir / "state.json"
        sm = harness.start_ibmig_sm(sim, args=["--dump", str(dump)])
        sm.wait_up(120)
        start = len(sm.output())
        leaf0 = f"0x{sim.fabric.node_by_name('leaf0').node_guid:016x}"

        def check_routes() -> dict[str, Any]:
            state: dict[str, Any] = json.loads(dump.read_text())
            lid = next(p["lid"] for p in state["ports"] if p["node_guid"] == leaf0)
            text = harness.tool(sim, ["ibroute", str(lid)], node="h3_8").stdout
            shown = {
                int(dlid, 16): int(port)
                for dlid, port in re.findall(r"^(0x[0-9a-f]+) (\d+) :", text, re.MULTILINE)
            }
            lft = state["lfts"][leaf0]
            assert shown == {d: p for d, p in enumerate(lft) if d and p != 0xFF}
            state["leaf0_lid"] = lid
            return state

        sim.console('Unlink "leaf0"[10]')
        sm.wait_for(r"^SUBNET UP sweep 2 \(light\)", start=start)
        assert 10 not in check_routes()["lfts"][leaf0]
        sim.console('ReLink "leaf0"[10]')
        # leaf0 traps at once; spine0 too, once its route to the SM works again.
        sm.wait_for(r"^SUBNET UP sweep 4 \(light\)", start=start)
        state = check_routes()
        text = harness.tool(sim, ["smpquery", "portinfo", str(state["leaf0_lid"]), "10"]).stdout
        assert re.search(r"^LinkState:\.+Active$", text, re.MULTILINE), text
        assert "SMP failed" not in sm.output()[start:], sm.output()[start:]
        assert sm.stop() == 0
