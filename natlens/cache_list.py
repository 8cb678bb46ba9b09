"""``natlens cache list``: what the snapshot cache (``natlens.snapshot_cache``) holds, read from
the first lines of each entry file, never from its pickle.

An entry starts with three lines: the format's magic line, the cache key (hex SHA-256), and an
*info line* written here (``entry_info``): one JSON object naming what the entry was made from,
so that a listing needs neither the key's inputs nor an unpickler::

    {"path": "/abs/snapshot", "files": ["iptables-save.txt", ...], "natlens": "0.1.0",
     "python": "3.11.2", "stamp": "9f2c...", "written": 1764520000.5}

``path`` is the snapshot folder or rule file made absolute when the entry was written,
``files`` the input files of a folder (``[]`` for a single file), ``stamp`` the first 16 hex
digits of the code stamp the key includes (``snapshot_cache._code_stamp``: natlens's version and
modules, Python's version), ``written`` seconds since the epoch. The line is at most
``INFO_LIMIT`` bytes; a path longer than that is cut (``"path_cut": true``).

An entry is listed with its size, when it was written and last used (its modification time:
a command that reads it touches it), the natlens that wrote it, its state and whether a
background write of its key is under way (its ``KEY.lock`` is held: ``flock`` taken and
released at once, shared, without waiting). States:

- ``ready``: this natlens reads it;
- ``stale``: written by another natlens or Python (another code stamp): never read again,
  removed by ``natlens cache clear`` or as one of the oldest beyond ``MAX_ENTRIES``;
- ``ignored``: not a regular file of this user with mode 600 or stricter: never read
  (docs/security.md, "The snapshot cache");
- ``unknown``: no info line (an older format, or not a natlens entry): never read;
- ``writing``: no entry yet, its first write is under way (its key only).

Raises ``UsageError`` when the cache folder exists but is not used (``snapshot_cache.clear``
refuses it the same way).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locks, no write is ever "under way"
    fcntl = None  # type: ignore[assignment]

__all__ = ["INFO_LIMIT", "CacheEntry", "entry_info", "list_entries", "render", "to_dict"]

INFO_LIMIT = 4096
"""Longest info line in bytes, its newline included."""

_HEAD = 256 + INFO_LIMIT
"""Bytes of an entry file read to list it (magic line, key line, info line)."""


@dataclass(frozen=True)
class CacheEntry:
    """One entry of the cache folder, as ``natlens cache list`` shows it.

    ``size`` in bytes (0 while its first write is under way); ``written`` and ``used`` in
    seconds since the epoch (None: unknown); ``path``, ``files``, ``natlens``, ``python`` from
    the info line (None / ``()`` when there is none)."""

    key: str
    size: int
    written: float | None
    used: float | None
    path: str | None
    files: tuple[str, ...]
    natlens: str | None
    python: str | None
    state: str
    writing: bool


def entry_info(path: str | os.PathLike[str], stamp: bytes) -> bytes:
    """The info line of an entry for the snapshot at ``path`` written by code of ``stamp``
    (``snapshot_cache._code_stamp()``), newline included (module docstring)."""
    import natlens  # noqa: PLC0415  (loaded already: this runs when an entry is written)
    from natlens.snapshot import SNAPSHOT_FILES  # noqa: PLC0415

    where = os.path.abspath(path)
    try:
        files = sorted(set(SNAPSHOT_FILES.values()) & set(os.listdir(where))) \
            if os.path.isdir(where) else []
    except OSError:
        files = []
    info: dict[str, Any] = {"path": where, "files": files, "natlens": natlens.__version__,
                            "python": sys.version.split()[0], "stamp": stamp.hex()[:16],
                            "written": round(time.time(), 3)}
    line = json.dumps(info, ensure_ascii=True, separators=(",", ":")).encode()
    if len(line) >= INFO_LIMIT:
        info["path_cut"] = True
        info["files"] = []
        over = len(line) - INFO_LIMIT + 64
        info["path"] = "…" + where[over:]
        line = json.dumps(info, ensure_ascii=True, separators=(",", ":")).encode()
    return line + b"\n"


def _info(head: bytes, magic: bytes, key: str) -> dict[str, Any] | None:
    """The info line of an entry whose first bytes are ``head`` (None: not this format)."""
    start = magic + key.encode() + b"\n"
    if not head.startswith(start):
        return None
    end = head.find(b"\n", len(start), len(start) + INFO_LIMIT)
    if end < 0:
        return None
    try:
        info = json.loads(head[len(start):end])
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return info if isinstance(info, dict) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _writing(lock: Path) -> bool:
    """Whether a writer holds ``lock`` (an exclusive ``flock``: ``snapshot_cache._lock``)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # releases the shared lock, if taken
    return False


def _entry(path: Path, key: str, st: os.stat_result, *, magic: bytes, stamp: str,
           writing: bool) -> CacheEntry:
    """One entry file (``lstat`` ``st``), its first bytes read without following a link."""
    ours = (stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()
            and not st.st_mode & 0o077)
    info = None
    if stat.S_ISREG(st.st_mode):
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as fh:
                info = _info(fh.read(_HEAD), magic, key)
    written = info.get("written") if info is not None else None
    files = info.get("files") if info is not None else None
    state = ("ignored" if not ours else "unknown" if info is None
             else "ready" if info.get("stamp") == stamp else "stale")
    return CacheEntry(
        key=key, size=st.st_size, used=st.st_mtime,
        written=float(written) if isinstance(written, (int, float)) else None,
        path=_text(info.get("path")) if info is not None else None,
        files=tuple(f for f in files if isinstance(f, str)) if isinstance(files, list) else (),
        natlens=_text(info.get("natlens")) if info is not None else None,
        python=_text(info.get("python")) if info is not None else None,
        state=state, writing=writing)


def list_entries(directory: Path | None = None) -> list[CacheEntry]:
    """The entries of the cache folder (``snapshot_cache.cache_dir()`` by default), most
    recently used first, with the keys whose first write is under way; ``[]`` without a
    folder. Raises ``UsageError`` for a folder the cache does not use."""
    from natlens import snapshot_cache  # noqa: PLC0415  (it imports this module)
    from natlens.errors import UsageError  # noqa: PLC0415

    directory = snapshot_cache.cache_dir() if directory is None else directory
    try:
        why = snapshot_cache._refusal(os.lstat(directory))
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"{directory}: {exc.strerror or exc}") from None
    if why is not None:
        raise UsageError(f"{directory}: the cache folder is not used because it is {why}")
    magic, suffix, lock = snapshot_cache._MAGIC, snapshot_cache._SUFFIX, snapshot_cache._LOCK
    stamp = snapshot_cache._code_stamp().hex()[:16]
    locked = {name[:-len(lock)] for name in names
              if name.endswith(lock) and _writing(directory / name)}
    out: list[CacheEntry] = []
    for name in names:
        if not name.endswith(suffix) or name.startswith(".tmp-"):
            continue
        key = name[:-len(suffix)]
        try:
            st = os.lstat(directory / name)
        except OSError:
            continue  # removed meanwhile
        out.append(_entry(directory / name, key, st, magic=magic, stamp=stamp,
                          writing=key in locked))
    listed = {e.key for e in out}
    out.extend(CacheEntry(key=key, size=0, written=None, used=None, path=None, files=(),
                          natlens=None, python=None, state="writing", writing=True)
               for key in sorted(locked - listed))
    out.sort(key=lambda e: -(e.used if e.used is not None else time.time()))
    return out


def _iso(when: float | None) -> str | None:
    from datetime import datetime, timezone  # noqa: PLC0415  (only for --json)

    if when is None:
        return None
    return datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="seconds")


def to_dict(entries: list[CacheEntry], directory: Path) -> dict[str, Any]:
    """``natlens cache list --json``: ``{"directory", "entries": [{"key", "path", "files",
    "bytes", "written", "used" (ISO 8601, UTC, or null), "age_seconds", "used_seconds_ago",
    "natlens", "python", "state", "writing"}]}``."""
    now = time.time()
    return {"directory": str(directory), "entries": [{
        "key": e.key, "path": e.path, "files": list(e.files), "bytes": e.size,
        "written": _iso(e.written), "used": _iso(e.used),
        "age_seconds": None if e.written is None else round(max(0.0, now - e.written), 1),
        "used_seconds_ago": None if e.used is None else round(max(0.0, now - e.used), 1),
        "natlens": e.natlens, "python": e.python, "state": e.state, "writing": e.writing,
    } for e in entries]}


def _ago(when: float | None, now: float) -> str:
    """``42 s``, ``5 min``, ``3 h``, ``2 d`` before ``now``; ``-`` when unknown."""
    if when is None:
        return "-"
    seconds = max(0.0, now - when)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def _size(n: int) -> str:
    """Bytes as ``812 B``, ``4.1 kB``, ``37.2 MB`` (SI units, as ``ls --si``)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError  # pragma: no cover


def render(entries: list[CacheEntry], directory: Path, width: int | None = None) -> str:
    """The listing as text: a heading naming the folder, then one line per entry, most
    recently used first (size, age since written, natlens, state, whether a write is under
    way, the snapshot or, without an info line, the key). With ``width`` (the terminal's)
    every line fits it: the snapshot's path is cut at its start (``…``)."""
    from natlens.termstyle import wrap_line  # noqa: PLC0415
    from natlens.textsafe import terminal  # noqa: PLC0415

    total = sum(e.size for e in entries)
    head = (f"natlens cache: {terminal(str(directory))}: {len(entries)} "
            f"entr{'y' if len(entries) == 1 else 'ies'}, {_size(total)}")
    lines = wrap_line(head, width, 2)
    if not entries:
        return "\n".join(lines) + "\n"
    now = time.time()
    rows = [("size", "age", "natlens", "state", "writing", "snapshot")]
    rows += [(_size(e.size), _ago(e.written, now), e.natlens or "?", e.state,
              "yes" if e.writing else "no", terminal(e.path) if e.path else f"key {e.key}")
             for e in entries]
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]) - 1)]
    for row in rows:
        cells = "  ".join(cell.rjust(w) if k < 2 else cell.ljust(w)
                          for k, (cell, w) in enumerate(zip(row, widths, strict=False)))
        snapshot = row[-1]
        if width is not None:
            room = max(12, width - len(cells) - 2)
            if len(snapshot) > room:
                snapshot = "…" + snapshot[len(snapshot) - room + 1:]
        lines.append(f"{cells}  {snapshot}")
    return "\n".join(lines) + "\n"
