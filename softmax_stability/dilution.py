r"""Attention dilution: how spread out attention rows are, and three logit models with exact laws.

**Metrics** of attention weights :math:`p` (rows along ``axis``, batched over every other axis):
:func:`entropy`, :func:`normalized_entropy`, :func:`max_weight`, :func:`effective_support`,
:func:`topk_mass`, :func:`top_fraction_mass` and :func:`sorted_profile`. Each takes an optional
boolean mask ``where`` (``True`` = visible key, broadcastable to ``p``'s shape): masked entries are
ignored and :math:`n_{\mathrm{vis}}` is the number of visible keys of the row. ``p`` is used as
given (it is not renormalised); entries :math:`\le 0` contribute nothing to the entropy. A fully
masked row gives 0 for every metric, never NaN. Argument checks (``axis``, ``k``, ``fraction``,
the mask's dtype and shape) are eager; everything works under ``jax.jit`` and ``jax.vmap``, and
:func:`entropy`, :func:`max_weight`, :func:`effective_support`, :func:`topk_mass` under ``jax.grad``.

*Input rule* (every metric, one rule shared with :mod:`softmax_stability.jacobian`). ``p`` must
hold probability vectors along ``axis``: entries :math:`\ge 0` whose visible entries sum to at
most 1 per row (a softmax row, an all-zero fully masked row, or the visible part of a masked
row), up to the rounding tolerance :math:`\min(\epsilon(64+n), 1/8)` (:math:`\epsilon` the
machine epsilon of ``p``'s dtype, at least float32's). When
``p`` (and ``where``) hold concrete values this is checked eagerly and a failing row raises
``ValueError`` naming ``p`` (``P`` for :func:`sorted_profile`), the row, its sum and its smallest
entry, so ``effective_support([1, 1, 1])`` raises instead of returning 1/3;
``check_probability=False`` skips the check (any real weights). Under ``jax.jit``, ``jax.vmap``
or ``jax.grad`` the values are traced and the check is skipped silently. Values seen only at run
time: a row with a NaN or :math:`\pm\infty` visible entry gives NaN for every metric, never a
finite number (there is no meaningful value); masked entries are ignored, NaN ones included.

**Logit models** (derived here; surrogates for the SSA paper's dilution statements, whose exact
form was not recovered, docs/notes/selective_attention.md §2.2):

* *needle*: one key with logit gap :math:`\Delta` over :math:`n-1` equal keys, inverse temperature
  :math:`\beta`. Exact: :math:`p_{\mathrm{needle}} = 1/(1+(n-1)e^{-\beta\Delta})`
  (:func:`needle_probability`, with entropy, effective support and top-k mass in closed form).
  Under :math:`\beta = a + c\ln n` (:math:`a=1`: :math:`1 + c\ln n`, the SSA ``"linear"``
  position temperature; :math:`a=0`: SSMax :math:`c\ln n`, which at :math:`c=1` is
  :func:`~softmax_stability.temperature.log_n_scaling`) the limit as :math:`n\to\infty` is 0,
  :math:`\sigma(a\Delta)` or 1 as :math:`c\Delta <, =, > 1` (:func:`needle_limit`), with the
  explicit rate :func:`needle_limit_rate` (claims ``DL1-needle-limit``, ``DL1b-ssmax-needle-limit``;
  ``proofs_check`` ``dilution.needle_limits``).
* *Gaussian logits*: :math:`z_j\sim N(0,1)` i.i.d., weights :math:`\operatorname{softmax}(\tau z)`.
  :math:`\mathbb E H = \ln n - \tau^2/2 + o(1)` while :math:`\tau < \sqrt{2\ln n}` (random-energy
  model), :func:`gaussian_entropy_asymptotic`; the exact finite-:math:`n` expectations of the
  entropy, of :math:`\sum_j p_j^2` and of :math:`\max_j p_j` by one-dimensional quadratures
  (:func:`gaussian_expected_entropy`, :func:`gaussian_expected_collision`,
  :func:`gaussian_expected_max_weight`); the delta-method correction
  :func:`gaussian_entropy_correction` (claim ``DL2-gaussian-entropy``, Monte Carlo).
* *bounded logits* in :math:`[-R, R]`: every weight lies in :math:`[e^{-2R}/n,\ e^{2R}/n]`
  (:func:`bounded_weight_interval`; claim ``DL3-bounded-logits``, ``dilution.bounded_logits``).

**Equiangular tokens** (unit vectors with pairwise inner product :math:`\rho`; claim
``CS1-equiangular-contraction``): self-attention is the needle model with gap :math:`1-\rho` and
scales every distance between tokens by :func:`equiangular_contraction`; under
:math:`\beta = \gamma\ln n` the critical :math:`\gamma_c = 1/(1-\rho)`. This is the exact idealisation of
the model of Chen, Lin, Polyanskiy & Rigollet 2025, not their theorem.

**Top-k truncation** (Tzachristas et al. 2025, claims ``TK1``-``TK4``): the discarded tail mass
:func:`topk_tail_mass` is the total variation between a row and its top-:math:`k` renormalisation;
:func:`topk_truncation_error` is the exact change of the attention output and
:func:`topk_truncation_error_bound` its two sharp bounds. Derivations:
``docs/derivations/recent_theory.md``.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import ndtr

from softmax_stability import topk as _topk
from softmax_stability._checks import (
    as_float_array,
    check_axis,
    check_flag,
    check_int_in_range,
    check_nonempty,
    check_positive_finite,
    check_where,
    is_concrete,
)
from softmax_stability._checks import check_probability as _check_probability

__all__ = [
    # metrics
    "entropy",
    "normalized_entropy",
    "max_weight",
    "effective_support",
    "topk_mass",
    "top_fraction_mass",
    "sorted_profile",
    # needle model
    "needle_logits",
    "needle_log_odds",
    "needle_probability",
    "needle_entropy",
    "needle_effective_support",
    "needle_topk_mass",
    "needle_probability_scheduled",
    "needle_limit",
    "needle_limit_error",
    "needle_limit_rate",
    # Gaussian model
    "gaussian_entropy_asymptotic",
    "gaussian_entropy_correction",
    "gaussian_expected_entropy",
    "gaussian_expected_collision",
    "gaussian_expected_max_weight",
    # bounded logits
    "bounded_weight_interval",
    # top-k truncation
    "topk_tail_mass",
    "topk_truncation_error",
    "topk_truncation_error_bound",
    # equiangular tokens
    "equiangular_contraction",
]


# ==============================================================================================
# eager checks


def _prepare(p: Any, axis: Any, where: Any, name: str = "p", check: Any = True) -> tuple[jax.Array, int, Any]:
    check = check_flag(check, "check_probability")
    x = as_float_array(p, name)
    if x.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension, got a scalar")
    user_axis, axis = axis, check_axis(axis, x.ndim, "axis")
    check_nonempty(x, name)
    if where is not None:
        where = check_where(where, x, name, "visible")
    _check_probability(x, name, axis=user_axis, where=where, enabled=check)
    return x, axis, where


def _check_array(v: Any, name: str, *, lo: float | None = None, lo_open: bool = False) -> jax.Array:
    """Float array; when concrete, finite and (optionally) >= lo (> lo with lo_open)."""
    x = as_float_array(v, name)
    if is_concrete(x):
        a = np.asarray(x)
        if a.size and not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be finite, got {v!r}")
        if lo is not None and a.size and (np.any(a <= lo) if lo_open else np.any(a < lo)):
            rel = ">" if lo_open else ">="
            raise ValueError(f"{name} must be {rel} {lo}, got {v!r}")
    return x


def _check_n(n: Any) -> jax.Array:
    return _check_array(n, "n", lo=1.0)


def _check_beta(beta: Any) -> jax.Array:
    """Inverse temperature of the needle model: finite and > 0 when concrete, as ``maps.softmax``'s."""
    x = as_float_array(beta, "beta")
    check_positive_finite(beta, "beta")
    return x


# ==============================================================================================
# metrics (all along the last axis inside the jitted cores)


def _masked(x: jax.Array, where: Any) -> jax.Array:
    if where is None:
        return x
    return jnp.where(jnp.broadcast_to(where, x.shape), x, jnp.zeros_like(x))


def _n_visible(x: jax.Array, where: Any, axis: int) -> jax.Array:
    if where is None:
        return jnp.full(x.shape[:axis] + x.shape[axis + 1:], x.shape[axis], dtype=x.dtype)
    return jnp.sum(jnp.broadcast_to(where, x.shape), axis=axis).astype(x.dtype)


def _nonfinite(x: jax.Array, where: Any, axis: int) -> jax.Array:
    """Rows (reduced over ``axis``) with a NaN or +-inf visible entry: their metrics are NaN."""
    bad = ~jnp.isfinite(x)
    if where is not None:
        bad = bad & jnp.broadcast_to(where, x.shape)
    return jnp.any(bad, axis=axis)


def _nan_where(bad: jax.Array, v: jax.Array) -> jax.Array:
    return jnp.where(bad, jnp.full_like(v, jnp.nan), v)


def _xlogx(q: jax.Array) -> jax.Array:
    pos = q > 0
    return jnp.where(pos, q * jnp.log(jnp.where(pos, q, jnp.ones_like(q))), jnp.zeros_like(q))


@functools.partial(jax.jit, static_argnames=("axis",))
def _entropy_jit(x, where, axis):
    return _nan_where(_nonfinite(x, where, axis), -jnp.sum(_xlogx(_masked(x, where)), axis=axis))


def entropy(p: Any, axis: int = -1, *, where: Any = None, check_probability: bool = True) -> jax.Array:
    r"""Shannon entropy (nats) of each row, :math:`H(p) = -\sum_j p_j\ln p_j` over visible keys.

    :math:`0\ln 0 = 0`; entries :math:`\le 0` and masked entries contribute nothing, so a fully
    masked row gives 0. For a distribution over :math:`n` keys :math:`0 \le H \le \ln n`.

    Args:
        p: attention weights, any shape with at least one dimension.
        axis: the axis of the keys.
        where: optional boolean mask broadcastable to ``p.shape``; ``True`` = visible.
        check_probability: check eagerly that ``p`` holds probability vectors along ``axis`` (see the
            module docstring; ``ValueError`` naming ``p`` otherwise). Skipped for traced values;
            ``False`` computes the formula for any real weights.

    Returns:
        ``p``'s shape without ``axis``.

    Example:
        >>> import numpy as np
        >>> from softmax_stability.dilution import entropy
        >>> print(round(float(entropy(np.full(8, 1 / 8))), 5), round(float(np.log(8)), 5))
        2.07944 2.07944
    """
    x, axis, where = _prepare(p, axis, where, check=check_probability)
    return _entropy_jit(x, where, axis)


@functools.partial(jax.jit, static_argnames=("axis",))
def _normalized_entropy_jit(x, where, axis):
    h = -jnp.sum(_xlogx(_masked(x, where)), axis=axis)
    nv = _n_visible(x, where, axis)
    big = nv > 1
    return _nan_where(_nonfinite(x, where, axis),
                      jnp.where(big, h / jnp.log(jnp.where(big, nv, 2.0)), jnp.zeros_like(h)))


def normalized_entropy(p: Any, axis: int = -1, *, where: Any = None, check_probability: bool = True) -> jax.Array:
    r"""Entropy divided by its maximum, :math:`H(p)/\ln n_{\mathrm{vis}} \in [0, 1]`.

    1 for the uniform row over the visible keys; 0 for a one-hot row. Rows with
    :math:`n_{\mathrm{vis}} \le 1` (a single visible key, or none) give 0 (a point mass).

    Args:
        p: attention weights.
        axis: the axis of the keys.
        where: optional boolean mask (``True`` = visible); :math:`n_{\mathrm{vis}}` counts it.
        check_probability: check eagerly that ``p`` holds probability vectors along ``axis`` (see the
            module docstring; ``ValueError`` naming ``p`` otherwise). Skipped for traced values;
            ``False`` computes the formula for any real weights.

    Returns:
        ``p``'s shape without ``axis``.

    Example:
        >>> import numpy as np
        >>> from softmax_stability.dilution import normalized_entropy
        >>> p = np.array([[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])  # 2nd row: not renormalised by the mask
        >>> print(np.asarray(normalized_entropy(p), float).round(4))
        [0.6309 1.    ]
        >>> print(np.asarray(normalized_entropy(p, where=np.array([True, True, False])), float).round(4))
        [1.     1.0566]
    """
    x, axis, where = _prepare(p, axis, where, check=check_probability)
    return _normalized_entropy_jit(x, where, axis)


@functools.partial(jax.jit, static_argnames=("axis",))
def _max_weight_jit(x, where, axis):
    bad = _nonfinite(x, where, axis)
    if where is None:
        return _nan_where(bad, jnp.max(x, axis=axis))
    w = jnp.broadcast_to(where, x.shape)
    m = jnp.max(jnp.where(w, x, -jnp.inf), axis=axis)
    return _nan_where(bad, jnp.where(jnp.any(w, axis=axis), m, jnp.zeros_like(m)))


def max_weight(p: Any, axis: int = -1, *, where: Any = None, check_probability: bool = True) -> jax.Array:
    r"""Largest weight of each row over the visible keys, :math:`\max_j p_j` (0 if fully masked).

    Args:
        p: attention weights.
        axis: the axis of the keys.
        where: optional boolean mask (``True`` = visible).
        check_probability: check eagerly that ``p`` holds probability vectors along ``axis`` (see the
            module docstring; ``ValueError`` naming ``p`` otherwise). Skipped for traced values;
            ``False`` computes the formula for any real weights.

    Returns:
        ``p``'s shape without ``axis``.

    Example:
        >>> import numpy as np
        >>> from softmax_stability.dilution import max_weight
        >>> print(round(float(max_weight(np.array([0.1, 0.7, 0.2]))), 6))
        0.7
    """
    x, axis, where = _prepare(p, axis, where, check=check_probability)
    return _max_weight_jit(x, where, axis)


@functools.partial(jax.jit, static_argnames=("axis",))
def _effective_support_jit(x, where, axis):
    s2 = jnp.sum(jnp.square(_masked(x, where)), axis=axis)
    pos = s2 > 0
    return _nan_where(_nonfinite(x, where, axis), jnp.where(pos, 1.0 / jnp.where(pos, s2, 1.0), jnp.zeros_like(s2)))


def effective_support(p: Any, axis: int = -1, *, where: Any = None, check_probability: bool = True) -> jax.Array:
    r"""Effective number of attended keys, :math:`1/\sum_j p_j^2` (inverse participation ratio).

    :math:`k` for a row uniform on :math:`k` keys, between 1 and :math:`n_{\mathrm{vis}}` for a
    distribution. A fully masked (or all-zero) row gives 0.

    Args:
        p: attention weights.
        axis: the axis of the keys.
        where: optional boolean mask (``True`` = visible).
        check_probability: check eagerly that ``p`` holds probability vectors along ``axis`` (see the
            module docstring; ``ValueError`` naming ``p`` otherwise). Skipped for traced values;
            ``False`` computes the formula for any real weights.

    Returns:
        ``p``'s shape without ``axis``.

    Example:
        >>> import numpy as np
        >>> from softmax_stability.dilution import effective_support
        >>> print(float(effective_support(np.array([0.25, 0.25, 0.25, 0.25, 0.0]))))
        4.0
    """
    x, axis, where = _prepare(p, axis, where, check=check_probability)
    return _effective_support_jit(x, where, axis)


@functools.partial(jax.jit, static_argnames=("axis", "k"))
def _topk_mass_jit(x, where, axis, k):
    y = jnp.moveaxis(_masked(x, where), axis, -1)
    return _nan_where(_nonfinite(x, where, axis), jnp.sum(_topk._values(y, k), axis=-1))


def topk_mass(p: Any, k: int, axis: int = -1, *, where: Any = None, check_probability: bool = True) -> jax.Array:
    r"""Mass of the :math:`k` largest visible weights of each row, :math:`\sum_{i\le k} p_{(i)}`.

    Rows with fewer than :math:`k` visible keys sum all of them (masked entries count as 0).

    Args:
        p: attention weights.
        k: a static Python int with ``1 <= k <= p.shape[axis]`` (``k > n`` raises ``ValueError``, the
            library's one rule for every ``k``; under ``jax.jit`` pass it as a static argument).
        axis: the axis of the keys.
        where: optional boolean mask (``True`` = visible).
        check_probability: check eagerly that ``p`` holds probability vectors along ``axis`` (see the
            module docstring; ``ValueError`` naming ``p`` otherwise). Skipped for traced values;
            ``False`` computes the formula for any real weights.

    Returns:
        ``p``'s shape without ``axis``.

    Example:
        >>> import numpy as np
        >>> from softmax_stability.dilution import topk_mass
        >>> print(round(float(topk_mass(np.array([0.1, 0.5, 0.15, 0.25]), 2)), 6))
        0.75
    """
    x, axis, where = _prepare(p, axis, where, check=check_probability)
    k = check_int_in_range(k, "k", 1, x.shape[axis])
    return _topk_mass_jit(x, where, axis, k)


@functools.partial(jax.jit, static_argnames=("axis", "fraction"))
def _top_fraction_mass_jit(x, where, axis, fraction):
    nv = _n_visible(x, where, axis)
    y = jnp.moveaxis(_masked(x, where), axis, -1)
    cs = jnp.cumsum(-jnp.sort(-y, axis=-1), axis=-1)
    # k = max(1, floor(fraction * n_vis)); the 1e-9 absorbs the rounding of products like 0.29 * 100
    k = jnp.maximum(jnp.floor(fraction * nv + 1e-9), 1.0).astype(jnp.int32)
    idx = jnp.clip(k - 1, 0, y.shape[-1] - 1)
    return _nan_where(_nonfinite(x, where, axis), jnp.take_along_axis(cs, idx[..., None], axis=-1)[..., 0])


def top_fraction_mass(p: Any, fraction: float, axis: int = -1, *, where: Any = None,
                      check_probability: bool = True) -> jax.Array:
    r"""Mass of the top :math:`k = \max(1, \lfloor f\, n_{\mathrm{vis}} \rfloor)` weights of each row.

    The SSA authors' ``top_k_sum(att, r)`` statistic with a float ratio (e.g. the "top 5 %
    probability" of their dilution plots; docs/notes/selective_attention.md §4.3, [CODE]), with
    :math:`n_{\mathrm{vis}}` the row's visible keys (query position + 1 under a causal mask).
    :math:`\lfloor f n\rfloor` is taken as ``floor(f * n + 1e-9)`` so that a product that is an
    integer up to rounding (``0.29 * 100``) counts as that integer. A fully masked row gives 0.

    Args:
        p: attention weights.
        fraction: a Python float :math:`f \in (0, 1]`.
        axis: the axis of the keys.
        where: optional boolean mask (``True`` = visible).
        check_probability: check eagerly that ``p`` holds probability vectors along ``axis`` (see the
            module docstring; ``ValueError`` naming ``p`` otherwise). Skipped for traced values;
            ``False`` computes the formula for any real weights.

    Returns:
        ``p``'s shape without ``axis``.

    Example:
        >>> import numpy as np
        >>> from softmax_stability.dilution import top_fraction_mass
        >>> p = np.array([0.4, 0.3, 0.2, 0.1])
        >>> print(round(float(top_fraction_mass(p, 0.5)), 6), round(float(top_fraction_mass(p, 0.05)), 6))
        0.7 0.4
    """
    x, axis, where = _prepare(p, axis, where, check=check_probability)
    if isinstance(fraction, bool) or not isinstance(fraction, (numbers.Real, np.floating)):
        raise TypeError(f"fraction must be a real number in (0, 1], got {fraction!r}")
    f = float(fraction)
    if not (math.isfinite(f) and 0.0 < f <= 1.0):
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    return _top_fraction_mass_jit(x, where, axis, f)


@jax.jit
def _sorted_profile_jit(x, where):
    y = _nan_where(_nonfinite(x, where, -1)[..., None], _masked(x, where))  # a NaN/inf row: all NaN
    y = jnp.flip(jnp.sort(y, axis=-1), axis=-1)
    return jnp.mean(y.reshape((-1,) + y.shape[-2:]), axis=0)


def sorted_profile(P: Any, *, where: Any = None, check_probability: bool = True) -> jax.Array:
    r"""Sorted attention profile: each query row sorted descending, averaged over batch and heads.

    For attention maps ``P`` of shape ``(..., T_q, T_k)`` returns the ``(T_q, T_k)`` array whose
    row :math:`t` is :math:`\mathbb E_{\text{batch, heads}}[\,p_{t,(1)} \ge p_{t,(2)} \ge \dots]`.
    Masked entries count as 0 and sort to the end, so for a causal map row :math:`t` (0-based)
    has its :math:`t+1` visible values first and zeros after them; plot ``profile[t, :t + 1]``.
    Each row sums to the average row mass (1 for a softmax row with a visible key).

    Source: the SSA authors' ``sorted_att_buffer`` statistic and ``finetune/draw_att.py``
    (docs/notes/selective_attention.md §1.7 and §3, [CODE]).

    Args:
        P: attention maps, at least 2-D ``(..., T_q, T_k)``; leading axes are averaged.
        where: optional boolean mask broadcastable to ``P.shape`` (``True`` = visible).
        check_probability: check eagerly that ``P`` holds probability vectors along its last axis (see the
            module docstring; ``ValueError`` naming ``P`` otherwise). Skipped for traced values;
            ``False`` computes the formula for any real weights.

    Returns:
        Array of shape ``(T_q, T_k)``.

    Example:
        >>> import numpy as np
        >>> from softmax_stability.dilution import sorted_profile
        >>> P = np.array([[[1.0, 0.0], [0.25, 0.75]], [[1.0, 0.0], [0.75, 0.25]]])
        >>> print(np.asarray(sorted_profile(P), float))
        [[1.   0.  ]
         [0.75 0.25]]
    """
    x, _, where = _prepare(P, -1, where, name="P", check=check_probability)
    if x.ndim < 2:
        raise ValueError(f"P must have at least 2 dimensions (..., T_q, T_k), got shape {x.shape}")
    return _sorted_profile_jit(x, where)


# ==============================================================================================
# needle model


def needle_logits(n: int, gap: float, *, dtype: Any = None) -> jax.Array:
    r"""The needle logit vector :math:`(\Delta, 0, \dots, 0) \in \mathbb R^n` (needle at index 0).

    Args:
        n: a Python int ``>= 1``.
        gap: the needle's logit gap :math:`\Delta` (finite).
        dtype: optional float dtype (default: JAX's default float).

    Returns:
        Array of shape ``(n,)``.

    Example:
        >>> from softmax_stability.dilution import needle_logits
        >>> print(needle_logits(3, 2.0).tolist())
        [2.0, 0.0, 0.0]
    """
    n = check_int_in_range(n, "n", 1)
    g = float(gap)
    if not math.isfinite(g):
        raise ValueError(f"gap must be finite, got {gap!r}")
    dtype = dtype or jnp.result_type(float)
    return jnp.zeros((n,), dtype).at[0].set(g)


def _needle_a(n, gap, beta):
    """Log-odds a = beta*gap - ln(n-1) of the needle (n > 1), and the mask n > 1."""
    big = n > 1
    a = beta * gap - jnp.log(jnp.where(big, n - 1.0, 1.0))
    return a, big


def needle_log_odds(n: Any, gap: Any, beta: Any = 1.0) -> jax.Array:
    r"""Log-odds of the needle's weight, :math:`\ln\frac{p}{1-p} = \beta\Delta - \ln(n-1)` (:math:`n \ge 2`).

    :math:`p/(1-p)` is the needle's weight over the total weight of the other :math:`n-1` keys,
    each :math:`e^{-\beta\Delta}` times the needle's.

    Source: derived here.

    Args:
        n: number of keys, ``>= 2``.
        gap: logit gap :math:`\Delta`, finite.
        beta: inverse temperature, finite and ``> 0`` (as for :func:`softmax_stability.maps.softmax`;
            checked when concrete).

    Returns:
        The broadcast shape of the arguments.

    Example:
        >>> from softmax_stability.dilution import needle_log_odds
        >>> print(f"{float(needle_log_odds(3, 1.0, 2.0)):.6f}")
        1.306853
    """
    n = _check_array(n, "n", lo=2.0)
    gap = _check_array(gap, "gap")
    beta = _check_beta(beta)
    return _needle_a(n, gap, beta)[0]


def needle_probability(n: Any, gap: Any, beta: Any = 1.0) -> jax.Array:
    r"""Weight of the needle: one logit :math:`\Delta` above :math:`n-1` equal logits.

    .. math::
        p_{\mathrm{needle}} = \frac{1}{1 + (n-1)e^{-\beta\Delta}} = \sigma\big(\beta\Delta - \ln(n-1)\big),

    evaluated as the logistic function of the log-odds (no overflow for :math:`n` up to
    :math:`2^{1000}`); :math:`n=1` gives 1. Each of the other keys gets :math:`(1-p)/(n-1)`.

    Source: derived here (docs/notes/field.md §4.1; docs/notes/selective_attention.md §2.2 "separated-target model").

    Args:
        n: number of keys, ``>= 1`` (real values allowed).
        gap: logit gap :math:`\Delta`, finite (negative: the needle is below the others).
        beta: inverse temperature :math:`\beta`, finite and ``> 0`` (as for
            :func:`softmax_stability.maps.softmax`; checked when concrete: a negative value would
            describe the reversed map, ``ValueError``).

    Returns:
        The broadcast shape of the arguments.

    Example:
        >>> from softmax_stability.dilution import needle_probability
        >>> print(f"{float(needle_probability(4096, 2.0, 1.0)):.6f}")
        0.001801
    """
    n = _check_n(n)
    gap = _check_array(gap, "gap")
    beta = _check_beta(beta)
    a, big = _needle_a(n, gap, beta)
    return jnp.where(big, jax.nn.sigmoid(a), jnp.ones_like(a))


def needle_entropy(n: Any, gap: Any, beta: Any = 1.0, *, normalized: bool = False) -> jax.Array:
    r"""Entropy of the needle row, in closed form.

    .. math::
        H = -p\ln p - (1-p)\ln(1-p) + (1-p)\ln(n-1), \qquad p = p_{\mathrm{needle}},

    with :math:`\ln p` and :math:`\ln(1-p)` as log-sigmoids of the log-odds (accurate for
    :math:`p` near 0 or 1). :math:`n=1` gives 0. With ``normalized=True`` returns
    :math:`H/\ln n` (0 at :math:`n=1`), the closed form of :func:`normalized_entropy`.

    Source: derived here.

    Args:
        n, gap, beta: as in :func:`needle_probability`.
        normalized: divide by :math:`\ln n`.

    Returns:
        The broadcast shape of the arguments.

    Example:
        >>> from softmax_stability.dilution import needle_entropy
        >>> print(f"{float(needle_entropy(2, 0.0)):.6f}")
        0.693147
    """
    n = _check_n(n)
    gap = _check_array(gap, "gap")
    beta = _check_beta(beta)
    a, big = _needle_a(n, gap, beta)
    lp, lq = jax.nn.log_sigmoid(a), jax.nn.log_sigmoid(-a)
    p, q = jnp.exp(lp), jnp.exp(lq)
    h = -p * lp - q * lq + q * jnp.log(jnp.where(big, n - 1.0, 1.0))
    h = jnp.where(big, h, jnp.zeros_like(h))
    if normalized:
        h = jnp.where(big, h / jnp.log(jnp.where(big, n, 2.0)), jnp.zeros_like(h))
    return h


def needle_effective_support(n: Any, gap: Any, beta: Any = 1.0) -> jax.Array:
    r"""Effective support of the needle row, :math:`1/\big(p^2 + (1-p)^2/(n-1)\big)` (1 at :math:`n=1`).

    Source: derived here.

    Args:
        n, gap, beta: as in :func:`needle_probability`.

    Returns:
        The broadcast shape of the arguments.

    Example:
        >>> from softmax_stability.dilution import needle_effective_support
        >>> print(f"{float(needle_effective_support(10, 0.0)):.4f}")
        10.0000
    """
    n = _check_n(n)
    gap = _check_array(gap, "gap")
    beta = _check_beta(beta)
    a, big = _needle_a(n, gap, beta)
    p, q = jax.nn.sigmoid(a), jax.nn.sigmoid(-a)
    s2 = p * p + q * q / jnp.where(big, n - 1.0, 1.0)
    return jnp.where(big, 1.0 / s2, jnp.ones_like(s2))


def needle_topk_mass(n: Any, gap: Any, beta: Any, k: int) -> jax.Array:
    r"""Top-:math:`k` mass of the needle row, in closed form.

    With :math:`p` the needle weight and :math:`q=(1-p)/(n-1)` the others':
    :math:`p + (k-1)q` if :math:`p \ge q` (:math:`\beta\Delta \ge 0`), else
    :math:`\min(k, n-1)\,q + [k = n]\,p`.

    Source: derived here.

    Args:
        n, gap, beta: as in :func:`needle_probability`.
        k: a static Python int ``>= 1``; must be ``<= n`` where ``n`` is concrete.

    Returns:
        The broadcast shape of the arguments.

    Example:
        >>> from softmax_stability.dilution import needle_topk_mass
        >>> print(f"{float(needle_topk_mass(5, 0.0, 1.0, 2)):.6f}")
        0.400000
    """
    k = check_int_in_range(k, "k", 1)
    n = _check_n(n)
    if is_concrete(n) and np.any(np.asarray(n) < k):
        raise ValueError(f"k must be in [1, n], got k={k} and n={np.asarray(n).min()}")
    gap = _check_array(gap, "gap")
    beta = _check_beta(beta)
    a, big = _needle_a(n, gap, beta)
    p, rest = jax.nn.sigmoid(a), jax.nn.sigmoid(-a)
    q = rest / jnp.where(big, n - 1.0, 1.0)
    above = p + (k - 1) * q
    below = jnp.minimum(k, n - 1.0) * q + jnp.where(k >= n, p, 0.0)
    out = jnp.where(a + jnp.log(jnp.where(big, n - 1.0, 1.0)) >= 0, above, below)
    return jnp.where(big, out, jnp.ones_like(out))


def _schedule_parts(n, gap, c, offset):
    """b = offset*gap (limit log-odds), e = (c*gap - 1) ln n - log1p(-1/n) (the rest), kappa = c*gap - 1."""
    kappa = c * gap - 1.0
    e = kappa * jnp.log(n) - jnp.log1p(-1.0 / jnp.where(n > 1, n, 2.0))
    return offset * gap, e, kappa


def needle_probability_scheduled(n: Any, gap: Any, c: Any, offset: Any = 1.0) -> jax.Array:
    r"""Needle weight under the schedule :math:`\beta(n) = a + c\ln n`, accurate at huge :math:`n`.

    .. math::
        p(n) = \sigma\big(a\Delta + (c\Delta - 1)\ln n - \ln(1 - 1/n)\big),

    the same value as ``needle_probability(n, gap, offset + c * log(n))`` but with the log-odds
    grouped so that :math:`(c\Delta - 1)\ln n` and :math:`\ln(1-1/n)` do not cancel (float64 keeps
    full relative accuracy up to :math:`n = 2^{60}`). ``offset=1`` is
    :math:`1 + c\ln n` (the SSA ``"linear"`` position temperature, :func:`softmax_stability.temperature.position_temperature`),
    ``offset=0`` is SSMax :math:`s\ln n` (:func:`softmax_stability.temperature.ssmax`, :math:`c=s`).

    Source: derived here (docs/notes/selective_attention.md §2.2; docs/notes/field.md §4.4).

    Args:
        n: number of keys, ``>= 2``.
        gap: needle gap :math:`\Delta`, finite.
        c: log-slope, finite.
        offset: :math:`a`, finite.

    Returns:
        The broadcast shape of the arguments.

    Example:
        >>> from softmax_stability.dilution import needle_probability_scheduled
        >>> print(f"{float(needle_probability_scheduled(65536, 2.0, 0.5)):.4f}")
        0.8808
    """
    n = _check_array(n, "n", lo=2.0)
    gap, c, offset = (_check_array(v, nm) for v, nm in ((gap, "gap"), (c, "c"), (offset, "offset")))
    b, e, _ = _schedule_parts(n, gap, c, offset)
    return jax.nn.sigmoid(b + e)


def needle_limit(gap: Any, c: Any, offset: Any = 1.0) -> jax.Array:
    r"""Limit of the needle weight as :math:`n\to\infty` under :math:`\beta = a + c\ln n`.

    .. math::
        \lim_{n\to\infty} p(n) = \begin{cases} 0 & c\Delta < 1 \\ \sigma(a\Delta) = 1/(1+e^{-a\Delta}) & c\Delta = 1
        \\ 1 & c\Delta > 1 \end{cases}

    So :math:`\ln n` is the critical growth of the inverse temperature for gap-separated logits:
    :math:`1 + c\ln n` (:math:`a=1`, SSA ``"linear"``) has the limit :math:`1/(1+e^{-\Delta})` at
    :math:`c\Delta = 1`, SSMax :math:`c\ln n` (:math:`a=0`; :math:`c=1` is log-n scaling) has
    :math:`1/2`. The case :math:`c\Delta = 1` is decided by exact float equality.

    Source: derived here (docs/notes/selective_attention.md §2.2, docs/notes/field.md §4.4); ``proofs_check`` ``dilution.needle_limits``.

    Args:
        gap: :math:`\Delta`, finite.
        c: log-slope, finite.
        offset: :math:`a`, finite.

    Returns:
        The broadcast shape of the arguments.

    Example:
        >>> from softmax_stability.dilution import needle_limit
        >>> print([round(float(needle_limit(2.0, c)), 6) for c in (0.25, 0.5, 1.0)])
        [0.0, 0.880797, 1.0]
    """
    gap, c, offset = (_check_array(v, nm) for v, nm in ((gap, "gap"), (c, "c"), (offset, "offset")))
    kappa = c * gap - 1.0
    return jnp.where(kappa < 0, 0.0, jnp.where(kappa > 0, 1.0, jax.nn.sigmoid(offset * gap)))


def needle_limit_error(n: Any, gap: Any, c: Any, offset: Any = 1.0) -> jax.Array:
    r"""Signed distance :math:`p(n) - \lim_{m\to\infty} p(m)` under :math:`\beta = a + c\ln n`, stably.

    With :math:`b = a\Delta` and :math:`e = (c\Delta-1)\ln n - \ln(1-1/n)`: :math:`\sigma(b+e)` if
    :math:`c\Delta<1`, :math:`-\sigma(-b-e)` if :math:`c\Delta>1`, and
    :math:`\sigma(b+e)-\sigma(b) = \sinh(e/2)/(2\cosh\frac{b+e}{2}\cosh\frac b2)` if
    :math:`c\Delta=1` (no cancellation, so the :math:`O(1/n)` distance keeps full relative
    accuracy at :math:`n=2^{40}`).

    Source: derived here.

    Args:
        n: ``>= 2``; gap, c, offset: as in :func:`needle_limit`.

    Returns:
        The broadcast shape of the arguments.

    Example:
        >>> from softmax_stability.dilution import needle_limit_error
        >>> print(f"{float(needle_limit_error(2.0 ** 40, 2.0, 0.5)):.4e}")
        9.5491e-14
    """
    n = _check_array(n, "n", lo=2.0)
    gap, c, offset = (_check_array(v, nm) for v, nm in ((gap, "gap"), (c, "c"), (offset, "offset")))
    b, e, kappa = _schedule_parts(n, gap, c, offset)
    at = jnp.sinh(e / 2) / (2 * jnp.cosh((b + e) / 2) * jnp.cosh(b / 2))
    return jnp.where(kappa < 0, jax.nn.sigmoid(b + e), jnp.where(kappa > 0, -jax.nn.sigmoid(-b - e), at))


def needle_limit_rate(n: Any, gap: Any, c: Any, offset: Any = 1.0) -> jax.Array:
    r"""Explicit bound on :math:`|p(n) - \lim p|` under :math:`\beta = a + c\ln n` (:math:`n \ge 2`).

    .. math::
        |p(n) - \lim p| \le \begin{cases}
          e^{a\Delta}\, n^{c\Delta - 1}\,\frac{n}{n-1} & c\Delta < 1 \quad (p = \sigma(x) \le e^{x}) \\
          \sigma'(\xi^\star)\,\ln\frac{n}{n-1} & c\Delta = 1 \quad (\text{mean value theorem}) \\
          e^{-a\Delta}\, n^{1 - c\Delta}\,\frac{n-1}{n} & c\Delta > 1 \quad (1 - p = \sigma(-x) \le e^{-x})
        \end{cases}

    where :math:`\xi^\star` is the point of :math:`[a\Delta,\ a\Delta + \ln\frac{n}{n-1}]` closest to
    0 (where :math:`\sigma' = \sigma(1-\sigma)` is largest). Each case tends to 0 as
    :math:`n\to\infty` (rates :math:`n^{-|c\Delta-1|}` and :math:`1/n`), which proves the limits of
    :func:`needle_limit`; each is approached (ratio :math:`\to 1`) as :math:`n\to\infty`.

    Source: derived here; ``proofs_check`` ``dilution.needle_limits``.

    Args:
        n: ``>= 2``; gap, c, offset: as in :func:`needle_limit`.

    Returns:
        The broadcast shape of the arguments.

    Example:
        >>> from softmax_stability.dilution import needle_limit_rate
        >>> print(f"{float(needle_limit_rate(2.0 ** 40, 2.0, 0.5)):.4e}")
        9.5491e-14
    """
    n = _check_array(n, "n", lo=2.0)
    gap, c, offset = (_check_array(v, nm) for v, nm in ((gap, "gap"), (c, "c"), (offset, "offset")))
    kappa = c * gap - 1.0
    b = offset * gap
    ln_n = jnp.log(n)
    ratio = -jnp.log1p(-1.0 / n)  # ln(n/(n-1)) > 0
    below = jnp.exp(b + kappa * ln_n + ratio)
    above = jnp.exp(-b - kappa * ln_n - ratio)
    xi = jnp.clip(0.0, b, b + ratio)
    at = jax.nn.sigmoid(xi) * jax.nn.sigmoid(-xi) * ratio
    return jnp.where(kappa < 0, below, jnp.where(kappa > 0, above, at))


# ==============================================================================================
# Gaussian logits


def gaussian_entropy_asymptotic(n: Any, tau: Any) -> jax.Array:
    r"""Leading-order entropy of :math:`\operatorname{softmax}(\tau z)`, :math:`z_j \sim N(0,1)` i.i.d.

    .. math::
        \mathbb E H \approx \ln n - \tfrac12\min\big(\tau^2,\ \tau_c^2\big), \qquad \tau_c = \sqrt{2\ln n}.

    For :math:`\tau < \tau_c` this is :math:`\ln n - \tau^2/2` (error :math:`o(1)` at fixed
    :math:`\tau`, :math:`o(\ln n)` at fixed :math:`\tau/\tau_c < 1`; see
    :func:`gaussian_entropy_correction`); for :math:`\tau \ge \tau_c` (the "frozen" phase of the
    random-energy model) the entropy is :math:`o(\ln n)` and the formula gives its leading order 0.
    Hence :math:`H/\ln n \to 1 - (\tau/\tau_c)^2` (dilution at fixed :math:`\tau`); the critical
    scale is :math:`\sqrt{2\ln n}`, not :math:`\ln n` as for the needle.

    Source: derived here (law of large numbers for :math:`Z = \sum_j e^{\tau z_j}`; docs/notes/selective_attention.md §2.2).

    Args:
        n: number of keys, ``>= 1``.
        tau: inverse temperature, finite (only :math:`|\tau|` matters).

    Returns:
        The broadcast shape of the arguments.

    Example:
        >>> from softmax_stability.dilution import gaussian_entropy_asymptotic
        >>> print(f"{float(gaussian_entropy_asymptotic(4096, 1.0)):.4f}")
        7.8178
    """
    n = _check_n(n)
    tau = _check_array(tau, "tau")
    ln_n = jnp.log(n)
    return ln_n - 0.5 * jnp.minimum(tau * tau, 2.0 * ln_n)


def gaussian_entropy_correction(n: Any, tau: Any) -> jax.Array:
    r"""Second-order (delta-method) finite-:math:`n` correction to :math:`\mathbb E H = \ln n - \tau^2/2`.

    .. math::
        c_n(\tau) = \frac{(2\tau^2 - 1)e^{\tau^2} + 1}{2n},

    from expanding :math:`\ln Z` and :math:`\sum_j p_j z_j = A/Z` to second order around
    :math:`\mathbb E Z = n e^{\tau^2/2}`, :math:`\mathbb E A = n\tau e^{\tau^2/2}`
    (:math:`\operatorname{Var} e^{\tau z} = e^{2\tau^2}-e^{\tau^2}`,
    :math:`\operatorname{Cov}(z e^{\tau z}, e^{\tau z}) = 2\tau e^{2\tau^2}-\tau e^{\tau^2}`).
    Small while :math:`e^{\tau^2} \ll n`. Checked against the exact quadrature
    (:func:`gaussian_expected_entropy`) for :math:`2^4 \le n \le 2^{30}`:
    :math:`0 \le \mathbb E H - (\ln n - \tau^2/2) \le c_n(\tau)` for all
    :math:`\tau \le 0.95\sqrt{2\ln n}` tested, with ratio :math:`\to 1` as
    :math:`\tau^2/\ln n \to 0` (numerical observation, not a proof).

    Source: derived here (claim ``DL2-gaussian-entropy``).

    Args:
        n: number of keys, ``>= 1``.
        tau: inverse temperature, finite.

    Returns:
        The broadcast shape of the arguments.

    Example:
        >>> from softmax_stability.dilution import gaussian_entropy_correction
        >>> print(f"{float(gaussian_entropy_correction(4096, 1.0)):.3e}")
        4.539e-04
    """
    n = _check_n(n)
    tau = _check_array(tau, "tau")
    t2 = tau * tau
    return (2.0 * t2 * jnp.exp(t2) - jnp.expm1(t2)) / (2.0 * n)


# Quadrature grids. u = ln t for the Laplace-type integral over t, z for the Gaussian expectations.
# Both integrands are analytic in a strip (|Im u| < pi/2, |Im z| < pi/(2 tau)), so the trapezoid
# rule converges geometrically: ~1e-12 absolute for |tau| <= 10 (checked against 4x finer grids).
_NZ = 1024
_NU = 768
_NZ_MAX = 2048  # the max-weight integral uses a cumulative trapezoid (O(h^4) corrected): finer grid
_Z_TAIL = 13.0  # N(0,1) density < 1e-36 beyond


def _grids(n, tau, nz, nu):
    tau = jnp.abs(tau)
    z = jnp.linspace(-_Z_TAIL, _Z_TAIL + tau, nz)
    hz = z[1] - z[0]
    pdf = jnp.exp(-0.5 * z * z) / jnp.sqrt(2.0 * jnp.pi)
    # integrands are negligible for t * n * E e^{tau z} < e^{-40} and, for n >= 1, t > e^{9 tau + 4}
    u = jnp.linspace(-(jnp.log(n) + 0.5 * tau * tau) - 40.0, 9.0 * tau + 4.0, nu)
    hu = u[1] - u[0]
    return tau, z, hz, pdf, u, hu


def _gauss_entropy_collision(n, tau):
    r"""E H and E sum p^2 for one (n, tau) through the Laplace identities

    ln Z = int_0^inf (e^{-t} - e^{-tZ}) dt/t,  1/Z = int_0^inf e^{-tZ} dt,  1/Z^2 = int_0^inf t e^{-tZ} dt,

    with E e^{-tZ} = phi(t)^n, phi(t) = E e^{-t e^{tau z}} (i.i.d. terms).
    """
    tau, z, hz, pdf, u, hu = _grids(n, tau, _NZ, _NU)
    wz = hz * pdf
    x = jnp.exp(u[:, None] + tau * z[None, :])  # t e^{tau z}; inf is fine (exp(-inf) = 0)
    one_minus_phi = jnp.minimum(jnp.sum(wz * (-jnp.expm1(-x)), axis=1), 1.0)
    log_phi = jnp.log1p(-one_minus_phi)
    psi = jnp.sum(wz * z * jnp.exp(tau * z - x), axis=1)  # E[z e^{tau z} e^{-t e^{tau z}}]
    chi = jnp.sum(wz * jnp.exp(2.0 * tau * z - x), axis=1)  # E[e^{2 tau z} e^{-t e^{tau z}}]
    t = jnp.exp(u)
    phi_nm1 = jnp.exp(jnp.where(n == 1, 0.0, (n - 1.0) * log_phi))
    e_log_z = hu * jnp.sum(jnp.expm1(-t) - jnp.expm1(n * log_phi))
    e_pz = n * hu * jnp.sum(t * psi * phi_nm1)  # E sum_j p_j z_j
    e_p2 = n * hu * jnp.sum(t * t * chi * phi_nm1)  # E sum_j p_j^2
    return e_log_z - tau * e_pz, e_p2


def _gauss_max(n, tau):
    r"""E max_j p_j = n int_0^inf E[e^{tau z1} e^{-t e^{tau z1}} phi_<(t, z1)^{n-1}] dt with
    phi_<(t, z1) = E[e^{-t e^{tau z}} 1{z < z1}] (the needle-free analogue of the identities above)."""
    tau, z, hz, pdf, u, hu = _grids(n, tau, _NZ_MAX, _NU)
    x = jnp.exp(u[:, None] + tau * z[None, :])
    om = -jnp.expm1(-x)
    g = om * pdf
    cum = jnp.concatenate([jnp.zeros((u.shape[0], 1)), jnp.cumsum(0.5 * hz * (g[:, 1:] + g[:, :-1]), axis=1)], axis=1)
    dg = (tau * x * jnp.exp(-x) - z * om) * pdf  # g'(z): Euler-Maclaurin end correction, O(h^2) -> O(h^4)
    cum = cum - hz * hz / 12.0 * (dg - dg[:, :1])
    one_minus = jnp.minimum(ndtr(-z)[None, :] + cum, 1.0)
    log_phi_lt = jnp.log1p(-one_minus)
    expo = jnp.where(n == 1, 0.0, (n - 1.0) * log_phi_lt)
    inner = jnp.sum(hz * pdf * jnp.exp(tau * z - x + expo), axis=1)
    return n * hu * jnp.sum(jnp.exp(u) * inner)


def _elementwise(fn, n, tau, n_out):
    shape = jnp.broadcast_shapes(n.shape, tau.shape)
    dtype = jnp.result_type(n.dtype, tau.dtype)
    nf = jnp.broadcast_to(n, shape).astype(dtype).reshape(-1)
    tf = jnp.broadcast_to(tau, shape).astype(dtype).reshape(-1)
    out = lax.map(lambda a: fn(a[0], a[1]), jnp.stack([nf, tf], axis=-1))  # sequential: bounded memory
    if n_out == 1:
        return out.reshape(shape)
    return tuple(o.reshape(shape) for o in out)


@jax.jit
def _gauss_ec_jit(n, tau):
    return _elementwise(_gauss_entropy_collision, n, tau, 2)


@jax.jit
def _gauss_max_jit(n, tau):
    return _elementwise(_gauss_max, n, tau, 1)


def _check_gauss(n, tau):
    n = _check_n(n)
    tau = _check_array(tau, "tau")
    if is_concrete(tau) and tau.size and np.max(np.abs(np.asarray(tau))) > 20:
        raise ValueError(f"tau must satisfy |tau| <= 20 (quadrature range), got {np.max(np.abs(np.asarray(tau)))}")
    return n, tau


def gaussian_expected_entropy(n: Any, tau: Any) -> jax.Array:
    r"""Exact :math:`\mathbb E\,H(\operatorname{softmax}(\tau z))` for :math:`z \sim N(0, I_n)`, any :math:`n`.

    .. math::
        \mathbb E H = \int_0^\infty \frac{e^{-t} - \phi(t)^n}{t}\,dt
          - \tau n \int_0^\infty \mathbb E\big[z e^{\tau z - t e^{\tau z}}\big]\,\phi(t)^{n-1}\,dt,
        \qquad \phi(t) = \mathbb E\, e^{-t e^{\tau z}},

    from :math:`H = \ln Z - \tau\sum_j p_j z_j`, the Frullani identity
    :math:`\ln Z = \int_0^\infty (e^{-t}-e^{-tZ})\,dt/t` and :math:`1/Z = \int_0^\infty e^{-tZ}dt`
    with independence of the :math:`z_j`. Each :math:`\phi`-type expectation is a trapezoid rule
    on a :math:`z` grid and the :math:`t` integral one on :math:`\ln t`; accuracy about
    :math:`10^{-11}` absolute for :math:`|\tau| \le 10` and any :math:`n \le 2^{60}` (``n`` may be
    a float) in float64; enable ``jax_enable_x64`` (in float32 expect about :math:`10^{-5}`). Valid in both phases (:math:`\tau` below and above :math:`\sqrt{2\ln n}`);
    independent of Monte Carlo, so it checks it. Cost: about 1M exponentials per point.

    Source: derived here.

    Args:
        n: number of keys, ``>= 1``.
        tau: inverse temperature, finite, :math:`|\tau| \le 20`.

    Returns:
        The broadcast shape of the arguments.

    Example:
        >>> from softmax_stability.dilution import gaussian_expected_entropy
        >>> print(f"{float(gaussian_expected_entropy(4096, 1.0)):.4f}")
        7.8182
    """
    n, tau = _check_gauss(n, tau)
    return _gauss_ec_jit(n, tau)[0]


def gaussian_expected_collision(n: Any, tau: Any) -> jax.Array:
    r"""Exact :math:`\mathbb E\sum_j p_j^2` for :math:`p = \operatorname{softmax}(\tau z)`, :math:`z\sim N(0,I_n)`.

    .. math::
        \mathbb E \sum_j p_j^2 = n\int_0^\infty t\,\mathbb E\big[e^{2\tau z - t e^{\tau z}}\big]\,\phi(t)^{n-1}\,dt

    (from :math:`1/Z^2 = \int_0^\infty t e^{-tZ}dt`), same quadrature and accuracy as
    :func:`gaussian_expected_entropy`. :math:`1/\mathbb E\sum p^2` is a lower bound (Jensen) on
    :math:`\mathbb E` of the effective support. Leading order :math:`e^{\tau^2}/n` for
    :math:`e^{\tau^2}\ll n`.

    Source: derived here.

    Args:
        n: ``>= 1``; tau: finite, :math:`|\tau| \le 20`.

    Returns:
        The broadcast shape of the arguments.

    Example:
        >>> from softmax_stability.dilution import gaussian_expected_collision
        >>> print(f"{float(gaussian_expected_collision(2, 0.0)):.4f}")
        0.5000
    """
    n, tau = _check_gauss(n, tau)
    return _gauss_ec_jit(n, tau)[1]


def gaussian_expected_max_weight(n: Any, tau: Any) -> jax.Array:
    r"""Exact :math:`\mathbb E\max_j p_j` for :math:`p = \operatorname{softmax}(\tau z)`, :math:`z\sim N(0,I_n)`.

    .. math::
        \mathbb E\max_j p_j = n\int_0^\infty \mathbb E_{z_1}\!\Big[e^{\tau z_1 - t e^{\tau z_1}}
        \Big(\mathbb E\big[e^{-t e^{\tau z}}\,\mathbb 1\{z < z_1\}\big]\Big)^{n-1}\Big]\,dt .

    The inner truncated expectation is a cumulative trapezoid with the Euler-Maclaurin end
    correction (fourth order); accuracy about :math:`10^{-8}` absolute for :math:`|\tau|\le 10`
    in float64 (checked against a 4x finer grid, a 1-D SciPy integral at :math:`n=2` and Monte
    Carlo).

    Source: derived here.

    Args:
        n: ``>= 1``; tau: finite, :math:`|\tau| \le 20`.

    Returns:
        The broadcast shape of the arguments.

    Example:
        >>> from softmax_stability.dilution import gaussian_expected_max_weight
        >>> print(f"{float(gaussian_expected_max_weight(8, 0.0)):.4f}")
        0.1250
    """
    n, tau = _check_gauss(n, tau)
    return _gauss_max_jit(n, tau)


# ==============================================================================================
# bounded logits


def bounded_weight_interval(n: Any, R: Any) -> tuple[jax.Array, jax.Array]:
    r"""Interval holding every softmax weight when all :math:`n` logits lie in :math:`[-R, R]`.

    .. math::
        \frac{e^{-2R}}{n} \le p_j = \frac{e^{z_j}}{\sum_i e^{z_i}} \le \frac{e^{2R}}{n},

    since each :math:`e^{z_i}` lies in :math:`[e^{-R}, e^{R}]`. Equivalently
    :math:`|\ln(n p_j)| \le 2R`: with bounded logits attention is diluted at rate :math:`1/n`.
    Approached (ratio :math:`\to 1`) by one logit at :math:`\mp R` and the rest at :math:`\pm R`
    as :math:`n\to\infty`.

    Source: derived here (docs/notes/selective_attention.md §2.2, §5 item 16; docs/notes/field.md §4.1); ``proofs_check``
    ``dilution.bounded_logits``.

    Args:
        n: number of keys, ``>= 1``.
        R: logit bound, finite and ``>= 0``.

    Returns:
        ``(lower, upper)``, each of the broadcast shape of ``n`` and ``R``.

    Example:
        >>> from softmax_stability.dilution import bounded_weight_interval
        >>> lo, hi = bounded_weight_interval(4, 0.5)
        >>> print(f"{float(lo):.6f} {float(hi):.6f}")
        0.091970 0.679570
    """
    n = _check_n(n)
    R = _check_array(R, "R", lo=0.0)
    return jnp.exp(-2.0 * R) / n, jnp.exp(2.0 * R) / n


# ==============================================================================================
# top-k truncation (Tzachristas et al. 2025, arXiv:2512.07647, statement as recorded in the notes)


@functools.partial(jax.jit, static_argnames=("axis", "k"))
def _topk_tail_mass_jit(x, where, axis, k):
    y = jnp.moveaxis(_masked(x, where), axis, -1)
    n = y.shape[-1]
    if k >= n:
        tail = jnp.zeros(y.shape[:-1], y.dtype)
    else:
        tail = -jnp.sum(_topk._values(-y, n - k), axis=-1)  # the n - k smallest, summed directly
    return _nan_where(_nonfinite(x, where, axis), tail)  # NaN/inf in, NaN out, as every metric here


def topk_tail_mass(p: Any, k: int, axis: int = -1, *, where: Any = None,
                   check_probability: bool = True) -> jax.Array:
    r"""Mass outside the :math:`k` largest visible weights of each row, :math:`t = \sum_{i > k} p_{(i)}`.

    The tail that top-:math:`k` truncation discards: :math:`t = 1 - p(S_k)` for a row on the simplex,
    with :math:`S_k` the top-:math:`k` set (ties at the :math:`k`-th place do not change :math:`t`).
    Summed directly over the :math:`n - k` smallest entries, not as :math:`1 - p(S_k)`, so a tiny
    tail keeps full relative precision. It is the total-variation distance between :math:`p` and
    its top-:math:`k` renormalisation :math:`\hat p = p\,[i \in S_k]/p(S_k)` (claim
    ``TK1-topk-tv-tail-mass``):

    .. math::
        \mathrm{TV}(p, \hat p) = \tfrac12\|p - \hat p\|_1
        = \tfrac12\Big(\sum_{i\in S_k} p_i\big(\tfrac{1}{p(S_k)} - 1\big) + \sum_{i\notin S_k} p_i\Big) = t .

    Masked entries count as 0 (a row with at most :math:`k` visible keys has tail 0).

    Source: Tzachristas et al. 2025 (arXiv:2512.07647), statement taken from the abstract as
    recorded in the team's notes (docs/notes/field.md, "recent papers") [unconfirmed]; derivation in
    ``docs/derivations/recent_theory.md#topk-truncation``; ``proofs_check`` id
    ``recent_theory.topk_tv_identity``.

    Args:
        p: attention weights (entries :math:`\ge 0`).
        k: a Python int with ``1 <= k <= p.shape[axis]``.
        axis: the axis of the keys.
        where: optional boolean mask (``True`` = visible).
        check_probability: check eagerly that ``p`` holds probability vectors, as :func:`topk_mass`
            does (a NaN or inf in a visible entry gives NaN, like every metric of this module).

    Returns:
        ``p``'s shape without ``axis``.

    Example:
        >>> import numpy as np
        >>> from softmax_stability.dilution import topk_tail_mass
        >>> print(round(float(topk_tail_mass(np.array([0.1, 0.5, 0.15, 0.25]), 2)), 6))
        0.25
    """
    x, axis, where = _prepare(p, axis, where, check=check_probability)
    k = check_int_in_range(k, "k", 1, x.shape[axis])
    return _topk_tail_mass_jit(x, where, axis, k)


def _truncation_parts(p: jax.Array, v: jax.Array, k: int):
    """Head mask S (top-k of p, lower index first at ties), tail mass t, head mass, and the
    unnormalised sums sum_{i in S} p_i v_i and sum_{i not in S} p_i v_i."""
    from softmax_stability.masks import topk_mask

    head = topk_mask(p, k)
    ph = jnp.where(head, p, 0.0)
    pt = jnp.where(head, 0.0, p)
    t = jnp.sum(pt, axis=-1)
    m = jnp.sum(ph, axis=-1)
    return head, t, m, jnp.einsum("...n,...nd->...d", ph, v), jnp.einsum("...n,...nd->...d", pt, v)


def _check_pv(p: Any, v: Any, k: Any) -> tuple[jax.Array, jax.Array, int]:
    x = as_float_array(p, "p")
    vv = as_float_array(v, "v")
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"p must have a non-empty last axis (the keys), got shape {x.shape}")
    if vv.ndim < 2 or vv.shape[-2] != x.shape[-1]:
        raise ValueError(f"v must have shape (..., n, d) with n = p.shape[-1] = {x.shape[-1]}, got {vv.shape}")
    k = check_int_in_range(k, "k", 1, x.shape[-1])
    return x, vv, k


def topk_truncation_error(p: Any, v: Any, k: int) -> jax.Array:
    r"""Exact change of an attention output under top-:math:`k` truncation, in closed form.

    With :math:`o = \sum_i p_i v_i`, :math:`\hat o = \sum_{i\in S_k} p_i v_i / p(S_k)` (the top-:math:`k`
    renormalised output) and the tail mass :math:`t = \sum_{i\notin S_k} p_i`:

    .. math::
        o - \hat o = t\,(\mu_{\mathrm{tail}} - \mu_{\mathrm{head}}),\qquad
        \mu_{\mathrm{tail}} = \frac{\sum_{i\notin S_k} p_i v_i}{t},\quad
        \mu_{\mathrm{head}} = \frac{\sum_{i\in S_k} p_i v_i}{p(S_k)} = \hat o,

    because :math:`o = p(S_k)\,\mu_{\mathrm{head}} + t\,\mu_{\mathrm{tail}}` and :math:`p(S_k) = 1 - t`.
    Evaluated as :math:`\sum_{i\notin S_k} p_i v_i - (t/p(S_k))\sum_{i\in S_k} p_i v_i` (no division
    by a small :math:`t`). :math:`S_k` is the top-:math:`k` set of ``p`` with ties broken towards
    the lower index (:func:`softmax_stability.masks.topk_mask`), the set
    :func:`softmax_stability.maps.topk_softmax` keeps whenever the order of ``p`` is the order of
    the logits.

    Source: Tzachristas et al. 2025 (arXiv:2512.07647), "the output error equals
    :math:`t\|\mu_{\mathrm{tail}} - \mu_{\mathrm{head}}\|`", as recorded in the team's notes
    [unconfirmed]; derived in ``docs/derivations/recent_theory.md#topk-truncation``;
    ``proofs_check`` id ``recent_theory.topk_output_identity``.

    Args:
        p: probabilities, shape ``(..., n)``, summing to 1 along the last axis.
        v: values, shape ``(..., n, d)``.
        k: a Python int with ``1 <= k <= n``.

    Returns:
        Array of shape ``(..., d)``.

    Example:
        >>> import numpy as np
        >>> from softmax_stability.dilution import topk_truncation_error
        >>> p, v = np.array([0.5, 0.3, 0.2]), np.array([[1.0], [0.0], [-1.0]])
        >>> print(np.asarray(topk_truncation_error(p, v, 2)).round(6))  # 0.3 - 0.625 = -0.325
        [-0.325]
    """
    p, v, k = _check_pv(p, v, k)
    _, t, m, sh, st = _truncation_parts(p, v, k)
    ratio = jnp.where(m > 0, t / jnp.where(m > 0, m, 1.0), 0.0)
    return st - ratio[..., None] * sh


def topk_truncation_error_bound(p: Any, v: Any, k: int, *, form: str = "cross") -> jax.Array:
    r"""Upper bound on :math:`\|o - \hat o\|_2` under top-:math:`k` truncation (see :func:`topk_truncation_error`).

    .. math::
        \|o - \hat o\|_2 = t\,\|\mu_{\mathrm{tail}} - \mu_{\mathrm{head}}\|_2
        \;\le\; t \max_{i\notin S_k,\ j\in S_k} \|v_i - v_j\|_2 \quad(\texttt{form="cross"})
        \;\le\; 2t\max_j \|v_j\|_2 \quad(\texttt{form="norm"}),

    with :math:`t` the tail mass (:func:`topk_tail_mass`). The first step holds because
    :math:`\mu_{\mathrm{tail}}` and :math:`\mu_{\mathrm{head}}` are convex combinations of the tail
    and of the head values, and :math:`(a, b) \mapsto \|a - b\|` is convex, so its maximum over the
    product of the two hulls is at a pair of vertices; the second is the triangle inequality. Since
    :math:`2t = \|p - \hat p\|_1`, the ``"norm"`` form is :math:`\|p - \hat p\|_1\max_j\|v_j\|`.
    Both are attained for every :math:`p`: ``"cross"`` when the values are constant on the head and
    constant on the tail, ``"norm"`` when moreover those two values are antipodal, :math:`v_{\mathrm{tail}}
    = -v_{\mathrm{head}}` (claims ``TK3-topk-output-error-cross``, ``TK4-topk-output-error-norm``).

    Source: derived here (``docs/derivations/recent_theory.md#topk-truncation``) from the identity of
    Tzachristas et al. 2025 (arXiv:2512.07647) as recorded in the team's notes [unconfirmed];
    ``proofs_check`` id ``recent_theory.topk_output_bounds``.

    Args:
        p: probabilities, shape ``(..., n)``, summing to 1 along the last axis.
        v: values, shape ``(..., n, d)``.
        k: a Python int with ``1 <= k <= n``.
        form: ``"cross"`` (head-to-tail diameter of the values) or ``"norm"`` (twice the largest
            value norm).

    Returns:
        Array of shape ``p.shape[:-1]`` (broadcast with ``v.shape[:-2]``).

    Example:
        >>> import numpy as np
        >>> from softmax_stability.dilution import topk_truncation_error_bound
        >>> p, v = np.array([0.5, 0.3, 0.2]), np.array([[1.0], [0.0], [-1.0]])
        >>> print(round(float(topk_truncation_error_bound(p, v, 2)), 6))  # 0.2 * max(2, 1)
        0.4
        >>> print(round(float(topk_truncation_error_bound(p, v, 2, form="norm")), 6))
        0.4
    """
    if form not in ("cross", "norm"):
        raise ValueError(f"form must be 'cross' or 'norm', got {form!r}")
    p, v, k = _check_pv(p, v, k)
    head, t, _, _, _ = _truncation_parts(p, v, k)
    if form == "norm":
        return 2.0 * t * jnp.max(jnp.linalg.norm(v, axis=-1), axis=-1)
    dist = jnp.linalg.norm(v[..., :, None, :] - v[..., None, :, :], axis=-1)  # (..., n, n)
    cross = (~head)[..., :, None] & head[..., None, :]  # i in the tail, j in the head
    return t * jnp.max(jnp.where(cross, dist, 0.0), axis=(-2, -1))


# ==============================================================================================
# equiangular tokens (critical attention scaling; Chen, Lin, Polyanskiy, Rigollet 2025)


def equiangular_contraction(n: Any, rho: Any, beta: Any = 1.0) -> jax.Array:
    r"""Factor by which self-attention scales every distance between :math:`n` equiangular tokens.

    Tokens :math:`x_1, \dots, x_n` of unit norm with :math:`x_i^\top x_j = \rho` (:math:`i \ne j`)
    give the logits :math:`\beta x_i^\top x_j`: every row is the needle model with gap
    :math:`\Delta = 1 - \rho` (the token itself is the needle), so
    :math:`A = \operatorname{softmax}(\beta XX^\top) = (p - q) I + q\,\mathbf 1\mathbf 1^\top` with
    :math:`p` = :func:`needle_probability` :math:`(n, 1-\rho, \beta)` and :math:`q = (1-p)/(n-1) =
    p\,e^{-\beta(1-\rho)}`. The outputs :math:`y_i = \sum_j A_{ij} x_j` satisfy
    :math:`y_i - y_j = s\,(x_i - x_j)` with

    .. math::
        s = p - q = p\,\big(1 - e^{-\beta(1-\rho)}\big) = \frac{1 - e^{-\beta(1-\rho)}}{1 + (n-1)e^{-\beta(1-\rho)}},

    evaluated with ``expm1`` and the log-sigmoid (no cancellation). :math:`s` is also the second
    eigenvalue of :math:`A` (the first is 1, on :math:`\mathbf 1`). Under :math:`\beta = \gamma\ln n`,
    :math:`s \to 0` (the tokens collapse: uniform-like attention), :math:`1/2`, or :math:`1` (identity-like
    attention) as :math:`\gamma(1-\rho) <, =, > 1`: the critical :math:`\gamma_c = 1/(1-\rho)`.

    Source: derived here (``docs/derivations/recent_theory.md#critical-scaling``) as the exact,
    equiangular (infinite-dimension) idealisation of the model of Chen, Lin, Polyanskiy & Rigollet
    2025 (arXiv:2510.05554), whose critical :math:`\gamma_c = 1/(1-\rho)` is recorded in the team's
    notes from the abstract [unconfirmed]; the paper's own theorem (random tokens, finite dimension)
    is not checked. ``proofs_check`` id ``recent_theory.equiangular_contraction``.

    Args:
        n: number of tokens, ``>= 2``.
        rho: common inner product, in :math:`[-1/(n-1), 1]` (the Gram matrix is then PSD).
        beta: inverse temperature, finite.

    Returns:
        The broadcast shape of the arguments.

    Example:
        >>> from softmax_stability.dilution import equiangular_contraction
        >>> print(f"{float(equiangular_contraction(2, 0.0, 1.0)):.6f}")  # tanh(1/2)
        0.462117
        >>> import math
        >>> print(f"{float(equiangular_contraction(1000, 0.5, 2 * math.log(1000))):.6f}")  # gamma = gamma_c: 999/1999
        0.499750
    """
    n = _check_array(n, "n", lo=2.0)
    rho = _check_array(rho, "rho")
    beta = _check_array(beta, "beta")
    if is_concrete(n) and is_concrete(rho):
        nn, rr = np.asarray(n), np.asarray(rho)
        if np.any(rr > 1) or np.any(rr < -1.0 / (nn - 1.0)):
            raise ValueError(f"rho must lie in [-1/(n-1), 1] (equiangular unit vectors), got {rho!r}")
    gap = 1.0 - rho
    a, _ = _needle_a(n, gap, beta)
    return jax.nn.sigmoid(a) * -jnp.expm1(-beta * gap)
