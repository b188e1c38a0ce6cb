"""SF Fig. 22: where top-k softmax has the better stability constant in the tokens (condition 305).

Six panels, :math:`\\beta \\in \\{1, 2, 4, 8, 16, 32\\}` placed in the :math:`\\bar\\beta` slot of (305) as in
the authors' ``bounds.py --xcomp``, with :math:`\\delta_s = 2\\Gamma\\Xi^2`. Lines: the closed form
:func:`softmax_stability.focus.c2_min_x`; markers: every point of the authors' grid search at step 0.01. The largest grid-vs-closed-form
distance per panel is recorded as ``max_grid_minus_closed`` (at most the grid step; asserted by the smoke
test) and stated on the image. A :math:`\\delta_s` with no curve in a panel is named there: "empty" where
(305) never holds, :math:`c_2^{\\min} > 1` where it needs :math:`\\Delta > \\delta_s`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from figures._common import FigureContext, figure
from figures._style import absent_note, boundary_handles, draw_panel
from softmax_stability.experiments.focus_regions import DELTA_S, PRECISION, boundary_curves

BETAS = (1, 2, 4, 8, 16, 32)


@figure(name="sf_fig22", order=220,
        caption="Minimal c2 = Delta/delta_s against c1 = delta_h/delta_s for condition (305), "
                "lambda_X(topk) < lambda_X(full), one panel per in-degree beta: closed form (lines) "
                "and every point of the authors' grid search at step 0.01 (markers).",
        source="SF Fig. 22 (reproduced from the authors' bounds.py --xcomp conditions)")
def make(ctx: FigureContext) -> None:
    fig, axs = plt.subplots(2, 3, figsize=(10.5, 8.2), sharex=True, sharey=True)
    all_rows, gaps, compared, absent = [], {}, 0, {}
    for beta, ax in zip(BETAS, axs.flat):
        c1_line, lines, rows, gap, n_cmp = boundary_curves("x", beta)
        gaps[beta] = gap
        compared += n_cmp
        absent[beta] = draw_panel(ax, c1_line, lines, rows)
        note = absent_note(absent[beta])
        ax.set_title(rf"$\beta = {beta}$", fontsize=11, pad=26)
        ax.text(0.5, 1.02, note, transform=ax.transAxes, ha="center", va="bottom", fontsize=7.5, color="0.25")
        all_rows += [(beta, *r) for r in rows]
    for ax in axs[0]:
        ax.set_xlabel("")
    for ax in axs[:, 0]:
        ax.set_ylabel(r"$c_2 = \Delta/\delta_s$")
    never = set.intersection(*({d for d, _ in a} for a in absent.values()))
    handles = boundary_handles(never)
    handles.append(Line2D([], [], color="0.3", marker="o", ms=3, mfc="none", ls="none",
                          label="grid search\n(step 0.01)"))
    fig.legend(handles=handles, title=r"$\delta_s = 2\Gamma\Xi^2$", fontsize=8, handlelength=2.2,
               loc="center left", bbox_to_anchor=(0.86, 0.5), frameon=False)
    worst = max(gaps.values())
    match = ("the closed form reproduces the grid search" if worst <= PRECISION * (1 + 1e-9)
             else "MORE than one grid step: the closed form does not reproduce the grid search")
    shown = {b: len(DELTA_S) - len(a) for b, a in absent.items()}
    ctx.set_outcome(f"Measured: all {compared} points of the authors' grid search (step {PRECISION:g}) lie within "
                    f"{worst:.3f} of the closed form c2_min_x: {match}; curves per panel (of {len(DELTA_S)} delta_s): "
                    + ", ".join(f"beta {b}: {k}" for b, k in shown.items()) + ".")
    fig.suptitle(r"$\lambda_X(\xi_h) < \lambda_X(\xi_s)$ (305) holds above each curve; "
                 "lines: closed form, markers: the authors' grid search\n"
                 f"measured: every one of {compared} grid points lies within {worst:.3f} "
                 f"of the closed form (grid step {PRECISION:g})", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.86, 0.95))
    ctx.params.update(delta_s=list(DELTA_S), beta=list(BETAS), grid_precision=PRECISION,
                      max_grid_minus_closed={str(b): g for b, g in gaps.items()}, grid_points_compared=compared,
                      no_curve={str(b): [[d, w] for d, w in a] for b, a in absent.items()})
    ctx.save_figure(fig)
    ctx.save_csv(["beta", "delta_s", "c1", "c2_min_closed_form", "c2_min_grid_search"], all_rows)
