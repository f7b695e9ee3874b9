"""Microphone capture through sounddevice (PortAudio), 16-bit mono PCM.

By default the input stream stays open between recordings and keeps the last
``preroll`` seconds in a small ring buffer in memory (never written anywhere), so a
recording starts with the audio from just before the key went down: opening a stream
through PulseAudio/PipeWire can take longer than the first syllable. With ``keep_open``
off the stream is opened at key-down instead (no pre-roll, no "microphone in use"
indicator between recordings).

A device that cannot record at 16 kHz is recorded at its default rate; the daemon
resamples (the protocol accepts any rate from 8 to 192 kHz).
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

SAMPLE_WIDTH = 2  # s16le
BLOCK_SECONDS = 0.02
# At key-up the last of what was said is still on its way: PortAudio hands a block over
# 20-40 ms after its first sample was recorded through PulseAudio here, and far later
# from a Bluetooth headset. Stopping at once cut the end of the last word (and put it at
# the start of the next recording, through the pre-roll). So a recording ends with the
# first block recorded after the key went up (PortAudio's ADC time of each block against
# the stream's clock at the stop), or TAIL_WAIT after the stop if no such block comes.
TAIL_WAIT = 0.5


class AudioUnavailable(Exception):
    """No usable input device; the message says why and what to do."""


class Capture(Protocol):
    """One recording: PCM chunks as they come, until stopped and drained."""

    sample_rate: int

    def read(self, timeout: float) -> bytes | None:
        """The next chunk; b"" on timeout; None once stopped and drained."""
        ...

    def stop(self) -> None: ...

    @property
    def duration(self) -> float: ...


class AudioRecorder(Protocol):
    sample_rate: int

    def begin(self) -> Capture: ...

    def close(self) -> None: ...


class QueueCapture:
    """A capture fed by a producer (the PortAudio callback, or a test)."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._bytes = 0
        self._stopped = False
        self._done = False

    def push(self, data: bytes) -> None:
        if not self._stopped:
            self._bytes += len(data)
            self._queue.put(data)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def read(self, timeout: float) -> bytes | None:
        if self._done:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return b""
        if item is None:
            self._done = True
        return item

    @property
    def duration(self) -> float:
        return self._bytes / (SAMPLE_WIDTH * self.sample_rate)


def parse_device(spec: str | int) -> str | int | None:
    """ "" -> the default input, "3" or 3 -> index 3, anything else -> a name (substring)."""
    if isinstance(spec, int):
        return spec
    spec = spec.strip()
    if not spec:
        return None
    return int(spec) if spec.isdigit() else spec


def import_sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # raised when the PortAudio library itself is missing
        raise AudioUnavailable(
            f"PortAudio is not available ({exc}): install the libportaudio2 package"
        ) from None
    return sounddevice


class SoundDeviceRecorder:
    def __init__(
        self,
        device: str | int = "",
        sample_rate: int = 16000,
        keep_open: bool = True,
        preroll: float = 0.3,
    ) -> None:
        self._sd = import_sounddevice()
        self.device = parse_device(device)
        self.sample_rate = self._pick_rate(sample_rate)
        self.keep_open = keep_open
        self._preroll_bytes = int(preroll * self.sample_rate) * SAMPLE_WIDTH
        self._ring: collections.deque[bytes] = collections.deque()
        self._ring_bytes = 0
        self._lock = threading.Lock()
        self._capture: QueueCapture | None = None
        self._ends_at: float | None = None  # stream time of the key-up, once stopped
        self._last_key_up = 0.0  # blocks recorded before it belong to no later recording
        # Opening and closing the stream (keep_open off: per recording, on two threads).
        self._stream_lock = threading.Lock()
        self._stream: Any = None
        if keep_open:
            self._stream = self._open()

    def _pick_rate(self, wanted: int) -> int:
        try:
            self._sd.check_input_settings(
                device=self.device, channels=1, dtype="int16", samplerate=wanted
            )
            return wanted
        except (ValueError, self._sd.PortAudioError) as exc:
            try:
                info = self._sd.query_devices(self.device, "input")
            except (ValueError, self._sd.PortAudioError) as err:
                raise AudioUnavailable(
                    f"no usable input device {self.device!r}: {err} "
                    "(list them with `whisperd-keys --list-audio-devices`)"
                ) from None
            rate = int(info["default_samplerate"])
            log.info(
                "input device cannot record at %d Hz (%s); recording at %d Hz", wanted, exc, rate
            )
            return rate

    def _open(self) -> Any:
        try:
            stream = self._sd.RawInputStream(
                samplerate=self.sample_rate,
                channels=1,
                dtype="int16",
                device=self.device,
                blocksize=int(self.sample_rate * BLOCK_SECONDS),
                callback=self._callback,
            )
            stream.start()
        except (ValueError, self._sd.PortAudioError) as exc:
            raise AudioUnavailable(f"cannot open the input device {self.device!r}: {exc}") from None
        return stream

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        data = bytes(indata)
        if status:
            log.debug("audio status: %s", status)
        recorded = float(getattr(time_info, "inputBufferAdcTime", 0.0) or 0.0)
        ended = False
        with self._lock:
            capture = self._capture
            if capture is not None:
                if self._ends_at is None or 0.0 < recorded < self._ends_at:
                    capture.push(data)
                    return
                ended = self._end(capture)  # recorded after the key-up (or no clock)
            elif 0.0 < recorded < self._last_key_up:
                return  # late beyond TAIL_WAIT: the last recording's, not the next one's
            self._ring.append(data)
            self._ring_bytes += len(data)
            while self._ring and self._ring_bytes - len(self._ring[0]) >= self._preroll_bytes:
                self._ring_bytes -= len(self._ring.popleft())
        if ended:
            self._after_recording()

    def begin(self) -> Capture:
        capture = QueueCapture(self.sample_rate)
        with self._lock:
            if self._capture is not None:  # the last one still waits for its tail: the
                self._end(self._capture)  # new key press ends it (it must not hang)
            for chunk in self._ring:  # the pre-roll: audio from just before the key
                capture.push(chunk)
            self._ring.clear()
            self._ring_bytes = 0
            self._capture = capture
        with self._stream_lock:
            if self._stream is None:
                self._stream = self._open()
        return _StoppingCapture(capture, self)

    def _stopping(self, capture: QueueCapture) -> None:
        """The key went up: the capture ends with the audio recorded until now."""
        key_up = self._stream_time()
        with self._lock:
            if self._capture is not capture or self._ends_at is not None:
                return  # ended, or ending already
            if key_up is None:  # no clock to tell what was recorded before the key-up
                ended = self._end(capture)
            else:
                self._ends_at, ended = key_up, False
                self._last_key_up = key_up
        if ended:
            self._after_recording()
            return
        timer = threading.Timer(TAIL_WAIT, self._time_out, (capture,))
        timer.daemon = True
        timer.start()

    def _time_out(self, capture: QueueCapture) -> None:
        """No block came after the key-up (a stalled or closed stream): end anyway."""
        with self._lock:
            ended = self._capture is capture and self._end(capture)
        if ended:
            self._after_recording()

    def _stream_time(self) -> float | None:
        try:
            now = float(getattr(self._stream, "time", 0.0) or 0.0)
        except (self._sd.PortAudioError, TypeError, ValueError):
            return None
        return now if now > 0.0 else None

    def _end(self, capture: QueueCapture) -> bool:
        """With the lock held: no more audio for ``capture``."""
        capture.stop()
        self._capture, self._ends_at = None, None
        return True

    def _after_recording(self) -> None:
        if not self.keep_open and self._stream is not None:
            # Closing a PortAudio stream can take a while; never on the caller's thread,
            # which is the loop that passes grabbed keys on.
            threading.Thread(target=self._close_idle_stream, daemon=True).start()

    def _close_idle_stream(self) -> None:
        """After a recording (keep_open off), unless the next one already uses the stream:
        closing it then left that recording without audio."""
        with self._stream_lock:
            with self._lock:
                if self._capture is not None:
                    return
            self._close_stream()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.stop()
            stream.close()
        except self._sd.PortAudioError as exc:
            log.warning("closing the input stream failed: %s", exc)

    def close(self) -> None:
        with self._stream_lock:
            self._close_stream()


class _StoppingCapture:
    """Wraps a capture so that stopping it also tells the recorder."""

    def __init__(self, capture: QueueCapture, recorder: SoundDeviceRecorder) -> None:
        self._capture = capture
        self._recorder = recorder
        self.sample_rate = capture.sample_rate

    def read(self, timeout: float) -> bytes | None:
        return self._capture.read(timeout)

    def stop(self) -> None:
        self._recorder._stopping(self._capture)

    @property
    def duration(self) -> float:
        return self._capture.duration


def list_input_devices() -> list[str]:
    sd = import_sounddevice()
    lines = []
    default_in = sd.default.device[0] if isinstance(sd.default.device, list | tuple) else None
    for index, info in enumerate(sd.query_devices()):
        if info["max_input_channels"] > 0:
            mark = "*" if index == default_in else " "
            lines.append(
                f"{mark}{index:3d}  {info['name']}  ({int(info['default_samplerate'])} Hz)"
            )
    return lines


class ReopeningRecorder:
    """Opens the microphone lazily, and again after a failure.

    At the start of a desktop session the sound server may not be up yet, and a USB
    microphone may be plugged in later: a missing microphone must not stop the service,
    only the recordings that cannot be made (each one is logged).
    """

    def __init__(self, factory: Callable[[], AudioRecorder], sample_rate: int = 16000) -> None:
        self._factory = factory
        self._inner: AudioRecorder | None = None
        self._failed = False
        self.sample_rate = sample_rate
        # Sessions begin on their own threads: two must never both open the microphone
        # (one stream leaked, recording on), nor one reinitialise PortAudio under the other.
        self._opening = threading.Lock()
        try:
            self._ensure()
        except AudioUnavailable as exc:
            log.warning("%s; trying again at the next recording", exc)

    def _ensure(self) -> AudioRecorder:
        if self._inner is None:
            if self._failed:
                _reinitialize_portaudio()  # PortAudio lists devices only when initialised
            try:
                self._inner = self._factory()
            except AudioUnavailable:
                self._failed = True
                raise
            self._failed = False
            self.sample_rate = self._inner.sample_rate
        return self._inner

    def begin(self) -> Capture:
        with self._opening:
            inner = self._ensure()
        return inner.begin()

    def close(self) -> None:
        with self._opening:
            if self._inner is not None:
                self._inner.close()
                self._inner = None


def _reinitialize_portaudio() -> None:
    try:
        sd = import_sounddevice()
    except AudioUnavailable:
        return
    terminate, initialize = getattr(sd, "_terminate", None), getattr(sd, "_initialize", None)
    if callable(terminate) and callable(initialize):
        try:
            terminate()
            initialize()
        except (OSError, sd.PortAudioError) as exc:
            log.debug("re-initialising PortAudio failed: %s", exc)
