#!/bin/bash
# Build the whisperd .deb from the work tree (tracked and untracked, not ignored files) in a
# scratch copy, as CI would from a fresh clone:  dpkg-buildpackage -us -uc -b
# Prints the path of the .deb. Cached by the hash of the source files in
# $WHISPERD_SYSTEST_CACHE/deb/<hash>/ (set WHISPERD_DEB to use a prebuilt one instead).
# Also runs lintian and keeps its report beside the .deb (lintian.txt).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${WHISPERD_SYSTEST_CACHE:-/var/cache/whisperd-systest}
if [ -n "${WHISPERD_DEB:-}" ]; then echo "$WHISPERD_DEB"; exit 0; fi
cd "$REPO"
FILES=$(git ls-files -co --exclude-standard | grep -v -e '^tests/' -e '^bench/' -e '^\.ci/' | sort)
HASH=$(echo "$FILES" | tar -cf - --mtime=@0 --owner=0 --group=0 --numeric-owner -T - 2>/dev/null | sha256sum | cut -c1-12)
OUT=$CACHE/deb/$HASH
if ls "$OUT"/whisperd_*.deb >/dev/null 2>&1; then ls "$OUT"/whisperd_*.deb; exit 0; fi
W=$(mktemp -d /var/tmp/whisperd-debbuild.XXXXXX)
mkdir -p "$W/whisperd"
echo "$FILES" | tar -cf - -T - | tar -C "$W/whisperd" -xf -
T0=$(date +%s)
( cd "$W/whisperd" && dpkg-buildpackage -us -uc -b ) > "$W/build.log" 2>&1 || { tail -60 "$W/build.log" >&2; echo "build log: $W/build.log" >&2; exit 1; }
T1=$(date +%s)
mkdir -p "$OUT"
mv "$W"/whisperd_*.deb "$W"/*.buildinfo "$W"/*.changes "$OUT"/
cp "$W/build.log" "$OUT/build.log"
echo "dpkg-buildpackage: $((T1-T0)) s" > "$OUT/timing.txt"
if command -v lintian >/dev/null; then
  lintian --info --display-info --pedantic "$OUT"/whisperd_*.deb > "$OUT/lintian.txt" 2>&1 || true
  echo "lintian: $(( $(date +%s)-T1 )) s" >> "$OUT/timing.txt"
fi
rm -rf "$W"
cat "$OUT/timing.txt" >&2
ls "$OUT"/whisperd_*.deb
