r"""Attention layers as pure functions: dot-product attention with any normaliser, top-k and
top-:math:`n^\gamma` sparse attention, and Selective Self-Attention (SSA).

Layout follows :func:`jax.nn.dot_product_attention`: queries ``[batch, T, heads, head_dim]``,
keys and values ``[batch, S, kv_heads, head_dim]`` (``heads`` a multiple of ``kv_heads``,
grouped-query attention), or the same without the batch axis.

* :func:`dot_product_attention` -- one attention core for every normaliser of
  :mod:`softmax_stability.maps` (``"softmax"``, ``"topk"``, ``"top_n_gamma"``, ``"sparsemax"``,
  ``"entmax15"``), boolean masks from :mod:`softmax_stability.masks`, causal masking with
  absolute positions, and per-query / per-key / per-value inverse temperatures. With the softmax
  normaliser it calls :func:`jax.nn.dot_product_attention` (so the fused cuDNN kernel applies on
  GPU): a query temperature is folded into ``q`` and a value temperature into ``v``
  (docs/notes/field.md §5.6).
* ``kth_largest``, ``default_topk_method``, ``TOPK_METHODS`` -- the per-row threshold of top-k
  attention; they live in :mod:`softmax_stability.topk` and are re-exported here.
* :func:`multi_head_attention`, :func:`selective_self_attention` -- layers over parameter
  pytrees (plain dicts), with an explicit key/value cache for chunked decoding at absolute
  positions.
* :func:`ssa_parameter_overhead` -- SSA's new parameters as a share of a model.

**Special values.** A query row whose keys are all masked gives an all-zero output (and zero
gradient), for every normaliser and implementation; :func:`jax.nn.dot_product_attention` alone
would return the uniform average of the values there. A NaN logit makes its row NaN.

**SSA sources.** The official SSA code (``github:umich-sota/selective_attention``) only ships
the position temperature :math:`1 + e^{-e^\alpha}\ln n` on the logits and the top-:math:`n^\gamma`
sparse variant (docs/notes/selective_attention.md §1.7, §4.3, read in the code). The token temperature, the value
temperature, the weight sharing :math:`f(x)=u^\top\operatorname{GELU}(W^\top x)` and the additive
combination come from unofficial reproductions (docs/notes/selective_attention.md §1.2-1.4, [3P]) and are **unconfirmed**
against the paper's text. The formulas live in :mod:`softmax_stability.temperature`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability import maps, temperature
from softmax_stability._checks import (
    as_float_array,
    check_choice,
    check_int_in_range,
    check_positive_finite,
    is_concrete,
)
# the top-k threshold kernels live in softmax_stability.topk; re-exported here, where they were
from softmax_stability.topk import (  # noqa: F401
    TOPK_METHODS,
    _keep_mask,
    default_topk_method,
    kth_largest,
)

__all__ = [
    "NORMALIZERS",
    "IMPLEMENTATIONS",
    "dot_product_attention",
    "top_n_gamma_budget",
    "init_attention_params",
    "multi_head_attention",
    "SSAConfig",
    "init_ssa_params",
    "ssa_temperatures",
    "selective_self_attention",
    "ssa_new_parameter_count",
    "attention_parameter_count",
    "ssa_parameter_overhead",
    "transformer_parameter_count",
]

NORMALIZERS = ("softmax", "topk", "top_n_gamma", "sparsemax", "entmax15")
IMPLEMENTATIONS = (None, "xla", "cudnn", "jnp")

# ----------------------------------------------------------------------------------------------
# argument checks (eager; run before tracing)


def _check_scale(scale: Any) -> float | None:
    if scale is None:
        return None
    if isinstance(scale, jax.core.Tracer):
        raise TypeError("scale must be a static Python number (it is folded into the kernel), "
                        "not a traced value")
    if isinstance(scale, bool) or not isinstance(scale, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"scale must be a real number, got {scale!r}")
    s = float(scale)
    if not math.isfinite(s) or s <= 0:
        raise ValueError(f"scale must be finite and > 0, got {scale!r}")
    return s


def _prepare_qkv(q: Any, k: Any, v: Any):
    q = as_float_array(q, "q")
    k = as_float_array(k, "k")
    v = as_float_array(v, "v")
    if q.ndim not in (3, 4):
        raise ValueError(f"q must have shape [batch, T, heads, head_dim] or [T, heads, head_dim], "
                         f"got shape {q.shape}")
    if k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(f"q, k and v must have the same number of dimensions, got shapes "
                         f"{q.shape}, {k.shape}, {v.shape}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k and v must have the same dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    unbatched = q.ndim == 3
    if unbatched:
        q, k, v = q[None], k[None], v[None]
    if v.shape != k.shape:
        raise ValueError(f"v must have the shape of k {k.shape[1 - unbatched:]}, got "
                         f"{v.shape[1 - unbatched:]}")
    B, T, N, H = q.shape
    Bk, S, K, Hk = k.shape
    if Bk != B:
        raise ValueError(f"q and k must have the same batch size, got {B} and {Bk}")
    if Hk != H:
        raise ValueError(f"q and k must have the same head_dim, got {H} and {Hk}")
    if min(T, S, N, K, H) < 1:
        raise ValueError(f"q, k, v must be non-empty, got shapes {q.shape}, {k.shape}")
    if N % K:
        raise ValueError(f"the number of query heads ({N}) must be a multiple of the number of "
                         f"key/value heads ({K})")
    return q, k, v, unbatched


def _prepare_temperature(t: Any, shape: tuple, name: str, unbatched: bool) -> jax.Array | None:
    if t is None:
        return None
    t = as_float_array(t, name)
    check_positive_finite(t, name)
    user_shape = shape[1:] if unbatched else shape
    try:
        ok = np.broadcast_shapes(t.shape, user_shape) == tuple(user_shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be broadcastable to {tuple(user_shape)} (one value per "
                         f"{'query' if name.startswith('query') else 'key'} and head; a "
                         f"per-position value of shape (L,) is written t[:, None]), got shape {t.shape}")
    return jnp.broadcast_to(t, user_shape)[None] if unbatched else jnp.broadcast_to(t, shape)


def _prepare_positions(p: Any, B: int, L: int, name: str, unbatched: bool) -> jax.Array | None:
    if p is None:
        return None
    if not isinstance(p, jax.core.Tracer):
        p = jnp.asarray(p)
    if not jnp.issubdtype(p.dtype, jnp.integer):
        raise TypeError(f"{name} must be an integer array of absolute (0-based) positions, "
                        f"got dtype {p.dtype}")
    if p.ndim not in (1, 2) or (p.ndim == 2 and (unbatched or p.shape[0] != B)):
        want = f"({L},)" + ("" if unbatched else f" or ({B}, {L})")
        raise ValueError(f"{name} must have shape {want}, got {p.shape}")
    if p.shape[-1] < L:
        raise ValueError(f"{name} is shorter than the sequence: {p.shape[-1]} positions for {L} "
                         f"tokens")
    if p.shape[-1] != L:
        raise ValueError(f"{name} must hold one position per token ({L}), got {p.shape[-1]}")
    if is_concrete(p) and p.size and int(jnp.min(p)) < 0:
        raise ValueError(f"{name} must be >= 0 (absolute 0-based positions)")
    return jnp.broadcast_to(p, (B, L)).astype(jnp.int32)


def _prepare_mask(mask: Any, B: int, N: int, T: int, S: int, unbatched: bool) -> jax.Array | None:
    if mask is None:
        return None
    m = mask if isinstance(mask, jax.core.Tracer) else jnp.asarray(mask)
    if m.dtype != jnp.bool_:
        raise TypeError(f"mask must be a boolean array (True = attend), got dtype {m.dtype}")
    full = (N, T, S) if unbatched else (B, N, T, S)
    try:
        ok = m.ndim <= len(full) and np.broadcast_shapes(m.shape, full) == full
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"mask must be broadcastable to {full} ([batch,] heads, T, S), got shape "
                         f"{m.shape}")
    while m.ndim < 4:
        m = m[None]
    return m


def _check_sparsity_args(normalizer: str, k_top: Any, gamma: Any, S: int):
    if normalizer == "topk":
        if k_top is None:
            raise ValueError("normalizer='topk' needs k_top, an int in [1, S]")
        k_top = check_int_in_range(k_top, "k_top", 1, S)
    elif k_top is not None:
        raise ValueError(f"k_top is only used with normalizer='topk', got normalizer={normalizer!r}")
    if normalizer == "top_n_gamma":
        if gamma is None:
            raise ValueError("normalizer='top_n_gamma' needs gamma in (0, 1]")
        if isinstance(gamma, jax.core.Tracer):
            raise TypeError("gamma must be a static Python number, not a traced value")
        if isinstance(gamma, (bool, np.bool_)):  # True would silently mean gamma = 1
            raise TypeError(f"gamma must be a real number in (0, 1], got {gamma!r}")
        try:
            g = float(gamma)
        except (TypeError, ValueError) as err:
            raise TypeError(f"gamma must be a real number, got {gamma!r}") from err
        if not (0.0 < g <= 1.0):
            raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
        gamma = g
    elif gamma is not None:
        raise ValueError(f"gamma is only used with normalizer='top_n_gamma', got "
                         f"normalizer={normalizer!r}")
    return k_top, gamma


def top_n_gamma_budget(n: Any, gamma: float) -> np.ndarray:
    r"""Keys kept per query by the SSA authors' sparse attention: :math:`\max(10, \lfloor n^\gamma\rfloor)`.

    Source: official SSA code ``lit_gpt/model_sparse_att.py`` ``clip_tail`` (docs/notes/selective_attention.md §4.3, read in
    the code): query :math:`i` with :math:`n_i` visible keys keeps its
    :math:`\max(10, \lfloor n_i^{\gamma}\rfloor)` largest logits (all of them when fewer are
    visible). Computed here in float64 with a :math:`10^{-12}` relative nudge so that exact
    powers are not truncated (the authors' ``.long()`` of a float32 power can give e.g. 10 for
    :math:`121^{0.5}`).

    Args:
        n: number(s) of visible keys, integers ``>= 0`` (NumPy-like).
        gamma: exponent in ``(0, 1]``.

    Returns:
        NumPy int64 array of the shape of ``n``.

    Example:
        >>> top_n_gamma_budget([1, 99, 121, 131, 411], 0.5).tolist()
        [10, 10, 11, 11, 20]
    """
    _, gamma = _check_sparsity_args("top_n_gamma", None, gamma, 1)
    n = np.asarray(n)
    if not np.issubdtype(n.dtype, np.integer) or (n.size and n.min() < 0):
        raise ValueError(f"n must be non-negative integers, got {n!r}")
    b = np.floor(np.power(n.astype(np.float64), gamma) * (1 + 1e-12)).astype(np.int64)
    return np.maximum(10, b)


# ----------------------------------------------------------------------------------------------
# the attention core


def _large_negative(dtype) -> jax.Array:
    # same value as jax.nn.dot_product_attention's XLA path (finite, fits float32)
    return jnp.asarray(-0.7 * float(jnp.finfo(jnp.float32).max), dtype)


def _fold(x: jax.Array, t: jax.Array | None) -> jax.Array:
    if t is None:
        return x
    # one rounding in low precision: multiply in float32 (or wider) and cast back
    wide = jnp.promote_types(x.dtype, jnp.float32)
    return (x.astype(wide) * t[..., None].astype(wide)).astype(x.dtype)


def _causal_position_mask(qpos: jax.Array, kpos: jax.Array) -> jax.Array:
    return (kpos[:, None, None, :] <= qpos[:, None, :, None])  # [B, 1, T, S]


def _normalize(logits: jax.Array, m: jax.Array | None, normalizer: str, k_top, gamma,
               topk_method: str | None) -> jax.Array:
    """Row-normalise [B, N, T, S] logits under the boolean mask ``m`` (None = all visible)."""
    S = logits.shape[-1]
    if normalizer == "softmax":
        return maps.softmax(logits, where=m) if m is not None else maps.softmax(logits)
    if normalizer in ("sparsemax", "entmax15"):
        zm = logits if m is None else jnp.where(m, logits, -jnp.inf)
        fn = maps.sparsemax if normalizer == "sparsemax" else maps.entmax15
        return fn(zm)  # -inf entries get exactly 0; an all -inf row gives zeros (maps conventions)
    if normalizer == "topk":
        k_row, k_max = k_top, k_top
    else:  # top_n_gamma
        if m is None:
            k_row = int(top_n_gamma_budget(S, gamma))
        else:
            visible = jnp.sum(jnp.broadcast_to(m, logits.shape), axis=-1, keepdims=True)
            table = jnp.asarray(top_n_gamma_budget(np.arange(S + 1), gamma), jnp.int32)
            k_row = table[visible]
        k_max = int(top_n_gamma_budget(S, gamma))
        k_row = jnp.minimum(k_row, S) if not isinstance(k_row, int) else min(k_row, S)
        k_max = min(k_max, S)
    method = default_topk_method(k_max) if topk_method is None else topk_method
    # ties="keep": every key tied with the k-th largest logit attends; the selection is outside
    # the gradient, a NaN logit is kept (so its row is NaN) and masked keys never are
    keep = _keep_mask(logits, k_row, k_max, method, m)
    return maps.softmax(logits, where=keep)


def _attention_jnp(q, k, v, m, scale, normalizer, k_top, gamma, topk_method):
    B, T, N, H = q.shape
    _, S, K, _ = k.shape
    G = N // K
    logits_dtype = jnp.promote_types(q.dtype, jnp.float32)  # softmax accumulates in >= float32
    if G == 1:  # plain multi-head: the simple einsum lays out better on CPU (measured)
        logits = jnp.einsum("btnh,bsnh->bnts", q, k, preferred_element_type=logits_dtype)
    else:
        qg = q.reshape(B, T, K, G, H)
        logits = jnp.einsum("btkgh,bskh->bkgts", qg, k, preferred_element_type=logits_dtype)
        logits = logits.reshape(B, N, T, S)
    logits = logits * jnp.asarray(scale, logits_dtype)
    p = _normalize(logits, m, normalizer, k_top, gamma, topk_method).astype(v.dtype)
    if G == 1:
        return jnp.einsum("bnts,bsnh->btnh", p, v)
    out = jnp.einsum("bkgts,bskh->btkgh", p.reshape(B, K, G, T, S), v)
    return out.reshape(B, T, N, H)


@functools.partial(jax.jit, static_argnames=("causal", "normalizer", "k_top", "gamma", "scale",
                                              "implementation", "topk_method"))
def _dpa_core(q, k, v, tq, tk, tv, user_mask, qpos, kpos, *, causal, normalizer, k_top, gamma,
              scale, implementation, topk_method):
    """The computation of :func:`dot_product_attention` on checked, batched arguments. Jitted so
    an eager call compiles one program per shape instead of dispatching every op."""
    B, T, N, _ = q.shape
    S = k.shape[1]
    if causal and (qpos is not None or kpos is not None):
        qpos = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T)) if qpos is None else qpos
        kpos = jnp.broadcast_to(jnp.arange(S, dtype=jnp.int32), (B, S)) if kpos is None else kpos
        pos_mask = _causal_position_mask(qpos, kpos)
    else:
        pos_mask = None
    tril = causal and pos_mask is None

    qf, kf, vf = _fold(q, tq), _fold(k, tk), _fold(v, tv)
    # jax.nn.dot_product_attention computes its softmax in float32 even for float64 inputs
    # (measured: 1.6e-7 error); float64 by default takes this library's float64 path
    fused = implementation not in ("jnp", None) or (implementation is None and q.dtype != jnp.float64)
    if normalizer == "softmax" and fused:
        m = user_mask
        if pos_mask is not None:
            m = pos_mask if m is None else m & pos_mask
        bias = None
        if implementation == "cudnn" and m is not None:
            # the cuDNN path is more reliable with an additive bias than with a boolean mask
            # (jax#28974); not exercised here (no GPU), see tests/test_attention.py::test_gpu_smoke
            bias = jnp.where(m, jnp.zeros((), q.dtype), _large_negative(q.dtype))
            bias = jnp.broadcast_to(bias, (B, N, T, S))
            m_arg = None
        else:
            m_arg = m
        out = jax.nn.dot_product_attention(qf, kf, vf, bias, m_arg, scale=scale, is_causal=tril,
                                           implementation=implementation)
        if m is not None:
            # the kernel returns the mean of the values on a fully masked row; we return zeros
            full = m if not tril else m & jnp.tril(jnp.ones((T, S), bool))
            valid = jnp.any(full, axis=-1)  # [B?, N?, T]
            valid = jnp.broadcast_to(valid, (B, N, T))
            out = out * jnp.transpose(valid, (0, 2, 1))[..., None].astype(out.dtype)
    else:
        m = user_mask
        if pos_mask is not None:
            m = pos_mask if m is None else m & pos_mask
        elif tril:
            tri = jnp.tril(jnp.ones((T, S), bool))[None, None]
            m = tri if m is None else m & tri
        out = _attention_jnp(qf, kf, vf, m, scale, normalizer, k_top, gamma, topk_method)
    return out


def dot_product_attention(q: Any, k: Any, v: Any, *, normalizer: str = "softmax",
                          k_top: int | None = None, gamma: float | None = None, mask: Any = None,
                          causal: bool = False, scale: float | None = None,
                          query_temperature: Any = None, key_temperature: Any = None,
                          value_temperature: Any = None, query_positions: Any = None,
                          key_positions: Any = None, implementation: str | None = None,
                          topk_method: str | None = None) -> jax.Array:
    r"""Scaled dot-product attention with any normaliser, mask and temperatures.

    .. math::
        \mathrm{out}_i = \sum_j \xi\big(\ell_{i\cdot}\big)_j\, \nu_j v_j, \qquad
        \ell_{ij} = s\,\tau_i\,\kappa_j\, q_i^\top k_j \quad (\text{masked } j\text{: excluded}),

    with :math:`s` the ``scale`` (default :math:`1/\sqrt{d_h}`), :math:`\tau_i` the query,
    :math:`\kappa_j` the key and :math:`\nu_j` the value inverse temperature, and :math:`\xi` the
    normaliser:

    * ``"softmax"``: :func:`jax.nn.dot_product_attention` on :math:`(\tau\odot q, \kappa\odot k,
      \nu\odot v)` -- a per-query temperature is a row scale of the logits, so folding it into
      ``q`` keeps the fused kernel (docs/notes/field.md §5.6; proofs_check
      ``ssa_algebra.query_temperature_row_scale``). ``implementation="jnp"`` uses this library's
      own path (:func:`softmax_stability.maps.softmax`).
    * ``"topk"``: softmax over the logits :math:`\ge` the ``k_top``-th largest visible logit of the
      row (:func:`softmax_stability.topk.topk_mask` with ``ties="keep"``, by the threshold
      :func:`softmax_stability.topk.kth_largest`); the selection is outside the gradient, as in
      the SF and SSA authors' code. Entries tied with the k-th are all kept (the authors'
      ``torch.topk`` keeps exactly k, tie order unspecified;
      :func:`softmax_stability.maps.topk_softmax` keeps the lowest indices, ``ties="index"``);
      away from ties they agree. A NaN logit is selected, so its row is NaN.
    * ``"top_n_gamma"``: the SSA authors' sparse attention: query :math:`i` keeps its
      :func:`top_n_gamma_budget` :math:`\max(10,\lfloor n_i^\gamma\rfloor)` largest logits,
      :math:`n_i` its number of visible keys (official code ``model_sparse_att.py``, docs/notes/selective_attention.md §4.3).
    * ``"sparsemax"``, ``"entmax15"``: :mod:`softmax_stability.maps` on the visible logits.

    Masks: ``mask`` (boolean, ``True`` = attend, e.g. :func:`softmax_stability.masks.band_mask`)
    and ``causal``. Causal masking uses absolute positions: key :math:`j` is visible to query
    :math:`i` iff ``key_positions[j] <= query_positions[i]``. Without positions (and ``T == S``)
    it is the lower triangle, passed to the kernel as ``is_causal``; for a chunk of queries
    against a longer key cache give ``query_positions`` (``key_positions`` defaults to
    ``arange(S)``). A query row with no visible key gives zeros. Logits and normalisation are in
    float32 (float64 for float64 inputs); bfloat16/float16 inputs give outputs of that dtype.

    Args:
        q: queries ``[B, T, N, H]`` (or ``[T, N, H]``).
        k: keys ``[B, S, K, H]``, ``N`` a multiple of ``K``; same dtype as ``q``.
        v: values, the shape and dtype of ``k``.
        normalizer: one of :data:`NORMALIZERS`.
        k_top: for ``"topk"`` only: keys kept per query, a static Python int in ``[1, S]``
          (``k_top > S`` raises ``ValueError``, the library's one rule for every ``k``; a traced
          value ``TypeError``: under ``jax.jit`` pass it as a static argument).
        gamma: for ``"top_n_gamma"`` only: exponent in ``(0, 1]`` (1 keeps everything).
        mask: optional boolean array broadcastable to ``[B, N, T, S]``.
        causal: causal masking (see above).
        scale: logit scale, a Python float ``> 0``; default ``1/sqrt(H)``.
        query_temperature: optional inverse temperatures ``> 0`` broadcastable to ``[B, T, N]``.
          Positivity and finiteness are checked when the value is concrete; a temperature traced
          under ``jit`` cannot be inspected and is used as given (a negative one reverses the
          query's attention weights; :func:`softmax_stability.maps.softmax` shows a run-time
          check with ``jax.experimental.checkify``).
        key_temperature: optional, ``> 0``, broadcastable to ``[B, S, K]``.
        value_temperature: optional, ``> 0``, broadcastable to ``[B, S, K]`` (gates each key's
          value; claim ``A2-ssa-unit-temperature``, proofs_check
          ``ssa_algebra.unit_temperature_vanilla``).
        query_positions: optional integer absolute positions ``[T]`` or ``[B, T]`` (causal only).
        key_positions: optional integer absolute positions ``[S]`` or ``[B, S]`` (causal only).
        implementation: ``None``/``"xla"``/``"cudnn"`` (passed to
          :func:`jax.nn.dot_product_attention`; softmax only; cuDNN needs float16/bfloat16 on a
          GPU) or ``"jnp"`` (this library's path, which every other normaliser uses). ``None``
          with float64 inputs takes the ``"jnp"`` path, because
          :func:`jax.nn.dot_product_attention` normalises in float32 whatever the input dtype
          (an error of ~1e-7 in float64; pass ``"xla"`` to get the kernel anyway).
        topk_method: threshold search for the sparse normalisers, one of :data:`softmax_stability.topk.TOPK_METHODS`;
          None picks :func:`softmax_stability.topk.default_topk_method`.

    Returns:
        Array of ``q``'s shape and dtype.

    Raises:
        ValueError / TypeError: before tracing, for mismatched shapes or dtypes, ``k_top``
        outside ``[1, S]``, ``gamma`` outside ``(0, 1]``, positions of the wrong length,
        non-positive or non-finite (concrete) temperatures, a non-boolean mask.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> q, k, v = jax.random.normal(jax.random.PRNGKey(0), (3, 1, 5, 2, 4))
        >>> ref = jax.nn.dot_product_attention(q, k, v)
        >>> bool(jnp.allclose(dot_product_attention(q, k, v), ref))
        True
        >>> bool(jnp.allclose(dot_product_attention(q, k, v, normalizer="topk", k_top=5), ref, atol=1e-6))
        True
        >>> dot_product_attention(q, k, v, mask=jnp.zeros((5, 5), bool)).sum().item()
        0.0
    """
    check_choice(normalizer, "normalizer", NORMALIZERS)
    check_choice(implementation, "implementation", IMPLEMENTATIONS)
    if topk_method is not None:
        check_choice(topk_method, "topk_method", TOPK_METHODS)
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal must be a bool, got {causal!r}")
    q, k, v, unbatched = _prepare_qkv(q, k, v)
    B, T, N, H = q.shape
    S, K = k.shape[1], k.shape[2]
    k_top, gamma = _check_sparsity_args(normalizer, k_top, gamma, S)
    if normalizer != "softmax" and implementation == "cudnn":
        raise ValueError(f"implementation='cudnn' supports only normalizer='softmax', got {normalizer!r}")
    scale = _check_scale(scale)
    scale = 1.0 / math.sqrt(H) if scale is None else scale
    tq = _prepare_temperature(query_temperature, (B, T, N), "query_temperature", unbatched)
    tk = _prepare_temperature(key_temperature, (B, S, K), "key_temperature", unbatched)
    tv = _prepare_temperature(value_temperature, (B, S, K), "value_temperature", unbatched)
    user_mask = _prepare_mask(mask, B, N, T, S, unbatched)
    qpos = _prepare_positions(query_positions, B, T, "query_positions", unbatched)
    kpos = _prepare_positions(key_positions, B, S, "key_positions", unbatched)
    if (qpos is not None or kpos is not None) and not causal:
        raise ValueError("query_positions/key_positions are only used with causal=True")
    if causal and qpos is None and T != S:
        raise ValueError(f"causal attention with T={T} queries and S={S} keys needs "
                         f"query_positions (absolute positions of the queries)")
    out = _dpa_core(q, k, v, tq, tk, tv, user_mask, qpos, kpos, causal=bool(causal),
                    normalizer=normalizer, k_top=k_top, gamma=gamma, scale=scale,
                    implementation=implementation, topk_method=topk_method)
    return out[0] if unbatched else out


# ----------------------------------------------------------------------------------------------
# layers over parameter pytrees


def _check_dims(d_model: Any, num_heads: Any, head_dim: Any) -> tuple[int, int, int]:
    d_model = check_int_in_range(d_model, "d_model", 1)
    num_heads = check_int_in_range(num_heads, "num_heads", 1)
    if head_dim is None:
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads}) "
                             f"when head_dim is not given")
        head_dim = d_model // num_heads
    head_dim = check_int_in_range(head_dim, "head_dim", 1)
    return d_model, num_heads, head_dim


def init_attention_params(key: jax.Array, d_model: int, num_heads: int, head_dim: int | None = None,
                          *, use_bias: bool = True, dtype: Any = jnp.float32) -> dict:
    r"""Parameters of a multi-head attention layer (a dict pytree).

    ``wq, wk, wv``: ``[d, N, H]`` with entries :math:`\mathcal N(0, 1/d)`; ``wo``: ``[N, H, d]``
    with :math:`\mathcal N(0, 1/(NH))`; with ``use_bias`` also ``bq, bk, bv`` ``[N, H]`` and
    ``bo`` ``[d]``, all zero. Layer: :math:`y = \mathrm{Attn}(xW_q+b_q, xW_k+b_k, xW_v+b_v)W_o+b_o`.

    Args:
        key: PRNG key.
        d_model: model width ``d``.
        num_heads: ``N``.
        head_dim: ``H`` (default ``d // N``).
        use_bias: include biases.
        dtype: parameter dtype.

    Returns:
        Dict of arrays.

    Example:
        >>> import jax
        >>> p = init_attention_params(jax.random.PRNGKey(0), 8, 2)
        >>> sorted(p), p["wq"].shape, p["wo"].shape
        (['bk', 'bo', 'bq', 'bv', 'wk', 'wo', 'wq', 'wv'], (8, 2, 4), (2, 4, 8))
    """
    d, N, H = _check_dims(d_model, num_heads, head_dim)
    return _init_attention_arrays(key, d, N, H, bool(use_bias), jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _init_attention_arrays(key, d, N, H, use_bias, dtype):
    # jitted: one compilation per shape instead of one per eager random op
    kq, kk, kv, ko = jax.random.split(key, 4)
    p = {
        "wq": jax.random.normal(kq, (d, N, H), dtype) / math.sqrt(d),
        "wk": jax.random.normal(kk, (d, N, H), dtype) / math.sqrt(d),
        "wv": jax.random.normal(kv, (d, N, H), dtype) / math.sqrt(d),
        "wo": jax.random.normal(ko, (N, H, d), dtype) / math.sqrt(N * H),
    }
    if use_bias:
        p.update(bq=jnp.zeros((N, H), dtype), bk=jnp.zeros((N, H), dtype),
                 bv=jnp.zeros((N, H), dtype), bo=jnp.zeros((d,), dtype))
    return p


def _check_attention_params(params: Mapping[str, Any], x: jax.Array) -> tuple[int, int, int]:
    for name in ("wq", "wk", "wv"):
        if name not in params:
            raise ValueError(f"params is missing {name!r} (see init_attention_params)")
    d, N, H = np.shape(params["wq"])
    if x.shape[-1] != d:
        raise ValueError(f"x has width {x.shape[-1]} but params['wq'] expects {d}")
    for name in ("wk", "wv"):
        if np.shape(params[name]) != (d, N, H):
            raise ValueError(f"params[{name!r}] must have shape {(d, N, H)}, got {np.shape(params[name])}")
    if "wo" in params and np.shape(params["wo"]) != (N, H, d):
        raise ValueError(f"params['wo'] must have shape {(N, H, d)}, got {np.shape(params['wo'])}")
    return d, N, H


def _project(params: Mapping[str, Any], x: jax.Array, name: str) -> jax.Array:
    y = jnp.einsum("btd,dnh->btnh", x, params["w" + name].astype(x.dtype))
    b = params.get("b" + name)
    return y if b is None else y + b.astype(x.dtype)


def _output(params: Mapping[str, Any], o: jax.Array) -> jax.Array:
    if "wo" not in params:
        return o.reshape(o.shape[:2] + (-1,))  # concatenated heads
    y = jnp.einsum("btnh,nhd->btd", o, params["wo"].astype(o.dtype))
    b = params.get("bo")
    return y if b is None else y + b.astype(o.dtype)


def _prepare_x(x: Any) -> tuple[jax.Array, bool]:
    x = as_float_array(x, "x")
    if x.ndim not in (2, 3):
        raise ValueError(f"x must have shape [batch, T, d] or [T, d], got {x.shape}")
    if x.shape[-2] < 1:
        raise ValueError(f"x must hold at least one token, got shape {x.shape}")
    return (x[None], True) if x.ndim == 2 else (x, False)


def _prepare_layer_positions(positions: Any, B: int, T: int, unbatched: bool):
    """``positions``: a static int offset (tokens at offset..offset+T-1) or an int array."""
    if isinstance(positions, (numbers.Integral, np.integer)) and not isinstance(positions, bool):
        off = check_int_in_range(positions, "positions", 0)
        return jnp.broadcast_to(jnp.arange(off, off + T, dtype=jnp.int32), (B, T)), off
    if positions is None:
        raise ValueError("positions is required: absolute 0-based positions of the tokens, as an "
                         "int offset or an integer array [T] / [B, T]")
    return _prepare_positions(positions, B, T, "positions", unbatched), None


def _check_cache(cache: Any, B: int, N: int, H: int, dtype) -> tuple:
    if cache is None:
        return None
    if not isinstance(cache, Mapping) or not {"k", "v", "positions"} <= set(cache):
        raise ValueError("cache must be a dict with keys 'k', 'v', 'positions' (as returned with "
                         "return_cache=True)")
    ck, cv, cp = cache["k"], cache["v"], cache["positions"]
    if np.ndim(ck) != 4 or np.shape(ck)[0] != B or np.shape(ck)[2:] != (N, H) or np.shape(cv) != np.shape(ck):
        raise ValueError(f"cache['k'] and cache['v'] must have shape [{B}, S0, {N}, {H}], got "
                         f"{np.shape(ck)} and {np.shape(cv)}")
    S0 = np.shape(ck)[1]
    cp = _prepare_positions(cp, B, S0, "cache['positions']", False)
    return jnp.asarray(ck).astype(dtype), jnp.asarray(cv).astype(dtype), cp


def multi_head_attention(params: Mapping[str, Any], x: Any, *, positions: Any = 0,
                         causal: bool = False, mask: Any = None, normalizer: str = "softmax",
                         k_top: int | None = None, gamma: float | None = None,
                         scale: float | None = None, implementation: str | None = None,
                         topk_method: str | None = None, cache: Mapping[str, Any] | None = None,
                         return_cache: bool = False):
    r"""Multi-head self-attention layer :math:`y = \mathrm{Attn}(xW_q, xW_k, xW_v)\,W_o` (+ biases).

    The attention core is :func:`dot_product_attention` (any normaliser and mask). Without
    ``wo`` in ``params`` the heads are concatenated instead of projected.

    Args:
        params: dict from :func:`init_attention_params` (``wq, wk, wv`` ``[d, N, H]``; optional
          ``wo`` ``[N, H, d]`` and biases).
        x: tokens ``[B, T, d]`` or ``[T, d]``.
        positions: absolute 0-based positions of the tokens: an int offset (static) or an
          integer array ``[T]``/``[B, T]``. Only used for causal masking.
        causal, mask, normalizer, k_top, gamma, scale, implementation, topk_method: as in
          :func:`dot_product_attention`.
        cache: optional ``{"k", "v", "positions"}`` of earlier tokens (keys and values as
          projected, ``[B, S0, N, H]``); the tokens of ``x`` attend to them and to themselves.
        return_cache: also return the cache extended with this chunk.

    Returns:
        ``y`` of shape ``x.shape[:-1] + (d,)`` (or ``(N*H,)`` without ``wo``), and the new cache
        when ``return_cache``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> p = init_attention_params(jax.random.PRNGKey(0), 8, 2)
        >>> x = jax.random.normal(jax.random.PRNGKey(1), (6, 8))
        >>> y = multi_head_attention(p, x, causal=True)
        >>> y1, c = multi_head_attention(p, x[:4], causal=True, return_cache=True)
        >>> y2 = multi_head_attention(p, x[4:], positions=4, causal=True, cache=c)
        >>> bool(jnp.allclose(jnp.concatenate([y1, y2]), y, atol=1e-6))
        True
    """
    return _layer(params, x, positions=positions, causal=causal, mask=mask, normalizer=normalizer,
                  k_top=k_top, gamma=gamma, scale=scale, implementation=implementation,
                  topk_method=topk_method, cache=cache, return_cache=return_cache, ssa=None)


# ----------------------------------------------------------------------------------------------
# Selective Self-Attention


_TEMPERATURE_SITES = ("query", "value", "key")
_IDENTITY_ALPHA = {"sigmoid": -7.0, "double_exp": 2.0, "linear": 0.0}
_REPRODUCTION_ALPHA = {"sigmoid": 0.0, "double_exp": 1.5, "linear": 0.1}


@dataclasses.dataclass(frozen=True)
class SSAConfig:
    r"""Shape and switches of a Selective Self-Attention layer (hashable, static under ``jit``).

    The inverse temperature of token :math:`i` at a site (query, value, key) is

    .. math::
        \tau = \underbrace{1 + g(\alpha)\ln n_i}_{\text{position part}}
        + \underbrace{\tanh f(x_i)}_{\text{token part}}
        \qquad (:func:`softmax_stability.temperature.ssa_temperature`),

    :math:`g` the ``parametrisation`` (``"sigmoid"``: reproductions [3P]; ``"double_exp"``
    :math:`e^{-e^\alpha}`: the official code; ``"linear"``: its ``no_func`` ablation).

    Attributes:
      d_model: model width ``d``.
      num_heads: ``N``.
      head_dim: ``H`` (default ``d // N``).
      use_bias: projections with biases.
      query, value, key: which temperatures exist (SSA: query and value; key optional).
      position: include the position part (else :math:`\tau = 1 + \tanh f`).
      token: include the token part (else :math:`\tau = 1 + g\ln n`).
      parametrisation: ``"sigmoid"``, ``"double_exp"`` or ``"linear"``.
      weight_sharing: token part :math:`f(x) = u_h^\top\operatorname{GELU}(W_h^\top x + b_h)`
        reusing the site's own projection (only :math:`u_h\in\mathbb R^H` per head is new), or
        (False) a separate MLP :math:`f(x) = U^\top\operatorname{GELU}(W_1^\top x + b_1)` with
        ``mlp_hidden`` units and one output per head.
      mlp_hidden: hidden width of the separate MLP.
      alpha_per_head: one :math:`\alpha` per head instead of one per layer and site.
    """

    d_model: int
    num_heads: int
    head_dim: int | None = None
    use_bias: bool = True
    query: bool = True
    value: bool = True
    key: bool = False
    position: bool = True
    token: bool = True
    parametrisation: str = "sigmoid"
    weight_sharing: bool = True
    mlp_hidden: int = 32
    alpha_per_head: bool = False

    def __post_init__(self):
        d, N, H = _check_dims(self.d_model, self.num_heads, self.head_dim)
        object.__setattr__(self, "head_dim", H)
        check_choice(self.parametrisation, "parametrisation", temperature.PARAMETRISATIONS)
        check_int_in_range(self.mlp_hidden, "mlp_hidden", 1)
        for name in ("use_bias", "query", "value", "key", "position", "token", "weight_sharing",
                     "alpha_per_head"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")

    @property
    def sites(self) -> tuple[str, ...]:
        """The enabled temperature sites, in the order query, value, key."""
        return tuple(s for s in _TEMPERATURE_SITES if getattr(self, s))


def init_ssa_params(key: jax.Array, config: SSAConfig, *, init: str = "identity",
                    alpha: float | None = None, base: Mapping[str, Any] | None = None,
                    dtype: Any = jnp.float32) -> dict:
    r"""Parameters of an SSA layer: attention projections plus ``params["temperature"][site]``.

    Per enabled site: ``alpha`` (scalar, or ``[N]`` with ``alpha_per_head``) when the position
    part is on; ``u`` ``[N, H]`` (weight sharing) or ``w1 [d, m]``, ``b1 [m]``, ``u [m, N]``
    (separate MLP) when the token part is on.

    ``init="identity"`` (fine-tuning an existing model): ``u = 0`` so the token part is exactly 0,
    and a small position gain: ``double_exp`` :math:`\alpha=2` (:math:`g=6.18\times10^{-4}`, the
    official fine-tuning init), ``sigmoid`` :math:`\alpha=-7` (:math:`g=9.1\times10^{-4}`, chosen
    here to match it), ``linear`` :math:`\alpha=0` (:math:`\tau\equiv1` exactly).
    ``init="reproduction"``: ``u`` Xavier-uniform and ``sigmoid`` :math:`\alpha=0` (the ViT
    reproduction, docs/notes/selective_attention.md §1.5 [3P]); ``double_exp`` :math:`\alpha=1.5` (official GPT-2 PTS init);
    ``linear`` :math:`\alpha=0.1` (chosen here).

    Args:
        key: PRNG key.
        config: :class:`SSAConfig`.
        init: ``"identity"`` or ``"reproduction"``.
        alpha: override the initial :math:`\alpha` (finite).
        base: existing attention parameters to start from (e.g. a pretrained layer; must match
          the config's shapes); by default fresh :func:`init_attention_params`.
        dtype: parameter dtype.

    Returns:
        Dict pytree.

    Example:
        >>> import jax
        >>> p = init_ssa_params(jax.random.PRNGKey(0), SSAConfig(8, 2))
        >>> sorted(p["temperature"]), sorted(p["temperature"]["query"]), p["temperature"]["query"]["u"].shape
        (['query', 'value'], ['alpha', 'u'], (2, 4))
    """
    if not isinstance(config, SSAConfig):
        raise TypeError(f"config must be an SSAConfig, got {type(config).__name__}")
    check_choice(init, "init", ("identity", "reproduction"))
    d, N, H = config.d_model, config.num_heads, config.head_dim
    alpha = _initial_alpha(config, init, alpha)
    k_base, k_temp = jax.random.split(key)
    if base is None:
        params = init_attention_params(k_base, d, N, H, use_bias=config.use_bias, dtype=dtype)
    else:
        params = {name: jnp.asarray(val) for name, val in base.items() if name != "temperature"}
        _check_attention_params(params, jnp.zeros((1, 1, d)))
        if np.shape(params["wq"]) != (d, N, H):
            raise ValueError(f"base['wq'] must have shape {(d, N, H)} for this config, got "
                             f"{np.shape(params['wq'])}")
    params["temperature"] = _init_temperature_arrays(k_temp, config, init, float(alpha), jnp.dtype(dtype))
    return params


def _initial_alpha(config: SSAConfig, init: str, alpha: float | None) -> float:
    """The initial position gain of :func:`init_ssa_params` (``alpha`` checked, or ``init``'s)."""
    if alpha is None:
        return (_IDENTITY_ALPHA if init == "identity" else _REPRODUCTION_ALPHA)[config.parametrisation]
    if isinstance(alpha, jax.core.Tracer) or not math.isfinite(float(alpha)):
        raise ValueError(f"alpha must be a finite Python number, got {alpha!r}")
    return alpha


def _init_ssa_temperatures(key: jax.Array, config: SSAConfig, init: str = "identity",
                           alpha: float | None = None, dtype: Any = jnp.float32) -> dict:
    """``init_ssa_params(key, config, ...)["temperature"]`` without creating the attention
    projections (the framework layers own theirs): the same arrays, from the same key."""
    check_choice(init, "init", ("identity", "reproduction"))
    alpha = _initial_alpha(config, init, alpha)
    k_temp = jax.random.split(key)[1]
    return _init_temperature_arrays(k_temp, config, init, float(alpha), jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _init_temperature_arrays(k_temp, config, init, alpha, dtype):
    d, N, H = config.d_model, config.num_heads, config.head_dim
    temps = {}
    for site, ks in zip(config.sites, jax.random.split(k_temp, max(1, len(config.sites)))):
        t = {}
        if config.position:
            shape = (N,) if config.alpha_per_head else ()
            t["alpha"] = jnp.full(shape, alpha, dtype)
        if config.token:
            k1, k2 = jax.random.split(ks)
            if config.weight_sharing:
                shape, fan = (N, H), (H, 1)
            else:
                m = config.mlp_hidden
                t["w1"] = jax.random.normal(k1, (d, m), dtype) / math.sqrt(d)
                t["b1"] = jnp.zeros((m,), dtype)
                shape, fan = (m, N), (m, 1)
            if init == "identity":
                t["u"] = jnp.zeros(shape, dtype)
            else:
                lim = math.sqrt(6.0 / sum(fan))
                t["u"] = jax.random.uniform(k2, shape, dtype, -lim, lim)
        temps[site] = t
    return temps


def _token_logit(t: Mapping[str, Any], x: jax.Array, projected: jax.Array, shared: bool) -> jax.Array:
    """f(x) per token and head, [B, L, N]."""
    if shared:  # u_h . GELU(projected_h): reuses the layer's projection
        g = temperature.gelu(projected)
        return jnp.einsum("blnh,nh->bln", g, t["u"].astype(g.dtype))
    h = temperature.gelu(x @ t["w1"].astype(x.dtype) + t["b1"].astype(x.dtype))
    return h @ t["u"].astype(x.dtype)


def _check_schedule(schedule: Callable, n_max: int, token: bool) -> None:
    with jax.ensure_compile_time_eval():
        vals = schedule(np.arange(1, n_max + 1, dtype=np.float64))
    if isinstance(vals, jax.core.Tracer):
        return
    vals = np.asarray(vals, dtype=np.float64)
    lo = 1.0 if token else 0.0
    bad = ~np.isfinite(vals) | (vals <= 0) | (vals < lo)
    if np.any(bad):
        n_bad = int(np.argmax(bad)) + 1
        need = ">= 1 (the token part tanh f can subtract up to 1)" if token else "> 0"
        raise ValueError(f"position_schedule must give finite temperatures {need} for n = 1..{n_max}; "
                         f"got {vals[n_bad - 1]!r} at n = {n_bad}")


def _check_gain(t: Mapping[str, Any], config: SSAConfig, n_max: int, site: str) -> None:
    """A concrete 'linear' gain can make 1 + g ln n non-positive: refuse before tracing."""
    a = t.get("alpha")
    if a is None or not is_concrete(a) or config.parametrisation != "linear":
        return
    g = np.min(np.asarray(a, np.float64))
    tau_min = 1.0 + min(g, 0.0) * math.log(n_max)
    if (config.token and tau_min < 1.0) or tau_min <= 0.0:
        raise ValueError(f"the {site} temperature 1 + alpha ln n reaches {tau_min:.4g} at n = {n_max} "
                         f"(alpha = {g:.4g}); it must stay {'>= 1 with the token part' if config.token else '> 0'}")


def ssa_temperatures(params: Mapping[str, Any], x: Any, *, config: SSAConfig, n_query: Any,
                     n_key: Any, projected: Mapping[str, jax.Array] | None = None,
                     position_schedule: Callable | None = None) -> dict:
    r"""The SSA inverse temperatures of each enabled site, ``[B, L, N]`` each.

    :math:`\tau = \tau^{\mathrm{pos}}(n) + \tanh f(x)` with
    :math:`\tau^{\mathrm{pos}}(n) = 1 + g(\alpha)\ln n`
    (:func:`softmax_stability.temperature.ssa_temperature`) or a user ``position_schedule(n)``.
    The query site uses :math:`n` = keys visible to the query (``n_query``); the value and key
    sites use ``n_key`` (a causal token at position :math:`j` has :math:`n = j + 1`; reconstruction,
    [3P]). A site whose parts are both off has :math:`\tau\equiv1` and is omitted.

    Args:
        params: from :func:`init_ssa_params`.
        x: tokens ``[B, L, d]``.
        config: the :class:`SSAConfig`.
        n_query: visible keys per query, broadcastable to ``[B, L, 1]``.
        n_key: the ``n`` of each token as a key/value, broadcastable to ``[B, L, 1]``.
        projected: ``{"query": q, "value": v, "key": k}`` projections ``[B, L, N, H]`` (computed
          when missing).
        position_schedule: optional callable ``n -> tau_pos`` replacing :math:`1 + g\ln n`.

    Returns:
        ``{site: tau}`` for the sites with a position or token part.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> cfg = SSAConfig(8, 2, parametrisation="double_exp", token=False)
        >>> p = init_ssa_params(jax.random.PRNGKey(0), cfg)
        >>> t = ssa_temperatures(p, jnp.ones((1, 2, 8)), config=cfg, n_query=jnp.array([[[1], [2048]]]),
        ...                      n_key=jnp.array([[[1], [2048]]]))
        >>> [round(float(v), 6) for v in t["query"][0, :, 0]]
        [1.0, 1.004712]
    """
    x3 = as_float_array(x, "x")
    x3 = x3[None] if x3.ndim == 2 else x3
    out = {}
    temps = params.get("temperature", {})
    letter = {"query": "q", "value": "v", "key": "k"}
    for site in config.sites:
        if not (config.position or config.token):
            continue
        if site not in temps:
            raise ValueError(f"params['temperature'] has no {site!r} entry (see init_ssa_params)")
        t = temps[site]
        n = n_query if site == "query" else n_key
        logit = None
        if config.token:
            proj = (projected or {}).get(site)
            if proj is None and config.weight_sharing:
                proj = _project(params, x3, letter[site])
            logit = _token_logit(t, x3, proj, config.weight_sharing)
        if position_schedule is not None:
            # the schedule sees n as floats of the activations' precision (not int32)
            tau = jnp.asarray(position_schedule(jnp.asarray(n).astype(
                jnp.promote_types(x3.dtype, jnp.float32))))
            tau = tau if logit is None else tau + temperature.token_temperature(logit)
        elif config.position:
            # the gain in the activations' precision (float32 params must not cap a float64 layer)
            alpha = jnp.asarray(t["alpha"]).astype(jnp.promote_types(x3.dtype, jnp.float32))
            tau = temperature.ssa_temperature(n, alpha, logit, parametrisation=config.parametrisation)
        else:
            # 1 + tanh f as 2 sigmoid(2f): the same function, without rounding to 0 for f <= -19.1
            tau = 2.0 * jax.nn.sigmoid(2.0 * logit)
        out[site] = jnp.broadcast_to(tau, x3.shape[:2] + (config.num_heads,))
    return out


def _ssa_counts(user_mask, causal: bool, qpos, kpos, site_pos, N: int):
    """The :math:`n` of SSA's position temperature: ``(n_query [B, T, N or 1], n_key [B, L, 1])``.

    A query's :math:`n` is the number of keys it sees (causal: absolute position + 1; with a mask:
    the count, at least 1; otherwise all ``S`` keys); a key/value token's :math:`n` is its
    absolute position + 1 when causal, else ``S``. ``qpos [B, T]``, ``kpos [B, S]`` are the
    positions of the queries and of every key, ``site_pos [B, L]`` those of the tokens whose
    key/value temperatures are computed.
    """
    B, T = qpos.shape
    S = kpos.shape[1]
    if user_mask is not None:
        vis = jnp.broadcast_to(user_mask, (B, N, T, S))
        if causal:
            vis = vis & _causal_position_mask(qpos, kpos)
        n_query = jnp.maximum(jnp.sum(vis, axis=-1), 1).transpose(0, 2, 1)  # [B, T, N]
    elif causal:
        n_query = (qpos + 1)[..., None]
    else:
        n_query = jnp.full((1, 1, 1), S)
    n_key = (site_pos + 1)[..., None] if causal else jnp.full((1, 1, 1), S)
    return n_query, n_key


def _layer(params, x, *, positions, causal, mask, normalizer, k_top, gamma, scale,
           implementation, topk_method, cache, return_cache, ssa, position_schedule=None):
    """Eager checks of a layer call, then the jitted computation :func:`_layer_core`."""
    x, unbatched = _prepare_x(x)
    d, N, H = _check_attention_params(params, x)
    B, T, _ = x.shape
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal must be a bool, got {causal!r}")
    check_choice(normalizer, "normalizer", NORMALIZERS)
    check_choice(implementation, "implementation", IMPLEMENTATIONS)
    if topk_method is not None:
        check_choice(topk_method, "topk_method", TOPK_METHODS)
    scale = _check_scale(scale)
    pos, static_off = _prepare_layer_positions(positions, B, T, unbatched)
    c = _check_cache(cache, B, N, H, x.dtype)
    S = T + (0 if c is None else c[0].shape[1])
    k_top, gamma = _check_sparsity_args(normalizer, k_top, gamma, S)
    user_mask = None if mask is None else _prepare_mask(mask, B, N, T, S, unbatched)
    if ssa is not None:
        # largest n any temperature will see (for the eager schedule checks)
        if static_off is not None:
            n_max = max(S, static_off + T)
        elif is_concrete(pos):
            n_max = max(S, int(jnp.max(pos)) + 1)
        else:
            n_max = S
        if position_schedule is not None:
            _check_schedule(position_schedule, n_max, ssa.token)
        for site in ssa.sites:
            _check_gain(params.get("temperature", {}).get(site, {}), ssa, n_max, site)
            if (ssa.position or ssa.token) and site not in params.get("temperature", {}):
                raise ValueError(f"params['temperature'] has no {site!r} entry (see init_ssa_params)")
    use_positions = bool(causal) and (c is not None or static_off is None)
    y, new = _layer_core(dict(params), x, pos, c, user_mask, causal=bool(causal),
                         normalizer=normalizer, k_top=k_top, gamma=gamma, scale=scale,
                         implementation=implementation, topk_method=topk_method, ssa=ssa,
                         position_schedule=position_schedule, use_positions=use_positions)
    y = y[0] if unbatched else y
    return (y, new) if return_cache else y


@functools.partial(jax.jit, static_argnames=("causal", "normalizer", "k_top", "gamma", "scale",
                                              "implementation", "topk_method", "ssa",
                                              "position_schedule", "use_positions"))
def _layer_core(params, x, pos, c, user_mask, *, causal, normalizer, k_top, gamma, scale,
                implementation, topk_method, ssa, position_schedule, use_positions):
    B, T, _ = x.shape
    N = params["wq"].shape[1]
    q = _project(params, x, "q")
    k = _project(params, x, "k")
    v = _project(params, x, "v")
    S = T + (0 if c is None else c[0].shape[1])
    kpos = pos if c is None else jnp.concatenate([c[2], pos], axis=1)
    tq = None
    if ssa is not None:
        n_query, n_key = _ssa_counts(user_mask, causal, pos, kpos, pos, N)
        taus = ssa_temperatures(params, x, config=ssa, n_query=n_query, n_key=n_key,
                                projected={"query": q, "value": v, "key": k},
                                position_schedule=position_schedule)
        tq = taus.get("query")
        k = _fold(k, taus.get("key"))  # cached keys/values carry their own temperatures
        v = _fold(v, taus.get("value"))
    if c is not None:
        k = jnp.concatenate([c[0], k], axis=1)
        v = jnp.concatenate([c[1], v], axis=1)
    out = dot_product_attention(
        q, k, v, normalizer=normalizer, k_top=k_top, gamma=gamma, mask=user_mask, causal=causal,
        scale=scale, query_temperature=tq,
        query_positions=pos if use_positions else None,
        key_positions=kpos if use_positions else None,
        implementation=implementation, topk_method=topk_method)
    return _output(params, out), {"k": k, "v": v, "positions": kpos}


def selective_self_attention(params: Mapping[str, Any], x: Any, *, positions: Any,
                             config: SSAConfig, causal: bool = True, mask: Any = None,
                             normalizer: str = "softmax", k_top: int | None = None,
                             gamma: float | None = None, scale: float | None = None,
                             implementation: str | None = None, topk_method: str | None = None,
                             position_schedule: Callable | None = None,
                             cache: Mapping[str, Any] | None = None, return_cache: bool = False):
    r"""Selective Self-Attention layer (Zhang et al., NeurIPS 2024), multi-head, over a params pytree.

    .. math::
        y_i = \sum_j \xi_j\!\Big(\tau_q(x_i, n_i)\,\tfrac{q_i^\top k_j}{\sqrt{H}}\Big)\,
        \tau_v(x_j, n_j)\, v_j\; W_o, \qquad
        \tau = 1 + g(\alpha)\ln n + \tanh f(x),

    per head, with :math:`q = xW_q + b_q` etc. The query temperature is folded into ``q`` and
    the value temperature into ``v``, so the softmax path stays
    :func:`jax.nn.dot_product_attention`. :math:`n_i` is the number of keys visible to query
    :math:`i` -- with causal masking its absolute position + 1 (the official code's
    ``row_length = arange(1, T+1)``), with a ``mask`` the count of its visible keys, otherwise
    the number of keys; the value/key temperature of token :math:`j` uses :math:`n_j = j + 1`
    (causal) or the number of keys.

    **Absolute positions.** Running a sequence in chunks (``return_cache`` then ``cache``, with
    ``positions`` giving each chunk's offset) gives the same outputs as running it whole: the
    temperature uses the absolute position, not the index inside the chunk. (The official code
    indexes its factor with the query length under a KV cache and so loses the scaling;
    docs/notes/selective_attention.md §1.7.)

    With ``position=False`` and ``token=False`` (or :math:`g = 0`, :math:`u = 0`) the layer is
    vanilla attention exactly (claim ``A2-ssa-unit-temperature``).

    Source: SSA arXiv:2411.12892; the query/value temperature, additive combination and weight
    sharing are as reconstructed in docs/notes/selective_attention.md §1.2-1.4 ([3P], **unconfirmed** against the paper);
    the ``double_exp`` position gain is the official code's.

    Args:
        params: from :func:`init_ssa_params`.
        x: tokens ``[B, T, d]`` or ``[T, d]``.
        positions: absolute 0-based positions: an int offset (tokens at ``offset .. offset+T-1``;
          static, keeps the kernel's causal fast path) or an integer array ``[T]``/``[B, T]``.
        config: the :class:`SSAConfig` the params were built with.
        causal: causal masking (default True).
        mask, normalizer, k_top, gamma, scale, implementation, topk_method: as in
          :func:`dot_product_attention`.
        position_schedule: optional user schedule ``n -> tau_pos`` (e.g.
          ``lambda n: temperature.ssmax(n, 0.4) + 1``) replacing :math:`1 + g(\alpha)\ln n`;
          checked eagerly on ``n = 1..S``: it must be finite and ``> 0`` (``>= 1`` with the token
          part, so that :math:`\tau > 0`).
        cache: keys/values/positions of earlier tokens (from ``return_cache=True``); keys and
          values are stored with their temperatures applied.
        return_cache: also return the extended cache.

    Returns:
        ``y`` of shape ``x.shape``, and the new cache when ``return_cache``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> cfg = SSAConfig(8, 2)
        >>> p = init_ssa_params(jax.random.PRNGKey(0), cfg, init="reproduction")
        >>> x = jax.random.normal(jax.random.PRNGKey(1), (6, 8))
        >>> y = selective_self_attention(p, x, positions=0, config=cfg)
        >>> y1, c = selective_self_attention(p, x[:4], positions=0, config=cfg, return_cache=True)
        >>> y2 = selective_self_attention(p, x[4:], positions=4, config=cfg, cache=c)
        >>> bool(jnp.allclose(jnp.concatenate([y1, y2]), y, atol=1e-5))
        True
    """
    if not isinstance(config, SSAConfig):
        raise TypeError(f"config must be an SSAConfig, got {type(config).__name__}")
    if position_schedule is not None and not callable(position_schedule):
        raise TypeError("position_schedule must be a callable n -> tau_pos")
    if position_schedule is not None and not config.position:
        raise ValueError("position_schedule replaces the position part; it needs config.position=True")
    return _layer(params, x, positions=positions, causal=causal, mask=mask, normalizer=normalizer,
                  k_top=k_top, gamma=gamma, scale=scale, implementation=implementation,
                  topk_method=topk_method, cache=cache, return_cache=return_cache, ssa=config,
                  position_schedule=position_schedule)


# ----------------------------------------------------------------------------------------------
# parameter counts


def attention_parameter_count(config: SSAConfig) -> int:
    """Parameters of the plain attention layer of ``config``: :math:`4dNH` (+ :math:`3NH + d` biases).

    Example:
        >>> attention_parameter_count(SSAConfig(768, 12))   # GPT-2 small c_attn + c_proj
        2362368
    """
    d, N, H = config.d_model, config.num_heads, config.head_dim
    return 4 * d * N * H + (3 * N * H + d if config.use_bias else 0)


def ssa_new_parameter_count(config: SSAConfig) -> int:
    r"""New parameters SSA adds to one attention layer.

    Per enabled site: :math:`\alpha` (1, or :math:`N` per head) with the position part; with the
    token part :math:`NH` (:math:`u_h` per head, weight sharing) or :math:`dm + m + mN` (separate
    MLP with :math:`m` hidden units).

    Example:
        >>> ssa_new_parameter_count(SSAConfig(768, 12))   # 2 * (768 + 1), docs/notes/selective_attention.md §1.4
        1538
    """
    d, N, H = config.d_model, config.num_heads, config.head_dim
    per = 0
    if config.position:
        per += N if config.alpha_per_head else 1
    if config.token:
        m = config.mlp_hidden
        per += N * H if config.weight_sharing else d * m + m + m * N
    return per * len(config.sites)


def transformer_parameter_count(*, vocab_size: int, context: int, d_model: int, num_layers: int,
                                mlp_ratio: int = 4, tied_embeddings: bool = True) -> int:
    r"""Parameters of a GPT-2-style decoder (learned positions, biases, two LayerNorms per block).

    .. math::
        Vd + Cd + L\,(4d^2 + 4d + 2 r d^2 + (r + 1) d + 4d) + 2d \;(+ Vd \text{ if untied}).

    Example:
        >>> transformer_parameter_count(vocab_size=50257, context=1024, d_model=768, num_layers=12)
        124439808
    """
    V = check_int_in_range(vocab_size, "vocab_size", 1)
    C = check_int_in_range(context, "context", 1)
    d = check_int_in_range(d_model, "d_model", 1)
    L = check_int_in_range(num_layers, "num_layers", 1)
    r = check_int_in_range(mlp_ratio, "mlp_ratio", 1)
    block = (4 * d * d + 4 * d) + (2 * r * d * d + r * d + d) + 4 * d
    return V * d + C * d + L * block + 2 * d + (0 if tied_embeddings else V * d)


def ssa_parameter_overhead(config: SSAConfig, *, num_layers: int = 1,
                           model_parameters: int | None = None) -> float:
    r"""SSA's new parameters as a share of the model: :math:`L\cdot` :func:`ssa_new_parameter_count`
    divided by ``model_parameters`` (default: the attention layers alone,
    :math:`L\cdot` :func:`attention_parameter_count`).

    The SSA abstract (arXiv v1) states "fewer than 0.5% new parameters" with weight sharing.

    Args:
        config: the layer config.
        num_layers: number of SSA layers ``L``.
        model_parameters: parameter count of the whole model (e.g. from
          :func:`transformer_parameter_count`).

    Returns:
        The share as a float (0.005 = 0.5%).

    Example:
        >>> n = transformer_parameter_count(vocab_size=50257, context=1024, d_model=768, num_layers=12)
        >>> f"{ssa_parameter_overhead(SSAConfig(768, 12), num_layers=12, model_parameters=n):.4%}"
        '0.0148%'
    """
    if not isinstance(config, SSAConfig):
        raise TypeError(f"config must be an SSAConfig, got {type(config).__name__}")
    L = check_int_in_range(num_layers, "num_layers", 1)
    if model_parameters is None:
        model_parameters = L * attention_parameter_count(config)
    model_parameters = check_int_in_range(model_parameters, "model_parameters", 1)
    return L * ssa_new_parameter_count(config) / model_parameters
