"""SF Fig. 1 (reproduced in JAX at reduced size): training loss and held-out accuracy per epoch.

Median over seeds with the 25-75% band, for FULL, BAND(5), BAND(5):1, BLOC(5), BLOC(5):1 and
TOPK(5) (ReLU) on the tasks of the profile. Runs come from
:mod:`softmax_stability.experiments.runner` and are cached under ``<out>/sf_runs`` (shared with
``sf_convergence_table``, ``sf_table6_measured`` and the landscape figures), so a rerun only plots.

The sizes, seeds and every deviation from the authors' setup are those of
``runner.profile_settings`` (the one source of truth): ``sf_fig1.md`` lists them as
``runner.profile_deviations`` computes them, and states what the run shows, computed from the
curves: the final median loss per variant and whether TOPK(5)'s median training loss lies below
FULL's over the late epochs (the second half of training), as SF Fig. 1 reports.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from figures._common import FigureContext, figure

COLORS = {"FULL": "black", "BAND(5)": "tab:blue", "BAND(5):1": "tab:cyan", "BLOC(5)": "tab:orange",
          "BLOC(5):1": "tab:olive", "TOPK(5)": "mediumaquamarine", "RND(5)": "tab:red"}
MOST = 0.75  # "most late epochs": the share of the second half that must agree


def collect_runs(ctx: FigureContext):
    """Run (or load) every configuration of ctx's profile; ``{(task, variant): [RunResult, ...]}``."""
    from softmax_stability.experiments import runner

    s = runner.profile_settings(ctx.profile)
    cfgs = runner.profile_configs(ctx.profile)
    ctx.params.update(tasks=list(s["tasks"]), variants=list(s["variants"]), seeds=list(s["seeds"]),
                      overrides=s["overrides"], task_overrides=s["task_overrides"], cache="sf_runs")
    results = runner.run_many(cfgs, ctx.out_dir / "sf_runs", progress=ctx.show_progress, seed_batch=s["seed_batch"])
    out: dict = {}
    for c, r in zip(cfgs, results):
        out.setdefault((c.task, r.config["variant"]), []).append(r)
    return s, out


def _band(curves: np.ndarray):
    return (np.median(curves, axis=0), np.percentile(curves, 25, axis=0), np.percentile(curves, 75, axis=0))


def separation(loss: dict[str, np.ndarray], reference: str = "FULL") -> dict[str, dict[str, float]]:
    """How each variant's training loss compares with ``reference``'s over the late epochs.

    Args:
      loss: ``{variant: array [seeds, epochs]}`` of training losses (must hold ``reference``).
      reference: the variant compared against.

    Returns:
      ``{variant: {...}}`` with the final median and 25/75% loss, ``late_epochs`` (the second
      half, epochs ``> E // 2``), ``below`` (share of late epochs whose median lies below the
      reference's median), ``band_below`` (share whose 75th percentile lies below the
      reference's 25th: the 25-75% bands do not overlap) and ``late_gap`` (mean over the late
      epochs of the reference's median minus the variant's: how much lower, in nats).

    Example:
      >>> full = np.array([[0.7, 0.7, 0.7, 0.7]] * 3)
      >>> sep = separation({"FULL": full, "TOPK(5)": full - 0.1})
      >>> sep["TOPK(5)"]["below"], sep["FULL"]["below"], sep["TOPK(5)"]["late_epochs"]
      (1.0, 0.0, 2)
    """
    mr, lr_, _ = _band(loss[reference])
    E = mr.shape[0]
    late = slice(E // 2, E)
    out = {}
    for v, curves in loss.items():
        m, lo, hi = _band(curves)
        out[v] = {"final_median": float(m[-1]), "final_q25": float(lo[-1]), "final_q75": float(hi[-1]),
                  "late_epochs": E - E // 2, "below": float(np.mean(m[late] < mr[late])),
                  "band_below": float(np.mean(hi[late] < lr_[late])),
                  "late_gap": float(np.mean(mr[late] - m[late]))}
    return out


def summary_lines(task: str, sep: dict[str, dict[str, float]]) -> list[str]:
    """One sentence per claim of SF Fig. 1 for ``task``, from :func:`separation` (no fixed text)."""
    n = next(iter(sep.values()))["late_epochs"]
    full, top = sep["FULL"], sep.get("TOPK(5)")
    lines = []
    if top is not None:
        faster = top["below"] >= MOST
        lines.append(
            f"- {task}: TOPK(5) final median training loss {top['final_median']:.3f} vs FULL "
            f"{full['final_median']:.3f}; TOPK(5)'s median is below FULL's in {round(top['below'] * n)}/{n} "
            f"late epochs and its 25-75% band lies entirely below FULL's in {round(top['band_below'] * n)}/{n}: "
            + ("TOPK(5) learns faster than FULL, as in SF Fig. 1"
               + (" (bands separated)." if top["band_below"] >= MOST else " (but the 25-75% bands overlap).")
               if faster else "the separation SF Fig. 1 reports is NOT shown here."))
    agn = {v: r for v, r in sep.items() if v.startswith(("BAND", "BLOC"))}
    if agn:
        fast = [f"{v} (by {r['late_gap']:.3f} on average)" for v, r in agn.items() if r["below"] >= MOST]
        clear = [v for v, r in agn.items() if r["band_below"] >= MOST]
        lines.append(
            f"- {task}: input-agnostic masks whose median is below FULL's in most late epochs: "
            f"{', '.join(fast) or 'none'}; whose 25-75% band is below FULL's: {', '.join(clear) or 'none'} "
            + ("(as SF Fig. 1: BAND/BLOC no faster than FULL)." if not clear
               else "(SF Fig. 1 shows BAND/BLOC no faster than FULL; not reproduced for these).")
            + " Final medians: " + ", ".join(f"{v} {r['final_median']:.3f}" for v, r in agn.items()) + ".")
    return lines


@figure(name="sf_fig1", caption="Training cross-entropy (top) and held-out accuracy (bottom) per epoch, median "
        "over seeds with the 25-75% band, for full, input-agnostic (BAND/BLOC, with a global token) and "
        "input-dependent TOPK(5) attention. Outside the full profile the model, data and training are "
        "reduced; sf_fig1.md lists every deviation from the authors' setup and what the run shows.",
        source="SF Fig. 1 (reproduced at reduced size)", order=60)
def make(ctx: FigureContext) -> None:
    from softmax_stability.experiments import runner

    s, runs = collect_runs(ctx)
    tasks, variants = s["tasks"], s["variants"]
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.2 * len(tasks), 6.5), squeeze=False, sharex="col")
    rows = []
    shows = []
    for j, t in enumerate(tasks):
        losses = {}
        for v in variants:
            res = runs[(t, v)]
            loss = np.stack([r.curve("train_loss") for r in res])
            acc = np.stack([r.curve("val_acc") for r in res]) * 100
            losses[v] = loss
            ep = np.arange(1, loss.shape[1] + 1)
            for i, (curves, ylab) in enumerate(((loss, "training cross-entropy"), (acc, "held-out accuracy (%)"))):
                med, lo, hi = _band(curves)
                ax = axes[i, j]
                ax.plot(ep, med, color=COLORS.get(v), label=v, lw=1.6 if v in ("FULL", "TOPK(5)") else 1.0)
                ax.fill_between(ep, lo, hi, color=COLORS.get(v), alpha=0.15, lw=0)
                ax.set_ylabel(ylab)
            ml, ll, hl = _band(loss)
            ma, la, ha = _band(acc)
            rows += [[t, v, int(e), ml[e - 1], ll[e - 1], hl[e - 1], ma[e - 1], la[e - 1], ha[e - 1], len(res)]
                     for e in ep]
        if "FULL" in losses:
            shows += summary_lines(t, separation(losses))
        axes[0, j].set_title(t.replace("_", " ").title())
        axes[1, j].set_xlabel("epoch")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    ctx.save_figure(fig)
    ctx.save_csv(["task", "variant", "epoch", "train_loss_median", "train_loss_q25", "train_loss_q75",
                  "val_acc_median", "val_acc_q25", "val_acc_q75", "seeds"], rows)
    dev = runner.profile_deviations(ctx.profile)
    ctx.params.update(deviations=dev)
    md = [f"# SF Fig. 1 ({ctx.profile} profile)", "",
          f"Tasks {', '.join(tasks)}; variants {', '.join(variants)}; ReLU; median over seeds with the 25-75% band.",
          "", "Deviations from the SF authors' setup (`runner.profile_deviations`):", ""]
    md += [f"- {d}" for d in dev]
    md += ["", "What this run shows (computed from the curves; late epochs = the second half):", ""] + shows
    ctx.save_markdown("\n".join(md) + "\n")
