"""rdma_cm's IP addressing header: the start of a REQ's private data.

IBA Vol 1, Annex A11 "RDMA IP CM Service" lets a consumer that names its peers by
IP address (Linux rdma_cm) connect through the ordinary CM: the REQ's Service ID
falls in the RDMA IP CM range (A11.2):

    bits 63..24  0x0000000001          bits 23..16  IP protocol (0x06 TCP, ...)
    bits 15..0   destination port

and the REQ's Private Data starts with a 36-byte header (A11.4, "IP Addressing CM
REQ Message Private Data Format"; Linux `struct cma_hdr`):

    byte 0   MajV (7..4) | MinV (3..0): version 0.0
    byte 1   IPV (7..4): 4 or 6 | reserved (3..0)
    byte 2   SrcPort (16)
    byte 4   SrcIP (128)
    byte 20  DstIP (128)

An IPv4 address sits in the last 4 bytes of its 16; the 12 before it are sent as
zero and ignored on receipt, as Linux's `cma_save_ip4_info` ignores them. The
consumer's own private data follows the header. A version other than 0.0 (the
only one A11.4 defines) or an IP version other than 4 or 6 raises WireError: the
layout of the addresses is then unknown.

Wireshark's CM dissector decodes the header (`infiniband.cm.req.ip_cm.*`) when a
REQ's Service ID is in the RDMA IP CM range.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address
from typing import ClassVar, Final

from ibmig.errors import WireError

IP_CM_HEADER_SIZE: Final = 36
CMA_VERSION: Final = 0x00  # MajV 0, MinV 0: the only version defined (A11.4)

IP_CM_SERVICE_ID_MASK: Final = 0xFFFFFFFFFF000000
IP_CM_SERVICE_ID_PREFIX: Final = 0x0000000001000000


class IpVersion(IntEnum):
    """IPV values of the IP CM header (A11.4)."""

    IPV4 = 0x4
    IPV6 = 0x6


def ip_cm_service_id(protocol: int, port: int) -> int:
    """The RDMA IP CM Service ID for an IP protocol and destination port (A11.2);
    Linux `cma_get_service_id` with the port space RDMA_PS_TCP is protocol 0x06."""
    if not 0 <= protocol <= 0xFF or not 0 <= port <= 0xFFFF:
        raise WireError(f"IP CM protocol {protocol!r} / port {port!r} do not fit 8 / 16 bits")
    return IP_CM_SERVICE_ID_PREFIX | (protocol << 16) | port


def is_ip_cm_service_id(service_id: int) -> bool:
    """True when a REQ with this Service ID carries an IP CM header (A11.2)."""
    return service_id & IP_CM_SERVICE_ID_MASK == IP_CM_SERVICE_ID_PREFIX


_HEADER = struct.Struct(">BBH16s16s")
assert _HEADER.size == IP_CM_HEADER_SIZE
_IPV4_PAD: Final = bytes(12)


@dataclass(frozen=True, slots=True)
class IpCmHeader:
    """The IP CM header at the start of a REQ's private data (layout in the module
    docstring). Both addresses are of one IP version, which IPV names."""

    src_ip: IPv4Address | IPv6Address
    dst_ip: IPv4Address | IPv6Address
    src_port: int = 0

    SIZE: ClassVar[int] = IP_CM_HEADER_SIZE

    @property
    def ip_version(self) -> IpVersion:
        return IpVersion.IPV4 if self.src_ip.version == 4 else IpVersion.IPV6

    def pack(self) -> bytes:
        if self.src_ip.version != self.dst_ip.version:
            raise WireError(
                f"IP CM header mixes IPv{self.src_ip.version} and IPv{self.dst_ip.version}"
            )
        if not 0 <= self.src_port <= 0xFFFF:
            raise WireError(f"IP CM source port {self.src_port!r} does not fit 16 bits")
        if self.src_ip.version == 4:
            src, dst = _IPV4_PAD + self.src_ip.packed, _IPV4_PAD + self.dst_ip.packed
        else:
            src, dst = self.src_ip.packed, self.dst_ip.packed
        return _HEADER.pack(CMA_VERSION, self.ip_version << 4, self.src_port, src, dst)

    @classmethod
    def unpack(cls, data: bytes) -> IpCmHeader:
        """Decode the first 36 bytes of `data` (a REQ's private data may follow)."""
        if len(data) < IP_CM_HEADER_SIZE:
            raise WireError(f"an IP CM header is {IP_CM_HEADER_SIZE} bytes, got {len(data)}")
        version, ipv, src_port, src, dst = _HEADER.unpack_from(data)
        if version != CMA_VERSION:
            raise WireError(f"IP CM header version {version >> 4}.{version & 0xF} is not 0.0")
        ipv >>= 4
        if ipv == IpVersion.IPV4:
            return cls(IPv4Address(src[12:]), IPv4Address(dst[12:]), src_port)
        if ipv == IpVersion.IPV6:
            return cls(IPv6Address(src), IPv6Address(dst), src_port)
        raise WireError(f"IP CM header IP version {ipv} is neither 4 nor 6")


def cma_header(src_ip: IPv4Address, dst_ip: IPv4Address, src_port: int = 0) -> bytes:
    """The 36-byte IP CM header for IPv4 endpoints (what rdma_cm puts in a REQ)."""
    return IpCmHeader(src_ip, dst_ip, src_port).pack()


def parse_cma_header(private_data: bytes) -> tuple[IPv4Address, IPv4Address] | None:
    """(source, destination) IPv4 addresses of a REQ's private data, or None when it
    does not start with an IPv4 IP CM header."""
    try:
        header = IpCmHeader.unpack(private_data)
    except WireError:
        return None
    src, dst = header.src_ip, header.dst_ip
    if isinstance(src, IPv4Address) and isinstance(dst, IPv4Address):
        return src, dst
    return None


__all__ = [
    "CMA_VERSION",
    "IP_CM_HEADER_SIZE",
    "IP_CM_SERVICE_ID_MASK",
    "IP_CM_SERVICE_ID_PREFIX",
    "IpCmHeader",
    "IpVersion",
    "cma_header",
    "ip_cm_service_id",
    "is_ip_cm_service_id",
    "parse_cma_header",
]
