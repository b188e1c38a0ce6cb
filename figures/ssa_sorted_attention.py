"""Sorted causal attention profiles by query position, vanilla vs the SSA position temperature.

In the style of the SSA authors' attention statistics (official code ``finetune/draw_att.py`` and
``sorted_att_buffer``, docs/notes/selective_attention.md §1.7 and §3, [CODE]): each query row of a causal attention map is
sorted in descending order and averaged over sequences and heads
(:func:`softmax_stability.dilution.sorted_profile`); row :math:`t` (0-based) has :math:`t+1` visible
keys. Thin lines for about 40 log-spaced query positions, coloured by position, bold lines at :math:`T/4`, :math:`T/2`
and :math:`3T/4` (the authors' red/green/blue), log-log axes. Later rows lie lower and flatter:
dilution. The right panel shows the authors' other statistic, the mass of the top 5 % of the visible
keys (:func:`~softmax_stability.dilution.top_fraction_mass`; :math:`\\max(1, \\lfloor 0.05 n\\rfloor)`
keys, so it steps from the top 1 to the top 2 keys at :math:`n = 40`: the kink, explained on the image),
and the normalised entropy
(:func:`~softmax_stability.dilution.normalized_entropy`) against query position.

**What this is: a small-scale reconstruction on a synthetic model, not the SSA paper's figure.** The
authors plotted a pretrained LLM (Pythia/GPT-2 class) on real text; which model, layer and data the
paper's version of this plot uses, and the temperatures the paper learned, were not recovered
(docs/notes/selective_attention.md §0, §3). Here the model is one random-weight causal self-attention layer:

* tokens: i.i.d. draws from a Zipf(1) distribution over a vocabulary of 64 (frequent tokens repeat,
  so a query has several "matching" keys); embeddings: random unit vectors in
  :math:`\\mathbb R^{64}`; no positional encoding, so rows differ only in how many keys they see;
* 4 heads of width :math:`d_h = 16`, tied random projections :math:`W_q = W_k` (entries i.i.d.
  Gaussian), scaled so that the logits :math:`q_i^\\top k_j/\\sqrt{d_h}` between distinct tokens have
  standard deviation 1; a key carrying the query's own token then scores about
  :math:`\\sqrt{d_h} = 4` higher;
* vanilla: :math:`\\tau \\equiv 1`; SSA: the position part of the query temperature,
  :math:`\\tau_i = 1 + \\sigma(\\alpha)\\ln(i+1)` with :math:`\\alpha = 0`
  (:func:`softmax_stability.temperature.ssa_temperature`, ``sigmoid`` parametrisation and the
  :math:`\\alpha = 0` initialisation of the unofficial reproductions, docs/notes/selective_attention.md §1.3/§1.5 [3P],
  unconfirmed; no token part, no training).

The weights are computed as :func:`softmax_stability.maps.softmax` of the temperature-scaled logits
under :func:`softmax_stability.masks.causal_mask` (float64). When
:func:`softmax_stability.attention.dot_product_attention` is importable, the layer output
``P @ v`` is cross-checked against it (``causal=True``, ``query_temperature=tau``, i.e. the
temperature folded into :math:`q` and the fused :func:`jax.nn.dot_product_attention` path); the
largest difference is recorded in the provenance (``attention_py_check``).

The model and the averaging live in :mod:`softmax_stability.experiments.sorted_attention`
(:func:`~softmax_stability.experiments.sorted_attention.sorted_attention_statistics`); this script
draws them.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import Normalize

from figures._common import FigureContext, figure
from softmax_stability.experiments.sorted_attention import (
    ALPHA, D_MODEL, HEAD_DIM, HEADS, TOP_FRACTION, VOCAB, ZIPF_S, sorted_attention_statistics)

# the authors' red/green/blue for T/4, T/2, 3T/4, as Okabe-Ito's colour-blind-safe vermillion,
# bluish green and blue, each with its own line style
BOLD = ((0.25, "#D55E00", "-"), (0.5, "#009E73", "--"), (0.75, "#0072B2", "-."))


def _sizes(ctx: FigureContext) -> tuple[int, int, int]:
    """(sequence length T, sequences per chunk, chunks); statistics are averaged over all chunks."""
    if ctx.smoke:
        return 64, 2, 1
    if ctx.quick:
        return 512, 8, 4
    return 1024, 8, 8


def _profile_panel(ax, prof: np.ndarray, rows_thin, cmap, norm, T: int):
    for t in rows_thin:
        ax.plot(np.arange(1, t + 2), prof[t, : t + 1], color=cmap(norm(t)), lw=0.5, alpha=0.7)
    for frac, col, ls in BOLD:
        t = int(frac * T) - 1
        ax.plot(np.arange(1, t + 2), prof[t, : t + 1], color=col, lw=2.2, ls=ls,
                label=f"query {t + 1} of {T} ({t + 1} keys)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rank of the key within the row (1 = largest weight)")
    ax.grid(True, which="major", alpha=0.3)


@figure(name="ssa_sorted_attention", order=42,
        caption="Sorted causal attention rows (averaged over sequences and heads) by query position "
                "for a random-weight one-layer causal attention on Zipf tokens: vanilla vs the SSA "
                "position temperature 1 + sigma(0) ln n, in the style of the SSA authors' "
                "draw_att.py; right: top-5% mass and normalised entropy per position. A synthetic "
                "small-scale reconstruction, not the SSA paper's LLM plot.",
        source="SSA authors' sorted-attention statistic (official code draw_att.py, docs/notes/selective_attention.md §3); "
               "reconstructed on a synthetic model")
def make(ctx: FigureContext) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    T, B, chunks = _sizes(ctx)
    ctx.params.update(T=T, sequences=B * chunks, vocab=VOCAB, zipf_exponent=ZIPF_S, d_model=D_MODEL,
                      heads=HEADS, head_dim=HEAD_DIM, tied_qk=True, positional_encoding=None,
                      ssa_alpha=ALPHA, ssa_parametrisation="sigmoid", top_fraction=TOP_FRACTION,
                      dtype="float64", weights_via="softmax_stability.maps.softmax + masks.causal_mask")
    res = sorted_attention_statistics(ctx.rng_key, T, B, chunks, progress=ctx.show_progress)
    profiles, stats, checks = res["profiles"], res["stats"], res["checks"]
    for name in checks:
        ctx.params[f"attention_py_check_{name}"] = checks[name]

    cmap = plt.get_cmap("cool")
    norm = Normalize(vmin=1, vmax=T)
    rows_thin = np.unique(np.geomspace(2, T, 40 if not ctx.smoke else 12).astype(int)) - 1
    fig, axes = plt.subplots(1, 3, figsize=(17, 6.0), gridspec_kw={"width_ratios": [1, 1, 1.05]})
    titles = {"vanilla": r"vanilla attention ($\tau \equiv 1$)",
              "ssa": r"SSA position temperature $\tau_i = 1 + \sigma(0)\ln(i+1)$"}
    for ax, name in zip(axes[:2], ("vanilla", "ssa")):
        _profile_panel(ax, profiles[name], rows_thin, cmap, norm, T)
        ax.set_title(titles[name], fontsize=11)
    lo = min(float(np.min(p[np.tril(np.ones((T, T), bool))][p[np.tril(np.ones((T, T), bool))] > 0]))
             for p in profiles.values())
    for ax in axes[:2]:
        ax.set_ylim(max(lo, 1e-12) / 2, 1.5)
    axes[0].set_ylabel("attention weight (sorted, mean over sequences and heads)")
    axes[0].legend(loc="lower left", fontsize=8)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=norm)
    fig.colorbar(sm, ax=axes[1], label="query position (= visible keys)", pad=0.02)

    ax = axes[2]
    pos = np.arange(1, T + 1)
    edges = np.unique(np.geomspace(1, T + 1, 25 if not ctx.smoke else 10).astype(int))
    centers = np.sqrt(edges[:-1] * (edges[1:] - 1).clip(min=edges[:-1]))
    for name, col, lab in (("vanilla", "black", "vanilla"), ("ssa", "#D55E00", "SSA")):
        for stat, ls, what in (("top_fraction_mass", "-", "top-5% mass"),
                               ("normalized_entropy", "--", "normalised entropy")):
            y = stats[name][stat]
            ax.plot(pos, y, color=col, lw=0.6, ls=ls, alpha=0.25)
            binned = [y[a - 1:b - 1].mean() for a, b in zip(edges[:-1], edges[1:])]
            ax.plot(centers, binned, color=col, lw=1.8, ls=ls, marker="o", ms=3, label=f"{lab}: {what}")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("query position (= number of visible keys)")
    ax.set_title("per-position statistics (mean over sequences and heads)", fontsize=11)
    # the kink: the top 5 % of n keys is max(1, floor(0.05 n)) keys, 1 key below n = 40 and 2 from n = 40
    step = int(np.ceil(2 / TOP_FRACTION))
    if step <= T:
        ax.axvline(step, color="0.4", lw=1, ls=":")
        ax.annotate(f"kink at n = {step}: the top 5% of the n keys\nis max(1, ⌊0.05 n⌋) keys, so it grows from\n"
                    f"1 key (n < {step}) to 2 keys (n ≥ {step}), then 3 at n = {int(np.ceil(3 / TOP_FRACTION))}, ...",
                    xy=(step, 0.3), xytext=(0.97, 0.03), textcoords="axes fraction", fontsize=7.5, va="bottom", ha="right",
                    bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="0.6", alpha=0.9),
                    arrowprops=dict(arrowstyle="->", color="0.4", lw=0.8))
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower right", bbox_to_anchor=(0.99, 0.0), ncol=2, fontsize=8,
               title="right panel: bold = log-binned means, faint = every position",
               title_fontsize=8, frameon=False)
    ax.grid(True, alpha=0.3)
    tail = slice(int(0.9 * T), T)  # the last 10 % of the positions
    outcome = {name: {st: float(stats[name][st][tail].mean()) for st in ("top_fraction_mass", "normalized_entropy")}
               for name in ("vanilla", "ssa")}
    ctx.params["last_10pct_positions_mean"] = outcome
    sharper = (outcome["ssa"]["top_fraction_mass"] > outcome["vanilla"]["top_fraction_mass"]
               and outcome["ssa"]["normalized_entropy"] < outcome["vanilla"]["normalized_entropy"])
    direction = ("SSA's late rows are less diluted, as expected (selective_attention.md §5 item 24)" if sharper else
                 "SSA's late rows are NOT less diluted on both statistics, unlike the expectation "
                 "(selective_attention.md §5 item 24)")
    ctx.params["ssa_less_diluted_late"] = bool(sharper)
    measured = (f"over the last 10% of positions: top-5% mass {outcome['vanilla']['top_fraction_mass']:.2f} "
                f"(vanilla) vs {outcome['ssa']['top_fraction_mass']:.2f} (SSA), normalised entropy "
                f"{outcome['vanilla']['normalized_entropy']:.2f} vs {outcome['ssa']['normalized_entropy']:.2f}")
    fig.suptitle(f"Sorted causal attention by query position, T = {T}: random-weight 1-layer "
                 "attention on Zipf tokens (synthetic reconstruction, not the SSA paper's LLM plot)\n"
                 f"measured {measured}: {direction}", fontsize=12)
    ctx.set_outcome(f"Measured on a random-weight synthetic model (T = {T}) {measured}: {direction}.")
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    ctx.save_figure(fig)

    ctx.save_csv(["query_position", *(f"{s}_{n}" for n in ("vanilla", "ssa") for s in stats["vanilla"])],
                 [(int(t), *(float(stats[n][s][t - 1]) for n in ("vanilla", "ssa") for s in stats["vanilla"]))
                  for t in pos])
    keep = sorted(set(int(t) for t in rows_thin) | {int(f * T) - 1 for f, _, _ in BOLD})
    ctx.save_csv(["setting", "query_position", "rank", "mean_sorted_weight"],
                 [(name, t + 1, r + 1, float(profiles[name][t, r]))
                  for name in ("vanilla", "ssa") for t in keep for r in range(t + 1)], suffix="profiles")
