r"""The Semantic Focus encoder classifier as pure JAX functions over a parameter pytree.

Mirrors the forward pass of the SF authors' PyTorch model (Ram et al. 2025,
``github:rithram/spartan``: ``tf_model.py``, ``tf_encoder.py``, ``tf_encoder_layer.py``,
``multihead_attention.py``; ``docs/notes/semantic_focus.md`` §1.1):

.. math::
    x^{(0)} = \sqrt d\, E[t] + \mathrm{PE}, \qquad
    x \leftarrow x + \mathrm{Attn}(\mathrm{LN}(x)), \qquad
    x \leftarrow x + W_2\,\sigma(W_1 \mathrm{LN}(x) + b_1) + b_2,

with LayerNorm without affine parameters (``eps = 0`` before the first block's attention, ``1e-5``
elsewhere), sinusoidal positions, one or more heads each of width ``d`` (not ``d/H``) and an output
projection, logits :math:`\tau (W_Q x_i + b_Q)^\top (W_K x_j + b_K)/\sqrt d`, then mean pooling
over *all* tokens (PAD and global tokens included, no final LayerNorm) and a linear classifier.
The attention normaliser/mask is one of :mod:`softmax_stability.experiments.variants`, computed
by the library's attention core :func:`softmax_stability.attention.dot_product_attention`: its
outputs equal the model's former private path (logits, then :mod:`softmax_stability.maps`) to
float32 rounding (``tests/test_experiments.py``), an epoch of training gave bit-identical
parameters for FULL and TOPK(5), and the jitted training step was measured no slower.

Initialisation follows PyTorch's defaults as the authors use them: every ``Linear`` has weights
and biases uniform in :math:`\pm 1/\sqrt{\text{fan-in}}`, the embedding and the classifier weight
are uniform in :math:`\pm 0.1`, the classifier bias is 0. Weights are stored as ``[in, out]``.

Dropout (rate ``dropout``, default 0.01 as the authors) is applied after the positional encoding,
on the MLP hidden layer before the activation, and on both residual branches, in training mode
only, by :func:`softmax_stability.experiments.dropout.dropout` (one fused hash kernel per site; the
rate is rounded to a multiple of :math:`2^{-16}`, 0.01 to 0.0099945). **Difference from the authors:** they also drop attention *probabilities*; here attention is
computed by the library's attention core, which returns outputs only, so that dropout is omitted.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability._checks import check_int_in_range
from softmax_stability.experiments.dropout import dropout as _dropout
from softmax_stability.experiments.variants import Variant, parse_variant

__all__ = ["ModelConfig", "ACTIVATIONS", "init_params", "apply", "loss_and_accuracy", "positional_encoding",
           "static_mask", "MODEL_VERSION", "param_count"]

MODEL_VERSION = "sf-model-3"  # bump when the forward pass or the initialisation changes (cache key);
# 2: attention by softmax_stability.attention (masked variants round differently)
# 3: dropout masks from softmax_stability.experiments.dropout (per-sample Threefry counters), RND
#    masks drawn per sample

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # torch.nn.GELU() default: exact erf form
    "mish": lambda x: x * jnp.tanh(jax.nn.softplus(x)),
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Static model description (hashable; a jit static argument).

    ``seq_len`` is the length the model sees (after :func:`~softmax_stability.experiments.tasks.
    prepare_inputs` padding and global tokens); ``n_tokens`` the embedding rows (symbols + PAD +
    global tokens)."""

    n_tokens: int
    n_classes: int
    seq_len: int
    variant: Variant = Variant("FULL")
    d: int = 64
    d_mlp: int = 64
    heads: int = 1
    blocks: int = 5
    activation: str = "relu"
    dropout: float = 0.01
    inv_temp: float = 1.0
    ln_eps: float = 1e-5

    def __post_init__(self):
        object.__setattr__(self, "variant", parse_variant(self.variant))
        check_int_in_range(self.n_tokens, "n_tokens", 1)
        check_int_in_range(self.n_classes, "n_classes", 2)
        check_int_in_range(self.seq_len, "seq_len", 1)
        for name in ("d", "d_mlp", "heads", "blocks"):
            check_int_in_range(getattr(self, name), name, 1)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not (math.isfinite(self.inv_temp) and self.inv_temp > 0):
            raise ValueError(f"inv_temp must be finite and > 0, got {self.inv_temp!r}")
        v = self.variant
        if v.k is not None and v.k > self.seq_len - v.global_tokens:
            raise ValueError(f"mask size k={v.k} of {v.name} is larger than the sequence "
                             f"({self.seq_len - v.global_tokens} tokens); use k <= {self.seq_len - v.global_tokens}")


def positional_encoding(n: int, d: int, dtype=np.float32) -> np.ndarray:
    r"""Sinusoidal positions: :math:`PE_{p,2i} = \sin(p\,10000^{-2i/d})`, :math:`PE_{p,2i+1} =
    \cos(p\,10000^{-2i/d})` (Vaswani et al. 2017, as the authors' ``PositionalEncoding``),
    computed in float64 and returned as ``dtype``.

    Example:
      >>> [round(float(v), 3) for v in positional_encoding(2, 4)[1]]
      [0.841, 0.54, 0.01, 1.0]
    """
    pos = np.arange(n, dtype=np.float64)[:, None]
    div = np.exp(np.arange(0, d, 2, dtype=np.float64) * (-math.log(10000.0) / d))
    pe = np.zeros((n, d), dtype=np.float64)
    pe[:, 0::2] = np.sin(pos * div)
    pe[:, 1::2] = np.cos(pos * div)[:, : d // 2]
    return pe.astype(dtype)


def static_mask(cfg: ModelConfig) -> np.ndarray | None:
    """The input-agnostic mask of BAND/BLOC (with global tokens), else None."""
    from softmax_stability import masks

    v = cfg.variant
    core = cfg.seq_len - v.global_tokens
    if v.kind == "BAND":
        return masks.band_mask(core, v.k, global_tokens=v.global_tokens)
    if v.kind == "BLOC":
        return masks.block_mask(core, v.k, global_tokens=v.global_tokens)
    return None


def _linear(key, fan_in: int, fan_out: int) -> dict[str, jax.Array]:
    kw, kb = jax.random.split(key)
    bound = 1.0 / math.sqrt(fan_in)
    return {"w": jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound, bound),
            "b": jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound)}


def init_params(key: jax.Array, cfg: ModelConfig) -> dict[str, Any]:
    """Parameters of the SF classifier (float32), PyTorch-default initialisation (module doc).

    The blocks' parameters are stacked along a leading axis of size ``cfg.blocks`` (the forward
    pass scans over them); ``params["blocks"]["attn"]["wq"]["w"][i]`` is block ``i``'s query weight.

    Example:
      >>> cfg = ModelConfig(n_tokens=3, n_classes=2, seq_len=8, d=8, d_mlp=8, blocks=2)
      >>> p = init_params(jax.random.PRNGKey(0), cfg)
      >>> p["blocks"]["attn"]["wq"]["w"].shape, p["head"]["w"].shape
      ((2, 8, 8), (8, 2))
    """
    d, hd = cfg.d, cfg.heads * cfg.d
    keys = jax.random.split(key, cfg.blocks + 2)
    blocks = []
    for i in range(cfg.blocks):
        kq, kk, kv, ko, k1, k2 = jax.random.split(keys[i], 6)
        blocks.append({
            "attn": {"wq": _linear(kq, d, hd), "wk": _linear(kk, d, hd), "wv": _linear(kv, d, hd),
                     "wo": _linear(ko, hd, d)},
            "mlp": {"fc1": _linear(k1, d, cfg.d_mlp), "fc2": _linear(k2, cfg.d_mlp, d)},
        })
    ke, kh = jax.random.split(keys[-1])
    return {
        "embed": jax.random.uniform(ke, (cfg.n_tokens, d), jnp.float32, -0.1, 0.1),
        "blocks": jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *blocks),
        "head": {"w": jax.random.uniform(kh, (d, cfg.n_classes), jnp.float32, -0.1, 0.1),
                 "b": jnp.zeros((cfg.n_classes,), jnp.float32)},
    }


def param_count(params) -> int:
    """Number of scalar parameters."""
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))


def _layer_norm(x: jax.Array, eps: float) -> jax.Array:
    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=-1, keepdims=True)  # biased, as torch LayerNorm
    return (x - mu) * jax.lax.rsqrt(var + eps)


def _dense(p, x):
    return x @ p["w"] + p["b"]


def _attend(q, k, v, cfg: ModelConfig, mask, key, return_logits: bool = False, sample_offset=0):
    """Attention outputs ``[B, n, H, d]`` from ``q, k, v`` of that shape, for cfg's variant, by
    :func:`softmax_stability.attention.dot_product_attention` (FULL, BAND, BLOC: softmax with
    the static mask; TOPK: ``normalizer="topk"``; BOTK, RND: softmax under their mask).

    Also returns the logits ``[B, H, n, n]`` (pre-mask) when ``return_logits`` (the SF
    statistics; else None, so a training step does not compute them twice).
    """
    from softmax_stability import attention
    from softmax_stability import masks as masks_mod

    scale = cfg.inv_temp / math.sqrt(q.shape[-1])
    kind, kk = cfg.variant.kind, cfg.variant.k
    B, n, H, _ = q.shape
    logits = None
    if return_logits or (kind == "BOTK" and kk < n):
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * scale
    kw: dict[str, Any] = {}
    if kind == "TOPK" and kk < n:
        kw = {"normalizer": "topk", "k_top": kk}
    elif kind == "BOTK" and kk < n:
        kw = {"mask": masks_mod.topk_mask(-logits, kk)}
    elif kind == "RND":
        if key is None:
            raise ValueError("RND(k) attention needs a PRNG key (pass key= to apply)")
        # one key per sample (by its index in the whole batch), so a batch split across devices
        # draws the same masks as the whole batch
        skeys = jax.vmap(lambda i: jax.random.fold_in(key, i))(sample_offset + jnp.arange(B, dtype=jnp.int32))
        idx = jax.vmap(lambda kk_: jax.random.randint(kk_, (H, n, kk), 0, n))(skeys)
        kw = {"mask": jnp.any(jax.nn.one_hot(idx, n, dtype=jnp.bool_), axis=-2)}
    elif kind in ("BAND", "BLOC"):
        kw = {"mask": jnp.asarray(mask)}
    return attention.dot_product_attention(q, k, v, scale=scale, **kw), logits


def apply(params, tokens: jax.Array, cfg: ModelConfig, *, key: jax.Array | None = None, train: bool = False,
          return_logits: bool = False, sample_offset: jax.Array | int = 0):
    """Class logits of the SF classifier for ``tokens`` ``[B, seq_len]`` (int).

    Args:
      params: from :func:`init_params`.
      tokens: integer array ``[batch, cfg.seq_len]``.
      cfg: the :class:`ModelConfig` (static).
      key: PRNG key; needed for dropout (``train=True``) and for RND attention.
      train: dropout on (training mode) or off (evaluation mode).
      return_logits: also return the attention logits of every block, ``[blocks, B, H, n, n]``.
      sample_offset: index of ``tokens[0]`` in a larger batch (int or traced scalar). Dropout and
        RND masks are drawn per sample from its index, so a batch computed in slices with their
        offsets (data parallelism) gets the masks of the whole batch.

    Returns:
      ``[B, n_classes]`` float32 class logits (and the attention logits).

    Example:
      >>> cfg = ModelConfig(n_tokens=3, n_classes=2, seq_len=8, d=8, d_mlp=8, blocks=2, variant="TOPK(3)")
      >>> p = init_params(jax.random.PRNGKey(0), cfg)
      >>> apply(p, jnp.zeros((4, 8), jnp.int32), cfg).shape
      (4, 2)
    """
    B, n = tokens.shape
    if n != cfg.seq_len:
        raise ValueError(f"tokens must have shape [batch, {cfg.seq_len}], got {tokens.shape}")
    rate = float(cfg.dropout) if train else 0.0
    if key is None:
        k0, kblocks = None, None
    else:
        k0, kb = jax.random.split(key)
        kblocks = jax.random.split(kb, cfg.blocks)
    mask = static_mask(cfg)
    act = ACTIVATIONS[cfg.activation]
    dt = params["embed"].dtype  # float32 as initialised; float64 parameters run in float64 (tests)
    x = params["embed"][tokens] * math.sqrt(cfg.d) + positional_encoding(n, cfg.d, dt)
    x = _dropout(x, rate, k0, row_offset=sample_offset)
    # LayerNorm eps before attention: 0 in the first block (as the authors), ln_eps elsewhere
    eps_attn = jnp.asarray([0.0] + [cfg.ln_eps] * (cfg.blocks - 1), dt)

    def block(x, inp):
        # a scan over blocks also stops XLA:CPU from fusing the backward residual chain across
        # blocks (which recomputes it once per block: ~3x slower steps)
        blk, eps, kblk = inp
        ka, kd1, kd2, kd3 = (None,) * 4 if kblk is None else tuple(jax.random.split(kblk, 4))
        h = _layer_norm(x, eps)
        a = blk["attn"]
        # one [d, 3 H d] product instead of three (fewer, larger matmuls on CPU)
        w_qkv = jnp.concatenate([a["wq"]["w"], a["wk"]["w"], a["wv"]["w"]], axis=1)
        b_qkv = jnp.concatenate([a["wq"]["b"], a["wk"]["b"], a["wv"]["b"]])
        q, k, v = jnp.split((h @ w_qkv + b_qkv).reshape(B, n, 3, cfg.heads, cfg.d), 3, axis=2)
        q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]
        o, lg = _attend(q, k, v, cfg, mask, ka, return_logits, sample_offset)
        x = x + _dropout(_dense(a["wo"], o.reshape(B, n, cfg.heads * cfg.d)), rate, kd1, row_offset=sample_offset)
        h = _layer_norm(x, cfg.ln_eps)
        m = blk["mlp"]
        hid = act(_dropout(_dense(m["fc1"], h), rate, kd2, row_offset=sample_offset))
        x = x + _dropout(_dense(m["fc2"], hid), rate, kd3, row_offset=sample_offset)
        return x, lg

    x, all_logits = jax.lax.scan(block, x, (params["blocks"], eps_attn, kblocks))
    out = _dense(params["head"], jnp.mean(x, axis=1))
    if return_logits:
        return out, all_logits
    return out


def loss_and_accuracy(class_logits: jax.Array, labels: jax.Array, weights: jax.Array | None = None):
    """Mean cross-entropy and accuracy (fraction), optionally weighted per sample (0/1 weights mark
    padding in a partial batch).

    Example:
      >>> l, a = loss_and_accuracy(jnp.array([[2.0, 0.0], [0.0, 1.0]]), jnp.array([0, 0]))
      >>> round(float(a), 2)
      0.5
    """
    logp = jax.nn.log_softmax(class_logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]
    correct = (jnp.argmax(class_logits, axis=-1) == labels).astype(jnp.float32)
    if weights is None:
        return jnp.mean(nll), jnp.mean(correct)
    w = weights.astype(jnp.float32)
    tot = jnp.maximum(jnp.sum(w), 1.0)
    return jnp.sum(w * nll) / tot, jnp.sum(w * correct) / tot
