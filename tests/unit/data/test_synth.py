"""Tests for ssv2_fixtures.data.synth: layout, schema, decodability, determinism, caching, races.

Real builds, no mocks.  Sets are small (3-8 clips) and the two main ones are
built once per module, so the whole file stays well under a minute on 2 cores.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import av
import pytest

from ssv2_fixtures.data.synth import (
    FULL_SIZE_SPLITS,
    GENERATOR_VERSION,
    MANIFEST,
    NUM_CLASSES,
    VIDEO_DIR,
    SynthSpec,
    _ensure,
    _publish,
    _split_sizes,
    build_synthetic,
    default_cache_dir,
    ensure_synthetic,
    frames_by_id,
    main,
    read_manifest,
)

SPEC_20BN = SynthSpec(videos=8, seed=1)
SPEC_LABELS = SynthSpec(videos=6, seed=2, codec="vp8", naming="labels")


@pytest.fixture(scope="module")
def set_20bn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_synthetic(tmp_path_factory.mktemp("s20bn") / "set", SPEC_20BN, processes=2)


@pytest.fixture(scope="module")
def set_labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_synthetic(tmp_path_factory.mktemp("slabels") / "set", SPEC_LABELS, processes=2)


@pytest.fixture(params=["20bn", "labels"])
def built(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(f"set_{request.param}")


def _load(root: Path, rel: str) -> Any:
    return json.loads((root / rel).read_text(encoding="utf-8"))


def _all_ids(root: Path) -> dict[str, list[str]]:
    ann = read_manifest(root)["annotations"]
    return {s: [e["id"] for e in _load(root, ann[s])] for s in ("train", "validation", "test")}


# --------------------------------------------------------------------------- layout / schema


def test_annotation_paths_follow_naming(set_20bn: Path, set_labels: Path) -> None:
    for kind in ("labels", "train", "validation", "test"):
        assert (set_20bn / f"something-something-v2-{kind}.json").is_file()
        assert (set_labels / "labels" / f"{kind}.json").is_file()
    assert (set_labels / "labels" / "test-answers.csv").is_file()
    assert not (set_20bn / "labels").exists()
    assert not list(set_labels.glob("something-something-v2-*.json"))
    assert (set_20bn / VIDEO_DIR).is_dir() and (set_labels / VIDEO_DIR).is_dir()


def test_labels_json(built: Path) -> None:
    labels = _load(built, read_manifest(built)["annotations"]["labels"])
    assert len(labels) == NUM_CLASSES == 174
    assert sorted(labels.values(), key=int) == [str(i) for i in range(174)]
    assert all(isinstance(v, str) for v in labels.values())
    assert not any("[" in k or "]" in k for k in labels)
    assert "Holding something next to something" in labels
    assert "Something falling like a rock" in labels
    assert sum(k.startswith("Something ") for k in labels) >= 3


def test_train_validation_test_schema(built: Path) -> None:
    m = read_manifest(built)
    labels = _load(built, m["annotations"]["labels"])
    for split in ("train", "validation"):
        entries = _load(built, m["annotations"][split])
        assert entries, split
        for e in entries:
            assert set(e) == {"id", "label", "template", "placeholders"}
            t = e["template"]
            assert t.replace("[", "").replace("]", "") in labels
            assert len(e["placeholders"]) == t.lower().count("[something]") >= 1
            label = t.lower()
            for ph in e["placeholders"]:
                label = label.replace("[something]", ph, 1)
            assert e["label"] == label
    test = _load(built, m["annotations"]["test"])
    assert test and all(set(e) == {"id"} for e in test)


def test_ids_splits_and_video_files(built: Path) -> None:
    m = read_manifest(built)
    ids = _all_ids(built)
    flat = [i for s in ids.values() for i in s]
    n = m["spec"]["videos"]
    assert len(flat) == len(set(flat)) == n == m["num_videos"]
    assert all(i.isdigit() and 1 <= int(i) <= 220_847 for i in flat)
    assert {s: len(v) for s, v in ids.items()} == m["splits"] == _split_sizes(n)
    assert all(len(v) >= 1 for v in ids.values())
    for i in flat:
        assert (built / VIDEO_DIR / f"{i}.webm").is_file()
    assert sorted(p.stem for p in (built / VIDEO_DIR).iterdir()) == sorted(flat)


def test_test_answers_csv(set_labels: Path) -> None:
    labels = _load(set_labels, "labels/labels.json")
    test_ids = [e["id"] for e in _load(set_labels, "labels/test.json")]
    rows = list(csv.reader((set_labels / "labels/test-answers.csv").open(), delimiter=";"))
    assert [r[0] for r in rows] == test_ids
    assert all(len(r) == 2 and r[1] in labels for r in rows)


def test_manifest(built: Path) -> None:
    m = read_manifest(built)
    spec = SPEC_20BN if m["spec"]["naming"] == "20bn" else SPEC_LABELS
    assert m["complete"] is True
    assert m["generator_version"] == GENERATOR_VERSION
    assert m["key"] == spec.key()
    assert SynthSpec(**m["spec"]) == spec
    assert len(m["clips"]) == spec.videos
    for c in m["clips"]:
        assert (built / c["file"]).is_file()
        assert c["height"] == 240 and c["fps"] == 12 and c["codec"] == spec.codec
        assert c["width"] in (320, 352, 400, 427)
        assert 24 <= c["frames"] <= 60
    assert frames_by_id(built) == {c["id"]: c["frames"] for c in m["clips"]}


def test_split_sizes_small_and_large() -> None:
    for n in range(3, 300):
        s = _split_sizes(n)
        assert sum(s.values()) == n and min(s.values()) >= 1, (n, s)
    assert _split_sizes(100) == {"train": 75, "validation": 15, "test": 10}


# --------------------------------------------------------------------------- decodability


def test_clips_decode_with_decord(built: Path) -> None:
    import decord
    import torch  # noqa: F401  (the suite's import order: torch before decord)

    for c in read_manifest(built)["clips"]:
        vr = decord.VideoReader(str(built / c["file"]), num_threads=1)
        assert len(vr) == c["frames"]
        assert vr.get_avg_fps() == pytest.approx(12.0)
        assert vr[0].shape == (240, c["width"], 3)
        assert vr[len(vr) - 1].shape == (240, c["width"], 3)


def test_clips_decode_with_pyav(built: Path) -> None:
    for c in read_manifest(built)["clips"]:
        with av.open(str(built / c["file"])) as f:
            s = f.streams.video[0]
            assert s.codec_context.name == {"vp9": "vp9", "vp8": "vp8"}[c["codec"]]
            assert s.average_rate == 12
            frames = list(f.decode(video=0))
        assert len(frames) == c["frames"]
        assert {(fr.width, fr.height) for fr in frames} == {(c["width"], 240)}


# --------------------------------------------------------------------------- determinism / spec


def test_same_seed_same_bytes(set_20bn: Path, tmp_path: Path) -> None:
    # Byte-identical: libvpx realtime with one encoder thread is deterministic and the
    # muxer runs with +bitexact (no random segment UID).
    again = build_synthetic(tmp_path / "again", SPEC_20BN, processes=1)
    files = sorted(p.relative_to(set_20bn) for p in set_20bn.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (set_20bn / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_different_seed_differs(set_20bn: Path, tmp_path: Path) -> None:
    other = build_synthetic(tmp_path / "other", SynthSpec(videos=8, seed=2), processes=2)
    assert _all_ids(other) != _all_ids(set_20bn)
    assert [c["frames"] for c in read_manifest(other)["clips"]] != [
        c["frames"] for c in read_manifest(set_20bn)["clips"]
    ]


def test_key_covers_every_field() -> None:
    assert SynthSpec(videos=8, seed=1).key() == SPEC_20BN.key()
    assert len(SPEC_20BN.key()) == 16 and int(SPEC_20BN.key(), 16) >= 0
    variants = [
        SynthSpec(),
        SynthSpec(videos=65),
        SynthSpec(codec="vp8"),
        SynthSpec(seed=1),
        SynthSpec(full_size=True),
        SynthSpec(naming="labels"),
    ]
    assert len({v.key() for v in variants}) == len(variants)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"videos": 2}, "videos"),
        ({"videos": 0}, "videos"),
        ({"codec": "h264"}, "codec"),
        ({"naming": "kinetics"}, "naming"),
        ({"seed": -1}, "seed"),
        ({"videos": 3.5}, "videos"),
    ],
)
def test_bad_spec_raises_value_error_naming_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SynthSpec(**kwargs)


def test_spec_is_frozen() -> None:
    with pytest.raises(AttributeError):
        SynthSpec().videos = 5  # type: ignore[misc]


def test_build_refuses_existing_output(set_20bn: Path) -> None:
    before = sorted(os.listdir(set_20bn.parent))
    with pytest.raises(FileExistsError, match="already exists"):
        build_synthetic(set_20bn, SPEC_20BN)
    assert sorted(os.listdir(set_20bn.parent)) == before  # no temp dir left behind


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SSV2_STRESS_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SSV2_STRESS_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "ssv2-stress"


# --------------------------------------------------------------------------- cache and races


def test_ensure_is_cached(tmp_path: Path) -> None:
    spec = SynthSpec(videos=3, seed=5)
    first = ensure_synthetic(spec, tmp_path, processes=1)
    assert first == tmp_path / f"ssv2-synth-{spec.key()}"
    st = (first / MANIFEST).stat()
    clip = first / read_manifest(first)["clips"][0]["file"]
    clip_st = clip.stat()
    second = ensure_synthetic(spec, tmp_path, processes=1)  # served from the cache: nothing rebuilt (below)
    assert second == first
    st2 = (second / MANIFEST).stat()
    assert (st2.st_ino, st2.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert (clip.stat().st_ino, clip.stat().st_mtime_ns) == (clip_st.st_ino, clip_st.st_mtime_ns)


def test_publish_loser_removes_its_copy(tmp_path: Path) -> None:
    target = tmp_path / "set"
    a, b = tmp_path / ".set.tmp-a", tmp_path / ".set.tmp-b"
    for d, tag in ((a, "a"), (b, "b")):
        d.mkdir()
        (d / "who").write_text(tag)
    assert _publish(a, target) is True
    assert _publish(b, target) is False
    assert (target / "who").read_text() == "a"
    assert sorted(os.listdir(tmp_path)) == ["set"]


_CHILD = textwrap.dedent(
    """
    import sys
    from ssv2_fixtures.data.synth import SynthSpec, _ensure
    p = _ensure(SynthSpec(videos=6, seed=7), sys.argv[1], processes=1,
                use_lock=sys.argv[2] == "lock")
    print(p)
    """
)


def _assert_intact(root: Path) -> None:
    m = read_manifest(root)
    assert m["complete"] is True
    for c in m["clips"]:
        assert (root / c["file"]).stat().st_size > 0
    for ids in _all_ids(root).values():
        for i in ids:
            assert (root / VIDEO_DIR / f"{i}.webm").is_file()


@pytest.mark.parametrize("mode", ["lock", "nolock"])
def test_two_processes_build_at_once(tmp_path: Path, mode: str) -> None:
    # "nolock" is what happens where flock is unavailable: both encode, the rename decides.
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(cache), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    paths = {out.strip() for out, _ in outs}
    assert len(paths) == 1
    root = Path(paths.pop())
    assert root == cache / f"ssv2-synth-{SynthSpec(videos=6, seed=7).key()}"
    _assert_intact(root)
    leftovers = {p.name for p in cache.iterdir()} - {root.name, root.name + ".lock"}
    assert not leftovers
    # And the in-process API agrees, without rebuilding.
    assert _ensure(SynthSpec(videos=6, seed=7), cache, 1, use_lock=True) == root


# --------------------------------------------------------------------------- full size


@pytest.mark.timeout(120)
def test_full_size_counts_and_hard_links(tmp_path: Path) -> None:
    # 220,847 hard links + ~22 MB of JSON: a few seconds, the slowest test here.
    spec = SynthSpec(videos=3, seed=3, full_size=True, naming="labels")
    root = build_synthetic(tmp_path / "full", spec, processes=1)
    ids = _all_ids(root)
    assert {s: len(v) for s, v in ids.items()} == FULL_SIZE_SPLITS
    assert FULL_SIZE_SPLITS == {"train": 168_913, "validation": 24_777, "test": 27_157}
    flat = [i for v in ids.values() for i in v]
    assert len(set(flat)) == len(flat) == 220_847
    assert set(map(int, flat)) == set(range(1, 220_848))

    m = read_manifest(root)
    assert m["splits"] == FULL_SIZE_SPLITS and m["assignment"] == "round_robin"
    assert len(m["clips"]) == 3
    # Each clip's pool files: the clip plus any byte-identical replicas made when the
    # filesystem's per-inode link limit (ext4: 65,000 < 220,847 / 3) was reached.
    pool_files = [[root / c["file"], *(root / r for r in c.get("replicas", []))] for c in m["clips"]]
    pool_ino = [{p.stat().st_ino for p in files} for files in pool_files]
    for files in pool_files:
        assert all(p.parent.name == ".pool" for p in files)
        assert all(p.stat().st_nlink > 1 for p in files)
        assert len({p.read_bytes() for p in files}) == 1
    entries = {e.name: e.inode() for e in os.scandir(root / VIDEO_DIR)}
    assert len(entries) == 220_847
    assert set(entries.values()) == set().union(*pool_ino)
    frames = frames_by_id(root)
    assert len(frames) == 220_847
    for i in ("1", "2", "3", "4", "78687", "220847"):
        k = (int(i) - 1) % 3
        assert entries[f"{i}.webm"] in pool_ino[k]
        assert frames[i] == m["clips"][k]["frames"]
        assert (root / VIDEO_DIR / f"{i}.webm").stat().st_nlink > 1


# --------------------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ssv2_fixtures.data.synth", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_builds(tmp_path: Path) -> None:
    r = _cli(str(tmp_path / "out"), "--videos", "4")
    assert r.returncode == 0, r.stderr
    m = read_manifest(tmp_path / "out")
    assert m["spec"]["videos"] == 4 and m["complete"]
    assert len(list((tmp_path / "out" / VIDEO_DIR).glob("*.webm"))) == 4


@pytest.mark.parametrize(
    ("args", "field"),
    [(["--codec", "h265"], "codec"), (["--videos", "2"], "videos"), (["--naming", "x"], "naming")],
)
def test_cli_bad_argument_exits_2(tmp_path: Path, args: list[str], field: str) -> None:
    r = _cli(str(tmp_path / "out"), "--videos", "4", *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], r.stderr
    assert not (tmp_path / "out").exists()


def test_bad_processes_raises_before_touching_disk(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="processes"):
        build_synthetic(tmp_path / "out", SynthSpec(videos=3), processes=0)
    assert not list(tmp_path.iterdir())


def test_main_in_process_refuses_existing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").mkdir()
    assert main([str(tmp_path / "out"), "--videos", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]
