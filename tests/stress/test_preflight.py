"""Pre-flight checks (``-m quick`` and ``-m validate``): will the machine let the configs run at all?

Each check is its own test with a message that says what to change. The needs come from
:mod:`ssv2_fixtures.stress.budget` for the largest config this session will run.
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile

import pytest

from ssv2_fixtures.stress.budget import predict
from ssv2_fixtures.stress.campaign import available_shm, session_budget
from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.stress.plans import ladder

pytestmark = [pytest.mark.quick, pytest.mark.validate]


def _configs(session) -> list[LoaderConfig]:
    s = session.settings
    cfgs = [p.config for p in ladder(s.max_workers, sharing_strategy=s.sharing_strategy)]
    if s.train_config:
        from ssv2_fixtures.stress.traincfg import load

        cfgs.append(load(s.train_config).loader)
    return cfgs


def test_shm_fits_ladder(ssv2_session, ssv2_dataset):
    s = ssv2_session.settings
    # a user's pipeline: bytes per item measured by the session's probe (ssv2_dataset ran it)
    need = {c.label: session_budget(ssv2_session, ssv2_dataset[0], c).shm_bytes for c in _configs(ssv2_session)}
    label, peak = max(need.items(), key=lambda kv: kv[1])
    avail = available_shm(s, ssv2_session.machine)
    where = "emulated /dev/shm" if s.sandbox and s.sandbox.shm_bytes else "/dev/shm free"
    assert peak <= avail, (
        f"{label} needs ~{peak / 2**20:.0f} MB of shared memory in flight; {where} is {avail / 2**20:.0f} MB. "
        f"Run the container with --shm-size={max(1, -(-2 * peak // 2**30))}g, or lower "
        "batch_size × num_workers × prefetch_factor"
    )


def test_tmpdir_writable_with_space(ssv2_session):
    s = ssv2_session.settings
    tmp = str(s.loader_tmpdir) if s.loader_tmpdir else tempfile.gettempdir()
    os.makedirs(tmp, exist_ok=True)
    try:
        with tempfile.NamedTemporaryFile(dir=tmp) as f:
            f.write(b"x" * 65536)
            f.flush()
    except OSError as exc:
        pytest.fail(f"TMPDIR {tmp} is not writable ({exc.strerror}): set --loader-tmpdir or TMPDIR to a "
                    "writable disk", pytrace=False)
    free = shutil.disk_usage(tmp).free
    assert free >= 1 * 2**30, (f"TMPDIR {tmp} has only {free / 2**20:.0f} MB free (< 1 GB): temp files of "
                               "multiprocessing and decoders fill it; point TMPDIR at a larger disk")


def test_nofile_enough_for_file_descriptor(ssv2_session):
    s = ssv2_session.settings
    soft = s.sandbox.nofile if s.sandbox and s.sandbox.nofile else resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    cfgs = [c for c in _configs(ssv2_session) if c.sharing_strategy == "file_descriptor"]
    if not cfgs:
        pytest.skip("no config uses the file_descriptor strategy (file_system passes no fds)")
    need = max(predict(c, frames=s.frames, size=s.size).fds for c in cfgs)
    assert soft >= need, (
        f"ulimit -n is {soft}; the file_descriptor strategy needs ~{need} here. Run `ulimit -n 65536` "
        "before training, or set torch.multiprocessing.set_sharing_strategy('file_system')"
    )


def test_decoder_decodes_dataset_codec(ssv2_dataset):
    spec, info = ssv2_dataset
    code = (
        "import sys, json; from ssv2_fixtures.data.clips import SSv2Clips; "
        f"d = json.loads({repr(__import__('json').dumps(dict(spec)))}); root = d.pop('root'); "
        "split = d.pop('split'); ds = SSv2Clips(root, split, limit=2, **d); "
        "clip, label = ds[0]; print(tuple(clip.shape), clip.dtype)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (f"{spec.get('decoder', 'decord')} cannot decode {info.get('codec')} videos of "
                               f"{info['root']}:\n{r.stderr[-2000:]}")
    frames, size = int(spec.get("num_frames", 16)), int(spec.get("size", 224))
    assert f"({frames}, {size}, {size}, 3) torch.uint8" in r.stdout


def test_torch_imported_before_decord():
    # decord#251/#263: decord loaded before torch can crash at import; SSv2Clips must import torch first.
    code = ("import sys; import ssv2_fixtures.data.clips as c; c._decode_decord; import decord; "
            "mods = list(sys.modules); print(mods.index('torch') < mods.index('decord'))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "True", "decord was imported before torch"
