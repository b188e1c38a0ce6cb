"""The autodiff measurements against dense linear algebra."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softmax_stability.empirical import autodiff_jacobian, local_lipschitz, power_iteration_norm


def _lin(A):
    A = jnp.asarray(A)
    return lambda x: A @ x


def test_autodiff_jacobian_of_linear_map_is_the_matrix():
    A = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(autodiff_jacobian(_lin(A), np.zeros(3)), A, rtol=0, atol=1e-15)


def test_autodiff_jacobian_promotes_integers():
    J = autodiff_jacobian(lambda x: x**2, np.array([1, 2, 3]))
    assert jnp.issubdtype(J.dtype, jnp.floating)
    np.testing.assert_allclose(np.diag(J), [2.0, 4.0, 6.0])


@pytest.mark.parametrize("shape", [(6, 6), (9, 4), (3, 8)])
def test_power_iteration_matches_svd(shape):
    rng = np.random.default_rng(sum(shape))
    A = rng.normal(size=shape)
    r = power_iteration_norm(_lin(A), np.zeros(shape[1]), tol=1e-14, max_iter=5000)
    sigma = np.linalg.svd(A, compute_uv=False)
    # the estimate is ||A v|| for a unit v, so never above sigma_max; converged to 1e-14 on sigma^2
    assert float(r.norm) <= sigma[0] * (1 + 1e-12)
    np.testing.assert_allclose(float(r.norm), sigma[0], rtol=1e-6)
    assert bool(r.converged)
    np.testing.assert_allclose(np.linalg.norm(r.vector), 1.0, rtol=1e-12)


def test_power_iteration_softmax_matches_eigvalsh():
    z = jnp.array([0.3, -1.2, 2.0, 2.0, 0.0])
    p = jax.nn.softmax(z)
    lam = np.linalg.eigvalsh(np.diag(p) - np.outer(p, p))[-1]
    r = power_iteration_norm(jax.nn.softmax, z, tol=1e-15, max_iter=10_000)
    np.testing.assert_allclose(float(r.norm), lam, rtol=1e-7)


def test_power_iteration_reports_non_convergence():
    A = np.diag([1.0, 0.999999, 0.1])  # tiny spectral gap: 3 steps cannot converge
    r = power_iteration_norm(_lin(A), np.zeros(3), tol=1e-15, max_iter=3)
    assert int(r.iterations) == 3 and not bool(r.converged)


def test_power_iteration_under_jit():
    f = jax.jit(lambda z: power_iteration_norm(jax.nn.softmax, z).norm)
    assert 0 < float(f(jnp.array([0.0, 1.0, 2.0]))) <= 0.5


def test_power_iteration_bad_arguments():
    with pytest.raises(ValueError, match="tol"):
        power_iteration_norm(jnp.sin, jnp.ones(2), tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        power_iteration_norm(jnp.sin, jnp.ones(2), max_iter=0)
    with pytest.raises(ValueError, match="v0"):
        power_iteration_norm(jnp.sin, jnp.ones(2), v0=jnp.ones(3))


def test_local_lipschitz_is_a_lower_bound_and_close():
    # softmax on a ball containing a tie: the sup of ||J|| over the ball is 1/2 (attained at the tie)
    r = local_lipschitz(jax.nn.softmax, jnp.array([0.0, 1.0]), 2.0, steps=150)
    assert 0.49 <= float(r.lower_bound) <= 0.5 + 1e-12
    assert float(jnp.linalg.norm(r.point - jnp.array([0.0, 1.0]))) <= 2.0 + 1e-9


def test_local_lipschitz_small_ball_matches_local_norm():
    # far from any tie the constant on a tiny ball is the Jacobian norm at the centre
    x = jnp.array([0.0, 3.0, -1.0])
    p = jax.nn.softmax(x)
    lam = np.linalg.eigvalsh(np.diag(p) - np.outer(p, p))[-1]
    r = local_lipschitz(jax.nn.softmax, x, 1e-4, steps=150)
    assert float(r.lower_bound) <= lam * (1 + 1e-3)
    np.testing.assert_allclose(float(r.lower_bound), lam, rtol=1e-3)


def test_local_lipschitz_bad_radius():
    with pytest.raises(ValueError, match="radius"):
        local_lipschitz(jnp.sin, jnp.ones(2), -1.0)
    with pytest.raises(ValueError, match="radius"):
        local_lipschitz(jnp.sin, jnp.ones(2), float("nan"))
