"""The decoder process: one untrusted audio file in, 16 kHz mono s16le samples out.

Run by sandbox.py as ``python worker.py`` (by path, so it imports only the standard library
and PyAV: no numpy, no whisperd). It confines itself before reading a byte of the file,
decodes exactly one file and exits. Whatever FFmpeg does with a hostile file — crash, loop,
allocate without end — happens here, where the kernel's limits stop it and the daemon only
sees this process die.

Wire format. In: an 8-byte little-endian length, a JSON header (``Job``), then the file.
Out: records of one kind byte, a 4-byte little-endian length and a payload: ``A`` samples,
``D`` done (JSON facts about the stream, no content), ``E`` error (JSON code and message).
"""

from __future__ import annotations

import ctypes
import importlib
import io
import json
import os
import pkgutil
import resource
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import av
    import av.audio.frame
    import av.container

SAMPLE_RATE = 16000
SAMPLE_BYTES = 2  # s16le out: what faster-whisper's own decoder produces, half of float32
MIN_RATE, MAX_RATE = 8000, 192000  # the protocol's PCM range (whisperd/protocol.py)
MAX_CHANNELS = 8

# FFmpeg demuxer names: plain audio files and the containers phones and browsers record
# to. Left out on purpose: concat/ffconcat, hls, the image/playlist/subtitle demuxers and
# everything else that can name another file or URL.
FORMATS = ("wav", "flac", "mp3", "ogg", "matroska", "webm", "mov", "mp4", "m4a", "aac", "aiff")
# Decoder names. A container may carry any codec; only these get to see the bytes.
CODECS = frozenset(
    {
        "pcm_u8",
        "pcm_s16le",
        "pcm_s24le",
        "pcm_s32le",
        "pcm_f32le",
        "pcm_f64le",
        "pcm_s16be",
        "pcm_s24be",
        "pcm_s32be",
        "pcm_f32be",
        "pcm_mulaw",
        "pcm_alaw",
        "flac",
        "mp3",
        "mp3float",
        "vorbis",
        "libvorbis",
        "opus",
        "libopus",
        "aac",
        "alac",
    }
)
# No protocol at all: the file arrives through PyAV's own I/O, so any protocol a demuxer
# asks for (file, pipe, http, subfile, ...) is something it should not open.
NO_PROTOCOL = "none"
CHUNK_SAMPLES = 1 << 17  # per record: 256 KiB
PR_SET_DUMPABLE = 4


@dataclass(frozen=True)
class Job:
    size: int  # bytes of the file that follow the header
    max_samples: int  # decoded length (at 16 kHz) past which decoding stops
    cpu_seconds: int
    memory_bytes: int  # address space allowed on top of what the process already uses


class Refused(Exception):
    """Why the file is not decoded; becomes an ``E`` record."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def bad(reason: str) -> Refused:
    return Refused("bad_audio", f"cannot decode the audio file: {reason}")


def main() -> int:
    out = sys.stdout.buffer
    harden()
    try:
        import av
    except ImportError as exc:  # a broken installation, not a bad file
        send(out, b"E", json.dumps({"code": "unavailable", "message": str(exc)}).encode())
        return 1
    av.logging.set_level(None)  # FFmpeg's messages could quote the file; they go nowhere
    preload(av)
    job = read_job(sys.stdin.buffer)
    if job is None:
        return 0  # the daemon closed the pipe without a job: it no longer needs a spare
    limit(job)
    data = read_exact(sys.stdin.buffer, job.size)
    try:
        facts = decode(data, job.max_samples, lambda chunk: send(out, b"A", chunk))
    except Refused as exc:
        refusal = {"code": exc.code, "message": exc.message, "peak_kib": Status.kib("VmHWM")}
        send(out, b"E", json.dumps(refusal).encode())
        return 0
    except MemoryError:
        message = bad("it needs more memory than the decoder is allowed").message
        send(out, b"E", json.dumps({"code": "bad_audio", "message": message}).encode())
        return 0
    send(out, b"D", json.dumps({**facts, "peak_kib": Status.kib("VmHWM")}).encode())
    return 0


def preload(package: ModuleType) -> None:
    """Import every PyAV module now (25 ms, before a job arrives): PyAV imports some of
    them on first use, and once the job's limits are set no file can be opened."""
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        try:
            importlib.import_module(module.name)
        except ImportError:  # an optional part this build lacks: it cannot be used either
            continue


# Where the daemon wants the vanishing working directory made (its runtime directory).
WORKDIR_ENV = "WHISPERD_DECODER_DIR"


def harden() -> None:
    """What holds whatever the file is: no core dump (it would hold the audio), no file
    written, and a working directory that no longer exists, so a relative path opens
    nothing even if a demuxer tried."""
    try:
        # In the directory the daemon names (tempfile then probes no other directory),
        # else in $TMPDIR.
        empty = tempfile.mkdtemp(prefix="whisperd-decode-", dir=os.environ.get(WORKDIR_ENV))
        os.chdir(empty)
        os.rmdir(empty)
    except OSError:  # no writable directory: the root is the next best place
        os.chdir("/")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def limit(job: Job) -> None:
    """Memory and CPU time, set once the file's size is known. At the soft CPU limit the
    kernel sends SIGXCPU (which kills), at the hard one SIGKILL."""
    used = Status.kib("VmSize") * 1024
    cap = used + 2 * job.size + job.memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CPU, (job.cpu_seconds, job.cpu_seconds + 1))
    # Every descriptor this process will ever need is open now: none can be added.
    highest = fill_descriptor_gaps()
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, highest + 1))


def fill_descriptor_gaps() -> int:
    """The highest open descriptor, after /dev/null took every free number below it (a
    new descriptor gets the lowest free number, so under the limit none is left)."""
    listed = [int(fd) for fd in os.listdir("/proc/self/fd")]  # includes the listing's own
    highest = max(fd for fd in listed if is_open(fd))
    while (filler := os.open(os.devnull, os.O_RDONLY)) < highest:
        pass
    os.close(filler)
    return highest


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


class Status:
    """/proc/self/status, opened once: read again when no file can be opened any more."""

    fd: int | None = None

    @classmethod
    def kib(cls, field: str) -> int:
        """VmSize (address space) or VmHWM (peak resident), in KiB. The peak is also in
        getrusage, but that one starts from the daemon's after vfork and exec."""
        if cls.fd is None:
            cls.fd = os.open("/proc/self/status", os.O_RDONLY)
        text = os.pread(cls.fd, 1 << 16, 0).decode("ascii", "replace")
        for line in text.splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0


def read_job(stream: BinaryIO) -> Job | None:
    head = stream.read(8)
    if len(head) < 8:
        return None
    (length,) = struct.unpack("<Q", head)
    fields: dict[str, Any] = json.loads(read_exact(stream, length))
    return Job(**fields)


def read_exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise SystemExit(1)  # the daemon went away mid-job
    return data


def send(out: BinaryIO, kind: bytes, payload: bytes) -> None:
    out.write(kind + struct.pack("<I", len(payload)) + payload)
    out.flush()


def decode(data: bytes, max_samples: int, emit: Callable[[bytes], None]) -> dict[str, Any]:
    """Decode ``data``, handing 16 kHz mono s16le chunks to ``emit``; stop with
    ``audio_too_large`` as soon as the header or the output passes ``max_samples``."""
    import av

    options = {
        "format_whitelist": ",".join(FORMATS),
        "protocol_whitelist": NO_PROTOCOL,
        "codec_whitelist": ",".join(sorted(CODECS)),
    }
    try:
        container = av.open(io.BytesIO(data), "r", container_options=options)
    except (av.error.FFmpegError, ValueError):
        # FFmpeg's own words ("Invalid data found", "Invalid argument") add nothing here.
        raise bad(f"it is corrupt or not an accepted format ({', '.join(FORMATS)})") from None
    with container:
        stream = check_stream(container, max_samples)
        stream.codec_context.thread_count = 1
        written = 0
        for chunk in resampled(decoded_frames(container, stream)):
            written += len(chunk) // SAMPLE_BYTES
            if written > max_samples:
                raise too_large(f"decoding passed {max_samples / SAMPLE_RATE:.0f} s")
            emit(chunk)
        return {
            "format": container.format.name,
            "codec": stream.codec_context.name,
            "rate": stream.sample_rate,
            "channels": stream.channels,
            "samples": written,
        }


def too_large(detail: str) -> Refused:
    return Refused("audio_too_large", f"the audio is too long: {detail}")


def check_stream(container: av.container.InputContainer, max_samples: int) -> Any:
    """The first audio stream, if its codec, rate, channels and the length its header
    claims are acceptable — before a sample is decoded."""
    if not container.streams.audio:
        raise bad("the file has no audio stream")
    stream = container.streams.audio[0]
    codec = stream.codec_context.name
    if codec not in CODECS:
        raise bad(f"the audio codec {codec!r} is not accepted")
    check_rate(stream.sample_rate)
    if not 1 <= stream.channels <= MAX_CHANNELS:
        raise bad(f"{stream.channels} channels is outside 1..{MAX_CHANNELS}")
    claimed = header_seconds(container, stream)
    if claimed is not None and claimed * SAMPLE_RATE > max_samples:
        raise too_large(f"its header says {claimed:.0f} s")
    return stream


def check_rate(rate: int) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise bad(f"sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")


def header_seconds(container: av.container.InputContainer, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def decoded_frames(
    container: av.container.InputContainer, stream: Any
) -> Iterator[av.audio.frame.AudioFrame]:
    """Every frame that decodes; a corrupt packet is skipped, as faster-whisper does."""
    import av

    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            yield from frames
    except av.error.FFmpegError:
        raise bad("corrupt data") from None


def resampled(frames: Iterator[av.audio.frame.AudioFrame]) -> Iterator[bytes]:
    """16 kHz mono s16le, in chunks. A stream may change its layout or rate mid-way (one
    corrupt MP3 frame switching stereo to mono crashed FFmpeg's resampler and FIFO in the
    daemon): each change gets a fresh resampler."""
    import av

    resampler: av.AudioResampler | None = None
    shape: tuple[str, str, int] | None = None
    pending: list[bytes] = []
    size = 0
    for frame in frames:
        check_rate(frame.sample_rate)
        if frame.layout.nb_channels > MAX_CHANNELS:
            raise bad("a frame has more channels than accepted")
        frame_shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if frame_shape != shape or resampler is None:
            if resampler is not None:
                for part in pcm(resampler.resample(None)):
                    pending.append(part)
                    size += len(part)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            shape = frame_shape
        frame.pts = None
        for part in pcm(resampler.resample(frame)):
            pending.append(part)
            size += len(part)
        if size >= CHUNK_SAMPLES * SAMPLE_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    if resampler is not None:
        pending.extend(pcm(resampler.resample(None)))
    if pending:
        yield b"".join(pending)


def pcm(frames: list[av.audio.frame.AudioFrame]) -> Iterator[bytes]:
    for frame in frames:
        yield bytes(frame.planes[0])[: frame.samples * SAMPLE_BYTES]


if __name__ == "__main__":
    sys.exit(main())
