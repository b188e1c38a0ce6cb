r"""Symbolic checks of the softmax-Jacobian facts (claims ``J0``-``J6``).

Notation: :math:`p = \mathrm{softmax}(\beta z)`, :math:`J_0 = \mathrm{diag}(p) - pp^\top`,
:math:`J = \beta J_0`. Points of the open simplex are written in homogeneous coordinates
:math:`p_i = q_i/\sum_k q_k` with positive symbols :math:`q`, so that "for all :math:`p` in the open
simplex" is an identity in :math:`q` and SymPy can decide the sign of sums of positive products.

What each check proves, by what method, and its limits:

* ``derivative`` [J0] -- differentiates :math:`\mathrm{softmax}(\beta z)` from its definition
  (quotient of exponentials) and shows :math:`\partial p/\partial z - \beta(\mathrm{diag}\,p - pp^\top)`
  is identically zero, symbolic :math:`\beta`, separately for every :math:`n \le 6`.
* ``symmetric_kernel`` [J1] -- :math:`J = J^\top` and :math:`J\mathbf 1 = 0` on the simplex, every
  :math:`n \le 6`.
* ``variance_form`` [J1b] -- :math:`v^\top J v = \beta\,\mathrm{Var}_p(v)` with
  :math:`\mathrm{Var}_p(v) = \sum_i p_i (v_i - \sum_j p_j v_j)^2`, symbolic :math:`v`, every
  :math:`n \le 6`.
* ``characteristic_polynomial`` [J3] -- :math:`\det(J_0 - \lambda I) = \det(D - \lambda I)
  (1 - \sum_i p_i^2/(p_i - \lambda))` with :math:`D=\mathrm{diag}(p)` as polynomial identities in
  :math:`(p, \lambda)` for every :math:`n \le 6` (this holds for any :math:`p`, it is the matrix
  determinant lemma), and :math:`\lambda = 0` is a root when :math:`\sum p = 1`.
* ``interlacing`` [J3b] -- for **distinct** sorted :math:`p_{(1)} > \dots > p_{(n)} > 0` on the
  simplex (written :math:`p_{(i)} = r_i/t`, :math:`r_i = g_i + \dots + g_n` with positive gaps
  :math:`g`, :math:`t = \sum r` substituted only where :math:`\sum p = 1` is used), every
  :math:`n \le 6`: (a) :math:`\det(J_0 - \lambda I)` equals the secular form under test, and
  that divided by :math:`\prod(p_i - \lambda)` is :math:`f(\lambda) = 1 - \sum_i p_i^2/(p_i-\lambda)`,
  so away from the poles the eigenvalues are the roots of :math:`f`; (b)
  :math:`f'(\lambda) = -\sum_i p_i^2/(p_i-\lambda)^2 < 0`; (c) at each pole
  :math:`\varepsilon f(p_{(i)} \pm \varepsilon) \to \pm p_{(i)}^2` (so :math:`f \to \pm\infty`
  right/left of each pole) and :math:`f \to 1` at :math:`\pm\infty`; (d) each bracket of the
  statement under test is verified: an open bracket :math:`(a, b)` has no pole inside, :math:`f > 0`
  at :math:`a^+` and :math:`f < 0` at :math:`b^-` (signs decided by SymPy), hence exactly one root
  (strictly decreasing, continuous); a point bracket :math:`\{x\}` has :math:`f(x) = 0` exactly
  (:math:`f(0) = 1 - \sum p = 0`). :math:`n` brackets, disjoint and in descending order, give
  :math:`n` distinct roots of the degree-:math:`n` characteristic polynomial, i.e. all eigenvalues:
  :math:`p_{(1)} > \lambda_1 > p_{(2)} > \dots > p_{(n)} > \lambda_n = 0`. Limits: ties
  (:math:`p_{(i)} = p_{(i+1)}`) are **not** derived symbolically; the non-strict statement there
  follows by continuity of the eigenvalues of a symmetric matrix in its entries (distinct points are
  dense in the simplex), which is argued, not computed.
* ``spectral_half`` [J2] -- general :math:`n`: with indexed sums over a symbolic :math:`n`,
  :math:`\mathrm{E}_p(v-c)^2 - \mathrm{Var}_p(v) = (\mathrm{E}_p v - c)^2`; pointwise
  :math:`((b-a)/2)^2 - (v_i - (a+b)/2)^2 = (b - v_i)(v_i - a) \ge 0`; and
  :math:`(b-a)^2 = 2(a^2+b^2) - (a+b)^2 \le 2\|v\|^2`, which give
  :math:`\lambda_{\max}(J_0) = \max_{\|v\|=1}\mathrm{Var}_p(v) \le 1/2` (Popoviciu). Sharpness:
  exact maximisation at :math:`n = 2` (:math:`\lambda_{\max} = 2p_1p_2`, maximum :math:`1/2` at
  :math:`p = (1/2, 1/2)`) and at :math:`n = 3` by critical points: with
  :math:`\lambda^2 - t\lambda + d` the nonzero part of the characteristic polynomial,
  :math:`\lambda_{\max} \le b` iff :math:`b \ge t/2` and :math:`h = b^2 - tb + d \ge 0`; the only
  interior critical point of :math:`h` (for :math:`b = 1/2`) is the barycentre with
  :math:`h = 1/36 > 0`, and on the boundary :math:`h = (p_i - p_j)^2/4` vanishes only at the edge
  midpoints. So for :math:`n = 3` the supremum :math:`1/2` is approached only at
  :math:`(1/2, 1/2, 0)` and never attained with finite logits. The formula under test must equal
  :math:`\beta/2` (proven upper bound and attained supremum).
* ``frobenius`` [J4] -- :math:`\|J_0\|_F^2 = \sum p^2 - 2\sum p^3 + (\sum p^2)^2`, every
  :math:`n \le 6` (the identity does not even need :math:`\sum p = 1`).
* ``one_norm`` [J5] -- the absolute column sums of :math:`J_0`, with signs decided by SymPy on
  the simplex, equal :math:`2p_j(1-p_j)` (every :math:`n \le 6`); :math:`J_0` is symmetric so
  :math:`\|J_0\|_{1\to1} = \|J_0\|_{\infty\to\infty}`; :math:`1/2 - 2x(1-x) = 2(x - 1/2)^2`, so the
  bound :math:`1/2` holds and is attained (when some :math:`p_i = 1/2`).
* ``inf_to_one`` [J6] -- :math:`\|J_0\|_{\infty\to1} = \max_{s \in \{\pm1\}^n} \|J_0 s\|_1`
  (a convex function is maximised over the cube at a vertex); for every sign vector,
  :math:`\|J_0 s\|_1 = 4 p(S)(1 - p(S))` with :math:`S = \{s_i = 1\}`, symbolically for every
  :math:`n \le 4`; cross-checked by exact rational enumeration on the grid
  :math:`p \in \frac16 \mathbb Z_{>0}^n`; and :math:`1 - 4x(1-x) = (2x-1)^2` gives the bound 1,
  attained when some subset has mass 1/2.

Sources: docs/notes/field.md §1.1, §1.3-1.5 (derivations [D], numerically checked [N]); the
:math:`\infty\to1` formula matches Emadi, arXiv:2602.18849 (abstract only, unconfirmed); the
1/2 bound is the headline of Nair, arXiv:2510.23012 (abstract only, unconfirmed).
"""

from __future__ import annotations

import itertools

import sympy as sp

from ._core import Proof, check, symbolic_upto
from ._sym import (
    charpoly,
    det,
    mat_rat_residual,
    nonneg_certificate,
    rat_residual,
    rational_grid_simplex,
    short,
    simplex,
)

__all__ = [
    "jacobian_closed_form",
    "variance_closed_form",
    "secular_closed_form",
    "spectral_bound_closed_form",
    "frobenius_sq_closed_form",
    "one_norm_columns_closed_form",
    "one_norm_bound_closed_form",
    "inf_to_one_subset_closed_form",
    "inf_to_one_bound_closed_form",
    "interlacing_brackets_closed_form",
    "sorted_simplex",
    "variance_half_chain",
    "derivative",
    "symmetric_kernel",
    "variance_form",
    "characteristic_polynomial",
    "interlacing",
    "spectral_half",
    "frobenius",
    "one_norm",
    "inf_to_one",
]


# ---------------------------------------------------------------------------------------------
# The library's closed forms, as SymPy builders (the defaults of the checks).
# ---------------------------------------------------------------------------------------------


def jacobian_closed_form(p, beta=1):
    r""":math:`\beta(\mathrm{diag}(p) - pp^\top)`."""
    col = sp.Matrix(list(p))
    return beta * (sp.diag(*p) - col * col.T)


def variance_closed_form(p, v, beta=1):
    r""":math:`\beta \sum_i p_i (v_i - \sum_j p_j v_j)^2`."""
    mean = sp.Add(*[pi * vi for pi, vi in zip(p, v)])
    return beta * sp.Add(*[pi * (vi - mean) ** 2 for pi, vi in zip(p, v)])


def secular_closed_form(p, lam):
    r""":math:`\det(\mathrm{diag}(p) - \lambda I)\,(1 - \sum_i p_i^2/(p_i - \lambda))`."""
    return sp.Mul(*[pi - lam for pi in p]) * (1 - sp.Add(*[pi**2 / (pi - lam) for pi in p]))


def interlacing_brackets_closed_form(p):
    r"""Where each eigenvalue of :math:`J_0` lies, for ``p`` sorted in descending order.

    ``[(p_(2), p_(1)), (p_(3), p_(2)), ..., (p_(n), p_(n-1)), (0, 0)]``: :math:`\lambda_i` in the open
    interval :math:`(p_{(i+1)}, p_{(i)})` for :math:`i < n`, and :math:`\lambda_n = 0` (a pair
    ``(x, x)`` means "exactly x"); ``-oo``/``oo`` are allowed as endpoints.
    """
    p = list(p)
    return [(p[i + 1], p[i]) for i in range(len(p) - 1)] + [(sp.Integer(0), sp.Integer(0))]


def spectral_bound_closed_form(beta):
    r""":math:`\|J\|_2 \le \beta/2`."""
    return beta / 2


def frobenius_sq_closed_form(p):
    r""":math:`\sum p^2 - 2\sum p^3 + (\sum p^2)^2`."""
    s2 = sp.Add(*[pi**2 for pi in p])
    s3 = sp.Add(*[pi**3 for pi in p])
    return s2 - 2 * s3 + s2**2


def one_norm_columns_closed_form(p):
    r"""Absolute column sums of :math:`J_0`: :math:`[2p_j(1-p_j)]_j`."""
    return [2 * pj * (1 - pj) for pj in p]


def one_norm_bound_closed_form():
    return sp.Rational(1, 2)


def inf_to_one_subset_closed_form(mass):
    r""":math:`\|J_0 s\|_1` for a sign vector whose positive set has mass :math:`p(S)`:
    :math:`4p(S)(1-p(S))`."""
    return 4 * mass * (1 - mass)


def inf_to_one_bound_closed_form():
    return sp.Integer(1)


# ---------------------------------------------------------------------------------------------
# Shared derivation: Var_p(v) <= (max v - min v)^2 / 4 <= ||v||^2 / 2, general n.
# ---------------------------------------------------------------------------------------------

_I = sp.Symbol("i", integer=True)
_N = sp.Symbol("n", integer=True, positive=True)
_P = sp.IndexedBase("p")
_V = sp.IndexedBase("v")


def _expect(f):
    return sp.Sum(_P[_I] * f, (_I, 1, _N))


def _to_moments(expr, m1, m2):
    """Expand a combination of indexed sums over i = 1..n (symbolic n), pull constants out of
    the sums (linearity), and name the moments: sum p_i = 1, sum p_i v_i = m1, sum p_i v_i^2 = m2."""
    e = sp.factor_terms(sp.expand(expr))
    e = e.subs({sp.Sum(_P[_I], (_I, 1, _N)): 1})
    e = e.subs({sp.Sum(_P[_I] * _V[_I] ** 2, (_I, 1, _N)): m2})
    e = e.subs({sp.Sum(_P[_I] * _V[_I], (_I, 1, _N)): m1})
    return sp.expand(e)


def variance_half_chain(proof: Proof):
    r"""Record the general-:math:`n` steps of :math:`\max_{\|v\|_2=1}\mathrm{Var}_w(v) \le 1/2`
    (for any probability vector :math:`w`) in ``proof`` and return the proven constant 1/2."""
    c, a, b, x = sp.symbols("c a b x", real=True)
    m1, m2 = sp.symbols("m1 m2", real=True)
    var = _to_moments(_expect((_V[_I] - _expect(_V[_I])) ** 2), m1, m2)
    shifted = _to_moments(_expect((_V[_I] - c) ** 2), m1, m2)
    ok1 = sp.expand(var - (m2 - m1**2)) == 0 and sp.expand(shifted - var - (m1 - c) ** 2) == 0
    proof.require(
        ok1,
        "indexed sums over symbolic n: Var_p(v) = E v^2 - (E v)^2 and "
        "E_p(v-c)^2 - Var_p(v) = (E_p v - c)^2 >= 0",
    )
    pointwise = ((b - a) / 2) ** 2 - (x - (a + b) / 2) ** 2 - (b - x) * (x - a)
    proof.require(
        sp.expand(pointwise) == 0,
        "((b-a)/2)^2 - (v_i-(a+b)/2)^2 = (b-v_i)(v_i-a) >= 0 for a = min v <= v_i <= b = max v, "
        "so Var_p(v) <= E_p(v-(a+b)/2)^2 <= (b-a)^2/4",
    )
    spread = 2 * (a**2 + b**2) - (b - a) ** 2 - (a + b) ** 2
    proof.require(
        sp.expand(spread) == 0,
        "(b-a)^2 = 2(a^2+b^2) - (a+b)^2 <= 2||v||^2 (a, b distinct coordinates), "
        "hence max_{||v||=1} Var_p(v) <= 1/2 for every n",
    )
    return sp.Rational(1, 2)


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


def _all_n(proof, n_max, per_n, what):
    """Run ``per_n(n) -> (ok, residual)`` for n = 2..n_max and record one summary step."""
    bad = []
    for n in range(2, n_max + 1):
        ok, res = per_n(n)
        if not ok:
            bad.append(f"n={n}: residual {short(res)}")
    if bad:
        proof.require(False, f"{what}: " + "; ".join(bad))
    else:
        proof.require(True, f"{what}: residual simplifies to 0 for every n in 2..{n_max}")


@check(
    "J0-softmax-jacobian-closed-form",
    symbolic_upto(6),
    "d softmax(beta z)/dz = beta (diag p - p p^T)",
)
def derivative(jacobian=jacobian_closed_form, n_max: int = 6) -> Proof:
    """Differentiate softmax(beta z) from its definition and compare with ``jacobian(p, beta)``."""
    proof = Proof(symbolic_upto(n_max))
    beta = sp.Symbol("beta", positive=True)

    def per_n(n):
        z = sp.symbols(f"z1:{n + 1}", real=True)
        e_sym = sp.symbols(f"E1:{n + 1}", positive=True)
        ex = [sp.exp(beta * zi) for zi in z]
        total = sp.Add(*ex)
        dp = sp.Matrix(n, n, lambda i, j: sp.diff(ex[i] / total, z[j]))
        dp = dp.subs(dict(zip(ex, e_sym)))  # E_i = exp(beta z_i), after differentiating
        if dp.free_symbols & set(z):
            return False, "could not eliminate z"
        p = [e / sp.Add(*e_sym) for e in e_sym]
        formula = sp.Matrix(jacobian(p, beta))
        if formula.shape != (n, n):
            return False, f"shape {formula.shape}"
        return mat_rat_residual(dp - formula)

    _all_n(proof, n_max, per_n, "d/dz_j [exp(beta z_i)/sum_k exp(beta z_k)] - formula_ij")
    return proof


@check("J1-softmax-symmetric-null", symbolic_upto(6), "J = J^T and J 1 = 0")
def symmetric_kernel(jacobian=jacobian_closed_form, n_max: int = 6) -> Proof:
    """Symmetry and shift invariance of ``jacobian(p, beta)`` on the open simplex."""
    proof = Proof(symbolic_upto(n_max))
    beta = sp.Symbol("beta", positive=True)

    def sym(n):
        _, p = simplex(n)
        mat = sp.Matrix(jacobian(p, beta))
        return mat_rat_residual(mat - mat.T)

    def null(n):
        _, p = simplex(n)
        mat = sp.Matrix(jacobian(p, beta))
        return mat_rat_residual(mat * sp.ones(n, 1))

    _all_n(proof, n_max, sym, "J - J^T")
    _all_n(proof, n_max, null, "J 1 (with sum p = 1)")
    return proof


@check("J1b-softmax-quadratic-variance", symbolic_upto(6), "v^T J v = beta Var_p(v)")
def variance_form(variance=variance_closed_form, n_max: int = 6) -> Proof:
    """``v^T beta(diag p - pp^T) v - variance(p, v, beta)`` vanishes on the simplex."""
    proof = Proof(symbolic_upto(n_max))
    beta = sp.Symbol("beta", positive=True)

    def per_n(n):
        _, p = simplex(n)
        v = sp.Matrix(sp.symbols(f"v1:{n + 1}", real=True))
        quad = (v.T * jacobian_closed_form(p, beta) * v)[0, 0]
        res = rat_residual(quad - variance(p, list(v), beta))
        return res == 0, res

    _all_n(proof, n_max, per_n, "v^T J v - beta Var_p(v)")
    return proof


@check(
    "J3-softmax-secular-equation",
    symbolic_upto(6),
    "det(J0 - lam I) = det(D - lam I)(1 - sum p_i^2/(p_i - lam)); lam = 0 is a root",
)
def characteristic_polynomial(secular=secular_closed_form, n_max: int = 6) -> Proof:
    """Compare ``det(J0 - lam I)`` with ``secular(p, lam)`` as polynomials."""
    proof = Proof(symbolic_upto(n_max))
    lam = sp.Symbol("lam")

    def identity(n):
        p = sp.symbols(f"p1:{n + 1}", positive=True)
        lhs = det(jacobian_closed_form(p) - lam * sp.eye(n))
        num, den = sp.fraction(sp.together(secular(list(p), lam)))
        gens = (lam, *p)
        res = sp.Poly(sp.expand(num), *gens) - sp.Poly(sp.expand(lhs), *gens) * sp.Poly(
            sp.expand(den), *gens
        )
        return res.is_zero, res.as_expr()

    def zero_root(n):
        _, p = simplex(n)
        val = rat_residual(secular(p, sp.Integer(0)))
        return val == 0, val

    _all_n(proof, n_max, identity, "det(J0 - lam I) - formula (polynomial identity in p, lam)")
    _all_n(proof, n_max, zero_root, "formula at lam = 0 with sum p = 1")
    return proof


def sorted_simplex(n: int):
    """Distinct sorted points of the open simplex: ``(gaps, t, total, p)``.

    ``p[i] = r_i / t`` with ``r_i = g_{i+1} + ... + g_n`` (positive gap symbols ``g``), so
    ``p[0] > p[1] > ... > p[n-1] > 0`` is decided by SymPy; ``t`` is a positive symbol and
    ``total = sum r`` the value that puts ``p`` on the simplex (substitute ``t -> total`` only
    where ``sum p = 1`` is used: keeping ``t`` free keeps the rational functions small).
    """
    g = sp.symbols(f"g1:{n + 1}", positive=True)
    t = sp.Symbol("t", positive=True)
    r = [sp.Add(*g[i:]) for i in range(n)]
    return g, t, sp.Add(*r), [ri / t for ri in r]


def _value_at_zero(expr, eps):
    """``lim_{eps -> 0+} expr`` for a rational function of ``eps`` that has a finite limit.

    Term by term (each term cancelled, then ``eps = 0``): cheap when only some terms carry a
    removable singularity; falls back to the canonical form of the whole expression.
    """
    expr = sp.expand(expr, deep=False, mul=True, multinomial=False, power_exp=False,
                     power_base=False, log=False)
    terms = expr.args if expr.is_Add else (expr,)
    val = sp.Add(*[sp.cancel(term).subs(eps, 0) for term in terms])
    if val.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        val = rat_residual(expr).subs(eps, 0)
    return rat_residual(val)


def _side_sign(f, lam, point, side, poles, on_simplex, eps):
    """Sign of ``f`` just to the ``side`` (+1 right, -1 left) of ``point``: +1, -1, or None (undecided).

    ``point`` = -oo/oo: the value of ``lim f``; ``point`` a pole: the sign of
    ``lim eps f(point + side eps)`` (nonzero, so ``f -> +-oo``); otherwise the sign of ``f(point)``
    on the simplex (zero counts as undecided: a bracket's root must be strictly inside).
    """
    if point in (sp.oo, -sp.oo):
        val = _value_at_zero(f.subs(lam, (1 if point == sp.oo else -1) / eps), eps)
        text = f"f -> {val} at {point}"
    elif any(rat_residual(point - q) == 0 for q in poles):
        val = _value_at_zero(eps * f.subs(lam, point + side * eps), eps)
        text = f"eps f({point} {'+' if side > 0 else '-'} eps) -> {short(val, 60)}"
    else:
        val = rat_residual(on_simplex(f.subs(lam, point)))
        text = f"f({short(point, 40)}) = {short(val, 60)}"
    if val.is_positive:
        return 1, text
    if val.is_negative:
        return -1, text
    return None, text + " (sign undecided)"


def _le(a, b, on_simplex) -> bool:
    """``a <= b`` decided by SymPy (infinite endpoints allowed)."""
    if a == -sp.oo or b == sp.oo:
        return True
    if a == sp.oo or b == -sp.oo:
        return False
    d = rat_residual(on_simplex(b - a))
    return d == 0 or bool(d.is_positive)


def _interlacing_n(n, brackets, secular):
    """All steps of the interlacing check for one n; returns (ok, text)."""
    lam = sp.Symbol("lam")
    eps = sp.Symbol("eps", positive=True)
    # (a) characteristic polynomial = formula under test = prod(p_i - lam) f(lam), generic p
    q = sp.symbols(f"p1:{n + 1}", positive=True)
    f_gen = 1 - sp.Add(*[qi**2 / (qi - lam) for qi in q])
    charp = det(jacobian_closed_form(q) - lam * sp.eye(n))
    sec = sp.sympify(secular(list(q), lam))
    r1 = rat_residual(charp - sec)
    r2 = rat_residual(sec / sp.Mul(*[qi - lam for qi in q]) - f_gen)
    if r1 != 0 or r2 != 0:
        return False, f"n={n}: det(J0 - lam I) - formula = {short(r1)}; formula/prod(p_i - lam) - f = {short(r2)}"
    # (b) f strictly decreasing between poles
    r3 = rat_residual(sp.diff(f_gen, lam) + sp.Add(*[qi**2 / (qi - lam) ** 2 for qi in q]))
    if r3 != 0:
        return False, f"n={n}: f' + sum p^2/(p-lam)^2 = {short(r3)}"
    # (c) + (d) on distinct sorted points of the simplex
    _, t, total, p = sorted_simplex(n)
    f = f_gen.subs(dict(zip(q, p)), simultaneous=True)

    def on_simplex(e):
        return e.subs(t, total)

    for i, pi in enumerate(p):
        for side in (1, -1):
            sgn, text = _side_sign(f, lam, pi, side, p, on_simplex, eps)
            if sgn != side:  # right of a pole f -> +oo, left of it f -> -oo
                return False, f"n={n}: pole p_({i + 1}): {text}, expected f -> {'+' if side > 0 else '-'}oo"
    for end in (-sp.oo, sp.oo):
        sgn, text = _side_sign(f, lam, end, 1, p, on_simplex, eps)
        if sgn != 1:
            return False, f"n={n}: {text}, expected f -> 1"
    claimed = [tuple(sp.sympify(e) for e in br) for br in brackets(list(p))]
    if len(claimed) != n:
        return False, f"n={n}: {len(claimed)} brackets for {n} eigenvalues"

    def is_point(a, b):
        return a not in (sp.oo, -sp.oo) and b not in (sp.oo, -sp.oo) and rat_residual(on_simplex(b - a)) == 0

    for j, (a, b) in enumerate(claimed):
        what = f"n={n}, bracket {j + 1} ({short(a, 40)}, {short(b, 40)})"
        if is_point(a, b):
            if any(rat_residual(on_simplex(a - pk)) == 0 for pk in p):
                # det(J0 - p_i I) = -p_i^2 prod_{j != i}(p_j - p_i) != 0 for distinct p
                return False, f"{what}: a pole of f, never an eigenvalue for distinct p"
            val = on_simplex(f.subs(lam, a))
            val = rat_residual(val) if not val.has(sp.zoo, sp.nan) else val
            if val != 0:
                return False, f"{what}: f there = {short(val, 80)}, not a root"
            continue
        if not (_le(a, b, on_simplex) and a != sp.oo and b != -sp.oo):
            return False, f"{what}: not an interval a < b"
        inside = [k for k, pk in enumerate(p) if not (_le(pk, a, on_simplex) or _le(b, pk, on_simplex))]
        if inside:
            return False, f"{what}: pole p_({inside[0] + 1}) not outside the bracket (or undecided)"
        s_a, t_a = _side_sign(f, lam, a, 1, p, on_simplex, eps)
        s_b, t_b = _side_sign(f, lam, b, -1, p, on_simplex, eps)
        if s_a != 1 or s_b != -1:
            return False, f"{what}: {t_a}; {t_b}: no sign change + to - (no root)"
    for j in range(n - 1):  # descending (next right end <= this left end) and disjoint: n distinct roots
        (a1, b1), (a2, b2) = claimed[j], claimed[j + 1]
        same_point = is_point(a1, b1) and is_point(a2, b2) and rat_residual(on_simplex(a1 - a2)) == 0
        if not _le(b2, a1, on_simplex) or same_point:
            return False, f"n={n}: brackets {j + 1} and {j + 2} overlap or are out of order"
    return True, ""


@check(
    "J3b-softmax-interlacing",
    symbolic_upto(6),
    "distinct sorted p on the simplex: p_(1) > lam_1 > p_(2) > ... > p_(n) > lam_n = 0 (ties: by continuity)",
)
def interlacing(brackets=interlacing_brackets_closed_form, secular=secular_closed_form, n_max: int = 6) -> Proof:
    """Eigenvalues of J0 in the brackets ``brackets(p)`` (p sorted descending), via the secular function."""
    proof = Proof(symbolic_upto(n_max))
    bad = []
    for n in range(2, n_max + 1):
        ok, text = _interlacing_n(n, brackets, secular)
        if not ok:
            bad.append(text)
    proof.require(
        not bad,
        f"every n in 2..{n_max}: det(J0 - lam I) = prod(p_i - lam) f(lam), f = 1 - sum p_i^2/(p_i - lam); "
        "f' = -sum p_i^2/(p_i - lam)^2 < 0; eps f(p_(i) +- eps) -> +-p_(i)^2 (f -> +-oo right/left of each "
        "pole), f -> 1 at +-oo; every claimed bracket: open ones hold no pole, f > 0 at the left end and "
        "< 0 at the right end (one root each), point ones are exact roots (f(0) = 1 - sum p = 0); n disjoint "
        "brackets in descending order = all n eigenvalues"
        + (": " + "; ".join(bad) if bad else ""),
    )
    proof.note(
        "for distinct p this gives p_(1) > lam_1 > p_(2) > ... > p_(n) > lam_n = 0 (with the default brackets); "
        "ties are not derived here: the non-strict inequalities extend to them by continuity of the "
        "eigenvalues of a symmetric matrix (argued, not computed)"
    )
    return proof


def _n2_maximum(b):
    """Exact max of lambda_max(J0) over the closed 1-simplex, and whether it equals b."""
    x, lam = sp.symbols("x lam")
    cp = charpoly(jacobian_closed_form([x, 1 - x]), lam)
    nonzero = sp.factor(cp)
    top = sp.solve(sp.cancel(cp / lam), lam)  # the nonzero eigenvalue as a function of x
    if len(top) != 1:
        return False, f"unexpected spectrum {nonzero}"
    lmax = sp.expand(top[0])
    crit = [c for c in sp.solve(sp.diff(lmax, x), x) if c.is_real and 0 <= c <= 1]
    cands = [(c, lmax.subs(x, c)) for c in [*crit, sp.Integer(0), sp.Integer(1)]]
    arg, best = max(cands, key=lambda t: t[1])
    return best == b, f"n=2: char poly {nonzero}, lambda_max = {lmax}, max {best} at p1 = {arg}"


def _n3_supremum(b):
    """Critical-point analysis of h = b^2 - t b + d on the closed 2-simplex (see module doc).

    Returns (ok, text): ok iff lambda_max <= b everywhere, with equality only on the boundary
    (sup approached, not attained with finite logits) and attained there.
    """
    x, y, lam = sp.symbols("x y lam", real=True)
    pts = [x, y, 1 - x - y]
    cp = charpoly(jacobian_closed_form(pts), lam)  # lam^3 - t lam^2 + d lam - det
    if sp.expand(cp.subs(lam, 0)) != 0:
        return False, "det J0 != 0 on the simplex"
    quad = sp.expand(sp.cancel(cp / lam))  # lam^2 - t lam + d
    t = -quad.coeff(lam, 1)
    h = sp.expand(quad.subs(lam, b))
    texts = [f"n=3: nonzero char poly lam^2 - t lam + d with t = 1 - sum p^2, d = {sp.factor(quad.coeff(lam, 0))}"]

    # b >= t/2 everywhere (then b is right of both roots whenever h(b) >= 0): g convex quadratic.
    g = sp.expand(b - t / 2)
    gcrit = sp.solve([sp.diff(g, x), sp.diff(g, y)], [x, y], dict=True)
    hess = sp.hessian(g, (x, y))
    gmin = g.subs(gcrit[0]) if len(gcrit) == 1 else None
    vertex_ok = (
        gmin is not None and hess.is_positive_definite and bool(gmin >= 0)
    )
    texts.append(f"b - t/2 convex with minimum {gmin} at the barycentre")

    def inside(sol):
        vx, vy = sol[x], sol[y]
        if not (vx.is_real and vy.is_real):
            return False
        return bool(vx > 0) and bool(vy > 0) and bool(vx + vy < 1)

    sols = sp.solve([sp.diff(h, x), sp.diff(h, y)], [x, y], dict=True)
    interior = [(s, sp.nsimplify(h.subs(s)) if h.subs(s).is_Float else h.subs(s)) for s in sols if inside(s)]
    interior_ok = all(bool(v > 0) for _, v in interior)
    texts.append(
        "interior critical points of h(b): "
        + (", ".join(f"({s[x]}, {s[y]}) with h = {v}" for s, v in interior) or "none")
    )

    s = sp.Symbol("s", real=True)
    edge_vals = []
    for ex, ey in [(s, 0), (0, s), (s, 1 - s)]:
        he = sp.expand(h.subs({x: ex, y: ey}))
        crit = [c for c in sp.solve(sp.diff(he, s), s) if c.is_real and bool(c >= 0) and bool(c <= 1)]
        for c in [*crit, sp.Integer(0), sp.Integer(1)]:
            edge_vals.append((he.subs(s, c), (ex, ey, c)))
    edge_min = min(v for v, _ in edge_vals)
    edge_ok = bool(edge_min >= 0)
    attained = edge_min == 0
    where = sorted(
        {(ex.subs(s, c) if ex != 0 else 0, ey.subs(s, c) if ey != 0 else 0) for v, (ex, ey, c) in edge_vals if v == edge_min}
    )
    where = [(px, py, 1 - px - py) for px, py in where]
    texts.append(f"minimum of h(b) on the boundary = {edge_min}, at p = {where}")
    ok = vertex_ok and interior_ok and edge_ok and attained
    return ok, "; ".join(texts)


@check(
    "J2-softmax-spectral-half",
    "symbolic (general n)",
    "||J||_2 <= beta/2, attained at n=2, approached only on the boundary for n=3",
)
def spectral_half(bound=spectral_bound_closed_form) -> Proof:
    """``bound(beta)`` must be the proven upper bound beta/2 and the exact supremum."""
    proof = Proof()
    beta = sp.Symbol("beta", positive=True)
    const = variance_half_chain(proof)
    claimed = sp.sympify(bound(beta))
    ok, num, den = nonneg_certificate(claimed - const * beta, [beta])
    proof.require(ok, f"claimed bound - (proven) beta/2 = {short(rat_residual(claimed - const * beta))} >= 0")
    b = rat_residual(claimed / beta)
    if b.free_symbols:
        proof.require(False, f"claimed bound is not linear in beta: {claimed}")
        return proof
    ok2, text2 = _n2_maximum(b)
    proof.require(ok2, text2 + f" (must equal bound/beta = {b})")
    ok3, text3 = _n3_supremum(b)
    proof.require(ok3, text3 + f" (b = bound/beta = {b})")
    return proof


@check(
    "J4-softmax-frobenius",
    symbolic_upto(6),
    "||J0||_F^2 = sum p^2 - 2 sum p^3 + (sum p^2)^2",
)
def frobenius(frobenius_sq=frobenius_sq_closed_form, n_max: int = 6) -> Proof:
    proof = Proof(symbolic_upto(n_max))

    def per_n(n):
        _, p = simplex(n)
        mat = jacobian_closed_form(p)
        total = sp.Add(*[e**2 for e in mat])
        res = rat_residual(total - frobenius_sq(p))
        return res == 0, res

    _all_n(proof, n_max, per_n, "sum_ij (J0)_ij^2 - formula")
    return proof


@check(
    "J5-softmax-one-norm",
    symbolic_upto(6),
    "||J0||_{1->1} = ||J0||_{inf->inf} = max_i 2 p_i (1 - p_i) <= 1/2 (attained)",
)
def one_norm(
    columns=one_norm_columns_closed_form, bound=one_norm_bound_closed_form, n_max: int = 6
) -> Proof:
    """Absolute column sums of J0 (signs decided by SymPy) against ``columns(p)``; ``bound()``
    must be the exact maximum of the column formula over [0, 1]."""
    proof = Proof(symbolic_upto(n_max))

    def per_n(n):
        _, p = simplex(n)
        mat = jacobian_closed_form(p)
        formula = list(columns(p))
        if len(formula) != n:
            return False, f"{len(formula)} column values for n={n}"
        for j in range(n):
            entries = [sp.factor(mat[i, j]) for i in range(n)]
            abs_sum = sp.Add(*[sp.Abs(e) for e in entries])
            if abs_sum.has(sp.Abs):
                return False, f"undecided sign in column {j}"
            res = rat_residual(abs_sum - formula[j])
            if res != 0:
                return False, f"column {j}: {res}"
        return True, 0

    _all_n(proof, n_max, per_n, "sum_i |(J0)_ij| - formula_j (signs from p in the open simplex)")
    # J0 is symmetric (symmetric_kernel), so max column sum = max row sum: 1->1 = inf->inf.
    proof.note("J0 symmetric, so the 1->1 and inf->inf norms coincide")

    # The bound: max over a single coordinate x in [0,1] of the column formula (n = 2 realises any x).
    x = sp.Symbol("x", real=True)
    col = sp.expand(columns([x, 1 - x])[0])
    crit = [c for c in sp.solve(sp.diff(col, x), x) if c.is_real and 0 <= c <= 1]
    cands = [col.subs(x, c) for c in [*crit, sp.Integer(0), sp.Integer(1)]]
    top = max(cands) if cands else None
    b = sp.sympify(bound())
    proof.require(
        top is not None and top == b,
        f"max_x in [0,1] of column formula = {top} (at x = {crit}), must equal the bound {b}",
    )
    return proof


@check(
    "J6-softmax-inf-to-one",
    symbolic_upto(4),
    "||J0||_{inf->1} = max_S 4 p(S)(1 - p(S)) <= 1 (attained when some p(S) = 1/2)",
)
def inf_to_one(
    subset_value=inf_to_one_subset_closed_form,
    bound=inf_to_one_bound_closed_form,
    n_max: int = 4,
    grid_denominator: int = 6,
) -> Proof:
    """Vertex enumeration of ||J0 x||_1 over the cube, symbolic in p and on an exact rational grid."""
    proof = Proof(symbolic_upto(n_max))

    def per_n(n):
        q, p = simplex(n)
        mat = jacobian_closed_form(p)
        for signs in itertools.product((1, -1), repeat=n):
            img = mat * sp.Matrix(signs)
            terms = [sp.Abs(sp.factor(e)) for e in img]
            if any(t.has(sp.Abs) for t in terms):
                return False, f"undecided sign for s = {signs}"
            mass = sp.Add(*[pi for pi, si in zip(p, signs) if si == 1])
            res = rat_residual(sp.Add(*terms) - subset_value(mass))
            if res != 0:
                return False, f"s = {signs}: {res}"
        return True, 0

    _all_n(proof, n_max, per_n, "||J0 s||_1 - formula(p(S)) for every sign vector s")

    # Exact rational enumeration: max over sign vectors equals max over subsets of the formula.
    count, bad = 0, None
    for n in range(2, n_max + 1):
        for pt in rational_grid_simplex(n, grid_denominator):
            mat = jacobian_closed_form(pt)
            direct = max(
                sum(abs(e) for e in mat * sp.Matrix(s)) for s in itertools.product((1, -1), repeat=n)
            )
            formula = max(
                sp.sympify(subset_value(sum(pt[i] for i in idx)))
                for r in range(0, n + 1)
                for idx in itertools.combinations(range(n), r)
            )
            count += 1
            if direct != formula and bad is None:
                bad = (pt, direct, formula)
    proof.require(
        bad is None,
        f"exact rational grid (p in (1/{grid_denominator})Z^n, n <= {n_max}, {count} points): "
        + ("max_s ||J0 s||_1 = max_S formula" if bad is None else f"mismatch at p={bad[0]}: {bad[1]} vs {bad[2]}"),
    )

    x = sp.Symbol("x", real=True)
    val = sp.expand(subset_value(x))
    crit = [c for c in sp.solve(sp.diff(val, x), x) if c.is_real and 0 <= c <= 1]
    top = max([val.subs(x, c) for c in [*crit, sp.Integer(0), sp.Integer(1)]])
    b = sp.sympify(bound())
    proof.require(top == b, f"max over p(S) in [0,1] of the formula = {top} at p(S) = {crit}; bound {b}")
    return proof
