"""The errors a decode can end in; each message is meant for the user."""

from __future__ import annotations


class BadAudio(Exception):
    """Audio that cannot be decoded (corrupt, refused format, decoder crash or limit)."""

    code = "bad_audio"


class AudioTooLarge(BadAudio):
    """Audio longer than the daemon accepts, found from its header or while decoding."""

    code = "audio_too_large"
