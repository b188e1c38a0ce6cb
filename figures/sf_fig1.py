"""SF Fig. 1 (reproduced in JAX at reduced size): training loss and held-out accuracy per epoch.

Median over seeds with the 25-75% band, for FULL, BAND(5), BAND(5):1, BLOC(5), BLOC(5):1 and
TOPK(5) (ReLU) on Even Pairs and Missing Duplicate (the ``full`` profile: every task). Runs come
from :mod:`softmax_stability.experiments.runner` (profiles: ``runner.profile_settings``) and are
cached under ``<out>/sf_runs`` (shared with ``sf_convergence_table`` and ``sf_table6_measured``),
so a rerun only plots. The quick profile uses 500/250 samples and 20 epochs (400 SGD steps per run) instead of the
paper's 5000/2000 and 100/250 epochs (20000-50000 steps): its curves show the early phase only.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from figures._common import FigureContext, figure

COLORS = {"FULL": "black", "BAND(5)": "tab:blue", "BAND(5):1": "tab:cyan", "BLOC(5)": "tab:orange",
          "BLOC(5):1": "tab:olive", "TOPK(5)": "mediumaquamarine"}


def collect_runs(ctx: FigureContext):
    """Run (or load) every configuration of ctx's profile; ``{(task, variant): [RunResult, ...]}``."""
    from softmax_stability.experiments import runner

    s = runner.profile_settings(ctx.profile)
    cfgs = runner.profile_configs(ctx.profile)
    ctx.params.update(tasks=list(s["tasks"]), variants=list(s["variants"]), seeds=list(s["seeds"]),
                      overrides=s["overrides"], cache="sf_runs")
    results = runner.run_many(cfgs, ctx.out_dir / "sf_runs", progress=ctx.show_progress)
    out: dict = {}
    for c, r in zip(cfgs, results):
        out.setdefault((c.task, r.config["variant"]), []).append(r)
    return s, out


def _band(curves: np.ndarray):
    return (np.median(curves, axis=0), np.percentile(curves, 25, axis=0), np.percentile(curves, 75, axis=0))


@figure(name="sf_fig1", caption="Training cross-entropy (top) and held-out accuracy (bottom) per epoch, median "
        "over seeds with the 25-75% band, for full, input-agnostic (BAND/BLOC, with a global token) and "
        "input-dependent TOPK(5) attention.", source="SF Fig. 1 (reproduced at reduced size)", order=60)
def make(ctx: FigureContext) -> None:
    s, runs = collect_runs(ctx)
    tasks, variants = s["tasks"], s["variants"]
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.2 * len(tasks), 6.5), squeeze=False, sharex="col")
    rows = []
    for j, t in enumerate(tasks):
        for v in variants:
            res = runs[(t, v)]
            loss = np.stack([r.curve("train_loss") for r in res])
            acc = np.stack([r.curve("val_acc") for r in res]) * 100
            ep = np.arange(1, loss.shape[1] + 1)
            for i, (curves, ylab) in enumerate(((loss, "training cross-entropy"), (acc, "held-out accuracy (%)"))):
                med, lo, hi = _band(curves)
                ax = axes[i, j]
                ax.plot(ep, med, color=COLORS.get(v), label=v, lw=1.6 if v in ("FULL", "TOPK(5)") else 1.0)
                ax.fill_between(ep, lo, hi, color=COLORS.get(v), alpha=0.15, lw=0)
                ax.set_ylabel(ylab)
            ml, ll, hl = _band(loss)
            ma, la, ha = _band(acc)
            rows += [[t, v, int(e), ml[e - 1], ll[e - 1], hl[e - 1], ma[e - 1], la[e - 1], ha[e - 1], len(res)]
                     for e in ep]
        axes[0, j].set_title(t.replace("_", " ").title())
        axes[1, j].set_xlabel("epoch")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    ctx.save_figure(fig)
    ctx.save_csv(["task", "variant", "epoch", "train_loss_median", "train_loss_q25", "train_loss_q75",
                  "val_acc_median", "val_acc_q25", "val_acc_q75", "seeds"], rows)
