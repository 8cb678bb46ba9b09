"""The compiled core (natlens.native) gives what pure Python gives, input by input.

Every file of the corpus and of the fault cases, and hypothesis-generated documents (valid rules
and mutated corpus tables, as tests/test_parse_property.py draws them), are parsed by
``parse_save`` strict and lenient in two fresh processes, one on the compiled core and one on
pure Python (tests/native_digest.py), and every record must be equal: the ruleset's ``repr`` and
JSON, each warning (text, fields, the caller it is attributed to) and each error (type, text,
file, line, token, column).

Both processes read a copy of the package taken when the tests start (edits to the working tree
meanwhile change nothing); the compiled core is the build in ``natlens/_native`` when it was made
from exactly those sources, else one compiled into the copy (``python -m natlens.native build``,
about 35 s on 2 cores). When it cannot be built (no C compiler, no mypy) the test skips, except
with ``CI`` set, where it fails: CI must compare. Each process must report the core it was meant
to run on, so a build that is not picked up cannot pass as a comparison.
The pure process runs with ``NATLENS_PURE_PYTHON=1``; both use ``PYTHONHASHSEED=0`` (sets print
in hash order). Also tested: a stale build (a source edited since) is not used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_parse_property import _mutated_document, load_samples, valid_rule

from natlens import native

REPO = Path(__file__).resolve().parent.parent
DIGEST = Path(__file__).resolve().parent / "native_digest.py"
GENERATED = 200
"""Hypothesis documents compared (each strict and lenient)."""


def _env(pythonpath: Path | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (native.PURE_ENV, native.DIR_ENV)}
    env["PYTHONHASHSEED"] = "0"
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath),
                                                          env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _cannot(reason: str) -> None:
    message = f"the compiled core could not be built: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a copy of the package to put first on PYTHONPATH, the build made from it)."""
    root = tmp_path_factory.mktemp("native")
    shutil.copytree(REPO / "natlens", root / "natlens",
                    ignore=shutil.ignore_patterns("__pycache__", "_native", "*.so"))
    fresh = native.build_dir()
    if native.check(fresh, root)[0] is None:  # built from these very sources
        return root, fresh
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        _cannot("no C compiler (apt-get install gcc libc6-dev)")
    done = subprocess.run([sys.executable, "-m", "natlens.native", "build"], cwd=root,
                          env=_env(root), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        _cannot((done.stdout + done.stderr).strip()[-3000:])
    return root, root / "natlens" / "_native"


def _records(files: list[Path], list_file: Path, pythonpath: Path,
             **env: str) -> subprocess.Popen[str]:
    list_file.write_text("".join(f"{f}\n" for f in files), encoding="utf-8")
    return subprocess.Popen([sys.executable, str(DIGEST), str(list_file)],
                            env=_env(pythonpath, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _compare(files: list[Path], tmp_path: Path, build: tuple[Path, Path]) -> int:
    """Run both cores over ``files`` (at once: one process each); return the records compared.
    Fails naming the first input whose records differ."""
    pythonpath, directory = build
    runs = {
        "compiled": _records(files, tmp_path / "compiled.txt", pythonpath,
                             **{native.DIR_ENV: str(directory)}),
        "pure": _records(files, tmp_path / "pure.txt", pythonpath, **{native.PURE_ENV: "1"}),
    }
    out: dict[str, list[dict[str, Any]]] = {}
    for name, run in runs.items():
        stdout, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, f"{name} core: {stderr[-3000:]}"
        out[name] = [json.loads(line) for line in stdout.splitlines()]
    assert out["compiled"][0]["core"].startswith("compiled core"), out["compiled"][0]
    assert out["pure"][0]["core"].startswith("pure Python"), out["pure"][0]
    compiled, pure = out["compiled"][1:], out["pure"][1:]
    assert len(compiled) == len(pure) == 2 * len(files)
    for a, b in zip(compiled, pure, strict=True):
        assert a == b, f"{a['file']} ({'strict' if a['strict'] else 'lenient'}) differs"
    return len(compiled)


def _inputs(corpus: Path, cases: Path) -> list[Path]:
    return sorted(p for folder in (corpus, cases) for p in folder.rglob("*")
                  if p.is_file() and p.stat().st_size < 32 << 20)


def test_compiled_core_equals_pure_python_on_corpus_and_cases(
        corpus: Path, cases: Path, compiled: tuple[Path, Path], tmp_path: Path) -> None:
    files = _inputs(corpus, cases)
    assert any(p.suffix == ".rules" and "kube-proxy" in p.parts for p in files)
    compared = _compare(files, tmp_path, compiled)
    # the comparison saw rulesets, warnings and errors, not only one kind
    assert compared >= 2 * len(files)


def _generated(corpus: Path) -> list[str]:
    """Documents drawn as test_parse_property draws them: generated valid rules, and corpus
    tables with mutated lines."""
    samples = load_samples(corpus)
    texts: list[str] = []

    @settings(max_examples=GENERATED, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def draw(data: st.DataObject) -> None:
        if data.draw(st.booleans()):
            table = data.draw(st.sampled_from(("filter", "nat")))
            chain = "FORWARD" if table == "filter" else "PREROUTING"
            rules = data.draw(st.lists(valid_rule(table), min_size=1, max_size=4))
            texts.append("\n".join([f"*{table}", ":MYCHAIN - [0:0]",
                                    *(f"-A {chain} {r}" for r in rules), "COMMIT"]) + "\n")
        else:
            texts.append(_mutated_document(data, samples)[0])

    draw()
    return texts


def test_compiled_core_equals_pure_python_on_generated_rulesets(
        corpus: Path, compiled: tuple[Path, Path], tmp_path: Path) -> None:
    folder = tmp_path / "generated"
    folder.mkdir()
    files = []
    for number, text in enumerate(_generated(corpus)):
        path = folder / f"{number:04d}.rules"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        files.append(path)
    assert files
    _compare(files, tmp_path, compiled)


def test_a_stale_build_is_not_used(compiled: tuple[Path, Path],
                                   tmp_path: Path) -> None:
    """A build whose sources changed since (one byte of one compiled module) is refused by
    ``check``, and the parser then runs as pure Python, saying why."""
    pythonpath, directory = compiled
    root = tmp_path / "edited"
    shutil.copytree(pythonpath / "natlens", root / "natlens",
                    ignore=shutil.ignore_patterns("__pycache__", "_native"))
    assert native.check(directory, root)[0] is None
    rule = root / "natlens" / "parse" / "rule.py"
    rule.write_text(rule.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    why, files = native.check(directory, root)
    assert why == "natlens/parse/rule.py changed since the compiled core was built: rebuild"
    assert files == {}
    shown = subprocess.run(
        [sys.executable, "-c", "import natlens.parse, natlens.native as n; "
                               "print(n.status().describe()); "
                               "print(type(natlens.parse.save.__loader__).__name__)"],
        env=_env(root, **{native.DIR_ENV: str(directory)}), cwd=tmp_path,
        capture_output=True, text=True, check=True).stdout.splitlines()
    assert shown == ["pure Python (natlens/parse/rule.py changed since the compiled core was "
                     "built: rebuild)", "SourceFileLoader"]


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("python", {"version": "3.99.0 (elsewhere)", "suffix": ".so", "implementation": "x"},
     "the compiled core was built for another Python (3.99.0): rebuild"),
    ("mypyc", "0.0.1", "the compiled core was built by mypyc 0.0.1, mypy {mypy} is installed: "
                       "rebuild"),
    ("format", 0, "{manifest} has another layout: rebuild"),
])
def test_a_build_for_another_python_or_mypyc_is_not_used(
        compiled: tuple[Path, Path], tmp_path: Path, field: str, value: object,
        reason: str) -> None:
    pythonpath, directory = compiled
    copy = tmp_path / "build"
    shutil.copytree(directory, copy)
    assert native.check(copy, pythonpath)[0] is None
    manifest = json.loads((copy / native.MANIFEST).read_text(encoding="utf-8"))
    manifest[field] = value
    (copy / native.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    assert native.check(copy, pythonpath) == (
        reason.format(mypy=native.mypy_version(), manifest=copy / native.MANIFEST), {})


def test_a_damaged_build_is_not_used(compiled: tuple[Path, Path], tmp_path: Path) -> None:
    """An extension file that is not what the build wrote (cut short) is refused by ``check``;
    one that the manifest vouches for but does not load (garbage) leaves pure Python in use
    when imported, saying so, and the parser works."""
    pythonpath, directory = compiled
    copy = tmp_path / "build"
    shutil.copytree(directory, copy)
    manifest = json.loads((copy / native.MANIFEST).read_text(encoding="utf-8"))
    name = manifest["extensions"][f"{native.GROUP}__mypyc"]
    library = copy / name
    library.write_bytes(library.read_bytes()[:4096])
    assert native.check(copy, pythonpath) == (
        f"{library} is damaged (not what the build wrote): rebuild", {})
    library.write_bytes(b"\0" * 4096)  # not an ELF file, with the manifest made to agree
    manifest["binaries"][name] = native.digest(library)
    (copy / native.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    assert native.check(copy, pythonpath)[0] is None
    shown = subprocess.run(
        [sys.executable, "-c", "import natlens.parse, natlens.native as n; "
                               "print(n.status().describe()); "
                               "print(len(natlens.parse.parse_save('*nat\\nCOMMIT\\n').tables))"],
        env=_env(pythonpath, **{native.DIR_ENV: str(copy)}), cwd=tmp_path,
        capture_output=True, text=True, check=True).stdout.splitlines()
    assert shown[0].startswith("pure Python (the compiled core does not load (")
    assert shown[0].endswith("): rebuild)")
    assert shown[1] == "1"


def test_the_check_trusts_size_and_mtime_then_hashes(compiled: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    """The manifest records each file's size and mtime: a source with both unchanged is taken
    without hashing; one touched (same bytes, new mtime) is hashed and still taken; one
    rewritten to the same size with other bytes is refused, whatever its mtime."""
    pythonpath, directory = compiled
    root = tmp_path / "copy"
    shutil.copytree(pythonpath / "natlens", root / "natlens",
                    ignore=shutil.ignore_patterns("__pycache__", "_native"))
    manifest = json.loads((directory / native.MANIFEST).read_text(encoding="utf-8"))
    stats = manifest["stats"]
    assert set(manifest["sources"]) <= set(stats)
    assert {f"build:{f}" for f in manifest["extensions"].values()} <= set(stats)
    rule = root / "natlens" / "parse" / "rule.py"
    assert native.stat_key(rule) == stats["natlens/parse/rule.py"]  # copytree kept the mtime
    assert native.check(directory, root)[0] is None
    info = rule.stat()
    os.utime(rule, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    assert native.check(directory, root)[0] is None  # hashed: the same bytes
    text = rule.read_text(encoding="utf-8")
    rule.write_text(text.replace("def ", "deF ", 1), encoding="utf-8")
    assert rule.stat().st_size == info.st_size
    assert native.check(directory, root)[0] == \
        "natlens/parse/rule.py changed since the compiled core was built: rebuild"
