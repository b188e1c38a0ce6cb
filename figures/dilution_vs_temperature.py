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

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from figures._common import FigureContext, figure

GAP = 2.0  # needle logit gap
TOPK = 8  # k of the top-k mass panel
S_SSMAX = 0.43  # Nakanishi 2025, Fig. 1
ALPHA_SSA = 0.0  # sigma(0) = 0.5: the reproductions' initialisation [3P]
N_TRAIN_YARN = 2 ** 10
METRICS = ("max_weight", "normalized_entropy", "effective_support", "topk_mass")
TITLES = {
    "max_weight": r"max weight $\max_j p_j$",
    "normalized_entropy": r"normalised entropy $H/\ln n$",
    "effective_support": r"effective support $1/\sum_j p_j^2$",
    "topk_mass": f"top-{TOPK} mass",
}
COLORS = ("black", "C0", "C1", "C3", "C2")
STYLES = ("-", "-", "-", "-", (0, (5, 2)))  # YaRN dashed: it equals vanilla for n <= 2^10


def schedules():
    """(key, legend label, tau(n)) for every schedule, from :mod:`softmax_stability.temperature`."""
    from softmax_stability import temperature as T

    return [
        ("constant", r"constant $\tau=1$ (vanilla)", lambda n: T.constant(n, 1.0)),
        ("log_n", r"log-n scaling $\tau=\ln n$", T.log_n_scaling),
        ("ssmax", rf"SSMax $\tau={S_SSMAX}\,\ln n$", lambda n: T.ssmax(n, S_SSMAX)),
        ("ssa", r"SSA position $\tau=1+\sigma(0)\ln n$",
         lambda n: T.ssa_temperature(n, ALPHA_SSA, parametrisation="sigmoid")),
        ("yarn", r"YaRN-style $\tau=1+0.1\ln\max(n/2^{10},1)$",
         lambda n: T.yarn_schedule(n, N_TRAIN_YARN)),
    ]


def _sizes(ctx: FigureContext):
    """(measured log2 n, needle-line log2 n grid, Gaussian-line log2 n grid (quadratures cost
    ~40 ms a point), Monte Carlo element budget per n, min rows per n)."""
    if ctx.smoke:
        return [4, 8], np.arange(4, 8.01, 0.5), np.array([4.0, 8.0]), 2 ** 12, 4
    if ctx.quick:
        return list(range(4, 21, 2)), np.arange(4, 20.01, 0.25), np.arange(4, 20.01, 1.0), 2 ** 20, 8
    return list(range(4, 21)), np.arange(4, 20.01, 0.125), np.arange(4, 20.01, 0.5), 2 ** 24, 64


def theory_curves(ns: np.ndarray, ns_gauss: np.ndarray | None) -> dict:
    """Library closed forms: needle on the grid ``ns``, Gaussian quadratures on ``ns_gauss``
    (skipped when None).

    Returns {(model, metric, schedule key): values}; every schedule in one batched call each."""
    import jax.numpy as jnp

    from softmax_stability import dilution as D

    keys = [k for k, _, _ in schedules()]
    n = jnp.asarray(ns, jnp.float64)[None, :]
    tau = jnp.stack([f(n[0]) for _, _, f in schedules()])  # [S, N]
    per_model = {
        ("needle", "max_weight"): D.needle_probability(n, GAP, tau),
        ("needle", "normalized_entropy"): D.needle_entropy(n, GAP, tau, normalized=True),
        ("needle", "effective_support"): D.needle_effective_support(n, GAP, tau),
        ("needle", "topk_mass"): D.needle_topk_mass(n, GAP, tau, TOPK),
    }
    if ns_gauss is not None:
        ng = jnp.asarray(ns_gauss, jnp.float64)[None, :]
        tau_g = jnp.stack([f(ng[0]) for _, _, f in schedules()])
        per_model.update({
            ("gauss", "max_weight"): D.gaussian_expected_max_weight(ng, tau_g),
            ("gauss", "normalized_entropy"): D.gaussian_expected_entropy(ng, tau_g) / jnp.log(ng),
            ("gauss", "effective_support"): 1.0 / D.gaussian_expected_collision(ng, tau_g),
            # leading order only where it is claimed (tau below the freezing point sqrt(2 ln n))
            ("gauss_lead", "normalized_entropy"): jnp.where(
                tau_g < jnp.sqrt(2.0 * jnp.log(ng)),
                D.gaussian_entropy_asymptotic(ng, tau_g) / jnp.log(ng), jnp.nan),
        })
    return {(model, metric, k): np.asarray(v[s], float)
            for (model, metric), v in per_model.items() for s, k in enumerate(keys)}


def _row_metrics(z, taus):
    """Per-row metrics of softmax(tau * z) for every schedule: [S, 4, R]."""
    import jax.numpy as jnp

    from softmax_stability import dilution as D
    from softmax_stability.maps import softmax
    from softmax_stability.topk import topk_mask

    p = softmax(jnp.broadcast_to(z, taus.shape + z.shape), beta=taus[:, None, None])  # [S, R, n]
    # softmax(tau z) is increasing in z for tau > 0, so the k largest weights of every schedule sit
    # at the k largest logits: one top-k selection on z serves them all (ties="index": exactly k
    # keys also on the needle row, whose other logits tie). tests/test_dilution_figures.py checks
    # this against dilution.topk_mass.
    sel = topk_mask(z, TOPK, ties="index")
    topk = jnp.sum(jnp.where(sel, p, 0.0), axis=-1)
    return jnp.stack([D.max_weight(p), D.normalized_entropy(p),
                      1.0 / D.effective_support(p),  # sum_j p_j^2, averaged before inverting
                      topk], axis=1)


def measure(ctx: FigureContext, log2_ns, budget: int, min_rows: int) -> dict:
    """Direct softmax: needle (one row) and Gaussian Monte Carlo (chunked rows) at each n.

    The needle row is row 0 of every chunk, so each n compiles one shape only.
    Returns {(model, metric, key): (n array, mean array, standard-error array, rows array)}."""
    import jax
    import jax.numpy as jnp

    from softmax_stability.dilution import needle_logits

    metrics_fn = jax.jit(_row_metrics)
    keys = [k for k, _, _ in schedules()]
    res = {}
    key = ctx.rng_key
    for log2n in ctx.progress(log2_ns, desc="n"):
        n = 2 ** log2n
        taus = jnp.stack([jnp.asarray(f(float(n)), jnp.float64) for _, _, f in schedules()])
        needle_row = needle_logits(n, GAP, dtype=jnp.float64)[None]
        rows = max(min_rows, budget // n)
        chunk = max(1, min(rows, 2 ** 20 // n))  # at most 2^20 logits per schedule per chunk
        rows = chunk * math.ceil(rows / chunk)
        acc = np.zeros((len(keys), len(METRICS), 2))
        for _ in range(rows // chunk):
            key, sub = jax.random.split(key)
            z = jnp.concatenate([needle_row, jax.random.normal(sub, (chunk, n), jnp.float64)])
            vals = np.asarray(metrics_fn(z, taus))
            needle, g = vals[..., 0], vals[..., 1:]
            acc += np.stack([g.sum(-1), (g * g).sum(-1)], axis=-1)
        mean = acc[..., 0] / rows
        se = np.sqrt(np.maximum(acc[..., 1] / rows - mean ** 2, 0.0) / max(rows - 1, 1))
        for s, k in enumerate(keys):
            for m, metric in enumerate(METRICS):
                nv = 1.0 / needle[s, m] if metric == "effective_support" else needle[s, m]
                res.setdefault(("needle", metric, k), []).append((n, nv, 0.0, 1))
                mu, sd = mean[s, m], se[s, m]
                if metric == "effective_support":  # 1 / mean(sum p^2), delta-method error
                    mu, sd = 1.0 / mu, sd / mu ** 2
                res.setdefault(("gauss", metric, k), []).append((n, mu, sd, rows))
    return {k: tuple(np.array(c) for c in zip(*v)) for k, v in res.items()}


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
    meas = measure(ctx, log2_meas, budget, min_rows)
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
    fig.suptitle("Attention dilution vs number of keys under inverse-temperature schedules "
                 "(library reconstruction, not an SSA-paper figure)", fontsize=12)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
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
