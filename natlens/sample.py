"""The sample snapshot shipped inside the package (``natlens report --example``).

``natlens/examples/default-bridge-8080/`` is a copy of the repository's
``fixtures/default-bridge-8080``: one busybox container published with ``docker run -p 8080:80``,
captured from a real Docker 20.10 daemon (iptables-nft backend). It is package data, so the
documented examples run from a plain ``pip install`` without a checkout.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["EXAMPLE_NAME", "example_path"]

EXAMPLE_NAME = "default-bridge-8080"
"""Folder name of the sample snapshot (under ``natlens/examples/``)."""


def example_path() -> Path:
    """The folder of the shipped sample snapshot.

    Returns an existing directory path inside the installed package.
    Raises ``natlens.errors.SnapshotError`` when the package was installed without its data
    (a broken install: reinstall natlens from a wheel or checkout).
    """
    folder = Path(__file__).resolve().parent / "examples" / EXAMPLE_NAME
    if not (folder / "iptables-save.txt").is_file():
        from natlens.errors import SnapshotError  # noqa: PLC0415  (only on a broken install)

        raise SnapshotError(f"{folder}: the sample snapshot is not installed (natlens was "
                            "installed without its package data: reinstall from a wheel)")
    return folder
