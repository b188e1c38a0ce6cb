"""A training step of a small Flax NNX transformer: this library's ``attention_fn`` against Flax's own.

Both models are built from the same seed (identical parameters); the only difference is
``attention_fn=softmax_stability.frameworks.flax.Attention("softmax")`` against Flax's default
``nnx.dot_product_attention``. Each step (forward, backward, SGD update) is jitted once; the
timings interleave the two models, ``--repeats`` rounds of ``--steps`` steps each, and report the
median per-step time of each and their ratio (library / Flax). Compile time is reported apart.

    PYTHONPATH=. python benchmarks/bench_frameworks.py [--batch 16 --length 128 --d 64 --heads 4 --blocks 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from softmax_stability.frameworks.flax import Attention


class Block(nnx.Module):
    def __init__(self, d, heads, attention_fn, rngs):
        self.ln1 = nnx.LayerNorm(d, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(heads, d, decode=False, rngs=rngs, attention_fn=attention_fn)
        self.ln2 = nnx.LayerNorm(d, rngs=rngs)
        self.mlp1 = nnx.Linear(d, 4 * d, rngs=rngs)
        self.mlp2 = nnx.Linear(4 * d, d, rngs=rngs)

    def __call__(self, x):
        x = x + self.attn(self.ln1(x), is_causal=True)
        return x + self.mlp2(jax.nn.gelu(self.mlp1(self.ln2(x))))


class LM(nnx.Module):
    def __init__(self, vocab, d, heads, blocks, attention_fn, seed):
        rngs = nnx.Rngs(seed)
        self.embed = nnx.Embed(vocab, d, rngs=rngs)
        self.blocks = nnx.List([Block(d, heads, attention_fn, rngs) for _ in range(blocks)])
        self.out = nnx.Linear(d, vocab, rngs=rngs)

    def __call__(self, t):
        x = self.embed(t)
        for b in self.blocks:
            x = b(x)
        return self.out(x)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args(argv)
    tok = jax.random.randint(jax.random.PRNGKey(1), (a.batch, a.length + 1), 0, a.vocab)
    x, y = tok[:, :-1], tok[:, 1:]

    def build(fn):
        model = LM(a.vocab, a.d, a.heads, a.blocks, fn, seed=0)
        opt = nnx.Optimizer(model, optax.sgd(1e-3), wrt=nnx.Param)

        @nnx.jit
        def step(model, opt, x, y):
            def loss_fn(m):
                return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()
            loss, g = nnx.value_and_grad(loss_fn)(model)
            opt.update(model, g)
            return loss

        # nnx.cached_partial: the graph traversal of nnx.jit is paid once, as in a real loop
        return nnx.cached_partial(step, model, opt)

    runs = {"library": build(Attention("softmax")), "flax": build(nnx.dot_product_attention)}
    compile_s = {}
    for name, f in runs.items():
        t = time.perf_counter()
        jax.block_until_ready(f(x, y))
        compile_s[name] = time.perf_counter() - t
    per = {name: [] for name in runs}
    for _ in range(a.repeats):
        for name, f in runs.items():
            t = time.perf_counter()
            for _ in range(a.steps):
                loss = f(x, y)
            jax.block_until_ready(loss)
            per[name].append((time.perf_counter() - t) / a.steps)
    med = {name: float(np.median(v)) for name, v in per.items()}
    res = {"sizes": vars(a), "machine": cpu_model(), "cores": jax.device_count() and __import__("os").cpu_count(),
           "backend": jax.default_backend(), "jax": jax.__version__,
           "flax": __import__("flax").__version__,
           "median_step_ms": {k: 1e3 * v for k, v in med.items()},
           "compile_s": compile_s, "ratio_library_over_flax": med["library"] / med["flax"]}
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
