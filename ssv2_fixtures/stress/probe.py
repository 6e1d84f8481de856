"""Machine facts that decide whether a loader config can run: cores, RAM, /dev/shm, TMPDIR, fds, versions;
and the pipeline probe's facts (:func:`pipeline_probe`): what one loading process of *this* dataset
costs, measured from real batches before a session's configs run."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import socket
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from ..data.decoders import decord_provider
from ..run.schema import PipelineProbe

PROBE_BATCH_SIZE = 2
PROBE_BATCHES = 6
"""The pipeline probe: BS=2 (or the smallest batch size in play), W=0, 6 batches (the first is start-up,
the rate is over the other 5): enough to measure bytes per item exactly (they are deterministic per
pipeline) and a single-process rate, short enough for a slow float32 pipeline."""


def pipeline_probe(rec: Mapping[str, Any]) -> PipelineProbe | None:
    """The probe's facts from its run record; ``None`` when the run measured no batch bytes."""
    m = rec.get("metrics") or {}
    ds = rec.get("dataset") or {}
    batches, videos, per_batch = m.get("batches"), m.get("videos"), m.get("bytes_per_batch")
    if not batches or not videos or not per_batch:
        return None
    per_batch_videos = videos / batches
    clips = m.get("clips_per_batch")
    return {
        "bytes_per_item": per_batch / per_batch_videos,
        "batch_shape": list(m["batch_shape"]) if m.get("batch_shape") else None,
        "batch_dtype": m.get("batch_dtype"),
        "clips_per_item": clips / per_batch_videos if clips else None,
        "rss_bytes": m.get("rss_peak_bytes"),
        "items_per_s": m.get("videos_per_s"),
        "batch_size": int((rec.get("config") or {}).get("batch_size") or round(per_batch_videos)),
        "batches": int(batches),
        "label": str(rec.get("label", "")),
        "factory": ds.get("factory"),
        "factory_kwargs": dict(ds.get("factory_kwargs") or {}),
    }


def probe_applies(probe: Mapping[str, Any] | None, dataset: Mapping[str, Any]) -> bool:
    """Whether ``probe`` measured ``dataset``'s pipeline (validate's TOML may name another one)."""
    return bool(
        probe
        and dataset.get("factory")
        and probe.get("factory") == dataset.get("factory")
        and dict(probe.get("factory_kwargs") or {}) == dict(dataset.get("factory_kwargs") or {})
    )


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def shm_facts(path: str = "/dev/shm") -> tuple[int, int]:
    """(total, free) bytes of /dev/shm; (0, 0) where there is none."""
    try:
        u = shutil.disk_usage(path)
        return u.total, u.free
    except OSError:
        return 0, 0


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Free bytes of the disk ``path`` is (or will be) on: the runs' folder does not exist until the first
    run, so its nearest existing parent is read; ``None`` when even that cannot be read."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p.parent != p:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def machine_facts(tmpdir: str | None = None, *, sharing_strategy: str | None = None) -> dict[str, Any]:
    """A JSON-ready description of this machine, as the reports show it. Imports no torch."""
    tmp = tmpdir or tempfile.gettempdir()
    shm_total, shm_free = shm_facts()
    tmp_free = free_bytes(tmp)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "hostname": socket.gethostname(),
        "cores": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "ram_bytes": psutil.virtual_memory().total,
        "ram_available_bytes": psutil.virtual_memory().available,
        "shm_total_bytes": shm_total,
        "shm_free_bytes": shm_free,
        "tmpdir": tmp,
        "tmp_free_bytes": tmp_free,
        "nofile": soft,
        "nofile_hard": hard,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": _version("torch"),
        "decord": decord_provider() or "not installed",  # the distribution: decord or decord2
        "av": _version("av"),
        "cuda": cuda_known(),
        "sharing_strategy": sharing_strategy,
    }


def cuda_in_child(timeout_s: float = 120.0) -> bool | None:
    """Whether torch sees a GPU, asked of a fresh interpreter (the pytest process keeps torch out, and
    CUDA initialised here would be inherited by nothing useful); ``None`` when it cannot say."""
    import subprocess
    import sys

    try:
        out = subprocess.run(
            [sys.executable, "-c", "import torch; print(int(torch.cuda.is_available()))"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.endswith("1") if out[-1:] in ("0", "1") else None


def cuda_known() -> bool | None:
    """Whether torch sees a GPU, when torch is already imported here; ``None`` (unknown) otherwise: the
    plugin never imports torch, and a device node or ``CUDA_VISIBLE_DEVICES`` says nothing about a CPU-only
    torch. The session learns it from its first run's ``ready`` event (:meth:`.campaign.Stress.run`)."""
    import sys

    torch = sys.modules.get("torch")
    return None if torch is None else bool(torch.cuda.is_available())
