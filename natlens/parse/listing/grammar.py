"""The grammar of an ``iptables -L`` listing: chain headers, column headers, rule lines.

Phase 1 splits the text into chains (``Chain NAME (policy P ...)`` / ``(N references)``) and
rule rows by the column header's fields; phase 2, once the address family is known, decodes
each row (``natlens.parse.listing.matches`` / ``targets``) into a ``Rule`` and records what the
listing shows in ``Ruleset.coverage``. See ``natlens.parse.listing`` for the format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from natlens.errors import EXCERPT_LIMIT, ParseError
from natlens.inputs import is_decimal as _decimal
from natlens.model import (
    BUILTIN_CHAINS,
    VERDICT_TARGETS,
    Address,
    Chain,
    Counters,
    Coverage,
    Family,
    Interface,
    Match,
    Option,
    Origin,
    Protocol,
    Rule,
    Ruleset,
    Table,
    TableName,
    Target,
    TargetKind,
)
from natlens.names import name_bytes
from natlens.parse.collector import collector_off
from natlens.parse.construct import new_chain, new_origin, new_rule, new_target
from natlens.parse.families import _ONE_FAMILY_TARGETS, family_mismatch
from natlens.parse.infer import infer_table
from natlens.parse.listing.matches import (
    _MATCH_DECODERS,
    _comment,
    _comment_match,
)
from natlens.parse.listing.targets import (
    _TARGET_DECODERS,
    _nat_target,
    _plain_nat_options,
)
from natlens.parse.listing.words import (
    _NO_IFACE,
    _OPT,
    _POLICIES,
    _SUFFIX,
    _address,
    _Cursor,
    _interface,
    _protocol,
    _split_words,
    _target_options,
    _TrackingCursor,
    _UndecodableError,
)
from natlens.parse.modules import TARGETS
from natlens.parse.prompt import shell_command
from natlens.parse.rule import _MAX_EXTENSION_NAME
from natlens.parse.tokens import split_lines
from natlens.parse.tool_diagnostics import is_tool_diagnostic

__all__ = ["parse_listing"]

# -- the listing ---------------------------------------------------------------------------------


_Row = tuple[int, str, list[str]]
"""One rule line: (line number, text, its columns as ``str.split`` gives them, then the text
after the destination column if any), decoded once the family is known. The columns are those
of the chain's column header (``_Columns``), an empty target column filled in."""


@dataclass(slots=True)
class _ChainState:
    name: str
    builtin: bool
    policy: str | None
    counters: Counters | None
    approximate: bool
    origin: Origin
    rows: list[_Row] = field(default_factory=list)
    columns: _Columns | None = None
    """The layout of the rows (the chain's column header)."""
    references: int | None = None
    incomplete: str | None = None


@dataclass(slots=True)
class _Section:
    table: TableName | None
    chains: dict[str, _ChainState] = field(default_factory=dict)
    unknown_targets: bool = False
    """Whether a rule's target is of kind UNKNOWN (no listed chain, no known target)."""


@dataclass(frozen=True, slots=True)
class _Decoded:
    """What the text after the destination column decodes to; shared by the rules with the
    same text (and target column, protocol and chain names)."""

    matches: tuple[Match, ...]
    target: Target | None
    goto: bool
    unknown: frozenset[str]
    """``"matches"`` / ``"target_options"`` when some text was kept verbatim."""
    unknown_text: bool
    other_family: bool
    """``family_mismatch`` may refuse a rule with these matches and target in this listing's
    family (``_family_probe`` of each: the rule is then checked whole)."""


_NOTHING: frozenset[str] = frozenset()
_UNREAD = Match("?", known=False)
"""Not in ``_ListingParser.comments`` (no comment decodes to it)."""
_NO_TRAFFIC = Counters(0, 0)
_UNSET = object()
_A_CHAIN = " chain"
"""The target column in a ``_TextKey`` for any listed chain no target decoder is named after
(a column value has no blank)."""
_TextKey = tuple[str, str, str, bool, bool, bool]
"""(text after the destination column or after its leading comment, target column, protocol
name (not negated) or "", target is a listed chain, NOTRACK is, text follows a comment)."""


@dataclass(slots=True)
class _Columns:
    """The columns of a column header: ``count`` columns, ``opt`` the index of the opt column;
    in a row's columns the target column is at ``opt - 2`` and the source at ``opt + 1`` or,
    with interfaces, ``opt + 3``."""

    num: bool
    counters: bool
    iface: bool
    count: int
    opt: int
    assumed: bool = False


def _family_probe(matches: tuple[Match, ...], target: Target | None, version: int) -> bool:
    """Whether ``family_mismatch`` refuses a rule holding only ``matches`` and ``target``.

    ``family_mismatch`` judges each address, extension and option on its own, so a rule whose
    parts pass apart passes whole; ``rule`` checks the whole rule when some part (or an
    address) does not, for the exact message."""
    probe = new_rule("", source=None, destination=None, in_interface=None, out_interface=None,
                     protocol=None, fragment=None, matches=matches, target=target, goto=False,
                     counters=None, origin=None, unknown=_NOTHING)
    return family_mismatch(probe, version) is not None


class _ListingParser:
    def __init__(self, source: str, table: TableName | None, strict: bool = True,
                 memo: bool = True) -> None:
        self.source = source
        self.strict = strict
        self.memo = memo
        """Decode each distinct match/target text once (``decode_rest``); False decodes every
        rule's whole text (tests compare both)."""
        self.decoded: dict[_TextKey, _Decoded] = {}
        self.chain_targets: dict[str, tuple[Target, bool]] = {}
        """Listed chain name → (its Target, whether family_mismatch may refuse it)."""
        self.addresses: dict[str, tuple[Address | None, str]] = {}
        """Source or destination column → ``address(text, version)`` (one family a parse)."""
        self.nat_templates: dict[_TextKey, tuple[_Decoded, bool] | object | None] = {}
        """Text before a NAT target's ``to:`` word (and the rest of the key) → the decoding
        of the first such text when it can serve as a template (``decode_nat``), with whether
        ``family_mismatch`` may refuse its matches."""
        self.plain_nat_probes: dict[str, bool] = {}
        """DNAT/SNAT → whether ``family_mismatch`` refuses it with a plain IPv4 address
        (``_plain_nat_options``: the family is told by the address's spelling alone)."""
        self.diagnostics: list[str] = []
        self.sections: list[_Section] = [_Section(table)]
        self.chain: _ChainState | None = None
        self.columns: _Columns | None = None
        self.headers: dict[str, _Columns] = {}
        """Column header line → its columns (shared by the chains under the same header)."""
        self.legacy_present = False
        self.line_no = 0
        self.line = ""
        self.notes: list[str] = []
        self.prompt_family: Family | None = None
        """The family a pasted prompt line's command names (``ip6tables``), if any."""
        self.names_assumed: set[str] = set()
        self.counts = {"unknown_text": 0, "unknown_host": 0, "rounded": 0, "no_iface": 0}
        self.protocols: dict[str, tuple[Protocol | None, str]] = {}
        """Protocol column → (its Protocol, its name for the match decoders: "" when none or
        negated)."""
        self.comments: dict[str, Match | None] = {}
        """Text of a leading ``/* comment */`` → its match (``_comment_match``)."""
        self.unknown_targets = False
        """Whether a rule of the table being built has a target of kind UNKNOWN."""
        self.cut_in: dict[str, None] = {}
        """The chains in which the dumping tool stopped (``is_tool_diagnostic`` lines)."""

    def error(self, reason: str, token: str | None = None) -> ParseError:
        return ParseError(reason, source=self.source, line_no=self.line_no, line=self.line,
                          token=token)

    # -- phase 1: lines --------------------------------------------------------------------

    def feed(self, text: str) -> None:
        """Split ``text`` into chains and rows (phase 1). A rule line of the usual shape is
        split here; anything else goes through ``line_of`` (chain and column headers,
        comments, rows needing a second look, errors)."""
        rows: list[_Row] | None = None  # the current chain's rows, once its header is read
        count = opt_i = 0
        num = False
        opts = _OPT
        for line_no, raw in enumerate(split_lines(text), 1):  # at "\n" only
            if rows is not None:
                if num and raw[:1].isdigit():  # a numbered rule line (not blank, '#', 'Chain')
                    parts = raw.split(None, count)
                    if len(parts) >= count and parts[opt_i] in opts and _decimal(parts[0]):
                        rows.append((line_no, raw, parts))
                        continue
                line = raw.strip()
                if not line:
                    continue
                if line.startswith("Chain "):
                    self.line_no = line_no
                    self.line = raw
                    self.header(line)
                    rows = None  # until the column header
                    continue
                if line[0] != "#":
                    parts = raw.split(None, count)
                    if len(parts) >= count and parts[opt_i] in opts \
                            and (not num or _decimal(parts[0])):
                        rows.append((line_no, raw, parts))
                        continue
            self.line_of(line_no, raw)
            chain, columns = self.chain, self.columns
            if chain is None or columns is None:
                rows = None
            else:
                rows = chain.rows
                count, opt_i, num = columns.count, columns.opt, columns.num

    def line_of(self, line_no: int, raw: str) -> None:
        """Any line of the listing."""
        self.line_no = line_no
        self.line = raw
        line = raw.strip()
        if not line:
            return
        if line[0] == "#":
            self.comment(line)
        elif line.startswith("Chain "):
            self.header(line)
        elif self.prompt_line(line):
            return
        elif self.chain is None:
            word = line.split()[0]
            raise self.error(f"unexpected {word!r} before the first 'Chain' line "
                             "(not an iptables -L listing?)", word)
        elif self.columns is None:  # the line after each 'Chain' line
            self.column_header(line)
            if self.columns is not None and self.columns.assumed:
                self.chain_row(raw)
        else:
            self.chain_row(raw)

    def chain_row(self, raw: str) -> None:
        """One rule line; in lenient mode a line that is not one (an annotation pasted into the
        listing) is kept as a diagnostic and makes its chain incomplete. So is, in strict mode
        too, what iptables-nft printed where it could not render a rule (``Error: ...``,
        ``Parsing nftables rule failed``): the listing stops there."""
        assert self.chain is not None
        if is_tool_diagnostic(raw.strip()):
            self.skip("iptables could not print the rest (nft list ruleset shows it)")
            self.cut_in.setdefault(self.chain.name, None)
            return
        try:
            parts = self.row(raw)
        except ParseError as exc:
            if self.strict:
                raise
            self.skip(f"not a rule line, skipped ({exc.reason})")
            return
        self.chain.rows.append((self.line_no, raw, parts))

    def skip(self, why: str) -> None:
        """Lenient mode: keep the current line as a diagnostic; its chain is incomplete."""
        text = f"{self.source}:{self.line_no}: {why}: {self.line.strip()!r}"
        self.diagnostics.append(text)
        if self.chain is not None and self.chain.incomplete is None:
            self.chain.incomplete = text

    def prompt_line(self, line: str) -> bool:
        """A pasted shell prompt line (``$ sudo iptables -t nat -L -n``): skipped with a note
        (True); its ``-t`` names the table of what follows, its tool the family
        (natlens.parse.prompt)."""
        command = shell_command(line)
        if command is None:
            return False
        shown = line if len(line) <= EXCERPT_LIMIT else \
            f"{line[:EXCERPT_LIMIT]}… ({len(line):,} characters)"
        self.notes.append(f"{self.source}:{self.line_no}: shell prompt line skipped "
                          f"(the command the text came from): {shown}")
        if command.family is Family.IPV6:
            self.prompt_family = command.family
        if command.table is not None:
            self.name_table(command.table)
        self.chain = None
        self.columns = None
        return True

    def name_table(self, table: TableName) -> None:
        """What follows is ``table``'s: a new section unless the current one is still empty."""
        current = self.sections[-1]
        if current.chains or (current.table is not None and current.table is not table):
            self.sections.append(_Section(table))
        else:
            current.table = table

    def comment(self, line: str) -> None:
        if self.prompt_line(line):
            return
        if line.startswith(("# Warning: iptables-legacy tables present",
                            "# Warning: ip6tables-legacy tables present")):
            self.legacy_present = True
            return
        words = line[1:].split()
        if len(words) == 2 and words[0] == "table":
            try:
                table = TableName(words[1])
            except ValueError:
                raise self.error(f"unknown table {words[1]!r}", words[1]) from None
            self.name_table(table)
            self.chain = None

    def header(self, line: str) -> None:
        rest = line[6:].strip()
        name, _, info = rest.partition(" ")
        info = info.strip()
        if not name or not info.startswith("(") or not info.endswith(")"):
            raise self.error("bad chain line (expected 'Chain NAME (policy P ...)' or "
                             "'Chain NAME (N references)')")
        words = info[1:-1].replace(",", " ").split()
        builtin = False
        policy: str | None = None
        counters: Counters | None = None
        approximate = False
        references: int | None = None
        if words and words[0] == "policy":
            builtin = True
            if len(words) < 2 or words[1] not in _POLICIES:
                bad = words[1] if len(words) > 1 else None
                raise self.error(f"bad policy {bad!r}" if bad else "policy without a verdict",
                                 bad)
            policy = words[1]
            if len(words) > 2:
                if len(words) != 6 or words[3] != "packets" or words[5] != "bytes":
                    raise self.error("bad policy counters (expected 'N packets, M bytes')")
                packets, exact_p = self.count(words[2])
                byte_count, exact_b = self.count(words[4])
                counters = Counters(packets, byte_count)
                approximate = not (exact_p and exact_b)
        elif len(words) == 2 and words[1] == "references" and _decimal(words[0]):
            references = int(words[0])
        else:
            raise self.error(f"bad chain line: {info!r}")
        section = self.sections[-1]
        if name in section.chains:
            raise self.error(f"chain {name!r} listed twice (separate the listings of several "
                             "tables with '# table NAME' lines)", name)
        state = _ChainState(name, builtin, policy, counters, approximate,
                            new_origin(self.source, self.line_no, self.line),
                            references=references)
        section.chains[name] = state
        self.chain = state
        self.columns = None

    def column_header(self, line: str) -> None:
        assert self.chain is not None
        columns = self.headers.get(line)
        if columns is None:
            columns = self.read_column_header(line)
            if columns.assumed:
                self.notes.append(f"{self.source}:{self.line_no}: no column header after the "
                                  "'Chain' line: read as 'target prot opt source destination'")
            else:
                self.headers[line] = columns  # the same header above every chain
        self.columns = self.chain.columns = columns

    def read_column_header(self, line: str) -> _Columns:
        words = line.split()
        if "target" not in words or "source" not in words or words[-1] != "destination":
            if not self.strict:
                # A paste without its header line: read as `iptables -L -n` columns when
                # the line is a rule, else skip it (an annotation).
                return _Columns(False, False, False, 5, 2, assumed=True)
            raise self.error("expected the column header ('target prot opt source "
                             "destination') after the 'Chain' line", words[0])
        counters = "pkts" in words
        iface = "in" in words
        num = words[0] == "num"
        expect = ["num"] if num else []
        expect += ["pkts", "bytes"] if counters else []
        expect += ["target", "prot", "opt"] + (["in", "out"] if iface else [])
        expect += ["source", "destination"]
        if words != expect:
            raise self.error("unexpected column header", words[0])
        return _Columns(num, counters, iface, len(words), words.index("opt"))

    def count(self, text: str) -> tuple[int, bool]:
        if _decimal(text):
            return int(text), True
        factor = _SUFFIX.get(text[-1:])
        if factor is None or not _decimal(text[:-1]):
            raise self.error(f"bad counter {text!r}", text)
        return int(text[:-1]) * factor, False

    def row(self, raw: str) -> list[str]:
        """The columns of a rule line (``_Row``); raises ParseError when it is not one."""
        cols = self.columns
        assert cols is not None
        parts = raw.split(None, cols.count)
        opt_i = cols.opt
        if len(parts) > opt_i and parts[opt_i] not in _OPT:
            if parts[opt_i - 1] in _OPT:
                # Empty target column (a rule without -j): one column fewer.
                parts = raw.split(None, cols.count - 1)
                parts.insert(opt_i - 2, "")
            else:
                # ip6tables before 1.8 printed blanks in the opt column (no fragment flag).
                alt = raw.split(None, cols.count - 1)
                src = cols.count - 3
                if len(alt) > src and (":" in alt[src] or alt[src] == "anywhere"):
                    alt.insert(opt_i, "--")
                    parts = alt
        if len(parts) < cols.count:
            raise self.error(f"rule line with {len(parts)} columns, expected {cols.count}")
        if cols.num and not _decimal(parts[0]):
            raise self.error(f"bad rule number {parts[0]!r}", parts[0])
        opt = parts[opt_i]
        if opt not in _OPT:
            raise self.error(f"bad opt column {opt!r} (expected '--', '-f' or '!f')", opt)
        return parts

    # -- phase 2: rules -----------------------------------------------------------------------

    def family_of(self) -> Family:
        family = self.family_evidence()
        if family is None:
            self.notes.append(f"{self.source}: the listing does not show its address family "
                              "(no numeric address); read as IPv4")
            return Family.IPV4
        return family

    def family_evidence(self) -> Family | None:
        for section in self.sections:
            for chain in section.chains.values():
                if chain.columns is None:
                    continue
                opt_i = chain.columns.opt
                at = opt_i + 3 if chain.columns.iface else opt_i + 1
                for _, _, parts in chain.rows:
                    for addr in (parts[at], parts[at + 1]):
                        text = addr.lstrip("!")
                        if ":" in text:
                            return Family.IPV6
                        if text[:1].isdigit():
                            return Family.IPV4
                    if parts[opt_i - 1].lstrip("!") in ("ipv6-icmp", "58", "icmpv6"):
                        return Family.IPV6
        return None

    def result(self, family: Family | None) -> Ruleset:
        if family is None:
            family = self.prompt_family or self.family_of()
        version = 6 if family is Family.IPV6 else 4
        for memo in (self.decoded, self.chain_targets, self.nat_templates, self.addresses,
                     self.plain_nat_probes):
            memo.clear()  # each holds decodings for one family
        tables: list[Table] = []
        for section in self.sections:
            if not section.chains and (section.table is None or len(self.sections) > 1):
                continue
            tables.append(self.table(section, version))
        # Only iptables-nft warns about legacy tables, so the warning tells the backend.
        return Ruleset(family=family, tables=tuple(tables), source=self.source, format="listing",
                       backend="nf_tables" if self.legacy_present else None,
                       legacy_tables_present=self.legacy_present, notes=tuple(self.make_notes()),
                       coverage=self.coverage(tables))

    def coverage(self, tables: list[Table]) -> Coverage:
        """A listing shows the tables it lists; a table in part when a built-in chain is not
        listed or a rule jumps to a chain that is not (``-L CHAIN`` lists one chain); the
        ``(N references)`` of each user chain header is kept."""
        partial: list[tuple[TableName, frozenset[str]]] = []
        references: list[tuple[TableName, str, int]] = []
        incomplete: list[tuple[TableName, str, str]] = []
        sections = [s for s in self.sections if s.chains or (s.table is not None
                                                             and len(self.sections) == 1)]
        for section, table in zip(sections, tables, strict=True):
            shown = {c.name for c in table.chains}
            # A rule's target of kind CHAIN is a chain of its table (``decode_rest``), one
            # of kind UNKNOWN is not: the table is listed in part.
            if not set(BUILTIN_CHAINS[table.name]) <= shown or section.unknown_targets:
                partial.append((table.name, frozenset(shown)))
            for state in section.chains.values():
                if state.references is not None:
                    references.append((table.name, state.name, state.references))
                if state.incomplete is not None:
                    incomplete.append((table.name, state.name, state.incomplete))
        return Coverage(tables=frozenset(t.name for t in tables), partial=tuple(partial),
                        references=tuple(references), incomplete=tuple(incomplete),
                        diagnostics=tuple(self.diagnostics))

    def table(self, section: _Section, version: int) -> Table:
        name = section.table
        names = set(section.chains)
        if name is None:
            name = infer_table(
                [c.name for c in section.chains.values() if c.builtin],
                [parts[c.columns.opt - 2] for c in section.chains.values()
                 if c.columns is not None for _, _, parts in c.rows],
            )
            self.notes.append(f"{self.source}: listing does not name its table; read as table "
                              f"{name.value} (inferred from its chains and targets)")
        builtins = BUILTIN_CHAINS[name]
        chains: list[Chain] = []
        for state in section.chains.values():
            if state.builtin and state.name not in builtins:
                raise ParseError(f"chain {state.name} has a policy but is not a built-in chain "
                                 f"of table {name.value}", source=self.source,
                                 line_no=state.origin.line, line=state.origin.text,
                                 token=state.name)
            if state.approximate:
                self.counts["rounded"] += 1
            rules: tuple[Rule, ...] = ()
            if state.columns is not None:
                rule, cols, chain = self.rule, state.columns, state.name
                rules = tuple([rule(chain, row, cols, names, version) for row in state.rows])
            chains.append(new_chain(state.name, state.builtin, state.policy, state.counters,
                                    rules, state.origin))
        section.unknown_targets = self.unknown_targets
        self.unknown_targets = False
        return Table(name, tuple(chains))

    def rule(self, chain: str, row: _Row, cols: _Columns, chains: set[str],
             version: int) -> Rule:
        """The rule of one row of ``chain`` (its columns ``cols``); ``chains``: the names of
        the chains listed in its table."""
        line_no, raw, parts = row
        self.line_no = line_no
        self.line = raw
        opt_i = cols.opt
        unknown: set[str] | None = None
        counters = None
        if cols.counters:
            packets_text, bytes_text = parts[opt_i - 4], parts[opt_i - 3]
            if packets_text == "0" and bytes_text == "0":
                counters = _NO_TRAFFIC
            elif _decimal(packets_text) and _decimal(bytes_text):  # -x: exact counts
                counters = Counters(int(packets_text), int(bytes_text))
            else:
                packets, exact_p = self.count(packets_text)
                byte_count, exact_b = self.count(bytes_text)
                counters = Counters(packets, byte_count)
                if not (exact_p and exact_b):
                    unknown = {"counters"}
                    self.counts["rounded"] += 1
        if cols.iface:
            in_text, out_text = parts[opt_i + 1], parts[opt_i + 2]
            in_iface = None if in_text in _NO_IFACE else self.interface(in_text)
            out_iface = None if out_text in _NO_IFACE else self.interface(out_text)
            at = opt_i + 3
        else:
            unknown = unknown or set()
            unknown.update(("in_interface", "out_interface", "counters"))
            self.counts["no_iface"] += 1
            in_iface = out_iface = None
            at = opt_i + 1
        try:
            protocol, proto = self.protocols[parts[opt_i - 1]]
        except KeyError:
            protocol = self.protocol(parts[opt_i - 1])
            proto = protocol.name if protocol is not None and not protocol.negated else ""
            self.protocols[parts[opt_i - 1]] = protocol, proto
        addresses = self.addresses
        source_text, destination_text = parts[at], parts[at + 1]
        found = addresses.get(source_text)
        if found is None:
            found = addresses[source_text] = self.address(source_text, version)
        src, src_status = found
        found = addresses.get(destination_text)
        if found is None:
            found = addresses[destination_text] = self.address(destination_text, version)
        dst, dst_status = found
        if src_status:
            unknown = self.address_status(src_status, "source", unknown)
        if dst_status:
            unknown = self.address_status(dst_status, "destination", unknown)
        comment, decoded, target, other_family = self.decode_rest(
            parts[opt_i - 2], parts[at + 2] if len(parts) > at + 2 else "", proto, chains,
            version)
        if decoded.unknown:
            unknown = unknown or set()
            unknown.update(decoded.unknown)
            if decoded.unknown_text:
                self.counts["unknown_text"] += 1
        if target is not None and target.kind is TargetKind.UNKNOWN:
            self.unknown_targets = True
        rule = new_rule(chain, src, dst, in_iface, out_iface, protocol, _OPT[parts[opt_i]],
                        decoded.matches if comment is None else (comment, *decoded.matches),
                        target, decoded.goto, counters, new_origin(self.source, line_no, raw),
                        _NOTHING if unknown is None else frozenset(unknown))
        # e.g. DNAT to:[::1] in an IPv4 listing. Whether the match and target text names the
        # other family is known per decoded text (and per chain name); a comment never names
        # a family.
        if other_family or (src is not None and src.network.version != version) \
                or (dst is not None and dst.network.version != version) or not self.memo:
            mismatch = family_mismatch(rule, version)
            if mismatch is not None:
                raise self.error(mismatch[0], mismatch[1])
        return rule

    def interface(self, text: str | None) -> Interface | None:
        if text is None or text in _NO_IFACE:
            return None
        iface = _interface(text)
        if iface is None:
            raise self.error(f"bad interface {text!r}", text)
        return iface

    def protocol(self, text: str) -> Protocol | None:
        protocol = _protocol(text)
        if protocol is False:
            raise self.error(f"unknown protocol {text!r}", text)
        return protocol

    def address(self, text: str, version: int) -> tuple[Address | None, str]:
        """The source or destination column → ``(address, status)`` as ``_address`` reads it
        (status: ``""``, ``"unknown"`` or ``"NAME = ADDRESS"``)."""
        try:
            return _address(text, version)
        except ValueError as exc:
            raise self.error(str(exc), text) from None

    def address_status(self, status: str, which: str, unknown: set[str] | None) -> set[str] | None:
        """Note an address column that is a name: ``"unknown"`` (cannot be resolved with
        certainty: ``which`` becomes unknown) or a well-known name read by its meaning."""
        if status == "unknown":
            unknown = unknown or set()
            unknown.add(which)
            self.counts["unknown_host"] += 1
        else:
            self.names_assumed.add(status)
        return unknown

    def decode_rest(
        self, name: str, text: str, proto: str, chains: set[str], version: int,
    ) -> tuple[Match | None, _Decoded, Target | None, bool]:
        """The target column ``name`` and the ``text`` after the destination column of a row →
        (its leading comment's match or None, the rest decoded, the rule's target, whether
        ``family_mismatch`` may refuse the matches or the target in this family). ``proto``:
        the protocol's name ("" when none or negated).

        The decoding is a function of the text, the target column, the protocol and whether
        the target is a listed chain, so it is made once per distinct text: on kube-proxy
        listings only the leading ``/* comment */`` and the target chain (``KUBE-SVC-*``) are
        unique per rule. A leading comment decodes alone exactly as ``decode_text`` would
        decode it (the first word; no state carried to the words after it) except for
        ``CT``, whose ``NOTRACK`` is looked for in the whole text. A listed chain's name
        matters only as the target's name unless a target decoder has that name."""
        comment: Match | None = None
        after_comment = False
        if not self.memo:
            whole = self.decode_text(
                (text, name, proto, name in chains, name == "CT" and "NOTRACK" in chains,
                 False),
                version)
            return None, whole, whole.target, True
        if text.startswith("/* ") and name != "CT":
            end = text.find(" */", 2)
            if end >= 0:
                said = text[3:end]
                comment = self.comments.get(said, _UNREAD)
                if comment is _UNREAD:
                    comment = self.comments[said] = _comment_match(said)
                if comment is not None:
                    text = text[end + 3:]
                    after_comment = True
        is_chain = name in chains
        chain_target: tuple[Target, bool] | None = None
        if is_chain and name != "CT" and name not in _TARGET_DECODERS:
            chain_target = self.chain_targets.get(name)
            if chain_target is None:
                # _family_probe((), target, version): with no option, only the name
                # can belong to one family (extension_family).
                one_family = _ONE_FAMILY_TARGETS.get(name)
                chain_target = (new_target(name, (), TargetKind.CHAIN),
                                one_family is not None and one_family != version)
                self.chain_targets[name] = chain_target
            name = _A_CHAIN
        # CT with NOTRACK is the NOTRACK target, which may be a listed chain's name too.
        key = (text, name, proto, is_chain, name == "CT" and "NOTRACK" in chains,
               after_comment)
        decoded = self.decoded.get(key)
        if decoded is None:
            nat = self.decode_nat(key, version)
            if nat is not None:  # not a listed chain
                return comment, *nat
            decoded = self.decode_text(key, version)
            self.decoded[key] = decoded
        if chain_target is None:
            return comment, decoded, decoded.target, decoded.other_family
        return comment, decoded, chain_target[0], decoded.other_family or chain_target[1]

    def decode_text(self, key: _TextKey, version: int,
                    track: _TrackingCursor | None = None) -> _Decoded:
        """Decode the words after the destination column: ``[goto]``, then each match's
        print text (``matches``), then the target's (``targets``); text no decoder reads is
        kept verbatim as an unknown match. ``after_comment``: ``rest`` follows a leading
        ``/* comment */`` (no ``[goto]`` can start it); ``is_chain`` / ``notrack_chain``: the
        target column / ``NOTRACK`` is a listed chain. Raises ParseError for ``[goto]`` without
        a target. With ``track`` (an empty tracking cursor), the decoding runs on it, and
        ``track.words`` / ``track.taken`` / ``track.target_span`` tell what it read."""
        rest, name, proto, is_chain, notrack_chain, after_comment = key
        if after_comment:
            # Blanks are the only white space and nothing is quoted: _split_words is split().
            plain = '"' not in rest and "/*" not in rest and rest.isprintable()
            words = rest.split() if plain else _split_words(rest)
        else:
            words = (_split_words(rest) if '"' in rest or "/*" in rest else rest.split()) \
                if rest else []
        goto = False
        if not after_comment and words and words[0] == "[goto]":
            goto = True
            words = words[1:]
        c = _Cursor(words, 0, proto)
        if track is not None:
            c = track
            track.words, track.proto = words, proto
        matches: list[Match] = []
        raw: list[str] = []
        target_opts: tuple[Option, ...] | None = None
        target_decoder = _TARGET_DECODERS.get(name)
        had_raw = False
        while c.i < len(words):
            start = c.i
            neg = c.negation()
            word = c.peek()
            decoder = _comment if word.startswith("/* ") else _MATCH_DECODERS.get(word)
            decoded: Match | None = None
            if decoder is not None:
                try:
                    decoded = decoder(c, neg)
                except (_UndecodableError, ValueError, LookupError):
                    c.i = start
            if decoded is not None:
                had_raw |= self.flush(raw, matches)
                matches.append(decoded)
                continue
            c.i = start
            if target_decoder is not None and target_opts is None:
                if track is not None:
                    track.in_target = True
                try:
                    opts = _target_options(name, target_decoder(name, c))
                except (_UndecodableError, ValueError, LookupError):
                    opts = None
                if track is not None:
                    track.in_target = False
                if opts is not None and c.i > start:
                    had_raw |= self.flush(raw, matches)
                    target_opts = opts
                    if track is not None:
                        track.target_span = (start, c.i)
                    continue
                c.i = start
            raw.append(c.take())
        had_raw |= self.flush(raw, matches)
        unknown: set[str] = set()
        if had_raw:
            unknown.add("matches")
        target: Target | None = None
        if len(name) > _MAX_EXTENSION_NAME // 4 and name_bytes(name) > _MAX_EXTENSION_NAME:
            raise self.error(f"invalid target name {name!r} ({_MAX_EXTENSION_NAME} bytes max)",
                             name)
        if name:
            if name == "CT" and target_opts == () and "NOTRACK" in rest.split():
                name = "NOTRACK"
                is_chain = notrack_chain
            if is_chain:
                target = Target(name, (), TargetKind.CHAIN)
            elif name in VERDICT_TARGETS:
                target = Target(name, (), TargetKind.VERDICT)
            elif name in TARGETS:
                target = Target(name, target_opts or (), TargetKind.EXTENSION)
                if target_opts is None and (had_raw or target_decoder is None) and \
                        TARGETS[name].options:
                    unknown.add("target_options")
            else:
                target = Target(name, (), TargetKind.UNKNOWN)
                if had_raw:
                    unknown.add("target_options")
        elif goto:
            raise self.error("[goto] without a target chain", "[goto]")
        found = tuple(matches)
        return _Decoded(found, target, goto, frozenset(unknown), had_raw,
                        _family_probe(found, target, version))

    def decode_nat(self, key: _TextKey,
                   version: int) -> tuple[_Decoded, Target | None, bool] | None:
        """``decode_text(key)`` for a NAT rule's text that differs from an earlier one only in
        its last word, the target's ``to:ADDRESS`` (unique per rule on kube-proxy hosts:
        ``KUBE-SEP-*`` DNAT); None when the text is not of that shape (the caller decodes it
        whole).

        The first text of each shape is decoded whole on a tracking cursor; it is a template
        when the target decoder alone read its last word as the whole target (no match
        decoder took it, none was kept verbatim). The decoders only compare the words they
        look at with fixed words (none starting with ``to:``), so on a text with the same
        words before and another ``to:`` word the decoding takes the same steps; the target
        options of the new word are decoded as that step would, and the rest is the
        template's. Returns (the decoding whose matches, ``[goto]`` and unknown parts are
        the rule's, the rule's target, whether ``family_mismatch`` may refuse the matches or
        the target: checked on each apart, as in ``decode_text``)."""
        text, name, proto, is_chain, _, _ = key
        if _TARGET_DECODERS.get(name) is not _nat_target or is_chain or name not in TARGETS \
                or name in VERDICT_TARGETS:
            return None
        prefix, _, last = text.rpartition(" ")
        if not last.startswith("to:") or not prefix.strip(" ") or '"' in text \
                or "/*" in text or not text.isprintable():
            return None
        shape = (prefix, *key[1:])
        template = self.nat_templates.get(shape, _UNSET)
        if template is _UNSET:
            track = _TrackingCursor([])
            decoded = self.decode_text(key, version, track)
            n = len(track.words)
            ok = n > 0 and track.words[-1] == last and track.target_span == (n - 1, n) \
                and n - 1 not in track.taken and decoded.target is not None \
                and decoded.target.kind is TargetKind.EXTENSION
            self.nat_templates[shape] = (decoded, _family_probe(decoded.matches, None, version)) \
                if ok else None
            self.decoded[key] = decoded
            return decoded, decoded.target, decoded.other_family
        if template is None:
            return None
        assert isinstance(template, tuple)
        plain = _plain_nat_options(name, last)
        if plain is not None:
            # Whether family_mismatch refuses a plain IPv4 address: once per target name.
            probe = self.plain_nat_probes.get(name)
            if probe is None:
                probe = self.plain_nat_probes[name] = _family_probe(
                    (), new_target(name, plain, TargetKind.EXTENSION), version)
            return template[0], new_target(name, plain, TargetKind.EXTENSION), \
                template[1] or probe
        c = _Cursor([last], 0, proto)
        try:
            opts = _target_options(name, _nat_target(name, c))
        except (_UndecodableError, ValueError, LookupError):
            return None  # the whole decoding says what becomes of it
        if c.i != 1:
            return None
        target = Target(name, opts, TargetKind.EXTENSION)
        return template[0], target, template[1] or _family_probe((), target, version)

    @staticmethod
    def flush(raw: list[str], matches: list[Match]) -> bool:
        if not raw:
            return False
        matches.append(Match("?", (Option("--text", (" ".join(raw),)),), known=False))
        raw.clear()
        return True

    def make_notes(self) -> list[str]:
        notes = list(self.notes)
        if self.cut_in:
            notes.append(f"{self.source}: iptables could not print some rules and stopped in "
                         f"chain {', '.join(self.cut_in)}: the rest of that chain and the "
                         "chains after it are not in the listing; read 'nft list ruleset' for "
                         "what iptables cannot show")
        counts = self.counts
        if counts["no_iface"]:
            notes.append(f"{self.source}: listing without -v: interfaces and counters of "
                         f"{_count(counts['no_iface'], 'rule')} are unknown")
        if counts["rounded"]:
            notes.append(f"{self.source}: counters are rounded (K/M/G) in "
                         f"{_count(counts['rounded'], 'place')}; list with -x for exact counts")
        if counts["unknown_host"]:
            many = counts["unknown_host"] != 1
            notes.append(f"{self.source}: {counts['unknown_host']} "
                         f"{'addresses are' if many else 'address is a'} host or network "
                         f"name{'s' if many else ''} that cannot be resolved with certainty "
                         "(list with -n)")
        if self.names_assumed:
            notes.append(f"{self.source}: names read by their standard meaning: "
                         + ", ".join(sorted(self.names_assumed)))
        if counts["unknown_text"]:
            many = counts["unknown_text"] != 1
            notes.append(f"{self.source}: {_count(counts['unknown_text'], 'rule')} "
                         f"{'have' if many else 'has'} match or target text natlens cannot "
                         "decode (kept verbatim as unknown matches)")
        return notes


def _count(n: int, noun: str) -> str:
    """``1 rule``, ``2 rules``: English plural of a regular noun."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def parse_listing(
    text: str,
    *,
    source: str = "<string>",
    family: Family | str | None = None,
    table: TableName | str | None = None,
    strict: bool = True,
) -> Ruleset:
    """Parse ``iptables [-t TABLE] -L [-n] [-v] [-x] [--line-numbers]`` output into a Ruleset.

    ``Ruleset.coverage`` names the tables listed, the chains of a table listed in part
    (``-L CHAIN``) and the ``(N references)`` of chain headers. Lenient mode (``strict=False``)
    reads a chain without its column header and skips lines that are not rules (kept as
    diagnostics, their chain incomplete).

    ``table`` names the listed table (inferred from built-in chains and targets when omitted;
    a text may hold several tables separated by ``# table NAME`` lines). ``family`` overrides
    what the addresses tell. The result has ``format == "listing"``; what the listing could not
    tell is in each ``Rule.unknown`` and summarised in ``Ruleset.notes``. Raises ``ParseError``
    for text that is not a listing.
    """
    try:
        forced = TableName(table) if table is not None else None
        fam = Family(family) if family is not None else None
    except ValueError as exc:
        raise ParseError(str(exc), source=source) from None
    parser = _ListingParser(source, forced, strict)
    with collector_off(len(text)):  # natlens.parse.collector: off, then aged
        parser.feed(text)
        if not any(s.chains for s in parser.sections):
            raise ParseError("no 'Chain' line: not an iptables -L listing", source=source)
        ruleset = parser.result(fam)
        del parser  # its rows and memos
    return ruleset


