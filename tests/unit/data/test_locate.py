"""data/locate: MODULE:CALLABLE is parsed by one rule, imported one dotted step at a time, and every way
finding it can fail is one named FactoryError that says what is missing, where it looked, and the fix.

The factories live in tests/userpipe/userpipe (a user-like project outside the package), loaded
through ``factory_path`` as ``--dataset-path`` does; errors are provoked through ``load_pipeline``, the
way the child meets them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from unit_helpers import USERPIPE, factory_error

from ssv2_fixtures.data.factory import load_pipeline
from ssv2_fixtures.data.locate import FactoryError, parse_factory

# --------------------------------------------------------------------------- option values


# KEY=VALUE has one rule, options.dataset_arg (its tests: tests/unit/test_options.py); MODULE:CALLABLE has
# one, parse_factory, which options.factory_name (the option and the TOML key) calls.


@pytest.mark.parametrize("text", ["mypkg.data", "mypkg.data:", ":build", "my-pkg:build", "a:b:c"])
def test_parse_factory_refuses(text: str) -> None:
    with pytest.raises(FactoryError) as info:
        parse_factory(text)
    assert info.value.what == "bad_factory" and "MODULE:CALLABLE" in str(info.value)


def test_parse_factory_dotted_callable() -> None:
    assert parse_factory("pkg.mod:Cls.create") == ("pkg.mod", "Cls.create")


@pytest.mark.parametrize("text", ["mypkg.data", "a:b:c", "pkg.mod:Cls.create"])
def test_the_option_uses_the_same_rule(text: str) -> None:
    from ssv2_fixtures.options import factory_name

    try:
        want: str | None = ":".join(parse_factory(text))
    except FactoryError:
        want = None
    if want is None:
        with pytest.raises(ValueError, match="expected MODULE:CALLABLE"):
            factory_name(text, "--dataset-factory")
    else:
        assert factory_name(text, "--dataset-factory") == want


# --------------------------------------------------------------------------- named errors


def test_module_not_found_names_the_top_level_package_and_the_folders(tmp_path: Path) -> None:
    missing_dir = tmp_path / "src"
    with pytest.raises(FactoryError) as info:
        load_pipeline(
            {
                "factory": "no_such_userpkg.data:build",
                "factory_path": [str(missing_dir)],
                "root": "/r",
                "split": "train",
            },
            train=True,
        )
    err = info.value
    assert err.what == "module_not_found"
    text = str(err)
    assert "no top-level module or package 'no_such_userpkg'" in text  # the package, not 'no_such_userpkg.data'
    assert str(missing_dir) in text and "does not exist" in text  # the --dataset-path that is not there
    assert err.sys_path and err.sys_path[0] == str(missing_dir)  # factory_path goes first
    assert "--dataset-path" in err.fix


def _package(root: Path, name: str, files: dict[str, str]) -> Path:
    """A real package ``root/name`` (``__init__.py`` plus ``files``), as a user's project holds one."""
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(files.pop("__init__.py", ""))
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    return pkg


def _load_error(factory: str, *path: Path) -> FactoryError:
    with pytest.raises(FactoryError) as info:
        load_pipeline({"factory": factory, "factory_path": [str(p) for p in path], "root": "/r"}, train=True)
    return info.value


def test_a_misspelt_submodule_names_the_package_and_where_it_looked(tmp_path: Path) -> None:
    # the case: mypkg imports fine from the first --dataset-path entry, its submodule is misspelt
    pkg = _package(tmp_path / "proj", "misspelt_userpkg", {"data.py": "def build(root):\n    return [1]\n"})
    err = _load_error("misspelt_userpkg.dta:build", tmp_path / "proj")
    assert err.what == "submodule_not_found"
    assert f"misspelt_userpkg has no submodule 'dta' (looked in {pkg})" in str(err)
    assert "did you mean 'misspelt_userpkg.data'?" in err.fix and "--dataset-path" not in str(err)


def test_a_submodule_of_a_plain_module_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "plain_userpkg.py").write_text("def build(root):\n    return [1]\n")
    err = _load_error("plain_userpkg.data:build", tmp_path)
    assert err.what == "submodule_not_found"
    assert "plain_userpkg is a module, not a package: it has no submodule 'data'" in str(err)
    assert err.file == str(tmp_path / "plain_userpkg.py") and "plain_userpkg:NAME" in err.fix


def test_a_same_named_package_imported_from_elsewhere_is_pointed_out(tmp_path: Path) -> None:
    # a package of the same name already imported (from another folder) is the one Python searches
    first = _package(tmp_path / "site", "shadowed_userpkg", {})
    _package(tmp_path / "proj", "shadowed_userpkg", {"data.py": "def build(root):\n    return [1]\n"})
    sys.path.insert(0, str(tmp_path / "site"))
    try:
        __import__("shadowed_userpkg")
        err = _load_error("shadowed_userpkg.data:build", tmp_path / "proj")
    finally:
        sys.path.remove(str(tmp_path / "site"))
        sys.modules.pop("shadowed_userpkg", None)
    assert err.what == "submodule_not_found"
    assert f"shadowed_userpkg has no submodule 'data' (looked in {first})" in str(err)
    assert f"imported from {first}, not from the --dataset-path folders" in err.fix


def test_an_import_error_inside_the_users_module_is_shown_with_its_line(tmp_path: Path) -> None:
    _package(
        tmp_path,
        "inner_userpkg",
        {"data.py": "import os\nfrom os import no_such_name_xyz\n\ndef build(root):\n    return [1]\n"},
    )
    err = _load_error("inner_userpkg.data:build", tmp_path)
    assert err.what == "module_import_failed"
    text = str(err)
    assert "importing module 'inner_userpkg.data' raised ImportError: cannot import name 'no_such_name_xyz'" in text
    assert "at line 2: from os import no_such_name_xyz" in text  # the traceback's line, as the user wrote it
    assert err.file == str(tmp_path / "inner_userpkg" / "data.py") and err.line == 2
    assert "--dataset-path" not in text  # the module was found: the path is not to blame


def test_a_package_importing_its_own_missing_module_is_not_a_missing_install(tmp_path: Path) -> None:
    _package(
        tmp_path,
        "selfref_userpkg",
        {"__init__.py": "import selfref_userpkg.gone\n", "data.py": "def build(root): pass\n"},
    )
    err = _load_error("selfref_userpkg.data:build", tmp_path)
    assert err.what == "module_import_failed"
    assert "importing module 'selfref_userpkg' failed: it imports 'selfref_userpkg.gone', which does not exist" in (
        str(err)
    )
    assert err.line == 1 and "pip install" not in err.fix


def test_submodule_not_found_in_the_user_project() -> None:
    err = factory_error("userpipe.nothing_here:build")
    assert err.what == "submodule_not_found"
    assert f"userpipe has no submodule 'nothing_here' (looked in {USERPIPE / 'userpipe'})" in str(err)


def test_module_with_syntax_error_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "broken_userpkg_syntax.py").write_text("def build(root):\n    return [\n\nx = )\n")
    with pytest.raises(FactoryError) as info:
        load_pipeline({"factory": "broken_userpkg_syntax:build", "factory_path": [str(tmp_path)]}, train=True)
    err = info.value
    assert err.what == "module_import_failed"
    assert err.file and err.file.endswith("broken_userpkg_syntax.py") and err.line


def test_module_importing_a_missing_dependency(tmp_path: Path) -> None:
    (tmp_path / "needs_dep_userpkg.py").write_text("import not_installed_dep_xyz\n\ndef build(root):\n    pass\n")
    with pytest.raises(FactoryError) as info:
        load_pipeline({"factory": "needs_dep_userpkg:build", "factory_path": [str(tmp_path)]}, train=True)
    err = info.value
    assert err.what == "module_import_failed"  # the module exists: its dependency is what is missing
    assert "not_installed_dep_xyz" in str(err) and "install" in err.fix
    assert err.file and err.file.endswith("needs_dep_userpkg.py") and err.line == 1


def test_attribute_missing_suggests_close_names() -> None:
    err = factory_error("userpipe.data:buidl")
    assert err.what == "attribute_missing"
    assert "has no attribute 'buidl'" in str(err) and "'build'" in err.fix
    assert err.file and err.file.endswith("data.py")


def test_not_callable() -> None:
    err = factory_error("userpipe.bad:not_callable")
    assert err.what == "not_callable" and "is a int" in str(err)
