"""The pure parts of the HTTP front: response formats, stream events, field checks, the
Host/Origin rules."""

from __future__ import annotations

import json

import pytest

from whisperd.fronts.http import formats, options
from whisperd.fronts.http.errors import ApiError
from whisperd.fronts.http.guard import allowed_origin, loopback_host
from whisperd.fronts.http.upload import Form

RESULT = {
    "text": "Hello there. General Kenobi.",
    "segments": [
        {"start": 0.0, "end": 1.5, "text": "Hello there."},
        {"start": 3661.25, "end": 3662.0, "text": "General --> Kenobi.\n\nSecond line"},
        {"start": 3663.0, "end": 3664.0, "text": "  "},
    ],
    "language": "en",
    "duration": 3664.2,
}


def test_srt_numbers_cues_and_keeps_them_intact() -> None:
    body, kind = formats.render(RESULT, "srt")
    assert kind == "application/x-subrip"
    assert body == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n"
        "2\n01:01:01,250 --> 01:01:02,000\nGeneral -> Kenobi.\nSecond line\n"
    )


def test_vtt() -> None:
    body, kind = formats.render(RESULT, "vtt")
    assert kind == "text/vtt"
    assert body.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n")
    assert "01:01:01.250 --> 01:01:02.000" in body


def test_json_text_and_verbose() -> None:
    as_json = json.loads(formats.render(RESULT, "json")[0])
    assert as_json == {"text": RESULT["text"], "usage": {"type": "duration", "seconds": 3665}}
    assert formats.render(RESULT, "text")[0] == RESULT["text"] + "\n"
    verbose = json.loads(formats.render(RESULT, "verbose_json")[0])
    assert verbose["segments"][1] == {
        "id": 1,
        "seek": 366125,
        "start": 3661.25,
        "end": 3662.0,
        "text": RESULT["segments"][1]["text"],  # type: ignore[index]
    }
    assert verbose["language"] == "en" and verbose["duration"] == 3664.2


def test_stream_events() -> None:
    assert formats.delta_event("Hello", True) == (
        b'data: {"type": "transcript.text.delta", "delta": "Hello"}\n\n'
    )
    assert formats.delta_event(" there ", False) == (
        b'data: {"type": "transcript.text.delta", "delta": " there"}\n\n'
    )
    assert formats.delta_event("   ", False) is None
    assert formats.done_event(RESULT) == (
        b'data: {"type": "transcript.text.done", "text": "Hello there. General Kenobi."}\n\n'
    )


def form(**fields: str) -> Form:
    return Form(fields=dict(fields), has_file=True)


def test_fields_become_options() -> None:
    parsed = options.parse(form(language="DE", prompt="Whisperd,\n Debian", stream="true"))
    assert parsed.options == {"language": "de", "initial_prompt": "Whisperd, Debian"}
    assert parsed.stream and parsed.response_format == "json"
    assert options.parse(form(language="auto")).options == {}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"language": "xx"}, "language"),
        ({"prompt": "a\x00b"}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"temperature": "nan"}, "temperature"),
        ({"temperature": "-0.1"}, "temperature"),
        ({"model": "m" * 300}, "model"),
        ({"response_format": "verbose_json", "stream": "true"}, "stream"),
    ],
)
def test_bad_fields(fields: dict[str, str], param: str) -> None:
    with pytest.raises(ApiError) as caught:
        options.parse(form(**fields))
    assert caught.value.status == 400 and caught.value.param == param


def test_words_are_the_segments_words_in_openai_shape() -> None:
    timed = {
        **RESULT,
        "segments": [
            {
                "start": 0.0,
                "end": 1.5,
                "text": "Hello there.",
                "words": [
                    {"word": "Hello", "start": 0.0, "end": 0.7},
                    {"word": "there.", "start": 0.7, "end": 1.5},
                ],
            },
            {"start": 1.5, "end": 2.0, "text": " ", "words": []},
            {"start": 2.0, "end": 2.1, "text": ""},  # no words, no text: nothing missing
        ],
    }
    verbose = json.loads(formats.render(timed, "verbose_json", ("word",))[0])
    assert verbose["words"] == [
        {"word": "Hello", "start": 0.0, "end": 0.7},
        {"word": "there.", "start": 0.7, "end": 1.5},
    ]
    assert "words" not in json.loads(formats.render(timed, "verbose_json", ("segment",))[0])
    assert "words" not in json.loads(formats.render(timed, "verbose_json")[0])["segments"][0]


def test_words_asked_of_an_engine_without_them_is_not_an_empty_list() -> None:
    with pytest.raises(formats.NoWords):
        formats.render(RESULT, "verbose_json", ("word",))


def test_word_granularity_asks_the_engine_for_word_timestamps() -> None:
    fields = {"response_format": "verbose_json"}
    word = Form(fields=fields, repeated={"timestamp_granularities[]": ["word"]}, has_file=True)
    assert options.parse(word).options["word_timestamps"] is True
    segment = Form(
        fields=fields, repeated={"timestamp_granularities[]": ["segment"]}, has_file=True
    )
    assert "word_timestamps" not in options.parse(segment).options


def test_granularities_need_verbose_json() -> None:
    segment = Form(fields={}, repeated={"timestamp_granularities[]": ["segment"]}, has_file=True)
    with pytest.raises(ApiError):
        options.parse(segment)
    segment.fields["response_format"] = "verbose_json"
    assert options.parse(segment).granularities == ("segment",)


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("localhost:8765", True),
        ("127.0.0.1:8765", True),
        ("127.1.2.3", True),
        ("[::1]:8765", True),
        ("LOCALHOST", True),
        ("evil.example:8765", False),
        ("127.0.0.1.evil.example", False),
        ("192.168.1.2:8765", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, ok: bool) -> None:
    assert loopback_host(host) is ok


def test_origins() -> None:
    assert allowed_origin("http://localhost:3000")
    assert allowed_origin("chrome-extension://abcdef")
    assert not allowed_origin("https://evil.example")
    assert not allowed_origin("null")
