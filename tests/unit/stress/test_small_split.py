"""A 12-video split, for real (issue #12, "small splits fake results").

Before the endless sampler a split smaller than a batch faked its results: BS=24 with drop_last made
every epoch empty and the run ended as a false ``hang``; ``-m limits`` "passed" batch sizes 16…128
under docker's 64 MB /dev/shm because no batch held more than 12 clips. Here the same split is loaded
by real children: the shm failure is ``shm_exhausted`` (never the watchdog's ``hang``), the limits
search finds a boundary with ``shm_exhausted`` beyond it, and every batch of every measured run (a
quick phase's window, a sustained run, every limits probe) holds ``batch_size`` clips, read from the
child's own ``batch`` events (``clips`` and ``shape`` are measured from the batch's tensors).

The clips are 16 frames of 320² (decoding costs about the same at any output size here): a single
batch of more than 13 clips is larger than docker's 64 MB, so the boundary lies past the split's 12 —
exactly where batches capped at 12 clips "passed".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.options import Settings
from ssv2_fixtures.report.findings import findings
from ssv2_fixtures.report.summary import render_summary
from ssv2_fixtures.run.child import DatasetSpec
from ssv2_fixtures.run.monitor import TreeMonitor
from ssv2_fixtures.run.request import RunRequest
from ssv2_fixtures.run.runner import RunResult, dataset_spec, run_config
from ssv2_fixtures.run.sandbox import PROFILES, Sandbox, unavailable
from ssv2_fixtures.run.shm import batch_bytes
from ssv2_fixtures.stress import campaign, limits, quick
from ssv2_fixtures.stress.campaign import Stress
from ssv2_fixtures.stress.plans import ladder, matrix
from ssv2_fixtures.stress.session import StressSession

MiB = 2**20
SPLIT = 12
FRAMES, SIZE = 16, 320  # 4.9 MB a clip: 13 fit in docker's 64 MB, so the boundary lies past 12
SHM_12MB = Sandbox(shm_bytes=12 * MiB)
DOCKER = PROFILES["docker-default"]
# a private /dev/shm needs ``unshare -m``; where it is not permitted these tests say why and skip
pytestmark = [
    pytest.mark.timeout(600),
    # the limits probes beyond the prediction run on purpose, to show the failure
    pytest.mark.filterwarnings("ignore::ssv2_fixtures.stress.campaign.BudgetWarning"),
    pytest.mark.skipif(unavailable(DOCKER) is not None, reason=str(unavailable(DOCKER))),
]


@pytest.fixture(scope="module")
def split12(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> DatasetSpec:
    """A list file over all 12 synthetic videos (train, validation and test alike): a 12-video split."""
    vids = sorted(p.name for p in (synth_root / "20bn-something-something-v2").iterdir() if p.suffix == ".webm")
    assert len(vids) == SPLIT, vids
    f = tmp_path_factory.mktemp("split12") / "split12.txt"
    f.write_text("".join(f"20bn-something-something-v2/{v} {i % 5}\n" for i, v in enumerate(vids)))
    return dataset_spec(synth_root, "train", list_file=str(f), num_frames=FRAMES, size=SIZE)


class Recorder:
    """Every event of every child, by run folder: wraps the ``on_event`` a run was given (or none)."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def hook(self, chained: Any) -> Any:
        def on_event(ev: dict[str, Any], mon: TreeMonitor) -> None:
            self.events[str(Path(mon.tmpdir).parent)].append(ev)
            if chained is not None:
                chained(ev, mon)

        return on_event

    def of(self, result: RunResult, kind: str = "batch") -> list[dict[str, Any]]:
        return [e for e in self.events[result.record["run_dir"]] if e.get("ev") == kind]


def assert_full_batches(rec: Recorder, result: RunResult) -> int:
    """Every batch the run received holds ``batch_size`` items, counted by the sampler and measured from
    the tensors; returns how many batches there were."""
    bs = result.record["config"]["batch_size"]
    batch_events = rec.of(result)
    assert len(batch_events) == result.metrics["batches"], result.describe()
    for e in batch_events:
        assert (e["videos"], e["clips"], e["shape"][0]) == (bs, bs, bs), (result.record["label"], e)
        assert e["bytes"] == batch_bytes(bs, FRAMES, SIZE), (result.record["label"], e)
    assert not rec.of(result, "epoch"), "the single-process sampler is endless: no epoch may end"
    return len(batch_events)


@dataclass
class Campaign:
    """One in-process stress session over the 12-video split: a quick phase, a sustained run and a
    limits search under docker-default, every child's events recorded."""

    session: StressSession
    rec: Recorder
    quick: RunResult
    sustained: RunResult
    found: limits.LimitsResult
    probe_runs: list[RunResult] = field(default_factory=list)


@pytest.fixture(scope="module")
def small_campaign(split12: DatasetSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    from ssv2_fixtures.stress.probe import machine_facts

    base = tmp_path_factory.mktemp("campaign")
    # Short on purpose: a 2-second quick window, 8 sustained batches, 6-batch limits probes.
    s = Settings(
        batches=8,
        quick_batches=40,
        quick_seconds=2.0,
        frames=FRAMES,
        size=SIZE,
        workers=[1],
        batch_sizes=[24],
        prefetch=[2],
        max_batch_size=64,
        limit_batches=6,
        reports=base / "reports",
        cores=2,
        max_workers=2,
        no_breakdown=True,  # what these tests read is the runs' own records (the probe: tests/unit/run)
        no_drift=True,
    )
    session = StressSession(s, machine=machine_facts())
    rec = Recorder()
    real = campaign.run_config

    def recorded(request: RunRequest) -> RunResult:
        return real(replace(request, on_event=rec.hook(request.on_event)))

    with pytest.MonkeyPatch.context() as mp:
        # observe the real children's events; the runs themselves are untouched
        mp.setattr(campaign, "run_config", recorded)
        stress = Stress(session, split12, "test_small_split")
        phase3 = ladder(s.max_workers)[2]  # bs4-w2-pf2: 20 items in flight, more than the split
        q = quick.ladder_phase(stress, phase3)
        ((cfg, requested),) = matrix([24], [2], [2], max_workers=s.max_workers)  # shuffle + drop_last
        sus = quick.sustained(stress, cfg, requested)
        # the limits search as `-m limits --emulate docker-default --workers 1` runs it (prefetch 4)
        lim_settings = replace(s, sandbox=DOCKER, prefetch=[4], reports=base / "limits-reports")
        lim_stress = Stress(StressSession(lim_settings, machine=session.machine), split12, "test_limits[w1]")
        lim_stress.session.decode_rate = session.decode_rate  # measured above: no second probe
        lim_stress.session.base_rss = session.base_rss
        found = limits.search(lim_stress, 1)
    assert q.result is not None and sus.result is not None
    for r in lim_stress.session.results:  # one results file: the report sees every run of the campaign
        session.record(r)
    session.limits.extend(lim_stress.session.limits)
    session.flush()
    yield Campaign(session, rec, q.result, sus.result, found, list(found.probes.values()))


def test_bs24_on_12_videos_under_12mb_shm_is_shm_exhausted_not_hang(split12: DatasetSpec, tmp_path: Path) -> None:
    cfg = LoaderConfig(batch_size=24, num_workers=2, shuffle=True, drop_last=True)
    rec = Recorder()
    r = run_config(RunRequest(split12, cfg, 10, sandbox=SHM_12MB, run_dir=tmp_path, on_event=rec.hook(None)))
    assert r.kind == "shm_exhausted" and r.outcome is not None, r.describe()
    # ended by the child's own failure, not by the watchdog's stall or start-up limit
    assert "watchdog" not in r.outcome["evidence"], r.outcome
    assert r.outcome["evidence"]["shm_total_bytes"] == 12 * MiB
    # one full batch (24 clips of 4.9 MB) is already larger than the whole /dev/shm
    assert r.outcome["evidence"]["shm_need_bytes"] > 12 * MiB
    assert not rec.of(r, "epoch"), "no epoch ended: the sampler is endless, so no epoch is ever empty"
    assert [e["dataset_len"] for e in rec.of(r, "ready")] == [SPLIT]
    assert r.metrics["split_size"] == SPLIT


def test_limits_on_12_videos_finds_a_boundary_below_64_with_shm_exhausted_beyond(small_campaign: Campaign) -> None:
    e = small_campaign.found.entry
    assert not small_campaign.found.unclassified
    assert e["first_failing_batch_size"] is not None and e["first_failing_batch_size"] < 64, e
    # a single batch larger than the whole /dev/shm can never pass: the search reaches at least that far
    alone = 64 * MiB // batch_bytes(1, FRAMES, SIZE) + 1
    assert e["first_failing_batch_size"] <= alone, e
    assert e["boundary_batch_size"] is not None and e["boundary_batch_size"] < e["first_failing_batch_size"], e
    assert e["kind_beyond"] == "shm_exhausted", small_campaign.found.probes[e["first_failing_batch_size"]].describe()
    # the boundary's batches were full: its bytes are boundary × one clip, not 12 clips
    assert e["bytes_per_batch_at_boundary"] == batch_bytes(e["boundary_batch_size"], FRAMES, SIZE)
    assert e["emulated"]["shm_bytes"] == 64 * MiB
    for bs, r in small_campaign.found.probes.items():
        assert r.passed == (bs <= e["boundary_batch_size"]), r.describe()


def test_every_batch_of_every_measured_run_is_full(small_campaign: Campaign) -> None:
    c = small_campaign
    assert c.quick.passed, c.quick.describe()
    assert c.sustained.kind is None, c.sustained.describe()
    measured = c.rec.of(c.quick, "measured")
    assert len(measured) == 1 and measured[0]["batches"] >= 1
    # the window's videos are its batches × batch_size: no short batch inside it either
    assert measured[0]["videos"] == measured[0]["batches"] * c.quick.record["config"]["batch_size"]
    assert assert_full_batches(c.rec, c.quick) > measured[0]["batches"]  # warm-up batches before the window
    assert assert_full_batches(c.rec, c.sustained) == 8
    passed = [r for r in c.probe_runs if r.passed]
    assert passed and all(assert_full_batches(c.rec, r) == 6 for r in passed)
    for r in c.probe_runs:  # a failing probe's batches, as far as it got, were full too
        assert_full_batches(c.rec, r)


def test_records_carry_split_size_and_distinct_videos_and_the_summary_says_so(small_campaign: Campaign) -> None:
    c = small_campaign
    finished = [c.quick, c.sustained, *(r for r in c.probe_runs if r.passed)]
    for r in finished:
        # chained permutations draw every video once before any repeats
        drawn = r.metrics["batches"] * r.record["config"]["batch_size"]
        want = (SPLIT, min(SPLIT, drawn))
        assert (r.metrics["split_size"], r.metrics["distinct_videos"]) == want, r.record["label"]
        assert [e["distinct_videos"] for e in c.rec.of(r, "finished")] == [want[1]]
    # the quick window, the sustained run and the boundary's probe each drew the whole split
    boundary = c.found.probes[c.found.entry["boundary_batch_size"]]
    assert all(r.metrics["distinct_videos"] == SPLIT for r in (c.quick, c.sustained, boundary))
    data = c.session.file()
    found = [f for f in findings(data) if f.startswith("The split holds")]
    assert len(found) == 1 and found[0].startswith(f"The split holds {SPLIT} videos, fewer than the items in flight")

    # every run with more items in flight (batch × (workers × prefetch + 1)) than the split is counted
    def in_flight(cfg: dict[str, Any]) -> int:
        return int(cfg["batch_size"]) * (int(cfg["num_workers"]) * int(cfg.get("prefetch_factor") or 0) + 1)

    over = [r for r in data["results"] if in_flight(r["config"]) > SPLIT]
    assert {r["kind"] for r in over} == {"quick", "sustained", "limits"}
    assert f"in {len(over)} run(s) (" in found[0], found[0]
    assert "distinct videos seen per run:" in found[0] and f" {SPLIT}" in found[0]
    assert f"- {found[0]}" in render_summary(data).splitlines()
