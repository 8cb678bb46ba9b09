#!/bin/sh
# Start a Docker daemon for natlens' tests and fixtures (idempotent).
#
#   scripts/start-dockerd.sh [EXTRA DOCKERD FLAGS...]
#
# If `docker info` already works, nothing happens (extra flags are then ignored: use
# scripts/stop-dockerd.sh first to restart with other flags). Otherwise a stale pid file is
# removed and `dockerd --storage-driver=vfs "$@"` is started in the background, logging to
# $DOCKERD_LOG (default /tmp/dockerd.log). Waits up to $DOCKERD_TIMEOUT seconds (default 60) for
# the daemon to answer; on failure prints the log tail and exits 1.
set -eu

LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
TIMEOUT=${DOCKERD_TIMEOUT:-60}
PIDFILE=/var/run/docker.pid

if docker info >/dev/null 2>&1; then
    echo "start-dockerd: daemon already running"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "start-dockerd: must run as root" >&2
    exit 1
fi
command -v dockerd >/dev/null 2>&1 || { echo "start-dockerd: dockerd not found (apt-get install docker.io)" >&2; exit 1; }

if [ -f "$PIDFILE" ]; then
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        echo "start-dockerd: dockerd (pid $pid) is running but not answering; waiting for it"
    else
        echo "start-dockerd: removing stale $PIDFILE"
        rm -f "$PIDFILE"
    fi
fi

if [ ! -f "$PIDFILE" ]; then
    echo "start-dockerd: starting dockerd --storage-driver=vfs $* (log: $LOG)"
    # setsid: the daemon must outlive this script and its caller's process group.
    setsid dockerd --storage-driver=vfs "$@" >>"$LOG" 2>&1 </dev/null &
    started=$!
fi

i=0
why="did not answer within ${TIMEOUT}s"
while [ "$i" -lt "$TIMEOUT" ]; do
    if docker info >/dev/null 2>&1; then
        echo "start-dockerd: daemon up after ${i}s ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
        exit 0
    fi
    if [ -n "${started:-}" ] && ! kill -0 "$started" 2>/dev/null; then
        why="exited"
        break
    fi
    sleep 1
    i=$((i + 1))
done

echo "start-dockerd: dockerd $why; last lines of $LOG:" >&2
tail -n 15 "$LOG" >&2 || true
exit 1
