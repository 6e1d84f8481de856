"""Import discipline: the child-process entry stays light, the plugin does not import torch."""
from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "; import sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_child_entry_imports_no_pytest_and_little_of_the_package():
    # What a child imports to load one config (the modules its run() pulls in at run time).
    mods = _modules_after("import ssv2_fixtures.run.child, ssv2_fixtures.data.clips, ssv2_fixtures.data.loader, ssv2_fixtures.run.faults")
    assert "pytest" not in mods and "_pytest" not in mods
    ours = {m for m in mods if m.startswith("ssv2_fixtures.")}
    assert ours <= {"ssv2_fixtures.run.child", "ssv2_fixtures.data.clips", "ssv2_fixtures.data.loader", "ssv2_fixtures.run.faults",
                    "ssv2_fixtures.data.annotations", "ssv2_fixtures.data.sampling", "ssv2_fixtures.data.webm",
                    "ssv2_fixtures.data.layout", "ssv2_fixtures.data.annotation_files", "ssv2_fixtures.data.errors",
                    "ssv2_fixtures.run", "ssv2_fixtures.data"}  # the rooms' own __init__ (docstrings only), ours


def test_child_module_alone_imports_only_the_standard_library():
    mods = _modules_after("import ssv2_fixtures.run.child")
    assert not {"torch", "decord", "numpy", "pytest"} & mods


def test_plugin_import_does_not_load_torch_or_decord():
    mods = _modules_after("import ssv2_fixtures.plugin")
    assert "torch" not in mods and "decord" not in mods


def test_rank_entry_imports_only_the_standard_library_and_the_child():
    # torchrun starts one of these per rank: torch comes after the rank's resource limits, never pytest
    mods = _modules_after("import ssv2_fixtures.run.rank_child")
    assert not {"torch", "decord", "numpy", "pytest"} & mods
    assert {m for m in mods if m.startswith("ssv2_fixtures.")} == {"ssv2_fixtures.run", "ssv2_fixtures.run.child",
                                                                         "ssv2_fixtures.run.rank_child"}
