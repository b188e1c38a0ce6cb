"""Attention benchmark: forward + backward against ``jax.nn.dot_product_attention`` in the same run.

Shape ``[B, T, H, D]`` = ``[4, T, 8, 64]``, float32, causal, T in {512, 1024, 2048}
(``--quick``: T in {128, 256}, fewer repeats; only checks that everything runs). Variants:

* ``baseline``: ``jax.nn.dot_product_attention`` (``implementation=None``; on GPU also ``xla`` and
  ``cudnn`` rows, the latter in bfloat16 as cuDNN requires);
* ``library softmax``: :func:`softmax_stability.attention.dot_product_attention` (default path:
  the same kernel after the argument checks);
* ``library softmax (jnp)``: the library's own softmax path (``implementation="jnp"``);
* ``SSA``: query and value temperatures :math:`1 + \\sigma(\\alpha)\\ln n + \\tanh(u^\\top
  \\mathrm{GELU}(q))` computed and folded in (gradients also to alpha and u);
* ``top-k (method)``: top-k attention, k = 16 and 64, for every threshold method.

Each variant is ``jax.jit(jax.grad(sum(out * g)))`` with respect to q, k, v (and the SSA
parameters). Reported: median wall time over repeats (compile excluded, reported apart), ratio to
the baseline's median, and the compiled program's memory (``memory_analysis()``: temporaries +
arguments + outputs; CPU has no device memory statistics).

Usage::

    python benchmarks/bench_attention.py --quick          # smoke run (prints the table)
    python benchmarks/bench_attention.py                  # full sizes (run on a quiet machine)
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from softmax_stability import attention as A  # noqa: E402

B, N, D = 4, 8, 64


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


SSA_CONFIG = A.SSAConfig(N * D, N)  # sigmoid gain, query + value sites, weight-shared token part


def _ssa_temps(params, q, v, pos):
    """The layer's own temperatures (``attention.ssa_temperatures``) from the projected q and v."""
    n = (pos + 1.0)[None, :, None]
    x = jnp.zeros(q.shape[:2] + (N * D,), q.dtype)  # unused with weight sharing and projections given
    taus = A.ssa_temperatures(params, x, config=SSA_CONFIG, n_query=n, n_key=n,
                              projected={"query": q, "value": v})
    return taus["query"], taus["value"]


def _variants(T: int, backend: str, k_values):
    pos = jnp.arange(T, dtype=jnp.float32)
    out = {"baseline": lambda q, k, v, p: jax.nn.dot_product_attention(q, k, v, is_causal=True)}
    if backend == "gpu":
        out["baseline (xla)"] = lambda q, k, v, p: jax.nn.dot_product_attention(
            q, k, v, is_causal=True, implementation="xla")
    out["library softmax"] = lambda q, k, v, p: A.dot_product_attention(q, k, v, causal=True)
    out["library softmax (jnp)"] = lambda q, k, v, p: A.dot_product_attention(
        q, k, v, causal=True, implementation="jnp")

    def ssa(q, k, v, p):
        tq, tv = _ssa_temps(p, q, v, pos)
        return A.dot_product_attention(q, k, v, causal=True, query_temperature=tq, value_temperature=tv)

    out["SSA"] = ssa
    for kt in k_values:
        for method in A.TOPK_METHODS:
            out[f"top-k k={kt} ({method})"] = (
                lambda q, k, v, p, kt=kt, method=method: A.dot_product_attention(
                    q, k, v, causal=True, normalizer="topk", k_top=kt, topk_method=method))
    return out


def _memory_mib(compiled) -> float | None:
    try:
        m = compiled.memory_analysis()
        total = m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
        return total / 2**20
    except Exception:  # not every backend reports it
        return None


def bench(T: int, repeats: int, k_values, backend: str):
    key = jax.random.PRNGKey(T)
    q, k, v, g = jax.random.normal(key, (4, B, T, N, D), jnp.float32)
    site = {"alpha": jnp.float32(0.0), "u": 0.1 * jnp.ones((N, D), jnp.float32)}
    params = {"temperature": {"query": dict(site), "value": dict(site)}}
    compiled, rows = {}, []
    for name, fn in _variants(T, backend, k_values).items():
        loss = lambda q, k, v, p, fn=fn: jnp.sum(fn(q, k, v, p) * g)  # noqa: E731
        step = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))
        t0 = time.perf_counter()
        compiled[name] = step.lower(q, k, v, params).compile()
        compile_s = time.perf_counter() - t0
        jax.block_until_ready(compiled[name](q, k, v, params))  # warm-up
        rows.append({"variant": name, "T": T, "compile_s": compile_s, "times": [],
                     "mem_mib": _memory_mib(compiled[name])})
    # round-robin over the variants, so load changes on a shared machine hit all of them alike
    for _ in range(repeats):
        for r in rows:
            t0 = time.perf_counter()
            jax.block_until_ready(compiled[r["variant"]](q, k, v, params))
            r["times"].append(time.perf_counter() - t0)
    for r in rows:
        r["ms"] = 1e3 * statistics.median(r.pop("times"))
    base = rows[0]["ms"]
    for r in rows:
        r["ratio"] = r["ms"] / base
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small T, few repeats (checks it runs)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--out", help="also write the markdown table here (atomically); results go into RESULTS.md")
    ap.add_argument("--note", default="", help="a line added under the header (e.g. machine load)")
    args = ap.parse_args(argv)
    sizes = (128, 256) if args.quick else (512, 1024, 2048)
    repeats = args.repeats or (3 if args.quick else 10)
    k_values = (16,) if args.quick else (16, 64)
    backend = jax.default_backend()
    rows = []
    for T in sizes:
        rows += bench(T, repeats, k_values, backend)
        print(f"T={T} done", file=sys.stderr, flush=True)
    dev = jax.devices()[0]
    head = [
        f"# Attention benchmark ({'quick' if args.quick else 'full'})",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- device: {dev.platform} / {dev.device_kind}; CPU: {_cpu_model()}",
        f"- JAX {jax.__version__}, Python {platform.python_version()}",
        f"- forward + backward (grad w.r.t. q, k, v), float32, causal, B={B}, heads={N}, head_dim={D}; "
        f"median of {repeats} runs after a warm-up, variants timed round-robin; compile time excluded (own column); memory from "
        "the compiled program's memory_analysis (temporaries + arguments + outputs)",
        *([f"- note: {args.note}"] if args.note else []),
        "",
        "| variant | T | ms (median) | ratio to baseline | compile s | memory MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        mem = "n/a" if r["mem_mib"] is None else f"{r['mem_mib']:.1f}"
        head.append(f"| {r['variant']} | {r['T']} | {r['ms']:.2f} | {r['ratio']:.2f}x | "
                    f"{r['compile_s']:.2f} | {mem} |")
    text = "\n".join(head) + "\n"
    if args.out:
        from softmax_stability._io import atomic_write_text

        atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
