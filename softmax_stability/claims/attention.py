r"""Claims about Selective Self-Attention (SSA) as implemented in :mod:`softmax_stability.attention`.

* A1 -- a query temperature is a row scale of the logits: the library's attention with
  ``query_temperature`` (folded into ``q``) against a dense softmax of the scaled logit matrix
  written out here with :func:`jax.nn.softmax`.
* A2 -- unit temperatures give vanilla attention exactly, and a value temperature gates each key's
  value: the library against dense attention written out here.
* A3 -- the sigmoid-parametrised SSA temperature :math:`1+\sigma(\alpha)\ln n+\tanh f` stays above
  :math:`\sigma(\alpha)\ln n \ge 0` (so :math:`\tau > 0`), approached as :math:`f\to-\infty`.
* A4 -- the official code's gain :math:`e^{-e^\alpha}` is positive (so the position temperature
  :math:`1 + g\ln n \ge 1`), and in float64 a normal number up to the stated edge.

The token/value temperatures and the sigmoid form follow unofficial reproductions (docs/notes/selective_attention.md
§1.2-1.4, [3P], unconfirmed against the paper); the double-exponential gain is the official code's
(docs/notes/selective_attention.md §1.7).

**Identities as scalars (A1, A2).** Each instance carries a random Gaussian weight array ``w`` of
the output's shape; the measured value is :math:`\langle w, \mathrm{library}\rangle` and the
"bound" is :math:`\langle w, \mathrm{dense}\rangle` with the dense formula written out here. A
discrepancy :math:`D \ne 0` gives :math:`\langle w, D\rangle \sim N(0, \|D\|_F^2)`, so it is missed
only with probability ~ atol / ||D|| per instance. Stating the dense formula as the bound is what
lets a *wrong* formula be tried: each mutant is a formula a reimplementation could plausibly use
(a key temperature, a squared temperature, a dropped :math:`1/\sqrt{d_h}`, an output-row value gate
as in the DeepCode reimplementation, a value prior inside the softmax), and each must be rejected.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from softmax_stability.claims._registry import Claim, Mutant, TightRegime, register
from softmax_stability.claims._sampling import log_uniform

_SHAPES = [(6, 2, 4, 64)]  # (T, heads, head_dim, instances): one shape, compilation dominates


def _attention_batches(key):
    out = []
    for (t, n, h, count), k in zip(_SHAPES, jax.random.split(key, len(_SHAPES))):
        kq, kk, kv, ks, kt, kn = jax.random.split(k, 6)
        s = log_uniform(ks, (count, 1, 1, 1), 0.1, 5.0)  # nearly uniform to nearly one-hot rows
        out.append({
            "q": s * jax.random.normal(kq, (count, t, n, h), jnp.float64),
            "k": jax.random.normal(kk, (count, t, n, h), jnp.float64),
            "v": jax.random.normal(kv, (count, t, n, h), jnp.float64),
            "tau": log_uniform(kt, (count, t, n), 0.05, 20.0),
            "nu": log_uniform(kn, (count, t, n), 0.01, 10.0),
            # the random functional <w, .> that turns an output array into one scalar
            "w": jax.random.normal(jax.random.fold_in(k, 7), (count, t, n, h), jnp.float64),
        })
    return out


def _dense(q, k, v, tau, nu, *, variant="ref"):
    """softmax(diag(tau) q k^T / sqrt(h)) diag(nu) v per head, written out (no library code);
    ``variant`` selects a wrong formula (the mutants)."""
    scale = 1.0 if variant == "no_sqrt" else 1.0 / jnp.sqrt(q.shape[-1])
    logits = jnp.einsum("tnh,snh->nts", q, k) * scale  # [heads, query, key]
    if variant == "key_temp":  # tau_j of the key instead of tau_i of the query
        t = tau.T[:, None, :]
    elif variant == "tau_squared":  # tau folded into both q and k
        t = (tau.T ** 2)[:, :, None]
    else:
        t = tau.T[:, :, None]
    z = t * logits
    if variant == "nu_prior":  # nu as a prior inside the softmax: softmax(tau l + ln nu)
        p = jax.nn.softmax(z + jnp.log(nu.T)[:, None, :], axis=-1)
        return jnp.einsum("nts,snh->tnh", p, v)
    p = jax.nn.softmax(z, axis=-1)
    if variant == "nu_rows":  # nu_i gates the output row (the DeepCode reimplementation)
        return nu[..., None] * jnp.einsum("nts,snh->tnh", p, v)
    return jnp.einsum("nts,snh->tnh", p, nu[..., None] * v)


def _dense_functional(variant, unit_nu):
    def bound(prm):
        nu = jnp.ones_like(prm["tau"]) if unit_nu else prm["nu"]
        return jnp.sum(prm["w"] * _dense(prm["q"], prm["k"], prm["v"], prm["tau"], nu, variant=variant))

    return bound


def _a1_measure(prm):
    from softmax_stability.attention import dot_product_attention

    out = dot_product_attention(prm["q"], prm["k"], prm["v"], query_temperature=prm["tau"])
    return jnp.sum(prm["w"] * out)


def _a2_measure(prm):
    from softmax_stability.attention import dot_product_attention

    out = dot_product_attention(prm["q"], prm["k"], prm["v"], query_temperature=prm["tau"],
                                value_temperature=prm["nu"])
    return jnp.sum(prm["w"] * out)


def _a2_batches(key):
    # the first quarter of the instances at tau = nu = 1 exactly (vanilla attention)
    out = []
    for b in _attention_batches(key):
        m = b["tau"].shape[0] // 4
        out.append(dict(b, tau=b["tau"].at[:m].set(1.0), nu=b["nu"].at[:m].set(1.0)))
    return out


# Tolerance of A1/A2: each output entry is a convex combination of T = 6 values (times nu <= 10,
# |v| <~ 4), evaluated in two different orders: entry errors <~ 6 * 40 * 1.1e-16 ~ 3e-14 at worst,
# and <w, D> sums 48 of them with |w| ~ 1, signs random: ~2e-13 at worst, ~1e-14 typically
# (observed max 7e-15 for A1, 1.8e-14 for A2 over 20 seeds x 64 instances). atol = 1e-12 leaves a
# 5x margin over the worst case, 50x over the observed.
register(Claim(
    id="A1-ssa-query-temperature-row-scale",
    family="attention",
    statement=r"\mathrm{Attn}(\tau\odot q, k, v)_i = \sum_j \mathrm{softmax}_j\big(\tau_i\,q_i^\top k_j/\sqrt{d_h}\big)\,v_j"
              r"\ \ (\text{checked as } \langle w, \cdot\rangle \text{ for a random } w)",
    source="derived here (docs/notes/selective_attention.md §1.6 [OURS]; docs/notes/field.md §5.6: a per-query temperature folds into q)",
    kind="equal",
    bound=_dense_functional("ref", unit_nu=True),
    measure=_a1_measure,
    sample=_attention_batches,
    mutants=(
        Mutant("tau_i -> tau_j (a key temperature)", "perturbed", _dense_functional("key_temp", True)),
        Mutant("tau -> tau^2 (folded into q and k)", "perturbed", _dense_functional("tau_squared", True)),
        Mutant("1/sqrt(d_h) dropped", "perturbed", _dense_functional("no_sqrt", True)),
    ),
    proof="ssa_algebra.query_temperature_row_scale",
    rtol=0.0,
    atol=1e-12,
))

register(Claim(
    id="A2-ssa-unit-temperature",
    family="attention",
    statement=r"\tau\equiv\nu\equiv1:\ \mathrm{SSA} = \mathrm{softmax}(QK^\top/\sqrt{d_h})V;\quad "
              r"y_i = \sum_j p_{ij}(\tau_i)\,\nu_j v_j\ \ (\text{checked as } \langle w, y\rangle)",
    source="derived here (docs/notes/selective_attention.md §1.2, §1.6; value temperature as in the reproductions [3P], unconfirmed)",
    kind="equal",
    bound=_dense_functional("ref", unit_nu=False),
    measure=_a2_measure,
    sample=_a2_batches,
    mutants=(
        Mutant("nu_j -> nu_i (gates the output row)", "perturbed", _dense_functional("nu_rows", False)),
        Mutant("nu as a prior: softmax(tau l + ln nu)", "perturbed", _dense_functional("nu_prior", False)),
        Mutant("1/sqrt(d_h) dropped", "perturbed", _dense_functional("no_sqrt", False)),
    ),
    proof="ssa_algebra.unit_temperature_vanilla",
    rtol=0.0,
    atol=1e-12,
))


# ---------------------------------------------------------------------------------------------
# A3: the SSA temperature stays above sigma(alpha) ln n

_F_MIN = -354.0  # float64: 2 sigmoid(2f) >= 2^-1022 for f >= -354.19 (ssa_temperature)


def _temperature_batches(key):
    ka, kf, kn = jax.random.split(key, 3)
    count = 512
    n = jnp.floor(log_uniform(kn, (count,), 1.0, 2.0**20))
    n = n.at[::16].set(1.0)  # n = 1: the bound is 0 there, tau = 1 + tanh f > 0 is all that is left
    return [{
        "alpha": jax.random.uniform(ka, (count,), jnp.float64, -10.0, 10.0),
        "f": jax.random.uniform(kf, (count,), jnp.float64, _F_MIN, 30.0),
        "n": n,
    }]


def _a3_regime(key, ratio=None):
    """f at the bottom of the float64 range, n >= 2.

    Constructed, not searched: tau is increasing in f at fixed (n, alpha), so for any bound that
    does not depend on f (the claim's and every mutant's) the ratio bound/tau is largest at the
    smallest f; the instances stay maximisers whatever the bound."""
    ka, kf, kn = jax.random.split(key, 3)
    count = 64
    return [{
        "alpha": jax.random.uniform(ka, (count,), jnp.float64, -10.0, 10.0),
        "f": jax.random.uniform(kf, (count,), jnp.float64, _F_MIN, -20.0),
        "n": jnp.floor(log_uniform(kn, (count,), 2.0, 2.0**20)),
    }]


def _a3_measure(prm):
    from softmax_stability.temperature import ssa_temperature

    return ssa_temperature(prm["n"], prm["alpha"], prm["f"], parametrisation="sigmoid")


def _sigma_log(log):
    return lambda prm: jax.nn.sigmoid(prm["alpha"]) * log(prm["n"])


register(Claim(
    id="A3-ssa-sigmoid-temperature-positive",
    family="attention",
    statement=r"\tau = 1 + \sigma(\alpha)\ln n + \tanh f \ \ge\ \sigma(\alpha)\ln n \ \ge 0 "
              r"\quad(n \ge 1;\ \tau > 0 \text{ for finite } f,\ \inf\tau = 0;\ \text{float64, evaluated as }"
              r"\sigma(\alpha)\ln n + 2\sigma(2f):\ \tau > 0 \text{ for } f \ge -354.19)",
    source="SSA temperature form of the unofficial reproductions (docs/notes/selective_attention.md §1.3, [3P], unconfirmed); "
           "positivity derived here; the float64 range is that of ssa_temperature's 2 sigmoid(2f) "
           "(tests/test_ssa_temperature_range.py checks it against mpmath)",
    kind="lower",
    bound=_sigma_log(jnp.log),
    measure=_a3_measure,
    sample=_temperature_batches,
    sharp=True,  # tanh f -> -1 as f -> -oo: tau - sigma ln n -> 0
    tight_regimes=(TightRegime(
        "f -> -oo, n >= 2",
        "the token part 1 + tanh f = 2 sigmoid(2f) -> 0, so tau -> sigma(alpha) ln n > 0: the bound's "
        "only constant (the infimum -1 of tanh) is what is approached; at n = 1 the bound is 0 and "
        "any constant would do, so n >= 2",
        _a3_regime),),
    mutants=(
        Mutant("ln n -> log2 n", "tighter", _sigma_log(jnp.log2)),
        Mutant("ln n -> ln(n + 1)", "tighter", _sigma_log(jnp.log1p)),
    ),
    proof="ssa_algebra.sigmoid_positive",
    # both sides compute sigma(alpha) ln n with the same operations; tau adds 2 sigmoid(2f) >= 0
    # to it, so tau >= bound holds exactly in float64 unless the two are fused differently (<= 2
    # ulp): 1e-12 covers that, far below the 2% of the constant mutants
    rtol=1e-12,
    atol=1e-12,
))


# ---------------------------------------------------------------------------------------------
# A4: the double-exponential gain is positive, and a normal float64 number up to the edge

_TINY = 2.0 ** -1022  # smallest normal float64
_EDGE = 6.563  # ln(1022 ln 2) = 6.5630039 is where e^{-e^alpha} = 2^-1022


def _gain_batches(key):
    ka, _ = jax.random.split(key)
    alpha = jnp.concatenate([jax.random.uniform(ka, (195,), jnp.float64, -20.0, 6.5),
                             jnp.linspace(6.55, 6.58, 61)])  # around the edge, on both sides
    return [{"alpha": alpha}]


def _a4_regime(key, ratio=None):
    """alpha just below the edge. Constructed: the gain decreases in alpha, so for any bound
    constant on alpha <= edge (the claim's, its constant mutants) the ratio floor/g is largest at
    the edge; the instances stay maximisers whatever the bound."""
    return [{"alpha": _EDGE - jnp.linspace(0.0, 1e-4, 16)}]


def _a4_measure(prm):
    from softmax_stability.temperature import position_gain

    return position_gain(prm["alpha"], "double_exp")


def _floor_up_to(edge):
    return lambda prm: jnp.where(prm["alpha"] <= edge, _TINY, 0.0)


register(Claim(
    id="A4-ssa-double-exp-coefficient",
    family="attention",
    statement=r"g(\alpha) = e^{-e^{\alpha}} > 0\ \ (\text{so } 1 + g\ln n \ge 1);\ "
              r"\text{in float64 } g \ge 2^{-1022} \text{ for } \alpha \le 6.563\ "
              r"(\text{edge } \ln(1022\ln 2) = 6.5630039)",
    source="official SSA code lit_gpt/model_finetune_att.py (docs/notes/selective_attention.md §1.7, [CODE]); positivity derived here; "
           "the float64 edge: e^{-e^alpha} >= 2^-1022 iff e^alpha <= 1022 ln 2",
    kind="lower",
    bound=_floor_up_to(_EDGE),  # strictly positive (normal) up to the edge; beyond, only g >= 0
    measure=_a4_measure,
    sample=_gain_batches,
    sharp=True,
    tight_regimes=(TightRegime(
        "alpha -> 6.563 (float64 underflow edge)",
        "g decreases to 2^-1022 at alpha = ln(1022 ln 2); at the stated edge 6.563 it is 1.0027 x "
        "2^-1022, so the floor is approached within 0.3% and a 2% larger floor or a later edge fails",
        _a4_regime),),
    mutants=(
        Mutant("edge 6.563 -> 6.564", "tighter", _floor_up_to(6.564)),
    ),
    proof="ssa_algebra.double_exp_positive",
    # the edge sits 3.9e-6 below ln(1022 ln 2): a 0.27% margin in g, far above the ~3e-13 relative
    # rounding of e^{-e^alpha} (e^alpha ~ 708 carries 1 ulp); no tolerance is needed
    rtol=0.0,
    atol=0.0,
))
