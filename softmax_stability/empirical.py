"""The autodiff side: Jacobians, spectral norms and local Lipschitz constants measured numerically.

They are the independent measurements every closed form of :mod:`softmax_stability.jacobian` and
every bound of the claims registry is checked against.

* :func:`autodiff_jacobian` -- the dense Jacobian by forward-mode autodiff (``jax.jacfwd``).
* :func:`power_iteration_norm` -- the largest singular value of the Jacobian, matrix-free, by power
  iteration on :math:`J^\\top J` with one ``jvp`` and one ``vjp`` per step. This is the method the
  Castin, Ablin & Peyre 2024 code's ``loc_lipschitz`` intends; as published, that function feeds the
  layer *output* ``jvp(...)[0]`` to the ``vjp`` instead of :math:`Jv` and returns
  :math:`\\sqrt{\\|J^\\top f(x)\\|_2}`, not :math:`\\|J\\|_2` (docs/notes/field.md §2.2; see
  :func:`softmax_stability.lipschitz.measured_lipschitz`).
* :func:`reference_softmax` -- softmax as a plain ``exp / sum`` with no custom derivative rule, the
  map autodiff measures (``maps.softmax`` and ``jax.nn.softmax`` carry a ``custom_jvp`` that applies
  the closed form under test).
* :func:`central_difference_jacobian`, :func:`sparsemax_fd_jacobian`, :func:`entmax_fd_jacobian`
  -- finite-difference Jacobians of the forward maps, the reference for the sparse maps' closed
  forms (their ``custom_jvp`` is the formula under test, so autodiff would compare it with itself).
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
           "local_lipschitz", "reference_softmax", "central_difference_jacobian",
           "sparsemax_fd_jacobian", "entmax_fd_jacobian", "SPARSEMAX_FD_MIN_MARGIN",
           "ENTMAX_FD_MIN_MARGIN"]

#: Smallest distance to a support change at which :func:`sparsemax_fd_jacobian` is compared.
SPARSEMAX_FD_MIN_MARGIN = 1e-5
#: Smallest distance to a support change at which :func:`entmax_fd_jacobian` is compared.
ENTMAX_FD_MIN_MARGIN = 1e-4


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
      >>> search = jax.jit(lambda x: local_lipschitz(jax.nn.softmax, x, 3.0, steps=100))  # one compile
      >>> r = search(jnp.array([0.0, 3.0]))
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


# ----------------------------------------------------------------------------------------------
# reference maps and finite-difference Jacobians (the measurements the closed forms are checked against)


def reference_softmax(z, beta=1.0) -> jax.Array:
    r"""Softmax of :math:`\beta z` along the last axis as a plain ``exp / sum``, no custom derivative.

    .. math::
        p_i = \frac{e^{\beta z_i - m}}{\sum_j e^{\beta z_j - m}}, \qquad m = \max_j \beta z_j,

    with :math:`m` a constant for differentiation (``stop_gradient``; exact, softmax is shift
    invariant). Autodiff through it measures the softmax Jacobian independently of the closed form
    :math:`\beta(\operatorname{diag}p - pp^\top)` that :func:`softmax_stability.maps.softmax`'s
    ``custom_jvp`` applies. No special-value conventions: use it on finite logits (``-inf`` entries
    get 0 as long as a row has a finite one).

    Args:
      z: logits ``(..., n)``.
      beta: inverse temperature (scalar or broadcastable to ``z``).

    Returns:
      Array of ``z``'s shape.

    Example:
      >>> import jax.numpy as jnp
      >>> [round(float(v), 6) for v in reference_softmax(jnp.array([0.0, jnp.log(3.0)]))]
      [0.25, 0.75]
    """
    y = beta * as_float_array(z, "z")
    e = jnp.exp(y - jax.lax.stop_gradient(jnp.max(y, axis=-1, keepdims=True)))
    return e / jnp.sum(e, axis=-1, keepdims=True)


def central_difference_jacobian(f: Callable[[jax.Array], jax.Array], z, h) -> jax.Array:
    r"""Central-difference Jacobian of ``f`` at a vector ``z``, one column per coordinate.

    .. math::
        J_{:, j} = \frac{f(z + h e_j) - f(z - h e_j)}{2h}.

    Exact for a map that is affine on :math:`[z - h e_j, z + h e_j]`; error :math:`O(h^2)` for a
    smooth one.

    Args:
      f: a map from ``(n,)`` to ``(m,)``.
      z: the point, shape ``(n,)``.
      h: the step (scalar, may be traced).

    Returns:
      Array ``(m, n)``.

    Example:
      >>> import jax.numpy as jnp
      >>> central_difference_jacobian(lambda x: 2.0 * x, jnp.zeros(2), 0.5).tolist()
      [[2.0, 0.0], [0.0, 2.0]]
    """
    z = as_float_array(z, "z")
    eye = jnp.eye(z.shape[-1], dtype=z.dtype)
    cols = jax.vmap(lambda e: (f(z + h * e) - f(z - h * e)) / (2 * h))(eye)
    return cols.T


def _sparsemax_margin(z):
    """sparsemax(z) and the distance of z to the nearest support change."""
    from softmax_stability.maps import sparsemax

    p = sparsemax(z)
    j = jnp.argmax(p)
    return p, jnp.min(jnp.abs(z - (z[j] - p[j])))  # tau = z_j - p_j on the support


def _entmax_margin(z, alpha):
    """alpha-entmax(z) and the distance of (alpha - 1) z to the nearest support change."""
    from softmax_stability.maps import entmax

    p = entmax(z, alpha)
    j = jnp.argmax(p)
    tau = (alpha - 1) * z[j] - p[j] ** (alpha - 1)  # g_j = p_j^(alpha-1) on the support
    return p, jnp.min(jnp.abs((alpha - 1) * z - tau))


def sparsemax_fd_jacobian(z) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""Finite-difference Jacobian of sparsemax at a vector ``z``, and whether it is reliable.

    Sparsemax is affine between support changes, so central differences with a step
    :math:`h = \min(10^{-2}, m/2)` below the distance :math:`m` of ``z`` to the nearest support
    change (:math:`m = \min_i |z_i - \tau|`, :math:`\tau` the threshold) are exact up to rounding.
    Reliable when :math:`m \ge` :data:`SPARSEMAX_FD_MIN_MARGIN`.

    Args:
      z: logits, shape ``(n,)``.

    Returns:
      ``(J, p, ok)``: the ``(n, n)`` Jacobian, ``sparsemax(z)`` and a boolean scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> J, p, ok = sparsemax_fd_jacobian(jnp.array([0.0, 0.5, -3.0]))
      >>> [[round(float(v), 6) for v in row] for row in J], bool(ok)
      ([[0.5, -0.5, 0.0], [-0.5, 0.5, 0.0], [0.0, 0.0, 0.0]], True)
    """
    from softmax_stability.maps import sparsemax

    z = as_float_array(z, "z")
    p, margin = _sparsemax_margin(z)
    h = jnp.minimum(1e-2, margin / 2)
    return central_difference_jacobian(sparsemax, z, h), p, margin >= SPARSEMAX_FD_MIN_MARGIN


def entmax_fd_jacobian(z, alpha: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""Richardson-extrapolated finite-difference Jacobian of :math:`\alpha`-entmax at a vector ``z``.

    .. math::
        J \approx \tfrac{1}{3}\big(4\,D_{h/2} - D_h\big), \qquad h = \min(10^{-2}, m/32),

    with :math:`D_h` the central difference (:func:`central_difference_jacobian`) and :math:`m` the
    distance of :math:`(\alpha - 1)z` to the nearest support change (the map is smooth between
    them). Reliable when :math:`m \ge` :data:`ENTMAX_FD_MIN_MARGIN`.

    Args:
      z: logits, shape ``(n,)``.
      alpha: the entmax exponent in ``(1, 2]``, a static Python float.

    Returns:
      ``(J, p, ok)``: the ``(n, n)`` Jacobian, ``entmax(z, alpha)`` and a boolean scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> J, p, ok = entmax_fd_jacobian(jnp.array([0.0, 0.5, -3.0]), 1.5)
      >>> bool(ok), round(float(J[0, 0] + J[0, 1]), 6)
      (True, 0.0)
    """
    from softmax_stability.maps import entmax

    z = as_float_array(z, "z")
    f = lambda x: entmax(x, alpha)  # noqa: E731
    p, margin = _entmax_margin(z, alpha)
    h = jnp.minimum(1e-2, margin / 32)
    J = (4 * central_difference_jacobian(f, z, h / 2) - central_difference_jacobian(f, z, h)) / 3
    return J, p, margin >= ENTMAX_FD_MIN_MARGIN
