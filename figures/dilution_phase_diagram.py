"""Phase diagram of needle retrieval under log-n temperature schedules, over (c, gap).

One key with logit gap :math:`\\Delta` over :math:`n-1` equal keys at inverse temperature
:math:`\\tau(n) = a + c\\ln n`. The colour is the needle's weight
:math:`p = \\sigma\\big(a\\Delta + (c\\Delta-1)\\ln n - \\ln(1-1/n)\\big)`, evaluated in float64 by
the library's closed form :func:`softmax_stability.dilution.needle_probability_scheduled`
(accurate at :math:`n = 2^{40}`, far beyond any direct softmax). As :math:`n\\to\\infty` it tends to
0, :math:`\\sigma(a\\Delta)` or 1 as :math:`c\\Delta <, =, > 1`
(:func:`~softmax_stability.dilution.needle_limit`, claims ``DL1-needle-limit`` and
``DL1b-ssmax-needle-limit``): the hyperbola :math:`c\\Delta = 1` (white dashed) is the phase
boundary, and the columns show the transition sharpening as :math:`n` grows.

Rows: :math:`a = 1` (:math:`1 + c\\ln n`: the SSA position temperature with gain :math:`c`, e.g.
``linear`` :math:`\\alpha = c` or ``sigmoid`` :math:`\\sigma(\\alpha) = c`) and :math:`a = 0`
(SSMax :math:`s\\ln n` with :math:`s = c`; :math:`c = 1` is log-n scaling). Horizontal dotted lines
mark :math:`c = \\sigma(0) = 0.5` (the SSA reproductions' initialisation, [3P], unconfirmed),
:math:`c = 0.43` (SSMax, Nakanishi 2025 Fig. 1) and :math:`c = 1` (labelled "log-n": in the SSMax row
it is log-n scaling :math:`\\ln n`, :func:`~softmax_stability.temperature.log_n_scaling`; in the
:math:`a = 1` row it is :math:`1 + \\ln n`).

This is a derived surrogate (docs/notes/selective_attention.md §2.2, docs/notes/field.md §4.4), a small-scale library reconstruction,
not a figure of the SSA paper: the paper's dilution theorem, its logit model and its learned
temperatures were not recovered.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from figures._common import FigureContext, figure
from softmax_stability.experiments.dilution_sweeps import PHASE_LOG2_NS as LOG2_NS
from softmax_stability.experiments.dilution_sweeps import PHASE_OFFSETS as OFFSETS
from softmax_stability.experiments.dilution_sweeps import needle_maps

GAP_MAX, C_MAX = 4.0, 1.5
MARKS = ((0.5, r"SSA $\sigma(0)$"), (0.43, "SSMax 0.43"), (1.0, "log-n"))


def grid(ctx: FigureContext):
    m = 24 if ctx.smoke else (121 if ctx.quick else 241)
    gaps = np.linspace(0.0, GAP_MAX, m)
    cs = np.linspace(0.0, C_MAX, m)
    return gaps, cs


@figure(name="dilution_phase_diagram", order=41,
        caption="Needle weight under tau(n) = a + c ln n over (gap, c) at n = 2^10, 2^20, 2^40 "
                "(closed form, float64): the c*gap = 1 hyperbola separates dilution (p -> 0) from "
                "retrieval (p -> 1); top a = 1 (SSA-style 1 + c ln n), bottom a = 0 (SSMax c ln n). "
                "A derived library surrogate, not a figure of the SSA paper.",
        source="library figure (softmax_stability.dilution.needle_probability_scheduled; "
               "surrogate for SSA §4, docs/notes/selective_attention.md §2.2; SSMax threshold, docs/notes/field.md §4.4)")
def make(ctx: FigureContext) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    from softmax_stability.dilution import needle_limit

    gaps, cs = grid(ctx)
    ctx.params.update(log2_n=list(LOG2_NS), offsets=list(OFFSETS), gap_range=[0.0, GAP_MAX],
                      c_range=[0.0, C_MAX], grid_points=len(gaps), dtype="float64",
                      marked_c={lab: c for c, lab in MARKS})
    maps = needle_maps(gaps, cs)
    # sanity of the plotted data: far from the boundary the largest n is at its limit
    G, C = np.meshgrid(gaps, cs)
    far_gap = {}
    for a in OFFSETS:
        lim = np.asarray(needle_limit(G, C, a))
        far = np.abs(C * G - 1.0) > 0.25
        far_gap[a] = float(np.max(np.abs(maps[(a, LOG2_NS[-1])] - lim)[far]))
        ctx.params[f"max_abs_p_minus_limit_far_from_boundary_a{a:g}_n2^{LOG2_NS[-1]}"] = far_gap[a]

    from matplotlib import patheffects as pe
    from matplotlib.lines import Line2D

    halo = [pe.withStroke(linewidth=2.2, foreground="white")]  # dark text readable on yellow and purple
    outline = [pe.withStroke(linewidth=2.6, foreground="black")]  # light lines readable on yellow
    fig, axes = plt.subplots(len(OFFSETS), len(LOG2_NS), figsize=(13.5, 8.0), sharex=True, sharey=True)
    extent = (gaps[0], gaps[-1], cs[0], cs[-1])
    gline = np.linspace(1.0 / C_MAX, GAP_MAX, 200)
    for r, a in enumerate(OFFSETS):
        for c, k in enumerate(LOG2_NS):
            ax = axes[r, c]
            im = ax.imshow(maps[(a, k)], origin="lower", extent=extent, aspect="auto", cmap="viridis",
                           vmin=0.0, vmax=1.0, interpolation="bilinear")
            cont = ax.contour(gaps, cs, maps[(a, k)], levels=[0.1, 0.5, 0.9], colors="white",
                              linewidths=0.8)
            cont.set(path_effects=[pe.withStroke(linewidth=1.8, foreground="0.25")])
            labels = ax.clabel(cont, fontsize=7.5, fmt="%.1f", colors="black")
            for t in labels:
                t.set_path_effects(halo)
            ax.plot(gline, 1.0 / gline, color="white", lw=1.8, ls="--", path_effects=outline)
            for cm, lab in MARKS:
                ax.axhline(cm, color="0.9", lw=0.7, ls=":", path_effects=[pe.withStroke(linewidth=1.6,
                                                                                         foreground="0.3")])
                if c == 0:
                    ax.text(GAP_MAX * 0.98, cm, lab, color="black", fontsize=7.5, ha="right",
                            va="bottom", path_effects=halo)
            ax.set_xlim(0, GAP_MAX)
            ax.set_ylim(0, C_MAX)
            ax.set_xticks([0, 1, 2, 3, 4])
            ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5])
            if r == 0:
                ax.set_title(rf"$n = 2^{{{k}}}$")
            if r == len(OFFSETS) - 1:
                ax.set_xlabel(r"needle logit gap $\Delta$")
            if c == 0:
                sched = r"$\tau = 1 + c\ln n$" if a == 1.0 else r"$\tau = c\ln n$ (SSMax, $s=c$)"
                ax.set_ylabel(f"{sched}\nlog-slope $c$")
    axes[1, -1].legend(handles=[Line2D([], [], color="white", lw=1.8, ls="--", path_effects=outline,
                                       label=r"$c\Delta = 1$"),
                                Line2D([], [], color="white", lw=0.8, label="p = 0.1, 0.5, 0.9",
                                       path_effects=[pe.withStroke(linewidth=1.8, foreground="0.25")])],
                       loc="upper right", fontsize=8, facecolor="0.3", labelcolor="white", framealpha=0.85)
    axes[0, 0].text(0.25, 0.12, r"$p \to 0$" "\n(dilution)", color="white", fontsize=9)
    axes[0, -1].text(GAP_MAX * 0.62, C_MAX * 0.8, r"$p \to 1$", color="black", fontsize=10, path_effects=halo)
    worst = max(far_gap.values())
    ctx.set_outcome(f"Measured (closed form, float64): at n = 2^{LOG2_NS[-1]} the needle weight is within {worst:.1e} "
                    "of its n -> infinity limit (0, sigma(a*gap) or 1) wherever |c*gap - 1| > 0.25"
                    + (", so the hyperbola c*gap = 1 separates dilution from retrieval in both rows (a = 1 and a = 0)."
                       if worst < 0.1 else "; the transition is still broad at this n."))
    fig.suptitle(r"Needle weight $p$ under $\tau(n) = a + c\ln n$: phase boundary $c\Delta = 1$ "
                 "(closed form, float64; library reconstruction, not an SSA-paper figure)\n"
                 rf"measured: at $n = 2^{{{LOG2_NS[-1]}}}$, $p$ is within {worst:.1e} of its $n\to\infty$ limit "
                 r"(0, $\sigma(a\Delta)$ or 1) wherever $|c\Delta - 1| > 0.25$", fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.9, 0.95), w_pad=1.6)
    cax = fig.add_axes((0.915, 0.12, 0.018, 0.74))
    fig.colorbar(im, cax=cax, label=r"needle weight $p_{\mathrm{needle}}$")
    ctx.save_figure(fig)

    cols = [(a, k) for a in OFFSETS for k in LOG2_NS]
    rows = [(float(g), float(cc), *(f"{maps[col][i, j]:.10g}" for col in cols))
            for i, cc in enumerate(cs) for j, g in enumerate(gaps)]
    ctx.save_csv(["gap", "c", *(f"p_a{a:g}_n2^{k}" for a, k in cols)], rows)
