"""Parameter overhead of each attention variant over vanilla (issue 17).

Thin table over :func:`softmax_stability.experiments.ssa_retrieval.overhead_rows`: the new
parameters per layer of each variant of the retrieval decoder (SSA rows from
:func:`softmax_stability.attention.ssa_new_parameter_count` /
:func:`~softmax_stability.attention.ssa_parameter_overhead`, checked against the decoders'
parameter counts), as a share of this model and of its attention, and the same layer at GPT-2
small scale, where the SSA abstract states "fewer than 0.5% new parameters" with weight sharing.
"""

from __future__ import annotations

from figures._common import FigureContext, figure


@figure(name="ssa_overhead_table", order=127,
        caption="New parameters of each attention variant of the retrieval decoder over vanilla, as a "
                "share of the model and of its attention, and of the same SSA layer at GPT-2 small scale "
                "(the SSA abstract's under-0.5% claim for weight sharing). Counts, no training.",
        source="SSA abstract parameter claim (docs/notes/selective_attention.md §4.2); "
               "softmax_stability.attention.ssa_parameter_overhead")
def make(ctx: FigureContext) -> None:
    from softmax_stability.experiments import ssa_retrieval as sr

    rows = sr.overhead_rows(profile=ctx.size_profile)
    header = ["variant", "new_parameters_per_layer", "model_parameters", "overhead_pct_of_model",
              "overhead_pct_of_attention", "overhead_pct_gpt2_small"]
    ctx.save_csv(header, rows)
    outcome = sr.overhead_outcome(rows)
    ctx.set_outcome(outcome)
    lines = ["# Parameter overhead per attention variant (small-scale reconstruction)", "",
             f"Profile `{ctx.profile}`. Measured: {outcome}.", "",
             "| variant | new params / layer | model params | % of model | % of attention | % at GPT-2 small |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.4f} |")
    lines += ["", "SSA rows: `attention.ssa_new_parameter_count` / `attention.ssa_parameter_overhead`; "
              "SSMax adds one scale s per head; top-k, sparsemax and 1.5-entmax add none."]
    ctx.save_markdown("\n".join(lines) + "\n")
    ctx.params.update(outcome=outcome)
