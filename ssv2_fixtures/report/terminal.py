"""The short table the pytest plugin prints at the end of a session."""

from __future__ import annotations

from collections.abc import Sequence

from .findings import host_findings
from .fmt import rate
from .model import Source, load, runs_of


def terminal_lines(results_file: Source) -> list[str]:
    """A fixed-width table: config, test, videos/s (``97.0 +- 3.1``: the 95 % half-width; ``+-?`` where
    the record has no interval), result; then, when the host was busy, the finding that says so (the
    rates above it do not reproduce). ASCII only: pytest's terminal may be a CI log with a C locale."""
    data, _ = load(results_file)
    runs = runs_of(data)
    rows = [
        (
            r.label,
            r.kind,
            rate(r.vps, r.interval, ascii=True),
            "passed" if r.ok else f"{r.result} ({r.failure_point()})" if r.outcome else r.result,
        )
        for r in runs
    ]
    head = ("config", "test", "videos/s", "result")
    width = [max(len(str(x)) for x in col) for col in zip(head, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if i == 2 else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, width))
        ).rstrip()

    return [line(head)] + [line(r) for r in rows] + [f"note: {f}" for f in host_findings(runs)]
