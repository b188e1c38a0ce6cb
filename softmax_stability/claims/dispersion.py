"""Dispersion bounds on softmax weights (SF's dispersion delta = max z - min z of a row).

Bounds come from :mod:`softmax_stability.focus` (one formula, one place); measures are the
softmax weights computed by :func:`softmax_stability.maps.softmax`. Every claim has an adversary:
gradient ascent (:func:`~softmax_stability.claims._sampling.ascend`) over the logits of the ratio
it is handed (the claim's own, or a mutant's), and tight regimes that hold the dispersion fixed.

Where the constants are tight. With the maximal logit :math:`\\delta` above the other :math:`n-1`,
:math:`p_{\\max} = e^{\\delta}/(e^{\\delta}+n-1)`: D2 is attained for every :math:`(\\delta, n)`, and
its regime is moderate :math:`\\delta \\in [0.5, 3]` and :math:`n \\in \\{4, 16, 64\\}`, where the
:math:`n-1` and the :math:`e^{\\delta}` both move the bound by far more than 1% (at large
:math:`\\delta`, :math:`p_{\\max}` and any bound of this shape tend to 1 together). D1's ratio is
then :math:`n/(e^{\\delta}+n-1)` and D1b's :math:`(e^{-\\delta}+n-1)/n`: at fixed :math:`n` they
reach 1 only at :math:`\\delta = 0`, where any power of :math:`e^{\\delta}` would do, but at fixed
:math:`\\delta` they tend to 1 as :math:`n \\to \\infty` (:math:`n\\,p_{\\max} \\to e^{\\delta}`, the
dilution regime :math:`n \\gg e^{\\delta}`): that is their tight regime, with
:math:`\\delta \\in [1, 3]` and :math:`n = 4096`. It pins the constant and the :math:`e^{\\pm\\delta}`,
not the :math:`n` (a change :math:`n \\to n \\pm 1` is a relative :math:`1/n`, below any
threshold there; D1b's :math:`n \\to n-1` is still violated everywhere).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from softmax_stability.claims._registry import Claim, Mutant, TightRegime, register
from softmax_stability.claims._sampling import ascend, logit_batches

_SIZES = [(2, 128), (16, 128), (4096, 16)]


def _p_delta(prm):
    from softmax_stability.maps import softmax

    z = prm["beta"] * prm["z"]
    return softmax(z), jnp.max(z) - jnp.min(z), z.shape[-1]


def _sample(key):
    return logit_batches(key, _SIZES, scale=(0.01, 5.0))


def _entry_bound(side, delta_map=lambda d: d, n_shift=0):
    """D1's upper (``side=1``) or D1b's lower (``side=0``) entry bound, optionally with delta
    replaced by ``delta_map(delta)`` and n by ``n + n_shift`` (the structural mutants)."""

    def bound(prm):
        from softmax_stability.focus import softmax_entry_bounds

        _, delta, n = _p_delta(prm)
        return softmax_entry_bounds(delta_map(delta), n + n_shift)[side]

    return bound


def _pmax_bound_of(delta_map=lambda d: d, n_shift=0):
    """D2's bound pi(delta, n), optionally at ``delta_map(delta)`` and ``n + n_shift`` (mutants:
    n - 1 -> n - 2 is n_shift = -1, (n - 1)/2 is delta + ln 2, e^{delta/2} is delta/2)."""

    def bound(prm):
        from softmax_stability.focus import pmax_bound

        _, delta, n = _p_delta(prm)
        return pmax_bound(delta_map(delta), n + n_shift)

    return bound


def _free_ascent(ns=(2, 16)):
    """Ascend the ratio it is handed over free logits (any dispersion), 8 starts per n."""

    def adversary(key, ratio):
        out = []
        for n in ns:
            z0 = jax.random.normal(jax.random.fold_in(key, n), (8, n), dtype=jnp.float64)
            z = ascend(lambda z: ratio({"z": z, "beta": jnp.asarray(1.0)}), z0, steps=300)
            out.append({"z": z, "beta": jnp.ones(z.shape[0])})
        return out

    return adversary


def _at_dispersion(v, delta, side):
    """Logits with max - min = delta exactly: w = e^v mapped affinely onto [0, delta], turned over
    (delta - ...) when ``side < 0``.

    Through e^v, Adam's steps of constant size in v move w geometrically towards 0, so logits can
    gather at one end of the range (the minimum, or the maximum when turned over) to within 1e-4 of
    it in 300 steps even at n = 4096 (mapping v itself stalled at 0.72-0.92 of the optimal ratio
    there, and gathering at the end e^v grows towards at 0.40)."""
    w = jnp.exp(v)
    lo, hi = jnp.min(w), jnp.max(w)
    z = delta * (w - lo) / (hi - lo)
    return jnp.where(side > 0, z, delta - z)


def _fixed_dispersion_ascent(ns, delta_range, count=8, steps=300):
    """Ascend the ratio it is handed over logits held at a fixed dispersion.

    Each start draws delta uniformly from ``delta_range`` and keeps it (its coordinate gets no
    gradient, so Adam leaves it in place); half the starts can gather logits at the minimum, half
    at the maximum (:func:`_at_dispersion`), so neither end is favoured.
    """

    def instances(key, ratio):
        out = []
        for n in ns:
            kw, kd = jax.random.split(jax.random.fold_in(key, n))
            delta = jax.random.uniform(kd, (count, 1), dtype=jnp.float64, minval=delta_range[0],
                                       maxval=delta_range[1])
            side = jnp.where(jnp.arange(count) % 2 == 0, 1.0, -1.0)[:, None]
            x0 = jnp.concatenate([jax.random.normal(kw, (count, n), dtype=jnp.float64), delta, side], axis=1)

            def objective(x):
                fixed = jax.lax.stop_gradient(x[-2:])
                return ratio({"z": _at_dispersion(x[:-2], fixed[0], fixed[1]), "beta": jnp.asarray(1.0)})

            x = ascend(objective, x0, steps=steps, learning_rate=0.1)
            z = jax.vmap(_at_dispersion)(x[:, :-2], x[:, -2], x[:, -1])
            out.append({"z": z, "beta": jnp.ones(count)})
        return out

    return instances


_DILUTION_REGIME = TightRegime(
    name="n >> e^delta, delta in [1, 3]",
    description="dispersion held at delta in [1, 3], n = 4096, ascent of the ratio: the weights are "
                "~1/n and n p_max -> e^delta (n p_min -> e^-delta) as n -> oo at fixed delta, so the "
                "ratio is n/(e^delta + n - 1) (resp. (e^-delta + n - 1)/n) >= 0.995 there; a factor on "
                "the bound, or e^delta -> e^{a delta} with a != 1, moves it by at least 2% (not so "
                "at delta = 0, where the ratio is 1 whatever the power of e^delta)",
    instances=_fixed_dispersion_ascent((4096,), (1.0, 3.0)),
)


register(Claim(
    id="D1-dispersion-entry-bounds",
    family="dispersion",
    statement=r"p_j \le e^{\delta}/n,\quad \delta = \max_i z_i - \min_i z_i"
              r"\quad(\text{tight as } n\to\infty \text{ at fixed } \delta"
              r"\text{; at fixed } n \text{ only at } \delta=0)",
    source="derived here (docs/notes/semantic_focus.md O1; the mechanism behind SF's e^{delta} constants)",
    kind="upper",
    bound=_entry_bound(1),
    measure=lambda prm: jnp.max(_p_delta(prm)[0]),
    sample=_sample,
    adversary=_free_ascent(),
    sharp=True,  # asymptotically in n at fixed delta (module docstring)
    tight_regimes=(_DILUTION_REGIME,),
    mutants=(
        Mutant("e^delta -> e^(delta/2)", "tighter", _entry_bound(1, lambda d: d / 2)),
        Mutant("e^delta -> e^(0.98 delta)", "tighter", _entry_bound(1, lambda d: 0.98 * d)),
        Mutant("e^delta -> e^(1.02 delta)", "looser", _entry_bound(1, lambda d: 1.02 * d)),
        Mutant("n -> n + 1", "tighter", _entry_bound(1, n_shift=1)),  # violated for delta < ln 2
    ),
    proof="focus_conditions.dispersion_bounds",
    rtol=1e-12,  # both sides are a softmax entry resp. exp(delta)/n: a few ulps in float64
))

register(Claim(
    id="D1b-dispersion-entry-lower",
    family="dispersion",
    statement=r"p_j \ge e^{-\delta}/n"
              r"\quad(\text{tight as } n\to\infty \text{ at fixed } \delta"
              r"\text{; at fixed } n \text{ only at } \delta=0)",
    source="derived here (docs/notes/semantic_focus.md O1)",
    kind="lower",
    bound=_entry_bound(0),
    measure=lambda prm: jnp.min(_p_delta(prm)[0]),
    sample=_sample,
    adversary=_free_ascent(),
    sharp=True,  # asymptotically in n at fixed delta (module docstring)
    tight_regimes=(_DILUTION_REGIME,),
    mutants=(
        Mutant("e^-delta -> e^(-delta/2)", "tighter", _entry_bound(0, lambda d: d / 2)),
        Mutant("e^-delta -> e^(-0.98 delta)", "tighter", _entry_bound(0, lambda d: 0.98 * d)),
        Mutant("e^-delta -> e^(-1.02 delta)", "looser", _entry_bound(0, lambda d: 1.02 * d)),
        # p_min <= e^-delta/(e^-delta + n - 1) < e^-delta/(n - 1): violated at every extremal row
        Mutant("n -> n - 1", "tighter", _entry_bound(0, n_shift=-1)),
    ),
    proof="focus_conditions.dispersion_bounds",
    rtol=1e-12,
))


register(Claim(
    id="D2-dispersion-pmax",
    family="dispersion",
    statement=r"p_{\max} \le e^{\delta}/(e^{\delta} + n - 1)",
    source="derived here (docs/notes/semantic_focus.md O1; docs/notes/field.md §4.1)",
    kind="upper",
    bound=_pmax_bound_of(),
    measure=lambda prm: jnp.max(_p_delta(prm)[0]),
    sample=_sample,
    adversary=_free_ascent(),
    sharp=True,  # attained with one logit delta above the other n - 1
    tight_regimes=(TightRegime(
        name="moderate delta and n",
        description="dispersion held at delta in [0.5, 3], n in {4, 16, 64}, ascent of the ratio: the "
                    "bound e^delta/(e^delta + n - 1) lies in [0.025, 0.87] and is attained by one logit "
                    "delta above the rest; n - 1 -> n - 2 moves it by >= 1/(e^3 + 63) = 1.2%, (n - 1)/2 "
                    "and e^{delta/2} by more (at large delta p_max and the bound both tend to 1)",
        instances=_fixed_dispersion_ascent((4, 16, 64), (0.5, 3.0)),
    ),),
    mutants=(
        Mutant("n-1 -> n-2", "looser", _pmax_bound_of(n_shift=-1)),
        Mutant("n-1 -> (n-1)/2", "looser", _pmax_bound_of(lambda d: d + jnp.log(2.0))),
        Mutant("e^delta -> e^(delta/2)", "tighter", _pmax_bound_of(lambda d: d / 2)),
    ),
    proof="focus_conditions.pmax_bound",
    rtol=1e-12,
))
