"""A pure-Python client of ibsim's socket protocol (no LD_PRELOAD, no libumad).

ibsim (linux-rdma/ibsim, Debian `ibsim-utils`) simulates a fabric's switches and
channel adapters and answers SMPs itself; everything it does not answer (SMInfo,
SA traffic, traps, Reports) it forwards to a *client* attached at the destination
port. Clients talk to it over abstract AF_UNIX datagram sockets (`include/ibsim.h`,
`ibsim/ibsim.c`, `umad2sim/sim_client.c`):

    <base>:ctl        ibsim's control socket (base = $IBSIM_SOCKNAME or "sim")
    <base>:out<N>     ibsim's data socket for client slot N (0..9)
    <base>:ctl<id>    a client's control socket (id: any nonzero number; umad2sim
                      uses its pid)
    <base>:in<id>     a client's data socket

Every name is an abstract name whose address carries one trailing NUL byte
(`"\\0sim:ctl\\0"`): ibsim computes the address length as strlen + 2, and connect()
to the name without the trailing NUL is refused.

Control frames (`struct sim_ctl`, host byte order): magic 0xdeadbeef, clientid
(the slot), type, len, 64 data bytes. CONNECT carries `struct sim_client_info`
(id, qp, issm, nodeid[32]); ibsim connects its out<slot> socket to our in<id>
socket *before* replying, so in<id> must be bound first (ibsim exits if it cannot
connect). The reply's id is the slot, and its nodeid the node we sit on. A reply of
type ERROR means refused (10 clients already, unknown node, a second SM on a node).

Data frames (`struct sim_request`), exactly 288 bytes:

    0   dlid     (16-bit big-endian value in a 32-bit slot: bytes 0-1, then 2 zero)
    4   slid     (same; 0 asks ibsim to fill in the client's LID for LID-routed MADs)
    8   dqp      (big-endian 32)
    12  sqp      (big-endian 32)
    16  status   (big-endian 32; 110 = ETIMEDOUT: ibsim dropped the MAD)
    20  padding
    24  length   (big-endian 64; bytes of MAD)
    32  mad[256]

Routing of what ibsim forwards: requests go to the client that registered the
destination QP (qp > 1), or for QP0/QP1 to the client attached with issm=1 at the
destination port; responses go to the client whose slot is in the top 16 bits of
the TID, which ibsim writes into every request a client sends. A MAD that cannot
be delivered (no route, nobody listening, an injected error) comes back to its
sender with status 110 at once: there is no timeout to wait for.

ibsim answers each MAD synchronously and, when a client's socket is full, spins on
its write until the client reads. A client that blocks on a send while its own
input queue is full therefore deadlocks ibsim; this client's sends never block
(`send()` returns False and the caller drains input first).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from ibmig.errors import ConfigError, WireError
from ibmig.wire.mad import MAD_SIZE
from ibmig.wire.smp_attrs import NodeInfo, PortInfo

SIM_MAGIC = 0xDEADBEEF
SIM_CTL_MAX_DATA = 64
IBSIM_MAX_CLIENTS = 10
SIM_BASENAME = "sim"
STATUS_DROPPED = 110  # ETIMEDOUT, what ibsim writes into a MAD it could not deliver
NODEID_SIZE = 32


class IbsimError(ConfigError):
    """ibsim is not there, refused us, or answered something we cannot read."""


class SimCtlType(IntEnum):
    """`enum SIM_CTL_TYPES` (include/ibsim.h)."""

    ERROR = 0x0
    CONNECT = 0x1
    DISCONNECT = 0x2
    GET_PORT = 0x3
    GET_VENDOR = 0x4
    GET_GID = 0x5
    GET_GUID = 0x6
    GET_NODEINFO = 0x7
    GET_PORTINFO = 0x8
    SET_ISSM = 0x9
    GET_PKEYS = 0xA


# Control structures are in the host's byte order (ibsim memcpy's them); "=" is
# native order with standard sizes and no padding, which matches these layouts.
_CTL = struct.Struct("=IIII64s")
_CLIENT_INFO = struct.Struct("=III32s")
_PORT = struct.Struct("=HB")
_VENDOR = struct.Struct("=III4xQ")  # uint64 fw_ver aligned to 8
_U64 = struct.Struct("=Q")
_U32 = struct.Struct("=I")
_REQUEST = struct.Struct(">H2xH2xIII4xQ256s")
REQUEST_STRUCT = _REQUEST
"""`struct sim_request` as a precompiled struct: dlid, slid, dqp, sqp, status, length,
mad (for hot paths that skip the `SimRequest` object)."""


def _check_u(name: str, value: int, bits: int) -> None:
    if not 0 <= value < 1 << bits:
        raise WireError(f"{name} {value} does not fit {bits} bits")


@dataclass(frozen=True, slots=True)
class SimCtl:
    """`struct sim_ctl`: one control frame, 80 bytes."""

    type: int
    clientid: int = 0
    data: bytes = bytes(SIM_CTL_MAX_DATA)
    length: int = 0
    magic: int = SIM_MAGIC

    SIZE: ClassVar[int] = _CTL.size

    def pack(self) -> bytes:
        if len(self.data) > SIM_CTL_MAX_DATA:
            raise WireError(f"sim_ctl data holds {SIM_CTL_MAX_DATA} bytes, got {len(self.data)}")
        try:
            return _CTL.pack(self.magic, self.clientid, self.type, self.length, self.data)
        except struct.error as exc:
            raise WireError(f"sim_ctl field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes) -> SimCtl:
        if len(data) != _CTL.size:
            raise WireError(f"sim_ctl is {_CTL.size} bytes, got {len(data)}")
        magic, clientid, kind, length, body = _CTL.unpack(data)
        with contextlib.suppress(ValueError):
            kind = SimCtlType(kind)
        return cls(kind, clientid, body, length, magic)


@dataclass(frozen=True, slots=True)
class SimClientInfo:
    """`struct sim_client_info`: the CONNECT payload, 44 bytes."""

    id: int
    qp: int = 0
    issm: bool = False
    nodeid: str = ""

    SIZE: ClassVar[int] = _CLIENT_INFO.size

    def pack(self) -> bytes:
        name = self.nodeid.encode()
        if len(name) >= NODEID_SIZE:
            raise WireError(f"nodeid {self.nodeid!r} is longer than {NODEID_SIZE - 1} bytes")
        try:
            return _CLIENT_INFO.pack(self.id, self.qp, int(self.issm), name)
        except struct.error as exc:
            raise WireError(f"sim_client_info field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes) -> SimClientInfo:
        if len(data) < _CLIENT_INFO.size:
            raise WireError(f"sim_client_info is {_CLIENT_INFO.size} bytes, got {len(data)}")
        ident, qp, issm, name = _CLIENT_INFO.unpack_from(data)
        return cls(ident, qp, bool(issm), name.split(b"\0", 1)[0].decode(errors="replace"))


@dataclass(frozen=True, slots=True)
class SimRequest:
    """`struct sim_request`: one MAD with its addressing, 288 bytes (module doc)."""

    dlid: int
    slid: int
    dqp: int
    sqp: int
    mad: bytes
    status: int = 0
    length: int = MAD_SIZE

    SIZE: ClassVar[int] = _REQUEST.size

    @property
    def dropped(self) -> bool:
        return self.status == STATUS_DROPPED

    def pack(self) -> bytes:
        if len(self.mad) > MAD_SIZE:
            raise WireError(f"a sim_request carries {MAD_SIZE} MAD bytes, got {len(self.mad)}")
        _check_u("dlid", self.dlid, 16)
        _check_u("slid", self.slid, 16)
        try:
            return _REQUEST.pack(
                self.dlid, self.slid, self.dqp, self.sqp, self.status, self.length, self.mad
            )
        except struct.error as exc:
            raise WireError(f"sim_request field out of range: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes) -> SimRequest:
        if len(data) != _REQUEST.size:
            raise WireError(f"sim_request is {_REQUEST.size} bytes, got {len(data)}")
        dlid, slid, dqp, sqp, status, length, mad = _REQUEST.unpack(data)
        return cls(dlid, slid, dqp, sqp, mad, status, length)


@dataclass(frozen=True, slots=True)
class SimVendor:
    """`struct sim_vendor` (GET_VENDOR)."""

    vendor_id: int
    vendor_part_id: int
    hw_ver: int
    fw_ver: int


def abstract_name(name: str) -> bytes:
    """The abstract AF_UNIX address ibsim binds or connects for `name`."""
    return b"\0" + name.encode() + b"\0"


def socket_basename(sockname: str | None = None) -> str:
    return sockname or os.environ.get("IBSIM_SOCKNAME") or SIM_BASENAME


def is_listening(sockname: str | None = None) -> bool:
    """Whether an ibsim has bound `<base>:ctl` (probed with a connect, no frame sent)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(abstract_name(f"{socket_basename(sockname)}:ctl"))
    except OSError:
        return False
    finally:
        probe.close()
    return True


class IbsimClient:
    """One client of ibsim: a control socket and a data socket.

    `node` is the node to attach at (its name in the net file, or its
    NodeDescription); None attaches at ibsim's default port (the first port of the
    first node in the file). With `issm` the client receives the QP0/QP1 requests
    addressed to its port (it is that port's SM and SA); with `qp` > 1 it receives
    the requests sent to that QP number at its port.
    """

    def __init__(
        self,
        *,
        sockname: str | None = None,
        node: str | None = None,
        issm: bool = False,
        qp: int = 0,
        ctl_timeout_s: float = 5.0,
    ) -> None:
        self.base = socket_basename(sockname)
        self.requested_node = node
        self.issm = issm
        self.qp = qp
        self.ctl_timeout_s = ctl_timeout_s
        self.slot = -1
        self.client_id = 0
        self.node = ""
        self._ctl: socket.socket | None = None
        self._data: socket.socket | None = None

    # --- connection -----------------------------------------------------------------

    def connect(self) -> IbsimClient:
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        data = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.client_id = self._bind_pair(ctl, data)
            try:
                ctl.connect(abstract_name(f"{self.base}:ctl"))
            except OSError as exc:
                raise IbsimError(
                    f"no ibsim listening on {self.base}:ctl ({exc.strerror})", "IBSIM_SOCKNAME"
                ) from None
            ctl.settimeout(self.ctl_timeout_s)
            self._ctl = ctl
            info = SimClientInfo(self.client_id, self.qp, self.issm, self.requested_node or "")
            reply = self._ctl_exchange(SimCtlType.CONNECT, info.pack(), clientid=0)
            answer = SimClientInfo.unpack(reply)
            self.slot = answer.id
            self.node = answer.nodeid
            data.connect(abstract_name(f"{self.base}:out{self.slot}"))
            data.setblocking(False)
            self._data = data
        except BaseException:
            self._ctl = None
            ctl.close()
            data.close()
            raise
        return self

    def _bind_pair(self, ctl: socket.socket, data: socket.socket) -> int:
        # Names must be unique among the clients of this ibsim: the pid, then the
        # pid plus a multiple of 2^22 (above any pid) for more clients in one process.
        pid = os.getpid()
        for k in range(1024):
            ident = pid + (k << 22)
            try:
                ctl.bind(abstract_name(f"{self.base}:ctl{ident}"))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise
            try:
                data.bind(abstract_name(f"{self.base}:in{ident}"))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    # ctl is bound already; a socket binds once, so start over.
                    raise IbsimError(f"{self.base}:in{ident} is taken") from None
                raise
            return ident
        raise IbsimError(f"no free client name under {self.base}")

    def _ctl_exchange(
        self, kind: SimCtlType, payload: bytes = b"", clientid: int | None = None
    ) -> bytes:
        ctl = self._ctl
        if ctl is None:
            raise IbsimError("not connected to ibsim")
        frame = SimCtl(
            kind,
            self.slot if clientid is None else clientid,
            payload.ljust(SIM_CTL_MAX_DATA, b"\0"),
            len(payload),
        )
        try:
            ctl.send(frame.pack())
            raw = ctl.recv(SimCtl.SIZE * 2)
        except TimeoutError:
            raise IbsimError(f"ibsim on {self.base} did not answer a control request") from None
        except OSError as exc:
            raise IbsimError(f"control request to ibsim failed: {exc.strerror}") from None
        try:
            reply = SimCtl.unpack(raw)
        except WireError as exc:
            raise IbsimError(f"bad control reply from ibsim: {exc}") from None
        if reply.magic != SIM_MAGIC:
            raise IbsimError(f"bad control reply magic 0x{reply.magic:08x}")
        if reply.type == SimCtlType.ERROR:
            where = f" at node {self.requested_node!r}" if self.requested_node else ""
            raise IbsimError(
                f"ibsim refused {kind.name}{where} (10 clients already, unknown node, "
                "or an SM already attached there)"
            )
        return reply.data

    def close(self) -> None:
        """DISCONNECT (frees the slot) and close both sockets."""
        if self._ctl is not None and self.slot >= 0:
            with contextlib.suppress(IbsimError):  # ibsim gone: nothing left to free
                self._ctl_exchange(SimCtlType.DISCONNECT)
        for sock in (self._ctl, self._data):
            if sock is not None:
                sock.close()
        self._ctl = self._data = None
        self.slot = -1

    def __enter__(self) -> IbsimClient:
        if self._ctl is None:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- control queries ------------------------------------------------------------

    def get_port(self) -> tuple[int, int]:
        """(LID, PortState) of the port the client is attached at."""
        lid, state = _PORT.unpack_from(self._ctl_exchange(SimCtlType.GET_PORT))
        return lid, state

    def check_alive(self) -> None:
        """One control round trip; IbsimError when ibsim has gone (exited, killed):
        its sockets vanish, and a datagram client that only listens would never
        notice."""
        try:
            self.get_port()
        except IbsimError as exc:
            raise IbsimError(f"ibsim on {self.base} is gone ({exc.message})") from None

    def get_node_info(self) -> NodeInfo:
        return NodeInfo.unpack(self._ctl_exchange(SimCtlType.GET_NODEINFO))

    def get_port_info(self, port: int = 0) -> PortInfo:
        """PortInfo of `port` of our node (0: the port we are attached at)."""
        return PortInfo.unpack(self._ctl_exchange(SimCtlType.GET_PORTINFO, bytes([port])))

    def get_node_guid(self) -> int:
        value: int = _U64.unpack_from(self._ctl_exchange(SimCtlType.GET_GUID))[0]
        return value

    def get_vendor(self) -> SimVendor:
        return SimVendor(*_VENDOR.unpack_from(self._ctl_exchange(SimCtlType.GET_VENDOR)))

    def set_issm(self, issm: bool) -> None:
        """Set or clear IsSM in our port's CapabilityMask (ibsim may send trap 144)."""
        self._ctl_exchange(SimCtlType.SET_ISSM, _U32.pack(int(issm)))
        self.issm = issm

    # --- data -----------------------------------------------------------------------

    def fileno(self) -> int:
        if self._data is None:
            raise IbsimError("not connected to ibsim")
        return self._data.fileno()

    def send(self, request: SimRequest) -> bool:
        """Queue one MAD to ibsim; False when ibsim's queue is full (read, then retry)."""
        return self.send_frame(request.pack())

    def send_frame(self, frame: bytes) -> bool:
        """`send` for an already packed 288-byte frame (the runtime's hot path)."""
        if self._data is None:
            raise IbsimError("not connected to ibsim")
        try:
            self._data.send(frame)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise IbsimError(f"ibsim on {self.base} is gone ({exc.strerror})") from None
        return True

    def send_mad(
        self, mad: bytes, *, dlid: int, dqp: int, sqp: int | None = None, slid: int = 0
    ) -> bool:
        sqp = self.qp if sqp is None else sqp
        return self.send(SimRequest(dlid, slid, dqp, sqp, mad.ljust(MAD_SIZE, b"\0")))

    def recv(self) -> SimRequest | None:
        """One frame if one is waiting, else None (never blocks). A datagram that is
        not a whole frame is skipped, as umad2sim skips it."""
        while True:
            raw = self.recv_frame()
            if raw is None:
                return None
            try:
                return SimRequest.unpack(raw)
            except WireError:
                continue

    def recv_frame(self) -> bytes | None:
        """One raw datagram if one is waiting, else None (the runtime's hot path)."""
        if self._data is None:
            raise IbsimError("not connected to ibsim")
        try:
            return self._data.recv(1024)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise IbsimError(f"ibsim on {self.base} is gone ({exc.strerror})") from None

    def wait(self, timeout_s: float | None) -> bool:
        """Block until a frame is waiting or `timeout_s` passes."""
        ready, _, _ = select.select([self.fileno()], [], [], timeout_s)
        return bool(ready)

    def send_blocking(self, request: SimRequest, timeout_s: float = 5.0) -> list[SimRequest]:
        """Send, draining (and returning) whatever arrives while ibsim's queue is full."""
        drained: list[SimRequest] = []
        frame = request.pack()
        deadline = time.monotonic() + timeout_s
        while not self.send_frame(frame):
            if time.monotonic() > deadline:
                raise IbsimError(f"ibsim on {self.base} takes no input (queue full)")
            if self.wait(0.01):
                incoming = self.recv()
                if incoming is not None:
                    drained.append(incoming)
        return drained
