"""Sphinx configuration for softmax-stability.

Build: ``python -m sphinx -b html docs docs/_build/html`` from the repository root (add ``-W
--keep-going`` to fail on any warning, as ``tests/test_docs.py`` does). The claims table and the
figure gallery are generated at build time from the registries (``docs/_ext/generated_pages.py``)
into ``docs/_generated/``, which is not committed.
"""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)                                   # the library, figures/, proofs_check/
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))
os.environ.setdefault("JAX_PLATFORMS", "cpu")              # the docs never need an accelerator

project = "softmax-stability"
author = "the softmax-stability authors"
copyright = "the softmax-stability authors"  # noqa: A001 (Sphinx's name)
try:
    from importlib.metadata import version as _version
    release = _version("softmax-stability")
except Exception:  # not installed: read it from the source tree
    import re
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as fh:
        release = re.search(r'^version\s*=\s*"([^"]+)"', fh.read(), re.M).group(1)
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_parser",
    "generated_pages",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_tools", "_ext", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
nitpicky = False

# --- MyST (the notes and the generated pages are Markdown) ---------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 4          # "§2.4" -> an anchor on every heading down to ####
myst_dmath_double_inline = True

# --- autodoc / napoleon (Google-style "Args:", "Returns:", "Example:" sections) ----------------
autodoc_default_options = {"members": True, "member-order": "bysource", "show-inheritance": True}
autodoc_typehints = "description"
autodoc_preserve_defaults = True
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True

# --- HTML --------------------------------------------------------------------------------------
html_theme = "furo" if find_spec("furo") is not None else "alabaster"
html_title = f"softmax-stability {release}"
html_static_path: list[str] = []
