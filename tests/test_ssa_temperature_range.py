"""The float64 range of the SSA temperature that claim A3 states, against mpmath (the claim's
mutants run in tests/test_verify_all.py)."""

from __future__ import annotations

import mpmath
import numpy as np

from softmax_stability.temperature import ssa_temperature


def test_ssa_temperature_float64_range_against_mpmath():
    """tau = sigma(alpha) ln n + 1 + tanh f, evaluated as sigma(alpha) ln n + 2 sigmoid(2f).

    Reference: 1 + tanh f in mpmath at 400 digits (1 + tanh(-354) ~ 1e-308 needs ~330 of them).
    Tolerance: 2 sigmoid(2f) = 2 / (1 + exp(-2f)) costs exp (~1 ulp) and three correctly rounded
    operations, and tau adds one positive term: <= ~5 ulp = 1.1e-15 relative; 2e-15 is allowed.
    Range: tau > 0 at n = 1 for f >= -354.19; below f = -354.2, sigmoid(2f) < 2^-1022 is flushed to
    0 by XLA and tau = 0 (the edge stated by claim A3 and ssa_temperature's docstring). The plain
    1 + tanh f is 0 already at f = -19.1 (np.tanh here).
    """
    mpmath.mp.dps = 400
    f = np.concatenate([np.linspace(-354.19, -20.0, 120), np.linspace(-20.0, 30.0, 81)])
    for n, alpha in ((1.0, 0.0), (2.0, -9.0), (1000.0, 3.0)):
        tau = np.asarray(ssa_temperature(np.full_like(f, n), alpha, f, parametrisation="sigmoid"))
        ref = np.array([float(1 / (1 + mpmath.exp(-mpmath.mpf(alpha))) * mpmath.log(n)
                              + 1 + mpmath.tanh(mpmath.mpf(x))) for x in f])
        assert np.all(tau > 0)
        np.testing.assert_allclose(tau, ref, rtol=2e-15, atol=0)
    below = np.asarray(ssa_temperature(np.ones(3), 0.0, np.array([-354.2, -400.0, -1e4])))
    assert np.all(below == 0.0)
    assert 1.0 + np.tanh(-19.1) == 0.0  # what the old evaluation gave
