"""Re-capture ``evidence.json``: the evidence of real failures, provoked for real on this machine.

    python tests/unit/data/evidence/capture.py [NAME ...]

Each case runs one config in an isolated child (``run_config``) and stores what :func:`classify` saw:
the child's ``error`` event, the stderr tail, the exit status, the watchdog's finding and the facts
the rules read. ``tests/unit/test_outcome.py`` classifies the stored texts without running anything.
Paths and pids are kept as captured. Not collected by pytest (no ``test_`` prefix).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from ssv2_fixtures.config import LoaderConfig
from ssv2_fixtures.runner import Watchdog, dataset_spec, run_config
from ssv2_fixtures.sandbox import Sandbox
from ssv2_fixtures.synth import SynthSpec, ensure_synthetic

OUT = Path(__file__).with_name("evidence.json")
FACT_KEYS = ("cgroup_oom_kills", "mem_limit_bytes", "mem_mode", "nofile", "shm_total_bytes", "shm_need_bytes",
             "shm_free_bytes", "tmp_free_bytes", "rss_peak_bytes")


def _long_list(root: Path, n: int, dst: Path) -> str:
    vids = sorted(p.name for p in (root / "20bn-something-something-v2").iterdir())
    dst.write_text("".join(f"20bn-something-something-v2/{vids[i % len(vids)]} {i % 5}\n" for i in range(n)))
    return str(dst)


def cases(root: Path, work: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    small = dataset_spec(root, "train", size=64, num_frames=4)
    big = dataset_spec(root, "train", size=224, num_frames=16, list_file=_long_list(root, 400, work / "long.txt"))
    tiny = dataset_spec(root, "train", size=32, num_frames=2, list_file=big["list_file"])
    w2 = LoaderConfig(batch_size=2, num_workers=2)
    wd = Watchdog(startup_s=60, stall_s=3)
    zero = work / "zero"
    shutil.copytree(root, zero, ignore=shutil.ignore_patterns("*.lock"))
    train = json.loads((zero / "something-something-v2-train.json").read_text())
    (zero / "20bn-something-something-v2" / f"{train[0]['id']}.webm").write_bytes(b"")
    bad = work / "bad"
    shutil.copytree(root, bad, ignore=shutil.ignore_patterns("*.lock"))
    t = json.loads((bad / "something-something-v2-train.json").read_text())
    t[1]["template"] = "Juggling [something] that is not an SSv2 template"
    (bad / "something-something-v2-train.json").write_text(json.dumps(t))
    missing = work / "missing"
    shutil.copytree(root, missing, ignore=shutil.ignore_patterns("*.lock"))
    (missing / "20bn-something-something-v2" / f"{t[2]['id']}.webm").unlink()
    return {
        "drill_bus_error": ("bus_error", dict(dataset=small, config=w2, fault="bus_error@2")),
        "drill_segfault": ("segfault", dict(dataset=small, config=w2, fault="segfault@2")),
        "drill_killed": ("worker_killed", dict(dataset=small, config=w2, fault="killed@2")),
        "drill_fd_exhausted": ("fd_exhausted", dict(dataset=small, config=w2, fault="fd_exhausted@2")),
        "drill_hang": ("hang", dict(dataset=small, config=w2, fault="hang@4", watchdog=wd)),
        "drill_exception": ("worker_exception", dict(dataset=small, config=w2, fault="exception@2")),
        "drill_corrupt_video": ("decode_error", dict(dataset=small, config=w2, fault="corrupt_video@2")),
        "drill_tmp_fill": ("tmp_full", dict(dataset=small, config=w2, fault="tmp_fill@2",
                                            sandbox=Sandbox(tmp_bytes=8 * 2**20))),
        "shm_16m_bs32": ("shm_exhausted", dict(dataset=big, config=LoaderConfig(batch_size=32, num_workers=2),
                                               sandbox=Sandbox(shm_bytes=16 * 2**20), batches=3)),
        "nofile_128_pf100": ("fd_exhausted", dict(
            dataset=tiny, config=LoaderConfig(batch_size=1, num_workers=2, prefetch_factor=100),
            sandbox=Sandbox(nofile=128), batches=150, step_s=0.02, watchdog=Watchdog(startup_s=60, stall_s=15))),
        "cgroup_400m_bs64": ("oom_killed", dict(dataset=big, config=LoaderConfig(batch_size=64, num_workers=2),
                                                sandbox=Sandbox(mem_bytes=400 * 2**20, mem_mode="cgroup"),
                                                batches=3)),
        "rlimit_as_1g_w0": ("memory_error", dict(dataset=big, config=LoaderConfig(batch_size=128, num_workers=0),
                                                 sandbox=Sandbox(mem_bytes=2**30, mem_mode="rlimit"), batches=2)),
        "rlimit_as_1000m_w2": ("memory_error", dict(dataset=big, config=LoaderConfig(batch_size=32, num_workers=2),
                                                    sandbox=Sandbox(mem_bytes=1000 * 2**20, mem_mode="rlimit"),
                                                    batches=4)),
        "missing_video": ("data_error", dict(dataset=dataset_spec(missing, "train", size=64, num_frames=4), config=w2)),
        "bad_template": ("data_error", dict(dataset=dataset_spec(bad, "train", size=64, num_frames=4), config=w2)),
        "zero_byte_video": ("decode_error", dict(dataset=dataset_spec(zero, "train", size=64, num_frames=4),
                                                 config=w2)),
        "drill_killed_w0": ("main_crashed", dict(dataset=small, config=LoaderConfig(batch_size=2, num_workers=0),
                                                 fault="killed@2")),
        "drill_segfault_w0": ("segfault", dict(dataset=small, config=LoaderConfig(batch_size=2, num_workers=0),
                                               fault="segfault@2")),
        "bad_dataset_argument": ("unknown", dict(dataset=dataset_spec(root, "train", num_frames=0), config=w2)),
    }


def capture(name: str, expected: str, kw: dict[str, Any], work: Path) -> dict[str, Any]:
    events: list[dict[str, Any]] = []
    kw = dict(kw)
    kw.setdefault("batches", 6)
    r = run_config(kw.pop("dataset"), kw.pop("config"), kw.pop("batches"), run_dir=work / "runs",
                   on_event=lambda ev, _m: events.append(ev), **kw)
    err = next((e for e in events if e.get("ev") == "error"), None)
    o = r.outcome or {}
    ev = o.get("evidence", {})
    return {
        "name": name, "expected": expected, "captured_kind": r.kind,
        "exit_code": r.record["exit"]["code"], "exit_signal": r.record["exit"]["signal"],
        "error": {k: err[k] for k in ("batch", "type", "message", "traceback", "errno", "chain")} if err else None,
        "stderr_tail": r.record["stderr_tail"][-4000:],
        "watchdog": ev.get("watchdog"),
        "batches_done": r.metrics.get("batches", 0),
        "config": r.record["config"],
        "facts": {k: ev[k] for k in FACT_KEYS if k in ev},
    }


def main(argv: list[str]) -> int:
    root = ensure_synthetic(SynthSpec(videos=24))
    stored = json.loads(OUT.read_text()) if OUT.exists() else {}
    with tempfile.TemporaryDirectory(prefix="ssv2-evidence-") as tmp:
        work = Path(tmp)
        todo = cases(root, work)
        for name in argv or list(todo):
            expected, kw = todo[name]
            rec = capture(name, expected, kw, work)
            print(f"{name}: expected {expected}, classified {rec['captured_kind']}", flush=True)
            stored[name] = rec
    OUT.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
