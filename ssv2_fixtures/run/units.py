"""The one size formatter: binary sizes in the project's units ("GB"/"MB"/"KB" for 2**30/2**20/2**10)."""

from __future__ import annotations

KB, MB, GB = 2**10, 2**20, 2**30


def fmt_bytes(n: float | None) -> str:
    """``1.5 GB``, ``385 MB``, ``12 KB``, ``100 B``; ``?`` for an unknown size."""
    if n is None:
        return "?"
    n = float(n)
    if abs(n) >= GB:
        return f"{n / GB:.1f} GB"
    if abs(n) >= MB:
        return f"{n / MB:.0f} MB"
    if abs(n) >= KB:
        return f"{n / KB:.0f} KB"
    return f"{n:.0f} B"


__all__ = ["KB", "MB", "GB", "fmt_bytes"]
