"""Benchmark: build the SSv2 train index at full size (168,913 entries).

Writes a synthetic 20bn-named root (labels.json with 174 classes, a train JSON
shaped like the real one, and one empty ``.webm`` per entry, created with a bare
open/close so setup takes seconds) into a temp dir, then times
``load_index(..., check_files=True/False)`` and reports the array memory next
to what the same data costs as a list of dicts.  Target: < 2 s with
check_files=True.

    python benchmarks/index_build.py [--n 168913] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from ssv2_fixtures.data.annotations import VIDEO_DIR_NAME, load_index

TRAIN_SIZE = 168_913
NUM_CLASSES = 174
TARGET_S = 2.0


def make_root(root: Path, n: int) -> None:
    templates = [f"Doing [something] number {k} with [something]" for k in range(NUM_CLASSES)]
    templates[0] = "[Something] falling like a feather or paper"
    labels = {t.replace("[", "").replace("]", ""): str(k) for k, t in enumerate(templates)}
    (root / "something-something-v2-labels.json").write_text(json.dumps(labels, indent=1))
    # Real ids are not contiguous; spread them so widths vary like the real set (1..6 digits).
    ids = [str(1 + (k * 1_317) % 220_847) for k in range(n)]
    assert len(set(ids)) == n, "synthetic ids must be unique"
    entries = [
        {
            "id": vid,
            "label": f"doing a thing number {k % NUM_CLASSES} with a pen",
            "template": templates[k % NUM_CLASSES],
            "placeholders": ["a thing", "a pen"],
        }
        for k, vid in enumerate(ids)
    ]
    (root / "something-something-v2-train.json").write_text(json.dumps(entries, indent=1))
    vdir = root / "20bn-something-something-v2"
    vdir.mkdir()
    # Empty files: the index only lists the directory.  (Hard links to one file
    # would hit ext4's 65,000-links-per-inode limit.)
    flags = os.O_CREAT | os.O_WRONLY | os.O_EXCL
    vd = str(vdir)
    for vid in ids:
        os.close(os.open(os.path.join(vd, vid + ".webm"), flags, 0o644))


def best_of(repeat: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=TRAIN_SIZE)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None, help="build the root here and keep it")
    args = ap.parse_args(argv)

    tmp = None
    if args.keep is not None:
        root = args.keep
        root.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="ssv2-index-bench-")
        root = Path(tmp)
    try:
        if not (root / "something-something-v2-train.json").exists():
            t0 = time.perf_counter()
            make_root(root, args.n)
            print(f"setup: wrote {args.n:,} entries + video files in {time.perf_counter() - t0:.2f} s ({root})")
        size_mb = (root / "something-something-v2-train.json").stat().st_size / 2**20
        print(f"train JSON: {size_mb:.1f} MiB")

        t_check, idx = best_of(args.repeat, lambda: load_index(root, "train"))
        t_nocheck, _ = best_of(args.repeat, lambda: load_index(root, "train", check_files=False))
        assert len(idx) == args.n, (len(idx), args.n)
        print(f"load_index(check_files=True):  {t_check:.3f} s (best of {args.repeat})")
        print(f"load_index(check_files=False): {t_nocheck:.3f} s (best of {args.repeat})")

        # The same split as a VideoMAE-style list file.
        lst = root / "train_list.txt"
        lst.write_text("".join(f"{VIDEO_DIR_NAME}/{idx.video_id(i)}.webm {idx.label(i)}\n" for i in range(len(idx))))
        t_list, lidx = best_of(args.repeat, lambda: load_index(root, "train", list_file=lst))
        assert len(lidx) == args.n
        print(f"load_index(list_file=..., check_files=True): {t_list:.3f} s")

        arrays = {"ids": idx.ids, "labels": idx.labels, "paths": idx.paths, "offsets": idx.offsets}
        for name, a in arrays.items():
            print(f"  {name:8s} {str(a.dtype):8s} {a.nbytes / 2**20:7.2f} MiB")
        print(f"  total             {idx.nbytes / 2**20:7.2f} MiB in 4 objects")

        # The same content as a list of dicts, the layout #13246 warns about.
        tracemalloc.start()
        as_dicts = [{"id": idx.video_id(i), "label": idx.label(i), "path": idx.path(i)} for i in range(len(idx))]
        cur, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"  (as a list of {len(as_dicts):,} dicts: {cur / 2**20:.1f} MiB in "
            f"~{4 * len(as_dicts):,} refcounted objects, each COW-copied per forked worker)"
        )
        del as_dicts

        ok = t_check < TARGET_S
        print(f"target < {TARGET_S:.1f} s with check_files=True: {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
