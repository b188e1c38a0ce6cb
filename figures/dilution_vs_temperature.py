"""Attention dilution against the number of keys n for five inverse-temperature schedules.

A small-scale, theory-first reconstruction (not a figure of the SSA paper): the SSA paper argues
that softmax rows flatten as the context grows ("attention dilution") and that a position-aware
temperature counters it, but its exact dilution statements, the models it measured and the
temperature values it learned were not recovered (docs/notes/selective_attention.md §0, §2.2); everything below is the
library's own surrogate (the ``DL1``-``DL3`` claims of :mod:`softmax_stability.claims.dilution`).

Rows of panels: two logit models.

* *needle*: one key with logit gap :math:`\\Delta = 2` over :math:`n-1` equal keys, scaled by
  :math:`\\tau(n)`. Lines: the closed forms :func:`softmax_stability.dilution.needle_probability`,
  :func:`~softmax_stability.dilution.needle_entropy`,
  :func:`~softmax_stability.dilution.needle_effective_support`,
  :func:`~softmax_stability.dilution.needle_topk_mass`. Points: direct softmax
  (:func:`softmax_stability.maps.softmax`) of the explicit length-n logit vector, then the metrics
  of :mod:`softmax_stability.dilution`.
* *Gaussian*: i.i.d. :math:`z_j \\sim N(0, 1)` scaled by :math:`\\tau(n)`. Lines: the exact
  finite-n expectations by quadrature (:func:`~softmax_stability.dilution.gaussian_expected_max_weight`,
  :func:`~softmax_stability.dilution.gaussian_expected_entropy` divided by :math:`\\ln n`,
  :math:`1/\\mathbb E\\sum_j p_j^2` from :func:`~softmax_stability.dilution.gaussian_expected_collision`),
  dotted the leading order :math:`(\\ln n - \\tau^2/2)/\\ln n`
  (:func:`~softmax_stability.dilution.gaussian_entropy_asymptotic`), drawn only below the freezing
  point :math:`\\tau < \\sqrt{2\\ln n}` where it is claimed. The library has no closed form
  for the Gaussian top-k mass, so that panel shows Monte Carlo only. Points: Monte Carlo means over
  sampled rows (the same samples for every schedule), with two-standard-error bars; the effective
  support point is :math:`1/\\overline{\\sum_j p_j^2}` so that it estimates the same quantity as the
  line.

Schedules (:mod:`softmax_stability.temperature`): constant :math:`\\tau = 1` (vanilla); log-n
scaling :math:`\\ln n` (Chiang & Cholak 2022, exact form unconfirmed); SSMax :math:`s\\ln n` with
:math:`s = 0.43` (the value of Nakanishi 2025, Fig. 1); the SSA position temperature
:math:`1 + \\sigma(\\alpha)\\ln n` at :math:`\\alpha = 0` (the ``sigmoid`` form and the
:math:`\\alpha = 0` initialisation of the unofficial reproductions, docs/notes/selective_attention.md §1.3/§1.5 [3P],
unconfirmed; the paper's trained values are unknown); YaRN-style :math:`1 + 0.1\\ln(n/n_{train})`
with :math:`n_{train} = 2^{10}` (how the SSA paper applied its YaRN baseline is unknown; dashed,
since it equals vanilla for :math:`n \\le 2^{10}`). The thick grey line is the uniform row over
:math:`n` keys (complete dilution).
With :math:`\\Delta = 2` the needle limits are 1 (log-n, :math:`c\\Delta = 2`), :math:`\\sigma(2)`
(SSA, :math:`c\\Delta = 1`, critical), and 0 (SSMax :math:`s\\Delta = 0.86`, YaRN, constant).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from figures._common import FigureContext, figure
from softmax_stability.experiments.dilution_sweeps import (
    ALPHA_SSA, GAP, METRICS, N_TRAIN_YARN, S_SSMAX, TOPK, measure, schedules, theory_curves)

TITLES = {
    "max_weight": r"max weight $\max_j p_j$",
    "normalized_entropy": r"normalised entropy $H/\ln n$",
    "effective_support": r"effective support $1/\sum_j p_j^2$",
    "topk_mass": f"top-{TOPK} mass",
}
COLORS = ("black", "C0", "C1", "C3", "C2")
STYLES = ("-", "-", "-", "-", (0, (5, 2)))  # YaRN dashed: it equals vanilla for n <= 2^10


def _sizes(ctx: FigureContext):
    """(measured log2 n, needle-line log2 n grid, Gaussian-line log2 n grid (quadratures cost
    ~40 ms a point), Monte Carlo element budget per n, min rows per n)."""
    if ctx.smoke:
        return [4, 8], np.arange(4, 8.01, 0.5), np.array([4.0, 8.0]), 2 ** 12, 4
    if ctx.quick:
        return list(range(4, 21, 2)), np.arange(4, 20.01, 0.25), np.arange(4, 20.01, 1.0), 2 ** 20, 8
    return list(range(4, 21)), np.arange(4, 20.01, 0.125), np.arange(4, 20.01, 0.5), 2 ** 24, 64


SHORT = {"constant": "vanilla", "log_n": "log-n", "ssmax": "SSMax", "ssa": "SSA", "yarn": "YaRN"}


def _at(grid_log2, line, log2_n):
    """The line's values at the measured sizes (every measured log2 n is a point of the line's grid)."""
    idx = [int(np.argmin(np.abs(grid_log2 - v))) for v in log2_n]
    assert np.allclose(grid_log2[idx], log2_n), "measured n off the line grid"
    return np.asarray(line)[idx]


def _outcome(theory, meas, log2_line, log2_gauss) -> dict:
    """What the run shows: the needle's weight at the largest measured n per schedule, and how
    closely the direct softmax points follow the closed forms (needle: relative difference) and
    the quadratures (Gaussian: within two standard errors)."""
    needle_rel, within, compared = 0.0, 0, 0
    for (model, metric, key), (n_m, mu, se, _) in meas.items():
        line = theory.get((model, metric, key))
        if line is None:
            continue
        at = _at(log2_line if model == "needle" else log2_gauss, line, np.log2(n_m))
        if model == "needle":
            needle_rel = max(needle_rel, float(np.max(np.abs(mu - at) / np.abs(at))))
        else:
            ok = se > 0
            within += int(np.sum(np.abs(mu - at)[ok] <= 2 * se[ok]))
            compared += int(ok.sum())
    n_m, _, _, _ = meas[("needle", "max_weight", "constant")]
    last = {k: float(meas[("needle", "max_weight", k)][1][-1]) for k in SHORT}
    keep = [SHORT[k] for k, v in last.items() if v > 0.5]
    n_last = int(round(np.log2(n_m[-1])))
    weights = ", ".join(f"{v:.2g} ({SHORT[k]})" for k, v in sorted(last.items(), key=lambda kv: -kv[1]))
    kept = (f"only {' and '.join(keep)} keep{'s' if len(keep) == 1 else ''} it above 1/2" if keep
            else "no schedule keeps it above 1/2")
    fit = (f"direct softmax matches the needle closed forms to {needle_rel:.0e} (relative) and lies within 2 SE "
           f"of the Gaussian quadratures at {within} of {compared} points (about 95% expected)")
    return {
        "params": {"needle_max_weight_at_largest_n": last, "needle_max_relative_difference": needle_rel,
                   "gaussian_points_within_2se": [within, compared]},
        "image": f"needle max weight at n = 2^{n_last}: {weights}: {kept};\n{fit}",
        "text": f"Needle with gap {GAP:g} at n = 2^{n_last}: max weight {weights}; {kept}. Measured: {fit} "
                "(library reconstruction, not an SSA-paper result).",
    }


@figure(name="dilution_vs_temperature", order=40,
        caption="Attention dilution against the number of keys n (max weight, normalised entropy, "
                "effective support, top-8 mass) under five inverse-temperature schedules, for a "
                "needle with gap 2 and for i.i.d. N(0,1) logits: library closed forms and exact "
                "quadratures (lines) against direct softmax (points; Monte Carlo +-2 SE for the "
                "Gaussian rows). A small-scale library reconstruction, not a figure of the SSA paper.",
        source="library figure (softmax_stability.dilution closed forms; schedules of "
               "softmax_stability.temperature; surrogate for SSA §4 dilution, docs/notes/selective_attention.md §2.2)")
def make(ctx: FigureContext) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    log2_meas, log2_line, log2_gauss, budget, min_rows = _sizes(ctx)
    ns_line, ns_gauss = 2.0 ** log2_line, 2.0 ** log2_gauss
    sched = schedules()
    ctx.params.update(gap=GAP, topk=TOPK, ssmax_s=S_SSMAX, ssa_alpha=ALPHA_SSA,
                      ssa_parametrisation="sigmoid", yarn_train_length=N_TRAIN_YARN,
                      n_measured=[2 ** k for k in log2_meas],
                      n_line=[float(ns_line[0]), float(ns_line[-1]), len(ns_line)],
                      n_line_gaussian=[float(ns_gauss[0]), float(ns_gauss[-1]), len(ns_gauss)],
                      monte_carlo_budget_per_n=budget, monte_carlo_min_rows=min_rows,
                      schedules=[k for k, _, _ in sched], dtype="float64")
    theory = theory_curves(ns_line, ns_gauss)
    meas = measure(ctx.rng_key, log2_meas, budget, min_rows, progress=ctx.show_progress)
    ctx.params["monte_carlo_rows"] = {int(n): int(r) for n, r in zip(meas[("gauss", "max_weight", "constant")][0],
                                                                      meas[("gauss", "max_weight", "constant")][3])}

    fig, axes = plt.subplots(2, 4, figsize=(17, 8.2), sharex=True)
    model_names = {"needle": rf"needle, gap $\Delta={GAP:g}$", "gauss": r"Gaussian logits $z_j\sim N(0,1)$"}
    for r, model in enumerate(("needle", "gauss")):
        for c, metric in enumerate(METRICS):
            ax = axes[r, c]
            for (key, _, _), color, style in zip(sched, COLORS, STYLES):
                x_line = ns_line if model == "needle" else ns_gauss
                line = theory.get((model, metric, key))
                if line is not None:
                    ax.plot(x_line, line, color=color, lw=1.4, ls=style)
                lead = theory.get(("gauss_lead", metric, key)) if model == "gauss" else None
                if lead is not None:
                    ax.plot(x_line, lead, color=color, lw=1.0, ls=":")
                n_m, mu, se, _ = meas[(model, metric, key)]
                if line is None:  # no closed form: join the Monte Carlo points
                    ax.plot(n_m, mu, color=color, lw=0.8, ls="--")
                ax.errorbar(n_m, mu, yerr=2 * se, fmt="o", ms=4, color=color, mfc="white", mew=1.2,
                            elinewidth=1.0, capsize=2, zorder=3)
            # the uniform row over n keys (complete dilution) as a reference
            uniform = {"max_weight": 1 / ns_line, "normalized_entropy": np.ones_like(ns_line),
                       "effective_support": ns_line, "topk_mass": np.minimum(TOPK / ns_line, 1.0)}[metric]
            ax.plot(ns_line, uniform, color="0.85", lw=4, zorder=0, solid_capstyle="butt")
            ax.set_xscale("log", base=2)
            if metric == "normalized_entropy":
                ax.set_ylim(-0.03, 1.05)
            else:
                ax.set_yscale("log")
            if metric in ("max_weight", "topk_mass"):
                ax.set_ylim(top=1.6)
            if r == 0:
                ax.set_title(TITLES[metric])
            else:
                ax.set_xlabel("number of keys $n$")
            if c == 0:
                ax.set_ylabel(model_names[model], fontsize=11)
            ax.grid(True, which="major", alpha=0.3)
    axes[1, 3].text(0.03, 0.03, "no closed form in the library:\nMonte Carlo only (dashed)",
                    transform=axes[1, 3].transAxes, fontsize=8, va="bottom")
    handles = [Line2D([], [], color=col, lw=2, ls=st, label=lab) for (_, lab, _), col, st in zip(sched, COLORS, STYLES)]
    handles += [Line2D([], [], color="0.3", lw=1.4, label="theory: closed form / exact quadrature"),
                Line2D([], [], color="0.3", lw=1.0, ls=":", label=r"Gaussian leading order $(\ln n-\tau^2/2)/\ln n$, $\tau<\sqrt{2\ln n}$"),
                Line2D([], [], color="0.3", marker="o", mfc="white", ls="none", label="measured: direct softmax (±2 SE)"),
                Line2D([], [], color="0.85", lw=4, label="uniform row over n keys (full dilution)")]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, -0.06))
    outcome = _outcome(theory, meas, log2_line, log2_gauss)
    ctx.params.update(outcome["params"])
    fig.suptitle("Attention dilution vs number of keys under inverse-temperature schedules "
                 "(library reconstruction, not an SSA-paper figure)\nmeasured: " + outcome["image"], fontsize=12)
    ctx.set_outcome(outcome["text"])
    fig.tight_layout(rect=(0, 0.03, 1, 0.96))
    ctx.save_figure(fig)

    rows = []
    for (model, metric, key), vals in sorted(theory.items()):
        for n, v in zip(ns_line if model == "needle" else ns_gauss, vals):
            rows.append(("theory" if model != "gauss_lead" else "leading_order",
                         "needle" if model == "needle" else "gauss", metric, key, float(n), float(v), "", ""))
    for (model, metric, key), (n_m, mu, se, nrows) in sorted(meas.items()):
        for n, v, s, rr in zip(n_m, mu, se, nrows):
            rows.append(("measured", model, metric, key, float(n), float(v), float(s), int(rr)))
    ctx.save_csv(["kind", "model", "metric", "schedule", "n", "value", "standard_error", "rows"], rows)
