#!/bin/sh
# Capture real `iptables -L` listings (and the matching iptables-save) from this kernel.
#
# Loads rules-v4.txt / rules-v6.txt into a throwaway network namespace with both backends
# (iptables-nft and iptables-legacy), then writes, per backend, family and table:
#   <backend>-<family>.save                      iptables-save -c
#   <backend>-<family>-<table>.L-n.txt           iptables -t T -L -n
#   <backend>-<family>-<table>.L-n-v.txt         iptables -t T -L -n -v
#   <backend>-<family>-<table>.L-n-v-x-num.txt   iptables -t T -L -n -v -x --line-numbers
#   <backend>-<family>-<table>.L-v.txt           iptables -t T -L -v      (names, no -n)
#   <backend>-<family>-<table>.L.txt             iptables -t T -L         (names, no counters)
# Needs root. Run from anywhere: sh tests/data/listings/capture.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
ns="natlens-capture-$$"
ip netns add "$ns"
trap 'ip netns delete "$ns"' EXIT INT TERM
run() { ip netns exec "$ns" "$@"; }
version=$(iptables --version)
for backend in nft legacy; do
    for family in v4 v6; do
        if [ "$family" = v4 ]; then tool=iptables; tables="raw mangle nat filter"
        else tool=ip6tables; tables="nat filter"; fi
        run "$tool-$backend-restore" -c < "$here/rules-$family.txt"
        # The warning about the other backend's tables goes to stderr; keep stdout only.
        run "$tool-$backend-save" -c 2>/dev/null | grep -v '^# \(Generated\|Completed\)' \
            > "$here/$backend-$family.save"
        for t in $tables; do
            base="$here/$backend-$family-$t"
            run "$tool-$backend" -t "$t" -L -n > "$base.L-n.txt" 2>/dev/null
            run "$tool-$backend" -t "$t" -L -n -v > "$base.L-n-v.txt" 2>/dev/null
            run "$tool-$backend" -t "$t" -L -n -v -x --line-numbers > "$base.L-n-v-x-num.txt" 2>/dev/null
            run "$tool-$backend" -t "$t" -L -v > "$base.L-v.txt" 2>/dev/null
            run "$tool-$backend" -t "$t" -L > "$base.L.txt" 2>/dev/null
        done
    done
done
echo "$version (captured $(date -u +%Y-%m-%d), kernel $(uname -r))" > "$here/VERSION"
