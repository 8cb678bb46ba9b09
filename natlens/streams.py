"""A text stream standing for another one (standard output or error), for the wrappers the
command line puts around them: ``cli_errors`` (write failures become one-line errors) and
``progress.ClearFirst`` (the progress bar erased before the first output)."""

from __future__ import annotations

import io

# Only modules the interpreter has loaded at start-up (see natlens.cli_errors, which uses this
# before anything slow is imported).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

__all__ = ["StreamProxy"]


class StreamProxy(io.TextIOBase):
    """Writes, flushes and answers ``isatty``/``fileno``/``encoding`` as ``stream`` does;
    subclasses change ``write`` or ``flush``."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.stream.encoding
