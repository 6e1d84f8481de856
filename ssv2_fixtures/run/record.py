"""JSON records: one run of one config (:class:`RunRecord`) and the session's ``results.json``.

``results.json`` carries ``schema``; :func:`read_results` reads the schemas it knows and refuses a
newer one by name. Writes are atomic (temp file + ``os.replace``) so a killed session leaves the last
complete file, never a torn one.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypedDict

from .outcome import OutcomeRecord

SCHEMA = 1
KNOWN_SCHEMAS = (1,)


class Metrics(TypedDict, total=False):
    batches: int                 # batches received by the main process
    videos: int
    videos_per_s: float          # steady state: batches after the first, videos / summed waits
    frames_per_s: float
    loop_videos_per_s: float     # independent: videos / wall time of the batch loop (after the first)
    loop_s: float
    wait_ms_p50: float
    wait_ms_p95: float
    wait_ms_p99: float
    first_batch_s: float
    startup_s: float             # spawn → first batch received
    rss_peak_bytes: int
    pss_peak_bytes: int
    uss_peak_bytes: int
    shm_peak_bytes: int
    shm_files_peak: int
    fds_peak: int
    threads_peak: int
    procs_peak: int
    tmp_peak_bytes: int
    leaked_shm_files: int
    leaked_shm_bytes: int
    leaked_tmp_files: int
    leaked_tmp_bytes: int
    leaked_mp_dirs: int          # multiprocessing pymp-* folders left in TMPDIR (a process ended by a signal)
    skipped_videos: int
    h2d_ms_p50: float
    vram_peak_bytes: int
    decode_limit_videos_per_s: float  # decode-only rate of this dataset on this machine: the loader's ceiling
    # -m distributed (node totals; the per-rank rows are RunRecord.ranks): batches is the least any local
    # rank received, videos and videos_per_s are summed over the node's ranks
    batches_total: int
    ranks: int                   # local ranks (torchrun --nproc-per-node)
    world_size: int
    procs_expected: int          # ranks × (1 + num_workers)
    rank_procs_peak: int         # processes in the ranks' subtrees at once (without torchrun's agent)
    rank_rss_peak_bytes: int
    rank_videos_per_s_min: float
    rank_videos_per_s_max: float
    teardown_s: float            # first rank error → torchrun gone (the other ranks ended)


class RunRecord(TypedDict, total=False):
    id: str                      # the pytest test id (or the config label through the API)
    label: str
    config: dict[str, Any]
    dataset: dict[str, Any]
    batches_requested: int
    status: str                  # "passed" | "failed"
    outcome: OutcomeRecord | None
    verdicts: list[dict[str, Any]]   # leak / degradation / target verdicts added by the stress tests
    metrics: Metrics
    budget: dict[str, Any]
    sandbox: dict[str, Any] | None
    fault: str | None
    watchdog: dict[str, float]
    batch_waits_s: list[float]
    series: dict[str, list[Any]]
    ranks: list[dict[str, Any]]      # -m distributed: one row per local rank (rank, local_rank, node_rank, pid,
                                     # state finished/failed/ended, outcome kind or None, batches, videos,
                                     # videos_per_s, waits, rss_peak_bytes of its subtree, exit, note)
    distributed: dict[str, Any]      # -m distributed: launch (nproc_per_node, nnodes, node_rank, world_size),
                                     # failed_ranks (torchrun's summary), coverage (per-epoch checks)
    stacks: str
    stdout_tail: str
    stderr_tail: str
    exit: dict[str, Any]
    started_at: str
    wall_s: float
    run_dir: str
    pids: list[int]              # every process the monitor saw in the child's tree
    phase: str
    kind: str                    # which stress test produced it: quick / sustained / limits / validate


class ResultsFile(TypedDict, total=False):
    schema: int
    run_id: str
    created: str
    updated: str
    machine: dict[str, Any]
    dataset: dict[str, Any]
    settings: dict[str, Any]
    results: list[RunRecord]
    limits: list[dict[str, Any]]
    validate: dict[str, Any] | None


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


def write_atomic(path: str | os.PathLike[str], data: Any) -> None:
    write_atomic_bytes(path, json.dumps(data, indent=1, default=str).encode())


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
