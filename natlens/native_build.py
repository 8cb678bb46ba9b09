"""Build the compiled core of the parser (natlens.native): ``python -m natlens.native build``.

mypyc (it ships with mypy) compiles ``natlens.native.COMPILED`` from a copy of the package taken
at the start, into a staging folder that replaces the build folder when complete; the manifest
records the Python, the mypyc version and the SHA-256 of every natlens source the compiled modules
depend on (natlens.native.check compares them at import).
"""

from __future__ import annotations

import argparse
import ast
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from natlens import native
from natlens.native import (
    COMPILED,
    DIR_ENV,
    FORMAT,
    GROUP,
    MANIFEST,
    build_dir,
)

__all__ = ["build", "dependencies", "main"]

# -- building ----------------------------------------------------------------------------------

_BUILD = """
import sys
from setuptools import setup
from mypyc.build import mypycify
out, group, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
setup(name="natlens-native", py_modules=[],
      ext_modules=mypycify(["--config-file", "mypy.ini", *paths], opt_level="3",
                           group_name=group),
      script_args=["--quiet", "build_ext", "--build-lib", out, "--build-temp", "build-temp"])
"""

_MYPY_INI = """[mypy]
ignore_missing_imports = True
"""


def _module_file(root: Path, name: str) -> Path:
    parts = name.split(".")
    file = root.joinpath(*parts).with_suffix(".py")
    return file if file.is_file() else root.joinpath(*parts, "__init__.py")


def _natlens_imports(root: Path, name: str) -> set[str]:
    """The natlens modules ``name`` imports (every ``import`` statement, at any depth, those
    for type checking included: mypyc compiles against their types)."""
    file = _module_file(root, name)
    tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    wanted: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            wanted.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[:len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # a submodule, else a name of the module ``base``
                module = f"{base}.{alias.name}"
                wanted.add(module if _module_file(root, module).is_file() else base)
    return {module for module in wanted
            if module.split(".")[0] == "natlens" and _module_file(root, module).is_file()}


def dependencies(root: Path, modules: Sequence[str] = COMPILED) -> list[Path]:
    """Every natlens source file the compiled ``modules`` depend on (themselves included),
    relative to ``root`` (the folder holding the ``natlens`` package)."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_natlens_imports(root, name) - seen)
    return sorted(_module_file(root, name).relative_to(root) for name in seen)


def build(out: Path | None = None, *, quiet: bool = False) -> Path:
    """Compile ``COMPILED`` into ``out`` (default ``build_dir()``), replacing what is there.

    The package is copied first and compiled from the copy, so the hashes recorded are those
    of the text compiled even if the working tree changes meanwhile. Needs mypy (``pip install
    -e '.[dev]'``), a C compiler and the Python headers. Raises RuntimeError naming what failed.
    """
    out = (out or build_dir()).resolve()
    mypy = native.mypy_version()
    if mypy is None:
        raise RuntimeError("building the compiled core needs mypy (pip install mypy)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="natlens-native-") as scratch:
        work = Path(scratch)
        shutil.copytree(Path(native.__file__).resolve().parent, work / "natlens",
                        ignore=shutil.ignore_patterns("__pycache__", "_native", "*.so"))
        (work / "mypy.ini").write_text(_MYPY_INI, encoding="utf-8")
        staged = work / "out"
        paths = [str(_module_file(work, name).relative_to(work)) for name in COMPILED]
        done = subprocess.run([sys.executable, "-c", _BUILD, str(staged), GROUP, *paths],
                              cwd=work, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError("mypyc failed:\n" + (done.stdout + done.stderr).strip()[-4000:])
        extensions: dict[str, str] = {}
        suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
        for file in staged.rglob(f"*{suffix}"):
            relative = file.relative_to(staged)
            name = str(relative)[: -len(suffix)].replace(os.sep, ".")
            extensions[name] = relative.as_posix()
        missing = set(COMPILED) - set(extensions)
        if missing:
            raise RuntimeError(f"mypyc built no extension for {', '.join(sorted(missing))}")
        digests = {path.as_posix(): native.digest(work / path) for path in dependencies(work)}
        manifest: dict[str, object] = {
            "format": FORMAT,
            "python": native.python_id(),
            "mypyc": mypy,
            "modules": list(COMPILED),
            "extensions": extensions,
            "binaries": {file: native.digest(staged / file) for file in extensions.values()},
            "sources": digests,
        }
        # size and mtime of each file as checked at import (natlens.native._same_file): the
        # package's own sources (the copy in ``work`` was hashed; copytree keeps the mtime,
        # but the package's files are the ones checked) and the extensions, whose stat a
        # rename or copy2 into ``out`` keeps
        stats: dict[str, list[int]] = {}
        for posix, recorded in digests.items():
            source = Path(native.__file__).resolve().parent.parent / posix
            if source.is_file() and native.digest(source) == recorded:
                stats[posix] = native.stat_key(source)
        for ext in extensions.values():
            stats[f"build:{ext}"] = native.stat_key(staged / ext)
        manifest["stats"] = stats
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        (staged / ".gitignore").write_text("*\n", encoding="utf-8")
        old = out.with_name(out.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        if out.exists():
            out.rename(old)
        shutil.move(str(staged), str(out))
        if old.exists():
            shutil.rmtree(old)
    if not quiet:
        print(f"compiled core built in {out} ({len(COMPILED)} modules, mypyc {mypy})")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m natlens.native {build,status,clean} [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m natlens.native",
                                     description="The optional compiled core of the parser.")
    parser.add_argument("action", choices=("build", "status", "clean"))
    parser.add_argument("--out", type=Path, default=None,
                        help=f"the build folder (default: ${DIR_ENV} or natlens/_native)")
    args = parser.parse_args(argv)
    if args.out is not None:
        os.environ[DIR_ENV] = str(args.out.resolve())
    if args.action == "build":
        try:
            build(args.out)
        except RuntimeError as exc:
            print(f"python -m natlens.native: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.action == "clean":
        target = build_dir()
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
            print(f"python -m natlens.native: removed {target}")
        else:
            print(f"python -m natlens.native: nothing built ({target} does not exist)")
        return 0
    import natlens.parse  # noqa: F401, PLC0415 (installs the core as the parser's users do)

    print(native.status().describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
