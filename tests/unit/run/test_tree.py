"""The tree room's parts that need no child: which processes can take a stack-dump signal, and
what cleanup counts and removes. Ending a real tree is in test_runner.py (check_isolation)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssv2_fixtures.run.tree import _catches, cleanup


def test_catches_reads_the_installed_handler() -> None:
    old = signal.signal(signal.SIGUSR2, lambda *_: None)
    try:
        assert _catches(os.getpid(), signal.SIGUSR2)
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert not _catches(os.getpid(), signal.SIGUSR2)
    assert not _catches(2**22 + 12345, signal.SIGUSR2)  # no such pid: no handler, no error


@dataclass
class _Seen:
    """What cleanup reads of a monitor: the pids it saw."""

    seen: dict[int, float] = field(default_factory=dict)

    def last_tmp_reading(self) -> Any:
        return None


def test_cleanup_removes_only_this_trees_shm_files_and_counts_tmpdir(tmp_path: Path) -> None:
    pid = 2**22 + 4242  # above the default pid_max: never a live process here
    mine = Path(f"/dev/shm/torch_{pid}_ssv2test_{os.getpid()}")
    other = Path(f"/dev/shm/torch_{pid + 1}_ssv2test_{os.getpid()}")
    tmpdir = tmp_path / "tmp"
    (tmpdir / "pymp-abc").mkdir(parents=True)
    (tmpdir / "left.bin").write_bytes(b"x" * 5000)
    try:
        mine.write_bytes(b"y" * 4096)
        other.write_bytes(b"z")
        leaked = cleanup(_Seen({pid: 0.0}), tmpdir, None)  # type: ignore[arg-type]
        assert leaked["leaked_shm_files"] == 1 and leaked["leaked_shm_bytes"] >= 4096
        assert not mine.exists() and other.exists()
        assert leaked["leaked_tmp_files"] == 1 and leaked["leaked_tmp_bytes"] >= 5000
        assert leaked["leaked_mp_dirs"] == 1 and not tmpdir.exists()
    finally:
        mine.unlink(missing_ok=True)
        other.unlink(missing_ok=True)
