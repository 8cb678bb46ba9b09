"""Install as users do (issue 14): build the sdist and wheel without a warning, install the wheel
into a fresh venv outside the repository, and run the README's quick tour there with --example.

Offline and fast: the venv sees the test interpreter's site-packages through a ``.pth`` line
(the dependencies are already installed there) and the wheel is installed with
``--no-deps``; the build runs without isolation (setuptools>=77 and build are in the dev
extra). About 35 s.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT

QUICK_TOUR = re.compile(r"## Quick tour\n.*?```sh\n(.*?)```", re.S)


def _tour() -> list[list[str]]:
    block = QUICK_TOUR.search((REPO_ROOT / "README.md").read_text())
    assert block is not None, "README.md has no Quick tour sh block"
    commands = [shlex.split(line, comments=True) for line in block.group(1).splitlines()]
    return [c for c in commands if c]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("dist")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                           str(out), str(REPO_ROOT)], capture_output=True, text=True,
                          check=False, env=env, cwd=out)
    assert done.returncode == 0, done.stderr[-2000:]
    return out, done.stdout + done.stderr


def test_build_has_no_warnings(built: tuple[Path, str]) -> None:
    _, log = built
    assert [line for line in log.splitlines() if "warn" in line.lower()] == []


def test_wheel_and_sdist_ship_license_and_example(built: tuple[Path, str]) -> None:
    out, _ = built
    wheel = zipfile.ZipFile(next(out.glob("*.whl")))
    names = set(wheel.namelist())
    assert "natlens-0.1.0.dist-info/licenses/LICENSE" in names
    assert "natlens/examples/default-bridge-8080/iptables-save.txt" in names
    assert "natlens/py.typed" in names
    metadata = wheel.read("natlens-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    with tarfile.open(next(out.glob("*.tar.gz"))) as sdist:
        members = set(sdist.getnames())
    assert "natlens-0.1.0/LICENSE" in members
    assert "natlens-0.1.0/natlens/examples/default-bridge-8080/docker-containers.json" in members
    license_text = (REPO_ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text
    assert "Version 2.0, January 2004" in license_text


def test_quick_tour_runs_from_the_wheel(built: tuple[Path, str],
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    out, _ = built
    home = tmp_path_factory.mktemp("user")  # outside the repository
    venv = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # the dependencies as the test interpreter has them (offline): its site-packages go on the
    # new venv's path after the venv's own (a plain .pth line: the checkout's editable-install
    # hook there is not run, so natlens comes from the wheel)
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    deps = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (Path(purelib) / "test-deps.pth").write_text("".join(f"{d}\n" for d in deps))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
           "--no-index", str(next(out.glob("*.whl")))]
    subprocess.run(pip, check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COLUMNS")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import natlens; print(natlens.__file__)"], capture_output=True,
                           text=True, check=True, env=env, cwd=home)
    assert where.stdout.startswith(str(venv)), "natlens imported from the checkout"
    tour = _tour()
    assert len(tour) >= 5
    for argv in tour:
        assert argv[0] == "natlens", argv
        assert "--example" in argv, argv
        done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env,
                              cwd=home)
        assert done.returncode == 0, (argv, done.stderr)
        assert done.stdout.strip(), argv
        assert "error" not in done.stderr, (argv, done.stderr)
    report = subprocess.run(["natlens", "report", "--example"], capture_output=True, text=True,
                            check=True, env=env, cwd=home)
    lines = report.stdout.splitlines()
    assert lines[0] == "natlens report for example default-bridge-8080"
    assert "8080/tcp -> natlens-web:80         C    CP      P" in lines
    assert "no findings" in lines
