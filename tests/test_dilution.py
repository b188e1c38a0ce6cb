"""Tests for softmax_stability.dilution.

Metrics are checked against NumPy/SciPy on explicit rows; the needle closed forms against direct
softmax of explicit logit vectors and against mpmath at 50 digits (n up to 2^40); the Gaussian
quadratures against 1-D SciPy integrals (n = 2, where the expectation is over one Gaussian),
against exact values at tau = 0, and against Monte Carlo (5 standard errors, fixed seed).
"""

import math

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from scipy.special import expit

from softmax_stability import dilution as D
from softmax_stability.maps import softmax
from softmax_stability.masks import causal_mask

mpmath.mp.dps = 50


def _dirichlet(shape, seed=0, alpha=0.5):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(shape[-1], alpha), size=shape[:-1])


# ---------------------------------------------------------------------------------------------
# metrics


def test_metrics_against_numpy():
    p = _dirichlet((3, 4, 9))
    np.testing.assert_allclose(D.entropy(p), stats.entropy(p, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(D.normalized_entropy(p), stats.entropy(p, axis=-1) / np.log(9), rtol=1e-12)
    np.testing.assert_allclose(D.max_weight(p), p.max(-1), rtol=0)
    np.testing.assert_allclose(D.effective_support(p), 1 / (p**2).sum(-1), rtol=1e-12)
    srt = -np.sort(-p, axis=-1)
    for k in (1, 4, 9):
        np.testing.assert_allclose(D.topk_mass(p, k), srt[..., :k].sum(-1), rtol=1e-12)
    # other axis
    q = np.moveaxis(p, -1, 0)
    np.testing.assert_allclose(D.entropy(q, axis=0), stats.entropy(p, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(D.topk_mass(q, 3, axis=0), srt[..., :3].sum(-1), rtol=1e-12)


def test_extreme_rows():
    n = 16
    u, e = np.full(n, 1 / n), np.eye(n)[3]
    assert float(D.normalized_entropy(u)) == pytest.approx(1.0, rel=1e-14)
    assert float(D.normalized_entropy(e)) == 0.0
    assert float(D.effective_support(u)) == pytest.approx(n, rel=1e-14)
    assert float(D.effective_support(e)) == 1.0
    half = np.r_[np.full(4, 0.25), np.zeros(12)]
    assert float(D.effective_support(half)) == pytest.approx(4.0, rel=1e-14)
    assert float(D.entropy(half)) == pytest.approx(math.log(4), rel=1e-14)


def test_masks_and_fully_masked_rows():
    p = np.array([[0.5, 0.3, 0.2, 0.0], [0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4]])
    where = np.array([[True, True, True, False], [True, True, False, False], [False] * 4])
    h = np.asarray(D.entropy(p, where=where))
    assert h[0] == pytest.approx(stats.entropy([0.5, 0.3, 0.2]), rel=1e-12)
    assert h[1] == pytest.approx(-2 * 0.25 * math.log(0.25), rel=1e-12)
    ne = np.asarray(D.normalized_entropy(p, where=where))
    assert ne[0] == pytest.approx(stats.entropy([0.5, 0.3, 0.2]) / math.log(3), rel=1e-12)
    assert np.asarray(D.max_weight(p, where=where)).tolist() == [0.5, 0.25, 0.0]
    np.testing.assert_allclose(D.effective_support(p, where=where), [1 / 0.38, 8.0, 0.0], rtol=1e-12)
    np.testing.assert_allclose(D.topk_mass(p, 2, where=where), [0.8, 0.5, 0.0], rtol=1e-12)
    np.testing.assert_allclose(D.top_fraction_mass(p, 1.0, where=where), [1.0, 0.5, 0.0], rtol=1e-12)
    for f in (D.entropy, D.normalized_entropy, D.max_weight, D.effective_support):
        out = np.asarray(f(p, where=where))
        assert np.all(np.isfinite(out)) and out[2] == 0.0
    # a single visible key: normalized entropy 0 (point mass), not 0/0
    assert float(D.normalized_entropy(np.array([1.0, 0.0]), where=np.array([True, False]))) == 0.0
    # gradients at rows with zeros and at a fully masked row are finite
    for f in (D.entropy, D.effective_support, D.max_weight, lambda x, where: D.topk_mass(x, 2, where=where)):
        g = jax.grad(lambda x: jnp.sum(f(x, where=where)))(jnp.asarray(p))
        assert np.all(np.isfinite(np.asarray(g)))


def test_top_fraction_mass_ssa_statistic():
    # docs/notes/selective_attention.md §5 item 11: row i (i + 1 visible keys) sums its top max(1, floor(0.05 (i + 1))) weights
    T = 120
    z = np.random.default_rng(1).normal(size=(T, T)) * 2
    P = np.asarray(softmax(z, where=causal_mask(T)))
    got = np.asarray(D.top_fraction_mass(P, 0.05, where=causal_mask(T)))
    for i in range(T):
        k = max(1, math.floor(0.05 * (i + 1)))
        assert got[i] == pytest.approx(np.sort(P[i, :i + 1])[::-1][:k].sum(), rel=1e-12)
    assert np.all(got <= 1 + 1e-12)
    # a product that is an integer up to rounding counts as that integer: 0.29 * 100 -> 29 keys
    p = np.full(100, 0.01)
    assert float(D.top_fraction_mass(p, 0.29)) == pytest.approx(0.29, rel=1e-12)


def test_sorted_profile_causal():
    # docs/notes/selective_attention.md §5 item 10: rows sum to 1 and entries beyond index t are 0 (causal)
    T, B, H = 24, 3, 2
    z = np.random.default_rng(2).normal(size=(B, H, T, T))
    P = np.asarray(softmax(z, where=causal_mask(T)))
    prof = np.asarray(D.sorted_profile(P))
    assert prof.shape == (T, T)
    np.testing.assert_allclose(prof.sum(-1), 1.0, rtol=1e-12)
    assert np.all(prof[np.triu_indices(T, 1)] == 0.0)
    expected = (-np.sort(-P, axis=-1)).mean(axis=(0, 1))
    np.testing.assert_allclose(prof, expected, rtol=1e-12)
    assert np.all(np.diff(prof, axis=-1) <= 1e-15)  # descending


@settings(max_examples=25, deadline=None)
@given(n=st.sampled_from([1, 3, 17]), seed=st.integers(0, 10**6), alpha=st.floats(0.05, 5.0))
def test_metric_ranges(n, seed, alpha):  # few distinct shapes: compilation dominates on CPU
    p = _dirichlet((n,), seed, alpha)
    h = float(D.entropy(p))
    assert -1e-12 <= h <= math.log(n) + 1e-12
    assert 1 - 1e-9 <= float(D.effective_support(p)) <= n * (1 + 1e-9)
    assert float(D.max_weight(p)) >= 1 / n - 1e-12
    top1, topn = float(D.topk_mass(p, 1)), float(D.topk_mass(p, n))
    assert 1 / n - 1e-12 <= top1 <= topn and topn == pytest.approx(1.0, rel=1e-12)
    assert float(D.top_fraction_mass(p, 0.5)) <= topn + 1e-15


def test_jit_and_vmap():
    p = jnp.asarray(_dirichlet((5, 7)))
    np.testing.assert_allclose(jax.vmap(D.entropy)(p), D.entropy(p), rtol=1e-13)
    np.testing.assert_allclose(jax.jit(lambda x: D.topk_mass(x, 3))(p), D.topk_mass(p, 3), rtol=1e-13)
    np.testing.assert_allclose(jax.jit(lambda x: D.top_fraction_mass(x, 0.5))(p), D.topk_mass(p, 3), rtol=1e-13)


def _masked_metrics_numpy(P, W, k, fraction):
    """Every metric of one map P [T, S] under the mask W, row by row on the visible entries only."""
    rows = {name: [] for name in ("entropy", "normalized_entropy", "max_weight", "effective_support",
                                  "topk_mass", "top_fraction_mass")}
    profile = np.zeros(P.shape)
    for t in range(P.shape[0]):
        vis = P[t][W[t]]
        nv = vis.size
        srt = np.sort(vis)[::-1]
        h = float(-np.sum(vis * np.log(vis)))
        rows["entropy"].append(h)
        rows["normalized_entropy"].append(h / math.log(nv) if nv > 1 else 0.0)
        rows["max_weight"].append(float(srt[0]))
        rows["effective_support"].append(float(1 / np.sum(vis**2)))
        rows["topk_mass"].append(float(srt[:k].sum()))
        rows["top_fraction_mass"].append(float(srt[:max(1, math.floor(fraction * nv))].sum()))
        profile[t, :nv] = srt  # visible values first, descending; masked entries count as 0
    return {name: np.asarray(v) for name, v in rows.items()}, profile


def test_masked_metrics_under_jit_and_vmap():
    """An *unmasked* P (softmax over every key, so the entries above the diagonal are not 0) with a
    causal `where`: every metric, traced under jit (P and where both traced), vmapped over the batch,
    and jit(vmap) with where an unbatched traced argument, equals the eager NumPy value computed on
    the visible entries only. If the mask were ignored anywhere, the weights above the diagonal
    (about half of each row's mass) would change the value. float64, sums of <= 9 terms: rtol 1e-12.
    """
    B, T, k, f = 3, 9, 3, 0.5
    z = np.random.default_rng(5).normal(size=(B, T, T)) * 1.5
    P = np.exp(z) / np.exp(z).sum(-1, keepdims=True)  # unmasked rows
    W = causal_mask(T)
    refs = [_masked_metrics_numpy(P[b], W, k, f) for b in range(B)]
    metrics = {"entropy": D.entropy, "normalized_entropy": D.normalized_entropy, "max_weight": D.max_weight,
               "effective_support": D.effective_support,
               "topk_mass": lambda x, where: D.topk_mass(x, k, where=where),
               "top_fraction_mass": lambda x, where: D.top_fraction_mass(x, f, where=where)}
    Pj, Wj = jnp.asarray(P), jnp.asarray(W)
    for name, fn in metrics.items():
        expect = np.stack([r[0][name] for r in refs])  # [B, T]
        got_jit = jax.jit(lambda x, w, fn=fn: fn(x, where=w))(Pj, Wj)
        got_vmap = jax.vmap(lambda x, fn=fn: fn(x, where=W))(Pj)
        got_both = jax.jit(jax.vmap(lambda x, w, fn=fn: fn(x, where=w), in_axes=(0, None)))(Pj, Wj)
        for got in (got_jit, got_vmap, got_both):
            np.testing.assert_allclose(np.asarray(got), expect, rtol=1e-12, atol=0, err_msg=name)
        # the mask matters: the same metric without it differs (guards against a vacuous comparison)
        assert not np.allclose(np.asarray(fn(Pj, where=None)), expect, rtol=1e-6)
    # sorted_profile: jit (mean over the batch) and vmap (one profile per map)
    prof = np.stack([r[1] for r in refs])
    np.testing.assert_allclose(np.asarray(jax.jit(lambda x, w: D.sorted_profile(x, where=w))(Pj, Wj)),
                               prof.mean(0), rtol=1e-12, atol=1e-15)
    got = jax.jit(jax.vmap(lambda x, w: D.sorted_profile(x, where=w), in_axes=(0, None)))(Pj, Wj)
    np.testing.assert_allclose(np.asarray(got), prof, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(D.sorted_profile(P, where=W)), prof.mean(0), rtol=1e-12, atol=1e-15)
    assert np.all(np.asarray(D.sorted_profile(P))[np.triu_indices(T, 1)] > 0)  # unmasked: no zeros


def test_float32_kept():
    p = jnp.asarray(_dirichlet((4, 6)), jnp.float32)
    for f in (D.entropy, D.normalized_entropy, D.max_weight, D.effective_support):
        assert f(p).dtype == jnp.float32


@pytest.mark.parametrize("call, exc, match", [
    (lambda: D.topk_mass(np.ones(4) / 4, 0), ValueError, "k"),
    (lambda: D.topk_mass(np.ones(4) / 4, 5), ValueError, "k"),
    (lambda: D.topk_mass(np.ones(4) / 4, 2.0), ValueError, "k"),  # a non-int real: out of range
    (lambda: D.top_fraction_mass(np.ones(4) / 4, 0.0), ValueError, "fraction"),
    (lambda: D.top_fraction_mass(np.ones(4) / 4, 1.5), ValueError, "fraction"),
    (lambda: D.top_fraction_mass(np.ones(4) / 4, -0.1), ValueError, "fraction"),
    (lambda: D.top_fraction_mass(np.ones(4) / 4, float("nan")), ValueError, "fraction"),
    (lambda: D.top_fraction_mass(np.ones(4) / 4, "half"), TypeError, "fraction"),
    (lambda: D.entropy(np.ones(4), where=np.ones(4)), TypeError, "where"),
    (lambda: D.entropy(np.ones(4), where=np.ones(3, bool)), ValueError, "where"),
    (lambda: D.entropy(np.ones(4), axis=1), ValueError, "axis"),
    (lambda: D.entropy(np.float64(0.5)), ValueError, "p"),
    (lambda: D.entropy(np.ones((2, 0))), ValueError, "p"),
    (lambda: D.sorted_profile(np.ones(4)), ValueError, "P"),
    (lambda: D.entropy(np.ones(3, complex)), TypeError, "p"),
])
def test_metric_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# needle model


def _mp_needle(n, gap, beta):
    return 1 / (1 + (mpmath.mpf(n) - 1) * mpmath.exp(-mpmath.mpf(beta) * gap))


@pytest.mark.parametrize("n, gap, beta", [(1, 2.0, 1.0), (2, 0.0, 1.0), (7, -1.5, 2.0), (1000, 2.0, 3.3),
                                          (4096, 0.7, 0.2)])
def test_needle_closed_forms_vs_direct_softmax(n, gap, beta):
    z = np.asarray(D.needle_logits(n, gap))
    p = np.asarray(softmax(z, beta=beta))
    assert float(D.needle_probability(n, gap, beta)) == pytest.approx(p[0], rel=1e-13)
    assert float(D.needle_entropy(n, gap, beta)) == pytest.approx(stats.entropy(p), rel=1e-12, abs=1e-15)
    ne = stats.entropy(p) / math.log(n) if n > 1 else 0.0
    assert float(D.needle_entropy(n, gap, beta, normalized=True)) == pytest.approx(ne, rel=1e-12, abs=1e-15)
    assert float(D.needle_effective_support(n, gap, beta)) == pytest.approx(1 / (p**2).sum(), rel=1e-12)
    for k in sorted({1, min(2, n), n}):
        assert float(D.needle_topk_mass(n, gap, beta, k)) == pytest.approx(np.sort(p)[::-1][:k].sum(), rel=1e-12)
    if n > 1:
        assert float(D.needle_log_odds(n, gap, beta)) == pytest.approx(math.log(p[0] / p[1:].sum()), rel=1e-12,
                                                                       abs=1e-13)


@pytest.mark.parametrize("n", [2.0**20, 2.0**40, 2.0**60])
@pytest.mark.parametrize("gap, c, offset", [(2.0, 0.5, 1.0), (2.0, 0.3, 1.0), (1.0, 1.7, 1.0), (4.0, 0.25, 0.0),
                                            (0.5, 1.0, 0.0), (1.0, 1.2, 0.0)])
def test_needle_scheduled_vs_mpmath(n, gap, c, offset):
    beta = offset + c * mpmath.log(n)
    exact = _mp_needle(n, gap, beta)
    got = float(D.needle_probability_scheduled(n, gap, c, offset))
    assert got == pytest.approx(float(exact), rel=1e-13)
    if n <= 2.0**40:  # the generic form agrees where its log(n - 1) cancellation is harmless
        assert float(D.needle_probability(n, gap, offset + c * math.log(n))) == pytest.approx(got, rel=1e-12)
    # the signed distance to the limit, to full relative precision
    lim = 0 if c * gap < 1 else (1 if c * gap > 1 else 1 / (1 + mpmath.exp(-offset * gap)))
    assert float(D.needle_limit(gap, c, offset)) == pytest.approx(float(lim), rel=1e-15)
    err = float(D.needle_limit_error(n, gap, c, offset))
    assert err == pytest.approx(float(exact - lim), rel=1e-11)
    rate = float(D.needle_limit_rate(n, gap, c, offset))
    assert abs(err) <= rate
    if n >= 2.0**40:
        assert abs(err) >= 0.99 * rate  # the explicit rate is attained at large n


def test_needle_reference_numbers():
    # docs/notes/selective_attention.md §2.2 / §5 item 17
    for n in (256, 4096, 65536):
        assert float(D.needle_probability_scheduled(n, 2.0, 0.5)) == pytest.approx(0.8808, abs=1e-3)
    assert float(D.needle_limit(2.0, 0.5)) == pytest.approx(0.880797, abs=1e-6)
    assert float(D.needle_probability(4096, 2.0, 1.0)) == pytest.approx(0.0018, abs=5e-5)
    assert float(D.needle_probability_scheduled(4096, 2.0, 1.0)) > 0.9999
    # docs/notes/field.md §4.4 (SSMax, n = 1e5): s*gap = 0.8 / 1.0 / 1.2 -> 0.09 / 0.50 / 0.91
    for sg, ref in ((0.8, 0.09), (1.0, 0.50), (1.2, 0.91)):
        assert float(D.needle_probability_scheduled(1e5, 1.0, sg, 0.0)) == pytest.approx(ref, abs=0.01)


def test_needle_regimes_monotone_in_n():
    n = 2.0 ** np.arange(4, 41)
    below = np.asarray(D.needle_probability_scheduled(n, 2.0, 0.25))
    above = np.asarray(D.needle_probability_scheduled(n, 2.0, 0.75))
    assert np.all(np.diff(below) < 0) and below[-1] < 1e-2
    assert np.all(np.diff(above) > 0) and above[-1] > 0.99
    at = np.asarray(D.needle_limit_error(n, 2.0, 0.5))
    assert np.all(at > 0) and np.all(np.diff(at) < 0)  # approaches sigma(2) from above at rate 1/n


@pytest.mark.slow
def test_needle_direct_softmax_large_n():
    # direct float64 softmax on explicit vectors up to n = 2^22 against the closed form
    for n in (2**18, 2**22):
        for gap, c, offset in ((2.0, 0.5, 1.0), (2.0, 0.3, 1.0), (1.0, 2.0, 0.0)):
            beta = offset + c * math.log(n)
            p = np.asarray(softmax(D.needle_logits(n, gap), beta=beta))
            assert math.log(p[0] / p[1:].sum()) == pytest.approx(float(D.needle_log_odds(n, gap, beta)), abs=2e-9)


def test_dl1c_checks_every_regime_at_the_largest_n():
    """Claim DL1c compares the closed form with a direct softmax at n = 2^22 in all three regimes,
    c*gap < 1 (dilution: the needle's weight -> 0), = 1 and > 1, and passes (verify_claim, ~1 s)."""
    import softmax_stability.claims  # noqa: F401  (registers the claims)
    from softmax_stability.claims import get
    from softmax_stability.claims._verify import verify_claim

    claim = get("DL1c-needle-direct-softmax")
    big = [b for b in claim.sample(jax.random.PRNGKey(0)) if b["z"].shape[-1] == 2**22]
    cg = sorted(float(b["c"][0] * b["gap"][0]) for b in big)
    assert len(cg) == 3 and cg[0] < 1 and cg[1] == 1.0 and cg[2] > 1
    res = verify_claim(claim)
    assert res.verdict == "pass", res


@pytest.mark.parametrize("call, match", [
    (lambda: D.needle_probability(0, 1.0, 1.0), "n"),
    (lambda: D.needle_probability(-4, 1.0, 1.0), "n"),
    (lambda: D.needle_probability(np.nan, 1.0, 1.0), "n"),
    (lambda: D.needle_probability(10, 1.0, np.inf), "beta"),
    (lambda: D.needle_probability(10, np.nan, 1.0), "gap"),
    (lambda: D.needle_entropy(10, 1.0, np.nan), "beta"),
    (lambda: D.needle_topk_mass(4, 1.0, 1.0, 5), "k"),
    (lambda: D.needle_topk_mass(4, 1.0, 1.0, 0), "k"),
    (lambda: D.needle_probability_scheduled(1, 1.0, 0.5), "n"),
    (lambda: D.needle_limit_rate(16, 1.0, np.inf), "c"),
    (lambda: D.needle_limit(1.0, 0.5, np.nan), "offset"),
    (lambda: D.needle_logits(0, 1.0), "n"),
    (lambda: D.needle_logits(4, np.inf), "gap"),
])
def test_needle_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# Gaussian logits


def _n2_expectations(tau):
    """n = 2: p_1 = sigmoid(tau (z1 - z2)), z1 - z2 = sqrt(2) g, g ~ N(0, 1): 1-D integrals."""
    def expect(f):
        return integrate.quad(lambda g: f(expit(tau * math.sqrt(2) * g)) * stats.norm.pdf(g), -12, 12,
                              epsabs=1e-13, epsrel=1e-13, limit=200)[0]

    h = expect(lambda s: -(s * math.log(s) if s > 0 else 0) - ((1 - s) * math.log(1 - s) if s < 1 else 0))
    return h, expect(lambda s: s * s + (1 - s) ** 2), expect(lambda s: max(s, 1 - s))


def test_gaussian_quadrature_exact_cases():
    taus = np.array([0.3, 2.5, 6.0])  # every quadrature call here has shape (3,): one compilation
    H = np.asarray(D.gaussian_expected_entropy(2.0, taus))
    C = np.asarray(D.gaussian_expected_collision(2.0, taus))
    M = np.asarray(D.gaussian_expected_max_weight(2.0, taus))
    for i, tau in enumerate(taus):
        h, c, m = _n2_expectations(float(tau))
        assert H[i] == pytest.approx(h, abs=1e-10)
        assert C[i] == pytest.approx(c, abs=1e-10)
        assert M[i] == pytest.approx(m, abs=1e-8)
    # tau = 0: uniform weights for any n, also far beyond what Monte Carlo could reach (a scalar n
    # and three taus, as above and in the Monte Carlo test: the programs already compiled)
    for n in (1.0, 1000.0, 2.0**40):
        zero = np.zeros(3)
        np.testing.assert_allclose(D.gaussian_expected_entropy(n, zero), np.log(n), atol=1e-10)
        np.testing.assert_allclose(D.gaussian_expected_collision(n, zero), 1 / n, rtol=1e-9)
        np.testing.assert_allclose(D.gaussian_expected_max_weight(n, zero), 1 / n, rtol=1e-8)


def test_gaussian_quadrature_vs_monte_carlo():
    n, m = 1000, 4000
    taus = np.array([1.0, 3.0, 6.0])  # below, near (sqrt(2 ln n) = 3.72) and above the critical scale
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(7), (m, n), jnp.float64))
    H = np.asarray(D.gaussian_expected_entropy(float(n), taus))
    C = np.asarray(D.gaussian_expected_collision(float(n), taus))
    M = np.asarray(D.gaussian_expected_max_weight(float(n), taus))
    for i, tau in enumerate(taus):
        p = np.asarray(softmax(z, beta=float(tau)))
        for exact, sample in ((H[i], stats.entropy(p, axis=-1)), (C[i], (p**2).sum(-1)), (M[i], p.max(-1))):
            se = sample.std(ddof=1) / math.sqrt(m)
            assert abs(sample.mean() - exact) <= 5 * se, (tau, exact, sample.mean(), se)


def test_gaussian_entropy_law_and_correction():
    ns = np.array([2.0**6, 2.0**12, 2.0**20, 2.0**30])
    thetas = np.array([0.1, 0.3, 0.5, 0.7, 0.95])
    nn, th = np.meshgrid(ns, thetas, indexing="ij")
    tau = th * np.sqrt(2 * np.log(nn))
    H = np.asarray(D.gaussian_expected_entropy(nn, tau))
    asym = np.asarray(D.gaussian_entropy_asymptotic(nn, tau))
    np.testing.assert_allclose(asym, np.log(nn) - tau**2 / 2, rtol=1e-14)
    r = H - asym
    c = np.asarray(D.gaussian_entropy_correction(nn, tau))
    assert np.all(r >= 0) and np.all(r <= c + 1e-11)  # between 0 and c_n(tau), up to the quadrature error
    assert np.all(r[:, 0] / c[:, 0] > 0.99)  # and c_n is its leading term when e^{tau^2} << n
    # o(ln n) at fixed theta < 1: the relative remainder decreases with n
    assert np.all(np.diff(r / np.log(nn), axis=0) < 0)
    # frozen phase (tau above sqrt(2 ln n)): the asymptotic formula saturates at 0, the entropy stays O(1)
    big = np.array([2.0**20, 2.0**40])
    tau_f = 1.5 * np.sqrt(2 * np.log(big))
    assert np.all(np.asarray(D.gaussian_entropy_asymptotic(big, tau_f)) == 0)
    Hf = np.asarray(D.gaussian_expected_entropy(big, tau_f))
    assert np.all(Hf < 3) and np.all(Hf > 0.5)


def test_dl2_theta_range_where_correction_is_informative():
    """Claim DL2 samples only theta = tau / sqrt(2 ln n) <= 0.6, not the whole phase theta < 1:
    there its correction c_n(tau) is at most 0.19 ln n at the claim's sizes, while from theta ~ 0.72
    on c_n exceeds ln n (the entropy's whole range), a vacuous bound. 0.6 < theta < 1 is covered by
    DL2b (exact quadrature, theta up to 2) and by test_gaussian_entropy_law_and_correction."""
    import softmax_stability.claims  # noqa: F401  (registers the claims)
    from softmax_stability.claims import dilution as CD, get

    ns = np.array([n for n, _ in CD._GAUSS_SIZES], float)
    ln = np.log(ns)
    corr = lambda th: np.asarray(D.gaussian_entropy_correction(ns, th * np.sqrt(2 * ln)))  # noqa: E731
    assert np.all(corr(CD._THETA_MAX) <= 0.2 * ln)
    assert np.all(corr(0.75) > ln)
    for batch in get("DL2-gaussian-entropy").sample(jax.random.PRNGKey(0)):
        n = batch["z"].shape[-1]
        assert np.all(np.asarray(batch["tau"]) <= CD._THETA_MAX * math.sqrt(2 * math.log(n)) + 1e-12)


def test_gaussian_bad_input():
    with pytest.raises(ValueError, match="tau"):
        D.gaussian_expected_entropy(10, 25.0)
    with pytest.raises(ValueError, match="tau"):
        D.gaussian_expected_collision(10, np.nan)
    with pytest.raises(ValueError, match="n"):
        D.gaussian_expected_max_weight(0.5, 1.0)
    with pytest.raises(ValueError, match="n"):
        D.gaussian_entropy_asymptotic(0, 1.0)


# ---------------------------------------------------------------------------------------------
# bounded logits


@settings(max_examples=30, deadline=None)
@given(n=st.sampled_from([1, 7, 200]), R=st.floats(0.0, 6.0), seed=st.integers(0, 10**6))
def test_bounded_logits_interval(n, R, seed):
    z = np.random.default_rng(seed).uniform(-R, R, n)
    p = np.asarray(softmax(z))
    lo, hi = (float(v) for v in D.bounded_weight_interval(n, R))
    assert np.all(p >= lo * (1 - 1e-12)) and np.all(p <= hi * (1 + 1e-12))


def test_bounded_logits_attained():
    n, R = 4096, 1.5
    z = np.full(n, R)
    z[0] = -R
    lo, hi = (float(v) for v in D.bounded_weight_interval(n, R))
    p = np.asarray(softmax(z))
    assert p[0] / lo == pytest.approx(n / (n - 1 + math.exp(-2 * R)), rel=1e-12)
    assert p[0] / lo > 0.999
    z = -z
    p = np.asarray(softmax(z))
    assert p[0] / hi == pytest.approx(n / (math.exp(2 * R) + n - 1), rel=1e-12)


def test_bounded_bad_input():
    with pytest.raises(ValueError, match="R"):
        D.bounded_weight_interval(4, -0.1)
    with pytest.raises(ValueError, match="R"):
        D.bounded_weight_interval(4, np.inf)
    with pytest.raises(ValueError, match="n"):
        D.bounded_weight_interval(0, 1.0)


# ---------------------------------------------------------------------------------------------
# input rules: NaN/inf rows give NaN; non-probability weights raise; beta > 0

METRICS = {
    "entropy": D.entropy, "normalized_entropy": D.normalized_entropy, "max_weight": D.max_weight,
    "effective_support": D.effective_support,
    "topk_mass": lambda p, **kw: D.topk_mass(p, 2, **kw),
    "top_fraction_mass": lambda p, **kw: D.top_fraction_mass(p, 0.5, **kw),
    "sorted_profile": lambda p, **kw: D.sorted_profile(p, **kw),  # rows = queries, no batch: one row each
}


@pytest.mark.parametrize("name", METRICS)
def test_nonfinite_rows_give_nan_for_every_metric(name):
    # the row [0.2, nan, 0.3, 0.5, 0] gave 1.0297 / 0.6398 / 0.0 for three metrics, NaN for two
    p = np.array([[0.2, np.nan, 0.3, 0.5, 0.0], [0.2, np.inf, 0.3, 0.5, 0.0], [0.2, -np.inf, 0.3, 0.5, 0.0],
                  [0.2, 0.1, 0.2, 0.5, 0.0]])
    out = np.asarray(METRICS[name](p))
    assert np.all(np.isnan(out[:3])) and np.all(np.isfinite(out[3])), out
    # a NaN at a masked (invisible) position is ignored, as every masked entry
    where = np.array([True, False, True, True, True])
    out = np.asarray(METRICS[name](p[:1], where=where))
    assert np.all(np.isfinite(out)), out
    # the same under jit (run-time values: the rule does not depend on the eager check)
    got = np.asarray(jax.jit(lambda x: METRICS[name](x))(jnp.asarray(p)))
    assert np.all(np.isnan(got[:3])) and np.all(np.isfinite(got[3]))


@pytest.mark.parametrize("name", METRICS)
@pytest.mark.parametrize("bad, detail", [
    ([[1.0, 1.0, 1.0]], r"sums to 3, smallest entry 1"),  # effective_support gave 1/3
    ([[0.6, 0.6, -0.2]], r"sums to 1, smallest entry -0\.2"),
    ([[2.0, 1.0, -3.0]], r"sums to 0, smallest entry -3"),  # logits
])
def test_non_probability_weights_raise_naming_the_argument(name, bad, detail):
    arg = "P" if name == "sorted_profile" else "p"
    with pytest.raises(ValueError, match=rf"^{arg} must hold probability vectors along axis -1 .*{detail}"):
        METRICS[name](np.asarray(bad))


@pytest.mark.parametrize("name", METRICS)
def test_probability_check_uses_visible_entries_and_can_be_switched_off(name):
    f = METRICS[name]
    p = np.array([[0.6, 0.6, 0.6]])
    f(p, where=np.array([True, False, False]))  # the visible part is a sub-probability vector
    with pytest.raises(ValueError):
        f(p, where=np.array([True, True, False]))
    off = np.asarray(f(p, check_probability=False))
    np.testing.assert_allclose(np.asarray(jax.jit(f)(jnp.asarray(p))), off, rtol=1e-15)  # traced: not checked
    with pytest.raises(TypeError, match=r"^check_probability must be a bool"):
        f(p / 3, check_probability=None)


def test_effective_support_unchecked_value():
    assert float(D.effective_support(np.ones(3), check_probability=False)) == pytest.approx(1 / 3)


@pytest.mark.parametrize("fn", [D.needle_probability, D.needle_entropy, D.needle_effective_support,
                                D.needle_log_odds, lambda n, g, b: D.needle_topk_mass(n, g, b, 2)])
@pytest.mark.parametrize("beta", [-1.0, 0.0, np.nan, -np.inf, [1.0, -0.5]])
def test_needle_beta_must_be_positive(fn, beta):
    with pytest.raises(ValueError, match=r"^beta must be finite and > 0 \(in \(0, inf\)\)"):
        fn(10, 1.0, beta)
    fn(10, 1.0, 0.5)  # and a positive one is fine


def test_gaussian_tau_sign_is_immaterial():
    # z and -z have the same law, so a negative tau is the same model (documented; not an error)
    assert float(D.gaussian_expected_collision(8, -0.7)) == pytest.approx(float(D.gaussian_expected_collision(8, 0.7)),
                                                                          rel=1e-10)
