"""Loss landscapes of trained SF models (SF Figs. 5/23 and 27): train or load FULL and TOPK(5) from
the runner's cache and compute (or load) their 2-D training-loss surfaces.

Protocol as the SF authors' ``ll-test.py``/``gen-loss-landscape.sh`` (docs/notes/semantic_focus.md §3):
two Gaussian directions rescaled per parameter tensor to that tensor's norm
(:mod:`softmax_stability.experiments.landscape`, ``normalization="tensor"``), direction seed 11111
(+ the caller's seed; drawn with ``jax.random``, so not the authors' exact directions), grid over
``[-1, 1]^2``, mean cross-entropy over the whole training set in evaluation mode.

The surfaces are cached as ``.npz`` files in a cache directory (keyed by the run and the grid), so
that the figures that plot them reuse one computation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["VARIANTS", "LANDSCAPE_VERSION", "NORMALIZATION", "grid_settings", "matched_loss_epochs",
           "compute_landscapes"]

VARIANTS = ("FULL", "TOPK(5)")
LANDSCAPE_VERSION = "sf-landscape-2"  # bump when what a cached surface means changes
NORMALIZATION = "tensor"  # the SF authors' ll-test.py


def grid_settings(profile: str) -> dict:
    """Grid size and half-width per profile (``full``: the authors' 200 points on [-1, 1])."""
    n = {"smoke": 5, "quick": 21, "medium": 21, "full": 200}[profile]
    return {"n": n, "half_width": 1.0}


def _load_cached(path, shape):
    with np.load(path) as z:
        d = {k: z[k] for k in z.files}
    if d["surface"].shape != shape or d["gram"].shape != (2, 2):
        raise ValueError("cached surface has the wrong shape")
    return d


def matched_loss_epochs(train_loss: dict[str, Any]) -> tuple[float, dict[str, int]]:
    """Epochs at which every variant has reached the same training loss.

    The target is the highest final training loss of the variants (the one that trained least
    reaches it at its last epoch); each variant is taken at the first epoch whose training loss
    (the running mean over that epoch, as the runner records it) is at or below the target.

    Args:
      train_loss: ``{variant: per-epoch training losses}``.

    Returns:
      ``(target, {variant: epoch})`` with epochs counted from 1.

    Example:
      >>> matched_loss_epochs({"FULL": [0.7, 0.6, 0.5], "TOPK(5)": [0.65, 0.3, 0.1]})
      (0.5, {'FULL': 3, 'TOPK(5)': 2})
    """
    curves = {v: np.asarray(c, dtype=float) for v, c in train_loss.items()}
    if not curves or any(c.ndim != 1 or c.size == 0 for c in curves.values()):
        raise ValueError("train_loss must map each variant to a non-empty 1-D sequence of losses")
    target = float(max(c[-1] for c in curves.values()))
    return target, {v: int(np.argmax(c <= target)) + 1 for v, c in curves.items()}


def compute_landscapes(profile: str, *, seed: int = 0, runs_dir: str | Path, cache_dir: str | Path,
                       progress: bool = True) -> dict[str, Any]:
    """Train or load FULL and TOPK(5) for ``profile`` and compute (or load) their surfaces, with
    the two models taken at matched training loss.

    The models are compared at the same training loss, not after the same number of epochs (TOPK(5)
    usually fits the task long before FULL does): :func:`matched_loss_epochs` picks, for each
    variant, the first epoch at which its training loss reaches the highest final loss of the two,
    and the model is that run stopped at that epoch. A run stopped at epoch ``e`` is the same
    trajectory as the full run up to ``e`` (each epoch's data order and dropout key depend only on
    the seed and the epoch, and the learning rate decays per epoch), so it is trained with
    ``epochs=e`` through the runner's cache.

    Args:
      profile: a profile of :func:`softmax_stability.experiments.runner.profile_settings`; the task is
        Even Pairs where the profile has it, the run seed the profile's first seed.
      seed: added to the direction seed 11111.
      runs_dir: the runner's cache (shared with the other SF figures).
      cache_dir: where the surfaces are cached.
      progress: show progress bars.

    Returns:
      ``{"task", "seed", "alphas", "betas", "direction_seed", "normalization", "params", "match",
      "surfaces": {variant: {"surface", "gram", "theta_norm", "loss0", "acc0", "run_key", "epoch",
      "epochs_run", "train_loss"}}}``; ``match`` holds the target loss;
      ``params`` records the settings (for a figure's provenance).
    """
    import jax
    import jax.numpy as jnp

    from softmax_stability._io import atomic_write_bytes
    from softmax_stability.experiments import landscape, runner, tasks as tasks_mod
    from softmax_stability.experiments.sf_model import apply, loss_and_accuracy

    s = runner.profile_settings(profile)
    task = "even_pairs" if "even_pairs" in s["tasks"] else s["tasks"][0]
    run_seed = s["seeds"][0]
    g = grid_settings(profile)
    alphas = np.linspace(-g["half_width"], g["half_width"], g["n"])
    betas = alphas.copy()
    dseed = landscape.SF_DIRECTION_SEED + int(seed)
    params = dict(task=task, run_seed=run_seed, overrides=runner.profile_overrides(profile, task),
                  cache=Path(runs_dir).name, grid_points=g["n"], half_width=g["half_width"], direction_seed=dseed,
                  normalization=NORMALIZATION, loss="mean training cross-entropy, evaluation mode, whole training set")
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    out = {"task": task, "seed": run_seed, "alphas": alphas, "betas": betas, "direction_seed": dseed,
           "normalization": NORMALIZATION, "params": params, "surfaces": {}}
    batch = None if jax.default_backend() == "cpu" else 4
    full_runs = {v: runner.run(runner.profile_config(profile, task, v, run_seed), runs_dir, progress=progress)
                 for v in VARIANTS}
    target, epochs = matched_loss_epochs({v: r.history["train_loss"] for v, r in full_runs.items()})
    out["match"] = {"train_loss": target, "epochs": epochs,
                    "rule": "each variant at the first epoch whose training loss is <= the highest final "
                            "training loss of the variants"}
    params["matched_train_loss"] = target
    params["matched_epochs"] = epochs
    for v in VARIANTS:
        res = full_runs[v]
        if epochs[v] < len(res.history["train_loss"]):
            cfg_v = dataclasses.replace(runner.profile_config(profile, task, v, run_seed), epochs=epochs[v])
            res = runner.run(cfg_v, runs_dir, progress=progress)
        meta = {"epoch": epochs[v], "epochs_run": len(full_runs[v].history["train_loss"]),
                "train_loss": float(full_runs[v].history["train_loss"][epochs[v] - 1])}
        key = hashlib.sha256(json.dumps([LANDSCAPE_VERSION, res.key, g, dseed, NORMALIZATION],
                                        sort_keys=True).encode()).hexdigest()[:24]
        path = cache / f"{key}.npz"
        if path.exists():
            try:
                out["surfaces"][v] = {**_load_cached(path, (alphas.size, betas.size)), "run_key": res.key, **meta}
                continue
            except (OSError, ValueError, KeyError) as err:
                warnings.warn(f"recomputing corrupt landscape cache {path}: {err}")
        r = res.config
        cfg = runner.RunConfig(**r)
        data = tasks_mod.load_task(task, r["seed"], n_train=r["n_train"], n_val=r["n_val"], length=r["length"],
                                   min_length=r.get("min_length"))
        x = tasks_mod.prepare_inputs(data.x_train, data.spec, r["variant"])
        mc, _ = runner.model_config(cfg, x.shape[1])
        params = runner.load_params(res)
        xj, yj = jnp.asarray(x), jnp.asarray(data.y_train)

        def loss_fn(p, xj=xj, yj=yj, mc=mc):
            return loss_and_accuracy(apply(p, xj, mc), yj)[0]

        loss0, acc0 = (float(t) for t in jax.jit(lambda p: loss_and_accuracy(apply(p, xj, mc), yj))(params))
        d1, d2 = landscape.random_directions(dseed, params, normalization=NORMALIZATION,
                                             stack_axes=landscape.SF_STACK_AXES,
                                             filter_axis=landscape.SF_FILTER_AXES)
        surf = np.asarray(landscape.loss_surface(loss_fn, params, d1, d2, alphas, betas, batch_size=batch),
                          dtype=np.float64)
        gram = np.asarray(landscape.direction_gram(d1, d2), dtype=np.float64)
        th = float(np.sqrt(sum(float(jnp.sum(jnp.square(p.astype(jnp.float32))))
                               for p in jax.tree_util.tree_leaves(params))))
        rec = {"surface": surf, "gram": gram, "theta_norm": np.float64(th), "loss0": np.float64(loss0),
               "acc0": np.float64(acc0)}
        buf = io.BytesIO()
        np.savez(buf, **rec)
        atomic_write_bytes(path, buf.getvalue())
        out["surfaces"][v] = {**rec, "run_key": res.key, **meta}
    return out
