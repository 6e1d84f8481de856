"""Which configuration to use: only configs that ran and passed, ties broken toward the cheaper.

The tie rule is :func:`ssv2_fixtures.report.tie.pick` (its module states it step by step).

:func:`recommend` applies it to the runs that passed a sustained (or validate) run; with none, to
the passed short runs (stated as unverified). A config that was never run is never named, and neither is
one that would not fit the (emulated) /dev/shm in training (:func:`shm_unfit`): its run may pass while
its prefetch queues never fill, but a training step slower than the loader fills them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from ..data.loader import LoaderConfig
from ..run.drift import narrowed
from ..run.schema import ResultsFile, RunRecord
from ..run.shm import shm_in_flight, shm_slots
from ..run.stats import TIE_MARGIN
from ..run.units import GiB, fmt_bytes, rate
from .fmt import share
from .model import (
    SUSTAINED_KINDS,
    Run,
    label_of,
    loader_fields,
    measurement_errors,
    runs_of,
    short_ok,
    sustained_ok,
)
from .tie import Pick, candidate, pick, tie_text
from .tune import confirmed_best, entry_label


@dataclass(frozen=True)
class Recommendation:
    config: dict[str, Any]  # LoaderConfig fields to use (exactly the basis run's)
    basis: Run  # the measured, passed run it is
    verified: bool  # True: passed a sustained run as is; False: only short runs
    reason: str  # one sentence, with numbers
    expected_vps: float | None  # the basis run's measured videos/s
    ties: tuple[str, ...] = ()  # labels that tied with it (itself included), cheapest first
    tuned: bool = False  # chosen by a confirmed ``-m tune`` result

    @property
    def label(self) -> str:
        return label_of(self.config)

    @property
    def measured(self) -> str:
        """``74.0 ± 2.1 videos/s`` of the basis run."""
        return f"{rate(self.basis.vps, self.basis.interval)} videos/s"


def shm_unfit(r: Run) -> str | None:
    """Why ``r``'s config cannot hold its batches in flight in the (emulated) /dev/shm of its run, or
    None: the budget predicted it would not fit (``budget.fits``, the rule the BudgetWarning and
    pre-flight use), or its measured full-queue peak (NOTE [full-queue hold] in run/hold.py) exceeded
    what was available."""
    budget = r.rec.get("budget") or {}
    if budget.get("fits") is False:
        return "predicted not to fit /dev/shm"
    full, avail = r.metrics.get("shm_full_queue_bytes"), budget.get("shm_available_bytes")
    if full and avail and (r.workers or 0) and float(full) > float(avail):
        return "its full prefetch queues exceeded /dev/shm"
    return None


def _fitting(pool: Sequence[Run]) -> tuple[list[Run], list[Run]]:
    """(runs whose config fits /dev/shm, runs left out by :func:`shm_unfit`)."""
    return [r for r in pool if shm_unfit(r) is None], [r for r in pool if shm_unfit(r) is not None]


def _unfit_note(left_out: Sequence[Run]) -> str:
    labels = sorted({r.label for r in left_out})
    if not labels:
        return ""
    return f"; left out as too large for /dev/shm in training: {', '.join(labels)}"


def _error_note(left_out: Sequence[Run]) -> str:
    labels = sorted({r.label for r in left_out})
    if not labels:
        return ""
    return f"; left out as measurement errors (a rate above the item ceiling): {', '.join(labels)}"


def _best_run(pool: Sequence[Run], data: ResultsFile | Sequence[RunRecord] = ()) -> tuple[Run, Pick]:
    """The run the tie rule picks; several runs of one config count once (its fastest). When the session
    re-measured the fastest and its close configs in alternating windows (results.json ``"interleaved"``,
    stress/drift.py), its decision settles the tie (:func:`ssv2_fixtures.run.drift.narrowed`): the config it names
    as faster, else the cheapest of those it could not tell apart, with the tie members it did not re-measure."""
    by_label: dict[str, Run] = {}
    for r in pool:
        if r.label not in by_label or (r.vps or 0.0) > (by_label[r.label].vps or 0.0):
            by_label[r.label] = r
    cands = {candidate(r): r for r in by_label.values()}
    p = pick(list(cands))
    dec = data.get("interleaved") if isinstance(data, Mapping) else None
    by_name = {c.label: c for c in cands}
    measured = set(dec.get("candidates") or []) if dec else set()
    if dec and p.fastest.label in measured and measured <= set(by_name):
        kept = sorted((by_name[x] for x in narrowed([c.label for c in p.ties], dec)), key=lambda c: c.cost)
        if kept:
            p = Pick(kept[0], tuple(kept), p.fastest)
    return cands[p.best], p


def interleaved_note(data: ResultsFile | Sequence[RunRecord], p: Pick) -> str:
    """``; interleaved: …`` when the session's interleaved decision was over this tie."""
    dec = data.get("interleaved") if isinstance(data, Mapping) else None
    if not dec or not dec.get("rounds") or p.best.label not in (dec.get("candidates") or []):
        return ""
    return f"; re-measured in alternating windows: {dec.get('text', '')}"


def _tuned(data: ResultsFile | Sequence[RunRecord], runs: Sequence[Run]) -> Recommendation | None:
    """A confirmed ``-m tune`` best that also has a passed run record (only measured configs)."""
    if not isinstance(data, Mapping):
        return None
    best = confirmed_best(data)
    if best is None:
        return None
    label = best.label
    passed = [r for r in runs if r.ok and r.label == label and r.vps is not None and r.kind != "distributed"]
    if not passed or any(shm_unfit(r) for r in passed):
        return None
    cfg = best.entry["best"].get("config")
    want = loader_fields(cfg) if isinstance(cfg, Mapping) else {}

    def same(r: Run) -> bool:  # the exact config (persistent_workers is not in the label)
        return all(r.config.get(k) == v for k, v in want.items() if k in r.config)

    basis = max(
        passed,
        key=lambda r: (
            same(r),
            r.kind in SUSTAINED_KINDS,
            str(r.rec.get("phase") or "").startswith("confirm"),
            r.vps or 0.0,
        ),
    )
    unfit = {r.label for r in runs if shm_unfit(r)}
    ties = tuple(t for t in (entry_label(t) for t in best.entry.get("ties") or []) if t not in unfit)
    return Recommendation(
        basis.config,
        basis,
        basis.kind in SUSTAINED_KINDS,
        f"tuned by pytest -m tune for batch size {best.entry.get('batch_size', '?')}: "
        f"{rate(best.rate, best.interval)} videos/s, confirmed",
        basis.vps,
        ties,
        True,
    )


def recommend(data: ResultsFile | Sequence[RunRecord]) -> Recommendation | None:
    """The config to use (module docstring): a confirmed tune result if it ran and passed; else the
    tie rule over sustained passes; else over short passes (configs that failed a long run are left
    out). ``None`` when nothing passed."""
    runs = runs_of(data)
    # a rate above the item ceiling is a measurement error (NOTE [item ceiling] in model.py): never ranked
    cores = (data.get("machine") or {}).get("cores") if isinstance(data, Mapping) else None
    errors = measurement_errors(runs, cores)
    tuned = _tuned(data, [r for r in runs if r not in errors])
    if tuned is not None:
        return tuned
    sus, sus_out = _fitting([r for r in sustained_ok(runs) if r not in errors])
    if sus:
        best, p = _best_run(sus, data)
        n = len({r.label for r in sus})
        why = (
            f"highest videos/s ({rate(p.fastest.rate, p.fastest.interval)}, {p.fastest.label}) among the "
            f"{n} configuration(s) that passed a sustained run"
            + (f"; {tie_text(p)}" if p.tied else "")
            + interleaved_note(data, p)
            + _unfit_note(sus_out)
            + _error_note(errors)
        )
        return Recommendation(best.config, best, True, why, best.vps, tuple(c.label for c in p.ties))
    failed_sus = [r for r in runs if r.kind in SUSTAINED_KINDS and not r.ok]
    # A short pass of a config that failed a long run (e.g. leaked) is no basis for a recommendation.
    bad_labels = {r.label for r in failed_sus}
    short, short_out = _fitting([r for r in short_ok(runs) if r.label not in bad_labels and r not in errors])
    if not short:
        return None
    best, p = _best_run(short, data)
    failed_note = (
        (
            f" ({len(failed_sus)} sustained run(s) failed and are excluded: "
            + ", ".join(f"{r.label} {r.result}" for r in failed_sus)
            + ")"
        )
        if failed_sus
        else ""
    )
    why = (
        f"the fastest short run, {p.fastest.label}, reached {rate(p.fastest.rate, p.fastest.interval)} "
        f"videos/s{failed_note}"
        + (f"; {tie_text(p)}" if p.tied else "")
        + interleaved_note(data, p)
        + _unfit_note([*sus_out, *short_out])
        + _error_note(errors)
        + ". Only short runs: verify with pytest -m sustained"
    )
    return Recommendation(best.config, best, False, why, best.vps, tuple(c.label for c in p.ties))


def training_config(rec: Recommendation) -> LoaderConfig:
    """The recommended config as a training loader: its measured settings, shuffled, the last short batch
    dropped (the quick ladder measures in order; the runs' endless sampler never yields a short batch)."""
    return replace(LoaderConfig.from_dict(loader_fields(rec.config)), shuffle=True, drop_last=True)


CLIP_ARGS = ("split", "num_frames", "size", "sampling", "list_file", "missing", "on_error", "decoder")
"""The run's dataset spec keys that are :class:`~ssv2_fixtures.SSv2Clips` arguments the training loader
keeps (not ``limit``: a test-sized cut of the split)."""


def _seed_worker(user_init: str | None) -> list[str]:
    """The plain-torch twin of make_loader's worker set-up (data/loader.py ``_worker_init``)."""
    lines = [
        "",
        "",
        "def seed_worker(worker_id):  # what make_loader runs in each worker" + (", then yours" if user_init else ""),
        "    torch.set_num_threads(1)",
        "    seed = torch.initial_seed() % 2**32  # torch gives each worker the loader's base seed + its id",
        "    np.random.seed(seed)",
        "    random.seed(seed)",
    ]
    if user_init:
        lines += [f"    if {user_init} is not None:", f"        {user_init}(worker_id)"]
    return lines + ["", ""]


def _torch_lines(lc: LoaderConfig, dataset: str, extra: str = "", user_init: str | None = None) -> list[str]:
    """``# or with plain torch``: the same loader without ssv2_fixtures, seeded as make_loader seeds it."""
    args = [f"batch_size={lc.batch_size}", f"shuffle={lc.shuffle}", f"num_workers={lc.num_workers}"]
    if lc.num_workers:
        args += [f"prefetch_factor={lc.effective_prefetch}", f"persistent_workers={lc.persistent_workers}"]
        if lc.timeout:
            args.append(f"timeout={lc.timeout!r}")
        if lc.mp_context:
            args.append(f"multiprocessing_context={lc.mp_context!r}")
    args += [f"pin_memory={lc.pin_memory}", f"drop_last={lc.drop_last}"]
    if extra:
        args.append(extra)
    if lc.num_workers:
        args.append("worker_init_fn=seed_worker")
    args.append("generator=generator")
    head = ["", "# or with plain torch (the same seeding):"]
    head += ["import random", "", "import numpy as np", "import torch"] if lc.num_workers else ["import torch"]
    return (
        head
        + (_seed_worker(user_init) if lc.num_workers else [""])
        + [
            "generator = torch.Generator()  # the shuffle's (and the workers' base) seed",
            f"generator.manual_seed({lc.seed})",
            f"torch.multiprocessing.set_sharing_strategy({lc.sharing_strategy!r})",
            f"loader = torch.utils.data.DataLoader({dataset}, {', '.join(args)})",
        ]
    )


def snippet(rec: Recommendation, data: ResultsFile) -> list[str]:
    """The recommended config as Python training code: ssv2_fixtures' make_loader and the plain torch
    equivalent, shuffled, ``drop_last``, the dataset in training mode and seeded as the suite seeds."""
    lc = training_config(rec)
    defaults = {f.name: f.default for f in fields(LoaderConfig)}
    args = [f"batch_size={lc.batch_size}", f"num_workers={lc.num_workers}"]
    if lc.num_workers:
        args.append(f"prefetch_factor={lc.effective_prefetch}")
    args += [
        f"{k}={getattr(lc, k)!r}"
        for k in defaults
        if k not in ("batch_size", "num_workers", "prefetch_factor") and getattr(lc, k) != defaults[k]
    ]
    ds = {**(data.get("dataset") or {}), **(rec.basis.rec.get("dataset") or {})}
    if ds.get("factory"):
        return _factory_snippet(ds, _factory_args(data, ds), lc, args)
    ds_args = [repr(str(ds.get("root", "/path/to/ssv2")))]
    ds_args += [f"{k}={ds[k]!r}" for k in CLIP_ARGS if ds.get(k) is not None] + ["train=True"]
    return [
        "```python",
        "from ssv2_fixtures import SSv2Clips, LoaderConfig, make_loader",
        "",
        "# training: random clip sampling (train=True), shuffled, the last short batch dropped",
        f"dataset = SSv2Clips({', '.join(ds_args)})",
        f"config = LoaderConfig({', '.join(args)})",
        "loader = make_loader(dataset, config)  # also sets the sharing strategy and seeds the shuffle and workers",
        *_torch_lines(lc, "dataset"),
        "```",
    ]


def _toml_value(x: Any) -> str:
    """A TOML literal of a JSON-ready value (dataset kwargs: strings, numbers, booleans, lists, tables)."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, (int, float)):
        return repr(x)
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in x) + "]"
    if isinstance(x, Mapping):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in x.items()) + "}"
    return json.dumps(str(x))  # a basic TOML string: JSON's escapes are TOML's


def _factory_args(data: ResultsFile, ds: Mapping[str, Any]) -> list[str] | None:
    """The keyword names the pipeline probe saw ``ds``'s factory called with (results.json ``dataset``), when
    the session's factory is this one (validate's TOML may name another); else ``None``. Which of root, split
    and train a factory takes is a property of the callable, so a run with other ``--dataset-arg`` values of
    the same factory uses the names too (its own values are passed as they were)."""
    top = data.get("dataset") or {}
    names = top.get("factory_args")
    same = top.get("factory") == ds.get("factory")
    return [str(n) for n in names] if same and isinstance(names, list) else None


def _factory_snippet(
    ds: Mapping[str, Any], called: Sequence[str] | None, lc: LoaderConfig, args: list[str]
) -> list[str]:
    """The snippet for a user's pipeline: their factory called as the suite called it (``called``: the
    keyword names the probe saw; root/split/train only where its signature takes them), in training mode,
    its Pipeline's collate_fn and worker_init_fn passed on. Without ``called`` (an older results.json, or a
    pipeline the probe did not measure) the snippet reads the signature itself."""
    mod, _, attr = str(ds["factory"]).partition(":")
    suite = {"root": str(ds.get("root", "/path/to/ssv2")), "split": ds.get("split", "train"), "train": True}
    user = dict(ds.get("factory_kwargs") or {})
    path = [p for p in ds.get("factory_path") or []]
    lines = ["```python"]
    if path:
        lines += ["import sys", f"sys.path[:0] = {path!r}  # --dataset-path (and the folder pytest ran in)", ""]
    lines += [f"from {mod} import {attr}", "from ssv2_fixtures import LoaderConfig, Pipeline, make_loader", ""]
    user_args = [f"{k}={v!r}" for k, v in user.items() if k not in suite]
    if called is not None:
        call = [f"{k}={v!r}" for k, v in suite.items() if k in called and k not in user] + [
            f"{k}={v!r}" for k, v in user.items()
        ]
        why = "as the suite called it" + ("" if "train" in called else "; it takes no train argument")
        lines.append(f"built = {attr}({', '.join(call)})  # {why}")
    else:
        lines += [
            "import inspect",
            "",
            "# root, split and train=True where the signature takes them (or **kwargs), as the suite passes them",
            f"suite_args = {{{', '.join(f'{k!r}: {v!r}' for k, v in suite.items() if k not in user)}}}",
            f"params = inspect.signature({attr}).parameters",
            "takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())",
            "suite_args = {k: v for k, v in suite_args.items() if takes_any or k in params}",
            f"built = {attr}(**suite_args{''.join(', ' + a for a in user_args)})",
        ]
    lines += [
        "pipe = built if isinstance(built, Pipeline) else Pipeline(built)",
        f"config = LoaderConfig({', '.join(args)})",
        "loader = make_loader(pipe.dataset, config, collate_fn=pipe.collate_fn, worker_init_fn=pipe.worker_init_fn)",
        *_torch_lines(lc, "pipe.dataset", "collate_fn=pipe.collate_fn", "pipe.worker_init_fn"),
        "```",
    ]
    return lines


def dataset_table(ds: Mapping[str, Any]) -> list[str]:
    """A training TOML's ``[dataset]`` table for a user's pipeline (empty for the built-in dataset)."""
    if not ds.get("factory"):
        return []
    out = ["[dataset]", f"factory = {_toml_value(ds['factory'])}"]
    if ds.get("factory_path"):
        out.append(f"path = {_toml_value(list(ds['factory_path']))}")
    kw = dict(ds.get("factory_kwargs") or {})
    if kw:
        out += ["", "[dataset.kwargs]"] + [f"{k} = {_toml_value(v)}" for k, v in kw.items()]
    return out + [""]


def train_toml(rec: Recommendation) -> list[str]:
    """The recommendation as a ``--train-config`` file for ``-m validate`` (keys traincfg accepts): the
    training loader of :func:`snippet` (:func:`training_config`)."""
    lc = training_config(rec)
    defaults = {f.name: f.default for f in fields(LoaderConfig)}

    keys = ["batch_size", "num_workers"] + (["prefetch_factor"] if lc.num_workers else []) + ["sharing_strategy"]
    keys += [
        k
        for k in ("pin_memory", "persistent_workers", "shuffle", "drop_last", "timeout", "seed")
        if getattr(lc, k) != defaults[k]
    ]
    lines = ["```toml", *dataset_table(rec.basis.rec.get("dataset") or {}), "[loader]"]
    lines += [f"{k} = {_toml_value(lc.effective_prefetch if k == 'prefetch_factor' else getattr(lc, k))}" for k in keys]
    lines += ["", "[target]"]
    # validate judges the target on a run's interval lower bound: this run's lower bound (else its rate) less
    # the run-to-run margin is what the same config should meet again
    iv = rec.basis.interval
    vps = iv[0] if iv else (rec.expected_vps or rec.basis.vps)
    if vps:
        of = f"the lower bound {vps:.1f} of {rate(rec.basis.vps, iv)}" if iv else f"{vps:.1f}"
        lines.append(
            f"min_videos_per_s = {math.floor(vps * (1 - TIE_MARGIN))}  # replace with what your training step "
            f"needs (this is {share(1 - TIE_MARGIN)} of {of})"
        )
    return lines + ["```"]


def probe_batch_bytes(rec: Recommendation, batch_size: int, probe: Mapping[str, Any] | None) -> int | None:
    """Bytes of one batch of ``batch_size`` by the pipeline probe's measurement, when the probe measured
    this run's pipeline; else ``None``."""
    from ..stress.probe import probe_applies

    if not probe or not probe_applies(probe, rec.basis.rec.get("dataset") or {}):
        return None
    return int(float(probe["bytes_per_item"]) * batch_size)


def environment(rec: Recommendation, machine: Mapping[str, Any], probe: Mapping[str, Any] | None = None) -> list[str]:
    """Environment changes the recommended config needs, sized from the larger of its run's measured
    peak (every prefetch slot full: NOTE [full-queue hold] in run/hold.py) and, for a user's pipeline, the
    in-flight bytes its probe's real batches predict. Judged against the target the run emulated
    (``--emulate``: its /dev/shm, open-file limit and TMPDIR), else this machine."""
    m, lc = rec.basis.metrics, LoaderConfig.from_dict(loader_fields(rec.config))
    sb = rec.basis.sandbox
    out: list[str] = []
    shm = int(m.get("shm_peak_bytes") or 0)
    per_batch = probe_batch_bytes(rec, lc.batch_size, probe) if lc.num_workers else None
    predicted = shm_in_flight(lc, per_batch) if per_batch else None
    target = f"the emulated target ({sb.get('profile') or '--emulate'})" if sb.get("shm_bytes") else "this machine"
    have = sb.get("shm_bytes") or machine.get("shm_total_bytes")
    if lc.num_workers == 0 or (shm == 0 and not predicted):
        out.append("- **/dev/shm**: not used (no batches shared between processes); no change needed.")
    else:
        need = max(shm, predicted or 0)
        gib = max(1, math.ceil(need * 2 / GiB))  # twice the need: other processes and fragmentation
        enough = (
            f"; {target} has a {fmt_bytes(have)} /dev/shm: " + ("enough" if have >= gib * GiB else "**too small**")
            if have
            else ""
        )
        basis = f"peak {fmt_bytes(shm)}" + (" with every prefetch slot full" if m.get("shm_full_queue_bytes") else "")
        if predicted:
            basis += (
                f", {fmt_bytes(predicted)} in flight by the pipeline probe's batches "
                f"({fmt_bytes(per_batch)} per batch × {shm_slots(lc)} slots)"
            )
        out.append(
            f"- **/dev/shm**: {basis} → `docker run --shm-size={gib}g` (Kubernetes: an "
            f"`emptyDir` with `medium: Memory`, `sizeLimit: {gib}Gi` on /dev/shm){enough}."
        )
    fds = int(m.get("fds_peak") or 0)
    nofile = sb.get("nofile") or machine.get("nofile")
    nofile_of = "the emulated" if sb.get("nofile") else "the current"
    if lc.sharing_strategy == "file_descriptor" and lc.num_workers:
        need = max(1024, 2 ** math.ceil(math.log2(max(fds * 2, 1))))
        state = (
            f"{nofile_of} limit {nofile} is enough"
            if nofile and nofile >= need
            else f"{nofile_of} limit is {nofile if nofile else '?'}"
        )
        out.append(
            f"- **open files**: fd peak {fds} with the file_descriptor strategy (one fd per shared "
            f"tensor in flight) → `ulimit -n {need}`; {state}."
        )
    else:
        out.append(
            f"- **open files**: fd peak {fds}; the {lc.sharing_strategy} strategy passes no fds "
            "per tensor, no change needed."
        )
    tmp = int(m.get("tmp_peak_bytes") or 0)
    if tmp:
        where = (
            f"the emulated TMPDIR: {fmt_bytes(sb['tmp_bytes'])} in all"
            if sb.get("tmp_bytes")
            else f"this run: {machine.get('tmpdir', '?')}, {fmt_bytes(machine.get('tmp_free_bytes'))} free"
        )
        out.append(
            f"- **TMPDIR**: peak {fmt_bytes(tmp)} of temporary files → point TMPDIR at a disk with at least "
            f"{fmt_bytes(tmp * 2)} free ({where})."
        )
    else:
        out.append("- **TMPDIR**: the loader wrote no temporary files (peak 0 B); no change needed.")
    return out
