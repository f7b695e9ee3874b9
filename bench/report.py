"""bench/results.md from the results dict (also: ``python -m bench.report results.json``)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

MET = "✅ met"


def ms(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "–"
    return f"{seconds * 1000:.0f} ms"


def sec(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.2f} s"


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def gap(text: str) -> str:
    return f"❌ gap: {text}"


DICTATION_TITLES = {
    "default": "whisperd default (the recorded utterance, with its pause before release)",
    "at_speech_end": "whisperd default, key released 50 ms after the last word",
    "no_drafts": "whisperd without drafts (`draft_pause = 0`)",
    "plain": "whisperd with the fast path, stream windows and drafts off (`plain`)",
}


def draft_note(d: dict[str, Any]) -> str:
    used = d.get("drafts_used")
    if used is None:
        return "drafts not measured"
    pause = d.get("trailing_pause", 0.0) * 1000
    return f"answered by a draft {used:g}/{d['reps']}, pause before release {pause:.0f} ms"


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def summary_rows(r: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    warm = r.get("warm", {})
    for name, w in warm.items():
        over = w["overhead_ms"]
        wire = w["overhead_wire_ms"]
        status = MET if over <= 5 else gap(f"{over - 5:+.0f} ms over the 5 ms budget")
        if over > 5 and wire <= 5:
            status += " (wire + protocol ≤ 5 ms; the rest is inside the daemon's decode)"
        rows.append(
            [
                f"Warm overhead, {name} ({w['seconds']:g} s): whisperd (fast path off) "
                f"vs in-process, same settings",
                f"{over:+.0f} ms ({w['overhead_ratio']:.2f}×); wire+protocol {wire:.0f} ms",
                "≤ 5 ms",
                status,
            ]
        )
    for name, w in warm.items():
        rows.append(
            [
                f"Fast path gain, {name}: file request with fast_short_audio vs without",
                f"{w['fastpath_gain_ms']:+.0f} ms ({w['fastpath_speedup']:.2f}×); default "
                f"vs in-process {w['default_vs_inproc_ms']:+.0f} ms",
                "(lever)",
                "info",
            ]
        )
    blas = r.get("blas_threads", {})
    for name in blas.get("one", {}):
        default, one = blas["default"][name], blas["one"][name]
        rows.append(
            [
                f"Lever: OpenBLAS threads sleep at once (OPENBLAS_THREAD_TIMEOUT=4, whisperd's "
                f"setting), in-process, {name}",
                f"regular {ms(default['regular'])} → {ms(one['regular'])}, fast path "
                f"{ms(default['fastpath'])} → {ms(one['fastpath'])}",
                "(lever)",
                "kept",
            ]
        )
    cold = r.get("cold", {})
    for name, c in cold.items():
        if name == "python_c_pass":
            continue
        file_ratio = c["per_request_vs_warm"]
        if "per_request_vs_warm_dictation" not in c:  # results from before this column
            rows.append(
                [
                    f"Warm vs one process per request, {name} ({c['seconds']:g} s)",
                    f"{file_ratio:.1f}× ({sec(c['process_per_request']['median'])} vs "
                    f"{ms(c['warm']['median'])})",
                    "≥ 10×",
                    MET if file_ratio >= 10 else gap(f"{file_ratio:.1f}× < 10×"),
                ]
            )
            continue
        ratio = c["per_request_vs_warm_dictation"]
        rows.append(
            [
                f"Warm vs one process per request, {name} ({c['seconds']:g} s), sent as "
                "whisperd-keys sends it (PCM, no timestamps)",
                f"{ratio:.1f}× ({sec(c['process_per_request']['median'])} vs "
                f"{ms(c['warm_dictation']['median'])}); as a file request "
                f"{file_ratio:.1f}× ({ms(c['warm']['median'])}), fast path off "
                f"{c['per_request_vs_warm_fastoff']:.1f}×",
                "≥ 10×",
                MET if ratio >= 10 else gap(f"{ratio:.1f}× < 10×"),
            ]
        )
    for name, c in cold.items():
        if name == "python_c_pass":
            continue
        ratio = c["cold_vs_components"]
        rows.append(
            [
                f"Cold request through socket activation, {name}",
                f"{sec(c['cold_activated']['median'])} = {ratio:.2f}× the components "
                f"({sec(c['component_sum'])})",
                "≤ 1.2×",
                MET if ratio <= 1.2 else gap(f"{ratio:.2f}× > 1.2×"),
            ]
        )
    dictation = r.get("dictation", {}).get("default", {})
    targets = {"5": 0.150, "30": 0.300}
    for length, d in dictation.items():
        median = d["handoff"]["median"]
        target = targets.get(length)
        if target is not None:
            status = MET if median < target else gap(f"+{(median - target) * 1000:.0f} ms")
            tgt = f"median < {target * 1000:.0f} ms"
        else:
            status, tgt = "info", "–"
        rows.append(
            [
                f"Dictation {length} s: key release → text handed to the typer",
                f"median {ms(median)}, p90 {ms(d['handoff']['p90'])} (last key typed: "
                f"median {ms(d['typed']['median'])}; {draft_note(d)})",
                tgt,
                status,
            ]
        )
    for length, d in r.get("dictation", {}).get("at_speech_end", {}).items():
        rows.append(
            [
                f"Dictation {length} s, key released 50 ms after the last word (no draft "
                "can be ready)",
                f"median {ms(d['handoff']['median'])}, p90 {ms(d['handoff']['p90'])}",
                "–",
                "info",
            ]
        )
    files = r.get("files", {})
    for label, f in files.items():
        rows.append(
            [
                f"Files, {label} ({f['files']} file(s), {f['audio_seconds']:g} s of audio)",
                f"whisperctl {f['whisperctl_default']['audio_s_per_s']:.1f} audio s/s, "
                f"in-process {f['inproc']['audio_s_per_s']:.1f}",
                "(compare)",
                "info",
            ]
        )
    mem = r.get("memory", {})
    if mem:
        growth = mem["growth_after_100_kib"] / 1024
        first = mem["growth_after_first_kib"] / 1024
        rows.append(
            [
                f"whisperd RSS: after load → after {mem['requests']} requests",
                f"{mem['rss_loaded_kib']['VmRSS'] / 1024:.0f} MiB → "
                f"{mem['samples'][-1]['VmRSS'] / 1024:.0f} MiB (+{first:.1f} MiB since the "
                f"1st request, {growth:+.1f} MiB since the "
                f"{min(100, mem['requests'])}th)",
                "no growth (≤ 1 MiB after warm-up)",
                MET if growth <= 1.0 else gap(f"{growth:+.1f} MiB"),
            ]
        )
        k = mem.get("keys_idle", {})
        if k:
            rows.append(
                [
                    "whisperd-keys idle (service with doubles)",
                    f"RSS {k['rss_kib'] / 1024:.0f} MiB, CPU {k['cpu_percent']:.2f}% over "
                    f"{k['seconds']:.0f} s",
                    "(low)",
                    "info",
                ]
            )
        ie = mem.get("idle_exit", {})
        if ie:
            rows.append(
                [
                    "Idle exit (idle_timeout 2 s): nothing left running",
                    f"exited {ie['seconds_after_last_request']} s after the last request; "
                    f"process gone {ie['process_gone']}, socket gone {ie['socket_gone']}, "
                    f"leftover processes {len(ie['leftover_processes'])}",
                    "nothing left",
                    MET if ie["ok"] else gap("something is left"),
                ]
            )
    acc = r.get("accuracy", {}).get("configs", {})
    base = acc.get("inproc_defaults")
    if base:
        for key, c in acc.items():
            if key == "inproc_defaults":
                continue
            ok = c["errors"] <= base["errors"]
            rows.append(
                [
                    f"WER: {c['label']}",
                    f"{pct(c['wer'])} ({c['errors']} errors / {c['words']} words) vs "
                    f"{pct(base['wer'])}",
                    "≤ in-process defaults",
                    MET if ok else gap(f"+{c['errors'] - base['errors']} word errors"),
                ]
            )
    return rows


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    run = r["run"]
    out = ["# whisperd benchmark results\n"]
    out.append(
        f"`python -m bench{' --quick' if run.get('quick') else ''}` — {run['started']}, "
        f"{run.get('minutes', '?')} min, model {run['model']}.\n\n"
        f"**Machine:** {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM; {m['os']}, "
        f"kernel {m['kernel']}; Python {m['python']}, faster-whisper {m['faster_whisper']}, "
        f"CTranslate2 {m['ctranslate2']}, numpy {m['numpy']}, onnxruntime {m['onnxruntime']}; "
        f"whisperd {m['whisperd']} at {m['git_commit']}"
        f"{' (whisperd/ modified)' if m.get('git_dirty') else ''}. "
        f"Load average (1 min) before {run['load_before'][0]:.2f}, after "
        f"{run.get('load_after', [float('nan')])[0]:.2f}; by section: "
        + ", ".join(
            f"{s.split(':')[0].split(' ')[0]} {load[0]:.2f}"
            for s, load in run.get("load_by_section", [])
        )
        + ".\n"
    )
    runs = [*r.get("runs", []), run]
    if len(runs) > 1:
        out.append(
            "Merged from several runs (`--merge`): "
            + "; ".join(
                f"{x.get('started')} {','.join(x.get('sections', []))}"
                f"{' --quick' if x.get('quick') else ''} (load {x.get('load_before', [0])[0]:.2f}"
                f" → {x.get('load_after', [0])[0]:.2f}, {x.get('minutes', '?')} min)"
                for x in runs
            )
            + ".\n"
        )
    out.append("## Targets\n")
    out.append(table(["measure", "result", "target", "status"], summary_rows(r)))

    if "warm" in r:
        out.append("\n## 1. Warm request (median of the repetitions, new connection per request)\n")
        rows = []
        for name, w in r["warm"].items():
            rows.append(
                [
                    f"{name} ({w['seconds']:g} s)",
                    ms(w["inproc"]["wall"]["median"]),
                    ms(w["daemon_fastoff"]["wall"]["median"]),
                    ms(w["daemon_default"]["wall"]["median"]),
                    f"{w['overhead_ms']:+.0f} ms",
                    f"{w['overhead_wire_ms']:.1f} ms",
                    ms(w["daemon_fast"]["wall"]["median"]) if "daemon_fast" in w else "–",
                    f"{w['fastpath_gain_ms']:+.0f} ms",
                    ms(w["inproc_fastpath"]["wall"]["median"]) if "inproc_fastpath" in w else "–",
                    f"{pct(w['inproc']['wer'])} / {pct(w['daemon_fastoff']['wer'])} / "
                    f"{pct(w['daemon_default']['wer'])} / "
                    f"{pct(w.get('daemon_fast', {}).get('wer'))}",
                    w["inproc"]["wall"]["n"],
                ]
            )
        out.append(
            table(
                [
                    "audio",
                    "in-process",
                    "whisperd fast off",
                    "whisperd default",
                    "overhead",
                    "wall − daemon decode",
                    "whisperd, fast_short_audio",
                    "fast path gain",
                    "in-process fast path (projection)",
                    "WER in-proc / off / default / fast",
                    "reps",
                ],
                rows,
            )
        )
        out.append(f"\nLong clip: {r.get('material', {}).get('long_note', '')}.\n")

    if "cold" in r:
        c0 = r["cold"]
        out.append("\n## 2. Cold request (socket activation) and one process per request\n")
        rows = []
        for name, c in c0.items():
            if name == "python_c_pass":
                continue
            p = c["components"]
            rows.append(
                [
                    f"{name} ({c['seconds']:g} s)",
                    sec(c["cold_activated"]["median"]),
                    sec(c["cold_activated_fastoff"]["median"]),
                    sec(c["process_per_request"]["median"]),
                    f"{ms(p['interpreter_start']['median'])} + {ms(p['imports']['median'])} + "
                    f"{ms(p['model_load']['median'])} + {ms(p['transcription']['median'])} = "
                    f"{sec(c['component_sum'])}",
                    ms(c["warm"]["median"]),
                    ms(c["warm_fastoff"]["median"]),
                    ms(c["warm_dictation"]["median"]) if "warm_dictation" in c else "–",
                    f"{c['cold_vs_components']:.2f}×",
                    f"{c['per_request_vs_warm']:.1f}×",
                    f"{c['per_request_vs_warm_dictation']:.1f}×"
                    if "per_request_vs_warm_dictation" in c
                    else "–",
                ]
            )
        out.append(
            table(
                [
                    "audio file",
                    "cold (activated)",
                    "cold, fast off",
                    "process per request",
                    "components: start + imports + load + transcription",
                    "warm (file)",
                    "warm, fast off",
                    "warm, as dictation (PCM, no timestamps)",
                    "cold / components",
                    "per request / warm file",
                    "per request / warm dictation",
                ],
                rows,
            )
        )
        first = next(v for k, v in c0.items() if k != "python_c_pass")
        out.append(
            f"\n`python -c pass` alone: {ms(c0['python_c_pass']['median'])}. "
            f"Socket-activated through real LISTEN_FDS: {first['socket_activated']}. "
            f"Daemon timings of the first cold request: "
            f"{json.dumps(first['cold_daemon_timings'][0])}.\n"
        )

    if "dictation" in r:
        out.append("\n## 3. Dictation latency (from key release, whisperd-keys' service)\n")
        for label, rowsd in r["dictation"].items():
            if label == "projection":
                continue
            rows = []
            for length, d in rowsd.items():
                rows.append(
                    [
                        f"{length} s",
                        d["reps"],
                        f"{ms(d['handoff']['median'])} / {ms(d['handoff']['p90'])}",
                        f"{ms(d['typed']['median'])} / {ms(d['typed']['p90'])}",
                        ms(d["drain"]["median"]),
                        ms(d["reply"]["median"]),
                        ms(d["daemon_total"]["median"]),
                        ms(d["daemon_decode"]["median"]),
                        f"{d.get('drafts_used', 0):g}/{d['reps']}",
                        f"{d.get('trailing_pause', 0) * 1000:.0f} ms",
                        f"{d['chars']} chars, {ms(d['typing']['median'])}",
                        pct(d["wer"]),
                    ]
                )
            title = DICTATION_TITLES.get(label, label)
            out.append(f"\n{title}:\n\n")
            out.append(
                table(
                    [
                        "utterance",
                        "runs",
                        "handoff median / p90",
                        "last key median / p90",
                        "drain",
                        "end → result",
                        "daemon total",
                        "daemon decode",
                        "drafts used",
                        "pause before release",
                        "typing",
                        "WER",
                    ],
                    rows,
                )
            )

        proj = r["dictation"].get("projection")
        if proj:
            out.append(
                "\nDecode part only, in-process, whisperd-keys' options "
                "(without_timestamps), regular call vs the unpadded fast path "
                "(`whisperd.engine.fastpath`, used by whisperd for streamed dictation), "
                "without VAD:\n\n"
            )
            rows = [
                [
                    f"{k} s",
                    ms(v["regular"]["median"]),
                    ms(v["fastpath"]["median"]),
                    f"{v['fell_back']}/{v['runs']}",
                    pct(v["wer_fastpath"]),
                ]
                for k, v in proj.items()
            ]
            out.append(
                table(
                    [
                        "utterance",
                        "regular",
                        "fast path (+ regular when refused)",
                        "refused by its quality guard",
                        "WER fast path",
                    ],
                    rows,
                )
            )

    if "files" in r:
        out.append("\n## 4. Files: audio seconds per wall second\n")
        rows = []
        for label, f in r["files"].items():
            for kind in ("inproc", "whisperctl_default", "whisperctl_fastoff"):
                rows.append(
                    [
                        label,
                        f"{f['files']}",
                        f"{f['audio_seconds']:g} s",
                        kind,
                        sec(f[kind]["wall"]["median"]),
                        f"{f[kind]['audio_s_per_s']:.1f}",
                        pct(f[kind]["wer"]),
                    ]
                )
        out.append(table(["set", "files", "audio", "how", "wall", "audio s / s", "WER"], rows))

    if "memory" in r:
        mem = r["memory"]
        out.append("\n## 5. Memory and idle exit\n")
        rows = [
            ["started (model not loaded)", f"{mem['rss_started_kib']['VmRSS'] / 1024:.1f}"],
            ["after load", f"{mem['rss_loaded_kib']['VmRSS'] / 1024:.1f}"],
        ]
        rows += [
            [
                f"after {s['requests']} request(s)",
                f"{s['VmRSS'] / 1024:.1f} (peak {s['VmHWM'] / 1024:.1f})",
            ]
            for s in mem["samples"]
        ]
        out.append(table(["whisperd", "RSS MiB"], rows))
        out.append(
            f"\nRequests: 2 s utterance, new connection each, median "
            f"{ms(mem['request_wall']['median'])}; daemon CPU "
            f"{mem['daemon_cpu_per_request_ms']:.0f} ms per request.\n"
        )
        k = mem.get("keys_idle", {})
        kr = mem.get("keys_real", {})
        out.append(
            f"\nwhisperd-keys idle: RSS {k.get('rss_kib', 0) / 1024:.1f} MiB, CPU "
            f"{k.get('cpu_percent', 0):.2f}% ({k.get('cpu_seconds', 0):.2f} s over "
            f"{k.get('seconds', 0):.0f} s), {k.get('threads')} threads — "
            f"{k.get('how')}. The real program here: {kr.get('message')!r} "
            f"(/dev/input {kr.get('dev_input')}, /dev/uinput {kr.get('dev_uinput')}).\n"
        )
        ie = mem.get("idle_exit", {})
        out.append(f"\nIdle exit: {json.dumps(ie)}\n")

    if "accuracy" in r:
        a = r["accuracy"]
        out.append(
            f"\n## 6. Word error rate and levers ({a['items']} clips, "
            f"{a['audio_seconds']:g} s: espeak-ng set + shared recordings)\n"
        )
        rows = []
        for c in a["configs"].values():
            rows.append(
                [
                    c["label"],
                    sec(c["wall"]),
                    ms(c["espeak_median_s"]),
                    pct(c["wer_espeak"]),
                    pct(c["wer_recordings"]),
                    pct(c["wer"]),
                    ", ".join(c["clips_with_errors"][:4]),
                ]
            )
        out.append(
            table(
                [
                    "configuration",
                    "wall (all clips)",
                    "median per espeak clip",
                    "WER espeak",
                    "WER recordings",
                    "WER all",
                    "clips with errors",
                ],
                rows,
            )
        )
    return "\n".join(out)


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "bench/results.json"
    with open(path) as handle:
        print(render(json.load(handle)))
