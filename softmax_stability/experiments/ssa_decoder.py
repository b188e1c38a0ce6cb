r"""A small causal decoder whose attention is one of nine variants (SSA, SSMax, sparse maps).

The model is the same in every variant; only the attention of each block changes:

===================== ==========================================================================
variant               attention (all through :func:`softmax_stability.attention.dot_product_attention`)
===================== ==========================================================================
``vanilla``           softmax, :math:`\tau \equiv 1`
``ssa_position``      the SSA authors' position temperature on the query,
                      :math:`\tau = 1 + e^{-e^{\alpha}}\ln n` (``double_exp``, official code)
``ssa_query``         SSA query temperature, position + token part, separate MLP for :math:`f`
``ssa_query_value``   SSA query + value temperatures, separate MLPs
``ssa_shared``        SSA query + value temperatures with weight sharing (:math:`f` reuses the
                      site's own projection; only :math:`u_h` is new)
``ssmax``             SSMax, query temperature :math:`s_h \ln n`, :math:`s_h` learned per head
``topk``              softmax over the ``k_top`` largest logits of each row
``sparsemax``         sparsemax
``entmax15``          1.5-entmax
===================== ==========================================================================

The SSA temperatures are :func:`softmax_stability.attention.ssa_temperatures` (the formula of
:func:`softmax_stability.temperature.ssa_temperature`; token temperature, value temperature and
weight sharing as reconstructed in docs/notes/selective_attention.md §1.2-1.4, *unconfirmed*),
parameters from :func:`softmax_stability.attention.init_ssa_params` (``init="reproduction"``);
SSMax is :func:`softmax_stability.temperature.ssmax`. :math:`n` is the number of keys a causal
query sees (its 0-based position + 1).

Architecture (pre-LayerNorm, no positional encoding): token embedding plus an embedding of the
previous token (a one-step token shift, the "short convolution" with which one attention layer
solves associative recall), ``num_layers`` blocks of attention + GELU MLP, final LayerNorm and an
unembedding. Without positional encoding nothing in the model is tied to the training length, so
length extrapolation isolates what attention does with more keys.

The attention block computes :math:`q, k, v` with the parameter layout of
:func:`softmax_stability.attention.init_attention_params` and calls
:func:`~softmax_stability.attention.dot_product_attention` with the temperatures; it equals
:func:`~softmax_stability.attention.multi_head_attention` /
:func:`~softmax_stability.attention.selective_self_attention` on the same parameters (tested).
It computes it itself so that the last block can evaluate only the rows of the query positions
(the rest of the last block's output is never read), which makes training and long-context
evaluation cost :math:`O(QT)` instead of :math:`O(T^2)` there. :func:`attention_probe` returns the
attention weights of those rows (by :mod:`softmax_stability.maps` on the same logits), the raw
logits and the query temperature, for the dilution measurements.

Example:
    >>> import jax, jax.numpy as jnp
    >>> cfg = DecoderConfig(vocab_size=10, variant="ssa_shared", d_model=8, num_heads=2)
    >>> p = init(jax.random.PRNGKey(0), cfg)
    >>> tokens = jnp.arange(6)[None] % 10
    >>> fwd = jax.jit(apply, static_argnums=2)   # cfg is static (a frozen dataclass)
    >>> fwd(p, tokens, cfg, query_positions=jnp.array([[5]])).shape   # logits at position 5 only
    (1, 1, 10)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability import attention, maps, temperature
from softmax_stability._checks import check_int_in_range

__all__ = ["VARIANTS", "SSA_VARIANTS", "DecoderConfig", "init", "apply", "attention_block",
           "attention_probe", "parameter_count", "ssa_config"]

VARIANTS = ("vanilla", "ssa_position", "ssa_query", "ssa_query_value", "ssa_shared", "ssmax",
            "topk", "sparsemax", "entmax15")
SSA_VARIANTS = ("ssa_position", "ssa_query", "ssa_query_value", "ssa_shared")
_NORMALIZER = {"topk": "topk", "sparsemax": "sparsemax", "entmax15": "entmax15"}


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Shape and attention variant of the decoder (hashable: static under ``jit``).

    Attributes:
      vocab_size: tokens, ``>= 2``.
      variant: one of :data:`VARIANTS`.
      d_model: width.
      num_heads: attention heads (``d_model`` divisible by it).
      num_layers: blocks.
      mlp_ratio: MLP hidden width over ``d_model``.
      k_top: keys kept per query by ``topk`` (checked against the sequence length by
        ``dot_product_attention``: ``k_top > n`` raises ``ValueError``).
      ssmax_s: initial SSMax :math:`s` (every head), ``> 0``.
      ssa_mlp_hidden: hidden width of the separate token-temperature MLP (``ssa_query``,
        ``ssa_query_value``).
    """

    vocab_size: int
    variant: str = "vanilla"
    d_model: int = 32
    num_heads: int = 2
    num_layers: int = 1
    mlp_ratio: int = 2
    k_top: int = 4
    ssmax_s: float = 0.5
    ssa_mlp_hidden: int = 16

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        check_int_in_range(self.vocab_size, "vocab_size", 2)
        check_int_in_range(self.d_model, "d_model", 1)
        check_int_in_range(self.num_heads, "num_heads", 1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        check_int_in_range(self.num_layers, "num_layers", 1)
        check_int_in_range(self.mlp_ratio, "mlp_ratio", 1)
        check_int_in_range(self.k_top, "k_top", 1)
        check_int_in_range(self.ssa_mlp_hidden, "ssa_mlp_hidden", 1)
        s = self.ssmax_s
        if isinstance(s, bool) or not isinstance(s, (int, float, np.floating, np.integer)):
            raise TypeError(f"ssmax_s must be a real number > 0, got {s!r}")
        if not (math.isfinite(float(s)) and float(s) > 0):
            raise ValueError(f"ssmax_s (the SSMax scale s) must be finite and > 0, got {s!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def normalizer(self) -> str:
        return _NORMALIZER.get(self.variant, "softmax")


def ssa_config(cfg: DecoderConfig) -> attention.SSAConfig | None:
    """The :class:`~softmax_stability.attention.SSAConfig` of an SSA variant (None otherwise).

    Example:
      >>> ssa_config(DecoderConfig(10, "ssa_position")).parametrisation
      'double_exp'
    """
    d, N, v = cfg.d_model, cfg.num_heads, cfg.variant
    if v == "ssa_position":  # the official code: position part on the logits only
        return attention.SSAConfig(d, N, query=True, value=False, token=False,
                                   parametrisation="double_exp")
    if v in ("ssa_query", "ssa_query_value"):
        return attention.SSAConfig(d, N, query=True, value=v == "ssa_query_value",
                                   weight_sharing=False, mlp_hidden=cfg.ssa_mlp_hidden)
    if v == "ssa_shared":
        return attention.SSAConfig(d, N, query=True, value=True, weight_sharing=True)
    return None


def _ln_init(d):
    return {"scale": jnp.ones((d,), jnp.float32), "bias": jnp.zeros((d,), jnp.float32)}


def _ln(p, x):
    mu = jnp.mean(x, -1, keepdims=True)
    var = jnp.var(x, -1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + 1e-5) * p["scale"] + p["bias"]


def init(key: jax.Array, cfg: DecoderConfig) -> dict:
    """Parameters (a dict pytree, float32) of the decoder ``cfg``.

    Attention: :func:`~softmax_stability.attention.init_ssa_params` (``init="reproduction"``) for
    the SSA variants, :func:`~softmax_stability.attention.init_attention_params` otherwise, plus
    ``{"ssmax": {"rho": [N]}}`` for SSMax (:math:`s = \\operatorname{softplus}(\\rho)`).
    """
    if not isinstance(cfg, DecoderConfig):
        raise TypeError(f"cfg must be a DecoderConfig, got {type(cfg).__name__}")
    d, V, N = cfg.d_model, cfg.vocab_size, cfg.num_heads
    ke, ks, ku, kb = jax.random.split(key, 4)
    blocks = []
    for kl in jax.random.split(kb, cfg.num_layers):
        ka, k1, k2 = jax.random.split(kl, 3)
        sc = ssa_config(cfg)
        if sc is not None:
            attn = attention.init_ssa_params(ka, sc, init="reproduction", dtype=jnp.float32)
        else:
            attn = attention.init_attention_params(ka, d, N, dtype=jnp.float32)
        if cfg.variant == "ssmax":
            rho = math.log(math.expm1(float(cfg.ssmax_s)))  # softplus^{-1}(s)
            attn["ssmax"] = {"rho": jnp.full((N,), rho, jnp.float32)}
        m = cfg.mlp_ratio * d
        blocks.append({
            "ln1": _ln_init(d), "attn": attn, "ln2": _ln_init(d),
            "mlp": {"w1": jax.random.normal(k1, (d, m), jnp.float32) / math.sqrt(d),
                    "b1": jnp.zeros((m,), jnp.float32),
                    "w2": jax.random.normal(k2, (m, d), jnp.float32) / math.sqrt(m),
                    "b2": jnp.zeros((d,), jnp.float32)}})
    return {"embed": jax.random.normal(ke, (V, d), jnp.float32),
            "shift": jax.random.normal(ks, (V, d), jnp.float32),
            "blocks": blocks, "ln_f": _ln_init(d),
            "unembed": jax.random.normal(ku, (d, V), jnp.float32) / math.sqrt(d)}


def parameter_count(params: Any) -> int:
    """Number of scalars in a parameter pytree."""
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))


def _project(p, x, name):
    return jnp.einsum("btd,dnh->btnh", x, p["w" + name]) + p["b" + name]


def _qkv_tau(p, h, cfg: DecoderConfig):
    """q, k, v [B, T, N, H] and the query / value inverse temperatures [B, T, N] (or None)."""
    T = h.shape[1]
    q, k, v = (_project(p, h, s) for s in "qkv")
    n = (jnp.arange(T, dtype=jnp.int32) + 1)[None, :, None]  # causal: visible keys = position + 1
    tq = tv = None
    sc = ssa_config(cfg)
    if sc is not None:
        taus = attention.ssa_temperatures(p, h, config=sc, n_query=n, n_key=n,
                                          projected={"query": q, "value": v, "key": k})
        tq, tv = taus.get("query"), taus.get("value")
    elif cfg.variant == "ssmax":
        s = jax.nn.softplus(p["ssmax"]["rho"])
        # s ln n is 0 at n = 1, where the single visible key gets weight 1 at any temperature;
        # dot_product_attention needs tau > 0, so that row uses n = 2 (its output is unchanged)
        n_eff = jnp.maximum(n, 2).astype(h.dtype)
        tq = jnp.broadcast_to(temperature.ssmax(n_eff, s), h.shape[:2] + (cfg.num_heads,))
    return q, k, v, tq, tv


def _rows(a, rows):
    """a[b, rows[b, j]] for a of shape [B, T, ...] and rows [B, Q]."""
    idx = rows.reshape(rows.shape + (1,) * (a.ndim - 2))
    return jnp.take_along_axis(a, idx, axis=1)


def attention_block(p: dict, h: jax.Array, cfg: DecoderConfig, rows: jax.Array | None = None) -> jax.Array:
    r"""The causal attention of one block on normalised inputs ``h [B, T, d]``.

    :math:`y = \mathrm{DPA}(q, k, v;\ \tau_q, \tau_v)\,W_o + b_o`, where DPA is
    :func:`softmax_stability.attention.dot_product_attention` with the variant's normaliser and
    temperatures. With ``rows [B, Q]`` (absolute positions) only those query rows are computed
    (the keys are all ``T`` tokens, causally masked); the result is ``[B, Q, d]``.
    """
    q, k, v, tq, tv = _qkv_tau(p, h, cfg)
    qpos = None
    if rows is not None:
        q = _rows(q, rows)
        tq = None if tq is None else _rows(tq, rows)
        qpos = rows
    o = attention.dot_product_attention(
        q, k, v, normalizer=cfg.normalizer, k_top=cfg.k_top if cfg.variant == "topk" else None,
        causal=True, query_temperature=tq, value_temperature=tv, query_positions=qpos)
    return jnp.einsum("btnh,nhd->btd", o, p["wo"]) + p["bo"]


def _embed(params, tokens):
    prev = params["shift"][tokens[:, :-1]]
    prev = jnp.concatenate([jnp.zeros_like(prev[:, :1]), prev], axis=1)
    return params["embed"][tokens] + prev


def _mlp(p, x):
    return jax.nn.gelu(x @ p["w1"] + p["b1"], approximate=False) @ p["w2"] + p["b2"]


def _forward(params, tokens, cfg, query_positions, probe):
    x = _embed(params, tokens)
    probes = []
    L = len(params["blocks"])
    for i, blk in enumerate(params["blocks"]):
        h = _ln(blk["ln1"], x)
        last = i == L - 1 and query_positions is not None
        rows = query_positions if last else None
        if probe:
            probes.append(_probe_block(blk["attn"], h, cfg, query_positions))
        a = attention_block(blk["attn"], h, cfg, rows)
        if last:
            x = _rows(x, query_positions)
        x = x + a
        x = x + _mlp(blk["mlp"], _ln(blk["ln2"], x))
    return _ln(params["ln_f"], x) @ params["unembed"], probes


def _check_tokens(tokens, cfg, query_positions):
    if not isinstance(cfg, DecoderConfig):
        raise TypeError(f"cfg must be a DecoderConfig, got {type(cfg).__name__}")
    if tokens.ndim != 2 or tokens.shape[1] < 1:
        raise ValueError(f"tokens must have shape [batch, T] with T >= 1, got {tokens.shape}")
    if query_positions is not None and (query_positions.ndim != 2 or query_positions.shape[0] != tokens.shape[0]):
        raise ValueError(f"query_positions must have shape [batch, Q] with batch {tokens.shape[0]}, "
                         f"got {query_positions.shape}")
    if cfg.variant == "topk" and cfg.k_top > tokens.shape[1]:
        raise ValueError(f"k_top={cfg.k_top} is larger than the sequence length n={tokens.shape[1]}; "
                         f"top-k needs k_top <= n")


def apply(params: dict, tokens: Any, cfg: DecoderConfig, *, query_positions: Any = None) -> jax.Array:
    """Next-token logits of the decoder.

    Args:
      params: from :func:`init`.
      tokens: int array ``[B, T]``.
      cfg: the :class:`DecoderConfig`.
      query_positions: optional int array ``[B, Q]``: return the logits of those positions only
        (the last block then evaluates only those attention rows).

    Returns:
      ``[B, T, V]``, or ``[B, Q, V]`` with ``query_positions``.
    """
    tokens = jnp.asarray(tokens)
    qp = None if query_positions is None else jnp.asarray(query_positions)
    _check_tokens(tokens, cfg, qp)
    return _forward(params, tokens, cfg, qp, False)[0]


def _probe_block(p, h, cfg, rows):
    q, k, v, tq, tv = _qkv_tau(p, h, cfg)
    B, T, N, H = q.shape
    if rows is None:
        rows = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))
    qr = _rows(q, rows)
    logits = jnp.einsum("bqnh,btnh->bnqt", qr, k) / math.sqrt(H)
    tau = jnp.ones(qr.shape[:3], logits.dtype) if tq is None else _rows(tq, rows)
    visible = jnp.arange(T)[None, None, None, :] <= rows[:, None, :, None]
    z = jnp.where(visible, logits * jnp.transpose(tau, (0, 2, 1))[..., None], -jnp.inf)
    if cfg.normalizer == "softmax":
        w = maps.softmax(z, where=visible)
    elif cfg.normalizer == "topk":
        w = maps.topk_softmax(z, min(cfg.k_top, T))
    elif cfg.normalizer == "sparsemax":
        w = maps.sparsemax(z)
    else:
        w = maps.entmax15(z)
    return {"weights": w, "logits": logits, "tau": tau, "visible": visible,
            "value_temperature": tv}


def attention_probe(params: dict, tokens: Any, cfg: DecoderConfig, query_positions: Any = None) -> list[dict]:
    r"""Attention of every block at the query rows, for measuring dilution in a trained model.

    For each block: ``weights [B, N, Q, T]`` (the variant's normaliser of
    :mod:`softmax_stability.maps` applied to :math:`\tau_q \ell` over the visible keys; ``weights
    @ (tau_v v)`` is the block's attention output before :math:`W_o`, tested), ``logits [B, N, Q, T]``
    (:math:`\ell = q^\top k/\sqrt{H}`, before the temperature), ``tau [B, Q, N]`` (query inverse
    temperature, 1 without one), ``visible [B, 1, Q, T]`` (causal mask) and ``value_temperature``
    (``[B, T, N]`` or None). Without ``query_positions`` every position is a query row.
    """
    tokens = jnp.asarray(tokens)
    qp = None if query_positions is None else jnp.asarray(query_positions)
    _check_tokens(tokens, cfg, qp)
    return _forward(params, tokens, cfg, qp, True)[1]
