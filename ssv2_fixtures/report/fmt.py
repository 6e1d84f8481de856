"""Formatting shared by every report section: numbers, the one markdown table, verdict flags. Sizes and rates
with their spread are :mod:`ssv2_fixtures.run.units`'s (the stress layer's messages write them too). Pure
functions; no record knowledge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def num(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def pct(x: float) -> str:
    return f"{x * 100:+.1f} %"


def share(x: float) -> str:
    """A threshold or fraction as the report writes it: ``10 %``."""
    return f"{x * 100:.0f} %"


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
