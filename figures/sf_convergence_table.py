"""Epochs to 95% training accuracy per task and attention variant, and the speed-up over FULL.

The SF authors' "convergence epoch" (``trfigs.py``: first epoch whose metric is >= 95) on the
running training accuracy; median and 25-75% range over seeds; the speed-up is the median FULL
epoch count divided by the variant's. A seed that never reaches 95% within the epochs run is
right-censored (``runner.convergence_quantiles``): it counts as converging after the last epoch,
so a median that falls on such seeds reads "> E". When FULL's median is censored and the variant's
is not, the speed-up is a lower bound E / median (``runner.convergence_speedup``), shown as
"> x". Uses the runs of ``sf_fig1`` (same profile, same cache ``<out>/sf_runs``).
"""

from __future__ import annotations

import math

import numpy as np

from figures._common import FigureContext, figure


@figure(name="sf_convergence_table", caption="Epochs to 95% training accuracy (median and 25-75% range over "
        "seeds) and speed-up over full attention, per task and attention variant.",
        source="SF appendix tables (convergence epoch, trfigs.py; reproduced at reduced size)", order=61)
def make(ctx: FigureContext) -> None:
    from softmax_stability.experiments import runner, sf_results
    from softmax_stability.experiments.runner import epochs_to_accuracy

    s, runs = sf_results.collect_profile_runs(ctx.profile, ctx.out_dir / "sf_runs", progress=ctx.show_progress)
    ctx.params.update(tasks=list(s["tasks"]), variants=list(s["variants"]), seeds=list(s["seeds"]),
                      overrides=s["overrides"], task_overrides=s["task_overrides"], cache="sf_runs")
    rows, md = [], ["# Epochs to 95% training accuracy", "",
                    f"Profile `{ctx.profile}`: seeds {list(s['seeds'])}; deviations from the authors' setup: "
                    f"{'; '.join(runner.profile_deviations(ctx.profile))}.",
                    "Median and 25-75% over seeds; a seed that does not reach 95% within the E epochs run "
                    "counts as converging after epoch E (\"> E\"). Speed-up = median epochs of FULL / median "
                    "epochs of the variant; \"> x\" is a lower bound (FULL's median is later than E), "
                    "\"< x\" an upper bound.", "",
                    "| task | variant | reached | median epochs | 25-75% | speed-up vs FULL |",
                    "|---|---|---|---|---|---|"]
    outcomes = []
    for t in s["tasks"]:
        q = {}
        horizon = max(len(r.history["train_acc"]) for v in s["variants"] for r in runs[(t, v)])
        for v in s["variants"]:
            e = [epochs_to_accuracy(r.history["train_acc"]) for r in runs[(t, v)]]
            q[v] = runner.convergence_quantiles(e)
            reached = int(np.sum(~np.isnan(e)))
            rows.append([t, v, reached, len(e), q[v][1], q[v][0], q[v][2]])
        for row in rows[-len(s["variants"]):]:
            v = row[1]
            sp, kind = runner.convergence_speedup(q["FULL"][1], q[v][1], horizon) if "FULL" in q else (math.nan, "none")
            row += [sp, kind, horizon]
            fmt = (lambda x: f"> {horizon}" if math.isinf(x) else f"{x:g}")
            sps = {"exact": f"{sp:.2f}x", "lower": f"> {sp:.2f}x", "upper": f"< {sp:.2f}x"}.get(kind, "—")
            md.append(f"| {t} | {v} | {row[2]}/{row[3]} | {fmt(row[4])} | {fmt(row[5])}–{fmt(row[6])} | {sps} |")
        if "FULL" in q:  # does TOPK converge faster than FULL, and are BAND/BLOC no better, as SF reports?
            outcomes.append(runner.convergence_outcome(t, {v: q[v][1] for v in s["variants"]}, horizon))
    ctx.set_outcome(" ".join(outcomes) if outcomes else "No FULL runs in this profile: nothing to compare.")
    ctx.save_csv(["task", "variant", "seeds_reached", "seeds", "median_epochs", "q25_epochs", "q75_epochs",
                  "speedup_vs_full", "speedup_kind", "epochs_run"], rows)
    md += ["", "**Outcome (measured)**, per task (median epochs, censored as above):", ""] + [f"- {o}" for o in outcomes]
    ctx.save_markdown("\n".join(md) + "\n")
