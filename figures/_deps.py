"""What a pipeline step's output depends on: the source files its module imports, transitively.

A figure's fingerprint (``figures._common.fingerprint``) and the reuse of ``proofs_check`` and
``verify`` results by ``python -m figures run`` hash exactly these files, so an edit to
``softmax_stability/dilution.py`` redoes only the outputs whose code imports it. The imports are
read from the source (``ast``), not executed: every ``import`` statement counts, including those
inside functions, and a package ``__init__`` that imports every module of its package
(``pkgutil.iter_modules(__path__)``, or the claims registry's ``load_families()``) depends on all of them; imports of packages outside this checkout (jax, numpy, ...) are not followed, and
their versions enter the fingerprints separately.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path
from typing import Iterable

__all__ = ["ROOT", "PACKAGES", "module_file", "imported_files", "files_fingerprint"]

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("softmax_stability", "proofs_check", "figures")  # the checkout's own import names


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source file of module ``name`` in the checkout (a package's ``__init__.py``), or None."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _direct_imports(path: Path, root: Path) -> set[str]:
    """Module names ``path`` imports (absolute; relative imports resolved), with their parents."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)  # a submodule imported by name
    text = path.read_text()
    if path.name == "__init__.py" and ("iter_modules(__path__)" in text or "load_families()" in text):
        # a package that imports all its modules on import (the claims registry's families)
        names.update(f"{here}.{p.stem}" for p in path.parent.glob("*.py") if p.stem != "__init__")
    out = set()
    for n in names:
        parts = n.split(".")
        out.update(".".join(parts[: i + 1]) for i in range(len(parts)))  # importing a.b imports a
    return out


@functools.lru_cache(maxsize=None)
def _closure(name: str, root: Path) -> frozenset[Path]:
    start = module_file(name, root)
    if start is None:
        raise ValueError(f"module {name!r} is not a source file of this checkout ({root})")
    seen: set[Path] = set()
    todo = [start]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for m in _direct_imports(p, root):
            f = module_file(m, root)
            if f is not None and f not in seen:
                todo.append(f)
    return frozenset(seen)


def imported_files(modules: Iterable[str], root: Path = ROOT) -> list[Path]:
    """Every checkout source file that importing ``modules`` reads, sorted (the modules included).

    Example:
      >>> files = imported_files(["softmax_stability.dilution"])
      >>> sorted(p.name for p in files)[:2]
      ['__init__.py', '_checks.py']
    """
    files: set[Path] = set()
    for m in modules:
        files |= _closure(m, Path(root))
    return sorted(files)


def files_fingerprint(files: Iterable[Path], *extra: object, root: Path = ROOT) -> str:
    """SHA-256 (16 hex digits) over the files' paths and bytes and ``extra`` (profile, seed, versions)."""
    h = hashlib.sha256("|".join(map(str, extra)).encode())
    for p in sorted(files):
        h.update(str(Path(p).relative_to(root)).encode())
        h.update(b"\0")
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]
