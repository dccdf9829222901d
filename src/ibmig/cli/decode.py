"""`ibmig decode`: captured packets (or hex MAD bytes) as JSON lines or a readable tree."""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import IO, Any

from ibmig.cli.common import Subparsers, file_errors
from ibmig.cli.tables import enum_name
from ibmig.errors import ConfigError, WireError
from ibmig.wire.capture import iter_capture
from ibmig.wire.describe import describe_mad, describe_packet
from ibmig.wire.mad import MAD_SIZE, Method, MgmtClass

SAMPLE = "sample.pcap"


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "decode",
        help="decode InfiniBand packets from an ERF capture, or MAD bytes given in hex",
        description=(
            "Print one JSON object per packet: LRH/GRH/BTH/DETH, the MAD header and the "
            "decoded attribute fields. Without FILE or --hex, decodes the bundled sample "
            "capture."
        ),
    )
    parser.add_argument("file", nargs="?", help="pcap file of link type ERF (197) or 247")
    parser.add_argument("--hex", metavar="HEX", help="one MAD (256 bytes) or packet as hex")
    parser.add_argument("--pretty", action="store_true", help="human-readable tree")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return run_decode(args.file, args.hex, args.pretty, sys.stdout)


def sample_capture() -> bytes:
    """The capture bundled with ibmig (see scripts/make_sample_capture.py)."""
    return resources.files("ibmig.data").joinpath(SAMPLE).read_bytes()


def _from_hex(text: str) -> list[dict[str, Any]]:
    cleaned = "".join(text.split()).removeprefix("0x")
    try:
        data = bytes.fromhex(cleaned)
    except ValueError as exc:
        raise ConfigError(f"not hex: {exc}", "--hex") from None
    try:
        if len(data) == MAD_SIZE:
            return [describe_mad(data)]
        return [describe_packet(data)]
    except WireError as exc:
        raise ConfigError(f"neither a 256-byte MAD nor a packet: {exc}", "--hex") from None


def _from_capture(data: bytes, where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        for index, captured in enumerate(iter_capture(data)):
            try:
                described = describe_packet(captured.data)
            except WireError as exc:
                described = {"error": str(exc), "raw": captured.data.hex()}
            out.append({"index": index, "timestamp_ns": captured.timestamp_ns, **described})
    except WireError as exc:
        raise ConfigError(str(exc), where) from None
    return out


def _pretty(value: Any, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    for key, item in value.items():
        if isinstance(item, dict):
            name = item.get("name")
            out.append(f"{pad}{key}: {name}" if isinstance(name, str) else f"{pad}{key}:")
            _pretty({k: v for k, v in item.items() if k != "name"}, indent + 1, out)
        elif isinstance(item, list) and item and all(isinstance(i, dict) for i in item):
            out.append(f"{pad}{key}: ({len(item)})")
            for i, entry in enumerate(item):
                out.append(f"{pad}  [{i}] {entry.get('name', '')}")
                _pretty({k: v for k, v in entry.items() if k != "name"}, indent + 2, out)
        else:
            text = str(item)
            if isinstance(item, list):
                text = " ".join(str(i) for i in item) if item else "-"
            if len(text) > 64:
                text = text[:64] + "…"
            out.append(f"{pad}{key}: {text}")


def summary(packet: dict[str, Any]) -> str:
    """One line in the spirit of Wireshark's Info column: LIDs, class, method, attribute."""
    parts = []
    lrh = packet.get("lrh")
    if isinstance(lrh, dict):
        parts.append(f"LID {lrh['slid']} -> {lrh['dlid']}")
    mad = packet.get("mad")
    if isinstance(mad, dict):
        attribute = packet.get("attribute")
        records = packet.get("records")
        if isinstance(attribute, dict):
            name = attribute.get("name")
        elif isinstance(records, list):
            name = records[0]["name"] if records else f"0x{mad['attribute_id']:04x}"
        else:
            name = f"0x{mad['attribute_id']:04x}"
        parts.append(
            f"{enum_name(MgmtClass, mad['mgmt_class'])} "
            f"{enum_name(Method, mad['method'])}({name}) tid {mad['tid']}"
        )
    return "  ".join(parts)


def pretty(packet: dict[str, Any]) -> str:
    head = []
    if "index" in packet:
        head.append(f"packet {packet['index']}")
    if "timestamp_ns" in packet:
        head.append(f"t={packet['timestamp_ns'] / 1e9:.9f} s")
    line = summary(packet)
    if line:
        head.append(line)
    lines = ["  ".join(head)] if head else []
    body = {k: v for k, v in packet.items() if k not in ("index", "timestamp_ns")}
    _pretty(body, 1 if head else 0, lines)
    return "\n".join(lines)


def run_decode(file: str | None, hex_text: str | None, as_tree: bool, out: IO[str]) -> int:
    if hex_text is not None:
        if file is not None:
            raise ConfigError("give a FILE or --hex, not both", "decode")
        packets = _from_hex(hex_text)
    elif file is None:
        packets = _from_capture(sample_capture(), f"<bundled {SAMPLE}>")
    else:
        with file_errors(file):
            data = Path(file).read_bytes()
        packets = _from_capture(data, file)
    for packet in packets:
        if as_tree:
            out.write(pretty(packet) + "\n\n")
        else:
            out.write(json.dumps(packet) + "\n")
    return 0
