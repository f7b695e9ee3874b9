"""Run in a child process (PortAudio must start after PulseAudio, with its environment):
record through whisperd-keys' SoundDeviceRecorder while a sound plays, write raw PCM.

argv: OUTPUT.raw SECONDS_BEFORE PLAY_COMMAND...  (prints the sample rate)
"""

from __future__ import annotations

import subprocess
import sys
import time

from whisperd.keys.audio import SoundDeviceRecorder


def main() -> int:
    output, lead = sys.argv[1], float(sys.argv[2])
    player = sys.argv[3:]
    recorder = SoundDeviceRecorder(device="", sample_rate=16000, keep_open=True, preroll=0.3)
    time.sleep(lead)  # the pre-roll ring fills, as it does between two recordings
    begun = time.monotonic()
    capture = recorder.begin()
    print(f"begin took {1000 * (time.monotonic() - begun):.1f} ms", file=sys.stderr)
    subprocess.run(player, check=True)
    time.sleep(0.5)
    capture.stop()
    chunks = []
    while (chunk := capture.read(1.0)) is not None:
        chunks.append(chunk)
    recorder.close()
    with open(output, "wb") as handle:
        handle.write(b"".join(chunks))
    print(capture.sample_rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
