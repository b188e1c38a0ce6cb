"""SF Fig. 1 (reproduced in JAX at reduced size): training loss and held-out accuracy per epoch.

Median over seeds with the 25-75% band, for FULL, BAND(5), BAND(5):1, BLOC(5), BLOC(5):1 and
TOPK(5) (ReLU) on the tasks of the profile. Runs come from
:mod:`softmax_stability.experiments.runner` and are cached under ``<out>/sf_runs`` (shared with
``sf_convergence_table``, ``sf_table6_measured`` and the landscape figures), so a rerun only plots.

The sizes, seeds and every deviation from the authors' setup are those of
``runner.profile_settings`` (the one source of truth): ``sf_fig1.md`` lists them as
``runner.profile_deviations`` computes them, and states what the run shows, computed from the
curves: the final median loss per variant and whether TOPK(5)'s median training loss lies below
FULL's over the late epochs (the second half of training), as SF Fig. 1 reports.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from figures._common import FigureContext, figure

COLORS = {"FULL": "black", "BAND(5)": "tab:blue", "BAND(5):1": "tab:cyan", "BLOC(5)": "tab:orange",
          "BLOC(5):1": "tab:olive", "TOPK(5)": "mediumaquamarine"}



@figure(name="sf_fig1", caption="Training cross-entropy (top) and held-out accuracy (bottom) per epoch, median "
        "over seeds with the 25-75% band, for full, input-agnostic (BAND/BLOC, with a global token) and "
        "input-dependent TOPK(5) attention. Outside the full profile the model, data and training are "
        "reduced; sf_fig1.md lists every deviation from the authors' setup and what the run shows.",
        source="SF Fig. 1 (reproduced at reduced size)", order=60)
def make(ctx: FigureContext) -> None:
    from softmax_stability.experiments import runner, sf_results

    s, runs = sf_results.collect_profile_runs(ctx.profile, ctx.out_dir / "sf_runs", progress=ctx.show_progress)
    ctx.params.update(tasks=list(s["tasks"]), variants=list(s["variants"]), seeds=list(s["seeds"]),
                      overrides=s["overrides"], task_overrides=s["task_overrides"], cache="sf_runs")
    tasks, variants = s["tasks"], s["variants"]
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.2 * len(tasks), 6.5), squeeze=False, sharex="col")
    rows = []
    shows = []
    for j, t in enumerate(tasks):
        losses = {}
        for v in variants:
            res = runs[(t, v)]
            loss = np.stack([r.curve("train_loss") for r in res])
            acc = np.stack([r.curve("val_acc") for r in res]) * 100
            losses[v] = loss
            ep = np.arange(1, loss.shape[1] + 1)
            for i, (curves, ylab) in enumerate(((loss, "training cross-entropy"), (acc, "held-out accuracy (%)"))):
                med, lo, hi = sf_results.loss_band(curves)
                ax = axes[i, j]
                ax.plot(ep, med, color=COLORS.get(v), label=v, lw=1.6 if v in ("FULL", "TOPK(5)") else 1.0)
                ax.fill_between(ep, lo, hi, color=COLORS.get(v), alpha=0.15, lw=0)
                ax.set_ylabel(ylab)
            ml, ll, hl = sf_results.loss_band(loss)
            ma, la, ha = sf_results.loss_band(acc)
            rows += [[t, v, int(e), ml[e - 1], ll[e - 1], hl[e - 1], ma[e - 1], la[e - 1], ha[e - 1], len(res)]
                     for e in ep]
        if "FULL" in losses:
            shows += sf_results.summary_lines(t, sf_results.separation(losses))
        axes[0, j].set_title(t.replace("_", " ").title())
        axes[1, j].set_xlabel("epoch")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    ctx.save_figure(fig)
    ctx.save_csv(["task", "variant", "epoch", "train_loss_median", "train_loss_q25", "train_loss_q75",
                  "val_acc_median", "val_acc_q25", "val_acc_q75", "seeds"], rows)
    dev = runner.profile_deviations(ctx.profile)
    ctx.params.update(deviations=dev)
    md = [f"# SF Fig. 1 ({ctx.profile} profile)", "",
          f"Tasks {', '.join(tasks)}; variants {', '.join(variants)}; ReLU; median over seeds with the 25-75% band.",
          "", "Deviations from the SF authors' setup (`runner.profile_deviations`):", ""]
    md += [f"- {d}" for d in dev]
    md += ["", "What this run shows (computed from the curves; late epochs = the second half):", ""] + shows
    ctx.save_markdown("\n".join(md) + "\n")
