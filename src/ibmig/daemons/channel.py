"""The local channel between dom0 and its guests (and the migration orchestrator).

On a real hypervisor this would be virtio-serial or vsock between the management
domain and a guest; here it is a Unix stream socket that dom0 listens on. The
protocol, version 1:

- a frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON,
  one object, at most `MAX_FRAME_BYTES`;
- every object has `"v": 1` and a `"type"` string; the other keys depend on the
  type (`SCHEMA` lists them with their JSON types);
- the first frame on a connection is `hello` with `role` "guest" (and `vm`, the
  VM's name) or "control" (a migration orchestrator: a libvirt hook, a test);
- GIDs are 32 hex digits, GUIDs integers, MADs hex strings of the MAD's bytes.

guest -> dom0: `hello`, `path_registered {gid}`, `path_unregistered {gid}`,
`mad {mad, dlid, dqp, sl, qkey}` (a MAD the guest sends from its QP1: on
shared-port SR-IOV the VF's QP1 is paravirtualized, see `ibmig.daemons.dom0`).

dom0 -> guest: `attached {lid, gid, sa_lid, port_num, resumed}`, `detached
{next_channel}` (where the VM will find its next dom0, or null), `path_change {gid,
new_lid}` (with `path {sl, mtu, rate, packet_life_time}`, PathRecord codes, when the
notice carried the new path's values: "trap69-path"), `mad {mad, slid, sqp, sl,
qkey}`, `dom0_restarted`.

control -> dom0: `vm_arrived {vm, vguid}` (register the VM's alias GUID),
`vf_attached {vm}`, `vf_detached {vm, next_channel}`, `vm_left {vm, vguid}`
(release the alias GUID), `status`; dom0 answers each with `ok` (for `status`
with its state: `lid`, `sa_lid`, `subscribed`, `mapping` {vguid hex: lid},
`vms` {vm: up}, `counters`) or `error {error}`.

A frame that breaks these rules is a `ChannelError`: dom0 logs it, answers
`error` and closes that one connection; it goes on serving everyone else.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Final

from ibmig.errors import WireError
from ibmig.wire.notice import PathValues

VERSION: Final = 1
MAX_FRAME_BYTES: Final = 64 * 1024
_LENGTH = struct.Struct(">I")

_INT = "int"
_STR = "str"
_HEX = "hex"  # a hex string (MAD bytes)
_GID = "gid"  # 32 hex digits
_OPT_STR = "str?"

SCHEMA: Final[dict[str, dict[str, str]]] = {
    "hello": {"role": _STR},
    "path_registered": {"gid": _GID},
    "path_unregistered": {"gid": _GID},
    "mad": {"mad": _HEX},
    "attached": {"lid": _INT, "gid": _GID, "sa_lid": _INT, "port_num": _INT},
    "detached": {},
    "path_change": {"gid": _GID, "new_lid": _INT},
    "dom0_restarted": {},
    "vm_arrived": {"vm": _STR, "vguid": _INT},
    "vf_attached": {"vm": _STR},
    "vf_detached": {"vm": _STR, "next_channel": _OPT_STR},
    "vm_left": {"vm": _STR, "vguid": _INT},
    "status": {},
    "ok": {},
    "error": {"error": _STR},
}
"""Required keys of each message type and what they hold (extra keys are allowed
and ignored, so that a later version can add some)."""


class ChannelError(WireError):
    """A frame or message that breaks the channel protocol."""


def encode(message: dict[str, Any]) -> bytes:
    """One frame: length, then the JSON of `message` with the version added."""
    body = json.dumps({"v": VERSION, **message}, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME_BYTES:
        raise ChannelError(f"message of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    return _LENGTH.pack(len(body)) + body


def _check(value: Any, kind: str) -> bool:
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == _STR:
        return isinstance(value, str) and bool(value)
    if kind == _OPT_STR:
        return value is None or isinstance(value, str)
    if not isinstance(value, str):
        return False
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return False
    return len(raw) == 16 if kind == _GID else 0 < len(raw) <= 256


def decode(body: bytes) -> dict[str, Any]:
    """A frame's body as a checked message (ChannelError otherwise)."""
    try:
        message = json.loads(body.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChannelError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ChannelError("a message is a JSON object")
    if message.get("v") != VERSION:
        raise ChannelError(f"version {message.get('v')!r}, expected {VERSION}")
    kind = message.get("type")
    fields = SCHEMA.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise ChannelError(f"unknown message type {kind!r}")
    for name, expected in fields.items():
        if name not in message and expected != _OPT_STR:
            raise ChannelError(f"{kind}: missing {name!r}")
        if not _check(message.get(name), expected):
            raise ChannelError(f"{kind}: {name!r} is not a valid {expected}")
    return message


class FrameReader:
    """Cuts a byte stream into checked messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """The whole messages `data` completes (ChannelError on a bad one: the
        stream cannot be trusted after it)."""
        buffer = self._buffer
        buffer += data
        out = []
        while len(buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer)
            if length > MAX_FRAME_BYTES:
                raise ChannelError(f"frame of {length} bytes exceeds {MAX_FRAME_BYTES}")
            if len(buffer) < _LENGTH.size + length:
                break
            body = bytes(buffer[_LENGTH.size : _LENGTH.size + length])
            del buffer[: _LENGTH.size + length]
            out.append(decode(body))
        return out


def gid_hex(gid: bytes) -> str:
    return gid.hex()


def gid_bytes(text: str) -> bytes:
    return bytes.fromhex(text)


def path_fields(path: PathValues | None) -> dict[str, Any]:
    """The `path` key of a `path_change` message (none without path values)."""
    if path is None:
        return {}
    return {
        "path": {
            "sl": path.sl, "mtu": path.mtu, "rate": path.rate,
            "packet_life_time": path.packet_life_time,
        }
    }  # fmt: skip


def path_values(message: dict[str, Any]) -> PathValues | None:
    """The path values a `path_change` message carries, None if it has no `path`
    key; `ChannelError` for a malformed one."""
    path = message.get("path")
    if path is None:
        return None
    names = ("sl", "mtu", "rate", "packet_life_time")
    if not isinstance(path, dict) or not all(_check(path.get(n), _INT) for n in names):
        raise ChannelError(f"path_change: 'path' needs integers {', '.join(names)}")
    try:
        return PathValues(*(path[n] for n in names))
    except WireError as exc:
        raise ChannelError(f"path_change: {exc}") from None
