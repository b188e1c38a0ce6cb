"""SF Fig. 22: where top-k softmax has the better stability constant in the tokens (condition 305).

Six panels, :math:`\\beta \\in \\{1, 2, 4, 8, 16, 32\\}` placed in the :math:`\\bar\\beta` slot of (305) as in
the authors' ``bounds.py --xcomp``, with :math:`\\delta_s = 2\\Gamma\\Xi^2`. Lines: the closed form
:func:`softmax_stability.focus.c2_min_x`; markers: every point of the authors' grid search at step 0.01. The largest grid-vs-closed-form
distance per panel is recorded as ``max_grid_minus_closed`` (at most the grid step; asserted by the smoke
test).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from figures._common import FigureContext, figure
from figures._style import COLORS, draw_panel
from softmax_stability.experiments.focus_regions import DELTA_S, PRECISION, boundary_curves

BETAS = (1, 2, 4, 8, 16, 32)


@figure(name="sf_fig22", order=220,
        caption="Minimal c2 = Delta/delta_s against c1 = delta_h/delta_s for condition (305), "
                "lambda_X(topk) < lambda_X(full), one panel per in-degree beta: closed form (lines) "
                "and every point of the authors' grid search at step 0.01 (markers).",
        source="SF Fig. 22 (reproduced from the authors' bounds.py --xcomp conditions)")
def make(ctx: FigureContext) -> None:
    fig, axs = plt.subplots(1, len(BETAS), figsize=(2.6 * len(BETAS), 3.3), sharey=True)
    all_rows, gaps, compared = [], {}, 0
    for beta, ax in zip(BETAS, axs):
        c1_line, lines, rows, gap, n_cmp = boundary_curves("x", beta)
        gaps[beta] = gap
        compared += n_cmp
        draw_panel(ax, c1_line, lines, rows)
        ax.set_title(rf"$\beta = {beta}$")
        all_rows += [(beta, *r) for r in rows]
    axs[0].set_ylabel(r"$c_2 = \Delta/\delta_s$")
    handles = [Line2D([], [], color=c, label=f"{d:g}") for d, c in zip(DELTA_S, COLORS)]
    axs[-1].legend(handles=handles, title=r"$\delta_s = 2\Gamma\Xi^2$", fontsize=6, handlelength=1,
                   loc="upper left", bbox_to_anchor=(1.04, 1))
    fig.suptitle(r"$\lambda_X(\xi_s)$ vs $\lambda_X(\xi_h)$ (305)")
    ctx.params.update(delta_s=list(DELTA_S), beta=list(BETAS), grid_precision=PRECISION,
                      max_grid_minus_closed={str(b): g for b, g in gaps.items()}, grid_points_compared=compared)
    ctx.save_figure(fig)
    ctx.save_csv(["beta", "delta_s", "c1", "c2_min_closed_form", "c2_min_grid_search"], all_rows)
