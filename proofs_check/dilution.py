r"""Symbolic checks of the dilution facts (claims ``DL1``, ``DL1b``, ``DL3``).

Needle model: one key with logit gap :math:`\Delta` (``gap``) over :math:`n-1` equal keys, inverse
temperature :math:`\tau_n = a + c\ln n`:

.. math:: p_n = \frac{1}{1 + (n-1)e^{-\tau_n\Delta}} = \frac{1}{1 + T_n},\qquad
          T_n = (n-1)\,e^{-a\Delta}\,n^{-c\Delta}.

* ``needle_limits`` [DL1] (:math:`a = 1`, the log-n / SSA "linear" schedule) and
  ``ssmax_needle_limits`` [DL1b] (:math:`a = 0`, SSMax :math:`s\ln n`, docs/notes/field.md §4.4) --
  :math:`\lim p_n = 0,\ 1/(1+e^{-a\Delta}),\ 1` as :math:`c\Delta <, =, > 1`. Two ways:
  (i) ``sympy.limit`` of :math:`p_n` itself at representative exact values of :math:`(c, \Delta)` in
  each regime; (ii) general argument with symbolic :math:`\Delta > 0`: :math:`c\Delta = 1 + \varepsilon`
  (:math:`\varepsilon > 0`), :math:`c\Delta = k/(1+k)` (:math:`k > 0`, i.e. every value in (0, 1)) and
  :math:`c\Delta = 1`, where SymPy takes the limit of the competitor mass :math:`T_n` (derived as
  :math:`1/p_n - 1`) and :math:`p = 1/(1 + T)` is continuous in :math:`T \in [0, \infty]`.
  Limitation found while writing this: in SymPy 1.14, ``limit(p_n, n, oo)`` with symbolic
  :math:`\Delta` and :math:`c\Delta = 1+\varepsilon` returns 0 (wrong; the limit is 1), which is why
  the general argument goes through :math:`T_n`, whose limits SymPy gets right (0, oo,
  :math:`e^{-a\Delta}`); the representative-value limits of :math:`p_n` agree.
* ``bounded_logits`` [DL3] -- logits in :math:`[-R, R]` have spread :math:`\delta \le 2R`, so the
  exact extremes of a weight are :math:`1/(1 + (n-1)e^{\pm 2R})` (monotonicity as in
  ``focus_conditions.dispersion_bounds``); the bounds under test are certified to contain them
  for all integers :math:`n \ge 1` and :math:`R \ge 0` (nonnegative-coefficient certificate in
  :math:`e^{2R} = 1 + t`, :math:`n = 1 + m`), and cross-checked by rigorous interval arithmetic
  (``mpmath.iv``) for a few :math:`(n, R)`.

Sources: docs/notes/field.md §4.1 (dilution lemma, [D]) and §4.4 (SSMax threshold, [D][N]); these are
surrogates derived here for SSA's dilution statement, whose exact form was not recovered
(docs/notes/selective_attention.md §2.2).
"""

from __future__ import annotations

import sympy as sp
from mpmath import iv

from ._core import Proof, check
from ._sym import exp_residual, short
from .focus_conditions import _monotone_step, certify_nonneg_n_delta

__all__ = [
    "needle_weight",
    "needle_limit_closed_form",
    "ssmax_limit_closed_form",
    "bounded_logit_bounds_closed_form",
    "needle_limits",
    "ssmax_needle_limits",
    "bounded_logits",
]


def needle_weight(n, gap, c, offset):
    r"""The needle weight :math:`1/(1 + (n-1)e^{-(a + c\ln n)\Delta})` (the model, not under test)."""
    return 1 / (1 + (n - 1) * sp.exp(-(offset + c * sp.log(n)) * gap))


def needle_limit_closed_form(c, gap, offset=1):
    r""":math:`\lim_n p_n`: 0, :math:`1/(1+e^{-a\Delta})`, 1 as :math:`c\Delta <, =, > 1`."""
    cg = c * gap
    return sp.Piecewise(
        (0, cg < 1),
        (1 / (1 + sp.exp(-offset * gap)), sp.Eq(cg, 1)),
        (1, True),
    )


def ssmax_limit_closed_form(s, gap):
    r"""SSMax (:math:`\tau = s\ln n`): 0, 1/2, 1 as :math:`s\Delta <, =, > 1`."""
    return needle_limit_closed_form(s, gap, offset=0)


def bounded_logit_bounds_closed_form(n, R):
    r"""``(lower, upper)`` = :math:`(e^{-2R}/n,\ e^{2R}/n)`."""
    return sp.exp(-2 * R) / n, sp.exp(2 * R) / n


_n = sp.Symbol("n", positive=True)

_IV_FUNCS = {"exp": iv.exp, "log": iv.log, "sqrt": iv.sqrt, "pi": iv.pi, "E": iv.e}


def _iv_eval(expr, symbols, values):
    """Evaluate a SymPy expression in mpmath interval arithmetic (outward rounding)."""
    expr = sp.sympify(expr)
    # exact rationals become interval quotients instead of rounded floats
    expr = expr.replace(lambda e: e.is_Rational and not e.is_Integer, lambda e: sp.Mul(e.p, sp.Pow(e.q, -1, evaluate=False), evaluate=False))
    fn = sp.lambdify(symbols, expr, modules=[_IV_FUNCS, "mpmath"])
    return iv.mpf(fn(*values))


def _limits(proof, limit, offset, representatives):
    """Shared body of the two needle checks; ``limit(c, gap)`` is the formula under test."""
    bad = []
    for c, gap in representatives:
        direct = sp.limit(needle_weight(_n, gap, c, offset), _n, sp.oo)
        want = sp.sympify(limit(c, gap))
        if exp_residual(direct - want) != 0:
            bad.append(f"(c, gap) = ({c}, {gap}): sympy.limit = {direct}, formula = {want}")
    proof.require(
        not bad,
        f"sympy.limit(p_n, n -> oo) equals the formula at {len(representatives)} exact (c, gap) "
        "covering c gap <, =, > 1" + (": " + "; ".join(bad) if bad else ""),
    )

    gap = sp.Symbol("gap", positive=True)
    eps = sp.Symbol("epsilon", positive=True)
    k = sp.Symbol("k", positive=True)
    regimes = [("c gap = k/(1+k) < 1", k / (1 + k)), ("c gap = 1", sp.Integer(1)), ("c gap = 1 + eps > 1", 1 + eps)]
    texts, bad = [], []
    for name, cg in regimes:
        c = cg / gap
        p = needle_weight(_n, gap, c, offset)
        mass = sp.powsimp(sp.expand(sp.together(1 / p - 1)), force=True)  # T_n = 1/p_n - 1
        mass = mass.replace(lambda e: isinstance(e, sp.exp), lambda e: sp.exp(sp.expand(e.args[0])))
        t_lim = sp.limit(mass, _n, sp.oo)
        p_lim = sp.Integer(0) if t_lim == sp.oo else 1 / (1 + t_lim)
        want = sp.sympify(limit(c, gap))
        ok = not (t_lim.has(sp.Limit) or t_lim.has(sp.nan)) and exp_residual(p_lim - want) == 0
        texts.append(f"{name}: lim T_n = {t_lim}, lim p = {p_lim}")
        if not ok:
            bad.append(f"{name}: formula gives {short(want)}")
    proof.require(
        not bad,
        "general (symbolic gap > 0), via T_n = 1/p_n - 1: " + "; ".join(texts) + ("; " + "; ".join(bad) if bad else ""),
    )


@check(
    "DL1-needle-limit",
    "symbolic limit",
    "needle weight under tau = 1 + c ln n tends to 0, 1/(1+e^{-gap}), 1 as c gap <, =, > 1",
)
def needle_limits(limit=needle_limit_closed_form) -> Proof:
    proof = Proof()
    reps = [
        (sp.Rational(1, 2), 1), (sp.Rational(1, 4), 2), (1, sp.Rational(1, 2)),  # c gap < 1
        (1, 1), (sp.Rational(1, 3), 3), (2, sp.Rational(1, 2)),                  # c gap = 1
        (2, 1), (sp.Rational(3, 4), 2),                                          # c gap > 1
    ]
    _limits(proof, lambda c, g: limit(c, g), 1, reps)
    return proof


@check(
    "DL1b-ssmax-needle-limit",
    "symbolic limit",
    "needle weight under SSMax tau = s ln n tends to 0, 1/2, 1 as s gap <, =, > 1",
)
def ssmax_needle_limits(limit=ssmax_limit_closed_form) -> Proof:
    proof = Proof()
    reps = [
        (sp.Rational(1, 2), 1), (sp.Rational(4, 5), 1),      # s gap < 1
        (1, 1), (sp.Rational(1, 5), 5),                      # s gap = 1
        (sp.Rational(6, 5), 1), (sp.Rational(43, 100), 5),   # s gap > 1 (SSMax Fig. 1: s gap = 2.15)
    ]
    _limits(proof, lambda c, g: limit(c, g), 0, reps)
    return proof


@check(
    "DL3-bounded-logits",
    "symbolic (general n)",
    "logits in [-R, R] give every weight in [e^{-2R}/n, e^{2R}/n]",
)
def bounded_logits(bounds=bounded_logit_bounds_closed_form) -> Proof:
    proof = Proof()
    R = sp.Symbol("R", nonnegative=True)
    a_k, a_j = sp.symbols("a_k a_j", nonnegative=True)  # z = -R + 2 R a, a in [0, 1]
    spread = sp.expand((-R + 2 * R * a_k) - (-R + 2 * R * a_j))
    proof.require(
        sp.expand(spread - 2 * R * (a_k - a_j)) == 0 and spread.subs({a_k: 1, a_j: 0}) == 2 * R,
        f"z_k - z_j = {spread} with a in [0,1], so delta = max z - min z <= 2R (equality at z = (R, -R, ...))",
    )
    _monotone_step(proof)
    n = sp.Symbol("n", positive=True, integer=True)
    lower, upper = (sp.sympify(b) for b in bounds(n, R))
    lo_ext = 1 / (1 + (n - 1) * sp.exp(2 * R))  # the extremes at delta = 2R
    hi_ext = 1 / (1 + (n - 1) * sp.exp(-2 * R))
    # certify_nonneg_n_delta writes e^R = 1 + t here (R plays the role of delta), so e^(2R) = (1+t)^2
    ok, text = certify_nonneg_n_delta(upper - hi_ext, n=n, delta=R)
    proof.require(ok, f"upper - 1/(1+(n-1)e^(-2R)) {text.replace('e^delta', 'e^R')}")
    ok, text = certify_nonneg_n_delta(lo_ext - lower, n=n, delta=R)
    proof.require(ok, f"1/(1+(n-1)e^(2R)) - lower {text.replace('e^delta', 'e^R')}")

    # Rigorous interval enclosure of p_j over the box [-R, R]^n for a few (n, R).
    bad, cases = [], [(2, "0.5"), (3, "1"), (16, "2"), (1000, "3")]
    for nv, rv in cases:
        box = iv.mpf([f"-{rv}", rv])
        enclosure = 1 / (1 + (nv - 1) * iv.exp(box - box))  # z_k - z_j ranges over [-2R, 2R]
        lo_iv, hi_iv = (_iv_eval(b, (n, R), (iv.mpf(nv), iv.mpf(rv))) for b in bounds(n, R))
        if not (enclosure.a >= lo_iv.b and enclosure.b <= hi_iv.a):
            bad.append(f"(n, R) = ({nv}, {rv}): enclosure {enclosure} vs [{lo_iv}, {hi_iv}]")
    proof.require(
        not bad,
        f"interval arithmetic (mpmath.iv): enclosure of p_j over [-R,R]^n lies inside the bounds for (n, R) in {cases}"
        + (": " + "; ".join(bad) if bad else ""),
    )
    return proof
