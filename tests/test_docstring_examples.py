"""Every docstring example of every natlens module runs and prints what it shows.

(The per-package docstring tests name their modules; this one walks the whole package, so a
module whose examples nobody listed cannot drift from the code.)
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import natlens

MODULES = sorted(m.name for m in pkgutil.walk_packages(natlens.__path__, "natlens."))


def test_the_walk_finds_the_package() -> None:
    assert "natlens.audit.host_port_rules" in MODULES
    assert len(MODULES) > 100


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False, report=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
