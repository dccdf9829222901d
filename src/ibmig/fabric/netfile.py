"""Read and write topology files in the ibsim "net" / ibnetdiscover format.

The grammar is the one ibsim 0.10 accepts (linux-rdma/ibsim, ibsim/sim_net.c:
`parse_netconf`, `parse_switch`, `parse_endnode`, `parse_port`,
`connect_ports`), which is also what `ibnetdiscover` prints:

    # comment
    vendid=0x2c9                       ignored by ibsim
    devid=0xcb20                       DeviceID of the nodes that follow
    sysimgguid=0xf452140300ab1233      ignored by ibsim
    switchguid=0x200000(200000)        next switch GUID (caguid=, hcaguids=, rtguid=)
    Switch 36 "S-..." # "desc" enhanced port 0 lid 1 lmc 0
    [1]  "H-..."[1](100001)  # "desc" lid 5 4xEDR
    [2]  "S-..."[3] w=2 s=4
                                       a blank line ends a record
    Ca 2 "H-..." # "desc"              also Hca; Rt for a router
    [1](100001)  "S-..."[1]  # lid 5 lmc 0 "desc" lid 1 4xEDR

Also `width=N`/`speed=N` (enabled width/speed masks of the ports of later
nodes), `include "file"`, `pdebug=`, ibnetdiscover's `Chassis`/`Hostname:`
lines (ignored) and `[ext N]` port annotations. ibsim's aliases (`@`), `do`
commands and `module` prefixes raise `ConfigError`. The diagnostics the tools write
to stderr (`ibwarn: [pid] ...`, `PROG: iberror: ...`), which a dump taken with
`2>&1` holds, are skipped like comments wherever they fall; ibsim skips every
line it has no keyword for.

Semantics mirror ibsim so that a file names the same fabric here and there:

- GUIDs come from ibsim's counters in file order (see `ibmig.fabric.model`),
  not from node names; a node referenced only as a peer is an error.
- A record's port lines must be confirmed by the peer's record: A[1] -> B[2]
  requires B[2] -> A[1] (ibsim refuses the file otherwise).
- `"peer"` without `[n]` means port 1.
- The LID of a switch comes from its header (`lid N lmc M`), that of a
  channel adapter or router port from the first `lid N` after the peer.
- A link's width and speed are the highest ones both ends enable
  (`w=`/`s=` per port, `width=`/`speed=` defaults, 4x SDR otherwise).
- With `as_ibsim=True` (the default) the file is read exactly as ibsim would
  present it: `(port GUID)` annotations, `sysimgguid=` and `vendid=` are
  ignored (a node's system image GUID is its node GUID, vendor id 0), the
  width/speed ibnetdiscover prints in comments (`4xEDR`) is ignored, and
  descriptions are cut to 63 bytes. With `as_ibsim=False` those are honoured:
  the fabric is the one the file describes (the way to load a real
  `ibnetdiscover` dump faithfully).

Stricter than ibsim, which skips what it does not understand: an unknown
keyword, an indented line, a port line outside a record, junk after a node
name, a port listed twice, and a number without digits all raise
`ConfigError(message, where="FILE:LINE")`.

One ibsim quirk is *not* mirrored: ibsim drops the line that follows a record
whose ports are not all listed, so a record that directly follows another one
without a blank line is lost there. This reader accepts such files; the writer
always separates records with a blank line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, TypeVar

from ibmig.errors import ConfigError, shown
from ibmig.fabric.model import (
    Fabric,
    FabricBuilder,
    GuidAllocator,
    LinkSpeed,
    LinkWidth,
    Node,
    NodeType,
)

__all__ = [
    "IBSIM_DESCRIPTION_BYTES",
    "NetStyle",
    "format_net",
    "parse_net",
    "read_net",
    "write_net",
]

NetStyle = Literal["ibsim", "ibnetdiscover"]
_T = TypeVar("_T")

# ibsim copies descriptions into a 64-byte buffer, keeping 63 (measured with smpquery).
IBSIM_DESCRIPTION_BYTES = 63
_MAX_INCLUDE_DEPTH = 8
_GUID_MAX = (1 << 64) - 1

_WORD = re.compile(r"[A-Za-z]*")
# What infiniband-diags and libibmad write to stderr, which lands in a dump taken
# with `ibnetdiscover > f 2>&1`: IBWARN/IBPANIC/IBDEBUG ("ibwarn: [pid] func: ..."),
# and IBEXIT/IBERROR ("ibnetdiscover: iberror: [pid N] func: failed: ...").
_DIAGNOSTIC = re.compile(r"ib(?:warn|panic|debug): \[\d+\] |[\w.-]+: iberror: ")
_HEADER = re.compile(r'(?P<kw>[A-Za-z]+)(?P<num>[^"]*)"(?P<name>[^"]*)"(?P<rest>.*)$')
_PORT = re.compile(
    r"\[(?P<port>[^\]]*)\](?:\[ext\s+\d+\])?"
    r"\s*(?:\((?P<guid>[^)]*)\))?"
    r'\s*"(?P<peer>[^"]*)"(?P<after>.*)$'
)
_SIMPLE_PORT = re.compile(r'\[([0-9]+)\][ \t]*"([^"]*)"\[([0-9]+)\]$')
_PEER_PORT = re.compile(r"\[(?P<port>[^\]]*)\](?:\[ext\s+\d+\])?(?:\s*\([^)]*\))?")
_C_INT = re.compile(r"\s*(?P<num>0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_QUOTED = re.compile(r'"[^"]*"')
_RATE = re.compile(r"(?<![\w])(?P<w>1|2|4|8|12)x(?P<s>SDR|DDR|QDR|FDR10|FDR|EDR|HDR|NDR)(?![\w])")
_HEX = re.compile(r"\s*(?:0[xX])?(?P<hex>[0-9a-fA-F]+)\s*$")

_IBSIM_WIDTHS = (
    (0x8, LinkWidth.X12),
    (0x4, LinkWidth.X8),
    (0x2, LinkWidth.X4),
    (0x1, LinkWidth.X1),
)
_IBSIM_SPEEDS = ((0x4, LinkSpeed.QDR), (0x2, LinkSpeed.DDR), (0x1, LinkSpeed.SDR))
# What ibsim's get_active_linkwidth/get_active_linkspeed pick from the common enabled bits.
_WIDTH_BY_MASK = [next((w for bit, w in _IBSIM_WIDTHS if m & bit), None) for m in range(16)]
_SPEED_BY_MASK = [next((s for bit, s in _IBSIM_SPEEDS if m & bit), None) for m in range(8)]
_IBSIM_DEFAULT_WIDTH_MASK = 0x2  # LINKWIDTH_4x, ibsim/sim.h
_IBSIM_DEFAULT_SPEED_MASK = 0x1  # LINKSPEED_SDR

_RECORD_TYPES = {
    "Switch": NodeType.SWITCH,
    "Hca": NodeType.CA,
    "Ca": NodeType.CA,
    "Rt": NodeType.ROUTER,
}
_GUID_KEYWORDS = {
    "switchguid": NodeType.SWITCH,
    "hcaguids": NodeType.CA,
    "caguid": NodeType.CA,
    "rtguid": NodeType.ROUTER,
}
_IGNORED_KEYWORDS = frozenset({"pdebug", "Chassis", "Hostname"})
_UNSUPPORTED_KEYWORDS = {
    "do": "ibsim 'do' commands are not supported in topology files",
    "module": "ibsim 'module' name prefixes are not supported",
}


def _c_int(text: str, what: str, where: str) -> tuple[int, int]:
    """Parse an unsigned C integer (0x hex, leading-0 octal, decimal) at the
    start of `text` after blanks, as strtoul with base 0 does; returns
    (value, end offset). No digits at all is an error."""
    m = _C_INT.match(text)
    if m is None:
        raise ConfigError(f"bad number for {what}: {shown(text.strip())}", where)
    num = m.group("num")
    if num[:2] in ("0x", "0X"):
        return int(num[2:], 16), m.end()
    if num[0] == "0":
        return int(num, 8), m.end()
    return int(num), m.end()


def _c_int_whole(text: str, what: str, where: str) -> int:
    value, end = _c_int(text, what, where)
    if text[end:].strip():
        raise ConfigError(f"bad number for {what}: {shown(text.strip())}", where)
    return value


def _decimal(text: str, what: str, where: str) -> int:
    stripped = text.strip()
    if not stripped.isdigit() or not stripped.isascii():
        raise ConfigError(f"bad {what}: {shown(text)}", where)
    return int(stripped)


def _unquoted(text: str) -> str:
    """`text` with quoted strings blanked out, positions kept."""
    return _QUOTED.sub(lambda m: " " * len(m.group()), text)


def _keyed_number(text: str, key: str, where: str) -> int | None:
    """The number after the first `key` outside quotes (ibsim: strstr + strtoul)."""
    at = _unquoted(text).find(key)
    if at < 0:
        return None
    value, _ = _c_int(text[at + len(key) :], key.strip(), where)
    return value


def _split_description(comment: str) -> tuple[str, str | None]:
    """Text after '#' in a header -> (description, rest), as ibsim's
    `parse_node_desc`: a quoted description, or the text up to the first of
    " enhanced port ", " base port ", " lid ", " lmc " (in that order)."""
    text = comment.lstrip()
    if text.startswith('"'):
        end = text.find('"', 1)
        if end < 0:
            return text[1:], None
        return text[1:end], text[end + 1 :]
    for marker in (" enhanced port ", " base port ", " lid ", " lmc "):
        at = text.find(marker)
        if at >= 0:
            return text[:at], text[at + 1 :]
    return text, None


class _PortDecl:
    __slots__ = (
        "line",
        "peer",
        "peer_port",
        "speed_hint",
        "speed_mask",
        "width_hint",
        "width_mask",
    )

    def __init__(self, peer: str, peer_port: int, line: str, width_mask: int, speed_mask: int):
        self.peer = peer
        self.peer_port = peer_port
        self.line = line
        self.width_mask = width_mask
        self.speed_mask = speed_mask
        self.width_hint: LinkWidth | None = None
        self.speed_hint: LinkSpeed | None = None


class _NodeDecl:
    __slots__ = (
        "description",
        "device_id",
        "enhanced_port0",
        "index",
        "lids",
        "line",
        "name",
        "node_type",
        "num_ports",
        "port_guids",
        "ports",
        "speed_mask",
        "width_mask",
    )

    def __init__(
        self, index: int, node_type: NodeType, name: str, num_ports: int, line: str
    ) -> None:
        self.index = index
        self.node_type = node_type
        self.name = name
        self.num_ports = num_ports
        self.line = line
        self.description = ""
        self.device_id = 0
        self.enhanced_port0 = False
        self.lids: dict[int, tuple[int, int]] = {}
        self.port_guids: dict[int, int] = {}
        self.ports: dict[int, _PortDecl] = {}
        self.width_mask = _IBSIM_DEFAULT_WIDTH_MASK
        self.speed_mask = _IBSIM_DEFAULT_SPEED_MASK


class _Reader:
    """One pass over the lines; nodes are created at their headers (GUIDs in
    file order), links are resolved at the end, in ibsim's port order."""

    def __init__(self, as_ibsim: bool) -> None:
        self.as_ibsim = as_ibsim
        self.builder = FabricBuilder()
        self.guids = GuidAllocator()
        self.decls: list[_NodeDecl] = []
        self.current: _NodeDecl | None = None
        self.device_id = 0
        self.width_mask = _IBSIM_DEFAULT_WIDTH_MASK
        self.speed_mask = _IBSIM_DEFAULT_SPEED_MASK
        self.pending_vendor_id: int | None = None
        self.pending_system_image_guid: int | None = None
        self.include_stack: list[Path] = []

    # -- lines ----------------------------------------------------------------

    def read_text(self, text: str, source: str, base_dir: Path) -> None:
        for number, raw in enumerate(text.split("\n"), start=1):
            where = f"{source}:{number}"
            line = raw.rstrip()
            if not line:
                self.current = None
                continue
            if line[0] in " \t\f\v\r":
                raise ConfigError("unexpected indentation", where)
            if line[0] == "#" or _DIAGNOSTIC.match(line):
                continue
            if line[0] == "[":
                if self.current is None:
                    raise ConfigError("port line outside a node record", where)
                self.port_line(self.current, line, where)
                continue
            if line[0] == "@":
                raise ConfigError("ibsim port aliases ('@') are not supported", where)
            self.current = None
            self.keyword_line(line, where, base_dir)

    def keyword_line(self, line: str, where: str, base_dir: Path) -> None:
        m = _WORD.match(line)
        word = m.group() if m else ""
        if word in _RECORD_TYPES:
            self.current = self.header(_RECORD_TYPES[word], line, where)
        elif word in _GUID_KEYWORDS:
            at = min((i for i in (line.find("="), line.find("+")) if i >= 0), default=-1)
            if at < 0:
                raise ConfigError(f"{word}: missing '=' or '+'", where)
            guid, _ = _c_int(line[at + 1 :], word, where)
            self.check_guid(guid, word, where)
            self.guids.set_base(_GUID_KEYWORDS[word], guid, relative=line[at] == "+")
        elif word == "devid":
            value = self.assignment(line, word, where)
            if not 0 <= value <= 0xFFFF:
                raise ConfigError(f"devid {value:#x} out of range 0..0xffff", where)
            self.device_id = value
        elif word == "vendid":
            value = self.assignment(line, word, where)
            if not 0 <= value <= 0xFFFFFF:
                raise ConfigError(f"vendid {value:#x} out of range 0..0xffffff", where)
            self.pending_vendor_id = value
        elif word == "sysimgguid":
            value = self.assignment(line, word, where)
            self.check_guid(value, word, where)
            self.pending_system_image_guid = value
        elif word == "width":
            self.width_mask = self.mask(self.assignment(line, word, where), 15, word, where)
        elif word == "speed":
            self.speed_mask = self.mask(self.assignment(line, word, where), 7, word, where)
        elif word == "include":
            self.include(line, where, base_dir)
        elif word in _IGNORED_KEYWORDS:
            pass
        elif word in _UNSUPPORTED_KEYWORDS:
            raise ConfigError(_UNSUPPORTED_KEYWORDS[word], where)
        else:
            raise ConfigError(f"unknown keyword {shown(word or line.split(maxsplit=1)[0])}", where)

    @staticmethod
    def assignment(line: str, word: str, where: str) -> int:
        at = line.find("=")
        if at < 0:
            raise ConfigError(f"{word}: missing '='", where)
        value, _ = _c_int(line[at + 1 :], word, where)
        return value

    @staticmethod
    def mask(value: int, high: int, what: str, where: str) -> int:
        if not 1 <= value <= high:
            raise ConfigError(f"{what} {value} out of range 1..{high}", where)
        return value

    @staticmethod
    def check_guid(value: int, what: str, where: str) -> None:
        if not 0 <= value <= _GUID_MAX:
            raise ConfigError(f"{what} {value:#x} is not a 64-bit GUID", where)

    def include(self, line: str, where: str, base_dir: Path) -> None:
        parts = line.split('"')
        if len(parts) < 3 or not parts[1]:
            raise ConfigError('include: expected include "FILE"', where)
        path = Path(parts[1])
        if not path.is_absolute():
            path = base_dir / path
        if len(self.include_stack) >= _MAX_INCLUDE_DEPTH:
            raise ConfigError(f"includes nested deeper than {_MAX_INCLUDE_DEPTH}", where)
        resolved = path.resolve()
        if resolved in self.include_stack:
            raise ConfigError(f"include loop through {str(path)!r}", where)
        text = _read_text(path, where)
        self.include_stack.append(resolved)
        self.read_text(text, str(path), path.parent)
        self.include_stack.pop()

    # -- records ----------------------------------------------------------------

    def header(self, node_type: NodeType, line: str, where: str) -> _NodeDecl:
        m = _HEADER.match(line)
        if m is None:
            raise ConfigError('node header needs a port count and a quoted "name"', where)
        num_ports = _c_int_whole(m.group("num"), "number of ports", where)
        name = m.group("name")
        rest = m.group("rest").strip()
        description = ""
        tail: str | None = None
        if rest:
            if not rest.startswith("#"):
                raise ConfigError(f"unexpected text after the node name: {shown(rest)}", where)
            description, tail = _split_description(rest[1:])
        if self.as_ibsim:
            description = (
                (description or name).encode()[:IBSIM_DESCRIPTION_BYTES].decode(errors="ignore")
            )
        vendor_id = 0 if self.as_ibsim else (self.pending_vendor_id or 0)
        system_image_guid = None if self.as_ibsim else self.pending_system_image_guid
        self.pending_vendor_id = None
        self.pending_system_image_guid = None
        enhanced = False
        lids: dict[int, tuple[int, int]] = {}
        if node_type == NodeType.SWITCH and tail is not None:
            enhanced = "enhanced port 0" in tail
            lid = _keyed_number(tail, "lid ", where)
            lmc = _keyed_number(tail, "lmc ", where)
            if lid is not None or lmc is not None:
                lids[0] = (lid or 0, lmc or 0)
        guid = self.guids.allocate(node_type, num_ports)
        index = self.builder.add_node(
            node_type,
            name,
            num_ports,
            description=description or None,
            node_guid=guid,
            system_image_guid=system_image_guid,
            lids=lids,
            vendor_id=vendor_id,
            device_id=self.device_id,
            enhanced_port0=enhanced,
            where=where,
        )
        decl = _NodeDecl(index, node_type, name, num_ports, where)
        decl.width_mask = self.width_mask
        decl.speed_mask = self.speed_mask
        self.decls.append(decl)
        return decl

    def port_line(self, node: _NodeDecl, line: str, where: str) -> None:
        simple = _SIMPLE_PORT.match(line)
        if simple is not None:
            # The common `[n] "peer"[m]` form, without options or comments.
            port = int(simple.group(1))
            peer_port = int(simple.group(3))
            if 1 <= port <= node.num_ports and port not in node.ports and peer_port >= 1:
                node.ports[port] = _PortDecl(
                    simple.group(2), peer_port, where, node.width_mask, node.speed_mask
                )
                return
        m = _PORT.match(line)
        if m is None:
            head = re.match(r"\[([^\]]*)\]", line)
            if head is None:
                raise ConfigError("port line: missing ']'", where)
            _decimal(head.group(1), "port number", where)
            raise ConfigError('port line: expected [port] "peer"[port]', where)
        port = _decimal(m.group("port"), "port number", where)
        if not 1 <= port <= node.num_ports:
            raise ConfigError(
                f"node {node.name!r}: port {port} out of range 1..{node.num_ports}", where
            )
        if port in node.ports:
            raise ConfigError(f"node {node.name!r}: port {port} listed twice", where)
        after = m.group("after")
        peer_port = 1  # ibsim's default when the peer has no [n]
        pm = _PEER_PORT.match(after)
        if pm is not None:
            peer_port = _decimal(pm.group("port"), "peer port number", where)
            if peer_port < 1:
                raise ConfigError(f"peer port {peer_port}: ports start at 1", where)
            after = after[pm.end() :]
        elif after.lstrip().startswith("["):
            raise ConfigError("the peer's [port] must follow its closing quote directly", where)
        hash_at = _unquoted(after).find("#")
        options, comment = (after, "") if hash_at < 0 else (after[:hash_at], after[hash_at + 1 :])
        decl = _PortDecl(m.group("peer"), peer_port, where, node.width_mask, node.speed_mask)
        for token in options.split():
            key, sep, value = token.partition("=")
            if not sep or key not in ("w", "s"):
                raise ConfigError(f"unexpected text in port line: {shown(token)}", where)
            number = _c_int_whole(value, f"port option {key}", where)
            if key == "w":
                decl.width_mask = self.mask(number, 15, "port option w", where)
            else:
                decl.speed_mask = self.mask(number, 7, "port option s", where)
        if not self.as_ibsim:
            rate = _RATE.search(_unquoted(comment))
            if rate is not None and rate.group("s") != "FDR10":
                decl.width_hint = LinkWidth.from_lanes(int(rate.group("w")))
                decl.speed_hint = LinkSpeed[rate.group("s")]
        if node.node_type != NodeType.SWITCH:
            lid = _keyed_number(after, "lid ", where)
            lmc = _keyed_number(after, "lmc ", where)
            if lid is not None or lmc is not None:
                lid, lmc = lid or 0, lmc or 0
                if not 0 <= lid <= 0xFFFF or not 0 <= lmc <= 7:
                    raise ConfigError(f"LID {lid} / LMC {lmc} out of range", where)
                node.lids[port] = (lid, lmc)
            guid_text = m.group("guid")
            if guid_text is not None:
                hm = _HEX.match(guid_text)
                if hm is None:
                    raise ConfigError(f"bad port GUID {shown(guid_text)}", where)
                if not self.as_ibsim:
                    node.port_guids[port] = int(hm.group("hex"), 16)
        node.ports[port] = decl

    # -- links ------------------------------------------------------------------

    def finish(self) -> Fabric:
        by_name = {decl.name: decl for decl in self.decls}
        for decl in self.decls:
            if decl.lids or decl.port_guids:
                self.builder.set_port_details(
                    decl.index, lids=decl.lids, port_guids=decl.port_guids, where=decl.line
                )
        done: set[tuple[int, int]] = set()
        for decl in self.decls:
            for port in sorted(decl.ports):
                if (decl.index, port) in done:
                    continue
                end = decl.ports[port]
                peer = by_name.get(end.peer)
                if peer is None:
                    raise ConfigError(
                        f"node {decl.name!r} port {port}: no node named {shown(end.peer)}", end.line
                    )
                if end.peer_port > peer.num_ports:
                    raise ConfigError(
                        f"node {decl.name!r} port {port}: {peer.name!r} has no port "
                        f"{end.peer_port} (it has {peer.num_ports})",
                        end.line,
                    )
                back = peer.ports.get(end.peer_port)
                if back is None or back.peer != decl.name or back.peer_port != port:
                    seen = "nothing" if back is None else f"{back.peer!r}[{back.peer_port}]"
                    raise ConfigError(
                        f"asymmetric link: {decl.name!r}[{port}] -> {peer.name!r}"
                        f"[{end.peer_port}], but {peer.name!r}[{end.peer_port}] lists {seen}",
                        end.line,
                    )
                width, speed = self.rate(end, back)
                self.builder.connect(
                    decl.index,
                    port,
                    peer.index,
                    end.peer_port,
                    width=width,
                    speed=speed,
                    where=end.line,
                )
                done.add((decl.index, port))
                done.add((peer.index, end.peer_port))
        return self.builder.build()

    def rate(self, a: _PortDecl, b: _PortDecl) -> tuple[LinkWidth, LinkSpeed]:
        width: LinkWidth | None = None
        speed: LinkSpeed | None = None
        if not self.as_ibsim:
            width = _agree(a.width_hint, b.width_hint, "width", a.line)
            speed = _agree(a.speed_hint, b.speed_hint, "speed", a.line)
        if width is None:
            width = _WIDTH_BY_MASK[a.width_mask & b.width_mask]
            if width is None:
                raise ConfigError("the link ends enable no common width", a.line)
        if speed is None:
            speed = _SPEED_BY_MASK[a.speed_mask & b.speed_mask]
            if speed is None:
                raise ConfigError("the link ends enable no common speed", a.line)
        return width, speed


def _agree(a: _T | None, b: _T | None, what: str, where: str) -> _T | None:
    if a is not None and b is not None and a != b:
        raise ConfigError(f"the link ends disagree on the {what}", where)
    return a if a is not None else b


def _read_text(path: Path, where: str | None) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc.strerror or exc}", where) from exc
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{str(path)!r} is not UTF-8 text", where) from exc


def parse_net(
    text: str,
    *,
    source: str = "<net>",
    as_ibsim: bool = True,
    base_dir: str | os.PathLike[str] | None = None,
) -> Fabric:
    """Parse a topology text. `source` names it in errors ("SOURCE:LINE");
    `include` paths are relative to `base_dir` (default: the working directory)."""
    reader = _Reader(as_ibsim)
    reader.read_text(text, source, Path(base_dir) if base_dir is not None else Path())
    return reader.finish()


def read_net(path: str | os.PathLike[str], *, as_ibsim: bool = True) -> Fabric:
    """Read a topology file; `include`s are relative to its directory."""
    p = Path(path)
    text = _read_text(p, str(p))
    reader = _Reader(as_ibsim)
    reader.include_stack.append(p.resolve())
    reader.read_text(text, str(p), p.parent)
    return reader.finish()


# -- writer ----------------------------------------------------------------------

_GUID_LINE = {NodeType.SWITCH: "switchguid", NodeType.CA: "caguid", NodeType.ROUTER: "rtguid"}


def _ibsim_options(width: LinkWidth, speed: LinkSpeed) -> str:
    """`w=`/`s=` options that make ibsim negotiate this width and speed, or ""
    for ibsim's default (4x SDR) and for what ibsim cannot express."""
    if (width, speed) == (LinkWidth.X4, LinkSpeed.SDR):
        return ""
    if width == LinkWidth.X2 or speed > LinkSpeed.QDR:
        return ""
    return f"\tw={width.value} s={speed.value}"


def _rate_label(width: LinkWidth, speed: LinkSpeed) -> str:
    return f"{width.label}{speed.name}"


def format_net(fabric: Fabric, *, style: NetStyle = "ibsim", comments: Iterable[str] = ()) -> str:
    """The fabric as topology text that `parse_net` reads back to an equal fabric.

    style="ibsim": compact, like the hand-written ibsim files; states only what
    differs from ibsim's defaults (GUID, devid lines, port GUIDs, LIDs, link
    rates, descriptions other than the name). style="ibnetdiscover": every
    record as ibnetdiscover prints it (vendid/devid/sysimgguid/GUID lines, port
    GUIDs, peer descriptions, LIDs and rates in comments), node names kept.

    ibsim parses every '=' after a port line's peer as a `w=`/`s=` option, so
    it refuses ibnetdiscover-style files (ours and real ones) where a peer
    description holds '='; give ibsim the "ibsim" style.

    Both read back equal with as_ibsim=False. With as_ibsim=True they read back
    equal when the fabric is one ibsim can hold: vendor id 0, system image GUID
    = node GUID, port GUIDs = node GUID + port, descriptions of at most 63
    bytes, and link rates of at most QDR and not 2x (others come back 4x SDR).
    `comments` lines go first, each after "# ", then a blank line.
    """
    out: list[str] = []
    comment_lines = list(comments)
    for line in comment_lines:
        out.append(f"# {line}".rstrip() + "\n")
    if comment_lines:
        out.append("\n")
    full = style == "ibnetdiscover"
    if style not in ("ibsim", "ibnetdiscover"):
        raise ValueError(f"unknown style {style!r}")
    guids = GuidAllocator()
    device_id = 0
    nodes = fabric.nodes
    for node in nodes:
        if full:
            out.append(f"vendid={node.vendor_id:#x}\ndevid={node.device_id:#x}\n")
            out.append(f"sysimgguid={node.system_image_guid:#x}\n")
        else:
            if node.device_id != device_id:
                out.append(f"devid={node.device_id:#x}\n")
            if node.vendor_id:
                out.append(f"vendid={node.vendor_id:#x}\n")
            if node.system_image_guid != node.node_guid:
                out.append(f"sysimgguid={node.system_image_guid:#x}\n")
        device_id = node.device_id
        if full or node.node_guid != guids.peek(node.node_type):
            keyword = _GUID_LINE[node.node_type]
            suffix = f"({node.node_guid:x})" if node.node_type == NodeType.SWITCH and full else ""
            out.append(f"{keyword}={node.node_guid:#x}{suffix}\n")
            guids.set_base(node.node_type, node.node_guid)
        guids.allocate(node.node_type, node.num_ports)
        out.append(_format_header(fabric, node, full))
        for port_num in range(1, node.num_ports + 1):
            link = fabric.link_at(node.index, port_num)
            if link is not None:
                out.append(_format_port(fabric, node, port_num, full))
        out.append("\n")
    return "".join(out)


def _format_header(fabric: Fabric, node: Node, full: bool) -> str:
    if node.node_type == NodeType.SWITCH:
        port0 = fabric.ports[node.port_base]
        head = f'Switch\t{node.num_ports} "{node.name}"'
        if full:
            kind = "enhanced" if node.enhanced_port0 else "base"
            return (
                f'{head}\t\t# "{node.description}" {kind} port 0 lid {port0.lid} lmc {port0.lmc}\n'
            )
        extra = " enhanced port 0" if node.enhanced_port0 else ""
        if port0.lid or port0.lmc:
            extra += f" lid {port0.lid} lmc {port0.lmc}"
        if extra or node.description != node.name:
            return f'{head}\t# "{node.description}"{extra}\n'
        return head + "\n"
    keyword = "Rt" if node.node_type == NodeType.ROUTER else ("Ca" if full else "Hca")
    head = f'{keyword}\t{node.num_ports} "{node.name}"'
    if full:
        return f'{head}\t\t# "{node.description}"\n'
    if node.description != node.name:
        return f'{head}\t# "{node.description}"\n'
    return head + "\n"


def _format_port(fabric: Fabric, node: Node, port_num: int, full: bool) -> str:
    link = fabric.link_at(node.index, port_num)
    assert link is not None
    port = fabric.ports[node.port_index(port_num)]
    peer_index, peer_port_num = link.other_end(node.index, port_num)
    peer = fabric.nodes[peer_index]
    peer_port = fabric.ports[peer.port_index(peer_port_num)]
    is_switch = node.node_type == NodeType.SWITCH
    local = f"[{port_num}]"
    if not is_switch and (full or port.port_guid != node.node_guid + port_num):
        local += f"({port.port_guid:x})"
    remote = f'"{peer.name}"[{peer_port_num}]'
    options = _ibsim_options(link.width, link.speed)
    rate = _rate_label(link.width, link.speed)
    if full:
        if peer.node_type != NodeType.SWITCH:
            remote += f"({peer_port.port_guid:x})"
        peer_lid = fabric.ports[peer.port_base].lid if peer.is_switch else peer_port.lid
        own = "" if is_switch else f"lid {port.lid} lmc {port.lmc} "
        comment = f'\t\t# {own}"{peer.description}" lid {peer_lid} {rate}'
        return f"{local}\t{remote}{options}{comment}\n"
    tokens: list[str] = []
    if not is_switch and (port.lid or port.lmc):
        tokens.append(f"lid {port.lid} lmc {port.lmc}")
    if (link.width, link.speed) != (LinkWidth.X4, LinkSpeed.SDR):
        tokens.append(rate)
    comment = f"\t# {' '.join(tokens)}" if tokens else ""
    return f"{local}\t{remote}{options}{comment}\n"


def write_net(
    fabric: Fabric,
    path: str | os.PathLike[str],
    *,
    style: NetStyle = "ibsim",
    comments: Iterable[str] = (),
) -> None:
    """Write `format_net(fabric, ...)` to `path`."""
    Path(path).write_text(format_net(fabric, style=style, comments=comments))
