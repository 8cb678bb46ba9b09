"""Test helpers: the corpus's nftables text/JSON dump pairs and the rule lines of an ``.nft`` text.

``nft list ruleset`` prints one rule a line, indented two levels inside ``table F N { chain C {``
(nft(8), LISTING); a rule whose anonymous set spans lines is joined until its braces balance.
"""

from __future__ import annotations

import re
from pathlib import Path

_BLOCK = re.compile(r"^(table|chain|set|map|flowtable|counter|quota|limit|ct helper|ct timeout|"
                    r"ct expectation|secmark|synproxy|tunnel)\s+(.*?)\s*\{$")
_CHAIN_HEADER = re.compile(r"^(type \S+ hook .*;|policy \w+;|comment \".*\"|devices = \{.*\};?)$")


def text_rules(text: str) -> dict[tuple[str, str, str], list[str]]:
    """``{(family, table, chain): [rule text, ...]}`` from ``nft list ruleset`` output."""
    rules: dict[tuple[str, str, str], list[str]] = {}
    stack: list[tuple[str, str]] = []
    family = table = ""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if pending:
            pending += " " + line
            if pending.count("{") == pending.count("}"):
                rules[(family, table, stack[-1][1])].append(_squeeze(pending))
                pending = ""
            continue
        if line == "}":
            if stack:
                stack.pop()
            continue
        block = _BLOCK.match(line)
        if block and (not stack or stack[-1][0] == "table"):
            kind, name = block.group(1), block.group(2)
            if kind == "table":
                words = name.split()
                family, table = (words[0], words[1]) if len(words) == 2 else ("ip", words[0])
            elif kind == "chain":
                rules.setdefault((family, table, name), [])
            stack.append((kind, name))
            continue
        if stack and stack[-1][0] == "chain":
            if _CHAIN_HEADER.match(line):
                continue
            if line.count("{") != line.count("}"):
                pending = line
                continue
            rules[(family, table, stack[-1][1])].append(line)
    return rules


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("{ ", "{ ").strip()


def dump_pairs(corpus: Path) -> list[tuple[Path, Path]]:
    """``(text, json)`` pairs of the nftables corpus: shell-test dumps and the rulesets loaded
    with nft 1.0.6 (Docker 29, kube-proxy, firewalld, ufw, the mixed experiment)."""
    base = corpus / "nftables"
    shell = sorted(base.glob("nftables/tests/shell/**/*.json-nft"))
    pairs = [(p.with_suffix(".nft"), p) for p in shell if p.with_suffix(".nft").exists()]
    for js in sorted(base.glob("**/*.json")):
        for candidate in (js.with_suffix(".nft"),):
            if candidate.exists() and "tests/py" not in str(js):
                pairs.append((candidate, js))
    return pairs


def json_dumps(corpus: Path) -> list[Path]:
    """Every whole-ruleset JSON dump of the nftables corpus (``*.json-nft`` and nft -j output)."""
    base = corpus / "nftables"
    found = sorted(base.glob("nftables/tests/shell/**/*.json-nft"))
    found += [p for p in sorted(base.glob("**/*.json")) if "tests/py" not in str(p)
              and p.name not in ("schema.json", "nft-list-rules-expectations.json")]
    return found


def json_vectors(path: Path) -> list[tuple[str, object]]:
    """The ``# rule`` / JSON array pairs of an nftables ``tests/py/**/*.t.json`` file."""
    import json

    vectors: list[tuple[str, object]] = []
    rule, lines = "", list[str]()
    for line in [*path.read_text().splitlines(), "# end"]:
        if line.startswith("# "):
            if rule and lines:
                vectors.append((rule, json.loads("\n".join(lines))))
            rule, lines = line[2:], []
        elif line.strip():
            lines.append(line)
    return vectors


def wrap_rules(family: str, exprs: list[object]) -> dict[str, object]:
    """A whole ``nft -j list ruleset`` document holding ``exprs`` as rules of one chain."""
    items: list[object] = [
        {"metainfo": {"version": "1.1.0", "json_schema_version": 1}},
        {"table": {"family": family, "name": "t", "handle": 1}},
        {"chain": {"family": family, "table": "t", "name": "c", "handle": 2}},
    ]
    items += [{"rule": {"family": family, "table": "t", "chain": "c", "handle": 3 + i,
                        "expr": expr}} for i, expr in enumerate(exprs)]
    return {"nftables": items}
