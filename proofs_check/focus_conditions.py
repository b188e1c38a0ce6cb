r"""Symbolic checks of the dispersion facts and of the SF comparison conditions (D1, D2, F2, F5-F9).

Dispersion (docs/notes/semantic_focus.md §2.4 O1, O5, [OURS]; docs/notes/field.md §4.1 [D]):

* ``dispersion_bounds`` [D1] -- for :math:`p = \mathrm{softmax}(z)`, :math:`\delta = \max z - \min z`:
  :math:`p_j = 1/(1 + \sum_{k \ne j} e^{d_k})` with :math:`d_k = z_k - z_j \in [-\delta, \delta]` is
  strictly decreasing in each :math:`d_k` (sign of the derivative decided by SymPy), so its exact
  extremes are :math:`1/(1 + (n-1)e^{\pm\delta})` (attained by needle configurations). The formula
  under test must contain them: ``upper - 1/(1+(n-1)e^{-delta}) >= 0`` and
  ``1/(1+(n-1)e^{delta}) - lower >= 0`` are certified for **all** integers :math:`n \ge 1` and
  :math:`\delta \ge 0` by writing :math:`e^\delta = 1 + t`, :math:`n = 1 + m` (:math:`t, m \ge 0`) and
  checking that numerator and denominator polynomials have nonnegative coefficients. Both bounds
  are exact at :math:`\delta = 0`.
* ``pmax_bound`` [D2] -- for the arg-max, :math:`d_k \in [-\delta, 0]`, so
  :math:`p_{\max} \le 1/(1 + (n-1)e^{-\delta})`, attained when all other logits sit at the minimum;
  the formula under test must equal it identically (general :math:`n`).
* ``topk_dispersion_separation`` [F2] -- sorted logits written with nonnegative gaps,
  :math:`z_{(1)} = z_{(n)} + g_1 + g_2 + g_3`, :math:`z_{(k)} = z_{(n)} + g_2 + g_3`,
  :math:`z_{(k+1)} = z_{(n)} + g_3` (:math:`g_1` spans positions :math:`1..k`, :math:`g_2 = \Delta`,
  :math:`g_3` spans :math:`k+1..n`), which covers every :math:`n` and :math:`1 \le k < n`; the residual
  :math:`\delta_s - (\delta_h + \Delta) = z_{(k+1)} - z_{(n)} = g_3 \ge 0`, zero when :math:`k = n-1`.

SF conditions exactly as the authors' code computes them (docs/notes/semantic_focus.md §2.2 [CODE]; the
interpretation as :math:`\lambda_W`, :math:`\lambda_X` comparisons is [INF], unconfirmed):

* ``lhs304_equivalence`` [F5] / ``lhs305_equivalence`` [F6] -- the identity
  :math:`\delta_s(\mathrm{LHS} - 1) = \ln L - \ln R` with :math:`L, R > 0` the two sides of the
  exponential form (logs expanded, all quantities positive); since :math:`\delta_s > 0` and
  :math:`\ln` is increasing, :math:`\mathrm{LHS} < 1 \iff L < R`.
* ``c2min_w`` [F7] / ``c2min_x`` [F8] -- ``sympy.solve`` of :math:`\mathrm{LHS} = 1` for
  :math:`c_2 = \Delta/\delta_s` (with :math:`c_1 = \delta_h/\delta_s`) has a unique solution, equal to
  the closed form; :math:`\partial\,\mathrm{LHS}/\partial c_2 < 0`, so the region where the condition
  holds is :math:`c_2 > c_2^{\min}(c_1)`; the solution is positive iff
  :math:`c_1 < 1 - \ln 2/\delta_s` (W), resp.
  :math:`c_1 < 1 - \ln\frac{\delta_s(1+\beta)+\beta}{1+\delta_s}/\delta_s` (X). In (305) the code
  uses :math:`\bar\beta = \beta` directly (``bounds.py``), as here.
* ``lhs304_infeasible_small_dispersion`` [F9] -- :math:`\mathrm{LHS}_{304} - \ln 2/\delta_s =
  c_1 + \ln(1 + 1/\Delta)/\delta_s > 0` for all :math:`c_1 \ge 0, \Delta > 0` (SymPy sign), and
  :math:`\lim_{\Delta\to\infty} \mathrm{LHS}_{304}|_{c_1=0} = \ln 2/\delta_s`, so the infimum is
  :math:`\ln 2/\delta_s`, not attained: (304) is feasible iff :math:`\ln 2/\delta_s < 1`, i.e.
  infeasible iff :math:`\delta_s \le \ln 2`. The threshold under test must equal the solution
  of :math:`\ln 2/\delta_s = 1`.
"""

from __future__ import annotations

import sympy as sp

from ._core import Proof, check
from ._sym import exp_residual, find_negative, nonneg_certificate, rat_residual, short

__all__ = [
    "dispersion_bounds_closed_form",
    "pmax_closed_form",
    "topk_combined_closed_form",
    "lhs_304",
    "lhs_305",
    "exp_form_304",
    "exp_form_305",
    "c2min_w_closed_form",
    "c2min_x_closed_form",
    "infeasible_threshold_closed_form",
    "weight_extremes",
    "certify_nonneg_n_delta",
    "dispersion_bounds",
    "pmax_bound",
    "topk_dispersion_separation",
    "lhs304_equivalence",
    "lhs305_equivalence",
    "c2min_w",
    "c2min_x",
    "lhs304_infeasible_small_dispersion",
]


# ------------------------------------------------------------------ library closed forms


def dispersion_bounds_closed_form(n, delta):
    r"""``(lower, upper)`` = :math:`(e^{-\delta}/n,\ e^{\delta}/n)`."""
    return sp.exp(-delta) / n, sp.exp(delta) / n


def pmax_closed_form(n, delta):
    r""":math:`e^\delta/(e^\delta + n - 1)`."""
    return sp.exp(delta) / (sp.exp(delta) + n - 1)


def topk_combined_closed_form(delta_h, sep):
    r""":math:`\delta_h + \Delta` (claimed :math:`\le \delta_s`)."""
    return delta_h + sep


def lhs_304(delta_h, delta_s, sep):
    r"""The authors' :math:`\mathrm{LHS}_{304} = \delta_h/\delta_s + \ln(2(1 + 1/\Delta))/\delta_s`."""
    return delta_h / delta_s + sp.log(2 * (1 + 1 / sep)) / delta_s


def lhs_305(delta_h, delta_s, sep, bbar):
    r"""The authors' :math:`\mathrm{LHS}_{305}`."""
    return (
        delta_h / delta_s
        + sp.log(delta_s * (1 + bbar) * (1 + 1 / sep) + bbar) / delta_s
        - sp.log(1 + delta_s) / delta_s
    )


def exp_form_304(delta_h, delta_s, sep):
    r"""``(L, R)`` with :math:`\mathrm{LHS}_{304} < 1 \iff L < R`."""
    return 2 * sp.exp(delta_h) * (1 + 1 / sep), sp.exp(delta_s)


def exp_form_305(delta_h, delta_s, sep, bbar):
    r"""``(L, R)`` with :math:`\mathrm{LHS}_{305} < 1 \iff L < R`."""
    return (
        sp.exp(delta_h) * (delta_s * (1 + bbar) * (1 + 1 / sep) + bbar),
        sp.exp(delta_s) * (1 + delta_s),
    )


def c2min_w_closed_form(c1, delta_s):
    r""":math:`c_2^{\min,W}(c_1) = 1/(\delta_s(e^{\delta_s(1-c_1)}/2 - 1))`."""
    return 1 / (delta_s * (sp.exp(delta_s * (1 - c1)) / 2 - 1))


def c2min_x_closed_form(c1, delta_s, beta):
    r""":math:`c_2^{\min,X}(c_1) = 1/(\delta_s(((1+\delta_s)e^{\delta_s(1-c_1)} - \beta)/(\delta_s(1+\beta)) - 1))`."""
    return 1 / (delta_s * (((1 + delta_s) * sp.exp(delta_s * (1 - c1)) - beta) / (delta_s * (1 + beta)) - 1))


def infeasible_threshold_closed_form():
    r"""(304) is infeasible iff :math:`\delta_s \le \ln 2`."""
    return sp.log(2)


# ------------------------------------------------------------------ shared machinery

_n = sp.Symbol("n", positive=True, integer=True)
_delta = sp.Symbol("delta", nonnegative=True)
_t = sp.Symbol("t", nonnegative=True)  # e^delta = 1 + t
_m = sp.Symbol("m", nonnegative=True)  # n = 1 + m


def certify_nonneg_n_delta(expr, n=_n, delta=_delta):
    """Certify ``expr(n, delta) >= 0`` for all integers n >= 1 and delta >= 0.

    Returns ``(ok, text)``; on failure the text names a counterexample when one is found on a
    small grid.
    """
    sub = sp.sympify(expr).subs({delta: sp.log(1 + _t), n: 1 + _m})
    sub = rat_residual(sub)
    if sub.free_symbols - {_t, _m} or not sub.is_rational_function(_t, _m):
        return False, f"not a rational function of e^delta and n, no certificate: {short(sub)}"
    ok, num, den = nonneg_certificate(sub, [_t, _m])
    if ok:
        return True, f"= ({short(num, 80)})/({short(den, 80)}) with e^delta = 1+t, n = 1+m: all coefficients >= 0"
    grid = [sp.Integer(0), sp.Rational(1, 2), sp.Integer(1), sp.Integer(3), sp.Integer(20)]
    bad = find_negative(sub, [_t, _m], grid)
    where = f"negative at {bad[0]} (value {bad[1]})" if bad else "no sign certificate"
    return False, f"= {short(sub, 100)} with e^delta = 1+t, n = 1+m: {where}"


def weight_extremes(n, delta):
    r"""``(lower, upper)`` = :math:`(1/(1+(n-1)e^{\delta}),\ 1/(1+(n-1)e^{-\delta}))`, the exact extremes
    of a softmax weight over logits with :math:`\max z - \min z \le \delta` (needle configurations;
    derived by the checks, not under test; the library's ``pmin_bound``/``pmax_bound``)."""
    return 1 / (1 + (n - 1) * sp.exp(delta)), 1 / (1 + (n - 1) * sp.exp(-delta))


def _monotone_step(proof):
    d = sp.Symbol("d", real=True)
    rest = sp.Symbol("rest", nonnegative=True)
    deriv = sp.diff(1 / (1 + sp.exp(d) + rest), d)
    proof.require(
        deriv.is_negative,
        f"p_j = 1/(1 + e^(d_k) + rest) has d/dd_k = {deriv} < 0, so the extremes over d_k in [-delta, delta] "
        "sit at d_k = +-delta: 1/(1+(n-1)e^(+-delta)) (attained)",
    )


# ------------------------------------------------------------------ dispersion


@check(
    "D1-dispersion-entry-bounds",
    "symbolic (general n)",
    "e^{-delta}/n <= p_j <= e^{delta}/n for every n and delta = max z - min z",
)
def dispersion_bounds(bounds=dispersion_bounds_closed_form) -> Proof:
    proof = Proof()
    _monotone_step(proof)
    lo_ext, hi_ext = weight_extremes(_n, _delta)
    lower, upper = bounds(_n, _delta)
    ok, text = certify_nonneg_n_delta(upper - hi_ext)
    proof.require(ok, f"upper - 1/(1+(n-1)e^-delta) {text}")
    ok, text = certify_nonneg_n_delta(lo_ext - lower)
    proof.require(ok, f"1/(1+(n-1)e^delta) - lower {text}")
    at0 = [rat_residual(sp.sympify(b).subs(_delta, 0) - 1 / _n) for b in (lower, upper)]
    proof.require(all(r == 0 for r in at0), f"both bounds equal 1/n at delta = 0 (exact there); residuals {at0}")
    return proof


@check(
    "D2-dispersion-pmax",
    "symbolic (general n)",
    "p_max <= e^delta/(e^delta + n - 1), attained when all other logits are at the minimum",
)
def pmax_bound(pmax=pmax_closed_form) -> Proof:
    proof = Proof()
    d = sp.Symbol("d", real=True)
    rest = sp.Symbol("rest", nonnegative=True)
    deriv = sp.diff(1 / (1 + sp.exp(d) + rest), d)
    proof.require(
        deriv.is_negative,
        "p_max = 1/(1 + sum_k e^(d_k)), d_k = z_k - z_max in [-delta, 0], decreasing in each d_k: "
        "the supremum is at d_k = -delta, 1/(1+(n-1)e^-delta), attained",
    )
    _, hi_ext = weight_extremes(_n, _delta)
    res = rat_residual(sp.sympify(pmax(_n, _delta)).subs({_delta: sp.log(1 + _t)}) - hi_ext.subs({_delta: sp.log(1 + _t)}))
    proof.require(res == 0, f"formula - 1/(1+(n-1)e^-delta) = {short(res)} (general n, e^delta = 1+t)")
    return proof


@check(
    "F2-topk-dispersion-plus-separation",
    "symbolic (general n)",
    "delta_h + Delta <= delta_s (residual z_(k+1) - z_(n) >= 0), every n and 1 <= k < n",
)
def topk_dispersion_separation(combined=topk_combined_closed_form) -> Proof:
    proof = Proof()
    g1, g2, g3 = sp.symbols("g1 g2 g3", nonnegative=True)
    zn = sp.Symbol("z_n", real=True)
    z1, zk, zk1 = zn + g1 + g2 + g3, zn + g2 + g3, zn + g3
    delta_s, delta_h, sep = z1 - zn, z1 - zk, zk - zk1
    res = sp.expand(delta_s - combined(delta_h, sep))
    if res.free_symbols - {g1, g2, g3}:
        proof.require(False, f"residual depends on the location z_n: {res}")
        return proof
    ok, num, den = nonneg_certificate(res, [g1, g2, g3])
    proof.require(ok, f"delta_s - formula = {res} (g3 = z_(k+1) - z_(n) >= 0, g2 = Delta, g1 = delta_h)")
    proof.require(
        sp.expand(res.subs(g3, 0)) == 0,
        f"equality when z_(k+1) = z_(n) (e.g. k = n-1): residual there {sp.expand(res.subs(g3, 0))}",
    )
    return proof


# ------------------------------------------------------------------ SF conditions

_dh = sp.Symbol("delta_h", positive=True)
_ds = sp.Symbol("delta_s", positive=True)
_sep = sp.Symbol("Delta", positive=True)
_bb = sp.Symbol("bbar", positive=True)
_c1 = sp.Symbol("c1", positive=True)
_c2 = sp.Symbol("c2", positive=True)
_beta = sp.Symbol("beta", positive=True)


def _equivalence(proof, lhs, sides):
    L, R = (sp.sympify(e) for e in sides)
    proof.require(L.is_positive and R.is_positive, f"both sides positive: L = {L}, R = {R}")
    res = exp_residual(sp.expand_log(_ds * (lhs - 1) - (sp.log(L) - sp.log(R)), force=True))
    proof.require(
        res == 0,
        f"delta_s (LHS - 1) - (ln L - ln R) = {short(res)}; delta_s > 0 and ln increasing give LHS < 1 <=> L < R",
    )


@check(
    "F5-lhs304-exponential-form",
    "symbolic (general n)",
    "LHS_304 < 1 <=> 2 e^{delta_h}(1 + 1/Delta) < e^{delta_s}",
)
def lhs304_equivalence(exp_form=exp_form_304, lhs=lhs_304) -> Proof:
    proof = Proof()
    _equivalence(proof, lhs(_dh, _ds, _sep), exp_form(_dh, _ds, _sep))
    return proof


@check(
    "F6-lhs305-exponential-form",
    "symbolic (general n)",
    "LHS_305 < 1 <=> e^{delta_h}[delta_s(1+bbar)(1+1/Delta)+bbar] < e^{delta_s}(1+delta_s)",
)
def lhs305_equivalence(exp_form=exp_form_305, lhs=lhs_305) -> Proof:
    proof = Proof()
    _equivalence(proof, lhs(_dh, _ds, _sep, _bb), exp_form(_dh, _ds, _sep, _bb))
    return proof


def _c2min(proof, lhs_c, formula):
    """Solve lhs_c(c2) = 1 for c2, compare with ``formula``, check monotonicity and positivity."""
    sols = sp.solve(sp.Eq(lhs_c, 1), _c2)
    if len(sols) != 1:
        proof.require(False, f"sympy.solve(LHS = 1, c2) returned {len(sols)} solutions: {sols}")
        return None
    sol = sols[0]
    res = exp_residual(sol - sp.sympify(formula))
    proof.require(res == 0, f"sympy.solve(LHS = 1, c2) = {short(sol, 120)}; minus formula = {short(res)}")
    slope = sp.simplify(sp.diff(lhs_c, _c2))
    proof.require(slope.is_negative, f"dLHS/dc2 = {slope} < 0, so the condition holds iff c2 > c2min(c1)")
    return sol


@check(
    "F7-c2min-w-closed-form",
    "symbolic (general n)",
    "LHS_304 = 1 <=> c2 = 1/(delta_s(e^{delta_s(1-c1)}/2 - 1)); feasible iff c1 < 1 - ln2/delta_s",
)
def c2min_w(c2min=c2min_w_closed_form, lhs=lhs_304) -> Proof:
    proof = Proof()
    lhs_c = lhs(_c1 * _ds, _ds, _c2 * _ds)
    sol = _c2min(proof, lhs_c, c2min(_c1, _ds))
    if sol is None:
        return proof
    inner = sp.exp(_ds * (1 - _c1)) / 2 - 1  # 1/(c2 delta_s) = inner from the derivation
    check_inner = exp_residual(1 / (_ds * sol) - inner)
    boundary = sp.solve(sp.Eq(inner, 0), _c1)
    proof.require(
        check_inner == 0
        and len(boundary) == 1
        and exp_residual(boundary[0] - (1 - sp.log(2) / _ds)) == 0
        and sp.diff(inner, _c1).is_negative,
        f"1/(c2min delta_s) = e^(delta_s(1-c1))/2 - 1, decreasing in c1 and zero at c1 = {boundary}: "
        "c2min > 0 (feasible) iff c1 < 1 - ln 2/delta_s",
    )
    return proof


@check(
    "F8-c2min-x-closed-form",
    "symbolic (general n)",
    "LHS_305 = 1 <=> c2 = 1/(delta_s(((1+delta_s)e^{delta_s(1-c1)} - beta)/(delta_s(1+beta)) - 1))",
)
def c2min_x(c2min=c2min_x_closed_form, lhs=lhs_305) -> Proof:
    proof = Proof()
    lhs_c = lhs(_c1 * _ds, _ds, _c2 * _ds, _beta)
    sol = _c2min(proof, lhs_c, c2min(_c1, _ds, _beta))
    if sol is None:
        return proof
    inner = ((1 + _ds) * sp.exp(_ds * (1 - _c1)) - _beta) / (_ds * (1 + _beta)) - 1
    check_inner = exp_residual(1 / (_ds * sol) - inner)
    boundary = sp.solve(sp.Eq(inner, 0), _c1)
    expected = 1 - sp.log((_ds * (1 + _beta) + _beta) / (1 + _ds)) / _ds
    proof.require(
        check_inner == 0
        and len(boundary) == 1
        and exp_residual(sp.expand_log(boundary[0] - expected, force=True)) == 0
        and sp.diff(inner, _c1).is_negative,
        f"1/(c2min delta_s) decreasing in c1, zero at c1 = {short(boundary, 120)}: "
        "feasible iff c1 < 1 - ln((delta_s(1+beta)+beta)/(1+delta_s))/delta_s",
    )
    return proof


@check(
    "F9-lhs304-infeasible-ln2",
    "symbolic limit",
    "(304) is infeasible for every c1 >= 0, Delta > 0 iff delta_s <= ln 2",
)
def lhs304_infeasible_small_dispersion(threshold=infeasible_threshold_closed_form, lhs=lhs_304) -> Proof:
    proof = Proof()
    c1 = sp.Symbol("c1", nonnegative=True)
    value = lhs(c1 * _ds, _ds, _sep)
    gap = sp.simplify(sp.expand_log(value - sp.log(2) / _ds, force=True))
    proof.require(gap.is_positive, f"LHS_304 - ln2/delta_s = {gap} > 0 for all c1 >= 0, Delta > 0 (not attained)")
    inf = sp.limit(value.subs(c1, 0), _sep, sp.oo)
    proof.require(
        exp_residual(inf - sp.log(2) / _ds) == 0,
        f"lim_(Delta -> oo) LHS_304(c1 = 0) = {inf}: infimum ln2/delta_s, so feasible iff ln2/delta_s < 1",
    )
    crit = sp.solve(sp.Eq(inf, 1), _ds)
    claimed = sp.sympify(threshold())
    proof.require(
        len(crit) == 1 and exp_residual(crit[0] - claimed) == 0,
        f"infimum = 1 at delta_s = {crit}; claimed threshold {claimed}: infeasible iff delta_s <= threshold",
    )
    return proof
