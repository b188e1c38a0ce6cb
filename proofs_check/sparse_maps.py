r"""Symbolic checks of the sparsemax / :math:`\alpha`-entmax Jacobians (claims ``S1``-``S3``).

* ``sparsemax_jacobian`` [S1] -- on a fixed support :math:`S` the KKT conditions are
  :math:`p_i = z_i - \tau` (:math:`i\in S`), :math:`p_i = 0` (:math:`i\notin S`),
  :math:`\sum_S p_i = 1`. Implicit differentiation of the constraint
  (:math:`d\tau/dz_j = -F_{z_j}/F_\tau`) gives the Jacobian, compared with
  :math:`\mathrm{diag}(s) - ss^\top/|S|` (:math:`s = \mathbf 1_S`) for **every** support of
  :math:`n = 4` (all 15). The derived matrix is symmetric and idempotent, and its exact largest
  eigenvalue is 1 for :math:`|S| \ge 2` (0 for :math:`|S| = 1`), so :math:`\|J\|_2 = 1`.
  Limits: a fixed support means strict complementarity (:math:`z_j < \tau` off :math:`S`), i.e.
  away from the measure-zero set where the support changes.
* ``entmax_jacobian`` [S2] -- :math:`p_i = ((\alpha-1)z_i - \tau)^{1/(\alpha-1)}` on the support with
  :math:`\sum p = 1`; implicit differentiation, symbolic :math:`\alpha > 1` (parametrised by
  :math:`r = 1/(\alpha-1) > 0` so that all powers are :math:`u^{ar+b}` with integer :math:`a, b`,
  which makes the zero test canonical), for :math:`n = 2, 3` (support = all coordinates; a
  smaller support is the same computation on fewer coordinates). Also checks the two endpoints
  of the formula on exact rational points: :math:`\alpha = 2` gives the sparsemax Jacobian and
  :math:`\alpha = 1` the softmax Jacobian :math:`\mathrm{diag}(p) - pp^\top`.
* ``entmax_spectral_bound`` [S3] -- :math:`v^\top J v = (\mathbf 1^\top s)\,\mathrm{Var}_{s/\mathbf 1^\top s}(v)`
  and :math:`\sum_i s_i v_i^2 - v^\top J v = (s^\top v)^2/\mathbf 1^\top s \ge 0` (so
  :math:`\|J\|_2 \le \max s_i`), in moment form for general :math:`n` and on the explicit
  matrices for every :math:`n \le 5`; the general-:math:`n` variance chain of
  ``softmax_jacobian.spectral_half`` (so :math:`\|J\|_2 \le \mathbf 1^\top s/2`). The formula under
  test is compared with :math:`\min(\max s, \sum s/2)` and with the exact largest eigenvalue
  (real algebraic numbers, compared exactly) on a rational grid of weights, :math:`n = 2, 3`.
  Support bound: :math:`x \mapsto x^{2-\alpha}` has second derivative
  :math:`(2-\alpha)(1-\alpha)x^{-\alpha} \le 0` for :math:`\alpha \in [1, 2]` (verified with
  ``solve_univariate_inequality``), so Jensen gives
  :math:`\sum_{i\in S} p_i^{2-\alpha} \le k (1/k)^{2-\alpha} = k^{\alpha-1}`, equality at uniform
  :math:`p`; and :math:`s_i = p_i^{2-\alpha} \le 1`. Jensen's inequality itself is used, not
  re-derived.

Sources: docs/notes/field.md §3.1 (sparsemax, Martins & Astudillo 2016, [V-code][D]) and §3.2 (entmax,
Peters, Niculae, Martins 2019; Jacobian as in ``deep-spin/entmax`` backward, [V-code][D][N]).
The spectral bound is derived in docs/notes/field.md §3.2 [D][N], not a paper's statement.
"""

from __future__ import annotations

import itertools

import sympy as sp

from ._core import Proof, check, symbolic_upto
from ._sym import charpoly, mat_rat_residual, max_real_root, rat_residual, short
from .softmax_jacobian import jacobian_closed_form as softmax_jacobian_closed_form
from .softmax_jacobian import variance_half_chain

__all__ = [
    "sparsemax_jacobian_closed_form",
    "entmax_jacobian_closed_form",
    "weighted_jacobian",
    "entmax_bound_closed_form",
    "entmax_support_bound_closed_form",
    "sparsemax_jacobian",
    "entmax_jacobian",
    "entmax_spectral_bound",
]


def sparsemax_jacobian_closed_form(s):
    r""":math:`\mathrm{diag}(s) - ss^\top/|S|` for the support indicator ``s`` (0/1 entries)."""
    col = sp.Matrix(list(s))
    return sp.diag(*s) - col * col.T / sp.Add(*s)


def weighted_jacobian(s):
    r""":math:`\mathrm{diag}(s) - ss^\top/\mathbf 1^\top s` for positive weights ``s``."""
    col = sp.Matrix(list(s))
    return sp.diag(*s) - col * col.T / sp.Add(*s)


def entmax_jacobian_closed_form(p, alpha):
    r""":math:`\mathrm{diag}(s) - ss^\top/\mathbf 1^\top s` with :math:`s_i = p_i^{2-\alpha}` (support only)."""
    return weighted_jacobian([pi ** (2 - alpha) for pi in p])


def entmax_bound_closed_form(s):
    r""":math:`\min(\max_i s_i, \tfrac12\sum_i s_i)`."""
    return sp.Min(sp.Max(*s), sp.Add(*s) / 2)


def entmax_support_bound_closed_form(k, alpha):
    r""":math:`\sum_{i \in S} p_i^{2-\alpha} \le k^{\alpha-1}`."""
    return k ** (alpha - 1)


@check(
    "S1-sparsemax-jacobian",
    symbolic_upto(4),
    "sparsemax J = diag(s) - s s^T/|S| on a fixed support; a projector, ||J||_2 = 1 for |S| >= 2",
)
def sparsemax_jacobian(jacobian=sparsemax_jacobian_closed_form, n: int = 4) -> Proof:
    proof = Proof(symbolic_upto(n))
    z = sp.symbols(f"z1:{n + 1}", real=True)
    tau = sp.Symbol("tau", real=True)
    lam = sp.Symbol("lam")
    bad, proj_bad, norms = [], [], {}
    for k in range(1, n + 1):
        for support in itertools.combinations(range(n), k):
            ind = [1 if i in support else 0 for i in range(n)]
            p = [z[i] - tau if ind[i] else sp.Integer(0) for i in range(n)]
            constraint = sp.Add(*[p[i] for i in support]) - 1
            dtau = [-sp.diff(constraint, zj) / sp.diff(constraint, tau) for zj in z]
            derived = sp.Matrix(n, n, lambda i, j: sp.diff(p[i], z[j]) + sp.diff(p[i], tau) * dtau[j])
            ok, res = mat_rat_residual(derived - sp.Matrix(jacobian(ind)))
            if not ok:
                bad.append(f"S={support}: residual {short(res)}")
            ok_p, _ = mat_rat_residual(derived * derived - derived)
            ok_s, _ = mat_rat_residual(derived - derived.T)
            if not (ok_p and ok_s):
                proj_bad.append(str(support))
            top = max_real_root(charpoly(derived, lam), lam)
            norms.setdefault(k, set()).add(top)
    proof.require(
        not bad,
        "implicit differentiation of the KKT system minus formula: "
        + ("; ".join(bad) if bad else f"0 for all {2**n - 1} supports of n = {n}"),
    )
    proof.require(not proj_bad, "derived J symmetric and J^2 = J" + (f" fails for {proj_bad}" if proj_bad else ""))
    want = {k: ({sp.Integer(1)} if k >= 2 else {sp.Integer(0)}) for k in norms}
    proof.require(
        norms == want,
        "exact largest eigenvalue by support size: " + ", ".join(f"|S|={k}: {sorted(v)}" for k, v in sorted(norms.items())),
    )
    return proof


def _canon_powers(expr, u, X, Y, r):
    """Rewrite every power of u_i as X_i**a * Y_i**b (X_i = u_i**r, Y_i = u_i, integers a, b)."""
    L = sp.symbols(f"L1:{len(u) + 1}", real=True)
    e = expr.subs({ui: sp.exp(li) for ui, li in zip(u, L)})
    e = sp.powdenest(sp.powsimp(e, force=True), force=True)

    def rep(ex):
        arg = sp.expand(ex.args[0])
        out = sp.Integer(1)
        rest = arg
        for li, xi, yi in zip(L, X, Y):
            c = sp.expand(arg.coeff(li))
            a = c.coeff(r)
            b = sp.expand(c - a * r)
            if not (a.is_Integer and b.is_Integer):
                raise ValueError(f"exponent {c} of u is not integer-affine in r")
            out *= xi**a * yi**b
            rest = sp.expand(rest - c * li)
        return out * sp.exp(rest)

    e = e.replace(lambda x: isinstance(x, sp.exp), rep)
    if e.free_symbols & set(L):
        raise ValueError("could not eliminate log u")
    return e


@check(
    "S2-entmax-jacobian",
    symbolic_upto(3),
    "alpha-entmax J = diag(s) - s s^T / sum s, s_i = p_i^(2-alpha) on the support (symbolic alpha > 1)",
)
def entmax_jacobian(jacobian=entmax_jacobian_closed_form, n_max: int = 3) -> Proof:
    proof = Proof(symbolic_upto(n_max))
    r = sp.Symbol("r", positive=True)  # r = 1/(alpha - 1)
    alpha = 1 + 1 / r
    tau = sp.Symbol("tau", real=True)
    bad = []
    for n in range(2, n_max + 1):
        z = sp.symbols(f"z1:{n + 1}", real=True)
        u = sp.symbols(f"u1:{n + 1}", positive=True)
        X = sp.symbols(f"X1:{n + 1}", positive=True)
        Y = sp.symbols(f"Y1:{n + 1}", positive=True)
        p = [((alpha - 1) * zi - tau) ** (1 / (alpha - 1)) for zi in z]
        constraint = sp.Add(*p) - 1
        dtau = [-sp.diff(constraint, zj) / sp.diff(constraint, tau) for zj in z]
        derived = sp.Matrix(n, n, lambda i, j: sp.diff(p[i], z[j]) + sp.diff(p[i], tau) * dtau[j])
        derived = derived.subs({zi: (ui + tau) / (alpha - 1) for zi, ui in zip(z, u)})
        formula = sp.Matrix(jacobian([ui**r for ui in u], alpha))
        for i, j in itertools.product(range(n), repeat=2):
            res = rat_residual(_canon_powers(derived[i, j] - formula[i, j], u, X, Y, r))
            if res != 0:
                bad.append(f"n={n} entry ({i},{j}): residual {short(res)}")
                break
    proof.require(
        not bad,
        "implicit differentiation of p_i = ((alpha-1) z_i - tau)^(1/(alpha-1)), sum p = 1, minus formula: "
        + ("; ".join(bad) if bad else f"0 for n = 2..{n_max}, symbolic alpha = 1 + 1/r, r > 0"),
    )

    # Endpoints of the formula on exact points: alpha = 2 is sparsemax, alpha = 1 is softmax.
    pts = [(sp.Rational(1, 2), sp.Rational(1, 2)), (sp.Rational(1, 6), sp.Rational(1, 3), sp.Rational(1, 2))]
    end_bad = []
    for pt in pts:
        ok2, res2 = mat_rat_residual(sp.Matrix(jacobian(list(pt), 2)) - sparsemax_jacobian_closed_form([1] * len(pt)))
        ok1, res1 = mat_rat_residual(sp.Matrix(jacobian(list(pt), 1)) - softmax_jacobian_closed_form(pt))
        if not (ok1 and ok2):
            end_bad.append(f"p={pt}: alpha=2 residual {res2}, alpha=1 residual {res1}")
    proof.require(
        not end_bad,
        "formula at alpha = 2 equals sparsemax's, at alpha = 1 softmax's diag(p) - pp^T"
        + (": " + "; ".join(end_bad) if end_bad else ""),
    )
    return proof


@check(
    "S3-entmax-spectral-bound",
    "symbolic (general n)",
    "||J_alpha||_2 <= min(max s_i, sum s/2) <= min(1, k^(alpha-1)/2)",
)
def entmax_spectral_bound(
    bound=entmax_bound_closed_form,
    support_bound=entmax_support_bound_closed_form,
    n_max: int = 5,
) -> Proof:
    proof = Proof()

    # General n: with A = sum s v^2, B = sum s v, S = sum s, the definition of J gives
    # v^T J v = A - B^2/S; for w = s/S, E_w v^2 = A/S and E_w v = B/S.
    A, B = sp.symbols("A B", real=True)
    S = sp.Symbol("S", positive=True)
    quad_def = A - B**2 / S
    proof.require(
        sp.expand(S * (A / S - (B / S) ** 2) - quad_def) == 0 and sp.expand(A - quad_def - B**2 / S) == 0,
        "general n: v^T J v = sum s v^2 - (s.v)^2/sum s = (sum s) Var_w(v), w = s/sum s, and "
        "sum s v^2 - v^T J v = (s.v)^2/sum s >= 0, so ||J||_2 <= max s_i",
    )

    # The same on the explicit matrices, every n <= n_max.
    bad = []
    for n in range(2, n_max + 1):
        s = sp.symbols(f"s1:{n + 1}", positive=True)
        v = sp.Matrix(sp.symbols(f"v1:{n + 1}", real=True))
        total = sp.Add(*s)
        w = [si / total for si in s]
        mean = sp.Add(*[wi * vi for wi, vi in zip(w, v)])
        var = sp.Add(*[wi * (vi - mean) ** 2 for wi, vi in zip(w, v)])
        quad = (v.T * weighted_jacobian(s) * v)[0, 0]
        r1 = rat_residual(quad - total * var)
        sv = sp.Add(*[si * vi for si, vi in zip(s, v)])
        r2 = rat_residual(sp.Add(*[si * vi**2 for si, vi in zip(s, v)]) - quad - sv**2 / total)
        if r1 != 0 or r2 != 0:
            bad.append(f"n={n}: {short(r1)}, {short(r2)}")
    proof.require(
        not bad,
        f"explicit matrices diag(s) - ss^T/sum s: both identities hold for every n <= {n_max}"
        + (": " + "; ".join(bad) if bad else ""),
    )
    variance_half_chain(proof)  # so ||J|| <= (sum s) / 2, general n

    # The formula under test against the derived min and the exact largest eigenvalue.
    lam = sp.Symbol("lam")
    grid2 = [sp.Rational(k, 4) for k in (1, 2, 3, 4)]
    grid3 = [sp.Rational(1, 4), sp.Rational(1, 2), sp.Integer(1)]
    points = list(itertools.product(grid2, repeat=2)) + list(itertools.combinations_with_replacement(grid3, 3))
    invalid, differs = [], []
    for s in points:
        b = sp.sympify(bound(list(s)))
        top = max_real_root(charpoly(weighted_jacobian(s), lam), lam)
        if not bool(top <= b):
            invalid.append(f"s={s}: lambda_max={top} > {b}")
        derived = min(max(s), sum(s) / 2)
        if b != derived:
            differs.append(f"s={s}: {b} != {derived}")
    proof.require(
        not invalid,
        f"exact lambda_max(J) <= formula at {len(points)} rational weight vectors (n = 2, 3)"
        + (": " + "; ".join(invalid[:3]) if invalid else ""),
    )
    proof.require(
        not differs,
        "formula = min(max s, sum s/2) (the derived bound) at every grid point"
        + (": " + "; ".join(differs[:3]) if differs else ""),
    )

    # Support bound: concavity of x^(2-alpha) on [1,2], Jensen value, s_i <= 1.
    a = sp.Symbol("alpha", real=True)
    x = sp.Symbol("x", positive=True)
    k = sp.Symbol("k", positive=True, integer=True)
    second = sp.simplify(sp.diff(x ** (2 - a), x, 2) / x ** (-a))
    convex_set = sp.solve_univariate_inequality(second > 0, a, relational=False, domain=sp.Interval(1, 2))
    proof.require(
        convex_set == sp.S.EmptySet,
        f"d^2/dx^2 x^(2-alpha) = ({sp.factor(second)}) x^(-alpha) <= 0 for alpha in [1,2] "
        f"(set where > 0: {convex_set})",
    )
    jensen = k * (1 / k) ** (2 - a)
    res = sp.simplify(sp.powsimp(sp.sympify(support_bound(k, a)) - jensen, force=True))
    proof.require(res == 0, f"Jensen: sum_S p_i^(2-alpha) <= k (1/k)^(2-alpha); formula - that = {res}")
    u = sp.Symbol("u", nonnegative=True)
    c = sp.Symbol("c", nonnegative=True)  # c = 2 - alpha in [0, 1]
    log_s = sp.expand_log(sp.log((1 / (1 + u)) ** c), force=True)
    proof.require(log_s.is_nonpositive, f"s_i = p_i^(2-alpha) <= 1: log s_i = {log_s} <= 0 (p_i = 1/(1+u))")
    return proof
