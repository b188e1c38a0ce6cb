"""``softmax-stability verify | proofs | figures | bench | info | run``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "figures" / "out"
SUBCOMMANDS = ("verify", "proofs", "figures", "bench", "info", "run")
BENCHMARKS = ("jacobian", "attention", "training")


def enable_compilation_cache() -> None:
    """Keep XLA executables across runs (``.cache/jax`` in the checkout, or
    ``$SOFTMAX_STABILITY_JAX_CACHE``), so a rerun of ``make run`` skips most compilation."""
    import jax

    path = os.environ.get("SOFTMAX_STABILITY_JAX_CACHE", str(REPO / ".cache" / "jax"))
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except (OSError, AttributeError):  # read-only checkout or an older JAX: compile every time
        pass


def _writable(out: str, ap: argparse.ArgumentParser) -> Path:
    from softmax_stability._io import ensure_writable_dir

    try:
        return ensure_writable_dir(out, "--out")
    except PermissionError as err:
        ap.error(str(err))
        raise  # unreachable


def cmd_info(args) -> int:
    import jax

    import softmax_stability

    print(f"softmax-stability {softmax_stability.__version__}")
    print(f"jax {jax.__version__} (backend: {jax.default_backend()}, x64: {jax.config.jax_enable_x64})")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU cores")
    for d in jax.devices():
        print(f"device {d.id}: {d.platform} {getattr(d, 'device_kind', '')}")
    return 0


def cmd_verify(args, ap) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    from softmax_stability._io import atomic_write_json
    from softmax_stability.claims import all_claims, format_table, verify
    from softmax_stability.claims._verify import load_proof_status

    out = _writable(args.out, ap)
    valid = [c.id for c in all_claims()]
    unknown = [i for i in (args.ids or []) if i not in valid]
    if unknown:
        ap.error(f"unknown claim id(s) {', '.join(unknown)}; valid ids: {', '.join(valid)}")
    proofs_path = Path(args.proofs) if args.proofs else out / "proofs_check.json"
    if args.run_proofs:
        _run_proofs(proofs_path, quiet=True)
    status = load_proof_status(proofs_path)
    t0 = time.perf_counter()
    if args.mutants and args.no_adversary:
        ap.error("--mutants needs the adversaries and tight regimes: drop --no-adversary")
    results = verify(args.ids or None, seed=args.seed, adversary=not args.no_adversary,
                     proof_status=status, progress=not args.no_progress, mutants=args.mutants)
    wall = time.perf_counter() - t0
    print(format_table(results))
    print(f"verify: {wall:.1f}s on {jax.default_backend()} ({len(jax.devices())} device(s)), seed {args.seed}")
    if jax.process_index() != 0:  # multi-host: every process holds the same results; one writes them
        return 0 if all(r.verdict == "pass" for r in results) else 1
    path = atomic_write_json(out / "verification.json", {
        "seed": args.seed, "wall_time_s": wall, "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()], "jax_version": jax.__version__,
        "proof_status_file": str(proofs_path) if status else None,
        "mutants_run": bool(args.mutants),
        "mutants_killed": sum(r.mutants_killed for r in results),
        "mutants_total": sum(len(r.mutants) for r in results),
        "results": [r.to_json() for r in results],
    })
    print(f"wrote {path}")
    bad = [r.id for r in results if r.verdict != "pass"]
    if bad:
        print(f"verify FAILED for: {', '.join(bad)}", file=sys.stderr)
    # a surviving mutant is a check that cannot fail: as much a failure as a violated claim
    survivors = [f"{r.id} [{m['name']}]" for r in results for m in r.mutants if not m["killed"]]
    if survivors:
        print(f"verify: mutants survived: {', '.join(survivors)}", file=sys.stderr)
    return 1 if (bad or survivors) else 0


def _run_proofs(json_path: Path, quiet: bool = False) -> int:
    try:
        import proofs_check.__main__ as pc
    except ImportError:
        print("proofs_check is not available", file=sys.stderr)
        return 1
    argv = ["--json", str(json_path)] + (["--quiet"] if quiet else [])
    return pc.main(argv)


def cmd_proofs(args, ap) -> int:
    out = _writable(args.out, ap)
    return _run_proofs(out / "proofs_check.json")


def cmd_figures(rest: list[str]) -> int:
    from figures.__main__ import main as figures_main

    return figures_main(rest)


def cmd_bench(args, ap) -> int:
    names = args.names or ["jacobian"]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; valid: {', '.join(BENCHMARKS)}")
    rc = 0
    for n in names:
        script = REPO / "benchmarks" / f"bench_{n}.py"
        if not script.exists():
            print(f"benchmark script {script} is missing", file=sys.stderr)
            rc = 1
            continue
        rc |= subprocess.call([sys.executable, str(script)], cwd=REPO)
    return rc


def cmd_run(args, ap) -> int:
    """The main job: proofs, verify, figures, report; a summary of what failed at the end."""
    out = _writable(args.out, ap)
    steps: list[tuple[str, int, float]] = []

    def step(name, fn):
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        try:
            rc = fn()
        except SystemExit as e:  # argparse inside a step
            rc = int(e.code or 0)
        steps.append((name, rc, time.perf_counter() - t0))

    step("proofs_check", lambda: _run_proofs(out / "proofs_check.json"))
    vargs = argparse.Namespace(out=str(out), ids=None, seed=args.seed, no_adversary=False,
                               proofs=None, run_proofs=False, no_progress=False, mutants=True)
    step("verify", lambda: cmd_verify(vargs, ap))
    fig_argv = ["--profile", args.profile, "--out", str(out), "--seed", str(args.seed), "--keep-going"]
    step("figures", lambda: cmd_figures(fig_argv))
    try:
        from softmax_stability import report
    except ImportError:
        report = None
    if report is not None:
        step("report", lambda: report.main(["--out", str(out)]))
    print("\n=== summary ===")
    for name, rc, secs in steps:
        print(f"{name:<14} {'ok' if rc == 0 else 'FAILED'}  {secs:7.1f}s")
    print(f"outputs in {out}")
    return 0 if all(rc == 0 for _, rc, _ in steps) else 1


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="softmax-stability",
                                 description="Softmax stability: verify claims, regenerate figures, benchmark.")
    sub = ap.add_subparsers(dest="cmd", metavar="{" + ",".join(SUBCOMMANDS) + "}")
    v = sub.add_parser("verify", help="check every registered claim on random and adversarial instances")
    v.add_argument("ids", nargs="*", help="claim ids (default: all)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--out", default=str(DEFAULT_OUT))
    v.add_argument("--no-adversary", action="store_true")
    v.add_argument("--proofs", help="proofs_check JSON to read proof status from")
    v.add_argument("--run-proofs", action="store_true", help="run proofs_check first")
    v.add_argument("--no-progress", action="store_true")
    v.add_argument("--mutants", action="store_true",
                   help="also verify every claim's mutants (altered bounds that must be rejected); "
                        "a surviving mutant makes verify exit 1")
    p = sub.add_parser("proofs", help="run the symbolic checks (python -m proofs_check)")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    sub.add_parser("figures", help="regenerate figures (python -m figures ...)", add_help=False)
    b = sub.add_parser("bench", help="run benchmarks")
    b.add_argument("names", nargs="*", help=f"one of {', '.join(BENCHMARKS)}")
    sub.add_parser("info", help="devices, JAX version, backend")
    r = sub.add_parser("run", help="the main job: proofs, verify, figures, report")
    r.add_argument("--profile", default="quick", choices=["quick", "medium", "full"])
    r.add_argument("--out", default=str(DEFAULT_OUT))
    r.add_argument("--seed", type=int, default=0)
    return ap


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = build_parser()
    if argv and argv[0] == "figures":
        enable_compilation_cache()
        return cmd_figures(argv[1:])
    if argv and not argv[0].startswith("-") and argv[0] not in SUBCOMMANDS:
        ap.error(f"unknown subcommand {argv[0]!r}; valid: {', '.join(SUBCOMMANDS)}")
    args = ap.parse_args(argv)
    if args.cmd is None:
        ap.print_help()
        return 2
    if args.cmd in ("verify", "run"):
        enable_compilation_cache()
    if args.cmd == "info":
        return cmd_info(args)
    return {"verify": cmd_verify, "proofs": cmd_proofs, "bench": cmd_bench, "run": cmd_run}[args.cmd](args, ap)


if __name__ == "__main__":
    sys.exit(main())
