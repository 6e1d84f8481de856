"""Training-config TOML for ``-m validate``: a ``[loader]`` table and a ``[target]`` table.

TOML only: a config file is data, never executed. Unknown keys and wrong types are named errors::

    [loader]
    batch_size = 32
    num_workers = 8
    prefetch_factor = 4
    sharing_strategy = "file_system"
    tmpdir = "/scratch/tmp"        # optional: the TMPDIR the training job will use
    pin_memory = true
    persistent_workers = true

    [dataset]                      # optional: your own pipeline (as --dataset-factory/-arg/-path)
    factory = "mypkg.data:build"
    path = ["src"]                 # relative to this file's folder; put first on sys.path
    [dataset.kwargs]
    num_frames = 16

    [target]
    min_videos_per_s = 150
    batches = 200
    max_rss_gb = 24
    max_shm_gb = 8
    max_wait_ms_p95 = 400
    max_first_batch_s = 60
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..data.loader import LoaderConfig
from ..options import dataset_arg_check, factory_name

_LOADER_KEYS: dict[str, tuple[type, ...]] = {
    "batch_size": (int,),
    "num_workers": (int,),
    "prefetch_factor": (int,),
    "sharing_strategy": (str,),
    "tmpdir": (str,),
    "pin_memory": (bool,),
    "persistent_workers": (bool,),
    "shuffle": (bool,),
    "drop_last": (bool,),
    "timeout": (int, float),
    "seed": (int,),
}
# target name → (metric in RunRecord.metrics, unit scale, "min" or "max")
TARGETS: dict[str, tuple[str, float, str]] = {
    "min_videos_per_s": ("videos_per_s", 1.0, "min"),
    "max_rss_gb": ("rss_peak_bytes", 2**30, "max"),
    "max_shm_gb": ("shm_peak_bytes", 2**30, "max"),
    "max_wait_ms_p95": ("wait_ms_p95", 1.0, "max"),
    "max_first_batch_s": ("first_batch_s", 1.0, "max"),
}


class TrainConfigError(ValueError):
    """Names the file, the table and key, and the fix."""


@dataclass(frozen=True)
class TrainConfig:
    path: Path
    loader: LoaderConfig
    tmpdir: str | None
    batches: int | None
    targets: dict[str, float]
    dataset: dict[str, Any] = field(default_factory=dict)  # factory, factory_kwargs, factory_path


def load(path: str | Path) -> TrainConfig:
    p = Path(path)

    def err(where: str, why: str) -> TrainConfigError:
        return TrainConfigError(f"{p}: {where}: {why}")

    try:
        data = tomllib.loads(p.read_bytes().decode("utf-8"))  # TOML is UTF-8 whatever the locale
    except OSError as exc:
        raise TrainConfigError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise TrainConfigError(f"{p}: not valid TOML: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise TrainConfigError(f"{p}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"loader", "target", "dataset"})
    if unknown:
        raise err(f"table(s) {unknown}", "unknown; only [loader], [target] and [dataset] are read")
    loader = data.get("loader")
    if not isinstance(loader, dict):
        raise err("[loader]", "missing: give at least batch_size and num_workers")
    for k, v in loader.items():
        if k not in _LOADER_KEYS:
            raise err(f"[loader] {k}", f"unknown key; known: {', '.join(sorted(_LOADER_KEYS))}")
        types = _LOADER_KEYS[k]
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            raise err(
                f"[loader] {k}", f"expected {' or '.join(t.__name__ for t in types)}, got {type(v).__name__} {v!r}"
            )
    fields = {k: v for k, v in loader.items() if k != "tmpdir"}
    try:
        cfg = LoaderConfig(**fields)
    except ValueError as exc:
        # LoaderConfig says "LoaderConfig.<field>: why": name the TOML key instead.
        m = re.match(r"LoaderConfig\.(\w+): (.*)", str(exc), re.S)
        raise (err(f"[loader] {m[1]}", m[2]) if m else err("[loader]", str(exc))) from None
    target = data.get("target", {})
    if not isinstance(target, dict):
        raise err("[target]", "must be a table")
    targets: dict[str, float] = {}
    batches = None
    for k, v in target.items():
        if k == "batches":
            if not isinstance(v, int) or isinstance(v, bool) or v < 2:
                raise err("[target] batches", f"expected an integer >= 2, got {v!r}")
            batches = v
            continue
        if k not in TARGETS:
            raise err(f"[target] {k}", f"unknown target; known: batches, {', '.join(sorted(TARGETS))}")
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise err(f"[target] {k}", f"expected a number, got {type(v).__name__} {v!r}")
        if not math.isfinite(v) or v < 0:  # TOML has nan/inf; a nan target would fail every run
            raise err(f"[target] {k}", f"expected a finite number >= 0, got {v!r}")
        targets[k] = float(v)
    return TrainConfig(p, cfg, loader.get("tmpdir"), batches, targets, _dataset(p, data.get("dataset"), err))


def _dataset(p: Path, table: Any, err: Any) -> dict[str, Any]:
    """``[dataset]``: the same keys as the dataset spec's ``factory``/``factory_kwargs``/``factory_path``."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise err("[dataset]", "must be a table")
    for k in table:
        if k not in ("factory", "path", "kwargs"):
            raise err(f"[dataset] {k}", "unknown key; known: factory, kwargs, path")
    factory = table.get("factory")
    if not isinstance(factory, str):
        raise err("[dataset] factory", f'expected a string "MODULE:CALLABLE", got {factory!r}')
    try:
        name = factory_name(factory, "[dataset] factory")
    except ValueError as exc:
        raise err("[dataset] factory", str(exc)) from None
    path = table.get("path", [])
    if isinstance(path, str):
        path = [path]
    if not isinstance(path, list) or not all(isinstance(x, str) for x in path):
        raise err("[dataset] path", f"expected a list of folder names, got {path!r}")
    dirs = [(p.parent / x).resolve() for x in path]
    for d in dirs:
        if not d.is_dir():
            raise err("[dataset] path", f"{d} is not a directory (paths are relative to this file's folder)")
    kwargs = table.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise err("[dataset] kwargs", "must be a table of keyword arguments")
    for k in kwargs:
        try:
            dataset_arg_check(k)
        except ValueError as exc:
            raise err(f"[dataset.kwargs] {k}", str(exc)) from None
    return {"factory": name, "factory_kwargs": dict(kwargs), "factory_path": [str(d) for d in dirs]}


def check(targets: dict[str, float], metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Target-vs-achieved rows, one per target.

    ``min_videos_per_s`` is met by the same rule as ``-m tune --target-videos-per-s`` (which writes it into
    the ``train.toml`` it suggests): the rate's 95 % interval lower bound reaches it, when the run has an
    interval; the row then carries ``interval`` and ``judged_on: "interval_lo"``. A run too short for an
    interval is judged on its rate (``judged_on: "rate"``)."""
    rows = []
    for name, wanted in targets.items():
        metric, scale, sense = TARGETS[name]
        raw = metrics.get(metric)
        achieved = None if raw is None else float(raw) / scale
        row: dict[str, Any] = {"target": name, "wanted": wanted, "achieved": achieved}
        judged = achieved
        iv = metrics.get("videos_per_s_interval") if metric == "videos_per_s" else None
        if achieved is not None and iv:
            row["interval"] = [float(iv[0]) / scale, float(iv[1]) / scale]
            row["judged_on"] = "interval_lo"
            judged = row["interval"][0]
        elif metric == "videos_per_s" and achieved is not None:
            row["judged_on"] = "rate"
        row["ok"] = judged is not None and (judged >= wanted if sense == "min" else judged <= wanted)
        rows.append(row)
    return rows
