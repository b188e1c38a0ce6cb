"""Training steps to a target accuracy, each attention variant against vanilla (issue 17).

Thin figure over :mod:`softmax_stability.experiments.ssa_retrieval` (runs cached in
``<out>/ssa_runs``). Steps to target: the first step at which the trailing 20-step mean of the
training-batch accuracy (fresh batches, so a held-out estimate) reaches the run's target
(:func:`~softmax_stability.experiments.ssa_retrieval.steps_to_target`); median and 25-75% range
over seeds, with the speed-up over vanilla (vanilla's median / the variant's). Runs whose median
never reaches the target are drawn hatched at the step budget. A small-scale reconstruction (the
SSA paper's "about 1.45x fewer steps to equal perplexity" is for pretrained LLMs).
"""

from __future__ import annotations

import textwrap

from figures._common import FigureContext, figure


@figure(name="ssa_steps_to_target", order=126,
        caption="Training steps until the training accuracy reaches the target, per attention variant "
                "and task (median, 25-75% range over seeds), with the speed-up over vanilla; the "
                "measured outcome is stated on the image. A small-scale reconstruction.",
        source="SSA training-speed claim, about 1.45x fewer tokens (docs/notes/selective_attention.md §4.2, "
               "unconfirmed); small-scale reconstruction")
def make(ctx: FigureContext) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    from softmax_stability.experiments import ssa_retrieval as sr

    results = sr.collect(ctx.size_profile, ctx.out_dir / "ssa_runs", progress=ctx.show_progress)
    rows = sr.steps_rows(results)
    ctx.save_csv(["task", "variant", "target_accuracy", "steps_median", "steps_q25", "steps_q75",
                  "seeds_reached", "seeds", "speedup_vs_vanilla"], rows)
    outcome = sr.steps_outcome(rows)
    ctx.set_outcome(" ".join(outcome))
    tasks = list(dict.fromkeys(r[0] for r in rows))
    budget = {t: r.config["steps"] for (t, _), r in results.items()}
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.2 * len(tasks), 4.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        rr = [r for r in rows if r[0] == task]
        for i, r in enumerate(rr):
            color = sr.STYLE[r[1]][0]
            reached = np.isfinite(r[3])
            h = r[3] if reached else budget[task]
            ax.bar(i, h, color=color if reached else "white", edgecolor=color, hatch=None if reached else "//")
            ax.errorbar(i, h, yerr=[[max(h - r[4], 0)], [max(r[5] - h, 0)]], color="0.2", capsize=3, lw=1)
            label = f"{r[-1]:.2f}x" if np.isfinite(r[-1]) else ("not\nreached" if not reached else "")
            top = max(h, r[5]) if np.isfinite(r[5]) else h
            ax.text(i, top + budget[task] * 0.015, label, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(rr)), [r[1] for r in rr], rotation=35, ha="right", fontsize=8)
        ax.set_ylabel(f"steps to {rr[0][2]:.0%} training accuracy")
        ax.set_ylim(0, budget[task] * 1.2)
        ax.axhline(budget[task], color="0.6", ls=":", lw=0.8)
        ax.set_title(f"{task} (label: speed-up vs vanilla)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Steps to target accuracy per attention variant (small-scale reconstruction)")
    fig.tight_layout()
    text = "\n".join(textwrap.fill("Measured: " + line, 150) for line in outcome)
    fig.text(0.01, -0.02, text, fontsize=7.5, va="top", ha="left")
    ctx.params.update(outcome=outcome, cache="ssa_runs")
    ctx.save_figure(fig)
