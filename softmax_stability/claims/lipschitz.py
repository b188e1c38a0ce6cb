r"""Claims about the Lipschitz constant of softmax attention layers (docs/notes/field.md §2.2).

Instances are single-head layers of :func:`softmax_stability.attention.multi_head_attention`
(``d = 3`` tokens, head dimension 3, no output projection, no biases -- the setting of the
Castin-Ablin-Peyre code) at several sequence lengths ``n`` (2, 4, 16, 64 for the upper bounds;
4, 16, 64 for the sqrt(n) growth).

The measured side is always the layer's Jacobian by ``jax.jacfwd`` through the library's attention
layer, reduced by a dense SVD (exact at these sizes; the matrix-free power iteration of
:func:`softmax_stability.lipschitz.measured_lipschitz` is checked against it in
``tests/test_lipschitz.py``). The bounds come from :mod:`softmax_stability.lipschitz`, which never
calls the layer.

**Structured instances.** Random tokens reach only about :math:`1/\sqrt n` of the upper bounds
(tokens nearly equal: :math:`\|J\| = \|V\|` against :math:`\sqrt n\|V\|`). Every batch therefore
also holds the structured worst cases the library's docstrings describe, with the value map
:math:`V` *aligned* half of the time (rank one, its top left singular vector the attacked direction,
so that :math:`\|V^\top u\| = \|V\|` in :func:`~softmax_stability.lipschitz.adversarial_lower_bound`):

* ``castin`` -- the Castin-Ablin-Peyre adversarial tokens (:func:`~softmax_stability.lipschitz.adversarial_tokens`;
  their code's ``adversarial_data``): one token at :math:`aRu`, the others at :math:`bRu`, at logit gap
  :math:`c`;
* ``shifted`` -- the same pattern moved away from the origin: the others at :math:`x_0 = Su_1`, the odd
  token at :math:`x_0 + r v_1` (:math:`(u_1, \sigma_1, v_1)` the top singular triplet of :math:`A`,
  :math:`rS\sigma_1 = c`). Every query then sees the gap :math:`c = rR`, the bound's own product,
  where the Castin tokens give only half of :math:`rR` to the queries at :math:`bRu`;
* ``balanced`` -- the counterexample of :func:`~softmax_stability.lipschitz.castin_bound`'s
  docstring: :math:`A \propto e_2e_1^\top` and tokens :math:`\pm s e_1`, all logits 0, so the query-side
  term :math:`\mathrm{Cov}(x, Ax)` is all there is; :math:`\|J\|` grows like :math:`s^2` while
  :math:`R = 0` on the query side;
* ``cluster`` -- all tokens equal (:math:`r = 0`): :math:`\|J\| = \|V\|`, where the ``+ n`` term of the
  bounds is all that is left.

The adversaries search the claim's own ratio (the verifier's, so a mutated bound redirects them):
gradient ascent over weights and tokens at ``n = 4``, and at ``n = 16`` a search of the structured
families' gap (or scale) per head, whose best instances are carried to ``n = 64`` at the same softmax
weight on the odd token (gap ``+ ln(63/15)``): a dense Jacobian at ``n = 64`` costs ~0.2 s on 2 CPU
cores, so ``n = 64`` holds a handful of structured instances only.

**What the checks show** (max ratio measured/bound over all instances, seed 0). The data-dependent
bounds are *not* sharp: Castin's reaches 0.707 at ``n = 2`` (coincident tokens, :math:`1/\sqrt 2`),
0.53 at ``n = 4``, 0.40 at ``n = 16`` and 0.36 at ``n = 64`` (castin / shifted tokens near gap
:math:`\ln(n-1)`); the derived bound 0.707, 0.50, 0.50, 0.50 (the balanced tokens approach 1/2 as
their scale grows). Their power is shown by structural mutants (the formula a plausible error would
give), each of which some instance violates. The sqrt(n) lower bound ``L2`` *is* sharp (constant 1,
attained as the gap grows).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability.claims._registry import Claim, Mutant, TightRegime, register
from softmax_stability.claims._sampling import ascend

_D = 3  # token width = head width


def _params(prm):
    return {"wq": prm["wq"], "wk": prm["wk"], "wv": prm["wv"]}


def _layer(prm):
    from softmax_stability.attention import multi_head_attention

    p = _params(prm)
    return lambda x: multi_head_attention(p, x)


def _dense_norm(prm, x=None):
    """||J||_2 of the layer at x by jacfwd + SVD (the measured local Lipschitz constant)."""
    x = prm["x"] if x is None else x
    J = jax.jacfwd(_layer(prm))(x)
    m = x.size
    return jnp.linalg.norm(J.reshape(-1, m), ord=2)


def _head(prm):
    from softmax_stability.lipschitz import head_matrices

    A, V = head_matrices(_params(prm))
    return A[0], V[0]


def _jit(fn):
    from softmax_stability.claims._verify import verifier_compiler_options

    return jax.jit(fn, compiler_options=verifier_compiler_options())


# ---------------------------------------------------------------------------------------------
# instances: random heads, and the structured worst cases (module docstring)


def _rng(key):
    """A NumPy generator seeded by a JAX key: instances are drawn on the host (eager JAX draws of
    many small shapes compile a program each, which cost ~30 s per claim on 2 loaded cores)."""
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def _log_uniform(rng, shape, lo, hi):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), shape))


def _weights(rng, count):
    s = _log_uniform(rng, (count, 1, 1, 1), 0.3, 3.0)  # logit scales from flat to peaked
    shape = (count, _D, 1, _D)
    return {
        "wq": s * rng.standard_normal(shape) / math.sqrt(_D),
        "wk": rng.standard_normal(shape) / math.sqrt(_D),
        "wv": rng.standard_normal(shape) / math.sqrt(_D),
    }


def _one_sided_weights(rng, count):
    """Heads with A = a e_2 e_1^T / sqrt(3) (the counterexample of castin_bound's docstring)."""
    h = rng.standard_normal((count, _D))
    h = h / np.linalg.norm(h, axis=1, keepdims=True)
    a = _log_uniform(rng, (count, 1, 1), 0.3, 3.0)
    e1, e2 = np.eye(_D)[0], np.eye(_D)[1]
    return {
        "wq": (a * e2[None, :, None] * h[:, None, :])[:, :, None, :],
        "wk": (e1[None, :, None] * h[:, None, :])[:, :, None, :],
        "wv": rng.standard_normal((count, _D, 1, _D)) / math.sqrt(_D),
    }


def _top_triplet(A):
    U, s, Vt = jnp.linalg.svd(A)
    return U[:, 0], s[0], Vt[0]


def _castin_x(prm, n, c):
    from softmax_stability.lipschitz import adversarial_direction, adversarial_tokens

    A, _ = _head(prm)
    return adversarial_tokens(A, n, gap=c), adversarial_direction(A)[0]


def _shifted_x(prm, n, c):
    A, _ = _head(prm)
    u1, s1, v1 = _top_triplet(A)
    S = 5.0 * jnp.sqrt(c / s1)  # r / S = 1/25: the odd token stays close to the cluster
    r = c / (S * s1)
    return jnp.tile(S * u1, (n, 1)).at[0].add(r * v1), v1


def _balanced_x(prm, n, s):
    A, _ = _head(prm)
    v1 = _top_triplet(A)[2]  # e_1 for the one-sided heads
    sign = jnp.where(jnp.arange(n) % 2 == 0, 1.0, -1.0)
    return (s * sign)[:, None] * v1[None, :], v1


_FAMILIES = {"castin": _castin_x, "shifted": _shifted_x, "balanced": _balanced_x}


def _aligned(prm, h, y):
    """The head with its value map replaced by ||W_V||_2 h y^T (rank one, top left direction h)."""
    s = jnp.linalg.norm(prm["wv"][:, 0, :], ord=2)
    return dict(prm, wv=(s * jnp.outer(h, y / jnp.linalg.norm(y)))[:, None, :])


_FAMILY_INDEX = {name: i for i, name in enumerate(_FAMILIES)}


@functools.lru_cache(maxsize=None)
def _builder(n):
    """Jitted, vmapped (weights, y, c, family index, aligned) -> structured instances at size n,
    gap (scale) c. One program for every family, cached: a claim and all its mutants compile it
    once per process and size."""

    def one(prm, y, c, fam, aligned):
        xs, hs = zip(*(make(prm, n, c) for make in _FAMILIES.values()))
        x, h = jnp.stack(xs)[fam], jnp.stack(hs)[fam]
        wv = jnp.where(aligned, _aligned(prm, h, y)["wv"], prm["wv"])
        return dict(prm, wv=wv, x=x)

    return _jit(jax.vmap(one))


def _family_weights(rng, family, count):
    w = _one_sided_weights(rng, count) if family == "balanced" else _weights(rng, count)
    return w, rng.standard_normal((count, _D))


def _build(family, n, w, y, c, aligned):
    count = np.shape(c)[0]
    out = _builder(n)(w, y, np.asarray(c, np.float64), np.full((count,), _FAMILY_INDEX[family]),
                      np.full((count,), aligned))
    return {k: np.asarray(v) for k, v in out.items()}


def _family_batch(rng, family, n, c, *, aligned):
    """Instances of one structured family at gaps (scales) ``c`` [count], fresh heads."""
    w, y = _family_weights(rng, family, np.shape(c)[0])
    return _build(family, n, w, y, c, aligned)


def _concat(batches):
    return {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in batches[0]}


def _gap_draw(rng, n, count):
    """Logit gaps: half log-uniform on [0.05, 40], half around ln(n - 1) where sqrt(n) growth sets in."""
    wide = _log_uniform(rng, (count - count // 2,), 0.05, 40.0)
    near = math.log(max(n - 1, 1)) + rng.uniform(-1.0, 2.0, count // 2)
    return np.concatenate([wide, np.maximum(near, 0.05)])


def _upper_sample(key, sizes):
    """One batch per (n, per-family count): random heads with random tokens (scales 1e-3..4),
    coincident tokens, and the castin / shifted / balanced families, half with aligned V."""
    rng = _rng(key)
    out = []
    for n, per in sizes:
        rnd = _weights(rng, per)
        rnd["x"] = _log_uniform(rng, (per, 1, 1), 1e-3, 4.0) * rng.standard_normal((per, n, _D))
        clu = _weights(rng, per)
        clu["x"] = np.tile(3.0 * rng.standard_normal((per, 1, _D)), (1, n, 1))
        parts = [rnd, clu]
        for fam in _FAMILIES:
            c = _log_uniform(rng, (per,), 0.1, 10.0) if fam == "balanced" else _gap_draw(rng, n, per)
            half = per // 2
            parts.append(_family_batch(rng, fam, n, c[:half], aligned=True))
            parts.append(_family_batch(rng, fam, n, c[half:], aligned=False))
        out.append(_concat(parts))
    return out


_UPPER_SIZES = [(2, 8), (4, 8), (16, 8), (64, 2)]  # (n, instances per family): 40, 40, 40, 10


def _flatten(prm):
    return np.concatenate([prm[k].reshape(prm[k].shape[0], -1) for k in ("wq", "wk", "wv", "x")], axis=1)


def _unflatten(flat, n):
    k = _D * _D
    w = [flat[i * k:(i + 1) * k].reshape(_D, 1, _D) for i in range(3)]
    return {"wq": w[0], "wk": w[1], "wv": w[2], "x": flat[3 * k:].reshape(n, _D)}


def _ascent_at(key, ratio, n, steps):
    """Gradient ascent (Adam) of ``ratio`` over the weights and tokens at size n, from 2 aligned
    castin, 2 aligned shifted, 2 aligned balanced and 2 random starts."""
    rng = _rng(key)
    starts = [_family_batch(rng, fam, n, np.array(c), aligned=True)
              for fam, c in (("castin", [0.7, 2.0]), ("shifted", [0.7, 2.0]), ("balanced", [0.5, 2.0]))]
    rnd = _weights(rng, 2)
    rnd["x"] = rng.standard_normal((2, n, _D))
    flat0 = jnp.asarray(_flatten(_concat(starts + [rnd])))
    best = np.asarray(ascend(lambda f: ratio(_unflatten(f, n)), flat0, steps=steps, learning_rate=0.05))
    k = 3 * _D * _D
    return {"wq": best[:, :_D * _D].reshape(-1, _D, 1, _D), "wk": best[:, _D * _D:2 * _D * _D].reshape(-1, _D, 1, _D),
            "wv": best[:, 2 * _D * _D:k].reshape(-1, _D, 1, _D), "x": best[:, k:].reshape(-1, n, _D)}


def _family_search(key, ratio, n, heads=4, grid=16):
    """Per structured family (aligned V) and head: the gap (scale) on a log grid that maximises
    ``ratio``, then a finer grid (x e^{+-0.3}) around each head's best.

    Returns, per family, the batch of each head's best instance, its gap and its ratio."""
    evaluate = _jit(jax.vmap(ratio))
    rng = _rng(key)
    found = []
    for fam in _FAMILIES:
        lo, hi = (0.1, 20.0) if fam == "balanced" else (0.05, 40.0)
        w, y = _family_weights(rng, fam, heads)
        w = {k: np.repeat(v, grid, axis=0) for k, v in w.items()}
        y = np.repeat(y, grid, axis=0)
        c = np.tile(np.exp(np.linspace(math.log(lo), math.log(hi), grid)), heads)
        for step in range(2):
            b = _build(fam, n, w, y, c, True)
            r = np.asarray(evaluate(b))
            r = np.where(np.isnan(r), -np.inf, r).reshape(heads, grid)
            i = np.argmax(r, axis=1)
            c_best = c.reshape(heads, grid)[np.arange(heads), i]
            if step == 0:
                c = (c_best[:, None] * np.exp(np.linspace(-0.3, 0.3, grid))[None, :]).reshape(-1)
        pick = np.arange(heads) * grid + i
        found.append(({k: v[pick] for k, v in b.items()}, c_best, r[np.arange(heads), i]))
    return found


def _upper_adversary(key, ratio):
    """(a) gradient ascent of ``ratio`` at n = 4 (:func:`_ascent_at`, 100 steps); (b) the search of
    the structured families at n = 16 (:func:`_family_search`); its best instance per family is
    rebuilt at n = 64 with the same weights and the gap raised by ln(63/15) (same weight
    1/(1 + (n-1)e^{-c}) on the odd token; the balanced scale is kept)."""
    k1, k2 = jax.random.split(key)
    asc = _ascent_at(k1, ratio, 4, steps=100)
    found = _family_search(k2, ratio, 16)
    lifted = []
    for fam, (b, c, r) in zip(_FAMILIES, found):
        i = int(np.argmax(r))
        prm = {k: v[i:i + 1] for k, v in b.items() if k != "x"}
        c64 = c[i:i + 1] if fam == "balanced" else c[i:i + 1] + math.log(63 / 15)
        lifted.append(_build(fam, 64, prm, np.ones((1, _D)), c64, False))  # V stays as aligned at n = 16
    return [asc, _concat([b for b, _, _ in found]), _concat(lifted)]


# ---------------------------------------------------------------------------------------------
# L1: measured <= Castin bound


def _castin(prm):
    from softmax_stability.lipschitz import castin_bound

    # side="max": R_h = max(max_i |A_h^T x_i|, max_i |A_h x_i|). The code's own choice (query side
    # only) is violated for non-symmetric A_h (tests/test_lipschitz.py has explicit counterexamples)
    return castin_bound(_params(prm), prm["x"], side="max")


def _terms(prm):
    """(||V||_2, r, R^q, R^k, n) of the single head, as castin_bound / derived_bound use them
    (the mutants below rebuild altered formulas from them)."""
    from softmax_stability.lipschitz import token_diameter

    A, V = _head(prm)
    x = prm["x"]
    rq = jnp.max(jnp.linalg.norm(x @ A, axis=-1))  # |A^T x_i|
    rk = jnp.max(jnp.linalg.norm(x @ A.T, axis=-1))  # |A x_i|
    return jnp.linalg.norm(V, ord=2), token_diameter(x), rq, rk, x.shape[0]


def _castin_mutant(kind):
    def bound(prm):
        v, r, rq, rk, n = _terms(prm)
        R = jnp.maximum(rq, rk)
        if kind == "no_sqrt_n":  # the bound at n = 1: no growth with n
            return v * jnp.sqrt(2.0 * R**2 * r**2 + 1.0)
        if kind == "Rr":
            return v * jnp.sqrt(R * r * (n + 1) + n)
        if kind == "no_n":
            return v * jnp.sqrt(R**2 * r**2 * (n + 1))
        if kind == "half_v":
            return 0.5 * v * jnp.sqrt(R**2 * r**2 * (n + 1) + n)
        raise ValueError(kind)

    return bound


def _upper_sample_fn(key):
    return _upper_sample(key, _UPPER_SIZES)


register(Claim(
    id="L1-castin-bound",
    family="lipschitz",
    statement=r"\|J_f(X)\|_2 \le \sum_h \|V_h\|_2\sqrt{R_h^2 r^2 (n+1) + n},\ "
              r"r = \max_{i,j}\|x_i - x_j\|,\ R_h = \max_i \max(\|A_h^\top x_i\|, \|A_h x_i\|)",
    source="Castin, Ablin & Peyre 2024 (arXiv:2312.14820), data-dependent bound as computed by "
           "their code (compute_bound, vcastin/how-smooth-is-attention; docs/notes/field.md §2.2 [V]), "
           "with R_h taken over both A_h and A_h^T (side='max'): the code's single side fails for "
           "non-symmetric A_h (finding, see castin_bound); single head, no output projection. "
           "Not sharp: max ratio 0.707 (n = 2), 0.53 (4), 0.40 (16), 0.36 (64) on random, "
           "structured and adversarial instances",
    kind="upper",
    bound=_castin,
    measure=_dense_norm,
    sample=_upper_sample_fn,
    adversary=_upper_adversary,
    sharp=False,
    mutants=(
        Mutant("drop the sqrt(n) growth (n -> 1)", "tighter", _castin_mutant("no_sqrt_n")),
        Mutant("R_h^2 r^2 -> R_h r", "tighter", _castin_mutant("Rr")),
        Mutant("drop the + n term", "tighter", _castin_mutant("no_n")),
        Mutant("||V_h|| -> ||V_h||/2", "tighter", _castin_mutant("half_v")),
    ),
    proof=None,
    numeric_only_reason="the code's data-dependent bound has no derivation in the available "
                        "material (the paper's theorem constant is recalled only, docs/notes/field.md §8.2); "
                        "checked numerically against the autodiff Jacobian",
    # ||J||_2 by jacfwd + SVD: entries carry ~n eps relative error, the SVD ~(3n) eps; the bound a
    # few roundings: 1e-9 is far above both and far below every mutant's margin (>= 9%)
    rtol=1e-9,
))


# ---------------------------------------------------------------------------------------------
# L1b: the proved bound (derived here)


def _derived(prm):
    from softmax_stability.lipschitz import derived_bound

    return derived_bound(_params(prm), prm["x"])


def _derived_mutant(kind):
    def bound(prm):
        v, r, rq, rk, n = _terms(prm)
        if kind == "no_sqrt_n":  # Jensen's sum a_i^2 <= n |E|^2 taken as <= |E|^2
            return v * ((1 + r * rq) + r * rk)
        if kind == "no_one":  # the direct term sum_j P_ij e_j dropped
            return v * (r * rq * math.sqrt(n) + r * rk)
        if kind == "no_key_term":  # the query-side derivative x_i^T A e_j kept, e_i^T A x_j dropped
            return v * (1 + r * rq) * math.sqrt(n)
        if kind == "half_v":
            return 0.5 * v * ((1 + r * rq) * math.sqrt(n) + r * rk)
        raise ValueError(kind)

    return bound


register(Claim(
    id="L1b-attention-derived-bound",
    family="lipschitz",
    statement=r"\|J_f(X)\|_2 \le \sum_h \|V_h\|_2\big((1 + r R^q_h)\sqrt n + r R^k_h\big),\ "
              r"R^q_h = \max_i\|A_h^\top x_i\|,\ R^k_h = \max_i\|A_h x_i\|",
    source="derived here (softmax_stability.lipschitz.derived_bound; covariance form of the softmax "
           "derivative, docs/notes/field.md §1.1). Not sharp: max ratio 0.707 (n = 2), 0.50 (4, 16, 64); "
           "the balanced two-cluster tokens approach 1/2 as their scale grows "
           "(|x_j - m_i| = r/2 there, the proof uses r)",
    kind="upper",
    bound=_derived,
    measure=_dense_norm,
    sample=_upper_sample_fn,
    adversary=_upper_adversary,
    sharp=False,
    mutants=(
        Mutant("drop sqrt(n) (Jensen step without n)", "tighter", _derived_mutant("no_sqrt_n")),
        Mutant("(1 + r R^q) -> r R^q", "tighter", _derived_mutant("no_one")),
        Mutant("drop the r R^k term", "tighter", _derived_mutant("no_key_term")),
        Mutant("||V_h|| -> ||V_h||/2", "tighter", _derived_mutant("half_v")),
    ),
    proof=None,
    numeric_only_reason="a short norm-inequality argument written in the docstring of derived_bound; "
                        "no proofs_check module covers attention layers",
    rtol=1e-9,  # as L1
))


# ---------------------------------------------------------------------------------------------
# L2: sqrt(n) growth at the adversarial input (a lower bound, sharp)


def _growth_threshold(n):
    return max(2.0, math.log(n - 1))


def _sqrt_n_bound(prm, *, power=0.5, threshold=_growth_threshold):
    """sqrt(n-1) ||V^T u|| where the hypothesis g >= max(2, ln(n-1)) holds, else 0 (no claim)."""
    from softmax_stability.lipschitz import adversarial_direction

    A, V = _head(prm)
    u = adversarial_direction(A)[0]
    n = prm["x"].shape[0]
    holds = prm["gap"] >= threshold(n)
    return jnp.where(holds, (n - 1.0) ** power * jnp.linalg.norm(u @ V), 0.0)


def _pattern_weights(rng, count, sign):
    """Heads with w_K = sign w_Q and w_V = c w_Q: A = sign M M^T / sqrt(3) is (semi)definite, so
    the adversarial pattern is (-1, 1) for sign = -1 and (1, 1/2) for sign = +1, and u (top
    eigenvector of M M^T) is V's top left singular vector: ||V^T u|| = ||V||."""
    M = rng.standard_normal((count, _D, 1, _D)) / math.sqrt(_D)
    c = _log_uniform(rng, (count, 1, 1, 1), 0.3, 3.0)
    return {"wq": M, "wk": sign * M, "wv": c * M}


@functools.lru_cache(maxsize=None)
def _castin_builder(n):
    def one(prm, g):
        return dict(prm, x=_castin_x(prm, n, g)[0], gap=g)

    return _jit(jax.vmap(one))


def _castin_batch(w, n, gaps):
    """The Castin adversarial input of each head at the given logit gaps, with ``gap`` kept."""
    return {k: np.asarray(v) for k, v in _castin_builder(n)(w, np.asarray(gaps, np.float64)).items()}


# gaps of the aligned instances: at n = 4 the window [ln 3, 2) where only max(2, .) protects the claim
_L2_GAPS = {4: (0.5, 1.15, 1.3, 1.5, 1.8, 2.0, 5.0, 40.0),
            16: (0.5, 1.5, 2.71, 3.5, 5.0, 8.0, 15.0, 40.0),
            64: (0.5, 4.15, 10.0)}


def _l2_sample(key):
    rng = _rng(key)
    out = []
    for n, gaps in _L2_GAPS.items():
        g = np.asarray(gaps, np.float64)
        parts = [_castin_batch(_pattern_weights(rng, g.size, -1.0), n, g),
                 _castin_batch(_pattern_weights(rng, g.size, 1.0), n, g)]
        if n < 64:  # random heads: any pattern, V not aligned
            parts.append(_castin_batch(_weights(rng, 8), n, _log_uniform(rng, (8,), 0.3, 40.0)))
        out.append(_concat(parts))
    return out


def _l2_adversary(key, ratio):
    """Gradient ascent of ``ratio`` (bound/measure) at n = 4 over the head's weights and the log
    gap, the tokens being the adversarial input of the current head (100 steps, Adam), from 2
    (-1, 1)-pattern, 2 (1, 1/2)-pattern aligned heads and 4 random heads at gaps 1.2..20."""
    n = 4
    rng = _rng(key)
    w = _concat([_pattern_weights(rng, 2, -1.0), _pattern_weights(rng, 2, 1.0), _weights(rng, 4)])
    lg = np.log([1.2, 20.0, 1.5, 20.0, 1.2, 2.0, 5.0, 20.0])
    k = _D * _D
    flat0 = jnp.asarray(np.concatenate([w[name].reshape(8, -1) for name in ("wq", "wk", "wv")] + [lg[:, None]], axis=1))

    def instance(f):
        prm = {name: f[i * k:(i + 1) * k].reshape(_D, 1, _D) for i, name in enumerate(("wq", "wk", "wv"))}
        g = jnp.exp(f[-1])
        return dict(prm, x=_castin_x(prm, n, g)[0], gap=g)

    best = ascend(lambda f: ratio(instance(f)), flat0, steps=100, learning_rate=0.05)
    return [_jit(jax.vmap(instance))(best)]


def _l2_regime(key, ratio=None):
    """(-1, 1) pattern, V aligned, gaps 20 and 40, n = 4, 16, 64.

    Constructed, not searched: on this family ||J|| / ||V|| depends on (n, g) only and decreases
    to its limit sqrt(n-1) as g grows (rows 2..n copy token 1, row 1 the mean of the others), so
    for any bound c(n) ||V^T u|| -- the claim's and its mutants' -- the ratio is largest at the
    largest gap; the instances stay maximisers whatever the bound."""
    rng = _rng(key)
    return [_castin_batch(_pattern_weights(rng, 2, -1.0), n, [20.0, 40.0]) for n in (4, 16, 64)]


register(Claim(
    id="L2-attention-lipschitz-sqrt-n",
    family="lipschitz",
    statement=r"X = (aRu, bRu, \dots, bRu),\ g = R^2 b(a-b)\,u^\top A u \ge \max(2, \ln(n-1))"
              r"\ \Rightarrow\ \|J_f(X)\|_2 \ge \sqrt{n-1}\,\|V^\top u\|_2"
              r"\ \ (\text{attained as } g \to \infty,\ (a,b) = (-1,1),\ \|V^\top u\| = \|V\|)",
    source="derived here (softmax_stability.lipschitz.adversarial_lower_bound: ||J|| >= ||J E|| >= "
           "sqrt(n-1) p(1 + (1-p)g) ||V^T u|| and p(1 + (1-p)g) - 1 = (1-p)(pg - 1) >= 0 for p >= 1/2, "
           "g >= 2); the sqrt(n) growth on adversarial inputs is the claim of Castin, Ablin & Peyre "
           "2024 [A: abstract], their input construction read in their code (docs/notes/field.md §2.2 [V]). "
           "Sharper than the earlier 1/2 sqrt(n-1), which no instance came within 2.4x of",
    kind="lower",
    bound=_sqrt_n_bound,
    measure=_dense_norm,
    sample=_l2_sample,
    adversary=_l2_adversary,
    sharp=True,
    tight_regimes=(TightRegime(
        "hard attention, (a, b) = (-1, 1), V aligned",
        "g = 20, 40 at n = 4, 16, 64: p -> 1 and q -> 0, rows 2..n copy token 1, so ||J|| -> "
        "sqrt(n-1) ||V|| = the bound; the sqrt(n-1) growth itself, not a limit where both sides "
        "vanish (with the (1, 1/2) pattern row 1 copies too and the ratio tends to sqrt((n-1)/n): "
        "0.992 at n = 64)",
        _l2_regime),),
    mutants=(
        Mutant("sqrt(n-1) -> n-1 (linear growth)", "tighter", lambda prm: _sqrt_n_bound(prm, power=1.0)),
        Mutant("hypothesis g >= ln(n-1) only (no g >= 2)", "tighter",
               lambda prm: _sqrt_n_bound(prm, threshold=lambda n: math.log(n - 1))),
        Mutant("hypothesis dropped (any gap)", "tighter",
               lambda prm: _sqrt_n_bound(prm, threshold=lambda n: -math.inf)),
    ),
    proof=None,
    numeric_only_reason="a chain-rule computation at a structured input (docstring of "
                        "adversarial_lower_bound); its exact directional derivative is checked "
                        "against jax.jvp by L2b; no proofs_check module covers attention layers",
    rtol=1e-9,  # as L1: the dense ||J||_2 is good to ~1e-13 relative
))


# ---------------------------------------------------------------------------------------------
# L2b: the directional derivative at the adversarial input, in closed form


def _directional(prm):
    """||J_f(X) E|| for E = (u, 0, ..., 0) by jax.jvp through the layer."""
    from softmax_stability.lipschitz import adversarial_direction

    A, _ = _head(prm)
    u = adversarial_direction(A)[0]
    x = prm["x"]
    e = jnp.zeros_like(x).at[0].set(u)
    _, je = jax.jvp(_layer(prm), (x,), (e,))
    return jnp.linalg.norm(je)


def _closed_directional(prm, *, extra_rows=0):
    from softmax_stability.lipschitz import adversarial_lower_bound

    A, V = _head(prm)
    return adversarial_lower_bound(A, V, prm["x"].shape[0] + extra_rows, gap=prm["gap"])


def _without_row_one(prm):
    """The closed form without the moved token's own row (q(1 + (1-q)k))^2 (a mutant)."""
    from softmax_stability.lipschitz import adversarial_direction

    A, V = _head(prm)
    u, a, b, _ = adversarial_direction(A)
    n, g = prm["x"].shape[0], prm["gap"]
    q = jax.nn.sigmoid(g * a / b - math.log(n - 1))  # row 1's gap is R^2 a(a-b) lambda = g a/b
    k = g * (2 * a - b) / b
    row1 = jnp.linalg.norm(u @ V) * q * (1 + (1 - q) * k)
    return jnp.sqrt(jnp.maximum(_closed_directional(prm) ** 2 - row1**2, 0.0))


def _l2b_sample(key):
    rng = _rng(key)
    return [_castin_batch(_weights(rng, count), n, _log_uniform(rng, (count,), 0.05, 40.0))
            for n, count in ((2, 16), (16, 16), (64, 8))]


register(Claim(
    id="L2b-adversarial-directional-derivative",
    family="lipschitz",
    statement=r"\|J_f(X)E\|_2^2 = \|V^\top u\|^2\big[(q(1+(1-q)k))^2 + (n-1)(p(1+(1-p)g))^2\big],"
              r"\ E = (u, 0, \dots, 0)",
    source="derived here (softmax_stability.lipschitz.adversarial_lower_bound)",
    kind="equal",
    bound=_closed_directional,
    measure=_directional,
    sample=_l2b_sample,
    adversary=None,
    sharp=False,
    mutants=(
        Mutant("n -> n + 1 (one more copying row)", "perturbed",
               lambda prm: _closed_directional(prm, extra_rows=1)),
        Mutant("drop the moved token's own row", "perturbed", _without_row_one),
    ),
    proof=None,
    numeric_only_reason="closed form checked against forward-mode autodiff on every instance; no "
                        "proofs_check module covers attention layers",
    # both sides are O(1..10) sums of a few float64 terms; observed agreement ~1e-15 relative
    rtol=1e-10,
    atol=1e-12,
))
