"""Signals during ``natlens verify``: turn them into an exception that unwinds through the
cleanup, and hold them back while cleaning up.

``interruptible()`` makes SIGINT, SIGTERM, SIGHUP and SIGQUIT raise ``Interrupted`` (a
``KeyboardInterrupt`` carrying the signal), so every ``finally`` that removes namespaces runs.
``shielded()`` blocks those signals (pthread_sigmask(3)) for a critical section: a blocked signal
stays pending and is delivered when the section ends (signal(7)); the mask is inherited by the
children started meanwhile, so a terminal's Ctrl-C, sent to the whole process group, does not
kill an ``ip netns del`` half-way either. SIGKILL cannot be handled: ``runs.cleanup`` removes
what a killed run left.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["HANDLED_SIGNALS", "Interrupted", "interruptible", "shielded"]

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class Interrupted(KeyboardInterrupt):
    """A handled signal arrived during verify; ``signum`` says which (exit status 128 +
    signum, as a shell reports a death by that signal)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_status(self) -> int:
        """128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


def _raise(signum: int, frame: object) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """In the body, SIGINT/SIGTERM/SIGHUP/SIGQUIT raise ``Interrupted`` (main thread only;
    elsewhere nothing changes). The previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with shielded():
        previous = {s: signal.signal(s, _raise) for s in HANDLED_SIGNALS}
    try:
        yield
    finally:
        with shielded():
            for s, handler in previous.items():
                signal.signal(s, handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold the handled signals back (pending) for the body: cleanup that must finish."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
