"""Reports for people, derived from a session's ``results.json`` and nothing else (so a report can
be rebuilt on any machine, long after the run). One job per module:

- :mod:`.model`: reading results.json into :class:`Run` views (``status`` as recorded: the report
  reads, it never decides pass/fail);
- :mod:`.recommend`: the config to use — only configs that ran and passed; :mod:`.tie`: overlapping
  95 % intervals are a tie that goes to the cheaper config (:func:`pick`);
- :mod:`.findings`: plain-language findings quoting their numbers;
- :mod:`.summary`: ``summary.md`` (:func:`render_summary`, :func:`summarize`);
- :mod:`.tune`: the ``tune`` section; :mod:`.plots`: matplotlib figures with error bars;
- :mod:`.terminal`: the plugin's end-of-session table; :mod:`.compare`: two runs side by side;
- :mod:`.cli`: ``python -m ssv2_fixtures.report summarize|compare|watch``.

Every rate is shown with its spread, ``97.0 ± 3.1 videos/s`` (half-width of the recorded 95 %
batch-means interval, :mod:`ssv2_fixtures.run.stats`), or ``97.0 ±?`` when the record has none.
matplotlib is imported inside the plot functions only, so the plugin can import this package.
"""

from __future__ import annotations

from .cli import main
from .compare import compare
from .findings import findings, scaling
from .fmt import md_table
from .model import Run, load, runs_of
from .plots import plot_sustained, plot_throughput
from .recommend import Recommendation, recommend
from .summary import render_summary, summarize
from .terminal import terminal_lines
from .tie import Candidate, Pick, pick
from .tune import tune_section

__all__ = [
    "summarize",
    "render_summary",
    "findings",
    "recommend",
    "Recommendation",
    "scaling",
    "plot_throughput",
    "plot_sustained",
    "terminal_lines",
    "compare",
    "md_table",
    "load",
    "Run",
    "runs_of",
    "main",
    "pick",
    "Pick",
    "Candidate",
    "tune_section",
]
