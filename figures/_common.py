"""Figure framework: registration, atomic outputs and provenance.

Each figure lives in its own module ``figures/<name>.py`` and decorates one function with
:func:`figure`. The runner (:func:`run_figure`) gives it a :class:`FigureContext`, times it and writes
``<name>.provenance.json`` next to the outputs (library and JAX versions, device, seed, profile,
parameters, wall time, files written). Every output is written atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import importlib
import io
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from softmax_stability._io import atomic_write_json, atomic_write_text, atomic_write_with

__all__ = ["FigureSpec", "FigureContext", "figure", "registry", "run_figure", "fingerprint", "gallery_markdown", "PROFILES",
           "DEFAULT_OUT"]

PROFILES = ("smoke", "quick", "medium", "full")  # smoke: the test suite's tiny version of quick;
# medium: quick everywhere except the SF training runs (runner.profile_settings)
DEFAULT_OUT = Path(__file__).resolve().parent / "out"


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    name: str
    caption: str
    source: str
    fn: Callable[["FigureContext"], None]
    kind: str  # "paper" (a paper's figure/table) or "library" (this library's own)
    order: int
    inputs: tuple[str, ...] = ()  # files of the output directory it reads (enter its fingerprint)


_REGISTRY: dict[str, FigureSpec] = {}


def figure(*, name: str, caption: str, source: str, order: int = 100, inputs: Sequence[str] = ()) -> Callable:
    """Register ``fn(ctx)`` as the figure ``name`` (``caption``: one sentence; ``source``: the paper
    figure it reproduces, or what it shows; ``inputs``: files of the output directory that it reads,
    such as ``verification.json``, so that a change to them redoes it)."""

    def deco(fn: Callable[["FigureContext"], None]):
        kind = "paper" if name.startswith(("sf_", "ssa_")) else "library"
        _REGISTRY[name] = FigureSpec(name, caption, source, fn, kind, order, tuple(inputs))
        return fn

    return deco


def prog_name(sub: str = "") -> str:
    """The pipeline command as the user called it: ``python -m figures [sub]``, or
    ``softmax-stability [sub]`` when the console script handed the command over."""
    base = os.environ.get("SOFTMAX_STABILITY_PROG", "python -m figures")
    return f"{base} {sub}".strip() if sub else base


def registry() -> dict[str, FigureSpec]:
    """All figures (imports every module of the ``figures`` package once)."""
    import figures

    for info in pkgutil.iter_modules(figures.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"figures.{info.name}")
    return dict(sorted(_REGISTRY.items(), key=lambda kv: (kv[1].order, kv[0])))


class FigureContext:
    """What a figure function gets: profile, seed, output directory and atomic writers."""

    def __init__(self, name: str, out_dir: Path, profile: str = "quick", seed: int = 0,
                 show_progress: bool = True):
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
        self.name = name
        self.out_dir = Path(out_dir)
        self.profile = profile
        self.seed = int(seed)
        self.params: dict[str, Any] = {}
        self.files: list[str] = []
        self.outcome: str | None = None
        self.show_progress = show_progress

    @property
    def quick(self) -> bool:
        """True for the quick, medium and smoke profiles (medium differs from quick only in the SF
        training runs of ``runner.profile_settings``)."""
        return self.profile in ("quick", "medium", "smoke")

    @property
    def size_profile(self) -> str:
        """The profile that sets sizes other than the SF training runs: ``quick`` for medium."""
        return "quick" if self.profile == "medium" else self.profile

    @property
    def smoke(self) -> bool:
        """True in the test suite's smoke profile: shrink sizes further, keep every code path."""
        return self.profile == "smoke"

    @property
    def rng_key(self):
        import jax

        return jax.random.PRNGKey(self.seed)

    def progress(self, iterable: Iterable, desc: str | None = None, total: int | None = None):
        """``tqdm`` over ``iterable`` (silent when progress is off)."""
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc or self.name, total=total, leave=False,
                    disable=None if self.show_progress else True)  # None: off in a log file

    def set_outcome(self, text: str) -> None:
        """The figure's measured outcome in one or two sentences, whichever way it goes (the report
        prints it right under the image); say the same on the image itself."""
        self.outcome = " ".join(str(text).split())

    def path(self, suffix: str = "", ext: str = "") -> Path:
        stem = self.name + (f"_{suffix}" if suffix else "")
        return self.out_dir / f"{stem}{ext}"

    def _record(self, p: Path) -> Path:
        self.files.append(p.name)
        return p

    def save_figure(self, fig, suffix: str = "", dpi: int = 150) -> None:
        """Write ``<name>[_suffix].png`` and ``.pdf`` atomically and close the figure."""
        import matplotlib.pyplot as plt

        for ext in (".png", ".pdf"):
            p = self.path(suffix, ext)
            atomic_write_with(p, lambda tmp, ext=ext: fig.savefig(tmp, dpi=dpi, bbox_inches="tight",
                                                                  format=ext[1:]))
            self._record(p)
        plt.close(fig)

    def save_csv(self, header: Sequence[str], rows: Iterable[Sequence[Any]], suffix: str = "") -> None:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        for row in rows:
            w.writerow(row)
        self._record(atomic_write_text(self.path(suffix, ".csv"), buf.getvalue()))

    def save_markdown(self, text: str, suffix: str = "") -> None:
        self._record(atomic_write_text(self.path(suffix, ".md"), text))

    def save_json(self, obj: Any, suffix: str = "data") -> None:
        self._record(atomic_write_json(self.path(suffix, ".json"), obj))


def _environment() -> dict[str, Any]:
    import jax

    import softmax_stability

    devs = jax.devices()
    return {
        "library_version": softmax_stability.__version__,
        "jax_version": jax.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in devs],
        "cpu_count": os.cpu_count(),
        "x64": bool(jax.config.jax_enable_x64),
    }


def fingerprint(name: str, profile: str, seed: int, out_dir: str | os.PathLike | None = None) -> str:
    """Hash of what figure ``name``'s output depends on: its profile and seed, the JAX and NumPy
    versions, the source of every checkout module the figure's module imports, transitively
    (:func:`figures._deps.imported_files`: the figure itself, ``figures/_common.py`` and the library
    modules it uses), and the bytes of the files of ``out_dir`` it reads (its spec's ``inputs``).
    An edit to a library module redoes only the figures that import it."""
    import jax
    import numpy

    from figures._deps import files_fingerprint, imported_files

    files = imported_files([f"figures.{name}"])
    data = []
    for f in registry()[name].inputs if out_dir is not None else ():
        p = Path(out_dir) / f
        data.append(hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else f"{f}: absent")
    return files_fingerprint(files, name, profile, seed, jax.__version__, numpy.__version__, *data)


def cached_provenance(name: str, out_dir: Path, fp: str) -> dict[str, Any] | None:
    """The provenance record of a finished run with fingerprint ``fp`` whose files all exist."""
    try:
        prov = json.loads((Path(out_dir) / f"{name}.provenance.json").read_text())
    except (OSError, ValueError):
        return None
    if prov.get("fingerprint") != fp:
        return None
    if not all((Path(out_dir) / f).is_file() for f in prov.get("files", [])):
        return None
    return prov


def run_figure(name: str, out_dir: str | os.PathLike = DEFAULT_OUT, profile: str = "quick",
               seed: int = 0, show_progress: bool = True, force: bool = True) -> dict[str, Any]:
    """Run one figure and write its provenance JSON; returns the provenance record.

    With ``force=False`` a figure whose outputs exist from a run with the same fingerprint
    (:func:`fingerprint`) is not redone; its record gets ``"cached": True``.
    """
    specs = registry()
    if name not in specs:
        raise KeyError(f"unknown figure {name!r}; valid names: {', '.join(specs)}")
    spec = specs[name]
    fp = fingerprint(name, profile, seed, out_dir)
    if not force:
        prov = cached_provenance(name, Path(out_dir), fp)
        if prov is not None:
            return {**prov, "cached": True}
    ctx = FigureContext(name, Path(out_dir), profile, seed, show_progress)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    spec.fn(ctx)
    wall = time.perf_counter() - t0
    prov = {
        "figure": name,
        "caption": spec.caption,
        "source": spec.source,
        "kind": spec.kind,
        "profile": profile,
        "seed": seed,
        "params": ctx.params,
        "outcome": ctx.outcome,
        "wall_time_s": round(wall, 3),
        "files": ctx.files,
        "fingerprint": fp,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **_environment(),
    }
    atomic_write_json(ctx.path("", ".provenance.json"), prov)
    return prov


def gallery_markdown() -> str:
    """Every registered figure as a Markdown list (name, caption, source): the README's gallery is
    this output, and a test keeps the two in step."""
    lines = []
    for s in registry().values():
        what = "paper figure/table" if s.kind == "paper" else "library figure"
        lines.append(f"- **`{s.name}`** ({what}): {s.caption} *Source: {s.source}.*")
    return "\n".join(lines)
