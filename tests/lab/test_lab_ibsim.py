"""The mechanism as processes on ibsim (issue 15): ibmig's SM over umad, a dom0
daemon per host over umad (through libumad2sim.so), a guest agent per VM on its
dom0's channel; vm0 migrates with static assignment.

- per-host: the peers hear through their dom0, re-resolve vm0's path with the SA
  (the destination's LID) and complete a CM REQ/REP/RTU with vm0's GID there; the
  SA's Reports are what the simulator predicts for the same fabric, n and m;
- none: nobody hears, nobody re-resolves; the simulator predicts no Report either;
- per-vm: the guests subscribe themselves; Reports as the simulator predicts;
- targeted (`ibmig sm --targeted`): the SA tells only the hosts whose port resolved
  a PathRecord to vm0, fewer Reports than per-host, as the simulator predicts;
- per-host with the path-carrying notice (`--notice trap69-path`): dom0 forwards
  the new path's values and the peers reconnect on their updated cached path,
  without a PathRecord query;
- a dom0 killed (SIGKILL, by its pid) and started again subscribes again and
  rebuilds its table; a malformed message on its channel is answered with an
  error and logged, and it lives on.

Waits are generous and nothing asserts on wall time: the machine may be loaded.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ibmig.daemons.channel import FrameReader
from ibmig.daemons.lab import (
    MOVER,
    Control,
    Lab,
    Migration,
    migrate,
    simulated_reports,
    start_lab,
    vm_gid,
    vm_vguid,
)
from ibmig.ibsim.harness import Harness

pytestmark = pytest.mark.interop

TOPOLOGY = "ft2-36"
N, M = 3, 1
TIMEOUT_S = 120.0


def run(net: Path, strategy: str, notice: str = "trap69") -> Iterator[tuple[Lab, Migration]]:
    with Harness() as harness:
        lab = start_lab(harness, net, strategy, n=N, m=M, notice=notice, timeout_s=TIMEOUT_S)
        try:
            yield lab, migrate(lab, timeout_s=TIMEOUT_S)
        finally:
            for control in lab.controls:
                control.close()


@pytest.fixture(scope="module")
def per_host(ibsim_tools: None, net_file: Callable[[str], Path]) -> Iterator[tuple[Lab, Migration]]:
    yield from run(net_file(TOPOLOGY), "per-host")


@pytest.fixture(scope="module")
def none(ibsim_tools: None, net_file: Callable[[str], Path]) -> Iterator[tuple[Lab, Migration]]:
    yield from run(net_file(TOPOLOGY), "none")


def after(lab: Lab, vm: int, result: Migration, event: str) -> list[dict[str, object]]:
    records = lab.log(lab.guests[vm])
    return [r for r in records if r["event"] == event and float(r["t"]) >= result.started]


def test_per_host_peers_re_resolve_and_reconnect_to_the_migrated_gid(
    per_host: tuple[Lab, Migration],
) -> None:
    lab, result = per_host
    gid = vm_gid(MOVER).hex()
    assert lab.clients == [1, 2]
    assert sorted(result.heard) == ["vm1", "vm2"]
    for vm in lab.clients:
        [heard] = after(lab, vm, result, "PathChangeReceived")
        assert (heard["gid"], heard["new_lid"], heard["via"]) == (gid, result.dst_lid, "dom0")
        resolved = after(lab, vm, result, "PathResolved")
        assert [(r["gid"], r["lid"], r["via"]) for r in resolved] == [(gid, result.dst_lid, "sa")]
        up = after(lab, vm, result, "ConnectionUp")
        assert [(u["peer_gid"], u["peer_lid"], u["role"]) for u in up] == [
            (gid, result.dst_lid, "client")
        ]
    # The migrated VM accepted them at its new host, with its GID.
    served = after(lab, MOVER, result, "ConnectionUp")
    assert sorted(str(u["peer_gid"]) for u in served) == sorted(
        vm_gid(v).hex() for v in lab.clients
    )
    assert {u["local_gid"] for u in served} == {gid}


def test_per_host_reports_are_what_the_simulator_predicts(
    per_host: tuple[Lab, Migration], net_file: Callable[[str], Path]
) -> None:
    _lab, result = per_host
    predicted = simulated_reports(net_file(TOPOLOGY), "per-host", N, M)
    assert predicted == N  # one per subscribed host
    assert result.reports_sent == predicted
    assert result.reports_received == predicted


def test_per_host_the_dom0s_updated_their_tables(per_host: tuple[Lab, Migration]) -> None:
    lab, result = per_host
    key = f"{vm_vguid(MOVER):#018x}"
    for host, control in enumerate(lab.controls):
        status = control.must({"type": "status"})
        assert status["subscribed"] is True
        assert status["mapping"][key] == result.dst_lid, host


def test_a_malformed_channel_message_is_rejected_and_dom0_lives_on(
    per_host: tuple[Lab, Migration],
) -> None:
    lab, _result = per_host
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(lab.channels[1])
    sock.sendall(b"\x00\x00\x00\x07{oops!}")
    reader = FrameReader()
    messages: list[dict[str, object]] = []
    while not messages:
        data = sock.recv(65536)
        assert data, "closed without an answer"
        messages += reader.feed(data)
    assert messages[0]["type"] == "error"
    sock.close()
    logged = lab.wait(lab.dom0s[1], lambda r: r["event"] == "channel_error", TIMEOUT_S)
    assert logged is not None and "not JSON" in str(logged["error"])
    assert lab.dom0s[1].proc.poll() is None
    assert lab.control(1).must({"type": "status"})["lid"] > 0


def test_a_dom0_killed_and_restarted_subscribes_again_and_rebuilds_its_table(
    per_host: tuple[Lab, Migration],
) -> None:
    lab, result = per_host
    host = 2  # runs vm2, a client of vm0 (host1 took vm0 in)
    lid = lab.control(host).must({"type": "status"})["lid"]
    lab.controls[host].close()
    old = lab.dom0s[host]
    old.proc.send_signal(signal.SIGKILL)  # by its own pid: no clean exit
    old.proc.wait(30)
    lab.dom0s[host] = lab.start_dom0(host, TIMEOUT_S)
    lab.controls[host] = Control(lab.channels[host])
    # It subscribed again and the SA acknowledged it (the SA keeps one subscription
    # per port, LID, QP and InformInfo: the same one, replaced).
    new = lab.dom0s[host]
    subscribed = lab.wait(new, lambda r: r["event"] == "Subscribed", TIMEOUT_S)
    assert subscribed is not None and subscribed["trap_number"] == 69, new.output()[-2000:]
    # Its table holds its own VM again, its guest came back and registered its path.
    local = f"{vm_vguid(host):#018x}"
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        status = lab.control(host).must({"type": "status"})
        if (
            status["subscribed"]
            and status["mapping"].get(local) == lid
            and status["registrations"].get(f"vm{host}") == [vm_gid(MOVER).hex()]
        ):
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert status["vms"] == {f"vm{host}": True}
    assert lab.wait(lab.guests[host], lambda r: r["event"] == "dom0_restarted", TIMEOUT_S)
    assert result.reports_sent == N


def test_under_none_no_peer_hears_and_none_re_resolves(
    none: tuple[Lab, Migration], net_file: Callable[[str], Path]
) -> None:
    lab, result = none
    assert result.heard == {} and result.reconnected == {}
    for vm in lab.clients:
        assert after(lab, vm, result, "PathChangeReceived") == []
        assert after(lab, vm, result, "PathResolved") == []
        assert after(lab, vm, result, "ConnectionUp") == []
    assert result.reports_sent == 0 == simulated_reports(net_file(TOPOLOGY), "none", N, M)


def test_per_vm_reports_are_what_the_simulator_predicts(
    ibsim_tools: None, net_file: Callable[[str], Path]
) -> None:
    for lab, result in run(net_file(TOPOLOGY), "per-vm"):
        predicted = simulated_reports(net_file(TOPOLOGY), "per-vm", N, M)
        assert predicted == N * M
        assert result.reports_sent == predicted
        assert sorted(result.heard) == ["vm1", "vm2"]
        for vm in lab.clients:
            [heard] = after(lab, vm, result, "PathChangeReceived")
            assert heard["via"] == "report"  # its own subscription, not dom0
            up = after(lab, vm, result, "ConnectionUp")
            assert [u["peer_lid"] for u in up] == [result.dst_lid]


def test_targeted_reports_go_only_to_the_hosts_that_resolved_the_path(
    ibsim_tools: None, net_file: Callable[[str], Path]
) -> None:
    for lab, result in run(net_file(TOPOLOGY), "targeted"):
        # The clients vm1 and vm2 run on host1 and host2: their dom0s' ports asked the
        # SA for vm0's path (the guests' QP1 goes through dom0); host0 holds no peer.
        hosts = sorted({lab.host_of(vm) for vm in lab.clients})
        assert hosts == [1, 2]
        predicted = simulated_reports(net_file(TOPOLOGY), "targeted", N, M)
        assert predicted == len(hosts) < N  # per-host would send N
        assert result.reports_sent == predicted
        assert result.reports_received == predicted
        assert sorted(result.heard) == ["vm1", "vm2"]
        gid = vm_gid(MOVER).hex()
        for vm in lab.clients:
            [heard] = after(lab, vm, result, "PathChangeReceived")
            assert (heard["gid"], heard["new_lid"], heard["via"]) == (gid, result.dst_lid, "dom0")
            up = after(lab, vm, result, "ConnectionUp")
            assert [(u["peer_gid"], u["peer_lid"]) for u in up] == [(gid, result.dst_lid)]
        # host0's dom0 subscribed as the others did, and heard nothing.
        assert lab.control(0).must({"type": "status"})["subscribed"] is True
        heard_at_host0 = [
            r for r in lab.log(lab.dom0s[0])
            if r["event"] == "ReportReceived" and float(r["t"]) >= result.started
        ]  # fmt: skip
        assert heard_at_host0 == []


def test_a_path_carrying_notice_spares_the_peers_their_path_record_query(
    ibsim_tools: None, net_file: Callable[[str], Path]
) -> None:
    for lab, result in run(net_file(TOPOLOGY), "per-host", notice="trap69-path"):
        assert (
            result.reports_sent
            == N
            == simulated_reports(net_file(TOPOLOGY), "per-host", N, M, notice="trap69-path")
        )
        assert sorted(result.heard) == ["vm1", "vm2"]
        gid = vm_gid(MOVER).hex()
        for vm in lab.clients:
            [heard] = after(lab, vm, result, "PathChangeReceived")
            assert (heard["gid"], heard["new_lid"], heard["via"]) == (gid, result.dst_lid, "dom0")
            # The cached PathRecord took the notice's values: resolved from the
            # cache at the new LID, no SA query.
            resolved = after(lab, vm, result, "PathResolved")
            assert [(r["gid"], r["lid"], r["via"]) for r in resolved] == [
                (gid, result.dst_lid, "cache")
            ]
            up = after(lab, vm, result, "ConnectionUp")
            assert [(u["peer_gid"], u["peer_lid"]) for u in up] == [(gid, result.dst_lid)]
        assert result.path_queries == {"vm1": 0, "vm2": 0}
        # What dom0 forwarded over the channel carried the path's values.
        forwarded = [
            r for r in lab.log(lab.guests[lab.clients[0]])
            if r["event"] == "PathChangeReceived" and float(r["t"]) >= result.started
        ]  # fmt: skip
        assert len(forwarded) == 1
