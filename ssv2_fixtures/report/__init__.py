"""Reports for people: read results.json, recommend, findings, summary.md, plots, terminal table,
compare across machines. ``python -m ssv2_fixtures.report`` is the CLI. The report reads records; it
never decides pass/fail."""
from __future__ import annotations

from .core import *  # noqa: F401,F403
from .core import main as main
