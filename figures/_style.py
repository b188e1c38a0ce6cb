"""Plotting style shared by several figures (a pipeline helper, not a figure: no ``@figure`` here).

Only drawing lives here; every number comes from the library or ``softmax_stability.experiments``.
"""

from __future__ import annotations

import numpy as np

from softmax_stability.experiments.focus_regions import DELTA_S

# the authors' colours (bounds.py), so the panels read like the paper's
COLORS = ("xkcd:periwinkle", "xkcd:magenta", "xkcd:black", "xkcd:purple", "xkcd:green", "xkcd:blue",
          "xkcd:brown", "xkcd:red", "xkcd:aquamarine", "xkcd:forest green", "xkcd:mauve")


def draw_panel(ax, c1_line, lines, rows):
    """One panel of SF Fig. 21/22: the closed-form c2_min line and the grid points per delta_s."""
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
