# Sourced by scripts/make-fixtures.sh: the scenarios whose firewall is more than Docker's own
# iptables rules (native nftables tables, both iptables backends). They never touch the host's
# ruleset: the real dockerd runs the containers (so docker-containers.json / docker-networks.json
# are real), and the firewall is rebuilt in a throwaway network namespace that mirrors this
# host's addresses (eth0 192.0.2.2/24 + fd00::2/64, docker0 172.17.0.1/16, default via
# 192.0.2.1): Docker's rules as `iptables-save` prints them on the host after `docker run`,
# loaded with `iptables-nft-restore`, plus the scenario's nft file (`nft -f`) or
# iptables-legacy rules. `natlens snapshot` then runs inside that namespace
# (`ip netns exec NS natlens snapshot DIR`), so every file of the fixture comes from one
# capture; only the Docker files come from the daemon outside it (through its socket).
#
# Uses from make-fixtures.sh: $NATLENS $OUT $ROOT run ip_of readme clean_docker.
# shellcheck shell=bash

CORPUS=${NATLENS_CORPUS:-$ROOT/../shared/corpus}
FX_NS=""

ns_start() {
    # ns_start [BRIDGE CIDR]...: a namespace shaped like this host (plus extra bridges).
    FX_NS="natlens-fx-$$-$RANDOM"
    ip netns add "$FX_NS"
    echo "netns: $FX_NS" >&2
    nsx ip link set lo up
    # eth0 is a veth whose peer sits in a second namespace (no dummy module on every kernel)
    ip netns add "$FX_NS-peer"
    ip link add eth0 netns "$FX_NS" type veth peer name peer0 netns "$FX_NS-peer"
    ip netns exec "$FX_NS-peer" ip link set peer0 up
    nsx ip addr add 192.0.2.2/24 dev eth0
    nsx ip -6 addr add fd00::2/64 dev eth0 nodad
    nsx ip link set eth0 up
    nsx ip route add default via 192.0.2.1
    ns_bridge docker0 172.17.0.1/16
    while [ $# -ge 2 ]; do ns_bridge "$1" "$2"; shift 2; done
    nsx sysctl -qw net.ipv4.ip_forward=1
    if nsx test -e /proc/sys/net/bridge/bridge-nf-call-iptables; then
        nsx sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
    fi
}

ns_bridge() {
    nsx ip link add "$1" type bridge
    nsx ip addr add "$2" dev "$1"
    nsx ip link set "$1" up
}

nsx() { ip netns exec "$FX_NS" "$@"; }

ns_stop() {
    [ -z "$FX_NS" ] || ip netns del "$FX_NS" 2>/dev/null || true
    [ -z "$FX_NS" ] || ip netns del "$FX_NS-peer" 2>/dev/null || true
    FX_NS=""
}

ns_docker_rules() {
    # Docker's iptables rules as the host has them now (its own, written by dockerd), into the
    # namespace's nf_tables backend; the host is only read.
    iptables-save | nsx iptables-nft-restore
    ip6tables-save | nsx ip6tables-nft-restore
}

ns_capture() {
    local dir="$OUT/$1"
    rm -rf "$dir"
    nsx "$NATLENS" snapshot "$dir" >&2
}

scenario_firewalld_docker() {
    local src="$CORPUS/nftables/generated-here/firewalld-1.3.3/firewalld-1.3.3.ruleset.nft"
    [ -r "$src" ] || die "$src missing (NATLENS_CORPUS=.../corpus)"
    run natlens-web -p 8080:80
    local web
    web=$(ip_of natlens-web)
    ns_start
    ns_docker_rules
    nsx nft -f "$src"
    ns_capture firewalld-docker
    ns_stop
    readme firewalld-docker <<EOF
# firewalld-docker — firewalld's zones next to Docker (iptables-nft)

Docker publishes natlens-web's port 80 on 8080 (\`docker run -d --name natlens-web -p 8080:80
natlens-busybox:latest\`, $web on docker0); firewalld 1.3.3 (nftables backend) keeps its zones in
\`table inet firewalld\`: zone **public** on eth0 and on source 198.51.100.128/25 (services ssh,
dhcpv6-client, http, port 8443/tcp, masquerade, forward-port 2222 → 172.17.0.2:22, rich rules
\`rule family=ipv4 source address=192.0.2.66 drop\` and \`rule family=ipv4 source
address=203.0.113.0/24 port port=5432 protocol=tcp accept\`), zone **trusted** on docker0.

How it was made (\`scripts/make-fixtures.sh firewalld-docker\`, scenario in
\`scripts/fixtures-netns.sh\`): firewalld cannot be confined to a network namespace here, so
its ruleset is the one a real firewalld 1.3.3 wrote in a namespace with that configuration,
\`corpus/nftables/generated-here/firewalld-1.3.3/firewalld-1.3.3.ruleset.nft\`. The script ran
the container on the real dockerd, made a namespace with this host's addresses (eth0
192.0.2.2/24, docker0 172.17.0.1/16), loaded the host's \`iptables-save\` (Docker's rules) with
\`iptables-nft-restore\`, then the firewalld ruleset with \`nft -f\`, and ran \`natlens snapshot\`
inside the namespace. firewalld's chains hook at priority +10 after Docker's iptables tables.

Traces (asserted by tests/netfilter/test_nf_fixtures.py):

    natlens trace fixtures/firewalld-docker --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 8080
    # ACCEPT, path forward, $web:80 via docker0: Docker's DNAT; firewalld's filter_FORWARD
    # accepts it by \`ct status dnat accept\` (nft, inet firewalld), Docker's FORWARD too

    natlens trace fixtures/firewalld-docker --in eth0 --src 198.51.100.7 --dst $web --dport 80
    # REJECT, path forward: Docker's filter DOCKER accepts, but zone public's forward
    # (filter_FWD_public) rejects a LAN client reaching the container by address

    natlens trace fixtures/firewalld-docker --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 2222
    # DROP, path forward, $web:22: firewalld's forward-port (nat_PRE_public, dstnat + 10)
    # maps it, then Docker's FORWARD (policy DROP, no DOCKER rule for port 22) drops it

    natlens trace fixtures/firewalld-docker --in eth0 --src 203.0.113.9 --dst 192.0.2.2 --dport 5432
    # ACCEPT, path local: the rich rule in filter_IN_public_allow
    natlens trace fixtures/firewalld-docker --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 5432
    # REJECT, path local: filter_IN_public ends with \`reject with icmpx admin-prohibited\`

    natlens trace fixtures/firewalld-docker --in eth0 --src 192.0.2.66 --dst 192.0.2.2 --dport 22
    # DROP, path local: the rich rule in filter_IN_public_deny

Checked against the kernel: \`natlens verify fixtures/firewalld-docker\` mirrors the snapshot in
namespaces (nft tables with \`nft -j -f\`, both iptables backends) and reports no
disagreement (tests/test_verify.py, kernel marker).

Findings (\`natlens report fixtures/firewalld-docker\`, golden in
tests/golden/report/fixtures/firewalld-docker.json, asserted by tests/test_report_fixtures.py):
- \`bypass\` (medium), natlens-web's 8080/tcp: zone public refuses 8080 in INPUT
  (\`filter_IN_public\`'s final reject), yet from eth0 the port reaches $web:80, because
  Docker's DNAT makes it forwarded traffic, which firewalld accepts (\`ct status dnat accept\`).
  Nothing else: firewalld's own zones and rich rules are consistent.
EOF
    clean_docker
}

scenario_nftables_conf_docker() {
    local conf
    conf=$(mktemp)
    cat >"$conf" <<'EOF'
#!/usr/sbin/nft -f
# /etc/nftables.conf as a Debian admin hardens it: forward drops by default.
flush ruleset

table inet filter {
	chain input {
		type filter hook input priority filter; policy accept;
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "docker0" accept
	}
	chain output {
		type filter hook output priority filter; policy accept;
	}
}
EOF
    run natlens-web -p 8080:80
    local web
    web=$(ip_of natlens-web)
    ns_start
    # nftables.service runs at boot, before dockerd: `flush ruleset` first, then Docker's rules.
    nsx nft -f "$conf"
    ns_docker_rules
    ns_capture nftables-conf-docker
    ns_stop
    cp "$conf" "$OUT/nftables-conf-docker/nftables.conf.txt"
    rm -f "$conf"
    readme nftables-conf-docker <<EOF
# nftables-conf-docker — a Debian-style /etc/nftables.conf with forward drop, next to Docker

Docker publishes natlens-web's port 80 on 8080 (\`docker run -d --name natlens-web -p 8080:80
natlens-busybox:latest\`, $web on docker0). The host also runs nftables.service with the
\`/etc/nftables.conf\` in \`nftables.conf.txt\` (Debian's default file, hardened: \`inet filter\`
forward \`policy drop\`, accepting only replies and traffic from docker0).

How it was made (\`scripts/make-fixtures.sh nftables-conf-docker\`, scenario in
\`scripts/fixtures-netns.sh\`): the container ran on the real dockerd; a namespace with this
host's addresses (eth0 192.0.2.2/24, docker0 172.17.0.1/16) got \`nft -f nftables.conf.txt\`
(as at boot, before dockerd), then the host's \`iptables-save\` (Docker's rules) with
\`iptables-nft-restore\`; \`natlens snapshot\` ran inside the namespace.

Traces (asserted by tests/netfilter/test_nf_fixtures.py):

    natlens trace fixtures/nftables-conf-docker --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 8080
    # DROP, path forward, $web:80: Docker's DNAT and FORWARD accept, \`inet filter forward\`'s
    # policy drops (same priority as iptables' filter: either order ends in DROP)

    natlens trace fixtures/nftables-conf-docker --in docker0 --src $web --dst 198.51.100.7 --dport 443
    # ACCEPT, path forward, out eth0: \`iifname "docker0" accept\` and Docker's FORWARD accept

    natlens trace fixtures/nftables-conf-docker --local-origin --src 192.0.2.2 --dst 192.0.2.2 --dport 8080
    # ACCEPT, path output, $web:80: from the host itself nothing is forwarded

    natlens trace fixtures/nftables-conf-docker --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 22
    # ACCEPT, path local: input's policy accept

Checked against the kernel: \`natlens verify fixtures/nftables-conf-docker\` mirrors the snapshot in
namespaces (nft tables with \`nft -j -f\`, both iptables backends) and reports no
disagreement (tests/test_verify.py, kernel marker).

Findings (\`natlens report fixtures/nftables-conf-docker\`, golden in
tests/golden/report/fixtures/nftables-conf-docker.json, asserted by tests/test_report_fixtures.py):
- \`missing\` (high), natlens-web's 8080/tcp: DNATed to $web:80, then dropped by \`inet filter
  forward\` policy drop. Docker's rules are right; the port is published but unreachable.
EOF
    clean_docker
}

scenario_split_legacy_nft() {
    run natlens-web -p 8080:80
    local web
    web=$(ip_of natlens-web)
    ns_start
    ns_docker_rules
    # Another tool (an old firewall script) writes through iptables-legacy:
    nsx iptables-legacy-restore <<'EOF'
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -s 203.0.113.0/24 -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i docker0 -j ACCEPT
COMMIT
EOF
    ns_capture split-legacy-nft
    ns_stop
    readme split-legacy-nft <<EOF
# split-legacy-nft — Docker on iptables-nft, another tool on iptables-legacy

Docker publishes natlens-web's port 80 on 8080 (\`docker run -d --name natlens-web -p 8080:80
natlens-busybox:latest\`, $web on docker0) through iptables-nft. An older firewall script uses
iptables-legacy and wrote:

    *filter
    :FORWARD DROP [0:0]
    -A INPUT -s 203.0.113.0/24 -j DROP
    -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    -A FORWARD -i docker0 -j ACCEPT

\`iptables-save\` (nf_tables) never shows these rules; both sets of tables hook the kernel.

How it was made (\`scripts/make-fixtures.sh split-legacy-nft\`, scenario in
\`scripts/fixtures-netns.sh\`): the container ran on the real dockerd; a namespace with this
host's addresses got the host's \`iptables-save\` (Docker's rules) with \`iptables-nft-restore\`
and the lines above with \`iptables-legacy-restore\`; \`natlens snapshot\` ran inside it and wrote
both \`iptables-save.txt\` and \`iptables-legacy-save.txt\`.

Traces (asserted by tests/netfilter/test_nf_fixtures.py):

    natlens trace fixtures/split-legacy-nft --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 8080
    # DROP, path forward, $web:80: Docker's rules (iptables-nft) accept, the legacy FORWARD
    # policy drops (step source iptables-legacy)

    natlens trace fixtures/split-legacy-nft --in docker0 --src $web --dst 198.51.100.7 --dport 443
    # ACCEPT, path forward, out eth0: both backends accept traffic from docker0

    natlens trace fixtures/split-legacy-nft --in eth0 --src 203.0.113.9 --dst 192.0.2.2 --dport 22
    # DROP, path local: the legacy INPUT rule
    natlens trace fixtures/split-legacy-nft --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 22
    # ACCEPT, path local

Checked against the kernel: \`natlens verify fixtures/split-legacy-nft\` mirrors the snapshot in
namespaces (nft tables with \`nft -j -f\`, both iptables backends) and reports no
disagreement (tests/test_verify.py, kernel marker).

Findings (\`natlens report fixtures/split-legacy-nft\`, golden in
tests/golden/report/fixtures/split-legacy-nft.json, asserted by tests/test_report_fixtures.py):
- \`missing\` (high), natlens-web's 8080/tcp: DNATed to $web:80, then dropped by the legacy
  \`filter FORWARD policy DROP\` (the finding points at iptables-legacy-save.txt).
- \`split-backend\` (high): the legacy backend holds rules too, with an example of what they do
  (\`-A INPUT -s 203.0.113.0/24 -j DROP\`), and how to empty it.
EOF
    clean_docker
}

scenario_docker29_nftables() {
    local src="$CORPUS/nftables/docker-v29-nftables/usernet-portmap.loaded-by-nft-1.0.6.nft"
    [ -r "$src" ] || die "$src missing (NATLENS_CORPUS=.../corpus)"
    docker network create -o com.docker.network.bridge.name=bridge1 --subnet 10.99.3.0/24 \
        --gateway 10.99.3.1 natlens-bridge1 >/dev/null
    run natlens-c1 --network natlens-bridge1 -p 8080:80
    local c1
    c1=$(ip_of natlens-c1 natlens-bridge1)
    ns_start bridge1 10.99.3.1/24
    # Docker 29 (firewall-backend nftables) writes no iptables rule: only its nft table.
    sed -e 's/192\.0\.2\./10.99.3./g' "$src" | nsx nft -f -
    ns_capture docker29-nftables
    ns_stop
    readme docker29-nftables <<EOF
# docker29-nftables — Docker 29's nftables backend (\`table ip docker-bridges\`)

The layout of Docker 29.7.2 with \`"firewall-backend": "nftables"\` for a container on a
user-defined network with a published port (moby's generated doc
\`integration/network/bridge/nftablesdoc/generated/usernet-portmap.md\`):

    docker network create -o com.docker.network.bridge.name=bridge1 --subnet 10.99.3.0/24 --gateway 10.99.3.1 natlens-bridge1
    docker run -d --name natlens-c1 --network natlens-bridge1 -p 8080:80 natlens-busybox:latest

natlens-c1 is $c1 on bridge1. There is no iptables rule at all: Docker 29 keeps everything
in \`ip docker-bridges\` (verdict maps per bridge, a raw-PREROUTING "DROP DIRECT ACCESS" rule,
DNAT in nat-prerouting-and-output, masquerade per bridge).

How it was made (\`scripts/make-fixtures.sh docker29-nftables\`, scenario in
\`scripts/fixtures-netns.sh\`): this host's dockerd is 20.10 (iptables only), so the table is the
corpus's \`docker-v29-nftables/usernet-portmap.loaded-by-nft-1.0.6.nft\` (the doc's table as nft
1.0.6 loads it) with the doc's bridge1 subnet 192.0.2.0/24 renamed to 10.99.3.0/24 (sed
\`s/192\.0\.2\./10.99.3./g\`: 192.0.2.2 is this host's eth0 address). The network and container
ran on the real dockerd with the same bridge name, subnet and port, so the Docker files match
the table. A namespace with this host's addresses (eth0 192.0.2.2/24, docker0 172.17.0.1/16,
bridge1 10.99.3.1/24) got the table with \`nft -f\` and nothing else; \`natlens snapshot\` ran
inside it (its iptables-save.txt is empty).

Traces (asserted by tests/netfilter/test_nf_fixtures.py):

    natlens trace fixtures/docker29-nftables --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 8080
    # ACCEPT, path forward, $c1:80 via bridge1: nat-prerouting-and-output's dnat, then
    # filter-FORWARD's vmap jumps to filter-forward-in__bridge1, which accepts port 80

    natlens trace fixtures/docker29-nftables --in eth0 --src 198.51.100.7 --dst $c1 --dport 80
    # DROP in PREROUTING (priority raw, before routing): raw-PREROUTING "DROP DIRECT ACCESS"
    # (\`ip daddr $c1 iifname != "bridge1" drop\`)

    natlens trace fixtures/docker29-nftables --in bridge1 --src $c1 --dst 198.51.100.7 --dport 443
    # ACCEPT, path forward, out eth0: filter-forward-out__bridge1 "OUTGOING", masquerade

    natlens trace fixtures/docker29-nftables --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 8081
    # ACCEPT, path local: no dnat for another port

Checked against the kernel: \`natlens verify fixtures/docker29-nftables\` mirrors the snapshot in
namespaces (nft tables with \`nft -j -f\`, both iptables backends) and reports no
disagreement (tests/test_verify.py, kernel marker).

Findings (\`natlens report fixtures/docker29-nftables\`): none (Docker's own table is clean;
golden in tests/golden/report/fixtures/docker29-nftables.json).
EOF
    clean_docker
}
