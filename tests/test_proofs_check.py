"""Tests of proofs_check: every check passes with the library's formula and fails with a mutated one,
and the SymPy formulas the checks prove are the formulas the library computes.

The mutation tests feed each check a deliberately wrong formula (a changed constant or sign) and
assert status "failed" (not "error": the check must refute the formula, not crash on it). Sizes
are reduced where a check takes ``n_max`` (the mutations already show at n = 2 or 3), to keep the
file fast on 2 shared cores.

The tie tests (section "the proven formulas are the library's") lambdify every SymPy builder a
check proves and compare it with the library function it stands for, on random float64 points.
Tolerance: both sides evaluate the same closed form (a few exp/log/products/quotients, each
within an ulp or two) in a different order, so on points kept away from cancellation they agree
to ~1e-14; ``RTOL = 1e-12`` leaves a factor 100 for that, while a wrong constant, sign or argument
order (what the mutations above use) is off by more than 1e-3 relative on these points. Where a
difference of terms can cancel, the tolerance is relative to the sum of the terms' magnitudes.
"""

from __future__ import annotations

import json
import itertools
import math
import os

import numpy as np
import pytest
import sympy as sp

import proofs_check
from proofs_check import dilution as dl
from proofs_check import focus_conditions as fc
from proofs_check import recent_theory as rt
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
    "softmax_jacobian.interlacing": "J3b-softmax-interlacing",
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
    "recent_theory.lp_half": "LP1-softmax-lp-half",
    "recent_theory.topk_tv_identity": "TK1-topk-tv-tail-mass",
    "recent_theory.topk_output_identity": "TK2-topk-output-error-identity",
    "recent_theory.topk_output_bounds": "TK3-topk-output-error-cross",
    "recent_theory.equiangular_contraction": "CS1-equiangular-contraction",
    "recent_theory.critical_scaling_limits": "CS1-equiangular-contraction",
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
    # the largest eigenvalue placed above p_(1): f has no sign change on (p_(1), oo)
    "softmax_jacobian.interlacing": lambda: sj.interlacing(
        brackets=lambda p: [(p[0], sp.oo)] + sj.interlacing_brackets_closed_form(p)[1:], n_max=3),
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
    # the mixed-norm constant 2^(1/q - 1): true at q = 1 only
    "recent_theory.lp_half": lambda: rt.lp_half(bound=lambda b, q: b * 2 ** (1 / q - 1), n_max=3),
    # factor 1/2 of the TV dropped
    "recent_theory.topk_tv_identity": lambda: rt.topk_tv_identity(tail=lambda p, k: 2 * sp.Add(*p[k:]), n_max=3),
    # t/p(S) -> t: the head sum not renormalised
    "recent_theory.topk_output_identity": lambda: rt.topk_output_identity(
        error=lambda p, v, k: rt.topk_output_error_closed_form(p, v, k)
        + (1 - sp.Add(*p[:k])) * sum((pi * vi for pi, vi in zip(p[:k], v[:k])), sp.zeros(2, 1)), n_max=3),
    # the cross diameter halved
    "recent_theory.topk_output_bounds": lambda: rt.topk_output_bounds(cross=lambda t, d: t * d / 2, n_max=3),
    # s -> p: the other tokens' weight forgotten
    "recent_theory.equiangular_contraction": lambda: rt.equiangular_contraction(
        contraction=lambda n, rho, beta: 1 / (1 + (n - 1) * sp.exp(-beta * (1 - rho))), n_max=3),
    # critical value 1/2 -> sigma(1)
    "recent_theory.critical_scaling_limits": lambda: rt.critical_scaling_limits(
        limit=lambda g, d: sp.Piecewise((0, g * d < 1), (1 / (1 + sp.exp(-1)), sp.Eq(g * d, 1)), (1, True))),
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
    # interlacing: smallest eigenvalue claimed at the pole p_(n) instead of 0
    "interlacing_last_at_pole": lambda: sj.interlacing(
        brackets=lambda p: sj.interlacing_brackets_closed_form(p)[:-1] + [(p[-1], p[-1])], n_max=3),
    # ... or strictly inside (0, p_(n)): the root 0 sits on the bracket's end
    "interlacing_last_open": lambda: sj.interlacing(
        brackets=lambda p: sj.interlacing_brackets_closed_form(p)[:-1] + [(0, p[-1])], n_max=3),
    # two eigenvalues in one bracket (p_(3), p_(1)): a pole inside, the sign-change argument fails
    "interlacing_merged": lambda: sj.interlacing(
        brackets=lambda p: [(p[min(2, len(p) - 1)], p[0])] + sj.interlacing_brackets_closed_form(p)[1:],
        n_max=3),
    # one bracket fewer than eigenvalues
    "interlacing_missing": lambda: sj.interlacing(
        brackets=lambda p: sj.interlacing_brackets_closed_form(p)[:-1], n_max=3),
    # the secular function with the sign of its sum flipped
    "interlacing_secular_sign": lambda: sj.interlacing(
        secular=lambda p, lam: sp.Mul(*[x - lam for x in p]) * (1 + _sum([x**2 / (x - lam) for x in p])), n_max=3),
    # the norm form with 2t -> t (the TV instead of ||p - p_hat||_1)
    "topk_norm_form_halved": lambda: rt.topk_output_bounds(norm=lambda t, m: t * m, n_max=2),
    # a constant that is true but not attained (beta/2 + beta/100)
    "lp_half_loose": lambda: rt.lp_half(bound=lambda b, q: b / 2 + b / 100, n_max=2),
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


# ----------------------------------------------------------------------------- the proven formulas are the library's

RTOL = 1e-12  # see the module docstring


def _lam(builder, *symbols):
    """float64 NumPy function of the SymPy builder's expression(s)."""
    return sp.lambdify(symbols, builder(*symbols), modules="numpy")


def _close(got, want, scale=None, rtol=RTOL):
    """|got - want| <= rtol * scale elementwise (scale: magnitude of the summed terms; default |want|)."""
    got, want = np.asarray(got, float), np.asarray(want, float)
    scale = np.abs(want) if scale is None else np.asarray(scale, float)
    assert got.shape == want.shape or got.size == want.size, (got.shape, want.shape)
    err = np.abs(got.reshape(want.shape) - want)
    bad = ~(err <= rtol * scale)
    assert not np.any(bad), f"{int(bad.sum())} mismatches, worst {float(np.max(err / np.maximum(scale, 1e-300)))}"


@pytest.fixture
def rng():  # a fresh generator per test: each test sees the same points however it is selected
    return np.random.default_rng(20240601)


def _simplex(rng, n, size=None):
    return rng.dirichlet(np.ones(n), size=size)


# focus_conditions

def test_tie_dispersion_bounds_and_pmax(rng):
    from softmax_stability import focus as F

    n = rng.integers(1, 2000, 300)
    d = rng.uniform(0, 30, 300)
    n_, d_ = sp.symbols("n delta", positive=True)
    lo, hi = _lam(fc.dispersion_bounds_closed_form, n_, d_)(n, d)
    flo, fhi = F.softmax_entry_bounds(d, n)
    _close(flo, lo)
    _close(fhi, hi)
    _close(F.pmax_bound(d, n), _lam(fc.pmax_closed_form, n_, d_)(n, d))
    ext_lo, ext_hi = _lam(fc.weight_extremes, n_, d_)(n, d)  # the extremes the checks derive
    _close(F.pmin_bound(d, n), ext_lo)
    _close(F.pmax_bound(d, n), ext_hi)


def test_tie_topk_dispersion_plus_separation(rng):
    """The check's parametrisation (delta_s = z_(1) - z_(n), delta_h = z_(1) - z_(k), Delta = z_(k) -
    z_(k+1), residual z_(k+1) - z_(n)) is what the library's dispersion/separation compute."""
    from softmax_stability import focus as F

    z = rng.normal(size=(50, 9)) * 3
    dh_, sep_ = sp.symbols("delta_h Delta", nonnegative=True)
    combined = _lam(fc.topk_combined_closed_form, dh_, sep_)
    srt = -np.sort(-z, axis=-1)
    for k in range(1, 9):
        lhs = np.asarray(F.dispersion(z)) - combined(np.asarray(F.dispersion(z, k)), np.asarray(F.separation(z, k)))
        _close(lhs, srt[:, k] - srt[:, -1], scale=3 * np.ptp(z, axis=-1))


def _lhs_points(rng, size=400):
    ds = np.exp(rng.uniform(np.log(0.05), np.log(60.0), size))
    dh = rng.uniform(0, 1, size) * ds
    sep = np.exp(rng.uniform(np.log(1e-7), np.log(1e3), size))
    bb = np.exp(rng.uniform(np.log(1e-3), np.log(100.0), size))
    return ds, dh, sep, bb


def test_tie_lhs_and_exponential_forms(rng):
    from softmax_stability import focus as F

    ds, dh, sep, bb = _lhs_points(rng)
    dh_, ds_, sep_, bb_ = sp.symbols("delta_h delta_s Delta bbar", positive=True)
    # (304): every term positive, no cancellation
    _close(F.lhs_304(ds, dh, sep), _lam(fc.lhs_304, dh_, ds_, sep_)(dh, ds, sep))
    # (305): ln(inner) - ln(1 + delta_s) can cancel: relative to the terms' magnitudes
    inner = ds * (1 + bb) * (1 + 1 / sep) + bb
    scale = (dh + np.abs(np.log(inner)) + np.log1p(ds)) / ds
    _close(F.lhs_305(ds, dh, sep, bb), _lam(fc.lhs_305, dh_, ds_, sep_, bb_)(dh, ds, sep, bb), scale=scale)
    # the exponential forms (L, R) are the library's relative constants lambda(topk), lambda(full)
    L, R = _lam(fc.exp_form_304, dh_, ds_, sep_)(dh, ds, sep)
    _close(F.lambda_w_topk(dh, sep), L)
    _close(F.lambda_w_full(ds), R)
    L, R = _lam(fc.exp_form_305, dh_, ds_, sep_, bb_)(dh, ds, sep, bb)
    _close(F.lambda_x_topk(dh, sep, bb, ds), L)  # the authors' substitution 2 Gamma Xi^2 = delta_s
    _close(F.lambda_x_full(ds), R)


def test_tie_c2min_closed_forms(rng):
    from softmax_stability import focus as F

    c1 = rng.uniform(0, 1, 2000)
    ds = np.exp(rng.uniform(np.log(0.1), np.log(40.0), 2000))
    beta = np.exp(rng.uniform(np.log(0.01), np.log(32.0), 2000))
    c1_, ds_, b_ = sp.symbols("c1 delta_s beta", positive=True)
    with np.errstate(over="ignore", divide="ignore"):
        sym_w = _lam(fc.c2min_w_closed_form, c1_, ds_)(c1, ds)
        sym_x = _lam(fc.c2min_x_closed_form, c1_, ds_, b_)(c1, ds, beta)
    # W: the check proves c2min > 0 (feasible) iff x = delta_s (1 - c1) - ln 2 > 0; the library marks
    # the empty region with +inf. exp(x) - 1 has condition ~1/x: compare where x > 0.05.
    x = ds * (1 - c1) - math.log(2)
    lib_w = np.asarray(F.c2_min_w(c1, ds))
    feas = x > 0.05
    assert feas.sum() > 500 and (x < -1e-9).sum() > 100
    _close(lib_w[feas], sym_w[feas])
    assert np.all(np.isinf(lib_w[x < -1e-9])) and np.all(~(sym_w[x < -1e-9] > 0))
    # X: feasible iff den = (1 + delta_s) e^{delta_s (1 - c1)} - beta - delta_s (1 + beta) > 0
    e = (1 + ds) * np.exp(ds * (1 - c1))
    den = e - beta - ds * (1 + beta)
    lib_x = np.asarray(F.c2_min_x(c1, ds, beta))
    feas = den > 0.05 * (e + beta + ds * (1 + beta))
    assert feas.sum() > 500 and (den < 0).sum() > 100
    _close(lib_x[feas], sym_x[feas])
    assert np.all(np.isinf(lib_x[den < 0])) and np.all(~(sym_x[den < 0] > 0))


def test_tie_infeasibility_threshold():
    from softmax_stability import focus as F

    thr = float(fc.infeasible_threshold_closed_form())
    assert thr == pytest.approx(math.log(2), rel=1e-15)
    c1 = np.linspace(0, 1, 101)
    assert np.all(np.isinf(np.asarray(F.c2_min_w(c1, thr * (1 - 1e-9)))))
    assert np.isfinite(float(F.c2_min_w(0.0, thr * (1 + 1e-6))))
    assert float(F.lhs_304(thr * (1 - 1e-9), 0.0, 1e300)) >= 1.0


# dilution

def test_tie_needle_weight_and_limits(rng):
    from softmax_stability import dilution as D

    m = 400
    n = np.exp(rng.uniform(np.log(2.0), np.log(1e6), m))
    gap = rng.uniform(-2, 3, m)
    c = rng.uniform(0, 1.5, m)
    off = rng.choice([0.0, 1.0, 0.5], m)
    n_, g_, c_, a_ = sp.symbols("n gap c a", real=True)
    want = _lam(dl.needle_weight, n_, g_, c_, a_)(n, gap, c, off)
    _close(D.needle_probability_scheduled(n, gap, c, off), want)
    _close(D.needle_probability(n, gap, off + c * np.log(n)), want)
    # the limits, including c gap = 1 exactly (c = 1/gap representable)
    gaps = np.array([0.5, 1.0, 2.0, 4.0, 0.5, 1.0, 2.0, 4.0, 0.5, 1.0, 2.0, 4.0])
    cs = np.concatenate([0.5 / gaps[:4], 1.0 / gaps[4:8], 1.5 / gaps[8:]])
    assert np.all((cs * gaps)[4:8] == 1.0)
    for off in (1.0, 0.0, 0.7):
        lim = _lam(lambda c, g: dl.needle_limit_closed_form(c, g, off), c_, g_)(cs, gaps)
        _close(D.needle_limit(gaps, cs, off), lim)
    ssm = _lam(dl.ssmax_limit_closed_form, c_, g_)(cs, gaps)
    _close(D.needle_limit(gaps, cs, 0.0), ssm)
    assert np.all(ssm[4:8] == 0.5)


def test_tie_bounded_logits(rng):
    from softmax_stability import dilution as D

    n = rng.integers(1, 5000, 300).astype(float)
    R = rng.uniform(0, 10, 300)
    n_, R_ = sp.symbols("n R", positive=True)
    lo, hi = _lam(dl.bounded_logit_bounds_closed_form, n_, R_)(n, R)
    flo, fhi = D.bounded_weight_interval(n, R)
    _close(flo, lo)
    _close(fhi, hi)


# ssa_algebra

def test_tie_ssa_attention_and_query_temperature(rng):
    """The check's SSA layer softmax(diag(tau) Q K^T / sqrt d) diag(nu) V is the library's
    dot_product_attention with query and value temperatures, and softmax of the check's
    temperature logits is the library's attention with a query temperature."""
    from softmax_stability.attention import dot_product_attention

    T, d = 3, 2
    Qs = sp.Matrix(T, d, sp.symbols(f"q0:{T * d}", real=True))
    Ks = sp.Matrix(T, d, sp.symbols(f"k0:{T * d}", real=True))
    Vs = sp.Matrix(T, d, sp.symbols(f"v0:{T * d}", real=True))
    taus = sp.symbols(f"tau0:{T}", positive=True)
    nus = sp.symbols(f"nu0:{T}", positive=True)
    expr = sa.ssa_attention_closed_form(Qs, Ks, Vs, list(taus), list(nus))
    f = sp.lambdify([*Qs, *Ks, *Vs, *taus, *nus], expr, modules="numpy")
    tau_s = sp.Symbol("tau", positive=True)
    qv = sp.symbols(f"x0:{d}", real=True)
    kv = [sp.symbols(f"y{j}_0:{d}", real=True) for j in range(T)]
    logit_f = sp.lambdify([tau_s, *qv, *itertools.chain(*kv)],
                          sa.query_temperature_logits(tau_s, qv, kv, 1 / sp.sqrt(d)), modules="numpy")
    for _ in range(10):
        Q, K, V = (rng.normal(size=(T, d)) * 2 for _ in range(3))
        tau, nu = rng.uniform(0.2, 3, T), rng.uniform(0, 2, T)
        want = np.asarray(f(*Q.ravel(), *K.ravel(), *V.ravel(), *tau, *nu), float)
        got = dot_product_attention(Q[:, None, :], K[:, None, :], V[:, None, :], query_temperature=tau[:, None],
                                    value_temperature=nu[:, None], implementation="jnp")[:, 0, :]
        _close(got, want, scale=np.max(np.abs(V)) * np.max(nu))  # y_i = sum_j p_ij nu_j v_j can cancel
        logits = np.array(logit_f(tau[0], *Q[0], *K.ravel()), float)
        w = np.exp(logits - logits.max())
        one = dot_product_attention(Q[:1, None, :], K[:, None, :], V[:, None, :], query_temperature=tau[:1, None],
                                    implementation="jnp")[0, 0, :]
        _close(one, (w / w.sum()) @ V, scale=np.max(np.abs(V)))


def test_tie_ssa_temperatures(rng):
    from softmax_stability import temperature as Tm

    alpha = rng.uniform(-6, 6, 300)
    n = np.exp(rng.uniform(0, np.log(1e5), 300))
    f = rng.uniform(-5, 5, 300)
    a_, n_, f_ = sp.symbols("alpha n f", real=True)
    _close(Tm.ssa_temperature(n, alpha, f, parametrisation="sigmoid"),
           _lam(sa.sigmoid_temperature, a_, n_, f_)(alpha, n, f),
           scale=1 + np.log(n) + 1)  # 1 + g ln n + tanh f: tanh f can cancel the rest
    _close(Tm.position_gain(alpha, "double_exp"), _lam(sa.double_exp_coefficient, a_)(alpha), rtol=1e-11)


# softmax_jacobian

@pytest.mark.parametrize("n", [3, 6])  # every new n is a compilation of each library function
def test_tie_softmax_jacobian_closed_forms(rng, n):
    from softmax_stability import jacobian as J

    p = _simplex(rng, n, 40)
    beta = rng.uniform(0.1, 5, 40)
    ps = sp.symbols(f"p0:{n}", positive=True)
    vs = sp.symbols(f"v0:{n}", real=True)
    b_ = sp.Symbol("beta", positive=True)
    jac = sp.lambdify([*ps, b_], sj.jacobian_closed_form(ps, b_), modules="numpy")
    var = sp.lambdify([*ps, *vs, b_], sj.variance_closed_form(ps, vs, b_), modules="numpy")
    frob = sp.lambdify(ps, sj.frobenius_sq_closed_form(ps), modules="numpy")
    cols = sp.lambdify(ps, sj.one_norm_columns_closed_form(ps), modules="numpy")
    lib_J = np.asarray(J.softmax_jacobian(p, beta=beta))
    lib_F = np.asarray(J.frobenius_norm(p))
    lib_1 = np.asarray(J.one_norm(p))
    lib_i = np.asarray(J.inf_to_one_norm(p))
    for t in range(p.shape[0]):
        pt, bt = p[t], beta[t]
        _close(lib_J[t], np.asarray(jac(*pt, bt), float), scale=bt * max(pt.max(), 1e-3))  # p_i - p_i^2 cancels
        v = rng.normal(size=n)
        _close(v @ lib_J[t] @ v, var(*pt, *v, bt), scale=bt * np.sum(pt * v**2))
        s2, s3 = np.sum(pt**2), np.sum(pt**3)
        _close(lib_F[t] ** 2, frob(*pt), scale=s2 + 2 * s3 + s2**2)
        _close(lib_1[t], np.max(cols(*pt)))
        subsets = [sum(pt[list(S)]) for r in range(n + 1) for S in itertools.combinations(range(n), r)]
        _close(lib_i[t], max(float(sj.inf_to_one_subset_closed_form(m)) for m in subsets), scale=1.0)


@pytest.mark.parametrize("n", [3, 6])
def test_tie_secular_equation_and_interlacing(rng, n):
    """The library's eigenvalues are the roots of the proven secular polynomial (Newton step below
    1e-12: the first-order distance to the nearest root; eigenvalues are <= 1/2, the float64
    evaluation of the product form errs by ~1e-16 there) and lie in the proven brackets."""
    from softmax_stability import jacobian as J

    ps = sp.symbols(f"p0:{n}", positive=True)
    lam = sp.Symbol("lam")
    P = sj.secular_closed_form(ps, lam)
    P_f = sp.lambdify([*ps, lam], P, modules="numpy")
    dP_f = sp.lambdify([*ps, lam], sp.diff(P, lam), modules="numpy")
    br = sp.lambdify(ps, sj.interlacing_brackets_closed_form(ps), modules="numpy")
    p = -np.sort(-_simplex(rng, n, 30), axis=-1)  # descending, distinct with probability 1
    eig = np.asarray(J.eigenvalues(p))
    top = np.asarray(J.spectral_norm(p))
    for t in range(p.shape[0]):
        e = np.sort(eig[t])[::-1]
        newton = [abs(P_f(*p[t], x) / dP_f(*p[t], x)) for x in e]
        assert max(newton) < 1e-12, (p[t], e, newton)
        assert top[t] == pytest.approx(e[0], rel=1e-12)
        for x, (a, b) in zip(e, br(*p[t])):
            assert (a < x < b) if a != b else abs(x - a) < 1e-15, (p[t], e)


def test_tie_spectral_and_norm_bounds_attained():
    from softmax_stability import jacobian as J

    b_ = sp.Symbol("beta", positive=True)
    bound = sp.lambdify(b_, sj.spectral_bound_closed_form(b_), modules="numpy")
    for beta in (0.3, 1.0, 7.0):
        assert float(J.spectral_norm(np.array([0.5, 0.5]), beta=beta)) == pytest.approx(bound(beta), rel=RTOL)
    half = np.array([0.5, 0.3, 0.2])
    assert float(J.one_norm(half)) == pytest.approx(float(sj.one_norm_bound_closed_form()), rel=RTOL)
    bal = np.array([0.5, 0.25, 0.25])
    assert float(J.inf_to_one_norm(bal)) == pytest.approx(float(sj.inf_to_one_bound_closed_form()), rel=RTOL)


# sparse_maps

@pytest.mark.parametrize("alpha", [1.25, 1.5])
def test_tie_sparse_map_jacobians(rng, alpha):
    from softmax_stability import jacobian as J

    n = 5
    ps = sp.symbols(f"p0:{n}", nonnegative=True)
    ent = sp.lambdify(ps, sm.entmax_jacobian_closed_form(ps, sp.Rational(alpha)), modules="numpy")
    ss = sp.symbols(f"s0:{n}", nonnegative=True)
    bnd = sp.lambdify(ss, sm.entmax_bound_closed_form(ss), modules="numpy")
    for _ in range(10):
        p = _simplex(rng, n)
        p[rng.random(n) < 0.3] = 0.0  # some keys off the support
        if p.sum() == 0:
            p[0] = 1.0
        p /= p.sum()
        supp = p > 0
        s = np.where(supp, p, 1.0) ** (2 - alpha) * supp
        with np.errstate(divide="ignore", invalid="ignore"):
            want = np.asarray(ent(*p), float)
        want = np.where(np.outer(supp, supp), want, 0.0)  # 0^(2-alpha) = 0 off the support
        _close(J.entmax_jacobian(p, alpha), want, scale=s.max())
        _close(J.entmax_spectral_bound(p, alpha), bnd(*s))
        # the support bound k^(alpha-1)/2 caps the library's bound (claim S3) ...
        k = int(supp.sum())
        cap = min(1.0, float(sm.entmax_support_bound_closed_form(k, alpha)) / 2)
        assert float(J.entmax_spectral_bound(p, alpha)) <= cap * (1 + RTOL)
        # ... and sparsemax's Jacobian is the check's diag(s) - s s^T / |S| on the support
        ind = supp.astype(float)
        sparse = sp.lambdify([], sm.sparsemax_jacobian_closed_form([int(i) for i in ind]), modules="numpy")()
        _close(J.sparsemax_jacobian(p), np.asarray(sparse, float), scale=1.0)
    # Jensen's equality case: at uniform p on k keys sum s = k^(alpha-1), read off trace(J) = sum s (1 - 1/k)
    for k in (2, 3, 5):
        u = np.full(k, 1 / k)
        tr = float(np.trace(np.asarray(J.entmax_jacobian(u, alpha))))
        _close(tr * k / (k - 1), float(sm.entmax_support_bound_closed_form(k, alpha)))
