"""Building skisal's metadata raises no setuptools warning: no deprecation boxes in setup."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Prints each warning that building the metadata raised, one per line.
_BUILD = """
import sys, warnings
from setuptools import build_meta
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    build_meta.prepare_metadata_for_build_wheel(sys.argv[1])
for w in caught:
    print(f"caught {w.category.__name__}: {str(w.message).splitlines()[0]}", file=sys.stderr)
"""


def _metadata_warnings(tmp_path: Path, pyproject: str) -> tuple[list[str], str]:
    """Build the metadata of a copy of the project (the build writes skisal.egg-info there).

    Returns the warnings raised and the METADATA file's text.
    """
    project, meta = tmp_path / "project", tmp_path / "meta"
    meta.mkdir()
    shutil.copytree(
        ROOT / "skisal", project / "skisal", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "README.md", project)
    shutil.copy(ROOT / "LICENSE", project)
    (project / "pyproject.toml").write_text(pyproject)
    result = subprocess.run(
        [sys.executable, "-c", _BUILD, str(meta)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    caught = [line for line in result.stderr.splitlines() if line.startswith("caught ")]
    return caught, next(meta.glob("*.dist-info/METADATA")).read_text()


@pytest.fixture
def pyproject() -> str:
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("the SPDX `license` string needs setuptools >= 77, as [build-system] says")
    return (ROOT / "pyproject.toml").read_text()


def test_building_the_metadata_warns_nothing(tmp_path, pyproject):
    caught, metadata = _metadata_warnings(tmp_path, pyproject)
    assert caught == []
    assert "License-Expression: BSD-3-Clause" in metadata
    assert "License-File: LICENSE" in metadata  # the licence text ships with the package


def test_a_license_table_would_warn(tmp_path, pyproject):
    """The check above sees setuptools' deprecation warnings: the old `license` table raises one."""
    old = pyproject.replace('license = "BSD-3-Clause"', 'license = { text = "BSD-3-Clause" }')
    assert old != pyproject
    caught, _ = _metadata_warnings(tmp_path, old)
    assert any("SetuptoolsDeprecationWarning" in line for line in caught), caught
