"""Which distribution provides ``import decord`` (:func:`ssv2_fixtures.data.decoders.decord_provider`)."""

from __future__ import annotations

from importlib import metadata

import pytest

from ssv2_fixtures.data import decoders


def _installed(monkeypatch: pytest.MonkeyPatch, versions: dict[str, str]) -> None:
    def version(dist: str) -> str:
        if dist in versions:
            return versions[dist]
        raise metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(metadata, "version", version)


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        ({"decord": "0.6.0"}, "decord 0.6.0"),
        ({"decord2": "3.4.0"}, "decord2 3.4.0"),
        ({}, None),
    ],
)
def test_names_the_one_distribution(monkeypatch, versions, expected) -> None:
    _installed(monkeypatch, versions)
    assert decoders.decord_provider() == expected


def test_both_installed_are_named_with_the_fix(monkeypatch) -> None:
    _installed(monkeypatch, {"decord": "0.6.0", "decord2": "3.4.0"})
    text = decoders.decord_provider()
    assert text is not None
    assert text.startswith("decord 0.6.0 and decord2 3.4.0") and "uninstall both, then install one" in text


def test_the_installed_module_has_a_provider() -> None:
    # this environment decodes with decord (the suite's tests need it), so some distribution provides it
    import decord  # noqa: F401

    provider = decoders.decord_provider()
    assert provider is not None and provider.split()[0] in decoders.DECORD_DISTRIBUTIONS
