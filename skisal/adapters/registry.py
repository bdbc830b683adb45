"""Which adapter scores which estimator: the registry that :func:`~skisal.resolve_adapter` reads.

A model family plugs into skisal by registering its adapter for its estimator
class, with :func:`~skisal.adapters.register_adapter`; skisal's own families (skorch,
scikit-activeml, torchvision detectors) register theirs the same way. Both
sides of a registration may be strings, so that naming a family imports
nothing: a dotted class path is matched against the names of the estimator's
classes, and a ``"module:attribute"`` adapter is imported when an estimator of
that family is first resolved.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import InvalidParameterError
from .base import ModelAdapter, split_pipeline

__all__ = ["register_adapter", "resolve_adapter"]

_HOW_TO_REGISTER = (
    "For another model family pass adapter=YourAdapter() to the strategy, or register one "
    "once: skisal.adapters.register_adapter({name}, YourAdapter) (see the user guide's page "
    "'Your own model family')."
)


@dataclass(eq=False)
class _Registration:
    """One ``register_adapter`` call: estimator classes (or their paths) and a factory."""

    classes: tuple[type, ...]
    paths: tuple[str, ...]
    adapter: Callable[[], Any] | str
    # the factory a "module:attribute" adapter names, once imported
    factory: Callable[[], Any] | None = field(default=None, repr=False)

    def matches(self, estimator: Any) -> bool:
        """Whether ``estimator`` is an instance of a registered class or class path."""
        if self.classes and isinstance(estimator, self.classes):
            return True
        if not self.paths:
            return False
        mro = type(estimator).__mro__
        names = {f"{cls.__module__}.{cls.__qualname__}" for cls in mro}
        return any(path in names or _is_imported_instance(estimator, path) for path in self.paths)

    def make(self) -> ModelAdapter:
        """A new adapter from the registered factory (importing it on first use)."""
        if self.factory is None:
            self.factory = (
                _import_adapter(self.adapter) if isinstance(self.adapter, str) else self.adapter
            )
        adapter = self.factory()
        if not isinstance(adapter, ModelAdapter):
            raise TypeError(
                f"the adapter registered for {self.describe()} (adapter={self.adapter!r}) "
                f"returned a {type(adapter).__name__}, not a ModelAdapter: register a "
                "ModelAdapter subclass, or a zero-argument callable that returns an instance."
            )
        return adapter

    def describe(self) -> str:
        """The registered classes, by name, for messages."""
        return ", ".join(
            [f"{c.__module__}.{c.__qualname__}" for c in self.classes] + list(self.paths)
        )


# Newest last. Registrations without `default` rank above the default ones whatever the
# import order, so importing a package that registers its default never undoes a user's choice.
_USER: list[_Registration] = []
_DEFAULT: list[_Registration] = []


def _is_imported_instance(estimator: Any, path: str) -> bool:
    """Whether ``path`` names a class of an imported module that ``estimator`` is an instance of.

    Catches a class reached through a re-export (``skactiveml.classifier.SkorchClassifier``
    is defined in a private submodule). Never imports: an instance of a class exists only
    once the class's module has been imported.
    """
    module_name, _, attribute = path.rpartition(".")
    cls = getattr(sys.modules.get(module_name), attribute, None)
    return isinstance(cls, type) and isinstance(estimator, cls)


def _import_adapter(spec: str) -> Callable[[], Any]:
    """The object a ``"module:attribute"`` string names (the attribute may be dotted)."""
    module_name, _, attribute = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ImportError(
            f"the adapter registered as {spec!r} cannot be imported ({exc}); install the "
            "package that provides it, or register the adapter again with a correct "
            "'module:attribute' string."
        ) from exc
    if not callable(target):
        raise TypeError(
            f"the adapter registered as {spec!r} is a {type(target).__name__}, not callable: "
            "name a ModelAdapter subclass or a zero-argument function returning one."
        )
    return target


def _check_estimator_type(estimator_type: Any) -> tuple[tuple[type, ...], tuple[str, ...]]:
    """Split ``estimator_type`` into classes and class paths, refusing anything else."""
    items = estimator_type if isinstance(estimator_type, tuple) else (estimator_type,)
    problem = "an empty tuple" if not items else None
    for item in items:
        if problem is not None:
            break
        if isinstance(item, str):
            if ":" in item:
                problem = f"{item!r} (a class path has dots only: {item.replace(':', '.')!r})"
            elif "." not in item.strip(".") or " " in item:
                problem = f"{item!r} (not a dotted class path with its module)"
        elif not isinstance(item, type):
            problem = f"a {type(item).__name__} ({item!r})"
    if problem is not None:
        raise TypeError(
            "estimator_type must be a class, a dotted class path such as "
            "'torchvision.models.detection.fcos.FCOS', or a non-empty tuple of them; "
            f"got {problem}."
        )
    classes = tuple(item for item in items if isinstance(item, type))
    paths = tuple(item for item in items if isinstance(item, str))
    return classes, paths


def _check_adapter_factory(adapter: Any) -> Callable[[], Any] | str:
    """Refuse an ``adapter`` that is neither a callable nor a ``"module:attribute"`` string."""
    if isinstance(adapter, ModelAdapter):
        raise TypeError(
            f"adapter must be a ModelAdapter subclass or a zero-argument callable, not an "
            f"instance ({type(adapter).__name__}): every estimator gets an adapter of its own. "
            f"Pass {type(adapter).__name__}, or a function such as "
            f"lambda: {type(adapter).__name__}(...) for other parameters."
        )
    if isinstance(adapter, str):
        module_name, colon, attribute = adapter.partition(":")
        if not (colon and module_name and attribute) or ":" in attribute:
            raise ValueError(
                f"adapter={adapter!r} must be a 'module:attribute' string such as "
                "'skisal.detection:DetectionAdapter' (one colon between the module and "
                "the adapter class or function)."
            )
        return adapter
    if not callable(adapter):
        raise TypeError(
            "adapter must be a ModelAdapter subclass, a zero-argument callable returning a "
            f"ModelAdapter, or a 'module:attribute' string; got a {type(adapter).__name__}."
        )
    return adapter


def register_adapter(estimator_type: Any, adapter: Any, *, default: bool = False) -> None:
    """Make :func:`~skisal.resolve_adapter` give estimators of ``estimator_type`` an ``adapter``.

    This is how a model family plugs into skisal: once registered,
    :class:`~skisal.InfluenceQueryStrategy` and the baselines resolve the
    family's adapter by themselves, for a bare estimator and for a
    scikit-learn Pipeline ending in one. skisal registers its own families
    (skorch nets, scikit-activeml's ``SkorchClassifier``, torchvision FCOS,
    RetinaNet and Faster R-CNN, :class:`~skisal.detection.TorchvisionDetector`)
    the same way.

    Parameters
    ----------
    estimator_type : type, str or tuple of them
        The estimator classes: matched with ``isinstance``, so subclasses
        match too. A string is a dotted class path such as
        ``"torchvision.models.detection.fcos.FCOS"``, matched without
        importing anything against the module and qualified names of the
        estimator's classes (its ``__mro__``), or against the class an
        already imported module exports under that name (a re-export such
        as ``"skactiveml.classifier.SkorchClassifier"``).
    adapter : type, callable or str
        What makes the adapter: a :class:`~skisal.ModelAdapter` subclass, or any
        zero-argument callable returning a :class:`~skisal.ModelAdapter` (e.g.
        ``lambda: MyAdapter(top_k=2)``), called once per resolution; or a
        ``"module:attribute"`` string naming one, imported the first time
        an estimator of ``estimator_type`` is resolved.
    default : bool, default=False
        Register the family's default adapter, as a package does for its
        own estimators (skisal's skorch, scikit-activeml and detection
        registrations use it). Every registration without ``default``
        takes precedence over every default one, whichever was made last,
        so importing a package never undoes a user's choice.

    Raises
    ------
    TypeError
        If ``estimator_type`` is not a class, a class path or a tuple of
        them, or ``adapter`` is an adapter instance or not callable.
    ValueError
        If an ``adapter`` string is not of the form ``"module:attribute"``.

    See Also
    --------
    skisal.resolve_adapter : Which registration wins.

    Notes
    -----
    Among registrations of the same kind, the later wins; a registration
    without ``default`` wins over every default one. Registrations last for
    the Python process.

    Examples
    --------
    A network class that a skorch adapter with other defaults should score:

    >>> from torch import nn
    >>> from skisal.adapters import SkorchClassifierAdapter, register_adapter, resolve_adapter
    >>> class ThreeChoices(NeuralNetClassifier):
    ...     pass
    >>> register_adapter(ThreeChoices, lambda: SkorchClassifierAdapter(top_k=3))
    >>> resolve_adapter(ThreeChoices(nn.Linear, module__in_features=4, module__out_features=3))
    SkorchClassifierAdapter(top_k=3)

    Strings import nothing until an estimator of that class is resolved:

    >>> register_adapter("my_models.nets.Tagger", "my_models.adapters:TaggerAdapter")
    """
    classes, paths = _check_estimator_type(estimator_type)
    registration = _Registration(classes, paths, _check_adapter_factory(adapter))
    (_DEFAULT if default else _USER).append(registration)


def resolve_adapter(estimator: Any, adapter: ModelAdapter | None = None) -> ModelAdapter:
    """Return ``adapter`` if given, else a new adapter for ``estimator``'s family.

    The family is that of ``estimator``, or of the last step of a
    scikit-learn Pipeline. The most recent :func:`~skisal.adapters.register_adapter` call whose
    ``estimator_type`` matches it decides, the ``default`` ones (skisal's
    own) after all others: skorch nets get a
    :class:`~skisal.SkorchClassifierAdapter`, scikit-activeml's
    ``SkorchClassifier`` a :class:`~skisal.adapters.SkactivemlSkorchAdapter`,
    and torchvision FCOS, RetinaNet and Faster R-CNN modules and
    :class:`~skisal.detection.TorchvisionDetector` a
    :class:`~skisal.detection.DetectionAdapter`.

    Parameters
    ----------
    estimator : object
        The estimator to score (a modAL learner's ``estimator``), or a
        Pipeline ending in one.
    adapter : ModelAdapter, optional
        An explicit adapter, returned as it is.

    Returns
    -------
    ModelAdapter
        ``adapter``, or a new adapter for ``estimator``'s family.

    Raises
    ------
    TypeError
        If ``adapter`` is not a :class:`~skisal.ModelAdapter` instance, or no adapter
        is registered for ``estimator``'s family (the message says how to
        register one).
    ImportError
        If the registered adapter is a ``"module:attribute"`` string that
        cannot be imported.

    See Also
    --------
    skisal.adapters.register_adapter : Give a model family its adapter.

    Examples
    --------
    >>> from skisal import SkorchClassifierAdapter, resolve_adapter
    >>> type(resolve_adapter(net)).__name__
    'SkorchClassifierAdapter'
    >>> resolve_adapter(net, SkorchClassifierAdapter(top_k=2))
    SkorchClassifierAdapter(top_k=2)
    >>> resolve_adapter(torch.nn.Linear(4, 2))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: classifier must be a skorch NeuralNet/NeuralNetClassifier...got Linear. ...
    """
    if adapter is not None:
        if not isinstance(adapter, ModelAdapter):
            fix = (
                f"pass an instance: adapter={adapter.__name__}()"
                if isinstance(adapter, type) and issubclass(adapter, ModelAdapter)
                else "pass an instance of a ModelAdapter subclass, or None to resolve one"
            )
            raise InvalidParameterError(
                f"adapter must be a skisal ModelAdapter instance, got "
                f"{getattr(adapter, '__name__', type(adapter).__name__)}; {fix}."
            )
        return adapter
    last = split_pipeline(estimator)[1]
    for registration in [*reversed(_USER), *reversed(_DEFAULT)]:
        if registration.matches(last):
            return registration.make()
    name = type(last).__name__
    # a family may be registered by class and by class path (torchvision's detectors): once
    names = dict.fromkeys(n for r in _DEFAULT + _USER for n in r.describe().split(", "))
    known = ", ".join(names)
    raise TypeError(
        "classifier must be a skorch NeuralNet/NeuralNetClassifier, or another estimator "
        "with a registered adapter (bare, last in a scikit-learn Pipeline, or in a modAL "
        f"learner); got {name}. Registered: {known}. " + _HOW_TO_REGISTER.format(name=name)
    )
