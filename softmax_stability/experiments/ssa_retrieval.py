r"""Selective attention in trained models: retrieval and dilution as the context grows (issue 17).

A small causal decoder (:mod:`~softmax_stability.experiments.ssa_decoder`) is trained with optax
on a retrieval task (:mod:`~softmax_stability.experiments.retrieval_tasks`: passkey or multi-query
associative recall) at length :math:`L`, for every attention variant of
:data:`~softmax_stability.experiments.ssa_decoder.VARIANTS`, with the seeds of a run trained
together under ``jax.vmap``. It is then evaluated at :math:`L, 2L, 4L, 8L, 16L` (by default), and
inside the trained model, at every test length, this module measures for each answer query
(:func:`dilution_measurements`):

* the attention weight on the answer key;
* the normalised entropy of the row (:func:`softmax_stability.dilution.normalized_entropy`);
* the logit gap :math:`\Delta` between the answer key and the mean of the other visible keys
  (logits :math:`q^\top k/\sqrt{H}` before the query temperature :math:`\tau`);
* the closed form :func:`softmax_stability.dilution.needle_probability` :math:`(n, \Delta, \tau)`
  at the measured gap and temperature -- the weight the answer would get if every other key had
  the mean logit. For softmax it is an upper bound on the measured weight (Jensen: the log-mean-exp
  of the other logits is at least their mean), with equality exactly when the other logits are
  equal; for the sparse maps (top-k, sparsemax, 1.5-entmax) it is not their law and is reported
  for reference only.

Measurements are taken in the *retrieval head*: per seed, the (layer, head) with the largest mean
answer weight at the training length, followed across the test lengths.

**Cache and resume** (the pattern of :mod:`~softmax_stability.experiments.runner`): a run lives in
``<cache_dir>/<key>/`` with ``key`` the SHA-256 of its resolved configuration and
:data:`VERSION`; ``result.json`` (with the SHA-256 of its payload and of ``params.npz``), the
trained parameters ``params.npz`` (seeds stacked), and while training a checkpoint
``ckpt.npz``/``ckpt.json`` after every ``chunk`` steps. Every file is written atomically; a
corrupt entry is reported with a :class:`~softmax_stability.experiments.runner.CorruptCacheWarning`
and recomputed. Step :math:`t` of seed :math:`s` draws its batch from
``fold_in(PRNGKey(s), t)``, so a resumed run equals an uninterrupted one.

These are small-scale reconstructions: the SSA paper's passkey and perplexity experiments use
pretrained LLMs; nothing here reproduces a number of the paper
(docs/notes/selective_attention.md §1.2-1.4, §2.2).

Example:
    >>> spec = RetrievalRun(task="passkey", variant="vanilla", train_length=16)
    >>> spec.resolved()["test_lengths"]
    [16, 32, 64, 128, 256]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from softmax_stability import attention, dilution
from softmax_stability._checks import check_int_in_range
from softmax_stability._io import atomic_write_bytes, atomic_write_json, ensure_writable_dir
from softmax_stability.experiments import retrieval_tasks as rt
from softmax_stability.experiments import ssa_decoder as dec
from softmax_stability.experiments._cache import npz_to_tree, payload_sha, read_finished_payload, sha256, tree_to_npz
from softmax_stability.experiments.runner import CorruptCacheWarning

__all__ = ["VERSION", "RetrievalRun", "RetrievalResult", "run", "run_many", "dilution_measurements",
           "steps_to_target", "profile_settings", "profile_runs", "collect", "accuracy_rows",
           "dilution_rows", "steps_rows", "overhead_rows", "accuracy_outcome", "dilution_outcome",
           "steps_outcome", "overhead_outcome", "calibrated_needle", "load_params", "PROFILES", "MEASURES",
           "STYLE"]

VERSION = "ssa-retrieval-1"  # bump when what a run records changes (part of the cache key)
PROFILES = ("smoke", "quick", "full")
MEASURES = ("accuracy", "weight", "entropy", "gap", "tau", "closed_form", "n")

# plotting style per variant (matplotlib names; the figures share it through this module)
STYLE = {
    "vanilla": ("black", "-", "o"), "ssa_position": ("tab:blue", "-", "s"),
    "ssa_query": ("tab:cyan", "--", "^"), "ssa_query_value": ("tab:green", "-", "v"),
    "ssa_shared": ("tab:olive", "--", "D"), "ssmax": ("tab:purple", "-", "P"),
    "topk": ("tab:orange", ":", "X"), "sparsemax": ("tab:red", "-.", "<"), "entmax15": ("tab:brown", ":", ">"),
}


@dataclasses.dataclass(frozen=True)
class RetrievalRun:
    """One trained configuration: a task, a variant and its seeds (trained together, vmapped).

    ``test_lengths=None`` means :math:`L\\cdot(1, 2, 4, 8, 16)`; every test length must be at least
    ``train_length``. The task fields are those of
    :class:`~softmax_stability.experiments.retrieval_tasks.RetrievalTask`, the model fields those
    of :class:`~softmax_stability.experiments.ssa_decoder.DecoderConfig`.
    """

    task: str = "passkey"
    variant: str = "vanilla"
    seeds: tuple[int, ...] = (0, 1, 2)
    train_length: int = 32
    test_lengths: tuple[int, ...] | None = None
    steps: int = 300
    chunk: int = 50
    batch_size: int = 32
    lr: float = 3e-3
    eval_size: int = 128
    target_accuracy: float = 0.9
    d_model: int = 32
    num_heads: int = 2
    num_layers: int = 1
    mlp_ratio: int = 2
    k_top: int = 4
    ssmax_s: float = 0.5
    n_filler: int = 16
    n_keys: int = 16
    n_values: int = 16
    n_pairs: int = 4
    n_queries: int = 4
    value_filler: float = 0.0

    def task_config(self) -> rt.RetrievalTask:
        return rt.RetrievalTask(self.task, self.n_filler, self.n_keys, self.n_values, self.n_pairs,
                                self.n_queries, self.value_filler)

    def decoder_config(self) -> dec.DecoderConfig:
        return dec.DecoderConfig(self.task_config().vocab_size, self.variant, self.d_model, self.num_heads,
                                 self.num_layers, self.mlp_ratio, self.k_top, self.ssmax_s)

    def resolved(self) -> dict[str, Any]:
        """All fields, validated eagerly, with ``test_lengths`` filled in (a list)."""
        task = self.task_config()
        self.decoder_config()
        L = check_int_in_range(self.train_length, "train_length", max(2, task.min_length))
        tl = tuple(L * m for m in (1, 2, 4, 8, 16)) if self.test_lengths is None else tuple(self.test_lengths)
        if not tl:
            raise ValueError("test_lengths must hold at least one length")
        for t in tl:
            check_int_in_range(t, "test_lengths", 2)
            if t < L:
                raise ValueError(f"test_lengths must be >= train_length={L} (lengths below the training "
                                 f"length are not extrapolation), got {t}")
        if self.variant == "topk" and self.k_top > L:
            raise ValueError(f"k_top={self.k_top} is larger than the training length n={L}; top-k needs "
                             f"k_top <= n")
        seeds = tuple(self.seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be a non-empty tuple of distinct ints, got {self.seeds!r}")
        for s in seeds:
            check_int_in_range(s, "seeds", 0)
        steps = check_int_in_range(self.steps, "steps", 1)
        chunk = check_int_in_range(self.chunk, "chunk", 1, steps)
        if steps % chunk:
            raise ValueError(f"chunk={chunk} must divide steps={steps}")
        check_int_in_range(self.batch_size, "batch_size", 1)
        check_int_in_range(self.eval_size, "eval_size", 1)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (0 < float(self.target_accuracy) <= 1):
            raise ValueError(f"target_accuracy must be in (0, 1], got {self.target_accuracy!r}")
        out = dataclasses.asdict(self)
        out["seeds"] = list(seeds)
        out["test_lengths"] = list(tl)
        return out

    def key(self) -> str:
        """SHA-256 (hex, 24 chars) of the resolved configuration and :data:`VERSION`."""
        blob = json.dumps({"cfg": self.resolved(), "version": VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclasses.dataclass
class RetrievalResult:
    """A finished run. ``history``: ``loss``/``accuracy`` per step ``[seeds, steps]`` (training
    batches, each drawn fresh, so before its update the accuracy is a held-out estimate);
    ``evaluation``: for each name of :data:`MEASURES`, ``[seeds, lengths]`` in the retrieval head
    (``accuracy``: of the model's answers); ``head``: the retrieval (layer, head) per seed;
    ``parameters``: parameter count of one model; ``seconds``: train/eval wall times."""

    config: dict[str, Any]
    history: dict[str, np.ndarray]
    evaluation: dict[str, np.ndarray]
    head: list[list[int]]
    parameters: int
    seconds: dict[str, float]
    key: str
    cached: bool
    path: Path

    @property
    def lengths(self) -> np.ndarray:
        return np.asarray(self.config["test_lengths"])


# ----------------------------------------------------------------------------------------------
# measurement


def dilution_measurements(weights: Any, logits: Any, tau: Any, visible: Any, answer_positions: Any) -> dict:
    r"""Dilution statistics of attention rows at their answer keys.

    For each row (batch :math:`b`, head :math:`h`, query :math:`i`) with answer key :math:`a` and
    :math:`n` visible keys :math:`V`:

    .. math::
        w = p_a,\quad \Delta = \ell_a - \frac{1}{n-1}\sum_{j\in V\setminus a}\ell_j,\quad
        \hat w = \texttt{needle\_probability}(n, \Delta, \tau) = \frac{1}{1+(n-1)e^{-\tau\Delta}},

    and the normalised entropy :math:`H(p)/\ln n`. For a softmax row :math:`p = \operatorname{softmax}(\tau\ell)`
    with all other logits equal, :math:`w = \hat w` exactly (the needle model of
    docs/notes/field.md §4.1); otherwise :math:`w \le \hat w` (Jensen).

    Args:
      weights: ``[B, N, Q, T]`` attention weights (rows sum to 1 over the visible keys).
      logits: ``[B, N, Q, T]`` logits :math:`\ell` before the temperature.
      tau: ``[B, Q, N]`` query inverse temperatures.
      visible: boolean, broadcastable to ``[B, N, Q, T]``.
      answer_positions: ``[B, Q]`` int.

    Returns:
      Dict of ``[B, N, Q]`` arrays: ``weight``, ``entropy``, ``gap``, ``tau``, ``n``, ``closed_form``.

    Example:
      >>> import jax.numpy as jnp
      >>> from softmax_stability import maps
      >>> ell = jnp.array([0.0, 0.0, 2.0, 0.0])[None, None, None]   # a needle at key 2
      >>> p = maps.softmax(1.5 * ell)
      >>> m = dilution_measurements(p, ell, jnp.full((1, 1, 1), 1.5), jnp.ones((1, 1, 1, 4), bool),
      ...                           jnp.array([[2]]))
      >>> round(float(m["weight"][0, 0, 0]), 6) == round(float(m["closed_form"][0, 0, 0]), 6)
      True
    """
    w = jnp.asarray(weights)
    ell = jnp.asarray(logits)
    B, N, Q, T = w.shape
    vis = jnp.broadcast_to(jnp.asarray(visible), w.shape)
    a = jnp.broadcast_to(jnp.asarray(answer_positions)[:, None, :, None], (B, N, Q, 1))
    w_ans = jnp.take_along_axis(w, a, axis=-1)[..., 0]
    l_ans = jnp.take_along_axis(ell, a, axis=-1)[..., 0]
    n = jnp.sum(vis, axis=-1)
    others = vis & (jnp.arange(T) != a)
    mean_other = jnp.sum(jnp.where(others, ell, 0.0), axis=-1) / jnp.maximum(n - 1, 1)
    gap = l_ans - mean_other
    t = jnp.transpose(jnp.asarray(tau), (0, 2, 1)).astype(w.dtype)
    ent = dilution.normalized_entropy(w, where=vis, check_probability=False)
    closed = dilution.needle_probability(n.astype(w.dtype), gap, t)
    return {"weight": w_ans, "entropy": ent, "gap": gap, "tau": t, "n": n, "closed_form": closed}


def calibrated_needle(weight: Any, n: Any, tau: Any) -> np.ndarray:
    r"""The needle law fitted at the first length and extrapolated to the others.

    With :math:`w_0, n_0, \tau_0` the measured answer weight, number of keys and temperature at the
    training length, the effective gap :math:`\Delta_0 = (\operatorname{logit} w_0 + \ln(n_0-1))/\tau_0`
    is the one at which :func:`softmax_stability.dilution.needle_probability` gives exactly
    :math:`w_0`; the prediction at length :math:`i` is ``needle_probability(n_i, Delta_0, tau_i)``.
    It holds if the answer's logit and the spread of the other logits do not change with the
    length, so that only the count :math:`n` dilutes (the SSA dilution argument,
    docs/notes/selective_attention.md §2.2).

    Args:
      weight, n, tau: ``[seeds, lengths]`` (or ``[lengths]``) measured means.

    Returns:
      The prediction, same shape; column 0 equals ``weight`` (up to rounding).

    Example:
      >>> w = calibrated_needle([[0.9, 0.5]], [[32, 64]], [[1.0, 1.0]])
      >>> [round(float(x), 4) for x in w[0]]
      [0.9, 0.8158]
    """
    w = np.clip(np.asarray(weight, np.float64), 1e-12, 1 - 1e-12)
    n = np.asarray(n, np.float64)
    t = np.asarray(tau, np.float64)
    d0 = (np.log(w[..., :1]) - np.log1p(-w[..., :1]) + np.log(np.maximum(n[..., :1] - 1, 1e-300))) / t[..., :1]
    return np.asarray(dilution.needle_probability(n, d0, t), np.float64)


def steps_to_target(accuracy: Any, target: float, window: int = 20) -> float:
    """First training step at which the trailing ``window``-step mean of ``accuracy`` reaches
    ``target`` (steps counted from 1); ``nan`` if it never does.

    Example:
      >>> steps_to_target([0.0, 0.5, 1.0, 1.0, 1.0], 0.9, window=2)
      4.0
      >>> import math; math.isnan(steps_to_target([0.1, 0.2], 0.9, window=1))
      True
    """
    acc = np.asarray(accuracy, dtype=float)
    window = check_int_in_range(window, "window", 1)
    if acc.size < window:
        return float("nan")
    c = np.cumsum(np.concatenate([[0.0], acc]))
    mean = (c[window:] - c[:-window]) / window
    hit = np.nonzero(mean >= target - 1e-12)[0]
    return float(hit[0] + window) if hit.size else float("nan")


# ----------------------------------------------------------------------------------------------
# training and evaluation


def _optimizer(lr: float):
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(lr))


def _loss(params, batch: rt.RetrievalBatch, cfg: dec.DecoderConfig):
    logits = dec._forward(params, batch.tokens, cfg, batch.query_positions, False)[0]
    lp = jax.nn.log_softmax(logits.astype(jnp.float32))
    ce = -jnp.take_along_axis(lp, batch.answers[..., None], axis=-1)[..., 0]
    acc = jnp.mean((jnp.argmax(logits, -1) == batch.answers).astype(jnp.float32))
    return jnp.mean(ce), acc


def _train_chunk_impl(params, opt_state, seed_keys, step0, cfg, task, batch_size, length, chunk, lr):
    opt = _optimizer(lr)

    def one_seed(params, opt_state, skey):
        def body(carry, step):
            params, opt_state = carry
            b = rt._generate(jax.random.fold_in(skey, step), task, batch_size, length)
            (loss, acc), g = jax.value_and_grad(_loss, has_aux=True)(params, b, cfg)
            upd, opt_state = opt.update(g, opt_state, params)
            return (optax.apply_updates(params, upd), opt_state), (loss, acc)

        (params, opt_state), hist = jax.lax.scan(body, (params, opt_state),
                                                 step0 + jnp.arange(chunk, dtype=jnp.int32))
        return params, opt_state, hist

    return jax.vmap(one_seed)(params, opt_state, seed_keys)


_train_chunk = jax.jit(_train_chunk_impl, static_argnums=(4, 5, 6, 7, 8, 9))


def _init(seed_keys, cfg, lr):
    # eager, one seed at a time, then stacked: cheaper than compiling a vmapped init (measured:
    # 0.5 s vs 1.8 s CPU for the second variant of a process)
    per_seed = [dec.init(jax.random.fold_in(k, 10**6), cfg) for k in seed_keys]
    params = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *per_seed)
    return params, jax.vmap(_optimizer(lr).init)(params)


def _eval_impl(params, batch, cfg):
    def one_seed(params):
        logits, probes = dec._forward(params, batch.tokens, cfg, batch.query_positions, True)
        correct = (jnp.argmax(logits, -1) == batch.answers).astype(jnp.float32)  # [B, Q]
        per_layer = [dilution_measurements(p["weights"], p["logits"], p["tau"], p["visible"],
                                           batch.answer_positions) for p in probes]
        stacked = {k: jnp.stack([m[k] for m in per_layer]) for k in per_layer[0]}  # [layers, B, N, Q]
        return correct, stacked

    return jax.vmap(one_seed)(params)


_eval = jax.jit(_eval_impl, static_argnums=(2,))


def _eval_batch(r: dict, task: rt.RetrievalTask) -> rt.RetrievalBatch:
    """The evaluation sequences of every test length, right-padded to the longest and stacked.
    Drawn from a key that depends only on the task and length, so every variant sees the same."""
    T = max(r["test_lengths"])
    parts = []
    for t in r["test_lengths"]:
        b = rt.generate(jax.random.fold_in(jax.random.PRNGKey(2**20 + 7), t), task,
                        batch_size=r["eval_size"], length=t)
        parts.append(rt.pad_batch(b, T))
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *parts)


def _evaluate(params, r: dict, cfg: dec.DecoderConfig, task: rt.RetrievalTask):
    batch = _eval_batch(r, task)
    correct, m = _eval(params, batch, cfg)
    S, nL, E = len(r["seeds"]), len(r["test_lengths"]), r["eval_size"]
    acc = np.asarray(correct).reshape(S, nL, -1).mean(-1)  # [S, lengths]
    # means over sequences and queries per (seed, length, layer, head)
    means = {}
    for k, v in m.items():
        v = np.asarray(v, dtype=np.float64)  # [S, layers, B, N, Q]
        Lr, N = v.shape[1], v.shape[3]
        v = v.reshape(S, Lr, nL, E, N, -1).mean(axis=(3, 5))  # [S, layers, lengths, N]
        means[k] = v
    # retrieval head: largest mean answer weight at the first (training) length
    w0 = means["weight"][:, :, 0, :].reshape(S, -1)
    flat = np.argmax(w0, axis=1)
    N = means["weight"].shape[-1]
    heads = [[int(f // N), int(f % N)] for f in flat]
    ev = {"accuracy": acc}
    for k in ("weight", "entropy", "gap", "tau", "closed_form", "n"):
        ev[k] = np.stack([means[k][s, h[0], :, h[1]] for s, h in enumerate(heads)])
    return ev, heads


def _read_checkpoint(entry: Path, like):
    cj, cz = entry / "ckpt.json", entry / "ckpt.npz"
    if not cj.exists():
        return None
    try:
        meta = json.loads(cj.read_text())
        data = cz.read_bytes()
        if sha256(data) != meta["npz_sha256"]:
            raise ValueError("ckpt.npz checksum mismatch")
        tree = npz_to_tree(data, like)
        if np.shape(meta["loss"])[-1] != meta["step"]:
            raise ValueError("checkpoint history length mismatch")
    except (OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(f"discarding corrupt checkpoint in {entry}: {err}", CorruptCacheWarning, stacklevel=3)
        return None
    return tree, meta


def _load_finished(entry: Path, key: str) -> RetrievalResult | None:
    payload = read_finished_payload(entry, key)
    if payload is None:
        return None
    return RetrievalResult(payload["config"], {k: np.asarray(v) for k, v in payload["history"].items()},
                           {k: np.asarray(v, dtype=float) for k, v in payload["evaluation"].items()},
                           payload["head"], payload["parameters"], payload["seconds"], key, True, entry)


def load_params(result: RetrievalResult):
    """The trained parameters of a finished run, stacked over its seeds (checksums verified)."""
    _load_finished(result.path, result.key)
    spec = RetrievalRun(**{**result.config, "seeds": tuple(result.config["seeds"]),
                           "test_lengths": tuple(result.config["test_lengths"])})
    cfg = spec.decoder_config()
    one = jax.eval_shape(lambda k: dec.init(k, cfg), jax.random.PRNGKey(0))
    like = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct((len(spec.seeds),) + x.shape, x.dtype), one)
    return npz_to_tree((result.path / "params.npz").read_bytes(), like)


def run(spec: RetrievalRun, cache_dir: str | Path, *, progress: bool = True) -> RetrievalResult:
    """Train ``spec`` (all its seeds at once, vmapped) and measure it, or load it from the cache.

    Args:
      spec: the :class:`RetrievalRun`.
      cache_dir: cache directory (created; must be writable).
      progress: a ``tqdm`` bar over the training chunks.

    Returns:
      :class:`RetrievalResult`.

    Raises:
      ValueError: a bad configuration (``train_length`` below the task's minimum, a test length
        below the training length, ``k_top`` above the training length, a non-positive SSMax
        ``ssmax_s``...), before any work.
      PermissionError: ``cache_dir`` not writable, before any work.
    """
    r = spec.resolved()
    key = spec.key()
    root = ensure_writable_dir(cache_dir, "cache")
    entry = root / key
    try:
        res = _load_finished(entry, key)
        if res is not None:
            return res
    except ValueError as err:
        warnings.warn(f"{err}; rerunning", CorruptCacheWarning, stacklevel=2)
        shutil.rmtree(entry, ignore_errors=True)
    entry.mkdir(parents=True, exist_ok=True)
    task, cfg = spec.task_config(), spec.decoder_config()
    seed_keys = jnp.stack([jax.random.PRNGKey(s) for s in r["seeds"]])
    t0 = time.perf_counter()
    params, opt_state = _init(seed_keys, cfg, r["lr"])
    S = len(r["seeds"])
    loss = np.zeros((S, 0))
    acc = np.zeros((S, 0))
    start = 0
    ck = _read_checkpoint(entry, (params, opt_state))
    if ck is not None:
        (params, opt_state), meta = ck
        start = int(meta["step"])
        loss, acc = np.asarray(meta["loss"]).reshape(S, start), np.asarray(meta["accuracy"]).reshape(S, start)

    from tqdm.auto import tqdm

    chunk = r["chunk"]
    bar = tqdm(range(start, r["steps"], chunk), desc=f"{r['task']} {r['variant']}", leave=False,
               disable=None if progress else True, initial=start // chunk, total=r["steps"] // chunk)
    for s0 in bar:
        params, opt_state, (l, a) = _train_chunk(params, opt_state, seed_keys, jnp.int32(s0), cfg, task,
                                                 r["batch_size"], r["train_length"], chunk, float(r["lr"]))
        loss = np.concatenate([loss, np.asarray(l, np.float64)], axis=1)
        acc = np.concatenate([acc, np.asarray(a, np.float64)], axis=1)
        blob = tree_to_npz((params, opt_state))
        atomic_write_bytes(entry / "ckpt.npz", blob)
        atomic_write_json(entry / "ckpt.json", {"step": s0 + chunk, "npz_sha256": sha256(blob),
                                                "loss": loss.tolist(), "accuracy": acc.tolist()})
        bar.set_postfix(acc=f"{float(a[:, -1].mean()):.2f}")
    t_train = time.perf_counter() - t0
    t1 = time.perf_counter()
    ev, heads = _evaluate(params, r, cfg, task)
    t_eval = time.perf_counter() - t1
    one = jax.tree_util.tree_map(lambda x: x[0], params)
    pbytes = tree_to_npz(params)
    atomic_write_bytes(entry / "params.npz", pbytes)
    payload = {"key": key, "config": r, "history": {"loss": loss.tolist(), "accuracy": acc.tolist()},
               "evaluation": {k: np.asarray(v).tolist() for k, v in ev.items()}, "head": heads,
               "parameters": dec.parameter_count(one),
               "seconds": {"train": round(t_train, 3), "eval": round(t_eval, 3)},
               "params_sha256": sha256(pbytes), "version": VERSION}
    payload = json.loads(json.dumps(payload))  # NaN-safe round trip, as stored
    atomic_write_json(entry / "result.json", {"sha256": payload_sha(payload), "payload": payload})
    for f in ("ckpt.npz", "ckpt.json"):
        (entry / f).unlink(missing_ok=True)
    return RetrievalResult(
        r, {"loss": loss, "accuracy": acc}, {k: np.asarray(v, float) for k, v in ev.items()}, heads,
        payload["parameters"], payload["seconds"], key, False, entry)


def run_many(specs: Iterable[RetrievalRun], cache_dir: str | Path, *, progress: bool = True,
             workers: int | None = None) -> list[RetrievalResult]:
    """:func:`run` over several configurations (all validated first), with a ``tqdm`` bar over runs.

    Runs are independent and deterministic, so ``workers`` threads train them concurrently (XLA
    runs outside the GIL; a run of this small model keeps about one CPU core busy); the results
    equal those of one-by-one runs. Default: :func:`softmax_stability.experiments.runner.default_workers`
    (one per CPU core, at most 8, on a CPU backend; one per device otherwise).

    Returns:
      The results in the order of ``specs``.
    """
    from softmax_stability.experiments.runner import default_workers

    specs = list(specs)
    for s in specs:
        s.resolved()
    ensure_writable_dir(cache_dir, "cache")
    workers = default_workers() if workers is None else check_int_in_range(workers, "workers", 1)
    workers = max(1, min(workers, len(specs)))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(specs), desc="SSA retrieval runs", unit="run",
               disable=None if progress and len(specs) > 1 else True)

    def one(spec):
        res = run(spec, cache_dir, progress=progress and workers == 1)
        bar.update(1)
        return res

    try:
        if workers == 1:
            return [one(s) for s in specs]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ssa-run") as pool:
            return list(pool.map(one, specs))
    finally:
        bar.close()


# ----------------------------------------------------------------------------------------------
# profiles


def profile_settings(profile: str) -> dict[str, Any]:
    """Tasks, variants and the shared :class:`RetrievalRun` fields of a figure profile.

    ``smoke`` (the test suite) trains two variants for a few steps; ``quick`` (``make run``) every
    variant on both tasks at :math:`L = 32` with 3 seeds, sized by measurement to build the four
    figures together in about 4 minutes on 2 cores; ``full`` uses :math:`L = 64`, 5 seeds and
    longer training.

    Example:
      >>> profile_settings("quick")["common"]["train_length"]
      32
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if profile == "smoke":
        return {"tasks": ("passkey",), "variants": ("vanilla", "ssa_shared"),
                "common": dict(seeds=(0, 1), train_length=8, test_lengths=(8, 16), steps=20, chunk=10,
                               batch_size=8, eval_size=16, d_model=16, num_heads=2)}
    if profile == "quick":
        return {"tasks": ("passkey", "mqar"), "variants": dec.VARIANTS,
                "common": dict(seeds=(0, 1, 2), train_length=32, steps=300, chunk=50, batch_size=32,
                               eval_size=128, d_model=32, num_heads=2)}
    return {"tasks": ("passkey", "mqar"), "variants": dec.VARIANTS,
            "common": dict(seeds=(0, 1, 2, 3, 4), train_length=64, steps=1500, chunk=100, batch_size=64,
                           eval_size=256, d_model=64, num_heads=4)}


def profile_runs(profile: str) -> list[RetrievalRun]:
    """Every :class:`RetrievalRun` of a profile (task-major, variants in :data:`VARIANTS` order)."""
    s = profile_settings(profile)
    return [RetrievalRun(task=t, variant=v, **s["common"]) for t in s["tasks"] for v in s["variants"]]


def collect(profile: str, cache_dir: str | Path, *, progress: bool = True) -> dict[tuple[str, str], RetrievalResult]:
    """Run (or load from ``cache_dir``) every run of ``profile``; ``{(task, variant): result}``."""
    specs = profile_runs(profile)
    return {(s.task, s.variant): r for s, r in zip(specs, run_many(specs, cache_dir, progress=progress))}


# ----------------------------------------------------------------------------------------------
# summaries (what the figures plot and state)


def _q(x, axis=0):
    x = np.asarray(x, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return (np.nanmedian(x, axis=axis), np.nanpercentile(x, 25, axis=axis),
                np.nanpercentile(x, 75, axis=axis))


def accuracy_rows(results: dict) -> list[list]:
    """``[task, variant, length, multiple, median, q25, q75]`` of the answer accuracy over seeds."""
    rows = []
    for (task, var), res in results.items():
        L = res.config["train_length"]
        med, lo, hi = _q(res.evaluation["accuracy"])
        for i, n in enumerate(res.lengths):
            rows.append([task, var, int(n), n / L, med[i], lo[i], hi[i]])
    return rows


DILUTION_HEADER = ["task", "variant", "normalizer", "length", "weight_median", "weight_q25", "weight_q75",
                   "closed_form_mean_gap", "needle_law_from_L", "normalized_entropy", "gap", "tau", "n"]


def dilution_rows(results: dict) -> list[list]:
    """Rows of :data:`DILUTION_HEADER`: medians over seeds in the retrieval head of the measured
    answer weight (with its 25/75% range), the closed form at the measured mean gap and temperature,
    the needle law calibrated at the training length (:func:`calibrated_needle`; softmax variants
    only, NaN for the sparse maps, whose weights follow another law), the normalised entropy, gap,
    temperature and number of keys."""
    rows = []
    for (task, var), res in results.items():
        norm = dec.DecoderConfig(2, var).normalizer
        ev = res.evaluation
        w, wl, wh = _q(ev["weight"])
        c = _q(ev["closed_form"])[0]
        cal = _q(calibrated_needle(ev["weight"], ev["n"], ev["tau"]))[0]
        if norm != "softmax":
            cal = np.full_like(cal, np.nan)
        e, g, t, nn = (_q(ev[k])[0] for k in ("entropy", "gap", "tau", "n"))
        for i, n in enumerate(res.lengths):
            rows.append([task, var, norm, int(n), w[i], wl[i], wh[i], c[i], cal[i], e[i], g[i], t[i], nn[i]])
    return rows


def steps_rows(results: dict, reference: str = "vanilla") -> list[list]:
    """``[task, variant, target, median steps, q25, q75, reached (seeds), ratio to reference]``
    (steps to the run's ``target_accuracy`` by :func:`steps_to_target` with a 20-step window;
    ``ratio`` = reference median / variant median: above 1 is faster than the reference; NaN when
    either never reaches the target in a majority of seeds)."""
    rows, med = [], {}
    for (task, var), res in results.items():
        tgt = res.config["target_accuracy"]
        win = min(20, res.config["steps"])
        st = np.array([steps_to_target(a, tgt, win) for a in res.history["accuracy"]])
        reached = int(np.sum(~np.isnan(st)))
        m = float(np.median(st)) if reached * 2 > len(st) else float("nan")  # nan if most never reach
        q = _q(np.where(np.isnan(st), res.config["steps"], st))
        med[(task, var)] = m
        rows.append([task, var, tgt, m, q[1], q[2], reached, len(st)])
    for row in rows:
        ref = med.get((row[0], reference), float("nan"))
        row.append(ref / row[3] if row[3] > 0 else float("nan"))
    return rows


def overhead_rows(settings: dict | None = None, profile: str = "quick") -> list[list]:
    """Parameter overhead of each variant over vanilla: ``[variant, new parameters per layer, model
    parameters, overhead % of the model, overhead % of attention, GPT-2 small overhead %]``.

    The SSA rows' new parameters are :func:`softmax_stability.attention.ssa_new_parameter_count`
    and their shares :func:`~softmax_stability.attention.ssa_parameter_overhead` (checked against
    the difference of the decoders' parameter counts); SSMax adds one :math:`s` per head. The last
    column is the same layer at GPT-2 small (12 layers, d = 768, 12 heads), the scale of the SSA
    abstract's "fewer than 0.5% new parameters" (with weight sharing).

    Example:
      >>> rows = {r[0]: r for r in overhead_rows(profile="smoke")}
      >>> rows["vanilla"][1], rows["ssa_shared"][1]
      (0, 34)
    """
    s = profile_settings(profile) if settings is None else settings
    c = s["common"]
    spec = RetrievalRun(task=s["tasks"][0], **c)
    base = dec.DecoderConfig(spec.task_config().vocab_size, "vanilla", spec.d_model, spec.num_heads,
                             spec.num_layers, spec.mlp_ratio, spec.k_top, spec.ssmax_s)
    n_base = dec.parameter_count(jax.eval_shape(lambda k: dec.init(k, base), jax.random.PRNGKey(0)))
    gpt = attention.transformer_parameter_count(vocab_size=50257, context=1024, d_model=768, num_layers=12)
    rows = []
    for v in dec.VARIANTS:
        cfg = dataclasses.replace(base, variant=v)
        n = dec.parameter_count(jax.eval_shape(lambda k: dec.init(k, cfg), jax.random.PRNGKey(0)))
        new_layer = (n - n_base) // cfg.num_layers
        sc = dec.ssa_config(cfg)
        if sc is not None:
            if attention.ssa_new_parameter_count(sc) != new_layer:
                raise AssertionError(f"{v}: parameter difference {new_layer} != ssa_new_parameter_count")
            model = 100 * attention.ssa_parameter_overhead(sc, num_layers=cfg.num_layers, model_parameters=n_base)
            attn = 100 * attention.ssa_parameter_overhead(sc, num_layers=cfg.num_layers)
            big = dataclasses.replace(sc, d_model=768, num_heads=12, head_dim=None)
            gpt2 = 100 * attention.ssa_parameter_overhead(big, num_layers=12, model_parameters=gpt)
        else:
            model = 100 * new_layer * cfg.num_layers / n_base
            attn = 100 * new_layer / attention.attention_parameter_count(attention.SSAConfig(cfg.d_model, cfg.num_heads))
            gpt2 = 100 * (12 * 12 if v == "ssmax" else 0) / gpt
        rows.append([v, new_layer, n, model, attn, gpt2])
    return rows


def _fmt(x, spec=".2f", missing="n/a"):
    return missing if x is None or not np.isfinite(x) else format(x, spec)


def accuracy_outcome(results: dict, reference: str = "vanilla") -> list[str]:
    """One measured sentence per task: accuracy at the longest length, best variant vs reference."""
    lines = []
    for task in dict.fromkeys(t for t, _ in results):
        acc = {v: np.median(r.evaluation["accuracy"], axis=0) for (t, v), r in results.items() if t == task}
        res0 = next(r for (t, _), r in results.items() if t == task)
        L, Lmax = res0.config["train_length"], int(res0.lengths[-1])
        ref = acc.get(reference)
        best = max(acc, key=lambda v: acc[v][-1])
        better = [v for v in acc if v != reference and ref is not None and acc[v][-1] > ref[-1] + 1e-9]
        worse = [v for v in acc if v != reference and ref is not None and acc[v][-1] < ref[-1] - 1e-9]
        lines.append(f"{task}: at {Lmax} tokens ({Lmax // L}x the training length {L}) median accuracy "
                     f"{reference} {_fmt(ref[-1] if ref is not None else None)}, best {best} {_fmt(acc[best][-1])}; "
                     f"above {reference}: {', '.join(better) or 'none'}; below: {', '.join(worse) or 'none'}")
    return lines


def dilution_outcome(results: dict) -> list[str]:
    """Per task: the answer weight at the first and last length per variant, and for the softmax
    variants the largest distance of the mean-gap closed form and of the calibrated needle law from
    the measured weight (medians over seeds)."""
    rows = dilution_rows(results)
    lines = []
    for task in dict.fromkeys(r[0] for r in rows):
        falls, d_closed, d_cal = [], [], []
        for var in dict.fromkeys(r[1] for r in rows if r[0] == task):
            rr = [r for r in rows if r[0] == task and r[1] == var]
            falls.append(f"{var} {_fmt(rr[0][4])}->{_fmt(rr[-1][4])}")
            if rr[0][2] == "softmax":
                d_closed.append(max(abs(r[7] - r[4]) for r in rr))
                d_cal.append(max(abs(r[8] - r[4]) for r in rr))
        lines.append(f"{task}: median answer weight, shortest->longest length: " + "; ".join(falls))
        if d_closed:
            lines.append(f"{task}, softmax variants: max |closed form at mean gap - measured| "
                         f"{_fmt(min(d_closed), '.3f')}..{_fmt(max(d_closed), '.3f')}; max |needle law "
                         f"calibrated at L - measured| {_fmt(min(d_cal), '.3f')}..{_fmt(max(d_cal), '.3f')}")
    return lines


def steps_outcome(rows: Sequence[Sequence]) -> list[str]:
    """Per task: steps to target per variant and the ratio to vanilla, from :func:`steps_rows`."""
    lines = []
    for task in dict.fromkeys(r[0] for r in rows):
        parts = [f"{r[1]} " + (f"{r[3]:.0f} ({_fmt(r[-1], '.2f')}x)" if np.isfinite(r[3]) else
                               f"not reached (reached by {r[6]}/{r[7]} seeds)")
                 for r in rows if r[0] == task]
        lines.append(f"{task}: steps to {rows[0][2]:.0%} (speed-up vs vanilla): " + "; ".join(parts))
    return lines


def overhead_outcome(rows: Sequence[Sequence]) -> str:
    r = {row[0]: row for row in rows}
    return (f"weight-shared SSA adds {r['ssa_shared'][1]} parameters per layer ({r['ssa_shared'][3]:.2f}% of "
            f"this model; {r['ssa_shared'][5]:.4f}% at GPT-2 small, under the abstract's 0.5%); the separate "
            f"token MLPs add {r['ssa_query_value'][1]} ({r['ssa_query_value'][3]:.2f}%)")
