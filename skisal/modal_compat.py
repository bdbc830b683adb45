"""Keep modAL working on current scikit-learn and pandas.

modAL's last release (0.4.2.1, 2023) breaks on two later changes of its
dependencies. ``import skisal`` applies the two smallest fixes below to the
installed modAL, each only where it is needed; nothing else of modAL, and
nothing of scikit-learn or pandas, is changed.

1. **scikit-learn >= 1.8: ``check_X_y(force_all_finite=...)``.** modAL's
   ``ActiveLearner.fit``/``teach`` (and ``Committee.teach``, which calls them)
   pass ``force_all_finite=`` to :func:`sklearn.utils.check_X_y`. scikit-learn
   1.6 renamed that keyword ``ensure_all_finite`` (with a ``FutureWarning``)
   and 1.8 removed it, so ``teach`` raises ``TypeError`` (modAL issue #196).
   Where scikit-learn's ``check_X_y`` has ``ensure_all_finite`` (read from its
   signature, not from version numbers), the name ``check_X_y`` that modAL's
   learner modules look up (``modAL.models.learners`` in 0.4.2.x,
   ``modAL.models.base`` in 0.4.1) is replaced by a wrapper that renames the
   keyword and calls scikit-learn's function.
2. **pandas >= 2: ``DataFrame.append``.** ``modAL.utils.data.data_vstack``
   stacks data frames with ``DataFrame.append``, removed in pandas 2.0, so
   ``teach`` on a ``DataFrame`` raises ``AttributeError``. Where
   ``pandas.DataFrame`` has no ``append``, ``data_vstack`` is replaced by a
   function that stacks data frames with :func:`pandas.concat` exactly as
   pandas 1.5's ``DataFrame.append`` did (the index is kept, not renumbered;
   columns are not sorted) and hands every other input (NumPy arrays, sparse
   matrices, lists, torch tensors) to modAL's own function unchanged. It is
   replaced in ``modAL.utils.data`` and in every loaded modAL module that
   imported it by name (``modAL.utils``, ``modAL.models.base`` or
   ``modAL.models.learners``, ``modAL.batch``, ``modAL.expected_error``);
   modAL modules imported later get the replacement from ``modAL.utils.data``.

Both work for modAL 0.4.1 and 0.4.2.x. The layer is idempotent (applying it
twice changes nothing: every replacement is marked and keeps the original),
does nothing where modAL is not installed or fails to import, and is
reversible:

- :func:`apply` applies it (``import skisal`` calls it),
- :func:`remove` restores modAL's original functions,
- :func:`applied` lists what is currently replaced.

To keep ``import skisal`` from touching modAL at all, set the environment
variable ``SKISAL_MODAL_COMPAT=0`` (also ``false``, ``no`` or ``off``) before
the import; :func:`apply` can still be called by hand.

Examples
--------
>>> from skisal import modal_compat
>>> names = modal_compat.apply()       # already applied by ``import skisal``
>>> modal_compat.apply() == names      # idempotent
True
>>> restored = modal_compat.remove()   # modAL's originals are back
>>> modal_compat.applied()
()
>>> modal_compat.apply() == names
True
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["ENV_VAR", "applied", "apply", "remove"]

#: Environment variable read by ``import skisal``: ``0`` (``false``, ``no``,
#: ``off``) leaves modAL untouched.
ENV_VAR = "SKISAL_MODAL_COMPAT"

# A replacement function carries its original under this attribute.
_MARK = "__skisal_modal_compat_original__"
# The module-level names the layer may replace in modAL's modules.
_NAMES = ("check_X_y", "data_vstack")
# Imported by apply(): where modAL defines data_vstack and calls check_X_y.
_MODULES = ("modAL.utils.data", "modAL.models")
_OFF = {"0", "false", "no", "off"}

_lock = threading.RLock()
_replacements: dict[int, Callable[..., Any]] = {}  # id(original) -> replacement


def _original(func: Any) -> Any:
    """The function a replacement stands for (``func`` itself when not replaced)."""
    return getattr(func, _MARK, func)


def _modal_modules() -> list[Any]:
    """modAL's loaded modules (the package and its submodules)."""
    return [
        module
        for name, module in list(sys.modules.items())
        if module is not None and (name == "modAL" or name.startswith("modAL."))
    ]


# -- 1. check_X_y(force_all_finite=...) -------------------------------------------------------
def _has_ensure_all_finite(check_X_y: Callable[..., Any]) -> bool:
    """Whether this ``check_X_y`` takes ``ensure_all_finite`` (scikit-learn >= 1.6)."""
    try:
        return "ensure_all_finite" in inspect.signature(check_X_y).parameters
    except (TypeError, ValueError):
        return False


def _translating_check_X_y(check_X_y: Callable[..., Any]) -> Callable[..., Any]:
    """``check_X_y`` that accepts modAL's ``force_all_finite=`` as ``ensure_all_finite=``."""

    @functools.wraps(check_X_y)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "force_all_finite" in kwargs:
            value = kwargs.pop("force_all_finite")
            kwargs.setdefault("ensure_all_finite", value)
        return check_X_y(*args, **kwargs)

    setattr(wrapper, _MARK, check_X_y)
    return wrapper


# -- 2. data_vstack and DataFrame.append ------------------------------------------------------
def _frame_lacks_append(frame_type: type) -> bool:
    """Whether ``DataFrame.append`` is gone (pandas >= 2)."""
    return not hasattr(frame_type, "append")


def _concat_vstack(data_vstack: Callable[..., Any]) -> Callable[..., Any]:
    """modAL's ``data_vstack`` with ``pandas.concat`` in place of ``DataFrame.append``."""
    import pandas as pd
    import scipy.sparse as sp

    def append(frame: Any, other: Any) -> Any:
        # pandas 1.5's DataFrame.append(other) with its defaults (ignore_index=False,
        # verify_integrity=False, sort=False), for the list/tuple that modAL passes.
        if isinstance(other, list) and other and not isinstance(other[0], pd.DataFrame):
            other = pd.DataFrame(other)
            if frame.index.name is not None:
                other.index.name = frame.index.name
        to_concat = [frame, *other] if isinstance(other, (list, tuple)) else [frame, other]
        return pd.concat(to_concat).__finalize__(frame, method="append")

    @functools.wraps(data_vstack)
    def wrapper(blocks: Any) -> Any:
        if (
            len(blocks) > 0
            and isinstance(blocks[0], pd.DataFrame)
            and not any(sp.issparse(b) for b in blocks)  # modAL checks sparse first
        ):
            return append(blocks[0], blocks[1:])
        return data_vstack(blocks)

    setattr(wrapper, _MARK, data_vstack)
    return wrapper


# -- apply / remove / applied -----------------------------------------------------------------
def _replacement(original: Callable[..., Any], make: Callable[..., Any]) -> Callable[..., Any]:
    """One replacement per original function, so that re-applying changes nothing."""
    key = id(original)
    if key not in _replacements or _original(_replacements[key]) is not original:
        _replacements[key] = make(original)
    return _replacements[key]


def _plan() -> dict[str, tuple[Any, Callable[..., Any]]]:
    """For each name that needs it: (modAL's original object, its replacement)."""
    plan: dict[str, tuple[Any, Callable[..., Any]]] = {}
    data = sys.modules["modAL.utils.data"]

    import pandas as pd
    from sklearn.utils import validation

    check_X_y = _original(validation.check_X_y)
    if _has_ensure_all_finite(check_X_y):
        plan["check_X_y"] = (check_X_y, _replacement(check_X_y, _translating_check_X_y))
    data_vstack = _original(getattr(data, "data_vstack", None))
    if data_vstack is not None and _frame_lacks_append(pd.DataFrame):
        plan["data_vstack"] = (data_vstack, _replacement(data_vstack, _concat_vstack))
    return plan


def apply() -> tuple[str, ...]:
    """Apply the compatibility fixes the installed modAL needs; idempotent.

    Imports modAL if it is installed; does nothing when it is not, or when it
    fails to import. Only the names whose fix is needed by the installed
    scikit-learn and pandas are replaced (see the module docstring).

    Returns
    -------
    tuple of str
        What is replaced now, as ``"module.name"``, as :func:`applied`.

    Examples
    --------
    >>> from skisal import modal_compat
    >>> modal_compat.apply() == modal_compat.apply() == modal_compat.applied()
    True
    """
    with _lock:
        try:
            for name in _MODULES:
                importlib.import_module(name)
            plan = _plan()
        except Exception:  # modAL (or pandas/scikit-learn) absent or broken: leave it
            return applied()
        for module in _modal_modules():
            for name, (original, replacement) in plan.items():
                if module.__dict__.get(name) is original:
                    setattr(module, name, replacement)
        return applied()


def remove() -> tuple[str, ...]:
    """Restore modAL's original functions wherever :func:`apply` replaced them.

    Returns
    -------
    tuple of str
        What was restored, as ``"module.name"``; empty when nothing was replaced.

    Examples
    --------
    >>> from skisal import modal_compat
    >>> names = modal_compat.apply()
    >>> modal_compat.remove() == names, modal_compat.applied()
    (True, ())
    >>> _ = modal_compat.apply()
    """
    with _lock:
        restored = []
        for module in _modal_modules():
            for name in _NAMES:
                value = module.__dict__.get(name)
                if value is not None and hasattr(value, _MARK):
                    setattr(module, name, getattr(value, _MARK))
                    restored.append(f"{module.__name__}.{name}")
        return tuple(sorted(restored))


def applied() -> tuple[str, ...]:
    """What the layer replaces in modAL's loaded modules now.

    Returns
    -------
    tuple of str
        ``"module.name"`` of every replaced function, sorted; empty when
        nothing is replaced (modAL absent, fixes not needed, or removed).

    Examples
    --------
    >>> from skisal import modal_compat
    >>> all(n.startswith("modAL.") for n in modal_compat.applied())
    True
    """
    return tuple(
        sorted(
            f"{module.__name__}.{name}"
            for module in _modal_modules()
            for name in _NAMES
            if hasattr(module.__dict__.get(name), _MARK)
        )
    )


def _apply_on_import() -> None:
    """What ``import skisal`` runs: :func:`apply`, unless ``SKISAL_MODAL_COMPAT=0``."""
    if os.environ.get(ENV_VAR, "1").strip().lower() in _OFF:
        return
    try:
        apply()
    except Exception as exc:  # never let the compatibility layer break ``import skisal``
        warnings.warn(
            f"skisal.modal_compat could not repair the installed modAL ({exc!r}); modAL's "
            "teach() may fail on scikit-learn >= 1.8 or on DataFrames with pandas >= 2. "
            f"Set {ENV_VAR}=0 to skip the repair.",
            RuntimeWarning,
            stacklevel=3,
        )
