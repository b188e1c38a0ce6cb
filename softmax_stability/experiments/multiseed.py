r"""Many seeds of one SF configuration trained as one jitted program.

:class:`MultiSeedTrainer` is :class:`~softmax_stability.experiments.training.Trainer` with a
leading seed axis :math:`s = 1..S` on everything a run owns -- parameters, optimiser state, PRNG
key (so initialisation, data order, dropout and RND masks), training and held-out sets -- and
``jax.vmap`` of the single-run epoch over it:

.. math::
    (\theta_s, o_s) \leftarrow \mathrm{epoch}(\theta_s, o_s, k_s, X_s, Y_s), \qquad s = 1..S,

one dispatch per epoch for all seeds. The optimiser is the single run's
(:func:`~softmax_stability.experiments.training.make_optimizer`, ``docs/notes/semantic_focus.md``
§4); seed ``s`` computes exactly what its single run computes, only XLA may order the sums of a
batched matrix product differently, so results agree to rounding (``tests/test_multiseed.py``:
float64, relative 1e-10).

Performance: batched over seeds, each matrix product is S times larger and runs at a higher
rate, but measured on 2 CPU cores the whole vmapped epoch was no faster per seed than one seed
(S = 10: 1.5x slower per seed-epoch than S = 1; ``benchmarks/RESULTS.md``), so on a CPU the
runner keeps single runs by default (``run_many(seed_batch=False)``); a seed batch is the way to
fill an accelerator with this small model.

Several devices (``devices=[...]``): the seeds are split across them (``shard_map`` over the seed
axis, no communication: seeds are independent), the seed count padded with copies of the last seed
to a multiple of the device count (the copies' results are dropped).

:func:`softmax_stability.experiments.runner.run_seeds` uses this trainer to run the seeds of one
configuration with the runner's cache: each seed is stored, checkpointed and resumed as an
ordinary single-run entry.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from softmax_stability.experiments.sf_model import ModelConfig
from softmax_stability.experiments.training import TrainConfig, _check_devices, _epoch_impl, _eval_impl, make_optimizer

__all__ = ["MultiSeedTrainer", "stack_trees", "unstack_tree"]

_SEED_AXIS = "seeds"


def stack_trees(trees):
    """Stack a list of pytrees (one per seed) along a new leading axis.

    Example:
      >>> stack_trees([{"a": np.zeros(2)}, {"a": np.ones(2)}])["a"].shape
      (2, 2)
    """
    trees = list(trees)
    if not trees:
        raise ValueError("trees must be a non-empty sequence of pytrees")
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)


def unstack_tree(tree, n: int | None = None) -> list:
    """The ``n`` (default: all) per-seed pytrees of a tree stacked along axis 0.

    Example:
      >>> [t["a"].tolist() for t in unstack_tree({"a": jnp.arange(3)})]
      [0, 1, 2]
    """
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    n = leaves[0].shape[0] if n is None else int(n)
    return [jax.tree_util.tree_unflatten(treedef, [x[i] for x in leaves]) for i in range(n)]


def _multi_epoch_impl(model_cfg, train_cfg, steps_per_epoch, params, opt_state, keys, x, y):
    one = functools.partial(_epoch_impl, model_cfg, train_cfg, steps_per_epoch)
    return jax.vmap(one)(params, opt_state, keys, x, y)


def _multi_eval_impl(model_cfg, eval_batch, params, x, y, keys):
    return jax.vmap(functools.partial(_eval_impl, model_cfg, eval_batch))(params, x, y, keys)


_multi_epoch_jit = jax.jit(_multi_epoch_impl, static_argnums=(0, 1, 2), donate_argnums=(3, 4))
_multi_eval_jit = jax.jit(_multi_eval_impl, static_argnums=(0, 1))


def _sharded(fn, mesh, n_in: int):
    spec = P(_SEED_AXIS)
    return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=(spec,) * n_in, out_specs=spec, check_vma=False))


@functools.lru_cache(maxsize=32)
def _sharded_epoch(model_cfg, train_cfg, steps_per_epoch, mesh):
    return _sharded(functools.partial(_multi_epoch_impl, model_cfg, train_cfg, steps_per_epoch), mesh, 5)


@functools.lru_cache(maxsize=32)
def _sharded_eval(model_cfg, eval_batch, mesh):
    return _sharded(functools.partial(_multi_eval_impl, model_cfg, eval_batch), mesh, 4)


def _as_seed_batch(a, name: str, n_seeds: int | None, ndim: int) -> np.ndarray:
    a = np.asarray(a, np.int32)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} axes (seeds first), got shape {a.shape}")
    if n_seeds is not None and a.shape[0] != n_seeds:
        raise ValueError(f"{name} must have {n_seeds} seeds along axis 0 (as x_train), got {a.shape[0]}")
    return a


class MultiSeedTrainer:
    """Jitted epoch and evaluation of ``S`` seeds of one (model, optimiser) configuration.

    Args:
      model_cfg, train_cfg: as :class:`~softmax_stability.experiments.training.Trainer`.
      x_train: ``[S, n, seq_len]`` integer tokens, one training set per seed (same size).
      y_train: ``[S, n]`` labels.
      x_val, y_val: optional held-out sets ``[S, m, seq_len]``, ``[S, m]``.
      eval_batch: evaluation chunk size.
      devices: ``None`` (the default device) or a list of devices to split the seeds across.

    ``epoch(params, opt_state, keys)`` takes the stacked per-seed parameters and optimiser states
    (:func:`stack_trees`) and ``keys`` ``[S, 2]`` and returns the new ones and per-seed running
    training loss and accuracy (NumPy ``[S]``); ``evaluate(params, split, keys)`` the per-seed
    evaluation loss and accuracy.

    Example:
      >>> from softmax_stability.experiments.sf_model import init_params
      >>> cfg = ModelConfig(n_tokens=3, n_classes=2, seq_len=6, d=8, d_mlp=8, blocks=1)
      >>> x = np.random.default_rng(0).integers(0, 2, (3, 30, 6)); y = x[:, :, 0]
      >>> tr = MultiSeedTrainer(cfg, TrainConfig(batch_size=8), x, y)
      >>> keys = jax.random.split(jax.random.PRNGKey(0), 3)
      >>> p = stack_trees([init_params(k, cfg) for k in keys]); s = tr.init_opt(p)
      >>> p, s, (loss, acc) = tr.epoch(p, s, keys)
      >>> tr.n_seeds, loss.shape
      (3, (3,))
    """

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig, x_train, y_train, x_val=None, y_val=None,
                 *, eval_batch: int = 500, devices=None):
        self.model_cfg, self.train_cfg = model_cfg, train_cfg
        x_train = _as_seed_batch(x_train, "x_train", None, 3)
        if x_train.shape[0] < 1 or x_train.shape[2] != model_cfg.seq_len:
            raise ValueError(f"x_train must have shape [seeds >= 1, n, {model_cfg.seq_len}], got {x_train.shape}")
        S = self.n_seeds = x_train.shape[0]
        y_train = _as_seed_batch(y_train, "y_train", S, 2)
        if y_train.shape[1] != x_train.shape[1]:
            raise ValueError(f"y_train must have shape [{S}, {x_train.shape[1]}], got {y_train.shape}")
        self.n_train = x_train.shape[1]
        self.steps_per_epoch = -(-self.n_train // train_cfg.batch_size)
        self.optimizer = make_optimizer(train_cfg, self.steps_per_epoch)
        if int(eval_batch) < 1:
            raise ValueError(f"eval_batch must be >= 1, got {eval_batch!r}")
        self.eval_batch = int(eval_batch)
        devices = _check_devices(devices)
        self.devices = None if devices is None else devices[:S]  # no device without a seed
        self._nd = 1 if self.devices is None else len(self.devices)
        self._pad = -S % self._nd  # copies of the last seed so that every device gets as many
        data = {"train": (x_train, y_train)}
        if x_val is not None:
            x_val = _as_seed_batch(x_val, "x_val", S, 3)
            y_val = _as_seed_batch(y_val, "y_val", S, 2)
            if x_val.shape[2] != model_cfg.seq_len or y_val.shape[1] != x_val.shape[1]:
                raise ValueError(f"x_val, y_val must have shapes [{S}, m, {model_cfg.seq_len}], [{S}, m]; "
                                 f"got {x_val.shape}, {y_val.shape}")
            data["val"] = (x_val, y_val)
        self._data = {k: self._place(self._padded(v)) for k, v in data.items()}
        if self._nd > 1:
            mesh = jax.sharding.Mesh(np.asarray(self.devices), (_SEED_AXIS,))
            self._epoch = _sharded_epoch(model_cfg, train_cfg, self.steps_per_epoch, mesh)
            self._eval = _sharded_eval(model_cfg, self.eval_batch, mesh)
        else:
            self._epoch = functools.partial(_multi_epoch_jit, model_cfg, train_cfg, self.steps_per_epoch)
            self._eval = functools.partial(_multi_eval_jit, model_cfg, self.eval_batch)

    def _padded(self, tree):
        if not self._pad:
            return tree
        return jax.tree_util.tree_map(
            lambda a: jnp.concatenate([jnp.asarray(a), jnp.repeat(jnp.asarray(a)[-1:], self._pad, axis=0)]), tree)

    def _place(self, tree):
        if self.devices is None:
            return tree
        if self._nd == 1:
            return jax.device_put(tree, self.devices[0])
        mesh = jax.sharding.Mesh(np.asarray(self.devices), (_SEED_AXIS,))
        return jax.device_put(tree, jax.sharding.NamedSharding(mesh, P(_SEED_AXIS)))

    def _check_seeds(self, tree, name: str):
        for leaf in jax.tree_util.tree_leaves(tree):
            if np.shape(leaf)[:1] != (self.n_seeds,):
                raise ValueError(f"{name} must be stacked over the {self.n_seeds} seeds along axis 0 "
                                 f"(stack_trees), got a leaf of shape {np.shape(leaf)}")

    def init_opt(self, params):
        """Per-seed optimiser states of stacked ``params``."""
        self._check_seeds(params, "params")
        return jax.vmap(self.optimizer.init)(params)

    def _unpad(self, tree):
        if not self._pad:
            return tree
        return jax.tree_util.tree_map(lambda a: a[: self.n_seeds], tree)

    def lower_epoch(self, params, opt_state, keys):
        """The epoch as ``jax.stages.Lowered``; the compiled function takes ``(params, opt_state,
        keys, x_train, y_train)`` (each with the padded seed count when the seeds do not divide
        evenly over the devices)."""
        x, y = self._data["train"]
        params, opt_state, keys = self._place(self._padded((params, opt_state, keys)))
        fn = self._epoch if self._nd > 1 else self._epoch.func
        args = (params, opt_state, keys, x, y) if self._nd > 1 else (*self._epoch.args, params, opt_state, keys, x, y)
        return fn.lower(*args)

    def epoch(self, params, opt_state, keys):
        """One epoch of every seed; returns ``(params, opt_state, (loss[S], acc[S]))``."""
        self._check_seeds((params, opt_state), "params and opt_state")
        self._check_seeds(keys, "keys")
        x, y = self._data["train"]
        params, opt_state, keys = self._place(self._padded((params, opt_state, keys)))
        params, opt_state, (loss, acc) = self._epoch(params, opt_state, keys, x, y)
        params, opt_state, loss, acc = self._unpad((params, opt_state, loss, acc))
        return params, opt_state, (np.asarray(loss), np.asarray(acc))

    def evaluate(self, params, split: str = "val", keys=None) -> tuple[np.ndarray, np.ndarray]:
        """Per-seed loss and accuracy on ``split`` in evaluation mode (``keys`` ``[S, 2]``: RND only;
        default ``PRNGKey(0)`` for every seed, as ``Trainer.evaluate``)."""
        if split not in self._data:
            raise ValueError(f"split must be one of {sorted(self._data)}, got {split!r}")
        self._check_seeds(params, "params")
        if keys is None:
            keys = jnp.broadcast_to(jax.random.PRNGKey(0), (self.n_seeds, 2))
        self._check_seeds(keys, "keys")
        x, y = self._data[split]
        params, keys = self._place(self._padded((params, keys)))
        loss, acc = self._unpad(self._eval(params, x, y, keys))
        return np.asarray(loss), np.asarray(acc)
