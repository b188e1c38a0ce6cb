"""Local Lipschitz constant of attention layers against the sequence length n.

One layer (d = 8, 2 heads of width 4, heads concatenated: no output projection, no biases -- the
setting of the Castin-Ablin-Peyre code) in five variants: full softmax, top-k (k = 8), band
(window 8), block-local (blocks of 8) and Selective Self-Attention (query/value temperatures,
"reproduction" init, same projections). Two inputs per n: random tokens (i.i.d. N(0, 1)) and the
Castin-Ablin-Peyre adversarial tokens of head 0 at a fixed radius (logit gap ln(n_max) + 3, so
every query still copies token 1 at the largest n).

Measured: :func:`softmax_stability.lipschitz.measured_lipschitz` (power iteration on J^T J).
Bounds: :func:`~softmax_stability.lipschitz.castin_bound` with ``side="max"`` (the code's own
one-sided value is in the CSV; it is not a bound for non-symmetric A_h) and the proved
:func:`~softmax_stability.lipschitz.derived_bound`; both hold for full attention and, with the
same n, for the masked and top-k variants (a mask only removes terms), not for SSA (its
temperatures rescale the logits). On the adversarial input the closed-form lower bound
:func:`~softmax_stability.lipschitz.adversarial_lower_bound` (head 0) is drawn too.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from figures._common import FigureContext, figure

D, HEADS, HEAD_DIM, SPARSE = 8, 2, 4, 8
# Okabe-Ito colours, each with its own marker and line style; full is drawn last (on top) with a
# hollow marker so it stays visible where it coincides with top-k
_STYLE = {"full": dict(color="#000000", marker="o", ls="-", mfc="none", ms=7, mew=1.4, lw=1.4, zorder=6),
          "topk": dict(color="#E69F00", marker="s", ls="--", ms=4, lw=2.2, zorder=4),
          "band": dict(color="#009E73", marker="^", ls="-.", ms=4, lw=1.4, zorder=3),
          "block": dict(color="#0072B2", marker="v", ls=":", ms=4, lw=1.6, zorder=3),
          "ssa": dict(color="#CC79A7", marker="D", ls="-", ms=4, lw=1.4, zorder=3)}
_DRAW_ORDER = ("topk", "band", "block", "ssa", "full")


def _ns(ctx: FigureContext) -> list[int]:
    if ctx.smoke:
        return [16]
    if ctx.quick:
        return [16, 64, 256, 1024]
    return [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]


@figure(name="attention_lipschitz_vs_n", order=60,
        caption="Measured local Lipschitz constant of full, top-k, band, block and SSA attention "
                "against n on random and Castin-Ablin-Peyre adversarial tokens, with the Castin "
                "bound, a proved bound and the sqrt(n) slope.",
        source="library figure; adversarial construction and bound of Castin, Ablin & Peyre 2024 "
               "(arXiv:2312.14820, their code)")
def make(ctx: FigureContext) -> None:
    from softmax_stability import lipschitz as L
    from softmax_stability.attention import SSAConfig, init_attention_params, init_ssa_params

    ns = _ns(ctx)
    gap = math.log(max(ns)) + 3.0
    tol, max_iter = 1e-6, 300
    k_p, k_x, k_v = jax.random.split(ctx.rng_key, 3)
    params = init_attention_params(k_p, D, HEADS, HEAD_DIM, use_bias=False)
    del params["wo"]  # heads concatenated, as in BERT's self-attention block
    # smoke: full attention only (compilation dominates, ~2-6 s per variant on a loaded CPU)
    variants = ("full",) if ctx.smoke else L.VARIANTS
    layers = {v: L.attention_layer(params, v, k_top=SPARSE, window=SPARSE, block=SPARSE)
              for v in variants if v != "ssa"}
    if "ssa" in variants:
        cfg = SSAConfig(D, HEADS, HEAD_DIM, use_bias=False)
        ssa_params = init_ssa_params(k_p, cfg, init="reproduction", base=params)
        layers["ssa"] = L.attention_layer(ssa_params, "ssa", config=cfg)
    A, V = L.head_matrices(params)
    ctx.params.update(n=ns, variants=list(layers), d=D, heads=HEADS, head_dim=HEAD_DIM,
                      k_top=SPARSE, window=SPARSE, block=SPARSE, adversarial_gap=gap, power_iteration_tol=tol,
                      max_iter=max_iter, ssa_init="reproduction", castin_side="max")

    def measure(fn):
        one = lambda x, k: L.measured_lipschitz(fn, x, key=k, tol=tol, max_iter=max_iter)  # noqa: E731
        return jax.jit(jax.vmap(one))

    bounds = jax.jit(jax.vmap(lambda x: jnp.stack([L.castin_bound(params, x, side="max"),
                                                   L.castin_bound(params, x, side="query"),
                                                   L.derived_bound(params, x)])))
    rows = []
    res = {}  # (input, variant) -> list of measured values
    bnd = {}  # input -> list of (castin max, castin query, derived)
    lower = []
    for n in ctx.progress(ns, desc="n"):
        x_rand = jax.random.normal(jax.random.fold_in(k_x, n), (n, D))
        x_adv = L.adversarial_tokens(A[0], n, gap=gap).astype(x_rand.dtype)
        xs = jnp.stack([x_rand, x_adv])
        keys = jax.random.split(jax.random.fold_in(k_v, n), 2)
        b = np.asarray(bounds(xs), dtype=float)
        lb = float(L.adversarial_lower_bound(A[0], V[0], n, gap=gap))
        lower.append(lb)
        for j, inp in enumerate(("random", "adversarial")):
            bnd.setdefault(inp, []).append(b[j])
        for variant, fn in layers.items():
            r = measure(fn)(xs, keys)
            for j, inp in enumerate(("random", "adversarial")):
                m = float(r.norm[j])
                res.setdefault((inp, variant), []).append(m)
                rows.append([inp, variant, n, m, int(r.iterations[j]), bool(r.converged[j]),
                             b[j][0], b[j][1], b[j][2], lb if inp == "adversarial" else ""])

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), sharey=True)
    nn = np.asarray(ns, dtype=float)
    exponents = {}
    if len(ns) >= 2:
        exponents = {key: float(np.polyfit(np.log(nn), np.log(np.asarray(vals)), 1)[0]) for key, vals in res.items()}
    coincide = {}
    for ax, inp in zip(axes, ("random", "adversarial")):
        for variant in [v for v in _DRAW_ORDER if v in layers]:
            ax.plot(nn, res[(inp, variant)], label=f"measured: {variant}", **_STYLE[variant])
        b = np.asarray(bnd[inp])
        ax.plot(nn, b[:, 0], color="0.35", ls="--", lw=1, label="Castin bound (side=max)")
        ax.plot(nn, b[:, 2], color="0.35", ls=":", lw=1.2, label="derived bound (proved)")
        if inp == "adversarial":
            ax.plot(nn, lower, "x", color="#D55E00", ms=7, mew=1.5, label="closed-form lower bound (head 0)")
        ref = res[(inp, "full")][0]
        ax.plot(nn, ref * np.sqrt(nn / nn[0]), color="0.5", lw=4, alpha=0.3, zorder=1, label=r"$\propto\sqrt{n}$")
        if "topk" in layers:  # say so on the image where full and top-k lie on top of each other
            f, t = np.asarray(res[(inp, "full")]), np.asarray(res[(inp, "topk")])
            rel = float(np.max(np.abs(t - f) / f))
            coincide[inp] = rel
            if rel < 0.02:
                ax.text(0.98, 0.03, f"full and top-k coincide here\n(max relative difference {rel:.1e})",
                        transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
                        bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="0.7"))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("n (tokens)")
        title = f"{inp} tokens" + (f" (logit gap {gap:.1f})" if inp == "adversarial" else "")
        if exponents:
            title += "\nfitted exponent of n: " + ", ".join(f"{v} {exponents[(inp, v)]:.2f}" for v in layers)
        ax.set_title(title, fontsize=9.5)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(r"local Lipschitz constant $\|J_f(X)\|_2$")
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    ctx.params["max_relative_difference_full_topk"] = coincide
    covered = [v for v in layers if v != "ssa"]  # the bounds hold for these, not for SSA
    worst = max(res[(inp, v)][i] / min(bnd[inp][i][0], bnd[inp][i][2])
                for inp in ("random", "adversarial") for v in covered for i in range(len(ns)))
    ctx.params["max_measured_over_smaller_bound"] = float(worst)
    verdict = "below" if worst <= 1 else "ABOVE"
    fig.suptitle("Attention Lipschitz constant vs n (d=8, 2 heads, no output projection)\n"
                 f"measured: {', '.join(covered)} stay {verdict} the smaller bound (largest measured/bound "
                 f"{worst:.3f}); SSA's temperatures rescale the logits, so the bounds do not cover it",
                 fontsize=11)
    growth = ""
    if exponents:
        growth = (" Fitted exponent of n on the adversarial tokens: "
                  + ", ".join(f"{v} {exponents[('adversarial', v)]:.2f}" for v in layers)
                  + " (sqrt(n) is 0.50).")
    ctx.set_outcome(f"Measured: {', '.join(covered)} stay {verdict} the smaller of the Castin and derived bounds "
                    f"(largest measured/bound {worst:.3f}); the bounds do not cover SSA.{growth}")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    ctx.save_figure(fig)
    ctx.save_csv(["input", "variant", "n", "measured", "iterations", "converged",
                  "castin_bound_max", "castin_bound_code_query_side", "derived_bound",
                  "adversarial_lower_bound_head0"], rows)
    if len(ns) >= 2:  # fitted growth exponents, for the table
        lines = ["| input | variant | fitted exponent of n |", "|---|---|---|"]
        for (inp, variant), vals in sorted(res.items()):
            slope = np.polyfit(np.log(nn), np.log(np.asarray(vals)), 1)[0]
            lines.append(f"| {inp} | {variant} | {slope:.3f} |")
        ctx.save_markdown("\n".join(lines) + "\n")
