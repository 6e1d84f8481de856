"""The watchdog's limits and every decision the runner takes about a running or finished child, as
pure functions of what the event stream said and the time (no process is touched here).

- :class:`Watchdog`: the limits (start-up, stall, total, exit after an error), derived from the config;
- :class:`Progress`: what the events told so far (per rank: started, last batch, finished; the error);
- :func:`decide`: each poll, whether the run goes on, hangs (``fired``: a watchdog finding) or is stuck
  after an error (``stuck``: the error stays the outcome, the runner only ends the tree);
- :func:`watch_single` / :func:`watch_ranks`: the start-up and stall checks of one process, and of
  each local rank of a torchrun child (NOTE [a torchrun child] in runner.py);
- :func:`failing_rank` and :func:`rank_state`: which rank a failed torchrun job is charged to, and
  what each rank's row says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Limits = dict[str, float]
Finding = dict[str, Any]


@dataclass(frozen=True)
class Watchdog:
    """Limits, in seconds: spawn → first batch, between batches, and the whole run. None = derived.

    ``exit_s``: once the child has reported an error, how long it may take to exit (torch's worker
    shutdown) before the runner ends the tree. That is not a hang: the error stays the outcome.
    """

    startup_s: float | None = None
    stall_s: float | None = None
    total_s: float | None = None
    exit_s: float | None = None

    def resolve(self, config: Any, batches: int, ranks: int = 1, measure: Mapping[str, Any] | None = None) -> Limits:
        """``ranks``: processes loading at once on this node (``-m distributed``), sharing its cores.
        ``measure``: the run's time window (NOTE [measured window] in loop.py), which ends the run at its
        ``max_s`` long before ``batches`` (quick's cap of 1000) would at the per-batch allowance."""
        from .stats import whole_rounds

        # Generous by design: a slow machine must not read as a hang. ~0.25 s per video is ~10× slower
        # than decode here; start-up covers the torch import and worker start (every rank imports torch
        # at once, and torchrun's agent before them).
        startup = self.startup_s or 90.0 + 2.0 * config.num_workers + 0.5 * config.batch_size + 20.0 * (ranks - 1)
        stall = self.stall_s or 30.0 + 0.25 * config.batch_size * ranks
        per_batch = (2.0 + 0.25 * config.batch_size) * ranks
        loading = batches * per_batch
        if measure:
            # warm-up (whole rounds), then at most max_s of window, then the round in flight at the cap
            r = max(1, config.num_workers)
            outside = min(batches, whole_rounds(int(measure["warmup_batches"]), r) + r)
            loading = min(loading, outside * per_batch + float(measure["max_s"]))
        if config.num_workers and ranks == 1:  # the full-queue hold after the loop (NOTE [full-queue hold])
            from .hold import HOLD_MAX_S

            loading += HOLD_MAX_S
        total = self.total_s or startup + loading + 60.0
        # torch joins each worker for up to 5 s (MP_STATUS_CHECK_INTERVAL) before terminating it
        exit_ = self.exit_s or 15.0 + 5.0 * config.num_workers
        return {"startup_s": startup, "stall_s": stall, "total_s": total, "exit_s": exit_}


@dataclass
class Progress:
    """What the child's events said so far, keyed by rank (``None`` for a single process)."""

    t_spawn: float
    last_batch: dict[Any, float] = field(default_factory=dict)  # rank → time of its last batch event
    finished: dict[Any, float] = field(default_factory=dict)  # rank → time of its finished event
    known: set[Any] = field(default_factory=set)  # ranks that reported started
    batches: dict[Any, int] = field(default_factory=dict)  # rank → batch events seen
    error_at: float | None = None  # time of the first error event

    def observe(self, ev: Mapping[str, Any], now: float) -> None:
        kind, rank = ev.get("ev"), ev.get("rank")
        if kind == "started":
            self.known.add(rank)
        elif kind == "batch":
            self.last_batch[rank] = now
            self.batches[rank] = self.batches.get(rank, 0) + 1
        elif kind in ("hold", "held"):  # the full-queue hold and its drain get the stall limit each (run/hold.py)
            self.last_batch[rank] = now
        elif kind == "finished":
            self.finished[rank] = now
        elif kind == "error" and self.error_at is None:
            self.error_at = now

    @property
    def last_progress(self) -> float | None:
        return max(self.last_batch.values()) if self.last_batch else None

    def batches_done(self, rank: Any = ...) -> int:
        """Batches received in all (or by ``rank``)."""
        if rank is ...:
            return sum(self.batches.values())
        return self.batches.get(rank, 0)


Watch = Callable[[Progress, float, Limits], "Finding | None"]


def watch_single(p: Progress, now: float, limits: Limits) -> Finding | None:
    """One loading process: no first batch within ``startup_s``, or no batch for ``stall_s``."""
    last = p.last_progress
    if last is None:
        if now - p.t_spawn > limits["startup_s"]:
            return {"phase": "startup", "limit_s": limits["startup_s"], "elapsed_s": now - p.t_spawn}
        return None
    if now - last > limits["stall_s"]:
        return {"phase": "stall", "limit_s": limits["stall_s"], "elapsed_s": now - last}
    return None


def watch_ranks(p: Progress, now: float, limits: Limits, ranks: int) -> Finding | None:
    """Each local rank of a torchrun child: start-up until every rank has its first batch, the stall
    limit for each rank not finished (one stuck while the others wait in the final collective is a
    hang of that rank), then the stall limit again for the gather and the exit once all finished."""
    if len(p.last_batch) < ranks:
        if now - p.t_spawn > limits["startup_s"]:
            waiting = sorted((r for r in p.known if r not in p.last_batch), key=str)
            f: Finding = {
                "phase": "startup",
                "limit_s": limits["startup_s"],
                "elapsed_s": now - p.t_spawn,
                "ranks_without_batch": waiting,
                "ranks_started": len(p.known),
            }
            if waiting:
                f["rank"] = waiting[0]
            return f
        return None
    running = {r: t for r, t in p.last_batch.items() if r not in p.finished}
    if running:
        r, t = min(running.items(), key=lambda kv: kv[1])
        if now - t > limits["stall_s"]:
            return {
                "phase": "stall",
                "limit_s": limits["stall_s"],
                "elapsed_s": now - t,
                "rank": r,
                "ranks_finished": sorted(p.finished, key=str),
            }
        return None
    t = max(p.finished.values())
    if now - t > limits["stall_s"]:  # every rank finished: the gather and the exit are left
        return {"phase": "teardown", "limit_s": limits["stall_s"], "elapsed_s": now - t}
    return None


@dataclass(frozen=True)
class Decision:
    """``fired``: the watchdog's finding (a hang). ``stuck``: the child reported an error and did not
    exit within ``exit_s`` (the error stays the outcome). Neither: go on."""

    fired: Finding | None = None
    stuck: Finding | None = None

    @property
    def stop(self) -> bool:
        return self.fired is not None or self.stuck is not None


GO_ON = Decision()


def decide(p: Progress, now: float, limits: Limits, watch: Watch) -> Decision:
    """One poll of a running child. After an error only ``exit_s`` applies (a slow shutdown after an
    error is not a hang); else the total limit, then the strategy's own start-up/stall ``watch``."""
    if p.error_at is not None:
        if now - p.error_at > limits["exit_s"]:
            return Decision(stuck={"phase": "exit", "limit_s": limits["exit_s"], "elapsed_s": now - p.error_at})
        return GO_ON
    if now - p.t_spawn > limits["total_s"]:
        fired: Finding | None = {"phase": "total", "limit_s": limits["total_s"], "elapsed_s": now - p.t_spawn}
    else:
        fired = watch(p, now, limits)
    if fired is None:
        return GO_ON
    fired["batches_done"] = p.batches_done(fired["rank"]) if "rank" in fired else p.batches_done()
    return Decision(fired=fired)


# --- a failed torchrun job: whose failure is it ------------------------------------------------------


@dataclass(frozen=True)
class Culprit:
    """The rank a failed torchrun job is charged to, and the exit and progress its evidence shows.

    ``source``: ``watchdog`` (the finding names the rank, or none), ``error`` (the first rank that
    reported an error; ranks failing afterwards, e.g. in the final collective, are "ended"),
    ``torchrun`` (the root cause of torchrun's failure summary: a rank killed by a signal reports
    nothing itself), ``agent`` (none of these: torchrun's own exit).
    """

    source: str
    rank: int | None
    exit_code: int | None
    exit_signal: int | None
    batches_done: int


def split_exit(code: int | None) -> tuple[int | None, int | None]:
    """(exit code, signal) of a returncode: negative means killed by that signal."""
    if code is not None and code < 0:
        return None, -code
    return code, None


def failing_rank(
    fired: Mapping[str, Any] | None,
    errors: Sequence[Mapping[str, Any]],
    failures: Sequence[Mapping[str, Any]],
    batches_by_rank: Mapping[int, int],
    returncode: int | None,
) -> Culprit:
    """NOTE [a torchrun child]: the watchdog's rank, else the first error, else torchrun's root cause,
    else the agent. ``failures``: :func:`~.launch.torchrun_failures` (root cause first)."""
    if fired is not None:
        code, sig = split_exit(returncode)
        rank = fired.get("rank")
        return Culprit("watchdog", None if rank is None else int(rank), code, sig, int(fired.get("batches_done", 0)))
    if errors:
        root = errors[0]
        rank = int(root["rank"])
        f = next((x for x in failures if x["rank"] == rank), None)
        code, sig = split_exit(f["exitcode"] if f else None)
        return Culprit("error", rank, code, sig, int(root.get("batch", 0)))
    if failures:
        f = failures[0]
        code, sig = split_exit(int(f["exitcode"]))
        return Culprit("torchrun", int(f["rank"]), code, sig, int(batches_by_rank.get(int(f["rank"]), 0)))
    code, sig = split_exit(returncode)
    return Culprit("agent", None, code, sig, min(batches_by_rank.values(), default=0))


def rank_state(
    rank: int, finished: bool, own_errors: Iterable[Mapping[str, Any]], failed_rank: int | None, failed_kind: str | None
) -> tuple[str, str | None, str | None]:
    """(state, outcome kind, note) of one rank's row: ``finished`` (and no error of its own), ``failed``
    (the rank the job is charged to), else ``ended`` (by torchrun or the runner, or by its own later
    error, named in the note)."""
    own = list(own_errors)
    if finished and not own:
        return "finished", None, None
    if failed_kind is not None and rank == failed_rank:
        return "failed", failed_kind, None
    if own:
        msg = str(own[0].get("message") or "")
        note = f"{own[0].get('type')}: {msg.splitlines()[0][:200] if msg else ''}"
    else:
        note = "ended by torchrun or the runner"
    if failed_rank is not None:
        note += f" (after rank {failed_rank} failed)"
    return "ended", None, note


def run_passed(
    *,
    fired: Mapping[str, Any] | None,
    returncode: int | None,
    finished: bool,
    errors: int,
    batches: Sequence[int],
    wanted: int,
) -> bool:
    """A run passed: no watchdog finding, exit 0, every loader finished with no error and ``wanted``
    batches each (``batches``: per loader; one entry for a single process)."""
    return (
        fired is None
        and returncode == 0
        and finished
        and errors == 0
        and bool(batches)
        and all(b >= wanted for b in batches)
    )


__all__ = [
    "Watchdog",
    "Limits",
    "Progress",
    "Decision",
    "decide",
    "watch_single",
    "watch_ranks",
    "Culprit",
    "failing_rank",
    "rank_state",
    "split_exit",
    "run_passed",
]
