"""child.py: the event writer and real children: full batches from an endless sampler on a split smaller than a
batch, a measured window, a user's pipeline (the batch loop itself: tests/unit/run/test_loop.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.run.child import EventWriter

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


def test_event_writer_writes_one_json_line_per_event() -> None:
    r, w = os.pipe()
    try:
        EventWriter(w, rank=2).emit("batch", i=0, path=Path("/x"))
        EventWriter(w).emit("finished", batches=1)
        os.close(w)
        lines = os.read(r, 65536).decode().splitlines()
    finally:
        os.close(r)
    a, b = (json.loads(ln) for ln in lines)
    assert (a["ev"], a["rank"], a["path"], "t" in a) == ("batch", 2, "/x", True)
    assert b["ev"] == "finished" and "rank" not in b


# --------------------------------------------------------------------------- real children


@pytest.fixture
def run_events(synth_root: Path, tmp_path: Path):
    from ssv2_fixtures.run.request import RunRequest
    from ssv2_fixtures.run.runner import dataset_spec, run_config

    def go(cfg: LoaderConfig, batches: int, **kw: Any) -> tuple[Any, list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []
        ds = dataset_spec(synth_root, "train", size=32, num_frames=2)
        r = run_config(
            RunRequest(ds, cfg, batches, run_dir=tmp_path, on_event=lambda ev, _m: seen.append(dict(ev)), **kw)
        )
        return r, seen

    return go


@pytest.mark.timeout(300)
def test_a_split_smaller_than_a_batch_gives_full_batches_in_a_real_child(run_events) -> None:
    """9 train videos, BS=24 with shuffle + drop_last: the config that yielded no batch at all before."""
    r, seen = run_events(LoaderConfig(batch_size=24, num_workers=2, shuffle=True, drop_last=True), 3)
    assert r.passed, r.describe()
    b = [e for e in seen if e["ev"] == "batch"]
    assert len(b) == 3 and all(e["videos"] == 24 == e["clips"] and e["shape"] == [24, 2, 32, 32, 3] for e in b)
    assert all(e["bytes"] >= 24 * 2 * 32 * 32 * 3 for e in b)
    assert not [e for e in seen if e["ev"] == "epoch"]
    (fin,) = [e for e in seen if e["ev"] == "finished"]
    assert fin["split_size"] == 9 and fin["distinct_videos"] == 9 and fin["videos"] == 72


@pytest.mark.timeout(300)
def test_a_measured_window_in_a_real_child(run_events) -> None:
    # target_rel=1e-9 never converges and max_s (600 s) is past the test's timeout: the window ends on
    # max_batches, deterministically; the record carries that verdict and the window's own batches
    measure = dict(warmup_batches=2, min_batches=6, max_batches=14, max_s=600.0, target_rel=1e-9)
    r, seen = run_events(LoaderConfig(batch_size=2, num_workers=1), 14, measure=measure)
    assert r.passed, r.describe()
    kinds = [e["ev"] for e in seen]
    (m,) = [e for e in seen if e["ev"] == "measured"]
    # the full-queue hold comes after the window and adds no batch event (run/hold.py): no rate includes it
    assert kinds.index("measured") + 1 == kinds.index("hold") < kinds.index("held") == kinds.index("finished") - 1
    b = [e for e in seen if e["ev"] == "batch"]
    assert m["stopped"] == "batches" and len(b) == 14 and m["batches"] == 12 and m["videos"] == 24
    metrics = r.metrics
    assert metrics["window_stopped"] == "batches" and metrics["batches"] == 14
    assert metrics["interval_batches"] == 12  # the window's batches, the warm-up left out
    assert "window stopped on batches" in r.describe()


# --------------------------------------------------------------------------- a user's pipeline

_PIPE = """
import torch
from ssv2_fixtures.data.factory import Pipeline


class Frames(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": torch.zeros(3, 4), "i": i}


def collate(items):
    return {"x": torch.stack([it["x"] for it in items]), "ids": [it["i"] for it in items]}


def init(worker_id):
    pass


def build(n=5, split="train"):
    return Pipeline(Frames(n), collate, init)
"""


@pytest.fixture
def pipe_dir(tmp_path: Path) -> Path:
    d = tmp_path / "userpipe"
    d.mkdir()
    (d / "c_user_pipe.py").write_text(_PIPE)
    return d


def test_build_dataset_takes_the_users_pipeline(pipe_dir: Path, synth_root: Path) -> None:
    from ssv2_fixtures.run.child import build_dataset

    spec: Any = {
        "config": LoaderConfig(batch_size=2).to_dict(),
        "fault": "exception@1",
        "dataset": {
            "root": str(synth_root),
            "split": "train",
            "factory": "c_user_pipe:build",
            "factory_kwargs": {"n": 7},
            "factory_path": [str(pipe_dir)],
        },
    }
    built = build_dataset(spec, rank=0)
    assert len(built.dataset) == 7 and type(built.dataset).__name__ == "FaultyDataset"  # the drill wraps it
    assert built.collate_fn is not None and built.collate_fn.__name__ == "collate"
    assert built.worker_init_fn is not None and built.worker_init_fn.__name__ == "init"
    assert built.config.batch_size == 2


@pytest.mark.timeout(300)
def test_a_users_pipeline_runs_in_a_real_child_with_its_collate(
    pipe_dir: Path, synth_root: Path, tmp_path: Path
) -> None:
    from ssv2_fixtures.run.request import RunRequest
    from ssv2_fixtures.run.runner import dataset_spec, run_config

    seen: list[dict[str, Any]] = []
    ds = dataset_spec(
        synth_root, "train", factory="c_user_pipe:build", factory_kwargs={"n": 5}, factory_path=[str(pipe_dir)]
    )
    r = run_config(
        RunRequest(
            ds,
            LoaderConfig(batch_size=4, num_workers=1),
            3,
            run_dir=tmp_path,
            on_event=lambda ev, _m: seen.append(dict(ev)),
        )
    )
    assert r.passed, r.describe()
    b = [e for e in seen if e["ev"] == "batch"]
    assert len(b) == 3, r.describe()
    assert all(
        e["videos"] == 4 == e["clips"]
        and e["shape"] == [4, 3, 4]
        and e["dtype"] == "torch.float32"
        and e["bytes"] == 4 * 3 * 4 * 4
        for e in b
    ), b
    (fin,) = [e for e in seen if e["ev"] == "finished"]
    assert fin["split_size"] == 5 and fin["distinct_videos"] == 5


@pytest.mark.timeout(300)
def test_a_failing_hook_is_reported_not_swallowed(synth_root: Path, tmp_path: Path) -> None:
    from ssv2_fixtures.run.request import RunRequest
    from ssv2_fixtures.run.runner import dataset_spec, run_config

    def hook(ev: dict[str, Any], _m: Any) -> None:
        assert ev["ev"] != "batch", "the caller's own check"

    ds = dataset_spec(synth_root, "train", size=32, num_frames=2)
    with pytest.warns(RuntimeWarning, match=r"on_event raised 3 time\(s\)"):
        r = run_config(RunRequest(ds, LoaderConfig(batch_size=2, num_workers=0), 3, run_dir=tmp_path, on_event=hook))
    assert r.passed, r.describe()  # the run itself went on and finished
    stream = r.record["event_stream"]
    assert stream["on_event_errors"] == 3 and "AssertionError: the caller's own check" in stream["first_on_event_error"]
    assert "bad_event_lines" not in stream  # the child's lines all parsed
