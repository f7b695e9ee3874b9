#!/bin/bash
# Installs what the system tests (tests/system) need on a Debian 12 machine, idempotently.
# Run as root:  bash tests/system/setup.sh
#   - a real systemd user manager on the host: systemd, dbus-user-session, util-linux, acl
#   - the .deb build: dpkg-dev, debhelper, python3-venv/-dev, the -dev packages of the two
#     PyPI packages compiled at build time, Debian's python3-systemd / python3-evdev, lintian
#   - the VM and the clean root: qemu-system-x86, debootstrap, e2fsprogs, git (the clone)
#   - speech: sox, espeak-ng
#   - curl: the HTTP front's test speaks to it as a third-party client
# Works on a machine that has never heard of these packages (dpkg-query fails for a package
# it does not know: that is "missing", not an error).
set -euo pipefail
PKGS=(
  systemd dbus-user-session util-linux acl procps
  dpkg-dev debhelper fakeroot build-essential python3 python3-venv python3-dev pkg-config
  libudev-dev libxkbcommon-dev python3-systemd python3-evdev ca-certificates lintian help2man
  qemu-system-x86 qemu-utils debootstrap e2fsprogs git
  sox libsox-fmt-all espeak-ng curl
)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${#missing[@]} packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp)
  echo "setup.sh: + apt-get update"
  apt-get update -q >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  echo "setup.sh: + apt-get install -y --no-install-recommends ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1 \
    || { tail -40 "$log" >&2; exit 1; }
  rm -f "$log"
else
  echo "setup.sh: all ${#PKGS[@]} packages already installed"
fi
mkdir -p "${WHISPERD_SYSTEST_CACHE:-/var/cache/whisperd-systest}"
echo "setup.sh: system test prerequisites present"
