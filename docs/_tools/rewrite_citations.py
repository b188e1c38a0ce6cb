"""Rewrite citations of the earlier note names into paths inside the repository.

Docstrings, claims, figure captions, tests and the README cite the derivation notes under the names
they had before they moved into ``docs/notes/`` (``anchors.md``, ``semantic_focus.md``, ``ssa.md``,
sometimes with a ``shared/reference/`` prefix). The notes keep their section numbering, so a
citation is rewritten by replacing the file name alone:

    semantic_focus.md §2.4 O6                 ->  docs/notes/semantic_focus.md §2.4 O6
    ``shared/reference/ssa.md`` §2.1, §3      ->  ``docs/notes/selective_attention.md`` §2.1, §3
    anchors.md §1.3, Popoviciu's inequality   ->  docs/notes/field.md §1.3, Popoviciu's inequality

The rewrite is idempotent (a name already under ``docs/notes/`` is not matched again) and touches
nothing else. ``tests/test_docs.py`` then checks that every rewritten citation resolves (flip its
``REWRITTEN`` to ``True`` to also check that no old name is left).

Usage, from the repository root::

    python docs/_tools/rewrite_citations.py            # dry run: what would change, per file
    python docs/_tools/rewrite_citations.py --apply    # rewrite the files in place
    python docs/_tools/rewrite_citations.py --check    # exit 1 if anything is left to rewrite
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

#: earlier note name -> the notes file that replaces it (same section numbering)
MAPPING = {
    "anchors": "docs/notes/field.md",
    "semantic_focus": "docs/notes/semantic_focus.md",
    "ssa": "docs/notes/selective_attention.md",
}

#: what is rewritten (relative to the repository root)
TARGETS = ("softmax_stability", "figures", "proofs_check", "benchmarks", "tests", "README.md")
SUFFIXES = (".py", ".md", ".rst", ".txt", ".toml", ".cfg", ".json")
SKIP_PARTS = {"__pycache__", "out", ".pytest_cache", ".hypothesis"}

# A bare name (not preceded by a path character, so "docs/notes/semantic_focus.md" is never
# matched again), with an optional prefix of the team notes' location.
OLD = re.compile(r"(?<![\w./-])(?:shared/reference/|reference/)?(?P<name>"
                 + "|".join(map(re.escape, MAPPING)) + r")\.md(?![\w-])")
# "the reference notes `shared/reference/*.md`"
OLD_GLOB = re.compile(r"(?<![\w./-])(?:shared/)?reference/\*\.md")


def rewrite(text: str) -> tuple[str, int]:
    """The text with every old citation rewritten, and how many were."""
    text, n1 = OLD.subn(lambda m: MAPPING[m.group("name")], text)
    text, n2 = OLD_GLOB.subn("docs/notes/*.md", text)
    return text, n1 + n2


def files(root: Path) -> list[Path]:
    out = []
    for name in TARGETS:
        p = root / name
        cands = [p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else []
        out += [f for f in cands if f.is_file() and f.suffix in SUFFIXES
                and not SKIP_PARTS & set(f.relative_to(root).parts)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2],
                    help="repository root (default: the checkout this script is in)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--apply", action="store_true", help="rewrite the files in place")
    mode.add_argument("--check", action="store_true", help="exit 1 if anything is left to rewrite")
    args = ap.parse_args(argv)
    root = args.root.resolve()

    total, changed = 0, 0
    for f in files(root):
        raw = f.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        new, n = rewrite(text)
        if not n:
            continue
        total, changed = total + n, changed + 1
        print(f"{f.relative_to(root)}: {n} citation{'s' * (n != 1)}")
        if args.apply:
            f.write_bytes(new.encode("utf-8"))       # bytes: line endings kept as they were
    verb = "rewrote" if args.apply else "to rewrite:"
    print(f"{verb} {total} citations in {changed} files" if total else "no old-style citation left")
    return 1 if (args.check and total) else 0


if __name__ == "__main__":
    sys.exit(main())
