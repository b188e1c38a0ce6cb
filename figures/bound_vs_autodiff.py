"""Distribution of measured / bound for every claim of the registry.

Reads ``verification.json`` written by ``softmax-stability verify`` into the same output directory;
if there is none, runs the verifier (random instances and adversaries) first. A ratio of 1 means the
bound is attained; every ratio must stay <= 1 (up to each claim's stated tolerance).
"""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np

from figures._common import FigureContext, figure


def _load(ctx: FigureContext) -> list[dict]:
    path = ctx.out_dir / "verification.json"
    if path.exists():
        return json.loads(path.read_text())["results"]
    from softmax_stability.claims import verify

    return [r.to_json() for r in verify(progress=ctx.show_progress)]


@figure(name="bound_vs_autodiff", order=20, inputs=("verification.json",),
        caption="Measured value over bound for every registered claim (random and adversarial "
                "instances); identities (kind 'equal') are omitted as their ratio is 1 by construction.",
        source="library figure (softmax-stability verify)")
def make(ctx: FigureContext) -> None:
    results = [r for r in _load(ctx) if r["kind"] != "equal" and r["ratios"]]
    ctx.params.update(claims=[r["id"] for r in results])
    fig, ax = plt.subplots(figsize=(8, 0.35 * max(len(results), 4) + 1.2))
    rows = []
    for i, r in enumerate(results):
        ratios = np.asarray(r["ratios"], dtype=float)
        ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
        jitter = (np.random.default_rng(i).random(ratios.size) - 0.5) * 0.5
        color = "C3" if r["verdict"] != "pass" else ("C0" if r["sharp"] else "C7")
        ax.plot(ratios, i + jitter, ".", ms=2, alpha=0.5, color=color)
        ax.plot([r["max_ratio"]], [i], "|", ms=12, color="k")
        rows.append([r["id"], r["kind"], r["instances"], r["max_ratio"], r["median_ratio"], r["sharp"],
                     r["verdict"]])
    ax.axvline(1.0, color="k", lw=1)
    ax.set_yticks(range(len(results)))
    ax.set_yticklabels([r["id"] for r in results], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(left=1e-4, right=1.5)
    ax.set_xlabel("measured / bound (| = max over instances; blue = sharp claim)")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Every bound against its autodiff / exact measurement")
    ctx.save_figure(fig)
    ctx.save_csv(["claim", "kind", "instances", "max_ratio", "median_ratio", "sharp", "verdict"], rows)
