"""The attention-Lipschitz claims' own structure: their structural mutants rebuild the library's
bounds from its terms, and L2's constant 1 is attained and needs its hypothesis (the claims and all
their mutants are verified in tests/test_verify_all.py)."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import softmax_stability.claims  # noqa: F401  (registers every family)
from softmax_stability.claims import get
from softmax_stability.claims import lipschitz as CL


def test_mutant_terms_rebuild_the_library_bounds():
    for batch in CL._upper_sample(jax.random.PRNGKey(3), [(2, 2), (16, 2)]):
        for i in range(batch["x"].shape[0]):
            prm = {k: v[i] for k, v in batch.items()}
            v, r, rq, rk, n = CL._terms(prm)
            castin = v * math.sqrt(max(rq, rk) ** 2 * r**2 * (n + 1) + n)
            derived = v * ((1 + r * rq) * math.sqrt(n) + r * rk)
            assert float(CL._castin(prm)) == pytest.approx(float(castin), rel=1e-12)
            assert float(CL._derived(prm)) == pytest.approx(float(derived), rel=1e-12)


def test_sqrt_n_bound_is_attained_and_needs_its_hypothesis():
    """L2's constant 1: the regime instances (g = 20, 40) sit within 1e-4 of the bound at every n,
    and at n = 4 the gap window [ln 3, 2) holds an aligned (-1, 1) instance below sqrt(3)||V^T u||
    (why the hypothesis has max(2, .))."""
    c = get("L2-attention-lipschitz-sqrt-n")
    for b in c.tight_regimes[0].instances(jax.random.PRNGKey(0), None):
        for i in range(b["x"].shape[0]):
            prm = {k: v[i] for k, v in b.items()}
            ratio = float(c.bound(prm) / c.measure(prm))
            assert 1 - 1e-4 < ratio <= 1 + 1e-9  # g = 20: corrections ~ (n - 1) g e^{-g} ~ 3e-6
    w = CL._pattern_weights(np.random.default_rng(0), 1, -1.0)
    prm = {k: v[0] for k, v in CL._castin_batch(w, 4, [1.2]).items()}
    loose = CL._sqrt_n_bound(prm, threshold=lambda n: math.log(n - 1))
    assert float(c.bound(prm)) == 0.0 and float(loose / c.measure(prm)) > 1.1
