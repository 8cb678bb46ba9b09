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

from natlens.docker import DockerError, connect, daemon_facts_live, inspect_live
from natlens.errors import CaptureError, NatlensError
from natlens.legacy_check import compare_counts, iptc_rule_counts
from natlens.parse.save import parse_save
from natlens.parse.tokens import split_lines
from natlens.snapshot import SNAPSHOT_FILES

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


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=_TIMEOUT,
                              check=False, env={**os.environ, "LC_ALL": "C"})
    except subprocess.TimeoutExpired:
        raise CaptureError(f"{argv[0]}: no answer within {_TIMEOUT}s") from None
    except OSError as exc:
        raise CaptureError(f"{argv[0]}: cannot run: {exc.strerror}") from None


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _must(argv: Sequence[str]) -> str:
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
    meta: dict[str, Any] = {
        "format": 1,
        "tool": "natlens 0.1.0",
        "time": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace(
            "+00:00", "Z"),
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
    }

    # Everything is read before the folder is touched, so a failure leaves no half snapshot.
    version_line = _first_line(_must([str(tools["iptables"]), "--version"]))
    version, backend = iptables_backend(version_line)
    save4 = _must([str(tools["iptables-save"]), "-c"])
    save6: str | None = None
    backend6: str | None = None
    if tools["ip6tables-save"] and tools["ip6tables"]:
        backend6 = iptables_backend(_first_line(_must([str(tools["ip6tables"]), "--version"])))[1]
        proc6 = _run([str(tools["ip6tables-save"]), "-c"])
        if proc6.returncode == 0:
            save6 = proc6.stdout
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
        found = has_rules(proc.stdout)
        other_rules = bool(other_rules) or found
        if proc.stdout.strip():
            other_texts[fam] = proc.stdout
        if found:
            notes.append(f"the {other} backend holds {fam} rules too ({fam}-{suffix}-save): "
                         "the kernel applies both rule sets")
    other_files = {fam: SNAPSHOT_FILES[_OTHER_KEYS[(other, fam)]] for fam in other_texts}
    meta.update(other_backend=other, other_backend_has_rules=other_rules,
                other_backend_files=[other_files[f] for f in sorted(other_texts)])
    extra = _capture_extra(tools["ip"], notes)

    addr = _json_text(_must([str(tools["ip"]), "-j", "addr", "show"]), "ip -j addr show")
    route = _json_text(_must([str(tools["ip"]), "-j", "route", "show"]), "ip -j route show")

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


def _capture_extra(ip: str | None, notes: list[str]) -> dict[str, str]:
    """The optional files: ``nft -j list ruleset``, ``ip -j -6 route show``, ``ss -ltnup`` and
    the kernel switches as ``sysctl`` prints them (read from /proc/sys). A tool that is missing
    or fails leaves its file out, with a note. → ``{SNAPSHOT_FILES key: text}``."""
    out: dict[str, str] = {}
    nft = _which("nft")
    if nft is None:
        notes.append("nft not found: native nftables tables were not captured")
    else:
        proc = _run([nft, "-j", "list", "ruleset"])
        if proc.returncode != 0:
            notes.append(f"nft -j list ruleset failed: {_first_line(proc.stderr)}")
        else:
            try:
                out["nft"] = _json_text(proc.stdout, "nft -j list ruleset")
            except NatlensError as exc:
                notes.append(f"{exc} (nft built without JSON support?)")
    if ip is not None:
        proc = _run([ip, "-j", "-6", "route", "show"])
        if proc.returncode == 0:
            out["routes6"] = _json_text(proc.stdout or "[]", "ip -j -6 route show")
        else:
            notes.append(f"ip -j -6 route show failed: {_first_line(proc.stderr)}")
    ss = _which("ss")
    if ss is None:
        notes.append("ss not found: listening sockets were not captured")
    else:
        proc = _run([ss, "-ltnup"])
        if proc.returncode == 0:
            out["sockets"] = proc.stdout
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
                if _read_sysctl(key) == "1":
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


def _json_text(text: str, command: str) -> str:
    """Re-indent ``ip -j`` output (one long line) for readable diffs."""
    try:
        return json.dumps(json.loads(text), indent=4) + "\n"
    except ValueError:
        raise CaptureError(f"{command} printed no JSON (iproute2 too old?)") from None


def _python_iptables(backend: str | None, save4: str, notes: list[str]) -> dict[str, Any]:
    """Cross-check with python-iptables where it can see the rules (the legacy backend)."""
    if backend != "legacy":
        return {"used": False, "why": "python-iptables reads only the legacy backend; iptables "
                                      f"uses {backend or 'an unknown backend'} here"}
    counts = iptc_rule_counts()
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
