"""The user-space MAD ABI of Linux (`include/uapi/rdma/ib_user_mad.h`), as bytes.

A process talks to a port's MAD layer through `/dev/infiniband/umadN`:

- `IB_USER_MAD_ENABLE_PKEY` (before anything else on the file) selects the 64-byte
  header with `pkey_index`; without it the kernel reads and writes the older 56-byte
  header. libibumad enables it in `umad_open_port` and then sizes headers by whether
  that worked (`umad_size()`: 64, else 56). umad2sim answers the ioctl with success
  but frames MADs with libibumad's `umad_size()`, which says 56 in a process that
  never called `umad_open_port` (see `device`).
- `IB_USER_MAD_REGISTER_AGENT` with a `struct ib_user_mad_reg_req` (28 bytes) claims
  a management class on QP0 or QP1; the kernel writes the agent id into its first
  field. `method_mask` says which *request* methods of the class the agent receives
  unsolicited (responses reach the agent whose requests they answer).
- `write()` sends one MAD: `struct ib_user_mad` header, then the MAD bytes;
  `read()` returns one received MAD (or a send that failed or timed out, with a
  nonzero `status`) in the same layout.

Header layout (`struct ib_user_mad_hdr`): five host-order u32 (agent id, status,
timeout_ms, retries, length), then the address handle `struct ib_mad_addr` whose
qpn, qkey, lid and flow_label are big-endian (network order) and whose pkey_index is
host order:

    0  agent_id   4 status   8 timeout_ms   12 retries   16 length
    20 qpn (be32) 24 qkey (be32) 28 lid (be16) 30 sl 31 path_bits 32 grh_present
    33 gid_index  34 hop_limit   35 traffic_class   36 gid[16]   52 flow_label (be32)
    56 pkey_index (u16)  58 reserved[6]  -> 64 bytes, then the MAD

`length` in a read is header plus MAD bytes received; in a write the kernel takes
the MAD length from the write's byte count.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from ibmig.errors import WireError

IB_UMAD_ABI_VERSION = 5  # /sys/class/infiniband_mad/abi_version
HEADER_SIZE = 64
OLD_HEADER_SIZE = 56  # without pkey_index/reserved: before (or without) ENABLE_PKEY

# ioctl numbers: _IOC(dir, 0x1b, nr, size) = dir << 30 | size << 16 | 0x1b << 8 | nr,
# with dir 1 = write, 2 = read, 3 = both.
IB_IOCTL_MAGIC = 0x1B


def _ioc(direction: int, nr: int, size: int) -> int:
    return direction << 30 | size << 16 | IB_IOCTL_MAGIC << 8 | nr


REG_REQ_SIZE = 28  # struct ib_user_mad_reg_req
IB_USER_MAD_REGISTER_AGENT = _ioc(3, 1, REG_REQ_SIZE)  # 0xC01C1B01
IB_USER_MAD_UNREGISTER_AGENT = _ioc(1, 2, 4)  # 0x40041B02
IB_USER_MAD_ENABLE_PKEY = _ioc(0, 3, 0)  # 0x00001B03

_HOST = struct.Struct("=IIIII")
_ADDR = struct.Struct(">IIHBBBBBB16sI")
_TAIL = struct.Struct("=H6x")
_REG_REQ = struct.Struct("=I4IBBB3sB")
_SPLIT_ADDR = _HOST.size
_SPLIT_TAIL = _HOST.size + _ADDR.size
assert _SPLIT_TAIL + _TAIL.size == HEADER_SIZE
assert _REG_REQ.size == REG_REQ_SIZE - 1  # the kernel's struct ends with one pad byte


@dataclass(frozen=True, slots=True)
class UmadHeader:
    """`struct ib_user_mad_hdr` (module docstring), 64 bytes."""

    agent_id: int
    status: int = 0
    timeout_ms: int = 0
    retries: int = 0
    length: int = 0
    qpn: int = 0
    qkey: int = 0
    lid: int = 0
    sl: int = 0
    path_bits: int = 0
    grh_present: bool = False
    gid_index: int = 0
    hop_limit: int = 0
    traffic_class: int = 0
    gid: bytes = bytes(16)
    flow_label: int = 0
    pkey_index: int = 0

    SIZE: ClassVar[int] = HEADER_SIZE

    def pack(self) -> bytes:
        if len(self.gid) != 16:
            raise WireError(f"a GID is 16 bytes, got {len(self.gid)}")
        try:
            return (
                _HOST.pack(self.agent_id, self.status, self.timeout_ms, self.retries, self.length)
                + _ADDR.pack(
                    self.qpn,
                    self.qkey,
                    self.lid,
                    self.sl,
                    self.path_bits,
                    int(self.grh_present),
                    self.gid_index,
                    self.hop_limit,
                    self.traffic_class,
                    self.gid,
                    self.flow_label,
                )
                + _TAIL.pack(self.pkey_index)
            )
        except struct.error as exc:
            raise WireError(f"ib_user_mad header field out of range: {exc}") from None

    def pack_as(self, size: int) -> bytes:
        """The header in the layout of `size` bytes: 64, or 56 (the layout before
        IB_USER_MAD_ENABLE_PKEY, without pkey_index)."""
        if size not in (HEADER_SIZE, OLD_HEADER_SIZE):
            raise WireError(f"an ib_user_mad header is 56 or 64 bytes, not {size}")
        return self.pack()[:size]

    @classmethod
    def unpack(cls, data: bytes, size: int = HEADER_SIZE) -> UmadHeader:
        """A header of `size` bytes (64, or 56: pkey_index then reads 0)."""
        if size not in (HEADER_SIZE, OLD_HEADER_SIZE):
            raise WireError(f"an ib_user_mad header is 56 or 64 bytes, not {size}")
        if len(data) < size:
            raise WireError(f"an ib_user_mad header is {size} bytes, got {len(data)}")
        if size == OLD_HEADER_SIZE:
            data = bytes(data[:OLD_HEADER_SIZE]) + bytes(HEADER_SIZE - OLD_HEADER_SIZE)
        agent_id, status, timeout_ms, retries, length = _HOST.unpack_from(data)
        qpn, qkey, lid, sl, bits, grh, gid_index, hop, tclass, gid, flow = _ADDR.unpack_from(
            data, _SPLIT_ADDR
        )
        (pkey_index,) = _TAIL.unpack_from(data, _SPLIT_TAIL)
        return cls(
            agent_id,
            status,
            timeout_ms,
            retries,
            length,
            qpn,
            qkey,
            lid,
            sl,
            bits,
            bool(grh),
            gid_index,
            hop,
            tclass,
            gid,
            flow,
            pkey_index,
        )


def method_mask(methods: tuple[int, ...]) -> tuple[int, int, int, int]:
    """`method_mask[4]`: bit m of the 128-bit little-endian bitmap for each method m."""
    words = [0, 0, 0, 0]
    for method in methods:
        if not 0 <= method < 128:
            raise WireError(f"method 0x{method:x} is not below 0x80 (requests only)")
        words[method // 32] |= 1 << (method % 32)
    return words[0], words[1], words[2], words[3]


@dataclass(frozen=True, slots=True)
class RegisterRequest:
    """`struct ib_user_mad_reg_req`: the IB_USER_MAD_REGISTER_AGENT argument."""

    qpn: int
    mgmt_class: int
    mgmt_class_version: int
    methods: tuple[int, ...] = ()
    oui: bytes = bytes(3)
    rmpp_version: int = 0
    id: int = 0

    def pack(self) -> bytes:
        if len(self.oui) != 3:
            raise WireError(f"an OUI is 3 bytes, got {len(self.oui)}")
        try:
            body = _REG_REQ.pack(
                self.id,
                *method_mask(self.methods),
                self.qpn,
                self.mgmt_class,
                self.mgmt_class_version,
                self.oui,
                self.rmpp_version,
            )
        except struct.error as exc:
            raise WireError(f"ib_user_mad_reg_req field out of range: {exc}") from None
        return body + b"\0"

    @staticmethod
    def agent_id(answer: bytes) -> int:
        """The agent id the kernel wrote into the request's first field."""
        if len(answer) < 4:
            raise WireError("an ib_user_mad_reg_req answer holds at least its id")
        value: int = _HOST.unpack_from(answer.ljust(_HOST.size, b"\0"))[0]
        return value
