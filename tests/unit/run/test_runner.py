"""The runner's own tests: every failure kind provoked for real in an isolated child, and classified.

Nothing here is mocked. Each fault is the real thing in a real child process tree: a real SIGSEGV,
SIGBUS, SIGKILL, EMFILE, ENOSPC, OOM kill, a real hang; resource limits are real (a private tmpfs on
/dev/shm or TMPDIR, RLIMIT_NOFILE, RLIMIT_AS, a cgroup memory cap). After every run, the ``run``
fixture checks that the run left nothing behind: no process of its tree, no torch shm file of its
pids, no TMPDIR, no cgroup, no mount, the host's /dev/shm the same size.

Sizes are small where the fault does not depend on them (``size=64, num_frames=4``); the resource
tests use 224² × 16 frames (the seed's clips) so the numbers are the real ones.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from ssv2_fixtures.data.loader import LoaderConfig
from ssv2_fixtures.data.synth import SynthSpec, ensure_synthetic
from ssv2_fixtures.run.faults import FAULTS, TMP_FILL_MAX_BYTES, FaultSpec
from ssv2_fixtures.run.monitor import shm_torch_files
from ssv2_fixtures.run.request import RunRequest
from ssv2_fixtures.run.runner import RunResult, Watchdog, dataset_spec, run_config
from ssv2_fixtures.run.sandbox import Sandbox, cgroup_base, unavailable

MiB = 2**20
W2 = LoaderConfig(batch_size=2, num_workers=2)
FAST = Watchdog(startup_s=90, stall_s=20)  # a fault must not wait for the generous default limits
pytestmark = pytest.mark.timeout(300)


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("SSV2_STRESS_CACHE")
    cache = Path(env).expanduser() if env else tmp_path_factory.getbasetemp() / "ssv2-cache"
    return ensure_synthetic(SynthSpec(videos=24), cache_dir=cache, processes=min(2, os.cpu_count() or 1))


@pytest.fixture(scope="module")
def long_list(root: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A list file naming the train videos over and over: full batches and epochs long enough that a
    batch size or prefetch depth larger than the tiny set is real."""
    vids = sorted(p.name for p in (root / "20bn-something-something-v2").iterdir())
    f = tmp_path_factory.mktemp("lists") / "long.txt"
    f.write_text("".join(f"20bn-something-something-v2/{vids[i % len(vids)]} {i % 5}\n" for i in range(400)))
    return str(f)


@pytest.fixture
def small(root: Path) -> dict[str, Any]:
    return dataset_spec(root, "train", size=64, num_frames=4)


@pytest.fixture
def big(root: Path, long_list: str) -> dict[str, Any]:
    return dataset_spec(root, "train", size=224, num_frames=16, list_file=long_list)


def _shm_size() -> int:
    st = os.statvfs("/dev/shm")
    return st.f_blocks * st.f_frsize


def _our_cgroups() -> list[str]:
    base = cgroup_base()
    mine = f"ssv2-stress-{os.getpid()}-"  # this process's (pytest-xdist runs others beside it)
    return sorted(p.name for p in base[1].iterdir() if p.name.startswith(mine)) if base else []


def _host_mounts() -> int:
    return sum(" /dev/shm " in ln for ln in Path("/proc/self/mounts").read_text().splitlines())


def _alive(pids: list[int], before: float) -> list[psutil.Process]:
    """Processes with these pids that existed when the run ended (a later process may reuse a pid)."""
    out = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.create_time() <= before and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            continue
    return out


def check_isolation(r: RunResult, pre_children: set[int], host: dict[str, Any]) -> None:
    """What must hold after any run, passed or crashed."""
    me = psutil.Process()
    assert me.is_running() and me.pid == os.getpid()
    ended = time.time()
    pids = r.record["pids"]
    assert pids, "the monitor saw no process of the tree"
    deadline = time.time() + 5.0
    while True:  # allow a brief wait: a process may still be on its way out
        extra = [p for p in me.children(recursive=True) if p.pid not in pre_children]
        left = _alive(pids, ended)
        if not extra and not left or time.time() > deadline:
            break
        time.sleep(0.1)
    assert not extra, f"descendants of the test process remain: {extra}"
    assert not left, f"processes of the child's tree remain: {left}"
    assert not shm_torch_files("/dev/shm", set(pids)), "torch shm files of the tree's pids remain"
    assert _shm_size() == host["shm_size"], "the host's /dev/shm changed size"
    assert _host_mounts() == host["mounts"], "a mount leaked into the test's namespace"
    assert _our_cgroups() == host["cgroups"], "a cgroup of the run remains"
    assert not (Path(r.record["run_dir"]) / "tmp").exists(), "the run's TMPDIR was not removed"
    assert not glob.glob(f"/tmp/ssv2-{os.getpid()}-*"), "the TMPDIR alias was not removed"


@pytest.fixture
def run(root: Path, tmp_path: Path) -> Iterator[Callable[..., RunResult]]:
    """``run_config`` of a :class:`RunRequest` of the arguments, into this test's folder, with
    :func:`check_isolation` after each run."""
    pre = {p.pid for p in psutil.Process().children(recursive=True)}
    host = {"shm_size": _shm_size(), "mounts": _host_mounts(), "cgroups": _our_cgroups()}
    results: list[RunResult] = []

    def _run(*args: Any, **kw: Any) -> RunResult:
        kw.setdefault("run_dir", tmp_path / "runs")
        kw.setdefault("watchdog", FAST)
        r = run_config(RunRequest(*args, **kw))
        check_isolation(r, pre, host)
        results.append(r)
        return r

    yield _run
    extra = [p for p in psutil.Process().children(recursive=True) if p.pid not in pre]
    assert not extra, f"descendants of the test process remain after the test: {extra}"


def _need(sb: Sandbox) -> None:
    if (reason := unavailable(sb)) is not None:
        pytest.skip(reason)


def _explain(r: RunResult) -> str:
    return f"{r.describe()}\n--- stderr tail ---\n{r.record['stderr_tail'][-3000:]}"


# --- every drill, for real ----------------------------------------------------------------------------

RAISING = {"exception", "fd_exhausted", "corrupt_video", "tmp_fill"}  # re-raised in order: batch == B


@pytest.mark.parametrize("drill", sorted(FAULTS))
def test_every_fault_drill_is_classified(drill: str, run: Callable[..., RunResult], small: dict) -> None:
    sandbox = None
    if drill == "tmp_fill":  # the drill refuses to fill a real disk: give it an emulated 8 MB TMPDIR
        sandbox = Sandbox(tmp_bytes=8 * MiB)
        _need(sandbox)
        assert 8 * MiB < TMP_FILL_MAX_BYTES
    at = 4 if drill == "hang" else 2
    wd = Watchdog(startup_s=60, stall_s=3) if drill == "hang" else FAST
    r = run(small, W2, 8, fault=f"{drill}@{at}", sandbox=sandbox, watchdog=wd)
    assert not r.passed
    assert r.kind == FAULTS[drill] == FaultSpec(drill, at).expected_kind, _explain(r)
    o = r.outcome
    assert o is not None and o["message"] and o["remedy"]
    # batch: what the main process received (see outcome.py): a drill that raises is re-raised in order
    assert o["batch"] == r.metrics["batches"]
    if drill in RAISING:
        assert o["batch"] == at
    else:
        assert o["batch"] <= at
    if drill == "hang":
        wdog = o["evidence"]["watchdog"]
        # the stall limit fired (not the 60 s start-up or the total limit), only once it had passed
        assert wdog["phase"] == "stall" and wdog["limit_s"] == 3 and wdog["elapsed_s"] >= 3, wdog
        assert r.metrics["batches"] >= 1 and wdog["batches_done"] == r.metrics["batches"]
        stacks = r.record["stacks"]
        assert "most recent call first" in stacks  # faulthandler's dump
        assert "in provoke" in stacks and "faults.py" in stacks, stacks[-3000:]  # the hung worker's stack
        assert "in __next__" in stacks  # and the main process waiting for it
        assert r.record["exit"]["signal"] is not None  # ended by the runner
    else:
        assert r.record["exit"]["code"] == 1 and r.record["exit"].get("error_type"), r.record["exit"]


@pytest.mark.parametrize("persistent", [False, True], ids=["fresh-workers", "persistent-workers"])
def test_a_drill_past_the_first_epoch_fires_at_its_batch(
    persistent: bool, run: Callable[..., RunResult], root: Path
) -> None:
    """5 items, BS=2: 3 batches an epoch (the last one short). ``exception@7`` is the second batch of the
    third epoch, built by a worker started for that epoch (or, persistent, one that has counted on)."""
    ds = dataset_spec(root, "train", size=64, num_frames=4, limit=5)
    cfg = LoaderConfig(batch_size=2, num_workers=2, persistent_workers=persistent)
    r = run(ds, cfg, 9, fault="exception@7")
    assert r.kind == "worker_exception" and r.outcome["batch"] == 7 == r.metrics["batches"], _explain(r)


def test_a_failed_run_reports_its_evidence(run: Callable[..., RunResult], small: dict) -> None:
    r = run(small, W2, 6, fault="segfault@2")
    assert r.kind == "segfault"
    assert r.outcome["evidence"]["worker_signal"] == "SIGSEGV"
    assert "killed by signal: Segmentation fault" in r.outcome["message"]
    assert r.record["fault"] == "segfault@2" and r.record["status"] == "failed"
    assert r.metrics["rss_peak_bytes"] > 0 and len(r.record["pids"]) >= 1
    assert "host" not in r.record  # a killed tree's CPU never reaches os.times: no host load claimed
    assert "segfault at batch" in r.describe() and "remedy:" in r.describe()


# --- limits, emulated for real ------------------------------------------------------------------------


def test_small_shm_is_shm_exhausted(run: Callable[..., RunResult], big: dict) -> None:
    sb = Sandbox(shm_bytes=16 * MiB)
    _need(sb)
    cfg = LoaderConfig(batch_size=32, num_workers=2)  # 32 × 16 × 224² × 3 = 77 MB per batch
    r = run(big, cfg, 3, sandbox=sb)
    assert r.kind == "shm_exhausted", _explain(r)
    assert "unable to allocate shared memory" in r.outcome["message"]  # torch 2.x: ENOSPC, not SIGBUS
    ev = r.outcome["evidence"]
    assert ev["shm_total_bytes"] == 16 * MiB and ev["shm_need_bytes"] > 16 * MiB
    assert "--shm-size=" in r.outcome["remedy"]


def test_nofile_128_is_fd_exhausted_and_file_system_passes(
    run: Callable[..., RunResult], root: Path, long_list: str
) -> None:
    """128 open files, file_descriptor strategy, ~200 batches in flight (BS=1, W=2, prefetch 100,
    a slow consumer): every batch holds fds in its worker until the main process takes it."""
    sb = Sandbox(nofile=128)
    ds = dataset_spec(root, "train", size=32, num_frames=2, list_file=long_list)
    wd = Watchdog(startup_s=90, stall_s=15)  # DESIGN.md: this can also hang; the watchdog would end it
    fd = LoaderConfig(batch_size=1, num_workers=2, prefetch_factor=100)
    r = run(ds, fd, 150, sandbox=sb, step_s=0.02, watchdog=wd)
    assert r.kind == "fd_exhausted", _explain(r)
    assert r.outcome["evidence"]["nofile"] == 128
    assert "file_system" in r.outcome["remedy"]
    fs = LoaderConfig(batch_size=1, num_workers=2, prefetch_factor=100, sharing_strategy="file_system")
    ok = run(ds, fs, 150, sandbox=sb, step_s=0.02, watchdog=wd)
    assert ok.passed, _explain(ok)


def test_memory_cap_in_a_cgroup_is_oom_killed(run: Callable[..., RunResult], big: dict) -> None:
    sb = Sandbox(mem_bytes=400 * MiB, mem_mode="cgroup")
    _need(sb)
    r = run(big, LoaderConfig(batch_size=64, num_workers=2), 3, sandbox=sb)  # ~300 MB per worker batch
    assert r.kind == "oom_killed", _explain(r)
    ev = r.outcome["evidence"]
    assert ev["cgroup_oom_kills"] >= 1 and ev["mem_limit_bytes"] == 400 * MiB
    assert r.record["exit"]["mem_mode"].startswith("cgroup-")


def _vm_after_imports() -> int:
    """Address space a fresh interpreter maps to import the child's libraries (~820 MB with CPU torch)."""
    code = (
        "import torch, decord, av, ssv2_fixtures.data.clips\n"
        "print([ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmPeak')][0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) * 1024


def test_address_space_cap_is_memory_error(run: Callable[..., RunResult], big: dict) -> None:
    """RLIMIT_AS of what the imports map + 256 MB: a 96-clip batch (2 × 231 MB: the decoded clips, then
    the collated batch) does not fit. No workers, so the failing allocation is the main process's own
    (torch's DefaultCPUAllocator, or decord's FFmpeg ENOMEM: both memory_error)."""
    limit = _vm_after_imports() + 256 * MiB
    sb = Sandbox(mem_bytes=limit, mem_mode="rlimit")
    r = run(big, LoaderConfig(batch_size=96, num_workers=0), 2, sandbox=sb)
    assert r.kind == "memory_error", _explain(r)
    assert r.record["exit"]["mem_mode"] == "rlimit_as" and r.outcome["evidence"]["mem_limit_bytes"] == limit


# --- bad data -------------------------------------------------------------------------------------------


def _copy(root: Path, dst: Path) -> Path:
    shutil.copytree(root, dst, ignore=shutil.ignore_patterns("*.lock", ".pool"))
    return dst


def _train(root: Path) -> list[dict[str, Any]]:
    return json.loads((root / "something-something-v2-train.json").read_text())


def test_missing_video_is_data_error(run: Callable[..., RunResult], root: Path, tmp_path: Path) -> None:
    copy = _copy(root, tmp_path / "copy")
    gone = _train(copy)[3]["id"]
    (copy / "20bn-something-something-v2" / f"{gone}.webm").unlink()
    r = run(dataset_spec(copy, "train", size=64, num_frames=4), W2, 4)
    assert r.kind == "data_error", _explain(r)
    assert r.record["exit"]["error_type"] == "MissingVideosError" and gone in r.outcome["message"]
    assert r.outcome["batch"] == 0
    # the same set with missing="skip" drops the video and passes
    ok = run(dataset_spec(copy, "train", size=64, num_frames=4, missing="skip"), W2, 4)
    assert ok.passed, _explain(ok)


def test_bad_annotation_is_data_error(run: Callable[..., RunResult], root: Path, tmp_path: Path) -> None:
    copy = _copy(root, tmp_path / "copy")
    entries = _train(copy)
    entries[1]["template"] = "Juggling [something] in no SSv2 template"
    (copy / "something-something-v2-train.json").write_text(json.dumps(entries))
    r = run(dataset_spec(copy, "train", size=64, num_frames=4), W2, 4)
    assert r.kind == "data_error", _explain(r)
    assert r.record["exit"]["error_type"] == "AnnotationError" and "template" in r.outcome["message"]


def test_zero_byte_video_is_decode_error(run: Callable[..., RunResult], root: Path, tmp_path: Path) -> None:
    copy = _copy(root, tmp_path / "copy")
    empty = _train(copy)[0]["id"]
    (copy / "20bn-something-something-v2" / f"{empty}.webm").write_bytes(b"")
    r = run(dataset_spec(copy, "train", size=64, num_frames=4), W2, 4)
    assert r.kind == "decode_error", _explain(r)
    assert empty in r.outcome["message"] and "0 bytes" in r.outcome["message"]
    assert r.outcome["batch"] == 0  # item 0 is in the first batch


# --- a healthy run --------------------------------------------------------------------------------------


def test_a_step_time_run_whose_loader_keeps_up_is_step_bound(run: Callable[..., RunResult], root: Path) -> None:
    """--step-time 0.25 s over 2 tiny clips per batch, 2 workers (a few ms of decoding per clip, so the loader
    keeps up even on a busy host): the record says step-bound, and its rate (videos over the loop's wall time,
    step included) cannot exceed one batch per step — every measured batch's wall time holds the step before
    it (the definition, not a timing)."""
    step, cfg = 0.25, LoaderConfig(batch_size=2, num_workers=2)
    r = run(dataset_spec(root, "train", size=32, num_frames=2), cfg, 12, step_s=step)
    assert r.passed, _explain(r)
    m = r.metrics
    assert m["bound"] == "step" and m["wait_fraction"] <= 0.2, m
    assert "step-bound" in r.describe()
    lo, hi = m["videos_per_s_interval"]
    rel = (hi - lo) / 2 / m["videos_per_s"]
    assert m["videos_per_s"] <= cfg.batch_size / step * (1 + rel), m  # videos / summed waits would not be


def test_healthy_run_metrics_agree(run: Callable[..., RunResult], root: Path, long_list: str) -> None:
    # A realistic clip (16 × 224²): the consumer's fixed per-batch cost (one event, freeing the batch)
    # is then a small share of a batch, as in real runs; with toy clips it is not.
    ds = dataset_spec(root, "train", size=224, num_frames=16, list_file=long_list)
    r = run(ds, LoaderConfig(batch_size=4, num_workers=2), 16, sample_interval=0.1)
    assert r.passed and r.outcome is None and r.kind is None, _explain(r)
    m = r.metrics
    assert m["batches"] == 16 and m["videos"] == 64 and len(r.batch_waits) == 16
    # the rate exists (its agreement with an outside timing is a benchmark); the waits lie inside the loop
    assert m["videos_per_s"] > 0 and 0 < m["wait_fraction"] <= 1, m
    assert 0 < sum(r.batch_waits) <= m["loop_s"], (sum(r.batch_waits), m["loop_s"])
    # what the batches held, from the events: 4 clips of 16 × 224² × 3 uint8 each
    assert m["clips_per_batch"] == 4 and m["batch_shape"] == [4, 16, 224, 224, 3], m
    assert m["batch_dtype"] == "torch.uint8" and m["bytes_per_batch"] >= 4 * 16 * 224 * 224 * 3
    assert m["wait_ms_p50"] <= m["wait_ms_p95"] <= m["wait_ms_p99"]
    lo, hi = m["videos_per_s_interval"]
    assert lo <= m["videos_per_s"] <= hi and m["interval_batches"] == 15 and m["interval_method"]
    series = r.record["series"]
    assert series["t"] and len(series["rss"]) == len(series["t"]) and max(series["rss"]) > 0
    assert len(series["batch_t"]) == 16
    # at most the main process and its 2 workers (how many a 0.1 s sample caught is not asserted)
    assert m["rss_peak_bytes"] > 0 and 1 <= m["procs_peak"] <= 3 and m["fds_peak"] > 0
    assert m["leaked_shm_files"] == m["leaked_tmp_files"] == m["leaked_mp_dirs"] == 0
    assert r.record["exit"] == {"code": 0, "signal": None, "mem_mode": None}
    assert r.record["wall_s"] > m["loop_s"] > 0
    # how busy the host was around it (run.host): recorded for a run that ended by itself
    host = r.record["host"]
    assert host["cores"] == len(os.sched_getaffinity(0)) and host["foreign_cores"] >= 0 and host["seconds"] > 0


# --- a session in which everything crashes --------------------------------------------------------------


def test_every_config_crashing_still_gives_one_result_each(run: Callable[..., RunResult], small: dict) -> None:
    plan = [
        (LoaderConfig(batch_size=2, num_workers=2), "segfault@1"),
        (LoaderConfig(batch_size=3, num_workers=1), "exception@1"),
        (LoaderConfig(batch_size=2, num_workers=2, prefetch_factor=1), "killed@3"),
    ]
    results = [run(small, cfg, 5, fault=fault, name=f"crash-{i}") for i, (cfg, fault) in enumerate(plan)]
    assert len(results) == 3
    assert [r.kind for r in results] == ["segfault", "worker_exception", "worker_killed"]
    assert [r.record["label"] for r in results] == [cfg.label for cfg, _ in plan]
    assert len({r.record["run_dir"] for r in results}) == 3


def test_loader_timeout_turns_a_hang_into_an_error(run: Callable[..., RunResult], small: dict) -> None:
    """With DataLoader(timeout=...) the stuck worker raises in the main process: still ``hang``, ended by
    torch rather than by the watchdog, and the child shuts down by itself (the stuck worker is SIGTERMed
    by torch after its 5 s join).

    ``file_system`` on purpose: with ``file_descriptor`` the main process may already have the stuck
    worker's last batch message and then block, with no timeout, fetching its fd from the worker's
    resource-sharer thread, which cannot run while the worker holds the GIL (seen here: the main in
    ``resource_sharer.detach → Client → answer_challenge``). Only the watchdog ends that one."""
    cfg = LoaderConfig(batch_size=2, num_workers=2, timeout=2.0, sharing_strategy="file_system")
    r = run(small, cfg, 8, fault="hang@4", watchdog=Watchdog(startup_s=60, stall_s=30))
    assert r.kind == "hang", _explain(r)
    assert "DataLoader timed out after 2.0 seconds" in r.outcome["message"]
    assert "watchdog" not in r.outcome["evidence"] and r.record["exit"]["code"] == 1
    assert "ended_by_runner" not in r.record["exit"]


# --- pure: the event reader and the one-line description ------------------------------------------


def test_the_event_reader_counts_bad_lines_and_keeps_the_first() -> None:
    from ssv2_fixtures.run.runner import EventReader

    r = EventReader()
    assert r.feed(b'{"ev": "started", "t": 1}\n{"ev": "ba') == [{"ev": "started", "t": 1}]
    assert r.feed(b'tch", "i": 0}\nnot json\n[1, 2]\n{"ev": "error"}\n') == [{"ev": "batch", "i": 0}, {"ev": "error"}]
    r.feed(b'{"ev": "fini')  # torn: the stream ends inside a line
    r.close()
    assert [e["ev"] for e in r.events] == ["started", "batch", "error"]
    assert r.facts() == {"bad_event_lines": 3, "first_bad_event_line": "not json"}


def test_a_failing_hook_is_recorded() -> None:
    from ssv2_fixtures.run.runner import EventReader

    r = EventReader()
    try:
        raise AssertionError("the hook's own check")
    except AssertionError as exc:
        r.hook_failed(exc)
    f = r.facts()
    assert f["on_event_errors"] == 1 and "AssertionError: the hook's own check" in f["first_on_event_error"]
    assert EventReader().facts() == {}


def _result(**metrics: Any) -> RunResult:
    return RunResult({"label": "bs2-w2", "status": "passed", "metrics": metrics})  # type: ignore[typeddict-item]


def test_describe_gives_the_rate_with_its_interval_or_why_not() -> None:
    with_iv = _result(videos_per_s=12.34, batches=30, videos_per_s_interval=[11.0, 13.5], window_stopped="time")
    assert with_iv.describe() == "bs2-w2: passed, 12.3 videos/s [11.0, 13.5] over 30 batches, window stopped on time"
    without = _result(videos_per_s=9.0, batches=3, interval_note="too few batches (2 < 6)")
    assert without.describe() == "bs2-w2: passed, 9.0 videos/s (no interval: too few batches (2 < 6)) over 3 batches"
