"""Seconds per training epoch of the SF classifier (JAX), per attention variant, against the SF
authors' PyTorch model (benchmarks/torch_sf_baseline.py) on the same CPU.

One epoch = the SF protocol: 5000 training samples (default), batch 25, SGD + clip 0.5, the
authors' model (d = 64, d_mlp = 64, 1 head, 5 blocks for NNCH tasks); evaluation excluded. The JAX
epoch is one jitted call (permutation + ``lax.scan`` over batches); its compilation is done ahead
of time and reported apart. Both are measured in the same run when ``--torch-python`` is given.

    python benchmarks/bench_training.py --task even_pairs --variant full --epochs 2
    python benchmarks/bench_training.py --variant all --epochs 3 \\
        --torch-python <python with torch> --concurrent 2 --out /tmp/train.md
    python benchmarks/bench_training.py --n-train 100 --epochs 1 --floor-copies 1   # does it run?

``--devices N`` (default: one per CPU core) also times every batch split across N devices (data
parallelism, ``Trainer(devices=...)``; on a CPU, N host devices via ``jax_num_cpu_devices``). The
last line printed is the median seconds per training epoch of the first variant (JAX, on the
``--devices`` devices; one device with ``--devices 1``).
Target (issue 5): >= 3x faster per epoch than the PyTorch baseline on the same CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALL_VARIANTS = ("FULL", "TOPK(5)", "BAND(5)", "BAND(5):1", "BLOC(5)", "BLOC(5):1")


def machine() -> str:
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs visible"


def bench_jax(task: str, variant: str, epochs: int, n_train: int, seed: int = 0, devices: int = 1) -> dict:
    """JAX seconds per epoch; ``devices > 1`` splits every batch across that many devices
    (``Trainer(devices=...)``, data parallelism)."""
    import jax

    from softmax_stability.experiments import runner
    from softmax_stability.experiments import tasks as tasks_mod
    from softmax_stability.experiments.sf_model import init_params
    from softmax_stability.experiments.training import TrainConfig, Trainer

    cfg = runner.RunConfig(task=task, variant=variant, seed=seed, n_train=n_train, n_val=1)
    r = cfg.resolved()
    data = tasks_mod.load_task(task, seed, n_train=n_train, n_val=1)
    xt = tasks_mod.prepare_inputs(data.x_train, data.spec, r["variant"])
    mc, _ = runner.model_config(cfg, xt.shape[1])
    tc = TrainConfig(r["lr"], r["lr_decay"], r["batch_size"], r["clip"])
    tr = Trainer(mc, tc, xt, data.y_train, devices=jax.devices()[:devices])
    params = init_params(jax.random.PRNGKey(seed), mc)
    state = tr.init_opt(params)
    x, y = tr._data["train"]
    t0 = time.perf_counter()
    compiled = tr.lower_epoch(params, state, jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for e in range(epochs):
        t0 = time.perf_counter()
        params, state, (loss, acc) = compiled(params, state, jax.random.PRNGKey(e), x, y)
        jax.block_until_ready(loss)
        times.append(time.perf_counter() - t0)
    return {"variant": r["variant"], "epoch_s": times, "median_s": statistics.median(times),
            "compile_s": compile_s, "steps": tr.steps_per_epoch, "last_loss": float(loss), "devices": devices,
            "backend": jax.default_backend(), "jax": jax.__version__}


def matmul_floor(n: int, d: int = 64, d_mlp: int = 64, batch: int = 25, blocks: int = 5, copies: int = 32) -> dict:
    """The matrix products of one SF training step (forward and backward, one head), each timed
    alone at its best: ``copies`` independent copies in one jitted ``vmap`` (more parallel work than
    the step offers), time / copies. Their sum is an optimistic floor for the step's matmul time on
    this machine; everything else (LayerNorm, softmax, dropout, activations, residuals, optimiser,
    layout copies) comes on top. With ``copies = S`` the ``vmap`` is exactly the batched product of
    an S-seed program (``MultiSeedTrainer``), so ``step_s`` is then the floor per seed-step of that
    program."""
    import jax
    import jax.numpy as jnp

    T = batch * n
    dense = [((T, d), (d, 3 * d)), ((T, d), (d, d)), ((T, d), (d, d_mlp)), ((T, d_mlp), (d_mlp, d)),
             ((T, 3 * d), (3 * d, d)), ((d, T), (T, 3 * d)),        # backward of the q/k/v product
             ((T, d), (d, d)), ((d, T), (T, d)),                    # ... of the output projection
             ((T, d), (d, d_mlp)), ((d, T), (T, d_mlp)),            # ... of fc2
             ((T, d_mlp), (d_mlp, d)), ((d_mlp, T), (T, d))]        # ... of fc1
    att = [((batch, n, d), (batch, d, n)), ((batch, n, n), (batch, n, d)),          # logits, weights @ v
           ((batch, n, n), (batch, n, d)), ((batch, n, n), (batch, n, d)),          # backward
           ((batch, n, d), (batch, d, n)), ((batch, n, n), (batch, n, d))]
    f = jax.jit(jax.vmap(jnp.matmul))
    total_s, flops = 0.0, 0.0
    for sa, sb in dense + att:
        ka, kb = jax.random.split(jax.random.PRNGKey(len(sa) + sa[-1]))
        a_ = jax.random.normal(ka, (copies,) + sa, jnp.float32)
        b_ = jax.random.normal(kb, (copies,) + sb, jnp.float32)
        f(a_, b_).block_until_ready()
        best = math.inf
        for _ in range(7):
            t0 = time.perf_counter()
            f(a_, b_).block_until_ready()
            best = min(best, time.perf_counter() - t0)
        total_s += best / copies
        flops += 2.0 * math.prod(sa) * sb[-1]
    return {"step_s": blocks * total_s, "step_gflop": blocks * flops / 1e9, "gflops": flops / total_s / 1e9}


def bench_seeds(task: str, variant: str, seeds: int, epochs: int, n_train: int, devices: int = 1) -> dict:
    """JAX seconds per epoch of ``seeds`` seeds of one configuration trained as one program
    (``MultiSeedTrainer``: seeds vmapped; split across ``devices`` devices), each seed with its own
    data, initialisation and keys as in ``runner.run_seeds``."""
    import jax
    import numpy as np

    from softmax_stability.experiments import runner
    from softmax_stability.experiments import tasks as tasks_mod
    from softmax_stability.experiments.multiseed import MultiSeedTrainer, stack_trees
    from softmax_stability.experiments.sf_model import init_params
    from softmax_stability.experiments.training import TrainConfig

    cfg = runner.RunConfig(task=task, variant=variant, seed=0, n_train=n_train, n_val=1)
    r = cfg.resolved()
    xs, ys = [], []
    for s in range(seeds):
        data = tasks_mod.load_task(task, s, n_train=n_train, n_val=1)
        xs.append(tasks_mod.prepare_inputs(data.x_train, data.spec, r["variant"]))
        ys.append(data.y_train)
    mc, _ = runner.model_config(cfg, xs[0].shape[1])
    tc = TrainConfig(r["lr"], r["lr_decay"], r["batch_size"], r["clip"])
    tr = MultiSeedTrainer(mc, tc, np.stack(xs), np.stack(ys), devices=jax.devices()[:devices])
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    params = stack_trees([init_params(k, mc) for k in keys])
    state = tr.init_opt(params)
    t0 = time.perf_counter()
    lowered = tr.lower_epoch(params, state, keys)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    mem_b = None if mem is None else int(mem.temp_size_in_bytes + mem.argument_size_in_bytes
                                         + mem.output_size_in_bytes)
    times = []
    for e in range(epochs):
        ek = jax.random.split(jax.random.PRNGKey(e + 1), seeds)
        t0 = time.perf_counter()
        params, state, (loss, acc) = tr.epoch(params, state, ek)  # same compiled program (jit cache)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"variant": r["variant"], "seeds": seeds, "devices": len(tr.devices or [None]), "epoch_s": times,
            "median_s": med, "seed_epoch_s": med / seeds, "compile_s": compile_s, "steps": tr.steps_per_epoch,
            "memory_bytes": mem_b, "last_loss": [float(v) for v in loss]}


def max_seeds(task: str, variant: str, n_train: int, probe: int = 4) -> tuple[int, float]:
    """The largest seed count whose epoch program fits in the memory available now: XLA's memory
    analysis of the compiled ``probe``- and ``2 * probe``-seed programs, extrapolated linearly,
    against ``MemAvailable`` of /proc/meminfo (80% of it). Returns ``(S_max, bytes per seed)``."""
    import jax
    import numpy as np

    from softmax_stability.experiments import runner
    from softmax_stability.experiments import tasks as tasks_mod
    from softmax_stability.experiments.multiseed import MultiSeedTrainer, stack_trees
    from softmax_stability.experiments.sf_model import init_params
    from softmax_stability.experiments.training import TrainConfig

    cfg = runner.RunConfig(task=task, variant=variant, seed=0, n_train=n_train, n_val=1)
    r = cfg.resolved()
    data = tasks_mod.load_task(task, 0, n_train=n_train, n_val=1)
    x = tasks_mod.prepare_inputs(data.x_train, data.spec, r["variant"])
    mc, _ = runner.model_config(cfg, x.shape[1])
    tc = TrainConfig(r["lr"], r["lr_decay"], r["batch_size"], r["clip"])
    sizes = []
    for S in (probe, 2 * probe):
        tr = MultiSeedTrainer(mc, tc, np.stack([x] * S), np.stack([data.y_train] * S))
        keys = jax.random.split(jax.random.PRNGKey(0), S)
        p = stack_trees([init_params(k, mc) for k in keys])
        m = tr.lower_epoch(p, tr.init_opt(p), keys).compile().memory_analysis()
        sizes.append(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)
    per_seed = max((sizes[1] - sizes[0]) / probe, 1.0)
    fixed = max(sizes[0] - probe * per_seed, 0.0)
    avail = 0.0
    with open("/proc/meminfo") as f:
        for ln in f:
            if ln.startswith("MemAvailable:"):
                avail = float(ln.split()[1]) * 1024
    return max(1, int((0.8 * avail - fixed) // per_seed)), per_seed


def bench_concurrent(task: str, variant: str, workers: int, n_train: int) -> dict:
    """``workers`` independent runs training one epoch at the same time (threads, as
    ``runner.run_many`` does), against one run alone: the throughput a grid of runs gets."""
    import threading

    import jax

    from softmax_stability.experiments import runner
    from softmax_stability.experiments import tasks as tasks_mod
    from softmax_stability.experiments.sf_model import init_params
    from softmax_stability.experiments.training import TrainConfig, Trainer, _epoch_jit

    cfg = runner.RunConfig(task=task, variant=variant, seed=0, n_train=n_train, n_val=1)
    r = cfg.resolved()
    data = tasks_mod.load_task(task, 0, n_train=n_train, n_val=1)
    xt = tasks_mod.prepare_inputs(data.x_train, data.spec, r["variant"])
    mc, _ = runner.model_config(cfg, xt.shape[1])
    tc = TrainConfig(r["lr"], r["lr_decay"], r["batch_size"], r["clip"])
    tr = Trainer(mc, tc, xt, data.y_train)
    x, y = tr._data["train"]
    states = []
    for i in range(workers):
        p = init_params(jax.random.PRNGKey(i), mc)
        states.append([p, tr.init_opt(p)])
    compiled = _epoch_jit.lower(mc, tc, tr.steps_per_epoch, *states[0], jax.random.PRNGKey(0), x, y).compile()

    def epoch(i, e):
        p, s, (loss, _) = compiled(*states[i], jax.random.PRNGKey(e), x, y)
        jax.block_until_ready(loss)
        states[i] = [p, s]

    epoch(0, 0)  # warm-up
    t0 = time.perf_counter()
    epoch(0, 1)
    alone = time.perf_counter() - t0
    ths = [threading.Thread(target=epoch, args=(i, 2)) for i in range(workers)]
    t0 = time.perf_counter()
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    together = time.perf_counter() - t0
    return {"variant": r["variant"], "workers": workers, "alone_s": alone, "together_s": together,
            "throughput_ratio": workers * alone / together}


def bench_torch(python: str, variant: str, epochs: int, n_train: int, threads: int) -> dict | None:
    here = Path(__file__).resolve().parent / "torch_sf_baseline.py"
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "t.json"
        cmd = [python, str(here), "--variant", variant, "--epochs", str(epochs), "--n-train", str(n_train),
               "--json", str(out)] + (["--threads", str(threads)] if threads else [])
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(f"torch baseline failed for {variant}:\n{p.stderr[-2000:]}", file=sys.stderr)
            return None
        return json.loads(out.read_text())


def table(rows: list[dict], args) -> str:
    import jax

    nd = args.devices
    lines = ["# SF training: seconds per epoch (JAX vs the authors' PyTorch model)", "",
             f"Machine: {machine()}; JAX {jax.__version__} on {jax.default_backend()}; task `{args.task}`, "
             f"{args.n_train} training samples, batch 25, {args.epochs} timed epochs (median), evaluation "
             f"excluded; JAX compile time apart. JAX on 1 device, and with every batch split across "
             f"{nd} devices (`Trainer(devices=...)`).", "",
             f"| variant | steps/epoch | JAX 1 device s/epoch | JAX {nd} devices s/epoch | JAX compile s "
             f"(1 / {nd}) | torch s/epoch | speed-up 1 device | speed-up {nd} devices |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r.get("torch_median_s")
        m = r.get("multi")
        mm = f"{m['median_s']:.3f}" if m else "—"
        comp = f"{r['compile_s']:.1f} / " + (f"{m['compile_s']:.1f}" if m else "—")
        sp1 = f"{t / r['median_s']:.2f}x" if t else "—"
        spn = f"{t / m['median_s']:.2f}x" if (t and m) else "—"
        lines.append(f"| {r['variant']} | {r['steps']} | {r['median_s']:.3f} | {mm} | {comp} | "
                     + (f"{t:.3f}" if t else "—") + f" | {sp1} | {spn} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="even_pairs")
    ap.add_argument("--variant", action="append", help="repeatable; 'all' for the six Fig. 1 variants")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--torch-python", help="python of an environment with torch (runs the baseline)")
    ap.add_argument("--torch-threads", type=int, default=0)
    ap.add_argument("--concurrent", type=int, default=0,
                    help="also time this many runs training at once (threads, as runner.run_many)")
    ap.add_argument("--devices", type=int, default=0,
                    help="also time the epoch with every batch split across this many devices (on a CPU: "
                         "that many host devices via jax_num_cpu_devices; default: one per CPU core, 1 = off)")
    ap.add_argument("--seeds", help="seed counts to train as one program (MultiSeedTrainer), comma-separated; "
                                    "'max' = the largest that fits in memory; e.g. 1,4,10,max. Times the "
                                    "first variant only; last line: seconds per seed-epoch of the last count")
    ap.add_argument("--time-max", action="store_true",
                    help="with 'max' in --seeds: also time the largest seed count (else only report it)")
    ap.add_argument("--floor-copies", type=int, default=32,
                    help="independent copies per matrix product in the matmul floor (more parallel work than "
                         "one step offers; fewer: a quicker, rougher floor, e.g. for a does-it-run check)")
    ap.add_argument("--out", help="write the markdown table here")
    args = ap.parse_args(argv)
    # every argument is checked before JAX starts: a typo fails at once
    if args.devices < 0:
        ap.error("--devices must be >= 1 (0: one per CPU core)")
    if args.epochs < 1 or args.n_train < 1:
        ap.error("--epochs and --n-train must be >= 1")
    if args.floor_copies < 1:
        ap.error("--floor-copies must be >= 1")
    variants = args.variant or ["FULL"]
    if any(v.lower() == "all" for v in variants):
        variants = list(ALL_VARIANTS)
    from softmax_stability.experiments.variants import parse_variant

    variants = [parse_variant(v).name for v in variants]  # ValueError lists the valid names
    if args.torch_python and args.task != "even_pairs":
        ap.error("the PyTorch baseline implements even_pairs only")
    counts = []
    for tok in (args.seeds.split(",") if args.seeds else []):
        tok = tok.strip().lower()
        if tok != "max" and not (tok.isdigit() and int(tok) >= 1):
            ap.error(f"--seeds takes positive integers or 'max', comma-separated; got {tok!r}")
        counts.append(tok if tok == "max" else int(tok))
    import jax

    if args.devices == 0:
        args.devices = os.cpu_count() or 1
    if os.environ.get("JAX_PLATFORMS", "cpu") in ("", "cpu") and args.devices > 1:
        jax.config.update("jax_num_cpu_devices", args.devices)  # before the backend starts
    args.devices = min(args.devices, len(jax.devices()))
    if args.seeds:
        return seeds_main(args, variants[0], counts)
    rows = []
    for v in variants:
        r = bench_jax(args.task, v, args.epochs, args.n_train)
        if args.devices > 1:
            r["multi"] = bench_jax(args.task, v, args.epochs, args.n_train, devices=args.devices)
        if args.torch_python:
            t = bench_torch(args.torch_python, v, args.epochs, args.n_train, args.torch_threads)
            if t:
                r["torch_median_s"] = t["median_s"]
                r["torch"] = t.get("torch")
        print(f"{v}: JAX {r['median_s']:.3f} s/epoch (compile {r['compile_s']:.1f} s)"
              + (f", {args.devices} devices {r['multi']['median_s']:.3f} s/epoch" if "multi" in r else "")
              + (f", torch {r['torch_median_s']:.3f} s/epoch" if "torch_median_s" in r else ""), file=sys.stderr)
        rows.append(r)
    md = table(rows, args)
    if args.task == "even_pairs":  # the model the target is about: length 40, 5 blocks
        fl = matmul_floor(40, copies=args.floor_copies)
        steps = rows[0]["steps"]
        md += (f"\nMatmul floor (`matmul_floor`): the {fl['step_gflop']:.3f} GFLOP of matrix products in one "
               f"training step, each timed alone at its best, take {1e3 * fl['step_s']:.2f} ms "
               f"({fl['gflops']:.0f} GFLOP/s), i.e. {steps * fl['step_s']:.2f} s per epoch of {steps} steps "
               f"before any other operation.\n")
    if args.concurrent > 1:
        c = bench_concurrent(args.task, variants[0], args.concurrent, args.n_train)
        md += (f"\n{c['workers']} runs of {c['variant']} training one epoch at the same time (threads, as "
               f"`runner.run_many`): {c['together_s']:.2f} s for all, against {c['alone_s']:.2f} s for one "
               f"alone: {c['throughput_ratio']:.2f}x the throughput of running them one by one.\n")
    print(md)
    if args.out:
        from softmax_stability._io import atomic_write_text

        atomic_write_text(args.out, md)
    first = rows[0].get("multi", rows[0])
    print(f"{first['median_s']:.4f}")
    return 0


def seeds_main(args, variant: str, counts: list) -> int:
    """``--seeds``: seed-epochs per second of the multi-seed program against the authors' PyTorch
    model one run at a time, and the batched program's matmul floor."""
    import jax

    nd = args.devices
    load = [os.getloadavg()]
    smax, per_seed = (None, None)
    if "max" in counts:
        smax, per_seed = max_seeds(args.task, variant, args.n_train)
        print(f"largest seed count that fits: {smax} ({per_seed / 2**20:.1f} MiB per seed)", file=sys.stderr)
    rows = []
    single = bench_jax(args.task, variant, args.epochs, args.n_train, devices=nd)
    print(f"{variant}: single run (Trainer, batch split over {nd} devices) {single['median_s']:.3f} s/epoch",
          file=sys.stderr)
    torch_s = None
    if args.torch_python:
        t = bench_torch(args.torch_python, variant, args.epochs, args.n_train, args.torch_threads)
        torch_s = t["median_s"] if t else None
        print(f"{variant}: torch one run {torch_s} s/epoch", file=sys.stderr)
    n = 40 if args.task == "even_pairs" else None
    for S in counts:
        timed = S != "max" or args.time_max
        S_ = smax if S == "max" else S
        if not timed:
            rows.append({"seeds": S_, "label": f"{S_} (max)", "timed": False})
            continue
        r = bench_seeds(args.task, variant, S_, args.epochs, args.n_train, devices=nd)
        r["label"] = f"{S_}" + (" (max)" if S == "max" else "")
        r["timed"] = True
        if n is not None:
            fl = matmul_floor(n, copies=S_)
            r["floor_seed_epoch_s"] = fl["step_s"] * r["steps"]
            r["floor_gflops"] = fl["gflops"]
        load.append(os.getloadavg())
        print(f"{variant} {S_} seeds: {r['median_s']:.3f} s/epoch, {r['seed_epoch_s']:.3f} s per seed-epoch "
              f"(compile {r['compile_s']:.1f} s)", file=sys.stderr)
        rows.append(r)
    md = ["# SF training: many seeds in one program (JAX) vs the authors' PyTorch model one run at a time", "",
          f"Machine: {machine()}; JAX {jax.__version__} on {jax.default_backend()}; task `{args.task}`, variant "
          f"{variant}, {args.n_train} training samples, batch 25, {args.epochs} timed epochs (median), evaluation "
          f"excluded, compile apart. Seeds split across {nd} devices (`MultiSeedTrainer(devices=...)`). "
          f"Load average (1 min) during the run: {', '.join(f'{l[0]:.1f}' for l in load)}.", "",
          f"Single run (`Trainer`, every batch split across {nd} devices): {single['median_s']:.3f} s/epoch"
          + (f"; torch one run: {torch_s:.3f} s/epoch ({torch_s / single['median_s']:.2f}x)." if torch_s else "."),
          "", "| seeds S | s/epoch (all seeds) | s per seed-epoch | seed-epochs/s | speed-up per seed vs torch "
          "| vs single run | matmul floor s per seed-epoch (GFLOP/s) | compile s | memory MiB |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r["timed"]:
            md.append(f"| {r['label']} | not timed (`--time-max`) | — | — | — | — | — | — | "
                      f"{r['seeds'] * per_seed / 2**20:.0f} (est.) |")
            continue
        sp = f"{torch_s / r['seed_epoch_s']:.2f}x" if torch_s else "—"
        fl = (f"{r['floor_seed_epoch_s']:.3f} ({r['floor_gflops']:.0f})" if "floor_seed_epoch_s" in r else "—")
        mem = f"{r['memory_bytes'] / 2**20:.0f}" if r["memory_bytes"] else "—"
        md.append(f"| {r['label']} | {r['median_s']:.3f} | {r['seed_epoch_s']:.3f} | {1 / r['seed_epoch_s']:.3f} | "
                  f"{sp} | {single['median_s'] / r['seed_epoch_s']:.2f}x | {fl} | {r['compile_s']:.1f} | {mem} |")
    text = "\n".join(md) + "\n"
    print(text)
    if args.out:
        from softmax_stability._io import atomic_write_text

        atomic_write_text(args.out, text)
    last = next((r for r in reversed(rows) if r["timed"]), None)
    if last is None:
        print(f"{variant}: no seed count timed")
        return 0
    print(f"{variant}, {last['seeds']} seeds on {nd} devices: seconds per seed-epoch {last['seed_epoch_s']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
