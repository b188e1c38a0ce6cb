"""Critical attention scaling, in the one form the library's closed forms state exactly.

Chen, Lin, Polyanskiy & Rigollet 2025 (arXiv:2510.05554) show a phase transition of attention at
the inverse temperature :math:`\\beta_n = \\gamma\\log n`, with a critical :math:`\\gamma_c = 1/(1-\\rho)` in
their model (the team's notes record this from the abstract only [unconfirmed]). Their theorem --
random tokens in finite dimension, its exact assumptions and conclusions -- is **not** checked here.
What is checked is its equiangular (infinite-dimension) idealisation, where everything is exact:
:math:`n` unit tokens with pairwise inner products :math:`\\rho` make every row of
:math:`\\mathrm{softmax}(\\beta XX^\\top)` the needle model with gap :math:`1 - \\rho`, and self-attention
scales every distance between tokens by exactly
:math:`s = p(1 - e^{-\\beta(1-\\rho)})` (:func:`softmax_stability.dilution.equiangular_contraction`).

* ``CS1`` -- that identity, measured on explicit token vectors with the library's softmax, at
  :math:`\\beta = \\gamma\\ln n` on both sides of and at :math:`\\gamma_c` (a surrogate, labelled as such).
  Its limit :math:`s \\to 0, 1/2, 1` as :math:`\\gamma <, =, > \\gamma_c` (token collapse vs identity-like
  attention) is derived in ``proofs_check`` ``recent_theory.equiangular_contraction``; numerically it
  is the needle limit that ``DL1b-ssmax-needle-limit`` checks (gap :math:`1-\\rho`, slope :math:`\\gamma`),
  so it is not checked again here.

Derivation: docs/derivations/recent_theory.md#critical-scaling.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability.claims._registry import Claim, Mutant, register

FAMILY = "critical_scaling"
_SIZES = ((8, 24), (128, 12))  # (n tokens, instances)


def _rng(key, *salt: int) -> np.random.Generator:
    """A NumPy generator seeded by a JAX key (eager sampling: no per-op compilation)."""
    data = np.asarray(jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key)
    return np.random.default_rng([int(x) for x in data.ravel()] + list(salt))


def _tokens(n: int, rho: float) -> np.ndarray:
    """n unit vectors in R^n with pairwise inner products rho: the rows of the symmetric square root
    of the Gram matrix (1 - rho) I + rho 11^T, x_i = sqrt(1 - rho) e_i + c 1."""
    c = (np.sqrt(1.0 + (n - 1) * rho) - np.sqrt(1.0 - rho)) / n
    return np.sqrt(1.0 - rho) * np.eye(n) + c


def _sample(key):
    rng = _rng(key)
    out = []
    for n, count in _SIZES:
        rho = rng.uniform(-0.9 / (n - 1), 0.9, count)
        # gamma (1 - rho) in (0.1, 0.95), exactly 1, and (1.05, 3): below, at and above gamma_c
        third = count // 3
        g = np.concatenate([rng.uniform(0.1, 0.95, third), np.ones(third), rng.uniform(1.05, 3.0, count - 2 * third)])
        gamma = g / (1.0 - rho)
        out.append({"x": np.stack([_tokens(n, r) for r in rho]), "rho": rho, "gamma": gamma})
    return out


def _beta(prm):
    from softmax_stability.temperature import ssmax

    return ssmax(prm["x"].shape[0], prm["gamma"])  # beta = gamma ln n, the critical scaling


def _measure(prm):
    """Largest ratio ||y_i - y_{i+1}|| / ||x_i - x_{i+1}|| over the n cyclic pairs of tokens, with
    Y = softmax(beta X X^T) X by the library's softmax on the explicit vectors."""
    from softmax_stability.maps import softmax

    x = prm["x"]
    y = softmax(x @ x.T, beta=_beta(prm)) @ x
    dy = jnp.linalg.norm(y - jnp.roll(y, -1, axis=0), axis=-1)
    dx = jnp.linalg.norm(x - jnp.roll(x, -1, axis=0), axis=-1)
    return jnp.max(dy / dx)


def _contraction(prm, rho=None, n_shift: float = 0.0):
    from softmax_stability.dilution import equiangular_contraction

    n = prm["x"].shape[0]
    return equiangular_contraction(n + n_shift, prm["rho"] if rho is None else rho, _beta(prm))


def _needle_only(prm):  # s -> p: the weight on the token itself, the others' weight q forgotten
    from softmax_stability.dilution import needle_probability

    return needle_probability(prm["x"].shape[0], 1.0 - prm["rho"], _beta(prm))


register(Claim(
    id="CS1-equiangular-contraction",
    family=FAMILY,
    statement=r"x_i^\top x_j = \rho\ (i\ne j),\ \|x_i\| = 1,\ y = \mathrm{softmax}(\beta XX^\top)X,\ "
              r"\beta = \gamma\ln n:\ \|y_i - y_j\| = s\,\|x_i - x_j\|,\ s = p\,(1 - e^{-\beta(1-\rho)}),\ "
              r"p = \frac{1}{1+(n-1)e^{-\beta(1-\rho)}};\ \gamma(1-\rho) \in [0.1, 3]\ (<, =, > 1),\ n \in \{8, 128\}"
              r"\ (\text{surrogate: equiangular tokens; } s \to 0, \tfrac12, 1 \text{ as } \gamma <,=,> "
              r"\gamma_c = \tfrac{1}{1-\rho} \text{ derived symbolically only})",
    source="derived here (docs/derivations/recent_theory.md#critical-scaling): the exact equiangular "
           "idealisation of Chen, Lin, Polyanskiy & Rigollet 2025 (arXiv:2510.05554), whose critical "
           "gamma_c = 1/(1-rho) is recorded in the team's notes from the abstract [unconfirmed]; the "
           "paper's theorem (random tokens, finite dimension) is not checked",
    kind="equal",
    bound=_contraction,
    measure=_measure,
    sample=_sample,
    mutants=(
        Mutant("gap 1 - rho -> 1 + rho", "perturbed", lambda prm: _contraction(prm, rho=-prm["rho"])),
        Mutant("s -> p (the other tokens' weight q forgotten)", "perturbed", _needle_only),
        Mutant("n - 1 -> n in the needle weight", "perturbed", lambda prm: _contraction(prm, n_shift=1.0)),
    ),
    proof="recent_theory.equiangular_contraction",
    # Gram entries carry ~1 ulp, times beta <= 3 ln(128)/0.1 ~ 150: relative weight errors <= ~4e-14; the
    # output differences y_i - y_j of two 128-term sums lose ~1e-16 absolute against s >= ~4e-3 (<= 3e-14
    # relative). Observed: at most 4.2e-14 relative over five seeds; rtol 1e-11 leaves a margin of ~240
    rtol=1e-11, atol=0.0,
))
