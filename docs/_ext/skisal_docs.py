"""Build-time helpers for skisal's documentation (imported by ``docs/conf.py``).

* :func:`generate_api_pages` writes one page per public module of skisal to
  ``docs/api/modules/`` (autosummary then writes one page per object to
  ``docs/api/objects/``), driven by each module's ``__all__``: every public
  object is documented once, at its shortest public path (classes and
  functions) or where it is defined (data), and listed with a link wherever
  else an ``__all__`` re-exports it. A name added to any ``__all__`` (e.g. in
  ``skisal.detection``) appears without editing the docs; a new public module
  too.
* :func:`value_paths` lists the documented constants and class attributes, which
  ``docs/conf.py`` leaves out of numpydoc's validation (their ``#:`` comments hold no
  doctest).
* :func:`check_examples` requires an Examples section (numpydoc's EX01) on classes and
  functions only, as scikit-learn does: not on methods and properties, which the
  class's example shows.
* :func:`reset_argv` gives sphinx-gallery's examples their command line: the
  CPU-sized ``--quick`` mode.
"""

from __future__ import annotations

import atexit
import importlib
import inspect
import pkgutil
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from numpydoc.docscrape import NumpyDocString
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: Examples rendered in the gallery but not executed when the docs are built, with the
#: reason shown on the gallery's index page. Keep every executed example's ``--quick`` mode
#: under about a minute on 2 CPU cores.
NOT_EXECUTED: dict[str, str] = {}

#: Extra command-line arguments per example (all of them get ``--quick``).
EXAMPLE_ARGV: dict[str, list[str]] = {
    # Write its records into a fresh temporary folder, not into the source tree.
    "digits_active_learning.py": ["--out", "{tmp}"],
    "detection_active_learning.py": ["--out", "{tmp}"],
}

KINDS = (
    ("classes", "Classes"),
    ("exceptions", "Exceptions"),
    ("functions", "Functions"),
    ("data", "Constants and type aliases"),
)


#: What autodoc documents that needs an Examples section: classes (exceptions too) and
#: functions. Methods, properties and attributes need none (scikit-learn's convention).
NEEDS_EXAMPLES = ("class", "exception", "function")


def lacks_examples(what: str, lines: list[str]) -> bool:
    """Whether a docstring of this kind needs an Examples section and has none.

    ``what`` and ``lines`` as autodoc passes them to ``autodoc-process-docstring``
    (the lines before numpydoc reformats them).
    """
    if what not in NEEDS_EXAMPLES:
        return False
    with warnings.catch_warnings():  # numpydoc's own pass reports malformed sections
        warnings.simplefilter("ignore")
        return not NumpyDocString("\n".join(lines))["Examples"]


def check_examples(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Warn, as numpydoc's EX01 would, about a class or function without Examples.

    An ``autodoc-process-docstring`` handler; it must run before numpydoc's (a lower
    priority). Names that ``numpydoc_validation_exclude`` matches are skipped.
    """
    excluder = getattr(app.config, "numpydoc_validation_excluder", None)
    if excluder is not None and excluder.search(name):
        return
    if lacks_examples(what, lines):
        logger.warning(
            "[numpydoc] Validation warnings while processing docstring for %r:\n"
            "  EX01: No examples section found (skisal requires one on every public %s; "
            "methods and properties need none)",
            name,
            what,
        )


def reset_argv(gallery_conf: dict[str, Any], script_vars: dict[str, Any]) -> list[str]:
    """``sys.argv[1:]`` for an example run by sphinx-gallery: its ``--quick`` mode."""
    src = Path(script_vars["src_file"])
    tmp = tempfile.mkdtemp(prefix="skisal-docs-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return ["--quick"] + [arg.format(tmp=tmp) for arg in EXAMPLE_ARGV.get(src.name, [])]


def public_modules(package: str = "skisal") -> list[str]:
    """``package`` and every submodule whose dotted path has no ``_``-prefixed part."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _kind(obj: Any) -> str:
    if inspect.isclass(obj):
        return "exceptions" if issubclass(obj, BaseException) else "classes"
    if inspect.isroutine(obj):
        return "functions"
    return "data"


def _catalogue(modules: list[str]) -> tuple[dict[str, list[tuple[str, str]]], dict[int, str]]:
    """Per module, its ``(name, kind)`` pairs; per object id, its documented path."""
    entries: dict[str, list[tuple[str, str]]] = {}
    where: dict[int, str] = {}
    # Shallowest module first: classes and functions are documented where users import them.
    for module_name in sorted(modules, key=lambda m: (m.count("."), m)):
        module = importlib.import_module(module_name)
        entries[module_name] = []
        for name in getattr(module, "__all__", []):
            if name.startswith("__"):  # __version__: mentioned in the text
                continue
            obj = getattr(module, name)
            kind = _kind(obj)
            entries[module_name].append((name, kind))
            # Data has no __module__: document it where it is defined (deepest), where
            # its ``#:`` comment is.
            if id(obj) not in where or kind == "data":
                where[id(obj)] = f"{module_name}.{name}"
    return entries, where


def value_paths(package: str = "skisal") -> list[str]:
    """The documented path of every constant, type alias and class attribute of the API.

    Constants and type aliases come from every public ``__all__``; class attributes are
    the non-callable values a documented class defines itself (``needs_hessian``,
    ``default_curvature``, dataclass defaults), at the class's documented path.
    """
    modules = public_modules(package)
    entries, where = _catalogue(modules)
    paths = set()
    for module_name, names in entries.items():
        module = importlib.import_module(module_name)
        for name, kind in names:
            obj = getattr(module, name)
            path = where[id(obj)]
            if kind == "data":
                paths.add(path)
            elif inspect.isclass(obj) and path == f"{module_name}.{name}":
                paths.update(
                    f"{path}.{attr}"
                    for attr, value in vars(obj).items()
                    if not attr.startswith("_")
                    and not inspect.isroutine(value)
                    and not inspect.isclass(value)
                    and not isinstance(value, property | staticmethod | classmethod)
                )
    return sorted(paths)


def _short_literal(obj: Any) -> bool:
    """Whether a constant reads well as its value (no functions, no memory addresses)."""
    literal = (str, int, float, bool, type(None))
    if isinstance(obj, tuple | list | frozenset):
        return all(isinstance(item, literal) for item in obj) and len(repr(obj)) <= 80
    return isinstance(obj, literal) and len(repr(obj)) <= 80


def _title(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


def _module_page(
    module_name: str,
    entries: list[tuple[str, str]],
    where: dict[int, str],
    submodules: list[str],
    objects_dir: str,
) -> str:
    module = importlib.import_module(module_name)
    lines = [
        _title(f"``{module_name}``"),
        f".. automodule:: {module_name}",
        "   :no-members:",
        "",
        f".. currentmodule:: {module_name}",
        "",
    ]
    if module_name == "skisal":
        lines += [f"``skisal.__version__`` is ``{module.__version__!r}``.", ""]
    reexported = []
    for kind, heading in KINDS:
        own = []
        for name, k in entries:
            if k != kind:
                continue
            path = where[id(getattr(module, name))]
            if path == f"{module_name}.{name}":
                own.append(name)
            else:
                reexported.append(path)
        if not own:
            continue
        lines.append(_title(heading, "-"))
        groups = {kind: own}
        if kind == "data":  # short literals show their value, others (dicts of functions) not
            shown = [n for n in own if _short_literal(getattr(module, n))]
            groups = {"data_value": shown, "data": [n for n in own if n not in shown]}
        for template, names in groups.items():
            if names:
                lines += [
                    ".. autosummary::",
                    f"   :toctree: {objects_dir}",
                    f"   :template: autosummary/{template}.rst",
                    "   :nosignatures:",
                    "",
                    *(f"   {name}" for name in names),
                    "",
                ]
    if reexported:
        lines += [
            _title("Also available here", "-"),
            f"These names are in ``{module_name}.__all__`` and documented at the path shown.",
            "",
            ".. currentmodule:: None",
            "",
            ".. autosummary::",
            "   :nosignatures:",
            "",
            *(f"   {path}" for path in reexported),
            "",
        ]
    if not entries:
        lines += ["This module exports no names yet (its ``__all__`` is empty).", ""]
    if submodules and module_name.count(".") == 0:
        # The API index's toctree holds the top-level subpackages: link them.
        lines += [
            _title("Submodules", "-"),
            *(f"* :mod:`{sub}`" for sub in submodules),
            "",
        ]
    elif submodules:
        lines += [
            _title("Submodules", "-"),
            ".. toctree::",
            "   :maxdepth: 1",
            "",
            *(f"   {_page(sub, module_name)}" for sub in submodules),
            "",
        ]
    return "\n".join(lines)


def _page(module_name: str, from_module: str | None = None) -> str:
    """Document name of a module's page, relative to ``modules/`` or to ``from_module``'s page.

    The package and its direct submodules live in ``modules/`` (the API index's toctree
    globs them); deeper ones in ``modules/sub/``, linked from their parent's page.
    """
    deep = module_name.count(".") >= 2
    path = f"sub/{module_name}" if deep else module_name
    if from_module is not None and from_module.count(".") >= 2:
        path = module_name if deep else f"../{module_name}"
    return path


def generate_api_pages(out_dir: Path, package: str = "skisal") -> list[str]:
    """Write a page for every public module into ``out_dir``; return the module names.

    ``out_dir`` (module pages) and its sibling ``objects/`` (autosummary's
    per-object pages) are recreated, so that a removed name leaves no stale page.
    """
    modules = public_modules(package)
    entries, where = _catalogue(modules)
    objects = out_dir.parent / "objects"
    shutil.rmtree(out_dir, ignore_errors=True)
    shutil.rmtree(objects, ignore_errors=True)
    (out_dir / "sub").mkdir(parents=True)
    for name in modules:
        depth = name.count(".")
        children = [m for m in modules if m.startswith(name + ".") and m.count(".") == depth + 1]
        path = out_dir / f"{_page(name)}.rst"
        objects_dir = "../../objects" if depth >= 2 else "../objects"
        path.write_text(_module_page(name, entries[name], where, children, objects_dir))
    return modules
