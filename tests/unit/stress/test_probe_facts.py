"""probe.py's machine facts: the fields the reports read, JSON-ready and consistent with each other, the
caller's TMPDIR and sharing strategy passed through, and no torch import to get them."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from ssv2_fixtures.stress.probe import machine_facts, shm_facts

FIELDS = {
    "hostname",
    "cores",
    "cpu_count",
    "ram_bytes",
    "ram_available_bytes",
    "shm_total_bytes",
    "shm_free_bytes",
    "tmpdir",
    "tmp_free_bytes",
    "nofile",
    "nofile_hard",
    "python",
    "platform",
    "torch",
    "decord",
    "av",
    "cuda",
    "sharing_strategy",
}


def test_facts_have_every_field_and_are_consistent(tmp_path: Path) -> None:
    f = machine_facts(str(tmp_path), sharing_strategy="file_system")
    assert set(f) == FIELDS
    assert json.loads(json.dumps(f)) == f  # JSON-ready as they are: results.json stores them unchanged
    assert f["tmpdir"] == str(tmp_path) and f["sharing_strategy"] == "file_system"
    assert 1 <= f["cores"] <= f["cpu_count"] == os.cpu_count()
    assert 0 < f["ram_available_bytes"] <= f["ram_bytes"]
    assert 0 <= f["shm_free_bytes"] <= f["shm_total_bytes"]
    assert isinstance(f["tmp_free_bytes"], int) and f["tmp_free_bytes"] >= 0
    assert f["nofile_hard"] == resource.RLIM_INFINITY or f["nofile"] <= f["nofile_hard"]
    assert f["cuda"] is None or isinstance(f["cuda"], bool)
    assert f["python"].count(".") == 2


def test_a_runs_folder_not_made_yet_reads_the_disk_it_will_be_on(tmp_path: Path) -> None:
    # the plugin passes session.runs_dir, which the first run creates: its nearest existing parent's disk
    f = machine_facts(str(tmp_path / "not-there" / "runs"))
    assert f["tmpdir"] == str(tmp_path / "not-there" / "runs")
    assert f["tmp_free_bytes"] is not None and f["tmp_free_bytes"] > 0


def test_cuda_is_unknown_without_torch_and_torchs_answer_with_it() -> None:
    code = (
        "import sys; from ssv2_fixtures.stress.probe import cuda_known; a = cuda_known(); import torch; "
        "print(a, cuda_known() is torch.cuda.is_available())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "True"]  # no guess from /dev/nvidiactl or CUDA_VISIBLE_DEVICES


def test_no_tmpdir_means_the_processs_own() -> None:
    import tempfile

    assert machine_facts()["tmpdir"] == tempfile.gettempdir()


def test_shm_facts_of_a_missing_path_are_zero(tmp_path: Path) -> None:
    assert shm_facts(str(tmp_path / "no-shm")) == (0, 0)
    total, free = shm_facts(str(tmp_path))
    assert 0 <= free <= total and total > 0


def test_the_facts_import_no_torch() -> None:
    code = (
        "import sys; from ssv2_fixtures.stress.probe import machine_facts; f = machine_facts(); "
        "assert 'torch' not in sys.modules, 'machine_facts imported torch'; print(f['cores'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 1
