"""ssv2-stress: find the DataLoader settings a machine can sustain for decord-decoded SSv2 video.

Public API (imported lazily, so that loading the pytest plugin does not import torch)::

    from ssv2_fixtures import SSv2Clips, LoaderConfig, make_loader, normalize   # the loader
    from ssv2_fixtures import load_index, build_synthetic, ensure_synthetic      # the data layer
    from ssv2_fixtures import Pipeline                                           # a user's own pipeline
    from ssv2_fixtures import run_config, RunRequest, RunResult, Watchdog, Sandbox  # the isolated runner
    from ssv2_fixtures import run_distributed, Launch                            # ranks under torchrun
    from ssv2_fixtures import watch                                              # inside real training
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type checkers see the names; at run time they load on first use
    from .data.annotations import AnnotationError, MissingVideosError, SSv2Index, discover, load_index
    from .data.clips import ClipDecodeError, SSv2Clips, normalize
    from .data.factory import Pipeline
    from .data.loader import LoaderConfig, make_loader
    from .data.synth import SynthSpec, build_synthetic, ensure_synthetic
    from .run.faults import FaultSpec
    from .run.launch import Launch
    from .run.request import RunRequest
    from .run.runner import RunResult, Watchdog, dataset_spec, run_config, run_distributed
    from .run.sandbox import Sandbox
    from .watch import watch

_EXPORTS = {
    "SSv2Clips": "data.clips",
    "ClipDecodeError": "data.clips",
    "normalize": "data.clips",
    "LoaderConfig": "data.loader",
    "make_loader": "data.loader",
    "Pipeline": "data.factory",
    "SSv2Index": "data.annotations",
    "load_index": "data.annotations",
    "discover": "data.annotations",
    "AnnotationError": "data.annotations",
    "MissingVideosError": "data.annotations",
    "SynthSpec": "data.synth",
    "build_synthetic": "data.synth",
    "ensure_synthetic": "data.synth",
    "run_config": "run.runner",
    "RunRequest": "run.request",
    "RunResult": "run.runner",
    "Watchdog": "run.runner",
    "dataset_spec": "run.runner",
    "run_distributed": "run.runner",
    "Launch": "run.launch",
    "Sandbox": "run.sandbox",
    "FaultSpec": "run.faults",
    "watch": "watch",
}

__all__ = [
    "AnnotationError",
    "ClipDecodeError",
    "FaultSpec",
    "Launch",
    "LoaderConfig",
    "MissingVideosError",
    "Pipeline",
    "RunRequest",
    "RunResult",
    "SSv2Clips",
    "SSv2Index",
    "Sandbox",
    "SynthSpec",
    "Watchdog",
    "build_synthetic",
    "dataset_spec",
    "discover",
    "ensure_synthetic",
    "load_index",
    "make_loader",
    "normalize",
    "run_config",
    "run_distributed",
    "watch",
]
assert sorted(__all__) == sorted(_EXPORTS)  # one list for linters and type checkers, checked against the table


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'ssv2_fixtures' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{mod}", __name__), name)
