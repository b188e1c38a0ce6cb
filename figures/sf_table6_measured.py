"""SF Table 6 measured on our own trained models, with LHS(304) and LHS(305).

As the paper's protocol (docs/notes/semantic_focus.md §3, Table 6): the trained FULL model gives
:math:`\\delta_s`, the trained TOPK(5) model gives :math:`\\delta_h, \\Delta, \\beta`, on
``stats_batches x stats_batch_size`` training samples (10 x 100 outside the smoke profile),
pooled over every block; quantiles 75/90/95/100 (:math:`\\Delta`: 25/10/5/0), computed by
:func:`softmax_stability.focus.attention_statistics`, which also gives both LHS values. One seed
(the first of the profile). The paper's numbers (:data:`softmax_stability.focus.SF_TABLE6`) are
listed next to ours where the task is in the paper's table.
"""

from __future__ import annotations

import numpy as np

from figures._common import FigureContext, figure

PAPER_NAMES = {"listops": "ListOps", "parity": "Parity", "even_pairs": "EvenPairs", "missing_duplicate": "MissDup"}
STATS = ("delta_s", "delta_h", "sep", "beta", "lhs_304", "lhs_305")


@figure(name="sf_table6_measured", caption="Dispersion, separation and in-degree quantiles of our trained FULL "
        "and TOPK(5) models with both comparison conditions (LHS < 1: top-k has the better stability constant).",
        source="SF Table 6 (measured on our own models)", order=62)
def make(ctx: FigureContext) -> None:
    import jax.numpy as jnp

    from softmax_stability import focus
    from softmax_stability.experiments import runner, tasks as tasks_mod

    s = runner.profile_settings(ctx.profile)
    seed = s["seeds"][0]
    ctx.params.update(tasks=list(s["tasks"]), seed=seed, cache="sf_runs",
                      overrides={t: runner.profile_overrides(ctx.profile, t) for t in s["tasks"]})
    rows = []
    md = ["# SF Table 6 measured on our trained models", "",
          f"Profile `{ctx.profile}`, seed {seed}; deviations from the authors' setup: "
          f"{'; '.join(runner.profile_deviations(ctx.profile))}. "
          "δs from FULL, δh/Δ/β from TOPK(5); Δ at the lower quantiles; LHS < 1 means the condition holds.",
          "", "| task | source | q | δs | δh | Δ | β | LHS(304) | LHS(305) |", "|---|---|---|---|---|---|---|---|---|"]
    for t in s["tasks"]:
        full, topk = (runner.run(runner.profile_config(ctx.profile, t, v, seed),
                                 ctx.out_dir / "sf_runs", progress=ctx.show_progress) for v in ("FULL", "TOPK(5)"))
        r = full.config
        nb = r["stats_batches"] * r["stats_batch_size"]
        data = tasks_mod.load_task(t, r["seed"], n_train=r["n_train"], n_val=r["n_val"], length=r["length"],
                                   min_length=r.get("min_length"))
        x = data.x_train[:nb]
        st = focus.attention_statistics(runner.attention_logits(full, x), 5,
                                        logits_topk=runner.attention_logits(topk, x))
        st = {k: np.asarray(st[k], dtype=float) for k in STATS + ("quantiles", "sep_quantiles")}
        for i, q in enumerate(st["quantiles"]):
            rows.append([t, "ours", int(q), int(st["sep_quantiles"][i])] + [float(st[k][i]) for k in STATS])
            md.append(f"| {t} | ours | {int(q)} | " + " | ".join(f"{st[k][i]:.3g}" for k in STATS) + " |")
        if t in PAPER_NAMES:
            p = focus.SF_TABLE6[PAPER_NAMES[t]]
            ds, dh, sp, b = (np.asarray(p[k], float) for k in ("delta_s", "delta_h", "sep", "beta"))
            l304 = np.asarray(focus.lhs_304(jnp.asarray(ds), jnp.asarray(dh), jnp.asarray(sp)))
            l305 = np.asarray(focus.lhs_305(jnp.asarray(ds), jnp.asarray(dh), jnp.asarray(sp),
                                            jnp.asarray(b / focus.SF_TABLE6_K)))
            for i, q in enumerate(focus.SF_TABLE6_QUANTILES):
                vals = [ds[i], dh[i], sp[i], b[i], float(l304[i]), float(l305[i])]
                rows.append([t, "paper", int(q), int(focus.SF_TABLE6_SEP_QUANTILES[i])] + vals)
                md.append(f"| {t} | paper | {int(q)} | " + " | ".join(f"{v:.3g}" for v in vals) + " |")
    # the outcome: in how many task-quantile cells each condition holds, ours against the paper's
    cnt = {}
    for src in ("ours", "paper"):
        cells = [r for r in rows if r[1] == src]
        ratio = [r[4] / r[5] for r in cells if r[5] > 0]
        cnt[src] = (sum(r[8] < 1 for r in cells), sum(r[9] < 1 for r in cells), len(cells),
                    min(ratio, default=np.nan), max(ratio, default=np.nan))
    o = cnt["ours"]
    text = (f"On our trained models (seed {seed}), (304) holds (LHS < 1) in {o[0]} and (305) in {o[1]} of {o[2]} "
            f"task-quantile cells; delta_s/delta_h is {o[3]:.2g}-{o[4]:.2g}.")
    if cnt["paper"][2]:
        p = cnt["paper"]
        text += (f" The paper's statistics for the same tasks: {p[0]} and {p[1]} of {p[2]} cells; delta_s/delta_h "
                 f"{p[3]:.2g}-{p[4]:.2g}.")
    ctx.set_outcome(text)
    ctx.params["holds_304_305_cells"] = {k: list(v[:3]) for k, v in cnt.items()}
    md += ["", f"**Outcome (measured):** {text}"]
    ctx.save_csv(["task", "source", "q", "q_sep"] + list(STATS), rows)
    ctx.save_markdown("\n".join(md) + "\n")
