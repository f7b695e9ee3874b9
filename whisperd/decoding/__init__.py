"""Decoding untrusted audio files away from the daemon (docs/robustness.md).

FFmpeg's demuxers and decoders run in a short-lived child process (worker.py) with memory,
CPU-time, file and core-dump limits, a format, codec and protocol whitelist, and a cap on
the decoded length; sandbox.py starts it, feeds it the file over a pipe and turns any
crash, limit or timeout into a typed error for that one request.
"""
