"""Every docstring example of the library runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import softmax_stability

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(softmax_stability.__path__, "softmax_stability.")
    if not m.name.rsplit(".", 1)[-1].startswith("_") and m.name not in ("softmax_stability.cli",)
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert res.failed == 0, f"{res.failed} of {res.attempted} doctest examples failed in {name}"
