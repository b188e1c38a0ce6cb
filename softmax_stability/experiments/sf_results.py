"""The SF learning runs of a profile, collected and summarised: what ``sf_fig1``,
``sf_convergence_table`` and the landscape figures read.

:func:`collect_profile_runs` runs (or loads from the runner's cache) every configuration of a
profile (:func:`softmax_stability.experiments.runner.profile_configs`); :func:`separation` and
:func:`summary_lines` state, from the training-loss curves alone, whether TOPK(5) learns faster than
FULL and whether the input-agnostic masks do, as SF Fig. 1 reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MOST", "collect_profile_runs", "loss_band", "separation", "summary_lines"]

def collect_profile_runs(profile: str, cache_dir: str | Path, *, progress: bool = True
                         ) -> tuple[dict[str, Any], dict[tuple[str, str], list]]:
    """Run (or load) every configuration of ``profile``.

    Args:
      profile: a profile of :func:`softmax_stability.experiments.runner.profile_settings`.
      cache_dir: the runner's cache directory (e.g. ``<out>/sf_runs``).
      progress: show progress bars.

    Returns:
      ``(settings, runs)``: the profile's settings and ``{(task, variant): [RunResult, ...]}`` with
      one result per seed.
    """
    from softmax_stability.experiments import runner

    s = runner.profile_settings(profile)
    cfgs = runner.profile_configs(profile)
    results = runner.run_many(cfgs, cache_dir, progress=progress, seed_batch=s["seed_batch"])
    out: dict = {}
    for c, r in zip(cfgs, results):
        out.setdefault((c.task, r.config["variant"]), []).append(r)
    return s, out


MOST = 0.75  # "most late epochs": the share of the second half that must agree


def loss_band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, 25th and 75th percentile over seeds (axis 0) of ``curves [seeds, epochs]``."""
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
    mr, lr_, _ = loss_band(loss[reference])
    E = mr.shape[0]
    late = slice(E // 2, E)
    out = {}
    for v, curves in loss.items():
        m, lo, hi = loss_band(curves)
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
