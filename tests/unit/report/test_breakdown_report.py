"""summary.md's *Where the time goes* from a recorded breakdown (issue #23)."""

from __future__ import annotations

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
