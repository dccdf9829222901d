"""A port's umad device: find it in sysfs, open it, register agents, send, receive.

Finding the device: `/sys/class/infiniband_mad/umadN/ibdev` and `.../port` name the
CA and port of `/dev/infiniband/umadN`; `/sys/class/infiniband_mad/abi_version`
must be 5 (`abi.IB_UMAD_ABI_VERSION`). `/dev/infiniband/issmN` is the same port's
"is SM" device: holding it open sets IsSM in the port's CapabilityMask (and, on
ibsim, makes the client the port's SM, to which ibsim forwards SA requests and
traps).

Everything is plain `os`, `fcntl` and `select.poll` except one call: files are
opened with the C library's `open` through ctypes. The reason is ibsim's
`libumad2sim.so`, which serves this interface when preloaded: it interposes `open`,
`close`, `read`, `write`, `ioctl`, `poll`, `opendir` and `scandir` (umad2sim.c;
`nm -D` on the Debian 0.10 library lists these libc names and no others) and hands out fake file
descriptors (1024 + ... for umadN, 2048 + N for issmN) that no kernel call knows.
CPython opens files with `open64` (`nm -D libpython3.11.so` imports `open64` and
`openat64`, not `open`), which umad2sim does not interpose: `os.open` and the
builtin `open` miss both the fake `/dev/infiniband` and the fake sysfs it writes
under `./sys-<pid>/`. On a real kernel `open` and `open64` are the same system
call, so calling `open` is correct everywhere. `os.listdir` uses `opendir`,
`os.read`/`os.write`/`os.close` use `read`/`write`/`close`, `fcntl.ioctl` uses
`ioctl` and `select.poll` uses `poll`: all interposed. Selectors' epoll (and
`select.select`) are not: the fake descriptors must be waited on with
`select.poll`, one at a time (umad2sim's `poll` waits on the first umad descriptor
of the set and ignores the others).

umad2sim quirks handled here:

- a `read()` with nothing queued returns -EWOULDBLOCK without setting errno, so a
  read is issued only after `poll()` said a MAD is waiting;
- it frames MADs with libibumad's `umad_size()`, which is 56 (the header without
  pkey_index) unless libibumad's own `umad_open_port` ran in the process, as it does
  in OpenSM and the diags; here it does not, so the header is 56 bytes under
  umad2sim (asked of the libibumad umad2sim loaded) and 64 on a kernel after
  IB_USER_MAD_ENABLE_PKEY;
- it receives into a 288-byte buffer, so it holds 288 minus the header of a MAD
  (232 bytes with the 56-byte header) but reports (and copies) header + the
  sender's length: the bytes after that are not the MAD's and are zeroed
  (`mad_bytes_valid`);
- a MAD of a class no agent registered crashes its receiving thread (a NULL
  dereference): register every class before opening issmN, the moment from which
  ibsim forwards requests to us;
- it ignores `timeout_ms`, `retries` and the method mask, and only knows
  IB_USER_MAD_REGISTER_AGENT (not _REGISTER_AGENT2), which is what is used.

What a kernel does that umad2sim does not: a response is delivered only while the
request it answers is still waiting for it, i.e. was sent with `timeout_ms` > 0
(drivers/infiniband/core/mad.c, `ib_mad_complete_recv`: "not user rmpp, revert to
normal behavior and drop the mad"). So requests leave with `request_timeout_ms`
(longer than any engine timeout) and `retries` 0: the engines still time out and
retry themselves; the kernel's ETIMEDOUT completion that may follow is handed to
the engine as undeliverable, which it ignores for a transaction it has closed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import select
import struct
from dataclasses import dataclass
from typing import Any

from ibmig.errors import ConfigError, WireError
from ibmig.umad.abi import (
    HEADER_SIZE,
    IB_UMAD_ABI_VERSION,
    IB_USER_MAD_ENABLE_PKEY,
    IB_USER_MAD_REGISTER_AGENT,
    IB_USER_MAD_UNREGISTER_AGENT,
    OLD_HEADER_SIZE,
    RegisterRequest,
    UmadHeader,
)
from ibmig.wire.mad import MAD_SIZE

SYSFS_UMAD = "/sys/class/infiniband_mad"
SYSFS_IB = "/sys/class/infiniband"
DEV_DIR = "/dev/infiniband"
SIM_REQUEST_SIZE = 288  # umad2sim's receive buffer: header plus what fits of the MAD
_READ_SIZE = HEADER_SIZE + MAD_SIZE + 64  # umad2sim hands out header + length bytes


class UmadError(ConfigError):
    """No such device or port, a wrong ABI, or the MAD layer refused us."""


@functools.cache
def _c_open() -> Any:
    # dlopen(NULL): the process's global scope, where a preloaded library's `open`
    # comes before the C library's.
    function = ctypes.CDLL(None, use_errno=True).open
    function.argtypes = (ctypes.c_char_p, ctypes.c_int, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


def libc_open(path: str, flags: int) -> int:
    """open(2) through the C library's `open` symbol (see the module docstring)."""
    fd: int = _c_open()(os.fsencode(path), flags | os.O_CLOEXEC, 0)
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return fd


def read_text(path: str) -> str:
    """A small (sysfs) file's text, opened through `libc_open`."""
    fd = libc_open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace").strip()
    finally:
        os.close(fd)


def under_umad2sim() -> bool:
    """Whether ibsim's libumad2sim.so is preloaded into this process."""
    return "umad2sim" in os.environ.get("LD_PRELOAD", "")


def umad2sim_header_size() -> int:
    """The header size umad2sim frames MADs with: libibumad's `umad_size()` in this
    process (56 unless something here called libibumad's `umad_open_port`)."""
    try:
        library = ctypes.CDLL("libibumad.so.3")  # umad2sim's own dependency, loaded already
    except OSError:
        return HEADER_SIZE
    size: int = library.umad_size()
    return size if size in (HEADER_SIZE, OLD_HEADER_SIZE) else HEADER_SIZE


@dataclass(frozen=True, slots=True)
class UmadPortInfo:
    """Where a port's umad and issm devices are (from sysfs)."""

    index: int  # N of umadN / issmN
    ca: str
    port: int

    @property
    def umad_path(self) -> str:
        return f"{DEV_DIR}/umad{self.index}"

    @property
    def issm_path(self) -> str:
        return f"{DEV_DIR}/issm{self.index}"


def abi_version() -> int:
    try:
        text = read_text(f"{SYSFS_UMAD}/abi_version")
    except OSError as exc:
        raise UmadError(
            f"no user MAD interface ({SYSFS_UMAD}/abi_version: {exc.strerror}); "
            "load ib_umad, or preload libumad2sim.so to run on ibsim"
        ) from None
    try:
        return int(text)
    except ValueError:
        raise UmadError(f"{SYSFS_UMAD}/abi_version holds {text!r}") from None


def list_ports() -> list[UmadPortInfo]:
    """Every umadN in sysfs, by N."""
    try:
        names = os.listdir(SYSFS_UMAD)
    except OSError as exc:
        raise UmadError(f"cannot list {SYSFS_UMAD} ({exc.strerror})") from None
    found = []
    for name in names:
        if not name.startswith("umad") or not name[4:].isdigit():
            continue
        base = f"{SYSFS_UMAD}/{name}"
        try:
            ca = read_text(f"{base}/ibdev")
            port = int(read_text(f"{base}/port"))
        except (OSError, ValueError):
            continue
        found.append(UmadPortInfo(int(name[4:]), ca, port))
    return sorted(found, key=lambda info: info.index)


def find_port(ca: str | None = None, port: int | None = None) -> UmadPortInfo:
    """The umad device of `ca`/`port` (None: the first one there is)."""
    version = abi_version()
    if version != IB_UMAD_ABI_VERSION:
        raise UmadError(f"user MAD ABI version {version}, expected {IB_UMAD_ABI_VERSION}")
    ports = list_ports()
    for info in ports:
        if (ca is None or info.ca == ca) and (port is None or info.port == port):
            return info
    have = ", ".join(f"{info.ca} port {info.port}" for info in ports) or "none"
    want = f"{ca or 'any CA'} port {port if port is not None else 'any'}"
    raise UmadError(f"no umad device for {want} (have: {have})", "--ca/--port")


def port_attribute(info: UmadPortInfo, name: str) -> str:
    """`/sys/class/infiniband/<ca>/ports/<port>/<name>` (lid, sm_lid, state, ...)."""
    return read_text(f"{SYSFS_IB}/{info.ca}/ports/{info.port}/{name}")


class UmadPort:
    """One open umad device: agents, send and receive (module docstring).

    `header_size` is 64 once IB_USER_MAD_ENABLE_PKEY worked (56 if it did not);
    under umad2sim it is what umad2sim uses (`umad2sim_header_size`).
    `mad_bytes_valid` is how many MAD bytes a read can be trusted for: 256 on a
    kernel, 288 minus the header under umad2sim; bytes after them are zeroed.
    """

    def __init__(self, info: UmadPortInfo) -> None:
        self.info = info
        self.simulated = under_umad2sim()
        self.header_size = HEADER_SIZE
        self.mad_bytes_valid = MAD_SIZE
        self.agents: dict[int, int] = {}  # management class -> agent id
        self._fd = -1
        self._issm_fd = -1
        self._poll: select.poll | None = None

    # --- life -----------------------------------------------------------------------

    def open(self) -> UmadPort:
        path = self.info.umad_path
        try:
            self._fd = libc_open(path, os.O_RDWR)
        except OSError as exc:
            raise UmadError(f"cannot open {path} ({exc.strerror})") from None
        try:
            fcntl.ioctl(self._fd, IB_USER_MAD_ENABLE_PKEY)
        except OSError:
            self.header_size = OLD_HEADER_SIZE  # an old kernel: the 56-byte header
        if self.simulated:
            self.header_size = umad2sim_header_size()
            self.mad_bytes_valid = SIM_REQUEST_SIZE - self.header_size
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        self._poll = poller
        return self

    def register(
        self, qpn: int, mgmt_class: int, version: int, methods: tuple[int, ...] = ()
    ) -> int:
        """Register an agent for `mgmt_class` on QP `qpn`, receiving the request
        `methods` unsolicited; returns (and remembers) its agent id."""
        request = bytearray(RegisterRequest(qpn, mgmt_class, version, methods).pack())
        try:
            fcntl.ioctl(self._fd, IB_USER_MAD_REGISTER_AGENT, request, True)
        except OSError as exc:
            raise UmadError(
                f"{self.info.umad_path}: cannot register class 0x{mgmt_class:02x} on QP{qpn} "
                f"({exc.strerror}; another SM or agent holds it?)"
            ) from None
        agent = RegisterRequest.agent_id(bytes(request))
        self.agents[mgmt_class] = agent
        return agent

    def become_sm(self) -> None:
        """Hold issmN open: IsSM in the port's CapabilityMask (ibsim: we are its SM)."""
        path = self.info.issm_path
        try:
            self._issm_fd = libc_open(path, os.O_RDWR | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                raise UmadError(f"{path} is held: another SM runs on this port") from None
            raise UmadError(f"cannot open {path} ({exc.strerror})") from None

    def close(self) -> None:
        """Release issmN (no more requests for us), unregister agents, close the device.

        Under umad2sim a MAD that still arrives for an unregistered class crashes its
        receiving thread (module docstring): the agents are left for its exit-time
        cleanup there, which follows this at once."""
        if self._issm_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._issm_fd)
            self._issm_fd = -1
        if self._fd >= 0:
            if not self.simulated:
                for agent in self.agents.values():
                    with contextlib.suppress(OSError):
                        fcntl.ioctl(
                            self._fd, IB_USER_MAD_UNREGISTER_AGENT, struct.pack("=I", agent)
                        )
                with contextlib.suppress(OSError):
                    os.close(self._fd)
            self._fd = -1
        self.agents.clear()
        self._poll = None

    def __enter__(self) -> UmadPort:
        if self._fd < 0:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- data -----------------------------------------------------------------------

    def send(self, header: UmadHeader, mad: bytes) -> bool:
        """Write one MAD; False when the device takes none now (try again later)."""
        try:
            os.write(self._fd, header.pack_as(self.header_size) + mad)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno in (errno.ENOMEM, errno.ENOBUFS):
                return False
            raise UmadError(f"{self.info.umad_path}: write failed ({exc.strerror})") from None
        return True

    def wait(self, timeout_s: float) -> bool:
        """Block until a MAD is waiting or `timeout_s` passes."""
        poller = self._poll
        if poller is None:
            raise UmadError("umad device not open")
        try:
            ready = poller.poll(max(0, int(timeout_s * 1000)))
        except InterruptedError:
            return False
        return bool(ready)

    def recv(self) -> tuple[UmadHeader, bytes] | None:
        """One waiting MAD (header and 256 bytes, the untrusted tail zeroed), else None."""
        if not self.wait(0):
            return None
        raw = os.read(self._fd, _READ_SIZE)
        size = self.header_size
        try:
            header = UmadHeader.unpack(raw, size)
        except WireError:
            return None
        received = min(len(raw), header.length) - size
        valid = max(0, min(received, self.mad_bytes_valid, MAD_SIZE))
        return header, raw[size : size + valid].ljust(MAD_SIZE, b"\0")
