r"""Top-k selection: the one place that selects the k largest entries of a row.

Every top-k selection of the library goes through this module: the heavy-hitter map
:func:`softmax_stability.maps.topk_softmax`, the mask :func:`softmax_stability.masks.topk_mask`,
top-k and top-:math:`n^\gamma` attention (:mod:`softmax_stability.attention`), the SF statistics
(:mod:`softmax_stability.focus`) and the dilution metrics (:mod:`softmax_stability.dilution`).

**Tie rules.** Along the last axis of :math:`z \in \mathbb R^n`, with :math:`1 \le k \le n`, let
:math:`t_k(z) = \max\{t : \#\{i : z_i \ge t\} \ge k\}` be the :math:`k`-th largest value counted
with multiplicity (:func:`kth_largest`). Two selections are offered, chosen by ``ties``:

.. math::
    T_k^{\mathrm{index}}(z) = \{\, j : \#\{i : z_i > z_j\} + \#\{i < j : z_i = z_j\} < k \,\},
    \qquad
    T_k^{\mathrm{keep}}(z) = \{\, j : z_j \ge t_k(z) \,\}.

``ties="index"`` keeps exactly :math:`k` entries: at a tie with the :math:`k`-th largest value the
lowest indices win (deterministic; ``torch.topk`` leaves the order unspecified). It is the rule of
:func:`softmax_stability.maps.topk_softmax`, :func:`softmax_stability.masks.topk_mask` and the SF
statistics. ``ties="keep"`` keeps every entry tied with the :math:`k`-th largest, so
:math:`|T_k^{\mathrm{keep}}| \ge k`, with equality exactly when :math:`z_{(k)} > z_{(k+1)}`; it is
the rule of top-k attention, whose mask is a threshold test :math:`z_j \ge t_k` computed by a fast
kernel. Both sets are equal whenever the :math:`k`-th and :math:`(k+1)`-th largest values differ.
Derivation and examples: docs/derivations/topk_selection.md.

**Special values.** ``-inf`` is a value like any other. ``NaN`` counts as larger than every number:
under ``"index"`` it is above ``+inf`` (NaNs among themselves by index), under ``"keep"`` it counts
as ``+inf`` (it ties with ``+inf`` entries). So a NaN logit is always selected, and a map built on
the selection propagates it. With a boolean ``where`` (``True`` = attend) masked entries are never
selected and the rule applies to the attended entries; a row with at most :math:`k` attended
entries selects all of them, a fully masked row none.

* :func:`topk_mask` -- the selection as a boolean mask, either tie rule.
* :func:`topk_values` -- the :math:`k` largest values of each row, in descending order.
* :func:`kth_largest` -- the threshold :math:`t_k`, by one of three exact methods chosen per
  backend by measurement (``benchmarks/RESULTS.md``): the kernel behind ``ties="keep"``.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from softmax_stability._checks import (
    as_float_array,
    check_choice,
    check_int_in_range,
    check_nonempty,
    check_where,
    is_concrete,
)

__all__ = ["TIES", "TOPK_METHODS", "topk_mask", "topk_values", "kth_largest", "default_topk_method"]

#: The tie rules of :func:`topk_mask`.
TIES = ("index", "keep")

TOPK_METHODS = ("top_k", "max_passes", "bisect")

# CPU threshold search works on row chunks of about this many elements (128 KiB of float32), so
# the repeated passes over a chunk hit the cache (measured: 2-4x faster than whole-array passes).
_CHUNK_ELEMENTS = 32768
# On CPU, k passes of a row max beat a 32-step bisection up to about this k (measured).
_MAX_PASSES_UP_TO_K = 16


def default_topk_method(k_max: int, backend: str | None = None) -> str:
    """The threshold method :func:`kth_largest` uses when ``method`` is None.

    Measured on CPU (``benchmarks/bench_attention.py``, forward + backward, float32, B=4, H=8,
    D=64, 2-core AMD EPYC, JAX 0.10.2; ``benchmarks/RESULTS.md``): for k = 16, ``"max_passes"``
    (k passes of a row max on cache-sized row chunks) is 1.50-1.61x dense attention and
    ``lax.top_k`` 1.30-1.71x; for k = 64, ``"bisect"`` (a fixed number of counting passes,
    independent of k) is 1.57-1.70x, ``lax.top_k`` 1.60-2.28x and ``"max_passes"`` 2.55-2.80x.
    The 17x slowdown of ``lax.top_k`` reported in issue 8 for a forward pass was not seen in
    forward + backward here. Hence ``"max_passes"`` for ``k <= 16`` and ``"bisect"`` above on
    CPU; on other backends ``"top_k"``, a default chosen without measurement (no GPU was
    available to this project yet): ``bench_attention.py`` times all three on a GPU.

    Args:
        k_max: the largest k that will be asked for.
        backend: ``jax.default_backend()`` when None.

    Returns:
        One of :data:`TOPK_METHODS`.

    Example:
        >>> default_topk_method(8, "cpu"), default_topk_method(64, "cpu"), default_topk_method(8, "gpu")
        ('max_passes', 'bisect', 'top_k')
    """
    backend = jax.default_backend() if backend is None else backend
    if backend != "cpu":
        return "top_k"
    return "max_passes" if k_max <= _MAX_PASSES_UP_TO_K else "bisect"


def _ordered_uint(z: jax.Array) -> jax.Array:
    """Map floats to unsigned ints with the same order (-inf lowest; NaN above +inf)."""
    bits = {jnp.float32: (jnp.uint32, 31), jnp.float64: (jnp.uint64, 63)}[z.dtype.type]
    utype, top = bits
    u = lax.bitcast_convert_type(z, utype)
    sign = u >> top
    return jnp.where(sign == 1, ~u, u | utype(1 << top)), utype, top


def _from_ordered_uint(key: jax.Array, dtype, utype, top) -> jax.Array:
    sign = key >> top
    u = jnp.where(sign == 1, key & utype((1 << top) - 1), ~key)
    return lax.bitcast_convert_type(u, dtype)


def _kth_bisect(z: jax.Array, k: jax.Array) -> jax.Array:
    # largest t with #{key >= t} >= k, by bisection on the order-preserving integer keys: exact
    key, utype, top = _ordered_uint(z)
    shape = z.shape[:-1] + (1,)
    lo = jnp.zeros(shape, utype)
    hi = jnp.full(shape, np.iinfo(utype).max, utype)

    def body(_, c):
        lo, hi = c
        d = hi - lo
        mid = lo + (d >> 1) + (d & 1)  # upper midpoint, no overflow
        ok = jnp.sum(key >= mid, axis=-1, keepdims=True, dtype=jnp.int32) >= k
        return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid - 1)

    lo, _ = lax.fori_loop(0, top + 1, body, (lo, hi))
    return _from_ordered_uint(lo, z.dtype, utype, top)


def _kth_max_passes(z: jax.Array, k: jax.Array, k_max: int) -> jax.Array:
    # pass j finds the next smaller distinct value and how often it occurs; the threshold is the
    # value at which the running count first reaches k (ties counted with multiplicity)
    neg = jnp.array(-jnp.inf, z.dtype)
    shape = z.shape[:-1] + (1,)

    def body(_, c):
        thr, cnt, prev = c
        m = jnp.max(jnp.where(~(z >= prev), z, neg), axis=-1, keepdims=True)  # prev = NaN: all
        c_m = jnp.sum(z == m, axis=-1, keepdims=True, dtype=jnp.int32)
        thr = jnp.where(cnt < k, m, thr)
        return thr, cnt + c_m, m

    # the first pass starts above everything, +inf included (z < +inf would skip +inf entries)
    init = (jnp.full(shape, neg), jnp.zeros(shape, jnp.int32), jnp.full(shape, jnp.nan, z.dtype))
    thr, _, _ = lax.fori_loop(0, k_max, body, init)
    return thr


def _kth_top_k(z: jax.Array, k: jax.Array, k_max: int) -> jax.Array:
    vals = lax.top_k(z, k_max)[0]
    idx = jnp.broadcast_to(jnp.clip(k, 1, k_max) - 1, z.shape[:-1] + (1,))
    return jnp.take_along_axis(vals, idx, axis=-1)


def _row_chunked(fn: Callable, z: jax.Array, k: jax.Array) -> jax.Array:
    """Apply ``fn(z_rows, k_rows)`` to cache-sized chunks of rows with ``lax.map``."""
    S = z.shape[-1]
    lead = z.shape[:-1]
    R = int(np.prod(lead, dtype=np.int64)) if lead else 1
    rows = max(1, _CHUNK_ELEMENTS // S)
    if R <= rows:
        return fn(z, k)
    zr = z.reshape(R, S)
    kr = jnp.broadcast_to(k, lead + (1,)).reshape(R, 1)
    pad = (-R) % rows
    if pad:
        zr = jnp.concatenate([zr, jnp.zeros((pad, S), z.dtype)])
        kr = jnp.concatenate([kr, jnp.ones((pad, 1), kr.dtype)])
    out = lax.map(lambda a: fn(a[0], a[1]), (zr.reshape(-1, rows, S), kr.reshape(-1, rows, 1)))
    return out.reshape(-1, 1)[:R].reshape(lead + (1,))


def _kth_largest(z: jax.Array, k: Any, k_max: int, method: str) -> jax.Array:
    k = jnp.asarray(k, jnp.int32)
    if method == "top_k":
        return _kth_top_k(z, k, k_max)
    compute = z.astype(jnp.float32) if z.dtype not in (jnp.float32, jnp.float64) else z
    if method == "bisect":
        fn = _kth_bisect
    else:
        def fn(a, b):
            return _kth_max_passes(a, b, k_max)
    if jax.default_backend() == "cpu":
        out = _row_chunked(fn, compute, k)
    else:
        out = fn(compute, k)
    return out.astype(z.dtype)


def kth_largest(z: Any, k: Any, *, method: str | None = None) -> jax.Array:
    r"""The k-th largest entry of each row (last axis), counting ties with multiplicity.

    .. math::
        t_i = \max\{t : \#\{j : z_{ij} \ge t\} \ge k_i\},

    so :math:`\{j : z_{ij} \ge t_i\}` holds at least :math:`k_i` entries (more only when entries
    tie with the k-th). This is the threshold of top-k attention. ``-inf`` entries count as
    values, so a row with fewer than :math:`k` finite entries gets :math:`t=-\infty`. All three
    methods are exact and agree (tested): ``"top_k"`` (``lax.top_k`` then a gather),
    ``"max_passes"`` (:math:`k` passes of a row max with tie counts) and ``"bisect"`` (bisection on
    the order-preserving integer image of the floats: 32 counting passes in float32, 64 in
    float64). Not differentiable (use it under ``lax.stop_gradient``).

    Args:
        z: array ``(..., n)`` of real values, ``n >= 1``; half-precision values are searched in
            float32.
        k: an int in ``[1, n]``, or an integer array broadcastable to ``z.shape[:-1] + (1,)``
            with values in ``[1, n]`` (one k per row; checked when concrete).
        method: one of :data:`TOPK_METHODS`, or None for :func:`default_topk_method`.

    Returns:
        Array ``z.shape[:-1] + (1,)`` of ``z``'s dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> z = jnp.array([[3.0, 1.0, 3.0, 2.0], [0.0, -jnp.inf, 5.0, 4.0]])
        >>> kth_largest(z, 2).ravel().tolist(), kth_largest(z, 3, method="bisect").ravel().tolist()
        ([3.0, 4.0], [2.0, 0.0])
    """
    z = as_float_array(z, "z")
    if z.ndim < 1 or z.shape[-1] < 1:
        raise ValueError(f"z must have a non-empty last axis, got shape {z.shape}")
    n = z.shape[-1]
    if method is not None:
        check_choice(method, "method", TOPK_METHODS)
    if isinstance(k, (numbers.Integral, np.integer)) and not isinstance(k, bool):
        k_max = check_int_in_range(k, "k", 1, n)
    else:
        if not isinstance(k, jax.core.Tracer):
            k = jnp.asarray(k)
        if not jnp.issubdtype(k.dtype, jnp.integer):
            raise TypeError(f"k must be an int or an integer array, got dtype {k.dtype}")
        try:
            ok = np.broadcast_shapes(k.shape, z.shape[:-1] + (1,)) == z.shape[:-1] + (1,)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"k must be broadcastable to {z.shape[:-1] + (1,)}, got shape {k.shape}")
        if is_concrete(k) and k.size and (int(jnp.min(k)) < 1 or int(jnp.max(k)) > n):
            raise ValueError(f"k must be in [1, {n}], got values in [{int(jnp.min(k))}, {int(jnp.max(k))}]")
        k_max = n
    method = default_topk_method(k_max) if method is None else method
    return _kth_largest(z, k, k_max, method)



# ----------------------------------------------------------------------------------------------
# the selections (unchecked cores along the last axis; the public functions validate first)


def _index_mask(x: jax.Array, k: int, w: jax.Array | None = None) -> jax.Array:
    """``ties="index"`` along the last axis, ``1 <= k <= n`` static; no validation.

    Built from the k-th largest *value* and counts, so it does not depend on any sort's index
    order: O(n) plus one ``lax.top_k``. ``w`` (boolean, broadcast to ``x``) restricts the
    selection to attended entries.
    """
    x = lax.stop_gradient(x)  # a selection: no derivative flows through it
    isnan = jnp.isnan(x)
    if w is None:
        ok = ~isnan
    else:
        isnan = isnan & w
        ok = w & ~isnan
    n_nan = jnp.sum(isnan, axis=-1, keepdims=True)
    y = jnp.where(ok, x, -jnp.inf)
    top_vals = lax.top_k(y, k)[0]
    # value of rank k - n_nan among the non-NaN entries (NaNs moved to -inf cannot outrank it)
    rank = jnp.clip(k - n_nan, 1, k) - 1
    v = jnp.take_along_axis(top_vals, rank, axis=-1)
    gt = ok & (y > v)
    eq = ok & (y == v)
    need = k - n_nan - jnp.sum(gt, axis=-1, keepdims=True)
    take_eq = eq & (jnp.cumsum(eq, axis=-1) <= need)
    take_nan = isnan & (jnp.cumsum(isnan, axis=-1) <= k)
    return jnp.where(n_nan >= k, take_nan, isnan | gt | take_eq)


def _keep_mask(x: jax.Array, k: Any, k_max: int, method: str, w: jax.Array | None = None) -> jax.Array:
    """``ties="keep"`` along the last axis: ``x >= kth_largest(x, k)``; no validation.

    ``k`` is an int or an int array ``x.shape[:-1] + (1,)`` (one k per row, at most the static
    ``k_max``). NaN counts as ``+inf``; masked entries (``w`` False) are never kept.
    """
    y = lax.stop_gradient(x)  # a selection: no derivative flows through it
    if w is not None:
        y = jnp.where(w, y, -jnp.inf)
    y = jnp.where(jnp.isnan(y), jnp.array(jnp.inf, y.dtype), y)
    keep = y >= _kth_largest(y, k, k_max, method)
    if w is not None:
        keep = keep & w  # t = -inf (fewer attended entries than k) must not revive masked ones
    return keep


@functools.partial(jax.jit, static_argnames=("k", "ties", "method"))
def _topk_mask_jit(x, w, k, ties, method):
    if ties == "index":
        return _index_mask(x, k, w)
    return _keep_mask(x, k, k, method, w)


def _prepare(z: Any, k: Any, where: Any) -> tuple[jax.Array, int, jax.Array | None]:
    x = as_float_array(z, "z")
    check_nonempty(x, "z", axis=-1)
    check_nonempty(x, "z")
    k = check_int_in_range(k, "k", 1, x.shape[-1])
    w = None if where is None else jnp.broadcast_to(check_where(where, x), x.shape)
    return x, k, w


def topk_mask(z: Any, k: int, *, ties: str = "index", where: Any = None,
              method: str | None = None) -> jax.Array:
    r"""Boolean mask of the ``k`` largest entries of each row (last axis), by a stated tie rule.

    .. math::
        M_{ij} = [\, j \in T_k(z_{i\cdot}) \,], \qquad
        T_k^{\mathrm{index}}(z) = \{ j : \#\{i : z_i > z_j\} + \#\{i < j : z_i = z_j\} < k \},
        \quad T_k^{\mathrm{keep}}(z) = \{ j : z_j \ge t_k(z) \},

    with :math:`t_k` the :math:`k`-th largest value (:func:`kth_largest`). ``ties="index"`` keeps
    exactly ``k`` entries per row (the lowest indices win a tie); ``ties="keep"`` keeps every entry
    tied with the ``k``-th largest (at least ``k``). NaN counts as the largest value (above
    ``+inf`` under ``"index"``, as ``+inf`` under ``"keep"``); see the module docstring. The
    selection is constant for differentiation (``stop_gradient``).

    Source: the tie rules are this library's (docs/derivations/topk_selection.md); the selection is
    the TOPK(k) "heavy hitter" variant of Ram et al. 2025 (docs/notes/semantic_focus.md §1.3).

    Args:
        z: array ``(..., n)``, any real dtype (integers and bools are promoted); batched over the
            leading axes.
        k: entries kept per row, a static Python int in ``[1, n]`` (a traced ``k`` raises
            ``TypeError``: under ``jax.jit`` pass it as a static argument).
        ties: ``"index"`` (exactly ``k``) or ``"keep"`` (every tie with the ``k``-th), see
            :data:`TIES`.
        where: optional boolean mask broadcastable to ``z.shape`` (``True`` = attend): masked
            entries are never selected, and a row with at most ``k`` attended entries selects all
            of them.
        method: only with ``ties="keep"``: the threshold kernel, one of :data:`TOPK_METHODS`, or
            None for :func:`default_topk_method`.

    Returns:
        Boolean array of ``z``'s shape.

    Example:
        >>> import jax.numpy as jnp
        >>> z = jnp.array([1.0, 2.0, 2.0, 2.0])
        >>> topk_mask(z, 2).tolist(), topk_mask(z, 2, ties="keep").tolist()
        ([False, True, True, False], [False, True, True, True])
        >>> topk_mask(z, 2, where=jnp.array([True, True, False, True])).tolist()
        [False, True, False, True]
    """
    x, k, w = _prepare(z, k, where)
    check_choice(ties, "ties", TIES)
    if method is not None:
        if ties != "keep":
            raise ValueError(f"method is only used with ties='keep', got ties={ties!r}")
        check_choice(method, "method", TOPK_METHODS)
    if ties == "keep" and method is None:
        method = default_topk_method(k)
    return _topk_mask_jit(x, w, k, ties, method)


def _values(x: jax.Array, k: int, w: jax.Array | None = None) -> jax.Array:
    """The k largest values along the last axis, descending, masked entries as -inf; no validation."""
    return lax.top_k(x if w is None else jnp.where(w, x, -jnp.inf), k)[0]


_topk_values_jit = jax.jit(_values, static_argnames=("k",))


def topk_values(z: Any, k: int, *, where: Any = None) -> jax.Array:
    r"""The ``k`` largest entries of each row (last axis), in descending order.

    .. math::
        v_r = z_{(r)}, \quad r = 1, \dots, k, \qquad z_{(1)} \ge z_{(2)} \ge \dots \ge z_{(n)},

    ties counted with multiplicity (so the values do not depend on a tie rule). NaN sorts above
    every number (the order of ``jax.lax.top_k`` and ``jnp.sort``). Masked entries (``where``
    False) count as ``-inf``: a row with fewer than ``k`` attended entries ends in ``-inf``.
    Differentiable in the selected values (the gradient of ``jax.lax.top_k``).

    Args:
        z: array ``(..., n)``, any real dtype (integers and bools are promoted).
        k: a static Python int in ``[1, n]``.
        where: optional boolean mask broadcastable to ``z.shape`` (``True`` = attend).

    Returns:
        Array ``z.shape[:-1] + (k,)`` of ``z``'s (float) dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> topk_values(jnp.array([[1.0, 3.0, 2.0, 3.0]]), 3).tolist()
        [[3.0, 3.0, 2.0]]
    """
    x, k, w = _prepare(z, k, where)
    return _topk_values_jit(x, k, w)
