r"""Normalising maps :math:`\xi:\mathbb R^n\to\Delta^{n-1}` (softmax, top-k softmax, sparsemax, entmax).

All maps act along one axis (default the last) and are batched over every other axis. They are
pure JAX functions that work under ``jax.jit``, ``jax.vmap``, ``jax.jvp``/``jax.grad`` and
``jax.jacfwd``/``jax.jacrev``. Each has a ``custom_jvp`` with the closed-form Jacobian

.. math::
    J = \operatorname{diag}(s) - \frac{s s^\top}{\mathbf 1^\top s},

where :math:`s` is the map's *support weight*: :math:`s=\beta p` for softmax (then
:math:`J=\beta(\operatorname{diag}p-pp^\top)`), :math:`s=\mathbf 1_S` for sparsemax and
:math:`s_i=p_i^{2-\alpha}` on the support for :math:`\alpha`-entmax (Peters et al. 2019; the
formula coded in ``deep-spin/entmax``'s backward passes, see docs/notes/field.md §3.1-3.2). The rule is
applied matrix-free: :math:`Jt = s\odot t - s\,(s^\top t)/(\mathbf 1^\top s)`.

Argument checks are eager (before tracing): ``z`` is promoted to a float dtype (integers and
bools become the default float), must have at least one dimension and no zero-length axis;
``axis`` must be a valid int; ``k``, ``alpha`` are static Python numbers (``1 <= k <= n``);
``beta`` is checked when concrete (a traced ``beta`` cannot be: a negative one silently reverses
the map, see :func:`softmax` for a ``checkify`` run-time check). Bad values raise
``ValueError``/``TypeError`` naming the argument.

**Special values** (one convention for every map, per row along ``axis``):

* ``-inf`` logits (and ``where=False`` entries) get weight exactly 0. A row with no attended
  finite or ``+inf`` logit (fully masked, or all ``-inf``) returns all zeros, and its
  derivative is zero - never NaN.
* ``+inf`` logits are handled as the limit :math:`z_i\to\infty` taken together: the mass is
  split equally over the ``+inf`` entries of the row (1/m each for m of them), the rest get 0.
  The derivative there is the map's Jacobian at that point (the support being the ``+inf``
  entries), so it is finite.
* A ``NaN`` among the attended logits makes the whole row ``NaN`` (there is no meaningful
  answer, so it is not hidden). ``NaN`` at a ``where=False`` position is ignored.

The output dtype is the (promoted) dtype of ``z``; ``beta`` is cast to it.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from softmax_stability._checks import (
    as_float_array,
    check_axis,
    check_in_closed_interval,
    check_int_in_range,
    check_nonempty,
    check_positive_finite,
    check_where,
)
from softmax_stability.topk import _index_mask

__all__ = ["softmax", "topk_softmax", "sparsemax", "entmax15", "entmax"]


# --------------------------------------------------------------------------------------------
# eager validation


def _prepare(z: Any, axis: Any) -> tuple[jax.Array, int]:
    x = as_float_array(z, "z")
    if x.ndim == 0:
        raise ValueError("z must have at least one dimension, got a scalar")
    axis = check_axis(axis, x.ndim, "axis")
    check_nonempty(x, "z")
    return x, axis


def _check_beta(beta: Any, x: jax.Array) -> Any:
    check_positive_finite(beta, "beta")
    shape = np.shape(beta)
    try:
        out = np.broadcast_shapes(shape, x.shape)
    except ValueError:
        out = None
    if out != x.shape:
        raise ValueError(
            f"beta must be a scalar or an array broadcastable to z's shape {x.shape}, got shape {shape}"
        )
    return beta


# --------------------------------------------------------------------------------------------
# shared machinery: special values and the closed-form JVP (all along the last axis)


def _with_special_values(core: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """Wrap a core map (valid for rows with a finite entry, no +inf, no NaN) with the conventions."""

    def forward(x: jax.Array) -> jax.Array:
        posinf = x == jnp.inf
        n_pos = jnp.sum(posinf, axis=-1, keepdims=True)
        has_pos = n_pos > 0
        has_nan = jnp.any(jnp.isnan(x), axis=-1, keepdims=True)
        has_finite = jnp.any(jnp.isfinite(x), axis=-1, keepdims=True)
        special = has_pos | has_nan | ~has_finite
        # special rows get a harmless dummy so the core never sees inf - inf
        p = core(jnp.where(special, jnp.zeros_like(x), x))
        p = jnp.where(has_pos, posinf.astype(x.dtype) / jnp.maximum(n_pos, 1).astype(x.dtype), p)
        p = jnp.where(has_pos | has_finite, p, jnp.zeros_like(p))
        return jnp.where(has_nan, jnp.full_like(p, jnp.nan), p)

    return forward


def _custom_map(
    forward: Callable[[jax.Array], jax.Array],
    weights: Callable[[jax.Array], jax.Array],
    *,
    weights_sum_to_one: bool = False,
) -> Callable[[jax.Array], jax.Array]:
    """``forward`` with the JVP ``J t = s*t - s*(s.t)/sum(s)``, ``s = weights(p)``."""
    fn = jax.custom_jvp(forward)

    @fn.defjvp
    def _jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        p = fn(x)
        s = weights(p)
        t = jnp.where(s > 0, t, jnp.zeros_like(t))  # off-support tangents may be inf: drop them
        st = s * t
        q = jnp.sum(st, axis=-1, keepdims=True)
        if not weights_sum_to_one:
            ssum = jnp.sum(s, axis=-1, keepdims=True)
            q = q / jnp.where(ssum > 0, ssum, jnp.ones_like(ssum))  # fully masked row: J = 0
        return p, st - s * q

    return fn


def _sorted_desc(y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Sort descending along the last axis; -inf entries (at the end) flagged invalid and zeroed."""
    ys = -jnp.sort(-y, axis=-1)
    valid = ys > -jnp.inf
    return jnp.where(valid, ys, jnp.zeros_like(ys)), valid


# --------------------------------------------------------------------------------------------
# cores (last axis; rows have a finite entry, no +inf, no NaN; -inf entries allowed)


def _softmax_core(x: jax.Array) -> jax.Array:
    e = jnp.exp(x - jnp.max(x, axis=-1, keepdims=True))  # max subtraction: no overflow
    return e / jnp.sum(e, axis=-1, keepdims=True)


def _sparsemax_core(x: jax.Array) -> jax.Array:
    y = x - jnp.max(x, axis=-1, keepdims=True)  # shift invariance; keeps cumsums small
    ys, valid = _sorted_desc(y)
    r = jnp.arange(1, y.shape[-1] + 1, dtype=y.dtype)
    cs = jnp.cumsum(ys, axis=-1)
    cond = valid & (1 + r * ys > cs)
    kk = jnp.max(jnp.where(cond, r, 0), axis=-1, keepdims=True)  # k = max{k : 1 + k z_(k) > sum}
    idx = kk.astype(jnp.int32) - 1
    tau = (jnp.take_along_axis(cs, idx, axis=-1) - 1) / kk
    return jnp.maximum(y - tau, 0)


def _entmax15_core(x: jax.Array) -> jax.Array:
    y = (x - jnp.max(x, axis=-1, keepdims=True)) / 2  # X = z/2 shifted by the max
    ys, valid = _sorted_desc(y)
    r = jnp.arange(1, y.shape[-1] + 1, dtype=y.dtype)
    mean = jnp.cumsum(ys, axis=-1) / r
    mean_sq = jnp.cumsum(ys * ys, axis=-1) / r
    delta = (1 - r * (mean_sq - mean * mean)) / r
    tau = mean - jnp.sqrt(jnp.maximum(delta, 0))
    kk = jnp.sum(valid & (tau <= ys), axis=-1, keepdims=True).astype(y.dtype)
    # recompute tau on the found support with a two-pass variance (no mean_sq - mean^2 cancellation)
    in_s = r <= kk
    mu = jnp.sum(jnp.where(in_s, ys, 0), axis=-1, keepdims=True) / kk
    ss = jnp.sum(jnp.where(in_s, (ys - mu) ** 2, 0), axis=-1, keepdims=True)
    tau_star = mu - jnp.sqrt(jnp.maximum((1 - ss) / kk, 0))
    return jnp.maximum(y - tau_star, 0) ** 2


def _bisect_iterations(dtype: Any) -> int:
    """Halvings so that the final bracket is below ``ln(n) * 2**-(nmant + 8)``."""
    return int(jnp.finfo(dtype).nmant) + 8


def _entmax_bisect_core(x: jax.Array, eps: float) -> jax.Array:
    r"""alpha-entmax by bisection, alpha = 1 + eps, eps in (0, 1].

    Reparametrised so that it stays accurate as eps -> 0: with y = z - max z and
    tau = eps*max z - 1 + eps*v (entmax_bisect's threshold), p_i = [1 + eps (y_i - v)]_+^{1/eps}
    = exp(log1p(eps (y_i - v)) / eps), and entmax_bisect's bracket [max - 1, max - n^{-eps}]
    becomes v in [0, (1 - n^{-eps})/eps] subset of [0, ln n].
    """
    n = x.shape[-1]
    y = x - jnp.max(x, axis=-1, keepdims=True)
    width0 = -math.expm1(-eps * math.log(n)) / eps

    def p_of(v):
        a = eps * (y - v)
        pos = a > -1
        a = jnp.where(pos, a, jnp.zeros_like(a))
        return jnp.where(pos, jnp.exp(jnp.log1p(a) / eps), jnp.zeros_like(a))

    def body(_, carry):
        lo, w = carry
        w = w / 2
        mid = lo + w
        f = jnp.sum(p_of(mid), axis=-1, keepdims=True) - 1  # decreasing in v; f(lo) >= 0 kept
        return jnp.where(f >= 0, mid, lo), w

    lo0 = jnp.zeros(y.shape[:-1] + (1,), dtype=y.dtype)
    lo, w = lax.fori_loop(0, _bisect_iterations(y.dtype), body, (lo0, jnp.asarray(width0, y.dtype)))
    p = p_of(lo + w / 2)
    return p / jnp.sum(p, axis=-1, keepdims=True)  # entmax_bisect's ensure_sum_one


# --------------------------------------------------------------------------------------------
# the maps along the last axis, with their custom JVPs

_softmax_last = _custom_map(_with_special_values(_softmax_core), lambda p: p, weights_sum_to_one=True)
_sparsemax_last = _custom_map(
    _with_special_values(_sparsemax_core), lambda p: (p > 0).astype(p.dtype)
)
_entmax15_last = _custom_map(
    _with_special_values(_entmax15_core),
    # sqrt guarded at 0 so that second derivatives through the JVP rule stay finite
    lambda p: jnp.where(p > 0, jnp.sqrt(jnp.where(p > 0, p, 1)), 0),
)


@functools.lru_cache(maxsize=None)
def _entmax_bisect_last(alpha: float) -> Callable[[jax.Array], jax.Array]:
    eps = alpha - 1.0

    def weights(p):
        pos = p > 0
        return jnp.where(pos, jnp.where(pos, p, 1) ** (1.0 - eps), 0)

    core = functools.partial(_entmax_bisect_core, eps=eps)
    return _custom_map(_with_special_values(core), weights)


def _along(fn: Callable[[jax.Array], jax.Array], x: jax.Array, axis: int) -> jax.Array:
    return jnp.moveaxis(fn(jnp.moveaxis(x, axis, -1)), -1, axis)


def _constant_along(beta_shape: tuple[int, ...], ndim: int, axis: int) -> bool:
    """Whether a ``beta`` of this (static) shape, broadcast against ``z``, is constant along ``axis``."""
    padded = (1,) * (ndim - len(beta_shape)) + tuple(beta_shape)
    return padded[axis] == 1


def _scaled_logits(x: jax.Array, beta: Any, axis: int, attended: jax.Array | None = None) -> jax.Array:
    r"""The logits :math:`\beta z`, shifted by :math:`\beta m` (``m`` = row max of ``z``) when that is exact.

    Softmax is shift invariant, so with ``beta`` constant along the row
    :math:`\beta(z - m)` gives the same map, and it never overflows to ``+inf`` where
    :math:`\beta z` would (``z = (1e308, 0.5e308)``, ``beta = 10``: both products are
    ``+inf`` and the ``+inf`` rule would split the mass). ``m`` is the max over the attended
    finite entries (0 if there is none), so ``+inf``/``-inf``/``NaN`` keep their meaning.
    It is a constant for differentiation (``stop_gradient``): the map does not depend on it.
    A ``beta`` that varies along the row admits no common shift; then the logits are
    :math:`\beta z` as given.
    """
    b = jnp.asarray(beta).astype(x.dtype)
    if not _constant_along(b.shape, x.ndim, axis):
        return b * x
    ok = jnp.isfinite(x) if attended is None else jnp.isfinite(x) & attended
    m = jnp.max(jnp.where(ok, x, -jnp.inf), axis=axis, keepdims=True)
    m = lax.stop_gradient(jnp.where(m > -jnp.inf, m, jnp.zeros_like(m)))
    # x/2 - m/2 cannot overflow (x - m can: x = -1e308, m = 1e308), and halving is exact in the
    # normal range, so (b*d)*2 rounds exactly as b*(x - m) would; an overflow of (b*d)*2 to -inf
    # is then a true weight of 0 (e^{-1.8e308})
    return (b * (x / 2 - m / 2)) * 2


@functools.partial(jax.jit, static_argnames=("axis",))
def _softmax_jit(x, beta, where, axis):
    attended = None if where is None else jnp.broadcast_to(where, x.shape)
    logits = _scaled_logits(x, beta, axis, attended)
    if attended is not None:
        logits = jnp.where(attended, logits, -jnp.inf)
    return _along(_softmax_last, logits, axis)


@functools.partial(jax.jit, static_argnames=("k", "axis"))
def _topk_softmax_jit(x, beta, k, axis):
    logits = _scaled_logits(x, beta, axis)
    if k < x.shape[axis]:
        # select on beta*z: with beta constant along the row (beta > 0) that is the order of z
        # itself, used as is (no rounding or overflow of the product can create ties)
        b = jnp.asarray(beta).astype(x.dtype)
        key = x if _constant_along(b.shape, x.ndim, axis) else logits
        selected = _index_mask(jnp.moveaxis(key, axis, -1), k)
        logits = jnp.where(jnp.moveaxis(selected, -1, axis), logits, -jnp.inf)
    return _along(_softmax_last, logits, axis)


@functools.partial(jax.jit, static_argnames=("axis",))
def _sparsemax_jit(x, axis):
    return _along(_sparsemax_last, x, axis)


@functools.partial(jax.jit, static_argnames=("axis",))
def _entmax15_jit(x, axis):
    return _along(_entmax15_last, x, axis)


@functools.partial(jax.jit, static_argnames=("alpha", "axis"))
def _entmax_bisect_jit(x, alpha, axis):
    """Bisection for any alpha in (1, 2] (alpha = 2 only used to cross-check sparsemax)."""
    return _along(_entmax_bisect_last(float(alpha)), x, axis)


# --------------------------------------------------------------------------------------------
# public API


def softmax(z: Any, axis: int = -1, *, beta: Any = 1.0, where: Any = None) -> jax.Array:
    r"""Softmax at inverse temperature :math:`\beta`, optionally restricted to a mask.

    .. math::
        \sigma_\beta(z)_i = \frac{m_i\, e^{\beta z_i}}{\sum_j m_j\, e^{\beta z_j}}, \qquad
        \frac{\partial \sigma_\beta}{\partial z} = \beta\,\big(\operatorname{diag}(p) - pp^\top\big),

    with :math:`m` the mask (all ones when ``where`` is None). Computed with max subtraction
    *before* the temperature when ``beta`` is constant along ``axis`` (a scalar, or one value per
    row): the logits are :math:`\beta(z - \max_j z_j)`, so :math:`\beta z` may exceed the float
    range (``softmax([1e308, 0.5e308], beta=10)`` is ``[1, 0]``, not the ``+inf`` tie
    ``[0.5, 0.5]``). A ``beta`` that varies along ``axis`` scales each logit separately; then
    :math:`\beta_i z_i` must be representable (an overflow to ``+inf`` counts as a ``+inf``
    logit). The derivative is a ``custom_jvp`` applying
    :math:`\beta(p\odot t - p\,(p^\top t))`, so it is
    finite also for masked rows and ``+inf`` logits; the derivative in ``beta`` is
    :math:`(\operatorname{diag}p - pp^\top)(z - \max z)`, whose tangent :math:`z - \max z`
    overflows only if the row spans more than the float range with entries of nonzero weight
    (which needs :math:`\beta\lesssim 700/\text{float max}`). Special values follow the module
    conventions: masked and ``-inf`` entries get 0, a fully masked row gives zeros (zero
    gradient), ``+inf`` entries share the mass equally, ``NaN`` makes the row ``NaN``.

    Source: standard; Jacobian as in docs/notes/field.md §1.1 (Gao & Pavel 2017). Same masking semantics
    as ``jax.nn.softmax(x, where=...)`` except that fully masked rows and ``+inf`` give finite
    values here.

    Args:
        z: logits, any shape with at least one dimension; integers are promoted.
        axis: the axis to normalise over (an int).
        beta: inverse temperature, finite and ``> 0``; a scalar or an array broadcastable to
            ``z.shape`` (e.g. one value per row, which keeps the overflow-free path above).
            Cast to ``z``'s dtype. A concrete value outside :math:`(0, \infty)` raises
            ``ValueError``; a traced one (under ``jax.jit``, ``jax.vmap``, ``jax.grad``) cannot be
            checked before run time: a negative traced ``beta`` silently computes
            :math:`\mathrm{softmax}(\beta z)`, which reverses the order of the weights (the
            smallest logit gets the most weight), and NaN gives NaN rows. For a run-time check use
            ``jax.experimental.checkify`` (last example).
        where: optional boolean mask broadcastable to ``z.shape``; ``True`` = attend.

    Returns:
        Array of ``z``'s shape and float dtype whose entries along ``axis`` are ``>= 0`` and sum
        to 1 (or are all 0 for a fully masked row).

    Example:
        >>> import jax.numpy as jnp
        >>> from softmax_stability.maps import softmax
        >>> print(softmax(jnp.array([0.0, jnp.log(3.0)])).round(6))
        [0.25 0.75]
        >>> print(softmax(jnp.array([[1.0, 2.0], [3.0, 4.0]]), where=jnp.array([True, False])))
        [[1. 0.]
         [1. 0.]]
        >>> print(softmax(jnp.array([jnp.inf, 0.0, jnp.inf])))
        [0.5 0.  0.5]
        >>> print(softmax(jnp.array([3e38, 1.5e38]), beta=10.0))  # beta*z overflows, beta*(z - max z) does not
        [1. 0.]

        A traced ``beta`` checked at run time (``err.get()`` is None when every check passed):

        >>> import jax
        >>> from jax.experimental import checkify
        >>> def checked_softmax(z, beta):
        ...     checkify.check(jnp.all(beta > 0), "beta must be > 0, got {b}", b=beta)
        ...     return softmax(z, beta=beta)
        >>> err, p = jax.jit(checkify.checkify(checked_softmax))(jnp.array([0.0, 1.0]), -1.0)
        >>> print(err.get())
        beta must be > 0, got -1.0 (`check` failed)
    """
    x, axis = _prepare(z, axis)
    beta = _check_beta(beta, x)
    if where is not None:
        where = check_where(where, x)
    return _softmax_jit(x, beta, where, axis)


def topk_softmax(z: Any, k: int, axis: int = -1, *, beta: Any = 1.0) -> jax.Array:
    r"""Top-k ("heavy hitter") softmax: softmax over the ``k`` largest logits of each row.

    .. math::
        \xi_h(z)_i = \frac{[i\in T_k(z)]\, e^{\beta z_i}}{\sum_{j\in T_k(z)} e^{\beta z_j}},

    where :math:`T_k(z)` holds the indices of the ``k`` largest logits :math:`\beta z` along
    ``axis``. With ``beta`` constant along ``axis`` (a scalar or one value per row) that is the
    order of ``z`` itself, which is what is used (exact: no rounding or overflow of
    :math:`\beta z` can create ties), and the logits are shifted by the row max before the
    temperature as in :func:`softmax`; a ``beta`` that varies along ``axis`` selects on the
    products :math:`\beta_i z_i`.
    Ties are broken towards the **lower index** (deterministic; the ``ties="index"`` rule of
    :func:`softmax_stability.topk.topk_mask`, which defines the selection; ``NaN`` counts as
    the largest value, so a ``NaN`` logit makes its row ``NaN``; with more than ``k`` ``+inf``
    logits the ``k`` lowest-index ones share the mass). ``k = n`` is plain softmax; ``k > n``
    raises ``ValueError`` (the library's one rule for every ``k``: :math:`1 \le k \le n`).

    Derivative: the softmax Jacobian restricted to :math:`T_k`, the selection being treated as
    constant (as in the SF authors' code, which masks with :math:`-10^{15}` before
    ``F.softmax``). This is the true derivative away from ties between the k-th and (k+1)-th
    logits; at such a tie the map is discontinuous (docs/notes/field.md §3.3).

    Source: Ram et al. 2025 (Semantic Focus) TOPK(k) (docs/notes/semantic_focus.md §1.3); Gupta et al.
    2021 (top-k attention).

    Args:
        z: logits, any shape with at least one dimension; integers are promoted.
        k: number of logits kept per row, a static Python int in ``[1, n]`` with ``n =
            z.shape[axis]``; another real number (``2.5``, ``2.0``) or ``k > n`` raises
            ``ValueError`` naming the range, a bool, a non-number or a traced value (under
            ``jax.jit`` pass ``k`` as a static argument: ``static_argnums``/``static_argnames``)
            ``TypeError``.
        axis: the axis to normalise over.
        beta: inverse temperature, finite and ``> 0``, scalar or broadcastable to ``z.shape``
            (selection on :math:`\beta z`, see above). Checked when concrete; a traced ``beta``
            is not (see :func:`softmax`: a negative one reverses the weights on the selected set).

    Returns:
        Array of ``z``'s shape and dtype with exactly ``k`` selected entries per row (those
        outside get 0), summing to 1 along ``axis``.

    Example:
        >>> import jax.numpy as jnp
        >>> from softmax_stability.maps import topk_softmax
        >>> print(topk_softmax(jnp.array([0.0, 3.0, jnp.log(3.0) + 3.0, 1.0]), 2).round(6))
        [0.   0.25 0.75 0.  ]
        >>> print(topk_softmax(jnp.array([1.0, 1.0, 1.0]), 2))
        [0.5 0.5 0. ]
    """
    x, axis = _prepare(z, axis)
    k = check_int_in_range(k, "k", 1, x.shape[axis])
    beta = _check_beta(beta, x)
    return _topk_softmax_jit(x, beta, k, axis)


def sparsemax(z: Any, axis: int = -1) -> jax.Array:
    r"""Sparsemax: Euclidean projection of the logits onto the probability simplex.

    .. math::
        \operatorname{sparsemax}(z) = \arg\min_{p\in\Delta}\|p-z\|_2^2 = [z-\tau\mathbf 1]_+,
        \qquad \tau = \frac{\sum_{j\le k} z_{(j)} - 1}{k},\quad
        k = \max\{k : 1 + k z_{(k)} > \textstyle\sum_{j\le k} z_{(j)}\},

    with :math:`z_{(1)}\ge z_{(2)}\ge\dots` the sorted logits (exact, O(n log n)). Jacobian
    (``custom_jvp``) :math:`J=\operatorname{diag}(s)-ss^\top/|S|`, :math:`s=\mathbf 1_S`,
    :math:`S=\{i: p_i>0\}`; at a kink (an entry exactly at the threshold) this is the one-sided
    Jacobian of the smaller support.

    Special values: ``-inf`` entries get 0; ``+inf`` entries share the mass equally (the limit
    of ``z_i -> inf`` together); a ``NaN`` makes the row ``NaN``; an all ``-inf`` row gives zeros.

    Source: Martins & Astudillo, ICML 2016, arXiv:1602.02068 (definition, sort-based threshold
    and Jacobian as recorded in docs/notes/field.md §3.1; algorithm/equation numbers unconfirmed).

    Args:
        z: logits, any shape with at least one dimension; integers are promoted.
        axis: the axis to normalise over.

    Returns:
        Array of ``z``'s shape and dtype, on the simplex along ``axis``, typically sparse.

    Example:
        >>> import jax.numpy as jnp
        >>> from softmax_stability.maps import sparsemax
        >>> print(sparsemax(jnp.array([1.0, 0.5, -1.0])))
        [0.75 0.25 0.  ]
    """
    x, axis = _prepare(z, axis)
    return _sparsemax_jit(x, axis)


def entmax15(z: Any, axis: int = -1) -> jax.Array:
    r"""1.5-entmax, computed exactly by sorting.

    .. math::
        \operatorname{entmax}_{1.5}(z) = \big[z/2 - \tau\mathbf 1\big]_+^2,

    with :math:`\tau` from the sorted :math:`X = (z - \max z)/2`: for each prefix size
    :math:`k`, :math:`\mu_k` and :math:`\mu^{(2)}_k` are the mean and mean of squares of the
    :math:`k` largest, :math:`\delta_k=(1-k(\mu^{(2)}_k-\mu_k^2))/k`,
    :math:`\tau_k=\mu_k-\sqrt{[\delta_k]_+}`, the support size is
    :math:`\#\{k:\tau_k\le X_{(k)}\}` and :math:`\tau=\tau_{k^*}` (``Entmax15Function`` of
    ``deep-spin/entmax``). The final :math:`\tau` is recomputed on the found support with a
    two-pass variance. Jacobian (``custom_jvp``): :math:`J=\operatorname{diag}(s)-ss^\top/\mathbf
    1^\top s`, :math:`s_i=\sqrt{p_i}`.

    Special values: as :func:`sparsemax`.

    Source: Peters, Niculae & Martins, ACL 2019, "Sparse Sequence-to-Sequence Models" (exact
    sort-based 1.5-entmax; algorithm number unconfirmed), as coded in ``deep-spin/entmax``
    ``Entmax15Function``; docs/notes/field.md §3.2.

    Args:
        z: logits, any shape with at least one dimension; integers are promoted.
        axis: the axis to normalise over.

    Returns:
        Array of ``z``'s shape and dtype, on the simplex along ``axis``.

    Example:
        >>> import jax.numpy as jnp
        >>> from softmax_stability.maps import entmax15
        >>> print(entmax15(jnp.array([2.0, 0.0, -3.0])))
        [1. 0. 0.]
        >>> print(entmax15(jnp.array([1.0, 1.0, -3.0])).round(6))
        [0.5 0.5 0. ]
    """
    x, axis = _prepare(z, axis)
    return _entmax15_jit(x, axis)


def entmax(z: Any, alpha: float, axis: int = -1) -> jax.Array:
    r""":math:`\alpha`-entmax for :math:`\alpha\in[1,2]`, by bisection on the threshold.

    .. math::
        \alpha\text{-entmax}(z) = \arg\max_{p\in\Delta} p^\top z + H^T_\alpha(p)
        = \big[(\alpha-1)z - \tau\mathbf 1\big]_+^{1/(\alpha-1)},

    with :math:`\tau` such that the output sums to 1. :math:`\alpha=1` returns
    :func:`softmax` and :math:`\alpha=2` returns :func:`sparsemax` (exact); every other
    :math:`\alpha` (including 1.5, which :func:`entmax15` computes by sorting) uses bisection as
    ``entmax_bisect`` of ``deep-spin/entmax``: the bracket
    :math:`\tau\in[(\alpha-1)\max z-1,\ (\alpha-1)\max z-n^{1-\alpha}]` is halved
    ``nmant + 8`` times (60 in float64, 31 in float32), then ``p /= sum(p)`` (``ensure_sum_one``).

    Accuracy and :math:`\alpha\to1`: writing :math:`\varepsilon=\alpha-1` and
    :math:`\tau=\varepsilon\max z-1+\varepsilon v`, the iteration runs on
    :math:`v\in[0,(1-n^{-\varepsilon})/\varepsilon]\subseteq[0,\ln n]` with
    :math:`p_i=\exp(\operatorname{log1p}(\varepsilon(z_i-\max z-v))/\varepsilon)`. This is the
    same bisection, but it does not lose digits when :math:`1/\varepsilon` is huge: no softmax
    fallback is needed and any :math:`\alpha\in(1,2)` is computed directly, tending to softmax
    as :math:`\alpha\to1`. The final bracket width is at most
    :math:`\ln n\cdot2^{-(\mathrm{nmant}+8)}` and :math:`|\partial p_i/\partial v|=
    p_i^{2-\alpha}\le1`, so before renormalisation every :math:`p_i` is within that width (plus
    float rounding of the sum near the root) of the exact value.

    Jacobian (``custom_jvp``): :math:`J=\operatorname{diag}(s)-ss^\top/\mathbf 1^\top s`,
    :math:`s_i=p_i^{2-\alpha}` on the support (0 elsewhere). ``alpha`` is static and not
    differentiable.

    Special values: as :func:`sparsemax`.

    Source: Peters, Niculae & Martins, ACL 2019 (definition, closed form, Jacobian);
    ``entmax_bisect`` (Correia et al. 2019 / ``deep-spin/entmax``) for the bisection; the
    :math:`v`-reparametrisation is derived here. docs/notes/field.md §3.2.

    Args:
        z: logits, any shape with at least one dimension; integers are promoted.
        alpha: a static Python number in ``[1, 2]``.
        axis: the axis to normalise over.

    Returns:
        Array of ``z``'s shape and dtype, on the simplex along ``axis``.

    Example:
        >>> import jax.numpy as jnp
        >>> from softmax_stability.maps import entmax
        >>> print(entmax(jnp.array([1.0, 1.0, -3.0]), 1.25).round(6))
        [0.5 0.5 0. ]
        >>> print(entmax(jnp.array([1.0, 0.5, -1.0]), 2.0))
        [0.75 0.25 0.  ]
    """
    if isinstance(alpha, (bool, np.bool_)):
        raise TypeError(f"alpha must be a real number in [1, 2], got {alpha!r}")
    alpha = check_in_closed_interval(alpha, "alpha", 1.0, 2.0)
    x, axis = _prepare(z, axis)
    if alpha == 1.0:
        return _softmax_jit(x, 1.0, None, axis)
    if alpha == 2.0:
        return _sparsemax_jit(x, axis)
    return _entmax_bisect_jit(x, alpha, axis)
