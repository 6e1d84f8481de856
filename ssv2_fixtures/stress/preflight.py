"""Pre-flight checks (``-m quick`` and ``-m validate``): will the machine let the configs run at all?

Each check returns ``None`` when it holds, or the message that says what to change; the tests in
``ssv2_fixtures/suite/test_preflight.py`` only call and assert. The needs come from :mod:`.budget` for the
largest config this session will run.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

from ..data.decoders import decord_provider
from ..data.loader import LoaderConfig
from ..run.child import DatasetSpec
from ..run.shm import fit_advice
from ..run.units import GiB, MiB
from .budget import predict
from .campaign import available_shm, fits, session_budget
from .plans import ladder
from .session import StressSession

NOT_APPLICABLE = "no config uses the file_descriptor strategy (file_system passes no fds)"
TMPDIR_MIN_BYTES = 1 * GiB  # free room (or emulated quota) the runs' TMPDIR needs for multiprocessing/decoder files


def configs(session: StressSession) -> list[LoaderConfig]:
    """The ladder's configs, and the training config's when ``--train-config`` is given."""
    s = session.settings
    cfgs = [p.config for p in ladder(s.max_workers, sharing_strategy=s.sharing_strategy)]
    if s.train_config:
        from .traincfg import load

        cfgs.append(load(s.train_config).loader)
    return cfgs


def shm(session: StressSession, dataset: DatasetSpec) -> str | None:
    """Every config's shared memory in flight fits (:func:`.campaign.fits`, the rule each run is warned by;
    a user's pipeline: the probe's measured bytes); else the message names the largest that does not."""
    s = session.settings
    avail = available_shm(s, session.machine)
    needs = {c.label: (session_budget(session, dataset, c).shm_bytes, c.num_workers) for c in configs(session)}
    need = {label: b for label, (b, w) in needs.items() if not fits(b, w, avail)}
    if not need:
        return None
    label, peak = max(need.items(), key=lambda kv: kv[1])
    emulated = bool(s.sandbox and s.sandbox.shm_bytes)
    where = "emulated /dev/shm" if emulated else "/dev/shm free"
    worst = next(c for c in configs(session) if c.label == label)
    b = session_budget(session, dataset, worst)
    alone, change = fit_advice(
        worst.batch_size,
        worst.num_workers,
        worst.prefetch_factor,
        b.batch_bytes / max(1, worst.batch_size),
        avail,
        "the emulated /dev/shm" if emulated else "the free /dev/shm",
    )
    return (
        f"{label} needs ~{peak / MiB:.0f} MiB of shared memory in flight; {where} is {avail / MiB:.0f} MiB. "
        + (f"{alone} " if alone else "")
        + f"Run the container with --shm-size={max(1, -(-2 * peak // GiB))}g, or "
        + (change or "lower batch_size × num_workers × prefetch_factor")
    )


def tmpdir(session: StressSession) -> str | None:
    """The runs' folder (``session.runs_dir``: each run's TMPDIR lives in it; under ``--loader-tmpdir``
    when given) can be created and written, and has at least :data:`TMPDIR_MIN_BYTES` free."""
    tmp = str(session.runs_dir)
    least = f"{TMPDIR_MIN_BYTES / GiB:.0f} GiB"
    quota = session.settings.sandbox.tmp_bytes if session.settings.sandbox else None
    try:
        os.makedirs(tmp, exist_ok=True)  # in the try: an uncreatable folder is this check's message too
        with tempfile.NamedTemporaryFile(dir=tmp) as f:
            f.write(b"x" * 65536)
            f.flush()
    except OSError as exc:
        return (
            f"TMPDIR {tmp} (the runs' folder) is not writable ({exc.strerror}): set --loader-tmpdir to a writable disk"
        )
    if quota is not None:  # each run's TMPDIR is the emulated tmpfs: judge the target, not this disk
        if quota >= TMPDIR_MIN_BYTES:
            return None
        return (
            f"the emulated TMPDIR is {quota / MiB:.0f} MiB (< {least}): temp files of multiprocessing and "
            "decoders fill it; give the job's TMPDIR more room (or expect tmp_full failures)"
        )
    free = shutil.disk_usage(tmp).free
    if free >= TMPDIR_MIN_BYTES:
        return None
    return (
        f"TMPDIR {tmp} (the runs' folder) has only {free / MiB:.0f} MiB free (< {least}): temp files of "
        "multiprocessing and decoders fill it; point --loader-tmpdir at a larger disk"
    )


def nofile(session: StressSession) -> str | None:
    """``ulimit -n`` covers the file_descriptor strategy's fds; :data:`NOT_APPLICABLE` when no config uses it."""
    s = session.settings
    emulated = bool(s.sandbox and s.sandbox.nofile)
    soft = s.sandbox.nofile if s.sandbox and s.sandbox.nofile else resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    cfgs = [c for c in configs(session) if c.sharing_strategy == "file_descriptor"]
    if not cfgs:
        return NOT_APPLICABLE
    need = max(predict(c, frames=s.frames, size=s.size).fds for c in cfgs)
    if soft >= need:
        return None
    return (
        f"ulimit -n is {soft}{' (emulated)' if emulated else ''}; the file_descriptor strategy needs ~{need} here. "
        "Run `ulimit -n 65536` "
        "before training, or set torch.multiprocessing.set_sharing_strategy('file_system')"
    )


def decoder(spec: DatasetSpec, info: Mapping[str, Any]) -> str | None:
    """The decoder opens the dataset's codec and returns clips of the asked shape (in a fresh interpreter)."""
    code = (
        "import sys, json; from ssv2_fixtures.data.clips import SSv2Clips; "
        f"d = json.loads({json.dumps(json.dumps(dict(spec)))}); root = d.pop('root'); "
        "split = d.pop('split'); [d.pop(k, None) for k in ('factory', 'factory_kwargs', 'factory_path')]; "
        "ds = SSv2Clips(root, split, limit=2, **d); clip, label = ds[0]; print(tuple(clip.shape), clip.dtype)"
    )
    name = str(spec.get("decoder", "decord"))
    if name == "decord":
        provider = decord_provider()
        if provider is None:
            return "no distribution provides `import decord`: pip install decord2 (or decord 0.6.0 on x86_64)"
        name = f"decord ({provider})"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return f"{name} cannot decode {info.get('codec')} videos of {info.get('root')}:\n{r.stderr[-2000:]}"
    frames, size = int(spec.get("num_frames", 16)), int(spec.get("size", 224))
    want = f"({frames}, {size}, {size}, 3) torch.uint8"
    return None if want in r.stdout else f"the decoder returned {r.stdout.strip()!r}, expected {want}"


def torch_before_decord() -> str | None:
    """decord#251/#263: decord loaded before torch can crash at import; SSv2Clips imports torch first."""
    code = (
        "import sys; import ssv2_fixtures.data.clips as c; c._decode_decord; import decord; "
        "mods = list(sys.modules); print(mods.index('torch') < mods.index('decord'))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return r.stderr[-2000:]
    return None if r.stdout.strip() == "True" else "decord was imported before torch"
