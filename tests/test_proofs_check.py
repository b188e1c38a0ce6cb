"""Tests of proofs_check: every check passes with the library's formula and fails with a mutated one.

The mutation tests feed each check a deliberately wrong formula (a changed constant or sign) and
assert status "failed" (not "error": the check must refute the formula, not crash on it). Sizes
are reduced where a check takes ``n_max`` (the mutations already show at n = 2 or 3), to keep the
file fast on 2 shared cores.
"""

from __future__ import annotations

import json
import os

import pytest
import sympy as sp

import proofs_check
from proofs_check import dilution as dl
from proofs_check import focus_conditions as fc
from proofs_check import softmax_jacobian as sj
from proofs_check import sparse_maps as sm
from proofs_check import ssa_algebra as sa
from proofs_check import __main__ as cli
from proofs_check._core import CheckResult, _METHOD_RE


@pytest.fixture(scope="module")
def results():
    return {r.check_id: r for r in proofs_check.run_all()}


EXPECTED_CLAIMS = {
    "softmax_jacobian.derivative": "J0-softmax-jacobian-closed-form",
    "softmax_jacobian.symmetric_kernel": "J1-softmax-symmetric-null",
    "softmax_jacobian.variance_form": "J1b-softmax-quadratic-variance",
    "softmax_jacobian.characteristic_polynomial": "J3-softmax-secular-equation",
    "softmax_jacobian.spectral_half": "J2-softmax-spectral-half",
    "softmax_jacobian.frobenius": "J4-softmax-frobenius",
    "softmax_jacobian.one_norm": "J5-softmax-one-norm",
    "softmax_jacobian.inf_to_one": "J6-softmax-inf-to-one",
    "sparse_maps.sparsemax_jacobian": "S1-sparsemax-jacobian",
    "sparse_maps.entmax_jacobian": "S2-entmax-jacobian",
    "sparse_maps.entmax_spectral_bound": "S3-entmax-spectral-bound",
    "focus_conditions.dispersion_bounds": "D1-dispersion-entry-bounds",
    "focus_conditions.pmax_bound": "D2-dispersion-pmax",
    "focus_conditions.topk_dispersion_separation": "F2-topk-dispersion-plus-separation",
    "focus_conditions.lhs304_equivalence": "F5-lhs304-exponential-form",
    "focus_conditions.lhs305_equivalence": "F6-lhs305-exponential-form",
    "focus_conditions.c2min_w": "F7-c2min-w-closed-form",
    "focus_conditions.c2min_x": "F8-c2min-x-closed-form",
    "focus_conditions.lhs304_infeasible_small_dispersion": "F9-lhs304-infeasible-ln2",
    "dilution.needle_limits": "DL1-needle-limit",
    "dilution.ssmax_needle_limits": "DL1b-ssmax-needle-limit",
    "dilution.bounded_logits": "DL3-bounded-logits",
    "ssa_algebra.query_temperature_row_scale": "A1-ssa-query-temperature-row-scale",
    "ssa_algebra.unit_temperature_vanilla": "A2-ssa-unit-temperature",
    "ssa_algebra.sigmoid_positive": "A3-ssa-sigmoid-temperature-positive",
    "ssa_algebra.double_exp_positive": "A4-ssa-double-exp-coefficient",
}


def test_registry_ids_and_claims():
    got = {spec.check_id: spec.claim_id for spec in proofs_check.checks()}
    assert got == EXPECTED_CLAIMS


@pytest.mark.parametrize("check_id", sorted(EXPECTED_CLAIMS))
def test_library_formula_passes(results, check_id):
    res = results[check_id]
    assert res.status == "passed", res.evidence
    assert res.claim_id == EXPECTED_CLAIMS[check_id]
    assert _METHOD_RE.match(res.method), res.method
    assert res.evidence and "FAILED" not in res.evidence
    assert res.seconds >= 0


# ----------------------------------------------------------------------------- mutations

def _vec(p):
    return sp.Matrix(list(p))


def _sum(xs):
    return sp.Add(*xs)


MUTATIONS = {
    # sign of the rank-one term flipped
    "softmax_jacobian.derivative": lambda: sj.derivative(
        jacobian=lambda p, b: b * (sp.diag(*p) + _vec(p) * _vec(p).T), n_max=3),
    # rank-one term doubled: J 1 != 0
    "softmax_jacobian.symmetric_kernel": lambda: sj.symmetric_kernel(
        jacobian=lambda p, b: b * (sp.diag(*p) - 2 * _vec(p) * _vec(p).T), n_max=3),
    # variance halved
    "softmax_jacobian.variance_form": lambda: sj.variance_form(
        variance=lambda p, v, b: sj.variance_closed_form(p, v, b) / 2, n_max=3),
    # sign inside the secular factor flipped
    "softmax_jacobian.characteristic_polynomial": lambda: sj.characteristic_polynomial(
        secular=lambda p, lam: sp.Mul(*[x - lam for x in p]) * (1 + _sum([x**2 / (x - lam) for x in p])), n_max=3),
    # too tight a constant
    "softmax_jacobian.spectral_half": lambda: sj.spectral_half(bound=lambda b: b / 3),
    # cubic coefficient 2 -> 1
    "softmax_jacobian.frobenius": lambda: sj.frobenius(
        frobenius_sq=lambda p: _sum([x**2 for x in p]) - _sum([x**3 for x in p]) + _sum([x**2 for x in p]) ** 2,
        n_max=3),
    # factor 2 dropped
    "softmax_jacobian.one_norm": lambda: sj.one_norm(columns=lambda p: [x * (1 - x) for x in p], n_max=3),
    # factor 4 -> 2
    "softmax_jacobian.inf_to_one": lambda: sj.inf_to_one(subset_value=lambda m: 2 * m * (1 - m), n_max=3),
    # |S| -> |S| + 1
    "sparse_maps.sparsemax_jacobian": lambda: sm.sparsemax_jacobian(
        jacobian=lambda s: sp.diag(*s) - _vec(s) * _vec(s).T / (_sum(s) + 1), n=3),
    # exponent 2 - alpha -> alpha - 2
    "sparse_maps.entmax_jacobian": lambda: sm.entmax_jacobian(
        jacobian=lambda p, a: sm.weighted_jacobian([x ** (a - 2) for x in p]), n_max=2),
    # sum s / 2 -> sum s / 3
    "sparse_maps.entmax_spectral_bound": lambda: sm.entmax_spectral_bound(
        bound=lambda s: sp.Min(sp.Max(*s), _sum(s) / 3), n_max=3),
    # upper bound halved
    "focus_conditions.dispersion_bounds": lambda: fc.dispersion_bounds(
        bounds=lambda n, d: (sp.exp(-d) / n, sp.exp(d) / (2 * n))),
    # n - 1 -> n
    "focus_conditions.pmax_bound": lambda: fc.pmax_bound(pmax=lambda n, d: sp.exp(d) / (sp.exp(d) + n)),
    # Delta counted twice
    "focus_conditions.topk_dispersion_separation": lambda: fc.topk_dispersion_separation(
        combined=lambda dh, sep: dh + 2 * sep),
    # factor 2 dropped
    "focus_conditions.lhs304_equivalence": lambda: fc.lhs304_equivalence(
        exp_form=lambda dh, ds, sep: (sp.exp(dh) * (1 + 1 / sep), sp.exp(ds))),
    # (1 + delta_s) dropped on the right
    "focus_conditions.lhs305_equivalence": lambda: fc.lhs305_equivalence(
        exp_form=lambda dh, ds, sep, bb: (fc.exp_form_305(dh, ds, sep, bb)[0], sp.exp(ds))),
    # /2 -> /3
    "focus_conditions.c2min_w": lambda: fc.c2min_w(
        c2min=lambda c1, ds: 1 / (ds * (sp.exp(ds * (1 - c1)) / 3 - 1))),
    # sign of beta flipped
    "focus_conditions.c2min_x": lambda: fc.c2min_x(
        c2min=lambda c1, ds, b: 1 / (ds * (((1 + ds) * sp.exp(ds * (1 - c1)) + b) / (ds * (1 + b)) - 1))),
    # ln 2 -> ln 3
    "focus_conditions.lhs304_infeasible_small_dispersion": lambda: fc.lhs304_infeasible_small_dispersion(
        threshold=lambda: sp.log(3)),
    # critical limit with the sign of the exponent flipped
    "dilution.needle_limits": lambda: dl.needle_limits(
        limit=lambda c, g: sp.Piecewise((0, c * g < 1), (1 / (1 + sp.exp(g)), sp.Eq(c * g, 1)), (1, True))),
    # critical limit 1/2 -> 1/3
    "dilution.ssmax_needle_limits": lambda: dl.ssmax_needle_limits(
        limit=lambda s, g: sp.Piecewise((0, s * g < 1), (sp.Rational(1, 3), sp.Eq(s * g, 1)), (1, True))),
    # 2R -> R
    "dilution.bounded_logits": lambda: dl.bounded_logits(bounds=lambda n, R: (sp.exp(-R) / n, sp.exp(R) / n)),
    # tau -> tau^2
    "ssa_algebra.query_temperature_row_scale": lambda: sa.query_temperature_row_scale(
        logits=lambda tau, q, keys, scale: sa.query_temperature_logits(tau**2, q, keys, scale), n_max=2, d_max=2),
    # value temperature applied to the output rows (the DeepCode bug)
    "ssa_algebra.unit_temperature_vanilla": lambda: sa.unit_temperature_vanilla(
        attention=lambda Q, K, V, tau, nu: sp.diag(*nu) * sa.ssa_attention_closed_form(Q, K, V, tau, [1] * len(nu)),
        n_max=2),
    # token term doubled: can reach -1
    "ssa_algebra.sigmoid_positive": lambda: sa.sigmoid_positive(
        temperature=lambda a, n, f: 1 + sp.log(n) / (1 + sp.exp(-a)) + 2 * sp.tanh(f)),
    # constant 2 in front: range (0, 2)
    "ssa_algebra.double_exp_positive": lambda: sa.double_exp_positive(coefficient=lambda a: 2 * sp.exp(-sp.exp(a))),
}


def test_every_check_has_a_mutation():
    assert set(MUTATIONS) == set(EXPECTED_CLAIMS)


@pytest.mark.parametrize("check_id", sorted(MUTATIONS))
def test_mutated_formula_fails(check_id):
    res = MUTATIONS[check_id]()
    assert res.check_id == check_id
    assert res.status == "failed", res.evidence
    assert "FAILED" in res.evidence


# Extra mutations: the second formula of checks that take two, and looser (not only tighter) bounds.
EXTRA = {
    "spectral_half_too_loose": lambda: sj.spectral_half(bound=lambda b: b),
    "one_norm_bound": lambda: sj.one_norm(bound=lambda: sp.Rational(1, 3), n_max=2),
    "inf_to_one_bound": lambda: sj.inf_to_one(bound=lambda: sp.Rational(3, 2), n_max=2),
    "entmax_support_bound": lambda: sm.entmax_spectral_bound(support_bound=lambda k, a: k ** (a - 2), n_max=2),
    "dispersion_lower": lambda: fc.dispersion_bounds(bounds=lambda n, d: (2 * sp.exp(-d) / n, sp.exp(d) / n)),
    "dispersion_upper_loose_at_0": lambda: fc.dispersion_bounds(
        bounds=lambda n, d: (sp.exp(-d) / n, 2 * sp.exp(d) / n)),
    "lhs304_authors_formula": lambda: fc.lhs304_equivalence(
        lhs=lambda dh, ds, sep: dh / ds + sp.log(3 * (1 + 1 / sep)) / ds),
    "needle_subcritical": lambda: dl.needle_limits(
        limit=lambda c, g: sp.Piecewise((sp.Rational(1, 2), c * g < 1), (1 / (1 + sp.exp(-g)), sp.Eq(c * g, 1)),
                                        (1, True))),
    "sigmoid_scale_missing": lambda: sa.sigmoid_positive(
        temperature=lambda a, n, f: sp.log(n) / (1 + sp.exp(-a)) + sp.tanh(f)),
}


@pytest.mark.parametrize("name", sorted(EXTRA))
def test_extra_mutations_fail(name):
    res = EXTRA[name]()
    assert res.status == "failed", res.evidence


# ----------------------------------------------------------------------------- machinery

def test_crashing_formula_is_an_error_not_a_pass():
    def boom(*args):
        raise RuntimeError("boom")

    res = fc.pmax_bound(pmax=boom)
    assert res.status == "error"
    assert "RuntimeError: boom" in res.evidence


def test_run_all_selects_by_check_or_claim_id():
    by_check = proofs_check.run_all(["focus_conditions.pmax_bound"])
    by_claim = proofs_check.run_all(["D2-dispersion-pmax"])
    assert [r.check_id for r in by_check] == [r.check_id for r in by_claim] == ["focus_conditions.pmax_bound"]


def test_run_all_unknown_id():
    with pytest.raises(ValueError, match="no-such-check"):
        proofs_check.run_all(["no-such-check"])


def _rec(claim, check, status):
    return CheckResult(claim_id=claim, check_id=check, method="symbolic limit", status=status,
                       evidence="e", seconds=0.0)


def test_status_by_claim_aggregates_worst():
    recs = [_rec("X", "m.a", "passed"), _rec("X", "m.b", "failed"), _rec("Y", "m.c", "passed"),
            _rec("Z", "m.d", "failed"), _rec("Z", "m.e", "error")]
    assert proofs_check.status_by_claim(recs) == {"X": "failed", "Y": "passed", "Z": "error"}
    assert proofs_check.status_by_check(recs)["m.e"] == "error"


def test_status_by_claim_default_runs_everything(results, monkeypatch):
    # reuse the module's results instead of re-running the whole suite
    monkeypatch.setattr(proofs_check._core, "run_all", lambda ids=None: list(results.values()))
    status = proofs_check.status_by_claim()
    assert set(status) == set(EXPECTED_CLAIMS.values())
    assert set(status.values()) == {"passed"}


def test_main_writes_json_atomically(tmp_path, capsys):
    path = tmp_path / "sub" / "proofs.json"
    rc = cli.main(["--json", str(path), "--ids", "D2-dispersion-pmax", "ssa_algebra.double_exp_positive"])
    assert rc == 0
    data = json.loads(path.read_text())
    assert [r["check_id"] for r in data["records"]] == ["focus_conditions.pmax_bound",
                                                         "ssa_algebra.double_exp_positive"]
    assert data["passed"] is True
    assert set(data["records"][0]) >= {"claim_id", "check_id", "method", "status", "evidence", "seconds"}
    assert os.listdir(path.parent) == ["proofs.json"]  # no temp file left behind
    out = capsys.readouterr().out
    assert "focus_conditions.pmax_bound" in out and "2/2 passed" in out


def test_main_exits_nonzero_on_failure(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "run_all", lambda ids=None: [_rec("X", "m.a", "passed"), _rec("Y", "m.b", "failed")])
    assert cli.main(["--json", str(tmp_path / "p.json")]) == 1
    assert json.loads((tmp_path / "p.json").read_text())["passed"] is False
    assert "FAILED: m.b" in capsys.readouterr().err


def test_main_list_and_bad_id(capsys):
    assert cli.main(["--list"]) == 0
    assert "softmax_jacobian.spectral_half" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli.main(["--ids", "nope"])
    assert exc.value.code == 2


def test_bad_method_rejected():
    with pytest.raises(ValueError, match="method"):
        proofs_check._core.check("X", "numerics")
