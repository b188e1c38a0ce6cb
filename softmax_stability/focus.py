r"""Semantic Focus quantities: dispersion, separation, in-degree and the stability conditions.

Implements the theory side of Ram, Clarkson, Klinger, Ubaru, Gray, *Transformers Learn Faster with
Semantic Focus* (arXiv:2506.14095, NeurIPS 2025; "SF" below), as far as it can be recovered.

**Provenance.** The SF paper text was not available to this project. What is exact here comes
from the authors' public code (``github:rithram/spartan`` at commit ``7127ccf8``, files
``was.py``, ``bounds.py``, ``bounds-lhs.py``; ``docs/notes/semantic_focus.md``):

* the per-query and per-key statistics :math:`\delta, \Delta, \beta` (:func:`dispersion`,
  :func:`separation`, :func:`in_degree`) and the parameter norms :math:`\Gamma, \Upsilon`
  (:func:`qk_norm`, :func:`value_norm`) as ``was.py`` computes them;
* the two comparison conditions, equations (304) and (305) of the arXiv version
  (:func:`lhs_304`, :func:`lhs_305`), exactly as ``bounds.py``/``bounds-lhs.py`` compute them;
* the statistics of the paper's Table 6 (:data:`SF_TABLE6`, hard-coded in ``bounds-lhs.py``).

What is **not** available: the paper's theorem statements, the norm in which its stability
constants are measured, and their common prefactors. :func:`lambda_w_full`,
:func:`lambda_w_topk`, :func:`lambda_x_full`, :func:`lambda_x_topk` are therefore the constants
*up to a common factor that cancels in the comparison* -- the ratios the authors' code compares
(inferred from that code, unconfirmed against the paper text). They are not the paper's theorems.

Separately, this module gives stability constants **derived here** with every factor
(:func:`derived_lambda_w`, :func:`derived_lambda_x`), in the Frobenius norm of the attention
matrix, which the claims registry checks against autodiff measurements (claims ``F10*``). They
have the same ingredients as SF's (dispersion through :math:`e^{\delta}/m`, the cost
:math:`1/\Delta` of the discontinuous selection, the key in-degree :math:`\beta`) but are this
library's derivation, not the paper's.

Whether measured stability moves with :math:`\delta_s, \delta_h, \Delta, \beta` as SF's conditions
predict is computed by :func:`measured_stability`, :func:`predicted_stability_ratios` and
:func:`stability_trends` (figure ``sf_stability_measured``): the rank order and the :math:`\delta_s`
effect are reproduced; the :math:`\delta_h` effect in :math:`X` is not (see that figure's summary).

Conventions. Logits have shape ``(..., n_queries, n_keys)``; the key axis is ``axis`` (default
last). ``where`` is an optional boolean mask broadcastable to the logits (``True`` = attend, as
:func:`softmax_stability.maps.softmax`). The top-k set of a query is taken among its attended keys.
Dispersion and separation are functions of the sorted logit values only, so they do not depend
on how ties are broken. Every ``k`` is a static Python int in ``[1, n_keys]`` (the library's one
rule: ``k = n_keys`` keeps every key, ``k > n_keys`` raises ``ValueError``; under ``jax.jit`` pass
``k`` as a static argument, a traced ``k`` raises ``TypeError``). Logits must be non-empty
(every axis), integers are promoted to the default float dtype.

Example (the conditions for logits of your own model)::

    >>> import jax, jax.numpy as jnp
    >>> from softmax_stability import focus
    >>> logits = 3.0 * jax.random.normal(jax.random.PRNGKey(0), (2, 4, 16, 16))  # (batch, heads, q, k)
    >>> st = focus.attention_statistics(logits, k=5)
    >>> sorted(st)[:4]
    ['beta', 'beta_bar', 'delta_h', 'delta_s']
    >>> st['lhs_304'].shape   # one value per quantile level (75, 90, 95, 100)
    (4,)
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability import topk as _topk
from softmax_stability._checks import (
    as_float_array,
    check_axis,
    check_int_in_range,
    check_nonempty,
    check_where,
)

__all__ = [
    # dispersion bounds (O1)
    "softmax_entry_bounds",
    "pmax_bound",
    "pmin_bound",
    # per-query / per-key statistics
    "dispersion",
    "separation",
    "in_degree",
    "topk_in_degree",
    "band_in_degree",
    "block_in_degree",
    "key_mass_bound",
    # parameter norms
    "qk_matrix",
    "qk_norm",
    "value_norm",
    "augment_tokens",
    "max_token_norm",
    # SF comparison conditions (authors' code)
    "lhs_304",
    "lhs_305",
    "c2_min_w",
    "c2_min_x",
    "c2_min_grid",
    "lambda_w_full",
    "lambda_w_topk",
    "lambda_x_full",
    "lambda_x_topk",
    # top-k local stability (O6)
    "topk_lipschitz_bound",
    # measured stability
    "attention_weights",
    "local_stability",
    "finite_stability_w",
    "selection_flip_direction",
    # constants derived here
    "derived_lambda_w",
    "derived_lambda_x",
    # summaries and data
    "attention_statistics",
    "SF_TABLE6",
    "SF_TABLE6_QUANTILES",
    "SF_TABLE6_SEP_QUANTILES",
    "SF_TABLE6_K",
]


# ---------------------------------------------------------------------------------------------
# eager checks (run on concrete values only; traced values pass through)


def _concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _values(x: Any, name: str) -> jax.Array:
    return as_float_array(x, name)


def _check_ge(x: jax.Array, name: str, lo: float, strict: bool) -> None:
    """Raise when any concrete entry is below ``lo`` (or equal with ``strict``); NaN passes."""
    if not _concrete(x):
        return
    a = np.asarray(x)
    bad = (a <= lo) if strict else (a < lo)
    if np.any(bad):
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be {rel} {lo:g}, got {float(a[bad].ravel()[0])!r}"
                         + (f" (and {int(bad.sum()) - 1} more)" if bad.sum() > 1 else ""))


def _check_count(n: Any, name: str, lo: int = 1) -> Any:
    """An int (Python/NumPy) or an integer-valued array of counts, each ``>= lo`` when concrete."""
    if isinstance(n, bool):
        raise TypeError(f"{name} must be an int, got {n!r}")
    if isinstance(n, (numbers.Integral, np.integer)):
        return check_int_in_range(n, name, lo)
    if isinstance(n, (float, np.floating)):
        raise TypeError(f"{name} must be an int, got the float {n!r}")
    if _concrete(n):
        a = np.asarray(n)
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            raise TypeError(f"{name} must be an integer count, got dtype {a.dtype}")
        if np.any(a < lo) or (np.issubdtype(a.dtype, np.floating) and np.any(a != np.round(a))):
            raise ValueError(f"{name} must hold integers >= {lo}, got {n!r}")
    return n


def _logits(logits: Any, axis: Any, where: Any, name: str = "logits"):
    """Validate and move the key axis last; returns (x, where or None)."""
    x = as_float_array(logits, name)
    if x.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the keys), got a scalar")
    axis = check_axis(axis, x.ndim, "axis")
    check_nonempty(x, name, axis=axis)
    check_nonempty(x, name)  # an empty batch too: the library's rule (maps, jacobian, dilution)
    w = None
    if where is not None:
        w = check_where(where, x, name)
        w = jnp.moveaxis(jnp.broadcast_to(w, x.shape), axis, -1)
    return jnp.moveaxis(x, axis, -1), w


def _check_k(k: Any, n: int, name: str = "k") -> int:
    return check_int_in_range(k, name, 1, n)


# ---------------------------------------------------------------------------------------------
# O1: softmax entries under a dispersion bound


def pmax_bound(delta: Any, n: Any) -> jax.Array:
    r"""Largest softmax weight possible at dispersion :math:`\delta` over :math:`n` keys.

    .. math::
        p_{\max} \le \pi(\delta, n) = \frac{e^{\delta}}{e^{\delta} + n - 1}
        = \frac{1}{1 + (n-1)e^{-\delta}},

    attained when one logit sits :math:`\delta` above the other :math:`n-1`. Also the bound
    :math:`\|J\|_2 \le p_{\max}` on the softmax Jacobian (:math:`0 \preceq J \preceq
    \mathrm{diag}(p)`) uses it, see :func:`derived_lambda_w`.

    Source: derived here (docs/notes/semantic_focus.md §2.4 O1; proofs_check ``focus_conditions.pmax_bound``).

    Args:
      delta: dispersion :math:`\max z - \min z \ge 0` (array; ``+inf`` gives 1).
      n: number of keys, an int or integer array ``>= 1``.

    Returns:
      :math:`\pi(\delta, n)` broadcast over ``delta`` and ``n``.

    Example:
      >>> float(pmax_bound(0.0, 4))   # uniform
      0.25
      >>> round(float(pmax_bound(jnp.log(3.0), 4)), 12)
      0.5
    """
    d = _values(delta, "delta")
    _check_ge(d, "delta", 0.0, strict=False)
    n = _check_count(n, "n")
    return 1.0 / (1.0 + (jnp.asarray(n, d.dtype) - 1.0) * jnp.exp(-d))


def pmin_bound(delta: Any, n: Any) -> jax.Array:
    r"""Smallest softmax weight possible at dispersion :math:`\delta`: :math:`1/(1 + (n-1)e^{\delta})`.

    Source: derived here (docs/notes/semantic_focus.md §2.4 O1).

    Example:
      >>> float(pmin_bound(0.0, 4))
      0.25
    """
    d = _values(delta, "delta")
    _check_ge(d, "delta", 0.0, strict=False)
    n = _check_count(n, "n")
    return 1.0 / (1.0 + (jnp.asarray(n, d.dtype) - 1.0) * jnp.exp(d))


def softmax_entry_bounds(delta: Any, n: Any) -> tuple[jax.Array, jax.Array]:
    r"""The per-entry dispersion bounds :math:`e^{-\delta}/n \le p_j \le e^{\delta}/n`.

    For :math:`p = \mathrm{softmax}(z)`, :math:`z \in \mathbb R^n`, :math:`\delta = \max z - \min z`:
    :math:`p_j = 1/\sum_i e^{z_i - z_j}` and every term lies in :math:`[e^{-\delta}, e^{\delta}]`.
    This is the mechanism behind the :math:`e^{\delta}` in SF's constants (the tighter
    :func:`pmax_bound` and :func:`pmin_bound` follow from the same argument).

    Source: derived here (docs/notes/semantic_focus.md §2.4 O1; proofs_check ``focus_conditions.dispersion_bounds``).

    Args:
      delta: dispersion ``>= 0``.
      n: number of keys, int or integer array ``>= 1``.

    Returns:
      ``(lower, upper)`` = :math:`(e^{-\delta}/n,\ e^{\delta}/n)`.

    Example:
      >>> lo, hi = softmax_entry_bounds(0.0, 4)
      >>> float(lo), float(hi)
      (0.25, 0.25)
    """
    d = _values(delta, "delta")
    _check_ge(d, "delta", 0.0, strict=False)
    n = _check_count(n, "n")
    nn = jnp.asarray(n, d.dtype)
    return jnp.exp(-d) / nn, jnp.exp(d) / nn


# ---------------------------------------------------------------------------------------------
# per-query statistics


def _topk_values(x: jax.Array, w: jax.Array | None, kk: int) -> tuple[jax.Array, jax.Array]:
    """Sorted (descending) top-``kk`` values among attended keys and the attended count."""
    # masked keys become -inf: an attended -inf has the same value, so values stay exact
    count = jnp.full(x.shape[:-1], x.shape[-1]) if w is None else jnp.sum(w, axis=-1)
    return _topk._values(x, kk, w), count


def _diff(hi: jax.Array, lo: jax.Array) -> jax.Array:
    return jnp.where(hi == lo, jnp.zeros_like(hi), hi - lo)  # inf - inf -> 0 when they coincide


def dispersion(logits: Any, k: int | None = None, *, where: Any = None, axis: int = -1) -> jax.Array:
    r"""Per-query dispersion: max minus min logit over the attended (or top-k) keys.

    .. math::
        \delta_s = \max_{j \in A} a_j - \min_{j \in A} a_j, \qquad
        \delta_h = a_{(1)} - a_{(k)} \quad (\text{top-}k\text{ set of } A),

    where :math:`A` is the attended set of the query and :math:`a_{(r)}` its :math:`r`-th largest
    attended logit. ``k=None`` gives the full-softmax dispersion :math:`\delta_s`; an int ``k``
    the heavy-hitter dispersion :math:`\delta_h` over the top-k keys (SF's ``width-delta`` of the
    TOPK model). A query with fewer than ``k`` attended keys uses all of them; a fully masked
    query gives 0.

    Source: SF authors' ``was.py`` (``width-delta``), docs/notes/semantic_focus.md §1.2.

    Args:
      logits: array ``(..., n_keys)`` (any leading batch/head/query axes).
      k: ``None`` (all attended keys) or an int in ``[1, n_keys]``.
      where: optional boolean mask broadcastable to ``logits`` (``True`` = attend).
      axis: the key axis.

    Returns:
      Array of ``logits.shape`` without ``axis``; ``>= 0``. ``NaN`` logits give ``NaN``;
      an attended ``-inf`` next to a finite logit gives ``+inf``.

    Example:
      >>> z = jnp.array([3.0, 0.0, 2.5, 1.0])
      >>> float(dispersion(z)), float(dispersion(z, 2))
      (3.0, 0.5)
    """
    x, w = _logits(logits, axis, where)
    n = x.shape[-1]
    nan = jnp.any(jnp.isnan(x) if w is None else (jnp.isnan(x) & w), axis=-1)
    if k is None:
        hi = jnp.max(x if w is None else jnp.where(w, x, -jnp.inf), axis=-1)
        lo = jnp.min(x if w is None else jnp.where(w, x, jnp.inf), axis=-1)
        d = _diff(hi, lo)
        if w is not None:
            d = jnp.where(jnp.any(w, axis=-1), d, jnp.zeros_like(d))
    else:
        k = _check_k(k, n)
        vals, m = _topk_values(x, w, k)
        last = jnp.clip(jnp.minimum(k, m) - 1, 0, k - 1)
        lo = jnp.take_along_axis(vals, last[..., None], axis=-1)[..., 0]
        d = _diff(vals[..., 0], lo)
        d = jnp.where(m > 0, d, jnp.zeros_like(d))
    return jnp.where(nan, jnp.full_like(d, jnp.nan), d)


def separation(logits: Any, k: int, *, where: Any = None, axis: int = -1) -> jax.Array:
    r"""Per-query heavy-hitter separation :math:`\Delta = a_{(k)} - a_{(k+1)}`.

    The gap between the :math:`k`-th and :math:`(k+1)`-th largest attended logits, i.e.
    :math:`\min_{j \in T_k} a_j - \max_{j \in A\setminus T_k} a_j` (SF's ``sep-Delta``). Ties give
    exactly 0 (the top-k selection is then discontinuous). When no attended key is left out
    (``k >= `` number of attended keys, e.g. ``k = n_keys``, or a fully masked query) the selection
    cannot change and the separation is ``+inf``.

    Source: SF authors' ``was.py`` (``sep-Delta``), docs/notes/semantic_focus.md §1.2.

    Args:
      logits: array ``(..., n_keys)``.
      k: int in ``[1, n_keys]``.
      where: optional boolean mask (``True`` = attend).
      axis: the key axis.

    Returns:
      Array of ``logits.shape`` without ``axis``, ``>= 0`` or ``+inf``; ``NaN`` logits give ``NaN``.

    Example:
      >>> z = jnp.array([3.0, 0.0, 2.5, 1.0])
      >>> float(separation(z, 2)), float(separation(z, 4))
      (1.5, inf)
    """
    x, w = _logits(logits, axis, where)
    n = x.shape[-1]
    k = _check_k(k, n)
    nan = jnp.any(jnp.isnan(x) if w is None else (jnp.isnan(x) & w), axis=-1)
    if k == n:
        s = jnp.full(x.shape[:-1], jnp.inf, x.dtype)
    else:
        vals, m = _topk_values(x, w, k + 1)
        s = _diff(vals[..., k - 1], vals[..., k])
        s = jnp.where(m > k, s, jnp.full_like(s, jnp.inf))
    return jnp.where(nan, jnp.full_like(s, jnp.nan), s)


def in_degree(mask: Any) -> jax.Array:
    r"""Key in-degrees :math:`\beta_j = \sum_i M_{ij}`: how many queries attend to key :math:`j`.

    For a top-k mask this is SF's ``beta`` (the "sink" statistic); it works for any mask
    (band, block, causal, top-k, with global tokens).

    Source: SF authors' ``was.py`` (``beta``: column sums of the 0/1 mask), docs/notes/semantic_focus.md §1.2.

    Args:
      mask: boolean (or 0/1) array ``(..., n_queries, n_keys)``, ``True`` = attend.

    Returns:
      Integer array ``(..., n_keys)``.

    Example:
      >>> from softmax_stability.masks import band_mask
      >>> in_degree(band_mask(8, 3)).tolist()   # windows shifted inwards at the edges
      [2, 3, 4, 3, 3, 4, 3, 2]
    """
    m = mask if isinstance(mask, jax.core.Tracer) else jnp.asarray(mask)
    if m.ndim < 2:
        raise ValueError(f"mask must have shape (..., n_queries, n_keys), got shape {m.shape}")
    if m.dtype != jnp.bool_:
        if not (jnp.issubdtype(m.dtype, jnp.integer) or jnp.issubdtype(m.dtype, jnp.floating)):
            raise TypeError(f"mask must be boolean or 0/1, got dtype {m.dtype}")
        if _concrete(m) and not np.all(np.isin(np.asarray(m), (0, 1))):
            raise ValueError("mask must hold only 0 and 1 (or be boolean)")
        m = m != 0
    return jnp.sum(m, axis=-2)


def _topk_selection(x: jax.Array, w: jax.Array | None, k: int) -> jax.Array:
    return _topk.topk_mask(x, k, ties="index", where=w)


def topk_in_degree(logits: Any, k: int, *, where: Any = None) -> jax.Array:
    r"""In-degrees of the top-k selection: :math:`\beta_j = \#\{i : j \in T_k(a_{i\cdot})\}`.

    The selection is :func:`softmax_stability.topk.topk_mask` with ``ties="index"`` (ties towards
    the lower index, the rule :func:`softmax_stability.maps.topk_softmax` uses) over the attended
    keys (masked keys are never selected).

    Args:
      logits: array ``(..., n_queries, n_keys)``.
      k: int in ``[1, n_keys]``.
      where: optional boolean mask broadcastable to ``logits``.

    Returns:
      Integer array ``(..., n_keys)``; each query contributes ``min(k, #attended)``.

    Example:
      >>> a = jnp.array([[3.0, 1.0, 0.0], [2.0, 0.0, 1.0], [0.0, 5.0, 1.0]])
      >>> topk_in_degree(a, 1).tolist()
      [2, 1, 0]
    """
    x, w = _logits(logits, -1, where)
    if x.ndim < 2:
        raise ValueError(f"logits must have shape (..., n_queries, n_keys), got shape {x.shape}")
    k = _check_k(k, x.shape[-1])
    return in_degree(_topk_selection(x, w, k))


def band_in_degree(n: int, k: int, *, global_tokens: int = 0) -> np.ndarray:
    r"""In-degrees implied by the banded-window edge rule of the SF code (closed form).

    Query :math:`i` attends to :math:`s_i, \dots, s_i + k - 1` with :math:`l = \lfloor (k-1)/2
    \rfloor`, :math:`s_i = \mathrm{clip}(i - l, 0, n - k)`. The window start :math:`s` is used by
    :math:`c_0 = l + 1` queries when :math:`s = 0`, by :math:`c_{n-k} = k - l` queries when
    :math:`s = n - k` and by one query otherwise (:math:`c_0 = n` when :math:`n = k`); key
    :math:`j` is covered by the starts :math:`\max(0, j-k+1) \le s \le \min(j, n-k)`, so

    .. math::
        \beta_j = \sum_{s=\max(0, j-k+1)}^{\min(j, n-k)} c_s \; (+\, g \text{ global tokens}).

    Interior keys have :math:`\beta_j = k`; edges deviate (n=40, k=5: 3,4,5,6,7,5,...,5,7,6,5,4,3).
    Global tokens (appended last) are attended by all :math:`n + g` queries.

    Source: SF authors' ``attn_masks.py`` rule as recorded in docs/notes/semantic_focus.md §1.3; the counting
    is derived here, independently of :func:`softmax_stability.masks.band_mask`.

    Example:
      >>> band_in_degree(40, 5)[:6].tolist(), band_in_degree(40, 5)[-5:].tolist()
      ([3, 4, 5, 6, 7, 5], [7, 6, 5, 4, 3])
    """
    n = check_int_in_range(n, "n", 1)
    k = check_int_in_range(k, "k", 1, n)
    g = check_int_in_range(global_tokens, "global_tokens", 0)
    last, left = n - k, (k - 1) // 2
    c = np.ones(last + 1, dtype=np.int64)
    if last == 0:
        c[0] = n
    else:
        c[0], c[last] = left + 1, k - left
    cum = np.concatenate([[0], np.cumsum(c)])
    j = np.arange(n)
    lo, hi = np.maximum(0, j - k + 1), np.minimum(j, last)
    beta = cum[hi + 1] - cum[lo] + g
    return np.concatenate([beta, np.full(g, n + g, dtype=np.int64)])


def block_in_degree(n: int, k: int, *, global_tokens: int = 0) -> np.ndarray:
    r"""In-degrees of the block-local mask (blocks of ``k`` from token 0, last block shorter).

    Key :math:`j` is attended by the queries of its block: :math:`\beta_j = k` when
    :math:`k \mid n` (every key; hence :math:`\bar\beta = \beta/k = 1`), the last block's size
    :math:`n \bmod k` otherwise; plus :math:`g` for global tokens, which themselves have
    in-degree :math:`n + g`.

    Source: SF BLOC(k) (docs/notes/semantic_focus.md §1.3); derived here.

    Example:
      >>> block_in_degree(7, 3).tolist()
      [3, 3, 3, 3, 3, 3, 1]
    """
    n = check_int_in_range(n, "n", 1)
    k = check_int_in_range(k, "k", 1, n)
    g = check_int_in_range(global_tokens, "global_tokens", 0)
    blk = np.arange(n) // k
    size = np.minimum(k, n - blk * k)
    return np.concatenate([size + g, np.full(g, n + g, dtype=np.int64)]).astype(np.int64)


def key_mass_bound(delta: Any, beta: Any, k: Any) -> jax.Array:
    r"""Bound on the attention mass a key receives: :math:`\sum_i P_{ij} \le \beta_j e^{\delta}/k`.

    Each of the :math:`\beta_j` queries attending to key :math:`j` over :math:`k` keys with
    dispersion :math:`\le \delta` gives it at most :math:`e^{\delta}/k` (:func:`softmax_entry_bounds`).
    Full softmax with :math:`n` queries and :math:`n` keys: :math:`\beta_j = k = n`, bound
    :math:`e^{\delta_s}`. Top-k: :math:`\beta_j e^{\delta_h}/k` (SF's "sink" cost :math:`\bar\beta`).

    Source: derived here (docs/notes/semantic_focus.md §2.4 O2).

    Args:
      delta: largest dispersion among the queries (``>= 0``).
      beta: in-degree(s) ``>= 0``.
      k: keys per query (``>= 1``).

    Example:
      >>> float(key_mass_bound(0.0, 4, 4))
      1.0
    """
    d = _values(delta, "delta")
    _check_ge(d, "delta", 0.0, strict=False)
    b = _values(beta, "beta")
    _check_ge(b, "beta", 0.0, strict=False)
    k = _check_count(k, "k")
    return b * jnp.exp(d) / jnp.asarray(k, d.dtype)


# ---------------------------------------------------------------------------------------------
# parameter norms (SF model, was.py)


def _matrix(w: Any, name: str) -> jax.Array:
    a = as_float_array(w, name)
    if a.ndim < 2:
        raise ValueError(f"{name} must be a matrix (..., d_out, d_in), got shape {a.shape}")
    return a


def _augment(w: jax.Array, b: Any, name: str) -> jax.Array:
    if b is None:
        b = jnp.zeros(w.shape[:-1], w.dtype)
    b = as_float_array(b, name)
    if b.shape != w.shape[:-1]:
        raise ValueError(f"{name} must have shape {w.shape[:-1]} (one entry per output), got {b.shape}")
    return jnp.concatenate([w, b[..., None].astype(w.dtype)], axis=-1)


def qk_matrix(w_q: Any, w_k: Any, b_q: Any = None, b_k: Any = None, *, tau: float = 1.0,
              d: int | None = None) -> jax.Array:
    r"""The bilinear form of the attention logits, :math:`a_{ij} = \tilde x_i^\top W \tilde x_j`.

    .. math::
        W = \tau\,\frac{\tilde W_Q^\top \tilde W_K}{\sqrt d}, \qquad
        \tilde W = [W \mid b], \quad \tilde x = [x; 1],

    for queries :math:`q = W_Q x + b_Q` and keys :math:`k = W_K x + b_K` (weights in the
    ``(d_out, d_in)`` layout of ``torch.nn.Linear``). Without biases the augmentation is dropped
    and :math:`W` is :math:`d_{in} \times d_{in}`; when either bias is given both are augmented
    (a missing one counts as 0) and :math:`W` is :math:`(d_{in}+1) \times (d_{in}+1)`.

    Source: SF model (docs/notes/semantic_focus.md §1.1) and ``was.py`` (``QK-norm-Gamma``).

    Args:
      w_q, w_k: arrays ``(..., d_qk, d_in)`` of the same shape (batched over heads/layers).
      b_q, b_k: optional biases ``(..., d_qk)``.
      tau: inverse temperature (a real number; the SF default is 1).
      d: the scaling dimension; default ``d_qk`` (SF uses ``d_qkv = d_model``).

    Returns:
      ``(..., d_in[+1], d_in[+1])``.

    Example:
      >>> W = qk_matrix(jnp.eye(2), 2 * jnp.eye(2), d=4)
      >>> W.tolist()
      [[1.0, 0.0], [0.0, 1.0]]
    """
    wq, wk = _matrix(w_q, "w_q"), _matrix(w_k, "w_k")
    if wq.shape != wk.shape:
        raise ValueError(f"w_q and w_k must have the same shape, got {wq.shape} and {wk.shape}")
    if isinstance(tau, jax.core.Tracer):
        pass
    elif not (isinstance(tau, (numbers.Real, np.floating, np.ndarray, jax.Array))
              and np.all(np.isfinite(np.asarray(tau)))):
        raise ValueError(f"tau must be a finite real number, got {tau!r}")
    d = wq.shape[-2] if d is None else check_int_in_range(d, "d", 1)
    if b_q is not None or b_k is not None:
        wq, wk = _augment(wq, b_q, "b_q"), _augment(wk, b_k, "b_k")
    return tau * jnp.swapaxes(wq, -1, -2) @ wk / math.sqrt(d)


def qk_norm(w_q: Any, w_k: Any, b_q: Any = None, b_k: Any = None, *, tau: float = 1.0,
            d: int | None = None) -> jax.Array:
    r""":math:`\Gamma = \|W\|_2` for :math:`W` of :func:`qk_matrix` (bias-augmented as in SF).

    With :math:`\|\tilde x\| \le \Xi` for all tokens, every logit obeys
    :math:`|a_{ij}| \le \Gamma\Xi^2` and every dispersion :math:`\delta \le 2\Gamma\Xi^2`
    (claims ``F1-logit-bound``, ``F1b-dispersion-bound``).

    Source: SF authors' ``was.py`` (``QK-norm-Gamma``).

    Example:
      >>> round(float(qk_norm(jnp.eye(2), 2 * jnp.eye(2), d=4)), 12)
      1.0
    """
    return jnp.linalg.norm(qk_matrix(w_q, w_k, b_q, b_k, tau=tau, d=d), ord=2, axis=(-2, -1))


def value_norm(w_v: Any, b_v: Any = None) -> jax.Array:
    r""":math:`\Upsilon = \|[W_V \mid b_V]\|_2` (SF's ``V-norm-Upsilon``; bias column appended if given).

    Example:
      >>> float(value_norm(jnp.array([[3.0]]), jnp.array([4.0])))
      5.0
    """
    w = _matrix(w_v, "w_v")
    if b_v is not None:
        w = _augment(w, b_v, "b_v")
    return jnp.linalg.norm(w, ord=2, axis=(-2, -1))


def augment_tokens(x: Any) -> jax.Array:
    r"""Append a constant 1 to each token: :math:`\tilde x = [x; 1]` (last axis)."""
    a = as_float_array(x, "x")
    if a.ndim == 0:
        raise ValueError("x must have at least one dimension (the features), got a scalar")
    return jnp.concatenate([a, jnp.ones(a.shape[:-1] + (1,), a.dtype)], axis=-1)


def max_token_norm(x: Any, *, bias_augmented: bool = False) -> jax.Array:
    r""":math:`\Xi = \max_i \|x_i\|_2` over the tokens (rows; leading axes pooled).

    With ``bias_augmented=True`` the norm of :math:`\tilde x = [x; 1]`, i.e.
    :math:`\sqrt{\|x\|^2 + 1}`, to pair with a bias-augmented :func:`qk_norm`. (The SF code does
    not compute :math:`\Xi`; it assumes the worst case :math:`2\Gamma\Xi^2 = \delta_s`.)

    Args:
      x: tokens ``(..., d)``.
      bias_augmented: measure :math:`\tilde x` instead of :math:`x`.

    Example:
      >>> float(max_token_norm(jnp.array([[3.0, 4.0], [1.0, 0.0]])))
      5.0
    """
    a = augment_tokens(x) if bias_augmented else as_float_array(x, "x")
    if a.ndim == 0:
        raise ValueError("x must have at least one dimension (the features), got a scalar")
    check_nonempty(a, "x")
    return jnp.max(jnp.linalg.norm(a, axis=-1))


# ---------------------------------------------------------------------------------------------
# SF comparison conditions (304) and (305), exactly as in bounds.py / bounds-lhs.py


def _check_lhs_args(delta_s, delta_h, sep, beta_bar=None):
    ds = _values(delta_s, "delta_s")
    dh = _values(delta_h, "delta_h")
    sp = _values(sep, "sep")
    _check_ge(ds, "delta_s", 0.0, strict=True)
    _check_ge(dh, "delta_h", 0.0, strict=False)
    _check_ge(sp, "sep", 0.0, strict=False)
    if beta_bar is None:
        return ds, dh, sp
    bb = _values(beta_bar, "beta_bar")
    _check_ge(bb, "beta_bar", 0.0, strict=False)
    return ds, dh, sp, bb


def _log1p_inv(sep: jax.Array) -> jax.Array:
    """ln(1 + 1/sep); +inf at sep = 0, 0 at sep = +inf."""
    return jnp.log1p(1.0 / sep)


def lhs_304(delta_s: Any, delta_h: Any, sep: Any) -> jax.Array:
    r"""Left-hand side of SF condition (304), :math:`\lambda_W(\xi_h) < \lambda_W(\xi_s)` iff it is < 1.

    .. math::
        \mathrm{LHS}_{304} = \frac{\delta_h}{\delta_s} + \frac{1}{\delta_s}
        \ln\!\Big(2\big(1 + \tfrac{1}{\Delta}\big)\Big) < 1
        \iff 2\,e^{\delta_h}\big(1 + \tfrac1\Delta\big) < e^{\delta_s}.

    With :math:`c_1 = \delta_h/\delta_s`, :math:`c_2 = \Delta/\delta_s` this is the authors'
    ``wratio(ds, c1, -1, c2)`` (``mult=2``). It can never hold for :math:`\delta_s \le \ln 2`
    (claim ``F9-lhs304-infeasible-ln2``). A separation of exactly 0 (a tie at the k-th key) is
    legal and gives ``+inf``.

    Source: SF eq. (304) as computed by the authors' ``bounds.py``/``bounds-lhs.py``
    (docs/notes/semantic_focus.md §2.2); equivalence proofs_check ``focus_conditions.lhs304_equivalence``.

    Args:
      delta_s: full-softmax dispersion, ``> 0``.
      delta_h: heavy-hitter (top-k) dispersion, ``>= 0``.
      sep: separation :math:`\Delta`, ``>= 0`` (0 gives ``+inf``; ``+inf`` allowed).

    Returns:
      The LHS, broadcast over the arguments. ``NaN`` inputs give ``NaN``.

    Raises:
      ValueError: ``delta_s <= 0``, ``delta_h < 0`` or ``sep < 0`` (checked when concrete).

    Example (Table 6, ListOps, 75th percentile):
      >>> round(float(lhs_304(8.61, 3.51, 0.016)), 4)
      0.9703
    """
    ds, dh, sp = _check_lhs_args(delta_s, delta_h, sep)
    return dh / ds + (math.log(2.0) + _log1p_inv(sp)) / ds


def lhs_305(delta_s: Any, delta_h: Any, sep: Any, beta_bar: Any) -> jax.Array:
    r"""Left-hand side of SF condition (305), :math:`\lambda_X(\xi_h) < \lambda_X(\xi_s)` iff it is < 1.

    .. math::
        \mathrm{LHS}_{305} = \frac{\delta_h}{\delta_s}
        + \frac{1}{\delta_s}\ln\!\Big(\delta_s(1+\bar\beta)\big(1+\tfrac1\Delta\big) + \bar\beta\Big)
        - \frac{1}{\delta_s}\ln(1+\delta_s) < 1
        \iff e^{\delta_h}\Big[\delta_s(1+\bar\beta)\big(1+\tfrac1\Delta\big)+\bar\beta\Big]
        < e^{\delta_s}(1+\delta_s),

    under the authors' worst-case substitution :math:`2\Gamma\Xi^2 = \delta_s`; :math:`\bar\beta =
    \beta/k` is the normalised key in-degree (``beta/NNZ`` in ``bounds-lhs.py``). The authors'
    ``xratio``. A separation of exactly 0 gives ``+inf``.

    Source: SF eq. (305) as computed by the authors' ``bounds-lhs.py`` (docs/notes/semantic_focus.md §2.2);
    proofs_check ``focus_conditions.lhs305_equivalence``.

    Args:
      delta_s: ``> 0``.  delta_h: ``>= 0``.  sep: ``>= 0``.
      beta_bar: normalised in-degree :math:`\bar\beta \ge 0`.

    Example (Table 6, ListOps, 75th percentile, :math:`\bar\beta = 1/5`):
      >>> round(float(lhs_305(8.61, 3.51, 0.016, 1 / 5)), 4)
      0.8982
    """
    ds, dh, sp, bb = _check_lhs_args(delta_s, delta_h, sep, beta_bar)
    # ln(ds (1+bb)(1 + 1/sep) + bb), split so that sep -> 0 gives +inf without inf * 0
    inner = jnp.log(ds * (1.0 + bb) * (1.0 + 1.0 / sp) + bb)
    return dh / ds + inner / ds - jnp.log1p(ds) / ds


def _check_c_args(c1, delta_s, beta=None):
    c = _values(c1, "c1")
    _check_ge(c, "c1", 0.0, strict=False)
    ds = _values(delta_s, "delta_s")
    _check_ge(ds, "delta_s", 0.0, strict=True)
    if beta is None:
        return c, ds
    b = _values(beta, "beta")
    _check_ge(b, "beta", 0.0, strict=False)
    return c, ds, b


def c2_min_w(c1: Any, delta_s: Any) -> jax.Array:
    r"""Closed-form boundary of the region where (304) holds: (304) iff :math:`c_2 > c_2^{\min,W}(c_1)`.

    .. math::
        c_2^{\min,W}(c_1) = \frac{1}{\delta_s\big(\tfrac12 e^{\delta_s(1-c_1)} - 1\big)}
        \quad\text{if } \delta_s(1 - c_1) > \ln 2, \qquad +\infty \text{ otherwise,}

    with :math:`c_1 = \delta_h/\delta_s`, :math:`c_2 = \Delta/\delta_s`. The region is empty
    (marker ``+inf``, the infimum of the empty set) for every :math:`c_1` when
    :math:`\delta_s \le \ln 2`, and for :math:`c_1 \ge 1 - \ln 2/\delta_s` otherwise. Computed as
    :math:`1/(\delta_s\,\mathrm{expm1}(\delta_s(1-c_1) - \ln 2))` for accuracy near the edge.

    Source: derived here by solving :math:`\mathrm{LHS}_{304} = 1` for :math:`\Delta`
    (docs/notes/semantic_focus.md §2.2 [OURS]); proofs_check ``focus_conditions.c2min_w``; matches the
    authors' grid search (``bounds.py``, Fig. 21) to the grid precision (claim ``F7``).

    Args:
      c1: :math:`\delta_h/\delta_s \ge 0`.
      delta_s: ``> 0``.

    Returns:
      :math:`c_2^{\min,W}`, broadcast over ``c1`` and ``delta_s``: ``+inf`` where the region is
      empty, ``NaN`` where an input is ``NaN``.

    Example:
      >>> float(c2_min_w(0.5, 0.5))      # delta_s <= ln 2: empty
      inf
      >>> round(float(c2_min_w(0.5, 8.0)), 6)   # 1 / (8 (e^4 / 2 - 1))
      0.004753
    """
    c, ds = _check_c_args(c1, delta_s)
    x = ds * (1.0 - c) - math.log(2.0)
    den = ds * jnp.expm1(x)
    out = jnp.where(x > 0, 1.0 / jnp.where(x > 0, den, 1.0), jnp.inf)
    return jnp.where(jnp.isnan(x), jnp.nan, out)  # NaN in, NaN out (not the empty marker)


def c2_min_x(c1: Any, delta_s: Any, beta: Any) -> jax.Array:
    r"""Closed-form boundary of the region where (305) holds: (305) iff :math:`c_2 > c_2^{\min,X}(c_1)`.

    .. math::
        c_2^{\min,X}(c_1) = \frac{1}{\delta_s\Big(\frac{(1+\delta_s)e^{\delta_s(1-c_1)} - \beta}
        {\delta_s(1+\beta)} - 1\Big)}
        = \frac{1+\beta}{(1+\delta_s)e^{\delta_s(1-c_1)} - \beta - \delta_s(1+\beta)},

    when the denominator is positive, ``+inf`` (empty region) otherwise.

    ``beta`` is the value in the :math:`\bar\beta` slot of (305): the normalised in-degree
    :math:`\beta/k` for statistics of a trained model (as :func:`lhs_305`); SF Fig. 22 (the
    authors' ``bounds.py --xcomp``) puts :math:`\beta \in \{1, 2, 4, 8, 16, 32\}` in this slot directly.

    Source: derived here by solving :math:`\mathrm{LHS}_{305} = 1` for :math:`\Delta`
    (docs/notes/semantic_focus.md §2.2 [OURS]); proofs_check ``focus_conditions.c2min_x``; matches the grid
    search to grid precision (claim ``F8``).

    Args:
      c1: ``>= 0``.  delta_s: ``> 0``.  beta: ``>= 0``.

    Returns:
      :math:`c_2^{\min,X}`, broadcast: ``+inf`` where the region is empty, ``NaN`` where an
      input is ``NaN``.

    Example:
      >>> round(float(c2_min_x(0.25, 4.0, 1.0)), 6)   # 2 / (5 e^3 - 1 - 8)
      0.021875
    """
    c, ds, b = _check_c_args(c1, delta_s, beta)
    den = (1.0 + ds) * jnp.exp(ds * (1.0 - c)) - b - ds * (1.0 + b)
    out = jnp.where(den > 0, (1.0 + b) / jnp.where(den > 0, den, 1.0), jnp.inf)
    return jnp.where(jnp.isnan(den), jnp.nan, out)


def c2_min_grid(condition: str, c1: Any, delta_s: Any, beta: Any = None, *,
                precision: float = 0.01) -> jax.Array:
    r"""Grid search for the boundary (as in SF Figs. 21-22): smallest grid :math:`c_2` where the condition holds.

    A grid search in the manner of the authors' ``bounds.py`` (Figs. 21-22 use precision 0.01;
    the reference notes record the precision, not the exact grid layout, so the layout here is
    this library's reconstruction, unconfirmed): :math:`c_2` runs over
    ``np.arange(precision, 1, precision)``; the result is the smallest grid value with LHS < 1
    (:func:`lhs_304` for ``"w"``, :func:`lhs_305` with :math:`\bar\beta` = ``beta`` for ``"x"``),
    or ``+inf`` when no grid value qualifies (such a :math:`c_1` draws no marker). Whenever
    :math:`\text{precision} \le c_2^{\min} < 1 - \text{precision}`, the result lies in
    :math:`(c_2^{\min}, c_2^{\min} + \text{precision}]`.

    Args:
      condition: ``"w"`` (304) or ``"x"`` (305).
      c1: array of :math:`c_1` values.  delta_s: ``> 0``.  beta: required for ``"x"``.
      precision: grid step in ``(0, 0.5]``.

    Returns:
      Array of ``c1``'s (broadcast) shape.

    Example:
      >>> float(c2_min_grid("w", 0.5, 8.0))
      0.01
    """
    if condition not in ("w", "x"):
        raise ValueError(f"condition must be 'w' or 'x', got {condition!r}")
    if condition == "x" and beta is None:
        raise ValueError("beta is required for condition 'x'")
    try:
        p = float(precision)
    except (TypeError, ValueError) as err:
        raise TypeError(f"precision must be a real number, got {precision!r}") from err
    if not (0.0 < p <= 0.5):
        raise ValueError(f"precision must be in (0, 0.5], got {precision!r}")
    if condition == "w":
        c, ds = _check_c_args(c1, delta_s)
        b = None
    else:
        c, ds, b = _check_c_args(c1, delta_s, beta)
    grid = jnp.asarray(np.arange(p, 1, step=p), dtype=c.dtype)  # grid of c2 values in (0, 1)
    c = c[..., None]
    ds = jnp.asarray(ds)[..., None]
    if condition == "w":
        lhs = _lhs_304_raw(ds, c * ds, ds * grid)
    else:
        lhs = _lhs_305_raw(ds, c * ds, ds * grid, jnp.asarray(b)[..., None])
    ok = lhs < 1
    return jnp.min(jnp.where(ok, grid, jnp.inf), axis=-1)


def _lhs_304_raw(ds, dh, sp):
    return dh / ds + (math.log(2.0) + jnp.log1p(1.0 / sp)) / ds


def _lhs_305_raw(ds, dh, sp, bb):
    return dh / ds + jnp.log(ds * (1.0 + bb) * (1.0 + 1.0 / sp) + bb) / ds - jnp.log1p(ds) / ds


# ---------------------------------------------------------------------------------------------
# SF relative stability constants (common prefactor unknown)


def lambda_w_full(delta_s: Any) -> jax.Array:
    r"""Relative :math:`\lambda_W(\xi_s) \propto e^{\delta_s}` (full softmax, stability in :math:`W`).

    Defined only up to a prefactor shared with :func:`lambda_w_topk` that cancels in SF's
    comparison (304); the prefactor and the norm of the paper's theorem are **not available**
    here. :math:`\mathrm{LHS}_{304} = 1 + \frac{1}{\delta_s}\ln\frac{\lambda_W(\xi_h)}{\lambda_W(\xi_s)}`.

    Source: inferred from the authors' ``bounds.py`` (docs/notes/semantic_focus.md §2.2 [INF], unconfirmed
    against the paper text).

    Example:
      >>> round(float(lambda_w_full(jnp.log(2.0))), 12)
      2.0
    """
    ds = _values(delta_s, "delta_s")
    _check_ge(ds, "delta_s", 0.0, strict=False)
    return jnp.exp(ds)


def lambda_w_topk(delta_h: Any, sep: Any) -> jax.Array:
    r"""Relative :math:`\lambda_W(\xi_h) \propto 2\,e^{\delta_h}(1 + 1/\Delta)` (top-k softmax).

    Same unknown common prefactor as :func:`lambda_w_full`. :math:`\Delta = 0` gives ``+inf``.

    Source: inferred from the authors' ``bounds.py`` (``mult=2``; docs/notes/semantic_focus.md §2.2 [INF],
    unconfirmed).

    Example:
      >>> float(lambda_w_topk(0.0, 1.0))
      4.0
    """
    dh = _values(delta_h, "delta_h")
    sp = _values(sep, "sep")
    _check_ge(dh, "delta_h", 0.0, strict=False)
    _check_ge(sp, "sep", 0.0, strict=False)
    return 2.0 * jnp.exp(dh) * (1.0 + 1.0 / sp)


def lambda_x_full(delta_s: Any, delta_max: Any = None) -> jax.Array:
    r"""Relative :math:`\lambda_X(\xi_s) \propto e^{\delta_s}(1 + 2\Gamma\Xi^2)` (stability in the tokens).

    ``delta_max`` is :math:`2\Gamma\Xi^2`, the worst-case dispersion (claim ``F1b``); by default
    the authors' substitution :math:`2\Gamma\Xi^2 = \delta_s`. Unknown common prefactor with
    :func:`lambda_x_topk`; :math:`\mathrm{LHS}_{305} = 1 + \frac1{\delta_s}\ln\frac{\lambda_X(\xi_h)}
    {\lambda_X(\xi_s)}` when ``delta_max = delta_s``.

    Source: inferred from the authors' ``bounds.py``/``bounds-lhs.py`` (docs/notes/semantic_focus.md §2.2
    [INF], unconfirmed).

    Example:
      >>> round(float(lambda_x_full(1.0)), 6)   # e * 2
      5.436564
    """
    ds = _values(delta_s, "delta_s")
    _check_ge(ds, "delta_s", 0.0, strict=False)
    dm = ds if delta_max is None else _values(delta_max, "delta_max")
    _check_ge(dm, "delta_max", 0.0, strict=False)
    return jnp.exp(ds) * (1.0 + dm)


def lambda_x_topk(delta_h: Any, sep: Any, beta_bar: Any, delta_max: Any) -> jax.Array:
    r"""Relative :math:`\lambda_X(\xi_h) \propto e^{\delta_h}[2\Gamma\Xi^2(1+\bar\beta)(1+1/\Delta) + \bar\beta]`.

    ``delta_max`` :math:`= 2\Gamma\Xi^2` (the authors set it to :math:`\delta_s`). Unknown common
    prefactor with :func:`lambda_x_full`.

    Source: inferred from the authors' ``bounds.py``/``bounds-lhs.py`` (docs/notes/semantic_focus.md §2.2
    [INF], unconfirmed).

    Example:
      >>> float(lambda_x_topk(0.0, 1.0, 1.0, 1.0))
      5.0
    """
    dh = _values(delta_h, "delta_h")
    sp = _values(sep, "sep")
    bb = _values(beta_bar, "beta_bar")
    dm = _values(delta_max, "delta_max")
    _check_ge(dh, "delta_h", 0.0, strict=False)
    _check_ge(sp, "sep", 0.0, strict=False)
    _check_ge(bb, "beta_bar", 0.0, strict=False)
    _check_ge(dm, "delta_max", 0.0, strict=False)
    return jnp.exp(dh) * (dm * (1.0 + bb) * (1.0 + 1.0 / sp) + bb)


# ---------------------------------------------------------------------------------------------
# O6: top-k local stability


def topk_lipschitz_bound(sep: Any) -> jax.Array:
    r"""Constant of :math:`\|\xi_h(z+e) - \xi_h(z)\|_1 \le \max(1, 4/\Delta)\,\|e\|_\infty`.

    Proof sketch (derived here): for :math:`\|e\|_\infty < \Delta/2` the top-k set is the same
    along the whole segment :math:`z + te`, where :math:`\xi_h` is a softmax on the selected keys
    with :math:`\|J\|_{\infty\to1} \le 1`; otherwise :math:`\|\xi_h(z+e) - \xi_h(z)\|_1 \le 2 \le
    (4/\Delta)\|e\|_\infty`. Sharp in both regimes (claim ``F4-topk-local-stability``); at a tie
    (:math:`\Delta = 0`) :math:`\xi_h` is discontinuous and the constant is ``+inf``.

    Source: derived here (docs/notes/semantic_focus.md §2.4 O6).

    Example:
      >>> float(topk_lipschitz_bound(0.5)), float(topk_lipschitz_bound(10.0))
      (8.0, 1.0)
    """
    sp = _values(sep, "sep")
    _check_ge(sp, "sep", 0.0, strict=False)
    return jnp.maximum(1.0, 4.0 / sp)


# ---------------------------------------------------------------------------------------------
# stability constants derived here (every factor explicit; checked by claims F10*)


def _jac_cap(delta, m, dtype):
    """sup ||J||_2 over softmaxes on m keys with dispersion <= delta: min(1/2, pmax_bound)."""
    return jnp.minimum(0.5, 1.0 / (1.0 + (jnp.asarray(m, dtype) - 1.0) * jnp.exp(-delta)))


def derived_lambda_w(delta: Any, m: Any, n_queries: Any, xi: Any, *, sep: Any = math.inf,
                     radius: Any = 0.0) -> jax.Array:
    r"""Stability of the attention matrix in the weights, derived here with every factor.

    For tokens :math:`X \in \mathbb R^{n\times d}` with :math:`\|x_i\| \le \Xi`, logits
    :math:`A(W) = XWX^\top` and :math:`P(W)` their row-wise softmax over :math:`m` keys per query
    (:math:`m = n` full softmax, :math:`m = k` top-k),

    .. math::
        \|P(W') - P(W)\|_F \le \lambda_W\,\|W' - W\|_2, \qquad
        \lambda_W = \sqrt{n}\,\Xi^2 \max\Big(\sqrt m\,\min\big(\tfrac12, \pi(\delta + 2\Xi^2 r, m)\big),\
        \frac{2\sqrt2}{\Delta}\Big),

    with :math:`\pi` = :func:`pmax_bound`, :math:`\delta` the largest per-query dispersion over the
    selected keys at :math:`W`, :math:`\Delta` the smallest separation (``+inf`` for full softmax:
    no second term), :math:`r = \|W'-W\|_2` (``radius``; ``0`` gives the local constant
    :math:`\|\partial P/\partial W\|`).

    Derivation: :math:`|x_i^\top (W'-W) x_j| \le \Xi^2 r =: \varepsilon`. If
    :math:`\varepsilon < \Delta_i/2` the selection of query :math:`i` is constant on the segment
    (O6) and its dispersion stays :math:`\le \delta + 2\varepsilon`; there
    :math:`0 \preceq J \preceq \mathrm{diag}(p)` gives :math:`\|J\|_2 \le \min(\frac12, p_{\max})`
    and :math:`\|\Delta a_{i,S}\|_2 \le \sqrt m\,\Xi^2 r`. Otherwise
    :math:`\|\Delta p_i\|_2 \le \sqrt2 \le 2\sqrt2\,\varepsilon/\Delta_i`. Summing over the
    :math:`n` rows gives the :math:`\sqrt n`.

    Reading: with :math:`\pi(\delta, m) \approx e^{\delta}/m` the full constant is
    :math:`\approx \Xi^2 e^{\delta_s}` and the top-k one :math:`\approx \Xi^2 \sqrt{n/k}\,
    e^{\delta_h}` plus the selection term :math:`\propto 1/\Delta`: the same ingredients as SF's
    :math:`e^{\delta_s}` vs :math:`2e^{\delta_h}(1+1/\Delta)`, but **this is not the paper's
    theorem** (whose norm and prefactor are unavailable).

    Source: derived here (claims ``F10-measured-stability-w``, ``F10c-finite-stability-w``).

    Args:
      delta: largest dispersion over the selected keys (``>= 0``).
      m: keys per query (int ``>= 1``).
      n_queries: number of queries (rows), int ``>= 1``.
      xi: :math:`\Xi`, the largest token norm (``>= 0``).
      sep: smallest separation :math:`\Delta \ge 0` (``+inf``: the selection never changes).
      radius: :math:`\|W' - W\|_2 \ge 0`.

    Example:
      >>> float(derived_lambda_w(0.0, 4, 4, 1.0))   # sqrt(4*4) * 1/4
      1.0
    """
    d = _values(delta, "delta")
    _check_ge(d, "delta", 0.0, strict=False)
    m = _check_count(m, "m")
    n_queries = _check_count(n_queries, "n_queries")
    x = _values(xi, "xi")
    _check_ge(x, "xi", 0.0, strict=False)
    sp = _values(sep, "sep")
    _check_ge(sp, "sep", 0.0, strict=False)
    r = _values(radius, "radius")
    _check_ge(r, "radius", 0.0, strict=False)
    x2 = x * x
    smooth = jnp.sqrt(jnp.asarray(m, d.dtype)) * _jac_cap(d + 2.0 * x2 * r, m, d.dtype)
    jump = 2.0 * math.sqrt(2.0) / sp
    return jnp.sqrt(jnp.asarray(n_queries, d.dtype)) * x2 * jnp.maximum(smooth, jump)


def derived_lambda_x(delta: Any, m: Any, beta_max: Any, gamma: Any, xi: Any) -> jax.Array:
    r"""Local stability of the attention matrix in the tokens, derived here with every factor.

    For self-attention logits :math:`A(X) = XWX^\top` (:math:`\|W\|_2 = \Gamma`, :math:`\|x_i\| \le
    \Xi`) and row-wise softmax over :math:`m` selected keys with in-degrees :math:`\le
    \beta_{\max}`, at a point without ties at the selection boundary,

    .. math::
        \Big\|\frac{\partial P}{\partial X}\Big\|_{F\to F} \le \lambda_X
        = \Gamma\,\Xi\,\big(\sqrt m + \sqrt{\beta_{\max}}\big)\,\min\big(\tfrac12, \pi(\delta, m)\big).

    Derivation: a perturbation :math:`E` changes query :math:`i`'s selected logits by
    :math:`X_S W^\top e_i + E_S W^\top x_i`, of norm :math:`\le \Gamma\Xi(\sqrt m\|e_i\| +
    \|E_{S_i}\|_F)`; :math:`\sum_i \|E_{S_i}\|_F^2 = \sum_j \beta_j\|e_j\|^2`, and Minkowski
    gives :math:`(\sqrt m + \sqrt{\beta_{\max}})\|E\|_F`; the Jacobian factor is as in
    :func:`derived_lambda_w`. Full softmax: :math:`m = \beta_{\max} = n`, so
    :math:`\lambda_X = 2\sqrt n\,\Gamma\Xi\,\pi(\delta_s, n) \approx 2\Gamma\Xi e^{\delta_s}/\sqrt n`;
    top-k: :math:`\approx \Gamma\Xi e^{\delta_h}(1 + \sqrt{\bar\beta})/\sqrt k` -- the in-degree
    enters as in SF's :math:`(1 + \bar\beta)`. **Not the paper's theorem.**

    Source: derived here (claim ``F10b-measured-stability-x``).

    Args:
      delta: largest dispersion over the selected keys.  m: keys per query.
      beta_max: largest key in-degree (``n`` for full self-attention).
      gamma: :math:`\Gamma = \|W\|_2`.  xi: :math:`\Xi`.

    Example:
      >>> float(derived_lambda_x(0.0, 4, 4, 1.0, 1.0))   # (2 + 2) / 4
      1.0
    """
    d = _values(delta, "delta")
    _check_ge(d, "delta", 0.0, strict=False)
    m = _check_count(m, "m")
    b = _values(beta_max, "beta_max")
    _check_ge(b, "beta_max", 0.0, strict=False)
    g = _values(gamma, "gamma")
    _check_ge(g, "gamma", 0.0, strict=False)
    x = _values(xi, "xi")
    _check_ge(x, "xi", 0.0, strict=False)
    return g * x * (jnp.sqrt(jnp.asarray(m, d.dtype)) + jnp.sqrt(b)) * _jac_cap(d, m, d.dtype)


# ---------------------------------------------------------------------------------------------
# measured stability (autodiff / direct evaluation), the counterpart of the derived constants


def _tokens_weights(X: Any, W: Any):
    x = as_float_array(X, "X")
    w = as_float_array(W, "W")
    if x.ndim != 2:
        raise ValueError(f"X must be a token matrix (n, d), got shape {x.shape}")
    check_nonempty(x, "X")
    if w.shape != (x.shape[1], x.shape[1]):
        raise ValueError(f"W must have shape {(x.shape[1], x.shape[1])} for tokens of dimension "
                         f"{x.shape[1]}, got {w.shape}")
    return x, w


def attention_weights(X: Any, W: Any, k: int | None = None) -> jax.Array:
    r"""Self-attention weights :math:`P = \xi(XWX^\top)`, row-wise: softmax, or top-k softmax.

    Args:
      X: tokens ``(n, d)``.  W: bilinear form ``(d, d)`` (e.g. :func:`qk_matrix`).
      k: ``None`` or ``k = n`` for the full softmax, else the top-k softmax
        (:func:`softmax_stability.maps.topk_softmax`); a static int in ``[1, n]`` (``k > n``
        raises ``ValueError``, the library's one rule for every ``k``).

    Returns:
      ``(n, n)`` row-stochastic matrix.

    Example:
      >>> P = attention_weights(jnp.eye(3), jnp.eye(3), k=1)
      >>> P.tolist()
      [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    from softmax_stability.maps import softmax, topk_softmax

    x, w = _tokens_weights(X, W)
    A = x @ w @ x.T
    if k is None or check_int_in_range(k, "k", 1, A.shape[-1]) == A.shape[-1]:
        return softmax(A)
    return topk_softmax(A, k)


def local_stability(X: Any, W: Any, k: int | None = None, *, wrt: str = "W") -> jax.Array:
    r"""Measured local stability :math:`\|\partial P/\partial W\|_{F\to F}` (or in :math:`X`), by autodiff.

    The dense Jacobian of :func:`attention_weights` by forward-mode autodiff
    (:func:`softmax_stability.empirical.autodiff_jacobian`), reshaped to
    :math:`n^2 \times (\text{inputs})`, and its largest singular value. For top-k at a point without
    ties at the selection boundary this is the derivative with the selection fixed. Bounded by
    :func:`derived_lambda_w` / :func:`derived_lambda_x` (claims ``F10``, ``F10b``).

    Args:
      X: tokens ``(n, d)``.  W: ``(d, d)``.  k: as :func:`attention_weights`.
      wrt: ``"W"`` or ``"X"``.

    Example:
      >>> L = local_stability(jnp.eye(2), jnp.zeros((2, 2)))   # uniform rows
      >>> round(float(L), 6)
      0.5
    """
    from softmax_stability.empirical import autodiff_jacobian

    if wrt not in ("W", "X"):
        raise ValueError(f"wrt must be 'W' or 'X', got {wrt!r}")
    x, w = _tokens_weights(X, W)
    if wrt == "W":
        J = autodiff_jacobian(lambda v: attention_weights(x, v, k), w)
    else:
        J = autodiff_jacobian(lambda v: attention_weights(v, w, k), x)
    return jnp.linalg.norm(J.reshape(x.shape[0] ** 2, -1), 2)


def finite_stability_w(X: Any, W: Any, D: Any, radius: Any, k: int | None = None) -> jax.Array:
    r"""Measured :math:`\|P(W + rD) - P(W)\|_F / \|rD\|_2` for one direction ``D`` and radius ``r``.

    Unlike :func:`local_stability`, a finite step can change the top-k selection, which is where
    the separation :math:`\Delta` matters (bounded by :func:`derived_lambda_w` with ``sep`` and
    ``radius``; claim ``F10c``).

    Args:
      X: tokens ``(n, d)``.  W, D: ``(d, d)`` (``D != 0``).  radius: ``r > 0``.
      k: as :func:`attention_weights`.

    Example:
      >>> X = jnp.eye(2); D = jnp.array([[-1.0, 1.0], [0.0, 0.0]])
      >>> float(finite_stability_w(X, jnp.zeros((2, 2)), D, 0.1, k=1)) > 1.0   # a flip
      True
    """
    x, w = _tokens_weights(X, W)
    dd = as_float_array(D, "D")
    if dd.shape != w.shape:
        raise ValueError(f"D must have the shape of W {w.shape}, got {dd.shape}")
    r = _values(radius, "radius")
    _check_ge(r, "radius", 0.0, strict=True)
    diff = attention_weights(x, w + r * dd, k) - attention_weights(x, w, k)
    return jnp.linalg.norm(diff) / (r * jnp.linalg.norm(dd, 2))


def selection_flip_direction(X: Any, W: Any, k: int) -> np.ndarray:
    r"""A unit direction :math:`D` (:math:`\|D\|_2 = 1`) that flips a top-k selection soonest.

    For the query :math:`q` with the smallest separation, :math:`D \propto x_q (x_b - x_a)^\top`
    with :math:`a`, :math:`b` its :math:`k`-th and :math:`(k+1)`-th ranked keys: moving along
    :math:`D` lowers :math:`a_{qa}` and raises :math:`a_{qb}`. NumPy (test-data helper).

    Args:
      X: tokens ``(n, d)``.  W: ``(d, d)``.  k: int in ``[1, n-1]``.

    Returns:
      float64 array ``(d, d)``; zero if the two keys coincide.
    """
    x, w = (np.asarray(a, dtype=float) for a in (X, W))
    if x.ndim != 2 or w.shape != (x.shape[1], x.shape[1]):
        raise ValueError(f"X must be (n, d) and W (d, d), got {x.shape} and {w.shape}")
    k = check_int_in_range(k, "k", 1, x.shape[0] - 1)
    A = x @ w @ x.T
    q = int(np.argmin(np.asarray(separation(A, k))))
    # the k-th and (k+1)-th ranked keys of row q under the "index" tie rule (lowest index first)
    sel_k = np.asarray(_topk.topk_mask(A[q], k, ties="index"))
    b = int(np.flatnonzero(np.asarray(_topk.topk_mask(A[q], k + 1, ties="index")) & ~sel_k)[0])
    kth = np.min(A[q][sel_k])
    a = int(np.flatnonzero(sel_k & (A[q] == kth))[-1])
    D = np.outer(x[q], x[b] - x[a])
    nrm = np.linalg.norm(D, 2)
    return D / nrm if nrm > 0 else D


# ---------------------------------------------------------------------------------------------
# summaries


def attention_statistics(logits: Any, k: int, *, logits_topk: Any = None, where: Any = None,
                         quantiles: Sequence[float] = (75, 90, 95, 100),
                         floor: float = 1e-9) -> dict[str, jax.Array]:
    r"""SF's Table 6 statistics and both conditions, for attention logits of your own model.

    Pools over every leading axis (batch, heads, layers) the per-query :math:`\delta_s`
    (:func:`dispersion` over all attended keys of ``logits``), :math:`\delta_h` and :math:`\Delta`
    (:func:`dispersion`, :func:`separation` over the top-``k`` keys of ``logits_topk``, default
    ``logits``) and the per-key in-degrees :math:`\beta` (:func:`topk_in_degree`); takes the
    quantiles ``q`` of :math:`\delta_s, \delta_h, \beta` and the quantiles ``100 - q`` of
    :math:`\Delta` (a small separation is the bad case), clamps each at ``floor`` (default
    1e-9: the smallest value in the paper's Table 6, ListOps :math:`\Delta`, suggests that the
    authors clamp at 1e-9 -- unconfirmed, the reference notes do not record it), and evaluates :func:`lhs_304` and
    :func:`lhs_305` (:math:`\bar\beta = \beta/k`) per quantile level -- the protocol of SF
    Table 6. ``np.percentile``'s linear interpolation is used.

    Pooling with a mask: fully masked queries (no attended key) are left out of the
    :math:`\delta_s, \delta_h, \Delta` quantiles, and keys that no query may attend (a column of
    ``where`` that is all ``False``, e.g. padding) are left out of the :math:`\beta` quantiles.
    A query whose attended keys number at most ``k`` has :math:`\Delta = +\infty` (its selection
    cannot change) and is pooled. Like ``np.percentile``, a ``NaN`` among the pooled values
    (a ``NaN`` logit of an attended key) makes every quantile of that statistic ``NaN``; an empty
    pool (every query fully masked) gives ``NaN`` too.

    In the paper :math:`\delta_s` comes from a model trained with full attention and
    :math:`\delta_h, \Delta, \beta` from one trained with TOPK(k): pass the two models' logits as
    ``logits`` and ``logits_topk``. With one model, all four come from the same logits.

    Args:
      logits: ``(..., n_queries, n_keys)`` logits (pre-softmax, after scaling/temperature).
      k: top-k size, int in ``[1, n_keys]``.
      logits_topk: optional logits of the top-k model, same last-axis size.
      where: optional boolean mask broadcastable to the logits (applied to both).
      quantiles: quantile levels in ``[0, 100]``.
      floor: lower clamp for every statistic (``>= 0``; ``0`` disables it -- then a tie gives
        :math:`\Delta = 0` and LHS ``+inf``).

    Returns:
      dict of arrays, one entry per quantile level: ``quantiles``, ``sep_quantiles``,
      ``delta_s``, ``delta_h``, ``sep``, ``beta``, ``beta_bar``, ``lhs_304``, ``lhs_305``,
      ``holds_304``, ``holds_305`` (bool: LHS < 1); ``k`` (int) and ``n_queries`` (integer
      array: the number of pooled, not fully masked, queries).

    Example:
      >>> a = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 16, 16)) * 4.0  # (batch, heads, q, k)
      >>> st = attention_statistics(a, 5)
      >>> bool(jnp.all(st['delta_h'] <= st['delta_s']))
      True
    """
    x, w = _logits(logits, -1, where)
    if x.ndim < 2:
        raise ValueError(f"logits must have shape (..., n_queries, n_keys), got shape {x.shape}")
    n = x.shape[-1]
    k = _check_k(k, n)
    if logits_topk is None:
        xh, wh = x, w
    else:
        xh, wh = _logits(logits_topk, -1, where, "logits_topk")
        if xh.ndim < 2 or xh.shape[-1] != n:
            raise ValueError(f"logits_topk must have shape (..., n_queries, {n}), got shape {xh.shape}")
    q = np.asarray(quantiles, dtype=float).reshape(-1)
    if q.size == 0 or np.any(~np.isfinite(q)) or np.any(q < 0) or np.any(q > 100):
        raise ValueError(f"quantiles must be values in [0, 100], got {quantiles!r}")
    try:
        fl = float(floor)
    except (TypeError, ValueError) as err:
        raise TypeError(f"floor must be a real number, got {floor!r}") from err
    if not (math.isfinite(fl) and fl >= 0):
        raise ValueError(f"floor must be finite and >= 0, got {floor!r}")

    ds = dispersion(x, where=w).reshape(-1)
    dh = dispersion(xh, k, where=wh).reshape(-1)
    sp = separation(xh, k, where=wh).reshape(-1)
    beta = in_degree(_topk_selection(xh, wh, k)).reshape(-1).astype(x.dtype)
    # which queries / keys take part in the pooled statistics
    q_ok = None if w is None else jnp.any(w, axis=-1).reshape(-1)
    qh_ok = None if wh is None else jnp.any(wh, axis=-1).reshape(-1)
    kh_ok = None if wh is None else jnp.any(wh, axis=-2).reshape(-1)

    qq = jnp.asarray(q, x.dtype)

    def pct(v, levels, valid):
        return jnp.maximum(_percentile(v, levels, valid), fl)  # max keeps NaN

    s_ds, s_dh = pct(ds, qq, q_ok), pct(dh, qq, qh_ok)
    s_sp, s_b = pct(sp, 100.0 - qq, qh_ok), pct(beta, qq, kh_ok)
    bbar = s_b / k
    l304 = _lhs_304_raw(s_ds, s_dh, s_sp)
    l305 = _lhs_305_raw(s_ds, s_dh, s_sp, bbar)
    return {
        "quantiles": qq,
        "sep_quantiles": 100.0 - qq,
        "delta_s": s_ds,
        "delta_h": s_dh,
        "sep": s_sp,
        "beta": s_b,
        "beta_bar": bbar,
        "lhs_304": l304,
        "lhs_305": l305,
        "holds_304": l304 < 1,
        "holds_305": l305 < 1,
        "k": k,
        "n_queries": jnp.asarray(ds.size) if q_ok is None else jnp.sum(q_ok),
    }


def _percentile(v: jax.Array, q: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """``np.percentile(v[valid], q)`` (linear interpolation) that keeps ``+inf`` entries exact.

    jit-safe (no boolean indexing): invalid entries are sorted last as ``+inf`` and the positions
    use the valid count. Any valid NaN, or no valid entry, gives NaN (as ``np.percentile``).
    (The plain lerp ``a + (b - a) t`` gives NaN for ``a = b = inf`` or ``t = 0, b = inf``.)
    """
    if valid is None:
        valid = jnp.ones(v.shape, bool)
    has_nan = jnp.any(jnp.isnan(v) & valid)
    s = jnp.sort(jnp.where(valid, v, jnp.inf))
    m = jnp.sum(valid)
    pos = q / 100.0 * jnp.maximum(m - 1, 0)
    lo = jnp.floor(pos).astype(int)
    hi = jnp.minimum(lo + 1, jnp.maximum(m - 1, 0))
    t = pos - lo
    a, b = s[lo], s[hi]
    out = jnp.where((t == 0) | (a == b), a, a + (b - a) * t)
    return jnp.where(has_nan | (m == 0), jnp.nan, out)


# ---------------------------------------------------------------------------------------------
# data: SF Table 6


SF_TABLE6_QUANTILES = (75, 90, 95, 100)  # for delta_s, delta_h, beta
SF_TABLE6_SEP_QUANTILES = (25, 10, 5, 0)  # for Delta (the lower tail is the bad case)
SF_TABLE6_K = 5  # TOPK(5); beta_bar = beta / 5

#: SF Table 6 (the paper's values). Statistics of trained ReLU checkpoints (seed 140439608) of
#: FULL (``delta_s``) and TOPK(5) (``delta_h``, ``sep``, ``beta``), 10 training batches of 100
#: samples, pooled over layers, at the quantiles :data:`SF_TABLE6_QUANTILES` (``sep`` at
#: :data:`SF_TABLE6_SEP_QUANTILES`). Source: hard-coded as "Results in the paper for reference"
#: in the authors' ``bounds-lhs.py`` (github:rithram/spartan @ 7127ccf8), transcribed in
#: ``docs/notes/semantic_focus.md`` §3. Note: the ListOps ``sep`` minimum "1e-9" may be a
#: clamp of a smaller value or of an exact tie (unconfirmed: the notes do not record a clamp).
SF_TABLE6: dict[str, dict[str, tuple[float, ...]]] = {
    "ListOps": {
        "delta_s": (8.61, 18.5, 29.4, 87.8),
        "delta_h": (3.51, 6.74, 9.67, 28.2),
        "sep": (0.016, 0.005, 0.002, 1e-9),
        "beta": (1, 3, 15, 598),
    },
    "Parity": {
        "delta_s": (8.30, 10.1, 11.2, 19.4),
        "delta_h": (2.31, 3.13, 3.78, 9.16),
        "sep": (0.062, 0.022, 0.011, 1e-6),
        "beta": (8, 13, 16, 33),
    },
    "EvenPairs": {
        "delta_s": (2.03, 4.73, 9.44, 14.6),
        "delta_h": (1.03, 2.84, 5.50, 8.25),
        "sep": (0.009, 0.003, 0.002, 3e-8),
        "beta": (6, 17, 26, 40),
    },
    "MissDup": {
        "delta_s": (4.63, 9.25, 17.1, 23.9),
        "delta_h": (2.36, 4.25, 4.88, 10.5),
        "sep": (0.018, 0.006, 0.003, 1e-7),
        "beta": (7, 15, 21, 40),
    },
}
