"""whisperd-keys' control socket: ``whisperctl dictate`` and ``whisperctl status --follow``.

protocol.py is the message contract (docs: /work/notes/control-protocol.md, docs/keys.md);
server.py is the whisperd-keys side; client.py the whisperctl side (standard library only).
"""
