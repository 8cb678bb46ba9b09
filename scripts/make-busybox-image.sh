#!/bin/sh
# Build the local image natlens-busybox:latest with `docker import` (no registry needed).
#
#   scripts/make-busybox-image.sh [IMAGE]      (default natlens-busybox:latest)
#
# The root filesystem is /bin/busybox from Debian's busybox-static plus one symlink per applet
# (sh, httpd, nc, ip, sleep, ...), with /etc/passwd, /etc/group and the usual empty directories so
# that `docker run IMAGE httpd -f -p 80` or `nc -l -p 80` work. Skips if the image exists.
set -eu

IMAGE=${1:-natlens-busybox:latest}
BUSYBOX=${BUSYBOX:-/bin/busybox}

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "make-busybox-image: $IMAGE exists"
    exit 0
fi
[ -x "$BUSYBOX" ] || { echo "make-busybox-image: $BUSYBOX missing (apt-get install busybox-static)" >&2; exit 1; }
if ! file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' && ldd "$BUSYBOX" >/dev/null 2>&1; then
    echo "make-busybox-image: $BUSYBOX is dynamically linked; need busybox-static" >&2
    exit 1
fi

ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT INT TERM
mkdir -p "$ROOT/bin" "$ROOT/sbin" "$ROOT/usr/bin" "$ROOT/usr/sbin" "$ROOT/etc" "$ROOT/tmp" \
         "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" "$ROOT/root" "$ROOT/var/www" "$ROOT/www"
chmod 1777 "$ROOT/tmp"
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$ROOT/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOT/etc/group"
echo 'natlens test page' >"$ROOT/www/index.html"
echo 'natlens test page' >"$ROOT/var/www/index.html"

tar -C "$ROOT" -c . | docker import \
    --change 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' \
    --change 'WORKDIR /www' \
    --change 'CMD ["httpd", "-f", "-p", "80", "-h", "/www"]' \
    --message 'natlens test image from busybox-static' \
    - "$IMAGE" >/dev/null
echo "make-busybox-image: built $IMAGE ($("$BUSYBOX" --list | wc -l) applets)"
