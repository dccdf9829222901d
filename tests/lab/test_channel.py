"""The local channel's framing and message checks (ibmig.daemons.channel)."""

from __future__ import annotations

import json
import struct

import pytest

from ibmig.daemons.channel import (
    MAX_FRAME_BYTES,
    ChannelError,
    FrameReader,
    decode,
    encode,
    path_fields,
    path_values,
)
from ibmig.wire.notice import PathValues

GID = "fe800000000000000002c9fe00000001"


def frame(obj: object) -> bytes:
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def test_a_frame_is_a_big_endian_length_and_versioned_json() -> None:
    data = encode({"type": "path_change", "gid": GID, "new_lid": 26})
    body = b'{"v":1,"type":"path_change","gid":"' + GID.encode() + b'","new_lid":26}'
    assert data == struct.pack(">I", len(body)) + body
    assert FrameReader().feed(data) == [{"v": 1, "type": "path_change", "gid": GID, "new_lid": 26}]


def test_frames_cut_anywhere_come_out_whole_and_in_order() -> None:
    data = encode({"type": "status"}) + encode({"type": "vf_attached", "vm": "vm0"})
    reader = FrameReader()
    got = []
    for i in range(len(data)):
        got += reader.feed(data[i : i + 1])
    assert [m["type"] for m in got] == ["status", "vf_attached"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "a JSON object"),
        (json.dumps({"type": "status"}).encode(), "version None"),
        (json.dumps({"v": 2, "type": "status"}).encode(), "version 2"),
        (json.dumps({"v": 1, "type": "reboot"}).encode(), "unknown message type 'reboot'"),
        (json.dumps({"v": 1, "type": "vm_arrived", "vm": "vm0"}).encode(), "missing 'vguid'"),
        (
            json.dumps({"v": 1, "type": "vm_arrived", "vm": "vm0", "vguid": -1}).encode(),
            "'vguid' is not a valid int",
        ),
        (json.dumps({"v": 1, "type": "path_registered", "gid": "fe80"}).encode(), "'gid'"),
        (json.dumps({"v": 1, "type": "mad", "mad": "zz"}).encode(), "'mad'"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_a_bad_message_is_a_channel_error_naming_what_is_wrong(body: bytes, error: str) -> None:
    with pytest.raises(ChannelError, match=error):
        decode(body)


def test_a_frame_longer_than_the_limit_is_refused_before_it_is_read() -> None:
    with pytest.raises(ChannelError, match="exceeds"):
        FrameReader().feed(struct.pack(">I", MAX_FRAME_BYTES + 1))


def test_extra_keys_are_kept_for_later_versions() -> None:
    [message] = FrameReader().feed(frame({"v": 1, "type": "status", "verbose": True}))
    assert message["verbose"] is True


def test_a_path_change_carries_the_path_values_and_a_bad_one_is_refused() -> None:
    values = PathValues(sl=3, mtu=4, rate=7, packet_life_time=18)
    message = {"type": "path_change", "gid": GID, "new_lid": 26, **path_fields(values)}
    [received] = FrameReader().feed(encode(message))
    assert received["path"] == {"sl": 3, "mtu": 4, "rate": 7, "packet_life_time": 18}
    assert path_values(received) == values
    assert path_fields(None) == {} and path_values({"type": "path_change"}) is None
    for bad in ({"sl": 3}, {"sl": 16, "mtu": 4, "rate": 7, "packet_life_time": 18}, [1, 2]):
        with pytest.raises(ChannelError, match="path_change"):
            path_values({**received, "path": bad})
