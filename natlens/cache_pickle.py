"""The bytes of a snapshot cache entry (``natlens.snapshot_cache``): a pickle whose chains are
read lazily.

``write_entry`` pickles a value holding a ``Snapshot`` (protocol 5); ``read_entry`` reads it
back with ``Unpickler``, which refuses every global outside natlens's own classes, the
``ipaddress`` classes and a few builtin containers.

Chains are stored lazily. The rules, counters and origins of consecutive chains of a table
(``GROUP_RULES`` rules or more together, or one long chain) are pickled apart, as one blob (a
``ChainGroup``, with its CRC-32) after the main pickle; for each chain the main pickle holds
only its name, whether it is built in and its policy. ``read_entry`` leaves the blobs where
they are (in the memory-mapped file) and gives for such a chain a ``Chain`` (the private
subclass ``LazyChain``) whose ``rules``, ``counters`` and ``origin`` are unpickled, by the same
restricted ``Unpickler``, the first time one of them is read, with the rest of its blob: a
``trace`` that walks ten chains of a 36,000-chain table reads about ten blobs, not 100,000
rules. A table's ``Chain`` objects are made on first use too (``LazyTable``: ``get`` makes one,
``chains`` all), so loading does not build 36,000 of them. ``LazyChain`` and ``LazyTable``
compare, hash, print, copy and pickle (outside the cache) as the ``Chain`` and ``Table`` they
stand for; ``dataclasses.replace`` works on them. A blob whose checksum no longer
matches when it is read (the file damaged on disk meanwhile) is not unpickled: its chains are
taken from the snapshot parsed again.

Storing a loaded entry again (``snapshot_cache.save_pending`` after a command derived more)
writes the blobs of groups not read yet as they are, without unpickling them. What commands
derived (``Snapshot.derived``) is stored the same way, one blob per result read on first use
(``natlens.cache_derived``).

Slotted dataclasses are pickled as ``(cls.__new__, slot values)`` and rebuilt through unrolled
slot setters (dataclasses' own ``__setstate__`` looks the fields up again for every object, 10x
slower); addresses from their integers; the collector is off while a blob is read.
"""

from __future__ import annotations

import array
import copyreg
import dataclasses
import io
import ipaddress
import mmap
import operator
import pickle
import sys
import types
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO

from natlens import cache_derived
from natlens.errors import SnapshotError
from natlens.model import Chain, Counters, Origin, Rule, Ruleset, Table, TableName
from natlens.parse.collector import collector_off
from natlens.parse.networks import CompactIPv4Network, CompactIPv6Network
from natlens.snapshot import Snapshot

__all__ = [
    "GROUP_RULES", "ROLES", "STATS", "ChainGroup", "CorruptEntry", "EntryStore", "LazyChain",
    "LazyTable", "Unpickler",
    "is_loaded", "read_entry", "write_entry",
]

GROUP_RULES = 64
"""Rules (a chain counts one more) gathered in one blob before the next blob starts: small
enough that a walk unpickles little beyond the chains it meets, large enough that reading every
chain (``report``) costs about what one pickle of the whole model does (a blob per chain loses
the sharing of equal objects between chains and costs 3x)."""

_SAFE_BUILTINS = frozenset({"frozenset", "set", "tuple", "list", "dict", "slice", "range",
                            "complex", "bytearray", "object", "getattr"})


class Unpickler(pickle.Unpickler):
    """Loads natlens's own values only: any other global in the stream is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module == "natlens" or module.startswith("natlens.")
                or module == "ipaddress" or (module == "copyreg" and name == "_reconstructor")
                or (module == "builtins" and name in _SAFE_BUILTINS)):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not a natlens value")


# -- slotted dataclasses, addresses, read-only mappings ----------------------------------------

def _mapping_proxy(data: dict[Any, Any]) -> types.MappingProxyType[Any, Any]:
    """Rebuild a read-only mapping (pickle cannot name ``mappingproxy``)."""
    return types.MappingProxyType(data)


def _reduce_mapping_proxy(value: types.MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    return (_mapping_proxy, (dict(value),))


def _slot_names(cls: type) -> tuple[str, ...]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return tuple(n for n in names if n not in ("__dict__", "__weakref__"))


_SLOTS: dict[type, tuple[str, ...]] = {}
_SETTERS: dict[type, Callable[[object, tuple[Any, ...]], None]] = {}
_GETTERS: dict[type, Callable[[object], tuple[Any, ...]]] = {}


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
    """A slotted dataclass as ``(cls.__new__, state, _set_slots)``."""
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


def _reduce_ip(value: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[Any, ...]:
    """An address as ``cls.__new__`` then its slots (``ipaddress``: ``_ip``, and
    ``_scope_id`` for IPv6): built by the unpickler alone, no Python call (its ``__init__``
    checks and converts: the slow part of loading a rule)."""
    slots: dict[str, Any] = {"_ip": int(value)}
    if isinstance(value, ipaddress.IPv6Address):
        slots["_scope_id"] = getattr(value, "_scope_id", None)
    return (copyreg.__newobj__, (type(value),), (None, slots))  # type: ignore[attr-defined]


def _reduce_net(value: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[Any, ...]:
    """A network as ``cls.__new__`` then the instance dict its ``__init__`` leaves
    (``ipaddress.py``: ``network_address``, ``netmask``, ``_prefixlen``, and ``hosts`` for the
    two longest prefixes, kept as callables that give the same lists)."""
    state: dict[str, Any] = {"network_address": value.network_address,
                             "netmask": value.netmask, "_prefixlen": value.prefixlen}
    if "hosts" in vars(value):
        if value.prefixlen == value.max_prefixlen:  # __init__: lambda: [IPv4Address(addr)]
            state["hosts"] = [value.network_address].copy
        else:  # __init__: self.__iter__
            state["hosts"] = value.__iter__
    return (copyreg.__newobj__, (type(value),), state)  # type: ignore[attr-defined]


def _dispatch() -> dict[type, Callable[[Any], Any]]:
    """Reducers by type: natlens's slotted dataclasses (every loaded natlens module),
    addresses and read-only mappings."""
    table: dict[type, Callable[[Any], Any]] = {
        **copyreg.dispatch_table,
        types.MappingProxyType: _reduce_mapping_proxy,
        ipaddress.IPv4Address: _reduce_ip,
        ipaddress.IPv6Address: _reduce_ip,
        ipaddress.IPv4Network: _reduce_net,
        ipaddress.IPv6Network: _reduce_net,
        CompactIPv4Network: _reduce_net,  # the parser's (natlens.parse.networks)
        CompactIPv6Network: _reduce_net,
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


# -- chains read lazily -------------------------------------------------------------------------

_NAME = Chain.__dict__["name"]  # the slots' member descriptors
_BUILTIN = Chain.__dict__["builtin"]
_POLICY = Chain.__dict__["policy"]
_COUNTERS = Chain.__dict__["counters"]
_RULES = Chain.__dict__["rules"]
_ORIGIN = Chain.__dict__["origin"]
_FIELDS = tuple(f.name for f in dataclasses.fields(Chain))
_COMPARED = operator.attrgetter(*(f.name for f in dataclasses.fields(Chain) if f.compare))

Payload = tuple[Counters | None, tuple[Rule, ...], Origin | None]
"""What a blob holds per chain: its counters, rules and origin."""

ROLES = ("ruleset", "ruleset6", "other_backend", "other_backend6")
"""The ``Snapshot`` fields whose chains are stored lazily."""


class CorruptEntry(Exception):  # noqa: N818  (a reason, said in a warning)
    """An entry that cannot be read (``read_entry``): the message says why."""


class EntryStore:
    """What the chain groups of one loaded entry share: ``recover()``, the snapshot parsed
    again from its files, for a blob found damaged after the entry was opened (``damaged``)."""

    __slots__ = ("_fresh", "damaged", "freeze", "name", "recover")

    def __init__(self, name: str, recover: Callable[[], Snapshot] | None, *,
                 freeze: bool = False) -> None:
        self.name = name
        self.recover = recover
        self.damaged = False
        self.freeze = freeze  # gc.freeze() after reading a blob (its chains live to the end)
        self._fresh: Snapshot | None = None

    def fresh(self, why: str) -> Snapshot:
        """The snapshot parsed again (once). Raises ``SnapshotError`` without ``recover``."""
        self.damaged = True
        if self._fresh is None:
            if self.recover is None:
                raise SnapshotError(f"snapshot cache: {self.name}: {why}; remove the cache with "
                                    "'natlens cache clear'")
            self._fresh = self.recover()
        return self._fresh


class ChainGroup:
    """Consecutive chains of a table (``where``: the ``ROLES`` field, the table's position in
    its ruleset, the first chain's position in the table) and their pickled counters, rules and
    origins (``blob``, with its CRC-32; None once read)."""

    __slots__ = ("blob", "chains", "crc", "payloads", "store", "where")

    def __init__(self, blob: bytes | memoryview, crc: int, size: int,
                 where: tuple[str, int, int], store: EntryStore | None = None) -> None:
        self.blob: bytes | memoryview | None = blob
        self.crc = crc
        self.where = where
        self.store = store
        self.chains: list[LazyChain | None] = [None] * size  # None: not made yet (LazyTable)
        self.payloads: tuple[Payload, ...] | None = None  # once read, for chains made later

    def load(self) -> None:
        """Unpickle the blob into its chains. A blob damaged since the entry was written
        (its CRC-32 differs) is not unpickled: the chains are taken from the snapshot parsed
        again (``EntryStore.recover``, which warns). Raises ``SnapshotError`` when neither works."""
        blob = self.blob
        if blob is None:
            return
        if zlib.crc32(blob) != self.crc:
            payloads = self._recovered("a stored chain is damaged (checksum)")
        else:
            # frozen when the store says so (the CLI keeps its snapshot to the end): no later
            # collection walks these rules (O(1))
            with collector_off(freeze=self.store is not None and self.store.freeze):
                try:
                    payloads = Unpickler(io.BytesIO(blob)).load()
                except Exception as exc:
                    payloads = self._recovered(f"a stored chain cannot be read "
                                               f"({type(exc).__name__})")
            if not (isinstance(payloads, tuple) and len(payloads) == len(self.chains)
                    and all(isinstance(p, tuple) and len(p) == 3 for p in payloads)):
                payloads = self._recovered("a stored chain group does not match its chains")
        for chain, payload in zip(self.chains, payloads, strict=True):
            if chain is not None:
                _fill(chain, payload)
        self.payloads = payloads
        self.blob = None
        STATS["chains"] += len(self.chains)
        STATS["groups"] += 1

    def _recovered(self, why: str) -> tuple[Payload, ...]:
        """The group's payloads from the snapshot parsed again."""
        if self.store is None:
            raise SnapshotError(f"snapshot cache: {why}")
        fresh = self.store.fresh(why)
        role, table_at, first = self.where
        ruleset = getattr(fresh, role, None)
        chains = ruleset.tables[table_at].chains[first:first + len(self.chains)] \
            if isinstance(ruleset, Ruleset) and table_at < len(ruleset.tables) else ()
        if len(chains) != len(self.chains) or any(
                c is not None and c.name != f.name for c, f in zip(self.chains, chains,
                                                                 strict=True)):
            raise SnapshotError(f"snapshot cache: {self.store.name}: {why}, and the snapshot "
                                "parsed again does not have its chains")
        return tuple((f.counters, f.rules, f.origin) for f in chains)


def _fill(chain: LazyChain, payload: Payload) -> None:
    counters, rules, origin = payload
    _COUNTERS.__set__(chain, counters)
    _RULES.__set__(chain, rules)
    _ORIGIN.__set__(chain, origin)


STATS = {"chains": 0, "groups": 0}
"""Chains and blobs read lazily since the start (an operation count, for tests)."""


def _lazy_field(member: Any) -> property:
    """A property standing for the ``Chain`` slot ``member``: read from the chain's blob the
    first time, then from the slot."""

    def get(self: LazyChain) -> Any:
        try:
            return member.__get__(self, LazyChain)
        except AttributeError:
            self._load()
            return member.__get__(self, LazyChain)

    def put(self: LazyChain, value: Any) -> None:
        member.__set__(self, value)

    return property(get, put, doc=f"The chain's {member.__name__} (read on first use).")


class LazyChain(Chain):
    """A ``Chain`` of a cache entry whose rules, counters and origin are read on first use.

    Only ``read_entry`` makes them (``ChainGroup``). Equal to, and hashing as, the ``Chain``
    with the same values; ``repr``, ``copy`` and ``pickle`` give that ``Chain``.
    """

    __slots__ = ("_group",)

    rules = _lazy_field(_RULES)
    counters = _lazy_field(_COUNTERS)
    origin = _lazy_field(_ORIGIN)

    def _load(self) -> None:
        _GROUP.__get__(self, LazyChain).load()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Chain):
            return NotImplemented
        result: bool = _COMPARED(self) == _COMPARED(other)
        return result

    __hash__ = Chain.__hash__

    def __repr__(self) -> str:
        return "Chain" + Chain.__repr__(self)[len(type(self).__qualname__):]

    def __reduce__(self) -> tuple[Any, ...]:
        return (Chain, tuple(getattr(self, name) for name in _FIELDS))


_GROUP = LazyChain.__dict__["_group"]


def is_loaded(chain: Chain) -> bool:
    """Whether ``chain``'s rules are in memory (True for every chain not read from a cache
    entry)."""
    if not isinstance(chain, LazyChain):
        return True
    try:
        _RULES.__get__(chain, LazyChain)
    except AttributeError:
        return False
    return True


_LOADING: list[EntryStore] = []
"""The entry being unpickled (``read_entry``), for ``_chain_group``."""


def _chain_group(blob: memoryview, crc: int, size: int,
                 where: tuple[str, int, int]) -> ChainGroup:
    if not (_LOADING and isinstance(blob, memoryview) and isinstance(crc, int)
            and isinstance(size, int) and isinstance(where, tuple)):
        raise pickle.UnpicklingError("not a chain group")
    return ChainGroup(blob, crc, size, where, _LOADING[-1])


def _derived_results(items: tuple[tuple[str, Any, int], ...]) -> cache_derived.StoredResults:
    """A snapshot's stored results (``natlens.cache_derived``), read on first use."""
    if not _LOADING:
        raise pickle.UnpicklingError("not stored results")
    return cache_derived.stored_results(items, freeze=_LOADING[-1].freeze)


_TABLE_NAME = Table.__dict__["name"]  # the slots' member descriptors
_TABLE_CHAINS = Table.__dict__["chains"]
_TABLE_INDEX = Table.__dict__["_index"]
_TABLE_BEFORE = Table.__dict__["comments_before"]
_TABLE_AFTER = Table.__dict__["comments_after"]
_TABLE_INSIDE = Table.__dict__["comments_inside"]
_TABLE_COMPARED = operator.attrgetter(*(f.name for f in dataclasses.fields(Table) if f.compare))
_TABLE_FIELDS = tuple(f.name for f in dataclasses.fields(Table) if f.init)


def _table_chains(self: LazyTable) -> tuple[Chain, ...]:
    try:
        found: tuple[Chain, ...] = _TABLE_CHAINS.__get__(self, LazyTable)
    except AttributeError:
        found = tuple(self._chain_at(i) for i in range(len(self._names)))
        _TABLE_CHAINS.__set__(self, found)
    return found


def _set_table_chains(self: LazyTable, value: tuple[Chain, ...]) -> None:
    _TABLE_CHAINS.__set__(self, value)


class LazyTable(Table):
    """A ``Table`` of a cache entry whose ``Chain`` objects are made on first use: ``get`` and
    ``[name]`` make one (a walk asks for a dozen chains of a 36,000-chain table), ``chains``
    all of them. Their rules are read lazily in turn (``LazyChain``). Equal to, and hashing
    as, the ``Table`` with the same values; ``repr``, ``copy`` and ``pickle`` give that
    ``Table``."""

    __slots__ = ("_builtin", "_groups", "_made", "_names", "_policies")
    _names: tuple[str, ...]
    _builtin: tuple[bool, ...]
    _policies: tuple[str | None, ...]
    _groups: tuple[tuple[ChainGroup, int], ...]  # per chain: its group and place in it
    _made: list[Chain | None]

    chains = property(_table_chains, _set_table_chains,
                      doc="The table's chains (made on first use).")

    def _chain_at(self, i: int) -> Chain:
        try:
            chains: tuple[Chain, ...] = _TABLE_CHAINS.__get__(self, LazyTable)
        except AttributeError:
            pass
        else:
            return chains[i]
        made: list[Chain | None] = self._made
        chain = made[i]
        if chain is None:
            group, place = self._groups[i]
            lazy = LazyChain.__new__(LazyChain)
            _NAME.__set__(lazy, self._names[i])
            _BUILTIN.__set__(lazy, self._builtin[i])
            _POLICY.__set__(lazy, self._policies[i])
            _GROUP.__set__(lazy, group)
            group.chains[place] = lazy
            if group.payloads is not None:
                _fill(lazy, group.payloads[place])
            chain = made[i] = lazy
        return chain

    def __getitem__(self, name: str) -> Chain:
        return self._chain_at(self._index[name])

    def get(self, name: str) -> Chain | None:
        """The chain called ``name``, or None."""
        i = self._index.get(name)
        return None if i is None else self._chain_at(i)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Table):
            return NotImplemented
        result: bool = _TABLE_COMPARED(self) == _TABLE_COMPARED(other)
        return result

    __hash__ = Table.__hash__

    def __repr__(self) -> str:
        return "Table" + Table.__repr__(self)[len(type(self).__qualname__):]

    def __reduce__(self) -> tuple[Any, ...]:
        return (Table, tuple(getattr(self, name) for name in _TABLE_FIELDS))


TableSpec = tuple[tuple[str, ...], tuple[bool, ...], tuple["str | None", ...],
                  tuple[tuple[ChainGroup, int], ...]]
"""A stored table's chains: names, built-in flags, policies, and each one's group and place."""


def _lazy_table(name: TableName, spec: TableSpec,
                comments: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]],
                ) -> LazyTable:
    """A table whose chains are made, and read, lazily."""
    names, builtin, policies, groups = spec
    if not (len(names) == len(builtin) == len(policies) == len(groups) and all(
            isinstance(g, ChainGroup) and 0 <= i < len(g.chains) for g, i in groups)):
        raise pickle.UnpicklingError("not a stored table")
    table = LazyTable.__new__(LazyTable)
    _TABLE_NAME.__set__(table, name)
    _TABLE_BEFORE.__set__(table, comments[0])
    _TABLE_AFTER.__set__(table, comments[1])
    _TABLE_INSIDE.__set__(table, comments[2])
    _TABLE_INDEX.__set__(table, types.MappingProxyType(dict(zip(names, range(len(names)),
                                                                strict=True))))
    _LT_NAMES.__set__(table, names)
    _LT_BUILTIN.__set__(table, builtin)
    _LT_POLICIES.__set__(table, policies)
    _LT_GROUPS.__set__(table, groups)
    _LT_MADE.__set__(table, [None] * len(names))
    return table


_LT_NAMES = LazyTable.__dict__["_names"]
_LT_BUILTIN = LazyTable.__dict__["_builtin"]
_LT_POLICIES = LazyTable.__dict__["_policies"]
_LT_GROUPS = LazyTable.__dict__["_groups"]
_LT_MADE = LazyTable.__dict__["_made"]

Part = tuple[ChainGroup, list[Chain]]
"""A group as a table stores it: the group and its chains."""


def _unread_group(chain: Chain) -> ChainGroup | None:
    """The group of a ``LazyChain`` not read yet (its blob is stored again as it is)."""
    if not isinstance(chain, LazyChain) or is_loaded(chain):
        return None
    group: ChainGroup = _GROUP.__get__(chain, LazyChain)
    return group


def _blob(payloads: tuple[Payload, ...], dispatch: dict[type, Any]) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = dispatch
    pickler.dump(payloads)
    return buffer.getvalue()


def _parts(table: Table, role: str, table_at: int, dispatch: dict[type, Any]) -> list[Part]:
    """``table``'s chains as stored: runs of chains in memory become new groups of about
    ``GROUP_RULES`` rules; a group still unread, in its place, is stored again as it is."""
    chains = table.chains
    parts: list[Part] = []

    def close(start: int, end: int) -> None:
        if end > start:
            run = chains[start:end]
            blob = _blob(tuple((c.counters, c.rules, c.origin) for c in run), dispatch)
            group = ChainGroup(blob, zlib.crc32(blob), len(run), (role, table_at, start))
            parts.append((group, list(run)))

    start = i = size = 0
    while i < len(chains):
        group = _unread_group(chains[i])
        members = _in_place(group, chains, i) if group is not None \
            and group.where == (role, table_at, i) else None
        if group is not None and members is not None:
            close(start, i)
            parts.append((group, members))
            i += len(members)
            start, size = i, 0
            continue
        size += len(chains[i].rules) + 1  # a chain elsewhere is read (and stored anew)
        i += 1
        if size >= GROUP_RULES:
            close(start, i)
            start, size = i, 0
    close(start, len(chains))
    return parts


def _in_place(group: ChainGroup, chains: tuple[Chain, ...], at: int) -> list[Chain] | None:
    """The chains of ``group`` when they are ``chains[at:]``'s first ones, else None."""
    members = chains[at:at + len(group.chains)]
    if len(members) == len(group.chains) and all(
            a is b for a, b in zip(members, group.chains, strict=True)):
        return list(members)
    return None


def write_entry(out: BinaryIO, header: bytes, value: object, snap: Snapshot) -> None:
    """Write ``header`` then ``value`` pickled, the chains of ``snap``'s rulesets (``ROLES``)
    stored lazily (module docstring), ``snap`` without its ``Simulator`` (prepared again on
    use).

    Layout after ``header``: a line ``CRC N COUNT`` (CRC-32 in hex of the next ``N`` bytes,
    the number of blobs), ``COUNT`` blob lengths (8-byte little-endian), the pickle, then the
    blobs (pickle protocol 5's out-of-band buffers, each read in place: ``read_entry``)."""
    dispatch = _dispatch()
    stored: dict[int, tuple[Table, list[Part]]] = {}
    for role in ROLES:
        ruleset = getattr(snap, role)
        if ruleset is not None:
            for table_at, table in enumerate(ruleset.tables):
                stored[id(table)] = (table, _parts(table, role, table_at, dispatch))

    def reduce_table(table: Table) -> tuple[Any, ...]:
        found = stored.get(id(table))
        if found is None:
            return _reduce_slots(table)
        chains = [c for _, members in found[1] for c in members]
        spec = (tuple(c.name for c in chains), tuple(c.builtin for c in chains),
                tuple(c.policy for c in chains),
                tuple((group, i) for group, members in found[1] for i in range(len(members))))
        return (_lazy_table, (table.name, spec, (table.comments_before, table.comments_after,
                                                 table.comments_inside)))

    def reduce_group(group: ChainGroup) -> tuple[Any, ...]:
        assert group.blob is not None
        return (_chain_group, (pickle.PickleBuffer(group.blob), group.crc, len(group.chains),
                               group.where))

    def reduce_snapshot(snapshot: Snapshot) -> tuple[Any, ...]:
        reduced = _reduce_slots(snapshot)
        if reduced[-1] is not _set_slots:
            return reduced
        values = tuple(None if name == "_simulator" else
                       cache_derived.pack(v, dispatch) if name == "_derived" else v
                       for name, v in zip(_SLOTS[Snapshot], reduced[2], strict=True))
        return (*reduced[:2], values, *reduced[3:])

    def reduce_results(packed: cache_derived.Packed) -> tuple[Any, ...]:
        return (_derived_results, (tuple(
            (name, None if data is None else pickle.PickleBuffer(data), crc)
            for name, data, crc in packed.items),))

    blobs: list[pickle.PickleBuffer] = []
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5, buffer_callback=blobs.append)
    pickler.dispatch_table = {**dispatch, Table: reduce_table, LazyTable: reduce_table,
                              ChainGroup: reduce_group, Snapshot: reduce_snapshot,
                              cache_derived.Packed: reduce_results}
    pickler.dump(value)
    lengths = array.array("Q", (memoryview(b).nbytes for b in blobs))
    if sys.byteorder != "little":
        lengths.byteswap()
    body = lengths.tobytes() + buffer.getvalue()
    out.write(header + b"%08x %d %d\n" % (zlib.crc32(body), len(body), len(blobs)))
    out.write(body)
    for b in blobs:
        out.write(b)


def read_entry(data: bytes | mmap.mmap, start: int, *, name: str,
               recover: Callable[[], Snapshot] | None = None,
               freeze: bool = False) -> tuple[Any, EntryStore]:
    """The value ``write_entry`` wrote into ``data`` after its header (which ends at
    ``start``), its blobs left in ``data`` until a chain is read; and the entry's ``EntryStore``
    (``damaged`` once a blob failed its checksum). ``recover``: the snapshot parsed again, for
    such a blob; ``freeze``: ``gc.freeze()`` after reading each blob (the caller keeps the
    snapshot to the end). Raises ``CorruptEntry`` (sizes or checksum wrong) or what unpickling
    raises."""
    end = data.find(b"\n", start, start + 64)
    fields = bytes(data[start:end]).split() if end >= 0 else []
    if len(fields) != 3 or not all(f.isalnum() for f in fields):
        raise CorruptEntry("no layout line")
    try:
        crc, size, count = int(fields[0], 16), int(fields[1]), int(fields[2])
    except ValueError:
        raise CorruptEntry("no layout line") from None
    view = memoryview(data)
    body = view[end + 1:end + 1 + size]
    if len(body) != size or size < 8 * count or zlib.crc32(body) != crc:
        raise CorruptEntry("checksum")
    lengths = array.array("Q")
    lengths.frombytes(body[:8 * count])
    if sys.byteorder != "little":
        lengths.byteswap()
    at = end + 1 + size
    if at + sum(lengths) != len(view):
        raise CorruptEntry("size")
    blobs = []
    for n in lengths:
        blobs.append(view[at:at + n].toreadonly())
        at += n
    store = EntryStore(name, recover, freeze=freeze)
    _LOADING.append(store)
    try:
        value = Unpickler(io.BytesIO(body[8 * count:]), buffers=blobs).load()
    finally:
        _LOADING.pop()
    return value, store
