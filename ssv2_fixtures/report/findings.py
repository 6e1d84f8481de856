"""Plain-language findings, each derived from the records and quoting the numbers behind it.

Findings describe; they never change whether a run passed (that is its recorded ``status``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..run.schema import ResultsFile
from ..run.stats import TIE_MARGIN
from ..run.units import fmt_bytes, rate
from .fmt import num, one_line, pct, verdict_judged, verdict_ok
from .model import (
    CEILING_MARGIN,
    MEMORY_KINDS,
    SHM_KINDS,
    Run,
    best_runs_by_workers,
    extra,
    measurement_errors,
    runs_of,
)
from .tie import candidate


@dataclass(frozen=True)
class Scaling:
    """What one batch size's worker steps show, by the recommendation's tie rule (:func:`run.stats.ties`:
    the 95 % intervals overlap, or the slower is within TIE_MARGIN of the faster's lower bound).

    ``verdict``: ``"grows"`` (every step is faster than the one before and no tie), ``"stops"`` (a
    step is clearly slower: more workers cost throughput) or ``"tie"`` (a step ties: the measurements
    cannot tell whether more workers help). A rate without a recorded interval counts as its point.
    ``lo``/``hi``: the step that shows it."""

    verdict: str
    lo: Run
    hi: Run

    @property
    def plateau(self) -> int | None:
        """The worker count past which more do not help (``None`` while it still grows)."""
        return None if self.verdict == "grows" else self.lo.workers


def scaling(runs: Sequence[Run]) -> dict[int, Scaling]:
    """batch size → :class:`Scaling` of its fastest run per worker count (needs two worker counts)."""
    out: dict[int, Scaling] = {}
    for bs, rs in best_runs_by_workers(runs).items():
        if len(rs) < 2:
            continue
        steps = list(zip(rs, rs[1:]))
        for a, b in steps:
            if candidate(a).ties_with(candidate(b)):
                out[bs] = Scaling("tie", a, b)
                break
            if (b.vps or 0.0) < (a.vps or 0.0):
                out[bs] = Scaling("stops", a, b)
                break
        else:
            out[bs] = Scaling("grows", *steps[-1])
    return out


def _numbers(v: Mapping[str, Any]) -> str:
    """A verdict's numeric fields not already quoted in its detail."""
    parts, detail = [], str(v.get("detail", ""))
    for k, x in v.items():
        if k in ("name", "ok", "detail") or isinstance(x, bool) or not isinstance(x, (int, float)):
            continue
        text = fmt_bytes(x) if k.endswith("bytes") else f"{x:g}"
        if text not in detail:
            parts.append(f"{k} {text}")
    return f" ({', '.join(parts)})" if parts else ""


def _scaling(runs: Sequence[Run], cores: Any) -> list[str]:
    out = []
    for bs, sc in scaling(runs).items():
        a, b = sc.lo, sc.hi
        v0, v1 = a.vps or 0.0, b.vps or 0.0
        step = f"{a.workers} → {b.workers} workers gives {rate(v0, a.interval)} → {rate(v1, b.interval)} videos/s" + (
            f" ({pct(v1 / v0 - 1)})" if v0 > 0 else ""
        )
        points = (
            ""
            if a.interval is not None and b.interval is not None
            else "; a rate marked ±? has no recorded spread and counts as its point"
        )
        if sc.verdict == "tie":
            out.append(
                f"Batch size {bs}: cannot tell whether more than {a.workers} workers help on this machine "
                f"({cores} cores): {step}, a tie (the 95 % intervals overlap, or the difference is under "
                f"{TIE_MARGIN:.0%} of the faster's lower bound){points}."
            )
        elif sc.verdict == "stops":
            out.append(
                f"Batch size {bs}: throughput stops growing beyond {a.workers} workers on this machine "
                f"({cores} cores): {step}, beyond the tie rule{points}."
            )
        else:
            out.append(
                f"Batch size {bs}: throughput still grows at the most workers tried: {step}, beyond the "
                f"tie rule{points}; more workers may help (this machine has {cores} cores)."
            )
    return out


def _measurement_errors(bad: Sequence[Run], cores: Any) -> list[str]:
    out = []
    for r in bad:
        ceiling = r.item_ceiling(cores) or 0.0
        out.append(
            f"Measurement error, not a finding: {r.label} ({r.test}) recorded {rate(r.vps, r.interval)} videos/s, "
            f"above the item ceiling of {ceiling:.1f} videos/s (the single-process rate "
            f"{ceiling / cores:.1f} × {cores} cores) by more than its interval and the {CEILING_MARGIN:.0%} margin "
            "for the single-process rate's drift, on a host not recorded busy. No loader of this pipeline "
            "delivers that on this machine, so this rate or the single-process rate it is judged against was "
            "mismeasured (on a busy host more processes take a larger share of the CPU); it is left out of the "
            "findings about scaling and the decode limit — rerun on an idle machine."
        )
    return out


def _step_bound(runs: Sequence[Run]) -> list[str]:
    step = [r for r in runs if r.ok and r.step_bound and r.vps is not None]
    if not step:
        return []
    b = max(step, key=lambda r: r.vps or 0.0)
    most = max(float(r.metrics.get("wait_fraction") or 0.0) for r in step)
    per_step = (
        f", at most {b.batch_size / b.step_s:.1f} (batch size / step) can arrive" if b.batch_size and b.step_s else ""
    )
    return [
        f"{len(step)} run(s) were step-bound under --step-time {b.step_s * 1000:.0f} ms: the loop waited for data "
        f"at most {most:.0%} of its time, so the loader kept up and the step set the rate. {b.label} ({b.test}) "
        f"received {rate(b.vps, b.interval)} videos/s{per_step}; how fast these loaders could go is not "
        "measured by a step-bound run (run without --step-time for that), and no decode-limit verdict is drawn "
        "from them."
    ]


def _ceilings(runs: Sequence[Run], mach: Mapping[str, Any]) -> list[str]:
    out = []
    eff = [r for r in runs if r.ok and r.efficiency is not None]  # a step-bound run has none (Run.efficiency)
    if eff:
        b = max(eff, key=lambda r: r.vps or 0.0)
        lim = b.metrics["decode_limit_videos_per_s"]
        tail = (
            "loading is decode-bound: more workers or prefetch will not help, a cheaper decode (smaller "
            "size, fewer frames) would"
            if (b.efficiency or 0) >= 0.9
            else f"the loader pipeline (collation, transfer between processes, idle workers) costs the other "
            f"{(1 - (b.efficiency or 0)) * 100:.0f} %"
        )
        out.append(
            f"The fastest passing configuration, {b.label} ({b.test}), reaches {rate(b.vps, b.interval)} videos/s = "
            f"{(b.efficiency or 0) * 100:.0f} % of the decode limit ({lim:.1f} videos/s measured "
            f"decoding alone): {tail}."
        )
    ram = mach.get("ram_bytes")
    rss = [r for r in runs if r.ok and r.metrics.get("rss_peak_bytes")]
    if rss and ram:
        b = max(rss, key=lambda r: r.metrics["rss_peak_bytes"])
        peak = b.metrics["rss_peak_bytes"]
        out.append(
            f"Largest memory (RSS) peak of a passing run: {b.label} ({b.test}) with {fmt_bytes(peak)} for "
            f"{b.workers} workers, {peak / ram * 100:.0f} % of this machine's {fmt_bytes(ram)} RAM."
        )
    return out


def _verdicts(runs: Sequence[Run]) -> list[str]:
    out = []
    leak_ok = [
        (r, v) for r in runs for v in r.verdicts if v.get("name") == "leak" and verdict_ok(v) and verdict_judged(v)
    ]
    if leak_ok:
        out.append(
            f"No memory growth beyond the limit in {len(leak_ok)} run(s) with a leak check: "
            + "; ".join(f"{r.label} ({r.kind}): {v.get('detail', 'ok')}" for r, v in leak_ok)
            + "."
        )
    for r in runs:
        for v in r.failed_verdicts:
            what = {"leak": "memory grew", "degradation": "throughput degraded over time"}.get(
                str(v.get("name")), f"check {v.get('name')} failed"
            )
            out.append(f"{r.label} ({r.test}): {what} — {v.get('detail', '')}{_numbers(v)}.")
    return out


def _shm_finding(r: Run, mach: Mapping[str, Any]) -> str:
    ev = r.evidence
    budget = r.rec.get("budget") or {}
    need = ev.get("shm_need_bytes") or budget.get("shm_bytes")
    avail = ev.get("shm_available_bytes") or budget.get("shm_available_bytes")
    total = r.sandbox.get("shm_bytes") or ev.get("shm_total_bytes") or mach.get("shm_total_bytes")
    emulated = " (emulated)" if r.sandbox.get("shm_bytes") else ""
    predicted = " — the budget predicted this" if budget.get("fits") is False else ""
    ranks = f" × {r.ranks} ranks" if r.ranks > 1 else ""
    free = ev.get("shm_free_bytes")
    # used and free named apart: a failed allocation is refused whole, so the most in use can stay far
    # below the size (nothing in use, all of it free, when one batch alone is too large)
    state = (
        f"; /dev/shm{emulated} {fmt_bytes(total)} in all, at most {fmt_bytes(max(0, total - free))} of it in use at a "
        f"sample ({fmt_bytes(free)} still free)"
        if total and free is not None
        else f"; /dev/shm{emulated} {fmt_bytes(total)} in all"
    )
    during = " while every prefetch slot filled (the full-queue hold)" if ev.get("during") else ""
    return (
        f"{r.label} ({r.test}, {r.outcome.get('kind')}): needed ~{fmt_bytes(need)} of /dev/shm for the batches in "
        f"flight ({r.batch_size} videos × ({r.workers} workers × {r.prefetch} prefetch + 1) batches{ranks})"
        + (f", {fmt_bytes(avail)} available at the start" if avail else "")
        + f"{during}{state}{predicted}."
    )


def _outcomes(runs: Sequence[Run], mach: Mapping[str, Any]) -> list[str]:
    """One finding per failure whose kind the records explain (shm, fds, memory, hang, TMPDIR, data)."""
    out = []
    for r in runs:
        k, ev, m = r.outcome.get("kind"), r.evidence, r.metrics
        if k in SHM_KINDS:
            out.append(_shm_finding(r, mach))
        elif k == "fd_exhausted":
            fds = ev.get("fds_peak") or m.get("fds_peak")
            nofile = ev.get("nofile") or r.sandbox.get("nofile") or mach.get("nofile")
            out.append(
                f"{r.label} ({r.test}): ran out of file descriptors at {fds} open (limit ulimit -n = "
                f"{nofile}); with the {r.strategy} strategy every shared tensor in flight holds an fd."
            )
        elif k in MEMORY_KINDS:
            peak = ev.get("rss_peak_bytes") or m.get("rss_peak_bytes")
            cap, what = (
                (ev["mem_limit_bytes"], "the memory limit")
                if ev.get("mem_limit_bytes")
                else (r.sandbox["mem_bytes"], "the emulated memory limit")
                if r.sandbox.get("mem_bytes")
                else (mach.get("ram_bytes"), "the machine's RAM")
            )
            out.append(
                f"{r.label} ({r.test}, {k}): memory (RSS) peak {fmt_bytes(peak)} against {fmt_bytes(cap)} "
                f"({what}) with {r.workers} workers × batch {r.batch_size}."
            )
        elif k == "hang":
            wd = ev.get("watchdog") or {}
            out.append(
                f"{r.label} ({r.test}): hung {r.failure_point()} — no progress for "
                f"{num(wd.get('elapsed_s'))} s ({wd.get('phase', '?')} limit {num(wd.get('limit_s'))} s)."
            )
        elif k == "tmp_full":
            out.append(
                f"{r.label} ({r.test}): TMPDIR {ev.get('tmpdir', mach.get('tmpdir', '?'))} filled up "
                f"({fmt_bytes(ev.get('tmp_free_bytes'))} free) {r.failure_point()}."
            )
        elif k in ("data_error", "decode_error"):
            out.append(
                f"{r.label} ({r.test}, {k}): the data is at fault, not the loader settings — "
                f"{one_line(r.outcome.get('message'), 200)}"
            )
    crashes = [r for r in runs if r.outcome.get("kind") in ("segfault", "main_crashed", "worker_exception", "unknown")]
    if crashes:
        out.append(
            f"{len(crashes)} run(s) crashed for reasons the settings do not explain (read their "
            "messages and stderr tails): " + ", ".join(f"{r.label} ({r.result})" for r in crashes) + "."
        )
    return out


def _leftovers(runs: Sequence[Run]) -> list[str]:
    out = []
    for r in runs:
        m = r.metrics
        if m.get("leaked_shm_files"):
            out.append(
                f"{r.label} ({r.test}) left {m['leaked_shm_files']} shared-memory file(s) "
                f"({fmt_bytes(m.get('leaked_shm_bytes'))}) in /dev/shm when it ended (the runner removed "
                "them; in a real job they stay until reboot: clean /dev/shm/torch_* after crashes)."
            )
        if m.get("leaked_tmp_files"):
            out.append(
                f"{r.label} ({r.test}) left {m['leaked_tmp_files']} temporary file(s) "
                f"({fmt_bytes(m.get('leaked_tmp_bytes'))}) in its TMPDIR."
            )
    skipped = [(r, int(r.metrics.get("skipped_videos") or 0)) for r in runs if r.metrics.get("skipped_videos")]
    if skipped:
        out.append(
            f"{sum(n for _, n in skipped)} undecodable video(s) were skipped: "
            + ", ".join(f"{r.label} {n}" for r, n in skipped)
            + "."
        )
    return out


def split_findings(runs: Sequence[Run]) -> list[str]:
    """Runs whose split (``metrics["split_size"]``) is smaller than the items they hold in flight: every
    video is loaded again within one prefetch window, so the page cache is warmer than in training."""
    small: dict[int, list[Run]] = {}
    for r in runs:
        n, flight = r.metrics.get("split_size"), r.in_flight
        if isinstance(n, int) and flight is not None and n < flight:
            small.setdefault(n, []).append(r)
    out = []
    for n, rs in sorted(small.items()):
        seen = sorted({int(d) for r in rs if isinstance(d := r.metrics.get("distinct_videos"), int)})
        distinct = f"; distinct videos seen per run: {', '.join(map(str, seen))}" if seen else ""
        out.append(
            f"The split holds {n} videos, fewer than the items in flight in {len(rs)} run(s) ("
            + ", ".join(f"{r.label} {r.kind}: {r.in_flight}" for r in rs[:6])
            + (", …" if len(rs) > 6 else "")
            + f"){distinct}: repeats make the page cache warmer than "
            "in training, so these rates are optimistic; measure on a larger split."
        )
    return out


def rank_verdicts(runs: Sequence[Run]) -> list[tuple[str, Run, Run]]:
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
    for label, good, bad in rank_verdicts(runs):
        was = (
            f"with {good.ranks} rank{'s' if good.ranks != 1 else ''} ({rate(good.vps, good.interval)} videos/s)"
            if good.kind == "distributed"
            else f"as a single loader ({good.test}, {rate(good.vps, good.interval)} videos/s)"
        )
        out.append(
            f"{label} is stable {was} but not with {bad.ranks} ranks on one node: {bad.result} "
            f"{bad.failure_point()} ({one_line(bad.outcome.get('message'), 160)}). The ranks share the "
            f"node's /dev/shm, RAM, cores and open files: size a DDP job's loader for all {bad.ranks} ranks."
        )
    by_label: dict[str, list[Run]] = {}
    for r in runs:
        if r.kind == "distributed" and r.ok and r.vps:
            by_label.setdefault(r.label, []).append(r)
    for label, rs in by_label.items():
        rs = sorted(rs, key=lambda x: x.ranks)
        if len(rs) >= 2 and rs[0].ranks < rs[-1].ranks:
            a, b = rs[0], rs[-1]
            out.append(
                f"{label}: {a.ranks} → {b.ranks} ranks on one node gives {rate(a.vps, a.interval)} → "
                f"{rate(b.vps, b.interval)} videos/s for the node ({pct((b.vps or 0) / (a.vps or 1) - 1)})."
            )
    return out


def _settings(data: ResultsFile, runs: Sequence[Run], cores: Any) -> list[str]:
    out = []
    capped = [str(c) for c in extra(data, "capped") or []]  # quick-ladder notes (StressSession.capped)
    if capped:
        out.append(
            f"Worker counts were capped at --max-workers (default 2 × cores; this machine has {cores}): "
            + "; ".join(capped)
            + "."
        )
    keys = ("shm_bytes", "tmp_bytes", "nofile", "mem_bytes", "cpus")
    sandboxed = [r for r in runs if r.sandbox and any(r.sandbox.get(k) is not None for k in keys)]
    if sandboxed:
        sb = sandboxed[0].sandbox
        limits = ", ".join(
            f"{k.replace('_bytes', '')} {fmt_bytes(v) if k.endswith('bytes') else v}"
            for k, v in sb.items()
            if k in keys and v is not None
        )
        out.append(
            f"{len(sandboxed)} run(s) ran under emulated limits (e.g. {sb.get('profile') or 'custom'}: "
            f"{limits}): they describe that target machine, not this host."
        )
    return out


def host_findings(runs: Sequence[Run]) -> list[str]:
    """Runs measured while the host was busy (:func:`ssv2_fixtures.run.host.busy_reasons`): their rates
    were measured beside other work and will not reproduce on an idle machine."""
    from ..run.host import busy_reasons, load_field

    loads = [(r, h) for r in runs if isinstance(h := r.rec.get("host"), Mapping)]
    busy = [(r, h, why) for r, h in loads if (why := busy_reasons(h))]
    if not busy:
        return []
    parts = []
    if foreign := [(r, h) for r, h, why in busy if "foreign" in why]:
        r, h = max(foreign, key=lambda rh: load_field(rh[1], "foreign_cores"))
        parts.append(
            f"other processes used up to {load_field(h, 'foreign_cores'):.2f} of "
            f"{h.get('cores', '?')} cores ({r.label})"
        )
    if stolen := [(r, h) for r, h, why in busy if "steal" in why]:
        r, h = max(stolen, key=lambda rh: load_field(rh[1], "steal_frac"))
        parts.append(f"the hypervisor stole up to {load_field(h, 'steal_frac') * 100:.1f} % of CPU time ({r.label})")
    names = ", ".join(r.label for r, _, _ in busy[:6]) + (f" and {len(busy) - 6} more" if len(busy) > 6 else "")
    return [
        f"The host was not idle during {len(busy)} of the {len(loads)} run(s) that recorded it ({names}): "
        + " and ".join(parts)
        + ". Their rates were measured beside other work (usually lower, not always: the other work may "
        "have used only the cores this run did not) and will not reproduce: rerun on an idle machine "
        "(another pytest session, a build or a training job on the same cores all count)."
    ]


def findings(data: ResultsFile) -> list[str]:
    """Plain-language findings, each derived from the records and quoting the numbers behind it."""
    runs = sorted(runs_of(data), key=lambda r: r.sort_key)
    mach = data.get("machine") or {}
    cores = mach.get("cores", "?")
    bad = measurement_errors(runs, cores)
    trusted = [r for r in runs if r not in bad]  # no finding rests on a rate above the item ceiling
    return (
        host_findings(runs)
        + _measurement_errors(bad, cores)
        + _scaling(trusted, cores)
        + _ceilings(trusted, mach)
        + _step_bound(trusted)
        + _verdicts(runs)
        + _outcomes(runs, mach)
        + _leftovers(runs)
        + split_findings(runs)
        + _rank_findings(runs)
        + _settings(data, runs, cores)
    )
