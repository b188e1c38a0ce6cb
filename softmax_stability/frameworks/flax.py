r"""This library's attention as the ``attention_fn`` of Flax's own multi-head attention layers.

* :class:`Attention` -- a Flax NNX module for ``flax.nnx.MultiHeadAttention(attention_fn=...)``;
  it becomes a submodule of the layer, so SSA's temperature parameters (``nnx.Param``) train,
  split and serialise with the model.
* :class:`LinenAttention` -- the same for Linen's ``nn.MultiHeadDotProductAttention(attention_fn=...)``;
  the temperatures are ``self.param`` s under the layer's ``attention_fn`` scope.

Both take every normaliser of :func:`softmax_stability.attention.dot_product_attention`
(``"softmax"``, ``"topk"`` with ``k_top``, ``"top_n_gamma"`` with ``gamma``, ``"sparsemax"``,
``"entmax15"``) and optional SSA temperatures (:class:`softmax_stability.frameworks.SSA`). The
computation is that function (with softmax and no dropout: :func:`jax.nn.dot_product_attention`,
the fused path); this module only adapts Flax's conventions: ``query [batch..., L, heads, D]``,
``key``/``value [batch..., S, kv_heads, D]``, a ``mask`` broadcastable to
``[batch..., heads, L, S]`` with ``True`` = attend (0/1 masks are cast to bool), ``is_causal``,
``dtype`` (the computation dtype), attention-weight dropout (the weights are then formed
explicitly), and ``module=`` (Flax's ``sow_weights=True``: the attention weights are sown as
``attention_weights`` into that module, as Flax's own function does). ``precision`` is accepted
and ignored, as by Flax's own fused path. An additive ``bias`` is not supported (Flax's layers do
not pass one; use a mask). A query row with no visible key gives zeros (Flax's fused path gives
the mean of the values).

**Probing.** With ``collect_statistics`` on (:func:`softmax_stability.frameworks.probe.collect`
switches it for the duration of one forward pass) the module sows, as ``nnx.Intermediate`` /
Linen ``intermediates`` named ``attention_statistics``, the logits ``[batch..., heads, L, S]``, the
full mask and the per-row statistics of
:func:`softmax_stability.frameworks.probe.row_metrics`. A Linen module records whenever the
``intermediates`` collection is mutable.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from softmax_stability.frameworks import SSA
    >>> from softmax_stability.frameworks.flax import Attention
    >>> layer = nnx.MultiHeadAttention(2, 8, decode=False, rngs=nnx.Rngs(0),
    ...     attention_fn=Attention("topk", k_top=2, ssa=SSA(), num_heads=2, head_dim=4, rngs=nnx.Rngs(1)))
    >>> layer(jnp.ones((1, 4, 8)), is_causal=True).shape
    (1, 4, 8)
    >>> sorted(nnx.state(layer.attention_fn, nnx.Param))
    ['query_alpha', 'query_u', 'value_alpha', 'value_u']
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import linen as nn
from flax import nnx

from softmax_stability.frameworks import _core
from softmax_stability.frameworks._core import SSA

__all__ = ["Attention", "LinenAttention", "STATISTICS_NAME"]

#: the name under which the modules sow their statistics
STATISTICS_NAME = _core.STATISTICS_NAME


def _dropout_args(dropout_rate, deterministic, dropout_rng, broadcast_dropout):
    if dropout_rate is None or float(dropout_rate) == 0.0 or deterministic:
        return None
    if not (0.0 < float(dropout_rate) < 1.0):
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
    if dropout_rng is None:
        raise ValueError("dropout_rate > 0 with deterministic=False needs dropout_rng")
    return float(dropout_rate), dropout_rng, bool(broadcast_dropout)


def _check_bias(bias):
    if bias is not None:
        raise ValueError("bias is not supported by softmax_stability's attention_fn (Flax's attention "
                         "layers pass none); pass a boolean mask instead")


class Attention(nnx.Module):
    r"""A Flax NNX ``attention_fn`` running :func:`softmax_stability.attention.dot_product_attention`.

    .. math::
        \mathrm{out}_i = \sum_j \xi\big(s\,\tau_i\,q_i^\top k_j\big)_j\,\nu_j v_j ,

    :math:`\xi` the ``normalizer``, :math:`s = 1/\sqrt{D}`, :math:`\tau, \nu` the SSA query and
    value temperatures (1 without ``ssa``). Source: SSA arXiv:2411.12892 for the temperatures, as
    reconstructed in docs/notes/selective_attention.md §1.2-1.4 ([3P], unconfirmed).

    Args:
        normalizer: one of :data:`softmax_stability.attention.NORMALIZERS`.
        k_top: keys kept per query for ``"topk"`` (an int ``>= 1``; ``<= S`` is checked per call).
        gamma: exponent in ``(0, 1]`` for ``"top_n_gamma"``.
        ssa: optional :class:`softmax_stability.frameworks.SSA`; then ``num_heads``,
          ``head_dim`` (and ``num_kv_heads`` for grouped-query layers) and ``rngs`` are needed to
          create the temperature parameters (``nnx.Param`` named ``query_alpha``, ``query_u``,
          ``value_alpha``, ...).
        implementation, topk_method: as in :func:`softmax_stability.attention.dot_product_attention`.
        param_dtype: dtype of the temperature parameters.
        rngs: ``nnx.Rngs`` (its ``params`` stream initialises the temperatures).

    Attributes:
        collect_statistics: when True, each call sows the probe's record (see the module docstring).
    """

    def __init__(self, normalizer: str = "softmax", *, k_top: int | None = None, gamma: float | None = None,
                 ssa: SSA | None = None, num_heads: int | None = None, head_dim: int | None = None,
                 num_kv_heads: int | None = None, implementation: str | None = None,
                 topk_method: str | None = None, param_dtype: Any = jnp.float32,
                 rngs: nnx.Rngs | None = None):
        _core.check_options(normalizer, k_top, gamma, implementation, topk_method)
        self.normalizer = normalizer
        self.k_top = k_top
        self.gamma = gamma
        self.implementation = implementation
        self.topk_method = topk_method
        self.collect_statistics = False
        if ssa is not None and not isinstance(ssa, SSA):
            raise TypeError(f"ssa must be a softmax_stability.frameworks.SSA, got {type(ssa).__name__}")
        self.ssa = ssa
        self._temperature_names: tuple[str, ...] = ()
        if ssa is not None:
            if num_heads is None or head_dim is None or rngs is None:
                raise ValueError("ssa needs num_heads, head_dim and rngs (the temperatures are parameters "
                                 "of one shape per head)")
            init = ssa.init_params(rngs.params(), num_heads, head_dim, num_kv_heads, param_dtype)
            for name, val in init.items():
                setattr(self, name, nnx.Param(val))
            self._temperature_names = tuple(init)

    def _temperatures(self) -> dict | None:
        if self.ssa is None:
            return None
        return {name: getattr(self, name)[...] for name in self._temperature_names}

    def __call__(self, query, key, value, bias=None, mask=None, broadcast_dropout: bool = True,
                 dropout_rng=None, dropout_rate: float = 0.0, deterministic: bool = False, dtype=None,
                 precision=None, module=None, promote_dtype=None, is_causal: bool = False):
        _check_bias(bias)
        out, rec, w = _core.attend(
            query, key, value, mask=mask, causal=is_causal, normalizer=self.normalizer, k_top=self.k_top,
            gamma=self.gamma, implementation=self.implementation, topk_method=self.topk_method,
            temperature_params=self._temperatures(), ssa=self.ssa, dtype=dtype,
            dropout=_dropout_args(dropout_rate, deterministic, dropout_rng, broadcast_dropout),
            record=bool(self.collect_statistics), weights=module is not None)
        if rec is not None:
            self.sow(nnx.Intermediate, STATISTICS_NAME, rec)
        if module is not None:
            module.sow(nnx.Intermediate, "attention_weights", w)
        return out


class LinenAttention(nn.Module):
    r"""A Linen ``attention_fn`` running :func:`softmax_stability.attention.dot_product_attention`.

    Pass an instance: ``nn.MultiHeadDotProductAttention(..., attention_fn=LinenAttention("topk",
    k_top=4))``; Linen adopts it as the submodule ``attention_fn``, so with ``ssa`` its temperature
    parameters (shapes taken from the heads at ``init``) live in
    ``params["attention_fn"]``. With the ``intermediates`` collection mutable
    (``apply(..., mutable=["intermediates"])``) it sows the probe's record
    ``attention_statistics``.

    Attributes:
        normalizer, k_top, gamma, implementation, topk_method: as in :class:`Attention`.
        ssa: optional :class:`softmax_stability.frameworks.SSA`.
        param_dtype: dtype of the temperature parameters.
    """

    normalizer: str = "softmax"
    k_top: int | None = None
    gamma: float | None = None
    ssa: SSA | None = None
    implementation: str | None = None
    topk_method: str | None = None
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        _core.check_options(self.normalizer, self.k_top, self.gamma, self.implementation, self.topk_method)
        if self.ssa is not None and not isinstance(self.ssa, SSA):
            raise TypeError(f"ssa must be a softmax_stability.frameworks.SSA, got {type(self.ssa).__name__}")
        super().__post_init__()

    @nn.compact
    def __call__(self, query, key, value, bias=None, mask=None, broadcast_dropout: bool = True,
                 dropout_rng=None, dropout_rate: float = 0.0, deterministic: bool = False, dtype=None,
                 precision=None, module=None, is_causal: bool = False):
        _check_bias(bias)
        temps = None
        if self.ssa is not None:
            N, H = query.shape[-2], query.shape[-1]
            K = key.shape[-2]
            names = self.ssa.param_names()
            init_all = lambda rng: self.ssa.init_params(rng, N, H, K, self.param_dtype)  # noqa: E731
            temps = {name: self.param(name, lambda rng, n=name: init_all(rng)[n]) for name in names}
        record = self.is_mutable_collection("intermediates")
        out, rec, w = _core.attend(
            query, key, value, mask=mask, causal=is_causal, normalizer=self.normalizer, k_top=self.k_top,
            gamma=self.gamma, implementation=self.implementation, topk_method=self.topk_method,
            temperature_params=temps, ssa=self.ssa, dtype=dtype,
            dropout=_dropout_args(dropout_rate, deterministic, dropout_rng, broadcast_dropout),
            record=record, weights=module is not None)
        if rec is not None:
            self.sow("intermediates", STATISTICS_NAME, rec)
        if module is not None:
            module.sow("intermediates", "attention_weights", w)
        return out
