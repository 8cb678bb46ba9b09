"""The chain graph: which chain jumps to which, per table, as a networkx ``MultiDiGraph``.

Nodes are chains (attributes ``builtin``, ``policy``, ``rules`` — the rule count — and
``missing`` for a jump target no chain of the table declares); edges are ``-j CHAIN`` / ``-g CHAIN``
rules, keyed by the rule's 1-based position in its chain, with ``position``, ``goto``, a short
``match`` summary (``-p tcp --dport 8080 ! -i docker0``) and the rule's ``text``.

Semantics (iptables(8), "TARGETS"): packets enter a table only at its built-in chains; ``-j``
returns to the next rule when the called chain ends or RETURNs, ``-g`` does not. The kernel refuses
loops (``ELOOP`` from ``mark_source_chains``) and jumps to undeclared chains (iptables-restore:
"Couldn't load target"), so both only occur in hand-written or lenient input; a user chain nobody
jumps to is legal but dead.

Renderers: ``to_dot`` (Graphviz), ``to_mermaid``, ``to_json`` and ``to_svg`` (runs ``dot -Tsvg``).
Each can highlight a packet's path, given as ``(table, chain, rule_index | None)`` steps (or any
objects with ``table``, ``chain`` and ``rule`` attributes, such as the simulator's trace steps).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from natlens.errors import NatlensError
from natlens.model import Family, Match, Option, Rule, Ruleset, Table, Target, TargetKind
from natlens.textsafe import terminal

if TYPE_CHECKING:  # networkx is imported where a graph is built or walked (issue 13: the audit
    import networkx as nx  # reads natlens.audit._index and imports this module without it)

__all__ = [
    "EXTENSION_TARGETS",
    "ChainGraph",
    "Jump",
    "PathStep",
    "build",
    "builtin_chains",
    "can_reach_verdict",
    "default_title",
    "is_missing_chain",
    "jumps",
    "label_edges",
    "loops",
    "match_summary",
    "missing_jumps",
    "path_steps",
    "reachable",
    "svg_of_dot",
    "table_graph",
    "to_dot",
    "to_json",
    "to_mermaid",
    "to_svg",
    "trace_caption",
    "trace_steps",
    "unreachable_chains",
    "unused_chains",
]

PathStep = tuple[str, str, int | None]
"""One step of a packet's path: (table, chain, 1-based rule index or None for a policy)."""

EXTENSION_TARGETS = frozenset({
    # iptables-extensions(8), iptables 1.8.11
    "AUDIT", "CHECKSUM", "CLASSIFY", "CLUSTERIP", "CONNMARK", "CONNSECMARK", "CT", "DNAT", "DNPT",
    "DSCP", "ECN", "HL", "HMARK", "IDLETIMER", "LED", "LOG", "MARK", "MASQUERADE", "NETMAP",
    "NFLOG", "NFQUEUE", "NOTRACK", "RATEEST", "REDIRECT", "REJECT", "SECMARK", "SET", "SNAT",
    "SNPT", "SYNPROXY", "TCPMSS", "TCPOPTSTRIP", "TEE", "TOS", "TPROXY", "TRACE", "TTL", "ULOG",
    # verdicts and historic names
    "ACCEPT", "DROP", "QUEUE", "RETURN", "MIRROR", "ROUTE", "SAME", "IMQ",
    # xtables-addons
    "ACCOUNT", "CHAOS", "DELUDE", "DHCPMAC", "DNETMAP", "ECHO", "IPMARK", "LOGMARK", "PROTO",
    "SYSRQ", "STEAL", "TARPIT", "IPV4OPTSSTRIP",
})
"""Target names that are extensions, never chains (so a jump to one is not a missing chain)."""

_EXTENSION_SHAPE = re.compile(r"[A-Z][A-Z0-9]*")


def is_missing_chain(target: Target, goto: bool = False) -> bool:
    """Whether a rule's target names a chain that does not exist in its table.

    The parser marks a name that is no declared chain, verdict or known extension as
    ``TargetKind.UNKNOWN``. That is a missing chain when it cannot be an extension: ``-g`` always
    needs a chain, and extension names are plain upper-case words (``SECMARK``, ``TARPIT``), so a
    name with a dash, underscore, dot or lower-case letter (``DOCKER-USER``, ``ufw-input``) is a
    chain. An upper-case word natlens does not know is taken as an unknown extension, not flagged.

    >>> is_missing_chain(Target("DOCKER-USER", kind=TargetKind.UNKNOWN))
    True
    >>> is_missing_chain(Target("SYNPROXY", kind=TargetKind.UNKNOWN))
    False
    >>> is_missing_chain(Target("LOGDROP", kind=TargetKind.UNKNOWN), goto=True)
    True
    """
    if target.kind is not TargetKind.UNKNOWN:
        return False
    if goto:
        return True
    if target.name in EXTENSION_TARGETS:
        return False
    return _EXTENSION_SHAPE.fullmatch(target.name) is None


def _arg_text(arg: str) -> str:
    if arg == "" or any(c in arg for c in " \t\"'\\"):
        return json.dumps(arg)
    return arg


def _option_text(opt: Option) -> str:
    parts = ["!", opt.name] if opt.negated else [opt.name]
    parts.extend(_arg_text(a) for a in opt.args)
    return " ".join(parts)


_PROTOCOL_MODULES = frozenset({"tcp", "udp", "udplite", "sctp", "dccp", "icmp", "icmp6"})


def _match_text(match: Match) -> str:
    opts = " ".join(_option_text(o) for o in match.options)
    if match.module in _PROTOCOL_MODULES:
        return opts
    return f"-m {match.module} {opts}".rstrip()


def match_summary(rule: Rule, width: int = 60) -> str:
    """The rule's conditions in short iptables syntax, without chain, target and comments.

    Protocol matches print their options only (``-p tcp --dport 80``, not ``-m tcp``); the
    result is cut to ``width`` characters with a trailing ``…``; ``""`` for an unconditional rule.

    >>> from natlens import parse_save
    >>> rs = parse_save("*filter\\n:FORWARD ACCEPT [0:0]\\n:X - [0:0]\\n"
    ...                 "-A FORWARD ! -i docker0 -p tcp -m tcp --dport 8080 -j X\\nCOMMIT\\n")
    >>> match_summary(rs["filter"]["FORWARD"].rules[0])
    '! -i docker0 -p tcp --dport 8080'
    """
    from natlens.serialize import ip_part  # noqa: PLC0415  (the parser: not for a stored graph)

    parts = ip_part(rule)
    parts.extend(_match_text(m) for m in rule.matches if m.module != "comment")
    text = " ".join(p for p in parts if p)
    if len(text) > width:
        text = text[: width - 1].rstrip() + "…"
    return text


@dataclass(frozen=True, slots=True)
class Jump:
    """One edge: rule ``position`` (1-based) of ``source`` jumps (or goes) to ``target``."""

    table: str
    source: str
    target: str
    position: int
    goto: bool
    rule: Rule
    missing: bool = False

    @property
    def match(self) -> str:
        """Short summary of the rule's conditions (see ``match_summary``)."""
        return match_summary(self.rule)


def table_graph(table: Table, *, labels: bool = True) -> nx.MultiDiGraph:
    """The chain graph of one table (see the module docstring for attributes).

    ``labels=False`` leaves each edge's ``match`` and ``text`` empty (``label_edges`` fills
    them later): most of the cost on a big table, and what loop checks and family collapsing
    (``natlens.graph_families``) do not read."""
    import networkx as nx  # noqa: PLC0415

    from natlens.serialize import rule_to_save  # noqa: PLC0415

    g = nx.MultiDiGraph(table=table.name.value)
    for chain in table.chains:
        g.add_node(chain.name, builtin=chain.builtin, policy=chain.policy,
                   rules=len(chain.rules), missing=False)
    for chain in table.chains:
        for position, rule in enumerate(chain.rules, 1):
            target = rule.target
            if target is None:
                continue
            missing = is_missing_chain(target, rule.goto)
            if target.kind is not TargetKind.CHAIN and not missing:
                continue
            if missing and target.name not in g:
                g.add_node(target.name, builtin=False, policy=None, rules=0, missing=True)
            jump = Jump(table.name.value, chain.name, target.name, position, rule.goto, rule,
                        missing)
            g.add_edge(chain.name, target.name, key=position, position=position, goto=rule.goto,
                       match=jump.match if labels else "",
                       text=rule_to_save(rule, counters=False) if labels else "", jump=jump)
    return g


def label_edges(g: nx.MultiDiGraph) -> None:
    """Fill the ``match`` and ``text`` of every edge of ``g`` built with ``labels=False``
    (edges standing for several jumps, with a ``jumps`` count, keep an empty ``match``)."""
    from natlens.serialize import rule_to_save  # noqa: PLC0415

    for _, _, data in g.edges(data=True):
        jump = data.get("jump")
        if data["text"] or "jumps" in data or not isinstance(jump, Jump):
            continue
        data["match"] = jump.match
        data["text"] = rule_to_save(jump.rule, counters=False)


@dataclass(frozen=True, slots=True)
class ChainGraph:
    """The chain graphs of every table of one ruleset (``tables`` maps table name → graph)."""

    family: Family
    tables: Mapping[str, nx.MultiDiGraph]
    source: str = "<string>"

    def __getitem__(self, table: str) -> nx.MultiDiGraph:
        try:
            return self.tables[table]
        except KeyError:
            have = ", ".join(self.tables) or "none"
            raise NatlensError(f"{self.source}: no table {table!r} (tables: {have})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.tables)


def build(ruleset: Ruleset, *, labels: bool = True) -> ChainGraph:
    """Build the chain graph of every table of ``ruleset`` (``labels``: see
    ``table_graph``)."""
    graphs = {t.name.value: table_graph(t, labels=labels) for t in ruleset.tables}
    return ChainGraph(ruleset.family, MappingProxyType(graphs), ruleset.source)


def builtin_chains(g: nx.MultiDiGraph) -> tuple[str, ...]:
    """The table's built-in chains (where packets enter), in declaration order."""
    return tuple(n for n, d in g.nodes(data=True) if d["builtin"])


def reachable(g: nx.MultiDiGraph) -> frozenset[str]:
    """Chains a packet can reach: the built-ins and everything they jump or go to."""
    import networkx as nx  # noqa: PLC0415

    seen: set[str] = set()
    for start in builtin_chains(g):
        if start not in seen:
            seen.add(start)
            seen.update(nx.descendants(g, start))
    return frozenset(seen)


def unused_chains(g: nx.MultiDiGraph) -> tuple[str, ...]:
    """Declared user chains no rule jumps or goes to."""
    return tuple(n for n, d in g.nodes(data=True)
                 if not d["builtin"] and not d["missing"] and g.in_degree(n) == 0)


def unreachable_chains(g: nx.MultiDiGraph) -> tuple[str, ...]:
    """User chains that rules do jump to, but only from chains no built-in chain reaches."""
    live = reachable(g)
    return tuple(n for n, d in g.nodes(data=True)
                 if not d["builtin"] and not d["missing"] and n not in live
                 and g.in_degree(n) > 0)


def loops(g: nx.MultiDiGraph) -> tuple[tuple[str, ...], ...]:
    """One cycle per strongly connected component that has one (chains in jump order).

    Linear in the graph's size (no enumeration of every simple cycle).
    """
    import networkx as nx  # noqa: PLC0415

    found: list[tuple[str, ...]] = []
    order = {n: i for i, n in enumerate(g.nodes)}
    for component in nx.strongly_connected_components(g):
        first = min(component, key=order.__getitem__)
        if len(component) == 1 and not g.has_edge(first, first):
            continue
        cycle = nx.find_cycle(g.subgraph(component), source=first)
        found.append(tuple(edge[0] for edge in cycle))
    return tuple(sorted(found, key=lambda c: order[c[0]]))


def jumps(g: nx.MultiDiGraph) -> Iterator[Jump]:
    """Every jump of the table, chain by chain in declaration order, then by position."""
    order = {n: i for i, n in enumerate(g.nodes)}
    for *_, data in sorted(g.edges(keys=True, data=True), key=lambda e: (order[e[0]], e[2])):
        if data.get("jump") is not None:  # None: an nft jump (natlens.graph_nft)
            yield data["jump"]


def missing_jumps(g: nx.MultiDiGraph) -> tuple[Jump, ...]:
    """Jumps to chains the table does not declare."""
    return tuple(j for j in jumps(g) if j.missing)


def can_reach_verdict(g: nx.MultiDiGraph, table: Table, chain: str, verdict: str) -> bool:
    """Whether some rule in ``chain`` or a chain it reaches has target ``verdict`` (e.g. ACCEPT)."""
    import networkx as nx  # noqa: PLC0415

    names = {chain} | (nx.descendants(g, chain) if chain in g else set())
    for name in names:
        c = table.get(name)
        if c is not None and any(r.target_name == verdict for r in c.rules):
            return True
    return False


# -- rendering ----------------------------------------------------------------------------------


def path_steps(highlight: Iterable[Any]) -> tuple[PathStep, ...]:
    """The ``(table, chain, rule)`` steps the renderers draw of ``highlight`` (path steps, or
    trace steps: an nft step's table as ``FAMILY TABLE``)."""
    return _steps(highlight)


def _steps(highlight: Iterable[Any]) -> tuple[PathStep, ...]:
    steps: list[PathStep] = []
    for step in highlight:
        if isinstance(step, tuple):
            table, chain, rule = step
        else:
            table, chain, rule = step.table, step.chain, step.rule
            if getattr(step, "source", None) == "nft":  # drawn as "inet firewalld"
                table = f"{step.family} {table}"
        if table is not None and chain is not None:
            steps.append((str(table), str(chain), rule))
    return tuple(steps)


def _pick(graph: ChainGraph, table: str | None) -> list[tuple[str, nx.MultiDiGraph]]:
    if table is not None:
        named = [key for key in graph.tables if key.endswith(f" {table}")]
        if table not in graph.tables and len(named) == 1:  # "firewalld": "inet firewalld"
            table = named[0]
        elif table not in graph.tables and table.lower() in graph.tables:  # "NAT": "nat"
            table = table.lower()
        return [(table, graph[table])]
    return [(name, g) for name, g in graph.tables.items() if g.number_of_nodes()]


def _node_label(name: str, data: Mapping[str, Any]) -> list[str]:
    if data["missing"]:
        return [name, "missing chain"]
    count = f"{data['rules']} rule{'' if data['rules'] == 1 else 's'}"
    if data.get("members"):  # a family of similar chains (natlens.graph_families)
        return [name, f"{data['members']} chains, {count}"]
    if data["builtin"]:
        return [name, f"built-in, policy {data['policy'] or '-'}", count]
    return [name, count]


def _edge_label(data: Mapping[str, Any]) -> str:
    head = f"{'goto ' if data['goto'] else ''}{data.get('ref') or '#' + str(data['position'])}"
    return f"{head} {data['match']}" if data["match"] else head


def _edges(g: nx.MultiDiGraph) -> list[tuple[str, str, int, dict[str, Any]]]:
    order = {n: i for i, n in enumerate(g.nodes)}
    return sorted(g.edges(keys=True, data=True), key=lambda e: (order[e[0]], e[2]))


def _dot_text(text: str) -> str:
    """One line of a DOT string: escaped for a terminal and for Graphviz, which reads ``\\``
    and ``\\"`` escapes in quoted strings and ``&...;`` entities in labels (dot(1), "Escape
    strings"; an undecoded entity would reach the SVG raw and break it)."""
    return (terminal(text).replace("\\", "\\\\").replace('"', '\\"')
            .replace("&", "&amp;"))


def _dot_quote(*lines: str) -> str:
    """A quoted DOT string of ``lines`` (Graphviz's ``\\n`` between them)."""
    return '"' + "\\n".join(_dot_text(line) for line in lines) + '"'


def _dot_id(table: str, chain: str) -> str:
    """The node ID of ``chain``: its name with backslashes doubled before the terminal escapes,
    so two different names never share an ID."""
    return _dot_quote(f"{table}:{chain.replace(chr(92), chr(92) * 2)}")


def default_title(graph: ChainGraph, table: str | None = None) -> str:
    """``SOURCE: ipv4, table nat`` (``all tables`` without ``table``): what a picture shows."""
    tables = f"table {table}" if table is not None else "all tables"
    return f"{graph.source}: {graph.family.value}, {tables}"


def trace_caption(trace: Any) -> list[str]:
    """Lines telling a picture's reader what happened to a traced packet (a
    ``natlens.Trace``): the packet, each NAT rewrite, the verdict, and every branch when
    there are several (each drawn on the graph)."""
    lines = [f"packet: {trace.packet!r}"]
    seen: dict[str, None] = {}
    for step in (*trace.steps, *(s for b in trace.branches for s in b.steps)):
        if step.detail and any(word in step.detail for word in ("NAT", "MASQUERADE",
                                                                "REDIRECT", "NETMAP")):
            seen.setdefault(f"{step.table}:{step.chain}#{step.rule}: {step.detail}", None)
    lines.extend(f"rewrite {text}" for text in seen)
    via = f" via {trace.out_interface}" if trace.out_interface else ""
    lines.append(f"=> {trace.verdict.value} ({trace.path.value}) {trace.final_src} -> "
                 f"{trace.final_dst}{via}")
    if trace.branches:
        lines.append(f"branches ({len(trace.branches)}, all drawn in red):")
        for n, b in enumerate(trace.branches, 1):
            assumed = f"  [assumed: {'; '.join(b.assumed)}]" if b.assumed else ""
            line = f"  {n}. {b.summary()}{assumed}"
            lines.append(line if len(line) <= 120 else line[:119] + "…")
    return lines


def trace_steps(trace: Any) -> tuple[Any, ...]:
    """Every step of a ``natlens.Trace``: the headline's and every branch's, to highlight all
    of them."""
    return (*trace.steps, *(s for b in trace.branches for s in b.steps))


def _dot_legend(highlighted: bool) -> list[str]:
    """A ``legend`` cluster: what bold, dashed and red boxes and arrows mean."""
    point = "shape=point, width=0.05"
    lines = ['  subgraph "cluster_legend" {',
             '    label="legend"; fontsize=9; color="#999999";',
             '    "legend:builtin" [label="built-in / base chain\\npolicy, rule count", '
             'peripheries=2, style="bold"];',
             '    "legend:user" [label="user chain"];',
             '    "legend:missing" [label="jump target not declared", color="#cc0000", '
             'fontcolor="#cc0000", style="dashed"];',
             f'    "legend:j1" [{point}]; "legend:j2" [{point}];',
             f'    "legend:g1" [{point}]; "legend:g2" [{point}];',
             '    "legend:j1" -> "legend:j2" [label="-j / jump: #rule (handle) and match"];',
             '    "legend:g1" -> "legend:g2" [label="-g / goto", style=dashed];']
    if highlighted:
        lines.append('    "legend:path" [label="on the packet\'s path", style="filled", '
                     'fillcolor="#ffd6d6", color="#cc0000"];')
        lines.append(f'    "legend:t1" [{point}]; "legend:t2" [{point}];')
        lines.append('    "legend:t1" -> "legend:t2" [label="jump the packet takes", '
                     'color="#cc0000", penwidth=2.5];')
    lines.append("  }")
    return lines


def to_dot(graph: ChainGraph, *, table: str | None = None,
           highlight: Iterable[Any] = (), title: str | None = None,
           caption: Iterable[str] = (), legend: bool = True) -> str:
    """Graphviz DOT text: one cluster per table, built-in chains bold with a double border,
    missing chains dashed red, ``-g`` edges dashed; ``highlight`` steps drawn red and thick.
    The picture is headed by ``title`` (default: ``default_title``) and the ``caption`` lines
    (``trace_caption``: verdict, NAT rewrites, branches), and carries a legend unless
    ``legend`` is False."""
    steps = _steps(highlight)
    visited = {(t, c) for t, c, _ in steps}
    taken = {(t, c, r) for t, c, r in steps if r is not None}
    head = [title if title is not None else default_title(graph, table), *caption]
    label = "".join(_dot_text(line) + "\\l" for line in head)
    lines = [f"digraph {_dot_quote('natlens ' + graph.family.value)} {{", "  rankdir=LR;",
             f'  labelloc=t; labeljust=l; fontname="Helvetica"; fontsize=12; label="{label}";',
             '  node [shape=box, fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=9];']
    if legend:
        lines.extend(_dot_legend(bool(steps)))
    for name, g in _pick(graph, table):
        lines.append(f"  subgraph {_dot_quote('cluster_' + name)} {{")
        lines.append(f"    label={_dot_quote(name)};")
        for node, data in g.nodes(data=True):
            attrs = [f"label={_dot_quote(*_node_label(node, data))}"]
            styles: list[str] = []
            if data["builtin"]:
                attrs.append("peripheries=2")
                styles.append("bold")
            if data["missing"]:
                attrs.append('color="#cc0000"')
                attrs.append('fontcolor="#cc0000"')
                styles.append("dashed")
            if (name, node) in visited:
                styles.append("filled")
                attrs.append('fillcolor="#ffd6d6"')
                attrs.append('color="#cc0000"')
            if styles:
                attrs.append(f"style={_dot_quote(','.join(styles))}")
            lines.append(f"    {_dot_id(name, node)} [{', '.join(attrs)}];")
        lines.append("  }")
        for u, v, key, data in _edges(g):
            attrs = [f"label={_dot_quote(_edge_label(data))}"]
            if data["goto"]:
                attrs.append("style=dashed")
            if (name, u, key) in taken:
                attrs.append('color="#cc0000"')
                attrs.append("penwidth=2.5")
            lines.append(f"  {_dot_id(name, u)} -> {_dot_id(name, v)} "
                         f"[{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


_MERMAID_ENTITIES = str.maketrans({
    "#": "#35;", "&": "#amp;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "|": "#124;",
    "[": "#91;", "]": "#93;", "{": "#123;", "}": "#125;", "(": "#40;", ")": "#41;",
    "`": "#96;", "%": "#37;", ";": "#59;",
})


def _mermaid_text(*lines: str) -> str:
    """Text for a quoted Mermaid label: escaped for a terminal, then every character Mermaid's
    flowchart grammar gives a meaning (quotes, brackets, pipes, backticks for Markdown strings,
    ``%%`` comments, ``#...;`` entity codes themselves) written as an entity code; ``lines``
    joined with ``<br/>``."""
    return "<br/>".join(terminal(line).translate(_MERMAID_ENTITIES) for line in lines)


def to_mermaid(graph: ChainGraph, *, table: str | None = None,
               highlight: Iterable[Any] = (), title: str | None = None,
               caption: Iterable[str] = ()) -> str:
    """Mermaid ``flowchart LR`` text: a subgraph per table, built-in chains as double-bordered
    boxes (class ``builtin``), missing chains as hexagons (class ``missing``), ``-g`` as dotted
    arrows; highlighted chains get class ``path`` and highlighted jumps a red ``linkStyle``.
    ``title`` and ``caption`` become ``%%`` comment lines after the header (Mermaid draws no
    free text; the CLI always passes them)."""
    steps = _steps(highlight)
    visited = {(t, c) for t, c, _ in steps}
    taken = {(t, c, r) for t, c, r in steps if r is not None}
    lines = ["flowchart LR"]
    lines.extend(f"%% {terminal(line)}" for line in ([title] if title else []) + list(caption))
    ids: dict[tuple[str, str], str] = {}
    classes: dict[str, list[str]] = {"builtin": [], "missing": [], "path": []}
    edge_lines: list[str] = []
    red_links: list[int] = []
    for t_index, (name, g) in enumerate(_pick(graph, table)):
        lines.append(f'  subgraph t{t_index}["{_mermaid_text(name)}"]')
        for node, data in g.nodes(data=True):
            node_id = f"t{t_index}n{len(ids)}"
            ids[(name, node)] = node_id
            label = _mermaid_text(*_node_label(node, data))
            if data["missing"]:
                shape = f'{{{{"{label}"}}}}'
                classes["missing"].append(node_id)
            elif data["builtin"]:
                shape = f'[["{label}"]]'
                classes["builtin"].append(node_id)
            else:
                shape = f'["{label}"]'
            if (name, node) in visited:
                classes["path"].append(node_id)
            lines.append(f"    {node_id}{shape}")
        lines.append("  end")
        for u, v, key, data in _edges(g):
            arrow = "-.->" if data["goto"] else "-->"
            if (name, u, key) in taken:
                red_links.append(len(edge_lines))
            edge_lines.append(f'  {ids[(name, u)]} {arrow}|"{_mermaid_text(_edge_label(data))}"| '
                              f"{ids[(name, v)]}")
    lines.extend(edge_lines)
    lines.append("  classDef builtin stroke-width:3px,font-weight:bold")
    lines.append("  classDef missing stroke:#cc0000,stroke-dasharray:4 3,color:#cc0000")
    lines.append("  classDef path fill:#ffd6d6,stroke:#cc0000")
    for cls, members in classes.items():
        if members:
            lines.append(f"  class {','.join(members)} {cls}")
    if red_links:
        lines.append(f"  linkStyle {','.join(map(str, red_links))} stroke:#cc0000,stroke-width:3px")
    return "\n".join(lines) + "\n"


def to_json(graph: ChainGraph, *, table: str | None = None,
            highlight: Iterable[Any] = ()) -> dict[str, Any]:
    """A JSON-ready dict: per table its chains, jumps, loops, unused/unreachable/missing chains,
    and the highlighted ``path`` steps (``[table, chain, rule]``) when given."""
    tables: list[dict[str, Any]] = []
    for name, g in _pick(graph, table):
        live = reachable(g)
        tables.append({
            "name": name,
            "chains": [
                {"name": node, "builtin": data["builtin"], "policy": data["policy"],
                 "rules": data["rules"], "missing": data["missing"], "reachable": node in live,
                 **({"members": data["members"]} if "members" in data else {})}
                for node, data in g.nodes(data=True)
            ],
            "jumps": [
                {"from": u, "to": v, "position": data["position"], "goto": data["goto"],
                 "match": data["match"], "text": data["text"],
                 **({"jumps": data["jumps"]} if "jumps" in data else {})}
                for u, v, _, data in _edges(g)
            ],
            "loops": [list(cycle) for cycle in loops(g)],
            "unused": list(unused_chains(g)),
            "unreachable": list(unreachable_chains(g)),
            "missing": sorted(n for n, d in g.nodes(data=True) if d["missing"]),
        })
    out: dict[str, Any] = {"family": graph.family.value, "source": graph.source,
                           "tables": tables}
    steps = _steps(highlight)
    if steps:
        out["path"] = [list(s) for s in steps]
    return out


def to_svg(graph: ChainGraph, *, table: str | None = None, highlight: Iterable[Any] = (),
           dot: str | None = None, title: str | None = None, caption: Iterable[str] = (),
           legend: bool = True) -> str:
    """SVG text rendered by Graphviz (``dot -Tsvg``) from ``to_dot`` (same ``title``,
    ``caption`` and ``legend``); ``dot`` overrides the program's path.

    Raises ``NatlensError`` when Graphviz is not installed or fails.
    """
    program = dot or shutil.which("dot")
    if program is None:
        raise NatlensError("graphviz 'dot' not found: install graphviz (e.g. apt-get install "
                           "graphviz) or use --format dot")
    return svg_of_dot(to_dot(graph, table=table, highlight=highlight, title=title,
                             caption=caption, legend=legend), dot=program)


def svg_of_dot(source: str, *, dot: str | None = None) -> str:
    """SVG text rendered by Graphviz (``dot -Tsvg``) from DOT text ``source`` (``to_dot``'s);
    ``dot`` overrides the program's path. Raises ``NatlensError`` when Graphviz is not
    installed or fails."""
    program = dot or shutil.which("dot")
    if program is None:
        raise NatlensError("graphviz 'dot' not found: install graphviz (e.g. apt-get install "
                           "graphviz) or use --format dot")
    try:
        proc = subprocess.run([program, "-Tsvg"], input=source, capture_output=True, text=True,
                              timeout=120, check=False)
    except OSError as exc:
        raise NatlensError(f"{program}: cannot run: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise NatlensError(f"{program}: no answer within 120s") from None
    if proc.returncode != 0:
        why = next((ln for ln in proc.stderr.splitlines() if ln.strip()),
                   f"exit status {proc.returncode}")
        raise NatlensError(f"{program} -Tsvg failed: {why}")
    return proc.stdout
