r"""Symbolic checks of three recent statements (claims ``LP1``, ``TK1``-``TK4``, ``CS1``).

Notation as in :mod:`proofs_check.softmax_jacobian`: :math:`J_0 = \mathrm{diag}(p) - pp^\top`, points of
the open simplex in homogeneous coordinates :math:`p_i = q_i/\sum_k q_k` with positive symbols.

* ``lp_half`` [LP1] -- :math:`\|J\|_{q\to q} \le \beta/2` for every :math:`q \in [1, \infty]`, attained.
  (a) the endpoints: :math:`\|J_0\|_{1\to1} = \|J_0\|_{\infty\to\infty} = \max_j 2p_j(1-p_j)` (the check
  ``softmax_jacobian.one_norm``, every :math:`n \le 6`, is run and must pass); (b) the cited step, the
  Schur test (for any matrix, :math:`\|A\|_{q\to q} \le C^{1/q}R^{1-1/q}` with :math:`C, R` the largest
  absolute column and row sums, by Hoelder's inequality row by row; Riesz-Thorin gives the same), not
  derived here: with :math:`C = R = m` SymPy verifies :math:`m^{1/q}m^{1-1/q} = m` for symbolic
  :math:`q`; (c) :math:`1/2 - 2x(1-x) = 2(x - 1/2)^2 \ge 0`; (d) attainment for symbolic :math:`q`:
  at :math:`n = 2`, :math:`p = (x, 1-x)` and :math:`v = (1, -1)`, :math:`\|J_0 v\|_q/\|v\|_q = 2x(1-x)`,
  which is :math:`1/2` at :math:`x = 1/2`. The formula under test must equal the proven and attained
  :math:`\beta/2` for symbolic :math:`\beta` and :math:`q`.
* ``topk_tv_identity`` [TK1] -- for every :math:`n \le 6`, every :math:`1 \le k < n` and the kept set
  :math:`S = \{1..k\}` (any :math:`k`-set, by relabelling: the argument never uses that :math:`S` holds
  the largest entries), with signs decided by SymPy on the open simplex:
  :math:`\tfrac12\sum_i|p_i - \hat p_i| = \sum_{i\notin S}p_i`.
* ``topk_output_identity`` [TK2] -- with symbolic values :math:`v_i \in \mathbb R^2`, every
  :math:`n \le 5` and :math:`k < n`: :math:`o - \hat o - t(\mu_{\mathrm{tail}} - \mu_{\mathrm{head}})` is
  identically zero (rational identity), and the library's evaluation order
  :math:`\sum_{i\notin S}p_iv_i - (t/p(S))\sum_{i\in S}p_iv_i` is that closed form.
* ``topk_output_bounds`` [TK3, TK4] -- (a) for weights :math:`a` (tail) and :math:`b` (head) summing to
  1, :math:`\sum_i a_iv_i - \sum_j b_jv_j = \sum_{i,j}a_ib_j(v_i - v_j)` (symbolic, every tail/head size
  :math:`\le 3`), so by the triangle inequality (stated) :math:`\|\mu_{\mathrm{tail}} - \mu_{\mathrm{head}}\|
  \le \max_{i\notin S, j\in S}\|v_i - v_j\| \le 2\max_j\|v_j\|`; (b) attainment: values :math:`w` on
  :math:`S` and :math:`u` off it give :math:`o - \hat o = t(u - w)` (every :math:`n \le 5`), so both bounds
  are attained (:math:`u = -w` for the second); the formulas under test, as functions of
  :math:`(t, D)` and :math:`(t, M)`, must be at least the proven bound and equal the attained value.
* ``equiangular_contraction`` [CS1] -- Gram matrix :math:`G = (1-\rho)I + \rho\mathbf 1\mathbf 1^\top`,
  :math:`A = \mathrm{softmax}_{\text{rows}}(\beta G)` from the definition, symbolic :math:`\beta, \rho` and
  symbolic token vectors in :math:`\mathbb R^2`, every :math:`n \le 5`: :math:`A_{ii}` is the needle weight
  with gap :math:`1-\rho`, and :math:`y_i - y_j = s(x_i - x_j)` with :math:`s` the formula under test.
* ``critical_scaling_limits`` [CS1] -- with :math:`\beta = \gamma\ln n` and :math:`\Delta = 1 - \rho > 0`:
  :math:`s_n \to 0, 1/2, 1` as :math:`\gamma\Delta <, =, > 1`, via the competitor mass
  :math:`T_n = 1/p_n - 1` (as in ``dilution.ssmax_needle_limits``) and :math:`e^{-\beta\Delta} =
  n^{-\gamma\Delta} \to 0`; ``sympy.limit`` of :math:`s_n` at representative exact values agrees.

Sources: the team's notes (docs/notes/field.md, "recent papers": Nair 2025, arXiv:2510.23012; Tzachristas et
al. 2025, arXiv:2512.07647; Chen, Lin, Polyanskiy, Rigollet 2025, arXiv:2510.05554), abstract level,
unconfirmed; derivations in docs/derivations/recent_theory.md.
"""

from __future__ import annotations

import itertools

import sympy as sp

from ._core import Proof, check, symbolic_upto
from ._sym import exp_residual, mat_rat_residual, nonneg_certificate, rat_residual, short, simplex

__all__ = [
    "lp_bound_closed_form",
    "topk_tail_closed_form",
    "topk_output_error_closed_form",
    "cross_bound_closed_form",
    "norm_bound_closed_form",
    "equiangular_contraction_closed_form",
    "contraction_limit_closed_form",
    "lp_half",
    "topk_tv_identity",
    "topk_output_identity",
    "topk_output_bounds",
    "equiangular_contraction",
    "critical_scaling_limits",
]


# ---------------------------------------------------------------------------------------------
# The library's closed forms, as SymPy builders (the defaults of the checks).
# ---------------------------------------------------------------------------------------------


def lp_bound_closed_form(beta, q):
    r""":math:`\|J\|_{q\to q} \le \beta/2` (the same for every :math:`q`)."""
    return beta / 2


def topk_tail_closed_form(p, k):
    r"""Tail mass :math:`\sum_{i > k} p_i` for ``p`` listed with the kept set first
    (``dilution.topk_tail_mass``)."""
    return sp.Add(*p[k:])


def topk_output_error_closed_form(p, v, k):
    r""":math:`\sum_{i\notin S}p_iv_i - (t/p(S))\sum_{i\in S}p_iv_i` with :math:`S` the first ``k``
    entries, ``v`` a list of vectors (``dilution.topk_truncation_error``)."""
    t = sp.Add(*p[k:])
    m = sp.Add(*p[:k])
    head = sum((pi * vi for pi, vi in zip(p[:k], v[:k])), sp.zeros(*v[0].shape))
    tail = sum((pi * vi for pi, vi in zip(p[k:], v[k:])), sp.zeros(*v[0].shape))
    return tail - (t / m) * head


def cross_bound_closed_form(t, dist):
    r""":math:`t\max_{i\notin S, j\in S}\|v_i - v_j\|` as a function of :math:`t` and that maximum."""
    return t * dist


def norm_bound_closed_form(t, vmax):
    r""":math:`2t\max_j\|v_j\|` as a function of :math:`t` and that maximum."""
    return 2 * t * vmax


def equiangular_contraction_closed_form(n, rho, beta):
    r""":math:`s = (1 - e^{-\beta(1-\rho)})/(1 + (n-1)e^{-\beta(1-\rho)})` (``dilution.equiangular_contraction``)."""
    e = sp.exp(-beta * (1 - rho))
    return (1 - e) / (1 + (n - 1) * e)


def contraction_limit_closed_form(gamma, gap):
    r""":math:`\lim_n s_n` under :math:`\beta = \gamma\ln n`: 0, 1/2, 1 as :math:`\gamma\Delta <, =, > 1`."""
    cg = gamma * gap
    return sp.Piecewise((0, cg < 1), (sp.Rational(1, 2), sp.Eq(cg, 1)), (1, True))


def _all_n(proof, ns, per_n, what):
    bad = []
    for n in ns:
        ok, res = per_n(n)
        if not ok:
            bad.append(f"n={n}: {short(res)}")
    proof.require(not bad, f"{what}: " + ("; ".join(bad) if bad else f"residual 0 for every n in {ns[0]}..{ns[-1]}"))


# ---------------------------------------------------------------------------------------------
# LP1
# ---------------------------------------------------------------------------------------------


@check(
    "LP1-softmax-lp-half",
    symbolic_upto(6),
    "||J||_{q->q} <= beta/2 for every q in [1, inf] (Schur test between the exact endpoints), attained at n = 2",
)
def lp_half(bound=lp_bound_closed_form, n_max: int = 6) -> Proof:
    """``bound(beta, q)`` must be the proven upper bound and the attained supremum, for all q >= 1."""
    from .softmax_jacobian import one_norm

    proof = Proof(symbolic_upto(n_max))
    ends = one_norm(n_max=n_max)
    proof.require(ends.passed, f"endpoints (softmax_jacobian.one_norm, n <= {n_max}): "
                               f"||J0||_(1->1) = ||J0||_(inf->inf) = max_j 2 p_j (1 - p_j): {ends.status}")
    q = sp.Symbol("q", positive=True)
    m = sp.Symbol("m", positive=True)
    interp = sp.simplify(sp.powsimp(m ** (1 / q) * m ** (1 - 1 / q), force=True) - m)
    proof.require(interp == 0, f"Schur test (cited): ||J0||_(q->q) <= C^(1/q) R^(1-1/q); with C = R = m "
                               f"(J0 symmetric): m^(1/q) m^(1-1/q) - m = {interp}")
    x = sp.Symbol("x", real=True)
    gap_half = sp.expand(sp.Rational(1, 2) - 2 * x * (1 - x) - 2 * (x - sp.Rational(1, 2)) ** 2)
    proof.require(gap_half == 0, "1/2 - 2x(1-x) = 2(x - 1/2)^2 >= 0, so max_j 2p_j(1-p_j) <= 1/2 "
                                 f"(residual {gap_half}): ||J0||_(q->q) <= 1/2 for every q")
    # attainment at n = 2 for symbolic q: J0 (1, -1) = 2x(1-x) (1, -1)
    xp = sp.Symbol("x", positive=True)
    J0 = sp.Matrix([[xp * (1 - xp), -xp * (1 - xp)], [-xp * (1 - xp), xp * (1 - xp)]])
    img = J0 * sp.Matrix([1, -1])
    w = sp.Symbol("w", positive=True)  # w = 2x(1-x) > 0 on (0, 1)
    ok_img = all(sp.expand(e - s * 2 * xp * (1 - xp)) == 0 for e, s in zip(img, (1, -1)))
    ratio = sp.simplify(sp.powsimp((2 * w**q) ** (1 / q) / 2 ** (1 / q), force=True))
    attained = sp.Rational(1, 2) if ok_img and sp.simplify(ratio - w) == 0 else None
    proof.require(attained is not None,
                  f"n = 2, p = (x, 1-x), v = (1, -1): J0 v = 2x(1-x)(1, -1) [{ok_img}], "
                  f"||J0 v||_q / ||v||_q = {ratio} with w = 2x(1-x), = 1/2 at x = 1/2 for every q")
    beta = sp.Symbol("beta", positive=True)
    claimed = sp.sympify(bound(beta, q))
    diff = sp.simplify(claimed - beta / 2)
    proof.require(diff == 0, f"formula under test - beta/2 = {short(diff)} (must be 0: the proven bound "
                             "beta/2 is attained for every q, so no other constant is both true and sharp)")
    return proof


# ---------------------------------------------------------------------------------------------
# TK1 - TK4
# ---------------------------------------------------------------------------------------------


def _truncation(n, k):
    """Open-simplex p (homogeneous), the kept set S = first k, p_hat = p_S / p(S)."""
    _, p = simplex(n)
    m = sp.Add(*p[:k])
    phat = [pi / m for pi in p[:k]] + [sp.Integer(0)] * (n - k)
    return p, phat


@check(
    "TK1-topk-tv-tail-mass",
    symbolic_upto(6),
    "TV(p, p_hat) = 1 - p(S) for the renormalisation p_hat of p on any kept set S",
)
def topk_tv_identity(tail=topk_tail_closed_form, n_max: int = 6) -> Proof:
    proof = Proof(symbolic_upto(n_max))

    def per_n(n):
        for k in range(1, n):
            p, phat = _truncation(n, k)
            terms = [sp.Abs(sp.factor(a - b)) for a, b in zip(p, phat)]
            if any(t.has(sp.Abs) for t in terms):
                return False, f"k={k}: undecided sign"
            res = rat_residual(sp.Add(*terms) / 2 - tail(p, k))
            if res != 0:
                return False, f"k={k}: (1/2)||p - p_hat||_1 - formula = {res}"
        return True, 0

    _all_n(proof, list(range(2, n_max + 1)), per_n,
           "(1/2) sum_i |p_i - p_hat_i| - formula, every k < n (signs decided on the open simplex)")
    proof.note("S = {1..k} is any k-set up to relabelling; the identity does not use that S holds the top k")
    return proof


def _values(n, d=2):
    return [sp.Matrix(sp.symbols(f"v{i}_1:{d + 1}", real=True)) for i in range(1, n + 1)]


@check(
    "TK2-topk-output-error-identity",
    symbolic_upto(5),
    "o - o_hat = t (mu_tail - mu_head) for the top-k renormalised output",
)
def topk_output_identity(error=topk_output_error_closed_form, n_max: int = 5) -> Proof:
    proof = Proof(symbolic_upto(n_max))

    def per_n(n):
        v = _values(n)
        for k in range(1, n):
            p, phat = _truncation(n, k)
            o = sum((pi * vi for pi, vi in zip(p, v)), sp.zeros(2, 1))
            ohat = sum((pi * vi for pi, vi in zip(phat, v)), sp.zeros(2, 1))
            t, m = sp.Add(*p[k:]), sp.Add(*p[:k])
            mu_tail = sum((pi * vi for pi, vi in zip(p[k:], v[k:])), sp.zeros(2, 1)) / t
            mu_head = sum((pi * vi for pi, vi in zip(p[:k], v[:k])), sp.zeros(2, 1)) / m
            ok, res = mat_rat_residual(o - ohat - t * (mu_tail - mu_head))
            if not ok:
                return False, f"k={k}: o - o_hat - t(mu_tail - mu_head) = {res}"
            ok, res = mat_rat_residual(o - ohat - sp.Matrix(error(p, v, k)))
            if not ok:
                return False, f"k={k}: o - o_hat - formula = {res}"
        return True, 0

    _all_n(proof, list(range(2, n_max + 1)), per_n,
           "o - o_hat against t(mu_tail - mu_head) and the formula, symbolic v_i in R^2, every k < n")
    return proof


@check(
    "TK3-topk-output-error-cross",
    symbolic_upto(5),
    "||o - o_hat|| <= t max_{i not in S, j in S} ||v_i - v_j|| <= 2 t max ||v_j||, both attained",
)
def topk_output_bounds(cross=cross_bound_closed_form, norm=norm_bound_closed_form, n_max: int = 5) -> Proof:
    proof = Proof(symbolic_upto(n_max))
    # (a) the difference of two convex combinations is a convex combination of pairwise differences
    bad = []
    for na, nb in itertools.product(range(1, 4), repeat=2):
        a = sp.symbols(f"a1:{na + 1}", nonnegative=True)
        b = sp.symbols(f"b1:{nb + 1}", nonnegative=True)
        u = _values(na)
        w = [sp.Matrix(sp.symbols(f"w{j}_1:3", real=True)) for j in range(1, nb + 1)]
        zero = sp.zeros(2, 1)
        lhs = sum((ai * ui for ai, ui in zip(a, u)), zero) - sum((bj * wj for bj, wj in zip(b, w)), zero)
        rhs = sum((ai * bj * (ui - wj) for (ai, ui), (bj, wj) in itertools.product(zip(a, u), zip(b, w))), zero)
        # with sum a = sum b = 1: substitute the last weight of each
        sub = {a[-1]: 1 - sp.Add(*a[:-1]), b[-1]: 1 - sp.Add(*b[:-1])}
        ok, res = mat_rat_residual((lhs - rhs).subs(sub))
        if not ok:
            bad.append(f"({na}, {nb}): {res}")
    proof.require(not bad, "sum_i a_i u_i - sum_j b_j w_j = sum_ij a_i b_j (u_i - w_j) when sum a = sum b = 1 "
                           "(tail/head sizes <= 3)" + (": " + "; ".join(bad) if bad else ""))
    proof.note("so ||mu_tail - mu_head|| <= sum_ij a_i b_j ||u_i - w_j|| <= max ||u_i - w_j|| "
               "<= 2 max_j ||v_j|| (triangle inequality, stated)")

    # (b) attainment: values w on S, u off S give o - o_hat = t (u - w)
    w_vec = sp.Matrix(sp.symbols("w1:3", real=True))
    u_vec = sp.Matrix(sp.symbols("u1:3", real=True))

    def per_n(n):
        for k in range(1, n):
            p, phat = _truncation(n, k)
            v = [w_vec] * k + [u_vec] * (n - k)
            o = sum((pi * vi for pi, vi in zip(p, v)), sp.zeros(2, 1))
            ohat = sum((pi * vi for pi, vi in zip(phat, v)), sp.zeros(2, 1))
            ok, res = mat_rat_residual(o - ohat - sp.Add(*p[k:]) * (u_vec - w_vec))
            if not ok:
                return False, f"k={k}: {res}"
        return True, 0

    _all_n(proof, list(range(2, n_max + 1)), per_n, "two-valued values: o - o_hat - t(u - w)")
    t, D, M = sp.symbols("t D M", positive=True)
    for name, formula, proven, attained in (
            ("cross", cross, t * D, t * D),        # all cross distances equal ||u - w|| = D
            ("norm", norm, 2 * t * M, 2 * t * M)):  # u = -w, ||w|| = M: ||t(u - w)|| = 2tM
        claimed = sp.sympify(formula(t, D if name == "cross" else M))
        ok_up, _, _ = nonneg_certificate(claimed - proven, [t, D if name == "cross" else M])
        proof.require(ok_up and sp.simplify(claimed - attained) == 0,
                      f"{name} form: formula - proven bound = {short(sp.simplify(claimed - proven))} >= 0 "
                      f"and formula - attained value = {short(sp.simplify(claimed - attained))} (must be 0)")
    return proof


# ---------------------------------------------------------------------------------------------
# CS1
# ---------------------------------------------------------------------------------------------


@check(
    "CS1-equiangular-contraction",
    symbolic_upto(5),
    "equiangular tokens: softmax(beta G) is the needle model with gap 1 - rho and y_i - y_j = s (x_i - x_j)",
)
def equiangular_contraction(contraction=equiangular_contraction_closed_form, n_max: int = 5) -> Proof:
    proof = Proof(symbolic_upto(n_max))
    beta = sp.Symbol("beta", positive=True)
    rho = sp.Symbol("rho", real=True)

    def per_n(n):
        G = (1 - rho) * sp.eye(n) + rho * sp.ones(n, n)
        E = G.applyfunc(lambda g: sp.exp(beta * g))
        A = sp.Matrix(n, n, lambda i, j: E[i, j] / sp.Add(*E.row(i)))
        needle = 1 / (1 + (n - 1) * sp.exp(-beta * (1 - rho)))
        for i in range(n):
            r = exp_residual(A[i, i] - needle)
            if r != 0:
                return False, f"A_{i}{i} - needle weight = {r}"
        x = _values(n)
        y = [sum((A[i, k] * x[k] for k in range(n)), sp.zeros(2, 1)) for i in range(n)]
        s = sp.sympify(contraction(n, rho, beta))
        for i, j in itertools.combinations(range(n), 2):
            for e in (y[i] - y[j] - s * (x[i] - x[j])):
                r = exp_residual(e)
                if r != 0:
                    return False, f"(y_{i} - y_{j}) - s (x_{i} - x_{j}) = {short(r)}"
        return True, 0

    _all_n(proof, list(range(2, n_max + 1)), per_n,
           "A_ii = 1/(1 + (n-1)e^(-beta(1-rho))) and y_i - y_j - s(x_i - x_j), symbolic beta, rho, x in R^2")
    return proof


_n = sp.Symbol("n", positive=True)


@check(
    "CS1-equiangular-contraction",
    "symbolic limit",
    "under beta = gamma ln n the contraction s_n tends to 0, 1/2, 1 as gamma (1 - rho) <, =, > 1",
)
def critical_scaling_limits(limit=contraction_limit_closed_form) -> Proof:
    proof = Proof()
    bad = []
    reps = [(sp.Rational(1, 2), 1), (1, sp.Rational(1, 2)),  # gamma gap < 1
            (1, 1), (2, sp.Rational(1, 2)),                    # = 1
            (3, 1), (sp.Rational(3, 2), 1)]                    # > 1
    for gamma, gap in reps:
        s_n = equiangular_contraction_closed_form(_n, 1 - gap, gamma * sp.log(_n))
        direct = sp.limit(s_n, _n, sp.oo)
        want = sp.sympify(limit(gamma, gap))
        if exp_residual(direct - want) != 0:
            bad.append(f"(gamma, gap) = ({gamma}, {gap}): sympy.limit = {direct}, formula = {want}")
    proof.require(not bad, f"sympy.limit(s_n, n -> oo) equals the formula at {len(reps)} exact (gamma, 1 - rho) "
                           "covering gamma (1 - rho) <, =, > 1" + (": " + "; ".join(bad) if bad else ""))

    gap = sp.Symbol("Delta", positive=True)
    eps, k = sp.symbols("epsilon k", positive=True)
    texts, bad = [], []
    for name, cg in (("gamma Delta = k/(1+k) < 1", k / (1 + k)), ("gamma Delta = 1", sp.Integer(1)),
                     ("gamma Delta = 1 + eps > 1", 1 + eps)):
        # s_n = p_n (1 - n^(-gamma Delta)), p_n = 1/(1 + T_n), T_n = (n - 1) n^(-gamma Delta)
        T = (_n - 1) * _n ** (-cg)
        t_lim = sp.limit(sp.expand(T), _n, sp.oo)
        e_lim = sp.limit(_n ** (-cg), _n, sp.oo)
        p_lim = sp.Integer(0) if t_lim == sp.oo else 1 / (1 + t_lim)
        s_lim = p_lim * (1 - e_lim)
        want = sp.sympify(limit(cg / gap, gap))
        ok = not (t_lim.has(sp.Limit) or e_lim.has(sp.Limit)) and exp_residual(s_lim - want) == 0
        texts.append(f"{name}: lim T_n = {t_lim}, lim n^(-gamma Delta) = {e_lim}, lim s = {s_lim}")
        if not ok:
            bad.append(f"{name}: formula gives {short(want)}")
    proof.require(not bad, "general (symbolic gap > 0), e^(-beta Delta) = n^(-gamma Delta): " + "; ".join(texts)
                  + ("; " + "; ".join(bad) if bad else ""))
    return proof
