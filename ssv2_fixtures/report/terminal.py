"""What the pytest plugin prints at the end of a session: the runs' table, then the answer.

The answer is the recommendation as summary.md gives it (:func:`~.recommend.recommend`, the one rule):
the config, its measured rate with the interval as recorded, the configs it tied with, and the caveats
that the report's findings already state (short runs only, a split smaller than the items in flight, a
busy host). The plugin adds where the report is. ASCII only: pytest's terminal may be a CI log with a C
locale.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..run.schema import ResultsFile
from ..run.stats import TIE_MARGIN
from ..run.units import rate
from .findings import host_findings, split_findings
from .fmt import verdict_judged, verdict_ok
from .model import Run, Source, extra, load, runs_of
from .recommend import Recommendation, recommend

_ASCII = {"—": "-", "–": "-", "…": "...", "±": "+-", "×": "x", "→": "->", "≤": "<=", "≥": ">=", "²": "^2", "µ": "u"}


def ascii_text(text: str) -> str:
    """``text`` with the report's typography in ASCII; anything else non-ASCII becomes ``?``."""
    for k, v in _ASCII.items():
        text = text.replace(k, v)
    return text.encode("ascii", "replace").decode("ascii")


def _result(r: Run) -> str:
    if not r.ok:
        return f"{r.result} ({r.failure_point()})" if r.outcome else r.result
    unjudged = [str(v.get("name")) for v in r.verdicts if verdict_ok(v) and not verdict_judged(v)]
    return "passed" + (f" (not judged, too few batches: {', '.join(unjudged)})" if unjudged else "")


def _table(runs: Sequence[Run]) -> list[str]:
    """A fixed-width table: config, test, videos/s (``97.0 +- 3.1``: the 95 % half-width; ``+-?`` where
    the record has no interval), result."""
    rows = [(r.label, r.kind, rate(r.vps, r.interval, ascii=True), _result(r)) for r in runs]
    head = ("config", "test", "videos/s", "result")
    width = [max(len(str(x)) for x in col) for col in zip(head, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if i == 2 else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, width))
        ).rstrip()

    return [line(head)] + [line(r) for r in rows]


def _measured(rec: Recommendation) -> str:
    """``74.0 +- 2.1 videos/s (95 % interval [71.9, 76.3] as recorded)``: the half-width and the bounds,
    since an interval need not be symmetric."""
    b = rec.basis
    text = f"{rate(b.vps, b.interval, ascii=True)} videos/s"
    if b.interval is not None:
        text += f" (95 % interval [{b.interval[0]:.1f}, {b.interval[1]:.1f}] as recorded)"
    return text


def answer_lines(data: ResultsFile, runs: Sequence[Run]) -> list[str]:
    """The recommendation, its rate, ties and caveats (ASCII); what to do when there is none."""
    rec = recommend(data)
    if extra(data, "data_error"):
        return ["recommended: none - the data could not be loaded; the fix is in summary.md"]
    if rec is None:
        return ["recommended: none - no configuration passed; the first failure's remedy is in summary.md"]
    evidence = (
        "tuned (pytest -m tune) and confirmed"
        if rec.tuned
        else f"passed a {rec.basis.kind} run"
        if rec.verified
        else f"fastest passing {rec.basis.kind} run"
    )
    out = [f"recommended: {rec.label} - {_measured(rec)}, {evidence}"]
    others = [t for t in rec.ties if t != rec.label]
    if others:
        out.append(
            f"  tied with: {', '.join(others)} (within each other's spread or {TIE_MARGIN:.0%} of the fastest's "
            "lower bound); the cheapest is recommended"
        )
    caveats: list[str] = []
    if not rec.verified:
        caveats.append(
            "only short runs: a short run cannot show memory or /dev/shm growth; confirm with pytest -m sustained"
        )
    caveats += split_findings(runs) + host_findings(runs)
    out += [f"  caveat: {ascii_text(c)}" for c in caveats]
    return out


def terminal_lines(results_file: Source) -> list[str]:
    """The runs' table, then the answer (:func:`answer_lines`). The plugin prints these and then where
    the report (summary.md: the snippet, environment and train.toml) is."""
    data, _ = load(results_file)
    runs = runs_of(data)
    return (_table(runs) if runs else []) + answer_lines(data, runs)
