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

# Okabe-Ito colours (told apart with colour-blind vision too) and a line style per family
STYLE = {"FULL": ("black", "-", 2.0), "TOPK(5)": ("#009E73", "-", 2.0), "RND(5)": ("#CC79A7", ":", 1.3),
         "BAND(5)": ("#E69F00", "--", 1.2), "BAND(5):1": ("#D55E00", "-.", 1.2),
         "BLOC(5)": ("#0072B2", "--", 1.2), "BLOC(5):1": ("#56B4E9", "-.", 1.2)}



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
    # at most 4 tasks per row of panels (the medium profile's 8 tasks in two bands, not one 37-inch strip)
    ncol = min(len(tasks), 4)
    bands = -(-len(tasks) // ncol)
    fig, grid = plt.subplots(2 * bands, ncol, figsize=(max(4.6 * ncol, 8.0), 3.6 * 2 * bands), squeeze=False)
    axes = np.empty((2, len(tasks)), dtype=object)  # axes[0, j]: task j's loss panel, axes[1, j]: its accuracy
    for j in range(len(tasks)):
        axes[0, j], axes[1, j] = grid[2 * (j // ncol), j % ncol], grid[2 * (j // ncol) + 1, j % ncol]
        axes[1, j].sharex(axes[0, j])
    for j in range(len(tasks), bands * ncol):  # empty slots of the last band
        grid[2 * (j // ncol), j % ncol].set_visible(False)
        grid[2 * (j // ncol) + 1, j % ncol].set_visible(False)
    rows = []
    shows = []
    outcomes: list[str] = []
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
                color, ls, lw = STYLE.get(v, ("grey", "-", 1.0))
                ax.plot(ep, med, color=color, ls=ls, label=v, lw=lw)
                ax.fill_between(ep, lo, hi, color=color, alpha=0.12, lw=0)
                ax.set_ylabel(ylab)
            ml, ll, hl = sf_results.loss_band(loss)
            ma, la, ha = sf_results.loss_band(acc)
            rows += [[t, v, int(e), ml[e - 1], ll[e - 1], hl[e - 1], ma[e - 1], la[e - 1], ha[e - 1], len(res)]
                     for e in ep]
        verdict = ""
        if "FULL" in losses:
            sep = sf_results.separation(losses)
            shows += sf_results.summary_lines(t, sep)
            if "TOPK(5)" in sep:
                top = sep["TOPK(5)"]
                n_late = top["late_epochs"]
                verdict = (f"\nTOPK(5) below FULL in {round(top['below'] * n_late)}/{n_late} late epochs: "
                           + ("faster, as SF Fig. 1" if top["below"] >= sf_results.MOST else "NOT faster"))
                outcomes.append(f"{t}: TOPK(5) {'faster than' if top['below'] >= sf_results.MOST else 'NOT faster than'}"
                                f" FULL (median loss below FULL's in {round(top['below'] * n_late)}/{n_late} late epochs)")
        axes[0, j].set_title(t.replace("_", " ").title() + verdict, fontsize=9)
        axes[1, j].set_xlabel("epoch")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.01 / bands))
    fig.text(0.5, -0.045 / bands, "BAND(5): banded window of 5 keys; BLOC(5): blocks of 5 tokens; \":1\": plus one global "
             "token that every position attends to and that attends to all; TOPK(5): each query's 5 largest logits",
             ha="center", fontsize=7.5)
    fig.suptitle("SF Fig. 1, " + (f"{ctx.profile} profile: small-scale reconstruction (sf_fig1.md lists every "
                                  "deviation from the authors' setup)" if ctx.quick else "the authors' sizes")
                 + f"; median over {len(s['seeds'])} seeds, 25-75% band", fontsize=10)
    fig.tight_layout(rect=(0, 0.04 / bands, 1, 1))
    ctx.save_figure(fig)
    if outcomes:
        ctx.set_outcome("; ".join(outcomes) + ".")
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
