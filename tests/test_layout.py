"""The house: the library sits below the pipeline, no import cycle, no figure imports another figure,
tests use no figure internals, and an installed wheel works outside a checkout."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from figures._deps import ROOT, imported_files, module_file

LIBRARY = ("softmax_stability", "proofs_check")  # what the wheel installs
PIPELINE = ("figures", "benchmarks")


def _sources(top: str) -> list[Path]:
    return sorted((ROOT / top).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module name an import statement in ``path`` names (any depth, relative resolved)."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(ROOT).with_suffix("").parts
    package = rel[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names if module_file(f"{mod}.{a.name}"))
    return out


@pytest.mark.parametrize("top", LIBRARY)
def test_the_library_never_imports_the_pipeline_nor_uses_a_checkout_path(top):
    for p in _sources(top):
        bad = sorted(m for m in _imports(p) if m.split(".")[0] in PIPELINE)
        assert not bad, f"{p.relative_to(ROOT)} imports the pipeline: {bad}"
        assert "__file__" not in p.read_text(), f"{p.relative_to(ROOT)} locates files from its own path"


def test_no_import_cycle_between_files():
    """The explicit import graph of the checkout's files (lazy imports included) is acyclic."""
    files = [p for top in (*LIBRARY, "figures") for p in _sources(top)]
    graph = {p: {module_file(m) for m in _imports(p)} - {None, p} for p in files}
    state: dict[Path, int] = {}

    def visit(p, stack):
        state[p] = 1
        for q in graph.get(p, ()):
            if state.get(q) == 1:
                cyc = stack[stack.index(q):] + [q]
                raise AssertionError("import cycle: " + " -> ".join(str(c.relative_to(ROOT)) for c in cyc))
            if q not in state:
                visit(q, stack + [q])
        state[p] = 2

    for p in files:
        if p not in state:
            visit(p, [p])


def test_no_figure_imports_another_figure():
    figs = {p.stem for p in (ROOT / "figures").glob("*.py") if not p.stem.startswith("_")}
    for p in (ROOT / "figures").glob("*.py"):
        other = sorted(m for m in _imports(p) if m.startswith("figures.") and m.split(".")[1] in figs - {p.stem})
        assert not other, f"{p.name} imports figure(s) {other}"


def test_tests_use_no_figure_internals():
    figs = {p.stem for p in (ROOT / "figures").glob("*.py") if not p.stem.startswith("_")}
    for p in sorted((ROOT / "tests").glob("*.py")):
        used = sorted(m for m in _imports(p) if m.startswith("figures.") and m.split(".")[1] in figs)
        used += sorted(f"figures.{a}" for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.ImportFrom)
                       and n.module == "figures" for a in (x.name for x in n.names) if a in figs)
        assert not used, f"{p.name} imports figure modules {used}: test the library or experiments instead"


def test_dependency_closure_is_what_a_figure_imports():
    # dilution_phase_diagram uses dilution, not the SF training stack; sf_fig1 the reverse
    phase = {str(p.relative_to(ROOT)) for p in imported_files(["figures.dilution_phase_diagram"])}
    fig1 = {str(p.relative_to(ROOT)) for p in imported_files(["figures.sf_fig1"])}
    assert "softmax_stability/dilution.py" in phase and "figures/_common.py" in phase
    assert "softmax_stability/experiments/runner.py" not in phase
    assert "softmax_stability/experiments/runner.py" in fig1 and "softmax_stability/dilution.py" not in fig1


def test_an_edit_to_dilution_redoes_only_the_figures_that_import_it(tmp_path):
    """Fingerprints in a copy of the checkout before and after appending a comment to dilution.py."""
    import shutil

    for top in (*LIBRARY, "figures"):
        shutil.copytree(ROOT / top, tmp_path / top, ignore=shutil.ignore_patterns("out", "__pycache__"))
    # one child before the edit (fingerprints and, as the edit only appends a comment, which figures
    # import dilution.py) and one after it: a third child for the imports would only repeat the first's
    code = ("import json, sys; from figures._common import registry, fingerprint; "
            "from figures._deps import imported_files; "
            "print(json.dumps({'fp': {n: fingerprint(n, 'quick', 0) for n in registry()}, "
            "'dep': [n for n in registry() if any(p.name == 'dilution.py' and p.parent.name == "
            "'softmax_stability' for p in imported_files(['figures.' + n]))] if len(sys.argv) > 1 else []}))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "JAX_PLATFORMS": "cpu"}

    def fps(*args):
        import json

        return json.loads(subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=env, check=True,
                                         capture_output=True, text=True).stdout)

    first = fps("deps")
    before, depends = first["fp"], set(first["dep"])
    with open(tmp_path / "softmax_stability" / "dilution.py", "a") as f:
        f.write("\n# an edit\n")
    after = fps()["fp"]
    changed = {n for n in before if before[n] != after[n]}
    assert changed == depends
    assert "dilution_phase_diagram" in changed
    assert not changed & {"sf_fig1", "sf_convergence_table", "sf_loss_landscape", "sf_fig27"}
    assert len(changed) < len(before)


def test_an_installed_wheel_works_outside_a_checkout(tmp_path):
    """Build the wheel; no top-level `figures`; verify writes into --out (here: the current directory),
    and the checkout commands say what they need."""
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(wheel_dir), str(ROOT)], check=True, capture_output=True, text=True)
    (whl,) = wheel_dir.glob("*.whl")
    with zipfile.ZipFile(whl) as z:
        tops = {n.split("/")[0] for n in z.namelist() if not n.split("/")[0].endswith((".dist-info", ".data"))}
        z.extractall(tmp_path / "site")
    assert tops == {"softmax_stability", "proofs_check"}, tops
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "JAX_PLATFORMS": "cpu"}
    run = lambda *a: subprocess.run([sys.executable, "-c", "import sys; from softmax_stability.cli import main; "  # noqa: E731
                                     "sys.exit(main(sys.argv[1:]))", *a], cwd=work, env=env,
                                    capture_output=True, text=True)
    r = run("verify", "A2-ssa-unit-temperature", "--no-adversary", "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (work / "verification.json").is_file()
    r = run("figures")
    assert r.returncode == 2 and "source checkout" in r.stderr, r.stderr
    imported = subprocess.run([sys.executable, "-c", "import softmax_stability.cli as c; print(c.__file__)"],
                              cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    assert str(tmp_path / "site") in imported  # the wheel's copy ran, not the checkout's
