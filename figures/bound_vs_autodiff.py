"""Tightness of every claim of the registry: measured/bound for upper bounds, bound/measured for lower bounds.

Reads ``verification.json`` written by ``softmax-stability verify`` into the same output directory;
if there is none, runs the verifier (random instances and adversaries) first. A ratio of 1 means the
bound is attained; every ratio must stay <= 1 (up to each claim's stated tolerance). Ratios below the
axis (:data:`XMIN`, including exact zeros) are drawn clipped at its left edge, with their count and
smallest value at the right of the row; the title states how many bounds hold and how many sharp
claims reach 0.99.
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


XMIN, XMAX = 1e-4, 1.5  # the axis; tightness values outside it are drawn clipped at its edge


@figure(name="bound_vs_autodiff", order=20, inputs=("verification.json",),
        caption="Tightness of every registered claim on random and adversarial instances: measured/bound "
                "for upper bounds, bound/measured for lower bounds (1 = attained, above 1 = violated); "
                "values below the axis are drawn clipped at its edge with their count and smallest value; "
                "identities (kind 'equal') are omitted as their ratio is 1 by construction.",
        source="library figure (softmax-stability verify)")
def make(ctx: FigureContext) -> None:
    from matplotlib.lines import Line2D

    results = [r for r in _load(ctx) if r["kind"] != "equal" and r["ratios"]]
    ctx.params.update(claims=[r["id"] for r in results], axis=[XMIN, XMAX])
    fig, ax = plt.subplots(figsize=(10, 0.33 * max(len(results), 4) + 2.4), layout="constrained")
    rows = []
    clipped_any = False
    for i, r in enumerate(results):
        ratios = np.asarray(r["ratios"], dtype=float)
        ratios = ratios[~np.isnan(ratios)]
        low, high = ratios < XMIN, ratios > XMAX
        inside = ratios[~low & ~high]
        jitter = (np.random.default_rng(i).random(inside.size) - 0.5) * 0.5
        color = "C3" if r["verdict"] != "pass" else ("C0" if r["sharp"] else "C7")
        ax.plot(inside, i + jitter, ".", ms=2, alpha=0.5, color=color)
        ax.plot([min(max(r["max_ratio"], XMIN), XMAX)], [i], "|", ms=12, color="k")
        notes = []
        if low.any():  # clipped at the left edge: a marker there and the count and smallest value
            clipped_any = True
            ax.plot([XMIN], [i], "<", ms=6, color=color, mec="k", mew=0.5, clip_on=False, zorder=4)
            zeros = int(np.sum(ratios[low] == 0))
            pos = ratios[low & (ratios > 0)]
            parts = [f"{int(low.sum())} < {XMIN:g}"]
            if pos.size:
                parts.append(f"min {pos.min():.1e}")
            if zeros:
                parts.append(f"{zeros} = 0")
            notes.append(", ".join(parts))
        if high.any():
            clipped_any = True
            ax.plot([XMAX], [i], ">", ms=6, color="C3", mec="k", mew=0.5, clip_on=False, zorder=4)
            notes.append(f"{int(high.sum())} > {XMAX:g}, max {ratios[high].max():.3g}")
        if notes:
            ax.annotate("; ".join(notes), (1.0, i), xycoords=("axes fraction", "data"), xytext=(6, 0),
                        textcoords="offset points", va="center", fontsize=6.5, color="0.3",
                        annotation_clip=False)
        rows.append([r["id"], r["kind"], r["instances"], r["max_ratio"], r["median_ratio"], r["sharp"],
                     r["verdict"], int(low.sum()), float(ratios.min()) if ratios.size else float("nan")])
    ax.axvline(1.0, color="k", lw=1)
    ax.set_yticks(range(len(results)))
    ax.set_yticklabels([f"{r['id']} ({r['kind']})" for r in results], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(XMIN, XMAX)
    ax.set_xlabel("tightness: measured/bound for upper bounds, bound/measured for lower bounds\n"
                  "(1 = bound attained; above 1 = bound violated)")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], ls="none", marker="o", ms=4, color="C0", label="instance, sharp claim"),
               Line2D([], [], ls="none", marker="o", ms=4, color="C7", label="instance, not sharp"),
               Line2D([], [], ls="none", marker="o", ms=4, color="C3", label="instance, claim failed"),
               Line2D([], [], ls="none", marker="|", ms=10, color="k", label="max over instances")]
    if clipped_any:
        handles.append(Line2D([], [], ls="none", marker="<", ms=6, color="0.6", mec="k", mew=0.5,
                              label=f"values below {XMIN:g} (clipped; count, min at right)"))
    # below the axis label whatever the number of rows (an offset in axes units collided with it)
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=7, frameon=False)
    failed = [r["id"] for r in results if r["verdict"] != "pass"]
    sharp = [r for r in results if r["sharp"]]
    reached = sum(bool(r.get("sharp_reached")) for r in sharp)
    outcome = (f"all {len(results)} bounds hold on every instance" if not failed else
               f"{len(failed)} of {len(results)} bounds FAIL ({', '.join(failed)})")
    judged = [r for r in sharp if r.get("sharp_reached") is not None]  # None: verified without searches
    if judged:
        outcome += f"; {reached} of {len(judged)} sharp claims reach tightness >= 0.99"
    if len(judged) < len(sharp):
        outcome += (f" ({len(sharp) - len(judged)} not judged: verified without the adversary)" if judged else
                    f"; sharpness of the {len(sharp)} sharp claims not judged (verified without the adversary)")
    ctx.params.update(failed=failed, sharp_reached=reached, sharp_claims=len(sharp))
    ax.set_title("Every bound against its autodiff / exact measurement\nmeasured: " + outcome, fontsize=10)
    ctx.set_outcome(f"Measured on the verifier's random and adversarial instances: {outcome}.")
    ctx.save_figure(fig)
    ctx.save_csv(["claim", "kind", "instances", "max_ratio", "median_ratio", "sharp", "verdict",
                  f"below_{XMIN:g}", "min_ratio"], rows)
