#!/usr/bin/env python3
"""Fuzz every decoder in `ibmig.wire` and the topology and scenario readers.

The rule each target is held to:

- a wire decoder (MAD header, RMPP header, SMP and every SMP attribute, SA MAD and
  every SA record, Notice and its trap details, CM MAD and every CM message, LRH,
  GRH, BTH, DETH, AETH and whole packets with ICRC/VCRC, ERF/pcap capture files,
  IPoIB ARP, the rdma_cm private-data header, and the `ibmig decode` describers)
  returns a record or raises `ibmig.errors.WireError`;
- the topology reader (`ibmig.fabric.netfile.parse_net`, net text) returns a
  `Fabric` or raises `ConfigError`; the scenario reader (TOML text through
  `tomllib` and `ibmig.experiments.scenario.scenario_from_dict`, as
  `load_scenario` reads a file) returns a `Scenario` or raises `ConfigError`.

Anything else (another exception) is a finding: it is printed with the target,
the exception and the input in hex, and the input is saved as
`CRASH_DIR/<target>-<sha1>.bin` (the raw bytes; text targets decode them as UTF-8
with undecodable bytes dropped). Replay one with `--replay FILE --target NAME`.

Two engines. `atheris` (coverage-guided libFuzzer, used by `--engine auto` when
the `atheris` package is installed): the first input byte picks the target, the
seeds below start its corpus (in CRASH_DIR/corpus), findings are printed and saved
as they come and libFuzzer ends the run (its exit status, not 0/1 below). `random`
(always available): seeded mutation of valid inputs built from the library (bit
flips, interesting values, cut, grow, splice, duplicated and deleted chunks; for
text, tokens swapped for numbers such as nan, inf, -1, 1e300), plus pure random
bytes. The random engine visits the targets in turn, so `--iterations N` gives
each target N inputs; the same `--seed` gives the same inputs.

Usage:
    python scripts/fuzz.py --list
    python scripts/fuzz.py --iterations 2000 --seed 7           # every target
    python scripts/fuzz.py --seconds 60 --target sa_mad --target notice
    python scripts/fuzz.py --engine atheris --seconds 600        # needs atheris
    python scripts/fuzz.py --replay fuzz-crashes/net-0123abcd.bin --target net

Exit status: 0 when nothing was found, 1 when there were findings, 2 for bad
arguments. The test suite runs it briefly (tests/test_fuzz_script.py).
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import random
import sys
import time
import tomllib
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibmig.errors import ConfigError, WireError
from ibmig.experiments.scenario import scenario_from_dict
from ibmig.fabric.generators import fat_tree_2level
from ibmig.fabric.netfile import format_net, parse_net
from ibmig.wire import capture, cm, ipoib, mad, notice, packet, rdma_cm, sa, smp, smp_attrs
from ibmig.wire.describe import describe_mad, describe_packet

REPO = Path(__file__).resolve().parent.parent
INTERESTING = (
    0x00,
    0x01,
    0x02,
    0x03,
    0x07,
    0x0F,
    0x10,
    0x1F,
    0x20,
    0x3F,
    0x40,
    0x7F,
    0x80,
    0x81,
    0xC0,
    0xFE,
    0xFF,
)
NUMBERS = (
    "0",
    "-1",
    "1",
    "nan",
    "inf",
    "-inf",
    "1e300",
    "0.01",
    "255",
    "256",
    "65535",
    "49152",
    "4294967296",
    "18446744073709551616",
    "0x10",
    "true",
    '""',
    "[]",
    "{}",
)


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...]
    seeds: tuple[bytes, ...]
    text: bool = False


# --- the targets ---------------------------------------------------------------------


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="ignore")


def _smp_attribute(data: bytes) -> object:
    """The first two bytes pick the attribute; the rest is its data."""
    if len(data) < 2:
        raise WireError("too short to pick an attribute")
    ids = sorted(smp_attrs.SMP_ATTRIBUTES)
    attribute = ids[int.from_bytes(data[:2], "big") % len(ids)]
    return smp_attrs.unpack_attribute(attribute, data[2:])


def _sa_record(data: bytes) -> object:
    if len(data) < 2:
        raise WireError("too short to pick a record")
    ids = sorted(sa.SA_RECORDS)
    attribute = ids[int.from_bytes(data[:2], "big") % len(ids)]
    return sa.SA_RECORDS[attribute].unpack(data[2:])


def _sa_mad(data: bytes) -> object:
    """The SA MAD and, as every receiver does, its records."""
    decoded = sa.SaMad.unpack(data)
    if decoded.attribute_offset:
        decoded.records()
    return decoded


def _decode_records(data: bytes) -> object:
    if len(data) < 3:
        raise WireError("too short")
    ids = sorted(sa.SA_RECORDS)
    attribute = ids[int.from_bytes(data[:2], "big") % len(ids)]
    return sa.decode_records(attribute, data[3:], data[2])


def _smp(data: bytes) -> object:
    decoded = smp.Smp.unpack(data)
    if decoded.attribute_id in smp_attrs.SMP_ATTRIBUTES:
        smp_attrs.unpack_attribute(decoded.attribute_id, decoded.data)
    return decoded


def _notice(data: bytes) -> object:
    decoded = notice.Notice.unpack(data)
    notice.peek_trap_number(data)
    notice.peek_path_change(data)
    return decoded


def _notice_details(data: bytes) -> object:
    if not data:
        raise WireError("empty")
    classes = sorted(set(notice.TRAP_DETAILS.values()), key=lambda k: k.__name__)
    return classes[data[0] % len(classes)].unpack(data[1:])


def _cm_message(data: bytes) -> object:
    if not data:
        raise WireError("empty")
    ids = sorted(cm.CM_MESSAGES)
    return cm.CM_MESSAGES[ids[data[0] % len(ids)]].unpack(data[1:])


def _packet_header(data: bytes) -> object:
    if not data:
        raise WireError("empty")
    headers: tuple[Any, ...] = (
        packet.Lrh,
        packet.Grh,
        packet.Bth,
        packet.Deth,
        packet.Aeth,
    )
    return headers[data[0] % len(headers)].unpack(data[1:])


def _rdma_cm(data: bytes) -> object:
    rdma_cm.parse_cma_header(data)
    return rdma_cm.IpCmHeader.unpack(data)


def _net(data: bytes) -> object:
    return parse_net(_text(data), source="<fuzz>", base_dir=_EMPTY_DIR)


def _scenario(data: bytes) -> object:
    try:
        parsed = tomllib.loads(_text(data))
    except tomllib.TOMLDecodeError as exc:  # what load_scenario makes of it
        raise ConfigError(f"not valid TOML: {exc}", "<fuzz>") from None
    return scenario_from_dict(parsed, "<fuzz>")


_EMPTY_DIR = Path("/nonexistent-fuzz-include-dir")


# --- seeds: valid inputs built from the library -----------------------------------------


def _mad_seeds() -> list[bytes]:
    records: list[Any] = [
        sa.PathRecord(sgid=bytes(16), dgid=bytes(16), numb_path=1),
        sa.InformInfo(trap_number=69),
        sa.GUIDInfoRecord(3, 0, smp_attrs.GUIDInfo((1, 2, 0, 0, 0, 0, 0, 0))),
    ]
    for klass in (sa.NodeRecord, sa.PortInfoRecord, sa.InformInfoRecord, sa.ClassPortInfo):
        # Records with required fields: their all-zero encoding, as a decoder sees it.
        records.append(klass.unpack(bytes(klass.SIZE)))
    seeds = []
    for record in records:
        for method in (mad.Method.GET, mad.Method.GET_TABLE, mad.Method.GET_RESP):
            try:
                seeds.append(sa.SaMad.from_record(record, method=method, tid=0x1234).pack())
            except (WireError, TypeError, ValueError):
                continue
    change = notice.path_change_notice(
        gid=bytes(8) + (0x1001).to_bytes(8, "big"),
        new_lid=5,
        old_lid=3,
        new_port_guid=0xB1,
        old_port_guid=0xC1,
        issuer_lid=1,
        issuer_gid=bytes(16),
    )
    seeds.append(sa.SaMad.from_record(change, method=mad.Method.REPORT, tid=7).pack())
    for message in cm.CM_MESSAGES.values():
        seeds.append(cm.CmMad(message(), tid=9).pack())
    return seeds


def _smp_seeds() -> list[bytes]:
    seeds = []
    for attribute in sorted(smp_attrs.SMP_ATTRIBUTES):
        for path in ((0, 1, 2), None):
            request = smp.make_get(attribute, tid=3, path=path)
            seeds.append(request.pack())
            seeds.append(smp.make_get_resp(request).pack())
    return seeds


def _attribute_seeds() -> list[bytes]:
    seeds = []
    ids = sorted(smp_attrs.SMP_ATTRIBUTES)
    for i, attribute in enumerate(ids):
        klass: Any = smp_attrs.SMP_ATTRIBUTES[attribute]
        try:
            body = klass().pack()
        except (TypeError, WireError, ValueError):
            body = bytes(64)
        seeds.append(i.to_bytes(2, "big") + body)
    return seeds


def _record_seeds() -> list[bytes]:
    seeds = []
    for i, attribute in enumerate(sorted(sa.SA_RECORDS)):
        klass: Any = sa.SA_RECORDS[attribute]
        try:
            body = klass().pack()
        except (TypeError, WireError, ValueError):
            body = bytes(klass.SIZE)
        seeds.append(i.to_bytes(2, "big") + body)
        padded = body.ljust(-(-len(body) // 8) * 8, b"\0")  # AttributeOffset is in words
        seeds.append(i.to_bytes(2, "big") + bytes([len(padded) // 8]) + padded * 2)
    return seeds


def _packet_seeds(mads: list[bytes]) -> list[bytes]:
    seeds = []
    grh = packet.Grh(sgid=bytes(16), dgid=bytes(16))
    for payload in mads[:3] + mads[-3:]:
        for qp, with_grh in ((0, False), (1, False), (1, True)):
            seeds.append(
                packet.build_ud_packet(
                    payload,
                    dlid=1,
                    slid=3,
                    dest_qp=qp,
                    src_qp=qp,
                    grh=grh if with_grh else None,
                )
            )
    return seeds


def _header_seeds(packets: list[bytes]) -> list[bytes]:
    seeds = [bytes([i]) + bytes(40) for i in range(5)]
    for raw in packets[:2]:
        seeds.append(b"\x00" + raw[:8])
        seeds.append(b"\x02" + raw[8:20])
    return seeds


def _net_seeds() -> list[bytes]:
    seeds = [format_net(fat_tree_2level(leaves=2, hosts_per_leaf=2, spines=1)).encode()]
    for path in sorted((REPO / "tests" / "data" / "topologies").glob("*"))[:4]:
        if path.is_file() and path.stat().st_size < 20_000:
            seeds.append(path.read_bytes())
    return seeds


def _scenario_seeds() -> list[bytes]:
    seeds = [path.read_bytes() for path in sorted((REPO / "examples").glob("*.toml"))]
    seeds.append(
        b'[topology]\nfile = "ft2-36"\n[hosts]\nn = 4\nm = 2\nvfs = 4\n'
        b"[workload]\npeers = 2\ninterval_us = 500\n"
        b"[run]\nduration_ms = 100\nseed = 1\n"
        b"[[migrations]]\nvm = 1\nat_ms = 10\n"
    )
    return seeds


def build_targets() -> list[Target]:
    mads = _mad_seeds()
    smps = _smp_seeds()
    packets = _packet_seeds(mads + smps)
    captures = [capture.encode_capture([(1000 * i, p) for i, p in enumerate(packets)])]
    wire = (WireError,)
    cm_seeds = [m for m in mads if m[1] == mad.MgmtClass.COMM_MGT]
    sa_seeds = [m for m in mads if m[1] == mad.MgmtClass.SUBN_ADM]
    arp_seeds = [
        ipoib.IpoibArp.gratuitous(ipaddress.IPv4Address("10.0.0.1"), 0x48, bytes(16)).pack()
    ]
    return [
        Target("mad_header", mad.MadHeader.unpack, wire, tuple(mads[:4])),
        Target("rmpp_header", lambda d: mad.RmppHeader.unpack(d, 24), wire, tuple(mads[:4])),
        Target("mad", mad.Mad.unpack, wire, tuple(mads + smps)),
        Target("smp", _smp, wire, tuple(smps)),
        Target("smp_attribute", _smp_attribute, wire, tuple(_attribute_seeds())),
        Target("sa_mad", _sa_mad, wire, tuple(sa_seeds)),
        Target("sa_record", _sa_record, wire, tuple(_record_seeds())),
        Target("sa_decode_records", _decode_records, wire, tuple(_record_seeds())),
        Target("notice", _notice, wire, tuple(m[56:] for m in sa_seeds)),
        Target("notice_smp", notice.Notice.unpack_smp, wire, tuple(s[64:] for s in smps[:3])),
        Target("notice_details", _notice_details, wire, (bytes(60), b"\x05" + bytes(60))),
        Target("cm_mad", cm.CmMad.unpack, wire, tuple(cm_seeds)),
        Target(
            "cm_message",
            _cm_message,
            wire,
            tuple(bytes([i]) + m[24:] for i, m in enumerate(cm_seeds)),
        ),
        Target("cm_path", cm.CmPath.unpack, wire, (bytes(44),)),
        Target("packet_header", _packet_header, wire, tuple(_header_seeds(packets))),
        Target("packet", packet.Packet.unpack, wire, tuple(packets)),
        Target("capture", lambda d: list(capture.iter_capture(d)), wire, tuple(captures)),
        Target("ipoib_arp", ipoib.IpoibArp.unpack, wire, tuple(arp_seeds)),
        Target(
            "rdma_cm",
            _rdma_cm,
            wire,
            (
                rdma_cm.cma_header(
                    ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("10.0.0.2"), 7
                ),
            ),
        ),
        Target("describe_mad", describe_mad, wire, tuple(mads + smps)),
        Target("describe_packet", describe_packet, wire, tuple(packets)),
        Target("net", _net, (ConfigError,), tuple(_net_seeds()), text=True),
        Target("scenario", _scenario, (ConfigError,), tuple(_scenario_seeds()), text=True),
    ]


# --- mutation ---------------------------------------------------------------------------


def mutate(rng: random.Random, seeds: tuple[bytes, ...], text: bool) -> bytes:
    if not seeds or rng.random() < 0.05:
        return rng.randbytes(rng.choice((0, 1, 8, 24, 56, 64, 256, 257, rng.randrange(600))))
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.choice((1, 1, 2, 3, 4, 8, 16))):
        kind = rng.randrange(9 if text else 7)
        position = rng.randrange(len(data) + 1)
        if kind == 0 and data:  # flip a bit
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif kind == 1 and data:  # an interesting byte
            data[rng.randrange(len(data))] = rng.choice(INTERESTING)
        elif kind == 2 and data:  # a random byte
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 3:  # cut short
            del data[position:]
        elif kind == 4:  # delete a chunk
            del data[position : position + rng.randrange(1, 32)]
        elif kind == 5 and data:  # duplicate a chunk
            start = rng.randrange(len(data))
            data[position:position] = data[start : start + rng.randrange(1, 32)]
        elif kind == 6:  # splice another seed in
            other = rng.choice(seeds)
            start = rng.randrange(len(other) + 1)
            data[position:] = other[start:]
        elif kind == 7:  # a token of the text swapped for a number
            words = bytes(data).split(b" ")
            if words:
                i = rng.randrange(len(words))
                head, sep, _ = words[i].partition(b"=")
                value = rng.choice(NUMBERS).encode()
                words[i] = head + sep + value if sep else value
                data = bytearray(b" ".join(words))
        elif kind == 8:  # a line dropped or repeated
            lines = bytes(data).split(b"\n")
            if lines:
                i = rng.randrange(len(lines))
                if rng.random() < 0.5:
                    del lines[i]
                else:
                    lines.insert(i, lines[i])
                data = bytearray(b"\n".join(lines))
    return bytes(data)


# --- running ----------------------------------------------------------------------------


@dataclass
class Findings:
    crash_dir: Path
    count: int = 0

    def check(self, target: Target, data: bytes) -> None:
        try:
            target.run(data)
        except target.allowed:
            return
        except RecursionError as exc:
            self.report(target, data, exc)
        except Exception as exc:
            self.report(target, data, exc)

    def report(self, target: Target, data: bytes, exc: BaseException) -> None:
        self.count += 1
        digest = hashlib.sha1(data).hexdigest()[:12]
        self.crash_dir.mkdir(parents=True, exist_ok=True)
        path = self.crash_dir / f"{target.name}-{digest}.bin"
        path.write_bytes(data)
        where = traceback.extract_tb(exc.__traceback__)[-1]
        print(
            f"FINDING {target.name}: {type(exc).__name__}: {str(exc)[:300]}"
            f" (at {Path(where.filename).name}:{where.lineno})",
            flush=True,
        )
        print(f"  input ({len(data)} bytes, saved as {path}): {data[:4096].hex()}", flush=True)


def run_random(
    targets: list[Target], findings: Findings, seed: int, iterations: int | None, seconds: float
) -> int:
    rng = random.Random(seed)
    start = time.monotonic()
    done = 0
    while iterations is None or done < iterations * len(targets):
        if seconds and time.monotonic() - start > seconds:
            break
        target = targets[done % len(targets)]
        findings.check(target, mutate(rng, target.seeds, target.text))
        done += 1
    return done


def run_atheris(
    targets: list[Target], findings: Findings, seed: int, iterations: int | None, seconds: float
) -> None:
    import atheris  # type: ignore[import-not-found, import-untyped, unused-ignore]

    corpus = findings.crash_dir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, target in enumerate(targets):
        for j, data in enumerate(target.seeds):
            (corpus / f"{target.name}-{j}").write_bytes(bytes([i]) + data)

    def one_input(data: bytes) -> None:
        if not data:
            return
        findings.check(targets[data[0] % len(targets)], data[1:])

    argv = [sys.argv[0], str(corpus), f"-seed={seed}"]
    if iterations is not None:
        argv.append(f"-runs={iterations * len(targets)}")
    if seconds:
        argv.append(f"-max_total_time={max(1, int(seconds))}")
    _instrument(atheris)
    atheris.Setup(argv, one_input)
    atheris.Fuzz()  # libFuzzer ends the process itself


def _instrument(atheris: Any) -> None:
    """Coverage for ibmig's own functions only (`instrument_all` would take minutes
    over numpy and the standard library)."""
    import inspect

    for name, module in list(sys.modules.items()):
        if not name.startswith("ibmig"):
            continue
        for value in vars(module).values():
            members = [value]
            if inspect.isclass(value) and value.__module__ == name:
                members += [m for m in vars(value).values() if inspect.isfunction(m)]
                members += [m.__func__ for m in vars(value).values() if isinstance(m, classmethod)]
            for member in members:
                if inspect.isfunction(member) and member.__module__ == name:
                    try:
                        atheris.instrument_func(member)
                    except Exception:  # a function atheris cannot patch: no coverage
                        continue


def have_atheris() -> bool:
    try:
        import atheris  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, help="inputs per target (random engine)")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", action="append", help="fuzz only these (repeatable)")
    parser.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    parser.add_argument("--crash-dir", type=Path, default=Path("fuzz-crashes"))
    parser.add_argument("--replay", type=Path, help="run one saved input through --target")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.iterations is not None and args.iterations < 0:
        parser.error("--iterations must be >= 0")
    if args.seconds < 0:
        parser.error("--seconds must be >= 0")
    targets = build_targets()
    if args.list:
        for target in targets:
            print(f"{target.name}\t{len(target.seeds)} seeds")
        return 0
    if args.target:
        known = {t.name for t in targets}
        unknown = sorted(set(args.target) - known)
        if unknown:
            parser.error(f"unknown target(s) {', '.join(unknown)}; see --list")
        targets = [t for t in targets if t.name in args.target]
    findings = Findings(args.crash_dir)
    if args.replay is not None:
        if len(targets) != 1:
            parser.error("--replay needs exactly one --target")
        findings.check(targets[0], args.replay.read_bytes())
        return 1 if findings.count else 0
    if args.iterations is None and not args.seconds:
        args.iterations = 1000
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if have_atheris() else "random"
    if engine == "atheris":
        if not have_atheris():
            parser.error("atheris is not installed (pip install atheris), use --engine random")
        run_atheris(targets, findings, args.seed, args.iterations, args.seconds)
        done = -1
    else:
        done = run_random(targets, findings, args.seed, args.iterations, args.seconds)
    ran = f"{done} inputs over {len(targets)} targets" if done >= 0 else "atheris run"
    print(f"fuzz: {ran} ({engine}, seed {args.seed}): {findings.count} findings", flush=True)
    return 1 if findings.count else 0


if __name__ == "__main__":
    sys.exit(main())
