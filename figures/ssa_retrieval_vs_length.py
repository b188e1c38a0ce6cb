"""Retrieval accuracy against test length for every attention variant (issue 17).

Thin figure: the runs, their cache (``<out>/ssa_runs``, shared with ``ssa_dilution_trained`` and
``ssa_steps_to_target``) and every summary come from
:mod:`softmax_stability.experiments.ssa_retrieval`; this module only plots them and writes the
CSV. The measured outcome (accuracy at the longest length, which variants lie above and below
vanilla) is printed on the image. A small-scale reconstruction: a one-layer decoder trained on
synthetic passkey / associative-recall tasks, not the SSA paper's pretrained LLMs.
"""

from __future__ import annotations

import textwrap

from figures._common import FigureContext, figure


@figure(name="ssa_retrieval_vs_length", order=124,
        caption="Answer accuracy of a small decoder trained at length L on passkey retrieval and "
                "multi-query associative recall, evaluated at L..16L, for vanilla, four SSA variants, "
                "SSMax, top-k, sparsemax and 1.5-entmax attention (median and 25-75% band over seeds); "
                "the measured outcome is stated on the image. A small-scale reconstruction.",
        source="SSA passkey claim (docs/notes/selective_attention.md §4.2) and dilution argument (§2.2); "
               "small-scale reconstruction, tasks and model ours")
def make(ctx: FigureContext) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    from softmax_stability.experiments import ssa_retrieval as sr

    results = sr.collect(ctx.size_profile, ctx.out_dir / "ssa_runs", progress=ctx.show_progress)
    rows = sr.accuracy_rows(results)
    ctx.save_csv(["task", "variant", "length", "length_over_L", "accuracy_median", "accuracy_q25",
                  "accuracy_q75"], rows)
    outcome = sr.accuracy_outcome(results)
    ctx.set_outcome(" ".join(outcome))
    tasks = list(dict.fromkeys(t for t, _ in results))
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.2 * len(tasks), 4.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for (t, v), res in results.items():
            if t != task:
                continue
            color, ls, mk = sr.STYLE[v]
            med = np.median(res.evaluation["accuracy"], axis=0)
            lo, hi = np.percentile(res.evaluation["accuracy"], [25, 75], axis=0)
            x = res.lengths
            ax.plot(x, med, color=color, ls=ls, marker=mk, ms=5, label=v)
            ax.fill_between(x, lo, hi, color=color, alpha=0.12, lw=0)
        L = next(r for (t, _), r in results.items() if t == task).config["train_length"]
        ax.set_xscale("log", base=2)
        ax.axvline(L, color="0.6", lw=0.8, ls=":")
        ax.set_xlabel(f"test length (tokens; trained at L = {L})")
        ax.set_ylabel("answer accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(task)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="best", ncol=2)
    fig.suptitle("Retrieval vs context length, per attention variant (small-scale reconstruction)")
    text = "\n".join(textwrap.fill("Measured: " + line, 150) for line in outcome)
    fig.text(0.01, -0.02, text, fontsize=7.5, va="top", ha="left")
    fig.tight_layout()
    ctx.params.update(profile_settings={k: (list(v) if isinstance(v, tuple) else v)
                                        for k, v in sr.profile_settings(ctx.size_profile).items()},
                      outcome=outcome, cache="ssa_runs",
                      train_seconds={f"{t}/{v}": r.seconds for (t, v), r in results.items()})
    ctx.save_figure(fig)
