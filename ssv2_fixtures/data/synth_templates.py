"""What the synthetic annotations say: the 174 class templates (26 real ones, the rest generated),
their objects, labels.json in the real numbering, and one split's entries in the real schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["NUM_CLASSES", "TEMPLATES", "plain", "labels_index", "annotate"]

NUM_CLASSES = 174

# Real SSv2 templates; the rest of the 174 are generated below.
_REAL_TEMPLATES: tuple[str, ...] = (
    "Holding [something] next to [something]",
    "Holding [something] behind [something]",
    "Pushing [something] from left to right",
    "Pushing [something] from right to left",
    "[Something] falling like a rock",
    "[Something] falling like a feather or paper",
    "[Something] colliding with [something] and both come to a halt",
    "[Something] colliding with [something] and both are being deflected",
    "[Something] being deflected from [something]",
    "Putting [something] on a surface",
    "Putting [something] next to [something]",
    "Moving [something] up",
    "Moving [something] down",
    "Turning [something] upside down",
    "Tearing [something] into two pieces",
    "Tearing [something] just a little bit",
    "Pretending to pick [something] up",
    "Covering [something] with [something]",
    "Uncovering [something]",
    "Dropping [something] into [something]",
    "Opening [something]",
    "Closing [something]",
    "Squeezing [something]",
    "Letting [something] roll along a flat surface",
    "Throwing [something] in the air and catching it",
    "Wiping [something] off of [something]",
)

_GEN_VERBS = (
    "Lifting",
    "Rolling",
    "Spinning",
    "Shaking",
    "Sliding",
    "Poking",
    "Tilting",
    "Stacking",
    "Rotating",
    "Tapping",
    "Flicking",
    "Nudging",
    "Balancing",
)
_GEN_SUFFIXES = (
    "slowly",
    "quickly",
    "towards the camera",
    "away from the camera",
    "behind [something]",
    "onto [something]",
    "with [something]",
    "across [something]",
    "in front of [something]",
    "until it stops",
    "a few times",
    "without touching it",
)
_GEN_SUBJECT_SUFFIXES = (
    "sliding down [something]",
    "rolling off [something]",
    "tipping over",
    "bouncing on a surface",
    "spinning in place",
    "being pulled by [something]",
)


def _make_templates() -> tuple[str, ...]:
    out: list[str] = list(_REAL_TEMPLATES)
    seen = {t.replace("[", "").replace("]", "").lower() for t in out}
    candidates = [f"[Something] {s}" for s in _GEN_SUBJECT_SUFFIXES]
    candidates += [f"{v} [something] {s}" for v in _GEN_VERBS for s in _GEN_SUFFIXES]
    for c in candidates:
        plain = c.replace("[", "").replace("]", "").lower()
        if plain not in seen:
            seen.add(plain)
            out.append(c)
        if len(out) == NUM_CLASSES:
            break
    assert len(out) == NUM_CLASSES, len(out)
    return tuple(out)


TEMPLATES: tuple[str, ...] = _make_templates()

_OBJECTS = (
    "a cup",
    "a pen",
    "a book",
    "a phone",
    "a remote control",
    "a bottle",
    "a spoon",
    "a coin",
    "a tissue",
    "a box",
    "a ball",
    "a key",
    "a shoe",
    "a pillow",
    "a mug",
    "a lighter",
    "a paper",
    "a toy car",
    "a banana",
    "a glass",
    "scissors",
    "a charger",
    "a wallet",
    "a towel",
)


def plain(template: str) -> str:
    """Template with the placeholder brackets removed (labels.json key form)."""
    return template.replace("[", "").replace("]", "")


def _slot_count(template: str) -> int:
    return template.lower().count("[something]")


def _fill(template: str, placeholders: Sequence[str]) -> str:
    """Lower-case the template and put the placeholders into its slots, in order."""
    parts = template.lower().split("[something]")
    out = parts[0]
    for obj, rest in zip(placeholders, parts[1:]):
        out += obj + rest
    return out


def labels_index() -> dict[str, str]:
    # Real SSv2 numbers the templates alphabetically; values are strings.
    return {name: str(i) for i, name in enumerate(sorted(plain(t) for t in TEMPLATES))}


def annotate(ids: Sequence[str], rng: np.random.Generator) -> list[dict[str, Any]]:
    classes = rng.integers(0, NUM_CLASSES, size=len(ids))
    objs = rng.integers(0, len(_OBJECTS), size=(len(ids), 2))
    out = []
    for vid, c, (o1, o2) in zip(ids, classes.tolist(), objs.tolist()):
        template = TEMPLATES[c]
        ph = [_OBJECTS[o1], _OBJECTS[o2]][: _slot_count(template)]
        out.append({"id": vid, "label": _fill(template, ph), "template": template, "placeholders": ph})
    return out
