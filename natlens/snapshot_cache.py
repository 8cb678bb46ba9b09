"""Parse once, answer many: a per-user cache of parsed and prepared snapshots (issue 13).

A snapshot loaded through ``load_cached`` is stored, with what commands derived from it (the
host model, facts over every rule such as ``trace``'s hints, the results of ``report`` and
``graph``: ``Snapshot.derived``, ``natlens.derived_results``), in one file
of the user's cache directory: ``$XDG_CACHE_HOME/natlens`` (default ``~/.cache/natlens``). Its
chains are stored lazily (``natlens.cache_pickle``): a command reads, and unpickles, only the
chains it uses, so a warm ``trace`` on a 100k-rule host does not build the 100k rules. The
simulator is not stored: preparing it is lazy too (``natlens.netfilter.prepared``). The file
name is the SHA-256 of everything the result depends on:

- the bytes of every input file (each file a snapshot folder may hold, ``SNAPSHOT_FILES``, by
  name; a missing one counts as missing), or of the single rule file;
- the path as given (messages and origins name it), the load options and the host addresses
  stated on the command line;
- natlens's version, the size and time of every module of the installed natlens (a changed
  natlens never reads an old entry) and the Python version (pickle's format).

Any changed input byte, option or natlens version gives another key: a stale entry is never
read, only left for ``clear`` (or pruned: at most ``MAX_ENTRIES`` files are kept).

Trust (docs/security.md, "The snapshot cache"): entries are pickles, and unpickling runs code
named in the file, so a file is read only when

- the cache directory is a real directory owned by the effective user with no access for
  group or others (created 0700), and
- the entry is a regular file (opened with ``O_NOFOLLOW``) owned by the effective user, mode
  0600 or stricter.

Anything else is ignored with one ``CacheWarning`` line and the snapshot is parsed as if there
were no cache. The unpickler (the same for the entry and for each lazily read chain) also
refuses every global outside natlens's own classes, the ``ipaddress`` classes and a few builtin
containers. The cache never lives in (or reads from) the snapshot folder: a snapshot from
another machine cannot bring its own pickles. A corrupted entry (cut short, garbage, another
format, a checksum that does not match: the CRC-32 of the whole pickle, lazily read chains
included, is checked before anything is unpickled) is ignored with a warning and replaced.

Writes are atomic (a ``mkstemp`` file in the cache directory, then ``os.replace``), so
concurrent runs on the same snapshot each read a whole entry or none. A writer holds an
exclusive ``flock`` on ``KEY.lock`` next to the entry while it writes (and removes that file
when done): a command that finds no entry but a write under way waits for it (at most
``WRITE_WAIT`` seconds) instead of parsing again, and ``clear`` waits for every write under
way (``wait_for_writes``).

The ``natlens`` command writes in the background (``save_pending(background=True)``): once
its answer is printed and flushed, a forked child process, its standard streams on
``/dev/null`` at once (a pipe reading the answer reaches its end when the command exits),
writes the entry and ends with ``os._exit``; the command exits without waiting. Failures in
the child are silent (the next command parses again). The write stays in the foreground
where ``fork`` is missing or unsafe (not Linux, another thread running), and when
``$NATLENS_CACHE_FOREGROUND`` is set (non-empty), for scripts that look at the cache folder
right after a command or want to see a failure to write. The library (``load_cached`` +
``save_pending()``) and the pytest plugin always write in the foreground.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import shlex
import stat
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locks (and no fork: foreground writes)
    fcntl = None  # type: ignore[assignment]

from natlens.cache_derived import needs_rewrite
from natlens.cache_list import INFO_LIMIT, entry_info
from natlens.cache_pickle import CorruptEntry, EntryStore, read_entry, write_entry
from natlens.errors import ParseWarning, SnapshotError, UsageError
from natlens.inputs import input_limit, open_regular
from natlens.parse.collector import collector_off
from natlens.snapshot import SNAPSHOT_FILES, Snapshot, load, with_stated_host

__all__ = [
    "MAX_ENTRIES", "WRITE_WAIT", "CacheWarning", "cache_dir", "can_write_in_background",
    "clear", "forget_pending", "key_for", "load_cached", "save_pending", "wait_for_writes",
]

MAX_ENTRIES = 16
"""Entries kept in the cache directory (the oldest beyond this are removed after a write)."""

WRITE_WAIT = 60.0
"""Seconds a command waits for another process's write of the entry it needs (or a writer
for another writer of the same entry, or ``clear`` for writers) before going on without it.
Writing a 700k-line snapshot takes a few seconds; parsing it again takes longer."""

_MAGIC = b"natlens-snapshot-cache 3\n"
_SUFFIX = ".snapshot"
_LOCK = ".lock"
_NO_ACCESS_FOR_OTHERS = 0o077


class CacheWarning(UserWarning):
    """The cache was not used for a reason the user should know (one line)."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/natlens``, or ``~/.cache/natlens`` when the variable is unset or not
    an absolute path (XDG Base Directory Specification)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "natlens"


def _code_stamp() -> bytes:
    """Version, Python version and the size and time of every natlens module."""
    import natlens  # noqa: PLC0415  (the package is loaded already)

    h = hashlib.sha256(f"{natlens.__version__}\0{sys.version}\0".encode())
    root = Path(natlens.__file__).parent
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                st = os.stat(os.path.join(dirpath, name))
                h.update(f"{dirpath}/{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.digest()


def _input_files(path: Path) -> list[tuple[str, Path]] | None:
    """(name, file) of every input ``load`` may read for ``path``; None when ``path`` is not
    something the cache can key (standard input, a path that does not exist)."""
    if str(path) == "-":
        return None
    try:
        if path.is_dir():
            names = set(os.listdir(path))
            return [(n, path / n) for n in sorted(set(SNAPSHOT_FILES.values()) & names)]
        if path.is_file():
            return [("", path)]
    except OSError:
        return None
    return None


def key_for(path: str | Path, options: Sequence[object]) -> str | None:
    """The cache key (hex SHA-256) of loading ``path`` with ``options``; None when it cannot be
    cached (standard input, unreadable files, a file over the input limit
    ``natlens.inputs.input_limit()``, a file that is not a regular file: ``load`` then reports
    them, so a cache hit never skips a check a parse makes; a FIFO is never opened, a device
    never read: ``natlens.inputs.open_regular``). Raises ``UsageError`` when
    ``$NATLENS_MAX_INPUT`` is not a size."""
    p = Path(path)
    files = _input_files(p)
    if files is None:
        return None
    limit = input_limit()
    h = hashlib.sha256(_code_stamp())
    h.update(repr((str(path), tuple(options))).encode())
    try:
        for name, file in files:
            h.update(f"\0file\0{name}\0".encode())
            with open_regular(file) as fh:
                size = 0
                while chunk := fh.read(min(1 << 20, limit + 1 - size)):
                    size += len(chunk)
                    if size > limit:
                        return None  # over the limit: not read further, load refuses it
                    h.update(chunk)
                h.update(f"\0{size}".encode())
    except (OSError, SnapshotError):
        return None
    return h.hexdigest()


def _warn(message: str) -> None:
    warnings.warn(f"snapshot cache: {message}", CacheWarning, stacklevel=3)


def _usable_dir(directory: Path, *, create: bool) -> bool:
    """Whether ``directory`` may hold entries we read: ours, a real directory, 0700 or
    stricter. With ``create``, make it (0700) when it is missing."""
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        if not create:
            return False
        try:
            os.makedirs(directory.parent, mode=0o700, exist_ok=True)
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            _warn(f"{directory}: cannot create: {exc.strerror or exc}")
            return False
        return _usable_dir(directory, create=False)
    except OSError as exc:
        _warn(f"{directory}: {exc.strerror or exc}")
        return False
    why = _refusal(st)
    if why is not None:
        _warn(f"{directory}: {why}: not used")
        return False
    return True


def _refusal(st: os.stat_result) -> str | None:
    """Why a cache folder with this ``lstat`` is not used (``_usable_dir``), or None."""
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if st.st_uid != os.geteuid() or st.st_mode & _NO_ACCESS_FOR_OTHERS:
        return (f"owned by uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):o} "
                f"(needs uid {os.geteuid()}, mode 700)")
    return None


Replay = tuple[tuple[str, str, str, int], ...]
"""The warnings loading gave, to give again on a cache hit: ``(kind, text, source, line)``,
kind ``parse`` (a ``ParseWarning``: reason, file, line) or ``other`` (its text)."""


def _recorded(caught: Sequence[warnings.WarningMessage]) -> Replay:
    out: list[tuple[str, str, str, int]] = []
    for w in caught:
        message = w.message
        if isinstance(message, ParseWarning):
            out.append(("parse", message.reason, message.source, message.line_no))
        else:
            out.append(("other", str(message), "", 0))
    return tuple(out)


def _replay(recorded: Replay) -> None:
    """Warn again what loading warned (a cache hit must say what a parse says)."""
    for kind, text, source, line_no in recorded:
        if kind == "parse":
            warnings.warn(ParseWarning(text, source=source, line_no=line_no), stacklevel=3)
        else:
            warnings.warn(text, UserWarning, stacklevel=3)


def _read(entry: Path, key: str, *, freeze: bool = False,
          recover: Callable[[], Snapshot] | None = None,
          ) -> tuple[Snapshot, Replay, EntryStore] | None:
    """The snapshot stored in ``entry``, the warnings its parse gave and the entry's
    ``EntryStore``; or None (absent; untrusted or corrupted: warned). The file is mapped, not read:
    its chains are read when used (``natlens.cache_pickle``; ``recover`` parses the snapshot
    again for a chain found damaged then)."""
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        _warn(f"{entry}: cannot open ({exc.strerror or exc}): ignored")
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() \
                or st.st_mode & _NO_ACCESS_FOR_OTHERS:
            _warn(f"{entry}: owned by uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):o} "
                  f"(needs uid {os.geteuid()}, mode 600): ignored, never loaded")
            return None
        try:
            # entries are replaced by rename, never rewritten in place: the mapping stays whole
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if st.st_size else b""
        except (OSError, ValueError) as exc:
            _warn(f"{entry}: cannot read ({exc}): ignored")
            return None
    header = _MAGIC + key.encode() + b"\n"
    info_end = data.find(b"\n", len(header), len(header) + INFO_LIMIT)  # natlens.cache_list
    if data[:len(header)] != header or info_end < 0:
        _warn(f"{entry}: not a natlens cache entry for this snapshot (corrupted?): ignored")
        return None
    try:
        with collector_off(freeze=freeze):
            value, store = read_entry(data, info_end + 1, name=str(entry), recover=recover,
                                      freeze=freeze)
    except CorruptEntry as exc:
        _warn(f"{entry}: corrupted ({exc}): ignored")
        return None
    except Exception as exc:
        _warn(f"{entry}: corrupted ({type(exc).__name__}): ignored")
        return None
    if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], Snapshot)
            and isinstance(value[1], tuple)):
        _warn(f"{entry}: does not hold a snapshot (corrupted?): ignored")
        return None
    return value[0], value[1], store


def _write(directory: Path, entry: Path, key: str, snap: Snapshot, recorded: Replay) -> None:
    """Store ``snap`` as ``entry`` atomically (temporary file 0600 + rename): ``_MAGIC``, the
    key, the info line ``natlens cache list`` reads (``natlens.cache_list.entry_info``), then
    what ``natlens.cache_pickle.write_entry`` writes (chains in blobs, checksums).
    The caller holds the entry's write lock (``_lock``), if it could take it."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh, collector_off():
            write_entry(fh, _MAGIC + key.encode() + b"\n" + entry_info(snap.path, _code_stamp()),
                        (snap, recorded), snap)
        os.replace(tmp, entry)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _prune(directory)


_STALE = 3600.0
"""Seconds after which a temporary file or an unlocked lock file is left over from a writer
that was killed (a background writer dies with its container or CI job): removed by
``_prune``."""


def _prune(directory: Path) -> None:
    """Keep the ``MAX_ENTRIES`` most recently used entries; remove what killed writers left
    (temporary files and lock files not touched for ``_STALE`` seconds, locks nobody holds)."""
    try:
        found = list(os.scandir(directory))
        entries = [e for e in found if e.name.endswith(_SUFFIX)
                   and not e.name.startswith(".tmp-")]
        entries.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime_ns, reverse=True)
        for old in entries[MAX_ENTRIES:]:
            with contextlib.suppress(OSError):
                os.unlink(old.path)
        stale = time.time() - _STALE
        for e in found:
            with contextlib.suppress(OSError):
                if e.name.startswith(".tmp-") and e.name.endswith(_SUFFIX) \
                        and e.stat(follow_symlinks=False).st_mtime < stale:
                    os.unlink(e.path)
                elif e.name.endswith(_LOCK) and e.stat(follow_symlinks=False).st_mtime < stale:
                    fd = _lock(directory, e.name[:-len(_LOCK)], wait=0.0)
                    _unlock(directory, e.name[:-len(_LOCK)], fd)  # removed if nobody holds it
    except OSError:
        pass


def _lock_path(directory: Path, key: str) -> Path:
    return directory / f"{key}{_LOCK}"


def _flock(fd: int, operation: int, deadline: float) -> bool:
    """``flock(fd, operation)``, tried until ``deadline`` (``time.monotonic()``) → whether it
    was taken (False also when locks are not supported)."""
    pause = 0.002
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
        except BlockingIOError:
            now = time.monotonic()
            if now >= deadline:
                return False
            time.sleep(min(pause, deadline - now))
            pause = min(pause * 2, 0.05)
        except OSError:
            return False
        else:
            return True


def _lock(directory: Path, key: str, *, wait: float) -> int | None:
    """Take the write lock of entry ``key``: an exclusive ``flock`` on ``KEY.lock`` (created
    0600), waiting at most ``wait`` seconds for another writer → its file descriptor (held
    until ``_unlock``), or None (no locks here, or still busy: the caller writes without).
    A lock file its last writer removed meanwhile is not the lock any more: taken again."""
    if fcntl is None:
        return None
    path = _lock_path(directory, key)
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        if not _flock(fd, fcntl.LOCK_EX, deadline):
            os.close(fd)
            return None
        try:
            current = os.stat(path, follow_symlinks=False)
            held = os.fstat(fd)
        except OSError:
            current = None
        if current is not None and (current.st_dev, current.st_ino) == (held.st_dev,
                                                                         held.st_ino):
            return fd
        os.close(fd)


def _unlock(directory: Path, key: str, fd: int | None) -> None:
    """Release the write lock ``_lock`` took: the lock file is removed, then unlocked."""
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.unlink(_lock_path(directory, key))
    os.close(fd)


def _await_lock(path: Path, deadline: float) -> None:
    """Wait until nobody holds the write lock ``path`` (or until ``deadline``)."""
    if fcntl is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return  # no write under way
    try:
        _flock(fd, fcntl.LOCK_SH, deadline)
    finally:
        os.close(fd)


def wait_for_writes(timeout: float = WRITE_WAIT) -> None:
    """Wait until no process is writing an entry into the cache folder (e.g. a ``natlens``
    command that exited and left its entry to a background writer), at most ``timeout``
    seconds in all."""
    directory = cache_dir()
    deadline = time.monotonic() + timeout
    try:
        names = [e.name for e in os.scandir(directory) if e.name.endswith(_LOCK)]
    except OSError:
        return
    for name in names:
        _await_lock(directory / name, deadline)


class _Pending:
    """A snapshot loaded through the cache, to store when the command is done (then it holds
    what the command prepared)."""

    __slots__ = ("directory", "entry", "key", "prepared", "recorded", "snap", "store")

    def __init__(self, directory: Path, entry: Path, key: str, snap: Snapshot, *,
                 prepared: Prepared | None, recorded: Replay,
                 store: EntryStore | None = None) -> None:
        self.directory, self.entry, self.key, self.snap = directory, entry, key, snap
        self.recorded = recorded
        self.prepared = prepared  # what the stored entry holds (None: nothing stored yet)
        self.store = store  # the entry it was read from, if any


_PENDING: list[_Pending] = []

Prepared = tuple[bool, frozenset[str]]
"""What a command derived from a snapshot that the entry stores with it: whether the host
model was built, and the names of the facts ``Snapshot.derived`` computed. (The simulator is
not stored: its chains are prepared when a walk first meets them, natlens.netfilter.prepared.)"""


def _prepared(snap: Snapshot) -> Prepared:
    return (snap._host is not None, snap.derived_names())


def load_cached(path: str | Path, *, strict: bool = True, table: str | None = None,
                restore_flush: bool = False, allow_empty: bool = False,
                addresses: Sequence[str] = (), interfaces: Sequence[str] = (),
                use_cache: bool = True, freeze: bool = False,
                progress: Callable[[str], object] | None = None) -> Snapshot:
    """``natlens.snapshot.load`` + ``with_stated_host``, answered from the cache when an entry
    for exactly these inputs exists (see the module docstring).

    The loaded snapshot is remembered; ``save_pending()`` stores it (with what was prepared
    for it meanwhile). ``progress(stage)`` is told when parsing starts. ``freeze``: the
    caller keeps the snapshot to the end (the CLI): ``gc.freeze()`` once it is built, so no
    later collection walks it. The collector is off while it is built. Raises what ``load``
    raises; cache problems only warn (``CacheWarning``).
    """
    options = (strict, table, restore_flush, allow_empty, tuple(addresses), tuple(interfaces))
    key = key_for(path, options) if use_cache else None
    directory = cache_dir()
    usable = key is not None and _usable_dir(directory, create=True)
    if usable and key is not None:
        entry = directory / f"{key}{_SUFFIX}"
        if progress is not None:
            progress("reading cache")

        def recover() -> Snapshot:
            """The snapshot parsed again, for chains of the entry found damaged after it was
            opened (``natlens.cache_pickle``); the entry is removed (warned)."""
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # given once already
                fresh = with_stated_host(
                    load(path, strict=strict, table=table, restore_flush=restore_flush,
                         allow_empty=allow_empty), addresses=addresses, interfaces=interfaces)
            if key_for(path, options) != key:
                raise SnapshotError(f"{path}: changed while natlens read it (and its cache "
                                    f"entry {entry} is damaged): run the command again")
            with contextlib.suppress(OSError):
                os.unlink(entry)
            _warn(f"{entry}: damaged (a chain's checksum): its chains were parsed again from "
                  f"{path}; the entry is removed")
            return fresh

        if not os.path.lexists(entry):  # being written by a command that just ended?
            _await_lock(_lock_path(directory, key), time.monotonic() + WRITE_WAIT)
        found = _read(entry, key, freeze=freeze, recover=recover)
        if found is not None:
            snap, recorded, store = found
            with contextlib.suppress(OSError):
                os.utime(entry)  # recently used: kept by _prune
            _PENDING.append(_Pending(directory, entry, key, snap, prepared=_prepared(snap),
                                     recorded=recorded, store=store))
            _replay(recorded)
            return snap
    if progress is not None:
        progress("parsing")
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as seen, collector_off(freeze=freeze):
            warnings.simplefilter("always")
            caught = seen  # the list catch_warnings fills as warnings come
            snap = with_stated_host(
                load(path, strict=strict, table=table, restore_flush=restore_flush,
                     allow_empty=allow_empty), addresses=addresses, interfaces=interfaces)
    finally:
        recorded = _recorded(caught)
        _replay(recorded)  # also when the load failed: its warnings came first
    if usable and key is not None:
        _PENDING.append(_Pending(directory, directory / f"{key}{_SUFFIX}", key, snap,
                                 prepared=None, recorded=recorded))
    return snap


def save_pending(*, background: bool = False) -> None:
    """Store every snapshot loaded since the last call whose entry is missing or holds less
    than what has been derived since (a warm command that derived nothing new writes nothing;
    chains not read stay as they were stored). Failures to write only warn.

    ``background`` (the ``natlens`` command, which exits right after): write in a forked child
    process when ``can_write_in_background()``, and return at once (module docstring); the
    child's failures are silent. Otherwise, and by default, write here before returning."""
    due: list[_Pending] = []
    while _PENDING:
        item = _PENDING.pop()
        host, derived = _prepared(item.snap)
        if item.prepared is not None and item.prepared[0] >= host \
                and derived <= item.prepared[1] and not needs_rewrite(item.snap._derived):
            continue
        if item.store is not None and item.store.damaged:
            continue  # removed: the next command parses and stores a whole entry
        due.append(item)
    if not due:
        return
    if background and can_write_in_background() and _write_in_child(due):
        return
    for item in due:
        fd = _lock(item.directory, item.key, wait=WRITE_WAIT)
        try:
            _write(item.directory, item.entry, item.key, item.snap, item.recorded)
        except Exception as exc:
            _warn(f"{item.directory}: cannot write an entry ({type(exc).__name__}: {exc}): "
                  "not cached")
        finally:
            _unlock(item.directory, item.key, fd)


def can_write_in_background() -> bool:
    """Whether ``save_pending(background=True)`` forks: on Linux (``fork`` without the
    caveats of macOS's frameworks) with locks, in a process running no other thread, unless
    ``$NATLENS_CACHE_FOREGROUND`` is set."""
    return (sys.platform.startswith("linux") and hasattr(os, "fork") and fcntl is not None
            and threading.active_count() == 1
            and not os.environ.get("NATLENS_CACHE_FOREGROUND"))


def _write_in_child(due: Sequence[_Pending]) -> bool:
    """Fork a child that writes ``due`` and exits (``os._exit``); the parent returns at once
    → True, or False when ``fork`` failed (out of memory or processes: nothing written).

    The parent takes each entry's write lock before forking, so that a command started after
    it exits finds the write under way and waits for it (``load_cached``); the child
    inherits the locks (``flock`` locks belong to the open file, shared across ``fork``) and
    releases them as it finishes. An entry another process is writing is locked by the child
    itself, after that write (at most ``WRITE_WAIT`` seconds)."""
    locks = [_lock(item.directory, item.key, wait=0.0) for item in due]
    try:
        pid = os.fork()
    except OSError:
        pid = -1
    if pid != 0:  # the parent
        for item, fd in zip(due, locks, strict=True):
            if pid < 0:
                _unlock(item.directory, item.key, fd)
            elif fd is not None:
                os.close(fd)  # the child holds the lock now
        return pid > 0
    status = 1
    try:
        _detach()
        for item, fd in zip(due, locks, strict=True):
            held = fd if fd is not None else _lock(item.directory, item.key,
                                                   wait=WRITE_WAIT)
            try:
                _write(item.directory, item.entry, item.key, item.snap, item.recorded)
            finally:
                _unlock(item.directory, item.key, held)
        status = 0
    except BaseException:  # nothing to tell: its streams are /dev/null
        pass
    finally:
        os._exit(status)


def _detach() -> None:
    """In the background writer: standard input, output and error on ``/dev/null`` at once,
    every other pipe, socket or terminal it inherited closed (whoever reads the command's
    output, or waits for it, sees the end when the command exits), and a session of its own
    (no Ctrl-C or hang-up of the terminal's job reaches it)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 256))
    for fd in fds:
        if fd > 2:
            with contextlib.suppress(OSError):
                mode = os.fstat(fd).st_mode
                if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode):
                    os.close(fd)
    with contextlib.suppress(OSError):
        os.setsid()


def forget_pending() -> None:
    """Drop the snapshots ``save_pending`` would store (a command failed)."""
    _PENDING.clear()


def clear() -> int:
    """Remove every cache entry of this user → the number of entries removed (0 without a
    cache folder). Writes under way are waited for first (``wait_for_writes``), so that an
    entry a command that just ended is still writing does not appear after the clear.

    Raises ``UsageError`` when the folder exists but is not used (not a directory, another
    owner, access for group or others: ``_usable_dir``): its files are left alone."""
    directory = cache_dir()
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise UsageError(f"{directory}: {exc.strerror or exc}") from None
    why = _refusal(st)
    if why is not None:
        raise UsageError(f"{directory}: the cache folder is not used because it is {why}; "
                         "natlens leaves it alone, remove it by hand: rm -r "
                         f"{shlex.quote(str(directory))}")
    wait_for_writes()
    removed = 0
    for e in os.scandir(directory):
        if e.name.endswith(_SUFFIX) and e.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(e.path)
                removed += 1
        elif e.name.endswith(_LOCK) and e.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):  # left by a writer that was killed
                os.unlink(e.path)
    return removed
