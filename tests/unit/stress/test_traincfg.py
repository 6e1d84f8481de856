"""Training-config TOML: loading, named errors (file + table + key), and target checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.stress.traincfg import TARGETS, TrainConfigError, check, load

GB = 2**30

VALID = """
[loader]
batch_size = 32
num_workers = 8
prefetch_factor = 4
sharing_strategy = "file_system"
tmpdir = "/scratch/tmp"
pin_memory = true
persistent_workers = true
timeout = 120

[target]
min_videos_per_s = 150
batches = 200
max_rss_gb = 24
max_shm_gb = 8.5
max_wait_ms_p95 = 400
max_first_batch_s = 60
"""


def _write(tmp_path: Path, text: str, name: str = "train.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_valid_file_loads(tmp_path: Path) -> None:
    p = _write(tmp_path, VALID)
    cfg = load(p)
    assert cfg.path == p
    assert cfg.loader == LoaderConfig(
        batch_size=32,
        num_workers=8,
        prefetch_factor=4,
        sharing_strategy="file_system",
        pin_memory=True,
        persistent_workers=True,
        timeout=120,
    )
    assert cfg.tmpdir == "/scratch/tmp" and cfg.batches == 200
    assert cfg.targets == {
        "min_videos_per_s": 150.0,
        "max_rss_gb": 24.0,
        "max_shm_gb": 8.5,
        "max_wait_ms_p95": 400.0,
        "max_first_batch_s": 60.0,
    }
    assert all(isinstance(v, float) for v in cfg.targets.values())
    assert cfg.loader.label == "bs32-w8-pf4-fs"


def test_minimal_file_loads(tmp_path: Path) -> None:
    cfg = load(_write(tmp_path, "[loader]\nbatch_size = 4\nnum_workers = 0\n"))
    assert cfg.loader == LoaderConfig(batch_size=4, num_workers=0)
    assert cfg.tmpdir is None and cfg.batches is None and cfg.targets == {}


@pytest.mark.parametrize(
    "text, where",
    [
        # unknown table
        ("[loader]\nbatch_size = 4\n[trainer]\nlr = 0.1\n", "table(s) ['trainer']"),
        ("[loader]\nbatch_size = 4\n[targets]\nbatches = 5\n", "table(s) ['targets']"),
        # unknown key
        ("[loader]\nbatch_size = 4\nnum_wrokers = 2\n", "[loader] num_wrokers"),
        ("[loader]\nbatch_size = 4\nmp_context = 'spawn'\n", "[loader] mp_context"),
        ("[loader]\nbatch_size = 4\n[target]\nmin_video_per_s = 3\n", "[target] min_video_per_s"),
        # wrong type
        ('[loader]\nbatch_size = "32"\n', "[loader] batch_size"),
        ("[loader]\nbatch_size = true\n", "[loader] batch_size"),
        ("[loader]\nbatch_size = 4\nnum_workers = 2.0\n", "[loader] num_workers"),
        ("[loader]\nbatch_size = 4\nprefetch_factor = false\nnum_workers = 2\n", "[loader] prefetch_factor"),
        ("[loader]\nbatch_size = 4\npin_memory = 1\n", "[loader] pin_memory"),
        ("[loader]\nbatch_size = 4\nsharing_strategy = 1\n", "[loader] sharing_strategy"),
        ("[loader]\nbatch_size = 4\ntimeout = true\nnum_workers = 2\n", "[loader] timeout"),
        ('[loader]\nbatch_size = 4\n[target]\nmax_rss_gb = "24"\n', "[target] max_rss_gb"),
        ("[loader]\nbatch_size = 4\n[target]\nmax_rss_gb = true\n", "[target] max_rss_gb"),
        ("[loader]\nbatch_size = 4\n[target]\nmin_videos_per_s = nan\n", "[target] min_videos_per_s"),
        ("[loader]\nbatch_size = 4\n[target]\nmax_wait_ms_p95 = -1\n", "[target] max_wait_ms_p95"),
        ("[loader]\nbatch_size = 4\n[target]\nbatches = 1\n", "[target] batches"),
        ("[loader]\nbatch_size = 4\n[target]\nbatches = true\n", "[target] batches"),
        ("[loader]\nbatch_size = 4\n[target]\nbatches = 20.0\n", "[target] batches"),
        ("[loader]\nbatch_size = 4\ntarget = 5\n", "[loader] target"),
        ("loader = 1\n", "[loader]"),
        ("target = 1\n[loader]\nbatch_size = 1\n", "[target]"),
        # invalid LoaderConfig combination
        ("[loader]\nbatch_size = 4\nnum_workers = 0\nprefetch_factor = 2\n", "[loader] prefetch_factor"),
        ("[loader]\nbatch_size = 4\nnum_workers = 0\npersistent_workers = true\n", "[loader] persistent_workers"),
        ("[loader]\nbatch_size = -4\n", "[loader] batch_size"),
        ('[loader]\nbatch_size = 4\nsharing_strategy = "shm"\n', "[loader] sharing_strategy"),
        ("[loader]\nbatch_size = 4\nnum_workers = 0\ntimeout = 10\n", "[loader] timeout"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, where: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(TrainConfigError) as info:
        load(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}: {where}"), msg
    assert isinstance(info.value, ValueError)


def test_missing_loader_table(tmp_path: Path) -> None:
    p = _write(tmp_path, "[target]\nbatches = 10\n")
    with pytest.raises(TrainConfigError, match=re.escape(f"{p}: [loader]: missing")):
        load(p)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    absent = tmp_path / "absent.toml"
    with pytest.raises(TrainConfigError, match=re.escape(f"{absent}: cannot read")):
        load(absent)
    with pytest.raises(TrainConfigError, match="not valid TOML"):
        load(_write(tmp_path, "[loader\nbatch_size = 4\n"))
    with pytest.raises(TrainConfigError, match="not valid TOML"):
        load(_write(tmp_path, "batch_size = = 4\n", name="b.toml"))
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes("[loader]\n# caf\xe9\nbatch_size = 4\n".encode("latin-1"))
    with pytest.raises(TrainConfigError, match=re.escape(f"{latin1}: not valid TOML")):
        load(latin1)
    with pytest.raises(TrainConfigError, match="cannot read"):
        load(tmp_path)  # a directory


def test_utf8_comments_load(tmp_path: Path) -> None:
    cfg = load(_write(tmp_path, "# débit cible ≥ 150\n[loader]\nbatch_size = 4\n"))
    assert cfg.loader.batch_size == 4


# --------------------------------------------------------------------------- check

METRICS = {
    "videos_per_s": 180.0,
    "rss_peak_bytes": 20 * GB,
    "shm_peak_bytes": 9 * GB,
    "wait_ms_p95": 400.0,
    "first_batch_s": 12.5,
}


def test_check_rows_min_and_max_targets() -> None:
    targets = {
        "min_videos_per_s": 150.0,
        "max_rss_gb": 24.0,
        "max_shm_gb": 8.0,
        "max_wait_ms_p95": 400.0,
        "max_first_batch_s": 60.0,
    }
    rows = check(targets, METRICS)
    assert [r["target"] for r in rows] == list(targets)
    by = {r["target"]: r for r in rows}
    assert by["min_videos_per_s"] == {
        "target": "min_videos_per_s",
        "wanted": 150.0,
        "achieved": 180.0,
        "judged_on": "rate",
        "ok": True,
    }
    assert by["max_rss_gb"]["achieved"] == pytest.approx(20.0) and by["max_rss_gb"]["ok"] is True
    assert by["max_shm_gb"]["achieved"] == pytest.approx(9.0) and by["max_shm_gb"]["ok"] is False  # missed
    assert by["max_wait_ms_p95"]["ok"] is True  # a max target met exactly passes
    assert by["max_first_batch_s"]["ok"] is True


def test_check_missed_min_target_and_absent_metric() -> None:
    rows = check({"min_videos_per_s": 200.0, "max_first_batch_s": 10.0}, {"videos_per_s": 199.9})
    assert rows[0] == {
        "target": "min_videos_per_s",
        "wanted": 200.0,
        "achieved": 199.9,
        "judged_on": "rate",
        "ok": False,
    }
    assert rows[1] == {"target": "max_first_batch_s", "wanted": 10.0, "achieved": None, "ok": False}
    assert check({"min_videos_per_s": 200.0}, {"videos_per_s": 200})[0]["ok"] is True  # met exactly


def test_min_rate_is_judged_on_the_intervals_lower_bound_like_tune() -> None:
    # tune accepts a config when its interval's lower bound reaches the target and writes that target into
    # the train.toml it suggests: validate must not pass what tune rejected on the point rate
    m = {"videos_per_s": 210.0, "videos_per_s_interval": [190.0, 230.0]}
    (row,) = check({"min_videos_per_s": 200.0}, m)
    assert row["ok"] is False and row["achieved"] == 210.0
    assert row["judged_on"] == "interval_lo" and row["interval"] == [190.0, 230.0]
    assert check({"min_videos_per_s": 190.0}, m)[0]["ok"] is True  # the bound met exactly
    assert check({"max_rss_gb": 1.0}, {**m, "rss_peak_bytes": GB})[0].get("judged_on") is None


def test_check_every_target_name_maps_to_a_metric() -> None:
    for name, (metric, scale, sense) in TARGETS.items():
        assert sense in ("min", "max") and scale > 0
        assert name.startswith(sense + "_")
        assert check({name: 1.0}, {metric: scale})[0]["ok"] is True


def test_loaded_targets_check_end_to_end(tmp_path: Path) -> None:
    cfg = load(_write(tmp_path, VALID))
    rows = check(cfg.targets, METRICS)
    assert {r["target"]: r["ok"] for r in rows} == {
        "min_videos_per_s": True,
        "max_rss_gb": True,
        "max_shm_gb": False,
        "max_wait_ms_p95": True,
        "max_first_batch_s": True,
    }


def test_dataset_table_gives_the_factory_keys(tmp_path) -> None:
    (tmp_path / "src").mkdir()
    p = tmp_path / "train.toml"
    p.write_text(
        '[loader]\nbatch_size = 4\nnum_workers = 2\n[dataset]\nfactory = "mypkg.data:build"\n'
        'path = ["src"]\n[dataset.kwargs]\nnum_frames = 8\nmode = "fast"\n'
    )
    tc = load(p)
    assert tc.dataset == {
        "factory": "mypkg.data:build",
        "factory_kwargs": {"num_frames": 8, "mode": "fast"},
        "factory_path": [str((tmp_path / "src").resolve())],
    }
    assert load_text(tmp_path, "[loader]\nbatch_size = 4\n").dataset == {}


def load_text(tmp_path, text):
    p = tmp_path / "t.toml"
    p.write_text(text)
    return load(p)


@pytest.mark.parametrize(
    "table,needle",
    [
        ('factory = "nocolon"', "[dataset] factory: expected MODULE:CALLABLE"),
        ('factory = "m:f"\npath = ["missing"]', "[dataset] path:"),
        ('factory = "m:f"\nsrc = 1', "[dataset] src: unknown key"),
        ('factory = "m:f"\n[dataset.kwargs]\n"1x" = 2', "[dataset.kwargs] 1x:"),
        ('path = ["."]', "[dataset] factory: expected a string"),
    ],
)
def test_dataset_table_errors_are_named(tmp_path, table, needle) -> None:
    with pytest.raises(TrainConfigError) as err:
        load_text(tmp_path, f"[loader]\nbatch_size = 4\n[dataset]\n{table}\n")
    assert needle in str(err.value)
