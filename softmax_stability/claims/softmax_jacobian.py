"""Claims about the softmax Jacobian :math:`J = \\beta(\\mathrm{diag}(p) - pp^\\top)`.

Every *measure* here is computed independently of the closed form it checks: the Jacobian by
forward-mode autodiff (``jax.jacfwd``/``jax.jvp``) of :func:`_plain_softmax`, a plain
``exp / sum`` expression written in this module, and norms of that matrix by dense linear algebra
(``eigvalsh``, column sums, sign-vector enumeration) or by matrix-free power iteration through it.
Neither :func:`softmax_stability.maps.softmax` nor ``jax.nn.softmax`` is differentiated: both
carry a ``custom_jvp`` that applies :math:`p\\odot t - p(p^\\top t)`, i.e. the closed form under
test, so autodiff through them would compare the formula with itself. The bounds (right-hand
sides) are the library's closed forms (:mod:`softmax_stability.jacobian`) evaluated at the
library's forward pass ``maps.softmax``.

Tolerances: float64 closed forms and dense eigensolvers agree to a few ulps of the largest entry
(<= 1/2 * beta); ``atol=1e-12`` with ``rtol=1e-10`` leaves a 100x margin over the observed error.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability.claims._registry import Claim, register
from softmax_stability.claims._sampling import ascend, logit_batches

_DENSE_SIZES = [(2, 32), (16, 64), (128, 8)]


def _jac():
    import softmax_stability.jacobian as jac

    return jac


def _softmax(prm):
    from softmax_stability.maps import softmax

    return softmax(prm["z"], beta=prm["beta"])


def _plain_softmax(z, beta):
    """softmax(beta z) with no custom derivative rule: autodiff differentiates exp and the quotient.

    The max is a constant for differentiation (softmax is shift invariant, so this is exact);
    the sampled logits (|beta z| <= ~1e3) cannot overflow.
    """
    y = beta * z
    e = jnp.exp(y - jax.lax.stop_gradient(jnp.max(y)))
    return e / jnp.sum(e)


def _autodiff_J(prm):
    return jax.jacfwd(lambda z: _plain_softmax(z, prm["beta"]))(prm["z"])


def _closed_J(prm):
    from softmax_stability.jacobian import softmax_jacobian

    return softmax_jacobian(_softmax(prm), beta=prm["beta"])


def _dense(key):
    return logit_batches(key, _DENSE_SIZES)


def _spread(key):  # nearly one-hot to nearly uniform, plus a big row for the matrix-free check
    return logit_batches(key, _DENSE_SIZES) + logit_batches(jax.random.fold_in(key, 1), [(4096, 4)])


register(Claim(
    id="J0-softmax-jacobian-closed-form",
    family="softmax_jacobian",
    statement=r"\partial\,\mathrm{softmax}(\beta z)/\partial z = \beta(\mathrm{diag}(p) - pp^\top)",
    source="derived here (anchors.md §1.1); standard",
    kind="equal",
    bound=lambda prm: 0.0,
    measure=lambda prm: jnp.max(jnp.abs(_autodiff_J(prm) - _closed_J(prm))),
    sample=_dense,
    proof="softmax_jacobian.derivative",
    atol=1e-12,
))

register(Claim(
    id="J1-softmax-symmetric-null",
    family="softmax_jacobian",
    statement=r"J = J^\top,\quad J\mathbf 1 = 0",
    source="derived here (anchors.md §1.1)",
    kind="equal",
    bound=lambda prm: 0.0,
    measure=lambda prm: jnp.maximum(
        jnp.max(jnp.abs(_autodiff_J(prm) - _autodiff_J(prm).T)),
        jnp.max(jnp.abs(_autodiff_J(prm).sum(axis=1)))),
    sample=_dense,
    proof="softmax_jacobian.symmetric_kernel",
    atol=1e-12,
))


def _variance_form(prm):
    from softmax_stability.maps import softmax

    z, beta = prm["z"], prm["beta"]
    v = jnp.sin(3.0 * jnp.arange(z.shape[-1]) + z)  # a fixed direction per instance
    _, jv = jax.jvp(lambda x: _plain_softmax(x, beta), (z,), (v,))  # J v by autodiff
    p = softmax(z, beta=beta)
    var = jnp.sum(p * (v - jnp.sum(p * v)) ** 2)
    return jnp.abs(jnp.vdot(v, jv) - beta * var)


register(Claim(
    id="J1b-softmax-quadratic-variance",
    family="softmax_jacobian",
    statement=r"v^\top J v = \beta\,\mathrm{Var}_{i\sim p}(v_i) \ge 0",
    source="derived here (anchors.md §1.1)",
    kind="equal",
    bound=lambda prm: 0.0,
    measure=_variance_form,
    sample=_dense,
    proof="softmax_jacobian.variance_form",
    atol=1e-12,
))


def _measured_spectral(prm):
    """Largest eigenvalue of the autodiff Jacobian: dense for small n, power iteration (jvp/vjp
    through the plain softmax) beyond."""
    n = prm["z"].shape[-1]
    if n <= 256:
        return jnp.linalg.eigvalsh(_autodiff_J(prm))[-1]
    from softmax_stability.empirical import power_iteration_norm

    return power_iteration_norm(lambda z: _plain_softmax(z, prm["beta"]), prm["z"], tol=1e-13,
                                max_iter=2000).norm


def _adversary_spectral(key, ratio=None):
    """Ascend lambda_max(J) over the logits (beta = 1): it approaches 1/2 by tying two logits and
    pushing the rest down; at n = 2 the maximum 1/2 is attained at equal logits."""
    from softmax_stability.jacobian import softmax_jacobian
    from softmax_stability.maps import softmax

    out = []
    for n in (2, 3, 8):
        z0 = jax.random.normal(jax.random.fold_in(key, n), (8, n), dtype=jnp.float64)
        obj = lambda z: jnp.linalg.eigvalsh(softmax_jacobian(softmax(z)))[-1]  # noqa: E731
        z = ascend(obj, z0, steps=400, learning_rate=0.1)
        out.append({"z": z, "beta": jnp.ones(z.shape[0])})
    return out


register(Claim(
    id="J2-softmax-spectral-half",
    family="softmax_jacobian",
    statement=r"\|J\|_2 \le \beta/2",
    source="derived here (anchors.md §1.3, Popoviciu's variance inequality); Nair 2025 "
           "(arXiv:2510.23012) states the same constant [unconfirmed: abstract only]",
    kind="upper",
    bound=lambda prm: prm["beta"] / 2,
    measure=_measured_spectral,
    sample=_spread,
    adversary=_adversary_spectral,
    sharp=True,
    proof="softmax_jacobian.spectral_half",
    rtol=1e-10,
))


def _spectral_residual(prm):
    from softmax_stability.jacobian import eigenvalues, spectral_norm

    p = _softmax(prm)
    dense = jnp.linalg.eigvalsh(_autodiff_J(prm))
    beta = prm["beta"]
    return jnp.maximum(jnp.abs(spectral_norm(p, beta=beta) - dense[-1]),
                       jnp.max(jnp.abs(eigenvalues(p, beta=beta) - dense)))


register(Claim(
    id="J3-softmax-secular-equation",
    family="softmax_jacobian",
    statement=r"\lambda(J)\ \text{solve}\ 1 = \sum_i p_i^2/(p_i - \lambda/\beta),\ "
              r"\text{interlacing}\ p_{(1)} \ge \lambda_1/\beta \ge p_{(2)} \ge \dots",
    source="derived here (anchors.md §1.4; Golub 1973, Bunch-Nielsen-Sorensen 1978 [citations recalled])",
    kind="equal",
    bound=lambda prm: 0.0,
    measure=_spectral_residual,
    sample=_dense,
    proof="softmax_jacobian.characteristic_polynomial",
    atol=1e-12,
))


def _interlacing_violation(prm):
    p = jnp.sort(_softmax(prm))[::-1]
    lam = jnp.linalg.eigvalsh(_autodiff_J(prm))[::-1] / prm["beta"]
    upper = jnp.max(lam - p)  # lambda_i <= p_(i)
    lower = jnp.max(p[1:] - lam[:-1]) if p.shape[0] > 1 else 0.0  # lambda_i >= p_(i+1)
    return jnp.maximum(jnp.maximum(upper, lower), 0.0)


register(Claim(
    id="J3b-softmax-interlacing",
    family="softmax_jacobian",
    statement=r"p_{(1)} \ge \lambda_1/\beta \ge p_{(2)} \ge \lambda_2/\beta \ge \dots \ge p_{(n)} \ge \lambda_n = 0",
    source="derived here (anchors.md §1.4; Cauchy interlacing for a rank-one update)",
    kind="equal",
    bound=lambda prm: 0.0,
    measure=_interlacing_violation,
    sample=_dense,
    proof="softmax_jacobian.interlacing",
    atol=1e-12,
))

register(Claim(
    id="J4-softmax-frobenius",
    family="softmax_jacobian",
    statement=r"\|J\|_F^2 = \beta^2\big(\textstyle\sum p_i^2 - 2\sum p_i^3 + (\sum p_i^2)^2\big)",
    source="derived here (anchors.md §1.1)",
    kind="equal",
    bound=lambda prm: _jac().frobenius_norm(
        _softmax(prm), beta=prm["beta"]),
    measure=lambda prm: jnp.linalg.norm(_autodiff_J(prm)),
    sample=_dense,
    proof="softmax_jacobian.frobenius",
    rtol=1e-10, atol=1e-14,
))

register(Claim(
    id="J5-softmax-one-norm",
    family="softmax_jacobian",
    statement=r"\|J\|_{1\to1} = \|J\|_{\infty\to\infty} = \beta \max_i 2p_i(1-p_i)",
    source="derived here (anchors.md §1.5)",
    kind="equal",
    bound=lambda prm: _jac().one_norm(
        _softmax(prm), beta=prm["beta"]),
    measure=lambda prm: jnp.max(jnp.sum(jnp.abs(_autodiff_J(prm)), axis=0)),
    sample=_dense,
    proof="softmax_jacobian.one_norm",
    rtol=1e-10, atol=1e-14,
))


def _adversary_one_half(key, ratio=None):
    # p_1 = 1/2 is reachable with finite logits for any n >= 2: z_1 = ln(n - 1), the rest 0
    out = []
    for n in (2, 5, 64):
        z = jnp.zeros((2, n), dtype=jnp.float64).at[:, 0].set(jnp.log(n - 1.0))
        out.append({"z": z, "beta": jnp.ones(2)})
    return out


register(Claim(
    id="J5b-softmax-one-norm-half",
    family="softmax_jacobian",
    statement=r"\|J\|_{1\to1} \le \beta/2,\ \text{attained when some}\ p_i = 1/2",
    source="derived here (anchors.md §1.5)",
    kind="upper",
    bound=lambda prm: prm["beta"] / 2,
    measure=lambda prm: jnp.max(jnp.sum(jnp.abs(_autodiff_J(prm)), axis=0)),
    sample=_dense,
    adversary=_adversary_one_half,
    sharp=True,
    proof="softmax_jacobian.one_norm",
    rtol=1e-10,
))

_SIGNS = {n: jnp.asarray(np.array(list(itertools.product([-1.0, 1.0], repeat=n)))) for n in range(2, 11)}


def _inf_to_one_bruteforce(prm):
    J = _autodiff_J(prm)
    s = _SIGNS[J.shape[0]]
    return jnp.max(jnp.sum(jnp.abs(s @ J), axis=1))  # J symmetric: ||J s||_1 over all sign vectors


def _small(key):
    return logit_batches(key, [(2, 64), (5, 64), (10, 32)])


register(Claim(
    id="J6-softmax-inf-to-one",
    family="softmax_jacobian",
    statement=r"\|J\|_{\infty\to1} = \beta\max_{S\subseteq[n]} 4p(S)(1-p(S))",
    source="derived here (anchors.md §1.5); Emadi 2026 (arXiv:2602.18849) 'balanced-mass factor' [unconfirmed]",
    kind="equal",
    bound=lambda prm: _jac().inf_to_one_norm(
        _softmax(prm), beta=prm["beta"]),
    measure=_inf_to_one_bruteforce,
    sample=_small,
    proof="softmax_jacobian.inf_to_one",
    rtol=1e-10, atol=1e-14,
))


def _adversary_balanced(key, ratio=None):
    # a subset of mass exactly 1/2: two equal logits (n = 2), or z = (ln 3, 0, 0, 0) -> p_1 = 1/2
    return [{"z": jnp.zeros((2, 2), dtype=jnp.float64), "beta": jnp.ones(2)},
            {"z": jnp.zeros((2, 4), dtype=jnp.float64).at[:, 0].set(jnp.log(3.0)), "beta": jnp.ones(2)}]


register(Claim(
    id="J6b-softmax-inf-to-one-bound",
    family="softmax_jacobian",
    statement=r"\|J\|_{\infty\to1} \le \beta,\ \text{attained when a subset has mass}\ 1/2",
    source="derived here (anchors.md §1.5, semantic_focus.md O3)",
    kind="upper",
    bound=lambda prm: prm["beta"],
    measure=_inf_to_one_bruteforce,
    sample=_small,
    adversary=_adversary_balanced,
    sharp=True,
    proof="softmax_jacobian.inf_to_one",
    rtol=1e-10,
))
