"""SF Figs. 5/23 (reproduced at reduced size): 2-D training-loss landscapes of FULL and TOPK(5).

The trained models come from the SF runner cache (``<out>/sf_runs``, shared with ``sf_fig1``;
``runner.profile_settings``): one task (Even Pairs where the profile has it) and the profile's
first seed, each taken at matched training loss (``sf_landscapes.matched_loss_epochs``: the first
epoch at which its training loss reaches the higher final loss of the two). Protocol as the SF authors' ``ll-test.py``/``gen-loss-landscape.sh`` (docs/notes/semantic_focus.md
§3): two Gaussian directions rescaled per parameter tensor to that tensor's norm
(:mod:`softmax_stability.experiments.landscape`, ``normalization="tensor"``), direction seed
11111 (+ the figure seed; drawn with ``jax.random``, so not the authors' exact directions), grid
over ``[-1, 1]^2``, mean cross-entropy over the whole training set in evaluation mode; log-spaced
contour levels. Grid: 200 x 200 (the authors') in ``full``, 21 x 21 in ``quick``, 5 x 5 in
``smoke``. Both panels share one colour scale.

The runs and surfaces come from :mod:`softmax_stability.experiments.sf_landscapes`, cached in
``<out>/sf_runs`` and ``<out>/sf_landscapes``, so ``sf_fig27`` reuses them.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from figures._common import FigureContext, figure

COLORS = {"FULL": "black", "TOPK(5)": "mediumaquamarine"}


def _levels(surfaces, n=30):
    finite = np.concatenate([s[np.isfinite(s)] for s in surfaces])
    lo, hi = float(finite.min()), float(finite.max())
    lo = max(lo, 1e-8)
    if hi <= lo * (1 + 1e-6):
        hi = lo * 1.01 + 1e-6
    return np.exp(np.linspace(np.log(lo), np.log(hi), n))


@figure(name="sf_loss_landscape", caption="Training-loss landscape of FULL and TOPK(5) models taken at matched "
        "training loss, on the plane of two per-tensor-normalised random directions (shared log colour scale; x "
        "marks the trained parameters).", source="SF Figs. 5/23 (reproduced at reduced size)", order=63)
def make(ctx: FigureContext) -> None:
    import matplotlib.colors as mcols

    from softmax_stability.experiments.sf_landscapes import VARIANTS, compute_landscapes

    L = compute_landscapes(ctx.profile, seed=ctx.seed, runs_dir=ctx.out_dir / "sf_runs",
                           cache_dir=ctx.out_dir / "sf_landscapes", progress=ctx.show_progress)
    ctx.params.update(L["params"])
    a, b = L["alphas"], L["betas"]
    surfs = [L["surfaces"][v]["surface"] for v in VARIANTS]
    levels = _levels(surfs)
    norm = mcols.LogNorm(vmin=levels[0], vmax=levels[-1])
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.8), squeeze=False, gridspec_kw={"wspace": 0.35})
    cs = None
    for ax, v, f in zip(axes[0], VARIANTS, surfs):
        rec = L["surfaces"][v]
        fm = np.ma.masked_invalid(f).T  # contour wants [y, x]
        cs = ax.contourf(a, b, fm, levels=levels, norm=norm, cmap="magma", extend="both")
        ax.contour(a, b, fm, levels=levels[::3], colors="w", linewidths=0.4, alpha=0.6)
        ax.plot([0], [0], "x", color="cyan", ms=8, mew=2)
        ax.set_title(f"{v}, epoch {rec['epoch']} of {rec['epochs_run']}: train loss {rec['train_loss']:.3f}\n"
                     f"(eval mode L(θ) = {float(rec['loss0']):.3f}, train acc {100 * float(rec['acc0']):.0f}%)",
                     fontsize=9)
        ax.set_xlabel(r"$\alpha$ (direction $d_1$)")
        ax.set_aspect("equal")
    axes[0, 0].set_ylabel(r"$\beta$ (direction $d_2$)")
    cb = fig.colorbar(cs, ax=axes[0].tolist(), shrink=0.9)
    ticks = np.geomspace(levels[0], levels[-1], 6)
    cb.set_ticks(ticks, labels=[f"{t:.3g}" for t in ticks])
    cb.minorticks_off()
    cb.set_label("training cross-entropy (log scale)")
    fig.suptitle(f"{L['task'].replace('_', ' ').title()}, seed {L['seed']}, {a.size}x{b.size} grid; models compared at\n"
                 f"matched training loss (each at its first epoch with loss <= {L['match']['train_loss']:.3f})"
                 + (f" — {ctx.profile} profile: small-scale reconstruction" if ctx.quick else ""), fontsize=9)
    ctx.set_outcome(f"At matched training loss ({L['match']['train_loss']:.3f}; "
                    + ", ".join(f"{v} at epoch {L['surfaces'][v]['epoch']}" for v in VARIANTS)
                    + "), the loss ranges on the plotted plane are "
                    + ", ".join(f"{v} {np.nanmin(f):.3g}-{np.nanmax(f):.3g}" for v, f in zip(VARIANTS, surfs))
                    + "; sf_fig27 turns these surfaces into Lipschitz estimates.")
    ctx.save_figure(fig)
    rows = [[v, float(x), float(y), float(L["surfaces"][v]["surface"][i, j])]
            for v in VARIANTS for i, x in enumerate(a) for j, y in enumerate(b)]
    ctx.save_csv(["variant", "alpha", "beta", "train_loss"], rows)
    md = [f"# Loss landscapes ({ctx.profile} profile)", "",
          f"Task `{L['task']}`, run seed {L['seed']}, {a.size}x{b.size} grid on [-1, 1]^2, directions normalised "
          f"per tensor (SF authors' protocol), direction seed {L['direction_seed']}.", "",
          f"Matched training loss: {L['match']['rule']} ({L['match']['train_loss']:.4g}); the model of a variant "
          "is its run stopped at that epoch (the same trajectory as the full run up to there).", "",
          "| variant | epoch | train loss at epoch | ‖θ‖ | L(θ), eval mode | train acc | min L on grid | max L on grid |",
          "|---|---|---|---|---|---|---|---|"]
    for v, f in zip(VARIANTS, surfs):
        rec = L["surfaces"][v]
        md.append(f"| {v} | {rec['epoch']}/{rec['epochs_run']} | {rec['train_loss']:.4g} | "
                  f"{float(rec['theta_norm']):.3g} | {float(rec['loss0']):.4g} | "
                  f"{100 * float(rec['acc0']):.1f}% | {np.nanmin(f):.4g} | {np.nanmax(f):.4g} |")
    ctx.save_markdown("\n".join(md) + "\n")
