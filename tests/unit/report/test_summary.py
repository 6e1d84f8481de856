"""ssv2_fixtures.report.summary: summary.md tables, recommendation section, validate, data_error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from report_helpers import fixture, run_dir, section, table, with_intervals

from ssv2_fixtures.report import render_summary, runs_of, summarize, terminal_lines
from ssv2_fixtures.run.outcome import KIND_NAMES
from ssv2_fixtures.run.units import half_width
from ssv2_fixtures.stress.traincfg import load as load_train_config


def test_healthy_tables(healthy_summary: tuple[Path, str]) -> None:
    d, text = healthy_summary
    assert (d / "summary.md").exists()
    ok = table(section(text, "Successful configurations"))
    assert len(ok) == 6
    assert section(text, "Failed configurations") == ["", "None.", ""]
    header = next(ln for ln in section(text, "Successful configurations") if ln.startswith("|"))
    assert "efficiency" in header  # the records carry decode_limit_videos_per_s
    by_label = {(r[0], r[1]): r for r in ok}
    sus16 = by_label[("sustained", "bs16-w4-pf2")]
    assert sus16[2:6] == ["16", "4", "2", "74.0 ±?"]  # a file from before intervals: the spread is unknown
    assert sus16[6] == "77 %"  # 74.0 / 96.0
    assert sus16[7] == "216.1" and sus16[8] == "307.4" and sus16[9] == "60"
    assert by_label[("quick (phase3)", "bs8-w2-pf2")][5] == "40.0 ±?"
    assert "*±?*: the record carries no interval" in "\n".join(section(text, "Successful configurations"))
    # machine and dataset facts a newcomer needs
    assert "| CPU cores | 16 |" in text and "| /dev/shm | 32.0 GiB (31.5 GiB free) |" in text
    assert "| clip | 16 frames at 224×224 px |" in text


def test_every_rate_shows_its_recorded_spread(spread_summary: tuple[Path, str]) -> None:
    _, text = spread_summary
    data = with_intervals(fixture("healthy"))
    want = {
        (r.test, r.label): f"{r.vps:.1f} ± {half_width(r.vps, r.interval):.1f}"
        for r in runs_of(data)
        if r.vps is not None and r.interval is not None
    }
    rows = {(r[0], r[1]): r[5] for r in table(section(text, "Successful configurations"))}
    assert len(want) == 6 and rows == want
    assert "±?" not in text
    body = "\n".join(section(text, "Recommended configuration"))
    assert f"**bs8-w4-pf2** (measured: {want[('sustained', 'bs8-w4-pf2')]} videos/s)" in body
    assert (
        "tie: bs8-w4-pf2, bs16-w4-pf2 — within each other's spread or 10% of the fastest's lower bound; "
        "the cheaper is recommended" in body
    )
    terminal = terminal_lines(data)
    ascii_rate = want[("sustained", "bs8-w4-pf2")].replace("±", "+-").split()
    assert any(ln.split()[:5] == ["bs8-w4-pf2", "sustained", *ascii_rate] for ln in terminal)


def test_healthy_recommendation_section(healthy_summary: tuple[Path, str]) -> None:
    _, text = healthy_summary
    body = "\n".join(section(text, "Recommended configuration"))
    # 74.0 (bs16) and 70.0 (bs8) without intervals are within the tie margin: the cheaper (less shm) wins
    assert "**bs8-w4-pf2** (measured: 70.0 ±? videos/s)" in body and "tie: bs8-w4-pf2, bs16-w4-pf2" in body
    # the sustained matrix shuffles and drops the last batch: the snippet carries what was tested
    assert "config = LoaderConfig(batch_size=8, num_workers=4, prefetch_factor=2, shuffle=True, drop_last=True)" in body
    assert "make_loader(dataset, config)" in body and "train=True)" in body
    assert "torch.multiprocessing.set_sharing_strategy('file_descriptor')" in body
    assert (
        "DataLoader(dataset, batch_size=8, shuffle=True, num_workers=4, prefetch_factor=2, "
        "persistent_workers=False, pin_memory=False, drop_last=True, worker_init_fn=seed_worker, "
        "generator=generator)"
    ) in body
    assert "generator.manual_seed(0)" in body
    # shm peak 165 MiB × 2 → 1g; fd peak 96 → the 1024 floor; no temp files
    assert "peak 165 MiB → `docker run --shm-size=1g`" in body
    assert "fd peak 96" in body and "`ulimit -n 1024`" in body and "65536 is enough" in body
    assert "peak 0 B" in body
    assert "only short runs" not in body.lower()


def test_recommendation_toml_loads_as_train_config(healthy_summary: tuple[Path, str], tmp_path: Path) -> None:
    body = "\n".join(section(healthy_summary[1], "Recommended configuration"))
    toml = body.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "train.toml").write_text(toml)
    tc = load_train_config(tmp_path / "train.toml")
    assert tc.loader.label == "bs8-w4-pf2" and tc.loader.shuffle and tc.loader.drop_last
    assert tc.targets == {"min_videos_per_s": 63.0}  # 90 % of the measured 70.0


def test_failures_table_has_every_kind(failures_summary: tuple[Path, str]) -> None:
    _, text = failures_summary
    failed = table(section(text, "Failed configurations"))
    assert len(failed) == len(KIND_NAMES) + 1  # every kind + the leaking sustained run
    kinds = [r[6] for r in failed]
    assert sorted(k for k in kinds if k in KIND_NAMES) == sorted(KIND_NAMES)
    assert "verdict:leak" in kinds
    assert len(table(section(text, "Successful configurations"))) == 2
    shm = next(r for r in failed if r[6] == "shm_exhausted")
    assert shm[1] == "bs32-w4-pf2" and shm[5] == "after 1 of 20 batches"
    assert "unable to write to file </torch_4117_2903217431_0>" in shm[7]
    assert "--shm-size=1.3g" in shm[8]
    assert next(r for r in failed if r[6] == "data_error")[5] == "before the first batch"
    legend = "\n".join(section(text, "Failed configurations"))
    assert "- **bus_error**: a process was killed by SIGBUS" in legend
    header = next(ln for ln in section(text, "Successful configurations") if ln.startswith("|"))
    assert "efficiency" not in header  # no decode limit recorded


def test_only_short_runs_section(failures_summary: tuple[Path, str]) -> None:
    body = "\n".join(section(failures_summary[1], "Recommended configuration"))
    assert "**bs4-w1-pf2** (measured: 14.2 ±? videos/s)" in body
    assert "only short runs: verify with pytest -m sustained" in body.lower()
    assert "bs4-w2-pf2 verdict:leak" in body and "not measured" not in body
    # the quick ladder measured it in order; the snippet is the training loader of that config
    assert "LoaderConfig(batch_size=4, num_workers=1, prefetch_factor=2, shuffle=True, drop_last=True)" in body


def test_nothing_passed_section() -> None:
    data = fixture("failures")
    data["results"] = [r for r in data["results"] if r["status"] != "passed"]
    assert "nothing to recommend" in "\n".join(section(render_summary(data), "Recommended configuration"))


def test_limits_boundaries(tmp_path: Path) -> None:
    text = summarize(run_dir(tmp_path, "limits")).read_text()
    rows = table(section(text, "Limits: largest batch size per worker count"))
    assert [r[:6] for r in rows] == [
        ["2", "2", "32", "64", "shm_exhausted", "735 MiB"],
        ["4", "2", "16", "32", "shm_exhausted", "662 MiB"],
        ["8", "2", "8", "16", "bus_error", "625 MiB"],
    ]
    assert not (tmp_path / "limits" / "sustained.png").exists()
    assert "sustained.png" not in text


def test_validate_targets_as_recorded(tmp_path: Path) -> None:
    text = summarize(run_dir(tmp_path, "validate")).read_text()
    body = section(text, "Validation: targets vs achieved")
    assert "Config file `configs/loader.toml` (bs16-w4-pf2): **FAILED**, 2 of 3 targets met." in body
    assert table(body) == [
        ["min_videos_per_s", "40", "52.1", "yes"],
        ["max_wait_ms_p95", "250", "412.7", "**no**"],
        ["max_rss_gb", "12 GiB", "3.5 GiB", "yes"],
    ]
    # the stress layer recorded the validate run as failed, with the missed target as its verdict
    failed = table(section(text, "Failed configurations"))
    assert [r[:2] + r[6:8] for r in failed] == [
        ["validate", "bs16-w4-pf2", "verdict:target:max_wait_ms_p95", "max_wait_ms_p95: wanted 250, achieved 412.7"]
    ]
    assert "Targets missed (max_wait_ms_p95)" in "\n".join(section(text, "Next steps"))


def test_old_validate_record_is_shown_as_recorded() -> None:
    """A file from before the stress layer recorded missed targets in the run: the run says passed and
    is shown so; the validate section still says FAILED, as recorded. Nothing is re-judged."""
    data = fixture("validate")
    v = data["results"][1]
    v["status"], v["verdicts"] = "passed", v["verdicts"][:2]
    text = render_summary(data)
    assert section(text, "Failed configurations") == ["", "None.", ""]
    assert any(r[:2] == ["validate", "bs16-w4-pf2"] for r in table(section(text, "Successful configurations")))
    assert "**FAILED**, 2 of 3 targets met." in "\n".join(section(text, "Validation: targets vs achieved"))


def test_validate_run_that_failed_checked_no_target() -> None:
    data = fixture("validate")
    data["validate"].update(rows=[], passed=False)
    body = section(render_summary(data), "Validation: targets vs achieved")
    assert "**FAILED**: the run itself failed (see *Failed configurations*), so no target was checked." in body[1]


def test_check_failed_on_a_passed_record_is_shown_not_judged() -> None:
    """A verdict "False" (an old writer's numpy bool as text) reads as a failed check; the run's status is
    still its record's."""
    data = fixture("healthy")
    data["results"][5]["verdicts"][1]["ok"] = "False"  # bs16-w4-pf2: degradation
    rows = {r[1]: r for r in table(section(render_summary(data), "Successful configurations")) if r[0] == "sustained"}
    assert rows["bs16-w4-pf2"][-1].endswith("check failed: degradation")
    data["results"][5]["status"] = "failed"  # as the stress layer records it
    failed = table(section(render_summary(data), "Failed configurations"))
    assert [(r[1], r[6]) for r in failed] == [("bs16-w4-pf2", "verdict:degradation")]


def test_capped_workers_are_shown() -> None:
    data = fixture("healthy")
    data["results"][1]["requested_workers"] = 6
    rows = table(section(render_summary(data), "Successful configurations"))
    assert rows[1][1] == "bs8-w4-pf2" and rows[1][3] == "4 (of 6 requested)"


def test_data_error_session_says_what_and_how_to_fix(tmp_path: Path) -> None:
    data = fixture("data_error")
    text = summarize(run_dir(tmp_path, "data_error")).read_text()
    err = data["data_error"]
    facts = dict(r for r in table(section(text, "Data could not load")))
    assert facts["kind"] == "data_error" and facts["file"] == err["file"] and facts["entry"] == err["entry"]
    assert facts["fix"] == err["fix"] and facts["message"] == err["message"]
    assert "the data could not be loaded" in "\n".join(section(text, "Recommended configuration"))
    steps = section(text, "Next steps")
    assert steps[1].startswith(f"1. Fix the data ({err['file']}, entry {err['entry']}): {err['fix']}")
    assert terminal_lines(data) == ["recommended: none - the data could not be loaded; the fix is in summary.md"]
    data["data_error"]["entry"] = None  # the file as a whole is at fault
    text = render_summary(data)
    assert "| entry | the file as a whole |" in text
    assert f"1. Fix the data ({err['file']}, the file as a whole)" in text


def test_validate_row_judged_on_the_lower_bound_says_so() -> None:
    from ssv2_fixtures.report.summary import _achieved

    row = {
        "target": "min_videos_per_s",
        "wanted": 60.0,
        "achieved": 64.0,
        "interval": [58.0, 70.0],
        "judged_on": "interval_lo",
        "ok": False,
    }
    assert _achieved(row) == "64.0 ± 6.0 (judged on the lower bound 58.0)"
    assert "lower bound" not in _achieved({"target": "min_videos_per_s", "achieved": 64.0, "judged_on": "rate"})


def _scaled(data: Any, f: float) -> Any:
    """``data`` with every recorded rate (and interval) × ``f``: the same session measured again."""
    for r in data["results"]:
        m = r.get("metrics") or {}
        if m.get("videos_per_s") is not None:
            m["videos_per_s"] *= f
        if m.get("videos_per_s_interval"):
            m["videos_per_s_interval"] = [x * f for x in m["videos_per_s_interval"]]
    return data


def test_run_to_run_section_follows_the_tables(tmp_path: Path) -> None:
    host = fixture("healthy")["machine"]["hostname"]
    run_dir(tmp_path, f"20261201T000000Z-{host}", _scaled(with_intervals(fixture("healthy")), 1.02))
    cur = run_dir(tmp_path, f"20261202T000000Z-{host}", with_intervals(fixture("healthy")))
    text = summarize(cur).read_text()
    lines = text.splitlines()
    after_failed = lines.index("## Failed configurations") + len(section(text, "Failed configurations")) + 1
    assert lines[after_failed] == f"## Run to run (vs 20261201T000000Z-{host})"
    body = section(text, f"Run to run (vs 20261201T000000Z-{host})")
    assert len(table(body)) == 6 and all(r[-1] == "tie" for r in table(body))
    assert "- Recommendation over the common configs: the same, **bs8-w4-pf2**." in body
    # the older session has no previous one: no section
    assert "## Run to run" not in summarize(tmp_path / f"20261201T000000Z-{host}").read_text()


def test_a_damaged_previous_run_is_passed_over(tmp_path: Path) -> None:
    host = fixture("healthy")["machine"]["hostname"]
    bad = fixture("healthy")
    bad["results"][0]["metrics"] = "not an object"  # loads as JSON, but its records do not read
    run_dir(tmp_path, f"20261201T000000Z-{host}", bad)
    text = summarize(run_dir(tmp_path, f"20261202T000000Z-{host}", fixture("healthy"))).read_text()
    assert "## Run to run" not in text and "## Successful configurations" in text


def test_a_comparison_that_fails_costs_only_its_section_and_says_why(tmp_path: Path, monkeypatch) -> None:
    import ssv2_fixtures.report.summary as summary

    def broken(*a: Any) -> list[str]:
        raise RuntimeError("boom")

    monkeypatch.setattr(summary, "run_to_run", broken)
    host = fixture("healthy")["machine"]["hostname"]
    run_dir(tmp_path, f"20261201T000000Z-{host}", fixture("healthy"))
    text = summarize(run_dir(tmp_path, f"20261202T000000Z-{host}", fixture("healthy"))).read_text()
    body = section(text, f"Run to run (vs 20261201T000000Z-{host})")
    assert f"Could not compare with 20261201T000000Z-{host}: RuntimeError: boom" in body
    assert "## Successful configurations" in text and "## Findings" in text


def test_render_summary_without_previous_has_no_section() -> None:
    data = fixture("healthy")
    assert "## Run to run" not in render_summary(data)
    assert "## Run to run (vs x)\n\nline" in render_summary(data, previous=("x", ["line", ""]))


def test_a_check_too_short_to_judge_is_shown_as_not_judged() -> None:
    from ssv2_fixtures.stress.verdicts import degradation

    data = fixture("healthy")
    rec = data["results"][5]  # bs16-w4-pf2, sustained: leak and degradation judged ok
    rec["verdicts"] = [v for v in rec["verdicts"] if v["name"] == "leak"] + [degradation([0.1] * 8, [16] * 8)]
    rows = {r[1]: r for r in table(section(render_summary(data), "Successful configurations")) if r[0] == "sustained"}
    status = rows["bs16-w4-pf2"][-1]
    assert "checks ok: leak," in status and "not judged (too few batches): degradation" in status
    assert "checks ok: leak, degradation" not in status
