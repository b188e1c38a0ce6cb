"""The pipeline's command line: ``python -m figures [NAME ...]``, ``python -m figures run`` and
``python -m figures report``.

The pipeline sits above the library: it runs the library's symbolic checks and verifier, the
figures and the report, and it is the only part that knows ``figures/out``. The installed console
script ``softmax-stability`` hands its ``figures``, ``run`` and ``report`` commands to this module
when it is started inside a checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

from figures._common import DEFAULT_OUT, PROFILES, prog_name as _prog

__all__ = ["main", "figures_main", "run_main", "JAX_CACHE"]

JAX_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "jax"  # the checkout's compile cache
PIPELINE_COMMANDS = ("run", "report")


def _out_dir(path: str, ap: argparse.ArgumentParser) -> Path:
    from softmax_stability._io import ensure_writable_dir

    try:
        return ensure_writable_dir(path, "--out")
    except PermissionError as err:
        ap.error(str(err))
        raise  # unreachable


def _enable_cache() -> None:
    from softmax_stability.cli import enable_compilation_cache

    # through the environment, so that the library's verify (which enables its default cache) and
    # its spawned workers use the checkout's cache too, not ~/.cache
    os.environ.setdefault("SOFTMAX_STABILITY_JAX_CACHE", str(JAX_CACHE))
    enable_compilation_cache(os.environ["SOFTMAX_STABILITY_JAX_CACHE"])


def figures_main(argv: list[str] | None = None) -> int:
    """``python -m figures [NAME ...]``: regenerate figures and tables into ``--out``."""
    import matplotlib

    matplotlib.use("Agg")
    from figures._common import registry, run_figure

    specs = registry()
    fmt = argparse.ArgumentDefaultsHelpFormatter
    ap = argparse.ArgumentParser(prog=_prog("figures") if "SOFTMAX_STABILITY_PROG" in os.environ else _prog(),
                                 description="Regenerate figures and tables (PNG, PDF, CSV, Markdown and a "
                                             "provenance JSON each). A figure whose code, profile, seed and "
                                             "inputs are unchanged is not redone.", formatter_class=fmt)
    ap.add_argument("names", nargs="*", help=f"figures to make (default: all). One of: {', '.join(specs)}")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="profile", action="store_const", const="quick",
                   help="same as --profile quick")
    g.add_argument("--full", dest="profile", action="store_const", const="full", help="same as --profile full")
    g.add_argument("--profile", dest="profile", choices=PROFILES,
                   help="sizes: smoke (the test suite's), quick (minutes on 2 cores), full (the papers')")
    ap.set_defaults(profile="quick")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output directory")
    ap.add_argument("--seed", type=int, default=0, help="random seed of every figure")
    ap.add_argument("--list", action="store_true", help="list the figures and exit")
    ap.add_argument("--keep-going", action="store_true", help="continue after a failing figure")
    ap.add_argument("--force", action="store_true",
                    help="redo figures whose outputs are up to date (same code, profile, seed and inputs)")
    args = ap.parse_args(argv)
    profile = args.profile
    if args.list:
        for s in specs.values():
            print(f"{s.name:<28} {s.kind:<8} {s.caption}")
        return 0
    unknown = [n for n in args.names if n not in specs]
    if unknown:
        ap.error(f"unknown figure(s) {', '.join(unknown)}; valid names: {', '.join(specs)}")
    out = _out_dir(args.out, ap)
    _enable_cache()
    names = args.names or list(specs)
    failed = []
    for name in names:
        t0 = time.perf_counter()
        print(f"[figures] {name} ({profile}) ...", flush=True)
        try:
            prov = run_figure(name, out, profile, args.seed, force=args.force)
        except Exception as err:
            failed.append(name)
            print(f"[figures] {name} FAILED: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            if not args.keep_going:
                raise
            continue
        if prov.get("cached"):
            print(f"[figures] {name} up to date (same code, profile, seed); --force redoes it", flush=True)
        else:
            print(f"[figures] {name} done in {time.perf_counter() - t0:.1f}s", flush=True)
    print(f"[figures] {len(names) - len(failed)}/{len(names)} written to {out}")
    if failed:
        print(f"[figures] failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


# -------------------------------------------------------------------------------------------------
# run: proofs, verify, figures, report; unchanged steps are reused

def _step_fingerprint(modules: list[str], *extra: object) -> str:
    import jax
    import numpy
    import sympy

    from figures._deps import files_fingerprint, imported_files

    return files_fingerprint(imported_files(modules), *extra, jax.__version__, numpy.__version__,
                             sympy.__version__)


def _stamp_path(out: Path, output: str) -> Path:
    return out / f".{output}.stamp.json"


def _reusable(out: Path, output: str, fp: str) -> bool:
    """True when ``output`` exists and was written by a successful step with fingerprint ``fp``."""
    try:
        stamp = json.loads(_stamp_path(out, output).read_text())
    except (OSError, ValueError):
        return False
    return stamp.get("fingerprint") == fp and stamp.get("rc") == 0 and (out / output).is_file()


def _write_stamp(out: Path, output: str, fp: str, rc: int) -> None:
    from softmax_stability._io import atomic_write_json

    atomic_write_json(_stamp_path(out, output), {"fingerprint": fp, "rc": rc})


def proofs_fingerprint() -> str:
    """What ``proofs_check.json`` depends on: the ``proofs_check`` sources (and what they import)."""
    return _step_fingerprint(["proofs_check.__main__"])


def verify_fingerprint(out: Path, seed: int) -> str:
    """What ``verification.json`` (with mutants) depends on: the claims and the library they import,
    the seed, and the proof statuses it reports (``proofs_check.json``)."""
    import hashlib

    p = out / "proofs_check.json"
    proofs = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "absent"
    return _step_fingerprint(["softmax_stability.cli", "softmax_stability.claims"], "mutants", seed, proofs)


def run_main(argv: list[str] | None = None) -> int:
    """``python -m figures run``: the main job (``make run``). Every step runs even if one fails; a
    summary at the end says which failed. Steps whose inputs are unchanged are reused."""
    from softmax_stability import cli as lib_cli

    ap = argparse.ArgumentParser(prog=_prog("run"), formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                 description="The main job: symbolic checks, verify (with mutants), figures, "
                                             "report. A step whose code and inputs are unchanged since its "
                                             "last successful run is reused.")
    ap.add_argument("--profile", default="quick", choices=PROFILES, help="figure sizes (as `figures --profile`)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output directory")
    ap.add_argument("--seed", type=int, default=0, help="seed of verify and of every figure")
    ap.add_argument("--force", action="store_true", help="redo every step, even those that are up to date")
    args = ap.parse_args(argv)
    out = _out_dir(args.out, ap)
    _enable_cache()
    steps: list[tuple[str, int, float, str]] = []

    def step(name: str, fn: Callable[[], int], output: str | None = None, fp: Callable[[], str] | None = None):
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        key = fp() if fp is not None else None
        if key is not None and not args.force and _reusable(out, output, key):
            print(f"{name}: up to date ({output} from a run of the same code and inputs); --force redoes it",
                  flush=True)
            steps.append((name, 0, time.perf_counter() - t0, "reused"))
            return
        try:
            rc = fn()
        except SystemExit as e:  # argparse inside a step
            rc = int(e.code or 0)
        if key is not None:
            _write_stamp(out, output, key, rc)
        steps.append((name, rc, time.perf_counter() - t0, "ok" if rc == 0 else "FAILED"))

    step("proofs_check", lambda: lib_cli.main(["proofs", "--out", str(out)]),
         "proofs_check.json", proofs_fingerprint)
    step("verify", lambda: lib_cli.main(["verify", "--mutants", "--out", str(out), "--seed", str(args.seed)]),
         "verification.json", lambda: verify_fingerprint(out, args.seed))
    fig_argv = ["--profile", args.profile, "--out", str(out), "--seed", str(args.seed), "--keep-going"]
    step("figures", lambda: figures_main(fig_argv + (["--force"] if args.force else [])))
    from figures import _report

    step("report", lambda: _report.main(["--out", str(out)]))
    print("\n=== summary ===")
    for name, rc, secs, what in steps:
        print(f"{name:<14} {what:<7} {secs:7.1f}s")
    print(f"outputs in {out}")
    return 0 if all(rc == 0 for _, rc, _, _ in steps) else 1


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        return run_main(argv[1:])
    if argv and argv[0] == "report":
        from figures import _report

        return _report.main(argv[1:])
    return figures_main(argv)
