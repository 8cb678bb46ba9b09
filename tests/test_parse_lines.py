"""Lines read a chunk at a time and origins that cut their text out of the input
(natlens.parse.lines, issue 13) give exactly what the whole split gives."""

from __future__ import annotations

import copy
import dataclasses
import io
import pickle
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natlens import ParseWarning, cache_pickle, parse_save
from natlens.model import Origin
from natlens.parse import lines as lines_module
from natlens.parse.lines import ListedLines, SourceLines
from natlens.parse.tokens import split_lines

# Line ends and what str.splitlines would also take for one, among ordinary characters.
_TEXT = st.text(alphabet=st.sampled_from(["a", "b", " ", "\n", "\r", "\u2028", "\x1c", "é"]),
                max_size=60)


@settings(max_examples=300)
@given(text=_TEXT, chunk=st.integers(min_value=1, max_value=12))
def test_source_lines_are_split_lines(text: str, chunk: int) -> None:
    with pytest.MonkeyPatch.context() as m:
        m.setattr(lines_module, "CHUNK", chunk)  # many chunk ends, at every kind of place
        source = SourceLines(text)
        want = split_lines(text)
        assert list(source) == want
        assert [source.line(n) for n in range(1, len(want) + 1)] == want
    for beyond in (0, -1, len(want) + 1, len(want) + 2):
        with pytest.raises(IndexError):
            source.line(beyond)


def test_listed_lines_number_from_one() -> None:
    listed = ListedLines(["*nat", "COMMIT"])
    assert list(listed) == ["*nat", "COMMIT"]
    assert listed.line(2) == "COMMIT"
    for beyond in (0, 3):
        with pytest.raises(IndexError):
            listed.line(beyond)


@pytest.mark.parametrize("text", ["a\nbb\r\nccc\n", "a\nbb\r\nccc"])
def test_origin_reading_its_text_is_the_origin_holding_it(text: str) -> None:
    lazy = Origin("f", 2, SourceLines(text))  # type: ignore[arg-type]
    plain = Origin("f", 2, "bb")
    assert lazy.text == "bb"
    assert lazy == plain
    assert hash(lazy) == hash(plain)
    assert repr(lazy) == repr(plain)
    assert dataclasses.asdict(lazy) == dataclasses.asdict(plain)
    assert dataclasses.replace(lazy, source="g") == Origin("g", 2, "bb")
    for twin in (copy.copy(lazy), copy.deepcopy(lazy), pickle.loads(pickle.dumps(lazy))):
        assert twin == plain
        assert type(object.__getattribute__(twin, "text")) is str
    with pytest.raises(dataclasses.FrozenInstanceError):
        lazy.text = "x"  # type: ignore[misc]


def _dumps(corpus: Path) -> list[Path]:
    return sorted([*(corpus / "real-world" / "permissive").glob("*save*"),
                   *(corpus / "real-world" / "permissive").glob("configs_serverfault__*"),
                   *(corpus / "iptables-t" / "shell-dumps").glob("ipt-*"),
                   *(corpus / "kube-proxy").glob("*.rules")])


def test_parsed_origins_hold_their_lines(corpus: Path) -> None:
    """Every rule's and chain's origin text is its line of the input, on the corpus."""
    files = [p for p in _dumps(corpus) if not p.name.endswith(".xml")]
    assert len(files) >= 15
    checked = 0
    for path in files:
        text = path.read_text()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ParseWarning)
            ruleset = parse_save(text, strict=False)
        if "# Warning:" in text:
            continue  # lines mended (natlens.parse.save._rejoin_interrupted): not the input's
        want = split_lines(text)
        for table in ruleset.tables:
            for chain in table.chains:
                for origin in [chain.origin, *(r.origin for r in chain.rules)]:
                    if origin is not None:
                        assert origin.text == want[origin.line - 1], (path.name, origin.line)
                        checked += 1
    assert checked > 1000


def test_origins_reading_the_input_pickle_as_strings() -> None:
    """The snapshot cache's pickler stores each origin's text, not the whole input."""
    ruleset = parse_save("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j DROP\nCOMMIT\n")
    rule = ruleset.tables[0].chains[0].rules[0]
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=5)
    pickler.dispatch_table = cache_pickle._dispatch()  # the cache's reducers
    pickler.dump(rule)
    loaded = cache_pickle.Unpickler(io.BytesIO(out.getvalue())).load()
    assert loaded.origin == Origin("<string>", 3, "-A INPUT -j DROP")
    assert type(object.__getattribute__(loaded.origin, "text")) is str
    assert b"COMMIT" not in out.getvalue()
