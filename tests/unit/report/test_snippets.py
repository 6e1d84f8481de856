"""The recommendation's snippets run as training code: each kind (the built-in SSv2Clips, a user's factory)
is executed in a fresh interpreter and iterates one batch through both its make_loader and its plain-torch
loader. The factory has no ``train`` parameter, and the arguments it is called with are the ones the real
pipeline probe recorded."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from report_helpers import fixture

from ssv2_fixtures.report.recommend import recommend, snippet, train_toml

FRAMES, SIZE, BS = 4, 32, 2

# Runs the snippet up to "# or with plain torch", takes one batch, then the whole snippet (the torch
# loader replaces the first), one batch again; prints each batch's first tensor shape and the dataset's
# train flag where it has one.
RUNNER = textwrap.dedent(
    """
    import json, sys
    code = open(sys.argv[1]).read()
    first = code.split("# or with plain torch")[0]

    def lead(x):
        while isinstance(x, (list, tuple)):
            x = x[0]
        if isinstance(x, dict):
            return lead(next(iter(x.values())))
        return list(x.shape)

    out = []
    for part in (first, code):
        ns = {"__name__": "__main__"}
        exec(compile(part, sys.argv[1], "exec"), ns)
        batch = next(iter(ns["loader"]))
        ds, sampler = ns["loader"].dataset, type(ns["loader"].sampler).__name__
        out.append({"shape": lead(batch), "train": getattr(ds, "train", None), "shuffle": sampler})
    print(json.dumps(out))
    """
)


def run_snippet(lines: list[str], tmp_path: Path) -> list[dict[str, Any]]:
    assert lines[0] == "```python" and lines[-1] == "```"
    code = tmp_path / "snippet.py"
    code.write_text("\n".join(lines[1:-1]) + "\n")
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    r = subprocess.run([sys.executable, str(runner), str(code)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{code.read_text()}\n--- stderr:\n{r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def one_run(dataset: dict[str, Any], top: dict[str, Any]) -> Any:
    """A results file with one passed quick run (the ladder's unshuffled config) over ``dataset``."""
    data = fixture("healthy")
    rec = copy.deepcopy(data["results"][0])  # quick, passed
    rec["config"].update(batch_size=BS, num_workers=1, prefetch_factor=2, shuffle=False, drop_last=False)
    rec["label"], rec["dataset"] = f"bs{BS}-w1-pf2", dataset
    data["results"], data["dataset"] = [rec], top
    return data


def test_the_builtin_snippet_is_a_training_loader_that_runs(synth_root: Path, tmp_path: Path) -> None:
    spec = {"root": str(synth_root), "split": "train", "num_frames": FRAMES, "size": SIZE, "decoder": "decord"}
    data = one_run(spec, {**spec, "synthetic": True})
    rec = recommend(data)
    assert rec is not None
    lines = snippet(rec, data)
    code = "\n".join(lines)
    assert "train=True" in code and "shuffle=True, drop_last=True" in code
    assert "generator.manual_seed(0)" in code and "worker_init_fn=seed_worker" in code
    got = run_snippet(lines, tmp_path)
    # make_loader, then plain torch: both shuffle (RandomSampler), take the training clip, batch BS videos
    assert [g["shuffle"] for g in got] == ["RandomSampler", "RandomSampler"]
    assert all(g["train"] is True and g["shape"] == [BS, FRAMES, SIZE, SIZE, 3] for g in got), got
    assert "shuffle = true" in "\n".join(train_toml(rec)) and "drop_last = true" in "\n".join(train_toml(rec))


FACTORY = textwrap.dedent(
    """
    import torch
    from torch.utils.data import Dataset


    class Frames(Dataset):
        def __init__(self, root, split, num_frames, size):
            self.root, self.split, self.num_frames, self.size = root, split, int(num_frames), int(size)

        def __len__(self):
            return 16

        def __getitem__(self, i):
            return torch.full((self.num_frames, self.size, self.size, 3), i, dtype=torch.uint8), i


    def build(root, split, num_frames, size):  # no train parameter
        return Frames(root, split, num_frames, size)
    """
)


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """results.json of a session whose real pipeline probe ran ``snippetpipe.data:build``."""
    from ssv2_fixtures.stress.tune_run import api_stress

    tmp = tmp_path_factory.mktemp("factory")
    pkg = tmp / "src" / "snippetpipe"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data.py").write_text(FACTORY)
    st = api_stress(
        tmp / "reports",
        dataset_factory="snippetpipe.data:build",
        dataset_arg=[f"num_frames={FRAMES}", f"size={SIZE}"],  # type: ignore[arg-type]
        dataset_path=[str(tmp / "src")],  # type: ignore[arg-type]
        batch_sizes=str(BS),
    )
    assert st.probe() is not None
    return json.loads((st.session.run_dir / "results.json").read_text()), tmp


def test_the_probe_records_the_arguments_the_factory_took(probed: tuple[dict[str, Any], Path]) -> None:
    data, _ = probed
    assert data["dataset"]["factory_args"] == ["num_frames", "root", "size", "split"]  # no train


def test_the_factory_snippet_calls_it_only_with_what_it_takes_and_runs(
    probed: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    top, _ = probed
    spec = {k: top["dataset"][k] for k in ("root", "split", "factory", "factory_kwargs", "factory_path")}
    data = one_run(spec, top["dataset"])
    rec = recommend(data)
    assert rec is not None
    lines = snippet(rec, data)
    call = next(ln for ln in lines if ln.startswith("built = build("))
    assert "train=" not in call and f"num_frames={FRAMES}" in call and "root=" in call
    got = run_snippet(lines, tmp_path)
    assert all(g["shape"] == [BS, FRAMES, SIZE, SIZE, 3] and g["shuffle"] == "RandomSampler" for g in got), got


def test_without_recorded_arguments_the_snippet_reads_the_signature_and_runs(
    probed: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    top, _ = probed
    spec = {k: top["dataset"][k] for k in ("root", "split", "factory", "factory_kwargs", "factory_path")}
    older = {k: v for k, v in top["dataset"].items() if k != "factory_args"}  # a results.json from before
    data = one_run(spec, older)
    rec = recommend(data)
    assert rec is not None
    lines = snippet(rec, data)
    assert any("inspect.signature(build)" in ln for ln in lines)
    got = run_snippet(lines, tmp_path)
    assert all(g["shape"] == [BS, FRAMES, SIZE, SIZE, 3] for g in got), got
