"""The daemon, one module per part (docs/architecture.md walks a request through them):

- listener:   the listening sockets (activation or our own), peer credentials, sd_notify
- lifecycle:  accept, connections, the fronts, the idle timer, signals, shutdown (``Daemon``)
- connection: one client's frame loop and dispatch
- scheduler:  jobs, the queue, the worker thread, load and unload
- pipeline:   the worker side of a request (decode, draft, pack, transcribe, merge)
- streaming:  the streaming policy (windows and drafts) as a pure state machine
"""
