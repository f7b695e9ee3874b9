"""A remote engine: the daemon's audio transcribed by a bigger server (docs/remote.md).

- ``target``: ``daemon.remote_url`` parsed and checked (imported by the configuration).
- ``common``: the typed failure ``RemoteUnavailable``, the answer bound, the token, the
  audio sent (16 kHz 16-bit mono) and the result built from an answer.
- ``openai``: OpenAI-compatible servers (``POST /v1/audio/transcriptions``), on aiohttp.
- ``wyoming``: Wyoming servers, on the ``wyoming`` package, audio streamed as it comes.

The daemon's side (which jobs go where, the fallback) is whisperd/daemon/remote.py.
"""
