"""The documentation: every cited source resolves, no citation points outside the repository, and
the Sphinx build is clean.

A citation is ``docs/<path>.md`` followed by section marks, e.g.
``docs/notes/semantic_focus.md §2.4 O6``, ``docs/notes/selective_attention.md §5 item 21``,
``docs/notes/field.md §1.3-1.5`` or ``docs/notes/selective_attention.md §2.1, Lemma B``; or
``docs/<path>.md#anchor``. How a mark resolves in the Markdown file (the rule the notes state in
``docs/notes/index.md``):

* ``§2.4`` -- a heading whose text starts with the number ``2.4``;
* ``§5.9`` with no heading 5.9 -- entry 9 of the numbered list directly under heading 5;
* ``§5 item 21``, ``items 2-4`` -- entries of the numbered list under the last ``§`` section;
* ``O6`` -- a heading ``O6`` (under the last ``§`` section if one was given, else anywhere);
* ``Table D``, ``Lemma B`` -- the words appear inside the last ``§`` section;
* ``§1.3-1.5`` -- both ends resolve;
* ``#anchor`` -- a heading whose MyST slug is ``anchor``, or an explicit ``(anchor)=`` target.

Citations are collected from the source text of the library, the pipeline, the tests, the
README and the docs, and from the strings the code builds at run time: every docstring of the
``softmax_stability``, ``figures`` and ``proofs_check`` modules, every string field of every
registered claim, every figure's caption and source.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Flip to True once ``docs/_tools/rewrite_citations.py --apply`` has rewritten the citations of
#: the earlier note names (then ``test_no_old_style_citation`` runs instead of being skipped).
REWRITTEN = True

#: Where citations are looked for in source text (the rewrite script rewrites the first six).
SCANNED = ["softmax_stability", "figures", "proofs_check", "benchmarks", "tests", "README.md", "docs"]
SKIP_PARTS = {"_build", "_generated", "__pycache__", "out"}
THIS_FILE = Path(__file__).resolve()

# --------------------------------------------------------------------------------------------
# citations

CITATION = re.compile(r"(?<![\w./-])docs/(?P<path>[\w./-]*?\.md)(?:#(?P<anchor>[\w-]+))?")
_NUM = r"\d+(?:\.\d+)*"
# between two marks of one citation: blanks (a citation may wrap), RST/Markdown code quotes,
# separators, "and", a reliability tag such as [3P], a comment marker on a continued line
_SEP = re.compile(r"(?:\s+|``|`|[,;/]|\band\b|\[[^\]\n]{1,40}\]|#:?(?=\s))*")
_TOKENS = [
    ("section", re.compile(rf"§\s*(?P<a>{_NUM})(?:\s*-\s*§?\s*(?P<b>{_NUM}))?")),
    ("items", re.compile(r"items?\s+(?P<a>\d+)(?:\s*-\s*(?P<b>\d+))?\b")),
    ("label", re.compile(r"(?P<a>O\d+)\b")),
    ("named", re.compile(r"(?P<a>(?:Table|Lemma)\s+[A-Z0-9]+)\b")),
]


@dataclasses.dataclass(frozen=True)
class Citation:
    path: str                 # relative to docs/, e.g. "notes/field.md"
    anchor: str | None
    marks: tuple              # (kind, a, b) in order
    where: str                # file:line or the runtime object it came from
    text: str                 # the citation as written (for messages)


def parse_citations(text: str, where: str) -> list[Citation]:
    """Every ``docs/...md`` citation in ``text`` with the section marks that follow it."""
    out = []
    for m in CITATION.finditer(text):
        pos, marks = m.end(), []
        if m.group("anchor") is None:
            while True:
                sep = _SEP.match(text, pos)
                start = sep.end()
                for kind, rx in _TOKENS:
                    t = rx.match(text, start)
                    if t:
                        marks.append((kind, t.group("a"), t.groupdict().get("b")))
                        pos = t.end()
                        break
                else:
                    break
        line = text.count("\n", 0, m.start()) + 1
        out.append(Citation(m.group("path"), m.group("anchor"), tuple(marks), f"{where}:{line}",
                            " ".join(text[m.start():pos].split())))
    return out


# --------------------------------------------------------------------------------------------
# the Markdown notes: headings, numbered sections, list entries, labels


def _slug(title: str) -> str:
    """MyST's default heading slug (``myst_heading_anchors``)."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


@dataclasses.dataclass
class _Section:
    number: str
    level: int
    start: int
    end: int = 0
    items: set = dataclasses.field(default_factory=set)


class MarkdownDoc:
    def __init__(self, path: Path):
        self.path = path
        lines = path.read_text(encoding="utf-8").split("\n")
        self.lines = lines
        self.sections: dict[str, _Section] = {}
        self.labels: dict[str, list[int]] = {}     # "O6" -> heading line numbers
        self.slugs: set[str] = set()
        headings = []                              # (line, level, title)
        fence = False
        for i, line in enumerate(lines):
            if line.lstrip().startswith(("```", "~~~")):
                fence = not fence
                continue
            if fence:
                continue
            h = re.match(r"^(#{1,6})\s+(.*?)\s*$", line)
            if h:
                headings.append((i, len(h.group(1)), h.group(2)))
                self.slugs.add(_slug(h.group(2)))
            t = re.match(r"^\(([\w-]+)\)=\s*$", line)
            if t:
                self.slugs.add(t.group(1))
        for j, (i, level, title) in enumerate(headings):
            end = next((k for k, lv, _ in headings[j + 1:] if lv <= level), len(lines))
            num = re.match(rf"^({_NUM})\.?(?:\s|$)", title)
            if num:
                if num.group(1) in self.sections:
                    raise AssertionError(f"{path}: section {num.group(1)} appears twice")
                self.sections[num.group(1)] = _Section(num.group(1), level, i, end)
            lab = re.match(r"^(O\d+)\b", title)
            if lab:
                self.labels.setdefault(lab.group(1), []).append(i)
        # entries of a numbered list directly under a numbered heading (before any sub-heading)
        for sec in self.sections.values():
            stop = next((k for k, _, _ in headings if sec.start < k < sec.end), sec.end)
            fence = False
            for line in lines[sec.start + 1:stop]:
                if line.lstrip().startswith(("```", "~~~")):
                    fence = not fence
                entry = None if fence else re.match(r"^(\d+)\.\s", line)
                if entry:
                    sec.items.add(int(entry.group(1)))

    def text_of(self, number: str) -> str:
        s = self.sections[number]
        return "\n".join(self.lines[s.start:s.end])

    def resolve_section(self, number: str) -> tuple[str | None, str | None]:
        """(section, None) for a heading; (parent, item) for "§5.9" meaning entry 9 of §5."""
        if number in self.sections:
            return number, None
        parent, _, last = number.rpartition(".")
        if parent in self.sections and last.isdigit() and int(last) in self.sections[parent].items:
            return parent, last
        return None, None


@lru_cache(maxsize=None)
def _doc(path: str) -> MarkdownDoc | None:
    p = ROOT / "docs" / path
    return MarkdownDoc(p) if p.is_file() else None


def unresolved(c: Citation) -> list[str]:
    """What in citation ``c`` does not resolve (empty when everything does)."""
    doc = _doc(c.path)
    if doc is None:
        return [f"no file docs/{c.path}"]
    if c.anchor is not None:
        return [] if c.anchor in doc.slugs else [f"no heading or target #{c.anchor}"]
    bad, current = [], None
    for kind, a, b in c.marks:
        if kind == "section":
            for n in filter(None, (a, b)):
                sec, _ = doc.resolve_section(n)
                if sec is None:
                    bad.append(f"§{n}")
                elif n == a:
                    current = sec
        elif kind == "items":
            if current is None:
                bad.append(f"item {a} without a section")
                continue
            for n in range(int(a), int(b or a) + 1):
                if n not in doc.sections[current].items:
                    bad.append(f"§{current} item {n}")
        elif kind == "label":
            hits = doc.labels.get(a, [])
            if current is not None:
                s = doc.sections[current]
                hits = [h for h in hits if s.start < h < s.end]
            if not hits:
                bad.append(f"{'§' + current + ' ' if current else ''}{a}")
        elif kind == "named":
            hay = doc.text_of(current) if current else "\n".join(doc.lines)
            if not re.search(r"\b" + re.sub(r"\s+", r"\\s+", a) + r"\b", hay):
                bad.append(f"{'§' + current + ' ' if current else ''}{a}")
    return bad


# --------------------------------------------------------------------------------------------
# where citations live


def _source_files() -> list[Path]:
    files = []
    for name in SCANNED:
        p = ROOT / name
        cands = [p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else []
        for f in cands:
            if (f.is_file() and f.suffix in (".py", ".md", ".rst", ".txt", ".toml", ".json")
                    and not SKIP_PARTS & set(f.relative_to(ROOT).parts) and f.resolve() != THIS_FILE):
                files.append(f)
    return files


def _strings(obj, seen=None):
    """Every string inside a dataclass / list / tuple / dict, recursively (claims, mutants)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, str):
        yield obj
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _strings(getattr(obj, f.name), seen)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for x in obj:
            yield from _strings(x, seen)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _strings(x, seen)


def _docstrings():
    """(where, docstring) for every module, class, function and method of the packages."""
    for pkg_name in ("softmax_stability", "figures", "proofs_check"):
        pkg = importlib.import_module(pkg_name)
        mods = [pkg]
        for i in pkgutil.walk_packages(pkg.__path__, pkg_name + "."):
            if i.name.endswith("__main__"):     # importing it would run the CLI
                continue
            try:
                mods.append(importlib.import_module(i.name))
            except ModuleNotFoundError as err:  # a module of an optional extra (flax, equinox) absent
                if err.name not in ("flax", "equinox"):
                    raise
        for mod in mods:
            if mod.__doc__:
                yield mod.__name__, mod.__doc__
            for name, obj in vars(mod).items():
                if getattr(obj, "__module__", None) != mod.__name__:
                    continue
                if inspect.isclass(obj) or inspect.isfunction(obj) or callable(obj):
                    doc = getattr(obj, "__doc__", None)
                    if isinstance(doc, str) and doc:
                        yield f"{mod.__name__}.{name}", doc
                if inspect.isclass(obj):
                    for attr, member in vars(obj).items():
                        doc = getattr(member, "__doc__", None)
                        if isinstance(doc, str) and doc and (inspect.isfunction(member)
                                                             or isinstance(member, (property, classmethod, staticmethod))):
                            yield f"{mod.__name__}.{name}.{attr}", doc


def runtime_texts() -> list[tuple[str, str]]:
    """Strings the code builds at run time: docstrings, claims' fields, figure captions/sources."""
    from figures._common import registry
    from softmax_stability.claims import all_claims

    out = list(_docstrings())
    for c in all_claims():
        out.extend((f"claim {c.id}", s) for s in _strings(c))
    for name, spec in registry().items():
        out.append((f"figure {name} caption", spec.caption))
        out.append((f"figure {name} source", spec.source))
    return out


def all_texts() -> list[tuple[str, str]]:
    files = [(str(f.relative_to(ROOT)), f.read_text(encoding="utf-8")) for f in _source_files()]
    return files + runtime_texts()


# --------------------------------------------------------------------------------------------
# tests


def test_parser_reads_every_form_of_section_mark():
    text = ("(docs/notes/field.md §1.1, §1.3-1.5 [D]; docs/notes/semantic_focus.md §2.4 O1, O5, [OURS])\n"
            "``docs/notes/selective_attention.md`` §2-§3 and\n    §5 items 21-23. "
            "docs/notes/selective_attention.md §2.1, Lemma B), docs/notes/semantic_focus.md §2.2/§5.9: x "
            "docs/design.md#claims-the-verification-backbone")
    got = [(c.path, c.anchor, c.marks) for c in parse_citations(text, "t")]
    assert got == [
        ("notes/field.md", None, (("section", "1.1", None), ("section", "1.3", "1.5"))),
        ("notes/semantic_focus.md", None, (("section", "2.4", None), ("label", "O1", None),
                                           ("label", "O5", None))),
        ("notes/selective_attention.md", None, (("section", "2", "3"), ("section", "5", None),
                                                ("items", "21", "23"))),
        ("notes/selective_attention.md", None, (("section", "2.1", None), ("named", "Lemma B", None))),
        ("notes/semantic_focus.md", None, (("section", "2.2", None), ("section", "5.9", None))),
        ("design.md", "claims-the-verification-backbone", ()),
    ]
    assert all(not unresolved(c) for c in parse_citations(text, "t"))


def test_resolver_rejects_what_is_not_there():
    bad = ("docs/notes/field.md §42; docs/notes/semantic_focus.md §2.4 O9; docs/notes/field.md §8 item 99; "
           "docs/notes/nowhere.md §1; docs/notes/selective_attention.md §3 Table Z; docs/design.md#no-such")
    problems = [unresolved(c) for c in parse_citations(bad, "t")]
    assert all(problems), problems


def test_every_note_numbers_its_sections_once():
    notes = sorted((ROOT / "docs" / "notes").glob("*.md"))
    assert {p.stem for p in notes} >= {"field", "semantic_focus", "selective_attention"}
    for p in notes:
        MarkdownDoc(p)    # raises on a section number used twice


def test_every_docs_citation_resolves():
    cites = [c for where, text in all_texts() for c in parse_citations(text, where)]
    assert cites, "no docs/ citation found at all"
    broken = [f"{c.where}: {c.text!r}: {', '.join(unresolved(c))}" for c in cites if unresolved(c)]
    assert not broken, "citations that do not resolve in docs/:\n" + "\n".join(broken)


OLD_NAMES = ("anchors", "semantic_focus", "ssa")
OLD_CITATION = re.compile(r"(?<![\w./-])(?:shared/reference/|reference/)?(?:"
                          + "|".join(OLD_NAMES) + r")\.md(?![\w-])")


@pytest.mark.skipif(not REWRITTEN, reason="citations not yet rewritten")
def test_no_old_style_citation():
    """No source cites the notes by a name outside docs/ (run docs/_tools/rewrite_citations.py)."""
    old = []
    for where, text in [t for t in all_texts() if not t[0].startswith("docs" + os.sep)]:
        for m in OLD_CITATION.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            old.append(f"{where}:{line}: {text[m.start():m.end() + 30]!r}")
    assert not old, "old-style citations remain:\n" + "\n".join(old)


def test_readme_points_to_docs_not_outside():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/design.md" in readme
    outside = [m.group(0) for m in re.finditer(r"(?<![\w/])(?:shared/)?DESIGN\.md", readme)]
    assert not outside, f"README links to a design document outside the repository: {outside}"
    assert "shared/reference" not in readme


def test_sphinx_build_has_no_warnings(tmp_path):
    if find_spec("sphinx") is None or find_spec("myst_parser") is None:
        pytest.skip("sphinx and myst-parser are not installed (pip install -e '.[docs]')")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "docs", str(tmp_path / "html")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    assert (tmp_path / "html" / "_generated" / "claims.html").is_file()
