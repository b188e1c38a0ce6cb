"""Checks of the data behind the dilution figures (dilution_vs_temperature, dilution_phase_diagram,
ssa_sorted_attention; their computations live in softmax_stability.experiments.dilution_sweeps and
.sorted_attention) and of the measured statements of ssa_fig3 / ssa_table1
(softmax_stability.experiments.ssa_toy), beyond the generic smoke run of tests/test_figures_smoke.py.

Each figure's plotted data is compared with a computation that does not share its code path:
closed-form lines against direct softmax of explicit logit vectors, the figure's top-k shortcut
against dilution.topk_mass, the causal layer's weights against jax.nn.softmax with an explicit
-inf mask, and the temperature's effect against folding it into the queries.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softmax_stability import dilution as D
from softmax_stability.maps import softmax


def test_topk_shortcut_matches_library_topk_mass():
    # the figure takes top_k on z once for all schedules; must equal topk_mass of each softmax row
    from softmax_stability.experiments import dilution_sweeps as F

    key = jax.random.PRNGKey(3)
    z = jax.random.normal(key, (4, 64), jnp.float64)
    z = jnp.concatenate([D.needle_logits(64, F.GAP, dtype=jnp.float64)[None], z])  # ties: needle row
    taus = jnp.asarray([1.0, 0.3, 4.0, 13.0], jnp.float64)
    got = np.asarray(F.row_metrics(z, taus))  # [S, 4, R]
    p = softmax(jnp.broadcast_to(z, taus.shape + z.shape), beta=taus[:, None, None])
    np.testing.assert_allclose(got[:, 3], np.asarray(D.topk_mass(p, F.TOPK)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[:, 0], np.asarray(p.max(-1)), rtol=1e-12)
    np.testing.assert_allclose(got[:, 2], np.asarray(jnp.sum(p * p, -1)), rtol=1e-12)


def test_needle_theory_lines_match_direct_softmax():
    from softmax_stability.experiments import dilution_sweeps as F

    ns = np.array([16.0, 1024.0])
    th = F.theory_curves(ns, None)  # needle lines only (the quadratures are tested in test_dilution.py)
    for key, _, tau_fn in F.schedules():
        for i, n in enumerate(ns):
            tau = float(tau_fn(n))
            p = np.asarray(softmax(D.needle_logits(int(n), F.GAP, dtype=jnp.float64), beta=tau))
            np.testing.assert_allclose(th[("needle", "max_weight", key)][i], p.max(), rtol=1e-12)
            np.testing.assert_allclose(th[("needle", "effective_support", key)][i], 1 / np.sum(p * p), rtol=1e-10)
            np.testing.assert_allclose(th[("needle", "topk_mass", key)][i], np.sort(p)[::-1][:F.TOPK].sum(),
                                       rtol=1e-12)
            h = -np.sum(p * np.log(p))
            np.testing.assert_allclose(th[("needle", "normalized_entropy", key)][i], h / np.log(n), rtol=1e-10)


def test_schedules_are_the_documented_ones():
    from softmax_stability.experiments import dilution_sweeps as F

    taus = {k: np.asarray(f(np.array([16.0, 1024.0, 4096.0])), float) for k, _, f in F.schedules()}
    ln = np.log([16.0, 1024.0, 4096.0])
    np.testing.assert_allclose(taus["constant"], 1.0)
    np.testing.assert_allclose(taus["log_n"], ln)
    np.testing.assert_allclose(taus["ssmax"], 0.43 * ln)
    np.testing.assert_allclose(taus["ssa"], 1 + 0.5 * ln)
    np.testing.assert_allclose(taus["yarn"], [1.0, 1.0, 1 + 0.1 * np.log(4.0)])


def test_phase_diagram_matches_direct_softmax():
    from softmax_stability.experiments import dilution_sweeps as F

    gaps = np.array([0.5, 2.0, 3.0])
    cs = np.array([0.2, 0.5, 1.0])
    maps_ = F.needle_maps(gaps, cs)
    n = 2 ** 10
    for a in F.PHASE_OFFSETS:
        for i, c in enumerate(cs):
            for j, g in enumerate(gaps):
                tau = a + c * np.log(n)
                p0 = float(softmax(D.needle_logits(n, g, dtype=jnp.float64), beta=tau)[0])
                np.testing.assert_allclose(maps_[(a, 10)][i, j], p0, rtol=1e-12)
    # n = 2^40 (no direct softmax possible): against mpmath at 50 digits, relative accuracy
    import mpmath

    mpmath.mp.dps = 50
    n = mpmath.mpf(2) ** 40
    for a in F.PHASE_OFFSETS:
        for i, c in enumerate(cs):
            for j, g in enumerate(gaps):
                tau = a + mpmath.mpf(c) * mpmath.log(n)
                ref = 1 / (1 + (n - 1) * mpmath.exp(-tau * mpmath.mpf(g)))
                np.testing.assert_allclose(maps_[(a, 40)][i, j], float(ref), rtol=1e-12)


@pytest.fixture(scope="module")
def layer():
    from softmax_stability.experiments import sorted_attention as F

    T = 24
    tokens, q, k, v = F.model_inputs(jax.random.PRNGKey(0), T, 2)
    return F, T, tokens, q, k, v


def test_causal_layer_weights(layer):
    F, T, tokens, q, k, v = layer
    P = np.asarray(F.attention_weights(q, k, jnp.ones(T)))
    logits = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
    logits = np.where(np.tril(np.ones((T, T), bool)), logits, -np.inf)
    np.testing.assert_allclose(P, np.asarray(jax.nn.softmax(logits, axis=-1)), rtol=1e-12, atol=1e-300)
    assert np.all(P[..., np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0)
    np.testing.assert_allclose(P.sum(-1), 1.0, rtol=1e-12)


def test_query_temperature_is_folded_into_q(layer):
    # SSA query temperature = row scale of the logits = scaling q_i (docs/notes/selective_attention.md §1.6)
    F, T, tokens, q, k, v = layer
    tau = jnp.linspace(1.0, 3.0, T)
    P1 = F.attention_weights(q, k, tau)
    P2 = F.attention_weights(q * tau[None, :, None, None], k, jnp.ones(T))
    np.testing.assert_allclose(np.asarray(P1), np.asarray(P2), rtol=1e-10, atol=1e-300)


def test_distinct_token_logits_have_unit_std(layer):
    # the documented normalisation of the random layer, recomputed in NumPy from its weights
    F = layer[0]
    emb, w, _ = (np.asarray(a) for a in F.layer_weights(jax.random.PRNGKey(0)))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=-1), 1.0, rtol=1e-12)
    proj = np.einsum("vd,dnh->nvh", emb, w)
    lg = proj @ proj.transpose(0, 2, 1) / np.sqrt(F.HEAD_DIM)  # [N, V, V]
    off = ~np.eye(F.VOCAB, dtype=bool)
    np.testing.assert_allclose(lg[:, off].std(), 1.0, rtol=1e-10)
    assert lg[:, ~off].mean() > 2.5  # own-token logit about sqrt(d_h) = 4 higher


def test_attention_module_cross_check(layer):
    F, T, tokens, q, k, v = layer
    pytest.importorskip("softmax_stability.attention")
    tau = jnp.linspace(1.0, 3.0, T)
    res = F.check_against_attention_module(q, k, v, tau, F.attention_weights(q, k, tau))
    assert res["status"] == "ok", res


# ------------------------------------------------------------------------- ssa_fig3 / ssa_table1
def test_tau_degree_trend_direction_and_verdict():
    from softmax_stability.experiments.ssa_toy import tau_degree_trend

    deg = [np.array([1, 2, 4, 8, 1, 2, 4, 8])] * 3
    noise = [np.array([0.01, -0.02, 0.0, 0.01, -0.01, 0.02, 0.0, -0.01]) * s for s in (1, -1, 2)]
    up = tau_degree_trend(deg, [0.9 + 0.1 * np.log2(d) + e for d, e in zip(deg, noise)])
    assert up["direction"] == "rises" and up["agrees"] is False and up["slope"] == pytest.approx(0.1, abs=0.01)
    assert "rises" in up["text"] and "DISAGREEING" in up["text"] and "docs/notes/selective_attention.md §5 item 21" in up["text"]
    down = tau_degree_trend(deg, [1.5 - 0.1 * np.log2(d) + e for d, e in zip(deg, noise)])
    assert down["direction"] == "falls" and down["agrees"] is True and "agreeing with" in down["text"]
    flat = tau_degree_trend(deg, [1.0 + e for e in noise])  # slopes of pure noise, within 2 s.e. of 0
    assert flat["direction"] == "none" and flat["agrees"] is None and "no clear trend" in flat["text"]
    # slope by hand: one graph, tau = 2 at degree 1 and 1 at degree 4 -> -0.5 per doubling
    one = tau_degree_trend([np.array([1, 4])], [np.array([2.0, 1.0])])
    assert one["slope"] == pytest.approx(-0.5, rel=1e-12) and one["direction"] == "falls"


def test_ssa_fig3_and_table1_state_the_measured_direction(tmp_path):
    """The markdown of ssa_table1 and the provenance of both figures carry the direction computed
    from the runs; recomputed here from ssa_fig3's per-node CSV with np.polyfit."""
    import csv
    import json

    from figures._common import run_figure

    for name in ("ssa_fig3", "ssa_table1"):
        run_figure(name, tmp_path, profile="smoke", show_progress=False)
    rows = list(csv.DictReader(open(tmp_path / "ssa_fig3_tau.csv")))
    seeds = sorted({r["graph_seed"] for r in rows})
    slopes = []
    for sd in seeds:
        d = np.array([float(r["degree"]) for r in rows if r["graph_seed"] == sd])
        t = np.array([float(r["tau_ssa"]) for r in rows if r["graph_seed"] == sd])
        slopes.append(np.polyfit(np.log2(d), t, 1)[0])
    slope, se = np.mean(slopes), np.std(slopes, ddof=1) / np.sqrt(len(slopes))
    direction = "none" if abs(slope) <= 2 * se else ("rises" if slope > 0 else "falls")
    for name in ("ssa_fig3", "ssa_table1"):
        trend = json.loads((tmp_path / f"{name}.provenance.json").read_text())["params"]["tau_degree_trend"]
        assert trend["direction"] == direction and trend["slope"] == pytest.approx(slope, rel=1e-9, abs=1e-12)
    md = (tmp_path / "ssa_table1.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("**Direction (measured):**"))
    if direction == "none":
        assert "no clear trend" in line
    else:
        assert f"τ {direction} with the out-degree" in line
        assert ("agreeing with" if direction == "falls" else "DISAGREEING with") in line
