"""Jacobian norms of softmax, top-k softmax, sparsemax and 1.5-entmax against effective support.

For one fixed logit direction per map, the logit scale sweeps from nearly uniform rows to nearly
one-hot rows. The x-axis is the effective support 1/sum p^2
(:func:`softmax_stability.dilution.effective_support`).

Lines (closed forms, the library's functions at the maps' outputs p): for softmax and top-k softmax
:func:`~softmax_stability.jacobian.spectral_norm` (secular equation),
:func:`~softmax_stability.jacobian.frobenius_norm`, :func:`~softmax_stability.jacobian.one_norm` and
the exact :func:`~softmax_stability.jacobian.inf_to_one_norm` (n = 16 <= 24); for sparsemax and
1.5-entmax :func:`~softmax_stability.jacobian.sparsemax_spectral_norm` /
:func:`~softmax_stability.jacobian.entmax_spectral_norm` and, for the other norms, the same softmax
functions at the scaled-softmax form :math:`J = \\sigma(\\mathrm{diag}\\,q - qq^\\top)` of
:func:`~softmax_stability.jacobian.entmax_as_softmax`.

Points (measured independently of those formulas, then normed by dense NumPy: ``norm(J, 2)``, the
Frobenius norm, the largest column sum and the maximum of ``||J s||_1`` over all 2^16 sign vectors):
the Jacobian of softmax and top-k softmax by ``jax.jacfwd`` of a plain ``exp / sum`` expression
(``maps.softmax`` and ``jax.nn.softmax`` carry ``custom_jvp`` rules that *are* the closed form);
of sparsemax and 1.5-entmax by central finite differences of the forward maps, with steps below the
distance to the nearest support change (exact on sparsemax's affine pieces; Richardson-extrapolated
for entmax), as in the claims ``S1``/``S2`` (:mod:`softmax_stability.claims.sparse_maps`).
Points within 1e-5 (sparsemax) / 1e-4 (entmax) of a support change are not drawn.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from figures._common import FigureContext, figure

N = 16  # small enough for the exact inf->1 norm of every map by sign enumeration
TOPK = 4
NORMS = ["spectral", "Frobenius", "1->1", "inf->1"]


def _plain_topk(z):
    """Softmax over the TOPK largest logits; the selection is constant for differentiation."""
    from softmax_stability.empirical import reference_softmax
    from softmax_stability.masks import topk_mask

    sel = topk_mask(jax.lax.stop_gradient(z), TOPK)
    return reference_softmax(jnp.where(sel, z, -jnp.inf))


def _measured():
    """map name -> (forward map, z -> (measured Jacobian, whether to draw it))."""
    from softmax_stability import maps
    from softmax_stability.empirical import entmax_fd_jacobian, reference_softmax, sparsemax_fd_jacobian

    def autodiff(f):
        return lambda z: (jax.jacfwd(f)(z), jnp.array(True))

    return {
        "softmax": (maps.softmax, autodiff(reference_softmax)),
        f"top-{TOPK} softmax": (lambda z: maps.topk_softmax(z, TOPK), autodiff(_plain_topk)),
        "sparsemax": (maps.sparsemax, lambda z: (lambda J, _, ok: (J, ok))(*sparsemax_fd_jacobian(z))),
        "1.5-entmax": (maps.entmax15, lambda z: (lambda J, _, ok: (J, ok))(*entmax_fd_jacobian(z, 1.5))),
    }


def _closed_form_norms(name: str, P) -> dict[str, np.ndarray]:
    """The library's closed-form norms for a batch of outputs ``P`` (one row per logit scale)."""
    from softmax_stability import jacobian as jac

    if name in ("sparsemax", "1.5-entmax"):
        alpha = 2.0 if name == "sparsemax" else 1.5
        q, sigma = jac.entmax_as_softmax(P, alpha)
        spectral = jac.sparsemax_spectral_norm(P) if alpha == 2.0 else jac.entmax_spectral_norm(P, alpha)
    else:  # top-k: the softmax formula on the selected set, zero elsewhere (p is zero there)
        q, sigma = P, 1.0
        spectral = jac.spectral_norm(P)
    out = {"spectral": spectral, "Frobenius": sigma * jac.frobenius_norm(q),
           "1->1": sigma * jac.one_norm(q), "inf->1": sigma * jac.inf_to_one_norm(q)}
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def _dense_norms(J: np.ndarray, signs: np.ndarray) -> dict[str, float]:
    return {
        "spectral": float(np.linalg.norm(J, 2)),
        "Frobenius": float(np.linalg.norm(J, "fro")),
        "1->1": float(np.abs(J).sum(axis=0).max()),
        "inf->1": float(np.abs(signs @ J.T).sum(axis=1).max()),
    }


@figure(name="jacobian_norm_vs_sparsity", order=10,
        caption="Spectral, Frobenius, 1->1 and inf->1 norms of the softmax, top-k, sparsemax and "
                "1.5-entmax Jacobians against effective support; library closed forms (lines) vs "
                "independently measured Jacobians (points: autodiff of a plain softmax, finite "
                "differences of the sparse maps).",
        source="library figure (closed forms of softmax_stability.jacobian)")
def make(ctx: FigureContext) -> None:
    from softmax_stability.dilution import effective_support

    jax.config.update("jax_enable_x64", True)
    n_scales = 40 if ctx.quick else 160
    scales = np.geomspace(1e-2, 1e2, n_scales)
    z0 = np.asarray(jax.random.normal(ctx.rng_key, (N,), dtype=jnp.float64))
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=N)))
    ctx.params.update(n=N, topk=TOPK, scales=[float(scales[0]), float(scales[-1]), n_scales])
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8), sharex=True)
    rows = []
    maps_ = _measured()
    colors = dict(zip(maps_, ["C0", "C1", "C2", "C3"]))
    Z = jnp.asarray(scales[:, None] * z0[None, :])
    for name, (f, measure) in ctx.progress(maps_.items(), desc="maps"):
        P = jax.jit(f)(Z)  # every map is batched over the leading axis
        support = np.asarray(effective_support(P))
        closed = _closed_form_norms(name, P)
        mj = jax.jit(measure)
        ad_support, ad_vals = [], {k: [] for k in NORMS}
        for i in range(0, n_scales, 3):
            J, ok = mj(Z[i])
            if not bool(ok):
                continue
            na = _dense_norms(np.asarray(J), signs)
            ad_support.append(float(support[i]))
            for k in NORMS:
                ad_vals[k].append(na[k])
            rows.append([name, float(scales[i]), float(support[i])] + [float(closed[k][i]) for k in NORMS]
                        + [na[k] for k in NORMS])
        order = np.argsort(support)
        for ax, k in zip(axes, NORMS):
            ax.plot(support[order], closed[k][order], "-", color=colors[name], label=name)
            ax.plot(ad_support, ad_vals[k], "o", ms=3.5, mfc="none", color=colors[name])
    for ax, k in zip(axes, NORMS):
        ax.set_xscale("log")
        ax.set_xlabel("effective support $1/\\sum_i p_i^2$")
        ax.set_title(f"{k} norm of the Jacobian")
        ax.grid(alpha=0.3)
    axes[0].axhline(0.5, color="k", lw=0.8, ls=":")
    axes[0].legend(fontsize=8, title="lines: closed form\npoints: autodiff (plain softmax)\n"
                   "or finite differences", title_fontsize=8)
    # agreement of the closed forms with the independent measurements, over every drawn point
    closed_m = np.array([r[3:3 + len(NORMS)] for r in rows], dtype=float)
    measured_m = np.array([r[3 + len(NORMS):] for r in rows], dtype=float)
    rel = np.abs(closed_m - measured_m) / np.maximum(np.abs(measured_m), 1e-12)
    worst = {k: float(rel[:, i].max()) for i, k in enumerate(NORMS)}
    spec_softmax = max(float(r[3]) for r in rows if r[0] == "softmax")
    ctx.params.update(max_relative_closed_minus_measured=worst, points_compared=len(rows),
                      max_softmax_spectral_norm=spec_softmax)
    agree = max(worst.values())
    outcome = (f"closed forms {'match' if agree < 1e-3 else 'DIFFER from'} the measured Jacobians at all "
               f"{len(rows)} points (largest relative difference {agree:.1e}); softmax spectral norm at most "
               f"{spec_softmax:.3f} ({'within' if spec_softmax <= 0.5 else 'ABOVE'} the bound 1/2)")
    fig.suptitle(f"Jacobian norms vs sparsity (n = {N}, logit scale 1e-2..1e2)\nmeasured: {outcome}", y=1.06)
    ctx.set_outcome(outcome[0].upper() + outcome[1:] + ".")
    ctx.save_figure(fig)
    ctx.save_csv(["map", "scale", "effective_support"] + [f"closed_{k}" for k in NORMS]
                 + [f"measured_{k}" for k in NORMS], rows)
