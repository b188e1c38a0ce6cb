"""softmax_stability.topk: the one top-k selection, its two tie rules and its kernels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softmax_stability import attention as A
from softmax_stability import focus, maps, masks
from softmax_stability import topk as T

SHAPE = (4, 7)  # one shape for the property tests: one compiled program per (k, rule, method)
KS = (2, 7)


def ref_index(z, k):
    """Stable argsort of -z: exactly k per row, lowest index first at a tie (NaN-free rows)."""
    out = np.zeros(z.shape, bool)
    np.put_along_axis(out, np.argsort(-z, axis=-1, kind="stable")[..., :k], True, axis=-1)
    return out


def ref_keep(z, k):
    """Every entry >= the k-th largest value counted with multiplicity."""
    return z >= -np.sort(-z, axis=-1)[..., k - 1:k]


@pytest.mark.parametrize("z, k, index, keep", [
    ([1.0, 2.0, 2.0, 2.0], 2, [0, 1, 1, 0], [0, 1, 1, 1]),
    ([3.0, 1.0, 3.0, 3.0], 1, [1, 0, 0, 0], [1, 0, 1, 1]),
    ([5.0, 5.0, 5.0, 5.0], 3, [1, 1, 1, 0], [1, 1, 1, 1]),
    ([0.0, 4.0, 2.0, 3.0], 2, [0, 1, 0, 1], [0, 1, 0, 1]),  # no tie at the k-th: the rules agree
])
def test_both_tie_rules_on_tied_rows(z, k, index, keep):
    assert T.topk_mask(jnp.array(z), k).astype(int).tolist() == index
    assert T.topk_mask(jnp.array(z), k, ties="index").astype(int).tolist() == index
    for method in T.TOPK_METHODS:
        assert T.topk_mask(jnp.array(z), k, ties="keep", method=method).astype(int).tolist() == keep


@settings(max_examples=12, deadline=None)
@given(vals=st.lists(st.sampled_from([-2.0, -0.5, 0.0, 0.25, 1.0, 3.0, -np.inf, np.inf]),
                     min_size=SHAPE[0] * SHAPE[1], max_size=SHAPE[0] * SHAPE[1]),
       noise=st.booleans(), k=st.sampled_from(KS))
def test_every_kernel_agrees_with_sorting_on_random_and_tied_rows(vals, noise, k):
    z = np.array(vals).reshape(SHAPE)
    if noise:  # mostly distinct values
        z = z + np.random.default_rng(len(vals)).normal(size=SHAPE)  # inf + noise stays inf
    np.testing.assert_array_equal(np.asarray(T.topk_mask(z, k)), ref_index(z, k))
    want = ref_keep(z, k)
    for method in T.TOPK_METHODS:
        np.testing.assert_array_equal(np.asarray(T.topk_mask(z, k, ties="keep", method=method)), want)
    np.testing.assert_array_equal(np.asarray(T.topk_values(z, k)), np.asarray(jax.lax.top_k(z, k)[0]))
    np.testing.assert_array_equal(np.asarray(T.topk_values(z, k)), -np.sort(-z, axis=-1)[..., :k])


def test_callers_use_the_stated_rules():
    z = jnp.array([[1.0, 2.0, 2.0, 2.0, 0.0]])
    assert masks.topk_mask(z, 2).tolist() == T.topk_mask(z, 2, ties="index").tolist()
    assert np.count_nonzero(maps.topk_softmax(z, 2)) == 2  # index rule: exactly k
    q = jnp.ones((1, 1, 1, 1))
    kk = z.reshape(1, 5, 1, 1)
    v = jnp.array([0.0, 1.0, 10.0, 100.0, 1000.0]).reshape(1, 5, 1, 1)
    out = A.dot_product_attention(q, kk, v, normalizer="topk", k_top=2, implementation="jnp")
    np.testing.assert_allclose(float(out[0, 0, 0, 0]), 37.0, rtol=1e-12)  # keep rule: keys 1-3 tie


def test_nan_and_inf_rows():
    nan, inf = jnp.nan, jnp.inf
    z = jnp.array([[1.0, nan, 3.0, inf], [nan, nan, nan, 0.0], [-inf, -inf, 2.0, -inf]])
    # index: NaN above +inf, NaNs among themselves by index
    assert T.topk_mask(z, 2).astype(int).tolist() == [[0, 1, 0, 1], [1, 1, 0, 0], [1, 0, 1, 0]]
    # keep: NaN counts as +inf (ties with it); -inf is a value like any other
    for method in T.TOPK_METHODS:
        got = T.topk_mask(z, 2, ties="keep", method=method).astype(int).tolist()
        assert got == [[0, 1, 0, 1], [1, 1, 1, 0], [1, 1, 1, 1]], method
    v = np.asarray(T.topk_values(z, 2))
    assert np.isnan(v[0, 0]) and v[0, 1] == np.inf and v[2].tolist() == [2.0, -np.inf]


def test_nan_logit_makes_its_topk_attention_row_nan_for_every_method():
    q = jnp.ones((1, 4, 1, 2))
    kk = jnp.array([[1.0, 0.0], [jnp.nan, 0.0], [2.0, 0.0], [3.0, 0.0]])[None, :, None]
    v = jnp.arange(8.0).reshape(1, 4, 1, 2)
    for method in T.TOPK_METHODS:
        out = A.dot_product_attention(q, kk, v, normalizer="topk", k_top=2, topk_method=method)
        assert np.all(np.isnan(np.asarray(out))), method


def test_where_masks_keys_out_and_fully_masked_rows_select_nothing():
    z = jnp.array([[5.0, -jnp.inf, 1.0, -jnp.inf], [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]])
    w = jnp.array([[False, True, False, True], [False, False, False, False], [True, False, True, True]])
    for ties in T.TIES:
        got = T.topk_mask(z, 2, ties=ties, where=w).astype(int).tolist()
        # row 0: the attended -inf keys, not the masked 5 and 1; row 1: nothing; row 2: ties
        assert got[:2] == [[0, 1, 0, 1], [0, 0, 0, 0]]
        assert got[2] == ([1, 0, 1, 0] if ties == "index" else [1, 0, 1, 1])
    assert np.asarray(T.topk_values(z, 2, where=w))[1].tolist() == [-np.inf, -np.inf]
    # focus.topk_in_degree: each query contributes min(k, #attended) keys, also with attended -inf
    assert int(jnp.sum(focus.topk_in_degree(z[:1], 2, where=w[:1]))) == 2


def test_integer_input_is_promoted():
    zi = np.array([[1, 3, 3, 0]], dtype=np.int32)
    assert T.topk_mask(zi, 1).astype(int).tolist() == [[0, 1, 0, 0]]
    assert T.topk_mask(zi, 1, ties="keep").astype(int).tolist() == [[0, 1, 1, 0]]
    out = T.topk_values(zi, 2)
    assert jnp.issubdtype(out.dtype, jnp.floating) and out.tolist() == [[3.0, 3.0]]


def test_jit_and_vmap():
    z = jnp.array([[1.0, 2.0, 2.0, 0.0], [4.0, 4.0, 1.0, 4.0]])
    keep = [[0, 1, 1, 0], [1, 1, 0, 1]]
    assert jax.jit(lambda x: T.topk_mask(x, 2, ties="keep"))(z).astype(int).tolist() == keep
    assert jax.vmap(lambda x: T.topk_mask(x, 2))(z).astype(int).tolist() == [[0, 1, 1, 0], [1, 1, 0, 0]]
    g = jax.grad(lambda x: jnp.sum(T.topk_values(x, 1)))(jnp.array([1.0, 3.0, 2.0]))
    assert g.tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("call, err, words", [
    (lambda: T.topk_mask(jnp.ones((2, 4)), 5), ValueError, "k must be in [1, 4]"),
    (lambda: T.topk_mask(jnp.ones((2, 4)), 0, ties="keep"), ValueError, "k must be in [1, 4]"),
    (lambda: T.topk_mask(jnp.ones(4), 2.0), ValueError, "k must be an integer"),
    (lambda: T.topk_mask(jnp.ones(4), True), TypeError, "k must be an int"),
    (lambda: T.topk_mask(jnp.ones(4), "2"), TypeError, "k must be an int"),
    (lambda: jax.jit(T.topk_mask)(jnp.ones(4), 2), TypeError, "k must be a static Python int"),
    (lambda: T.topk_values(jnp.ones(4), 5), ValueError, "k must be in [1, 4]"),
    (lambda: T.topk_values(jnp.ones(4), None), TypeError, "k must be an int"),
    (lambda: T.topk_mask(jnp.ones(4), 2, ties="first"), ValueError, "ties must be one of"),
    (lambda: T.topk_mask(jnp.ones(4), 2, method="bisect"), ValueError, "method is only used with ties='keep'"),
    (lambda: T.topk_mask(jnp.ones(4), 2, ties="keep", method="sort"), ValueError, "method must be one of"),
    (lambda: T.topk_mask(jnp.ones(4), 2, where=jnp.ones(4)), TypeError, "where must be a boolean array"),
    (lambda: T.topk_mask(jnp.ones(4), 2, where=jnp.ones(3, bool)), ValueError, "where must be broadcastable"),
    (lambda: T.topk_mask(jnp.ones((2, 0)), 1), ValueError, "z must be non-empty"),
    (lambda: T.topk_mask(jnp.array([1 + 1j, 2]), 1), TypeError, "z must be real"),
    (lambda: T.topk_values("abc", 1), TypeError, "z must"),
])
def test_bad_input_names_the_argument(call, err, words):
    with pytest.raises(err, match=None) as info:
        call()
    assert words in str(info.value)
