"""The video decoders a pipeline may use, and which distribution provides ``import decord``.

Light on purpose (no torch, no decoder imported): the plugin's machine facts and the options read it.
"""

from __future__ import annotations

DECODERS = ("decord", "pyav", "torchcodec")

DECORD_DISTRIBUTIONS = ("decord", "decord2")
"""The distributions that install the ``decord`` module: decord 0.6.0 (2021, x86_64/macOS wheels only) and
its maintained fork decord2 (x86_64 and aarch64 wheels). Either serves; both at once overwrite each other."""


def decord_provider() -> str | None:
    """Which distribution provides ``import decord`` here, with its version (``"decord2 3.4.0"``), read from
    the installed metadata without importing decord; both names when both are installed over each other;
    ``None`` when neither is."""
    from importlib import metadata

    found = []
    for dist in DECORD_DISTRIBUTIONS:
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    if len(found) > 1:
        return " and ".join(found) + " (installed over each other: uninstall both, then install one)"
    return found[0] if found else None
