"""The library-wide input rules, checked on every public function they apply to.

* ``k`` (and ``k_top``) is a static Python int in ``[1, n]`` everywhere: ``k = n`` keeps every key
  (top-k softmax is softmax), ``k > n`` is a ``ValueError`` naming ``k`` and the range, and a
  traced ``k`` (a jitted function's argument not marked static) is a ``TypeError`` that says so.
* the shared probability check (``_checks.check_probability``) and its tolerance;
* empty arrays, integer dtypes and wrong shapes get a clear error naming the user's argument (or,
  for integers, are promoted to the default float dtype).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softmax_stability import attention as A
from softmax_stability import dilution as D
from softmax_stability import focus as F
from softmax_stability import jacobian as J
from softmax_stability import maps, masks
from softmax_stability import temperature as T
from softmax_stability._checks import check_probability, probability_tolerance

N = 4
Z = np.random.default_rng(0).normal(size=(N, N)) * 2.0  # (queries, keys): every k below is out of n = 4
Q = Z[:, None, :2]  # attention inputs [T, heads, head_dim] with S = 4 keys

# name -> f(z, k): every public function that takes a count k over n = 4 entries
K_FUNCS = {
    "maps.topk_softmax": lambda z, k: maps.topk_softmax(z, k),
    "masks.topk_mask": lambda z, k: masks.topk_mask(z, k),
    "masks.band_mask": lambda z, k: masks.band_mask(N, k),
    "masks.block_mask": lambda z, k: masks.block_mask(N, k),
    "focus.dispersion": lambda z, k: F.dispersion(z, k),
    "focus.separation": lambda z, k: F.separation(z, k),
    "focus.topk_in_degree": lambda z, k: F.topk_in_degree(z, k),
    "focus.attention_statistics": lambda z, k: F.attention_statistics(z, k)["delta_h"],
    "focus.attention_weights": lambda z, k: F.attention_weights(z, jnp.eye(N), k),
    "focus.local_stability": lambda z, k: F.local_stability(z, jnp.eye(N), k),
    "focus.band_in_degree": lambda z, k: F.band_in_degree(N, k),
    "focus.block_in_degree": lambda z, k: F.block_in_degree(N, k),
    "dilution.topk_mass": lambda z, k: D.topk_mass(maps.softmax(z), k),
    "dilution.needle_topk_mass": lambda z, k: D.needle_topk_mass(N, 1.0, 1.0, k),
    "attention.dot_product_attention": lambda z, k: A.dot_product_attention(
        jnp.asarray(Q), jnp.asarray(Q), jnp.asarray(Q), normalizer="topk", k_top=k),
}
# kth_largest also takes k > n as an error, but accepts a traced integer k (one per row) by design
K_ABOVE_N = dict(K_FUNCS, **{"attention.kth_largest": lambda z, k: A.kth_largest(z, k)})


@pytest.mark.parametrize("name", K_ABOVE_N)
def test_k_above_n_is_a_value_error_naming_k_and_the_range(name):
    # (needle_topk_mass: n is a real array argument, so its range is written [1, n])
    with pytest.raises(ValueError, match=r"\bk(_top)? must be in \[1, (4|n)\].*\b5\b"):
        K_ABOVE_N[name](Z, N + 1)


@pytest.mark.parametrize("name", K_ABOVE_N)
def test_k_equal_n_is_allowed(name):
    out = K_ABOVE_N[name](Z, N)
    assert all(np.all(np.isfinite(np.asarray(v, float))) or name == "focus.separation"
               for v in jax.tree_util.tree_leaves(out))


def test_k_equal_n_keeps_every_key():
    np.testing.assert_array_equal(np.asarray(maps.topk_softmax(Z, N)), np.asarray(maps.softmax(Z)))
    assert np.asarray(masks.topk_mask(Z, N)).all()
    np.testing.assert_allclose(np.asarray(D.topk_mass(maps.softmax(Z), N)), 1.0, rtol=1e-14)
    np.testing.assert_array_equal(np.asarray(F.attention_weights(Z, jnp.eye(N), N)),
                                  np.asarray(F.attention_weights(Z, jnp.eye(N))))
    assert np.all(np.asarray(F.separation(Z, N)) == np.inf)


@pytest.mark.parametrize("name", K_FUNCS)
def test_traced_k_says_it_must_be_static(name):
    f = K_FUNCS[name]
    with pytest.raises(TypeError, match=r"\bk(_top)? must be a static Python int (in \[1, 4\]|>= 1), got a "
                                        r"traced value .*static_argnums"):
        jax.jit(f)(jnp.asarray(Z), 2)
    # the fix the message suggests works and gives the eager value
    got = jax.jit(f, static_argnums=1)(jnp.asarray(Z), 2)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(f(Z, 2))):
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-12, atol=1e-15)


def test_traced_k_of_the_examples_in_the_issue():
    with pytest.raises(TypeError, match=r"^k must be a static Python int in \[1, 4\], got a traced value"):
        jax.jit(maps.topk_softmax)(jnp.asarray(Z[0]), 2)
    np.testing.assert_array_equal(np.asarray(jax.jit(maps.topk_softmax, static_argnames="k")(Z[0], k=2)),
                                  np.asarray(maps.topk_softmax(Z[0], 2)))


# ---------------------------------------------------------------------------------------------
# the shared probability check


@pytest.mark.parametrize("dtype, n, expected", [
    # float64 uses float32's epsilon: upcast float32 results keep their float32 rounding
    (np.float64, 2, 66 * 2.0**-23), (np.float32, 4, 68 * 2.0**-23), (np.float32, 10**5, (64 + 10**5) * 2.0**-23),
    (jnp.bfloat16, 2, 0.125), (np.float16, 10**4, 0.125),  # capped: the check still rejects gross errors
])
def test_probability_tolerance(dtype, n, expected):
    assert probability_tolerance(dtype, n) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_probability_check_boundary(dtype):
    n = 3
    t = probability_tolerance(dtype, n)
    ok = np.array([[0.5, 0.5 + t / 2, 0.0], [1.0, -t / 2, 0.0], [0.0, 0.0, 0.0], [0.2, 0.3, 0.1]], dtype)
    check_probability(jnp.asarray(ok))  # within the tolerance, all-zero and sub-stochastic rows pass
    for bad, detail in (([0.5, 0.5 + 3 * t, 0.0], "sums to 1"), ([1.0, -3 * t, 0.0], "smallest entry -")):
        with pytest.raises(ValueError, match=detail):
            check_probability(jnp.asarray(np.array(bad, dtype)))


def test_probability_check_skips_nonfinite_rows_masked_entries_and_traced_values():
    check_probability(jnp.asarray([[0.2, np.nan, 3.0], [np.inf, 0.0, 5.0]]))  # NaN rows: a run-time result
    check_probability(jnp.asarray([[0.6, 0.6, 0.6]]), where=jnp.asarray([True, False, False]))  # visible part
    with pytest.raises(ValueError, match=r"^w must hold probability vectors along axis 0 .*row \(0,\) sums to 1\.2"):
        check_probability(jnp.asarray([[0.6, 0.5], [0.6, 0.5]]), "w", axis=0)
    jax.jit(lambda x: check_probability(x) or x)(jnp.ones(3))  # traced: not checked
    check_probability(jnp.ones(3), enabled=False)


@pytest.mark.parametrize("make", [
    lambda z: maps.softmax(z), lambda z: maps.topk_softmax(z, 7), lambda z: maps.sparsemax(z),
    lambda z: maps.entmax15(z), lambda z: maps.entmax(z, 1.3), lambda z: maps.softmax(z, where=z > 0),
])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_every_map_output_passes_the_check_in_low_precision(make, dtype):
    z = jnp.asarray(np.random.default_rng(3).normal(size=(16, 2000)) * 3.0, dtype)
    check_probability(make(z))  # no error: the tolerance covers the maps' rounding


# ---------------------------------------------------------------------------------------------
# empty arrays, integer inputs, wrong shapes: the error names the user's argument

EMPTY_CASES = [
    (lambda x: F.dispersion(x), "logits"), (lambda x: F.dispersion(x, 2), "logits"),
    (lambda x: F.separation(x, 2), "logits"), (lambda x: F.topk_in_degree(x, 2), "logits"),
    (lambda x: F.attention_statistics(x, 2), "logits"), (lambda x: F.attention_weights(x, np.eye(5)), "X"),
    (lambda x: maps.topk_softmax(x, 2), "z"), (lambda x: masks.topk_mask(x, 2), "z"),
    (lambda x: D.topk_mass(x, 2), "p"), (lambda x: D.sorted_profile(x), "P"),
    (lambda x: J.spectral_norm(x), "p"), (lambda x: J.inf_to_one_norm(x), "p"),
]


@pytest.mark.parametrize("call, name", EMPTY_CASES)
@pytest.mark.parametrize("shape", [(0, 5), (5, 0)])
def test_empty_input_names_the_argument(call, name, shape):
    with pytest.raises(ValueError, match=rf"^{name} must be non-empty"):
        call(np.zeros(shape))


def test_topk_in_degree_empty_batch_names_logits_not_an_internal_variable():
    # was "z must be non-empty": z is topk_mask's argument, called inside
    with pytest.raises(ValueError, match=r"^logits must be non-empty, got shape \(0, 5\)"):
        F.topk_in_degree(np.zeros((0, 5)), 2)


@pytest.mark.parametrize("call", [
    lambda x: maps.topk_softmax(x, 2), lambda x: maps.sparsemax(x), lambda x: F.dispersion(x, 2),
    lambda x: F.separation(x, 2), lambda x: F.attention_weights(x, np.eye(3, dtype=int)),
    lambda x: D.entropy(x), lambda x: D.topk_mass(x, 2), lambda x: J.spectral_norm(x),
    lambda x: J.softmax_jacobian(x), lambda x: T.ssmax(x + 1, 1), lambda x: T.log_n_scaling(x + 1),
    lambda x: A.kth_largest(x, 2),
])
def test_integer_input_is_promoted_to_the_default_float(call):
    x = np.array([[0, 1, 0], [1, 0, 0]])  # a one-hot probability vector and valid logits alike
    out = call(x)
    for v in jax.tree_util.tree_leaves(out):
        assert jnp.asarray(v).dtype == jnp.result_type(float), call


@pytest.mark.parametrize("call, exc, match", [
    (lambda: F.topk_in_degree(np.ones(4), 2), ValueError, r"^logits must have shape \(\.\.\., n_queries, n_keys\)"),
    (lambda: F.attention_statistics(np.ones(4), 2), ValueError, r"^logits must have shape"),
    (lambda: F.attention_weights(np.ones(4), np.eye(4)), ValueError, r"^X must be a token matrix \(n, d\)"),
    (lambda: F.attention_weights(np.ones((3, 4)), np.eye(3)), ValueError, r"^W must have shape \(4, 4\)"),
    (lambda: F.dispersion(np.float64(1.0)), ValueError, r"^logits must have at least one dimension"),
    (lambda: maps.topk_softmax(np.float64(1.0), 1), ValueError, r"^z must have at least one dimension"),
    (lambda: J.spectral_norm(np.float64(1.0)), ValueError, r"^p must have at least one dimension"),
    (lambda: D.entropy(np.ones(3) / 3, where=np.ones((2, 2), bool)), ValueError, r"^where must be broadcastable"),
    (lambda: T.token_logit(np.ones((3, 2)), np.eye(3), np.ones(3)), ValueError, r"need x \(\.\.\., d\)"),
    (lambda: F.dispersion(np.ones((2, 3), complex)), TypeError, r"^logits must be real"),
    (lambda: J.spectral_norm(np.array(["a", "b"])), TypeError, r"^p must"),
])
def test_wrong_shapes_and_dtypes_name_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("call", [
    T.log_n_scaling, lambda n: T.ssmax(n, 0.5), lambda n: T.position_temperature(n, 0.3),
    lambda n: T.ssa_temperature(n, 0.3), lambda n: T.yarn_schedule(n, 16), lambda n: T.constant(n, 2.0),
    lambda n: D.needle_probability(n, 1.0, 2.0), lambda n: F.pmax_bound(0.5, n.astype(int)),
])
def test_elementwise_functions_map_an_empty_array_to_an_empty_result(call):
    # elementwise in their array arguments (NumPy semantics): documented, not an error
    assert np.asarray(call(np.zeros((0,)))).shape == (0,)
    assert np.asarray(call(np.array([1, 4]))).dtype == jnp.result_type(float)  # integers promoted
