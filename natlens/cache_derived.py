"""What commands derived from a snapshot (``Snapshot.derived``), as a cache entry stores it:
each result pickled apart and read on first use (issue 13, "parse once, answer many").

A result (the audit's findings, the exposure map, a collapsed chain graph, ``trace``'s hints:
``natlens.derived_results``, ``natlens.trace_hints``) is one blob of the entry
(``natlens.cache_pickle``: an out-of-band buffer after the main pickle, with its CRC-32), so a
warm ``trace`` does not unpickle the map a ``report`` stored, and a warm ``report`` reads its
findings without reading a rule.

Before a result is stored it is read back by the cache's restricted ``Unpickler`` (natlens's
own classes, ``ipaddress``, a few builtins); a pickle over ``COMPRESS_BYTES`` is stored
compressed (zlib). A result that would not load, or whose stored bytes are over
``MAX_RESULT_BYTES``, is stored as *skipped* — its name is known (a warm command that
computes it again does not rewrite the entry for it), its value is not (computed again when
asked). A stored result whose checksum no longer matches, or that cannot be unpickled, when it
is read is computed again and the entry rewritten with it (``needs_rewrite``).

``StoredResults`` is the ``Snapshot._derived`` of a snapshot read from an entry: a ``dict``
whose values are unpickled by ``[name]`` (which raises ``KeyError`` for a skipped or unreadable
one: ``Snapshot.derived`` computes it then); it copies and pickles (outside the cache) as the
plain ``dict`` of its readable results.
"""

from __future__ import annotations

import io
import pickle
import zlib
from typing import Any

from natlens.parse.collector import collector_off

__all__ = ["COMPRESS_BYTES", "MAX_RESULT_BYTES", "Packed", "StoredResults", "needs_rewrite", "pack",
           "stored_results"]

MAX_RESULT_BYTES = 8 << 20
"""A result whose stored bytes are more is not stored (skipped): an entry stays about the size
of the rules it holds (the 100k-rule dump's entry is ~37 MB; its results are a few KB)."""

COMPRESS_BYTES = 64 << 10
"""A result whose pickle is larger is stored compressed (zlib level 1: an exposure map of
10,000 cells, 2.9 MB, becomes 0.55 MB; decompressing it costs a tenth of unpickling it)."""

_PLAIN, _ZLIB = b"p", b"z"
"""The first byte of a stored result: its pickle follows as it is, or compressed."""


def _stored(data: memoryview) -> bytes:
    """What is stored of the pickle ``data``."""
    if len(data) > COMPRESS_BYTES:
        return _ZLIB + zlib.compress(data, 1)
    return _PLAIN + bytes(data)


def _pickle_in(stored: memoryview | bytes) -> bytes | memoryview:
    """The pickle of a stored result. Raises ``ValueError`` (unknown kind) or ``zlib.error``."""
    kind = bytes(stored[:1])
    if kind == _ZLIB:
        return zlib.decompress(stored[1:])
    if kind == _PLAIN:
        return stored[1:]
    raise ValueError("not a stored result")


class _Blob:
    """A stored result not read yet: its stored bytes (``_stored``; a view into the mapped
    entry) and their CRC-32."""

    __slots__ = ("crc", "data")

    def __init__(self, data: memoryview, crc: int) -> None:
        self.data = data
        self.crc = crc


_SKIPPED = object()
"""The value of a result whose name is stored without its value (module docstring)."""


class StoredResults(dict[str, Any]):
    """``Snapshot._derived`` of a snapshot read from a cache entry (module docstring)."""

    __slots__ = ("failed", "freeze")

    def __init__(self, items: dict[str, Any], *, freeze: bool = False) -> None:
        super().__init__(items)
        self.failed: set[str] = set()  # results found damaged: the entry is stored again
        self.freeze = freeze  # gc.freeze() after reading one (the snapshot lives to the end)

    def __getitem__(self, name: str) -> Any:
        value = super().__getitem__(name)
        if value is _SKIPPED:
            raise KeyError(name)
        if isinstance(value, _Blob):
            value = self._load(name, value)
        return value

    def _load(self, name: str, blob: _Blob) -> Any:
        from natlens.cache_pickle import Unpickler  # noqa: PLC0415  (imports this module)

        value: Any = _SKIPPED
        if zlib.crc32(blob.data) == blob.crc:
            with collector_off(freeze=self.freeze):
                try:
                    value = Unpickler(io.BytesIO(_pickle_in(blob.data))).load()
                except Exception:
                    value = _SKIPPED
        if value is _SKIPPED:
            super().__delitem__(name)
            self.failed.add(name)
            raise KeyError(name)
        super().__setitem__(name, value)
        return value

    def is_read(self, name: str) -> bool:
        """Whether result ``name`` is in memory (unpickled, or computed since)."""
        value = super().get(name, _SKIPPED)
        return value is not _SKIPPED and not isinstance(value, _Blob)

    def readable(self) -> dict[str, Any]:
        """Every result that can be read, unpickled (the others left out)."""
        out: dict[str, Any] = {}
        for name in list(self):
            try:
                out[name] = self[name]
            except KeyError:
                continue
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (self.readable(),))


def needs_rewrite(derived: dict[str, Any]) -> bool:
    """Whether a snapshot's results hold one its entry stored damaged (computed again since)."""
    return isinstance(derived, StoredResults) and bool(derived.failed)


class Packed:
    """A snapshot's results as ``write_entry`` stores them: per name, its pickle and CRC-32, or
    None (skipped)."""

    __slots__ = ("items",)

    def __init__(self, items: tuple[tuple[str, bytes | memoryview | None, int], ...]) -> None:
        self.items = items


def pack(derived: dict[str, Any], dispatch: dict[type, Any]) -> Packed:
    """``derived`` (a snapshot's ``_derived``) made ready to store: a result not read since the
    entry was loaded keeps its blob as it is; any other is pickled (``dispatch``: the
    reducers of ``natlens.cache_pickle``) and read back by the cache's ``Unpickler``, and
    skipped when that fails or what is stored is over ``MAX_RESULT_BYTES`` (a pickle over
    ``COMPRESS_BYTES`` is stored compressed)."""
    from natlens.cache_pickle import Unpickler  # noqa: PLC0415  (imports this module)

    items: list[tuple[str, bytes | memoryview | None, int]] = []
    for name in sorted(derived):
        value = dict.__getitem__(derived, name)
        if isinstance(value, _Blob):
            items.append((name, value.data, value.crc))
            continue
        data: bytes | None = None
        if value is not _SKIPPED:
            try:
                buffer = io.BytesIO()
                pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
                pickler.dispatch_table = dispatch
                pickler.dump(value)
                Unpickler(io.BytesIO(buffer.getbuffer())).load()  # as a warm command will
                data = _stored(buffer.getbuffer())
                if len(data) > MAX_RESULT_BYTES:
                    data = None
            except Exception:
                data = None
        items.append((name, data, 0 if data is None else zlib.crc32(data)))
    return Packed(tuple(items))


def stored_results(items: tuple[tuple[str, Any, int], ...], *,
                   freeze: bool = False) -> StoredResults:
    """The ``StoredResults`` of a ``Packed`` as read back (``natlens.cache_pickle``: its blobs
    are views into the mapped entry). Raises ``pickle.UnpicklingError`` for any other
    shape."""
    if not isinstance(items, tuple) or not all(
            isinstance(item, tuple) and len(item) == 3 and isinstance(item[0], str)
            and (item[1] is None or isinstance(item[1], memoryview)) and isinstance(item[2], int)
            for item in items):
        raise pickle.UnpicklingError("not stored results")
    return StoredResults({name: _SKIPPED if data is None else _Blob(data, crc)
                          for name, data, crc in items}, freeze=freeze)
