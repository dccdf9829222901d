"""The guest daemon without a fabric: a hand-made dom0 on a Unix socket (attach,
the MADs it relays, a detach that names the next dom0, a malformed frame)."""

from __future__ import annotations

import io
import json
import random
import socket
from pathlib import Path

from ibmig.core.guest import GuestAgent
from ibmig.core.guest.config import GuestConfig
from ibmig.daemons.channel import FrameReader, encode
from ibmig.daemons.guest import GuestDaemon
from ibmig.daemons.log import EventLog

PEER_GID = bytes.fromhex("fe800000000000000002c9fe00000001")
OWN_GID = "fe800000000000000002c9fe00000002"


class FakeDom0:
    def __init__(self, path: Path) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.listener.settimeout(5)
        self.conn: socket.socket | None = None
        self.reader = FrameReader()

    def accept(self) -> None:
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(0.05)

    def messages(self, daemon: GuestDaemon, steps: int = 20) -> list[dict[str, object]]:
        got: list[dict[str, object]] = []
        for _ in range(steps):
            daemon.step(0.005)
            assert self.conn is not None
            try:
                data = self.conn.recv(65536)
            except TimeoutError:
                continue
            got += self.reader.feed(data)
        return got

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


def make(path: Path) -> tuple[GuestDaemon, io.StringIO]:
    agent = GuestAgent(
        ip="10.0.0.2", rng=random.Random(1), peers=[("10.0.0.1", PEER_GID)],
        config=GuestConfig(local_ack_timeout=0), name="vm1",
    )  # fmt: skip
    out = io.StringIO()
    daemon = GuestDaemon(agent, "vm1", str(path), EventLog("guest vm1", out, lambda: 1.0))
    return daemon, out


def events(out: io.StringIO) -> list[str]:
    return [json.loads(line)["event"] for line in out.getvalue().splitlines()]


def test_attached_it_registers_its_path_and_asks_the_sa_through_dom0(tmp_path: Path) -> None:
    dom0 = FakeDom0(tmp_path / "a.sock")
    daemon, out = make(tmp_path / "a.sock")
    daemon.step(0)
    dom0.accept()
    [hello] = dom0.messages(daemon)
    assert hello == {"v": 1, "type": "hello", "role": "guest", "vm": "vm1"}
    attached = {"type": "attached", "lid": 17, "gid": OWN_GID, "sa_lid": 1, "port_num": 1}
    assert dom0.conn is not None
    dom0.conn.sendall(encode(attached))
    got = dom0.messages(daemon)
    # (the query may be sent again: the loop here is slower than the SA time-out)
    assert [m["type"] for m in got[:2]] == ["mad", "path_registered"]
    mad, registered = got[:2]
    assert registered["gid"] == PEER_GID.hex()
    raw = bytes.fromhex(str(mad["mad"]))
    assert (raw[1], raw[3], raw[16:18]) == (0x03, 0x01, b"\x00\x35")  # PathRecord Get
    assert (mad["dlid"], mad["dqp"]) == (1, 1)
    assert "Attached" in events(out) and daemon.agent.lid == 17
    daemon.close()
    dom0.close()


def test_detached_it_follows_the_vm_to_the_next_dom0_and_resumes(tmp_path: Path) -> None:
    src = FakeDom0(tmp_path / "src.sock")
    dst = FakeDom0(tmp_path / "dst.sock")
    daemon, out = make(tmp_path / "src.sock")
    daemon.step(0)
    src.accept()
    assert src.conn is not None
    src.conn.sendall(
        encode({"type": "attached", "lid": 3, "gid": OWN_GID, "sa_lid": 1, "port_num": 1})
    )
    src.messages(daemon)
    src.conn.sendall(encode({"type": "detached", "next_channel": str(tmp_path / "dst.sock")}))
    src.messages(daemon, steps=3)
    dst.accept()
    assert dst.conn is not None
    [hello] = dst.messages(daemon)
    assert hello["vm"] == "vm1"
    dst.conn.sendall(
        encode({"type": "attached", "lid": 17, "gid": OWN_GID, "sa_lid": 1, "port_num": 1})
    )
    dst.messages(daemon)
    assert daemon.agent.lid == 17
    assert [e for e in events(out) if e in ("Attached", "Detached")] == [
        "Attached", "Detached", "Attached",
    ]  # fmt: skip
    assert '"resumed":true' in out.getvalue()
    daemon.close()
    src.close()
    dst.close()


def test_a_malformed_frame_from_dom0_is_logged_and_the_channel_reopened(tmp_path: Path) -> None:
    dom0 = FakeDom0(tmp_path / "a.sock")
    daemon, out = make(tmp_path / "a.sock")
    daemon.reconnect_s = 0.0
    daemon.step(0)
    dom0.accept()
    dom0.messages(daemon)
    assert dom0.conn is not None
    dom0.conn.sendall(b"\x00\x00\x00\x02{]")
    dom0.messages(daemon, steps=3)
    assert "channel_error" in events(out)
    first = dom0.conn
    dom0.accept()  # it came back
    [hello] = dom0.messages(daemon)
    assert hello["type"] == "hello"
    first.close()
    daemon.close()
    dom0.close()
