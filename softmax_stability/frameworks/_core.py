"""Framework-free core of the Flax and Equinox layers: the layout adapter, SSA temperatures, the
statistics a probe records, and the recorder the Equinox wrapper writes into.

Nothing here imports Flax or Equinox.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability import attention, dilution, jacobian
from softmax_stability._checks import check_choice, check_int_in_range

#: the name under which the layers record their statistics
STATISTICS_NAME = "attention_statistics"

#: the statistics recorded per row (query) of every head, besides the logits and the mask
ROW_METRICS = ("spectral_norm", "normalized_entropy", "max_weight", "effective_support")


@dataclasses.dataclass(frozen=True)
class SSA:
    r"""Which Selective Self-Attention temperatures a framework layer learns, and how they start.

    The inverse temperature of a token at a site is :math:`\tau = 1 + g(\alpha)\ln n + \tanh f`
    with the token part :math:`f = u_h^\top \operatorname{GELU}(\cdot)` of the site's own
    projection (weight sharing; the only form available inside an ``attention_fn``, which sees
    the projected heads but not the tokens). The formulas are
    :func:`softmax_stability.attention.ssa_temperatures`; :math:`n` follows
    :func:`softmax_stability.attention.selective_self_attention` (visible keys of a query; a
    key's position + 1 under ``is_causal``). Source: SSA arXiv:2411.12892 as reconstructed in
    docs/notes/selective_attention.md §1.2-1.4 ([3P], **unconfirmed** against the paper).

    Attributes:
      query, value, key: the sites that get a temperature (SSA: query and value).
      position: learn the position gain :math:`\alpha`.
      token: learn the token part :math:`u` (``[heads, head_dim]`` per site).
      parametrisation: ``"sigmoid"``, ``"double_exp"`` or ``"linear"`` (see
        :class:`softmax_stability.attention.SSAConfig`).
      init: ``"identity"`` (:math:`u = 0`, small gain: starts as vanilla attention) or
        ``"reproduction"`` (see :func:`softmax_stability.attention.init_ssa_params`).
      alpha: initial :math:`\alpha` overriding ``init``'s.
      alpha_per_head: one :math:`\alpha` per head.

    Example:
      >>> SSA().sites, SSA(key=True, token=False).sites
      (('query', 'value'), ('query', 'value', 'key'))
    """

    query: bool = True
    value: bool = True
    key: bool = False
    position: bool = True
    token: bool = True
    parametrisation: str = "sigmoid"
    init: str = "identity"
    alpha: float | None = None
    alpha_per_head: bool = False

    def __post_init__(self):
        for name in ("query", "value", "key", "position", "token", "alpha_per_head"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"SSA.{name} must be a bool, got {getattr(self, name)!r}")
        if not (self.query or self.value or self.key):
            raise ValueError("SSA needs at least one of query, value, key")
        if not (self.position or self.token):
            raise ValueError("SSA needs position=True or token=True (with neither, tau = 1: use no SSA)")
        if self.init not in ("identity", "reproduction"):
            raise ValueError(f"SSA.init must be 'identity' or 'reproduction', got {self.init!r}")
        if self.alpha is not None and (isinstance(self.alpha, bool) or not isinstance(self.alpha, numbers.Real)
                                       or not math.isfinite(self.alpha)):
            raise ValueError(f"SSA.alpha must be a finite real number or None, got {self.alpha!r}")
        self.config(1, 1)  # checks parametrisation

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(s for s in ("query", "value", "key") if getattr(self, s))

    def config(self, num_heads: int, head_dim: int, sites: tuple[str, ...] | None = None) -> attention.SSAConfig:
        """The library's :class:`~softmax_stability.attention.SSAConfig` for heads of this shape."""
        sites = self.sites if sites is None else sites
        return attention.SSAConfig(num_heads * head_dim, num_heads, head_dim, use_bias=False,
                                   query="query" in sites, value="value" in sites, key="key" in sites,
                                   position=self.position, token=self.token,
                                   parametrisation=self.parametrisation, weight_sharing=True,
                                   alpha_per_head=self.alpha_per_head)

    def param_names(self) -> tuple[str, ...]:
        """Names of the temperature parameters: ``query_alpha``, ``query_u``, ``value_alpha``, ..."""
        parts = (("alpha",) if self.position else ()) + (("u",) if self.token else ())
        return tuple(f"{site}_{part}" for site in self.sites for part in parts)

    def init_params(self, rng: jax.Array, num_heads: int, head_dim: int, num_kv_heads: int | None = None,
                    dtype: Any = jnp.float32) -> dict:
        """Initial temperature parameters, flat: ``{"query_alpha": ..., "query_u": ..., ...}``
        (those of :func:`softmax_stability.attention.init_ssa_params`; value and key sites have
        ``num_kv_heads`` heads, default ``num_heads``)."""
        kv = num_heads if num_kv_heads is None else num_kv_heads
        out = {}
        for site, r in zip(self.sites, jax.random.split(rng, len(self.sites))):
            heads = num_heads if site == "query" else kv
            p = attention._init_ssa_temperatures(r, self.config(heads, head_dim, sites=(site,)), self.init,
                                                 self.alpha, dtype)[site]
            out.update({f"{site}_{name}": val for name, val in p.items()})
        return out


def check_options(normalizer: str, k_top: Any, gamma: Any, implementation: Any, topk_method: Any) -> None:
    """Eager checks of the normaliser options (the sequence-length check of ``k_top`` is at call time)."""
    check_choice(normalizer, "normalizer", attention.NORMALIZERS)
    check_choice(implementation, "implementation", attention.IMPLEMENTATIONS)
    if topk_method is not None:
        check_choice(topk_method, "topk_method", attention.TOPK_METHODS)
    if normalizer == "topk" or k_top is not None:
        if normalizer == "topk" and k_top is None:
            raise ValueError("normalizer='topk' needs k_top, an int >= 1")
        if normalizer != "topk":
            raise ValueError(f"k_top is only used with normalizer='topk', got normalizer={normalizer!r}")
        check_int_in_range(k_top, "k_top", 1)
    else:
        attention._check_sparsity_args(normalizer, None, gamma, 1)


def _flatten_mask(mask: Any, batch: tuple[int, ...]) -> jax.Array | None:
    """A Flax mask ``[batch..., heads, L, S]`` (broadcastable) as a bool ``[B, h, l, s]``."""
    if mask is None:
        return None
    m = jnp.asarray(mask) if not isinstance(mask, jax.core.Tracer) else mask
    if m.dtype != jnp.bool_:
        m = m.astype(jnp.bool_)  # Flax masks may be 0/1 floats
    nb = len(batch)
    if m.ndim > nb + 3:
        raise ValueError(f"mask must be broadcastable to [batch..., heads, q_length, kv_length] with "
                         f"batch {batch}, got shape {m.shape}")
    m = m.reshape((1,) * (nb + 3 - m.ndim) + m.shape)
    try:
        lead = np.broadcast_shapes(m.shape[:nb], batch)
    except ValueError:
        lead = None
    if lead != tuple(batch):
        raise ValueError(f"mask's batch axes {m.shape[:nb]} do not broadcast to {batch}")
    m = jnp.broadcast_to(m, tuple(batch) + m.shape[nb:])
    return m.reshape((int(np.prod(batch, dtype=np.int64)),) + m.shape[nb:])


def attention_logits(q: jax.Array, k: jax.Array, *, scale: float, query_temperature=None,
                     key_temperature=None) -> jax.Array:
    r"""The logits :math:`\ell_{ij} = s\,\tau_i\kappa_j\,q_i^\top k_j` of
    :func:`softmax_stability.attention.dot_product_attention`, ``[B, N, T, S]`` in float32 (or
    wider), for ``q [B, T, N, H]`` and ``k [B, S, K, H]`` (grouped heads repeated)."""
    q = attention._fold(q, query_temperature)
    k = attention._fold(k, key_temperature)
    N, K = q.shape[2], k.shape[2]
    if K != N:
        k = jnp.repeat(k, N // K, axis=2)  # head n uses key head n // (N/K), as the core groups them
    dt = jnp.promote_types(q.dtype, jnp.float32)
    return jnp.einsum("btnh,bsnh->bnts", q, k, preferred_element_type=dt) * jnp.asarray(scale, dt)


def visible(mask: jax.Array | None, causal: bool, shape: tuple[int, int, int, int]) -> jax.Array:
    """The full boolean mask ``[B, N, T, S]`` the core applies (user mask and lower triangle)."""
    B, N, T, S = shape
    m = jnp.ones((1, 1, T, S), bool) if mask is None else mask
    if causal:
        m = m & jnp.tril(jnp.ones((T, S), bool))
    return jnp.broadcast_to(m, shape)


def row_metrics(logits: jax.Array, mask: jax.Array, normalizer: str, k_top: Any = None, gamma: Any = None,
                topk_method: Any = None) -> dict[str, jax.Array]:
    """Per-row statistics of the attention map ``xi(logits)`` under ``mask`` (``[..., T, S]``).

    The weights are the attention core's own normaliser (the one
    :func:`~softmax_stability.attention.dot_product_attention` applies); the Jacobian spectral
    norm is that normaliser's (:func:`softmax_stability.jacobian.spectral_norm` for softmax,
    top-k and top-n^gamma, whose Jacobian with the selection fixed is softmax's on the kept
    keys; :func:`~softmax_stability.jacobian.sparsemax_spectral_norm`;
    :func:`~softmax_stability.jacobian.entmax_spectral_norm` with alpha 1.5), taken with respect to
    the logits (after scale and temperatures). Fully masked rows give 0 for every metric.
    """
    p = attention._normalize(logits, mask, normalizer, k_top, gamma, topk_method)
    if normalizer == "sparsemax":
        sn = jacobian.sparsemax_spectral_norm(p, check_probability=False)
    elif normalizer == "entmax15":
        sn = jacobian.entmax_spectral_norm(p, 1.5, check_probability=False)
    else:
        sn = jacobian.spectral_norm(p, check_probability=False)
    kw = dict(where=mask, check_probability=False)
    return {"spectral_norm": sn,
            "normalized_entropy": dilution.normalized_entropy(p, **kw),
            "max_weight": dilution.max_weight(p, **kw),
            "effective_support": dilution.effective_support(p, **kw)}


def attend(q: Any, k: Any, v: Any, *, mask: Any = None, causal: bool = False, normalizer: str = "softmax",
           k_top: Any = None, gamma: Any = None, implementation: Any = None, topk_method: Any = None,
           temperature_params: dict | None = None, ssa: SSA | None = None, dtype: Any = None,
           dropout: tuple | None = None, record: bool = False, weights: bool = False):
    """Attention in Flax's layout ``q [batch..., L, N, H]``, ``k, v [batch..., S, K, H]``, mask
    ``[batch..., N, L, S]`` (True = attend) through :func:`attention.dot_product_attention`.

    ``dropout``: ``(rate, rng, broadcast)`` when attention-weight dropout is active (the weights are
    then formed explicitly by the core's normaliser). Returns ``(out, record, weights)``: the
    output in ``q``'s layout, the statistics dict (``record=True``) and the attention weights
    ``[batch..., N, L, S]`` (``weights=True``), else None.
    """
    if dtype is not None:
        q, k, v = (jnp.asarray(a).astype(dtype) for a in (q, k, v))
    else:
        dt = jnp.result_type(q, k, v)
        q, k, v = (jnp.asarray(a).astype(dt) for a in (q, k, v))
    if q.ndim < 3 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(f"query, key, value must have shape [batch..., length, heads, head_dim] with the "
                         f"same number of axes, got {q.shape}, {k.shape}, {v.shape}")
    batch = q.shape[:-3]
    if k.shape[:-3] != batch or v.shape[:-3] != batch:
        raise ValueError(f"query, key, value must share their batch axes, got {q.shape}, {k.shape}, {v.shape}")
    B = int(np.prod(batch, dtype=np.int64))
    q4, k4, v4 = (a.reshape((B,) + a.shape[-3:]) for a in (q, k, v))
    m4 = _flatten_mask(mask, batch)
    _, T, N, H = q4.shape
    S, K = k4.shape[1], k4.shape[2]
    scale = 1.0 / math.sqrt(H)
    temps: dict[str, jax.Array] = {}
    if ssa is not None:
        qpos = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))
        kpos = jnp.broadcast_to(jnp.arange(S, dtype=jnp.int32), (B, S))
        um = None if m4 is None else jnp.broadcast_to(m4, (B, N, T, S))
        n_query, n_key = attention._ssa_counts(um, bool(causal), qpos, kpos, kpos, N)
        for site, proj, x, n, heads in (("query", q4, q4, n_query, N), ("value", v4, k4, n_key, K),
                                        ("key", k4, k4, n_key, K)):
            if site not in ssa.sites:
                continue
            cfg = ssa.config(heads, H, sites=(site,))
            t = {name: temperature_params[f"{site}_{name}"] for name in ("alpha", "u")
                 if f"{site}_{name}" in temperature_params}
            temps[site] = attention.ssa_temperatures({"temperature": {site: t}}, x[..., 0, :], config=cfg,
                                                     n_query=n, n_key=n,
                                                     projected={site: proj})[site]
    rec = None
    need_weights = record or weights or dropout is not None
    if need_weights:
        logits = attention_logits(q4, k4, scale=scale, query_temperature=temps.get("query"),
                                  key_temperature=temps.get("key"))
        full = visible(m4, bool(causal), (B, N, T, S))
    if dropout is not None:
        rate, rng, broadcast = dropout
        p = attention._normalize(logits, full, normalizer, k_top, gamma, topk_method)
        keep_shape = (1,) + p.shape[1:] if broadcast else p.shape
        keep = jax.random.bernoulli(rng, 1.0 - rate, keep_shape)
        p = jnp.where(keep, p / (1.0 - rate), 0.0).astype(v4.dtype)
        vt = attention._fold(v4, temps.get("value"))
        if K != N:
            vt = jnp.repeat(vt, N // K, axis=2)
        out = jnp.einsum("bnts,bsnh->btnh", p, vt)
    else:
        out = attention.dot_product_attention(
            q4, k4, v4, normalizer=normalizer, k_top=k_top, gamma=gamma, mask=m4, causal=bool(causal),
            query_temperature=temps.get("query"), key_temperature=temps.get("key"),
            value_temperature=temps.get("value"), implementation=implementation, topk_method=topk_method)
    if record:
        rec = {"logits": logits, "mask": full,
               **row_metrics(logits, full, normalizer, k_top, gamma, topk_method)}
        rec = {name: a.reshape(batch + a.shape[1:]) for name, a in rec.items()}
    w = None
    if weights:
        w = attention._normalize(logits, full, normalizer, k_top, gamma, topk_method)
        w = w.reshape(batch + w.shape[1:])
    return out.reshape(q.shape[:-1] + (v.shape[-1],)), rec, w


# ----------------------------------------------------------------------------------------------
# the recorder of the Equinox wrapper (a stack, so that captures nest)

_RECORDERS: list[list] = []


def recording() -> bool:
    return bool(_RECORDERS)


def push_record(name: str | None, rec: dict) -> None:
    _RECORDERS[-1].append((name, rec))
