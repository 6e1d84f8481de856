"""A user's pipeline (``tests/userpipe``, outside the package) through every marker's code path, with real
children: the session's probe measures it first, and each record shows its items per batch, measured bytes
and shapes. Bad factories are refused by the probe as a ``data_error`` in results.json, naming the fix.

Kept short: 32² crops of 4 frames, batch size 2, a few batches per run.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ssv2_fixtures import LoaderConfig
from ssv2_fixtures.report.recommend import dataset_table, snippet, train_toml
from ssv2_fixtures.stress import distributed, limits, quick, validate
from ssv2_fixtures.stress.campaign import DataError, Stress, probe_pipeline
from ssv2_fixtures.stress.plans import Phase
from ssv2_fixtures.stress.tune_run import api_stress

pytest_plugins = ["pytester"]

USERPIPE = Path(__file__).resolve().parents[2] / "userpipe"
SIZE, FRAMES, VIEWS = 32, 4, 2
ARGS = [f"size={SIZE}", f"frames={FRAMES}"]


def item_bytes(views: int = VIEWS) -> int:
    """What one item of userpipe.data:build holds in tensors after its collate: ``views`` float32 clips
    (3, T, S, S) and one int64 label per view (ids and flags are strings/bools: no tensor bytes)."""
    return views * (3 * FRAMES * SIZE * SIZE * 4 + 8)


def make(tmp: Path, factory: str = "userpipe.data:build", args: list[str] = ARGS, **options: Any) -> Stress:
    opts: dict[str, Any] = dict(
        dataset_factory=factory,
        dataset_arg=args,
        dataset_path=[str(USERPIPE)],
        batch_sizes="2",
        batches="6",
        quick_batches="6",
        limit_batches="3",
        max_batch_size="2",
        no_breakdown="true",  # their pipeline's breakdown probe: tests/unit/run/test_breakdown_probe.py
        no_drift="true",
    )
    opts.update(options)
    return api_stress(tmp / "reports", **opts)


def results(st: Stress) -> dict[str, Any]:
    return json.loads((st.session.run_dir / "results.json").read_text())


def contents(rec: Any, videos: int, views: int = VIEWS) -> None:
    m = rec["metrics"]
    assert m["bytes_per_batch"] == videos * item_bytes(views), m
    assert m["clips_per_batch"] == videos * views
    assert m["batch_shape"] == [videos * views, 3, FRAMES, SIZE, SIZE] and m["batch_dtype"] == "torch.float32"
    assert rec["dataset"]["factory"] == "userpipe.data:build"


@pytest.fixture(scope="module")
def st(tmp_path_factory: pytest.TempPathFactory) -> Stress:
    s = make(tmp_path_factory.mktemp("pipe"))
    s.probe()
    return s


def test_the_probe_measures_the_users_batches_before_any_config(st: Stress) -> None:
    p = st.session.probe
    assert p is not None and p["bytes_per_item"] == item_bytes()
    assert p["batch_shape"] == [2 * VIEWS, 3, FRAMES, SIZE, SIZE] and p["batch_dtype"] == "torch.float32"
    assert p["clips_per_item"] == VIEWS and (p["rss_bytes"] or 0) > 0 and (p["items_per_s"] or 0) > 0
    assert results(st)["probe"] == p  # results.json carries it
    assert st.session.decode_rate == p["items_per_s"]  # L's base is their pipeline's rate
    b = st.budget(LoaderConfig(batch_size=8, num_workers=2, prefetch_factor=2))
    assert b.measured_bytes and b.batch_bytes == 8 * item_bytes() and b.shm_bytes == 5 * 8 * item_bytes()


def test_quick_phase_runs_their_pipeline(st: Stress) -> None:
    from ssv2_fixtures.stress.plans import quick_measure

    step = quick.ladder_phase(st, Phase(2, LoaderConfig(batch_size=2, num_workers=1, prefetch_factor=2), 1))
    assert step.failure is None and step.result is not None, step.failure
    rec = step.result.record
    contents(rec, 2)
    assert rec["budget"]["measured_bytes"] and rec["budget"]["batch_bytes"] == 2 * item_bytes()
    assert rec["metrics"]["decode_limit_videos_per_s"] == pytest.approx(st.session.decode_rate)
    assert quick_measure(st.settings)["max_batches"] >= rec["metrics"]["batches"]


def test_sustained_runs_their_pipeline(st: Stress) -> None:
    step = quick.sustained(st, LoaderConfig(batch_size=2, num_workers=2, prefetch_factor=2), 2)
    assert step.result is not None and step.result.kind is None, step.failure
    contents(step.result.record, 2)
    assert step.result.record["dataset"]["train"] is True


def test_limits_search_runs_their_pipeline_and_bounds_from_measured_bytes(st: Stress) -> None:
    out = limits.search(st, 1)
    assert sorted(out.probes) == [1, 2] and all(r.passed for r in out.probes.values())
    for bs, r in out.probes.items():
        contents(r.record, bs)
    e = out.entry
    assert e["bytes_per_item"] == item_bytes() and e["bytes_per_batch_at_boundary"] == 2 * item_bytes()
    assert e["predicted_fitting_batch_size"] == st.largest_fitting_batch(
        LoaderConfig(batch_size=1, num_workers=1, prefetch_factor=st.settings.prefetch[0])
    )


def test_validate_runs_the_pipeline_its_toml_names(st: Stress, tmp_path: Path) -> None:
    toml = tmp_path / "train.toml"
    toml.write_text(
        "\n".join(
            [
                "[dataset]",
                'factory = "userpipe.data:build"',
                f'path = ["{USERPIPE}"]',
                "",
                "[dataset.kwargs]",
                f"size = {SIZE}",
                f"frames = {FRAMES}",
                "views = 3",
                "",
                "[loader]",
                "batch_size = 2",
                "num_workers = 1",
                "prefetch_factor = 2",
                "",
                "[target]",
                "min_videos_per_s = 0.01",
                "",
            ]
        )
    )
    st.session.settings = replace(st.settings, train_config=toml)
    try:
        v = validate.run(st)
    finally:
        st.session.settings = replace(st.settings, train_config=None)
    assert v.failure is None and v.result is not None, v.failure
    contents(v.result.record, 2, views=3)  # the TOML's three views, not the session's two
    deg = {x["name"]: x for x in v.result.record["verdicts"]}["degradation"]
    assert deg["detail"].startswith("too few batches")  # 6 batches: no measured comparison to pass or fail
    # the session's probe measured two views: its bytes are not applied to another pipeline
    assert not v.result.record["budget"]["measured_bytes"]


def test_distributed_ranks_run_their_pipeline(st: Stress) -> None:
    cfg = LoaderConfig(batch_size=2, num_workers=1, prefetch_factor=2)
    out = distributed.run(st, cfg, 4)
    assert out.failure is None, out.failure
    rec = out.result.record
    n = st.settings.launch.nproc_per_node
    assert rec["dataset"]["factory"] == "userpipe.data:build" and len(rec["ranks"]) == n
    assert rec["metrics"]["batch_dtype"] == "torch.float32" and rec["metrics"]["clips_per_batch"] == 2 * VIEWS
    assert rec["budget"]["measured_bytes"]
    # the node totals from what the ranks reported: every rank's batches and videos, and one worker per
    # iterator from each rank's own workers events (no sampled count is asserted)
    rows = rec["ranks"]
    assert all(r["batches"] == st.settings.batches and r["videos"] == 2 * st.settings.batches for r in rows), rows
    assert rec["metrics"]["videos"] == sum(r["videos"] for r in rows) == n * 2 * st.settings.batches
    assert [r["workers_started"] for r in rows] == [1] * n
    (totals,) = [v for v in rec["verdicts"] if v["name"] == "node_totals"]
    assert totals["ok"] and f"{n * 2} loader processes reported by {n} of {n} rank(s)" in totals["detail"], totals


def test_the_recommendation_shows_their_factory_call_and_dataset_table(st: Stress) -> None:
    from ssv2_fixtures.report.recommend import recommend

    data = results(st)
    rec = recommend(data)  # type: ignore[arg-type]
    assert rec is not None
    code = "\n".join(snippet(rec, data))  # type: ignore[arg-type]
    assert "from userpipe.data import build" in code and "SSv2Clips" not in code
    assert "build(root=" in code and f"size={SIZE}" in code and "collate_fn=pipe.collate_fn" in code
    # the probe recorded what the factory took; it takes train, so the training snippet passes train=True
    assert data["dataset"]["factory_args"] == ["frames", "root", "size", "split", "train"]
    assert "train=True" in code and "shuffle=True" in code and "drop_last=True" in code
    toml = "\n".join(train_toml(rec))
    assert '[dataset]\nfactory = "userpipe.data:build"' in toml and f"size = {SIZE}" in toml
    assert str(USERPIPE) in toml


def test_dataset_table_round_trips_through_the_training_toml(tmp_path: Path) -> None:
    import tomllib

    ds = {
        "factory": "mypkg.data:build",
        "factory_path": ["/src"],
        "factory_kwargs": {"size": 112, "mode": "fast", "scales": [1, 0.875], "flip": True},
    }
    got = tomllib.loads("\n".join(dataset_table(ds)))["dataset"]
    assert got == {"factory": "mypkg.data:build", "path": ["/src"], "kwargs": ds["factory_kwargs"]}
    assert dataset_table({"root": "/x"}) == []


@pytest.mark.parametrize(
    "factory,args,what,fix",
    [
        ("userpipe_missing.data:build", [], "module", "--dataset-path"),
        ("userpipe.bad:raises", [], "raise", "bad.py"),
        ("userpipe.bad:returns_list", [], "Dataset", ""),
    ],
    ids=["module-missing", "factory-raises", "not-a-dataset"],
)
def test_a_bad_factory_is_a_data_error_in_results_json(
    tmp_path: Path, factory: str, args: list[str], what: str, fix: str
) -> None:
    s = make(tmp_path, factory, args)
    with pytest.raises(DataError) as err:
        probe_pipeline(s.session, s.dataset)
    written = results(s)["data_error"]
    assert written == err.value.record and written["kind"] == "data_error"
    assert what in written["message"] and fix in written["fix"] and written["fix"]
    assert "probe" not in results(s)
    if factory.endswith(":raises"):  # the user's own frame: file and line
        assert written["file"] and written["file"].endswith("bad.py") and written["entry"].startswith("line ")
    with pytest.raises(DataError):  # every later run is refused with the same record, nothing else runs
        s.run(LoaderConfig(batch_size=2, num_workers=0), 2, kind="quick")


# Every way a user's pipeline can be wrong (issue 13), through a whole pytest session: the named error in
# pytest's output (one message, no traceback), results.json's data_error and summary.md's section. Smallest
# settings: one quick phase of 4 batches, which never runs (the session's probe refuses the pipeline first).
BAD_FACTORIES = [
    # id, options, words of the message, the file the record points at (None: no file)
    (
        "module-missing",
        ["--dataset-factory", "userpipe_missing.data:build"],
        "no top-level module or package 'userpipe_missing'",
        None,
    ),
    # the package imports from --dataset-path; its submodule is misspelt: named as such, path not blamed
    ("submodule-missing", ["--dataset-factory", "userpipe.dta:build"], "userpipe has no submodule 'dta'", None),
    ("attribute-missing", ["--dataset-factory", "userpipe.data:buidl"], "has no attribute 'buidl'", "data.py"),
    ("not-callable", ["--dataset-factory", "userpipe.bad:not_callable"], "is a int, not a callable", "bad.py"),
    (
        "factory-raises",
        ["--dataset-factory", "userpipe.bad:raises"],
        "RuntimeError: annotations for train not found",
        "bad.py",
    ),
    ("not-a-dataset", ["--dataset-factory", "userpipe.bad:returns_list"], "returned a list", "bad.py"),
    ("empty-dataset", ["--dataset-factory", "userpipe.bad:returns_empty"], "returned an empty dataset", "bad.py"),
    (
        "arg-without-equals",
        ["--dataset-factory", "userpipe.data:build", "--dataset-arg", "frames"],
        "invalid --dataset-arg (from the command line): 'frames': expected KEY=VALUE",
        None,
    ),
    (
        "uncollatable",
        ["--dataset-factory", "userpipe.bad:uncollatable"],
        "item[0][1]: list of tensors of different shapes",
        "bad.py",
    ),
]


@pytest.mark.parametrize("options,words,file", [c[1:] for c in BAD_FACTORIES], ids=[c[0] for c in BAD_FACTORIES])
def test_every_bad_factory_is_named_by_pytest_and_in_the_report(
    pytester: pytest.Pytester, options: list[str], words: str, file: str | None
) -> None:
    import os

    quick_tests = Path(__file__).resolve().parents[3] / "ssv2_fixtures" / "suite" / "test_quick.py"
    pytester.makepyfile(test_quick=quick_tests.read_text())
    cache = os.environ.get("SSV2_STRESS_CACHE")
    r = pytester.runpytest_subprocess(
        "-m",
        "quick",
        "-k",
        "phase1",
        *options,
        "--dataset-path",
        str(USERPIPE),
        "--quick-batches",
        "4",
        *(["--ssv2-cache", cache] if cache else []),
        "-p",
        "no:cacheprovider",
    )
    out = r.stdout.str() + r.stderr.str()
    assert r.ret != 0 and words in out, out[-3000:]
    assert "Traceback" not in out  # one message, not a traceback soup
    run_dir = max((pytester.path / "reports").glob("2*"))
    err = json.loads((run_dir / "results.json").read_text())["data_error"]
    assert err["kind"] == "data_error" and words in err["message"] and err["fix"]
    assert err["message"] in out  # the whole message reaches the terminal, never cut off
    if file is not None:
        assert err["file"] and err["file"].endswith(file), err
    summary = (run_dir / "summary.md").read_text()
    assert "Data could not load" in summary and words.split(":")[-1].strip()[:30] in summary


def test_preflight_sizes_shm_from_the_probed_pipeline(pytester: pytest.Pytester) -> None:
    """Under a 64 MB /dev/shm the ladder's uint8 224² arithmetic does not fit, but the user's 32² pipeline,
    measured by the session's probe, does: pre-flight uses the measured bytes (both directions matter)."""
    import os

    preflight = Path(__file__).resolve().parents[3] / "ssv2_fixtures" / "suite" / "test_preflight.py"
    pytester.makepyfile(test_preflight=preflight.read_text())
    cache = os.environ.get("SSV2_STRESS_CACHE")
    common = [
        "-m",
        "quick",
        "-k",
        "shm_fits",
        "--emulate-shm",
        "64M",
        *(["--ssv2-cache", cache] if cache else []),
        "-p",
        "no:cacheprovider",
    ]
    builtin = pytester.runpytest_subprocess(*common)
    builtin.assert_outcomes(failed=1)
    assert "needs ~" in builtin.stdout.str() and "emulated /dev/shm is 64 MiB" in builtin.stdout.str()
    theirs = pytester.runpytest_subprocess(
        *common,
        "--dataset-factory",
        "userpipe.data:build",
        "--dataset-path",
        str(USERPIPE),
        *(f"--dataset-arg={a}" for a in ARGS),
    )
    theirs.assert_outcomes(passed=1)
    run_dir = max((pytester.path / "reports").glob("2*"), key=lambda p: p.stat().st_mtime)
    assert json.loads((run_dir / "results.json").read_text())["probe"]["bytes_per_item"] == item_bytes()


def test_the_short_recipes_form_of_the_issue_resolves(st: Stress) -> None:
    from ssv2_fixtures.data.factory import load_pipeline
    from ssv2_fixtures.data.recipes import multiple_samples_collate

    spec = {"factory": "ssv2_fixtures.recipes:videomae_finetune", "root": st.dataset["root"], "split": "train"}
    pipe = load_pipeline(spec, train=True)
    assert pipe.collate_fn is multiple_samples_collate and len(pipe.dataset) > 0
