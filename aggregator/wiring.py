"""The composition root's wiring: which subscriber handles which fact (aggregator.bus), and
which due kinds and queues the scheduler runs (aggregator.due). Only the composition root
(`create_app`, the worker) calls it; it is the one module allowed to import every area."""
from __future__ import annotations

_wired = False


def wire() -> None:
    """Subscribe every handler and register every due kind and queue, once per process."""
    global _wired
    if _wired:
        return
    _wired = True
