"""A progress line on standard error for long commands (issue 13).

``Progress(stages, enabled=...)`` draws, once a command has run for ``delay`` seconds (1 s),
one line that a background thread redraws every 0.1 s::

    natlens: [#######.............] 2/5 preparing 3.4 s

(the bar counts stages done; the name is the current stage). It draws only when enabled:
``Progress.for_terminal`` enables it when standard error is a terminal and ``--quiet`` was not
given, so pipes, files and CI logs never see it. ``close()`` erases the line (``\\r`` + ``ESC
[K``) and stops the bar for good; ``ClearFirst`` wraps standard output and error so that the
first thing a command writes closes the bar first (on a terminal, the answer never starts
behind a half-drawn bar).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import TextIO

from natlens.streams import StreamProxy

__all__ = ["ClearFirst", "Progress"]

_WIDTH = 20


class Progress:
    """Stages of one command, drawn as a bar on ``stream`` when enabled (see module)."""

    def __init__(self, stages: Sequence[str] = (), *, enabled: bool = False,
                 stream: TextIO | None = None, delay: float = 1.0,
                 interval: float = 0.1) -> None:
        self.stages = list(stages)
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.delay, self.interval = delay, interval
        self.start = time.monotonic()
        self.stage = ""
        self.done = 0
        self.drawn = False
        self.closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_terminal(cls, stages: Sequence[str] = (), *, quiet: bool = False) -> Progress:
        """Enabled when standard error is a terminal and not ``quiet``."""
        err = sys.stderr
        try:
            tty = err is not None and err.isatty()
        except (OSError, ValueError):
            tty = False
        return cls(stages, enabled=tty and not quiet)

    def __call__(self, stage: str) -> None:
        """Enter ``stage`` (a name in ``stages`` counts the ones before it as done)."""
        with self._lock:
            if stage in self.stages:
                self.done = self.stages.index(stage)
            self.stage = stage
        if self.enabled and self._thread is None and not self.closed:
            self._thread = threading.Thread(target=self._run, name="natlens-progress",
                                            daemon=True)
            self._thread.start()

    def line(self) -> str:
        """The text drawn now (without the carriage return)."""
        total = max(len(self.stages), 1)
        filled = _WIDTH * min(self.done, total) // total
        count = f" {self.done + 1}/{total}" if self.stages else ""
        return (f"natlens: [{'#' * filled}{'.' * (_WIDTH - filled)}]{count} {self.stage} "
                f"{time.monotonic() - self.start:.1f} s")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if time.monotonic() - self.start < self.delay:
                continue
            with self._lock:
                try:
                    self.stream.write("\r\x1b[K" + self.line())
                    self.stream.flush()
                    self.drawn = True
                except (OSError, ValueError):
                    return

    def close(self) -> None:
        """Stop drawing and erase the line; later stages draw nothing."""
        self.closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.drawn:
            try:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass
            self.drawn = False


class ClearFirst(StreamProxy):
    """``stream`` (standard output or error) that closes ``progress`` before its first write,
    so the bar's line is erased before the command's own text (the bar draws on the original
    standard error, not through this wrapper)."""

    def __init__(self, stream: TextIO, progress: Progress) -> None:
        super().__init__(stream)
        self.progress = progress

    def write(self, text: str) -> int:
        if text and not self.progress.closed:
            self.progress.close()
        return self.stream.write(text)

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)
