"""Measured stability of top-k vs full softmax attention against the ratio the SF conditions predict.

Random token sets (:func:`softmax_stability.focus.random_attention_instance`: unit tokens,
:math:`\\|W\\|_2 = \\gamma` controls the dispersion, a shared "sink" key controls the in-degree),
self-attention :math:`P = \\xi(XWX^\\top)` with ``n = 16`` tokens and top-``k = 4``
(smoke profile: ``n = 8``, ``k = 2``).

* Stability in :math:`W`: :func:`~softmax_stability.focus.finite_stability_w` at radius
  :math:`r = \\|W' - W\\|_2`, the largest over one selection-flipping direction
  (:func:`~softmax_stability.focus.selection_flip_direction`) and random ones -- a finite step,
  so the top-k selection can change and the separation :math:`\\Delta` matters.
* Stability in :math:`X`: :func:`~softmax_stability.focus.local_stability` (autodiff, dense SVD),
  where the key in-degree :math:`\\beta` matters.

Predicted ratios: SF's :math:`\\lambda(\\xi_h)/\\lambda(\\xi_s)` (:func:`~softmax_stability.focus.lambda_w_topk`
etc.; :math:`\\mathrm{LHS} < 1` iff the ratio < 1) from the instance's worst-case statistics
(max dispersions, min separation, max in-degree, :math:`2\\Gamma\\Xi^2`), and the ratio of the constants
derived in this library (:func:`~softmax_stability.focus.derived_lambda_w`, ``derived_lambda_x``), which
bound the measured values (claims F10*). The SF constants are worst-case bounds up to an unknown
common factor, so agreement is expected in trend (rank correlation), not in value.
Panels (c, d) vary one control at a time: :math:`\\gamma` (dispersions grow together, their ratio
fixed) and the sink strength (in-degree).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from figures._common import FigureContext, figure

N, D, K = 16, 8, 4
SMOKE_SIZES = (8, 4, 2, 2)  # n, d, k, directions in the smoke profile (compile time dominates)
RADIUS = 0.02
N_DIRS = 8


def measure(X, W, Dirs, k=K):
    """Per instance: measured W/X stability of top-k and full softmax and the statistics."""
    import jax
    import jax.numpy as jnp

    from softmax_stability import focus

    def one(x, w, dirs):
        A = x @ w @ x.T
        out = {}
        for name, kk in (("h", k), ("s", None)):
            fin = jax.vmap(lambda dd: focus.finite_stability_w(x, w, dd, RADIUS, kk))(dirs)
            out["LW_" + name] = jnp.max(fin)
            out["LX_" + name] = focus.local_stability(x, w, kk, wrt="X")
        out["delta_s"] = jnp.max(focus.dispersion(A))
        out["delta_h"] = jnp.max(focus.dispersion(A, k))
        out["sep"] = jnp.min(focus.separation(A, k))
        out["beta_max"] = jnp.max(focus.topk_in_degree(A, k)).astype(A.dtype)
        out["gamma"] = jnp.linalg.norm(w, 2)
        out["xi"] = focus.max_token_norm(x)
        return out

    res = jax.jit(jax.vmap(one))(jnp.asarray(X), jnp.asarray(W), jnp.asarray(Dirs))
    return {k: np.asarray(v) for k, v in res.items()}


def predictions(res, n=N, k=K):
    """SF ratios and derived-constant ratios (top-k over full) for each instance."""
    from softmax_stability import focus

    dmax = 2 * res["gamma"] * res["xi"] ** 2  # 2 Gamma Xi^2
    bbar = res["beta_max"] / k
    return {
        "sf_w": np.asarray(focus.lambda_w_topk(res["delta_h"], res["sep"]) / focus.lambda_w_full(res["delta_s"])),
        "sf_x": np.asarray(focus.lambda_x_topk(res["delta_h"], res["sep"], bbar, dmax)
                           / focus.lambda_x_full(res["delta_s"], dmax)),
        "derived_w": np.asarray(
            focus.derived_lambda_w(res["delta_h"], k, n, res["xi"], sep=res["sep"], radius=RADIUS)
            / focus.derived_lambda_w(res["delta_s"], n, n, res["xi"], radius=RADIUS)),
        "derived_x": np.asarray(focus.derived_lambda_x(res["delta_h"], k, res["beta_max"], res["gamma"], res["xi"])
                                / focus.derived_lambda_x(res["delta_s"], n, n, res["gamma"], res["xi"])),
        "bound_w_h": np.asarray(focus.derived_lambda_w(res["delta_h"], k, n, res["xi"], sep=res["sep"],
                                                       radius=RADIUS)),
        "bound_w_s": np.asarray(focus.derived_lambda_w(res["delta_s"], n, n, res["xi"], radius=RADIUS)),
        "bound_x_h": np.asarray(focus.derived_lambda_x(res["delta_h"], k, res["beta_max"], res["gamma"], res["xi"])),
        "bound_x_s": np.asarray(focus.derived_lambda_x(res["delta_s"], n, n, res["gamma"], res["xi"])),
    }


def directions(rng, X, W, k=K, n_dirs=N_DIRS):
    from softmax_stability import focus

    d = W.shape[-1]
    dirs = rng.normal(size=(X.shape[0], n_dirs, d, d))
    dirs /= np.linalg.norm(dirs, ord=2, axis=(2, 3))[..., None, None]
    for t in range(X.shape[0]):
        dirs[t, 0] = focus.selection_flip_direction(X[t], W[t], k)
    return dirs


def _spearman(a, b):
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    return float(spearmanr(a[ok], b[ok])[0]) if ok.sum() > 2 else float("nan")


FEATURES = ("delta_s", "delta_h", "log(1+1/Delta)", "log(1+beta_bar)")


def partial_effects(res, y, k=K):
    """Least-squares coefficients of log(y) on the standardised statistics (the partial effect of
    each statistic with the others held fixed, to first order)."""
    feats = np.stack([res["delta_s"], res["delta_h"], np.log1p(1.0 / res["sep"]),
                      np.log1p(res["beta_max"] / k)], axis=1)
    ok = np.all(np.isfinite(feats), axis=1) & np.isfinite(np.log(y))
    f = feats[ok]
    f = (f - f.mean(0)) / np.where(f.std(0) > 0, f.std(0), 1.0)
    A = np.concatenate([f, np.ones((f.shape[0], 1))], axis=1)
    coef, *_ = np.linalg.lstsq(A, np.log(y[ok]), rcond=None)
    return coef[:-1]


@figure(name="sf_stability_measured", order=270,
        caption="Measured stability ratio of top-k over full softmax attention (in W: finite step; in X: "
                "autodiff) against SF's predicted ratio lambda(topk)/lambda(full) for random token sets, "
                "along a dispersion sweep, and the partial effect of each statistic.",
        source="library figure (SF conditions (304)/(305) vs measurement; constants derived here)")
def make(ctx: FigureContext) -> None:
    import jax

    from softmax_stability import focus

    jax.config.update("jax_enable_x64", True)
    count = {"smoke": 12, "quick": 96, "full": 800}[ctx.profile]
    n_sweep = {"smoke": 4, "quick": 10, "full": 20}[ctx.profile]
    n_base = {"smoke": 2, "quick": 4, "full": 8}[ctx.profile]
    n, d, k, n_dirs = SMOKE_SIZES if ctx.smoke else (N, D, K, N_DIRS)
    rng = np.random.default_rng(ctx.seed)
    gam = np.exp(rng.uniform(np.log(0.25), np.log(12.0), count))
    sink = rng.uniform(0.0, 4.0, count)
    X, W = focus.random_attention_instance(rng, n, d, gamma=gam, sink=sink, count=count)
    # dispersion sweep: the same tokens and direction of W, ||W||_2 = gamma scaled (delta_h/delta_s fixed)
    gs = np.geomspace(0.25, 12.0, n_sweep)
    Xs, Ws = [], []
    for _ in range(n_base):
        x0, w0 = focus.random_attention_instance(rng, n, d, gamma=1.0, sink=float(rng.uniform(0, 4)))
        Xs += [x0] * n_sweep
        Ws += [g * w0 for g in gs]
    X_all = np.concatenate([X, np.stack(Xs)])
    W_all = np.concatenate([W, np.stack(Ws)])
    res_all = measure(X_all, W_all, directions(rng, X_all, W_all, k, n_dirs), k)  # one compiled call for everything
    pred_all = predictions(res_all, n, k)
    res = {k: v[:count] for k, v in res_all.items()}
    pred = {k: v[:count] for k, v in pred_all.items()}
    sweep = {k: v[count:].reshape(n_base, n_sweep) for k, v in res_all.items()}
    sweep_pred = {k: v[count:].reshape(n_base, n_sweep) for k, v in pred_all.items()}
    mw = res["LW_h"] / res["LW_s"]
    mx = res["LX_h"] / res["LX_s"]
    effects = {"measured W": partial_effects(res, mw, k), "SF W": partial_effects(res, pred["sf_w"], k),
               "measured X": partial_effects(res, mx, k), "SF X": partial_effects(res, pred["sf_x"], k)}

    summary = {
        "instances": int(count),
        "spearman_measured_vs_sf": {"W": _spearman(mw, pred["sf_w"]), "X": _spearman(mx, pred["sf_x"])},
        "spearman_measured_vs_derived": {"W": _spearman(mw, pred["derived_w"]),
                                         "X": _spearman(mx, pred["derived_x"])},
        "partial_effects_on_log_ratio": {k: dict(zip(FEATURES, map(float, v))) for k, v in effects.items()},
        "fraction_sf_predicts_topk_better": {"W": float(np.mean(pred["sf_w"] < 1)),
                                             "X": float(np.mean(pred["sf_x"] < 1))},
        "fraction_measured_topk_better": {"W": float(np.mean(mw < 1)), "X": float(np.mean(mx < 1))},
        "max_measured_over_derived_bound": {
            "W_topk": float(np.max(res_all["LW_h"] / pred_all["bound_w_h"])),
            "W_full": float(np.max(res_all["LW_s"] / pred_all["bound_w_s"])),
            "X_topk": float(np.max(res_all["LX_h"] / pred_all["bound_x_h"])),
            "X_full": float(np.max(res_all["LX_s"] / pred_all["bound_x_s"])),
        },
    }
    ctx.params.update(n=n, d=d, k=k, radius=RADIUS, directions=n_dirs, instances=count, gamma=[0.25, 12.0],
                      sink=[0.0, 4.0], sweep_points=n_sweep, sweep_bases=n_base, summary=summary)
    ctx.save_json(summary, suffix="summary")

    fig, axs = plt.subplots(1, 4, figsize=(20, 4.2))
    fig.subplots_adjust(wspace=0.6)  # (constrained layout costs seconds with the colorbars)
    for ax, m, p, cval, clab, lab in (
            (axs[0], mw, pred["sf_w"], np.log10(res["sep"]), r"$\log_{10}\Delta_{\min}$", "W (finite step)"),
            (axs[1], mx, pred["sf_x"], res["beta_max"] / k, r"$\bar\beta = \beta_{\max}/k$", "X (autodiff)")):
        sc = ax.scatter(p, m, c=cval, s=9, cmap="viridis")
        fig.colorbar(sc, ax=ax, label=clab)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axvline(1, color="k", lw=0.8, ls=":")
        ax.axhline(1, color="k", lw=0.8, ls=":")
        ax.set_xlabel(r"SF predicted $\lambda(\xi_h)/\lambda(\xi_s)$")
        ax.set_ylabel("measured top-k / full")
        ax.set_title(f"({'ab'[ax is axs[1]]}) {lab}: Spearman {_spearman(m, p):.2f}", fontsize=9)
    ax = axs[2]
    for b in range(n_base):
        c = f"C{b}"
        ax.plot(sweep["delta_s"][b], sweep["LX_h"][b] / sweep["LX_s"][b], "-o", ms=3, color=c,
                label="measured, X" if b == 0 else None)
        ax.plot(sweep["delta_s"][b], sweep["LW_h"][b] / sweep["LW_s"][b], ":s", ms=3, color=c,
                label="measured, W" if b == 0 else None)
        ax.plot(sweep["delta_s"][b], sweep_pred["sf_x"][b], "--", color=c, label="SF predicted, X" if b == 0 else None)
    ax.axhline(1, color="k", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\delta_s$ ($\|W\|_2$ scaled; colour = token set)")
    ax.set_ylabel("top-k / full")
    ax.legend(fontsize=7)
    ax.set_title("(c) dispersion sweep", fontsize=9)
    ax = axs[3]
    x = np.arange(len(FEATURES))
    for i, (name, v) in enumerate(effects.items()):
        ax.bar(x + (i - 1.5) * 0.2, v, width=0.2, label=name,
               color=["C0", "C0", "C1", "C1"][i], alpha=[1.0, 0.45, 1.0, 0.45][i])
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels([r"$\delta_s$", r"$\delta_h$", r"$\ln(1+1/\Delta)$", r"$\ln(1+\bar\beta)$"])
    ax.set_ylabel("effect on log ratio (per s.d.)")
    ax.legend(fontsize=7)
    ax.set_title("(d) partial effects, measured vs SF", fontsize=9)
    ctx.save_figure(fig)

    keys = ["gamma", "xi", "delta_s", "delta_h", "sep", "beta_max", "LW_h", "LW_s", "LX_h", "LX_s"]
    pkeys = ["sf_w", "sf_x", "derived_w", "derived_x", "bound_w_h", "bound_w_s", "bound_x_h", "bound_x_s"]
    ctx.save_csv(["set"] + keys + pkeys,
                 [["random" if i < count else f"sweep{(i - count) // n_sweep}"]
                  + [float(res_all[k][i]) for k in keys] + [float(pred_all[k][i]) for k in pkeys]
                  for i in range(X_all.shape[0])])
