"""`ibmig lab`: the mechanism as processes on an ibsim fabric, one migration per
strategy, timed on the wall clock.

For each strategy (none, per-vm, per-host; targeted on request) the lab starts, each
as its own process in its own process group: ibsim on the net file, ibmig's SM and SA over umad
(`ibmig sm --umad` under libumad2sim.so; `--targeted` under the targeted strategy,
`--notice` as the lab's), a dom0 daemon per host (`ibmig dom0 --umad`, attached at
the host's CA) and a guest agent per VM (`ibmig guest`, on its dom0's channel).
Targeted is per-host's dom0s with an SA that tells only the hosts whose port
resolved a PathRecord to the moved GID; `notice = "trap69-path"` makes the SA's
trap 69 carry the new path's values, which dom0 forwards over the channel, so the
peers reconnect on their updated cached path without a PathRecord query. Hosts and
VMs are placed as the simulator places them (`ibmig.experiments.placement`: the same
host nodes, vGUIDs and IP addresses). The clients of the migrated VM (vm0) are the
VMs on other hosts, up to `peers`.

Once every client is connected to vm0, the lab migrates vm0 with static address
assignment, in the order the migration engine uses (`ibmig.core.migration`): the
source detaches the VF and releases the alias GUID, the destination registers it
and attaches a VF; the guest process follows to the destination's channel (its
memory, with its path cache and engine, migrates). Then it waits until each client
heard and reconnected (or, under `none`, for `settle_s` without hearing) and reads
every process's log: when each peer heard and reconnected, relative to the start
of the migration; the Reports the SA sent; the MADs each process sent.

Everything is stopped at the end, each process group by its own id.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ibmig.core.host import DEFAULT_GID_PREFIX, make_gid
from ibmig.daemons.channel import FrameReader, encode
from ibmig.daemons.log import read_log
from ibmig.errors import ConfigError
from ibmig.experiments.placement import VGUID_BASE, pick_hosts, vm_ip
from ibmig.ibsim.harness import Harness, HarnessError, IbmigSm, Ibsim, first_ca

STRATEGIES = ("none", "per-vm", "per-host", "targeted")
PAPER_STRATEGIES = ("none", "per-vm", "per-host")
"""What `ibmig lab` runs when no strategy is named: the paper's three."""
NOTICES = ("trap69", "trap69-path")
MOVER = 0  # vm0 migrates, as `[[migrations]] vm = 0` in the examples


def vm_vguid(index: int) -> int:
    """VM i's vGUID under static assignment, as the simulator's placement gives it."""
    return VGUID_BASE + index + 1


def vm_gid(index: int) -> bytes:
    return make_gid(DEFAULT_GID_PREFIX, vm_vguid(index))


class Control:
    """The orchestrator's connection to one dom0's control interface."""

    def __init__(self, path: str, timeout_s: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout_s)
        self.sock.connect(path)
        self.reader = FrameReader()
        self._pending: list[dict[str, Any]] = []
        self.sock.sendall(encode({"type": "hello", "role": "control"}))

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request; its answer (`ok` or `error`)."""
        self.sock.sendall(encode(message))
        while not self._pending:
            data = self.sock.recv(65536)
            if not data:
                raise HarnessError("dom0 closed its control channel")
            self._pending.extend(self.reader.feed(data))
        return self._pending.pop(0)

    def must(self, message: dict[str, Any]) -> dict[str, Any]:
        answer = self.call(message)
        if answer["type"] != "ok":
            raise HarnessError(f"dom0 refused {message['type']}: {answer.get('error')}")
        return answer

    def close(self) -> None:
        self.sock.close()


@dataclass
class Lab:
    """The processes of one lab run (`start_lab`)."""

    harness: Harness
    strategy: str
    n: int
    m: int
    sm: IbmigSm
    host_nodes: list[str]
    channels: list[str]
    states: list[str]
    dom0s: list[IbmigSm]
    guests: list[IbmigSm] = field(default_factory=list)
    controls: list[Control] = field(default_factory=list)
    clients: list[int] = field(default_factory=list)
    ibsim: Ibsim | None = None
    notice: str = "trap69"

    def host_of(self, vm: int) -> int:
        return vm // self.m

    def dom0_args(self, host: int) -> list[str]:
        args = [
            "-m", "ibmig.cli", "dom0", "--umad", "--control", self.channels[host],
            "--host", f"host{host}", "--strategy", self.strategy, "--state", self.states[host],
            "--notice", self.notice,
        ]  # fmt: skip
        return args

    def start_dom0(self, host: int, timeout_s: float = 60.0) -> IbmigSm:
        process = self.harness.start_python(
            f"dom0-host{host}", self.dom0_args(host), ibsim=self.ibsim, node=self.host_nodes[host]
        )
        process.wait_for(r'"event":"ready"', timeout_s)
        return process

    def control(self, host: int) -> Control:
        return self.controls[host]

    def log(self, process: IbmigSm) -> list[dict[str, Any]]:
        return read_log(process.out_path)

    def wait(self, process: IbmigSm, predicate: Any, timeout_s: float) -> dict[str, Any] | None:
        """The first record of `process`'s log that satisfies `predicate`, waiting
        up to `timeout_s` (generous: the machine may be loaded)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for record in self.log(process):
                if predicate(record):
                    return record
            if time.monotonic() > deadline or process.proc.poll() is not None:
                return None
            time.sleep(0.05)


def start_lab(
    harness: Harness,
    net_file: str | Path,
    strategy: str,
    *,
    n: int = 3,
    m: int = 1,
    peers: int = 3,
    seed: int = 1,
    notice: str = "trap69",
    timeout_s: float = 120.0,
) -> Lab:
    """ibsim, the SM, the dom0s and the guests, up and every client connected."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"must be one of {', '.join(STRATEGIES)}", "--strategy")
    if notice not in NOTICES:
        raise ConfigError(f"must be one of {', '.join(NOTICES)}", "--notice")
    if n < 2 or m < 1:
        raise ConfigError("a migration needs n >= 2 hosts and m >= 1 VMs each", "--n/--m")
    # ibsim allows 10 clients: the SM and one dom0 per host (guests are not clients).
    if n > 9:
        raise ConfigError("ibsim takes 10 clients: at most 9 hosts beside the SM", "--n")
    sim = harness.start_ibsim(net_file)
    sm_args = ["--notice", notice] + (["--targeted"] if strategy == "targeted" else [])
    sm = harness.start_ibmig_sm_umad(sim, args=sm_args)
    sm.wait_up(timeout_s)
    fabric = sim.fabric
    sm_name = first_ca(fabric)
    sm_node = next(node.index for node in fabric.nodes if node.name == sm_name)
    nodes = pick_hosts(fabric, sm_node, n, "spread", seed, where="--n")
    names = [fabric.nodes[i].name for i in nodes]
    channels = [str(harness.dir / f"host{i}.sock") for i in range(n)]
    states = [str(harness.dir / f"host{i}.state.json") for i in range(n)]
    lab = Lab(harness, strategy, n, m, sm, names, channels, states, [], ibsim=sim, notice=notice)
    lab.dom0s = [lab.start_dom0(i, timeout_s) for i in range(n)]
    lab.controls = [Control(path) for path in channels]
    for vm in range(n * m):
        control = lab.control(lab.host_of(vm))
        control.must({"type": "vm_arrived", "vm": f"vm{vm}", "vguid": vm_vguid(vm)})
        control.must({"type": "vf_attached", "vm": f"vm{vm}"})
    lab.clients = [v for v in range(n * m) if lab.host_of(v) != lab.host_of(MOVER)][:peers]
    mover_gid = vm_gid(MOVER).hex()
    for vm in range(n * m):
        argv = [
            "-m", "ibmig.cli", "guest", "--channel", channels[lab.host_of(vm)],
            "--vm", f"vm{vm}", "--ip", str(vm_ip(vm)), "--seed", str(seed),
        ]  # fmt: skip
        if vm in lab.clients:
            argv += ["--peer", f"{vm_ip(MOVER)}={mover_gid}"]
        if strategy == "per-vm":
            argv.append("--subscribe")
        argv += ["--notice", notice]
        lab.guests.append(harness.start_python(f"guest-vm{vm}", argv))
    for vm in lab.clients:
        up = lab.wait(
            lab.guests[vm],
            lambda r: r["event"] == "ConnectionUp" and r["peer_gid"] == mover_gid,
            timeout_s,
        )
        if up is None:
            raise HarnessError(f"vm{vm} did not connect to vm0:\n{lab.guests[vm].output()[-2000:]}")
    if strategy == "per-vm":
        for vm in range(n * m):
            if (
                lab.wait(lab.guests[vm], lambda r: r["event"] == "SubscriptionConfirmed", timeout_s)
                is None
            ):
                raise HarnessError(f"vm{vm} did not subscribe")
    else:
        for host in range(n):
            status = lab.control(host).must({"type": "status"})
            deadline = time.monotonic() + timeout_s
            while strategy in ("per-host", "targeted") and not status["subscribed"]:
                if time.monotonic() > deadline:
                    raise HarnessError(f"host{host} did not subscribe")
                time.sleep(0.05)
                status = lab.control(host).must({"type": "status"})
    return lab


@dataclass
class Migration:
    """What one migration of vm0 did, read from every process's log."""

    strategy: str
    m: int
    started: float  # wall clock, s
    src: int
    dst: int
    dst_lid: int
    heard: dict[str, float]  # client -> seconds after the start it heard
    reconnected: dict[str, float]  # client -> seconds after the start its REQ was answered
    new_lid: dict[str, int]  # client -> the LID its new path to vm0 resolved to
    reports_sent: int  # trap 69 Reports the SA sent (first sends)
    reports_received: int  # by subscribers, first receipts
    mads: dict[str, dict[str, int]]  # process -> "class/method/attribute" -> count
    notice: str = "trap69"
    path_queries: dict[str, int] = field(default_factory=dict)
    """client -> PathRecord queries it sent after the migration started."""


def migrate(
    lab: Lab, dst: int | None = None, *, timeout_s: float = 60.0, settle_s: float = 5.0
) -> Migration:
    """Migrate vm0 with static assignment and wait for the clients (module docstring)."""
    src = lab.host_of(MOVER)
    dst = dst if dst is not None else (src + 1) % lab.n  # where the simulator sends it
    vguid = vm_vguid(MOVER)
    mover = f"vm{MOVER}"
    dst_lid = lab.control(dst).must({"type": "status"})["lid"]
    sm_before = len(lab.sm.output())
    started = time.time()
    lab.control(src).must({"type": "vf_detached", "vm": mover, "next_channel": lab.channels[dst]})
    lab.control(src).must({"type": "vm_left", "vm": mover, "vguid": vguid})
    dst_control = lab.control(dst)
    dst_control.must({"type": "vm_arrived", "vm": mover, "vguid": vguid})
    dst_control.must({"type": "vf_attached", "vm": mover})
    gid = vm_gid(MOVER).hex()
    resumed = lab.wait(
        lab.guests[MOVER],
        lambda r: r["event"] == "Attached" and r["resumed"] and r["t"] >= started,
        timeout_s,
    )
    if resumed is None:
        raise HarnessError(
            f"vm0 did not resume at host{dst}:\n{lab.guests[MOVER].output()[-2000:]}"
        )
    heard: dict[str, float] = {}
    reconnected: dict[str, float] = {}
    new_lid: dict[str, int] = {}
    path_queries: dict[str, int] = {}
    for vm in lab.clients:
        name = f"vm{vm}"
        process = lab.guests[vm]
        wait = timeout_s if lab.strategy != "none" else settle_s
        got = lab.wait(
            process,
            lambda r: r["event"] == "PathChangeReceived" and r["gid"] == gid and r["t"] >= started,
            wait,
        )
        if got is None:
            continue
        heard[name] = got["t"] - started
        up = lab.wait(
            process,
            lambda r: r["event"] == "ConnectionUp" and r["peer_gid"] == gid and r["t"] >= started,
            timeout_s,
        )
        if up is not None:
            reconnected[name] = up["t"] - started
            new_lid[name] = up["peer_lid"]
        resolved = [
            r for r in lab.log(process)
            if r["event"] == "PathResolved" and r["gid"] == gid and r["t"] >= started
        ]  # fmt: skip
        if resolved:
            new_lid[name] = resolved[-1]["lid"]
        path_queries[name] = sum(1 for r in resolved if r["via"] == "sa")
    time.sleep(0.5)  # late resends of Reports
    sm_text = lab.sm.output()[sm_before:]
    reports_sent = sum(
        1 for line in sm_text.splitlines()
        if line.startswith("Report trap 69 ") and line.endswith("(attempt 0)")
    )  # fmt: skip
    received = 0
    for process in (*lab.dom0s, *lab.guests):
        received += sum(
            1 for r in lab.log(process)
            if r["event"] == "ReportReceived" and not r["duplicate"] and r["t"] >= started
            and r.get("trap_number") == 69
        )  # fmt: skip
    mads: dict[str, dict[str, int]] = {}
    for host, control in enumerate(lab.controls):
        mads[f"dom0 host{host}"] = dict(control.must({"type": "status"})["sent"])
    for vm, process in enumerate(lab.guests):
        counted: Counter[str] = Counter()
        for r in lab.log(process):
            if r["event"] == "mads":
                counted = Counter(r["sent"])
        mads[f"guest vm{vm}"] = dict(counted)
    return Migration(
        lab.strategy, lab.m, started, src, dst, dst_lid, heard, reconnected, new_lid,
        reports_sent, received, mads, lab.notice, path_queries,
    )  # fmt: skip


def simulated_reports(
    net_file: str | Path, strategy: str, n: int, m: int, seed: int = 1, notice: str = "trap69"
) -> int:
    """Reports per event the simulator predicts for the same fabric, n and m."""
    from ibmig.experiments.metrics import summarize_messages
    from ibmig.experiments.runner import run_scenario
    from ibmig.experiments.scenario import scenario_from_dict

    scenario = scenario_from_dict(
        {
            "topology": {"file": str(net_file)},
            "hosts": {"n": n, "m": m, "vfs": max(2, m + 1)},
            "workload": {"peers": min(3, (n - 1) * m)},
            "signalling": {"assignment": "static", "strategy": strategy, "notice": notice},
            "migrations": [{"vm": MOVER, "at_ms": 50}],
            "run": {"seed": seed, "duration_ms": 12000},
            # As examples/lab.toml: the copy ends well within the run.
            "timing": {"migration": {"memory_bytes": 256 * 2**20}},
        },
        "<lab>",
    )
    # Targeted Reports go to the ports that resolved a path to vm0: its peers must
    # have connected, so the workload runs.
    result = run_scenario(scenario, traffic=strategy == "targeted")
    return int(summarize_messages(result)["reports_per_event"])


def print_migration(result: Migration, simulated: int | None, out: IO[str]) -> None:
    clock = time.strftime("%H:%M:%S", time.gmtime(result.started))
    micros = int(result.started * 1e6) % 1_000_000
    print(
        f"\n== {result.strategy}{'' if result.notice == 'trap69' else ', ' + result.notice}: "
        f"vm0 host{result.src} -> host{result.dst} "
        f"(new LID {result.dst_lid}), started {clock}.{micros:06d} UTC",
        file=out,
    )
    sim = "" if simulated is None else f" (simulator: {simulated})"
    if result.strategy == "per-vm" and result.m > 1:
        sim += (
            "; ibsim carries no GRH, so the SA keys one port's VF subscriptions together:"
            " expect n here, not n*m"
        )
    print(f"Reports (trap 69) sent by the SA: {result.reports_sent}{sim}; "
          f"received by subscribers: {result.reports_received}", file=out)  # fmt: skip
    clients = sorted(set(result.heard) | set(result.reconnected) | set(result.new_lid))
    if not clients:
        print("no peer heard of the migration", file=out)
    for name in clients:
        heard = result.heard.get(name)
        again = result.reconnected.get(name)
        print(
            f"  {name}: heard {'-' if heard is None else f'+{heard * 1000:.1f} ms'}, "
            f"reconnected {'-' if again is None else f'+{again * 1000:.1f} ms'} "
            f"(LID {result.new_lid.get(name, '-')}; "
            f"PathRecord queries {result.path_queries.get(name, 0)})",
            file=out,
        )
    print("MADs sent (class/method/attribute: count):", file=out)
    for who, counts in result.mads.items():
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        print(f"  {who}: {shown}", file=out)


def run_lab(
    net_file: str | Path,
    strategies: tuple[str, ...],
    out: IO[str],
    *,
    n: int = 3,
    m: int = 1,
    seed: int = 1,
    notice: str = "trap69",
    timeout_s: float = 120.0,
    workdir: str | None = None,
    compare: bool = True,
) -> list[Migration]:
    results = []
    for strategy in strategies:
        with Harness(
            workdir and str(Path(workdir) / strategy), keep=workdir is not None
        ) as harness:
            lab = start_lab(
                harness, net_file, strategy, n=n, m=m, seed=seed, notice=notice,
                timeout_s=timeout_s,
            )  # fmt: skip
            try:
                result = migrate(lab, timeout_s=timeout_s)
            finally:
                for control in lab.controls:
                    control.close()
        simulated = simulated_reports(net_file, strategy, n, m, seed, notice) if compare else None
        print_migration(result, simulated, out)
        results.append(result)
    return results


def dump(results: list[Migration]) -> str:
    return json.dumps([r.__dict__ for r in results], indent=1, sort_keys=True)
