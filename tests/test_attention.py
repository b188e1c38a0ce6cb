"""Tests of softmax_stability.attention: attention core, sparse attention, SSA, parameter counts.

Every reference here is computed independently of the code under test: with
``jax.nn.dot_product_attention`` (the fused baseline), or with a dense NumPy attention written out
in this file (logits, masked softmax, weighted sum), or with integer arithmetic / mpmath for the
top-n^gamma budget. Sizes are tiny and shapes few (compilation dominates on 2 shared cores).

Tolerances: float64 comparisons of the same sums in a different order agree to ~1e-15; we use
1e-12. float32 comparisons against jax.nn.dot_product_attention use the issue's 1e-6 (outputs are
O(1), float32 eps 1.2e-7, sums of 8 terms). bfloat16 vs float32: bfloat16 has an 8-bit mantissa
(relative rounding 2^-9 per input); with O(1) outputs 5e-2 absolute leaves a ~10x margin.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads
from scipy.special import erf

from softmax_stability import attention as A
from softmax_stability import masks

B, T, N, H = 2, 8, 2, 4  # the one shape most tests use
D = 8  # model width of the layer tests


def _qkv(seed=0, dtype=jnp.float64, shape=(B, T, N, H)):
    # NumPy RNG: jax.random would compile a threefry program per shape and dtype
    q, k, v = np.random.default_rng(seed).standard_normal((3,) + shape)
    return jnp.asarray(q, dtype), jnp.asarray(k, dtype), jnp.asarray(v, dtype)


def _randn(seed, shape, dtype=jnp.float64):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def _ssa_params(cfg, init="identity", dtype=jnp.float64, **kw):
    """init_ssa_params in float32 (one compiled init per config), cast to ``dtype``."""
    p = A.init_ssa_params(jax.random.PRNGKey(0), cfg, init=init, **kw)
    return jax.tree_util.tree_map(lambda a: a.astype(dtype), p)


# ---------------------------------------------------------------------------------- references


def _dense_attention(q, k, v, *, mask=None, tq=None, tk=None, tv=None, scale=None, keep=None):
    """Dense NumPy attention in float64: logits, masked softmax, weighted sum (no JAX).

    ``mask``/``keep``: boolean [B?, N?, T, S] (True = attend); a row with nothing visible gives 0.
    """
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    if tq is not None:
        q = q * np.asarray(tq, np.float64)[..., None]
    if tk is not None:
        k = k * np.asarray(tk, np.float64)[..., None]
    if tv is not None:
        v = v * np.asarray(tv, np.float64)[..., None]
    logits = np.einsum("btnh,bsnh->bnts", q, k) * scale
    m = np.ones(logits.shape, bool)
    for extra in (mask, keep):
        if extra is not None:
            m = m & np.broadcast_to(np.asarray(extra), logits.shape)
    z = np.where(m, logits, -np.inf)
    zmax = np.max(z, axis=-1, keepdims=True)
    e = np.where(m, np.exp(z - np.where(np.isfinite(zmax), zmax, 0.0)), 0.0)
    tot = e.sum(-1, keepdims=True)
    p = np.where(tot > 0, e / np.where(tot > 0, tot, 1.0), 0.0)
    return np.einsum("bnts,bsnh->btnh", p, v), logits


def _topk_keep(logits, k, mask=None):
    """Boolean keep-set of the k largest visible logits per row (by sorting; no ties in use)."""
    z = np.where(mask, logits, -np.inf) if mask is not None else logits
    kth = -np.sort(-z, axis=-1)[..., k - 1: k]
    keep = z >= kth
    return keep if mask is None else keep & mask


def _gelu(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _sigmoid(a):
    return 1.0 / (1.0 + math.exp(-a))


def _ssa_reference(p, x, positions):
    """SSA layer written out in NumPy (docs/notes/selective_attention.md §1.2-1.4 reconstruction: sigmoid gain, weight-shared
    token part, query + value temperatures, causal, n_i = absolute position + 1)."""
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), p)
    x = np.asarray(x, np.float64)
    pos = np.asarray(positions)
    q = np.einsum("td,dnh->tnh", x, p["wq"]) + p["bq"]
    k = np.einsum("td,dnh->tnh", x, p["wk"]) + p["bk"]
    v = np.einsum("td,dnh->tnh", x, p["wv"]) + p["bv"]
    tp = p["temperature"]
    n = (pos + 1.0)[:, None]
    tau_q = 1 + _sigmoid(float(tp["query"]["alpha"])) * np.log(n) + np.tanh(
        np.einsum("tnh,nh->tn", _gelu(q), tp["query"]["u"]))
    tau_v = 1 + _sigmoid(float(tp["value"]["alpha"])) * np.log(n) + np.tanh(
        np.einsum("tnh,nh->tn", _gelu(v), tp["value"]["u"]))
    causal = pos[None, :] <= pos[:, None]
    out, _ = _dense_attention(q[None], k[None], v[None], mask=causal, tq=tau_q[None], tv=tau_v[None])
    return np.einsum("tnh,nhd->td", out[0], p["wo"]) + p["bo"]


# ---------------------------------------------------------------------------------- SSA algebra


def test_unit_temperature_ssa_equals_jax_attention_float32():
    # linear gain alpha = 0 and u = 0: tau == 1 exactly, so SSA is vanilla causal attention
    cfg = A.SSAConfig(D, N, parametrisation="linear")
    p = _ssa_params(cfg, dtype=jnp.float32)
    x = _randn(1, (B, T, D), jnp.float32)
    y = A.selective_self_attention(p, x, positions=0, config=cfg)
    proj = {c: jnp.einsum("btd,dnh->btnh", x, p["w" + c]) + p["b" + c] for c in "qkv"}
    o = jax.nn.dot_product_attention(proj["q"], proj["k"], proj["v"], is_causal=True)
    ref = jnp.einsum("btnh,nhd->btd", o, p["wo"]) + p["bo"]
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, ref, atol=1e-6, rtol=0)
    # the core with explicit unit temperatures, both implementations
    q, k, v = _qkv(dtype=jnp.float32)
    base = jax.nn.dot_product_attention(q, k, v)
    ones = jnp.ones((B, T, N), jnp.float32)
    for impl in (None, "jnp"):
        out = A.dot_product_attention(q, k, v, query_temperature=ones, value_temperature=ones,
                                      key_temperature=ones, implementation=impl)
        np.testing.assert_allclose(out, base, atol=1e-6, rtol=0)


def test_ssa_layer_matches_numpy_reference_and_temperature_is_not_trivial():
    cfg = A.SSAConfig(D, N)
    p = _ssa_params(cfg, "reproduction")
    x = _randn(3, (T, D), jnp.float64)
    y = A.selective_self_attention(p, x, positions=0, config=cfg)
    np.testing.assert_allclose(y, _ssa_reference(p, x, np.arange(T)), atol=1e-12, rtol=0)
    # the temperatures do change the output (guards against a reference that ignores them)
    plain = A.multi_head_attention(p, x, causal=True)
    assert float(jnp.max(jnp.abs(y - plain))) > 1e-3


# float64 inputs take the library path by default, float32 the fused kernel: test both
_PATHS = [pytest.param(None, jnp.float32, 2e-6, id="kernel-f32"), pytest.param("jnp", jnp.float64, 1e-12, id="jnp-f64")]


@pytest.mark.parametrize("impl,dtype,atol", _PATHS)
def test_query_temperature_is_a_row_scale_of_the_logits(impl, dtype, atol):
    q, k, v = _qkv(1, dtype=dtype)
    tau = jnp.exp(_randn(5, (B, T, N))).astype(dtype)
    out = A.dot_product_attention(q, k, v, query_temperature=tau, causal=True, implementation=impl)
    _, logits = _dense_attention(q, k, v)
    # scale row (b, n, t) of the *logits* by tau[b, t, n], then masked softmax by hand
    scaled = logits * np.transpose(np.asarray(tau), (0, 2, 1))[..., None]
    z = np.where(np.tril(np.ones((T, T), bool)), scaled, -np.inf)
    w = np.exp(z - z.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    np.testing.assert_allclose(out, np.einsum("bnts,bsnh->btnh", w, np.asarray(v, np.float64)), atol=atol, rtol=0)


@pytest.mark.parametrize("impl,dtype,atol", _PATHS)
def test_value_temperature_gates_each_keys_value(impl, dtype, atol):
    q, k, v = _qkv(2, dtype=dtype)
    nu = jnp.exp(_randn(6, (B, T, N))).astype(dtype)
    out = A.dot_product_attention(q, k, v, value_temperature=nu, implementation=impl)
    _, logits = _dense_attention(q, k, v)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    gated = np.asarray(v, np.float64) * np.asarray(nu, np.float64)[..., None]  # key j's value times nu_j
    np.testing.assert_allclose(out, np.einsum("bnts,bsnh->btnh", w, gated), atol=atol, rtol=0)
    # a value temperature -> 0 drives the output to 0, which softmax weights alone cannot do
    tiny = A.dot_product_attention(q, k, v, value_temperature=jnp.full((B, T, N), 1e-20, dtype),
                                   implementation=impl)
    assert float(jnp.max(jnp.abs(tiny))) < 1e-18


def test_key_temperature_scales_logit_columns():
    q, k, v = _qkv(3)
    kap = jnp.exp(_randn(7, (B, T, N)))
    out = A.dot_product_attention(q, k, v, key_temperature=kap)
    ref, _ = _dense_attention(q, k, v, tk=kap)
    np.testing.assert_allclose(out, ref, atol=1e-12, rtol=0)


def test_user_position_schedule_replaces_the_position_part():
    # schedule 1 + 0.5 ln n on queries and values, against the dense NumPy attention
    lin = A.SSAConfig(D, N, parametrisation="linear", token=False)
    p = _ssa_params(lin)
    x = _randn(9, (1, T, D), jnp.float64)
    y = A.selective_self_attention(p, x, positions=0, config=lin,
                                   position_schedule=lambda n: 1.0 + 0.5 * jnp.log(n))
    pn = jax.tree_util.tree_map(np.asarray, p)
    proj = {c: np.einsum("btd,dnh->btnh", np.asarray(x), pn["w" + c]) + pn["b" + c] for c in "qkv"}
    tau = np.broadcast_to((1.0 + 0.5 * np.log(np.arange(1, T + 1)))[None, :, None], (1, T, N))
    out, _ = _dense_attention(proj["q"], proj["k"], proj["v"], mask=np.tril(np.ones((T, T), bool)), tq=tau, tv=tau)
    np.testing.assert_allclose(y, np.einsum("btnh,nhd->btd", out, pn["wo"]) + pn["bo"], atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------------- chunking


def test_chunked_ssa_with_cache_equals_whole_sequence():
    cfg = A.SSAConfig(D, N)
    p = _ssa_params(cfg, "reproduction")
    x = _randn(5, (B, T, D), jnp.float64)
    whole = A.selective_self_attention(p, x, positions=0, config=cfg)
    # two chunks with the explicit cache: a static offset, then an array of absolute positions
    y1, c = A.selective_self_attention(p, x[:, :4], positions=0, config=cfg, return_cache=True)
    y2, c = A.selective_self_attention(p, x[:, 4:], positions=np.arange(4, 8), config=cfg, cache=c,
                                       return_cache=True)
    np.testing.assert_allclose(jnp.concatenate([y1, y2], axis=1), whole, atol=1e-12, rtol=0)
    assert c["k"].shape == (B, T, N, cfg.head_dim) and c["positions"].tolist() == [list(range(T))] * B
    # the temperature follows the absolute position: a sequence starting at position 5 matches
    # the NumPy reference at n_i = 6..13, and differs from the same tokens at positions 0..7
    shifted = A.selective_self_attention(p, x, positions=5, config=cfg)
    np.testing.assert_allclose(shifted[1], _ssa_reference(p, x[1], np.arange(5, 5 + T)), atol=1e-12, rtol=0)
    assert float(jnp.max(jnp.abs(shifted - whole))) > 1e-3


def test_chunked_core_with_positions_equals_whole():
    q, k, v = _qkv(4)
    for norm, kw in [("softmax", {}), ("topk", {"k_top": 3})]:
        whole = A.dot_product_attention(q, k, v, causal=True, normalizer=norm, **kw)
        tail = A.dot_product_attention(q[:, 5:], k, v, causal=True, normalizer=norm,
                                       query_positions=jnp.arange(5, T), **kw)
        np.testing.assert_allclose(tail, whole[:, 5:], atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("norm,kw,impl", [("softmax", {}, "jnp"), ("topk", {"k_top": 3}, None),
                                          ("sparsemax", {}, None)])
def test_finite_difference_gradients_core(norm, kw, impl):
    q, k, v = _qkv(5)
    tau = jnp.exp(0.3 * _randn(8, (B, T, N)))
    m = masks.band_mask(T, 5)

    def f(q, k, v, tau):
        return A.dot_product_attention(q, k, v, normalizer=norm, mask=m, query_temperature=tau,
                                       value_temperature=tau, implementation=impl, **kw)

    # float64 central differences, eps 1e-6: truncation O(eps^2), rounding O(1e-16/eps) -> 1e-8
    check_grads(f, (q, k, v, tau), order=1, modes=["rev"], eps=1e-6, atol=1e-6, rtol=1e-6)


def test_finite_difference_gradients_ssa_params():
    cfg = A.SSAConfig(D, N)
    p = _ssa_params(cfg, "reproduction")
    x = _randn(7, (T, D), jnp.float64)

    def f(temps, wq, x):
        return A.selective_self_attention(dict(p, temperature=temps, wq=wq), x, positions=3, config=cfg)

    check_grads(f, (p["temperature"], p["wq"], x), order=1, modes=["rev"], eps=1e-6, atol=1e-6, rtol=1e-6)
    # (the finite differences in alpha and u are non-zero here, so a gradient that missed the
    # temperatures would fail this check)


# ---------------------------------------------------------------------------------- sparse attention


def test_topk_with_k_equal_n_is_softmax():
    q, k, v = _qkv(6)
    full = A.dot_product_attention(q, k, v)
    for method in A.TOPK_METHODS:
        out = A.dot_product_attention(q, k, v, normalizer="topk", k_top=T, topk_method=method)
        np.testing.assert_allclose(out, full, atol=1e-12, rtol=0)


@pytest.mark.parametrize("method", A.TOPK_METHODS)
def test_topk_equals_dense_softmax_over_k_largest(method):
    q, k, v = _qkv(7)
    band = masks.band_mask(T, 6, global_tokens=0)
    _, logits = _dense_attention(q, k, v)
    for kt, m in [(1, None), (3, band)]:
        out = A.dot_product_attention(q, k, v, normalizer="topk", k_top=kt, mask=m, topk_method=method)
        ref, _ = _dense_attention(q, k, v, keep=_topk_keep(logits, kt, None if m is None else np.asarray(m)))
        np.testing.assert_allclose(out, ref, atol=1e-12, rtol=0)


def _budget_reference(n: int, gamma: float) -> int:
    if gamma == 0.5:
        return max(10, math.isqrt(n))  # exact integer square root
    with mpmath.workdps(50):
        return max(10, int(mpmath.floor(mpmath.power(n, mpmath.mpf(gamma)))))


@pytest.mark.parametrize("gamma", [0.5, 0.9, 1.0])
def test_top_n_gamma_budget(gamma):
    ns = np.arange(0, 2050)
    got = A.top_n_gamma_budget(ns, gamma)
    assert got.tolist() == [_budget_reference(int(n), gamma) for n in ns]


def test_top_n_gamma_attention_keeps_budget_largest_of_visible_keys():
    S = 24
    q, k, v = _qkv(8, shape=(1, S, N, H))
    gamma = 0.9  # budgets 10..17 over n_i = 1..24
    out = A.dot_product_attention(q, k, v, normalizer="top_n_gamma", gamma=gamma, causal=True)
    _, logits = _dense_attention(q, k, v)
    causal = np.tril(np.ones((S, S), bool))
    keep = np.zeros_like(causal, shape=logits.shape)
    for i in range(S):
        b = min(_budget_reference(i + 1, gamma), i + 1)
        keep[..., i, :] = _topk_keep(logits[..., i:i + 1, :], b, causal[i:i + 1])[..., 0, :]
    assert keep[0, 0, S - 1].sum() == 17 and keep[0, 0, 15].sum() == 12
    ref, _ = _dense_attention(q, k, v, keep=keep)
    np.testing.assert_allclose(out, ref, atol=1e-12, rtol=0)


_kth_jit = jax.jit(A.kth_largest, static_argnames="method")


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=4 * 12, max_size=4 * 12), st.lists(st.integers(1, 12), min_size=4,
                                                                                  max_size=4))
def test_kth_largest_methods_agree_with_sorting_including_ties(vals, ks):
    # few distinct integer values: many ties; -3 stands for -inf
    z = np.asarray(vals, np.float64).reshape(4, 12)
    z[z == -3] = -np.inf
    kk = np.asarray(ks, np.int32)[:, None]
    ref = -np.sort(-z, axis=-1)[np.arange(4), kk[:, 0] - 1][:, None]  # k-th largest with multiplicity
    for method in A.TOPK_METHODS:
        for dtype in (jnp.float64, jnp.float32):
            got = _kth_jit(jnp.asarray(z, dtype), jnp.asarray(kk), method=method)
            np.testing.assert_array_equal(np.asarray(got, np.float64), ref)


def test_kth_largest_scalar_k_bfloat16_and_default():
    z = jnp.asarray([[0.5, -1.0, 2.0, 2.0, 0.25], [1.0, 1.0, 1.0, 1.0, 1.0]], jnp.bfloat16)
    for method in (None,) + A.TOPK_METHODS:
        got = A.kth_largest(z, 2, method=method)
        assert got.dtype == jnp.bfloat16 and got.ravel().tolist() == [2.0, 1.0]
        assert A.kth_largest(z, 3, method=method).ravel().tolist() == [0.5, 1.0]
    # the measured CPU choice (k <= 16: k row-max passes; above: bisection) and lax.top_k elsewhere
    assert [A.default_topk_method(k, "cpu") for k in (1, 16, 17, 64)] == ["max_passes"] * 2 + ["bisect"] * 2
    assert A.default_topk_method(4, "gpu") == "top_k"


# ---------------------------------------------------------------------------------- masks


@pytest.mark.parametrize("impl,dtype,atol", _PATHS)
def test_band_block_global_masks_pass_through(impl, dtype, atol):
    q, k, v = _qkv(9, dtype=dtype)
    for m in (masks.band_mask(7, 3, global_tokens=1), masks.block_mask(8, 4), masks.block_mask(6, 3, global_tokens=2)):
        for causal in (False, True):
            out = A.dot_product_attention(q, k, v, mask=m, causal=causal, implementation=impl)
            mm = np.asarray(m) & (np.tril(np.ones((T, T), bool)) if causal else True)
            ref, _ = _dense_attention(q, k, v, mask=mm)
            np.testing.assert_allclose(out, ref, atol=atol, rtol=0)


@pytest.mark.parametrize("norm,kw,impl", [("softmax", {}, None), ("softmax", {}, "jnp"), ("topk", {"k_top": 2}, None),
                                          ("top_n_gamma", {"gamma": 0.5}, None), ("sparsemax", {}, None),
                                          ("entmax15", {}, None)])
def test_fully_masked_rows_give_zeros_and_zero_gradient(norm, kw, impl):
    q, k, v = _qkv(10, dtype=jnp.float32)  # float32: the softmax default is then the fused kernel
    m = np.ones((N, T, T), bool)
    m[0, 3] = False  # head 0, query 3 sees nothing
    m[1, :, 5:] = False

    def f(q, k, v):
        return A.dot_product_attention(q, k, v, mask=m, normalizer=norm, implementation=impl, **kw)

    out = f(q, k, v)
    assert bool(jnp.all(jnp.isfinite(out)))
    np.testing.assert_array_equal(out[:, 3, 0], 0.0)
    assert float(jnp.min(jnp.abs(out[:, 2, 0]))) > 0  # the neighbouring row is not zeroed
    if norm not in ("softmax", "topk"):
        return  # their zero-row gradients come from the maps' custom JVPs (tests/test_maps.py)
    gq, gk, gv = jax.grad(lambda *a: jnp.sum(f(*a) ** 2), argnums=(0, 1, 2))(q, k, v)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in (gq, gk, gv))
    np.testing.assert_array_equal(gq[:, 3, 0], 0.0)


# ---------------------------------------------------------------------------------- transforms, dtypes


def test_jit_vmap_grad():
    q, k, v = _qkv(11, dtype=jnp.float32)
    f = jax.jit(lambda q, k, v: A.dot_product_attention(q, k, v, normalizer="topk", k_top=3, causal=True))
    eager = A.dot_product_attention(q, k, v, normalizer="topk", k_top=3, causal=True)
    np.testing.assert_allclose(f(q, k, v), eager, atol=1e-6, rtol=0)
    # vmap over the batch axis of unbatched calls equals the batched call
    g = jax.vmap(lambda q, k, v: A.dot_product_attention(q, k, v, causal=True))
    np.testing.assert_allclose(g(q, k, v), A.dot_product_attention(q, k, v, causal=True), atol=1e-6, rtol=0)


def test_bfloat16_runs_and_is_close_to_float32():
    q, k, v = _qkv(12, dtype=jnp.float32)
    qb, kb, vb = (a.astype(jnp.bfloat16) for a in (q, k, v))
    tau = jnp.full((B, T, N), 1.5, jnp.float32)
    for norm, kw in [("softmax", {}), ("topk", {"k_top": 3})]:
        for impl in (None,):
            ref = A.dot_product_attention(qb.astype(jnp.float32), kb.astype(jnp.float32), vb.astype(jnp.float32),
                                          normalizer=norm, causal=True, query_temperature=tau,
                                          implementation=impl, **kw)
            out = A.dot_product_attention(qb, kb, vb, normalizer=norm, causal=True, query_temperature=tau,
                                          implementation=impl, **kw)
            assert out.dtype == jnp.bfloat16
            np.testing.assert_allclose(out.astype(jnp.float32), ref, atol=5e-2, rtol=0)


def test_numpy_and_integer_inputs_are_promoted():
    q = np.arange(B * T * N * H).reshape(B, T, N, H) % 3
    out = A.dot_product_attention(q, q, q)
    assert jnp.issubdtype(out.dtype, jnp.floating)
    ref, _ = _dense_attention(q, q, q)
    np.testing.assert_allclose(out, ref, atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------------- parameter counts


def _gpt2_small_parameters() -> int:
    """GPT-2 small (124M) counted tensor by tensor, as in the HF checkpoint with tied lm_head."""
    V, C, d, L = 50257, 1024, 768, 12
    wte, wpe = V * d, C * d
    ln = 2 * d
    c_attn = d * 3 * d + 3 * d
    attn_proj = d * d + d
    c_fc = d * 4 * d + 4 * d
    mlp_proj = 4 * d * d + d
    block = ln + c_attn + attn_proj + ln + c_fc + mlp_proj
    return wte + wpe + L * block + ln  # + ln_f


def test_ssa_parameter_overhead_gpt2_small_under_half_percent():
    n = _gpt2_small_parameters()
    assert n == 124_439_808
    assert A.transformer_parameter_count(vocab_size=50257, context=1024, d_model=768, num_layers=12) == n
    cfg = A.SSAConfig(768, 12)  # query + value temperatures, weight sharing
    # per layer and site: alpha (1) + u_h for 12 heads of 64 (768)
    assert A.ssa_new_parameter_count(cfg) == 2 * (1 + 768)
    share = A.ssa_parameter_overhead(cfg, num_layers=12, model_parameters=n)
    assert share == pytest.approx(12 * 2 * 769 / n, rel=1e-15)
    assert share < 0.005
    # without weight sharing the token MLP costs d*m + m + m*N per site
    unshared = A.SSAConfig(768, 12, weight_sharing=False, mlp_hidden=32)
    assert A.ssa_new_parameter_count(unshared) == 2 * (1 + 768 * 32 + 32 + 32 * 12)
    # the count matches the parameters init_ssa_params actually creates (small shape)
    small = A.SSAConfig(D, N, alpha_per_head=True)
    p = A.init_ssa_params(jax.random.PRNGKey(0), small)
    created = sum(a.size for a in jax.tree_util.tree_leaves(p["temperature"]))
    assert created == A.ssa_new_parameter_count(small)
    base = sum(a.size for k_, a in p.items() if k_ != "temperature")
    assert base == A.attention_parameter_count(small)


# ---------------------------------------------------------------------------------- bad input


def _bad_cases():
    q, k, v = (np.asarray(a) for a in _qkv(0, dtype=jnp.float32))
    f = A.dot_product_attention
    return [
        ("k", ValueError, lambda: f(q, k[:, :, :, :3], v)),  # head_dim mismatch
        ("v", ValueError, lambda: f(q, k, v[:, :5])),  # v's shape differs from k's
        ("batch", ValueError, lambda: f(q, k[:1], v[:1])),
        ("heads", ValueError, lambda: f(q, k[:, :, :1].repeat(3, 2)[:, :, :3], v[:, :, :1].repeat(3, 2)[:, :, :3])),
        ("dtype", TypeError, lambda: f(q, k.astype(np.float64), v)),
        ("dimensions", ValueError, lambda: f(q, k[0], v)),
        ("k_top", ValueError, lambda: f(q, k, v, normalizer="topk", k_top=0)),
        ("k_top", ValueError, lambda: f(q, k, v, normalizer="topk", k_top=T + 1)),
        ("k_top", ValueError, lambda: f(q, k, v, normalizer="topk")),
        ("k_top", ValueError, lambda: f(q, k, v, normalizer="topk", k_top=2.0)),
        ("gamma", ValueError, lambda: f(q, k, v, normalizer="top_n_gamma", gamma=0.0)),
        ("gamma", ValueError, lambda: f(q, k, v, normalizer="top_n_gamma", gamma=1.5)),
        ("gamma", ValueError, lambda: f(q, k, v, normalizer="top_n_gamma")),
        ("gamma", TypeError, lambda: f(q, k, v, normalizer="top_n_gamma", gamma=True)),
        ("query_positions", ValueError, lambda: f(q, k, v, causal=True, query_positions=jnp.arange(T - 1))),
        ("query_positions", TypeError, lambda: f(q, k, v, causal=True, query_positions=jnp.arange(T) * 1.0)),
        ("query_positions", ValueError, lambda: f(q[:, :3], k, v, causal=True)),
        ("query_temperature", ValueError, lambda: f(q, k, v, query_temperature=-jnp.ones((B, T, N)))),
        ("query_temperature", ValueError, lambda: f(q, k, v, query_temperature=jnp.ones((T,)))),
        ("value_temperature", ValueError, lambda: f(q, k, v, value_temperature=jnp.zeros((B, T, N)))),
        ("key_temperature", ValueError, lambda: f(q, k, v, key_temperature=jnp.full((B, T, N), jnp.nan))),
        ("mask", TypeError, lambda: f(q, k, v, mask=jnp.ones((T, T)))),
        ("mask", ValueError, lambda: f(q, k, v, mask=jnp.ones((T, T + 1), bool))),
        ("scale", ValueError, lambda: f(q, k, v, scale=-1.0)),
        ("normalizer", ValueError, lambda: f(q, k, v, normalizer="relu")),
        ("implementation", ValueError, lambda: f(q, k, v, implementation="triton")),
        ("topk_method", ValueError, lambda: f(q, k, v, normalizer="topk", k_top=2, topk_method="sort")),
        ("causal", TypeError, lambda: f(q, k, v, causal=1)),
        ("k", ValueError, lambda: A.kth_largest(jnp.ones((2, 4)), 5)),
        ("method", ValueError, lambda: A.kth_largest(jnp.ones((2, 4)), 1, method="sort")),
    ]


@functools.cache
def _layer_params(linear: bool):
    if linear:
        return _ssa_params(A.SSAConfig(D, N, parametrisation="linear", token=False), alpha=-1.0, dtype=jnp.float32)
    return _ssa_params(A.SSAConfig(D, N), dtype=jnp.float32)


def _bad_layer_cases():
    # parameters are built lazily (inside the calls): collection must not compile anything
    cfg = A.SSAConfig(D, N)
    x = np.ones((B, T, D), np.float32)
    lin = A.SSAConfig(D, N, parametrisation="linear", token=False)

    def ssa(p, *a, **kw):
        return A.selective_self_attention(_layer_params(p == "lin"), *a, **kw)

    p, pl = "ssa", "lin"
    return [
        ("positions", ValueError, lambda: ssa(p, x, positions=jnp.arange(T - 2), config=cfg)),
        ("positions", ValueError, lambda: ssa(p, x, positions=-1, config=cfg)),
        ("positions", ValueError, lambda: ssa(p, x, positions=None, config=cfg)),
        ("position_schedule", ValueError,
         lambda: ssa(p, x, positions=0, config=cfg, position_schedule=lambda n: 1.5 - jnp.log(n))),
        ("position_schedule", ValueError,
         lambda: ssa(pl, x, positions=0, config=lin, position_schedule=lambda n: jnp.zeros_like(n))),
        ("position_schedule", TypeError, lambda: ssa(p, x, positions=0, config=cfg, position_schedule=3.0)),
        ("temperature", ValueError, lambda: ssa(pl, x, positions=0, config=lin)),  # 1 - ln 8 < 0
        ("config", TypeError, lambda: ssa(p, x, positions=0, config={"d_model": D})),
        ("x", ValueError, lambda: ssa(p, np.ones((B, T, D + 1)), positions=0, config=cfg)),
        ("cache", ValueError, lambda: ssa(p, x, positions=0, config=cfg, cache={"k": 1})),
        ("d_model", ValueError, lambda: A.SSAConfig(0, 2)),
        ("num_heads", ValueError, lambda: A.SSAConfig(7, 2)),
        ("parametrisation", ValueError, lambda: A.SSAConfig(8, 2, parametrisation="tanh")),
        ("init", ValueError, lambda: A.init_ssa_params(jax.random.PRNGKey(0), cfg, init="zeros")),
        ("alpha", ValueError, lambda: A.init_ssa_params(jax.random.PRNGKey(0), cfg, alpha=math.inf)),
        ("num_layers", ValueError, lambda: A.ssa_parameter_overhead(cfg, num_layers=0)),
    ]


@pytest.mark.parametrize("case", range(len(_bad_cases()) + len(_bad_layer_cases())))
def test_bad_input_raises_naming_the_argument(case):
    name, err, call = (_bad_cases() + _bad_layer_cases())[case]
    with pytest.raises(err, match=name):
        call()


def test_bad_input_is_raised_before_tracing():
    # the eager checks run on static shapes even when the call sits inside jit
    q, k, v = _qkv(0, dtype=jnp.float32)
    with pytest.raises(ValueError, match="k_top"):
        jax.jit(lambda q: A.dot_product_attention(q, k, v, normalizer="topk", k_top=T + 1))(q)
    with pytest.raises(ValueError, match="v must"):
        jax.jit(lambda v: A.dot_product_attention(q, k, v))(v[:, :5])


# ---------------------------------------------------------------------------------- GPU
# conftest pins this process to the CPU (float32 matmuls on a GPU may use TF32, which the CPU
# tolerances above do not allow), so the GPU smoke test runs in its own process with the GPU visible.

GPU_SMOKE = r"""
import jax, jax.numpy as jnp, numpy as np
from softmax_stability import attention as A

dev = jax.devices("gpu")[0]
def randn(seed, shape):
    return jax.device_put(jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32), dev)
q, k, v = (randn(13 + i, (2, 64, 4, 64)) for i in range(3))
hi = jax.default_matmul_precision("highest")
with hi:
    base = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="xla")
    for impl in (None, "xla", "jnp"):
        out = A.dot_product_attention(q, k, v, causal=True, implementation=impl)
        np.testing.assert_allclose(out, base, atol=1e-5, rtol=0)
    for method in A.TOPK_METHODS:  # k = T: top-k is softmax
        out = A.dot_product_attention(q, k, v, normalizer="topk", k_top=64, causal=True, topk_method=method)
        np.testing.assert_allclose(out, base, atol=1e-5, rtol=0)
qb, kb, vb = (a.astype(jnp.bfloat16) for a in (q, k, v))
ref = jax.nn.dot_product_attention(qb, kb, vb, is_causal=True, implementation="xla")
m = jnp.tril(jnp.ones((64, 64), bool))
for kw in ({"causal": True}, {"mask": m}):
    out = A.dot_product_attention(qb, kb, vb, implementation="cudnn", **kw)
    np.testing.assert_allclose(out.astype(jnp.float32), ref.astype(jnp.float32), atol=5e-2, rtol=0)
cfg = A.SSAConfig(64, 4)
p = jax.device_put(A.init_ssa_params(jax.random.PRNGKey(0), cfg, init="reproduction"), dev)
x = randn(1, (2, 64, 64))
y = jax.jit(lambda p, x: A.selective_self_attention(p, x, positions=0, config=cfg))(p, x)
assert y.devices() == {dev} and bool(jnp.all(jnp.isfinite(y)))
print("gpu smoke ok on", dev.device_kind)
"""


def _gpu_env() -> dict | None:
    """The environment of a child process that sees the GPU, or None when JAX has no CUDA plugin."""
    import importlib.util
    import os

    if not any(importlib.util.find_spec(m) for m in ("jax_cuda12_plugin", "jax_cuda13_plugin")):
        return None
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    env["JAX_PLATFORMS"] = "cuda"
    return env


@pytest.mark.gpu
@pytest.mark.skipif(_gpu_env() is None, reason="no GPU (JAX has no CUDA plugin: make test DEVICE=gpu)")
def test_gpu_smoke():
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", GPU_SMOKE], env=_gpu_env(), capture_output=True,
                         text=True, timeout=600)
    if res.returncode != 0 and "Unable to initialize backend" in res.stderr:
        pytest.skip("CUDA plugin installed but no GPU visible")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "gpu smoke ok" in res.stdout


def test_token_only_temperature_stays_positive_where_tanh_rounds_to_minus_one():
    # tau = 1 + tanh f is evaluated as 2 sigmoid(2f): equal for moderate f, and still > 0 at
    # f = -30, where 1 + tanh(-30) is exactly 0 in float64
    from softmax_stability.attention import SSAConfig, init_ssa_params, ssa_temperatures

    cfg = SSAConfig(d_model=4, num_heads=1, position=False, token=True, weight_sharing=False)
    params = init_ssa_params(jax.random.PRNGKey(0), cfg, dtype=jnp.float64)
    t = params["temperature"]["query"]
    x = jnp.ones((1, 3, 4), jnp.float64)
    for f, expect in ((0.7, 1 + np.tanh(0.7)), (-30.0, 2 / (1 + np.exp(60.0)))):
        # a token MLP whose output is exactly f for every token
        t.update(w1=jnp.zeros_like(t["w1"]), b1=jnp.ones_like(t["b1"]),
                 u=jnp.full_like(t["u"], f / (t["u"].shape[0] * float(jax.nn.gelu(1.0, approximate=False)))))
        tau = ssa_temperatures(params, x, config=cfg, n_query=jnp.arange(1, 4), n_key=jnp.arange(1, 4))["query"]
        np.testing.assert_allclose(np.asarray(tau), expect, rtol=1e-12)
        assert np.all(np.asarray(tau) > 0)
