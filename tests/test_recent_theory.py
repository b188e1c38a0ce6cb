"""The library functions behind the claims LP1, TK1-TK4 and CS1, and the ties between them and the
SymPy formulas ``proofs_check.recent_theory`` proves.

Tolerances: every comparison here is between float64 evaluations of the same few sums, products and
exponentials done in a different order, or against exact rational arithmetic: agreement to ~1e-15
relative; ``RTOL = 1e-12`` leaves a factor 1000, while the errors the tests guard against (a wrong
set, a dropped factor, n - 1 -> n) are > 1e-3 relative on these points.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from proofs_check import recent_theory as rt
from softmax_stability import dilution as D
from softmax_stability.maps import softmax, topk_softmax

RTOL = 1e-12


@pytest.fixture
def rng():
    return np.random.default_rng(20250611)


# ----------------------------------------------------------------------------- topk_tail_mass

def test_tail_mass_is_mass_outside_topk(rng):
    p = rng.dirichlet(np.ones(9), size=50)
    for k in (1, 4, 8, 9):
        want = p.sum(-1) - np.asarray(D.topk_mass(p, k))
        np.testing.assert_allclose(D.topk_tail_mass(p, k), want, rtol=RTOL, atol=1e-15)


def test_tail_mass_tiny_tail_keeps_relative_precision():
    # 1 - p(S) would lose everything here; the direct sum does not
    p = np.array([1.0 - 3e-20, 1e-20, 2e-20])
    np.testing.assert_allclose(D.topk_tail_mass(p, 1), 3e-20, rtol=1e-15)
    np.testing.assert_allclose(D.topk_tail_mass(p, 2), 1e-20, rtol=1e-15)


def test_tail_mass_ties_mask_axis_and_errors():
    assert float(D.topk_tail_mass(np.array([0.25, 0.25, 0.25, 0.25]), 2)) == 0.5
    p = np.array([[0.4, 0.3, 0.2, 0.1]])
    np.testing.assert_allclose(D.topk_tail_mass(p, 1, where=np.array([False, True, True, True])), 0.3)
    np.testing.assert_allclose(D.topk_tail_mass(p.T, 2, axis=0), [0.3])
    with pytest.raises(ValueError, match="k"):
        D.topk_tail_mass(p, 5)
    with pytest.raises(ValueError, match="k"):
        D.topk_tail_mass(p, 0)


def test_tv_identity_exact_rationals(rng):
    """TV(p, p_hat) = tail, in exact rational arithmetic (no rounding at all) for random p and k."""
    for _ in range(20):
        n = int(rng.integers(2, 8))
        w = [Fraction(int(x)) for x in rng.integers(1, 50, n)]
        p = [x / sum(w) for x in w]
        k = int(rng.integers(1, n))
        order = sorted(range(n), key=lambda i: -p[i])
        head = set(order[:k])
        m = sum(p[i] for i in head)
        phat = [p[i] / m if i in head else Fraction(0) for i in range(n)]
        tv = sum(abs(a - b) for a, b in zip(p, phat)) / 2
        assert tv == 1 - m == sum(p[i] for i in range(n) if i not in head)


# ----------------------------------------------------------------------------- truncation error

def test_truncation_error_equals_direct_output_change(rng):
    z = rng.normal(size=(40, 7)) * 3
    v = rng.normal(size=(40, 7, 3))
    for k in (1, 3, 6, 7):
        direct = np.einsum("bn,bnd->bd", np.asarray(softmax(z) - topk_softmax(z, k)), v)
        got = np.asarray(D.topk_truncation_error(softmax(z), v, k))
        np.testing.assert_allclose(got, direct, rtol=1e-9, atol=1e-14)


def test_truncation_bounds_hold_and_are_attained(rng):
    z = rng.normal(size=(40, 7)) * 2
    v = rng.normal(size=(40, 7, 3)) * np.exp(rng.normal(size=(40, 1, 1)))
    p = softmax(z)
    err = np.linalg.norm(np.asarray(D.topk_truncation_error(p, v, 3)), axis=-1)
    cross = np.asarray(D.topk_truncation_error_bound(p, v, 3))
    norm = np.asarray(D.topk_truncation_error_bound(p, v, 3, form="norm"))
    assert np.all(err <= cross * (1 + 1e-12)) and np.all(cross <= norm * (1 + 1e-12))
    full_diam = np.max(np.linalg.norm(v[:, :, None] - v[:, None], axis=-1), axis=(1, 2))
    assert np.all(cross <= np.asarray(D.topk_tail_mass(p, 3)) * full_diam * (1 + 1e-12))
    # two-valued (antipodal) values: both equalities
    head = np.asarray(jnp.argsort(-z, axis=-1))[:, :3]
    w = rng.normal(size=(40, 3))
    two = np.repeat(-w[:, None], 7, axis=1)
    np.put_along_axis(two, head[..., None], w[:, None], axis=1)
    err2 = np.linalg.norm(np.asarray(D.topk_truncation_error(p, two, 3)), axis=-1)
    np.testing.assert_allclose(err2, D.topk_truncation_error_bound(p, two, 3), rtol=1e-12)
    np.testing.assert_allclose(err2, D.topk_truncation_error_bound(p, two, 3, form="norm"), rtol=1e-12)


def test_truncation_argument_errors():
    p, v = np.array([0.5, 0.3, 0.2]), np.ones((3, 2))
    with pytest.raises(ValueError, match="form"):
        D.topk_truncation_error_bound(p, v, 2, form="diameter")
    with pytest.raises(ValueError, match="v must have shape"):
        D.topk_truncation_error(p, np.ones((4, 2)), 2)
    with pytest.raises(ValueError, match="k"):
        D.topk_truncation_error(p, v, 4)
    np.testing.assert_allclose(D.topk_truncation_error(p, v, 3), [0.0, 0.0])  # nothing discarded


# ----------------------------------------------------------------------------- equiangular tokens

def _tokens(n, rho):
    from softmax_stability.claims.critical_scaling import _tokens as tokens

    return tokens(n, rho)


@pytest.mark.parametrize("n", [2, 5, 64])
def test_equiangular_tokens_and_every_pair_contracts_by_s(rng, n):
    for rho in (-0.9 / (n - 1), 0.0, 0.3, 0.9):
        x = _tokens(n, rho)
        np.testing.assert_allclose(x @ x.T, (1 - rho) * np.eye(n) + rho, atol=1e-14)
        for gamma in (0.5, 1.0 / (1.0 - rho), 2.5):
            beta = gamma * math.log(n)
            y = np.asarray(softmax(x @ x.T, beta=beta)) @ x
            i, j = np.triu_indices(n, 1)
            ratio = np.linalg.norm(y[i] - y[j], axis=-1) / np.linalg.norm(x[i] - x[j], axis=-1)
            s = float(D.equiangular_contraction(n, rho, beta))
            np.testing.assert_allclose(ratio, s, rtol=1e-11)  # min and max over all pairs alike
            np.testing.assert_allclose(s, float(D.needle_probability(n, 1 - rho, beta))
                                       * (1 - math.exp(-beta * (1 - rho))), rtol=1e-13)


def test_equiangular_contraction_limits_and_checks():
    big = 2.0**40
    for gap in (0.5, 1.0):  # gamma below, at and above gamma_c = 1/gap
        below, at, above = (float(D.equiangular_contraction(big, 1 - gap, g / gap * math.log(big)))
                            for g in (0.5, 1.0, 2.0))
        assert below < 1e-5 and abs(at - 0.5) < 1e-11 and 1 - above < 1e-11
    assert float(D.equiangular_contraction(10, 1.0, 3.0)) == 0.0  # identical tokens
    with pytest.raises(ValueError, match="rho"):
        D.equiangular_contraction(3, -0.6, 1.0)
    with pytest.raises(ValueError, match="rho"):
        D.equiangular_contraction(3, 1.5, 1.0)
    with pytest.raises(ValueError, match="n"):
        D.equiangular_contraction(1, 0.0, 1.0)


# ----------------------------------------------------------------------------- LP1's measurement

def test_lp_directions_match_a_brute_force_search(rng):
    """The host-side power method finds the l_q operator norm of softmax Jacobians (n = 3, 4) as well as
    a 2-start Nelder-Mead search, and ||J||_{q->q} = ||J||_{q*->q*} (J symmetric) holds for its values."""
    from scipy.optimize import minimize

    from softmax_stability.claims.lp_norms import _lp_directions, _np_jacobians, _qnorm

    z = rng.normal(size=(6, 4)) * 2
    J = _np_jacobians(z, np.ones(6))
    for q in (1.5, 3.0):
        x = _lp_directions(J, np.full(6, q))
        est = _qnorm(np.einsum("mij,mj->mi", J, x), q) / _qnorm(x, q)
        for m in range(6):
            f = lambda y: -np.linalg.norm(J[m] @ y, q) / np.linalg.norm(y, q)  # noqa: E731
            best = max(-minimize(f, rng.normal(size=4), method="Nelder-Mead",
                                 options=dict(maxiter=3000, xatol=1e-12, fatol=1e-15)).fun for _ in range(2))
            assert est[m] >= best * (1 - 1e-9), (q, m, est[m], best)
    x15, x3 = (_lp_directions(J, np.full(6, q)) for q in (1.5, 3.0))
    n15 = _qnorm(np.einsum("mij,mj->mi", J, x15), 1.5) / _qnorm(x15, 1.5)
    n3 = _qnorm(np.einsum("mij,mj->mi", J, x3), 3.0) / _qnorm(x3, 3.0)
    np.testing.assert_allclose(n15, n3, rtol=1e-10)


def test_lp_half_is_approached_not_attained_at_n3_for_intermediate_q():
    """n >= 3, finite logits, 1 < q < inf: strictly below 1/2 even where some p_i = 1/2 (the q = 1, inf
    maximisers); the n = 2 tie attains it for every q (the notes' caveat about Nair's abstract)."""
    from softmax_stability.claims.lp_norms import _lp_directions, _qnorm

    p = np.array([0.5, 0.25, 0.25])
    J = (np.diag(p) - np.outer(p, p))[None]
    for q in (1.5, 3.0):
        x = _lp_directions(J, np.array([q]))
        val = float(_qnorm(J[0] @ x[0], q) / _qnorm(x[0], q))
        assert 0.38 < val < 0.39
    J2 = np.array([[[0.25, -0.25], [-0.25, 0.25]]])
    for q in (1.5, 3.0):
        x = _lp_directions(J2, np.array([q]))
        assert abs(float(_qnorm(J2[0] @ x[0], q) / _qnorm(x[0], q)) - 0.5) < 1e-15


# ----------------------------------------------------------------------------- the proven formulas are the library's

def test_tie_tail_and_output_error(rng):
    for n, k in ((5, 2), (6, 1), (4, 3)):
        p = np.sort(rng.dirichlet(np.ones(n)))[::-1]  # kept set first, as the builders assume
        v = rng.normal(size=(n, 2))
        ps = [sp.Float(x, 30) for x in p]
        vs = [sp.Matrix([sp.Float(a, 30) for a in row]) for row in v]
        np.testing.assert_allclose(float(D.topk_tail_mass(p, k)), float(rt.topk_tail_closed_form(ps, k)), rtol=RTOL)
        got = np.asarray(D.topk_truncation_error(p, v, k))
        want = np.array(rt.topk_output_error_closed_form(ps, vs, k), dtype=float).ravel()
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-15)


def test_tie_equiangular_contraction(rng):
    n_, r_, b_ = sp.symbols("n rho beta")
    f = sp.lambdify((n_, r_, b_), rt.equiangular_contraction_closed_form(n_, r_, b_), modules="numpy")
    n = rng.integers(2, 5000, 200).astype(float)
    rho = rng.uniform(-1.0 / (n - 1), 0.99)
    beta = rng.uniform(0.01, 20.0, 200)
    np.testing.assert_allclose(D.equiangular_contraction(n, rho, beta), f(n, rho, beta), rtol=1e-11)


def test_tie_bound_builders():
    t, d, m = 0.3, 1.7, 2.2
    assert rt.cross_bound_closed_form(t, d) == pytest.approx(t * d, rel=RTOL)
    assert rt.norm_bound_closed_form(t, m) == pytest.approx(2 * t * m, rel=RTOL)
    beta, q = sp.symbols("beta q", positive=True)
    assert sp.simplify(rt.lp_bound_closed_form(beta, q) - beta / 2) == 0


def test_topk_tail_mass_follows_the_module_rules_for_bad_input():
    # NaN/inf in a visible entry gives NaN (as topk_mass), a non-probability row raises naming p
    import numpy as np
    import pytest

    from softmax_stability.dilution import topk_mass, topk_tail_mass

    p = np.array([0.2, 0.3, 0.5])
    assert float(topk_tail_mass(p, 1)) == pytest.approx(1 - float(topk_mass(p, 1)), abs=1e-15)
    for bad in (np.nan, np.inf):
        assert np.isnan(float(topk_tail_mass(np.array([0.2, bad, 0.3]), 2)))
    with pytest.raises(ValueError, match=r"^p must hold probability vectors"):
        topk_tail_mass(np.array([1.0, 1.0, 1.0]), 1)
    assert float(topk_tail_mass(np.array([1.0, 1.0, 1.0]), 1, check_probability=False)) == 2.0
