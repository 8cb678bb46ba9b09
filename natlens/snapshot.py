"""Snapshot bundle: a folder of plain command outputs, or one rule file, loaded as a Snapshot.

Folder layout (DESIGN.md): ``iptables-save.txt`` (required), ``ip6tables-save.txt``,
``docker-containers.json``, ``docker-networks.json``, ``ip-addr.json``, ``ip-route.json``,
``meta.json`` (all optional). A single file may hold iptables-save text, ``iptables -S`` output or
an ``iptables -L -n`` listing; its format is detected from its first meaningful line.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from natlens.capture_encoding import meta_notes
from natlens.docker import Inventory
from natlens.errors import SnapshotError, UsageError
from natlens.inputs import decode_text, read_bytes, read_json
from natlens.model import Family, Ruleset
from natlens.names import check_interface_name
from natlens.netfilter.engine import Simulator
from natlens.netfilter.host import Host
from natlens.netfilter.nftcomplete import completion_notes
from natlens.nft import NftRuleset
from natlens.nft import loads as nft_loads
from natlens.nftconvert import looks_like_nft_text, nft_text_to_json
from natlens.parse.detect import detect_format, load_rules
from natlens.parse.hostfiles import Listener, parse_ss, parse_sysctl
from natlens.parse.prompt import strip_nft_prompt
from natlens.schemas import validate
from natlens.snapshot_checks import (
    check_family_header,
    check_regular_files,
    folder_entries,
    is_folder,
    require_nft_tables,
    require_rules,
    rules_mistake,
)
from natlens.sysctls import READ as READ_SYSCTLS
from natlens.sysctls import kernel_value

__all__ = [
    "SNAPSHOT_FILES", "Snapshot", "detect_format", "load", "load_rules", "read_text",
    "STATED_ADDRESSES", "with_stated_host",
]

STATED_ADDRESSES = "host-addr"
"""The pseudo interface that holds the addresses given with ``--host-addr`` (no interface)."""

SNAPSHOT_FILES = {
    "iptables": "iptables-save.txt",
    "ip6tables": "ip6tables-save.txt",
    "containers": "docker-containers.json",
    "networks": "docker-networks.json",
    "addresses": "ip-addr.json",
    "routes": "ip-route.json",
    "meta": "meta.json",
    "other_backend": "iptables-save.other-backend.txt",
    "other_backend6": "ip6tables-save.other-backend.txt",
    "legacy": "iptables-legacy-save.txt",
    "legacy6": "ip6tables-legacy-save.txt",
    "nft_backend": "iptables-nft-save.txt",
    "nft_backend6": "ip6tables-nft-save.txt",
    "nft": "nft-ruleset.json",
    "routes6": "ip-route6.json",
    "sockets": "ss.txt",
    "sysctl": "sysctl.txt",
}
"""Every file a snapshot folder may hold (``other_backend*`` is the name natlens 0.1 wrote the
other backend's dumps under; ``legacy*`` / ``nft_backend*`` are the names DESIGN.md gives)."""

OTHER_BACKEND_FILES = {
    "legacy": ("legacy", "legacy6"),
    "nf_tables": ("nft_backend", "nft_backend6"),
}
"""``SNAPSHOT_FILES`` keys of the dumps of each backend when it is not the main one."""


_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything natlens knows about one host.

    ``addresses``, ``routes``, ``containers`` and ``networks`` hold the parsed JSON of the
    snapshot's files (None when the file is absent). ``notes`` says what was missing or assumed.
    """

    ruleset: Ruleset
    ruleset6: Ruleset = field(default_factory=lambda: Ruleset(Family.IPV6))
    path: str = "<string>"
    addresses: list[Any] | None = None
    routes: list[Any] | None = None
    containers: list[Any] | None = None
    networks: list[Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    inventory: Inventory | None = None
    """Containers and networks as Docker reported them (None without Docker data)."""
    other_backend: Ruleset | None = None
    """Rules found in the backend iptables does not point at (legacy vs nf_tables), if any."""
    other_backend6: Ruleset | None = None
    other_backend_name: str | None = None
    """The other backend (``legacy`` or ``nf_tables``) when its dumps were read."""
    routes6: list[Any] | None = None
    """``ip -j -6 route show`` (``ip-route6.json``), None when absent."""
    sockets: tuple[Listener, ...] | None = None
    """Listening sockets from ``ss.txt`` (``ss -ltnup``), None when absent."""
    sysctl: Mapping[str, str] = field(default_factory=dict)
    """Kernel switches: ``sysctl.txt`` over ``meta.json``'s ``sysctl`` object."""
    nft: NftRuleset | None = None
    """Native nftables (``nft-ruleset.json``, ``nft -j list ruleset``), None when absent."""
    nft_json: str | None = field(default=None, repr=False, compare=False)
    """The JSON text ``nft`` was read from (``natlens verify`` loads it with ``nft -j -f``)."""
    _host: Host | None = field(default=None, init=False, repr=False, compare=False)
    _simulator: Simulator | None = field(default=None, init=False, repr=False, compare=False)
    _derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __getstate__(self) -> list[Any]:
        """What ``pickle`` and ``copy`` keep: every field but the prepared simulator (rules
        compiled to closures, which pickle cannot store; made again on first use)."""
        return [None if f.name == "_simulator" else getattr(self, f.name) for f in fields(self)]

    def derived(self, name: str, compute: Callable[[Snapshot], _T]) -> _T:
        """``compute(self)``, computed once per ``name`` and kept: facts over every rule that a
        command needs (asked through ``natlens.derived``: ``natlens.trace_hints``, the
        simulator). The snapshot cache stores them with the
        snapshot, so a warm command does not read every chain again. ``compute`` must depend
        on the snapshot only (``dataclasses.replace`` gives a snapshot without them); ``name``
        must say everything else the result depends on (options, a version of its shape).
        A cached snapshot reads a stored result on first use (``natlens.cache_derived``: a
        ``KeyError`` there means not stored or unreadable, so computed again)."""
        try:
            found: _T = self._derived[name]
        except KeyError:
            found = compute(self)
            self._derived[name] = found
        return found

    def derived_names(self) -> frozenset[str]:
        """The names ``derived`` has computed so far."""
        return frozenset(self._derived)

    @property
    def host(self) -> Host:
        """Host addresses, interfaces and routes (derived, with assumptions, when files lack);
        built on first use and kept."""
        if self._host is None:
            object.__setattr__(self, "_host", Host.from_snapshot(self))
        assert self._host is not None
        return self._host

    @property
    def simulator(self) -> Simulator:
        """The snapshot's ``Simulator`` (rules prepared on first use and kept for later
        packets)."""
        if self._simulator is None:
            object.__setattr__(self, "_simulator", Simulator.from_snapshot(self))
        assert self._simulator is not None
        return self._simulator

    @property
    def backend(self) -> str | None:
        """The backend of the main dumps: ``nf_tables``, ``legacy``, or None when unknown."""
        b = self.meta.get("iptables_backend")
        if isinstance(b, str) and b:
            return b
        return self.ruleset.backend or self.ruleset6.backend

    def rules_for(self, family: Family) -> Ruleset:
        """The ruleset of ``family`` (IPv6 packets walk the ip6tables rules)."""
        return self.ruleset6 if family is Family.IPV6 else self.ruleset


def read_text(path: str | Path, *, regular: bool = False) -> tuple[str, str]:
    """Read a rule file (``-`` is standard input) → (text, name used in messages), within the
    bounds of ``natlens.inputs`` (size limit, binary refused; ``regular``: only a regular file,
    for the files of a snapshot folder). Raises ``SnapshotError``."""
    data, name = read_bytes(path, regular=regular)
    return decode_text(data, name), name


def _read_json(path: Path, key: str) -> Any:
    """The JSON of snapshot file ``key``, decoded within bounds and checked against its schema
    (``natlens.schemas``). Raises ``SnapshotError`` / ``SnapshotJsonError``."""
    data = read_json(path, regular=True)
    validate(key, data, source=str(path))
    return data


def _load_folder(folder: Path, strict: bool, restore_flush: bool = False,
                 allow_empty: bool = False) -> Snapshot:
    present = folder_entries(folder)
    main = folder / SNAPSHOT_FILES["iptables"]
    if main.name not in present:
        raise SnapshotError(f"{folder}: not a snapshot folder (no {SNAPSHOT_FILES['iptables']})")
    check_regular_files(folder, present & set(SNAPSHOT_FILES.values()))
    notes: list[str] = []
    text, name = read_text(main, regular=True)
    check_family_header(text, name, Family.IPV4)
    ruleset = load_rules(text, source=name, strict=strict, family=Family.IPV4,
                         restore_flush=restore_flush, saved=True)
    six = folder / SNAPSHOT_FILES["ip6tables"]
    if six.name in present:
        text6, name6 = read_text(six, regular=True)
        check_family_header(text6, name6, Family.IPV6)
        ruleset6 = load_rules(text6, source=name6, strict=strict, family=Family.IPV6,
                              restore_flush=restore_flush, saved=True)
    else:
        ruleset6 = Ruleset(Family.IPV6, source=str(six))
        notes.append(f"{SNAPSHOT_FILES['ip6tables']} missing: no IPv6 rules analysed")
    data: dict[str, Any] = {}
    for key in ("addresses", "routes", "containers", "networks", "meta"):
        path = folder / SNAPSHOT_FILES[key]
        if path.name in present:
            data[key] = _read_json(path, key)
        elif key != "meta":
            notes.append(f"{SNAPSHOT_FILES[key]} missing")
    meta = data.get("meta", {})
    backend = meta.get("iptables_backend") or ruleset.backend
    other_name, others = _read_other_backends(folder, backend, meta, notes)
    routes6 = _read_json(folder / SNAPSHOT_FILES["routes6"], "routes") \
        if SNAPSHOT_FILES["routes6"] in present else None
    nft, nft_text = None, ""
    if SNAPSHOT_FILES["nft"] in present:
        nft_text, nft_name = read_text(folder / SNAPSHOT_FILES["nft"], regular=True)
        nft = nft_loads(nft_text, source=nft_name, strict=strict)
        notes.extend(nft.warnings)  # lenient: statements kept opaque, objects left out
    sockets = None
    if SNAPSHOT_FILES["sockets"] in present:
        ss_text, ss_name = read_text(folder / SNAPSHOT_FILES["sockets"], regular=True)
        sockets = parse_ss(ss_text, source=ss_name)
    sysctl = dict(meta["sysctl"]) if isinstance(meta.get("sysctl"), dict) else {}
    _check_sysctls(sysctl, str(folder / SNAPSHOT_FILES["meta"]))
    if SNAPSHOT_FILES["sysctl"] in present:
        sc_text, sc_name = read_text(folder / SNAPSHOT_FILES["sysctl"], regular=True)
        sysctl.update(parse_sysctl(sc_text, source=sc_name))
    inventory = None
    if "containers" in data or "networks" in data:
        inventory = Inventory.from_json(data.get("containers") or [], data.get("networks") or [],
                                        meta, source=str(folder))
    # A host whose firewall is all native nftables (Docker 29's nftables backend, firewalld
    # without Docker) has an empty iptables-save: its nft tables are the rules.
    empty = None if nft is not None and nft.tables else require_rules(
        (ruleset, ruleset6, *(r for r in others if r is not None)), name, text=text,
        allow_empty=allow_empty)
    if empty:
        notes.append(empty)
    if backend:
        notes.append(f"rules read from the {backend} backend")
    if nft is not None:  # chains a dump shows in part, completed from nft-ruleset.json
        notes.extend(completion_notes(nft, backend, (ruleset, ruleset6, others[0], others[1])))
    notes.extend(meta_notes(meta))  # bytes natlens snapshot escaped, nft tables it lost
    return Snapshot(
        ruleset=ruleset,
        ruleset6=ruleset6,
        path=str(folder),
        addresses=data.get("addresses"),
        routes=data.get("routes"),
        containers=data.get("containers"),
        networks=data.get("networks"),
        meta=meta,
        notes=tuple(notes),
        inventory=inventory,
        other_backend=others[0],
        other_backend6=others[1],
        other_backend_name=other_name,
        routes6=routes6,
        sockets=sockets,
        sysctl={k: str(v) for k, v in sysctl.items() if v is not None},
        nft=nft,
        nft_json=nft_text if nft is not None else None,
    )


def _read_other_backends(folder: Path, backend: str | None, meta: Mapping[str, Any],
                         notes: list[str]) -> tuple[str | None, tuple[Ruleset | None, ...]]:
    """The other backend's dumps: ``iptables-legacy-save.txt`` & co. when the main backend is
    nf_tables, ``iptables-nft-save.txt`` & co. when it is legacy (either when unknown), else
    the ``*.other-backend.txt`` files older natlens versions wrote. → (backend, (v4, v6))."""
    candidates: list[tuple[str | None, tuple[str, str]]] = [
        (b, keys) for b, keys in OTHER_BACKEND_FILES.items() if b != backend]
    old = meta.get("other_backend")
    candidates.append((old if isinstance(old, str) and old else None,
                       ("other_backend", "other_backend6")))
    for name, keys in candidates:
        paths = [folder / SNAPSHOT_FILES[k] for k in keys]
        if not any(os.path.lexists(p) for p in paths):  # present, even if unusable: read it
            continue
        rulesets: list[Ruleset | None] = []
        for p, fam in zip(paths, (Family.IPV4, Family.IPV6), strict=True):
            if os.path.lexists(p):
                text_o, name_o = read_text(p, regular=True)
                rulesets.append(load_rules(text_o, source=name_o, strict=False, family=fam,
                                           saved=True))
            else:
                rulesets.append(None)
        found = name or next((r.backend for r in rulesets if r is not None and r.backend),
                             None)
        if found is None and backend in OTHER_BACKEND_FILES:
            found = "legacy" if backend == "nf_tables" else "nf_tables"
        if found is not None and found == backend:
            notes.append(f"{paths[0].name}: same backend ({backend}) as the main dump: ignored")
            continue
        return found, tuple(rulesets)
    return None, (None, None)


def load(path: str | Path, *, strict: bool = True, table: str | None = None,
         restore_flush: bool = False, allow_empty: bool = False) -> Snapshot:
    """Load a snapshot folder, a single rule file (save, ``-S`` or ``-L`` listing), or ``-``.

    ``table`` names the table of a single ``iptables -S`` / ``-L`` file (inferred when omitted).
    ``restore_flush``: a table given twice is replaced by its last section (iptables-restore
    without ``--noflush``) instead of merged.
    ``allow_empty``: accept input with no table at all (else ``EmptyInputError``: an empty dump
    is nearly always a failed capture).
    Raises ``SnapshotError`` for unusable files (``SnapshotJsonError`` for JSON that does not fit
    ``natlens.schemas``) and ``ParseError`` for bad rule text.
    """
    p = Path(path)
    if str(path) != "-" and is_folder(p):
        if table is not None:
            raise SnapshotError(f"{p}: a table (--input-table) applies to a single -S or -L "
                                "file, not a folder")
        return _load_folder(p, strict, restore_flush, allow_empty)
    text, name = read_text(path)
    text, prompt = strip_nft_prompt(text)  # "$ sudo nft -j list ruleset" pasted above it
    mistake = rules_mistake(text, name)
    if mistake is not None:
        raise SnapshotError(f"{name}: {mistake}")
    if text.lstrip().startswith("{") or looks_like_nft_text(text):
        skipped = () if prompt is None else (
            f"{name}: shell prompt line skipped (the command the text came from): {prompt}",)
        return _load_nft_file(text, name, allow_empty=allow_empty, strict=strict,
                              notes=skipped)
    ruleset = load_rules(text, source=name, strict=strict, table=table,
                         restore_flush=restore_flush)
    empty = require_rules((ruleset,), name, text=text, allow_empty=allow_empty)
    notes = ["single rule file: no host or Docker data", *([empty] if empty else [])]
    if ruleset.backend:
        notes.append(f"rules read from the {ruleset.backend} backend")
    if ruleset.legacy_tables_present:
        notes.append("iptables-nft warns that iptables-legacy tables exist too: "
                     "run iptables-legacy-save to see them")
    if ruleset.family is Family.IPV6:
        return Snapshot(ruleset=Ruleset(Family.IPV4, source=name), ruleset6=ruleset, path=name,
                        notes=(*notes, "IPv6 rules only"))
    return Snapshot(ruleset=ruleset, path=name, notes=tuple(notes))


def _load_nft_file(text: str, name: str, *, allow_empty: bool = False,
                   strict: bool = True, notes: Sequence[str] = ()) -> Snapshot:
    """A single nftables file: ``nft -j list ruleset`` JSON, or ``nft list ruleset`` text
    converted to JSON by the host's ``nft`` in a scratch namespace (``natlens.nftconvert``);
    ``notes`` come first in the snapshot's. Raises ``EmptyInputError`` when it holds no table
    (unless ``allow_empty``)."""
    notes = [*notes, "single nftables file: no host or Docker data, no iptables-legacy tables"]
    if not text.lstrip().startswith("{"):
        text = nft_text_to_json(text, name)
        notes.append("nft text converted to JSON by this host's nft")
    nft = nft_loads(text, source=name, strict=strict)
    notes.extend(nft.warnings)  # lenient: statements kept opaque, objects left out
    empty = require_nft_tables(len(nft.tables), name, allow_empty=allow_empty)
    if empty:
        notes.append(empty)
    return Snapshot(ruleset=Ruleset(Family.IPV4, source=name),
                    ruleset6=Ruleset(Family.IPV6, source=name), path=name, notes=tuple(notes),
                    nft=nft, nft_json=text)


def _check_sysctls(sysctl: Mapping[str, object], source: str) -> None:
    """Raise ``SnapshotError`` ``source: $.sysctl['NAME']: reason`` for the first value in
    ``meta.json``'s ``sysctl`` of a switch natlens reads that the kernel would refuse
    (``natlens.sysctls.kernel_value``: ``sysctl -w`` fails); None values (the host had no such
    key) pass."""
    for key, value in sysctl.items():
        if value is not None and READ_SYSCTLS.fullmatch(str(key)):
            try:
                kernel_value(str(key), value)
            except ValueError as exc:
                raise SnapshotError(f"{source}: $.sysctl[{str(key)[:80]!r}]: {exc}") from None


def with_stated_host(snap: Snapshot, *, addresses: Sequence[str] = (),
                     interfaces: Sequence[str] = ()) -> Snapshot:
    """``snap`` with host addresses the user states (``--host-addr IP``, ``--iface
    NAME=IP/PREFIX``) added to its ``ip -j addr`` data, as ``ip -j addr`` would show them.

    An address without an interface is put on a pseudo-interface ``host-addr``. Once stated,
    the addresses are the host's known addresses (a destination outside them is not local).
    Raises ``UsageError`` for a value that is not an address or ``NAME=IP/PREFIX``, and
    ``InterfaceNameError`` (a ``UsageError`` and a ``ValueError``) for a NAME the kernel would
    refuse as a device name (``natlens.names.interface_problem``, the CLI's rule).
    """
    if not addresses and not interfaces:
        return snap
    entries: dict[str, list[dict[str, Any]]] = {}
    for value in interfaces:
        name, sep, cidr = value.partition("=")
        if not sep or not name:
            raise UsageError(f"--iface {value!r}: expected NAME=IP/PREFIX (eth0=192.0.2.10/24)")
        check_interface_name(name, f"--iface {value!r}: interface")
        try:
            iface = ipaddress.ip_interface(cidr)
        except ValueError:
            raise UsageError(f"--iface {value!r}: {cidr!r} is not IP/PREFIX") from None
        entries.setdefault(name, []).append(_addr_info(iface))
    for value in addresses:
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            raise UsageError(f"--host-addr {value!r}: not an IP address") from None
        entries.setdefault(STATED_ADDRESSES, []).append(
            _addr_info(ipaddress.ip_interface(f"{ip}/{ip.max_prefixlen}")))
    data = [dict(entry) for entry in snap.addresses or ()]
    for name, infos in entries.items():
        for entry in data:
            if entry.get("ifname") == name:
                entry["addr_info"] = [*(entry.get("addr_info") or ()), *infos]
                break
        else:
            data.append({"ifname": name, "addr_info": infos})
    stated = ", ".join([*interfaces, *addresses])
    return replace(snap, addresses=data, notes=(*snap.notes, f"host addresses stated on the "
                                                f"command line: {stated}"))


def _addr_info(iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> dict[str, Any]:
    return {"family": "inet" if iface.version == 4 else "inet6", "local": str(iface.ip),
            "prefixlen": iface.network.prefixlen}
