"""``summary.md`` for one session: recommendation, machine, dataset, tables, sections, findings,
plots and next steps; :func:`summarize` writes it with the plots into the run folder, in the order
:func:`render_summary` gives. The Machine, Dataset and Pipeline probe tables are built in :mod:`.testbed`, the
Distributed runs section in :mod:`.distributed`; the run tables, recommendation and next steps here.

Rates are shown as ``97.0 ± 3.1`` (the recorded 95 % batch-means interval's half-width; ``±?`` where a
record has none, see :func:`ssv2_fixtures.report.fmt.rate`). Pass/fail is each record's ``status``;
the validate section is shown as the stress layer recorded it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..run.outcome import KIND_NAMES
from ..run.outcome import kind as failure_kind
from ..run.record import write_atomic_bytes
from ..run.schema import ResultsFile
from ..run.units import fmt_bytes, rate
from .breakdown import breakdown_plot, breakdown_section
from .compare import previous_run, run_to_run
from .distributed import distributed_section
from .drift import drift_section
from .findings import findings, rank_verdicts, scaling
from .fmt import md_table, num, one_line, verdict_judged, verdict_ok
from .model import Run, extra, interval_of, label_of, load, measurement_errors, runs_of
from .plots import plot_sustained, plot_throughput, save_png
from .recommend import Recommendation, environment, recommend, snippet, train_toml
from .rerun import invocation_note, rerun
from .testbed import dataset_rows, machine_rows, probe_section
from .tune import TUNE_PLOT, confirmed_best, plot_tune, tune_section

SPREAD_NOTE = (
    "*videos/s* is the recorded rate ± the half-width of its 95 % batch-means interval "
    "(the run's per-batch times cut into consecutive groups); configs whose intervals overlap "
    "cannot be told apart."
)


def _has_eff(runs: Sequence[Run]) -> bool:
    return any(r.efficiency is not None for r in runs)


def _eff_cell(r: Run) -> str:
    return "—" if r.efficiency is None else f"{r.efficiency * 100:.0f} %"


def _spread_note(runs: Sequence[Run]) -> list[str]:
    missing = any(r.vps is not None and r.interval is None for r in runs)
    return [
        SPREAD_NOTE
        + (
            " *±?*: the record carries no interval (a results file without intervals, or too few batches)."
            if missing
            else ""
        )
    ]


def _config_cells(r: Run) -> list[Any]:
    """batch size, workers, prefetch; ``?`` for a record without its config (not guessed from the label)."""
    if r.batch_size is None and r.workers is None:
        return ["?", "?", "?"]
    return [r.batch_size, r.workers_cell, r.prefetch]


def _success_table(runs: Sequence[Run], errors: Sequence[Run] = ()) -> list[str]:
    """``errors``: runs whose rate is a measurement error (model.measurement_errors), marked where the rate is
    shown and in their status: no finding or recommendation ranks them."""
    eff = _has_eff(runs)
    head = (
        ["test", "config", "batch size", "workers", "prefetch", "videos/s"]
        + (["efficiency"] if eff else [])
        + ["wait p50 ms", "wait p95 ms", "batches", "status"]
    )
    rows = []
    for r in runs:
        m = r.metrics
        status = "passed" + (f" ({len(r.rec.get('ranks') or [])} ranks)" if r.rec.get("ranks") else "")
        checks = [str(v.get("name")) for v in r.verdicts if verdict_ok(v) and verdict_judged(v)]
        if checks:
            status += f", checks ok: {', '.join(checks)}"
        unjudged = [str(v.get("name")) for v in r.verdicts if verdict_ok(v) and not verdict_judged(v)]
        if unjudged:  # too short a run: the check did not pass, it did not run
            status += f", not judged (too few batches): {', '.join(unjudged)}"
        failed = [str(v.get("name")) for v in r.failed_verdicts]
        if failed:  # recorded as passed with a failing check: shown, not re-judged
            status += f", check failed: {', '.join(failed)}"
        if r in errors:
            status += ", not ranked: measurement error"
        rows.append(
            [r.test, r.label, *_config_cells(r), rate(r.vps, r.interval) + (" ⚠" if r in errors else "")]
            + ([_eff_cell(r)] if eff else [])
            + [num(m.get("wait_ms_p50")), num(m.get("wait_ms_p95")), m.get("batches", "?"), status]
        )
    legend = (
        [
            "*⚠*: a measurement error — the rate is above the item ceiling (single-process rate × cores) by more "
            "than its interval and the margin (see Findings); it is not ranked and not recommended."
        ]
        if any(r in errors for r in runs)
        else []
    )
    return md_table(head, rows) + [""] + _spread_note(runs) + legend


def _failure_table(runs: Sequence[Run]) -> list[str]:
    rows = []
    for r in runs:
        if r.outcome:
            cause = one_line(r.outcome.get("message"))
        else:  # loaded every batch, failed a check
            cause = "; ".join(one_line(x.get("detail")) for x in r.failed_verdicts) or "failed (no outcome recorded)"
        point = r.failure_point() if r.outcome else f"all {r.metrics.get('batches', '?')} batches loaded"
        rows.append([r.test, r.label, *_config_cells(r), point, r.result, cause, one_line(r.remedy(), 400)])
    return md_table(
        ["test", "config", "batch size", "workers", "prefetch", "failure point", "kind", "cause", "remedy"], rows
    )


def _kind_legend(runs: Sequence[Run]) -> list[str]:
    seen = sorted(
        {r.result for r in runs if not r.ok}, key=lambda k: KIND_NAMES.index(k) if k in KIND_NAMES else len(KIND_NAMES)
    )
    out = []
    for k in seen:
        if k in KIND_NAMES and k != "unknown":
            out.append(f"- **{k}**: {failure_kind(k).summary}")
        elif k == "unknown":
            out.append("- **unknown**: the failure matched no known kind; the message and stderr tail are all there is")
        elif k.startswith("verdict:"):
            out.append(f"- **{k}**: every batch loaded, but a check ({k.split(':', 1)[-1]}) failed")
        else:
            out.append(f"- **{k}**: the run's record says it failed, with no outcome or failed check recorded")
    return out


def fmt_target(name: str, x: Any) -> str:
    if x is None:
        return "not measured"
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        if name.endswith("_bytes"):
            return fmt_bytes(x)
        return f"{x:.4g} GiB" if name.endswith("_gb") else f"{x:.4g}"
    return str(x)


def _rank_caveat(rec: Recommendation, runs: Sequence[Run]) -> list[str]:
    bad = [b for label, _, b in rank_verdicts(runs) if label == rec.label]
    bad += [r for r in runs if r.kind == "distributed" and not r.ok and r.label == rec.label and r not in bad]
    if not bad:
        return []
    b = max(bad, key=lambda r: r.ranks)
    return [
        f"With {b.ranks} ranks per node (DDP) this configuration failed: {b.result} {b.failure_point()}; "
        "see *Distributed runs* and size it for all ranks.",
        "",
    ]


def _limits_section(limits: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = [
        [
            lm.get("num_workers"),
            lm.get("prefetch_factor") or "—",
            lm.get("boundary_batch_size") if lm.get("boundary_batch_size") is not None else "none passed",
            lm.get("first_failing_batch_size") or "—",
            lm.get("kind_beyond") or "—",
            fmt_bytes(lm["shm_need_beyond_bytes"]) if lm.get("shm_need_beyond_bytes") else "—",
            lm.get("max_batch_size_tried", "?"),
            len(lm.get("probes") or []),
        ]
        for lm in limits
    ]
    out = md_table(
        [
            "workers",
            "prefetch",
            "largest passing batch size",
            "first failing batch size",
            "failure beyond",
            "shm needed beyond",
            "largest tried",
            "probes",
        ],
        rows,
    )
    for lm in limits:
        if lm.get("boundary_batch_size") is None:
            out.append(
                f"\nWith {lm.get('num_workers')} workers even the smallest batch size tried failed "
                f"({lm.get('kind_beyond') or '?'})."
            )
    return out


def _validate_section(v: Mapping[str, Any]) -> list[str]:
    """The validate section as the stress layer recorded it (rows and ``passed``)."""
    rows = v.get("rows") or []
    cfg = v.get("config") or {}
    label = label_of(cfg)
    met = sum(1 for r in rows if r.get("ok"))
    head = f"Config file `{v.get('config_file', '?')}` ({label}): **{'passed' if v.get('passed') else 'FAILED'}**"
    if not rows:
        return [f"{head}: the run itself failed (see *Failed configurations*), so no target was checked."]
    out = [f"{head}, {met} of {len(rows)} targets met.", ""]
    out += md_table(
        ["target", "wanted", "achieved", "met"],
        [
            [
                r.get("target"),
                fmt_target(str(r.get("target")), r.get("wanted")),
                _achieved(r),
                "yes" if r.get("ok") else "**no**",
            ]
            for r in rows
        ],
    )
    return out


def _achieved(row: Mapping[str, Any]) -> str:
    """What a target was judged on: a rate with its interval says the lower bound decided."""
    text = fmt_target(str(row.get("target")), row.get("achieved"))
    iv = row.get("interval")
    if row.get("judged_on") == "interval_lo" and iv:
        return f"{rate(row.get('achieved'), interval_of(iv))} (judged on the lower bound {float(iv[0]):.1f})"
    return text


def _data_error_section(err: Mapping[str, Any]) -> list[str]:
    """A session whose data could not load: what, where, and the fix, as recorded."""
    return [
        "The dataset could not be loaded, so no configuration ran. Fix the data, then rerun.",
        "",
        *md_table(
            ["fact", "value"],
            [
                ["kind", err.get("kind", "data_error")],
                ["file", err.get("file") or "?"],
                ["entry", err.get("entry") or "the file as a whole"],
                ["message", one_line(err.get("message"), 400) or "?"],
                ["fix", one_line(err.get("fix"), 400) or "?"],
            ],
        ),
    ]


def _next_steps(data: ResultsFile, runs: Sequence[Run], rec: Recommendation | None) -> list[str]:
    out: list[str] = []
    inv = extra(data, "invocation")  # the user's own command line: the commands below repeat their options
    err = extra(data, "data_error")
    if err:
        where = f"{err.get('file') or '?'}, " + (f"entry {err['entry']}" if err.get("entry") else "the file as a whole")
        again = rerun(inv, None) if inv else rerun(inv, "quick")
        out.append(
            f"Fix the data ({where}): {one_line(err.get('fix'), 300) or 'see the message'}; then rerun `{again}`."
        )
    elif rec is None and any(r.ok and r.kind == "distributed" for r in runs):
        out.append(
            f"Get a single-loader recommendation to compare the multi-rank runs with: `{rerun(inv, 'quick')}`, "
            f"then `{rerun(inv, 'sustained')}`."
        )
    elif rec is None:
        again = rerun(inv, None) if inv else rerun(inv, "quick")
        out.append(f"Nothing passed: fix the first failure below (its remedy), then rerun `{again}`.")
    elif not rec.verified:
        out.append(
            f"Confirm the recommendation ({rec.label}) over a long run: `{rerun(inv, 'sustained')}`; a short "
            "run cannot show slow memory or shm growth."
        )
    by_kind: dict[str, list[Run]] = {}
    for r in runs:
        if not r.ok:
            by_kind.setdefault(r.result, []).append(r)
    for k, rs in by_kind.items():
        out.append(
            f"{k} ({len(rs)} run(s): {', '.join(r.label for r in rs[:4])}{', …' if len(rs) > 4 else ''}):"
            f" {one_line(rs[0].remedy(), 300)}"
        )
    if any(sc.verdict == "grows" for sc in scaling(runs).values()):  # a tie gives no advice
        out.append(
            "Throughput still grows with workers: try larger worker counts (`--workers`, up to `--max-workers`)."
        )
    if not data.get("limits"):
        out.append(f"Find the largest batch size per worker count: `{rerun(inv, 'limits')}`.")
    v = data.get("validate")
    if not v:
        out.append(
            "Check the recommended config against your own throughput/wait/memory targets: "
            f"`{rerun(inv, 'validate', '--train-config', 'train.toml')}` (the file is in *Recommended configuration*)."
        )
    elif not v.get("passed"):
        missed = [str(r.get("target")) for r in v.get("rows") or [] if not r.get("ok")]
        out.append(
            f"Targets missed ({', '.join(missed)}): relax them or change the config, then rerun "
            f"`{rerun(inv, 'validate', '--train-config', str(v.get('config_file', 'train.toml')))}`."
        )
    out.append("Compare with another machine's run: `python -m ssv2_fixtures.report compare THIS_RUN OTHER_RUN`.")
    note = invocation_note(inv)
    return [f"{i}. {s}" for i, s in enumerate(out, 1)] + (["", note] if note else [])


def _recommendation_section(data: ResultsFile, runs: Sequence[Run], rec: Recommendation | None) -> list[str]:
    out: list[str] = []
    tuned = confirmed_best(data)
    if tuned is not None:  # the tuner's answer comes first, as it recorded it
        out += [
            f"Tuned (`pytest -m tune`, batch size {tuned.entry.get('batch_size', '?')}): **{tuned.label}** — "
            f"{rate(tuned.rate, tuned.interval)} videos/s, confirmed by a second measurement"
            + (
                "."
                if rec is not None and rec.tuned
                else "; it has no passed run record here, so the measured runs below decide."
            ),
            "",
        ]
    if extra(data, "data_error"):
        return out + ["No configuration ran: the data could not be loaded (see *Data could not load*).", ""]
    if rec is None and any(r.ok and r.kind == "distributed" for r in runs):
        return out + [
            "No single-loader configuration passed (or none ran), so there is nothing to recommend "
            "from them; the passing multi-rank runs are in *Distributed runs* (their rates are per "
            "node).",
            "",
        ]
    if rec is None:
        return out + [
            "No configuration passed, so there is nothing to recommend yet; see *Failed "
            "configurations* and *Next steps*.",
            "",
        ]
    mach = data.get("machine") or {}
    out += [f"**{rec.label}** (measured: {rec.measured}) — {rec.reason}.", ""]
    out += _rank_caveat(rec, runs)
    try:
        out += snippet(rec, data) + ["", "Environment it needs:", ""] + environment(rec, mach, data.get("probe")) + [""]
        out += (
            [
                "To check it against your own targets, save this as `train.toml` and run "
                f"`{rerun(extra(data, 'invocation'), 'validate', '--train-config', 'train.toml')}`:",
                "",
            ]
            + train_toml(rec)
            + [""]
        )
    except ValueError as exc:  # a hand-edited record: say so rather than stop the whole report
        out += [f"(its recorded config is not a valid LoaderConfig: {exc})", ""]
    return out


def render_summary(data: ResultsFile, plots: Sequence[str] = (), previous: tuple[str, list[str]] | None = None) -> str:
    """The text of ``summary.md`` (``plots``: PNG file names next to it, referenced as images;
    ``previous``: the previous session's name and its *Run to run* lines, :func:`run_to_run_lines`)."""
    runs = sorted(runs_of(data), key=lambda r: r.sort_key)
    ok, bad = [r for r in runs if r.ok], [r for r in runs if not r.ok]
    mach, ds = data.get("machine") or {}, data.get("dataset") or {}
    rec = recommend(data)
    lines: list[str] = [
        f"# DataLoader stress report — {data.get('run_id', '?')}",
        "",
        f"{len(runs)} run(s) on **{mach.get('hostname', '?')}**: {len(ok)} passed, {len(bad)} failed "
        f"(session {data.get('created', '?')} → {data.get('updated', '?')}).",
        "",
        "Each configuration (batch size × workers × prefetch × sharing strategy) loaded decoded SSv2 clips "
        "through a PyTorch DataLoader in its own process. *videos/s* is the steady-state rate the training "
        "loop received (after the first batch), with its 95 % spread; *batch wait* is how long the loop waited "
        "for each batch; *quick* runs are short, *sustained* and *validate* runs are long enough to show memory "
        "growth.",
        "",
    ]
    if err := extra(data, "data_error"):
        lines += ["## Data could not load", ""] + _data_error_section(err) + [""]
    lines += ["## Recommended configuration", ""] + _recommendation_section(data, runs, rec)
    lines += ["## Machine", ""] + md_table(["fact", "value"], machine_rows(mach)) + [""]
    probe = extra(data, "probe")
    lines += ["## Dataset", ""] + md_table(
        ["fact", "value"], dataset_rows(ds, probe if isinstance(probe, Mapping) else None)
    )
    lines += [""]
    if isinstance(probe := extra(data, "probe"), Mapping):
        lines += ["## Pipeline probe", ""] + probe_section(probe) + [""]
    lines += breakdown_section(data, plots)  # where the item time goes (report/breakdown.py), its plot when written
    lines += (
        ["## Successful configurations", ""]
        + (_success_table(ok, measurement_errors(runs, mach.get("cores"))) if ok else ["None."])
        + [""]
    )
    lines += ["## Failed configurations", ""]
    lines += (_failure_table(bad) + ["", "Failure kinds seen:", ""] + _kind_legend(bad) if bad else ["None."]) + [""]
    lines += drift_section(data)  # the machine's own drift during the session (report/drift.py)
    if previous is not None:
        lines += [f"## Run to run (vs {previous[0]})", ""] + previous[1]
    if dist := [r for r in runs if r.kind == "distributed"]:
        lines += ["## Distributed runs: ranks × workers on one node", ""] + distributed_section(dist) + [""]
    if tune := tune_section(data, TUNE_PLOT if TUNE_PLOT in plots else None):
        lines += ["## Tune: the search per batch size", ""] + tune + [""]
    if data.get("limits"):
        lines += (
            ["## Limits: largest batch size per worker count", ""] + _limits_section(data.get("limits") or []) + [""]
        )
    if v := data.get("validate"):
        lines += ["## Validation: targets vs achieved", ""] + _validate_section(v) + [""]
    fs = findings(data)
    lines += ["## Findings", ""] + ([f"- {f}" for f in fs] if fs else ["- Nothing notable."]) + [""]
    if plots:
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots] + [""]
    lines += ["## Next steps", ""] + _next_steps(data, runs, rec) + [""]
    if data.get("settings"):
        lines += (
            ["## Settings used", ""]
            + md_table(["option", "value"], sorted([k, v] for k, v in (data.get("settings") or {}).items()))
            + [""]
        )
    return "\n".join(lines)


def run_to_run_lines(folder: Path, data: ResultsFile) -> tuple[str, list[str]] | None:
    """The *Run to run* section against the same machine's previous comparable session
    (:func:`~.compare.previous_run`), or ``None`` when there is none. The comparison is an extra: a
    neighbour it cannot read costs a line saying so, never the session's report."""
    found = previous_run(folder, data)
    if found is None:
        return None
    name = found[0].name
    try:
        return name, run_to_run(found[1], data, name)
    except Exception as exc:  # a damaged or odd record: say so where the section would be
        return name, [f"Could not compare with {name}: {type(exc).__name__}: {one_line(str(exc), 200)}", ""]


def summarize(run_dir: str | os.PathLike[str]) -> Path:
    """Write ``summary.md`` and the plots into the run folder; returns the summary's path."""
    data, folder = load(run_dir)
    assert folder is not None
    plots = ["throughput.png"]
    save_png(plot_throughput(data), folder / "throughput.png")
    sfig = plot_sustained(data)
    if sfig is not None:
        save_png(sfig, folder / "sustained.png")
        plots.append("sustained.png")
    if (tfig := plot_tune(data)) is not None:  # referenced from the tune section
        save_png(tfig, folder / TUNE_PLOT)
        plots.append(TUNE_PLOT)
    plots += breakdown_plot(data, folder)  # referenced from Where the time goes; a failure only warns
    out = folder / "summary.md"
    write_atomic_bytes(out, render_summary(data, plots, run_to_run_lines(folder, data)).encode())
    return out
