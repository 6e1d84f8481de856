"""Reports people read: ``summary.md`` + plots for one session, a markdown comparison of two.

Everything here is derived from a session's ``results.json`` (:mod:`ssv2_fixtures.records`) and nothing
else, so a report can be rebuilt on any machine, long after the run:

- :func:`summarize` writes ``summary.md``, ``throughput.png`` and (when sustained runs exist)
  ``sustained.png`` into the run folder; ``-m distributed`` runs get their own section (node totals and
  one row per rank) and a finding for a config stable with fewer ranks but not with N;
- :func:`recommend` picks the configuration to use: the fastest that passed a sustained run, else the
  fastest short run with a safety margin (stated as such);
- :func:`terminal_lines` is the short table the pytest plugin prints at the end of a session;
- :func:`compare` sets two runs (usually two machines) side by side and names the machine differences
  that explain what changed;
- ``python -m ssv2_fixtures.report summarize RUN_DIR`` / ``compare RUN_A RUN_B [--out FILE]``.

A run "passed" here only if its status is ``passed`` *and* none of its verdicts (leak, degradation,
targets) failed: a config that loads every batch but leaks is not one to recommend.

matplotlib is imported inside the plot functions only, so the plugin can import this module (for
:func:`terminal_lines`) without paying for it.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence, Union

from ..data.loader import LoaderConfig
from ..run.outcome import KIND_NAMES
from ..run.outcome import kind as failure_kind
from ..run.record import ResultsError, ResultsFile, RunRecord, read_results, write_atomic_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Source = Union[str, "os.PathLike[str]", ResultsFile]

KIND_ORDER = ("quick", "limits", "sustained", "validate", "distributed")
SUSTAINED_KINDS = ("sustained", "validate")   # long runs: the only ones a recommendation trusts as is
PLATEAU_GAIN = 0.05                           # a worker step gaining less than this is "no longer growing"
SHM_KINDS = ("shm_exhausted", "bus_error")
MEMORY_KINDS = ("oom_killed", "memory_error", "worker_killed")
MB, GB = 2**20, 2**30

# --------------------------------------------------------------------------------------------------
# formatting


def _size(n: float | None) -> str:
    """Binary sizes with the project's units (outcome remedies say "GB"/"MB" for 2**30/2**20 too)."""
    if n is None:
        return "?"
    n = float(n)
    if abs(n) >= GB:
        return f"{n / GB:.1f} GB"
    if abs(n) >= MB:
        return f"{n / MB:.0f} MB"
    if abs(n) >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n:.0f} B"


def _num(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return f"{x * 100:+.1f} %"


def _cell(x: Any) -> str:
    # One physical line per row, and a "|" in a message must not split the cell.
    return str(x).replace("\n", " ").replace("|", "\\|").strip()


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The one markdown table formatter used by every section."""
    out = ["| " + " | ".join(_cell(h) for h in headers) + " |",
           "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _passed(v: Mapping[str, Any]) -> bool:
    """A verdict's ``ok``. results.json is written with ``default=str``, so a numpy bool arrives as the
    string "True"/"False" (and "False" is truthy): read strings by their text."""
    ok = v.get("ok", True)
    if isinstance(ok, str):
        return ok.strip().lower() in ("true", "1", "yes")
    return bool(ok)


def _one_line(text: str | None, limit: int = 160) -> str:
    t = " ".join(str(text or "").split())
    return t if len(t) <= limit else t[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------------
# reading


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
    for key in ("machine", "dataset", "settings"):
        if data.get(key) is not None and not isinstance(data.get(key), dict):
            raise ResultsError(f"{name}: field {key!r} must be an object")
    return data, (p if p.is_dir() else p.parent)


_LABEL = re.compile(r"bs(\d+)-w(\d+)(?:-pf(\d+))?(-fs)?")


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
        if isinstance(c, dict):
            return dict(c)
        m = _LABEL.search(self.label)  # a record without its config: the label still says bs/w/pf
        if not m:
            return {}
        return {"batch_size": int(m.group(1)), "num_workers": int(m.group(2)),
                "prefetch_factor": int(m.group(3)) if m.group(3) else None,
                "sharing_strategy": "file_system" if m.group(4) else "file_descriptor"}

    @property
    def batch_size(self) -> int | None:
        return self.config.get("batch_size")

    @property
    def workers(self) -> int | None:
        return self.config.get("num_workers")

    @property
    def prefetch(self) -> int:
        """Effective prefetch (torch's default 2 with workers, 0 without)."""
        w = self.workers or 0
        return 0 if w == 0 else int(self.config.get("prefetch_factor") or 2)

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
    def efficiency(self) -> float | None:
        lim, v = self.metrics.get("decode_limit_videos_per_s"), self.vps
        return v / float(lim) if lim and v is not None else None

    @property
    def outcome(self) -> dict[str, Any]:
        return dict(self.rec.get("outcome") or {})

    @property
    def evidence(self) -> dict[str, Any]:
        return dict(self.outcome.get("evidence") or {})

    @property
    def failed_verdicts(self) -> list[dict[str, Any]]:
        return [v for v in self.rec.get("verdicts") or [] if not _passed(v)]

    @property
    def ok(self) -> bool:
        return self.rec.get("status") == "passed" and not self.failed_verdicts

    @property
    def result(self) -> str:
        """``passed``, the failure kind, or ``verdict:<name>`` for a run that only failed a check."""
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
        d = self.rec.get("distributed") or {}  # type: ignore[misc]
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
            return ("memory grows batch after batch: look for state the dataset keeps per item (caches, lists "
                    "of decoded frames), or use persistent_workers=False; rerun pytest -m sustained")
        if "degradation" in names:
            return ("throughput falls over time: check for thermal throttling, a filling /dev/shm or TMPDIR, "
                    "or growing memory; rerun pytest -m sustained")
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
    """The runs of a results file (or a list of records). The validate test keeps its target rows in the
    file's ``validate`` section, not in the run: missed targets are added to that run as failed
    ``target:<name>`` verdicts (on a copy), so a config that misses a target is never "passed" here."""
    if not isinstance(data, Mapping):
        return [Run(r) for r in data]
    v = data.get("validate") or {}
    missed = [row for row in v.get("rows") or [] if not row.get("ok")]
    want = _label(v["config"]) if missed and isinstance(v.get("config"), dict) else None
    out = []
    for r in data.get("results") or []:
        if want and r.get("kind") == "validate" and r.get("label") == want:
            have = {x.get("name") for x in r.get("verdicts") or []}
            extra = [{"name": f"target:{row.get('target')}", "ok": False,
                      "detail": f"{row.get('target')}: wanted {_fmt_target(str(row.get('target')), row.get('wanted'))}"
                                f", achieved {_fmt_target(str(row.get('target')), row.get('achieved'))}"}
                     for row in missed if f"target:{row.get('target')}" not in have]
            r = {**r, "verdicts": [*(r.get("verdicts") or []), *extra]}
        out.append(Run(r))
    return out


def _sustained_ok(runs: Sequence[Run]) -> list[Run]:
    return [r for r in runs if r.ok and r.kind in SUSTAINED_KINDS and r.vps is not None]


def _short_ok(runs: Sequence[Run]) -> list[Run]:
    # distributed throughput is per job, not per loader: not comparable with the single-loader runs
    return [r for r in runs if r.ok and r.kind not in SUSTAINED_KINDS + ("distributed",) and r.vps is not None]


# --------------------------------------------------------------------------------------------------
# recommendation


@dataclass(frozen=True)
class Recommendation:
    config: dict[str, Any]      # LoaderConfig fields to use
    basis: Run                  # the measured run it comes from
    verified: bool              # True: passed a sustained run as is; False: short runs + a margin
    reason: str                 # one sentence, with numbers
    expected_vps: float | None  # measured videos/s of exactly this config, if it was measured

    @property
    def label(self) -> str:
        return _label(self.config)


def _loader_fields(c: Mapping[str, Any]) -> dict[str, Any]:
    known = {f.name for f in fields(LoaderConfig)}
    return {k: v for k, v in c.items() if k in known}


def _label(c: Mapping[str, Any]) -> str:
    """LoaderConfig's own label, so report and runner name configs alike; a hand-edited, invalid config
    still gets a name instead of stopping the report."""
    try:
        return LoaderConfig.from_dict(_loader_fields(c)).label
    except (ValueError, TypeError):
        return f"bs{c.get('batch_size')}-w{c.get('num_workers')}-pf{c.get('prefetch_factor')}"


def recommend(data: ResultsFile | Sequence[RunRecord]) -> Recommendation | None:
    """Highest videos/s among configs that passed a sustained run; else the fastest short run with one
    step of margin (prefetch − 1, or the next lower worker count), since a short run cannot show slow
    growth of memory or shm. ``None`` when nothing passed at all."""
    runs = runs_of(data)
    sus = _sustained_ok(runs)
    if sus:
        best = max(sus, key=lambda r: r.vps or 0.0)
        return Recommendation(best.config, best, True,
                              f"highest videos/s ({best.vps:.1f}) among the {len(sus)} configuration(s) that "
                              f"passed a sustained run, with every leak/degradation/target check passed",
                              best.vps)
    failed_sus = [r for r in runs if r.kind in SUSTAINED_KINDS and not r.ok]
    # A short pass of a config that failed a long run (e.g. leaked) is no basis for a recommendation.
    bad_labels = {r.label for r in failed_sus}
    short = [r for r in _short_ok(runs) if r.label not in bad_labels]
    if not short:
        return None
    best = max(short, key=lambda r: r.vps or 0.0)
    cfg = best.config
    w, pf = best.workers or 0, best.prefetch
    if w > 0 and pf > 1:
        cfg["prefetch_factor"] = pf - 1   # halves-ish the batches in flight, barely costs throughput
        margin = f"prefetch_factor {pf} → {pf - 1} (fewer batches in flight)"
    elif w > 1:
        lower = [r.workers for r in runs if r.batch_size == best.batch_size and r.workers is not None
                 and 0 < r.workers < w]
        cfg["num_workers"] = max(lower) if lower else w - 1
        margin = f"num_workers {w} → {cfg['num_workers']}"
    else:
        margin = f"none possible ({w} worker(s), prefetch {pf})"
    target = _label(cfg)
    measured = [r.vps for r in short if r.label == target and r.vps is not None]
    failed_note = (f" ({len(failed_sus)} sustained run(s) failed and are excluded: "
                   + ", ".join(f"{r.label} {r.result}" for r in failed_sus) + ")") if failed_sus else ""
    why = (f"the fastest short run, {best.label} ({best.test}), reached {best.vps:.1f} videos/s{failed_note}; "
           f"safety margin: {margin}. Only short runs: verify with pytest -m sustained")
    return Recommendation(cfg, best, False, why, max(measured) if measured else None)


def _snippet(rec: Recommendation, data: ResultsFile) -> list[str]:
    c = _loader_fields(rec.config)
    lc = LoaderConfig.from_dict(c)
    defaults = {f.name: f.default for f in fields(LoaderConfig)}
    args = [f"batch_size={lc.batch_size}", f"num_workers={lc.num_workers}"]
    if lc.num_workers:
        args.append(f"prefetch_factor={lc.effective_prefetch}")
    args += [f"{k}={getattr(lc, k)!r}" for k in defaults
             if k not in ("batch_size", "num_workers", "prefetch_factor") and getattr(lc, k) != defaults[k]]
    ds = {**(data.get("dataset") or {}), **(rec.basis.rec.get("dataset") or {})}
    ds_args = [repr(str(ds.get("root", "/path/to/ssv2")))]
    ds_args += [f"{k}={ds[k]!r}" for k in ("split", "num_frames", "size") if k in ds]
    torch_args = [f"batch_size={lc.batch_size}", f"shuffle={lc.shuffle}", f"num_workers={lc.num_workers}"]
    if lc.num_workers:
        torch_args += [f"prefetch_factor={lc.effective_prefetch}", f"persistent_workers={lc.persistent_workers}"]
        if lc.timeout:
            torch_args.append(f"timeout={lc.timeout!r}")
        if lc.mp_context:
            torch_args.append(f"multiprocessing_context={lc.mp_context!r}")
    torch_args += [f"pin_memory={lc.pin_memory}", f"drop_last={lc.drop_last}"]
    return ["```python",
            "from ssv2_fixtures import SSv2Clips, LoaderConfig, make_loader",
            "",
            f"dataset = SSv2Clips({', '.join(ds_args)})",
            f"config = LoaderConfig({', '.join(args)})",
            "loader = make_loader(dataset, config)  # also sets the sharing strategy and seeds the workers",
            "",
            "# or with plain torch:",
            "import torch",
            f"torch.multiprocessing.set_sharing_strategy({lc.sharing_strategy!r})",
            f"loader = torch.utils.data.DataLoader(dataset, {', '.join(torch_args)})",
            "```"]


def _train_toml(rec: Recommendation) -> list[str]:
    """The recommendation as a ``--train-config`` file for ``-m validate`` (keys traincfg accepts)."""
    lc = LoaderConfig.from_dict(_loader_fields(rec.config))
    defaults = {f.name: f.default for f in fields(LoaderConfig)}

    def toml(x: Any) -> str:
        return ("true" if x else "false") if isinstance(x, bool) else f'"{x}"' if isinstance(x, str) else f"{x}"
    keys = ["batch_size", "num_workers"] + (["prefetch_factor"] if lc.num_workers else []) + ["sharing_strategy"]
    keys += [k for k in ("pin_memory", "persistent_workers", "shuffle", "drop_last", "timeout", "seed")
             if getattr(lc, k) != defaults[k]]
    lines = ["```toml", "[loader]"]
    lines += [f"{k} = {toml(lc.effective_prefetch if k == 'prefetch_factor' else getattr(lc, k))}" for k in keys]
    lines += ["", "[target]"]
    vps = rec.expected_vps or rec.basis.vps
    if vps:
        lines.append(f"min_videos_per_s = {math.floor(vps * 0.9)}  # replace with what your training step "
                     f"needs (this is 90 % of {vps:.1f})")
    return lines + ["```"]


def _environment(rec: Recommendation, machine: Mapping[str, Any]) -> list[str]:
    """Environment changes the recommended config needs, sized from the measured peaks of its basis
    run (an upper bound when a margin was applied)."""
    m, lc = rec.basis.metrics, LoaderConfig.from_dict(_loader_fields(rec.config))
    out: list[str] = []
    shm = int(m.get("shm_peak_bytes") or 0)
    have = machine.get("shm_total_bytes")
    if lc.num_workers == 0 or shm == 0:
        out.append("- **/dev/shm**: not used (no batches shared between processes); no change needed.")
    else:
        gib = max(1, math.ceil(shm * 2 / GB))  # twice the peak: other processes and fragmentation
        enough = (f"; this machine has {_size(have)}: " + ("enough" if have >= gib * GB else "**too small**")
                  if have else "")
        out.append(f"- **/dev/shm**: peak {_size(shm)} → `docker run --shm-size={gib}g` (Kubernetes: an "
                   f"`emptyDir` with `medium: Memory`, `sizeLimit: {gib}Gi` on /dev/shm){enough}.")
    fds = int(m.get("fds_peak") or 0)
    nofile = machine.get("nofile")
    if lc.sharing_strategy == "file_descriptor" and lc.num_workers:
        need = max(1024, 2 ** math.ceil(math.log2(max(fds * 2, 1))))
        state = (f"the current limit {nofile} is enough" if nofile and nofile >= need
                 else f"the current limit is {nofile if nofile else '?'}")
        out.append(f"- **open files**: fd peak {fds} with the file_descriptor strategy (one fd per shared "
                   f"tensor in flight) → `ulimit -n {need}`; {state}.")
    else:
        out.append(f"- **open files**: fd peak {fds}; the {lc.sharing_strategy} strategy passes no fds "
                   "per tensor, no change needed.")
    tmp = int(m.get("tmp_peak_bytes") or 0)
    if tmp:
        out.append(f"- **TMPDIR**: peak {_size(tmp)} of temporary files → point TMPDIR at a disk with at least "
                   f"{_size(tmp * 2)} free (this run: {machine.get('tmpdir', '?')}, "
                   f"{_size(machine.get('tmp_free_bytes'))} free).")
    else:
        out.append("- **TMPDIR**: the loader wrote no temporary files (peak 0 B); no change needed.")
    return out


# --------------------------------------------------------------------------------------------------
# findings: each derived from the data, each quoting its numbers


def _best_by_workers(runs: Sequence[Run]) -> dict[int, list[tuple[int, float]]]:
    """batch size → [(workers, best videos/s)] over passing single-loader runs, workers ascending."""
    best: dict[tuple[int, int], float] = {}
    for r in runs:
        if r.ok and r.kind != "distributed" and r.vps is not None and r.batch_size is not None \
                and r.workers is not None:
            key = (r.batch_size, r.workers)
            best[key] = max(best.get(key, 0.0), r.vps)
    out: dict[int, list[tuple[int, float]]] = {}
    for (bs, w), v in sorted(best.items()):
        out.setdefault(bs, []).append((w, v))
    return out


def scaling(runs: Sequence[Run]) -> dict[int, tuple[int | None, tuple[int, float, int, float]]]:
    """batch size → (plateau worker count or None if still growing, the step that shows it:
    (w0, v0, w1, v1)). Needs two worker counts for a batch size."""
    out: dict[int, tuple[int | None, tuple[int, float, int, float]]] = {}
    for bs, pts in _best_by_workers(runs).items():
        if len(pts) < 2:
            continue
        steps = list(zip(pts, pts[1:]))
        for (w0, v0), (w1, v1) in steps:
            if v0 > 0 and v1 / v0 - 1 < PLATEAU_GAIN:
                out[bs] = (w0, (w0, v0, w1, v1))
                break
        else:
            (w0, v0), (w1, v1) = steps[-1]
            out[bs] = (None, (w0, v0, w1, v1))
    return out


def _numbers(v: Mapping[str, Any]) -> str:
    """A verdict's numeric fields not already quoted in its detail."""
    parts, detail = [], str(v.get("detail", ""))
    for k, x in v.items():
        if k in ("name", "ok", "detail") or isinstance(x, bool) or not isinstance(x, (int, float)):
            continue
        text = _size(x) if k.endswith("bytes") else f"{x:g}"
        if text not in detail:
            parts.append(f"{k} {text}")
    return f" ({', '.join(parts)})" if parts else ""


def findings(data: ResultsFile) -> list[str]:
    """Plain-language findings, each derived from the records and quoting the numbers behind it."""
    runs = sorted(runs_of(data), key=lambda r: r.sort_key)
    mach = data.get("machine") or {}
    cores = mach.get("cores", "?")
    out: list[str] = []

    for bs, (plateau, (w0, v0, w1, v1)) in scaling(runs).items():
        if plateau is not None:
            out.append(f"Batch size {bs}: throughput stops growing beyond {plateau} workers on this machine "
                       f"({cores} cores): {w0} → {w1} workers gives {v0:.1f} → {v1:.1f} videos/s "
                       f"({_pct(v1 / v0 - 1)}, below the {PLATEAU_GAIN * 100:.0f} % gain that would pay for "
                       "the extra workers' memory).")
        else:
            out.append(f"Batch size {bs}: throughput still grows at the most workers tried: {w0} → {w1} workers "
                       f"gives {v0:.1f} → {v1:.1f} videos/s ({_pct(v1 / v0 - 1)}); more workers may help "
                       f"(this machine has {cores} cores).")

    eff = [r for r in runs if r.ok and r.efficiency is not None]
    if eff:
        b = max(eff, key=lambda r: r.vps or 0.0)
        lim = b.metrics["decode_limit_videos_per_s"]
        tail = ("loading is decode-bound: more workers or prefetch will not help, a cheaper decode (smaller "
                "size, fewer frames) would" if (b.efficiency or 0) >= 0.9 else
                f"the loader pipeline (collation, transfer between processes, idle workers) costs the other "
                f"{(1 - (b.efficiency or 0)) * 100:.0f} %")
        out.append(f"The fastest passing configuration, {b.label} ({b.test}), reaches {b.vps:.1f} videos/s = "
                   f"{(b.efficiency or 0) * 100:.0f} % of the decode limit ({lim:.1f} videos/s measured "
                   f"decoding alone): {tail}.")

    ram = mach.get("ram_bytes")
    rss = [r for r in runs if r.ok and r.metrics.get("rss_peak_bytes")]
    if rss and ram:
        b = max(rss, key=lambda r: r.metrics["rss_peak_bytes"])
        peak = b.metrics["rss_peak_bytes"]
        out.append(f"Largest memory (RSS) peak of a passing run: {b.label} ({b.test}) with {_size(peak)} for "
                   f"{b.workers} workers, {peak / ram * 100:.0f} % of this machine's {_size(ram)} RAM.")

    leak_ok = [(r, v) for r in runs for v in r.rec.get("verdicts") or [] if v.get("name") == "leak" and _passed(v)]
    if leak_ok:
        out.append(f"No memory growth beyond the limit in {len(leak_ok)} run(s) with a leak check: "
                   + "; ".join(f"{r.label} ({r.kind}): {v.get('detail', 'ok')}" for r, v in leak_ok) + ".")
    for r in runs:
        for v in r.failed_verdicts:
            what = {"leak": "memory grew", "degradation": "throughput degraded over time"}.get(
                str(v.get("name")), f"check {v.get('name')} failed")
            out.append(f"{r.label} ({r.test}): {what} — {v.get('detail', '')}{_numbers(v)}.")

    for r in runs:
        k, ev, m = r.outcome.get("kind"), r.evidence, r.metrics
        if k in SHM_KINDS:
            budget = r.rec.get("budget") or {}
            need = ev.get("shm_need_bytes") or budget.get("shm_bytes")
            avail = ev.get("shm_available_bytes") or budget.get("shm_available_bytes")
            total = r.sandbox.get("shm_bytes") or ev.get("shm_total_bytes") or mach.get("shm_total_bytes")
            free = ev.get("shm_free_bytes")
            emulated = " (emulated)" if r.sandbox.get("shm_bytes") else ""
            predicted = (" — the budget predicted this" if budget.get("fits") is False else "")
            ranks = f" × {r.ranks} ranks" if r.ranks > 1 else ""
            out.append(f"{r.label} ({r.test}, {k}): needed ~{_size(need)} of /dev/shm for the batches in flight "
                       f"({r.batch_size} videos × ({r.workers} workers × {r.prefetch} prefetch + 1) batches{ranks})"
                       + (f", {_size(avail)} available at the start" if avail else "")
                       + f"; free space fell to {_size(free)} of {_size(total)}{emulated}{predicted}.")
        elif k == "fd_exhausted":
            fds = ev.get("fds_peak") or m.get("fds_peak")
            nofile = ev.get("nofile") or r.sandbox.get("nofile") or mach.get("nofile")
            out.append(f"{r.label} ({r.test}): ran out of file descriptors at {fds} open (limit ulimit -n = "
                       f"{nofile}); with the {r.strategy} strategy every shared tensor in flight holds an fd.")
        elif k in MEMORY_KINDS:
            peak = ev.get("rss_peak_bytes") or m.get("rss_peak_bytes")
            cap, what = ((ev["mem_limit_bytes"], "the memory limit") if ev.get("mem_limit_bytes") else
                         (r.sandbox["mem_bytes"], "the emulated memory limit") if r.sandbox.get("mem_bytes") else
                         (ram, "the machine's RAM"))
            out.append(f"{r.label} ({r.test}, {k}): memory (RSS) peak {_size(peak)} against {_size(cap)} "
                       f"({what}) with {r.workers} workers × batch {r.batch_size}.")
        elif k == "hang":
            wd = ev.get("watchdog") or {}
            out.append(f"{r.label} ({r.test}): hung {r.failure_point()} — no progress for "
                       f"{_num(wd.get('elapsed_s'))} s ({wd.get('phase', '?')} limit {_num(wd.get('limit_s'))} s).")
        elif k == "tmp_full":
            out.append(f"{r.label} ({r.test}): TMPDIR {ev.get('tmpdir', mach.get('tmpdir', '?'))} filled up "
                       f"({_size(ev.get('tmp_free_bytes'))} free) {r.failure_point()}.")
        elif k in ("data_error", "decode_error"):
            out.append(f"{r.label} ({r.test}, {k}): the data is at fault, not the loader settings — "
                       f"{_one_line(r.outcome.get('message'), 200)}")
    crashes = [r for r in runs if r.outcome.get("kind") in ("segfault", "main_crashed", "worker_exception", "unknown")]
    if crashes:
        out.append(f"{len(crashes)} run(s) crashed for reasons the settings do not explain (read their "
                   "messages and stderr tails): " + ", ".join(f"{r.label} ({r.result})" for r in crashes) + ".")

    for r in runs:
        m = r.metrics
        if m.get("leaked_shm_files"):
            out.append(f"{r.label} ({r.test}) left {m['leaked_shm_files']} shared-memory file(s) "
                       f"({_size(m.get('leaked_shm_bytes'))}) in /dev/shm when it ended (the runner removed "
                       "them; in a real job they stay until reboot: clean /dev/shm/torch_* after crashes).")
        if m.get("leaked_tmp_files"):
            out.append(f"{r.label} ({r.test}) left {m['leaked_tmp_files']} temporary file(s) "
                       f"({_size(m.get('leaked_tmp_bytes'))}) in its TMPDIR.")

    skipped = [(r, int(r.metrics.get("skipped_videos") or 0)) for r in runs if r.metrics.get("skipped_videos")]
    if skipped:
        out.append(f"{sum(n for _, n in skipped)} undecodable video(s) were skipped: "
                   + ", ".join(f"{r.label} {n}" for r, n in skipped) + ".")

    out += _rank_findings(runs)

    notes: Any = data.get("capped") or []  # quick-ladder notes (StressSession.capped; not in ResultsFile)
    capped = [str(c) for c in notes]
    if capped:
        out.append(f"Worker counts were capped at --max-workers (default 2 × cores; this machine has {cores}): "
                   + "; ".join(capped) + ".")

    sandboxed = [r for r in runs if r.sandbox and any(
        r.sandbox.get(k) is not None for k in ("shm_bytes", "tmp_bytes", "nofile", "mem_bytes", "cpus"))]
    if sandboxed:
        sb = sandboxed[0].sandbox
        limits = ", ".join(f"{k.replace('_bytes', '')} {_size(v) if k.endswith('bytes') else v}"
                           for k, v in sb.items() if k in ("shm_bytes", "tmp_bytes", "nofile", "mem_bytes", "cpus")
                           and v is not None)
        out.append(f"{len(sandboxed)} run(s) ran under emulated limits (e.g. {sb.get('profile') or 'custom'}: "
                   f"{limits}): they describe that target machine, not this host.")
    return out


# --------------------------------------------------------------------------------------------------
# summary.md


def _has_eff(runs: Sequence[Run]) -> bool:
    return any(r.efficiency is not None for r in runs)


def _eff_cell(r: Run) -> str:
    return "—" if r.efficiency is None else f"{r.efficiency * 100:.0f} %"


def _success_table(runs: Sequence[Run]) -> list[str]:
    eff = _has_eff(runs)
    head = ["test", "config", "batch size", "workers", "prefetch", "videos/s"] + (["efficiency"] if eff else []) \
        + ["wait p50 ms", "wait p95 ms", "batches", "status"]
    rows = []
    for r in runs:
        m = r.metrics
        status = "passed" + (f" ({len(r.rec['ranks'])} ranks)" if r.rec.get("ranks") else "")
        checks = [str(v.get("name")) for v in r.rec.get("verdicts") or []]
        if checks:
            status += f", checks ok: {', '.join(checks)}"
        rows.append([r.test, r.label, r.batch_size, r.workers_cell, r.prefetch, _num(r.vps)]
                    + ([_eff_cell(r)] if eff else [])
                    + [_num(m.get("wait_ms_p50")), _num(m.get("wait_ms_p95")), m.get("batches", "?"), status])
    return md_table(head, rows)


def _failure_table(runs: Sequence[Run]) -> list[str]:
    rows = []
    for r in runs:
        if r.outcome:
            cause = _one_line(r.outcome.get("message"))
        else:  # loaded every batch, failed a check
            cause = "; ".join(_one_line(x.get("detail")) for x in r.failed_verdicts) or "failed (no outcome recorded)"
        point = r.failure_point() if r.outcome else f"all {r.metrics.get('batches', '?')} batches loaded"
        rows.append([r.test, r.label, r.batch_size, r.workers_cell, r.prefetch, point, r.result, cause,
                     _one_line(r.remedy(), 400)])
    return md_table(["test", "config", "batch size", "workers", "prefetch", "failure point", "kind", "cause",
                     "remedy"], rows)


def _kind_legend(runs: Sequence[Run]) -> list[str]:
    seen = sorted({r.result for r in runs if not r.ok},
                  key=lambda k: KIND_NAMES.index(k) if k in KIND_NAMES else len(KIND_NAMES))
    out = []
    for k in seen:
        if k in KIND_NAMES and k != "unknown":
            out.append(f"- **{k}**: {failure_kind(k).summary}")
        elif k == "unknown":
            out.append("- **unknown**: the failure matched no known kind; the message and stderr tail are all "
                       "there is")
        else:
            out.append(f"- **{k}**: every batch loaded, but a check ({k.split(':', 1)[-1]}) failed")
    return out


def _machine_rows(mach: Mapping[str, Any]) -> list[list[Any]]:
    return [["host", mach.get("hostname", "?")],
            ["CPU cores", mach.get("cores", "?")],
            ["RAM", _size(mach.get("ram_bytes"))],
            ["/dev/shm", f"{_size(mach.get('shm_total_bytes'))} ({_size(mach.get('shm_free_bytes'))} free)"],
            ["TMPDIR", f"{mach.get('tmpdir', '?')} ({_size(mach.get('tmp_free_bytes'))} free)"],
            ["open files limit (ulimit -n)", mach.get("nofile", "?")],
            ["python / torch / decord", f"{mach.get('python', '?')} / {mach.get('torch', '?')} / "
                                        f"{mach.get('decord', '?')}"],
            ["platform", mach.get("platform", "?")],
            ["CUDA", "yes" if mach.get("cuda") else "no"],
            ["default sharing strategy", mach.get("sharing_strategy", "?")]]


def _dataset_rows(ds: Mapping[str, Any]) -> list[list[Any]]:
    return [["root", ds.get("root", "?")],
            ["kind", "synthetic (generated test videos)" if ds.get("synthetic") else "real SSv2"],
            ["split", ds.get("split", "?")],
            ["videos", ds.get("videos", "?")],
            ["codec", ds.get("codec", "?")],
            ["clip", f"{ds.get('num_frames', '?')} frames at {ds.get('size', '?')}×{ds.get('size', '?')} px"]]


def _fmt_target(name: str, x: Any) -> str:
    if x is None:
        return "not measured"
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        if name.endswith("_bytes"):
            return _size(x)
        return f"{x:.4g} GB" if name.endswith("_gb") else f"{x:.4g}"
    return str(x)


def _distributed_section(runs: Sequence[Run]) -> list[str]:
    """``-m distributed`` runs: node totals per run, then one row per rank."""
    out = ["Each rank is a training process with its own DataLoader workers, started by torchrun; the ranks of "
           "a node share its cores, RAM, /dev/shm and open files. *videos/s (node)* is the sum of the ranks' "
           "steady rates; processes count each rank and its workers (ranks × (1 + workers)).", "",
           "Node totals:", ""]
    rows = []
    for r in runs:
        m, d = r.metrics, r.rec.get("distributed") or {}  # type: ignore[misc]
        lo, hi = m.get("rank_videos_per_s_min"), m.get("rank_videos_per_s_max")
        cov = next((v for v in r.rec.get("verdicts") or [] if v.get("name") == "epoch_coverage"), None)
        epochs = ("—" if cov is None else f"{cov.get('complete_epochs', '?')} complete of {cov.get('epochs', '?')}, "
                  + ("rule holds" if _passed(cov) else "**rule broken**"))
        finished = sum(1 for x in r.rec.get("ranks") or [] if x.get("state") == "finished")
        nodes = f" × {d['nnodes']} nodes (node {d.get('node_rank', '?')})" if (d.get("nnodes") or 1) > 1 else ""
        rows.append([r.label, f"{r.ranks}{nodes}", f"{finished} of {r.ranks}", r.result, _num(r.vps),
                     f"{_num(lo)}–{_num(hi)}" if lo is not None else "—",
                     f"{m.get('rank_procs_peak', '?')} / {m.get('procs_expected', '?')}",
                     _size(m.get("rss_peak_bytes")), _size(m.get("pss_peak_bytes")), _size(m.get("shm_peak_bytes")),
                     m.get("fds_peak", "?"), epochs])
    out += md_table(["config", "ranks", "finished", "result", "videos/s (node)", "videos/s per rank",
                     "processes peak / expected", "RSS peak", "PSS peak", "shm peak", "fds peak", "epochs"], rows)
    out += ["", "Per rank:", ""]
    rows = []
    for r in runs:
        for x in r.rec.get("ranks") or []:
            what = x.get("outcome") or ("—" if x.get("state") == "finished" else _one_line(x.get("note"), 120) or "—")
            rows.append([r.label, f"{r.ranks}", x.get("rank", "?"), x.get("state", "?"), x.get("batches", "?"),
                         x.get("videos", "?"), _num(x.get("videos_per_s")), _num(x.get("wait_ms_p50")),
                         _size(x.get("rss_peak_bytes")), what])
    out += md_table(["config", "ranks", "rank", "state", "batches", "videos", "videos/s", "wait p50 ms",
                     "RSS peak (rank + its workers)", "outcome"], rows)
    return out


def _rank_verdicts(runs: Sequence[Run]) -> list[tuple[str, Run, Run]]:
    """(label, a passing run with fewer ranks or a single loader, a failing run with more ranks)."""
    out = []
    for r in runs:
        if r.kind != "distributed" or r.ok or r.ranks < 2:
            continue
        fewer = [x for x in runs if x.label == r.label and x.ok and (x.kind != "distributed" or x.ranks < r.ranks)]
        if fewer:
            best = max(fewer, key=lambda x: (x.kind == "distributed", x.ranks))
            out.append((r.label, best, r))
    return out


def _rank_findings(runs: Sequence[Run]) -> list[str]:
    out = []
    for label, good, bad in _rank_verdicts(runs):
        was = (f"with {good.ranks} rank{'s' if good.ranks != 1 else ''} ({_num(good.vps)} videos/s)"
               if good.kind == "distributed" else f"as a single loader ({good.test}, {_num(good.vps)} videos/s)")
        out.append(f"{label} is stable {was} but not with {bad.ranks} ranks on one node: {bad.result} "
                   f"{bad.failure_point()} ({_one_line(bad.outcome.get('message'), 160)}). The ranks share the "
                   f"node's /dev/shm, RAM, cores and open files: size a DDP job's loader for all {bad.ranks} ranks.")
    by_label: dict[str, list[Run]] = {}
    for r in runs:
        if r.kind == "distributed" and r.ok and r.vps:
            by_label.setdefault(r.label, []).append(r)
    for label, rs in by_label.items():
        rs = sorted(rs, key=lambda x: x.ranks)
        if len(rs) >= 2 and rs[0].ranks < rs[-1].ranks:
            a, b = rs[0], rs[-1]
            out.append(f"{label}: {a.ranks} → {b.ranks} ranks on one node gives {_num(a.vps)} → {_num(b.vps)} videos/s "
                       f"for the node ({_pct((b.vps or 0) / (a.vps or 1) - 1)}).")
    return out


def _rank_caveat(rec: Recommendation, runs: Sequence[Run]) -> list[str]:
    bad = [b for label, _, b in _rank_verdicts(runs) if label == rec.label]
    bad += [r for r in runs if r.kind == "distributed" and not r.ok and r.label == rec.label and r not in bad]
    if not bad:
        return []
    b = max(bad, key=lambda r: r.ranks)
    return [f"With {b.ranks} ranks per node (DDP) this configuration failed: {b.result} {b.failure_point()}; "
            "see *Distributed runs* and size it for all ranks.", ""]


def _limits_section(limits: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = [[lm.get("num_workers"), lm.get("prefetch_factor") or "—",
             lm.get("boundary_batch_size") if lm.get("boundary_batch_size") is not None else "none passed",
             lm.get("first_failing_batch_size") or "—", lm.get("kind_beyond") or "—",
             _size(lm["shm_need_beyond_bytes"]) if lm.get("shm_need_beyond_bytes") else "—",
             lm.get("max_batch_size_tried", "?"), len(lm.get("probes") or [])] for lm in limits]
    out = md_table(["workers", "prefetch", "largest passing batch size", "first failing batch size",
                    "failure beyond", "shm needed beyond", "largest tried", "probes"], rows)
    for lm in limits:
        if lm.get("boundary_batch_size") is None:
            out.append(f"\nWith {lm.get('num_workers')} workers even the smallest batch size tried failed "
                       f"({lm.get('kind_beyond') or '?'}).")
    return out


def _validate_section(v: Mapping[str, Any]) -> list[str]:
    rows = v.get("rows") or []
    cfg = v.get("config") or {}
    label = _label(cfg)
    met = sum(1 for r in rows if r.get("ok"))
    head = f"Config file `{v.get('config_file', '?')}` ({label}): **{'passed' if v.get('passed') else 'FAILED'}**"
    if not rows:
        return [f"{head}: the run itself failed (see *Failed configurations*), so no target was checked."]
    out = [f"{head}, {met} of {len(rows)} targets met.", ""]
    out += md_table(["target", "wanted", "achieved", "met"],
                    [[r.get("target"), _fmt_target(str(r.get("target")), r.get("wanted")),
                      _fmt_target(str(r.get("target")), r.get("achieved")), "yes" if r.get("ok") else "**no**"]
                     for r in rows])
    return out


def _next_steps(data: ResultsFile, runs: Sequence[Run], rec: Recommendation | None) -> list[str]:
    out: list[str] = []
    if rec is None and any(r.ok and r.kind == "distributed" for r in runs):
        out.append("Get a single-loader recommendation to compare the multi-rank runs with: `pytest -m quick`, "
                   "then `pytest -m sustained`.")
    elif rec is None:
        out.append("Nothing passed: fix the first failure below (its remedy), then rerun `pytest -m quick`.")
    elif not rec.verified:
        out.append(f"Confirm the recommendation ({rec.label}) over a long run: `pytest -m sustained`; a short "
                   "run cannot show slow memory or shm growth.")
    by_kind: dict[str, list[Run]] = {}
    for r in runs:
        if not r.ok:
            by_kind.setdefault(r.result, []).append(r)
    for k, rs in by_kind.items():
        remedy = rs[0].remedy()
        out.append(f"{k} ({len(rs)} run(s): {', '.join(r.label for r in rs[:4])}{', …' if len(rs) > 4 else ''}):"
                   f" {_one_line(remedy, 300)}")
    if any(p is None for p, _ in scaling(runs).values()):
        out.append("Throughput still grows with workers: try larger worker counts (`--workers`, up to "
                   "`--max-workers`).")
    if not data.get("limits"):
        out.append("Find the largest batch size per worker count: `pytest -m limits`.")
    v = data.get("validate")
    if not v:
        out.append("Check the recommended config against your own throughput/wait/memory targets: "
                   "`pytest -m validate --train-config train.toml` (the file is in *Recommended configuration*).")
    elif not v.get("passed"):
        missed = [str(r.get("target")) for r in v.get("rows") or [] if not r.get("ok")]
        out.append(f"Targets missed ({', '.join(missed)}): relax them or change the config, then rerun "
                   f"`pytest -m validate --train-config {v.get('config_file', 'train.toml')}`.")
    out.append("Compare with another machine's run: `python -m ssv2_fixtures.report compare THIS_RUN OTHER_RUN`.")
    return [f"{i}. {s}" for i, s in enumerate(out, 1)]


def render_summary(data: ResultsFile, plots: Sequence[str] = ()) -> str:
    """The text of ``summary.md`` (``plots``: PNG file names next to it, referenced as images)."""
    runs = sorted(runs_of(data), key=lambda r: r.sort_key)
    ok, bad = [r for r in runs if r.ok], [r for r in runs if not r.ok]
    mach, ds = data.get("machine") or {}, data.get("dataset") or {}
    rec = recommend(data)
    L: list[str] = [
        f"# DataLoader stress report — {data.get('run_id', '?')}", "",
        f"{len(runs)} run(s) on **{mach.get('hostname', '?')}**: {len(ok)} passed, {len(bad)} failed "
        f"(session {data.get('created', '?')} → {data.get('updated', '?')}).", "",
        "Each configuration (batch size × workers × prefetch × sharing strategy) loaded decoded SSv2 clips "
        "through a PyTorch DataLoader in its own process. *videos/s* is the steady-state rate the training "
        "loop received (after the first batch); *batch wait* is how long the loop waited for each batch; "
        "*quick* runs are short, *sustained* and *validate* runs are long enough to show memory growth.", "",
        "## Recommended configuration", ""]
    if rec is None and any(r.ok and r.kind == "distributed" for r in runs):
        L += ["No single-loader configuration passed (or none ran), so there is nothing to recommend from them; "
              "the passing multi-rank runs are in *Distributed runs* (their rates are per node).", ""]
    elif rec is None:
        L += ["No configuration passed, so there is nothing to recommend yet; see *Failed configurations* "
              "and *Next steps*.", ""]
    else:
        exp = f" (measured: {rec.expected_vps:.1f} videos/s)" if rec.expected_vps is not None else \
            " (not measured as is: expect up to the basis run's rate)"
        L += [f"**{rec.label}**{exp} — {rec.reason}.", ""]
        L += _rank_caveat(rec, runs)
        try:
            L += _snippet(rec, data) + ["", "Environment it needs:", ""] + _environment(rec, mach) + [""]
            L += ["To check it against your own targets, save this as `train.toml` and run "
                  "`pytest -m validate --train-config train.toml`:", ""] + _train_toml(rec) + [""]
        except ValueError as exc:  # a hand-edited record: say so rather than stop the whole report
            L += [f"(its recorded config is not a valid LoaderConfig: {exc})", ""]
    L += ["## Machine", ""] + md_table(["fact", "value"], _machine_rows(mach)) + [""]
    L += ["## Dataset", ""] + md_table(["fact", "value"], _dataset_rows(ds)) + [""]
    L += ["## Successful configurations", ""]
    L += (_success_table(ok) if ok else ["None."]) + [""]
    L += ["## Failed configurations", ""]
    L += (_failure_table(bad) + ["", "Failure kinds seen:", ""] + _kind_legend(bad) if bad else ["None."]) + [""]
    dist = [r for r in runs if r.kind == "distributed"]
    if dist:
        L += ["## Distributed runs: ranks × workers on one node", ""] + _distributed_section(dist) + [""]
    if data.get("limits"):
        L += ["## Limits: largest batch size per worker count", ""] + _limits_section(data["limits"]) + [""]
    if v := data.get("validate"):
        L += ["## Validation: targets vs achieved", ""] + _validate_section(v) + [""]
    fs = findings(data)
    L += ["## Findings", ""] + ([f"- {f}" for f in fs] if fs else ["- Nothing notable."]) + [""]
    if plots:
        L += ["## Plots", ""]
        L += [f"![{Path(p).stem}]({p})" for p in plots] + [""]
    L += ["## Next steps", ""] + _next_steps(data, runs, rec) + [""]
    if data.get("settings"):
        L += ["## Settings used", ""] + md_table(["option", "value"], sorted(
            [k, v] for k, v in (data.get("settings") or {}).items())) + [""]
    return "\n".join(L)


def _save_png(fig: Figure, path: Path) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_atomic_bytes(path, buf.getvalue())


def summarize(run_dir: str | os.PathLike[str]) -> Path:
    """Write ``summary.md`` and the plots into the run folder; returns the summary's path."""
    data, folder = load(run_dir)
    assert folder is not None
    plots = ["throughput.png"]
    _save_png(plot_throughput(data), folder / "throughput.png")
    sfig = plot_sustained(data)
    if sfig is not None:
        _save_png(sfig, folder / "sustained.png")
        plots.append("sustained.png")
    out = folder / "summary.md"
    write_atomic_bytes(out, render_summary(data, plots).encode())
    return out


# --------------------------------------------------------------------------------------------------
# plots (Agg, no pyplot: no global figure state, safe in a pytest session)


def _figure(**kw: Any) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(layout="constrained", **kw)
    FigureCanvasAgg(fig)
    return fig


def plot_throughput(data: ResultsFile | Sequence[RunRecord]) -> Figure:
    """videos/s vs workers, one line per batch size (best passing run per point); failed runs as x,
    annotated with their failure kind (at the rate they reached, or 0 if they never got going)."""
    runs = [r for r in runs_of(data) if r.kind != "distributed" and r.workers is not None]
    mach = data.get("machine") or {} if isinstance(data, Mapping) else {}
    fig = _figure(figsize=(8, 5))
    ax = fig.add_subplot()
    sizes = sorted({r.batch_size for r in runs if r.batch_size is not None})
    colors = {bs: f"C{i % 10}" for i, bs in enumerate(sizes)}
    for bs, pts in _best_by_workers(runs).items():
        ax.plot([w for w, _ in pts], [v for _, v in pts], marker="o", color=colors[bs], label=f"batch size {bs}")
    failed: dict[tuple[int, float], list[Run]] = {}
    for r in runs:
        if not r.ok and r.batch_size is not None:
            failed.setdefault((r.workers or 0, r.vps or 0.0), []).append(r)
    if failed:
        xs, ys, cs = [], [], []
        for (w, y), rs in failed.items():
            for r in rs:
                xs.append(w)
                ys.append(y)
                cs.append(colors.get(r.batch_size or 0, "k"))
            text = "\n".join(sorted({f"bs{r.batch_size}: {r.result}" for r in rs}))
            ax.annotate(text, (w, y), xytext=(6, 4), textcoords="offset points", fontsize=7, color="dimgray")
        ax.scatter(xs, ys, marker="x", s=60, c=cs, linewidths=2, zorder=3, clip_on=False)
    if not runs:
        ax.text(0.5, 0.5, "no run recorded", ha="center", va="center", transform=ax.transAxes)
    ws = sorted({r.workers for r in runs if r.workers is not None})
    if ws:
        ax.set_xticks(ws)
        span = max(ws) - min(ws) or 1
        ax.set_xlim(min(ws) - 0.1 * span, max(ws) + 0.2 * span)  # room for the annotations on the right
    top = max(ax.get_ylim()[1], 1.0)
    ax.set_ylim(-0.03 * top, top * 1.05)  # failures at 0 stay visible above the axis line
    host = f" — {mach.get('hostname')} ({mach.get('cores', '?')} cores)" if mach.get("hostname") else ""
    ax.set_title(f"DataLoader throughput vs workers{host}")
    ax.set_xlabel("num_workers (DataLoader worker processes)")
    ax.set_ylabel("throughput (videos/s, steady state)")
    ax.grid(True, alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if failed:  # a neutral proxy: the x marks themselves take their batch size's colour
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], marker="x", color="black", linestyle="none", markersize=8,
                              label="failed run: at its rate, or 0 if none (kind annotated)"))
    if handles:
        ax.legend(handles=handles, loc="best", fontsize=8)
    return fig


def plot_sustained(data: ResultsFile | Sequence[RunRecord]) -> Figure | None:
    """Small multiples, one row per sustained/validate run: per-batch wait (ms) vs batch, RSS (MB) and
    /dev/shm used (MB) vs time. ``None`` when there is no such run."""
    runs = sorted((r for r in runs_of(data) if r.kind in SUSTAINED_KINDS), key=lambda r: r.sort_key)
    if not runs:
        return None
    fig = _figure(figsize=(13, 2.8 * len(runs) + 0.8))
    fig.suptitle("Sustained runs: batch wait per batch, process-tree memory (RSS) and /dev/shm over time")
    axes = fig.subplots(len(runs), 3, squeeze=False)
    for row, r in zip(axes, runs):
        series = r.rec.get("series") or {}
        waits = [x * 1000 for x in r.rec.get("batch_waits_s") or []]
        a = row[0]
        if waits:
            # The first batch includes worker start-up (seconds): drawn, it would flatten the steady waits.
            a.plot(range(2, len(waits) + 1), waits[1:], lw=1, color="C0", label="wait per batch")
            p95 = r.metrics.get("wait_ms_p95")
            if p95 is not None:
                a.axhline(p95, color="C3", ls=":", lw=1, label=f"p95 {p95:.0f} ms")
            a.set_ylim(0, max(waits[1:] or waits) * 1.3)  # headroom for the legend
            a.legend(fontsize=7, loc="upper right")
        status = "passed" if r.ok else r.result
        a.set_title(f"{r.label} ({r.kind}): {status}", fontsize=9)
        a.set_xlabel(f"batch (first: {waits[0] / 1000:.2f} s start-up, not drawn)" if waits else "batch")
        a.set_ylabel("wait (ms)")
        t = series.get("t") or []
        for a, key, what, color in ((row[1], "rss", "RSS (all processes)", "C2"),
                                    (row[2], "shm_used", "/dev/shm used", "C4")):
            ys = series.get(key) or []
            if t and ys:
                n = min(len(t), len(ys))
                a.plot(t[:n], [y / MB for y in ys[:n]], lw=1, color=color, label=what)
                a.legend(fontsize=7, loc="lower right")
            else:
                a.text(0.5, 0.5, "no samples", ha="center", va="center", transform=a.transAxes)
            a.set_title(f"{r.label}: {what}", fontsize=9)
            a.set_xlabel("time since start (s)")
            a.set_ylabel(f"{what.split(' ')[0]} (MB)")
        for a in row:
            a.grid(True, alpha=0.3)
    return fig


# --------------------------------------------------------------------------------------------------
# terminal


def terminal_lines(results_file: Source) -> list[str]:
    """A short fixed-width table for the end of a pytest session: config, test, videos/s, result."""
    data, _ = load(results_file)
    runs = runs_of(data)
    # ASCII only: pytest's terminal may be a CI log with a C locale
    rows = [(r.label, r.kind, _num(r.vps) if r.vps is not None else "-", "passed" if r.ok else
             f"{r.result} ({r.failure_point()})" if r.outcome else r.result) for r in runs]
    head = ("config", "test", "videos/s", "result")
    width = [max(len(str(x)) for x in col) for col in zip(head, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).rjust(w) if i == 2 else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, width))).rstrip()
    return [line(head)] + [line(r) for r in rows]


# --------------------------------------------------------------------------------------------------
# compare

_MACHINE_FACTS: tuple[tuple[str, str], ...] = (
    ("cores", "CPU cores"), ("ram_bytes", "RAM"), ("shm_total_bytes", "/dev/shm size"),
    ("shm_free_bytes", "/dev/shm free"), ("nofile", "open files limit (ulimit -n)"),
    ("nofile_hard", "open files hard limit"), ("tmpdir", "TMPDIR"), ("tmp_free_bytes", "TMPDIR free space"),
    ("python", "python"), ("torch", "torch"), ("decord", "decord"), ("av", "PyAV"),
    ("platform", "platform"), ("cuda", "CUDA"), ("sharing_strategy", "default sharing strategy"))
_DATASET_FACTS: tuple[tuple[str, str], ...] = (
    ("synthetic", "dataset: synthetic"), ("videos", "dataset: videos"), ("codec", "dataset: codec"),
    ("num_frames", "dataset: frames per clip"), ("size", "dataset: frame size"))


def _differs(key: str, a: Any, b: Any) -> bool:
    if key.endswith("_bytes") and isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) > 0.05 * max(abs(a), abs(b), 1)  # free space drifts: only real differences
    return a != b


def _fact(key: str, x: Any) -> str:
    return _size(x) if key.endswith("_bytes") and x is not None else "?" if x is None else str(x)


def _keyed(runs: Sequence[Run]) -> dict[tuple[str, str], Run]:
    out: dict[tuple[str, str], Run] = {}
    for r in runs:
        label = (f"{r.label} × {r.ranks} rank{'s' if r.ranks != 1 else ''}" if r.kind == "distributed"
                 else r.label)  # 1 and N ranks are different runs
        key, n = (r.kind, label), 2
        while key in out:  # the same config twice in one run: keep both, in order
            key, n = (r.kind, f"{label} #{n}"), n + 1
        out[key] = r
    return out


def _outcome_text(r: Run) -> str:
    if r.ok:
        return f"passed, {_num(r.vps)} videos/s"
    msg = f": {_one_line(r.outcome.get('message'), 100)}" if r.outcome.get("message") else ""
    return f"{r.result} {r.failure_point()}{msg}"


def _effective_shm(r: Run, mach: Mapping[str, Any]) -> Any:
    return r.sandbox.get("shm_bytes") or r.evidence.get("shm_total_bytes") or mach.get("shm_total_bytes")


def _explain_flip(fail: Run, good: Run, mf: Mapping[str, Any], mg: Mapping[str, Any], nf: str, ng: str) -> str:
    """One sentence linking a run that failed on one machine and passed on the other to a difference."""
    k = fail.result
    head = f"{fail.label} ({fail.kind}) failed on {nf} with {k} and passed on {ng}"
    if k in SHM_KINDS:
        sf, sg = _effective_shm(fail, mf), _effective_shm(good, mg)
        need = fail.evidence.get("shm_need_bytes") or good.metrics.get("shm_peak_bytes")
        if sf and sg and sf < sg:
            return (f"{head}: {nf}'s /dev/shm is {_size(sf)} vs {_size(sg)} on {ng}, and the run needs ~"
                    f"{_size(need)} in flight; give {nf} a larger /dev/shm (--shm-size).")
    if k == "fd_exhausted":
        a, b = fail.sandbox.get("nofile") or mf.get("nofile"), good.sandbox.get("nofile") or mg.get("nofile")
        if a and b and a < b:
            return f"{head}: {nf}'s open files limit is {a} vs {b} on {ng}; raise it with ulimit -n."
    if k == "tmp_full":
        a, b = mf.get("tmp_free_bytes"), mg.get("tmp_free_bytes")
        if a is not None and b is not None and a < b:
            return f"{head}: {nf}'s TMPDIR has {_size(a)} free vs {_size(b)} on {ng}."
    if k in MEMORY_KINDS:
        a = fail.sandbox.get("mem_bytes") or mf.get("ram_bytes")
        b = good.sandbox.get("mem_bytes") or mg.get("ram_bytes")
        if a and b and a < b:
            return f"{head}: {nf} has {_size(a)} of memory vs {_size(b)} on {ng}."
    return f"{head}; no difference in cores, memory, /dev/shm, open files or TMPDIR explains it: read its message."


def compare(run_a: Source, run_b: Source) -> str:
    """Markdown: the two runs' configs side by side (matched by test kind + label) with the B/A ratio,
    configs whose outcome differs, and the machine differences that explain them."""
    da, _ = load(run_a)
    db, _ = load(run_b)
    ma, mb = da.get("machine") or {}, db.get("machine") or {}
    ka = _keyed(sorted(runs_of(da), key=lambda r: r.sort_key))
    kb = _keyed(sorted(runs_of(db), key=lambda r: r.sort_key))
    both = [k for k in ka if k in kb]
    only_a, only_b = [k for k in ka if k not in kb], [k for k in kb if k not in ka]
    L = [f"# Comparison: A = {da.get('run_id', '?')} ({ma.get('hostname', '?')}) vs "
         f"B = {db.get('run_id', '?')} ({mb.get('hostname', '?')})", ""]

    diffs = [[label, _fact(key, ma.get(key)), _fact(key, mb.get(key))]
             for key, label in _MACHINE_FACTS if _differs(key, ma.get(key), mb.get(key))]
    dsa, dsb = da.get("dataset") or {}, db.get("dataset") or {}
    diffs += [[label, _fact(key, dsa.get(key)), _fact(key, dsb.get(key))]
              for key, label in _DATASET_FACTS if _differs(key, dsa.get(key), dsb.get(key))]
    L += ["## Machine differences", ""]
    L += (md_table(["fact", "A", "B"], diffs) if diffs else ["None in the recorded facts."]) + [""]

    L += ["## Configurations side by side", ""]
    rows, ratios = [], []
    for k in both:
        a, b = ka[k], kb[k]
        ratio = b.vps / a.vps if a.ok and b.ok and a.vps and b.vps is not None else None
        if ratio is not None:
            ratios.append(ratio)
        rows.append([k[0], k[1], _num(a.vps), _num(b.vps), _num(ratio, 2), a.result, b.result])
    L += (md_table(["test", "config", "A videos/s", "B videos/s", "B/A", "A result", "B result"], rows)
          if rows else ["No configuration ran on both."]) + [""]
    if ratios:
        L += [f"Median B/A over the {len(ratios)} configuration(s) that passed on both: "
              f"{statistics.median(ratios):.2f}.", ""]

    flips = [k for k in both if ka[k].ok != kb[k].ok]
    if flips:
        L += ["## Passed on one, failed on the other", ""]
        L += md_table(["test", "config", "A outcome", "B outcome"],
                      [[k[0], k[1], _outcome_text(ka[k]), _outcome_text(kb[k])] for k in flips]) + [""]
    if only_a or only_b:
        L += ["## Ran on one only", ""]
        if only_a:
            L.append("- only on A: " + ", ".join(f"{lab} ({kind}, {ka[(kind, lab)].result})" for kind, lab in only_a))
        if only_b:
            L.append("- only on B: " + ", ".join(f"{lab} ({kind}, {kb[(kind, lab)].result})" for kind, lab in only_b))
        L.append("")

    why: list[str] = []
    for k in flips:
        a, b = ka[k], kb[k]
        why.append(_explain_flip(b, a, mb, ma, "B", "A") if a.ok else _explain_flip(a, b, ma, mb, "A", "B"))
    if ratios:
        med = statistics.median(ratios)
        if med < 0.9 or med > 1.1:
            slow, fast, ms, mf = ("B", "A", mb, ma) if med < 1 else ("A", "B", ma, mb)
            causes = []
            if ms.get("cores") and mf.get("cores") and ms["cores"] < mf["cores"]:
                causes.append(f"{slow} has {ms['cores']} cores vs {mf['cores']} on {fast} (decoding is CPU-bound)")
            causes += [f"{n} differs ({ma.get(n, '?')} on A, {mb.get(n, '?')} on B)"
                       for n in ("torch", "decord", "python") if ma.get(n) != mb.get(n)]
            causes += [f"the dataset differs ({label.split(': ')[1]})" for key, label in _DATASET_FACTS
                       if _differs(key, dsa.get(key), dsb.get(key))]
            why.append(f"{slow} is slower (median B/A {med:.2f})" +
                       (": " + "; ".join(causes) + "." if causes else "; no recorded machine difference explains it."))
    L += ["## What explains the differences", ""] + ([f"- {w}" for w in why] if why else
                                                    ["- Nothing to explain: same outcomes, throughput within 10 %."])
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------------------------------
# CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssv2_fixtures.report",
                                     description="Reports from ssv2-stress results.json files.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("summarize", help="write summary.md and plots into a run folder")
    s.add_argument("run_dir", help="reports/<run-id> (or its results.json)")
    c = sub.add_parser("compare", help="compare two runs (markdown)")
    c.add_argument("run_a")
    c.add_argument("run_b")
    c.add_argument("--out", help="write the markdown to this file instead of stdout")
    args = parser.parse_args(argv)
    try:
        if args.command == "summarize":
            print(summarize(args.run_dir))
        else:
            text = compare(args.run_a, args.run_b)
            if args.out:
                Path(args.out).write_text(text)
                print(args.out)
            else:
                sys.stdout.write(text)
    except ResultsError as exc:
        print(f"ssv2-stress report: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable run folder or --out: one line, not a traceback
        print(f"ssv2-stress report: cannot write: {exc}", file=sys.stderr)
        return 1
    return 0


__all__ = ["summarize", "render_summary", "findings", "recommend", "Recommendation", "scaling",
           "plot_throughput", "plot_sustained", "terminal_lines", "compare", "md_table", "load", "Run",
           "runs_of", "main"]

if __name__ == "__main__":
    sys.exit(main())
