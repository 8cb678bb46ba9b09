"""Render audit findings: a table for people, JSON for scripts, SARIF 2.1.0 for code scanning.

JSON (DESIGN.md): ``{"findings": [...], "summary": {"total", "by_severity", "by_kind",
"snapshot", "judged_from", "notes"}}`` (``judged_from``: which tables and chains the input
shows, per family). SARIF follows OASIS SARIF 2.1.0 (errata 01): one ``reportingDescriptor``
per finding kind with its help text, results with level ``error`` (high), ``warning`` (medium)
or ``note`` (low), located at the blamed rule's file and line (relative to the snapshot folder,
``uriBaseId`` ``SNAPSHOT``) and, logically, at ``table/chain/index``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from natlens.audit.findings import KINDS, Finding, RuleRef, Severity
from natlens.exposure import ExposureMap, uncovered_dnat
from natlens.exposure_render import WIDTH, render_table
from natlens.model import TableName
from natlens.snapshot import Snapshot
from natlens.textsafe import json_text, terminal

__all__ = ["SARIF_SCHEMA", "SARIF_VERSION", "dumps", "judged_from", "to_json", "to_sarif",
           "to_table"]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = ("https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
                "sarif-schema-2.1.0.json")
_LEVEL = {Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note"}
_ORDER = (Severity.HIGH, Severity.MEDIUM, Severity.LOW)


def _notes(snapshot: Snapshot | None) -> list[str]:
    if snapshot is None:
        return []
    notes = list(snapshot.notes)
    for rs in (snapshot.ruleset, snapshot.ruleset6):
        notes.extend(n for n in rs.notes if n not in notes)
    return notes


def judged_from(snapshot: Snapshot | None) -> dict[str, Any]:
    """What the report rests on, per family with rules: ``{"ipv4": {"tables": [...] (shown),
    "partial": {table: [chains shown]}, "not_in_input": [tables], "incomplete": [{"table",
    "chain", "why"}], "text": "..."}}`` (from each ruleset's ``coverage``)."""
    if snapshot is None:
        return {}
    out: dict[str, Any] = {}
    for key, rs in (("ipv4", snapshot.ruleset), ("ipv6", snapshot.ruleset6)):
        if not rs.tables:
            continue
        cov = rs.coverage
        present = tuple(t.name for t in rs.tables)
        shown = [t.value for t in TableName if cov.shows_table(t) and (
            cov.tables is not None or t in present)]
        out[key] = {
            "tables": shown,
            "partial": {t.value: sorted(c) for t, c in cov.partial},
            "not_in_input": [t.value for t in TableName if not cov.shows_table(t)],
            "incomplete": [{"table": t.value, "chain": c, "why": why}
                           for t, c, why in cov.incomplete],
            "text": cov.describe(present),
        }
    return out


def to_json(findings: Sequence[Finding], snapshot: Snapshot | None = None, *,
            exposure: ExposureMap | None = None) -> dict[str, Any]:
    """``{"exposure": {...}, "findings": [...], "summary": {...}}`` (DESIGN.md), findings in
    the given order; ``exposure`` only when a map is given."""
    by_kind = Counter(f.kind for f in findings)
    by_severity = Counter(f.severity for f in findings)
    head: dict[str, Any] = {} if exposure is None else {"exposure": exposure.to_dict()}
    return {
        **head,
        "findings": [f.to_dict() for f in findings],
        "summary": {
            "total": len(findings),
            "by_severity": {s.value: by_severity.get(s, 0) for s in _ORDER},
            "by_kind": dict(sorted(by_kind.items())),
            "snapshot": snapshot.path if snapshot is not None else None,
            "judged_from": judged_from(snapshot),
            "notes": _notes(snapshot),
        },
    }


def _where(ref: RuleRef | None) -> str:
    if ref is None:
        return "-"
    where = ref.where if ref.index else f"{ref.where.removesuffix(' #0')} (chain)"
    where = terminal(where)
    if ref.source and ref.line:
        where += f"\n{terminal(Path(ref.source).name)}:{ref.line}"
    elif ref.json_path:  # an nft rule: its place in nft-ruleset.json
        where += f"\n{terminal(ref.json_path)}"
    return where


def _wrap(text: str, width: int, *, escape: bool = True, cut: bool = False) -> str:
    """``text`` escaped for a terminal (``natlens.textsafe.terminal``; not with ``escape``
    False: escaped already) and wrapped at blanks; a word longer than ``width`` stays whole,
    or with ``cut`` is cut into pieces of ``width`` characters."""
    words = (terminal(text) if escape else text).split(" ")
    if cut:
        words = [word[at:at + width] for word in words
                 for at in range(0, max(len(word), 1), width)]
    lines: list[str] = []
    line = ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return "\n".join(lines)


MIN_FINDING = 16
"""Narrowest finding column of ``to_table(columns=...)`` (a narrower terminal gets wider
lines rather than a column of single words)."""


def _fit(line: str, columns: int | None) -> str:
    """A line of the report outside its tables, wrapped at blanks to ``columns`` (continuation
    lines indented by two blanks); unchanged when ``columns`` is None."""
    if columns is None or len(line) <= columns:
        return line
    return _wrap(line, columns, escape=False).replace("\n", "\n  ")


def _wrap_lines(text: str, width: int) -> str:
    """Each line of ``text`` (escaped already) wrapped at blanks to ``width``."""
    return "\n".join(_wrap(line, width, escape=False) for line in text.split("\n"))


def _layout(findings: Sequence[Finding], columns: int) -> tuple[int, int]:
    """(where column, finding column) widths for tables of ``findings`` at most ``columns``
    wide: the where column at most a third of what the kind column leaves (wrapped at
    blanks: a ``file:line`` longer than that stays whole), the finding column the rest."""
    # tabulate's "simple" format: two blanks between columns, a column at least its header
    # and two more (tabulate.MIN_PADDING)
    kind = max([len("kind") + 2, *(len(f.kind) for f in findings)])
    room = columns - kind - 4
    limit = max(12, room // 3)
    where = max([len("where") + 2, *(len(line) for f in findings
                                 for line in _wrap_lines(_where(f.rule), limit).split("\n"))])
    return limit, max(MIN_FINDING, room - where)


def to_table(findings: Sequence[Finding], snapshot: Snapshot | None = None, *,
             width: int = 72, exposure: ExposureMap | None = None,
             name: str | None = None, columns: int | None = None) -> str:
    """Plain-text report: the exposure map when given (``natlens.exposure_render``; a map
    without rows, when the nat table has DNAT rules, as what it covers and its notes: the DNAT
    rules it does not cover), one table
    of findings per severity (high first), then a one-line summary. The first line names the
    snapshot: ``name`` when given (``example default-bridge-8080``), else its path.

    Each row names the kind, where the blamed rule is (``table chain #index`` and
    ``file:line``), the message with the rule's text, and the fix, wrapped at ``width``
    characters.

    ``columns`` (the terminal's width, ``natlens.termstyle.terminal_width``): every line at
    most that wide, tables, the exposure map and notes alike (``width`` is then what the
    kind and where columns leave, at least ``MIN_FINDING``); None: the finding column is
    ``width`` wide, the exposure map ``exposure_render.WIDTH``, notes are not wrapped.
    """
    out: list[str] = []
    where_limit: int | None = None
    cut = columns is not None  # a word wider than the finding column is cut, not overflowing
    if columns is not None:
        where_limit, width = _layout(findings, columns)
    if snapshot is not None:
        out.append(_fit(f"natlens report for {terminal(name or snapshot.path)}", columns))
        out.append("")
    map_width = columns if columns is not None else WIDTH
    if exposure is not None and exposure.rows:
        out.append(_fit("EXPOSURE (who can open a connection to each port, from where)",
                        columns))
        out.append(render_table(exposure, map_width))
        out.append("")
    elif exposure is not None and snapshot is not None and uncovered_dnat(snapshot) is not None:
        # a map without rows on input with DNAT rules (kube-proxy's NodePorts...): what it
        # covers and its notes, so that "no findings" below does not read as a sign-off on
        # ports the map never looked at
        out.append(render_table(exposure, map_width))
        out.append("")
    for severity in _ORDER:
        group = [f for f in findings if f.severity is severity]
        if not group:
            continue
        out.append(f"{severity.value.upper()} ({len(group)})")
        # imported when there is a finding to show: tabulate reads its own package metadata
        # when imported (importlib.metadata, ~0.1 s of a command)
        from tabulate import tabulate  # noqa: PLC0415

        rows = []
        for f in group:
            text = _wrap(f.message, width, cut=cut)
            about = [x for x in (f"container {f.container}" if f.container else "",
                                 f"{f.proto or 'port'}/{f.host_port}" if f.host_port else "")
                     if x]
            if about:
                label = f"[{terminal(', '.join(about))}]"
                if columns is not None:
                    label = _wrap(label, width, escape=False, cut=cut)
                text = f"{label}\n{text}"
            if f.rule is not None and f.rule.index:
                text += "\n" + _wrap(f"rule: {f.rule.text}", width, cut=cut)
            if f.fix:
                text += "\n" + _wrap(f"fix: {f.fix}", width, cut=cut)
            if f.cis:
                text += "\n" + _wrap(f"cis: {f.cis}", width, cut=cut)
            where = _where(f.rule)
            if where_limit is not None:
                where = _wrap_lines(where, where_limit)
            rows.append([f.kind, where, text])
        out.append(tabulate(rows, headers=["kind", "where", "finding"], tablefmt="simple",
                            disable_numparse=True))
        out.append("")
    counts = Counter(f.severity for f in findings)
    if findings:
        parts = ", ".join(f"{counts[s]} {s.value}" for s in _ORDER if counts[s])
        out.append(_fit(f"{len(findings)} finding{'' if len(findings) == 1 else 's'} "
                        f"({parts})", columns))
    else:
        out.append("no findings")
    for key, part in judged_from(snapshot).items():
        out.append(_fit(f"judged from ({'IPv4' if key == 'ipv4' else 'IPv6'}): "
                        f"{terminal(part['text'])}", columns))
    out.extend(_fit(f"note: {terminal(n)}", columns) for n in _notes(snapshot))
    return "\n".join(out) + "\n"


def _rule_id(kind: str) -> str:
    return "".join(part.capitalize() for part in kind.split("-"))


def _descriptors() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for kind, info in KINDS.items():
        rules.append({
            "id": kind,
            "name": _rule_id(kind),
            "shortDescription": {"text": info.title},
            "fullDescription": {"text": info.help},
            "help": {"text": info.help,
                     "markdown": f"**{info.title}** (`{kind}`)\n\n{info.help}"},
            "defaultConfiguration": {"level": "warning"},
        })
    return rules


def _artifact(ref: RuleRef, base: Path | None) -> dict[str, Any] | None:
    if not ref.source or ref.source.startswith("<"):
        return None
    path = Path(ref.source)
    if base is not None:
        try:
            rel = path.resolve().relative_to(base)
        except ValueError:
            pass
        else:
            return {"uri": rel.as_posix(), "uriBaseId": "SNAPSHOT"}
    if path.is_absolute():
        return {"uri": path.as_uri()}
    return {"uri": path.as_posix()}


def _location(ref: RuleRef, base: Path | None) -> dict[str, Any]:
    loc: dict[str, Any] = {}
    artifact = _artifact(ref, base)
    if artifact is not None:
        physical: dict[str, Any] = {"artifactLocation": artifact}
        if ref.line:
            physical["region"] = {"startLine": ref.line}
        loc["physicalLocation"] = physical
    name = f"{ref.table}/{ref.chain}" + (f"/{ref.index}" if ref.index else "")
    if ref.family == "ipv6":
        name = f"ip6/{name}"
    loc["logicalLocations"] = [{"fullyQualifiedName": name, "name": ref.chain,
                                "kind": "object" if ref.index else "namespace"}]
    loc["message"] = {"text": f"{ref.where}: {ref.text}"}
    return loc


def _base(snapshot: Snapshot | None) -> Path | None:
    if snapshot is None or snapshot.path.startswith("<") or snapshot.path == "-":
        return None
    path = Path(snapshot.path).resolve()
    return path if path.is_dir() else path.parent


def to_sarif(findings: Sequence[Finding], snapshot: Snapshot | None = None,
             *, version: str = "0.1.0") -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run of tool ``natlens``."""
    kinds = list(KINDS)
    base = _base(snapshot)
    results: list[dict[str, Any]] = []
    for f in findings:
        text = f.message if f.rule is None else f"{f.rule.where}: {f.message}"
        if f.fix:
            text += f"{'' if text.endswith(('.', '!', '?')) else '.'} Fix: {f.fix}"
        result: dict[str, Any] = {
            "ruleId": f.kind,
            "ruleIndex": kinds.index(f.kind),
            "level": _LEVEL[f.severity],
            "message": {"text": text},
            "properties": {k: v for k, v in (
                ("severity", f.severity.value), ("proto", f.proto), ("host_port", f.host_port),
                ("container", f.container), ("fix", f.fix), ("cis", f.cis),
                ("packet", None if f.packet is None else dict(f.packet))) if v is not None},
        }
        if f.rule is not None:
            result["locations"] = [_location(f.rule, base)]
            result["partialFingerprints"] = {
                "natlensRule/v1": f"{f.kind}:{f.rule.family}:{f.rule.table}:{f.rule.chain}:"
                                  f"{f.rule.text}"}
        if f.related:
            result["relatedLocations"] = [
                {"id": i, **_location(r, base)} for i, r in enumerate(f.related, 1)]
        results.append(result)
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "natlens", "version": version, "rules": _descriptors()}},
        "results": results,
        "columnKind": "unicodeCodePoints",
    }
    if base is not None:
        run["originalUriBaseIds"] = {"SNAPSHOT": {"uri": base.as_uri() + "/"}}
    notes = _notes(snapshot)
    if notes:
        run["invocations"] = [{
            "executionSuccessful": True,
            "toolExecutionNotifications": [{"message": {"text": n}, "level": "note"}
                                           for n in notes],
        }]
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def dumps(data: dict[str, Any]) -> str:
    """JSON text as the CLI prints it (2-space indent, trailing newline); values exact, lone
    surrogates as ``\\uXXXX`` escapes so the text encodes as UTF-8."""
    return json_text(json.dumps(data, indent=2, ensure_ascii=False)) + "\n"
