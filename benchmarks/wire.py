"""MAD encode+decode throughput: ibmig.wire against the `construct` library, same run.

Each round trip builds the record, packs the whole 256-byte MAD, unpacks it and
decodes the attribute back into a record: what the simulator does for every MAD.
The reference describes the same layouts declaratively with `construct`
(the straightforward way to write a binary codec in Python) and does the same
work with its build/parse. Both are checked to produce identical bytes.

    python benchmarks/wire.py [--seconds 1.0] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from construct import (
    BitsInteger,
    BitStruct,
    Bytes,
    Flag,
    Int8ub,
    Int16ub,
    Int32ub,
    Int64ub,
    Padding,
    Struct,
)

from ibmig.wire.mad import MadHeader, Method, MgmtClass
from ibmig.wire.notice import Notice, path_change_notice
from ibmig.wire.sa import PathRecord, SaMad
from ibmig.wire.smp import Smp, make_get, make_get_resp
from ibmig.wire.smp_attrs import NodeInfo, NodeType, PortInfo, SmpAttr

GID_A = bytes.fromhex("fe800000000000000002c90300001234")
GID_B = bytes.fromhex("fe800000000000000002c90300005678")

# --- ibmig ------------------------------------------------------------------------


PATH = PathRecord(dgid=GID_A, sgid=GID_B, dlid=7, slid=3, hop_limit=0, reversible=True,
                  numb_path=1, pkey=0xFFFF, sl=0, mtu_selector=2, mtu=5, rate_selector=2,
                  rate=16, packet_life_time_selector=2, packet_life_time=18)  # fmt: skip
NOTICE_69 = path_change_notice(
    gid=GID_A, new_lid=9, old_lid=7, new_port_guid=0x0002C90300005679, issuer_lid=1
)
NODE_INFO_RECORD = NodeInfo(NodeType.CA, 1, 0x0002C90300001230, 0x0002C90300001231,
                            0x0002C90300001230, 64, 0x1017, 0, 1, 0x02C9)  # fmt: skip
PORT_INFO_RECORD = PortInfo(lid=7, master_sm_lid=1, local_port_num=1, port_state=4,
                            port_physical_state=5, link_width_active=2, link_speed_active=1,
                            mtu_cap=5, neighbor_mtu=5, guid_cap=32, subnet_timeout=18)  # fmt: skip
NODE_INFO_GET = make_get(SmpAttr.NODE_INFO, tid=5, path=(1, 3))
PORT_INFO_GET = make_get(SmpAttr.PORT_INFO, tid=6, path=(1, 3), attribute_modifier=1)

# Records are built once (as the SA builds a PathRecord once per answer); each round trip
# encodes the whole MAD from the record and decodes it back into a record.


def ibmig_path_record() -> int:
    mad = SaMad.from_record(PATH, method=Method.GET_RESP, tid=0x1234).pack()
    back = SaMad.unpack(mad).record()
    assert isinstance(back, PathRecord)
    return back.dlid


def ibmig_notice() -> int:
    mad = SaMad.from_record(NOTICE_69, method=Method.REPORT, tid=0x99).pack()
    back = SaMad.unpack(mad).record()
    assert isinstance(back, Notice)
    return back.trap_number


def ibmig_node_info() -> int:
    mad = make_get_resp(NODE_INFO_GET, NODE_INFO_RECORD).pack()
    back = Smp.unpack(mad).decode_data(NodeInfo)
    return back.node_guid


def ibmig_port_info() -> int:
    mad = make_get_resp(PORT_INFO_GET, PORT_INFO_RECORD).pack()
    back = Smp.unpack(mad).decode_data(PortInfo)
    return back.lid


# --- construct reference ------------------------------------------------------------

MAD_HEADER = Struct(
    "base_version" / Int8ub, "mgmt_class" / Int8ub, "class_version" / Int8ub,
    "method" / Int8ub, "status" / Int16ub, "class_specific" / Int16ub, "tid" / Int64ub,
    "attribute_id" / Int16ub, Padding(2), "attribute_modifier" / Int32ub,
)  # fmt: skip
SA_HEADER = Struct(
    "rmpp_version" / Int8ub, "rmpp_type" / Int8ub, "resp_time_flags" / Int8ub,
    "rmpp_status" / Int8ub, "data1" / Int32ub, "data2" / Int32ub, "sm_key" / Int64ub,
    "attribute_offset" / Int16ub, Padding(2), "component_mask" / Int64ub,
)  # fmt: skip
PATH_RECORD = Struct(
    "service_id" / Int64ub, "dgid" / Bytes(16), "sgid" / Bytes(16), "dlid" / Int16ub,
    "slid" / Int16ub,
    "w" / BitStruct("raw_traffic" / Flag, Padding(3), "flow_label" / BitsInteger(20),
                    "hop_limit" / BitsInteger(8)),
    "tclass" / Int8ub,
    "r" / BitStruct("reversible" / Flag, "numb_path" / BitsInteger(7)),
    "pkey" / Int16ub,
    "q" / BitStruct("qos_class" / BitsInteger(12), "sl" / BitsInteger(4)),
    "m" / BitStruct("mtu_selector" / BitsInteger(2), "mtu" / BitsInteger(6)),
    "rt" / BitStruct("rate_selector" / BitsInteger(2), "rate" / BitsInteger(6)),
    "p" / BitStruct("packet_life_time_selector" / BitsInteger(2),
                    "packet_life_time" / BitsInteger(6)),
    "preference" / Int8ub, Padding(6),
)  # fmt: skip
SA_PATH_MAD = Struct("header" / MAD_HEADER, "sa" / SA_HEADER, "record" / PATH_RECORD, Padding(136))
NOTICE = Struct(
    "n" / BitStruct("is_generic" / Flag, "type" / BitsInteger(7),
                    "producer_type" / BitsInteger(24)),
    "trap_number" / Int16ub, "issuer_lid" / Int16ub,
    "t" / BitStruct("notice_toggle" / Flag, "notice_count" / BitsInteger(15)),
    "comp_mask" / Int64ub, "wait" / Int8ub, Padding(1), "gid" / Bytes(16),
    "new_lid" / Int16ub, "old_lid" / Int16ub, "new_port_guid" / Int64ub,
    "old_port_guid" / Int64ub, Padding(8), "issuer_gid" / Bytes(16),
)  # fmt: skip
SA_NOTICE_MAD = Struct("header" / MAD_HEADER, "sa" / SA_HEADER, "notice" / NOTICE, Padding(120))
DR_SMP = Struct(
    "base_version" / Int8ub, "mgmt_class" / Int8ub, "class_version" / Int8ub,
    "method" / Int8ub, "ds" / BitStruct("d" / Flag, "status" / BitsInteger(15)),
    "hop_pointer" / Int8ub, "hop_count" / Int8ub, "tid" / Int64ub,
    "attribute_id" / Int16ub, Padding(2), "attribute_modifier" / Int32ub,
    "m_key" / Int64ub, "dr_slid" / Int16ub, "dr_dlid" / Int16ub, Padding(28),
    "data" / Bytes(64), "initial_path" / Bytes(64), "return_path" / Bytes(64),
)  # fmt: skip
NODE_INFO = Struct(
    "base_version" / Int8ub, "class_version" / Int8ub, "node_type" / Int8ub,
    "num_ports" / Int8ub, "system_image_guid" / Int64ub, "node_guid" / Int64ub,
    "port_guid" / Int64ub, "partition_cap" / Int16ub, "device_id" / Int16ub,
    "revision" / Int32ub,
    "v" / BitStruct("local_port_num" / BitsInteger(8), "vendor_id" / BitsInteger(24)),
    Padding(24),
)  # fmt: skip
PORT_INFO = Struct(
    "m_key" / Int64ub, "gid_prefix" / Int64ub, "lid" / Int16ub, "master_sm_lid" / Int16ub,
    "capability_mask" / Int32ub, "diag_code" / Int16ub, "m_key_lease_period" / Int16ub,
    "local_port_num" / Int8ub, "link_width_enabled" / Int8ub,
    "link_width_supported" / Int8ub, "link_width_active" / Int8ub,
    "b" / BitStruct(
        "link_speed_supported" / BitsInteger(4), "port_state" / BitsInteger(4),
        "port_physical_state" / BitsInteger(4), "link_down_default_state" / BitsInteger(4),
        "m_key_protect_bits" / BitsInteger(2), Padding(3), "lmc" / BitsInteger(3),
        "link_speed_active" / BitsInteger(4), "link_speed_enabled" / BitsInteger(4),
        "neighbor_mtu" / BitsInteger(4), "master_sm_sl" / BitsInteger(4),
        "vl_cap" / BitsInteger(4), "init_type" / BitsInteger(4),
    ),
    "vl_high_limit" / Int8ub, "vl_arbitration_high_cap" / Int8ub,
    "vl_arbitration_low_cap" / Int8ub,
    "c" / BitStruct(
        "init_type_reply" / BitsInteger(4), "mtu_cap" / BitsInteger(4),
        "vl_stall_count" / BitsInteger(3), "hoq_life" / BitsInteger(5),
        "operational_vls" / BitsInteger(4), "partition_enforcement_inbound" / Flag,
        "partition_enforcement_outbound" / Flag, "filter_raw_inbound" / Flag,
        "filter_raw_outbound" / Flag,
    ),
    "m_key_violations" / Int16ub, "p_key_violations" / Int16ub,
    "q_key_violations" / Int16ub, "guid_cap" / Int8ub,
    "d" / BitStruct(
        "client_reregister" / Flag, "multicast_pkey_trap_suppression_enabled" / BitsInteger(2),
        "subnet_timeout" / BitsInteger(5), Padding(3), "resp_time_value" / BitsInteger(5),
        "local_phy_errors" / BitsInteger(4), "overrun_errors" / BitsInteger(4),
    ),
    "max_credit_hint" / Int16ub,
    "e" / BitStruct(Padding(8), "link_round_trip_latency" / BitsInteger(24)),
    "capability_mask2" / Int16ub,
    "f" / BitStruct(
        "link_speed_ext_active" / BitsInteger(4), "link_speed_ext_supported" / BitsInteger(4),
        Padding(3), "link_speed_ext_enabled" / BitsInteger(5),
    ),
)  # fmt: skip

_HDR = {"base_version": 1, "class_version": 2, "status": 0, "class_specific": 0,
        "attribute_modifier": 0}  # fmt: skip
_SA0 = {"rmpp_version": 0, "rmpp_type": 0, "resp_time_flags": 0, "rmpp_status": 0, "data1": 0,
        "data2": 0, "sm_key": 0, "attribute_offset": 0, "component_mask": 0}  # fmt: skip


def construct_path_record() -> int:
    mad = SA_PATH_MAD.build({
        "header": {**_HDR, "mgmt_class": 3, "method": 0x81, "tid": 0x1234, "attribute_id": 0x35},
        "sa": _SA0,
        "record": {"service_id": 0, "dgid": GID_A, "sgid": GID_B, "dlid": 7, "slid": 3,
                   "w": {"raw_traffic": False, "flow_label": 0, "hop_limit": 0}, "tclass": 0,
                   "r": {"reversible": True, "numb_path": 1}, "pkey": 0xFFFF,
                   "q": {"qos_class": 0, "sl": 0}, "m": {"mtu_selector": 2, "mtu": 5},
                   "rt": {"rate_selector": 2, "rate": 16},
                   "p": {"packet_life_time_selector": 2, "packet_life_time": 18},
                   "preference": 0},
    })  # fmt: skip
    return int(SA_PATH_MAD.parse(mad).record.dlid)


def construct_notice() -> int:
    mad = SA_NOTICE_MAD.build({
        "header": {**_HDR, "mgmt_class": 3, "method": 0x06, "tid": 0x99, "attribute_id": 0x02},
        "sa": _SA0,
        "notice": {"n": {"is_generic": True, "type": 3, "producer_type": 4}, "trap_number": 69,
                   "issuer_lid": 1, "t": {"notice_toggle": False, "notice_count": 0},
                   "comp_mask": 1 << 2, "wait": 0, "gid": GID_A, "new_lid": 9, "old_lid": 7,
                   "new_port_guid": 0x0002C90300005679, "old_port_guid": 0,
                   "issuer_gid": bytes(16)},
    })  # fmt: skip
    return int(SA_NOTICE_MAD.parse(mad).notice.trap_number)


def _dr_smp(data: bytes, attribute_id: int, modifier: int) -> bytes:
    return bytes(DR_SMP.build({
        "base_version": 1, "mgmt_class": 0x81, "class_version": 1, "method": 0x81,
        "ds": {"d": True, "status": 0}, "hop_pointer": 0, "hop_count": 2, "tid": 5,
        "attribute_id": attribute_id, "attribute_modifier": modifier, "m_key": 0,
        "dr_slid": 0xFFFF, "dr_dlid": 0xFFFF, "data": data.ljust(64, b"\0"),
        "initial_path": bytes((0, 1, 3)).ljust(64, b"\0"), "return_path": bytes(64),
    }))  # fmt: skip


def construct_node_info() -> int:
    data = NODE_INFO.build({
        "base_version": 1, "class_version": 1, "node_type": 1, "num_ports": 1,
        "system_image_guid": 0x0002C90300001230, "node_guid": 0x0002C90300001230,
        "port_guid": 0x0002C90300001231, "partition_cap": 64, "device_id": 0x1017,
        "revision": 0, "v": {"local_port_num": 1, "vendor_id": 0x02C9},
    })  # fmt: skip
    mad = _dr_smp(data[:40], 0x11, 0)
    return int(NODE_INFO.parse(DR_SMP.parse(mad).data).node_guid)


_PORT_INFO_VALUES = {
    "m_key": 0, "gid_prefix": 0, "lid": 7, "master_sm_lid": 1, "capability_mask": 0,
    "diag_code": 0, "m_key_lease_period": 0, "local_port_num": 1, "link_width_enabled": 0,
    "link_width_supported": 0, "link_width_active": 2,
    "b": {"link_speed_supported": 0, "port_state": 4, "port_physical_state": 5,
          "link_down_default_state": 0, "m_key_protect_bits": 0, "lmc": 0,
          "link_speed_active": 1, "link_speed_enabled": 0, "neighbor_mtu": 5,
          "master_sm_sl": 0, "vl_cap": 0, "init_type": 0},
    "vl_high_limit": 0, "vl_arbitration_high_cap": 0, "vl_arbitration_low_cap": 0,
    "c": {"init_type_reply": 0, "mtu_cap": 5, "vl_stall_count": 0, "hoq_life": 0,
          "operational_vls": 0, "partition_enforcement_inbound": False,
          "partition_enforcement_outbound": False, "filter_raw_inbound": False,
          "filter_raw_outbound": False},
    "m_key_violations": 0, "p_key_violations": 0, "q_key_violations": 0, "guid_cap": 32,
    "d": {"client_reregister": False, "multicast_pkey_trap_suppression_enabled": 0,
          "subnet_timeout": 18, "resp_time_value": 0, "local_phy_errors": 0,
          "overrun_errors": 0},
    "max_credit_hint": 0, "e": {"link_round_trip_latency": 0}, "capability_mask2": 0,
    "f": {"link_speed_ext_active": 0, "link_speed_ext_supported": 0,
          "link_speed_ext_enabled": 0},
}  # fmt: skip


def construct_port_info() -> int:
    mad = _dr_smp(PORT_INFO.build(_PORT_INFO_VALUES), 0x15, 1)
    return int(PORT_INFO.parse(DR_SMP.parse(mad).data).lid)


# --- runner -----------------------------------------------------------------------

CASES: list[tuple[str, Callable[[], int], Callable[[], int]]] = [
    ("PathRecord (SA GetResp)", ibmig_path_record, construct_path_record),
    ("Notice (SA Report, trap 69)", ibmig_notice, construct_notice),
    ("NodeInfo (DR SMP GetResp)", ibmig_node_info, construct_node_info),
    ("PortInfo (DR SMP GetResp)", ibmig_port_info, construct_port_info),
]


def rate(fn: Callable[[], int], seconds: float) -> float:
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            fn()
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def check_same_bytes() -> None:
    """Both codecs must produce the same MAD, or the comparison means nothing."""
    record = PathRecord(dgid=GID_A, sgid=GID_B, dlid=7, slid=3, reversible=True, numb_path=1,
                        pkey=0xFFFF, mtu_selector=2, mtu=5, rate_selector=2, rate=16,
                        packet_life_time_selector=2, packet_life_time=18)  # fmt: skip
    header = MadHeader(MgmtClass.SUBN_ADM, Method.GET_RESP, 0x35, tid=0x1234, class_version=2)
    ours = SaMad(header, data=record.pack().ljust(200, b"\0")).pack()
    theirs = SA_PATH_MAD.build({
        "header": {**_HDR, "mgmt_class": 3, "method": 0x81, "tid": 0x1234, "attribute_id": 0x35},
        "sa": _SA0,
        "record": {"service_id": 0, "dgid": GID_A, "sgid": GID_B, "dlid": 7, "slid": 3,
                   "w": {"raw_traffic": False, "flow_label": 0, "hop_limit": 0}, "tclass": 0,
                   "r": {"reversible": True, "numb_path": 1}, "pkey": 0xFFFF,
                   "q": {"qos_class": 0, "sl": 0}, "m": {"mtu_selector": 2, "mtu": 5},
                   "rt": {"rate_selector": 2, "rate": 16},
                   "p": {"packet_life_time_selector": 2, "packet_life_time": 18},
                   "preference": 0},
    })  # fmt: skip
    assert ours == theirs, "ibmig and construct disagree on the PathRecord MAD"
    pi_ours = PortInfo.unpack(PORT_INFO.build(_PORT_INFO_VALUES))
    assert pi_ours.lid == 7 and pi_ours.guid_cap == 32 and pi_ours.subnet_timeout == 18


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    check_same_bytes()
    print("MAD encode+decode round trips per second, one core "
          f"(median of {args.repeat} alternating runs of {args.seconds:g} s)")  # fmt: skip
    print(f"{'MAD':<30} {'ibmig':>12} {'construct':>12} {'ratio':>8}")
    for name, ours, theirs in CASES:
        assert ours() == theirs()
        a: list[float] = []
        b: list[float] = []
        for _ in range(args.repeat):
            a.append(rate(ours, args.seconds))
            b.append(rate(theirs, args.seconds / 4))
        ra, rb = statistics.median(a), statistics.median(b)
        print(f"{name:<30} {ra:12,.0f} {rb:12,.0f} {ra / rb:7.1f}x")


if __name__ == "__main__":
    main()
