"""ssv2_fixtures.report.compare: two runs side by side, and a watch log handed to its own module."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from report_helpers import DATA, fixture, section, table, with_intervals

from ssv2_fixtures.report import compare
from ssv2_fixtures.report.compare import previous_run, run_to_run
from ssv2_fixtures.report.model import parse_label


def test_compare_two_machines() -> None:
    md = compare(DATA / "healthy.json", DATA / "healthy_small_shm.json")
    rows = {(r[0], r[1]): r for r in table(section(md, "Configurations side by side"))}
    assert rows[("quick", "bs8-w2-pf2")][2:5] == ["40.0 ±?", "38.0 ±?", "0.95"]
    assert rows[("quick", "bs8-w4-pf2")][4] == "0.75"
    assert rows[("quick", "bs16-w2-pf2")][4] == "1.00"
    assert rows[("sustained", "bs8-w4-pf2")][4] == "0.75"
    assert rows[("quick", "bs16-w4-pf2")][4:] == ["—", "—", "passed", "shm_exhausted"]
    assert "Median B/A over the 4 configuration(s) that passed on both: 0.85." in md

    diffs = {r[0]: r[1:] for r in table(section(md, "Machine differences"))}
    assert diffs["CPU cores"] == ["16", "8"]
    assert diffs["/dev/shm size"] == ["32.0 GiB", "256 MiB"]
    assert diffs["open files limit (ulimit -n)"] == ["65536", "1024"]
    assert diffs["torch"] == ["2.4.1+cpu", "2.5.1+cpu"]
    assert not {"python", "decord", "TMPDIR", "platform"} & set(diffs)  # only rows that differ

    flips = table(section(md, "Passed on one, failed on the other"))
    assert flips[0][:3] == ["quick", "bs16-w4-pf2", "passed, 76.0 ±? videos/s"]
    assert flips[0][3].startswith("shm_exhausted before the first batch")
    assert "only on A: bs16-w4-pf2 (sustained, passed)" in md
    why = "\n".join(section(md, "What explains the differences"))
    assert "failed on B with shm_exhausted and passed on A: B's /dev/shm is 256 MiB vs 32.0 GiB on A" in why
    assert "B has 8 cores vs 16 on A" in why


def test_compare_says_whether_a_difference_is_within_spread() -> None:
    a, b = with_intervals(fixture("healthy")), with_intervals(fixture("healthy_small_shm"))
    rows = {(r[0], r[1]): r for r in table(section(compare(a, b), "Configurations side by side"))}
    ia = {(x["kind"], x["label"]): x["metrics"]["videos_per_s_interval"] for x in a["results"]}
    ib = {(x["kind"], x["label"]): x["metrics"].get("videos_per_s_interval") for x in b["results"]}
    for k in (("quick", "bs8-w2-pf2"), ("quick", "bs8-w4-pf2"), ("sustained", "bs8-w4-pf2")):
        (alo, ahi), (blo, bhi) = ia[k], ib[k]
        assert rows[k][5] == ("yes" if alo <= bhi and blo <= ahi else "no")
    assert "±" in rows[("quick", "bs8-w2-pf2")][2] and "±?" not in rows[("quick", "bs8-w2-pf2")][2]


def test_compare_same_run_has_nothing_to_explain() -> None:
    md = compare(DATA / "healthy.json", fixture("healthy"))
    assert "None in the recorded facts." in md and "Nothing to explain" in md
    assert all(r[4] == "1.00" for r in table(section(md, "Configurations side by side")))


@pytest.fixture
def fake_watch(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, Path]]:
    """Stands in for ssv2_fixtures.report.watch (another module's job) to check only the hand-over."""
    calls: list[tuple[Path, Path]] = []
    mod = types.ModuleType("ssv2_fixtures.report.watch")

    def compare_with_run(log_path: Path, run_dir: Path) -> str:
        calls.append((log_path, run_dir))
        return "# watch vs run\n"

    mod.compare_with_run = compare_with_run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ssv2_fixtures.report.watch", mod)
    return calls


def test_watch_log_on_either_side_is_handed_over(fake_watch: list[tuple[Path, Path]], tmp_path: Path) -> None:
    log = tmp_path / "watch.jsonl"
    assert compare(log, DATA / "healthy.json") == "# watch vs run\n"
    assert compare(str(DATA / "healthy.json"), str(log)) == "# watch vs run\n"
    assert fake_watch == [(log, DATA / "healthy.json")] * 2
    with pytest.raises(ValueError, match="two watch logs"):
        compare(log, tmp_path / "other.jsonl")


# --------------------------------------------------------------------------------------------- run to run


def rec(
    label: str, vps: float, half: float | None = 2.0, kind: str = "quick", status: str = "passed"
) -> dict[str, Any]:
    """A minimal run record: its config from the label, its rate ± ``half`` (``None``: no interval)."""
    m: dict[str, Any] = {"videos_per_s": vps, "batches": 20}
    if half is not None:
        m["videos_per_s_interval"] = [vps - half, vps + half]
    return {"kind": kind, "label": label, "status": status, "metrics": m, "config": parse_label(label)}


def session(*runs: dict[str, Any], host: str = "vm", cores: int = 2, videos: int = 64) -> Any:  # a ResultsFile
    return {
        "schema": 1,
        "run_id": "?",
        "machine": {"hostname": host, "cores": cores},
        "dataset": {"synthetic": True, "videos": videos, "codec": "vp9", "num_frames": 16, "size": 224},
        "results": list(runs),
    }


def test_run_to_run_tie_meets_the_target() -> None:
    prev = session(rec("bs8-w2-pf2", 100.0, 5.0), rec("bs8-w1-pf2", 60.0))
    cur = session(rec("bs8-w2-pf2", 103.0, 5.0), rec("bs8-w1-pf2", 61.0))
    md = run_to_run(prev, cur, "20261202T000000Z-vm")
    assert "**20261202T000000Z-vm**" in md[0]
    rows = {r[1]: r for r in table(md)}
    assert rows["bs8-w2-pf2"] == ["quick", "bs8-w2-pf2", "2", "100.0 ± 5.0", "103.0 ± 5.0", "+3.0 %", "tie"]
    assert "- Recommendation over the common configs: the same, **bs8-w2-pf2**." in md
    assert "- Configs with W ≤ 2 (cores) that moved by more than 10 %: none." in md
    assert any(ln.startswith("- Target met") for ln in md) and not any("not met" in ln for ln in md)


def test_run_to_run_names_configs_with_w_le_cores_that_moved() -> None:
    prev = session(rec("bs8-w2-pf2", 100.0, 1.0), rec("bs8-w1-pf2", 50.0, 1.0), rec("bs8-w4-pf2", 100.0, 1.0))
    cur = session(rec("bs8-w2-pf2", 80.0, 1.0), rec("bs8-w1-pf2", 53.0, 1.0), rec("bs8-w4-pf2", 130.0, 1.0))
    md = run_to_run(prev, cur, "prev")
    rows = {r[1]: r for r in table(md)}
    assert rows["bs8-w2-pf2"][5:] == ["-20.0 %", "slower"]
    assert rows["bs8-w4-pf2"][5:] == ["+30.0 %", "faster"]
    assert rows["bs8-w1-pf2"][5:] == ["+6.0 %", "tie"]  # clear intervals, but within 10 % of the lower bound
    # W=4 > 2 cores moved too, but the target holds only W ≤ cores
    assert "- Configs with W ≤ 2 (cores) that moved by more than 10 %: 1: bs8-w2-pf2 (quick, -20.0 %)." in md
    text = "\n".join(md)
    assert "**Target not met**" in text and "No compared run recorded a busy host" in text
    # with the host load recorded (run.host), the busy runs are named as the cause
    prev["results"][0]["host"] = {"foreign_cores": 0.8, "steal_frac": 0.0, "seconds": 10.0, "cores": 2}
    text = "\n".join(run_to_run(prev, cur, "prev"))
    assert "The host was busy during bs8-w2-pf2 (previous)" in text and "rerun on an idle machine" in text


def test_run_to_run_says_when_the_recommendation_changed() -> None:
    prev = session(rec("bs8-w1-pf2", 100.0, 1.0), rec("bs8-w2-pf2", 50.0, 1.0))
    cur = session(rec("bs8-w1-pf2", 50.0, 1.0), rec("bs8-w2-pf2", 100.0, 1.0))
    text = "\n".join(run_to_run(prev, cur, "prev"))
    assert "- Recommendation over the common configs: **changed**, bs8-w1-pf2 before, bs8-w2-pf2 now." in text
    assert "**Target not met**" in text
    # nothing passed before: no recommendation then, one now
    failed = session(rec("bs8-w1-pf2", 0.0, None, status="failed"))
    text = "\n".join(run_to_run(failed, cur, "prev"))
    # over the configs both ran (bs8-w1-pf2 only): none before, it now; and the flip defeats the target
    assert "**changed**, none before, bs8-w1-pf2 now" in text
    assert "- Passed in one session only: bs8-w1-pf2 (quick: failed before, passed now)." in text


def test_run_to_run_without_a_common_passed_config() -> None:
    prev = session(rec("bs8-w1-pf2", 100.0), rec("bs8-w2-pf2", 90.0, status="failed"))
    cur = session(rec("bs8-w2-pf2", 100.0), rec("bs8-w1-pf2", 100.0, kind="sustained"))  # kind counts
    md = run_to_run(prev, cur, "prev")
    assert "No configuration passed in both sessions, so there is nothing to compare." in md
    assert table(md) == [] and not any("Target" in ln for ln in md)


def _folder(root: Path, name: str, data: dict[str, Any] | str) -> Path:
    d = root / name
    d.mkdir()
    (d / "results.json").write_text(data if isinstance(data, str) else json.dumps(data))
    return d


def _prev(folder: Path) -> Path | None:
    found = previous_run(folder)
    return found[0] if found else None


def test_previous_run_is_the_newest_older_one_of_this_machine_and_dataset(tmp_path: Path) -> None:
    runs = (rec("bs8-w2-pf2", 100.0),)
    want = _folder(tmp_path, "20261202T000100Z-vm", session(*runs))
    _folder(tmp_path, "20261202T000200Z-other", session(*runs, host="other"))  # another machine
    _folder(tmp_path, "20261202T000210Z-vm", session(*runs, videos=168913))  # another dataset
    _folder(tmp_path, "20261202T000220Z-vm", session(rec("bs8-w4-pf2", 100.0)))  # no config in common
    _folder(tmp_path, "20261202T000230Z-vm", '{"schema": 1, "results": [')  # truncated
    (tmp_path / "20261202T000240Z-vm").mkdir()  # no results.json yet
    cur = _folder(tmp_path, "20261202T000300Z-vm", session(*runs))
    newer = _folder(tmp_path, "20261202T000400Z-vm", session(*runs))
    (tmp_path / "latest").symlink_to(newer.name)  # as the session points it
    assert _prev(cur) == want.resolve()
    assert _prev(tmp_path / "latest") == cur.resolve()  # by the run it points at, not "latest"
    assert previous_run(want) is None
    # with the results it read, and the caller's own results taken as given (no second read)
    found = previous_run(cur, session(*runs))
    assert found is not None and found[0] == want.resolve() and found[1]["results"][0]["label"] == "bs8-w2-pf2"


def test_run_to_run_judges_no_target_without_a_config_within_the_cores() -> None:
    prev = session(rec("bs8-w4-pf2", 100.0, 1.0))
    cur = session(rec("bs8-w4-pf2", 101.0, 1.0))
    md = run_to_run(prev, cur, "prev")
    assert "- Target not judged: no config with W ≤ cores passed in both sessions." in md
    assert not any(ln.startswith("- Target met") for ln in md)


def test_a_pass_fail_flip_defeats_the_target_even_when_the_rates_agree() -> None:
    prev = session(rec("bs8-w2-pf2", 100.0, 1.0), rec("bs16-w2-pf2", 100.0, 1.0))
    cur = session(rec("bs8-w2-pf2", 101.0, 1.0), rec("bs16-w2-pf2", 0.0, None, status="failed"))
    text = "\n".join(run_to_run(prev, cur, "prev"))
    assert "- Passed in one session only: bs16-w2-pf2 (quick: passed before, failed now)." in text
    assert "**Target not met**" in text and "Target met" not in text.replace("Target not met", "")


def test_previous_run_needs_the_same_settings_and_a_config_passed_in_both(tmp_path: Path) -> None:
    runs = (rec("bs8-w2-pf2", 100.0),)
    want = _folder(tmp_path, "20261202T000100Z-vm", session(*runs))
    other_decoder = session(*runs)
    other_decoder["settings"] = {"decoder": "pyav"}
    _folder(tmp_path, "20261202T000200Z-vm", other_decoder)  # another decoder
    _folder(tmp_path, "20261202T000210Z-vm", session(*runs, cores=1))  # taskset -c 0
    _folder(tmp_path, "20261202T000220Z-vm", session(rec("bs8-w2-pf2", 0.0, None, status="failed")))
    cur = _folder(tmp_path, "20261202T000300Z-vm", session(*runs))
    assert _prev(cur) == want.resolve()
