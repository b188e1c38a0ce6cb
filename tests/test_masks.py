"""Tests for softmax_stability.masks.

The band/block references below are direct transcriptions of the Semantic Focus authors' loops
(``attn_masks.mask_window`` / ``mask_block_local`` in github:rithram/spartan, see
docs/notes/semantic_focus.md §1.3), written with explicit index bounds rather than the
library's vectorised clip formula. The top-k reference is NumPy's stable sort.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from softmax_stability import maps
from softmax_stability.masks import band_mask, block_mask, causal_mask, topk_mask

# ----------------------------------------------------------------------------------------------
# references


def authors_window(n, k):
    """mask_window without CLS/global tokens: lb/ub clipped, then shifted to hold k keys."""
    m = np.zeros((n, n), bool)
    left = (k - 1) // 2
    right = k - 1 - left
    for i in range(n):
        lb = max(0, i - left)
        ub = min(i + right + 1, n)
        if lb == 0:
            ub = lb + k
        if ub == n:
            lb = ub - k
        m[i, lb:ub] = True
    return m


def authors_block_local(n, k):
    m = np.zeros((n, n), bool)
    for i in range(0, n, k):
        j = min(i + k, n)
        m[i:j, i:j] = True
    return m


def stable_topk_mask(z, k):
    """NaN first (largest), then by value descending, ties by lower index (stable sort)."""
    z = np.asarray(z, float)
    out = np.zeros(z.shape, bool)
    for idx in np.ndindex(z.shape[:-1]):
        row = z[idx]
        key = np.where(np.isnan(row), -np.inf, -row)  # -inf key sorts first
        nan_first = np.lexsort((np.arange(row.size), key, ~np.isnan(row)))  # last key is primary
        out[idx][nan_first[: min(k, row.size)]] = True
    return out


# ----------------------------------------------------------------------------------------------
# band


def test_band_in_degrees_n40_k5_exact():
    cols = band_mask(40, 5).sum(axis=0)
    assert cols.tolist() == [3, 4, 5, 6, 7] + [5] * 30 + [7, 6, 5, 4, 3]


def test_band_in_degrees_n45_k9():
    cols = band_mask(45, 9).sum(axis=0)
    assert cols.min() == 5 and cols.max() == 13  # docs/notes/semantic_focus.md §1.3
    assert np.all(cols[9:-9] == 9)
    assert cols.sum() == 45 * 9


@pytest.mark.parametrize("n", [1, 2, 3, 6, 11])
def test_band_matches_authors_loop(n):
    for k in range(1, n + 1):
        m = band_mask(n, k)
        assert m.dtype == np.bool_ and m.shape == (n, n)
        np.testing.assert_array_equal(m, authors_window(n, k))
        assert np.all(m.sum(axis=1) == k)  # every query attends to exactly k keys
        assert np.all(np.diag(m))  # ... including itself
        # contiguous windows
        for row in m:
            idx = np.flatnonzero(row)
            assert idx[-1] - idx[0] == k - 1


def test_band_interior_window_is_l_left_and_k_minus_1_minus_l_right():
    n = 20
    for k in (4, 5):
        left = (k - 1) // 2
        m = band_mask(n, k)
        i = n // 2
        assert np.flatnonzero(m[i]).tolist() == list(range(i - left, i - left + k))


# ----------------------------------------------------------------------------------------------
# block, causal


@pytest.mark.parametrize("n,k", [(10, 4), (10, 5), (7, 1), (7, 7), (5, 3)])
def test_block_matches_authors_loop(n, k):
    m = block_mask(n, k)
    np.testing.assert_array_equal(m, authors_block_local(n, k))
    assert np.array_equal(m, m.T)
    sizes = [min(k, n - b) for b in range(0, n, k) for _ in range(min(k, n - b))]
    assert m.sum(axis=1).tolist() == sizes  # last block shorter when k does not divide n


def test_block_in_degree_is_k_when_k_divides_n():
    assert np.all(block_mask(40, 5).sum(axis=0) == 5)


def test_causal():
    for n in (1, 2, 5):
        m = causal_mask(n)
        assert m.dtype == np.bool_
        np.testing.assert_array_equal(m, np.tri(n, dtype=bool))
        assert m.sum() == n * (n + 1) // 2


# ----------------------------------------------------------------------------------------------
# global tokens


@pytest.mark.parametrize("fn", [band_mask, block_mask])
@pytest.mark.parametrize("g", [1, 3])
def test_global_tokens_appended_at_end(fn, g):
    n, k = 10, 3
    base = fn(n, k)
    m = fn(n, k, global_tokens=g)
    assert m.shape == (n + g, n + g) and m.dtype == np.bool_
    np.testing.assert_array_equal(m[:n, :n], base)
    assert m[n:, :].all() and m[:, n:].all()
    # in-degrees: base in-degree + g global queries; globals are attended by all n + g
    np.testing.assert_array_equal(m.sum(axis=0)[:n], base.sum(axis=0) + g)
    assert np.all(m.sum(axis=0)[n:] == n + g)
    np.testing.assert_array_equal(fn(n, k, global_tokens=0), base)


def test_masks_plug_into_softmax():
    z = np.random.default_rng(0).normal(size=(9, 9))
    for m in (band_mask(8, 3, global_tokens=1), block_mask(8, 3, global_tokens=1), causal_mask(9)):
        p = np.asarray(maps.softmax(z, where=m))
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-14)
        assert np.all(p[~m] == 0) and np.all(p[m] > 0)


# ----------------------------------------------------------------------------------------------
# top-k


def test_topk_mask_ties_lower_index_first():
    z = jnp.asarray([[1.0, 3.0, 2.0, 3.0], [2.0, 2.0, 2.0, 2.0], [0.0, -1.0, 0.0, -1.0]])
    np.testing.assert_array_equal(
        np.asarray(topk_mask(z, 2)),
        [[False, True, False, True], [True, True, False, False], [True, False, True, False]],
    )


def test_topk_mask_special_values():
    inf, nan = np.inf, np.nan
    z = np.array([[nan, 1.0, inf, 0.0], [-inf, -inf, 0.0, -inf], [nan, nan, nan, 1.0], [inf, inf, inf, 0.0]])
    got = np.asarray(topk_mask(z, 2))
    np.testing.assert_array_equal(got, stable_topk_mask(z, 2))
    np.testing.assert_array_equal(
        got,
        [[True, False, True, False], [True, False, True, False], [True, True, False, False],
         [True, True, False, False]],
    )


def test_topk_mask_agrees_with_lax_top_k_indices():
    z = np.random.default_rng(1).integers(-3, 3, size=(6, 8)).astype(float)  # many ties
    idx = np.asarray(jax.lax.top_k(jnp.asarray(z), 3)[1])  # documented: lower index first
    ref = np.zeros(z.shape, bool)
    np.put_along_axis(ref, idx, True, axis=-1)
    np.testing.assert_array_equal(np.asarray(topk_mask(z, 3)), ref)


def test_topk_mask_k_equal_n_and_batched():
    z = np.random.default_rng(2).normal(size=(2, 3, 5))
    assert np.asarray(topk_mask(z, 5)).all()
    with pytest.raises(ValueError, match=r"^k must be in \[1, 5\], got 9"):  # k > n: the library's one k rule
        topk_mask(z, 9)
    m = np.asarray(topk_mask(z, 2))
    assert m.shape == z.shape and m.dtype == np.bool_
    np.testing.assert_array_equal(m, stable_topk_mask(z, 2))
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda u: topk_mask(u, 2))(z)), m)
    np.testing.assert_array_equal(np.asarray(jax.vmap(lambda u: topk_mask(u, 2))(z)), m)


def test_topk_mask_integer_and_float32_inputs():
    zi = np.array([[3, 1, 3, 0, 2]])
    np.testing.assert_array_equal(np.asarray(topk_mask(zi, 2)), [[True, False, True, False, False]])
    z32 = np.array([[0.5, 0.25, 0.75, 0.0, 1.0]], np.float32)
    np.testing.assert_array_equal(np.asarray(topk_mask(z32, 2)), [[False, False, True, False, True]])


@settings(max_examples=30, deadline=None)
@given(
    z=hnp.arrays(
        np.float64,
        (3, 6),
        elements=st.one_of(st.sampled_from([-1.0, 0.0, 2.0, np.inf, -np.inf, np.nan]), st.floats(-5, 5)),
    ),
    k=st.sampled_from([1, 2, 5]),
)
def test_topk_mask_matches_stable_sort(z, k):
    m = np.asarray(topk_mask(z, k))
    np.testing.assert_array_equal(m, stable_topk_mask(z, k))
    assert np.all(m.sum(-1) == k)


# ----------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("fn", [band_mask, block_mask])
@pytest.mark.parametrize(
    "kwargs,exc,name",
    [
        (dict(n=0, k=1), ValueError, "n"),
        (dict(n=-3, k=1), ValueError, "n"),
        (dict(n=4.0, k=2), ValueError, "n"),  # a float is outside the allowed set of ints
        (dict(n=4.5, k=2), ValueError, "n"),
        (dict(n=True, k=1), TypeError, "n"),
        (dict(n="4", k=2), TypeError, "n"),
        (dict(n=4, k=0), ValueError, "k"),
        (dict(n=4, k=5), ValueError, "k"),
        (dict(n=4, k=2.0), ValueError, "k"),
        (dict(n=4, k=2.5), ValueError, "k"),
        (dict(n=4, k="2"), TypeError, "k"),
        (dict(n=4, k=True), TypeError, "k"),
        (dict(n=4, k=2, global_tokens=-1), ValueError, "global_tokens"),
        (dict(n=4, k=2, global_tokens=1.0), ValueError, "global_tokens"),
        (dict(n=4, k=2, global_tokens=False), TypeError, "global_tokens"),
    ],
)
def test_band_block_bad_input(fn, kwargs, exc, name):
    kwargs = dict(kwargs)
    n, k = kwargs.pop("n"), kwargs.pop("k")
    with pytest.raises(exc, match=rf"\b{name}\b"):
        fn(n, k, **kwargs)


def test_k_error_names_allowed_range():
    with pytest.raises(ValueError, match=r"k must be in \[1, 4\], got 5"):
        band_mask(4, 5)
    with pytest.raises(ValueError, match=r"n must be >= 1, got 0"):
        block_mask(0, 1)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 4\], got 2\.5"):
        band_mask(4, 2.5)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 4\], got 1\.5"):
        topk_mask(np.ones(4), 1.5)


@pytest.mark.parametrize("n,exc", [(0, ValueError), (-1, ValueError), (3.0, ValueError), (3.5, ValueError),
                                   (True, TypeError)])
def test_causal_bad_n(n, exc):
    with pytest.raises(exc, match=r"\bn\b"):
        causal_mask(n)


@pytest.mark.parametrize("k,exc", [(0, ValueError), (-2, ValueError), (2.0, ValueError), (2.5, ValueError),
                                   (True, TypeError), ("2", TypeError)])
def test_topk_mask_bad_k(k, exc):
    with pytest.raises(exc, match=r"\bk\b"):
        topk_mask(np.ones(4), k)


def test_topk_mask_bad_z():
    with pytest.raises(ValueError, match=r"\bz\b"):
        topk_mask(np.ones(0), 1)
    with pytest.raises(ValueError, match=r"\bz\b"):
        topk_mask(np.ones((0, 3)), 1)
    with pytest.raises(ValueError, match=r"\bz\b"):
        topk_mask(np.float64(2.0), 1)
    with pytest.raises(TypeError, match=r"\bz\b"):
        topk_mask(np.array([1j, 2]), 1)
