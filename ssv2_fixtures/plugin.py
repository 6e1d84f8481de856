"""pytest wiring for ssv2-stress (registered through the ``pytest11`` entry point): options, markers,
settings, the session object, fixtures, parametrization and the end-of-session report. No logic of
its own lives here; see :mod:`options`, :mod:`stress.session`, :mod:`stress.campaign`,
:mod:`stress.plans`, :mod:`report`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .options import FACTORY_OPTIONS, Settings, SettingsError, add_options, resolve
from .stress.session import StressSession

if TYPE_CHECKING:
    from .run.child import DatasetSpec
    from .run.schema import InvocationRecord

MARKERS = {
    "quick": "pre-flight checks and the 9-phase ladder on a few batches (minutes)",
    "sustained": "long runs (--batches, default 100) over --batch-sizes × --workers × --prefetch",
    "limits": "largest batch size that survives --limit-batches, per worker count",
    "validate": "pre-flight + a sustained run of the --train-config TOML against its targets",
    "distributed": "ranks × workers under torchrun (--nproc-per-node)",
    "tune": "search the fastest stable loader settings per --batch-sizes entry within --tune-budget seconds",
}
LONG_MARKERS = ("sustained", "limits", "validate", "distributed", "tune")
XDIST_REFUSAL = (
    "ssv2-stress refuses measured runs under pytest-xdist: parallel configs would share the same cores, "
    "/dev/shm and RAM, so each run's speed and failures would be the others'. Run stress tests without -n "
    "(the suite's own unit tests do run under -n auto)."
)
_NAME = "ssv2_stress_session"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str], parser: pytest.Parser) -> None:
    # `--ssv2-root DIR` must not make DIR the rootdir (pytest-dev/pytest#8846): see rootdir.py.
    from .rootdir import repair_setup

    repair_setup(early_config, args, parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for name, desc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {desc}")
    try:
        settings = resolve(
            config.getoption,
            config.getini,
            str(config.inipath) if config.inipath else None,
            invocation_dir=config.invocation_params.dir,
        )
    except SettingsError as exc:
        note = _report_option_error(config, exc) if exc.option in FACTORY_OPTIONS else None
        raise pytest.UsageError(str(exc) + (f"\n({note})" if note else "")) from None
    from .stress.probe import machine_facts

    session = StressSession(settings, invocation=_invocation(config))
    # the disk the runs write to (their TMPDIR lives in it), not this process's TMPDIR
    session.machine = machine_facts(str(session.runs_dir), sharing_strategy=settings.sharing_strategy)
    if settings.sandbox is not None:
        session.machine["emulated"] = settings.sandbox.to_dict()
    config.pluginmanager.register(_Hooks(session), _NAME)


def _report_option_error(config: pytest.Config, exc: SettingsError) -> str | None:
    """A bad ``--dataset-*`` option is the user's pipeline failing to load: like every other data_error it
    gets a results.json and summary.md (under ``--reports``), beside the usage error. Returns what went
    wrong writing them (the usage error then says so), else ``None``."""
    raw = config.getoption("reports") or config.getini("reports") or None
    try:
        settings = Settings(reports=Path(os.path.expanduser(str(raw))) if raw else Settings().reports)
        session = StressSession(settings, invocation=_invocation(config))
        flag = "--" + str(exc.option).replace("_", "-")
        session.fail_data(
            {
                "kind": "data_error",
                "message": str(exc),
                "file": str(config.inipath) if exc.where and "ini key" in exc.where and config.inipath else None,
                "entry": f"{exc.where or flag}: {exc.entry!r}",
                "fix": f"correct {flag} (see `pytest --help`, group ssv2-stress); nothing ran",
            }
        )
        from .report import summarize

        summarize(session.run_dir)
        return None
    except Exception as err:  # the usage error is the message; this only says the report is missing
        return f"the report could not be written: {type(err).__name__}: {err}"


def _invocation(config: pytest.Config) -> InvocationRecord:
    """The command line as given (results.json ``invocation``): Next steps repeat the user's own options."""
    p = config.invocation_params
    return {"args": [str(a) for a in p.args], "dir": str(p.dir)}


def session_of(config: pytest.Config) -> StressSession:
    hooks = config.pluginmanager.get_plugin(_NAME)
    assert isinstance(hooks, _Hooks), "the ssv2-stress plugin is not configured in this session"
    return hooks.session


def _is_xdist_worker(config: pytest.Config) -> bool:
    # xdist gives each worker's config a ``workerinput`` dict; the controller's has none
    return hasattr(config, "workerinput")


class _Hooks:
    def __init__(self, session: StressSession) -> None:
        self.session = session
        self.benchmarks_hidden = 0  # stress tests left out of pytest-benchmark's table (stress.bench_table)

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        # Long markers run only when selected with -m; quick runs by default.
        if not config.option.markexpr:
            keep: list[pytest.Item] = []
            drop: list[pytest.Item] = []
            for it in items:
                long_ = any(it.get_closest_marker(m) for m in LONG_MARKERS) and not it.get_closest_marker("quick")
                (drop if long_ else keep).append(it)
            if drop:
                config.hook.pytest_deselected(items=drop)
                items[:] = keep
        from .stress.plans import item_timeout

        for it in items:
            if it.get_closest_marker("timeout") is None and (t := item_timeout(it, self.session.settings)):
                it.add_marker(pytest.mark.timeout(t))

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        from .stress.plans import parametrize

        parametrize(metafunc, self.session.settings)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:  # the records follow pytest's verdict when something outside the run failed it
            crash = getattr(report.longrepr, "reprcrash", None)
            lines = str(report.longreprtext).strip().splitlines()
            message = crash.message if crash is not None else (lines[-1] if lines else "failed")
            self.session.pytest_failed(report.nodeid, report.when, message)

    @pytest.hookimpl(wrapper=True, optionalhook=True)
    def pytest_benchmark_group_stats(self, config: pytest.Config, benchmarks: Any, group_by: str) -> Any:
        # pytest-benchmark's table ranks stress tests by their fastest single batch: hidden unless asked for
        from .stress.bench_table import pytest_args, regroup, table_asked

        groups = yield
        ids = {str(r.get("id")) for r in self.session.results}
        out, self.benchmarks_hidden = regroup(groups or [], ids, table_asked(pytest_args(config)))
        return out

    @pytest.hookimpl(trylast=True)  # after pytest-benchmark's table: the session ends with the answer
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        s = self.session
        if not (s.results or s.limits or s.data_error or s.report_error):
            return
        tr = terminalreporter
        tr.section("ssv2-stress")
        if s.data_error:
            tr.write_line(f"data_error: {s.data_error['message']}", red=True)
        try:
            from .report import terminal_lines

            for line in terminal_lines(s.file()) if (s.results or s.limits) else []:
                tr.write_line(line)
        except Exception as exc:  # the report must never hide the test results
            tr.write_line(f"(summary table unavailable: {exc})")
        if self.benchmarks_hidden:
            from .stress.bench_table import NOTE

            tr.write_line(NOTE.format(n=self.benchmarks_hidden))
        if s.report_error:  # summarize ran at sessionfinish, before this hook
            tr.write_line(f"summary.md could not be written: {s.report_error}", red=True)
        summary = s.run_dir / "summary.md"
        tr.write_line(f"report: {summary if summary.is_file() and not s.report_error else s.run_dir}")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.session.started:
            return
        self.session.finish()  # the last drift control (stress/drift.py)
        self.session.flush()
        try:
            from .report import summarize

            summarize(self.session.run_dir)
        except Exception as exc:  # shown by pytest_terminal_summary, which runs after this hook
            self.session.report_error = f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def ssv2_session(pytestconfig: pytest.Config) -> StressSession:
    """The session's settings, machine facts and results so far."""
    return session_of(pytestconfig)


@pytest.fixture(scope="session")
def ssv2_dataset(ssv2_session: StressSession) -> Iterator[tuple[DatasetSpec, dict[str, Any]]]:
    """(dataset spec for the runner, facts for reports): ``--ssv2-root`` or the synthetic set."""
    from .stress.campaign import DataError, prepare_dataset, probe_pipeline

    ssv2_session.stress_started = time.time()  # the stress part's clock (a plain `pytest` runs unit tests first)
    try:
        spec, info = prepare_dataset(ssv2_session.settings)
        ssv2_session.dataset = info  # before the probe: a data_error's results.json names the dataset too
        probe_pipeline(ssv2_session, spec)  # a user's pipeline: measured (or refused) before any config runs
    except DataError as exc:
        error: DataError | None = exc
    else:
        error = None
    if error is not None:  # outside the except: pytest shows the one message, not a chain
        ssv2_session.fail_data(error.record)  # results.json names it, so summary.md does too
        pytest.fail(f"data_error: {error}", pytrace=False)
    yield spec, info


@pytest.fixture
def stress(request: pytest.FixtureRequest, ssv2_session: StressSession, ssv2_dataset: Any):
    """Run configs isolated and record them (see :class:`ssv2_fixtures.campaign.Stress`)."""
    if _is_xdist_worker(request.config):
        pytest.skip(XDIST_REFUSAL)
    from .stress.campaign import Stress

    config = request.config
    tr = config.pluginmanager.get_plugin("terminalreporter")
    cap = config.pluginmanager.get_plugin("capturemanager")

    def progress(line: str) -> None:
        if tr is None:
            return
        if cap is not None:
            with cap.global_and_fixture_disabled():
                tr.write_line(line)
        else:
            tr.write_line(line)

    return Stress(ssv2_session, ssv2_dataset[0], request.node.nodeid, progress, request.node.name)
