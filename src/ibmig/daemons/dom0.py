"""dom0 as a process: the `HostAgent` engine over a umad port, its guests on a
local channel, and a control interface for the migration orchestrator.

The engine is the one the simulator pumps (`ibmig.core.host`): it registers and
releases the VMs' alias GUIDs through the SA (GUIDInfoRecord Set/Delete), keeps the
vGUID -> LID mapping table, subscribes once for path changes from the physical
port (per-host strategy) and forwards each notice to the local guests that hold a
path to the moved GID. This module only carries its MADs and messages.

The VMs' QP1 is paravirtualized by dom0
---------------------------------------
In the shared-port model a VF has no QP1 of its own on the wire: MADs to the port's
LID at QP1 arrive at one place, and someone must hand each to the right function.
mlx4 does it in the PF driver (Linux drivers/infiniband/hw/mlx4/mad.c: the PF
receives every QP1 MAD on its proxy QPs and tunnels it to the slave it belongs to;
cm.c maps CM communication IDs to slaves; SA transaction IDs carry the slave).
dom0 does the same here, in user space, for the guests on its channel:

- a guest's MAD leaves through dom0's umad agent of its class. An SA request gets
  a TID of dom0's (low 32 bits unique on this port) and dom0 remembers whose it
  was, so that the answer goes back to that guest with the guest's own TID; a CM
  MAD's Local Comm ID is remembered as the guest's;
- an arriving CM REQ goes to the VM whose GID is the REQ's Primary Remote Port
  GID (IBA Vol 1, 12.6.5, bytes 56..71 of the primary path), any other CM message
  to the VM whose Local Comm ID it names as Remote Comm ID (12.6.6 ff.);
- a SubnAdmReport goes to dom0's engine when dom0 subscribed (per-host), else to
  a guest that subscribed (per-VM): a Report's TID is given to the subscribed
  guests in turn and a resend goes where its TID went; with no subscribed guest
  (the subscription of a VM that left) it is dropped, as the HCA would drop a
  datagram for a GID no VF holds;
- everything else of SA goes to the engine; SMPs (a kernel answers them; under
  ibsim the SM's queries of our IsSM port) are counted and dropped.

Why dom0 holds the port's issm device under ibsim: ibsim hands a request to QP1
of a port only to the client that claimed to be that port's SM (ibsim.c
`find_client`: "only issm clients may get requests"), and a Report or a CM REQ is
a request. On hardware the SA and CM reach QP1 without that, and dom0 would not
open issmN. ibsim carries no GRH either (its `sim_request` has LIDs and QPNs
only), which is why demultiplexing reads the MADs rather than the DGID, as a
real HCA would (`ibmig.core.host.demux`).

Life: `--state FILE` keeps what the toolstack and the hardware hold (which VM has
which vGUID, attached or not); a dom0 killed and started again reads it, asks the
SA for every alias again (acknowledged at once: the port holds them), subscribes
again and so rebuilds its table; guests reconnect to its channel and register
their paths again.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from ibmig.core.engine import QP1, Datagram
from ibmig.core.host import (
    ForwardPathChange,
    HostAgent,
    HostError,
    PathRegistered,
    PathUnregistered,
    VfDown,
    VfUp,
)
from ibmig.daemons.channel import ChannelError, FrameReader, encode, path_fields
from ibmig.daemons.log import EventLog
from ibmig.umad.abi import UmadHeader
from ibmig.umad.runtime import is_request
from ibmig.wire.mad import RESPONSE_BIT, Method, MgmtClass
from ibmig.wire.packet import QP1_QKEY
from ibmig.wire.sa import SaAttr

SA_CLASS: Final = int(MgmtClass.SUBN_ADM)
CM_CLASS: Final = int(MgmtClass.COMM_MGT)
SMI_CLASSES: Final = (int(MgmtClass.SUBN_LID_ROUTED), int(MgmtClass.SUBN_DIRECTED_ROUTE))
_REPORT: Final = int(Method.REPORT)
_SET: Final = int(Method.SET)
_INFORM_INFO: Final = int(SaAttr.INFORM_INFO)
_CM_REQ: Final = 0x0010  # IBA Vol 1, 12.6 (ibmig.wire.cm.CmAttributeId.REQ)
_MAD_HEADER: Final = 24
# The REQ's Primary Remote Port GID: MAD data offset 52 (primary path) + 2 + 2 + 16.
_REQ_REMOTE_GID: Final = _MAD_HEADER + 52 + 20
_LOW32: Final = 0xFFFF_FFFF

REQUEST_TIMEOUT_MS: Final = 2000
"""umad `timeout_ms` of an SA request: longer than the engines' own time-outs, which
retry (`ibmig.umad.device`: a kernel delivers an answer only to a waiting request)."""
GUEST_CLASSES: Final = (SA_CLASS, CM_CLASS)
SA_CLASS_VERSION: Final = 2
CM_CLASS_VERSION: Final = 2
SMI_CLASS_VERSION: Final = 1


class Dom0Port(Protocol):
    """What dom0 needs of a umad device (`ibmig.umad.device.UmadPort`)."""

    agents: dict[int, int]

    def send(self, header: UmadHeader, mad: bytes) -> bool: ...

    def recv(self) -> tuple[UmadHeader, bytes] | None: ...


def register_dom0_agents(port: Any) -> None:
    """SA and CM on QP1 (both receive requests: Reports, CM Sends), and SMI on QP0
    so that an SMP reaching our IsSM port under ibsim finds an agent (umad2sim
    crashes on a MAD of no registered class)."""
    for mgmt_class in SMI_CLASSES:
        port.register(0, mgmt_class, SMI_CLASS_VERSION, (int(Method.GET), int(Method.SET)))
    port.register(QP1, SA_CLASS, SA_CLASS_VERSION, (_REPORT, int(Method.GET)))
    port.register(QP1, CM_CLASS, CM_CLASS_VERSION, (int(Method.SEND),))


@dataclass
class _Guest:
    """A guest on the channel (or the VM it will be, before it connects)."""

    vm: str
    sock: socket.socket | None = None
    gid: bytes | None = None
    subscribed: bool = False


@dataclass
class _Conn:
    sock: socket.socket
    reader: FrameReader = field(default_factory=FrameReader)
    role: str | None = None
    vm: str | None = None
    out: bytearray = field(default_factory=bytearray)


class Dom0Daemon:
    """dom0 of one host over a umad port (module docstring)."""

    def __init__(
        self,
        port: Dom0Port,
        host: HostAgent,
        *,
        lid: int,
        sa_lid: int,
        channel_path: str,
        log: EventLog,
        state_path: str | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.port = port
        self.host = host
        self.lid = lid
        self.sa_lid = sa_lid
        self.log = log
        self.clock = clock
        self.channel_path = channel_path
        self.state_path = state_path
        self.sent: Counter[str] = Counter()
        """MADs sent through the port: dom0's own ("dom0 <class>/<method>") and its
        guests' ("guest <class>/<method>")."""
        self.counters: Counter[str] = Counter()
        self._vms: dict[str, dict[str, Any]] = {}  # the toolstack's state (--state)
        self._guests: dict[str, _Guest] = {}
        self._conns: dict[int, _Conn] = {}
        self._sa_tids: dict[int, tuple[str, int]] = {}  # our low 32 -> (vm, its TID)
        self._comm_ids: dict[int, str] = {}  # CM Local Comm ID -> VM
        self._report_owner: dict[int, str] = {}  # Report TID (low 32) -> VM
        self._report_turn = 0
        self._paths: dict[str, dict[bytes, None]] = {}  # what each guest registered
        # Guests' SA requests get TIDs with the top bit set, dom0's engine draws its own
        # from the same rng: a restarted dom0 does not reuse its predecessor's TIDs.
        self._tid = host.rng.getrandbits(31) | 1 << 31
        self._selector = selectors.EpollSelector()  # umad2sim interposes poll, not epoll
        self._listener = self._listen(channel_path)

    # --- set-up -------------------------------------------------------------------

    def _listen(self, path: str) -> socket.socket:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(16)
        listener.setblocking(False)
        self._selector.register(listener, selectors.EVENT_READ, None)
        return listener

    def start(self) -> None:
        """The port is active: restore the toolstack's VMs, subscribe."""
        now = self.clock()
        for vm, record in self._load_state().items():
            try:
                # On the VF it had: the port's GUIDInfo still holds its alias there.
                self.host.set_alias(vm, now, vguid=record["vguid"], vf=record.get("vf"))
                if record.get("attached"):
                    self.host.attach_vf(vm, now)
            except HostError as exc:
                self.log.line("state_refused", vm=vm, error=str(exc))
                continue
            self._vms[vm] = record
            self.log.line("restored", vm=vm, vguid=record["vguid"])
        self.host.port_active(self.lid, self.sa_lid, now)
        self._collect()
        self.log.line(
            "ready",
            lid=self.lid,
            sa_lid=self.sa_lid,
            port_guid=f"{self.host.port_guid:#018x}",
            channel=self.channel_path,
            subscribes=self.host.config.subscribe_path_changes,
        )

    def close(self) -> None:
        for conn in list(self._conns.values()):
            self._drop(conn, None)
        self._selector.unregister(self._listener)
        self._listener.close()
        with contextlib.suppress(OSError):
            os.unlink(self.channel_path)
        self._selector.close()

    # --- the loop -----------------------------------------------------------------

    def step(self, max_wait_s: float) -> None:
        """Wait (at most `max_wait_s`) for the channel; take what the port has, run
        the engine's due timer, send what it produced."""
        wait = max_wait_s
        deadline = self.host.get_timer()
        if deadline is not None:
            wait = max(0.0, min(wait, (deadline - self.clock()) / 1e9))
        for key, _mask in self._selector.select(wait):
            if key.data is None:
                self._accept()
            else:
                self._read(key.data)
        while (received := self.port.recv()) is not None:
            self._from_port(*received)
        now = self.clock()
        timer = self.host.get_timer()
        if timer is not None and timer <= now:
            self.host.handle_timer(now)
        self._collect()
        self._flush_conns()

    # --- the port -----------------------------------------------------------------

    def _from_port(self, header: UmadHeader, mad: bytes) -> None:
        mgmt_class, method = mad[1], mad[3]
        self.counters["mads_in"] += 1
        if header.status:
            self.counters["bounced"] += 1
            return  # the engines time out and retry
        datagram = Datagram(
            mad, self.host.port_num, header.lid, self.lid, header.qpn, QP1,
            sl=header.sl, qkey=header.qkey,
        )  # fmt: skip
        now = self.clock()
        if mgmt_class == SA_CLASS:
            tid = int.from_bytes(mad[8:16], "big")
            if method & RESPONSE_BIT:
                owner = self._sa_tids.pop(tid & _LOW32, None)
                if owner is not None:
                    owner_vm, guest_tid = owner
                    restored = mad[:8] + guest_tid.to_bytes(8, "big") + mad[16:]
                    self._to_guest(owner_vm, datagram._replace(payload=restored))
                    return
            elif method == _REPORT and not self.host.config.subscribe_path_changes:
                subscriber = self._report_guest(tid & _LOW32)
                if subscriber is not None:
                    self._to_guest(subscriber, datagram)
                else:
                    # Nobody here subscribed: a Report for a VM that left (its old
                    # subscription). The HCA would find no VF with that GID; drop it.
                    self.counters["report_no_subscriber"] += 1
                return
            self.host.receive(datagram, now)
        elif mgmt_class == CM_CLASS:
            vm = self._cm_guest(mad)
            if vm is None:
                self.counters["cm_no_vm"] += 1
                self.log.line("cm_dropped", attribute=int.from_bytes(mad[16:18], "big"))
            else:
                self._to_guest(vm, datagram)
        else:
            self.counters["smp_ignored" if mgmt_class in SMI_CLASSES else "unknown_class"] += 1

    def _report_guest(self, tid: int) -> str | None:
        owner = self._report_owner.get(tid)
        if owner is not None:
            return owner
        subscribed = [g.vm for g in self._guests.values() if g.subscribed and g.sock]
        if not subscribed:
            return None
        vm = subscribed[self._report_turn % len(subscribed)]
        self._report_turn += 1
        if len(self._report_owner) > 4096:
            del self._report_owner[next(iter(self._report_owner))]
        self._report_owner[tid] = vm
        return vm

    def _cm_guest(self, mad: bytes) -> str | None:
        if int.from_bytes(mad[16:18], "big") == _CM_REQ:
            gid = mad[_REQ_REMOTE_GID : _REQ_REMOTE_GID + 16]
            for guest in self._guests.values():
                if guest.gid == gid:
                    return guest.vm
            return None
        remote_comm_id = int.from_bytes(mad[_MAD_HEADER + 4 : _MAD_HEADER + 8], "big")
        return self._comm_ids.get(remote_comm_id)

    def _send(self, mad: bytes, dlid: int, dqp: int, sl: int, qkey: int, who: str) -> None:
        mgmt_class, method = mad[1], mad[3]
        agent = self.port.agents.get(mgmt_class)
        if agent is None:
            self.counters["no_agent"] += 1
            return
        request = is_request(method) and mgmt_class == SA_CLASS
        header = UmadHeader(
            agent,
            timeout_ms=REQUEST_TIMEOUT_MS if request else 0,
            qpn=dqp,
            qkey=qkey or QP1_QKEY,
            lid=dlid,
            sl=sl,
        )
        if self.port.send(header, mad):
            self.sent[f"{who} {mad_kind(mad)}"] += 1
        else:
            self.counters["send_refused"] += 1

    # --- the engine -----------------------------------------------------------------

    def _collect(self) -> None:
        host = self.host
        for datagram in host.packets_to_send():
            self._send(datagram.payload, datagram.dlid, datagram.dqp, datagram.sl,
                       datagram.qkey, "dom0")  # fmt: skip
        for message in host.intra_host_to_send():
            if isinstance(message, ForwardPathChange):
                self._message(
                    message.vm_id,
                    {
                        "type": "path_change",
                        "gid": message.gid.hex(),
                        "new_lid": message.new_lid,
                        **path_fields(message.path),
                    },
                )
        while (event := host.next_event()) is not None:
            self.log.engine_event(event)
            if isinstance(event, VfUp):
                guest = self._guests.setdefault(event.vm, _Guest(event.vm))
                guest.gid = event.gid
                self._announce(guest)
            elif isinstance(event, VfDown):
                down = self._guests.get(event.vm)
                if down is not None:
                    down.gid = None

    def _announce(self, guest: _Guest) -> None:
        if guest.sock is None or guest.gid is None:
            return
        self._message(
            guest.vm,
            {
                "type": "attached",
                "lid": self.lid,
                "gid": guest.gid.hex(),
                "sa_lid": self.sa_lid,
                "port_num": self.host.port_num,
            },
        )

    # --- the channel --------------------------------------------------------------

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        conn = _Conn(sock)
        self._conns[sock.fileno()] = conn
        self._selector.register(sock, selectors.EVENT_READ, conn)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn, None)
            return
        try:
            for message in conn.reader.feed(data):
                self._handle(conn, message)
        except ChannelError as exc:
            self.counters["channel_errors"] += 1
            self.log.line("channel_error", error=str(exc), role=conn.role, vm=conn.vm)
            self._reply(conn, {"type": "error", "error": str(exc)})
            self._flush(conn)
            self._drop(conn, None)

    def _drop(self, conn: _Conn, _reason: str | None) -> None:
        if self._conns.pop(conn.sock.fileno(), None) is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        if conn.vm is not None:
            guest = self._guests.get(conn.vm)
            if guest is not None and guest.sock is conn.sock:
                guest.sock = None
                guest.subscribed = False
        conn.sock.close()

    def _reply(self, conn: _Conn, message: dict[str, Any]) -> None:
        conn.out += encode(message)

    def _message(self, vm: str, message: dict[str, Any]) -> None:
        guest = self._guests.get(vm)
        conn = None if guest is None or guest.sock is None else self._conns.get(guest.sock.fileno())
        if conn is None:
            self.counters["to_absent_guest"] += 1
            return
        self._reply(conn, message)

    def _to_guest(self, vm: str, datagram: Datagram) -> None:
        self._message(
            vm,
            {
                "type": "mad",
                "mad": datagram.payload.hex(),
                "slid": datagram.slid,
                "sqp": datagram.sqp,
                "sl": datagram.sl,
                "qkey": datagram.qkey,
            },
        )

    def _flush_conns(self) -> None:
        for conn in list(self._conns.values()):
            self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        while conn.out:
            try:
                sent = conn.sock.send(conn.out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                conn.out.clear()
                self._drop(conn, None)
                return
            del conn.out[:sent]

    def _handle(self, conn: _Conn, message: dict[str, Any]) -> None:
        kind = message["type"]
        if conn.role is None:
            if kind != "hello" or message["role"] not in ("guest", "control"):
                raise ChannelError("the first message is hello, role guest or control")
            conn.role = message["role"]
            if conn.role == "guest":
                vm = message.get("vm")
                if not isinstance(vm, str) or not vm:
                    raise ChannelError("hello from a guest names its vm")
                conn.vm = vm
                guest = self._guests.setdefault(vm, _Guest(vm))
                guest.sock = conn.sock
                guest.subscribed = False
                self.log.line("guest_connected", vm=vm)
                self._announce(guest)
            return
        if conn.role == "guest":
            self._from_guest(conn, message)
        else:
            self._control(conn, message)

    def _from_guest(self, conn: _Conn, message: dict[str, Any]) -> None:
        vm = conn.vm
        assert vm is not None
        kind = message["type"]
        now = self.clock()
        if kind == "path_registered":
            gid = bytes.fromhex(message["gid"])
            self._paths.setdefault(vm, {})[gid] = None
            self.host.receive_intra_host(vm, PathRegistered(gid), now)
        elif kind == "path_unregistered":
            gid = bytes.fromhex(message["gid"])
            self._paths.get(vm, {}).pop(gid, None)
            self.host.receive_intra_host(vm, PathUnregistered(gid), now)
        elif kind == "mad":
            self._guest_mad(vm, message)
        else:
            raise ChannelError(f"a guest does not send {kind!r}")

    def _guest_mad(self, vm: str, message: dict[str, Any]) -> None:
        mad = bytes.fromhex(message["mad"])
        if len(mad) < _MAD_HEADER + 8:
            raise ChannelError(f"a MAD of {len(mad)} bytes")
        for name in ("dlid", "dqp", "sl", "qkey"):
            value = message.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ChannelError(f"mad: {name!r} is not a valid int")
        guest = self._guests.get(vm)
        if guest is None or guest.gid is None:
            self.counters["mad_from_detached"] += 1
            return
        mgmt_class, method = mad[1], mad[3]
        if mgmt_class == SA_CLASS and is_request(method):
            if method == _SET and int.from_bytes(mad[16:18], "big") == _INFORM_INFO:
                guest.subscribed = True  # its Reports are its to answer
            guest_tid = int.from_bytes(mad[8:16], "big")
            self._tid = (self._tid + 1) & _LOW32 or 1 << 31
            self._sa_tids[self._tid] = (vm, guest_tid)
            if len(self._sa_tids) > 4096:
                del self._sa_tids[next(iter(self._sa_tids))]
            mad = mad[:8] + self._tid.to_bytes(8, "big") + mad[16:]
        elif mgmt_class == CM_CLASS:
            self._comm_ids[int.from_bytes(mad[_MAD_HEADER : _MAD_HEADER + 4], "big")] = vm
        self._send(mad, message["dlid"], message["dqp"], message["sl"], message["qkey"], "guest")

    # --- control ------------------------------------------------------------------

    def _control(self, conn: _Conn, message: dict[str, Any]) -> None:
        kind = message["type"]
        now = self.clock()
        host = self.host
        try:
            if kind == "vm_arrived":
                vm, vguid = message["vm"], message["vguid"]
                vf = host.set_alias(vm, now, vguid=vguid)
                self._vms[vm] = {"vguid": vguid, "vf": vf, "attached": False}
            elif kind == "vf_attached":
                vm = message["vm"]
                host.attach_vf(vm, now)
                self._vms.setdefault(vm, {"vguid": 0})["attached"] = True
            elif kind == "vf_detached":
                vm = message["vm"]
                host.detach_vf(vm, now)
                if vm in self._vms:
                    self._vms[vm]["attached"] = False
                self._message(vm, {"type": "detached", "next_channel": message.get("next_channel")})
            elif kind == "vm_left":
                vm, vguid = message["vm"], message["vguid"]
                host.release_alias(vguid, now)
                host.remove_vm(vm)
                self._vms.pop(vm, None)
                self._paths.pop(vm, None)
                guest = self._guests.pop(vm, None)
                self._comm_ids = {c: v for c, v in self._comm_ids.items() if v != vm}
                if guest is not None and guest.sock is not None:
                    gconn = self._conns.get(guest.sock.fileno())
                    if gconn is not None:
                        self._flush(gconn)
                        self._drop(gconn, None)
            elif kind == "status":
                self._reply(conn, {"type": "ok", **self.status()})
                return
            else:
                raise ChannelError(f"the orchestrator does not send {kind!r}")
        except (HostError, ValueError) as exc:
            if isinstance(exc, ChannelError):
                raise
            self.log.line("control_error", request=kind, error=str(exc))
            self._reply(conn, {"type": "error", "error": str(exc)})
            return
        self.log.line("control", request=kind, vm=message.get("vm"))
        self._save_state()
        self._collect()
        self._reply(conn, {"type": "ok"})

    def status(self) -> dict[str, Any]:
        host = self.host
        return {
            "host": host.host_id,
            "lid": self.lid,
            "sa_lid": self.sa_lid,
            "subscribed": host.subscribed,
            "mapping": {f"{guid:#018x}": lid for guid, lid in sorted(host.mapping.items())},
            "vms": {vm: host.is_up(vm) for vm in self._vms},
            "registrations": {
                vm: [g.hex() for g in self._registered_gids(vm)] for vm in self._guests
            },
            "sent": dict(sorted(self.sent.items())),
            "counters": dict(sorted(self.counters.items())),
        }

    def _registered_gids(self, vm: str) -> list[bytes]:
        return [gid for gid in self._paths.get(vm, ()) if vm in self.host.registered_vms(gid)]

    # --- the toolstack's state ------------------------------------------------------

    def _load_state(self) -> dict[str, dict[str, Any]]:
        if not self.state_path:
            return {}
        try:
            data = json.loads(Path(self.state_path).read_text())
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as exc:
            self.log.line("state_unreadable", path=self.state_path, error=str(exc))
            return {}
        vms = data.get("vms", {}) if isinstance(data, dict) else {}
        return {
            vm: record
            for vm, record in vms.items()
            if isinstance(record, dict)
            and isinstance(record.get("vguid"), int)
            and isinstance(record.get("vf"), (int, type(None)))
        }

    def _save_state(self) -> None:
        if not self.state_path:
            return
        tmp = f"{self.state_path}.tmp"
        Path(tmp).write_text(json.dumps({"vms": self._vms}, sort_keys=True))
        os.replace(tmp, self.state_path)


def mad_kind(mad: bytes) -> str:
    """ "<class>/<method>/<attribute>" of a MAD, as the lab prints them (hex)."""
    return f"{mad[1]:#04x}/{mad[3]:#04x}/{int.from_bytes(mad[16:18], 'big'):#06x}"
