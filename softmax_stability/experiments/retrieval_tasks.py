r"""Synthetic long-context retrieval tasks: passkey retrieval and multi-query associative recall.

Both tasks hide the information a query needs among filler tokens, so a model that retrieves by
attention has to concentrate its weight on one key among :math:`n` -- the setting in which
attention dilution (docs/notes/selective_attention.md §2.2) bites as the context grows. A model
is trained at one length and evaluated at longer ones by generating the same task at those
lengths.

One vocabulary serves both tasks (:class:`RetrievalTask` gives the token ranges):

* ``filler`` tokens ``0 .. n_filler-1`` (uniformly random background; with ``value_filler`` a
  share of the background is random value tokens instead);
* ``key`` tokens, ``value`` tokens;
* two markers: ``MARKER`` (passkey: "the pass key follows") and ``QUERY`` (passkey: "what was it?").

**Passkey retrieval** (length :math:`T \ge 3`): filler everywhere, ``MARKER`` at a uniformly random
position :math:`m \in [0, T-3]`, a random value token at :math:`m+1`, and ``QUERY`` at :math:`T-1`.
The answer to the query is the value; the *answer key* is position :math:`m+1`.

**Multi-query associative recall** (MQAR; length :math:`T \ge 2P + Q`): :math:`P` key-value pairs
(distinct keys, values drawn with replacement) written as adjacent tokens ``key value`` at random
non-overlapping places of the first :math:`T - Q` positions, filler elsewhere, then :math:`Q`
distinct keys of those pairs as queries at the last :math:`Q` positions. The answer to a query is
its pair's value; the answer key is the position of that value.

The model of :mod:`softmax_stability.experiments.ssa_decoder` sees each token together with its
predecessor (a token shift), so one attention layer can solve both tasks by matching "the token
before this one was the queried key (or ``MARKER``)" -- the answer key is then exactly one
position, as in the needle model of :func:`softmax_stability.dilution.needle_probability`.

Everything is generated in JAX from a PRNG key (jit/vmap friendly; ``batch_size`` and ``length``
static), and the labels are checked in ``tests/test_ssa_retrieval.py`` against a plain-Python
reference that scans the tokens.

Example:
    >>> import jax
    >>> task = RetrievalTask("passkey")
    >>> b = generate(jax.random.PRNGKey(0), task, batch_size=2, length=8)
    >>> b.tokens.shape, b.query_positions.tolist()
    ((2, 8), [[7], [7]])
    >>> bool((b.tokens[0, b.answer_positions[0, 0] - 1] == task.marker).item())
    True
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from softmax_stability._checks import check_int_in_range

__all__ = ["TASKS", "RetrievalTask", "RetrievalBatch", "generate", "pad_batch"]

TASKS = ("passkey", "mqar")


@dataclasses.dataclass(frozen=True)
class RetrievalTask:
    """A retrieval task and its vocabulary (hashable: static under ``jit``).

    Attributes:
      name: ``"passkey"`` or ``"mqar"``.
      n_filler: number of filler tokens, ``>= 1``.
      n_keys: number of key tokens, ``>= n_pairs`` (MQAR keys are distinct within a sequence).
      n_values: number of value tokens, ``>= 2``.
      n_pairs: MQAR key-value pairs per sequence, ``>= 1``.
      n_queries: MQAR queries per sequence, in ``[1, n_pairs]`` (passkey: always 1).
      value_filler: probability that a background position holds a random *value* token instead
        of a filler token (a haystack whose tokens look like answers), in ``[0, 1]``.

    Example:
      >>> t = RetrievalTask("mqar", n_pairs=4, n_queries=2)
      >>> t.vocab_size, t.min_length, t.num_queries
      (50, 10, 2)
    """

    name: str
    n_filler: int = 16
    n_keys: int = 16
    n_values: int = 16
    n_pairs: int = 4
    n_queries: int = 4
    value_filler: float = 0.0

    def __post_init__(self):
        if self.name not in TASKS:
            raise ValueError(f"name must be one of {TASKS}, got {self.name!r}")
        check_int_in_range(self.n_filler, "n_filler", 1)
        check_int_in_range(self.n_values, "n_values", 2)
        check_int_in_range(self.n_pairs, "n_pairs", 1)
        check_int_in_range(self.n_keys, "n_keys", self.n_pairs)
        check_int_in_range(self.n_queries, "n_queries", 1, self.n_pairs)
        vf = self.value_filler
        if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not (0.0 <= float(vf) <= 1.0):
            raise ValueError(f"value_filler must be a probability in [0, 1], got {vf!r}")

    @property
    def key_offset(self) -> int:
        return self.n_filler

    @property
    def value_offset(self) -> int:
        return self.n_filler + self.n_keys

    @property
    def marker(self) -> int:
        return self.n_filler + self.n_keys + self.n_values

    @property
    def query(self) -> int:
        return self.marker + 1

    @property
    def vocab_size(self) -> int:
        return self.query + 1

    @property
    def num_queries(self) -> int:
        return 1 if self.name == "passkey" else self.n_queries

    @property
    def min_length(self) -> int:
        """Shortest sequence that holds the task: 3 (passkey) or ``2 n_pairs + n_queries`` (MQAR)."""
        return 3 if self.name == "passkey" else 2 * self.n_pairs + self.n_queries


class RetrievalBatch(NamedTuple):
    """A batch (a pytree): ``tokens [B, T]``; per query ``[B, Q]``: ``query_positions`` (where the
    model must answer), ``answer_positions`` (the position of the answer's value token, the
    *answer key*) and ``answers`` (the value token to predict). All int32."""

    tokens: jax.Array
    query_positions: jax.Array
    answer_positions: jax.Array
    answers: jax.Array


def _background(key, task: RetrievalTask, T: int):
    kf, kb, kv = jax.random.split(key, 3)
    tokens = jax.random.randint(kf, (T,), 0, task.n_filler, jnp.int32)
    if task.value_filler > 0:
        vals = jax.random.randint(kv, (T,), 0, task.n_values, jnp.int32) + task.value_offset
        tokens = jnp.where(jax.random.bernoulli(kb, task.value_filler, (T,)), vals, tokens)
    return tokens


def _passkey_one(key, task: RetrievalTask, T: int):
    kf, km, kv = jax.random.split(key, 3)
    tokens = _background(kf, task, T)
    m = jax.random.randint(km, (), 0, T - 2, jnp.int32)
    v = jax.random.randint(kv, (), 0, task.n_values, jnp.int32) + task.value_offset
    tokens = tokens.at[m].set(task.marker).at[m + 1].set(v).at[T - 1].set(task.query)
    one = jnp.ones((1,), jnp.int32)
    return RetrievalBatch(tokens, one * (T - 1), one * (m + 1), one * v)


def _mqar_one(key, task: RetrievalTask, T: int):
    P, Q = task.n_pairs, task.n_queries
    C = T - Q
    kf, ks, kk, kv, kq = jax.random.split(key, 5)
    tokens = _background(kf, task, T)
    # P sorted distinct slots in [0, C-P), shifted by their rank: pairs never overlap and end < C
    starts = jnp.sort(jax.random.choice(ks, C - P, (P,), replace=False)).astype(jnp.int32)
    starts = starts + jnp.arange(P, dtype=jnp.int32)
    keys = jax.random.choice(kk, task.n_keys, (P,), replace=False).astype(jnp.int32) + task.key_offset
    vals = jax.random.randint(kv, (P,), 0, task.n_values, jnp.int32) + task.value_offset
    tokens = tokens.at[starts].set(keys).at[starts + 1].set(vals)
    pick = jax.random.choice(kq, P, (Q,), replace=False)
    qpos = C + jnp.arange(Q, dtype=jnp.int32)
    tokens = tokens.at[qpos].set(keys[pick])
    return RetrievalBatch(tokens, qpos, starts[pick] + 1, vals[pick])


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _generate(key, task: RetrievalTask, batch_size: int, length: int) -> RetrievalBatch:
    one = _passkey_one if task.name == "passkey" else _mqar_one
    return jax.vmap(lambda k: one(k, task, length))(jax.random.split(key, batch_size))


def generate(key: jax.Array, task: RetrievalTask, *, batch_size: int, length: int) -> RetrievalBatch:
    r"""Draw ``batch_size`` sequences of ``task`` at ``length`` tokens.

    Deterministic in ``key``; works under ``jax.jit``/``jax.vmap`` over ``key`` (``task``,
    ``batch_size`` and ``length`` are static).

    Args:
      key: PRNG key.
      task: the :class:`RetrievalTask`.
      batch_size: sequences, ``>= 1``.
      length: tokens per sequence, at least ``task.min_length`` (3 for passkey, ``2 n_pairs +
        n_queries`` for MQAR; ``ValueError`` naming ``length`` otherwise).

    Returns:
      :class:`RetrievalBatch`.

    Example:
      >>> import jax
      >>> b = generate(jax.random.PRNGKey(1), RetrievalTask("passkey"), batch_size=2, length=8)
      >>> b.answers.tolist() == [[int(b.tokens[i, b.answer_positions[i, 0]])] for i in range(2)]
      True
    """
    if not isinstance(task, RetrievalTask):
        raise TypeError(f"task must be a RetrievalTask, got {type(task).__name__}")
    batch_size = check_int_in_range(batch_size, "batch_size", 1)
    length = check_int_in_range(length, "length", max(2, task.min_length))
    return _generate(key, task, batch_size, length)


def pad_batch(batch: RetrievalBatch, length: int, pad_token: int = 0) -> RetrievalBatch:
    """Right-pad ``batch.tokens`` to ``length`` with ``pad_token`` (a filler token by default).

    In a causal model the outputs at the query positions do not depend on tokens after them, so a
    padded batch gives the same answers as the unpadded one; this lets sequences of several lengths
    share one compiled evaluation.

    Example:
      >>> import jax
      >>> b = generate(jax.random.PRNGKey(0), RetrievalTask("passkey"), batch_size=2, length=8)
      >>> pad_batch(b, 12).tokens.shape
      (2, 12)
    """
    T = batch.tokens.shape[-1]
    length = check_int_in_range(length, "length", T)
    tokens = jnp.pad(batch.tokens, [(0, 0)] * (batch.tokens.ndim - 1) + [(0, length - T)],
                     constant_values=pad_token)
    return batch._replace(tokens=tokens)
