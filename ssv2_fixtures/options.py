"""The ``ssv2-stress`` options: one table, used for ``addoption`` and ``addini`` alike, resolved once
into a frozen :class:`Settings`. Precedence: command line > ini (``[tool.pytest.ini_options]``) >
default. A bad value names where it came from (``invalid --workers 'x' (from the command line): ...``).

:class:`Settings` has one typed field per option, holding the option's default (the table reads it there;
``tests/unit/test_options.py`` checks that the fields and the table agree), plus what is derived from them
(fault, sandbox, launch, the worker cap).
Repeatable options (``--dataset-arg``, ``--dataset-path``) take a list on the command line and one
entry per line in the ini file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .data.decoders import DECODERS
from .data.loader import SHARING_STRATEGIES
from .data.locate import parse_factory
from .run.faults import FAULTS, FaultSpec, parse_fault
from .run.launch import Launch, parse_endpoint
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
        raise ValueError(f"expected a number, got {text!r}") from None
    if v < 0:
        raise ValueError(f"must be >= 0, got {v}")
    return v


def _positive(text: str, where: str) -> float:
    v = _float(text, where)
    if not v > 0:
        raise ValueError(f"must be > 0, got {v}")
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


def factory_name(text: str, where: str) -> str:
    mod, name = parse_factory(text)  # the one MODULE:CALLABLE rule (its FactoryError is a ValueError)
    return f"{mod}:{name}"


def dataset_arg(text: str, where: str) -> tuple[str, Any]:
    """``KEY=VALUE``: VALUE is read as a TOML value (``8``, ``0.5``, ``true``, ``[1, 2]``, ``"s"``); anything
    that is not one (a bare word, a path) is the string itself."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep:
        raise ValueError("expected KEY=VALUE (no '=' given), e.g. --dataset-arg num_frames=16")
    dataset_arg_check(key)
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key, parsed


def dataset_arg_check(key: str) -> str:
    if not key.isidentifier():
        raise ValueError(
            f"expected KEY=VALUE with KEY a Python identifier (a keyword argument of the factory), got key {key!r}"
        )
    return key


def _abs_dir(text: str, where: str) -> Path:
    return _existing_dir(text, where).resolve()


@dataclass(frozen=True)
class Option:
    """One option of the table; its default is the :class:`Settings` field's (written there, once)."""

    name: str  # command-line name without dashes; ini name has "_" for "-"
    help: str
    parse: Callable[[str, str], Any]
    metavar: str | None = None
    flag: bool = False
    repeat: bool = False  # given several times (CLI) / one entry per line (ini); parse gets each

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def default(self) -> Any:
        """The value when neither the command line nor the ini file gives one: the default of the Settings
        field that holds the option (a fresh copy of a list)."""
        f = _SETTINGS_FIELDS[_FIELD.get(self.dest, self.dest)]
        return f.default_factory() if f.default_factory is not MISSING else f.default


OPTIONS: tuple[Option, ...] = (
    Option(
        "ssv2-root",
        "SSv2 root (either annotation naming); default: the built-in synthetic set",
        _existing_dir,
        "DIR",
    ),
    Option(
        "ssv2-split",
        "split to load (train, validation, test)",
        _choice(("train", "validation", "test")),
        "SPLIT",
    ),
    Option(
        "ssv2-list-file",
        "read the split from a list file (`<path> <label>` per line) instead of JSON",
        _existing_file,
        "FILE",
    ),
    Option(
        "ssv2-skip-missing",
        "skip (and count) annotated videos whose file is missing, instead of failing",
        _flag,
        flag=True,
    ),
    Option(
        "ssv2-cache",
        "cache folder for the synthetic set (default $SSV2_STRESS_CACHE or ~/.cache/ssv2-stress)",
        _path,
        "DIR",
    ),
    Option("synthetic-videos", "clips in the synthetic set", _int(3), "N"),
    Option("batch-sizes", "batch sizes of the sustained matrix", lambda t, w: _ints(t, w, minimum=1), "LIST"),
    Option("workers", "worker counts of the sustained/limits matrix", _ints, "LIST"),
    Option("prefetch", "prefetch factors of the sustained matrix", lambda t, w: _ints(t, w, minimum=1), "LIST"),
    Option("batches", "batches per sustained/validate run", _int(2), "N"),
    Option(
        "quick-batches",
        "most batches per quick-ladder phase, warm-up included: each phase measures a "
        "window after 3 warm-up batches until its rate's 95 percent interval is within ±5 percent (at least 12 "
        "batches, 5 batch-means groups and 4 s of window), "
        "or it reaches this many batches, or --quick-seconds",
        _int(2),
        "N",
    ),
    Option(
        "quick-seconds",
        "most seconds of measured window per quick-ladder phase (see --quick-batches)",
        _positive,
        "S",
    ),
    Option("frames", "frames per clip", _int(1), "N"),
    Option("size", "frame size in pixels (size × size)", _int(8), "PX"),
    Option(
        "sharing-strategy",
        "torch.multiprocessing sharing strategy",
        _choice(SHARING_STRATEGIES),
        "NAME",
    ),
    Option("decoder", "video decoder backend", _choice(DECODERS), "NAME"),
    Option(
        "loader-tmpdir",
        "where the runs write: each run's working folder (its TMPDIR inside) goes in "
        "DIR/ssv2-stress-<run-id>/<run> (default: <reports>/<run-id>/runs/<run>)",
        _path,
        "DIR",
    ),
    Option("max-workers", "cap on worker counts (default 2 × cores); capped phases are reported", _int(0), "N"),
    Option("max-batch-size", "largest batch size -m limits tries", _int(1), "N"),
    Option("limit-batches", "batches each -m limits probe must survive", _int(1), "N"),
    Option(
        "step-time",
        "simulated training step per batch, in seconds (the batch is held meanwhile): a trainer "
        "slower than the loader lets prefetch queues fill, which is when shared memory peaks",
        _float,
        "S",
    ),
    Option(
        "stall-timeout",
        "watchdog: seconds without a batch before a run is a hang (default derived)",
        _int(1),
        "S",
    ),
    Option(
        "reports",
        "report folder (a run-id subfolder per session; `latest` points at the newest)",
        _path,
        "DIR",
    ),
    Option(
        "train-config",
        "training-config TOML for -m validate ([loader] and [target] tables)",
        _existing_file,
        "FILE",
    ),
    Option(
        "dataset-factory",
        "your own pipeline: MODULE:CALLABLE that builds the Dataset every run loads "
        "(imported in each loading process; see --dataset-path)",
        factory_name,
        "MODULE:CALLABLE",
    ),
    Option(
        "dataset-arg",
        "keyword argument for --dataset-factory, KEY=VALUE (VALUE read as TOML: 8, 0.5, true, "
        "[1, 2]; a bare word is a string); repeatable",
        dataset_arg,
        "KEY=VALUE",
        repeat=True,
    ),
    Option(
        "dataset-path",
        "folder put first on sys.path where the factory is imported (the invocation folder is "
        "on it by default); repeatable",
        _abs_dir,
        "DIR",
        repeat=True,
    ),
    Option(
        "inject-fault",
        "fault drill KIND[@BATCH][/RANK][:TEST] (e.g. bus_error@3:phase3; exception@2/1 fires in "
        "rank 1 of -m distributed only); kinds: " + ", ".join(sorted(FAULTS)),
        _str,
        "SPEC",
    ),
    Option(
        "nproc-per-node",
        "-m distributed: ranks on this node, each with its own DataLoader workers (torchrun --nproc-per-node)",
        _int(1),
        "N",
    ),
    Option(
        "nnodes",
        "-m distributed: nodes in the job; every node runs the same pytest command with its own "
        "--node-rank (torchrun --nnodes)",
        _int(1),
        "N",
    ),
    Option(
        "node-rank",
        "-m distributed: this node's rank, 0 … nnodes-1; node 0 hosts the rendezvous (torchrun --node-rank)",
        _int(0),
        "N",
    ),
    Option(
        "rdzv-endpoint",
        "-m distributed with --nnodes > 1: HOST:PORT of the node with --node-rank 0 (torchrun --rdzv-endpoint)",
        lambda t, w: parse_endpoint(t, where=w),
        "HOST:PORT",
    ),
    Option(
        "emulate",
        f"emulate a machine profile: {', '.join(sorted(PROFILES))}",
        _choice(tuple(sorted(PROFILES))),
        "PROFILE",
    ),
    Option(
        "emulate-shm",
        "run each child with a private /dev/shm of this size (e.g. 64M)",
        lambda t, w: parse_size(t, where=w),
        "SIZE",
    ),
    Option(
        "emulate-tmp",
        "give each child a private TMPDIR tmpfs of this size (a quota)",
        lambda t, w: parse_size(t, where=w),
        "SIZE",
    ),
    Option("emulate-nofile", "RLIMIT_NOFILE for each child", _int(16), "N"),
    Option(
        "emulate-mem",
        "memory cap on each child tree (cgroup where writable, else RLIMIT_AS)",
        lambda t, w: parse_size(t, where=w),
        "SIZE",
    ),
    Option("emulate-cpus", "CPU affinity: this many cpus for each child tree", _int(1), "N"),
    Option(
        "no-breakdown",
        "skip the breakdown probe (where one video's time goes: decode, transforms, collate, transfer; one "
        "isolated W=0 process per session); the report says it was not measured",
        _flag,
        flag=True,
    ),
    Option(
        "no-drift",
        "skip the drift controls (the reference re-measured during the session) and the quick ladder's "
        "alternating-window comparison of close configs; the sequential tie rule decides alone and the report "
        "says the drift was not measured",
        _flag,
        flag=True,
    ),
    Option(
        "tune-budget",
        "-m tune: seconds for the whole search per session, confirmation included",
        _positive,
        "SECONDS",
    ),
    Option(
        "target-videos-per-s",
        "-m tune: the cheapest config whose interval's lower bound reaches X videos/s, instead of the fastest",
        _positive,
        "X",
    ),
)


def add_options(parser: Any) -> None:
    """Register every option on the command line and as an ini key (``ssv2_root`` …)."""
    group = parser.getgroup("ssv2-stress", "ssv2-stress: DataLoader stress tests for SSv2 video")
    for o in OPTIONS:
        default = o.default if not isinstance(o.default, list) else ",".join(map(str, o.default))
        help_ = (
            f"{o.help} (default: {default}; ini: {o.dest})"
            if default not in (None, False, "")
            else f"{o.help} (ini: {o.dest})"
        )
        if o.flag:
            group.addoption(f"--{o.name}", action="store_true", default=None, dest=o.dest, help=help_)
        elif o.repeat:
            group.addoption(f"--{o.name}", action="append", default=None, dest=o.dest, metavar=o.metavar, help=help_)
        else:
            group.addoption(f"--{o.name}", action="store", default=None, dest=o.dest, metavar=o.metavar, help=help_)
        if o.repeat:
            parser.addini(o.dest, o.help + " (one per line)", type="linelist", default=[])
        else:
            parser.addini(o.dest, o.help, type="string", default=None)


@dataclass(frozen=True)
class Settings:
    """Every option, typed, with its default (the one place the defaults are written: :attr:`Option.default`
    reads them), and what is derived from them."""

    ssv2_root: Path | None = None
    ssv2_split: str = "train"
    ssv2_list_file: Path | None = None
    ssv2_skip_missing: bool = False
    ssv2_cache: Path | None = None
    synthetic_videos: int = 64
    batch_sizes: list[int] = field(default_factory=lambda: [16, 32, 64])
    workers: list[int] = field(default_factory=lambda: [4, 8, 24])
    prefetch: list[int] = field(default_factory=lambda: [4])
    batches: int = 100
    quick_batches: int = 1000
    quick_seconds: float = 4.0
    frames: int = 16
    size: int = 224
    sharing_strategy: str = "file_descriptor"
    decoder: str = "decord"
    loader_tmpdir: Path | None = None
    max_workers_option: int | None = None  # --max-workers as given; ``max_workers`` is the cap in force
    max_batch_size: int = 128
    limit_batches: int = 10
    step_time: float = 0.0
    stall_timeout: int | None = None
    reports: Path = Path("reports")
    train_config: Path | None = None
    dataset_factory: str | None = None
    dataset_arg: list[tuple[str, Any]] = field(default_factory=list)
    dataset_path: list[Path] = field(default_factory=list)
    inject_fault: str | None = None
    nproc_per_node: int = 2
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None
    emulate: str | None = None
    emulate_shm: int | None = None
    emulate_tmp: int | None = None
    emulate_nofile: int | None = None
    emulate_mem: int | None = None
    emulate_cpus: int | None = None
    no_breakdown: bool = False
    no_drift: bool = False
    tune_budget: float = 600.0
    target_videos_per_s: float | None = None
    # derived
    sources: dict[str, str] = field(default_factory=dict)  # option dest → where its value came from
    fault: FaultSpec | None = None
    fault_target: str | None = None
    sandbox: Sandbox | None = None
    cores: int = 1
    max_workers: int = 2
    launch: Launch = field(default_factory=Launch)  # -m distributed: ranks, nodes, rendezvous
    invocation_dir: Path | None = None  # where pytest was started

    @property
    def dataset_kwargs(self) -> dict[str, Any]:
        """``--dataset-arg`` as the factory's keyword arguments (a later KEY wins)."""
        return dict(self.dataset_arg)

    def option(self, dest: str) -> Any:
        """The value of option ``dest`` as resolved (``max_workers``: as given, ``None`` = 2 × cores)."""
        return getattr(self, _FIELD.get(dest, dest))

    def public(self) -> dict[str, Any]:
        """The options as JSON-ready values (results.json's ``settings``)."""
        out: dict[str, Any] = {}
        for o in OPTIONS:
            v = self.option(o.dest)
            if o.dest == "dataset_arg":
                v = dict(v)
            elif isinstance(v, list):
                v = [str(x) if isinstance(x, Path) else x for x in v]
            out[o.dest] = str(v) if isinstance(v, Path) else v
        return out


# option dest → Settings field, where the field holding the option's raw value has another name
_FIELD = {"max_workers": "max_workers_option"}
_SETTINGS_FIELDS = {f.name: f for f in fields(Settings)}
DERIVED = ("sources", "fault", "fault_target", "sandbox", "cores", "max_workers", "launch", "invocation_dir")


def option_fields() -> dict[str, str]:
    """Option dest → the Settings field that holds it (for the table-vs-dataclass check)."""
    return {o.dest: _FIELD.get(o.dest, o.dest) for o in OPTIONS}


class SettingsError(ValueError):
    """A bad option value; ``option`` is its dest (``None``: several options together), ``entry`` the value
    that is wrong and ``where`` where it came from (the command line or the ini file)."""

    def __init__(
        self, message: str, *, option: str | None = None, entry: str | None = None, where: str | None = None
    ) -> None:
        super().__init__(message)
        self.option, self.entry, self.where = option, entry, where


# The user's pipeline options: a bad one is the session's data_error too (its report says so).
FACTORY_OPTIONS = ("dataset_factory", "dataset_arg", "dataset_path")


def _parse(o: Option, raw: Any, where: str) -> Any:
    if not o.repeat:
        try:
            return o.parse(raw if not isinstance(raw, bool) else str(raw), where)
        except ValueError as exc:
            raise SettingsError(
                f"invalid {where}: {raw!r}: {exc}", option=o.dest, entry=str(raw), where=where
            ) from None
    out = []
    for item in [raw] if isinstance(raw, str) else list(raw):
        text = str(item).strip()
        if not text:
            continue
        try:
            out.append(o.parse(text, where))
        except ValueError as exc:  # name the one entry that is wrong, not the whole list
            raise SettingsError(f"invalid {where}: {text!r}: {exc}", option=o.dest, entry=text, where=where) from None
    return out


def resolve(
    getoption: Callable[[str], Any],
    getini: Callable[[str], Any],
    inifile: str | None,
    *,
    invocation_dir: str | os.PathLike[str] | None = None,
) -> Settings:
    """``getoption``/``getini`` as pytest's ``config.getoption``/``config.getini``; ``invocation_dir``: where
    pytest was started (``config.invocation_params.dir``; default the current folder), last on the
    factory's import path."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for o in OPTIONS:
        cli, ini = getoption(o.dest), getini(o.dest)
        if cli is not None:
            raw, where = cli, f"--{o.name} (from the command line)"
        elif ini not in (None, "", []):
            raw, where = ini, f"ini key {o.dest} (from {inifile or 'the ini file'})"
        else:
            values[o.dest] = o.default  # a fresh list for list options
            sources[o.dest] = "default"
            continue
        values[o.dest] = _parse(o, raw, where)
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
    overrides = dict(
        shm_bytes=values["emulate_shm"],
        tmp_bytes=values["emulate_tmp"],
        nofile=values["emulate_nofile"],
        mem_bytes=values["emulate_mem"],
        cpus=values["emulate_cpus"],
    )
    if any(v is not None for v in overrides.values()):
        sandbox = (sandbox or Sandbox()).merged(**overrides)
    try:
        launch = Launch(
            nproc_per_node=values["nproc_per_node"],
            nnodes=values["nnodes"],
            node_rank=values["node_rank"],
            rdzv_endpoint=values["rdzv_endpoint"],
        )
    except ValueError as exc:
        names = ("nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint")
        given = ", ".join(f"{sources[n]}: {values[n]!r}" for n in names if sources[n] != "default")
        raise SettingsError(f"invalid -m distributed launch ({given or 'defaults'}): {exc}") from None
    opts = {_FIELD.get(k, k): v for k, v in values.items()}
    return Settings(
        **opts,
        sources=sources,
        fault=fault,
        fault_target=target,
        sandbox=sandbox,
        cores=cores,
        max_workers=max_workers,
        launch=launch,
        invocation_dir=Path(invocation_dir or os.getcwd()).resolve(),
    )
