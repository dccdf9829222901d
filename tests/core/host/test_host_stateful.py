"""A stateful property test of dom0: two hosts and a fake SA, VMs attached, detached
and migrated (detach and release at the source, attach at the destination), SA
requests lost or refused, path-change Reports (new, resent, with random TIDs,
malformed), ClientReregister and time passing, under a hand-driven clock.

Invariants after every step: nothing escapes but HostError for calls the model
knows to be invalid; on each host every VM holds its own VF and VFs are free or
held; a VM is up exactly when its vport is up, its alias acknowledged and the
mapping table maps it to the port's LID; a GUID is at most one entry of a host;
each Report delivered (a resend too) is answered with exactly one ReportResp; a new path-change
Report about a remote vGUID puts its NewLID in the mapping table. Once everything is
delivered and every timer has run out, nothing is pending and each host's entries
are the fake SA's for its port.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ibmig.core.engine import Datagram
from ibmig.core.host import HostAgent, HostConfig, HostError, MappingResynced
from ibmig.wire.sa import SaMad, SaStatus
from tests.core.host.fake_sa import SA_LID, FakeSa, exchange, gid
from tests.core.sa_fakes import move_notice

NUM_VFS = 3
# Alias GUID requests give up after their sends (alias_retry_limit=0) rather than
# retrying without end as mlx4 does (the default, tested in test_host_vfs.py): the
# model's "settled" means nothing pending, which endless retries never reach.
HOSTS = {
    "h1": (0x0002_C903_0000_0B01, 3),
    "h2": (0x0002_C903_0000_0C01, 5),
}
VMS = {f"vm{i}": 0x0002_C903_00AA_0000 + i for i in range(5)}
REMOTE = (0x0002_C903_00BB_0001, 0x0002_C903_00BB_0002)
SECOND = 1_000_000_000


def _free_by_definition(agent: HostAgent) -> list[int]:
    """The free VFs as `HostAgent.free_vfs` defines them, from the agent's state
    itself rather than the list of unheld VFs it keeps to find them quickly."""
    return [
        index
        for index, vf in sorted(agent._vfs.items())
        if vf.vm is None
        and not agent._entries.get(index)
        and index not in agent._unsure
        and not any(not op.setting for op in agent._queues.get(index, ()))
    ]


class HostMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sa = FakeSa()
        self.now = 0
        self.hosts: dict[str, HostAgent] = {}
        for name, (guid, lid) in HOSTS.items():
            agent = HostAgent(
                name,
                guid,
                rng=random.Random(lid),
                config=HostConfig(num_vfs=NUM_VFS, alias_retry_limit=0),
            )
            agent.port_active(lid, SA_LID, self.now)
            self.hosts[name] = agent
        self.by_lid = {agent.port_lid: agent for agent in self.hosts.values()}
        self.where: dict[str, str] = {}  # VM -> host it is attached on
        self.report_resps_expected: Counter[int] = Counter()  # by TID, from the rules
        self.reports_countable = True
        self.expected_lid: dict[tuple[str, int], int] = {}  # (host, vGUID) -> NewLID
        # Hosts subscribing again after a ClientReregister: once that is settled they
        # drop what Reports taught them (MappingResynced).
        self.resyncing: set[str] = set()
        self.exchange()

    def exchange(self) -> None:
        exchange(self.sa, self.by_lid, self.now)  # type: ignore[arg-type]
        for name, agent in self.hosts.items():
            while (event := agent.next_event()) is not None:
                if isinstance(event, MappingResynced):
                    assert name in self.resyncing
                    self.resyncing.discard(name)
                    for key in [key for key in self.expected_lid if key[0] == name]:
                        assert key[1] not in agent.mapping
                        del self.expected_lid[key]
            agent.intra_host_to_send()

    def run_timers(self) -> None:
        for agent in self.hosts.values():
            deadline = agent.get_timer()
            if deadline is not None and deadline <= self.now:
                agent.handle_timer(self.now)
        self.exchange()

    # --- VMs ------------------------------------------------------------------------

    @rule(vm=st.sampled_from(sorted(VMS)), host=st.sampled_from(sorted(HOSTS)))
    def attach(self, vm: str, host: str) -> None:
        agent = self.hosts[host]
        if vm in self.where and self.where[vm] != host:
            return  # attached on the other host: each dom0 knows only its own VMs
        if vm in self.where or not agent.free_vfs():
            with pytest.raises(HostError):
                agent.attach_vf(vm, self.now, vguid=VMS[vm])
            return
        agent.attach_vf(vm, self.now, vguid=VMS[vm])
        self.where[vm] = host
        self.exchange()

    @rule(vm=st.sampled_from(sorted(VMS)), release=st.booleans())
    def detach(self, vm: str, release: bool) -> None:
        host = self.where.pop(vm, None)
        if host is None:
            for agent in self.hosts.values():
                with pytest.raises(HostError):
                    agent.detach_vf(vm, self.now)
            return
        agent = self.hosts[host]
        vf = agent.vf_of(vm)
        assert vf is not None
        assert agent.detach_vf(vm, self.now) == vf
        if release:
            self.release(host, VMS[vm])
        self.exchange()

    def release(self, host: str, vguid: int) -> None:
        agent = self.hosts[host]
        try:
            agent.release_alias(vguid, self.now)
        except HostError as error:
            # Only when the GUID is not (or not yet) this host's: never registered,
            # or its Set failed or was refused.
            assert "is not an alias GUID" in str(error)
            assert all(agent.entry(i) != vguid for i in range(1, NUM_VFS + 1))

    @rule(vm=st.sampled_from(sorted(VMS)), data=st.data())
    def migrate(self, vm: str, data: st.DataObject) -> None:
        """What the migration engine asks of the two dom0s, in its order."""
        source = self.where.get(vm)
        if source is None:
            return
        destination = data.draw(st.sampled_from([h for h in HOSTS if h != source]))
        if not self.hosts[destination].free_vfs():
            return
        self.hosts[source].detach_vf(vm, self.now)
        self.release(source, VMS[vm])
        self.hosts[destination].attach_vf(vm, self.now, vguid=VMS[vm])
        self.where[vm] = destination
        self.exchange()

    @rule(host=st.sampled_from(sorted(HOSTS)))
    def client_reregister(self, host: str) -> None:
        self.resyncing.add(host)
        self.hosts[host].client_reregister(self.now)
        self.exchange()

    # --- the SA misbehaving, and time -----------------------------------------------

    @rule(count=st.integers(1, 3))
    def lose_requests(self, count: int) -> None:
        self.sa.drop += count

    @rule(
        status=st.sampled_from((0x0001, SaStatus.ERR_NO_RESOURCES, SaStatus.ERR_REQ_INVALID)),
        vm=st.sampled_from(sorted(VMS)),
        host=st.sampled_from(sorted(HOSTS)),
    )
    def sa_refuses(self, status: int, vm: str, host: str) -> None:
        """The SA answers the next requests with an error status."""
        self.sa.force_status = status
        self.attach(vm, host)
        self.sa.force_status = 0

    @rule(delta_ns=st.sampled_from((1_000, SECOND // 2, SECOND, 5 * SECOND)))
    def advance(self, delta_ns: int) -> None:
        self.now += delta_ns
        self.run_timers()

    # --- Reports --------------------------------------------------------------------

    @rule(
        host=st.sampled_from(sorted(HOSTS)),
        vguid=st.sampled_from(REMOTE),
        new_lid=st.integers(1, 0xBFFF),
        resend=st.booleans(),
    )
    def report(self, host: str, vguid: int, new_lid: int, resend: bool) -> None:
        agent = self.hosts[host]
        assert agent.port_lid is not None
        datagram = self.sa.report(move_notice(gid(vguid), new_lid, 7), agent.port_lid)
        agent.receive(datagram, self.now)
        if resend:
            agent.receive(datagram, self.now)  # the SA's resend: answered, done once
        self.report_resps_expected[SaMad.unpack(datagram.payload).tid] += 2 if resend else 1
        self.expected_lid[(host, vguid)] = new_lid
        assert agent.mapping[vguid] == new_lid
        self.exchange()

    @rule(host=st.sampled_from(sorted(HOSTS)), tid=st.integers(1 << 40, (1 << 64) - 1))
    def report_random_tid(self, host: str, tid: int) -> None:
        agent = self.hosts[host]
        assert agent.port_lid is not None
        notice = move_notice(gid(REMOTE[0]), 9, 7)
        agent.receive(self.sa.report(notice, agent.port_lid, tid=tid), self.now)
        self.report_resps_expected[tid] += 1
        self.expected_lid.pop((host, REMOTE[0]), None)  # maybe a duplicate: not processed
        self.exchange()

    @rule(
        host=st.sampled_from(sorted(HOSTS)),
        flips=st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), max_size=6),
        cut=st.integers(0, 256),
    )
    def malformed(self, host: str, flips: list[tuple[int, int]], cut: int) -> None:
        """A Report with bytes changed and maybe cut short, or any 256 bytes."""
        agent = self.hosts[host]
        assert agent.port_lid is not None
        datagram = self.sa.report(move_notice(gid(REMOTE[1]), 9, 7), agent.port_lid)
        payload = bytearray(datagram.payload)
        for offset, value in flips:
            payload[offset] = value
        agent.receive(datagram._replace(payload=bytes(payload[:cut])), self.now)
        for vguid in REMOTE:
            self.expected_lid.pop((host, vguid), None)  # whatever it became may have moved it
        # Whatever it became, an answer must be a well-formed SA MAD the SA takes.
        self.reports_countable = False  # whatever it became
        self.exchange()

    @rule(host=st.sampled_from(sorted(HOSTS)), data=st.binary(max_size=300))
    def random_bytes(self, host: str, data: bytes) -> None:
        agent = self.hosts[host]
        agent.receive(Datagram(data, 1, SA_LID, 3, 1, 1), self.now)
        if len(data) == 256 and data[1] == 0x03 and data[3] == 0x06:
            self.reports_countable = False
            self.expected_lid.clear()
        self.exchange()

    # --- settling -------------------------------------------------------------------

    @precondition(lambda self: self.sa.drop == 0)
    @rule()
    def settle(self) -> None:
        for _ in range(50):
            deadlines = [a.get_timer() for a in self.hosts.values()]
            pending = [d for d in deadlines if d is not None]
            if not pending:
                break
            self.now = max(self.now, min(pending))
            self.run_timers()
        for agent in self.hosts.values():
            assert agent.get_timer() is None
            lid = agent.port_lid
            assert lid is not None
            for index in range(1, NUM_VFS + 1):
                assert agent.entry(index) == self.sa.entries.get((lid, index), 0), index

    # --- invariants -----------------------------------------------------------------

    @invariant()
    def vfs_consistent(self) -> None:
        for name, agent in self.hosts.items():
            mine = [vm for vm, host in self.where.items() if host == name]
            vfs = [agent.vf_of(vm) for vm in mine]
            assert None not in vfs and len(set(vfs)) == len(vfs)
            # A free VF is held by no VM and, under static assignment, has an empty
            # entry: a departed VM's alias keeps its VF until the Delete is answered.
            unused = set(range(1, NUM_VFS + 1)) - set(vfs)
            assert set(agent.free_vfs()) <= {i for i in unused if not agent.entry(i)}
            # Exactly the definition, ascending, whatever `_unheld` has seen.
            assert agent.free_vfs() == _free_by_definition(agent), name
            for vm in VMS:
                if vm not in mine:
                    assert agent.vf_of(vm) is None and not agent.is_up(vm)
            for vm, vf in zip(mine, vfs, strict=True):
                assert vf is not None
                up = agent.is_up(vm)
                assert (agent.vm_behind(vf) == vm) == up, (vm, vf)
                if up:
                    assert agent.entry(vf) == VMS[vm]
                    assert agent.mapping[VMS[vm]] == agent.port_lid
            for vf in range(1, NUM_VFS + 1):
                behind = agent.vm_behind(vf)
                assert behind is None or behind in mine
            held = [agent.entry(i) for i in range(1, NUM_VFS + 1) if agent.entry(i)]
            assert len(held) == len(set(held))

    @invariant()
    def reports_answered_once(self) -> None:
        if self.reports_countable:
            answered = Counter(mad.tid for _, mad in self.sa.report_resps)
            for tid, count in self.report_resps_expected.items():
                assert answered[tid] == count, hex(tid)

    @invariant()
    def mapping_follows_reports(self) -> None:
        for (host, vguid), lid in self.expected_lid.items():
            assert self.hosts[host].mapping[vguid] == lid


TestHostStateful = HostMachine.TestCase
TestHostStateful.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
