"""SymPy helpers shared by the check modules (zero tests, sign certificates, exact spectra)."""

from __future__ import annotations

import itertools
from typing import Iterable, Sequence

import sympy as sp
from sympy.polys.matrices import DomainMatrix

__all__ = [
    "simplex",
    "short",
    "rat_residual",
    "mat_rat_residual",
    "exp_residual",
    "nonneg_certificate",
    "find_negative",
    "charpoly",
    "det",
    "max_real_root",
    "rational_grid_simplex",
]


def simplex(n: int, name: str = "q"):
    """Homogeneous coordinates of the open simplex: positive symbols ``q`` and ``p_i = q_i/sum q``.

    Every point of the open simplex is reached, and SymPy can decide the sign of any
    sum-of-products of the ``q`` with positive coefficients.
    """
    q = sp.symbols(f"{name}1:{n + 1}", positive=True)
    total = sp.Add(*q)
    return q, [qi / total for qi in q]


def short(expr, maxlen: int = 160) -> str:
    text = str(expr)
    return text if len(text) <= maxlen else text[: maxlen - 3] + "..."


def rat_residual(expr):
    """Canonical form of a rational expression (``0`` iff the expression is identically zero)."""
    return sp.cancel(sp.together(sp.sympify(expr)))


def mat_rat_residual(mat: sp.Matrix):
    """``(all_zero, first nonzero residual or 0)`` for a matrix of rational expressions."""
    for entry in mat:
        res = rat_residual(entry)
        if res != 0:
            return False, res
    return True, sp.Integer(0)


def _expand_exp_args(expr):
    return expr.replace(lambda e: isinstance(e, sp.exp), lambda e: sp.exp(sp.expand(e.args[0])))


def exp_residual(expr):
    """Residual of an expression built from rational operations, ``exp`` and ``log``.

    Exponent arguments are expanded so that equal exponentials become the same generator; then
    the rational canonical form is taken, and ``simplify`` (with logs expanded, all symbols
    positive) only as a fallback.
    """
    expr = _expand_exp_args(sp.sympify(expr))
    res = sp.cancel(sp.together(expr))
    if res == 0:
        return res
    res = sp.simplify(sp.expand_log(res, force=True))
    return res


def nonneg_certificate(expr, nonneg_vars: Sequence[sp.Symbol]):
    """Try to certify ``expr >= 0`` for all nonnegative values of ``nonneg_vars``.

    ``expr`` must be a rational function of ``nonneg_vars`` only. The certificate: numerator and
    denominator polynomials (expanded) whose coefficients all have one sign, with a nonzero
    denominator. Returns ``(certified, numerator, denominator)``; ``certified`` is False when the
    certificate does not apply (which does not by itself mean the inequality is false; the
    callers then look for a counterexample).
    """
    expr = sp.together(sp.sympify(expr))
    extra = expr.free_symbols - set(nonneg_vars)
    if extra:
        raise ValueError(f"nonneg_certificate: unexpected symbols {sorted(map(str, extra))}")
    num, den = sp.fraction(sp.cancel(expr))
    num, den = sp.expand(num), sp.expand(den)
    if num == 0:
        return True, num, den
    gens = list(nonneg_vars) or [sp.Dummy("x")]
    pn = sp.Poly(num, *gens).coeffs()
    pd = sp.Poly(den, *gens).coeffs()
    if all(c >= 0 for c in pd):
        return all(c >= 0 for c in pn), num, den
    if all(c <= 0 for c in pd):
        return all(c <= 0 for c in pn), num, den
    return False, num, den


def find_negative(expr, variables: Sequence[sp.Symbol], values: Iterable):
    """First point of the grid ``values`` (applied to every variable) where ``expr < 0``, or None."""
    values = list(values)
    for point in itertools.product(values, repeat=len(variables)):
        val = sp.sympify(expr).subs(dict(zip(variables, point)))
        val = sp.nsimplify(val) if val.is_Float else val
        try:
            if bool(val < 0):
                return dict(zip(variables, point)), val
        except TypeError:
            continue
    return None


def _domain_matrix(mat: sp.Matrix) -> DomainMatrix:
    return DomainMatrix.from_Matrix(sp.Matrix(mat))


def det(mat: sp.Matrix):
    """Exact determinant through SymPy's polynomial-domain matrices (fast for symbolic entries)."""
    dm = _domain_matrix(mat)
    return dm.domain.to_sympy(dm.det())


def charpoly(mat: sp.Matrix, lam: sp.Symbol):
    """``det(lam I - M)`` as an expanded expression in ``lam``."""
    dm = _domain_matrix(mat)
    coeffs = [dm.domain.to_sympy(c) for c in dm.charpoly()]
    n = len(coeffs) - 1
    return sp.expand(sum(c * lam ** (n - k) for k, c in enumerate(coeffs)))


def max_real_root(poly_expr, lam: sp.Symbol):
    """Largest real root (exact: Rational or CRootOf) of a polynomial with rational coefficients."""
    roots = sp.Poly(poly_expr, lam).real_roots()
    return roots[-1] if roots else None  # real_roots() is sorted ascending


def rational_grid_simplex(n: int, denominator: int):
    """All points of the open simplex with coordinates in ``(1/denominator) * Z_{>0}``."""
    for parts in itertools.product(range(1, denominator), repeat=n - 1):
        last = denominator - sum(parts)
        if last >= 1:
            yield tuple(sp.Rational(k, denominator) for k in (*parts, last))
