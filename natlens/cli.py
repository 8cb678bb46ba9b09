"""The ``natlens`` command: a thin layer over the public API.

Exit status (DESIGN.md): 0 clean, 1 findings at or above ``--fail-on``, 2 bad input or usage; bad
input prints one line naming the file and line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from natlens.cli_errors import MAX_LINE, Context, one_line, run

# The rest of natlens is imported by the command that needs it (``natlens --help`` and the
# start of every command stay fast: issue 13, <= 0.15 s).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from natlens.graph import ChainGraph
    from natlens.model import Family
    from natlens.netfilter import Packet, Step
    from natlens.snapshot import Snapshot

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that exits 2 with one line (no usage dump) on a bad command line."""

    _seen: tuple[str, ...] = ()

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("the following arguments are required"):
            # a mistyped option left a required argument out (``natlens --verison``): say so
            unknown = next((w for w in self._seen if self._unknown_option(w)), None)
            if unknown is not None:
                message = self._unrecognized(unknown)
        sys.stderr.write(f"natlens: error: {one_line(message)} (see '{self.prog} --help')\n")
        raise SystemExit(2)

    def parse_known_args(  # type: ignore[override]
            self, args: Sequence[str] | None = None,
            namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        """argparse's, then an error for the first word left over that looks like an option
        (``--fromat``), with the closest option of this (sub)command: argparse itself takes
        unambiguous abbreviations (``--form``) but names no close match (before Python 3.14)."""
        self._seen = tuple(sys.argv[1:] if args is None else args)
        parsed, extras = super().parse_known_args(args, namespace)
        for word in extras:
            if self._unknown_option(word):
                self.error(self._unrecognized(word))
        return parsed, extras

    def _unknown_option(self, word: str) -> bool:
        """Whether ``word`` looks like an option that is none of this parser's (nor an
        unambiguous abbreviation of one, which argparse takes)."""
        if len(word) < 2 or not word.startswith("-") or word == "--" \
                or self._negative_number_matcher.match(word):
            return False
        option = word.partition("=")[0]
        known = [s for a in self._actions for s in a.option_strings]
        if not option.startswith("--"):
            return option[:2] not in known  # -oFILE: a short option and its value
        return option not in known and not any(k.startswith(option) for k in known)

    def _unrecognized(self, word: str) -> str:
        """``unrecognized option '--fromat' (did you mean '--format'?)``: the closest option
        by ``difflib`` (ratio at least 0.7), one with the same letters first (a transposition:
        ``--porto`` is ``--proto``, not ``--sport``)."""
        import difflib  # noqa: PLC0415

        option = word.partition("=")[0]
        known = [s for a in self._actions for s in a.option_strings]
        close = difflib.get_close_matches(option, known, n=5, cutoff=0.7)
        close.sort(key=lambda c: sorted(c) != sorted(option))  # stable: ratio order kept
        return f"unrecognized option {word!r}" + (f" (did you mean {close[0]!r}?)" if close
                                                  else "")


def _add_common(p: argparse.ArgumentParser, *, optional_path: bool = False) -> None:
    p.add_argument("path", nargs="?",
                   help="snapshot folder, iptables-save / -S / -L file, or - for stdin")
    p.add_argument("--example", action="store_true",
                   help="read the sample snapshot shipped with natlens (docker run -p 8080:80 "
                        "on the default bridge) instead of PATH")
    p.add_argument("--color", type=str.lower, choices=("auto", "always", "never"),
                   default="auto", help="colour the output: auto (a terminal, unless NO_COLOR "
                   "is set), always or never (default: auto)")
    p.set_defaults(needs_path=not optional_path)
    p.add_argument("--lenient", action="store_true",
                   help="accept restore input iptables-save never writes (unquoted comments, "
                        "'-' policies on built-in chains), with a warning per line")
    p.add_argument("--input-table", dest="input_table", metavar="TABLE",
                   type=str.lower, choices=("raw", "mangle", "nat", "filter", "security"),
                   help="table of a single 'iptables -S' or '-L' file (default: inferred from "
                        "its chains and targets)")
    p.add_argument("--restore-flush", dest="restore_flush", action="store_true",
                   help="a table given twice replaces the earlier section (iptables-restore "
                        "without --noflush; default: merged as with --noflush)")
    p.add_argument("--allow-empty", dest="allow_empty", action="store_true",
                   help="accept input with no table at all (default: an error, as an empty "
                        "dump is nearly always a failed capture)")
    p.add_argument("--no-cache", dest="no_cache", action="store_true",
                   help="neither read nor write the snapshot cache ($XDG_CACHE_HOME/natlens; "
                        "see 'natlens cache')")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress line on standard error (it is shown only on a terminal, "
                        "for work that takes more than a second)")


def _add_host(p: argparse.ArgumentParser) -> None:
    """Host addresses a user states, added to those of ip-addr.json (or the only ones known
    when the input has none: natlens.snapshot.with_stated_host)."""
    p.add_argument("--host-addr", dest="host_addr", action="append", default=[], metavar="IP",
                   help="an address of the host, on no interface in particular, added to those "
                        "of ip-addr.json (repeatable; with neither, the host's addresses are "
                        "unknown)")
    p.add_argument("--iface", dest="iface", action="append", default=[],
                   metavar="NAME=IP/PREFIX",
                   help="an interface of the host and its address, added to those of "
                        "ip-addr.json (repeatable)")


def _load(args: argparse.Namespace) -> Snapshot:
    """Load PATH with the common options (and the stated host addresses, if any), through
    the snapshot cache (``natlens.snapshot_cache``) unless ``--no-cache``."""
    from natlens.errors import ParseError  # noqa: PLC0415
    from natlens.snapshot_cache import load_cached  # noqa: PLC0415

    try:
        snap = load_cached(args.path, strict=not args.lenient, table=args.input_table,
                           restore_flush=args.restore_flush, allow_empty=args.allow_empty,
                           addresses=getattr(args, "host_addr", ()),
                           interfaces=getattr(args, "iface", ()),
                           use_cache=not getattr(args, "no_cache", False),
                           freeze=True,  # the model lives until exit: no collection walks it
                           progress=_progress(args))
    except ParseError as exc:
        if not args.lenient and _lenient_reads(args):
            exc.args = (_with_hint(str(exc), LENIENT_HINT),)
        raise
    if getattr(args, "exiting", False):
        _KEPT.append(snap)  # never freed: the process ends without teardown
    _progress(args)("preparing")
    return snap


LENIENT_HINT = "(--lenient reads it as far as it tells)"
"""Ends a strict parse error when ``--lenient`` would read the same input."""


def _lenient_reads(args: argparse.Namespace) -> bool:
    """Whether PATH, refused by the strict parser, loads with ``--lenient`` (not tried for
    standard input, which cannot be read twice). Its warnings are dropped: only the answer
    counts."""
    from natlens.errors import NatlensError  # noqa: PLC0415
    from natlens.snapshot import load  # noqa: PLC0415

    if args.path == "-":
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            load(args.path, strict=False, table=args.input_table,
                 restore_flush=args.restore_flush, allow_empty=args.allow_empty)
        except (NatlensError, OSError):
            return False
    return True


def _with_hint(message: str, hint: str) -> str:
    """``message`` then ``hint``, within the CLI's one-line bound (``cli_errors.MAX_LINE``,
    less ``natlens: error: ``): the message is cut, never the hint."""
    room = MAX_LINE - len("natlens: error: ") - len(hint) - 1
    return f"{one_line(message, room)} {hint}"


def _decided(args: argparse.Namespace, status: int) -> int:
    """``status`` is the command's exit status from here on, also when the reader of its output
    leaves before the end (``natlens.cli_errors.Context.status``; docs/cli.md, "Exit
    status"). A command calls it before it writes its answer → ``status``."""
    context = getattr(args, "context", None)
    if context is not None:
        context.status = status
    return status


def _progress(args: argparse.Namespace) -> Callable[[str], object]:
    """The command's progress line (``natlens.progress``): drawn on a terminal only, not
    with ``--quiet``; one per command."""
    bar = getattr(args, "progress_bar", None)
    if bar is None:
        from natlens.progress import Progress  # noqa: PLC0415

        bar = Progress.for_terminal(("parsing", "preparing", "analysing", "writing"),
                                    quiet=getattr(args, "quiet", False))
        args.progress_bar = bar
        if bar.enabled:  # the command's first output erases the bar first (main restores)
            from natlens.progress import ClearFirst  # noqa: PLC0415

            args.progress_streams = (sys.stdout, sys.stderr)
            sys.stdout = ClearFirst(sys.stdout, bar)
            sys.stderr = ClearFirst(sys.stderr, bar)
    return bar


def _cmd_cache(args: argparse.Namespace) -> int:
    from natlens import snapshot_cache  # noqa: PLC0415

    fmt = "json" if args.json else args.format
    if args.action != "list" and fmt is not None:
        from natlens.errors import UsageError  # noqa: PLC0415

        raise UsageError(f"{'--json' if args.json else '--format'}: only 'natlens cache list' "
                         f"has a format ('cache {args.action}' prints one line)")
    if args.action == "list":
        from natlens import cache_list  # noqa: PLC0415
        from natlens.termstyle import terminal_width  # noqa: PLC0415

        entries = cache_list.list_entries()
        _decided(args, 0)
        if fmt == "json":
            sys.stdout.write(json.dumps(cache_list.to_dict(entries, snapshot_cache.cache_dir()),
                                        indent=2) + "\n")
        else:
            sys.stdout.write(cache_list.render(entries, snapshot_cache.cache_dir(),
                                               terminal_width(sys.stdout)))
        return 0
    _decided(args, 0)
    if args.action == "clear":
        removed = snapshot_cache.clear()
        sys.stdout.write(f"natlens: removed {removed} cache entr"
                         f"{'y' if removed == 1 else 'ies'} from {snapshot_cache.cache_dir()}\n")
    else:
        sys.stdout.write(f"{snapshot_cache.cache_dir()}\n")
    return 0


def _cmd_parse(args: argparse.Namespace) -> int:
    from natlens.errors import UsageError  # noqa: PLC0415
    from natlens.model import Family  # noqa: PLC0415
    from natlens.serialize import ruleset_to_dict, to_save  # noqa: PLC0415

    snap = _load(args)
    if args.family is not None:
        rulesets = [snap.rules_for(Family(args.family))]
    else:
        rulesets = [rs for rs in (snap.ruleset, snap.ruleset6) if rs.tables] or [snap.ruleset]
    if len(rulesets) > 1:  # one stream of both would be input for neither *tables-restore
        raise UsageError(f"{snap.path}: holds IPv4 and IPv6 rules: add --family ipv4 (input "
                         "for iptables-restore) or --family ipv6 (for ip6tables-restore)")
    (ruleset,) = rulesets
    _decided(args, 0)
    if args.format == "json":
        sys.stdout.write(json.dumps(ruleset_to_dict(ruleset), indent=2) + "\n")
    else:
        sys.stdout.write(to_save(ruleset, counters=not args.no_counters,
                                 comments=not args.no_comments))
    return 0


def _cmd_snapshot(args: argparse.Namespace) -> int:
    from natlens.capture import capture  # noqa: PLC0415  (only this command needs subprocess/SDK)

    result = capture(args.dir, force=args.force, docker=not args.no_docker)
    _decided(args, 0)
    sys.stdout.write(f"natlens: snapshot of {result.meta.get('hostname')} written to "
                     f"{result.directory} (iptables backend: "
                     f"{result.meta.get('iptables_backend')})\n")
    for name in result.files:
        sys.stdout.write(f"  {name}\n")
    for note in result.notes:
        sys.stdout.write(f"  note: {note}\n")
    return 0


def _add_packet(p: argparse.ArgumentParser, *, required: bool) -> None:
    """The packet options shared by ``trace`` and ``graph --trace``."""
    where = p.add_mutually_exclusive_group(required=required)
    where.add_argument("--in", dest="in_interface", metavar="IFACE",
                       help="interface the packet arrives on")
    where.add_argument("--local-origin", action="store_true",
                       help="the packet is sent by a process on the host")
    p.add_argument("--src", required=required, metavar="IP",
                   help="source address (with --local-origin it may be left out: the address "
                   "the host sends from, as 'ip route get DST' picks it from the snapshot's "
                   "routes and addresses, said in the output)")
    p.add_argument("--dst", required=required, metavar="IP", help="destination address")
    p.add_argument("--proto", default="tcp", metavar="PROTO",
                   help="tcp, udp, icmp, icmpv6 or sctp, or its number (6, 17; "
                        "/etc/protocols), any case (default: tcp)")
    p.add_argument("--dport", metavar="PORT", help="destination port: a number or a service "
                   "name from /etc/services (http)")
    p.add_argument("--sport", metavar="PORT", help="source port (number or service name)")
    p.add_argument("--icmp-type", metavar="TYPE", help="ICMP type (number or name; default: "
                   "echo-request)")
    p.add_argument("--state", default="new", metavar="STATE",
                   help="conntrack state: new, established or related (default: new)")
    p.add_argument("--mark", default="0", metavar="MARK", help="packet mark (default: 0)")


# Packet's words for its fields → the trace options that give them (longest first).
_PACKET_FIELD_OPTIONS = (("packet destination port", "--dport"), ("packet source port", "--sport"),
                   ("packet destination", "--dst"), ("packet source", "--src"))


def _packet(args: argparse.Namespace) -> Packet:
    """The packet trace's options describe; a bad value raises UsageError naming the option."""
    from natlens.errors import UsageError  # noqa: PLC0415
    from natlens.netfilter import Packet  # noqa: PLC0415

    try:
        return Packet(in_interface=args.in_interface, local_origin=args.local_origin,
                      src=args.src, dst=args.dst, proto=args.proto, sport=args.sport,
                      dport=args.dport, icmp_type=args.icmp_type, state=args.state,
                      mark=args.mark)
    except UsageError as exc:
        message = str(exc)
        for words, option in _PACKET_FIELD_OPTIONS:
            if message.startswith(words):
                raise UsageError(f"{option}: {message[len('packet '):]}") from None
        raise


def _inferred_source(args: argparse.Namespace, snap: Snapshot) -> str | None:
    """``--local-origin`` without ``--src``: set ``args.src`` to the address the host would
    send from (``natlens.local_source``: ``ip route get DST``) and return the note that says
    so; None when ``--src`` is given. Raises ``UsageError`` when the snapshot cannot tell."""
    from natlens.local_source import local_source  # noqa: PLC0415

    if not args.local_origin or args.src is not None or args.dst is None:
        return None
    dst = _packet(argparse.Namespace(**{**vars(args), "src": args.dst})).dst  # --dst checked
    src, how = local_source(snap.host, dst)
    args.src = str(src)
    return how


def _cmd_trace(args: argparse.Namespace) -> int:
    from natlens import trace_hints  # noqa: PLC0415
    from natlens.api import simulate  # noqa: PLC0415
    from natlens.termstyle import paint, terminal_width, use_color, wrap_line  # noqa: PLC0415
    from natlens.textsafe import terminal  # noqa: PLC0415

    if args.packets is not None:
        return _trace_batch(args)
    if (args.src is None and not args.local_origin) or args.dst is None \
            or not (args.in_interface or args.local_origin):
        from natlens.errors import UsageError  # noqa: PLC0415

        raise UsageError("trace needs --in IFACE and --src, or --local-origin, and --dst (or "
                         "--packets FILE)")
    if args.src is None:  # --local-origin: the source the host would pick, from the snapshot
        _packet(argparse.Namespace(**{**vars(args), "src": args.dst}))  # the other options
        snap = _load(args)
        inferred = _inferred_source(args, snap)
        packet = _packet(args)
    else:
        inferred = None
        packet = _packet(args)
        snap = _load(args)
    trace = simulate(snap, packet)
    if inferred is not None:
        from dataclasses import replace  # noqa: PLC0415

        trace = replace(trace, notes=(inferred, *trace.notes))
    for message in (trace_hints.interface_warning(snap, packet),
                    trace_hints.protocol_hint(snap, packet)):
        if message is not None:
            word = "warning" if "interface" in message else "hint"
            sys.stderr.write(f"natlens: {word}: {one_line(message)}\n")
    status = _decided(args, trace_hints.exit_status(trace))
    if args.format == "json":
        sys.stdout.write(json.dumps(trace.to_dict(), indent=2) + "\n")
    elif args.format == "kernel":
        sys.stdout.write("".join(f"TRACE: {terminal(line)}\n" for line in trace.kernel_lines()))
    else:
        width = terminal_width(sys.stdout)
        color = use_color(args.color, sys.stdout)
        sys.stdout.write(f"natlens trace for {terminal(_shown(args, snap))}\n")
        for line in str(trace_hints.relative_to_snapshot(trace, snap)).split("\n"):
            if line.startswith("=> "):
                verdict = "green" if trace.verdict.value == "ACCEPT" else "red"
                line = paint(line, verdict, color)
            sys.stdout.write("".join(f"{part}\n" for part in wrap_line(line, width, 15)))
    return status


def _trace_batch(args: argparse.Namespace) -> int:
    """``trace --packets FILE``: every packet of FILE through one prepared snapshot."""
    from natlens.batch import packet_line, read_packets, simulate_many  # noqa: PLC0415
    from natlens.errors import UsageError  # noqa: PLC0415

    given = [o for o, v in (("--in", args.in_interface), ("--local-origin", args.local_origin),
                            ("--src", args.src), ("--dst", args.dst), ("--dport", args.dport),
                            ("--sport", args.sport), ("--icmp-type", args.icmp_type)) if v]
    if given:
        raise UsageError(f"--packets FILE gives the packets: {', '.join(given)} not allowed "
                         "with it")
    if args.format == "kernel":
        raise UsageError("--packets prints table or json, not kernel")
    if args.packets == "-" and args.path == "-":
        raise UsageError("PATH and --packets cannot both be standard input")
    numbered = read_packets(args.packets)  # its "in" field checked as --in is (names.py)
    snap = _load(args)
    _progress(args)("analysing")
    from natlens.termstyle import terminal_width, wrap_line  # noqa: PLC0415

    out = sys.stdout
    width = terminal_width(out)
    # each result written as soon as it is known: a reader that leaves (| head) stops the batch,
    # and the status is not decided before the last packet (EXIT_BROKEN_PIPE then)
    for line_no, packet in numbered:
        (trace,) = simulate_many(snap, (packet,))
        if args.format == "json":
            out.write(json.dumps({"line": line_no, **trace.to_dict()},
                                 separators=(",", ":")) + "\n")
        else:
            out.write("".join(f"{part}\n" for part in
                              wrap_line(packet_line(line_no, trace), width, 4)))
    return 0


def _live_snapshot(*, allow_empty: bool = False) -> Snapshot:
    """Capture this host into a temporary folder (read-only on the host) and load it."""
    import tempfile  # noqa: PLC0415
    from dataclasses import replace  # noqa: PLC0415

    from natlens.capture import capture  # noqa: PLC0415  (only live mode runs the tools)
    from natlens.snapshot import load  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="natlens-live-") as tmp:
        capture(Path(tmp) / "snapshot")
        snap = load(Path(tmp) / "snapshot", strict=False, allow_empty=allow_empty)
    return replace(snap, path="live host")


def _cmd_report(args: argparse.Namespace) -> int:
    from natlens import report  # noqa: PLC0415  (keeps `natlens parse` light)
    from natlens.audit import Severity  # noqa: PLC0415
    from natlens.errors import UsageError  # noqa: PLC0415

    if args.live == (args.path is not None):
        if args.live:
            raise UsageError(f"{args.path}: --live captures this host and reads no PATH: run "
                             f"'natlens report {args.path}' for the snapshot, or "
                             "'natlens report --live' alone for this host")
        raise UsageError("report needs a PATH, --example, or --live to capture this host")
    from natlens.derived_results import audit_findings, exposure_map  # noqa: PLC0415

    snap = _live_snapshot(allow_empty=args.allow_empty) if args.live else _load(args)
    _progress(args)("analysing")
    emap = exposure_map(snap)  # kept with the snapshot: a cached one answers from its entry
    findings = audit_findings(snap)
    threshold = Severity(args.fail_on)
    status = _decided(args, 1 if any(f.severity >= threshold for f in findings) else 0)
    if args.format == "json":
        sys.stdout.write(report.dumps(report.to_json(findings, snap, exposure=emap)))
    elif args.format == "sarif":
        sys.stdout.write(report.dumps(report.to_sarif(findings, snap)))
    else:
        from natlens.termstyle import paint, terminal_width, use_color  # noqa: PLC0415

        text = report.to_table(findings, snap, exposure=emap, name=_shown(args, snap),
                               columns=terminal_width(sys.stdout))
        if use_color(args.color, sys.stdout):
            colors = {"HIGH": "red", "MEDIUM": "yellow", "LOW": "bold"}
            lines = text.split("\n")
            for n, line in enumerate(lines):
                word, _, count = line.partition(" (")  # a heading: "HIGH (2)"
                if word in colors and count[:-1].isdigit() and count.endswith(")"):
                    lines[n] = paint(line, colors[word], True)
            text = "\n".join(lines)
        sys.stdout.write(text)
    return status


def _cmd_exposure(args: argparse.Namespace) -> int:
    from natlens.derived_results import exposure_map  # noqa: PLC0415
    from natlens.exposure_render import WIDTH, render_table  # noqa: PLC0415
    from natlens.report import dumps  # noqa: PLC0415
    from natlens.termstyle import terminal_width  # noqa: PLC0415

    emap = exposure_map(_load(args))
    _decided(args, 0)
    if args.format == "json":
        sys.stdout.write(dumps(emap.to_dict()))
    else:
        sys.stdout.write(render_table(emap, terminal_width(sys.stdout) or WIDTH) + "\n")
    return 0


_PACKET_OPTIONS = ("in_interface", "local_origin", "src", "dst", "proto", "dport", "sport",
                   "icmp_type", "state", "mark")
_PACKET_FLAGS = {"in_interface": "--in"}
"""Options whose spelling (``_packet_options``) is not their destination's name."""
_GRAPH_EXTENSIONS = {".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid",
                     ".json": "json", ".svg": "svg"}


def _graph_format(given: str | None, output: str | None) -> str:
    """The format of ``natlens graph``: ``--format``, else the extension of ``-o FILE``, else
    dot. Raises ``UsageError`` for an extension natlens cannot write or one that contradicts
    ``--format``."""
    from natlens.errors import UsageError  # noqa: PLC0415

    if output in (None, "-"):
        return given or "dot"
    ext = Path(output).suffix.lower()
    known = _GRAPH_EXTENSIONS.get(ext)
    if known is None:
        shown = ", ".join(_GRAPH_EXTENSIONS)
        what = f"'{ext}'" if ext else "a name without extension"
        raise UsageError(f"{output}: natlens graph writes {shown} files, not {what} (for PNG: "
                         "write .svg and convert it, e.g. rsvg-convert -o graph.png graph.svg)")
    if given is not None and given != known:
        raise UsageError(f"{output}: --format {given} but the file name says {known}")
    return known


def _chain_graph(snap: Snapshot, family: Family) -> ChainGraph:
    """The chain graph of ``family``: the iptables tables, then the native nft tables the
    family's packets meet (``natlens.graph_nft``; not those the iptables dumps hold)."""
    from natlens import graph  # noqa: PLC0415
    from natlens.graph_nft import nft_graphs  # noqa: PLC0415
    from natlens.netfilter.nftchains import iptables_nft_tables  # noqa: PLC0415

    ruleset = snap.rules_for(family)
    chains = graph.build(ruleset, labels=False)  # labelled once collapsed (_cmd_graph)
    if snap.nft is None:
        return chains
    skip = iptables_nft_tables(snap.backend, snap.ruleset, snap.ruleset6, snap.other_backend,
                               snap.other_backend6)
    tables = {name: g for name, g in chains.tables.items() if g.number_of_nodes()}
    tables.update(nft_graphs(snap.nft, family, skip))
    source = ruleset.source if ruleset.tables else snap.nft.source
    return graph.ChainGraph(family, tables, source)


def _layout_hint(args: argparse.Namespace) -> str:
    """What ``graph`` could be given, that it was not, to draw fewer chains (the warning before
    a layout too big for Graphviz): ``--table`` when it draws every table, fewer ``--chain``
    when some are given, no ``--expand`` when it is; a format Graphviz does not lay out when
    nothing else is left."""
    ways = []
    if not args.table:
        ways.append("--table TABLE")
    if args.chain:
        ways.append("fewer --chain")
    if args.expand:
        ways.append("no --expand")
    unlaid = ("write --format dot or mermaid instead (no layout)" if args.output in (None, "-")
              else "write a .dot or .mmd file instead (no layout)")
    return f"draw fewer chains ({', '.join(ways)}) or {unlaid}" if ways else unlaid


def _cmd_graph(args: argparse.Namespace) -> int:
    from natlens import graph  # noqa: PLC0415  (networkx only for this command)
    from natlens.errors import OutputError, UsageError  # noqa: PLC0415
    from natlens.model import Family  # noqa: PLC0415

    args.format = _graph_format(args.format, args.output)
    if args.table and args.table.lower() in ("raw", "mangle", "nat", "filter", "security"):
        args.table = args.table.lower()  # iptables' names; an nft table keeps its case
    given = [_PACKET_FLAGS.get(name, f"--{name.replace('_', '-')}") for name in _PACKET_OPTIONS
             if getattr(args, name) not in (None, False, "new", "0", "tcp")]
    if given and not args.trace:
        raise UsageError(f"{', '.join(given)}: packet options need --trace (they say which "
                         "packet's path to highlight)")
    if args.trace and ((args.src is None and not args.local_origin) or args.dst is None
                       or not (args.in_interface or args.local_origin)):
        raise UsageError("--trace needs --in IFACE and --src, or --local-origin, and --dst")
    snap = _load(args)
    inferred = _inferred_source(args, snap) if args.trace else None
    packet = _packet(args) if args.trace else None
    family = Family(args.family) if args.family is not None else None
    if packet is not None:
        own = Family.IPV6 if packet.dst.version == 6 else Family.IPV4
        if family is not None and family is not own:
            raise UsageError(f"--family {family.value} but the traced packet is "
                             f"{own.value}: the graph follows the packet's family")
        family = own
    if family is None:
        family = Family.IPV4 if snap.ruleset.tables or not snap.ruleset6.tables \
            else Family.IPV6
    path: tuple[Step, ...] = ()
    caption: list[str] = []
    if packet is not None:
        from natlens.netfilter import simulate  # noqa: PLC0415

        trace = simulate(snap, packet)
        path = graph.trace_steps(trace)  # every branch, not only the headline
        caption = graph.trace_caption(trace)
        if inferred is not None:
            caption.insert(1, inferred)
    from natlens.derived_results import graph_source  # noqa: PLC0415

    host = snap.meta.get("hostname")
    shown = _shown(args, snap)
    where = f"host {host} ({shown})" if isinstance(host, str) and host else shown
    title = (f"{where}: {family.value}, "
             f"{'table ' + args.table if args.table else 'all tables'}")
    # the chain graph (collapsed unless --expand) and its text are kept with the snapshot: a
    # cached one answers from its entry without reading the rules (natlens.derived_results)
    text, size = graph_source(snap, family, lambda: _chain_graph(snap, family),
                              fmt=args.format, keep=args.chain or (), expand=args.expand,
                              highlight=path, table=args.table, title=title, caption=caption)
    if args.format == "svg":
        if size is not None:
            sys.stderr.write(f"natlens: warning: {size[0]} chains and {size[1]} jumps to lay "
                             "out: Graphviz may take a very long time: "
                             f"{_layout_hint(args)}\n")
            sys.stderr.flush()
        text = graph.svg_of_dot(text)
    if args.output in (None, "-"):
        _decided(args, 0)
        sys.stdout.write(text)
    else:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise OutputError(f"{args.output}: cannot write: {exc.strerror}") from None
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    import os  # noqa: PLC0415

    # namespaces and raw sockets: root only
    from natlens.errors import UsageError  # noqa: PLC0415
    from natlens.textsafe import terminal  # noqa: PLC0415
    from natlens.verify import Interrupted, cleanup, verify  # noqa: PLC0415

    if args.cleanup:
        if args.path is not None:
            raise UsageError("verify --cleanup takes no PATH")
        if os.geteuid() != 0:
            raise UsageError("natlens verify --cleanup needs root (it removes network namespaces)")
        removed = cleanup()
        _decided(args, 0)
        for run in removed:
            sys.stdout.write(f"natlens: removed {terminal(run.describe())}\n")
        if not removed:
            sys.stdout.write("natlens: no namespaces of interrupted verify runs\n")
        return 0
    if args.path is None:
        raise UsageError("verify needs a PATH (or --cleanup)")
    if args.packets < 1:
        raise UsageError("--packets must be at least 1")
    if args.connections < 0:
        raise UsageError("--connections must be 0 or more")
    snap = _load(args)
    try:
        report = verify(snap, packets=args.packets, seed=args.seed,
                        connections=args.connections)
    except Interrupted as exc:  # verify() removed its namespaces before this
        sys.stderr.write(f"natlens: verify interrupted ({exc}): its namespaces were removed\n")
        return exc.exit_status
    status = _decided(args, 1 if report.failed else 0)
    if args.format == "json":
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        from natlens.termstyle import terminal_width  # noqa: PLC0415

        sys.stdout.write(report.render(terminal_width(sys.stdout)))
    return status


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``natlens`` command (also used to document the CLI)."""
    parser = _ArgumentParser(prog="natlens", description="Where do your packets really go? "
                             "iptables and Docker NAT analysis.")
    parser.add_argument("--version", action="version", version="natlens 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    sub.required = True

    p = sub.add_parser("parse", help="parse rules and print them as iptables-save text or JSON",
                       description="Parse a rule file or snapshot and print the model.")
    _add_common(p)
    p.add_argument("--format", type=str.lower, choices=("save", "json"), default="save",
                   help="save: re-serialised iptables-save text; json: the model (default: save)")
    p.add_argument("--no-counters", action="store_true",
                   help="omit [packets:bytes] counters (without it, a listing's rounded "
                   "counters, 1234K, are never printed as exact: that rule comes without "
                   "counters after a '# natlens: counters of the next rule unknown' note)")
    p.add_argument("--no-comments", action="store_true", help="omit '#' comment lines")
    p.add_argument("--family", type=str.lower, choices=("ipv4", "ipv6"),
                   help="the ruleset to print (needed when the input holds both; default: the "
                        "one there is)")
    p.set_defaults(handler=_cmd_parse)

    p = sub.add_parser("snapshot", help="capture this host into a snapshot folder (needs root)",
                       description="Write iptables-save, ip6tables-save, Docker inspect JSON, "
                       "ip addr/route and meta.json of this host into DIR. Read-only.")
    p.add_argument("dir", metavar="DIR", help="folder to write (created when missing)")
    p.add_argument("--force", action="store_true",
                   help="replace the snapshot files of a non-empty DIR")
    p.add_argument("--no-docker", action="store_true", help="do not ask the Docker daemon")
    p.set_defaults(handler=_cmd_snapshot)

    p = sub.add_parser("trace", help="follow one packet through the hooks, rule by rule",
                       description="Simulate one packet: which rules it meets in which table "
                       "and hook, how NAT rewrites it, and where it ends up. Exit status (like "
                       "grep): 0 the packet is delivered (with several branches: at least one "
                       "delivers it), 1 every outcome drops or rejects it, 2 bad input.")
    _add_common(p)
    _add_packet(p, required=False)
    p.add_argument("--packets", metavar="FILE",
                   help="trace every packet of FILE instead (JSON lines: one object per line, "
                        "not a JSON array; or CSV with a header, a UTF-8 byte-order mark "
                        "allowed; one packet per line, keys/columns named as these options; - "
                        "for stdin; at least one packet): one result line per packet (table) "
                        "or one JSON object per line (json)")
    _add_host(p)
    p.add_argument("--format", type=str.lower, choices=("table", "json", "kernel"), default="table",
                   help="table: numbered steps; json: the trace object; kernel: the lines the "
                        "TRACE target would log (default: table)")
    p.set_defaults(handler=_cmd_trace)
    p = sub.add_parser("report", help="audit the rules and report what is wrong",
                       description="Run every check (stale/duplicate/dead rules, loops, unused "
                       "chains, split backends, ...) and print the findings. Exit status: 0 "
                       "clean, 1 findings at or above --fail-on, 2 bad input.")
    _add_common(p, optional_path=True)
    _add_host(p)
    p.add_argument("--live", action="store_true",
                   help="capture this host first (root; read-only; as natlens snapshot does) "
                        "instead of reading PATH")
    p.add_argument("--format", type=str.lower, choices=("table", "json", "sarif"), default="table",
                   help="table: for people; json: findings and summary; sarif: SARIF 2.1.0 for "
                        "code scanning (default: table)")
    p.add_argument("--fail-on", type=str.lower, choices=("low", "medium", "high"), default="medium",
                   help="exit 1 when a finding has this severity or a higher one "
                        "(default: medium)")
    p.set_defaults(handler=_cmd_report)

    p = sub.add_parser("exposure", help="map who can reach each port, from where",
                       description="For every published host port, container port and host "
                       "service, and every ingress (each outside interface, the host itself, "
                       "each Docker network; IPv4 and IPv6): whether a new connection gets "
                       "through, where it lands and which rule decides.")
    _add_common(p)
    _add_host(p)
    p.add_argument("--format", type=str.lower, choices=("table", "json"), default="table",
                   help="table: one row per port, one column per ingress; json: every cell "
                        "(default: table)")
    p.set_defaults(handler=_cmd_exposure)

    p = sub.add_parser("graph", help="draw the chain graph (which chain jumps where)",
                       description="Print the chains and jumps of each table as Graphviz DOT, "
                       "Mermaid, JSON or SVG (SVG needs Graphviz's dot). Built-in chains are "
                       "drawn bold with a double border, missing chains dashed red.")
    _add_common(p)
    p.add_argument("--table", metavar="TABLE", help="only this table (raw, mangle, nat, filter, "
                   "security; default: all)")
    p.add_argument("--family", type=str.lower, choices=("ipv4", "ipv6"),
                   help="ruleset to draw (default: the traced packet's family, else ipv4, "
                   "or ipv6 when there are no IPv4 rules)")
    p.add_argument("--format", type=str.lower, choices=("dot", "mermaid", "json", "svg"),
                   help="output format (default: from the -o file's extension, else dot)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--trace", action="store_true",
                   help="highlight the path of the packet given by the options below")
    _add_packet(p, required=False)
    _add_host(p)
    p.add_argument("--chain", action="append", default=[], metavar="NAME",
                   help="draw this chain on its own even when it belongs to a large family of "
                        "similar chains (repeatable; shell patterns: 'KUBE-SVC-ABC*')")
    p.add_argument("--expand", action="store_true",
                   help="draw every chain: families of 10 or more similar chains "
                        "(KUBE-SVC-*, KUBE-SEP-*, per-container chains) are one node by "
                        "default")
    p.set_defaults(handler=_cmd_graph)

    p = sub.add_parser("verify", help="replay the snapshot in throwaway network namespaces and "
                       "compare natlens with the kernel (needs root)",
                       description="Build network namespaces that mirror the snapshot's "
                       "interfaces, addresses, routes and rules, send real packets (every "
                       "published port from outside, from containers and from the host, plus "
                       "seeded random ones) and report every packet where the simulator and "
                       "the kernel disagree, then open real connections and check whether "
                       "they complete as natlens says. Exit status 0: no disagreement; 1: "
                       "some (packets or connections); 2: bad input or "
                       "not root; 128+N: interrupted by signal N (namespaces removed).")
    _add_common(p, optional_path=True)
    p.add_argument("--cleanup", action="store_true",
                   help="remove the namespaces that killed verify runs left (only runs whose "
                        "process is gone; see docs/security.md) and exit")
    p.add_argument("--packets", type=int, default=60, metavar="N",
                   help="at least N packets (default: 60)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of the random packets (default: 0)")
    p.add_argument("--connections", type=int, default=50, metavar="N",
                   help="then open at most N real connections (TCP/UDP, 1 s each) for packets "
                        "natlens delivers, and compare whether they complete with the trace's "
                        "connection part (default: 50; 0: none)")
    p.add_argument("--format", type=str.lower, choices=("table", "json"), default="table",
                   help="table: one line per packet, disagreements in full; json (default: "
                        "table)")
    p.set_defaults(handler=_cmd_verify)

    p = sub.add_parser("cache", help="list, locate (dir) or empty (clear) the snapshot cache",
                       description="natlens keeps each parsed snapshot (with its host "
                       "model and the indexes a trace needs) in "
                       "$XDG_CACHE_HOME/natlens (default ~/.cache/natlens), keyed by the "
                       "content of every input file and natlens's version, so that a second "
                       "command on the same snapshot skips parsing. It keeps at most 16 "
                       "entries (the least recently used are removed), each about 2.5 times "
                       "the size of the snapshot's files; other --host-addr/--iface values, "
                       "parse options or another spelling of the path make another entry. "
                       "A command stores its entry after printing its answer, in a background "
                       "process; a command started meanwhile on the same snapshot waits for "
                       "it (NATLENS_CACHE_FOREGROUND=1: stored before the command exits). "
                       "'list' shows each entry (the snapshot it was made from, its size, "
                       "its age, the natlens that wrote it, whether a background write is "
                       "under way) from the first lines of its file, never loading it; "
                       "'dir' prints the folder; 'clear' waits for entries being stored, "
                       "then removes them all ('list' and 'clear' exit with status 2 "
                       "when the folder is not used: not ours or open to others). A command "
                       "given --no-cache skips the cache.")
    p.add_argument("action", choices=("list", "clear", "dir"),
                   help="list: the entries, most recently used first; clear: remove every "
                   "entry; dir: print the cache folder")
    p.add_argument("--format", type=str.lower, choices=("table", "json"),
                   help="list: table (one line per entry) or json (default: table)")
    p.add_argument("--json", action="store_true", help="list: the same as --format json")
    p.set_defaults(handler=_cmd_cache)
    return parser


def main(argv: Sequence[str] | None = None, *, exiting: bool = False) -> int:
    """Run the CLI; returns the exit status (0, 1, 2; 130 when interrupted). Every failure ends
    as one line on standard error (``natlens.cli_errors``), never a traceback.

    ``exiting``: the process ends as soon as ``main`` returns, without tearing anything down
    (the ``natlens`` console script, ``cli_errors.entry``). Then the snapshot cache entry of
    the command is written by a background process once the answer is out
    (``snapshot_cache.save_pending``), and the loaded snapshot is never freed (``_KEPT``).
    Otherwise the entry is written before ``main`` returns."""
    return run(lambda context: _main(argv, context, exiting))


_KEPT: list[object] = []
"""The snapshots loaded by a command of a process that ends at once (``main(exiting=True)``):
kept referenced so that they are never freed (freeing a 100k-rule model takes ~0.7 s, issue
13; after the fork of the background cache writer it also copies every page it touches)."""


def _shown(args: argparse.Namespace, snap: Snapshot) -> str:
    """The snapshot as output headers name it: ``example default-bridge-8080`` for
    ``--example`` (not the install path inside site-packages), else its path."""
    if getattr(args, "example", False):
        from natlens.sample import EXAMPLE_NAME  # noqa: PLC0415

        return f"example {EXAMPLE_NAME}"
    return snap.path


def _example_or_path(args: argparse.Namespace) -> None:
    """``--example`` stands for PATH (the shipped sample, ``natlens.sample``); a command that
    reads a snapshot needs one of them."""
    from natlens.errors import UsageError  # noqa: PLC0415

    if getattr(args, "example", False):
        if args.path is not None:
            raise UsageError(f"{args.command}: give PATH or --example, not both")
        from natlens.sample import example_path  # noqa: PLC0415

        args.path = str(example_path())
    elif getattr(args, "needs_path", False) and args.path is None:
        raise UsageError(f"{args.command} needs a PATH (a snapshot folder or rule file), or "
                         "--example for the sample snapshot shipped with natlens")


def _store_loaded(args: argparse.Namespace, exiting: bool) -> None:
    """Store in the snapshot cache what the command loaded and prepared, if it loaded a
    snapshot: in a background process when the process ends at once (``exiting``), else
    here (``snapshot_cache.save_pending``)."""
    cache = sys.modules.get("natlens.snapshot_cache")
    if cache is None:
        return
    if exiting:
        bar = getattr(args, "progress_bar", None)
        if bar is not None:
            bar.close()  # its thread must not run across fork()
        cache.save_pending(background=True)
    else:
        _progress(args)("writing")
        cache.save_pending()


def _main(argv: Sequence[str] | None, context: Context, exiting: bool = False) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.exiting = exiting
    args.context = context  # _decided tells it the exit status
    _example_or_path(args)
    from natlens.cli_options import check_interface_options  # noqa: PLC0415

    check_interface_options(args)
    context.input_name = getattr(args, "path", None) or getattr(args, "dir", None)
    handler: Handler = args.handler
    from natlens.errors import OutputError, ParseWarning  # noqa: PLC0415

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ParseWarning)
        # natlens's other warnings (snapshot_cache.CacheWarning, load warnings a cache hit
        # gives again) are messages of the command too: recorded and printed as one line even
        # when the interpreter's filters turn warnings into errors (-W error, pytest's config)
        warnings.simplefilter("always", UserWarning)
        try:
            try:
                status = handler(args)
            except OutputError:
                # the answer could not be written (most often a reader that left: | head -1);
                # the snapshot was loaded all the same, and the next command reads it
                _store_loaded(args, exiting)
                raise
            if sys.modules.get("natlens.snapshot_cache") is not None:
                sys.stdout.flush()
                _store_loaded(args, exiting)
        finally:
            cache = sys.modules.get("natlens.snapshot_cache")
            if cache is not None:
                cache.forget_pending()
            bar = getattr(args, "progress_bar", None)
            if bar is not None:
                bar.close()
            streams = getattr(args, "progress_streams", None)
            if streams is not None:
                sys.stdout, sys.stderr = streams
    for w in caught:
        sys.stderr.write(f"natlens: warning: {one_line(str(w.message))}\n")
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
