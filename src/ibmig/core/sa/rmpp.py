"""The sending side of RMPP for SA responses (IBA Vol 1, 13.6 "Reliable Multi-Packet
Transaction Protocol").

A SubnAdmGetTableResp longer than one MAD travels as a numbered sequence of DATA
segments. Every segment is a whole 256-byte SA MAD: the common MAD header, the
RMPP header and the 20-byte SA header (SM_Key, AttributeOffset, ComponentMask)
are repeated in each, and each carries the next 200 bytes of the record table;
records straddle segment boundaries freely (13.6.2; 15.2.1.1).

RMPP header of DATA segments (13.6.2.1-13.6.2.3):

- RMPPVersion 1, RMPPType DATA, RRespTime `RRESP_TIME`;
- flags: Active on every segment, First on segment 1, Last on the final one;
- SegmentNumber counts from 1;
- PayloadLength: in the first segment the length of the whole transfer, which
  counts the 20-byte SA header once per segment plus the record bytes
  (n * 20 + table length), in the last segment the bytes it carries itself (20 +
  the records' share of it), 0 in the others. This is what the Linux kernel's MAD
  layer, which does RMPP for OpenSM, writes (drivers/infiniband/core/mad_rmpp.c,
  `send_next_seg`); for a single segment both rules give 20 + table length,
  OpenSM's value (`ibmig.wire.sa.SaMad.from_records`).

Flow control (13.6.3, sender side only). The sender may have segments up to
WindowLast outstanding; WindowLast starts at `initial_window` (1: the requester's
window is unknown until its first ACK) and moves with each ACK, which carries
the last segment received in order (SegmentNumber) and the new WindowLast
(PayloadLength field, "NewWindowLast"). An ACK older than the last one is
ignored; an ACK for a segment beyond the window or past the end, or a window
below the acknowledged segment, aborts the transfer (ABORT with status
SegmentNumber too big / NewWindowLast too small, as the kernel does). The transfer
is complete when the last segment is acknowledged. When no ACK arrives within
the timeout, the unacknowledged segments of the window are sent again, up to
`max_retries` times; then the sender gives up and sends ABORT (too many
retries). STOP or ABORT from the receiver end the transfer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from ibmig.errors import WireError
from ibmig.wire.mad import MadHeader, RmppFlags, RmppHeader, RmppType
from ibmig.wire.sa import SA_CLASS_HEADER_SIZE, SA_DATA_SIZE, SaMad

RMPP_VERSION: Final = 1
RRESP_TIME: Final = 14
"""RRespTime of the segments, as OpenSM's single-segment responses carry it."""
SEGMENT_DATA_SIZE: Final = SA_DATA_SIZE


class RmppStatus(IntEnum):
    """RMPPStatus values (IBA Vol 1, 13.6.2.1, RMPP status codes)."""

    NORMAL = 0
    RESOURCES_EXHAUSTED = 1
    TOTAL_TIME_TOO_LONG = 118
    INCONSISTENT_LAST = 119
    INCONSISTENT_FIRST = 120
    BAD_RMPP_TYPE = 121
    WINDOW_TOO_SMALL = 122
    SEGMENT_TOO_BIG = 123
    ILLEGAL_STATUS = 124
    UNSUPPORTED_VERSION = 125
    TOO_MANY_RETRIES = 126
    UNSPECIFIED = 127


def segment_count(table_size_bytes: int) -> int:
    """How many DATA segments carry a table of that many bytes (at least one)."""
    return max(1, -(-table_size_bytes // SEGMENT_DATA_SIZE))


def segment_table(
    header: MadHeader,
    table: bytes,
    *,
    attribute_offset: int,
    component_mask: int = 0,
    sm_key: int = 0,
) -> list[SaMad]:
    """The DATA segments of a response carrying `table` (records already laid out
    `attribute_offset * 8` bytes apart). `header` is the response's MAD header,
    repeated in every segment."""
    count = segment_count(len(table))
    segments: list[SaMad] = []
    for index in range(count):
        number = index + 1
        chunk = table[index * SEGMENT_DATA_SIZE : number * SEGMENT_DATA_SIZE]
        flags: int = RmppFlags.ACTIVE
        length = 0
        if number == 1:
            flags |= RmppFlags.FIRST
            length = count * SA_CLASS_HEADER_SIZE + len(table)
        if number == count:
            flags |= RmppFlags.LAST
            length = SA_CLASS_HEADER_SIZE + len(chunk)
        rmpp = RmppHeader(RMPP_VERSION, RmppType.DATA, RRESP_TIME, flags, 0, number, length)
        data = chunk + bytes(SEGMENT_DATA_SIZE - len(chunk))
        segments.append(SaMad(header, rmpp, sm_key, attribute_offset, component_mask, data))
    return segments


def reassemble(segments: Sequence[SaMad]) -> bytes:
    """The table carried by a complete, in-order sequence of DATA segments (what an
    RMPP receiver hands its client); WireError if the sequence is inconsistent."""
    if not segments:
        raise WireError("no RMPP segments")
    count = len(segments)
    parts: list[bytes] = []
    total = 0
    for index, segment in enumerate(segments):
        rmpp = segment.rmpp
        number = index + 1
        if rmpp.rmpp_type != RmppType.DATA or not rmpp.flags & RmppFlags.ACTIVE:
            raise WireError(f"segment {number} is not an active RMPP DATA segment")
        if rmpp.segment_number != number:
            raise WireError(f"segment {number} carries SegmentNumber {rmpp.segment_number}")
        first = bool(rmpp.flags & RmppFlags.FIRST)
        last = bool(rmpp.flags & RmppFlags.LAST)
        if first != (number == 1) or last != (number == count):
            raise WireError(f"segment {number} of {count} has flags {rmpp.flags:#x}")
        if first:
            total = rmpp.payload_length - count * SA_CLASS_HEADER_SIZE
        parts.append(segment.data)
    if not (count - 1) * SEGMENT_DATA_SIZE <= total <= count * SEGMENT_DATA_SIZE:
        raise WireError(f"PayloadLength announces {total} table bytes in {count} segments")
    last_length = segments[-1].rmpp.payload_length - SA_CLASS_HEADER_SIZE
    if last_length != total - (count - 1) * SEGMENT_DATA_SIZE:
        raise WireError(f"last segment announces {last_length} bytes, the first {total}")
    return b"".join(parts)[:total]


def control_mad(request: SaMad, rmpp_type: int, status: int = 0) -> SaMad:
    """An ABORT (or STOP) for the transfer `request` belongs to (13.6.2.1)."""
    rmpp = RmppHeader(RMPP_VERSION, rmpp_type, RRESP_TIME, RmppFlags.ACTIVE, status, 0, 0)
    return SaMad(
        request.header,
        rmpp,
        0,
        request.attribute_offset,
        request.component_mask,
        bytes(SA_DATA_SIZE),
    )


@dataclass(slots=True)
class AckOutcome:
    """What an ACK asks of the sender: segments to send, completion, or an abort."""

    send: list[int]
    complete: bool = False
    abort_status: int | None = None


class RmppSender:
    """State of one outgoing RMPP transfer (see the module docstring).

    Sans I/O: the caller transmits the segment numbers the methods return and arms
    a timer at `deadline_ns`.
    """

    __slots__ = (
        "count",
        "deadline_ns",
        "last_ack",
        "max_retries",
        "next_new",
        "retries",
        "segments",
        "timeout_ns",
        "window_last",
    )

    def __init__(
        self, segments: list[bytes], *, initial_window: int, timeout_ns: int, max_retries: int
    ) -> None:
        self.segments = segments
        self.count = len(segments)
        self.window_last = max(1, initial_window)
        self.timeout_ns = timeout_ns
        self.max_retries = max_retries
        self.last_ack = 0
        self.next_new = 1  # the first segment never sent yet
        self.retries = 0
        self.deadline_ns = 0

    def start(self, now_ns: int) -> list[int]:
        """Segments to send first."""
        return self._advance(now_ns)

    def _advance(self, now_ns: int) -> list[int]:
        top = min(self.window_last, self.count)
        numbers = list(range(self.next_new, top + 1))
        self.next_new = max(self.next_new, top + 1)
        self.deadline_ns = now_ns + self.timeout_ns
        return numbers

    def on_ack(self, segment: int, new_window_last: int, now_ns: int) -> AckOutcome:
        if segment > self.count or segment > self.window_last:
            return AckOutcome([], abort_status=RmppStatus.SEGMENT_TOO_BIG)
        if new_window_last < segment:
            return AckOutcome([], abort_status=RmppStatus.WINDOW_TOO_SMALL)
        if segment < self.last_ack:
            return AckOutcome([])  # an old ACK overtaken by a newer one
        self.last_ack = segment
        self.window_last = max(self.window_last, new_window_last)
        self.retries = 0
        if self.last_ack == self.count:
            return AckOutcome([], complete=True)
        return AckOutcome(self._advance(now_ns))

    def on_timeout(self, now_ns: int) -> list[int] | None:
        """Segments to send again, or None when the retries are used up."""
        if self.retries >= self.max_retries:
            return None
        self.retries += 1
        top = min(self.window_last, self.count)
        self.next_new = max(self.next_new, top + 1)
        self.deadline_ns = now_ns + self.timeout_ns
        return list(range(self.last_ack + 1, top + 1))
