"""The kernel agrees that natlens's re-serialisation means the same as the original dump.

For every iptables-save style dump of the corpus and of the tests' own data, and for each
iptables backend that works here (nf_tables, and legacy when its kernel modules load):

* A: a fresh network namespace, ``iptables-restore -c`` the ORIGINAL text, ``iptables-save -c``;
* B: another fresh namespace, restore ``to_save(parse_save(original))``, ``iptables-save -c``;
* A and B must be equal (``#`` lines ignored; counters compared, both restored with ``-c``,
  except where natlens's output has chain lines without counters, as for ``-S`` input: then
  both are restored and saved without ``-c``).

A dump the kernel refuses (a missing match module, syntax of an old iptables) is skipped with
iptables-restore's exact error as the reason; where natlens modernised the syntax (old
``-d ! x`` negation, kube-proxy's unquoted multi-word comments) its re-serialisation must load
all the same. ``iptables -S`` dumps (Docker's documentation) are turned into restore input for
A. Needs root (network namespaces); runs in CI as root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import corpus_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netns_helpers import namespaces
from test_parse_property import valid_rule

from natlens import Family, ParseError, ParseWarning, Ruleset, parse_save, to_save

pytestmark = pytest.mark.kernel

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
TESTS = Path(__file__).resolve().parent

# The least number of dumps that must really be compared per backend (the corpus and the test
# data give about 30): the test must not pass because everything was skipped.
MIN_COMPARED = 15

# Round trips that fail because of a natlens bug (file name -> diagnosis). Each is xfail(strict):
# fixing the bug makes the test XPASS, i.e. fail, until the entry is removed here.
KNOWN_BUGS: dict[str, str] = {}

_TABLE_LINE = re.compile(r"^\*(raw|mangle|nat|filter|security)\s*$", re.M)
_S_COMMAND = re.compile(r"^-[PNA] ", re.M)
# Old iptables (< 1.4.3) wrote '!' after the option: "-d ! 10.0.0.0/8", "--dport ! 22".
_OLD_NEGATION = re.compile(r"(?:^|\s)(?:-[sdiop]|--[a-z][a-z-]*) ! ")
_COUNTER_SAVE = re.compile(r"^\[\d+:\d+\] ")


@dataclass(frozen=True)
class Backend:
    name: str
    v4: tuple[str, str]
    v6: tuple[str, str]

    def tools(self, family: Family) -> tuple[str, str]:
        return self.v6 if family is Family.IPV6 else self.v4


BACKENDS = (
    Backend("nft", ("iptables-nft-restore", "iptables-nft-save"),
            ("ip6tables-nft-restore", "ip6tables-nft-save")),
    Backend("legacy", ("iptables-legacy-restore", "iptables-legacy-save"),
            ("ip6tables-legacy-restore", "ip6tables-legacy-save")),
)


@dataclass(frozen=True)
class Dump:
    """One input: its file, restore-ready original text, and how natlens reads it."""

    path: Path
    original: str
    strict: bool
    table: str | None  # for `iptables -S` dumps
    source_text: str  # what natlens parses (the -S text itself for -S dumps)

    @property
    def id(self) -> str:
        corpus = corpus_path()
        try:
            return str(self.path.relative_to(corpus))
        except ValueError:
            return str(self.path.relative_to(TESTS.parent))


# -- namespaces ----------------------------------------------------------------------------------


@contextmanager
def netns() -> Iterator[str]:
    """A fresh network namespace, deleted on the way out whatever happens."""
    with namespaces("natlens-rt-") as (name,):
        yield name


def restore_and_save(backend: Backend, family: Family, text: str,
                     counters: bool = True) -> tuple[str | None, str]:
    """(iptables-save [-c] output, "") after restoring ``text``, or (None, the restore error)."""
    restore, save = backend.tools(family)
    flags = ["-c"] if counters else []
    with netns() as ns:
        loaded = subprocess.run(["ip", "netns", "exec", ns, restore, *flags], input=text,
                                check=False, capture_output=True, text=True, timeout=60)
        if loaded.returncode != 0:
            error = (loaded.stderr or loaded.stdout).strip() or f"exit {loaded.returncode}"
            return None, error
        saved = subprocess.run(["ip", "netns", "exec", ns, save, *flags], capture_output=True,
                               text=True, timeout=60, check=True)
    return saved.stdout, ""


def normalise(saved: str) -> list[str]:
    return [line.rstrip() for line in saved.splitlines() if line.strip() and
            not line.startswith("#")]


def _backend_works(backend: Backend) -> str | None:
    """None when the backend can restore a table here, else why not."""
    if not IS_ROOT:
        return "needs root for network namespaces"
    for tool in (*backend.v4, *backend.v6):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    if shutil.which("ip") is None:
        return "iproute2 'ip' not installed"
    try:
        out, err = restore_and_save(backend, Family.IPV4,
                                    "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n")
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{backend.name} backend unusable: {exc}"
    if out is None or "-A INPUT -j ACCEPT" not in out:
        return f"{backend.name} backend does not load rules here: {err}"
    return None


# -- inputs --------------------------------------------------------------------------------------


def _s_to_restore(text: str, table: str) -> str:
    """``iptables -S`` output of one table as iptables-restore input."""
    decls: list[str] = []
    rules: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "-P" and len(words) >= 3:
            decls.append(f":{words[1]} {words[2]} [0:0]")
        elif words[0] == "-N" and len(words) >= 2:
            decls.append(f":{words[1]} - [0:0]")
        else:
            rules.append(line)
    return "\n".join([f"*{table}", *decls, *rules, "COMMIT"]) + "\n"


def _natlens_reads(text: str, table: str | None) -> bool | None:
    """True/False: strict/lenient mode reads ``text``; None: natlens refuses it."""
    for strict in (True, False):
        try:
            _parse(text, strict, table)
        except ParseError:
            continue
        return strict
    return None


def _parse(text: str, strict: bool, table: str | None) -> Ruleset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParseWarning)
        return parse_save(text, source="<roundtrip>", strict=strict, table=table)


def collect_dumps() -> list[Dump]:
    corpus = corpus_path()
    perm = corpus / "real-world" / "permissive"
    save_files = {*perm.glob("*save*"), *perm.glob("*serverfault*"), *perm.glob("*.up.rules"),
                  *(corpus / "iptables-t" / "shell-dumps").glob("*"),
                  *(corpus / "kube-proxy").glob("*.rules")}
    for folder in ("fixtures", "golden", "data"):
        save_files.update(p for p in (TESTS / folder).rglob("*") if p.is_file())
    dumps: list[Dump] = []
    for path in sorted(save_files):
        if path.suffix in (".py", ".sh", ".json", ".md", ".xml"):
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        if not (_TABLE_LINE.search(text) and re.search(r"^COMMIT\s*$", text, re.M)):
            continue
        strict = _natlens_reads(text, None)
        if strict is not None:
            dumps.append(Dump(path, text, strict, None, text))
    for path in sorted(corpus.glob("docker/*/extracted/*.S.rules")):
        table = path.name.split(".")[1].split("-")[0]
        text = path.read_text()
        if not _S_COMMAND.search(text):
            continue
        strict = _natlens_reads(text, table)
        if strict is not None:
            dumps.append(Dump(path, _s_to_restore(text, table), strict, table, text))
    return dumps


def _params() -> list[object]:
    if not (corpus_path() / "README.md").is_file():
        return [pytest.param(None, None, id="corpus-missing")]
    params: list[object] = []
    for backend in BACKENDS:
        for dump in collect_dumps():
            marks = []
            reason = KNOWN_BUGS.get(dump.path.name)
            if reason is not None:
                marks.append(pytest.mark.xfail(strict=True, reason=reason))
            params.append(pytest.param(backend, dump, id=f"{backend.name}:{dump.id}",
                                       marks=marks))
    return params


COMPARED: dict[str, list[str]] = {b.name: [] for b in BACKENDS}
REFUSED: dict[str, list[str]] = {b.name: [] for b in BACKENDS}
_WORKS: dict[str, str | None] = {}


def _require(backend: Backend) -> None:
    if not IS_ROOT:
        pytest.skip("kernel round trip needs root (network namespaces); CI runs it as root")
    if backend.name not in _WORKS:
        _WORKS[backend.name] = _backend_works(backend)
    reason = _WORKS[backend.name]
    if reason is not None:
        if backend.name == "nft":
            pytest.fail(f"the default nf_tables backend must work here: {reason}")
        pytest.skip(reason)


def _diff(a: list[str], b: list[str]) -> str:
    import difflib

    return "\n".join(difflib.unified_diff(a, b, "kernel(original)", "kernel(natlens)",
                                          lineterm="", n=1))


@pytest.mark.parametrize(("backend", "dump"), _params())
def test_kernel_round_trip(backend: Backend | None, dump: Dump | None, corpus: Path) -> None:
    assert backend is not None, "no dumps collected"
    assert dump is not None, "no dumps collected"
    _require(backend)
    ruleset = _parse(dump.source_text, dump.strict, dump.table)
    rewritten = to_save(ruleset)
    family = ruleset.family

    # With -c iptables-restore needs [p:b] on every chain line; natlens writes none for chains
    # whose input had none (iptables -S dumps), so those are compared without counters.
    counters = _has_chain_counters(dump.original) and _has_chain_counters(rewritten)
    a, a_error = restore_and_save(backend, family, dump.original, counters)
    b, b_error = restore_and_save(backend, family, rewritten, counters)
    if a is None:
        REFUSED[backend.name].append(dump.id)
        modernised = bool(_OLD_NEGATION.search(dump.original)) or not dump.strict
        if modernised and b is None and not _missing_extension(b_error):
            pytest.fail(f"natlens modernised the syntax of {dump.id}, yet its output does not "
                        f"load either: {b_error}\n--- natlens output:\n{rewritten}")
        note = "; natlens's modernised output loads" if b is not None else ""
        pytest.skip(f"{backend.name}: {restore_name(backend, family)} refuses the original: "
                    f"{a_error}{note}")
    assert b is not None, (f"the original loads but natlens's re-serialisation does not: "
                           f"{b_error}\n--- natlens output:\n{rewritten}")
    left, right = normalise(a), normalise(b)
    assert left == right, f"{dump.id}: kernel state differs\n{_diff(left, right)}"
    COMPARED[backend.name].append(dump.id)


def _has_chain_counters(text: str) -> bool:
    return all(len(line.split()) >= 3 for line in text.splitlines() if line.startswith(":"))


def restore_name(backend: Backend, family: Family) -> str:
    return backend.tools(family)[0]


def _missing_extension(error: str) -> bool:
    """The kernel (or the iptables build) lacks a match/target: not natlens's fault."""
    return bool(re.search(r"Couldn't load (match|target)|No chain/target/match by that name|"
                          r"Extension .* revision .* not supported|unknown option|"
                          r"Could not open socket|does not exist", error))


@pytest.mark.parametrize("backend", BACKENDS, ids=[b.name for b in BACKENDS])
def test_round_trips_were_not_vacuous(backend: Backend) -> None:
    """Runs after the round trips above (pytest keeps file order): enough were compared."""
    _require(backend)
    ran = COMPARED[backend.name] or REFUSED[backend.name]
    if not ran:
        pytest.skip("the round-trip tests did not run in this session (deselected)")
    assert len(COMPARED[backend.name]) >= MIN_COMPARED, (
        f"only {len(COMPARED[backend.name])} dumps compared on {backend.name} "
        f"(refused by the kernel: {REFUSED[backend.name]})")


def test_netns_helper_cleans_up() -> None:
    if not IS_ROOT:
        pytest.skip("needs root for network namespaces")
    with pytest.raises(RuntimeError), netns() as name:  # noqa: PT012
        assert name in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                      text=True, check=True).stdout
        raise RuntimeError("boom")
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            check=True).stdout
    assert name not in listed.split()


def test_generated_kube_dump_is_what_iptables_save_prints() -> None:
    """benchmarks/gen_kube.py claims to print exactly what iptables-save prints: check it."""
    if not IS_ROOT:
        pytest.skip("needs root for network namespaces")
    nft = BACKENDS[0]
    _require(nft)
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gen_kube", TESTS.parent / "benchmarks" / "gen_kube.py")
    assert spec is not None
    assert spec.loader is not None
    gen_kube = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_kube", gen_kube)  # dataclasses look their module up there
    spec.loader.exec_module(gen_kube)
    text = gen_kube.generate(60, 3)
    saved, error = restore_and_save(nft, Family.IPV4, text, counters=False)
    assert saved is not None, error
    assert normalise(saved) == normalise(text)
    ruleset = _parse(text, True, None)
    assert normalise(to_save(ruleset)) == normalise(text)


@settings(max_examples=int(os.environ.get("NATLENS_KERNEL_EXAMPLES", "12")), deadline=None,
          database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_rules_kernel_round_trip(data: st.DataObject) -> None:
    """Random valid rules (the property test's generator): the kernel state from natlens's
    re-serialisation equals the one from the original text."""
    if not IS_ROOT:
        pytest.skip("needs root for network namespaces")
    nft = BACKENDS[0]
    _require(nft)
    table = data.draw(st.sampled_from(("filter", "nat")))
    rules = data.draw(st.lists(valid_rule(table, unknown_modules=False), min_size=1, max_size=25))
    # A user chain nothing jumps to: the kernel checks NAT targets' hooks only on reachable
    # chains, and FUZZ -> MYCHAIN cannot loop.
    builtins = ("INPUT", "FORWARD", "OUTPUT") if table == "filter" else (
        "PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")
    text = "\n".join([f"*{table}", *(f":{c} ACCEPT [0:0]" for c in builtins),
                      ":FUZZ - [0:0]", ":MYCHAIN - [0:0]", *(f"-A FUZZ {r}" for r in rules),
                      "COMMIT"]) + "\n"
    ruleset = _parse(text, True, None)
    a, a_error = restore_and_save(nft, Family.IPV4, text)
    if a is None:
        pytest.fail(f"natlens (strict) accepted what iptables-restore refuses: {a_error}\n{text}")
    b, b_error = restore_and_save(nft, Family.IPV4, to_save(ruleset))
    assert b is not None, f"natlens's re-serialisation does not load: {b_error}\n{to_save(ruleset)}"
    assert normalise(a) == normalise(b), _diff(normalise(a), normalise(b))


# Rules iptables-restore refuses (checked against the kernel below); strict mode must refuse them
# too (each was once accepted).
STRICT_REFUSALS = [
    pytest.param("filter", '-j LOG --log-prefix ""', id="empty-log-prefix"),
    pytest.param("nat", "-j DNAT --to-destination 1.2.3.4:80", id="dnat-port-without-proto"),
    pytest.param("nat", "-j MASQUERADE --to-ports 1024-2048", id="masquerade-ports-without-proto"),
    pytest.param("nat", "-j DROP", id="drop-in-nat"),
    pytest.param("filter", "-p tcp -m multiport --dports 80:80", id="multiport-empty-range"),
]


@pytest.mark.parametrize(("table", "rule"), STRICT_REFUSALS)
def test_strict_mode_refuses_what_iptables_restore_refuses(table: str, rule: str) -> None:
    nft = BACKENDS[0]
    _require(nft)
    text = f"*{table}\n:FUZZ - [0:0]\n-A FUZZ {rule}\nCOMMIT\n"
    loaded, error = restore_and_save(nft, Family.IPV4, text)
    assert loaded is None, "the kernel accepts this rule after all: drop it from the list"
    assert error
    with pytest.raises(ParseError):
        _parse(text, True, None)
