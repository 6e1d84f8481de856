"""ssv2_fixtures.report.findings: each finding derived from the records, quoting its numbers."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from report_helpers import fixture, run_dir, section

from ssv2_fixtures.report import findings, render_summary, runs_of, scaling, summarize
from ssv2_fixtures.run.stats import TIE_MARGIN


def test_healthy_findings_quote_numbers(healthy_summary: tuple[Path, str]) -> None:
    _, text = healthy_summary
    f = "\n".join(section(text, "Findings"))
    # healthy.json predates intervals: each rate is shown ±? and counts as its point (the tie rule)
    assert "Batch size 8: throughput still grows" in f and "40.0 ±? → 72.0 ±? videos/s (+80.0 %)" in f
    assert "42.0 ±? → 76.0 ±? videos/s (+81.0 %)" in f and "16 cores" in f and "no recorded spread" in f
    assert "76.0 ±? videos/s = 79 % of the decode limit (96.0 videos/s" in f
    assert "No memory growth beyond the limit in 2 run(s) with a leak check" in f
    assert "bs16-w4-pf2 (sustained): RSS 3058 → 3059 MB (first vs last fifth)" in f
    assert "![throughput](throughput.png)" in text and "![sustained](sustained.png)" in text
    assert "split holds" not in f  # no split size recorded


def test_failures_findings_quote_numbers(failures_summary: tuple[Path, str]) -> None:
    _, text = failures_summary
    f = "\n".join(section(text, "Findings"))
    assert (
        "bs32-w4-pf2 (quick (phase3), shm_exhausted): needed ~662 MiB of /dev/shm" in f
        and "/dev/shm 2.0 GiB in all, at most 2.0 GiB of it in use at a sample (18 MiB still free)" in f
    )
    assert "ran out of file descriptors at 1021 open (limit ulimit -n = 1024)" in f
    assert "left 3 shared-memory file(s) (110 MiB)" in f
    assert "left 41 temporary file(s) (1.2 GiB)" in f
    assert "bs4-w2-pf2 (sustained): memory grew — RSS 1718 → 2383 MB (first vs last fifth)" in f
    assert "growth_bytes 665 MiB" in f  # the verdict's own numbers are quoted too
    assert "memory (RSS) peak 8.0 GiB against 8.0 GiB (the memory limit)" in f
    assert "hung after 3 of 20 batches — no progress for 32.4 s (stall limit 32.0 s)" in f
    assert "1 run(s) ran under emulated limits (e.g. laptop" in f
    assert "Worker counts were capped at --max-workers (default 2 × cores; this machine has 8): phase9: W=24" in f


def _scaled(points: list[tuple[int, float, list[float] | None]]) -> Any:
    """A results file of passed quick runs at batch size 8: (workers, videos/s, interval)."""
    data = fixture("healthy")
    proto = next(r for r in data["results"] if r["label"] == "bs8-w2-pf2")
    data["results"] = []
    for w, v, iv in points:
        r = copy.deepcopy(proto)
        r["config"]["num_workers"], r["label"], r["id"] = w, f"bs8-w{w}-pf2", f"w{w}"
        r["metrics"]["videos_per_s"] = v
        r["metrics"].pop("videos_per_s_interval", None)
        if iv is not None:
            r["metrics"]["videos_per_s_interval"] = iv
        data["results"].append(r)
    return data


def _ties_by_margin_only(slow: float, fast_lo: float) -> bool:
    return slow >= (1 - TIE_MARGIN) * fast_lo


def test_growth_and_plateau_are_decided_by_the_tie_rule() -> None:
    clear_up = _scaled([(2, 40.0, [38.0, 42.0]), (4, 50.0, [48.0, 52.0])])
    assert scaling(runs_of(clear_up))[8].verdict == "grows"
    text = render_summary(clear_up)
    assert "Throughput still grows with workers" in "\n".join(section(text, "Next steps"))
    assert not _ties_by_margin_only(40.0, 48.0)
    assert "40.0 ± 2.0 → 50.0 ± 2.0 videos/s" in "\n".join(section(text, "Findings"))
    # +50 % on the point rates, but inside each other's spread: no verdict and no advice
    tie = _scaled([(2, 40.0, [20.0, 60.0]), (4, 60.0, [50.0, 70.0])])
    assert not _ties_by_margin_only(40.0, 50.0)  # the overlap decides this one
    sc = scaling(runs_of(tie))[8]
    assert sc.verdict == "tie" and sc.plateau == 2
    text = render_summary(tie)
    assert "cannot tell whether more than 2 workers help" in "\n".join(section(text, "Findings"))
    assert "Throughput still grows" not in "\n".join(section(text, "Next steps"))
    down = _scaled([(2, 40.0, [38.0, 42.0]), (4, 30.0, [28.0, 32.0])])
    assert scaling(runs_of(down))[8].verdict == "stops"
    assert "stops growing beyond 2 workers" in "\n".join(findings(down))


def test_limits_plateau_and_shm_finding(tmp_path: Path) -> None:
    f = "\n".join(section(summarize(run_dir(tmp_path, "limits")).read_text(), "Findings"))
    # 55.3 → 56.9 (no recorded spread: points) is within the tie rule's margin: no verdict
    assert "Batch size 8: cannot tell whether more than 4 workers help on this machine (8 cores)" in f
    assert "55.3 ±? → 56.9 ±? videos/s (+2.9 %)" in f and "no recorded spread" in f
    assert (
        "bs64-w2-pf2 (limits, shm_exhausted): needed ~735 MiB of /dev/shm for the batches in flight (64 videos × "
        "(2 workers × 2 prefetch + 1) batches), 500 MiB available at the start; /dev/shm 512 MiB in all, at most "
        "503 MiB of it in use at a sample (9 MiB still free) — the budget predicted this."
    ) in f


def test_small_split_is_named() -> None:
    data = fixture("healthy")
    for r in data["results"]:
        r["metrics"].update(split_size=12, distinct_videos=12)
    f = [x for x in findings(data) if "split holds" in x]
    # every config here holds more than 12 items in flight (the smallest: 8 × (2 × 2 + 1) = 40)
    assert len(f) == 1 and f[0].startswith("The split holds 12 videos, fewer than the items in flight in 6 run(s)")
    assert "bs8-w2-pf2 quick: 40" in f[0] and "distinct videos seen per run: 12" in f[0]
    assert "repeats make the page cache warmer than in training" in f[0]
    for r in data["results"]:
        r["metrics"]["split_size"] = 168913
    assert not [x for x in findings(data) if "split holds" in x]


def test_a_busy_host_is_named_with_its_numbers_and_an_idle_one_is_not() -> None:
    data = fixture("healthy")
    for r in data["results"]:
        r["host"] = {"foreign_cores": 0.02, "steal_frac": 0.001, "seconds": 10.0, "cores": 2}
    assert not [x for x in findings(data) if "host was not idle" in x]
    first, second = data["results"][0], data["results"][1]
    first["host"]["foreign_cores"] = 0.9
    second["host"]["steal_frac"] = 0.12
    f = [x for x in findings(data) if "host was not idle" in x]
    assert len(f) == 1 and f"during 2 of the {len(data['results'])} run(s) that recorded it" in f[0]
    assert "up to 0.90 of 2 cores" in f[0] and "stole up to 12.0 %" in f[0]
    assert first["label"] in f[0] and second["label"] in f[0] and "rerun on an idle machine" in f[0]
    # steal below the busy threshold is noise, not news
    second["host"]["steal_frac"] = 0.001
    f = [x for x in findings(data) if "host was not idle" in x]
    assert len(f) == 1 and "during 1 of" in f[0] and "stole" not in f[0] and "0.90 of 2 cores" in f[0]
    # a record without a host entry (a failed run, an older file) is never called busy
    del first["host"], second["host"]
    assert not [x for x in findings(data) if "host was not idle" in x]


def test_a_hand_edited_host_entry_never_stops_the_findings() -> None:
    data = fixture("healthy")
    data["results"][0]["host"] = {"steal_frac": 0.2}  # only one field
    data["results"][1]["host"] = {"foreign_cores": "lots"}  # not a number: counts as 0
    f = [x for x in findings(data) if "host was not idle" in x]
    # steal only: no "0.00 cores" of other processes is claimed
    assert len(f) == 1 and "during 1 of the 2 run(s) that recorded it" in f[0]
    assert "stole up to 20.0 %" in f[0] and "other processes" not in f[0]
