"""The dom0 daemon without a fabric: a fake umad port under a hand-driven clock and
its real Unix socket (malformed messages, the control interface, restart from the
toolstack's state, what it does with MADs of no guest)."""

from __future__ import annotations

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
