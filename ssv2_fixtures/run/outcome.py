"""The failure kinds, each defined once: how it is recognised, its summary and its remedy.

:func:`classify` turns what the runner gathered about one finished child (exit status, the child's
error event, stderr, watchdog, monitor peaks, cgroup counters) into one :class:`Outcome`. Rules are tried
in the order of :data:`KINDS`; the first that matches wins, so more specific evidence (an errno, a
signal named by the DataLoader) comes before generic evidence (any worker exception). Nothing is guessed:
what matches no rule is ``unknown`` with all the evidence attached.

Order matters in two places:

- resource kinds (shm, fds, TMPDIR, memory) come before ``decode_error``: :class:`~ssv2_fixtures.clips.
  ClipDecodeError` wraps *any* failure inside the decoder, so "cannot decode ...: Too many open files" or
  decord's ``avcodec_send_packet ... (-12 vs. 0)`` (FFmpeg's ``AVERROR(ENOMEM)``) is a resource running
  out, reported through the decoder;
- ``hang`` is only the watchdog (or ``DataLoader(timeout=...)``): the runner does not pass the watchdog
  once the child has reported an error (a slow shutdown after an error is not a hang).

``batch`` in an outcome is the number of batches the **main process received** before the failure, not
the index of the batch whose loading failed: with workers, a batch is loaded ``num_workers ×
prefetch_factor`` batches ahead, and torch's SIGCHLD handler raises in the main process as soon as a
worker dies, before the batches already prefetched are consumed (a worker killed while loading batch 2
with ``W=2`` reads ``batch=0``; an exception raised there is re-raised in order and reads ``batch=2``).
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..data.webm import remedy_for
from .schema import OutcomeRecord
from .shm import fit_advice
from .units import GiB, fmt_bytes


@dataclass
class Evidence:
    """Everything known about a finished child; built by the runner."""

    exit_code: int | None = None  # child main's exit status (None if killed by a signal)
    exit_signal: int | None = None  # signal that ended the child main
    error: Mapping[str, Any] | None = None  # the child's ``error`` event (type, message, traceback, errno)
    stderr_tail: str = ""
    watchdog: Mapping[str, Any] | None = None  # {"phase", "limit_s", "elapsed_s"} when it fired
    batches_done: int = 0
    config: Mapping[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)  # shm/tmp/fd/rss peaks, cgroup counters, budget

    @property
    def text(self) -> str:
        err = self.error or {}
        return "\n".join(
            str(x) for x in (err.get("type", ""), err.get("message", ""), err.get("traceback", ""), self.stderr_tail)
        )


@dataclass(frozen=True)
class FailureKind:
    name: str
    summary: str
    matches: Callable[[Evidence], bool]
    remedy: Callable[[Evidence], str]


def _has(ev: Evidence, *needles: str) -> bool:
    t = ev.text
    return any(n in t for n in needles)


def _raised(ev: Evidence, *types: str) -> bool:
    """The child's error (or one in its cause chain) is of one of these types."""
    chain = (ev.error or {}).get("chain") or []
    return any(t in chain for t in types)


def _data_remedy(ev: Evidence) -> str:
    fix = (ev.error or {}).get("fix")  # a FactoryError carries its own fix (file:line of the user's code)
    if fix:
        return str(fix)
    if _raised(ev, "SplitTooSmallError"):
        return (
            "the config can never form a full batch from this split (the message names the split size and "
            "batch size): lower batch_size or the rank count, set drop_last=False, or use a larger split"
        )
    return "fix the file and entry named in the message, or skip missing videos (--ssv2-skip-missing)"


def _errno(ev: Evidence) -> int | None:
    err = ev.error or {}
    if err.get("errno") is not None:
        return int(err["errno"])
    m = re.search(r"\[Errno (\d+)\]", ev.text)
    return int(m.group(1)) if m else None


_SIGNAL_WORDS = {
    "Bus error": signal.SIGBUS,
    "Segmentation fault": signal.SIGSEGV,
    "Killed": signal.SIGKILL,
    "Aborted": signal.SIGABRT,
}


def worker_signal(ev: Evidence) -> int | None:
    """The signal a DataLoader worker died of, as torch reports it (``is killed by signal: Bus error``)."""
    m = re.search(r"DataLoader worker \(pid \d+\) is killed by signal: ([A-Za-z ]+?)\.", ev.text)
    if m:
        return int(_SIGNAL_WORDS.get(m.group(1), 0)) or None
    return None


def _signalled(ev: Evidence, sig: int) -> bool:
    return (
        ev.exit_signal == sig
        or worker_signal(ev) == sig
        or (sig == signal.SIGBUS and "Fatal Python error: Bus error" in ev.stderr_tail)
        or (sig == signal.SIGSEGV and "Fatal Python error: Segmentation fault" in ev.stderr_tail)
    )


def _in_loading_code(ev: Evidence) -> bool:
    return _has(ev, "DataLoader worker process", "__getitem__", "_MapDatasetFetcher", "in fetch")


def shm_state(facts: Mapping[str, Any]) -> str:
    """``the emulated /dev/shm holds 64 MiB in all; at most 37 MiB of it was in use (27 MiB still free)``:
    used and free named apart, from the monitor's samples (a failed allocation is refused whole, so the
    most in use can be far below the size)."""
    total, free = facts.get("shm_total_bytes"), facts.get("shm_free_bytes")
    emulated = bool((facts.get("emulated") or {}).get("shm_bytes"))
    where = f"the {'emulated ' if emulated else ''}/dev/shm"
    if not total:
        return ""
    text = f"{where} holds {fmt_bytes(total)} in all"
    if free is not None:
        text += (
            f"; at most {fmt_bytes(max(0, int(total) - int(free)))} of it was in use at a sample "
            f"({fmt_bytes(free)} still free)"
        )
    return text


def _shm_remedy(ev: Evidence) -> str:
    f, c = ev.facts, ev.config
    need = f.get("shm_need_bytes")
    w, pf, bs = c.get("num_workers", "?"), c.get("prefetch_factor") or 2, c.get("batch_size", "?")
    ranks = int(f.get("ranks") or 1)
    emulated = bool((f.get("emulated") or {}).get("shm_bytes"))
    # judged against the /dev/shm the run had: the emulated one under --emulate, else what was free
    avail = f.get("shm_available_bytes") or f.get("shm_total_bytes")
    state = shm_state(f)
    head = f"needs ~{fmt_bytes(need)} of /dev/shm in flight" if need else "/dev/shm is full"
    if f.get("during"):
        head += " with every prefetch slot full (as when the training step is slower than the loader)"
    if state:
        head += f"; {state}"
    size = f"{-(-max(need * 2, GiB) // GiB)}g" if need else "8g"  # twice the need, whole GiB, >= 1g
    per_item = f.get("bytes_per_item") or (
        f["batch_bytes"] / bs if f.get("batch_bytes") and isinstance(bs, int) and bs > 0 else None
    )
    alone, change = "", ""
    if per_item and avail and isinstance(bs, int) and isinstance(w, int):
        where = f"the {'emulated ' if emulated else ''}/dev/shm"
        alone, change = fit_advice(bs, w, c.get("prefetch_factor"), float(per_item), int(avail), where, ranks)
    each = f", in each of the {ranks} ranks on this node: they share one /dev/shm" if ranks > 1 else ""
    lower = change + each if change else f"lower prefetch_factor×num_workers×batch_size (now {pf}×{w}×{bs}{each})"
    return (
        f"{head}. {alone + ' ' if alone else ''}Run the container with --shm-size={size}, or {lower}; "
        "both sharing strategies allocate in /dev/shm"
    )


KINDS: tuple[FailureKind, ...] = (
    FailureKind(
        "hang",
        "the watchdog found no progress in time and ended the process group",
        # not when a worker's queue feeder could not put a batch in /dev/shm: that batch is dropped (a custom
        # collate's tensors are shared at pickling, in the feeder thread) and the loader waits forever for it
        lambda ev: (
            (ev.watchdog is not None or _has(ev, "DataLoader timed out after"))
            and not ("in _feed" in ev.stderr_tail and "unable to allocate shared memory" in ev.stderr_tail)
        ),
        lambda ev: (
            (
                "TMPDIR's path is too long for multiprocessing's AF_UNIX sockets (max 107 bytes): use a "
                "shorter TMPDIR; "
                if "AF_UNIX path too long" in ev.text
                else ""
            )
            + (
                "no batch arrived within the limit: set DataLoader(timeout=...) so a stuck worker raises "
                "instead of hanging; see the stack dump for where it stopped (an fd limit with the "
                "file_descriptor strategy, a decoder spinning on a bad video (decord#373), or a deadlock)"
            )
        ),
    ),
    FailureKind(
        "data_error",
        "the annotations or video files are wrong (bad entry, missing video)",
        lambda ev: (
            _has(ev, "AnnotationError", "MissingVideosError") or _raised(ev, "FactoryError", "SplitTooSmallError")
        ),
        lambda ev: _data_remedy(ev),
    ),
    FailureKind(
        "shm_exhausted",
        "shared memory (/dev/shm) ran out while a batch was being shared",
        lambda ev: (
            _has(ev, "unable to allocate shared memory", "unable to write to file </torch_")
            or (_errno(ev) == 28 and _has(ev, "/dev/shm", "</torch_"))
            # "unable to mmap N bytes from file </torch_…>" is shm only with ENOSPC; with ENOMEM (12) it is
            # the address space (RLIMIT_AS) running out: memory_error
            or bool(re.search(r"unable to mmap \d+ bytes from file </torch_[^>]*>: No space left on device", ev.text))
        ),
        _shm_remedy,
    ),
    FailureKind(
        "tmp_full",
        "the temporary directory (TMPDIR) ran out of space or quota",
        lambda ev: _errno(ev) in (28, 122) or _has(ev, "No space left on device", "Disk quota exceeded"),
        lambda ev: (
            f"TMPDIR ({ev.facts.get('tmpdir', '?')}) is full or over quota "
            f"({fmt_bytes(ev.facts.get('tmp_free_bytes'))} free): point TMPDIR (--loader-tmpdir) at a "
            "disk with room, or clean up temp files the pipeline leaves behind"
        ),
    ),
    FailureKind(
        "fd_exhausted",
        "the process ran out of open file descriptors",
        lambda ev: (
            _errno(ev) == 24
            or _has(ev, "Too many open files", "received 0 items of ancdata")
            or ("EOFError" in ev.text and "recvfds" in ev.text)
        ),
        lambda ev: (
            f"raise the limit (ulimit -n 65536; now {ev.facts.get('nofile', '?')}) or use "
            "torch.multiprocessing.set_sharing_strategy('file_system'), which passes no fds"
        ),
    ),
    FailureKind(
        "bus_error",
        "a process was killed by SIGBUS (a write to shared/mapped memory with no backing)",
        lambda ev: _signalled(ev, signal.SIGBUS),
        lambda ev: (
            "a mapped file lost its backing: usually /dev/shm filled up under a memory mapping; give "
            f"/dev/shm more room (now {fmt_bytes(ev.facts.get('shm_total_bytes'))}, e.g. --shm-size=8g) "
            "and lower num_workers×prefetch_factor×batch_size"
        ),
    ),
    FailureKind(
        "segfault",
        "a process was killed by SIGSEGV (a crash in native code: decoder, torch)",
        lambda ev: _signalled(ev, signal.SIGSEGV),
        lambda ev: (
            "a native library crashed: check the stderr tail for the frame; make sure torch is "
            "imported before decord and no VideoReader is opened before the fork (decord#294)"
        ),
    ),
    FailureKind(
        "oom_killed",
        "the kernel's OOM killer ended a process (memory cap reached)",
        lambda ev: (_signalled(ev, signal.SIGKILL)) and bool(ev.facts.get("cgroup_oom_kills")),
        lambda ev: (
            f"the process tree hit its memory cap ({fmt_bytes(ev.facts.get('mem_limit_bytes'))}, RSS peak "
            f"{fmt_bytes(ev.facts.get('rss_peak_bytes'))}): use fewer workers or a smaller batch/prefetch, "
            "or give the job more memory"
        ),
    ),
    FailureKind(
        "memory_error",
        "an allocation failed (MemoryError / can't allocate memory: address-space or RAM limit)",
        lambda ev: (
            _has(ev, "MemoryError", "can't allocate memory", "std::bad_alloc")
            # strerror(ENOMEM) ("Cannot allocate memory"), glibc's "cannot allocate memory for thread-local
            # data" (a worker ending with exit code 127), and FFmpeg's AVERROR(ENOMEM) as decord reports it
            or bool(re.search(r"[Cc]annot allocate memory|\(-12 vs\. 0\)", ev.text))
        ),
        lambda ev: (
            "an allocation was refused (ulimit -v / RLIMIT_AS or RAM): raise the limit or lower "
            "num_workers×prefetch_factor×batch_size"
        ),
    ),
    FailureKind(
        "decode_error",
        "a video could not be decoded (corrupt, truncated, empty, not a video)",
        lambda ev: _has(ev, "ClipDecodeError"),
        lambda ev: (
            remedy_for(ev.text)
            or "re-download or re-encode the video named in the message, or run "
            "with on_error='skip' (SSv2Clips) to substitute and count bad videos"
        ),
    ),
    FailureKind(
        "worker_killed",
        "a DataLoader worker was killed by SIGKILL (often the OOM killer, outside a cgroup)",
        # Only the signal named by torch counts: "exited unexpectedly with exit code N" is an exit, not a
        # kill, and a bare "exited unexpectedly" says nothing about the cause (both stay ``unknown``).
        lambda ev: worker_signal(ev) == signal.SIGKILL,
        lambda ev: (
            "check `dmesg` for the OOM killer; lower num_workers or batch_size, or give the job more "
            f"memory (RSS peak {fmt_bytes(ev.facts.get('rss_peak_bytes'))})"
        ),
    ),
    FailureKind(
        "worker_exception",
        "the dataset or collate code raised a Python exception",
        lambda ev: ev.error is not None and _in_loading_code(ev),
        lambda ev: (
            "fix the exception shown in the traceback (it is raised by the dataset code, not by the loader settings)"
        ),
    ),
    FailureKind(
        "main_crashed",
        "the main (training) process was killed by a signal",
        lambda ev: ev.exit_signal is not None,
        lambda ev: (
            f"the main process died of {signame(ev.exit_signal)}: look for an external kill or the "
            "OOM killer (dmesg); RSS peak " + fmt_bytes(ev.facts.get("rss_peak_bytes"))
        ),
    ),
)

KIND_NAMES: tuple[str, ...] = tuple(k.name for k in KINDS) + ("unknown",)
_BY_NAME = {k.name: k for k in KINDS}


def kind(name: str) -> FailureKind:
    return _BY_NAME[name]


def signame(sig: int | None) -> str:
    """A signal's name (``SIGKILL``), ``signal N`` for a number with no name, ``no signal`` for None: the one
    formatter of a signal for outcomes and rank rows."""
    if sig is None:
        return "no signal"
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _first_line(ev: Evidence) -> str:
    err = ev.error or {}
    msg = str(err.get("message") or "").strip()
    # "exited unexpectedly" is the outer error; the line naming the worker's signal says more.
    m = re.search(r"DataLoader worker \(pid \d+\) is killed by signal: [^\n]*", ev.text)
    if m:
        return m.group(0)[:500]
    # torch re-raises worker errors as "Caught X in DataLoader worker process N.\nOriginal Traceback ...":
    # the last line of the original traceback says more than the first.
    if msg.startswith("Caught ") and "Original Traceback" in msg:
        lines = [ln for ln in msg.splitlines() if ln.strip()]
        msg = f"{lines[0]} {lines[-1].strip()}"
    elif msg:
        msg = msg.splitlines()[0]
    if err.get("type") and msg:
        # a FactoryError (it has ``what``) is one line written to be read whole: the user's fix is in it
        return f"{err['type']}: {msg}" if err.get("what") else f"{err['type']}: {msg}"[:500]
    if err.get("type"):  # a bare exception (EOFError from recvfds): where it was raised says more
        frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', str(err.get("traceback") or ""))
        if frames:
            path, line, func = frames[-1]
            return f"{err['type']} (no message) in {func} ({path.rsplit('/', 1)[-1]}:{line})"
        return f"{err['type']} (no message)"
    if ev.watchdog:
        w = ev.watchdog
        return f"no progress: {w.get('phase')} limit {w.get('limit_s')} s passed"
    if ev.exit_signal is not None:
        return f"child main process killed by {signame(ev.exit_signal)}"
    for ln in reversed(ev.stderr_tail.splitlines()):
        if ln.strip():
            return ln.strip()[:500]
    return f"child exited with status {ev.exit_code}"


def classify(ev: Evidence) -> OutcomeRecord:
    """One outcome for a failed child. The caller decides that the run failed; this says why."""
    batch = (ev.error or {}).get("batch", ev.batches_done)
    evidence = dict(ev.facts)
    evidence.update(exit_code=ev.exit_code, exit_signal=signame(ev.exit_signal) if ev.exit_signal else None)
    if ev.watchdog:
        evidence["watchdog"] = dict(ev.watchdog)
    if (sig := worker_signal(ev)) is not None:
        evidence["worker_signal"] = signame(sig)
    if (e := _errno(ev)) is not None:
        evidence["errno"] = e
    for key in ("what", "file", "line"):  # where a user's pipeline went wrong (FactoryError.event_fields)
        if (ev.error or {}).get(key) is not None:
            evidence[key] = (ev.error or {})[key]
    for k in KINDS:
        if k.matches(ev):
            return OutcomeRecord(
                kind=k.name, batch=batch, message=_first_line(ev), evidence=evidence, remedy=k.remedy(ev)
            )
    return OutcomeRecord(
        kind="unknown",
        batch=batch,
        message=_first_line(ev),
        evidence=evidence,
        remedy="not recognised: read the traceback and stderr tail in the result and report it",
    )
