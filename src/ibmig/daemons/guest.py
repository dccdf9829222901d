"""A guest agent as a process: the `GuestAgent` engine over dom0's channel.

The engine is the simulator's (`ibmig.core.guest`): a path cache, PathRecord
queries to the SA, the CM (REQ/REP/RTU, DREQ/DREP) and RC queue pairs, and the
client streams of its workload. This module carries its MADs and messages:

- its QP1 MADs go to dom0 as `mad` frames and arrive from it likewise
  (`ibmig.daemons.dom0`: shared-port VFs have their QP1 paravirtualized by the PF,
  as mlx4 does). Under ibsim that is also the only way: ibsim hands a request for a
  port's QP1 to one client only, and dom0 is that client;
- the data plane is not carried: ibsim simulates management datagrams only (no RC
  traffic, no latency model). The RC packets the engine emits are counted
  (`not_carried`) and dropped, and the QPs run without a local ACK timer
  (`local_ack_timeout` 0), so that a connection stays up until the CM or a
  path-change notice says otherwise. A stale connection is therefore *not*
  detected by its QP here, only by signalling: under the `none` strategy the peer
  keeps its old path;
- `attached` from dom0 attaches (or, after a migration, resumes) the stack with the
  LID, GID and SA LID dom0 gives; `attached` again on a channel reconnected to a
  restarted dom0 re-registers every path (`dom0_restarted`); `detached` detaches
  it and names the next dom0's channel (the VM migrates: its memory, and so the
  engine, goes along); `path_change` is dom0's forwarded notice.

The channel is reconnected every `reconnect_s` while it is down (dom0 restarting,
or not yet listening at a migration's destination).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

from ibmig.core.engine import QP1, Datagram
from ibmig.core.guest import GuestAgent
from ibmig.core.host import ForwardPathChange, PathRegistered, PathUnregistered
from ibmig.daemons.channel import ChannelError, FrameReader, encode, path_values
from ibmig.daemons.dom0 import mad_kind
from ibmig.daemons.log import EventLog

UD_SEND_ONLY: Final = 0x64


class GuestDaemon:
    """One guest's stack on dom0's channel (module docstring)."""

    def __init__(
        self,
        agent: GuestAgent,
        vm: str,
        channel_path: str,
        log: EventLog,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        reconnect_s: float = 0.1,
    ) -> None:
        self.agent = agent
        self.vm = vm
        self.channel_path = channel_path
        self.log = log
        self.clock = clock
        self.reconnect_s = reconnect_s
        self.sent: Counter[str] = Counter()  # MADs given to dom0, by class/method/attr
        self.counters: Counter[str] = Counter()
        self.ever_attached = False
        self._sock: socket.socket | None = None
        self._reader = FrameReader()
        self._out = bytearray()
        self._next_try = 0.0
        self._selector = selectors.EpollSelector()

    # --- the channel --------------------------------------------------------------

    def _connect(self) -> None:
        if self._sock is not None or time.monotonic() < self._next_try:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.channel_path)
        except OSError:
            sock.close()
            self._next_try = time.monotonic() + self.reconnect_s
            return
        sock.setblocking(False)
        self._sock = sock
        self._reader = FrameReader()
        self._out = bytearray(encode({"type": "hello", "role": "guest", "vm": self.vm}))
        self._selector.register(sock, selectors.EVENT_READ)
        self.log.line("channel_connected", channel=self.channel_path)

    def _disconnect(self) -> None:
        sock = self._sock
        if sock is None:
            return
        self._flush()
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        sock.close()
        self._sock = None
        self._out.clear()
        self._next_try = time.monotonic() + self.reconnect_s

    def close(self) -> None:
        self._disconnect()
        self._selector.close()

    def _send(self, message: dict[str, Any]) -> None:
        if self._sock is not None:
            self._out += encode(message)

    def _flush(self) -> None:
        sock = self._sock
        while sock is not None and self._out:
            try:
                sent = sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._out.clear()
                return
            del self._out[:sent]

    # --- the loop -----------------------------------------------------------------

    def step(self, max_wait_s: float) -> None:
        self._connect()
        self._flush()  # a hello just queued must not wait for the select
        wait = max_wait_s
        deadline = self.agent.get_timer()
        if deadline is not None:
            wait = max(0.0, min(wait, (deadline - self.clock()) / 1e9))
        if self._sock is None:
            time.sleep(min(wait, self.reconnect_s))
        elif self._selector.select(wait):
            self._read()
        now = self.clock()
        timer = self.agent.get_timer()
        if timer is not None and timer <= now:
            self.agent.handle_timer(now)
        self._collect()
        self._flush()

    def _read(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.log.line("channel_closed", channel=self.channel_path)
            self._disconnect()
            return
        try:
            messages = self._reader.feed(data)
        except ChannelError as exc:
            self.log.line("channel_error", error=str(exc))
            self._disconnect()
            return
        for message in messages:
            try:
                self._handle(message)
            except ChannelError as exc:  # a well-framed message with a bad value
                self.log.line("channel_error", error=str(exc))
            self._collect()

    def _handle(self, message: dict[str, Any]) -> None:
        agent = self.agent
        now = self.clock()
        kind = message["type"]
        if kind == "attached":
            gid = bytes.fromhex(message["gid"])
            if agent.attached:
                # The channel came back to a restarted dom0: it knows none of our paths.
                agent.dom0_restarted(now)
                self.log.line("dom0_restarted")
            elif self.ever_attached:
                agent.resume(
                    now, port_num=message["port_num"], lid=message["lid"], gid=gid,
                    sa_lid=message["sa_lid"],
                )  # fmt: skip
            else:
                agent.attach(message["port_num"], message["lid"], gid, message["sa_lid"], now)
                self.ever_attached = True
        elif kind == "detached":
            agent.detach(now)
            next_channel = message.get("next_channel")
            if next_channel:
                self.channel_path = next_channel
            self._collect()
            self._disconnect()
            self._next_try = 0.0  # the destination's dom0 may be there already
        elif kind == "path_change":
            change = ForwardPathChange(
                self.vm, bytes.fromhex(message["gid"]), message["new_lid"], path_values(message)
            )
            agent.receive_intra_host(change, now)
        elif kind == "mad":
            mad = bytes.fromhex(message["mad"])
            agent.receive(
                Datagram(
                    mad, agent.port_num, int(message.get("slid", 0)), agent.lid,
                    int(message.get("sqp", QP1)), QP1, sl=int(message.get("sl", 0)),
                    qkey=int(message.get("qkey", 0)), dgid=agent.gid,
                ),
                now,
            )  # fmt: skip
        elif kind == "error":
            self.log.line("dom0_error", error=message["error"])
        else:
            self.counters["ignored"] += 1

    def _collect(self) -> None:
        agent = self.agent
        mads = sum(self.sent.values())
        for datagram in agent.packets_to_send():
            if datagram.opcode != UD_SEND_ONLY or datagram.sqp != QP1:
                self.counters["not_carried"] += 1  # the data plane (module docstring)
                continue
            if self._sock is None:
                self.counters["channel_down"] += 1
                continue
            self.sent[mad_kind(datagram.payload)] += 1
            self._send(
                {
                    "type": "mad",
                    "mad": datagram.payload.hex(),
                    "dlid": datagram.dlid,
                    "dqp": datagram.dqp,
                    "sl": datagram.sl,
                    "qkey": datagram.qkey,
                }
            )
        for message in agent.intra_host_to_send():
            if isinstance(message, PathRegistered):
                self._send({"type": "path_registered", "gid": message.gid.hex()})
            elif isinstance(message, PathUnregistered):
                self._send({"type": "path_unregistered", "gid": message.gid.hex()})
        while (event := agent.next_event()) is not None:
            self.log.engine_event(event)
        if sum(self.sent.values()) != mads:
            self.log.line("mads", sent=dict(sorted(self.sent.items())))
