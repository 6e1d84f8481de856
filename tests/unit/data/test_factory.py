"""data/factory: the user's MODULE:CALLABLE is called with what its signature takes, what it returns is
checked, and every way that can be wrong is one named FactoryError with file, line and fix (finding the
callable: tests/unit/data/test_locate.py).

The factories live in tests/userpipe/userpipe (a user-like project outside the package), loaded
through ``factory_path`` as ``--dataset-path`` does.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from unit_helpers import USERPIPE, factory_error, factory_spec

from ssv2_fixtures import Pipeline
from ssv2_fixtures.data.batch import describe
from ssv2_fixtures.data.factory import check_collatable, load_pipeline
from ssv2_fixtures.data.locate import WHATS, FactoryError

BAD = USERPIPE / "userpipe" / "bad.py"


def line_of(path: Path, text: str) -> int:
    return next(k for k, ln in enumerate(path.read_text().splitlines(), 1) if text in ln)


def test_factory_raises_names_the_users_frame() -> None:
    err = factory_error("userpipe.bad:raises")
    assert err.what == "factory_raised"
    assert err.file == str(BAD) and err.line == line_of(BAD, "raise RuntimeError")
    assert "RuntimeError: annotations for train not found under /nowhere" in str(err)
    assert "in _open_annotations" in str(err)
    assert f"{BAD}:{err.line}" in err.fix  # the remedy alone says where to look
    assert isinstance(err.__cause__, RuntimeError)  # the traceback is kept for stderr


def test_returns_not_a_dataset() -> None:
    err = factory_error("userpipe.bad:returns_list")
    assert err.what == "not_a_dataset" and "returned a list" in str(err)
    assert err.file == str(BAD) and err.line == line_of(BAD, "def returns_list")
    assert "subclass of torch.utils.data.Dataset" in err.fix


def test_iterable_dataset_is_refused_with_why() -> None:
    err = factory_error("userpipe.bad:returns_iterable")
    assert err.what == "iterable_dataset"
    assert "map-style" in err.fix and "sampler" in err.fix and "fault drills" in err.fix


def test_empty_dataset() -> None:
    err = factory_error("userpipe.bad:returns_empty")
    assert err.what == "empty_dataset" and "len 0" in str(err) and "'/nowhere'" in str(err)


def test_unknown_kwarg_names_what_the_factory_takes() -> None:
    err = factory_error("userpipe.bad:returns_empty", colour="red")
    assert err.what == "bad_call" and "colour" in err.fix and "root, split, train" in err.fix


def test_missing_required_kwarg() -> None:
    err = factory_error("userpipe.bad:needs_arg")
    assert err.what == "bad_call" and "mode" in str(err) and "--dataset-arg" in err.fix
    assert factory_error("userpipe.bad:needs_arg", mode="x").what == "empty_dataset"  # given: it gets called


def test_uncollatable_item_names_the_path() -> None:
    pipe = load_pipeline(factory_spec("userpipe.bad:uncollatable"), train=True)
    with pytest.raises(FactoryError) as info:
        check_collatable(pipe.dataset, pipe.collate_fn)
    err = info.value
    assert err.what == "uncollatable"
    assert "item[0][1]: list of tensors of different shapes ([2, 8, 8] in item 0, [2, 9, 8] in item 1)" in str(err)
    assert err.file == str(BAD) and "collate_fn" in err.fix


class Items(Dataset):
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        return self.items[i]


@pytest.mark.parametrize(
    "items, where",
    [
        ([{"a": torch.zeros(2)}, {"b": torch.zeros(2)}], "item: dict key 'a' is in item 0 but not in item 1"),
        ([{"x": [torch.zeros(1), 3]}, {"x": [torch.zeros(1), None]}], "item['x'][1]: a int in item 0 but a NoneType"),
        ([(torch.zeros(1), 1), (torch.zeros(1), 1, 2)], "item: tuples of different lengths (2 in item 0, 3 in item 1"),
        ([object(), object()], "item: a object, which the default collate cannot batch"),
    ],
)
def test_diagnosis_paths(items: list[Any], where: str) -> None:
    with pytest.raises(FactoryError) as info:
        check_collatable(Items(items))
    assert where in str(info.value)


def test_collatable_nested_items_pass() -> None:
    items = [
        {"v": [torch.zeros(2, 3), torch.ones(4)], "m": (1, "id1", True)},
        {"v": [torch.zeros(2, 3), torch.ones(4)], "m": (2, "id2", False)},
    ]
    check_collatable(Items(items))  # no error: shapes agree position by position


def test_user_collate_that_raises_is_named() -> None:
    def collate(batch: list[Any]) -> Any:
        raise KeyError("views")

    with pytest.raises(FactoryError) as info:
        check_collatable(Items([1, 2]), collate)
    assert info.value.what == "collate_raised" and "KeyError" in str(info.value)
    assert info.value.file == __file__


def test_item_that_raises_is_named() -> None:
    class Bad(Items):
        def __getitem__(self, i: int) -> Any:
            raise ValueError("cannot read frame")

    with pytest.raises(FactoryError) as info:
        check_collatable(Bad([1, 2]))
    assert info.value.what == "item_raised" and info.value.file == __file__


def test_pipeline_with_non_callable_collate() -> None:
    class Factory:
        def __call__(self) -> Pipeline:
            return Pipeline(Items([1]), collate_fn="stack")  # type: ignore[arg-type]

    mod = type(sys)("factory_obj_userpkg")
    mod.build = Factory()  # type: ignore[attr-defined]
    sys.modules["factory_obj_userpkg"] = mod
    try:
        with pytest.raises(FactoryError) as info:
            load_pipeline({"factory": "factory_obj_userpkg:build"}, train=False)
    finally:
        del sys.modules["factory_obj_userpkg"]
    assert info.value.what == "bad_pipeline" and "collate_fn" in str(info.value)


def test_error_pickles_and_carries_event_fields() -> None:
    err = factory_error("userpipe.bad:raises")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is FactoryError and str(back) == str(err)
    assert back.event_fields() == {
        "what": "factory_raised",
        "file": str(BAD),
        "line": line_of(BAD, "raise RuntimeError"),
        "fix": err.fix,
    }
    assert err.what in WHATS


# --------------------------------------------------------------------------- signature filtering


def _capture(**seen: Any) -> Any:
    return seen


@pytest.mark.parametrize(
    "source, want",
    [
        ("def build(root): return root", {"root"}),
        ("def build(split, train): return (split, train)", {"split", "train"}),
        ("def build(**kw): return kw", {"root", "split", "train", "size"}),
        ("def build(size, *, train=False): return size", {"size", "train"}),
        ("def build(): return 0", set()),
    ],
)
def test_signature_filtering(tmp_path: Path, source: str, want: set[str]) -> None:
    name = f"sigpkg_{abs(hash(source))}"
    (tmp_path / f"{name}.py").write_text(
        "import torch.utils.data as d\nSEEN = []\n"
        "class DS(d.Dataset):\n    def __len__(self): return 1\n    def __getitem__(self, i): return i\n"
        f"def _wrap(f):\n    import functools, inspect\n"
        f"    @functools.wraps(f)\n    def g(*a, **kw):\n        SEEN.append(set(kw)); f(*a, **kw); return DS()\n"
        f"    return g\n"
        f"@_wrap\n{source}\n"
    )
    kwargs = {"size": 112} if "size" in source or "**kw" in source else {}
    load_pipeline(
        {
            "factory": f"{name}:build",
            "factory_kwargs": kwargs,
            "factory_path": [str(tmp_path)],
            "root": "/r",
            "split": "validation",
        },
        train=True,
    )
    assert sys.modules[name].SEEN == [want]


def test_user_kwargs_win_over_suite_values(tmp_path: Path) -> None:
    (tmp_path / "winpkg_user.py").write_text(
        "import torch.utils.data as d\nclass DS(d.Dataset):\n"
        "    def __init__(self, split): self.split = split\n"
        "    def __len__(self): return 1\n    def __getitem__(self, i): return i\n"
        "def build(split): return DS(split)\n"
    )
    pipe = load_pipeline(
        {
            "factory": "winpkg_user:build",
            "factory_kwargs": {"split": "validation"},
            "factory_path": [str(tmp_path)],
            "split": "train",
        },
        train=True,
    )
    assert pipe.dataset.split == "validation"


def test_a_class_is_a_factory(synth_root: Path) -> None:
    pipe = load_pipeline(
        {
            "factory": "ssv2_fixtures.data.clips:SSv2Clips",
            "factory_kwargs": {"num_frames": 2},
            "root": str(synth_root),
            "split": "train",
        },
        train=False,
    )
    assert pipe.collate_fn is None and len(pipe.dataset) > 0 and pipe.dataset.num_frames == 2


# --------------------------------------------------------------------------- the user-like package


def test_userpipe_loads_through_factory_path_and_batches(synth_root: Path) -> None:
    pipe = load_pipeline(factory_spec("userpipe.data:build", synth_root, size=32, frames=3, limit=4), train=True)
    assert type(pipe.dataset).__module__ == "userpipe.data"
    assert sys.modules["userpipe.data"].__file__ == str(USERPIPE / "userpipe" / "data.py")
    check_collatable(pipe.dataset, pipe.collate_fn)
    loader = DataLoader(
        pipe.dataset, batch_size=2, num_workers=1, collate_fn=pipe.collate_fn, worker_init_fn=pipe.worker_init_fn
    )
    batch = next(iter(loader))
    assert batch["init_ran"] == [True, True]  # the user's worker_init_fn ran in the worker
    facts = describe(batch, videos=2)
    assert facts["clips"] == 4 and facts["shape"] == [4, 3, 3, 32, 32] and facts["dtype"] == "torch.float32"
    assert facts["bytes"] == 4 * 3 * 3 * 32 * 32 * 4 + 4 * 8  # clips + int64 labels; the ids are strings


def test_userpipe_default_collate_nested_batch(synth_root: Path) -> None:
    pipe = load_pipeline(factory_spec("userpipe.data:build_plain", synth_root, size=32, frames=2, limit=2), train=False)
    assert pipe.collate_fn is None
    check_collatable(pipe.dataset)
    batch = next(iter(DataLoader(pipe.dataset, batch_size=2)))
    facts = describe(batch, videos=2)
    assert facts["clips"] == 2 and facts["shape"] == [2, 3, 2, 32, 32]
    assert facts["bytes"] == 2 * (2 * 3 * 2 * 32 * 32 * 4) + 2 * 8 + 2  # two views, labels, bool flags
