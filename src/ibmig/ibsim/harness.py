"""Start and stop ibsim, OpenSM, ibmig's SM and infiniband-diags tools on one fabric.

Shared by the interop tests and the benchmark. A `Harness` owns a temporary
directory and every process it starts; each process runs in its own process group
(session) and `close()` stops those groups and nothing else, then removes the
directory.

- `start_ibsim(net_file)`: ibsim with `-s` (fabric started) on a socket base name
  unique to this harness (`IBSIM_SOCKNAME`: two ibsims on one name clash and the
  second's clients silently attach to the first), tables sized with `-N/-S/-P`
  when the file exceeds ibsim's defaults, its console on a pipe (`Ibsim.console`
  sends `Unlink "node"[port]`, `ReLink "node"[port]`...), its output in a log file
  (a pipe nobody reads would fill and stop it). Returns once ibsim listens.
- `start_opensm(ibsim)`: OpenSM through `libumad2sim.so` (LD_PRELOAD), with
  `OSM_CACHE_DIR`/`OSM_TMP_DIR` and its working directory (umad2sim writes
  `./sys-<pid>/` there) in the temporary directory, `-s 0` (no periodic sweeps)
  and `-d2` (log flushed per line); `OpenSM.wait_up()` waits for "SUBNET UP".
- `start_ibmig_sm(ibsim)`: `python -m ibmig.cli.sm --ibsim ...` (the code of
  `ibmig sm`); `IbmigSm.wait_up()` reads its "SUBNET UP" line.
- `tool(ibsim, argv)`: an infiniband-diags tool attached at `SIM_HOST` through
  libumad2sim.so.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ibmig.errors import ConfigError
from ibmig.fabric import Fabric, read_net
from ibmig.ibsim.client import is_listening

UMAD2SIM_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so",
    "/usr/lib/aarch64-linux-gnu/umad2sim/libumad2sim.so",
    "/usr/lib/umad2sim/libumad2sim.so",
    "/usr/lib64/umad2sim/libumad2sim.so",
)
TOOLS = (
    "ibsim",
    "opensm",
    "saquery",
    "smpquery",
    "ibroute",
    "ibtracert",
    "ibnetdiscover",
    "sminfo",
)

# ibsim's default table sizes (ibsim/sim_net.c): above them it needs -N/-S/-P.
IBSIM_DEFAULT_NODES = 2048
IBSIM_DEFAULT_SWITCHES = 256
IBSIM_DEFAULT_PORTS = 13312

_OSM_TIME = re.compile(r"^\w{3} +\d+ (\d\d):(\d\d):(\d\d) (\d{6}) ")


class HarnessError(RuntimeError):
    """A process did not start, or did not reach the state waited for."""


def find_umad2sim() -> str | None:
    """Path of libumad2sim.so (Debian `libumad2sim0`), or None."""
    override = os.environ.get("IBMIG_UMAD2SIM")
    if override and Path(override).is_file():
        return override
    for candidate in UMAD2SIM_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    return None


def missing_tools() -> list[str]:
    """What the interop tests need and this machine lacks."""
    missing = [tool for tool in TOOLS if _which(tool) is None]
    if find_umad2sim() is None:
        missing.append("libumad2sim.so")
    return missing


def _which(tool: str) -> str | None:
    # The diags live in /usr/sbin, often not on a user's PATH.
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin")


def table_args(fabric: Fabric) -> list[str]:
    """ibsim's -N/-S/-P options for `fabric` where it exceeds the defaults."""
    nodes = len(fabric.nodes)
    switches = fabric.num_switches
    ports = sum(node.num_ports + (1 if node.is_switch else 0) for node in fabric.nodes)
    args: list[str] = []
    if nodes > IBSIM_DEFAULT_NODES:
        args += ["-N", str(nodes + nodes // 4)]
    if switches > IBSIM_DEFAULT_SWITCHES:
        args += ["-S", str(switches + switches // 4)]
    if ports > IBSIM_DEFAULT_PORTS:
        args += ["-P", str(ports + ports // 4)]
    return args


def first_ca(fabric: Fabric) -> str:
    """The name of the first channel adapter in the file with a cabled port: where
    ibmig's SM and OpenSM attach unless told otherwise."""
    for node in fabric.nodes:
        if node.is_switch:
            continue
        for port in node.port_nums:
            if fabric.peer(node.index, port) is not None:
                return node.name
    raise ConfigError("the fabric has no cabled channel adapter to host the SM")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a live process has used (Linux /proc), 0 if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
    return ticks / os.sysconf("SC_CLK_TCK")


def _stop_group(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM the process group `proc` leads, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait(grace_s)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


@dataclass
class Ibsim:
    """A running ibsim (see `Harness.start_ibsim`)."""

    net_file: Path
    sockname: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    fabric: Fabric

    def console(self, line: str) -> None:
        """One command on ibsim's console, e.g. `Unlink "h0_0"[1]` or `ReLink "h0_0"[1]`."""
        stdin = self.proc.stdin
        if stdin is None or self.proc.poll() is not None:
            raise HarnessError("ibsim is not running")
        stdin.write(line.encode() + b"\n")
        stdin.flush()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tool_env(self, node: str | None = None) -> dict[str, str]:
        """Environment for a umad2sim client (tool, OpenSM) of this ibsim at `node`."""
        env = dict(os.environ)
        shim = find_umad2sim()
        if shim is None:
            raise HarnessError("libumad2sim.so not found (Debian package libumad2sim0)")
        env["LD_PRELOAD"] = shim
        env["IBSIM_SOCKNAME"] = self.sockname
        env.pop("IBSIM_SERVER_NAME", None)  # remote mode would bypass the socket name
        if node is not None:
            env["SIM_HOST"] = node
        else:
            env.pop("SIM_HOST", None)
        return env


@dataclass
class OpenSM:
    proc: subprocess.Popen[bytes]
    log_path: Path
    started: float

    def wait_up(self, timeout_s: float = 120.0) -> float:
        """Wait for "SUBNET UP" in the log; return the seconds from "Entering
        DISCOVERING state" to "SUBNET UP" by OpenSM's own log timestamps."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            if "SUBNET UP" in text:
                return _osm_sweep_seconds(text)
            if self.proc.poll() is not None:
                raise HarnessError(
                    f"OpenSM exited ({self.proc.returncode}):\n{_tail(self.log_path)}"
                )
            time.sleep(0.01)
        raise HarnessError(f"OpenSM did not reach SUBNET UP in {timeout_s} s")


def _osm_seconds(line: str) -> float | None:
    match = _OSM_TIME.match(line)
    if match is None:
        return None
    h, m, s, us = (int(g) for g in match.groups())
    return h * 3600 + m * 60 + s + us / 1e6


def _osm_sweep_seconds(text: str) -> float:
    start = end = None
    for line in text.splitlines():
        if start is None and "Entering DISCOVERING state" in line:
            start = _osm_seconds(line)
        elif "SUBNET UP" in line:
            end = _osm_seconds(line)
            break
    if start is None or end is None:
        return float("nan")
    return (end - start) % 86400  # across midnight


@dataclass
class IbmigSm:
    """`ibmig sm --ibsim` in a child process; its stdout goes to `out_path`."""

    proc: subprocess.Popen[bytes]
    out_path: Path

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def wait_for(self, pattern: str, timeout_s: float = 120.0, start: int = 0) -> re.Match[str]:
        """Wait until `pattern` (a regex) matches the output after offset `start`."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout_s
        while True:
            match = regex.search(self.output(), start)
            if match is not None:
                return match
            if self.proc.poll() is not None:
                match = regex.search(self.output(), start)
                if match is not None:
                    return match
                raise HarnessError(
                    f"ibmig sm exited ({self.proc.returncode}) before {pattern!r}:\n"
                    + "\n".join(self.output().splitlines()[-15:])
                )
            if time.monotonic() > deadline:
                raise HarnessError(f"ibmig sm printed no {pattern!r} in {timeout_s} s")
            time.sleep(0.01)

    def wait_up(self, timeout_s: float = 300.0) -> re.Match[str]:
        return self.wait_for(r"^SUBNET UP.*$", timeout_s)

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM and wait; the exit status (0 on a clean exit)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                _stop_group(self.proc)
        return self.proc.returncode


class Harness:
    """Owns a temporary directory and the processes started through it."""

    def __init__(self, workdir: str | Path | None = None, *, keep: bool = False) -> None:
        self._own_dir = workdir is None
        self.dir = (
            Path(tempfile.mkdtemp(prefix="ibmig-ibsim-")) if workdir is None else Path(workdir)
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._procs: list[subprocess.Popen[bytes]] = []
        self._files: list[IO[bytes]] = []
        self._count = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _subdir(self, name: str) -> Path:
        with self._lock:  # tools may run from several threads at once
            self._count += 1
            path = self.dir / f"{self._count:02d}-{name}"
            path.mkdir()
        return path

    def _spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str],
        out: Path,
        stdin: int | None = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        stream = open(out, "wb")  # noqa: SIM115  (closed in close())
        self._files.append(stream)
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=stdin,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: we stop exactly that
        )
        self._procs.append(proc)
        return proc

    # --- ibsim ----------------------------------------------------------------------

    def start_ibsim(
        self,
        net_file: str | Path,
        *,
        fabric: Fabric | None = None,
        timeout_s: float = 60.0,
        extra_args: Sequence[str] = (),
    ) -> Ibsim:
        binary = _which("ibsim")
        if binary is None:
            raise HarnessError("ibsim not found (Debian package ibsim-utils)")
        net = Path(net_file).resolve()
        fabric = fabric if fabric is not None else read_net(net)
        sockname = f"ibmig-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        here = self._subdir("ibsim")
        env = dict(os.environ)
        env["IBSIM_SOCKNAME"] = sockname
        argv = [binary, "-s", *table_args(fabric), *extra_args, str(net)]
        log = here / "ibsim.log"
        proc = self._spawn(argv, cwd=here, env=env, out=log, stdin=subprocess.PIPE)
        sim = Ibsim(net, sockname, proc, log, fabric)
        deadline = time.monotonic() + timeout_s
        while not is_listening(sockname):
            if proc.poll() is not None:
                raise HarnessError(f"ibsim exited ({proc.returncode}):\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise HarnessError(f"ibsim did not listen on {sockname}:ctl in {timeout_s} s")
            time.sleep(0.01)
        return sim

    # --- OpenSM ---------------------------------------------------------------------

    def start_opensm(
        self,
        ibsim: Ibsim,
        *,
        node: str | None = None,
        routing: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> OpenSM:
        binary = _which("opensm")
        if binary is None:
            raise HarnessError("opensm not found (Debian package opensm)")
        here = self._subdir("opensm")
        env = ibsim.tool_env(node or first_ca(ibsim.fabric))
        env["OSM_CACHE_DIR"] = str(here)
        env["OSM_TMP_DIR"] = str(here)
        log = here / "osm.log"
        argv = [binary, "-s", "0", "-d2", "-f", str(log)]
        if routing:
            argv += ["-R", routing]
        argv += list(extra_args)
        started = time.monotonic()
        proc = self._spawn(argv, cwd=here, env=env, out=here / "opensm.out")
        return OpenSM(proc, log, started)

    # --- ibmig sm -------------------------------------------------------------------

    def start_ibmig_sm(
        self, ibsim: Ibsim, *, node: str | None = None, args: Sequence[str] = ()
    ) -> IbmigSm:
        here = self._subdir("ibmig-sm")
        env = dict(os.environ)
        env["IBSIM_SOCKNAME"] = ibsim.sockname
        env["PYTHONUNBUFFERED"] = "1"
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        argv = [sys.executable, "-m", "ibmig.cli.sm", "--ibsim", "--sockname", ibsim.sockname]
        if node:
            argv += ["--node", node]
        argv += list(args)
        out = here / "sm.out"
        proc = self._spawn(argv, cwd=here, env=env, out=out)
        return IbmigSm(proc, out)

    def start_ibmig_sm_umad(
        self, ibsim: Ibsim, *, node: str | None = None, args: Sequence[str] = ()
    ) -> IbmigSm:
        """`python -m ibmig.cli.sm --umad ...` under libumad2sim.so, attached at `node`
        (default the first CA) as a tool is: the code path of a real umad device."""
        here = self._subdir("ibmig-sm-umad")
        env = ibsim.tool_env(node or first_ca(ibsim.fabric))
        env["PYTHONUNBUFFERED"] = "1"
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        argv = [sys.executable, "-m", "ibmig.cli.sm", "--umad", *args]
        out = here / "sm.out"
        proc = self._spawn(argv, cwd=here, env=env, out=out)
        return IbmigSm(proc, out)

    def start_python(
        self,
        name: str,
        argv: Sequence[str],
        *,
        ibsim: Ibsim | None = None,
        node: str | None = None,
    ) -> IbmigSm:
        """`python ARGV...` with this source tree first on the path, its output in
        its own folder: a umad client of `ibsim` attached at `node` (through
        libumad2sim.so) when `ibsim` is given, a plain process otherwise (the lab's
        dom0 daemons and guests, `ibmig.daemons.lab`)."""
        here = self._subdir(name)
        env = ibsim.tool_env(node) if ibsim is not None else dict(os.environ)
        if ibsim is None:
            env.pop("LD_PRELOAD", None)
        env["PYTHONUNBUFFERED"] = "1"
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        out = here / f"{name}.out"
        proc = self._spawn([sys.executable, *argv], cwd=here, env=env, out=out)
        return IbmigSm(proc, out)

    # --- tools ----------------------------------------------------------------------

    def tool(
        self,
        ibsim: Ibsim,
        argv: Sequence[str],
        *,
        node: str | None = None,
        timeout_s: float = 60.0,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run an infiniband-diags tool attached at `node` (default: the first CA)."""
        binary = _which(argv[0])
        if binary is None:
            raise HarnessError(f"{argv[0]} not found (Debian package infiniband-diags)")
        here = self._subdir(Path(argv[0]).name)
        env = ibsim.tool_env(node or first_ca(ibsim.fabric))
        # Its own session, so that a timeout kills exactly this tool.
        proc = subprocess.Popen(
            [binary, *argv[1:]],
            cwd=here,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise HarnessError(f"{' '.join(argv)} did not finish in {timeout_s} s") from None
        if not self.keep:
            shutil.rmtree(here, ignore_errors=True)
        result = subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
        if check and proc.returncode != 0:
            raise HarnessError(
                f"{' '.join(argv)} failed ({proc.returncode}):\n{err.strip()}\n{out.strip()}"
            )
        return result

    # --- teardown -------------------------------------------------------------------

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        _stop_group(proc)

    def close(self) -> None:
        """Stop every process group started here (last first); remove the directory."""
        for proc in reversed(self._procs):
            _stop_group(proc)
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        self._procs.clear()
        for stream in self._files:
            stream.close()
        self._files.clear()
        if self._own_dir and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
