"""SF Figs. 5/23 (reproduced at reduced size): 2-D training-loss landscapes of FULL and TOPK(5).

The trained models come from the SF runner cache (``<out>/sf_runs``, shared with ``sf_fig1``;
``runner.profile_settings``): one task (Even Pairs where the profile has it) and the profile's
first seed. Protocol as the SF authors' ``ll-test.py``/``gen-loss-landscape.sh`` (reference notes
§3): two Gaussian directions rescaled per parameter tensor to that tensor's norm
(:mod:`softmax_stability.experiments.landscape`, ``normalization="tensor"``), direction seed
11111 (+ the figure seed; drawn with ``jax.random``, so not the authors' exact directions), grid
over ``[-1, 1]^2``, mean cross-entropy over the whole training set in evaluation mode; log-spaced
contour levels. Grid: 200 x 200 (the authors') in ``full``, 11 x 11 in ``quick``, 5 x 5 in
``smoke``. Both panels share one colour scale.

The surfaces are cached in ``<out>/sf_landscapes`` (keyed by the run and the grid) so that
``sf_fig27`` reuses them.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings

import matplotlib.pyplot as plt
import numpy as np

from figures._common import FigureContext, figure

VARIANTS = ("FULL", "TOPK(5)")
COLORS = {"FULL": "black", "TOPK(5)": "mediumaquamarine"}
LANDSCAPE_VERSION = "sf-landscape-1"  # bump when what a cached surface means changes
NORMALIZATION = "tensor"  # the SF authors' ll-test.py


def grid_settings(profile: str) -> dict:
    """Grid size and half-width per profile (``full``: the authors' 200 points on [-1, 1])."""
    n = {"smoke": 5, "quick": 11, "medium": 11, "full": 200}[profile]
    return {"n": n, "half_width": 1.0}


def _load_cached(path, shape):
    with np.load(path) as z:
        d = {k: z[k] for k in z.files}
    if d["surface"].shape != shape or d["gram"].shape != (2, 2):
        raise ValueError("cached surface has the wrong shape")
    return d


def compute_landscapes(ctx: FigureContext) -> dict:
    """Train or load FULL and TOPK(5) for ctx's profile and compute (or load) their surfaces.

    Returns ``{"task", "seed", "alphas", "betas", "direction_seed", "normalization",
    "surfaces": {variant: {"surface", "gram", "theta_norm", "loss0", "acc0", "run_key"}}}``.
    """
    import jax
    import jax.numpy as jnp

    from softmax_stability._io import atomic_write_bytes
    from softmax_stability.experiments import landscape, runner, tasks as tasks_mod
    from softmax_stability.experiments.sf_model import apply, loss_and_accuracy

    s = runner.profile_settings(ctx.profile)
    task = "even_pairs" if "even_pairs" in s["tasks"] else s["tasks"][0]
    seed = s["seeds"][0]
    g = grid_settings(ctx.profile)
    alphas = np.linspace(-g["half_width"], g["half_width"], g["n"])
    betas = alphas.copy()
    dseed = landscape.SF_DIRECTION_SEED + ctx.seed
    ctx.params.update(task=task, run_seed=seed, overrides=runner.profile_overrides(ctx.profile, task), cache="sf_runs", grid_points=g["n"],
                      half_width=g["half_width"], direction_seed=dseed, normalization=NORMALIZATION,
                      loss="mean training cross-entropy, evaluation mode, whole training set")
    cache = ctx.out_dir / "sf_landscapes"
    cache.mkdir(parents=True, exist_ok=True)
    out = {"task": task, "seed": seed, "alphas": alphas, "betas": betas, "direction_seed": dseed,
           "normalization": NORMALIZATION, "surfaces": {}}
    batch = None if jax.default_backend() == "cpu" else 4
    for v in VARIANTS:
        res = runner.run(runner.profile_config(ctx.profile, task, v, seed),
                         ctx.out_dir / "sf_runs", progress=ctx.show_progress)
        key = hashlib.sha256(json.dumps([LANDSCAPE_VERSION, res.key, g, dseed, NORMALIZATION],
                                        sort_keys=True).encode()).hexdigest()[:24]
        path = cache / f"{key}.npz"
        if path.exists():
            try:
                out["surfaces"][v] = {**_load_cached(path, (alphas.size, betas.size)), "run_key": res.key}
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
        out["surfaces"][v] = {**rec, "run_key": res.key}
    return out


def _levels(surfaces, n=30):
    finite = np.concatenate([s[np.isfinite(s)] for s in surfaces])
    lo, hi = float(finite.min()), float(finite.max())
    lo = max(lo, 1e-8)
    if hi <= lo * (1 + 1e-6):
        hi = lo * 1.01 + 1e-6
    return np.exp(np.linspace(np.log(lo), np.log(hi), n))


@figure(name="sf_loss_landscape", caption="Training-loss landscape of trained FULL and TOPK(5) models on the "
        "plane of two per-tensor-normalised random directions (shared log colour scale; x marks the trained "
        "parameters).", source="SF Figs. 5/23 (reproduced at reduced size)", order=63)
def make(ctx: FigureContext) -> None:
    import matplotlib.colors as mcols

    L = compute_landscapes(ctx)
    a, b = L["alphas"], L["betas"]
    surfs = [L["surfaces"][v]["surface"] for v in VARIANTS]
    levels = _levels(surfs)
    norm = mcols.LogNorm(vmin=levels[0], vmax=levels[-1])
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.3), squeeze=False)
    cs = None
    for ax, v, f in zip(axes[0], VARIANTS, surfs):
        rec = L["surfaces"][v]
        fm = np.ma.masked_invalid(f).T  # contour wants [y, x]
        cs = ax.contourf(a, b, fm, levels=levels, norm=norm, cmap="magma", extend="both")
        ax.contour(a, b, fm, levels=levels[::3], colors="w", linewidths=0.4, alpha=0.6)
        ax.plot([0], [0], "x", color="cyan", ms=8, mew=2)
        ax.set_title(f"{v}: L(θ) = {float(rec['loss0']):.3f}, acc {100 * float(rec['acc0']):.0f}%", fontsize=10)
        ax.set_xlabel(r"$\alpha$ (direction $d_1$)")
        ax.set_aspect("equal")
    axes[0, 0].set_ylabel(r"$\beta$ (direction $d_2$)")
    cb = fig.colorbar(cs, ax=axes[0].tolist(), shrink=0.9)
    ticks = np.geomspace(levels[0], levels[-1], 6)
    cb.set_ticks(ticks, labels=[f"{t:.3g}" for t in ticks])
    cb.minorticks_off()
    cb.set_label("training cross-entropy (log scale)")
    fig.suptitle(f"{L['task'].replace('_', ' ').title()}, seed {L['seed']}, {a.size}x{b.size} grid", fontsize=10)
    ctx.save_figure(fig)
    rows = [[v, float(x), float(y), float(L["surfaces"][v]["surface"][i, j])]
            for v in VARIANTS for i, x in enumerate(a) for j, y in enumerate(b)]
    ctx.save_csv(["variant", "alpha", "beta", "train_loss"], rows)
    md = [f"# Loss landscapes ({ctx.profile} profile)", "",
          f"Task `{L['task']}`, run seed {L['seed']}, {a.size}x{b.size} grid on [-1, 1]^2, directions normalised "
          f"per tensor (SF authors' protocol), direction seed {L['direction_seed']}.", "",
          "| variant | ‖θ‖ | L(θ) | train acc | min L on grid | max L on grid |", "|---|---|---|---|---|---|"]
    for v, f in zip(VARIANTS, surfs):
        rec = L["surfaces"][v]
        md.append(f"| {v} | {float(rec['theta_norm']):.3g} | {float(rec['loss0']):.4g} | "
                  f"{100 * float(rec['acc0']):.1f}% | {np.nanmin(f):.4g} | {np.nanmax(f):.4g} |")
    ctx.save_markdown("\n".join(md) + "\n")
