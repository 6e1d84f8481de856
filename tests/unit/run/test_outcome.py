"""Classification rules of ssv2_fixtures.run.outcome, on stored evidence text (nothing is run here).

Two sources of text:

- ``data/evidence/evidence.json``: what the runner gathered from *real* failures provoked on this
  machine (``data/evidence/capture.py`` re-captures it): the child's error event, stderr tail, exit
  status, watchdog finding and facts, exactly as :func:`classify` saw them;
- the messages measured on these machines and quoted in shared/DESIGN.md §3, written out here.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from ssv2_fixtures.run.faults import FAULTS
from ssv2_fixtures.run.outcome import KIND_NAMES, KINDS, Evidence, classify, kind, signame, worker_signal

STORED = json.loads((Path(__file__).parents[1] / "fixtures" / "evidence" / "evidence.json").read_text())


def _stored(name: str) -> Evidence:
    c = STORED[name]
    return Evidence(
        exit_code=c["exit_code"],
        exit_signal=c["exit_signal"],
        error=c["error"],
        stderr_tail=c["stderr_tail"],
        watchdog=c["watchdog"],
        batches_done=c["batches_done"],
        config=c["config"],
        facts=dict(c["facts"]),
    )


@pytest.mark.parametrize("name", sorted(STORED))
def test_stored_real_evidence_is_classified_as_captured(name: str) -> None:
    out = classify(_stored(name))
    assert out["kind"] == STORED[name]["expected"], out
    assert out["message"].strip() and out["remedy"].strip()


def test_stored_evidence_covers_every_kind_and_every_drill() -> None:
    assert {c["expected"] for c in STORED.values()} == set(KIND_NAMES)
    drills = {n.removeprefix("drill_") for n in STORED if n.startswith("drill_") and not n.endswith("_w0")}
    assert drills == set(FAULTS)
    for n in drills:
        assert STORED[f"drill_{n}"]["expected"] == FAULTS[n]


# --- the exact messages of DESIGN.md §3, and the rules' precedence --------------------------------------

WORKER_TB = (
    "Caught RuntimeError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
    '  File "/x/torch/utils/data/_utils/worker.py", line 374, in _worker_loop\n'
    "    data = fetcher.fetch(index)\n"
)
SHM_ENOSPC = (
    "RuntimeError: unable to allocate shared memory(shm) for file </torch_4242_1908736571_0>: "
    "No space left on device (28)"
)
BUS_CHAIN = (
    "RuntimeError: DataLoader worker (pid 4243) is killed by signal: Bus error. It is possible that "
    "dataloader's workers are out of shared memory. Please try to raise your shared memory limit.\n\n"
    "The above exception was the direct cause of the following exception:\n\n"
    "RuntimeError: DataLoader worker (pid(s) 4243) exited unexpectedly"
)
RECVFDS_EOF = (
    '  File "/usr/lib/python3.11/multiprocessing/reduction.py", line 159, in recvfds\n    raise EOFError\nEOFError\n'
)
TOO_MANY = (
    "RuntimeError: Too many open files. Communication with the workers is no longer possible. Please "
    "increase the limit using `ulimit -n` in the shell or change the sharing strategy by calling "
    "`torch.multiprocessing.set_sharing_strategy('file_system')` at the beginning of your code"
)
ANCDATA = "RuntimeError: received 0 items of ancdata"
OOM_KILLED = (
    "RuntimeError: DataLoader worker (pid 4244) is killed by signal: Killed. \n\nThe above exception "
    "was the direct cause of the following exception:\n\nRuntimeError: DataLoader worker (pid(s) 4244) "
    "exited unexpectedly"
)
ALLOCATOR = (
    "RuntimeError: [enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
    "memory: you tried to allocate 154140672 bytes. Error code 12 (Cannot allocate memory)"
)


def _err(type_: str, message: str, traceback: str = "", **kw: Any) -> dict[str, Any]:
    return {"type": type_, "message": message, "traceback": traceback or f"{type_}: {message}", "batch": 0, **kw}


def _kind(**kw: Any) -> str:
    kw.setdefault("exit_code", 1)
    return classify(Evidence(**kw))["kind"]


CASES: list[tuple[str, dict[str, Any], str]] = [
    ("shm ENOSPC, torch 2.x pre-allocation", dict(error=_err("RuntimeError", WORKER_TB + SHM_ENOSPC)), "shm_exhausted"),
    (
        "shm mmap ENOSPC",
        dict(
            error=_err(
                "RuntimeError", "unable to mmap 77070336 bytes from file </torch_1_2_3>: No space left on device (28)"
            )
        ),
        "shm_exhausted",
    ),
    (
        "SIGBUS named by torch",
        dict(error=_err("RuntimeError", "DataLoader worker (pid(s) 4243) exited unexpectedly", BUS_CHAIN)),
        "bus_error",
    ),
    (
        "SIGBUS in the main process",
        dict(exit_code=None, exit_signal=signal.SIGBUS, stderr_tail="Fatal Python error: Bus error\n"),
        "bus_error",
    ),
    ("EOFError in recvfds", dict(error=_err("EOFError", "", RECVFDS_EOF)), "fd_exhausted"),
    ("Too many open files, communication lost", dict(error=_err("RuntimeError", TOO_MANY)), "fd_exhausted"),
    ("received 0 items of ancdata", dict(error=_err("RuntimeError", ANCDATA)), "fd_exhausted"),
    (
        "EMFILE errno",
        dict(error=_err("OSError", "[Errno 24] Too many open files: '/dev/null'", errno=24)),
        "fd_exhausted",
    ),
    (
        "OOM killer under a cgroup",
        dict(error=_err("RuntimeError", "exited unexpectedly", OOM_KILLED), facts={"cgroup_oom_kills": 1}),
        "oom_killed",
    ),
    (
        "main process OOM-killed under a cgroup",
        dict(exit_code=None, exit_signal=signal.SIGKILL, facts={"cgroup_oom_kills": 2}),
        "oom_killed",
    ),
    (
        "SIGKILL without a cgroup count",
        dict(error=_err("RuntimeError", "exited unexpectedly", OOM_KILLED)),
        "worker_killed",
    ),
    ("RLIMIT_AS: MemoryError", dict(error=_err("MemoryError", "")), "memory_error"),
    ("RLIMIT_AS: DefaultCPUAllocator", dict(error=_err("RuntimeError", ALLOCATOR)), "memory_error"),
    (
        "RLIMIT_AS: mmap ENOMEM is memory, not shm",
        dict(
            error=_err(
                "RuntimeError",
                WORKER_TB + "RuntimeError: unable to mmap 77070336 bytes from file "
                "</torch_4267_3470840343_2>: Cannot allocate memory (12)",
            )
        ),
        "memory_error",
    ),
    (
        "RLIMIT_AS: glibc TLS abort, exit code 127",
        dict(
            error=_err("RuntimeError", "DataLoader worker (pid(s) 9) exited unexpectedly"),
            stderr_tail="cannot allocate memory for thread-local data: ABORT\n",
        ),
        "memory_error",
    ),
    (
        "watchdog",
        dict(exit_code=None, exit_signal=signal.SIGTERM, watchdog={"phase": "stall", "limit_s": 3, "elapsed_s": 3.1}),
        "hang",
    ),
    ("DataLoader(timeout=...)", dict(error=_err("RuntimeError", "DataLoader timed out after 10.0 seconds")), "hang"),
    ("TMPDIR full", dict(error=_err("OSError", "[Errno 28] No space left on device", errno=28)), "tmp_full"),
    ("TMPDIR quota", dict(error=_err("OSError", "[Errno 122] Disk quota exceeded", errno=122)), "tmp_full"),
    ("missing videos", dict(error=_err("MissingVideosError", "1 of 18 videos are missing")), "data_error"),
    ("bad annotation", dict(error=_err("AnnotationError", "entry 1: field 'template'")), "data_error"),
    (
        "a bad video",
        dict(
            error=_err(
                "ClipDecodeError", "cannot decode SSv2 video id 7 (/v/7.webm): ValueError: file is empty (0 bytes)"
            )
        ),
        "decode_error",
    ),
    (
        "dataset code raised",
        dict(
            error=_err(
                "ValueError",
                "Caught ValueError in DataLoader worker process 1.\n"
                "Original Traceback ... in __getitem__\nValueError: boom",
            )
        ),
        "worker_exception",
    ),
    ("main killed by a signal", dict(exit_code=None, exit_signal=signal.SIGTERM), "main_crashed"),
    ("main segfault", dict(exit_code=None, exit_signal=signal.SIGSEGV), "segfault"),
]


@pytest.mark.parametrize("what,kw,expected", CASES, ids=[c[0] for c in CASES])
def test_design_messages(what: str, kw: dict[str, Any], expected: str) -> None:
    assert _kind(**kw) == expected, what


@pytest.mark.parametrize(
    "reason,expected",
    [
        ("DECORDError: ... ERROR opening: /v/1.webm, Too many open files", "fd_exhausted"),
        (
            "DECORDError: ... avcodec_send_packet(dec_ctx_.get(), pkt.get()) >= 0 (-12 vs. 0) Thread worker",
            "memory_error",
        ),
        ("OSError: [Errno 28] No space left on device", "tmp_full"),
        ("DECORDError: ... Invalid data found when processing input", "decode_error"),
    ],
)
def test_a_resource_running_out_inside_the_decoder_is_the_resource(reason: str, expected: str) -> None:
    msg = f"cannot decode SSv2 video id 1 (/v/1.webm): {reason}"
    assert _kind(error=_err("ClipDecodeError", msg)) == expected


def test_watchdog_wins_over_any_text() -> None:
    assert _kind(error=_err("RuntimeError", SHM_ENOSPC), watchdog={"phase": "total", "limit_s": 1}) == "hang"


@pytest.mark.parametrize(
    "kw",
    [
        dict(exit_code=3),  # exited with a status, said nothing
        dict(error=_err("RuntimeError", "DataLoader worker (pid(s) 5) exited unexpectedly")),  # bare: cause unknown
        dict(
            error=_err(
                "RuntimeError",
                "DataLoader worker (pid 5) exited unexpectedly with exit code 1. Details are "
                "lost due to multiprocessing.",
            )
        ),  # an exit, not a kill
        dict(error=_err("ValueError", "SSv2Clips: num_frames must be an integer >= 1, got 0")),  # not loading code
    ],
    ids=["silent-exit", "bare-exited-unexpectedly", "exit-code", "main-side-value-error"],
)
def test_unknown_is_never_guessed(kw: dict[str, Any]) -> None:
    out = classify(Evidence(**{"exit_code": 1, **kw}))
    assert out["kind"] == "unknown"
    assert "not recognised" in out["remedy"]


def test_message_quotes_the_worker_signal_line_and_evidence_names_it() -> None:
    out = classify(Evidence(exit_code=1, error=_err("RuntimeError", "exited unexpectedly", BUS_CHAIN)))
    assert out["message"].startswith("DataLoader worker (pid 4243) is killed by signal: Bus error.")
    assert out["evidence"]["worker_signal"] == "SIGBUS"
    assert worker_signal(Evidence(stderr_tail=OOM_KILLED)) == signal.SIGKILL


def test_message_of_a_bare_exception_names_where_it_was_raised() -> None:
    out = classify(Evidence(exit_code=1, error=_err("EOFError", "", RECVFDS_EOF)))
    assert out["message"] == "EOFError (no message) in recvfds (reduction.py:159)"


def test_message_of_a_worker_exception_is_the_original_last_line() -> None:
    out = classify(Evidence(exit_code=1, error=_err("RuntimeError", WORKER_TB + SHM_ENOSPC)))
    assert out["message"] == f"RuntimeError: Caught RuntimeError in DataLoader worker process 0. {SHM_ENOSPC}"


def test_batch_is_the_error_events_count_else_batches_done() -> None:
    assert classify(Evidence(exit_code=1, error=_err("MemoryError", "", batch=7), batches_done=3))["batch"] == 7
    assert classify(Evidence(exit_signal=signal.SIGKILL, batches_done=3))["batch"] == 3


def test_shm_remedy_uses_the_numbers() -> None:
    ev = Evidence(
        exit_code=1,
        error=_err("RuntimeError", SHM_ENOSPC),
        config={"num_workers": 2, "prefetch_factor": 2, "batch_size": 32},
        facts={"shm_need_bytes": 385 * 2**20, "shm_free_bytes": 64 * 2**20},
    )
    remedy = classify(ev)["remedy"]
    # no /dev/shm size or bytes per video known: the generic advice, with the config's own numbers
    assert "385 MiB" in remedy and "--shm-size=1g" in remedy and "2×2×32" in remedy


def test_kinds_are_defined_once_and_unknown_is_last() -> None:
    names = [k.name for k in KINDS]
    assert len(names) == len(set(names))
    assert KIND_NAMES == (*names, "unknown")
    for k in KINDS:
        assert kind(k.name) is k and k.summary
        assert isinstance(k.remedy(Evidence()), str)
    assert set(FAULTS.values()) <= set(KIND_NAMES)


def test_a_split_that_can_never_form_a_batch_is_a_data_error_with_its_own_remedy():
    out = classify(
        Evidence(
            exit_code=1,
            error=_err(
                "SplitTooSmallError",
                "split of 12 videos, batch_size 24 with drop_last: no batch",
                chain=["SplitTooSmallError"],
            ),
        )
    )
    assert out["kind"] == "data_error"
    assert "never form a full batch" in out["remedy"] and "hang" not in out["remedy"]


def test_a_factory_error_carries_the_users_file_line_and_fix():
    err = {
        **_err("FactoryError", "mypkg.data:build raised ValueError: bad", chain=["FactoryError"]),
        "what": "factory_raised",
        "file": "/p/mypkg/data.py",
        "line": 12,
        "fix": "fix /p/mypkg/data.py:12",
    }
    out = classify(Evidence(exit_code=1, error=err))
    assert out["kind"] == "data_error" and out["remedy"] == "fix /p/mypkg/data.py:12"
    assert out["evidence"]["file"] == "/p/mypkg/data.py" and out["evidence"]["line"] == 12


def test_a_durationless_webm_decode_error_names_the_remux():
    from ssv2_fixtures.data.webm import NO_DURATION_MARK

    out = classify(
        Evidence(
            exit_code=1,
            error=_err("ClipDecodeError", f"v.webm: decord {NO_DURATION_MARK} (live mode)", chain=["ClipDecodeError"]),
        )
    )
    assert out["kind"] == "decode_error" and "ffmpeg -i in.webm -c copy out.webm" in out["remedy"]


def test_signame_names_a_signal_and_says_when_it_cannot() -> None:
    """The one signal formatter (outcomes and rank rows)."""
    assert signame(9) == "SIGKILL" and signame(int(signal.SIGTERM)) == "SIGTERM"
    assert signame(200) == "signal 200"
    assert signame(None) == "no signal"
