"""Each package's __all__ is what it says: every name exists and nothing private leaks."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["infragym", "infragym.history", "infragym.sandbox", "infragym.nemesis",
            "infragym.workload", "infragym.checkers", "infragym.rubric", "infragym.tasks",
            "infragym.grading", "infragym.env", "infragym.agent", "infragym.runner",
            "infragym.testing", "infragym.gym"]


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
