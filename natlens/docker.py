"""Docker inventory: containers, networks and daemon facts, live or from saved JSON.

The offline form is what ``docker inspect $(docker ps -aq)`` and ``docker network inspect
$(docker network ls -q)`` print; the live form asks the Engine API through the Docker SDK for the
very same objects (``GET /containers/{id}/json``, ``GET /networks/{id}``), so both paths run one
converter and give equal values.

Where published ports come from (Engine API reference, ``NetworkSettings.Ports``): a running
container reports the bindings the daemon made (one per host address, ``0.0.0.0`` and ``::`` for
an unqualified ``-p``); a container that is not running has none, and its intent is read from
``HostConfig.PortBindings`` (host address ``""`` = every address, host port ``"7000-7002"`` = a
range). Bridge names, ICC and masquerading follow the bridge driver's options
(``com.docker.network.bridge.*``) and defaults.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from natlens.errors import DockerError, SnapshotError
from natlens.inputs import is_decimal
from natlens.schemas import validate

__all__ = [
    "Container",
    "ContainerNetwork",
    "DaemonFacts",
    "DockerError",
    "Inventory",
    "Network",
    "PortProto",
    "PublishedPort",
    "connect",
    "daemon_facts_live",
    "inspect_live",
    "SnapshotDockerFiles",
    "inventory_from_snapshot",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BRIDGE_NAME = "com.docker.network.bridge.name"
ENABLE_ICC = "com.docker.network.bridge.enable_icc"
ENABLE_MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
HOST_BINDING_IPV4 = "com.docker.network.bridge.host_binding_ipv4"
DAEMON_JSON = Path("/etc/docker/daemon.json")




class PortProto(str, Enum):
    """Transport protocol of a published port (``80/tcp``)."""

    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"


@dataclass(frozen=True, slots=True)
class PublishedPort:
    """One host binding of a container port: ``host_ip:host_start-host_end -> container_port``.

    ``host_ip`` is None when the binding names no address (a stopped container's
    ``PortBindings`` with ``HostIp ""``: every address, or the network's ``host_binding_ipv4``).
    ``host_end == host_start`` for a single port.
    """

    proto: PortProto
    container_port: int
    host_ip: IPAddress | None
    host_start: int
    host_end: int

    @property
    def host_ports(self) -> range:
        """The host ports this binding covers."""
        return range(self.host_start, self.host_end + 1)

    @property
    def loopback_only(self) -> bool:
        """Whether only the host itself can connect (``-p 127.0.0.1:...``)."""
        return self.host_ip is not None and self.host_ip.is_loopback

    def __str__(self) -> str:
        ports = str(self.host_start) if self.host_end == self.host_start else (
            f"{self.host_start}-{self.host_end}")
        if self.host_ip is None:
            host = ports
        elif self.host_ip.version == 6:
            host = f"[{self.host_ip}]:{ports}"
        else:
            host = f"{self.host_ip}:{ports}"
        return f"{host}->{self.container_port}/{self.proto.value}"


@dataclass(frozen=True, slots=True)
class ContainerNetwork:
    """A container's endpoint on one network (``NetworkSettings.Networks[name]``)."""

    name: str
    network_id: str
    ipv4: ipaddress.IPv4Address | None
    ipv4_prefix: int
    ipv6: ipaddress.IPv6Address | None
    ipv6_prefix: int
    gateway: ipaddress.IPv4Address | None
    gateway6: ipaddress.IPv6Address | None
    mac: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Container:
    """One container as ``docker inspect`` describes it, reduced to what routing needs."""

    name: str
    id: str
    state: str
    """``running``, ``exited``, ``created``, ``paused``, ``restarting`` or ``dead``."""
    image: str
    network_mode: str
    """``HostConfig.NetworkMode``: ``default``/``bridge``, a network name, ``host``, ``none``,
    ``container:ID``."""
    networks: tuple[ContainerNetwork, ...] = ()
    ports: tuple[PublishedPort, ...] = ()
    """What is published: the daemon's bindings while running (``NetworkSettings.Ports``), the
    requested ones otherwise."""
    requested: tuple[PublishedPort, ...] = ()
    """What ``-p`` asked for (``HostConfig.PortBindings``; host address None = unspecified).
    A running container may have fewer ``ports``: Docker binds nothing on an internal network."""
    exposed: tuple[tuple[str, int], ...] = ()
    """``Config.ExposedPorts`` (the image's EXPOSE, ``--expose``) as sorted (proto, port)."""

    @property
    def running(self) -> bool:
        """Whether its endpoints and rules are in place (``paused`` counts, ``restarting`` not)."""
        return self.state in ("running", "paused")

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        """Every address the container holds on its networks."""
        out: list[IPAddress] = []
        for net in self.networks:
            if net.ipv4 is not None:
                out.append(net.ipv4)
            if net.ipv6 is not None:
                out.append(net.ipv6)
        return tuple(out)

    def network(self, name: str) -> ContainerNetwork | None:
        """The endpoint on network ``name`` (or None)."""
        return next((n for n in self.networks if n.name == name), None)


@dataclass(frozen=True, slots=True)
class Network:
    """One Docker network (``docker network inspect``).

    ``bridge`` is the Linux bridge of a ``bridge``-driver network (``docker0`` for the default
    one, ``br-<id[:12]>`` otherwise, unless ``com.docker.network.bridge.name`` names it); None for
    other drivers. ``gateways`` are the IPAM gateways (Docker's default IPAM gives the first host
    address when none is configured). ``options`` are the driver options, sorted by key.
    """

    name: str
    id: str
    driver: str
    bridge: str | None
    subnets: tuple[IPNetwork, ...]
    gateways: tuple[IPAddress, ...]
    internal: bool
    icc: bool
    masquerade: bool
    enable_ipv6: bool
    options: tuple[tuple[str, str], ...] = ()
    endpoints: tuple[tuple[str, IPAddress], ...] = ()
    """(name, address) of every endpoint on the network, containers or not (``ingress-sbox``)."""

    def option(self, key: str, default: str | None = None) -> str | None:
        """The driver option ``key`` (``com.docker.network.bridge.*``), or ``default``."""
        return next((v for k, v in self.options if k == key), default)

    @property
    def host_binding_ipv4(self) -> ipaddress.IPv4Address | None:
        """The default host address of ``-p`` bindings on this network (None: all)."""
        value = self.option(HOST_BINDING_IPV4)
        ip = _ip(value)
        return ip if isinstance(ip, ipaddress.IPv4Address) else None


@dataclass(frozen=True, slots=True)
class DaemonFacts:
    """How the daemon was configured, as far as it can be known (None: unknown).

    ``userland_proxy``: whether ``docker-proxy`` serves published ports too (it answers connections
    the nat rules never see, e.g. from the host to ``127.0.0.1``); ``iptables``/``ip6tables``:
    whether the daemon manages the IPv4/IPv6 rules at all.
    """

    userland_proxy: bool | None = None
    iptables: bool | None = None
    ip6tables: bool | None = None
    version: str | None = None

    def to_meta(self) -> dict[str, Any]:
        """The ``meta.json`` keys these facts are saved under (read back by ``from_meta``)."""
        return {
            "docker_version": self.version,
            "userland_proxy": self.userland_proxy,
            "docker_iptables": self.iptables,
            "docker_ip6tables": self.ip6tables,
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> DaemonFacts:
        """Read the facts from a snapshot's ``meta.json`` (missing keys are unknown)."""
        version = meta.get("docker_version")
        return cls(
            userland_proxy=_opt_bool(meta.get("userland_proxy")),
            iptables=_opt_bool(meta.get("docker_iptables")),
            ip6tables=_opt_bool(meta.get("docker_ip6tables")),
            version=version if isinstance(version, str) else None,
        )


@dataclass(frozen=True, slots=True)
class Inventory:
    """What the Docker Engine says: containers and networks sorted by name, and daemon facts.

    ``source`` (where it came from) does not take part in equality, so a live inventory equals
    the one read from the JSON the same daemon printed.
    """

    containers: tuple[Container, ...]
    networks: tuple[Network, ...]
    daemon: DaemonFacts = DaemonFacts()
    source: str = field(default="<json>", compare=False)

    @property
    def running(self) -> tuple[Container, ...]:
        """The containers whose rules are in place."""
        return tuple(c for c in self.containers if c.running)

    def container(self, name: str) -> Container | None:
        """The container called ``name`` (a leading ``/`` is ignored), or None."""
        name = name.lstrip("/")
        return next((c for c in self.containers if c.name == name), None)

    def network(self, name: str) -> Network | None:
        """The network called ``name`` or whose id starts with ``name``, or None."""
        return next((n for n in self.networks if name in (n.name, n.id[: len(name)])), None)

    def publisher(self, ip: IPAddress | str, port: int,
                  proto: str = "tcp") -> tuple[Container, PublishedPort] | None:
        """The running container publishing ``ip:port/proto`` on the host, if any.

        A binding without an address, or on ``0.0.0.0``/``::``, covers every host address of
        its family.
        """
        addr = ipaddress.ip_address(ip)
        for container in self.running:
            for binding in container.ports:
                if binding.proto.value != proto or port not in binding.host_ports:
                    continue
                host_ip = binding.host_ip
                if host_ip is None or host_ip == addr or (
                        host_ip.is_unspecified and host_ip.version == addr.version):
                    return container, binding
        return None

    def holder(self, ip: IPAddress | str) -> Container | None:
        """The running container that holds address ``ip`` (None: nobody, a stale target)."""
        addr = ipaddress.ip_address(ip)
        return next((c for c in self.running if addr in c.addresses), None)

    @classmethod
    def from_json(
        cls,
        containers: Iterable[Any],
        networks: Iterable[Any],
        meta: Mapping[str, Any] | None = None,
        *,
        source: str = "<json>",
    ) -> Inventory:
        """Build from ``docker inspect`` / ``docker network inspect`` JSON and ``meta.json``.

        Raises ``SnapshotJsonError`` (naming ``source`` and the JSON path) when a value does not
        fit ``natlens.schemas`` (a field every Engine version prints missing, a wrong type, null,
        a port out of range, an address that does not parse).
        """
        containers, networks = list(containers), list(networks)
        validate("containers", containers, source=f"{source} (containers)")
        validate("networks", networks, source=f"{source} (networks)")
        nets = [_network(n, source) for n in networks]
        conts = [_container(c, source) for c in containers]
        return cls(
            containers=tuple(sorted(conts, key=lambda c: (c.name, c.id))),
            networks=tuple(sorted(nets, key=lambda n: (n.name, n.id))),
            daemon=DaemonFacts.from_meta(meta or {}),
            source=source,
        )

    @classmethod
    def from_docker(cls, client: Any = None) -> Inventory:
        """Ask a live daemon (``docker.from_env()`` honours ``DOCKER_HOST``) through the SDK.

        Raises ``DockerError`` when the daemon cannot be reached.
        """
        own = client is None
        if client is None:
            client = connect()
        try:
            containers, networks = inspect_live(client)
            facts = daemon_facts_live(client)
            source = f"docker:{_base_url(client)}"
        finally:
            if own:
                client.close()
        return cls.from_json(containers, networks, facts.to_meta(), source=source)


class SnapshotDockerFiles(Protocol):
    """The parsed Docker files of a snapshot (``natlens.snapshot.Snapshot`` has them)."""

    @property
    def containers(self) -> Sequence[Any] | None: ...
    @property
    def networks(self) -> Sequence[Any] | None: ...
    @property
    def meta(self) -> Mapping[str, Any]: ...
    @property
    def path(self) -> str: ...


def inventory_from_snapshot(snapshot: SnapshotDockerFiles) -> Inventory | None:
    """The inventory of a loaded snapshot (None when it has neither containers nor networks)."""
    if snapshot.containers is None and snapshot.networks is None:
        return None
    return Inventory.from_json(snapshot.containers or [], snapshot.networks or [], snapshot.meta,
                               source=snapshot.path)


# --- live daemon -------------------------------------------------------------------------------


def connect() -> Any:
    """A Docker SDK client for ``DOCKER_HOST`` (default: the local socket), checked with a ping.

    Raises ``DockerError`` when the SDK is missing or the daemon does not answer.
    """
    try:
        import docker  # noqa: PLC0415  (optional at import time: offline analysis needs no SDK)
    except ImportError as exc:  # pragma: no cover - docker is a dependency
        raise DockerError(f"docker SDK not installed: {exc}") from None
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if where.startswith("unix://"):
        # Check the socket first: the SDK leaks a socket when its constructor fails.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            try:
                sock.connect(where[len("unix://"):])
            except OSError as exc:
                raise DockerError(f"Docker daemon at {where} not reachable: "
                                  f"{exc.strerror or exc}") from None
    client = None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # SDK raises DockerException, requests errors, OSError
        if client is not None:
            client.close()
        raise DockerError(f"Docker daemon at {where} not reachable: "
                                f"{_one_line(exc)}") from None
    return client


def _base_url(client: Any) -> str:
    url = getattr(getattr(client, "api", None), "base_url", None)
    if url == "http+docker://localhost":
        return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return str(url) if url else "?"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__


def inspect_live(client: Any = None) -> tuple[list[Any], list[Any]]:
    """The raw ``docker inspect`` JSON of every container and network of a live daemon.

    Objects removed while listing are skipped. Raises ``DockerError``.
    """
    if client is None:
        client = connect()
    try:
        from docker.errors import NotFound  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        NotFound = LookupError  # noqa: N806

    containers: list[Any] = []
    networks: list[Any] = []
    try:
        for item in client.api.containers(all=True):
            try:
                containers.append(client.api.inspect_container(item["Id"]))
            except NotFound:
                continue
        for item in client.api.networks():
            try:
                networks.append(client.api.inspect_network(item["Id"]))
            except NotFound:
                continue
    except DockerError:
        raise
    except Exception as exc:
        raise DockerError(f"Docker daemon query failed: {_one_line(exc)}") from None
    return containers, networks


def daemon_facts_live(client: Any = None) -> DaemonFacts:
    """Detect the daemon's version, userland proxy and iptables settings.

    The proxy is on when ``docker-proxy`` processes run; otherwise the local ``dockerd`` command
    line and ``/etc/docker/daemon.json`` decide (flag, then file, then Docker's default: on).
    For a remote daemon (``DOCKER_HOST`` not a local socket) only the version is known.
    """
    if client is None:
        client = connect()
    try:
        version: str | None = str(client.version().get("Version")) or None
    except Exception:
        version = None
    host = os.environ.get("DOCKER_HOST", "")
    if host and not host.startswith("unix://"):
        return DaemonFacts(version=version)
    argv = _dockerd_argv()
    if argv is None:
        return DaemonFacts(userland_proxy=True if _proxy_running() else None, version=version)
    config = _daemon_config(argv)
    proxy = _setting(argv, config, "userland-proxy", default=True)
    if _proxy_running():
        proxy = True
    return DaemonFacts(
        userland_proxy=proxy,
        iptables=_setting(argv, config, "iptables", default=True),
        ip6tables=_setting(argv, config, "ip6tables", default=False),
        version=version,
    )


def _proc_cmdlines() -> Iterable[list[str]]:
    proc = Path("/proc")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if raw:
            yield [a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0")]


def _proxy_running() -> bool:
    return any(Path(argv[0]).name == "docker-proxy" for argv in _proc_cmdlines())


def _dockerd_argv() -> list[str] | None:
    pidfile = Path("/var/run/docker.pid")
    try:
        pid = pidfile.read_text().strip()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        argv = [a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0")]
        if argv and Path(argv[0]).name == "dockerd":
            return argv
    except OSError:
        pass
    return next((a for a in _proc_cmdlines() if Path(a[0]).name == "dockerd"), None)


def _flag(argv: list[str], name: str) -> str | None:
    """Value of ``--name[=value]`` (bare flag: ``"true"``); last one wins, like dockerd."""
    found: str | None = None
    for i, arg in enumerate(argv[1:], start=1):
        if arg == f"--{name}":
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            found = nxt if nxt in ("true", "false") else "true"
        elif arg.startswith(f"--{name}="):
            found = arg.split("=", 1)[1]
    return found


def _daemon_config(argv: list[str]) -> dict[str, Any]:
    path = Path(_flag(argv, "config-file") or DAEMON_JSON)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _setting(argv: list[str], config: Mapping[str, Any], name: str, *, default: bool) -> bool:
    flag = _flag(argv, name)
    if flag is not None:
        return flag.lower() not in ("false", "0")
    value = _opt_bool(config.get(name))
    return default if value is None else value


# --- JSON → values -----------------------------------------------------------------------------


def _opt_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _ip(value: Any) -> IPAddress | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None


def _require(obj: Any, key: str, kind: str, source: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        ident = obj.get("Name") or obj.get("Id", "?") if isinstance(obj, dict) else repr(obj)[:40]
        raise SnapshotError(f"{source}: {kind} {ident!s}: no {key!r} field "
                           "(not `docker inspect` output?)")
    return obj[key]


def _port_key(key: str) -> tuple[PortProto, int] | None:
    port, _, proto = key.partition("/")
    try:
        return PortProto(proto or "tcp"), int(port)
    except ValueError:
        return None


def _host_range(text: str) -> tuple[int, int] | None:
    start, _, end = (text or "").partition("-")
    try:
        lo = int(start)
        hi = int(end) if end else lo
    except ValueError:
        return None  # "" (a stopped container's random port) binds nothing yet
    return lo, hi


def _ports(bindings: Mapping[str, Any] | None) -> tuple[PublishedPort, ...]:
    out: list[PublishedPort] = []
    for key, binds in (bindings or {}).items():
        parsed = _port_key(key)
        if parsed is None or not binds:
            continue
        proto, cport = parsed
        for bind in binds:
            rng = _host_range(str(bind.get("HostPort", "")))
            if rng is None:
                continue
            out.append(PublishedPort(proto, cport, _ip(bind.get("HostIp")), rng[0], rng[1]))
    return tuple(sorted(out, key=lambda p: (
        p.host_start, p.host_end, p.proto.value, p.container_port,
        (p.host_ip.version, int(p.host_ip)) if p.host_ip is not None else (0, 0))))


def _endpoint(name: str, ep: Mapping[str, Any]) -> ContainerNetwork:
    ipv4 = _ip(ep.get("IPAddress"))
    ipv6 = _ip(ep.get("GlobalIPv6Address"))
    gw = _ip(ep.get("Gateway"))
    gw6 = _ip(ep.get("IPv6Gateway"))
    return ContainerNetwork(
        name=name,
        network_id=str(ep.get("NetworkID") or ""),
        ipv4=ipv4 if isinstance(ipv4, ipaddress.IPv4Address) else None,
        ipv4_prefix=int(ep.get("IPPrefixLen") or 0),
        ipv6=ipv6 if isinstance(ipv6, ipaddress.IPv6Address) else None,
        ipv6_prefix=int(ep.get("GlobalIPv6PrefixLen") or 0),
        gateway=gw if isinstance(gw, ipaddress.IPv4Address) else None,
        gateway6=gw6 if isinstance(gw6, ipaddress.IPv6Address) else None,
        mac=str(ep.get("MacAddress") or ""),
        aliases=tuple(sorted(ep.get("Aliases") or ())),
    )


def _container(obj: Any, source: str) -> Container:
    cid = str(_require(obj, "Id", "container", source))
    name = str(_require(obj, "Name", "container", source)).lstrip("/")
    state = obj.get("State") or {}
    status = str(state.get("Status") or ("running" if state.get("Running") else "unknown"))
    settings = obj.get("NetworkSettings") or {}
    host_config = obj.get("HostConfig") or {}
    config = obj.get("Config") or {}
    running = status in ("running", "paused")
    networks = tuple(sorted((_endpoint(n, ep or {}) for n, ep in
                             (settings.get("Networks") or {}).items()), key=lambda e: e.name))
    return Container(
        name=name,
        id=cid,
        state=status,
        image=str(config.get("Image") or obj.get("Image") or ""),
        network_mode=str(host_config.get("NetworkMode") or "default"),
        networks=networks,
        ports=_ports(settings.get("Ports") if running else host_config.get("PortBindings")),
        requested=_ports(host_config.get("PortBindings")),
        exposed=_exposed(config.get("ExposedPorts")),
    )


def _exposed(data: Any) -> tuple[tuple[str, int], ...]:
    out: set[tuple[str, int]] = set()
    for key in data or {}:
        port, _, proto = str(key).partition("/")
        if is_decimal(port) and (proto or "tcp") in {p.value for p in PortProto}:
            out.add((proto or "tcp", int(port)))
    return tuple(sorted(out))


def _endpoints(data: Any) -> tuple[tuple[str, IPAddress], ...]:
    """``docker network inspect``'s ``Containers``: every endpoint (containers, but also swarm's
    ``ingress-sbox`` and load balancers) with its addresses."""
    out: list[tuple[str, IPAddress]] = []
    for cid, ep in (data or {}).items():
        if not isinstance(ep, dict):
            continue
        for key in ("IPv4Address", "IPv6Address"):
            ip = _ip(str(ep.get(key) or "").split("/")[0])
            if ip is not None:
                out.append((str(ep.get("Name") or str(cid)[:12]), ip))
    return tuple(sorted(out, key=lambda e: (e[0], str(e[1]))))


def _network(obj: Any, source: str) -> Network:
    nid = str(_require(obj, "Id", "network", source))
    name = str(_require(obj, "Name", "network", source))
    driver = str(obj.get("Driver") or "")
    options = {str(k): str(v) for k, v in (obj.get("Options") or {}).items()}
    ipam = obj.get("IPAM") or {}
    subnets: list[IPNetwork] = []
    gateways: list[IPAddress] = []
    for conf in ipam.get("Config") or ():
        try:
            subnet = ipaddress.ip_network(str(conf.get("Subnet", "")), strict=False)
        except ValueError:
            continue
        subnets.append(subnet)
        gw = _ip(conf.get("Gateway"))
        if (gw is None and (ipam.get("Driver") or "default") == "default" and driver == "bridge"
                and subnet.num_addresses > 2):
            gw = subnet.network_address + 1  # Docker's default IPAM: the first host address
        if gw is not None:
            gateways.append(gw)
    bridge: str | None = None
    if driver == "bridge":
        default = "docker0" if name == "bridge" or options.get(
            "com.docker.network.bridge.default_bridge") == "true" else f"br-{nid[:12]}"
        bridge = options.get(BRIDGE_NAME) or default
    return Network(
        name=name,
        id=nid,
        driver=driver,
        bridge=bridge,
        subnets=tuple(subnets),
        gateways=tuple(gateways),
        internal=bool(obj.get("Internal")),
        icc=_opt_bool(options.get(ENABLE_ICC)) is not False,
        masquerade=_opt_bool(options.get(ENABLE_MASQUERADE)) is not False,
        enable_ipv6=bool(obj.get("EnableIPv6")),
        options=tuple(sorted(options.items())),
        endpoints=_endpoints(obj.get("Containers")),
    )
