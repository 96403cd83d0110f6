"""Each package's __all__ is what it says: every name exists and nothing private leaks."""

from __future__ import annotations

import importlib
import importlib.util

import pytest

PACKAGES = ["infragym", "infragym.history", "infragym.sandbox", "infragym.nemesis",
            "infragym.workload", "infragym.checkers", "infragym.rubric", "infragym.tasks",
            "infragym.grading", "infragym.env", "infragym.agent", "infragym.runner",
            "infragym.testing", "infragym.gym", "infragym.report"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_complete_and_public(name: str) -> None:
    mod = importlib.import_module(name)
    exported = mod.__all__
    assert sorted(exported) == sorted(set(exported)), "duplicates in __all__"
    for n in exported:
        assert hasattr(mod, n), f"{name}.__all__ names missing {n}"
        assert not n.startswith("_") or n == "__version__"
    public = {n for n in vars(mod) if not n.startswith("_")
              and not isinstance(getattr(mod, n), type(importlib))}
    assert public <= set(exported) | {"annotations"}, public - set(exported)


def test_error_tree() -> None:
    import infragym as ig

    for cls in (ig.PrivilegeError, ig.CapabilityError, ig.ConfigError, ig.ResourceError,
                ig.HistoryError):
        assert issubclass(cls, ig.InfraGymError)
    assert issubclass(ig.ProcessError, ig.ResourceError)


def test_every_exception_infragym_defines_is_an_infragym_error_drawn_in_the_tree() -> None:
    """Every exception class of every infragym module (private ones too) derives from the
    one root, so ``except InfraGymError`` catches whatever the platform raises, and the
    tree in ``infragym._errors``' docstring names each of them."""
    import pkgutil

    import infragym
    from infragym import InfraGymError, _errors

    programs = {"infragym.demo.kv_server"}  # a program run on hosts, not a library module
    extras = {"infragym.serve": "openenv"}  # packages of an optional extra, and what they need
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(infragym.__path__, "infragym."):
        if info.name in programs or any(
            info.name.split(".")[:2] == pkg.split(".") and importlib.util.find_spec(dep) is None
            for pkg, dep in extras.items()
        ):
            continue
        mod = importlib.import_module(info.name)
        for obj in vars(mod).values():
            if (isinstance(obj, type) and issubclass(obj, BaseException)
                    and obj.__module__ == info.name):
                found[f"{info.name}.{obj.__qualname__}"] = obj
    assert len(found) >= 10, sorted(found)  # the walk did find the modules
    strays = sorted(n for n, c in found.items() if not issubclass(c, InfraGymError))
    assert not strays, f"exceptions not under InfraGymError: {strays}"
    tree = _errors.__doc__ or ""
    undrawn = sorted(n for n, c in found.items() if f" {c.__name__} " not in tree)
    assert not undrawn, f"exceptions missing from the tree in infragym/_errors.py: {undrawn}"
