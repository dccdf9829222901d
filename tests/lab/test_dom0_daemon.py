"""The dom0 daemon without a fabric: a fake umad port under a hand-driven clock and
its real Unix socket (malformed messages, the control interface, restart from the
toolstack's state, what it does with MADs of no guest)."""

from __future__ import annotations

import contextlib
import io
import json
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ibmig.core.host import HostAgent, HostConfig
from ibmig.daemons.channel import FrameReader, encode
from ibmig.daemons.dom0 import CM_CLASS, SA_CLASS, Dom0Daemon, mad_kind
from ibmig.daemons.log import EventLog
from ibmig.umad.abi import UmadHeader

PORT_GUID = 0x0002_C903_0000_1001
VGUID = 0x0002_C9FE_0000_0001


class FakePort:
    def __init__(self) -> None:
        self.agents = {0x01: 0, 0x81: 1, SA_CLASS: 2, CM_CLASS: 3}
        self.sent: list[tuple[UmadHeader, bytes]] = []
        self.incoming: list[tuple[UmadHeader, bytes]] = []

    def send(self, header: UmadHeader, mad: bytes) -> bool:
        self.sent.append((header, mad))
        return True

    def recv(self) -> tuple[UmadHeader, bytes] | None:
        return self.incoming.pop(0) if self.incoming else None


class Clock:
    def __init__(self) -> None:
        self.now_ns = 10**12

    def __call__(self) -> int:
        return self.now_ns


def make(tmp_path: Path, *, subscribe: bool = True) -> tuple[Dom0Daemon, FakePort, io.StringIO]:
    port = FakePort()
    out = io.StringIO()
    host = HostAgent(
        "host1", PORT_GUID, rng=random.Random(1),
        config=HostConfig(num_vfs=4, subscribe_path_changes=subscribe),
    )  # fmt: skip
    daemon = Dom0Daemon(
        port, host, lid=5, sa_lid=1, channel_path=str(tmp_path / "dom0.sock"),
        log=EventLog("dom0 host1", out, wall_clock=lambda: 1.0),
        state_path=str(tmp_path / "state.json"), clock=Clock(),
    )  # fmt: skip
    return daemon, port, out


@pytest.fixture
def dom0(tmp_path: Path) -> Iterator[tuple[Dom0Daemon, FakePort, io.StringIO]]:
    daemon, port, out = make(tmp_path)
    daemon.start()
    yield daemon, port, out
    daemon.close()


def connect(daemon: Dom0Daemon, role: str = "control") -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(daemon.channel_path)
    sock.settimeout(5)
    sock.sendall(encode({"type": "hello", "role": role}))
    return sock


def call(daemon: Dom0Daemon, sock: socket.socket, raw: bytes) -> list[dict[str, object]]:
    """Send raw bytes, step the daemon until an answer (or the close) comes."""
    sock.sendall(raw)
    reader = FrameReader()
    sock.setblocking(False)
    got: list[dict[str, object]] = []
    for _ in range(200):
        daemon.step(0.01)
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            continue
        if not data:
            break
        got += reader.feed(data)
        if got:
            break
    sock.setblocking(True)
    return got


def log_events(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_it_subscribes_once_from_the_port_when_it_starts(
    dom0: tuple[Dom0Daemon, FakePort, io.StringIO],
) -> None:
    _daemon, port, out = dom0
    assert [mad_kind(mad) for _h, mad in port.sent] == ["0x03/0x02/0x0003"]  # InformInfo Set
    header, _mad = port.sent[0]
    assert (header.agent_id, header.lid, header.qpn, header.timeout_ms) == (2, 1, 1, 2000)
    assert log_events(out)[-1]["event"] == "ready"


def test_a_malformed_message_is_rejected_logged_and_the_daemon_lives_on(
    dom0: tuple[Dom0Daemon, FakePort, io.StringIO],
) -> None:
    daemon, _port, out = dom0
    bad = connect(daemon)
    [answer] = call(daemon, bad, b"\x00\x00\x00\x05hello")
    assert answer["type"] == "error" and "not JSON" in str(answer["error"])
    assert bad.recv(1) == b""  # that connection is closed
    errors = [e for e in log_events(out) if e["event"] == "channel_error"]
    assert len(errors) == 1 and "not JSON" in str(errors[0]["error"])
    # Another without hello first, another with an unknown request:
    sneaky = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sneaky.connect(daemon.channel_path)
    [answer] = call(daemon, sneaky, encode({"type": "status"}))
    assert answer["type"] == "error" and "hello" in str(answer["error"])
    good = connect(daemon)
    [answer] = call(daemon, good, encode({"type": "status"}))
    assert answer["type"] == "ok" and answer["lid"] == 5 and answer["host"] == "host1"
    assert daemon.counters["channel_errors"] == 2
    for sock in (bad, sneaky, good):
        sock.close()


def test_control_requests_reach_the_engine_and_errors_are_answered(
    dom0: tuple[Dom0Daemon, FakePort, io.StringIO],
) -> None:
    daemon, port, _out = dom0
    control = connect(daemon)
    [answer] = call(daemon, control, encode({"type": "vm_arrived", "vm": "vm0", "vguid": VGUID}))
    assert answer == {"v": 1, "type": "ok"}
    assert mad_kind(port.sent[-1][1]) == "0x03/0x02/0x0030"  # GUIDInfoRecord Set
    [answer] = call(daemon, control, encode({"type": "vf_detached", "vm": "vm9"}))
    assert answer["type"] == "error" and "vm9" in str(answer["error"])
    [answer] = call(daemon, control, encode({"type": "vm_left", "vm": "vm0", "vguid": 7}))
    assert answer["type"] == "error"  # 7 is no alias GUID of this host
    control.close()


def test_restarted_with_its_state_it_asks_for_every_alias_again_and_subscribes(
    tmp_path: Path,
) -> None:
    first, _port, _out = make(tmp_path)
    first.start()
    control = connect(first)
    call(first, control, encode({"type": "vm_arrived", "vm": "vm0", "vguid": VGUID}))
    call(first, control, encode({"type": "vf_attached", "vm": "vm0"}))
    control.close()
    first.close()
    assert json.loads((tmp_path / "state.json").read_text()) == {
        "vms": {"vm0": {"attached": True, "vf": 1, "vguid": VGUID}}
    }
    second, port, out = make(tmp_path)
    second.start()
    second.step(0)  # the alias GUID work runs once start's calls are done
    kinds = sorted(mad_kind(mad) for _h, mad in port.sent)
    assert kinds == ["0x03/0x02/0x0003", "0x03/0x02/0x0030"]
    assert any(e["event"] == "restored" and e["vm"] == "vm0" for e in log_events(out))
    second.close()


def test_mads_of_no_guest_are_counted_and_dropped(
    dom0: tuple[Dom0Daemon, FakePort, io.StringIO],
) -> None:
    daemon, port, _out = dom0
    req = bytearray(256)
    req[0:4] = bytes([1, CM_CLASS, 2, 0x03])
    req[16:18] = (0x0010).to_bytes(2, "big")  # a REQ for a GID nobody here has
    smp = bytes([1, 0x81, 1, 0x01]).ljust(256, b"\0")
    port.incoming += [(UmadHeader(3, lid=9, qpn=1), bytes(req)), (UmadHeader(1, lid=1), smp)]
    daemon.step(0)
    assert daemon.counters["cm_no_vm"] == 1 and daemon.counters["smp_ignored"] == 1
    assert len(port.sent) == 1  # nothing answered: only the subscription left


def test_a_report_nobody_here_subscribed_to_is_dropped_unanswered(tmp_path: Path) -> None:
    daemon, port, _out = make(tmp_path, subscribe=False)  # per-VM: dom0 does not subscribe
    daemon.start()
    assert port.sent == []
    report = bytes([1, SA_CLASS, 2, 0x06]).ljust(256, b"\0")
    port.incoming.append((UmadHeader(2, lid=1, qpn=1), report))
    daemon.step(0)
    assert daemon.counters["report_no_subscriber"] == 1
    assert port.sent == []  # no ReportResp: the SA resends, then gives up
    daemon.close()


def test_a_state_file_naming_a_vf_it_lacks_is_logged_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(
        json.dumps({"vms": {"vm0": {"vguid": VGUID, "vf": 99, "attached": True}}})
    )
    daemon, _port, out = make(tmp_path)
    daemon.start()
    refused = [e for e in log_events(out) if e["event"] == "state_refused"]
    assert len(refused) == 1 and "99" in str(refused[0]["error"])
    assert log_events(out)[-1]["event"] == "ready"
    daemon.close()


class RawGuest:
    """A guest speaking the channel protocol by hand."""

    def __init__(self, daemon: Dom0Daemon, vm: str) -> None:
        self.daemon = daemon
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(daemon.channel_path)
        self.sock.setblocking(False)
        self.reader = FrameReader()
        self.sock.sendall(encode({"type": "hello", "role": "guest", "vm": vm}))

    def send(self, message: dict[str, object]) -> None:
        self.sock.sendall(encode(message))

    def close(self) -> None:
        self.sock.close()

    def received(self) -> list[dict[str, object]]:
        got: list[dict[str, object]] = []
        for _ in range(20):
            self.daemon.step(0.005)
            with contextlib.suppress(BlockingIOError):
                got += self.reader.feed(self.sock.recv(65536))
        return got


def vm_up(daemon: Dom0Daemon, port: FakePort, vm: str, vguid: int) -> None:
    """The orchestrator places `vm`; the SA acknowledges its alias GUID (a GetResp
    echoing the record of the Set: the block holds the GUID)."""
    control = connect(daemon)
    call(daemon, control, encode({"type": "vm_arrived", "vm": vm, "vguid": vguid}))
    call(daemon, control, encode({"type": "vf_attached", "vm": vm}))
    control.close()
    _header, request = port.sent[-1]
    assert mad_kind(request) == "0x03/0x02/0x0030"
    port.incoming.append((UmadHeader(2, lid=1, qpn=1), request[:3] + b"\x81" + request[4:]))
    daemon.step(0)


def test_a_guest_is_told_its_gid_and_lid_once_its_alias_is_acknowledged(
    dom0: tuple[Dom0Daemon, FakePort, io.StringIO],
) -> None:
    daemon, port, _out = dom0
    guest = RawGuest(daemon, "vm0")
    assert guest.received() == []  # not up yet
    vm_up(daemon, port, "vm0", VGUID)
    [attached] = guest.received()
    assert attached == {
        "v": 1, "type": "attached", "lid": 5, "gid": f"fe80000000000000{VGUID:016x}",
        "sa_lid": 1, "port_num": 1,
    }  # fmt: skip
    guest.close()


def test_a_guests_sa_request_leaves_with_a_tid_of_dom0s_and_the_answer_comes_back_with_its_own(
    dom0: tuple[Dom0Daemon, FakePort, io.StringIO],
) -> None:
    daemon, port, _out = dom0
    guest = RawGuest(daemon, "vm0")
    vm_up(daemon, port, "vm0", VGUID)
    guest.received()
    query = bytearray(256)
    query[0:4] = bytes([1, SA_CLASS, 2, 0x01])  # SubnAdmGet
    query[8:16] = (7).to_bytes(8, "big")
    query[16:18] = (0x0035).to_bytes(2, "big")  # PathRecord
    guest.send({"type": "mad", "mad": query.hex(), "dlid": 1, "dqp": 1, "sl": 0, "qkey": 0})
    guest.received()
    header, sent = port.sent[-1]
    assert (header.agent_id, header.lid, header.qpn, header.timeout_ms) == (2, 1, 1, 2000)
    tid = int.from_bytes(sent[8:16], "big")
    assert tid != 7 and tid >> 31 == 1 and sent[16:] == bytes(query[16:])
    # The MAD layer rewrote the top bits; the answer's low 32 bits find the guest.
    answer = sent[:3] + b"\x81" + sent[4:8] + (tid | 0x0003_0000 << 32).to_bytes(8, "big")
    port.incoming.append((UmadHeader(2, lid=1, qpn=1, sl=0), answer + sent[16:]))
    [mad] = guest.received()
    assert mad["type"] == "mad" and mad["slid"] == 1 and mad["sqp"] == 1
    assert bytes.fromhex(str(mad["mad"]))[8:16] == (7).to_bytes(8, "big")
    assert daemon.sent["guest 0x03/0x01/0x0035"] == 1
    guest.close()


def test_cm_mads_reach_the_vm_by_the_reqs_gid_then_by_communication_id(
    dom0: tuple[Dom0Daemon, FakePort, io.StringIO],
) -> None:
    daemon, port, _out = dom0
    vm0, vm1 = RawGuest(daemon, "vm0"), RawGuest(daemon, "vm1")
    vm_up(daemon, port, "vm0", VGUID)
    vm_up(daemon, port, "vm1", VGUID + 1)
    vm0.received()
    vm1.received()
    req = bytearray(256)
    req[0:4] = bytes([1, CM_CLASS, 2, 0x03])
    req[16:18] = (0x0010).to_bytes(2, "big")
    req[24:28] = (0xAAAA).to_bytes(4, "big")  # the client's Local Comm ID
    # Primary Remote Port GID (IBA Vol 1, 12.6.5): MAD bytes 96..111.
    req[96:112] = bytes.fromhex(f"fe80000000000000{VGUID + 1:016x}")
    port.incoming.append((UmadHeader(3, lid=9, qpn=1), bytes(req)))
    assert vm0.received() == []
    [got] = vm1.received()
    assert bytes.fromhex(str(got["mad"])) == bytes(req) and got["slid"] == 9
    # vm1 answers with a REP (its Local Comm ID 0xBBBB); the RTU names it.
    rep = bytearray(256)
    rep[0:4] = bytes([1, CM_CLASS, 2, 0x03])
    rep[16:18] = (0x0013).to_bytes(2, "big")
    rep[24:28] = (0xBBBB).to_bytes(4, "big")
    rep[28:32] = (0xAAAA).to_bytes(4, "big")
    vm1.send({"type": "mad", "mad": rep.hex(), "dlid": 9, "dqp": 1, "sl": 0, "qkey": 0})
    vm1.received()
    assert mad_kind(port.sent[-1][1]) == "0x07/0x03/0x0013"
    assert port.sent[-1][0].timeout_ms == 0  # a CM Send waits for no response
    rtu = bytearray(256)
    rtu[0:4] = bytes([1, CM_CLASS, 2, 0x03])
    rtu[16:18] = (0x0014).to_bytes(2, "big")
    rtu[24:28] = (0xAAAA).to_bytes(4, "big")
    rtu[28:32] = (0xBBBB).to_bytes(4, "big")
    port.incoming.append((UmadHeader(3, lid=9, qpn=1), bytes(rtu)))
    assert vm0.received() == []
    [got] = vm1.received()
    assert bytes.fromhex(str(got["mad"]))[16:18] == b"\x00\x14"
    vm0.close()
    vm1.close()


def test_a_guests_path_registration_reaches_the_engine(
    dom0: tuple[Dom0Daemon, FakePort, io.StringIO],
) -> None:
    daemon, port, _out = dom0
    guest = RawGuest(daemon, "vm0")
    vm_up(daemon, port, "vm0", VGUID)
    guest.received()
    moved = f"fe80000000000000{VGUID + 9:016x}"
    guest.send({"type": "path_registered", "gid": moved})
    guest.received()
    status = connect(daemon)
    [answer] = call(daemon, status, encode({"type": "status"}))
    assert answer["registrations"] == {"vm0": [moved]}
    assert daemon.host.registered_vms(bytes.fromhex(moved)) == ("vm0",)
    status.close()
    guest.close()
