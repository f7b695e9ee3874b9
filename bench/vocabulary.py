"""Vocabulary on tiny.en: faster-whisper's ``hotwords`` against ``initial_prompt``.

    OPENBLAS_THREAD_TIMEOUT=4 .venv/bin/python -m bench.vocabulary [--sentences 30]

For each way of passing a vocabulary it transcribes, through ``whisperd.engine.Engine``
with the daemon's settings (beam 5, VAD on, bundled tiny.en, int8, CPU):

- none, and an empty vocabulary;
- whisperd's way (``vocabulary``): a plain decode, then hotwords of the entries that
  sound like something heard (``whisperd/engine/vocabulary.py``), for the 1-entry list
  ["ComfyUI"], the 50-entry ``VOCABULARY_50`` and the command phrases spoken
  punctuation sends;
- the whole list in the prompt (``initial_prompt``; hotwords put the same tokens in the
  same place on a one-window clip, so the figures are the same), for 1 and 50 entries.

Material:

- ``hotwords.mp3`` (says "ComfyUI" twice): how many times ComfyUI is written right;
- the espeak set (``Generator.sentence_set``, voices and speeds varied) and the shared
  recordings with references (jfk, stereo left/right, the English MIT licence): the word
  error rate, on faster-whisper's own path (files) and on the fast path (dictation).

Results are printed as a table; docs/text.md keeps the figures and the decision.
Measured (one run, 36 clips, ~530 words; files / dictation fast path):

    none                  7.0 % / 7.2 %   ComfyUI 0/2
    vocabulary x1         7.0 % / 7.2 %   ComfyUI 2/2   (whisperd: two decodes)
    vocabulary x50        7.0 % / 7.2 %   ComfyUI 2/2   (36/36, 35/36 clips unchanged)
    vocabulary cmds       7.5 % / 7.4 %   (spoken punctuation's command phrases)
    prompt x1             7.2 % / 7.5 %   ComfyUI 2/2
    prompt x50            9.4 % / 7.7 %   ComfyUI 0/2 on files ("comfyUI")
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.material import Generator, Item, WerTally, decode, recordings, shared_file
from whisperd.config import DaemonConfig, TextConfig
from whisperd.engine import Engine

# 50 words and names a user might list: products, tools, people, jargon. None of them is
# said in the espeak set or the recordings except ComfyUI, so any effect on their word
# error rate is the list's cost.
VOCABULARY_50: tuple[str, ...] = (
    "ComfyUI", "Kubernetes", "PostgreSQL", "TensorFlow", "PyTorch", "Grafana",
    "Prometheus", "Terraform", "Ansible", "Nginx", "Redis", "Kafka", "Elasticsearch",
    "GitLab", "Jenkins", "Wayland", "PipeWire", "systemd", "faster-whisper", "CTranslate2",
    "whisperd", "uinput", "evdev", "Debian", "Ubuntu", "Fedora", "Hyprland", "KDE Plasma",
    "GNOME", "Neovim", "Emacs", "VS Code", "JetBrains", "Figma", "Notion", "Slack",
    "Mattermost", "Zulip", "Nextcloud", "Syncthing", "Tailscale", "WireGuard", "Siobhan",
    "Niamh", "Joaquín", "Wojciech", "Xiaoling", "Oluwaseun", "Anneliese", "Thibault",
)  # fmt: skip

ONE = ["ComfyUI"]


@dataclass(frozen=True)
class Way:
    name: str
    options: dict[str, Any]


WAYS: tuple[Way, ...] = (
    Way("none", {}),
    Way("empty vocabulary", {"vocabulary": []}),
    # whisperd's way: a plain decode, then hotwords of the plausible entries
    Way("vocabulary x1", {"vocabulary": ONE}),
    Way("vocabulary x50", {"vocabulary": list(VOCABULARY_50)}),
    Way(
        "vocabulary cmds", {"vocabulary": TextConfig(spoken_punctuation=True).request_vocabulary()}
    ),
    # the whole list in the prompt (hotwords give the same tokens on one window)
    Way("prompt x1", {"initial_prompt": ", ".join(ONE)}),
    Way("prompt x50", {"initial_prompt": ", ".join(VOCABULARY_50)}),
)


def comfy_hits(text: str) -> int:
    return text.count("ComfyUI")


def run_way(
    engine: Engine, way: Way, material: list[Item], hot: Item | None, fast: bool
) -> tuple[WerTally, int, list[str]]:
    options = {**way.options, "fast_short_audio": fast, "without_timestamps": fast}
    tally = WerTally()
    texts = []
    for item in material:
        text = engine.transcribe(item.audio, dict(options)).text
        tally.add(item.reference, text)
        texts.append(text)
    hits = comfy_hits(engine.transcribe(hot.audio, dict(options)).text) if hot else -1
    return tally, hits, texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else "")
    parser.add_argument("--sentences", type=int, default=30, help="espeak sentences")
    parser.add_argument("--no-recordings", action="store_true")
    args = parser.parse_args(argv)
    engine = Engine(DaemonConfig(device="cpu", compute_type="int8", cpu_threads=1))
    engine.load()
    hot_path = shared_file("hotwords.mp3")
    hot = Item("hotwords", decode(hot_path), "") if hot_path else None
    with tempfile.TemporaryDirectory(prefix="bench-vocab-") as workdir:
        material = Generator(Path(workdir)).sentence_set(args.sentences, 0, "voc")
    if not args.no_recordings:
        material += recordings()
    print(f"{len(material)} clips; ComfyUI said twice in hotwords.mp3")
    print(f"{'way':18} {'path':8} {'WER':>7} {'errors':>7} {'ComfyUI':>8} {'same as none':>13}")
    for fast in (False, True):
        baseline: list[str] | None = None
        for way in WAYS:
            tally, hits, texts = run_way(engine, way, material, hot, fast)
            baseline = texts if baseline is None else baseline
            same = sum(a == b for a, b in zip(texts, baseline, strict=True))
            path = "fast" if fast else "regular"
            print(
                f"{way.name:18} {path:8} {100 * (tally.wer or 0):6.1f}% "
                f"{tally.errors:7d} {hits:6d}/2 {same:6d}/{len(texts)}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
