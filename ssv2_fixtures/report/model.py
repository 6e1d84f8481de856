"""Reading a session's ``results.json`` into :class:`Run` views.

The report reads records and never decides: a run passed when its record says ``status ==
"passed"`` (the stress layer decides that once, after its verdicts). Fields that older files lack
are read as absent (an interval, a split size, a config: shown as ``?``), never recomputed from other
fields.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Union, cast

from ..data.loader import LoaderConfig, effective_prefetch
from ..run.host import is_busy
from ..run.record import ResultsError, read_results
from ..run.schema import ResultsFile, RunRecord
from ..run.shm import shm_slots_for
from .fmt import verdict_ok

Source = Union[str, "os.PathLike[str]", ResultsFile]

KIND_ORDER = ("quick", "tune", "limits", "sustained", "validate", "distributed")
SUSTAINED_KINDS = ("sustained", "validate")  # long runs: the only ones a recommendation trusts as is
SHM_KINDS = ("shm_exhausted", "bus_error")
MEMORY_KINDS = ("oom_killed", "memory_error", "worker_killed")

CEILING_MARGIN = 0.4
"""How far above the item ceiling a rate's lower bound must be to be called a measurement error (NOTE [item
ceiling])."""

# NOTE [item ceiling]
# The item ceiling is the session's single-process rate (a W=0 run: videos over the time spent decoding) ×
# the machine's cores: what the cores could deliver if each decoded like that one process. A rate above it is
# not a faster loader but a mismeasurement (videos over the summed waits once made a loop with a step look
# 166 % of it). The check must not cry wolf: a flagged rate is left out of the findings and the
# recommendation. Measured on the project's 2-core VM beside other work (benchmarks/README.md, "The item
# ceiling's base"; benchmarks/single_process_rate.py, W=0/1/2 at BS=4 interleaved, 10 reps in two runs):
# - W=0 is not the slower decoder: videos per child CPU-second (start-up included) were highest at W=0 in both
#   runs (27.5 and 29.6 against 25.4/27.2 at W=1 and 24.6/26.5 at W=2). The child runs one intra-op thread
#   and no thread of its own beside the loop (the monitor samples from the runner's process), and the
#   full-queue hold comes after the loop, outside every rate. So the ceiling's base stays the W=0 rate.
# - What breaks the ceiling is the CPU a run is given: with 1.0–1.7 foreign cores busy, a W=0 child got
#   0.24–0.68 of a core, W=2 0.47–0.99; W=1 ran 0.89–2.40 × the same rep's W=0 and W=2's lower bound reached
#   1.14 × (W=0 rate × 2 cores): the old rule called 3 of 10 such W=2 runs measurement errors (the first
#   report: W=0 14–22 videos/s, W=2 65, i.e. 1.5–2.3 ×). No margin bounds that (the share falls with the
#   load), so a run recorded on a busy host (its ``host`` record, run.host.is_busy) is not judged, nor is any
#   run of a session in which some run recorded one (:func:`measurement_errors`: the single-process rate may
#   have been measured then).
# - On an idle host the single-process rate is still one short window of a drifting machine: this VM's
#   one-process decode rate spans 33.1–46.5 videos/s between its 5th and 95th percentile 1 s windows
#   (benchmarks/README.md, "The machine's own drift"), a factor 1.40, and the record keeps the W=0 rate's
#   point, not its interval. Hence the lower bound must exceed the ceiling by CEILING_MARGIN = 40 %. The
#   definition error this guards against is still caught (133.3 ± 13.0 against a ceiling of 80.5: 1.49 ×).


def extra(data: ResultsFile | Mapping[str, Any], key: str) -> Any:
    """A top-level field the schema's TypedDict does not (yet) name: ``capped``, ``tune``,
    ``data_error``. Read as plain JSON."""
    return cast(Mapping[str, Any], data).get(key)


def skipped_section(data: Mapping[str, Any], option: str, heading: str) -> list[str]:
    """A section the session was told to skip (``--no-breakdown``, ``--no-drift``), once configs ran: it says so,
    so a reader does not take its absence for a failed measurement."""
    settings = data.get("settings")
    if not data.get("results") or not isinstance(settings, Mapping) or not settings.get(option):
        return []
    return [heading, "", f"Not measured: the session ran with `--{option.replace('_', '-')}`.", ""]


def load(src: Source) -> tuple[ResultsFile, Path | None]:
    """A results file (dict) and its run folder, from a run folder, a results.json, or the dict itself.

    Beyond :func:`read_results`, checks that every run is an object, so a hand-edited file fails with
    a :class:`ResultsError` naming it rather than a traceback somewhere in a table.
    """
    if isinstance(src, Mapping):
        return src, None
    p = Path(src)
    data = read_results(p)
    name = p / "results.json" if p.is_dir() else p
    for i, r in enumerate(data["results"]):
        if not isinstance(r, dict):
            raise ResultsError(f"{name}: results[{i}] is not a run record (got {type(r).__name__})")
    for key in ("machine", "dataset", "settings", "data_error"):
        if extra(data, key) is not None and not isinstance(extra(data, key), dict):
            raise ResultsError(f"{name}: field {key!r} must be an object")
    for key in ("tune", "limits"):
        if extra(data, key) is not None and not isinstance(extra(data, key), list):
            raise ResultsError(f"{name}: field {key!r} must be a list")
    return data, (p if p.is_dir() else p.parent)


def loader_fields(c: Mapping[str, Any]) -> dict[str, Any]:
    known = {f.name for f in fields(LoaderConfig)}
    return {k: v for k, v in c.items() if k in known}


def label_of(c: Mapping[str, Any]) -> str:
    """LoaderConfig's own label, so report and runner name configs alike; a hand-edited, invalid config
    still gets a name instead of stopping the report."""
    try:
        return LoaderConfig.from_dict(loader_fields(c)).label
    except (ValueError, TypeError):
        return f"bs{c.get('batch_size')}-w{c.get('num_workers')}-pf{c.get('prefetch_factor')}"


def interval_of(x: Any) -> tuple[float, float] | None:
    """A recorded ``[lo, hi]`` as floats; anything else (absent, malformed) is no interval."""
    if (
        isinstance(x, (list, tuple))
        and len(x) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in x)
    ):
        return float(x[0]), float(x[1])
    return None


_LABEL = re.compile(r"bs(\d+)-w(\d+)(?:-pf(\d+))?(-fs)?")


def parse_label(label: str) -> dict[str, Any] | None:
    """The one reader of :attr:`LoaderConfig.label` text (``bs8-w4-pf2``, ``-fs``): batch size, workers,
    prefetch as written (``None`` when the label has none) and sharing strategy; ``None`` if it is no label.
    For entries that name a config by label only (a tune entry); a run record carries its config."""
    m = _LABEL.search(str(label or ""))
    if not m:
        return None
    return {
        "batch_size": int(m.group(1)),
        "num_workers": int(m.group(2)),
        "prefetch_factor": int(m.group(3)) if m.group(3) else None,
        "sharing_strategy": "file_system" if m.group(4) else "file_descriptor",
    }


@dataclass(frozen=True)
class Run:
    """Read-only view of one :class:`RunRecord` with the derived facts every section needs."""

    rec: RunRecord

    @property
    def kind(self) -> str:
        return str(self.rec.get("kind") or "?")

    @property
    def test(self) -> str:
        phase = self.rec.get("phase")
        return f"{self.kind} ({phase})" if phase else self.kind

    @property
    def label(self) -> str:
        return str(self.rec.get("label") or self.rec.get("id") or "?")

    @property
    def config(self) -> dict[str, Any]:
        c = self.rec.get("config")
        # the record builder always writes it; a record without one (a hand-edited file) shows "?"
        return dict(c) if isinstance(c, dict) else {}

    @property
    def batch_size(self) -> int | None:
        return self.config.get("batch_size")

    @property
    def workers(self) -> int | None:
        return self.config.get("num_workers")

    @property
    def prefetch(self) -> int:
        """Effective prefetch (torch's default 2 with workers, 0 without)."""
        return effective_prefetch(self.workers or 0, self.config.get("prefetch_factor"))

    @property
    def strategy(self) -> str:
        return str(self.config.get("sharing_strategy") or "file_descriptor")

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.rec.get("metrics") or {})

    @property
    def vps(self) -> float | None:
        v = self.metrics.get("videos_per_s")
        return float(v) if v is not None else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """The recorded 95 % batch-means interval of videos/s (``None`` when the record has none)."""
        return interval_of(self.metrics.get("videos_per_s_interval"))

    @property
    def shm_bytes(self) -> float | None:
        """Shared memory this config uses: measured peak, else the budget's prediction."""
        v = self.metrics.get("shm_peak_bytes") or (self.rec.get("budget") or {}).get("shm_bytes")
        return float(v) if v is not None else None

    @property
    def in_flight(self) -> int | None:
        """Items in flight at once: batch × the shm formula's batches (run.shm; 1 without workers)."""
        if self.batch_size is None:
            return None
        return self.batch_size * max(1, shm_slots_for(self.workers or 0, self.config.get("prefetch_factor")))

    @property
    def step_s(self) -> float:
        """The --step-time the loop held after each batch (0 without one)."""
        return float(self.rec.get("step_s") or 0.0)

    @property
    def step_bound(self) -> bool:
        """The loop waited for data at most ``run.record.STEP_BOUND_WAIT_FRACTION`` of its wall time
        (``metrics.bound``, run.record.bound_of): the loader kept up and the step set the rate, so the rate says
        nothing about the loader's speed."""
        return self.metrics.get("bound") == "step"

    @property
    def efficiency(self) -> float | None:
        """videos/s as a share of the decode limit L; ``None`` for a step-bound run (the step set its rate)."""
        lim, v = self.metrics.get("decode_limit_videos_per_s"), self.vps
        return v / float(lim) if lim and v is not None and not self.step_bound else None

    def item_ceiling(self, cores: Any) -> float | None:
        """The single-process rate × ``cores`` (the machine's): more than any loader of this pipeline can
        deliver here. From the recorded decode limit L = single-process rate × min(max(W, 1), cores)."""
        lim = self.metrics.get("decode_limit_videos_per_s")
        if not lim or not isinstance(cores, int) or cores < 1:
            return None
        return float(lim) / min(max(self.workers or 0, 1), cores) * cores

    @property
    def busy_host(self) -> bool:
        """The run's own host record says the host was busy (run.host.is_busy); a record without one: not known
        to be, ``False``."""
        h = self.rec.get("host")
        return isinstance(h, Mapping) and is_busy(h)

    def over_ceiling(self, cores: Any) -> bool:
        """The rate's lower bound (a rate without an interval: its point) exceeds :meth:`item_ceiling` × (1 +
        :data:`CEILING_MARGIN`), measured on a host not recorded busy: a measurement error, never a finding
        about the loader (NOTE [item ceiling])."""
        ceiling, v = self.item_ceiling(cores), self.vps
        if ceiling is None or v is None or self.busy_host:
            return False
        return (self.interval[0] if self.interval is not None else v) > ceiling * (1 + CEILING_MARGIN)

    @property
    def outcome(self) -> dict[str, Any]:
        return dict(self.rec.get("outcome") or {})

    @property
    def evidence(self) -> dict[str, Any]:
        return dict(self.outcome.get("evidence") or {})

    @property
    def verdicts(self) -> list[dict[str, Any]]:
        return list(self.rec.get("verdicts") or [])

    @property
    def failed_verdicts(self) -> list[dict[str, Any]]:
        return [v for v in self.verdicts if not verdict_ok(v)]

    @property
    def ok(self) -> bool:
        """As recorded: the stress layer wrote ``status`` after its verdicts."""
        return self.rec.get("status") == "passed"

    @property
    def result(self) -> str:
        """``passed``, the failure kind, ``verdict:<name>`` for a run failed by a check, else ``failed``."""
        if self.ok:
            return "passed"
        if self.outcome.get("kind"):
            return str(self.outcome["kind"])
        names = [str(v.get("name")) for v in self.failed_verdicts]
        return "verdict:" + ",".join(names) if names else "failed"

    @property
    def sandbox(self) -> dict[str, Any]:
        return dict(self.rec.get("sandbox") or {})

    @property
    def ranks(self) -> int:
        """Local ranks of a ``distributed`` run (1 for a single loader)."""
        d = self.rec.get("distributed") or {}
        return int(d.get("nproc_per_node") or self.metrics.get("ranks") or len(self.rec.get("ranks") or []) or 1)

    @property
    def sort_key(self) -> tuple[Any, ...]:
        k = KIND_ORDER.index(self.kind) if self.kind in KIND_ORDER else len(KIND_ORDER)
        return (k, self.batch_size or 0, self.workers or 0, self.prefetch, self.strategy, self.label)

    def remedy(self) -> str:
        if self.outcome:
            return str(self.outcome.get("remedy") or "")
        names = {str(v.get("name")) for v in self.failed_verdicts}
        if "leak" in names:
            return (
                "memory grows batch after batch: look for state the dataset keeps per item (caches, lists "
                "of decoded frames), or use persistent_workers=False; rerun pytest -m sustained"
            )
        if "degradation" in names:
            return (
                "throughput falls over time: check for thermal throttling, a filling /dev/shm or TMPDIR, "
                "or growing memory; rerun pytest -m sustained"
            )
        if any(n.startswith("target:") for n in names):
            return "the config misses your target: change it (or the target) and rerun pytest -m validate"
        return "see the check's detail; rerun the test"

    @property
    def workers_cell(self) -> str:
        req = self.rec.get("requested_workers")
        return f"{self.workers} (of {req} requested)" if req is not None and req != self.workers else str(self.workers)

    def failure_point(self) -> str:
        b = self.outcome.get("batch")
        req = self.rec.get("batches_requested")
        if b is None:
            b = self.metrics.get("batches")
        if b is None:
            return "?"
        if b == 0:
            return "before the first batch"
        return f"after {b} of {req} batches" if req else f"after {b} batches"


def runs_of(data: ResultsFile | Sequence[RunRecord]) -> list[Run]:
    """The runs of a results file (or a list of records), as recorded."""
    if not isinstance(data, Mapping):
        return [Run(r) for r in data]
    return [Run(r) for r in data.get("results") or []]


def measurement_errors(runs: Sequence[Run], cores: Any) -> list[Run]:
    """Passed runs whose rate is above the item ceiling by more than its interval and the margin
    (:meth:`Run.over_ceiling`): no loader delivers that here, so the rate is a measurement error and no finding
    or recommendation may rest on it. None in a session where some run recorded a busy host: the
    single-process rate the ceiling is built on may have been measured on a share of a core (NOTE [item
    ceiling])."""
    if any(r.busy_host for r in runs):
        return []
    return [r for r in runs if r.ok and r.over_ceiling(cores)]


def sustained_ok(runs: Sequence[Run]) -> list[Run]:
    return [r for r in runs if r.ok and r.kind in SUSTAINED_KINDS and r.vps is not None]


def short_ok(runs: Sequence[Run]) -> list[Run]:
    # distributed throughput is per job, not per loader: not comparable with the single-loader runs
    return [r for r in runs if r.ok and r.kind not in SUSTAINED_KINDS + ("distributed",) and r.vps is not None]


def best_runs_by_workers(runs: Sequence[Run]) -> dict[int, list[Run]]:
    """batch size → the fastest passing single-loader run per worker count, workers ascending."""
    best: dict[tuple[int, int], Run] = {}
    for r in runs:
        if (
            r.ok
            and r.kind != "distributed"
            and r.vps is not None
            and r.batch_size is not None
            and r.workers is not None
        ):
            key = (r.batch_size, r.workers)
            if key not in best or (r.vps or 0.0) > (best[key].vps or 0.0):
                best[key] = r
    out: dict[int, list[Run]] = {}
    for (bs, _), r in sorted(best.items()):
        out.setdefault(bs, []).append(r)
    return out
