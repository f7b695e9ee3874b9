"""Run in a child process (PortAudio must start after PulseAudio, with its environment):
recordings through whisperd-keys' SoundDeviceRecorder, each stopped the moment a sound
has finished playing, as a key released right after the last word. Prints one line per
recording: the seconds of the sound's last loud stretch it holds, and the seconds of
loud audio in its pre-roll (what a previous recording lost and this one got instead).

argv: SOUND.wav RECORDINGS
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

from whisperd.keys.audio import SoundDeviceRecorder

RATE = 16000
PREROLL = 0.3
LOUD = 0.1


def last_loud_stretch(pcm: np.ndarray) -> float:
    loud = np.nonzero(np.abs(pcm) > LOUD)[0]
    if loud.size == 0:
        return 0.0
    gaps = np.nonzero(np.diff(loud) > RATE // 20)[0]  # 50 ms of quiet splits stretches
    first = loud[gaps[-1] + 1] if gaps.size else loud[0]
    return float(loud[-1] - first + 1) / RATE


def main() -> int:
    sound, count = sys.argv[1], int(sys.argv[2])
    recorder = SoundDeviceRecorder(device="", sample_rate=RATE, keep_open=True, preroll=PREROLL)
    time.sleep(1.0)  # the pre-roll ring fills, as it does between two recordings
    for _ in range(count):
        capture = recorder.begin()
        subprocess.run(["paplay", "--latency-msec=30", "--device=virtspk", sound], check=True)
        capture.stop()  # the key goes up as the sound ends
        chunks = []
        while (chunk := capture.read(2.0)) is not None:
            chunks.append(chunk)
        pcm = np.frombuffer(b"".join(chunks), dtype="<i2").astype(np.float32) / 32768
        preroll = pcm[: int(PREROLL * RATE)]
        print(f"{last_loud_stretch(pcm):.4f} {np.count_nonzero(np.abs(preroll) > LOUD) / RATE:.4f}")
        time.sleep(0.3)
    recorder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
