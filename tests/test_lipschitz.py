"""Tests of softmax_stability.lipschitz: bounds vs dense autodiff, an independent NumPy bound,
the adversarial sqrt(n) construction, counterexamples to the one-sided Castin bound, bad input."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import pdist

from softmax_stability import lipschitz as L
from softmax_stability.attention import SSAConfig, init_attention_params, init_ssa_params


def _params(seed, d=4, heads=2, head_dim=None, wo=True, scale=1.0):
    p = init_attention_params(jax.random.PRNGKey(seed), d, heads, head_dim, use_bias=False,
                              dtype=jnp.float64)
    p["wq"] = p["wq"] * scale
    if not wo:
        del p["wo"]
    return p


# --------------------------------------------------------------------------------- measurement


@pytest.mark.parametrize("variant", L.VARIANTS)
def test_power_iteration_equals_dense_svd(variant):
    # tol 1e-13 on sigma^2 and a random start: the estimate converges to sigma_max to ~1e-7
    # relative or better; 1e-6 leaves margin for slow convergence at close singular values.
    n, d = 6, 4
    if variant == "ssa":
        cfg = SSAConfig(d, 2, use_bias=False)
        p = init_ssa_params(jax.random.PRNGKey(0), cfg, init="reproduction", dtype=jnp.float64)
        fn = L.attention_layer(p, "ssa", config=cfg)
    else:
        p = _params(0, d)
        fn = L.attention_layer(p, variant, k_top=3, window=3, block=3)
    x = 1.5 * jax.random.normal(jax.random.PRNGKey(1), (n, d), jnp.float64)
    norm, J = jax.jit(lambda y: (L.measured_lipschitz(fn, y, tol=1e-13, max_iter=3000).norm,
                                 jax.jacfwd(fn)(y)))(x)
    dense = np.linalg.svd(np.asarray(J).reshape(-1, x.size), compute_uv=False)[0]
    assert float(norm) == pytest.approx(dense, rel=1e-6)
    assert float(norm) <= dense * (1 + 1e-12)  # ||Jv|| with ||v|| = 1 never exceeds sigma_max


def _power_iteration_tolerance(sv, tol):
    """Relative error of measured_lipschitz's sigma allowed by its stop rule.

    The iterate's Rayleigh quotient s_k = ||J v_k||^2 of M = J^T J increases to lambda_1 = sigma_1^2,
    and each component beyond the first decays by rho_i = (sigma_i / sigma_1)^2 <= rho per step, so
    the remaining error is at most the last increment times rho / (1 - rho) (geometric tail); the
    loop stops when that increment is <= tol * s_k. On sigma = sqrt(s) this halves; the factor 2
    kept covers the normalisation of the iterate (1 + O(1 - pi_1) late in the iteration). 1e-13
    covers the rounding of the jvp/vjp passes and of the SVD (~(3n) eps relative)."""
    rho = min((sv[1] / sv[0]) ** 2, 1 - 1e-6)
    return tol * rho / (1 - rho) + 1e-13


@jax.jit
def _jacobian_and_measured(p, x):
    """jacfwd and measured_lipschitz (default tol) of the full layer, one program per shape: the
    parameters are an argument, so the cases with equal n share the compile."""
    fn = L.attention_layer(p, "full")
    return jax.jacfwd(fn)(x), L.measured_lipschitz(fn, x)


@pytest.mark.parametrize("n,seed,structured", [(2, 0, False), (3, 1, False), (5, 2, False), (5, 3, True)])
def test_measured_lipschitz_equals_dense_spectral_norm(n, seed, structured):
    """measured_lipschitz (power iteration with jvp/vjp, default tol 1e-10) against the dense
    ||J||_2 = numpy.linalg.norm(jax.jacfwd(layer)(x), 2), float64, within the convergence bound of
    _power_iteration_tolerance, and never above it (it is ||Jv|| for a unit v)."""
    p = _params(seed, d=3, heads=1, wo=False, scale=2.0)
    if structured:  # the Castin adversarial input: one token copied by all the others
        A, _ = L.head_matrices(p)
        x = L.adversarial_tokens(A[0], n, gap=3.0)
    else:
        x = 1.5 * jax.random.normal(jax.random.PRNGKey(seed + 10), (n, 3), jnp.float64)
    J, r = _jacobian_and_measured(p, x)
    J = np.asarray(J).reshape(-1, x.size)
    dense = np.linalg.norm(J, 2)
    sv = np.linalg.svd(J, compute_uv=False)
    assert bool(r.converged)
    rel = _power_iteration_tolerance(sv, 1e-10)
    assert dense * (1 - rel) <= float(r.norm) <= dense * (1 + 1e-13), (float(r.norm), dense, rel)


def _published_loc_lipschitz(f, y, key, index, threshold=1e-4, max_iter=100):
    """A JAX port of loc_lipschitz as published (vcastin/how-smooth-is-attention,
    adversarial_data/toolbox.py): power iteration whose "J u" is ``jvp(f, (y,), (u,))[index]`` --
    the published index is 0, the primal output f(y); 1 is the tangent J u."""
    def step(u):
        v, mu = _published_step(f, y, u, index)
        return v, float(mu)

    u = jax.random.normal(key, y.shape, y.dtype)
    u, mu = step(u / jnp.linalg.norm(u))
    mus, i = [0.0], 0
    while abs(mu - mus[-1]) > threshold and i < max_iter:
        i += 1
        mus.append(mu)
        u, mu = step(u)
    return math.sqrt(mu)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _published_step(f, y, u, index):
    """One step of the published loop, compiled once per (f, index) rather than run op by op."""
    _, vjp = jax.vjp(f, y)
    v = vjp(jax.jvp(f, (y,), (u,))[index])[0]
    return v / jnp.linalg.norm(v), jnp.vdot(u, v)


@functools.partial(jax.jit, static_argnums=0)
def _jacobian_measured_jtf(f, y):
    """(jacfwd, measured_lipschitz norm, ||J^T f(y)||) of f at y as one program: both points of
    the test below have the same shape and share it."""
    return (jax.jacfwd(f)(y), L.measured_lipschitz(f, y).norm,
            jnp.linalg.norm(jax.vjp(f, y)[1](f(y))[0]))


def test_published_loc_lipschitz_computes_sqrt_of_jt_f_not_the_norm():
    """What the docstring of measured_lipschitz says about the published code: with index [0] it
    returns sqrt(||J^T f(y)||) (0 when f(y) = 0), with [1] the spectral norm."""
    e1, e2 = np.eye(2)

    def layer(A):  # one head, V = I, logits x_i^T A x_j (their A_code is A^T)
        A = jnp.asarray(A)
        return lambda x: jax.nn.softmax(x @ A @ x.T, axis=-1) @ x

    f = layer(np.outer(e2, e1))  # their A = e_1 e_2^T
    y = jnp.array([[4.0, 0.0], [0.0, 0.0]])
    J, measured, jtf = _jacobian_measured_jtf(f, y)
    dense = np.linalg.norm(np.asarray(J).reshape(4, 4), 2)
    assert dense == pytest.approx(2 + math.sqrt(5), rel=1e-12)
    assert float(measured) == pytest.approx(dense, rel=1e-9)
    jtf = float(jtf)
    for seed in range(3):  # any start: the [0] loop never looks at u
        published = _published_loc_lipschitz(f, y, jax.random.PRNGKey(seed), 0)
        assert published == pytest.approx(math.sqrt(jtf), rel=1e-12)
        assert published == pytest.approx(3.41495, abs=1e-5)  # the notes' 3.415, not ||J||_2
        assert _published_loc_lipschitz(f, y, jax.random.PRNGKey(seed), 1) == pytest.approx(dense, rel=1e-4)
    # f(y) = 0 (tokens +-s e_1, all logits 0, output the mean 0): the published value is 0
    y0 = jnp.array([[2.0, 0.0], [-2.0, 0.0]])
    assert float(jnp.max(jnp.abs(f(y0)))) == 0.0
    assert _published_loc_lipschitz(f, y0, jax.random.PRNGKey(0), 0) == 0.0
    assert float(_jacobian_measured_jtf(f, y0)[1]) > 1.0


# ---------------------------------------------------------------------------------- the bounds


def _numpy_castin(p, x, side, include_output):
    """Independent transcription of compute_bound (vcastin/how-smooth-is-attention) with loops."""
    wq, wk, wv = (np.asarray(p[k], np.float64) for k in ("wq", "wk", "wv"))
    d, N, H = wq.shape
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    r = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            r = max(r, np.linalg.norm(x[i] - x[j]))
    total = 0.0
    for h in range(N):
        Q, K = wq[:, h, :].T, wk[:, h, :].T  # PyTorch Linear weights [H, d]: q = Q x
        A_code = K.T @ Q / np.sqrt(H)  # their A; logits q_i . k_j = x_j^T A_code x_i
        Vh = wv[:, h, :].T
        if include_output:
            Vh = np.asarray(p["wo"], np.float64)[h].T @ Vh  # [d_out, d]: x -> Wo^T Wv^T x
        rq = max(np.linalg.norm(A_code @ x[i]) for i in range(n))
        rk = max(np.linalg.norm(A_code.T @ x[i]) for i in range(n))
        R = {"query": rq, "key": rk, "max": max(rq, rk)}[side]
        total += np.linalg.norm(Vh, 2) * np.sqrt(R**2 * r**2 * (n + 1) + n)
    return total


@pytest.mark.parametrize("side", ["query", "key", "max"])
@pytest.mark.parametrize("wo", [False, True])
def test_castin_bound_matches_numpy_transcription(side, wo):
    p = _params(3, d=5, heads=2, head_dim=3, wo=wo)
    x = np.random.default_rng(4).normal(size=(7, 5)) * 2.0
    got = float(L.castin_bound(p, x, side=side))
    assert got == pytest.approx(_numpy_castin(p, x, side, wo), rel=1e-12)
    # batched input gives one bound per sequence
    xb = np.stack([x, 0.5 * x])
    got_b = np.asarray(L.castin_bound(p, xb, side=side))
    assert got_b.shape == (2,)
    assert got_b[1] == pytest.approx(_numpy_castin(p, 0.5 * x, side, wo), rel=1e-12)


def test_token_diameter_matches_scipy():
    x = np.random.default_rng(0).normal(size=(300, 3))
    assert float(L.token_diameter(x)) == pytest.approx(pdist(x).max(), rel=1e-12)


@jax.jit
def _measured_and_bounds(p, x):
    J = jax.jacfwd(lambda y: L.attention_layer(p, "full")(y))(x).reshape(-1, x.size)
    return (jnp.linalg.norm(J, ord=2), L.castin_bound(p, x, side="max"), L.derived_bound(p, x))


@pytest.mark.parametrize("seed", range(4))
def test_bounds_dominate_dense_measurement_on_random_inputs(seed):
    # weights with logit scales 0.3..5 (flat to peaked rows), tokens at scales 0.3..3, with and
    # without the output projection
    rng = np.random.default_rng(seed)
    wo = seed % 2 == 0
    p = _params(seed, d=4, heads=2, wo=wo, scale=float(10 ** rng.uniform(-0.5, 0.7)))
    for s in (0.3, 1.0, 3.0):
        x = jnp.asarray(rng.normal(size=(8, 4)) * s)
        m, castin, derived = (float(v) for v in _measured_and_bounds(p, x))
        assert m <= castin * (1 + 1e-9)
        assert m <= derived * (1 + 1e-9)


def _one_sided_counterexample(c=1.0, S=3.0, transpose=False):
    """A = c e_2 e_1^T (logits c x_i[1] x_j[0]) and tokens (-S, 0), (S, 0): R^query = 0."""
    wq = np.array([[0.0], [1.0]])[:, None, :]  # [d=2, N=1, H=1]
    wk = np.array([[c], [0.0]])[:, None, :]
    if transpose:
        wq, wk = wk, wq
    p = {"wq": jnp.asarray(wq), "wk": jnp.asarray(wk), "wv": jnp.asarray(np.eye(2)[:, None, :1])}
    x = jnp.array([[-S, 0.0], [S, 0.0]])
    return p, x


@jax.jit
def _dense_norm_and_bounds(p, x):
    """(||J||_2 dense, castin query/key/max, derived) of the full layer, one program for both
    counterexamples below (same shapes)."""
    J = jax.jacfwd(L.attention_layer(p, "full"))(x).reshape(-1, x.size)
    return (jnp.linalg.norm(J, ord=2), *(L.castin_bound(p, x, side=s) for s in ("query", "key", "max")),
            L.derived_bound(p, x))


def test_code_convention_bound_is_violated_for_nonsymmetric_A():
    # Finding: their R_h = max ||A^T x_i|| (query side) is 0 here, so the bound is sqrt(2)
    # ||V||, but moving the queries' second coordinate changes the logits by c*x_j[0] and the
    # output by c*Var(x[0]) = c S^2 = 9.
    p, x = _one_sided_counterexample()
    m, query, _, both, derived = (float(v) for v in _dense_norm_and_bounds(p, x))
    assert m >= 9.0 * (1 - 1e-9)
    assert query == pytest.approx(math.sqrt(2.0), rel=1e-12)
    assert m > 5 * query
    assert m <= both
    assert m <= derived
    # the transposed example breaks the key side in the same way
    pt, x = _one_sided_counterexample(transpose=True)
    mt, _, key, both, derived = (float(v) for v in _dense_norm_and_bounds(pt, x))
    assert mt > 5 * key
    assert mt <= both
    assert mt <= derived


# ------------------------------------------------------------------------ adversarial tokens


def _layer_scaled(p, x):
    from softmax_stability.attention import multi_head_attention

    return multi_head_attention(p, x, scale=1.0)


@functools.partial(jax.jit, static_argnums=2)
def _directional_check(p, A, n, gap):
    """(||J E|| by jvp, closed form, ||J||_2 dense) at the adversarial tokens of A."""
    Ah, Vh = L.head_matrices(p, scale=1.0)
    x = L.adversarial_tokens(A, n, gap=gap)
    u = L.adversarial_direction(A)[0]
    e = jnp.zeros_like(x).at[0].set(u)
    _, je = jax.jvp(lambda y: _layer_scaled(p, y), (x,), (e,))
    lb = L.adversarial_lower_bound(Ah[0], Vh[0], n, gap=gap)
    J = jax.jacfwd(lambda y: _layer_scaled(p, y))(x).reshape(-1, x.size)
    return jnp.linalg.norm(je), lb, jnp.linalg.norm(J, ord=2)


@pytest.mark.parametrize("diag", [(2.0, -0.1, 0.3), (0.5, -1.0, 0.2)])
def test_adversarial_lower_bound_is_the_directional_derivative(diag):
    # both token patterns (a, b) = (1, 1/2) and (-1, 1), with a non-symmetric A; the float64
    # closed form against jax.jvp (observed agreement ~1e-15 relative), and below ||J||_2
    rng = np.random.default_rng(1)
    Qo, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    skew = rng.normal(size=(3, 3))
    A = Qo @ np.diag(diag) @ Qo.T + 0.1 * (skew - skew.T)
    V = rng.normal(size=(3, 3))
    p = {"wq": jnp.asarray(A)[:, None, :], "wk": jnp.asarray(np.eye(3))[:, None, :],
         "wv": jnp.asarray(V)[:, None, :]}
    for n, gap in [(2, 0.5), (2, 12.0), (30, 3.0), (30, 12.0)]:
        jvp_norm, lb, dense = (float(v) for v in _directional_check(p, jnp.asarray(A), n, gap))
        assert jvp_norm == pytest.approx(lb, rel=1e-10)
        assert lb <= dense * (1 + 1e-10)


def test_adversarial_growth_exponent_is_one_half():
    # fixed logit gap g = ln(128) + 3 >> ln(n - 1): every query copies token 1, so
    # L(n) ~ sqrt(n - 1) ||V^T u||; the exponent between n = 8 and n = 64 must be 0.5 +- 0.08.
    p = _params(5, d=4, heads=1, wo=False)
    A, V = L.head_matrices(p)
    g = math.log(128) + 3

    @functools.partial(jax.jit, static_argnums=0)
    def run(n):
        x = L.adversarial_tokens(A[0], n, gap=g)
        m = L.measured_lipschitz(L.attention_layer(p, "full"), x, tol=1e-9, max_iter=300).norm
        u = L.adversarial_direction(A[0])[0]
        return m, L.adversarial_lower_bound(A[0], V[0], n, gap=g), jnp.linalg.norm(u @ V[0])

    ns = np.array([8, 64])
    meas, lower, vu = (np.array(v) for v in zip(*[[float(t) for t in run(int(n))] for n in ns]))
    slope = np.polyfit(np.log(ns), np.log(meas), 1)[0]
    assert 0.42 < slope < 0.58, (slope, meas)
    assert np.all(meas >= lower * (1 - 1e-7))
    assert np.all(lower >= 0.5 * np.sqrt(ns - 1) * vu)


def test_adversarial_tokens_match_castin_construction():
    A = np.diag([3.0, 1.0, -0.2])  # symmetric: both methods, positive pattern, u = e_1
    for method in ("symmetric", "castin"):
        x = np.asarray(L.adversarial_tokens(A, 4, radius=2.0, method=method))
        sign = np.sign(x[0, 0])
        np.testing.assert_allclose(sign * x, [[2, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0]], atol=1e-12)
    # gap -> radius: g = R^2 b (a - b) lambda = R^2 * 3 / 4
    x = np.asarray(L.adversarial_tokens(A, 3, gap=3.0))
    assert abs(x[0, 0]) == pytest.approx(2.0, rel=1e-12)
    # negative eigenvalue dominating (lambda_max <= -8 lambda_min): (-u, u, ..., u) on u_min
    x = np.asarray(L.adversarial_tokens(np.diag([1.0, -0.5]), 3, radius=1.0, method="castin"))
    s = np.sign(x[1, 1])
    np.testing.assert_allclose(s * x, [[0, -1], [0, 1], [0, 1]], atol=1e-12)


# ------------------------------------------------------------------------------- bad input


def test_bad_input_errors():
    p = _params(0, d=4, heads=2)
    x = np.ones((5, 4))
    with pytest.raises(ValueError, match="side"):
        L.castin_bound(p, x, side="left")
    with pytest.raises(ValueError, match="x must have shape"):
        L.castin_bound(p, np.ones(4))
    with pytest.raises(ValueError, match="width"):
        L.castin_bound(p, np.ones((5, 3)))
    with pytest.raises(ValueError, match="wk"):
        L.castin_bound({"wq": p["wq"], "wv": p["wv"]}, x)
    with pytest.raises(TypeError, match="params"):
        L.castin_bound([1, 2], x)
    with pytest.raises(ValueError, match="bq"):
        L.castin_bound(dict(p, bq=jnp.ones((2, 2))), x)
    with pytest.raises(ValueError, match="wo"):
        L.head_matrices(_params(0, wo=False), include_output=True)
    with pytest.raises(ValueError, match="scale"):
        L.derived_bound(p, x, scale=-1.0)
    with pytest.raises(TypeError, match="layer_fn"):
        L.measured_lipschitz("f", x)
    with pytest.raises(ValueError, match="one sequence"):
        L.measured_lipschitz(lambda y: y, np.ones((2, 5, 4)))
    with pytest.raises(ValueError, match="variant"):
        L.attention_layer(p, "dense")
    with pytest.raises(TypeError, match="config"):
        L.attention_layer(p, "ssa")
    with pytest.raises(ValueError, match="k_top"):
        L.attention_layer(p, "topk", k_top=0)
    with pytest.raises(ValueError, match="config"):
        L.attention_layer(p, "full", config=SSAConfig(4, 2))
    with pytest.raises(ValueError, match="square"):
        L.adversarial_direction(np.ones((2, 3)))
    with pytest.raises(ValueError, match="method"):
        L.adversarial_direction(np.eye(2), method="svd")
    with pytest.raises(ValueError, match="positive logit gap"):
        L.adversarial_direction(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="concrete"):
        jax.jit(lambda A: L.adversarial_direction(A, method="castin")[0])(jnp.eye(2))
    with pytest.raises(ValueError, match="n must be"):
        L.adversarial_tokens(np.eye(2), 1, radius=1.0)
    with pytest.raises(ValueError, match="exactly one"):
        L.adversarial_tokens(np.eye(2), 3)
    with pytest.raises(ValueError, match="exactly one"):
        L.adversarial_tokens(np.eye(2), 3, radius=1.0, gap=1.0)
    with pytest.raises(ValueError, match="radius"):
        L.adversarial_tokens(np.eye(2), 3, radius=-1.0)
    with pytest.raises(ValueError, match="V must"):
        L.adversarial_lower_bound(np.eye(2), np.ones((3, 2)), 3, gap=1.0)
    with pytest.raises(ValueError, match="x must have shape"):
        L.token_diameter(np.ones(3))


def test_float32_inputs_agree_with_float64():
    # float32 params and tokens give a float32 bound equal to the float64 one to float32 rounding
    # (a few ulps per operation on O(10) values: rel 1e-5)
    p32 = init_attention_params(jax.random.PRNGKey(0), 4, 2, use_bias=False)
    x32 = jax.random.normal(jax.random.PRNGKey(1), (6, 4), jnp.float32)
    p64 = {k: v.astype(jnp.float64) for k, v in p32.items()}
    # both bounds of one dtype in one program (run op by op, each bound's ops compiled one by one)
    for b32, b64 in zip(_castin_and_derived(p32, x32), _castin_and_derived(p64, x32.astype(jnp.float64))):
        assert b32.dtype == jnp.float32 and b64.dtype == jnp.float64
        assert float(b32) == pytest.approx(float(b64), rel=1e-5)


@jax.jit
def _castin_and_derived(p, x):
    return L.castin_bound(p, x), L.derived_bound(p, x)
