"""What the runs ran on and loaded: the *Machine*, *Dataset* and *Pipeline probe* tables of ``summary.md``,
from results.json's ``machine``, ``dataset`` and ``probe`` records as the session wrote them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..run.units import fmt_bytes
from .fmt import md_table, num


def machine_rows(mach: Mapping[str, Any]) -> list[list[Any]]:
    """The machine facts. Under ``--emulate*`` (``machine["emulated"]``, the sandbox) every emulated limit is the
    value shown, as the one the runs were judged against, with the host's own beside it marked as the host's:
    the host's 23 GiB /dev/shm says nothing about a 64 MiB container."""
    emu = {k: v for k, v in dict(mach.get("emulated") or {}).items() if v is not None}
    target = f"emulated ({emu['profile']})" if emu.get("profile") else "emulated"

    def judged(key: str, mine: str, host: str) -> str:
        return f"{mine}, {target}: the limit judged (host: {host})" if key in emu else host

    shm_host = f"{fmt_bytes(mach.get('shm_total_bytes'))} ({fmt_bytes(mach.get('shm_free_bytes'))} free)"
    tmp_host = f"{mach.get('tmpdir', '?')} ({fmt_bytes(mach.get('tmp_free_bytes'))} free)"
    return [
        ["host", mach.get("hostname", "?")],
        ["CPU cores", judged("cpus", str(emu.get("cpus")), str(mach.get("cores", "?")))],
        [
            "RAM",
            judged("mem_bytes", f"{fmt_bytes(emu.get('mem_bytes'))} memory limit", fmt_bytes(mach.get("ram_bytes"))),
        ],
        ["/dev/shm", judged("shm_bytes", fmt_bytes(emu.get("shm_bytes")), shm_host)],
        ["TMPDIR", judged("tmp_bytes", f"a private {fmt_bytes(emu.get('tmp_bytes'))} tmpfs per run", tmp_host)],
        ["open files limit (ulimit -n)", judged("nofile", str(emu.get("nofile")), str(mach.get("nofile", "?")))],
        [
            "python / torch / decord",
            f"{mach.get('python', '?')} / {mach.get('torch', '?')} / {mach.get('decord', '?')}",
        ],
        ["platform", mach.get("platform", "?")],
        ["CUDA", "unknown (no run reported)" if mach.get("cuda") is None else "yes" if mach["cuda"] else "no"],
        ["default sharing strategy", mach.get("sharing_strategy", "?")],
    ]


def clip_of(probe: Mapping[str, Any]) -> str:
    """A user's clip as the pipeline probe measured it: frames, size and dtype read from the batches' largest
    tensor (``N×T×H×W×C``, ``N×C×T×H×W`` or ``N×T×C×H×W`` with 3 channels; N the videos × clips per video),
    and that tensor as measured; a tensor of another layout is only quoted."""
    shape, dtype = probe.get("batch_shape"), str(probe.get("batch_dtype") or "?").removeprefix("torch.")
    if not isinstance(shape, list) or not shape:
        return "not measured (the pipeline probe recorded no tensor)"
    measured = f"largest tensor of a batch of {probe.get('batch_size', '?')}: {'×'.join(map(str, shape))} {dtype}"
    clips = probe.get("clips_per_item")
    per_video = f", {num(clips, 0)} clips per video" if isinstance(clips, (int, float)) and clips != 1 else ""
    channel = next((i for i in (4, 1, 2) if len(shape) == 5 and shape[i] == 3), None)  # RGB: last, C×T, T×C
    if channel is not None:
        t, h, w = (shape[i] for i in range(1, 5) if i != channel)
        return f"{t} frames at {h}×{w} px, {dtype}{per_video} (pipeline probe; {measured})"
    return f"{measured} (pipeline probe){per_video}"


def dataset_rows(ds: Mapping[str, Any], probe: Mapping[str, Any] | None = None) -> list[list[Any]]:
    """The session's dataset. With a user's factory, --frames/--size are not what it loads: the clip is
    described from the pipeline probe's tensors (when the probe measured this factory)."""
    from ..stress.probe import probe_applies

    kind = "synthetic (generated test videos)" if ds.get("synthetic") else "real SSv2"
    if ds.get("factory"):
        kw = dict(ds.get("factory_kwargs") or {})
        call = f"`{ds['factory']}`" + (f" ({', '.join(f'{k}={v!r}' for k, v in kw.items())})" if kw else "")
        kind = f"your pipeline {call} over {kind} files"
        measured = probe is not None and probe_applies(probe, ds)
        clip = clip_of(probe) if probe is not None and measured else "not measured (no pipeline probe of this factory)"
    else:
        clip = f"{ds.get('num_frames', '?')} frames at {ds.get('size', '?')}×{ds.get('size', '?')} px"
    return [
        ["root", ds.get("root", "?")],
        ["kind", kind],
        ["split", ds.get("split", "?")],
        ["videos", ds.get("videos", "?")],
        ["codec", ds.get("codec", "?")],
        ["clip", clip],
    ]


def probe_section(probe: Mapping[str, Any]) -> list[str]:
    """results.json's ``probe`` (run.schema.PipelineProbe): what the isolated probe measured of the
    session's pipeline, as recorded."""
    per_item, bs = probe.get("bytes_per_item"), probe.get("batch_size")
    per_batch = float(per_item) * int(bs) if isinstance(per_item, (int, float)) and isinstance(bs, int) else None
    shape = probe.get("batch_shape")
    kwargs = probe.get("factory_kwargs") or {}
    call = (
        f"`{probe.get('factory')}`" + (f" ({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})" if kwargs else "")
        if probe.get("factory")
        else "the built-in dataset"
    )
    clips = probe.get("clips_per_item")
    rows = [
        ["pipeline", call],
        ["run", f"{probe.get('label', '?')}: one loading process, no workers, {probe.get('batches', '?')} batches"],
        ["bytes per batch", f"{fmt_bytes(per_batch)} (batch size {bs if bs is not None else '?'})"],
        ["bytes per video", fmt_bytes(per_item)],
        ["largest tensor", f"{'×'.join(str(x) for x in shape) if shape else '?'} {probe.get('batch_dtype') or '?'}"],
        ["clips per video", num(clips) if isinstance(clips, (int, float)) else "?"],
        ["RSS of the loading process", fmt_bytes(probe.get("rss_bytes"))],
        [
            "item rate L (one process)",
            f"{num(probe.get('items_per_s'))} videos/s (no interval: "
            f"{max(0, int(probe.get('batches') or 0) - 1)} timed batches, "
            f"too few for one)",
        ],
    ]
    return (
        [
            "Before the configurations ran, one isolated process built the pipeline and loaded a few real "
            "batches; their bytes were summed from every tensor in them (not computed from a clip size).",
            "",
        ]
        + md_table(["measured", "value"], rows)
        + [
            "",
            "The /dev/shm predictions (pre-flight, each config's budget and BudgetWarning), the `-m limits` "
            "search bounds and the recommendation's environment advice used these measured bytes per batch; "
            "its item rate L is this pipeline's own single-process rate, the base of the decode limit.",
        ]
    )
