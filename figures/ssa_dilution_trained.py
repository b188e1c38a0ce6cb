"""Attention dilution measured inside the trained decoders against the closed form (issue 17).

Thin figure over :mod:`softmax_stability.experiments.ssa_retrieval` (runs cached in
``<out>/ssa_runs``, shared with ``ssa_retrieval_vs_length`` and ``ssa_steps_to_target``). For each
task and variant: the attention weight on the answer key in the retrieval head at each test
length (median and 25-75% band over seeds), the closed form
:func:`softmax_stability.dilution.needle_probability` at the measured mean logit gap and
temperature (an upper bound for softmax), and the needle law calibrated at the training length
(:func:`~softmax_stability.experiments.ssa_retrieval.calibrated_needle`; softmax variants only).
The measured agreement is printed on the image. A small-scale reconstruction.
"""

from __future__ import annotations

import textwrap

from figures._common import FigureContext, figure


@figure(name="ssa_dilution_trained", order=125,
        caption="Attention weight on the answer key inside the trained decoders against test length "
                "(median, 25-75% band over seeds), with the needle closed form at the measured gap and "
                "temperature and the needle law calibrated at the training length; the measured "
                "agreement is stated on the image. A small-scale reconstruction.",
        source="SSA dilution argument (docs/notes/selective_attention.md §2.2) against "
               "softmax_stability.dilution.needle_probability; small-scale reconstruction")
def make(ctx: FigureContext) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    from softmax_stability.experiments import ssa_retrieval as sr

    results = sr.collect(ctx.size_profile, ctx.out_dir / "ssa_runs", progress=ctx.show_progress)
    rows = sr.dilution_rows(results)
    ctx.save_csv(sr.DILUTION_HEADER, rows)
    outcome = sr.dilution_outcome(results)
    ctx.set_outcome(" ".join(outcome))
    tasks = list(dict.fromkeys(t for t, _ in results))
    variants = list(dict.fromkeys(v for _, v in results))
    # one 3-column block of panels per task, side by side (not a 1 x 9 strip of tiny panels per task)
    ncol = min(3, len(variants))
    nrow = -(-len(variants) // ncol)
    fig = plt.figure(figsize=(3.3 * ncol * len(tasks) + 0.4, 2.45 * nrow + 1.9), layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(1, len(tasks), wspace=0.04))
    handles, labels = [], []
    for i, task in enumerate(tasks):
        sub = subfigs[i]
        axes = sub.subplots(nrow, ncol, squeeze=False, sharey=True, sharex=True)
        sub.suptitle(f"task: {task}", fontsize=10, fontweight="bold")
        for j in range(nrow * ncol):
            ax = axes[j // ncol][j % ncol]
            if j >= len(variants):
                ax.set_visible(False)
                continue
            var = variants[j]
            rr = [r for r in rows if r[0] == task and r[1] == var]
            x = np.array([r[3] for r in rr])
            color = sr.STYLE[var][0]
            ax.plot(x, [r[4] for r in rr], color=color, marker="o", ms=4, label="measured (median, IQR band)")
            ax.fill_between(x, [r[5] for r in rr], [r[6] for r in rr], color=color, alpha=0.2, lw=0)
            ax.plot(x, [r[7] for r in rr], color="0.35", ls="--", lw=1.2, label="closed form, mean gap")
            if rr[0][2] == "softmax":
                ax.plot(x, [r[8] for r in rr], color="tab:red", ls=":", lw=1.5, label="needle law fit at L")
            ax.set_xscale("log", base=2)
            ax.set_ylim(-0.02, 1.05)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            ax.set_title(var, fontsize=9)
            if j % ncol == 0:
                ax.set_ylabel("weight on answer key", fontsize=8)
            if j // ncol == nrow - 1 or j + ncol >= len(variants):
                ax.set_xlabel("test length", fontsize=8)
                ax.xaxis.set_tick_params(labelbottom=True)
            h, lab = ax.get_legend_handles_labels()
            for hh, ll in zip(h, lab):
                if ll not in labels:
                    handles.append(hh), labels.append(ll)
    fig.suptitle("Dilution inside the trained models vs the needle closed form (small-scale reconstruction)",
                 x=0.01, ha="left")
    fig.legend(handles, labels, loc="outside upper right", fontsize=8, ncol=3, frameon=False)
    text = "\n".join(textwrap.fill("Measured: " + line, 190) for line in outcome)
    fig.text(0.01, -0.01, text, fontsize=7, va="top", ha="left")
    ctx.params.update(outcome=outcome, cache="ssa_runs")
    ctx.save_figure(fig)
