r"""Closed-form Jacobians of the normalising maps and their operator norms.

Every function takes the *output* of a map, a probability vector ``p`` along the last
axis (any leading batch axes), and never differentiates the map itself:

* softmax with inverse temperature :math:`\beta`: :math:`J = \beta(\operatorname{diag}p - pp^\top)`;
* top-k softmax: the same formula, zero outside the selected set;
* sparsemax and :math:`\alpha`-entmax: :math:`J = \operatorname{diag}(s) - ss^\top/\mathbf 1^\top s`.

The norms of the softmax Jacobian are computed without forming the :math:`n\times n`
matrix: the spectral norm from the secular equation of the diagonal-minus-rank-one
matrix in :math:`O(n)` work and memory per row, the Frobenius, :math:`1\to1` and
:math:`\infty\to1` norms from closed forms. Sources: the derivations in the project's
reference notes (``docs/notes/field.md`` §1.1, §1.4, §1.5, §3.1, §3.2), each
checked symbolically in ``proofs_check`` under the ids ``softmax_jacobian.<name>`` given
in the docstrings.

Domain. ``p`` is meant to be what a normalising map returns: entries in :math:`[0,1]`
with :math:`\sum_i p_i \le 1` (the sum is 1 except for fully masked rows, which are all
zero). On that domain :math:`J` is symmetric positive semi-definite and every function
returns the exact norm of the matrix built from the stored ``p``, not of an idealised
normalised ``p``. A row containing NaN or :math:`\pm\infty` gives NaN; an all-zero row
(fully masked) gives zero Jacobians and zero norms.

Every function checks the domain eagerly when ``p`` holds concrete values
(``check_probability=True``, the default): each row whose entries are all finite must have
entries :math:`\ge -t` and sum to at most :math:`1 + t`, with the rounding tolerance
:math:`t = \min(\epsilon(64 + n), 1/8)` (:math:`\epsilon` the machine epsilon of ``p``'s
dtype, at least float32's so that upcast float32 results pass: a few ulps per entry plus the
worst-case rounding of a sum of :math:`n` terms), else a
``ValueError`` names ``p``, the row, its sum and its smallest entry. Logits or scores passed by
mistake thus fail loudly instead of giving a plausible number (``spectral_norm([1.5, -0.5])``
would return 0, the largest eigenvalue of :math:`\operatorname{diag}p - pp^\top`, where its
norm is 1.5). Sub-stochastic rows (sum below 1) pass: they are in the domain. Under
``jax.jit``, ``jax.vmap`` or ``jax.grad`` ``p`` is traced and its values are not known before
run time: the check is skipped silently and the functions return the formulas' values for
whatever ``p`` holds. ``check_probability=False`` does the same eagerly (for a matrix
:math:`\beta(\operatorname{diag}p - pp^\top)` with ``p`` outside the domain on purpose). A traced
``beta`` is not checked either: a negative one negates the matrices and the norms.

Subnormal numbers. XLA on CPU flushes subnormal numbers to zero (below
``2.2e-308`` in float64, ``1.2e-38`` in float32), so entries in that range act as exact
zeros, and results that would be subnormal come back as zero.
"""

from __future__ import annotations

import sys
import warnings
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability._checks import (
    as_float_array,
    check_flag,
    check_in_closed_interval,
    check_positive_finite,
    check_probability as _check_probability,
)

__all__ = [
    "softmax_jacobian",
    "topk_jacobian",
    "sparsemax_jacobian",
    "entmax_jacobian",
    "spectral_norm",
    "eigenvalues",
    "entmax_spectral_norm",
    "entmax_spectral_bound",
    "entmax_as_softmax",
    "sparsemax_spectral_norm",
    "frobenius_norm",
    "one_norm",
    "inf_to_one_norm",
    "InfToOneBounds",
    "INF_TO_ONE_EXACT_MAX_N",
]

#: Largest ``n`` for which :func:`inf_to_one_norm` enumerates all subsets (meet in the middle).
INF_TO_ONE_EXACT_MAX_N = 24

# Iteration caps. The secular iterations converge in 1-6 steps in practice (monotone,
# quadratically convergent model steps); the caps only bound the safeguarded bisection
# fallback, which halves a bracket per step.
_TOP_MAX_ITER = 64
_ALL_MAX_ITER = 100


# --------------------------------------------------------------------------------------
# argument handling
# --------------------------------------------------------------------------------------


def _prob(p: Any, check: Any = True, name: str = "p") -> jax.Array:
    """Float array with at least one axis and no empty axis, holding probability vectors along
    the last axis when concrete and ``check`` is True (all checked eagerly)."""
    check = check_flag(check, "check_probability")
    arr = as_float_array(p, name)
    if arr.ndim == 0:
        raise ValueError(
            f"{name} must have at least one dimension (the distribution is the last axis), got a scalar"
        )
    if arr.size == 0:
        raise ValueError(f"{name} must be non-empty, got shape {arr.shape}")
    _check_probability(arr, name, enabled=check)
    return arr


def _beta(beta: Any, p: jax.Array) -> jax.Array:
    """Positive finite ``beta``, broadcastable to the batch shape ``p.shape[:-1]``."""
    check_positive_finite(beta, "beta")
    b = beta if isinstance(beta, jax.core.Tracer) else jnp.asarray(beta)
    try:
        np.broadcast_shapes(jnp.shape(b), p.shape[:-1])
    except ValueError as err:
        raise ValueError(
            f"beta must be a scalar or broadcastable to the batch shape {p.shape[:-1]}, "
            f"got shape {jnp.shape(b)}"
        ) from err
    return b.astype(p.dtype)


def _alpha(alpha: Any) -> float:
    return check_in_closed_interval(alpha, "alpha", 1.0, 2.0)


def _finite_rows(p: jax.Array) -> jax.Array:
    return jnp.all(jnp.isfinite(p), axis=-1)


def _by_rows(core, p: jax.Array, *args):
    """Apply a jitted row-wise ``core`` to ``p`` flattened to ``(rows, n)``.

    Leading axes are pure batch axes, so flattening them first lets every batch shape with
    the same number of rows share one compiled executable.
    """
    batch, n = p.shape[:-1], p.shape[-1]
    out = core(p.reshape((-1, n)), *args)
    return jax.tree_util.tree_map(lambda o: o.reshape(batch + o.shape[1:]), out)


# --------------------------------------------------------------------------------------
# Jacobian matrices
# --------------------------------------------------------------------------------------


def _dmr1(d: jax.Array, u: jax.Array, rho: jax.Array) -> jax.Array:
    """``diag(d) - rho u u^T`` batched over leading axes."""
    n = d.shape[-1]
    eye = jnp.eye(n, dtype=d.dtype)
    return d[..., :, None] * eye - rho[..., None, None] * u[..., :, None] * u[..., None, :]


def softmax_jacobian(p: Any, *, beta: Any = 1.0, check_probability: bool = True) -> jax.Array:
    r"""Jacobian of softmax with inverse temperature :math:`\beta`, from its output.

    .. math::
        J = \frac{\partial\,\mathrm{softmax}(\beta z)}{\partial z}
          = \beta\,\big(\operatorname{diag}(p) - p p^\top\big),
        \qquad p = \mathrm{softmax}(\beta z).

    Source: derived here (docs/notes/field.md §1.1); ``proofs_check`` id
    ``softmax_jacobian.derivative``.

    Args:
      p: probabilities, shape ``(..., n)``; the last axis is the distribution.
      beta: inverse temperature, a positive finite scalar or an array broadcastable to
        ``p.shape[:-1]``.
      check_probability: check eagerly that ``p`` holds probability vectors (the module's
        *Domain*; ``ValueError`` naming ``p`` otherwise). Skipped for traced ``p`` (under
        ``jax.jit``, ``jax.vmap``, ``jax.grad``); ``False`` evaluates the formula on any real ``p``.

    Returns:
      Array of shape ``(..., n, n)``, symmetric, with rows summing to
      :math:`\beta p_i (1 - \sum_j p_j)` (zero on the simplex).

    Example:
      >>> import jax.numpy as jnp
      >>> from softmax_stability.jacobian import softmax_jacobian
      >>> J = softmax_jacobian(jnp.array([0.5, 0.5]), beta=2.0)
      >>> [[round(float(v), 6) for v in row] for row in J]
      [[0.5, -0.5], [-0.5, 0.5]]
    """
    p = _prob(p, check_probability)
    b = _beta(beta, p)
    return b[..., None, None] * _by_rows(_softmax_jac, p)


def topk_jacobian(p: Any, selected: Any, *, beta: Any = 1.0,
                  check_probability: bool = True) -> jax.Array:
    r"""Jacobian of top-k softmax (the heavy-hitter map :math:`\xi_h`) from its output.

    Away from ties the selected set :math:`S` is locally constant and
    :math:`\xi_h(z)_i = \mathbb 1[i\in S]\, e^{\beta z_i}/\sum_{j\in S} e^{\beta z_j}`, so

    .. math::
        J = \beta\,\big(\operatorname{diag}(p) - p p^\top\big), \qquad p_i = 0 \text{ for } i\notin S,

    i.e. softmax's Jacobian on :math:`S` and zero elsewhere; the formula is automatically
    zero outside :math:`S` because :math:`p` is. ``selected`` only zeroes entries of ``p``
    outside :math:`S` (a guard against round-off left there by the caller), and the
    probability check (``check_probability``) applies to the entries in :math:`S`. At ties of
    the k-th largest logit the map is discontinuous and this is the one-sided Jacobian of
    the chosen set.

    Source: derived here (docs/notes/field.md §1.1, §3.3); ``proofs_check`` id
    ``softmax_jacobian.derivative`` (the formula on :math:`S`).

    Args:
      p: top-k probabilities, shape ``(..., n)``.
      selected: boolean mask of the selected set (``True`` = kept), broadcastable to
        ``p.shape``. Integer 0/1 masks are accepted.
      beta: inverse temperature, as in :func:`softmax_jacobian`.
      check_probability: check eagerly that ``p`` holds probability vectors (the module's
        *Domain*; ``ValueError`` naming ``p`` otherwise). Skipped for traced ``p`` (under
        ``jax.jit``, ``jax.vmap``, ``jax.grad``); ``False`` evaluates the formula on any real ``p``.

    Returns:
      Array of shape ``(..., n, n)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from softmax_stability.jacobian import topk_jacobian
      >>> J = topk_jacobian(jnp.array([0.75, 0.25, 0.0]), jnp.array([True, True, False]))
      >>> [[round(float(v), 4) for v in row] for row in J]
      [[0.1875, -0.1875, 0.0], [-0.1875, 0.1875, 0.0], [0.0, 0.0, 0.0]]
    """
    check = check_flag(check_probability, "check_probability")
    p = _prob(p, False)
    sel = jnp.asarray(selected)
    if not (sel.dtype == jnp.bool_ or jnp.issubdtype(sel.dtype, jnp.integer)):
        raise TypeError(f"selected must be a boolean mask, got dtype {sel.dtype}")
    try:
        shape = np.broadcast_shapes(sel.shape, p.shape)
    except ValueError as err:
        raise ValueError(
            f"selected must be broadcastable to p's shape {p.shape}, got shape {sel.shape}"
        ) from err
    # only the entries of S are used, so only they must form a probability vector
    _check_probability(jnp.broadcast_to(p, shape), "p", where=jnp.broadcast_to(sel.astype(bool), shape),
                       enabled=check)
    return softmax_jacobian(jnp.where(sel.astype(bool), p, 0), beta=beta, check_probability=False)


def _entmax_s(p: jax.Array, alpha: float) -> jax.Array:
    """``s_i = p_i^{2-alpha}`` on the support, 0 elsewhere (no 0**0)."""
    pos = p > 0
    if alpha == 2.0:
        s = pos.astype(p.dtype)
    elif alpha == 1.0:
        s = jnp.where(pos, p, 0)
    else:
        s = jnp.where(pos, jnp.power(jnp.where(pos, p, 1), 2.0 - alpha), 0)
    return jnp.where(jnp.isfinite(p), s, jnp.nan)  # NaN/inf entries propagate


def _nan_rows(J: jax.Array, p: jax.Array) -> jax.Array:
    return jnp.where(_finite_rows(p)[..., None, None], J, jnp.nan)


@jax.jit
def _softmax_jac(p):
    return _nan_rows(_dmr1(p, p, jnp.ones(p.shape[:-1], p.dtype)), p)


@partial(jax.jit, static_argnums=(1,))
def _entmax_jac(p: jax.Array, alpha: float) -> jax.Array:
    s = _entmax_s(p, alpha)
    sig = jnp.sum(s, axis=-1)
    rho = jnp.where(sig > 0, 1 / jnp.where(sig > 0, sig, 1), 0)
    return _nan_rows(_dmr1(s, s, rho), p)


def sparsemax_jacobian(p: Any, *, check_probability: bool = True) -> jax.Array:
    r"""Jacobian of sparsemax from its output.

    .. math::
        J = \operatorname{diag}(s) - \frac{s s^\top}{|S|}, \qquad s = \mathbb 1[p > 0],\ S = \operatorname{supp} p,

    the orthogonal projector onto :math:`\{v : \operatorname{supp} v\subseteq S,\ \mathbf 1^\top v = 0\}`
    (valid where the support is locally constant). An all-zero row gives a zero matrix.

    Source: Martins & Astudillo (2016), as written in optax's
    ``projection_simplex`` Jacobian (docs/notes/field.md §3.1); ``proofs_check`` id
    ``sparse_maps.sparsemax_jacobian``.

    Args:
      p: sparsemax probabilities, shape ``(..., n)``.
      check_probability: check eagerly that ``p`` holds probability vectors (the module's
        *Domain*; ``ValueError`` naming ``p`` otherwise). Skipped for traced ``p`` (under
        ``jax.jit``, ``jax.vmap``, ``jax.grad``); ``False`` evaluates the formula on any real ``p``.

    Returns:
      Array of shape ``(..., n, n)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from softmax_stability.jacobian import sparsemax_jacobian
      >>> J = sparsemax_jacobian(jnp.array([0.6, 0.4, 0.0]))
      >>> [[round(float(v), 4) for v in row] for row in J]
      [[0.5, -0.5, 0.0], [-0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]
    """
    return _by_rows(_entmax_jac, _prob(p, check_probability), 2.0)


def entmax_jacobian(p: Any, alpha: float, *, check_probability: bool = True) -> jax.Array:
    r"""Jacobian of :math:`\alpha`-entmax from its output.

    .. math::
        J = \operatorname{diag}(s) - \frac{s s^\top}{\mathbf 1^\top s},
        \qquad s_i = p_i^{\,2-\alpha}\ (p_i > 0),\quad s_i = 0\ (p_i = 0).

    :math:`\alpha = 1` gives softmax's :math:`\operatorname{diag}(p) - pp^\top/\sum_j p_j`
    (equal to :func:`softmax_jacobian` on the simplex) and :math:`\alpha = 2` gives
    :func:`sparsemax_jacobian`. An all-zero row gives a zero matrix.

    Source: Peters, Niculae & Martins (ACL 2019), as implemented in the backward pass of
    ``deep-spin/entmax`` (docs/notes/field.md §3.2); ``proofs_check`` id
    ``sparse_maps.entmax_jacobian``.

    Args:
      p: entmax probabilities, shape ``(..., n)``.
      alpha: static Python number in :math:`[1, 2]`.
      check_probability: check eagerly that ``p`` holds probability vectors (the module's
        *Domain*; ``ValueError`` naming ``p`` otherwise). Skipped for traced ``p`` (under
        ``jax.jit``, ``jax.vmap``, ``jax.grad``); ``False`` evaluates the formula on any real ``p``.

    Returns:
      Array of shape ``(..., n, n)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from softmax_stability.jacobian import entmax_jacobian
      >>> J = entmax_jacobian(jnp.array([0.64, 0.36]), 1.5)
      >>> [[round(float(v), 4) for v in row] for row in J]
      [[0.3429, -0.3429], [-0.3429, 0.3429]]
    """
    return _by_rows(_entmax_jac, _prob(p, check_probability), _alpha(alpha))


# --------------------------------------------------------------------------------------
# largest eigenvalue of diag(d) - rho d d^T: the secular equation
# --------------------------------------------------------------------------------------
#
# With a = max d (index i1), b = the second largest entry (with multiplicity), delta = a-b,
# c1 = 1 - rho*a (supplied by the caller, computed without cancellation), the largest
# eigenvalue mu lies in [b, a] (interlacing) and, for delta > 0 and b > 0, is the unique
# root there of
#
#     g(mu) = (a - mu) f(mu) = a*c1 - mu + (a - mu) * rho * Psi(mu),
#     Psi(mu) = sum_{i != i1} d_i^2 / (mu - d_i)  (> 0, decreasing, pole at b),
#
# where f is the secular function 1 - rho sum d_i^2/(d_i - mu). g is strictly decreasing
# with |g'| >= 1, and every term is a sum of non-negative quantities except the data
# difference a*c1 - b, so evaluating g in the variable x = mu - b (gaps mu - d_i =
# (b - d_i) + x, no cancellation) determines mu to a few ulps *relative* to mu, even when
# mu is tiny (one dominant p, mu ~ p_(2)).
#
# Iteration (Bunch, Nielsen & Sorensen 1978 [citation unconfirmed]): model Psi by the
# rational function r + s/(mu - b) that matches Psi and Psi' at the current point. Each
# term w/(mu - q), q <= b, is concave in y = 1/(mu - b), so the model is >= Psi on (b, a);
# hence the model's root is >= the true root, the iterates decrease monotonically to it
# from any point after the first step, and convergence is quadratic. The model equation
# is a quadratic in X = xi * x_k whose positive root is taken in a cancellation-free form.


def _top_eig_solve(d, rho, c1):
    """Returns (mu, aux) with aux the quantities needed by the JVP."""
    n = d.shape[-1]
    dt = d.dtype
    a = jnp.max(d, axis=-1)
    i1 = jnp.argmax(d, axis=-1)
    is_top = jnp.arange(n) == i1[..., None]
    if n == 1:
        mu = a * c1
        return mu, (a, i1, is_top, jnp.zeros_like(a), jnp.zeros_like(a), jnp.zeros_like(a), None)
    dr = jnp.where(is_top, 0, d)
    b = jnp.max(dr, axis=-1)
    delta = a - b
    active = (delta > 0) & (b > 0)
    bs = jnp.where(active, b, 1)
    ds = jnp.where(active, delta, 1)
    K = a * c1 - b  # x* >= K (Rayleigh quotient at e_i1) and x* >= 0 (interlacing)
    e = b[..., None] - dr  # >= 0, gaps to the b pole
    eps = jnp.finfo(dt).eps

    # Start: root of the two-pole model that keeps only the tie group at b (weight m b^2)
    # and drops the other (positive) terms of Psi: a certified lower bound on x*.
    m = jnp.sum(dr == b[..., None], axis=-1).astype(dt)
    bet = K / bs - rho * m * bs
    c0 = rho * m * ds
    hyp = jnp.hypot(bet, 2 * jnp.sqrt(c0))
    xi0 = jnp.where(bet >= 0, (bet + hyp) / 2, 2 * c0 / (hyp - bet))
    x_lo = jnp.maximum(K, 0)
    x0 = bs * xi0
    x0 = jnp.where(jnp.isfinite(x0), jnp.maximum(x0, x_lo), x_lo)
    x0 = jnp.where(x0 > 0, jnp.minimum(x0, ds), 0.5 * ds)

    def step(x):
        t = dr / (e + x[..., None])  # d_i / (mu - d_i), >= 0
        t2 = t * t
        S2 = jnp.sum(t2, axis=-1)
        r = jnp.sum(t2 * e, axis=-1)
        c = 1 + rho * r
        B = (K + rho * r * ds) / x - rho * x * S2
        C = rho * S2 * ds
        sq = jnp.hypot(B, 2 * jnp.sqrt(c * C))
        xi = jnp.where(B >= 0, (B + sq) / (2 * c), 2 * C / (sq - B))
        return xi * x

    def safe(xn, x_hi):
        # In exact arithmetic the model root lies in [x*, x_hi] with x* >= x_lo. Round-off
        # near convergence can push it an ulp outside: clip (a step >= x_hi means the
        # iteration has stalled at the root). A non-finite step (overflow in extreme
        # unnormalised inputs) falls back to bisection.
        return jnp.where(jnp.isfinite(xn), jnp.clip(xn, x_lo, x_hi), 0.5 * (x_lo + x_hi))

    x1 = safe(step(x0), ds)  # an upper bound on x* (model >= Psi)

    def cond(state):
        x, x_prev, it = state
        # no x_prev - x: that difference can underflow (flushed to 0) for tiny p; when
        # the eps term underflows this reduces to "still decreasing", which stalls
        moving = active & (x_prev > x + 4 * eps * (x + bs))
        return (it < _TOP_MAX_ITER) & jnp.any(moving)

    def body(state):
        x, _, it = state
        xn = safe(step(x), x)
        return jnp.where(active, jnp.minimum(xn, x), x), x, it + 1

    x, _, _ = jax.lax.while_loop(cond, body, (x1, jnp.full_like(x1, jnp.inf), 0))
    x = jnp.where(active, x, 0)
    mu = jnp.where(
        delta > 0,
        jnp.where(active, b + x, jnp.maximum(a * c1, 0)),  # b == 0: other entries deflate
        a,  # exact tie at the top: eigenvalue p_(1)
    )
    return mu, (a, i1, is_top, b, x, delta, (dr, e))


@jax.custom_jvp
def _top_eig(d, rho, c1):
    return _top_eig_solve(d, rho, c1)[0]


@_top_eig.defjvp
def _top_eig_jvp(primals, tangents):
    # Implicit differentiation of g(mu; d, rho, c1) = 0 (derived here; no symbolic check,
    # tested against finite differences and dense autodiff in tests/test_jacobian.py):
    #   dmu = [a dc1 + (c1 + rho Psi) da + (a-mu) Psi drho + (a-mu) rho sum_i (2t_i + t_i^2) dd_i]
    #         / (1 + rho Psi + (a-mu) rho S2),   t_i = d_i/(mu - d_i), i != i1.
    d, rho, c1 = primals
    dd, drho, dc1 = tangents
    mu, (a, i1, is_top, b, x, delta, extra) = _top_eig_solve(d, rho, c1)
    da = jnp.sum(jnp.where(is_top, dd, 0), axis=-1)
    if extra is None:  # n == 1
        return mu, a * dc1 + c1 * da
    dr, e = extra
    active = (delta > 0) & (b > 0)
    xs = jnp.where(active, x, 1)
    t = jnp.where(active[..., None], dr / (e + xs[..., None]), 0)
    psi = jnp.sum(dr * t, axis=-1)
    S2 = jnp.sum(t * t, axis=-1)
    gap = jnp.where(active, delta - x, 0)  # a - mu
    dpsi_terms = jnp.sum(jnp.where(is_top, 0, (2 * t + t * t) * dd), axis=-1)
    num = a * dc1 + (c1 + rho * psi) * da + gap * psi * drho + gap * rho * dpsi_terms
    den = 1 + rho * psi + gap * rho * S2
    dmu_secular = num / den
    deflated = jnp.where(a * c1 > 0, a * dc1 + c1 * da, 0)
    dmu = jnp.where(delta > 0, jnp.where(active, dmu_secular, deflated), da)
    return mu, dmu


@jax.jit
def _softmax_top(p):
    ok = _finite_rows(p)
    pc = jnp.where(ok[..., None], p, 0)
    a = jnp.max(pc, axis=-1)
    lam = _top_eig(pc, jnp.ones_like(a), 1 - a)  # 1 - a is exact for a >= 1/2 (Sterbenz)
    return jnp.where(ok, lam, jnp.nan)


def spectral_norm(p: Any, *, beta: Any = 1.0, check_probability: bool = True) -> jax.Array:
    r"""Exact spectral norm of softmax's Jacobian, :math:`O(n)` per row, no matrix formed.

    For :math:`p` on the simplex, :math:`J=\beta(\operatorname{diag}p - pp^\top)` is PSD
    and :math:`\|J\|_2 = \beta\lambda_{\max}`, where :math:`\lambda_{\max}` is the root in
    :math:`[p_{(2)}, p_{(1)}]` (interlacing :math:`p_{(1)}\ge\lambda_1\ge p_{(2)}`) of the
    secular equation

    .. math::
        f(\mu) = 1 - \sum_i \frac{p_i^2}{p_i - \mu} = 0 .

    Special cases: a tie :math:`p_{(1)} = p_{(2)}` gives :math:`\lambda_{\max} = p_{(1)}`;
    a single nonzero entry gives :math:`p_{(1)}(1-p_{(1)})`; :math:`n = 1` gives
    :math:`p(1-p)` (0 for :math:`p = 1`); :math:`n = 2` on the simplex gives
    :math:`2p_1p_2`; zeros (masked or non-selected entries of top-k / sparsemax outputs)
    contribute nothing. Bounds: :math:`\max(p_{(2)}, \max_i p_i(1-p_i)) \le
    \lambda_{\max} \le \min(p_{(1)}, \max_i 2p_i(1-p_i), 1/2)`.

    Algorithm: the secular equation is multiplied by :math:`p_{(1)} - \mu` and solved in
    the offset :math:`x = \mu - p_{(2)}`, so every gap :math:`\mu - p_i` is formed without
    cancellation, by the monotone rational-model iteration of Bunch, Nielsen & Sorensen
    (1978, citation unconfirmed) started from a certified lower bound, with a bisection
    safeguard. Only ``max``/``argmax`` are needed (no sort); each iteration is one fused
    pass over the row. It runs under ``lax.while_loop`` until every row has stopped moving
    (typically 1-6 iterations, at most 64; the iterates decrease monotonically to the
    root, so a stalled iterate is converged). The result is accurate to a few ulps
    *relative* to :math:`\lambda_{\max}` (tested to :math:`10^{-12}` in float64 and
    :math:`10^{-5}` in float32 against 40-digit references, including near ties, one
    dominant entry, entries spread over 40 orders of magnitude, and :math:`n = 10^5`).
    Differentiable (``jax.grad``, ``jax.jvp``) by implicit differentiation of the secular
    equation, except at ties :math:`p_{(1)} = p_{(2)}`, where :math:`\lambda_{\max}` is
    not differentiable and the derivative of :math:`p_{(1)}` is returned.

    Source: derived here (docs/notes/field.md §1.3, §1.4); ``proofs_check`` ids
    ``softmax_jacobian.characteristic_polynomial`` (secular equation, interlacing),
    ``softmax_jacobian.interlacing``, ``softmax_jacobian.spectral_half`` (the bound
    :math:`\beta/2`; stated as the headline result of Nair 2025, arXiv:2510.23012,
    unconfirmed); the derivative is derived here by implicit differentiation and tested
    numerically only.

    Args:
      p: probabilities, shape ``(..., n)``, entries in :math:`[0,1]` with
        :math:`\sum_i p_i \le 1` (the output of any map in ``maps``). Outside that
        domain (``check_probability=False``) the result is the largest eigenvalue of
        :math:`\beta(\operatorname{diag}p - pp^\top)`, which is then not necessarily its
        spectral norm.
      beta: inverse temperature, a positive finite scalar or an array broadcastable to
        ``p.shape[:-1]``.
      check_probability: check eagerly that ``p`` holds probability vectors (the module's
        *Domain*; ``ValueError`` naming ``p`` otherwise). Skipped for traced ``p`` (under
        ``jax.jit``, ``jax.vmap``, ``jax.grad``); ``False`` evaluates the formula on any real ``p``.

    Returns:
      Array of shape ``p.shape[:-1]`` (broadcast with ``beta``), dtype of ``p``.

    Example:
      >>> import jax.numpy as jnp
      >>> from softmax_stability.jacobian import spectral_norm
      >>> round(float(spectral_norm(jnp.array([0.5, 0.5]))), 6)
      0.5
      >>> round(float(spectral_norm(jnp.array([0.7, 0.2, 0.1]), beta=2.0)), 6)
      0.668806
    """
    p = _prob(p, check_probability)
    b = _beta(beta, p)
    return b * _by_rows(_softmax_top, p)


@partial(jax.jit, static_argnums=(1,))
def _entmax_top(p, alpha):
    ok = _finite_rows(p)
    s = jnp.where(ok[..., None], _entmax_s(p, alpha), 0)
    sig = jnp.sum(s, axis=-1)
    pos = sig > 0
    sig1 = jnp.where(pos, sig, 1)
    i1 = jnp.argmax(s, axis=-1)
    rest = jnp.sum(jnp.where(jnp.arange(s.shape[-1]) == i1[..., None], 0, s), axis=-1)
    # diag(s) - s s^T / sigma: rho = 1/sigma, c1 = 1 - s_max/sigma = rest/sigma (no cancellation)
    lam = _top_eig(s, jnp.where(pos, 1 / sig1, 0), rest / sig1)
    return jnp.where(ok, jnp.where(pos, lam, 0), jnp.nan)


def entmax_spectral_norm(p: Any, alpha: float, *, check_probability: bool = True) -> jax.Array:
    r"""Exact spectral norm of the :math:`\alpha`-entmax Jacobian, :math:`O(n)` per row.

    :math:`J = \operatorname{diag}(s) - ss^\top/\sigma` with :math:`s_i = p_i^{2-\alpha}`
    on the support and :math:`\sigma = \sum_i s_i` is again diagonal minus rank one; in
    fact :math:`J = \sigma\,(\operatorname{diag}q - qq^\top)` with :math:`q = s/\sigma`, a
    probability vector, so :math:`\|J\|_2 = \sigma\,\lambda_{\max}(\operatorname{diag}q -
    qq^\top)`. It is computed by the same secular solver as :func:`spectral_norm`
    (applied to :math:`\operatorname{diag}(s) - \rho ss^\top`, :math:`\rho = 1/\sigma`,
    without rounding :math:`q`). It satisfies
    :math:`\|J\|_2 \le \min(\max_i s_i, \sigma/2) \le \min(1, k^{\alpha-1}/2)` with
    :math:`k = |\operatorname{supp} p|`. :math:`\alpha = 1` is softmax's norm,
    :math:`\alpha = 2` sparsemax's (see :func:`sparsemax_spectral_norm`).

    Source: derived here (docs/notes/field.md §3.2); ``proofs_check`` ids
    ``sparse_maps.entmax_jacobian`` (the Jacobian) and ``sparse_maps.entmax_spectral_bound``
    (the bound).

    Args:
      p: entmax probabilities, shape ``(..., n)``.
      alpha: static Python number in :math:`[1, 2]`.
      check_probability: check eagerly that ``p`` holds probability vectors (the module's
        *Domain*; ``ValueError`` naming ``p`` otherwise). Skipped for traced ``p`` (under
        ``jax.jit``, ``jax.vmap``, ``jax.grad``); ``False`` evaluates the formula on any real ``p``.

    Returns:
      Array of shape ``p.shape[:-1]``; zero for an all-zero row.

    Example:
      >>> import jax.numpy as jnp
      >>> from softmax_stability.jacobian import entmax_spectral_norm
      >>> round(float(entmax_spectral_norm(jnp.array([0.64, 0.36]), 1.5)), 6)
      0.685714
    """
    p = _prob(p, check_probability)
    a = _alpha(alpha)
    return _by_rows(_entmax_top, p, a)


def entmax_spectral_bound(p: Any, alpha: float, *, check_probability: bool = True) -> jax.Array:
    r"""Upper bound :math:`\min(\max_i s_i, \sigma/2)` on the :math:`\alpha`-entmax Jacobian norm.

    With :math:`s_i = p_i^{2-\alpha}` on the support and :math:`\sigma = \sum_i s_i`,
    :math:`v^\top J v = \sigma\,\mathrm{Var}_{s/\sigma}(v)`, which is at most
    :math:`\sigma/2` for unit :math:`v` (the variance argument of the softmax case) and at
    most :math:`\max_i s_i` (Gershgorin-free: :math:`J \preceq \operatorname{diag}(s)`).
    :math:`\alpha = 1` gives softmax's :math:`\min(p_{\max}, 1/2)`.

    Source: derived here; ``proofs_check`` id ``sparse_maps.entmax_spectral_bound``
    (claim ``S3-entmax-spectral-bound``).

    Args:
      p: entmax probabilities, shape ``(..., n)``.
      alpha: static Python number in :math:`[1, 2]`.
      check_probability: check eagerly that ``p`` holds probability vectors (the module's
        *Domain*; ``ValueError`` naming ``p`` otherwise). Skipped for traced ``p`` (under
        ``jax.jit``, ``jax.vmap``, ``jax.grad``); ``False`` evaluates the formula on any real ``p``.

    Returns:
      Array of shape ``p.shape[:-1]``; zero for an all-zero row, NaN for rows with NaN/inf.

    Example:
      >>> import jax.numpy as jnp
      >>> from softmax_stability.jacobian import entmax_spectral_bound
      >>> round(float(entmax_spectral_bound(jnp.array([0.64, 0.36]), 1.5)), 6)
      0.7
    """
    p = _prob(p, check_probability)
    a = _alpha(alpha)
    s = _entmax_s(p, a)
    bound = jnp.minimum(jnp.max(s, axis=-1), 0.5 * jnp.sum(s, axis=-1))
    return jnp.where(_finite_rows(p), bound, jnp.nan)


@partial(jax.jit, static_argnums=(1,))
def _entmax_as_softmax(p, alpha):
    s = _entmax_s(p, alpha)
    sig = jnp.sum(s, axis=-1)
    sig1 = jnp.where(sig > 0, sig, 1)
    ok = _finite_rows(p)[..., None]
    return jnp.where(ok, s / sig1[..., None], jnp.nan), sig  # a NaN/inf row: q all NaN, as documented


def entmax_as_softmax(p: Any, alpha: float, *,
                      check_probability: bool = True) -> tuple[jax.Array, jax.Array]:
    r"""The :math:`\alpha`-entmax Jacobian as a scaled softmax Jacobian: ``(q, sigma)``.

    .. math::
        J_\alpha = \operatorname{diag}(s) - \frac{ss^\top}{\sigma}
                 = \sigma\,\big(\operatorname{diag}(q) - qq^\top\big),
        \qquad s_i = p_i^{2-\alpha}\ (p_i > 0),\quad \sigma = \textstyle\sum_i s_i,\quad q = s/\sigma,

    so every norm of softmax's Jacobian applies: :math:`\|J_\alpha\| = \sigma\,\|J_{\rm softmax}(q)\|`
    for :func:`spectral_norm`, :func:`frobenius_norm`, :func:`one_norm`, :func:`inf_to_one_norm`
    and :func:`eigenvalues` (``sigma * f(q)``). :math:`\alpha = 2` is sparsemax
    (:math:`q` uniform on the support, :math:`\sigma = |S|`), :math:`\alpha = 1` is softmax
    (:math:`q = p/\sum p`). An all-zero row gives ``q = 0``, ``sigma = 0`` (and ``sigma * f(q) =
    0``); rows with NaN/inf give NaN.

    Source: derived here (one line of algebra; the form used by :func:`entmax_spectral_norm`).

    Args:
      p: entmax probabilities, shape ``(..., n)``.
      alpha: static Python number in :math:`[1, 2]`.
      check_probability: check eagerly that ``p`` holds probability vectors (the module's
        *Domain*; ``ValueError`` naming ``p`` otherwise). Skipped for traced ``p`` (under
        ``jax.jit``, ``jax.vmap``, ``jax.grad``); ``False`` evaluates the formula on any real ``p``.

    Returns:
      ``(q, sigma)``: ``q`` of ``p``'s shape (a probability vector per row), ``sigma`` of shape
      ``p.shape[:-1]``.

    Example:
      >>> import jax.numpy as jnp
      >>> from softmax_stability.jacobian import entmax_as_softmax, frobenius_norm, spectral_norm
      >>> q, sigma = entmax_as_softmax(jnp.array([0.64, 0.36]), 1.5)
      >>> round(float(sigma * spectral_norm(q)), 6)  # = entmax_spectral_norm(p, 1.5)
      0.685714
      >>> q, sigma = entmax_as_softmax(jnp.array([0.5, 0.3, 0.2, 0.0]), 2.0)  # sparsemax, |S| = 3
      >>> round(float(sigma * frobenius_norm(q)), 6)  # a rank-2 projector: sqrt(2)
      1.414214
    """
    return _by_rows(_entmax_as_softmax, _prob(p, check_probability), _alpha(alpha))


def sparsemax_spectral_norm(p: Any, *, check_probability: bool = True) -> jax.Array:
    r"""Spectral norm of the sparsemax Jacobian: 1 if :math:`|\operatorname{supp}p|\ge 2`, else 0.

    The sparsemax Jacobian is an orthogonal projector onto a space of dimension
    :math:`|S| - 1`.

    Source: Martins & Astudillo (2016) (docs/notes/field.md §3.1); ``proofs_check`` id
    ``sparse_maps.sparsemax_jacobian`` (the Jacobian is the projector, hence the norm).

    Args:
      p: sparsemax probabilities, shape ``(..., n)``.
      check_probability: check eagerly that ``p`` holds probability vectors (the module's
        *Domain*; ``ValueError`` naming ``p`` otherwise). Skipped for traced ``p`` (under
        ``jax.jit``, ``jax.vmap``, ``jax.grad``); ``False`` evaluates the formula on any real ``p``.

    Returns:
      Array of shape ``p.shape[:-1]``, dtype of ``p``; NaN for rows with NaN/inf.

    Example:
      >>> import jax.numpy as jnp
      >>> from softmax_stability.jacobian import sparsemax_spectral_norm
      >>> [float(v) for v in sparsemax_spectral_norm(jnp.array([[0.6, 0.4, 0.0], [1.0, 0.0, 0.0]]))]
      [1.0, 0.0]
    """
    p = _prob(p, check_probability)
    k = jnp.sum(p > 0, axis=-1)
    out = (k >= 2).astype(p.dtype)
    return jnp.where(_finite_rows(p), out, jnp.nan)


# --------------------------------------------------------------------------------------
# the whole spectrum
# --------------------------------------------------------------------------------------


# Memory. Each of the n roots of a row needs an O(n) sum over the poles, so a row costs O(n^2)
# work; the sums are evaluated on blocks of (rows x slots x poles) of at most
# _BLOCK_ELEMS elements, the rows and the slots (one slot per entry of the sorted row)
# chunked by lax.map, so that memory is O(rows * n) (input, output and the per-slot
# iteration state) plus a fixed block, whatever the shape. (Evaluating all slots of all rows
# at once needed (rows, n, n) temporaries: 2.8 TB for a 4096 x 4096 map.) 2^16 elements
# (512 KiB in float64) keep a block in cache: 1.5x faster than 2^18 and 2x than 2^14 or 2^21
# (measured, 8 x 2048, float64, 2 CPU cores).
_BLOCK_ELEMS = 1 << 16


def _eig_blocks(rows: int, n: int) -> tuple[int, int, int, int]:
    """(rows per chunk, row chunks, slots per chunk, slot chunks), block <= _BLOCK_ELEMS."""
    if n * n <= _BLOCK_ELEMS:
        rc, sc = max(1, min(rows, _BLOCK_ELEMS // (n * n))), n
    else:
        rc, sc = 1, max(1, _BLOCK_ELEMS // n)
    nr = -(-rows // rc)
    ns = -(-n // sc)
    return -(-rows // nr), nr, -(-n // ns), ns  # balanced chunks


def _by_blocks(fn, rc, nr, *arrays):
    """``fn`` on row chunks of the (rows, n) ``arrays`` (zero-padded), results concatenated."""
    rows = arrays[0].shape[0]
    pad = nr * rc - rows

    def split(x):
        return jnp.pad(x, ((0, pad), (0, 0))).reshape((nr, rc) + x.shape[1:])

    out = jax.lax.map(lambda xs: fn(*xs), tuple(split(x) for x in arrays))
    return jax.tree_util.tree_map(lambda o: o.reshape((nr * rc,) + o.shape[2:])[:rows], out)


def _by_slots(fn, sc, ns, slot_arrays, pads):
    """``fn`` on slot chunks of the (r, n) per-slot ``slot_arrays``, results reassembled."""
    n = slot_arrays[0].shape[-1]
    width = ns * sc

    def split(x, v):
        x = jnp.pad(x, ((0, 0), (0, width - n)), constant_values=v)
        return jnp.moveaxis(x.reshape(x.shape[0], ns, sc), 1, 0)

    out = jax.lax.map(lambda xs: fn(*xs), tuple(split(x, v) for x, v in zip(slot_arrays, pads)))
    return jax.tree_util.tree_map(lambda o: jnp.moveaxis(o, 0, 1).reshape(o.shape[1], width)[:, :n], out)


def _sum_last(*xs):
    """Sums of several same-shaped arrays over the last axis, as one variadic reduction."""
    zero = tuple(jnp.zeros((), x.dtype) for x in xs)
    return jax.lax.reduce(xs, zero, lambda a, b: tuple(u + v for u, v in zip(a, b)), (xs[0].ndim - 1,))


def _eig_setup(d):
    """Per-slot data of sorted rows ``d`` (r, n): deflated slots, tie groups, lower poles."""
    is_zero = d <= 0
    nxt = jnp.concatenate([d[:, 1:], jnp.full((d.shape[0], 1), jnp.inf, d.dtype)], axis=-1)
    tie_next = d == nxt
    # first index of each entry's tie group; the poles below it are the "lower" set
    g = jax.vmap(lambda row: jnp.searchsorted(row, row, side="left"))(d)
    L = jnp.take_along_axis(d, jnp.maximum(g - 1, 0), axis=-1)
    has_lower = (g >= 1) & (L > 0)
    L = jnp.where(has_lower, L, 0)
    return is_zero, tie_next, g, L, has_lower


def _eig_solve_slots(d, w, wsum, U, L, has_lower, g, is_zero, tie_next):
    """Roots for a chunk of slots: rows ``d``, ``w = d**2`` (r, n); per-slot data (r, s).

    Returns ``(root, o, tau)`` with ``root = o + tau`` for the secular slots, ``o`` the pole
    the root is computed from (the gaps ``d_i - root`` are ``(d_i - o) - tau``).
    """
    dt = d.dtype
    eps = jnp.finfo(dt).eps
    n = d.shape[-1]
    dp = d[:, None, :]
    wp = w[:, None, :]
    lower = jnp.arange(n) < g[..., None]  # (r, slot, pole)

    def sums(o, tau):
        # gaps d_i - mu computed as (d_i - o) - tau with o a pole next to the root
        den = (dp - o[..., None]) - tau[..., None]
        inv = jnp.where(wp > 0, 1 / jnp.where(den == 0, 1, den), 0)
        term = wp * inv
        term2 = term * inv
        # one variadic reduction: as four jnp.sum calls XLA:CPU emitted a multi-output
        # reduction 30-50x slower per element than a single one (measured, n = 4096)
        psi, phi, dpsi, dphi = _sum_last(
            jnp.where(lower, term, 0), jnp.where(lower, 0, term),
            jnp.where(lower, term2, 0), jnp.where(lower, 0, term2))
        return 1 - psi - phi, dpsi, dphi

    # origin: the pole nearer to the root (sign of f at the interval's midpoint)
    mid = 0.5 * (L + U)
    f_mid = sums(jnp.zeros_like(mid), mid)[0]
    use_upper = (~has_lower) | (f_mid > 0)
    o = jnp.where(use_upper, U, L)
    l = L - o
    u = U - o
    # brackets in tau = mu - o: interior roots lie in the half of (L, U) picked above;
    # the exterior root lies in [U - sum p^2, U): at mu = U - sum p^2, sum p_i^2/(p_i - mu) <= 1
    lo = jnp.where(has_lower, jnp.where(use_upper, 0.5 * (L - U), 0.0), -wsum)
    hi = jnp.where(has_lower, jnp.where(use_upper, 0.0, 0.5 * (U - L)), 0.0)
    # start at the midpoint; the exterior root at mu = 0, its value on the simplex
    # (f(0) = 1 - sum p), where the one-pole model converges only linearly from far below
    tau0 = jnp.where(has_lower, 0.5 * (lo + hi), jnp.clip(-U, lo, hi))
    # tolerance eps * scale on the steps: relative to the pole next to an interior root; for
    # the exterior root (0 on the simplex, resolved only to the rounding of f, whose terms
    # sum to ~1, over |f'| ~ n) eps * sum p^2, which is <= eps p_(1) and >= eps (sum p)^2 / n
    scale = jnp.maximum(jnp.where(has_lower, jnp.abs(U), jnp.maximum(jnp.abs(U), wsum)), jnp.finfo(dt).tiny)
    solve = ~(is_zero | tie_next)

    def model_step(tau, f, dpsi, dphi):
        dl = l - tau
        du = u - tau
        s_lo = jnp.where(has_lower, dl * dl * dpsi, 0)
        s_up = du * du * dphi
        C = f + jnp.where(has_lower, dl * dpsi, 0) + du * dphi
        # interior: C(l-T)(u-T) - s_lo(u-T) - s_up(l-T) = 0, one root in (l, u)
        A2 = C
        A1 = -(C * (l + u) - s_lo - s_up)
        A0 = C * l * u - s_lo * u - s_up * l
        disc = jnp.maximum(A1 * A1 - 4 * A2 * A0, 0)
        qq = -0.5 * (A1 + jnp.where(A1 >= 0, 1, -1) * jnp.sqrt(disc))
        r1 = qq / jnp.where(A2 == 0, 1, A2)
        r1 = jnp.where(A2 == 0, jnp.inf, r1)
        r2 = A0 / jnp.where(qq == 0, 1, qq)
        r2 = jnp.where(qq == 0, jnp.inf, r2)
        inside1 = (r1 > l) & (r1 < u)
        t_int = jnp.where(inside1, r1, r2)
        # exterior (no lower pole, origin U): C - s_up/(-T) = 0
        t_ext = -s_up / jnp.where(C > 0, C, 1)
        t_ext = jnp.where(C > 0, t_ext, jnp.nan)
        return jnp.where(has_lower, t_int, t_ext)

    def cond(state):
        tau, lo_, hi_, it, moving = state
        return (it < _ALL_MAX_ITER) & jnp.any(moving)

    def body(state):
        tau, lo_, hi_, it, moving = state
        f, dpsi, dphi = sums(o, tau)
        lo_ = jnp.where(f > 0, tau, lo_)
        hi_ = jnp.where(f > 0, hi_, tau)
        tm = model_step(tau, f, dpsi, dphi)
        ok = jnp.isfinite(tm) & (tm > lo_) & (tm < hi_)
        # converged when the model step is below the tolerance. Without this test a
        # converged iterate whose model step lands on (or an ulp outside) the bracket end
        # just set to it fell back to bisection, which then halved the bracket down to the
        # tolerance (with the two changes above: ~50 -> ~6 iterations on softmax rows of
        # length 1024).
        conv = jnp.abs(tm - tau) <= 2 * eps * scale
        tn = jnp.where(ok, tm, jnp.where(conv, tau, 0.5 * (lo_ + hi_)))
        still = solve & ~conv & (jnp.abs(tn - tau) > 2 * eps * scale) & (hi_ - lo_ > 2 * eps * scale)
        tn = jnp.where(moving, tn, tau)
        return tn, lo_, hi_, it + 1, moving & still

    tau, _, _, _, _ = jax.lax.while_loop(cond, body, (tau0, lo, hi, 0, solve))
    root = jnp.where(is_zero, 0, jnp.where(tie_next, U, o + tau))
    return root, o, tau


def _eig_solve_rows(d, sc, ns):
    """Unsorted eigenvalues (slot order) of diag(d) - dd^T for sorted rows d >= 0, with (o, tau)."""
    w = d * d
    wsum = jnp.sum(w, axis=-1, keepdims=True)
    is_zero, tie_next, g, L, has_lower = _eig_setup(d)

    def chunk(U, L_, hl, g_, z_, t_):
        return _eig_solve_slots(d, w, wsum, U, L_, hl, g_, z_, t_)

    # padding slots are deflated (is_zero): no iterations
    return _by_slots(chunk, sc, ns, (d, L, has_lower, g, is_zero, tie_next), (0, 0, False, 0, True, False))


def _eig_solve(d):
    rc, nr, sc, ns = _eig_blocks(*d.shape)
    return _by_blocks(lambda x: _eig_solve_rows(x, sc, ns), rc, nr, d)


def _eig_tangent_slots(d, w, dd, o, tau, secular):
    """dlambda = v^T dJ v for a chunk of secular slots, v the unit eigenvector.

    dJ = diag(dd) - dd d^T - d dd^T gives dlambda = sum_k dd_k v_k (v_k - 2 c), c = d.v, with
    v proportional to u_k = d_k/(d_k - lambda) (gaps formed as (d_k - o) - tau, as in the
    solver), here scaled by its largest component so that no square of a tiny gap overflows:
    dlambda = sum_k dd_k u_k (u_k - 2B)/A with A = sum u^2, B = d.u. A root that landed exactly
    on a pole (round-off) takes (nearly) that pole's coordinate vector. One reduction per
    step: sibling reductions of one (slots x poles) block ran ~30x slower on XLA:CPU.
    """
    dp = d[:, None, :]
    pos = w[:, None, :] > 0
    gap = (dp - o[..., None]) - tau[..., None]
    big = jnp.finfo(d.dtype).max
    q = jnp.where(pos, jnp.clip(dp / jnp.where(gap == 0, 1, gap), -big, big), 0)
    q = jnp.where(pos & (gap == 0), big, q)
    m = jnp.max(jnp.abs(q), axis=-1, keepdims=True)
    u = q / jnp.where(m > 0, m, 1)
    A, B = _sum_last(u * u, dp * u)  # one reduction (see _eig_solve_slots)
    A = jnp.where(A > 0, A, 1)[..., None]
    coef = u * (u - 2 * B[..., None]) / A
    return jnp.where(secular, jnp.sum(coef * dd[:, None, :], axis=-1), 0)


def _eig_tangent_rows(d, dd, o, tau, sc, ns):
    """Tangents of the slot-order eigenvalues of sorted rows d along dd (linear in dd)."""
    n = d.shape[-1]
    is_zero, tie_next, g, _, _ = _eig_setup(d)
    secular = ~(is_zero | tie_next)
    w = d * d
    # a tie group of c equal entries v carries c-1 eigenvalues v: each gets the mean of dd over
    # the group (the derivative of their mean; the eigenvalues themselves split non-smoothly)
    gsum = jax.vmap(lambda x, gi: jax.ops.segment_sum(x, gi, num_segments=n))(dd, g)
    count = jax.vmap(lambda gi: jax.ops.segment_sum(jnp.ones_like(gi), gi, num_segments=n))(g)
    mean = jnp.take_along_axis(gsum, g, axis=-1) / jnp.take_along_axis(count, g, axis=-1).astype(d.dtype)
    body = jax.checkpoint(_eig_tangent_slots)  # recompute the (slots x poles) block in reverse mode

    def chunk(o_, t_, s_):
        return body(d, w, dd, o_, t_, s_)

    sec = _by_slots(chunk, sc, ns, (o, tau, secular), (0, 0, False))
    # a zero entry (a deflated coordinate, eigenvector e_k) has dlambda = dd_k (1 - 2 p_k) = dd_k
    return jnp.where(is_zero, dd, jnp.where(tie_next, mean, sec))


@jax.custom_jvp
def _eigs_sorted(d):
    """Ascending eigenvalues of diag(d) - dd^T for sorted (ascending) rows d >= 0, (rows, n)."""
    return jnp.sort(_eig_solve(d)[0], axis=-1)


@_eigs_sorted.defjvp
def _eigs_sorted_jvp(primals, tangents):
    (d,), (dd,) = primals, tangents
    raw, o, tau = _eig_solve(d)
    rc, nr, sc, ns = _eig_blocks(*d.shape)
    draw = _by_blocks(lambda *xs: _eig_tangent_rows(*xs, sc, ns), rc, nr, d, dd, o, tau)
    perm = jnp.argsort(raw, axis=-1)
    return jnp.take_along_axis(raw, perm, axis=-1), jnp.take_along_axis(draw, perm, axis=-1)


@jax.jit
def _eigs(p):
    ok = _finite_rows(p)
    pc = jnp.where(ok[..., None], p, 0)
    d = jnp.sort(pc, axis=-1)
    lam = _eigs_sorted(d)
    # the largest one from the relative-accuracy solver (it lies in [p_(2), p_(1)], above
    # every other eigenvalue, so the order is kept)
    top = _softmax_top(pc)
    lam = lam.at[..., -1].set(top)
    return jnp.where(ok[..., None], lam, jnp.nan)


def eigenvalues(p: Any, *, beta: Any = 1.0, check_probability: bool = True) -> jax.Array:
    r"""All eigenvalues of softmax's Jacobian, ascending, from the secular equation.

    :math:`J = \beta(\operatorname{diag}p - pp^\top)` is diagonal minus rank one. With the
    distinct nonzero values :math:`v_1 < \dots < v_m` of :math:`p`, of multiplicities
    :math:`c_k`, its spectrum is:

    * :math:`\beta v_k` with multiplicity :math:`c_k - 1` (ties), and :math:`0` once for
      every zero entry (deflated coordinates);
    * one root of :math:`f(\mu) = 1 - \sum_i p_i^2/(p_i - \mu)` in each interval
      :math:`(v_{k-1}, v_k)`, :math:`k = 2..m`;
    * one root below :math:`v_1`, which is :math:`0` when :math:`\sum_i p_i = 1`
      (eigenvector :math:`\mathbf 1`), and lies in :math:`[v_1 - \sum p_i^2, v_1)` in
      general.

    Each root is found by a bracketed rational-interpolation iteration on two poles
    (the "middle way" of Li 1994 / LAPACK ``dlaed4``, citation unconfirmed) with the
    origin at the nearer pole, stopped when the model's step is below
    :math:`2\epsilon` times the nearer pole (the root below :math:`v_1`: :math:`2\epsilon
    \sum_i p_i^2`); 5-9 iterations on softmax rows of length 1024-4096.

    Cost: a sort plus :math:`O(n)` work per eigenvalue and iteration, so :math:`O(n^2)` work
    per row (for the largest eigenvalue alone use :func:`spectral_norm`, :math:`O(n)` per row,
    whose value this function also returns as its last entry). Memory: :math:`O(n)` per
    row: the sums over the poles are evaluated on blocks of at most :math:`2^{16}` (rows
    :math:`\times` eigenvalues :math:`\times` poles) at a time, chunked by ``lax.map``, so a
    map of any shape whose input and output fit in memory gets its spectrum (a 4096
    :math:`\times` 4096 float64 map: 0.41 GB of temporaries by XLA's estimate, about three
    times the output; reverse mode 2.6 GB).

    Accuracy: absolute error of a few ulps of :math:`\beta p_{(1)}`, like
    ``numpy.linalg.eigvalsh``; the largest eigenvalue is accurate relative to itself (it is
    :func:`spectral_norm`'s). Tested against 40-digit ``mpmath.eigsy`` on the hard cases of the
    test suite (near ties, one dominant entry, entries spread over 40 orders of magnitude or
    below 1e-300, n = 1, 2): at most :math:`4\epsilon\,\beta p_{(1)}` in float64 and float32
    (observed :math:`2.3\cdot10^{-16}` and :math:`7.5\cdot10^{-8}` times :math:`\beta p_{(1)}`).
    The other eigenvalues are *not* accurate relative to themselves when they are far below
    :math:`p_{(1)}`, for two reasons: the eigenvalue that is 0 on the simplex comes out at the
    size of the rounding of :math:`\sum_i p_i` (a stored float row sums to 1 only up to an ulp),
    and a root between tiny entries of :math:`p` next to large ones (e.g. between 1e-300 and
    1e-250 in :math:`(0.6, 0.4, 10^{-300}, 10^{-250})`) is found from :math:`f(\mu)`, whose
    terms are of size 1, so it is resolved only to an absolute :math:`\epsilon p_{(1)}`.

    Derivatives (``jax.grad``, ``jax.jvp``, ``jax.jacfwd``/``jacrev``, under ``jit`` and
    ``vmap``): a ``custom_jvp`` (the iteration is not differentiated). For a simple
    eigenvalue :math:`\lambda` with unit eigenvector :math:`v`, :math:`d\lambda = v^\top\,dJ\,v`
    with :math:`dJ = \operatorname{diag}(dp) - dp\,p^\top - p\,dp^\top`, i.e.
    :math:`d\lambda = \sum_k dp_k\, v_k(v_k - 2\,p^\top v)`, where for a secular root
    :math:`v \propto (p_k/(p_k - \lambda))_k` (this is the implicit derivative of
    :math:`f(\lambda) = 0`); :math:`O(n)` per eigenvalue, on the same blocks, linear in
    :math:`dp` and transposed blockwise in reverse mode (the blocks are recomputed, not
    stored). It is the exact derivative wherever the eigenvalues are distinct (tested
    against central differences and dense ``eigvalsh`` autodiff). Where they are not, the
    sorted spectrum is not differentiable and the value returned is, per eigenvalue:

    * a tie :math:`p_i = p_j = v` (eigenvalue :math:`v` of multiplicity :math:`c-1` for a
      group of :math:`c` equal entries, eigenvectors supported on the group and orthogonal to
      :math:`\mathbf 1`): each copy gets the mean of :math:`dp` over the group, the derivative
      of the copies' mean (which is differentiable); the secular roots next to the group stay
      simple and get the formula above;
    * a zero entry :math:`p_k = 0` (eigenvector :math:`e_k`): :math:`dp_k`;
    * the root below :math:`v_1`, which is :math:`0` with eigenvector :math:`\mathbf 1` on
      the support when :math:`\sum_i p_i = 1`: the formula gives :math:`-\sum_{p_k>0} dp_k /
      |\{k: p_k > 0\}|`, exactly its derivative as a function of free :math:`p` (zero along
      the simplex, e.g. through ``softmax``); if :math:`p` also has zero entries, 0 is a
      multiple eigenvalue and these per-eigenvector values are returned in an unspecified
      order;
    * the largest eigenvalue: :func:`spectral_norm`'s derivative (at a tie
      :math:`p_{(1)} = p_{(2)}`, that of :math:`p_{(1)}`).

    The eigenvector of a root below the rounding error of :math:`\lambda` from an entry of
    :math:`p` (e.g. the root 0 next to entries below :math:`10^{-17}`) is inaccurate in that
    entry's coordinate, and so is its derivative there.

    Source: derived here (docs/notes/field.md §1.4); ``proofs_check`` id
    ``softmax_jacobian.characteristic_polynomial``; the derivative: derived here (first-order
    perturbation of a symmetric eigenvalue), tested numerically only.

    Args:
      p: probabilities, shape ``(..., n)``, entries :math:`\ge 0`.
      beta: inverse temperature, a positive finite scalar or an array broadcastable to
        ``p.shape[:-1]``.
      check_probability: check eagerly that ``p`` holds probability vectors (the module's
        *Domain*; ``ValueError`` naming ``p`` otherwise). Skipped for traced ``p`` (under
        ``jax.jit``, ``jax.vmap``, ``jax.grad``); ``False`` evaluates the formula on any real ``p``.

    Returns:
      Array of shape ``(..., n)``, ascending along the last axis; rows with NaN/inf give NaN.

    Example:
      >>> import jax.numpy as jnp
      >>> from softmax_stability.jacobian import eigenvalues
      >>> [round(float(v), 6) + 0.0 for v in eigenvalues(jnp.array([0.5, 0.25, 0.25]))]
      [0.0, 0.25, 0.375]
    """
    p = _prob(p, check_probability)
    b = _beta(beta, p)
    return b[..., None] * _by_rows(_eigs, p)


# --------------------------------------------------------------------------------------
# closed-form norms
# --------------------------------------------------------------------------------------


def _top_split(p):
    """max, argmax mask and the sum of the other entries (no cancellation)."""
    a = jnp.max(p, axis=-1)
    i1 = jnp.argmax(p, axis=-1)
    is_top = jnp.arange(p.shape[-1]) == i1[..., None]
    rest = jnp.sum(jnp.where(is_top, 0, p), axis=-1)
    return a, is_top, rest


@jax.jit
def _frob(p):
    ok = _finite_rows(p)
    p = jnp.where(ok[..., None], p, 0)
    a, is_top, _ = _top_split(p)
    dr = jnp.where(is_top, 0, p)
    b = jnp.max(dr, axis=-1)
    a1 = jnp.where(a > 0, a, 1)
    b1 = jnp.where(b > 0, b, 1)
    # ||J||_F^2 = sum_i p_i^2 [ (1 - p_i)^2 + sum_{j != i} p_j^2 ]   (all terms >= 0)
    qa = jnp.sum((p / a1[..., None]) ** 2, axis=-1)
    r_top = b * jnp.sqrt(jnp.sum((dr / b1[..., None]) ** 2, axis=-1))  # sqrt(sum_{j!=i1} p_j^2)
    r_oth = a[..., None] * jnp.sqrt(jnp.maximum(qa[..., None] - (p / a1[..., None]) ** 2, 0))
    r = jnp.where(is_top, r_top[..., None], r_oth)
    v = p * jnp.hypot(1 - p, r)
    m = jnp.max(v, axis=-1)
    m1 = jnp.where(m > 0, m, 1)
    f = m * jnp.sqrt(jnp.sum((v / m1[..., None]) ** 2, axis=-1))
    return jnp.where(ok, f, jnp.nan)


def frobenius_norm(p: Any, *, beta: Any = 1.0, check_probability: bool = True) -> jax.Array:
    r"""Frobenius norm of softmax's Jacobian in closed form, :math:`O(n)` per row.

    .. math::
        \|J\|_F = \beta\sqrt{\textstyle\sum_i p_i^2 - 2\sum_i p_i^3 + \big(\sum_i p_i^2\big)^2}
               = \beta\sqrt{\textstyle\sum_i p_i^2\big[(1-p_i)^2 + \sum_{j\ne i} p_j^2\big]} .

    The second form (a sum of non-negative terms, evaluated with scaling and with
    :math:`\sum_{j\ne i}p_j^2` formed without cancellation) is the one computed: the first
    loses all accuracy when one :math:`p_i \to 1` (e.g. :math:`p = (1-\epsilon, \epsilon)`
    gives :math:`\|J\|_F = 2\epsilon(1-\epsilon)` from a difference of numbers
    near 1). Valid for any real :math:`p` (with ``check_probability=False``). Accuracy:
    relative error :math:`\le 4\cdot10^{-16}` in float64 and :math:`1.1\cdot10^{-7}` in float32 on
    the test suite's hard cases (against a 40-digit ``mpmath`` sum over the dense matrix; tested to
    :math:`10^{-12}` / :math:`10^{-5}`).

    Source: derived here (docs/notes/field.md §1.1); ``proofs_check`` id
    ``softmax_jacobian.frobenius``.

    Args:
      p: probabilities, shape ``(..., n)``.
      beta: inverse temperature, as in :func:`spectral_norm`.
      check_probability: check eagerly that ``p`` holds probability vectors (the module's
        *Domain*; ``ValueError`` naming ``p`` otherwise). Skipped for traced ``p`` (under
        ``jax.jit``, ``jax.vmap``, ``jax.grad``); ``False`` evaluates the formula on any real ``p``.

    Returns:
      Array of shape ``p.shape[:-1]``.

    Example:
      >>> import jax.numpy as jnp
      >>> from softmax_stability.jacobian import frobenius_norm
      >>> round(float(frobenius_norm(jnp.array([0.5, 0.5]))), 6)
      0.5
    """
    p = _prob(p, check_probability)
    b = _beta(beta, p)
    return b * _by_rows(_frob, p)


@jax.jit
def _one(p):
    ok = _finite_rows(p)
    p = jnp.where(ok[..., None], p, 0)
    a, is_top, rest = _top_split(p)
    total = a + rest
    # column sum |p_i - p_i^2| + p_i sum_{j != i} p_j; for i != argmax, p_i <= total/2 so
    # total - p_i has no cancellation; for the argmax use the direct sum of the others.
    others = jnp.where(is_top, rest[..., None], total[..., None] - p)
    col = p * (jnp.abs(1 - p) + others)
    return jnp.where(ok, jnp.max(col, axis=-1), jnp.nan)


def one_norm(p: Any, *, beta: Any = 1.0, check_probability: bool = True) -> jax.Array:
    r"""The :math:`1\to1` norm (= :math:`\infty\to\infty`, J is symmetric) of softmax's Jacobian.

    .. math::
        \|J\|_{1\to1} = \|J\|_{\infty\to\infty} = \beta\max_i 2p_i(1-p_i)\quad(\textstyle\sum_i p_i = 1),

    computed as the exact largest column sum
    :math:`\beta\max_i p_i\,(|1-p_i| + \sum_{j\ne i}p_j)` of the matrix built from the
    stored ``p`` (equal to the above on the simplex; also exact for sub-stochastic rows).
    At most :math:`\beta/2`, attained when some :math:`p_i = 1/2`. Accuracy: relative error
    :math:`\le 3\cdot10^{-16}` (float64) and :math:`6\cdot10^{-8}` (float32) on the test
    suite's hard cases against a 40-digit ``mpmath`` reference (tested to :math:`10^{-12}` /
    :math:`10^{-5}`).

    Source: derived here (docs/notes/field.md §1.5); ``proofs_check`` id ``softmax_jacobian.one_norm``.

    Args:
      p: probabilities, shape ``(..., n)``, entries in :math:`[0, 1]`.
      beta: inverse temperature, as in :func:`spectral_norm`.
      check_probability: check eagerly that ``p`` holds probability vectors (the module's
        *Domain*; ``ValueError`` naming ``p`` otherwise). Skipped for traced ``p`` (under
        ``jax.jit``, ``jax.vmap``, ``jax.grad``); ``False`` evaluates the formula on any real ``p``.

    Returns:
      Array of shape ``p.shape[:-1]``.

    Example:
      >>> import jax.numpy as jnp
      >>> from softmax_stability.jacobian import one_norm
      >>> round(float(one_norm(jnp.array([0.7, 0.2, 0.1]))), 6)
      0.42
    """
    p = _prob(p, check_probability)
    b = _beta(beta, p)
    return b * _by_rows(_one, p)


class InfToOneBounds(NamedTuple):
    """Certified bracket ``lower <= ||J||_{inf->1} <= upper`` (equal when exact)."""

    lower: jax.Array
    upper: jax.Array


def _bits(h: int, dtype) -> np.ndarray:
    return ((np.arange(2**h)[:, None] >> np.arange(h)[None, :]) & 1).astype(dtype)


def _closest_half_exact(p, total):
    """max over subsets S of P(S) (T - P(S)), by meet in the middle over two halves."""
    n = p.shape[-1]
    h1 = n // 2
    h2 = n - h1
    hp = jax.lax.Precision.HIGHEST
    s1 = jnp.einsum("...i,ki->...k", p[..., :h1], jnp.asarray(_bits(h1, p.dtype)), precision=hp)
    s2 = jnp.einsum("...i,ki->...k", p[..., h1:], jnp.asarray(_bits(h2, p.dtype)), precision=hp)
    s2 = jnp.sort(s2, axis=-1)
    target = 0.5 * total[..., None] - s1
    flat_s2 = s2.reshape(-1, s2.shape[-1])
    flat_t = target.reshape(-1, target.shape[-1])
    pos = jax.vmap(lambda row, t: jnp.searchsorted(row, t))(flat_s2, flat_t).reshape(target.shape)
    best = jnp.full(total.shape, -jnp.inf, p.dtype)
    for k in (pos - 1, pos):
        kk = jnp.clip(k, 0, s2.shape[-1] - 1)
        P = s1 + jnp.take_along_axis(s2, kk, axis=-1)
        best = jnp.maximum(best, jnp.max(P * (total[..., None] - P), axis=-1))
    return best


#: Rows up to this length get the largest-first greedy split over all entries (a sort); longer
#: rows get the sort-free split of :func:`_balanced_split_long`.
_INF_TO_ONE_SORT_MAX_N = 128
#: Largest entries split greedily, and refinement rounds, in :func:`_balanced_split_long`.
_INF_TO_ONE_TOP = 8
_INF_TO_ONE_ROUNDS = 8


def _greedy_split(p):
    """Largest-first greedy partition: the two part masses (P, Q), P + Q = sum p."""
    q = -jnp.sort(-p, axis=-1)
    q = jnp.moveaxis(q, -1, 0)

    def f(carry, x):
        P, Q = carry
        to_p = P <= Q
        return (jnp.where(to_p, P + x, P), jnp.where(to_p, Q, Q + x)), None

    z = jnp.zeros(p.shape[:-1], p.dtype)
    (P, Q), _ = jax.lax.scan(f, (z, z), q)
    return P, Q


def _balanced_split_long(p, total):
    """|T - 2P(S)| for an explicit subset S with P(S) near T/2, sort-free, for long rows.

    The ``_INF_TO_ONE_TOP`` largest entries are split largest-first greedily
    into a lighter and a heavier part; the lighter part then takes the other entries in stored
    order up to the one whose prefix crosses T/2 (bisection on the prefix length, one masked
    sum per step); then ``_INF_TO_ONE_ROUNDS`` refinement rounds each add the entry outside S,
    or remove the entry of S (never one of the largest), whose mass is nearest to the remaining
    deficit or excess, when that brings P(S) nearer to T/2. Every step is an elementwise pass
    or a single min/sum reduction over the row, which XLA fuses. The distance is <= max p: the
    greedy keeps the two parts within max p, and the crossing entry is <= max p. (A largest-first
    greedy over the whole sorted row took 3-8 s per call on a 4096 x 4096 map on 2 CPU cores,
    almost all of it XLA:CPU's sort; argmin, gathers and cumsum are also 10-40x slower per
    element than a fused sum there.)
    """
    r, n = p.shape
    dt = p.dtype
    half = 0.5 * total
    pos = jnp.arange(n)
    # positions as floats when exact (a float min is a fast reduction on XLA:CPU)
    posf = pos.astype(dt) if n <= 2 ** (jnp.finfo(dt).nmant + 1) else pos
    # the K largest entries, one max and one first-index pass each, split largest-first
    # greedily; x keeps the other entries, zero in place of the K largest (a zero entry never
    # improves S below, so these are never moved by the refinement). (lax.top_k became a full
    # sort of the row inside this program on XLA:CPU.)
    x = p
    P = Q = jnp.zeros(r, dt)
    for _ in range(min(n, _INF_TO_ONE_TOP)):  # static and short
        v = jnp.max(x, axis=-1)
        k = jnp.min(jnp.where(x == v[:, None], posf, n), axis=-1)
        x = jnp.where(posf == k[:, None], 0, x)
        to_p = P <= Q
        P, Q = jnp.where(to_p, P + v, P), jnp.where(to_p, Q, Q + v)
    light = jnp.minimum(P, Q)
    target = half - light  # >= 0: light <= (P + Q)/2 <= T/2
    lo = jnp.zeros(r, jnp.int32)
    hi = jnp.full(r, n, jnp.int32)
    for _ in range(n.bit_length()):  # largest prefix length j with light + mass <= T/2
        mid = (lo + hi + 1) // 2
        ok = jnp.sum(jnp.where(pos < mid[:, None], x, 0), axis=-1) <= target
        lo = jnp.where(ok, mid, lo)
        hi = jnp.where(ok, hi, mid - 1)
    j = lo
    M0 = light + jnp.sum(jnp.where(pos < j[:, None], x, 0), axis=-1)
    M1 = M0 + jnp.sum(jnp.where(pos == j[:, None], x, 0), axis=-1)  # j == n: nothing added
    use1 = jnp.abs(M1 - half) < jnp.abs(half - M0)
    M = jnp.where(use1, M1, M0)
    in_s = (pos < j[:, None]) | (use1[:, None] & (pos == j[:, None]))  # among the other entries
    for _ in range(_INF_TO_ONE_ROUNDS):
        g = half - M
        ag = jnp.abs(g)
        # candidates: other entries outside S when short of T/2, inside S when over it
        score = jnp.where(in_s != (g > 0)[:, None], jnp.abs(ag[:, None] - x), jnp.inf)
        s = jnp.min(score, axis=-1)
        k = jnp.min(jnp.where(score == s[:, None], posf, n), axis=-1)  # first such entry
        pick = posf == k[:, None]
        xk = jnp.sum(jnp.where(pick, x, 0), axis=-1)
        better = s < ag
        M = jnp.where(better, jnp.where(g > 0, M + xk, M - xk), M)
        in_s = in_s ^ (better[:, None] & pick)
    return jnp.abs(total - 2 * M)


@partial(jax.jit, static_argnums=(1,))
def _inf_to_one(p, exact):
    ok = _finite_rows(p)
    p = jnp.where(ok[..., None], p, 0)
    a, _, rest = _top_split(p)
    total = a + rest
    one_minus_total = (1 - a) - rest  # 1 - a exact for a >= 1/2
    base = total * one_minus_total  # T(1 - T): zero on the simplex
    dominant = a >= rest  # then S = {argmax} is optimal: exact
    v_dom = base + 4 * a * rest
    # On the documented domain (sum p <= 1) the norm is T - min_S (T - 2p(S))^2 <= T <= 1; a
    # computed value above 1 is rounding (a float32 row can sum to 1 + ulp, and 4 P (T - P)
    # rounds up near P = T/2: 1.0000002 on a float32 4096 x 4096 map), so values are clipped
    # to the proved bound 1 (beta is applied by the caller).
    if exact:
        v = base + 4 * _closest_half_exact(p, total)
        v = jnp.minimum(jnp.where(dominant, v_dom, v), 1)
        lo = up = v
    else:
        up = jnp.minimum(jnp.where(dominant, v_dom, total), 1)
        if p.shape[-1] <= _INF_TO_ONE_SORT_MAX_N:
            P, Q = _greedy_split(p)
            delta = jnp.abs(P - Q)
        else:
            # row chunks of ~2^16 entries: each of the ~55 passes then reads from cache
            # (float64, 4096 x 4096: 1.5-2.7 s unchunked, measured)
            rows, n = p.shape
            rc = max(1, min(rows, _BLOCK_ELEMS // n))
            nr = -(-rows // rc)
            rc = -(-rows // nr)
            delta = _by_blocks(lambda q, t: _balanced_split_long(q, t[:, 0]), rc, nr, p, total[:, None])
        # non-dominant: delta <= max p < T/2, so T - delta^2 >= 3T/4 (no cancellation), and
        # it never rounds above T
        lo = jnp.minimum(jnp.where(dominant, v_dom, total - delta * delta), up)
    nan = jnp.nan
    return jnp.where(ok, lo, nan), jnp.where(ok, up, nan)


def inf_to_one_norm(p: Any, *, beta: Any = 1.0, return_bounds: bool = False,
                    check_probability: bool = True):
    r"""The :math:`\infty\to1` norm of softmax's Jacobian (the "balanced-mass factor").

    For a sign vector with positive set :math:`S`, :math:`\|J s\|_1 = 4\beta\,p(S)(1-p(S))`
    on the simplex, and the maximum of the convex function :math:`\|Jx\|_1` over the cube
    is at a vertex, so

    .. math::
        \|J\|_{\infty\to1} = \beta\max_{S\subseteq[n]} 4\,p(S)\big(1-p(S)\big) \le \beta,

    maximised by the subset whose mass is closest to :math:`1/2` (a subset-sum problem).
    For sub-stochastic rows (:math:`T=\sum_ip_i<1`) the exact value
    :math:`\beta\max_S [T(1-T) + 4p(S)(T-p(S))]` is computed.

    What is returned:

    * ``n <= INF_TO_ONE_EXACT_MAX_N`` (24): the exact value, by meet in the middle
      (all :math:`2^{\lceil n/2\rceil}` subset sums of each half, sorted, then a binary
      search per sum), jit-able, :math:`O(2^{n/2} n)` per row.
    * ``n > 24``: a certified bracket. ``upper`` is :math:`\beta T` (:math:`=\beta` on the
      simplex); ``lower`` is :math:`\beta\,(T - (T - 2p(S))^2)` for an explicit subset
      :math:`S` whose mass is near :math:`T/2`: for ``n <= 128`` the largest-first greedy
      partition of the sorted row; for longer rows a sort-free split in :math:`O(n)` passes
      per row (the 8 largest entries split greedily, the lighter part filled with the other
      entries in stored order up to :math:`T/2`, then 8 rounds that each add or remove the
      single entry that brings :math:`p(S)` nearest to :math:`T/2`). When
      :math:`p_{(1)}\ge T/2` both equal the exact value :math:`4\beta p_{(1)}(T-p_{(1)}) +
      \beta T(1-T)` (then :math:`S=\{\arg\max\}` is optimal). Either split keeps
      :math:`|T - 2p(S)| \le p_{(1)}`, so ``upper - lower`` :math:`\le \beta p_{(1)}^2`; it
      is typically far smaller when the mass is spread over many entries (below
      :math:`10^{-10}` on Dirichlet rows of length 1000). By default the ``lower`` value is
      returned and a ``UserWarning`` says so, once per call site (the calling file and line;
      Python's own once-per-location registry is reset whenever warning filters change, e.g.
      by every ``warnings.catch_warnings``, which made it warn on every call).

    With ``return_bounds=True`` an :class:`InfToOneBounds` ``(lower, upper)`` is returned
    for every ``n`` (``lower == upper`` when exact). The warning is then not emitted.

    Clipping: on the documented domain (:math:`\sum_i p_i\le 1`) the value is at most
    :math:`\beta T\le\beta`, so every returned value (and ``upper``) is clipped to
    :math:`\beta`. Only rounding can take a computed value above it: a float32 row may sum to
    :math:`1 + \epsilon`, and :math:`4p(S)(T-p(S))` rounds up near :math:`p(S) = T/2` (it
    returned 1.0000002 on a float32 softmax map of 4096 rows of length 4096). The clip changes
    a value by at most that rounding, and keeps ``lower <= upper``.

    Accuracy (exact range): against the exact value computed in integer arithmetic, relative
    error :math:`\le 3\cdot10^{-16}` (float64) and :math:`10^{-7}` (float32) on the test suite's
    hard cases, :math:`\le 10^{-13}` for every ``n`` up to 24 (tested); beyond 24 the bracket
    is tested to contain the exact value.

    Source: derived here (docs/notes/field.md §1.5); the same quantity is called the balanced-mass
    factor in Emadi, arXiv:2602.18849 (unconfirmed). ``proofs_check`` id
    ``softmax_jacobian.inf_to_one``.

    Args:
      p: probabilities, shape ``(..., n)``, entries in :math:`[0, 1]`, :math:`\sum p\le1`.
      beta: inverse temperature, as in :func:`spectral_norm`.
      return_bounds: return the certified ``(lower, upper)`` pair instead of one value.
      check_probability: check eagerly that ``p`` holds probability vectors (the module's
        *Domain*; ``ValueError`` naming ``p`` otherwise). Skipped for traced ``p`` (under
        ``jax.jit``, ``jax.vmap``, ``jax.grad``); ``False`` evaluates the formula on any real ``p``.

    Returns:
      Array of shape ``p.shape[:-1]``, or :class:`InfToOneBounds` of two such arrays.

    Example:
      >>> import jax.numpy as jnp
      >>> from softmax_stability.jacobian import inf_to_one_norm
      >>> round(float(inf_to_one_norm(jnp.array([0.4, 0.35, 0.25]))), 6)
      0.96
      >>> lo, up = inf_to_one_norm(jnp.full((30,), 1 / 30), return_bounds=True)
      >>> round(float(lo), 6), round(float(up), 6)
      (1.0, 1.0)
    """
    p = _prob(p, check_probability)
    b = _beta(beta, p)
    n = p.shape[-1]
    exact = n <= INF_TO_ONE_EXACT_MAX_N
    lo, up = _by_rows(_inf_to_one, p, exact)
    if return_bounds:
        return InfToOneBounds(b * lo, b * up)
    if not exact:
        _warn_once_per_call_site(
            f"inf_to_one_norm: n={n} > {INF_TO_ONE_EXACT_MAX_N}, returning the certified lower "
            "bound (exact when max p >= 1/2); pass return_bounds=True for (lower, upper)",
        )
    return b * lo


_WARNED_CALL_SITES: set[tuple[str, int]] = set()


def _warn_once_per_call_site(message: str) -> None:
    """``UserWarning`` attributed to the caller of the caller, once per (file, line).

    Python's registry of shown warnings is cleared whenever the filters change (each
    ``warnings.catch_warnings`` block, pytest, some libraries), so a plain ``warnings.warn``
    repeated on every call. A site is recorded only after the warning was issued, so an
    ``error`` filter still raises on every call.
    """
    frame = sys._getframe(2)
    site = (frame.f_code.co_filename, frame.f_lineno)
    if site in _WARNED_CALL_SITES:
        return
    warnings.warn(message, UserWarning, stacklevel=3)
    _WARNED_CALL_SITES.add(site)

