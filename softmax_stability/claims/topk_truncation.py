"""Claims about top-k truncation of softmax attention (Tzachristas et al. 2025, arXiv:2512.07647).

With :math:`p = \\mathrm{softmax}(z)`, :math:`S_k` its top-k set, :math:`\\hat p = p\\,[i\\in S_k]/p(S_k)` the
top-k renormalisation and :math:`t = 1 - p(S_k)` the discarded tail mass:

* ``TK1`` -- :math:`\\mathrm{TV}(p, \\hat p) = t` (identity);
* ``TK2`` -- :math:`o - \\hat o = t(\\mu_{\\mathrm{tail}} - \\mu_{\\mathrm{head}})` for the outputs
  :math:`o = \\sum_i p_i v_i`, :math:`\\hat o = \\sum_i \\hat p_i v_i` (identity; scalar values, which is
  every coordinate of vector values since both sides are linear in :math:`v`);
* ``TK3`` -- :math:`\\|o - \\hat o\\|_2 \\le t\\max_{i\\notin S_k, j\\in S_k}\\|v_i - v_j\\|_2` (sharp);
* ``TK4`` -- :math:`\\|o - \\hat o\\|_2 \\le 2t\\max_j\\|v_j\\|_2 = \\|p - \\hat p\\|_1\\max_j\\|v_j\\|_2` (sharp).

Measures are direct: ``maps.softmax`` and ``maps.topk_softmax`` of the logits, then the
difference of the weight vectors (TK1) or of the outputs ``p @ v`` (TK2-TK4). Bounds and formulas
are the library's (:func:`softmax_stability.dilution.topk_tail_mass`,
:func:`~softmax_stability.dilution.topk_truncation_error`,
:func:`~softmax_stability.dilution.topk_truncation_error_bound`), evaluated at ``maps.softmax(z)``.
The statement is recorded in the team's notes from the paper's abstract [unconfirmed]; the
derivations are in docs/derivations/recent_theory.md#topk-truncation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability.claims._registry import Claim, Mutant, TightRegime, register

FAMILY = "topk_truncation"
_N = 8
_SOURCE = ("Tzachristas et al. 2025 (arXiv:2512.07647), statement from the abstract as recorded in the "
           "team's notes (docs/notes/field.md, 'recent papers') [unconfirmed]; derivation: "
           "docs/derivations/recent_theory.md#topk-truncation")


def _rng(key, *salt: int) -> np.random.Generator:
    """A NumPy generator seeded by a JAX key (eager sampling: no per-op compilation)."""
    data = np.asarray(jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key)
    return np.random.default_rng([int(x) for x in data.ravel()] + list(salt))


def _k(prm) -> int:
    return prm["kdim"].shape[-1]  # k travels as the (static) length of a dummy axis


def _p(prm):
    from softmax_stability.maps import softmax

    return softmax(prm["z"])


def _phat(prm, k=None):
    from softmax_stability.maps import topk_softmax

    return topk_softmax(prm["z"], _k(prm) if k is None else k)


def _tail(prm, k=None):
    from softmax_stability.dilution import topk_tail_mass

    return topk_tail_mass(_p(prm), _k(prm) if k is None else k)


def _sample(d: int, ks=(3,), count: int = 48):
    def sample(key):
        rng = _rng(key)
        out = []
        for k in ks:
            # log-uniform logit scale: tails from ~0.8 (nearly uniform rows) down to ~e^-40
            scale = np.exp(rng.uniform(np.log(0.1), np.log(12.0), (count, 1)))
            z = scale * rng.standard_normal((count, _N))
            v = np.exp(rng.uniform(np.log(0.1), np.log(10.0), (count, 1, 1))) * rng.standard_normal((count, _N, d))
            out.append({"z": z, "v": v, "kdim": np.zeros((count, k))})
        return out

    return sample


# ----------------------------------------------------------------------------------------------
# TK1: TV(p, p_hat) = t

register(Claim(
    id="TK1-topk-tv-tail-mass",
    family=FAMILY,
    statement=r"\mathrm{TV}(p, \hat p) = \tfrac12\|p - \hat p\|_1 = 1 - p(S_k),\quad "
              r"\hat p = p\,[i \in S_k]/p(S_k),\ p = \mathrm{softmax}(z)",
    source=_SOURCE,
    kind="equal",
    bound=lambda prm: _tail(prm),
    measure=lambda prm: 0.5 * jnp.sum(jnp.abs(_p(prm) - _phat(prm))),
    sample=_sample(1, ks=(1,), count=64),
    mutants=(
        Mutant("k -> k+1 (tail of the top-(k+1) set)", "perturbed", lambda prm: _tail(prm, _k(prm) + 1)),
        Mutant("TV -> ||p - p_hat||_1 (factor 1/2 dropped)", "perturbed", lambda prm: 2.0 * _tail(prm)),
    ),
    proof="recent_theory.topk_tv_identity",
    # the measure's k differences |p_hat_i - p_i| are each within an ulp of p_hat_i <= 1 and the tail
    # sum within n ulps of t: absolute error <= (k + n) 2.2e-16 < 3e-15 (k = 1, n = 8); 1e-14 covers it
    # (observed: at most 3.3e-16 over five seeds)
    rtol=1e-10, atol=1e-14,
))


# ----------------------------------------------------------------------------------------------
# TK2: o - o_hat = t (mu_tail - mu_head)

def _output_change(prm):
    """o - o_hat, directly: the difference of the two attention outputs."""
    return (_p(prm) - _phat(prm)) @ prm["v"]


def _formula(prm, k=None):
    from softmax_stability.dilution import topk_truncation_error

    return topk_truncation_error(_p(prm), prm["v"], _k(prm) if k is None else k)


register(Claim(
    id="TK2-topk-output-error-identity",
    family=FAMILY,
    statement=r"o - \hat o = t\,(\mu_{\mathrm{tail}} - \mu_{\mathrm{head}}),\ t = 1 - p(S_k),\ "
              r"\mu_{\mathrm{tail}} = \textstyle\sum_{i\notin S_k} p_i v_i/t,\ \mu_{\mathrm{head}} = "
              r"\sum_{i\in S_k} p_i v_i/p(S_k)\ (v_i \in \mathbb R\text{: each coordinate})",
    source=_SOURCE,
    kind="equal",
    bound=lambda prm: _formula(prm)[0],
    measure=lambda prm: _output_change(prm)[0],
    sample=_sample(1, ks=(3,), count=64),
    mutants=(
        Mutant("k -> k+1", "perturbed", lambda prm: _formula(prm, _k(prm) + 1)[0]),
        Mutant("mu_head -> o (the full output): factor (1 - t)", "perturbed",
               lambda prm: (1.0 - _tail(prm)) * _formula(prm)[0]),
    ),
    proof="recent_theory.topk_output_identity",
    # o and o_hat are dot products of 8 weights (<= 1) with values |v| <= ~40: each within ~8 ulps of
    # 40 (5.7e-14), so their difference within ~1.2e-13; 1e-12 covers it (observed: 1.9e-15 over five
    # seeds). The automatic x(1 + 1e-6) mutant is still refuted wherever |o - o_hat| > 1e-6 (most rows)
    rtol=1e-10, atol=1e-12,
))


# ----------------------------------------------------------------------------------------------
# TK3 / TK4: the bounds, sharp on two-valued (resp. antipodal) values

def _regime_logits(rng, k: int, tails=(0.1, 0.3, 0.5)):
    """Logits with k nearly equal top entries and a tail of mass ~t (t < (n-k)/n keeps the top set)."""
    rows = []
    for t in tails:
        c = np.log(t * k / ((1 - t) * (_N - k)))  # tail logit relative to the head's 0
        rows.append(np.concatenate([0.01 * rng.standard_normal(k), c + 0.01 * rng.standard_normal(_N - k)]))
    return np.asarray(rows)


def _two_valued_regime(antipodal: bool, d: int = 3, k: int = 3):
    def instances(key, ratio=None):
        """Constructed maximisers (``ratio`` unused): head values all equal to w, tail values all equal
        to u (u = -w for the norm form), so mu_head = w, mu_tail = u and ||o - o_hat|| = t||u - w||,
        the bound exactly. Tail masses t in {0.1, 0.3, 0.5}: neither side near 0, t far from t/(1-t).
        They stay maximisers, at each fixed p, of every bound of the form f(p, k) * D(v) with D the
        cross diameter (resp. twice the largest norm) -- the claim's, its x0.98 / x1.02 and its
        t -> t/(1-t) mutants -- since ||o - o_hat|| <= t D(v) with equality there; the k -> k+1 mutant
        is smaller than the measure there (t_{k+1} < t_k, same D), so these instances refute it."""
        del ratio
        rng = _rng(key, 3)
        z = np.concatenate([_regime_logits(rng, k)] * 2)
        m = z.shape[0]
        w = rng.standard_normal((m, 1, d))
        u = -w if antipodal else rng.standard_normal((m, 1, d))
        head = np.arange(_N) < k  # the top set of these logits
        return [{"z": z, "v": np.where(head[None, :, None], w, u), "kdim": np.zeros((m, k))}]

    return instances


def _bound_form(form: str, k_shift: int = 0):
    def bound(prm):
        from softmax_stability.dilution import topk_truncation_error_bound

        return topk_truncation_error_bound(_p(prm), prm["v"], _k(prm) + k_shift, form=form)

    return bound


def _odds(form: str):
    def bound(prm):  # t -> t/(1 - t): the bound divided by the head mass
        return _bound_form(form)(prm) / (1.0 - _tail(prm))

    return bound


def _norm_of_change(prm):
    return jnp.linalg.norm(_output_change(prm))


# ||o - o_hat|| and the bounds: 8-term dot products of weights <= 1 with values <= ~40 and one norm,
# each within ~1e-13 absolute; relative error of the bounds (a max of norms times a sum) < 1e-14
_TOL = dict(rtol=1e-10, atol=1e-12)

register(Claim(
    id="TK3-topk-output-error-cross",
    family=FAMILY,
    statement=r"\|o - \hat o\|_2 \le t\,\max_{i\notin S_k,\ j \in S_k}\|v_i - v_j\|_2\ (\le t\,\mathrm{diam}\{v_i\})"
              r",\ \text{attained when the values are constant on } S_k \text{ and on its complement}",
    source=_SOURCE + "; the bound is derived here from the identity TK2 (convexity)",
    kind="upper",
    bound=_bound_form("cross"),
    measure=_norm_of_change,
    sample=_sample(3, ks=(3,)),
    sharp=True,
    tight_regimes=(TightRegime(
        "two-valued values, t in [0.1, 0.5]",
        "values w on the top-k set and u on the tail: ||o - o_hat|| = t||u - w|| = the bound, for any p; "
        "tail mass 0.1-0.5 (not where both sides vanish)",
        _two_valued_regime(antipodal=False)),),
    mutants=(
        Mutant("k -> k+1", "tighter", _bound_form("cross", 1)),
        Mutant("t -> t/(1-t)", "looser", _odds("cross")),
    ),
    proof="recent_theory.topk_output_bounds",
    **_TOL,
))

register(Claim(
    id="TK4-topk-output-error-norm",
    family=FAMILY,
    statement=r"\|o - \hat o\|_2 \le 2t\max_j\|v_j\|_2 = \|p - \hat p\|_1\max_j\|v_j\|_2,\ "
              r"\text{attained when } v = w \text{ on } S_k,\ v = -w \text{ off it}",
    source=_SOURCE + "; the bound (the brief's form) is derived here from TK2 and the triangle inequality",
    kind="upper",
    bound=_bound_form("norm"),
    measure=_norm_of_change,
    sample=_sample(3, ks=(3,)),
    sharp=True,
    tight_regimes=(TightRegime(
        "antipodal two-valued values, t in [0.1, 0.5]",
        "values w on the top-k set and -w on the tail: ||o - o_hat|| = 2t||w|| = the bound, for any p; "
        "tail mass 0.1-0.5",
        _two_valued_regime(antipodal=True)),),
    mutants=(
        Mutant("k -> k+1", "tighter", _bound_form("norm", 1)),
        Mutant("t -> t/(1-t)", "looser", _odds("norm")),
    ),
    proof="recent_theory.topk_output_bounds",
    **_TOL,
))
