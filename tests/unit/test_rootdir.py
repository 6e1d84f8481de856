"""``--ssv2-root DIR`` (space form) and the other value options must not choose pytest's rootdir or
config file, and nothing may be written under the dataset root (pytest-dev/pytest#8846).

The end-to-end checks run real ``pytest`` subprocesses (the plugin loads through its entry point, as
for a user) on a small project of their own with a ``pyproject.toml``, once from inside it and twice
from a folder outside it. The dataset root and the other option paths lie under another top-level
folder than the project, as ``/mnt/ssv2`` would: then pytest, unrepaired, takes the dataset root
itself as the rootdir and writes ``.pytest_cache/`` into it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssv2_fixtures.options import OPTIONS
from ssv2_fixtures.rootdir import join_values, missing_internals, value_option_names

PROBE = """
def test_probe(pytestconfig):
    print("SEEN", pytestconfig.rootpath, pytestconfig.inipath, pytestconfig.getini("batches"),
          pytestconfig.getoption("ssv2_root"), pytestconfig.getoption("reports"))
"""


# --------------------------------------------------------------------------- pure


def test_join_values() -> None:
    names = ("--ssv2-root", "--reports")
    assert join_values(["-m", "sustained", "--ssv2-root", "/mnt/ssv2", "-x"], names) == [
        "-m",
        "sustained",
        "--ssv2-root=/mnt/ssv2",
        "-x",
    ]
    assert join_values(["--ssv2-root=/d", "--reports", "r", "t/"], names) == ["--ssv2-root=/d", "--reports=r", "t/"]
    assert join_values(["t/", "--", "--ssv2-root", "x"], names) == ["t/", "--", "--ssv2-root", "x"]
    assert join_values(["--ssv2-root"], names) == ["--ssv2-root"]  # left for argparse to refuse
    assert join_values(["--workers", "2"], names) == ["--workers", "2"]


def test_every_value_option_is_covered() -> None:
    names = set(value_option_names())
    for o in OPTIONS:
        assert (f"--{o.name}" in names) == (not o.flag), o.name
    assert {
        "--ssv2-root",
        "--reports",
        "--train-config",
        "--ssv2-list-file",
        "--loader-tmpdir",
        "--ssv2-cache",
    } <= names


def test_pytest_still_has_the_internals_the_repair_uses(pytestconfig: pytest.Config) -> None:
    # Fails loudly on a pytest release that renamed one: ssv2_fixtures/rootdir.py needs updating then.
    assert missing_internals(pytestconfig) == []


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def far(tmp_path: Path) -> Iterator[Path]:
    """A folder whose only common ancestor with ``tmp_path`` is ``/``."""
    top = tmp_path.parts[1]
    for base in ("/var/tmp", "/dev/shm", str(Path.home())):
        if Path(base).is_dir() and Path(base).parts[1] != top and os.access(base, os.W_OK):
            d = Path(tempfile.mkdtemp(prefix="ssv2-rootdir-", dir=base))
            break
    else:
        pytest.skip(f"no writable folder outside /{top}")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _run(cwd: Path, *args: str) -> tuple[str, str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTEST_ADDOPTS" and not k.startswith("PYTEST_XDIST") and k != "PYTEST_CURRENT_TEST"
    }
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-s", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    root = re.search(r"^rootdir: (.*)$", out, re.M)
    conf = re.search(r"^configfile: (.*)$", out, re.M)
    seen = re.search(r"^.*SEEN (.*)$", out, re.M)
    assert root and seen, out
    return root[1].strip(), conf[1].strip() if conf else "", seen[1].strip()


@pytest.mark.parametrize("where", ["project", "outside-with-path", "outside"])
def test_value_options_do_not_move_the_rootdir(tmp_path: Path, far: Path, where: str) -> None:
    project, outside = tmp_path / "project", tmp_path / "outside"
    (project / "t").mkdir(parents=True)
    outside.mkdir()
    (project / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\ntestpaths = ["t"]\naddopts = "-p no:cacheprovider --strict-markers"\n'
        'batches = "7"\n'
    )
    (project / "t" / "test_probe.py").write_text(PROBE)
    (outside / "test_probe_out.py").write_text(PROBE)
    data = far / "ssv2"
    (data / "videos").mkdir(parents=True)
    (data / "videos" / "1.webm").write_bytes(b"\x1a\x45\xdf\xa3")
    (data / "labels.json").write_text("{}")
    (far / "train.toml").write_text("[loader]\n")
    (far / "list.txt").write_text("")
    before = _snapshot(data)
    cwd, extra = {
        "project": (project, []),
        "outside-with-path": (outside, [str(project / "t")]),
        "outside": (outside, []),
    }[where]
    paths = [
        "--reports",
        str(far / "reports"),
        "--loader-tmpdir",
        str(far / "tmp"),
        "--train-config",
        str(far / "train.toml"),
        "--ssv2-list-file",
        str(far / "list.txt"),
        "--ssv2-cache",
        str(far / "cache"),
    ]

    plain = _run(cwd, *extra)
    spaced = _run(cwd, "--ssv2-root", str(data), *paths, *extra)
    equals = _run(cwd, f"--ssv2-root={data}", *extra)

    assert spaced[:2] == equals[:2] == plain[:2]
    if where != "outside":
        assert plain[:2] == (str(project), "pyproject.toml")
        # The project's ini was read: its ini twin reached the test, and the option kept its value.
        assert spaced[2].split()[2] == "7" and spaced[2].split()[3] == str(data)
    else:
        assert plain[0] == str(outside)
    assert _snapshot(data) == before  # nothing written under the dataset root (no .pytest_cache)
    assert not (data / ".pytest_cache").exists()
