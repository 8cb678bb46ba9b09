"""The JSON Schemas of snapshot files (natlens.schemas) and the bounded JSON reader
(natlens.inputs): real snapshots pass; wrong types, nulls, out-of-range ports and numbers, bad
addresses and names fail with the file and JSON path; hostile encodings and sizes fail cleanly.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT

import natlens
from natlens.docker import Inventory
from natlens.errors import SnapshotError, SnapshotJsonError
from natlens.inputs import MAX_JSON_DEPTH, decode_json, read_bytes
from natlens.netfilter.host import Host
from natlens.schemas import SCHEMAS, json_path, validate

FILES = {
    "docker-containers.json": "containers",
    "docker-networks.json": "networks",
    "ip-addr.json": "addresses",
    "ip-route.json": "routes",
    "ip-route6.json": "routes",
    "meta.json": "meta",
}
REPO_FILES = sorted(p for root in ("fixtures", "docs/examples")
                    for p in (REPO_ROOT / root).rglob("*.json")
                    if p.name in FILES and not p.parent.name.startswith("bad-"))
"""Every snapshot JSON file shipped (docs/examples/bad-* are wrong on purpose)."""
PLANTED = REPO_ROOT / "fixtures" / "planted-faults"


def _load(name: str) -> Any:
    return json.loads((PLANTED / name).read_text())


@pytest.mark.parametrize("path", REPO_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_bundled_snapshot_file_fits_its_schema(path: Path) -> None:
    validate(FILES[path.name], json.loads(path.read_text()), source=str(path))


def test_every_real_world_and_kernel_case_file_fits_its_schema(cases: Path) -> None:
    checked = 0
    for group in ("real-world", "kernel"):
        for path in sorted((cases / group).rglob("*.json")):
            if path.name in FILES:
                validate(FILES[path.name], json.loads(path.read_text()), source=str(path))
                checked += 1
    assert checked >= 30


def _set(data: Any, path: tuple[str | int, ...], value: Any) -> Any:
    out = copy.deepcopy(data)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


PORTS = ("NetworkSettings", "Ports")
BAD_CONTAINERS = [
    # (path from the first container, value, message)
    ((*PORTS, "80/tcp", 0, "HostPort"), "0", "host port or range 1-65535"),
    ((*PORTS, "80/tcp", 0, "HostPort"), "65536", "got a string '65536'"),
    ((*PORTS, "80/tcp", 0, "HostPort"), "-1", "got a string '-1'"),
    ((*PORTS, "80/tcp", 0, "HostPort"), "9000-8000", "got a string '9000-8000'"),
    ((*PORTS, "80/tcp", 0, "HostPort"), 8080, "expected a string, got a number 8080"),
    ((*PORTS, "80/tcp", 0, "HostPort"), None, "expected a string, got null"),
    ((*PORTS, "80/tcp", 0, "HostIp"), "0.0.0.0\nx", "an IP address (or empty)"),
    (("Name",), None, "$[0].Name: expected a string, got null"),
    (("Id",), 7, "$[0].Id: expected a string, got a number 7"),
    (("State",), "running", "$[0].State: expected an object or null"),
    (("NetworkSettings", "Networks", "bridge", "IPPrefixLen"), 33, "33 out of range (0-32)"),
    (("NetworkSettings", "Networks", "bridge", "IPPrefixLen"), 10**25, "out of range (0-32)"),
    (("NetworkSettings", "Networks", "bridge", "IPAddress"), "172.17.0.300", "an IPv4 address"),
    (("NetworkSettings", "Networks", "bridge", "GlobalIPv6Address"), "172.17.0.3",
     "an IPv6 address"),
    (("NetworkSettings", "Networks", "bridge", "MacAddress"), "02:42 x\nnetns", "link-layer"),
    (("NetworkSettings", "Networks", "bridge", "Aliases"), [1], "Aliases[0]: expected a string"),
    (("Config", "ExposedPorts"), {"0/tcp": {}}, "key '0/tcp': not a port and protocol"),
    (("Config", "ExposedPorts"), {"80/icmp": {}}, "key '80/icmp'"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_CONTAINERS,
                         ids=[f"{'.'.join(map(str, p[-2:]))}={v!r}"[:60]
                              for p, v, _ in BAD_CONTAINERS])
def test_container_values_natlens_would_misread_are_refused(path: tuple[str | int, ...],
                                                            value: Any, message: str) -> None:
    containers = _load("docker-containers.json")
    running = next(i for i, c in enumerate(containers)
                   if c["State"]["Running"] and c["NetworkSettings"]["Ports"].get("80/tcp"))
    bad = _set(containers, (running, *path), value)
    with pytest.raises(SnapshotJsonError) as info:
        validate("containers", bad, source="docker-containers.json")
    text = str(info.value)
    assert text.startswith(f"docker-containers.json: $[{running}]"), text
    assert message.replace("$[0]", f"$[{running}]") in text, text
    assert "\n" not in text


def test_host_port_json_path_is_quoted_like_json() -> None:
    containers = _load("docker-containers.json")
    running = next(i for i, c in enumerate(containers)
                   if c["State"]["Running"] and c["NetworkSettings"]["Ports"].get("80/tcp"))
    bad = _set(containers, (running, *PORTS, "80/tcp", 0, "HostPort"), "65536")
    with pytest.raises(SnapshotJsonError, match=r'\.Ports\["80/tcp"\]\[0\]\.HostPort: expected a '
                                                r"host port or range 1-65535 \(or empty\), got "
                                                r"a string '65536'$"):
        validate("containers", bad, source="docker-containers.json")


@pytest.mark.parametrize("host_port", ["", "1", "65535", "7000-7002", "8080"])
def test_valid_host_ports_pass(host_port: str) -> None:
    containers = _load("docker-containers.json")
    running = next(i for i, c in enumerate(containers) if c["NetworkSettings"]["Ports"])
    key = next(iter(containers[running]["NetworkSettings"]["Ports"]))
    good = _set(containers, (running, *PORTS, key), [{"HostIp": "", "HostPort": host_port}])
    validate("containers", good, source="x")


@pytest.mark.parametrize(("kind", "data", "message"), [
    ("networks", [{"Id": "n", "Name": "x", "Options": {"com.docker.network.bridge.name": None}}],
     "$[0].Options[\"com.docker.network.bridge.name\"]: expected a string, got null"),
    ("networks", [{"Id": "n", "Name": "x", "Options": {"com.docker.network.bridge.name":
                                                       "br x"}}], "an interface name"),
    ("networks", [{"Id": "n", "Name": "x", "IPAM": {"Config": [{"Subnet": "10.0.0.0/33"}]}}],
     "$[0].IPAM.Config[0].Subnet: expected an IP network"),
    ("addresses", [{"ifname": "eth0", "addr_info": [{"family": "inet", "local": "fd00::1",
                                                     "prefixlen": 64}]}],
     "$[0].addr_info[0].local: expected an IPv4 address"),
    ("addresses", [{"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.0.0.1",
                                                     "prefixlen": 48}]}],
     "$[0].addr_info[0].prefixlen"),
    ("addresses", [{"ifname": "a-name-longer-than-15"}], "$[0].ifname: expected an interface"),
    ("addresses", [{"ifname": None}], "$[0].ifname: expected a string, got null"),
    ("routes", [{"dst": "default", "metric": 2**32}], "$[0].metric: 4294967296 out of range"),
    ("routes", [{"dst": "default", "type": "teleport"}], "$[0].type: expected one of unicast"),
    ("routes", [{"gateway": "10.0.0.1"}], "$[0]: no 'dst' field"),
    ("meta", {"iptables_backend": "x\x1b[31m"}, "$.iptables_backend: expected one of"),
    ("meta", {"sysctl": {"net.ipv4.ip_forward": 1}}, "expected a string or null, got a number 1"),
    ("meta", {"sysctl": {"net.ipv4.ip_forward": "1; reboot"}}, "a string matching"),
    ("meta", [], "$: expected an object, got a list"),
])
def test_other_files_values_are_checked(kind: str, data: Any, message: str) -> None:
    with pytest.raises(SnapshotJsonError) as info:
        validate(kind, data, source="f.json")
    assert message in str(info.value), str(info.value)


def test_json_path_quotes_keys_that_are_not_identifiers() -> None:
    assert json_path([0, "NetworkSettings", "Ports", "80/tcp", 0]) == \
        '$[0].NetworkSettings.Ports["80/tcp"][0]'
    assert json_path(["a\nb"]) == '$["a\\nb"]'
    assert len(json_path(["x" * 10_000])) < 80


def test_null_never_becomes_the_name_none(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A JSON null where Docker prints a string is an error, never the name "None"."""
    containers = _load("docker-containers.json")
    containers[0]["Name"] = None
    with pytest.raises(SnapshotJsonError, match=r"\$\[0\]\.Name: expected a string, got null"):
        Inventory.from_json(containers, [])
    networks = _load("docker-networks.json")
    networks[0]["Options"] = {"com.docker.network.bridge.enable_icc": None}
    with pytest.raises(SnapshotJsonError, match="got null"):
        Inventory.from_json([], networks)


def test_host_from_json_validates_too() -> None:
    with pytest.raises(SnapshotJsonError, match=r"<ip-route JSON>: \$\[0\]\.dev"):
        Host.from_json(None, [{"dst": "default", "dev": ["docker0"]}])
    with pytest.raises(SnapshotJsonError, match=r"<ip-addr JSON>: \$\[0\]"):
        Host.from_json([1], None)
    assert Host.from_json([{}], None).knows("lo")  # `ip -j -4 addr` prints {} for some links


def test_every_schema_is_a_valid_json_schema() -> None:
    from jsonschema import Draft202012Validator

    for schema in SCHEMAS.values():
        Draft202012Validator.check_schema(schema)


# -- decoding --------------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "message"), [
    (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nested too deeply"),
    (b"[" * 100_000, "nested too deeply"),
    (b"[" + b"9" * 5000 + b"]", "number too large"),
    (b"[1e999]", "number too large or not finite: 1e999"),
    (b"[NaN]", "not finite: NaN"),
    (b'{"a": "\xe9"}', "not UTF-8: byte 0xe9 at offset 7"),
    ('{"a": 1}'.encode("utf-16"), "UTF-16 text, not UTF-8"),
    ('{"a": 1}'.encode("utf-16-le"), "UTF-16 text, not UTF-8"),
    ('{"a": 1}'.encode("utf-32"), "UTF-32 text, not UTF-8"),
    (b'{"a": 1', "f.json:1:8: invalid JSON: Expecting ',' delimiter"),
])
def test_bad_json_bytes_are_one_error(data: bytes, message: str) -> None:
    with pytest.raises(SnapshotJsonError) as info:
        decode_json(data, "f.json")
    assert message in str(info.value)
    assert len(str(info.value)) < 200


def test_json_within_bounds_decodes() -> None:
    assert decode_json(b"\xef\xbb\xbf{\"a\": [1, 2.5, \"\\ud800\"]}", "f") == \
        {"a": [1, 2.5, "\ud800"]}
    deep = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert decode_json(deep, "f") is not None
    assert decode_json(b'["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]',
                       "f")


def test_reader_refuses_directories_devices_and_oversized_files(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="is a directory, not a file"):
        read_bytes(tmp_path)
    with pytest.raises(SnapshotError, match="/dev/zero: binary file"):
        read_bytes("/dev/zero")
    with pytest.raises(SnapshotError, match="no such file or directory"):
        read_bytes(tmp_path / "missing")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(SnapshotError, match="broken symbolic link"):
        read_bytes(tmp_path / "dangling")
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 5000)
    with pytest.raises(SnapshotError, match="larger than the 4 KiB input limit"):
        read_bytes(big, limit=4096)
    assert read_bytes(big, limit=5000)[0] == b"x" * 5000


def test_load_names_the_file_for_a_bad_json_file(tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "iptables-save.txt").write_text((PLANTED / "iptables-save.txt").read_text())
    (snap / "ip-route.json").write_text('[{"dst": "default", "metric": "high"}]')
    with pytest.raises(SnapshotJsonError) as info:
        natlens.load(snap)
    assert str(info.value) == (f"{snap}/ip-route.json: $[0].metric: expected an integer, got a "
                               "string 'high'")
    assert info.value.path == "$[0].metric"


@pytest.mark.parametrize(("content", "message"), [
    (b'{"nftables": [{"metainfo": {"json_schema_version": ' + b"1" * 5000 + b"}}]}",
     "number too large"),
    (b'{"nftables": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nested too deeply"),
    (b'{"nftables": [}', "nft-ruleset.json:1:15: not JSON: Expecting value"),
])
def test_nft_json_is_read_within_the_same_bounds(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 content: bytes, message: str) -> None:
    from hostile_input import assert_one_error, run_in_process

    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "iptables-save.txt").write_text((PLANTED / "iptables-save.txt").read_text())
    (snap / "nft-ruleset.json").write_bytes(content)
    assert_one_error(run_in_process(["report", str(snap)], capsys), message)
