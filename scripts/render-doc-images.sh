#!/usr/bin/env bash
# Render the pictures of docs/ from the repository's fixtures: an SVG (natlens graph --format
# svg) and a PNG of the same DOT (Graphviz dot -Tpng; rsvg-convert is not needed) for
#   - a Docker host          fixtures/default-bridge-8080, outside packet to the published 8080
#   - a kube-proxy host      docs/examples/kube-svc.txt, a ClusterIP with two endpoints (50/50)
#   - a firewalld host       fixtures/firewalld-docker (nftables next to Docker's iptables-nft),
#                            a LAN client reaching the container by address (firewalld rejects)
#
#   bash scripts/render-doc-images.sh            # from anywhere; writes docs/images/
#
# Needs natlens on PATH (or NATLENS=...) and Graphviz's dot.
set -euo pipefail
cd "$(dirname "$0")/.."
NATLENS=${NATLENS:-natlens}
[ -x .venv/bin/natlens ] && [ "$NATLENS" = natlens ] && NATLENS=.venv/bin/natlens
OUT=${OUT:-docs/images}   # OUT=DIR writes elsewhere (tests)
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

render() {  # NAME ARGS... : natlens graph ARGS, as NAME.svg and NAME.png
    local name=$1
    shift
    "$NATLENS" graph "$@" --format svg -o "$OUT/$name.svg" --no-cache
    "$NATLENS" graph "$@" --format dot -o "$tmp/$name.dot" --no-cache
    dot -Tpng -o "$OUT/$name.png" "$tmp/$name.dot"
    echo "wrote $OUT/$name.svg $OUT/$name.png"
}

render default-bridge-all fixtures/default-bridge-8080 --trace \
    --in eth0 --src 198.51.100.7 --dst 192.0.2.2 --dport 8080
render kube-proxy-nat docs/examples/kube-svc.txt --table nat --iface eth0=192.0.2.10/24 \
    --trace --in eth0 --src 203.0.113.9 --dst 10.96.0.10 --dport 80
render firewalld-docker fixtures/firewalld-docker --table firewalld --trace \
    --in eth0 --src 198.51.100.7 --dst 172.17.0.2 --dport 80
