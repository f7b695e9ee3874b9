"""whisperd/audio.py: raw PCM conversion, resampling to 16 kHz and file decoding."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from tests.conftest import shared_audio
from whisperd.audio import (
    LEVEL_FRAME,
    SAMPLE_RATE,
    BadAudio,
    Levels,
    PcmStreamDecoder,
    decode_file,
    decode_pcm,
    resample,
    rms,
)
from whisperd.protocol import PcmFormat


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def s16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


def wav_bytes(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(s16(samples))
    return buffer.getvalue()


def test_s16le_mono_16k_is_scaled_not_resampled() -> None:
    data = np.array([0, 16384, -16384, 32767, -32768], dtype="<i2").tobytes()
    out = decode_pcm(data, PcmFormat("s16le", 16000, 1))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0, 0.5, -0.5, 32767 / 32768, -1.0])


def test_f32le_mono_16k_is_passed_through_and_clipped() -> None:
    values = np.array([0.0, 0.25, -0.75, 2.0, -3.0, np.nan], dtype="<f4")
    out = decode_pcm(values.tobytes(), PcmFormat("f32le", 16000, 1))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.25, -0.75, 1.0, -1.0, 0.0])


def test_stereo_mixdown_s16le() -> None:
    frames = np.array([[16384, 0], [0, -16384], [32767, 32767]], dtype="<i2")
    out = decode_pcm(frames.tobytes(), PcmFormat("s16le", 16000, 2))
    np.testing.assert_allclose(out, [0.25, -0.25, 32767 / 32768], atol=1e-6)


def test_multichannel_mixdown_f32le() -> None:
    frames = np.tile(np.array([1.0, 0.0, -0.5, 0.5, 0.0, 0.0], dtype="<f4"), (100, 1))
    out = decode_pcm(frames.tobytes(), PcmFormat("f32le", 16000, 6))
    assert out.shape == (100,)
    np.testing.assert_allclose(out, np.full(100, 1.0 / 6), atol=1e-6)


def test_opposite_channels_cancel() -> None:
    left = sine(440, 16000, 0.5)
    frames = np.stack([left, -left], axis=1)
    out = decode_pcm(frames.astype("<f4").tobytes(), PcmFormat("f32le", 16000, 2))
    assert rms(out) < 1e-6


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 96000, 192000])
@pytest.mark.parametrize("encoding", ["s16le", "f32le"])
def test_resampled_to_16k_with_right_length_and_pitch(rate: int, encoding: str) -> None:
    seconds = 2.0
    tone = sine(1000, rate, seconds)
    data = s16(tone) if encoding == "s16le" else tone.astype("<f4").tobytes()
    out = decode_pcm(data, PcmFormat(encoding, rate, 1))
    assert out.dtype == np.float32
    assert abs(out.size - seconds * SAMPLE_RATE) <= 0.01 * seconds * SAMPLE_RATE
    assert abs(dominant_frequency(out, SAMPLE_RATE) - 1000) < 5
    # the level survives resampling (no gain change, no clipping)
    assert abs(rms(out[1000:-1000]) - 0.5 / np.sqrt(2)) < 0.02


def test_stereo_44k_resampled_and_mixed() -> None:
    tone = sine(300, 44100, 1.0)
    frames = np.stack([tone, tone], axis=1)
    out = decode_pcm(s16(frames.reshape(-1)), PcmFormat("s16le", 44100, 2))
    assert abs(out.size - 16000) <= 160
    assert abs(dominant_frequency(out, SAMPLE_RATE) - 300) < 5


def test_resample_empty_and_identity() -> None:
    assert resample(np.zeros(0, dtype=np.float32), 44100).size == 0
    same = sine(100, 16000, 0.1)
    np.testing.assert_array_equal(resample(same, 16000), same)


def test_empty_pcm_is_empty_audio() -> None:
    assert decode_pcm(b"", PcmFormat("s16le", 48000, 2)).size == 0


@pytest.mark.parametrize(
    ("size", "fmt"),
    [
        (1, PcmFormat("s16le", 16000, 1)),
        (3, PcmFormat("s16le", 16000, 1)),
        (6, PcmFormat("s16le", 16000, 2)),
        (2, PcmFormat("f32le", 16000, 1)),
        (12, PcmFormat("f32le", 16000, 2)),
        (4001, PcmFormat("s16le", 44100, 1)),
    ],
)
def test_partial_frame_is_bad_audio(size: int, fmt: PcmFormat) -> None:
    with pytest.raises(BadAudio, match="whole number"):
        decode_pcm(b"\x00" * size, fmt)


def test_wav_file_decoded_and_resampled() -> None:
    out = decode_file(wav_bytes(sine(500, 44100, 1.5), 44100))
    assert abs(out.size - 1.5 * SAMPLE_RATE) <= 0.01 * 1.5 * SAMPLE_RATE
    assert abs(dominant_frequency(out, SAMPLE_RATE) - 500) < 5


def test_stereo_wav_file_mixed_down() -> None:
    tone = sine(700, 8000, 1.0)
    frames = np.stack([tone, tone], axis=1).reshape(-1)
    out = decode_file(wav_bytes(frames, 8000, channels=2))
    assert out.ndim == 1
    assert abs(out.size - SAMPLE_RATE) <= 160
    assert abs(dominant_frequency(out, SAMPLE_RATE) - 700) < 5


def test_flac_file() -> None:
    out = decode_file(shared_audio("jfk.flac").read_bytes())
    assert out.dtype == np.float32
    assert abs(out.size / SAMPLE_RATE - 11.0) < 0.1


def test_empty_file_is_bad_audio() -> None:
    with pytest.raises(BadAudio, match="empty"):
        decode_file(b"")


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes_are_bad_audio(seed: int) -> None:
    data = np.random.default_rng(seed).bytes(100 + seed * 997)
    with pytest.raises(BadAudio):
        decode_file(data)


@pytest.mark.parametrize(
    "data",
    [
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
        b"fLaC",
        b"OggS" + bytes(30),
        b"ID3" + bytes(20),
        b"\x00",
        b"hello, this is not audio",
    ],
)
def test_corrupt_headers_are_bad_audio(data: bytes) -> None:
    with pytest.raises(BadAudio):
        decode_file(data)


def test_mutated_or_truncated_flac_never_raises_anything_but_bad_audio() -> None:
    original = shared_audio("jfk.flac").read_bytes()
    rng = np.random.default_rng(7)
    for i in range(30):
        data = bytearray(original)
        if i % 2:
            for position in rng.integers(0, len(data), 40):
                data[position] = int(rng.integers(0, 256))
        else:
            data = data[: int(rng.integers(1, len(data)))]
        try:
            out = decode_file(bytes(data))
        except BadAudio:
            continue
        assert out.dtype == np.float32 and out.ndim == 1


def test_rms() -> None:
    assert rms(np.zeros(0, dtype=np.float32)) == 0.0
    assert rms(np.full(10, 0.5, dtype=np.float32)) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "fmt",
    [
        PcmFormat("s16le", 16000, 1),
        PcmFormat("s16le", 44100, 1),
        PcmFormat("f32le", 48000, 2),
        PcmFormat("s16le", 22050, 1),
        PcmFormat("s16le", 8000, 2),
    ],
)
def test_stream_decoder_split_anywhere_equals_whole(fmt: PcmFormat) -> None:
    from whisperd.audio import PcmStreamDecoder

    tone = np.repeat(sine(440, fmt.sample_rate, 3.0), fmt.channels)
    data = s16(tone) if fmt.encoding == "s16le" else tone.astype("<f4").tobytes()
    whole = decode_pcm(data, fmt)
    decoder = PcmStreamDecoder(fmt)
    rng = np.random.default_rng(fmt.sample_rate)
    position = 0
    while position < len(data):  # chunks split inside samples and frames
        size = int(rng.integers(1, 20000))
        decoder.feed(data[position : position + size])
        position += size
    streamed = decoder.finish()
    assert streamed.size == whole.size
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


def test_stream_decoder_left_over_bytes_are_bad_audio() -> None:
    from whisperd.audio import PcmStreamDecoder

    decoder = PcmStreamDecoder(PcmFormat("s16le", 44100, 2))
    decoder.feed(b"\x00" * 4001)
    decoder.feed(b"\x00" * 2)
    with pytest.raises(BadAudio, match="whole number"):
        decoder.finish()


# --- pause detection (Levels) ---------------------------------------------------------------


def speech_then_pause(speech: float, pause: float, noise: float = 0.001) -> np.ndarray:
    rng = np.random.default_rng(1)
    voiced = sine(220, SAMPLE_RATE, speech, amplitude=0.3)
    quiet = np.zeros(int(pause * SAMPLE_RATE), dtype=np.float32)
    audio = np.concatenate([voiced, quiet]).astype(np.float32)
    return audio + rng.normal(0, noise, audio.size).astype(np.float32)


def test_levels_find_where_speech_stopped_in_any_chunking() -> None:
    audio = speech_then_pause(1.0, 0.5)
    for chunk in (7, 320, 480, 4801):
        levels = Levels()
        for start in range(0, audio.size, chunk):
            levels.add(audio[start : start + chunk])
        end = levels.speech_end(0, floor=0.0005)
        assert end is not None
        assert abs(end - SAMPLE_RATE) <= LEVEL_FRAME  # within one 30 ms frame of 1.0 s


def test_a_soft_word_after_a_loud_one_is_still_speech() -> None:
    loud = sine(220, SAMPLE_RATE, 0.5, amplitude=0.5)
    soft = sine(300, SAMPLE_RATE, 0.3, amplitude=0.1)  # 14 dB under the loud word
    gap = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    levels = Levels()
    levels.add(np.concatenate([loud, gap, soft, gap]).astype(np.float32))
    end = levels.speech_end(0, floor=0.0005)
    assert end is not None and end >= int(1.3 * SAMPLE_RATE) - LEVEL_FRAME


def test_no_speech_after_start_means_none() -> None:
    levels = Levels()
    levels.add(speech_then_pause(0.5, 1.0))
    assert levels.speech_end(SAMPLE_RATE, floor=0.005) is None  # only noise after 1 s
    silent = Levels()
    silent.add(np.zeros(SAMPLE_RATE, dtype=np.float32))
    assert silent.speech_end(0, floor=0.0005) is None


def test_the_stream_decoder_keeps_levels_of_what_it_decoded() -> None:
    audio = speech_then_pause(1.0, 0.5)
    decoder = PcmStreamDecoder(PcmFormat("s16le", 48000, 1))
    decoder.feed(s16(resample48(audio)))
    decoded = decoder.finish()
    assert len(decoder.levels.values) == decoded.size // LEVEL_FRAME
    end = decoder.levels.speech_end(0, floor=0.0005)
    assert end is not None and abs(end - SAMPLE_RATE) <= 2 * LEVEL_FRAME


def resample48(audio: np.ndarray) -> np.ndarray:
    return np.repeat(audio, 3)  # 16 kHz to 48 kHz: good enough for loudness


def test_one_sample_rate_everywhere() -> None:
    """whisperd.engine.samples defines the rate and the sample type; whisperd.audio uses
    them; the decoder process keeps its own copy (it imports only the standard library and
    PyAV) and it must agree."""
    from whisperd import audio
    from whisperd.decoding import worker
    from whisperd.engine import samples

    assert audio.SAMPLE_RATE is samples.SAMPLE_RATE  # the same object: one definition
    assert audio.Samples == samples.Samples
    assert worker.SAMPLE_RATE == samples.SAMPLE_RATE
