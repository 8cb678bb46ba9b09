"""JSON Schemas of what natlens reads from a snapshot's JSON files, and their validation.

One schema per file (``SCHEMAS``, keyed like ``natlens.snapshot.SNAPSHOT_FILES``). A schema names
only the fields natlens (the loader, ``Inventory``, ``Host``, audit and verify) reads, with the
types the producing program prints: Go strings of the Docker Engine API are never null, its
pointers, maps and slices may be (``docker inspect``; Engine API ``ContainerInspectResponse``,
``NetworkResource``); ``ip -j addr/route`` as iproute2 prints them (ip-address(8), ip-route(8));
``meta.json`` as ``natlens snapshot`` writes it. Other fields pass unchecked (Engine versions add
fields), so a snapshot of any Engine version validates, and a value natlens would misread (a
string for an object, null for a name, port 0 or 65536, ``"sixteen"`` for a prefix length, an
address that does not parse, an interface name the kernel refuses) is an error naming the file
and the JSON path: ``docker-containers.json: $[0].NetworkSettings.Ports["80/tcp"][0].HostPort:
expected a host port or range 1-65535, got '65536'``.

Validation is Draft 2020-12 (``jsonschema``) with the formats below checked (``FORMATS``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

from natlens.errors import SnapshotJsonError, excerpt
from natlens.names import name_bytes

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

__all__ = ["FORMATS", "SCHEMAS", "json_path", "validate"]

Schema = dict[str, Any]

# -- formats --------------------------------------------------------------------------------------

_PORT_KEY = re.compile(r"^([0-9]{1,5})(?:/(tcp|udp|sctp))?$")
_HOST_PORT = re.compile(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){0,31}$")
_IFNAME_BAD = re.compile(r"[/:\s\x00]")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_version(version: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        if value == "":
            return True
        try:
            return ipaddress.ip_address(value).version == version
        except ValueError:
            return False
    return check


def _is_network(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _is_interface_or_empty(value: str) -> bool:
    if value == "":
        return True
    try:
        ipaddress.ip_interface(value)
    except ValueError:
        return False
    return True


def _port(text: str | None) -> bool:
    return text is not None and 1 <= int(text) <= 65535


def _is_port_key(value: str) -> bool:
    m = _PORT_KEY.match(value)
    return m is not None and _port(m.group(1))


def _is_host_port(value: str) -> bool:
    if value == "":
        return True  # a stopped container's "any free port": nothing bound yet
    m = _HOST_PORT.match(value)
    if m is None or not _port(m.group(1)):
        return False
    return m.group(2) is None or (_port(m.group(2)) and int(m.group(1)) <= int(m.group(2)))


def _is_ifname(value: str) -> bool:
    """``dev_valid_name`` (net/core/dev.c): 1 to 15 bytes, not ``.``/``..``, no ``/``, ``:``,
    blank or NUL; a ``\\xNN`` written by ``natlens snapshot`` counts as its one byte)."""
    size = name_bytes(value)
    return (0 < size <= 15 and value not in (".", "..")
            and _IFNAME_BAD.search(value) is None)


def _is_link_address(value: str) -> bool:
    """A link-layer address as ``ip -j link`` prints it: hex bytes (``02:42:ac:11:00:02``), an
    IP address for tunnels (``0.0.0.0``), or empty."""
    return value == "" or _MAC.match(value) is not None or _is_ip(value)


def _is_route_dst(value: str) -> bool:
    return value == "default" or _is_network(value)


FORMATS: dict[str, tuple[Callable[[str], bool], str]] = {
    "ip": (_is_ip, "an IP address"),
    "ipv4-or-empty": (_is_version(4), "an IPv4 address (or empty)"),
    "ipv6-or-empty": (_is_version(6), "an IPv6 address (or empty)"),
    "ip-or-empty": (lambda v: v == "" or _is_ip(v), "an IP address (or empty)"),
    "ip-network": (_is_network, "an IP network (address/prefix)"),
    "ip-interface-or-empty": (_is_interface_or_empty, "an address/prefix (or empty)"),
    "port-key": (_is_port_key, "a port and protocol like '80/tcp' (port 1-65535; tcp, udp, "
                               "sctp)"),
    "host-port": (_is_host_port, "a host port or range 1-65535 (or empty)"),
    "ifname": (_is_ifname, "an interface name (1-15 bytes, no '/', ':' or blanks)"),
    "link-address": (_is_link_address, "a link-layer address like 02:42:ac:11:00:02"),
    "route-dst": (_is_route_dst, "'default' or an IP network"),
}
"""Format name → (check of a string, what it should be, for messages)."""


# -- schema builders ------------------------------------------------------------------------------


def _nullable(schema: Schema, nullable: bool) -> Schema:
    if nullable:
        schema["type"] = [schema["type"], "null"]
    return schema


def _string(fmt: str | None = None, *, nullable: bool = False, max_length: int = 4096,
            enum: Iterable[str | None] | None = None) -> Schema:
    schema: Schema = {"type": "string", "maxLength": max_length}
    if fmt is not None:
        schema["format"] = fmt
    if enum is not None:
        return {"enum": list(enum)}
    return _nullable(schema, nullable)


def _integer(lo: int, hi: int, *, nullable: bool = False) -> Schema:
    return _nullable({"type": "integer", "minimum": lo, "maximum": hi}, nullable)


def _boolean(*, nullable: bool = True) -> Schema:
    return _nullable({"type": "boolean"}, nullable)


def _object(properties: Schema, *, required: Iterable[str] = (), nullable: bool = False,
            **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return _nullable(schema, nullable)


def _map(values: Schema | None = None, *, keys: Schema | None = None,
         nullable: bool = True, **extra: Any) -> Schema:
    schema: Schema = {"type": "object", **extra}
    if values is not None:
        schema["additionalProperties"] = values
    if keys is not None:
        schema["propertyNames"] = keys
    return _nullable(schema, nullable)


def _array(items: Schema, *, nullable: bool = True) -> Schema:
    return _nullable({"type": "array", "items": items}, nullable)


# -- the files ------------------------------------------------------------------------------------

_PORT_KEY_SCHEMA: Schema = {"type": "string", "format": "port-key"}
_BINDING = _object({"HostIp": _string("ip-or-empty"), "HostPort": _string("host-port")})
_BINDINGS = _map(_array(_BINDING), keys=_PORT_KEY_SCHEMA)
_ENDPOINT = _object({
    "NetworkID": _string(),
    "IPAddress": _string("ipv4-or-empty"),
    "IPPrefixLen": _integer(0, 32),
    "Gateway": _string("ipv4-or-empty"),
    "GlobalIPv6Address": _string("ipv6-or-empty"),
    "GlobalIPv6PrefixLen": _integer(0, 128),
    "IPv6Gateway": _string("ipv6-or-empty"),
    "MacAddress": _string("link-address"),
    "Aliases": _array(_string()),
}, nullable=True)

CONTAINERS: Schema = _array(_object({
    "Id": _string(max_length=256),
    "Name": _string(max_length=256),
    "Image": _string(),
    "State": _object({"Status": _string(max_length=64), "Running": _boolean()}, nullable=True),
    "Config": _object({"Image": _string(), "ExposedPorts": _map(keys=_PORT_KEY_SCHEMA)},
                      nullable=True),
    "HostConfig": _object({"NetworkMode": _string(), "PortBindings": _BINDINGS},
                          nullable=True),
    "NetworkSettings": _object({"Networks": _map(_ENDPOINT), "Ports": _BINDINGS}),
}, required=("Id", "Name", "NetworkSettings")), nullable=False)
"""``docker inspect $(docker ps -aq)``: a list of containers. ``NetworkSettings`` is required
(an object: ``docker inspect`` prints one for every container, created and stopped ones too,
with ``"Ports": {}`` or null): without it natlens would read the container as on no network
and publishing nothing."""

NETWORKS: Schema = _array(_object({
    "Id": _string(max_length=256),
    "Name": _string(max_length=256),
    "Driver": _string(max_length=256),
    "Internal": _boolean(),
    "EnableIPv6": _boolean(),
    "Options": _map(_string(), properties={
        "com.docker.network.bridge.name": _string("ifname")}),
    "IPAM": _object({
        "Driver": _string(),
        "Config": _array(_object({"Subnet": _string("ip-network"),
                                  "Gateway": _string("ip-or-empty")})),
    }, nullable=True),
    "Containers": _map(_object({
        "Name": _string(),
        "IPv4Address": _string("ip-interface-or-empty"),
        "IPv6Address": _string("ip-interface-or-empty"),
    })),
}, required=("Id", "Name")), nullable=False)
"""``docker network inspect $(docker network ls -q)``: a list of networks."""

_INET: Schema = {
    "if": {"properties": {"family": {"const": "inet"}}, "required": ["family"]},
    "then": {"properties": {"local": {"format": "ipv4-or-empty"},
                            "broadcast": {"format": "ipv4-or-empty"},
                            "prefixlen": {"maximum": 32}}},
}
_INET6: Schema = {
    "if": {"properties": {"family": {"const": "inet6"}}, "required": ["family"]},
    "then": {"properties": {"local": {"format": "ipv6-or-empty"}}},
}
ADDRESSES: Schema = _array(_object({
    "ifname": _string("ifname"),
    "master": _string("ifname"),
    "address": _string("link-address"),
    "addr_info": _array(_object({
        "family": _string(max_length=32),
        "local": _string("ip"),
        "prefixlen": _integer(0, 128),
        "broadcast": _string("ip"),
    }, allOf=[_INET, _INET6])),
}, then={"required": ["ifname"]}), nullable=False)
ADDRESSES["items"]["if"] = {"minProperties": 1}  # a link that is not {} names itself
"""``ip -j addr show``: a list of links with their addresses (``{}`` entries, printed by
``ip -j -4 addr`` for links without such addresses, are allowed)."""

ROUTE_TYPES = ("unicast", "local", "broadcast", "multicast", "anycast", "blackhole",
               "unreachable", "prohibit", "throw", "nat")
"""Route types of ip-route(8) (``RTN_*`` of include/uapi/linux/rtnetlink.h)."""

ROUTES: Schema = _array(_object({
    "dst": _string("route-dst"),
    "gateway": _string("ip"),
    "prefsrc": _string("ip"),
    "dev": _string("ifname"),
    "metric": _integer(0, 2**32 - 1),
    "type": _string(enum=ROUTE_TYPES),
}, required=("dst",)), nullable=False)
"""``ip -j route show``: a list of routes."""

_BACKENDS = ("nf_tables", "legacy", None)
_FLAG: Schema = {"type": ["boolean", "null", "string"], "enum": [True, False, None, "true",
                                                                   "false"]}
META: Schema = _object({
    "iptables_backend": _string(enum=_BACKENDS),
    "ip6tables_backend": _string(enum=_BACKENDS),
    "other_backend": _string(enum=_BACKENDS),
    "other_backend_has_rules": _boolean(),
    "userland_proxy": _FLAG,
    "docker_iptables": _FLAG,
    "docker_ip6tables": _FLAG,
    "docker_version": _string(nullable=True, max_length=200),
    "sysctl": _map(_nullable({"type": "string", "pattern": r"^-?[0-9]{1,10}$"}, True),
                   keys={"type": "string", "pattern": r"^[A-Za-z0-9_.:@+/-]{1,200}$"}),
})
"""``meta.json`` as ``natlens snapshot`` writes it (every key optional)."""

SCHEMAS: dict[str, Schema] = {
    "containers": CONTAINERS,
    "networks": NETWORKS,
    "addresses": ADDRESSES,
    "routes": ROUTES,
    "meta": META,
}
"""Schema of each snapshot JSON file, keyed like ``natlens.snapshot.SNAPSHOT_FILES``."""



def _strings_only(check: Callable[[str], bool]) -> Callable[[object], bool]:
    """A format check for any JSON value: formats describe strings, "type" judges the rest."""
    return lambda value: not isinstance(value, str) or check(value)


@cache
def _validator(kind: str) -> Validator:
    """The validator of ``SCHEMAS[kind]`` (jsonschema is imported on first use: it costs a
    quarter of a second, which commands without JSON input need not pay)."""
    from jsonschema import Draft202012Validator, FormatChecker  # noqa: PLC0415

    checker = FormatChecker(formats=())
    for name, (check, _) in FORMATS.items():
        checker.checks(name)(_strings_only(check))
    return Draft202012Validator(SCHEMAS[kind], format_checker=checker)


# -- errors ---------------------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPE_NAMES = {"object": "an object", "array": "a list", "string": "a string",
               "integer": "an integer", "number": "a number", "boolean": "true or false",
               "null": "null"}


def json_path(parts: Iterable[str | int]) -> str:
    """``$[0].NetworkSettings.Ports["80/tcp"]`` for the path parts ``0, "NetworkSettings",
    "Ports", "80/tcp"`` (keys that are not identifiers are quoted, long keys cut)."""
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENTIFIER.match(part) and len(part) <= 60:
            out.append(f".{part}")
        else:
            quoted = json.dumps(part[:60]) + ("…" if len(part) > 60 else "")
            out.append(f"[{quoted}]")
    return "".join(out)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"a string {excerpt(value, 60)}"
    return f"a number {str(value)[:40]}"


def _reason(error: ValidationError) -> str:
    schema = error.schema if isinstance(error.schema, dict) else {}
    value = error.instance
    key = error.validator
    listed = error.validator_value if isinstance(error.validator_value, list) else []
    if "propertyNames" in error.relative_schema_path:
        return f"key {excerpt(str(value), 60)}: not {_wanted(schema)}"
    if key == "type":
        return f"expected {_type_names(schema)}, got {_kind(value)}"
    if key == "required" and isinstance(value, dict):
        missing = [k for k in listed if k not in value]
        return f"no {missing[0]!r} field" if missing else "a field is missing"
    if key in ("minimum", "maximum"):
        lo, hi = schema.get("minimum"), schema.get("maximum")
        bounds = f"{lo}-{hi}" if lo is not None and hi is not None else (
            f"at most {hi}" if hi is not None else f"at least {lo}")
        return f"{str(value)[:40]} out of range ({bounds})"
    if key in ("format", "pattern"):
        return f"expected {_wanted(schema)}, got {_kind(value)}"
    if key in ("enum", "const"):
        spelled = ("null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
                   for v in listed)  # JSON spellings: true/false/null, never Python's
        options = ", ".join(dict.fromkeys(spelled))
        return f"expected one of {options}; got {_kind(value)}"
    if key == "maxLength":
        return f"longer than {error.validator_value} characters"
    if key == "minProperties":
        return "empty object"
    return error.message[:200]


def _wanted(schema: Schema) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in FORMATS:
        return FORMATS[fmt][1]
    if "pattern" in schema:
        return f"a string matching {schema['pattern']}"
    return _type_names(schema)


def _type_names(schema: Schema) -> str:
    types = schema.get("type")
    if isinstance(types, str):
        types = [types]
    if isinstance(types, list):
        return " or ".join(_TYPE_NAMES.get(t, t) for t in types)
    return "a valid value"


def validate(kind: str, data: Any, *, source: str) -> None:
    """Check ``data`` (parsed JSON) against ``SCHEMAS[kind]``.

    Raises ``SnapshotJsonError`` for the first value that does not fit (the file ``source`` and
    the JSON path named; a frequent mistake, ``natlens.snapshot_checks.schema_mistake``, gets
    what to run instead), e.g. ``docker-containers.json: $[0].State: expected an object or null,
    got a string 'running'``. Raises ``KeyError`` for an unknown ``kind`` (a programming error).
    """
    from jsonschema.exceptions import best_match  # noqa: PLC0415  (see _validator)

    error = next(iter(_validator(kind).iter_errors(data)), None)
    if error is None:
        return
    from natlens.snapshot_checks import schema_mistake  # noqa: PLC0415  (only on a failure)

    hint = schema_mistake(kind, data, source)
    if hint is not None:
        raise SnapshotJsonError(hint, source=source)
    if error.context:
        error = best_match(error.context) or error
    raise SnapshotJsonError(_reason(error), source=source, path=json_path(error.absolute_path))
