"""Published recipes as dataset factories: ``--dataset-factory ssv2_fixtures.recipes:videomae_finetune``.

A re-export of :mod:`ssv2_fixtures.data.recipes` (where they live and are documented), so the short
form the README and the issue give works. Importing it imports torch and pillow (the recipes need them).
"""

from __future__ import annotations

from .data.recipes import (  # noqa: F401
    RECIPES,
    RandAugment,
    flip_label_map,
    multiple_samples_collate,
    ssv2clips,
    tsm_uint8,
    videomae_finetune,
)

__all__ = [
    "videomae_finetune",
    "tsm_uint8",
    "ssv2clips",
    "multiple_samples_collate",
    "flip_label_map",
    "RandAugment",
    "RECIPES",
]
