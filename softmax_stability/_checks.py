"""Eager argument checks shared by every module.

They run before tracing (on Python values and static shapes), so a bad call fails with a
``ValueError``/``TypeError`` that names the argument and its allowed range instead of a
tracer error deep inside XLA.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "as_float_array",
    "check_axis",
    "check_positive_finite",
    "check_int_in_range",
    "check_in_closed_interval",
    "check_nonempty",
    "is_concrete",
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
