"""``softmax-stability verify | proofs | info``, and ``figures | run | report | bench`` in a checkout.

The library's own commands (``verify``, ``proofs``, ``info``) work from an installed package and write
into ``--out`` (default: the current directory). The figures, the main job, the report and the
benchmarks are the pipeline's: their scripts live in a source checkout, not in the package, so those
commands look for a checkout at or above the current directory and hand over to it
(``python -m figures ...``, ``benchmarks/bench_*.py``), or say what they need.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

SUBCOMMANDS = ("verify", "proofs", "info", "figures", "run", "report", "bench")
CHECKOUT_COMMANDS = ("figures", "run", "report", "bench")
BENCHMARKS = ("jacobian", "attention", "training")


def default_cache_dir() -> Path:
    """``$SOFTMAX_STABILITY_JAX_CACHE``, else ``$XDG_CACHE_HOME/softmax-stability/jax`` (``~/.cache``)."""
    env = os.environ.get("SOFTMAX_STABILITY_JAX_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "softmax-stability" / "jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> None:
    """Keep XLA executables across runs in ``path`` (default :func:`default_cache_dir`), so a rerun
    skips most compilation. A cache that cannot be created is skipped (every run compiles)."""
    import jax

    path = Path(path) if path is not None else default_cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except (OSError, AttributeError):  # read-only location or an older JAX: compile every time
        pass


def find_checkout(start: str | os.PathLike | None = None) -> Path | None:
    """The source checkout of softmax-stability at or above ``start`` (default: the current
    directory): a directory holding ``figures/__main__.py``, ``benchmarks/`` and ``pyproject.toml``."""
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if all((d / f).exists() for f in ("figures/__main__.py", "pyproject.toml", "benchmarks")):
            return d
    return None


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


def _no_checkout(cmd: str) -> int:
    print(f"softmax-stability {cmd}: this command runs the pipeline scripts (figures/, benchmarks/) of a source "
          f"checkout, which are not installed with the package, and none was found at or above {os.getcwd()}.\n"
          "Run it from a clone of the repository (there `make run` does everything), or use the installed "
          "commands: verify, proofs, info.", file=sys.stderr)
    return 2


def cmd_checkout(cmd: str, rest: list[str]) -> int:
    """Hand ``figures``/``run``/``report`` to ``python -m figures`` and ``bench`` to
    ``benchmarks/bench_*.py`` of the checkout at or above the current directory."""
    root = find_checkout()
    if root is None:
        return _no_checkout(cmd)
    # run where the user stands (relative paths keep their meaning), with the checkout importable
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "SOFTMAX_STABILITY_PROG": "softmax-stability", "PYTHONPATH": path}
    if cmd != "bench":
        argv = rest if cmd == "figures" else [cmd, *rest]
        return subprocess.call([sys.executable, "-m", "figures", *argv], env=env)
    ap = argparse.ArgumentParser(prog="softmax-stability bench", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                 description="Run benchmarks/bench_NAME.py of the checkout (each has its own "
                                             "options: run the script with --help).")
    ap.add_argument("names", nargs="*", default=["jacobian"], help=f"benchmarks to run, of {', '.join(BENCHMARKS)}")
    args = ap.parse_args(rest)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; valid: {', '.join(BENCHMARKS)}")
    rc = 0
    for n in args.names:
        rc |= subprocess.call([sys.executable, str(root / "benchmarks" / f"bench_{n}.py")], env=env)
    return rc


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    ap = argparse.ArgumentParser(prog="softmax-stability", formatter_class=fmt,
                                 description="Softmax stability: verify the claims, run the symbolic checks; in a "
                                             "source checkout also regenerate figures, the report and benchmarks.")
    sub = ap.add_subparsers(dest="cmd", metavar="{" + ",".join(SUBCOMMANDS) + "}")
    v = sub.add_parser("verify", formatter_class=fmt,
                       help="check every registered claim on random and adversarial instances")
    v.add_argument("ids", nargs="*", help="claim ids (default: all)")
    v.add_argument("--seed", type=int, default=0, help="seed of the random instances and adversaries")
    v.add_argument("--out", default=".", help="directory for verification.json (and proofs_check.json)")
    v.add_argument("--no-adversary", action="store_true", help="random instances only (faster, weaker)")
    v.add_argument("--proofs", help="proofs_check JSON to read proof status from (default: OUT/proofs_check.json)")
    v.add_argument("--run-proofs", action="store_true", help="run the symbolic checks first")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.add_argument("--mutants", action="store_true",
                   help="also verify every claim's mutants (altered bounds that must be rejected); "
                        "a surviving mutant makes verify exit 1")
    p = sub.add_parser("proofs", formatter_class=fmt, help="run the symbolic checks (python -m proofs_check)")
    p.add_argument("--out", default=".", help="directory for proofs_check.json")
    sub.add_parser("info", help="devices, JAX version, backend")
    sub.add_parser("figures", add_help=False,
                   help="in a checkout: regenerate figures (python -m figures; see `figures --help`)")
    sub.add_parser("run", add_help=False,
                   help="in a checkout: the main job, proofs + verify + figures + report (see `run --help`)")
    sub.add_parser("report", add_help=False, help="in a checkout: build the report from figures/out")
    sub.add_parser("bench", add_help=False,
                   help=f"in a checkout: run benchmarks ({', '.join(BENCHMARKS)}; see `bench --help`)")
    return ap


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = build_parser()
    if argv and argv[0] in CHECKOUT_COMMANDS:
        return cmd_checkout(argv[0], argv[1:])
    if argv and not argv[0].startswith("-") and argv[0] not in SUBCOMMANDS:
        ap.error(f"unknown subcommand {argv[0]!r}; valid: {', '.join(SUBCOMMANDS)}")
    args = ap.parse_args(argv)
    if args.cmd is None:
        ap.print_help()
        return 2
    if args.cmd == "verify":
        enable_compilation_cache()
    if args.cmd == "info":
        return cmd_info(args)
    return {"verify": cmd_verify, "proofs": cmd_proofs}[args.cmd](args, ap)


if __name__ == "__main__":
    sys.exit(main())
