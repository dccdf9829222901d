"""The ibsim socket protocol: frame codecs by hand and by hypothesis, then the
client against a real ibsim (connect, control queries, SMPs, drops, limits)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibmig.errors import WireError
from ibmig.fabric import preset
from ibmig.ibsim.client import (
    IBSIM_MAX_CLIENTS,
    SIM_MAGIC,
    STATUS_DROPPED,
    IbsimClient,
    IbsimError,
    SimClientInfo,
    SimCtl,
    SimCtlType,
    SimRequest,
    abstract_name,
    is_listening,
)
from ibmig.ibsim.harness import Harness, Ibsim, first_ca, table_args
from ibmig.ibsim.runtime import find_first_ca, response_length
from ibmig.wire.mad import Method
from ibmig.wire.sa import NodeRecord, SaMad
from ibmig.wire.smp import Smp, make_get
from ibmig.wire.smp_attrs import NodeInfo, NodeType, SmpAttr

U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFF_FFFF)
U64 = st.integers(0, (1 << 64) - 1)


def _host(value: int, size: int = 4) -> bytes:
    return value.to_bytes(size, sys.byteorder)


# --- sim_request ----------------------------------------------------------------------


def test_sim_request_by_hand() -> None:
    mad = bytes(range(256))
    frame = (
        bytes.fromhex("0012 0000")  # dlid: big-endian 16 bits, then 2 zero bytes
        + bytes.fromhex("0034 0000")  # slid
        + bytes.fromhex("00000001")  # dqp
        + bytes.fromhex("00000007")  # sqp
        + bytes.fromhex("0000006e")  # status 110
        + bytes(4)  # padding before the 64-bit length
        + bytes.fromhex("0000000000000100")  # length 256
        + mad
    )
    assert len(frame) == SimRequest.SIZE == 288
    request = SimRequest(0x12, 0x34, 1, 7, mad, STATUS_DROPPED, 256)
    assert request.pack() == frame
    assert SimRequest.unpack(frame) == request
    assert request.dropped


def test_sim_request_pads_a_short_mad() -> None:
    packed = SimRequest(1, 2, 0, 0, b"\x01\x81").pack()
    assert packed[32:34] == b"\x01\x81" and packed[34:] == bytes(254)


@given(
    dlid=U16,
    slid=U16,
    dqp=U32,
    sqp=U32,
    status=U32,
    length=U64,
    mad=st.binary(min_size=256, max_size=256),
)
def test_sim_request_round_trip(
    dlid: int, slid: int, dqp: int, sqp: int, status: int, length: int, mad: bytes
) -> None:
    request = SimRequest(dlid, slid, dqp, sqp, mad, status, length)
    assert SimRequest.unpack(request.pack()) == request


@given(st.binary(max_size=400))
def test_sim_request_from_any_bytes(data: bytes) -> None:
    try:
        request = SimRequest.unpack(data)
    except WireError:
        assert len(data) != 288
    else:
        assert request.pack() == data


@pytest.mark.parametrize(
    "request_",
    [
        SimRequest(0x10000, 0, 0, 0, b""),
        SimRequest(0, -1, 0, 0, b""),
        SimRequest(0, 0, 1 << 32, 0, b""),
        SimRequest(0, 0, 0, 0, b"", length=1 << 64),
        SimRequest(0, 0, 0, 0, bytes(257)),
    ],
)
def test_sim_request_out_of_range(request_: SimRequest) -> None:
    with pytest.raises(WireError):
        request_.pack()


# --- sim_ctl and sim_client_info ------------------------------------------------------


def test_sim_ctl_connect_by_hand() -> None:
    info = (
        _host(4242)  # id (our name's number)
        + _host(0)  # qp
        + _host(1)  # issm
        + b"h0_0".ljust(32, b"\0")
    )
    assert SimClientInfo(4242, 0, True, "h0_0").pack() == info
    assert SimClientInfo.unpack(info) == SimClientInfo(4242, 0, True, "h0_0")
    frame = _host(SIM_MAGIC) + _host(0) + _host(1) + _host(len(info)) + info.ljust(64, b"\0")
    ctl = SimCtl(SimCtlType.CONNECT, 0, info.ljust(64, b"\0"), len(info))
    assert ctl.pack() == frame
    assert SimCtl.unpack(frame) == ctl
    assert SimCtl.SIZE == 80 and SimClientInfo.SIZE == 44


@given(
    kind=st.integers(0, 0xFFFF_FFFF),
    clientid=U32,
    length=U32,
    data=st.binary(min_size=64, max_size=64),
    magic=U32,
)
def test_sim_ctl_round_trip(kind: int, clientid: int, length: int, data: bytes, magic: int) -> None:
    ctl = SimCtl.unpack(SimCtl(kind, clientid, data, length, magic).pack())
    assert (int(ctl.type), ctl.clientid, ctl.data, ctl.length, ctl.magic) == (
        kind,
        clientid,
        data,
        length,
        magic,
    )


@given(
    ident=U32,
    qp=U32,
    issm=st.booleans(),
    nodeid=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=31),
)
def test_sim_client_info_round_trip(ident: int, qp: int, issm: bool, nodeid: str) -> None:
    info = SimClientInfo(ident, qp, issm, nodeid)
    assert SimClientInfo.unpack(info.pack()) == info


@given(st.binary(max_size=120))
def test_control_records_from_any_bytes(data: bytes) -> None:
    for record in (SimCtl, SimClientInfo):
        with contextlib.suppress(WireError):
            record.unpack(data)


def test_control_records_out_of_range() -> None:
    with pytest.raises(WireError):
        SimClientInfo(1, 0, False, "x" * 32).pack()
    with pytest.raises(WireError):
        SimClientInfo(1 << 32).pack()
    with pytest.raises(WireError):
        SimCtl(SimCtlType.GET_PORT, data=bytes(65)).pack()
    with pytest.raises(WireError):
        SimCtl(SimCtlType.GET_PORT, clientid=-1).pack()


def test_abstract_names_carry_one_trailing_nul() -> None:
    assert abstract_name("sim:ctl") == b"\0sim:ctl\0"


def test_response_length_is_sa_header_plus_records() -> None:
    record = NodeRecord(lid=3, node_info=NodeInfo(NodeType.CA, 1, 0x10, 0x11))
    table = SaMad.from_records([record], method=Method.GET_TABLE_RESP)
    # 24 MAD header + 12 RMPP + 20 SA header + one record of AttributeOffset*8 bytes.
    assert response_length(table.pack()) == 56 + table.attribute_offset * 8
    single = SaMad.from_record(record, method=Method.GET_RESP)
    assert response_length(single.pack()) == 256


# --- against ibsim --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim(ibsim_tools: None, net_file: Callable[[str], Path]) -> Iterator[Ibsim]:
    with Harness() as harness:
        yield harness.start_ibsim(net_file("ft2-36"))


@pytest.mark.interop
def test_connect_and_control_queries(sim: Ibsim) -> None:
    with IbsimClient(sockname=sim.sockname, node="h0_1") as client:
        assert client.node == "h0_1"
        assert 0 <= client.slot < IBSIM_MAX_CLIENTS
        node = sim.fabric.node_by_name("h0_1")
        assert client.get_node_guid() == node.node_guid
        info = client.get_node_info()
        assert info.node_type == NodeType.CA and info.node_guid == node.node_guid
        _lid, state = client.get_port()
        assert state in (1, 2, 3, 4)
        assert client.get_port_info(0).local_port_num == 1
        assert client.get_vendor().fw_ver == 1


@pytest.mark.interop
def test_directed_route_smps_and_drops(sim: Ibsim) -> None:
    with IbsimClient(sockname=sim.sockname, node="h0_0", issm=True) as client:
        get = make_get(SmpAttr.NODE_INFO, tid=0x77, path=(1,))
        client.send_blocking(SimRequest(0xFFFF, 0xFFFF, 0, 0, get.pack()))
        assert client.wait(5)
        frame = client.recv()
        assert frame is not None and not frame.dropped
        answer = Smp.unpack(frame.mad)
        assert answer.method == Method.GET_RESP and answer.direction
        assert answer.tid & ((1 << 48) - 1) == 0x77  # ibsim writes its slot above bit 48
        assert answer.tid >> 48 == client.slot
        leaf0 = sim.fabric.node_by_name("leaf0")
        assert NodeInfo.unpack(answer.data).node_guid == leaf0.node_guid
        # Port 40 of a 36-port switch: ibsim cannot route it and says so at once.
        bad = make_get(SmpAttr.NODE_INFO, tid=0x78, path=(1, 40))
        client.send_blocking(SimRequest(0xFFFF, 0xFFFF, 0, 0, bad.pack()))
        assert client.wait(5)
        dropped = client.recv()
        assert dropped is not None and dropped.status == STATUS_DROPPED
        assert Smp.unpack(dropped.mad).tid & 0xFFFF == 0x78


@pytest.mark.interop
def test_refusals(sim: Ibsim) -> None:
    with pytest.raises(IbsimError, match="refused CONNECT"):
        IbsimClient(sockname=sim.sockname, node="no-such-node").connect()
    with (
        IbsimClient(sockname=sim.sockname, node="h0_2", issm=True),
        pytest.raises(IbsimError, match="refused CONNECT"),
    ):
        IbsimClient(sockname=sim.sockname, node="h0_2", issm=True).connect()
    clients = []
    try:
        for _ in range(IBSIM_MAX_CLIENTS):
            clients.append(IbsimClient(sockname=sim.sockname, node="h1_0").connect())
        with pytest.raises(IbsimError, match="10 clients"):
            IbsimClient(sockname=sim.sockname, node="h1_0").connect()
    finally:
        for client in clients:
            client.close()
    # DISCONNECT freed every slot.
    with IbsimClient(sockname=sim.sockname, node="h1_0"):
        pass


def test_no_ibsim_listening() -> None:
    assert not is_listening("ibmig-nobody-listens-here")
    with pytest.raises(IbsimError, match="no ibsim listening"):
        IbsimClient(sockname="ibmig-nobody-listens-here").connect()


@pytest.mark.interop
def test_first_ca_found_from_the_default_node(sim: Ibsim) -> None:
    # ft2-36 starts with switch leaf0, whose port 1 holds h0_0.
    assert find_first_ca(sim.sockname) == "h0_0" == first_ca(sim.fabric)


def test_table_sizes_grow_past_ibsim_defaults() -> None:
    assert table_args(preset("ft2-36")) == []
    args = table_args(preset("ft3-3240"))
    assert args[0::2] == ["-N", "-S", "-P"]
    assert int(args[3]) > 684
