"""ssv2-stress: find the DataLoader settings a machine can sustain for decord-decoded SSv2 video.

Public API (imported lazily, so that loading the pytest plugin does not import torch)::

    from ssv2_fixtures import SSv2Clips, LoaderConfig, make_loader, normalize   # the loader
    from ssv2_fixtures import load_index, build_synthetic, ensure_synthetic      # the data layer
    from ssv2_fixtures import run_config, RunResult, Watchdog, Sandbox           # the isolated runner
    from ssv2_fixtures import run_distributed, Launch                            # ranks under torchrun
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SSv2Clips": "data.clips", "ClipDecodeError": "data.clips", "normalize": "data.clips",
    "LoaderConfig": "data.loader", "make_loader": "data.loader",
    "SSv2Index": "data.annotations", "load_index": "data.annotations", "discover": "data.annotations",
    "AnnotationError": "data.annotations", "MissingVideosError": "data.annotations",
    "SynthSpec": "data.synth", "build_synthetic": "data.synth", "ensure_synthetic": "data.synth",
    "run_config": "run.runner", "RunResult": "run.runner", "Watchdog": "run.runner", "dataset_spec": "run.runner",
    "run_distributed": "run.runner", "Launch": "run.launch",
    "Sandbox": "run.sandbox", "FaultSpec": "run.faults",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'ssv2_fixtures' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{mod}", __name__), name)
