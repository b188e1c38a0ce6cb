"""Write the pages that are generated from the library's registries, before Sphinx reads sources.

* ``_generated/claims.md`` -- the claims table, :func:`softmax_stability.claims.claims_markdown`
  (the same text as the README's claims table);
* ``_generated/gallery.md`` -- the figure list, :func:`figures._common.gallery_markdown`.

The files are rewritten only when their text changes (so an incremental build stays incremental)
and are not committed (``.gitignore``).
"""

from __future__ import annotations

from pathlib import Path

CLAIMS_HEAD = """\
# Claims table

Every claim of the registry (`softmax_stability.claims`), generated when these pages are built
from `softmax_stability.claims.claims_markdown()`; it is the same table as the README's. See
[the design notes](../design.md#claims-the-verification-backbone) for what a claim is, and
`softmax-stability verify` for the verdicts.

"""

GALLERY_HEAD = """\
# Figure gallery

Every registered figure (`figures._common.registry()`), generated when these pages are built from
`figures._common.gallery_markdown()`. `python -m figures` (or `make run`) writes them to
`figures/out/`, each with its data (CSV) and provenance (JSON).

"""


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def generate(srcdir: str | Path) -> None:
    from figures._common import gallery_markdown
    from softmax_stability.claims import claims_markdown

    out = Path(srcdir) / "_generated"
    _write_if_changed(out / "claims.md", CLAIMS_HEAD + claims_markdown() + "\n")
    _write_if_changed(out / "gallery.md", GALLERY_HEAD + gallery_markdown() + "\n")


def _on_builder_inited(app) -> None:
    generate(app.srcdir)


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
