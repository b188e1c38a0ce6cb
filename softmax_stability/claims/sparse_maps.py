"""Claims about the sparsemax and alpha-entmax Jacobians.

Measures use forward-mode autodiff through :mod:`softmax_stability.maps` (whose ``custom_jvp`` is
itself the closed form, so the *derivative* claims S1/S2 additionally check the maps' outputs by
central finite differences of the forward pass, which never touches the custom rule).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from softmax_stability.claims._registry import Claim, register
from softmax_stability.claims._sampling import logit_batches

_ALPHAS = (1.25, 1.5, 1.75)
_SIZES = [(3, 64), (16, 64), (100, 8)]


def _batches(key):
    return logit_batches(key, _SIZES, scale=(0.05, 5.0), with_beta=False)


def _fd_jacobian(f, z, h=1e-6):
    """Central differences of the forward map: independent of any custom_jvp rule."""
    eye = jnp.eye(z.shape[-1], dtype=z.dtype)
    cols = jax.vmap(lambda e: (f(z + h * e) - f(z - h * e)) / (2 * h))(eye)
    return cols.T


def _sparsemax_residual(prm):
    from softmax_stability.jacobian import sparsemax_jacobian
    from softmax_stability.maps import sparsemax

    z = prm["z"]
    closed = sparsemax_jacobian(sparsemax(z))
    ad = jax.jacfwd(sparsemax)(z)
    fd = _fd_jacobian(sparsemax, z)
    # FD is exact for a piecewise-linear map unless the step crosses a support change (then the
    # instance sits within 1e-6 of a kink; such draws have probability ~1e-5 and would show here)
    return jnp.maximum(jnp.max(jnp.abs(ad - closed)), jnp.max(jnp.abs(fd - closed)))


register(Claim(
    id="S1-sparsemax-jacobian",
    family="sparse_maps",
    statement=r"J_{\mathrm{sparsemax}} = \mathrm{diag}(s) - ss^\top/|S|,\ s = \mathbf 1_S",
    source="Martins & Astudillo 2016 (arXiv:1602.02068); derived here by implicit differentiation",
    kind="equal",
    bound=lambda prm: 0.0,
    measure=_sparsemax_residual,
    sample=_batches,
    proof="sparse_maps.sparsemax_jacobian",
    atol=1e-8,  # FD of a linear map: rounding ~ eps/h = 2e-10, 40x margin
))


def _sparsemax_spectral(prm):
    from softmax_stability.maps import sparsemax

    return jnp.linalg.eigvalsh(jax.jacfwd(sparsemax)(prm["z"]))[-1]


def _adversary_support_two(key):
    z = jnp.zeros((4, 5), dtype=jnp.float64).at[:, 2:].set(-1.0)  # support {0, 1}, |S| = 2
    return [{"z": z}]


register(Claim(
    id="S1b-sparsemax-spectral-one",
    family="sparse_maps",
    statement=r"\|J_{\mathrm{sparsemax}}\|_2 = 1\ \text{if}\ |S|\ge2\ (\text{a projector}),\ \le 1",
    source="Martins & Astudillo 2016; derived here (anchors.md §3.1)",
    kind="upper",
    bound=lambda prm: 1.0,
    measure=_sparsemax_spectral,
    sample=_batches,
    adversary=_adversary_support_two,
    sharp=True,
    proof="sparse_maps.sparsemax_jacobian",
    rtol=1e-10,
))


def _entmax_residual(prm):
    """Autodiff and finite differences of the forward map against the closed form, max over alpha.

    Central differences (h = 1e-6) are compared only when every logit is at least 1e-3 away from
    the support threshold (|(alpha-1) z_i - tau| >= 1e-3): there p = g^{1/(alpha-1)} is smooth in a
    ball much larger than h and the FD error is <= h^2 |f'''| + eps/h ~ 1e-12 * g^{-5/3} + 1e-10
    <= 1e-7 for alpha <= 1.75. Nearer a support change the FD error of a g^{4/3} branch is
    O(h^{1/3}), which says nothing about the formula.
    """
    from softmax_stability.jacobian import entmax_jacobian
    from softmax_stability.maps import entmax

    z = prm["z"]
    worst = 0.0
    for a in _ALPHAS:
        f = lambda x, a=a: entmax(x, a)  # noqa: E731
        p = f(z)
        closed = entmax_jacobian(p, a)
        worst = jnp.maximum(worst, jnp.max(jnp.abs(jax.jacfwd(f)(z) - closed)))
        j = jnp.argmax(p)
        tau = (a - 1) * z[j] - p[j] ** (a - 1)
        far = jnp.min(jnp.abs((a - 1) * z - tau)) >= 1e-3
        fd = jnp.max(jnp.abs(_fd_jacobian(f, z, 1e-6) - closed))
        worst = jnp.maximum(worst, jnp.where(far, fd, 0.0))
    return worst


register(Claim(
    id="S2-entmax-jacobian",
    family="sparse_maps",
    statement=r"J_{\alpha} = \mathrm{diag}(s) - ss^\top/\mathbf 1^\top s,\ s_i = p_i^{2-\alpha}\ (p_i>0)",
    source="Peters, Niculae & Martins 2019 (entmax package backward pass); derived here by implicit differentiation",
    kind="equal",
    bound=lambda prm: 0.0,
    measure=_entmax_residual,
    sample=_batches,
    proof="sparse_maps.entmax_jacobian",
    atol=1e-6,  # FD bound ~1e-7 (see _entmax_residual), 10x margin
))


def _entmax_spectral_ratio(prm):
    from softmax_stability.jacobian import entmax_spectral_bound
    from softmax_stability.maps import entmax

    z = prm["z"]
    worst = 0.0
    for a in _ALPHAS:
        f = lambda x, a=a: entmax(x, a)  # noqa: E731
        lam = jnp.linalg.eigvalsh(jax.jacfwd(f)(z))[-1]
        worst = jnp.maximum(worst, lam / entmax_spectral_bound(f(z), a))
    return worst


register(Claim(
    id="S3-entmax-spectral-bound",
    family="sparse_maps",
    statement=r"\|J_\alpha\|_2 \le \min\{\max_i s_i,\ \tfrac12\textstyle\sum_i s_i\} \le \min\{1, \tfrac12 k^{\alpha-1}\}",
    source="derived here (anchors.md §3.2, variance form with weights s/1's and Jensen)",
    kind="upper",
    bound=lambda prm: 1.0,  # the measure is already the ratio ||J||_2 / bound, max over alpha
    measure=_entmax_spectral_ratio,
    sample=_batches,
    proof="sparse_maps.entmax_spectral_bound",
    rtol=1e-9,
))
