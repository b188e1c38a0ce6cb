r"""Region boundaries of the SF comparison conditions: closed form against the authors' grid search.

Behind SF Figs. 21 and 22 (figures ``sf_fig21``, ``sf_fig22``). For each full-softmax dispersion
:math:`\delta_s` the condition (304) (or (305) at in-degree :math:`\beta`) holds iff
:math:`c_2 = \Delta/\delta_s > c_2^{\min}(c_1)`, :math:`c_1 = \delta_h/\delta_s`. The closed forms are
:func:`softmax_stability.focus.c2_min_w` and :func:`~softmax_stability.focus.c2_min_x`; the grid
search of the authors' ``bounds.py`` (step 0.01 in :math:`c_1` and :math:`c_2`) is
:func:`~softmax_stability.focus.c2_min_grid` (``docs/notes/semantic_focus.md``). This module only
evaluates both on the figures' grids and measures how far apart they are.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DELTA_S", "PRECISION", "boundary_curves"]

#: the full-softmax dispersions of SF Figs. 21-22 (the authors' ``bounds.py``)
DELTA_S = (0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 8.0, 16.0, 32.0)
#: the step of the authors' grid search in c1 and c2
PRECISION = 0.01


def boundary_curves(condition: str, beta=None, *, n_line: int = 2000):
    """Closed-form lines and grid-search points for every delta_s.

    Enables float64 (``jax_enable_x64``), in which the authors' grid search runs.

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
