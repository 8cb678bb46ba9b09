#!/bin/sh
# Stop the Docker daemon whose pid is in /var/run/docker.pid (as started by start-dockerd.sh).
# Waits up to 30 s for it to exit. Its iptables chains stay, as after `systemctl stop docker`;
# the next start rebuilds them.
set -eu
PIDFILE=/var/run/docker.pid
[ -f "$PIDFILE" ] || { echo "stop-dockerd: no $PIDFILE, nothing to stop"; exit 0; }
pid=$(cat "$PIDFILE")
if ! kill -0 "$pid" 2>/dev/null; then
    echo "stop-dockerd: stale $PIDFILE removed"
    rm -f "$PIDFILE"
    exit 0
fi
kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt 30 ]; then
        echo "stop-dockerd: dockerd (pid $pid) still running after 30s" >&2
        exit 1
    fi
    sleep 1
done
echo "stop-dockerd: dockerd (pid $pid) stopped"
