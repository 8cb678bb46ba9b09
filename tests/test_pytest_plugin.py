"""The pytest plugin, run the way users run it: a fresh project made by ``pytester``.

Each inner project gets its own ini (strict markers, warnings as errors) and a copy of a fixture
snapshot. The examples of docs/pytest-plugin.md are read from the page and run here, so the page
cannot drift from what the plugin does. Most runs are in-process (the plugin loads through its
``pytest11`` entry point); the ``-p natlens`` runs use a subprocess, as on a user's machine: in
process, ``-p`` would meet the natlens package the outer session has already imported.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
DOC = REPO / "docs" / "pytest-plugin.md"

INNER_INI = """\
[pytest]
addopts = --strict-markers -p no:hypothesispytest -p no:benchmark -p no:cacheprovider
filterwarnings =
    error
"""
"""Strict like natlens's own ini; without the other dev plugins (each in-process run would
import them afresh, and they have nothing to do with natlens)."""


def doc_block(kind: str, name: str) -> str:
    """The fenced block following ``<!-- kind: name -->`` in docs/pytest-plugin.md."""
    text = DOC.read_text(encoding="utf-8")
    marker = f"<!-- {kind}: {name} -->"
    assert marker in text, f"{marker} missing from {DOC}"
    found = re.search(r"```[a-z]*\n(.*?)```", text.split(marker, 1)[1], re.DOTALL)
    assert found is not None, f"no code block after {marker}"
    return found.group(1)


def project(pytester: pytest.Pytester, *snapshots: str, into: str = ".",
            ini: str = INNER_INI) -> None:
    """An inner project: its ini and copies of the named fixture snapshots under ``into``."""
    pytester.makeini(ini)
    for name in snapshots:
        shutil.copytree(FIXTURES / name, pytester.path / into / name)


def failure_lines(result: pytest.RunResult) -> list[str]:
    """The ``E   `` lines of a run, as they are printed."""
    return [line.rstrip() for line in result.outlines if line.startswith("E ")]


# -- the documented examples --------------------------------------------------------------------


def test_quickstart_example_is_three_lines() -> None:
    code = [line for line in doc_block("example", "quickstart").splitlines() if line.strip()]
    assert len(code) == 3


def test_quickstart_passes_with_p_natlens(pytester: pytest.Pytester) -> None:
    project(pytester, "default-bridge-8080")
    pytester.makepyfile(test_quickstart=doc_block("example", "quickstart"))
    result = pytester.runpytest_subprocess("-p", "natlens")
    result.assert_outcomes(passed=1)
    assert "already registered" not in result.stderr.str()


def test_p_natlens_loads_the_plugin_without_autoload(pytester: pytest.Pytester,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    project(pytester, "default-bridge-8080")
    pytester.makepyfile(test_quickstart=doc_block("example", "quickstart"))
    result = pytester.runpytest_subprocess("-p", "natlens")
    result.assert_outcomes(passed=1)


def test_quickstart_passes_with_the_entry_point(pytester: pytest.Pytester) -> None:
    project(pytester, "default-bridge-8080")
    pytester.makepyfile(test_quickstart=doc_block("example", "quickstart"))
    pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize("name", ["failing", "compare"])
def test_documented_failure_output(pytester: pytest.Pytester, name: str) -> None:
    project(pytester, "default-bridge-8080")
    pytester.makepyfile(**{f"test_{name}": doc_block("example", name)})
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    shown = doc_block("output", name).rstrip("\n").splitlines()
    actual = failure_lines(result)
    start = actual.index(shown[0]) if shown[0] in actual else -1
    assert actual[start:start + len(shown)] == shown, "\n".join(actual)


# -- failing suites: the failure text ------------------------------------------------------------


OUTSIDE = '{"in_interface": "eth0", "src": "198.51.100.7", "dst": "192.0.2.2", "dport": 8080}'


def run_failing(pytester: pytest.Pytester, body: str, *snapshots: str) -> str:
    project(pytester, *snapshots or ("default-bridge-8080",))
    pytester.makepyfile(test_failing=textwrap.dedent(body))
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    text = "\n".join(failure_lines(result))
    # __tracebackhide__: the traceback ends in the test, not inside natlens.testing
    assert "raise AssertionError" not in result.stdout.str()
    assert "natlens/testing.py" not in result.stdout.str()
    return text


def test_assert_reaches_wrong_address(pytester: pytest.Pytester) -> None:
    text = run_failing(pytester, f"""
        from natlens.testing import assert_reaches

        def test_it(natlens_snapshot):
            assert_reaches(natlens_snapshot("default-bridge-8080"), {OUTSIDE}, "172.17.0.3:80")
    """)
    assert "Packet(in eth0, tcp 198.51.100.7 -> 192.0.2.2:8080, new) does not reach " \
           "172.17.0.3:80" in text
    assert "it went to 172.17.0.2:80 (ACCEPT, path forward via docker0) instead" in text
    assert ("accepted by: filter:DOCKER#1 (default-bridge-8080/iptables-save.txt:16)  -A DOCKER "
            "-d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT") in text
    assert ("destination set by: nat:DOCKER#2 (default-bridge-8080/iptables-save.txt:36)  "
            "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination "
            "172.17.0.2:80") in text
    assert "no DNAT rule sends traffic to 172.17.0.3:80" in text
    assert re.search(r"^E +2\. PREROUTING  nat:DOCKER#2 ", text, re.MULTILINE)
    assert re.search(r"^E +10\. POSTROUTING nat:POSTROUTING  policy ACCEPT$", text, re.MULTILINE)


def test_assert_dropped_on_an_accepted_packet(pytester: pytest.Pytester) -> None:
    text = run_failing(pytester, f"""
        from natlens.testing import assert_dropped

        def test_it(natlens_snapshot):
            assert_dropped(natlens_snapshot("default-bridge-8080"), {OUTSIDE})
    """)
    assert "Packet(in eth0, tcp 198.51.100.7 -> 192.0.2.2:8080, new) is not dropped" in text
    assert "ACCEPT: it goes to 172.17.0.2:80 (ACCEPT, path forward via docker0)" in text
    assert ("accepted by: filter:DOCKER#1 (default-bridge-8080/iptables-save.txt:16)  -A DOCKER "
            "-d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT") in text
    assert re.search(r"^E +9\. FORWARD     filter:DOCKER#1 ", text, re.MULTILINE)


def test_assert_published_on_an_unpublished_port(pytester: pytest.Pytester) -> None:
    text = run_failing(pytester, """
        from natlens.testing import assert_published

        def test_it(natlens_snapshot):
            assert_published(natlens_snapshot("default-bridge-8080"), "natlens-web", 8081)
    """)
    assert "natlens-web does not publish 8081/tcp" in text
    assert "it publishes 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp" in text
    assert "Packet(in eth0, tcp 198.51.100.7 -> 192.0.2.2:8081, new) does not reach " \
           "natlens-web (172.17.0.2)" in text
    assert "accepted by: filter:INPUT policy ACCEPT" in text
    assert ("nat:DOCKER#2 (default-bridge-8080/iptables-save.txt:36)  -A DOCKER ! -i docker0 "
            "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80") in text
    assert "why not: destination port 8081 is not 8080" in text
    assert re.search(r"^E +4\. ROUTING     192\.0\.2\.2 is a local address", text, re.MULTILINE)


def test_assert_no_findings_on_planted_faults(pytester: pytest.Pytester) -> None:
    # Needs the audit's Docker checks (stale, shadowed, ineffective); see fixtures/planted-faults.
    text = run_failing(pytester, """
        from natlens.testing import assert_no_findings

        def test_it(natlens_snapshot):
            assert_no_findings(natlens_snapshot("planted-faults"))
    """, "planted-faults")
    assert "planted-faults: " in text
    assert "[high] stale: nat DOCKER #1" in text
    assert ("-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8090 -j DNAT --to-destination "
            "172.17.0.99:80") in text
    assert "planted-faults/iptables-save.txt:" in text
    assert re.search(r"^E +kind +where +finding$", text, re.MULTILINE)  # the findings table


def test_assert_no_findings_low_shows_the_duplicate(pytester: pytest.Pytester) -> None:
    text = run_failing(pytester, """
        from natlens.testing import assert_no_findings

        def test_it(natlens_snapshot):
            assert_no_findings(natlens_snapshot("planted-faults"), "low")
    """, "planted-faults")
    assert "duplicate: nat PREROUTING #1" in text
    assert ("rule nat:PREROUTING#1 (planted-faults/iptables-save.txt:34)  -A PREROUTING "
            "! -i docker0 -p tcp -m tcp --dport 8082 -j DNAT --to-destination 172.17.0.4:80"
            ) in text


def test_trace_compared_with_a_string(pytester: pytest.Pytester) -> None:
    text = run_failing(pytester, f"""
        import natlens

        def test_it(natlens_snapshot):
            trace = natlens.simulate(natlens_snapshot("default-bridge-8080"),
                                     natlens.Packet(**{OUTSIDE}))
            assert trace == "172.17.0.2:80"
    """)
    assert "assert Trace(ACCEPT forward 172.17.0.2:80) == '172.17.0.2:80'" in text
    assert "compare trace.final_dst ('172.17.0.2:80')" in text


# -- fixtures, marker, ini option -----------------------------------------------------------------


def test_ini_option_natlens_fixtures(pytester: pytest.Pytester) -> None:
    project(pytester, "default-bridge-8080", into="snapshots",
            ini=INNER_INI + "natlens_fixtures = snapshots\n")
    pytester.mkdir("tests")
    pytester.path.joinpath("tests", "test_web.py").write_text(textwrap.dedent("""
        def test_loads_from_the_ini_folder(natlens_snapshot):
            snap = natlens_snapshot("default-bridge-8080")
            assert snap.inventory.container("natlens-web") is not None
            assert snap.path == "snapshots/default-bridge-8080"
            assert natlens_snapshot("default-bridge-8080") is snap  # loaded once
    """), encoding="utf-8")
    pytester.runpytest().assert_outcomes(passed=1)


def test_marker_natlens_ruleset_and_snapshot(pytester: pytest.Pytester) -> None:
    project(pytester, "default-bridge-8080")
    pytester.makepyfile(test_marker="""
        import pytest

        pytestmark = pytest.mark.natlens("default-bridge-8080")

        def test_ruleset(natlens_ruleset):
            assert [c.name for c in natlens_ruleset["nat"].chains] == [
                "PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "DOCKER"]

        @pytest.mark.natlens("default-bridge-8080", strict=False)
        def test_snapshot_without_path(natlens_snapshot, natlens_ruleset):
            assert natlens_snapshot().ruleset is natlens_ruleset
    """)
    pytester.runpytest().assert_outcomes(passed=2)


def test_natlens_ruleset_without_marker(pytester: pytest.Pytester) -> None:
    project(pytester)
    pytester.makepyfile(test_nomarker="""
        def test_it(natlens_ruleset):
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*natlens_ruleset needs @pytest.mark.natlens('path/to/snapshot')"
                                 " on test_nomarker.py::test_it*"])


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    project(pytester)
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.natlens(path, strict=True): *"])


def test_fixture_can_be_overridden(pytester: pytest.Pytester) -> None:
    project(pytester, "default-bridge-8080")
    pytester.makeconftest("""
        import natlens
        import pytest

        @pytest.fixture
        def natlens_snapshot():
            def factory(path=None, *, strict=None):
                return natlens.load("default-bridge-8080")
            return factory
    """)
    pytester.makepyfile(test_override="""
        import pytest

        @pytest.mark.natlens("no/such/folder")
        def test_it(natlens_ruleset):
            assert "nat" in natlens_ruleset
    """)
    pytester.runpytest().assert_outcomes(passed=1)
