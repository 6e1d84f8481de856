"""report/rerun: the commands the report suggests repeat the user's own options (results.json
``invocation``), changing only the test selection; summary.md's Next steps use them."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from ssv2_fixtures.report.rerun import invocation_note, rerun
from ssv2_fixtures.report.summary import render_summary

USER = [
    "--pyargs",
    "ssv2_fixtures.suite",
    "-m",
    "sustained",
    "--dataset-factory",
    "mypkg.dta:build",
    "--dataset-path",
    "my src",
    "--ssv2-root",
    "/data/ssv2",
    "--workers",
    "2",
    "--batch-sizes",
    "2",
]
INV = {"args": USER, "dir": "/home/u/proj"}


def test_the_users_own_command_is_repeated_verbatim() -> None:
    assert shlex.split(rerun(INV, None)) == ["pytest", *USER]


def test_another_marker_replaces_only_the_selection() -> None:
    words = shlex.split(rerun({"args": [*USER, "-k", "bs2", "--deselect", "x.py::t"], "dir": "/"}, "limits"))
    assert words[:3] == ["pytest", "--pyargs", "ssv2_fixtures.suite"]
    assert words[-2:] == ["-m", "limits"] and words.count("-m") == 1
    assert "-k" not in words and "--deselect" not in words
    # every value after its option, a repeated value ("2" twice) kept
    for opt, value in [("--dataset-factory", "mypkg.dta:build"), ("--dataset-path", "my src"), ("--workers", "2")]:
        assert words[words.index(opt) + 1] == value
    assert words.count("2") == 2


@pytest.mark.parametrize(
    "args, want",
    [
        (["ssv2_fixtures/suite/test_quick.py::test_ladder[phase1-bs1-w0]", "-mquick"], ["ssv2_fixtures/suite"]),
        (["--pyargs", "ssv2_fixtures.suite.test_quick", "-m", "quick"], ["--pyargs", "ssv2_fixtures.suite"]),
        (["test_quick.py", "test_preflight.py", "-m", "quick"], ["."]),
    ],
)
def test_a_narrowed_target_is_widened_for_another_marker(args: list[str], want: list[str]) -> None:
    # test_quick.py under -m limits would select nothing
    assert shlex.split(rerun({"args": args, "dir": "/"}, "limits")) == ["pytest", *want, "-m", "limits"]


def test_the_users_train_config_wins_over_the_suggested_one() -> None:
    inv = {"args": ["-m", "validate", "--train-config=mine.toml"], "dir": "/"}
    assert rerun(inv, "validate", "--train-config", "train.toml") == "pytest --train-config=mine.toml -m validate"


def test_without_a_record_the_commands_are_plain() -> None:
    assert rerun(None, "limits") == "pytest -m limits"
    assert rerun({}, "validate", "--train-config", "t.toml") == "pytest -m validate --train-config t.toml"
    assert invocation_note(None) is None


def _data_error_file(invocation: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": 3,
        "run_id": "r",
        "machine": {},
        "dataset": {},
        "settings": {},
        "results": [],
        "limits": [],
        "validate": None,
        "capped": [],
        "data_error": {
            "kind": "data_error",
            "message": "FactoryError: dataset factory mypkg.dta:build: mypkg has no submodule 'dta'",
            "file": None,
            "entry": None,
            "fix": "did you mean 'mypkg.data'?",
        },
    }
    if invocation is not None:
        data["invocation"] = invocation
    return data


def _next_steps(md: str) -> str:
    return md[md.index("## Next steps") :].split("\n## ", 1)[0]


def test_next_steps_after_a_data_error_repeat_the_users_flags() -> None:
    steps = _next_steps(render_summary(_data_error_file(INV)))  # type: ignore[arg-type]
    flags = "--dataset-factory mypkg.dta:build --dataset-path 'my src' --ssv2-root /data/ssv2"
    assert f"then rerun `pytest --pyargs ssv2_fixtures.suite -m sustained {flags} --workers 2" in steps
    assert f"`pytest --pyargs ssv2_fixtures.suite {flags} --workers 2 --batch-sizes 2 -m limits`" in steps
    assert "run them from `/home/u/proj`" in steps
    assert "`pytest -m quick`" not in steps and "`pytest -m limits`" not in steps


def test_next_steps_of_an_older_results_file_stay_plain() -> None:
    steps = _next_steps(render_summary(_data_error_file(None)))  # type: ignore[arg-type]
    assert "then rerun `pytest -m quick`" in steps and "`pytest -m limits`" in steps
    assert "run them from" not in steps
