"""``python -m figures [NAME ...] [--quick|--full] [--out DIR] [--seed S] [--list]``."""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("MPLBACKEND", "Agg")


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from figures._common import DEFAULT_OUT, registry, run_figure
    from softmax_stability.cli import enable_compilation_cache
    from softmax_stability._io import ensure_writable_dir

    specs = registry()
    ap = argparse.ArgumentParser(prog="python -m figures", description="Regenerate figures and tables.")
    ap.add_argument("names", nargs="*", help=f"figures to make (default: all). One of: {', '.join(specs)}")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="profile", action="store_const", const="quick", help="small sizes (default)")
    g.add_argument("--full", dest="profile", action="store_const", const="full", help="the papers' sizes")
    ap.add_argument("--profile", dest="profile", choices=["smoke", "quick", "medium", "full"])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default figures/out)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list", action="store_true", help="list the figures and exit")
    ap.add_argument("--keep-going", action="store_true", help="continue after a failing figure")
    ap.add_argument("--force", action="store_true",
                    help="redo figures whose outputs are up to date (same code, profile and seed)")
    args = ap.parse_args(argv)
    profile = args.profile or "quick"
    if args.list:
        for s in specs.values():
            print(f"{s.name:<28} {s.kind:<8} {s.caption}")
        return 0
    unknown = [n for n in args.names if n not in specs]
    if unknown:
        ap.error(f"unknown figure(s) {', '.join(unknown)}; valid names: {', '.join(specs)}")
    try:
        out = ensure_writable_dir(args.out, "--out")
    except PermissionError as err:
        ap.error(str(err))
    enable_compilation_cache()
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


if __name__ == "__main__":
    sys.exit(main())
