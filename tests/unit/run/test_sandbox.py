"""ssv2_fixtures.run.sandbox: sizes, the Sandbox record, profiles, what is (un)available and why, prepare.

The emulation itself (a child really running out of the emulated resource) is tested in
test_runner.py and test_emulation.py; here only what can be checked without running a child.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ssv2_fixtures.run import sandbox as sbx
from ssv2_fixtures.run.sandbox import PROFILES, Sandbox, cgroup_base, parse_size, prepare, profile, unavailable

MiB, GiB = 2**20, 2**30


@pytest.mark.parametrize(
    "text,expected",
    [
        ("64M", 64 * MiB),
        ("64m", 64 * MiB),
        ("64MiB", 64 * MiB),
        ("64 MB", 64 * MiB),
        ("2g", 2 * GiB),
        ("1.5G", int(1.5 * GiB)),
        ("512k", 512 * 1024),
        ("1T", 2**40),
        ("1048576", 2**20),
        ("10b", 10),
        (" 8G ", 8 * GiB),
        (4096, 4096),
        (0, 0),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "M", "64X", "-1M", "1e3", "sixty", "64 M B", True, -5])
def test_parse_size_refuses_and_names_where(bad: object) -> None:
    with pytest.raises(ValueError, match=r"invalid size .* from --ssv2-shm"):
        parse_size(bad, where="--ssv2-shm")  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["shm_bytes", "tmp_bytes", "mem_bytes", "nofile", "cpus"])
@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "64M"])
def test_sandbox_refuses_bad_values(field: str, bad: object) -> None:
    # 0 matters most: tmpfs reads size=0 as "no limit", so it would silently emulate nothing
    with pytest.raises(ValueError, match=f"Sandbox.{field}"):
        Sandbox(**{field: bad})  # type: ignore[arg-type]


def test_sandbox_refuses_unknown_mem_mode() -> None:
    with pytest.raises(ValueError, match="mem_mode"):
        Sandbox(mem_bytes=GiB, mem_mode="swap")


def test_sandbox_properties() -> None:
    assert not Sandbox().emulated and not Sandbox(profile="x").emulated
    assert Sandbox(nofile=128).emulated and not Sandbox(nofile=128).needs_namespace
    assert Sandbox(tmp_bytes=MiB).needs_namespace and Sandbox(shm_bytes=MiB).needs_namespace
    merged = PROFILES["docker-default"].merged(nofile=256, shm_bytes=None)
    assert merged.shm_bytes == 64 * MiB and merged.nofile == 256  # None leaves a field as it was
    assert merged.to_dict()["nofile"] == 256
    with pytest.raises(ValueError):
        PROFILES["docker-default"].merged(nofile=0)


def test_profiles() -> None:
    assert set(PROFILES) >= {"docker-default", "laptop", "hpc-quota"}
    for name, sb in PROFILES.items():
        assert isinstance(sb, Sandbox) and sb.profile == name and sb.emulated
        assert profile(name) is sb
    assert PROFILES["docker-default"] == Sandbox(shm_bytes=64 * MiB, profile="docker-default")
    assert PROFILES["hpc-quota"].tmp_bytes is not None


def test_unknown_profile_names_where_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown profile 'dgx' from --emulate; choose one of \['docker-default'"):
        profile("dgx")


def test_nothing_to_apply_is_always_available() -> None:
    assert unavailable(Sandbox()) is None
    assert unavailable(Sandbox(nofile=64, mem_bytes=GiB, mem_mode="rlimit")) is None


def test_namespace_reason_names_the_missing_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without `unshare`: the real lookup fails
    sbx._namespace_reason.cache_clear()
    try:
        reason = unavailable(Sandbox(shm_bytes=64 * MiB))
        assert reason is not None and "`unshare`" in reason
        assert unavailable(Sandbox(nofile=64)) is None  # rlimits need no namespace
    finally:
        monkeypatch.undo()
        sbx._namespace_reason.cache_clear()


def test_cgroup_mode_says_why_when_no_controller_is_writable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sbx, "cgroup_base", lambda: None)
    reason = unavailable(Sandbox(mem_bytes=GiB, mem_mode="cgroup"))
    assert reason is not None and "cgroup" in reason and "writable" in reason
    assert unavailable(Sandbox(mem_bytes=GiB, mem_mode="auto")) is None  # auto falls back to RLIMIT_AS, by name
    p = prepare(Sandbox(mem_bytes=GiB, mem_mode="auto"), "/nonexistent")
    assert p.mem_mode == "rlimit_as" and p.address_space_bytes == GiB and p.cgroup is None


def test_prepare_refuses_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sbx, "cgroup_base", lambda: None)
    with pytest.raises(RuntimeError, match="cgroup memory cap needs"):
        prepare(Sandbox(mem_bytes=GiB, mem_mode="cgroup"), "/nonexistent")


def test_prepare_namespace_prefix(tmp_path: Path) -> None:
    if (reason := unavailable(Sandbox(shm_bytes=MiB))) is not None:
        pytest.skip(reason)
    p = prepare(Sandbox(shm_bytes=16 * MiB, tmp_bytes=8 * MiB, nofile=128), tmp_path)
    assert p.prefix[:4] == ["unshare", "--mount", "--propagation", "private"]
    script = p.prefix[p.prefix.index("-c") + 1]
    assert f"size={16 * MiB}" in script and "/dev/shm" in script
    assert f"size={8 * MiB}" in script and f"cd {tmp_path}" in script and script.endswith('exec "$@"')
    assert p.nofile == 128 and p.address_space_bytes is None and p.cgroup is None
    p.cleanup()


def test_prepare_rlimit_and_cpus() -> None:
    p = prepare(Sandbox(nofile=256, mem_bytes=GiB, mem_mode="rlimit", cpus=1), "/nonexistent")
    assert p.prefix == []  # no namespace, no cgroup: limits are applied by the child itself
    assert (p.nofile, p.address_space_bytes, p.mem_mode) == (256, GiB, "rlimit_as")
    assert p.cpus == sorted(os.sched_getaffinity(0))[:1]
    f = p.facts()
    assert f["mem_limit_bytes"] == GiB and f["cpus_applied"] == 1 and f["emulated"]["nofile"] == 256


def test_prepare_cgroup_is_created_then_removed() -> None:
    if cgroup_base() is None:
        pytest.skip(str(unavailable(Sandbox(mem_bytes=GiB, mem_mode="cgroup"))))
    p = prepare(Sandbox(mem_bytes=300 * MiB, mem_mode="cgroup"), "/nonexistent")
    try:
        assert p.cgroup is not None and p.cgroup.is_dir() and p.mem_mode in ("cgroup-v1", "cgroup-v2")
        limit = p.cgroup / ("memory.limit_in_bytes" if p.mem_mode == "cgroup-v1" else "memory.max")
        assert int(limit.read_text()) == 300 * MiB
        assert f"{p.cgroup}/cgroup.procs" in p.prefix[2]
        assert p.facts().get("cgroup_oom_kills", 0) == 0
    finally:
        p.cleanup()
    assert not p.cgroup.exists()
