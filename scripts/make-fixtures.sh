#!/bin/bash
# Regenerate the snapshot fixtures in fixtures/<scenario>/ from a real Docker daemon.
#
#   sudo scripts/make-fixtures.sh [SCENARIO...]      (default: all scenarios)
#
# For each scenario: start containers (fixed names natlens-*, image natlens-busybox:latest),
# create networks, restart dockerd with other flags or plant iptables rules where the scenario
# needs it, capture with `natlens snapshot fixtures/<scenario>`, write fixtures/<scenario>/README.md,
# then remove exactly what was added. At the end the daemon runs with the flags it had at the
# start, and the script checks that iptables/ip6tables rules and forwarding sysctls are as before.
# Scenarios with native nftables tables or both iptables backends (firewalld-docker,
# nftables-conf-docker, split-legacy-nft, docker29-nftables) are in scripts/fixtures-netns.sh:
# their firewall is rebuilt in a throwaway network namespace and captured there.
#
# Needs root, dockerd (docker.io), busybox-static and the package installed in .venv
# (NATLENS=/path/to/natlens overrides). The daemon is (re)started with scripts/start-dockerd.sh.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
NATLENS=${NATLENS:-$ROOT/.venv/bin/natlens}
OUT=${FIXTURES_DIR:-$ROOT/fixtures}
IMAGE=natlens-busybox:latest
# Ordered so that the daemon restarts as rarely as possible (no-userland-proxy and ipv6 last;
# icc-no-proxy and ipv6-docker-user-v4only read those two fixtures).
SCENARIOS=(default-bridge-8080 loopback-9000 udp-5353 port-range user-network no-icc
           internal-network docker-user-policy planted-faults firewalld-docker
           nftables-conf-docker split-legacy-nft docker29-nftables multi-interface-ufw
           docker28-raw-drop planted-rules no-userland-proxy ipv6 icc-no-proxy
           ipv6-docker-user-v4only)
IPV6_FLAGS=(--ipv6 --fixed-cidr-v6 fd00:dead:beef::/64 --experimental --ip6tables)
NOPROXY_FLAGS=(--userland-proxy=false)

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'make-fixtures: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
[ -x "$NATLENS" ] || die "$NATLENS not found (pip install -e . into .venv, or set NATLENS)"

# --- daemon ------------------------------------------------------------------------------------

daemon_flags() {
    # dockerd's arguments without argv[0] and --storage-driver=vfs, one per line.
    local pid
    pid=$(cat /var/run/docker.pid 2>/dev/null) || return 0
    [ -r "/proc/$pid/cmdline" ] || return 0
    tr '\0' '\n' <"/proc/$pid/cmdline" | tail -n +2 | grep -vx -- '--storage-driver=vfs' || true
}

use_daemon() {
    # Make sure dockerd runs with exactly the given extra flags (restarting it if needed).
    local want have
    want=$(printf '%s\n' "$@" | grep -v '^$' || true)
    have=$(daemon_flags)
    if docker info >/dev/null 2>&1 && [ "$want" = "$have" ]; then
        return 0
    fi
    log "restarting dockerd with flags: ${*:-(none)}"
    "$HERE/stop-dockerd.sh"
    "$HERE/start-dockerd.sh" "$@"
}

# --- state before, checked after ------------------------------------------------------------------

rules() { "$1" | { grep -v '^#' || true; } | sed -e 's/\[[0-9]*:[0-9]*\]//g'; }
SYSCTLS=(net.ipv4.ip_forward net.ipv6.conf.all.forwarding net.ipv6.conf.default.forwarding
         net.ipv4.conf.docker0.route_localnet)

"$HERE/start-dockerd.sh"
"$HERE/make-busybox-image.sh" "$IMAGE"
mapfile -t START_FLAGS < <(daemon_flags)
BASE4=$(rules iptables-save)
BASE6=$(rules ip6tables-save)
BASE6_RAW=$(ip6tables-save)
BASE_DOCKER0_V6=$(ip -6 -o addr show dev docker0 2>/dev/null || true)
declare -A BASE_SYSCTL
for s in "${SYSCTLS[@]}"; do BASE_SYSCTL[$s]=$(sysctl -n "$s"); done
EXT_IF=$(ip route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')
EXT_IF=${EXT_IF:-eth0}
HOST_IP=$(ip -4 -o addr show dev "$EXT_IF" | awk '{split($4, a, "/"); print a[1]; exit}')
HOST_IP6=$(ip -6 -o addr show dev "$EXT_IF" scope global | awk '{split($4, a, "/"); print a[1]; exit}')
HOST_IP6=${HOST_IP6:-2001:db8::2}

# --- scenario helpers -----------------------------------------------------------------------------

PLANTED=()  # "TABLE CHAIN SPEC..." of rules to delete again

plant() {
    # plant TABLE CHAIN POS SPEC...: insert one iptables rule and remember it for removal.
    local table=$1 chain=$2 pos=$3
    shift 3
    iptables -t "$table" -I "$chain" "$pos" "$@"
    PLANTED+=("$table $chain $*")
    echo "planted: iptables -t $table -I $chain $pos $*" >&2
}

unplant() {
    local entry table chain
    for entry in "${PLANTED[@]}"; do
        read -r table chain spec <<<"$entry"
        # shellcheck disable=SC2086  # the spec is word-split on purpose
        iptables -t "$table" -D "$chain" $spec || echo "make-fixtures: could not remove: $entry" >&2
    done
    PLANTED=()
}

clean_docker() {
    local ids
    ids=$(docker ps -aq --filter name='^/natlens-' 2>/dev/null || true)
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
    ids=$(docker network ls -q --filter name='^natlens-' 2>/dev/null || true)
    [ -z "$ids" ] || docker network rm $ids >/dev/null
}

cleanup() {
    [ "${#PLANTED[@]}" -eq 0 ] || unplant
    ns_stop
    docker info >/dev/null 2>&1 && clean_docker
}

reset_hairpin() {
    # After no-userland-proxy: dockerd restarted with the proxy keeps the hairpin rule it added
    # (nat POSTROUTING -o docker0 --src-type LOCAL -j MASQUERADE). Remove it unless it was there.
    local spec=(-o docker0 -m addrtype --src-type LOCAL -j MASQUERADE)
    if ! printf '%s\n' "$BASE4" | grep -qxF -- "-A POSTROUTING ${spec[*]}"; then
        while iptables -t nat -C POSTROUTING "${spec[@]}" 2>/dev/null; do
            iptables -t nat -D POSTROUTING "${spec[@]}"
            echo "make-fixtures: removed dockerd's leftover hairpin MASQUERADE rule" >&2
        done
    fi
}

reset_ip6() {
    # After the ipv6 scenario: a daemon without --ip6tables leaves Docker's ip6tables chains,
    # docker0's IPv6 address and IPv6 forwarding behind. Put them back as before this script.
    local table chain addr
    if [ "$(rules ip6tables-save)" != "$BASE6" ]; then
        for table in $(ip6tables-save | sed -n 's/^\*//p'); do
            ip6tables -t "$table" -F
            ip6tables -t "$table" -X
            for chain in $(ip6tables-save -t "$table" | sed -n 's/^:\([A-Z]*\) [A-Z]\+ .*/\1/p'); do
                ip6tables -t "$table" -P "$chain" ACCEPT
            done
            if ! printf '%s\n' "$BASE6" | grep -qx "\*$table" && command -v nft >/dev/null \
                && ip6tables --version | grep -q nf_tables; then
                nft delete table ip6 "$table" 2>/dev/null || true
            fi
        done
        [ -z "$BASE6" ] || printf '%s\n' "$BASE6_RAW" | ip6tables-restore
        echo "make-fixtures: ip6tables rules reset to what they were before" >&2
    fi
    for addr in fd00:dead:beef::1/64 fe80::1/64; do
        if ! printf '%s\n' "$BASE_DOCKER0_V6" | grep -q " ${addr%/*}/"; then
            ip -6 addr del "$addr" dev docker0 2>/dev/null || true
        fi
    done
    for s in "${SYSCTLS[@]}"; do
        [ "$(sysctl -n "$s")" = "${BASE_SYSCTL[$s]}" ] || sysctl -qw "$s=${BASE_SYSCTL[$s]}"
    done
}

finish() {
    local rc=$?
    cleanup
    use_daemon "${START_FLAGS[@]}" || rc=1
    reset_hairpin
    reset_ip6
    if [ "$(rules ip6tables-save)" != "$BASE6" ]; then
        echo "make-fixtures: WARNING: ip6tables rules differ from before:" >&2
        diff <(printf '%s\n' "$BASE6") <(rules ip6tables-save) >&2 || true
        rc=1
    fi
    if [ "$(rules iptables-save)" != "$BASE4" ]; then
        echo "make-fixtures: WARNING: iptables rules differ from before:" >&2
        diff <(printf '%s\n' "$BASE4") <(rules iptables-save) >&2 || true
        rc=1
    fi
    exit $rc
}
trap finish EXIT

run() {
    # run NAME DOCKER-RUN-ARGS... [-- COMMAND]: start a container of $IMAGE called NAME.
    local name=$1
    shift
    local args=() cmd=()
    while [ $# -gt 0 ]; do
        if [ "$1" = -- ]; then shift; cmd=("$@"); break; fi
        args+=("$1"); shift
    done
    docker run -d --name "$name" "${args[@]}" "$IMAGE" "${cmd[@]}" >/dev/null
    echo "started: docker run -d --name $name ${args[*]} $IMAGE ${cmd[*]}" >&2
}

ip_of() { docker inspect -f "{{(index .NetworkSettings.Networks \"${2:-bridge}\").IPAddress}}" "$1"; }
ip6_of() { docker inspect -f "{{(index .NetworkSettings.Networks \"${2:-bridge}\").GlobalIPv6Address}}" "$1"; }
bridge_of() { echo "br-$(docker network inspect -f '{{.Id}}' "$1" | cut -c1-12)"; }

capture() {
    local dir="$OUT/$1"
    rm -rf "$dir"
    "$NATLENS" snapshot "$dir" >&2
}

readme() {
    # readme SCENARIO <<TEXT: write fixtures/SCENARIO/README.md (stdin), with a common footer.
    {
        cat
        printf '\nCaptured on %s (dockerd %s, iptables %s) by `scripts/make-fixtures.sh %s`;\n' \
            "$(uname -r)" "$(docker version -f '{{.Server.Version}}')" \
            "$(iptables --version | awk '{print $2, $3}')" "$1"
        printf 'the external interface was %s with address %s.\n' "$EXT_IF" "$HOST_IP"
    } >"$OUT/$1/README.md"
}

# --- scenarios ----------------------------------------------------------------------------------

scenario_default_bridge_8080() {
    use_daemon
    run natlens-web -p 8080:80
    local web
    web=$(ip_of natlens-web)
    capture default-bridge-8080
    readme default-bridge-8080 <<EOF
# default-bridge-8080 — the bundled sample

One busybox httpd container on the default bridge, published on every host address:

    docker run -d --name natlens-web -p 8080:80 natlens-busybox:latest   # httpd -f -p 80

Published ports: \`0.0.0.0:8080->80/tcp\` and \`[::]:8080->80/tcp\` (natlens-web, $web on docker0).
The IPv6 binding is served by docker-proxy only: the daemon ran without \`--ip6tables\`.

What natlens should say:
- A packet from outside (\`--in $EXT_IF --src 198.51.100.7 --dst $HOST_IP --proto tcp --dport 8080\`)
  is DNATed in \`nat DOCKER\` to \`$web:80\`, routed to docker0 (path \`forward\`), accepted by
  \`filter DOCKER\`'s \`-d $web/32 ! -i docker0 -o docker0 -p tcp --dport 80 -j ACCEPT\`;
  MASQUERADE applies only to traffic leaving 172.17.0.0/16 for another interface.
- From the host itself to $HOST_IP:8080 (\`--local-origin\`): DNAT in \`nat OUTPUT\` → DOCKER.
  To 127.0.0.1:8080 the nat OUTPUT jump excludes 127.0.0.0/8: docker-proxy answers (userland
  proxy on, recorded in meta.json).
- Findings: none (no \`stale\`, \`missing\`, \`shadowed\` …). The daemon's own rules are clean.
EOF
    clean_docker
}

scenario_loopback_9000() {
    use_daemon
    run natlens-web -p 127.0.0.1:9000:80
    local web
    web=$(ip_of natlens-web)
    capture loopback-9000
    readme loopback-9000 <<EOF
# loopback-9000

A port published on loopback only:

    docker run -d --name natlens-web -p 127.0.0.1:9000:80 natlens-busybox:latest

Published ports: \`127.0.0.1:9000->80/tcp\` (natlens-web, $web).

What natlens should say:
- Docker's DNAT is \`-A DOCKER -d 127.0.0.1/32 ! -i docker0 -p tcp --dport 9000 -j DNAT
  --to-destination $web:80\`: a packet from outside to $HOST_IP:9000 does not match it (its
  destination is not 127.0.0.1) and goes to INPUT on the host, where nothing listens
  (path \`local\`, no DNAT).
- From the host, 127.0.0.1:9000 is excluded by \`nat OUTPUT\`'s \`! -d 127.0.0.0/8\`; docker-proxy
  listening on 127.0.0.1:9000 serves it.
- The container port itself (\`$web:80\`) is reachable from a neighbour on the same L2 segment
  that routes to 172.17.0.0/16 via this host: FORWARD has no rule refusing traffic to docker0
  for port 80 besides the DOCKER chain, whose only ACCEPT is for $web port 80 from
  \`! -i docker0\` — so an \`exposed\` finding (published on loopback only, reachable from outside
  by address) is expected for a packet \`--in $EXT_IF --dst $web --dport 80\`.
- No \`stale\`, \`missing\` or \`shadowed\` findings.
EOF
    clean_docker
}

scenario_udp_5353() {
    use_daemon
    run natlens-dns -p 5353:53/udp
    local dns
    dns=$(ip_of natlens-dns)
    capture udp-5353
    readme udp-5353 <<EOF
# udp-5353

A UDP port (busybox has no UDP server; the container runs httpd, only the rules matter):

    docker run -d --name natlens-dns -p 5353:53/udp natlens-busybox:latest

Published ports: \`0.0.0.0:5353->53/udp\`, \`[::]:5353->53/udp\` (natlens-dns, $dns).

What natlens should say:
- \`--in $EXT_IF --src 198.51.100.7 --dst $HOST_IP --proto udp --dport 5353\` → DNAT to $dns:53,
  path \`forward\`, ACCEPT by \`filter DOCKER\` (\`-p udp -m udp --dport 53\`).
- The same with \`--proto tcp\` is not translated (path \`local\`): only UDP is published.
- No findings.
EOF
    clean_docker
}

scenario_port_range() {
    use_daemon
    run natlens-web -p 7000-7002:7000-7002 -- httpd -f -p 7000 -h /www
    local web
    web=$(ip_of natlens-web)
    capture port-range
    readme port-range <<EOF
# port-range

A range of published ports, one rule per port (httpd serves 7000 only):

    docker run -d --name natlens-web -p 7000-7002:7000-7002 natlens-busybox:latest httpd -f -p 7000 -h /www

Published ports: \`7000->7000/tcp\`, \`7001->7001/tcp\`, \`7002->7002/tcp\` on 0.0.0.0 and ::
(natlens-web, $web). \`docker inspect\` lists them as three keys \`7000/tcp\`, \`7001/tcp\`,
\`7002/tcp\`; \`HostConfig.PortBindings\` likewise.

What natlens should say:
- \`--dport 7001\` from outside → DNAT to $web:7001, forward, ACCEPT; 7003 is not translated.
- Three DNAT rules in \`nat DOCKER\`, three ACCEPT rules in \`filter DOCKER\`, three MASQUERADE
  hairpin rules in \`nat POSTROUTING\` (\`-s $web/32 -d $web/32 --dport 700x\`).
- No findings.
EOF
    clean_docker
}

scenario_user_network() {
    use_daemon
    docker network create --subnet 10.99.0.0/24 natlens-net >/dev/null
    run natlens-web --network natlens-net -p 8081:80
    local web br
    web=$(ip_of natlens-web natlens-net)
    br=$(bridge_of natlens-net)
    capture user-network
    readme user-network <<EOF
# user-network

A user-defined bridge network and a container published from it:

    docker network create --subnet 10.99.0.0/24 natlens-net
    docker run -d --name natlens-web --network natlens-net -p 8081:80 natlens-busybox:latest

Network natlens-net: bridge \`$br\` (br-<id[:12]>), subnet 10.99.0.0/24, gateway 10.99.0.1,
ICC on. Published ports: \`8081->80/tcp\` on 0.0.0.0 and :: (natlens-web, $web).

What natlens should say:
- \`--in $EXT_IF --dst $HOST_IP --proto tcp --dport 8081\` → DNAT to $web:80, out interface
  \`$br\`, ACCEPT in \`filter DOCKER\` (\`! -i $br -o $br\`).
- Isolation: DOCKER-ISOLATION-STAGE-1/2 drop traffic from docker0 to $br and back (a packet
  \`--in docker0 --src 172.17.0.2 --dst $web\` is DROPped in DOCKER-ISOLATION-STAGE-2).
- No findings.
EOF
    clean_docker
}

scenario_no_userland_proxy() {
    use_daemon "${NOPROXY_FLAGS[@]}"
    run natlens-web -p 8080:80
    local web
    web=$(ip_of natlens-web)
    capture no-userland-proxy
    readme no-userland-proxy <<EOF
# no-userland-proxy

The daemon runs without docker-proxy (hairpin NAT instead):

    dockerd --storage-driver=vfs --userland-proxy=false
    docker run -d --name natlens-web -p 8080:80 natlens-busybox:latest

meta.json says \`"userland_proxy": false\`. Published ports: \`8080->80/tcp\` (natlens-web, $web).

What natlens should say:
- The nat OUTPUT jump to DOCKER has no \`! -d 127.0.0.0/8\` exclusion
  (\`-A OUTPUT -m addrtype --dst-type LOCAL -j DOCKER\`), so from the host 127.0.0.1:8080 is
  DNATed by the kernel to $web:80 (the daemon sets route_localnet on docker0), and
  \`nat POSTROUTING\` has \`-o docker0 -m addrtype --src-type LOCAL -j MASQUERADE\`.
- \`nat DOCKER\` has no \`-i docker0 -j RETURN\`: a container reaching $HOST_IP:8080 (hairpin) is
  DNATed back to $web:80 and masqueraded by \`-s $web/32 -d $web/32 --dport 80 -j MASQUERADE\`.
- From outside: as in default-bridge-8080. No findings.
EOF
    clean_docker
    use_daemon "${START_FLAGS[@]}"
    reset_hairpin
}

scenario_no_icc() {
    use_daemon
    docker network create --subnet 10.99.1.0/24 -o com.docker.network.bridge.enable_icc=false \
        natlens-noicc >/dev/null
    run natlens-web --network natlens-noicc -p 8080:80
    run natlens-client --network natlens-noicc -- sleep 86400
    local web client br
    web=$(ip_of natlens-web natlens-noicc)
    client=$(ip_of natlens-client natlens-noicc)
    br=$(bridge_of natlens-noicc)
    capture no-icc
    readme no-icc <<EOF
# no-icc

A network whose containers may not talk to each other:

    docker network create --subnet 10.99.1.0/24 -o com.docker.network.bridge.enable_icc=false natlens-noicc
    docker run -d --name natlens-web --network natlens-noicc -p 8080:80 natlens-busybox:latest
    docker run -d --name natlens-client --network natlens-noicc natlens-busybox:latest sleep 86400

Network natlens-noicc: bridge \`$br\`, ICC off. natlens-web $web (publishes \`8080->80/tcp\`),
natlens-client $client (publishes nothing).

What natlens should say:
- FORWARD has \`-A FORWARD -i $br -o $br -j DROP\` instead of ACCEPT, and Docker turned on
  br_netfilter (meta.json \`sysctl\`: \`net.bridge.bridge-nf-call-iptables\` = 1) so that bridged
  traffic walks FORWARD: \`--in $br --src $client --dst $web --proto tcp --dport 80\` goes
  FORWARD → DOCKER (its ACCEPT is only for \`! -i $br\`, so no match) → \`-i $br -o $br -j DROP\`.
- From outside, \`--dport 8080\` → DNAT to $web:80, ACCEPT (\`! -i $br -o $br\`).
- The client reaching the web through the host's published port (\`--in $br --src $client
  --dst $HOST_IP --dport 8080\`) is not translated (\`nat DOCKER\` starts with
  \`-i $br -j RETURN\`): it is delivered locally (path \`local\`) to docker-proxy on :8080, which
  opens its own connection to $web:80 from the host — the userland proxy sidesteps ICC off.
- No findings (this is Docker's intended behaviour).
EOF
    clean_docker
}

scenario_internal_network() {
    use_daemon
    docker network create --internal --subnet 10.99.2.0/24 natlens-internal >/dev/null
    run natlens-db --network natlens-internal -p 8083:80
    local db br
    db=$(ip_of natlens-db natlens-internal)
    br=$(bridge_of natlens-internal)
    capture internal-network
    readme internal-network <<EOF
# internal-network

An internal network (no route out, no published ports):

    docker network create --internal --subnet 10.99.2.0/24 natlens-internal
    docker run -d --name natlens-db --network natlens-internal -p 8083:80 natlens-busybox:latest

Network natlens-internal: bridge \`$br\`, \`"Internal": true\`. natlens-db $db.
\`HostConfig.PortBindings\` asks for 8083->80/tcp but Docker binds nothing on an internal
network: \`NetworkSettings.Ports\` is \`{}\` and there is no DNAT rule and no docker-proxy.
(Inventory: \`ports == ()\`, \`requested == (8083->80/tcp,)\`.)

What natlens should say:
- DOCKER-ISOLATION-STAGE-1 has \`! -s 10.99.2.0/24 -o $br -j DROP\` and
  \`! -d 10.99.2.0/24 -i $br -j DROP\`: \`--in $EXT_IF --dst $db --dport 80\` is DROPped, and so
  is \`--in $br --src $db --dst 198.51.100.7\` (no way out, no MASQUERADE rule for 10.99.2.0/24).
- \`--dport 8083\` to $HOST_IP is not translated (path \`local\`).
- No \`missing\` finding should be raised for 8083 (Docker never publishes on internal
  networks); at most an informational note that the request was ignored.
EOF
    clean_docker
}

scenario_ipv6() {
    use_daemon "${IPV6_FLAGS[@]}"
    run natlens-web -p 8080:80
    local web web6
    web=$(ip_of natlens-web)
    web6=$(ip6_of natlens-web)
    capture ipv6
    readme ipv6 <<EOF
# ipv6

The daemon with IPv6 and ip6tables (experimental in dockerd 20.10):

    dockerd --storage-driver=vfs --ipv6 --fixed-cidr-v6 fd00:dead:beef::/64 --experimental --ip6tables
    docker run -d --name natlens-web -p 8080:80 natlens-busybox:latest

natlens-web: $web and $web6 on docker0 (gateway fd00:dead:beef::1). Published ports:
\`0.0.0.0:8080->80/tcp\` and \`[::]:8080->80/tcp\`; ip6tables-save.txt has Docker's chains and
\`-A DOCKER -d ... --dport 8080 -j DNAT --to-destination [$web6]:80\`.

What natlens should say:
- \`--in $EXT_IF --src 2001:db8::7 --dst $HOST_IP6 --proto tcp --dport 8080\` walks the
  ip6tables rules: DNAT to \`[$web6]:80\`, path \`forward\`, out docker0, ACCEPT.
- The IPv4 side is as in default-bridge-8080.
- meta.json: \`"docker_ip6tables": true\`. No findings.
EOF
    clean_docker
    use_daemon "${START_FLAGS[@]}"
    reset_ip6
}

scenario_docker_user_policy() {
    use_daemon
    run natlens-web -p 8080:80
    plant filter DOCKER-USER 1 -i "$EXT_IF" -s 203.0.113.0/24 -j DROP
    local web
    web=$(ip_of natlens-web)
    capture docker-user-policy
    unplant
    readme docker-user-policy <<EOF
# docker-user-policy

An administrator's policy in DOCKER-USER (the supported place for it):

    docker run -d --name natlens-web -p 8080:80 natlens-busybox:latest
    iptables -I DOCKER-USER 1 -i $EXT_IF -s 203.0.113.0/24 -j DROP     # removed after capture

Published ports: \`8080->80/tcp\` (natlens-web, $web).

What natlens should say:
- \`--in $EXT_IF --src 203.0.113.9 --dst $HOST_IP --proto tcp --dport 8080\` → DNAT to
  $web:80 in PREROUTING, then DROP in \`filter DOCKER-USER\` rule 1 (FORWARD → DOCKER-USER).
- \`--src 198.51.100.7\` (not in 203.0.113.0/24): RETURN from DOCKER-USER, ACCEPT by DOCKER.
- No findings: the rule matches on source and interface, which DNAT does not change.
EOF
    clean_docker
}

scenario_planted_faults() {
    use_daemon
    run natlens-web -p 8080:80
    run natlens-api -p 8081:80
    run natlens-app -p 8082:80
    local web api app
    web=$(ip_of natlens-web)
    api=$(ip_of natlens-api)
    app=$(ip_of natlens-app)
    # 1. stale: DNAT to an address no container holds (a leftover of a removed container)
    plant nat DOCKER 1 ! -i docker0 -p tcp -m tcp --dport 8090 -j DNAT --to-destination 172.17.0.99:80
    # 2. shadowed: a REDIRECT ahead of Docker's jump catches natlens-api's published port
    plant nat PREROUTING 1 -i "$EXT_IF" -p tcp -m tcp --dport 8081 -j REDIRECT --to-ports 3128
    # 3. duplicate: a copy of Docker's DNAT for 8082, ahead of Docker's own
    plant nat PREROUTING 1 ! -i docker0 -p tcp -m tcp --dport 8082 -j DNAT --to-destination "$app:80"
    # 4. ineffective: DOCKER-USER filters on the host port, which FORWARD sees only after DNAT
    plant filter DOCKER-USER 1 -p tcp -m tcp --dport 8080 -j DROP
    capture planted-faults
    unplant
    readme planted-faults <<EOF
# planted-faults

Three containers and four rules planted by hand (removed again after the capture):

    docker run -d --name natlens-web -p 8080:80 natlens-busybox:latest    # $web
    docker run -d --name natlens-api -p 8081:80 natlens-busybox:latest    # $api
    docker run -d --name natlens-app -p 8082:80 natlens-busybox:latest    # $app
    iptables -t nat -I DOCKER 1 ! -i docker0 -p tcp -m tcp --dport 8090 -j DNAT --to-destination 172.17.0.99:80
    iptables -t nat -I PREROUTING 1 -i $EXT_IF -p tcp -m tcp --dport 8081 -j REDIRECT --to-ports 3128
    iptables -t nat -I PREROUTING 1 ! -i docker0 -p tcp -m tcp --dport 8082 -j DNAT --to-destination $app:80
    iptables -I DOCKER-USER 1 -p tcp -m tcp --dport 8080 -j DROP

Resulting nat PREROUTING order: 1 the duplicate DNAT (8082), 2 the REDIRECT (8081), 3 Docker's
\`-m addrtype --dst-type LOCAL -j DOCKER\`.

What natlens should say (expected findings):
- \`stale\` (high): \`nat DOCKER\` rule 1, DNAT tcp/8090 to 172.17.0.99:80 — no container holds
  172.17.0.99. A packet \`--in $EXT_IF --dst $HOST_IP --dport 8090\` is forwarded to docker0 and
  then dropped by FORWARD's policy (no DOCKER ACCEPT for 172.17.0.99).
- \`shadowed\` (high): natlens-api's 8081/tcp — from $EXT_IF, \`nat PREROUTING\` rule 2 (REDIRECT to
  3128) catches it before Docker's DNAT; the packet goes to the host's port 3128 (path \`local\`).
  From other interfaces (e.g. a container via docker0) 8081 still reaches natlens-api.
- \`duplicate\` (low/medium): \`nat PREROUTING\` rule 1 repeats Docker's DNAT for 8082 to $app:80
  (same destination, so traffic still reaches natlens-app; Docker's own rule never sees the first
  packets: it is covered). The copy lacks the \`--dst-type LOCAL\` condition of Docker's jump, so
  it also catches traffic routed through the host to any address's port 8082 (\`--in $EXT_IF
  --dst 203.0.113.5 --dport 8082\` is DNATed to $app:80 too).
- \`ineffective\` (medium): \`filter DOCKER-USER\` rule 1 \`--dport 8080 -j DROP\` — FORWARD sees the
  packet after DNAT with dport 80, so port 8080 is never dropped: \`--dport 8080\` from outside is
  ACCEPTed to $web:80. What it does drop instead is forwarded traffic whose real destination
  port is 8080, e.g. a container connecting out to some server's port 8080
  (\`--in docker0 --src $web --dst 198.51.100.7 --dport 8080\` → DROP at DOCKER-USER rule 1).
- No \`missing\` finding: every published port has its DNAT and ACCEPT.
EOF
    clean_docker
}

# The scenarios with native nftables tables or both iptables backends (built in a namespace).
# shellcheck source=scripts/fixtures-netns.sh
. "$HERE/fixtures-netns.sh"
# The scenarios of the exposure checks (a second outside interface, ufw, Docker 28's raw drop).
# shellcheck source=scripts/fixtures-exposure.sh
. "$HERE/fixtures-exposure.sh"

# --- main ---------------------------------------------------------------------------------------

mkdir -p "$OUT"
clean_docker
if [ $# -eq 0 ]; then set -- "${SCENARIOS[@]}"; fi
for name in "$@"; do
    fn="scenario_${name//-/_}"
    declare -F "$fn" >/dev/null || die "unknown scenario $name (known: ${SCENARIOS[*]})"
    log "$name"
    "$fn"
done
log "done: ${*}"
