"""Looking up a built-in by name, or a user's ``package.module:function``."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["resolve"]


def resolve(name: str, builtins: Mapping[str, Any], kind: str, expects: str) -> Any:
    """``builtins[name]``, or the attribute that ``"package.module:function"`` names.

    Parameters
    ----------
    name : str
        A key of ``builtins``, or ``"package.module:attribute"``.
    builtins : mapping
        The built-in entries by name.
    kind : str
        What is looked up ("dataset", "strategy"), for error messages.
    expects : str
        What the attribute must be, for error messages.

    Returns
    -------
    object
        The built-in entry, or the imported attribute.

    Raises
    ------
    ValueError
        Naming the ``kind`` ("dataset", "strategy") when neither resolves.

    Examples
    --------
    >>> from skisal.experiments._naming import resolve
    >>> resolve("math:sqrt", {}, "function", "")(16.0)
    4.0
    """
    if name in builtins:
        return builtins[name]
    if ":" not in name:
        raise ValueError(
            f"unknown {kind} {name!r}: use one of {list(builtins)} or "
            f"'package.module:function' {expects}."
        )
    module_name, _, attribute = name.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load {kind} {name!r}: {exc}") from exc
