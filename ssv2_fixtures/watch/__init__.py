"""In-training watch: ``watch(loader)`` measures the real run's data side while it trains.

    from ssv2_fixtures.watch import watch
    w = watch(loader, log="watch.jsonl")
    for step, batch in enumerate(w):
        train_step(batch)
    print(w.summary())

See :mod:`.core` (the loop), :mod:`.findings` (kinds, thresholds, remedies), :mod:`.log` (the JSON
lines) and :mod:`.report` (render a log; compare it with a stress run).
"""
from __future__ import annotations

from .core import Watch, watch
from .findings import WATCH_KINDS, Finding
from .log import LogError, read_log

__all__ = ["Finding", "LogError", "WATCH_KINDS", "Watch", "read_log", "watch"]
