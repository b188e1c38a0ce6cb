r"""Dropout whose mask costs one fused kernel: Threefry-2x32 counters, 16-bit keep decisions.

.. math::
    \mathrm{dropout}(x)_{r,j} = \frac{x_{r,j}}{1-\hat p}\,[u_{r,j} \ge t], \qquad
    t = \mathrm{round}(2^{16} p), \quad \hat p = t / 2^{16},

where :math:`u_{r,j}` is a 16-bit slice of the Threefry-2x32 hash (20 rounds; Salmon et al.,
*Parallel random numbers: as easy as 1, 2, 3*, SC 2011) of the counter pair
:math:`(\lfloor j/4\rfloor,\ r_0 + r)` under the key: one hash gives 64 bits, i.e. the decisions
for four consecutive elements of row :math:`r`. Row :math:`r` is the sample index within the batch
and :math:`r_0` an offset (``row_offset``), so the mask of a sample does not depend on how a batch
is split across devices: a batch computed in two halves with offsets 0 and ``B/2`` gets exactly
the mask of the whole batch.

Why not :func:`jax.random.bernoulli`: with the default partitionable Threefry it hashes once per
element (32 bits used, 64 computed), and XLA:CPU lowers JAX's Threefry as a rolled loop of five
iterations over the whole array, each a separate pass through memory. Here the 20 rounds are
written out in ``jnp`` so XLA fuses hash, bit slicing and comparison into one elementwise kernel,
and each hash serves four elements. In the SF training step (5 blocks, 16 dropout sites, batch 25,
length 40, ``d = 64``) dropout went from 5.0 ms to 0.9 ms of a 20.8 ms step on 2 CPU cores
(``benchmarks/RESULTS.md``).

The keep probability is :math:`1-\hat p` with :math:`\hat p` the rate rounded to a multiple of
:math:`2^{-16}` (0.01 becomes 655/65536 = 0.0099945); kept values are scaled by
:math:`1/(1-\hat p)`, so the expectation is exact. ``jax.random.bernoulli`` compares a float32
uniform, i.e. it rounds the rate to a multiple of :math:`2^{-23}`.

The hash equals :func:`jax.extend.random.threefry_2x32` bit for bit (``tests/test_dropout.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["threefry2x32", "keep_mask", "dropout", "effective_rate"]

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotl(x: jax.Array, r: int) -> jax.Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(key0: jax.Array, key1: jax.Array, x0: jax.Array, x1: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 with 20 rounds on counter pairs ``(x0, x1)`` (uint32, broadcastable).

    The same function as :func:`jax.extend.random.threefry_2x32` (which takes the pairs as the two
    halves of one count array), written out so XLA fuses it (module doc).

    Args:
      key0, key1: the two uint32 key words (``jax.random.key_data(key)``).
      x0, x1: uint32 counters.

    Returns:
      The two uint32 output words.

    Example:
      >>> from jax.extend.random import threefry_2x32
      >>> k = jax.random.key_data(jax.random.key(0))
      >>> c = jnp.arange(4, dtype=jnp.uint32)
      >>> a, b = threefry2x32(k[0], k[1], c[:2], c[2:])
      >>> bool(jnp.all(jnp.concatenate([a, b]) == threefry_2x32(k, c)))
      True
    """
    ks = (key0, key1, key0 ^ key1 ^ _PARITY)
    x0 = x0 + ks[0]
    x1 = x1 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r) ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _check_rate(rate: float) -> float:
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate!r}")
    return rate


def effective_rate(rate: float) -> float:
    """The drop probability actually used for ``rate``: ``round(rate * 2**16) / 2**16``.

    Example:
      >>> effective_rate(0.01)
      0.0099945068359375
    """
    return round(_check_rate(rate) * 65536) / 65536.0


def _key_words(key: jax.Array) -> jax.Array:
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    if key.shape != (2,) or key.dtype != jnp.uint32:
        raise ValueError(f"key must be a Threefry key (jax.random.key or PRNGKey), got {key.dtype}{list(key.shape)}")
    return key


def keep_mask(key: jax.Array, shape: tuple[int, ...], rate: float, *, row_offset: jax.Array | int = 0) -> jax.Array:
    """Boolean keep mask of ``shape`` (``True`` = keep) with drop probability :func:`effective_rate`.

    Args:
      key: a Threefry PRNG key (``jax.random.key(s)`` or ``jax.random.PRNGKey(s)``).
      shape: ``(rows, ...)``; rows are samples, each hashed on its own counter (module doc).
      rate: drop probability in ``[0, 1)``.
      row_offset: global index of row 0 (int or traced int32 scalar); the mask of row ``r`` is
        that of row ``row_offset + r`` of a larger batch.

    Returns:
      ``bool`` array of ``shape``.

    Example:
      >>> m = keep_mask(jax.random.key(1), (4, 8), 0.5)
      >>> m.shape, m.dtype
      ((4, 8), dtype('bool'))
    """
    rate = _check_rate(rate)
    shape = tuple(int(s) for s in shape)
    if len(shape) < 1:
        raise ValueError("shape needs a leading row axis")
    kw = _key_words(key)
    rows, per_row = shape[0], int(np.prod(shape[1:], dtype=np.int64))
    groups = -(-per_row // 4)
    g = jax.lax.broadcasted_iota(jnp.uint32, (rows, groups), 1)
    r = jax.lax.broadcasted_iota(jnp.uint32, (rows, groups), 0) + jnp.asarray(row_offset).astype(jnp.uint32)
    o0, o1 = threefry2x32(kw[0], kw[1], g, r)
    m = np.uint32(0xFFFF)
    u = jnp.stack([o0 & m, o0 >> np.uint32(16), o1 & m, o1 >> np.uint32(16)], axis=-1)
    u = u.reshape(rows, 4 * groups)[:, :per_row].reshape(shape)
    return u >= np.uint32(round(rate * 65536))


def dropout(x: jax.Array, rate: float, key: jax.Array | None, *, row_offset: jax.Array | int = 0) -> jax.Array:
    r"""Inverted dropout of ``x`` (rows = leading axis): kept entries scaled by :math:`1/(1-\hat p)`.

    ``key=None`` or ``rate == 0`` returns ``x`` unchanged (evaluation mode).

    Example:
      >>> x = jnp.ones((2, 1000))
      >>> y = dropout(x, 0.5, jax.random.key(0))
      >>> sorted({float(v) for v in jnp.unique(y)})
      [0.0, 2.0]
    """
    rate = _check_rate(rate)
    if key is None or rate == 0.0:
        return x
    q = 1.0 - effective_rate(rate)
    keep = keep_mask(key, x.shape, rate, row_offset=row_offset)
    return jnp.where(keep, x / jnp.asarray(q, x.dtype), jnp.zeros_like(x))
