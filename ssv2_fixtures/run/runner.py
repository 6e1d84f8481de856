"""Run one loader config in its own process and turn whatever happens into a :class:`RunResult`.

Parent side of the runner (the child side is :mod:`ssv2_fixtures.run.child`). The child is a fresh
interpreter, never a fork of the caller, in its own session and process group, with its own TMPDIR
under the run folder, optionally inside a :mod:`sandbox`. One path for every run, one argument
(:class:`~.request.RunRequest`); the rooms it uses:

- :mod:`.strategy`: the launch strategy (a single process, or torchrun): argv, event channel, how the
  watchdog follows it, how its outcome folds into one record;
- :mod:`.watchdog`: the limits and every decision about a running child, as pure functions;
- :mod:`.tree`: stack dump, ending the process tree (NOTE [ending a child tree]), cleanup;
- :mod:`.record`: the one record builder (:mod:`.ranks` extends it for torchrun's ranks);
- :mod:`.shm`: the one shared-memory formula, for the evidence a failure is classified with.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
import traceback
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..data.loader import LoaderConfig
from . import host
from .child import ChildSpec, DatasetSpec
from .faults import FaultSpec, parse_fault, refuse_unfit
from .hold import hold_evidence
from .launch import Launch
from .monitor import TreeMonitor
from .record import RunFacts
from .request import OnEvent, RunRequest
from .sandbox import Prepared, prepare
from .schema import Metrics, OutcomeRecord, RunRecord
from .shm import batch_bytes, shm_in_flight
from .stats import percentile
from .strategy import Channel, LaunchStrategy, strategy_for
from .tree import cleanup, dump_stacks, end_tree
from .watchdog import Decision, Limits, Progress, Watchdog, decide


@dataclass
class RunResult:
    """What one isolated run measured and, if it failed, why. ``record`` is its JSON form."""

    record: RunRecord

    @property
    def passed(self) -> bool:
        return self.record["status"] == "passed"

    @property
    def outcome(self) -> OutcomeRecord | None:
        return self.record.get("outcome")

    @property
    def kind(self) -> str | None:
        o = self.outcome
        return o["kind"] if o else None

    @property
    def metrics(self) -> Metrics:
        return self.record["metrics"]

    @property
    def batch_waits(self) -> list[float]:
        return self.record.get("batch_waits_s", [])

    def describe(self) -> str:
        r = self.record
        m = r["metrics"]
        if self.passed:
            iv = m.get("videos_per_s_interval")
            spread = (
                f" [{iv[0]:.1f}, {iv[1]:.1f}]" if iv else f" (no interval: {m.get('interval_note') or 'none computed'})"
            )
            window = f", window stopped on {m['window_stopped']}" if m.get("window_stopped") else ""
            bound = (
                f", step-bound (waited for data {m['wait_fraction']:.0%} of the loop)"
                if m.get("bound") == "step"
                else ""
            )
            return (
                f"{r['label']}: passed, {m.get('videos_per_s', 0):.1f} videos/s{spread} over "
                f"{m.get('batches', 0)} batches{window}{bound}"
            )
        o: dict[str, Any] = dict(r["outcome"] or {})
        return (
            f"{r['label']}: {o.get('kind')} at batch {o.get('batch')}: {o.get('message')}\n  remedy: {o.get('remedy')}"
        )


def dataset_spec(root: str | os.PathLike[str], split: str = "train", **kw: Any) -> DatasetSpec:
    """The dataset half of a child spec (the arguments of :class:`~ssv2_fixtures.SSv2Clips`)."""
    d: DatasetSpec = {"root": str(root), "split": split}
    d.update({k: v for k, v in kw.items() if v is not None})  # type: ignore[typeddict-item]
    return d


def _check_fault(fault: FaultSpec | str | None, batches: int, factory: str | None = None) -> FaultSpec | None:
    if isinstance(fault, str):
        fault = parse_fault(fault, where="RunRequest(fault=...)")
    refuse_unfit(fault, factory)
    if fault is not None and fault.batch >= batches:  # it would never fire, and the run would "pass"
        raise ValueError(
            f"fault drill {fault} fires at batch {fault.batch}, but this run loads batches "
            f"0..{batches - 1}: choose BATCH < {batches} (--inject-fault KIND@BATCH), or a run "
            f"with more batches (--batches for -m sustained and validate)"
        )
    return fault


def run_config(request: RunRequest) -> RunResult:
    """Run ``request`` (:class:`~.request.RunRequest`: ``batches`` batches of its dataset with its config) in an
    isolated child; never raises for anything the child does (a crash is a result). With ``request.launch``
    the child is a torchrun job (see :func:`run_distributed`)."""
    dataset, config, batches = request.dataset, request.config, request.batches
    ds: DatasetSpec = dataset_spec(dataset) if isinstance(dataset, (str, os.PathLike)) else dataset
    drill = _check_fault(request.fault, batches, ds.get("factory"))
    strategy = strategy_for(request.launch)
    measure = dict(request.measure) if request.measure is not None else None
    limits = (request.watchdog or Watchdog()).resolve(config, batches, strategy.ranks, measure)
    sandbox, name = request.sandbox, request.name
    label = config.label
    base = Path(request.run_dir) if request.run_dir else Path(os.environ.get("TMPDIR", "/tmp")) / "ssv2-stress-runs"
    work = _fresh_dir(base, name or label)
    tmpdir = work / "tmp"
    tmpdir.mkdir()
    prepared: Prepared | None = prepare(sandbox, tmpdir) if sandbox and sandbox.emulated else None
    chan = strategy.channel(work)
    spec = _child_spec(ds, config, batches, drill, chan, work, prepared, request.cuda, request.step_s, measure)
    spec["hold"] = request.hold
    (work / "spec.json").write_text(json.dumps(spec, indent=1))
    tmp_alias = _short_alias(tmpdir)
    argv = [*(prepared.prefix if prepared else []), *strategy.entry(work, work / "spec.json")]
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t_spawn = time.time()
    cpu_before = host.mark()
    try:
        proc = _spawn(argv, chan, work, tmpdir, tmp_alias)
    except BaseException:  # nothing was started: undo what was set up for it, then report
        chan.close()
        if prepared:
            prepared.cleanup()
        if tmp_alias is not None:
            tmp_alias.unlink(missing_ok=True)
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    chan.spawned()
    monitor = TreeMonitor(
        proc.pid,
        tmpdir,
        interval=request.sample_interval,
        private_tmp=bool(prepared and prepared.sandbox.tmp_bytes is not None),
    ).start()
    reader = EventReader()
    events, decision = _pump(
        proc, chan.read_fd, monitor, limits, Progress(t_spawn), strategy, request.on_event, work / "stacks.txt", reader
    )
    t_exit = time.time()
    end_tree(proc, monitor, graceful=not decision.stop, groups=strategy.groups)
    load = host.host_load(cpu_before, host.mark())  # the child is reaped: its CPU is in os.times
    chan.close()
    monitor.stop()
    wall = time.time() - t_spawn
    leaked = cleanup(monitor, tmpdir, prepared)
    if tmp_alias is not None:
        tmp_alias.unlink(missing_ok=True)
    facts = _facts(monitor, tmpdir, prepared, config, ds, events, request.extra_facts, strategy.ranks)
    facts.update(reader.facts())
    if reader.hook_errors:  # the caller's own hook failed: say so where a test or a campaign will see it
        warnings.warn(
            f"run_config({name or label}): on_event raised {reader.hook_errors} time(s); the run "
            f"went on. First:\n{reader.first_hook_error}",
            RuntimeWarning,
            stacklevel=2,
        )
    if prepared:
        prepared.cleanup()
    run = RunFacts(
        config=config,
        dataset=ds,
        batches=batches,
        fault=str(drill) if drill else None,
        sandbox=sandbox.to_dict() if sandbox else None,
        mem_mode=prepared.mem_mode if prepared else None,
        limits=limits,
        events=events,
        fired=decision.fired,
        stuck=decision.stuck,
        returncode=proc.returncode,
        monitor=monitor,
        work=work,
        leaked=leaked,
        facts=facts,
        started_at=started_at,
        wall_s=wall,
        name=name or label,
        t_exit=t_exit,
        step_s=request.step_s,
        host=load,
    )
    return RunResult(strategy.fold(run))


def _child_spec(
    ds: DatasetSpec,
    config: LoaderConfig,
    batches: int,
    fault: FaultSpec | None,
    chan: Channel,
    work: Path,
    prepared: Prepared | None,
    cuda: bool,
    step_s: float,
    measure: dict[str, Any] | None,
) -> ChildSpec:
    spec: dict[str, Any] = {
        "dataset": ds,
        "config": config.to_dict(),
        "batches": batches,
        "fault": str(fault) if fault else None,
        **chan.spec,
        "stacks_path": str(work / "stacks.txt"),
        "skip_log": str(work / "skips.tsv"),
        "nofile": prepared.nofile if prepared else None,
        "address_space_bytes": prepared.address_space_bytes if prepared else None,
        "cpus": prepared.cpus if prepared else None,
        "cuda": cuda,
        "step_s": step_s,
    }
    if measure is not None:
        spec["measure"] = measure
    return spec  # type: ignore[return-value]


def _spawn(
    argv: list[str],
    chan: Channel,
    work: Path,
    tmpdir: Path,
    tmp_alias: Path | None,
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, TMPDIR=str(tmp_alias or tmpdir), PYTHONUNBUFFERED="1")
    pkg_parent = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(work / "stdout.txt", "wb") as out, open(work / "stderr.txt", "wb") as err:
        return subprocess.Popen(
            argv,
            pass_fds=chan.pass_fds,
            start_new_session=True,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=str(tmpdir),
            env=env,
        )


# multiprocessing binds AF_UNIX sockets under TMPDIR (pymp-*/listener-*), and such a path may not
# exceed 107 bytes: a deep run folder makes every worker's feeder thread die with "AF_UNIX path too
# long" and the DataLoader hang. Past this length the child gets a short symlink to its TMPDIR instead.
_MAX_TMPDIR_LEN = 60


def run_distributed(
    request: RunRequest,
    *,
    nproc_per_node: int = 2,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
) -> RunResult:
    """``request`` as a torchrun job: ``nproc_per_node`` ranks (× ``nnodes``), each loading ``batches``
    batches of its DistributedSampler share of the dataset with the config; see NOTE [a torchrun child].
    The same as ``run_config(replace(request, launch=Launch(...)))``.

    The record has ``ranks`` (one row per local rank), ``distributed`` (the launch and the epoch
    coverage checks) and node totals in ``metrics``; a failed run's outcome names the rank
    (``outcome["evidence"]["rank"]`` and the message's ``rank R:`` prefix). Never raises for anything
    the job does.
    """
    launch = Launch(nproc_per_node=nproc_per_node, nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint)
    return run_config(replace(request, launch=launch))


# NOTE [a torchrun child]
#     ``run_distributed`` runs ``python -m torch.distributed.run`` as the isolated child: the same run
#     folder, TMPDIR, sandbox prefix (so every rank shares one emulated /dev/shm, as ranks on a node
#     share the real one), monitor, watchdog, ending and cleanup as a single-process child. Differences
#     (all in the strategy :class:`~.strategy.Torchrun`; its record fold is :mod:`.ranks`):
#     - events come through a FIFO (NOTE [rank events] in child.py); the runner holds a write end too,
#       so reading never hits EOF while no rank has it open;
#     - the watchdog follows each rank: start-up until every local rank has its first batch, the stall
#       limit for each rank that has not finished (a rank stuck while the others finished and wait in
#       the final collective is a hang of that rank), then the stall limit again for the gather and the
#       exit once all have finished;
#     - torchrun starts each rank in its own session: the monitor's tree (sampled again just before
#       each signal) and each rank's process group are signalled, not only torchrun's group;
#     - the outcome is the first rank that reported an error (ranks that fail afterwards, e.g. in the
#       final collective because a peer is gone, are "ended"), else the root cause of torchrun's failure
#       summary (a rank killed by a signal reports nothing itself), else torchrun's own exit.
#     torchrun handles a failed rank first (SIGTERM to the other ranks at its next monitor tick, 0.1 s);
#     the runner's ``exit_s`` after the first error is the backstop.


def _short_alias(tmpdir: Path) -> Path | None:
    if len(str(tmpdir)) <= _MAX_TMPDIR_LEN:
        return None
    base = Path("/tmp") if os.path.isdir("/tmp") else Path(tempfile.gettempdir())
    for n in range(1000):
        alias = base / f"ssv2-{os.getpid()}-{n}"
        try:
            alias.symlink_to(tmpdir, target_is_directory=True)
            return alias
        except FileExistsError:
            continue
    return None


def _fresh_dir(base: Path, name: str) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)[:120]
    for n in range(10000):
        p = base / (safe if n == 0 else f"{safe}.{n}")
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a run folder under {base}")


BAD_LINE_CHARS = 500
"""How much of the first unparsable event line the facts keep."""


@dataclass
class EventReader:
    """Splits the child's event stream into events. The writer promises whole JSON lines (one atomic
    ``os.write`` each), so a line that is not a JSON object is a writer bug or a torn stream: it is
    counted and the first one kept (``bad_event_lines``), never dropped silently — a lost ``error``
    line would otherwise turn into a wrongly classified outcome with no trace. Likewise a failing
    ``on_event`` hook is recorded (``on_event_errors``), not swallowed; the run goes on, since the
    hook (a progress line, a test's probe) must not leave a child running unwatched."""

    buf: bytes = b""
    bad_lines: int = 0
    first_bad: str | None = None
    hook_errors: int = 0
    first_hook_error: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """The events completed by ``chunk`` (a partial last line waits for the next chunk)."""
        *lines, self.buf = (self.buf + chunk).split(b"\n")
        out = []
        for ln in lines:
            try:
                ev = json.loads(ln)
            except ValueError:
                ev = None
            if not isinstance(ev, dict):
                self._bad(ln)
                continue
            out.append(ev)
        self.events.extend(out)
        return out

    def close(self) -> None:
        """The stream is over: a partial line left over is a torn write."""
        if self.buf:
            self._bad(self.buf)
            self.buf = b""

    def _bad(self, line: bytes) -> None:
        self.bad_lines += 1
        if self.first_bad is None:
            self.first_bad = line[:BAD_LINE_CHARS].decode(errors="replace")

    def hook_failed(self, exc: BaseException) -> None:
        self.hook_errors += 1
        if self.first_hook_error is None:
            self.first_hook_error = "".join(traceback.format_exception(exc))[-4000:]

    def facts(self) -> dict[str, Any]:
        f: dict[str, Any] = {}
        if self.bad_lines:
            f.update(bad_event_lines=self.bad_lines, first_bad_event_line=self.first_bad)
        if self.hook_errors:
            f.update(on_event_errors=self.hook_errors, first_on_event_error=self.first_hook_error)
        return f


def _pump(
    proc: subprocess.Popen[bytes],
    r_fd: int,
    monitor: TreeMonitor,
    limits: Limits,
    progress: Progress,
    strategy: LaunchStrategy,
    on_event: OnEvent | None,
    stacks_path: Path,
    reader: EventReader,
) -> tuple[list[dict[str, Any]], Decision]:
    """Read events until the child main exits or :func:`~.watchdog.decide` stops the run (then the
    tree's stacks are dumped first). The read end is non-blocking."""
    events = reader.events
    rebased = False

    def drain() -> bool:
        nonlocal rebased
        got_eof = False
        while True:
            try:
                chunk = os.read(r_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                got_eof = True
                break
            for ev in reader.feed(chunk):
                progress.observe(ev, time.time())
                if ev.get("ev") == "started" and not rebased:  # the first process up: private mounts exist
                    monitor.rebase()
                    rebased = True
                if on_event is not None:
                    try:
                        on_event(ev, monitor)
                    except Exception as exc:
                        reader.hook_failed(exc)
        return got_eof

    while True:
        ready, _, _ = select.select([r_fd], [], [], 0.2)
        eof = drain() if ready else False
        if proc.poll() is not None:
            drain()
            reader.close()
            return events, Decision()
        decision = decide(progress, time.time(), limits, strategy.watch)
        if decision.stop:
            dump_stacks(monitor, stacks_path)
            drain()
            reader.close()
            return events, decision
        if eof and proc.poll() is None:
            time.sleep(0.05)  # the write end is closed everywhere; only the exit is left to see


def _facts(
    monitor: TreeMonitor,
    tmpdir: Path,
    prepared: Prepared | None,
    config: LoaderConfig,
    ds: DatasetSpec,
    events: list[dict[str, Any]],
    extra: Mapping[str, Any] | None,
    ranks: int = 1,
) -> dict[str, Any]:
    """The evidence a failure is classified with. ``shm_need_bytes``: :func:`~.shm.shm_in_flight` of
    the batch size measured from the batch events (the median of their ``bytes``), else predicted
    (:func:`~.shm.batch_bytes`), times the ``ranks`` loading on this node at once (they share one
    /dev/shm); a caller's ``extra`` (the campaign's budget) wins."""
    import resource

    pk = monitor.peaks
    f: dict[str, Any] = {
        "rss_peak_bytes": pk.rss_bytes,
        "shm_peak_bytes": pk.shm_used_bytes,
        "fds_peak": pk.fds,
        "shm_total_bytes": monitor.shm_total,
        "shm_free_bytes": monitor.shm_free_min,
        "tmpdir": str(tmpdir),
        "procs_peak": pk.procs,
        "nofile": prepared.nofile if prepared and prepared.nofile else resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }
    try:
        f["tmp_free_bytes"] = shutil.disk_usage(tmpdir.parent).free
    except OSError:
        pass
    if prepared:
        f.update(prepared.facts())
        if prepared.sandbox.tmp_bytes is not None:
            f["tmp_free_bytes"] = max(0, prepared.sandbox.tmp_bytes - pk.tmp_bytes)
    sizes = [int(e["bytes"]) for e in events if e.get("ev") == "batch" and e.get("bytes") is not None]
    per_batch = (
        int(percentile(sizes, 50))
        if sizes
        else batch_bytes(config.batch_size, int(ds.get("num_frames", 16)), int(ds.get("size", 224)))
    )
    f["batch_bytes"] = per_batch
    f.setdefault("shm_need_bytes", ranks * shm_in_flight(config, per_batch))
    if sizes:  # measured from the batches' tensors: what a remedy's largest fitting batch size is sized by
        f["bytes_per_item"] = per_batch / max(1, config.batch_size)
    f.update(hold_evidence(events))
    if ranks > 1:
        f["ranks"] = ranks
    if extra:
        f.update(extra)
    return f


__all__ = [
    "run_config",
    "run_distributed",
    "RunRequest",
    "RunResult",
    "OnEvent",
    "Watchdog",
    "dataset_spec",
    "EventReader",
]
