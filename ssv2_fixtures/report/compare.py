"""Two runs (usually two machines) side by side, and the machine differences that explain them.

Either side may also be an in-training watch log (a ``.jsonl`` file): that comparison is
:func:`ssv2_fixtures.report.watch.compare_with_run`'s, imported only then.
"""

from __future__ import annotations

import importlib
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from ..run.schema import ResultsFile
from ..run.stats import TIE_MARGIN, spans_overlap
from ..run.units import fmt_bytes, rate
from .fmt import md_table, num, one_line, pct, share
from .model import MEMORY_KINDS, SHM_KINDS, Run, Source, load, runs_of
from .recommend import recommend
from .tie import candidate

_MACHINE_FACTS: tuple[tuple[str, str], ...] = (
    ("cores", "CPU cores"),
    ("ram_bytes", "RAM"),
    ("shm_total_bytes", "/dev/shm size"),
    ("shm_free_bytes", "/dev/shm free"),
    ("nofile", "open files limit (ulimit -n)"),
    ("nofile_hard", "open files hard limit"),
    ("tmpdir", "TMPDIR"),
    ("tmp_free_bytes", "TMPDIR free space"),
    ("python", "python"),
    ("torch", "torch"),
    ("decord", "decord"),
    ("av", "PyAV"),
    ("platform", "platform"),
    ("cuda", "CUDA"),
    ("sharing_strategy", "default sharing strategy"),
)
_DATASET_FACTS: tuple[tuple[str, str], ...] = (
    ("synthetic", "dataset: synthetic"),
    ("videos", "dataset: videos"),
    ("codec", "dataset: codec"),
    ("num_frames", "dataset: frames per clip"),
    ("size", "dataset: frame size"),
)


def watch_report() -> Any:
    """The watch report module, imported lazily (plain runs never load it)."""
    return importlib.import_module("ssv2_fixtures.report.watch")


def is_watch_log(src: Source) -> bool:
    """A path ending in ``.jsonl``: an in-training watch log, not a run folder or results.json."""
    return isinstance(src, (str, os.PathLike)) and Path(src).suffix == ".jsonl"


def _differs(key: str, a: Any, b: Any) -> bool:
    if key.endswith("_bytes") and isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) > 0.05 * max(abs(a), abs(b), 1)  # free space drifts: only real differences
    return a != b


def _fact(key: str, x: Any) -> str:
    return fmt_bytes(x) if key.endswith("_bytes") and x is not None else "?" if x is None else str(x)


def _keyed(runs: Sequence[Run]) -> dict[tuple[str, str], Run]:
    out: dict[tuple[str, str], Run] = {}
    for r in runs:
        label = (
            f"{r.label} × {r.ranks} rank{'s' if r.ranks != 1 else ''}" if r.kind == "distributed" else r.label
        )  # 1 and N ranks are different runs
        key, n = (r.kind, label), 2
        while key in out:  # the same config twice in one run: keep both, in order
            key, n = (r.kind, f"{label} #{n}"), n + 1
        out[key] = r
    return out


def _outcome_text(r: Run) -> str:
    if r.ok:
        return f"passed, {rate(r.vps, r.interval)} videos/s"
    msg = f": {one_line(r.outcome.get('message'), 100)}" if r.outcome.get("message") else ""
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
            return (
                f"{head}: {nf}'s /dev/shm is {fmt_bytes(sf)} vs {fmt_bytes(sg)} on {ng}, and the run needs ~"
                f"{fmt_bytes(need)} in flight; give {nf} a larger /dev/shm (--shm-size)."
            )
    if k == "fd_exhausted":
        a, b = fail.sandbox.get("nofile") or mf.get("nofile"), good.sandbox.get("nofile") or mg.get("nofile")
        if a and b and a < b:
            return f"{head}: {nf}'s open files limit is {a} vs {b} on {ng}; raise it with ulimit -n."
    if k == "tmp_full":
        a, b = mf.get("tmp_free_bytes"), mg.get("tmp_free_bytes")
        if a is not None and b is not None and a < b:
            return f"{head}: {nf}'s TMPDIR has {fmt_bytes(a)} free vs {fmt_bytes(b)} on {ng}."
    if k in MEMORY_KINDS:
        a = fail.sandbox.get("mem_bytes") or mf.get("ram_bytes")
        b = good.sandbox.get("mem_bytes") or mg.get("ram_bytes")
        if a and b and a < b:
            return f"{head}: {nf} has {fmt_bytes(a)} of memory vs {fmt_bytes(b)} on {ng}."
    return f"{head}; no difference in cores, memory, /dev/shm, open files or TMPDIR explains it: read its message."


def _within_spread(a: Run, b: Run) -> str:
    """``yes`` when both intervals are recorded and overlap, ``no`` when they are clear of each other."""
    if a.interval is None or b.interval is None:
        return "?"
    return "yes" if spans_overlap(a.interval, b.interval) else "no"


def _side_by_side(
    ka: Mapping[tuple[str, str], Run], kb: Mapping[tuple[str, str], Run], both: Sequence[tuple[str, str]]
) -> tuple[list[str], list[float]]:
    rows, ratios = [], []
    for k in both:
        a, b = ka[k], kb[k]
        ratio = b.vps / a.vps if a.ok and b.ok and a.vps and b.vps is not None else None
        if ratio is not None:
            ratios.append(ratio)
        rows.append(
            [
                k[0],
                k[1],
                rate(a.vps, a.interval),
                rate(b.vps, b.interval),
                num(ratio, 2),
                _within_spread(a, b) if ratio is not None else "—",
                a.result,
                b.result,
            ]
        )
    lines = (
        md_table(["test", "config", "A videos/s", "B videos/s", "B/A", "within spread", "A result", "B result"], rows)
        if rows
        else ["No configuration ran on both."]
    ) + [""]
    if ratios:
        lines += [
            f"Median B/A over the {len(ratios)} configuration(s) that passed on both: "
            f"{statistics.median(ratios):.2f}. *within spread*: the two 95 % intervals overlap, so the "
            "difference is not measured to be real.",
            "",
        ]
    return lines, ratios


def rate_definition(data: ResultsFile) -> str | None:
    """What the file's videos/s measures: ``"wall"`` (videos over the loop's wall time, the rate training
    receives: records that carry ``wait_fraction``), ``"waits"`` (records without ``wait_fraction``: videos over
    the summed waits, which a ``--step-time`` run overstates), ``None`` with no recorded rate."""
    rated = [r for r in runs_of(data) if r.vps is not None]
    if not rated:
        return None
    return "wall" if any("wait_fraction" in r.metrics for r in rated) else "waits"


def _definition_note(da: ResultsFile, db: ResultsFile) -> list[str]:
    a, b = rate_definition(da), rate_definition(db)
    if a is None or b is None or a == b:
        return []
    old = "A" if a == "waits" else "B"
    return [
        f"**Not like with like**: {old}'s videos/s is videos over the summed waits (its records carry no "
        "wait_fraction), the other's over the wall time. Without --step-time they "
        "differ by the loop's own time between batches; with one the waits rate is far higher. Rerun "
        f"{old} with this version to compare the same quantity.",
        "",
    ]


def _slower_side(
    ratios: Sequence[float],
    ma: Mapping[str, Any],
    mb: Mapping[str, Any],
    dsa: Mapping[str, Any],
    dsb: Mapping[str, Any],
) -> list[str]:
    med = statistics.median(ratios)
    if 1 - RUN_TO_RUN_TARGET <= med <= 1 + RUN_TO_RUN_TARGET:  # docs/methodology.md "Run to run"
        return []
    slow, fast, ms, mf = ("B", "A", mb, ma) if med < 1 else ("A", "B", ma, mb)
    causes = []
    if ms.get("cores") and mf.get("cores") and ms["cores"] < mf["cores"]:
        causes.append(f"{slow} has {ms['cores']} cores vs {mf['cores']} on {fast} (decoding is CPU-bound)")
    causes += [
        f"{n} differs ({ma.get(n, '?')} on A, {mb.get(n, '?')} on B)"
        for n in ("torch", "decord", "python")
        if ma.get(n) != mb.get(n)
    ]
    causes += [
        f"the dataset differs ({label.split(': ')[1]})"
        for key, label in _DATASET_FACTS
        if _differs(key, dsa.get(key), dsb.get(key))
    ]
    return [
        f"{slow} is slower (median B/A {med:.2f})"
        + (": " + "; ".join(causes) + "." if causes else "; no recorded machine difference explains it.")
    ]


def compare(run_a: Source, run_b: Source) -> str:
    """Markdown: the two runs' configs side by side (matched by test kind + label) with their rates ±
    spread and the B/A ratio, configs whose outcome differs, and the machine differences that explain
    them. A ``.jsonl`` watch log on either side goes to ``ssv2_fixtures.report.watch.compare_with_run``."""
    if is_watch_log(run_a) or is_watch_log(run_b):
        if is_watch_log(run_a) and is_watch_log(run_b):
            raise ValueError("compare: two watch logs; give a watch log and a run folder")
        log, run = (run_a, run_b) if is_watch_log(run_a) else (run_b, run_a)
        if isinstance(run, Mapping) or isinstance(log, Mapping):
            raise ValueError("compare: a watch log is compared with a run folder, not a results dict")
        return str(watch_report().compare_with_run(Path(log), Path(run)))
    da, _ = load(run_a)
    db, _ = load(run_b)
    ma, mb = da.get("machine") or {}, db.get("machine") or {}
    ka = _keyed(sorted(runs_of(da), key=lambda r: r.sort_key))
    kb = _keyed(sorted(runs_of(db), key=lambda r: r.sort_key))
    both = [k for k in ka if k in kb]
    only_a, only_b = [k for k in ka if k not in kb], [k for k in kb if k not in ka]
    lines = [
        f"# Comparison: A = {da.get('run_id', '?')} ({ma.get('hostname', '?')}) vs "
        f"B = {db.get('run_id', '?')} ({mb.get('hostname', '?')})",
        "",
    ]

    diffs = [
        [label, _fact(key, ma.get(key)), _fact(key, mb.get(key))]
        for key, label in _MACHINE_FACTS
        if _differs(key, ma.get(key), mb.get(key))
    ]
    dsa, dsb = da.get("dataset") or {}, db.get("dataset") or {}
    diffs += [
        [label, _fact(key, dsa.get(key)), _fact(key, dsb.get(key))]
        for key, label in _DATASET_FACTS
        if _differs(key, dsa.get(key), dsb.get(key))
    ]
    lines += ["## Machine differences", ""]
    lines += (md_table(["fact", "A", "B"], diffs) if diffs else ["None in the recorded facts."]) + [""]

    side, ratios = _side_by_side(ka, kb, both)
    lines += ["## Configurations side by side", ""] + _definition_note(da, db) + side

    flips = [k for k in both if ka[k].ok != kb[k].ok]
    if flips:
        lines += ["## Passed on one, failed on the other", ""]
        lines += md_table(
            ["test", "config", "A outcome", "B outcome"],
            [[k[0], k[1], _outcome_text(ka[k]), _outcome_text(kb[k])] for k in flips],
        ) + [""]
    if only_a or only_b:
        lines += ["## Ran on one only", ""]
        if only_a:
            lines.append(
                "- only on A: " + ", ".join(f"{lab} ({kind}, {ka[(kind, lab)].result})" for kind, lab in only_a)
            )
        if only_b:
            lines.append(
                "- only on B: " + ", ".join(f"{lab} ({kind}, {kb[(kind, lab)].result})" for kind, lab in only_b)
            )
        lines.append("")

    why = [
        _explain_flip(kb[k], ka[k], mb, ma, "B", "A") if ka[k].ok else _explain_flip(ka[k], kb[k], ma, mb, "A", "B")
        for k in flips
    ]
    if ratios:
        why += _slower_side(ratios, ma, mb, dsa, dsb)
    lines += ["## What explains the differences", ""] + (
        [f"- {w}" for w in why]
        if why
        else [f"- Nothing to explain: same outcomes, throughput within {share(RUN_TO_RUN_TARGET)}."]
    )
    return "\n".join(lines) + "\n"


# Run to run: the same machine's previous session, for summary.md. Only kinds that measure one loader's
# steady rate are compared (tune probes and limits are searches, distributed rates are per node).
RUN_TO_RUN_KINDS = ("quick", "sustained", "validate")
RUN_TO_RUN_TARGET = TIE_MARGIN  # the run-to-run target is the tie margin (stats.TIE_MARGIN's docstring)
# Settings that change what a config's rate means: sessions that differ in one are not compared.
RATE_SETTINGS = (
    "decoder",
    "frames",
    "size",
    "quick_batches",
    "quick_seconds",
    "batches",
    "step_time",
    "sharing_strategy",
    "dataset_factory",
    "ssv2_split",
    "ssv2_list_file",
    "emulate",
    "emulate_cpus",
    "emulate_mem",
    "emulate_nofile",
    "emulate_shm",
    "emulate_tmp",
)
_DATASET_KEYS = ("root", "split", "decoder", "factory") + tuple(k for k, _ in _DATASET_FACTS)


def _compared(data: ResultsFile) -> dict[tuple[str, str], Run]:
    return _keyed(sorted((r for r in runs_of(data) if r.kind in RUN_TO_RUN_KINDS), key=lambda r: r.sort_key))


def _passed(keyed: Mapping[tuple[str, str], Run]) -> set[tuple[str, str]]:
    return {k for k, r in keyed.items() if r.ok and r.vps is not None}


def _same_setting(a: ResultsFile, b: ResultsFile) -> bool:
    """Same host (by name; a missing name matches nothing) and cores, the same dataset (root, split,
    decoder, factory, size facts), the same rate-changing settings (:data:`RATE_SETTINGS`) and the same
    quantity measured (:func:`rate_definition`)."""
    ma, mb = a.get("machine") or {}, b.get("machine") or {}
    if ma.get("hostname") is None or ma.get("hostname") != mb.get("hostname") or ma.get("cores") != mb.get("cores"):
        return False
    da, db = a.get("dataset") or {}, b.get("dataset") or {}
    sa, sb = a.get("settings") or {}, b.get("settings") or {}
    return (
        not any(_differs(k, da.get(k), db.get(k)) for k in _DATASET_KEYS)
        and all(sa.get(k) == sb.get(k) for k in RATE_SETTINGS)
        and rate_definition(a) == rate_definition(b)
    )


def previous_run(folder: Path, cur: ResultsFile | None = None) -> tuple[Path, ResultsFile] | None:
    """The newest sibling run folder older than ``folder`` (run ids are UTC time + host, so name order is
    time order on one host) in the same setting (:func:`_same_setting`) with a config that passed in both
    (kind + label), with its results; ``None`` if there is none. ``cur``: ``folder``'s results when the
    caller has them already. Folders whose results do not load are passed over."""
    folder = Path(folder).resolve()  # ``reports/latest`` is a symlink: compare by the real run id
    try:
        if cur is None:
            cur, _ = load(folder)
        want = _passed(_compared(cur))
    except Exception:  # a record this session cannot read back: nothing to match on
        return None
    try:
        siblings = sorted(
            (
                p
                for p in folder.parent.iterdir()
                # not ``latest`` (a symlink to a run) nor ``.latest.<pid>`` (its temporary)
                if p.name < folder.name and not p.name.startswith(".") and not p.is_symlink() and p.is_dir()
            ),
            key=lambda p: p.name,
            reverse=True,
        )
    except OSError:
        return None
    for p in siblings:
        try:
            prev, _ = load(p)
            if _same_setting(prev, cur) and want & _passed(_compared(prev)):
                return p, prev
        except Exception:  # unreadable, foreign or hand-edited beyond reading: not a previous run
            continue
    return None


def _verdict(a: Run, b: Run) -> str:
    if candidate(a).ties_with(candidate(b)):  # the recommendation's tie rule, points for missing intervals
        return "tie"
    return "faster" if (b.vps or 0.0) > (a.vps or 0.0) else "slower"


def _common_only(data: ResultsFile, keyed: Mapping[tuple[str, str], Run], keys: set[tuple[str, str]]) -> ResultsFile:
    """``data`` with only the compared runs (``keyed``: :func:`_compared` of it) whose kind + label both
    sessions ran (the recommendation is then compared over the same configs, not over whatever else
    either session ran)."""
    out = dict(data)
    out["results"] = [r.rec for k, r in keyed.items() if k in keys]
    out.pop("tune", None)
    return cast(ResultsFile, out)


def run_to_run(prev: ResultsFile, cur: ResultsFile, prev_name: str) -> list[str]:
    """Markdown lines: configs that passed in both sessions (kind + label) with both rates ± spread, the
    change and a tie/faster/slower verdict; configs that passed in one only; whether the recommendation
    over the common configs held; and whether the run-to-run target (docs/methodology.md "Run to run": same
    recommendation; every config with W ≤ cores within :data:`RUN_TO_RUN_TARGET`, at least one such config
    compared, no pass/fail flip) was met."""
    from ..run.host import is_busy

    ka, kb = _compared(prev), _compared(cur)
    common, passed_both = set(ka) & set(kb), _passed(ka) & _passed(kb)
    both = [k for k in kb if k in passed_both]
    flips = [k for k in kb if k in common and ka[k].ok != kb[k].ok]
    cores = (cur.get("machine") or {}).get("cores")
    out = [
        f"This session against the previous one on the same machine, dataset and settings, **{prev_name}**: "
        "configs that passed in both, matched by test kind and config. *faster*/*slower*: this session "
        "against that one; *tie*: the two rates tie by the tie rule (intervals overlap, or within "
        f"{share(TIE_MARGIN)} of the faster's lower bound), so the change is not evidence.",
        "",
    ]
    rows, moved, judged = [], [], 0
    for k in both:
        a, b = ka[k], kb[k]
        assert a.vps and b.vps is not None
        change = b.vps / a.vps - 1
        rows.append(
            [
                b.test,
                k[1],
                b.workers if b.workers is not None else "?",
                rate(a.vps, a.interval),
                rate(b.vps, b.interval),
                pct(change),
                _verdict(a, b),
            ]
        )
        # W > cores is oversubscribed: its rate depends on scheduling, and the target leaves it out
        if cores is not None and b.workers is not None and b.workers <= cores:
            judged += 1
            if abs(change) > RUN_TO_RUN_TARGET:
                moved.append(f"{k[1]} ({k[0]}, {pct(change)})")
    if not rows:
        out += ["No configuration passed in both sessions, so there is nothing to compare.", ""]
    else:
        out += md_table(
            ["test", "config", "workers", "previous videos/s", "this videos/s", "change", "verdict"], rows
        ) + [""]
    if flips:
        out.append(
            "- Passed in one session only: "
            + ", ".join(
                f"{k[1]} ({k[0]}: {'passed' if ka[k].ok else ka[k].result} before, "
                f"{'passed' if kb[k].ok else kb[k].result} now)"
                for k in flips
            )
            + "."
        )

    ra, rb = recommend(_common_only(prev, ka, common)), recommend(_common_only(cur, kb, common))
    la, lb = (ra.label if ra else None), (rb.label if rb else None)
    if la is None and lb is None:
        out.append("- Recommendation over the common configs: neither session has one.")
    elif la == lb:
        out.append(f"- Recommendation over the common configs: the same, **{lb}**.")
    else:
        out.append(f"- Recommendation over the common configs: **changed**, {la or 'none'} before, {lb or 'none'} now.")
    if not rows:
        return out + [""]
    if cores is None:
        out.append(
            f"- Configs with W ≤ cores that moved by more than {share(RUN_TO_RUN_TARGET)}: unknown (the record has no "
            "core count)."
        )
        return out + [""]
    out.append(
        f"- Configs with W ≤ {cores} (cores) that moved by more than {share(RUN_TO_RUN_TARGET)}: "
        + (
            f"{len(moved)}: {', '.join(moved)}."
            if moved
            else "none" + ("." if judged else f" — but none of the {len(rows)} compared config(s) has W ≤ {cores}.")
        )
    )
    if la == lb and la is not None and not moved and not flips and judged:
        out.append(
            "- Target met: the two sessions agree on the recommendation and, for every config with "
            f"W ≤ cores, within {share(RUN_TO_RUN_TARGET)} (docs/methodology.md *Run to run*)."
        )
    elif not judged:
        out.append("- Target not judged: no config with W ≤ cores passed in both sessions.")
    else:
        busy = [
            f"{k[1]} ({side})"
            for k in both
            for side, r in (("previous", ka[k]), ("this", kb[k]))
            if isinstance(h := r.rec.get("host"), Mapping) and is_busy(h)
        ]
        cause = (
            f"The host was busy during {', '.join(busy)} (other processes or the hypervisor took CPU; "
            "see Findings): rerun on an idle machine before trusting the differences."
            if busy
            else "No compared run recorded a busy host (a record without a host entry is not judged), so "
            "the machine's own speed moved between the sessions: rerun to see whether it holds; "
            "`python benchmarks/host_drift.py` measures how often this machine can hold it at all."
        )
        out.append(
            "- **Target not met**: two consecutive sessions on an idle machine should agree on the "
            "recommendation and, for every config with W ≤ cores, within "
            f"{share(RUN_TO_RUN_TARGET)} (docs/methodology.md *Run to run*). " + cause
        )
    return out + [""]
