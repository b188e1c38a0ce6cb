"""The fused-hash dropout: the hash is JAX's Threefry-2x32, the masks have the stated rate, are
independent within a hash and across rows, and do not depend on how a batch is split."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry_2x32

from softmax_stability.experiments import dropout as D


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_hash_is_jax_threefry_bit_for_bit(seed):
    key = jax.random.PRNGKey(seed)
    rng = np.random.default_rng(seed)
    c = jnp.asarray(rng.integers(0, 2**32, size=2 * 999, dtype=np.uint64).astype(np.uint32))
    a, b = D.threefry2x32(key[0], key[1], c[:999], c[999:])
    np.testing.assert_array_equal(np.concatenate([a, b]), np.asarray(threefry_2x32(key, c)))


def test_hash_typed_key_same_as_raw_key():
    k = jax.random.key(7)
    m1 = D.keep_mask(k, (5, 33), 0.3)
    m2 = D.keep_mask(jax.random.key_data(k), (5, 33), 0.3)
    np.testing.assert_array_equal(m1, m2)


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.5, 0.9])
def test_drop_fraction_matches_effective_rate(rate):
    # 2^20 Bernoulli draws: the fraction is within 5 standard deviations (two-sided
    # probability of a false failure < 1e-6)
    m = D.keep_mask(jax.random.PRNGKey(3), (1024, 1024), rate)
    p = D.effective_rate(rate)
    assert abs(p - rate) <= 2.0**-17
    frac = 1.0 - float(jnp.mean(m))
    sd = np.sqrt(p * (1 - p) / m.size)
    assert abs(frac - p) < 5 * sd, (frac, p, sd)


def test_decisions_within_one_hash_and_across_rows_are_independent():
    # the four 16-bit slices of one hash decide elements 4g..4g+3; neighbouring rows use
    # neighbouring counters. At rate 1/2 each pair must be dropped together a quarter of the time.
    m = ~np.asarray(D.keep_mask(jax.random.PRNGKey(11), (512, 2048), 0.5))
    p = D.effective_rate(0.5)
    pairs = {"slices 0,1": (m[:, 0::4], m[:, 1::4]), "slices 1,2": (m[:, 1::4], m[:, 2::4]),
             "slices 2,3": (m[:, 2::4], m[:, 3::4]), "next hash": (m[:, 3::4][:, :-1], m[:, 4::4]),
             "next row": (m[:-1], m[1:])}
    for name, (a, b) in pairs.items():
        both = float(np.mean(a & b))
        sd = np.sqrt(p * p * (1 - p * p) / a.size)
        assert abs(both - p * p) < 5 * sd, (name, both)


def test_mask_of_a_split_batch_is_the_mask_of_the_whole_batch():
    key = jax.random.PRNGKey(5)
    whole = D.keep_mask(key, (26, 40, 64), 0.2)
    halves = [D.keep_mask(key, (13, 40, 64), 0.2, row_offset=o) for o in (0, 13)]
    np.testing.assert_array_equal(whole, np.concatenate(halves))
    # a traced offset (as inside shard_map) gives the same mask
    traced = jax.jit(lambda o: D.keep_mask(key, (13, 40, 64), 0.2, row_offset=o))(jnp.int32(13))
    np.testing.assert_array_equal(traced, halves[1])


def test_row_length_not_a_multiple_of_four():
    key = jax.random.PRNGKey(2)
    m = D.keep_mask(key, (3, 7), 0.5)
    wide = D.keep_mask(key, (3, 8), 0.5)
    assert m.shape == (3, 7)
    np.testing.assert_array_equal(m, wide[:, :7])  # element (r, j) depends on (r, j) only


def test_dropout_values_expectation_and_gradient():
    x = jnp.ones((256, 1000), jnp.float32)
    rate = 0.3
    q = 1.0 - D.effective_rate(rate)
    y = D.dropout(x, rate, jax.random.PRNGKey(0))
    vals = np.unique(np.asarray(y))
    np.testing.assert_allclose(vals, [0.0, 1.0 / q], rtol=1e-7)
    # mean of 256000 draws of (Bernoulli(q)/q): sd = sqrt((1-q)/q/N)
    sd = np.sqrt((1 - q) / q / x.size)
    assert abs(float(jnp.mean(y)) - 1.0) < 5 * sd
    keep = D.keep_mask(jax.random.PRNGKey(0), x.shape, rate)
    g = jax.grad(lambda x: jnp.sum(D.dropout(x, rate, jax.random.PRNGKey(0))))(x)
    np.testing.assert_allclose(g, np.where(keep, 1.0 / q, 0.0), rtol=1e-7)
    # jit and vmap give the same values
    np.testing.assert_array_equal(jax.jit(lambda x: D.dropout(x, rate, jax.random.PRNGKey(0)))(x), y)
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    yv = jax.vmap(lambda k: D.dropout(x[:4], rate, k))(keys)
    np.testing.assert_array_equal(yv[1], D.dropout(x[:4], rate, keys[1]))


def test_evaluation_mode_and_zero_rate_are_identity():
    x = jnp.arange(12.0).reshape(3, 4)
    assert D.dropout(x, 0.5, None) is x
    assert D.dropout(x, 0.0, jax.random.PRNGKey(0)) is x
    assert bool(jnp.all(D.keep_mask(jax.random.PRNGKey(0), (3, 4), 0.0)))


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_rate(rate):
    with pytest.raises(ValueError, match="rate"):
        D.keep_mask(jax.random.PRNGKey(0), (2, 4), rate)
    with pytest.raises(ValueError, match="rate"):
        D.dropout(jnp.ones((2, 4)), rate, jax.random.PRNGKey(0))


def test_bad_key_and_shape():
    with pytest.raises(ValueError, match="key"):
        D.keep_mask(jax.random.key(0, impl="rbg"), (2, 4), 0.1)
    with pytest.raises(ValueError, match="key"):
        D.keep_mask(jnp.zeros((3,), jnp.uint32), (2, 4), 0.1)
    with pytest.raises(ValueError, match="row axis"):
        D.keep_mask(jax.random.PRNGKey(0), (), 0.1)
