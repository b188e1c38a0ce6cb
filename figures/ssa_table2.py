"""SSA Table 2 (reconstruction): denoising MSE of vanilla attention, value-selective attention, naive
averaging and the Bayes-optimal estimator.

Data model and estimators are ours (the paper's denoising model is not known;
``docs/notes/selective_attention.md`` §2.3): :func:`softmax_stability.experiments.ssa_toy.sample_denoising`,
:func:`~softmax_stability.experiments.ssa_toy.bayes_estimator` (posterior mean, derived in its
docstring), :func:`~softmax_stability.experiments.ssa_toy.naive_average`, and one attention head trained
with and without a value temperature (:func:`~softmax_stability.experiments.ssa_toy.denoiser_apply`).

Data model (ours; the paper's was not recovered; defaults n = 16, d = 4, max_signal = 8,
s = sigma = 1, sigma_n = 2), per sequence of n tokens::

    mu ~ N(0, s^2 I_d)                  the target
    m ~ Uniform{0, ..., max_signal}     number of signal tokens; R = the first m positions
    token j in R      : x_j = mu + sigma * xi_j,   flag b_j = 1
    token j not in R  : x_j = sigma_n * xi_j,      flag b_j = 0   (xi_j ~ N(0, I_d) i.i.d.; flags visible)
"""

from __future__ import annotations

from figures._common import FigureContext, figure


@figure(name="ssa_table2", order=123,
        caption="Denoising toy (small-scale reconstruction): per-coordinate MSE of vanilla attention, "
                "value-selective attention, naive averaging and the Bayes-optimal estimator.",
        source="SSA Table 2 (reconstruction; data model ours)")
def make(ctx: FigureContext) -> None:
    import jax

    from softmax_stability.experiments import ssa_toy

    if ctx.smoke:
        s = dict(steps=100, test_size=2000)
    elif ctx.quick:
        s = dict(steps=2000, test_size=20000)
    else:
        s = dict(steps=10000, test_size=200000)
    r = ssa_toy.denoising_experiment(jax.random.PRNGKey(ctx.seed), **s)
    st = r["settings"]
    ctx.params.update(st)
    labels = {"vanilla": "vanilla attention", "value_selective": "value-selective attention (SSA value temperature)",
              "naive": "naive averaging (mean of all tokens)", "bayes": "Bayes-optimal (posterior mean)"}
    lines = [
        "# SSA Table 2 (small-scale reconstruction): denoising",
        "",
        f"Data model (ours, not the paper's, which was not recovered): μ ~ N(0, {st['signal_scale']}² I_{st['dim']}) "
        f"is the target; a sequence of n = {st['n_tokens']} tokens holds m ~ U{{0..{st['max_signal']}}} signal "
        f"tokens μ + {st['signal_noise']}·ξ (flag 1) and n − m noise tokens {st['noise_scale']}·ξ (flag 0), "
        "ξ ~ N(0, I) i.i.d., flags visible. Attention models: one head with a learned query over "
        f"tokens (x_j, b_j), Adam lr {st['learning_rate']}, {st['steps']} steps of {st['batch_size']} fresh sequences; "
        "the value-selective model multiplies each value by τ_v = 1 + α ln n + tanh(uᵀh_j + c).",
        f"MSE per coordinate on {st['test_size']} held-out sequences (same set for all four), ± one standard "
        "error; 'exact' is the closed-form risk where one exists.",
        "",
        "| estimator | MSE | ± s.e. | exact risk |",
        "|---|---|---|---|",
    ]
    rows = []
    for name in ("vanilla", "value_selective", "naive", "bayes"):
        e = r[name]
        ex = "—" if e["exact"] is None else f"{e['exact']:.4f}"
        lines.append(f"| {labels[name]} | {e['mse']:.4f} | {e['se']:.4f} | {ex} |")
        rows.append((name, e["mse"], e["se"], "" if e["exact"] is None else e["exact"]))
    lines += ["", "No estimator can beat the Bayes risk in expectation; softmax weights sum to 1, so vanilla "
              "attention cannot output 0 when every token is noise, while the value temperature can gate "
              "noise tokens out entirely.", ""]
    mse = {name: r[name]["mse"] for name in labels}
    order = " < ".join(name for name in sorted(mse, key=mse.get))
    expected = mse["bayes"] <= mse["value_selective"] < mse["vanilla"]
    text = (f"Measured MSE on the same held-out set: Bayes {mse['bayes']:.4f}, value-selective "
            f"{mse['value_selective']:.4f}, vanilla {mse['vanilla']:.4f}, naive {mse['naive']:.4f} (order {order}): "
            + ("Bayes <= value-selective < vanilla, as SSA Table 2 reports." if expected else
               "NOT Bayes <= value-selective < vanilla, unlike SSA Table 2."))
    ctx.set_outcome(text + " (Small-scale reconstruction; data model ours.)")
    ctx.params["mse_order"] = order
    lines += [f"**Outcome (measured):** {text}", ""]
    ctx.save_markdown("\n".join(lines))
    ctx.save_csv(["estimator", "mse", "se", "exact_risk"], rows)
