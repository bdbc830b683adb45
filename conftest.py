"""Doctests of ``skisal/`` start from one shared set-up: ``docs/snippets/doctest_setup.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem

from skisal.adapters import registry

_SETUP = Path(__file__).parent / "docs" / "snippets" / "doctest_setup.py"


@pytest.fixture(autouse=True)
def _shared_doctest_setup(request: pytest.FixtureRequest) -> None:
    """Run the set-up afresh for each doctest, so no example sees another's changes."""
    if not isinstance(request.node, DoctestItem):
        return
    # register_adapter's example registers for the process: give each doctest a copy
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setattr(registry, "_USER", list(registry._USER))
    monkeypatch.setattr(registry, "_DEFAULT", list(registry._DEFAULT))
    namespace: dict = {"__name__": "doctest_setup"}
    exec(compile(_SETUP.read_text(), str(_SETUP), "exec"), namespace)
    public = {k: v for k, v in namespace.items() if not k.startswith("_")}
    request.getfixturevalue("doctest_namespace").update(public)
