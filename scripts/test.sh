#!/usr/bin/env bash
# The test command (README, .ci/run): lint, types, then every test — unit, integration
# (real sockets, the real model) and system (a real systemd user manager, a clean Debian 12
# root running install.sh, the QEMU VM). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${WHISPERD_SKIP_SYSTEM_SETUP:-0}" = "1" ]; then
  echo "==> WHISPERD_SKIP_SYSTEM_SETUP=1: not installing the system tests' packages"
elif [ "$(id -u)" -ne 0 ]; then
  echo "==> not root: the system tests will skip (sudo bash tests/system/setup.sh installs their packages)"
else
  echo "==> bash tests/system/setup.sh (the system tests' packages)"
  bash tests/system/setup.sh
fi
echo "==> ruff format --check, ruff check"
.venv/bin/ruff format --check whisperd tests bench
.venv/bin/ruff check whisperd tests bench
echo "==> mypy whisperd"
.venv/bin/mypy whisperd
echo "==> pytest tests $*"
exec .venv/bin/pytest tests -p no:cacheprovider -ra "$@"
