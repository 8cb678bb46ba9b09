"""The CLI's one error path: whatever goes wrong becomes one bounded line and an exit status.

DESIGN.md's contract: exit 0 clean, 1 findings (or disagreements), 2 bad input or usage with
one line ``natlens: error: FILE[:LINE | : JSON-PATH]: reason`` on standard error, never a
traceback. This module keeps that promise for everything a command can meet:

==========================================  ================================================
what                                        becomes
==========================================  ================================================
``NatlensError`` (bad input, usage, ...)    its own one-line message, exit 2
``OSError`` (a file, a device)              ``FILE: strerror``, exit 2
standard output closed, a full disk         ``cannot write output: ...``, exit 2
(``OutputError``)
a broken pipe: the reader of standard       nothing printed; the command's own status when
output left (``natlens ... | head -1``)     it had decided it before (``Context.status``),
                                            else 141 (``EXIT_BROKEN_PIPE``)
``UnicodeError``, ``RecursionError``,       one line naming the input, exit 2
``MemoryError``
``KeyboardInterrupt`` (Ctrl-C, also while   ``natlens: interrupted``, exit 130 (128 + SIGINT,
natlens starts)                             as shells report it)
anything else (a bug)                       ``natlens: internal error: ...``, exit 2 (the
                                            traceback with ``NATLENS_DEBUG=1``)
==========================================  ================================================

A reader that leaves is no error (the Python documentation's note on SIGPIPE: point standard
output at ``/dev/null`` and exit; no message): a command decides its exit status before it writes
its answer (``Context.status``), and that status stands, so ``set -o pipefail`` scripts see the
trace's verdict or the report's findings. A command that had not decided it yet (``trace
--packets`` writes each result as it goes: the packets after the reader left are never traced)
exits 141, 128 + SIGPIPE, as a shell reports a tool that SIGPIPE killed (``yes | head -1``).

Every line is cut to ``MAX_LINE`` characters, and characters that are not printable (newlines,
escape sequences, bidi controls, lone surrogates) are shown escaped, so input quoted in a message
can neither flood nor steer the terminal. Output that the terminal's encoding cannot show is
written escaped (``backslashreplace``) instead of failing.

``entry`` is the ``natlens`` console script: it imports the CLI inside the guarded region, so
Ctrl-C during start-up is handled too (``import natlens`` itself loads nothing heavy).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

from natlens.streams import StreamProxy

# Only modules the interpreter has loaded at start-up are imported here (not even typing):
# ``entry`` must be running before anything slow is imported, so that Ctrl-C during start-up
# reaches its handler.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

    from natlens.errors import OutputError

__all__ = [
    "EXIT_BROKEN_PIPE", "EXIT_ERROR", "EXIT_INTERRUPTED", "MAX_LINE", "Context", "describe",
    "entry", "one_line", "run",
]

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE (signal(7)): the reader left before the command had decided its status."""
MAX_LINE = 500
"""Longest message printed, in characters (after escaping)."""
_PIECE = 1 << 16


class Context:
    """What a command tells the error path as it goes: the input it reads (for messages about
    errors that name no file, such as ``MemoryError``), and its exit status once decided.

    ``status`` is set by a command before it writes its answer (it returns the same value
    then): when the reader of standard output leaves meanwhile, the command ends quietly with
    that status (None: not decided yet, ``EXIT_BROKEN_PIPE``)."""

    __slots__ = ("input_name", "status")

    def __init__(self) -> None:
        self.input_name: str | None = None
        self.status: int | None = None


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """``text`` as one line of at most ``limit`` characters: non-printable characters escaped
    (``\\n``, ``\\x1b``, ``\\u202e``), cut with ``…``.

    >>> one_line("a\\nb\\x1b[31m")
    'a\\\\nb\\\\x1b[31m'
    """
    escaped = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode()
        for ch in text[:limit + 1])
    return escaped if len(escaped) <= limit else escaped[:limit - 1] + "…"


def _say(text: str) -> None:
    """Write one line to standard error (silently nothing when it is closed or broken)."""
    err = sys.stderr
    if err is None:
        return
    try:
        err.write(one_line(text) + "\n")
        err.flush()
    except (OSError, ValueError):
        pass


class _Output(StreamProxy):
    """Standard output whose write failures become ``OutputError`` (one line, exit 2);
    ``reader_gone`` once a write met a broken pipe (``run`` then ends quietly)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._gone = False

    @property
    def reader_gone(self) -> bool:
        """Whether a write met a broken pipe, here or in the ``_Output`` this one wraps (the
        console script's ``run`` around ``main``'s)."""
        return self._gone or bool(getattr(self.stream, "reader_gone", False))

    def write(self, text: str) -> int:
        try:
            if len(text) <= _PIECE:
                return self.stream.write(text)
            # A large write that a closing pipe cuts short is not reported by the buffered
            # stream; written piece by piece (and flushed), the broken pipe is seen.
            for start in range(0, len(text), _PIECE):
                self.stream.write(text[start:start + _PIECE])
                self.stream.flush()
            return len(text)
        except (OSError, ValueError) as exc:
            self._gone = self._gone or isinstance(exc, BrokenPipeError)
            raise _output_error(exc) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError) as exc:
            self._gone = self._gone or isinstance(exc, BrokenPipeError)
            raise _output_error(exc) from None


def _output_error(exc: Exception) -> OutputError:
    from natlens.errors import OutputError  # noqa: PLC0415  (see the module-level imports)

    if isinstance(exc, BrokenPipeError):
        return OutputError("cannot write output: broken pipe (the reader stopped reading)")
    if isinstance(exc, OSError):
        return OutputError(f"cannot write output: {exc.strerror or exc}")
    return OutputError(f"cannot write output: {exc}")  # ValueError: the stream was closed


def _escaping(stream: TextIO) -> None:
    """Let ``stream`` escape what its encoding cannot show instead of raising."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(ValueError, OSError):  # detached: nothing to do
            reconfigure(errors="backslashreplace")


def _silence_stdout() -> None:
    """After an output error, point file descriptor 1 at /dev/null so that the interpreter's
    final flush of what is still buffered cannot print a second error."""
    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else -1
    except (OSError, ValueError, io.UnsupportedOperation):
        return
    if fd < 0:
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except OSError:  # pragma: no cover - nothing more can be done
        pass


def describe(exc: BaseException, context: Context) -> str:
    """The message of the one line printed for ``exc`` (without ``natlens: error: ``)."""
    from natlens.errors import NatlensError  # noqa: PLC0415  (see the module-level imports)

    where = context.input_name or "input"
    if isinstance(exc, NatlensError):
        return str(exc)
    if isinstance(exc, OSError):
        name = exc.filename if exc.filename is not None else where
        return f"{name}: {exc.strerror or exc}"
    if isinstance(exc, UnicodeError):
        return f"{where}: text encoding error ({exc})"
    if isinstance(exc, RecursionError):
        return f"{where}: nested too deeply to analyse (recursion limit)"
    if isinstance(exc, MemoryError):
        return (f"{where}: out of memory (input too large? NATLENS_MAX_INPUT lowers the size "
                "natlens reads)")
    return (f"internal error: {type(exc).__name__}: {exc} (a bug in natlens: please report it "
            "with the input; NATLENS_DEBUG=1 shows the traceback)")


def run(body: Callable[[Context], int]) -> int:
    """Run ``body`` (a command) behind the one error path; returns the exit status.

    ``SystemExit`` (argparse's ``--help`` and usage errors) passes through after the output is
    flushed; everything else ends here as described in the module docstring.
    """
    context = Context()
    stdout = sys.stdout
    if stdout is None:
        _say("natlens: error: cannot write output: standard output is closed")
        return EXIT_ERROR
    _escaping(stdout)
    if sys.stderr is not None:
        _escaping(sys.stderr)
    guard = _Output(stdout)
    sys.stdout = guard  # a TextIOBase whose failures raise OutputError
    try:
        try:
            status = body(context)
        except SystemExit as stop:  # --help, --version: complete before it is flushed
            code = stop.code
            context.status = 0 if code is None else code if isinstance(code, int) else EXIT_ERROR
            guard.flush()
            raise
        context.status = status  # the answer is complete: a reader leaving now changes nothing
        guard.flush()
        return status
    except KeyboardInterrupt:
        _say("natlens: interrupted")
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except BaseException as exc:  # the one error path: every other failure is one line
        from natlens.errors import NatlensError, OutputError  # noqa: PLC0415

        if isinstance(exc, OutputError) and guard.reader_gone:
            _silence_stdout()  # the reader left: nothing to say (module docstring)
            return context.status if context.status is not None else EXIT_BROKEN_PIPE
        if isinstance(exc, OutputError):
            _silence_stdout()
        elif not isinstance(exc, (NatlensError, OSError, UnicodeError, RecursionError,
                                  MemoryError)) and os.environ.get("NATLENS_DEBUG"):
            import traceback  # noqa: PLC0415

            traceback.print_exc()
        _say(f"natlens: error: {describe(exc, context)}")
        return EXIT_ERROR
    finally:
        sys.stdout = stdout


def _interrupted_while_starting(signum: int, frame: object) -> None:
    """SIGINT while the CLI is imported: nothing to clean up yet, so leave at once (a
    ``KeyboardInterrupt`` raised inside the import machinery can be swallowed by it as an
    "Exception ignored" and the command would go on)."""
    _say("natlens: interrupted")
    os._exit(EXIT_INTERRUPTED)


def entry() -> None:
    """The ``natlens`` console script: ``sys.exit(natlens.cli.main())`` with the CLI imported
    inside the error path, so that Ctrl-C while it loads ends as ``natlens: interrupted``."""
    import signal  # noqa: PLC0415  (loaded with re by the script already: costs nothing)

    previous = signal.signal(signal.SIGINT, _interrupted_while_starting)

    def start(context: Context) -> int:
        from natlens.cli import main  # noqa: PLC0415  (imported behind the error path)

        signal.signal(signal.SIGINT, previous)  # from here Ctrl-C unwinds (verify cleans up)
        return main(exiting=True)  # this process ends at once: _fast_exit

    try:
        status = run(start)
    except KeyboardInterrupt:  # between two statements of run itself
        _say("natlens: interrupted")
        status = EXIT_INTERRUPTED
    _fast_exit(status)


def _fast_exit(status: int) -> None:
    """Flush the output and leave without tearing the model down (issue 13: freeing a
    100k-rule model at exit took 2-4 s). ``NATLENS_SLOW_EXIT=1`` exits normally (atexit
    handlers, e.g. coverage in subprocesses)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except BrokenPipeError:  # the answer was complete (run flushed it): its status stands
            if stream is sys.stdout:
                _silence_stdout()
        except (OSError, ValueError):
            if stream is sys.stdout and status == 0:
                _silence_stdout()
                _say("natlens: error: cannot write output")
                status = EXIT_ERROR
    if os.environ.get("NATLENS_SLOW_EXIT"):
        sys.exit(status)
    os._exit(status)
