"""SSA Fig. 3 (reconstruction): graph next-token task, learned transition matrices and temperatures.

Small-scale reconstruction with our own data model (the paper's graph, model and training setup are
not known; ``docs/notes/selective_attention.md`` §2.1, §3): a random directed graph whose nodes have
out-degrees 1, 2, 4, 8, ..., a random walk with teleportation :math:`\\eta` as the true transition
matrix :math:`P^\\star` (:func:`softmax_stability.experiments.ssa_toy.transition_matrix`), and a
one-layer pointer-attention model trained by AdamW with equal steps and weight decay, vanilla vs a
per-token query temperature :math:`\\tau_i = 1 + \\tanh t_i` (SSA temperature, position part frozen
because every query sees all :math:`K` keys). Panels: :math:`P^\\star`, SSA, vanilla (nodes ordered by
degree), and the learned :math:`\\tau` per node against its degree over all seeds.

The last panel's title states the measured direction of :math:`\\tau` against the degree
(:func:`tau_degree_trend`: the least-squares slope of :math:`\\tau` on :math:`\\log_2 d` per graph,
mean :math:`\\pm` standard error over graphs; a direction is claimed when the mean is more than two
standard errors from 0) and whether it agrees with the expectation of ``docs/notes/selective_attention.md`` §5 item 21
(fewer neighbours, larger :math:`\\tau`, i.e. :math:`\\tau` falling with the degree). The text is
computed from the runs, never fixed in advance.
"""

from __future__ import annotations

import functools

import matplotlib.pyplot as plt
import numpy as np

from figures._common import FigureContext, figure


def graph_settings(ctx: FigureContext) -> dict:
    """Sizes per profile (shared by ssa_fig3 and ssa_table1)."""
    if ctx.smoke:
        return dict(num_nodes=8, levels=(1, 2, 4), seeds=2, steps=200, batch_size=64)
    if ctx.quick:
        return dict(num_nodes=16, levels=(1, 2, 4, 8), seeds=5, steps=1500, batch_size=128)
    return dict(num_nodes=32, levels=(1, 2, 4, 8, 16), seeds=10, steps=5000, batch_size=256)


TRAIN = dict(learning_rate=0.03, weight_decay=0.3, teleport=0.1)
EXPECTATION = "docs/notes/selective_attention.md §5 item 21 expects τ to fall with the degree (fewer neighbours, larger τ)"


def tau_degree_trend(degrees, taus) -> dict:
    """Direction of the learned temperature against the node degree, measured over graphs.

    Args:
        degrees, taus: one 1-D array per graph (out-degree and learned τ of every node).

    Returns:
        dict ``slope`` (mean over graphs of the least-squares slope of τ on log2(degree), per
        doubling of the degree), ``se`` (its standard error over graphs; NaN for one graph),
        ``graphs``, ``direction`` ("rises", "falls" or "none": |slope| <= 2 se; one graph: the
        sign), ``agrees`` (with ``docs/notes/selective_attention.md`` §5 item 21, which expects "falls"; None for "none")
        and ``text``, one sentence saying all of it.
    """
    slopes = []
    for d, t in zip(degrees, taus):
        x = np.log2(np.asarray(d, float))
        t = np.asarray(t, float)
        xc = x - x.mean()
        ss = float(np.sum(xc * xc))
        slopes.append(float(np.sum(xc * (t - t.mean())) / ss) if ss > 0 else 0.0)
    slopes = np.asarray(slopes)
    g = slopes.size
    slope = float(slopes.mean())
    se = float(slopes.std(ddof=1) / np.sqrt(g)) if g > 1 else float("nan")
    clear = slope != 0 and (g == 1 or abs(slope) > 2 * se)
    direction = ("rises" if slope > 0 else "falls") if clear else "none"
    agrees = None if direction == "none" else direction == "falls"
    est = f"{slope:+.3f} ± {se:.3f} per doubling of the degree, mean ± s.e. over {g} graphs" if g > 1 else \
          f"{slope:+.3f} per doubling of the degree, one graph"
    if direction == "none":
        text = f"Learned τ shows no clear trend with the out-degree ({est}); {EXPECTATION}."
    else:
        verdict = "agreeing with" if agrees else "DISAGREEING with"
        text = (f"Learned τ {direction} with the out-degree ({est}), {verdict} the expectation: "
                f"{EXPECTATION}.")
    return dict(slope=slope, se=se, graphs=g, direction=direction, agrees=agrees, text=text)


def runs_trend(runs) -> dict:
    """:func:`tau_degree_trend` of the SSA model over all graphs of :func:`graph_runs`."""
    return tau_degree_trend([r["ssa"]["degrees"] for r in runs], [r["ssa"]["tau"] for r in runs])


@functools.lru_cache(maxsize=4)
def _runs(profile: str, seed: int, key_items: tuple):
    import jax

    from softmax_stability.experiments import ssa_toy

    kw = dict(key_items)
    levels = kw.pop("levels")
    return ssa_toy.graph_experiment(jax.random.PRNGKey(seed), kw.pop("num_nodes"), levels,
                                    seeds=kw.pop("seeds"), **kw)


def graph_runs(ctx: FigureContext):
    """The vanilla-vs-SSA runs for this profile and seed (computed once per process)."""
    s = dict(graph_settings(ctx), **TRAIN)
    ctx.params.update(s)
    return _runs(ctx.profile, ctx.seed, tuple(sorted(s.items())))


@figure(name="ssa_fig3", order=120,
        caption="Graph next-token toy (small-scale reconstruction): true transition matrix, the ones learned "
                "by one attention layer with an SSA query temperature and without (vanilla), and the "
                "learned inverse temperature per node against its out-degree; the last panel's title "
                "states the measured direction of that trend and whether it agrees with the expectation "
                "that fewer neighbours give a larger temperature (docs/notes/selective_attention.md §5 item 21).",
        source="SSA Fig. 3 (reconstruction; data model ours)")
def make(ctx: FigureContext) -> None:
    runs = graph_runs(ctx)
    r0 = runs[0]
    deg = r0["ssa"]["degrees"]
    order = np.argsort(deg, kind="stable")
    mats = [("true $P^\\star$", r0["ssa"]["p_true"], None),
            ("SSA (query temperature)", r0["ssa"]["p_hat"], r0["ssa"]),
            ("vanilla attention", r0["vanilla"]["p_hat"], r0["vanilla"])]
    fig, axs = plt.subplots(1, 6, figsize=(18, 4.4),
                            gridspec_kw=dict(width_ratios=[1, 1, 1, 0.05, 0.3, 1.2], wspace=0.3))
    axs[4].axis("off")  # spacer between the colour bar and the scatter panel
    axes = [axs[0], axs[1], axs[2], axs[5]]
    vmax = max(float(m.max()) for _, m, _ in mats)
    im = None
    for ax, (title, m, res) in zip(axes, mats):
        im = ax.imshow(m[np.ix_(order, order)], cmap="viridis", vmin=0, vmax=vmax)
        if res is not None:
            title += f"\nCE excess {res['cross_entropy'] - res['min_cross_entropy']:.3f} nats, L1 {res['l1']:.3f}"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("next token (sorted by degree)")
        ax.set_ylabel("current token (tick: its out-degree)")
        ticks = np.arange(len(order))
        ax.set_yticks(ticks, [str(d) for d in deg[order]], fontsize=6)
        ax.set_xticks([])
    fig.colorbar(im, cax=axs[3], label="transition probability")
    axs[3].set_box_aspect(None)

    ax = axes[3]
    rng = np.random.default_rng(0)
    all_deg = np.concatenate([r["ssa"]["degrees"] for r in runs])
    all_tau = np.concatenate([r["ssa"]["tau"] for r in runs])
    levels = np.unique(all_deg)
    xpos = {d: i for i, d in enumerate(levels)}
    x = np.array([xpos[d] for d in all_deg]) + rng.uniform(-0.15, 0.15, all_deg.size)
    ax.scatter(x, all_tau, s=12, alpha=0.6, label=f"one node ({len(runs)} graphs)")
    means = [all_tau[all_deg == d].mean() for d in levels]
    ax.plot(range(len(levels)), means, "k_", ms=25, mew=2, label="mean per degree")
    ax.axhline(1.0, color="grey", ls=":", lw=1, label="vanilla ($\\tau=1$)")
    ax.set_xticks(range(len(levels)), [str(d) for d in levels])
    ax.set_xlabel("out-degree of the node")
    ax.set_ylabel("learned $\\tau_i = 1+\\tanh t_i$")
    trend = runs_trend(runs)
    ctx.params["tau_degree_trend"] = {k: trend[k] for k in ("slope", "se", "graphs", "direction", "agrees")}
    slope = f"{trend['slope']:+.3f} per doubling"
    if trend["direction"] == "none":
        short = f"no clear trend ({slope})"
        verdict = "measured: no clear direction of τ with the degree; docs/notes/selective_attention.md §5 item 21 expects"
    else:
        short = f"τ {trend['direction']} with degree ({slope})"
        verdict = (f"measured: τ {trend['direction']} with the degree, "
                   f"{'agreeing with' if trend['agrees'] else 'DISAGREEING with'} docs/notes/selective_attention.md §5 item 21, which expects")
    ax.set_title(f"SSA: learned temperature vs degree\n{short}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    s = ctx.params
    fig.suptitle(f"Graph next-token toy, K={s['num_nodes']}, teleport $\\eta$={s['teleport']}, "
                 f"AdamW wd={s['weight_decay']}, {s['steps']} steps (graph of seed 0)\n"
                 f"{verdict} fewer neighbours → larger τ", fontsize=11, y=1.06)
    ctx.save_figure(fig)
    rows = [(si, node, int(r["ssa"]["degrees"][node]), float(r["ssa"]["tau"][node]))
            for si, r in enumerate(runs) for node in range(len(r["ssa"]["degrees"]))]
    ctx.save_csv(["graph_seed", "node", "degree", "tau_ssa"], rows, suffix="tau")
    k = len(deg)
    ctx.save_csv(["model", "i", "j", "p"],
                 [(name, i, j, float(m[i, j])) for name, m, _ in
                  (("true", mats[0][1], 0), ("ssa", mats[1][1], 0), ("vanilla", mats[2][1], 0))
                  for i in range(k) for j in range(k)])
