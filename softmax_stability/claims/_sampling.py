"""Instance generators and adversaries shared by the claim families."""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import optax

__all__ = ["logit_batches", "log_uniform", "ascend", "split_for"]


def log_uniform(key: jax.Array, shape, lo: float, hi: float) -> jax.Array:
    """Samples whose logarithm is uniform on [ln lo, ln hi] (float64 under x64)."""
    u = jax.random.uniform(key, shape, dtype=jnp.float64)
    return jnp.exp(jnp.log(lo) + u * (jnp.log(hi) - jnp.log(lo)))


def split_for(key: jax.Array, sizes: Sequence[int]) -> list[jax.Array]:
    return list(jax.random.split(key, len(sizes)))


def logit_batches(key: jax.Array, sizes: Sequence[tuple[int, int]], *, scale=(0.01, 30.0),
                  beta=(0.1, 10.0), with_beta: bool = True) -> list[dict]:
    """One batch per ``(n, count)``: ``z`` = scale * N(0, 1) with a log-uniform scale per instance
    (nearly uniform to nearly one-hot rows), and a log-uniform inverse temperature ``beta``."""
    out = []
    for k, (n, count) in zip(split_for(key, sizes), sizes):
        kz, ks, kb = jax.random.split(k, 3)
        s = log_uniform(ks, (count, 1), *scale)
        batch = {"z": s * jax.random.normal(kz, (count, n), dtype=jnp.float64)}
        if with_beta:
            batch["beta"] = log_uniform(kb, (count,), *beta)
        out.append(batch)
    return out


def ascend(objective: Callable[[jax.Array], jax.Array], x0: jax.Array, *, steps: int = 300,
           learning_rate: float = 0.05) -> jax.Array:
    """Maximise ``objective`` from each row of ``x0`` with Adam (vmapped over rows); returns the
    best point of each run (not the last, so a noisy ascent cannot lose what it found)."""
    opt = optax.adam(learning_rate)

    def run(x):
        state = opt.init(x)

        def step(carry, _):
            x, state, best_x, best_v = carry
            v, g = jax.value_and_grad(objective)(x)
            better = v > best_v
            best_x = jnp.where(better, x, best_x)
            best_v = jnp.where(better, v, best_v)
            upd, state = opt.update(-g, state, x)
            return (optax.apply_updates(x, upd), state, best_x, best_v), None

        (x, _, bx, bv), _ = jax.lax.scan(step, (x, state, x, objective(x)), None, length=steps)
        v = objective(x)
        return jnp.where(v > bv, x, bx)

    from softmax_stability.claims._verify import verifier_compiler_options

    return jax.jit(jax.vmap(run), compiler_options=verifier_compiler_options())(x0)
