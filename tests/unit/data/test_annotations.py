"""Unit tests for ssv2_fixtures.data.annotations, on real (tiny) files in tmp_path."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssv2_fixtures.data.annotations import (
    SPLITS,
    AnnotationError,
    Layout,
    MissingVideosError,
    SSv2Index,
    class_names,
    discover,
    load_index,
)

VIDEO_DIR = "20bn-something-something-v2"

# Three classes; the middle one starts with "[Something]" as some real ones do.
LABELS = {
    "Holding something next to something": "0",
    "Something falling like a feather or paper": "1",
    "Pushing something from left to right": "2",
}
TRAIN = [
    {
        "id": "78687",
        "label": "holding a cup next to a pen",
        "template": "Holding [something] next to [something]",
        "placeholders": ["cup", "pen"],
    },
    {
        "id": "42326",
        "label": "paper falling like paper",
        "template": "[Something] falling like a feather or paper",
        "placeholders": ["paper"],
    },
    {
        "id": "100904",
        "label": "pushing a box from left to right",
        "template": "Pushing [something] from left to right",
        "placeholders": ["box"],
    },
    {
        "id": "5",
        "label": "holding a pen next to a cup",
        "template": "Holding [something] next to [something]",
        "placeholders": ["pen", "cup"],
    },
]
VALIDATION = [
    {
        "id": "74225",
        "label": "pushing a lid from left to right",
        "template": "Pushing [something] from left to right",
        "placeholders": ["lid"],
    },
    {
        "id": "116154",
        "label": "a leaf falling like a feather or paper",
        "template": "[Something] falling like a feather or paper",
        "placeholders": ["a leaf"],
    },
]
TEST = [{"id": "1420"}, {"id": "17"}]

FILES = {
    "20bn": {k: f"something-something-v2-{k}.json" for k in ("labels", *SPLITS)},
    "labels": {k: f"labels/{k}.json" for k in ("labels", *SPLITS)},
}


def make_root(
    root: Path,
    naming: str = "20bn",
    *,
    labels: Any = None,
    train: Any = None,
    validation: Any = None,
    test: Any = None,
    videos: bool = True,
    skip_videos: tuple[str, ...] = (),
) -> Path:
    """Write a fake SSv2 root (annotations + empty .webm files) and return it."""
    content = {
        "labels": LABELS if labels is None else labels,
        "train": TRAIN if train is None else train,
        "validation": VALIDATION if validation is None else validation,
        "test": TEST if test is None else test,
    }
    for key, rel in FILES[naming].items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        value = content[key]
        p.write_text(value if isinstance(value, str) else json.dumps(value))
    if videos:
        vdir = root / VIDEO_DIR
        vdir.mkdir(exist_ok=True)
        for entries in (content["train"], content["validation"], content["test"]):
            if not isinstance(entries, list):
                continue
            for e in entries:
                if isinstance(e, dict) and isinstance(e.get("id"), str) and e["id"] not in skip_videos:
                    (vdir / f"{e['id']}.webm").touch()
    return root


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- loading


def test_discover_both_namings(tmp_path: Path) -> None:
    for naming in ("20bn", "labels"):
        root = make_root(tmp_path / naming, naming)
        lay = discover(root)
        assert isinstance(lay, Layout)
        assert lay.naming == naming
        assert lay.labels_file == root / FILES[naming]["labels"]
        assert lay.split_files == {s: root / FILES[naming][s] for s in SPLITS}
        assert lay.video_dir == root / VIDEO_DIR


def test_both_namings_give_same_index(tmp_path: Path) -> None:
    a = load_index(make_root(tmp_path / "a", "20bn"), "train")
    b = load_index(make_root(tmp_path / "b", "labels"), "train")
    assert a.source.name == "something-something-v2-train.json"
    assert b.source == tmp_path / "b" / "labels" / "train.json"
    for name in ("ids", "labels", "paths", "offsets"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.num_classes == b.num_classes == 3
    assert class_names(tmp_path / "a") == class_names(tmp_path / "b") == list(LABELS)


def test_labels_from_templates(tmp_path: Path) -> None:
    idx = load_index(make_root(tmp_path), "train")
    assert idx.labels.tolist() == [0, 1, 2, 0]  # "[Something] falling ..." -> 1
    val = load_index(tmp_path, "validation")
    assert val.labels.tolist() == [2, 1]
    assert val.video_id(1) == "116154"


def test_labels_json_accepts_int_values(tmp_path: Path) -> None:
    root = make_root(tmp_path, labels={k: int(v) for k, v in LABELS.items()})
    assert load_index(root, "train").labels.tolist() == [0, 1, 2, 0]


def test_test_split_labels_are_minus_one(tmp_path: Path) -> None:
    idx = load_index(make_root(tmp_path), "test")
    assert idx.ids.tolist() == ["1420", "17"]
    assert idx.labels.tolist() == [-1, -1]
    assert idx.num_classes == 3


def test_test_split_loads_without_labels_json(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    (root / FILES["20bn"]["labels"]).unlink()
    assert discover(root).labels_file is None
    assert load_index(root, "test").labels.tolist() == [-1, -1]
    with pytest.raises(AnnotationError, match="labels file does not exist"):
        load_index(root, "train")


def test_arrays_are_numpy_not_objects(tmp_path: Path) -> None:
    idx = load_index(make_root(tmp_path), "train")
    assert isinstance(idx.ids, np.ndarray) and idx.ids.dtype.kind == "U"
    assert idx.labels.dtype == np.int64
    assert idx.paths.dtype == np.uint8
    assert idx.offsets.dtype == np.int64 and len(idx.offsets) == len(idx) + 1
    for a in (idx.ids, idx.labels, idx.paths, idx.offsets):
        assert a.dtype != object
        assert not a.flags.writeable


def test_accessors_and_subset(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    idx = load_index(root, "train")
    assert len(idx) == 4
    assert idx.base == root.absolute() / VIDEO_DIR
    assert idx.path(0) == str(root.absolute() / VIDEO_DIR / "78687.webm")
    assert os.path.isabs(idx.path(2)) and os.path.exists(idx.path(2))
    assert idx.video_id(2) == "100904" and idx.label(2) == 2
    assert idx.video_id(-1) == "5" and idx.label(-1) == 0
    assert isinstance(idx.label(0), int) and isinstance(idx.video_id(0), str)
    with pytest.raises(IndexError):
        idx.path(4)
    sub = idx.subset(2)
    assert isinstance(sub, SSv2Index) and len(sub) == 2
    assert [sub.path(i) for i in range(2)] == [idx.path(i) for i in range(2)]
    assert sub.labels.tolist() == [0, 1] and sub.split == "train"
    assert len(idx.subset(100)) == 4 and len(idx.subset(0)) == 0
    assert "n=4" in repr(idx)


def test_index_pickles(tmp_path: Path) -> None:
    # Spawned DataLoader workers receive the index by pickle.
    idx = load_index(make_root(tmp_path), "train")
    back = pickle.loads(pickle.dumps(idx))
    assert [back.path(i) for i in range(len(back))] == [idx.path(i) for i in range(len(idx))]
    np.testing.assert_array_equal(back.labels, idx.labels)


def test_check_files_false_needs_no_videos(tmp_path: Path) -> None:
    root = make_root(tmp_path, videos=False)
    assert len(load_index(root, "train", check_files=False)) == 4
    with pytest.raises(MissingVideosError, match="does not exist"):
        load_index(root, "train")


# ----------------------------------------------------------------------------- list files


def test_list_file_space_and_comma_blank_lines(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    spaced = write(tmp_path / "train_space.txt", f"{VIDEO_DIR}/78687.webm 0\n\n  {VIDEO_DIR}/42326.webm\t1  \n\n")
    comma = write(tmp_path / "train_comma.csv", f"{VIDEO_DIR}/78687.webm,0\n\n{VIDEO_DIR}/42326.webm, 1\n")
    a = load_index(root, "train", list_file=spaced)
    b = load_index(root, "train", list_file=comma)
    for idx in (a, b):
        assert idx.ids.tolist() == ["78687", "42326"]
        assert idx.labels.tolist() == [0, 1]
        assert idx.base == root.absolute()
        assert idx.path(1) == str(root.absolute() / VIDEO_DIR / "42326.webm")
        assert idx.num_classes == 3  # from the root's labels.json
    assert a.source == spaced and b.source == comma


def test_list_file_with_prefix(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    lst = write(tmp_path / "val.txt", "74225.webm 2\n116154.webm 1\n")
    idx = load_index(root, "validation", list_file=lst, list_prefix=root / VIDEO_DIR)
    assert idx.base == (root / VIDEO_DIR).absolute()
    assert idx.path(0) == str((root / VIDEO_DIR / "74225.webm").absolute())
    assert idx.labels.tolist() == [2, 1]
    # Without the prefix the paths resolve against the root, where they are not.
    with pytest.raises(MissingVideosError):
        load_index(root, "validation", list_file=lst)


def test_list_file_relative_to_root_and_no_labels_json(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / "videos" / name).touch()
    write(tmp_path / "lists" / "train.txt", "videos/a.mp4 4\nvideos/b.mp4 7\n")
    idx = load_index(tmp_path, "train", list_file="lists/train.txt")
    assert idx.ids.tolist() == ["a", "b"]
    assert idx.num_classes == 8  # max label + 1 when the root has no labels.json


def test_list_file_label_beyond_labels_json(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    lst = write(tmp_path / "l.txt", f"{VIDEO_DIR}/78687.webm 0\n\n{VIDEO_DIR}/5.webm 3\n")
    with pytest.raises(AnnotationError) as ei:
        load_index(root, "train", list_file=lst)
    assert (ei.value.entry, ei.value.field) == (3, "label")
    assert "l.txt: line 3: field 'label'" in str(ei.value)


# ----------------------------------------------------------------------------- malformed input


def _bad_train(train: Any, **kw: Any):
    return lambda root: (make_root(root, train=train, **kw), "train")


def _bad_labels(labels: Any):
    return lambda root: (make_root(root, labels=labels), "train")


MALFORMED = {
    # name: (builder, file name, entry, field, extra substring)
    "invalid json": (
        _bad_train('[{"id": "1", "template": "x"},\n  {"id": '),
        "something-something-v2-train.json",
        None,
        None,
        "line 2 column",
    ),
    "top level not a list": (_bad_train({"id": "1"}), "something-something-v2-train.json", None, None, "object"),
    "labels top level not an object": (
        _bad_labels(list(LABELS)),
        "something-something-v2-labels.json",
        None,
        None,
        "array",
    ),
    "entry not an object": (
        _bad_train([TRAIN[0], ["78687"]]),
        "something-something-v2-train.json",
        1,
        None,
        "expected an object",
    ),
    "missing id": (
        _bad_train([TRAIN[0], TRAIN[1], {"template": TRAIN[0]["template"]}]),
        "something-something-v2-train.json",
        2,
        "id",
        "missing",
    ),
    "non-string id": (
        _bad_train([TRAIN[0], {**TRAIN[1], "id": 42326}]),
        "something-something-v2-train.json",
        1,
        "id",
        "42326",
    ),
    "empty id": (_bad_train([{**TRAIN[0], "id": ""}]), "something-something-v2-train.json", 0, "id", "empty"),
    "duplicate id": (
        _bad_train([TRAIN[0], TRAIN[1], TRAIN[0]]),
        "something-something-v2-train.json",
        2,
        "id",
        "duplicate",
    ),
    "missing template": (
        _bad_train([TRAIN[0], {"id": "42326", "label": "x"}]),
        "something-something-v2-train.json",
        1,
        "template",
        "missing",
    ),
    "non-string template": (
        _bad_train([{"id": "1", "template": 3}]),
        "something-something-v2-train.json",
        0,
        "template",
        "string",
    ),
    "template not in labels": (
        _bad_train([TRAIN[0], TRAIN[1], TRAIN[2], {"id": "9", "template": "Pushing x"}]),
        "something-something-v2-train.json",
        3,
        "template",
        "'Pushing x' is not in labels.json",
    ),
    "labels duplicate index": (
        _bad_labels({**LABELS, "Pushing something from left to right": "0"}),
        "something-something-v2-labels.json",
        None,
        "Pushing something from left to right",
        "already used",
    ),
    "labels out of range": (
        _bad_labels({**LABELS, "Pushing something from left to right": "3"}),
        "something-something-v2-labels.json",
        None,
        "Pushing something from left to right",
        "outside 0..2",
    ),
    "labels not an integer": (
        _bad_labels({**LABELS, "Holding something next to something": "x"}),
        "something-something-v2-labels.json",
        None,
        "Holding something next to something",
        "not an integer",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_json_is_one_located_error(tmp_path: Path, case: str) -> None:
    build, fname, entry, field, extra = MALFORMED[case]
    root, split = build(tmp_path)
    with pytest.raises(AnnotationError) as ei:
        load_index(root, split)
    err, msg = ei.value, str(ei.value)
    assert not isinstance(err, MissingVideosError)
    assert err.file.name == Path(fname).name and fname in msg
    assert err.entry == entry and err.field == field
    if entry is not None:
        assert f"entry {entry}: " in msg
    if field is not None:
        assert f"field {field!r}" in msg
    assert extra in msg
    assert "Fix: " in msg and err.fix


def test_error_message_format(tmp_path: Path) -> None:
    root = make_root(tmp_path, train=[{"id": "9", "template": "Pushing x"}])
    with pytest.raises(AnnotationError) as ei:
        load_index(root, "train")
    labels_file = root.absolute() / "something-something-v2-labels.json"
    assert str(ei.value).startswith(
        f"{root.absolute() / 'something-something-v2-train.json'}: entry 0: field 'template': "
        f"'Pushing x' is not in labels.json ({labels_file}). Fix: "
    )


def test_errors_pickle(tmp_path: Path) -> None:
    root = make_root(tmp_path, train=[{"id": "9", "template": "Pushing x"}])
    with pytest.raises(AnnotationError) as ei:
        load_index(root, "train")
    back = pickle.loads(pickle.dumps(ei.value))
    assert type(back) is AnnotationError and str(back) == str(ei.value)
    assert (back.entry, back.field, back.file) == (0, "template", ei.value.file)


@pytest.mark.parametrize(
    "text, line, field, extra",
    [
        ("a.webm 0\n\nb.webm 1 7\n", 3, "columns", "3 columns"),
        ("a.webm 0\nb.webm\n", 2, "columns", "1 columns"),
        ("a.webm,0,1\n", 1, "columns", "3 columns"),
        ("\n\na.webm zero\n", 3, "label", "'zero' is not an integer"),
        ("a.webm 1.5\n", 1, "label", "not an integer"),
        ("a.webm -3\n", 1, "label", "negative"),
    ],
)
def test_malformed_list_file(tmp_path: Path, text: str, line: int, field: str, extra: str) -> None:
    lst = write(tmp_path / "bad_list.txt", text)
    with pytest.raises(AnnotationError) as ei:
        load_index(tmp_path, "train", list_file=lst, check_files=False)
    err, msg = ei.value, str(ei.value)
    assert (err.entry, err.field, err.entry_kind) == (line, field, "line")
    assert "bad_list.txt" in msg and f"line {line}: field {field!r}" in msg and extra in msg


def test_unknown_split(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    with pytest.raises(AnnotationError) as ei:
        load_index(root, "val")
    assert ei.value.field == "split" and "'val'" in str(ei.value)
    assert "validation" in ei.value.fix
    assert str(root.absolute()) in str(ei.value)


def test_missing_split_file(tmp_path: Path) -> None:
    root = make_root(tmp_path, "labels")
    (root / "labels" / "validation.json").unlink()
    assert "validation" not in discover(root).split_files
    with pytest.raises(AnnotationError) as ei:
        load_index(root, "validation")
    assert ei.value.file == root.absolute() / "labels" / "validation.json"
    assert ei.value.field == "split" and "validation.json" in str(ei.value)


def test_missing_list_file(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="nope.txt.*does not exist"):
        load_index(tmp_path, "train", list_file=tmp_path / "nope.txt")


def test_discover_error_names_files(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError) as ei:
        discover(tmp_path)
    msg = str(ei.value)
    for rel in (
        "something-something-v2-labels.json",
        "something-something-v2-train.json",
        os.path.join("labels", "labels.json"),
        os.path.join("labels", "train.json"),
    ):
        assert str(tmp_path / rel) in msg
    assert ei.value.file == tmp_path and "Fix: " in msg
    with pytest.raises(AnnotationError, match="does not exist"):
        discover(tmp_path / "absent")
    with pytest.raises(AnnotationError):
        load_index(tmp_path, "train")
    with pytest.raises(AnnotationError):
        class_names(tmp_path)


def test_discover_video_dir_hint(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    with pytest.raises(AnnotationError, match="its parent"):
        discover(root / VIDEO_DIR)


# ----------------------------------------------------------------------------- missing videos


def test_missing_videos_error(tmp_path: Path) -> None:
    train = [{"id": str(k), "template": TRAIN[0]["template"]} for k in range(12)]
    gone = ("2", "3", "5", "7", "8", "10", "11")
    root = make_root(tmp_path, train=train, skip_videos=gone)
    with pytest.raises(MissingVideosError) as ei:
        load_index(root, "train")
    err, msg = ei.value, str(ei.value)
    assert isinstance(err, AnnotationError)
    assert err.count == 7 and err.first_ids == ["2", "3", "5", "7", "8"]
    assert err.entry == 2 and err.field == "id"
    assert "7 of 12 videos" in msg and "'2', '3', '5', '7', '8'" in msg and "2 more" in msg
    assert str(root.absolute() / VIDEO_DIR) in msg
    assert 'missing="skip"' in msg and "--ssv2-skip-missing" in msg
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is MissingVideosError and back.count == 7 and str(back) == msg

    idx = load_index(root, "train", missing="skip")
    assert len(idx) == 5 and idx.skipped_missing == 7
    assert idx.ids.tolist() == ["0", "1", "4", "6", "9"]
    assert idx.skipped_ids == gone
    assert all(os.path.exists(idx.path(i)) for i in range(len(idx)))


def test_missing_videos_in_list_file_reports_line(tmp_path: Path) -> None:
    root = make_root(tmp_path, skip_videos=("42326",))
    lst = write(tmp_path / "l.txt", f"\n{VIDEO_DIR}/78687.webm 0\n\n{VIDEO_DIR}/42326.webm 1\n")
    with pytest.raises(MissingVideosError) as ei:
        load_index(root, "train", list_file=lst)
    assert ei.value.entry == 4 and "l.txt: line 4: field 'id'" in str(ei.value)
    assert ei.value.first_ids == ["42326"]
    idx = load_index(root, "train", list_file=lst, missing="skip")
    assert idx.ids.tolist() == ["78687"] and idx.skipped_missing == 1


def test_skip_that_would_drop_everything_still_errors(tmp_path: Path) -> None:
    root = make_root(tmp_path, videos=False)
    (root / VIDEO_DIR).mkdir()
    with pytest.raises(MissingVideosError, match="4 of 4"):
        load_index(root, "train", missing="skip")


def test_bad_missing_argument(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing"):
        load_index(make_root(tmp_path), "train", missing="ignore")


# ----------------------------------------------------------------------------- properties

_settings = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(st.data())
def test_label_permutation_round_trips(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 12), label="classes")
    perm = data.draw(st.permutations(range(n)), label="perm")
    as_int = data.draw(st.booleans(), label="int values")
    names = [f"Doing something {k} with something" for k in range(n)]
    labels = {names[k]: (perm[k] if as_int else str(perm[k])) for k in range(n)}
    picks = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=20), label="picks")
    train = [{"id": str(j), "template": f"Doing [something] {k} with [something]"} for j, k in enumerate(picks)]
    with tempfile.TemporaryDirectory() as tmp:
        root = make_root(Path(tmp), data.draw(st.sampled_from(["20bn", "labels"])), labels=labels, train=train)
        assert class_names(root) == [names[perm.index(c)] for c in range(n)]
        idx = load_index(root, "train")
        assert idx.labels.tolist() == [perm[k] for k in picks]
        assert idx.num_classes == n


_stem = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-é", min_size=1, max_size=10)


@_settings
@given(
    rows=st.lists(
        st.tuples(
            st.lists(_stem, min_size=0, max_size=2), _stem, st.sampled_from([".webm", ".mp4", ""]), st.integers(-1, 500)
        ),
        max_size=15,
    ),
    sep=st.sampled_from([" ", "\t", ",", ", ", "   "]),
    blanks=st.lists(st.integers(0, 2), max_size=16),
)
def test_list_file_round_trips(rows: list, sep: str, blanks: list[int]) -> None:
    lines: list[str] = []
    expect = []
    for k, (dirs, stem, ext, lab) in enumerate(rows):
        lines.extend([""] * (blanks[k] if k < len(blanks) else 0))
        rel = "/".join([*dirs, stem + ext])
        lines.append(f"{rel}{sep}{lab}")
        expect.append((rel, stem, lab))
    with tempfile.TemporaryDirectory() as tmp:
        lst = write(Path(tmp) / "list.txt", "\n".join(lines) + "\n")
        idx = load_index(tmp, "train", list_file=lst, list_prefix="/data/ssv2", check_files=False)
    assert len(idx) == len(expect)
    assert [idx.path(i) for i in range(len(idx))] == [os.path.join("/data/ssv2", r) for r, _, _ in expect]
    assert idx.ids.tolist() == [s for _, s, _ in expect]
    assert idx.labels.tolist() == [lab for _, _, lab in expect]
    assert idx.num_classes == max([lab for _, _, lab in expect], default=-1) + 1
    assert idx.ids.dtype.kind == "U" and idx.labels.dtype == np.int64
