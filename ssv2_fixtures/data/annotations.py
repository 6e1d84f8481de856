"""Something-Something-v2 data layer: find a dataset root, validate its
annotations, and hold the per-split index in numpy arrays.

Two annotation namings exist in the wild and both are supported:

* ``"20bn"``:   ``<root>/something-something-v2-{labels,train,validation,test}.json``
* ``"labels"``: ``<root>/labels/{labels,train,validation,test}.json``

plus VideoMAE / mmaction2 style list files (``<relative path> <label>`` per
line, separated by whitespace or a comma).  Videos live in
``<root>/20bn-something-something-v2/<id>.webm``.

Every problem with the annotations is reported as one :class:`AnnotationError`
naming the file, the entry (0-based JSON list index, or 1-based list-file line)
and the field, followed by a fix, so a broken dataset fails once, up front, and
never halfway through a stress run inside a DataLoader worker.

Why numpy and not a list of dicts: forked DataLoader workers touch the
refcount of every Python object they read, which copy-on-writes each page of a
list of dicts into every worker (pytorch#13246).  Fixed-width string/int
arrays and one byte blob are a handful of objects whose data pages are never
written, so they stay shared.

The module has three rooms: :mod:`~ssv2_fixtures.data.layout` (namings, :func:`discover`,
the errors), :mod:`~ssv2_fixtures.data.annotation_files` (reading and validating each file) and
this one (the numpy index, :func:`load_index`); the public names of all three import from here.

This module imports only the stdlib and numpy: the pytest plugin and child
processes import it, and they must not pay for (or depend on) torch/decord.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .annotation_files import line_of, parse_list_file, parse_split_json, read_labels
from .layout import (
    SPLITS,
    VIDEO_DIR_NAME,
    VIDEO_EXT,
    AnnotationError,
    Layout,
    MissingVideosError,
    as_root,
    discover,
)

__all__ = [
    "SPLITS",
    "VIDEO_DIR_NAME",
    "VIDEO_EXT",
    "AnnotationError",
    "MissingVideosError",
    "Layout",
    "SSv2Index",
    "discover",
    "load_index",
    "class_names",
]

# How many missing ids an error message shows, and how many a skipping index
# remembers (enough to debug, small enough to never matter for memory).
_SHOW_MISSING = 5
_KEEP_SKIPPED = 20


@dataclass(frozen=True, eq=False, repr=False)
class SSv2Index:
    """One split as numpy arrays (fork/COW friendly, picklable for spawn).

    ``paths`` is a uint8 blob of all relative video paths (utf-8) and path
    ``i`` is ``paths[offsets[i]:offsets[i+1]]``, relative to ``base``.
    """

    root: Path
    split: str
    source: Path
    ids: np.ndarray
    labels: np.ndarray
    paths: np.ndarray
    offsets: np.ndarray
    base: Path
    num_classes: int
    skipped_missing: int = 0
    skipped_ids: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.ids.dtype.kind != "U":
            raise TypeError(f"ids must be a fixed-width unicode array, got {self.ids.dtype}")
        if len(self.labels) != n or len(self.offsets) != n + 1:
            raise ValueError(
                f"inconsistent index: {n} ids, {len(self.labels)} labels, {len(self.offsets)} offsets (want n+1)"
            )
        if int(self.offsets[-1]) != len(self.paths):
            raise ValueError("offsets[-1] must equal the length of the path blob")
        # Read-only: the index is shared by every worker; nobody should mutate it.
        for a in (self.ids, self.labels, self.paths, self.offsets):
            a.setflags(write=False)

    def __len__(self) -> int:
        return len(self.ids)

    def _check(self, i: int) -> int:
        n = len(self.ids)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} out of range for {n} entries")
        return i

    def relpath(self, i: int) -> str:
        """Path of entry ``i`` relative to ``base``."""
        i = self._check(i)
        return self.paths[self.offsets[i] : self.offsets[i + 1]].tobytes().decode("utf-8")

    def path(self, i: int) -> str:
        """Absolute path of entry ``i``'s video."""
        return os.path.join(self.base, self.relpath(i))

    def video_id(self, i: int) -> str:
        return str(self.ids[self._check(i)])

    def label(self, i: int) -> int:
        return int(self.labels[self._check(i)])

    def subset(self, n: int) -> SSv2Index:
        """The first ``n`` entries (all of them if ``n >= len(self)``)."""
        if n < 0:
            raise ValueError(f"subset size must be >= 0, got {n}")
        n = min(int(n), len(self))
        end = int(self.offsets[n])
        # Copies, so a small subset does not pin the full arrays in memory.
        return SSv2Index(
            root=self.root,
            split=self.split,
            source=self.source,
            ids=self.ids[:n].copy(),
            labels=self.labels[:n].copy(),
            paths=self.paths[:end].copy(),
            offsets=self.offsets[: n + 1].copy(),
            base=self.base,
            num_classes=self.num_classes,
            skipped_missing=self.skipped_missing,
            skipped_ids=self.skipped_ids,
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by the four arrays."""
        return sum(a.nbytes for a in (self.ids, self.labels, self.paths, self.offsets))

    def __repr__(self) -> str:
        return (
            f"SSv2Index(split={self.split!r}, n={len(self)}, "
            f"num_classes={self.num_classes}, source={str(self.source)!r}, "
            f"skipped_missing={self.skipped_missing})"
        )


def _pack(ids: list[str], rels: list[str], labels: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ids_a = np.array(ids, dtype=str) if ids else np.empty(0, dtype="<U1")
    labels_a = np.array(labels, dtype=np.int64) if labels else np.empty(0, dtype=np.int64)
    joined = "".join(rels)
    blob = joined.encode("utf-8")
    if len(blob) == len(joined):  # ASCII (always, for real SSv2): char length == byte length
        lengths = np.fromiter(map(len, rels), dtype=np.int64, count=len(rels))
    else:
        lengths = np.fromiter((len(r.encode("utf-8")) for r in rels), dtype=np.int64, count=len(rels))
    offsets = np.zeros(len(rels) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    paths = np.frombuffer(blob, dtype=np.uint8).copy()  # copy: own, writable-then-frozen
    return ids_a, labels_a, paths, offsets


def _listdir(d: str, cache: dict[str, set[str] | None]) -> set[str] | None:
    # ONE scandir per directory instead of one stat per video: 168k stats on a
    # network filesystem take minutes, a directory listing takes a second.
    if d not in cache:
        try:
            with os.scandir(d) as it:
                cache[d] = {e.name for e in it}
        except (FileNotFoundError, NotADirectoryError):
            cache[d] = None
    return cache[d]


def _find_missing(base: Path, rels: list[str]) -> tuple[list[int], bool]:
    """Indices of entries whose file is absent; and whether all their dirs exist."""
    cache: dict[str, set[str] | None] = {}
    base_s = str(base)
    if all("/" not in r and os.sep not in r for r in rels):  # flat (SSv2 video dir)
        names = _listdir(base_s, cache)
        if names is None:
            return list(range(len(rels))), False
        return [i for i, r in enumerate(rels) if r not in names], True
    missing: list[int] = []
    dirs_ok = True
    for i, r in enumerate(rels):
        d, name = os.path.split(os.path.join(base_s, r))
        names = _listdir(d, cache)
        if names is None:
            dirs_ok = False
            missing.append(i)
        elif name not in names:
            missing.append(i)
    return missing, dirs_ok


@dataclass
class _Entries:
    """One split's entries as read from its file, before the existence check and packing."""

    source: Path
    base: Path  # the directory the relative paths are relative to
    kind: str  # "entry" (JSON list index) | "line" (list-file line)
    rels: list[str]
    ids: list[str]
    labels: list[int]
    num_classes: int


def load_index(
    root: os.PathLike[str] | str,
    split: str = "train",
    *,
    list_file: os.PathLike[str] | str | None = None,
    list_prefix: os.PathLike[str] | str | None = None,
    missing: str = "error",
    check_files: bool = True,
) -> SSv2Index:
    """Read, validate and index one split.

    ``list_file``: read a ``<path> <label>`` list instead of the JSON; paths are
    relative to ``list_prefix`` (default: ``root``).  ``missing="error"`` raises
    :class:`MissingVideosError` when any video is absent; ``"skip"`` drops those
    entries and records them in ``skipped_missing`` / ``skipped_ids``.
    ``check_files=False`` skips the existence check.
    """
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    root = as_root(root)
    if split not in SPLITS:
        raise AnnotationError(
            Path(list_file) if list_file is not None else root,
            f"unknown split {split!r}",
            field="split",
            fix=f"use one of {', '.join(SPLITS)}",
        )
    if list_file is not None:
        e = _read_list_entries(root, list_file, list_prefix)
    else:
        e = _read_split_entries(root, split)
    skipped_ids: tuple[str, ...] = ()
    n_skipped = 0
    if check_files and e.rels:
        gone = _check_videos(e, raise_on_any=missing == "error")
        if gone:
            skipped_ids = tuple(e.ids[j] for j in gone[:_KEEP_SKIPPED])
            n_skipped = len(gone)
            _drop(e, gone)
    ids_a, labels_a, paths, offsets = _pack(e.ids, e.rels, e.labels)
    return SSv2Index(
        root=root,
        split=split,
        source=e.source,
        ids=ids_a,
        labels=labels_a,
        paths=paths,
        offsets=offsets,
        base=e.base,
        num_classes=e.num_classes,
        skipped_missing=n_skipped,
        skipped_ids=skipped_ids,
    )


def _read_list_entries(
    root: Path, list_file: os.PathLike[str] | str, list_prefix: os.PathLike[str] | str | None
) -> _Entries:
    source = Path(os.path.expanduser(os.fspath(list_file)))
    if not source.is_absolute() and not source.exists() and (root / source).exists():
        source = root / source
    source = source.absolute()
    if not source.is_file():
        raise AnnotationError(
            source,
            "list file does not exist",
            field="list_file",
            fix="pass the path of an existing '<path> <label>' list file",
        )
    base = as_root(list_prefix) if list_prefix is not None else root
    rels, ids, labels = parse_list_file(source)
    return _Entries(
        source=source,
        base=base,
        kind="line",
        rels=rels,
        ids=ids,
        labels=labels,
        num_classes=_list_num_classes(root, source, labels),
    )


def _read_split_entries(root: Path, split: str) -> _Entries:
    layout = discover(root)
    source = layout.split_files.get(split) or layout.expected(split)
    if split not in layout.split_files:
        raise AnnotationError(
            source,
            f"annotation file for split {split!r} does not exist",
            field="split",
            fix=f"extract it from the SSv2 labels archive into {source.parent}, or pass list_file=",
        )
    if split != "test" and layout.labels_file is None:
        raise AnnotationError(
            layout.expected("labels"),
            "labels file does not exist",
            field="labels",
            fix=f"the {split} split needs labels.json to map templates to classes; "
            "extract it from the SSv2 labels archive",
        )
    label_map = read_labels(layout.labels_file) if layout.labels_file else None
    ids, labels = parse_split_json(source, split, label_map, layout.labels_file)
    return _Entries(
        source=source,
        base=layout.video_dir,
        kind="entry",
        rels=[f"{i}{VIDEO_EXT}" for i in ids],
        ids=ids,
        labels=labels,
        num_classes=len(label_map) if label_map else 0,
    )


def _check_videos(e: _Entries, *, raise_on_any: bool) -> list[int]:
    """Indices of entries whose video is absent; raises :class:`MissingVideosError` when any is
    (``raise_on_any``) or when all are."""
    gone, dirs_ok = _find_missing(e.base, e.rels)
    if gone and (raise_on_any or len(gone) == len(e.rels)):
        # "skip" that would skip everything is a wrong root, not a few bad files.
        first = gone[0]
        entry = line_of(e.source, first) if e.kind == "line" else first
        raise MissingVideosError(
            e.source,
            video_dir=e.base,
            count=len(gone),
            total=len(e.rels),
            first_ids=[e.ids[j] for j in gone[:_SHOW_MISSING]],
            first_entry=entry,
            entry_kind=e.kind,
            dir_exists=dirs_ok,
        )
    return gone


def _drop(e: _Entries, gone: list[int]) -> None:
    drop = set(gone)
    keep = [j for j in range(len(e.rels)) if j not in drop]
    e.rels = [e.rels[j] for j in keep]
    e.ids = [e.ids[j] for j in keep]
    e.labels = [e.labels[j] for j in keep]


def _list_num_classes(root: Path, source: Path, labels: list[int]) -> int:
    # Prefer the root's labels.json (a list file may not use every class);
    # fall back to max label + 1 for list-only roots.
    try:
        layout = discover(root)
    except AnnotationError:
        layout = None
    if layout is not None and layout.labels_file is not None:
        n = len(read_labels(layout.labels_file))
        if max(labels, default=-1) < n:
            return n
        for j, c in enumerate(labels):
            if c >= n:
                raise AnnotationError(
                    source,
                    f"label {c} is >= the {n} classes in {layout.labels_file}",
                    entry=line_of(source, j),
                    entry_kind="line",
                    field="label",
                    fix="the list file and labels.json disagree; regenerate the list",
                )
        return n
    return max(labels, default=-1) + 1


def class_names(root: os.PathLike[str] | str) -> list[str]:
    """Class templates (brackets removed, as in labels.json) in index order."""
    layout = discover(root)
    if layout.labels_file is None:
        raise AnnotationError(
            layout.expected("labels"),
            "labels file does not exist",
            field="labels",
            fix="extract labels.json from the SSv2 labels archive",
        )
    mapping = read_labels(layout.labels_file)
    names = [""] * len(mapping)
    for name, idx in mapping.items():
        names[idx] = name
    return names
