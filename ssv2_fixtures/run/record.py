"""JSON records (their types are :mod:`.schema`): one run of one config (:class:`RunRecord`) and the
session's ``results.json``, and the one record builder: :func:`batch_metrics` (the metrics core of one loading
process, from its events), :func:`base_record` (the fields every run has) and :func:`single_record` (a
single-process child);
``run.ranks`` extends the same core for a torchrun child.

Values are plain JSON types when a record is built (:func:`json_safe`): a numpy scalar is its Python
number or bool, never a string.

``results.json`` carries ``schema``; :func:`read_results` reads the schemas it knows and refuses a
newer one by name. Writes are atomic (temp file + ``os.replace``) so a killed session leaves the last
complete file, never a torn one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .hold import hold_metrics
from .outcome import Evidence, classify
from .schema import KNOWN_SCHEMAS, HostLoad, Metrics, OutcomeRecord, ResultsFile, RunRecord
from .stats import no_interval_reason, percentile, rate_interval
from .watchdog import run_passed, split_exit

if TYPE_CHECKING:
    from ..data.loader import LoaderConfig
    from .monitor import Peaks, TreeMonitor


class ResultsError(ValueError):
    """A results.json that cannot be read: names the file and what is wrong."""


def write_atomic_bytes(path: str | os.PathLike[str], payload: bytes) -> None:
    """Replace ``path`` with ``payload`` so that a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def json_safe(obj: Any) -> Any:
    """``obj`` with plain JSON types only: numpy scalars and arrays become Python numbers, bools and
    lists (``np.bool_(False)`` stays ``false``, never the string ``"False"``), tuples lists, paths
    strings; a non-finite float is kept (``json`` writes it as NaN/Infinity, which it reads back)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    item = getattr(obj, "item", None)  # numpy scalar (np.float64, np.int64, np.bool_) or 0-d array
    tolist = getattr(obj, "tolist", None)
    if callable(tolist) and getattr(obj, "ndim", None):
        return json_safe(tolist())
    if callable(item):
        return item()
    return str(obj)


def write_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """:func:`write_atomic_bytes` of ``data`` as JSON, through :func:`json_safe`."""
    write_atomic_bytes(path, json.dumps(json_safe(data), indent=1).encode())


def read_results(path: str | os.PathLike[str]) -> ResultsFile:
    """Read a results.json (or the one inside a run folder)."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    try:
        text = p.read_text()
    except OSError as exc:
        raise ResultsError(f"{p}: cannot read results ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            f"{p}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); the file is "
            "truncated or damaged — results are written atomically, so this file was not written by a "
            "complete ssv2-stress session"
        ) from None
    if not isinstance(data, dict) or "schema" not in data:
        raise ResultsError(f"{p}: not an ssv2-stress results file (no 'schema' field)")
    schema = data["schema"]
    if schema not in KNOWN_SCHEMAS:
        newer = isinstance(schema, int) and schema > max(KNOWN_SCHEMAS)
        raise ResultsError(
            f"{p}: results schema {schema!r} is "
            + ("newer than this ssv2-stress understands" if newer else "not one this ssv2-stress knows")
            + f" (known: {list(KNOWN_SCHEMAS)}); upgrade ssv2-stress to read it"
        )
    if not isinstance(data.get("results"), list):
        raise ResultsError(f"{p}: field 'results' must be a list of runs")
    return data  # type: ignore[return-value]


# --- the one record builder ------------------------------------------------------------------------

TAIL_CHARS = 6000
EVENT_STREAM_FACTS = ("bad_event_lines", "first_bad_event_line", "on_event_errors", "first_on_event_error")
"""The runner's facts about the event stream itself (runner.EventReader), copied into the record."""
STACKS_CHARS = 20000


@dataclass
class RunFacts:
    """Everything the runner gathered about one finished child, whatever launched it."""

    config: LoaderConfig
    dataset: Mapping[str, Any]
    batches: int  # batches requested
    fault: str | None
    sandbox: dict[str, Any] | None
    mem_mode: str | None
    limits: dict[str, float]
    events: list[dict[str, Any]]
    fired: dict[str, Any] | None  # the watchdog's finding (a hang)
    stuck: dict[str, Any] | None  # error reported, then no exit within exit_s
    returncode: int | None
    monitor: TreeMonitor
    work: Path
    leaked: dict[str, int]
    facts: dict[str, Any]  # evidence for classify (runner._facts)
    started_at: str
    wall_s: float
    name: str
    t_exit: float  # when the child main was seen gone (or the watchdog stopped)
    step_s: float = 0.0  # the simulated training step held after each batch (--step-time)
    host: HostLoad | None = None  # how busy the host was around the run (run.host)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("ev") == kind]

    def tail(self, name: str) -> str:
        return read_tail(self.work / name, TAIL_CHARS)


def read_tail(path: Path, limit: int = 400_000) -> str:
    """The last ``limit`` characters of a text file; "" if it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            n = f.tell()
            f.seek(max(0, n - limit))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _mode(values: Sequence[Any]) -> Any:
    return Counter(values).most_common(1)[0][0] if values else None


STEP_BOUND_WAIT_FRACTION = 0.2
"""A loop that waited for data at most this share of its wall time is step-bound: its step, not the loader, set
the rate it received (the watch's ``data_bound`` finding is the other side of this threshold)."""


def bound_of(wait_fraction: float) -> str:
    """``"step"`` when the loop waited for data at most :data:`STEP_BOUND_WAIT_FRACTION` of its wall time (the
    loader keeps up; the rate is the step's), else ``"data"`` (the loader set the rate). Without a step the
    loop does nothing but wait, so a run without ``--step-time`` is ``"data"``."""
    return "step" if wait_fraction <= STEP_BOUND_WAIT_FRACTION else "data"


def single_process_rate(metrics: Mapping[str, Any]) -> float | None:
    """Videos over the time spent waiting in ``next()``: for a W = 0 run the time spent decoding, whatever
    step the loop held between batches (the decode limit's base, ``stress.campaign``). It is
    ``videos_per_s / wait_fraction``: both are over the same batches (:func:`batch_metrics`)."""
    v, f = metrics.get("videos_per_s"), metrics.get("wait_fraction")
    return float(v) / float(f) if v is not None and f else None


def _steady(batch_events: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indices of the batch events after each loader's first (keyed by ``rank``; one key for a single process)."""
    seen: set[Any] = set()
    steady: list[int] = []
    for i, e in enumerate(batch_events):
        r = e.get("rank")
        if r in seen:
            steady.append(i)
        seen.add(r)
    return steady


def batch_walls(batch_events: Sequence[Mapping[str, Any]]) -> list[float]:
    """Each batch's wall time in the loop: seconds from the same loader's previous batch receipt to its own
    (``t``, NOTE [child events]: the step held after the previous batch, then this batch's wait); a loader's
    first batch has nothing before it, so its wait. Never less than the batch's own wait (a clock step)."""
    last: dict[Any, float] = {}
    out = []
    for e in batch_events:
        r, t, wait = e.get("rank"), float(e["t"]), float(e["wait_s"])
        out.append(max(t - last[r], wait) if r in last else wait)
        last[r] = t
    return out


def _window(measured: Mapping[str, Any] | None) -> int | None:
    return int(measured["batches"]) if measured and measured.get("batches") else None


def batch_metrics(
    batch_events: Sequence[Mapping[str, Any]],
    *,
    started: Mapping[str, Any] | None = None,
    finished: Mapping[str, Any] | None = None,
    ready: Mapping[str, Any] | None = None,
    num_frames: int = 16,
    workers: int = 0,
    window: int | None = None,
) -> Metrics:
    """The metrics core: what the batch events of one loading process say (a torchrun child's ranks
    extend it, :mod:`.ranks`). The rate counts the batches after the first (start-up is apart): videos
    over the loop's wall time for them (:func:`batch_walls`, step included: the rate the training loop
    received), its interval :func:`~.stats.rate_interval` over the same per-batch (videos, wall seconds);
    ``wait_fraction`` is the share of that wall time spent waiting for data (≈ 1 without a step), and
    ``wait_ms_*`` the waits' percentiles (:func:`~.stats.percentile`).
    ``window``: a measured window's batch count (the child's ``measured`` event): the rate and its
    interval are then over the window's batches — the last ``window`` received, the same batches the
    child judged (its warm-up may be 0, so the window may hold the first batch; its wall time is then its
    wait, as in the child). This is the one rate and interval computation of a run; the child's
    ``measured`` event contributes only its count and how it ended (``window_stopped``, :func:`core_metrics`)."""
    waits = [float(e["wait_s"]) for e in batch_events]
    m: Metrics = {"batches": len(batch_events), "videos": sum(int(e["videos"]) for e in batch_events)}
    if batch_events:
        m["first_batch_s"] = waits[0]
        if started is not None:
            m["startup_s"] = float(batch_events[0]["t"]) - float(started["t"])
        walls = batch_walls(batch_events)
        # the child's window, exactly (NOTE [measured window]); the event before it gives its first wall
        idx = list(range(max(0, len(batch_events) - window), len(batch_events))) if window else _steady(batch_events)
        steady_s = [walls[i] for i in idx]
        steady_w = [waits[i] for i in idx]
        steady_v = [int(batch_events[i]["videos"]) for i in idx]
        iv = rate_interval(steady_v, steady_s, round_size=workers) if idx else None
        # the interval's own point (stats: over the newest whole worker rounds) where there is one, so the
        # rate and its spread are one computation; too few batches for it: over all of them
        used = (len(idx) - len(idx) % max(1, workers)) if iv is not None else len(idx)
        used_s, used_w = sum(steady_s[len(idx) - used :]), sum(steady_w[len(idx) - used :])
        if used_s > 0:
            m["videos_per_s"] = iv.rate if iv is not None else sum(steady_v) / used_s
            m["frames_per_s"] = m["videos_per_s"] * num_frames
            m["wait_fraction"] = used_w / used_s
            m["bound"] = bound_of(m["wait_fraction"])
        if iv is not None and math.isfinite(iv.hi):
            m["videos_per_s_interval"] = iv.as_list()
            m["interval_batches"], m["interval_method"] = iv.batches, iv.method
        elif idx:
            note = no_interval_reason(steady_s, workers, iv.hi if iv else None)
            if note:
                m["interval_note"] = note
        pct = [w * 1000.0 for w in (steady_w or waits)]
        m["wait_ms_p50"], m["wait_ms_p95"] = percentile(pct, 50), percentile(pct, 95)
        m["wait_ms_p99"] = percentile(pct, 99)
        m.update(_contents(batch_events))  # type: ignore[typeddict-item]
    if finished is not None and finished.get("loop_s") is not None:
        m["loop_s"] = float(finished["loop_s"])
    split = (finished or {}).get("split_size", (ready or {}).get("dataset_len"))
    if split is not None:
        m["split_size"] = int(split)
    if (finished or {}).get("distinct_videos") is not None:
        m["distinct_videos"] = int(finished["distinct_videos"])  # type: ignore[index]
    return m


def _contents(batch_events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the batches held, from the fields ``data.batch.describe`` puts in each batch event."""
    out: dict[str, Any] = {}
    sizes = [int(e["bytes"]) for e in batch_events if e.get("bytes") is not None]
    if sizes:
        out["bytes_per_batch"] = int(percentile(sizes, 50))
    shape = _mode([tuple(e["shape"]) for e in batch_events if e.get("shape")])
    if shape is not None:
        out["batch_shape"] = [int(x) for x in shape]
    dtype = _mode([str(e["dtype"]) for e in batch_events if e.get("dtype")])
    if dtype is not None:
        out["batch_dtype"] = dtype
    clips = _mode([int(e["clips"]) for e in batch_events if e.get("clips") is not None])
    if clips is not None:
        out["clips_per_batch"] = clips
    return out


def peak_metrics(peaks: Peaks, leaked: Mapping[str, int]) -> Metrics:
    """The monitor's peaks over the whole tree and what the tree left behind."""
    m: Metrics = {
        "rss_peak_bytes": peaks.rss_bytes,
        "pss_peak_bytes": peaks.pss_bytes,
        "uss_peak_bytes": peaks.uss_bytes,
        "shm_peak_bytes": peaks.shm_used_bytes,
        "shm_files_peak": peaks.shm_files,
        "fds_peak": peaks.fds,
        "threads_peak": peaks.threads,
        "procs_peak": peaks.procs,
        "tmp_peak_bytes": peaks.tmp_bytes,
    }
    m.update(leaked)  # type: ignore[typeddict-item]
    return m


def skipped_videos(work: Path) -> int:
    skips = work / "skips.tsv"
    return len(skips.read_text().splitlines()) if skips.exists() else 0


def core_metrics(run: RunFacts) -> Metrics:
    """:func:`batch_metrics` of all batch events, the tree's peaks, skips and the GPU copy."""

    def first(kind: str) -> dict[str, Any] | None:
        found = run.of(kind)
        return found[0] if found else None

    measured = first("measured")
    m = batch_metrics(
        run.of("batch"),
        started=first("started"),
        finished=first("finished"),
        ready=first("ready"),
        num_frames=int(run.dataset.get("num_frames", 16)),
        workers=run.config.num_workers,
        window=_window(measured),
    )
    if measured and measured.get("stopped"):
        m["window_stopped"] = str(measured["stopped"])
    m.update(peak_metrics(run.monitor.peaks, run.leaked))
    full = hold_metrics(run.events, run.monitor.samples, run.monitor.shm_baseline)  # NOTE [full-queue hold]
    m.update(full)  # type: ignore[typeddict-item]
    if full.get("shm_full_queue_bytes") is not None:
        m["shm_peak_bytes"] = max(m.get("shm_peak_bytes", 0), int(full["shm_full_queue_bytes"]))
    m["skipped_videos"] = skipped_videos(run.work)
    h2d = run.of("h2d")
    if h2d:
        m["h2d_ms_p50"] = percentile([float(e["copy_s"]) for e in h2d], 50) * 1000
        m["vram_peak_bytes"] = max(int(e["vram_peak_bytes"]) for e in h2d)
    return m


def base_record(
    run: RunFacts,
    *,
    passed: bool,
    outcome: OutcomeRecord | None,
    metrics: Metrics,
    waits: list[float],
    verdicts: list[dict[str, Any]] | None = None,
    stderr_tail: str | None = None,
) -> RunRecord:
    """The fields every run's record has; the launch strategy gives what differs."""
    code, sig = split_exit(run.returncode)
    mon = run.monitor
    t0 = mon.samples[0].t if mon.samples else 0.0
    rec: RunRecord = {
        "id": run.name,
        "label": run.config.label,
        "config": run.config.to_dict(),
        "dataset": dict(run.dataset),
        "batches_requested": run.batches,
        "status": "passed" if passed else "failed",
        "outcome": outcome,
        "verdicts": verdicts or [],
        "metrics": metrics,
        "sandbox": run.sandbox,
        "fault": run.fault,
        "watchdog": run.limits,
        "batch_waits_s": waits,
        "step_s": run.step_s,
        "series": {**mon.series(), "batch_t": [float(e["t"]) - t0 for e in run.of("batch")]},
        "stacks": read_tail(run.work / "stacks.txt", STACKS_CHARS),
        "stdout_tail": run.tail("stdout.txt"),
        "stderr_tail": run.tail("stderr.txt") if stderr_tail is None else stderr_tail,
        "exit": {"code": code, "signal": sig, "mem_mode": run.mem_mode},
        "started_at": run.started_at,
        "wall_s": run.wall_s,
        "run_dir": str(run.work),
        "pids": sorted(mon.seen),
    }
    stream = {k: run.facts[k] for k in EVENT_STREAM_FACTS if k in run.facts}
    if stream:
        rec["event_stream"] = stream
    err = run.of("error")
    if err:
        rec["exit"]["error_type"] = err[0].get("type")
    if run.stuck is not None:
        rec["exit"]["ended_by_runner"] = run.stuck
    if passed and run.host is not None:  # a killed tree's CPU never reaches os.times (run.host docstring)
        rec["host"] = run.host
    return json_safe(rec)


def single_record(run: RunFacts) -> RunRecord:
    """The record of a single-process child: the metrics core, and the outcome if it failed."""
    batch_events, err = run.of("batch"), run.of("error")
    m = core_metrics(run)
    # a measured window (NOTE [measured window] in loop.py) ends when its rate is precise enough or its
    # time is up: then the child's ``measured`` event, not ``run.batches``, says how many batches it wanted
    wanted = len(batch_events) if run.of("measured") else run.batches
    passed = run_passed(
        fired=run.fired,
        returncode=run.returncode,
        finished=bool(run.of("finished")),
        errors=len(err),
        batches=[len(batch_events)],
        wanted=wanted,
    )
    stderr_tail = run.tail("stderr.txt")
    outcome: OutcomeRecord | None = None
    if not passed:
        code, sig = split_exit(run.returncode)
        outcome = classify(
            Evidence(
                exit_code=code,
                exit_signal=sig,
                error=err[0] if err else None,
                stderr_tail=stderr_tail,
                watchdog=run.fired,
                batches_done=len(batch_events),
                config=run.config.to_dict(),
                facts=run.facts,
            )
        )
    return base_record(
        run,
        passed=passed,
        outcome=outcome,
        metrics=m,
        waits=[float(e["wait_s"]) for e in batch_events],
        stderr_tail=stderr_tail,
    )
