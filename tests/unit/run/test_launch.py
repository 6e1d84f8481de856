"""``-m distributed``: ranks × workers under PyTorch's own launcher (torchrun, gloo on CPU), for real.

Nothing here is mocked: every run is ``python -m torch.distributed.run`` starting real ranks, each with
a process group, a DistributedSampler and DataLoader workers; faults are the real drills in one rank;
the small /dev/shm is a real private tmpfs shared by the ranks. After every run the isolation checks of
``test_runner.py`` hold (no process of the tree left, no shm file, no TMPDIR, no mount, no cgroup), and
torchrun left no log folder of its own in /tmp.

The pure parts (DistributedSampler's rule, the fault spec, the launch options, torchrun's failure
summary, the atomic rank events) are checked against torch's own DistributedSampler and real text.
"""

from __future__ import annotations

import glob
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from test_runner import _host_mounts, _our_cgroups, _shm_size, check_isolation

from ssv2_fixtures.data.loader import LoaderConfig, distributed_samples
from ssv2_fixtures.data.synth import SynthSpec, ensure_synthetic
from ssv2_fixtures.report import findings, render_summary
from ssv2_fixtures.run.faults import FaultSpec, parse_fault
from ssv2_fixtures.run.launch import Launch, epoch_check, expected_counts, torchrun_failures
from ssv2_fixtures.run.request import RunRequest
from ssv2_fixtures.run.runner import RunResult, Watchdog, dataset_spec, run_distributed
from ssv2_fixtures.run.sandbox import Sandbox, unavailable

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(300)
MiB = 2**20
FAST = Watchdog(startup_s=90, stall_s=20)


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("SSV2_STRESS_CACHE")
    cache = Path(env).expanduser() if env else tmp_path_factory.getbasetemp() / "ssv2-cache"
    return ensure_synthetic(SynthSpec(videos=24), cache_dir=cache, processes=min(2, os.cpu_count() or 1))


def _torchelastic_dirs() -> set[str]:
    return set(glob.glob("/tmp/torchelastic_*"))


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Callable[..., RunResult]]:
    """``run_distributed`` of a :class:`RunRequest` of the arguments (the launch keywords apart), into this
    test's folder, with the runner's isolation checks after each run."""
    pre = {p.pid for p in psutil.Process().children(recursive=True)}
    host = {"shm_size": _shm_size(), "mounts": _host_mounts(), "cgroups": _our_cgroups()}
    elastic = _torchelastic_dirs()

    def check(r: RunResult) -> None:
        check_isolation(r, pre, host)
        assert not (Path(r.record["run_dir"]) / "events.fifo").exists(), "the events FIFO was not removed"
        assert _torchelastic_dirs() == elastic, "torchrun left a log folder in /tmp"

    def _run(*args: Any, check_after: bool = True, **kw: Any) -> RunResult:
        launch = {k: kw.pop(k) for k in ("nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint") if k in kw}
        kw.setdefault("run_dir", tmp_path / "runs")
        kw.setdefault("watchdog", FAST)
        r = run_distributed(RunRequest(*args, **kw), **launch)
        if check_after:  # runs at the same time check after all have ended (run.check)
            check(r)
        return r

    _run.check = check  # type: ignore[attr-defined]
    yield _run
    extra = [p for p in psutil.Process().children(recursive=True) if p.pid not in pre]
    assert not extra, f"descendants of the test process remain after the test: {extra}"


def _explain(r: RunResult) -> str:
    rows = [{k: v for k, v in x.items() if k not in ("waits_s",)} for x in r.record.get("ranks", [])]
    return f"{r.describe()}\nranks: {rows}\n--- stderr tail ---\n{r.record['stderr_tail'][-3000:]}"


# --- 2 ranks × 1 worker, healthy ------------------------------------------------------------------------


def test_two_ranks_cover_the_dataset_disjointly_and_totals_add_up(run: Callable[..., RunResult], root: Path) -> None:
    """9 items on 2 ranks, drop_last=False: 5 per rank, the 10th is a repeat of the epoch's first index
    (DistributedSampler's padding). 6 batches of 2 = two complete epochs (2 + 2 + 1 per rank)."""
    from torch.utils.data.distributed import DistributedSampler

    ds = dataset_spec(root, "train", size=64, num_frames=4, limit=9)
    cfg = LoaderConfig(batch_size=2, num_workers=1, shuffle=True, seed=3)
    r = run(ds, cfg, 6, nproc_per_node=2, sample_interval=0.1)
    assert r.passed, _explain(r)
    rec, m = r.record, r.metrics
    rows = rec["ranks"]
    assert [x["rank"] for x in rows] == [0, 1] and [x["local_rank"] for x in rows] == [0, 1]
    for x in rows:  # both ranks report
        assert x["state"] == "finished" and x["outcome"] is None and x["batches"] == 6 and x["videos"] == 10, x
        assert x["epoch_batches"] == 3 and x["epoch_samples"] == 5 and x["epochs"] == 2
        assert x["videos_per_s"] > 0
        # the rank's own report: one worker per epoch's iterator (not persistent: a new pid each epoch)
        assert x["workers_started"] == 1 and len(x["worker_pids"]) == 1 and x["worker_pids"][0] != x["pid"], x
    # node totals are the sums of the ranks
    assert m["videos"] == sum(x["videos"] for x in rows) == 20 and m["batches_total"] == 12 and m["batches"] == 6
    assert m["videos_per_s"] == pytest.approx(sum(x["videos_per_s"] for x in rows))
    assert m["ranks"] == 2 and m["world_size"] == 2
    assert m["procs_expected"] == 2 * (1 + 1) and sum(1 + x["workers_started"] for x in rows) == m["procs_expected"]
    # the same samples summed over nested sets of pids: whole tree >= the ranks' subtrees >= one rank's
    assert (
        m.get("rss_peak_bytes", 0) >= m.get("rank_rss_peak_bytes", 0) >= max(x.get("rss_peak_bytes", 0) for x in rows)
    )
    assert {v["name"]: v["ok"] for v in rec["verdicts"]} == {"ranks_finished": True, "epoch_coverage": True}
    # disjoint and full coverage within each epoch, under the padding rule
    cov = rec["distributed"]["coverage"]
    assert len(cov) == 2
    for c in cov:
        assert c["ok"] and c["complete"] and c["covers_dataset"], c
        assert (
            c["distinct"] == 9 and c["repeats"] == 1 and {int(k): v for k, v in c["per_rank"].items()} == {0: 5, 1: 5}
        )
    # and exactly what torch's own DistributedSampler hands each rank, in order, epoch by epoch
    gathered = json.loads((Path(rec["run_dir"]) / "indices.json").read_text())
    assert gathered["world_size"] == 2
    for entry in gathered["ranks"]:
        for e, got in enumerate(entry["epochs"]):
            s = DistributedSampler(range(9), num_replicas=2, rank=entry["rank"], shuffle=True, seed=3)
            s.set_epoch(e)
            assert got == list(s), (entry["rank"], e)
    assert rec["exit"] == {"code": 0, "signal": None, "mem_mode": None}
    assert m["leaked_shm_files"] == m["leaked_tmp_files"] == 0


# --- a fault in rank 1 only -----------------------------------------------------------------------------


def test_fault_in_rank_1_names_it_and_rank_0_ends(run: Callable[..., RunResult], root: Path) -> None:
    """Rank 1's dataset raises at its batch 8; rank 0 is healthy and mid-loop (40 batches with a 50 ms
    training step, ~2 s): torchrun ends it, the outcome names rank 1 and the kind.

    Batch 8, not 1: the ranks leave init_process_group together but then start their workers apart, and
    on 2 busy cores rank 0 had not yet received a batch when rank 1 failed at its batch 1 (seen once in a
    full run). Eight 50 ms steps (0.4 s) leave rank 0 time to be truly mid-loop."""
    ds = dataset_spec(root, "train", size=64, num_frames=4)
    r = run(ds, LoaderConfig(batch_size=2, num_workers=1), 40, nproc_per_node=2, fault="exception@8/1", step_s=0.05)
    assert not r.passed
    o = r.outcome
    assert o is not None and r.kind == "worker_exception" == FaultSpec("exception", 8, 1).expected_kind, _explain(r)
    assert o["evidence"]["rank"] == 1 and o["evidence"]["local_rank"] == 1
    assert o["message"].startswith("rank 1: ") and "injected fault" in o["message"]
    assert o["batch"] == 8  # a raising drill is re-raised in order: batches rank 1 received
    assert "rank 1" in r.describe() and "worker_exception at batch 8" in r.describe()
    rows = {x["rank"]: x for x in r.record["ranks"]}
    assert rows[1]["state"] == "failed" and rows[1]["outcome"] == "worker_exception"
    assert rows[1]["exit"] == {"code": 1, "signal": None}
    assert "injected fault" in rows[1]["stderr_tail"]  # the rank's own stderr (torchrun --redirects)
    # rank 0 did not fail by itself: it was ended, mid-loop, by torchrun's SIGTERM
    assert rows[0]["state"] == "ended" and rows[0]["outcome"] is None, _explain(r)
    assert 0 < rows[0]["batches"] < 40 and not rows[0]["finished"], _explain(r)
    assert rows[0]["exit"] == {"code": None, "signal": "SIGTERM"}
    failed = o["evidence"]["failed_ranks"]
    assert failed[0]["rank"] == 1 and failed[0]["root_cause"] is True  # torchrun's summary agrees
    # promptly: first error → torchrun gone, far below the runner's exit limit
    assert r.metrics["teardown_s"] >= 0  # measured (first error → torchrun gone); its size is a benchmark
    assert "ended_by_runner" not in r.record["exit"]
    assert r.record["exit"]["code"] == 1 and r.record["fault"] == "exception@8/1"


# --- the multi-rank shared-memory budget ------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_list(root: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    vids = sorted(p.name for p in (root / "20bn-something-something-v2").iterdir())
    f = tmp_path_factory.mktemp("lists") / "long.txt"
    f.write_text("".join(f"20bn-something-something-v2/{vids[i % len(vids)]} {i % 5}\n" for i in range(400)))
    return str(f)


def test_small_shm_passes_with_one_rank_and_is_shm_exhausted_with_two(
    run: Callable[..., RunResult], root: Path, long_list: str
) -> None:
    """One 18 MB /dev/shm (a private tmpfs) for the whole node. BS=8 × 8 frames × 112² × 3 = 2.3 MB a
    batch; W=1 × prefetch 4 + the batch in the training step = 5 batches (11.5 MB) in flight per rank
    once a slow step (0.5 s) lets the queue fill: one rank fits, two (23 MB) do not."""
    sb = Sandbox(shm_bytes=18 * MiB)
    if (reason := unavailable(sb)) is not None:
        pytest.skip(reason)
    ds = dataset_spec(root, "train", size=112, num_frames=8, list_file=long_list)
    cfg = LoaderConfig(batch_size=8, num_workers=1, prefetch_factor=4)
    one = run(ds, cfg, 10, nproc_per_node=1, sandbox=sb, step_s=0.5)
    assert one.passed, _explain(one)  # how full the sampled shm got is not asserted: the outcomes are
    two = run(ds, cfg, 10, nproc_per_node=2, sandbox=sb, step_s=0.5)
    assert two.kind == "shm_exhausted", _explain(two)
    o = two.outcome
    assert o["evidence"]["rank"] in (0, 1) and o["message"].startswith(f"rank {o['evidence']['rank']}: ")
    assert "unable to allocate shared memory" in o["message"]
    assert o["evidence"]["shm_total_bytes"] == 18 * MiB and o["evidence"]["shm_need_bytes"] > 18 * MiB
    assert "2 ranks" in o["remedy"] and "--shm-size=" in o["remedy"]
    # the report says it is the rank count: stable with 1 rank, not with 2
    for r, n in ((one, 1), (two, 2)):
        r.record.update(kind="distributed", phase=f"{n} rank{'s' if n > 1 else ''}")
    data = {
        "schema": 1,
        "run_id": "t",
        "machine": {"cores": 2},
        "dataset": {},
        "settings": {},
        "results": [one.record, two.record],
    }
    f = "\n".join(findings(data))  # type: ignore[arg-type]
    assert "bs8-w1-pf4 is stable with 1 rank" in f and "but not with 2 ranks on one node: shm_exhausted" in f, f
    summary = render_summary(data)  # type: ignore[arg-type]
    rank = o["evidence"]["rank"]
    assert "## Distributed runs" in summary and f"| bs8-w1-pf4 | 2 | {rank} | failed | " in summary, summary
    assert "| bs8-w1-pf4 | 1 | 1 of 1 | passed |" in summary and "| bs8-w1-pf4 | 2 | " in summary


# --- two nodes (torchrun's static rendezvous), both on this machine -------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_nodes_pass_nnodes_node_rank_and_endpoint_through(run: Callable[..., RunResult], root: Path) -> None:
    """Two torchrun agents, --nnodes 2 with --node-rank 0 and 1 and one --rdzv-endpoint: one rank each,
    a world of 2; each node's record has its own rank and the whole world's coverage."""
    ds = dataset_spec(root, "train", size=64, num_frames=4, limit=7)
    cfg = LoaderConfig(batch_size=2, num_workers=1, drop_last=True)
    endpoint = f"127.0.0.1:{_free_port()}"
    out: dict[int, RunResult] = {}
    errors: list[BaseException] = []

    def node(i: int) -> None:
        try:
            out[i] = run(
                ds,
                cfg,
                3,
                nproc_per_node=1,
                nnodes=2,
                node_rank=i,
                rdzv_endpoint=endpoint,
                name=f"node{i}",
                check_after=False,
            )
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=node, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in (0, 1):
        r = out[i]
        run.check(r)  # type: ignore[attr-defined]
        assert r.passed, _explain(r)
        d = r.record["distributed"]
        assert d["nnodes"] == 2 and d["node_rank"] == i and d["world_size"] == 2 and d["rdzv_endpoint"] == endpoint
        assert [(x["rank"], x["node_rank"]) for x in r.record["ranks"]] == [(i, i)]
        # 7 items, drop_last: 3 per rank (the 7th dropped), the loader drops each rank's last odd one
        assert len(d["coverage"]) == 3  # one batch per rank per epoch: three epochs
        for c in d["coverage"]:
            assert c["ok"] and c["complete"] and {int(k): v for k, v in c["per_rank"].items()} == {0: 2, 1: 2}, c


# --- DistributedSampler's rule, against torch's own sampler ------------------------------------------------


def _received(n: int, world: int, batch: int, drop_last: bool, epoch: int, batches: int | None) -> dict[int, list[int]]:
    from torch.utils.data.distributed import DistributedSampler

    out = {}
    for r in range(world):
        s = DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=True, seed=5, drop_last=drop_last)
        s.set_epoch(epoch)
        idx = list(s)
        keep = (len(idx) // batch) * batch if drop_last else len(idx)  # the DataLoader's own drop_last
        if batches is not None:
            keep = min(keep, batches * batch)
        out[r] = idx[:keep]
    return out


@pytest.mark.parametrize("drop_last", [False, True])
def test_epoch_check_agrees_with_torchs_sampler(drop_last: bool) -> None:
    for n in range(1, 14):
        for world in (1, 2, 3, 4):
            for batch in (1, 2, 3):
                for batches in (None, 0, 1, 2):  # a complete epoch, and epochs cut short by --batches
                    seen = _received(n, world, batch, drop_last, epoch=n % 3, batches=batches)
                    c = epoch_check(n, world, batch, drop_last, seen)
                    assert c["ok"], (n, world, batch, batches, c)
                    if batches is None:
                        assert c["complete"]
                        if not drop_last:
                            assert c["covers_dataset"] and c["distinct"] == n
                            assert c["repeats"] == distributed_samples(n, world, drop_last=False) * world - n
                        else:
                            assert c["repeats"] == 0


def test_epoch_check_catches_overlap_and_a_missing_rank() -> None:
    seen = _received(10, 2, 1, False, 0, None)
    assert epoch_check(10, 2, 1, False, seen)["ok"]
    bad = {0: seen[0], 1: seen[1][:-1] + [seen[0][0]]}  # rank 1 got one of rank 0's indices instead of its own
    c = epoch_check(10, 2, 1, False, bad)
    assert not c["ok"] and "the rule says 10 / 0" in c["detail"]
    c = epoch_check(10, 2, 1, False, {0: seen[0]})  # rank 1 never reported: partial, but what is there is right
    assert c["ok"] and not c["complete"] and not c["covers_dataset"]
    assert expected_counts(9, 2, {0: 5, 1: 5}, False) == (9, 1)


# --- the fault spec, the launch, torchrun's summary, atomic rank events -------------------------------------


def test_fault_spec_with_rank() -> None:
    f = parse_fault("exception@2/1")
    assert (f.kind, f.batch, f.rank) == ("exception", 2, 1) and str(f) == "exception@2/1"
    assert f.fires_in(1) and not f.fires_in(0)
    g = parse_fault("segfault@3")
    assert g.rank is None and str(g) == "segfault@3" and g.fires_in(0) and g.fires_in(5)
    assert parse_fault("killed/2") == FaultSpec("killed", 0, 2)
    for bad, needle in (
        ("exception@1/x", "integers"),
        ("exception@1/-1", "rank must be >= 0"),
        ("meteor/1", "unknown fault"),
    ):
        with pytest.raises(ValueError, match=needle) as e:
            parse_fault(bad, where="--inject-fault (from the command line)")
        assert "KIND[@BATCH][/RANK]" in str(e.value) and "from the command line" in str(e.value)


def test_launch_command_and_its_checks() -> None:
    one = Launch(nproc_per_node=4).argv("/x/ranks")
    assert one[1:3] == ["-m", "torch.distributed.run"] and "--standalone" in one
    assert one[one.index("--nproc-per-node") + 1] == "4" and one[one.index("--log-dir") + 1] == "/x/ranks"
    two = Launch(nproc_per_node=8, nnodes=2, node_rank=1, rdzv_endpoint="node0:29500")
    argv = two.argv("/x")
    assert "--standalone" not in argv and two.world_size == 16
    assert argv[argv.index("--nnodes") + 1] == "2" and argv[argv.index("--node-rank") + 1] == "1"
    assert argv[argv.index("--rdzv-endpoint") + 1] == "node0:29500"
    with pytest.raises(ValueError, match="need a rendezvous endpoint"):
        Launch(nnodes=2)
    with pytest.raises(ValueError, match="node_rank"):
        Launch(nnodes=2, node_rank=2, rdzv_endpoint="h:1")
    with pytest.raises(ValueError, match="HOST:PORT"):
        Launch(rdzv_endpoint="node0")


SUMMARY = """torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
ssv2_fixtures.run.rank_child FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-11-29_08:49:22
  host      : gpu-node-3
  rank      : 4 (local_rank: 0)
  exitcode  : -15 (pid: 9062)  (SIGTERM)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 9062
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-29_08:49:22
  host      : gpu-node-3
  rank      : 5 (local_rank: 1)
  exitcode  : -11 (pid: 9063)
  error_file: <N/A>
  traceback : Signal 11 (SIGSEGV) received by PID 9063
============================================================"""


def test_torchrun_failure_summary_is_read_root_cause_first() -> None:
    f = torchrun_failures(SUMMARY)
    assert [(x["rank"], x["local_rank"], x["exitcode"], x["root_cause"]) for x in f] == [
        (5, 1, -11, True),
        (4, 0, -15, False),
    ]
    assert f[0]["host"] == "gpu-node-3" and f[0]["pid"] == 9063
    assert torchrun_failures("no summary here") == []


def test_a_long_rank_event_is_one_atomic_line() -> None:
    from ssv2_fixtures.run.child import ATOMIC_LINE, EventWriter

    r_fd, w_fd = os.pipe()
    try:
        head = "Caught RuntimeError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        tail = (
            "RuntimeError: unable to allocate shared memory(shm) for file </torch_1_2_3>: No space left on device (28)"
        )
        EventWriter(w_fd, rank=3).emit(
            "error",
            batch=2,
            type="RuntimeError",
            message=head + "x" * 20000 + "\n" + tail,
            traceback="y" * 30000 + "é" * 500,
            errno=None,
            chain=["RuntimeError"],
        )
        data = os.read(r_fd, 65536)
    finally:
        os.close(r_fd)
        os.close(w_fd)
    assert data.endswith(b"\n") and data.count(b"\n") == 1 and len(data) <= ATOMIC_LINE < 4096
    ev = json.loads(data)
    assert ev["rank"] == 3 and ev["batch"] == 2 and ev["type"] == "RuntimeError"
    assert ev["message"].startswith(head) and ev["message"].endswith(tail) and "characters cut" in ev["message"]


STRESS = Path(__file__).resolve().parents[3] / "ssv2_fixtures" / "suite"


def test_plugin_runs_the_matrix_under_torchrun_and_names_the_failing_rank(
    pytester: pytest.Pytester, tmp_path_factory, monkeypatch
) -> None:
    """The stress test through the plugin: two configs × 2 ranks, a drill in rank 1 of the W=1 config only
    (``:w1``): that one fails naming rank 1 (no 1-rank rerun after a drill), the other passes with its
    checks; results.json has the per-rank rows and summary.md the distributed section."""
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(var, raising=False)
    pytester.makepyfile(test_distributed=(STRESS / "test_distributed.py").read_text())
    cache = os.environ.get("SSV2_STRESS_CACHE") or str(tmp_path_factory.getbasetemp() / "ssv2-cache")
    r = pytester.runpytest_subprocess(
        "-m",
        "distributed",
        "--nproc-per-node",
        "2",
        "--workers",
        "0,1",
        "--batch-sizes",
        "2",
        "--batches",
        "4",
        "--inject-fault",
        "exception@1/1:w1",
        "--size",
        "64",
        "--frames",
        "4",
        "--synthetic-videos",
        "12",
        "--ssv2-cache",
        cache,
        "--reports",
        str(pytester.path / "reports"),
        "-p",
        "no:cacheprovider",
        "-rf",
        "--no-breakdown",  # not what this test reads (the probe: tests/unit/run/test_breakdown_probe.py)
        "--no-drift",
    )
    r.assert_outcomes(passed=1, failed=1)
    out = r.stdout.str()
    assert "bs2-w1-pf4: worker_exception at batch 1: rank 1: " in out, out
    assert "passes with 1 rank" not in out
    data = json.loads((pytester.path / "reports" / "latest" / "results.json").read_text())
    recs = {x["label"]: x for x in data["results"]}
    assert set(recs) == {"bs2-w0", "bs2-w1-pf4"}  # no rerun after the drill
    ok, bad = recs["bs2-w0"], recs["bs2-w1-pf4"]
    assert ok["status"] == "passed" and ok["kind"] == "distributed" and ok["phase"] == "2 ranks"
    assert {v["name"] for v in ok["verdicts"] if v["ok"]} == {"ranks_finished", "epoch_coverage", "node_totals"}
    assert [x["rank"] for x in ok["ranks"]] == [0, 1] and [x["workers_started"] for x in ok["ranks"]] == [0, 0]
    assert ok["dataset"]["limit"] == 2 * 2 * 2 + 1  # epoch_limit: 2 batches per rank per epoch + world - 1
    assert bad["outcome"]["evidence"]["rank"] == 1 and bad["fault"] == "exception@1/1"
    summary = (pytester.path / "reports" / "latest" / "summary.md").read_text()
    assert "## Distributed runs" in summary and "| bs2-w0 | 2 | 1 | finished | 4 | 8 |" in summary, summary


def test_distributed_options_are_checked_and_documented(pytester: pytest.Pytester, monkeypatch) -> None:
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(var, raising=False)
    r = pytester.runpytest_subprocess("--nnodes", "2", "-p", "no:cacheprovider")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert "invalid -m distributed launch (--nnodes (from the command line): 2)" in r.stderr.str()
    assert "--rdzv-endpoint HOST:PORT" in r.stderr.str()
    out = pytester.runpytest_subprocess("--help", "-p", "no:cacheprovider").stdout.str()
    for opt in ("--nproc-per-node", "--nnodes", "--node-rank", "--rdzv-endpoint", "KIND[@BATCH][/RANK][:TEST]"):
        assert opt in out, opt


# --- the launch strategies, without a child ------------------------------------------------------------


def test_single_process_strategy_passes_a_pipe(tmp_path: Path) -> None:
    from ssv2_fixtures.run.strategy import SingleProcess, strategy_for

    strategy = strategy_for(None)
    assert isinstance(strategy, SingleProcess) and strategy.ranks == 1 and not strategy.groups
    assert strategy.entry(tmp_path, tmp_path / "spec.json")[1:3] == ["-m", "ssv2_fixtures.run.child"]
    chan = strategy.channel(tmp_path)
    try:
        w_fd = chan.spec["events_fd"]
        assert chan.pass_fds == (w_fd,)
        os.write(w_fd, b'{"ev": "started"}\n')
        assert os.read(chan.read_fd, 100) == b'{"ev": "started"}\n'
        chan.spawned()  # the child has its copy: the runner's write end is closed, so EOF comes
        assert os.read(chan.read_fd, 100) == b""
    finally:
        chan.close()


def test_torchrun_strategy_holds_a_fifo_write_end(tmp_path: Path) -> None:
    from ssv2_fixtures.run.strategy import Torchrun, strategy_for

    strategy = strategy_for(Launch(nproc_per_node=3))
    assert isinstance(strategy, Torchrun) and strategy.ranks == 3 and strategy.groups
    assert strategy_for(strategy) is strategy
    argv = strategy.entry(tmp_path, tmp_path / "spec.json")
    assert argv[1:3] == ["-m", "torch.distributed.run"] and argv[-2:] == [
        "ssv2_fixtures.run.rank_child",
        str(tmp_path / "spec.json"),
    ]
    chan = strategy.channel(tmp_path)
    fifo = Path(chan.spec["events_path"])
    assert fifo.exists() and chan.pass_fds == () and chan.spec["indices_path"] == str(tmp_path / "indices.json")
    chan.spawned()
    with pytest.raises(BlockingIOError):  # no writer wrote, but one is held: no EOF, just nothing yet
        os.read(chan.read_fd, 100)
    chan.close()
    assert not fifo.exists()
