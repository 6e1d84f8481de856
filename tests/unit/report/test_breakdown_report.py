"""summary.md's *Where the time goes* from a recorded breakdown (issue #23)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ssv2_fixtures.report.breakdown import breakdown_section
from ssv2_fixtures.run.breakdown import ItemTimings, record, with_achieved


def _data() -> dict[str, object]:
    t = ItemTimings(getitem_s=[0.08, 0.10], decode_s=[0.03, 0.03], collate_s=[0.005], loop_s=0.2)
    hot = [{"function": "rand_augment", "file": "/u/aug.py", "line": 12, "s_per_item": 0.04}]
    rec = record(t, item_rate=10.0, transfer=400.0, cores=2, achieved=None, hot=hot, method="measured so")  # type: ignore[list-item]
    return {"breakdown": with_achieved(rec, 8.0)}


def test_the_section_shows_stages_ceilings_binding_and_hot_spots() -> None:
    text = "\n".join(breakdown_section(_data()))
    assert "## Where the time goes" in text
    assert "| transform | 60.0 ms | 60% |" in text
    assert "| transfer | 400.0 videos/s | 50.0× |" in text
    assert "| item | 20.0 videos/s | 2.5× |" in text
    assert "**Binding: transform**" in text
    assert "| rand_augment | aug.py:12 | 40.0 ms |" in text
    assert "How: measured so" in text


def test_no_breakdown_no_section() -> None:
    assert breakdown_section({}) == []


def test_no_breakdown_says_so_once_configs_ran() -> None:
    data = {"results": [{"status": "passed"}], "settings": {"no_breakdown": True}}
    assert breakdown_section(data) == [
        "## Where the time goes",
        "",
        "Not measured: the session ran with `--no-breakdown`.",
        "",
    ]
    assert breakdown_section({**data, "results": []}) == []


def test_what_would_help_leads_with_the_binding_stage_measured_first_and_says_what_was_not_measured() -> None:
    from ssv2_fixtures.run.breakdown import what_would_help

    data = _data()
    b = data["breakdown"]
    b["what_would_help"] = what_would_help(  # type: ignore[index]
        cores=2,
        decode_now=60.0,
        decode_at_size={"size": 224, "s": 0.05},
        transfer={"videos_per_s": 30.0, "bytes_per_batch": 154_000_000},
        transfer_uint8={"videos_per_s": 60.0, "bytes_per_batch": 38_500_000},
    )
    text = "\n".join(breakdown_section(data))
    lines = text.splitlines()
    first = lines.index("**Binding: transform** — what would help:") + 2
    assert "transfer ceiling 60.0 videos/s vs 30.0 videos/s now (2.00×, would help)" in lines[first]
    assert "37 MiB per batch vs 147 MiB" in lines[first] and "(measured)" in lines[first]
    assert "convert to float and normalise on the GPU instead of in the workers (not measured here)" in text
    # the decode change is another stage's: listed after, with its verdict (40 < 60 videos/s now)
    assert "decode ceiling 40.0 videos/s vs 60.0 videos/s now (0.67×, would not help here)" in text
    assert text.index("Also measured") < text.index("decode ceiling 40.0")


def test_an_older_record_without_what_would_help_gets_the_advice_as_not_measured() -> None:
    text = "\n".join(breakdown_section(_data()))
    assert "**Binding: transform** — what would help:" in text and "(not measured here)" in text


def _session() -> dict[str, object]:
    data = _data()
    data["machine"] = {"cores": 2}
    data["results"] = [
        {
            "status": "passed",
            "label": f"bs8-w{w}",
            "config": {"batch_size": 8, "num_workers": w},
            "metrics": {"videos_per_s": v},
        }
        for w, v in ((0, 9.0), (2, 8.0), (2, 7.0))
    ] + [{"status": "failed", "label": "bs8-w4", "config": {"batch_size": 8, "num_workers": 4}, "metrics": {}}]
    return data


def test_one_bar_per_measured_config_and_the_plot_is_written_and_shown(tmp_path: Path) -> None:
    from ssv2_fixtures.report.breakdown import BREAKDOWN_PLOT, breakdown_plot, config_bars

    data = _session()
    bars = config_bars(data)
    assert [(label.split("-")[1], v) for label, v, _ in bars] == [("w0", 9.0), ("w2", 8.0)]  # best run per config
    assert all(math.isclose(sum(bar.values()), 1 / v) for _, v, bar in bars)
    assert breakdown_plot(data, tmp_path) == [BREAKDOWN_PLOT] and (tmp_path / BREAKDOWN_PLOT).stat().st_size > 0
    assert f"]({BREAKDOWN_PLOT})" in "\n".join(breakdown_section(data, [BREAKDOWN_PLOT]))
    assert BREAKDOWN_PLOT not in "\n".join(breakdown_section(data))  # not written: not referenced


def test_a_plot_failure_warns_and_the_section_still_renders(tmp_path: Path) -> None:
    from ssv2_fixtures.report.breakdown import breakdown_plot

    data = _session()
    data["breakdown"]["ceilings"] = None  # type: ignore[index]  # a hand-edited record the bars cannot use
    with pytest.warns(UserWarning, match="breakdown plot was not written"):
        assert breakdown_plot(data, tmp_path) == []
    assert breakdown_plot({}, tmp_path) == []  # no breakdown: no plot, no warning
