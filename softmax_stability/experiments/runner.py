r"""Cached, resumable SF training runs over (task, variant, activation, seed).

A run is described by a :class:`RunConfig`; :func:`run` trains it (SGD as in
:mod:`~softmax_stability.experiments.training`) and returns a :class:`RunResult` with the
per-epoch training loss/accuracy (running means over the epoch's batches, training mode, as the
loss the optimiser sees), held-out loss/accuracy (evaluation mode, after every epoch), and the SF
theory statistics of the trained model (:func:`softmax_stability.focus.attention_statistics`:
quantiles of :math:`\delta_s, \delta_h, \Delta, \beta` and LHS(304)/(305), pooled over every
block, on ``stats_batches`` batches of ``stats_batch_size`` training samples, the protocol of SF
Table 6).

Cache layout: ``<cache_dir>/<key>/`` with ``key`` the SHA-256 of the resolved configuration and
:data:`RUNNER_VERSION`/``MODEL_VERSION``:

* ``result.json`` -- the finished run, with the SHA-256 of its own payload and of ``params.npz``;
* ``params.npz`` -- the trained parameters;
* ``ckpt.npz`` + ``ckpt.json`` -- the per-epoch checkpoint of an unfinished run (parameters,
  optimiser state, history; the JSON holds the npz's SHA-256).

Every file is written atomically (:mod:`softmax_stability._io`). A finished entry whose files do
not parse or whose checksums disagree is reported with a warning and rerun, never reused; a
corrupt checkpoint is discarded the same way. The PRNG key of epoch ``e`` is
``fold_in(PRNGKey(seed), e)``, so a resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import json
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability._checks import check_int_in_range
from softmax_stability.experiments._cache import (npz_to_tree, payload_sha, read_finished_payload, sha256,
                                                 tree_to_npz)
from softmax_stability._io import atomic_write_bytes, atomic_write_json, ensure_writable_dir
from softmax_stability.experiments import tasks as tasks_mod
from softmax_stability.experiments.sf_model import ACTIVATIONS, MODEL_VERSION, ModelConfig, apply, init_params
from softmax_stability.experiments.training import TrainConfig, Trainer, make_optimizer
from softmax_stability.experiments.variants import padded_length, parse_variant

__all__ = ["RunConfig", "RunResult", "run", "run_seeds", "run_many", "default_workers", "cache_key", "load_params", "attention_logits",
           "stats_key", "profile_settings", "profile_overrides", "profile_config", "profile_deviations",
           "profile_configs", "profile_runs", "epochs_to_accuracy", "convergence_quantiles", "convergence_speedup", "FIG1_VARIANTS", "MEDIUM_VARIANTS", "MEDIUM_EPOCHS", "PROFILES", "NNCH_TASKS",
           "convergence_outcome", "model_config", "RUNNER_VERSION",
           "HISTORY_KEYS", "CorruptCacheWarning"]

RUNNER_VERSION = "sf-runner-1"  # bump when what a run records changes (part of the cache key)
HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds")


class CorruptCacheWarning(UserWarning):
    """A cache entry or checkpoint failed its checks and is being recomputed."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training run. ``None`` fields take the task's defaults (the SF authors' settings:
    :class:`~softmax_stability.experiments.tasks.TaskSpec`).

    Example:
      >>> RunConfig("even_pairs", "topk(5)").resolved()["variant"]
      'TOPK(5)'
    """

    task: str
    variant: str = "FULL"
    activation: str = "relu"
    seed: int = 0
    epochs: int | None = None
    n_train: int = 5000
    n_val: int = 2000
    length: int | None = None
    min_length: int | None = None  # ListOps only: exclusive lower length bound (None: the task's 500)
    d: int = 64
    d_mlp: int = 64
    heads: int = 1
    blocks: int | None = None
    dropout: float = 0.01
    lr: float | None = None
    lr_decay: float | None = None
    batch_size: int = 25
    clip: float = 0.5
    stats_k: int = 5
    stats_batches: int = 10
    stats_batch_size: int = 100

    def resolved(self) -> dict[str, Any]:
        """All fields with task defaults filled in and the variant canonical; validates eagerly
        (unknown task/variant/activation, ``k`` larger than the sequence) before any work."""
        spec = tasks_mod.get_task(self.task)
        v = parse_variant(self.variant)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        out = dataclasses.asdict(self)
        out["variant"] = v.name
        for f, dflt in (("epochs", spec.epochs), ("blocks", spec.blocks), ("lr", spec.lr),
                        ("lr_decay", spec.lr_decay), ("length", spec.length)):
            if out[f] is None:
                out[f] = dflt
        for f in ("seed",):
            check_int_in_range(out[f], f, 0)
        for f in ("epochs", "n_train", "n_val", "length", "stats_k", "stats_batches", "stats_batch_size"):
            check_int_in_range(out[f], f, 1)
        if out["min_length"] is not None:
            if self.task != "listops":
                raise ValueError(f"min_length applies to listops only, got min_length={out['min_length']!r} "
                                 f"for {self.task}")
            check_int_in_range(out["min_length"], "min_length", 0)
            if out["min_length"] + 1 >= out["length"]:
                raise ValueError(f"listops needs min_length + 1 < length (exclusive bounds), got "
                                 f"min_length={out['min_length']}, length={out['length']}")
        elif self.task == "listops" and out["length"] <= 501:
            raise ValueError(f"listops with length={out['length']} needs min_length < length - 1 "
                             f"(the default lower bound is 500)")
        n = out["length"] if self.task != "listops" else out["length"] - 1  # ListOps: exclusive bound
        if v.k is not None and v.k > n:
            raise ValueError(f"mask size k={v.k} of {v.name} is larger than the sequence length {n}; "
                             f"use k <= {n}")
        if out["stats_k"] > n:
            raise ValueError(f"stats_k={out['stats_k']} is larger than the sequence length {n}")
        TrainConfig(out["lr"], out["lr_decay"], out["batch_size"], out["clip"])  # validates
        return out


def cache_key(cfg: RunConfig) -> str:
    """SHA-256 (hex, 24 chars) of the resolved configuration and the code versions."""
    r = cfg.resolved()
    if r["min_length"] is None:  # added later: absent from the keys of every run that does not set it
        del r["min_length"]
    blob = json.dumps({"cfg": r, "model": MODEL_VERSION, "runner": RUNNER_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclasses.dataclass
class RunResult:
    """A finished run: ``config`` (resolved dict), ``history`` (per-epoch lists, keys
    :data:`HISTORY_KEYS`; accuracies are fractions), ``stats`` (attention statistics, lists per
    quantile level), ``key``, ``cached`` (True if loaded from the cache) and ``path``."""

    config: dict[str, Any]
    history: dict[str, list[float]]
    stats: dict[str, Any]
    key: str
    cached: bool
    path: Path

    def curve(self, name: str) -> np.ndarray:
        return np.asarray(self.history[name], dtype=float)


def model_config(cfg: RunConfig, seq_len: int | None = None) -> tuple[ModelConfig, tasks_mod.TaskSpec]:
    """The :class:`ModelConfig` of a run (``seq_len``: the padded length; default from the task)."""
    r = cfg.resolved()
    spec = tasks_mod.get_task(r["task"])
    v = parse_variant(r["variant"])
    if seq_len is None:
        seq_len = padded_length(r["length"], v)
    mc = ModelConfig(n_tokens=spec.n_symbols + 1 + v.global_tokens, n_classes=spec.n_classes, seq_len=seq_len,
                     variant=v, d=r["d"], d_mlp=r["d_mlp"], heads=r["heads"], blocks=r["blocks"],
                     activation=r["activation"], dropout=r["dropout"])
    return mc, spec


def _load_finished(entry: Path, key: str) -> RunResult | None:
    """The cached result, None if absent; raises ValueError if present but corrupt."""
    payload = read_finished_payload(entry, key)
    if payload is None:
        return None
    h = payload["history"]
    if any(len(h.get(k, ())) != payload["config"]["epochs"] for k in HISTORY_KEYS):
        raise ValueError(f"corrupt cache entry {entry}: history length differs from the number of epochs")
    return RunResult(payload["config"], h, payload["stats"], key, True, entry)


def load_params(result: RunResult):
    """The trained parameters of a finished run (checksum verified)."""
    cfg = RunConfig(**result.config)
    mc, _ = model_config(cfg)
    _load_finished(result.path, result.key)  # raises ValueError if the entry is corrupt
    data = (result.path / "params.npz").read_bytes()
    like = jax.eval_shape(lambda k: init_params(k, mc), jax.random.PRNGKey(0))
    return npz_to_tree(data, like)


_logits_jit = jax.jit(lambda p, t, mc, key: apply(p, t, mc, key=key, return_logits=True), static_argnums=2)
# one compilation instead of many small eager ones (compile time dominates tiny runs); the key
# only matters for RND(k), whose masks are drawn per call (evaluation mode: no dropout)
_init_jit = jax.jit(init_params, static_argnums=1)


def _stats_fn(lg, where, k):
    from softmax_stability import focus

    return focus.attention_statistics(lg, k, where=where)


_stats_jit = jax.jit(_stats_fn, static_argnums=2)


def stats_key(seed: int) -> jax.Array:
    """PRNG key of a run's statistics pass (RND(k) masks): ``fold_in(PRNGKey(seed), 10**6 + 1)``,
    disjoint from the epoch keys ``fold_in(., e)`` and the initialisation key ``fold_in(., 10**6)``."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), 10**6 + 1)


def attention_logits(result: RunResult, x: np.ndarray, params=None, *, key: jax.Array | None = None) -> jax.Array:
    """Attention logits ``[blocks, B, heads, n, n]`` of the trained model of ``result`` on the
    (unpadded) task tokens ``x`` (evaluation mode). ``key`` draws the RND(k) masks (ignored by
    the other variants); default :func:`stats_key` of the run's seed, the key of ``result.stats``."""
    cfg = RunConfig(**result.config)
    spec = tasks_mod.get_task(cfg.task)
    xp = tasks_mod.prepare_inputs(np.asarray(x), spec, result.config["variant"])
    mc, _ = model_config(cfg, xp.shape[1])
    params = load_params(result) if params is None else params
    key = stats_key(cfg.seed) if key is None else key
    _, lg = _logits_jit(params, jnp.asarray(xp), mc, key)
    return lg


def _stats(params, mc: ModelConfig, x: np.ndarray, r: dict) -> dict[str, Any]:
    from softmax_stability.experiments.sf_model import static_mask

    nb = min(r["stats_batches"] * r["stats_batch_size"], x.shape[0])
    xs = jnp.asarray(x[:nb])
    _, lg = _logits_jit(params, xs, mc, stats_key(r["seed"]))
    mask = static_mask(mc)
    v = mc.variant
    k = v.k if v.kind == "TOPK" else r["stats_k"]
    st = _stats_jit(lg, None if mask is None else jnp.asarray(mask), min(k, lg.shape[-1]))
    return {name: (np.asarray(val).tolist() if hasattr(val, "shape") else val) for name, val in st.items()}


def _read_checkpoint(entry: Path, like_params, like_opt) -> tuple[Any, Any, dict] | None:
    cj, cz = entry / "ckpt.json", entry / "ckpt.npz"
    if not cj.exists():
        return None
    try:
        meta = json.loads(cj.read_text())
        data = cz.read_bytes()
        if sha256(data) != meta["npz_sha256"]:
            raise ValueError("ckpt.npz checksum mismatch")
        tree = npz_to_tree(data, (like_params, like_opt))
        hist = meta["history"]
        if any(len(hist[k]) != meta["epoch"] for k in HISTORY_KEYS):
            raise ValueError("checkpoint history length mismatch")
    except (OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(f"discarding corrupt checkpoint in {entry}: {err}", CorruptCacheWarning, stacklevel=3)
        return None
    return tree[0], tree[1], meta


def _open_entry(cfg: RunConfig, cache_dir: str | Path) -> tuple[dict, str, Path, RunResult | None]:
    """``(resolved config, key, entry dir, finished result or None)``; a corrupt finished entry is
    reported and removed."""
    r = cfg.resolved()
    key = cache_key(cfg)
    root = ensure_writable_dir(cache_dir, "cache")
    entry = root / key
    try:
        res = _load_finished(entry, key)
        if res is not None:
            return r, key, entry, res
    except ValueError as err:
        warnings.warn(f"{err}; rerunning", CorruptCacheWarning, stacklevel=3)
        shutil.rmtree(entry, ignore_errors=True)
    return r, key, entry, None


@functools.lru_cache(maxsize=16)
def _load_task(task: str, seed: int, n_train: int, n_val: int, length: int, min_length: int | None):
    # the variants of a task share its data: generated once per process (ListOps takes seconds)
    return tasks_mod.load_task(task, seed, n_train=n_train, n_val=n_val, length=length, min_length=min_length)


def _run_data(cfg: RunConfig, r: dict):
    """``(model config, train config, x_train, y_train, x_val, y_val)`` of a run (padded inputs)."""
    data = _load_task(r["task"], r["seed"], r["n_train"], r["n_val"], r["length"], r.get("min_length"))
    spec = data.spec
    xt = tasks_mod.prepare_inputs(data.x_train, spec, r["variant"])
    xv = tasks_mod.prepare_inputs(data.x_val, spec, r["variant"])
    mc, _ = model_config(cfg, xt.shape[1])
    tc = TrainConfig(r["lr"], r["lr_decay"], r["batch_size"], r["clip"])
    return mc, tc, xt, data.y_train, xv, data.y_val


def _write_checkpoint(entry: Path, params, opt_state, epoch: int, history: dict) -> None:
    blob = tree_to_npz((params, opt_state))
    atomic_write_bytes(entry / "ckpt.npz", blob)
    atomic_write_json(entry / "ckpt.json", {"epoch": epoch, "npz_sha256": sha256(blob), "history": history})


def _finish(entry: Path, key: str, r: dict, params, mc: ModelConfig, xt: np.ndarray, history: dict) -> RunResult:
    """Statistics, ``params.npz`` and ``result.json`` of a finished run; the checkpoint removed."""
    stats = _stats(params, mc, xt, r)
    pbytes = tree_to_npz(params)
    atomic_write_bytes(entry / "params.npz", pbytes)
    payload = {"key": key, "config": r, "history": history, "stats": stats, "params_sha256": sha256(pbytes),
               "model_version": MODEL_VERSION, "runner_version": RUNNER_VERSION}
    atomic_write_json(entry / "result.json", {"sha256": payload_sha(json.loads(json.dumps(payload))),
                                              "payload": payload})
    for f in ("ckpt.npz", "ckpt.json"):
        (entry / f).unlink(missing_ok=True)
    return RunResult(r, history, stats, key, False, entry)


def run(cfg: RunConfig, cache_dir: str | Path, *, progress: bool = True,
        on_epoch: Callable[[int, dict], None] | None = None) -> RunResult:
    """Train ``cfg`` (or load it from ``cache_dir``), checkpointing after every epoch.

    Args:
      cfg: the run.
      cache_dir: cache directory (created; must be writable).
      progress: show a ``tqdm`` bar over epochs.
      on_epoch: called as ``on_epoch(epoch, record)`` after each epoch's checkpoint is written
        (``epoch`` counts from 1).

    Returns:
      :class:`RunResult`.

    Raises:
      ValueError: bad configuration (unknown names, ``k`` larger than the sequence), before any work.
      PermissionError: ``cache_dir`` not writable, before any work.
    """
    r, key, entry, res = _open_entry(cfg, cache_dir)
    if res is not None:
        return res
    entry.mkdir(parents=True, exist_ok=True)
    mc, tc, xt, yt, xv, yv = _run_data(cfg, r)
    trainer = Trainer(mc, tc, xt, yt, xv, yv)
    base = jax.random.PRNGKey(r["seed"])
    params = _init_jit(jax.random.fold_in(base, 10**6), mc)
    opt_state = trainer.init_opt(params)
    history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
    start = 0
    ck = _read_checkpoint(entry, params, opt_state)
    if ck is not None:
        params, opt_state, meta = ck
        history, start = meta["history"], int(meta["epoch"])

    from tqdm.auto import tqdm
    import time

    bar = tqdm(range(start, r["epochs"]), desc=f"{r['task']} {r['variant']} s{r['seed']}", initial=start,
               total=r["epochs"], leave=False,
               disable=None if progress else True)  # None: off when stderr is not a terminal
    for ep in bar:
        ekey = jax.random.fold_in(base, ep)
        t0 = time.perf_counter()
        params, opt_state, (tl, ta) = trainer.epoch(params, opt_state, ekey)
        secs = time.perf_counter() - t0
        vl, va = trainer.evaluate(params, "val", key=jax.random.fold_in(ekey, 1))
        for k, val in zip(HISTORY_KEYS, (tl, ta, vl, va, secs)):
            history[k].append(float(val))
        _write_checkpoint(entry, params, opt_state, ep + 1, history)
        bar.set_postfix(loss=f"{tl:.3f}", val_acc=f"{va:.3f}")
        if on_epoch is not None:
            on_epoch(ep + 1, {k: history[k][-1] for k in HISTORY_KEYS})
    return _finish(entry, key, r, params, mc, xt, history)


def _seed_group_key(cfg: RunConfig) -> str:
    r = cfg.resolved()
    r.pop("seed")
    return json.dumps(r, sort_keys=True)


def run_seeds(configs: Sequence[RunConfig], cache_dir: str | Path, *, progress: bool = True,
              devices: Sequence[Any] | None = None,
              on_epoch: Callable[[int, list[dict]], None] | None = None) -> list[RunResult]:
    """Train the seeds of one configuration together (:class:`~softmax_stability.experiments.
    multiseed.MultiSeedTrainer`: one jitted program, the seeds vmapped), with :func:`run`'s cache.

    Each seed is an ordinary single-run entry of the cache: it is loaded if finished (and then not
    trained), checkpointed after every epoch in its own ``ckpt.npz``/``ckpt.json`` and finished
    with its own ``result.json`` -- the files :func:`run` writes, with the same keys (``PRNGKey(seed)``
    folded with the epoch, the initialisation key ``fold_in(., 10**6)``), so :func:`run` finds the
    entries this writes and the other way round, and an interrupted batch resumes from the seeds'
    checkpoints. Seeds whose checkpoints stand at different epochs, or whose padded inputs differ
    in length (ListOps), are trained as separate batches. ``history["epoch_seconds"]`` is the
    batch's epoch time divided by its number of seeds (each seed's share).

    Args:
      configs: runs that differ only in ``seed`` (ValueError otherwise), distinct seeds.
      cache_dir: as :func:`run`.
      progress: a ``tqdm`` bar over epochs.
      devices: ``None`` (the default device) or devices to split the seeds across.
      on_epoch: called as ``on_epoch(epoch, records)`` after each epoch's checkpoints are written,
        ``records`` one dict per seed of the batch (:data:`HISTORY_KEYS` and ``"seed"``).

    Returns:
      The results in the order of ``configs``.

    Example:
      >>> import tempfile
      >>> tiny = dict(task="even_pairs", epochs=1, n_train=20, n_val=5, length=6, d=8, d_mlp=8,
      ...             blocks=1, stats_k=3, stats_batches=1, stats_batch_size=5)
      >>> res = run_seeds([RunConfig(seed=s, **tiny) for s in (0, 1)], tempfile.mkdtemp(), progress=False)
      >>> [r.config["seed"] for r in res], res[1].key == cache_key(RunConfig(seed=1, **tiny))
      ([0, 1], True)
    """
    from softmax_stability.experiments.multiseed import MultiSeedTrainer, stack_trees, unstack_tree

    configs = list(configs)
    if not configs:
        raise ValueError("configs must be a non-empty sequence of RunConfig")
    groups = {_seed_group_key(c) for c in configs}
    if len(groups) != 1:
        raise ValueError("configs must differ only in seed (run_many groups a grid by configuration)")
    seeds = [c.resolved()["seed"] for c in configs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"configs must have distinct seeds, got {seeds}")
    out: list[RunResult | None] = [None] * len(configs)
    todo = []  # (index, r, key, entry, model cfg, train cfg, data, params, opt_state, history, start)
    for i, cfg in enumerate(configs):
        r, key, entry, res = _open_entry(cfg, cache_dir)
        if res is not None:
            out[i] = res
            continue
        entry.mkdir(parents=True, exist_ok=True)
        mc, tc, xt, yt, xv, yv = _run_data(cfg, r)
        params = _init_jit(jax.random.fold_in(jax.random.PRNGKey(r["seed"]), 10**6), mc)
        opt_state = make_optimizer(tc, -(-xt.shape[0] // tc.batch_size)).init(params)
        history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
        start = 0
        ck = _read_checkpoint(entry, params, opt_state)
        if ck is not None:
            params, opt_state, meta = ck
            history, start = meta["history"], int(meta["epoch"])
        todo.append(dict(i=i, r=r, key=key, entry=entry, mc=mc, tc=tc, data=(xt, yt, xv, yv), params=params,
                         opt=opt_state, history=history, start=start))
    batches: dict[tuple, list[dict]] = {}
    for t in todo:  # one program per (start epoch, input shape)
        batches.setdefault((t["start"], t["mc"], t["data"][0].shape, t["data"][2].shape), []).append(t)

    from tqdm.auto import tqdm
    import time

    for (start, mc, _, _), batch in batches.items():
        r0, S = batch[0]["r"], len(batch)
        xt, yt, xv, yv = (np.stack([t["data"][j] for t in batch]) for j in range(4))
        trainer = MultiSeedTrainer(mc, batch[0]["tc"], xt, yt, xv, yv, devices=devices)
        params = stack_trees([t["params"] for t in batch])
        opt_state = stack_trees([t["opt"] for t in batch])
        bases = [jax.random.PRNGKey(t["r"]["seed"]) for t in batch]
        bar = tqdm(range(start, r0["epochs"]), initial=start, total=r0["epochs"], leave=False,
                   desc=f"{r0['task']} {r0['variant']} {S} seeds", disable=not progress)
        for ep in bar:
            ekeys = jnp.stack([jax.random.fold_in(b, ep) for b in bases])
            t0 = time.perf_counter()
            params, opt_state, (tl, ta) = trainer.epoch(params, opt_state, ekeys)
            secs = (time.perf_counter() - t0) / S
            vl, va = trainer.evaluate(params, "val", jax.vmap(lambda k: jax.random.fold_in(k, 1))(ekeys))
            ps, os_ = unstack_tree(params), unstack_tree(opt_state)
            for j, t in enumerate(batch):
                for k, val in zip(HISTORY_KEYS, (tl[j], ta[j], vl[j], va[j], secs)):
                    t["history"][k].append(float(val))
                _write_checkpoint(t["entry"], ps[j], os_[j], ep + 1, t["history"])
            bar.set_postfix(loss=f"{float(np.median(tl)):.3f}", val_acc=f"{float(np.median(va)):.3f}")
            if on_epoch is not None:
                on_epoch(ep + 1, [{"seed": t["r"]["seed"], **{k: t["history"][k][-1] for k in HISTORY_KEYS}}
                                  for t in batch])
        for t, p in zip(batch, unstack_tree(params)):
            out[t["i"]] = _finish(t["entry"], t["key"], t["r"], p, mc, t["data"][0], t["history"])
    return out  # type: ignore[return-value]


def default_workers(devices: Sequence[Any] | None = None) -> int:
    """Concurrent runs :func:`run_many` uses by default: one per device on accelerators; on a CPU
    backend the number of cores (at most 8), since XLA:CPU runs this small model on about one core
    per run (measured on 2 cores: 2 concurrent runs give 1.6x the steps per second of one; a
    ``vmap`` over seeds was slower per seed than separate runs)."""
    import os

    devices = list(jax.local_devices()) if devices is None else list(devices)
    if devices and devices[0].platform != "cpu":
        return len(devices)
    return max(1, min(os.cpu_count() or 1, 8))


def run_many(configs: Iterable[RunConfig], cache_dir: str | Path, *, progress: bool = True,
             workers: int | None = None, devices: Sequence[Any] | None = None,
             seed_batch: bool = False) -> list[RunResult]:
    """:func:`run` over a grid of configurations, spread over the local devices.

    Runs are independent, so the grid is split by run rather than by array: ``workers`` threads
    each take the next pending run and train it on device ``devices[i % len(devices)]`` (with
    :func:`jax.default_device`; XLA executes outside the GIL). Every run draws its keys from its own
    seed and XLA's results do not depend on the device or on concurrency, so the results equal
    those of running the grid one by one on one device (tested with 4 forced host devices). On
    several hosts, give each process (after ``jax.distributed.initialize``) its own slice of the
    grid and a shared ``cache_dir``: finished runs are found in the cache by any process.

    Args:
      configs: the runs (all validated, and the cache directory checked, before any training).
      cache_dir: as :func:`run`.
      progress: one bar over runs (per-epoch bars too when ``workers == 1``).
      workers: concurrent runs (default :func:`default_workers`).
      devices: where to run (default ``jax.local_devices()``).
      seed_batch: train the seeds of each configuration together (:func:`run_seeds`, one
        program per configuration, seeds vmapped) instead of run by run. Then ``workers``
        configurations train at once, each on one device; with ``workers=1`` each configuration's
        seeds are split across all ``devices``. The cache entries are those of single runs.

    Returns:
      The results in the order of ``configs``.
    """
    configs = list(configs)
    for c in configs:
        c.resolved()
    ensure_writable_dir(cache_dir, "cache")
    devices = list(jax.local_devices()) if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must be a non-empty sequence of jax devices")
    workers = default_workers(devices) if workers is None else check_int_in_range(workers, "workers", 1)
    workers = max(1, min(workers, len(configs)))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(configs), desc="SF runs", unit="run",
               disable=None if progress and len(configs) >= 2 else True)
    if seed_batch:
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(configs):
            groups.setdefault(_seed_group_key(c), []).append(i)
        glist = list(groups.values())
        workers = max(1, min(workers, len(glist)))

        def one_group(j: int) -> list[RunResult]:
            devs = devices if workers == 1 else [devices[j % len(devices)]]
            res = run_seeds([configs[i] for i in glist[j]], cache_dir, progress=progress and workers == 1,
                            devices=devs)
            bar.update(len(res))
            return res

        try:
            if workers == 1:
                done = [one_group(j) for j in range(len(glist))]
            else:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sf-seeds") as pool:
                    done = list(pool.map(one_group, range(len(glist))))
        finally:
            bar.close()
        out: list[Any] = [None] * len(configs)
        for idx, res in zip(glist, done):
            for i, rr in zip(idx, res):
                out[i] = rr
        return out

    def one(i: int) -> RunResult:
        with jax.default_device(devices[i % len(devices)]):
            res = run(configs[i], cache_dir, progress=progress and workers == 1)
        bar.update(1)
        return res

    try:
        if workers == 1:
            return [one(i) for i in range(len(configs))]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sf-run") as pool:
            return list(pool.map(one, range(len(configs))))
    finally:
        bar.close()


# ------------------------------------------------------------------------------------------------
# profiles shared by the SF figures (sf_fig1, sf_convergence_table, sf_table6_measured)

FIG1_VARIANTS = ("FULL", "BAND(5)", "BAND(5):1", "BLOC(5)", "BLOC(5):1", "TOPK(5)")
MEDIUM_VARIANTS = FIG1_VARIANTS + ("RND(5)",)
NNCH_TASKS = ("parity", "even_pairs", "missing_duplicate", "cycle_navigation", "stack_manipulation",
              "modular_arithmetic_brackets", "solve_equation")
PROFILES = ("smoke", "quick", "medium", "full")
# medium: epochs per task, chosen so that the whole profile fits 60 minutes on 2 CPU cores
# (benchmarks/RESULTS.md, "medium profile": one 5-seed batch per task timed, the total estimated)
MEDIUM_EPOCHS = {"parity": 30, "even_pairs": 25, "missing_duplicate": 50, "cycle_navigation": 30,
                 "stack_manipulation": 30, "modular_arithmetic_brackets": 30, "solve_equation": 30, "listops": 30}


def profile_settings(profile: str) -> dict[str, Any]:
    """Tasks, variants, seeds and :class:`RunConfig` overrides of a figure profile.

    ``overrides`` apply to every task, ``task_overrides[task]`` on top of them (use
    :func:`profile_overrides` / :func:`profile_config`; :func:`profile_deviations` lists how a
    profile departs from the authors' setup).

    * ``smoke``: seconds; one task, FULL and TOPK(5) (what every SF figure needs), two seeds, tiny
      data and model, 2 epochs -- every figure code path, no meaningful result.
    * ``quick``: Even Pairs and Missing Duplicate, the six Fig. 1 variants, 3 seeds (0, 1, 2),
      sized for ``make run``'s 15-minute budget on 2 cores. The authors' optimiser (plain SGD,
      clip 0.5, batch 25, decay 0.9995 per epoch), width (d = d_mlp = 64, 1 head) and dropout,
      with these reductions, chosen by measurement so that the paper's separation is visible
      (``figures/sf_fig1.py``; at the previous 400 samples, 15 epochs and 5 blocks every variant
      stayed at chance): sequences of length 20 instead of 40 (``length=20``), 1 transformer block
      instead of 5 (``blocks=1``), initial learning rate 0.3 instead of 0.1 (``lr=0.3``), 2000
      training and 1000 held-out samples instead of 5000/2000 (``n_train=2000``, ``n_val=1000``),
      and a quarter of the authors' epochs (Even Pairs ``epochs=25``, Missing Duplicate
      ``epochs=62``: 2000 and 4960 SGD steps per run instead of 20000 and 50000). Caveat: at
      this budget Missing Duplicate starts to learn at a strongly seed-dependent epoch (30 to
      beyond 62), so its separation rests on few seeds: with seeds 3-5 instead of 0-2 TOPK(5)'s
      median stayed below FULL's in most late epochs but the 25-75% bands overlapped. Even
      Pairs separates clearly with either seed set.
    * ``medium``: Fig. 1 and the convergence table on all eight tasks (the seven NNCH tasks and
      ListOps), the six Fig. 1 variants and RND(5), 5 seeds (0..4), sized for 60 minutes on 2
      cores: quick's reductions (length 20, 1 block, lr 0.3, 2000/1000 samples), ListOps
      sequences between 20 and 40 tokens instead of 500 and 600 (``length=40``,
      ``min_length=20``) and :data:`MEDIUM_EPOCHS`. The seeds of each configuration train as one
      program (``seed_batch``: :func:`run_seeds`).
    * ``full``: the paper's protocol: 10 seeds (0..9: the authors' seed list is not reproduced),
      5000/2000 samples, every NNCH task and ListOps at the authors' epochs.

    Every profile has ``seed_batch`` (bool): whether :func:`run_many` trains the seeds of a
    configuration together.

    Example:
      >>> profile_settings("quick")["seeds"]
      (0, 1, 2)
    """
    if profile == "smoke":
        return {"tasks": ("even_pairs",), "variants": ("FULL", "TOPK(5)"), "seeds": (0, 1),
                "overrides": dict(epochs=2, n_train=50, n_val=20, length=10, d=8, d_mlp=8, blocks=1,
                                  stats_batches=1, stats_batch_size=50), "task_overrides": {},
                "seed_batch": False}
    if profile == "quick":
        return {"tasks": ("even_pairs", "missing_duplicate"), "variants": FIG1_VARIANTS, "seeds": (0, 1, 2),
                "overrides": dict(n_train=2000, n_val=1000, length=20, blocks=1, lr=0.3),
                "task_overrides": {"even_pairs": dict(epochs=25), "missing_duplicate": dict(epochs=62)},
                "seed_batch": False}
    if profile == "medium":
        return {"tasks": NNCH_TASKS + ("listops",), "variants": MEDIUM_VARIANTS, "seeds": tuple(range(5)),
                "overrides": dict(n_train=2000, n_val=1000, length=20, blocks=1, lr=0.3),
                "task_overrides": {t: dict(epochs=e, **(dict(length=40, min_length=20) if t == "listops" else {}))
                                   for t, e in MEDIUM_EPOCHS.items()},
                "seed_batch": True}
    if profile == "full":
        return {"tasks": NNCH_TASKS + ("listops",), "variants": FIG1_VARIANTS, "seeds": tuple(range(10)),
                "overrides": {}, "task_overrides": {}, "seed_batch": False}
    raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}")


def profile_overrides(profile: str, task: str) -> dict[str, Any]:
    """The :class:`RunConfig` overrides of ``task`` in ``profile`` (shared, then per task).

    Example:
      >>> profile_overrides("quick", "missing_duplicate")["epochs"]
      62
    """
    s = profile_settings(profile)
    return {**s["overrides"], **s["task_overrides"].get(task, {})}


def profile_config(profile: str, task: str, variant: str, seed: int, activation: str = "relu") -> RunConfig:
    """The :class:`RunConfig` of one run of a profile."""
    return RunConfig(task=task, variant=variant, seed=seed, activation=activation,
                     **profile_overrides(profile, task))


AUTHORS_SEEDS = 10  # the SF authors' random_seeds list has 10 entries
_SPEC_FIELDS = ("epochs", "blocks", "lr", "lr_decay", "length")  # defaults that come from the TaskSpec


def profile_deviations(profile: str) -> list[str]:
    """Every way a profile departs from the SF authors' protocol (docs/notes/semantic_focus.md §4), one
    readable item each, computed from :func:`profile_settings` (so captions cannot go stale).

    Example:
      >>> print(profile_deviations("full")[0])
      seeds 0..9 (the authors' seed list is not reproduced)
      >>> print(profile_deviations("quick")[-1])
      SGD steps per run: even_pairs 2000, missing_duplicate 4960 (authors: even_pairs 20000, missing_duplicate 50000)
    """
    s = profile_settings(profile)
    out = []
    seeds = s["seeds"]
    if len(seeds) != AUTHORS_SEEDS:
        out.append(f"{len(seeds)} seeds {list(seeds)} (authors: {AUTHORS_SEEDS})")
    else:
        out.append(f"seeds {seeds[0]}..{seeds[-1]} (the authors' seed list is not reproduced)")
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    per_task = {t: profile_overrides(profile, t) for t in s["tasks"]}
    keys = list(dict.fromkeys(k for ov in per_task.values() for k in ov))

    def joined(vals: dict) -> str:
        return (f"{next(iter(vals.values()))}" if len(set(vals.values())) == 1
                else ", ".join(f"{t} {x}" for t, x in vals.items()))

    for k in keys:
        ours = {t: ov[k] for t, ov in per_task.items() if k in ov}
        if k in _SPEC_FIELDS:
            theirs = {t: getattr(tasks_mod.get_task(t), k) for t in ours}
        elif k == "min_length":
            theirs = {t: 500 for t in ours}  # tasks.generate's ListOps default
        else:
            theirs = {t: defaults[k] for t in ours}
        out.append(f"{k} = {joined(ours)} (authors: {joined(theirs)})")
    if any(k in ov for ov in per_task.values() for k in ("epochs", "n_train", "batch_size")):
        steps = {}
        for t in s["tasks"]:
            r = profile_config(profile, t, "FULL", seeds[0]).resolved()
            steps[t] = -(-r["n_train"] // r["batch_size"]) * r["epochs"]
        theirs = {t: -(-defaults["n_train"] // defaults["batch_size"]) * tasks_mod.get_task(t).epochs
                  for t in s["tasks"]}
        out.append(f"SGD steps per run: {joined(steps)} (authors: {joined(theirs)})")
    return out


def profile_configs(profile: str, *, tasks: Sequence[str] | None = None, variants: Sequence[str] | None = None,
                    seeds: Sequence[int] | None = None, activation: str = "relu") -> list[RunConfig]:
    """The :class:`RunConfig` list of a profile (optionally restricted), seed by seed: the runs
    :func:`run_many` starts together then have different configurations, so concurrent workers
    do not compile the same program twice (later seeds reuse it)."""
    s = profile_settings(profile)
    return [profile_config(profile, t, v, sd, activation)
            for sd in (seeds or s["seeds"]) for t in (tasks or s["tasks"]) for v in (variants or s["variants"])]


def profile_runs(profile: str, cache_dir: str | Path, *, progress: bool = True) -> dict[tuple[str, str], list[RunResult]]:
    """Run (or load) every configuration of ``profile`` (:func:`profile_configs`, with the
    profile's ``seed_batch``); ``{(task, variant): [RunResult per seed]}``."""
    s = profile_settings(profile)
    cfgs = profile_configs(profile)
    results = run_many(cfgs, cache_dir, progress=progress, seed_batch=s["seed_batch"])
    out: dict[tuple[str, str], list[RunResult]] = {}
    for c, r in zip(cfgs, results):
        out.setdefault((c.task, r.config["variant"]), []).append(r)
    return out


def epochs_to_accuracy(acc: Sequence[float], threshold: float = 0.95) -> float:
    """First epoch (1-based) whose accuracy is ``>= threshold``; ``nan`` if never (the SF authors'
    "convergence epoch", ``trfigs.py``, with accuracies as fractions).

    Example:
      >>> epochs_to_accuracy([0.5, 0.96, 0.9])
      2.0
    """
    for i, a in enumerate(acc):
        if a >= threshold:
            return float(i + 1)
    return float("nan")


def convergence_quantiles(epochs: Sequence[float], qs: Sequence[float] = (25, 50, 75)) -> list[float]:
    """Percentiles (in %) of convergence epochs over seeds, with "not reached" (``nan``) as
    right-censored: such a seed converges after the last epoch run, so it ranks above every seed
    that did. A percentile that falls on (or interpolates towards) a censored seed is ``inf``,
    meaning "later than the last epoch". With every seed reached this is ``np.percentile``.

    Example:
      >>> convergence_quantiles([10.0, 14.0, float("nan")])
      [12.0, 14.0, inf]
    """
    e = np.asarray(epochs, dtype=np.float64)
    if e.ndim != 1 or e.size == 0:
        raise ValueError(f"epochs must be a non-empty 1-D sequence, got shape {e.shape}")
    big = 1e300  # stands for "after the last epoch"; any interpolation towards it stays huge
    vals = np.percentile(np.where(np.isnan(e), big, e), list(qs))
    return [math.inf if v > 1e299 else float(v) for v in vals]


def convergence_speedup(full_median: float, variant_median: float, epochs_run: int) -> tuple[float, str]:
    """Speed-up of a variant over FULL in epochs to convergence, ``(value, kind)``.

    ``kind`` is ``"exact"`` (both medians finite: ``full / variant``), ``"lower"`` (FULL's median
    is later than the ``epochs_run`` epochs, the variant's is not: the speed-up exceeds
    ``epochs_run / variant``), ``"upper"`` (the reverse: it is below ``full / epochs_run``) or
    ``"none"`` (neither converged; value ``nan``).

    Example:
      >>> convergence_speedup(math.inf, 14.0, 25)
      (1.7857142857142858, 'lower')
    """
    fin_f, fin_v = math.isfinite(full_median), math.isfinite(variant_median)
    if fin_f and fin_v:
        return full_median / variant_median, "exact"
    if fin_v:
        return epochs_run / variant_median, "lower"
    if fin_f:
        return full_median / epochs_run, "upper"
    return math.nan, "none"


def convergence_outcome(task: str, medians: dict[str, float], epochs_run: int, reference: str = "FULL",
                        focused: str = "TOPK(5)") -> str:
    """One sentence on SF's two convergence claims for ``task``, from the median epochs to 95%
    training accuracy per variant (``inf`` = censored, :func:`convergence_quantiles`): does
    ``focused`` (input-dependent) converge faster than ``reference``, and are the input-agnostic
    masks (BAND/BLOC) no faster than it? Speed-ups by :func:`convergence_speedup`.

    Example:
      >>> convergence_outcome("even_pairs", {"FULL": math.inf, "TOPK(5)": 12.0, "BAND(5)": math.inf}, 25)
      'even_pairs: TOPK(5) converges faster than FULL (speed-up > 2.08x); BAND/BLOC no faster than FULL (as SF): BAND(5) neither converged.'
    """
    if reference not in medians:
        raise ValueError(f"medians must hold the reference {reference!r}, got {sorted(medians)}")
    parts = []

    def fmt(sp: float, kind: str) -> str:
        return {"exact": f"{sp:.2f}x", "lower": f"> {sp:.2f}x", "upper": f"< {sp:.2f}x"}.get(kind, "n/a")

    if focused in medians:
        sp, kind = convergence_speedup(medians[reference], medians[focused], epochs_run)
        if kind == "none":
            verdict = f"neither {focused} nor {reference} reaches 95% within {epochs_run} epochs (undecided)"
        elif kind == "lower" or (kind == "exact" and sp > 1):
            verdict = f"{focused} converges faster than {reference} (speed-up {fmt(sp, kind)})"
        elif kind == "exact" and sp == 1:
            verdict = f"{focused} converges as fast as {reference} (speed-up 1.00x)"
        else:
            verdict = f"{focused} does NOT converge faster than {reference} (speed-up {fmt(sp, kind)})"
        parts.append(verdict)
    agn = [v for v in medians if v.startswith(("BAND", "BLOC"))]
    if agn:
        faster, rest = [], []
        for v in agn:
            sp, kind = convergence_speedup(medians[reference], medians[v], epochs_run)
            if kind == "lower" or (kind == "exact" and sp > 1):
                faster.append(f"{v} {fmt(sp, kind)}")
            else:
                rest.append(f"{v} " + ("neither converged" if kind == "none" else fmt(sp, kind)))
        if faster:
            parts.append("BAND/BLOC faster than FULL for " + ", ".join(faster) + " (SF: no faster; NOT reproduced)"
                         + (f"; others: {', '.join(rest)}" if rest else ""))
        else:
            parts.append("BAND/BLOC no faster than FULL (as SF): " + ", ".join(rest))
    return f"{task}: " + "; ".join(parts) + "."
