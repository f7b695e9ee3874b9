#!/bin/bash
# Stage 1 of the system-test VM: a minimal Debian 12 (bookworm) rootfs with systemd, udev,
# the kernel (for its uinput module), PulseAudio for the virtual microphone and every Debian
# package the whisperd .deb depends on, so that installing the .deb later needs no network.
# Cached by ../debootstrap.sh in $CACHE/base-<hash>/ (delete it to rebuild). About 2-4
# minutes from nothing. Prints the directory.
set -euo pipefail
PKGS=systemd,systemd-sysv,udev,dbus,dbus-user-session,libpam-systemd,kmod,procps,iproute2,sudo
PKGS=$PKGS,linux-image-amd64
PKGS=$PKGS,python3,python3-evdev,python3-systemd,python3-cffi-backend,libportaudio2,libxkbcommon0,xkb-data,libudev1
PKGS=$PKGS,pulseaudio,pulseaudio-utils,libasound2-plugins,alsa-utils
exec "$(dirname "$0")/../debootstrap.sh" base "$PKGS"
