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
from sphinx.util import logging  # noqa: E402

import skisal  # noqa: E402

logger = logging.getLogger(__name__)

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

# The generated pages, named: with ``True``, autosummary takes the list of pages from the
# previous build's saved environment and writes no stubs for a module added since.
autosummary_generate = sorted(
    str(path.relative_to(HERE)) for path in (HERE / "api" / "modules").rglob("*.rst")
)
autosummary_ignore_module_all = False
autosummary_imported_members = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc sections carry the types
autodoc_inherit_docstrings = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- Docstring validation: -W turns every finding into a build failure ----------------
# For every documented class, function, method and property: GL08 no docstring; SS01/SS03
# no one-line summary ending in a period; PR01/PR02 a parameter left undocumented, or a
# documented one the signature lacks; RT01 no Returns section (for callables that return a
# value); YD01 no Yields section (generators).
numpydoc_validation_checks = {"GL08", "SS01", "SS03", "PR01", "PR02", "RT01", "YD01"}
# EX01 (no Examples section) applies to classes and functions only, as in scikit-learn:
# skisal_docs.check_examples, connected in setup() below. Not numpydoc's EX01 plus
# numpydoc_validation_overrides: an override matches the docstring's text, not the kind of
# object, so it cannot tell a method from a function; numpydoc_validation_exclude would
# switch every other check off for the methods too.
# Not validated by numpydoc (regular expressions on the documented name):
numpydoc_validation_exclude = {
    # Constants, type aliases and class attributes: their docstring is a ``#:`` comment or a
    # string after the assignment, which doctest never runs, so an Examples section there
    # would be untested text. _check_data_docstring below requires a constant's docstring.
    *(rf"^{re.escape(path)}$" for path in skisal_docs.value_paths()),
}


def _check_data_docstring(app, what, name, obj, options, lines):
    """Drop a constant's inherited type docstring; warn when it has none of its own.

    A constant without a ``#:`` comment would show its type's docstring (tuple's, dict's).
    """
    if what in ("data", "attribute") and lines:
        own = inspect.cleandoc(type(obj).__doc__ or "").splitlines()
        if [line.rstrip() for line in lines if line.strip()] == [x for x in own if x.strip()]:
            lines[:] = []
    if what == "data" and not any(x.strip() for x in lines):
        logger.warning("%s has no docstring: add a ``#:`` comment above it.", name)


def setup(app):
    # Before numpydoc reformats the lines.
    app.connect("autodoc-process-docstring", _check_data_docstring, priority=100)
    app.connect("autodoc-process-docstring", skisal_docs.check_examples, priority=100)


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
