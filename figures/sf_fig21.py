"""SF Fig. 21: where top-k softmax has the better stability constant in the weights (condition 304).

For each full-softmax dispersion :math:`\\delta_s`, condition (304) holds iff
:math:`c_2 = \\Delta/\\delta_s > c_2^{\\min,W}(c_1)`, :math:`c_1 = \\delta_h/\\delta_s`. Lines: the closed form
:func:`softmax_stability.focus.c2_min_w`; markers: every point of the authors' grid search (``bounds.py``,
step 0.01 in :math:`c_1` and :math:`c_2`) by :func:`softmax_stability.focus.c2_min_grid`, one per
:math:`c_1` where some grid :math:`c_2 < 1` satisfies (304). The largest distance between a grid point and
the closed form is recorded as ``max_grid_minus_closed`` (with the number of points compared); it is at
most the grid step (asserted by the smoke test). For :math:`\\delta_s \\le \\ln 2` (0.25, 0.5) the region is
empty and nothing is drawn, as in the paper.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from figures._common import FigureContext, figure
from figures._style import absent_note, boundary_handles, draw_panel
from softmax_stability.experiments.focus_regions import DELTA_S, PRECISION, boundary_curves


@figure(name="sf_fig21", order=210,
        caption="Minimal c2 = Delta/delta_s against c1 = delta_h/delta_s for condition (304), "
                "lambda_W(topk) < lambda_W(full): closed form (lines) and every point of the authors' "
                "grid search at step 0.01 (markers); empty for delta_s <= ln 2.",
        source="SF Fig. 21 (reproduced from the authors' bounds.py conditions)")
def make(ctx: FigureContext) -> None:
    c1_line, lines, rows, gap, compared = boundary_curves("w")
    fig, ax = plt.subplots(figsize=(6.2, 4.8))
    absent = draw_panel(ax, c1_line, lines, rows)
    ctx.params.update(delta_s=list(DELTA_S), grid_precision=PRECISION, max_grid_minus_closed=gap,
                      grid_points_compared=compared, no_curve=[[d, w] for d, w in absent])
    ax.set_ylabel(r"$c_2 = \Delta/\delta_s$")
    handles = boundary_handles({d for d, _ in absent})
    handles.append(Line2D([], [], color="0.3", marker="o", ms=3, mfc="none", ls="none",
                          label="grid search\n(step 0.01)"))
    ax.legend(handles=handles, title=r"$\delta_s$", fontsize=7, handlelength=2.2, loc="upper left",
              bbox_to_anchor=(1.02, 1), frameon=False)
    ax.set_title(r"$\lambda_W(\xi_h) < \lambda_W(\xi_s)$ (304) holds above each curve" "\n"
                 f"measured: all {compared} grid points within {gap:.3f} of the closed form (step {PRECISION:g})",
                 fontsize=9)
    empty = [d for d, w in absent if w == "empty"]
    match = ("the closed form reproduces the grid search" if gap <= PRECISION * (1 + 1e-9)
             else "MORE than one grid step: the closed form does not reproduce the grid search")
    ctx.set_outcome(f"Measured: all {compared} points of the authors' grid search (step {PRECISION:g}) lie within "
                    f"{gap:.3f} of the closed form c2_min_w: {match}; "
                    + (f"no region for delta_s <= {max(empty):g} (<= ln 2), as in SF Fig. 21." if empty
                       else "a region for every delta_s shown."))
    note = absent_note(absent)
    if note:
        ax.text(1.04, 0.0, note.replace(", ", ",\n  "), transform=ax.transAxes, ha="left", va="bottom",
                fontsize=7, color="0.25")
    fig.tight_layout()
    ctx.save_figure(fig)
    ctx.save_csv(["delta_s", "c1", "c2_min_closed_form", "c2_min_grid_search"], rows)
