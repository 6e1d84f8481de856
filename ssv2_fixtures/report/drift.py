"""summary.md's *Drift of the machine* section: the session's drift controls (results.json ``"drift"``,
:mod:`ssv2_fixtures.run.drift`) and which differences between the best configs the drift cannot tell apart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..run.drift import cannot_tell, controls_of, percent
from ..run.schema import ResultsFile, RunRecord
from .model import skipped_section

MAX_PAIRS = 5


def _span(rec: RunRecord) -> tuple[float, float] | None:
    try:
        t0 = datetime.fromisoformat(str(rec["started_at"])).timestamp()
    except (KeyError, ValueError):
        return None
    return t0, t0 + float(rec.get("wall_s") or 0.0)


def _name(rec: RunRecord) -> str:
    return str(rec.get("phase") or rec.get("label") or rec.get("id") or "?")


def _passed(results: Sequence[RunRecord]) -> list[tuple[RunRecord, float, tuple[float, float]]]:
    out = []
    for r in results:
        v = (r.get("metrics") or {}).get("videos_per_s")
        span = _span(r)
        if r.get("status") == "passed" and v and span is not None and r.get("kind") != "distributed":
            out.append((r, float(v), span))
    return sorted(out, key=lambda x: -x[1])


def pairs_within_drift(data: ResultsFile) -> list[str]:
    """ "best vs other: cannot tell: the machine changed by 14 % during these runs" for each passed run whose
    difference from the fastest is smaller than the drift measured around both (at most :data:`MAX_PAIRS`)."""
    controls = controls_of(data.get("drift"))
    runs = _passed(data.get("results") or [])
    if len(controls) < 2 or len(runs) < 2:
        return []
    (best, bv, bspan), out = runs[0], []
    for r, v, span in runs[1:]:
        msg = cannot_tell(bv, bspan, v, span, controls)
        if msg:
            out.append(f"{_name(best)} {bv:.1f} vs {_name(r)} {v:.1f} videos/s: {msg}")
        if len(out) >= MAX_PAIRS:
            break
    return out


def _ratio(r: Mapping[str, Any]) -> str:
    iv = r.get("interval")
    if r.get("mean") is None or not iv:
        return "–"
    return f"{float(r['mean']):.3f} [{float(iv[0]):.3f}, {float(iv[1]):.3f}]"


def decision_lines(dec: Mapping[str, Any], title: str, what: str) -> list[str]:
    """An interleaved decision (run/drift.py ``interleaved``/``decide``) under ``title``: ``what`` was
    re-measured, every round's rates, each candidate's ratio to the reference with its 95 % interval, and the
    decision."""
    names = [str(n) for n in dec.get("candidates") or []]
    rounds = dec.get("rounds") or []
    head = [title, "", f"Candidates ({what}): {', '.join(names) or 'none'}."]
    if not rounds:
        why = f"not re-measured ({dec['stopped']})" if dec.get("stopped") else dec.get("text") or "not re-measured"
        return [*head, "", str(why), ""]
    ref = str(dec.get("reference") or names[0])
    head[-1] += (
        f" Windows of {float(dec.get('round_s') or 0):.1f} s, in alternating order (A B C, C B A, …); "
        f"{len(rounds)} rounds in {float(dec.get('seconds') or 0):.0f} s ({dec.get('stopped', '')}). "
        "Within a round the candidates ran seconds apart, so the machine's drift cancels in their ratio."
    )
    if dec.get("windows") == "paused":
        head[-1] += (
            f" Each candidate's child started once ({float(dec.get('startup_s') or 0):.1f} s for all) and was "
            "paused between its windows."
        )
    ratios = dec.get("ratios") or {}
    lines = [*head, "", "| round | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [
        f"| {i + 1} | " + " | ".join(f"{float(r.get(n, 0)):.1f}" for n in names) + " |" for i, r in enumerate(rounds)
    ]
    lines += [f"| ratio to {ref} (95 %) | " + " | ".join(_ratio(ratios.get(n) or {}) for n in names) + " |"]
    return [*lines, "", f"Decision: **{dec.get('text', '')}**.", ""]


def interleaved_lines(data: ResultsFile | Mapping[str, Any]) -> list[str]:
    """The interleaved comparison of the quick ladder's fastest and its close configs (results.json
    ``"interleaved"``)."""
    dec = data.get("interleaved")
    if not isinstance(dec, Mapping):
        return []
    return decision_lines(
        dec,
        "### The fastest and its close configs re-measured in alternating windows",
        "the quick ladder's fastest, then, cheapest first, those that tie with it or would with the machine's drift",
    )


def drift_section(data: ResultsFile | Mapping[str, Any]) -> list[str]:
    """The section's lines with its heading; none when the session took no controls (and re-measured nothing),
    unless ``--no-drift`` told it not to."""
    rec = data.get("drift")
    controls = controls_of(rec)
    if not controls:
        return skipped_section(data, "no_drift", "## Drift of the machine") + interleaved_lines(data)
    t0 = controls[0].t
    series = ", ".join(f"{c.videos_per_s:.1f} (+{c.t - t0:.0f} s)" for c in controls)
    lines = [
        "## Drift of the machine",
        "",
        f"The same reference measurement (the pipeline's single-process rate, BS=1 W=0) taken {len(controls)} "
        f"time{'s' if len(controls) != 1 else ''} during the session, videos/s: {series}.",
    ]
    if len(controls) >= 2:
        slow = min(controls, key=lambda c: c.videos_per_s)
        fast = max(controls, key=lambda c: c.videos_per_s)
        lines += [
            "",
            f"Largest change between controls: **{percent(float(rec['max_change']))}** "  # type: ignore[index]
            f"(slowest at +{slow.t - t0:.0f} s, fastest at +{fast.t - t0:.0f} s). Nothing changed in the reference "
            "but the machine, so two configs measured apart in time whose rates differ by less than this may "
            "differ only by when they ran.",
        ]
        pairs = pairs_within_drift(data)  # type: ignore[arg-type]
        if pairs:
            lines += [""] + [f"- {p}" for p in pairs]
    return lines + [""] + interleaved_lines(data)
