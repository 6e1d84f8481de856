"""Run one loader config in its own process and turn whatever happens into a :class:`RunResult`.

Parent side of the runner (the child side is :mod:`ssv2_fixtures.child`). The child is a fresh
interpreter (``python -m ssv2_fixtures.child``), never a fork of the caller, in its own session and
process group, with its own TMPDIR under the run folder, optionally inside a :mod:`sandbox`.

NOTE [ending a child tree]
    A DataLoader tree is the child main, its workers (forked, same process group) and, with the
    ``file_system`` strategy, ``torch_shm_manager`` daemons. We end it in this order:
    1. on a watchdog expiry (or a child that reported an error and then did not exit within
       ``exit_s``), SIGUSR1 to every process of the tree that has a handler for it, one at a time, each
       after a ``--- pid N (name) ---`` header: ``faulthandler`` (registered in the child main and
       inherited by forked workers) writes every thread's stack to stacks.txt, from a C signal handler,
       so it works even while a thread spins in C holding the GIL (decord#373);
    2. after a normal exit, up to ``_GRACE_S`` for the tree to finish by itself (shm managers remove
       their files a few seconds after their clients go; killing them first would leak the files);
    3. SIGTERM to the process group, then SIGKILL to the group and to every process the monitor saw in
       the tree that is still the same process (pid and create time), so no foreign pid is ever hit;
    4. only then are the tree's leftovers counted and removed: ``/dev/shm/torch_<pid>_*`` for the
       tree's pids, and the TMPDIR (multiprocessing's ``pymp-*`` folders counted apart, see
       :func:`_cleanup`).

    A child that reported an error first shuts its DataLoader down itself (child.py, NOTE [shutdown
    after an error]), so after an error the healthy workers normally exit in step 2 on their own.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import psutil

from .child import STACK_SIGNAL, ChildSpec, DatasetSpec
from .config import LoaderConfig
from .faults import FaultSpec, parse_fault
from .monitor import TreeMonitor, shm_torch_files, tmp_usage
from .outcome import Evidence, OutcomeRecord, classify
from .records import Metrics, RunRecord
from .sandbox import Prepared, Sandbox, prepare

_GRACE_S = 5.0
_TAIL = 6000


@dataclass(frozen=True)
class Watchdog:
    """Limits, in seconds: spawn → first batch, between batches, and the whole run. None = derived.

    ``exit_s``: once the child has reported an error, how long it may take to exit (torch's worker
    shutdown) before the runner ends the tree. That is not a hang: the error stays the outcome.
    """

    startup_s: float | None = None
    stall_s: float | None = None
    total_s: float | None = None
    exit_s: float | None = None

    def resolve(self, config: LoaderConfig, batches: int) -> dict[str, float]:
        # Generous by design: a slow machine must not read as a hang. ~0.25 s per video is ~10× slower
        # than decode here; start-up covers the torch import and worker start.
        startup = self.startup_s or 90.0 + 2.0 * config.num_workers + 0.5 * config.batch_size
        stall = self.stall_s or 30.0 + 0.25 * config.batch_size
        total = self.total_s or startup + batches * (2.0 + 0.25 * config.batch_size) + 60.0
        # torch joins each worker for up to 5 s (MP_STATUS_CHECK_INTERVAL) before terminating it
        exit_ = self.exit_s or 15.0 + 5.0 * config.num_workers
        return {"startup_s": startup, "stall_s": stall, "total_s": total, "exit_s": exit_}


@dataclass
class RunResult:
    """What one isolated run measured and, if it failed, why. ``record`` is its JSON form."""

    record: RunRecord

    @property
    def passed(self) -> bool:
        return self.record["status"] == "passed"

    @property
    def outcome(self) -> OutcomeRecord | None:
        return self.record.get("outcome")

    @property
    def kind(self) -> str | None:
        o = self.outcome
        return o["kind"] if o else None

    @property
    def metrics(self) -> Metrics:
        return self.record["metrics"]

    @property
    def batch_waits(self) -> list[float]:
        return self.record.get("batch_waits_s", [])

    def describe(self) -> str:
        r = self.record
        m = r["metrics"]
        if self.passed:
            return f"{r['label']}: passed, {m.get('videos_per_s', 0):.1f} videos/s over {m.get('batches', 0)} batches"
        o = r["outcome"] or {}
        return (f"{r['label']}: {o.get('kind')} at batch {o.get('batch')}: {o.get('message')}\n"
                f"  remedy: {o.get('remedy')}")


def dataset_spec(root: str | os.PathLike[str], split: str = "train", **kw: Any) -> DatasetSpec:
    """The dataset half of a child spec (the arguments of :class:`~ssv2_fixtures.SSv2Clips`)."""
    d: DatasetSpec = {"root": str(root), "split": split}
    d.update({k: v for k, v in kw.items() if v is not None})  # type: ignore[typeddict-item]
    return d


def run_config(
    dataset: DatasetSpec | str | os.PathLike[str],
    config: LoaderConfig,
    batches: int = 10,
    *,
    fault: FaultSpec | str | None = None,
    sandbox: Sandbox | None = None,
    watchdog: Watchdog | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
    sample_interval: float = 0.25,
    on_event: Callable[[dict[str, Any], TreeMonitor], None] | None = None,
    cuda: bool = False,
    step_s: float = 0.0,
    extra_facts: dict[str, Any] | None = None,
) -> RunResult:
    """Load ``batches`` batches of ``dataset`` with ``config`` in an isolated child; never raises for
    anything the child does (a crash is a result). ``dataset`` is a :func:`dataset_spec` or a root."""
    ds: DatasetSpec = dataset_spec(dataset) if isinstance(dataset, (str, os.PathLike)) else dataset
    if isinstance(fault, str):
        fault = parse_fault(fault, where="run_config(fault=...)")
    limits = (watchdog or Watchdog()).resolve(config, batches)
    label = config.label
    base = Path(run_dir) if run_dir else Path(os.environ.get("TMPDIR", "/tmp")) / "ssv2-stress-runs"
    work = _fresh_dir(base, name or label)
    tmpdir = work / "tmp"
    tmpdir.mkdir()
    prepared: Prepared | None = prepare(sandbox, tmpdir) if sandbox and sandbox.emulated else None

    r_fd, w_fd = os.pipe()
    spec: ChildSpec = {
        "dataset": ds, "config": config.to_dict(), "batches": batches,
        "fault": str(fault) if fault else None, "events_fd": w_fd,
        "stacks_path": str(work / "stacks.txt"), "skip_log": str(work / "skips.tsv"),
        "nofile": prepared.nofile if prepared else None,
        "address_space_bytes": prepared.address_space_bytes if prepared else None,
        "cpus": prepared.cpus if prepared else None, "cuda": cuda, "step_s": step_s,
    }
    (work / "spec.json").write_text(json.dumps(spec, indent=1))
    tmp_alias = _short_alias(tmpdir)
    env = dict(os.environ, TMPDIR=str(tmp_alias or tmpdir), PYTHONUNBUFFERED="1")
    pkg_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    argv = [*(prepared.prefix if prepared else []), sys.executable, "-m", "ssv2_fixtures.child",
            str(work / "spec.json")]
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t_spawn = time.time()
    try:
        with open(work / "stdout.txt", "wb") as out, open(work / "stderr.txt", "wb") as err:
            proc = subprocess.Popen(argv, pass_fds=(w_fd,), start_new_session=True, stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, cwd=str(tmpdir), env=env)
    except BaseException:  # nothing was started: undo what was set up for it, then report
        os.close(r_fd)
        os.close(w_fd)
        if prepared:
            prepared.cleanup()
        if tmp_alias is not None:
            tmp_alias.unlink(missing_ok=True)
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    os.close(w_fd)
    monitor = TreeMonitor(proc.pid, tmpdir, interval=sample_interval,
                          private_tmp=bool(prepared and prepared.sandbox.tmp_bytes is not None)).start()
    events, fired, stuck = _pump(proc, r_fd, monitor, limits, t_spawn, on_event, work / "stacks.txt")
    _end_tree(proc, monitor, graceful=fired is None and stuck is None)
    os.close(r_fd)
    monitor.stop()
    wall = time.time() - t_spawn

    leaked = _cleanup(monitor, tmpdir, prepared)
    if tmp_alias is not None:
        tmp_alias.unlink(missing_ok=True)
    facts = _facts(monitor, tmpdir, prepared, config, ds, extra_facts)
    if prepared:
        prepared.cleanup()
    record = _record(config, ds, batches, fault, sandbox, prepared, limits, events, fired, proc, monitor,
                     work, leaked, facts, started_at, wall, name or label)
    if stuck is not None:
        record["exit"]["ended_by_runner"] = stuck
    return RunResult(record)


# multiprocessing binds AF_UNIX sockets under TMPDIR (pymp-*/listener-*), and such a path may not
# exceed 107 bytes: a deep run folder makes every worker's feeder thread die with "AF_UNIX path too
# long" and the DataLoader hang. Past this length the child gets a short symlink to its TMPDIR instead.
_MAX_TMPDIR_LEN = 60


def _short_alias(tmpdir: Path) -> Path | None:
    if len(str(tmpdir)) <= _MAX_TMPDIR_LEN:
        return None
    base = Path("/tmp") if os.path.isdir("/tmp") else Path(tempfile.gettempdir())
    for n in range(1000):
        alias = base / f"ssv2-{os.getpid()}-{n}"
        try:
            alias.symlink_to(tmpdir, target_is_directory=True)
            return alias
        except FileExistsError:
            continue
    return None


def _fresh_dir(base: Path, name: str) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)[:120]
    for n in range(10000):
        p = base / (safe if n == 0 else f"{safe}.{n}")
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a run folder under {base}")


def _pump(proc: subprocess.Popen[bytes], r_fd: int, monitor: TreeMonitor, limits: dict[str, float],
          t_spawn: float, on_event: Callable[[dict[str, Any], TreeMonitor], None] | None,
          stacks_path: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any] | None]:
    """Read events until the child main exits or the watchdog fires.

    Returns (events, fired, stuck): ``fired`` is the watchdog's finding (a hang); ``stuck`` is set when
    the child reported an error and then did not exit within ``exit_s`` (the error stays the outcome).
    """
    events: list[dict[str, Any]] = []
    buf = b""
    last_progress: float | None = None  # time of the last batch event
    error_at: float | None = None       # time of the child's error event
    os.set_blocking(r_fd, False)

    def drain() -> bool:
        nonlocal buf, last_progress, error_at
        got_eof = False
        while True:
            try:
                chunk = os.read(r_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                got_eof = True
                break
            buf += chunk
        *lines, buf = buf.split(b"\n")
        for ln in lines:
            try:
                ev = json.loads(ln)
            except ValueError:
                continue
            events.append(ev)
            if ev.get("ev") == "started":
                monitor.rebase()
            if ev.get("ev") == "batch":
                last_progress = time.time()
            elif ev.get("ev") == "error" and error_at is None:
                error_at = time.time()
            if on_event is not None:
                try:
                    on_event(ev, monitor)
                except Exception:
                    pass
        return got_eof

    while True:
        ready, _, _ = select.select([r_fd], [], [], 0.2)
        eof = drain() if ready else False
        if proc.poll() is not None:
            drain()
            return events, None, None
        now = time.time()
        fired = None
        if error_at is not None:
            if now - error_at > limits["exit_s"]:
                stuck = {"phase": "exit", "limit_s": limits["exit_s"], "elapsed_s": now - error_at}
                _dump_stacks(monitor, stacks_path)
                drain()
                return events, None, stuck
        elif now - t_spawn > limits["total_s"]:
            fired = {"phase": "total", "limit_s": limits["total_s"], "elapsed_s": now - t_spawn}
        elif last_progress is None and now - t_spawn > limits["startup_s"]:
            fired = {"phase": "startup", "limit_s": limits["startup_s"], "elapsed_s": now - t_spawn}
        elif last_progress is not None and now - last_progress > limits["stall_s"]:
            fired = {"phase": "stall", "limit_s": limits["stall_s"], "elapsed_s": now - last_progress}
        if fired is not None:
            fired["batches_done"] = sum(1 for e in events if e.get("ev") == "batch")
            _dump_stacks(monitor, stacks_path)
            drain()
            return events, fired, None
        if eof and proc.poll() is None:
            time.sleep(0.05)  # the write end is closed everywhere; only the exit is left to see


def _catches(pid: int, sig: int) -> bool:
    """Whether ``pid`` has a handler installed for ``sig`` (``SigCgt`` in /proc/<pid>/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith("SigCgt:"):
                    return bool(int(ln.split()[1], 16) >> (sig - 1) & 1)
    except (OSError, ValueError):
        pass
    return False


def _dump_stacks(monitor: TreeMonitor, stacks_path: Path) -> None:
    """STACK_SIGNAL to every process of the tree that catches it: faulthandler writes every thread's stack.

    Chosen by the installed handler, not by name: torch names its workers ``pt_data_worker`` and a
    process without the handler (``torch_shm_manager``) would be killed by the signal's default action.
    One process at a time, each after a header line naming it: all of them write to the same file, and
    dumps written at once interleave byte by byte.
    """
    monitor.sample()
    for p in monitor.tree():
        try:
            if not _catches(p.pid, STACK_SIGNAL):
                continue
            with open(stacks_path, "a") as f:
                f.write(f"\n--- pid {p.pid} ({p.name()}) ---\n")
            p.send_signal(STACK_SIGNAL)
        except (psutil.Error, OSError):
            continue
        _wait_quiet(stacks_path)


def _wait_quiet(path: Path, quiet_s: float = 0.15, limit_s: float = 2.0) -> None:
    """Until ``path`` stops growing for ``quiet_s`` (a dump is written in well under that)."""
    deadline = time.time() + limit_s
    last, since = -1, time.time()
    while time.time() < deadline:
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        if size != last:
            last, since = size, time.time()
        elif time.time() - since >= quiet_s:
            return
        time.sleep(0.03)


def _end_tree(proc: subprocess.Popen[bytes], monitor: TreeMonitor, *, graceful: bool) -> None:
    """See NOTE [ending a child tree]."""
    if graceful:
        deadline = time.time() + _GRACE_S
        while time.time() < deadline and (proc.poll() is None or monitor.alive_tree()):
            time.sleep(0.1)
    pgid = proc.pid  # start_new_session: the child leads its own group
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        for p in monitor.alive_tree():
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass
        try:
            proc.wait(timeout=3.0 if sig == signal.SIGTERM else 10.0)
        except subprocess.TimeoutExpired:
            continue
        gone, alive = psutil.wait_procs(monitor.alive_tree(), timeout=2.0 if sig == signal.SIGTERM else 5.0)
        if not alive:
            break
    proc.wait()


def _cleanup(monitor: TreeMonitor, tmpdir: Path, prepared: Prepared | None) -> dict[str, int]:
    """Count, then remove, what the tree left: its torch_* shm files and its TMPDIR.

    ``leaked_tmp_*`` leaves out multiprocessing's ``pymp-*`` folders (an AF_UNIX socket each, left by a
    process that was ended by a signal): they are ``leaked_mp_dirs`` (see :func:`~.monitor.tmp_usage`).
    An emulated TMPDIR vanishes with its mount namespace, so for it the count is the last reading taken
    while a process of the tree was alive (within one sample interval of the end).
    """
    leaked = {"leaked_shm_files": 0, "leaked_shm_bytes": 0, "leaked_tmp_files": 0, "leaked_tmp_bytes": 0,
              "leaked_mp_dirs": 0}
    if not (prepared and prepared.sandbox.shm_bytes is not None):  # a private shm died with its namespace
        for f in shm_torch_files("/dev/shm", set(monitor.seen)):
            try:
                leaked["leaked_shm_bytes"] += f.stat().st_blocks * 512
                f.unlink()
                leaked["leaked_shm_files"] += 1
            except OSError:
                pass
    if prepared and prepared.sandbox.tmp_bytes is not None:
        last = monitor.last_tmp_reading()  # the tmpfs died with the namespace
        if last:
            leaked["leaked_tmp_files"], leaked["leaked_tmp_bytes"] = last.tmp_files, last.tmp_bytes
            leaked["leaked_mp_dirs"] = last.tmp_mp_dirs
    else:
        leaked["leaked_tmp_files"], leaked["leaked_tmp_bytes"], leaked["leaked_mp_dirs"] = tmp_usage(tmpdir)
    shutil.rmtree(tmpdir, ignore_errors=True)
    return leaked


def _facts(monitor: TreeMonitor, tmpdir: Path, prepared: Prepared | None, config: LoaderConfig,
           ds: DatasetSpec, extra: dict[str, Any] | None) -> dict[str, Any]:
    import resource

    pk = monitor.peaks
    f: dict[str, Any] = {
        "rss_peak_bytes": pk.rss_bytes, "shm_peak_bytes": pk.shm_used_bytes, "fds_peak": pk.fds,
        "shm_total_bytes": monitor.shm_total, "shm_free_bytes": monitor.shm_free_min,
        "tmpdir": str(tmpdir), "procs_peak": pk.procs,
        "nofile": prepared.nofile if prepared and prepared.nofile else resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }
    try:
        f["tmp_free_bytes"] = shutil.disk_usage(tmpdir.parent).free
    except OSError:
        pass
    if prepared:
        f.update(prepared.facts())
        if prepared.sandbox.tmp_bytes is not None:
            f["tmp_free_bytes"] = max(0, prepared.sandbox.tmp_bytes - pk.tmp_bytes)
    frames, size = int(ds.get("num_frames", 16)), int(ds.get("size", 224))
    batch_bytes = config.batch_size * frames * size * size * 3
    f["batch_bytes"] = batch_bytes
    f.setdefault("shm_need_bytes", batch_bytes * (config.num_workers * config.effective_prefetch + 1))
    if extra:
        f.update(extra)
    return f


def _percentiles(waits: list[float]) -> dict[str, float]:
    if not waits:
        return {}
    a = np.asarray(waits) * 1000.0
    return {"wait_ms_p50": float(np.percentile(a, 50)), "wait_ms_p95": float(np.percentile(a, 95)),
            "wait_ms_p99": float(np.percentile(a, 99))}


def _record(config: LoaderConfig, ds: DatasetSpec, batches: int, fault: FaultSpec | None,
            sandbox: Sandbox | None, prepared: Prepared | None, limits: dict[str, float],
            events: list[dict[str, Any]], fired: dict[str, Any] | None, proc: subprocess.Popen[bytes],
            monitor: TreeMonitor, work: Path, leaked: dict[str, int], facts: dict[str, Any],
            started_at: str, wall: float, name: str) -> RunRecord:
    by = lambda kind: [e for e in events if e.get("ev") == kind]  # noqa: E731
    bev, fin, err, h2d = by("batch"), by("finished"), by("error"), by("h2d")
    started = by("started")
    waits = [float(e["wait_s"]) for e in bev]
    m: Metrics = {"batches": len(bev), "videos": sum(int(e["videos"]) for e in bev)}
    if bev:
        m["first_batch_s"] = waits[0]
        if started:
            m["startup_s"] = float(bev[0]["t"]) - float(started[0]["t"])
        steady_w, steady_v = waits[1:], [int(e["videos"]) for e in bev[1:]]
        if steady_w and sum(steady_w) > 0:
            m["videos_per_s"] = sum(steady_v) / sum(steady_w)
            m["frames_per_s"] = m["videos_per_s"] * int(ds.get("num_frames", 16))
            span = float(bev[-1]["t"]) - float(bev[0]["t"])
            if span > 0:
                m["loop_videos_per_s"] = sum(steady_v) / span
        m.update(_percentiles(waits[1:] or waits))  # type: ignore[typeddict-item]
    if fin:
        m["loop_s"] = float(fin[0]["loop_s"])
    pk = monitor.peaks
    m.update(rss_peak_bytes=pk.rss_bytes, pss_peak_bytes=pk.pss_bytes, uss_peak_bytes=pk.uss_bytes,
             shm_peak_bytes=pk.shm_used_bytes, shm_files_peak=pk.shm_files, fds_peak=pk.fds,
             threads_peak=pk.threads, procs_peak=pk.procs, tmp_peak_bytes=pk.tmp_bytes,
             **leaked)  # type: ignore[typeddict-item]
    skips = work / "skips.tsv"
    m["skipped_videos"] = len(skips.read_text().splitlines()) if skips.exists() else 0
    if h2d:
        m["h2d_ms_p50"] = float(np.median([e["copy_s"] for e in h2d]) * 1000)
        m["vram_peak_bytes"] = max(int(e["vram_peak_bytes"]) for e in h2d)

    rc = proc.returncode
    exit_code, exit_signal = (None, -rc) if rc is not None and rc < 0 else (rc, None)
    stderr_tail = _tail(work / "stderr.txt")
    passed = fired is None and rc == 0 and bool(fin) and not err and len(bev) >= batches
    outcome: OutcomeRecord | None = None
    if not passed:
        outcome = classify(Evidence(
            exit_code=exit_code, exit_signal=exit_signal, error=err[0] if err else None,
            stderr_tail=stderr_tail, watchdog=fired, batches_done=len(bev), config=config.to_dict(),
            facts=facts,
        ))
    stacks = (work / "stacks.txt").read_text(errors="replace") if (work / "stacks.txt").exists() else ""
    rec: RunRecord = {
        "id": name, "label": config.label, "config": config.to_dict(), "dataset": dict(ds),
        "batches_requested": batches, "status": "passed" if passed else "failed", "outcome": outcome,
        "verdicts": [], "metrics": m, "sandbox": sandbox.to_dict() if sandbox else None,
        "fault": str(fault) if fault else None, "watchdog": limits, "batch_waits_s": waits,
        "series": {**monitor.series(), "batch_t": [float(e["t"]) - (monitor.samples[0].t if monitor.samples else 0) for e in bev]},
        "stacks": stacks[-20000:], "stdout_tail": _tail(work / "stdout.txt"), "stderr_tail": stderr_tail,
        "exit": {"code": exit_code, "signal": exit_signal, "mem_mode": prepared.mem_mode if prepared else None},
        "started_at": started_at, "wall_s": wall, "run_dir": str(work),
        "pids": sorted(monitor.seen),
    }
    if err:
        rec["exit"]["error_type"] = err[0].get("type")
    return rec


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            n = f.tell()
            f.seek(max(0, n - _TAIL))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


__all__ = ["run_config", "RunResult", "Watchdog", "dataset_spec"]
