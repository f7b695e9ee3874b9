"""The daemon's status line (systemd's ``StatusText``), which says whether the model is
in memory, and how whisperd-keys reads it back. Standard library only: whisperd-keys
reads it through ``systemctl --user show``, which asks the manager, never the daemon's
socket (a connection would start or keep the daemon)."""

from __future__ import annotations

NOT_LOADED = "waiting for requests; model not loaded"
LOADING = "loading the model"  # not in memory yet (perhaps again, after an unload)
READY = "model {model} ready on {device}; {served} served"
_READY_START, _READY_MIDDLE = "model ", " ready on "


def idle_text(loaded: bool, model: str, device: str, served: int) -> str:
    """The status of an idle daemon, with its model loaded or not."""
    if not loaded:
        return NOT_LOADED
    return READY.format(model=model, device=device, served=served)


def model_loaded(status: str) -> bool | None:
    """Whether a daemon whose status line is ``status`` has its model loaded; None while
    it transcribes or exits, or says nothing we know."""
    if status in (NOT_LOADED, LOADING):
        return False
    if status.startswith(_READY_START) and _READY_MIDDLE in status:
        return True
    return None
