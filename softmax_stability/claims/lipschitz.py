"""Claims about the Lipschitz constant of softmax attention layers (anchors.md §2.2).

Instances are single-head layers of :func:`softmax_stability.attention.multi_head_attention`
(``d = 3`` tokens, head dimension 3, no output projection, no biases -- the setting of the
Castin-Ablin-Peyre code) with random weights and tokens at random scales.

The measured side is always the layer's Jacobian by ``jax.jacfwd`` through the library's attention
layer, reduced by a dense SVD (exact at these sizes; the matrix-free power iteration of
:func:`softmax_stability.lipschitz.measured_lipschitz` is checked against it in
``tests/test_lipschitz.py``). The bounds come from :mod:`softmax_stability.lipschitz`, which never
calls the layer.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from softmax_stability.claims._registry import Claim, register
from softmax_stability.claims._sampling import ascend, log_uniform

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


def _weights(key, count):
    kq, kk, kv, ks = jax.random.split(key, 4)
    s = log_uniform(ks, (count, 1, 1, 1), 0.3, 3.0)  # logit scales from flat to peaked
    shape = (count, _D, 1, _D)
    return {
        "wq": s * jax.random.normal(kq, shape, jnp.float64) / math.sqrt(_D),
        "wk": jax.random.normal(kk, shape, jnp.float64) / math.sqrt(_D),
        "wv": jax.random.normal(kv, shape, jnp.float64) / math.sqrt(_D),
    }


def _random_batches(key, sizes):
    out = []
    for i, (n, count) in enumerate(sizes):
        k = jax.random.fold_in(key, i)
        kw, kx, ks = jax.random.split(k, 3)
        batch = _weights(kw, count)
        scale = log_uniform(ks, (count, 1, 1), 0.1, 4.0)
        batch["x"] = scale * jax.random.normal(kx, (count, n, _D), jnp.float64)
        out.append(batch)
    return out


def _adversarial_inputs(batch, n, gaps):
    """Castin-Ablin-Peyre adversarial tokens of each instance's head at the given logit gaps."""
    from softmax_stability.lipschitz import adversarial_tokens, head_matrices

    def one(wq, wk, wv, gap):
        A, _ = head_matrices({"wq": wq, "wk": wk, "wv": wv})
        return adversarial_tokens(A[0], n, gap=gap)

    from softmax_stability.claims._verify import verifier_compiler_options

    return jax.jit(jax.vmap(one), compiler_options=verifier_compiler_options())(
        batch["wq"], batch["wk"], batch["wv"], gaps)


# ---------------------------------------------------------------------------------------------
# L1: measured <= Castin bound


def _castin(prm):
    from softmax_stability.lipschitz import castin_bound

    # side="max": R_h = max(max_i |A_h^T x_i|, max_i |A_h x_i|). The code's own choice (query side
    # only) is violated for non-symmetric A_h (tests/test_lipschitz.py has explicit counterexamples)
    return castin_bound(_params(prm), prm["x"], side="max")


def _l1_sample(key):
    return _random_batches(key, [(6, 32)])


def _unflatten(flat, n):
    k = _D * _D
    w = [flat[i * k:(i + 1) * k].reshape(_D, 1, _D) for i in range(3)]
    return {"wq": w[0], "wk": w[1], "wv": w[2], "x": flat[3 * k:].reshape(n, _D)}


def _castin_tokens(key):
    """The Castin-Ablin-Peyre adversarial tokens of random heads at logit gaps 0.3..30."""
    n = 6
    (base,) = _random_batches(key, [(n, 16)])
    gaps = log_uniform(jax.random.fold_in(key, 7), (16,), 0.3, 30.0)
    return dict(base, x=_adversarial_inputs(base, n, gaps))


def _l1_adversary(key, ratio=None):
    """(a) :func:`_castin_tokens`; (b) gradient ascent of measured/bound jointly over the weights
    and tokens, matrix-free: the objective is ||J v|| / bound with the unit direction v ascended
    too, whose supremum over v is ||J||_2 / bound (Adam, 80 steps, 8 random starts)."""
    k1, k2, k3 = jax.random.split(key, 3)
    m = 3
    (start,) = _random_batches(k2, [(m, 8)])
    direction = jax.random.normal(k3, (8, m * _D), jnp.float64)
    flat0 = jnp.concatenate([start[k].reshape(8, -1) for k in ("wq", "wk", "wv", "x")]
                            + [direction], axis=1)

    def ratio(flat):  # ||J v|| / bound over (weights, tokens, unit v): its sup is sigma / bound
        prm = _unflatten(flat[:-m * _D], m)
        v = flat[-m * _D:].reshape(m, _D)
        _, jv = jax.jvp(_layer(prm), (prm["x"],), (v / jnp.linalg.norm(v),))
        return jnp.linalg.norm(jv) / _castin(prm)

    best = ascend(ratio, flat0, steps=80, learning_rate=0.05)
    asc = jax.vmap(lambda f: _unflatten(f[:-m * _D], m))(best)
    return [_castin_tokens(k1), asc]


register(Claim(
    id="L1-castin-bound",
    family="lipschitz",
    statement=r"\|J_f(X)\|_2 \le \sum_h \|V_h\|_2\sqrt{R_h^2 r^2 (n+1) + n},\ "
              r"r = \max_{i,j}\|x_i - x_j\|,\ R_h = \max_i \max(\|A_h^\top x_i\|, \|A_h x_i\|)",
    source="Castin, Ablin & Peyre 2024 (arXiv:2312.14820), data-dependent bound as computed by "
           "their code (compute_bound, vcastin/how-smooth-is-attention; anchors.md §2.2 [V]), "
           "with R_h taken over both A_h and A_h^T (side='max'): the code's single side fails for "
           "non-symmetric A_h (finding, see castin_bound); single head, no output projection",
    kind="upper",
    bound=_castin,
    measure=_dense_norm,
    sample=_l1_sample,
    adversary=_l1_adversary,
    sharp=False,
    proof=None,
    numeric_only_reason="the code's data-dependent bound has no derivation in the available "
                        "material (the paper's theorem constant is recalled only, anchors.md §8.2); "
                        "checked numerically against the autodiff Jacobian",
    rtol=1e-9,
))


# ---------------------------------------------------------------------------------------------
# L2: sqrt(n) growth at the adversarial input


def _head(prm):
    from softmax_stability.lipschitz import head_matrices

    A, V = head_matrices(_params(prm))
    return A[0], V[0]


def _sqrt_n_bound(prm):
    from softmax_stability.lipschitz import adversarial_direction

    A, V = _head(prm)
    u = adversarial_direction(A)[0]
    n = prm["x"].shape[0]
    return 0.5 * jnp.sqrt(n - 1.0) * jnp.linalg.norm(u @ V)


def _adv_batches(key, sizes, *, at_least_log_n: bool):
    out = []
    for i, (n, count) in enumerate(sizes):
        k = jax.random.fold_in(key, i)
        (batch,) = _random_batches(k, [(n, count)])
        extra = jax.random.uniform(jax.random.fold_in(k, 1), (count,), jnp.float64, 0.0, 10.0)
        if at_least_log_n:  # g >= ln(n-1): p >= 1/2, the regime of the sqrt(n) statement
            gap = math.log(n - 1) + extra
        else:
            gap = log_uniform(jax.random.fold_in(k, 2), (count,), 0.05, 40.0)
        batch["gap"] = gap
        batch["x"] = _adversarial_inputs(batch, n, gap)
        out.append(batch)
    return out


def _l2_sample(key):
    return _adv_batches(key, [(5, 8), (33, 8)], at_least_log_n=True)


register(Claim(
    id="L2-attention-lipschitz-sqrt-n",
    family="lipschitz",
    statement=r"X = (aRu, bRu, \dots, bRu),\ g = R^2 b(a-b)\,u^\top A u \ge \ln(n-1)"
              r"\ \Rightarrow\ \|J_f(X)\|_2 \ge \tfrac12\sqrt{n-1}\,\|V^\top u\|_2",
    source="derived here (softmax_stability.lipschitz.adversarial_lower_bound); the sqrt(n) growth "
           "on adversarial inputs is the claim of Castin, Ablin & Peyre 2024 [A: abstract], their "
           "input construction read in their code (anchors.md §2.2 [V])",
    kind="lower",
    bound=_sqrt_n_bound,
    measure=_dense_norm,
    sample=_l2_sample,
    adversary=None,
    sharp=False,
    proof=None,
    numeric_only_reason="a chain-rule computation at a structured input (docstring of "
                        "adversarial_lower_bound); its exact directional derivative is checked "
                        "against jax.jvp by L2b; no proofs_check module covers attention layers",
    rtol=1e-9,
))


def _directional(prm):
    """||J_f(X) E|| for E = (u, 0, ..., 0) by jax.jvp through the layer."""
    from softmax_stability.lipschitz import adversarial_direction

    A, _ = _head(prm)
    u = adversarial_direction(A)[0]
    x = prm["x"]
    e = jnp.zeros_like(x).at[0].set(u)
    _, je = jax.jvp(_layer(prm), (x,), (e,))
    return jnp.linalg.norm(je)


def _closed_directional(prm):
    from softmax_stability.lipschitz import adversarial_lower_bound

    A, V = _head(prm)
    return adversarial_lower_bound(A, V, prm["x"].shape[0], gap=prm["gap"])


def _l2b_sample(key):
    return _adv_batches(key, [(2, 16), (40, 16)], at_least_log_n=False)


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
    proof=None,
    numeric_only_reason="closed form checked against forward-mode autodiff on every instance; no "
                        "proofs_check module covers attention layers",
    # both sides are O(1..10) sums of a few float64 terms; observed agreement ~1e-15 relative
    rtol=1e-10,
    atol=1e-12,
))


# ---------------------------------------------------------------------------------------------
# L1b: the proved bound (derived here)


def _derived(prm):
    from softmax_stability.lipschitz import derived_bound

    return derived_bound(_params(prm), prm["x"])


register(Claim(
    id="L1b-attention-derived-bound",
    family="lipschitz",
    statement=r"\|J_f(X)\|_2 \le \sum_h \|V_h\|_2\big((1 + r R^q_h)\sqrt n + r R^k_h\big),\ "
              r"R^q_h = \max_i\|A_h^\top x_i\|,\ R^k_h = \max_i\|A_h x_i\|",
    source="derived here (softmax_stability.lipschitz.derived_bound; covariance form of the softmax "
           "derivative, anchors.md §1.1)",
    kind="upper",
    bound=_derived,
    measure=_dense_norm,
    sample=_l1_sample,
    adversary=lambda key, ratio=None: [_castin_tokens(key)],
    sharp=False,
    proof=None,
    numeric_only_reason="a short norm-inequality argument written in the docstring of derived_bound; "
                        "no proofs_check module covers attention layers",
    rtol=1e-9,
))
