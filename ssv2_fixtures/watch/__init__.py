"""In-training watch: ``watch(loader)`` measures the real run's data side while it trains.

    from ssv2_fixtures.watch import watch
    w = watch(loader, log="watch.jsonl")
    for step, batch in enumerate(w):
        train_step(batch)
    print(w.summary())

See :mod:`.core` (the facade over :mod:`.steps`, :mod:`.readings` and :mod:`.failure`), :mod:`.findings`
(kinds, thresholds, remedies) and :mod:`.log` (the JSON lines); a log's report (render it; compare it with
a stress run) is :mod:`ssv2_fixtures.report.watch`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .core import Watch, watch
from .findings import WATCH_KINDS, Finding
from .log import LogError, read_log

__all__ = ["Finding", "LogError", "WATCH_KINDS", "Watch", "read_log", "watch"]


class _CallableModule(types.ModuleType):
    """``from ssv2_fixtures import watch`` finds this module, not the function, once anything has
    imported ``ssv2_fixtures.watch`` (the import system binds the submodule on the package): calling
    the module calls :func:`watch`, so the issue's three lines work either way."""

    def __call__(self, *args: Any, **kwargs: Any) -> Watch[Any]:
        return watch(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
