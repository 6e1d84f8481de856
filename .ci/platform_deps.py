"""The project's runtime dependencies (torch aside) as another platform's pip would see them.

``pip install --platform ... --python-version ...`` downloads for another platform, but evaluates the
environment markers of the requirements it is given for the running machine. So this prints
pyproject.toml's dependencies with their markers evaluated for the target (``--machine``, ``--python``) and
dropped, for ``pip install --dry-run -r``; ``--summarize-report`` prints what such a dry run resolved.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SKIP = {"torch"}  # its aarch64 wheels are the user's choice (CUDA or CPU builds); pyproject bounds it


def target_env(machine: str, python: str) -> dict[str, str]:
    return {
        "platform_machine": machine,
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }


def requirements(pyproject: Path, machine: str, python: str) -> list[str]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    env = target_env(machine, python)
    out = []
    for text in deps:
        req = Requirement(text)
        if req.name in SKIP or (req.marker is not None and not req.marker.evaluate(env)):
            continue
        req.marker = None
        out.append(str(req))
    return out


def summarize(report: Path) -> None:
    items = json.loads(report.read_text())["install"]
    for it in items:
        meta = it["metadata"]
        wheel = it["download_info"]["url"].rsplit("/", 1)[-1]
        print(f"  {meta['name']}=={meta['version']}  ({wheel})")
    print(f"{len(items)} distributions resolve to wheels for the target")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--machine", default="aarch64")
    ap.add_argument("--python", default="3.12")
    ap.add_argument("--pyproject", default=str(Path(__file__).resolve().parents[1] / "pyproject.toml"))
    ap.add_argument("--summarize-report", metavar="REPORT_JSON")
    a = ap.parse_args()
    if a.summarize_report:
        summarize(Path(a.summarize_report))
    else:
        print("\n".join(requirements(Path(a.pyproject), a.machine, a.python)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
