r"""Claims about Selective Self-Attention (SSA) as implemented in :mod:`softmax_stability.attention`.

* A1 -- a query temperature is a row scale of the logits: the library's attention with
  ``query_temperature`` (folded into ``q``) against a dense softmax of the scaled logit matrix
  written out here with :func:`jax.nn.softmax`.
* A2 -- unit temperatures give vanilla attention exactly, and a value temperature gates each key's
  value: the library against dense attention written out here.
* A3 -- the sigmoid-parametrised SSA temperature :math:`1+\sigma(\alpha)\ln n+\tanh f` stays above
  :math:`\sigma(\alpha)\ln n \ge 0` (so :math:`\tau > 0`), approached as :math:`f\to-\infty`.
* A4 -- the official code's gain :math:`e^{-e^\alpha}` is positive (so the position temperature
  :math:`1 + g\ln n \ge 1`).

The token/value temperatures and the sigmoid form follow unofficial reproductions (ssa.md
§1.2-1.4, [3P], unconfirmed against the paper); the double-exponential gain is the official code's
(ssa.md §1.7). Tolerances: A1/A2 compare two float64 evaluations of the same O(1) sums in a
different order (error ~1e-15); ``atol=1e-12`` leaves a 1000x margin. A3/A4 compare float64
values of magnitude <= 20 with an ``atol`` of 1e-12.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from softmax_stability.claims._registry import Claim, register
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
        })
    return out


def _dense(q, k, v, tau, nu):
    """softmax(diag(tau) q k^T / sqrt(h)) diag(nu) v per head, written out (no library code)."""
    logits = jnp.einsum("tnh,snh->nts", q, k) / jnp.sqrt(q.shape[-1])
    p = jax.nn.softmax(tau.T[:, :, None] * logits, axis=-1)
    return jnp.einsum("nts,snh->tnh", p, nu[..., None] * v)


def _a1_measure(prm):
    from softmax_stability.attention import dot_product_attention

    q, k, v, tau = prm["q"], prm["k"], prm["v"], prm["tau"]
    out = dot_product_attention(q, k, v, query_temperature=tau)
    return jnp.max(jnp.abs(out - _dense(q, k, v, tau, jnp.ones_like(tau))))


def _a2_measure(prm):
    from softmax_stability.attention import dot_product_attention

    q, k, v, tau, nu = prm["q"], prm["k"], prm["v"], prm["tau"], prm["nu"]
    out = dot_product_attention(q, k, v, query_temperature=tau, value_temperature=nu)
    return jnp.max(jnp.abs(out - _dense(q, k, v, tau, nu)))


def _a2_batches(key):
    # the first quarter of the instances at tau = nu = 1 exactly (vanilla attention)
    out = []
    for b in _attention_batches(key):
        m = b["tau"].shape[0] // 4
        out.append(dict(b, tau=b["tau"].at[:m].set(1.0), nu=b["nu"].at[:m].set(1.0)))
    return out


register(Claim(
    id="A1-ssa-query-temperature-row-scale",
    family="attention",
    statement=r"\mathrm{Attn}(\tau\odot q, k, v)_i = \sum_j \mathrm{softmax}_j\big(\tau_i\,q_i^\top k_j/\sqrt{d_h}\big)\,v_j",
    source="derived here (ssa.md §1.6 [OURS]; anchors.md §5.6: a per-query temperature folds into q)",
    kind="equal",
    bound=lambda prm: 0.0,
    measure=_a1_measure,
    sample=_attention_batches,
    proof="ssa_algebra.query_temperature_row_scale",
    rtol=0.0,
    atol=1e-12,
))

register(Claim(
    id="A2-ssa-unit-temperature",
    family="attention",
    statement=r"\tau\equiv\nu\equiv1:\ \mathrm{SSA} = \mathrm{softmax}(QK^\top/\sqrt{d_h})V;\quad "
              r"y_i = \sum_j p_{ij}(\tau_i)\,\nu_j v_j",
    source="derived here (ssa.md §1.2, §1.6; value temperature as in the reproductions [3P], unconfirmed)",
    kind="equal",
    bound=lambda prm: 0.0,
    measure=_a2_measure,
    sample=_a2_batches,
    proof="ssa_algebra.unit_temperature_vanilla",
    rtol=0.0,
    atol=1e-12,
))


def _temperature_batches(key):
    ka, kf, kn = jax.random.split(key, 3)
    count = 512
    n = jnp.floor(log_uniform(kn, (count,), 1.0, 2.0**20))
    n = n.at[::16].set(1.0)  # n = 1: the bound is 0 there
    return [{
        "alpha": jax.random.uniform(ka, (count,), jnp.float64, -10.0, 10.0),
        "f": jax.random.uniform(kf, (count,), jnp.float64, -30.0, 30.0),  # f << 0 approaches the bound
        "n": n,
    }]


def _a3_measure(prm):
    from softmax_stability.temperature import ssa_temperature

    return ssa_temperature(prm["n"], prm["alpha"], prm["f"], parametrisation="sigmoid")


register(Claim(
    id="A3-ssa-sigmoid-temperature-positive",
    family="attention",
    statement=r"\tau = 1 + \sigma(\alpha)\ln n + \tanh f \ \ge\ \sigma(\alpha)\ln n \ \ge 0 "
              r"\quad(n \ge 1;\ \tau > 0 \text{ for finite } f,\ \inf\tau = 0)",
    source="SSA temperature form of the unofficial reproductions (ssa.md §1.3, [3P], unconfirmed); "
           "positivity derived here",
    kind="lower",
    bound=lambda prm: jax.nn.sigmoid(prm["alpha"]) * jnp.log(prm["n"]),
    measure=_a3_measure,
    sample=_temperature_batches,
    sharp=True,  # tanh f -> -1 as f -> -oo: tau - sigma ln n -> 0
    proof="ssa_algebra.sigmoid_positive",
    rtol=1e-12,
    atol=1e-12,
))


def _gain_batches(key):
    # alpha <= 6.5: e^{-e^alpha} >= e^{-665} is still a normal float64 (it underflows past ln 745)
    return [{"alpha": jax.random.uniform(key, (256,), jnp.float64, -20.0, 6.5)}]


def _a4_measure(prm):
    from softmax_stability.temperature import position_gain

    return position_gain(prm["alpha"], "double_exp")


register(Claim(
    id="A4-ssa-double-exp-coefficient",
    family="attention",
    statement=r"g(\alpha) = e^{-e^{\alpha}} > 0\ \ (\text{so } 1 + g\ln n \ge 1);\ "
              r"\text{in float64 } g \ge 2^{-1022} \text{ for } \alpha \le 6.5",
    source="official SSA code lit_gpt/model_finetune_att.py (ssa.md §1.7, [CODE]); positivity derived here",
    kind="lower",
    bound=lambda prm: jnp.finfo(jnp.float64).tiny,  # strictly positive, not merely >= 0
    measure=_a4_measure,
    sample=_gain_batches,
    proof="ssa_algebra.double_exp_positive",
    rtol=0.0,
    atol=0.0,
))
