#!/usr/bin/env bash
# Refreshes constraints.txt: a throwaway venv with Debian's python3, whisperd with every extra
# installed from PyPI at the newest versions pyproject.toml allows, then `pip freeze`.
# Run it, then the tests (bash scripts/test.sh), and commit constraints.txt if they pass.
#   bash scripts/lock.sh            # rewrites constraints.txt
# Only PyPI is asked: this machine's pip configuration (local wheel folders, a global
# constraint file) is ignored, so the lock is the same on any machine on the same day.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-/usr/bin/python3}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CONSTRAINT
echo "lock.sh: + $PYTHON -m venv $work/venv"
"$PYTHON" -m venv "$work/venv"
echo "lock.sh: + pip install '.[model,keys,serve,dev]' (newest allowed versions from PyPI)"
"$work/venv/bin/pip" install -q --no-cache-dir '.[model,keys,serve,dev]'
{
  sed -n '/^#/p' constraints.txt
  "$work/venv/bin/pip" freeze --exclude-editable | grep -v -e '^#' -e '^whisperd[= @]' | sort -f
} >"$work/constraints.txt"
diff -u constraints.txt "$work/constraints.txt" || true
cp "$work/constraints.txt" constraints.txt
echo "lock.sh: constraints.txt rewritten ($(grep -c '==' constraints.txt) pins)"
