"""Where the time of a long dictation's final piece goes (issue 12), in-process.

    .venv/bin/python -m bench.final_decode [--reps 7] [--out bench/final_decode.md]

Released at its last word, a long dictation waits for one decode: its tail since the last
pause, with the committed pieces before it as context (daemon/pieces.py). This bench
takes that decode as the daemon makes it (the 30 s and 60 s dictations of bench/live.py,
streamed through the real ``Scheduler`` in virtual time; a recording proxy keeps the
last call the engine got) and times it whole and in parts on the engine's own model,
each rep timing every part once in turn (medians of ``--reps``):

- the whole ``Engine.transcribe`` of it, as the daemon calls it;
- the VAD (``find_speech``), the log-mel features and the encoder on the unpadded window
  the fast path encodes (docs/fastpath.md);
- the decoder, as the engine prompts it (the context's text forced as the prefix);
- the prefix's steps: the decode stopped right after the forced prefix, less the decode
  stopped after its first step (the one pass over the earlier text and ``<|0.00|>``);
- the prefix in one pass: the same tokens moved into the previous-text prompt
  (``<|startofprev|>``, which CTranslate2 runs in one decoder pass), less that first
  step: what a one-pass prefix would cost, if CTranslate2's API could force one.

The model text of these variants is not compared (the accuracy of such levers is
bench/live.py's part); only the time is, on this machine, so a new machine shows at once
how far its floor is from the 500 ms goal.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.live import KEYS_OPTIONS, dictation, log
from bench.material import Generator
from bench.suite import machine
from tests.integration.live_stream import stream_virtual
from whisperd.config import DaemonConfig
from whisperd.engine import Engine, Transcription, fastpath
from whisperd.engine.decoding import MAX_LENGTH, build_prompt, suppressed_tokens
from whisperd.engine.speech import find_speech
from whisperd.engine.threads import CHOICE_NAMES

HERE = Path(__file__).resolve().parent
DICTATIONS = ((30, 1), (30, 2), (60, 3), (60, 4))
FRAMES_PER_SECOND = 100  # log-mel frames
PAD_FRAMES = int(fastpath.DEFAULT_PAD_SECONDS * FRAMES_PER_SECOND)
MIN_WINDOW = int(fastpath.DEFAULT_MIN_WINDOW_SECONDS * FRAMES_PER_SECOND)
FULL_WINDOW = 30 * FRAMES_PER_SECOND


class LastCall:
    """The engine, keeping the samples and options of the last transcribe it got."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.last: tuple[Any, dict[str, Any]] | None = None

    def transcribe(self, audio: Any, options: dict[str, Any], *args: Any) -> Transcription:
        self.last = (audio.copy(), dict(options))
        return self.engine.transcribe(audio, options, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


def final_decode(engine: Engine, seconds: int, seed: int) -> tuple[Any, dict[str, Any]]:
    """The final piece's decode of a dictation, as the daemon asks the engine for it."""
    from whisperd.daemon.scheduler import Scheduler
    from whisperd.daemon.state import DaemonState

    item, _ = dictation(Generator(Path(tempfile.mkdtemp(prefix="bench-final-"))), seconds, seed)
    recorder = LastCall(engine)

    async def run() -> None:
        config = engine.config
        scheduler = Scheduler(config, DaemonState(False), lambda: None, lambda: None, recorder)
        await stream_virtual(scheduler, item.audio, {**KEYS_OPTIONS, "live": True}, 0.0)
        scheduler.shutdown()

    asyncio.run(run())
    assert recorder.last is not None and recorder.last[1].get("prefix"), "no context decode"
    return recorder.last


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def parts(engine: Engine, audio: Any, options: dict[str, Any], reps: int) -> dict[str, Any]:
    """The decode and its parts (see the module's docstring), on the engine's own model,
    each rep timing every part once in turn: medians in ms."""
    import ctranslate2
    from faster_whisper.tokenizer import Tokenizer

    if options.get("without_timestamps"):
        raise SystemExit("the final decode was retried without timestamps: not timed here")
    model = engine._model  # the instance the daemon decodes with (a bench may look inside)
    assert model is not None
    speech = find_speech(audio, True)
    features = np.asarray(model.feature_extractor(speech.samples), dtype=np.float32)
    frames = features.shape[-1] - 1
    window = min(FULL_WINDOW, max(frames + PAD_FRAMES, MIN_WINDOW))
    padded = np.zeros((1, features.shape[0], window), dtype=np.float32)
    padded[0, :, :frames] = features[:, :frames]
    ct2, mel = model.model, ctranslate2.StorageView.from_array(padded)
    encoded = ct2.encode(mel, to_cpu=False)
    multilingual = bool(ct2.is_multilingual)
    tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language="en")
    earlier = str(options.get("initial_prompt") or "").strip()
    previous = [int(t) for t in tokenizer.encode(" " + earlier)] if earlier else []
    prompt = build_prompt(
        tokenizer, previous, without_timestamps=False, hotwords=None, prefix=options["prefix"]
    )
    # [<|startofprev|> earlier text, <|startoftranscript|>..., <|0.00|>, prefix]: CTranslate2
    # runs all before the start sequence's last token in one pass, then forces <|0.00|>
    # and the prefix one step each. One pass: the prefix joins the earlier text.
    prefix = prompt[prompt.index(tokenizer.timestamp_begin) + 1 :]
    task = [int(t) for t in tokenizer.sot_sequence]
    one_pass = [int(tokenizer.sot_prev), *previous, *prefix, *task, tokenizer.timestamp_begin]
    suppress = suppressed_tokens(tokenizer, (-1,))

    def generate(tokens: list[int], steps: int | None = None) -> Callable[[], object]:
        """Decode after ``tokens``; ``steps``: stop after that many (the forced ones
        included). CTranslate2 decodes min(max_length / 2, max_length - prompt) steps."""
        before = len(tokens) - tokens[::-1].index(task[-1]) - 1  # the one-pass part
        length = MAX_LENGTH if steps is None else max(2 * steps, before + steps)
        return partial(
            ct2.generate,
            encoded,
            [tokens],
            beam_size=5,
            max_length=length,
            suppress_tokens=suppress,
        )

    new_tokens = len(generate(prompt)()[0].sequences_ids[0]) - len(prefix) - 1  # type: ignore[index]
    work: dict[str, Callable[[], object]] = {
        "whole": partial(engine.transcribe, audio, options),
        "vad": partial(find_speech, audio, True),
        "features": partial(model.feature_extractor, speech.samples),
        "encoder": partial(ct2.encode, mel, to_cpu=False),
        "decoder": generate(prompt),
        "first step": generate(prompt, 1),  # the one pass and <|0.00|>
        "forced": generate(prompt, len(prefix) + 1),  # ... and the prefix
        "one pass": generate(one_pass, 1),  # the prefix in the one pass, and <|0.00|>
    }
    times: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(reps):
        for name, job in work.items():
            times[name].append(timed(job))
    row: dict[str, Any] = {name: statistics.median(t) for name, t in times.items()}
    row["prefix steps"] = row["forced"] - row["first step"]
    row["prefix in one pass"] = row["one pass"] - row["first step"]
    row["estimate"] = row["whole"] - row["prefix steps"] + row["prefix in one pass"]
    return row | {
        "prefix tokens": len(prefix),
        "new tokens": new_tokens,
        "window s": window / FRAMES_PER_SECOND,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE / "final_decode.md")
    args = parser.parse_args()
    engine = Engine(DaemonConfig())
    engine.load()
    rows = []
    for seconds, seed in DICTATIONS:
        audio, options = final_decode(engine, seconds, seed)
        row = {"dictation": f"{seconds} s (seed {seed})"} | parts(engine, audio, options, args.reps)
        log(f"{row}")
        rows.append(row)
    args.out.write_text(markdown(rows, engine.cpu_threads or 0, args.reps))
    print(args.out.read_text())
    return 0


def markdown(rows: list[dict[str, Any]], threads: int, reps: int) -> str:
    lines = [
        "# The final piece's decode, in parts (bench/final_decode.py)",
        "",
        f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{machine()['cpu']}, CPU threads: {CHOICE_NAMES.get(threads, threads)}, "
        f"median of {reps} (each rep times every column once, in turn). Milliseconds.",
        "",
        "*prefix steps*: forcing the context's text, a decoder step a token (the decode "
        "stopped after the prefix, less the decode stopped after its first step). *prefix "
        "in one pass*: what the same tokens add to the one decoder pass when they join the "
        "earlier text. *estimate*: the whole decode less the first, plus the second.",
        "",
        "| dictation | context + tail (window) | prefix / new tokens | whole decode | VAD | "
        "features | encoder | decoder | prefix steps | prefix in one pass | estimate |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dictation']} | {r['window s']:.1f} s | {r['prefix tokens']} / "
            f"{r['new tokens']} | {r['whole']:.0f} | {r['vad']:.0f} | {r['features']:.0f} | "
            f"{r['encoder']:.0f} | {r['decoder']:.0f} | {r['prefix steps']:.0f} | "
            f"{r['prefix in one pass']:.0f} | {r['estimate']:.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
