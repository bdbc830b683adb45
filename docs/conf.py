"""Sphinx configuration of skisal's documentation.

Build (from the repository root; ``bash scripts/docs.sh`` also installs what is missing)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # skisal from this checkout, installed or not

import skisal_docs  # noqa: E402

import skisal  # noqa: E402

# Small networks everywhere: one thread is as fast and immune to oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")

project = "skisal"
author = "skisal developers"
copyright = "2026, skisal developers"
release = skisal.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "_ext",
    "_templates",
    "results",  # experiment records, linked as downloads (the README links them too)
    "snippets",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.json",
    "auto_examples/*.md5",
    "auto_examples/*.pickle",
]

# -- API reference: one page per public module, driven by every __all__ -----------
skisal_docs.generate_api_pages(HERE / "api" / "modules")

autosummary_generate = True
autosummary_ignore_module_all = False
autosummary_imported_members = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc sections carry the types
autodoc_inherit_docstrings = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False


def _drop_builtin_docstrings(app, what, name, obj, options, lines):
    """A constant without a ``#:`` comment would show its type's docstring (tuple's, dict's)."""
    if what in ("data", "attribute") and lines:
        own = inspect.cleandoc(type(obj).__doc__ or "").splitlines()
        if [line.rstrip() for line in lines if line.strip()] == [x for x in own if x.strip()]:
            lines[:] = []


def setup(app):
    # Before numpydoc reformats the lines.
    app.connect("autodoc-process-docstring", _drop_builtin_docstrings, priority=100)
    app.connect("source-read", skisal_docs.add_missing_example_titles)


# -- Markdown (MyST) ----------------------------------------------------------------
myst_enable_extensions = ["amsmath", "dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- Gallery: every example runs in its CPU-sized --quick mode ---------------------
_not_executed = "|".join(re.escape(name) for name in skisal_docs.NOT_EXECUTED)
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": rf"^(?!.*(?:{_not_executed})$).*\.py$" if _not_executed else r"\.py$",
    "reset_argv": "skisal_docs.reset_argv",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
    "remove_config_comments": True,
    "show_memory": False,
    "backreferences_dir": None,
}
_gallery_list = (
    ", ".join(f"``{name}`` ({why})" for name, why in skisal_docs.NOT_EXECUTED.items())
    or "none: every example above was run to produce this page"
)
rst_epilog = f"""
.. |gallery_not_executed| replace:: {_gallery_list}
"""

# -- HTML --------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skisal {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_sidebars = {"changelog": [], "citing": [], "install": [], "quickstart": []}
html_show_sourcelink = False
