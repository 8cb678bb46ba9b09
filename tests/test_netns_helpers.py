"""The kernel tests' namespace scaffold (tests/netns_helpers.py): ``chained`` links the
namespaces it makes in a line, each loopback up, and removes them whatever happens;
``backend_env`` points ``iptables`` at one backend."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from netns_helpers import backend_env, chained, needs_root, run

pytestmark = pytest.mark.kernel


def _listed() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _links(ns: str) -> dict[str, tuple[bool, int, int | None]]:
    """Interface name → (up, its ifindex, its veth peer's ifindex in the other namespace)."""
    links = json.loads(run("ip", "-j", "link", "show", ns=ns))
    return {link["ifname"]: ("UP" in link["flags"], link["ifindex"], link.get("link_index"))
            for link in links}


def _peer(ns_a: str, dev_a: str, ns_b: str, dev_b: str) -> bool:
    """Whether ``dev_a`` in ``ns_a`` and ``dev_b`` in ``ns_b`` are the two ends of one veth."""
    (_, index_a, peer_a), (_, index_b, peer_b) = _links(ns_a)[dev_a], _links(ns_b)[dev_b]
    return (peer_a, peer_b) == (index_b, index_a)


def test_chained_links_each_namespace_to_the_next_and_removes_them() -> None:
    needs_root("ip", "iproute2")
    with pytest.raises(RuntimeError), chained(("nlt-a-", "a0"), ("nlt-b-", "b0", "b1"),  # noqa: PT012
                                              ("nlt-c-", "c0")) as names:
        a, b, c = names
        assert {a, b, c} <= set(_listed())
        assert [{name: up for name, (up, _, _) in _links(ns).items()} for ns in names] == [
            {"lo": True, "a0": True}, {"lo": True, "b0": True, "b1": True},
            {"lo": True, "c0": True}]
        assert _peer(a, "a0", b, "b0")
        assert _peer(b, "b1", c, "c0")
        assert not _peer(a, "a0", b, "b1")
        raise RuntimeError("the body fails")
    assert not {a, b, c} & set(_listed())


@pytest.mark.parametrize(("backend", "suffix"), [("nf_tables", "nft"), ("legacy", "legacy")])
def test_backend_env_runs_that_backends_tools(tmp_path: Path, backend: str,
                                              suffix: str) -> None:
    needs_root(f"iptables-{suffix}", "iptables")
    env = backend_env(tmp_path, backend)
    for tool in ("iptables", "ip6tables-save", "iptables-restore"):
        found = shutil.which(tool, path=env["PATH"])
        assert found is not None
        assert Path(found).resolve() == Path(str(shutil.which(
            tool.replace("tables", f"tables-{suffix}", 1)))).resolve()
    version = subprocess.run(["iptables", "--version"], env=env, capture_output=True,
                             text=True, check=True).stdout
    assert f"({backend})" in version
