"""What the stress tests do with a config: run it isolated, judge it, record it.

The pytest wiring (:mod:`plugin`) hands each test a :class:`Stress` bound to the session; the marker
modules (:mod:`.quick`, :mod:`.limits`, :mod:`.distributed`, :mod:`.validate`) and the tests in
``ssv2_fixtures/suite/`` call it. Every run's record gets what the stress layer knows through ONE function,
:func:`stamp`, which also decides ``status`` once (a run that loaded every batch fails when a verdict
failed); the report only reads it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..data.loader import LoaderConfig
from ..options import Settings
from ..run.child import DatasetSpec
from ..run.monitor import TreeMonitor
from ..run.record import single_process_rate
from ..run.request import OnEvent, RunRequest
from ..run.runner import RunResult, Watchdog, dataset_spec, run_config
from ..run.schema import DataErrorRecord, PipelineProbe, RunRecord
from ..run.strategy import strategy_for
from . import verdicts
from .breakdown import ensure_breakdown
from .budget import Budget, largest_fitting_batch, predict
from .plans import watchdog_for
from .probe import PROBE_BATCH_SIZE, PROBE_BATCHES, pipeline_probe, probe_applies
from .session import StressSession

Check = Callable[[RunResult], Sequence[dict[str, Any]]]
"""A verdict source for a run that loaded every batch (leak, degradation, node totals, targets)."""


def series(result: RunResult) -> Sequence[dict[str, Any]]:
    """Check: leak and degradation of a sustained-style run (:func:`verdicts.series_verdicts`)."""
    return verdicts.series_verdicts(result.record)


NO_GPU = "skipped: CUDA not available (pinned host-to-device copy and VRAM peak need a GPU)"
GPU_UNKNOWN = (
    "skipped: CUDA not known yet (the run ended before its loader was built, where the child "
    "checks torch.cuda.is_available())"
)


class BudgetWarning(UserWarning):
    """A config is predicted not to fit this (or the emulated) machine; it is run anyway, to show how."""


class DataError(ValueError):
    """The session's data cannot load; ``record`` is results.json's ``data_error``."""

    def __init__(self, record: DataErrorRecord) -> None:
        self.record = record
        super().__init__(record["message"])


def data_error(exc: BaseException) -> DataErrorRecord:
    """The ``data_error`` record of an exception that locates its problem (``file``, ``entry``, ``fix``
    attributes, as :class:`~ssv2_fixtures.data.annotations.AnnotationError` has); others give the message."""
    file = getattr(exc, "file", None)
    entry = getattr(exc, "entry", None)
    if entry is not None and getattr(exc, "entry_kind", None):
        entry = f"{exc.entry_kind} {entry}"  # type: ignore[attr-defined]
    field = getattr(exc, "field", None)
    if field is not None:
        entry = f"{entry + ', ' if entry else ''}field {field!r}"
    return {
        "kind": "data_error",
        "message": str(exc),
        "file": None if file is None else str(file),
        "entry": None if entry is None else str(entry),
        "fix": str(getattr(exc, "fix", "") or ""),
    }


def factory_spec(settings: Settings) -> dict[str, Any]:
    """The user's pipeline keys of the dataset spec (none without ``--dataset-factory``): the callable, its
    keyword arguments and its import path (``--dataset-path`` folders, then the invocation folder)."""
    if not settings.dataset_factory:
        return {}
    path = [str(p) for p in settings.dataset_path]
    here = str(settings.invocation_dir or Path.cwd().resolve())
    if here not in path:
        path.append(here)
    return {"factory": settings.dataset_factory, "factory_kwargs": settings.dataset_kwargs, "factory_path": path}


def prepare_dataset(settings: Settings) -> tuple[DatasetSpec, dict[str, Any]]:
    """The dataset every run of this session loads: ``--ssv2-root`` or the cached synthetic set, through
    the user's ``--dataset-factory`` when given. Raises :class:`DataError` when the data cannot load."""
    from ..data.annotations import AnnotationError

    try:
        spec, info = _prepare_dataset(settings)
    except AnnotationError as exc:
        raise DataError(data_error(exc)) from None  # the record carries all of it
    extra = factory_spec(settings)
    if extra:
        spec.update(extra)  # type: ignore[typeddict-item]  # DatasetSpec's factory keys (run/child.py)
        info.update(extra)
    return spec, info


def _prepare_dataset(settings: Settings) -> tuple[DatasetSpec, dict[str, Any]]:
    from ..data.annotations import load_index

    missing = "skip" if settings.ssv2_skip_missing else "error"
    common = dict(num_frames=settings.frames, size=settings.size, decoder=settings.decoder)
    if settings.ssv2_root is not None:
        root = Path(settings.ssv2_root)
        index = load_index(root, settings.ssv2_split, list_file=settings.ssv2_list_file, missing=missing)
        info = {
            "root": str(root),
            "synthetic": False,
            "split": settings.ssv2_split,
            "videos": len(index),
            "skipped_missing": index.skipped_missing,
            "codec": _codec(index.path(0)),
            **common,
        }
        spec = dataset_spec(
            root,
            settings.ssv2_split,
            list_file=str(settings.ssv2_list_file) if settings.ssv2_list_file else None,
            missing=missing,
            **common,
        )
        return spec, info
    from ..data.synth import SynthSpec, ensure_synthetic, read_manifest

    # Full-size annotations (168,913 train entries, hard links to the encoded pool): sustained runs never
    # wrap around a tiny epoch, and index, shuffle and temp-file behaviour are those of the real split.
    root = ensure_synthetic(SynthSpec(videos=settings.synthetic_videos, full_size=True), cache_dir=settings.ssv2_cache)
    man = read_manifest(root)
    split = settings.ssv2_split
    info = {
        "root": str(root),
        "synthetic": True,
        "split": split,
        "videos": int(man.get("splits", {}).get(split, 0)),
        "codec": man.get("spec", {}).get("codec", "vp9"),
        **common,
    }
    return dataset_spec(root, split, **common), info


def _codec(path: str) -> str | None:
    try:
        import av

        with av.open(path) as c:
            return c.streams.video[0].codec_context.name
    except Exception:
        return None


def probe_data_error(rec: RunRecord) -> DataErrorRecord | None:
    """The ``data_error`` record of a probe run that failed because the pipeline cannot load (a
    :class:`~ssv2_fixtures.data.factory.FactoryError` in the child: file, line and fix from its event)."""
    o = rec.get("outcome")
    if not o or o.get("kind") != "data_error":
        return None
    ev = o.get("evidence") or {}
    line = ev.get("line")
    return {
        "kind": "data_error",
        "message": str(o.get("message") or ""),
        "file": None if ev.get("file") is None else str(ev["file"]),
        "entry": None if line is None else f"line {line}",
        "fix": str(o.get("remedy") or ""),
    }


def probe_pipeline(session: StressSession, dataset: DatasetSpec) -> PipelineProbe | None:
    """Once per session, before its configs run, for a user's pipeline (``dataset["factory"]``): one
    isolated W=0 run that builds it and measures bytes per item from real batches, the RSS of one loading
    process and its single-process item rate (the decode limit's base). The facts go to
    ``session.probe`` (results.json ``probe``), ``base_rss`` and ``decode_rate``.

    A pipeline that cannot load raises :class:`DataError` (after ``session.fail_data``); any other
    failure leaves no probe (the configs' runs then name it themselves)."""
    if not dataset.get("factory") or session.probe is not None or session.data_error is not None:
        return session.probe
    s = session.settings
    bs = max(1, min([PROBE_BATCH_SIZE, *s.batch_sizes]))
    ds = dataset.copy()
    ds["train"] = True  # the long runs' (and the budget's) mode
    ds["check_collate"] = True  # an uncollatable item is named here, once, not in every config's run
    called: dict[str, Any] = {}

    def on_ready(ev: dict[str, Any], _mon: TreeMonitor) -> None:
        if ev.get("ev") == "ready" and isinstance(ev.get("factory_args"), list):
            called["factory_args"] = [str(a) for a in ev["factory_args"]]

    r = run_config(
        RunRequest(
            ds,
            LoaderConfig(batch_size=bs, num_workers=0),
            PROBE_BATCHES,
            run_dir=session.runs_dir,
            name="pipeline-probe",
            watchdog=watchdog_for(s),
            on_event=on_ready,
        )
    )
    # results.json "dataset": the keyword names the factory took, so the report's snippet calls it so
    session.dataset.update(called)
    err = probe_data_error(r.record)
    if err is not None:
        session.fail_data(err)
        raise DataError(err)
    if not r.passed:
        return None
    session.probe = pipeline_probe(r.record)
    if session.probe is not None:
        session.decode_rate = session.probe["items_per_s"]
        session.base_rss = session.probe["rss_bytes"]
        session.flush()
    return session.probe


def applicable_bytes(session: StressSession, dataset: DatasetSpec) -> float | None:
    """Bytes per item measured by the session's pipeline probe, when it measured ``dataset``'s pipeline;
    ``None``: the built-in arithmetic applies."""
    p: PipelineProbe | None = session.probe
    return p["bytes_per_item"] if p is not None and probe_applies(p, dataset) else None


def session_budget(session: StressSession, dataset: DatasetSpec, config: LoaderConfig) -> Budget:
    """``config``'s predicted needs in this session: the probe's measured bytes per item and RSS when it
    measured ``dataset``'s pipeline, else the built-in arithmetic (pre-flight and every run use this)."""
    return predict(
        config,
        frames=int(dataset.get("num_frames", 16)),
        size=int(dataset.get("size", 224)),
        base_rss=session.base_rss,
        bytes_per_item=applicable_bytes(session, dataset),
    )


def fits(need: int, workers: int, available: int) -> bool:
    """The one "fits in shared memory" rule: a loader with workers holds ``need`` bytes of batches in
    flight in /dev/shm; a W=0 loader passes none through it."""
    return not workers or need <= available


def available_shm(settings: Settings, machine: dict[str, Any]) -> int:
    sb = settings.sandbox
    if sb is not None and sb.shm_bytes is not None:
        return sb.shm_bytes
    return int(machine.get("shm_free_bytes") or 0)


@dataclass(frozen=True)
class StressFacts:
    """What the stress layer knows about a run that the runner does not."""

    test_id: str
    kind: str  # quick / sustained / limits / validate / distributed
    phase: str | None
    budget: dict[str, Any]
    requested_workers: int | None  # asked for, before capping (None: not capped)
    gpu: str | None = None  # why the GPU checks were skipped
    decode_limit: float | None = None


def stamp(rec: RunRecord, facts: StressFacts, checks: Iterable[dict[str, Any]] = ()) -> RunRecord:
    """Add the stress layer's facts and verdicts to a run's record and decide its ``status`` — the one
    place where pass/fail is decided after the runner (the runner's own verdicts, e.g. distributed
    coverage, count too)."""
    rec["id"], rec["kind"], rec["budget"] = facts.test_id, facts.kind, facts.budget
    if facts.phase:
        rec["phase"] = facts.phase
    if facts.requested_workers is not None and facts.requested_workers != rec["config"]["num_workers"]:
        rec["requested_workers"] = facts.requested_workers
    if facts.gpu:
        rec["gpu"] = facts.gpu
    if facts.decode_limit is not None:
        rec["metrics"]["decode_limit_videos_per_s"] = facts.decode_limit
    rec["verdicts"] = [*(rec.get("verdicts") or []), *checks]
    rec["status"] = verdicts.decide(rec["status"], rec["verdicts"])
    return rec


@dataclass
class Stress:
    """One test's access to the runner, bound to the session."""

    session: StressSession
    dataset: DatasetSpec
    test_id: str
    progress: Callable[[str], None] | None = None
    test_name: str = ""  # e.g. test_ladder[phase3-bs4-w2-pf2]: what --inject-fault's :TEST matches

    @property
    def settings(self) -> Settings:
        return self.session.settings

    @property
    def bytes_per_item(self) -> float | None:
        """Measured by the session's pipeline probe (a user's pipeline); ``None``: the built-in arithmetic."""
        return applicable_bytes(self.session, self.dataset)

    def probe(self) -> PipelineProbe | None:
        """The session's pipeline probe (:func:`probe_pipeline`), run now if it has not run yet."""
        if self.session.data_error is not None and self.dataset.get("factory"):
            raise DataError(self.session.data_error)
        return probe_pipeline(self.session, self.dataset)

    def budget(self, config: LoaderConfig) -> Budget:
        return session_budget(self.session, self.dataset, config)

    def largest_fitting_batch(self, config: LoaderConfig) -> int | None:
        """The largest batch size whose predicted shm fits what this (or the emulated) machine has."""
        return largest_fitting_batch(
            config,
            available_shm(self.settings, self.session.machine),
            frames=int(self.dataset.get("num_frames", 16)),
            size=int(self.dataset.get("size", 224)),
            bytes_per_item=self.bytes_per_item,
        )

    def watchdog(self) -> Watchdog:
        return watchdog_for(self.settings)

    def _fits(self, label: str, need: int, workers: int) -> tuple[bool, int]:
        shm_avail = available_shm(self.settings, self.session.machine)
        ok = fits(need, workers, shm_avail)
        if not ok:
            warnings.warn(
                BudgetWarning(
                    f"{label}: predicted shared memory {need / 2**20:.0f} MiB exceeds the "
                    f"{shm_avail / 2**20:.0f} MiB available; running it to show the failure"
                ),
                stacklevel=3,  # in run or run_distributed
            )
        return ok, shm_avail

    def _dataset(self, train: bool) -> DatasetSpec:
        ds = self.dataset.copy()
        ds["train"] = train
        return ds

    def _gpu(self) -> str | None:
        cuda = self.session.machine.get("cuda")
        return None if cuda else GPU_UNKNOWN if cuda is None else NO_GPU

    def _cuda(self, on_event: OnEvent | None) -> tuple[bool, OnEvent | None]:
        """The ``cuda`` to ask a run for, and its event hook. Until a run has said whether its torch sees a
        GPU, the machine's ``cuda`` is unknown (``None``): the run is asked to try (its child checks
        ``torch.cuda.is_available()`` itself) and its ``ready`` event's answer becomes the machine's."""
        machine = self.session.machine
        if machine.get("cuda") is not None:
            return bool(machine["cuda"]), on_event

        def learn(ev: dict[str, Any], mon: TreeMonitor) -> None:
            if ev.get("ev") == "ready" and "cuda" in ev and machine.get("cuda") is None:
                machine["cuda"] = bool(ev["cuda"])
            if on_event is not None:
                on_event(ev, mon)

        return True, learn

    @staticmethod
    def _verdicts(result: RunResult, checks: Sequence[Check]) -> list[dict[str, Any]]:
        # only a run that loaded every batch is judged further: a crash is its own verdict
        return [v for c in checks for v in c(result)] if result.passed else []

    def run(
        self,
        config: LoaderConfig,
        batches: int,
        *,
        kind: str,
        phase: str | None = None,
        train: bool = False,
        fault_ok: bool = True,
        live: bool = False,
        run_base: str | os.PathLike[str] | None = None,
        requested_workers: int | None = None,
        checks: Sequence[Check] = (),
        measure: dict[str, Any] | None = None,
        decode_rate: bool = False,
    ) -> RunResult:
        """Run ``config`` isolated, stamp its record (:func:`stamp`) with ``checks``' verdicts.
        ``decode_rate``: this run is the single-process decode-rate measurement (quick phase 1, BS=1 W=0,
        :attr:`~.plans.Phase.decode_rate`), so the session's decode limit needs no probe run of its own."""
        self.probe()  # a user's pipeline: bytes per item, RSS and rate measured before any config runs
        ensure_breakdown(self.session, self.dataset)  # where the item time goes: once per session, any pipeline
        limit = self.decode_limit(config, probe=kind != "quick")  # also measures the RSS baseline
        name = f"{kind}-{phase or config.label}"
        request = RunRequest(
            self._dataset(train), config, batches, run_dir=run_base, name=name, measure=measure or None
        )
        return self._run(
            request,
            fault_ok=fault_ok,
            kind=kind,
            phase=phase,
            live=live,
            requested_workers=requested_workers,
            checks=checks,
            limit=limit,
            decode_rate=decode_rate,
        )

    def decode_limit(self, config: LoaderConfig, *, probe: bool) -> float | None:
        """L = single-process decode rate × min(workers, cores): the most any worker count can reach here.

        The rate is measured once per session, isolated like any run (BS=4, W=0, 68 clips), unless the quick
        ladder's phase 1 (BS=1, W=0: a single-process decode rate too, :attr:`~.plans.Phase.decode_rate`)
        already gave it. For a user's pipeline it is the pipeline probe's single-process item rate
        (:func:`probe_pipeline`): L for *their* pipeline, one run for both."""
        if self.dataset.get("factory"):
            probe = False  # the pipeline probe measured it (or could not: then there is no L)
        if self.session.decode_rate is None and probe:
            r = run_config(
                RunRequest(
                    self._dataset(False),
                    LoaderConfig(batch_size=4, num_workers=0),
                    17,
                    run_dir=self.session.runs_dir,
                    name="decode-rate-probe",
                    watchdog=self.watchdog(),
                )
            )
            self.session.decode_rate = single_process_rate(r.metrics) if r.passed else None
            self.session.base_rss = r.metrics.get("rss_peak_bytes") if r.passed else None
        if not self.session.decode_rate:
            return None
        cores = int(self.session.machine.get("cores") or 1)
        return float(self.session.decode_rate) * min(max(config.num_workers, 1), cores)

    def _fault(self, fault_ok: bool) -> Any:
        s = self.settings
        if fault_ok and s.fault and (not s.fault_target or s.fault_target in (self.test_name or self.test_id)):
            return s.fault
        return None

    def run_distributed(
        self,
        config: LoaderConfig,
        batches: int,
        *,
        nproc_per_node: int | None = None,
        limit: int | None = None,
        fault_ok: bool = True,
        live: bool = False,
        requested_workers: int | None = None,
        checks: Sequence[Check] = (),
    ) -> RunResult:
        """``config`` in every rank of a torchrun job (``--nproc-per-node`` ranks, or ``nproc_per_node``;
        multi-node from the session's launch settings), ``limit`` items of the dataset, train sampling.

        The shared-memory budget is the node's: every rank's loader needs its own batches in flight.
        """
        s = self.settings
        self.probe()
        ensure_breakdown(self.session, self.dataset)  # a distributed-only session gets its breakdown too (issue #23)
        launch = s.launch if nproc_per_node is None else replace(s.launch, nproc_per_node=nproc_per_node)
        n = launch.nproc_per_node
        ds = self._dataset(True)
        if limit is not None:
            ds["limit"] = limit
        phase = f"{n} rank{'s' if n != 1 else ''}" + (f" × {launch.nnodes} nodes" if launch.nnodes > 1 else "")
        request = RunRequest(ds, config, batches, name=f"distributed-{config.label}-n{n}", launch=launch)
        return self._run(
            request,
            fault_ok=fault_ok,
            kind="distributed",
            phase=phase,
            live=live,
            requested_workers=requested_workers,
            checks=checks,
        )

    def _run(
        self,
        request: RunRequest,
        *,
        fault_ok: bool,
        kind: str,
        phase: str | None,
        live: bool,
        requested_workers: int | None,
        checks: Sequence[Check],
        limit: float | None = None,
        decode_rate: bool = False,
    ) -> RunResult:
        """The one path of every stress run, one process or a torchrun job (``request.launch``): budget, fit,
        cuda, the isolated run under the session's settings (sandbox, watchdog, step time, fault drill), then its
        record stamped (:func:`stamp`). A torchrun job's shared-memory budget is the node's: every rank's loader
        holds its own batches in flight."""
        s, config, batches = self.settings, request.config, request.batches
        single = request.launch is None
        ranks = strategy_for(request.launch).ranks  # loading at once on this node, each with its own budget
        budget = self.budget(config)
        need = budget.shm_bytes * ranks
        label = config.label if single else f"{config.label} × {ranks} ranks"
        fit, shm_avail = self._fits(label, need, config.num_workers)
        cuda, on_event = self._cuda(self._live(config, batches) if live and self.progress else None)
        result = run_config(
            replace(
                request,
                fault=self._fault(fault_ok),
                sandbox=s.sandbox,
                watchdog=self.watchdog(),
                run_dir=request.run_dir or self.session.runs_dir,
                on_event=on_event,
                cuda=cuda,
                step_s=float(s.step_time or 0.0),
                extra_facts={"shm_need_bytes": need, "shm_available_bytes": shm_avail},
            )
        )
        if decode_rate and result.passed and self.session.decode_rate is None:
            # videos over the time spent decoding: the loop's --step-time is not the decoder's
            self.session.decode_rate = single_process_rate(result.metrics)
            self.session.base_rss = result.metrics.get("rss_peak_bytes")
            limit = self.decode_limit(config, probe=False)
        if single:
            recorded = {**budget.to_dict(), "base_rss_measured": self.session.base_rss is not None}
        else:
            recorded = {
                **budget.to_dict(),
                "shm_bytes": need,
                "rank_shm_bytes": budget.shm_bytes,
                "rss_bytes": budget.rss_bytes * ranks,
                "ranks": ranks,
            }
        recorded.update(shm_available_bytes=shm_avail, fits=fit)
        facts = StressFacts(self.test_id, kind, phase, recorded, requested_workers, self._gpu(), limit)
        stamp(result.record, facts, self._verdicts(result, checks))
        return result

    def record(self, result: RunResult) -> None:
        self.session.record(result.record)

    def _live(self, config: LoaderConfig, batches: int) -> Callable[[dict[str, Any], TreeMonitor], None]:
        every = max(1, batches // 10)
        state: dict[str, Any] = {"t0": None, "v": 0, "rank": None, "followed": False}

        def on_event(ev: dict[str, Any], mon: TreeMonitor) -> None:
            if ev.get("ev") != "batch":
                return
            if not state["followed"]:  # ranks: follow the first rank that reports a batch
                state["rank"], state["followed"] = ev.get("rank"), True
            if ev.get("rank") != state["rank"]:
                return
            i = int(ev["i"])
            if state["t0"] is None:
                state["t0"] = ev["t"]
            else:
                state["v"] += int(ev["videos"])
            if (i + 1) % every and i + 1 != batches:
                return
            dt = ev["t"] - state["t0"]
            rate = state["v"] / dt if dt > 0 else 0.0
            last = mon.samples[-1] if mon.samples else None
            rss = f"{last.rss / 2**30:.2f} GiB" if last else "?"
            shm = f"{last.shm_used / 2**20:.0f} MiB" if last else "?"
            assert self.progress is not None
            who = f" rank {state['rank']}" if state["rank"] is not None else ""
            node = " (node)" if state["rank"] is not None else ""
            self.progress(
                f"  {config.label}{who}: batch {i + 1}/{batches}  {rate:.1f} videos/s  RSS{node} {rss}  shm{node} {shm}"
            )

        return on_event
