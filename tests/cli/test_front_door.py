"""The front door's small promises: `--version`, the path-looking TOPOLOGY rule,
`ibmig path` decoding its PathRecord and refusing cleanly when there is no path, and
`ibmig sm --ibsim` saying how to start ibsim."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

from ibmig.cli import main
from ibmig.cli.path import lifetime_text, mtu_text, rate_text, status_text
from ibmig.errors import ConfigError
from ibmig.fabric import load_topology


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"ibmig {metadata.version('ibmig')}"


@pytest.mark.parametrize(
    "spec", ["../shared/topologies/ft3-1296.net", "ft2-36.net", "./ft2-36", "no/such"]
)
def test_a_path_looking_topology_that_does_not_exist_is_an_error(
    spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Defect: a missing file named like a preset brought the preset up instead.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no such file") as caught:
        load_topology(spec)
    assert caught.value.where == spec
    assert main(["up", spec]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ibmig: error: {spec}: no such file"), lines


def test_a_missing_file_named_like_a_preset_names_the_preset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"named 'ft2-36', without \.net"):
        load_topology(str(tmp_path / "ft2-36.net"))


def test_a_preset_name_and_an_existing_file_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_topology("ft2-36").num_cas == 36
    (tmp_path / "two.net").write_text(TWO_HOSTS)
    monkeypatch.chdir(tmp_path)
    assert load_topology("two.net").num_cas == 2
    with pytest.raises(ConfigError, match="not a built-in topology"):
        load_topology("ft9-1")


TWO_HOSTS = (
    'Switch 4 "s0"\n[1] "h0"[1]\n[2] "h1"[1]\n\n'
    'Hca 1 "h0"\n[1] "s0"[1]\n\nHca 1 "h1"\n[1] "s0"[2]\n'
)
LONE_HOST = TWO_HOSTS + '\nHca 1 "lone"\n'


def test_path_prints_decoded_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["path", "ft2-36", "h0_0", "h3_8"]) == 0
    out = capsys.readouterr().out
    pattern = re.compile(r"^  (\S.*?)\s{2,}(\S.*)$", re.M)
    fields = {m.group(1): m.group(2) for m in pattern.finditer(out)}
    # ft2-36's ports are 4x EDR with a 4096-byte MTU; OpenSM's default lifetime is 0x12.
    assert fields["MTU"] == "4096 bytes [code 5, selector 2: exactly]"
    assert fields["rate"].startswith("100 Gb/s (4x EDR")
    assert fields["packet lifetime"] == "1.07 s (4.096 us x 2^18) [code 18, selector 2: exactly]"
    assert fields["SL"] == "0"
    assert fields["DLID"] == "43" and fields["P_Key"] == "0xffff (full member)"
    assert "mtu 5" not in out and "rate   16" not in out
    assert "route (4 links):" in out and out.rstrip().endswith("-> h3_8[1] (LID 43)")


@pytest.mark.parametrize(
    ("code", "text"), [(1, "256 bytes"), (3, "1024 bytes"), (5, "4096 bytes"), (6, "reserved")]
)
def test_mtu_codes(code: int, text: str) -> None:
    assert mtu_text(code) == text


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (2, "2.5 Gb/s (1x SDR)"),
        (3, "10 Gb/s (4x SDR, 2x DDR, 1x QDR)"),
        (5, "5 Gb/s (2x SDR, 1x DDR)"),
        (7, "40 Gb/s (4x QDR, 8x DDR)"),
        (4, "30 Gb/s (12x SDR)"),
        (12, "56 Gb/s (4x FDR)"),
        (16, "100 Gb/s (4x EDR, 2x HDR, 1x NDR)"),
        (21, "400 Gb/s (4x NDR, 2x XDR, 8x HDR)"),
        (0, "reserved"),
        (63, "reserved"),
    ],
)
def test_rate_codes_follow_table_205(code: int, text: str) -> None:
    assert rate_text(code) == text


def test_packet_lifetime_is_4_096_us_times_a_power_of_two() -> None:
    assert lifetime_text(0) == "4.1 us (4.096 us x 2^0)"
    assert lifetime_text(8) == "1.05 ms (4.096 us x 2^8)"
    assert lifetime_text(20) == "4.29 s (4.096 us x 2^20)"


def test_sa_status_is_named() -> None:
    assert status_text(0x0300) == "0x0300 (ERR_NO_RECORDS: no record matches the query)"
    assert status_text(0x0500).startswith("0x0500 (ERR_REQ_INVALID_GID")
    assert status_text(0x000C) == "0x000c (method/attribute combination not supported)"


def test_path_with_no_path_is_one_error_line_and_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "lone" has no link: the SA knows no LID for it and answers ERR_NO_RECORDS.
    net = tmp_path / "lone.net"
    net.write_text(LONE_HOST)
    assert main(["path", str(net), "h0", "lone"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "ibmig: error: path h0 -> lone: no path; the SA answered with status 0x0300 "
        "(ERR_NO_RECORDS: no record matches the query)"
    ]


def test_path_between_connected_hosts_of_a_net_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tmp_path / "lone.net"
    net.write_text(LONE_HOST)
    assert main(["path", str(net), "h0", "h1"]) == 0
    assert "route (2 links):" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "env", "where", "start"),
    [
        (["--sockname", "ibmig-front-nobody"], None, "--sockname",
         "`IBSIM_SOCKNAME=ibmig-front-nobody ibsim -s NETFILE`"),
        ([], "ibmig-front-env-nobody", "IBSIM_SOCKNAME",
         "`IBSIM_SOCKNAME=ibmig-front-env-nobody ibsim -s NETFILE`"),
    ],
)  # fmt: skip
def test_sm_without_ibsim_says_how_to_start_it(
    argv: list[str],
    env: str | None,
    where: str,
    start: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if env is None:
        monkeypatch.delenv("IBSIM_SOCKNAME", raising=False)
    else:
        monkeypatch.setenv("IBSIM_SOCKNAME", env)
    assert main(["sm", "--ibsim", *argv]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"ibmig: error: {where}: no ibsim listening on "), lines
    assert start in lines[0] and "NETFILE" in lines[0]


def test_sm_bad_partitions_file_is_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "partitions.conf"
    conf.write_text("Default=0x7fff : ALL ;\nRed=0x0101 :\n 0x12, 0xzz ;\n")
    argv = ["sm", "--ibsim", "--sockname", "ibmig-front-nobody", "--partitions", str(conf)]
    assert main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"ibmig: error: {conf}:2: bad PortGUID '0xzz'"]


@pytest.mark.parametrize("module", ["ibmig.cli.sm", "ibmig.cli"])
def test_python_dash_m_runs_without_a_runpy_warning(module: str) -> None:
    """`python -m ibmig.cli.sm` (how the ibsim harness starts the SM) must not find its
    module imported by the package before runpy runs it."""
    import os
    import subprocess
    import sys

    import ibmig

    src = str(Path(ibmig.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=src)
    done = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", module, "--help"],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith("usage: ibmig")
