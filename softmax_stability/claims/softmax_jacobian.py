"""Claims about the softmax Jacobian :math:`J = \\beta(\\mathrm{diag}(p) - pp^\\top)`.

What each *measure* is, and why it is independent of the closed form it checks:

* J0, J1, J1b, J2, J3, J3b, J5b, J6b: the Jacobian of softmax at the logits ``z`` by forward-mode autodiff
  (``jax.jacfwd``/``jax.jvp``) of :func:`softmax_stability.empirical.reference_softmax`, a plain
  ``exp / sum`` expression, then dense linear algebra (``eigvalsh``, column sums, sign-vector
  enumeration) or matrix-free power iteration. Neither :func:`softmax_stability.maps.softmax` nor
  ``jax.nn.softmax`` is differentiated: both carry a ``custom_jvp`` that applies
  :math:`p\\odot t - p(p^\\top t)`, i.e. the closed form under test, so autodiff through them would
  compare the formula with itself.
* J4, J5, J6 (closed-form norms): the dense matrix :math:`\\beta(\\mathrm{diag}\\,p - pp^\\top)` of
  the *stored* ``p = maps.softmax(z)`` (:func:`_stored_J`), reduced by brute force (all entries,
  all column sums, all :math:`2^n` sign vectors). The library's norms are, by their contract
  (:mod:`softmax_stability.jacobian`, "Domain"), the exact norms of that matrix, and J0 ties that
  matrix to the autodiff Jacobian. Checking them against the autodiff Jacobian at ``z`` instead
  mixes in the rounding of ``p``: the stored ``p_max`` is within an ulp of the true one, but
  :math:`1 - p_{\\max}` is not, and the norms of a nearly one-hot row are of the size of
  :math:`1 - p_{\\max}`. (E.g. on a row whose ``p_max`` rounds to 1, the exact
  :math:`\\|J(z)\\|_{\\infty\\to1} = 4\\beta r(1-r)` with :math:`r = \\sum_{j\\ne\\max}p_j`, but the
  stored ``p`` sums to :math:`1 + r` and its matrix has :math:`\\|J\\|_{\\infty\\to1} = 3\\beta r`.)

The bounds (right-hand sides) are the library's closed forms (:mod:`softmax_stability.jacobian`)
evaluated at the library's forward pass ``maps.softmax``.

Identities are written with a value bounded away from 0 where the arithmetic allows it (so that
``x (1 + 1e-6)`` and structural mutants are visible, and the reported ratio ``measure / bound`` is
not a ratio of two rounding errors): the row-scaled Jacobian :math:`J_{ij}/(\\beta p_i) =
\\delta_{ij} - p_j` (J0, J1), whose entries are :math:`O(1)` with absolute errors of a few ulps,
and the interlacing gaps :math:`p_{(k)} - \\lambda_k/\\beta`, which sum to :math:`\\sum p^2 \\ge
1/n` (J3). Each claim's tolerance is derived in a comment beside it.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability.claims._registry import Claim, Mutant, TightRegime, register
from softmax_stability.empirical import reference_softmax
from softmax_stability.claims._sampling import ascend, logit_batches

_DENSE_SIZES = [(2, 32), (16, 64), (128, 8)]
_EPS = float(np.finfo(np.float64).eps)


def _jac():
    import softmax_stability.jacobian as jac

    return jac


def _softmax(prm):
    from softmax_stability.maps import softmax

    return softmax(prm["z"], beta=prm["beta"])


def _autodiff_J(prm):
    return jax.jacfwd(lambda z: reference_softmax(z, prm["beta"]))(prm["z"])


def _stored_J(prm):
    """beta (diag p - p p^T) of the stored p = maps.softmax(z, beta), entrywise to 3 ulps: the
    diagonal as p_i (1 - p_i) (1 - p_i is exact for p_i >= 1/2), not p_i - p_i^2, which cancels
    as p_i -> 1 (an absolute error of an ulp of 1 on an entry of size 1 - p_i)."""
    p = _softmax(prm)
    n = p.shape[-1]
    J = jnp.where(jnp.eye(n, dtype=bool), p * (1 - p), -jnp.outer(p, p))
    return prm["beta"] * J


def _dense(key):
    return logit_batches(key, _DENSE_SIZES)


def _spread(key):  # nearly one-hot to nearly uniform, plus a big row for the matrix-free check
    return logit_batches(key, _DENSE_SIZES) + logit_batches(jax.random.fold_in(key, 1), [(4096, 4)])


def _direction(z):
    """A fixed direction per instance (not an eigenvector: sin of the index and the logits)."""
    return jnp.sin(3.0 * jnp.arange(z.shape[-1]) + z)


def _ascend_logits(ratio, z0, beta, *, steps, learning_rate=0.1, search_beta=False):
    """Maximise the claim's ``ratio`` over the logits of each row of ``z0`` (and over log beta when
    ``search_beta``), from the given starts; returns a batch."""
    x0 = jnp.concatenate([z0, jnp.log(beta)[:, None]], axis=1)
    if search_beta:
        obj = lambda x: ratio({"z": x[:-1], "beta": jnp.exp(x[-1])})  # noqa: E731
        x = ascend(obj, x0, steps=steps, learning_rate=learning_rate)
        return {"z": x[:, :-1], "beta": jnp.exp(x[:, -1])}

    def obj(x):
        return ratio({"z": x[:-1], "beta": jax.lax.stop_gradient(jnp.exp(x[-1]))})

    x = ascend(obj, x0, steps=steps, learning_rate=learning_rate)
    return {"z": x[:, :-1], "beta": beta}


# --------------------------------------------------------------------------------------
# J0, J1: the Jacobian itself, row-scaled to O(1) entries
# --------------------------------------------------------------------------------------

_ROW_MIN = 1e-290  # rows i with p_i below this are left out of the row scaling (J_i. underflows)


def _row_scaled(J, p, beta):
    """M_ij = J_ij / (beta p_i) (= delta_ij - p_j for softmax), on the rows with p_i >= 1e-290; 0
    on the others. Entries are O(1), so their rounding errors are absolute (a few ulps) even on
    nearly one-hot rows, where J itself is tiny."""
    keep = p >= _ROW_MIN
    return jnp.where(keep[:, None], J / (beta * jnp.where(keep, p, 1.0))[:, None], 0.0)


def _weights(n):
    """C = I + W/(2n), W_ij = sin(1 + 2.1 i + 3.7 j) off the diagonal (fixed, generic, not symmetric).

    For M = I - 1 p^T on a set R of kept rows, sum(C * M) >= (|R| - 1) - |R|/(2n) >= 1/2 when
    |R| >= 2; |R| = 1 only when every other p_j < 1e-290, i.e. p_max = 1 exactly, and then both
    sides are ~1e-290 (M_tt = 0, M_tj = -p_j)."""
    i = jnp.arange(n)[:, None]
    j = jnp.arange(n)[None, :]
    W = jnp.where(i == j, 0.0, jnp.sin(1.0 + 2.1 * i + 3.7 * j))
    return jnp.eye(n) + W / (2 * n)


def _weighted(M):
    return jnp.sum(_weights(M.shape[-1]) * M)


def _j0_value(J, p, beta):
    return _weighted(_row_scaled(J, p, beta))


def _j0_bound(prm):
    from softmax_stability.jacobian import softmax_jacobian

    p = _softmax(prm)
    return _j0_value(softmax_jacobian(p, beta=prm["beta"]), p, prm["beta"])


def _j0_measure(prm):
    return _j0_value(_autodiff_J(prm), reference_softmax(prm["z"], prm["beta"]), prm["beta"])


def _j0_mutant_no_beta(prm):
    # the temperature factor in front dropped: J = diag(p) - p p^T
    from softmax_stability.jacobian import softmax_jacobian

    p = _softmax(prm)
    return _j0_value(softmax_jacobian(p, beta=1.0), p, prm["beta"])


def _j0_mutant_beta_outside(prm):
    # the temperature only in front: J = beta (diag q - q q^T) with q = softmax(z), not softmax(beta z)
    from softmax_stability.jacobian import softmax_jacobian
    from softmax_stability.maps import softmax

    p, q = _softmax(prm), softmax(prm["z"])
    return _j0_value(softmax_jacobian(q, beta=prm["beta"]), p, prm["beta"])


# Tolerance (J0, J1): the entries of M are O(1). Autodiff's diagonal p - p^2 and the library's
# (diag(p) - p p^T) each carry an absolute error of <= 1 ulp of p_i^2, i.e. <= eps in M; the two
# forward passes differ by a few ulps per entry of p (|M_tt| = 1 - p_t: <= 2 ulps of 1 apart). With
# the weights of _weights the sum's error is <= ~5 n eps <= 1.4e-13 (n = 128) on a value >= (kept
# rows - 1)/2, i.e. <= ~1e-14 relative; rtol = 1e-13 leaves a 10x margin, atol = 1e-15 covers the
# rows with p_max = 1 exactly, whose value (~1e-290) is below every tolerance.
register(Claim(
    id="J0-softmax-jacobian-closed-form",
    family="softmax_jacobian",
    statement=r"\partial\,\mathrm{softmax}(\beta z)/\partial z = \beta(\mathrm{diag}(p) - pp^\top)",
    source="derived here (docs/notes/field.md §1.1); standard. Checked as "
           r"\sum_{ij} C_{ij} J_{ij}/(\beta p_i) (row-scaled, = \delta_{ij} - p_j) with fixed generic weights C",
    kind="equal",
    bound=_j0_bound,
    measure=_j0_measure,
    sample=_dense,
    mutants=(
        Mutant("beta dropped: J = diag(p) - pp^T", "perturbed", _j0_mutant_no_beta),
        Mutant("beta only in front: p = softmax(z)", "perturbed", _j0_mutant_beta_outside),
    ),
    proof="softmax_jacobian.derivative",
    rtol=1e-13, atol=1e-15,
))


def _a_weights(n):
    return 1.0 + 0.5 * jnp.cos(jnp.arange(n) + 0.3)


def _j1_parts(prm):
    J = _autodiff_J(prm)
    p = reference_softmax(prm["z"], prm["beta"])
    M = _row_scaled(J, p, prm["beta"])  # rows of J
    N = _row_scaled(J.T, p, prm["beta"])  # columns of J, scaled the same way
    return J, p, M, N


def _j1_bound(prm):
    # J symmetric: N = M; J 1 = 0: M 1 = 0. So sum(C N) + a.(M 1) = sum(C M)
    _, _, M, N = _j1_parts(prm)
    return _weighted(N) + jnp.dot(_a_weights(M.shape[-1]), M.sum(axis=1))


def _j1_mutant_null_p(prm):
    # the null vector taken as p (J p = 0) instead of 1
    _, p, M, N = _j1_parts(prm)
    return _weighted(N) + jnp.dot(_a_weights(M.shape[-1]), M @ p)


def _j1_mutant_log_symmetric(prm):
    # the Jacobian of log-softmax, J_ij/(beta p_i) = delta_ij - p_j, taken as the symmetric one
    _, _, M, _ = _j1_parts(prm)
    return _weighted(M.T) + jnp.dot(_a_weights(M.shape[-1]), M.sum(axis=1))


register(Claim(
    id="J1-softmax-symmetric-null",
    family="softmax_jacobian",
    statement=r"J = J^\top,\quad J\mathbf 1 = 0",
    source="derived here (docs/notes/field.md §1.1). Checked as "
           r"\sum_{ij} C_{ij} J_{ji}/(\beta p_i) + \sum_i a_i (J\mathbf 1)_i/(\beta p_i) = "
           r"\sum_{ij} C_{ij} J_{ij}/(\beta p_i) on the autodiff Jacobian, fixed generic C, a",
    kind="equal",
    bound=_j1_bound,
    measure=lambda prm: _weighted(_j1_parts(prm)[2]),
    sample=_dense,
    mutants=(
        Mutant("null vector p: J p = 0", "perturbed", _j1_mutant_null_p),
        Mutant("log-softmax Jacobian symmetric", "perturbed", _j1_mutant_log_symmetric),
    ),
    proof="softmax_jacobian.symmetric_kernel",
    rtol=1e-13, atol=1e-15,  # as J0: O(1) entries of M, errors of a few ulps each
))


def _j1b_direction(prm):
    """The fixed direction, shifted to vanish at the largest logit: on a nearly one-hot row the
    form u^T J u = beta sum_i p_i u_i (u_i - E_p u) then has no cancellation (the big entry's term
    is exactly 0); the identity holds for every direction."""
    z = prm["z"]
    v = _direction(z)
    return v - v[jnp.argmax(z)]


def _pairwise_variance(p, u):
    """Var_p(u) = 1/2 sum_ij p_i p_j (u_i - u_j)^2: non-negative terms, no cancellation."""
    return 0.5 * jnp.sum(p[:, None] * p[None, :] * (u[:, None] - u[None, :]) ** 2)


def _quadratic_form(prm):
    u = _j1b_direction(prm)
    _, ju = jax.jvp(lambda x: reference_softmax(x, prm["beta"]), (prm["z"],), (u,))  # J u by autodiff
    return jnp.vdot(u, ju)


# Tolerance: beta Var_p(u) from non-negative terms is exact to ~n^2 eps relative; u^T (J u) by
# autodiff has J u's entries beta p_i (u_i - E_p u) to a few ulps relative (u_t = 0 at the big entry,
# so E_p u is O(1 - p_max) and nothing cancels on nearly one-hot rows); the sum u^T(Ju) = beta
# (E_p u^2 - (E_p u)^2) cancels by at most (E_p u^2)/Var_p(u), O(1) for a generic direction.
# rtol = 1e-11 covers n^2 eps (n = 128: 3.6e-12); atol = 1e-300 only for rows whose form underflows.
register(Claim(
    id="J1b-softmax-quadratic-variance",
    family="softmax_jacobian",
    statement=r"v^\top J v = \beta\,\mathrm{Var}_{i\sim p}(v_i) \ge 0",
    source="derived here (docs/notes/field.md §1.1)",
    kind="equal",
    bound=lambda prm: prm["beta"] * _pairwise_variance(_softmax(prm), _j1b_direction(prm)),
    measure=_quadratic_form,
    sample=_dense,
    mutants=(
        Mutant("uncentred: beta E_p[v^2]", "perturbed",
               lambda prm: prm["beta"] * jnp.sum(_softmax(prm) * _j1b_direction(prm) ** 2)),
        Mutant("(n-1)/n Var_p", "perturbed",
               lambda prm: prm["beta"] * _pairwise_variance(_softmax(prm), _j1b_direction(prm))
               * (1 - 1 / prm["z"].shape[-1])),
    ),
    proof="softmax_jacobian.variance_form",
    rtol=1e-11, atol=1e-300,
))


# --------------------------------------------------------------------------------------
# J2: ||J||_2 <= beta/2
# --------------------------------------------------------------------------------------


def _measured_spectral(prm):
    """Largest eigenvalue of the autodiff Jacobian: dense for small n, power iteration (jvp/vjp
    through the plain softmax) beyond."""
    n = prm["z"].shape[-1]
    if n <= 256:
        return jnp.linalg.eigvalsh(_autodiff_J(prm))[-1]
    from softmax_stability.empirical import power_iteration_norm

    return power_iteration_norm(lambda z: reference_softmax(z, prm["beta"]), prm["z"], tol=1e-13,
                                max_iter=2000).norm


def _random_starts(key, n, count, scale=2.0):
    kz, kb = jax.random.split(jax.random.fold_in(key, n))
    z0 = scale * jax.random.normal(kz, (count, n), dtype=jnp.float64)
    beta = jnp.exp(jax.random.uniform(kb, (count,), minval=jnp.log(0.1), maxval=jnp.log(10.0),
                                      dtype=jnp.float64))
    return z0, beta


def _adversary_spectral(key, ratio):
    """Ascend the claim's ratio over the logits and log beta from 8 random starts (n = 5)."""
    z0, beta = _random_starts(key, 5, 8)
    return [_ascend_logits(ratio, z0, beta, steps=300, search_beta=True)]


def _two_halves(key, ratio):
    """Starts in the two-point split: two equal logits s above the others (p ~ ((1-r)/2, (1-r)/2, r...)),
    n = 2 (r = 0: the maximum 1/2 is attained at equal logits) and n = 8, then ascend the ratio."""
    out = []
    for n in (2, 8):
        z0, beta = _random_starts(key, n, 8, scale=0.3)
        s = jnp.linspace(1.0, 6.0, 8)[:, None]
        z0 = z0.at[:, 2:].add(-s) / beta[:, None]  # two top logits, the others s/beta lower
        out.append(_ascend_logits(ratio, z0, beta, steps=150))
    return out


register(Claim(
    id="J2-softmax-spectral-half",
    family="softmax_jacobian",
    statement=r"\|J\|_2 \le \beta/2",
    source="derived here (docs/notes/field.md §1.3, Popoviciu's variance inequality); Nair 2025 "
           "(arXiv:2510.23012) states the same constant [unconfirmed: abstract only]",
    kind="upper",
    bound=lambda prm: prm["beta"] / 2,
    measure=_measured_spectral,
    sample=_spread,
    adversary=_adversary_spectral,
    sharp=True,
    tight_regimes=(TightRegime(
        "two halves",
        "the mass split evenly between two entries, p -> (1/2, 1/2, 0, ...), the only place "
        "where lambda_max -> beta/2: Var_p(v) = |v|^2/2 needs (Popoviciu's equality case) v "
        "taking two values +-|v|/sqrt(2) on two entries of mass 1/2 each. Attained at n = 2 with "
        "equal logits, approached at n = 8 as the other six logits go down",
        _two_halves),),
    mutants=(Mutant("beta/2 -> sqrt(beta)/2", "tighter", lambda prm: jnp.sqrt(prm["beta"]) / 2),),
    proof="softmax_jacobian.spectral_half",
    rtol=1e-10,
))


# --------------------------------------------------------------------------------------
# J3, J3b: the spectrum
# --------------------------------------------------------------------------------------


def _gap_weights(n):
    return 1.0 + 0.5 * jnp.sin(2.0 * jnp.arange(n) + 1.0)  # in [0.5, 1.5], generic


def _gap_value(p, lam_desc, top, beta):
    """sum_k c_k (p_(k) - lambda_k/beta) + (p_(1) - top/beta): the interlacing gaps, weighted.

    The gaps are >= 0 and sum to sum p^2 >= 1/n (trace of J = beta (1 - sum p^2)), so the value
    is >= 1/(2n) whatever p, and every eigenvalue enters with its own weight."""
    ps = jnp.sort(p)[::-1]
    n = ps.shape[-1]
    return jnp.sum(_gap_weights(n) * (ps - lam_desc / beta)) + (ps[0] - top / beta)


def _j3_bound(prm):
    from softmax_stability.jacobian import eigenvalues, spectral_norm

    p, beta = _softmax(prm), prm["beta"]
    return _gap_value(p, eigenvalues(p, beta=beta)[::-1], spectral_norm(p, beta=beta), beta)


def _j3_measure(prm):
    lam = jnp.linalg.eigvalsh(_autodiff_J(prm))[::-1]
    return _gap_value(reference_softmax(prm["z"], prm["beta"]), lam, lam[0], prm["beta"])


def _j3_mutant(weight):
    """Eigenvalues of beta (diag p - u u^T) for another rank-one term (dense eigvalsh): the
    secular equation 1 = sum_i u_i^2/(p_i - mu) with the wrong weights."""

    def bound(prm):
        p, beta = _softmax(prm), prm["beta"]
        u = weight(p)
        lam = jnp.linalg.eigvalsh(beta * (jnp.diag(p) - jnp.outer(u, u)))[::-1]
        return _gap_value(p, lam, lam[0], beta)

    return bound


# Tolerance: library eigenvalues are accurate to an absolute eps p_(1) beta (jacobian.eigenvalues:
# roots next to tiny entries, and the zero eigenvalue at the rounding of sum p), the top one
# relatively; eigvalsh of the autodiff Jacobian to ~n eps ||J||_2 <= n eps beta/2; the autodiff
# diagonal p - p^2 and the two forward passes differ by a few ulps of p_(1). In gap units
# (divided by beta) the sum over n eigenvalues errs by <= ~2 n eps <= 6e-14 (n = 128) on a value
# >= 1/(2n) (and >= 1/2 unless p is nearly uniform over many entries): rtol = 1e-11, atol = 0.
register(Claim(
    id="J3-softmax-secular-equation",
    family="softmax_jacobian",
    statement=r"\lambda(J)\ \text{solve}\ 1 = \sum_i p_i^2/(p_i - \lambda/\beta),\ "
              r"\text{interlacing}\ p_{(1)} \ge \lambda_1/\beta \ge p_{(2)} \ge \dots",
    source="derived here (docs/notes/field.md §1.4; Golub 1973, Bunch-Nielsen-Sorensen 1978 [citations recalled]). "
           r"Checked as the weighted interlacing gaps \sum_k c_k (p_{(k)} - \lambda_k/\beta) + "
           r"(p_{(1)} - \|J\|_2/\beta) of the library's eigenvalues and spectral_norm against eigvalsh",
    kind="equal",
    bound=_j3_bound,
    measure=_j3_measure,
    sample=_dense,
    mutants=(
        Mutant("secular weight 1.02 p_i^2", "perturbed", _j3_mutant(lambda p: jnp.sqrt(1.02) * p)),
        Mutant("secular weight p_i (not p_i^2)", "perturbed", _j3_mutant(jnp.sqrt)),
    ),
    proof="softmax_jacobian.characteristic_polynomial",
    rtol=1e-11, atol=0.0,
))


def _interlacing_parts(prm):
    """Eigenvalues/beta (descending) of the autodiff Jacobian, the sorted p, and the slack tau.

    tau = 8 n eps p_(1): eigvalsh's backward error on J/beta (<= ~n eps ||J||_2/beta <= n eps
    p_(1)/... ) plus the autodiff diagonal's rounding (an ulp of p_(1)^2); an eigenvalue within tau
    of its interval counts as inside (near-ties put the interval's ends within rounding)."""
    p = jnp.sort(reference_softmax(prm["z"], prm["beta"]))[::-1]
    lam = jnp.linalg.eigvalsh(_autodiff_J(prm))[::-1] / prm["beta"]
    tau = 8 * p.shape[-1] * _EPS * p[0]
    return lam, p, tau


def _interlacing_clip(lo_frac, hi_frac):
    """sum_k c_k clip(lambda_k/beta, I_k) with I_k = [p_(k+1) + lo_frac g_k, p_(k+1) + hi_frac g_k]
    widened by tau, g_k = p_(k) - p_(k+1), and I_n = [-tau, tau] (lambda_n = 0). The statement is
    lo_frac = 0, hi_frac = 1: then every clip returns its argument and the bound equals the
    measure bit for bit; an eigenvalue outside its interval moves the bound by c_k times its
    distance to it."""

    def bound(prm):
        lam, p, tau = _interlacing_parts(prm)
        below = jnp.concatenate([p[1:], jnp.zeros(1)])
        g = p - below
        lo = jnp.concatenate([(below + lo_frac * g)[:-1], jnp.zeros(1)]) - tau
        hi = jnp.concatenate([(below + hi_frac * g)[:-1], jnp.zeros(1)]) + tau
        return jnp.sum(_gap_weights(p.shape[-1]) * jnp.clip(lam, lo, hi))

    return bound


register(Claim(
    id="J3b-softmax-interlacing",
    family="softmax_jacobian",
    statement=r"p_{(1)} \ge \lambda_1/\beta \ge p_{(2)} \ge \lambda_2/\beta \ge \dots \ge p_{(n)} \ge \lambda_n = 0",
    source="derived here (docs/notes/field.md §1.4; Cauchy interlacing for a rank-one update). Checked as "
           r"\sum_k c_k \lambda_k/\beta = \sum_k c_k\,\mathrm{clip}(\lambda_k/\beta, [p_{(k+1)}, p_{(k)}]) "
           r"(eigvalsh of the autodiff Jacobian, intervals widened by 8 n \epsilon p_{(1)})",
    kind="equal",
    bound=_interlacing_clip(0.0, 1.0),
    measure=lambda prm: jnp.sum(_gap_weights(prm["z"].shape[-1]) * _interlacing_parts(prm)[0]),
    sample=_dense,
    mutants=(
        Mutant("lambda_k in the lower half of [p_(k+1), p_(k)]", "perturbed", _interlacing_clip(0.0, 0.5)),
        Mutant("lambda_k in the upper half of [p_(k+1), p_(k)]", "perturbed", _interlacing_clip(0.5, 1.0)),
    ),
    proof="softmax_jacobian.interlacing",
    # bound = measure bit for bit when the statement holds (the clips return their arguments);
    # the tolerance only has to be below the 1e-6 of the automatic mutant.
    rtol=1e-12, atol=0.0,
))


# --------------------------------------------------------------------------------------
# J4, J5, J6: closed-form norms of the stored p's matrix
# --------------------------------------------------------------------------------------


def _naive_frobenius(quartic):
    """beta sqrt(sum p^2 - 2 sum p^3 + quartic(p)) evaluated directly (for the mutants)."""

    def bound(prm):
        p = _softmax(prm)
        s2, s3 = jnp.sum(p**2), jnp.sum(p**3)
        return prm["beta"] * jnp.sqrt(jnp.maximum(s2 - 2 * s3 + quartic(p, s2), 0.0))

    return bound


def _scaled_norm(J):
    """sqrt(sum J_ij^2), scaled by max |J_ij| so that tiny rows (entries ~1e-200) do not underflow."""
    s = jnp.max(jnp.abs(J))
    s1 = jnp.where(s > 0, s, 1.0)
    return s * jnp.sqrt(jnp.sum((J / s1) ** 2))


# Tolerance (J4, J5, J6): both sides are exact norms of the same matrix (the stored p's), from
# entries correct to 3 ulps: the library's to <= 4e-16 relative (its docstrings, against 40-digit
# references); the dense sums of |J_ij| or J_ij^2 (non-negative terms) to ~n eps relative; the sign
# sums of J6 cancel, but each column's error is <= n eps sum_i |J_ij| and sum_ij |J_ij| <= 4 of
# the value, so <= ~4 n eps relative. n <= 128: <= 1.2e-13; rtol = 1e-12. atol = 1e-300: only
# rows whose norm underflows (p_max = 1 exactly, every other p_j below ~1e-300) rely on it.
register(Claim(
    id="J4-softmax-frobenius",
    family="softmax_jacobian",
    statement=r"\|J\|_F^2 = \beta^2\big(\textstyle\sum p_i^2 - 2\sum p_i^3 + (\sum p_i^2)^2\big)",
    source="derived here (docs/notes/field.md §1.1)",
    kind="equal",
    bound=lambda prm: _jac().frobenius_norm(_softmax(prm), beta=prm["beta"]),
    measure=lambda prm: _scaled_norm(_stored_J(prm)),
    sample=_dense,
    mutants=(
        Mutant("(sum p^2)^2 dropped", "perturbed", _naive_frobenius(lambda p, s2: 0.0)),
        Mutant("(sum p^2)^2 -> sum p^4", "perturbed", _naive_frobenius(lambda p, s2: jnp.sum(p**4))),
    ),
    proof="softmax_jacobian.frobenius",
    rtol=1e-12, atol=1e-300,
))

register(Claim(
    id="J5-softmax-one-norm",
    family="softmax_jacobian",
    statement=r"\|J\|_{1\to1} = \|J\|_{\infty\to\infty} = \beta \max_i 2p_i(1-p_i)",
    source="derived here (docs/notes/field.md §1.5)",
    kind="equal",
    bound=lambda prm: _jac().one_norm(_softmax(prm), beta=prm["beta"]),
    measure=lambda prm: jnp.max(jnp.sum(jnp.abs(_stored_J(prm)), axis=0)),
    sample=_dense,
    mutants=(
        Mutant("2 p(1-p) -> 2.04 p(1-p)", "perturbed",
               lambda prm: 1.02 * _jac().one_norm(_softmax(prm), beta=prm["beta"])),
        # J is PSD, so its trace is its nuclear norm; equal to ||J||_1 only for n = 2
        Mutant("||J||_1 -> trace J = beta (1 - sum p^2)", "perturbed",
               lambda prm: prm["beta"] * jnp.sum(_softmax(prm) * (1 - _softmax(prm)))),
    ),
    proof="softmax_jacobian.one_norm",
    rtol=1e-12, atol=1e-300,  # as J4
))


def _one_half_starts(key, n, count):
    """Logits with p_1 = 1/2 exactly in exact arithmetic: z_1 = log sum_{j>1} exp(beta z_j), / beta."""
    y, beta = _random_starts(key, n, count, scale=1.5)  # beta z ~ 1.5 N(0, 1)
    y = y.at[:, 0].set(jax.scipy.special.logsumexp(y[:, 1:], axis=1))
    return y / beta[:, None], beta


def _adversary_one_norm(key, ratio):
    """Ascend the ratio over the logits and log beta from 8 random starts (n = 6)."""
    z0, beta = _random_starts(key, 6, 8)
    return [_ascend_logits(ratio, z0, beta, steps=300, search_beta=True)]


def _weight_one_half(key, ratio):
    """Starts with one weight exactly 1/2 (the rest random), n = 3 and 16; ascend the ratio."""
    out = []
    for n in (3, 16):
        z0, beta = _one_half_starts(key, n, 8)
        out.append(_ascend_logits(ratio, z0, beta, steps=100))
    return out


register(Claim(
    id="J5b-softmax-one-norm-half",
    family="softmax_jacobian",
    statement=r"\|J\|_{1\to1} \le \beta/2,\ \text{attained when some}\ p_i = 1/2",
    source="derived here (docs/notes/field.md §1.5)",
    kind="upper",
    bound=lambda prm: prm["beta"] / 2,
    measure=lambda prm: jnp.max(jnp.sum(jnp.abs(_autodiff_J(prm)), axis=0)),
    sample=_dense,
    adversary=_adversary_one_norm,
    sharp=True,
    tight_regimes=(TightRegime(
        "a weight of 1/2",
        "one p_i = 1/2, the other half spread arbitrarily: its column sum 2 beta p_i (1 - p_i) = "
        "beta/2 (2x(1-x) <= 1/2 with equality only at x = 1/2)",
        _weight_one_half),),
    mutants=(Mutant("beta/2 -> sqrt(beta)/2", "tighter", lambda prm: jnp.sqrt(prm["beta"]) / 2),),
    proof="softmax_jacobian.one_norm",
    rtol=1e-10,
))

_SIGNS = {n: jnp.asarray(np.array(list(itertools.product([-1.0, 1.0], repeat=n)))) for n in range(2, 11)}


def _inf_to_one_bruteforce(J):
    s = _SIGNS[J.shape[0]]
    return jnp.max(jnp.sum(jnp.abs(s @ J), axis=1))  # J symmetric: ||J s||_1 over all sign vectors


def _small(key):
    return logit_batches(key, [(2, 64), (5, 64), (10, 32)])


def _inf_to_one_singletons(prm):
    # max over S restricted to singletons, = 2 ||J||_{1->1}
    p = _softmax(prm)
    return prm["beta"] * jnp.max(4 * p * (1 - p))


def _inf_to_one_prefixes(prm):
    # max over S restricted to the k largest entries (a greedy shortcut)
    p = jnp.sort(_softmax(prm))[::-1]
    P = jnp.cumsum(p)[:-1]
    return prm["beta"] * jnp.max(4 * P * (1 - P))


register(Claim(
    id="J6-softmax-inf-to-one",
    family="softmax_jacobian",
    statement=r"\|J\|_{\infty\to1} = \beta\max_{S\subseteq[n]} 4p(S)(1-p(S))",
    source="derived here (docs/notes/field.md §1.5); Emadi 2026 (arXiv:2602.18849) 'balanced-mass factor' [unconfirmed]",
    kind="equal",
    bound=lambda prm: _jac().inf_to_one_norm(_softmax(prm), beta=prm["beta"]),
    measure=lambda prm: _inf_to_one_bruteforce(_stored_J(prm)),
    sample=_small,
    mutants=(
        Mutant("S singletons only (= 2 ||J||_1)", "perturbed", _inf_to_one_singletons),
        Mutant("S prefixes of the sorted p only", "perturbed", _inf_to_one_prefixes),
    ),
    proof="softmax_jacobian.inf_to_one",
    rtol=1e-12, atol=1e-300,  # as J4
))


def _subset_half_starts(key, n, count, k):
    """Logits whose first k entries carry mass exactly 1/2 (in exact arithmetic), random within."""
    y, beta = _random_starts(key, n, count, scale=0.3 if k > 1 else 1.5)  # beta z ~ scale N(0, 1)
    shift = jax.scipy.special.logsumexp(y[:, k:], axis=1) - jax.scipy.special.logsumexp(y[:, :k], axis=1)
    y = y.at[:, :k].add(shift[:, None])
    return y / beta[:, None], beta


def _adversary_balanced(key, ratio):
    """Ascend the ratio over the logits and log beta from 8 random starts (n = 6)."""
    z0, beta = _random_starts(key, 6, 8)
    return [_ascend_logits(ratio, z0, beta, steps=200, search_beta=True)]


def _regime_subset(k, n):
    def instances(key, ratio):
        z0, beta = _subset_half_starts(key, n, 8, k)
        return [_ascend_logits(ratio, z0, beta, steps=100)]

    return instances


register(Claim(
    id="J6b-softmax-inf-to-one-bound",
    family="softmax_jacobian",
    statement=r"\|J\|_{\infty\to1} \le \beta,\ \text{attained when a subset has mass}\ 1/2",
    source="derived here (docs/notes/field.md §1.5, docs/notes/semantic_focus.md O3)",
    kind="upper",
    bound=lambda prm: prm["beta"],
    measure=lambda prm: _inf_to_one_bruteforce(_autodiff_J(prm)),
    sample=_small,
    adversary=_adversary_balanced,
    sharp=True,
    tight_regimes=(
        TightRegime("one entry of mass 1/2",
                    "p_1 = 1/2 (n = 5): S = {1} gives 4 p(S)(1 - p(S)) = 1",
                    _regime_subset(1, 5)),
        TightRegime("a split of small entries",
                    "n = 10, the first 5 entries carry mass 1/2, every entry ~0.1 (beta z within "
                    "0.3 N(0, 1) of its block): the maximum needs a subset of several entries, each "
                    "singleton gives 4 p_i (1 - p_i) <= ~0.6",
                    _regime_subset(5, 10)),
    ),
    mutants=(Mutant("S singletons only: beta max_i 4 p_i (1 - p_i)", "tighter", _inf_to_one_singletons),),
    proof="softmax_jacobian.inf_to_one",
    rtol=1e-10,
))
