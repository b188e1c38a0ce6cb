"""Tests for softmax_stability.temperature: the schedules' values (against the SSA authors' code
constants recorded in docs/notes/selective_attention.md §5 and independent NumPy/math computations), invariants, derivatives,
transformations and bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import erf

from softmax_stability import temperature as T

PARAMS = T.PARAMETRISATIONS


# ---------------------------------------------------------------------------------------------
# values


def test_position_gain_values():
    assert float(T.position_gain(0.0)) == 0.5
    assert float(T.position_gain(1.3, "sigmoid")) == pytest.approx(1 / (1 + math.exp(-1.3)), rel=1e-14)
    assert float(T.position_gain(2.0, "double_exp")) == pytest.approx(math.exp(-math.exp(2.0)), rel=1e-14)
    assert float(T.position_gain(-0.7, "linear")) == -0.7


def test_official_code_constants():
    # docs/notes/selective_attention.md §5 items 2-4: coefficients and factors of the official code's double-exponential form
    assert float(T.position_gain(2.0, "double_exp")) == pytest.approx(6.179790e-4, abs=1e-9)
    assert float(T.position_temperature(1024, 2.0, "double_exp")) == pytest.approx(1.0042835, abs=1e-6)
    assert float(T.position_temperature(2048, 2.0, "double_exp")) == pytest.approx(1.0047119, abs=1e-6)
    assert float(T.position_gain(1.5, "double_exp")) == pytest.approx(0.0113143, abs=1e-7)
    assert float(T.position_temperature(1024, 1.5, "double_exp")) == pytest.approx(1.0784247, abs=1e-6)
    assert float(T.position_temperature(512, 1.5, "double_exp")) == pytest.approx(1.0705822, abs=1e-6)
    # beta = 10.5: the coefficient underflows to exactly 0, i.e. vanilla attention bit for bit
    n = np.arange(1, 4097)
    assert np.all(np.asarray(T.position_temperature(n, 10.5, "double_exp")) == 1.0)
    # no_func ablation 1 + 1e-5 ln n: within 1e-4 of vanilla for n <= 4096
    assert np.max(np.abs(np.asarray(T.position_temperature(n, 1e-5, "linear")) - 1)) < 1e-4


@pytest.mark.parametrize("parametrisation", PARAMS)
def test_position_temperature_is_one_at_n1(parametrisation):
    alphas = np.array([-5.0, -0.3, 0.0, 0.8, 4.0])
    assert np.all(np.asarray(T.position_temperature(1, alphas, parametrisation)) == 1.0)


def test_schedules_against_numpy():
    n = np.array([1.0, 2.0, 17.0, 1e6])
    np.testing.assert_allclose(T.log_n_scaling(n), np.log(n), rtol=1e-15)
    np.testing.assert_allclose(T.ssmax(n, 0.43), 0.43 * np.log(n), rtol=1e-15)
    np.testing.assert_array_equal(T.ssmax(n, 1.0), T.log_n_scaling(n))
    np.testing.assert_allclose(T.constant(n, 2.5), np.full(4, 2.5))
    sig = 1 / (1 + np.exp(-0.4))
    np.testing.assert_allclose(T.position_temperature(n, 0.4), 1 + sig * np.log(n), rtol=1e-15)
    np.testing.assert_allclose(T.ssa_temperature(n, 0.4, np.array([0.0, 1.0, -2.0, 0.5])),
                               1 + sig * np.log(n) + np.tanh([0.0, 1.0, -2.0, 0.5]), rtol=1e-15)
    # YaRN: 0.1 ln s + 1 for s > 1, 1 otherwise
    np.testing.assert_allclose(T.yarn([0.25, 1.0, 4.0, math.e ** 10]), [1, 1, 1 + 0.1 * math.log(4), 2.0],
                               rtol=1e-15)
    np.testing.assert_allclose(T.yarn_schedule([8, 16, 64], 16), [1, 1, 1 + 0.1 * math.log(4)], rtol=1e-15)


def test_schedule_factory_matches_functions():
    n = np.array([1, 10, 1000])
    np.testing.assert_array_equal(T.schedule("ssmax", s=0.3)(n), T.ssmax(n, 0.3))
    np.testing.assert_array_equal(T.schedule("ssa", alpha=0.5, parametrisation="linear")(n),
                                  T.position_temperature(n, 0.5, "linear"))
    np.testing.assert_array_equal(T.schedule("log_n")(n), T.log_n_scaling(n))
    np.testing.assert_array_equal(T.schedule("constant", tau=1.0)(n), np.ones(3))
    np.testing.assert_array_equal(T.schedule("yarn", train_length=16)(n), T.yarn_schedule(n, 16))


def test_token_logit_against_numpy():
    rng = np.random.default_rng(0)
    x, w, u = rng.normal(size=(5, 4)), rng.normal(size=(4, 3)), rng.normal(size=3)
    h = x @ w
    gelu = 0.5 * h * (1 + erf(h / math.sqrt(2)))  # exact (erf) GELU
    np.testing.assert_allclose(T.token_logit(x, w, u), gelu @ u, rtol=1e-12)
    tt = np.asarray(T.token_temperature(T.token_logit(x, w, u)))
    assert np.all(np.abs(tt) < 1)


# ---------------------------------------------------------------------------------------------
# invariants (docs/notes/selective_attention.md §5 item 12) and identity reduction (item 13)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 10**6), alpha=st.floats(-8, 8), f=st.floats(-30, 30),
       parametrisation=st.sampled_from(["sigmoid", "double_exp"]))
def test_ssa_temperature_range(n, alpha, f, parametrisation):
    g = float(T.position_gain(alpha, parametrisation))
    tau = float(T.ssa_temperature(n, alpha, f, parametrisation=parametrisation))
    lo, hi = g * math.log(n), 2 + g * math.log(n)
    # open interval up to tanh saturating in float64 (|f| >~ 19 gives tanh = +-1 exactly)
    assert lo - 1e-12 <= tau <= hi + 1e-12
    assert tau >= 0
    if abs(f) < 15:
        assert lo < tau < hi


def test_identity_reduction_and_positions():
    n = np.arange(1, 65)
    assert np.all(np.asarray(T.ssa_temperature(n, 0.0, np.zeros(64), parametrisation="linear")) == 1.0)
    tau = np.asarray(T.position_temperature(n, 0.0))  # sigmoid(0) = 1/2: increasing in n
    assert np.all(np.diff(tau) > 0) and np.all(tau < 1 + np.log(n) + 1e-15)


# ---------------------------------------------------------------------------------------------
# transformations


def test_jit_vmap_grad():
    n = jnp.arange(1.0, 9.0)
    f = jax.jit(lambda a: T.ssa_temperature(n, a, jnp.ones(8), parametrisation="double_exp"))
    np.testing.assert_allclose(f(0.3), T.ssa_temperature(n, 0.3, jnp.ones(8), parametrisation="double_exp"))
    alphas = jnp.array([-1.0, 0.0, 2.0])
    out = jax.vmap(lambda a: T.position_temperature(n, a))(alphas)
    assert out.shape == (3, 8)
    # d/d alpha of 1 + g(alpha) ln n, against the derivatives written out by hand
    a, nn = 0.7, 100.0
    s = 1 / (1 + math.exp(-a))
    grads = {"sigmoid": s * (1 - s) * math.log(nn),
             "double_exp": -math.exp(a) * math.exp(-math.exp(a)) * math.log(nn),
             "linear": math.log(nn)}
    for p, expected in grads.items():
        g = jax.grad(lambda al: T.position_temperature(nn, al, p))(a)
        assert float(g) == pytest.approx(expected, rel=1e-12)
    # traced n is not checked (documented) and works under jit
    assert float(jax.jit(T.log_n_scaling)(jnp.float64(math.e))) == pytest.approx(1.0)


def test_float32_kept():
    out = T.ssa_temperature(jnp.arange(1, 5, dtype=jnp.float32), jnp.float32(0.0),
                            jnp.zeros(4, jnp.float32))
    assert out.dtype == jnp.float32


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("n", [0, -3, 0.5, np.nan, np.inf, [1, 0]])
def test_bad_n(n):
    with pytest.raises(ValueError, match="n"):
        T.log_n_scaling(n)
    with pytest.raises(ValueError, match="n"):
        T.ssa_temperature(n, 0.0)


@pytest.mark.parametrize("call, match", [
    (lambda: T.position_gain(np.inf), "alpha"),
    (lambda: T.position_gain(np.nan, "linear"), "alpha"),
    (lambda: T.position_temperature(4, [0.0, np.inf]), "alpha"),
    (lambda: T.ssmax(4, np.inf), "s"),
    (lambda: T.constant(4, np.nan), "tau"),
    (lambda: T.ssa_temperature(4, 0.0, np.nan), "token_logit"),
    (lambda: T.yarn(0.0), "scale"),
    (lambda: T.yarn(np.nan), "scale"),
    (lambda: T.yarn_schedule(10, 0), "train_length"),
    (lambda: T.position_gain(0.0, "cosine"), "parametrisation"),
    (lambda: T.schedule("nope"), "name"),
    (lambda: T.token_logit(np.ones((2, 3)), np.ones((4, 2)), np.ones(2)), "shapes"),
])
def test_bad_parameters(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_types():
    with pytest.raises(TypeError, match="n"):
        T.log_n_scaling("ten")
    with pytest.raises(TypeError, match="alpha"):
        T.position_gain(1 + 2j)


def test_exact_gelu_value_and_derivatives_against_mpmath():
    # GELU(x) = x Phi(x); GELU' = Phi + x phi; GELU'' = (2 - x^2) phi, at 40 digits
    import mpmath

    mpmath.mp.dps = 40
    xs = np.concatenate([np.linspace(-12.0, 12.0, 97), [-40.0, -1e-8, 0.0, 1e-8, 40.0]])
    phi = lambda x: mpmath.exp(-x * x / 2) / mpmath.sqrt(2 * mpmath.pi)  # noqa: E731
    Phi = lambda x: (1 + mpmath.erf(x / mpmath.sqrt(2))) / 2  # noqa: E731
    ref = np.array([[float(x * Phi(x)), float(Phi(x) + x * phi(x)), float((2 - x * x) * phi(x))]
                    for x in map(mpmath.mpf, xs)])
    x = jnp.asarray(xs)
    got = np.stack([T.gelu(x), jax.vmap(jax.grad(T.gelu))(x),
                    jax.vmap(jax.grad(jax.grad(T.gelu)))(x)], axis=1)
    # absolute error a few ulp of max(|x|, 1) everywhere; relative 1e-13 where 1 + erf does not
    # cancel (x >= -2: Phi >= 0.023)
    assert np.max(np.abs(got - ref) / np.maximum(np.abs(xs), 1.0)[:, None]) < 4e-16 * 8
    # (the value; both derivatives cross 0, near -0.75 and at +-sqrt 2, so they are held to the
    # absolute bound above)
    keep = (xs >= -2) & (xs != 0)
    assert np.max(np.abs(got[keep, 0] - ref[keep, 0]) / np.abs(ref[keep, 0])) < 1e-13
    # and it is jax.nn.gelu's exact form, in float32 too
    x32 = jnp.asarray(xs, jnp.float32)
    for xx, eps in ((x32, 2.0**-23), (x, 2.0**-52)):
        diff = np.abs(np.asarray(T.gelu(xx), float) - np.asarray(jax.nn.gelu(xx, approximate=False), float))
        assert np.all(diff <= 4 * eps * np.maximum(np.abs(xs), 1.0))


# ---------------------------------------------------------------------------------------------
# temperatures and scales must be positive (a negative inverse temperature reverses softmax)


@pytest.mark.parametrize("call, name", [
    (lambda v: T.ssmax(1024, v), "s"),  # the issue: ssmax(n, -0.43) returned -2.98
    (lambda v: T.constant(4, v), "tau"),
    (lambda v: T.schedule("ssmax", s=v)(16), "s"),
    (lambda v: T.schedule("constant", tau=v)(16), "tau"),
    (lambda v: T.yarn(v), "scale"),
    (lambda v: T.yarn_schedule(16, v), "train_length"),
])
@pytest.mark.parametrize("value", [-0.43, 0.0, np.nan, -np.inf, [1.0, -1.0]])
def test_non_positive_temperature_parameters_raise(call, name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be finite and > 0"):
        call(value)


def test_linear_gain_that_makes_the_temperature_negative_raises_naming_alpha():
    n = np.array([1.0, 10.0, 1000.0])
    with pytest.raises(ValueError, match=r"^alpha=-0\.5 with parametrisation='linear' gives a negative inverse "
                                         r"temperature -2\.45388 \(at n = 1000\).*alpha >= -1/ln\(max n\)"):
        T.position_temperature(n, -0.5, "linear")
    with pytest.raises(ValueError, match=r"^alpha=-0\.5 .*negative inverse temperature"):
        T.ssa_temperature(n, -0.5, parametrisation="linear")
    with pytest.raises(ValueError, match=r"^alpha=-0\.1 \('linear'\) with this token_logit gives a negative"):
        T.ssa_temperature(n, -0.1, np.full(3, -5.0), parametrisation="linear")
    # allowed: a small negative gain that keeps tau > 0 on the given n, and tau = 0 exactly
    # (log_n_scaling(1) = 0 too: at n = 1 the single key gets weight 1 at any temperature)
    assert np.all(np.asarray(T.position_temperature(n, -0.1, "linear")) > 0)
    assert float(T.position_temperature(np.e, -1.0, "linear")) == pytest.approx(0.0, abs=1e-15)
    assert float(T.log_n_scaling(1)) == 0.0 and float(T.ssmax(1, 0.5)) == 0.0


def test_traced_negative_parameters_are_not_checked():
    # documented: under jit the values are not known before run time; a negative one is computed as is
    assert float(jax.jit(T.ssmax)(1024.0, -0.43)) == pytest.approx(-0.43 * math.log(1024))
    out = jax.jit(lambda a: T.position_temperature(jnp.array([1.0, 100.0]), a, "linear"))(-1.0)
    np.testing.assert_allclose(np.asarray(out), [1.0, 1 - math.log(100)], rtol=1e-15)
