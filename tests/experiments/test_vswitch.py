"""The vSwitch SR-IOV model end to end: a LID per VF that moves with its VM, the LFT
blocks the SM rewrites for it, peers that keep their paths, and LID exhaustion."""

from __future__ import annotations

import io
import json
from collections import Counter
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

import pytest

from ibmig.cli import main
from ibmig.core.guest.events import ConnectionBroken, ConnectionUp, PathResolved
from ibmig.core.sm.vswitch import VfLidMoved
from ibmig.errors import ConfigError
from ibmig.experiments.metrics import RunResult
from ibmig.experiments.planning import assigned_lids, lid_rows, vfs_for
from ibmig.experiments.runner import run_scenario
from ibmig.experiments.scenario import scenario_from_dict
from ibmig.sim.hosting import VirtualizedSubnet
from ibmig.sim.subnet import TraceWriter
from ibmig.wire.mad import Method, MgmtClass
from ibmig.wire.sa import SaAttr
from ibmig.wire.smp_attrs import LFT_BLOCK_SIZE, SmpAttr

LAB: dict[str, Any] = {
    "topology": {"file": "ft2-36"},
    "hosts": {"n": 4, "m": 2, "vfs": 8, "model": "vswitch"},
    "workload": {"peers": 0},
    "signalling": {"assignment": "static", "strategy": "per-host"},
    "migrations": [{"vm": 0, "at_ms": 1}],
    "run": {"duration_ms": 4000, "seed": 2},
    "timing": {"migration": {"memory_bytes": 16 * 1024 * 1024}},
}


def scenario(**hosts: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(LAB))
    data["hosts"].update(hosts)
    return data


class LftWatch:
    """Every switch's LFT as the switch holds it, and the SM's SMP counts, when the
    migrations stage begins and when the run ends."""

    def __init__(self) -> None:
        self.before: dict[int, bytes] = {}
        self.after: dict[int, bytes] = {}
        self.smps_before: Counter[tuple[int, int]] = Counter()
        self.smps_after: Counter[tuple[int, int]] = Counter()
        self.smps_up: Counter[tuple[int, int]] = Counter()
        self.sim: VirtualizedSubnet | None = None

    def __call__(self, stage: str, sim: VirtualizedSubnet) -> None:
        self.sim = sim
        lfts = {
            node.index: bytes(sim.agents[node.index].lft)
            for node in sim.fabric.nodes
            if node.is_switch
        }
        if stage == "placement":
            self.smps_up = Counter(sim.sm.smp_counts)
        if stage == "migrations":
            self.before, self.smps_before = lfts, Counter(sim.sm.smp_counts)
        elif stage == "measure":
            self.after, self.smps_after = lfts, Counter(sim.sm.smp_counts)


def egress_to(sim: VirtualizedSubnet, lfts: dict[int, bytes], switch: int, lid: int) -> int:
    """The CA node a packet for `lid` entering `switch` reaches, walking `lfts`."""
    node = switch
    for _ in range(16):
        if node not in lfts:
            return node
        port = lfts[node][lid]
        peer = sim.fabric.peer(node, port)
        assert peer is not None, f"switch {node} forwards LID {lid} to a dead port {port}"
        node = peer.node_index
    raise AssertionError(f"LID {lid} loops")


@pytest.mark.parametrize(
    ("scheme", "routing"),
    [
        ("prepopulated", "minhop"),
        ("dynamic", "minhop"),
        ("prepopulated", "updn"),
        ("prepopulated", "ftree"),
    ],
)
def test_migration_rewrites_exactly_the_lft_blocks_that_change(scheme: str, routing: str) -> None:
    watch = LftWatch()
    data = scenario(vswitch_lids=scheme)
    data["run"]["routing"] = routing
    result = run_scenario(scenario_from_dict(data, f"vswitch-{scheme}"), on_stage=watch)
    sim = watch.sim
    assert sim is not None
    [move] = result.lid_moves
    assert isinstance(move, VfLidMoved)
    dst = sim.hosts["host1"]  # vm0 leaves host0 for the next host with a free VF
    assert result.migrations[0].dst == "host1"

    # The test's own walk over the LFTs the switches hold, before and after.
    changed = {
        (switch, lid)
        for switch, old in watch.before.items()
        for lid, (a, b) in enumerate(zip(old, watch.after[switch], strict=False))
        if a != b
    }
    moved = {move.lid, move.swapped_lid} - {0}
    assert {lid for _, lid in changed} == moved  # nothing but the VM's LID (and its swap)
    blocks = {(switch, lid // LFT_BLOCK_SIZE) for switch, lid in changed}
    lft_sets = (SmpAttr.LINEAR_FORWARDING_TABLE, Method.SET)
    sent = watch.smps_after[lft_sets] - watch.smps_before[lft_sets]
    assert sent == move.lft_smps == len(blocks)
    assert move.switches_changed == len({switch for switch, _ in changed})
    if scheme == "prepopulated":
        assert move.swapped_lid != 0
    else:
        assert move.swapped_lid == 0

    # After the move every switch leads the VM's LID to its destination's port, and
    # before it led it to the source's.
    src_node = sim.hosts["host0"].node
    for switch in watch.before:
        assert egress_to(sim, watch.before, switch, move.lid) == src_node
        assert egress_to(sim, watch.after, switch, move.lid) == dst.node
        if move.swapped_lid:
            assert egress_to(sim, watch.after, switch, move.swapped_lid) == src_node

    # A full re-route: every block up to the top LID on every switch.
    switches = len(watch.before)
    top = sim.sm.db.max_lid
    assert move.full_reroute_smps == switches * (top // LFT_BLOCK_SIZE + 1)
    assert move.lft_smps < move.full_reroute_smps or top < LFT_BLOCK_SIZE


def test_prepopulated_vf_lids_sit_behind_their_ports_and_answer_path_records() -> None:
    watch = LftWatch()
    data = scenario(vswitch_lids="prepopulated")
    data["migrations"] = [{"vm": 0, "at_ms": 1}]
    run_scenario(scenario_from_dict(data, "vswitch"), on_stage=watch)
    sim = watch.sim
    assert sim is not None
    table = sim.sm.vswitch
    assert len(table.port_of_lid) == 4 * 8  # every VF of every host
    physical = set(sim.sm.db.port_lid.values())
    assert not physical & set(table.port_of_lid)  # VF LIDs beside the ports' own
    for vm in sim.vms.values():
        lid = table.lid_of_vm[vm.vguid]
        assert vm.guest.lid == lid  # the vport came up at its VF LID
        assert sim.sm.db.lid_of_guid(vm.vguid) == lid  # what PathRecord answers
        host = sim.hosts[vm.host]
        for switch in watch.after:
            assert egress_to(sim, watch.after, switch, lid) == host.node
    # Given together at set-up, the VF LIDs were routed together: one LFT Set per
    # switch and block they fall in.
    lft_sets = (SmpAttr.LINEAR_FORWARDING_TABLE, Method.SET)
    blocks = {lid // LFT_BLOCK_SIZE for lid in table.port_of_lid}
    assert len(blocks) == 2
    set_up = watch.smps_before[lft_sets] - watch.smps_up[lft_sets]
    assert set_up == len(watch.after) * len(blocks)


@pytest.mark.parametrize("scheme", ["prepopulated", "dynamic"])
def test_plan_counts_the_lids_the_vswitch_sm_hands_out(scheme: str) -> None:
    n, m = 4, 2
    base: list[int] = []
    sims: list[VirtualizedSubnet] = []

    def hook(stage: str, sim: VirtualizedSubnet) -> None:
        if stage == "placement":
            base.append(assigned_lids(sim))
        elif stage == "measure":
            sims.append(sim)

    data = scenario(vswitch_lids=scheme, n=n, m=m, vfs=vfs_for(m))
    run_scenario(scenario_from_dict(data, "vswitch-lids"), traffic=False, on_stage=hook)
    [sim] = sims
    _, per_vm, per_vf = lid_rows(base[0], n, m)
    row = per_vf if scheme == "prepopulated" else per_vm
    assert len(sim.sm.db.lid_owner) == row.needed
    assert base[0] + len(sim.sm.vswitch.port_of_lid) == row.needed


def lab_with_peers(model: str) -> dict[str, Any]:
    data = scenario(model=model, n=6, m=2, vfs=4)
    if model != "vswitch":
        del data["hosts"]["model"]
    data["workload"] = {"peers": 3, "interval_us": 2000, "path_cache": "cached"}
    data["migrations"] = [{"vm": 0, "at_ms": 20}]
    data["run"] = {"duration_ms": 12000, "seed": 1}
    return data


def path_queries(result: RunResult) -> int:
    return result.count(MgmtClass.SUBN_ADM, Method.GET, SaAttr.PATH_RECORD) + result.count(
        MgmtClass.SUBN_ADM, Method.GET_TABLE, SaAttr.PATH_RECORD
    )


CM_EXCHANGE_NS = 100_000
"""A REQ/REP exchange across ft2-36 takes microseconds; this bounds it loosely."""


def test_peers_keep_their_paths_and_reconnect_without_notice_or_query() -> None:
    events: list[Any] = []
    sims: list[VirtualizedSubnet] = []

    def hook(stage: str, sim: VirtualizedSubnet) -> None:
        if stage == "placement":
            sims.append(sim)
            sim.add_event_hook(
                lambda node, e: events.append(e), ConnectionBroken, ConnectionUp, PathResolved
            )

    data = lab_with_peers("vswitch")
    result = run_scenario(scenario_from_dict(data, "vswitch-peers"), on_stage=hook)
    [migration] = result.migrations
    assert migration.outcome == "completed"
    # No path changed: the SA saw no move (strategy per-host is on), sent no Report,
    # and no peer asked for a path during the migration.
    assert result.path_change_events == 0
    assert result.reports == 0
    assert path_queries(result) == 0
    [move] = result.lid_moves
    vport_up = migration.done_ns
    assert vport_up is not None and migration.rc_downtime_ns is not None
    assert migration.start_ns < move.time_ns < vport_up  # LFTs rewritten during it
    [sim] = sims
    vm_gid = sim.vms["vm0"].guest.gid
    # Every peer asked the SA once, before the migration, and got the VM's VF LID.
    resolved = [e for e in events if isinstance(e, PathResolved) and e.gid == vm_gid]
    from_sa = [e for e in resolved if e.via == "sa"]
    assert len(from_sa) == 3 and all(e.time_ns < migration.start_ns for e in from_sa)
    assert {e.lid for e in resolved} == {move.lid}
    assert len(result.connections) == 3
    for conn in result.connections:
        client = sim.vms[conn.client].guest
        # The VM's CM sent a DREQ as its VF was detached (the peer's connection
        # broke there); the peer's CM then sent a REQ on the path it holds and
        # resends it every CM timeout (2 x PacketLifeTime + CM response timeout)
        # until the VM, back at the same LID, answers.
        [broken] = [
            e for e in events
            if isinstance(e, ConnectionBroken) and e.local_gid == client.gid
            and e.role == "client" and e.time_ns > migration.start_ns
        ]  # fmt: skip
        assert broken.reason == "disconnect_request" and broken.peer_gid == vm_gid
        [up] = [
            e for e in events
            if isinstance(e, ConnectionUp) and e.local_gid == client.gid
            and e.time_ns > migration.start_ns
        ]  # fmt: skip
        assert up.peer_lid == move.lid  # the same LID as before the migration
        [stream] = client.streams.values()
        assert stream.conn is not None
        period = stream.conn.cm_timeout_ns
        resends = -(-(vport_up - broken.time_ns) // period)  # first resend after vport up
        req_sent = broken.time_ns + resends * period
        assert req_sent >= vport_up
        assert 0 < up.time_ns - req_sent < CM_EXCHANGE_NS  # one CM exchange
        # Service downtime: the VM's own outage (its vport down, the LFT update
        # inside it), the wait for the peer's next REQ resend, one CM exchange.
        assert conn.downtime_ns is not None and conn.reconnect_ns is not None
        first_after = conn.reconnect_ns + vport_up
        last_before = first_after - conn.downtime_ns
        assert last_before < migration.start_ns + 500_000_000  # VF detach phase
        assert conn.reconnect_ns == first_after - vport_up
        assert 0 <= first_after - up.time_ns < data["workload"]["interval_us"] * 1000


def traced_run(
    data: dict[str, Any], name: str
) -> tuple[RunResult, list[dict[str, Any]], VirtualizedSubnet]:
    """The run's result, its JSONL trace parsed, and the subnet as it ended."""
    stream = io.StringIO()
    sims: list[VirtualizedSubnet] = []
    result = run_scenario(
        scenario_from_dict(data, name),
        trace=TraceWriter(stream),
        on_stage=lambda stage, sim: sims.append(sim) if stage == "measure" else None,
    )
    return result, [json.loads(line) for line in stream.getvalue().splitlines()], sims[0]


def of(trace: list[dict[str, Any]], event: str, **fields: Any) -> list[dict[str, Any]]:
    return [
        e for e in trace
        if e["event"] == event and all(e.get(k) == v for k, v in fields.items())
    ]  # fmt: skip


def test_a_migrated_client_is_back_after_its_outage_the_lft_update_and_one_cm_exchange() -> None:
    """The acceptance decomposition, from the trace's own timestamps: when the
    migrated VM is the active side (`workload.direction = "from-vm"`), its CM sends
    one REQ per peer on the path it holds the moment its vport is up; the LFTs
    already lead its LID to the new host, so the peer's REP comes straight back."""
    data = lab_with_peers("vswitch")
    data["workload"]["direction"] = "from-vm"
    result, trace, sim = traced_run(data, "vswitch-from-vm")
    [migration] = result.migrations
    assert migration.outcome == "completed"
    assert result.path_change_events == 0 and result.reports == 0
    assert path_queries(result) == 0  # dom0 has no port-LID entry to contradict it
    [move_event] = of(trace, "VfLidMoved")
    vm_gid = of(trace, "Attached", resumed=True)[0]["gid"]
    [detached] = of(trace, "Detached", gid=vm_gid)
    [attached] = of(trace, "Attached", gid=vm_gid, resumed=True)
    detach, move, attach = detached["t_ns"], move_event["t_ns"], attached["t_ns"]
    lft_writes = [e["t_ns"] for e in of(trace, "LftBlockWritten") if e["t_ns"] >= move]
    assert len(lft_writes) == move_event["lft_smps"]
    # The VM's own outage (detach to vport up) holds the LFT update: the SM moves
    # its LID when the VF is ready at the destination, and the vport comes up after
    # every switch has its new entry.
    assert detach < move <= max(lft_writes) < attach
    assert attach - detach == migration.rc_downtime_ns
    # Every REQ after the move left at vport up, on a cached path; none failed or
    # was resent: one REQ per peer then, beside the 3 at set-up.
    resolved = [e for e in of(trace, "PathResolved") if e["t_ns"] >= detach]
    assert {(e["t_ns"], e["via"]) for e in resolved} == {(attach, "cache")}
    assert len(resolved) == 3 and of(trace, "ConnectFailed") == []
    assert sim.vms["vm0"].guest.sent["cm_req"] == 3 + 3
    interval_ns = data["workload"]["interval_us"] * 1000
    ups = [e for e in of(trace, "ConnectionUp", local_gid=vm_gid, role="client")
           if e["t_ns"] > attach]  # fmt: skip
    assert len(ups) == len(result.connections) == 3
    downtimes = {c.server: c.downtime_ns for c in result.connections}
    assert all(c.client == "vm0" and c.vm == "vm0" for c in result.connections)
    for up in ups:
        peer = up["peer_gid"]
        # The REP came back (vm0's ConnectionUp), then the RTU reached the peer.
        [peer_up] = [e for e in of(trace, "ConnectionUp", local_gid=peer, peer_gid=vm_gid)
                     if e["t_ns"] > attach]  # fmt: skip
        assert attach < up["t_ns"] < peer_up["t_ns"] < attach + CM_EXCHANGE_NS
        deliveries = [e["t_ns"] for e in of(trace, "MessageDelivered", client_gid=vm_gid,
                                             server_gid=peer)]  # fmt: skip
        last_before = max(t for t in deliveries if t < detach)
        first_after = min(t for t in deliveries if t > attach)
        assert detach - last_before < interval_ns  # the VF went mid-stream
        assert 0 <= first_after - up["t_ns"] < interval_ns  # the first message's offset
        [name] = [v.name for v in sim.vms.values() if str(IPv6Address(v.guest.gid)) == peer]
        # downtime = the interval's part before the detach + the VM's outage (the
        # LFT update inside it) + one CM exchange + the first message's offset.
        assert downtimes[name] == (
            (detach - last_before) + (move - detach) + (attach - move)
            + (up["t_ns"] - attach) + (first_after - up["t_ns"])
        )  # fmt: skip


def test_under_rds_reconnects_the_migrated_client_waits_out_its_backoff_first() -> None:
    """With RDS's reconnect worker (`[timing.guest] retry_while_detached`) the VM
    kept trying while its VF was away, every attempt failing without a device, and
    its first REQ after vport up leaves when the wait drawn at its last failure ends
    (below `reconnect_backoff_max_ns`, 1 s): that residual wait comes between the
    outage and the CM exchange."""
    data = lab_with_peers("vswitch")
    data["workload"]["direction"] = "from-vm"
    data["timing"]["guest"] = {"retry_while_detached": True}
    result, trace, _ = traced_run(data, "vswitch-from-vm-rds")
    [migration] = result.migrations
    assert migration.outcome == "completed" and path_queries(result) == 0
    vm_gid = of(trace, "Attached", resumed=True)[0]["gid"]
    [detached] = of(trace, "Detached", gid=vm_gid)
    [attached] = of(trace, "Attached", gid=vm_gid, resumed=True)
    detach, attach = detached["t_ns"], attached["t_ns"]
    ups = [e for e in of(trace, "ConnectionUp", local_gid=vm_gid, role="client")
           if e["t_ns"] > attach]  # fmt: skip
    assert len(ups) == 3
    for up in ups:
        peer = up["peer_gid"]
        failed = of(trace, "ConnectFailed", client_gid=vm_gid, server_gid=peer)
        assert failed and {e["reason"] for e in failed} == {"no_device"}
        assert failed[0]["t_ns"] == detach  # RDS's first attempt is immediate
        assert all(detach <= e["t_ns"] < attach for e in failed)
        req_at = failed[-1]["t_ns"] + failed[-1]["backoff_ns"]
        assert attach <= req_at < attach + 1_000_000_000
        [resolved] = [e for e in of(trace, "PathResolved", gid=peer) if e["t_ns"] > attach]
        assert (resolved["t_ns"], resolved["via"]) == (req_at, "cache")
        assert req_at < up["t_ns"] < req_at + CM_EXCHANGE_NS  # one CM exchange


def test_with_connections_both_ways_only_the_migrated_vms_own_come_back_at_once() -> None:
    """Which connections give the short decomposition: those the migrated VM is the
    client of. A peer that is the client got the VM's DREQ as the VF went, sent its
    REQ at once into the VM's outage, and waits for ib_cm's resend of it; nothing in
    the vSwitch model tells it the VM is back (no notice), and rdma_cm has it wait."""
    data = lab_with_peers("vswitch")
    data["workload"]["direction"] = "both"
    result = run_scenario(scenario_from_dict(data, "vswitch-both"))
    [migration] = result.migrations
    assert migration.done_ns is not None
    interval_ns = data["workload"]["interval_us"] * 1000
    from_vm = [c for c in result.connections if c.vm == "vm0"]
    to_vm = [c for c in result.connections if not c.vm]
    assert len(from_vm) == len(to_vm) == 3
    assert {c.server for c in from_vm} == {c.client for c in to_vm}
    for conn in from_vm:
        assert conn.reconnect_ns is not None
        assert 0 < conn.reconnect_ns < CM_EXCHANGE_NS + interval_ns
    for conn in to_vm:
        # The first REQ resend after vport up: 6.144 s after the REQ sent into the
        # outage (PacketLifeTime 18, CM response time-out 20), 2.85 s after vport up.
        assert conn.reconnect_ns is not None and conn.reconnect_ns > 2_000_000_000


def test_workload_direction_is_checked() -> None:
    data = scenario()
    data["workload"]["direction"] = "sideways"
    with pytest.raises(ConfigError, match=r"workload\.direction: must be one of "
                       r"to-vm, from-vm, both"):  # fmt: skip
        scenario_from_dict(data)
    assert scenario_from_dict(scenario()).workload.direction == "to-vm"


def test_shared_port_peers_stay_broken_in_the_same_run() -> None:
    """The contrast: without signalling and with cached paths, shared-port peers
    keep the old port's LID and never come back."""
    data = lab_with_peers("shared-port")
    data["signalling"]["strategy"] = "none"
    result = run_scenario(scenario_from_dict(data, "shared-port-peers"))
    assert result.lid_moves == []
    assert all(conn.downtime_ns is None for conn in result.connections)


# --- LID exhaustion ------------------------------------------------------------------

BIG = {
    "generator": "fat_tree_2level",
    "leaves": 24,
    "hosts_per_leaf": 18,
    "spines": 18,
    "switch_ports": 36,
}


@pytest.mark.parametrize(
    ("scheme", "m", "needed"),
    [("prepopulated", 2, 42 + 432 + 400 * 126), ("dynamic", 125, 42 + 432 + 400 * 125)],
)
def test_lid_exhaustion_is_one_clear_error_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scheme: str, m: int, needed: int
) -> None:
    path = tmp_path / "big.toml"
    path.write_text(
        "[topology]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in BIG.items())
        + f'[hosts]\nn = 400\nm = {m}\nvfs = 126\nmodel = "vswitch"\n'
        + f'vswitch_lids = "{scheme}"\n[workload]\npeers = 0\n'
    )
    trace = tmp_path / "trace.jsonl"
    capture = tmp_path / "capture.erf"
    code = main(["run", str(path), "--trace", str(trace), "--capture", str(capture)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "hosts.vswitch_lids" in err[0]
    assert f"needs {needed:,} unicast LIDs" in err[0]
    assert "49,151" in err[0]
    assert "shared-port model needs 474" in err[0]  # 42 switches + 432 CA ports
    assert not trace.exists() and not capture.exists()


def test_a_sweep_refuses_a_point_whose_vf_lids_do_not_fit_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.toml"
    path.write_text(
        "[topology]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in BIG.items())
        + '[hosts]\nn = 400\nm = 2\nvfs = 126\nmodel = "shared-port"\n[workload]\npeers = 0\n'
    )
    out = tmp_path / "sweep.csv"
    code = main(
        ["sweep", str(path), "--param", "hosts.model=shared-port,vswitch", "--out", str(out)]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hosts.model=vswitch" in err[0] and "49,151" in err[0]
    assert not out.exists()


def test_vswitch_scenario_keys_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"hosts\.model: must be one of shared-port, vswitch"):
        scenario_from_dict(scenario(model="vSwitch"))
    with pytest.raises(ConfigError, match=r"hosts\.vswitch_lids: must be one of"):
        scenario_from_dict(scenario(vswitch_lids="lazy"))
    data = scenario(vswitch_lids="dynamic", model="shared-port")
    assert scenario_from_dict(data).hosts.vswitch is None  # checked, used by vswitch only
    data = scenario()
    data["signalling"]["assignment"] = "dynamic"
    with pytest.raises(ConfigError, match=r"signalling\.assignment: the vSwitch model"):
        scenario_from_dict(data)
    hosts = scenario_from_dict(scenario(vswitch_lids="dynamic")).hosts
    assert hosts.vswitch is not None and hosts.vswitch.value == "dynamic"
    assert scenario_from_dict({}).hosts.vswitch is None


def test_the_vswitch_example_is_a_vswitch_scenario() -> None:
    from ibmig.experiments.scenario import load_scenario

    path = Path(__file__).parents[2] / "examples" / "vswitch.toml"
    hosts = load_scenario(str(path)).hosts
    assert hosts.vswitch is not None and hosts.vswitch.value == "prepopulated"


def test_an_aborted_migration_resumes_the_vm_at_its_own_lid() -> None:
    data = lab_with_peers("vswitch")
    data["migrations"][0]["abort_ms"] = 3000  # the VF attached at the destination
    sims: list[VirtualizedSubnet] = []
    result = run_scenario(
        scenario_from_dict(data, "vswitch-abort"),
        on_stage=lambda stage, sim: sims.append(sim) if stage == "measure" else None,
    )
    [migration] = result.migrations
    assert migration.outcome.startswith("aborted in reinit_driver")
    [sim] = sims
    vm = sim.vms["vm0"]
    assert vm.host == "host0"
    assert vm.guest.lid == sim.sm.vswitch.lid_of_vm[vm.vguid]  # not the port's LID
    assert result.lid_moves == []  # it never left: nothing to rewrite
    assert path_queries(result) == 0
    assert all(conn.downtime_ns is not None for conn in result.connections)


def test_a_vswitch_run_is_deterministic(tmp_path: Path) -> None:
    traces = []
    for i in range(2):
        path = tmp_path / f"trace{i}.jsonl"
        data = scenario(vswitch_lids="dynamic")
        with path.open("w") as stream:
            run_scenario(scenario_from_dict(data, "vswitch"), trace=TraceWriter(stream))
        traces.append(path.read_bytes())
    assert traces[0] == traces[1]
    assert b"VfLidMoved" in traces[0]


def test_ibmig_run_reports_the_lid_move(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).parents[2] / "examples" / "vswitch.toml"
    assert main(["run", str(path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    [move] = document["vswitch_lid_moves"]
    # ft2-36: 7 switches, every one's egress for the LID changes; LIDs up to 67 fill
    # two blocks per switch, which a full re-route would all write.
    assert (move["lft_smps"], move["switches_changed"], move["full_reroute_smps"]) == (7, 7, 14)
    assert move["swapped_lid"] != 0
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"vSwitch: LID {move['lid']} moved, LID {move['swapped_lid']} swapped back: " in out
    assert "7 LinearForwardingTable SMPs on 7 switches (a full re-route: 14)" in out
