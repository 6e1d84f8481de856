"""summary.md's *Where the time goes* (issue #23): results.json's ``"breakdown"`` as recorded — the stages
of one item, each ceiling and how far above the achieved rate it is, the binding stage and the hot spots."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..run.breakdown import BAR_PARTS, STAGES, config_bar, headroom
from ..run.units import fmt_bytes
from .fmt import md_table
from .model import runs_of, skipped_section

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BREAKDOWN_PLOT = "breakdown.png"
_COLORS = {"decode": "C0", "transform": "C1", "collate": "C2", "transfer": "C3", "waiting": "0.75"}

_ADVICE = {
    "decode": "the decoder: decode at the crop size instead of native size, fewer frames, or more cores",
    "transform": "the transforms in __getitem__: see the hot spots; uint8 until the GPU, fewer augmentation passes",
    "collate": "the collate function: stack once, avoid Python loops over items",
    "other": "the loop around the items (sampler, batching): rarely the limit; measure again",
    "transfer": "moving batches between processes: smaller batches in bytes (uint8 instead of float32, one sample "
    "per video) raise the transfer ceiling",
}


def _ms(x: Any) -> str:
    return f"{float(x) * 1e3:.1f} ms" if isinstance(x, (int, float)) else "?"


def _rate(x: Any) -> str:
    return f"{float(x):.1f} videos/s" if isinstance(x, (int, float)) else "not measured"


def _help_text(h: Mapping[str, Any]) -> str:
    if not h.get("measured"):
        return f"{h.get('change')} (not measured here)"
    name = h.get("ceiling_name", "?")
    got, now = h.get("ceiling"), h.get("now")
    txt = f"{h.get('change')}: {name} ceiling {_rate(got)}"
    if isinstance(got, (int, float)) and isinstance(now, (int, float)) and now > 0:
        verdict = "would help" if got > now else "would not help here"
        txt += f" vs {_rate(now)} now ({got / now:.2f}×, {verdict})"
    if "bytes_per_batch" in h:
        txt += f", {fmt_bytes(h['bytes_per_batch'])} per batch vs {fmt_bytes(h.get('bytes_now'))}"
    return txt + " (measured)"


def _help_lines(b: Mapping[str, Any], binding: str) -> list[str]:
    """What would help the binding stage: the recorded ``what_would_help`` entries, measured first; a
    record without them (an older session) gets the advice worded as not measured."""
    entries = b.get("what_would_help")
    if not isinstance(entries, list):
        return [f"**Binding: {binding}** — what would help: {_ADVICE.get(binding, 'not known')} (not measured here)."]
    mine = sorted((h for h in entries if h.get("stage") == binding), key=lambda h: not h.get("measured"))
    out = [f"**Binding: {binding}** — what would help:", ""]
    out += [f"- {_help_text(h)}" for h in mine] or ["- nothing the suite knows to suggest"]
    seen = {_help_text(h) for h in mine}
    rest = [t for h in entries if h.get("measured") and (t := _help_text(h)) not in seen]
    if rest:
        out += ["", "Also measured, for the other stages:", ""] + [f"- {t}" for t in dict.fromkeys(rest)]
    return out


def config_bars(data: Mapping[str, Any]) -> list[tuple[str, float, dict[str, float]]]:
    """Per measured config (its fastest passed run): label, videos/s and its bar (:func:`config_bar`),
    in the order the configs ran; none without a breakdown."""
    b = data.get("breakdown")
    if not isinstance(b, Mapping) or not isinstance(b.get("stages"), Mapping):
        return []
    cores = int((data.get("machine") or {}).get("cores") or 1)
    best: dict[str, tuple[float, int]] = {}
    for r in runs_of(data):  # type: ignore[arg-type]
        if r.ok and r.vps and r.vps > 0 and (r.label not in best or r.vps > best[r.label][0]):
            best[r.label] = (r.vps, int(r.workers or 0))
    return [(k, v, config_bar(b, v, w, cores)) for k, (v, w) in best.items()]  # type: ignore[arg-type]


def plot_breakdown(data: Mapping[str, Any]) -> Figure | None:
    """One stacked bar per measured config: milliseconds per video in the main loop, split into decode,
    transform, collate, transfer and waiting (:func:`config_bars`); ``None`` without a breakdown."""
    from .plots import new_figure

    bars = config_bars(data)
    if not bars:
        return None
    fig = new_figure(figsize=(max(6.0, 0.55 * len(bars) + 2), 4.5))
    ax = fig.subplots()
    xs = list(range(len(bars)))
    bottom = [0.0] * len(bars)
    for part in BAR_PARTS:
        h = [bar[part] * 1e3 for _, _, bar in bars]
        ax.bar(xs, h, bottom=bottom, color=_COLORS[part], label=part)
        bottom = [a + c for a, c in zip(bottom, h)]
    ax.set_xticks(xs, [f"{label}\n{v:.0f}/s" for label, v, _ in bars], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("ms per video in the main loop (1 / videos/s)")
    ax.set_title(
        "Where the time goes, per config\n(the probe's seconds per video, scaled to each config's rate)", fontsize=10
    )
    ax.legend(fontsize=8)
    return fig


def breakdown_plot(data: Mapping[str, Any], folder: Path) -> list[str]:
    """Write :func:`plot_breakdown` as ``folder/breakdown.png``; its file name, or none without a breakdown.
    The plot is an extra: a failure warns and costs the report nothing else."""
    from .plots import save_png

    try:
        fig = plot_breakdown(data)
        if fig is None:
            return []
        save_png(fig, folder / BREAKDOWN_PLOT)
    except Exception as exc:
        warnings.warn(f"the breakdown plot was not written: {type(exc).__name__}: {exc}", stacklevel=2)
        return []
    return [BREAKDOWN_PLOT]


def breakdown_line(data: Mapping[str, Any]) -> str | None:
    """One line of the stress session's breakdown, for the watch comparison (``report compare RUN
    watch.jsonl``): where one video's time goes and the binding stage; ``None`` without a breakdown."""
    b = data.get("breakdown")
    if not isinstance(b, Mapping) or not isinstance(st := b.get("stages"), Mapping):
        return None
    parts = ", ".join(f"{k} {float(st[k].get('share', 0)):.0%}" for k in STAGES if k in st)
    return (
        f"where the stress session's time went: one video took {_ms(b.get('item_s'))} in one process ({parts}); "
        f"binding: {b.get('binding', '?')} (its summary.md, Where the time goes, says what would help)"
    )


def breakdown_section(data: Mapping[str, Any], plots: Sequence[str] = ()) -> list[str]:
    """The section's lines (heading included); none when the session recorded no breakdown. ``plots``: the
    PNG files written next to summary.md; the stacked bars (:func:`plot_breakdown`) are shown when there."""
    b = data.get("breakdown")
    if not isinstance(b, Mapping) or not isinstance(b.get("stages"), Mapping):
        return skipped_section(data, "no_breakdown", "## Where the time goes")
    st = b["stages"]
    out = ["## Where the time goes", ""]
    out.append(f"One video in one process takes {_ms(b.get('item_s'))} (the probe's own item time):")
    out.append("")
    out += md_table(
        ["stage", "per video", "share"],
        [[k, _ms(st[k].get("s_per_item")), f"{float(st[k].get('share', 0)):.0%}"] for k in STAGES if k in st],
    )
    if isinstance(alone := b.get("decode_alone_s"), (int, float)) and "decode" in st:
        inside = float(st["decode"].get("s_per_item") or 0)
        agree = f" ({alone / inside - 1:+.0%})" if inside > 0 else ""
        out += [
            "",
            f"The decoder timed alone on the same files and frames (each item's decoder calls replayed outside "
            f"`__getitem__`): {_ms(alone)} per video{agree} vs {_ms(inside)} inside it; the decode ceiling "
            "comes from the decoder alone.",
        ]
    c = b.get("ceilings") or {}
    over = headroom(c)  # type: ignore[arg-type]
    rows = [[k, _rate(c.get(k)), f"{over[k]:.1f}×" if k in over else "—"] for k in ("decode", "item", "transfer")] + [
        ["achieved", _rate(c.get("achieved")), "1.0×" if c.get("achieved") else "—"]
    ]
    out += ["", *md_table(["ceiling", "rate", "× achieved"], rows), ""]
    binding = str(b.get("binding") or "?")
    out += _help_lines(b, binding)
    if hot := b.get("hot"):
        out += ["", "Hot spots (own time per video, under the profiler):", ""]
        out += md_table(
            ["function", "where", "per video"],
            [
                [h.get("function"), f"{os.path.basename(str(h.get('file')))}:{h.get('line')}", _ms(h.get("s_per_item"))]
                for h in hot
            ],
        )
    if BREAKDOWN_PLOT in plots:
        out += [
            "",
            f"![where the time goes per config]({BREAKDOWN_PLOT})",
            "",
            "Each bar is one measured config's milliseconds per video in the main loop (1 / its rate): the "
            "probe's decode, transform and collate seconds per video spread over its worker processes, the "
            "transfer ceiling's seconds per video (workers only), and the rest waiting (scaled to fit when "
            "the config beat the probe's per-item seconds).",
        ]
    if m := b.get("method"):
        out += ["", f"How: {m}"]
    if stalls := b.get("stalls"):
        out += [
            "",
            f"{stalls['items']} probe item(s) stalled outside the decoder ({stalls['s']:.2f} s in all) and are "
            "left out of the stages: a stall is the machine's, not a stage of the pipeline.",
        ]
    return [*out, ""]
