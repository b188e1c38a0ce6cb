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


#: modules that need an optional extra: skipped when it is not installed
OPTIONAL = {"softmax_stability.frameworks.flax": "flax", "softmax_stability.frameworks.equinox": "equinox",
            "softmax_stability.frameworks.probe": "flax"}  # probe's examples use Flax

#: modules whose examples are part of their documented contract: at least this many must run
MIN_EXAMPLES = {"softmax_stability.jacobian": 12}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name])  # an optional extra (flax, equinox) that is absent
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert res.failed == 0, f"{res.failed} of {res.attempted} doctest examples failed in {name}"
    assert res.attempted >= MIN_EXAMPLES.get(name, 0), f"only {res.attempted} doctest examples in {name}"
