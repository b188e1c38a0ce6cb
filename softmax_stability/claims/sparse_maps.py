"""Claims about the sparsemax and alpha-entmax Jacobians.

Measures are central finite differences (FD) of the *forward* maps of :mod:`softmax_stability.maps`
in float64. They never touch the maps' ``custom_jvp`` rules, which *are* the closed forms under test
(:math:`J = \\mathrm{diag}(s) - ss^\\top/\\mathbf 1^\\top s`), so ``jax.jacfwd`` through the maps would
compare each formula with itself. Bounds are the closed forms of :mod:`softmax_stability.jacobian`.

Step sizes. Both maps are smooth on the regions where their support is constant; the support changes
only where some :math:`g_i = (\\alpha-1)z_i - \\tau` crosses 0 (:math:`g_i = z_i - \\tau` for
sparsemax). Let :math:`m = \\min_i |g_i|` be the distance to the nearest support change. A step
:math:`h e_j` moves :math:`z_j` by :math:`h` and :math:`\\tau` by :math:`(\\alpha-1)h\\,s_j/\\mathbf 1^\\top
s \\le (\\alpha-1)h` (to first order), so every :math:`g_i` by at most :math:`2(\\alpha-1)h`: steps
well below :math:`m` stay on one piece.

* sparsemax is *affine* on a piece (:math:`\\tau = (\\sum_S z - 1)/|S|`, each :math:`g_i` moves by
  :math:`\\le h`), so central differences with :math:`h = \\min(10^{-2}, m/2)` have no truncation
  error; what is left is the forward pass's rounding, ~4e-16 absolute (measured: FD error x h over
  the sampled instances), divided by :math:`h \\ge 5\\cdot10^{-6}`: :math:`\\le 10^{-10}`
  (observed :math:`\\le 1.6\\cdot10^{-12}` on seeds 0-2).
* entmax is analytic on a piece; Richardson-extrapolated central differences
  :math:`(4D(h/2) - D(h))/3` (truncation :math:`O(h^4)`) with :math:`h = \\min(10^{-2}, m/32)`:
  rounding ~1e-16 / h <= 3e-11 for :math:`m \\ge 10^{-4}`, truncation small because
  :math:`h/m \\le 1/32`; observed max error :math:`2.2\\cdot10^{-10}` over 1632 instance-alphas
  (seeds 0-3). The former plain FD at :math:`h = 10^{-6}` needed ``atol = 1e-6``.

Instances nearer than :math:`m_{\\min}` to a support change (:math:`10^{-5}` for sparsemax,
:math:`10^{-4}` for entmax; about 0.2% of random draws) are not compared (residual 0, ratio 0):
there the map is not differentiable at FD resolution. Adversaries move off-support logits away from
the threshold (which changes neither the map nor its Jacobian) so that their instances are compared.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from softmax_stability.claims._registry import Claim, register
from softmax_stability.claims._sampling import ascend, logit_batches

_ALPHAS = (1.25, 1.5, 1.75)
_SIZES = [(3, 64), (16, 64), (100, 8)]
_SPARSEMAX_MIN_MARGIN = 1e-5
_ENTMAX_MIN_MARGIN = 1e-4


def _batches(key):
    return logit_batches(key, _SIZES, scale=(0.05, 5.0), with_beta=False)


def _central(f, z, h):
    """Central differences of the forward map, one column per coordinate: (f(z+he) - f(z-he)) / 2h."""
    eye = jnp.eye(z.shape[-1], dtype=z.dtype)
    cols = jax.vmap(lambda e: (f(z + h * e) - f(z - h * e)) / (2 * h))(eye)
    return cols.T


def _sparsemax_fd(z):
    """FD Jacobian of sparsemax at ``z`` (exact on the affine piece) and whether it is compared."""
    from softmax_stability.maps import sparsemax

    p = sparsemax(z)
    j = jnp.argmax(p)
    margin = jnp.min(jnp.abs(z - (z[j] - p[j])))  # tau = z_j - p_j on the support
    h = jnp.minimum(1e-2, margin / 2)
    return _central(sparsemax, z, h), p, margin >= _SPARSEMAX_MIN_MARGIN


def _entmax_fd(z, alpha):
    """Richardson-extrapolated FD Jacobian of alpha-entmax at ``z`` and whether it is compared."""
    from softmax_stability.maps import entmax

    f = lambda x: entmax(x, alpha)  # noqa: E731
    p = f(z)
    j = jnp.argmax(p)
    tau = (alpha - 1) * z[j] - p[j] ** (alpha - 1)  # g_j = p_j^(alpha-1) on the support
    margin = jnp.min(jnp.abs((alpha - 1) * z - tau))
    h = jnp.minimum(1e-2, margin / 32)
    J = (4 * _central(f, z, h / 2) - _central(f, z, h)) / 3
    return J, p, margin >= _ENTMAX_MIN_MARGIN


def _sparsemax_residual(prm):
    from softmax_stability.jacobian import sparsemax_jacobian

    fd, p, ok = _sparsemax_fd(prm["z"])
    return jnp.where(ok, jnp.max(jnp.abs(fd - sparsemax_jacobian(p))), 0.0)


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
    atol=1e-9,  # FD exact on the affine piece; rounding <= 4e-16 / 5e-6 ~ 1e-10 (module docstring)
))


def _sparsemax_spectral(prm):
    fd, _, ok = _sparsemax_fd(prm["z"])
    return jnp.where(ok, jnp.linalg.eigvalsh(fd)[-1], 0.0)  # eigvalsh symmetrises the FD matrix


def _adversary_support_two(key, ratio=None):
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
    # every |S| >= 2 instance is tight, so the FD error shows in full: observed |lambda_FD - 1|
    # <= 8.4e-13 (seeds 0-3); the margin covers steps at their floor h = 5e-6 (~1e-10 per entry)
    rtol=1e-9,
))


def _entmax_residual(prm):
    """max over alpha of max |FD Jacobian - closed form| (Richardson FD, see the module docstring)."""
    from softmax_stability.jacobian import entmax_jacobian

    worst = 0.0
    for a in _ALPHAS:
        fd, p, ok = _entmax_fd(prm["z"], a)
        worst = jnp.maximum(worst, jnp.where(ok, jnp.max(jnp.abs(fd - entmax_jacobian(p, a))), 0.0))
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
    atol=2e-9,  # Richardson FD error observed <= 2.2e-10 (module docstring): 9x margin
))


def _entmax_spectral_ratio(prm):
    """max over alpha of lambda_max(FD Jacobian) / min(max s, sum(s)/2)."""
    from softmax_stability.jacobian import entmax_spectral_bound

    worst = 0.0
    for a in _ALPHAS:
        fd, p, ok = _entmax_fd(prm["z"], a)
        lam = jnp.linalg.eigvalsh(fd)[-1]
        worst = jnp.maximum(worst, jnp.where(ok, lam / entmax_spectral_bound(p, a), 0.0))
    return worst


def _adversary_entmax_spectral(key, ratio=None):
    """Ascend the mean over alpha of ||J_alpha||_2 / bound (closed forms) from random logits.

    The maximum 1 is attained, for every alpha at once, by two equal logits with every other
    logit off the support (then s = (w, w, 0, ...), ||J||_2 = w = max s = sum(s)/2). Off-support
    logits get no gradient, so the ascent leaves them wherever they left the support, possibly
    just below the threshold; they are then moved 1 further down, which changes neither the map
    nor its Jacobian and keeps the FD measurement away from the kink.
    """
    from softmax_stability.jacobian import entmax_spectral_bound, entmax_spectral_norm
    from softmax_stability.maps import entmax

    def objective(z):
        ratios = [entmax_spectral_norm(entmax(z, a), a) / entmax_spectral_bound(entmax(z, a), a)
                  for a in _ALPHAS]
        return sum(ratios) / len(ratios)

    out = []
    for n in (3, 8):
        z0 = jax.random.normal(jax.random.fold_in(key, n), (8, n), dtype=jnp.float64)
        z = ascend(objective, z0, steps=300, learning_rate=0.05)
        off = jnp.all(jnp.stack([entmax(z, a) == 0 for a in _ALPHAS]), axis=0)
        out.append({"z": jnp.where(off, z - 1.0, z)})
    return out


register(Claim(
    id="S3-entmax-spectral-bound",
    family="sparse_maps",
    statement=r"\|J_\alpha\|_2 \le \min\{\max_i s_i,\ \tfrac12\textstyle\sum_i s_i\} \le \min\{1, \tfrac12 k^{\alpha-1}\}",
    source="derived here (anchors.md §3.2, variance form with weights s/1's and Jensen)",
    kind="upper",
    bound=lambda prm: 1.0,  # the measure is already the ratio ||J||_2 / bound, max over alpha
    measure=_entmax_spectral_ratio,
    sample=_batches,
    adversary=_adversary_entmax_spectral,
    sharp=True,  # attained: equal p on a support of size 2
    proof="sparse_maps.entmax_spectral_bound",
    # random draws come within 2e-8 of the bound, so the FD eigenvalue error counts in full:
    # observed |lambda_FD - lambda| / bound <= 2.1e-10 (seeds 0-3), 10x margin
    rtol=2e-9,
))
