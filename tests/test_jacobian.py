"""Tests of softmax_stability.jacobian.

References are independent of the code under test:
* 40-digit references: the largest secular root computed in Python ``decimal`` arithmetic
  (correctly rounded, 40 significant digits plus the digits that the cancellation
  ``1 - sum p^2/(p - mu)`` eats when mu is tiny), by a bracketed Newton iteration whose result
  is certified by a sign change of f around it; on the small hard cases this reference is
  itself cross-checked against ``mpmath.eigsy`` of the dense matrix at ``mp.dps = 40``
  (``decimal`` is used for the root because it is ~10x faster than mpmath at n = 1e5);
* dense linear algebra (``numpy.linalg.eigvalsh``, norms of the dense matrix);
* autodiff (``jax.jacfwd``) and finite differences of independent map implementations;
* brute force over sign vectors / subsets.

Tolerances: float64 closed forms vs dense numpy agree to a few ulps of the largest entry
(<= 1/2), so atol=1e-14; relative accuracy targets of the secular solver are 1e-12 (float64)
and 1e-5 (float32), far above the ~1e-16 / 1e-7 observed, far below any algorithmic error.
"""

from __future__ import annotations

import bisect
import decimal
import itertools
import math
import warnings
from fractions import Fraction

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import softmax_stability.jacobian as jac
from softmax_stability import maps

F64_TINY = np.finfo(np.float64).tiny
F32_TINY = np.finfo(np.float32).tiny


# --------------------------------------------------------------------------------------
# references
# --------------------------------------------------------------------------------------


def dense(p):
    p = np.asarray(p, dtype=np.float64)
    return np.diag(p) - np.outer(p, p)


def flush(p, tiny):
    """XLA on CPU flushes subnormals to zero: the matrix the library sees."""
    p = np.asarray(p, dtype=np.float64)
    return np.where(np.abs(p) < tiny, 0.0, p)


def secular_top_ref(p, digits=40, start=None):
    """Largest eigenvalue of diag(p) - pp^T, p >= 0, to `digits` significant digits.

    ``start``: an optional first iterate (e.g. a float64 estimate). It only saves Newton steps on
    long rows: the result is still certified by the sign change of f around it, whatever the start."""
    vals = sorted((float(x) for x in np.ravel(p) if x > 0), reverse=True)
    if not vals:
        return 0.0
    D = decimal.Decimal
    extra = int(-math.log10(vals[1])) if len(vals) > 1 and vals[1] < 1 else 0
    ctx = decimal.Context(prec=digits + 10 + extra, Emin=-99999, Emax=99999)
    with decimal.localcontext(ctx):
        P = [D(v) for v in vals]  # exact conversion of the stored floats
        a = P[0]
        if len(P) == 1:
            return float(a * (1 - a))
        b = P[1]
        if a == b:
            return float(a)
        W = [x * x for x in P]

        def f_df(mu):
            s = D(0)
            s1 = D(0)
            for x, w in zip(P, W):
                inv = 1 / (x - mu)
                t = w * inv
                s += t
                s1 += t * inv
            return 1 - s, -s1

        lo, hi = b, a  # f(b+) = +inf, f(a-) = -inf, f decreasing: one root in between
        mu = (lo + hi) / 2
        if start is not None and lo < D(float(start)) < hi:
            mu = D(float(start))
        tol = D(10) ** (-(digits + 2))
        for _ in range(400):
            f, df = f_df(mu)
            if f > 0:
                lo = mu
            else:
                hi = mu
            new = mu - f / df
            if not lo < new < hi:  # safeguard: geometric bisection for wide brackets
                new = (lo * hi).sqrt() if hi > 4 * lo else (lo + hi) / 2
            if abs(new - mu) <= tol * mu:
                mu = new
                break
            mu = new
        h = D(10) ** (-digits)
        assert f_df(mu * (1 - h))[0] > 0 > f_df(mu * (1 + h))[0], "reference not certified"
        return float(mu)


def mp_dense_top(p, dps=40):
    mp.mp.dps = dps
    q = [mp.mpf(float(x)) for x in p]
    n = len(q)
    M = mp.matrix(n)
    for i in range(n):
        for j in range(n):
            M[i, j] = (q[i] if i == j else 0) - q[i] * q[j]
    return max(mp.eigsy(M, eigvals_only=True))


def rel_err(x, ref):
    x = float(x)
    return abs(x - ref) / abs(ref) if ref != 0 else abs(x)


def _mp_jacobian(p):
    """diag(p) - pp^T of the stored floats (converted exactly), at the working precision."""
    q = [mp.mpf(float(x)) for x in p]
    return [[(q[i] if i == j else 0) - q[i] * q[j] for j in range(len(q))] for i in range(len(q))]


@mp.workdps(40)
def mp_frobenius(p):
    """sqrt(sum_ij J_ij^2) of the dense matrix, 40 digits."""
    return float(mp.sqrt(mp.fsum(x * x for row in _mp_jacobian(p) for x in row)))


@mp.workdps(40)
def mp_one_norm(p):
    """Largest absolute column sum of the dense matrix, 40 digits."""
    J = _mp_jacobian(p)
    return float(max(mp.fsum(abs(J[i][j]) for i in range(len(J))) for j in range(len(J))))


@mp.workdps(40)
def mp_inf_to_one_signs(p):
    """max over sign vectors s of ||J s||_1 (the definition), 40 digits; zero entries of p give
    zero rows and columns, so only the signs on the support are enumerated (s and -s alike)."""
    nz = [float(x) for x in p if x != 0]
    if not nz:
        return 0.0
    J = _mp_jacobian(nz)
    k = len(nz)
    best = mp.mpf(0)
    for signs in itertools.product((-1, 1), repeat=k - 1):
        s = (1,) + signs
        best = max(best, mp.fsum(abs(mp.fsum(J[i][j] * s[j] for j in range(k))) for i in range(k)))
    return float(best)


def inf_to_one_exact(p):
    """||J||_{inf->1} = max_S [T(1-T) + 4 p(S)(T - p(S))] = T - min_S (2 p(S) - T)^2, T = sum p, in
    exact integer arithmetic: every float64 is an integer multiple of 2^-1074, so the entries become
    integers in units of 2^-1100; all subset sums of each half (meet in the middle), the best pair
    by bisection, and the exact rational result rounded once to float. Independent of the
    library's floating-point search (and of NumPy)."""
    unit = 2**1100
    v = []
    for x in p:
        if x != 0:
            num, den = float(x).as_integer_ratio()
            v.append(num * (unit // den))
    T = sum(v)

    def subset_sums(xs):
        out = [0]
        for x in xs:
            out = out + [s + x for s in out]
        return out

    h = len(v) // 2
    A = subset_sums(v[:h])
    B2 = sorted(2 * b for b in subset_sums(v[h:]))
    best = None
    for a in A:
        target = T - 2 * a  # minimise |2b - target|
        i = bisect.bisect_left(B2, target)
        for j in (i - 1, i):
            if 0 <= j < len(B2):
                d = abs(B2[j] - target)
                best = d if best is None or d < best else best
    return float(Fraction(T * unit - best * best, unit * unit))


@mp.workdps(40)
def mp_eigenvalues(p):
    """Ascending eigenvalues of diag(p) - pp^T by mpmath's dense symmetric solver at 40 digits
    (on the support; each zero entry contributes an exact eigenvalue 0)."""
    nz = [float(x) for x in p if x != 0]
    ev = [mp.mpf(0)] * (len(p) - len(nz))
    if len(nz) == 1:
        q = mp.mpf(nz[0])
        ev.append(q - q * q)
    elif nz:
        M = mp.matrix(_mp_jacobian(nz))
        e = mp.eigsy(M, eigvals_only=True)
        ev += [e[i] for i in range(len(nz))]
    return np.sort(np.array([float(x) for x in ev]))


def plain_softmax(x):
    """exp / sum in jnp with no custom derivative rule (jax.nn.softmax has a custom_jvp applying
    the closed form p*t - p (p.t), so jacfwd through it would check the formula against itself)."""
    e = jnp.exp(x - jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True)))
    return e / jnp.sum(e, axis=-1, keepdims=True)


def softmax_np(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def dirichlet_batch(seed, n, rows, conc=(0.05, 0.3, 1.0, 5.0)):
    rng = np.random.default_rng(seed)
    return np.stack([rng.dirichlet(np.full(n, conc[i % len(conc)])) for i in range(rows)])


# --------------------------------------------------------------------------------------
# hard cases for the spectral norm (all padded with zeros to N_PAD: zero entries contribute
# nothing, so one compiled shape serves all of them, and the padding is itself tested)
# --------------------------------------------------------------------------------------

N_PAD = 20


def _hard_cases():
    rng = np.random.default_rng(7)
    spread = 10.0 ** (-40 * rng.random(16))
    spread /= spread.sum()
    spread2 = 10.0 ** (-40 * rng.random(20))
    spread2[0] = 1.0
    spread2 /= spread2.sum()
    dom = np.array([1 - 1e-10, 0.6e-10, 0.4e-10])
    return {
        "near_tie_1e-12": np.array([0.4 + 1e-12, 0.4, 0.2 - 1e-12]),
        "near_tie_rel_1e-12_dirichlet": (lambda q: np.concatenate([[q[0] * (1 + 1e-12), q[0]], q[1:]]))(
            rng.dirichlet(np.ones(5)) * 0.5),
        "second_place_tie_1e-13": np.array([0.5, 0.25, 0.25 - 1e-13, 1e-13]),
        "exact_top_tie": np.array([0.4, 0.4, 0.2]),
        "exact_tie_of_four": np.full(4, 0.25),
        "dominant_1e-10": dom,
        "dominant_1e-15": np.array([1 - 1e-15, 1e-15]),
        "dominant_spread": np.concatenate([[1 - 1e-8], 1e-8 * rng.dirichlet(np.ones(12))]),
        "spread_40_orders": spread,
        "spread_40_orders_dominant": spread2,
        "tiny_1e-300": np.array([1.0, 1e-300]),
        "tiny_1e-305_two": np.array([1.0, 1e-305, 3e-306]),
        "tiny_mixed": np.array([0.6, 0.4, 1e-300, 1e-250]),
        "zeros_inside": np.array([0.7, 0.0, 0.3, 0.0]),
        "one_hot": np.array([0.0, 1.0, 0.0]),
        "sub_stochastic": np.array([0.3, 0.2, 0.1]),
        "random_sparse": rng.dirichlet(np.full(10, 0.1)),
        "uniform_20": np.full(20, 1 / 20),
    }


HARD = _hard_cases()


def _pad(p, n=N_PAD):
    out = np.zeros(n)
    out[: len(p)] = p
    return out


def test_secular_reference_matches_mpmath_dense():
    # validates the decimal reference against mpmath's dense symmetric eigensolver
    for name in ["near_tie_1e-12", "dominant_1e-10", "tiny_1e-305_two", "zeros_inside", "second_place_tie_1e-13"]:
        p = HARD[name]
        ref = secular_top_ref(p)
        dense_ref = float(mp_dense_top(p))
        assert rel_err(ref, dense_ref) < 1e-15, name


def test_spectral_norm_hard_cases_float64():
    names = list(HARD)
    P = np.stack([_pad(HARD[k]) for k in names])
    got = np.asarray(jac.spectral_norm(P))
    for k, g in zip(names, got):
        ref = secular_top_ref(flush(HARD[k], F64_TINY))
        assert rel_err(g, ref) <= 1e-12, (k, g, ref)
    # padding with zeros changes nothing (checked on one unpadded row of each length)
    for k in ["dominant_1e-15", "tiny_1e-300"]:
        assert float(jac.spectral_norm(HARD[k])) == got[names.index(k)]


def test_spectral_norm_hard_cases_float32():
    names = list(HARD)
    P = np.stack([_pad(HARD[k]) for k in names]).astype(np.float32)
    got = jac.spectral_norm(P)
    assert got.dtype == jnp.float32
    for k, row, g in zip(names, P, np.asarray(got)):
        ref = secular_top_ref(flush(row, F32_TINY))  # the float32 values, exactly
        assert rel_err(g, ref) <= 1e-5, (k, g, ref)


def test_spectral_norm_special_sizes():
    # n = 1: the 1x1 matrix p - p^2
    assert float(jac.spectral_norm(np.array([1.0]))) == 0.0
    assert float(jac.spectral_norm(np.array([0.3]))) == pytest.approx(0.3 * 0.7, rel=1e-15)
    # n = 2 on the simplex: eigenvalues {0, 2 p1 p2}
    for p1 in (0.5, 0.9, 1 - 1e-9, 0.75):
        row = np.array([p1, 1 - p1])  # 1 - p1 is exact for p1 >= 1/2
        got = float(jac.spectral_norm(row))
        assert got == pytest.approx(2 * row[0] * row[1], rel=1e-14)
        assert rel_err(got, secular_top_ref(row)) <= 1e-12


def test_subnormal_entries_act_as_zero():
    # XLA on CPU flushes subnormals: (1, 1e-310) is the matrix of (1, 0), whose norm is 0
    assert float(jac.spectral_norm(np.array([1.0, 1e-310]))) == 0.0
    p = _pad(np.array([0.5, 0.5 - 1e-6, 1e-6, 1e-310]))
    assert rel_err(jac.spectral_norm(p), secular_top_ref(flush(p, F64_TINY))) <= 1e-12


def test_spectral_norm_large_n_against_reference():
    rng = np.random.default_rng(3)
    n = 100_000
    p = softmax_np(3.0 * rng.standard_normal(n))
    got = float(jac.spectral_norm(p))
    # the 40-digit reference starts its Newton iteration at the float64 value (fewer 1e5-term
    # passes in decimal) and is certified by a sign change of f around its result all the same
    ref = secular_top_ref(p, start=got)
    assert rel_err(got, ref) <= 1e-12
    p32 = p.astype(np.float32)
    got32 = float(jac.spectral_norm(p32))
    ref32 = secular_top_ref(flush(p32, F32_TINY), start=got32)
    assert rel_err(got32, ref32) <= 1e-5


def test_inf_to_one_exact_reference_matches_sign_vector_definition():
    # the exact subset-form reference agrees with the definition max_s ||J s||_1 (40-digit mpmath)
    for name in ["near_tie_1e-12", "exact_top_tie", "dominant_1e-15", "tiny_mixed", "sub_stochastic",
                 "random_sparse", "second_place_tie_1e-13"]:
        p = flush(HARD[name], F64_TINY)
        assert rel_err(inf_to_one_exact(p), mp_inf_to_one_signs(p)) <= 1e-15, name


# The eigenvalue solver is accurate in absolute terms (a few ulps of p_(1), see `eigenvalues`):
# 4 eps p_(1) is checked; observed <= 2.3e-16 p_(1) (float64) and 7.5e-8 p_(1) (float32).
_EIG_ATOL = {np.float64: 4 * np.finfo(np.float64).eps, np.float32: 4 * np.finfo(np.float32).eps}


@pytest.mark.parametrize("dtype,tiny,rtol", [(np.float64, F64_TINY, 1e-12), (np.float32, F32_TINY, 1e-5)])
def test_other_norms_and_eigenvalues_hard_cases_against_mpmath(dtype, tiny, rtol):
    # References from the stored values (float32 ones exactly, subnormals flushed as XLA does):
    # 40-digit mpmath sums over the dense matrix, the exact inf->1 value, mpmath eigsy.
    names = list(HARD)
    P = np.stack([_pad(HARD[k]) for k in names]).astype(dtype)
    fro, one, i21, eig = (np.asarray(f(P)) for f in (jac.frobenius_norm, jac.one_norm, jac.inf_to_one_norm,
                                                      jac.eigenvalues))
    assert fro.dtype == one.dtype == i21.dtype == eig.dtype == dtype
    for k, row, f, o, i, e in zip(names, P, fro, one, i21, eig):
        p = flush(row, tiny)
        assert rel_err(f, mp_frobenius(p)) <= rtol, (k, "frobenius")
        assert rel_err(o, mp_one_norm(p)) <= rtol, (k, "one_norm")
        assert rel_err(i, inf_to_one_exact(p)) <= rtol, (k, "inf_to_one")
        ref = mp_eigenvalues(p)
        top = p.max()
        assert np.max(np.abs(e.astype(np.float64) - ref)) <= _EIG_ATOL[dtype] * top, (k, "eigenvalues")
        assert rel_err(e[-1], secular_top_ref(p)) <= rtol, (k, "largest eigenvalue")


@pytest.mark.parametrize("dtype,tiny,rtol", [(np.float64, F64_TINY, 1e-12), (np.float32, F32_TINY, 1e-5)])
def test_other_norms_and_eigenvalues_n1_n2_against_mpmath(dtype, tiny, rtol):
    rows = [np.array([1.0]), np.array([0.3]), np.array([1e-300]), np.array([0.5, 0.5]), np.array([0.9, 0.1]),
            np.array([1 - 1e-9, 1e-9]), np.array([1 - 1e-15, 1e-15]), np.array([0.3, 0.2])]
    for row in rows:
        row = row.astype(dtype)
        p = flush(row, tiny)
        checks = {"frobenius": (jac.frobenius_norm, mp_frobenius(p)), "one_norm": (jac.one_norm, mp_one_norm(p)),
                  "inf_to_one": (jac.inf_to_one_norm, inf_to_one_exact(p))}
        for what, (f, ref) in checks.items():
            assert rel_err(f(row), ref) <= rtol, (row, what)
        ref = mp_eigenvalues(p)
        e = np.asarray(jac.eigenvalues(row), dtype=np.float64)
        assert np.max(np.abs(e - ref)) <= _EIG_ATOL[dtype] * p.max(), (row, "eigenvalues")
        assert rel_err(e[-1], ref[-1]) <= rtol, (row, "largest eigenvalue")


def test_frobenius_one_norm_large_n_against_60_digit_reference():
    # O(n) references for n = 1e5: the textbook ||J||_F^2 = sum p^2 - 2 sum p^3 + (sum p^2)^2 (exact
    # for any p; its cancellation is harmless at 60 digits) and the column sums
    # p_j |1 - p_j| + p_j (T - p_j), T = sum p, at 60 digits
    # (in Python's C decimal at 60 digits: the same references, ~4x faster than mpmath here)
    rng = np.random.default_rng(3)
    p64 = softmax_np(3.0 * rng.standard_normal(100_000))
    D = decimal.Decimal
    for p, tiny, rtol in ((p64, F64_TINY, 1e-12), (p64.astype(np.float32), F32_TINY, 1e-5)):
        q = flush(p, tiny)
        with decimal.localcontext(decimal.Context(prec=60, Emin=-99999, Emax=99999)):
            m = [D(float(x)) for x in q]  # exact conversions of the stored values
            s2 = sum(x * x for x in m)
            s3 = sum(x * x * x for x in m)
            fro = float((s2 - 2 * s3 + s2 * s2).sqrt())
            T = sum(m)
            one = float(max(x * (abs(1 - x) + (T - x)) for x in m))
        assert rel_err(jac.frobenius_norm(p), fro) <= rtol
        assert rel_err(jac.one_norm(p), one) <= rtol


# --------------------------------------------------------------------------------------
# cross-checks against dense linear algebra and autodiff
# --------------------------------------------------------------------------------------


def _random_rows():
    """One batch per n (few compiled shapes): Dirichlet rows of several concentrations,
    plus rows with ties and zeros."""
    out = {}
    for n in (5, 50):
        P = dirichlet_batch(n, n, 8)
        P[0, :2] = P[0, :2].mean()  # a tie
        P[1, -1] = 0.0  # a zero
        P[1] /= P[1].sum()
        P[2, :] = [0.3, 0.0, 0.2, 0.2, 0.3] + [0.0] * (n - 5)  # two ties and zeros
        out[n] = P
    return out


ROWS = _random_rows()


@pytest.mark.parametrize("n", sorted(ROWS))
def test_spectral_norm_matches_eigvalsh(n):
    P = ROWS[n]
    dense_top = np.array([np.linalg.eigvalsh(dense(p))[-1] for p in P])
    np.testing.assert_allclose(jac.spectral_norm(P), dense_top, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("which", ["rows", "dirichlet"])
def test_eigenvalues_match_eigvalsh_and_interlace(which):
    P = ROWS[5] if which == "rows" else dirichlet_batch(77, 5, 8, conc=(0.02, 0.5, 2.0, 50.0))
    dense_eigs = np.stack([np.linalg.eigvalsh(dense(p)) for p in P])
    eigs = np.asarray(jac.eigenvalues(P))
    np.testing.assert_allclose(eigs, dense_eigs, rtol=0, atol=1e-14)
    assert np.all(np.diff(eigs, axis=-1) >= 0)  # ascending
    # interlacing p_(1) >= l_1 >= p_(2) >= l_2 >= ... (eigs descending vs p descending)
    ps = -np.sort(-P, axis=-1)
    ls = eigs[:, ::-1]
    assert np.all(ls <= ps + 1e-15)
    assert np.all(ls[:, :-1] >= ps[:, 1:] - 1e-15)
    # trace identity sum(lambda) = 1 - sum p^2 (independent of the solver)
    np.testing.assert_allclose(eigs.sum(-1), P.sum(-1) - (P**2).sum(-1), atol=1e-14)


def test_eigenvalues_ties_zeros_and_beta():
    P = ROWS[5]
    eigs = np.asarray(jac.eigenvalues(P, beta=3.0))
    np.testing.assert_allclose(eigs, 3.0 * np.stack([np.linalg.eigvalsh(dense(p)) for p in P]), atol=1e-14)
    # row 2 = (0.3, 0, 0.2, 0.2, 0.3): ties give p_i exactly, the zero gives 0 exactly
    row = eigs[2]
    assert np.sum(row == 0.0) >= 1  # the zero entry: deflated, exactly 0
    assert np.all(np.abs(row[:2]) < 1e-15)  # and the eigenvector 1 (eigenvalue 0 up to round-off)
    assert np.sum(row == 3.0 * 0.2) == 1 and row[-1] == 3.0 * 0.3


def test_frobenius_one_norm_match_dense():
    for P in ROWS.values():
        np.testing.assert_allclose(
            jac.frobenius_norm(P), [np.linalg.norm(dense(p), "fro") for p in P], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(
            jac.one_norm(P), [np.abs(dense(p)).sum(0).max() for p in P], rtol=1e-13, atol=1e-15)
        # the simplex formulas of the design card
        s2, s3 = (P**2).sum(-1), (P**3).sum(-1)
        np.testing.assert_allclose(jac.frobenius_norm(P), np.sqrt(s2 - 2 * s3 + s2**2), atol=1e-12)
        np.testing.assert_allclose(jac.one_norm(P), np.max(2 * P * (1 - P), -1), atol=1e-15)


def test_frobenius_one_norm_relative_accuracy_when_dominated():
    # p = (1 - eps, eps): ||J||_F = 2 p1 p2 ~ 2 eps; the textbook formula cancels to 0 here
    mp.mp.dps = 40
    for eps_ in (1e-9, 1e-13):
        p = np.array([1 - eps_, eps_])
        q = [mp.mpf(float(x)) for x in p]
        fro = mp.sqrt(mp.fsum(((q[i] if i == j else 0) - q[i] * q[j]) ** 2 for i in range(2) for j in range(2)))
        one = max(mp.fsum(abs((q[i] if i == j else 0) - q[i] * q[j]) for i in range(2)) for j in range(2))
        assert rel_err(jac.frobenius_norm(p), float(fro)) < 1e-14
        assert rel_err(jac.one_norm(p), float(one)) < 1e-14


def _sign_vectors(n):
    return np.array(list(itertools.product([-1.0, 1.0], repeat=n)))


@pytest.mark.parametrize("n", [1, 2, 5, 10])
def test_inf_to_one_matches_sign_vector_brute_force(n):
    P = ROWS[5] if n == 5 else dirichlet_batch(100 + n, n, 8)
    S = _sign_vectors(n)
    brute = [np.abs(S @ dense(p)).sum(1).max() for p in P]
    np.testing.assert_allclose(jac.inf_to_one_norm(P), brute, rtol=1e-13, atol=1e-15)
    lo, up = jac.inf_to_one_norm(P, return_bounds=True)
    np.testing.assert_array_equal(lo, up)


def test_inf_to_one_exact_at_n20_against_full_enumeration():
    P = dirichlet_batch(11, 20, 2, conc=(0.5, 3.0))
    got = np.asarray(jac.inf_to_one_norm(P))
    for p, g in zip(P, got):
        sums = np.zeros(1)
        for x in p:  # all 2^20 subset sums
            sums = np.concatenate([sums, sums + x])
        T = p.sum()
        best = np.max(4 * sums * (T - sums)) + T * (1 - T)
        assert abs(g - best) < 1e-14


def _near_partition_row(n, seed):
    """A row whose best subset mass is within ~1e-9 of 1/2 but, generically, not equal to it:
    integer weights A | B | (sum A - sum B) (a perfect partition), then 1e-9 relative noise."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1000, size=n // 2)
    b = rng.integers(1, 1000, size=n - n // 2 - 1)
    if a.sum() <= b.sum():
        a[0] += b.sum() - a.sum() + 1
    w = np.concatenate([a, b, [a.sum() - b.sum()]]).astype(float)
    w *= 1 + 1e-9 * rng.standard_normal(n)
    return w / w.sum()


@pytest.mark.parametrize("n", [21, 22, 23, 24])
def test_inf_to_one_exact_up_to_n24_against_exact_reference(n):
    # the library enumerates up to INF_TO_ONE_EXACT_MAX_N = 24 by a float meet in the middle; the
    # reference is the exact integer subset search of `inf_to_one_exact` (and, for n <= 22, all
    # 2^n subset sums in NumPy as in the n = 20 test). Both sides are values near 1 with
    # d/dP [4P(T - P)] = 0 at the optimum, so float subset sums barely move the result: rel 1e-13.
    assert n <= jac.INF_TO_ONE_EXACT_MAX_N
    P = np.stack([*dirichlet_batch(200 + n, n, 2, conc=(0.5, 3.0)), _near_partition_row(n, n),
                  np.concatenate([[0.3, 0.25], 0.45 * dirichlet_batch(n, n - 2, 1)[0]])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exact range: no warning
        got = np.asarray(jac.inf_to_one_norm(P))
    lo, up = (np.asarray(v) for v in jac.inf_to_one_norm(P, return_bounds=True))
    np.testing.assert_array_equal(lo, up)
    for p, g in zip(P, got):
        ref = inf_to_one_exact(p)
        assert rel_err(g, ref) <= 1e-13, (n, g, ref)
        if n <= 22:
            sums = np.zeros(1)
            for x in p:
                sums = np.concatenate([sums, sums + x])
            T = p.sum()
            assert abs(np.max(4 * sums * (T - sums)) + T * (1 - T) - ref) <= 1e-14


def test_inf_to_one_beyond_n24_brackets_the_exact_value():
    # n = 30 > 24: the certified bracket must contain the exact value, computed here by the exact
    # integer search over the support (20 nonzeros for most rows, all 30 for the last two)
    rng = np.random.default_rng(9)
    rows = []
    for conc in (0.3, 1.0, 5.0):
        p = np.zeros(30)
        p[rng.choice(30, 20, replace=False)] = rng.dirichlet(np.full(20, conc))
        rows.append(p)
    rows.append(np.concatenate([_near_partition_row(20, 3), np.zeros(10)]))
    rows.append(np.concatenate([[0.55], 0.45 * rng.dirichlet(np.ones(29))]))  # p_(1) >= 1/2: exact
    rows.append(rng.dirichlet(np.full(30, 0.2)))
    P = np.stack(rows)
    lo, up = (np.asarray(v) for v in jac.inf_to_one_norm(P, return_bounds=True))
    exact = np.array([inf_to_one_exact(p) for p in P])
    # lower is the value of an explicit subset computed in floats: <= exact up to rounding
    assert np.all(lo <= exact * (1 + 1e-14)), (lo, exact)
    assert np.all(exact <= up * (1 + 1e-14)), (exact, up)
    assert lo[4] == up[4] and rel_err(lo[4], exact[4]) <= 1e-13  # the dominant row is exact
    # the bracket is informative: not every lower bound is already the exact value
    assert np.any(exact - lo > 1e-6), exact - lo


def test_inf_to_one_large_n_bounds_and_warning():
    n = 30
    rng = np.random.default_rng(5)
    P = np.stack([
        np.full(n, 1 / n),  # the greedy split is exactly balanced: exact
        np.concatenate([[0.6], 0.4 * rng.dirichlet(np.ones(n - 1))]),  # p_(1) >= 1/2: exact
        rng.dirichlet(np.ones(n)),
        rng.dirichlet(np.full(n, 0.05)),
    ])
    lo, up = (np.asarray(v) for v in jac.inf_to_one_norm(P, beta=2.0, return_bounds=True))
    assert np.all(lo <= up) and np.all(up <= 2.0 + 1e-15)
    assert lo[0] == pytest.approx(2.0, abs=1e-14) and up[0] == pytest.approx(2.0, abs=1e-14)
    rest = P[1, 1:].sum()
    assert lo[1] == up[1] == pytest.approx(2.0 * 4 * 0.6 * rest, rel=1e-14)
    # the lower bound is attained by a subset: it can be no better than the best split of
    # the sorted mass into prefixes... and at least the single best element
    single = 2.0 * np.max(4 * P * (1 - P), axis=-1)
    assert np.all(lo >= single - 1e-14)
    with pytest.warns(UserWarning, match="lower bound"):
        val = jac.inf_to_one_norm(P, beta=2.0)
    np.testing.assert_array_equal(val, lo)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jac.inf_to_one_norm(P[:, :24])  # exact range: no warning


def test_softmax_jacobian_matches_jacfwd():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((8, 5))
    beta = np.linspace(0.5, 4.0, 8)
    J = jac.softmax_jacobian(softmax_np(beta[:, None] * Z), beta=beta)
    auto = jax.vmap(jax.jacfwd(lambda x, b: plain_softmax(b * x)))(jnp.asarray(Z), jnp.asarray(beta))
    np.testing.assert_allclose(J, auto, atol=1e-15)


def test_topk_jacobian_matches_jacfwd_of_masked_softmax():
    rng = np.random.default_rng(1)
    z = rng.standard_normal(7)
    sel = np.zeros(7, bool)
    sel[np.argsort(-z)[:3]] = True
    beta = 2.0

    def topk(x):
        return plain_softmax(beta * jnp.where(sel, x, -jnp.inf))

    p = np.asarray(jax.jit(topk)(jnp.asarray(z)))
    auto = jax.jit(jax.jacfwd(topk))(jnp.asarray(z))
    np.testing.assert_allclose(jac.topk_jacobian(p, sel, beta=beta), auto, atol=1e-15)
    # selected zeroes round-off left outside S; p already zero outside needs no mask
    np.testing.assert_allclose(jac.topk_jacobian(p + 1e-3 * ~sel, sel, beta=beta), auto, atol=1e-15)
    np.testing.assert_allclose(jac.softmax_jacobian(p, beta=beta), auto, atol=1e-15)
    np.testing.assert_allclose(jac.topk_jacobian(p, sel.astype(int), beta=beta), auto, atol=1e-15)


def _sparsemax_np(z):
    zs = np.sort(z)[::-1]
    cs = np.cumsum(zs)
    k = np.arange(1, len(z) + 1)
    kz = k[1 + k * zs > cs][-1]
    tau = (cs[kz - 1] - 1) / kz
    return np.maximum(z - tau, 0)


def _entmax_np(z, alpha):
    # p = [(alpha-1) z - tau]_+^(1/(alpha-1)), tau by bisection on sum p = 1
    x = (alpha - 1) * z
    lo, hi = x.max() - 1.0, x.max()
    for _ in range(200):
        tau = 0.5 * (lo + hi)
        s = np.sum(np.maximum(x - tau, 0) ** (1 / (alpha - 1)))
        lo, hi = (tau, hi) if s > 1 else (lo, tau)
    p = np.maximum(x - 0.5 * (lo + hi), 0) ** (1 / (alpha - 1))
    return p / p.sum()


def _fd_jacobian(f, z, h):
    n = len(z)
    cols = [(f(z + h * e) - f(z - h * e)) / (2 * h) for e in np.eye(n)]
    return np.stack(cols, axis=1)


def test_sparsemax_and_entmax_jacobians_match_finite_differences():
    z = np.array([0.9, 0.1, 0.75, -1.0, 0.4, -0.3])
    p = _sparsemax_np(z)
    assert 2 <= np.sum(p > 0) < 6  # a genuinely sparse point, away from breakpoints
    # sparsemax is piecewise linear: central differences are exact up to round-off
    np.testing.assert_allclose(jac.sparsemax_jacobian(p), _fd_jacobian(_sparsemax_np, z, 1e-7), atol=1e-8)
    for alpha in (1.25, 1.5):
        pa = _entmax_np(z * 2, alpha)
        fd = _fd_jacobian(lambda x, a=alpha: _entmax_np(x * 2, a), z, 1e-6) / 2
        np.testing.assert_allclose(jac.entmax_jacobian(pa, alpha), fd, atol=1e-7)
    q = softmax_np(z)
    np.testing.assert_allclose(jac.entmax_jacobian(q, 1.0), jac.softmax_jacobian(q), atol=1e-15)
    np.testing.assert_array_equal(jac.entmax_jacobian(p, 2), jac.sparsemax_jacobian(p))
    Js = np.asarray(jac.sparsemax_jacobian(p))
    np.testing.assert_allclose(Js @ Js, Js, atol=1e-15)  # a projector


def test_entmax_as_softmax_reproduces_the_entmax_jacobian_and_its_norms():
    P = dirichlet_batch(31, 5, 8)
    P[:3, 3:] = 0.0  # sparse supports
    P[5, 1:] = 0.0  # support of size 1
    P /= P.sum(-1, keepdims=True)
    S = _sign_vectors(5)
    for alpha in (1.0, 1.25, 1.5, 2.0):
        q, sigma = (np.asarray(v) for v in jac.entmax_as_softmax(P, alpha))
        J = np.asarray(jac.entmax_jacobian(P, alpha))
        np.testing.assert_allclose(q.sum(-1), 1.0, rtol=1e-15)
        np.testing.assert_allclose(sigma[:, None, None] * np.stack([dense(r) for r in q]), J, atol=1e-15)
        for f, ref in [(jac.spectral_norm, np.linalg.eigvalsh(J)[:, -1]),
                       (jac.frobenius_norm, np.linalg.norm(J, axis=(1, 2))),
                       (jac.one_norm, np.abs(J).sum(1).max(-1)),
                       (jac.inf_to_one_norm, [np.abs(S @ Jr).sum(1).max() for Jr in J])]:
            np.testing.assert_allclose(sigma * np.asarray(f(q)), ref, rtol=1e-13, atol=1e-15, err_msg=(alpha, f))
    q, sigma = jac.entmax_as_softmax(np.zeros((1, 4)), 1.5)  # fully masked row: J = 0, no NaN
    assert np.all(np.asarray(q) == 0) and float(sigma[0]) == 0.0


def test_entmax_and_sparsemax_spectral_norms():
    P = dirichlet_batch(21, 5, 8)
    P[:3, 3:] = 0.0  # sparse supports
    P[5, 1:] = 0.0  # support of size 1
    P /= P.sum(-1, keepdims=True)
    for alpha in (1.0, 1.5, 2.0):
        Js = np.asarray(jac.entmax_jacobian(P, alpha))
        dense_top = np.linalg.eigvalsh(Js)[:, -1]
        got = np.asarray(jac.entmax_spectral_norm(P, alpha))
        np.testing.assert_allclose(got, dense_top, rtol=1e-12, atol=1e-14)
        s = np.where(P > 0, np.where(P > 0, P, 1) ** (2 - alpha), 0)
        assert np.all(got <= np.minimum(s.max(-1), s.sum(-1) / 2) + 1e-14)
    # alpha = 1 is diag(p) - pp^T / sum(p): softmax's matrix up to the rounding of sum(p) = 1,
    # which moves a dominated row's norm (~3e-5 here) by ~eps/3e-5 relative
    np.testing.assert_allclose(jac.entmax_spectral_norm(P, 1.0), jac.spectral_norm(P), rtol=1e-10)
    expected = (np.sum(P > 0, -1) >= 2).astype(float)
    np.testing.assert_array_equal(jac.sparsemax_spectral_norm(P), expected)
    np.testing.assert_allclose(jac.entmax_spectral_norm(P, 2.0), expected, atol=1e-14)


# --------------------------------------------------------------------------------------
# bounds, shapes, transformations, derivatives
# --------------------------------------------------------------------------------------


def test_bounds_hold_on_random_rows():
    P = ROWS[50]
    beta = 1.7
    sn = np.asarray(jac.spectral_norm(P, beta=beta))
    ps = -np.sort(-P, axis=-1)
    assert np.all(sn <= beta / 2 + 1e-15)
    assert np.all(sn >= beta * np.maximum(ps[:, 1], np.max(P * (1 - P), -1)) - 1e-15)
    assert np.all(sn <= beta * np.minimum(ps[:, 0], np.max(2 * P * (1 - P), -1)) + 1e-15)
    assert np.all(np.asarray(jac.one_norm(P, beta=beta)) <= beta / 2 + 1e-15)
    lo, up = jac.inf_to_one_norm(P, beta=beta, return_bounds=True)
    assert np.all(np.asarray(up) <= beta + 1e-14)
    fro = np.asarray(jac.frobenius_norm(P, beta=beta))
    assert np.all(sn <= fro + 1e-15)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(min_value=-30.0, max_value=30.0), min_size=5, max_size=5),
       st.floats(min_value=0.05, max_value=20.0))
def test_spectral_norm_property(z, beta):
    p = softmax_np(np.array(z))
    dense_top = beta * np.linalg.eigvalsh(dense(p))[-1]
    got = float(jac.spectral_norm(p, beta=beta))
    assert got == pytest.approx(dense_top, rel=1e-12, abs=1e-15 * beta)
    assert got <= beta / 2 * (1 + 1e-15)


def test_batched_shapes_jit_vmap_and_beta():
    flat = ROWS[5]
    P = flat.reshape(2, 4, 5)
    beta = np.array([[0.5], [2.0]])  # broadcast against the batch shape (2, 4)
    for name, f in {"spectral_norm": jac.spectral_norm, "frobenius_norm": jac.frobenius_norm,
                    "one_norm": jac.one_norm, "inf_to_one_norm": jac.inf_to_one_norm}.items():
        out = f(P, beta=beta)
        assert out.shape == (2, 4), name
        # leading axes are pure batch axes: same values as the flat (8, 5) batch, times beta
        np.testing.assert_allclose(out, beta * np.asarray(f(flat)).reshape(2, 4), rtol=1e-14, err_msg=name)
    eig = jac.eigenvalues(P, beta=beta)
    assert eig.shape == (2, 4, 5)
    np.testing.assert_allclose(eig, beta[..., None] * np.asarray(jac.eigenvalues(flat)).reshape(2, 4, 5),
                               rtol=1e-14, atol=1e-17)
    J = jac.softmax_jacobian(P, beta=beta)
    assert J.shape == (2, 4, 5, 5)
    np.testing.assert_allclose(J, beta[..., None, None] * np.stack([dense(p) for p in flat]).reshape(2, 4, 5, 5),
                               atol=1e-15)
    # jit (with a traced beta) and vmap
    sn = np.asarray(jac.spectral_norm(flat))
    np.testing.assert_allclose(jax.jit(lambda q, b: jac.spectral_norm(q, beta=b))(flat, 3.0), 3.0 * sn, rtol=1e-14)
    np.testing.assert_allclose(jax.vmap(jac.spectral_norm)(flat), sn, rtol=1e-14)
    np.testing.assert_allclose(jax.vmap(jac.inf_to_one_norm)(flat), jac.inf_to_one_norm(flat), rtol=1e-14)
    np.testing.assert_allclose(jax.jit(lambda q: jac.entmax_spectral_norm(q, 1.5))(flat),
                               jac.entmax_spectral_norm(flat, 1.5), rtol=1e-14)
    # integer input is promoted
    assert jac.spectral_norm(np.array([1, 0])).dtype == jnp.float64


def _fd(f, x, h):
    x = np.asarray(x, dtype=np.float64)
    return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(len(x))])


def test_grad_matches_finite_differences_of_dense_eigvalsh():
    # reference: central differences (h = 1e-5: truncation ~1e-10, round-off ~1e-11) of
    # numpy's dense eigensolver; ours: jax.grad through the implicit-function JVP
    rng = np.random.default_rng(2)
    Z = rng.standard_normal((3, 5))
    beta = 1.3

    def ours(z, b):
        return jac.spectral_norm(jax.nn.softmax(b * z), beta=b)

    def dense_np(z, b):
        return b * np.linalg.eigvalsh(dense(softmax_np(b * z)))[-1]

    gz, gb = jax.jit(jax.vmap(jax.grad(ours, argnums=(0, 1)), in_axes=(0, None)))(Z, beta)
    for z, gz_row, gb_row in zip(Z, np.asarray(gz), np.asarray(gb)):
        np.testing.assert_allclose(gz_row, _fd(lambda x: dense_np(x, beta), z, 1e-5), atol=1e-8)
        assert gb_row == pytest.approx((dense_np(z, beta + 1e-5) - dense_np(z, beta - 1e-5)) / 2e-5, abs=1e-8)
    # entmax norm: gradient w.r.t. p (p treated as free coordinates of the formula)
    p = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    g = np.asarray(jax.grad(lambda q: jac.entmax_spectral_norm(q, 1.5))(p))

    def dense_entmax(q):
        s = q ** 0.5
        return np.linalg.eigvalsh(np.diag(s) - np.outer(s, s) / s.sum())[-1]

    np.testing.assert_allclose(g, _fd(dense_entmax, p, 1e-6), atol=1e-8)


def test_nonfinite_and_masked_rows():
    P = ROWS[5].copy()
    P[:4] = [[0.5, np.nan, 0.5, 0, 0], [0.2, np.inf, 0, 0, 0], [0, 0, 0, 0, 0], [0.5, 0.25, 0.25, 0, 0]]
    for f in (jac.spectral_norm, jac.frobenius_norm, jac.one_norm, jac.inf_to_one_norm, jac.sparsemax_spectral_norm,
              lambda q: jac.entmax_spectral_norm(q, 1.5)):
        out = np.asarray(f(P))
        assert np.isnan(out[0]) and np.isnan(out[1])
        assert out[2] == 0.0  # fully masked row: zero, not NaN
        assert np.all(np.isfinite(out[3:])) and out[3] > 0
    eig = np.asarray(jac.eigenvalues(P))
    assert np.all(np.isnan(eig[:2])) and np.all(eig[2] == 0) and np.all(np.isfinite(eig[3:]))
    for f in (jac.softmax_jacobian, jac.sparsemax_jacobian, lambda q: jac.entmax_jacobian(q, 1.5)):
        assert np.all(np.asarray(f(P))[2] == 0)
        assert np.all(np.isnan(np.asarray(f(P))[0]))


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------

ALL_P_FUNCS = [
    jac.softmax_jacobian, jac.sparsemax_jacobian, jac.spectral_norm, jac.eigenvalues, jac.frobenius_norm,
    jac.one_norm, jac.inf_to_one_norm, jac.sparsemax_spectral_norm,
    lambda p: jac.entmax_jacobian(p, 1.5), lambda p: jac.entmax_spectral_norm(p, 1.5),
    lambda p: jac.topk_jacobian(p, np.ones(np.shape(p), bool)),
]


@pytest.mark.parametrize("f", ALL_P_FUNCS)
@pytest.mark.parametrize("bad", [np.zeros((0,)), np.zeros((3, 0)), np.zeros((0, 4))])
def test_empty_input_raises(f, bad):
    with pytest.raises(ValueError, match="p must be non-empty"):
        f(bad)


@pytest.mark.parametrize("f", ALL_P_FUNCS[:8])
def test_scalar_and_non_real_input_raise(f):
    with pytest.raises(ValueError, match="at least one dimension"):
        f(0.5)
    with pytest.raises(TypeError, match="p must be real"):
        f(np.array([0.5 + 0j, 0.5]))
    with pytest.raises(TypeError, match="p must"):
        f("abc")


@pytest.mark.parametrize("f", [jac.softmax_jacobian, jac.spectral_norm, jac.eigenvalues, jac.frobenius_norm,
                               jac.one_norm, jac.inf_to_one_norm])
@pytest.mark.parametrize("beta", [0.0, -1.0, np.inf, np.nan, np.array([1.0, -2.0])])
def test_bad_beta_raises(f, beta):
    with pytest.raises(ValueError, match="beta must be finite and > 0"):
        f(np.array([[0.5, 0.5], [0.2, 0.8]]), beta=beta)


def test_beta_shape_mismatch_raises():
    with pytest.raises(ValueError, match="beta must be a scalar or broadcastable"):
        jac.spectral_norm(np.full((2, 3), 1 / 3), beta=np.ones(5))
    # a real value out of range is a ValueError naming the range; a non-real one a TypeError
    with pytest.raises(ValueError, match=r"beta must be finite and > 0 \(in \(0, inf\)\), got -2"):
        jac.spectral_norm(np.array([0.5, 0.5]), beta=-2)
    for bad in ("hot", True, 1j):
        with pytest.raises(TypeError, match="beta must be a positive real number"):
            jac.spectral_norm(np.array([0.5, 0.5]), beta=bad)


@pytest.mark.parametrize("alpha", [0.5, 2.5, -1.0, np.nan, np.inf])
def test_bad_alpha_raises(alpha):
    p = np.array([0.6, 0.4])
    for f in (jac.entmax_jacobian, jac.entmax_spectral_norm):
        with pytest.raises(ValueError, match=r"alpha must be in \[1.0, 2.0\]"):
            f(p, alpha)


def test_traced_alpha_and_bad_selected_raise():
    with pytest.raises(TypeError, match="alpha must be a static Python number"):
        jax.jit(lambda a: jac.entmax_spectral_norm(jnp.array([0.6, 0.4]), a))(1.5)
    with pytest.raises(ValueError, match="selected must be broadcastable"):
        jac.topk_jacobian(np.array([0.6, 0.4, 0.0]), np.array([True, False]))
    with pytest.raises(TypeError, match="selected must be a boolean mask"):
        jac.topk_jacobian(np.array([0.6, 0.4, 0.0]), np.array([1.0, 1.0, 0.0]))


# the docstring examples of jacobian run in tests/test_doctests.py (with the count checked there)


# --------------------------------------------------------------------------------------
# the probability check (check_probability): p must be what a normalising map returns

P_FUNCS = {
    "softmax_jacobian": jac.softmax_jacobian,
    "topk_jacobian": lambda p, **kw: jac.topk_jacobian(p, np.ones(np.shape(p), bool), **kw),
    "sparsemax_jacobian": jac.sparsemax_jacobian,
    "entmax_jacobian": lambda p, **kw: jac.entmax_jacobian(p, 1.5, **kw),
    "spectral_norm": jac.spectral_norm,
    "eigenvalues": jac.eigenvalues,
    "entmax_spectral_norm": lambda p, **kw: jac.entmax_spectral_norm(p, 1.5, **kw),
    "entmax_spectral_bound": lambda p, **kw: jac.entmax_spectral_bound(p, 1.5, **kw),
    "entmax_as_softmax": lambda p, **kw: jac.entmax_as_softmax(p, 1.5, **kw),
    "sparsemax_spectral_norm": jac.sparsemax_spectral_norm,
    "frobenius_norm": jac.frobenius_norm,
    "one_norm": jac.one_norm,
    "inf_to_one_norm": jac.inf_to_one_norm,
}

NOT_PROBABILITY = {  # the examples: each gave a plausible number (0.0, 0.5, 1.354 > 1/2)
    "negative entry": ([1.5, -0.5], r"the row sums to 1, smallest entry -0\.5"),
    "sum above 1": ([0.5, 0.5, 0.5], r"the row sums to 1\.5, smallest entry 0\.5"),
    "logits": ([2.0, 1.0, 0.5, -3.0], r"the row sums to 0\.5, smallest entry -3"),
    "one bad row of a batch": ([[0.5, 0.5], [0.7, 0.7]], r"row \(1,\) sums to 1\.4, smallest entry 0\.7 \(1 of 2 rows"),
}


@pytest.mark.parametrize("name", P_FUNCS)
@pytest.mark.parametrize("case", NOT_PROBABILITY)
def test_non_probability_p_raises_naming_p(name, case):
    p, detail = NOT_PROBABILITY[case]
    with pytest.raises(ValueError, match=r"^p must hold probability vectors along axis -1 \(entries >= 0 summing to "
                                         r"at most 1, tolerance .*\); " + detail):
        P_FUNCS[name](np.asarray(p))


@pytest.mark.parametrize("name", P_FUNCS)
def test_probability_check_accepts_the_domain(name):
    # map outputs (float32 rounding), a one-hot, a fully masked (all-zero) row, a sub-stochastic row,
    # an entry a rounding below 0; a NaN row is not an error but gives NaN (the documented result)
    z = np.random.default_rng(4).normal(size=(3, 6)) * 3
    rows = np.concatenate([np.asarray(maps.softmax(z.astype(np.float32)), np.float64),
                           [[0, 1, 0, 0, 0, 0], [0] * 6, [0.3, 0.2, 0.1, 0, 0, 0], [0.5, 0.5, -1e-17, 0, 0, 0],
                            [0.5, np.nan, 0.5, 0, 0, 0]]])
    out = P_FUNCS[name](rows)
    for v in jax.tree_util.tree_leaves(out):
        v = np.asarray(v)
        assert np.all(np.isfinite(v[:-1])) and np.all(np.isnan(v[-1])), name
    for dtype in (np.float32, np.float16):
        P_FUNCS[name](np.asarray(maps.softmax(z.astype(dtype))))  # each dtype's own rounding passes


def test_probability_check_can_be_switched_off_and_is_skipped_when_traced():
    p = np.array([1.5, -0.5])
    # the formula's value for p outside the domain: the largest eigenvalue of diag(p) - p p^T (0 here,
    # its spectral norm is 1.5), documented
    assert float(jac.spectral_norm(p, check_probability=False)) == 0.0
    assert float(jax.jit(jac.spectral_norm)(jnp.asarray(p))) == 0.0  # traced: not checked (documented)
    np.testing.assert_allclose(np.asarray(jax.vmap(jac.frobenius_norm)(jnp.asarray(p)[None])),
                               np.asarray(jac.frobenius_norm(p[None], check_probability=False)), rtol=1e-15)
    g = jax.grad(lambda q: jac.frobenius_norm(q))(jnp.asarray(p))
    assert np.all(np.isfinite(np.asarray(g)))
    for f in P_FUNCS.values():
        assert jax.tree_util.tree_leaves(f(p, check_probability=False))
        with pytest.raises(TypeError, match=r"^check_probability must be a bool"):
            f(np.array([0.5, 0.5]), check_probability="no")


def test_topk_jacobian_checks_only_the_selected_entries():
    p = np.array([0.75, 0.25, 0.5])  # 0.5 is round-off outside S (selected zeroes it): not checked
    sel = np.array([True, True, False])
    np.testing.assert_allclose(jac.topk_jacobian(p, sel), jac.softmax_jacobian(p * sel), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"^p must hold probability vectors.*sums to 1\.25"):
        jac.topk_jacobian(np.array([0.75, 0.5, 0.0]), sel)


# eigenvalues: memory, moderate sizes, derivatives
# --------------------------------------------------------------------------------------


def _temp_bytes(fn, *shapes):
    """XLA's estimate of the temporaries of ``fn`` compiled for float64 ``shapes`` (no run)."""
    args = [jax.ShapeDtypeStruct(s, jnp.float64) for s in shapes]
    return jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


def test_eigenvalues_memory_is_linear_in_the_map_size():
    # compiled only, never run: the solver used to hold (rows, n, n) temporaries (2.8 TB by
    # this estimate for 4096 x 4096); now O(rows * n) plus a fixed block. Bound: 8 arrays of
    # the output's size plus 64 MiB, far below rows * n * n * 8 bytes (550 GB here).
    rows, n = 4096, 4096
    out_bytes = rows * n * 8
    assert _temp_bytes(jac.eigenvalues, (rows, n)) <= 8 * out_bytes + 2**26
    # reverse mode recomputes the (slots x poles) blocks instead of storing them
    rows, n = 256, 2048  # rows * n * n * 8 bytes = 8.6 GB
    grad = jax.grad(lambda z: jnp.sum(jac.eigenvalues(jax.nn.softmax(z, axis=-1)) ** 2))
    assert _temp_bytes(grad, (rows, n)) <= 32 * rows * n * 8 + 2**26


@pytest.mark.parametrize("shape", [(4, 512), (300, 40)])
def test_eigenvalues_moderate_sizes_match_eigvalsh(shape):
    # (4, 512): each row's eigenvalues in 4 chunks of 128 (a block is 2^16 poles x eigenvalues),
    # the same slot-chunked path as any n > 256; the three dense O(n^3) eigvalsh references were
    # most of the cost (n = 2048: ~15 s CPU, n = 1024: ~4 s; 8x fewer at 512);
    # (300, 40): 8 blocks of 38 rows (2^16 / 40^2 = 40, balanced), the last one padded
    rows, n = shape
    z = 3.0 * np.random.default_rng(11).standard_normal(shape)
    P = np.asarray(jax.nn.softmax(z, axis=-1))
    eigs = np.asarray(jac.eigenvalues(P))
    assert eigs.shape == shape and np.all(np.diff(eigs, axis=-1) >= 0)
    for i in (0, rows // 2, rows - 1):
        # ours: <= 4 eps p_(1) (against mpmath above); LAPACK's eigvalsh: a few eps ||J||
        ref = np.linalg.eigvalsh(dense(P[i]))
        np.testing.assert_allclose(eigs[i], ref, rtol=0, atol=16 * np.finfo(np.float64).eps * P[i].max())


def _fd_jac(f, x, h):
    """Central differences of a vector function: (len(f(x)), len(x))."""
    x = np.asarray(x, dtype=np.float64)
    cols = [(np.asarray(f(x + h * e)) - np.asarray(f(x - h * e))) / (2 * h) for e in np.eye(len(x))]
    return np.stack(cols, axis=-1)


def _separated_logits(seed, n):
    # distinct eigenvalues, well apart: entries of p at least ~0.02 apart, so the third
    # derivatives in the finite-difference truncation error stay O(10^2)
    rng = np.random.default_rng(seed)
    return np.log(np.sort(rng.permutation(np.arange(1, n + 1)) + 0.3 * rng.random(n)))


def test_eigenvalues_derivatives_match_finite_differences():
    # float64 central differences, h = 1e-5: truncation h^2/6 |f'''| <~ 1e-10 * 1e2 and round-off
    # eps |lambda| / h ~ 1e-11, so atol 1e-7 on derivatives of size ~0.1-1
    h, atol = 1e-5, 1e-7
    beta = 1.7
    Z = np.stack([_separated_logits(s, 6) for s in range(3)])

    def lam_z(z):
        return jac.eigenvalues(jax.nn.softmax(z), beta=beta)

    def lam_z_np(z):
        return beta * np.linalg.eigvalsh(dense(softmax_np(z)))

    w = np.linspace(0.5, 2.0, 6)  # a weighted sum touches every eigenvalue
    p = np.asarray(jax.nn.softmax(Z[0]))

    # every derivative in one compiled program: each separate jit/jacfwd/jacrev of the solver
    # was its own XLA compilation (~1.5-2.5 s CPU each, most of this test's cost); the
    # transformations and the values compared are the same
    @jax.jit
    def derivatives(Z, p):
        return (jax.vmap(jax.grad(lambda z: jnp.dot(w, lam_z(z))))(Z), jax.vmap(jax.jacfwd(lam_z))(Z),
                jax.vmap(jax.jacrev(lam_z))(Z), jax.jacfwd(jac.eigenvalues)(p), jax.jacrev(jac.eigenvalues)(p))

    g_rev, J_fwd, J_rev, J_p, J_p_rev = (np.asarray(v) for v in derivatives(Z, p))
    for z, g, Jf, Jr in zip(Z, g_rev, J_fwd, J_rev):
        J_ref = _fd_jac(lam_z_np, z, h)
        np.testing.assert_allclose(Jf, J_ref, atol=atol)
        np.testing.assert_allclose(Jr, J_ref, atol=atol)
        np.testing.assert_allclose(g, w @ J_ref, atol=atol)
        np.testing.assert_allclose(Jf[0], 0, atol=1e-12)  # the eigenvalue 0 stays 0 along softmax
    # p as free coordinates (off the simplex too): the root that is 0 on the simplex has the
    # derivative -sum(dp)/n (eigenvector 1); all of it against dense eigvalsh
    np.testing.assert_allclose(J_p, _fd_jac(lambda q: np.linalg.eigvalsh(dense(q)), p, h), atol=atol)
    np.testing.assert_allclose(J_p[0], -np.ones(6) / 6, atol=1e-12)
    np.testing.assert_allclose(J_p_rev, J_p, atol=1e-14)
    # and against autodiff of the dense eigensolver (valid for distinct eigenvalues)
    J_dense = jax.jacfwd(lambda q: jnp.linalg.eigvalsh(jnp.diag(q) - jnp.outer(q, q)))(p)
    np.testing.assert_allclose(J_p, J_dense, atol=1e-13)


def test_eigenvalue_derivatives_at_ties_and_zeros():
    # tie p_2 = p_3 = 0.2 (eigenvalue 0.2 once): each copy gets the group's mean dp, which is the
    # derivative along any direction that keeps the tie (dp equal on the group)
    p = np.array([0.45, 0.2, 0.2, 0.15])
    # the Jacobian and the values in one program, shared by both rows here (same shape): ~1 s CPU
    # less than two eager jacfwd and an eager call
    jac_and_values = jax.jit(lambda q: (jax.jacfwd(jac.eigenvalues)(q), jac.eigenvalues(q)))
    J, lam = (np.asarray(v) for v in jac_and_values(p))
    tie = int(np.argmin(np.abs(lam - 0.2)))
    np.testing.assert_allclose(J[tie], [0, 0.5, 0.5, 0], atol=1e-15)
    d = np.array([0.3, -0.7, -0.7, 1.1])  # keeps the tie

    def along(t):
        return np.linalg.eigvalsh(dense(p + t * d))

    fd = (along(1e-5) - along(-1e-5)) / 2e-5
    np.testing.assert_allclose(J @ d, fd, atol=1e-7)
    # a zero entry of a sub-stochastic row (eigenvalue 0, eigenvector e_k, simple here): dp_k;
    # one-sided difference (p_k < 0 is outside the domain)
    p = np.array([0.5, 0.3, 0.1, 0.0])
    J = np.asarray(jac_and_values(p)[0])
    e = np.array([0, 0, 0, 1.0])
    fwd = (np.linalg.eigvalsh(dense(p + 1e-7 * e)) - np.linalg.eigvalsh(dense(p))) / 1e-7
    np.testing.assert_allclose(J @ e, fwd, atol=1e-6)
    np.testing.assert_allclose(J[0], e, atol=1e-15)
    # gradients exist (finite) on every hard-case row, jitted and vmapped
    P = ROWS[5]
    g = jax.jit(jax.vmap(jax.grad(lambda q: jnp.sum(jac.eigenvalues(q) ** 2))))(P)
    assert np.all(np.isfinite(np.asarray(g)))


# --------------------------------------------------------------------------------------
# inf_to_one_norm: the proved bound, warnings, long rows
# --------------------------------------------------------------------------------------


def _balanced_rows_f32(n, rows, seed):
    """float32 rows with a subset of mass ~1/2: two halves that are permutations of each other."""
    rng = np.random.default_rng(seed)
    half = rng.dirichlet(np.ones(n // 2), size=rows) / 2
    return np.concatenate([half, rng.permuted(half, axis=1)], axis=1).astype(np.float32)


@pytest.mark.parametrize("n", [2, 8, 24, 30, 200, 4096])
def test_inf_to_one_float32_never_exceeds_the_proved_bound(n):
    # ||J||_{inf->1} = max_S 4 p(S)(1 - p(S)) <= 1 exactly; in float32 4P(T - P) rounded to
    # 1.0000002 on a softmax map before the clip. Adversarial: a subset of mass ~1/2 in each row.
    P = _balanced_rows_f32(n, 64, seed=n)
    z = np.random.default_rng(n).standard_normal((64, n)).astype(np.float32)
    P = np.concatenate([P, np.asarray(jax.nn.softmax(jnp.asarray(z), axis=-1))])
    assert P.dtype == np.float32
    lo, up = (np.asarray(v) for v in jac.inf_to_one_norm(P, return_bounds=True))  # lo: the default value
    assert lo.dtype == np.float32
    assert np.all(lo <= 1.0) and np.all(up <= 1.0) and np.all(lo <= up)
    assert np.all(lo[:64] >= 1.0 - 1e-5)  # the balanced rows do reach the bound
    assert np.all(np.asarray(jac.inf_to_one_norm(P, beta=2.0, return_bounds=True).upper) <= 2.0)


def test_inf_to_one_long_rows_lower_never_above_upper_float64():
    # before the clip, the greedy's separately accumulated part masses gave lower = 1 + 8e-15
    # > upper on a 4096-long softmax row
    z = 3.0 * np.random.default_rng(3).standard_normal((16, 4096))
    P = np.asarray(jax.nn.softmax(z, axis=-1))
    lo, up = (np.asarray(v) for v in jac.inf_to_one_norm(P, return_bounds=True))
    assert np.all(lo <= up) and np.all(up <= 1.0)
    assert np.all(up - lo <= P.max(axis=-1) ** 2)  # the documented gap bound
    assert np.all(lo >= 1 - 1e-12)  # spread rows: the split is essentially balanced


def test_inf_to_one_sort_free_split_brackets_the_exact_value():
    # n = 300 > 128: the sort-free split. Rows with 20 nonzeros (exact value by the integer
    # subset search over the support), skewed and spread, plus uniform rows (exact value 1).
    rng = np.random.default_rng(21)
    rows = []
    for conc in (0.05, 0.3, 1.0, 5.0, 0.3, 1.0):
        p = np.zeros(300)
        p[rng.choice(300, 20, replace=False)] = rng.dirichlet(np.full(20, conc))
        rows.append(p)
    rows.append(np.concatenate([[0.6], 0.4 * rng.dirichlet(np.ones(299))]))  # dominant: exact
    P = np.stack(rows)
    lo, up = (np.asarray(v) for v in jac.inf_to_one_norm(P, return_bounds=True))
    exact = np.array([inf_to_one_exact(p[p > 0]) for p in P[:-1]])  # 20 nonzeros each
    a, T = P[-1].max(), P[-1].sum()
    exact = np.append(exact, T * (1 - T) + 4 * a * (T - a))  # p_(1) >= T/2: S = {argmax}
    assert np.all(lo <= exact * (1 + 1e-14)) and np.all(exact <= up * (1 + 1e-14))
    assert np.all(up - lo <= P.max(axis=-1) ** 2)
    assert lo[-1] == up[-1] and rel_err(lo[-1], exact[-1]) <= 1e-13
    U = np.full((3, 300), 1 / 300)
    assert np.all(np.asarray(jac.inf_to_one_norm(U, return_bounds=True).lower) >= 1 - 1e-14)


def test_inf_to_one_long_rows_compile_without_a_sort():
    # the cost of repeated calls was XLA:CPU's sort of every row (3-8 s per 4096 x 4096 map on
    # 2 cores); the long-row split uses only elementwise passes and min/max/sum reductions
    txt = jax.jit(lambda q: jac._inf_to_one(q, False)).lower(
        jax.ShapeDtypeStruct((8, 4096), jnp.float64)).compile().as_text()
    assert " sort(" not in txt


def test_inf_to_one_warns_once_per_call_site():
    P = np.full((2, 30), 1 / 30)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(3):
            jac.inf_to_one_norm(P)  # one call site, three calls
    assert len(rec) == 1 and "lower bound" in str(rec[0].message)
    assert rec[0].filename == __file__  # attributed to the caller
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        jac.inf_to_one_norm(P)  # another call site
        jac.inf_to_one_norm(P, return_bounds=True)  # never warns
        jac.inf_to_one_norm(P[:, :24])  # exact range: never warns
    assert len(rec) == 1
    # an "error" filter raises on every call (the site is recorded only once a warning was shown)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            with pytest.raises(UserWarning, match="lower bound"):
                jac.inf_to_one_norm(P)
