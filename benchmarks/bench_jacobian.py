"""Exact spectral norms and spectra of every row of an attention map: secular solver vs dense autodiff + eigh.

The baseline is what a user would otherwise write: the row's Jacobian by ``jax.jacfwd`` of
``jax.nn.softmax`` followed by ``jnp.linalg.eigvalsh``, jitted, one row at a time (vmapping it over
all rows of a 4096 x 4096 map needs 4096^3 doubles, 550 GB). Both are measured in the same run, in
float64, compile time excluded and reported apart; the baseline's per-row time is the median over a
few rows, the library's the whole map's time divided by n.

Three library functions are timed against it: ``spectral_norm`` (the largest eigenvalue, O(n) per
row), ``eigenvalues`` (all of them, O(n^2) work and O(n) memory per row; on rows of the map when
the whole map would take minutes, see ``--eig-rows``; its temporaries for the whole map are XLA's
estimate for the compiled program, which is not run at that size unless ``--eig-rows 0``) and
``inf_to_one_norm`` (the certified bracket for n > 24, whole map; no dense baseline: the exact
value needs all 2^n sign vectors).

    python benchmarks/bench_jacobian.py            # n in {256, 1024, 4096}, one row at n = 10^6
    python benchmarks/bench_jacobian.py --quick    # small sizes, to check that it runs
    python benchmarks/bench_jacobian.py --eig-rows 0   # eigenvalues of the whole 4096 x 4096 map
    python benchmarks/bench_jacobian.py --out benchmarks/RESULTS_jacobian.md

Targets (issue 2): >= 1000x per row at n = 1024; all 4096 rows of a 4096 x 4096 map in <= 2 s on
2 CPU cores; one row of n = 10^6 in <= 1 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from softmax_stability.jacobian import eigenvalues, inf_to_one_norm, spectral_norm  # noqa: E402


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    dev = jax.devices()[0]
    return (f"{cpu}; {os.cpu_count()} logical CPUs visible; JAX {jax.__version__} on "
            f"{dev.platform} ({dev.device_kind}); Python {platform.python_version()}")


def timed(fn, *args, repeat: int = 5) -> tuple[float, float]:
    """(compile + first call seconds, median steady-state seconds)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - t0)
    return first, statistics.median(runs)


@jax.jit
def dense_row_norm(z):
    J = jax.jacfwd(jax.nn.softmax)(z)
    return jnp.linalg.eigvalsh(J)[-1]


@jax.jit
def dense_row_eigs(z):
    return jnp.linalg.eigvalsh(jax.jacfwd(jax.nn.softmax)(z))


library_norms = jax.jit(spectral_norm)
library_eigs = jax.jit(eigenvalues)
library_inf_to_one = jax.jit(lambda p: tuple(inf_to_one_norm(p, return_bounds=True)))


def attention_map(n: int, seed: int = 0, scale: float = 3.0) -> jax.Array:
    z = scale * jax.random.normal(jax.random.key(seed), (n, n), dtype=jnp.float64)
    return z, jax.nn.softmax(z, axis=-1)


def bench_map(n: int, baseline_rows: int) -> dict:
    z, P = attention_map(n)
    lib_first, lib_all = timed(library_norms, P)
    lib_row = lib_all / n
    # baseline: a few rows, each timed; the first call carries the compile
    base_first = None
    times = []
    err = 0.0
    lib_vals = np.asarray(library_norms(P))
    for i in range(baseline_rows):
        t0 = time.perf_counter()
        val = float(jax.block_until_ready(dense_row_norm(z[i])))
        dt = time.perf_counter() - t0
        if base_first is None:
            base_first = dt
            t0 = time.perf_counter()
            val = float(jax.block_until_ready(dense_row_norm(z[i])))
            dt = time.perf_counter() - t0
        times.append(dt)
        err = max(err, abs(val - lib_vals[i]) / abs(val))
    base_row = statistics.median(times)
    return dict(n=n, lib_map_s=lib_all, lib_row_s=lib_row, lib_compile_s=lib_first - lib_all,
                base_row_s=base_row, base_compile_s=base_first - base_row, speedup=base_row / lib_row,
                max_rel_diff=err, baseline_rows=baseline_rows)


def bench_eigenvalues(n: int, rows: int, baseline_rows: int) -> dict:
    z, P = attention_map(n)
    rows = n if rows <= 0 else min(rows, n)
    Pr = P[:rows]
    lib_first, lib_t = timed(library_eigs, Pr, repeat=1 if rows * n * n > 2**34 else 3)
    lib_row = lib_t / rows
    est = library_eigs.lower(jax.ShapeDtypeStruct((n, n), P.dtype)).compile().memory_analysis()
    eigs = np.asarray(library_eigs(Pr))
    times, err = [], 0.0
    base_first = None
    for i in range(baseline_rows):
        if base_first is None:
            t0 = time.perf_counter()
            jax.block_until_ready(dense_row_eigs(z[i]))
            base_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = np.asarray(jax.block_until_ready(dense_row_eigs(z[i])))
        times.append(time.perf_counter() - t0)
        err = max(err, float(np.max(np.abs(ref - eigs[i]))) / float(P[i].max()))
    base_row = statistics.median(times)
    return dict(n=n, rows=rows, lib_s=lib_t, lib_row_s=lib_row, lib_compile_s=lib_first - lib_t,
                base_row_s=base_row, base_compile_s=base_first - base_row, speedup=base_row / lib_row,
                max_abs_diff=err, temp_gb=est.temp_size_in_bytes / 1e9, out_gb=n * n * 8 / 1e9,
                baseline_rows=baseline_rows)


def bench_inf_to_one(n: int) -> dict:
    _, P = attention_map(n)
    first, t = timed(library_inf_to_one, P)
    lo, up = (np.asarray(v) for v in library_inf_to_one(P))
    return dict(n=n, seconds=t, compile_s=first - t, max_gap=float(np.max(up - lo)), max_upper=float(up.max()))


def bench_long_row(n: int) -> dict:
    key = jax.random.key(1)
    p = jax.nn.softmax(3.0 * jax.random.normal(key, (n,), dtype=jnp.float64))
    first, t = timed(library_norms, p)
    return dict(n=n, seconds=t, compile_s=first - t, norm=float(library_norms(p)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, to check that it runs")
    ap.add_argument("--out", default=None, help="write the markdown table here (atomically)")
    ap.add_argument("--eig-rows", type=int, default=16,
                    help="eigenvalues: rows timed at n >= 4096 (all rows below); 0 = the whole map")
    args = ap.parse_args(argv)
    sizes = (64, 256) if args.quick else (256, 1024, 4096)
    long_n = 10**4 if args.quick else 10**6
    rows = []
    for n in sizes:
        r = bench_map(n, baseline_rows=3 if n >= 4096 else 5)
        rows.append(r)
        print(f"n={n:5d}: library {r['lib_map_s']*1e3:9.2f} ms for all {n} rows "
              f"({r['lib_row_s']*1e6:8.2f} us/row); dense jacfwd+eigvalsh {r['base_row_s']*1e3:9.2f} ms/row; "
              f"speed-up per row {r['speedup']:,.0f}x; max rel diff {r['max_rel_diff']:.1e}", flush=True)
    eig_rows = []
    for n in sizes:
        e = bench_eigenvalues(n, args.eig_rows if n >= 4096 else 0, baseline_rows=3 if n >= 4096 else 5)
        eig_rows.append(e)
        print(f"eigenvalues n={n:5d}: library {e['lib_s']:8.3f} s for {e['rows']} rows "
              f"({e['lib_row_s']*1e3:8.2f} ms/row); dense {e['base_row_s']*1e3:9.2f} ms/row; "
              f"speed-up per row {e['speedup']:,.1f}x; max |diff|/p_max {e['max_abs_diff']:.1e}; "
              f"temporaries (whole map, XLA estimate) {e['temp_gb']:.2f} GB", flush=True)
    i21_rows = []
    for n in sizes:
        r = bench_inf_to_one(n)
        i21_rows.append(r)
        print(f"inf_to_one_norm n={n:5d}: {r['seconds']*1e3:9.2f} ms for all rows (compile {r['compile_s']:.2f} s); "
              f"max upper - lower {r['max_gap']:.1e}", flush=True)
    lr = bench_long_row(long_n)
    print(f"one row, n={long_n:,}: {lr['seconds']*1e3:.1f} ms (compile {lr['compile_s']:.2f} s)")

    lines = [
        "### bench_jacobian: exact spectral norm of every row of an n x n softmax attention map (float64)",
        "",
        f"Machine: {machine()}.",
        "Baseline: per row, jitted `jax.jacfwd(jax.nn.softmax)` + `jnp.linalg.eigvalsh` (what a user would "
        "otherwise write), median over the rows shown; library: `jacobian.spectral_norm` on the whole map, "
        "time / n per row. Compile time excluded from the ratios, reported apart.",
        "",
        "| n | library, whole map | library per row | dense baseline per row (rows timed) | speed-up per row "
        "| library compile | baseline compile | max rel. diff |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['lib_map_s']*1e3:.2f} ms | {r['lib_row_s']*1e6:.2f} us | "
            f"{r['base_row_s']*1e3:.2f} ms ({r['baseline_rows']}) | {r['speedup']:,.0f}x | "
            f"{r['lib_compile_s']:.2f} s | {r['base_compile_s']:.2f} s | {r['max_rel_diff']:.1e} |")
    lines += ["", f"One row of n = {long_n:,}: {lr['seconds']*1e3:.1f} ms (compile {lr['compile_s']:.2f} s apart).", ""]
    lines += [
        "All eigenvalues (`jacobian.eigenvalues`) against the same baseline (`eigvalsh` returns them all); "
        "library time / rows timed; temporaries: XLA's estimate for the compiled whole-map program "
        "(output alone: 8 n^2 bytes).",
        "",
        "| n | rows timed | library | library per row | dense baseline per row (rows timed) | speed-up per row "
        "| library compile | max abs diff / p_max | temporaries, whole map |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in eig_rows:
        lines.append(
            f"| {e['n']} | {e['rows']} | {e['lib_s']:.3f} s | {e['lib_row_s']*1e3:.2f} ms | "
            f"{e['base_row_s']*1e3:.2f} ms ({e['baseline_rows']}) | {e['speedup']:,.1f}x | {e['lib_compile_s']:.2f} s | "
            f"{e['max_abs_diff']:.1e} | {e['temp_gb']:.2f} GB |")
    lines += [
        "",
        "`inf_to_one_norm(P, return_bounds=True)` on the whole map (no dense baseline: the exact value "
        "needs all 2^n sign vectors).",
        "",
        "| n | whole map | compile | max upper - lower |",
        "|---:|---:|---:|---:|",
    ]
    for r in i21_rows:
        lines.append(f"| {r['n']} | {r['seconds']*1e3:.1f} ms | {r['compile_s']:.2f} s | {r['max_gap']:.1e} |")
    lines.append("")
    text = "\n".join(lines)
    print()
    print(text)
    if args.out:
        from softmax_stability._io import atomic_write_text
        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
