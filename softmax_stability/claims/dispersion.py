"""Dispersion bounds on softmax weights (SF's dispersion delta = max z - min z of a row).

Bounds come from :mod:`softmax_stability.focus` (one formula, one place); measures are the
softmax weights computed by :func:`softmax_stability.maps.softmax`. Every claim has an adversary:
gradient ascent (:func:`~softmax_stability.claims._sampling.ascend`) of ``measure / bound`` over
the logits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from softmax_stability.claims._registry import Claim, register
from softmax_stability.claims._sampling import ascend, logit_batches

_SIZES = [(2, 128), (16, 128), (4096, 16)]


def _p_delta(prm):
    from softmax_stability.maps import softmax

    z = prm["beta"] * prm["z"]
    return softmax(z), jnp.max(z) - jnp.min(z), z.shape[-1]


def _sample(key):
    return logit_batches(key, _SIZES, scale=(0.01, 5.0))


def _entry_upper(prm):
    from softmax_stability.focus import softmax_entry_bounds

    _, delta, n = _p_delta(prm)
    return softmax_entry_bounds(delta, n)[1]


def _entry_lower(prm):
    from softmax_stability.focus import softmax_entry_bounds

    _, delta, n = _p_delta(prm)
    return softmax_entry_bounds(delta, n)[0]


def _adversary_entry(side):
    """Ascend the D1 ratio p_max / (e^delta/n) (``side="upper"``) or the D1b ratio
    (e^{-delta}/n) / p_min (``"lower"``) over the logits, n = 2 and 16.

    Both ratios are at most n/(e^delta + n - 1) resp. (e^{-delta} + n - 1)/n (D2's argument), so
    their supremum 1 is attained exactly at delta = 0 (uniform rows, p_j = 1/n = e^0/n): the
    bounds are sharp only there; for delta > 0 D2 and its lower twin are the sharp forms.
    """
    from softmax_stability.focus import softmax_entry_bounds
    from softmax_stability.maps import softmax

    def adversary(key, ratio=None):
        out = []
        for n in (2, 16):
            def obj(z):
                p = softmax(z)
                lo, hi = softmax_entry_bounds(jnp.max(z) - jnp.min(z), n)
                return jnp.max(p) / hi if side == "upper" else lo / jnp.min(p)

            z0 = jax.random.normal(jax.random.fold_in(key, n), (8, n), dtype=jnp.float64)
            z = ascend(obj, z0, steps=300)
            out.append({"z": z, "beta": jnp.ones(z.shape[0])})
        return out

    return adversary


register(Claim(
    id="D1-dispersion-entry-bounds",
    family="dispersion",
    statement=r"p_j \le e^{\delta}/n,\quad \delta = \max_i z_i - \min_i z_i",
    source="derived here (semantic_focus.md O1; the mechanism behind SF's e^{delta} constants)",
    kind="upper",
    bound=_entry_upper,
    measure=lambda prm: jnp.max(_p_delta(prm)[0]),
    sample=_sample,
    adversary=_adversary_entry("upper"),
    sharp=True,  # attained at delta = 0 only (see _adversary_entry)
    proof="focus_conditions.dispersion_bounds",
    rtol=1e-12,
))

register(Claim(
    id="D1b-dispersion-entry-lower",
    family="dispersion",
    statement=r"p_j \ge e^{-\delta}/n",
    source="derived here (semantic_focus.md O1)",
    kind="lower",
    bound=_entry_lower,
    measure=lambda prm: jnp.min(_p_delta(prm)[0]),
    sample=_sample,
    adversary=_adversary_entry("lower"),
    sharp=True,  # attained at delta = 0 only (see _adversary_entry)
    proof="focus_conditions.dispersion_bounds",
    rtol=1e-12,
))


def _pmax_bound(prm):
    from softmax_stability.focus import pmax_bound

    _, delta, n = _p_delta(prm)
    return pmax_bound(delta, n)


def _adversary_pmax(key, ratio=None):
    """Ascend p_max / bound; the optimum puts every non-maximal logit at the minimum, where the
    bound is attained exactly (ratio 1)."""
    from softmax_stability.focus import pmax_bound
    from softmax_stability.maps import softmax

    out = []
    for n in (2, 16):
        def obj(z):
            return jnp.max(softmax(z)) / pmax_bound(jnp.max(z) - jnp.min(z), n)

        z = ascend(obj, jax.random.normal(jax.random.fold_in(key, n), (8, n), dtype=jnp.float64), steps=300)
        out.append({"z": z, "beta": jnp.ones(z.shape[0])})
    return out


register(Claim(
    id="D2-dispersion-pmax",
    family="dispersion",
    statement=r"p_{\max} \le e^{\delta}/(e^{\delta} + n - 1)",
    source="derived here (semantic_focus.md O1; anchors.md §4.1)",
    kind="upper",
    bound=_pmax_bound,
    measure=lambda prm: jnp.max(_p_delta(prm)[0]),
    sample=_sample,
    adversary=_adversary_pmax,
    sharp=True,
    proof="focus_conditions.pmax_bound",
    rtol=1e-12,
))
