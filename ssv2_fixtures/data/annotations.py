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

This module imports only the stdlib and numpy: the pytest plugin and child
processes import it, and they must not pay for (or depend on) torch/decord.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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

SPLITS: tuple[str, ...] = ("train", "validation", "test")
VIDEO_DIR_NAME = "20bn-something-something-v2"
VIDEO_EXT = ".webm"

# How many missing ids an error message shows, and how many a skipping index
# remembers (enough to debug, small enough to never matter for memory).
_SHOW_MISSING = 5
_KEEP_SKIPPED = 20

_NAMINGS: dict[str, dict[str, str]] = {
    "20bn": {
        "labels": "something-something-v2-labels.json",
        **{s: f"something-something-v2-{s}.json" for s in SPLITS},
    },
    "labels": {
        "labels": "labels/labels.json",
        **{s: f"labels/{s}.json" for s in SPLITS},
    },
}

_INT_RE = re.compile(r"[+-]?[0-9]+")


# --------------------------------------------------------------------------- errors


def _rebuild_error(cls: type[AnnotationError], state: dict[str, Any]) -> AnnotationError:
    # Exceptions are pickled as cls(*args); ours take keyword-only fields, so
    # rebuild from __dict__ instead.  Needed because DataLoader workers and
    # pytest-xdist ship exceptions across processes.
    err = cls.__new__(cls)
    err.__dict__.update(state)
    err.args = (str(err),)
    return err


class AnnotationError(ValueError):
    """A problem with SSv2 annotations, located to file / entry / field.

    ``entry`` is the 0-based index into a JSON list (``entry_kind == "entry"``)
    or the 1-based line of a list file (``entry_kind == "line"``); ``None``
    when the problem is the file as a whole.
    """

    file: Path
    entry: int | None
    field: str | None
    fix: str
    problem: str
    entry_kind: str

    def __init__(
        self,
        file: os.PathLike[str] | str,
        problem: str,
        *,
        entry: int | None = None,
        field: str | None = None,
        fix: str = "",
        entry_kind: str = "entry",
    ) -> None:
        self.file = Path(file)
        self.problem = problem
        self.entry = entry
        self.field = field
        self.fix = fix
        self.entry_kind = entry_kind
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [str(self.file)]
        if self.entry is not None:
            parts.append(f"{self.entry_kind} {self.entry}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        parts.append(self.problem)
        msg = ": ".join(parts)
        if self.fix:
            msg += f". Fix: {self.fix}"
        return msg

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), dict(self.__dict__)))


class MissingVideosError(AnnotationError):
    """Annotated videos that are not on disk; raised up front, before any loading."""

    count: int
    first_ids: list[str]
    video_dir: Path

    def __init__(
        self,
        file: os.PathLike[str] | str,
        *,
        video_dir: os.PathLike[str] | str,
        count: int,
        total: int,
        first_ids: list[str],
        first_entry: int | None,
        entry_kind: str = "entry",
        dir_exists: bool = True,
    ) -> None:
        self.count = count
        self.first_ids = list(first_ids)
        self.video_dir = Path(video_dir)
        shown = ", ".join(repr(i) for i in self.first_ids)
        more = f" and {count - len(self.first_ids)} more" if count > len(self.first_ids) else ""
        if dir_exists:
            problem = (
                f"{count} of {total} videos are missing from {self.video_dir} "
                f"(first: {shown}{more})"
            )
            fix = (
                "download/extract the missing videos into that directory, or pass "
                "missing=\"skip\" (pytest: --ssv2-skip-missing) to drop them from the index"
            )
        else:
            problem = (
                f"the video directory {self.video_dir} does not exist, so all {count} "
                f"videos are missing (first: {shown}{more})"
            )
            fix = (
                f"extract the 20bn-something-something-v2-??.zip/tar parts so that "
                f"{self.video_dir} holds the <id>{VIDEO_EXT} files, or point the root "
                f"(--ssv2-root) / list prefix at the directory that does"
            )
        super().__init__(file, problem, entry=first_entry, field="id", fix=fix,
                         entry_kind=entry_kind)


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    """Where a dataset root keeps its annotations and videos.

    ``split_files`` holds only the split files that exist.  ``labels_file`` is
    ``None`` when the root has no labels.json (only the test split loads then).
    """

    root: Path
    naming: str  # "20bn" | "labels" | "list"
    labels_file: Path | None
    split_files: dict[str, Path]
    video_dir: Path

    def expected(self, name: str) -> Path:
        """The path ``name`` ("labels" or a split) would have under this naming."""
        if self.naming not in _NAMINGS:
            raise KeyError(f"naming {self.naming!r} has no fixed file names")
        return self.root / _NAMINGS[self.naming][name]


def _as_root(root: os.PathLike[str] | str) -> Path:
    # Absolute but not resolved: keep the user's symlinks in every path we print.
    return Path(os.path.expanduser(os.fspath(root))).absolute()


def discover(root: os.PathLike[str] | str) -> Layout:
    """Detect which annotation naming ``root`` uses.

    Raises :class:`AnnotationError` naming every file it looked for when
    neither naming is present.
    """
    root = _as_root(root)
    found: dict[str, dict[str, Path]] = {}
    for naming, names in _NAMINGS.items():
        present = {k: root / rel for k, rel in names.items() if (root / rel).is_file()}
        if present:
            found[naming] = present
    if not found:
        looked = [str(root / rel) for names in _NAMINGS.values() for rel in names.values()]
        if not root.exists():
            problem = "the SSv2 root directory does not exist"
        else:
            problem = "no SSv2 annotation files found; looked for " + ", ".join(looked)
        fix = (
            "point the root (--ssv2-root) at the directory that holds "
            "something-something-v2-{labels,train,validation,test}.json or "
            "labels/{labels,train,validation,test}.json (and the "
            f"{VIDEO_DIR_NAME}/ video directory), or pass list_file= for a list file"
        )
        if root.name == VIDEO_DIR_NAME:
            fix += f"; you passed the video directory itself, try its parent {root.parent}"
        raise AnnotationError(root, problem, field="root", fix=fix)
    # Both present (e.g. a half-migrated root): the more complete one wins, 20bn on a tie.
    naming = max(found, key=lambda n: (len(found[n]), n == "20bn"))
    present = found[naming]
    return Layout(
        root=root,
        naming=naming,
        labels_file=present.get("labels"),
        split_files={s: present[s] for s in SPLITS if s in present},
        video_dir=root / VIDEO_DIR_NAME,
    )


# --------------------------------------------------------------------------- JSON


def _read_json(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(
            path,
            f"invalid JSON at line {e.lineno} column {e.colno} (char {e.pos}): {e.msg}",
            fix="the file is truncated or hand-edited; re-extract it from the SSv2 "
            "labels archive",
        ) from None
    except UnicodeDecodeError as e:
        raise AnnotationError(
            path, f"not UTF-8 text ({e.reason} at byte {e.start})",
            fix="re-extract the file from the SSv2 labels archive",
        ) from None


def _strip_brackets(template: str) -> str:
    return template.replace("[", "").replace("]", "")


def _read_labels(path: Path) -> dict[str, int]:
    """labels.json → {template without brackets: class index}, validated as a
    permutation of 0..N-1 (values are strings in the real file; ints accepted)."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise AnnotationError(
            path, f"top level is a JSON {_json_type(data)}, expected an object "
            "mapping template -> index",
            fix="use the labels.json shipped with SSv2 ({\"Holding something next "
            "to something\": \"0\", ...})",
        )
    if not data:
        raise AnnotationError(path, "has no classes", fix="use the labels.json shipped with SSv2")
    n = len(data)
    out: dict[str, int] = {}
    owner: dict[int, str] = {}
    fix = f"values must be exactly the indices \"0\"..\"{n - 1}\", each once"
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise AnnotationError(path, f"value {value!r} is not an index", field=key, fix=fix)
        if isinstance(value, str):
            if not _INT_RE.fullmatch(value.strip()):
                raise AnnotationError(path, f"value {value!r} is not an integer string",
                                      field=key, fix=fix)
            idx = int(value)
        else:
            idx = value
        if not 0 <= idx < n:
            raise AnnotationError(path, f"index {idx} is outside 0..{n - 1} "
                                  f"({n} classes)", field=key, fix=fix)
        if idx in owner:
            raise AnnotationError(path, f"index {idx} is already used by {owner[idx]!r}",
                                  field=key, fix=fix)
        owner[idx] = key
        # Look-ups strip brackets from entry templates; strip the keys too so a
        # labels file that kept them still matches.
        out[_strip_brackets(key)] = idx
    return out


def _json_type(x: Any) -> str:
    return {dict: "object", list: "array", str: "string", int: "number", float: "number",
            bool: "boolean", type(None): "null"}.get(type(x), type(x).__name__)


# --------------------------------------------------------------------------- index


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
                f"inconsistent index: {n} ids, {len(self.labels)} labels, "
                f"{len(self.offsets)} offsets (want n+1)"
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
        return self.paths[self.offsets[i]:self.offsets[i + 1]].tobytes().decode("utf-8")

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
            root=self.root, split=self.split, source=self.source,
            ids=self.ids[:n].copy(), labels=self.labels[:n].copy(),
            paths=self.paths[:end].copy(), offsets=self.offsets[: n + 1].copy(),
            base=self.base, num_classes=self.num_classes,
            skipped_missing=self.skipped_missing, skipped_ids=self.skipped_ids,
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by the four arrays."""
        return sum(a.nbytes for a in (self.ids, self.labels, self.paths, self.offsets))

    def __repr__(self) -> str:
        return (f"SSv2Index(split={self.split!r}, n={len(self)}, "
                f"num_classes={self.num_classes}, source={str(self.source)!r}, "
                f"skipped_missing={self.skipped_missing})")


def _pack(
    ids: list[str], rels: list[str], labels: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ids_a = np.array(ids, dtype=str) if ids else np.empty(0, dtype="<U1")
    labels_a = np.array(labels, dtype=np.int64) if labels else np.empty(0, dtype=np.int64)
    joined = "".join(rels)
    blob = joined.encode("utf-8")
    if len(blob) == len(joined):  # ASCII (always, for real SSv2): char length == byte length
        lengths = np.fromiter(map(len, rels), dtype=np.int64, count=len(rels))
    else:
        lengths = np.fromiter((len(r.encode("utf-8")) for r in rels), dtype=np.int64,
                              count=len(rels))
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


def _parse_split_json(
    path: Path, split: str, labels: dict[str, int] | None, labels_file: Path | None
) -> tuple[list[str], list[int]]:
    data = _read_json(path)
    if not isinstance(data, list):
        raise AnnotationError(
            path, f"top level is a JSON {_json_type(data)}, expected an array of entries",
            fix=f"use the {split} annotation file shipped with SSv2 "
            "([{\"id\": \"78687\", \"template\": ...}, ...])",
        )
    n = len(data)
    ids: list[str] = [""] * n
    out: list[int] = [-1] * n
    want_label = split != "test"
    cache: dict[str, int] = {}  # raw template -> class; 174 distinct in 169k entries
    for i, e in enumerate(data):
        if type(e) is not dict:
            raise AnnotationError(
                path, f"is a JSON {_json_type(e)}, expected an object", entry=i,
                fix="each entry must look like {\"id\": \"78687\", \"template\": ...}",
            )
        vid = e.get("id")
        if type(vid) is not str or not vid:
            if vid is None and "id" not in e:
                problem = "is missing"
            elif isinstance(vid, str):
                problem = "is empty"
            else:
                problem = f"{vid!r} is a JSON {_json_type(vid)}, expected a non-empty string"
            raise AnnotationError(path, problem, entry=i, field="id",
                                  fix="ids are strings of the video file stem, e.g. \"78687\"")
        ids[i] = vid
        if want_label:
            t = e.get("template")
            c = cache.get(t) if isinstance(t, str) else None
            if c is None:
                c = _template_class(path, i, e, t, labels, labels_file)
                if isinstance(t, str):
                    cache[t] = c
            out[i] = c
    if len(set(ids)) != n:
        seen: set[str] = set()
        for i, vid in enumerate(ids):
            if vid in seen:
                raise AnnotationError(
                    path, f"duplicate id {vid!r}", entry=i, field="id",
                    fix="each video must appear once per split; re-extract the annotations",
                )
            seen.add(vid)
    return ids, out


def _template_class(
    path: Path, i: int, e: dict[str, Any], t: Any,
    labels: dict[str, int] | None, labels_file: Path | None,
) -> int:
    if t is None and "template" not in e:
        raise AnnotationError(path, "is missing", entry=i, field="template",
                              fix="train/validation entries need the \"template\" field; "
                              "use the annotation file shipped with SSv2")
    if not isinstance(t, str):
        raise AnnotationError(path, f"{t!r} is a JSON {_json_type(t)}, expected a string",
                              entry=i, field="template",
                              fix="use the annotation file shipped with SSv2")
    assert labels is not None and labels_file is not None
    key = _strip_brackets(t)
    c = labels.get(key)
    if c is None:
        raise AnnotationError(
            path, f"{key!r} is not in labels.json ({labels_file})", entry=i,
            field="template",
            fix="the annotation and labels files come from different releases; "
            "use the labels.json from the same archive",
        )
    return c


def _parse_list_file(path: Path) -> tuple[list[str], list[str], list[int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise AnnotationError(path, f"not UTF-8 text ({e.reason} at byte {e.start})",
                              fix="save the list file as UTF-8") from None
    rels: list[str] = []
    ids: list[str] = []
    labels: list[int] = []
    fix = "each line must be '<relative path> <label>' (or '<path>,<label>') with an integer label"
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        cols = [c.strip() for c in line.split(",")] if "," in line else line.split()
        if len(cols) != 2:
            raise AnnotationError(path, f"{len(cols)} columns in {line!r}, expected 2",
                                  entry=lineno, entry_kind="line", field="columns", fix=fix)
        rel, lab = cols
        if not rel:
            raise AnnotationError(path, f"empty path in {line!r}", entry=lineno,
                                  entry_kind="line", field="path", fix=fix)
        if not _INT_RE.fullmatch(lab):
            raise AnnotationError(path, f"{lab!r} is not an integer", entry=lineno,
                                  entry_kind="line", field="label", fix=fix)
        c = int(lab)
        if c < -1:
            raise AnnotationError(path, f"{c} is negative (only -1, 'unlabelled', is allowed)",
                                  entry=lineno, entry_kind="line", field="label", fix=fix)
        rels.append(rel)
        ids.append(os.path.splitext(os.path.basename(rel))[0])
        labels.append(c)
    return rels, ids, labels


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
    root = _as_root(root)
    if split not in SPLITS:
        raise AnnotationError(
            Path(list_file) if list_file is not None else root,
            f"unknown split {split!r}", field="split",
            fix=f"use one of {', '.join(SPLITS)}",
        )

    kind = "entry"
    if list_file is not None:
        source = Path(os.path.expanduser(os.fspath(list_file)))
        if not source.is_absolute() and not source.exists() and (root / source).exists():
            source = root / source
        source = source.absolute()
        if not source.is_file():
            raise AnnotationError(source, "list file does not exist", field="list_file",
                                  fix="pass the path of an existing '<path> <label>' list file")
        base = _as_root(list_prefix) if list_prefix is not None else root
        rels, ids, labels = _parse_list_file(source)
        kind = "line"
        num_classes = _list_num_classes(root, source, labels)
    else:
        layout = discover(root)
        source = layout.split_files.get(split) or layout.expected(split)
        if split not in layout.split_files:
            raise AnnotationError(
                source, f"annotation file for split {split!r} does not exist",
                field="split",
                fix=f"extract it from the SSv2 labels archive into {source.parent}, "
                "or pass list_file=",
            )
        if split != "test" and layout.labels_file is None:
            raise AnnotationError(
                layout.expected("labels"), "labels file does not exist", field="labels",
                fix=f"the {split} split needs labels.json to map templates to classes; "
                "extract it from the SSv2 labels archive",
            )
        label_map = _read_labels(layout.labels_file) if layout.labels_file else None
        num_classes = len(label_map) if label_map else 0
        ids, labels = _parse_split_json(source, split, label_map, layout.labels_file)
        rels = [f"{i}{VIDEO_EXT}" for i in ids]
        base = layout.video_dir

    skipped_ids: tuple[str, ...] = ()
    n_skipped = 0
    if check_files and rels:
        gone, dirs_ok = _find_missing(base, rels)
        if gone and (missing == "error" or len(gone) == len(rels)):
            # "skip" that would skip everything is a wrong root, not a few bad files.
            first = gone[0]
            entry = _line_of(source, first) if kind == "line" else first
            raise MissingVideosError(
                source, video_dir=base, count=len(gone), total=len(rels),
                first_ids=[ids[j] for j in gone[:_SHOW_MISSING]], first_entry=entry,
                entry_kind=kind, dir_exists=dirs_ok,
            )
        if gone:
            drop = set(gone)
            keep = [j for j in range(len(rels)) if j not in drop]
            skipped_ids = tuple(ids[j] for j in gone[:_KEEP_SKIPPED])
            n_skipped = len(gone)
            rels = [rels[j] for j in keep]
            ids = [ids[j] for j in keep]
            labels = [labels[j] for j in keep]

    ids_a, labels_a, paths, offsets = _pack(ids, rels, labels)
    return SSv2Index(
        root=root, split=split, source=source, ids=ids_a, labels=labels_a, paths=paths,
        offsets=offsets, base=base, num_classes=num_classes, skipped_missing=n_skipped,
        skipped_ids=skipped_ids,
    )


def _line_of(path: Path, k: int) -> int:
    """1-based line number of the k-th non-blank line (only computed on error)."""
    seen = -1
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            seen += 1
            if seen == k:
                return lineno
    return -1


def _list_num_classes(root: Path, source: Path, labels: list[int]) -> int:
    # Prefer the root's labels.json (a list file may not use every class);
    # fall back to max label + 1 for list-only roots.
    try:
        layout = discover(root)
    except AnnotationError:
        layout = None
    if layout is not None and layout.labels_file is not None:
        n = len(_read_labels(layout.labels_file))
        if max(labels, default=-1) < n:
            return n
        for j, c in enumerate(labels):
            if c >= n:
                raise AnnotationError(
                    source, f"label {c} is >= the {n} classes in {layout.labels_file}",
                    entry=_line_of(source, j), entry_kind="line", field="label",
                    fix="the list file and labels.json disagree; regenerate the list",
                )
        return n
    return max(labels, default=-1) + 1


def class_names(root: os.PathLike[str] | str) -> list[str]:
    """Class templates (brackets removed, as in labels.json) in index order."""
    layout = discover(root)
    if layout.labels_file is None:
        raise AnnotationError(layout.expected("labels"), "labels file does not exist",
                              field="labels",
                              fix="extract labels.json from the SSv2 labels archive")
    mapping = _read_labels(layout.labels_file)
    names = [""] * len(mapping)
    for name, idx in mapping.items():
        names[idx] = name
    return names
