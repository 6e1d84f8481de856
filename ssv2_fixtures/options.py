"""The ``ssv2-stress`` options: one table, used for ``addoption`` and ``addini`` alike, resolved once
into a frozen :class:`Settings`. Precedence: command line > ini (``[tool.pytest.ini_options]``) >
default. A bad value names where it came from (``invalid --workers 'x' (from the command line): ...``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .data.loader import SHARING_STRATEGIES
from .run.launch import Launch, parse_endpoint
from .run.faults import FAULTS, FaultSpec, parse_fault
from .run.sandbox import PROFILES, Sandbox, parse_size, profile


def _ints(text: str, where: str, *, minimum: int = 0) -> list[int]:
    try:
        vals = [int(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise ValueError(f"expected comma-separated integers like 16,32,64, got {text!r}") from None
    if not vals or any(v < minimum for v in vals):
        raise ValueError(f"expected integers >= {minimum}, got {text!r}")
    return vals


def _int(minimum: int) -> Callable[[str, str], int]:
    def parse(text: str, where: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        if v < minimum:
            raise ValueError(f"must be >= {minimum}, got {v}")
        return v
    return parse


def _float(text: str, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"expected a number of seconds, got {text!r}") from None
    if v < 0:
        raise ValueError(f"must be >= 0, got {v}")
    return v


def _choice(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(text: str, where: str) -> str:
        if text not in choices:
            raise ValueError(f"choose one of {', '.join(choices)}; got {text!r}")
        return text
    return parse


def _path(text: str, where: str) -> Path:
    return Path(os.path.expanduser(text))


def _existing_dir(text: str, where: str) -> Path:
    p = _path(text, where)
    if not p.is_dir():
        raise ValueError(f"{p} is not a directory")
    return p


def _existing_file(text: str, where: str) -> Path:
    p = _path(text, where)
    if not p.is_file():
        raise ValueError(f"{p} does not exist or is not a file")
    return p


def _str(text: str, where: str) -> str:
    return text


def _flag(text: str, where: str) -> bool:
    t = str(text).strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


@dataclass(frozen=True)
class Option:
    name: str                      # command-line name without dashes; ini name has "_" for "-"
    help: str
    parse: Callable[[str, str], Any]
    default: Any = None
    metavar: str | None = None
    flag: bool = False

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


_DECODERS = ("decord", "pyav", "torchcodec")

OPTIONS: tuple[Option, ...] = (
    Option("ssv2-root", "SSv2 root (either annotation naming); default: the built-in synthetic set",
           _existing_dir, None, "DIR"),
    Option("ssv2-split", "split to load (train, validation, test)", _choice(("train", "validation", "test")),
           "train", "SPLIT"),
    Option("ssv2-list-file", "read the split from a list file (`<path> <label>` per line) instead of JSON",
           _existing_file, None, "FILE"),
    Option("ssv2-skip-missing", "skip (and count) annotated videos whose file is missing, instead of failing",
           _flag, False, flag=True),
    Option("ssv2-cache", "cache folder for the synthetic set (default $SSV2_STRESS_CACHE or ~/.cache/ssv2-stress)",
           _path, None, "DIR"),
    Option("synthetic-videos", "clips in the synthetic set", _int(3), 64, "N"),
    Option("batch-sizes", "batch sizes of the sustained matrix", lambda t, w: _ints(t, w, minimum=1),
           [16, 32, 64], "LIST"),
    Option("workers", "worker counts of the sustained/limits matrix", lambda t, w: _ints(t, w), [4, 8, 24], "LIST"),
    Option("prefetch", "prefetch factors of the sustained matrix", lambda t, w: _ints(t, w, minimum=1), [4], "LIST"),
    Option("batches", "batches per sustained/validate run", _int(2), 100, "N"),
    Option("quick-batches", "batches per quick-ladder phase", _int(2), 10, "N"),
    Option("frames", "frames per clip", _int(1), 16, "N"),
    Option("size", "frame size in pixels (size × size)", _int(8), 224, "PX"),
    Option("sharing-strategy", "torch.multiprocessing sharing strategy", _choice(SHARING_STRATEGIES),
           "file_descriptor", "NAME"),
    Option("decoder", "video decoder backend", _choice(_DECODERS), "decord", "NAME"),
    Option("loader-tmpdir", "parent folder of each run's working folder and TMPDIR (default: <reports>/<run-id>/runs)", _path, None, "DIR"),
    Option("max-workers", "cap on worker counts (default 2 × cores); capped phases are reported", _int(0), None, "N"),
    Option("max-batch-size", "largest batch size -m limits tries", _int(1), 128, "N"),
    Option("limit-batches", "batches each -m limits probe must survive", _int(1), 10, "N"),
    Option("step-time", "simulated training step per batch, in seconds (the batch is held meanwhile): a trainer "
           "slower than the loader lets prefetch queues fill, which is when shared memory peaks",
           lambda t, w: _float(t, w), 0.0, "S"),
    Option("stall-timeout", "watchdog: seconds without a batch before a run is a hang (default derived)",
           _int(1), None, "S"),
    Option("reports", "report folder (a run-id subfolder per session; `latest` points at the newest)",
           _path, Path("reports"), "DIR"),
    Option("train-config", "training-config TOML for -m validate ([loader] and [target] tables)",
           _existing_file, None, "FILE"),
    Option("inject-fault", "fault drill KIND[@BATCH][/RANK][:TEST] (e.g. bus_error@3:phase3; exception@2/1 fires in "
           "rank 1 of -m distributed only); kinds: " + ", ".join(sorted(FAULTS)), _str, None, "SPEC"),
    Option("nproc-per-node", "-m distributed: ranks on this node, each with its own DataLoader workers "
           "(torchrun --nproc-per-node)", _int(1), 2, "N"),
    Option("nnodes", "-m distributed: nodes in the job; every node runs the same pytest command with its own "
           "--node-rank (torchrun --nnodes)", _int(1), 1, "N"),
    Option("node-rank", "-m distributed: this node's rank, 0 … nnodes-1; node 0 hosts the rendezvous "
           "(torchrun --node-rank)", _int(0), 0, "N"),
    Option("rdzv-endpoint", "-m distributed with --nnodes > 1: HOST:PORT of the node with --node-rank 0 "
           "(torchrun --rdzv-endpoint)", lambda t, w: parse_endpoint(t, where=w), None, "HOST:PORT"),
    Option("emulate", f"emulate a machine profile: {', '.join(sorted(PROFILES))}", _choice(tuple(sorted(PROFILES))),
           None, "PROFILE"),
    Option("emulate-shm", "run each child with a private /dev/shm of this size (e.g. 64M)",
           lambda t, w: parse_size(t, where=w), None, "SIZE"),
    Option("emulate-tmp", "give each child a private TMPDIR tmpfs of this size (a quota)",
           lambda t, w: parse_size(t, where=w), None, "SIZE"),
    Option("emulate-nofile", "RLIMIT_NOFILE for each child", _int(16), None, "N"),
    Option("emulate-mem", "memory cap on each child tree (cgroup where writable, else RLIMIT_AS)",
           lambda t, w: parse_size(t, where=w), None, "SIZE"),
    Option("emulate-cpus", "CPU affinity: this many cpus for each child tree", _int(1), None, "N"),
)


def add_options(parser: Any) -> None:
    """Register every option on the command line and as an ini key (``ssv2_root`` …)."""
    group = parser.getgroup("ssv2-stress", "ssv2-stress: DataLoader stress tests for SSv2 video")
    for o in OPTIONS:
        default = o.default if not isinstance(o.default, list) else ",".join(map(str, o.default))
        help_ = f"{o.help} (default: {default}; ini: {o.dest})" if default not in (None, False) else f"{o.help} (ini: {o.dest})"
        if o.flag:
            group.addoption(f"--{o.name}", action="store_true", default=None, dest=o.dest, help=help_)
        else:
            group.addoption(f"--{o.name}", action="store", default=None, dest=o.dest, metavar=o.metavar, help=help_)
        parser.addini(o.dest, o.help, type="string", default=None)


@dataclass(frozen=True)
class Settings:
    values: dict[str, Any]
    sources: dict[str, str]
    fault: FaultSpec | None = None
    fault_target: str | None = None
    sandbox: Sandbox | None = None
    cores: int = 1
    max_workers: int = 2
    launch: Launch = field(default_factory=Launch)   # -m distributed: ranks, nodes, rendezvous

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def public(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.values.items()}


class SettingsError(ValueError):
    pass


def resolve(getoption: Callable[[str], Any], getini: Callable[[str], Any], inifile: str | None) -> Settings:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for o in OPTIONS:
        cli, ini = getoption(o.dest), getini(o.dest)
        if cli is not None:
            raw, where = cli, f"--{o.name} (from the command line)"
        elif ini not in (None, ""):
            raw, where = ini, f"ini key {o.dest} (from {inifile or 'the ini file'})"
        else:
            values[o.dest], sources[o.dest] = o.default, "default"
            continue
        try:
            values[o.dest] = o.parse(raw if not isinstance(raw, bool) else str(raw), where)
        except ValueError as exc:
            raise SettingsError(f"invalid {where}: {raw!r}: {exc}") from None
        sources[o.dest] = where
    cores = len(os.sched_getaffinity(0))
    max_workers = values["max_workers"] if values["max_workers"] is not None else 2 * cores
    fault, target = None, None
    if values["inject_fault"]:
        text, _, target = str(values["inject_fault"]).partition(":")
        try:
            fault = parse_fault(text, where=sources["inject_fault"])
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        target = target or None
    sandbox = None
    if values["emulate"]:
        sandbox = profile(values["emulate"], where=sources["emulate"])
    overrides = dict(shm_bytes=values["emulate_shm"], tmp_bytes=values["emulate_tmp"],
                     nofile=values["emulate_nofile"], mem_bytes=values["emulate_mem"], cpus=values["emulate_cpus"])
    if any(v is not None for v in overrides.values()):
        sandbox = (sandbox or Sandbox()).merged(**overrides)
    try:
        launch = Launch(nproc_per_node=values["nproc_per_node"], nnodes=values["nnodes"],
                        node_rank=values["node_rank"], rdzv_endpoint=values["rdzv_endpoint"])
    except ValueError as exc:
        names = ("nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint")
        given = ", ".join(f"{sources[n]}: {values[n]!r}" for n in names if sources[n] != "default")
        raise SettingsError(f"invalid -m distributed launch ({given or 'defaults'}): {exc}") from None
    return Settings(values, sources, fault, target, sandbox, cores, max_workers, launch)
