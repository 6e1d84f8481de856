"""``-m validate --train-config train.toml``: the training job's exact loader settings, run sustained,
against its targets. Each target is a ``target:<name>`` verdict of the run, so the run's ``status``
already says whether every target was met; the session's ``validate`` section keeps the table rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import drift
from .traincfg import TARGETS, TrainConfigError, check, load
from .verdicts import failed_text

if TYPE_CHECKING:
    from ..run.runner import RunResult
    from .campaign import Stress


def target_verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One ``target:<name>`` verdict per target row of :func:`traincfg.check`."""
    out = []
    for row in rows:
        unit = {
            "min_videos_per_s": " videos/s",
            "max_rss_gb": " GiB",
            "max_shm_gb": " GiB",
            "max_wait_ms_p95": " ms",
            "max_first_batch_s": " s",
        }.get(row["target"], "")
        got = "-" if row["achieved"] is None else f"{row['achieved']:.4g}{unit}"
        if row.get("judged_on") == "interval_lo":
            lo, hi = row["interval"]
            got += f" (95 % interval {lo:.4g}–{hi:.4g}; judged on its lower bound, as -m tune is)"
        sense = "at least" if TARGETS[row["target"]][2] == "min" else "at most"
        out.append(
            {
                "name": f"target:{row['target']}",
                "ok": bool(row["ok"]),
                "detail": f"{row['target']}: wanted {sense} {row['wanted']:g}{unit}, achieved {got}",
            }
        )
    return out


def _achieved(r: dict[str, Any]) -> str:
    if r["achieved"] is None:
        return "-"
    if r.get("judged_on") == "interval_lo":  # the bound the row was judged on comes first
        return f"{r['interval'][0]:.4g} (lower bound; rate {r['achieved']:.4g})"
    return format(r["achieved"], ".4g")


def table(rows: list[dict[str, Any]]) -> str:
    """The target-vs-achieved table the test prints."""
    cells = [_achieved(r) for r in rows]
    width = max([11, *map(len, cells)])
    lines = [f"{'target':<22} {'wanted':<11} {'achieved':<{width}} ok"] + [
        f"{r['target']:<22} {r['wanted']:<11g} {c:<{width}} {'yes' if r['ok'] else 'NO'}" for r, c in zip(rows, cells)
    ]
    return "\n".join(lines)


@dataclass
class ValidateResult:
    result: RunResult | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # the TOML could not be used: nothing ran

    @property
    def table(self) -> str:
        return table(self.rows)

    @property
    def shown_table(self) -> str | None:
        """The table for the test to print, unless :attr:`failure` already carries it: pytest shows a failed
        test's message and its captured output, so printing it as well showed the table twice."""
        if not self.rows or any(not r["ok"] for r in self.rows):
            return None
        return self.table

    @property
    def failure(self) -> str | None:
        if self.error:
            return self.error
        assert self.result is not None
        if self.result.kind is not None:
            return self.result.describe()
        missed = [r for r in self.rows if not r["ok"]]
        if missed:
            return "targets missed:\n" + self.table
        bad = failed_text(self.result.record)
        return f"{self.result.record['label']}: {bad}" if bad else None


def run(stress: Stress) -> ValidateResult:
    from .campaign import series

    s, session = stress.settings, stress.session
    if s.train_config is None:
        return ValidateResult(
            None, error="-m validate needs --train-config train.toml (a [loader] and a [target] table)"
        )
    try:
        tc = load(s.train_config)
    except TrainConfigError as exc:
        return ValidateResult(None, error=str(exc))
    drift.group_control(stress)  # on the session's own reference data: the series stays comparable
    if tc.dataset:  # the TOML's [dataset] table: the training job's own pipeline
        ds = stress.dataset.copy()
        ds.update(tc.dataset)  # type: ignore[typeddict-item]
        stress = replace(stress, dataset=ds)
    batches = tc.batches or s.batches
    base = None
    if tc.tmpdir:
        os.makedirs(tc.tmpdir, exist_ok=True)
        base = os.path.join(tc.tmpdir, f"ssv2-stress-{session.run_id}")
    rows: list[dict[str, Any]] = []

    def targets(r: RunResult) -> list[dict[str, Any]]:
        rows.extend(check(tc.targets, dict(r.metrics)))
        return target_verdicts(rows)

    result = stress.run(
        tc.loader, batches, kind="validate", train=True, live=True, run_base=base, checks=[series, targets]
    )
    session.validate = {
        "config_file": str(tc.path),
        "config": tc.loader.to_dict(),
        "tmpdir": tc.tmpdir,
        "batches": batches,
        "rows": rows,
        "passed": result.passed,
        **({"dataset": tc.dataset} if tc.dataset else {}),
    }
    stress.record(result)
    return ValidateResult(result, rows)
