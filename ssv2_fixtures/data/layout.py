"""Where an SSv2 root keeps its annotations and videos, and the error every annotation problem raises.

Two annotation namings exist in the wild and both are supported:

* ``"20bn"``:   ``<root>/something-something-v2-{labels,train,validation,test}.json``
* ``"labels"``: ``<root>/labels/{labels,train,validation,test}.json``

Videos live in ``<root>/20bn-something-something-v2/<id>.webm``.  :func:`discover` finds which
naming a root uses; :class:`AnnotationError` names file, entry and field, then a fix.  The
public names are re-exported by :mod:`ssv2_fixtures.data.annotations`.  Stdlib only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import reduce_exception

__all__ = [
    "SPLITS",
    "VIDEO_DIR_NAME",
    "VIDEO_EXT",
    "AnnotationError",
    "MissingVideosError",
    "Layout",
    "as_root",
    "discover",
]

SPLITS: tuple[str, ...] = ("train", "validation", "test")
VIDEO_DIR_NAME = "20bn-something-something-v2"
VIDEO_EXT = ".webm"

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


# --------------------------------------------------------------------------- errors


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
        return reduce_exception(self)


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
            problem = f"{count} of {total} videos are missing from {self.video_dir} (first: {shown}{more})"
            fix = (
                "download/extract the missing videos into that directory, or pass "
                'missing="skip" (pytest: --ssv2-skip-missing) to drop them from the index'
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
        super().__init__(file, problem, entry=first_entry, field="id", fix=fix, entry_kind=entry_kind)


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


def as_root(root: os.PathLike[str] | str) -> Path:
    # Absolute but not resolved: keep the user's symlinks in every path we print.
    return Path(os.path.expanduser(os.fspath(root))).absolute()


def discover(root: os.PathLike[str] | str) -> Layout:
    """Detect which annotation naming ``root`` uses.

    Raises :class:`AnnotationError` naming every file it looked for when
    neither naming is present.
    """
    root = as_root(root)
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
