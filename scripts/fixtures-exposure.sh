# Sourced by scripts/make-fixtures.sh after fixtures-netns.sh: the scenarios of issue 9's checks
# (exposure map, bypass, ineffective, hairpin-blocked). Like fixtures-netns.sh they never touch
# the host's ruleset: the firewall is rebuilt in a throwaway namespace shaped like this host,
# plus a second outside interface wg0 (10.8.0.1/24, a VPN), and `natlens snapshot` runs inside.
#
# multi-interface-ufw and docker28-raw-drop run their containers on the real dockerd and load
# the host's Docker rules. ipv6-docker-user-v4only and icc-no-proxy need daemon flags this host's
# shared dockerd does not have (and must not be restarted for): their Docker rules and Docker
# files are those of the fixtures ipv6 and no-userland-proxy, which make-fixtures.sh captured
# from dockerd started with those flags; the namespace loads them, the scenario's change is
# applied with the real tools, and the snapshot is taken in the namespace.
#
# Uses from make-fixtures.sh / fixtures-netns.sh: $NATLENS $OUT $ROOT run ip_of readme
# clean_docker ns_start ns_stop nsx ns_docker_rules ns_capture.
# shellcheck shell=bash

ns_wg0() {
    # A second outside interface: wg0 (a veth; the peer sits in the -peer namespace).
    ip link add wg0 netns "$FX_NS" type veth peer name peer1 netns "$FX_NS-peer"
    ip netns exec "$FX_NS-peer" ip link set peer1 up
    nsx ip addr add 10.8.0.1/24 dev wg0
    nsx ip link set wg0 up
}

ns_ufw() {
    # ns_ufw ARGS...: run the real ufw inside the namespace. ufw keeps its state in /etc/ufw and
    # /etc/default/ufw: a private mount namespace puts copies over them, so the host's ufw
    # configuration is never written; IPT_SYSCTL points to an empty file (no sysctl changes).
    local dir="$UFW_DIR"
    if [ -z "$dir" ]; then
        dir=$(mktemp -d)
        cp -a /etc/ufw "$dir/etc-ufw"
        cp /etc/default/ufw "$dir/default-ufw"
        : >"$dir/sysctl.conf"
        sed -i -e "s|^IPT_SYSCTL=.*|IPT_SYSCTL=$dir/sysctl.conf|" "$dir/default-ufw"
        UFW_DIR=$dir
    fi
    nsx unshare -m --propagation private sh -c '
        mount --bind "$1/etc-ufw" /etc/ufw && mount --bind "$1/default-ufw" /etc/default/ufw &&
        shift && exec ufw "$@"' ufw "$dir" "$@" >&2
}
UFW_DIR=""

ns_fixture_rules() {
    # ns_fixture_rules NAME: load fixtures/NAME's iptables and ip6tables dumps (nf_tables).
    nsx iptables-nft-restore <"$OUT/$1/iptables-save.txt"
    nsx ip6tables-nft-restore <"$OUT/$1/ip6tables-save.txt"
}

ns_fixture_docker() {
    # ns_fixture_docker FROM TO: fixtures/FROM's Docker files into fixtures/TO, and the daemon
    # settings of FROM's meta.json (the namespace's capture asked this host's daemon).
    cp "$OUT/$1/docker-containers.json" "$OUT/$1/docker-networks.json" "$OUT/$2/"
    python3 - "$OUT/$1/meta.json" "$OUT/$2/meta.json" <<'EOF'
import json, sys
src, dst = (json.load(open(p)) for p in sys.argv[1:3])
for key in ("docker_version", "docker_api_version", "userland_proxy", "docker_iptables",
            "docker_ip6tables"):
    if key in src:
        dst[key] = src[key]
json.dump(dst, open(sys.argv[2], "w"), indent=4)
open(sys.argv[2], "a").write("\n")
EOF
}

scenario_multi_interface_ufw() {
    run natlens-web -p 8080:80
    run natlens-api -p 8443:80
    local web api
    web=$(ip_of natlens-web)
    api=$(ip_of natlens-api)
    ns_start
    ns_wg0
    ns_docker_rules
    # ufw guards the LAN interface only: incoming allowed by default (wg0 is trusted), eth0
    # gets ssh and 8443, and everything else on eth0 is denied.
    ns_ufw --force enable
    ns_ufw default allow incoming
    ns_ufw allow in on eth0 to any port 22 proto tcp
    ns_ufw allow in on eth0 to any port 8443 proto tcp
    ns_ufw deny in on eth0
    ns_capture multi-interface-ufw
    ns_stop
    rm -rf "$UFW_DIR"
    UFW_DIR=""
    readme multi-interface-ufw <<EOF
# multi-interface-ufw — ufw on the LAN interface only, a VPN interface next to it

Two published ports on the default bridge:

    docker run -d --name natlens-web -p 8080:80 natlens-busybox:latest     # $web
    docker run -d --name natlens-api -p 8443:80 natlens-busybox:latest     # $api

The host has two outside interfaces: eth0 (LAN, 192.0.2.2/24, default route) and wg0 (VPN,
10.8.0.1/24). ufw 0.36.2 guards eth0 only:

    ufw --force enable
    ufw default allow incoming
    ufw allow in on eth0 to any port 22 proto tcp
    ufw allow in on eth0 to any port 8443 proto tcp
    ufw deny in on eth0

How it was made (\`scripts/make-fixtures.sh multi-interface-ufw\`, scenario in
\`scripts/fixtures-exposure.sh\`): the containers ran on the real dockerd; a namespace with this
host's addresses plus wg0 got the host's \`iptables-save\` (Docker's rules) with
\`iptables-nft-restore\`, then the real ufw ran the commands above inside the namespace (in a
private mount namespace, over copies of /etc/ufw and /etc/default/ufw); \`natlens snapshot\` ran
inside the namespace.

Traces (asserted by tests/netfilter/test_nf_fixtures.py):

    natlens trace fixtures/multi-interface-ufw --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 8080
    # ACCEPT, path forward, 172.17.0.2:80 via docker0: Docker's DNAT; INPUT (ufw) never sees it
    natlens trace fixtures/multi-interface-ufw --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 9999
    # DROP, path local: ufw-user-input's deny on eth0
    natlens trace fixtures/multi-interface-ufw --in wg0 --src 10.8.0.7 --dst 10.8.0.1 --dport 9999
    # ACCEPT, path local: ufw's default allow incoming on wg0

What natlens should say (\`natlens report fixtures/multi-interface-ufw\`, golden in
tests/golden/report/fixtures/multi-interface-ufw.json):
- \`bypass\` (medium), natlens-web's 8080/tcp from eth0: ufw's \`deny in on eth0\` would refuse
  the host port, but Docker's DNAT forwards it to $web:80 before INPUT. From wg0 ufw accepts
  anyway: no finding there.
- \`ineffective\` (low), ufw's \`allow in on eth0 to any port 8443\` (\`filter ufw-user-input\`):
  the published port never reaches INPUT; deleting it would not close 8443 either.
- No \`missing\`: both ports are reachable from every interface.
EOF
    clean_docker
}

scenario_docker28_raw_drop() {
    run natlens-web -p 8080:80
    local web
    web=$(ip_of natlens-web)
    ns_start
    ns_wg0
    ns_docker_rules
    # Docker 28+ drops packets routed to a container's address from other interfaces in raw
    # PREROUTING (moby libnetwork setupNonInternalNetworkRules, "DROP DIRECT ACCESS"); the
    # administrator lets the VPN reach the container directly in DOCKER-USER.
    nsx iptables -t raw -A PREROUTING -d "$web/32" ! -i docker0 -j DROP
    nsx iptables -I DOCKER-USER 1 -i wg0 -s 10.8.0.0/24 -d "$web/32" -p tcp -m tcp --dport 80 \
        -j ACCEPT
    ns_capture docker28-raw-drop
    ns_stop
    readme docker28-raw-drop <<EOF
# docker28-raw-drop — Docker 28's direct-access drop and a DOCKER-USER allow behind it

    docker run -d --name natlens-web -p 8080:80 natlens-busybox:latest     # $web
    iptables -t raw -A PREROUTING -d $web/32 ! -i docker0 -j DROP          # as Docker 28 writes it
    iptables -I DOCKER-USER 1 -i wg0 -s 10.8.0.0/24 -d $web/32 -p tcp -m tcp --dport 80 -j ACCEPT

The host has eth0 (192.0.2.2/24) and wg0 (a VPN, 10.8.0.1/24). The administrator wants VPN
clients to reach the container's port 80 by its address; Docker 28+ drops every packet routed
to a container's address from another interface in raw PREROUTING, before DOCKER-USER.

How it was made (\`scripts/make-fixtures.sh docker28-raw-drop\`, scenario in
\`scripts/fixtures-exposure.sh\`): this host's dockerd is 20.10; the container ran on it, a
namespace with this host's addresses plus wg0 got its \`iptables-save\` with
\`iptables-nft-restore\`, then the two rules above (the raw one is Docker 28's rule for this
container); \`natlens snapshot\` ran inside the namespace.

Traces (asserted by tests/netfilter/test_nf_fixtures.py):

    natlens trace fixtures/docker28-raw-drop --in wg0 --src 10.8.0.7 --dst 172.17.0.2 --dport 80
    # DROP in raw PREROUTING #1: the DOCKER-USER allow is never reached
    natlens trace fixtures/docker28-raw-drop --in eth0 --src 198.51.100.7 --dst 172.17.0.2 --dport 80
    # DROP in raw PREROUTING #1
    natlens trace fixtures/docker28-raw-drop --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 8080
    # ACCEPT, path forward, 172.17.0.2:80: the published port (raw sees 192.0.2.2, not the container)

What natlens should say (golden in tests/golden/report/fixtures/docker28-raw-drop.json):
- \`ineffective\` (medium), \`filter DOCKER-USER #1\`: the allow never sees a packet: from wg0
  to $web:80 is dropped first by \`raw PREROUTING #1\`.
- No \`exposed\`: the raw drop keeps the container's address closed from eth0 and wg0.
EOF
    clean_docker
}

scenario_ipv6_docker_user_v4only() {
    [ -r "$OUT/ipv6/iptables-save.txt" ] || die "fixtures/ipv6 is needed first"
    ns_start
    nsx ip -6 addr add fd00:dead:beef::1/64 dev docker0 nodad
    nsx ip -6 route add default via fd00::1 dev eth0   # the IPv6 host routes off the LAN too
    nsx sysctl -qw net.ipv6.conf.all.forwarding=1
    ns_fixture_rules ipv6
    # The administrator blocks the published port from the LAN, for IPv4 only.
    nsx iptables -I DOCKER-USER 1 -i eth0 -p tcp -m conntrack --ctorigdstport 8080 \
        --ctdir ORIGINAL -j DROP
    ns_capture ipv6-docker-user-v4only
    ns_stop
    ns_fixture_docker ipv6 ipv6-docker-user-v4only
    readme ipv6-docker-user-v4only <<EOF
# ipv6-docker-user-v4only — a DOCKER-USER block for IPv4 only, the port published on IPv6 too

The daemon of fixtures/ipv6 (\`dockerd --ipv6 --fixed-cidr-v6 fd00:dead:beef::/64 --experimental
--ip6tables\`, natlens-web \`-p 8080:80\`, 172.17.0.2 and fd00:dead:beef::242:ac11:2), and the
administrator's block of the published port from the LAN, written with iptables only:

    iptables -I DOCKER-USER 1 -i eth0 -p tcp -m conntrack --ctorigdstport 8080 --ctdir ORIGINAL -j DROP

How it was made (\`scripts/make-fixtures.sh ipv6-docker-user-v4only\`, scenario in
\`scripts/fixtures-exposure.sh\`): the shared dockerd of this machine must not be restarted with
IPv6 flags, so Docker's rules and Docker files are fixtures/ipv6's (captured from dockerd started
with those flags by make-fixtures.sh); a namespace with this host's addresses (and docker0's
fd00:dead:beef::1/64) got them with \`iptables-nft-restore\` / \`ip6tables-nft-restore\`, then the
rule above with iptables; \`natlens snapshot\` ran inside the namespace.

Traces (asserted by tests/netfilter/test_nf_fixtures.py):

    natlens trace fixtures/ipv6-docker-user-v4only --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 8080
    # DROP in filter DOCKER-USER #1 (IPv4)
    natlens trace fixtures/ipv6-docker-user-v4only --in eth0 --src 2001:db8::7 --dst fd00::2 --dport 8080
    # ACCEPT, path forward, [fd00:dead:beef::242:ac11:2]:80: ip6tables has no such rule
    natlens trace fixtures/ipv6-docker-user-v4only --in docker0 --src 172.17.0.2 --dst 198.51.100.7 --dport 8080
    # ACCEPT, path forward, out eth0: the block names eth0 as input only

What natlens should say (golden in tests/golden/report/fixtures/ipv6-docker-user-v4only.json):
- \`bypass\` (high), natlens-web's 8080/tcp on IPv6: refused on IPv4 from eth0 by \`filter
  DOCKER-USER #1\`, reachable on IPv6 from eth0 from every source; the fix is the ip6tables
  counterpart.
EOF
}

scenario_icc_no_proxy() {
    [ -r "$OUT/no-userland-proxy/iptables-save.txt" ] || die "fixtures/no-userland-proxy is needed first"
    ns_start
    # dockerd --userland-proxy=false sets route_localnet on the bridge (127.0.0.1:PORT is DNATed)
    nsx sysctl -qw net.ipv4.conf.docker0.route_localnet=1
    ns_fixture_rules no-userland-proxy
    # --icc=false: Docker writes DROP instead of ACCEPT for traffic within the bridge
    # (libnetwork/drivers/bridge/setup_ip_tables.go setIcc), by replacing that one rule.
    local n
    n=$(nsx iptables -S FORWARD | grep -n -x -- '-A FORWARD -i docker0 -o docker0 -j ACCEPT' |
        cut -d: -f1)
    [ -n "$n" ] || die "no-userland-proxy has no ICC accept rule"
    nsx iptables -R FORWARD "$((n - 1))" -i docker0 -o docker0 -j DROP
    ns_capture icc-no-proxy
    ns_stop
    ns_fixture_docker no-userland-proxy icc-no-proxy
    python3 - "$OUT/icc-no-proxy/docker-networks.json" <<'EOF'
import json, sys
nets = json.load(open(sys.argv[1]))
for n in nets:
    if n.get("Name") == "bridge":
        n.setdefault("Options", {})["com.docker.network.bridge.enable_icc"] = "false"
json.dump(nets, open(sys.argv[1], "w"), indent=4)
open(sys.argv[1], "a").write("\n")
EOF
    readme icc-no-proxy <<EOF
# icc-no-proxy — --icc=false without the userland proxy: no hairpin to a published port

The daemon of fixtures/no-userland-proxy (\`dockerd --userland-proxy=false\`, natlens-web
\`-p 8080:80\`, 172.17.0.2 on docker0) with \`--icc=false\` as well: FORWARD's
\`-i docker0 -o docker0 -j ACCEPT\` becomes \`-j DROP\` (what dockerd writes for ICC off), and the
bridge network's option \`com.docker.network.bridge.enable_icc\` is "false".

A container on docker0 that connects to the host's published port (192.0.2.2:8080) is DNATed
to 172.17.0.2:80 (no \`-i docker0 -j RETURN\` without the proxy) and forwarded back into
docker0, where the ICC drop refuses it; no docker-proxy listens to take the connection instead.

How it was made (\`scripts/make-fixtures.sh icc-no-proxy\`, scenario in
\`scripts/fixtures-exposure.sh\`): the shared dockerd of this machine must not be restarted with
other flags, so Docker's rules and files are fixtures/no-userland-proxy's (captured from dockerd
--userland-proxy=false); a namespace with this host's addresses got them with
\`iptables-nft-restore\`, the ICC rule was replaced with \`iptables -R\`, and \`natlens snapshot\`
ran inside the namespace.

Traces (asserted by tests/netfilter/test_nf_fixtures.py):

    natlens trace fixtures/icc-no-proxy --in docker0 --src 172.17.0.3 --dst 192.0.2.2 --dport 8080
    # DROP, path forward, 172.17.0.2:80 via docker0: the ICC drop (filter FORWARD)
    natlens trace fixtures/icc-no-proxy --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 8080
    # ACCEPT, path forward, 172.17.0.2:80: other hosts reach it
    natlens trace fixtures/icc-no-proxy --in docker0 --src 172.17.0.3 --dst 172.17.0.2 --dport 80
    # DROP: container to container on docker0

What natlens should say (golden in tests/golden/report/fixtures/icc-no-proxy.json):
- \`hairpin-blocked\` (medium), natlens-web's 8080/tcp from docker0; the fix accepts connections
  DNATed to 172.17.0.2:80 within docker0 in DOCKER-USER (\`--ctstate DNAT\`).
EOF
}

scenario_planted_rules() {
    run natlens-web -p 8080:80
    run natlens-api -p 8081:80
    local web api n
    web=$(ip_of natlens-web)
    api=$(ip_of natlens-api)
    ns_start
    ns_docker_rules
    # Rule-level faults, planted with iptables after Docker's rules (in the namespace only):
    # natlens-api's DNAT edited to the wrong container port (mismatch),
    n=$(nsx iptables -t nat -S DOCKER | grep -n -x -- \
        "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination $api:80" |
        cut -d: -f1)
    [ -n "$n" ] || die "no DNAT for 8081"
    nsx iptables -t nat -R DOCKER "$((n - 1))" ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT \
        --to-destination "$api:81"
    # two chains that jump to each other, reached from no built-in chain (loop),
    nsx iptables -N OLD-A
    nsx iptables -N OLD-B
    nsx iptables -A OLD-A -s 203.0.113.0/24 -j OLD-B
    nsx iptables -A OLD-B -p tcp -j OLD-A
    # a chain no rule jumps to, and the chain only it jumps to (unused, unreachable),
    nsx iptables -N OLD-LOG
    nsx iptables -N OLD-DROP
    nsx iptables -A OLD-LOG -j OLD-DROP
    nsx iptables -A OLD-DROP -j DROP
    # and an allow for the VPN's UDP port placed after a catch-all UDP drop (dead rule).
    nsx iptables -A INPUT -i eth0 -p udp -j DROP
    nsx iptables -A INPUT -i eth0 -p udp -m udp --dport 51820 -j ACCEPT
    ns_capture planted-rules
    ns_stop
    readme planted-rules <<EOF
# planted-rules — rule-level faults next to Docker's own rules

    docker run -d --name natlens-web -p 8080:80 natlens-busybox:latest     # $web
    docker run -d --name natlens-api -p 8081:80 natlens-busybox:latest     # $api

then, in a namespace holding this host's Docker rules (never on the host itself):

    iptables -t nat -R DOCKER N ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination $api:81
    iptables -N OLD-A; iptables -N OLD-B
    iptables -A OLD-A -s 203.0.113.0/24 -j OLD-B; iptables -A OLD-B -p tcp -j OLD-A
    iptables -N OLD-LOG; iptables -N OLD-DROP
    iptables -A OLD-LOG -j OLD-DROP; iptables -A OLD-DROP -j DROP
    iptables -A INPUT -i eth0 -p udp -j DROP
    iptables -A INPUT -i eth0 -p udp -m udp --dport 51820 -j ACCEPT

How it was made (\`scripts/make-fixtures.sh planted-rules\`, scenario in
\`scripts/fixtures-exposure.sh\`): the containers ran on the real dockerd; a namespace with this
host's addresses got its \`iptables-save\` with \`iptables-nft-restore\`, then the commands above;
\`natlens snapshot\` ran inside the namespace.

Traces (asserted by tests/netfilter/test_nf_fixtures.py):

    natlens trace fixtures/planted-rules --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 8081
    # DROP, path forward: DNATed to $api:81, FORWARD's policy drops it (Docker accepts port 80)
    natlens trace fixtures/planted-rules --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --proto udp --dport 51820
    # DROP, path local: INPUT's UDP drop for eth0 comes before the WireGuard allow
    natlens trace fixtures/planted-rules --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 8080
    # ACCEPT, path forward, $web:80

What natlens should say (golden in tests/golden/report/fixtures/planted-rules.json):
- \`mismatch\` (high), natlens-api's 8081/tcp: its DNAT points at $api:81; the fix points it back
  at port 80.
- \`loop\` (high): OLD-A -> OLD-B -> OLD-A, reached from no built-in chain.
- \`unreachable-chain\` (low) for the chains only unreached chains jump to, \`unused-chain\` (low)
  for OLD-LOG.
- \`dead-rule\` (medium): INPUT's WireGuard allow after the UDP drop for eth0.
EOF
    clean_docker
}
