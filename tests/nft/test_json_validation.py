"""nft JSON held to the standard of iptables text: every statement, expression and object natlens
reads is checked as nft's own JSON parser reads it (nftables ``src/parser_json.c``, see
``natlens.nft.shapes``).

* bad input: one line naming the file and the JSON path (golden messages below), exit 2 on the
  CLI, for a snapshot folder's ``nft-ruleset.json`` and for a file given alone;
* ``--lenient`` keeps a rule holding a statement or expression nft does not read, as an opaque
  statement the simulator treats as uncertain, with a note naming the JSON path;
* trace steps of nft rules cite the file and JSON path of the rule next to its handle;
* hostile JSON (deep nesting, huge numbers, wrong types anywhere) never ends in a traceback:
  a derandomized fuzz over Docker 29's nftables table (reader, rule text, evaluation) and fixed
  cases through the console script.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT
from hostile_input import assert_no_crash, assert_one_error, run_command, run_in_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nft_dumps import wrap_rules

import natlens
from natlens.errors import NftParseError
from natlens.netfilter.host import Host
from natlens.netfilter.packet import Packet
from natlens.nft import NftContext, compile_table, read_ruleset, walk_chain
from natlens.nft.shapes import EXPRESSIONS, STATEMENTS

_TCP_DPORT = {"payload": {"protocol": "tcp", "field": "dport"}}
_META = {"meta": {"key": "mark"}}


def _good() -> dict[str, Any]:
    doc = wrap_rules("inet", [
        [{"match": {"op": "==", "left": _TCP_DPORT, "right": 22}},
         {"counter": {"packets": 0, "bytes": 0}}, {"accept": None}],
        [{"match": {"op": "==", "left": _META, "right": 1}}, {"drop": None}],
    ])
    items: list[Any] = doc["nftables"]  # type: ignore[assignment]
    items[2]["chain"].update(type="filter", hook="input", prio=0, policy="accept")
    items.append({"counter": {"family": "inet", "table": "t", "name": "c", "handle": 9,
                              "packets": 0, "bytes": 0}})
    items.append({"set": {"family": "inet", "table": "t", "name": "s", "handle": 10,
                          "type": "inet_service", "elem": [22]}})
    return copy.deepcopy(doc)  # edits never reach the shared constants


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit: the value at ``path`` (``3.rule.expr.0.match.right``, under ``nftables``)."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]

    def edit(doc: dict[str, Any]) -> None:
        node: Any = doc["nftables"]
        for part in parents:
            node = node[part]
        node[last] = value

    return edit


def _both(*edits: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        for one in edits:
            one(doc)

    return edit


_R3 = "3.rule.expr"
_R4 = "4.rule.expr"
_AT3 = "x.json: $.nftables[3].rule.expr"
_AT4 = "x.json: $.nftables[4].rule.expr"

BAD: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("unknown-statement", _set(f"{_R3}.1", {"frobnicate": {"a": 1}}),
     f"{_AT3}[1]: unknown statement 'frobnicate'"),
    ("unknown-expression", _set(f"{_R3}.0.match.left", {"frob": {"key": "x"}}),
     f"{_AT3}[0].match.left: unknown expression 'frob'"),
    ("unknown-expression-in-set", _set(f"{_R3}.0.match.right", {"set": [22, {"frob": 1}]}),
     f"{_AT3}[0].match.right.set[1]: unknown expression 'frob'"),
    ("unknown-expression-in-nat", _set(f"{_R3}.2", {"dnat": {"addr": {"frob": 1}}}),
     f"{_AT3}[2].dnat.addr: unknown expression 'frob'"),
    ("string-for-integer", _both(_set(f"{_R4}.0.match.left", {"meta": {"key": "length"}}),
                                 _set(f"{_R4}.0.match.right", "x")),
     f"{_AT4}[0].match.right: expected a number, got the string 'x'"),
    ("list-for-object", _set(f"{_R3}.2", {"dnat": [1]}),
     f"{_AT3}[2].dnat: expected an object, got an array"),
    ("string-counter", _set(f"{_R3}.1.counter.packets", "5"),
     f"{_AT3}[1].counter.packets: expected an integer, got the string '5'"),
    ("limit-missing-per", _set(f"{_R3}.1", {"limit": {"rate": 5}}),
     f"{_AT3}[1].limit: missing 'per'"),
    ("meta-key-number", _set(f"{_R4}.0.match.left.meta.key", 5),
     f"{_AT4}[0].match.left.meta.key: expected a string, got the number 5"),
    ("fraction", _set(f"{_R3}.0.match.right", 22.5),
     f"{_AT3}[0].match.right: expected a string, an integer, an array or an object, got the "
     "number 22.5"),
    ("huge-integer", _set(f"{_R4}.0.match.right", 2**70),
     f"{_AT4}[0].match.right: integer out of range (nft reads 64 bits): "
     "1180591620717411303424"),
    ("one-operand", _set(f"{_R4}.0.match.left", {"&": [_META]}),
     f"{_AT4}[0].match.left[\"&\"]: expected an array of two or more operands, got 1 items"),
    ("range-of-three", _set(f"{_R3}.0.match.right", {"range": [1, 2, 3]}),
     f"{_AT3}[0].match.right.range: expected [low, high], got 3 items"),
    ("log-prefix-number", _set(f"{_R3}.1", {"log": {"prefix": 1}}),
     f"{_AT3}[1].log.prefix: expected a string, got the number 1"),
    ("nat-flags-number", _set(f"{_R3}.2", {"masquerade": {"flags": 1}}),
     f"{_AT3}[2].masquerade.flags: expected a string or an array of strings, got the number 1"),
    ("set-stmt-object", _set(f"{_R3}.1", {"set": {"op": "add", "elem": _TCP_DPORT,
                                                  "set": "@s", "stmt": {"counter": None}}}),
     f"{_AT3}[1].set.stmt: expected an array of statements, got an object"),
    ("nested-statement-type", _set(f"{_R3}.1", {"meter": {"name": "m", "key": _TCP_DPORT,
                                                          "stmt": {"limit": {"rate": "x",
                                                                             "per": "second"}}}}),
     f"{_AT3}[1].meter.stmt.limit.rate: expected an integer, got the string 'x'"),
    ("op-number", _set(f"{_R3}.0.match.op", 1),
     f"{_AT3}[0].match.op: expected a string, got the number 1"),
    ("vmap-missing-data", _set(f"{_R3}.2", {"vmap": {"key": _TCP_DPORT}}),
     f"{_AT3}[2].vmap: missing 'data'"),
    ("numgen-mod-string", _set(f"{_R4}.0.match.left", {"numgen": {"mode": "random",
                                                                  "mod": "2"}}),
     f"{_AT4}[0].match.left.numgen.mod: expected an integer, got the string '2'"),
    ("fib-flags-number", _set(f"{_R4}.0.match.left", {"fib": {"result": "type", "flags": 3}}),
     f"{_AT4}[0].match.left.fib.flags: expected a string or an array of strings, got the "
     "number 3"),
    ("elem-timeout-string", _set(f"{_R3}.0.match.right",
                                 {"set": [{"elem": {"val": 22, "timeout": "1s"}}]}),
     f"{_AT3}[0].match.right.set[0].elem.timeout: expected a number, got the string '1s'"),
    ("nat-port-word", _set(f"{_R3}.2", {"dnat": {"addr": "10.0.0.2", "port": "eighty"}}),
     f"{_AT3}[2].dnat.port: expected a port number 0..65535, got the string 'eighty'"),
    ("nat-port-out-of-range", _set(f"{_R3}.2", {"dnat": {"addr": "10.0.0.2", "port": 70000}}),
     f"{_AT3}[2].dnat.port: expected a port number 0..65535, got the number 70000"),
    ("nat-port-negative", _set(f"{_R3}.2", {"snat": {"addr": "10.0.0.2", "port": -1}}),
     f"{_AT3}[2].snat.port: expected a port number 0..65535, got the number -1"),
    ("nat-port-boolean", _set(f"{_R3}.2", {"redirect": {"port": True}}),
     f"{_AT3}[2].redirect.port: expected a port number 0..65535, got a boolean"),
    ("nat-port-list", _set(f"{_R3}.2", {"dnat": {"addr": "10.0.0.2", "port": [80]}}),
     f"{_AT3}[2].dnat.port: expected a port number 0..65535, got an array"),
    ("nat-port-range-out", _set(f"{_R3}.2", {"masquerade": {"port": {"range": [1, 70000]}}}),
     f"{_AT3}[2].masquerade.port.range[1]: 70000 is not a port number (0..65535)"),
    ("nat-addr-null", _set(f"{_R3}.2", {"dnat": {"addr": None, "port": 80}}),
     f"{_AT3}[2].dnat.addr: expected an address, got null"),
    ("nat-addr-number", _set(f"{_R3}.2", {"dnat": {"addr": 5}}),
     f"{_AT3}[2].dnat.addr: expected an address, got the number 5"),
    ("nat-addr-list", _set(f"{_R3}.2", {"dnat": {"addr": ["10.0.0.2"]}}),
     f"{_AT3}[2].dnat.addr: expected an address, got an array"),
    ("nat-addr-bad", _set(f"{_R3}.2", {"dnat": {"addr": "10.0.0.999"}}),
     f"{_AT3}[2].dnat.addr: '10.0.0.999' is not an IP address"),
    ("object-counter", _set("5.counter.packets", "0"),
     "x.json: $.nftables[5].counter.packets: expected an integer, got the string '0'"),
    ("set-size", _set("6.set.size", "big"),
     "x.json: $.nftables[6].set.size: expected an integer, got the string 'big'"),
    ("set-element-unknown", _set("6.set.elem", [{"frob": 1}]),
     "x.json: $.nftables[6].set.elem[0]: unknown expression 'frob'"),
]


def _fixed(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = _good()
    edit(doc)
    return doc


def test_the_good_document_loads() -> None:
    ruleset = read_ruleset(_good(), source="x.json")
    assert [r.text for r in ruleset.rules()] == [
        "tcp dport 22 counter packets 0 bytes 0 accept", "meta mark 0x00000001 drop"]
    assert ruleset.warnings == ()


@pytest.mark.parametrize(("name", "edit", "expected"), BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
def test_bad_value_is_one_line_naming_the_json_path(
        name: str, edit: Callable[[dict[str, Any]], None], expected: str, strict: bool) -> None:
    doc = _fixed(edit)
    unknown = "unknown statement" in expected or "unknown expression" in expected
    if not strict and unknown and "$.nftables[6]" not in expected:
        # lenient: the rule is kept, the statement holding the unknown name opaque
        ruleset = read_ruleset(doc, source="x.json", strict=False)
        (warning,) = ruleset.warnings
        assert warning == f"{expected}: statement kept, simulated as uncertain"
        return
    with pytest.raises(NftParseError) as info:
        read_ruleset(doc, source="x.json", strict=strict)
    assert str(info.value) == expected
    assert info.value.one_line() == expected


def test_vocabulary_is_nfts() -> None:
    """The names nft 1.1.6's parser reads (``json_parse_stmt``, ``json_parse_expr``), plus
    ``vmap`` and ``xt``; a sample of what each table must and must not hold."""
    assert {"match", "counter", "dnat", "vmap", "xt", "ct count", "reset", "last",
            "tunnel"} <= set(STATEMENTS)
    assert {"payload", "tcp option", "dccp option", "numgen", "elem", "concat",
            "<<"} <= set(EXPRESSIONS)
    assert "comment" not in STATEMENTS
    assert "xt" not in EXPRESSIONS


def _lenient_doc() -> dict[str, Any]:
    doc = _good()
    rule = doc["nftables"][3]["rule"]
    rule["expr"][0]["match"]["left"] = {"frob": {"key": "x"}}  # tcp dport replaced
    doc["nftables"].append({"gadget": {"family": "inet", "table": "t", "name": "g"}})
    return doc


def test_lenient_keeps_the_rule_opaque_and_uncertain() -> None:
    ruleset = read_ruleset(_lenient_doc(), source="x.json", strict=False)
    assert ruleset.warnings == (
        "x.json: $.nftables[7].gadget: unknown object 'gadget' (left out)",
        "x.json: $.nftables[3].rule.expr[0].match.left: unknown expression 'frob': statement "
        "kept, simulated as uncertain",
    )
    table = ruleset.tables[0]
    first = table.chains[0].rules[0]
    assert first.statements[0].opaque == "unknown expression 'frob'"
    assert first.text == 'frob {"key": "x"} 22 counter packets 0 bytes 0 accept'
    packet = Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2", proto="tcp",
                    dport=80)
    ctable = compile_table(table)
    results = walk_chain(ctable, "c", packet, NftContext(Host(), "input", ctable, 0))
    # the opaque match may hold (accept) or not (the next rule, then the policy: accept)
    assert len(results) == 2
    assert all(any("unknown expression 'frob'" in u for u in r.uncertain) for r in results)
    held = [r for r in results if r.steps and r.steps[0].index == 0]
    assert held
    assert held[0].steps[0].where == "x.json: $.nftables[3].rule"


def test_strict_refuses_what_lenient_keeps() -> None:
    doc = _lenient_doc()
    with pytest.raises(NftParseError, match=r"^x\.json: \$\.nftables\[7\]\.gadget: unknown "
                                            r"object 'gadget'$"):
        read_ruleset(doc, source="x.json")
    doc["nftables"].pop()
    with pytest.raises(NftParseError, match=r"^x\.json: \$\.nftables\[3\]\.rule\.expr\[0\]"
                                            r"\.match\.left: unknown expression 'frob'$"):
        read_ruleset(doc, source="x.json")


# -- the CLI: a file alone and a snapshot folder --------------------------------------------------

_TRACE = ["--in", "eth0", "--src", "198.51.100.7", "--dst", "192.0.2.2", "--proto", "tcp",
          "--dport", "22", "--host-addr", "192.0.2.2"]


@pytest.mark.parametrize(("name", "edit", "expected"), BAD[:6], ids=[b[0] for b in BAD[:6]])
def test_cli_file_alone_exit_2_one_line(name: str, edit: Callable[[dict[str, Any]], None],
                                        expected: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps(_fixed(edit)))
    run = run_in_process(["trace", str(path), *_TRACE], capsys)
    line = assert_one_error(run, expected.replace("x.json", str(path), 1))
    unknown = "unknown statement" in expected or "unknown expression" in expected
    assert line.endswith("(--lenient reads it as far as it tells)") == unknown


def test_cli_lenient_notes_and_trace_cite_the_json_path(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps(_lenient_doc()))
    run = run_in_process(["report", str(path), "--lenient"], capsys)
    assert_no_crash(run)
    assert f"note: {path}: $.nftables[3].rule.expr[0].match.left: unknown expression " \
        "'frob': statement kept, simulated as uncertain" in run.out
    run = run_in_process(["trace", str(path), "--lenient", *_TRACE], capsys)
    assert run.status == 0, run.err
    assert f'inet t c handle 3 ({path}: $.nftables[3].rule)  frob {{"key": "x"}} 22 ' in run.out
    run = run_in_process(["trace", str(path), "--lenient", "--format", "json", *_TRACE], capsys)
    steps = json.loads(run.out)["steps"]
    rules = [s for s in steps if s["source"] == "nft" and s["rule"] is not None]
    assert rules
    assert all(s["where"] == f"{path}: $.nftables[{s['rule']}].rule" for s in rules)


def _snapshot(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(REPO_ROOT / "fixtures" / name, folder)
    return folder


def test_snapshot_folder_nft_ruleset_names_file_and_path(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _snapshot(tmp_path, "docker29-nftables")
    nft = folder / "nft-ruleset.json"
    doc = json.loads(nft.read_text())
    index, rule = next((i, item["rule"]) for i, item in enumerate(doc["nftables"])
                       if "rule" in item and item["rule"]["expr"][0].get("match"))
    rule["expr"][0]["match"]["right"] = {"frob": 1}
    nft.write_text(json.dumps(doc))
    run = run_in_process(["report", str(folder)], capsys)
    assert_one_error(run, f"nft-ruleset.json: $.nftables[{index}].rule.expr[0].match.right: "
                          "unknown expression 'frob'")
    run = run_in_process(["report", str(folder), "--lenient"], capsys)
    assert_no_crash(run)
    assert run.status != 2
    assert f"nft-ruleset.json: $.nftables[{index}].rule.expr[0].match.right" in run.out


def test_trace_steps_cite_handle_and_json_path(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/tracing.md's Docker 29 trace: each nft rule step names its place in the file."""
    snap = natlens.load(REPO_ROOT / "fixtures" / "docker29-nftables")
    assert snap.nft is not None
    paths: dict[tuple[str | None, str | None, int | None], str] = {
        (r.table, r.chain, r.handle): r.path for r in snap.nft.rules()}
    trace = natlens.simulate(snap, natlens.Packet(in_interface="eth0", src="198.51.100.7",
                                                  dst="192.0.2.2", proto="tcp", dport=8080))
    rules = [s for s in trace.steps if s.source == "nft" and s.kind.value == "rule"]
    assert len(rules) >= 4
    for step in rules:
        assert step.where is not None
        assert step.where.endswith(f"/nft-ruleset.json: {paths[step.table, step.chain, step.rule]}")
        assert step.to_dict()["where"] == step.where
        assert f"handle {step.rule} ({step.where})" in str(step)


# -- hostile JSON ---------------------------------------------------------------------------------

HOSTILE: list[Any] = [
    None, [], {}, "", "x", -1, 0, 65536, 1.5, 10**30, -(2**64), 2**63, True, ["x"], [1],
    {"x": None}, {"set": None}, {"range": []}, {"prefix": []}, {"concat": {}}, {"map": []},
    {"elem": 1}, {"payload": []}, {"meta": None}, {"ct": {"key": []}}, {"&": None},
    {"jump": 1}, [[[[[[[["deep"]]]]]]]], "@", "@missing", "\x1b[31m", "a" * 3000,
    {"frob": {}}, {"accept": None, "drop": None}, "<drop the key>",
]
_DROP = "<drop the key>"
DOCKER29 = REPO_ROOT / "fixtures" / "docker29-nftables" / "nft-ruleset.json"
BUDGET = int(os.environ.get("NATLENS_INPUT_FUZZ_EXAMPLES", "0")) or 400
FIXED = not os.environ.get("NATLENS_INPUT_FUZZ_RANDOM")  # as tests/test_input_fuzz.py


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.extend(_paths(item, (*prefix, i)))
    return out


NFTABLES_CONF = REPO_ROOT / "fixtures" / "nftables-conf-docker" / "nft-ruleset.json"
_BASES = [json.loads(p.read_text()) for p in (DOCKER29, NFTABLES_CONF)]
_PATHS = [(n, p) for n, base in enumerate(_BASES) for p in _paths(base)
          if len(p) > 2]  # inside an object of the ruleset
_PACKETS = [Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2", proto="tcp",
                   dport=8080),
            Packet(in_interface="bridge1", src="10.99.3.2", dst="198.51.100.7", proto="udp",
                   dport=53)]


def _exercise(doc: Any, strict: bool) -> None:
    """Read, render and walk every base chain: only ``NftParseError`` may come out."""
    try:
        ruleset = read_ruleset(doc, source="nft-ruleset.json", strict=strict)
    except NftParseError as err:
        message = str(err)
        assert "\n" not in message, message
        assert message.startswith("nft-ruleset.json: "), message
        return
    for rule in ruleset.rules():
        assert isinstance(rule.text, str)
    host = Host()
    for table in ruleset.tables:
        if not table.simulated:
            continue
        ctable = compile_table(table)
        for chain in table.base_chains():
            for packet in _PACKETS:
                ctx = NftContext(host, chain.hook or "input", ctable, chain.priority or 0)
                walk_chain(ctable, chain.name, packet, ctx)


@settings(max_examples=BUDGET, derandomize=FIXED, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(_BASES))),
       st.lists(st.tuples(st.sampled_from(_PATHS), st.sampled_from(HOSTILE)),
                min_size=1, max_size=3),
       st.booleans())
def test_fuzz_hostile_values_never_crash(
        base: int, edits: list[tuple[tuple[int, tuple[Any, ...]], Any]], strict: bool) -> None:
    doc = copy.deepcopy(_BASES[base])
    for (_, path), value in edits:
        node: Any = doc
        for part in path[:-1]:
            if not isinstance(node, dict | list):
                break
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                break
        else:
            key = path[-1]  # paths of the other base may not fit: JSON keys stay strings
            if isinstance(node, dict) and isinstance(key, str):
                if value == _DROP:
                    node.pop(key, None)
                else:
                    node[key] = copy.deepcopy(value)
            elif isinstance(node, list) and isinstance(key, int) and key < len(node):
                node[key] = copy.deepcopy(value)
    _exercise(doc, strict)


_DEEP = '{"nftables": [{"rule": {"family": "inet", "table": "t", "chain": "c", "expr": ' \
    + "[" * 5000 + "]" * 5000 + "}}]}"


@pytest.mark.parametrize(("name", "text"), [
    ("deep-nesting", _DEEP),
    ("huge-number", '{"nftables": [{"table": {"family": "ip", "name": "t", "handle": '
                    + "9" * 4000 + "}}]}"),
    ("float-overflow", '{"nftables": [{"table": {"family": "ip", "name": "t", "handle": 1e999}}]}'),
    ("wrong-root", '[{"nftables": []}]'),
    ("rule-as-list", '{"nftables": [{"table": {"family": "ip", "name": "t", "handle": 1}}, '
                     '{"rule": [1, 2]}]}'),
    ("unknown-statement", json.dumps(_fixed(BAD[0][1]))),
], ids=lambda v: v if isinstance(v, str) and v[:1].isalpha() else "json")
def test_cli_hostile_json_one_line_exit_2(name: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / "nft-ruleset.json"
    path.write_text(text)
    run = run_command(["report", str(path)])
    line = assert_one_error(run, str(path))
    assert len(line) < 400
