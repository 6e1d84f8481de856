"""Reading SSv2 annotation files: labels.json, the split JSON files and ``<path> <label>`` list files.

Each reader validates as it goes and raises one :class:`~ssv2_fixtures.data.layout.AnnotationError`
naming the file, the entry (0-based JSON list index, or 1-based list-file line), the field and a
fix.  :mod:`ssv2_fixtures.data.annotations` turns what they return into the numpy index.  Stdlib only.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .layout import AnnotationError

__all__ = ["read_json", "read_labels", "strip_brackets", "json_type", "parse_split_json", "parse_list_file", "line_of"]

_INT_RE = re.compile(r"[+-]?[0-9]+")


def read_json(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(
            path,
            f"invalid JSON at line {e.lineno} column {e.colno} (char {e.pos}): {e.msg}",
            fix="the file is truncated or hand-edited; re-extract it from the SSv2 labels archive",
        ) from None
    except UnicodeDecodeError as e:
        raise AnnotationError(
            path,
            f"not UTF-8 text ({e.reason} at byte {e.start})",
            fix="re-extract the file from the SSv2 labels archive",
        ) from None


def strip_brackets(template: str) -> str:
    return template.replace("[", "").replace("]", "")


def read_labels(path: Path) -> dict[str, int]:
    """labels.json → {template without brackets: class index}, validated as a
    permutation of 0..N-1 (values are strings in the real file; ints accepted)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise AnnotationError(
            path,
            f"top level is a JSON {json_type(data)}, expected an object mapping template -> index",
            fix='use the labels.json shipped with SSv2 ({"Holding something next to something": "0", ...})',
        )
    if not data:
        raise AnnotationError(path, "has no classes", fix="use the labels.json shipped with SSv2")
    n = len(data)
    out: dict[str, int] = {}
    owner: dict[int, str] = {}
    fix = f'values must be exactly the indices "0".."{n - 1}", each once'
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise AnnotationError(path, f"value {value!r} is not an index", field=key, fix=fix)
        if isinstance(value, str):
            if not _INT_RE.fullmatch(value.strip()):
                raise AnnotationError(path, f"value {value!r} is not an integer string", field=key, fix=fix)
            idx = int(value)
        else:
            idx = value
        if not 0 <= idx < n:
            raise AnnotationError(path, f"index {idx} is outside 0..{n - 1} ({n} classes)", field=key, fix=fix)
        if idx in owner:
            raise AnnotationError(path, f"index {idx} is already used by {owner[idx]!r}", field=key, fix=fix)
        owner[idx] = key
        # Look-ups strip brackets from entry templates; strip the keys too so a
        # labels file that kept them still matches.
        out[strip_brackets(key)] = idx
    return out


def json_type(x: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }.get(type(x), type(x).__name__)


def parse_split_json(
    path: Path, split: str, labels: dict[str, int] | None, labels_file: Path | None
) -> tuple[list[str], list[int]]:
    data = read_json(path)
    if not isinstance(data, list):
        raise AnnotationError(
            path,
            f"top level is a JSON {json_type(data)}, expected an array of entries",
            fix=f'use the {split} annotation file shipped with SSv2 ([{{"id": "78687", "template": ...}}, ...])',
        )
    n = len(data)
    ids: list[str] = [""] * n
    out: list[int] = [-1] * n
    want_label = split != "test"
    cache: dict[str, int] = {}  # raw template -> class; 174 distinct in 169k entries
    for i, e in enumerate(data):
        if type(e) is not dict:
            raise AnnotationError(
                path,
                f"is a JSON {json_type(e)}, expected an object",
                entry=i,
                fix='each entry must look like {"id": "78687", "template": ...}',
            )
        vid = e.get("id")
        if type(vid) is not str or not vid:
            if vid is None and "id" not in e:
                problem = "is missing"
            elif isinstance(vid, str):
                problem = "is empty"
            else:
                problem = f"{vid!r} is a JSON {json_type(vid)}, expected a non-empty string"
            raise AnnotationError(
                path, problem, entry=i, field="id", fix='ids are strings of the video file stem, e.g. "78687"'
            )
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
                    path,
                    f"duplicate id {vid!r}",
                    entry=i,
                    field="id",
                    fix="each video must appear once per split; re-extract the annotations",
                )
            seen.add(vid)
    return ids, out


def _template_class(
    path: Path,
    i: int,
    e: dict[str, Any],
    t: Any,
    labels: dict[str, int] | None,
    labels_file: Path | None,
) -> int:
    if t is None and "template" not in e:
        raise AnnotationError(
            path,
            "is missing",
            entry=i,
            field="template",
            fix='train/validation entries need the "template" field; use the annotation file shipped with SSv2',
        )
    if not isinstance(t, str):
        raise AnnotationError(
            path,
            f"{t!r} is a JSON {json_type(t)}, expected a string",
            entry=i,
            field="template",
            fix="use the annotation file shipped with SSv2",
        )
    assert labels is not None and labels_file is not None
    key = strip_brackets(t)
    c = labels.get(key)
    if c is None:
        raise AnnotationError(
            path,
            f"{key!r} is not in labels.json ({labels_file})",
            entry=i,
            field="template",
            fix="the annotation and labels files come from different releases; "
            "use the labels.json from the same archive",
        )
    return c


def parse_list_file(path: Path) -> tuple[list[str], list[str], list[int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise AnnotationError(
            path, f"not UTF-8 text ({e.reason} at byte {e.start})", fix="save the list file as UTF-8"
        ) from None
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
            raise AnnotationError(
                path,
                f"{len(cols)} columns in {line!r}, expected 2",
                entry=lineno,
                entry_kind="line",
                field="columns",
                fix=fix,
            )
        rel, lab = cols
        if not rel:
            raise AnnotationError(
                path, f"empty path in {line!r}", entry=lineno, entry_kind="line", field="path", fix=fix
            )
        if not _INT_RE.fullmatch(lab):
            raise AnnotationError(
                path, f"{lab!r} is not an integer", entry=lineno, entry_kind="line", field="label", fix=fix
            )
        c = int(lab)
        if c < -1:
            raise AnnotationError(
                path,
                f"{c} is negative (only -1, 'unlabelled', is allowed)",
                entry=lineno,
                entry_kind="line",
                field="label",
                fix=fix,
            )
        rels.append(rel)
        ids.append(os.path.splitext(os.path.basename(rel))[0])
        labels.append(c)
    return rels, ids, labels


def line_of(path: Path, k: int) -> int:
    """1-based line number of the k-th non-blank line (only computed on error)."""
    seen = -1
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            seen += 1
            if seen == k:
                return lineno
    return -1
