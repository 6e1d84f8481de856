"""``python -m ssv2_fixtures.report``: the command line.

- ``summarize RUN_DIR`` writes summary.md and the plots into the run folder;
- ``compare RUN_A RUN_B [--out FILE]``: markdown side by side; either side may be a watch log
  (``.jsonl``), compared through ``ssv2_fixtures.report.watch.compare_with_run``;
- ``watch LOG [--out DIR]``: the report of an in-training watch log, by
  ``ssv2_fixtures.report.watch.render(log_path, out_dir) -> Path`` (imported only for this command).

Bad input (any ``ValueError``: :class:`ResultsError`, a watch log's ``LogError``, two watch logs)
exits 2 with one line naming the file and what is wrong; an unwritable output exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..run.record import ResultsError
from .compare import compare, watch_report
from .summary import summarize


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ssv2_fixtures.report", description="Reports from ssv2-stress results.json files and watch logs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("summarize", help="write summary.md and plots into a run folder")
    s.add_argument("run_dir", help="reports/<run-id> (or its results.json)")
    c = sub.add_parser("compare", help="compare two runs, or a run and a watch log (markdown)")
    c.add_argument("run_a", help="a run folder, its results.json, or a watch log (.jsonl)")
    c.add_argument("run_b", help="a run folder, its results.json, or a watch log (.jsonl)")
    c.add_argument("--out", help="write the markdown to this file instead of stdout")
    w = sub.add_parser("watch", help="report an in-training watch log (.jsonl)")
    w.add_argument("log", help="the watch log written by ssv2_fixtures.watch")
    w.add_argument("--out", help="folder for the report (default: next to the log)")
    return parser


def _run(args: argparse.Namespace) -> None:
    if args.command == "summarize":
        print(summarize(args.run_dir))
    elif args.command == "watch":
        log = Path(args.log)
        if not log.is_file():
            raise ResultsError(f"{log}: no such watch log")
        out_dir = Path(args.out) if args.out else log.parent
        print(watch_report().render(log, out_dir))
    else:
        text = compare(args.run_a, args.run_b)
        if args.out:
            Path(args.out).write_text(text)
            print(args.out)
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")  # a watch comparison has none


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except ValueError as exc:  # ResultsError, a watch log's LogError: bad input
        print(f"ssv2-stress report: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable run folder or --out: one line, not a traceback
        print(f"ssv2-stress report: cannot write: {exc}", file=sys.stderr)
        return 1
    return 0
