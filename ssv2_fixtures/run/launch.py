"""Parent side of ``-m distributed``: how torchrun is launched, and what its ranks' results mean.

- :class:`Launch`: the torchrun command line (``python -m torch.distributed.run``, PyTorch's own
  launcher): ``--standalone`` on one node, or ``--nnodes/--node-rank/--rdzv-endpoint`` passed through
  (static rendezvous: the node with ``--node-rank 0`` hosts the store at the endpoint);
- :func:`epoch_check`: DistributedSampler's rule, checked on the indices each rank received;
- :func:`torchrun_failures`: the failed ranks as torchrun's agent reports them (its ``ChildFailedError``
  summary), for a rank that died without reporting (a signal in the rank's main process);
- :func:`rank_rows`: one row per local rank (batches, videos, videos/s, memory of its process subtree).

How a child starts and is followed (a single process or torchrun) is :mod:`.strategy`.

NOTE [DistributedSampler's rule]
    With ``n`` items and ``W`` ranks, DistributedSampler gives each rank ``num_samples`` items per epoch:
    ``ceil(n / W)`` with ``drop_last=False``, ``floor(n / W)`` with ``drop_last=True`` (n not divisible by W);
    ``total = num_samples * W``. It permutes the n indices (``shuffle``, seeded with ``seed + epoch``),
    then with ``drop_last=False`` *pads* the list to ``total`` by repeating its first ``total - n``
    indices (cyclically if n < total - n), and with ``drop_last=True`` drops the last ``n - total``.
    Rank r takes positions ``r, r + W, r + 2W, …``. So within an epoch the ranks' sets are disjoint except
    for the padding (``total - n`` repeats, each at the end of some rank's share), and together they
    cover all n indices (``drop_last=False``) or all but the ``n - total`` dropped ones (``drop_last=True``).
    The DataLoader's own ``drop_last`` then drops each rank's last ``num_samples % batch_size`` items.
    The padded list is known up to the permutation, so the expected number of distinct indices and of
    repeats for any prefix each rank received is exact, whatever the seed: :func:`epoch_check`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..data.loader import distributed_samples
from .record import batch_metrics

LAUNCHER = ("-m", "torch.distributed.run")


def parse_endpoint(text: str, *, where: str = "rdzv endpoint") -> str:
    """``HOST:PORT`` (a hostname, IPv4, or ``[IPv6]``); a bad value names where it came from."""
    m = re.fullmatch(r"\s*(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})\s*", str(text))
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ValueError(f"invalid rendezvous endpoint {text!r} from {where}: use HOST:PORT (e.g. node0:29500)")
    return f"{m.group(1)}:{int(m.group(2))}"


@dataclass(frozen=True)
class Launch:
    """How many ranks, on how many nodes; this node's rank and the rendezvous endpoint."""

    nproc_per_node: int = 2
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None

    def __post_init__(self) -> None:
        for name in ("nproc_per_node", "nnodes", "node_rank"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"Launch.{name}: must be an integer, got {v!r}")
        if self.nproc_per_node < 1 or self.nnodes < 1:
            raise ValueError("Launch: nproc_per_node and nnodes must be >= 1")
        if not 0 <= self.node_rank < self.nnodes:
            raise ValueError(
                f"Launch.node_rank: must be in [0, {self.nnodes - 1}] for {self.nnodes} node(s), got {self.node_rank}"
            )
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError(
                f"Launch: {self.nnodes} nodes need a rendezvous endpoint (--rdzv-endpoint HOST:PORT "
                "of the node with --node-rank 0)"
            )
        if self.rdzv_endpoint:
            object.__setattr__(self, "rdzv_endpoint", parse_endpoint(self.rdzv_endpoint, where="Launch"))

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    def argv(self, log_dir: str) -> list[str]:
        """torchrun's command line up to (not including) the entry point.

        ``--redirects 3`` with ``--log-dir``: each rank's stdout/stderr go to its own files in the run
        folder (``<log_dir>/<id>/attempt_0/<local_rank>/stderr.log``), so a failing rank's stderr is
        its own, and torchrun's own stderr holds the agent's log and its failure summary.
        """
        cmd = [
            sys.executable,
            *LAUNCHER,
            "--nproc-per-node",
            str(self.nproc_per_node),
            "--max-restarts",
            "0",
            "--log-dir",
            log_dir,
            "--redirects",
            "3",
        ]
        if self.nnodes == 1 and not self.rdzv_endpoint:
            cmd.append("--standalone")
        else:
            cmd += [
                "--nnodes",
                str(self.nnodes),
                "--node-rank",
                str(self.node_rank),
                "--rdzv-endpoint",
                str(self.rdzv_endpoint),
            ]
        return cmd

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["world_size"] = self.world_size
        return d


# --- DistributedSampler's rule --------------------------------------------------------------------


def _sizes(n: int, world: int, drop_last: bool) -> tuple[int, int]:
    """(num_samples per rank, total_size): DistributedSampler's per-rank count is
    :func:`~ssv2_fixtures.data.loader.distributed_samples` (the one copy, tested against torch)."""
    num = distributed_samples(n, world, drop_last=drop_last)
    return num, num * world


def expected_counts(n: int, world: int, received: Mapping[int, int], drop_last: bool) -> tuple[int, int]:
    """(distinct indices, repeats) when rank r received the first ``received[r]`` items of its share."""
    num, total = _sizes(n, world, drop_last)
    originals: set[int] = set()
    count = 0
    for r, m in received.items():
        for i in range(min(m, num)):
            p = r + world * i  # position in the padded (or cut) permuted list
            originals.add(p if p < n else (p - n) % n)
            count += 1
    return len(originals), count - len(originals)


def epoch_check(
    n: int, world: int, batch_size: int, drop_last: bool, seen: Mapping[int, Sequence[int]], epoch: int = 0
) -> dict[str, Any]:
    """Check one epoch's received indices (rank → indices in order) against NOTE [DistributedSampler's rule].

    ``complete``: every rank received its whole share (num_samples, less the DataLoader's drop_last
    tail). For a complete epoch with ``drop_last=False`` the union is the whole dataset.
    """
    num, total = _sizes(n, world, drop_last)
    per_epoch = (num // batch_size) * batch_size if drop_last else num
    counts = {int(r): len(v) for r, v in seen.items()}
    flat = [int(i) for v in seen.values() for i in v]
    union = len(set(flat))
    repeats = len(flat) - union
    want_union, want_repeats = expected_counts(n, world, counts, drop_last)
    complete = len(counts) == world and all(c == per_epoch for c in counts.values())
    problems = []
    out_of_range = [i for i in flat if not 0 <= i < n]
    if out_of_range:
        problems.append(f"indices outside [0, {n}): {out_of_range[:5]}")
    over = {r: c for r, c in counts.items() if c > per_epoch}
    if over:
        problems.append(f"ranks received more than their share of {per_epoch}: {over}")
    if union != want_union or repeats != want_repeats:
        problems.append(f"{union} distinct / {repeats} repeated indices, the rule says {want_union} / {want_repeats}")
    if complete and not drop_last and union != n:
        problems.append(f"a complete epoch covers {union} of {n} indices")
    pad = total - n if not drop_last else 0
    dropped = n - total if drop_last else 0
    rule = (
        f"n={n}, {world} ranks, drop_last={drop_last}: {num} per rank, "
        + (
            f"padded with {pad} repeat(s) of the first indices"
            if pad
            else f"{dropped} index(es) dropped from the tail"
            if dropped
            else "no padding, nothing dropped"
        )
        + (f", loader drops each rank's last {num % batch_size}" if drop_last and num % batch_size else "")
    )
    detail = (
        f"epoch {epoch}: " + ("complete" if complete else "partial") + f", {len(flat)} received by "
        f"{len(counts)} rank(s), {union} distinct, {repeats} repeated ({rule})"
    )
    return {
        "epoch": epoch,
        "ok": not problems,
        "complete": complete,
        "received": len(flat),
        "per_rank": counts,
        "distinct": union,
        "repeats": repeats,
        "expected_distinct": want_union,
        "expected_repeats": want_repeats,
        "covers_dataset": complete and union == n,
        "detail": detail + ("; " + "; ".join(problems) if problems else ""),
    }


def coverage(indices: Mapping[str, Any], n: int, batch_size: int, drop_last: bool) -> list[dict[str, Any]]:
    """:func:`epoch_check` for every epoch in the gathered indices file (``{"world_size", "ranks":
    [{"rank", "epochs": [[...], ...]}, ...]}``)."""
    world = int(indices["world_size"])
    ranks = indices.get("ranks") or []
    epochs = max((len(r.get("epochs") or []) for r in ranks), default=0)
    out = []
    for e in range(epochs):
        seen = {int(r["rank"]): list(r["epochs"][e]) for r in ranks if e < len(r.get("epochs") or [])}
        seen = {r: v for r, v in seen.items() if v or e == 0}
        if not seen:
            continue
        out.append(epoch_check(n, world, batch_size, drop_last, seen, epoch=e))
    return out


# --- torchrun's failure summary ------------------------------------------------------------------

_FAILURE = re.compile(
    r"host\s*:\s*(?P<host>\S+)\s*\n\s*rank\s*:\s*(?P<rank>\d+)\s*\(local_rank:\s*(?P<local>\d+)\)\s*\n"
    r"\s*exitcode\s*:\s*(?P<code>-?\d+)\s*\(pid:\s*(?P<pid>\d+)\)"
)


def torchrun_failures(text: str) -> list[dict[str, Any]]:
    """The failed ranks of torchrun's ``ChildFailedError`` summary, the root cause first.

    Each: rank, local_rank, host, exitcode (negative: killed by that signal), pid, root_cause.
    """
    out = []
    root_at = text.rfind("Root Cause (first observed failure)")
    for m in _FAILURE.finditer(text):
        out.append(
            {
                "rank": int(m["rank"]),
                "local_rank": int(m["local"]),
                "host": m["host"],
                "exitcode": int(m["code"]),
                "pid": int(m["pid"]),
                "root_cause": root_at >= 0 and m.start() > root_at,
            }
        )
    return sorted(out, key=lambda f: not f["root_cause"])


# --- per-rank rows --------------------------------------------------------------------------------


def subtree(parents: Mapping[int, int], root: int) -> set[int]:
    """``root`` and every pid whose recorded parent chain leads to it."""
    out = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in out and pid not in out:
                out.add(pid)
                changed = True
    return out


def subtree_peaks(samples: Sequence[Any], pids: set[int]) -> tuple[int, int] | None:
    """(RSS bytes, processes) of ``pids`` at their peak over the monitor's samples (``per_process`` =
    (pid, name, rss)), each the most seen in one sample; ``None`` without samples. A process count here
    is what a sample caught: a lower bound on what ran, never more than ran."""
    if not samples or not pids:
        return None
    rss = max(sum(x[2] for x in s.per_process if x[0] in pids) for s in samples)
    procs = max(sum(1 for x in s.per_process if x[0] in pids) for s in samples)
    return rss, procs


_ROW_METRICS = (
    "first_batch_s",
    "startup_s",
    "videos_per_s",
    "wait_fraction",
    "bound",
    "wait_ms_p50",
    "wait_ms_p95",
    "wait_ms_p99",
    "videos_per_s_interval",
    "interval_batches",
    "interval_method",
    "bytes_per_batch",
)


def rank_rows(
    events: Iterable[Mapping[str, Any]], samples: Sequence[Any], parents: Mapping[int, int], workers: int = 0
) -> list[dict[str, Any]]:
    """One row per rank that reported (``started``): its batches, videos, rates and memory.

    ``samples``: the monitor's samples (``per_process`` = (pid, name, rss)); a rank's RSS is that of its
    process subtree (its main process and its DataLoader workers).
    """
    by_rank: dict[int, dict[str, Any]] = {}
    batches: dict[int, list[Mapping[str, Any]]] = {}
    for e in events:
        r = e.get("rank")
        if r is None:
            continue
        row = by_rank.setdefault(int(r), {"rank": int(r)})
        kind = e.get("ev")
        if kind == "started":
            row.update(
                pid=e.get("pid"), local_rank=e.get("local_rank"), node_rank=e.get("node_rank"), t_started=e.get("t")
            )
        elif kind == "ready":
            row.update(epoch_batches=e.get("epoch_batches"), epoch_samples=e.get("epoch_samples"))
        elif kind == "batch":
            batches.setdefault(int(r), []).append(e)
        elif kind == "workers":  # the rank's own report of its iterator's workers (NOTE [rank events])
            pids = [int(p) for p in e.get("pids") or []]
            row["worker_pids"] = pids
            row["workers_started"] = max(int(row.get("workers_started", 0)), len(pids))
        elif kind == "finished":
            row.update(finished=True, loop_s=e.get("loop_s"), epochs=e.get("epochs"))
    rows = []
    for r in sorted(by_rank):
        row = by_rank[r]
        batch_events = batches.get(r, [])
        waits = [float(e["wait_s"]) for e in batch_events]
        row.setdefault("finished", False)
        row.update(batches=len(batch_events), videos=sum(int(e["videos"]) for e in batch_events), waits_s=waits)
        if batch_events:  # the metrics core of one loading process, per rank
            core = batch_metrics(
                batch_events,
                started={"t": row["t_started"]} if row.get("t_started") is not None else None,
                workers=workers,
            )
            row.update({k: v for k, v in core.items() if k in _ROW_METRICS})
        pid = row.get("pid")
        peaks = subtree_peaks(samples, subtree(parents, int(pid))) if pid is not None else None
        if peaks is not None:
            row["rss_peak_bytes"], row["procs_peak"] = peaks
        row.pop("t_started", None)
        rows.append(row)
    return rows


__all__ = [
    "Launch",
    "parse_endpoint",
    "expected_counts",
    "epoch_check",
    "coverage",
    "torchrun_failures",
    "rank_rows",
    "subtree",
    "subtree_peaks",
]
