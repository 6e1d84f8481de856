"""ssv2_fixtures.report.testbed: the *Machine*, *Dataset* and *Pipeline probe* tables of summary.md."""

from __future__ import annotations

from pathlib import Path

from report_helpers import fixture, run_dir, section, table

from ssv2_fixtures.report import render_summary, summarize
from ssv2_fixtures.run.units import fmt_bytes


def test_machine_table_shows_the_emulated_limits_as_the_ones_judged() -> None:
    data = fixture("healthy")
    mach = data["machine"]
    host_shm = f"{fmt_bytes(mach['shm_total_bytes'])} ({fmt_bytes(mach['shm_free_bytes'])} free)"
    plain = {r[0]: r[1] for r in table(section(render_summary(data), "Machine"))}
    assert plain["/dev/shm"] == host_shm  # no emulation: the host's, unmarked
    mach["emulated"] = {"shm_bytes": 64 * 2**20, "tmp_bytes": 256 * 2**20, "nofile": 1024, "mem_bytes": None}
    mach["emulated"].update(mem_mode="auto", cpus=None, profile="custom")
    rows = {r[0]: r[1] for r in table(section(render_summary(data), "Machine"))}
    judged = "emulated (custom): the limit judged"
    assert rows["/dev/shm"] == f"{fmt_bytes(64 * 2**20)}, {judged} (host: {host_shm})"
    assert rows["/dev/shm"].index("64") < rows["/dev/shm"].index("host:")  # the target first, the host's after
    assert rows["TMPDIR"].startswith(f"a private {fmt_bytes(256 * 2**20)} tmpfs per run, {judged} (host: ")
    assert rows["open files limit (ulimit -n)"] == f"1024, {judged} (host: {mach['nofile']})"
    assert rows["RAM"] == fmt_bytes(mach["ram_bytes"]) and rows["CPU cores"] == str(mach["cores"])  # not emulated


def test_unknown_cuda_is_not_shown_as_no() -> None:
    data = fixture("healthy")
    data["machine"]["cuda"] = None
    assert "| CUDA | unknown (no run reported) |" in render_summary(data)


def test_the_dataset_table_describes_the_users_pipeline_from_the_probe() -> None:
    data = fixture("probe")
    p = data["probe"]  # mypkg.data:build: 2 clips per video of 16×3×224² float32, batches of 8
    rows = dict((r[0], r[1]) for r in table(section(render_summary(data), "Dataset")))
    assert rows["kind"].startswith("your pipeline `mypkg.data:build` (num_frames=16, num_sample=2)")
    shape = "×".join(map(str, p["batch_shape"]))
    assert rows["clip"].startswith("16 frames at 224×224 px, float32, 2 clips per video") and shape in rows["clip"]
    # what --frames/--size said is not what the factory loads: the clip comes from the probe's tensors
    data["probe"].update(batch_shape=[2, 8, 160, 160, 3], batch_dtype="torch.uint8", clips_per_item=1.0, batch_size=2)
    rows = dict((r[0], r[1]) for r in table(section(render_summary(data), "Dataset")))
    assert (
        rows["clip"].startswith("8 frames at 160×160 px, uint8 (pipeline probe; ") and "2×8×160×160×3" in rows["clip"]
    )
    data["probe"]["factory"] = "other:build"  # a probe of another pipeline describes nothing here
    rows = dict((r[0], r[1]) for r in table(section(render_summary(data), "Dataset")))
    assert rows["clip"].startswith("not measured")
    # the built-in dataset: the clip the settings asked SSv2Clips for
    rows = dict((r[0], r[1]) for r in table(section(render_summary(fixture("healthy")), "Dataset")))
    assert rows["clip"] == "16 frames at 224×224 px" and rows["kind"] == "real SSv2"


def test_pipeline_probe_section_quotes_what_was_measured(tmp_path: Path) -> None:
    data = fixture("probe")
    p = data["probe"]
    text = summarize(run_dir(tmp_path, "probe")).read_text()
    lines = section(text, "Pipeline probe")
    rows = dict((r[0], r[1]) for r in table(lines))
    assert rows["pipeline"].startswith("`mypkg.data:build`") and "num_sample=2" in rows["pipeline"]
    assert (
        rows["bytes per batch"] == f"{fmt_bytes(p['bytes_per_item'] * p['batch_size'])} (batch size {p['batch_size']})"
    )
    assert rows["bytes per video"] == fmt_bytes(p["bytes_per_item"])
    assert rows["largest tensor"] == "×".join(map(str, p["batch_shape"])) + " " + p["batch_dtype"]
    assert rows["RSS of the loading process"] == fmt_bytes(p["rss_bytes"])
    assert rows["item rate L (one process)"] == (
        f"{p['items_per_s']:.1f} videos/s (no interval: {p['batches'] - 1} timed batches, too few for one)"
    )
    assert f"{p['batches']} batches" in rows["run"]
    assert any("used these measured bytes" in ln for ln in lines)
    # a session without a probe has no such section
    assert "## Pipeline probe" not in render_summary(fixture("healthy"))
