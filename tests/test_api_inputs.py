"""The API takes what users have (issue 14): simulate/audit/exposure accept a Snapshot, a path or
a Ruleset, and raise a NatlensError for anything else; Trace's str and to_dict are what the CLI
prints; every public name is documented in docs/api.md and every documented name exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import REPO_ROOT

import natlens
from natlens.cli import main

SAMPLE = REPO_ROOT / "fixtures" / "default-bridge-8080"
OUTSIDE = natlens.Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2", dport=8080)
LOCAL = natlens.Packet(local_origin=True, src="127.0.0.1", dst="127.0.0.1", dport=8080)


def _forms() -> list[object]:
    snap = natlens.load(SAMPLE)
    return [snap, str(SAMPLE), SAMPLE, snap.ruleset]


@pytest.mark.parametrize("form", _forms(), ids=["Snapshot", "str", "Path", "Ruleset"])
def test_simulate_takes_snapshot_path_or_ruleset(form: object) -> None:
    trace = natlens.simulate(form, OUTSIDE)  # type: ignore[arg-type]
    assert trace.verdict is trace.verdict.ACCEPT
    assert trace.final_dst == "172.17.0.2:80"


@pytest.mark.parametrize("form", _forms(), ids=["Snapshot", "str", "Path", "Ruleset"])
def test_audit_and_exposure_take_every_form(form: object) -> None:
    findings = natlens.audit(form)  # type: ignore[arg-type]
    assert findings == natlens.audit(natlens.load(SAMPLE)) or isinstance(form, natlens.Ruleset)
    emap = natlens.exposure(form)  # type: ignore[arg-type]
    assert isinstance(emap, natlens.ExposureMap)


def test_ruleset_in_ipv6_goes_to_ruleset6() -> None:
    v6 = natlens.parse_save("*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n"
                            ":OUTPUT ACCEPT [0:0]\nCOMMIT\n", family=natlens.Family.IPV6)
    packet = natlens.Packet(in_interface="eth0", src="2001:db8::7", dst="2001:db8::2", dport=22)
    assert natlens.simulate(v6, packet).verdict.value == "DROP"


@pytest.mark.parametrize("function", ["simulate", "audit", "exposure"])
@pytest.mark.parametrize("bad", [42, None, b"fixtures", ["a"]])
def test_other_types_raise_usage_error(function: str, bad: object) -> None:
    args = (bad, OUTSIDE) if function == "simulate" else (bad,)
    with pytest.raises(natlens.UsageError,
                       match=rf"^natlens\.{function}: expected a natlens\.Snapshot, a path "
                             r"\(str or os\.PathLike\) or a natlens\.Ruleset, got \w+$"):
        getattr(natlens, function)(*args)


def test_missing_path_raises_snapshot_error() -> None:
    with pytest.raises(natlens.NatlensError):
        natlens.simulate("/nonexistent/natlens-snapshot", OUTSIDE)


@pytest.mark.parametrize("packet", [OUTSIDE, LOCAL], ids=["outside", "local"])
def test_trace_str_and_dict_are_what_the_cli_prints(capsys: pytest.CaptureFixture[str],
                                                    packet: natlens.Packet) -> None:
    trace = natlens.simulate(SAMPLE, packet)
    where = (["--local-origin"] if packet.local_origin
             else ["--in", str(packet.in_interface)])
    argv = ["trace", str(SAMPLE), *where, "--src", str(packet.src), "--dst", str(packet.dst),
            "--dport", str(packet.dport), "--no-cache"]
    main(argv)
    table = capsys.readouterr().out.splitlines()
    main([*argv, "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert table[0] == f"natlens trace for {SAMPLE}"
    rel = str(trace).replace(f"({SAMPLE}/", "(")
    assert table[1:] == rel.splitlines()
    assert data == trace.to_dict()
    if packet.local_origin:
        assert table[-1].startswith("note: 127.0.0.1:8080/tcp is published by natlens-web")
        assert len(data["notes"]) == 1


API_DOC = REPO_ROOT / "docs" / "api.md"


def test_every_public_name_is_documented_and_nothing_else() -> None:
    text = API_DOC.read_text()
    documented = set(re.findall(r"^\| `natlens\.(\w+)", text, re.M))
    assert documented == set(natlens.__all__)


def test_documented_signatures_name_real_parameters() -> None:
    import inspect

    for name, params in re.findall(r"^\| `natlens\.(\w+)\(([^)]*)\)`", API_DOC.read_text(),
                                   re.M):
        real = inspect.signature(getattr(natlens, name)).parameters
        for param in params.split(","):
            word = param.strip().lstrip("*").split("=")[0]
            if word not in {"", "...", "*"}:
                assert word in real, f"docs/api.md: {name}() has no parameter {word!r}"


def test_index_links_the_api_page() -> None:
    assert "(api.md)" in (REPO_ROOT / "docs" / "index.md").read_text()
    assert Path(API_DOC).is_file()
