"""Jacobian norms of softmax, top-k softmax, sparsemax and 1.5-entmax against effective support.

For one fixed logit direction per map, the logit scale sweeps from nearly uniform rows to nearly
one-hot rows. Lines: norms of the closed-form Jacobians of :mod:`softmax_stability.jacobian`
(spectral norm from the secular equation, Frobenius, 1->1 and inf->1). Points: the same norms of
the Jacobian measured by ``jax.jacfwd`` through :mod:`softmax_stability.maps`. The x-axis is the
effective support 1/sum p^2 (:func:`softmax_stability.dilution.effective_support`).
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


def _maps():
    from softmax_stability import jacobian as jac
    from softmax_stability import maps

    return {
        "softmax": (maps.softmax, lambda p: jac.softmax_jacobian(p)),
        f"top-{TOPK} softmax": (lambda z: maps.topk_softmax(z, TOPK), lambda p: jac.softmax_jacobian(p)),
        "sparsemax": (maps.sparsemax, jac.sparsemax_jacobian),
        "1.5-entmax": (maps.entmax15, lambda p: jac.entmax_jacobian(p, 1.5)),
    }


def _norms(J: np.ndarray, signs: np.ndarray) -> dict[str, float]:
    return {
        "spectral": float(np.linalg.norm(J, 2)),
        "Frobenius": float(np.linalg.norm(J, "fro")),
        "1->1": float(np.abs(J).sum(axis=0).max()),
        "inf->1": float(np.abs(signs @ J.T).sum(axis=1).max()),
    }


@figure(name="jacobian_norm_vs_sparsity", order=10,
        caption="Spectral, Frobenius, 1->1 and inf->1 norms of the softmax, top-k, sparsemax and "
                "1.5-entmax Jacobians against effective support; closed form (lines) vs autodiff (points).",
        source="library figure (closed forms of softmax_stability.jacobian)")
def make(ctx: FigureContext) -> None:
    from softmax_stability import jacobian as jac
    from softmax_stability.dilution import effective_support

    jax.config.update("jax_enable_x64", True)
    n_scales = 40 if ctx.quick else 160
    scales = np.geomspace(1e-2, 1e2, n_scales)
    z0 = np.asarray(jax.random.normal(ctx.rng_key, (N,), dtype=jnp.float64))
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=N)))
    ctx.params.update(n=N, topk=TOPK, scales=[float(scales[0]), float(scales[-1]), n_scales])
    norms = ["spectral", "Frobenius", "1->1", "inf->1"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8), sharex=True)
    rows = []
    colors = dict(zip(_maps(), ["C0", "C1", "C2", "C3"]))
    for name, (f, closed) in ctx.progress(_maps().items(), desc="maps"):
        jf = jax.jit(jax.jacfwd(f))
        fj = jax.jit(f)
        support, closed_vals, ad_vals, ad_support = [], {k: [] for k in norms}, {k: [] for k in norms}, []
        for i, s in enumerate(scales):
            z = jnp.asarray(s * z0)
            p = fj(z)
            Jc = np.asarray(closed(p))
            nc = _norms(Jc, signs)
            if name in ("softmax",):  # the secular-equation and subset formulas, not dense algebra
                nc["spectral"] = float(jac.spectral_norm(p))
                nc["Frobenius"] = float(jac.frobenius_norm(p))
                nc["1->1"] = float(jac.one_norm(p))
                nc["inf->1"] = float(np.asarray(jac.inf_to_one_norm(p)))
            es = float(effective_support(p))
            support.append(es)
            for k in norms:
                closed_vals[k].append(nc[k])
            if i % 3 == 0:
                na = _norms(np.asarray(jf(z)), signs)
                ad_support.append(es)
                for k in norms:
                    ad_vals[k].append(na[k])
                rows.append([name, float(s), es] + [nc[k] for k in norms] + [na[k] for k in norms])
        order = np.argsort(support)
        for ax, k in zip(axes, norms):
            ax.plot(np.asarray(support)[order], np.asarray(closed_vals[k])[order], "-", color=colors[name],
                    label=name)
            ax.plot(ad_support, ad_vals[k], "o", ms=3.5, mfc="none", color=colors[name])
    for ax, k in zip(axes, norms):
        ax.set_xscale("log")
        ax.set_xlabel("effective support $1/\\sum_i p_i^2$")
        ax.set_title(f"{k} norm of the Jacobian")
        ax.grid(alpha=0.3)
    axes[0].axhline(0.5, color="k", lw=0.8, ls=":")
    axes[0].legend(fontsize=8, title="lines: closed form\npoints: jax.jacfwd", title_fontsize=8)
    fig.suptitle(f"Jacobian norms vs sparsity (n = {N}, logit scale 1e-2..1e2)", y=1.02)
    ctx.save_figure(fig)
    ctx.save_csv(["map", "scale", "effective_support"] + [f"closed_{k}" for k in norms]
                 + [f"autodiff_{k}" for k in norms], rows)
