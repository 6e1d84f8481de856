"""The pipeline probe's facts from its run record, and the data_error of a probe whose factory cannot load:
pure, no processes (the real probe runs in test_pipeline_markers.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ssv2_fixtures.stress.campaign import probe_data_error
from ssv2_fixtures.stress.probe import pipeline_probe, probe_applies


def _rec(batches: int, bs: int, per_item: int, views: int = 2) -> dict[str, Any]:
    return {
        "label": f"bs{bs}-w0",
        "config": {"batch_size": bs},
        "dataset": {"factory": "u.data:build", "factory_kwargs": {"size": 32}},
        "metrics": {
            "batches": batches,
            "videos": batches * bs,
            "bytes_per_batch": bs * per_item,
            "batch_shape": [bs * views, 3, 4, 32, 32],
            "batch_dtype": "torch.float32",
            "clips_per_batch": bs * views,
            "rss_peak_bytes": 300 << 20,
            "videos_per_s": 12.5,
        },
    }


@given(st.integers(1, 50), st.integers(1, 16), st.integers(1, 10**8), st.integers(1, 4))
def test_bytes_per_item_is_bytes_per_batch_over_videos_per_batch(
    batches: int, bs: int, per_item: int, views: int
) -> None:
    p = pipeline_probe(_rec(batches, bs, per_item, views))
    assert p is not None
    assert p["bytes_per_item"] == per_item and p["clips_per_item"] == views
    assert (p["batch_size"], p["batches"], p["rss_bytes"], p["items_per_s"]) == (bs, batches, 300 << 20, 12.5)
    assert p["factory"] == "u.data:build" and p["factory_kwargs"] == {"size": 32}


def test_a_run_without_batch_bytes_is_no_probe() -> None:
    rec = _rec(3, 2, 100)
    del rec["metrics"]["bytes_per_batch"]
    assert pipeline_probe(rec) is None
    assert pipeline_probe({"metrics": {"batches": 0, "videos": 0}}) is None


def test_the_probe_applies_only_to_the_pipeline_it_measured() -> None:
    p = pipeline_probe(_rec(3, 2, 100))
    assert probe_applies(p, {"factory": "u.data:build", "factory_kwargs": {"size": 32}})
    assert not probe_applies(p, {"factory": "u.data:build", "factory_kwargs": {"size": 64}})
    assert not probe_applies(p, {"factory": "v.data:build", "factory_kwargs": {"size": 32}})
    assert not probe_applies(p, {"root": "/x"}) and not probe_applies(None, {"factory": "u.data:build"})


def test_a_factory_error_outcome_is_the_sessions_data_error() -> None:
    rec: Any = {
        "outcome": {
            "kind": "data_error",
            "batch": None,
            "remedy": "fix the error at /p/bad.py:12",
            "message": "dataset factory u.bad:raises: ... raised RuntimeError: no",
            "evidence": {"what": "factory_raised", "file": "/p/bad.py", "line": 12},
        }
    }
    assert probe_data_error(rec) == {
        "kind": "data_error",
        "message": rec["outcome"]["message"],
        "file": "/p/bad.py",
        "entry": "line 12",
        "fix": "fix the error at /p/bad.py:12",
    }
    rec["outcome"]["evidence"] = {}
    assert probe_data_error(rec)["entry"] is None  # type: ignore[index]
    other: Any = {"outcome": {"kind": "worker_exception"}}
    assert probe_data_error(other) is None
    none: Any = {"outcome": None}
    assert probe_data_error(none) is None
