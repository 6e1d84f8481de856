"""The stress layer's record stamp (one place that decides ``status``), the data_error record and the
user pipeline's dataset-spec keys: pure, no processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssv2_fixtures.data.annotations import AnnotationError
from ssv2_fixtures.options import OPTIONS, resolve
from ssv2_fixtures.stress.campaign import StressFacts, data_error, factory_spec, stamp


def _rec(status: str = "passed", verdicts: list[dict[str, Any]] | None = None) -> Any:
    rec: dict[str, Any] = {"status": status, "config": {"num_workers": 4}, "metrics": {"videos_per_s": 10.0}}
    if verdicts is not None:
        rec["verdicts"] = verdicts
    return rec


FACTS = StressFacts(
    "t::id", "sustained", "p1", {"shm_bytes": 1}, requested_workers=8, gpu="skipped: no", decode_limit=42.0
)


def test_stamp_adds_the_stress_facts() -> None:
    rec = stamp(_rec(), FACTS)
    assert (rec["id"], rec["kind"], rec["phase"], rec["budget"]) == ("t::id", "sustained", "p1", {"shm_bytes": 1})
    assert rec["requested_workers"] == 8 and rec["gpu"] == "skipped: no"
    assert rec["metrics"]["decode_limit_videos_per_s"] == 42.0
    assert rec["verdicts"] == [] and rec["status"] == "passed"


def test_uncapped_runs_carry_no_requested_workers() -> None:
    rec = stamp(_rec(), StressFacts("t", "quick", None, {}, requested_workers=4))
    assert "requested_workers" not in rec and "phase" not in rec and "gpu" not in rec


def test_a_failed_check_fails_the_run_once_here() -> None:
    bad = {"name": "leak", "ok": False, "detail": "grew"}
    rec = stamp(_rec(), FACTS, [{"name": "degradation", "ok": True}, bad])
    assert rec["status"] == "failed" and rec["verdicts"][-1] is bad


def test_the_runners_own_verdicts_count_too() -> None:
    rec = stamp(_rec(verdicts=[{"name": "coverage", "ok": False}]), FACTS)
    assert rec["status"] == "failed" and len(rec["verdicts"]) == 1


def test_a_crash_stays_a_crash() -> None:
    assert stamp(_rec("failed"), FACTS, [{"name": "x", "ok": True}])["status"] == "failed"


def test_data_error_record_names_file_entry_and_fix(tmp_path: Path) -> None:
    exc = AnnotationError(tmp_path / "train.json", "is missing", entry=3, field="id", fix="download it")
    rec = data_error(exc)
    assert rec == {
        "kind": "data_error",
        "message": str(exc),
        "file": str(tmp_path / "train.json"),
        "entry": "entry 3, field 'id'",
        "fix": "download it",
    }
    plain = data_error(ValueError("no"))
    assert plain["file"] is None and plain["entry"] is None and plain["message"] == "no"


def _settings(tmp: Path, **cli: Any):
    repeat = {o.dest for o in OPTIONS if o.repeat}
    return resolve(lambda d: cli.get(d), lambda d: [] if d in repeat else None, None, invocation_dir=tmp)


def test_factory_spec_keys(tmp_path: Path) -> None:
    assert factory_spec(_settings(tmp_path)) == {}
    (tmp_path / "src").mkdir()
    s = _settings(
        tmp_path,
        dataset_factory="mypkg.data:build",
        dataset_arg=["n=2", "mode=fast"],
        dataset_path=[str(tmp_path / "src")],
    )
    assert factory_spec(s) == {
        "factory": "mypkg.data:build",
        "factory_kwargs": {"n": 2, "mode": "fast"},
        "factory_path": [str((tmp_path / "src").resolve()), str(tmp_path.resolve())],
    }
    # by default only the invocation folder
    assert factory_spec(_settings(tmp_path, dataset_factory="m:f"))["factory_path"] == [str(tmp_path.resolve())]


# --- the machine's cuda flag: unknown until a run's ready event says --------------------------------


def _stress(machine: dict[str, Any]) -> Any:
    from types import SimpleNamespace

    from ssv2_fixtures.stress.campaign import Stress

    return Stress(SimpleNamespace(machine=machine), {"root": "/x", "split": "train"}, "t")  # type: ignore[arg-type]


def test_unknown_cuda_asks_the_run_and_takes_its_ready_events_answer() -> None:
    from ssv2_fixtures.stress.campaign import GPU_UNKNOWN, NO_GPU

    machine: dict[str, Any] = {"cuda": None}
    st = _stress(machine)
    assert st._gpu() == GPU_UNKNOWN
    seen: list[str] = []
    ask, hook = st._cuda(lambda ev, mon: seen.append(ev["ev"]))
    assert ask is True and hook is not None  # the child checks torch.cuda.is_available() itself
    hook({"ev": "started"}, None)
    assert machine["cuda"] is None
    hook({"ev": "ready", "cuda": False}, None)
    hook({"ev": "ready", "cuda": True}, None)  # a later rank's answer does not overwrite the first
    assert machine["cuda"] is False and seen == ["started", "ready", "ready"]  # the live hook still runs
    assert st._gpu() == NO_GPU
    assert st._cuda(None) == (False, None)  # known now: asked as it is, no hook added


def test_known_cuda_is_passed_through() -> None:
    st = _stress({"cuda": True})
    assert st._cuda(None) == (True, None) and st._gpu() is None


def test_the_one_fits_rule() -> None:
    from ssv2_fixtures.stress.campaign import fits

    assert fits(10, 2, 10) and not fits(11, 2, 10)
    assert fits(10**12, 0, 0)  # W=0 passes no batch through /dev/shm
