"""Plotting style shared by several figures (a pipeline helper, not a figure: no ``@figure`` here).

Only drawing lives here; every number comes from the library or ``softmax_stability.experiments``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from softmax_stability.experiments.focus_regions import DELTA_S

#: Okabe & Ito's colour-blind-safe palette (black first), for up to 8 unordered series
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")

# delta_s is ordered and the boundaries are nested in that order (a larger delta_s lies further
# right), so a sequential colour-blind-safe map carries the order; neighbours alternate solid/dashed.
COLORS = tuple(plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(DELTA_S))))
STYLES = tuple("-" if i % 2 == 0 else (0, (4, 1.5)) for i in range(len(DELTA_S)))


def boundary_handles(no_curve=()):
    """Legend handles, one per delta_s, in the colours and line styles of :func:`draw_panel`;
    the delta_s in ``no_curve`` (drawn in no panel) are labelled so."""
    from matplotlib.lines import Line2D

    return [Line2D([], [], color=c, ls=s, lw=1.6, label=f"{d:g}" + (" (no curve)" if d in no_curve else ""))
            for d, c, s in zip(DELTA_S, COLORS, STYLES)]


def draw_panel(ax, c1_line, lines, rows):
    """One panel of SF Fig. 21/22: the closed-form c2_min line and the grid points per delta_s.

    Each curve is labelled by its delta_s where it crosses c2 = 0.6 (unless it would crowd a label
    already there). Returns the delta_s with no curve in view, as ``(delta_s, why)`` with why
    "empty" (the condition never holds) or "c2 > 1" (it needs a separation larger than delta_s);
    :func:`absent_note` turns that into text for the panel's title."""
    absent = []
    for ds, color, style in zip(DELTA_S, COLORS, STYLES):
        y = np.where(lines[ds] <= 1.0, lines[ds], np.nan)
        if np.all(np.isnan(y)):
            absent.append((ds, "empty" if np.all(np.isinf(lines[ds])) else "c2 > 1"))
            continue
        ax.plot(c1_line, y, color=color, ls=style, lw=1.3)
        pts = np.array([(c, g) for d, c, _, g in rows if d == ds and np.isfinite(g)])
        if pts.size:  # every grid point (step 0.01): small hollow markers keep the lines readable
            ax.plot(pts[:, 0], pts[:, 1], "o", ms=1.6, mew=0.4, mfc="none", color=color, alpha=0.8)
    _label_curves(ax, c1_line, lines, absent)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0", "0.25", "0.5", "0.75", "1"])
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1], ["0", "0.25", "0.5", "0.75", "1"])
    ax.set_xlabel(r"$c_1 = \delta_h/\delta_s$")
    return absent


def _label_curves(ax, c1_line, lines, absent, level: float = 0.6, min_gap: float = 0.075):
    skip = {d for d, _ in absent}
    last = -1.0
    for ds, color in zip(DELTA_S, COLORS):
        if ds in skip:
            continue
        above = np.nonzero(lines[ds] >= level)[0]
        if above.size == 0:
            continue
        x, y, ha = float(c1_line[above[0]]), level, "center"
        if above[0] == 0:  # starts above the level: label it just right of c1 = 0, on the curve
            i = int(np.searchsorted(c1_line, 0.02))
            if lines[ds][i] > 1:
                continue
            x, y, ha = float(c1_line[i]), float(lines[ds][i]), "left"
        if x - last < min_gap:
            continue
        last = x
        ax.text(x, y, f"{ds:g}", color=color, fontsize=7, ha=ha, va="center", fontweight="bold",
                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.85))


def absent_note(absent) -> str:
    """Lines naming the delta_s of a panel that have no curve, and why (empty string if none).

    The empty ones are the smallest delta_s (the condition needs enough dispersion), so they are
    given as a range."""
    notes = []
    empty = [d for d, w in absent if w == "empty"]
    if empty:
        notes.append(rf"no curve, empty: $\delta_s \leq {max(empty):g}$")
    high = [f"{d:g}" for d, w in absent if w != "empty"]
    if high:
        notes.append(rf"no curve, $c_2^{{\min}} > 1$: $\delta_s$ = {', '.join(high)}")
    return "\n".join(notes)
