"""Machine facts that decide whether a loader config can run: cores, RAM, /dev/shm, TMPDIR, fds, versions."""
from __future__ import annotations

import os
import platform
import resource
import shutil
import socket
import tempfile
from importlib import metadata
from typing import Any

import psutil


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


def machine_facts(tmpdir: str | None = None, *, sharing_strategy: str | None = None) -> dict[str, Any]:
    """A JSON-ready description of this machine, as the reports show it. Imports no torch."""
    tmp = tmpdir or tempfile.gettempdir()
    shm_total, shm_free = shm_facts()
    try:
        tmp_free = shutil.disk_usage(tmp).free
    except OSError:
        tmp_free = None
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
        "decord": _version("decord"),
        "av": _version("av"),
        "cuda": _cuda_available(),
        "sharing_strategy": sharing_strategy,
    }


def _cuda_available() -> bool:
    import sys

    torch = sys.modules.get("torch")
    if torch is None:  # don't import torch just for this (the plugin must stay light)
        return os.path.exists("/dev/nvidiactl") or bool(os.environ.get("CUDA_VISIBLE_DEVICES"))
    return bool(torch.cuda.is_available())
