"""Hostile names and the checks every output channel must pass (tests/test_output_*.py).

The characters a terminal, a shell, an XML parser, Graphviz or Mermaid treat specially are
defined here on their own (not taken from ``natlens.textsafe``), so the tests check the code
against the channels' rules rather than against itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from natlens.parse.tokens import quote

# C0 but newline (layout), DEL, C1; bidi embeddings/overrides/isolates and marks (Unicode TR #9);
# line/paragraph separators; lone surrogates; the XML 1.0 non-characters U+FFFE/U+FFFF.
RAW_UNSAFE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
    "\u2028\u2029\ud800-\udfff\ufffe\uffff]")

MARKERS = ("pwn1", "pwn2", "pwn3", "pwn4", "pwn5", "pwn6", "pwn7")
"""Files the shell payloads below create when they run."""

CHAINS = (
    "$(touch${IFS}pwn1)",
    "`touch${IFS}pwn2`",
    "a;touch${IFS}pwn3",
    "a|touch${IFS}pwn4",
    "a&&touch${IFS}pwn5",
    ">pwn6",
    "\x1b[31mRED",
    "\x1b]0;title\x07",
    "x\x07bel\x7f\x9b",
    "\u202eevil\u2066",
    "\u200fmark\u061c",
    "back\\slash",
    "\\x1b[31mRED",
    "日本語",
    "%s%n",
    "]]",
    "}{",
    "<b>&amp;&#1;",
    "a#b*c?~d",
    "\ufffe\uffff",
)
"""Chain names iptables accepts (1 to 28 bytes, no blanks or quotes, no leading - or !)."""

COMMENT = ("\x1b]0;pwned\x07\x1b[2J<script>alert(1)</script> \"q\" 's' `touch pwn7` "
           "$(touch pwn7) ]] } --> \u202e\u2066 &amp; \\ %s")
"""A rule comment (any character but the line breaks of a save file)."""

IFACE = "$(touch${IFS}I)"
"""An interface name the kernel accepts (dev_valid_name: <= 15 bytes, no blank, '/' or ':')."""

CONTAINER = "\x1b[2J\u202e$(touch pwn7)\n\ud800"
"""Appended to container names in docker inspect JSON (a lone surrogate is valid JSON)."""


def rules_text(chains: Iterable[str] = CHAINS, comment: str = COMMENT) -> str:
    """iptables-save text: per chain a jump from INPUT and FORWARD (source 10.66.0.N), a rule
    repeated
    (``duplicate``), a rule an earlier one covers (``dead-rule``), a rule that accepts the
    jump's packets, and a user chain nobody jumps to (``unused-chain``); the comment on most."""
    names = list(chains)
    c = quote(comment, force=True)
    head = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    body: list[str] = []
    for k, name in enumerate(names, 1):
        unused = name[:26] + "~u"
        head += [f":{name} - [0:0]", f":{unused} - [0:0]"]
        body += [
            f"-A INPUT -s 10.66.0.{k}/32 -m comment --comment {c} -j {name}",
            f"-A FORWARD -s 10.66.0.{k}/32 -m comment --comment {c} -j {name}",
            f"-A {name} -s 10.77.0.1/32 -m comment --comment {c} -j DROP",
            f"-A {name} -s 10.77.0.1/32 -m comment --comment {c} -j DROP",
            f"-A {name} -s 10.78.0.0/24 -j DROP",
            f"-A {name} -s 10.78.0.9/32 -m comment --comment {c} -j ACCEPT",
            f"-A {name} -s 10.66.0.{k}/32 -m comment --comment {c} -j ACCEPT",
            f"-A {unused} -m comment --comment {c} -j DROP",
        ]
    return "\n".join([*head, *body, "COMMIT", ""])


def broken_rules_text(chains: Iterable[str] = CHAINS) -> str:
    """Restore input iptables refuses (--lenient): per chain a loop through two chains and a
    jump to a chain nobody declares (``loop``, ``ineffective``)."""
    head = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    body: list[str] = []
    for k, name in enumerate(chains, 1):
        a, b = name[:26] + "~a", name[:26] + "~b"
        head += [f":{a} - [0:0]", f":{b} - [0:0]"]
        body += [f"-A INPUT -s 10.66.0.{k}/32 -j {a}", f"-A {a} -j {b}", f"-A {b} -j {a}",
                 f"-A INPUT -s 10.67.0.{k}/32 -j {name[:26]}~m"]
    return "\n".join([*head, *body, "COMMIT", ""])


def docker_snapshot(base: Path, dest: Path, *, comment: str = COMMENT, iface: str = IFACE,
                    suffix: str = CONTAINER) -> Path:
    """A copy of snapshot folder ``base`` with ``comment`` on every rule (of every ``*.txt``
    rule file), the outside interface eth0 renamed ``iface`` and ``suffix`` appended to every
    container's name."""
    shutil.copytree(base, dest)
    c = quote(comment, force=True)
    for path in sorted(dest.glob("*.txt")):
        lines = []
        for line in path.read_text().splitlines():
            words = line.split(" ")
            if "-A" in words:
                at = words.index("-A") + 2
                words[at:at] = ["-m", "comment", "--comment", c]
            lines.append(" ".join(iface if w == "eth0" else w for w in words))
        path.write_text("\n".join(lines) + "\n")
    for name in ("ip-addr.json", "ip-route.json"):
        path = dest / name
        if path.is_file():
            path.write_text(path.read_text().replace('"eth0"', json.dumps(iface)))
    path = dest / "docker-containers.json"
    if path.is_file():
        containers = json.loads(path.read_text())
        for container in containers:
            container["Name"] += suffix
        path.write_text(json.dumps(containers, indent=2))
    return dest


def assert_text_safe(text: str, what: str) -> None:
    """No raw control, bidi or separator character, and encodable as UTF-8."""
    __tracebackhide__ = True
    found = RAW_UNSAFE.search(text)
    assert found is None, (f"{what}: raw {found.group()!r} at {found.start()}: "
                           f"{text[max(0, found.start() - 60):found.start() + 20]!r}")
    text.encode("utf-8")


def assert_json(text: str, what: str) -> object:
    """JSON text that encodes as UTF-8 and parses; the value."""
    __tracebackhide__ = True
    text.encode("utf-8")
    return json.loads(text)


def assert_svg(svg: str, what: str) -> ET.Element:
    """Well-formed XML (xml.etree), root ``svg``."""
    __tracebackhide__ = True
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag.endswith("svg"), f"{what}: root element {root.tag}"
    return root


def assert_dot(dot: str, what: str) -> str:
    """Graphviz reads the DOT text without a complaint; the SVG it makes, itself well-formed."""
    __tracebackhide__ = True
    proc = subprocess.run(["dot", "-Tsvg"], input=dot.encode("utf-8"), capture_output=True,
                          timeout=120, check=False, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert proc.returncode == 0, f"{what}: dot failed: {proc.stderr.decode(errors='replace')}"
    assert not proc.stderr.strip(), f"{what}: dot warned: {proc.stderr.decode(errors='replace')}"
    svg = proc.stdout.decode("utf-8")
    assert_svg(svg, what)
    return svg


_MERMAID_LABEL = r'"[^"\[\]{}()|<>`%\n]*"'
_MERMAID_LINE = re.compile("|".join((
    r"flowchart LR",
    rf"  subgraph t\d+\[{_MERMAID_LABEL}\]",
    r"  end",
    rf"    t\d+n\d+(?:\[\[{_MERMAID_LABEL}\]\]|\[{_MERMAID_LABEL}\]|\{{\{{{_MERMAID_LABEL}\}}\}})",
    rf"  t\d+n\d+ (?:-->|-\.->)\|{_MERMAID_LABEL}\| t\d+n\d+",
    r"  classDef \w+ [\w:#,.\- ]+",
    r"  class [t\dn,]+ \w+",
    r"  linkStyle [\d,]+ [\w:#,.\- ]+",
)))


def assert_mermaid(text: str, what: str) -> None:
    """Every line is one of the statements natlens writes, each label quoted with no quote,
    bracket, brace, parenthesis, pipe, angle bracket (but ``<br/>``), backtick or ``%`` inside."""
    __tracebackhide__ = True
    assert_text_safe(text, what)
    for line in text.rstrip("\n").split("\n"):
        plain = line.replace("<br/>", "")
        assert _MERMAID_LINE.fullmatch(plain), f"{what}: unexpected Mermaid line {line!r}"


# -- running fixes ------------------------------------------------------------------------------

TOOLS = ("iptables", "ip6tables", "iptables-legacy", "iptables-nft", "ip6tables-legacy",
         "ip6tables-nft")
_RECORDER = '#!/bin/bash\nprintf \'%s\\0\' "$#" "${0##*/}" "$@" >> "$NATLENS_FIX_LOG"\n'


def recorder(tmp: Path) -> Path:
    """``tmp/bin`` with a recorder for each iptables command: it appends its argc, name and
    arguments, NUL-separated, to ``$NATLENS_FIX_LOG``."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for name in TOOLS:
        path = bin_dir / name
        path.write_text(_RECORDER)
        path.chmod(0o755)
    return bin_dir


def records(log: Path) -> list[list[bytes]]:
    """The argvs the recorder saw: ``[program, arg, ...]`` per call."""
    if not log.exists():
        return []
    words = log.read_bytes().split(b"\0")[:-1]
    out: list[list[bytes]] = []
    i = 0
    while i < len(words):
        n = int(words[i])
        out.append(words[i + 1:i + 2 + n])
        i += 2 + n
    return out


def run_fix(fix: str, tmp: Path) -> list[list[str]]:
    """Run ``fix`` in bash in an empty folder with iptables & co. recorded; the argvs, decoded
    as the shell passed them (UTF-8 bytes, surrogateescape for the rest)."""
    work = tmp / "work"
    work.mkdir()
    bin_dir = recorder(tmp)
    log = tmp / "calls"
    syntax = subprocess.run(["bash", "-n", "-c", fix], capture_output=True, check=False)
    assert syntax.returncode == 0, f"bash -n refuses {fix!r}: {syntax.stderr!r}"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "NATLENS_FIX_LOG": str(log), "LC_ALL": "C.UTF-8",
           "HOME": str(work)}
    proc = subprocess.run(["bash", "-c", fix], cwd=work, env=env, capture_output=True,
                          check=False, timeout=30)
    created = sorted(p.name for p in work.iterdir())
    assert created == [], f"running {fix!r} created {created}: the input ran as commands"
    assert proc.returncode == 0, f"{fix!r}: {proc.stderr!r}"
    return [[w.decode("utf-8", "surrogateescape") for w in argv] for argv in records(log)]
