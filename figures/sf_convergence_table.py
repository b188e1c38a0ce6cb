"""Epochs to 95% training accuracy per task and attention variant, and the speed-up over FULL.

The SF authors' "convergence epoch" (``trfigs.py``: first epoch whose metric is >= 95) on the
running training accuracy; median and 25-75% range over seeds; the speed-up is the median FULL
epoch count divided by the variant's. A seed that never reaches 95% counts as "not reached" (the
median is then over the seeds that did, and the table says how many). Uses the runs of
``sf_fig1`` (same profile, same cache ``<out>/sf_runs``).
"""

from __future__ import annotations

import math

import numpy as np

from figures._common import FigureContext, figure


@figure(name="sf_convergence_table", caption="Epochs to 95% training accuracy (median and 25-75% range over "
        "seeds) and speed-up over full attention, per task and attention variant.",
        source="SF appendix tables (convergence epoch, trfigs.py; reproduced at reduced size)", order=61)
def make(ctx: FigureContext) -> None:
    from figures.sf_fig1 import collect_runs
    from softmax_stability.experiments import runner
    from softmax_stability.experiments.runner import epochs_to_accuracy

    s, runs = collect_runs(ctx)
    rows, md = [], ["# Epochs to 95% training accuracy", "",
                    f"Profile `{ctx.profile}`: seeds {list(s['seeds'])}; deviations from the authors' setup: "
                    f"{'; '.join(runner.profile_deviations(ctx.profile))}.",
                    "Speed-up = median epochs of FULL / median epochs of the variant "
                    "(only where both reach 95% on at least half of the seeds).", "",
                    "| task | variant | reached | median epochs | 25-75% | speed-up vs FULL |",
                    "|---|---|---|---|---|---|"]
    for t in s["tasks"]:
        med = {}
        for v in s["variants"]:
            e = np.array([epochs_to_accuracy(r.history["train_acc"]) for r in runs[(t, v)]])
            ok = e[~np.isnan(e)]
            half = ok.size * 2 >= e.size and ok.size > 0
            med[v] = float(np.median(ok)) if half else math.nan
            q25, q75 = (np.percentile(ok, [25, 75]) if ok.size else (math.nan, math.nan))
            rows.append([t, v, int(ok.size), int(e.size), med[v], q25, q75])
        for row in rows[-len(s["variants"]):]:
            v = row[1]
            sp = med["FULL"] / med[v] if not (math.isnan(med.get("FULL", math.nan)) or math.isnan(med[v])) else math.nan
            row.append(sp)
            fmt = (lambda x: "—" if math.isnan(x) else f"{x:g}")
            md.append(f"| {t} | {v} | {row[2]}/{row[3]} | {fmt(row[4])} | {fmt(row[5])}–{fmt(row[6])} | "
                      f"{'—' if math.isnan(sp) else f'{sp:.2f}x'} |")
    ctx.save_csv(["task", "variant", "seeds_reached", "seeds", "median_epochs", "q25_epochs", "q75_epochs",
                  "speedup_vs_full"], rows)
    ctx.save_markdown("\n".join(md) + "\n")
