#!/bin/bash
# A cached Debian 12 (bookworm) root filesystem, made by debootstrap --variant=minbase.
#   debootstrap.sh NAME [PACKAGES]      # PACKAGES: comma-separated extras (--include)
# Prints the directory of the root: $CACHE/NAME-<hash>/, reused while this script and the
# arguments are unchanged (older NAME-* roots are removed). Every root made here shares one
# download cache of .debs ($CACHE/debs), so the second root costs no download.
# Used by vm/build-base.sh (the VM's system) and clean-root.sh (a bare Debian 12).
set -euo pipefail
NAME=$1; PKGS=${2:-}
CACHE=${WHISPERD_SYSTEST_CACHE:-/var/cache/whisperd-systest}
HASH=$( { cat "$0"; echo "$NAME $PKGS"; } | sha256sum | cut -c1-12)
OUT=$CACHE/$NAME-$HASH
if [ -f "$OUT/.complete" ]; then echo "$OUT"; exit 0; fi
mkdir -p "$CACHE/debs"
# the machine's own apt mirror (deb822 sources first, then the classic sources.list)
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
TMP=$CACHE/tmp-$NAME-$$
rm -rf "$TMP"; mkdir -p "$TMP"
T0=$(date +%s)
echo "debootstrap.sh: + debootstrap --variant=minbase ${PKGS:+--include=$PKGS} bookworm $TMP $MIRROR" >&2
debootstrap --variant=minbase --cache-dir="$CACHE/debs" ${PKGS:+--include=$PKGS} bookworm "$TMP" "$MIRROR" \
  > "$CACHE/debootstrap-$NAME.log" 2>&1 || { tail -30 "$CACHE/debootstrap-$NAME.log" >&2; rm -rf "$TMP"; exit 1; }
chroot "$TMP" apt-get clean
echo "debootstrap.sh: $NAME in $(( $(date +%s) - T0 )) s, $(du -sh "$TMP" | cut -f1)" >&2
rm -rf "$OUT"; mv "$TMP" "$OUT"; touch "$OUT/.complete"
for d in "$CACHE/$NAME"-*; do [ "$d" = "$OUT" ] || rm -rf "$d"; done
echo "$OUT"
