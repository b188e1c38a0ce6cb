"""SF Fig. 27 (reproduced at reduced size): estimated loss Lipschitz constants of FULL and TOPK(5).

From the landscapes of ``sf_loss_landscape`` (same cache, same models, taken at matched training loss:
:func:`softmax_stability.experiments.sf_landscapes.matched_loss_epochs`): for each radius ``t``, the
50/75/95/99th percentiles and the maximum of ``|L(p) - L(p')| / ||θ_p - θ_p'||`` over neighbouring
grid points ``p, p'`` inside ``[-t, t]^2``
(:func:`softmax_stability.experiments.landscape.landscape_lipschitz`), with the true
parameter-space distance; the SF authors' own convention (dividing by the grid-coefficient
spacing, ``lgrads.py``) is shown next to it, since the two can rank the models differently: with
per-tensor-normalised directions they differ by the factor ``||θ||`` of each model.
Radii: the authors' ``0.01, 0.02, ..., 0.69`` in ``full``; the grid's own positive coordinates in
``quick``/``smoke``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from figures._common import FigureContext, figure

PERCENTILES = (50, 75, 95, 99, 100)
COLORS = {"FULL": "black", "TOPK(5)": "mediumaquamarine"}
STYLES = {50: ":", 75: "-.", 95: "--", 99: "-", 100: "-"}


def radii(profile: str, alphas: np.ndarray) -> np.ndarray:
    if profile == "full":
        return np.round(np.arange(0.01, 0.70, 0.01), 2)
    return alphas[alphas > 1e-12]


@figure(name="sf_fig27", caption="Estimated loss Lipschitz constants (percentiles of finite-difference slopes "
        "between neighbouring landscape grid points within radius t) of trained FULL and TOPK(5), with the true "
        "parameter-space distance and with the SF authors' grid-spacing convention.",
        source="SF Fig. 27 (reproduced at reduced size)", order=64)
def make(ctx: FigureContext) -> None:
    from softmax_stability.experiments import landscape, runner
    from softmax_stability.experiments.sf_landscapes import VARIANTS, compute_landscapes

    L = compute_landscapes(ctx.profile, seed=ctx.seed, runs_dir=ctx.out_dir / "sf_runs",
                           cache_dir=ctx.out_dir / "sf_landscapes", progress=ctx.show_progress)
    a, b = L["alphas"], L["betas"]
    ts = radii(ctx.profile, a)
    ctx.params.update(percentiles=list(PERCENTILES), radii=[float(t) for t in ts])
    rows, est = [], {}
    for v in VARIANTS:
        rec = L["surfaces"][v]
        G = rec["gram"]
        # the distances depend on d1, d2 only through their Gram matrix: two 2-D vectors with the
        # stored Gram matrix (c^T c = G) give exactly the same slopes as the full directions
        lam, vec = np.linalg.eigh(G)
        c = np.sqrt(np.clip(lam, 0.0, None))[:, None] * vec.T
        d1, d2 = {"w": c[:, 0]}, {"w": c[:, 1]}
        z2 = {"w": np.zeros(2)}
        for dist in ("parameter", "grid"):
            for t in list(ts) + [None]:
                for q in PERCENTILES:
                    val = float(landscape.landscape_lipschitz(rec["surface"], z2, d1, d2, a, b, radius=t,
                                                              percentile=q, distance=dist))
                    est[(v, dist, t, q)] = val
                    if t is not None:
                        rows.append([v, dist, float(t), q, val])
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for k, dist in enumerate(("parameter", "grid")):
        ax = axes[k]
        for v in VARIANTS:
            for q in PERCENTILES:
                ys = [est[(v, dist, t, q)] for t in ts]
                ax.plot(ts, ys, STYLES[q], color=COLORS[v], lw=2.0 if q == 100 else 1.2,
                        marker="o" if q == 100 else None, ms=3, label=f"{v}: {'max' if q == 100 else f'{q}%'}")
        ax.set_xlabel(r"grid radius $t$ around $\theta$")
        ax.set_yscale("log")
        ax.set_title("true distance $\\|\\Delta\\alpha d_1+\\Delta\\beta d_2\\|$" if dist == "parameter"
                     else "SF authors' convention (per unit grid coefficient)", fontsize=9)
    axes[0].set_ylabel(r"$|L(\theta_p)-L(\theta_{p'})| \,/\, \mathrm{distance}$")
    axes[1].legend(fontsize=6, ncol=2)
    ax = axes[2]
    x = np.arange(len(VARIANTS))
    ax.bar(x, [est[(v, "parameter", None, 100)] for v in VARIANTS], color=[COLORS[v] for v in VARIANTS],
           edgecolor="k")
    ax.set_xticks(x, VARIANTS)
    ax.set_ylabel("estimated Lipschitz constant (max, whole grid)")
    ax.set_title("max over the whole grid, true distance", fontsize=9)
    rt = (est[("TOPK(5)", "parameter", None, 100)] / est[("FULL", "parameter", None, 100)]
          if est[("FULL", "parameter", None, 100)] > 0 else float("nan"))
    verdict = (f"TOPK(5)/FULL max slope = {rt:.2f}: TOPK(5)'s landscape is "
               + ("flatter, as SF Fig. 27 reports" if rt < 1 else "NOT flatter: SF Fig. 27's ordering is not reproduced"))
    fig.suptitle(f"{L['task'].replace('_', ' ').title()}, seed {L['seed']}, {a.size}x{b.size} grid ({ctx.profile}"
                 f"{': small-scale reconstruction' if ctx.quick else ''}); models at matched training loss "
                 f"{L['match']['train_loss']:.3f} ("
                 + ", ".join(f"{v} epoch {L['surfaces'][v]['epoch']}" for v in VARIANTS) + ")\n" + verdict,
                 fontsize=10)
    ctx.set_outcome(verdict + f" (true parameter distance; models at matched training loss "
                    f"{L['match']['train_loss']:.3f}).")
    fig.tight_layout()
    ctx.save_figure(fig)
    ctx.save_csv(["variant", "distance", "radius", "percentile", "estimate"], rows)

    def g(v, dist, q=100):
        return est[(v, dist, None, q)]

    md = [f"# Estimated loss Lipschitz constants, FULL vs TOPK(5) ({ctx.profile} profile)", "",
          f"Task `{L['task']}`, run seed {L['seed']}, {a.size}x{b.size} landscape grid on [-1, 1]^2 "
          f"(`sf_loss_landscape`), whole grid. `true` divides by ‖Δα d1 + Δβ d2‖; `authors'` by the grid "
          "spacing (SF `lgrads.py`).", "",
          f"Models at matched training loss: {L['match']['rule']} ({L['match']['train_loss']:.4g}).", "",
          "| variant | epoch | ‖θ‖ | L(θ) | train acc | max (true) | 95% (true) | max (authors') | 95% (authors') |",
          "|---|---|---|---|---|---|---|---|---|"]
    for v in VARIANTS:
        rec = L["surfaces"][v]
        md.append(f"| {v} | {rec['epoch']}/{rec['epochs_run']} | {float(rec['theta_norm']):.3g} | {float(rec['loss0']):.4g} | "
                  f"{100 * float(rec['acc0']):.1f}% | {g(v, 'parameter'):.4g} | {g(v, 'parameter', 95):.4g} | "
                  f"{g(v, 'grid'):.4g} | {g(v, 'grid', 95):.4g} |")
    rt, ra = (g("TOPK(5)", d) / g("FULL", d) if g("FULL", d) > 0 else float("nan") for d in ("parameter", "grid"))
    md += ["", f"Ratio TOPK(5)/FULL of the max: {rt:.3g} (true distance), {ra:.3g} (authors' convention).",
           "", "What this shows: " + (
               "the TOPK(5) landscape is flatter than FULL's (smaller estimate), the direction the SF paper reports."
               if rt < 1 else "the TOPK(5) landscape is NOT flatter than FULL's here (estimate at least as large); "
               "this does not reproduce the SF paper's Fig. 27 ordering.")
           + (" The two conventions disagree on the ordering." if (rt < 1) != (ra < 1) else
              " Both conventions give the same ordering."),
           "", "Caveats: one task, one seed, one pair of random directions; the estimate is a lower bound on the "
           "loss's Lipschitz constant over the plotted region only. "
           + (f"In the {ctx.profile} profile the models are trained with reduced settings "
              f"(`runner.profile_deviations`: {'; '.join(runner.profile_deviations(ctx.profile))}), "
              "so these are landscapes of smaller, shorter-trained models than the paper's; their training "
              "accuracies at the plotted point are "
              + ", ".join(f"{v} {100 * float(L['surfaces'][v]['acc0']):.1f}%" for v in VARIANTS) + "."
              if ctx.quick else "")
           + (" Even at matched training loss the two models' training accuracies differ by more than 10 points."
              if np.ptp([float(L["surfaces"][v]["acc0"]) for v in VARIANTS]) > 0.10 else "")]
    ctx.save_markdown("\n".join(md) + "\n")
    ctx.save_json({"estimates": [{"variant": v, "distance": d, "radius": t, "percentile": q, "value": val}
                                 for (v, d, t, q), val in est.items()]}, suffix="data")
