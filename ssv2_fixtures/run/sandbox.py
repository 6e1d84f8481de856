"""Emulate a target machine's limits for one child, without touching the host.

- shm: the child runs in a private mount namespace (``unshare --mount``) with a tmpfs of the given
  size on /dev/shm; the host's /dev/shm is never resized or written.
- tmp: a tmpfs of the given size mounted on the child's own TMPDIR inside that namespace (a quota).
- nofile / address space: ``setrlimit`` in the child before torch is imported.
- mem: a cgroup memory controller nested under this process's own cgroup (v1 ``memory`` or v2
  ``memory.max``) when writable, else RLIMIT_AS; :attr:`Prepared.mem_mode` says which (they fail
  differently: the OOM killer vs. ``MemoryError``).
- cpus: CPU affinity of the child (inherited by its workers).

Where a mechanism is not permitted, :func:`unavailable` names the missing permission; callers skip
or fail with that reason. Nothing falls back silently.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

_UNITS = {
    "": 1,
    "b": 1,
    "k": 2**10,
    "kb": 2**10,
    "kib": 2**10,
    "m": 2**20,
    "mb": 2**20,
    "mib": 2**20,
    "g": 2**30,
    "gb": 2**30,
    "gib": 2**30,
    "t": 2**40,
    "tb": 2**40,
    "tib": 2**40,
}


def parse_size(text: str | int, *, where: str = "size") -> int:
    """``64M``, ``2g``, ``512MiB``, ``1048576`` → bytes (binary units); a bad value names ``where``."""
    if isinstance(text, bool):
        raise ValueError(f"invalid size {text!r} from {where}: use a number with K, M, G or T (e.g. 64M)")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"invalid size {text!r} from {where}: a size cannot be negative")
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"invalid size {text!r} from {where}: use a number with K, M, G or T (e.g. 64M)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


MEM_MODES = ("auto", "cgroup", "rlimit")


@dataclass(frozen=True)
class Sandbox:
    shm_bytes: int | None = None
    tmp_bytes: int | None = None
    nofile: int | None = None
    mem_bytes: int | None = None
    mem_mode: str = "auto"  # "auto" | "cgroup" | "rlimit"
    cpus: int | None = None
    profile: str | None = None

    def __post_init__(self) -> None:
        for name in ("shm_bytes", "tmp_bytes", "mem_bytes", "nofile", "cpus"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"Sandbox.{name}: must be an integer, got {v!r}")
            if v < 1:
                # tmpfs reads size=0 as "no limit": a zero cap would silently emulate nothing
                raise ValueError(f"Sandbox.{name}: must be >= 1, got {v}")
        if self.mem_mode not in MEM_MODES:
            raise ValueError(f"Sandbox.mem_mode: must be one of {MEM_MODES}, got {self.mem_mode!r}")

    @property
    def emulated(self) -> bool:
        return any(v is not None for v in (self.shm_bytes, self.tmp_bytes, self.nofile, self.mem_bytes, self.cpus))

    @property
    def needs_namespace(self) -> bool:
        return self.shm_bytes is not None or self.tmp_bytes is not None

    def merged(self, **overrides: Any) -> Sandbox:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PROFILES: dict[str, Sandbox] = {
    # Docker's default container: 64 MiB /dev/shm, everything else as the host.
    "docker-default": Sandbox(shm_bytes=64 * 2**20, profile="docker-default"),
    # A laptop-class workstation: small shm, the common 1024 fd soft limit, 8 GiB for the job, 4 cpus.
    "laptop": Sandbox(shm_bytes=2 * 2**30, nofile=1024, mem_bytes=8 * 2**30, cpus=4, profile="laptop"),
    # A shared cluster node with a tight temp quota (the seed's disk-quota errors).
    "hpc-quota": Sandbox(tmp_bytes=256 * 2**20, nofile=4096, profile="hpc-quota"),
}


def profile(name: str, *, where: str = "--emulate") -> Sandbox:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r} from {where}; choose one of {sorted(PROFILES)}") from None


@cache
def _namespace_reason() -> str | None:
    if shutil.which("unshare") is None:
        return "emulated /dev/shm and TMPDIR need the `unshare` command (util-linux), not found"
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True)
    if r.returncode != 0:
        return (
            f"emulated /dev/shm and TMPDIR need a private mount namespace (root or user namespaces); "
            f"`unshare --mount` said: {r.stderr.strip() or r.returncode}"
        )
    return None


def cgroup_base() -> tuple[str, Path] | None:
    """(version, this process's own memory cgroup dir) when a memory controller is writable here."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for ln in lines:
        _, ctrls, path = ln.split(":", 2)
        if "memory" in ctrls.split(","):
            d = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            if os.access(d, os.W_OK) and (d / "memory.limit_in_bytes").exists():
                return "v1", d
    for ln in lines:
        if ln.startswith("0::"):
            for mnt in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
                d = mnt / ln[3:].lstrip("/")
                ctl = d / "cgroup.subtree_control"
                if os.access(d, os.W_OK) and ctl.exists() and "memory" in ctl.read_text().split():
                    return "v2", d
    return None


def unavailable(sb: Sandbox) -> str | None:
    """Why ``sb`` cannot be applied here (names the missing permission), or None."""
    if sb.needs_namespace and (reason := _namespace_reason()):
        return reason
    if sb.mem_bytes is not None and sb.mem_mode == "cgroup" and cgroup_base() is None:
        return (
            "a cgroup memory cap needs a writable memory controller (cgroup v1 `memory` or v2 "
            "`memory.max`) under this process's cgroup; none is writable (not root or not delegated)"
        )
    return None


_counter = itertools.count()


@dataclass
class Prepared:
    """A sandbox made ready for one child: the command prefix, limits for the child, and cleanup."""

    sandbox: Sandbox
    prefix: list[str]
    nofile: int | None
    address_space_bytes: int | None
    cpus: list[int] | None
    mem_mode: str | None
    cgroup: Path | None

    def facts(self) -> dict[str, Any]:
        """Evidence for the outcome: the cap and, for a cgroup, how often the OOM killer fired."""
        f: dict[str, Any] = {"emulated": self.sandbox.to_dict(), "mem_mode": self.mem_mode}
        if self.cpus is not None:
            f["cpus_applied"] = len(self.cpus)  # fewer than asked where this machine has fewer
        if self.sandbox.mem_bytes:
            f["mem_limit_bytes"] = self.sandbox.mem_bytes
        if self.cgroup is not None:
            f.update(_cgroup_counters(self.cgroup))
        return f

    def cleanup(self) -> None:
        if self.cgroup is not None:
            try:
                self.cgroup.rmdir()
            except OSError:
                pass


def _cgroup_counters(d: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        if (d / "memory.oom_control").exists():  # v1
            for ln in (d / "memory.oom_control").read_text().splitlines():
                k, _, v = ln.partition(" ")
                if k == "oom_kill":
                    out["cgroup_oom_kills"] = int(v)
            out["cgroup_max_usage_bytes"] = int((d / "memory.max_usage_in_bytes").read_text())
            out["cgroup_failcnt"] = int((d / "memory.failcnt").read_text())
        elif (d / "memory.events").exists():  # v2
            for ln in (d / "memory.events").read_text().splitlines():
                k, _, v = ln.partition(" ")
                if k == "oom_kill":
                    out["cgroup_oom_kills"] = int(v)
            if (d / "memory.peak").exists():
                out["cgroup_max_usage_bytes"] = int((d / "memory.peak").read_text())
    except (OSError, ValueError):
        pass
    return out


def prepare(sb: Sandbox, tmpdir: str | os.PathLike[str]) -> Prepared:
    """Ready ``sb`` for one child whose TMPDIR is ``tmpdir``. Raises RuntimeError if not permitted."""
    if (reason := unavailable(sb)) is not None:
        raise RuntimeError(reason)
    script: list[str] = ["set -e"]
    if sb.shm_bytes is not None:
        script.append(f"mount -t tmpfs -o size={sb.shm_bytes},mode=1777 ssv2-shm /dev/shm")
    if sb.tmp_bytes is not None:
        script.append(f"mount -t tmpfs -o size={sb.tmp_bytes},mode=1777 ssv2-tmp {shlex.quote(str(tmpdir))}")
        # the child's cwd is TMPDIR: enter the new mount, or relative writes would land beneath it
        script.append(f"cd {shlex.quote(str(tmpdir))}")
    cgroup: Path | None = None
    mem_mode: str | None = None
    address_space: int | None = None
    if sb.mem_bytes is not None:
        base = cgroup_base() if sb.mem_mode in ("auto", "cgroup") else None
        if base is not None:
            version, parent = base
            cgroup = parent / f"ssv2-stress-{os.getpid()}-{next(_counter)}"
            cgroup.mkdir()
            if version == "v1":
                (cgroup / "memory.limit_in_bytes").write_text(str(sb.mem_bytes))
            else:
                (cgroup / "memory.max").write_text(str(sb.mem_bytes))
                (cgroup / "memory.swap.max").write_text("0") if (cgroup / "memory.swap.max").exists() else None
            script.append(f"echo $$ > {shlex.quote(str(cgroup / 'cgroup.procs'))}")
            mem_mode = f"cgroup-{version}"
        else:
            address_space, mem_mode = sb.mem_bytes, "rlimit_as"
    cpus = None
    if sb.cpus is not None:
        avail = sorted(os.sched_getaffinity(0))
        cpus = avail[: sb.cpus]
    prefix: list[str] = []
    if len(script) > 1:
        body = "; ".join(script) + '; exec "$@"'
        prefix = ["sh", "-c", body, "ssv2-sandbox"]
        if sb.needs_namespace:
            prefix = ["unshare", "--mount", "--propagation", "private", "--", *prefix]
    return Prepared(sb, prefix, sb.nofile, address_space, cpus, mem_mode, cgroup)
