"""The issue's three lines, imported as the README writes them."""

from __future__ import annotations

import importlib


def test_from_package_import_watch_is_callable_after_the_submodule_is_imported() -> None:
    importlib.import_module("ssv2_fixtures.watch.core")  # as the plugin, a report or a test would
    from ssv2_fixtures import watch

    w = watch([[1, 2], [3, 4], [5, 6]], interval_s=60)  # type: ignore[operator, unused-ignore]
    got = [batch for _step, batch in enumerate(w)]
    assert got == [[1, 2], [3, 4], [5, 6]]
    s = w.summary()
    assert s["steps"] == 3 and s["videos"] == 3  # no batch_size: each batch counted (a list: 1 item)
