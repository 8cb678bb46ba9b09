"""Snapshot sources besides iptables-save: the other backend, nft JSON and text, routes6, ss,
sysctl; nft base chains in the pipeline and their traces.

The mixed experiment in the corpus (``nftables/generated-here/netns-iptables-nft-plus-native``:
iptables-nft + one iptables-legacy rule + an inet and an ip native table, traced by the kernel
with ``nft monitor trace``) is loaded as a snapshot folder: natlens must give the client results
the experiment recorded (8080 and 8081 reach the server, 8082 times out) and the base chains in
the order of the kernel's trace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import natlens
from natlens.errors import NatlensError, SnapshotError
from natlens.netfilter import Packet
from natlens.netfilter.trace import StepKind
from natlens.parse.hostfiles import parse_ss, parse_sysctl
from natlens.snapshot import with_stated_host

MIXED = "nftables/generated-here/netns-iptables-nft-plus-native"
ADDR = [
    {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifname": "r0", "addr_info": [{"family": "inet", "local": "198.51.100.1", "prefixlen": 24,
                                    "broadcast": "198.51.100.255"}]},
    {"ifname": "r1", "addr_info": [{"family": "inet", "local": "192.0.2.1", "prefixlen": 24,
                                    "broadcast": "192.0.2.255"}]},
]
ROUTES = [{"dst": "198.51.100.0/24", "dev": "r0"}, {"dst": "192.0.2.0/24", "dev": "r1"}]


@pytest.fixture
def mixed(corpus: Path, tmp_path: Path) -> Path:
    """The mixed experiment as a snapshot folder (files renamed as natlens snapshot names them)."""
    src = corpus / MIXED
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(src / "iptables-nft-save.txt", folder / "iptables-save.txt")
    shutil.copy(src / "iptables-legacy-save.txt", folder / "iptables-legacy-save.txt")
    shutil.copy(src / "ruleset.json", folder / "nft-ruleset.json")
    (folder / "ip-addr.json").write_text(json.dumps(ADDR))
    (folder / "ip-route.json").write_text(json.dumps(ROUTES))
    (folder / "sysctl.txt").write_text("net.ipv4.ip_forward = 1\n")
    return folder


def _client(port: int) -> Packet:
    return Packet(in_interface="r0", src="198.51.100.2", dst="198.51.100.1", proto="tcp",
                  sport=60222, dport=port)


@pytest.mark.parametrize(("port", "verdict", "final"), [
    (8080, "ACCEPT", "192.0.2.2:80"),   # iptables-nft DNAT (nat_pre's vmap misses)
    (8081, "ACCEPT", "192.0.2.2:80"),   # nft DNAT at -105 wins: ip nat PREROUTING never runs
    (8082, "DROP", "192.0.2.2:81"),     # fwd_a's policy accept, then ip filter FORWARD drop
])
def test_mixed_experiment_outcomes(mixed: Path, port: int, verdict: str, final: str) -> None:
    snap = natlens.load(mixed)
    assert snap.other_backend is not None
    assert snap.other_backend_name == "legacy"
    assert snap.sysctl["net.ipv4.ip_forward"] == "1"
    trace = natlens.simulate(snap, _client(port))
    assert (trace.verdict.value, trace.final_dst) == (verdict, final)
    assert not trace.uncertain


def test_mixed_experiment_chain_order_is_the_kernels(mixed: Path, corpus: Path) -> None:
    """Base chains in the order ``nft monitor trace`` printed for the 8081 SYN (the legacy
    mangle chain, invisible to nft trace, left out)."""
    trace = natlens.simulate(natlens.load(mixed), _client(8081))
    seen: list[str] = []
    for s in trace.steps:
        if s.kind is StepKind.NOTE or s.source == "iptables-legacy":
            continue
        family = s.family or "ip"
        base = s.chain if s.source == "nft" else s.hook
        name = f"{family}/{s.table}/{base}"
        if s.source != "nft" and s.chain != s.hook:
            continue
        if not seen or seen[-1] != name:
            seen.append(name)
    summary = (corpus / MIXED / "trace-summary.txt").read_text()
    line = next(ln for ln in summary.splitlines() if "->8081 syn" in ln)
    kernel = re.findall(r"(\S+/\S+/[^\[\s]+)\[", line.split(": ", 1)[1])
    kernel_bases = [k for k in kernel if not k.startswith("inet/natlens/dnat")]
    mine = [n for n in seen if not n.startswith("inet/natlens/dnat")]
    assert [n for n in mine if n in kernel_bases] == kernel_bases


def test_nft_steps_say_source_family_handle_and_text(mixed: Path) -> None:
    trace = natlens.simulate(natlens.load(mixed), _client(8081))
    nft = [s for s in trace.steps if s.source == "nft" and s.kind is StepKind.RULE]
    d = next(s for s in nft if s.chain == "dnat8081").to_dict()
    assert d["source"] == "nft"
    assert d["family"] == "inet"
    assert d["table"] == "natlens"
    assert isinstance(d["rule"], int)
    assert "dnat ip to 192.0.2.2:80" in d["text"]
    legacy = [s for s in trace.steps if s.source == "iptables-legacy"]
    assert legacy
    assert all(s.table == "mangle" for s in legacy)
    assert {s.source for s in trace.steps if s.table == "filter"} == {"iptables-nft"}


def test_iptables_nft_tables_are_not_counted_twice(mixed: Path) -> None:
    """ip filter/nat/mangle/raw are in nft-ruleset.json too (with xt): they come from
    iptables-save only, so no rule runs twice and no xt doubt appears."""
    snap = natlens.load(mixed)
    sim = snap.simulator
    assert sim.nft is not None
    assert sorted(sim.nft.dropped) == ["ip filter", "ip mangle", "ip nat", "ip raw"]
    names = [c.name for c in sim.pipelines[4].chains() if c.source.value == "nft"]
    assert not [n for n in names if n.split()[1] in ("filter", "nat", "mangle", "raw")]


def test_xt_without_iptables_save_is_uncertain(corpus: Path, tmp_path: Path) -> None:
    """Without the iptables-nft dump, its tables are simulated from the JSON: an ``xt`` match
    is uncertain, never silently true or false."""
    single = tmp_path / "ruleset.json"
    shutil.copy(corpus / MIXED / "ruleset.json", single)
    snap = natlens.load(single)
    trace = natlens.simulate(snap, _client(8080))
    assert any("xt" in u for u in trace.uncertain), trace.uncertain


def test_old_other_backend_file_names_still_read(mixed: Path) -> None:
    (mixed / "iptables-legacy-save.txt").rename(mixed / "iptables-save.other-backend.txt")
    snap = natlens.load(mixed)
    assert snap.other_backend is not None
    assert snap.other_backend.rule_count == 1
    assert snap.other_backend_name == "legacy"


def test_legacy_main_reads_the_nft_dump(tmp_path: Path) -> None:
    (tmp_path / "iptables-save.txt").write_text(
        "# Generated by iptables-save v1.8.9\n*filter\n:INPUT ACCEPT [0:0]\n"
        ":FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")
    (tmp_path / "iptables-nft-save.txt").write_text(
        "# Generated by iptables-nft-save v1.8.9 (nf_tables)\n*filter\n:INPUT DROP [0:0]\n"
        ":FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")
    (tmp_path / "ip-addr.json").write_text(json.dumps(ADDR))
    snap = natlens.load(tmp_path)
    assert snap.other_backend_name == "nf_tables"
    trace = natlens.simulate(snap, Packet(in_interface="r0", src="198.51.100.2",
                                          dst="198.51.100.1", dport=22))
    assert trace.verdict.value == "DROP"
    assert trace.steps[-1].source == "iptables-nft"


def test_routes6_sysctl_and_ss(tmp_path: Path) -> None:
    (tmp_path / "iptables-save.txt").write_text("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    (tmp_path / "ip-addr.json").write_text(json.dumps([
        {"ifname": "eth0", "addr_info": [{"family": "inet6", "local": "2001:db8::1",
                                          "prefixlen": 64}]}]))
    (tmp_path / "ip-route.json").write_text("[]")
    (tmp_path / "ip-route6.json").write_text(json.dumps([
        {"dst": "default", "gateway": "2001:db8::ff", "dev": "eth0"},
        {"dst": "2001:db8::/64", "dev": "eth0"}]))
    (tmp_path / "sysctl.txt").write_text("net.ipv4.ip_forward = 0\n"
                                         "net.ipv6.conf.all.forwarding = 1\n"
                                         "sysctl: cannot stat /proc/sys/net/bridge/x: No such\n")
    (tmp_path / "ss.txt").write_text(
        "Netid State  Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess\n"
        "tcp   LISTEN 0      4096         0.0.0.0:8080       0.0.0.0:*    "
        'users:(("docker-proxy",pid=812,fd=4))\n'
        "tcp   LISTEN 0      128             [::]:22            [::]:*\n"
        "udp   UNCONN 0      0      127.0.0.53%lo:53         0.0.0.0:*\n")
    snap = natlens.load(tmp_path)
    assert snap.host.forwarding == {4: False, 6: True}
    assert snap.host.known_routes6
    assert str(snap.host.route(natlens.Packet(src="2001:db8::1", dst="2001:db8:1::9",
                                              local_origin=True).dst)) == \
        "default via 2001:db8::ff dev eth0"
    assert snap.sockets is not None
    assert [(s.proto, str(s.address), s.port, s.interface, s.process) for s in snap.sockets] \
        == [("tcp", "0.0.0.0", 8080, None, "docker-proxy"), ("tcp", "::", 22, None, None),
            ("udp", "127.0.0.53", 53, "lo", None)]


@pytest.mark.parametrize(("text", "where"), [
    ("net.ipv4.ip_forward 1\n", "sysctl.txt:1"),
])
def test_bad_sysctl_line_names_file_and_line(text: str, where: str) -> None:
    with pytest.raises(SnapshotError, match=where):
        parse_sysctl(text)


def test_bad_ss_line_names_file_and_line() -> None:
    with pytest.raises(SnapshotError, match=r"ss.txt:2: not an 'ss -ltnup' socket line"):
        parse_ss("Netid State\nhello world\n")


def test_single_nft_json_file_is_a_rule_source(corpus: Path) -> None:
    path = corpus / "nftables/docker-v29-nftables"
    json_file = next(iter(sorted(path.glob("*.json"))), None)
    assert json_file is not None
    snap = natlens.load(json_file)
    assert snap.nft is not None
    assert snap.nft.tables
    assert not snap.ruleset.tables


NFT_TEXT = """table inet t {
  chain f {
    type filter hook forward priority 0; policy drop;
    tcp dport 22 accept
  }
}
"""


@pytest.mark.kernel
def test_nft_text_is_converted_with_the_hosts_nft(tmp_path: Path) -> None:
    if shutil.which("nft") is None or shutil.which("ip") is None:
        pytest.fail("nft or ip missing: the conversion cannot be tested")
    path = tmp_path / "ruleset.nft"
    path.write_text(NFT_TEXT)
    snap = with_stated_host(natlens.load(path), addresses=["192.0.2.1"])
    assert snap.nft is not None
    assert [t.label for t in snap.nft.tables] == ["inet t"]
    assert not _ours()  # the scratch namespace is gone
    out = [natlens.simulate(snap, Packet(in_interface="eth0", src="198.51.100.2",
                                         dst="10.9.9.9", dport=p)) for p in (22, 23)]
    assert [t.verdict.value for t in out] == ["ACCEPT", "DROP"]


@pytest.mark.kernel
def test_bad_nft_text_is_one_line_error_and_no_namespace_left(tmp_path: Path) -> None:
    path = tmp_path / "bad.nft"
    path.write_text("table inet t {\n  chain f {\n    tcp dport nonsense accept\n  }\n}\n")
    with pytest.raises(SnapshotError) as err:
        natlens.load(path)
    assert "bad.nft" in str(err.value)
    assert "\n" not in str(err.value)
    assert not _ours()


def test_nft_text_without_nft_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("natlens.nftconvert._SBIN", ())
    path = tmp_path / "ruleset.nft"
    path.write_text(NFT_TEXT)
    with pytest.raises(NatlensError, match=r"ruleset.nft: nft text .*'nft -j list ruleset'"):
        natlens.load(path)


def _ours() -> list[str]:
    """This process's scratch namespaces (other tests may make theirs meanwhile)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    names = [ln.split()[0] for ln in out.stdout.splitlines() if ln.strip()]
    return [n for n in names if n.startswith(f"nlv-{os.getpid()}-") and n.endswith("nftconv")]


EXAMPLE = Path(__file__).resolve().parents[2] / "docs/examples/nftables-next-to-docker"


@pytest.mark.kernel
def test_docs_example_agrees_with_kernel() -> None:
    """The docs example (iptables-nft + nftables.conf + a legacy rule) replayed by verify:
    iptables-nft-restore, iptables-legacy-restore and nft -j -f in namespaces."""
    from natlens.verify import verify
    from natlens.verify.generate import Probe

    snap = natlens.load(EXAMPLE)
    probes = [Probe(Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2",
                           sport=41000 + p, dport=p), "outside", "README trace")
              for p in (8080, 22)]
    report = verify(snap, probes=probes)
    assert [r.trace.verdict.value for r in report.results] == ["DROP", "DROP"]
    assert not report.disagreements, report.render()
    generated = verify(snap, packets=40, seed=3)
    assert generated.tried == 40
    assert not generated.disagreements, generated.render()


def test_dump_without_header_whose_tables_are_in_the_nft_json(mixed: Path) -> None:
    """An iptables-save without its ``# Generated by`` header: its tables are all in the nft
    JSON with their built-in chains, so it is iptables-nft's and its JSON copy is dropped."""
    dump = mixed / "iptables-save.txt"
    dump.write_text("".join(ln for ln in dump.read_text().splitlines(keepends=True)
                            if not ln.startswith("#")))
    snap = natlens.load(mixed)
    assert snap.backend is None
    sim = snap.simulator
    assert sim.backend == "nf_tables"
    assert sim.nft is not None
    assert sorted(sim.nft.dropped) == ["ip filter", "ip mangle", "ip nat", "ip raw"]
    trace = natlens.simulate(snap, _client(8082))
    assert trace.verdict.value == "DROP"
    assert not trace.uncertain


@pytest.mark.parametrize("text", [
    'include "/etc/passwd"\n',
    'table inet t { chain c { } }; include "/etc/shadow"\n',
])
def test_nft_text_with_include_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "ruleset.nft"
    path.write_text("table inet t {\n}\n" + text)
    with pytest.raises(SnapshotError, match="'include' statements would read other files"):
        natlens.load(path)
