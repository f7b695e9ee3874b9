#!/bin/bash
# Installs what the system tests (tests/system) need on a Debian 12 machine, idempotently.
# Run as root:  bash tests/system/setup.sh
#   - a real systemd user manager on the host: systemd, dbus-user-session, util-linux, acl
#   - the .deb build: dpkg-dev, debhelper, python3-venv/-dev, the -dev packages of the two
#     PyPI packages compiled at build time, Debian's python3-systemd / python3-evdev, lintian
#   - the VM: qemu-system-x86, debootstrap, e2fsprogs; speech: sox, espeak-ng
set -euo pipefail
PKGS="systemd dbus-user-session util-linux acl procps
      dpkg-dev debhelper fakeroot build-essential python3 python3-venv python3-dev pkg-config
      libudev-dev libxkbcommon-dev python3-systemd python3-evdev ca-certificates lintian help2man
      qemu-system-x86 qemu-utils debootstrap e2fsprogs
      sox libsox-fmt-all espeak-ng"
missing=$(dpkg-query -W -f='${Package} ${Status}\n' $PKGS 2>/dev/null | awk '$NF!="installed"{print $1}')
for p in $PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"; done
missing=$(echo $missing | tr ' ' '\n' | sort -u | tr '\n' ' ')
if [ -n "${missing// /}" ]; then
  echo "setup.sh: installing $missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
mkdir -p /var/cache/whisperd-systest
echo "setup.sh: system test prerequisites present"
