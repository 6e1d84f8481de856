"""Formatting shared by every report section: sizes (the one formatter, from run/units.py), numbers, rates with their
spread, and the one markdown table. Pure functions; no record knowledge."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..run.units import GB as GB  # re-exported for the report rooms
from ..run.units import MB as MB
from ..run.units import fmt_bytes as size  # noqa: F401  the one size formatter (outcome remedies use it too)


def num(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def pct(x: float) -> str:
    return f"{x * 100:+.1f} %"


def half_width(rate: float, interval: tuple[float, float]) -> float:
    """The interval's half-width around the recorded rate. The batch-means rule clips ``lo`` at 0, so
    the larger side is the honest one."""
    lo, hi = interval
    return max(hi - rate, rate - lo)


def rate(vps: float | None, interval: tuple[float, float] | None, *, ascii: bool = False) -> str:
    """A rate with its 95 % spread: ``97.0 ± 3.1`` (half-width of the recorded batch-means interval).

    A record without an interval (results written before spreads were recorded, or a run with too
    few batches for the rule) shows ``97.0 ±?``: the rate is real, its spread is unknown, and the
    mark says so instead of letting a bare number look exact. ``ascii=True`` writes ``+-`` for the
    terminal (a CI log may have a C locale). No rate at all is ``—`` (``-`` in ASCII).
    """
    pm = "+-" if ascii else "±"
    if vps is None:
        return "-" if ascii else "—"
    if interval is None:
        return f"{vps:.1f} {pm}?"
    h = half_width(vps, interval)
    return f"{vps:.1f} {pm} {h:.1f}" if math.isfinite(h) else f"{vps:.1f} {pm} inf"


def cell(x: Any) -> str:
    # One physical line per row, and a "|" in a message must not split the cell.
    return str(x).replace("\n", " ").replace("|", "\\|").strip()


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The one markdown table formatter used by every section."""
    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def verdict_ok(v: Mapping[str, Any]) -> bool:
    """A verdict's recorded ``ok``, read (not judged). Older results.json files were written with
    ``default=str``, so a numpy bool may arrive as the text "True"/"False" (and "False" is truthy):
    read strings by their text. Only for showing checks; whether a run passed is its ``status``."""
    ok = v.get("ok", True)
    if isinstance(ok, str):
        return ok.strip().lower() in ("true", "1", "yes")
    return bool(ok)


def verdict_judged(v: Mapping[str, Any]) -> bool:
    """Whether a verdict judged anything: a run too short for it records ``"judged": False`` (older files
    only said so in the detail, "too few ..."). A check that was not judged is shown as such, never as ok."""
    if "judged" in v:
        return bool(v["judged"])
    return not str(v.get("detail") or "").startswith("too few")


def one_line(text: str | None, limit: int = 160) -> str:
    t = " ".join(str(text or "").split())
    return t if len(t) <= limit else t[: limit - 1] + "…"
