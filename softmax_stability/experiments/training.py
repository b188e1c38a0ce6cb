r"""Training the SF classifier: plain SGD, gradient clipping, per-epoch learning-rate decay.

The optimiser is the SF authors' (``ch.py``; ``docs/notes/semantic_focus.md`` §4):

.. math::
    g \leftarrow g \cdot \min\!\Big(1, \frac{0.5}{\|g\|_2}\Big), \qquad
    \theta \leftarrow \theta - \eta_0\,\gamma^{\lfloor t / S \rfloor}\, g,

SGD without momentum, global gradient-norm clipping at 0.5, the learning rate multiplied by
:math:`\gamma` once per epoch (``StepLR``; :math:`S` steps per epoch), batch 25, shuffled every
epoch; the last partial batch is kept, as PyTorch's ``DataLoader`` does (its loss is the mean over
its own samples). Built with optax: ``clip_by_global_norm`` then ``sgd`` with a staircase
``exponential_decay`` schedule, so the optimiser state (the step count) fixes the learning rate
and a resumed run continues exactly.

Performance: the whole epoch is one jitted call -- a PRNG permutation of the training set (on
device), then ``lax.scan`` over its batches -- so there is one dispatch and no host round trip per
epoch. Evaluation is one jitted ``lax.map`` over large chunks. ``Trainer(devices=[...])`` splits
every batch across several devices inside that one call (``shard_map``; gradients and loss sums
``psum``-med), giving the one-device update up to summation order.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from softmax_stability._checks import check_int_in_range
from softmax_stability.experiments.sf_model import ModelConfig, apply, loss_and_accuracy

__all__ = ["TrainConfig", "make_optimizer", "Trainer"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings (defaults: the SF authors' NNCH settings)."""

    lr: float = 0.1
    lr_decay: float = 0.9995
    batch_size: int = 25
    clip: float = 0.5

    def __post_init__(self):
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be finite and > 0, got {self.lr!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")
        check_int_in_range(self.batch_size, "batch_size", 1)
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"clip must be finite and > 0, got {self.clip!r}")


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """``clip_by_global_norm(clip)`` then SGD with the per-epoch staircase decay."""
    sched = optax.exponential_decay(cfg.lr, transition_steps=int(steps_per_epoch), decay_rate=cfg.lr_decay,
                                    staircase=True)
    return optax.chain(optax.clip_by_global_norm(cfg.clip), optax.sgd(sched))


def _epoch_batches(train_cfg: TrainConfig, n_shards: int, key, x, y):
    """This epoch's shuffled batches ``[nb, Bp, ...]`` with 0/1 sample weights, each batch padded
    from ``batch_size`` to a multiple ``Bp`` of ``n_shards`` (padding rows have weight 0), and one
    PRNG key per batch."""
    B = train_cfg.batch_size
    n = x.shape[0]
    nb = -(-n // B)
    kperm, kstep = jax.random.split(key)
    perm = jax.random.permutation(kperm, n)
    pad = nb * B - n
    idx = jnp.concatenate([perm, jnp.zeros((pad,), perm.dtype)])
    w = jnp.concatenate([jnp.ones((n,), jnp.float32), jnp.zeros((pad,), jnp.float32)])
    xb = x[idx].reshape(nb, B, -1)
    yb = y[idx].reshape(nb, B)
    wb = w.reshape(nb, B)
    extra = -(-B // n_shards) * n_shards - B
    if extra:
        xb = jnp.concatenate([xb, jnp.zeros((nb, extra, xb.shape[2]), xb.dtype)], axis=1)
        yb = jnp.concatenate([yb, jnp.zeros((nb, extra), yb.dtype)], axis=1)
        wb = jnp.concatenate([wb, jnp.zeros((nb, extra), wb.dtype)], axis=1)
    return xb, yb, wb, jax.random.split(kstep, nb)


def _sgd_scan(model_cfg: ModelConfig, optimizer, params, opt_state, batches, axis: str | None):
    """``lax.scan`` of SGD steps over ``batches``. With ``axis`` (inside ``shard_map``) each device
    holds a slice of every batch: per-sample losses are summed locally and divided by the whole
    batch's weight, and the gradient and the sums are ``psum``-med, so every device applies the
    update of the whole batch."""

    def psum(t):
        return t if axis is None else jax.lax.psum(t, axis)

    def step(carry, inp):
        p, s = carry
        xs, ys, ws, k = inp
        offset = 0 if axis is None else jax.lax.axis_index(axis) * xs.shape[0]
        total = jnp.maximum(psum(jnp.sum(ws)), 1.0)

        def local_loss(p):
            logits = apply(p, xs, model_cfg, key=k, train=True, sample_offset=offset)
            loss, acc = loss_and_accuracy(logits, ys, ws)
            local = jnp.maximum(jnp.sum(ws), 1.0) / total  # this slice's share of the batch
            return loss * local, acc * local

        (loss, acc), g = jax.value_and_grad(local_loss, has_aux=True)(p)
        g, loss, acc = psum((g, loss, acc))
        upd, s = optimizer.update(g, s, p)
        return (optax.apply_updates(p, upd), s), (loss, acc, total)

    (params, opt_state), (losses, accs, sizes) = jax.lax.scan(step, (params, opt_state), batches)
    return params, opt_state, losses, accs, sizes


def _epoch_impl(model_cfg: ModelConfig, train_cfg: TrainConfig, steps_per_epoch: int, params, opt_state, key, x, y):
    optimizer = make_optimizer(train_cfg, steps_per_epoch)
    batches = _epoch_batches(train_cfg, 1, key, x, y)
    params, opt_state, losses, accs, sizes = _sgd_scan(model_cfg, optimizer, params, opt_state, batches, None)
    n = x.shape[0]
    return params, opt_state, (jnp.sum(losses * sizes) / n, jnp.sum(accs * sizes) / n)


def _epoch_sharded_impl(model_cfg: ModelConfig, train_cfg: TrainConfig, steps_per_epoch: int, mesh, params,
                        opt_state, key, x, y):
    optimizer = make_optimizer(train_cfg, steps_per_epoch)
    xb, yb, wb, keys = _epoch_batches(train_cfg, mesh.size, key, x, y)
    spec = P(None, _DATA_AXIS)
    run = jax.shard_map(functools.partial(_sgd_scan, model_cfg, optimizer, axis=_DATA_AXIS), mesh=mesh,
                        in_specs=(P(), P(), (spec, spec, spec, P())), out_specs=P(), check_vma=False)
    params, opt_state, losses, accs, sizes = run(params, opt_state, (xb, yb, wb, keys))
    n = x.shape[0]
    return params, opt_state, (jnp.sum(losses * sizes) / n, jnp.sum(accs * sizes) / n)


_DATA_AXIS = "batch"
_epoch_sharded_jit = jax.jit(_epoch_sharded_impl, static_argnums=(0, 1, 2, 3), donate_argnums=(4, 5))
_epoch_jit = jax.jit(_epoch_impl, static_argnums=(0, 1, 2), donate_argnums=(3, 4))


def _eval_impl(model_cfg: ModelConfig, eval_batch: int, params, x, y, key):
    n = x.shape[0]
    cb = min(eval_batch, n)
    nb = -(-n // cb)
    pad = nb * cb - n
    xp = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), x.dtype)]).reshape(nb, cb, -1)
    yp = jnp.concatenate([y, jnp.zeros((pad,), y.dtype)]).reshape(nb, cb)
    wp = jnp.concatenate([jnp.ones((n,), jnp.float32), jnp.zeros((pad,), jnp.float32)]).reshape(nb, cb)
    keys = jax.random.split(key, nb)

    def chunk(inp):
        xc, yc, wc, kc = inp
        l, a = loss_and_accuracy(apply(params, xc, model_cfg, key=kc, train=False), yc, wc)
        return l * wc.sum(), a * wc.sum()

    ls, accs = jax.lax.map(chunk, (xp, yp, wp, keys))
    return jnp.sum(ls) / n, jnp.sum(accs) / n


_eval_jit = jax.jit(_eval_impl, static_argnums=(0, 1))


def _check_devices(devices) -> list | None:
    if devices is None:
        return None
    devices = list(devices)
    if not devices:
        raise ValueError("devices must be None or a non-empty list of jax devices")
    if len(set(devices)) != len(devices):
        raise ValueError(f"devices must be distinct, got {devices}")
    return devices


class Trainer:
    """Jitted epoch and evaluation functions for one (model, optimiser, training set).

    The training and held-out sets are put on the device once. ``epoch(params, opt_state, key)``
    runs one epoch (one dispatch) and returns the new parameters, optimiser state and the running
    mean training loss/accuracy over the epoch's batches (training mode, dropout on).
    ``evaluate(params, split)`` returns the loss and accuracy on ``"train"`` or ``"val"`` in
    evaluation mode (no dropout), as the authors evaluate after every epoch.

    ``devices``: ``None`` (the default device, e.g. the one ``jax.default_device`` selects, as
    :func:`~softmax_stability.experiments.runner.run_many` does) or a list of devices to split every batch across (data
    parallelism: each device computes the gradient of its slice, the gradients are summed, every
    device applies the same update). The update is that of the whole batch -- dropout masks are
    drawn per sample, so they do not depend on the split -- and differs from the one-device update
    only by floating-point summation order. A batch of 25 on 2 devices is padded to 26 with a
    weight-0 sample. On a CPU, ``jax.config.update("jax_num_cpu_devices", 2)`` before the first JAX
    computation makes two devices of the host's cores: an SF epoch then takes 2.7-2.9 s on 2 cores
    instead of 3.6-4.4 s on one device (``benchmarks/RESULTS.md``).

    Example:
      >>> import numpy as np
      >>> from softmax_stability.experiments.sf_model import ModelConfig, init_params
      >>> cfg = ModelConfig(n_tokens=3, n_classes=2, seq_len=6, d=8, d_mlp=8, blocks=1)
      >>> x = np.random.default_rng(0).integers(0, 2, (30, 6)); y = x[:, 0]
      >>> tr = Trainer(cfg, TrainConfig(batch_size=8), x, y, x[:10], y[:10])
      >>> p = init_params(jax.random.PRNGKey(0), cfg); s = tr.init_opt(p)
      >>> p, s, (loss, acc) = tr.epoch(p, s, jax.random.PRNGKey(1))
      >>> tr.steps_per_epoch, bool(np.isfinite(loss))
      (4, True)
    """

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig, x_train, y_train, x_val=None, y_val=None,
                 *, eval_batch: int = 500, devices=None):
        self.model_cfg = model_cfg
        self.train_cfg = train_cfg
        x_train = np.asarray(x_train, np.int32)
        if x_train.ndim != 2 or x_train.shape[1] != model_cfg.seq_len:
            raise ValueError(f"x_train must have shape [n, {model_cfg.seq_len}], got {x_train.shape}")
        self.n_train = x_train.shape[0]
        self.steps_per_epoch = -(-self.n_train // train_cfg.batch_size)
        self.optimizer = make_optimizer(train_cfg, self.steps_per_epoch)
        self.eval_batch = int(eval_batch)
        self.devices = _check_devices(devices)
        self._data = {"train": (jnp.asarray(x_train), jnp.asarray(np.asarray(y_train, np.int32)))}
        if x_val is not None:
            self._data["val"] = (jnp.asarray(np.asarray(x_val, np.int32)), jnp.asarray(np.asarray(y_val, np.int32)))
        self._data = self._place(self._data)
        # module-level jits with the (hashable) configs static: Trainers of the same configuration
        # share one compilation
        if self.devices is not None and len(self.devices) > 1:
            mesh = jax.sharding.Mesh(np.asarray(self.devices), (_DATA_AXIS,))
            self._epoch = functools.partial(_epoch_sharded_jit, model_cfg, train_cfg, self.steps_per_epoch, mesh)
        else:
            self._epoch = functools.partial(_epoch_jit, model_cfg, train_cfg, self.steps_per_epoch)
        self._eval = functools.partial(_eval_jit, model_cfg, self.eval_batch)

    def lower_epoch(self, params, opt_state, key):
        """The epoch as a ``jax.stages.Lowered`` (``.compile()`` it to time compilation apart);
        the compiled function takes ``(params, opt_state, key, x_train, y_train)``."""
        x, y = self._data["train"]
        params, opt_state, key = self._place((params, opt_state, key))
        return self._epoch.func.lower(*self._epoch.args, params, opt_state, key, x, y)

    def init_opt(self, params):
        return self.optimizer.init(params)

    def epoch(self, params, opt_state, key):
        """One epoch; returns ``(params, opt_state, (running_loss, running_acc))`` (floats)."""
        x, y = self._data["train"]
        params, opt_state, key = self._place((params, opt_state, key))
        params, opt_state, (loss, acc) = self._epoch(params, opt_state, key, x, y)
        return params, opt_state, (float(loss), float(acc))

    def _place(self, tree, evaluation: bool = False):
        # one explicit device: everything the epoch reads lives there; evaluation of parameters
        # replicated over several devices runs on the first
        if self.devices is not None and (len(self.devices) == 1 or evaluation):
            return jax.device_put(tree, self.devices[0])
        return tree

    def evaluate(self, params, split: str = "val", key: jax.Array | None = None) -> tuple[float, float]:
        """Loss and accuracy (fraction) on ``split`` in evaluation mode (``key``: RND masks only)."""
        if split not in self._data:
            raise ValueError(f"split must be one of {sorted(self._data)}, got {split!r}")
        x, y = self._data[split]
        key = jax.random.PRNGKey(0) if key is None else key
        params, key = self._place((params, key), evaluation=True)
        loss, acc = self._eval(params, x, y, key)
        return float(loss), float(acc)
