r"""A drop-in for ``equinox.nn.MultiheadAttention`` running this library's attention core.

Equinox's layer has no ``attention_fn`` hook, so :class:`MultiheadAttention` wraps one: it keeps
that layer's projections (``query_proj``, ``key_proj``, ``value_proj``, ``output_proj``: same
parameters, same initialisation) and its call signature
``(query, key_, value, mask=None, *, key=None, inference=None, deterministic=None,
process_heads=None)`` on unbatched ``[seq, features]`` inputs (``jax.vmap`` it over a batch, as
any Equinox layer), and replaces the per-head softmax by
:func:`softmax_stability.attention.dot_product_attention` with any normaliser and optional SSA
temperatures, which are fields of the module (so they train and serialise with it). ``mask`` is
``[q_seq, kv_seq]`` or ``[num_heads, q_seq, kv_seq]``, ``True`` = attend. A query row with no
visible key gives zeros (Equinox's own layer gives the mean of the values). Dropout on the
attention weights (``dropout_p > 0`` and ``inference=False``) forms the weights explicitly.

**Probing.** Inside :func:`softmax_stability.frameworks.probe.capture` each call records the
logits, the mask and the per-row statistics under the module's ``name`` (or its call order);
elsewhere the module records nothing and costs nothing extra.

Example:
    >>> import jax, jax.numpy as jnp
    >>> import equinox as eqx
    >>> from softmax_stability.frameworks import SSA
    >>> from softmax_stability.frameworks.equinox import MultiheadAttention
    >>> mha = MultiheadAttention(2, 8, normalizer="sparsemax", ssa=SSA(), key=jax.random.PRNGKey(0))
    >>> x = jnp.ones((4, 8))
    >>> mha(x, x, x).shape
    (4, 8)
    >>> sorted(mha.temperatures)
    ['query_alpha', 'query_u', 'value_alpha', 'value_u']
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from softmax_stability.frameworks import _core
from softmax_stability.frameworks._core import SSA

__all__ = ["MultiheadAttention"]


class MultiheadAttention(eqx.Module):
    r"""``eqx.nn.MultiheadAttention`` with :func:`softmax_stability.attention.dot_product_attention`.

    .. math::
        \mathrm{out}_i = W_o\Big[\sum_j \xi\big(s\,\tau_i\,q_i^\top k_j\big)_j\,\nu_j v_j\Big]_{\text{heads}},

    :math:`s = 1/\sqrt{\text{qk\_size}}`, :math:`\tau, \nu` the SSA query and value temperatures
    (1 without ``ssa``; docs/notes/selective_attention.md §1.2-1.4, [3P], unconfirmed).

    Args:
        num_heads, query_size, key_size, value_size, output_size, qk_size, vo_size: as
          ``eqx.nn.MultiheadAttention`` (which builds the projections).
        use_query_bias, use_key_bias, use_value_bias, use_output_bias, dropout_p, inference, dtype: as
          ``eqx.nn.MultiheadAttention``.
        normalizer, k_top, gamma, implementation, topk_method: as in
          :func:`softmax_stability.attention.dot_product_attention`.
        ssa: optional :class:`softmax_stability.frameworks.SSA`; its parameters are the field
          ``temperatures`` (a dict of arrays).
        name: the name the probe records this layer under.
        key: PRNG key.

    Use :meth:`from_module` to wrap an existing (e.g. trained) ``eqx.nn.MultiheadAttention``.
    """

    mha: eqx.nn.MultiheadAttention
    temperatures: dict | None
    normalizer: str = eqx.field(static=True)
    k_top: int | None = eqx.field(static=True)
    gamma: float | None = eqx.field(static=True)
    ssa: SSA | None = eqx.field(static=True)
    implementation: str | None = eqx.field(static=True)
    topk_method: str | None = eqx.field(static=True)
    name: str | None = eqx.field(static=True)

    def __init__(self, num_heads: int, query_size: int, key_size: int | None = None,
                 value_size: int | None = None, output_size: int | None = None, qk_size: int | None = None,
                 vo_size: int | None = None, use_query_bias: bool = False, use_key_bias: bool = False,
                 use_value_bias: bool = False, use_output_bias: bool = False, dropout_p: float = 0.0,
                 inference: bool = False, dtype: Any = None, *, normalizer: str = "softmax",
                 k_top: int | None = None, gamma: float | None = None, ssa: SSA | None = None,
                 implementation: str | None = None, topk_method: str | None = None,
                 name: str | None = None, key: jax.Array, _mha: eqx.nn.MultiheadAttention | None = None):
        _core.check_options(normalizer, k_top, gamma, implementation, topk_method)
        if ssa is not None and not isinstance(ssa, SSA):
            raise TypeError(f"ssa must be a softmax_stability.frameworks.SSA, got {type(ssa).__name__}")
        k_mha, k_temp = jax.random.split(key)
        if _mha is None:
            _mha = eqx.nn.MultiheadAttention(
                num_heads, query_size, key_size, value_size, output_size, qk_size, vo_size, use_query_bias,
                use_key_bias, use_value_bias, use_output_bias, dropout_p, inference, dtype, key=k_mha)
        self.mha = _mha
        if _mha.qk_size != _mha.vo_size and ssa is not None and ssa.value:
            raise ValueError(f"a value temperature needs qk_size == vo_size (the token part reuses the "
                             f"head width), got {_mha.qk_size} and {_mha.vo_size}")
        self.normalizer, self.k_top, self.gamma = normalizer, k_top, gamma
        self.implementation, self.topk_method, self.ssa, self.name = implementation, topk_method, ssa, name
        wdtype = _mha.query_proj.weight.dtype
        self.temperatures = (None if ssa is None else
                             ssa.init_params(k_temp, _mha.num_heads, _mha.qk_size, dtype=wdtype))

    @classmethod
    def from_module(cls, mha: eqx.nn.MultiheadAttention, *, key: jax.Array | None = None,
                    **options) -> "MultiheadAttention":
        """Wrap an existing ``eqx.nn.MultiheadAttention`` (its parameters are kept as they are).

        ``options``: ``normalizer``, ``k_top``, ``gamma``, ``ssa``, ``implementation``,
        ``topk_method``, ``name``; ``key`` initialises the SSA temperatures (needed with ``ssa``).
        """
        if not isinstance(mha, eqx.nn.MultiheadAttention):
            raise TypeError(f"mha must be an eqx.nn.MultiheadAttention, got {type(mha).__name__}")
        if options.get("ssa") is not None and key is None:
            raise ValueError("from_module with ssa needs key (to initialise the temperatures)")
        return cls(mha.num_heads, mha.query_size, key=jax.random.PRNGKey(0) if key is None else key,
                   _mha=mha, **options)

    def __call__(self, query, key_, value, mask=None, *, key=None, inference: bool | None = None,
                 deterministic: bool | None = None, process_heads=None):
        m = self.mha
        if deterministic is not None:
            inference = deterministic
        if query.ndim != 2 or key_.ndim != 2 or value.ndim != 2:
            raise ValueError(f"query, key_, value must be unbatched [seq, features] (jax.vmap over a batch), "
                             f"got shapes {query.shape}, {key_.shape}, {value.shape}")
        if key_.shape[0] != value.shape[0]:
            raise ValueError("key and value must both be sequences of equal length.")
        q = m._project(m.query_proj, query)
        k = m._project(m.key_proj, key_)
        v = m._project(m.value_proj, value)
        if process_heads is not None:
            shapes = (q.shape, k.shape, v.shape)
            q, k, v = process_heads(q, k, v)
            if (q.shape, k.shape, v.shape) != shapes:
                raise ValueError("process_heads must not change the shape of the heads.")
        if mask is not None:
            mask = jnp.asarray(mask)
            if mask.ndim not in (2, 3):
                raise ValueError(f"mask must have shape [q_seq, kv_seq] or [num_heads, q_seq, kv_seq], "
                                 f"got {mask.shape}")
        inference = m.dropout.inference if inference is None else inference
        p = m.dropout.p
        dropout = None
        if p > 0 and not inference:
            if key is None:
                raise RuntimeError("dropout_p > 0 with inference=False needs key=")
            dropout = (float(p), key, False)
        record = _core.recording()
        # one batch axis for the library's layout: [1, seq, heads, size]
        out, rec, _ = _core.attend(q[None], k[None], v[None], mask=None if mask is None else mask[None],
                                   normalizer=self.normalizer, k_top=self.k_top, gamma=self.gamma,
                                   implementation=self.implementation, topk_method=self.topk_method,
                                   temperature_params=self.temperatures, ssa=self.ssa, dropout=dropout,
                                   record=record)
        if rec is not None:
            _core.push_record(self.name, {n: a[0] for n, a in rec.items()})
        return jax.vmap(m.output_proj)(out[0].reshape(query.shape[0], -1))
