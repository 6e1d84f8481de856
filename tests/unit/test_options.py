"""The option table and :class:`Settings`, resolved in-process (no pytest session): precedence, typed
fields that match the table, repeatable options and their named errors."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest

from ssv2_fixtures import options
from ssv2_fixtures.options import DERIVED, OPTIONS, Settings, SettingsError, dataset_arg, option_fields, resolve


def _resolve(cli: dict[str, Any] | None = None, ini: dict[str, Any] | None = None, **kw: Any) -> Settings:
    cli, ini = cli or {}, ini or {}
    repeat = {o.dest for o in OPTIONS if o.repeat}
    return resolve(lambda d: cli.get(d), lambda d: ini.get(d, [] if d in repeat else None), "tox.ini", **kw)


def test_every_option_has_a_typed_field_and_its_default_is_the_fields() -> None:
    fs = {f.name: f for f in dataclasses.fields(Settings)}
    hints = typing.get_type_hints(Settings, vars(options))
    mapped = option_fields()
    assert set(mapped.values()) | set(DERIVED) == set(fs), "Settings fields and OPTIONS disagree"
    assert "default" not in {f.name for f in dataclasses.fields(options.Option)}  # written once, in Settings
    bare, resolved = Settings(), _resolve()
    for o in OPTIONS:
        assert hints[mapped[o.dest]] is not Any, o.dest
        assert o.default == getattr(bare, mapped[o.dest]) == getattr(resolved, mapped[o.dest]), o.dest
    lists = [o for o in OPTIONS if isinstance(o.default, list)]
    assert lists and all(o.default is not o.default for o in lists)  # a fresh list each time: no shared state


def test_defaults_when_nothing_is_given() -> None:
    s = _resolve()
    assert s.quick_batches == 1000 and s.batch_sizes == [16, 32, 64] and s.reports == Path("reports")
    assert s.sources["quick_batches"] == "default"
    assert s.max_workers == 2 * s.cores and s.max_workers_option is None
    assert s.dataset_factory is None and s.dataset_kwargs == {} and s.dataset_path == []
    assert s.public()["max_workers"] is None  # the option as given; the cap in force is Settings.max_workers


def test_cli_beats_ini_beats_default() -> None:
    s = _resolve(cli={"quick_batches": "4"}, ini={"quick_batches": "7", "batches": "30"})
    assert (s.quick_batches, s.batches, s.frames) == (4, 30, 16)
    assert s.sources["quick_batches"] == "--quick-batches (from the command line)"
    assert s.sources["batches"] == "ini key batches (from tox.ini)"
    assert s.sources["frames"] == "default"


def test_bad_values_name_their_source() -> None:
    with pytest.raises(SettingsError, match=r"invalid --workers \(from the command line\): 'two'"):
        _resolve(cli={"workers": "two"})
    with pytest.raises(SettingsError, match=r"invalid ini key batch_sizes \(from tox.ini\): '16,big'"):
        _resolve(ini={"batch_sizes": "16,big"})


def test_settings_are_frozen() -> None:
    s = _resolve()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.batches = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "text,key,value",
    [
        ("num_frames=16", "num_frames", 16),
        ("scale=0.5", "scale", 0.5),
        ("flip=true", "flip", True),
        ("sizes=[1, 2]", "sizes", [1, 2]),
        ("mode=fast", "mode", "fast"),
        ('name="a b"', "name", "a b"),
        ("root=/data/x", "root", "/data/x"),
        ("empty=", "empty", ""),
    ],
)
def test_dataset_arg_reads_toml_values_and_bare_words(text: str, key: str, value: Any) -> None:
    assert dataset_arg(text, "here") == (key, value)


def test_dataset_options_from_cli_and_ini(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    s = _resolve(
        cli={
            "dataset_factory": "mypkg.data:build",
            "dataset_arg": ["n=3", "mode=fast", "n=4"],
            "dataset_path": [str(tmp_path / "src")],
        }
    )
    assert s.dataset_factory == "mypkg.data:build"
    assert s.dataset_kwargs == {"n": 4, "mode": "fast"}  # a later KEY wins
    assert s.dataset_path == [(tmp_path / "src").resolve()]
    ini = _resolve(ini={"dataset_arg": ["n=3", "", "flip=false"]})
    assert ini.dataset_kwargs == {"n": 3, "flip": False}
    assert ini.sources["dataset_arg"] == "ini key dataset_arg (from tox.ini)"


@pytest.mark.parametrize(
    "cli,needle",
    [
        (
            {"dataset_arg": ["n=3", "frames"]},
            "invalid --dataset-arg (from the command line): 'frames': expected KEY=VALUE",
        ),
        ({"dataset_arg": ["1x=3"]}, "'1x=3': expected KEY=VALUE"),
        ({"dataset_factory": "mypkg.data.build"}, "expected MODULE:CALLABLE"),
        ({"dataset_path": ["/nonexistent/ssv2-dir"]}, "is not a directory"),
        ({"quick_seconds": "-1"}, "invalid --quick-seconds"),
    ],
)
def test_dataset_option_errors_are_named(cli: dict[str, Any], needle: str) -> None:
    with pytest.raises(SettingsError) as err:
        _resolve(cli=cli)
    assert needle in str(err.value)


@pytest.mark.parametrize(
    "dest,flag", [("tune_budget", "--tune-budget"), ("target_videos_per_s", "--target-videos-per-s")]
)
@pytest.mark.parametrize("text", ["0", "-5", "fast"])
def test_tune_numbers_must_be_positive_at_startup(dest: str, flag: str, text: str) -> None:
    # a 0 s budget or a 0 videos/s target means nothing: refused before any test starts, in words that
    # fit both units (no "seconds" for a videos/s option)
    with pytest.raises(SettingsError) as err:
        _resolve(cli={dest: text})
    msg = str(err.value)
    assert f"invalid {flag} (from the command line): {text!r}" in msg
    assert "seconds" not in msg.split(":", 1)[1]
    assert _resolve(cli={dest: "2.5"}).__getattribute__(dest) == 2.5


def test_invocation_dir_is_recorded(tmp_path: Path) -> None:
    assert _resolve(invocation_dir=tmp_path).invocation_dir == tmp_path.resolve()
