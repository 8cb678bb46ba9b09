"""Snapshot bundle: a folder of plain command outputs, or one rule file, loaded as a Snapshot.

Folder layout (DESIGN.md): ``iptables-save.txt`` (required), ``ip6tables-save.txt``,
``docker-containers.json``, ``docker-networks.json``, ``ip-addr.json``, ``ip-route.json``,
``meta.json`` (all optional). A single file may hold iptables-save text, ``iptables -S`` output or
an ``iptables -L -n`` listing; its format is detected from its first meaningful line.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from natlens.docker import Inventory
from natlens.errors import SnapshotError
from natlens.model import Family, Ruleset
from natlens.parse.listing import parse_listing
from natlens.parse.save import parse_save

if TYPE_CHECKING:
    from natlens.netfilter.host import Host

__all__ = ["SNAPSHOT_FILES", "Snapshot", "detect_format", "load", "load_rules", "read_text"]

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
}


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

    @property
    def host(self) -> Host:
        """Host addresses, interfaces and routes (derived, with assumptions, when files lack)."""
        from natlens.netfilter.host import Host  # noqa: PLC0415  (netfilter imports this module)

        return Host.from_snapshot(self)

    def rules_for(self, family: Family) -> Ruleset:
        """The ruleset of ``family`` (IPv6 packets walk the ip6tables rules)."""
        return self.ruleset6 if family is Family.IPV6 else self.ruleset


def read_text(path: str | Path) -> tuple[str, str]:
    """Read a rule file (``-`` is standard input) → (text, name used in messages)."""
    if str(path) == "-":
        return sys.stdin.read(), "<stdin>"
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise SnapshotError(f"{p}: no such file or directory") from None
    except IsADirectoryError:
        raise SnapshotError(f"{p}: is a directory") from None
    except OSError as exc:
        raise SnapshotError(f"{p}: cannot read: {exc.strerror}") from None
    if b"\0" in data[:4096]:
        raise SnapshotError(f"{p}: binary file, not rule text")
    return data.decode("utf-8", errors="replace"), str(p)


def detect_format(text: str) -> str:
    """``"save"`` (iptables-save, restore input or ``-S``) or ``"listing"`` (``iptables -L``)."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("Chain ", "target ", "pkts ")):
            return "listing"
        return "save"
    return "save"


def load_rules(
    text: str,
    *,
    source: str = "<string>",
    strict: bool = True,
    family: Family | str | None = None,
    table: str | None = None,
) -> Ruleset:
    """Parse rule text of any supported format (detected) into a Ruleset."""
    if detect_format(text) == "listing":
        return parse_listing(text, source=source, family=family, table=table)
    return parse_save(text, source=source, strict=strict, family=family, table=table)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read: {exc.strerror}") from None


def _load_folder(folder: Path, strict: bool) -> Snapshot:
    main = folder / SNAPSHOT_FILES["iptables"]
    if not main.is_file():
        raise SnapshotError(f"{folder}: not a snapshot folder (no {SNAPSHOT_FILES['iptables']})")
    notes: list[str] = []
    text, name = read_text(main)
    ruleset = load_rules(text, source=name, strict=strict, family=Family.IPV4)
    six = folder / SNAPSHOT_FILES["ip6tables"]
    if six.is_file():
        text6, name6 = read_text(six)
        ruleset6 = load_rules(text6, source=name6, strict=strict, family=Family.IPV6)
    else:
        ruleset6 = Ruleset(Family.IPV6, source=str(six))
        notes.append(f"{SNAPSHOT_FILES['ip6tables']} missing: no IPv6 rules analysed")
    data: dict[str, Any] = {}
    for key in ("addresses", "routes", "containers", "networks", "meta"):
        path = folder / SNAPSHOT_FILES[key]
        if path.is_file():
            data[key] = _read_json(path)
        elif key != "meta":
            notes.append(f"{SNAPSHOT_FILES[key]} missing")
    for key in ("addresses", "routes", "containers", "networks"):
        if key in data and not isinstance(data[key], list):
            raise SnapshotError(f"{folder / SNAPSHOT_FILES[key]}: expected a JSON list")
    meta = data.get("meta", {})
    if not isinstance(meta, dict):
        raise SnapshotError(f"{folder / SNAPSHOT_FILES['meta']}: expected a JSON object")
    others: dict[str, Ruleset | None] = {}
    for key, fam in (("other_backend", Family.IPV4), ("other_backend6", Family.IPV6)):
        path = folder / SNAPSHOT_FILES[key]
        others[key] = None
        if path.is_file():
            text_o, name_o = read_text(path)
            others[key] = load_rules(text_o, source=name_o, strict=False, family=fam)
    inventory = None
    if "containers" in data or "networks" in data:
        inventory = Inventory.from_json(data.get("containers") or [], data.get("networks") or [],
                                        meta, source=str(folder))
    backend = meta.get("iptables_backend") or ruleset.backend
    if backend:
        notes.append(f"rules read from the {backend} backend")
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
        other_backend=others["other_backend"],
        other_backend6=others["other_backend6"],
    )


def load(path: str | Path, *, strict: bool = True, table: str | None = None) -> Snapshot:
    """Load a snapshot folder, a single rule file (save, ``-S`` or ``-L`` listing), or ``-``.

    ``table`` names the table of a single ``iptables -S`` / ``-L`` file (inferred when omitted).
    Raises ``SnapshotError`` for unusable files and ``ParseError`` for bad rule text.
    """
    p = Path(path)
    if str(path) != "-" and p.is_dir():
        if table is not None:
            raise SnapshotError(f"{p}: a table (--input-table) applies to a single -S or -L "
                                "file, not a folder")
        return _load_folder(p, strict)
    text, name = read_text(path)
    ruleset = load_rules(text, source=name, strict=strict, table=table)
    notes = ["single rule file: no host or Docker data"]
    if ruleset.backend:
        notes.append(f"rules read from the {ruleset.backend} backend")
    if ruleset.legacy_tables_present:
        notes.append("iptables-nft warns that iptables-legacy tables exist too: "
                     "run iptables-legacy-save to see them")
    if ruleset.family is Family.IPV6:
        return Snapshot(ruleset=Ruleset(Family.IPV4, source=name), ruleset6=ruleset, path=name,
                        notes=(*notes, "IPv6 rules only"))
    return Snapshot(ruleset=ruleset, path=name, notes=tuple(notes))
