"""The Wyoming front (Home Assistant, Rhasspy): docs/wyoming.md.

``make_front`` builds it from the daemon's Scheduler, its idle accounting and the
configuration; the lifecycle hands it the ``wyoming`` socket. The ``wyoming`` package
(the protocol's reference implementation) gives the events and writes them; reading is
bounded here (events.py says why).
"""

from whisperd.fronts.wyoming.server import WyomingFront, make_front

__all__ = ["WyomingFront", "make_front"]
