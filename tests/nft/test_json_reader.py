"""The nft JSON reader and rule text against the nftables corpus (../shared/corpus/nftables).

* every whole-ruleset JSON dump loads; bridge/arp/netdev tables are read and flagged;
* for every text/JSON pair, the rendered text of each rule equals the ``.nft`` dump's line for
  at least 95% of rules (rules with ``xt`` statements are counted apart: their JSON has no
  arguments, the text shows libxtables' translation);
* every expression vector of nftables' own ``tests/py/**/*.t.json`` loads; the 0.9.0 dialect
  is refused; bad input gives one line naming the file and the JSON path.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import corpus_path
from nft_dumps import dump_pairs, json_dumps, json_vectors, text_rules, wrap_rules

from natlens.errors import NftParseError, ParseError
from natlens.nft import Family, load, loads, priority_name, read_ruleset, resolve_priority
from natlens.nft.json_reader import OLD_DIALECT


def test_every_json_dump_loads(corpus: Path) -> None:
    dumps = json_dumps(corpus)
    assert len(dumps) >= 420
    families: set[Family] = set()
    for path in dumps:
        ruleset = load(path)  # a refusal fails the test, naming the file and JSON path
        assert ruleset.schema_version == 1, path
        for table in ruleset.tables:
            families.add(table.family)
            assert table.simulated == (table.family.simulated and "dormant" not in table.flags)
        assert set(ruleset.not_simulated) == {t for t in ruleset.tables if not t.simulated}
    assert {Family.BRIDGE, Family.NETDEV, Family.ARP, Family.INET} <= families


def test_rendered_rule_text_matches_nft_listing(corpus: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    pairs = dump_pairs(corpus)
    assert len(pairs) >= 420
    same = total = with_xt = 0
    differ: list[str] = []
    for text_file, json_file in pairs:
        ruleset = load(json_file)
        listed = text_rules(text_file.read_text())
        for table in ruleset.tables:
            for chain in table.chains:
                lines = listed.get((table.family.value, table.name, chain.name), [])
                for rule in chain.rules:
                    if rule.has_xt:
                        with_xt += 1
                        continue
                    total += 1
                    expected = lines[rule.index] if rule.index < len(lines) else None
                    if rule.text == expected:
                        same += 1
                    else:
                        differ.append(f"{text_file.name}: {expected!r} != {rule.text!r}")
    share = same / total
    with capsys.disabled():
        print(f"\nnft rule text: {same}/{total} rules rendered as nft lists them "
              f"({share:.1%}); {with_xt} rules with xt statements not compared")
    assert total > 1400
    assert share >= 0.95, "\n".join(differ[:20])


def test_kube_proxy_rules_render_exactly(corpus: Path) -> None:
    base = corpus / "nftables" / "kube-proxy-nftables"
    ruleset = load(base / "overall-nftables-rules.loaded-by-nft-1.0.6.json")
    listed = text_rules((base / "overall-nftables-rules.loaded-by-nft-1.0.6.nft").read_text())
    rules = ruleset.rules()
    assert len(rules) > 40
    for rule in rules:
        assert rule.text == listed[(rule.family.value, rule.table, rule.chain)][rule.index]


def _vector_files(root: str) -> list[Path]:
    return sorted((corpus_path() / "nftables" / root).glob("tests/py/*/*.t.json"))


def _family(path: Path) -> str:
    return {"any": "ip"}.get(path.parent.name, path.parent.name)


def _vector_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


@pytest.mark.parametrize("path", _vector_files("nftables"), ids=_vector_id)
def test_nftables_expression_vectors_load(path: Path) -> None:
    vectors = json_vectors(path)
    assert vectors
    ruleset = read_ruleset(wrap_rules(_family(path), [expr for _, expr in vectors]),
                           source=path.name)
    rules = ruleset.rules()
    assert len(rules) == len(vectors)
    assert all(rule.text for rule in rules)


@pytest.mark.parametrize("path", _vector_files("nftables-v0.9.0-json-sample"),
                         ids=_vector_id)
def test_nft_0_9_0_dialect_is_refused(path: Path) -> None:
    exprs = [expr for _, expr in json_vectors(path)]
    with pytest.raises(NftParseError) as info:
        read_ruleset(wrap_rules(_family(path), exprs), source=path.name)
    message = str(info.value)
    assert OLD_DIALECT in message
    assert message.startswith(f"{path.name}: $.nftables[")
    assert "\n" not in message


def _doc(*rules: list[Any], family: str = "inet") -> dict[str, Any]:
    return wrap_rules(family, list(rules))


_TCP_DPORT = {"payload": {"protocol": "tcp", "field": "dport"}}
_IP_DADDR = {"payload": {"protocol": "ip", "field": "daddr"}}
_GOOD = _doc([{"match": {"op": "==", "left": _TCP_DPORT, "right": 22}}, {"accept": None}])


def _broken(edit: str) -> dict[str, Any]:
    doc = copy.deepcopy(_GOOD)
    items = doc["nftables"]
    rule = items[3]["rule"]
    match edit:
        case "right-address":
            rule["expr"][0]["match"] = {"op": "==", "left": _IP_DADDR, "right": "10.0.0.300"}
        case "right-port":
            rule["expr"][0]["match"]["right"] = {"set": [22, 70000]}
        case "op":
            rule["expr"][0]["match"]["op"] = "=~"
        case "family":
            items[1]["table"]["family"] = "ipx"
        case "chain-missing":
            rule["chain"] = "nowhere"
        case "prio":
            items[2]["chain"].update(type="filter", hook="input", prio="dstnat", policy="accept")
        case "policy":
            items[2]["chain"].update(type="filter", hook="input", prio=0, policy="reject")
        case "schema":
            items[0]["metainfo"]["json_schema_version"] = 2
        case "expr-not-list":
            rule["expr"] = {"accept": None}
        case "two-keys":
            rule["expr"][1] = {"accept": None, "drop": None}
        case "prefix-len":
            rule["expr"][0]["match"] = {"op": "==", "left": _IP_DADDR,
                                        "right": {"prefix": {"addr": "10.0.0.0", "len": "8"}}}
        case "weird-key":
            items[3] = {"rule\nnext": {}}
        case "not-nftables":
            doc.clear()
            doc["rules"] = []
    return doc


@pytest.mark.parametrize(("edit", "expected"), [
    ("right-address", "x.json: $.nftables[3].rule.expr[0].match.right: '10.0.0.300' is not an "
                      "IPv4 address"),
    ("right-port", "x.json: $.nftables[3].rule.expr[0].match.right.set[1]: 70000 is not a port "
                   "number (0..65535)"),
    ("op", "x.json: $.nftables[3].rule.expr[0].match.op: unknown operator '=~'"),
    ("family", "x.json: $.nftables[1].table.family: unknown family 'ipx'"),
    ("chain-missing", "x.json: $.nftables[3].rule.chain: chain 'nowhere' is not in table inet t"),
    ("prio", "x.json: $.nftables[2].chain.prio: priority 'dstnat' is not allowed in family inet "
             "hook input"),
    ("policy", "x.json: $.nftables[2].chain.policy: policy must be accept or drop"),
    ("schema", "x.json: $.nftables[0].metainfo.json_schema_version: json_schema_version 2 is "
               "not supported"),
    ("expr-not-list", "x.json: $.nftables[3].rule.expr: expected an array of statements"),
    ("two-keys", "x.json: $.nftables[3].rule.expr[1]: expected one key per statement"),
    ("prefix-len", "x.json: $.nftables[3].rule.expr[0].match.right.prefix.len: expected a "
                   "prefix length, got the string '8'"),
    ("weird-key", 'x.json: $.nftables[3]["rule\\nnext"]: unknown object'),
    ("not-nftables", 'x.json: $: expected {"nftables": [...]}'),
])
def test_bad_input_names_file_and_json_path(edit: str, expected: str) -> None:
    with pytest.raises(NftParseError) as info:
        read_ruleset(_broken(edit), source="x.json")
    message = info.value.one_line()
    assert message.startswith(expected), message
    assert "\n" not in message
    assert isinstance(info.value, ParseError)


def test_text_that_is_not_json_names_line_and_column() -> None:
    with pytest.raises(NftParseError) as info:
        loads('{"nftables": [\n  {"table": }\n]}', source="nft-ruleset.json")
    assert str(info.value).startswith("nft-ruleset.json:2:13: not JSON: Expecting value")


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nft-ruleset.json"
    path.write_text(json.dumps(_broken("op")))
    with pytest.raises(NftParseError, match=r"^nft-ruleset\.json: \$\.nftables\[3\]"):
        load(path)


def test_version_dialects_scalar_or_list_flags_and_xt() -> None:
    """1.1.4 prints one flag as a scalar, 1.1.5 as a list again; xt is null before 1.0.6."""
    for flags, xt in (("interval", None), (["interval"], {"type": "match", "name": "addrtype"})):
        doc = _doc([{"xt": xt}, {"accept": None}])
        doc["nftables"].append({"set": {"family": "inet", "table": "t", "name": "s",
                                        "handle": 9, "type": ["ipv4_addr", "inet_service"],
                                        "flags": flags, "elem": [{"concat": [
                                            {"prefix": {"addr": "10.0.0.0", "len": 8}},
                                            {"range": [1000, 2000]}]}]}})
        ruleset = read_ruleset(doc)
        table = ruleset.tables[0]
        nft_set = table.set("s")
        assert nft_set is not None
        assert nft_set.flags == frozenset({"interval"})
        assert nft_set.key_type == ("ipv4_addr", "inet_service")
        rule = table.chains[0].rules[0]
        assert rule.has_xt
        assert rule.text == ("xt accept" if xt is None else 'xt match "addrtype" accept')


def test_objects_in_any_order_and_base_chain_fields() -> None:
    items: list[Any] = [
        {"rule": {"family": "ip", "table": "nat", "chain": "pre", "handle": 5,
                  "expr": [{"dnat": {"addr": "10.0.0.2", "port": 80}}], "comment": "to web"}},
        {"chain": {"family": "ip", "table": "nat", "name": "pre", "handle": 2, "type": "nat",
                   "hook": "prerouting", "prio": "dstnat + 10", "policy": "accept"}},
        {"table": {"family": "ip", "name": "nat", "handle": 1, "flags": "dormant"}},
        {"counter": {"family": "ip", "table": "nat", "name": "c1", "handle": 3, "packets": 1,
                     "bytes": 60}},
        {"limit": {"family": "ip", "table": "nat", "name": "l1", "handle": 4, "rate": 3,
                   "per": "minute", "burst": 5}},
        {"quota": {"family": "ip", "table": "nat", "name": "q1", "handle": 6, "bytes": 100,
                   "used": 0}},
    ]
    ruleset = read_ruleset({"nftables": items})
    table = ruleset.table("ip", "nat")
    assert table is not None
    assert not table.simulated  # dormant
    chain = table.chain("pre")
    assert chain is not None
    assert (chain.type, chain.hook, chain.priority, chain.policy) == ("nat", "prerouting",
                                                                      -90, "accept")
    assert chain.priority_text == "dstnat + 10"
    assert chain.rules[0].text == 'dnat to 10.0.0.2:80 comment "to web"'
    assert {o.kind for o in table.objects} == {"counter", "limit", "quota"}


@pytest.mark.parametrize(("family", "hook", "prio", "text"), [
    ("inet", "prerouting", -140, "mangle + 10"),
    ("ip", "output", -100, "dstnat"),
    ("ip", "input", 100, "srcnat"),
    ("ip", "forward", 100, "100"),          # srcnat is not a name on forward
    ("inet", "forward", 10, "filter + 10"),
    ("inet", "prerouting", -310, "raw - 10"),
    ("ip", "postrouting", 111, "111"),
    ("bridge", "prerouting", -300, "dstnat"),
    ("netdev", "ingress", -150, "-150"),
    ("arp", "input", 0, "filter"),
])
def test_priority_names_as_nft_prints_them(family: str, hook: str, prio: int, text: str) -> None:
    assert priority_name(family, hook, prio) == text
    if not text.lstrip("-").isdigit():
        assert resolve_priority(text, family, hook) == prio


def test_values_are_frozen() -> None:
    ruleset = read_ruleset(_GOOD)
    rule = ruleset.rules()[0]
    assert hash(rule) == hash(read_ruleset(_GOOD).rules()[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.comment = "drop"  # type: ignore[misc]
    match = rule.statements[0].body
    with pytest.raises(TypeError):
        match["op"] = "!="  # type: ignore[index]


def test_kube_proxy_sets_and_maps(corpus: Path) -> None:
    ruleset = load(corpus / "nftables" / "kube-proxy-nftables" /
                   "overall-nftables-rules.loaded-by-nft-1.0.6.json")
    table = ruleset.table("ip", "kube-proxy")
    assert table is not None
    assert table.comment is None  # nft prints table comments in JSON from 1.0.8 on
    services = table.set("service-ips")
    assert services is not None
    assert (services.is_map, services.is_vmap) == (True, True)
    assert services.key_type == ("ipv4_addr", "inet_proto", "inet_service")
    assert len(services.elements) == 9
    no_endpoints = table.set("no-endpoint-services")
    assert no_endpoints is not None
    assert {e.comment for e in no_endpoints.elements} == {"ns2/svc2:p80", "ns6/svc6:p80"}
    affinity = next(s for s in table.sets if s.name.startswith("affinity-"))
    assert affinity.timeout == 3 * 3600
    assert affinity.runtime_filled  # nft 1.0.6 prints flags dynamic,timeout as ["timeout"]
    assert not affinity.is_map
    chain = table.chain("nat-prerouting")
    assert chain is not None
    assert (chain.type, chain.hook, chain.priority, chain.priority_text) == (
        "nat", "prerouting", -100, "dstnat")
