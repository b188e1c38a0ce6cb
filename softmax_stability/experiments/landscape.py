r"""2-D loss landscapes along normalised random directions, and the Lipschitz estimate from them.

A landscape is the loss on the plane through the trained parameters :math:`\theta` spanned by two
random directions :math:`d_1, d_2` (Li, Xu, Taylor, Studer, Goldstein 2018, *Visualizing the Loss
Landscape of Neural Nets*, Eq. 1):

.. math::
    f(\alpha, \beta) = L(\theta + \alpha d_1 + \beta d_2).

**Direction normalisation.** Each direction is a Gaussian pytree rescaled group by group so that
every group's Euclidean norm equals that of the same group of :math:`\theta`:

* ``normalization="tensor"`` -- one group per parameter tensor: :math:`d_T \leftarrow d_T\,
  \|\theta_T\|_F/\|d_T\|_F`, biases included. This is what the SF authors' code does
  (``rithram/spartan``, ``ll-test.py``: ``torch.randn_like(p)`` rescaled to
  ``torch.linalg.norm(p)`` for every ``model.parameters()`` tensor; read directly from the
  code, i.e. **confirmed** for their code; whether the paper's text describes it the same way is
  **unconfirmed**: the paper text was not available). Their model has separate ``W_q, W_k, W_v,
  W_o`` ``nn.Linear`` tensors (``multihead_attention.py``), as here, so the groups coincide with
  theirs once the stacked block axis is split off (``stack_axes``).
* ``normalization="filter"`` -- Li et al.'s filter normalisation: one group per filter (a row of a
  PyTorch weight ``[out, in]``, i.e. one output unit; here the weights are stored ``[in, out]``,
  so a filter is indexed by ``filter_axis=-1``; for the embedding ``[tokens, d]`` a row, axis 0),
  :math:`d_{T,i} \leftarrow d_{T,i}\,\|\theta_{T,i}\|/\|d_{T,i}\|`; 1-D tensors (biases) get a
  zero direction, as Li et al.'s ``--xignore biasbn`` option used in their README's examples.

Directions are drawn from ``jax.random`` (the SF authors draw from PyTorch's generator with seed
11111; the same seed number here gives *different* directions, so surfaces are comparable in
distribution, not point by point). Parameter groups with zero norm get a zero direction.

**Lipschitz estimate.** :func:`landscape_lipschitz` is the largest (or a percentile of)
:math:`|f(p) - f(p')| / \|\theta_p - \theta_{p'}\|_2` over neighbouring grid points
:math:`p, p'`, with the *true* parameter-space distance
:math:`\|\Delta\alpha\, d_1 + \Delta\beta\, d_2\|_2 = \sqrt{\Delta\alpha^2\|d_1\|^2 +
2\Delta\alpha\Delta\beta\langle d_1, d_2\rangle + \Delta\beta^2\|d_2\|^2}`. It is a lower bound on
the loss's Lipschitz constant on the plotted region (finite differences along the plane only).
**Difference from the SF authors** (``lgrads.py``, Fig. 27; confirmed from the code): they divide
by the coefficient spacing :math:`\Delta\alpha` (``distance="grid"`` here), so their numbers are
slopes per unit coefficient; with tensor normalisation :math:`\|d_i\| = \|\theta\|` and the two
differ by the factor :math:`\|\theta\|`, which is different for each trained model. Their radius
window ``lgrid[xlb:xub, ylb:yub]`` also drops the upper edge; here the window is symmetric,
:math:`|\alpha|, |\beta| \le t`.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability._checks import check_in_closed_interval, check_int_in_range, is_concrete

__all__ = ["random_direction", "random_directions", "normalize_direction", "loss_surface", "landscape_slopes",
           "landscape_lipschitz", "direction_gram", "SF_STACK_AXES", "SF_FILTER_AXES", "NORMALIZATIONS",
           "SF_DIRECTION_SEED"]

NORMALIZATIONS = ("tensor", "filter")
SF_DIRECTION_SEED = 11111  # the SF authors' --pseed (gen-loss-landscape.sh)
# layout of softmax_stability.experiments.sf_model parameters (pytree prefixes of its params)
SF_STACK_AXES = {"embed": 0, "blocks": 1, "head": 0}  # blocks are stacked along axis 0
SF_FILTER_AXES = {"embed": 0, "blocks": -1, "head": -1}  # PyTorch rows: tokens / output units


# ------------------------------------------------------------------------------------------------
# argument checks (eager, before tracing)

def _leaves(tree, name: str):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    if not leaves:
        raise ValueError(f"{name} must be a non-empty pytree of arrays")
    out = []
    for x in leaves:
        a = x if isinstance(x, jax.Array) else np.asarray(x)
        if not (jnp.issubdtype(a.dtype, jnp.floating)):
            raise TypeError(f"every leaf of {name} must have a float dtype, got {a.dtype}")
        out.append(a)
    return out, treedef


def _check_like(tree, params, name: str):
    leaves, treedef = _leaves(tree, name)
    pleaves, ptreedef = _leaves(params, "params")
    if treedef != ptreedef:
        raise ValueError(f"{name} must have the same pytree structure as params")
    for a, b in zip(leaves, pleaves):
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"{name} must have the shapes of params: got a leaf of shape {tuple(a.shape)} "
                             f"where params has {tuple(b.shape)}")
    return leaves


def _check_grid(x, name: str, *, increasing: bool) -> np.ndarray:
    if isinstance(x, jax.core.Tracer):
        raise TypeError(f"{name} must be a concrete 1-D array (the grid is static), not a traced value")
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a 1-D array of real numbers, got {x!r}") from err
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    if increasing and a.size > 1 and not np.all(np.diff(a) > 0):
        raise ValueError(f"{name} must be strictly increasing")
    return a


def _prefix_map(fn, prefix, tree, name: str):
    """``fn(spec, leaf)`` for every leaf, ``spec`` from ``prefix`` (an int, or a pytree prefix of
    ``tree`` with int leaves)."""
    if isinstance(prefix, numbers.Integral) and not isinstance(prefix, bool):
        return jax.tree_util.tree_map(lambda x: fn(int(prefix), x), tree)
    try:
        return jax.tree_util.tree_map(lambda s, sub: jax.tree_util.tree_map(lambda x: fn(s, x), sub), prefix, tree)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name} must be an int or a pytree prefix of params with int leaves: {err}") from err


def _groups(shape, stack: int, filt: int | None, name_s: str, name_f: str):
    """Reduction axes of one leaf: all axes except the ``stack`` leading ones and (filter mode)
    the filter axis. Returns None for a leaf that filter mode zeroes (<= 1 non-stacked axis)."""
    if isinstance(stack, bool) or not isinstance(stack, numbers.Integral) or not 0 <= stack <= len(shape):
        raise ValueError(f"{name_s} must be ints in [0, ndim] of each leaf, got {stack!r} for a leaf of shape "
                         f"{tuple(shape)}")
    inner = list(range(stack, len(shape)))
    if filt is None:
        return tuple(inner)
    if len(inner) <= 1:
        return None
    if isinstance(filt, bool) or not isinstance(filt, numbers.Integral) or not -len(shape) <= filt < len(shape):
        raise ValueError(f"{name_f} must be ints indexing an axis of each leaf, got {filt!r} for shape {tuple(shape)}")
    f = filt % len(shape)
    if f < stack:
        raise ValueError(f"{name_f}={filt} points at a stacked axis of a leaf of shape {tuple(shape)}")
    return tuple(a for a in inner if a != f)


def _check_normalization(normalization):
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")


# ------------------------------------------------------------------------------------------------
# directions

def normalize_direction(direction, params, *, normalization: str = "tensor", stack_axes: Any = 0,
                        filter_axis: Any = -1):
    r"""Rescale ``direction`` so that each group's norm equals the same group's norm in ``params``.

    .. math::
        d_G \leftarrow d_G \, \frac{\|\theta_G\|_2}{\|d_G\|_2}\quad(\text{0 when } \|d_G\| = 0),

    with groups per tensor (``"tensor"``: the SF authors' ``ll-test.py``) or per filter
    (``"filter"``: Li et al. 2018, 1-D tensors zeroed); see the module doc for what is confirmed.

    Args:
      direction: pytree with the structure and shapes of ``params``.
      params: the parameters :math:`\theta` (pytree of float arrays).
      normalization: ``"tensor"`` or ``"filter"``.
      stack_axes: number of leading axes that index separate tensors (the SF model stacks its
        blocks along axis 0: :data:`SF_STACK_AXES`); an int for every leaf or a pytree prefix.
      filter_axis: the axis indexing filters (``"filter"`` only; :data:`SF_FILTER_AXES`).

    Returns:
      The normalised direction (the dtypes of ``direction``).

    Example:
      >>> th = {"w": jnp.array([[3.0, 0.0], [4.0, 1.0]])}
      >>> d = normalize_direction({"w": jnp.ones((2, 2))}, th, normalization="filter")
      >>> [round(float(v), 6) for v in jnp.linalg.norm(d["w"], axis=0)]  # columns: norms 5 and 1
      [5.0, 1.0]
    """
    _check_normalization(normalization)
    _check_like(direction, params, "direction")

    def one(spec_pair, d, p):
        stack, filt = spec_pair
        axes = _groups(d.shape, stack, None if normalization == "tensor" else filt, "stack_axes", "filter_axis")
        d = jnp.asarray(d)
        if axes is None:
            return jnp.zeros_like(d)
        acc = jnp.promote_types(d.dtype, jnp.float32)
        nd = jnp.sqrt(jnp.sum(jnp.square(d.astype(acc)), axis=axes, keepdims=True))
        npar = jnp.sqrt(jnp.sum(jnp.square(jnp.asarray(p).astype(acc)), axis=axes, keepdims=True))
        scale = jnp.where(nd > 0, npar / jnp.where(nd > 0, nd, 1.0), 0.0)
        return (d.astype(acc) * scale).astype(d.dtype)

    stacks = _prefix_map(lambda s, x: s, stack_axes, params, "stack_axes")
    filts = _prefix_map(lambda s, x: s, filter_axis, params, "filter_axis")
    pairs = jax.tree_util.tree_map(lambda s, f: (s, f), stacks, filts)
    flat_pairs = jax.tree_util.tree_structure(params).flatten_up_to(pairs)
    dl, treedef = jax.tree_util.tree_flatten(direction)
    pl = jax.tree_util.tree_leaves(params)
    return jax.tree_util.tree_unflatten(treedef, [one(sp, d, p) for sp, d, p in zip(flat_pairs, dl, pl)])


def random_direction(key: jax.Array, params, *, normalization: str = "tensor", stack_axes: Any = 0,
                     filter_axis: Any = -1):
    r"""One random direction: an independent standard Gaussian per leaf, then
    :func:`normalize_direction`. Deterministic in ``key``.

    Example:
      >>> th = {"b": jnp.array([0.0, 2.0]), "w": jnp.full((3, 4), 2.0)}
      >>> d = random_direction(jax.random.PRNGKey(0), th)
      >>> [round(float(jnp.linalg.norm(d[k])), 5) for k in ("b", "w")]  # the tensors' norms
      [2.0, 6.9282]
    """
    _check_normalization(normalization)
    leaves, treedef = _leaves(params, "params")
    keys = jax.random.split(key, len(leaves))
    raw = jax.tree_util.tree_unflatten(
        treedef, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])
    return normalize_direction(raw, params, normalization=normalization, stack_axes=stack_axes,
                               filter_axis=filter_axis)


def random_directions(seed_or_key, params, *, normalization: str = "tensor", stack_axes: Any = 0,
                      filter_axis: Any = -1):
    r"""The two independent directions ``(d1, d2)`` of a landscape, from an int seed (e.g.
    :data:`SF_DIRECTION_SEED`) or a PRNG key.

    Example:
      >>> d1, d2 = random_directions(0, {"w": jnp.ones((4, 4))})
      >>> bool(jnp.allclose(jnp.linalg.norm(d1["w"]), 4.0)), bool(jnp.allclose(d1["w"], d2["w"]))
      (True, False)
    """
    if isinstance(seed_or_key, (numbers.Integral, np.integer)) and not isinstance(seed_or_key, bool):
        key = jax.random.PRNGKey(check_int_in_range(seed_or_key, "seed_or_key", 0, 2**32 - 1))
    elif isinstance(seed_or_key, jax.Array):
        key = seed_or_key
    else:
        raise TypeError(f"seed_or_key must be an int seed or a PRNG key, got {seed_or_key!r}")
    k1, k2 = jax.random.split(key)
    kw = dict(normalization=normalization, stack_axes=stack_axes, filter_axis=filter_axis)
    return random_direction(k1, params, **kw), random_direction(k2, params, **kw)


def direction_gram(d1, d2) -> jax.Array:
    r"""The Gram matrix :math:`\begin{pmatrix}\|d_1\|^2 & \langle d_1,d_2\rangle\\ \langle d_1,d_2
    \rangle & \|d_2\|^2\end{pmatrix}` of two pytree directions (at least float32 accumulation).

    Example:
      >>> direction_gram({"a": jnp.array([3.0, 4.0])}, {"a": jnp.array([1.0, 0.0])}).tolist()
      [[25.0, 3.0], [3.0, 1.0]]
    """
    l1, l2 = jax.tree_util.tree_leaves(d1), jax.tree_util.tree_leaves(d2)

    def dot(xs, ys):
        return sum(jnp.sum(jnp.asarray(x).astype(jnp.promote_types(jnp.asarray(x).dtype, jnp.float32))
                           * jnp.asarray(y).astype(jnp.promote_types(jnp.asarray(y).dtype, jnp.float32)))
                   for x, y in zip(xs, ys))

    a, b, c = dot(l1, l1), dot(l1, l2), dot(l2, l2)
    return jnp.stack([jnp.stack([a, b]), jnp.stack([b, c])])


# ------------------------------------------------------------------------------------------------
# surface

@functools.partial(jax.jit, static_argnames=("loss_fn", "batch_size"))
def _surface_impl(loss_fn, params, d1, d2, coords, batch_size):
    def point(ab):
        a, b = ab[0], ab[1]
        # coefficients in each leaf's dtype: a float64 grid must not promote a float32 model
        th = jax.tree_util.tree_map(lambda p, u, v: p + a.astype(p.dtype) * u + b.astype(p.dtype) * v,
                                    params, d1, d2)
        return loss_fn(th)

    return jax.lax.map(point, coords, batch_size=batch_size)


def loss_surface(loss_fn: Callable[[Any], jax.Array], params, d1, d2, alphas, betas, *,
                 batch_size: int | None = None) -> jax.Array:
    r"""The loss on the grid :math:`f_{ij} = L(\theta + \alpha_i d_1 + \beta_j d_2)`.

    One jitted ``lax.map`` over all grid points (no Python loop): ``batch_size=None`` evaluates
    one point at a time (least memory); ``batch_size=b`` vmaps ``b`` points per step. ``loss_fn``
    is a static argument: pass the same function object to reuse the compilation.

    Args:
      loss_fn: ``params -> scalar`` (e.g. the mean training cross-entropy in evaluation mode).
      params: the centre :math:`\theta`.
      d1, d2: directions with the structure and shapes of ``params``
        (:func:`random_directions`).
      alphas, betas: 1-D finite grids (concrete arrays).
      batch_size: grid points per vectorised step (``None`` or an int >= 1).

    Returns:
      ``[len(alphas), len(betas)]`` array of losses.

    Raises:
      TypeError: ``loss_fn`` not callable, non-float leaves, traced grids.
      ValueError: mismatched pytrees, empty/non-finite grids, a non-scalar loss, bad ``batch_size``.

    Example:
      >>> th = {"w": jnp.array([1.0, 0.0])}
      >>> f = loss_surface(lambda p: jnp.sum(p["w"] ** 2), th, {"w": jnp.array([1.0, 0.0])},
      ...                  {"w": jnp.array([0.0, 1.0])}, [-1.0, 0.0], [0.0, 2.0])
      >>> f.tolist()  # (1 + a)^2 + b^2
      [[0.0, 4.0], [1.0, 5.0]]
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    _leaves(params, "params")
    _check_like(d1, params, "d1")
    _check_like(d2, params, "d2")
    a = _check_grid(alphas, "alphas", increasing=False)
    b = _check_grid(betas, "betas", increasing=False)
    if batch_size is not None:
        batch_size = check_int_in_range(batch_size, "batch_size", 1)
    out = jax.eval_shape(loss_fn, params)
    if not hasattr(out, "shape") or tuple(out.shape) != ():
        raise ValueError(f"loss_fn must return a scalar, got {getattr(out, 'shape', type(out).__name__)}")
    coords = np.stack(np.meshgrid(a, b, indexing="ij"), axis=-1).reshape(-1, 2)
    coords = jnp.asarray(coords, dtype=jnp.result_type(float))
    if batch_size is not None:
        batch_size = min(batch_size, coords.shape[0])
    vals = _surface_impl(loss_fn, params, d1, d2, coords, batch_size)
    return vals.reshape(a.size, b.size)


# ------------------------------------------------------------------------------------------------
# Lipschitz estimate

_EDGES = {"alpha": (1, 0), "beta": (0, 1), "diag": (1, 1), "anti": (1, -1)}


def _edge_slopes(f, a, b, gram, step, distance):
    """|f(p') - f(p)| / dist for p' = p + step (step in index units)."""
    da, db = step
    na, nb = f.shape
    i0, i1 = slice(0, na - da), slice(da, na)
    if db >= 0:
        j0, j1 = slice(0, nb - db), slice(db, nb)
    else:
        j0, j1 = slice(-db, nb), slice(0, nb + db)
    df = jnp.abs(f[i1, j1] - f[i0, j0])
    dA = (a[i1] - a[i0])[:, None] if da else jnp.zeros((na - da, 1))
    dB = (b[j1] - b[j0])[None, :] if db else jnp.zeros((1, nb - abs(db)))
    if distance == "grid":  # the SF authors: the coefficient spacing (alpha spacing for every edge)
        dist = jnp.broadcast_to(jnp.sqrt(dA ** 2 + dB ** 2), df.shape)
    else:
        dist = jnp.sqrt(jnp.maximum(dA ** 2 * gram[0, 0] + 2 * dA * dB * gram[0, 1] + dB ** 2 * gram[1, 1], 0.0))
        dist = jnp.broadcast_to(dist, df.shape)
    return df / dist


def landscape_slopes(surface, params, d1, d2, alphas, betas, *, neighbours: str = "axis",
                     distance: str = "parameter") -> dict[str, jax.Array]:
    r"""Finite-difference slopes :math:`|f(p') - f(p)| / \|\theta_{p'} - \theta_p\|_2` for every pair
    of neighbouring grid points.

    ``neighbours="axis"`` uses the 4-neighbourhood (as the SF authors' ``lgrads.py``), ``"all"``
    adds both diagonals. ``distance="parameter"`` divides by the true distance
    :math:`\|\Delta\alpha d_1 + \Delta\beta d_2\|_2` (via :func:`direction_gram`); ``"grid"`` by
    the coefficient distance :math:`\sqrt{\Delta\alpha^2 + \Delta\beta^2}`, the SF authors'
    convention (see the module doc).

    Args:
      surface: ``[len(alphas), len(betas)]`` from :func:`loss_surface`.
      params, d1, d2: the centre and directions the surface was computed with (``params`` is
        used to check the directions' structure).
      alphas, betas: the strictly increasing grids.
      neighbours, distance: as above.

    Returns:
      dict ``{"alpha": [na-1, nb], "beta": [na, nb-1]}`` (plus ``"diag"``/``"anti"``
      ``[na-1, nb-1]``): the slope of the edge starting at each grid point. NaN/inf losses
      propagate into the slopes of their edges.

    Example:
      >>> th = {"w": jnp.zeros(2)}
      >>> d1, d2 = {"w": jnp.array([2.0, 0.0])}, {"w": jnp.array([0.0, 1.0])}
      >>> s = landscape_slopes(jnp.array([[0.0, 1.0], [4.0, 5.0]]), th, d1, d2, [0.0, 1.0], [0.0, 1.0])
      >>> s["alpha"].tolist(), s["beta"].tolist()  # |dL| / (2 |da|), |dL| / |db|
      ([[2.0, 2.0]], [[1.0], [1.0]])
    """
    if neighbours not in ("axis", "all"):
        raise ValueError(f"neighbours must be 'axis' or 'all', got {neighbours!r}")
    if distance not in ("parameter", "grid"):
        raise ValueError(f"distance must be 'parameter' or 'grid', got {distance!r}")
    _leaves(params, "params")
    _check_like(d1, params, "d1")
    _check_like(d2, params, "d2")
    a = _check_grid(alphas, "alphas", increasing=True)
    b = _check_grid(betas, "betas", increasing=True)
    f = surface if isinstance(surface, jax.core.Tracer) else jnp.asarray(surface)
    if f.ndim != 2 or tuple(f.shape) != (a.size, b.size):
        raise ValueError(f"surface must have shape (len(alphas), len(betas)) = {(a.size, b.size)}, "
                         f"got {tuple(f.shape)}")
    if a.size < 2 and b.size < 2:
        raise ValueError("alphas or betas must have at least 2 points (no neighbouring grid points)")
    acc = jnp.promote_types(f.dtype, jnp.float32)
    f = f.astype(acc)
    gram = direction_gram(d1, d2).astype(acc)
    if distance == "parameter" and is_concrete(gram):
        # a zero direction puts distinct grid points at distance 0: no slope exists
        for i, (name, n) in enumerate((("d1", a.size), ("d2", b.size))):
            if n > 1 and not float(gram[i, i]) > 0:
                raise ValueError(f"{name} must be a nonzero direction (its norm is 0, so neighbouring grid "
                                 f"points coincide in parameter space)")
    aj, bj = jnp.asarray(a, acc), jnp.asarray(b, acc)
    names = ("alpha", "beta") if neighbours == "axis" else tuple(_EDGES)
    return {n: _edge_slopes(f, aj, bj, gram, _EDGES[n], distance) for n in names}


def _window(vals: np.ndarray, radius: float | None) -> np.ndarray:
    if radius is None:
        return np.ones(vals.shape, bool)
    return np.abs(vals) <= radius * (1 + 1e-9) + 1e-12


def landscape_lipschitz(surface, params, d1, d2, alphas, betas, *, radius: float | None = None,
                        percentile: float = 100.0, neighbours: str = "axis",
                        distance: str = "parameter") -> jax.Array:
    r"""Estimated Lipschitz constant of the loss on the landscape:

    .. math::
        \hat G = \max_{p \sim p'} \frac{|f(p) - f(p')|}{\|\Delta\alpha\, d_1 + \Delta\beta\, d_2\|_2}

    over neighbouring grid points :math:`p \sim p'` (both in :math:`|\alpha|,|\beta| \le` ``radius``
    when given); ``percentile < 100`` gives that percentile of the slopes instead (SF Fig. 27 plots
    the 50/75/95/99th). A lower bound on the Lipschitz constant of the loss on that region. Derived
    here (a finite-difference estimate; no proofs_check id); the SF authors' version divides by the
    grid spacing instead (``distance="grid"``; module doc).

    Args:
      surface, params, d1, d2, alphas, betas: as :func:`landscape_slopes`.
      radius: half-width of the square window around the centre (finite, > 0), or None (all).
      percentile: in [0, 100]; 100 is the maximum.
      neighbours, distance: as :func:`landscape_slopes`.

    Returns:
      Scalar. NaN if a loss in the window is NaN (a diverged loss has no finite estimate); inf if
      one is infinite.

    Raises:
      ValueError: as :func:`landscape_slopes`; a window holding no neighbouring pair (``radius``); a
        zero direction (``d1``/``d2``) along an axis with several grid points.

    Example:
      >>> th = {"w": jnp.zeros(2)}
      >>> d1, d2 = {"w": jnp.array([2.0, 0.0])}, {"w": jnp.array([0.0, 1.0])}
      >>> g = jnp.array([[0.0, 1.0], [4.0, 5.0]])
      >>> float(landscape_lipschitz(g, th, d1, d2, [0.0, 1.0], [0.0, 1.0]))
      2.0
      >>> float(landscape_lipschitz(g, th, d1, d2, [0.0, 1.0], [0.0, 1.0], distance="grid"))  # authors'
      4.0
    """
    pct = check_in_closed_interval(percentile, "percentile", 0.0, 100.0)
    if radius is not None:
        if isinstance(radius, bool) or not isinstance(radius, (numbers.Real, np.floating)) \
                or not (math.isfinite(float(radius)) and float(radius) > 0):
            raise ValueError(f"radius must be finite and > 0 (or None), got {radius!r}")
        radius = float(radius)
    slopes = landscape_slopes(surface, params, d1, d2, alphas, betas, neighbours=neighbours, distance=distance)
    a = _check_grid(alphas, "alphas", increasing=True)
    b = _check_grid(betas, "betas", increasing=True)
    wa, wb = _window(a, radius), _window(b, radius)
    inside = wa[:, None] & wb[None, :]
    parts = []
    for name, s in slopes.items():
        da, db = _EDGES[name]
        na, nb = inside.shape
        i0, i1 = slice(0, na - da), slice(da, na)
        j0, j1 = (slice(0, nb - db), slice(db, nb)) if db >= 0 else (slice(-db, nb), slice(0, nb + db))
        m = inside[i0, j0] & inside[i1, j1]
        if m.any():
            parts.append(s[np.nonzero(m)])
    if not parts:
        raise ValueError(f"radius={radius} leaves no pair of neighbouring grid points in the window")
    vals = jnp.concatenate(parts)
    est = jnp.max(vals) if pct == 100.0 else jnp.percentile(vals, pct)
    return jnp.where(jnp.any(jnp.isnan(vals)), jnp.nan, est)
