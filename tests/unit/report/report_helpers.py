"""Helpers for the report tests: stored fixtures, run folders, markdown sections and tables.

Stored results in ``tests/unit/fixtures`` (hand-made, realistic numbers):

- ``healthy.json``: quick ladder (2 worker counts × 2 batch sizes) + two sustained runs, all passed;
- ``healthy_small_shm.json``: the same suite on a smaller VM (256 MB /dev/shm, 8 cores): bs16-w4 fails;
- ``failures.json``: one failed run of every outcome kind, two short passes, a leaking sustained run;
- ``limits.json``: batch-size probes per worker count and the ``limits`` list;
- ``validate.json``: a sustained pass and a validated config recorded as failed for a missed target;
- ``data_error.json``: a session whose split could not load (top-level ``data_error``, no runs).

These files predate recorded intervals: :func:`with_intervals` adds ``videos_per_s_interval`` from each
record's stored batch waits through the record builder's own metrics core
(:func:`ssv2_fixtures.run.record.batch_metrics`), so no interval is typed in by hand and the fixtures
cannot drift from the writer.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

from ssv2_fixtures.run.record import batch_metrics

DATA = Path(__file__).parents[1] / "fixtures"


def fixture(name: str) -> Any:  # a ResultsFile; Any so tests can edit it freely
    return json.loads((DATA / f"{name}.json").read_text())


def with_intervals(data: Any) -> Any:
    """A copy whose passed records carry the interval the record builder gives their stored waits."""
    data = copy.deepcopy(data)
    for r in data["results"]:
        waits, bs = r.get("batch_waits_s") or [], (r.get("config") or {}).get("batch_size")
        workers = int((r.get("config") or {}).get("num_workers") or 0)
        if not bs or r.get("metrics", {}).get("videos_per_s") is None:
            continue
        t, events = 0.0, []
        for w in waits:  # the batch events the child would have written: one rank, back to back
            t += float(w)
            events.append({"t": t, "wait_s": float(w), "videos": int(bs), "rank": None})
        iv = batch_metrics(events, workers=workers).get("videos_per_s_interval")
        if iv is not None:
            r["metrics"]["videos_per_s_interval"] = list(iv)
    return data


def run_dir(tmp_path: Path, name: str, data: dict[str, Any] | None = None) -> Path:
    """A run folder holding ``name``'s results (or ``data``), as a session leaves it."""
    d = tmp_path / name
    d.mkdir()
    if data is None:
        shutil.copy(DATA / f"{name}.json", d / "results.json")
    else:
        (d / "results.json").write_text(json.dumps(data))
    return d


def section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"## {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def table(lines: list[str]) -> list[list[str]]:
    """Rows (cells) of the first markdown table in ``lines``, header and separator dropped."""
    rows = []
    for ln in lines:
        if ln.startswith("|"):
            rows.append(ln)
        elif rows:
            break
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in rows[2:]]
