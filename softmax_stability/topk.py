r"""Top-k selection: the k largest entries of each row, and the fast k-th-largest kernels.

* :func:`kth_largest` -- the per-row threshold of top-k attention, by one of three exact
  methods chosen per backend by measurement (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from softmax_stability._checks import as_float_array, check_choice, check_int_in_range, is_concrete

__all__ = ["TOPK_METHODS", "kth_largest", "default_topk_method"]

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
        m = jnp.max(jnp.where(z < prev, z, neg), axis=-1, keepdims=True)
        c_m = jnp.sum(z == m, axis=-1, keepdims=True, dtype=jnp.int32)
        thr = jnp.where(cnt < k, m, thr)
        return thr, cnt + c_m, m

    init = (jnp.full(shape, neg), jnp.zeros(shape, jnp.int32), jnp.full(shape, jnp.inf, z.dtype))
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

