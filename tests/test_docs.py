"""The docs build's own checks (``docs/_ext/skisal_docs.py``), on a tiny Sphinx project."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("numpydoc")

EXT = Path(__file__).resolve().parents[1] / "docs" / "_ext"

TOY = '''
"""A toy module."""


class WithExamples:
    """A class with an example.

    Examples
    --------
    >>> WithExamples().grow(1)
    """

    @property
    def size(self):
        """int: The size; a property needs no example."""
        return 1

    def grow(self, by):
        """Grow; a method needs no example (``by`` is left undocumented: PR01)."""


class NoExamples:
    """A class without an example."""


def function_without_examples():
    """A function without an example."""
'''

CONF = f"""
import sys
sys.path[:0] = [{str(EXT)!r}, "."]
import skisal_docs
extensions = ["sphinx.ext.autodoc", "numpydoc"]
numpydoc_validation_checks = {{"GL08", "SS01", "PR01"}}
numpydoc_show_class_members = False

def setup(app):
    app.connect("autodoc-process-docstring", skisal_docs.check_examples, priority=100)
"""

INDEX = """
Toy
===

.. automodule:: toy
   :members:
"""


@pytest.fixture(scope="module")
def toy_build_log(tmp_path_factory: pytest.TempPathFactory) -> str:
    src = tmp_path_factory.mktemp("docs")
    for name, text in [("toy.py", TOY), ("conf.py", CONF), ("index.rst", INDEX)]:
        (src / name).write_text(textwrap.dedent(text))
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-b", "html", ".", "_build"],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def _warned(log: str, name: str, check: str) -> bool:
    """Whether the build warned ``check`` for the object ``name``."""
    blocks = log.split("[numpydoc] Validation warnings")
    return any(f"'{name}'" in block and f"{check}:" in block for block in blocks)


@pytest.mark.parametrize("name", ["toy.NoExamples", "toy.function_without_examples"])
def test_classes_and_functions_need_examples(toy_build_log, name):
    assert _warned(toy_build_log, name, "EX01")


@pytest.mark.parametrize(
    "name", ["toy.WithExamples", "toy.WithExamples.size", "toy.WithExamples.grow"]
)
def test_methods_and_properties_need_none(toy_build_log, name):
    assert not _warned(toy_build_log, name, "EX01")


def test_methods_still_get_the_other_checks(toy_build_log):
    assert _warned(toy_build_log, "toy.WithExamples.grow", "PR01")  # `by` undocumented
