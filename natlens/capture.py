"""Capture this host into a snapshot folder (DESIGN.md "Snapshot bundle"); strictly read-only.

Runs only commands that read: ``iptables-save -c`` / ``ip6tables-save -c`` through the configured
alternative (its backend, ``nf_tables`` or ``legacy``, is what ``iptables --version`` prints in
parentheses), the same for the *other* backend (``iptables-legacy-save`` or ``iptables-nft-save``)
to notice rules left there (a split backend: the kernel runs both rule sets; saved as
``iptables-legacy-save.txt`` or ``iptables-nft-save.txt``), ``ip -j addr show``,
``ip -j route show`` and ``ip -j -6 route show``, ``nft -j list ruleset`` (native nftables),
``ss -ltnup``, the kernel switches from /proc/sys (``sysctl.txt``), and the Docker Engine API's
inspect calls. Docker, nft and ss are optional: without them their files are left out and
``meta.json`` says why.

Outputs are read as bytes: a byte that is not UTF-8 (a Latin-1 comment, chain or interface name,
kept by the kernel as bytes) is written as ``\\xNN`` and recorded in ``meta.json``'s ``non_utf8``
(``natlens.capture_encoding``). When ``nft -j list ruleset`` fails (nft 1.0.6 aborts on a chain
name or ``iifname`` that is not UTF-8), each table is listed alone and those that fail too are
named in ``nft_tables_missing``; rule comments ``nft -j`` leaves out for the same reason are read
from ``nft -a list ruleset``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from natlens.capture_encoding import (
    ESCAPE,
    Escaped,
    escape_json,
    escape_save,
    escape_text,
    meta_notes,
)
from natlens.docker import DockerError, connect, daemon_facts_live, inspect_live
from natlens.errors import CaptureError, NatlensError
from natlens.legacy_check import compare_counts, iptc_rule_counts
from natlens.parse.save import parse_save
from natlens.parse.tokens import split_lines
from natlens.snapshot import SNAPSHOT_FILES
from natlens.sysctls import switch

__all__ = ["OTHER_BACKEND_FILES", "CaptureResult", "capture", "has_rules", "iptables_backend"]

OTHER_BACKEND_FILES = {
    "iptables": "iptables-save.other-backend.txt",
    "ip6tables": "ip6tables-save.other-backend.txt",
}
"""Names natlens 0.1 wrote the other backend's dumps under (still read, and replaced by
``--force``); snapshots now use ``iptables-legacy-save.txt`` / ``iptables-nft-save.txt``."""

_OTHER_KEYS = {("legacy", "iptables"): "legacy", ("legacy", "ip6tables"): "legacy6",
               ("nf_tables", "iptables"): "nft_backend",
               ("nf_tables", "ip6tables"): "nft_backend6"}
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_TIMEOUT = 60
_BUILTIN_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})


@dataclass(frozen=True, slots=True)
class CaptureResult:
    """What ``capture`` wrote: the folder, file names in writing order, and notes."""

    directory: Path
    files: tuple[str, ...]
    meta: dict[str, Any] = field(hash=False)
    notes: tuple[str, ...] = ()


def _which(name: str) -> str | None:
    path = os.environ.get("PATH", os.defpath)
    extra = [d for d in _SBIN if d not in path.split(os.pathsep)]
    return shutil.which(name, path=os.pathsep.join([path, *extra]))


@dataclass(frozen=True, slots=True)
class _Ran:
    """A command's exit status, its output as bytes, its messages as text."""

    returncode: int
    stdout: bytes
    stderr: str


def _run(argv: Sequence[str]) -> _Ran:
    try:
        proc = subprocess.run(list(argv), capture_output=True, timeout=_TIMEOUT, check=False,
                              env={**os.environ, "LC_ALL": "C"})
        return _Ran(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))
    except subprocess.TimeoutExpired:
        raise CaptureError(f"{argv[0]}: no answer within {_TIMEOUT}s") from None
    except OSError as exc:
        raise CaptureError(f"{argv[0]}: cannot run: {exc.strerror}") from None


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _must(argv: Sequence[str]) -> bytes:
    proc = _run(argv)
    if proc.returncode != 0:
        why = _first_line(proc.stderr) or f"exit status {proc.returncode}"
        raise CaptureError(f"{' '.join(argv)} failed: {why}")
    return proc.stdout


def iptables_backend(version_line: str) -> tuple[str | None, str]:
    """``"iptables v1.8.9 (nf_tables)"`` → ``("1.8.9", "nf_tables")``.

    iptables before 1.8 prints no backend: it only has the legacy one.
    """
    m = re.search(r"v(\d+(?:\.\d+)*)", version_line)
    b = re.search(r"\((nf_tables|legacy)\)", version_line)
    return (m.group(1) if m else None), (b.group(1) if b else "legacy")


def has_rules(save_text: str) -> bool:
    """Whether iptables-save text holds anything besides empty built-in chains with ACCEPT.

    >>> has_rules("*filter\\n:INPUT ACCEPT [0:0]\\nCOMMIT\\n")
    False
    >>> has_rules("*filter\\n:INPUT DROP [0:0]\\nCOMMIT\\n")
    True
    >>> has_rules("*nat\\n[3:180] -A PREROUTING -j ACCEPT\\nCOMMIT\\n")
    True
    """
    for raw in split_lines(save_text):
        line = re.sub(r"^\[\d+:\d+\]\s*", "", raw.strip())  # ``-c`` puts counters first
        if line.startswith(("-A ", "-I ")):
            return True
        if line.startswith(":"):
            parts = line[1:].split()
            if parts and (parts[0] not in _BUILTIN_CHAINS or parts[1:2] not in (["ACCEPT"], [])):
                return True
    return False


def _prepare(directory: Path, force: bool) -> None:
    if directory.exists() and not directory.is_dir():
        raise CaptureError(f"{directory}: exists and is not a directory")
    if directory.is_dir():
        ours = {*SNAPSHOT_FILES.values(), *OTHER_BACKEND_FILES.values()}
        present = sorted(p.name for p in directory.iterdir())
        if present and not force:
            raise CaptureError(f"{directory}: not empty ({', '.join(present[:3])}"
                               f"{', ...' if len(present) > 3 else ''}); use --force to replace "
                               "an earlier snapshot")
        for name in present:
            if name in ours:
                (directory / name).unlink()
    else:
        try:
            directory.mkdir(parents=True)
        except OSError as exc:
            raise CaptureError(f"{directory}: cannot create: {exc.strerror}") from None


class _Escapes(dict[str, Escaped]):
    """What was escaped, by snapshot file name (``meta.json``'s ``non_utf8.files``)."""

    def save(self, data: bytes, name: str) -> str:
        """iptables-save output as UTF-8 text (``escape_save``)."""
        return self._keep(escape_save(data), name).text

    def text(self, data: bytes, name: str) -> str:
        """Other text output as UTF-8 (``escape_text``)."""
        return self._keep(escape_text(data), name).text

    def json(self, data: bytes, command: str, name: str) -> str:
        """JSON output re-indented (one long line from ``ip -j``) for readable diffs."""
        try:
            value, escaped = escape_json(data)
        except ValueError:
            raise CaptureError(f"{command} printed no JSON (iproute2 too old?)") from None
        self._keep(escaped, name)
        return json.dumps(value, indent=4) + "\n"

    def _keep(self, escaped: Escaped, name: str) -> Escaped:
        if escaped.count:
            self[name] = escaped
        return escaped

    def meta(self, notes: list[str]) -> dict[str, Any]:
        """``{"escape": "\\xNN", "files": {name: record}}``; a note per file."""
        record = {"escape": ESCAPE, "files": {n: e.record() for n, e in sorted(self.items())}}
        notes.extend(meta_notes({"non_utf8": record}))
        return record


def _write(directory: Path, name: str, text: str, written: list[str]) -> None:
    (directory / name).write_text(text, encoding="utf-8")
    written.append(name)


def _write_json(directory: Path, name: str, data: Any, written: list[str]) -> None:
    _write(directory, name, json.dumps(data, indent=4) + "\n", written)


def capture(directory: str | Path, *, force: bool = False, docker: bool = True,
            docker_client: Any = None) -> CaptureResult:
    """Write a snapshot of this host into ``directory`` (created when missing).

    Needs root (reading netfilter rules needs CAP_NET_ADMIN). ``docker=False`` skips the daemon.
    Raises ``CaptureError`` (one line) when not root, a required tool is missing or fails, or the
    folder is not empty (unless ``force``: then the snapshot files in it are replaced).
    """
    if os.geteuid() != 0:
        raise CaptureError("snapshot needs root (reading the kernel's netfilter "
                           "rules needs CAP_NET_ADMIN)")
    tools = {name: _which(name) for name in
             ("iptables", "iptables-save", "ip6tables", "ip6tables-save", "ip")}
    for required in ("iptables", "iptables-save", "ip"):
        if tools[required] is None:
            pkg = "iproute2" if required == "ip" else "iptables"
            raise CaptureError(f"snapshot needs {required}, which is not installed "
                               f"(install {pkg})")
    directory = Path(directory)
    notes: list[str] = []
    written: list[str] = []
    escapes = _Escapes()
    meta: dict[str, Any] = {
        "format": 1,
        "tool": "natlens 0.1.0",
        "time": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace(
            "+00:00", "Z"),
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
    }

    # Everything is read before the folder is touched, so a failure leaves no half snapshot.
    version_line = _first_line(_must([str(tools["iptables"]), "--version"]).decode(
        "utf-8", "replace"))
    version, backend = iptables_backend(version_line)
    save4 = escapes.save(_must([str(tools["iptables-save"]), "-c"]), SNAPSHOT_FILES["iptables"])
    save6: str | None = None
    backend6: str | None = None
    if tools["ip6tables-save"] and tools["ip6tables"]:
        backend6 = iptables_backend(_first_line(_must([str(tools["ip6tables"]), "--version"])
                                                .decode("utf-8", "replace")))[1]
        proc6 = _run([str(tools["ip6tables-save"]), "-c"])
        if proc6.returncode == 0:
            save6 = escapes.save(proc6.stdout, SNAPSHOT_FILES["ip6tables"])
        else:
            notes.append(f"ip6tables-save failed: {_first_line(proc6.stderr)}")
    else:
        notes.append("ip6tables-save not found: no IPv6 rules captured")
    meta.update(iptables_version=version, iptables_backend=backend,
                iptables_version_line=version_line, ip6tables_backend=backend6)
    meta["python_iptables"] = _python_iptables(backend, save4, notes)

    other = "legacy" if backend == "nf_tables" else "nf_tables"
    suffix = "legacy" if other == "legacy" else "nft"
    other_texts: dict[str, str] = {}
    other_rules: bool | None = None
    for fam in ("iptables", "ip6tables"):
        tool = _which(f"{fam}-{suffix}-save")
        if tool is None:
            notes.append(f"{fam}-{suffix}-save not found: the {other} backend was not checked")
            continue
        proc = _run([tool, "-c"])
        if proc.returncode != 0:
            notes.append(f"{fam}-{suffix}-save failed: {_first_line(proc.stderr)}")
            continue
        text = escapes.save(proc.stdout, SNAPSHOT_FILES[_OTHER_KEYS[(other, fam)]])
        found = has_rules(text)
        other_rules = bool(other_rules) or found
        if text.strip():
            other_texts[fam] = text
        if found:
            notes.append(f"the {other} backend holds {fam} rules too ({fam}-{suffix}-save): "
                         "the kernel applies both rule sets")
    other_files = {fam: SNAPSHOT_FILES[_OTHER_KEYS[(other, fam)]] for fam in other_texts}
    meta.update(other_backend=other, other_backend_has_rules=other_rules,
                other_backend_files=[other_files[f] for f in sorted(other_texts)])
    nft_dumps = {"ip": save4 if backend == "nf_tables" else other_texts.get("iptables"),
                 "ip6": save6 if backend6 == "nf_tables" else other_texts.get("ip6tables")}
    dumped = {f"{family} {name}" for family, text in nft_dumps.items() if text
              for name in re.findall(r"^\*(\S+)", text, re.MULTILINE)}
    extra = _capture_extra(tools["ip"], notes, escapes, meta, dumped)

    addr = escapes.json(_must([str(tools["ip"]), "-j", "addr", "show"]), "ip -j addr show",
                        SNAPSHOT_FILES["addresses"])
    route = escapes.json(_must([str(tools["ip"]), "-j", "route", "show"]), "ip -j route show",
                         SNAPSHOT_FILES["routes"])

    containers: list[Any] | None = None
    networks: list[Any] | None = None
    meta.update(docker_version=None, docker_api_version=None, userland_proxy=None,
                docker_iptables=None, docker_ip6tables=None)
    if docker:
        client = docker_client
        try:
            if client is None:
                client = connect()
            containers, networks = inspect_live(client)
            meta.update(daemon_facts_live(client).to_meta())
            meta["docker_api_version"] = getattr(getattr(client, "api", None), "api_version",
                                                 None)
        except DockerError as exc:
            notes.append(f"no Docker data: {exc}")
        finally:
            if docker_client is None and client is not None:
                client.close()
    else:
        notes.append("no Docker data: skipped (--no-docker)")
    meta["sysctl"] = _sysctls()
    meta["non_utf8"] = escapes.meta(notes)
    meta["notes"] = notes

    _prepare(directory, force)
    _write(directory, SNAPSHOT_FILES["iptables"], save4, written)
    if save6 is not None:
        _write(directory, SNAPSHOT_FILES["ip6tables"], save6, written)
    for fam, text in sorted(other_texts.items()):
        _write(directory, other_files[fam], text, written)
    if containers is not None and networks is not None:
        _write_json(directory, SNAPSHOT_FILES["containers"], containers, written)
        _write_json(directory, SNAPSHOT_FILES["networks"], networks, written)
    _write(directory, SNAPSHOT_FILES["addresses"], addr, written)
    _write(directory, SNAPSHOT_FILES["routes"], route, written)
    for key, text in extra.items():
        _write(directory, SNAPSHOT_FILES[key], text, written)
    _write_json(directory, SNAPSHOT_FILES["meta"], meta, written)
    return CaptureResult(directory=directory, files=tuple(written), meta=meta, notes=tuple(notes))


def _capture_extra(ip: str | None, notes: list[str], escapes: _Escapes,
                   meta: dict[str, Any], dumped: set[str]) -> dict[str, str]:
    """The optional files: ``nft -j list ruleset``, ``ip -j -6 route show``, ``ss -ltnup`` and
    the kernel switches as ``sysctl`` prints them (read from /proc/sys). A tool that is missing
    or fails leaves its file out, with a note. → ``{SNAPSHOT_FILES key: text}``."""
    out: dict[str, str] = {}
    nft = _which("nft")
    if nft is None:
        notes.append("nft not found: native nftables tables were not captured")
    else:
        try:
            ruleset = _nft_ruleset(nft, notes, meta, dumped)
            if ruleset is not None:
                ruleset = _nft_comments(nft, ruleset, notes, meta)
                out["nft"] = escapes.json(ruleset, "nft -j list ruleset", SNAPSHOT_FILES["nft"])
        except NatlensError as exc:
            notes.append(f"{exc} (nft built without JSON support?)")
    if ip is not None:
        proc = _run([ip, "-j", "-6", "route", "show"])
        if proc.returncode == 0:
            out["routes6"] = escapes.json(proc.stdout or b"[]", "ip -j -6 route show",
                                          SNAPSHOT_FILES["routes6"])
        else:
            notes.append(f"ip -j -6 route show failed: {_first_line(proc.stderr)}")
    ss = _which("ss")
    if ss is None:
        notes.append("ss not found: listening sockets were not captured")
    else:
        proc = _run([ss, "-ltnup"])
        if proc.returncode == 0:
            out["sockets"] = escapes.text(proc.stdout, SNAPSHOT_FILES["sockets"])
        else:
            notes.append(f"ss -ltnup failed: {_first_line(proc.stderr)}")
    out["sysctl"] = "".join(f"{name} = {value}\n" for name, value in _sysctls().items()
                            if value is not None)
    return out


_SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv6.conf.all.forwarding",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.ipv4.conf.all.route_localnet",
)


def _sysctls() -> dict[str, str | None]:
    """Kernel switches that change where packets go (None: not present, e.g. no br_netfilter).

    Forwarding off drops every forwarded packet; ``bridge-nf-call-iptables`` makes traffic between
    containers on one bridge traverse FORWARD (Docker turns it on for ICC off); ``route_localnet``
    (per interface too, listed when on) lets DNAT from 127.0.0.1 leave the host.
    """
    out: dict[str, str | None] = {}
    names = list(_SYSCTLS)
    conf = Path("/proc/sys/net/ipv4/conf")
    if conf.is_dir():
        for iface in sorted(p.name for p in conf.iterdir()):
            if iface not in ("all", "default"):
                key = f"net.ipv4.conf.{iface}.route_localnet"
                if switch(key, _read_sysctl(key)):  # any non-zero value is on (sysctls.py)
                    names.append(key)
    for name in names:
        out[name] = _read_sysctl(name)
    return out


def _read_sysctl(name: str) -> str | None:
    parts = name.split(".")
    try:
        return Path("/proc/sys", *parts).read_text().strip()
    except OSError:
        return None


_NFT_COMMENT = re.compile(rb'^\t\t.* comment "([^"]*)" # handle (\d+)$')


def _nft_comments(nft: str, ruleset: bytes, notes: list[str], meta: dict[str, Any]) -> bytes:
    """``ruleset`` (``nft -j`` output) with the rule comments that are not UTF-8, which
    ``nft -j`` leaves out (jansson refuses such strings; nft 1.0.6), put back from
    ``nft -a list ruleset`` (text: table at column 0, chain one tab in, rules two tabs in with
    ``# handle N`` last; a comment holds no ``"``, nft's scanner has no escape for it). The
    bytes are escaped with the rest (``_Escapes.json``); ``meta["nft_comments_restored"]``
    counts them."""
    text = _run([nft, "-a", "list", "ruleset"])
    if text.returncode != 0:
        return ruleset
    found: dict[tuple[bytes, bytes, bytes, int], bytes] = {}
    table: tuple[bytes, bytes] | None = None
    chain: bytes | None = None
    for line in text.stdout.split(b"\n"):
        words = line.split()
        if line.startswith(b"table ") and len(words) > 2:
            table, chain = (words[1], words[2]), None
        elif line.startswith(b"\tchain ") and len(words) > 1:
            chain = words[1]
        elif line == b"\t}":
            chain = None
        elif table is not None and chain is not None:
            m = _NFT_COMMENT.match(line)
            if m is not None and not _is_utf8(m.group(1)):
                found[(table[0], table[1], chain, int(m.group(2)))] = m.group(1)
    if not found:
        return ruleset
    try:
        data = json.loads(ruleset.decode("utf-8", "surrogateescape"))
        items = data["nftables"]
    except (ValueError, KeyError, TypeError):
        return ruleset
    restored = 0
    for item in items if isinstance(items, list) else ():
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict) or "comment" in rule:
            continue
        family, name, in_chain = (str(rule.get(k)).encode("utf-8", "surrogateescape")
                                  for k in ("family", "table", "chain"))
        handle = rule.get("handle")
        comment = found.get((family, name, in_chain, handle if type(handle) is int else -1))
        if comment is not None:
            rule["comment"] = comment.decode("utf-8", "surrogateescape")
            restored += 1
    if restored:
        meta["nft_comments_restored"] = restored
        notes.append(f"nft -j left out {restored} rule comment{'s' if restored != 1 else ''} "
                     "that are not UTF-8: read from nft -a list ruleset")
    return json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogateescape")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_NFT_TABLE = re.compile(r"^table (ip|ip6|inet|arp|bridge|netdev) ([A-Za-z0-9_./-]{1,256})$")


def _nft_ruleset(nft: str, notes: list[str], meta: dict[str, Any],
                 dumped: set[str]) -> bytes | None:
    """``nft -j list ruleset``, or, when it fails, each table of ``nft list tables`` listed
    alone (``nft -j list table FAMILY NAME``) and joined into one ``{"nftables": [...]}``.

    nft 1.0.6 aborts the whole listing (``json.c: ... Assertion `__out' failed``) at a chain
    name or an ``iifname`` that is not UTF-8 (jansson refuses such strings; a comment is left
    out silently): one iptables-nft chain named in Latin-1 would lose every native table.
    Tables that fail alone are named in ``meta["nft_tables_missing"]`` and a note, except the
    iptables-nft tables of an nf_tables dump (``dumped``: ``"ip filter"``...), whose rules
    natlens reads from that dump anyway. None when no table could be listed.
    """
    proc = _run([nft, "-j", "list", "ruleset"])
    if proc.returncode == 0:
        return proc.stdout
    why = _first_line(proc.stderr) or f"exit status {proc.returncode}"
    tables = _run([nft, "list", "tables"])
    if tables.returncode != 0:
        notes.append(f"nft -j list ruleset failed: {why}")
        return None
    items: list[Any] = []
    missing: list[dict[str, str]] = []
    # at "\n" only, as nft prints: a name holding U+2028 or U+0085 is not cut into another
    for line in split_lines(tables.stdout.decode("utf-8", "replace")):
        m = _NFT_TABLE.match(line.strip(" \t"))
        if m is None:
            continue
        one = _run([nft, "-j", "list", "table", m.group(1), m.group(2)])
        try:
            part = json.loads(one.stdout.decode("utf-8", "surrogateescape"))["nftables"] \
                if one.returncode == 0 else None
        except (ValueError, KeyError, TypeError):
            part = None
        label = f"{m.group(1)} {m.group(2)}"
        if not isinstance(part, list):
            if label not in dumped:
                reason = _first_line(one.stderr) or f"exit status {one.returncode}"
                missing.append({"table": label, "why": f"nft -j list table failed: {reason}"})
            continue
        items.extend(x for x in part if not (items and isinstance(x, dict) and "metainfo" in x))
    meta["nft_tables_missing"] = missing
    notes.append(f"nft -j list ruleset failed ({why}): tables listed one by one")
    notes.extend(f"nftables table {m['table']}: not captured ({m['why']})" for m in missing)
    if not items:
        return None
    return json.dumps({"nftables": items}, ensure_ascii=False).encode("utf-8", "surrogateescape")


def _python_iptables(backend: str | None, save4: str, notes: list[str]) -> dict[str, Any]:
    """Cross-check with python-iptables where it can see the rules (the legacy backend)."""
    if backend != "legacy":
        return {"used": False, "why": "python-iptables reads only the legacy backend; iptables "
                                      f"uses {backend or 'an unknown backend'} here"}
    try:
        counts = iptc_rule_counts()
    except UnicodeDecodeError:  # python-iptables decodes chain names as UTF-8
        return {"used": False, "why": "python-iptables cannot read a chain name that is not "
                                      "UTF-8"}
    if counts is None:
        return {"used": False, "why": "python-iptables is not installed (natlens[iptc])"}
    try:
        differences = compare_counts(parse_save(save4, source="iptables-save", strict=False),
                                     counts)
    except NatlensError as exc:
        return {"used": False, "why": f"iptables-save output unreadable: {exc}"}
    if differences:
        notes.append("python-iptables (libiptc) disagrees with iptables-save: "
                     + "; ".join(differences[:5]))
    return {"used": True, "agrees": not differences, "differences": differences}
