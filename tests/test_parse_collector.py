"""Both parsers leave what they built to the collector's oldest generation
(natlens.parse.collector), and never thaw objects frozen on purpose; what keeps its objects to
the end (the snapshot cache, for the CLI) freezes them with the same context manager."""

from __future__ import annotations

import gc
from collections.abc import Callable
from contextlib import nullcontext

import pytest

from natlens.model import Ruleset
from natlens.parse import parse_listing, parse_save
from natlens.parse.collector import OLD_ENOUGH, collector_off

COUNT = 10_000


def _save(count: int) -> str:
    rule = "-A DOCKER -d 10.{x}.{y}.1/32 ! -i docker0 -p tcp -m tcp --dport {p} " \
           "-j DNAT --to-destination 172.17.{x}.{y}:80\n"
    rows = "".join(rule.format(x=i // 250 % 250, y=i % 250, p=1024 + i % 60000)
                   for i in range(count))
    return f"*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n{rows}COMMIT\n"


def _listing(count: int) -> str:
    line = "{n:<8} {n:>6} {b:>7} DNAT       6    --  !docker0 *       0.0.0.0/0            " \
           "10.{x}.{y}.1          tcp dpt:{p} to:172.17.{x}.{y}:80\n"
    rows = "".join(line.format(n=i + 1, b=i * 60, x=i // 250 % 250, y=i % 250,
                               p=1024 + i % 60000) for i in range(count))
    return "Chain DOCKER (1 references)\nnum      pkts      bytes target     prot opt in     " \
           "out     source               destination\n" + rows


def _in_oldest(ruleset: Ruleset) -> int:
    """How many of ``ruleset``'s rules the collector holds in its oldest generation."""
    rules = {id(rule) for table in ruleset.tables for chain in table.chains
             for rule in chain.rules}
    return sum(1 for obj in gc.get_objects(generation=2) if id(obj) in rules)


@pytest.fixture(autouse=True)
def _nothing_frozen() -> None:
    """Start with no frozen object: an earlier test running the CLI in this process leaves
    its snapshot frozen (``gc.freeze``, as the CLI does on purpose), and the parsers then
    leave the collector's generations alone (``test_frozen_objects_stay_frozen``)."""
    gc.unfreeze()


PARSERS: dict[str, tuple[Callable[[int], str], Callable[[str], Ruleset]]] = {
    "save": (_save, parse_save),
    "listing": (_listing, lambda text: parse_listing(text, table="nat")),
}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_large_input_leaves_its_rules_to_the_oldest_generation(name: str) -> None:
    """A parse of input over OLD_ENOUGH, built with the collector off, does not leave its
    objects in the youngest generation for the next collection to walk."""
    make, parse = PARSERS[name]
    text = make(COUNT)
    assert len(text) > OLD_ENOUGH
    gc.collect()
    ruleset = parse(text)
    assert gc.isenabled()
    assert ruleset.rule_count == COUNT
    assert _in_oldest(ruleset) == COUNT


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_small_input_is_left_as_is(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Below OLD_ENOUGH nothing is aged (the collector's own generations are not touched; a
    collection may still run after the parse, so the calls are what is checked)."""
    make, parse = PARSERS[name]
    text = make(200)
    assert len(text) < OLD_ENOUGH
    calls: list[str] = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
    assert parse(text).rule_count == 200
    assert calls == []
    assert parse(make(COUNT)).rule_count == COUNT  # the same patch sees a large parse age
    assert calls == ["freeze", "unfreeze"]


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_frozen_objects_stay_frozen(name: str) -> None:
    """Objects frozen on purpose (``gc.freeze``, as the CLI does) stay frozen."""
    make, parse = PARSERS[name]
    text = make(COUNT)
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        parse(text)
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_collector_left_off_when_the_caller_turned_it_off(name: str) -> None:
    make, parse = PARSERS[name]
    gc.disable()
    try:
        parse(make(200))
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("was_on", [True, False])
@pytest.mark.parametrize("raises", [False, True])
def test_freeze_moves_what_is_alive_to_the_permanent_generation(was_on: bool,
                                                                raises: bool) -> None:
    """``freeze``: what the body built is frozen, raised or not, and the collector is left as
    it was."""
    (gc.enable if was_on else gc.disable)()
    kept: list[list[int]] = []
    try:
        with pytest.raises(_BodyError) if raises else nullcontext(), collector_off(freeze=True):
            assert not gc.isenabled()
            kept.extend([i] for i in range(1000))
            if raises:
                raise _BodyError
        assert gc.isenabled() is was_on
        assert gc.get_freeze_count() >= len(kept) == 1000
    finally:
        gc.enable()
        gc.unfreeze()


@pytest.mark.parametrize("was_on", [True, False])
def test_plain_use_neither_ages_nor_freezes(was_on: bool,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``size`` or ``freeze`` (the simulator, the audit, the cache's writes): the
    collector is off for the body and back as it was, the generations untouched."""
    calls: list[str] = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
    (gc.enable if was_on else gc.disable)()
    try:
        with collector_off():
            assert not gc.isenabled()
        assert gc.isenabled() is was_on
        assert calls == []
    finally:
        gc.enable()


class _BodyError(Exception):
    """What the body raises."""
