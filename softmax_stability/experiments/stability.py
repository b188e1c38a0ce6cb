"""Measured against predicted stability: does top-k attention's measured stability move as SF's
comparison conditions predict?

The experiment behind ``figures/sf_stability_measured.py``: random attention instances with controlled
dispersion and in-degree (:func:`random_attention_instance`), their measured stability
(:func:`measured_stability`, built on :func:`softmax_stability.focus.local_stability` and
:func:`softmax_stability.focus.finite_stability_w`), the ratios SF's constants predict
(:func:`predicted_stability_ratios`) and the rank trends between the two (:func:`stability_trends`).
The SF quantities themselves (dispersion, separation, in-degree, the constants) live in
:mod:`softmax_stability.focus`.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability._checks import as_float_array, check_int_in_range
from softmax_stability.focus import (
    derived_lambda_w, derived_lambda_x, dispersion, finite_stability_w, lambda_w_full, lambda_w_topk, lambda_x_full, lambda_x_topk,
    local_stability, max_token_norm, selection_flip_direction, separation, topk_in_degree,
)

__all__ = [
    "STABILITY_EFFECT_FEATURES",
    "stability_directions",
    "measured_stability",
    "predicted_stability_ratios",
    "rank_correlation",
    "stability_partial_effects",
    "stability_trends",
    "random_attention_instance",
]

# measured vs predicted stability ratios (does the measurement move as SF's conditions predict?)


#: The statistics whose partial effects :func:`stability_trends` estimates, in this order.
STABILITY_EFFECT_FEATURES = ("delta_s", "delta_h", "log(1+1/Delta)", "log(1+beta_bar)")



def stability_directions(rng: Any, X: Any, W: Any, k: int, count: int) -> np.ndarray:
    r"""Unit directions :math:`D` (:math:`\|D\|_2 = 1`) for :func:`measured_stability`: per instance,
    the selection-flipping one (:func:`selection_flip_direction`) first, then ``count - 1`` Gaussian ones.

    Args:
      rng: a ``numpy.random.Generator`` or an int seed.
      X: tokens ``(batch, n, d)``.  W: ``(batch, d, d)``.  k: int in ``[1, n-1]``.
      count: directions per instance (``>= 1``).

    Returns:
      float64 array ``(batch, count, d, d)``.
    """
    count = check_int_in_range(count, "count", 1)
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(check_int_in_range(rng, "rng", 0))
    x, w = np.asarray(X, float), np.asarray(W, float)
    if x.ndim != 3 or w.shape != (x.shape[0], x.shape[2], x.shape[2]):
        raise ValueError(f"X must be (batch, n, d) and W (batch, d, d), got {x.shape} and {w.shape}")
    d = w.shape[-1]
    dirs = rng.normal(size=(x.shape[0], count, d, d))
    dirs /= np.linalg.norm(dirs, ord=2, axis=(2, 3))[..., None, None]
    for t in range(x.shape[0]):
        dirs[t, 0] = selection_flip_direction(x[t], w[t], k)
    return dirs



def measured_stability(X: Any, W: Any, k: int, directions: Any, *, radius: float = 0.02) -> dict[str, np.ndarray]:
    r"""Measured stability of top-k and full softmax self-attention, with each instance's SF statistics.

    For every instance :math:`(X, W)` of a batch, :math:`A = XWX^\top`, :math:`P = \xi(A)`:

    * ``LW_h``, ``LW_s``: :math:`\max_D \|P(W + rD) - P(W)\|_F / (r\|D\|_2)` over ``directions``
      (:func:`finite_stability_w`, top-k and full softmax): a finite step, so the top-k selection
      may change and :math:`\Delta` matters;
    * ``LX_h``, ``LX_s``: :math:`\|\partial P/\partial X\|_{F\to F}` (:func:`local_stability`), where
      the in-degree :math:`\beta` matters;
    * the worst-case statistics SF's conditions use: ``delta_s`` = :math:`\max_i \delta_{s,i}`,
      ``delta_h`` = :math:`\max_i \delta_{h,i}`, ``sep`` = :math:`\min_i \Delta_i`, ``beta_max`` =
      :math:`\max_j \beta_j` (:func:`dispersion`, :func:`separation`, :func:`topk_in_degree`),
      ``gamma`` = :math:`\|W\|_2`, ``xi`` = :math:`\max_i \|x_i\|`.

    One ``jit(vmap)`` over the batch (compiled once per shape).

    Source: derived here (the measured counterpart of SF's :math:`\lambda_W, \lambda_X`; the
    measured values are bounded by :func:`derived_lambda_w`, :func:`derived_lambda_x`, claims ``F10*``).

    Args:
      X: tokens ``(batch, n, d)``.  W: ``(batch, d, d)``.  k: top-k size, int in ``[1, n-1]``.
      directions: ``(batch, m, d, d)``, e.g. :func:`stability_directions`.
      radius: step :math:`r > 0`.

    Returns:
      dict of float64 NumPy arrays of shape ``(batch,)``.
    """
    x = as_float_array(X, "X")
    w = as_float_array(W, "W")
    dirs = as_float_array(directions, "directions")
    if x.ndim != 3 or w.shape != (x.shape[0], x.shape[2], x.shape[2]):
        raise ValueError(f"X must be (batch, n, d) and W (batch, d, d), got {x.shape} and {w.shape}")
    if dirs.ndim != 4 or dirs.shape[0] != x.shape[0] or dirs.shape[2:] != w.shape[1:]:
        raise ValueError(f"directions must be (batch, m, d, d) = ({x.shape[0]}, m, {w.shape[1]}, {w.shape[2]}), "
                         f"got {dirs.shape}")
    k = check_int_in_range(k, "k", 1, x.shape[1] - 1)
    r = float(radius)
    if not (math.isfinite(r) and r > 0):
        raise ValueError(f"radius must be finite and > 0, got {radius!r}")

    def one(xx, ww, dd):
        A = xx @ ww @ xx.T
        out = {}
        for name, kk in (("h", k), ("s", None)):
            out["LW_" + name] = jnp.max(jax.vmap(lambda D: finite_stability_w(xx, ww, D, r, kk))(dd))
            out["LX_" + name] = local_stability(xx, ww, kk, wrt="X")
        out["delta_s"] = jnp.max(dispersion(A))
        out["delta_h"] = jnp.max(dispersion(A, k))
        out["sep"] = jnp.min(separation(A, k))
        out["beta_max"] = jnp.max(topk_in_degree(A, k)).astype(A.dtype)
        out["gamma"] = jnp.linalg.norm(ww, 2)
        out["xi"] = max_token_norm(xx)
        return out

    res = jax.jit(jax.vmap(one))(x, w, dirs)
    return {name: np.asarray(v) for name, v in res.items()}



def predicted_stability_ratios(stats: dict, n: int, k: int, *, radius: float = 0.02) -> dict[str, np.ndarray]:
    r"""Predicted top-k over full stability ratios for the statistics of :func:`measured_stability`.

    * ``sf_w`` = :math:`\lambda_W(\xi_h)/\lambda_W(\xi_s) = 2e^{\delta_h - \delta_s}(1 + 1/\Delta)`
      (:func:`lambda_w_topk` / :func:`lambda_w_full`), ``< 1`` iff :math:`\mathrm{LHS}_{304} < 1`;
    * ``sf_x`` = :math:`\lambda_X(\xi_h)/\lambda_X(\xi_s)` with :math:`2\Gamma\Xi^2` from ``gamma``,
      ``xi`` and :math:`\bar\beta = \beta_{\max}/k` (:func:`lambda_x_topk` / :func:`lambda_x_full`);
    * ``derived_w``, ``derived_x``: the same ratio of this library's constants
      (:func:`derived_lambda_w` with ``sep`` and ``radius``, :func:`derived_lambda_x`), and the
      constants themselves ``bound_w_h``, ``bound_w_s``, ``bound_x_h``, ``bound_x_s``.

    SF's constants are worst-case bounds up to an unknown common factor, so a measurement can only
    agree with them in trend, not in value.

    Args:
      stats: dict with ``delta_s``, ``delta_h``, ``sep``, ``beta_max``, ``gamma``, ``xi`` (arrays).
      n: tokens per instance.  k: top-k size.  radius: as in :func:`measured_stability`.

    Returns:
      dict of float64 NumPy arrays.
    """
    n = check_int_in_range(n, "n", 2)
    k = check_int_in_range(k, "k", 1, n - 1)
    ds, dh, sp, bmax, g, xi = (np.asarray(stats[c], float) for c in ("delta_s", "delta_h", "sep", "beta_max",
                                                                   "gamma", "xi"))
    dmax = 2 * g * xi**2  # 2 Gamma Xi^2, the worst-case dispersion (claim F1b)
    bw_h = np.asarray(derived_lambda_w(dh, k, n, xi, sep=sp, radius=radius))
    bw_s = np.asarray(derived_lambda_w(ds, n, n, xi, radius=radius))
    bx_h = np.asarray(derived_lambda_x(dh, k, bmax, g, xi))
    bx_s = np.asarray(derived_lambda_x(ds, n, n, g, xi))
    return {
        "sf_w": np.asarray(lambda_w_topk(dh, sp) / lambda_w_full(ds)),
        "sf_x": np.asarray(lambda_x_topk(dh, sp, bmax / k, dmax) / lambda_x_full(ds, dmax)),
        "derived_w": bw_h / bw_s,
        "derived_x": bx_h / bx_s,
        "bound_w_h": bw_h, "bound_w_s": bw_s, "bound_x_h": bx_h, "bound_x_s": bx_s,
    }



def rank_correlation(a: Any, b: Any) -> float:
    """Spearman rank correlation over the entries where both are finite (NaN if fewer than 3)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    return float(spearmanr(a[ok], b[ok])[0]) if ok.sum() > 2 else float("nan")



def stability_partial_effects(stats: dict, ratio: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Partial effect of each statistic on a log stability ratio, with its t-value.

    Ordinary least squares of :math:`\ln(\text{ratio})` on the standardised statistics
    :data:`STABILITY_EFFECT_FEATURES` (:math:`\delta_s, \delta_h, \ln(1 + 1/\Delta),
    \ln(1 + \bar\beta)`, :math:`\bar\beta = \beta_{\max}/k`) and an intercept: the coefficient is the
    change of the log ratio per standard deviation of one statistic with the others held fixed (to
    first order); :math:`t` = coefficient / its standard error (:math:`|t| \ge 2`: resolved at about
    the 5% level). Instances with a non-finite statistic or ratio are left out. A statistic that
    does not vary gets coefficient 0.

    Args:
      stats: dict with ``delta_s``, ``delta_h``, ``sep``, ``beta_max`` (arrays ``(batch,)``).
      ratio: positive array ``(batch,)`` (measured or predicted top-k / full).
      k: top-k size.

    Returns:
      ``(coef, t)``, two arrays of shape ``(4,)``.

    Example:
      >>> rng = np.random.default_rng(0)
      >>> st = {c: rng.uniform(0.5, 3.0, 200) for c in ("delta_s", "delta_h", "sep", "beta_max")}
      >>> ratio = np.exp(-st["delta_s"] + 0.1 * rng.normal(size=200))   # only delta_s matters
      >>> coef, t = stability_partial_effects(st, ratio, 2)
      >>> bool(coef[0] < 0 and t[0] < -20 and np.all(np.abs(t[1:]) < 3))
      True
    """
    k = check_int_in_range(k, "k", 1)
    feats = np.stack([np.asarray(stats["delta_s"], float), np.asarray(stats["delta_h"], float),
                      np.log1p(1.0 / np.asarray(stats["sep"], float)),
                      np.log1p(np.asarray(stats["beta_max"], float) / k)], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(np.asarray(ratio, float))
    ok = np.all(np.isfinite(feats), axis=1) & np.isfinite(y)
    f, y = feats[ok], y[ok]
    sd = f.std(0)
    f = (f - f.mean(0)) / np.where(sd > 0, sd, 1.0)
    A = np.concatenate([f, np.ones((f.shape[0], 1))], axis=1)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    dof = max(y.size - A.shape[1], 1)
    se = np.sqrt(np.maximum(np.diag(np.linalg.pinv(A.T @ A)) * (resid @ resid) / dof, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, coef / np.where(se > 0, se, 1.0), np.sign(coef) * np.inf)
    coef, t = coef[:-1], t[:-1]
    t = np.where(coef == 0, 0.0, t)
    return coef, t



def _verdict(measured: float, t: float, predicted: float) -> str:
    if abs(predicted) < 0.05:
        return "SF predicts no effect"
    same = np.sign(measured) == np.sign(predicted)
    if abs(t) >= 2:
        return "reproduced" if same else "opposite sign"
    return "same sign, unresolved" if same else "opposite sign, unresolved"



def stability_trends(stats: dict, pred: dict, k: int) -> dict:
    r"""Do measured top-k/full stability ratios move with :math:`\delta_s, \delta_h, \Delta, \beta` as SF predicts?

    From :func:`measured_stability` (``stats``) and :func:`predicted_stability_ratios` (``pred``):

    * ``spearman_measured_vs_sf`` / ``spearman_measured_vs_derived``: rank correlation of the
      measured ratios (``LW_h/LW_s``, ``LX_h/LX_s``) with the predicted ones, for W and X;
    * ``partial_effects``: :func:`stability_partial_effects` of each statistic on the measured and
      on SF's log ratio (``coef``, ``t``), and a verdict per statistic: ``"reproduced"`` (SF's sign,
      :math:`|t| \ge 2`), ``"opposite sign"`` (:math:`|t| \ge 2`), ``"same sign, unresolved"`` /
      ``"opposite sign, unresolved"`` (:math:`|t| < 2`) or ``"SF predicts no effect"``
      (:math:`|\text{SF effect}| < 0.05`), with the size ratio ``measured_over_sf``;
    * ``log_ratio_span``: :math:`\max - \min` of the log ratios, measured and SF's (how far each
      moves at all over the instances);
    * ``not_reproduced``: the list of ``"W: delta_h (...)"`` entries whose verdict is not
      ``"reproduced"`` (and SF predicts an effect);
    * ``fraction_measured_topk_better`` / ``fraction_sf_predicts_topk_better``: share of
      instances with ratio < 1;
    * ``max_measured_over_derived_bound``: the largest measured / derived constant (<= 1 by claims
      ``F10``, ``F10b``, ``F10c``).

    Source: derived here (library analysis; SF's conditions are those of the authors' code).

    Returns:
      a JSON-serialisable dict (floats, lists, strings).
    """
    mw = np.asarray(stats["LW_h"], float) / np.asarray(stats["LW_s"], float)
    mx = np.asarray(stats["LX_h"], float) / np.asarray(stats["LX_s"], float)
    effects, not_reproduced = {}, []
    for fam, m, p in (("W", mw, pred["sf_w"]), ("X", mx, pred["sf_x"])):
        cm, tm = stability_partial_effects(stats, m, k)
        cp, _ = stability_partial_effects(stats, p, k)
        rows = {}
        for name, a, t, b in zip(STABILITY_EFFECT_FEATURES, cm, tm, cp):
            v = _verdict(float(a), float(t), float(b))
            rows[name] = {"measured": float(a), "t": float(t), "sf": float(b), "verdict": v,
                          "measured_over_sf": float(a / b) if abs(b) >= 0.05 else float("nan")}
            if v not in ("reproduced", "SF predicts no effect"):
                not_reproduced.append(f"{fam}: {name} ({v}; measured {a:+.3f} per s.d., SF {b:+.3f})")
        effects[fam] = rows
    return {
        "spearman_measured_vs_sf": {"W": rank_correlation(mw, pred["sf_w"]), "X": rank_correlation(mx, pred["sf_x"])},
        "spearman_measured_vs_derived": {"W": rank_correlation(mw, pred["derived_w"]),
                                         "X": rank_correlation(mx, pred["derived_x"])},
        "partial_effects": effects,
        "not_reproduced": not_reproduced,
        "log_ratio_span": {"measured W": float(np.ptp(np.log(mw))), "SF W": float(np.ptp(np.log(pred["sf_w"]))),
                           "measured X": float(np.ptp(np.log(mx))), "SF X": float(np.ptp(np.log(pred["sf_x"])))},
        "fraction_sf_predicts_topk_better": {"W": float(np.mean(pred["sf_w"] < 1)), "X": float(np.mean(pred["sf_x"] < 1))},
        "fraction_measured_topk_better": {"W": float(np.mean(mw < 1)), "X": float(np.mean(mx < 1))},
        "max_measured_over_derived_bound": {
            "W_topk": float(np.max(np.asarray(stats["LW_h"]) / pred["bound_w_h"])),
            "W_full": float(np.max(np.asarray(stats["LW_s"]) / pred["bound_w_s"])),
            "X_topk": float(np.max(np.asarray(stats["LX_h"]) / pred["bound_x_h"])),
            "X_full": float(np.max(np.asarray(stats["LX_s"]) / pred["bound_x_s"])),
        },
    }



def random_attention_instance(rng: Any, n: int, d: int, *, gamma: Any = 1.0, sink: Any = 0.0,
                              count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Random unit-norm tokens and a weight matrix with controlled dispersion and in-degree.

    Tokens are Gaussian, normalised to :math:`\|x_i\| = 1` (:math:`\Xi = 1`). With ``sink > 0``
    token 0 leans towards a random unit direction :math:`u` (weight ``sink``), every token a
    little (weight :math:`\min(\text{sink}, 1)/2`), and :math:`W \propto G/\|G\|_2 +
    \text{sink}\cdot uu^\top` (:math:`G` Gaussian): every query's logit with token 0 is raised, so
    many queries select it (large in-degree :math:`\beta_0`). :math:`W` is rescaled to
    :math:`\|W\|_2 = \gamma`; dispersions obey :math:`\delta \le 2\gamma` (claim ``F1b``), so
    ``gamma`` controls :math:`\delta_s`.

    A NumPy test-data generator (no ``jax.random``: its compile time would dominate the claims'
    sweeps on CPU); feed the arrays to any function of this library.

    Args:
      rng: a ``numpy.random.Generator`` or an int seed.
      n: tokens (``>= 2``).  d: dimension (``>= 2``).
      gamma: :math:`\Gamma = \|W\|_2 > 0`, scalar or one per instance.
      sink: ``>= 0`` strength of the shared key, scalar or one per instance.
      count: number of instances (leading axis), or ``None`` for a single one.

    Returns:
      float64 NumPy arrays ``(X, W)`` of shapes ``([count,] n, d)`` and ``([count,] d, d)``.

    Example:
      >>> X, W = random_attention_instance(0, 8, 4, gamma=2.0)
      >>> round(float(np.linalg.norm(W, 2)), 9), round(float(max_token_norm(X)), 9)
      (2.0, 1.0)
    """
    n = check_int_in_range(n, "n", 2)
    d = check_int_in_range(d, "d", 2)
    c = 1 if count is None else check_int_in_range(count, "count", 1)
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(check_int_in_range(rng, "rng", 0))
    g = np.broadcast_to(np.asarray(gamma, dtype=float), (c,))
    s = np.broadcast_to(np.asarray(sink, dtype=float), (c,))
    if np.any(~np.isfinite(g)) or np.any(g <= 0):
        raise ValueError(f"gamma must be finite and > 0, got {gamma!r}")
    if np.any(~np.isfinite(s)) or np.any(s < 0):
        raise ValueError(f"sink must be finite and >= 0, got {sink!r}")

    def unit_rows(a):
        return a / np.linalg.norm(a, axis=-1, keepdims=True)

    u = unit_rows(rng.normal(size=(c, d)))
    X = unit_rows(rng.normal(size=(c, n, d)))
    X[:, 0] += s[:, None] * u  # the sink token leans towards u ...
    X = unit_rows(X + 0.5 * np.minimum(s, 1.0)[:, None, None] * u[:, None, :])  # ... every token a little
    G = rng.normal(size=(c, d, d))
    G = G / np.linalg.norm(G, ord=2, axis=(1, 2))[:, None, None] + s[:, None, None] * u[:, :, None] * u[:, None, :]
    W = g[:, None, None] * G / np.linalg.norm(G, ord=2, axis=(1, 2))[:, None, None]
    return (X[0], W[0]) if count is None else (X, W)
