"""The breakdown's measurement (issue #23): one isolated W = 0 process that times where a pipeline's item
seconds go, lists its hot spots, and measures the transfer ceiling. The arithmetic is :mod:`.breakdown`.

Run as ``python -m ssv2_fixtures.run.breakdown_probe SPEC.json OUT.json`` (:func:`measure` starts it). The
spec holds the session's ``dataset`` (SSv2Clips or a user's ``--dataset-factory``), the probe's ``config``
(W = 0), the ``transfer`` config (a LoaderConfig dict with workers, or null) and time bounds.

NOTE [decoder timers]
    Decode seconds are attributed with no change to the user's code: in this process only, after one
    warm-up item has imported whatever decoder the pipeline uses, the decoder modules' entry points are
    replaced by thin timing wrappers (:func:`install_timers`): decord's ``VideoReader`` methods and
    ``NDArray.asnumpy``/``to_dlpack``; PyAV's ``av.open``, ``InputContainer.decode``/``demux`` (their
    iterators are timed per ``next``), ``VideoFrame.to_ndarray``/``reformat``/``to_image``; torchcodec's
    ``VideoDecoder`` methods. Only the outermost wrapped call counts (a depth counter), so a decoder
    method calling another is not counted twice. SSv2Clips and any factory pipeline are measured the same
    way; the configs' runs never see the wrappers (they run in other processes).

NOTE [hot spots]
    cProfile (deterministic: every Python call and every C call it can see) runs over a few items after
    the timed ones; the 5 functions with the most own time, per item, are the hot spots. Its overhead
    on this pipeline (profiled item seconds / unprofiled − 1) is measured and written into ``method``;
    the stage seconds come from the unprofiled items only.

NOTE [transfer ceiling]
    SPDL's headspace idea for the inter-process path: a dataset that returns clones of the probe's own
    items (their real structure, shapes and dtypes) goes through ``make_loader`` with the transfer config
    (workers, sharing strategy) and the pipeline's collate; its rate after the first worker round is the
    fastest this config could load if producing an item cost nothing.
"""

from __future__ import annotations

import cProfile
import functools
import json
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

_HERE = os.path.abspath(__file__)


class DecodeClock:
    """Seconds spent inside wrapped decoder calls (outermost calls only)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.depth = 0

    def timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = self

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if clock.depth:
                return fn(*args, **kwargs)
            clock.depth += 1
            t = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
            finally:
                clock.total += time.perf_counter() - t
                clock.depth -= 1
            return out

        return wrapper

    def timed_iter(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """For calls that return an iterator whose ``next`` does the work (PyAV's ``decode``/``demux``)."""
        clock = self
        inner = self.timed(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return clock._iterate(inner(*args, **kwargs))

        return wrapper

    def _iterate(self, it: Any) -> Iterator[Any]:
        step = self.timed(it.__next__)
        while True:
            try:
                x = step()
            except StopIteration:
                return
            yield x


# module -> (attribute path of a class or module, method names, iterator-returning names)
_ENTRY_POINTS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "decord",
        "VideoReader",
        ("__init__", "__len__", "__getitem__", "get_batch", "next", "seek", "seek_accurate", "get_frame_timestamp"),
        (),
    ),
    ("decord", "ndarray.NDArray", ("asnumpy", "to_dlpack"), ()),
    ("av", "", ("open",), ()),
    ("av", "container.InputContainer", (), ("decode", "demux")),
    ("av", "video.frame.VideoFrame", ("to_ndarray", "reformat", "to_image"), ()),
    ("torchcodec.decoders", "VideoDecoder", ("__init__", "__getitem__", "get_frame_at", "get_frames_at"), ()),
    (
        "torchcodec.decoders",
        "VideoDecoder",
        ("get_frames_in_range", "get_frame_played_at", "get_frames_played_at", "get_frames_played_in_range"),
        (),
    ),
)


def install_timers(clock: DecodeClock) -> list[str]:
    """Wrap the entry points of the decoder modules already imported in this process (NOTE [decoder
    timers]); returns the wrapped ``module.attr.name``s. A name a version lacks is skipped."""
    done: list[str] = []
    for mod_name, path, plain, iters in _ENTRY_POINTS:
        mod = sys.modules.get(mod_name)
        if mod is None:
            continue
        owner: Any = mod
        try:
            for part in filter(None, path.split(".")):
                owner = getattr(owner, part)
        except AttributeError:
            continue
        for name, wrap in [(n, clock.timed) for n in plain] + [(n, clock.timed_iter) for n in iters]:
            fn = getattr(owner, name, None)  # inherited too: the wrapper is set on ``owner`` itself
            if fn is None or getattr(fn, "__wrapped__", None) is not None:
                continue
            try:
                setattr(owner, name, wrap(fn))
            except (AttributeError, TypeError):  # an extension type that refuses new attributes
                continue
            done.append(".".join(filter(None, (mod_name, path, name))))
    return done


def _clone(obj: Any) -> Any:
    if hasattr(obj, "clone") and hasattr(obj, "dtype"):
        return obj.clone()
    if hasattr(obj, "copy") and hasattr(obj, "dtype"):  # numpy
        return obj.copy()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone(v) for v in obj) if not hasattr(obj, "_fields") else type(obj)(*map(_clone, obj))
    return obj


class CachedItems:
    """A map-style dataset of clones of cached items: loading costs only the copy (NOTE [transfer ceiling])."""

    def __init__(self, items: list[Any], length: int) -> None:
        self.items = items
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Any:
        return _clone(self.items[i % len(self.items)])


def transfer_rate(items: list[Any], config: Any, collate_fn: Any, seconds: float) -> dict[str, Any]:
    """Videos/s of ready-made items through ``make_loader(config)``, measured after the first worker round."""
    from ..data.batch import describe
    from ..data.loader import make_loader

    loader = make_loader(CachedItems(items, 10**6), config, endless=True, collate_fn=collate_fn)
    it = iter(loader)
    first = next(it)
    facts = describe(first, videos=config.batch_size)
    del first
    for _ in range(max(0, config.num_workers - 1)):  # the rest of the first round: worker start-up
        next(it)
    t0 = time.perf_counter()
    n = 0
    while True:
        next(it)
        n += 1
        el = time.perf_counter() - t0
        if el >= seconds and n % max(1, config.num_workers) == 0:
            break
    del it, loader
    return {
        "videos_per_s": n * config.batch_size / el,
        "bytes_per_batch": facts["bytes"],
        "batches": n,
        "seconds": el,
        "label": config.label,
    }


def hot_spots(prof: cProfile.Profile, items: int, top: int = 5) -> list[dict[str, Any]]:
    """The ``top`` functions by own time per item, this module's own wrappers left out (NOTE [hot spots])."""
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    rows = [
        (tt, file, line, name)
        for (file, line, name), (_cc, _nc, tt, _ct, _callers) in stats.items()
        if os.path.abspath(file) != _HERE and "_lsprof.Profiler" not in name
    ]
    rows.sort(reverse=True)
    return [
        {"function": name, "file": file, "line": int(line), "s_per_item": tt / items}
        for tt, file, line, name in rows[:top]
    ]


def run(spec: Mapping[str, Any]) -> dict[str, Any]:
    from .child import load  # limits, torch first with one thread, the dataset as the runs build it

    _import_s, built = load({"dataset": spec["dataset"], "config": spec["config"]}, rank=0)
    import torch.utils.data

    ds, bs = built.dataset, int(built.config.batch_size)
    collate = built.collate_fn or torch.utils.data.default_collate
    n = len(ds)
    order = [(k * 7919) % n for k in range(max(n, 1))] if n else []
    if not order:
        raise ValueError("the dataset is empty")
    nxt = iter(order * 1000)
    ds[next(nxt)]  # warm-up: lazy imports (the decoder too), first-call caches
    clock = DecodeClock()
    wrapped = install_timers(clock)
    getitem: list[float] = []
    decode: list[float] = []
    collate_s: list[float] = []
    cached: list[Any] = []
    budget, max_items = float(spec.get("item_s_budget", 4.0)), int(spec.get("max_items", 24))
    loop0 = time.perf_counter()
    while not getitem or (time.perf_counter() - loop0 < budget and len(getitem) + bs <= max_items):
        batch: list[Any] = []
        for _ in range(bs):
            clock.total = 0.0
            t = time.perf_counter()
            x = ds[next(nxt)]
            getitem.append(time.perf_counter() - t)
            decode.append(clock.total)
            batch.append(x)
        t = time.perf_counter()
        collate(batch)
        collate_s.append((time.perf_counter() - t) / bs)
        if not cached:
            cached = batch
    loop_s = time.perf_counter() - loop0
    k = int(spec.get("profile_items", 3))
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    for _ in range(k):
        ds[next(nxt)]
    prof.disable()
    profiled = (time.perf_counter() - t) / k
    out: dict[str, Any] = {
        "getitem_s": getitem,
        "decode_s": decode,
        "collate_s": collate_s,
        "loop_s": loop_s,
        "wrapped": wrapped,
        "profile": {"items": k, "item_s": profiled, "hot": hot_spots(prof, k)},
    }
    tc = spec.get("transfer")
    if tc:
        from ..data.loader import LoaderConfig

        out["transfer"] = transfer_rate(
            cached, LoaderConfig.from_dict(tc), built.collate_fn, float(spec.get("transfer_s", 2.0))
        )
    return out


def measure(spec: Mapping[str, Any], work_dir: Path, timeout_s: float = 120.0) -> dict[str, Any] | None:
    """Run :func:`run` in a fresh process (the wrappers and forks stay out of the caller); its result, or
    ``None`` with the reason in ``work_dir/breakdown.err`` when it failed."""
    work_dir.mkdir(parents=True, exist_ok=True)
    spec_path, out_path, err_path = (
        work_dir / "breakdown.spec.json",
        work_dir / "breakdown.json",
        work_dir / "breakdown.err",
    )
    spec_path.write_text(json.dumps(spec))
    out_path.unlink(missing_ok=True)
    with open(err_path, "w") as err:
        try:
            subprocess.run(
                [sys.executable, "-m", __name__, str(spec_path), str(out_path)],
                stdout=err,
                stderr=err,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            err.write(f"\nbreakdown probe: timed out after {timeout_s} s\n")
            return None
    try:
        return json.loads(out_path.read_text())
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    out = run(spec)
    tmp = Path(args[1] + ".tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, args[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
