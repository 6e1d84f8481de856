"""The results schema: every record ``results.json`` holds, as TypedDicts, in one module.

:class:`ResultsFile` is the file; :class:`RunRecord` one run of one config (its :class:`Metrics`, its
:class:`OutcomeRecord`, its :class:`HostLoad`); :class:`DataErrorRecord` the session's data error,
:class:`PipelineProbe` the probe of a user's pipeline, :class:`TuneRecord` one ``-m tune`` entry.
The modules that build the records (:mod:`.record`, :mod:`.outcome`, :mod:`.host`,
:mod:`ssv2_fixtures.stress.session`, :mod:`ssv2_fixtures.stress.probe`, :mod:`ssv2_fixtures.stress.tune_model`)
and the reports that read them all import the types from here, so this module imports nothing of the package:
it sits at the bottom of every layer that writes or reads results.json.
"""

from __future__ import annotations

from typing import Any, TypedDict

SCHEMA = 1
KNOWN_SCHEMAS = (1,)


class OutcomeRecord(TypedDict):
    kind: str
    batch: int | None
    message: str
    evidence: dict[str, Any]
    remedy: str


class HostLoad(TypedDict):
    foreign_cores: float  # mean cores in use by processes outside the run (and outside this process)
    steal_frac: float  # share of the usable cores' time the hypervisor stole
    seconds: float  # between the two marks
    cores: int


class Metrics(TypedDict, total=False):
    batches: int  # batches received by the main process
    videos: int
    # steady state (batches after the first, or the measured window; whole worker rounds): videos / the loop's
    # wall time for them, step included — the rate the training loop received (record.batch_metrics)
    videos_per_s: float
    frames_per_s: float
    wait_fraction: float  # the share of that wall time spent waiting in next() (≈ 1 without --step-time)
    bound: str  # "step" (waited for data ≤ 20 % of the time: the loader keeps up) or "data" (record.bound_of)
    loop_s: float
    wait_ms_p50: float
    wait_ms_p95: float
    wait_ms_p99: float
    first_batch_s: float
    startup_s: float  # spawn → first batch received
    rss_peak_bytes: int
    pss_peak_bytes: int
    uss_peak_bytes: int
    shm_peak_bytes: int  # the whole run's sampled peak, the full-queue hold included (NOTE [full-queue hold])
    shm_full_queue_bytes: int  # /dev/shm in use with every prefetch slot full + the batch a step holds
    full_queue_batches: int  # batches in /dev/shm then (W × prefetch_factor + 1 when all landed)
    full_queue_s: float  # how long the hold took
    full_queue_stopped: str  # "full" (all landed), "stable" (shm stopped growing) or "cap" (time bound)
    shm_files_peak: int
    fds_peak: int
    threads_peak: int
    procs_peak: int
    tmp_peak_bytes: int
    leaked_shm_files: int
    leaked_shm_bytes: int
    leaked_tmp_files: int
    leaked_tmp_bytes: int
    leaked_mp_dirs: int  # multiprocessing pymp-* folders left in TMPDIR (a process ended by a signal)
    skipped_videos: int
    h2d_ms_p50: float
    vram_peak_bytes: int
    decode_limit_videos_per_s: float  # decode-only rate of this dataset on this machine: the loader's ceiling
    # the rate's spread (stats.rate_interval over the batches after the first): [lo, hi], absent if too few
    videos_per_s_interval: list[float]
    interval_batches: int
    interval_method: str  # "batch-means-t95"
    interval_note: str  # why there is no interval: "too few batches (…)" / "a group took no time"
    # a measured window (the child's ``measured`` event, NOTE [measured window] in loop.py): how it ended,
    # "converged" (interval within target), "time" (max_s reached) or "batches" (max_batches reached)
    window_stopped: str
    # what the batches held (data.batch.describe in the child): medians / most common over the batches
    bytes_per_batch: int
    batch_shape: list[int]
    batch_dtype: str
    clips_per_batch: int
    split_size: int  # items in the split the child loaded from
    distinct_videos: int  # distinct items the run's batches held
    # -m distributed (node totals; the per-rank rows are RunRecord.ranks): batches is the least any local
    # rank received, videos and videos_per_s are summed over the node's ranks
    batches_total: int
    ranks: int  # local ranks (torchrun --nproc-per-node)
    world_size: int
    procs_expected: int  # ranks × (1 + num_workers)
    rank_procs_peak: int  # processes in the ranks' subtrees at once (without torchrun's agent)
    rank_rss_peak_bytes: int
    rank_videos_per_s_min: float
    rank_videos_per_s_max: float
    teardown_s: float  # first rank error → torchrun gone (the other ranks ended)


class RunRecord(TypedDict, total=False):
    id: str  # the pytest test id (or the config label through the API)
    label: str
    config: dict[str, Any]
    dataset: dict[str, Any]
    batches_requested: int
    status: str  # "passed" | "failed"
    outcome: OutcomeRecord | None
    verdicts: list[dict[str, Any]]  # leak / degradation / target verdicts added by the stress tests
    metrics: Metrics
    budget: dict[str, Any]
    sandbox: dict[str, Any] | None
    fault: str | None
    watchdog: dict[str, float]
    batch_waits_s: list[float]
    step_s: float  # --step-time held after each batch: the loop's time per batch is wait + step
    series: dict[str, list[Any]]
    ranks: list[dict[str, Any]]  # -m distributed: one row per local rank (rank, local_rank, node_rank, pid,
    # state finished/failed/ended, outcome kind or None, batches, videos,
    # videos_per_s, waits, rss_peak_bytes of its subtree, exit, note)
    distributed: dict[str, Any]  # -m distributed: launch (nproc_per_node, nnodes, node_rank, world_size),
    # failed_ranks (torchrun's summary), coverage (per-epoch checks)
    stacks: str
    event_stream: dict[str, Any]  # only when the runner saw one: unparsable event lines and on_event hook
    # errors (bad_event_lines, first_bad_event_line, on_event_errors, ...)
    stdout_tail: str
    stderr_tail: str
    exit: dict[str, Any]
    started_at: str
    wall_s: float
    run_dir: str
    pids: list[int]  # every process the monitor saw in the child's tree
    phase: str
    kind: str  # which stress test produced it: quick / sustained / limits / validate
    requested_workers: int  # the worker count asked for, before capping to the machine's cores
    gpu: str  # why the pinned host-to-device check was skipped (no CUDA)
    host: HostLoad  # passed runs: CPU used outside the run and stolen while it ran (run.host)


class DataErrorRecord(TypedDict):
    """results.json's top-level ``data_error``: the session's data could not load, so nothing ran."""

    kind: str  # always "data_error"
    message: str  # the whole sentence, as pytest shows it
    file: str | None  # the annotation file, video or factory module at fault
    entry: str | None  # e.g. "entry 12" / "line 3" / "field 'template'"; None: the file as a whole
    fix: str


class PipelineProbe(TypedDict):
    """results.json's top-level ``probe``: one isolated W=0 run of the session's pipeline."""

    bytes_per_item: float  # bytes_per_batch / videos per batch, from the batches' tensors
    batch_shape: list[int] | None
    batch_dtype: str | None
    clips_per_item: float | None
    rss_bytes: int | None  # RSS peak of the one loading process
    items_per_s: float | None  # single-process rate: the decode limit's base (L) for this pipeline
    batch_size: int
    batches: int
    label: str
    factory: str | None  # the pipeline it measured: the bytes hold for this factory and these kwargs
    factory_kwargs: dict[str, Any]


class StageRecord(TypedDict):
    s_per_item: float  # seconds of one item spent in this stage (one process)
    share: float  # of the item time; the four stages' shares add up to 1


class HotSpot(TypedDict):
    function: str
    file: str
    line: int
    s_per_item: float  # own time per item under the profiler (its overhead is in ``method``)


class BreakdownCeilings(TypedDict):
    decode: float | None  # videos/s: the decoder alone × the cores the config can use
    item: float | None  # the whole pipeline in one process × cores (the decode limit)
    transfer: float | None  # ready-made batches through the same DataLoader path
    achieved: float | None  # the session's best measured rate


class HelpRecord(TypedDict, total=False):
    """One entry of the breakdown's ``what_would_help``: a change for one stage, with the ceiling it would
    give where the suite measured it (``measured``), else advice worded as not measured."""

    stage: str  # the stage it helps: decode / transform / collate / other / transfer
    change: str  # what to change, in words
    measured: bool
    ceiling: float  # videos/s with the change (measured entries)
    now: float  # the same ceiling as the pipeline is now
    ceiling_name: str  # which ceiling ``ceiling`` and ``now`` are (decode / transfer)
    bytes_per_batch: int  # transfer entries: a batch's bytes with the change
    bytes_now: int  # and as the pipeline sends it now


class _BreakdownCore(TypedDict):
    item_s: float  # seconds per video in one process (the probe's own item time)
    stages: dict[str, StageRecord]  # decode / transform / collate / other
    ceilings: BreakdownCeilings
    binding: str  # a stage name or "transfer"
    hot: list[HotSpot]  # the 5 functions with the most own time per item
    method: str  # how each number was measured


class BreakdownRecord(_BreakdownCore, total=False):
    """results.json's top-level ``breakdown`` (issue #23, :mod:`ssv2_fixtures.run.breakdown`)."""

    decode_alone_s: float  # seconds per video of the decoder alone: the item's decoder calls replayed
    what_would_help: list[HelpRecord]  # per stage; the report leads with the binding stage's
    stalls: StallRecord  # probe items left out of the stages: a stall outside the decoder (run/breakdown.py)


class StallRecord(TypedDict):
    items: int  # how many of the probe's timed items stalled
    s: float  # their __getitem__ seconds, all together


class InvocationRecord(TypedDict):
    """How pytest was started (``config.invocation_params``): the report's Next steps repeat the user's
    own options (their factory, paths, root) in the commands they suggest."""

    args: list[str]  # the arguments after ``pytest``, as given
    dir: str  # the folder pytest ran in (relative paths in ``args`` are relative to it)


class DriftControl(TypedDict):
    t: float  # unix time of the control
    videos_per_s: float  # the session pipeline's single-process item rate then


class DriftRecord(TypedDict, total=False):
    """results.json's ``"drift"`` (run/drift.py): the same reference measurement at the start, between groups
    of configs and at the end; ``max_change`` = max / min − 1 over the controls (relative to the smaller)."""

    controls: list[DriftControl]
    max_change: float
    slowest_t: float
    fastest_t: float


class RatioRecord(TypedDict, total=False):
    rounds: list[float]  # the candidate's rate / the reference's, one per round
    mean: float
    interval: list[float]  # [lo, hi]: Student's t 95 % over the rounds (absent with fewer than 2)


class InterleavedDecision(TypedDict, total=False):
    """A decision between close candidates re-measured in alternating windows (A B C A B C …, run/drift.py)."""

    candidates: list[str]
    rounds: list[dict[str, float]]  # per round: candidate -> videos/s
    reference: str  # the ratios' denominator
    ratios: dict[str, RatioRecord]
    leader: str | None  # highest mean ratio
    faster: str | None  # the leader, when every other candidate is slower beyond its interval
    tie: list[str]  # the leader and those that cannot be told slower
    text: str
    round_s: float  # seconds per window
    seconds: float  # the whole comparison's wall time
    stopped: str  # why the rounds stopped, or why none ran (skipped: …)
    windows: str  # "paused": each candidate's child started once, stopped between its windows; "fresh": one per window
    startup_s: float  # paused: the candidates' start-ups before the rounds, together


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
    capped: list[str]  # quick-ladder notes: worker counts capped to the machine's cores
    tune: list[dict[str, Any]]  # -m tune: one TuneRecord per batch size
    data_error: DataErrorRecord  # the session's data could not load, so nothing ran
    probe: PipelineProbe  # one isolated W=0 run of a user's pipeline
    invocation: InvocationRecord  # the pytest command line of the session (absent outside pytest)
    drift: DriftRecord  # the session's drift controls (run/drift.py)
    interleaved: InterleavedDecision  # the recommendation's tie set re-measured in alternating windows
    breakdown: BreakdownRecord  # where one item's time goes, the ceilings, the binding stage


class BestRecord(TypedDict):
    config: dict[str, Any]
    videos_per_s: float
    interval: list[float]


class TriedRecord(TypedDict, total=False):
    config: dict[str, Any]
    videos_per_s: float  # passed probes
    interval: list[float]  # passed probes with enough batches for one
    kind: str  # failed probes (outcome kind), skipped ones (predicted_unfit), failed confirmations
    batches: int
    seconds: float
    stage: str  # workers / knobs / halving / confirm


class TuneRecord(TypedDict):
    """One entry of results.json's ``"tune"`` list: exactly these keys (other tools read them)."""

    batch_size: int
    best: BestRecord | None
    confirmed: bool
    ties: list[BestRecord]
    tried: list[TriedRecord]
    budget_s: float
    spent_s: float
    target_videos_per_s: float | None
    interleaved: InterleavedDecision | None  # the final tie re-measured in interleaved rounds (issue #24)
