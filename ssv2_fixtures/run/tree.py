"""The child's process tree from the outside: dump its stacks, end it, remove what it left.

NOTE [ending a child tree]
    A DataLoader tree is the child main, its workers (forked, same process group) and, with the
    ``file_system`` strategy, ``torch_shm_manager`` daemons. We end it in this order:
    1. on a watchdog expiry (or a child that reported an error and then did not exit within
       ``exit_s``), SIGUSR1 to every process of the tree that has a handler for it, one at a time, each
       after a ``--- pid N (name) ---`` header: ``faulthandler`` (registered in the child main and
       inherited by forked workers) writes every thread's stack to stacks.txt, from a C signal handler,
       so it works even while a thread spins in C holding the GIL (decord#373);
    2. after a normal exit, up to ``GRACE_S`` for the tree to finish by itself (shm managers remove
       their files a few seconds after their clients go; killing them first would leak the files);
    3. SIGTERM to the process group, then SIGKILL to the group and to every process the monitor saw in
       the tree that is still the same process (pid and create time), so no foreign pid is ever hit;
    4. only then are the tree's leftovers counted and removed: ``/dev/shm/torch_<pid>_*`` for the
       tree's pids, and the TMPDIR (multiprocessing's ``pymp-*`` folders counted apart, see
       :func:`cleanup`).

    A child that reported an error first shuts its DataLoader down itself (child.py, NOTE [shutdown
    after an error]), so after an error the healthy workers normally exit in step 2 on their own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil

from .child import STACK_SIGNAL
from .monitor import TreeMonitor, shm_torch_files, tmp_usage
from .sandbox import Prepared

GRACE_S = 5.0


def _catches(pid: int, sig: int) -> bool:
    """Whether ``pid`` has a handler installed for ``sig`` (``SigCgt`` in /proc/<pid>/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith("SigCgt:"):
                    return bool(int(ln.split()[1], 16) >> (sig - 1) & 1)
    except (OSError, ValueError):
        pass
    return False


def dump_stacks(monitor: TreeMonitor, stacks_path: Path) -> None:
    """STACK_SIGNAL to every process of the tree that catches it: faulthandler writes every thread's stack.

    Chosen by the installed handler, not by name: torch names its workers ``pt_data_worker`` and a
    process without the handler (``torch_shm_manager``) would be killed by the signal's default action.
    One process at a time, each after a header line naming it: all of them write to the same file, and
    dumps written at once interleave byte by byte.
    """
    monitor.sample()
    for p in monitor.tree():
        try:
            if not _catches(p.pid, STACK_SIGNAL):
                continue
            with open(stacks_path, "a") as f:
                f.write(f"\n--- pid {p.pid} ({p.name()}) ---\n")
            p.send_signal(STACK_SIGNAL)
        except (psutil.Error, OSError):
            continue
        _wait_quiet(stacks_path)


def _wait_quiet(path: Path, quiet_s: float = 0.15, limit_s: float = 2.0) -> None:
    """Until ``path`` stops growing for ``quiet_s`` (a dump is written in well under that)."""
    deadline = time.time() + limit_s
    last, since = -1, time.time()
    while time.time() < deadline:
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        if size != last:
            last, since = size, time.time()
        elif time.time() - since >= quiet_s:
            return
        time.sleep(0.03)


def end_tree(proc: subprocess.Popen[bytes], monitor: TreeMonitor, *, graceful: bool, groups: bool = False) -> None:
    """See NOTE [ending a child tree]. ``groups``: the tree has processes leading their own groups
    (torchrun's ranks): sample the tree again before each signal and signal each group led by a live
    process of the tree too (a rank's DataLoader workers are in its group)."""
    if graceful:
        deadline = time.time() + GRACE_S
        while time.time() < deadline and (proc.poll() is None or monitor.alive_tree()):
            time.sleep(0.1)
    pgid = proc.pid  # start_new_session: the child leads its own group
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        if groups:
            try:
                monitor.sample()
            except Exception:
                pass
            for p in monitor.alive_tree():
                try:
                    if p.pid != pgid and os.getpgid(p.pid) == p.pid:
                        os.killpg(p.pid, sig)
                except (OSError, psutil.Error):
                    pass
        for p in monitor.alive_tree():
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass
        try:
            proc.wait(timeout=3.0 if sig == signal.SIGTERM else 10.0)
        except subprocess.TimeoutExpired:
            continue
        gone, alive = psutil.wait_procs(monitor.alive_tree(), timeout=2.0 if sig == signal.SIGTERM else 5.0)
        if not alive:
            break
    proc.wait()


def cleanup(monitor: TreeMonitor, tmpdir: Path, prepared: Prepared | None) -> dict[str, int]:
    """Count, then remove, what the tree left: its torch_* shm files and its TMPDIR.

    ``leaked_tmp_*`` leaves out multiprocessing's ``pymp-*`` folders (an AF_UNIX socket each, left by a
    process that was ended by a signal): they are ``leaked_mp_dirs`` (see :func:`~.monitor.tmp_usage`).
    An emulated TMPDIR vanishes with its mount namespace, so for it the count is the last reading taken
    while a process of the tree was alive (within one sample interval of the end).
    """
    leaked = {
        "leaked_shm_files": 0,
        "leaked_shm_bytes": 0,
        "leaked_tmp_files": 0,
        "leaked_tmp_bytes": 0,
        "leaked_mp_dirs": 0,
    }
    if not (prepared and prepared.sandbox.shm_bytes is not None):  # a private shm died with its namespace
        for f in shm_torch_files("/dev/shm", set(monitor.seen)):
            try:
                leaked["leaked_shm_bytes"] += f.stat().st_blocks * 512
                f.unlink()
                leaked["leaked_shm_files"] += 1
            except OSError:
                pass
    if prepared and prepared.sandbox.tmp_bytes is not None:
        last = monitor.last_tmp_reading()  # the tmpfs died with the namespace
        if last:
            leaked["leaked_tmp_files"], leaked["leaked_tmp_bytes"] = last.tmp_files, last.tmp_bytes
            leaked["leaked_mp_dirs"] = last.tmp_mp_dirs
    else:
        leaked["leaked_tmp_files"], leaked["leaked_tmp_bytes"], leaked["leaked_mp_dirs"] = tmp_usage(tmpdir)
    shutil.rmtree(tmpdir, ignore_errors=True)
    return leaked


__all__ = ["GRACE_S", "dump_stacks", "end_tree", "cleanup"]
