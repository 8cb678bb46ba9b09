"""Warnings attributed to the code that called natlens, whether or not the parser is compiled.

``warnings.warn(..., stacklevel=N)`` counts Python frames, and a module compiled by mypyc
(natlens.native) runs without frames of its own: a fixed ``N`` would name a different caller
once the parser is compiled. This module is never compiled; ``warn_caller`` walks the frames
from its own and names the first outside the ``natlens`` package, the same frame either way.
"""

from __future__ import annotations

import sys
import warnings
from types import FrameType

__all__ = ["warn_caller"]


def warn_caller(warning: Warning) -> None:
    """``warnings.warn(warning)`` attributed to the nearest frame outside ``natlens`` (the
    outermost frame when every frame is natlens's, as under ``python -m natlens``)."""
    frame = sys._getframe(0)  # this function's own frame: warnings.warn's stacklevel 1
    level = 1
    while frame.f_back is not None and _ours(frame):
        frame = frame.f_back
        level += 1
    warnings.warn(warning, stacklevel=level)


def _ours(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__")
    return isinstance(name, str) and (name == "natlens" or name.startswith("natlens."))
