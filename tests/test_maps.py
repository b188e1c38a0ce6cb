"""Tests for softmax_stability.maps.

Reference values come from an independent oracle written here in mpmath (30 digits):
- softmax: exp / sum in mpmath;
- alpha-entmax (alpha in (1, 2], incl. 1.5 and sparsemax at alpha = 2): plain bisection on the
  threshold tau of p = [(alpha-1) z - tau]_+^{1/(alpha-1)} (110 halvings of a bracket of width 1:
  2^-110 < 1e-33, so tau is exact to the working precision);
- sparsemax: bisection only to find the support S, then the exact tau = (sum_S z - 1)/|S|.
The library instead sorts (sparsemax, entmax15) or bisects in a log1p reparametrisation
(entmax), so agreement is a cross-check of different algorithms.

Derivatives are checked against (a) the closed form J = diag(s) - s s^T / sum(s) built from the
*oracle's* p, and (b) central finite differences of the oracle in mpmath with h = 1e-12: the
truncation error is O(h^2) ~ 1e-24 and the rounding error ~ 10^-30 / h = 1e-18, so the
difference quotient is exact far below the 1e-10 tolerance (valid away from support changes,
which random continuous inputs avoid with probability one).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from softmax_stability import maps

mp.mp.dps = 30

N = 7  # row length used throughout (few distinct shapes -> few compilations)
R = 5  # rows per batch
ALPHAS = (1.25, 1.75)  # generic bisection alphas (each one is one compilation)
ALPHA_NEAR_ONE = 1.0 + 1e-6

# float64 output tolerance: every map is computed to a few ulps (bisection bracket <= ln(7)*2^-60);
# 1e-12 leaves >1000x margin. JVP tolerance 1e-10 as in the brief (s = p^(2-alpha) amplifies the
# error of tiny p_i).
OUT_ATOL = 1e-12
JVP_ATOL = 1e-10


# ----------------------------------------------------------------------------------------------
# mpmath oracle


def _mpf_row(z):
    return [mp.mpf(float(v)) if not isinstance(v, mp.mpf) else v for v in z]


def mp_softmax(z, beta=1.0):
    z = _mpf_row(z)
    b = mp.mpf(beta)
    fin = [v for v in z if v != mp.ninf]
    m = max(fin)
    e = [mp.exp(b * (v - m)) if v != mp.ninf else mp.mpf(0) for v in z]
    s = mp.fsum(e)
    return [v / s for v in e]


def _bisect_tau(x, gpinv, iters=110):
    """tau with sum(gpinv(x_i - tau)) = 1, gpinv increasing, on the bracket [max - 1, max]."""
    m = max(x)
    lo, hi = m - 1, m
    for _ in range(iters):
        mid = (lo + hi) / 2
        if mp.fsum(gpinv(v - mid) for v in x) - 1 >= 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def mp_entmax(z, alpha):
    """alpha-entmax, alpha in (1, 2], by bisection on tau (-inf entries get 0)."""
    z = _mpf_row(z)
    eps = mp.mpf(alpha) - 1
    finite = [i for i, v in enumerate(z) if v != mp.ninf]
    x = [eps * z[i] for i in finite]
    inv = 1 / eps

    def gpinv(u):
        return u**inv if u > 0 else mp.mpf(0)

    tau = _bisect_tau(x, gpinv)
    p = [mp.mpf(0)] * len(z)
    for i, xi in zip(finite, x):
        p[i] = gpinv(xi - tau)
    return p


def mp_sparsemax(z):
    """Sparsemax: support found by bisection, then the exact threshold on it."""
    z = _mpf_row(z)
    finite = [v for v in z if v != mp.ninf]
    tau = _bisect_tau(finite, lambda u: u if u > 0 else mp.mpf(0))
    S = [v for v in finite if v > tau]
    tau = (mp.fsum(S) - 1) / len(S)
    return [max(v - tau, mp.mpf(0)) if v != mp.ninf else mp.mpf(0) for v in z]


def oracle(name, z, alpha=None, beta=1.0):
    if name == "softmax":
        return mp_softmax(z, beta)
    if name == "sparsemax":
        return mp_sparsemax(z)
    if name == "entmax15":
        return mp_entmax(z, 1.5)
    if name == "entmax":
        return mp_entmax(z, alpha)
    raise ValueError(name)


def weights(name, p, alpha=None, beta=1.0):
    """Support weights s of the closed-form Jacobian J = diag(s) - s s^T / sum(s)."""
    p = [mp.mpf(v) for v in p]
    if name == "softmax":
        return [mp.mpf(beta) * v for v in p]
    if name == "sparsemax":
        return [mp.mpf(1) if v > 0 else mp.mpf(0) for v in p]
    a = mp.mpf(1.5) if name == "entmax15" else mp.mpf(alpha)
    return [v ** (2 - a) if v > 0 else mp.mpf(0) for v in p]


def closed_form_jacobian(name, p, alpha=None, beta=1.0):
    s = weights(name, p, alpha, beta)
    if name == "softmax":  # beta (diag p - p p^T): sum(s) = beta, so s s^T / sum(s) = beta p p^T
        ssum = mp.mpf(beta)
    else:
        ssum = mp.fsum(s)
    n = len(p)
    return np.array([[float((s[i] if i == j else 0) - s[i] * s[j] / ssum) for j in range(n)] for i in range(n)])


def oracle_fd(name, z, v, alpha=None, beta=1.0, h=mp.mpf("1e-12")):
    zp = [mp.mpf(float(a)) + h * mp.mpf(float(b)) for a, b in zip(z, v)]
    zm = [mp.mpf(float(a)) - h * mp.mpf(float(b)) for a, b in zip(z, v)]
    pp, pm = oracle(name, zp, alpha, beta), oracle(name, zm, alpha, beta)
    return np.array([float((a - b) / (2 * h)) for a, b in zip(pp, pm)])


def to_np(p):
    return np.array([float(v) for v in p])


# ----------------------------------------------------------------------------------------------
# the maps under test, by name

CASES = [
    ("softmax", None),
    ("sparsemax", None),
    ("entmax15", None),
    *[("entmax", a) for a in ALPHAS],
]
CASE_IDS = [n if a is None else f"entmax{a}" for n, a in CASES]


def lib(name, alpha=None, beta=1.0):
    if name == "softmax":
        return lambda z: maps.softmax(z, beta=beta)
    if name == "sparsemax":
        return maps.sparsemax
    if name == "entmax15":
        return maps.entmax15
    if name == "entmax":
        return lambda z: maps.entmax(z, alpha)
    raise ValueError(name)


@pytest.fixture(scope="module")
def Z():
    rng = np.random.default_rng(20250601)
    z = rng.normal(scale=1.5, size=(R, N))
    z[1] *= 0.1  # nearly uniform row: dense supports
    z[2] *= 4.0  # spread row: small supports
    return z


@pytest.fixture(scope="module")
def V():
    return np.random.default_rng(7).normal(size=(R, N))


# ----------------------------------------------------------------------------------------------
# outputs and derivatives against the oracle


@pytest.mark.parametrize("name,alpha", CASES, ids=CASE_IDS)
def test_outputs_match_mpmath_oracle(name, alpha, Z):
    p = np.asarray(lib(name, alpha)(Z))
    assert p.dtype == np.float64
    ref = np.array([to_np(oracle(name, z, alpha)) for z in Z])
    np.testing.assert_allclose(p, ref, rtol=0, atol=OUT_ATOL)
    # sparse maps are really sparse on the spread row; softmax is not
    if name in ("sparsemax", "entmax15"):
        assert (p[2] == 0).any()


def test_softmax_beta_matches_oracle(Z):
    for beta in (0.3, 2.5):
        p = np.asarray(maps.softmax(Z, beta=beta))
        ref = np.array([to_np(mp_softmax(z, beta)) for z in Z])
        np.testing.assert_allclose(p, ref, rtol=0, atol=OUT_ATOL)


@pytest.mark.parametrize("name,alpha", CASES, ids=CASE_IDS)
def test_jvp_matches_closed_form_and_finite_differences(name, alpha, Z, V):
    p, jv = jax.jvp(lib(name, alpha), (jnp.asarray(Z),), (jnp.asarray(V),))
    np.testing.assert_allclose(np.asarray(p), np.asarray(lib(name, alpha)(Z)), atol=0, rtol=0)
    for z, v, got in zip(Z, V, np.asarray(jv)):
        p_ref = oracle(name, z, alpha)
        np.testing.assert_allclose(got, closed_form_jacobian(name, p_ref, alpha) @ v, rtol=0, atol=JVP_ATOL)
        np.testing.assert_allclose(got, oracle_fd(name, z, v, alpha), rtol=0, atol=JVP_ATOL)


def test_entmax_near_alpha_one_matches_oracle(Z, V):
    """alpha = 1 + 1e-6: exponent 1/(alpha-1) = 1e6, where a naive bisection loses ~6 digits."""
    f = lambda z: maps.entmax(z, ALPHA_NEAR_ONE)  # noqa: E731
    p, jv = jax.jvp(f, (jnp.asarray(Z),), (jnp.asarray(V),))
    for z, v, got_p, got_jv in zip(Z, V, np.asarray(p), np.asarray(jv)):
        p_ref = mp_entmax(z, ALPHA_NEAR_ONE)
        np.testing.assert_allclose(got_p, to_np(p_ref), rtol=0, atol=OUT_ATOL)
        np.testing.assert_allclose(
            got_jv, closed_form_jacobian("entmax", p_ref, ALPHA_NEAR_ONE) @ v, rtol=0, atol=JVP_ATOL
        )


@pytest.mark.parametrize("name,alpha", CASES, ids=CASE_IDS)
def test_jacfwd_and_grad_equal_closed_form(name, alpha, Z):
    f = lib(name, alpha)
    z = jnp.asarray(Z[0])
    J_ref = closed_form_jacobian(name, oracle(name, Z[0], alpha), alpha)
    np.testing.assert_allclose(np.asarray(jax.jacfwd(f)(z)), J_ref, rtol=0, atol=JVP_ATOL)
    w = np.arange(N, dtype=float) - 3.0
    g = jax.grad(lambda u: jnp.dot(jnp.asarray(w), f(u)))(z)
    np.testing.assert_allclose(np.asarray(g), J_ref.T @ w, rtol=0, atol=JVP_ATOL)


def test_softmax_jacfwd_is_beta_diag_minus_outer(Z):
    for beta in (0.5, 3.0):
        z = jnp.asarray(Z[3])
        J = np.asarray(jax.jacfwd(lambda u: maps.softmax(u, beta=beta))(z))
        p = to_np(mp_softmax(Z[3], beta))
        np.testing.assert_allclose(J, beta * (np.diag(p) - np.outer(p, p)), rtol=0, atol=1e-13)


def test_second_derivatives_finite_and_softmax_matches_jax_nn(Z, V):
    """Second directional derivatives through the custom JVP rules (jvp of jvp)."""
    z, v = jnp.asarray(Z[2]), jnp.asarray(V[2])  # the spread row: sparse support for entmax15

    def d2(f):
        return np.asarray(jax.jvp(lambda u: jax.jvp(f, (u,), (v,))[1], (z,), (v,))[1])

    # jax.nn.softmax is an independent implementation (its own custom_jvp)
    np.testing.assert_allclose(d2(maps.softmax), d2(jax.nn.softmax), rtol=0, atol=1e-13)
    assert np.all(np.isfinite(d2(maps.entmax15)))


def test_softmax_derivative_in_beta():
    """d/dbeta softmax(beta z) = diag(p) - p p^T applied to z (beta traced through the map)."""
    z = np.array([0.3, -1.2, 2.0, 0.7])
    g = jax.jacfwd(lambda b: maps.softmax(jnp.asarray(z), beta=b))(1.7)
    p = to_np(mp_softmax(z, 1.7))
    np.testing.assert_allclose(np.asarray(g), p * z - p * np.dot(p, z), rtol=0, atol=1e-13)


def test_topk_softmax_matches_oracle_and_restricted_jacobian(Z, V):
    k, beta = 2, 1.3
    f = lambda z: maps.topk_softmax(z, k, beta=beta)  # noqa: E731
    p, jv = jax.jvp(f, (jnp.asarray(Z),), (jnp.asarray(V),))
    for z, v, got_p, got_jv in zip(Z, V, np.asarray(p), np.asarray(jv)):
        sel = np.argsort(-z, kind="stable")[:k]
        ref = np.zeros(N)
        ref[sel] = to_np(mp_softmax(z[sel], beta))
        np.testing.assert_allclose(got_p, ref, rtol=0, atol=OUT_ATOL)
        # Jacobian: beta (diag p - p p^T) on the selected set, zero elsewhere
        J = beta * (np.diag(ref) - np.outer(ref, ref))
        np.testing.assert_allclose(got_jv, J @ v, rtol=0, atol=1e-13)
    J0 = np.asarray(jax.jacrev(f)(jnp.asarray(Z[0])))
    p0 = np.asarray(p[0])
    np.testing.assert_allclose(J0, beta * (np.diag(p0) - np.outer(p0, p0)), rtol=0, atol=1e-13)


# ----------------------------------------------------------------------------------------------
# relations between the maps


def test_entmax_special_alphas(Z):
    np.testing.assert_array_equal(np.asarray(maps.entmax(Z, 1.0)), np.asarray(maps.softmax(Z)))
    np.testing.assert_array_equal(np.asarray(maps.entmax(Z, 2)), np.asarray(maps.sparsemax(Z)))
    # the bisection itself (not the dispatch) at alpha = 2 and 1.5 against the sort-based maps
    np.testing.assert_allclose(
        np.asarray(maps._entmax_bisect_jit(jnp.asarray(Z), 2.0, -1)), np.asarray(maps.sparsemax(Z)), atol=1e-13
    )
    np.testing.assert_allclose(np.asarray(maps.entmax(Z, 1.5)), np.asarray(maps.entmax15(Z)), rtol=0, atol=1e-13)


def test_entmax_tends_to_softmax_as_alpha_to_one(Z):
    """log1p(e u)/e = u - e u^2/2 + ..., so |log p_entmax - log p_softmax| <~ e (max|u|)^2 with
    u in [min z - max z - ln n, 0]; for e = 1e-12 and this data that bound is < 1e-9."""
    eps = 1e-12
    u_max = np.ptp(Z, axis=-1).max() + math.log(N)
    bound = eps * u_max**2  # relative bound on each p_i, before renormalisation (doubles at most)
    assert bound < 1e-9
    got = np.asarray(maps.entmax(Z, 1.0 + eps))
    ref = np.asarray(maps.softmax(Z))
    np.testing.assert_allclose(got, ref, rtol=2 * bound, atol=1e-15)


def test_topk_with_k_equal_n_is_softmax_and_k_above_n_raises(Z):
    np.testing.assert_array_equal(
        np.asarray(maps.topk_softmax(Z, N, beta=0.7)), np.asarray(maps.softmax(Z, beta=0.7))
    )
    with pytest.raises(ValueError, match=rf"^k must be in \[1, {N}\], got {N + 3}"):  # the library's one k rule
        maps.topk_softmax(Z, N + 3)


def test_topk_softmax_equals_masked_softmax_on_topk_mask(Z):
    from softmax_stability.masks import topk_mask

    np.testing.assert_allclose(
        np.asarray(maps.topk_softmax(Z, 2)), np.asarray(maps.softmax(Z, where=topk_mask(Z, 2))), atol=0
    )


# ----------------------------------------------------------------------------------------------
# tie-breaking, masks and special values


def test_topk_ties_go_to_lower_index():
    z = np.array([[1.0, 1.0, 1.0, 0.0], [0.0, 2.0, 2.0, 2.0], [5.0, 5.0, -1.0, 5.0]])
    p = np.asarray(maps.topk_softmax(z, 2))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0], [0.5, 0.5, 0, 0]], atol=1e-15)
    # the documented tie order of lax.top_k (lower index first) selects the same sets
    idx = np.asarray(jax.lax.top_k(jnp.asarray(z), 2)[1])
    for row, sel in zip(p, idx):
        assert set(np.flatnonzero(row)) == set(sel.tolist())


def test_softmax_where_masks_and_broadcasts(Z):
    mask_row = np.array([True, False, True, True, False, True, False])
    p = np.asarray(maps.softmax(Z, where=mask_row))  # (N,) broadcast to (R, N)
    for z, row in zip(Z, p):
        ref = np.zeros(N)
        ref[mask_row] = to_np(mp_softmax(z[mask_row]))
        np.testing.assert_allclose(row, ref, rtol=0, atol=OUT_ATOL)
        assert np.all(row[~mask_row] == 0.0)
    # (R, 1) mask: whole rows on/off; off rows are exactly zero
    rows_on = np.array([[True], [False], [True], [False], [True]])
    p = np.asarray(maps.softmax(Z, where=rows_on))
    np.testing.assert_array_equal(p[[1, 3]], 0.0)
    np.testing.assert_allclose(p[[0, 2, 4]], np.asarray(maps.softmax(Z[[0, 2, 4]])), atol=0)


def test_fully_masked_row_zero_derivative_and_masked_nan(Z):
    z = Z.copy()
    z[3, 0] = np.nan  # NaN at a masked position is ignored
    where = np.ones((R, N), bool)
    where[1] = False  # fully masked row
    where[3, [0, 4]] = False
    f = lambda u: maps.softmax(u, where=where)  # noqa: E731
    p = np.asarray(f(z))
    np.testing.assert_array_equal(p[1], 0.0)
    ref3 = np.zeros(N)
    ref3[where[3]] = to_np(mp_softmax(z[3, where[3]]))
    np.testing.assert_allclose(p[3], ref3, rtol=0, atol=OUT_ATOL)
    J = np.asarray(jax.jacfwd(f)(jnp.asarray(z)))  # (R, N, R, N)
    assert np.all(np.isfinite(J))
    np.testing.assert_array_equal(J[1], 0.0)
    np.testing.assert_array_equal(J[:, :, 1], 0.0)
    # masked keys of row 3: no derivative flows in or out of them
    np.testing.assert_array_equal(J[3][[0, 4]], 0.0)
    np.testing.assert_array_equal(J[3, :, 3][:, [0, 4]], 0.0)
    J3 = J[3, :, 3]
    np.testing.assert_allclose(J3, np.diag(ref3) - np.outer(ref3, ref3), rtol=0, atol=1e-13)


ALL_MAPS = [
    ("softmax", maps.softmax),
    ("topk2", lambda z: maps.topk_softmax(z, 2)),
    ("sparsemax", maps.sparsemax),
    ("entmax15", maps.entmax15),
    ("entmax1.25", lambda z: maps.entmax(z, 1.25)),
]
ALL_IDS = [n for n, _ in ALL_MAPS]
inf, nan = np.inf, np.nan
SPECIAL = np.array(  # shape (R, N): reuses the compiled (R, N) programs
    [
        [inf, 0.0, 3.0, inf, -inf, 1.0, 2.0],  # two +inf: 1/2 each
        [-inf, 2.0, -inf, 2.0, -inf, -inf, -inf],  # -inf get 0; the two finite tie
        [-inf] * 7,  # all -inf: zeros
        [nan, inf, -inf, 0.0, 1.0, 2.0, 0.0],  # NaN: whole row NaN, even next to +inf
        [1e300, -1e300, 0.0, 1.0, 2.0, 3.0, -inf],  # huge finite logits: no overflow
    ]
)


@pytest.mark.parametrize("fn", [f for _, f in ALL_MAPS], ids=ALL_IDS)
def test_special_value_conventions(fn):
    p = np.asarray(fn(SPECIAL))
    np.testing.assert_array_equal(p[0], [0.5, 0, 0, 0.5, 0, 0, 0])
    np.testing.assert_allclose(p[1], [0, 0.5, 0, 0.5, 0, 0, 0], atol=1e-15)
    np.testing.assert_array_equal(p[2], 0.0)
    assert np.all(np.isnan(p[3]))
    np.testing.assert_array_equal(p[4], [1, 0, 0, 0, 0, 0, 0])
    # derivatives are finite wherever the output is
    J = np.asarray(jax.jacfwd(fn)(jnp.asarray(SPECIAL)))
    for i in (0, 1, 2, 4):
        assert np.all(np.isfinite(J[i, :, i, :]))
    J0 = J[0, :, 0, :]
    s = np.array([1.0, 0, 0, 1.0, 0, 0, 0])
    if fn is maps.softmax or fn is ALL_MAPS[1][1]:  # diag(p) - p p^T with p = s/2
        np.testing.assert_allclose(J0, np.diag(s / 2) - np.outer(s, s) / 4, atol=1e-15)
    else:  # the ties share one support weight w: J = w (diag(s) - s s^T/2), J0[0, 0] = w/2
        np.testing.assert_allclose(J0 / J0[0, 0], (np.diag(s) - np.outer(s, s) / 2) * 2, atol=1e-12)
    np.testing.assert_array_equal(J[2, :, 2, :], 0.0)
    np.testing.assert_array_equal(J[4, :, 4, :], 0.0)  # a single winner: locally constant


def test_topk_nan_is_selected_first():
    p = np.asarray(maps.topk_softmax(np.array([0.0, 1.0, nan, 2.0]), 1))
    assert np.all(np.isnan(p))


# ----------------------------------------------------------------------------------------------
# batching, axes, transforms, dtypes


@pytest.mark.parametrize("fn", [f for _, f in ALL_MAPS], ids=ALL_IDS)
def test_jit_and_vmap(fn, Z):
    ref = np.asarray(fn(Z))  # batched over the leading axis (checked row-wise vs the oracle above)
    np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(fn))(Z)), ref, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "name,fn",
    [
        ("softmax", lambda z, a: maps.softmax(z, a, beta=0.5)),
        ("topk", lambda z, a: maps.topk_softmax(z, 2, a)),
        ("sparsemax", maps.sparsemax),
        ("entmax15", maps.entmax15),
        ("entmax", lambda z, a: maps.entmax(z, 1.25, a)),
    ],
)
def test_axis_argument_and_leading_axes(name, fn, Z):
    ref = np.asarray(fn(Z, -1))
    z3 = Z.T[None]  # shape (1, N, R): normalise along axis 1, two other axes
    out = np.asarray(fn(z3, 1))
    np.testing.assert_allclose(out[0].T, ref, rtol=0, atol=0)
    np.testing.assert_array_equal(np.asarray(fn(z3, -2)), out)


@pytest.mark.parametrize("fn", [f for _, f in ALL_MAPS], ids=ALL_IDS)
def test_float32_in_float32_out(fn, Z):
    p32 = fn(Z.astype(np.float32))
    assert p32.dtype == jnp.float32
    # float32 eps ~ 6e-8 and each map is at most 1-Lipschitz in z: 1e-6 covers rounding of z
    np.testing.assert_allclose(np.asarray(p32), np.asarray(fn(Z)), rtol=0, atol=1e-6)


def test_float32_beta_array_keeps_dtype():
    z = np.ones((2, 3), np.float32)
    p = maps.softmax(z, beta=np.array([[1.0], [2.0]]))  # float64 beta is cast to z's dtype
    assert p.dtype == jnp.float32


@pytest.mark.parametrize("fn", [f for _, f in ALL_MAPS], ids=ALL_IDS)
def test_integer_inputs_are_promoted(fn):
    zi = np.arange(R * N).reshape(R, N) % 5 - 2
    p = fn(zi)
    assert jnp.issubdtype(p.dtype, jnp.floating)
    np.testing.assert_array_equal(np.asarray(p), np.asarray(fn(zi.astype(float))))


def test_beta_array_per_row(Z):
    beta = np.array([[0.5], [1.0], [2.0], [3.0], [0.1]])
    np.testing.assert_allclose(
        np.asarray(maps.softmax(Z, beta=beta)), np.asarray(maps.softmax(Z * beta)), atol=1e-15
    )


# ----------------------------------------------------------------------------------------------
# inverse temperatures that push beta * z beyond the float range


def _overflow_rows(dtype):
    """Rows whose products beta*z overflow (beta = 10) or whose differences z - max z overflow
    (beta = 50/big, where beta*(z - max z) spans a moderate [-60, 0]); ``big`` = the dtype's max."""
    big = float(np.finfo(dtype).max)
    z = np.array([
        [0.6 * big, 0.3 * big, 0.0, -0.5 * big],  # 10*z = (+inf, +inf, 0, -inf): the old "+inf tie"
        [0.6 * big, 0.6 * big, 0.3 * big, 0.0],  # a true tie at the top shares the mass
        [0.6 * big, -0.6 * big, 0.3 * big, 1.0],  # z - max z = -1.2 big overflows for the second
    ], dtype)
    beta = np.array([[10.0], [10.0], [50.0 / big]], dtype)  # one value per row
    return z, beta


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_softmax_beta_times_z_overflow_matches_oracle(dtype, rtol):
    # The oracle takes the stored values exactly and works in mpmath (no exponent range). rtol:
    # each logit beta*(z - m) is formed with ~2 roundings, |logit| <= 60, so the relative error of
    # exp(logit) is <= 60 * 2 eps (1.3e-14 in float64, 7e-6 in float32), plus the normalisation.
    z, beta = _overflow_rows(dtype)
    p = np.asarray(maps.softmax(z, beta=beta))
    assert p.dtype == dtype
    ref = np.array([to_np(mp_softmax([float(v) for v in row], float(b[0]))) for row, b in zip(z, beta)])
    np.testing.assert_array_equal(p[0], [1, 0, 0, 0])  # not (0.5, 0.5, 0, 0)
    np.testing.assert_array_equal(p[1], [0.5, 0.5, 0, 0])
    assert 0 < p[2, 1] < 1e-25  # e^-60: kept, not flushed to 0 by an overflow of z - max z
    np.testing.assert_allclose(p, ref, rtol=rtol, atol=0)
    # a scalar beta takes the same path as one value per row
    np.testing.assert_array_equal(np.asarray(maps.softmax(z[:2], beta=10.0)), p[:2])


def test_softmax_overflow_derivatives_are_the_closed_form():
    big = float(np.finfo(np.float64).max)
    z, beta = _overflow_rows(np.float64)
    z = np.concatenate([z, [[0.5 * big, -0.4 * big, 0.25 * big, 1.0]]])  # spread < big: d/dbeta finite
    beta = np.concatenate([beta, [[50.0 / big]]])
    for row, b in zip(z, beta[:, 0]):
        zj = jnp.asarray(row)
        p = to_np(mp_softmax(row, b))
        J = np.asarray(jax.jacfwd(lambda x, b=b: maps.softmax(x, beta=b))(zj))
        np.testing.assert_allclose(J, b * (np.diag(p) - np.outer(p, p)), rtol=1e-12, atol=1e-300)
        if row.max() / 2 - row.min() / 2 > big / 2:
            continue  # the beta-tangent z - max z itself overflows (documented in softmax)
        # d/dbeta = (diag p - p p^T)(z - max z), from the mpmath differences
        d = [mp.mpf(float(v)) - mp.mpf(float(row.max())) for v in row]
        pm = mp_softmax(row, b)
        mean = mp.fsum(a * c for a, c in zip(pm, d))
        ref = np.array([float(a * (c - mean)) for a, c in zip(pm, d)])
        g = np.asarray(jax.jacfwd(lambda bb: maps.softmax(zj, beta=bb))(b))
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, ref, rtol=1e-11, atol=1e-300 * big)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_topk_softmax_beta_times_z_overflow(dtype, rtol):
    big = float(np.finfo(dtype).max)
    z = np.array([0.3 * big, 0.6 * big, 0.0, 0.5 * big], dtype)
    # 10*z = (+inf, +inf, 0, +inf): the selected pair (1, 3) used to split the mass
    np.testing.assert_array_equal(np.asarray(maps.topk_softmax(z, 2, beta=10.0)), [0, 1, 0, 0])
    # the two selected logits differ by 1.2 big (z[0] - z[1] overflows); beta*(z - max z) = (0, -60)
    z = np.array([0.6 * big, -0.6 * big, -0.7 * big, -0.8 * big], dtype)
    b = dtype(50.0 / big)
    p = np.asarray(maps.topk_softmax(z, 2, beta=b))
    ref = np.zeros(4)
    ref[:2] = to_np(mp_softmax([float(z[0]), float(z[1])], float(b)))  # 1/(1+e^-60), e^-60/(1+e^-60)
    assert 0 < p[1] < 1e-25
    np.testing.assert_allclose(p, ref, rtol=rtol, atol=0)


def test_topk_softmax_selects_on_beta_times_z(Z):
    # beta varying along the row: the k largest *logits* beta*z are kept (selecting on z would keep
    # index 2 first); ties of beta*z go to the lower index, as for z
    z = np.array([1.0, 2.0, 3.0, 0.5])
    beta = np.array([3.0, 1.0, 1.0, 1.0])  # logits (3, 2, 3, 0.5)
    np.testing.assert_array_equal(np.asarray(maps.topk_softmax(z, 1, beta=beta)), [1, 0, 0, 0])
    np.testing.assert_allclose(np.asarray(maps.topk_softmax(z, 2, beta=beta)), [0.5, 0, 0.5, 0], atol=1e-15)
    p3 = np.asarray(maps.topk_softmax(z, 3, beta=beta))
    ref = np.zeros(4)
    ref[:3] = to_np(mp_softmax([3.0, 2.0, 3.0]))
    np.testing.assert_allclose(p3, ref, rtol=0, atol=OUT_ATOL)
    # Jacobian in z: (diag p - p p^T) diag(beta), i.e. the chain rule through logits beta*z
    J = np.asarray(jax.jacfwd(lambda x: maps.topk_softmax(x, 3, beta=beta))(jnp.asarray(z)))
    np.testing.assert_allclose(J, (np.diag(ref) - np.outer(ref, ref)) * beta[None, :], rtol=0, atol=1e-14)
    # a full-shape beta that is constant along the row (the "varying" path) gives what the scalar
    # does (the constant path): the two selections and logit computations agree
    for k in (2, N):
        np.testing.assert_allclose(np.asarray(maps.topk_softmax(Z, k, beta=np.full(Z.shape, 1.3))),
                                   np.asarray(maps.topk_softmax(Z, k, beta=1.3)), rtol=0, atol=1e-15)
    np.testing.assert_allclose(np.asarray(maps.softmax(Z, beta=np.full(Z.shape, 1.3))),
                               np.asarray(maps.softmax(Z, beta=1.3)), rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------------------------
# hypothesis properties

row_strategy = hnp.arrays(
    np.float64, (N,), elements=st.floats(-30, 30, allow_nan=False, allow_infinity=False, width=64)
)
tie_row_strategy = hnp.arrays(np.float64, (N,), elements=st.sampled_from([-2.0, -0.5, 0.0, 0.5, 1.0, 3.0]))
HYP = settings(max_examples=25, deadline=None)


@HYP
@given(z=st.one_of(row_strategy, tie_row_strategy), c=st.floats(-20, 20))
def test_simplex_and_shift_invariance(z, c):
    zz = np.stack([z, z + c, z - c, z, z])  # (R, N): no new compilation
    ci = float(round(c))
    zi = np.stack([z, z + ci, z, z, z])  # tie rows + an integer shift are exact in float64
    for name, fn in ALL_MAPS:
        p = np.asarray(fn(zz))
        assert np.all(p >= 0)
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-13)
        if name == "topk2":
            # top-k jumps at ties, and z + c can create ties by rounding: shift exactly instead
            if np.all(z == np.round(z * 2) / 2):
                pi = np.asarray(fn(zi))
                np.testing.assert_allclose(pi[0], pi[1], rtol=0, atol=1e-15)
            continue
        # rounding of z + c is ~ 50 * 2^-53 per entry; all maps are 1-Lipschitz in l_inf -> l_1
        np.testing.assert_allclose(p[0], p[1], rtol=0, atol=1e-12)
        np.testing.assert_allclose(p[0], p[2], rtol=0, atol=1e-12)


@HYP
@given(z=st.one_of(row_strategy, tie_row_strategy))
def test_sparse_maps_match_oracle_property(z):
    zz = np.stack([z] * R)  # (R, N): no new compilation
    np.testing.assert_allclose(np.asarray(maps.sparsemax(zz))[0], to_np(mp_sparsemax(z)), rtol=0, atol=OUT_ATOL)
    np.testing.assert_allclose(np.asarray(maps.entmax15(zz))[0], to_np(mp_entmax(z, 1.5)), rtol=0, atol=OUT_ATOL)
    np.testing.assert_allclose(
        np.asarray(maps.entmax(zz, 1.75))[0], to_np(mp_entmax(z, 1.75)), rtol=0, atol=OUT_ATOL
    )


@HYP
@given(z=tie_row_strategy, k=st.sampled_from([1, 2, 4, N]))
def test_topk_selects_exactly_k_lowest_index_ties(z, k):
    p = np.asarray(maps.topk_softmax(np.stack([z] * R), k))[0]
    sel = np.sort(np.argsort(-z, kind="stable")[:k])  # numpy stable sort: lower index first
    np.testing.assert_array_equal(np.flatnonzero(p > 0), sel)


def test_oracle_self_consistency():
    """The two oracle routes to sparsemax agree (guards the oracle, not the library)."""
    z = [0.3, -0.2, 1.1, 0.9, -3.0]
    np.testing.assert_allclose(to_np(mp_entmax(z, 2.0)), to_np(mp_sparsemax(z)), atol=1e-25)


# ----------------------------------------------------------------------------------------------
# bad input


def _raises(exc, match, fn, *args, **kwargs):
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)


@pytest.mark.parametrize("k,exc", [(0, ValueError), (-1, ValueError), (2.5, ValueError), (2.0, ValueError),
                                   (np.float32(3.0), ValueError), (np.nan, ValueError), (True, TypeError),
                                   ("2", TypeError), (None, TypeError)])
def test_topk_bad_k(k, exc):
    # a real number that is not an int is out of the allowed set (ValueError); non-numbers and
    # bools are the wrong type (TypeError)
    _raises(exc, r"\bk\b.*in \[1, 4\]", maps.topk_softmax, np.ones(4), k)


def test_topk_bad_k_names_range():
    _raises(ValueError, r"k must be in \[1, 4\], got 0", maps.topk_softmax, np.ones(4), 0)
    _raises(ValueError, r"k must be an integer in \[1, 4\], got 2\.5", maps.topk_softmax, np.ones(4), 2.5)
    _raises(ValueError, r"k must be in \[1, 4\], got 5", maps.topk_softmax, np.ones(4), 5)  # k > n
    _raises(ValueError, r"k must be in \[1, 3\], got 4", maps.topk_softmax, np.ones((2, 3)), 4)
    _raises(ValueError, r"k must be in \[1, 2\], got 3", maps.topk_softmax, np.ones((2, 3)), 3, axis=0)


@pytest.mark.parametrize("beta,exc", [(0.0, ValueError), (-1.0, ValueError), (np.inf, ValueError),
                                      (np.nan, ValueError), ("2", TypeError), (True, TypeError)])
def test_bad_beta(beta, exc):
    match = r"beta must be finite and > 0 \(in \(0, inf\)\)" if exc is ValueError else "beta"
    _raises(exc, match, maps.softmax, np.ones(4), beta=beta)
    _raises(exc, match, maps.topk_softmax, np.ones(4), 2, beta=beta)


def test_traced_beta_is_not_checked_and_checkify_catches_it():
    # documented: a traced negative beta cannot be checked before run time and reverses the map
    z = jnp.array([0.0, 1.0, 3.0])
    got = jax.jit(lambda x, b: maps.softmax(x, beta=b))(z, -1.0)
    np.testing.assert_allclose(np.asarray(got), np.asarray(maps.softmax(-z)), rtol=1e-15)
    from jax.experimental import checkify

    def checked(x, b):  # the run-time check of the softmax docstring
        checkify.check(jnp.all(b > 0), "beta must be > 0, got {b}", b=b)
        return maps.topk_softmax(x, 2, beta=b)

    f = jax.jit(checkify.checkify(checked))
    err, _ = f(z, -1.0)
    assert err.get().startswith("beta must be > 0, got -1.0")
    err, p = f(z, 2.0)
    assert err.get() is None
    np.testing.assert_allclose(np.asarray(p), np.asarray(maps.topk_softmax(z, 2, beta=2.0)), rtol=1e-15)


def test_beta_bad_shape():
    _raises(ValueError, "beta", maps.softmax, np.ones((2, 4)), beta=np.ones(3))
    _raises(ValueError, "beta", maps.softmax, np.ones(4), beta=np.ones((2, 4)))  # would grow the output


@pytest.mark.parametrize("alpha,exc", [(0.99, ValueError), (2.01, ValueError), (-1, ValueError),
                                       (np.nan, ValueError), (np.inf, ValueError), ("x", TypeError),
                                       (True, TypeError)])
def test_entmax_bad_alpha(alpha, exc):
    _raises(exc, r"alpha must be in \[1\.0, 2\.0\]" if exc is ValueError else "alpha", maps.entmax, np.ones(4), alpha)


def test_entmax_traced_alpha_rejected():
    with pytest.raises(TypeError, match="alpha"):
        jax.jit(lambda a: maps.entmax(np.ones(3), a))(1.5)


MAP_CALLS = [
    ("softmax", lambda z, **kw: maps.softmax(z, **kw)),
    ("topk", lambda z, **kw: maps.topk_softmax(z, 2, **kw)),
    ("sparsemax", lambda z, **kw: maps.sparsemax(z, **kw)),
    ("entmax15", lambda z, **kw: maps.entmax15(z, **kw)),
    ("entmax", lambda z, **kw: maps.entmax(z, 1.3, **kw)),
]


@pytest.mark.parametrize("fn", [f for _, f in MAP_CALLS], ids=[n for n, _ in MAP_CALLS])
def test_bad_z_and_axis(fn):
    _raises(ValueError, r"\bz\b", fn, np.ones((0,)))
    _raises(ValueError, r"\bz\b", fn, np.ones((0, 3)))
    _raises(ValueError, r"\bz\b", fn, np.float64(1.0))
    _raises(TypeError, r"\bz\b", fn, np.array([1 + 1j, 2]))
    _raises(TypeError, r"\bz\b", fn, "abc")
    _raises(ValueError, "axis", fn, np.ones((2, 3)), axis=2)
    _raises(ValueError, "axis", fn, np.ones((2, 3)), axis=-3)
    _raises(TypeError, "axis", fn, np.ones((2, 3)), axis=1.0)
    _raises(TypeError, "axis", fn, np.ones((2, 3)), axis=None)


def test_bad_where():
    _raises(TypeError, "where", maps.softmax, np.ones((2, 3)), where=np.ones((2, 3)))
    _raises(ValueError, "where", maps.softmax, np.ones((2, 3)), where=np.ones((3, 3), bool))
    _raises(ValueError, "where", maps.softmax, np.ones(3), where=np.ones((2, 3), bool))


# ----------------------------------------------------------------------------------------------
# optional: the reference PyTorch package


def test_against_entmax_package_if_installed(Z):
    torch = pytest.importorskip("torch")
    entmax_pkg = pytest.importorskip("entmax")
    t = torch.tensor(Z, dtype=torch.float64)
    np.testing.assert_allclose(np.asarray(maps.sparsemax(Z)), entmax_pkg.sparsemax(t, dim=-1).numpy(), atol=1e-12)
    np.testing.assert_allclose(np.asarray(maps.entmax15(Z)), entmax_pkg.entmax15(t, dim=-1).numpy(), atol=1e-12)
    for a in ALPHAS:
        ref = entmax_pkg.entmax_bisect(t, alpha=a, dim=-1, n_iter=100).numpy()
        np.testing.assert_allclose(np.asarray(maps.entmax(Z, a)), ref, atol=1e-12)
