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
import numpy as np

from figures._common import FigureContext, figure

DELTA_S = (0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 8.0, 16.0, 32.0)
# the authors' colours (bounds.py), so the panels read like the paper's
COLORS = ("xkcd:periwinkle", "xkcd:magenta", "xkcd:black", "xkcd:purple", "xkcd:green", "xkcd:blue",
          "xkcd:brown", "xkcd:red", "xkcd:aquamarine", "xkcd:forest green", "xkcd:mauve")
PRECISION = 0.01


def boundary_curves(condition: str, beta=None, *, n_line: int = 2000):
    """Closed-form lines and grid-search points for every delta_s.

    Returns ``(c1_line, lines, rows, gap, compared)``: rows are (delta_s, c1, c2_closed, c2_grid),
    gap the largest |grid - max(closed, 0)| over the ``compared`` points where both exist below the
    grid's last step (there the grid value lies in (closed, closed + step])."""
    import jax

    from softmax_stability import focus

    jax.config.update("jax_enable_x64", True)
    c1_grid = np.arange(PRECISION, 1, step=PRECISION)  # the authors' c1 values
    c1_line = np.linspace(0.0, 1.0, n_line)
    rows, lines, gap, compared = [], {}, 0.0, 0
    for ds in DELTA_S:
        if condition == "w":
            closed_line = np.asarray(focus.c2_min_w(c1_line, ds))
            closed = np.asarray(focus.c2_min_w(c1_grid, ds))
            grid = np.asarray(focus.c2_min_grid("w", c1_grid, ds, precision=PRECISION))
        else:
            closed_line = np.asarray(focus.c2_min_x(c1_line, ds, beta))
            closed = np.asarray(focus.c2_min_x(c1_grid, ds, beta))
            grid = np.asarray(focus.c2_min_grid("x", c1_grid, ds, beta, precision=PRECISION))
        lines[ds] = closed_line
        both = np.isfinite(grid) & (closed < 1 - PRECISION)
        if np.any(both):
            gap = max(gap, float(np.max(np.abs(grid[both] - np.maximum(closed[both], 0)))))
            compared += int(np.sum(both))
        for c, cl, gr in zip(c1_grid, closed, grid):
            rows.append((ds, round(float(c), 10), float(cl), float(gr)))
    return c1_line, lines, rows, gap, compared


def draw_panel(ax, c1_line, lines, rows):
    for ds, color in zip(DELTA_S, COLORS):
        y = np.where(lines[ds] <= 1.0, lines[ds], np.nan)
        if np.all(np.isnan(y)):
            why = "empty" if np.all(np.isinf(lines[ds])) else r"$c_2 > 1$"
            ax.plot([], [], color=color, label=f"{ds:g} ({why})")
            continue
        ax.plot(c1_line, y, color=color, lw=1.2, label=f"{ds:g}")
        pts = np.array([(c, g) for d, c, _, g in rows if d == ds and np.isfinite(g)])
        if pts.size:  # every grid point (step 0.01): small hollow markers keep the lines readable
            ax.plot(pts[:, 0], pts[:, 1], "o", ms=1.6, mew=0.4, mfc="none", color=color, alpha=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(r"$c_1 = \delta_h/\delta_s$")


@figure(name="sf_fig21", order=210,
        caption="Minimal c2 = Delta/delta_s against c1 = delta_h/delta_s for condition (304), "
                "lambda_W(topk) < lambda_W(full): closed form (lines) and every point of the authors' "
                "grid search at step 0.01 (markers); empty for delta_s <= ln 2.",
        source="SF Fig. 21 (reproduced from the authors' bounds.py conditions)")
def make(ctx: FigureContext) -> None:
    c1_line, lines, rows, gap, compared = boundary_curves("w")
    ctx.params.update(delta_s=list(DELTA_S), grid_precision=PRECISION, max_grid_minus_closed=gap,
                      grid_points_compared=compared)
    fig, ax = plt.subplots(figsize=(5.4, 4.2))
    draw_panel(ax, c1_line, lines, rows)
    ax.set_ylabel(r"$c_2 = \Delta/\delta_s$")
    ax.legend(title=r"$\delta_s$", fontsize=7, handlelength=1, loc="upper left", bbox_to_anchor=(1.02, 1))
    ax.set_title(r"$\lambda_W(\xi_s)$ vs $\lambda_W(\xi_h)$ (304)")
    ctx.save_figure(fig)
    ctx.save_csv(["delta_s", "c1", "c2_min_closed_form", "c2_min_grid_search"], rows)
