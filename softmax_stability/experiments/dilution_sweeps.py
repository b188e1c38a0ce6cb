r"""The sweeps behind the dilution figures: needle and Gaussian rows against n under the
temperature schedules (figure ``dilution_vs_temperature``) and the needle's phase maps over
(gap, c) (figure ``dilution_phase_diagram``).

A small-scale, theory-first library reconstruction, not an experiment of the SSA paper
(``docs/notes/selective_attention.md`` §2.2): every line is a closed form or quadrature of
:mod:`softmax_stability.dilution`, every point a direct :func:`softmax_stability.maps.softmax`
of explicit logits; the schedules come from :mod:`softmax_stability.temperature`. The figures'
docstrings say what each panel shows; ``tests/test_dilution_figures.py`` checks these functions
against computations that do not share their code path.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["GAP", "TOPK", "S_SSMAX", "ALPHA_SSA", "N_TRAIN_YARN", "METRICS", "schedules", "theory_curves",
           "row_metrics", "measure", "PHASE_LOG2_NS", "PHASE_OFFSETS", "needle_maps"]

GAP = 2.0  # needle logit gap
TOPK = 8  # k of the top-k mass panel
S_SSMAX = 0.43  # Nakanishi 2025, Fig. 1
ALPHA_SSA = 0.0  # sigma(0) = 0.5: the reproductions' initialisation [3P]
N_TRAIN_YARN = 2 ** 10
METRICS = ("max_weight", "normalized_entropy", "effective_support", "topk_mass")


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


def row_metrics(z, taus):
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


def measure(key, log2_ns, budget: int, min_rows: int, *, progress: bool = True) -> dict:
    """Direct softmax: needle (one row) and Gaussian Monte Carlo (chunked rows) at each n.

    The needle row is row 0 of every chunk, so each n compiles one shape only.

    Args:
        key: PRNG key of the Gaussian rows.
        log2_ns: the measured sizes, as log2 n.
        budget: logits per n (rows = max(min_rows, budget // n), rounded up to whole chunks).
        min_rows: the fewest Gaussian rows per n.
        progress: a ``tqdm`` bar over n (hidden when stderr is not a terminal).

    Returns {(model, metric, key): (n array, mean array, standard-error array, rows array)}."""
    import jax
    import jax.numpy as jnp
    from tqdm.auto import tqdm

    from softmax_stability.dilution import needle_logits

    metrics_fn = jax.jit(row_metrics)
    keys = [k for k, _, _ in schedules()]
    res = {}
    for log2n in tqdm(log2_ns, desc="n", leave=False, disable=None if progress else True):
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


# ------------------------------------------------------------------ phase maps (dilution_phase_diagram)
PHASE_LOG2_NS = (10, 20, 40)  # n of the columns
PHASE_OFFSETS = (1.0, 0.0)  # a of tau(n) = a + c ln n, one row each


def needle_maps(gaps: np.ndarray, cs: np.ndarray) -> dict:
    """{(offset, log2 n): p[c index, gap index]} from the library's closed form."""
    import jax.numpy as jnp

    from softmax_stability.dilution import needle_probability_scheduled

    G, C = np.meshgrid(gaps, cs)
    out = {}
    for a in PHASE_OFFSETS:
        for k in PHASE_LOG2_NS:
            out[(a, k)] = np.asarray(needle_probability_scheduled(
                jnp.float64(2.0 ** k), jnp.asarray(G), jnp.asarray(C), a), float)
    return out
