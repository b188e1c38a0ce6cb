"""The verifier's power to fail: tight regimes, mutants, float64 whatever the caller.

Toy claims with known answers, so each property is tested independently of the claim families:
x(1 - x) <= 1/4 on [0, 1] is attained only at x = 1/2, and y^2 <= 1 on [0, 1] at y = 1.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import softmax_stability.claims as C
from softmax_stability.claims import Claim, Mutant, TightRegime, claim_mutants, verify_claim, verify_mutant
from softmax_stability.claims import _registry
from softmax_stability.claims._sampling import ascend
from softmax_stability.claims._verify import format_table, verify, verify_claim_and_mutants


def _sample(key):
    x = jax.random.uniform(key, (64,), dtype=jnp.float64)
    return [{"x": x, "s": jnp.ones(64)}, {"x": x, "s": jnp.zeros(64)}]


def _measure(prm):
    # branch s = 1: x(1 - x), attained 1/4 at x = 1/2; branch s = 0: x^2, attained 1 at x = 1
    return jnp.where(prm["s"] > 0, prm["x"] * (1 - prm["x"]), prm["x"] ** 2)


def _bound(c_quadratic=0.25, c_square=1.0):
    return lambda prm: jnp.where(prm["s"] > 0, c_quadratic, c_square)


def _regime(branch):
    def instances(key, ratio):
        # ascend the claim's own ratio over x = (1 + sin t)/2 in [0, 1] (both ends reachable)
        t0 = jax.random.normal(key, (8, 1), dtype=jnp.float64)
        t = ascend(lambda t: ratio({"x": 0.5 * (1 + jnp.sin(t[0])), "s": jnp.asarray(float(branch))}), t0,
                   steps=200, learning_rate=0.1)
        return [{"x": 0.5 * (1 + jnp.sin(t[:, 0])), "s": jnp.full(8, float(branch))}]

    return TightRegime(f"branch {branch}", "the constant of this branch is attained", instances)


def _toy(**kw) -> Claim:
    base = dict(id="T0-toy-two-branches", family="toy", statement="x(1-x) <= 1/4; x^2 <= 1", source="test",
                kind="upper", bound=_bound(), measure=_measure, sample=_sample, sharp=True,
                tight_regimes=(_regime(1), _regime(0)), proof=None, numeric_only_reason="a test claim",
                rtol=1e-9, atol=0.0)
    base.update(kw)
    return Claim(**base)


def test_toy_claim_passes_and_each_regime_is_reached():
    r = verify_claim(_toy())
    assert r.verdict == "pass", r
    assert [g["name"] for g in r.regimes] == ["branch 1", "branch 0"]
    assert all(g["reached"] and g["max_ratio"] > 0.999 for g in r.regimes), r.regimes


def test_a_constant_loosened_in_one_branch_is_caught_by_that_branchs_regime():
    # 1/4 -> 0.26 in branch 1 only: the global max ratio is still 1 (branch 0), which the old
    # single global threshold accepted; branch 1's regime reaches 0.25/0.26 = 0.96 < 0.99
    loose = _toy(bound=_bound(c_quadratic=0.26))
    r = verify_claim(loose)
    assert r.max_ratio > 0.999
    assert r.verdict == "NOT SHARP"
    assert [g["reached"] for g in r.regimes] == [False, True]
    assert r.regimes[0]["max_ratio"] == pytest.approx(0.25 / 0.26, rel=1e-6)
    # the same bound judged by a global maximum alone (no regime stated; an adversary that finds
    # branch 0's maximiser x = 1) would pass
    at_one = lambda key, ratio: [{"x": jnp.ones(1, dtype=jnp.float64), "s": jnp.zeros(1)}]  # noqa: E731
    assert verify_claim(dataclasses.replace(loose, tight_regimes=(), adversary=at_one)).verdict == "pass"


def test_regimes_search_the_mutated_ratio_not_the_original():
    # a bound whose worst case moves: with c(x) = 1/4 + (x - 1/2)^2/10 the ratio's maximum is no
    # longer at x = 1/2; the regime must find the mutant's own worst case to judge it
    moved = lambda prm: jnp.where(prm["s"] > 0, 0.25 * (1 - 0.5 * (prm["x"] - 0.8) ** 2), 1.0)  # noqa: E731
    r = verify_claim(_toy(bound=moved))
    # true sup of x(1-x)/(0.25(1 - 0.5(x-0.8)^2)) on [0,1] is > 1: the search must find it
    xs = np.linspace(0, 1, 100001)
    sup = np.max(xs * (1 - xs) / (0.25 * (1 - 0.5 * (xs - 0.8) ** 2)))
    assert sup > 1.01
    assert r.verdict == "VIOLATED"
    assert r.max_ratio == pytest.approx(sup, rel=1e-6)


def test_automatic_and_stated_mutants_are_killed_and_a_survivor_is_reported():
    within = Mutant("bound x 1.005 (within the 1% threshold)", "looser", lambda p: 1.005 * _bound()(p))
    claim = _toy(mutants=(Mutant("1/4 -> 0.245", "tighter", _bound(c_quadratic=0.245)), within))
    muts = claim_mutants(claim)
    assert [m.name for m in muts] == ["1/4 -> 0.245", within.name, "bound x 0.98", "bound x 1.02"]
    fate = {m.name: verify_mutant(claim, m) for m in muts}
    assert fate["1/4 -> 0.245"].killed and fate["1/4 -> 0.245"].verdict == "VIOLATED"
    assert fate["bound x 0.98"].killed and fate["bound x 0.98"].verdict == "VIOLATED"
    assert fate["bound x 1.02"].killed and fate["bound x 1.02"].verdict == "NOT SHARP"
    # 0.5% looser is inside the 0.99 sharpness threshold: it survives, and says why
    assert not fate[within.name].killed
    assert fate[within.name].verdict == "pass"
    assert "survives" in fate[within.name].reason and "branch 1" in fate[within.name].reason


def test_identity_gets_a_perturbation_mutant_that_its_tolerance_must_reject():
    ident = Claim(id="T1-toy-identity", family="toy", statement="(1+x) - 1 = x", source="test", kind="equal",
                  bound=lambda p: p["x"], measure=lambda p: (1.0 + p["x"]) - 1.0,
                  sample=lambda key: [{"x": jax.random.uniform(key, (32,), dtype=jnp.float64) + 0.5}],
                  proof=None, numeric_only_reason="a test claim", rtol=1e-12, atol=0.0)
    (m,) = claim_mutants(ident)
    assert m.change == "perturbed"
    assert verify_mutant(ident, m).killed
    # a tolerance of 1e-5 is too loose to see a 1e-6 perturbation: the mutant survives
    assert not verify_mutant(dataclasses.replace(ident, rtol=1e-5), m).killed


def test_verify_claim_runs_in_float64_whatever_the_callers_setting():
    # (1 + x) - 1 = x to 1e-12 holds in float64 and fails in float32
    ident = Claim(id="T2-toy-float64", family="toy", statement="(1+x) - 1 = x", source="test", kind="equal",
                  bound=lambda p: p["x"], measure=lambda p: (1.0 + p["x"]) - 1.0,
                  sample=lambda key: [{"x": jnp.linspace(1e-3, 0.5, 16, dtype=jnp.float64)}],
                  proof=None, numeric_only_reason="a test claim", rtol=1e-12, atol=0.0)
    before = jax.config.jax_enable_x64
    try:
        jax.config.update("jax_enable_x64", False)
        assert verify_claim(ident).verdict == "pass"
        assert jax.config.jax_enable_x64 is False  # the caller's setting is restored
    finally:
        jax.config.update("jax_enable_x64", before)


def test_verify_with_mutants_attaches_the_score_and_lists_survivors(monkeypatch):
    within = Mutant("bound x 1.005", "looser", lambda p: 1.005 * _bound()(p))
    claim = _toy(mutants=(within,))
    monkeypatch.setitem(_registry._REGISTRY, claim.id, claim)
    (r,) = verify([claim.id], workers=1, progress=False, mutants=True)
    assert r.verdict == "pass"
    assert [m["name"] for m in r.mutants] == ["bound x 1.005", "bound x 0.98", "bound x 1.02"]
    assert r.mutants_killed == 2 and r.to_json()["mutants_total"] == 3
    # the mutants shared the claim's measured values; each verdict equals a verification from scratch
    for m in r.mutants:
        alone = verify_mutant(claim, m["name"])
        assert (m["verdict"], m["killed"]) == (alone.verdict, alone.killed)
        assert m["max_ratio"] == pytest.approx(alone.max_ratio, rel=1e-12)
    table = format_table([r])
    assert "2/3" in table and "mutants killed 2/3" in table
    assert "surviving mutants" in table and "bound x 1.005" in table


def test_claim_rejects_inconsistent_fields():
    with pytest.raises(ValueError, match="tight_regimes are for sharp claims"):
        _toy(sharp=False)
    with pytest.raises(ValueError, match="identity"):
        _toy(kind="equal", tight_regimes=())
    with pytest.raises(ValueError, match="unique"):
        m = Mutant("same", "tighter", _bound())
        _toy(mutants=(m, m))
    with pytest.raises(ValueError, match="change must be"):
        Mutant("x", "wider", _bound())


# ---- the registry as shipped --------------------------------------------------------------


@pytest.mark.parametrize("claim", C.all_claims(), ids=lambda c: c.id)
def test_every_sharp_claim_states_its_tight_regimes(claim):
    if claim.sharp:
        assert claim.tight_regimes, f"{claim.id} is sharp but states no tight regime"
        assert all(r.description for r in claim.tight_regimes)


@pytest.mark.parametrize("claim", C.all_claims(), ids=lambda c: c.id)
def test_every_claim_carries_at_least_two_mutants(claim):
    assert len(claim_mutants(claim)) >= 2, f"{claim.id}: {[m.name for m in claim_mutants(claim)]}"


def test_quick_settings_kill_the_same_mutants_and_stop_at_the_first_kill():
    within = Mutant("bound x 1.005", "looser", lambda p: 1.005 * _bound()(p))
    branch0 = Mutant("x^2 <= 1 -> 1.02", "looser", _bound(c_square=1.02))  # only branch 0's regime sees it
    claim = _toy(mutants=(within, branch0))
    full = verify_claim_and_mutants(claim, settings="full")
    quick = verify_claim_and_mutants(claim, settings="quick")
    assert (full.verdict, quick.verdict) == ("pass", "pass")
    assert full.max_ratio == quick.max_ratio and full.instances == quick.instances  # the claim runs in full
    fate = {m["name"]: m for m in full.mutants}
    for m in quick.mutants:
        assert (m["killed"], m["verdict"]) == (fate[m["name"]]["killed"], fate[m["name"]]["verdict"]), m
    q = {m["name"]: m for m in quick.mutants}
    # x 0.98 fails on the random instances: neither regime runs; x 1.02 falls short in branch 1's
    # regime, the first: branch 0's is skipped; the survivor and branch 0's mutant run every search
    assert q["bound x 0.98"]["regimes"] == [] and "2 later search(es) not run" in q["bound x 0.98"]["reason"]
    assert [g["name"] for g in q["bound x 1.02"]["regimes"]] == ["branch 1"]
    assert [g["name"] for g in q[branch0.name]["regimes"]] == ["branch 1", "branch 0"]
    assert q[branch0.name]["killed"] and not q[within.name]["killed"]
    assert len(fate["bound x 0.98"]["regimes"]) == 2  # full settings run them all
    with pytest.raises(ValueError, match="settings"):
        verify_claim_and_mutants(claim, settings="fast")
    with pytest.raises(ValueError, match="settings"):
        verify([claim.id], settings="quick ")


def test_quick_mutants_reuse_the_claims_searches_where_that_is_exact():
    # the random instances keep away from branch 1's maximiser x = 1/2, so only searched instances
    # can kill "1/4 -> 0.2499"; the claim's own regime search finds x = 1/2 (and kills it, with no
    # search of its own), and "bound x 1.02" (a constant multiple) takes the claim's regime
    # instances as its own: no regime search runs for a mutant here
    calls = []

    def counted(regime):
        def instances(key, ratio):
            calls.append(regime.name)
            return regime.instances(key, ratio)

        return TightRegime(regime.name, regime.description, instances)

    def away_from_half(key):
        x = 0.4 * jax.random.uniform(key, (64,), dtype=jnp.float64)
        return [{"x": x, "s": jnp.ones(64)}, {"x": x, "s": jnp.zeros(64)}]

    tighter = Mutant("1/4 -> 0.2499", "tighter", _bound(c_quadratic=0.2499))
    claim = _toy(sample=away_from_half, tight_regimes=(counted(_regime(1)), counted(_regime(0))),
                 mutants=(tighter,))
    quick = verify_claim_and_mutants(claim, settings="quick")
    assert quick.verdict == "pass"
    assert calls == ["branch 1", "branch 0"]  # the claim's own searches, once each
    q = {m["name"]: m for m in quick.mutants}
    assert q[tighter.name]["verdict"] == "VIOLATED" and q[tighter.name]["regimes"] == []
    (g,) = q["bound x 1.02"]["regimes"]
    assert q["bound x 1.02"]["verdict"] == "NOT SHARP"
    assert g["max_ratio"] == pytest.approx(quick.regimes[0]["max_ratio"] / 1.02, rel=1e-12)
