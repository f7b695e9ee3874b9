#!/bin/bash
# Stage 1 of the system-test VM: a minimal Debian 12 (bookworm) rootfs with systemd, udev,
# the kernel (for its uinput module), PulseAudio for the virtual microphone and every Debian
# package the whisperd .deb depends on, so that installing the .deb later needs no network.
# Cached: the result is kept in $CACHE/base-<hash of this script>/ and reused while this script
# is unchanged (delete the directory to rebuild). About 2-4 minutes from nothing.
set -euo pipefail
CACHE=${WHISPERD_SYSTEST_CACHE:-/var/cache/whisperd-systest}
HASH=$(sha256sum "$0" | cut -c1-12)
OUT=$CACHE/base-$HASH
if [ -f "$OUT/.complete" ]; then echo "$OUT"; exit 0; fi
mkdir -p "$CACHE"
# the machine's own apt mirror (deb822 sources first, then the classic sources.list)
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
PKGS=systemd,systemd-sysv,udev,dbus,dbus-user-session,libpam-systemd,kmod,procps,iproute2,sudo
PKGS=$PKGS,linux-image-amd64
PKGS=$PKGS,python3,python3-evdev,python3-systemd,python3-cffi-backend,libportaudio2,libxkbcommon0,xkb-data,libudev1
PKGS=$PKGS,pulseaudio,pulseaudio-utils,libasound2-plugins,alsa-utils
TMP=$CACHE/tmp-base-$$
rm -rf "$TMP"; mkdir -p "$TMP"
T0=$(date +%s)
debootstrap --variant=minbase --include=$PKGS bookworm "$TMP" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 \
  || { tail -30 "$CACHE/debootstrap.log" >&2; exit 1; }
chroot "$TMP" apt-get clean
rm -rf "$TMP"/var/lib/apt/lists/*_Packages 2>/dev/null || true
echo "debootstrap: $(( $(date +%s) - T0 )) s, $(du -sh "$TMP" | cut -f1)" >&2
rm -rf "$OUT"; mv "$TMP" "$OUT"; touch "$OUT/.complete"
# drop older bases
for d in "$CACHE"/base-*; do [ "$d" = "$OUT" ] || rm -rf "$d"; done
echo "$OUT"
