"""``python -m proofs_check [--json PATH] [--ids ID ...] [--list] [--quiet] [--verbose]``.

Runs the registered symbolic checks, prints one row per check (check id, claim id, method,
status, seconds, evidence) and exits with status 1 if any check failed or errored. ``--json``
writes ``{"records": [...], "sympy": ..., "python": ..., "seconds": ...}`` atomically (temp file in
the same directory, then ``os.replace``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import sympy

from softmax_stability._io import atomic_write_text

from ._core import checks, run_all

_EVIDENCE_WIDTH = 90


def write_json(path, results, seconds: float) -> None:
    """Write the records to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "records": [r.to_dict() for r in results],
        "passed": all(r.status == "passed" for r in results),
        "seconds": seconds,
        "sympy": sympy.__version__,
        "python": platform.python_version(),
    }
    # one atomic writer for every output (it also gives the file the umask's mode, not mkstemp's 0600)
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def format_table(results, verbose: bool = False) -> str:
    cw = max([len("check")] + [len(r.check_id) for r in results])
    lw = max([len("claim")] + [len(r.claim_id) for r in results])
    mw = max([len("method")] + [len(r.method) for r in results])
    lines = [f"{'check':<{cw}}  {'claim':<{lw}}  {'method':<{mw}}  {'status':<7} {'time':>6}  evidence"]
    for r in results:
        ev = r.evidence
        if not verbose and len(ev) > _EVIDENCE_WIDTH:
            ev = ev[: _EVIDENCE_WIDTH - 3] + "..."
        lines.append(f"{r.check_id:<{cw}}  {r.claim_id:<{lw}}  {r.method:<{mw}}  {r.status:<7} {r.seconds:>5.1f}s  {ev}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m proofs_check", description=__doc__.splitlines()[0])
    ap.add_argument("--json", metavar="PATH", help="write the records as JSON (atomically)")
    ap.add_argument("--ids", nargs="+", metavar="ID", help="run only these check ids or claim ids")
    ap.add_argument("--list", action="store_true", help="list the checks without running them")
    ap.add_argument("--quiet", action="store_true", help="print only the summary and failures")
    ap.add_argument("--verbose", action="store_true", help="print the full evidence of every check")
    args = ap.parse_args(argv)

    if args.list:
        for spec in checks():
            print(f"{spec.check_id:<48} {spec.claim_id:<38} {spec.method}")
        return 0

    t0 = time.perf_counter()
    try:
        results = run_all(args.ids)
    except ValueError as err:
        ap.error(str(err))
    seconds = time.perf_counter() - t0
    bad = [r for r in results if r.status != "passed"]
    if not args.quiet:
        print(format_table(results, verbose=args.verbose))
    for r in bad:
        print(f"\n{r.status.upper()}: {r.check_id} [{r.claim_id}]\n  {r.evidence}", file=sys.stderr)
    print(f"\nproofs_check: {len(results) - len(bad)}/{len(results)} passed in {seconds:.1f} s")
    if args.json:
        write_json(args.json, results, seconds)
        print(f"wrote {args.json}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
