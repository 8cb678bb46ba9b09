"""Parse once, answer many: a per-user cache of parsed and prepared snapshots (issue 13).

A snapshot loaded through ``load_cached`` is stored, with whatever was prepared for it (the
host model, the ``Simulator`` and its prepared rulesets), in one file of the user's cache
directory: ``$XDG_CACHE_HOME/natlens`` (default ``~/.cache/natlens``). The file name is the
SHA-256 of everything the result depends on:

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
were no cache. The unpickler also refuses every global outside natlens's own classes, the
``ipaddress`` classes and a few builtin containers. The cache never lives in (or reads from)
the snapshot folder: a snapshot from another machine cannot bring its own pickles. A corrupted
entry (cut short, garbage, another format) is ignored with a warning and replaced.

Writes are atomic (a ``mkstemp`` file in the cache directory, then ``os.replace``), so
concurrent runs on the same snapshot each read a whole entry or none.
"""

from __future__ import annotations

import contextlib
import copyreg
import gc
import hashlib
import io
import ipaddress
import operator
import os
import pickle
import stat
import sys
import tempfile
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from natlens.errors import ParseWarning
from natlens.inputs import input_limit
from natlens.model import Rule
from natlens.netfilter.prepared import CompiledRule
from natlens.snapshot import SNAPSHOT_FILES, Snapshot, load, with_stated_host

__all__ = [
    "MAX_ENTRIES", "CacheWarning", "cache_dir", "clear", "forget_pending", "key_for",
    "load_cached", "save_pending",
]

MAX_ENTRIES = 16
"""Entries kept in the cache directory (the oldest beyond this are removed after a write)."""

_MAGIC = b"natlens-snapshot-cache 1\n"
_SUFFIX = ".snapshot"
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
    ``natlens.inputs.input_limit()``: ``load`` then reports them, so a cache hit never skips a
    check a parse makes). Raises ``UsageError`` when ``$NATLENS_MAX_INPUT`` is not a size."""
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
            with open(file, "rb") as fh:
                size = 0
                while chunk := fh.read(min(1 << 20, limit + 1 - size)):
                    size += len(chunk)
                    if size > limit:
                        return None  # over the limit: not read further, load refuses it
                    h.update(chunk)
                h.update(f"\0{size}".encode())
    except OSError:
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
    if not stat.S_ISDIR(st.st_mode):
        _warn(f"{directory}: not a directory: not used")
        return False
    if st.st_uid != os.geteuid() or st.st_mode & _NO_ACCESS_FOR_OTHERS:
        _warn(f"{directory}: owned by uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):o} "
              f"(needs uid {os.geteuid()}, mode 700): not used")
        return False
    return True


def _mapping_proxy(data: dict[Any, Any]) -> types.MappingProxyType[Any, Any]:
    """Rebuild a read-only mapping (pickle cannot name ``mappingproxy``)."""
    return types.MappingProxyType(data)


def _reduce_mapping_proxy(value: types.MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    return (_mapping_proxy, (dict(value),))


def _compiled_rule(rule: Rule, index: int, text: str | None) -> CompiledRule:
    """Rebuild a prepared rule; its checks (closures, which pickle cannot store) are compiled
    again when a walk first reaches it, as after ``prepare``."""
    compiled = CompiledRule(rule, index)
    compiled._text = text
    return compiled


def _reduce_compiled_rule(value: CompiledRule) -> tuple[Any, ...]:
    return (_compiled_rule, (value.rule, value.index, value._text))


def _slot_names(cls: type) -> tuple[str, ...]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return tuple(n for n in names if n not in ("__dict__", "__weakref__"))


_SLOTS: dict[type, tuple[str, ...]] = {}
_SETTERS: dict[type, Callable[[object, tuple[Any, ...]], None]] = {}


def _setter(cls: type) -> Callable[[object, tuple[Any, ...]], None]:
    """A function setting every slot of a ``cls`` object from a tuple, through the slots'
    member descriptors (what a frozen dataclass's ``__init__`` does), unrolled."""
    names = _SLOTS.get(cls) or _slot_names(cls)
    _SLOTS[cls] = names
    scope = {f"d{i}": getattr(cls, n).__set__ for i, n in enumerate(names)}
    body = "".join(f"    d{i}(obj, v[{i}])\n" for i in range(len(names))) or "    pass\n"
    exec(f"def setter(obj, v):\n{body}", scope)
    setter: Callable[[object, tuple[Any, ...]], None] = scope["setter"]
    _SETTERS[cls] = setter
    return setter


def _set_slots(obj: object, values: tuple[Any, ...]) -> None:
    """``state_setter`` of a slotted dataclass: each slot set as ``__init__`` would (the
    class may be frozen)."""
    setter = _SETTERS.get(type(obj))
    if setter is None:
        setter = _setter(type(obj))
    setter(obj, values)


def _reduce_slots(obj: object) -> tuple[Any, ...]:
    """A slotted dataclass as ``(cls.__new__, state, _set_slots)``: dataclasses' own
    ``__setstate__`` looks its fields up again for every object (10x slower to load)."""
    cls = type(obj)
    getter = _GETTERS.get(cls)
    if getter is None:
        names = _SLOTS.get(cls) or _slot_names(cls)
        _SLOTS[cls] = names
        if len(names) == 1:
            one = operator.attrgetter(names[0])
            getter = _GETTERS[cls] = lambda o: (one(o),)
        else:
            getter = _GETTERS[cls] = operator.attrgetter(*names)
    try:
        values = getter(obj)
    except AttributeError:  # an unset slot: the generic way
        generic = obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
        assert isinstance(generic, tuple)
        return generic
    return (copyreg.__newobj__, (cls,), values, None, None,  # type: ignore[attr-defined]
            _set_slots)


_GETTERS: dict[type, Callable[[object], tuple[Any, ...]]] = {}


def _reduce_ip(value: Any) -> tuple[Any, ...]:
    """An address from its integer (not its text: parsing is the slow part of loading)."""
    return (type(value), (int(value),))


def _reduce_net(value: Any) -> tuple[Any, ...]:
    return (type(value), ((int(value.network_address), value.prefixlen),))


def _dispatch() -> dict[type, Callable[[Any], tuple[Any, ...]]]:
    """Reducers by type: natlens's slotted dataclasses (every loaded natlens module),
    addresses, read-only mappings and prepared rules."""
    import dataclasses  # noqa: PLC0415

    table: dict[type, Callable[[Any], tuple[Any, ...]]] = {
        types.MappingProxyType: _reduce_mapping_proxy,
        CompiledRule: _reduce_compiled_rule,
        ipaddress.IPv4Address: _reduce_ip,
        ipaddress.IPv6Address: _reduce_ip,
        ipaddress.IPv4Network: _reduce_net,
        ipaddress.IPv6Network: _reduce_net,
    }
    for name, module in list(sys.modules.items()):
        if name != "natlens" and not name.startswith("natlens."):
            continue
        for value in list(vars(module).values()):
            if (isinstance(value, type) and dataclasses.is_dataclass(value)
                    and value.__module__ == name and "__slots__" in value.__dict__
                    and "__reduce__" not in value.__dict__
                    and "__reduce_ex__" not in value.__dict__
                    and getattr(value.__dict__.get("__setstate__"), "__name__",
                                "_dataclass_setstate") == "_dataclass_setstate"):
                _SLOTS[value] = _slot_names(value)
                table[value] = _reduce_slots
    return table

_SAFE_BUILTINS = frozenset({"frozenset", "set", "tuple", "list", "dict", "slice", "range",
                            "complex", "bytearray", "object", "getattr"})


class _Unpickler(pickle.Unpickler):
    """Loads natlens's own values only: any other global in the stream is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module == "natlens" or module.startswith("natlens.")
                or module == "ipaddress" or (module == "copyreg" and name == "_reconstructor")
                or (module == "builtins" and name in _SAFE_BUILTINS)):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not a natlens value")


@contextlib.contextmanager
def _collector_off(*, freeze: bool = False) -> Iterator[None]:
    """No cyclic collection while millions of objects are built or walked (re-enabled).
    ``freeze``: move every object alive into the permanent generation first (``gc.freeze``),
    so that the first collection after does not walk the new model (1-2 s at 100k rules)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was:
            gc.enable()


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


def _read(entry: Path, key: str, *, freeze: bool = False) -> tuple[Snapshot, Replay] | None:
    """The snapshot stored in ``entry`` and the warnings its parse gave, or None (absent;
    untrusted or corrupted: warned)."""
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
            data = fh.read()
        except OSError as exc:
            _warn(f"{entry}: cannot read ({exc.strerror or exc}): ignored")
            return None
    header = _MAGIC + key.encode() + b"\n"
    if not data.startswith(header):
        _warn(f"{entry}: not a natlens cache entry for this snapshot (corrupted?): ignored")
        return None
    try:
        with _collector_off(freeze=freeze):
            value = _Unpickler(io.BytesIO(memoryview(data)[len(header):])).load()
    except Exception as exc:
        _warn(f"{entry}: corrupted ({type(exc).__name__}): ignored")
        return None
    if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], Snapshot)
            and isinstance(value[1], tuple)):
        _warn(f"{entry}: does not hold a snapshot (corrupted?): ignored")
        return None
    return value[0], value[1]


def _write(directory: Path, entry: Path, key: str, snap: Snapshot, recorded: Replay) -> None:
    """Store ``snap`` as ``entry`` atomically (temporary file 0600 + rename)."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_MAGIC + key.encode() + b"\n")
            pickler = pickle.Pickler(fh, protocol=pickle.HIGHEST_PROTOCOL)
            pickler.dispatch_table = {**copyreg.dispatch_table, **_dispatch()}
            with _collector_off():
                pickler.dump((snap, recorded))
        os.replace(tmp, entry)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _prune(directory)


def _prune(directory: Path) -> None:
    """Keep the ``MAX_ENTRIES`` most recently used entries."""
    try:
        entries = [e for e in os.scandir(directory) if e.name.endswith(_SUFFIX)
                   and not e.name.startswith(".tmp-")]
        entries.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime_ns, reverse=True)
        for old in entries[MAX_ENTRIES:]:
            with contextlib.suppress(OSError):
                os.unlink(old.path)
    except OSError:
        pass


class _Pending:
    """A snapshot loaded through the cache, to store when the command is done (then it holds
    what the command prepared)."""

    __slots__ = ("directory", "entry", "key", "prepared", "recorded", "snap")

    def __init__(self, directory: Path, entry: Path, key: str, snap: Snapshot, *,
                 prepared: tuple[bool, bool] | None, recorded: Replay) -> None:
        self.directory, self.entry, self.key, self.snap = directory, entry, key, snap
        self.recorded = recorded
        self.prepared = prepared  # what the stored entry holds (None: nothing stored yet)


_PENDING: list[_Pending] = []


def _prepared(snap: Snapshot) -> tuple[bool, bool]:
    return (snap._host is not None, snap._simulator is not None)


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
        found = _read(entry, key, freeze=freeze)
        if found is not None:
            snap, recorded = found
            with contextlib.suppress(OSError):
                os.utime(entry)  # recently used: kept by _prune
            _PENDING.append(_Pending(directory, entry, key, snap, prepared=_prepared(snap),
                                     recorded=recorded))
            _replay(recorded)
            return snap
    if progress is not None:
        progress("parsing")
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as seen, _collector_off(freeze=freeze):
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


def save_pending() -> None:
    """Store every snapshot loaded since the last call whose entry is missing or holds less
    than what has been prepared since. Failures to write only warn."""
    while _PENDING:
        item = _PENDING.pop()
        host, simulator = _prepared(item.snap)
        # nft's compiled chains are closures pickle cannot store: such a snapshot is kept
        # parsed, with its host model, and its rules prepared again when used
        storable = item.snap.nft is None
        now = (host, simulator and storable)
        if item.prepared is not None and all(a >= b for a, b in zip(item.prepared, now,
                                                                      strict=True)):
            continue
        bare = replace(item.snap)
        object.__setattr__(bare, "_host", item.snap._host)
        try:
            try:
                _write(item.directory, item.entry, item.key,
                       item.snap if storable else bare, item.recorded)
            except (AttributeError, TypeError, pickle.PicklingError):
                if item.snap._simulator is None or not storable:
                    raise
                _write(item.directory, item.entry, item.key, bare, item.recorded)
        except Exception as exc:
            _warn(f"{item.directory}: cannot write an entry ({type(exc).__name__}: {exc}): "
                  "not cached")


def forget_pending() -> None:
    """Drop the snapshots ``save_pending`` would store (a command failed)."""
    _PENDING.clear()


def clear() -> int:
    """Remove every cache entry of this user → the number of files removed."""
    directory = cache_dir()
    if not _usable_dir(directory, create=False):
        return 0
    removed = 0
    for e in os.scandir(directory):
        if e.name.endswith(_SUFFIX) and e.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(e.path)
                removed += 1
    return removed
