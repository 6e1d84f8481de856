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

NOTE [decoder alone]
    The decode ceiling is measured, not modelled: while the timed items run, each outermost wrapped call
    is also logged (the original function, its arguments, and which earlier call's result it was made
    on). Right after each timed item (so both see the same machine; the replay's seconds are taken out
    of the loop's time), its calls are replayed with the same arguments, unwrapped and outside
    ``__getitem__`` (a reader opened on the same file, the same frame indices, the same frames
    iterated), and timed: the decoder alone on the pipeline's own files and frames. When the pipeline
    opens decord readers at native size and its items are smaller, the same replay with the readers
    opened at the item's size (short side) measures what decoding at the crop size would gain.

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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

_HERE = os.path.abspath(__file__)


_SCALARS = (int, float, complex, str, bytes, bool, type(None), tuple, range)


@dataclass(frozen=True)
class Ref:
    """An argument that was the result of an earlier call of the same item (its slot)."""

    slot: int


@dataclass(frozen=True)
class Call:
    """One outermost decoder call as made (NOTE [decoder alone]): ``kind`` is ``call`` (``fn(*args)``),
    ``init`` (a new ``cls`` object, then ``fn(obj, *args)``) or ``next`` (``next(args[0])``); ``out`` the
    slot its result fills (``None`` for scalars); ``shape`` the result's shape when it has one."""

    name: str
    kind: str
    fn: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    out: int | None
    cls: Any = None
    shape: tuple[int, ...] | None = None


class DecodeClock:
    """Seconds spent inside wrapped decoder calls (outermost calls only); while ``log`` is a list, those
    calls are also recorded for :func:`replay`."""

    def __init__(self) -> None:
        self.total = 0.0
        self.depth = 0
        self.log: list[Call] | None = None
        self._ids: dict[int, int] = {}
        self._alive: list[Any] = []  # the item's results stay alive so their ids stay theirs

    def start_item(self, record: bool) -> None:
        self.total = 0.0
        self.log = [] if record else None
        self._ids, self._alive = {}, []

    def end_item(self) -> list[Call]:
        log = self.log or []
        self.log, self._ids, self._alive = None, {}, []
        return log

    def _arg(self, x: Any) -> Any:
        n = self._ids.get(id(x))
        return Ref(n) if n is not None else x

    def _slot(self, x: Any) -> int | None:
        if isinstance(x, _SCALARS):
            return None
        self._alive.append(x)
        self._ids[id(x)] = len(self._alive) - 1
        return len(self._alive) - 1

    def _record(self, name: str, kind: str, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        if self.log is None:
            return
        cls = None
        if kind == "init":
            cls, out, args = type(args[0]), args[0], args[1:]
        shape = getattr(out, "shape", None)
        self.log.append(
            Call(
                name,
                kind,
                fn,
                tuple(self._arg(a) for a in args),
                {k: self._arg(v) for k, v in kwargs.items()},
                self._slot(out),
                cls,
                tuple(int(d) for d in shape) if isinstance(shape, (tuple, list)) else None,
            )
        )

    def timed(self, fn: Callable[..., Any], name: str = "", init: bool = False) -> Callable[..., Any]:
        clock = self

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if clock.depth:
                return fn(*args, **kwargs)
            clock.depth += 1
            out = None
            t = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
            finally:
                clock.total += time.perf_counter() - t
                clock.depth -= 1
                clock._record(name, "init" if init else "call", fn, args, kwargs, out)
            return out

        return wrapper

    def timed_iter(self, fn: Callable[..., Any], name: str = "", init: bool = False) -> Callable[..., Any]:
        """For calls that return an iterator whose ``next`` does the work (PyAV's ``decode``/``demux``)."""
        clock = self
        inner = self.timed(fn, name)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return clock._iterate(inner(*args, **kwargs), name)

        return wrapper

    def _iterate(self, it: Any, name: str) -> Iterator[Any]:
        while True:
            if self.depth:
                try:
                    x = next(it)
                except StopIteration:
                    return
                yield x
                continue
            self.depth += 1
            x, stop = None, False
            t = time.perf_counter()
            try:
                x = next(it)
            except StopIteration:
                stop = True
            finally:
                self.total += time.perf_counter() - t
                self.depth -= 1
                self._record(f"{name}.next", "next", None, (it,), {}, x)
            if stop:
                return
            yield x


def replay(log: list[Call]) -> float:
    """Seconds to make ``log``'s calls again with the same arguments, unwrapped (NOTE [decoder alone]);
    a call that fails is skipped (its result slot stays empty), as is anything that needed its result."""
    slots: dict[int, Any] = {}

    def val(x: Any) -> Any:
        return slots.get(x.slot) if isinstance(x, Ref) else x

    t = time.perf_counter()
    for c in log:
        args = [val(a) for a in c.args]
        kwargs = {k: val(v) for k, v in c.kwargs.items()}
        out: Any = None
        try:
            if c.kind == "init":
                out = c.cls.__new__(c.cls)
                c.fn(out, *args, **kwargs)
            elif c.kind == "next":
                out = next(args[0])
            else:
                out = c.fn(*args, **kwargs)
        except Exception:  # StopIteration included: the original iteration ended there too
            out = None
        if c.out is not None:
            slots[c.out] = out
    el = time.perf_counter() - t
    slots.clear()  # readers close outside the timed span, as the originals did outside theirs
    return el


def at_size(log: list[Call], size: int) -> list[Call] | None:
    """``log`` with each decord reader opened at native size re-opened with its short side at ``size``
    (the aspect kept), when its frames (the shape of a later result made on it) are larger; ``None``
    when no reader in ``log`` decodes above ``size``."""
    out, changed = list(log), False
    for i, c in enumerate(log):
        if c.kind != "init" or not c.name.startswith("decord.VideoReader") or c.out is None:
            continue
        if int(c.kwargs.get("width", -1)) > 0 or int(c.kwargs.get("height", -1)) > 0 or len(c.args) > 2:
            continue  # already sized by the pipeline (width/height past ctx positionally too)
        hw = next(
            (d.shape[-3:-1] for d in log[i + 1 :] if d.shape and len(d.shape) >= 3 and Ref(c.out) in d.args),
            None,
        )
        if hw is None or min(hw) <= size:
            continue
        h, w = hw
        nh, nw = (size, round(w * size / h)) if h <= w else (round(h * size / w), size)
        out[i] = replace(c, kwargs={**c.kwargs, "width": int(nw), "height": int(nh)})
        changed = True
    return out if changed else None


def item_size(item: Any) -> int | None:
    """The spatial size of an item's largest array: the smaller of the two largest of its last three dims
    (``(T, H, W, C)`` and ``(C, T, H, W)`` alike)."""
    best: tuple[int, int] | None = None

    def walk(x: Any) -> None:
        nonlocal best
        shape = getattr(x, "shape", None)
        if shape is not None and hasattr(x, "dtype"):
            dims = [int(d) for d in shape]
            if len(dims) >= 3:
                n = 1
                for d in dims:
                    n *= d
                if best is None or n > best[0]:
                    best = (n, sorted(dims[-3:])[-2])
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    walk(item)
    return best[1] if best else None


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
            full = ".".join(filter(None, (mod_name, path, name)))
            try:
                setattr(owner, name, wrap(fn, full, name == "__init__"))
            except (AttributeError, TypeError):  # an extension type that refuses new attributes
                continue
            done.append(full)
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
    alone: list[float] = []
    at_crop: list[float] = []
    crop: int | None = None
    replay_s = 0.0
    calls = 0
    budget, max_items = float(spec.get("item_s_budget", 4.0)), int(spec.get("max_items", 24))
    loop0 = time.perf_counter()
    while not getitem or (time.perf_counter() - loop0 < budget and len(getitem) + bs <= max_items):
        batch: list[Any] = []
        for _ in range(bs):
            clock.start_item(record=True)
            t = time.perf_counter()
            x = ds[next(nxt)]
            getitem.append(time.perf_counter() - t)
            decode.append(clock.total)
            log = clock.end_item()
            batch.append(x)
            # the decoder alone on this item's calls, right away so both see the same machine (NOTE
            # [decoder alone]); the replays' seconds are taken out of the loop's time below
            t = time.perf_counter()
            alone.append(_alone(clock, [log]))
            calls += len(log)
            if crop is None:
                crop = item_size(x)
            if crop and (sized := at_size(log, crop)) is not None:
                at_crop.append(_alone(clock, [sized]))
            replay_s += time.perf_counter() - t
        t = time.perf_counter()
        collate(batch)
        collate_s.append((time.perf_counter() - t) / bs)
        if not cached:
            cached = batch
    loop_s = time.perf_counter() - loop0 - replay_s
    out: dict[str, Any] = {"getitem_s": getitem, "decode_s": decode, "collate_s": collate_s, "loop_s": loop_s}
    out["decode_alone_s"] = sum(alone) / len(alone) if calls else None
    out["decode_calls"] = calls
    if at_crop and len(at_crop) == len(alone):  # every item's readers could be re-opened at the item's size
        out["decode_at_size"] = {"size": crop, "s": sum(at_crop) / len(at_crop)}
    k = int(spec.get("profile_items", 3))
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    for _ in range(k):
        ds[next(nxt)]
    prof.disable()
    profiled = (time.perf_counter() - t) / k
    out["wrapped"] = wrapped
    out["profile"] = {"items": k, "item_s": profiled, "hot": hot_spots(prof, k)}
    tc = spec.get("transfer")
    if tc:
        from ..data.loader import LoaderConfig

        cfg, secs = LoaderConfig.from_dict(tc), float(spec.get("transfer_s", 2.0))
        out["transfer"] = transfer_rate(cached, cfg, built.collate_fn, secs)
        if (small := as_uint8(cached)) is not None:  # a float batch: the same batch as uint8 (what would help)
            out["transfer_uint8"] = transfer_rate(small, cfg, built.collate_fn, secs)
    return out


def _alone(clock: DecodeClock, logs: list[list[Call]]) -> float:
    """Seconds per item of the decoder alone: each item's logged calls replayed (NOTE [decoder alone]);
    an item that made no decoder call counts 0. Nested wrapped calls inside a replayed one pass straight
    through (depth held at 1), so the wrappers' bookkeeping is not timed."""
    if not any(logs):
        return 0.0
    clock.depth += 1
    try:
        return sum(replay(log) for log in logs) / len(logs)
    finally:
        clock.depth -= 1


def as_uint8(items: list[Any]) -> list[Any] | None:
    """``items`` with every floating-point array made uint8 of the same shape (the bytes a uint8 pipeline
    would send); ``None`` when no array in them is floating point."""
    found = False

    def conv(x: Any) -> Any:
        nonlocal found
        dt = getattr(x, "dtype", None)
        if dt is not None and hasattr(x, "shape"):
            if getattr(dt, "is_floating_point", False):  # torch
                found = True
                import torch

                return x.to(torch.uint8)
            if getattr(dt, "kind", "") == "f":  # numpy
                found = True
                return x.astype("uint8")
            return x
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(*map(conv, x)) if hasattr(x, "_fields") else type(x)(conv(v) for v in x)
        return x

    out = [conv(x) for x in items]
    return out if found else None


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
