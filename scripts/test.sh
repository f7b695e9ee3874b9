#!/usr/bin/env bash
# The test command (README, .ci/run): lint, types, then every test — unit, integration
# (real sockets, the real model) and system (a real systemd user manager, the QEMU VM).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x tests/system/setup.sh ] && [ "${WHISPERD_SKIP_SYSTEM_SETUP:-0}" != "1" ]; then
  bash tests/system/setup.sh
fi
echo "==> ruff"
.venv/bin/ruff format --check whisperd tests bench
.venv/bin/ruff check whisperd tests bench
echo "==> mypy"
.venv/bin/mypy whisperd
echo "==> pytest"
exec .venv/bin/pytest tests -p no:cacheprovider -ra "$@"
