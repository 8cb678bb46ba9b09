"""The optional compiled core of the save parser: build it, pick it, say which core is in use.

natlens is pure Python. ``python -m natlens.native build`` compiles the modules of the
iptables-save parser's hot path (``COMPILED``) with mypyc (it ships with mypy; needs a C compiler
and the Python headers) from the very ``.py`` files of the package: there is no second copy of
the code. The build writes into ``natlens/_native/`` (``$NATLENS_NATIVE_DIR`` elsewhere;
git-ignored): the extension modules, under a folder of their own so they never shadow the
sources, and ``manifest.json``, which records the Python that built them, the SHA-256 of every
natlens source the compiled modules were checked against (the modules themselves and every
natlens module they import, directly or not) and that of each extension file, with each file's
size and modification time (a stat per file at import; a file whose stat differs is hashed).

When ``natlens.parse`` is first imported, ``install`` reads the manifest and, only when every
recorded hash matches the sources now on disk and the Python is the one that built it, puts a
finder in front of ``sys.meta_path`` that loads those modules from the build; anything else
(no build, an edited source, another Python or mypy version, ``NATLENS_PURE_PYTHON=1``) leaves
the pure-Python modules in use, and ``status`` says why. Nothing is ever built at import.

Results are identical either way: tests/test_native_core.py parses every corpus and case dump
with both cores, strict and lenient, and compares the rulesets, warnings and errors.

    python -m natlens.native build [--out DIR]   # compile (30-90 s on 2 cores)
    python -m natlens.native status              # which core a new process would use
    python -m natlens.native clean [--out DIR]   # remove the build
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

__all__ = ["COMPILED", "DIR_ENV", "PURE_ENV", "Status", "build_dir", "check", "digest", "install",
           "mypy_version", "python_id", "stat_key", "status"]

COMPILED = (
    "natlens.parse.save",
    "natlens.parse.fastrule",
    "natlens.parse.rule",
    "natlens.parse.lines",
    "natlens.parse.tokens",
    "natlens.parse.families",
    "natlens.parse.family_defaults",
)
"""The modules compiled, by module name (each a ``.py`` file of the package): the save parser's
loop, its fast path, the general rule reader and its address readers, the line reader, the
tokenizer and the checks run on every rule."""

PURE_ENV = "NATLENS_PURE_PYTHON"
"""Set to anything but ``""`` or ``0``: always use the pure-Python modules."""
DIR_ENV = "NATLENS_NATIVE_DIR"
"""Where the build lives (default: ``_native`` inside the package)."""
MANIFEST = "manifest.json"
FORMAT = 1
"""The manifest's layout version."""
GROUP = "natlens_native"
"""mypyc's name for the shared library of the compiled modules (``natlens_native__mypyc``)."""

_PACKAGE = Path(__file__).resolve().parent
_SOURCE_ROOT = _PACKAGE.parent


@dataclass(frozen=True)
class Status:
    """Which core this process parses with.

    ``compiled``: the compiled modules are in use; ``reason``: why not, or where they come
    from; ``directory``: the build folder looked at; ``modules``: the modules compiled (empty
    when pure)."""

    compiled: bool
    reason: str
    directory: Path
    modules: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for people: ``compiled core (mypyc 2.4.1, 7 modules, built in DIR)`` or
        ``pure Python (why)``."""
        if self.compiled:
            return f"compiled core ({self.reason})"
        return f"pure Python ({self.reason})"


_STATE: dict[str, Status] = {}
"""``"status"``: what ``install`` decided (once per process)."""


def build_dir() -> Path:
    """The build folder: ``$NATLENS_NATIVE_DIR``, else ``_native`` inside the package."""
    env = os.environ.get(DIR_ENV)
    return Path(env).expanduser().resolve() if env else _PACKAGE / "_native"


def _pure_forced() -> bool:
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def digest(path: Path) -> str:
    """The SHA-256 of the file ``path``, in hex."""
    import hashlib  # noqa: PLC0415 (only with a build to check: import natlens stays light)

    return hashlib.sha256(path.read_bytes()).hexdigest()


def mypy_version() -> str | None:
    """The installed mypy's version, read from its ``version.py`` without importing mypy
    (None: mypy is not installed)."""
    spec = importlib.util.find_spec("mypy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        try:
            text = (Path(folder) / "version.py").read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("__version__"):
                return line.partition("=")[2].strip().strip("\"'")
    return None


def python_id() -> dict[str, str]:
    """What identifies this Python for a build: its version string, its extension modules'
    suffix (the ABI) and its implementation's tag."""
    return {"version": sys.version, "suffix": importlib.machinery.EXTENSION_SUFFIXES[0],
            "implementation": sys.implementation.cache_tag or ""}


def check(directory: Path, root: Path = _SOURCE_ROOT) -> tuple[str | None, dict[str, str]]:
    """Whether the build in ``directory`` may be used with the sources under ``root``: (None,
    its modules: module name -> extension file) or (why not, {})."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return (f"no compiled core built in {directory}: python -m natlens.native build", {})
    except (OSError, ValueError) as exc:
        return f"unreadable {directory / MANIFEST}: {exc}", {}
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or not isinstance(manifest.get("python"), dict) \
            or not isinstance(manifest.get("sources"), dict) \
            or not isinstance(manifest.get("extensions"), dict) \
            or not isinstance(manifest.get("binaries"), dict):
        return f"{directory / MANIFEST} has another layout: rebuild", {}
    if manifest["python"] != python_id():
        built_for = str(manifest["python"].get("version", "?")).split(" ")[0]
        return f"the compiled core was built for another Python ({built_for}): rebuild", {}
    mypy = mypy_version()
    if mypy is not None and mypy != manifest.get("mypyc"):
        return (f"the compiled core was built by mypyc {manifest.get('mypyc')}, mypy {mypy} is "
                "installed: rebuild", {})
    sources: dict[str, str] = manifest["sources"]
    stats = manifest.get("stats")
    if not isinstance(stats, dict):
        stats = {}
    for relative, recorded in sorted(sources.items()):
        try:
            same = _same_file(root / relative, recorded, stats.get(relative))
        except OSError:
            return f"{relative} is gone since the compiled core was built: rebuild", {}
        if not same:
            return f"{relative} changed since the compiled core was built: rebuild", {}
    files: dict[str, str] = manifest["extensions"]
    if set(COMPILED) - set(files):
        return "the compiled core lacks modules this natlens compiles: rebuild", {}
    binaries: dict[str, str] = manifest["binaries"]
    for file in files.values():
        try:
            intact = _same_file(directory / file, binaries.get(file), stats.get(f"build:{file}"))
        except OSError:
            return f"{directory / file} is missing: rebuild", {}
        if not intact:
            return f"{directory / file} is damaged (not what the build wrote): rebuild", {}
    return None, {name: str(directory / file) for name, file in files.items()}


def stat_key(path: Path) -> list[int]:
    """``[size in bytes, modification time in ns]`` of ``path`` (raises OSError), as the
    manifest's ``stats`` records it."""
    info = path.stat()
    return [info.st_size, info.st_mtime_ns]


def _same_file(path: Path, recorded: object, stat: object) -> bool:
    """Whether ``path`` holds what the build recorded: its size and modification time (ns) as
    recorded in the manifest's ``stats`` (what the build saw), else its SHA-256 equal to
    ``recorded``. As CPython trusts a ``.pyc`` whose source's size and mtime match (in
    seconds, there), a file rewritten since has another mtime and is hashed; the check costs
    a stat per file instead of reading and hashing it (and importing hashlib: ~5 ms of the
    parse's start-up). Raises OSError when ``path`` cannot be read."""
    if stat is not None and stat_key(path) == stat:
        return True
    return digest(path) == recorded


class _Finder:  # a sys.meta_path finder (importlib.abc.MetaPathFinder: 18 ms to import)
    """Finds exactly the compiled modules of one checked build (and mypyc's shared library)."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, file)
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


def install() -> Status:
    """Use the compiled core when a build matching the sources exists (called once, by
    ``natlens.parse`` before it imports its modules); return ``status()``."""
    decided = _STATE.get("status")
    if decided is None:
        decided = _STATE["status"] = _decide()
    return decided


def _decide() -> Status:
    directory = build_dir()
    if _pure_forced():
        return Status(False, f"{PURE_ENV} is set", directory)
    why, files = check(directory)
    if why is not None:
        return Status(False, why, directory)
    already = [name for name in COMPILED if name in sys.modules]
    if already:  # imported before natlens.parse (should not happen): stay consistent
        return Status(False, f"{already[0]} was imported before natlens.parse", directory)
    finder = _Finder(files)
    sys.meta_path.insert(0, finder)
    try:  # mypyc's shared library, which every compiled module loads first
        importlib.import_module(f"{GROUP}__mypyc")
    except (ImportError, OSError) as exc:  # a damaged build: stay pure, say so
        sys.meta_path.remove(finder)
        sys.modules.pop(f"{GROUP}__mypyc", None)
        return Status(False, f"the compiled core does not load ({exc}): rebuild", directory)
    return Status(True, f"mypyc {_built_by(directory)}, {len(COMPILED)} modules, built in "
                  f"{directory}", directory, COMPILED)


def _built_by(directory: Path) -> str:
    """The mypyc version recorded in the build of ``directory`` (``?`` when unreadable)."""
    try:
        return str(json.loads((directory / MANIFEST).read_text(encoding="utf-8"))["mypyc"])
    except (OSError, ValueError, KeyError, TypeError):
        return "?"


def status() -> Status:
    """Which core this process uses (or would use, before ``natlens.parse`` is imported).

    A compiled core counts only once its modules are loaded from the build (checked on the
    modules themselves)."""
    current = install()
    if current.compiled:
        loaded = [name for name in COMPILED if name in sys.modules
                  and not isinstance(getattr(sys.modules[name], "__loader__", None),
                                     importlib.machinery.ExtensionFileLoader)]
        if loaded:
            return Status(False, f"{loaded[0]} was loaded from its .py file", current.directory)
    return current


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m natlens.native {build,status,clean} [--out DIR]`` (natlens.native_build)."""
    from natlens import native_build  # noqa: PLC0415 (the build's imports, only to build)

    return native_build.main(argv)


if __name__ == "__main__":
    sys.exit(main())
