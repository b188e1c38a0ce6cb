"""Test configuration: float64 on, CPU only, slow tests opt-in."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests compile hundreds of small programs and run each a few times, so compilation is most of their
# cost. LLVM level 1 with XLA:CPU's former (non-MLIR) fusion emitters compiles them fastest of the
# settings that compute consistently (three heavy test files on 2 cores: 184 CPU-s at level 1, 132
# with the former emitters too), with IEEE semantics (no fast-math): every tolerance still applies.
# Not LLVM level 0, used before: in jaxlib 0.10.2 it makes a value recomputed in two fusions differ
# in its last bit (x == max(x) fails; docs/known_issues.md, tests/test_compiler_consistency.py).
_SUITE_XLA_FLAGS = "--xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _SUITE_XLA_FLAGS).strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow experiment test: pass --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
