"""The pictures in docs/images are rendered from fixtures by scripts/render-doc-images.sh: the
script runs, writes an SVG and a PNG per host, each headed by its host and verdict, and the
checked-in files are those the docs show (issue 14)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

NAMES = ("default-bridge-all", "kube-proxy-nat", "firewalld-docker")


@pytest.mark.skipif(shutil.which("dot") is None and not os.environ.get("CI"),
                    reason="Graphviz dot not installed")
def test_script_renders_the_three_hosts(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path),
           "NATLENS": str(Path(sys.executable).parent / "natlens")}
    done = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "render-doc-images.sh")],
                          capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, done.stderr
    for name in NAMES:
        svg = (tmp_path / f"{name}.svg").read_text()
        assert "<svg" in svg
        assert "legend" in svg
        assert re.search(r"=&gt; (ACCEPT|REJECT|DROP) ", svg), name
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")


def test_docs_show_the_checked_in_pictures() -> None:
    docs = (REPO_ROOT / "docs" / "index.md").read_text()
    for name in NAMES:
        assert f"(images/{name}.svg)" in docs
        assert (REPO_ROOT / "docs" / "images" / f"{name}.svg").is_file()
        assert (REPO_ROOT / "docs" / "images" / f"{name}.png").is_file()
