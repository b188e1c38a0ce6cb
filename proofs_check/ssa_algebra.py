r"""Symbolic checks of the Selective-Attention (SSA) algebra (claims ``A1``-``A4``).

* ``query_temperature_row_scale`` [A1] -- with symbolic :math:`q \in \mathbb R^d`, keys
  :math:`k_1..k_n \in \mathbb R^d` and :math:`\tau > 0`: :math:`(\tau q)^\top k_j/\sqrt d =
  \tau\,(q^\top k_j/\sqrt d)` for every :math:`j`, so softmax over :math:`j` of the two is the same
  (the softmax residual is also checked); a masked logit stays masked
  (:math:`\tau\cdot(-\infty) = -\infty` for :math:`\tau > 0`). Exact algebra for every
  :math:`n \le 3` keys and :math:`d \le 3`.
* ``unit_temperature_vanilla`` [A2] -- for the SSA layer
  :math:`y = \mathrm{softmax}(\mathrm{diag}(\tau) QK^\top/\sqrt d)\,\mathrm{diag}(\nu) V` (every
  :math:`n \le 3` queries and keys, :math:`d = 2`, all entries symbolic):
  :math:`\tau \equiv 1, \nu \equiv 1` gives vanilla attention exactly; in general
  :math:`y_i = \sum_j p_{ij}(\tau_i)\,\nu_j v_j` -- the value temperature gates each *key's* value,
  not the output row (the DeepCode reimplementation's output scaling fails this);
  :math:`\nu = 0` gives :math:`y = 0`, while every row of weights sums to 1 (so with
  :math:`\nu = 1` the output is a convex combination of the values).
* ``sigmoid_positive`` [A3] -- :math:`\tau = 1 + \sigma(\alpha)\ln n + \tanh f`: with
  :math:`e^{-\alpha} = a > 0`, :math:`e^{f} = b > 0`, :math:`n = 1 + m` (:math:`m \ge 0`),
  :math:`\tau = [2b^2(1+a) + (1+b^2)\ln(1+m)]/[(1+a)(1+b^2)]`, which SymPy proves positive, for
  every real :math:`\alpha`, every real (finite) :math:`f` and every real :math:`n \ge 1`. This is
  what is proven: strict positivity for finite :math:`f`. It cannot be improved to a positive
  lower bound: :math:`\lim_{f\to-\infty}\tau|_{n=1} = 0`, so :math:`\inf\tau = 0`, not attained.
  Also :math:`\sigma(\alpha)\ln n < \tau < 2 + \sigma(\alpha)\ln n` (docs/notes/selective_attention.md §1.3).
* ``double_exp_positive`` [A4] -- the official code's coefficient :math:`g = e^{-e^{\alpha}}` lies in
  :math:`(0, 1)` for every real :math:`\alpha` (:math:`\ln g = -e^\alpha < 0`), with
  :math:`g \to 1` as :math:`\alpha \to -\infty` and :math:`g \to 0` as :math:`\alpha \to \infty`
  (endpoints not attained); so the temperature :math:`1 + g\ln n` lies in :math:`[1, 1 + \ln n)`.

Sources: docs/notes/selective_attention.md §1.3 (temperature form: third-party reimplementations, [3P], unconfirmed as the
paper's exact form), §1.6 (equivalences, [OURS]), §1.7 (double-exponential coefficient, [CODE]).
"""

from __future__ import annotations

import sympy as sp

from ._core import Proof, check, symbolic_upto
from ._sym import exp_residual, short

__all__ = [
    "query_temperature_logits",
    "ssa_attention_closed_form",
    "sigmoid_temperature",
    "double_exp_coefficient",
    "query_temperature_row_scale",
    "unit_temperature_vanilla",
    "sigmoid_positive",
    "double_exp_positive",
]


def query_temperature_logits(tau, q, keys, scale):
    r"""Logits of one query with temperature: :math:`\tau\,(q^\top k_j)\cdot\mathrm{scale}`."""
    return [tau * scale * sum(qa * ka for qa, ka in zip(q, k)) for k in keys]


def ssa_attention_closed_form(Q, K, V, tau, nu):
    r""":math:`\mathrm{softmax}_{\text{rows}}(\mathrm{diag}(\tau)QK^\top/\sqrt d)\,\mathrm{diag}(\nu)V`."""
    d = Q.shape[1]
    logits = sp.diag(*tau) * Q * K.T / sp.sqrt(d)
    weights = sp.Matrix(logits.shape[0], logits.shape[1], lambda i, j: sp.exp(logits[i, j]))
    weights = sp.Matrix(weights.shape[0], weights.shape[1], lambda i, j: weights[i, j] / sum(weights.row(i)))
    return weights * sp.diag(*nu) * V


def sigmoid_temperature(alpha, n, f):
    r""":math:`1 + \sigma(\alpha)\ln n + \tanh f` (paper form per third-party code, docs/notes/selective_attention.md §1.3)."""
    return 1 + sp.log(n) / (1 + sp.exp(-alpha)) + sp.tanh(f)


def double_exp_coefficient(alpha):
    r""":math:`e^{-e^{\alpha}}` (official code, docs/notes/selective_attention.md §1.7)."""
    return sp.exp(-sp.exp(alpha))


def _softmax(logits):
    ex = [sp.exp(sp.expand(z)) for z in logits]
    total = sp.Add(*ex)
    return [e / total for e in ex]


@check(
    "A1-ssa-query-temperature-row-scale",
    symbolic_upto(3),
    "softmax_j((tau q)^T k_j / sqrt d) = softmax_j(tau (q^T k_j / sqrt d)): a query temperature is a row scale",
)
def query_temperature_row_scale(logits=query_temperature_logits, n_max: int = 3, d_max: int = 3) -> Proof:
    proof = Proof(symbolic_upto(n_max))
    tau = sp.Symbol("tau", positive=True)
    bad = []
    for n in range(1, n_max + 1):
        for d in range(1, d_max + 1):
            q = sp.symbols(f"q1:{d + 1}", real=True)
            keys = [sp.symbols(f"k{j}_1:{d + 1}", real=True) for j in range(1, n + 1)]
            scale = 1 / sp.sqrt(d)
            direct = [scale * sum(tau * qa * ka for qa, ka in zip(q, k)) for k in keys]  # (tau q)^T k_j / sqrt d
            claimed = list(logits(tau, q, keys, scale))
            if len(claimed) != n:
                bad.append(f"n={n}, d={d}: {len(claimed)} logits")
                continue
            res = [sp.expand(a - b) for a, b in zip(direct, claimed)]
            if any(r != 0 for r in res):
                bad.append(f"n={n}, d={d}: logit residuals {short(res)}")
                continue
            sres = [exp_residual(a - b) for a, b in zip(_softmax(direct), _softmax(claimed))]
            if any(r != 0 for r in sres):
                bad.append(f"n={n}, d={d}: logit residuals {short(res)}, softmax residuals {short(sres)}")
    proof.require(
        not bad,
        f"(tau q)^T k_j/sqrt(d) - formula_j and the softmax residuals vanish for every n <= {n_max}, d <= {d_max}"
        + (": " + "; ".join(bad) if bad else ""),
    )
    proof.require(tau * (-sp.oo) == -sp.oo, "a masked logit stays masked: tau * (-oo) = -oo for tau > 0")
    return proof


@check(
    "A2-ssa-unit-temperature",
    symbolic_upto(3),
    "tau = nu = 1 is vanilla attention; y_i = sum_j p_ij(tau_i) nu_j v_j (value temperature gates keys)",
)
def unit_temperature_vanilla(attention=ssa_attention_closed_form, n_max: int = 3, d: int = 2) -> Proof:
    proof = Proof(symbolic_upto(n_max))
    failures = {"vanilla": [], "gate": [], "zero": []}
    for n in range(1, n_max + 1):
        for key, text in _unit_temperature_case(attention, n, d).items():
            failures[key].append(f"n={n}: {text}")
    sizes = f"every n <= {n_max} queries and keys, d = {d}"
    proof.require(
        not failures["vanilla"],
        f"tau = nu = 1 minus vanilla softmax(QK^T/sqrt d)V vanishes ({sizes})"
        + (": " + "; ".join(failures["vanilla"]) if failures["vanilla"] else ""),
    )
    proof.require(
        not failures["gate"],
        f"y_i - sum_j p_ij(tau_i) nu_j v_j vanishes ({sizes})"
        + (": " + "; ".join(failures["gate"]) if failures["gate"] else ""),
    )
    proof.require(
        not failures["zero"],
        "nu = 0 gives y = 0, while every row of weights sums to 1"
        + (": " + "; ".join(failures["zero"]) if failures["zero"] else ""),
    )
    return proof


def _unit_temperature_case(attention, n, d) -> dict:
    """Residuals of the three A2 identities for n queries/keys of dimension d (failures only)."""
    Q = sp.Matrix(n, d, lambda i, a: sp.Symbol(f"q{i + 1}_{a + 1}", real=True))
    K = sp.Matrix(n, d, lambda i, a: sp.Symbol(f"k{i + 1}_{a + 1}", real=True))
    V = sp.Matrix(n, d, lambda i, a: sp.Symbol(f"v{i + 1}_{a + 1}", real=True))
    tau = sp.symbols(f"tau1:{n + 1}", positive=True)
    nu = sp.symbols(f"nu1:{n + 1}", real=True)
    scale = 1 / sp.sqrt(d)

    def weights(temps):
        return [_softmax([temps[i] * scale * (Q.row(i) * K.row(j).T)[0, 0] for j in range(n)]) for i in range(n)]

    def residual(mat, ref):
        mat = sp.Matrix(mat)
        if mat.shape != ref.shape:
            return f"shape {mat.shape}"
        for e in mat - ref:
            r = exp_residual(e)
            if r != 0:
                return r
        return sp.Integer(0)

    out = {}
    p1 = weights([1] * n)
    vanilla = sp.Matrix(n, d, lambda i, a: sum(p1[i][j] * V[j, a] for j in range(n)))
    r1 = residual(attention(Q, K, V, [1] * n, [1] * n), vanilla)
    if r1 != 0:
        out["vanilla"] = f"residual {short(r1)}"
    pt = weights(tau)
    gated = sp.Matrix(n, d, lambda i, a: sum(pt[i][j] * nu[j] * V[j, a] for j in range(n)))
    r2 = residual(attention(Q, K, V, list(tau), list(nu)), gated)
    if r2 != 0:
        out["gate"] = f"residual {short(r2)}"
    r3 = residual(attention(Q, K, V, list(tau), [0] * n), sp.zeros(n, d))
    row_sums = [exp_residual(sum(row) - 1) for row in pt]
    if r3 != 0 or any(x != 0 for x in row_sums):
        out["zero"] = f"residual {short(r3)}, row sums - 1 = {row_sums}"
    return out


@check(
    "A3-ssa-sigmoid-temperature-positive",
    "symbolic (general n)",
    "tau = 1 + sigmoid(alpha) ln n + tanh(f) > 0 for all real alpha, finite f, n >= 1; inf tau = 0 (not attained)",
)
def sigmoid_positive(temperature=sigmoid_temperature) -> Proof:
    proof = Proof()
    alpha, f = sp.symbols("alpha f", real=True)
    n = sp.Symbol("n", positive=True)
    a, b = sp.symbols("a b", positive=True)
    m = sp.Symbol("m", nonnegative=True)
    tau = sp.sympify(temperature(alpha, n, f))
    sub = {alpha: -sp.log(a), f: sp.log(b), n: 1 + m}  # e^{-alpha} = a, e^f = b, n = 1 + m

    def positive(expr):
        e = sp.factor(sp.together(sp.sympify(expr).subs(sub).rewrite(sp.exp)))
        return e.is_positive, e

    ok, form = positive(tau)
    proof.require(ok, f"tau with e^-alpha = a > 0, e^f = b > 0, n = 1 + m (m >= 0): {short(form, 200)} > 0")
    sig_log = sp.log(n) / (1 + sp.exp(-alpha))
    ok_lo, _ = positive(tau - sig_log)
    ok_hi, _ = positive(2 + sig_log - tau)
    proof.require(ok_lo and ok_hi, "sigmoid(alpha) ln n < tau < 2 + sigmoid(alpha) ln n")
    inf = sp.limit(tau.subs(n, 1), f, -sp.oo)
    proof.require(inf == 0, f"lim_(f -> -oo) tau(n = 1) = {inf}: inf tau = 0, so only strict positivity holds")
    return proof


@check(
    "A4-ssa-double-exp-coefficient",
    "symbolic limit",
    "g = exp(-exp(alpha)) lies in (0, 1) for every real alpha, with sup 1 and inf 0 not attained",
)
def double_exp_positive(coefficient=double_exp_coefficient) -> Proof:
    proof = Proof()
    alpha = sp.Symbol("alpha", real=True)
    a = sp.Symbol("a", positive=True)  # a = e^alpha
    g = sp.sympify(coefficient(alpha))
    ga = g.subs(alpha, sp.log(a))
    proof.require(ga.is_positive, f"g(alpha = ln a) = {ga} > 0")
    log_g = sp.expand_log(sp.log(ga), force=True)
    proof.require(log_g.is_negative, f"ln g = {log_g} < 0, so g < 1")
    lo, hi = sp.limit(g, alpha, sp.oo), sp.limit(g, alpha, -sp.oo)
    proof.require(lo == 0 and hi == 1, f"lim_(alpha -> oo) g = {lo}, lim_(alpha -> -oo) g = {hi}: range exactly (0, 1)")
    return proof
