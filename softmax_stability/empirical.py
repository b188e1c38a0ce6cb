"""The autodiff side: Jacobians, spectral norms and local Lipschitz constants measured numerically.

These functions know nothing about softmax. They are the independent measurements every closed
form of :mod:`softmax_stability.jacobian` and every bound of the claims registry is checked against.

* :func:`autodiff_jacobian` -- the dense Jacobian by forward-mode autodiff (``jax.jacfwd``).
* :func:`power_iteration_norm` -- the largest singular value of the Jacobian, matrix-free, by power
  iteration on :math:`J^\\top J` with one ``jvp`` and one ``vjp`` per step. This is the method the
  Castin, Ablin & Peyre 2024 code's ``loc_lipschitz`` intends; as published, that function feeds the
  layer *output* ``jvp(...)[0]`` to the ``vjp`` instead of :math:`Jv` and returns
  :math:`\\sqrt{\\|J^\\top f(x)\\|_2}`, not :math:`\\|J\\|_2` (docs/notes/field.md §2.2; see
  :func:`softmax_stability.lipschitz.measured_lipschitz`).
* :func:`local_lipschitz` -- a *lower* bound on the Lipschitz constant of ``f`` on a ball, by
  gradient ascent (optax) over the point and the direction.

Note: forward-mode AD does not pass through ``jax.custom_vjp`` functions (the cuDNN attention
kernel is one); measure on the XLA / pure ``jnp`` path.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from softmax_stability._checks import as_float_array, check_int_in_range, check_positive_finite

__all__ = ["autodiff_jacobian", "PowerIterationResult", "power_iteration_norm", "LocalLipschitzResult",
           "local_lipschitz"]


def autodiff_jacobian(f: Callable[[jax.Array], jax.Array], x) -> jax.Array:
    r"""Dense Jacobian :math:`\partial f(x)/\partial x` by forward-mode autodiff.

    Args:
      f: a function of one array.
      x: the point (integer inputs are promoted to float).

    Returns:
      An array of shape ``f(x).shape + x.shape`` (``jax.jacfwd`` layout).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> J = autodiff_jacobian(jax.nn.softmax, jnp.zeros(2))
      >>> [[round(float(v), 6) for v in row] for row in J]
      [[0.25, -0.25], [-0.25, 0.25]]
    """
    x = as_float_array(x, "x")
    return jax.jacfwd(f)(x)


class PowerIterationResult(NamedTuple):
    """Result of :func:`power_iteration_norm`."""

    norm: jax.Array  # estimate of sigma_max(J)
    vector: jax.Array  # the input direction (unit 2-norm, shape of x)
    iterations: jax.Array  # steps taken
    converged: jax.Array  # relative change of sigma^2 fell below tol


def power_iteration_norm(f: Callable[[jax.Array], jax.Array], x, *, key: jax.Array | None = None,
                         v0=None, tol: float = 1e-10, max_iter: int = 500) -> PowerIterationResult:
    r"""Largest singular value of the Jacobian of ``f`` at ``x``, matrix-free.

    Iterates :math:`v \leftarrow J^\top J v / \|J^\top J v\|_2` with ``jax.jvp`` (for :math:`Jv`) and
    ``jax.vjp`` (for :math:`J^\top u`), and returns :math:`\sigma = \|J v\|_2`. Each step costs one
    forward and one backward pass; the :math:`n \times n` Jacobian is never formed. Stops when the
    relative change of :math:`\sigma^2` is below ``tol`` or after ``max_iter`` steps.

    Power iteration converges to the top singular value from any start with a component along the
    top singular vector; the estimate is always a *lower* bound of the true :math:`\sigma_{\max}`
    (it is :math:`\|Jv\|` for a unit ``v``). A random start (``key``) avoids an unlucky orthogonal one.

    Args:
      f: a function of one array.
      x: the point.
      key: PRNG key for the random start (default ``PRNGKey(0)``); ignored if ``v0`` is given.
      v0: optional start direction of the shape of ``x``.
      tol: relative tolerance on :math:`\sigma^2` (> 0).
      max_iter: iteration cap (>= 1).

    Returns:
      :class:`PowerIterationResult` ``(norm, vector, iterations, converged)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> r = power_iteration_norm(jax.nn.softmax, jnp.array([0.0, 0.0]))
      >>> round(float(r.norm), 6)   # ||diag(p) - pp^T||_2 = 1/2 at p = (1/2, 1/2)
      0.5
    """
    check_positive_finite(tol, "tol")
    max_iter = check_int_in_range(max_iter, "max_iter", 1)
    x = as_float_array(x, "x")
    if v0 is None:
        key = jax.random.PRNGKey(0) if key is None else key
        v0 = jax.random.normal(key, x.shape, dtype=x.dtype)
    else:
        v0 = as_float_array(v0, "v0").astype(x.dtype)
        if v0.shape != x.shape:
            raise ValueError(f"v0 must have the shape of x {x.shape}, got {v0.shape}")
    _, vjp_fn = jax.vjp(f, x)

    def jtj(v):
        _, jv = jax.jvp(f, (x,), (v,))
        (jtjv,) = vjp_fn(jv)
        return jtjv, jnp.vdot(jv, jv).real

    def unit(v):
        nrm = jnp.linalg.norm(v)
        return jnp.where(nrm > 0, v / jnp.where(nrm > 0, nrm, 1.0), v)

    v = unit(v0)

    def cond(state):
        _, _, it, rel = state
        return (it < max_iter) & (rel > tol)

    def body(state):
        v, s2_old, it, _ = state
        w, _ = jtj(v)
        v_new = unit(w)
        _, s2 = jtj(v_new)  # sigma^2 = ||J v||^2 at the new unit vector
        rel = jnp.abs(s2 - s2_old) / jnp.maximum(jnp.abs(s2), jnp.finfo(s2.dtype).tiny)
        return v_new, s2, it + 1, rel

    _, s2_0 = jtj(v)
    init = (v, s2_0, jnp.asarray(0), jnp.asarray(jnp.inf, dtype=s2_0.dtype))
    v, s2, it, rel = jax.lax.while_loop(cond, body, init)
    return PowerIterationResult(jnp.sqrt(jnp.maximum(s2, 0.0)), v, it, rel <= tol)


class LocalLipschitzResult(NamedTuple):
    """Result of :func:`local_lipschitz`."""

    lower_bound: jax.Array  # best ||J(y) v|| found, y in the ball, ||v|| = 1
    point: jax.Array  # the y that attained it
    direction: jax.Array  # the unit v that attained it


def local_lipschitz(f: Callable[[jax.Array], jax.Array], x, radius: float, *,
                    key: jax.Array | None = None, steps: int = 200, learning_rate: float = 0.05,
                    restarts: int = 4) -> LocalLipschitzResult:
    r"""Lower bound on the Lipschitz constant of ``f`` on the ball :math:`B_2(x, r)`.

    For a differentiable ``f`` on a convex set the Lipschitz constant (2-norms) is
    :math:`\sup_{y \in B} \|J_f(y)\|_2`, so every value :math:`\|J_f(y)\,v\|_2` with :math:`y \in B`
    and :math:`\|v\|_2 = 1` is a certified lower bound. This maximises it jointly over
    :math:`(y, v)` with Adam (optax), projecting ``y`` back onto the ball and normalising ``v``
    after every step, from ``restarts`` random starts; it returns the best value seen.

    Args:
      f: a function of one array.
      x: centre of the ball.
      radius: radius :math:`r > 0` of the ball (2-norm).
      key: PRNG key for the starts.
      steps: ascent steps per start.
      learning_rate: Adam step size (relative to ``radius`` for ``y``).
      restarts: number of random starts (>= 1).

    Returns:
      :class:`LocalLipschitzResult` ``(lower_bound, point, direction)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> r = local_lipschitz(jax.nn.softmax, jnp.array([0.0, 3.0]), 3.0, steps=100)
      >>> 0.49 < float(r.lower_bound) <= 0.5 + 1e-12   # the ball contains the tie z_1 = z_2
      True
    """
    check_positive_finite(radius, "radius")
    check_positive_finite(learning_rate, "learning_rate")
    steps = check_int_in_range(steps, "steps", 1)
    restarts = check_int_in_range(restarts, "restarts", 1)
    x = as_float_array(x, "x")
    key = jax.random.PRNGKey(0) if key is None else key

    def project(y):
        d = y - x
        nrm = jnp.linalg.norm(d)
        return x + jnp.where(nrm > radius, d * (radius / jnp.where(nrm > 0, nrm, 1.0)), d)

    def unit(v):
        return v / jnp.maximum(jnp.linalg.norm(v), jnp.finfo(v.dtype).tiny)

    def value(params):
        y, v = params
        _, jv = jax.jvp(f, (y,), (unit(v),))
        return jnp.vdot(jv, jv).real

    opt = optax.adam(learning_rate)

    def one_start(k):
        ky, kv = jax.random.split(k)
        y0 = project(x + radius * 0.5 * jax.random.normal(ky, x.shape, x.dtype) / jnp.sqrt(max(x.size, 1)))
        v0 = unit(jax.random.normal(kv, x.shape, x.dtype))
        params = (y0, v0)
        state = opt.init(params)

        def step(carry, _):
            params, state, best = carry
            val, g = jax.value_and_grad(value)(params)
            g = jax.tree_util.tree_map(lambda t: -t, g)  # ascent
            # scale the y-step to the ball's size so one learning rate fits every radius
            g = (g[0] / radius, g[1])
            upd, state = opt.update(g, state, params)
            y, v = optax.apply_updates(params, (upd[0] * radius, upd[1]))
            params = (project(y), unit(v))
            cur = value(params)
            best = jax.lax.cond(cur > best[0], lambda: (cur, params[0], params[1]), lambda: best)
            return (params, state, best), val

        best0 = (value(params), params[0], params[1])
        (_, _, best), _ = jax.lax.scan(step, (params, state, best0), None, length=steps)
        return best

    vals, ys, vs = jax.vmap(one_start)(jax.random.split(key, restarts))
    i = jnp.argmax(vals)
    return LocalLipschitzResult(jnp.sqrt(jnp.maximum(vals[i], 0.0)), ys[i], unit(vs[i]))
