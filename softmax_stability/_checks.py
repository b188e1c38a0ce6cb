"""Eager argument checks shared by every module.

They run before tracing (on Python values and static shapes), so a bad call fails with a
``ValueError``/``TypeError`` that names the argument and its allowed range instead of a
tracer error deep inside XLA.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "as_float_array",
    "check_axis",
    "check_choice",
    "check_flag",
    "check_positive_finite",
    "check_int_in_range",
    "check_in_closed_interval",
    "check_nonempty",
    "check_probability",
    "check_where",
    "is_concrete",
    "probability_tolerance",
]


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds a value now (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def as_float_array(x: Any, name: str) -> jax.Array:
    """Convert ``x`` to a JAX array of a float dtype; integers and bools are promoted.

    Complex and object inputs raise ``TypeError`` naming ``name``.
    """
    if isinstance(x, jax.core.Tracer):
        arr = x
    else:
        try:
            arr = jnp.asarray(x)
        except TypeError as err:  # strings, objects
            raise TypeError(f"{name} must be an array of real numbers, got {type(x).__name__}") from err
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        if not (jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == jnp.bool_):
            raise TypeError(f"{name} must have a numeric dtype, got {arr.dtype}")
        arr = arr.astype(jnp.result_type(float))  # float32, or float64 under jax_enable_x64
    return arr


def check_choice(value: Any, name: str, choices: tuple) -> Any:
    """``value`` must be one of ``choices`` (strings, or None where None is a choice); anything
    else raises ``ValueError`` naming ``name`` and the choices. Returns ``value``."""
    if not isinstance(value, (str, type(None))) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_where(where: Any, x: jax.Array, name: str = "z", meaning: str = "attend") -> jax.Array:
    """A boolean mask broadcastable to ``x`` (the argument ``name``); returns it as an array.

    A non-boolean dtype raises ``TypeError`` ("where must be a boolean array (True = ``meaning``)"),
    a shape that does not broadcast to ``x.shape`` ``ValueError``. A traced mask is checked by its
    dtype and shape only.
    """
    w = where if isinstance(where, jax.core.Tracer) else jnp.asarray(where)
    if w.dtype != jnp.bool_:
        raise TypeError(f"where must be a boolean array (True = {meaning}), got dtype {w.dtype}")
    try:
        out = np.broadcast_shapes(w.shape, x.shape)
    except ValueError:
        out = None
    if out != x.shape:
        raise ValueError(f"where must be broadcastable to {name}'s shape {x.shape}, got shape {w.shape}")
    return w


def check_nonempty(x: jax.Array, name: str, axis: int | None = None) -> None:
    """Raise ``ValueError`` when ``x`` (or ``x`` along ``axis``) has no elements."""
    if x.ndim == 0 and axis is not None:
        raise ValueError(f"{name} must have at least one dimension, got a scalar")
    if axis is None:
        if x.size == 0:
            raise ValueError(f"{name} must be non-empty, got shape {x.shape}")
    elif x.shape[axis] == 0:
        raise ValueError(f"{name} must be non-empty along axis {axis}, got shape {x.shape}")


def check_axis(axis: Any, ndim: int, name: str = "axis") -> int:
    """Normalise ``axis`` to a non-negative int in ``[0, ndim)``."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {axis!r}")
    if not -ndim <= int(axis) < ndim:
        raise ValueError(f"{name} must be in [-{ndim}, {ndim}) for an array of ndim {ndim}, got {axis}")
    return int(axis) % ndim


def check_int_in_range(value: Any, name: str, lo: int, hi: int | None = None) -> int:
    """``value`` must be an integer (Python or NumPy, not bool) with ``lo <= value <= hi``.

    A real number that is not of an integer type (``2.5``, ``2.0``, ``nan``, a ``Fraction``) is a
    value outside the allowed set: ``ValueError`` naming the range. A bool (a flag passed where a
    count is meant) or a non-numeric value (a string, ``None``, a complex number) is a
    ``TypeError``.
    """
    rng = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
    if isinstance(value, jax.core.Tracer):
        # e.g. jax.jit(maps.topk_softmax)(z, 2): every argument of a jitted function is traced
        # unless it is marked static, and a count fixes array shapes, so it must be a Python int
        raise TypeError(
            f"{name} must be a static Python int {rng}, got a traced value ({value.aval}); under "
            f"jax.jit mark it static (jax.jit(f, static_argnums=...) or static_argnames=...) or "
            f"close over it (jax.jit(lambda x: f(x, {name}=...)))")
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int {rng}, got the bool {value!r}")
    if not isinstance(value, (numbers.Integral, np.integer)):
        if isinstance(value, (numbers.Real, np.floating)):
            raise ValueError(f"{name} must be an integer {rng}, got {value!r} "
                             f"(a {type(value).__name__}, not an int)")
        raise TypeError(f"{name} must be an int {rng}, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be {rng}, got {value}")
    return value


def check_positive_finite(value: Any, name: str) -> Any:
    """Scalar or array parameter that must be finite and > 0 (checked when concrete).

    Non-finite or non-positive real values raise ``ValueError`` (range ``(0, inf)``); a
    non-real value (string, bool, complex, object) raises ``TypeError``.
    """
    if isinstance(value, jax.core.Tracer):
        return value
    arr = np.asarray(value)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"{name} must be a positive real number, got {value!r}")
    if arr.size and (not np.all(np.isfinite(arr)) or not np.all(arr > 0)):
        raise ValueError(f"{name} must be finite and > 0 (in (0, inf)), got {value!r}")
    return value


def check_in_closed_interval(value: Any, name: str, lo: float, hi: float) -> float:
    """Python scalar in ``[lo, hi]``: a real value outside it (or NaN/inf) raises ``ValueError``
    naming the interval; a traced or non-real value raises ``TypeError``."""
    if isinstance(value, jax.core.Tracer):
        raise TypeError(f"{name} must be a static Python number, not a traced value")
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a real number, got {value!r}") from err
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value!r}")
    return v


def check_flag(value: Any, name: str) -> bool:
    """A Python (or NumPy) bool; anything else raises ``TypeError`` naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool (True or False), got {value!r}")
    return bool(value)


def probability_tolerance(dtype: Any, n: int) -> float:
    r"""Tolerance of :func:`check_probability` for rows of ``n`` entries of ``dtype``.

    :math:`\min(\epsilon\,(64 + n),\ 1/8)` with :math:`\epsilon` the machine epsilon of
    ``dtype``, but at least float32's (:math:`2^{-23}`): float32 results are often upcast to
    float64 (NumPy's default, ``jax_enable_x64``) and keep their float32 rounding. The
    :math:`64\epsilon` covers the rounding of each entry by the map that produced it (a few ulps;
    the maps of this library stay within :math:`8\epsilon` of a unit sum in float16, bfloat16,
    float32 and float64 up to :math:`n = 10^5`); :math:`n\epsilon` covers the worst-case error of
    a recursive sum of :math:`n` terms, :math:`(n-1)\epsilon/2`, once for the producer's
    normalisation and once for the check's own sum. The cap :math:`1/8` keeps the check
    meaningful in half precision at large :math:`n` (it still rejects a row summing to 1.5).
    """
    eps = max(float(jnp.finfo(dtype).eps), float(jnp.finfo(jnp.float32).eps))
    return min(eps * (64 + int(n)), 0.125)


@functools.partial(jax.jit, static_argnames=("axis",))
def _probability_violations(x, visible, tol, axis):
    """Count of finite rows that are not sub-probability vectors, and the first one's (index, sum, min)."""
    x = jnp.moveaxis(x, axis, -1)
    acc = jnp.promote_types(x.dtype, jnp.float32)  # half precision is summed in float32
    vis = jnp.ones(x.shape, bool) if visible is None else jnp.moveaxis(visible, axis, -1)
    finite = jnp.all(jnp.isfinite(x) | ~vis, axis=-1)
    xa = x.astype(acc)
    s = jnp.sum(jnp.where(vis, xa, 0), axis=-1)
    m = jnp.min(jnp.where(vis, xa, jnp.inf), axis=-1)  # +inf for a fully masked row
    bad = (finite & ((s > 1 + tol) | (m < -tol))).reshape(-1)
    i = jnp.argmax(bad)
    return jnp.sum(bad), i, s.reshape(-1)[i], m.reshape(-1)[i]


def check_probability(p: Any, name: str = "p", *, axis: int = -1, where: Any = None,
                      enabled: bool = True) -> None:
    r"""Eagerly check that ``p`` holds (sub-)probability vectors along ``axis``.

    The rule, shared by every function that takes attention weights or a map's output: each row
    whose (visible, where ``where`` is given) entries are all finite must have entries
    :math:`\ge -t` and sum to at most :math:`1 + t`, with :math:`t` =
    :func:`probability_tolerance`. So a row on the simplex, an all-zero (fully masked) row and the
    visible part of a masked row pass; logits, unnormalised scores and rows with negative entries
    do not. Rows with a NaN or :math:`\pm\infty` entry are not checked: the functions return NaN
    for them (a documented run-time result). Nothing is checked when ``enabled`` is False or when
    ``p`` (or ``where``) is traced (under ``jax.jit``, ``jax.vmap``, ``jax.grad``), where the values
    are not known before run time. Otherwise a failing row raises ``ValueError`` naming ``name``,
    the row, its sum and its smallest entry.

    ``p`` must already be a float array with a valid ``axis`` (see :func:`as_float_array`,
    :func:`check_axis`) and ``where`` a boolean array broadcastable to it.
    """
    if not enabled or isinstance(p, jax.core.Tracer) or isinstance(where, jax.core.Tracer):
        return
    x = jnp.asarray(p)
    ax = check_axis(axis, x.ndim)
    n = x.shape[ax]
    tol = probability_tolerance(x.dtype, n)
    vis = None if where is None else jnp.broadcast_to(jnp.asarray(where), x.shape)
    count, i, s, m = jax.device_get(_probability_violations(x, vis, tol, ax))
    count = int(count)
    if not count:
        return
    batch = x.shape[:ax] + x.shape[ax + 1:]
    rows = int(np.prod(batch, dtype=np.int64))
    row = "the row" if not batch else f"row {tuple(int(j) for j in np.unravel_index(int(i), batch))}"
    small = "none (fully masked)" if not np.isfinite(m) else f"{float(m):.6g}"
    raise ValueError(
        f"{name} must hold probability vectors along axis {axis} (entries >= 0 summing to at most 1, "
        f"tolerance {tol:.2g} for {x.dtype} rows of {n} entries); {row} sums to {float(s):.6g}, "
        f"smallest entry {small}"
        + (f" ({count} of {rows} rows fail)" if rows > 1 else "")
        + ". Pass check_probability=False to skip this check (it is skipped anyway for traced "
        "values, under jax.jit, jax.vmap or jax.grad)")
