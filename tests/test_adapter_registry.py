"""register_adapter and resolve_adapter: how an estimator finds its model family's adapter."""

from __future__ import annotations

import runpy
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier
from torch import nn

import skisal.detection  # noqa: F401 (registers here, not inside a test's registry copy)
from conftest import LinearAdapter
from skisal import InfluenceQueryStrategy, SkorchClassifierAdapter
from skisal.adapters import register_adapter, registry, resolve_adapter

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = ROOT / "docs" / "snippets" / "custom_adapter.py"


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    """Each test registers into copies: the process's registry is the same afterwards."""
    monkeypatch.setattr(registry, "_USER", list(registry._USER))
    monkeypatch.setattr(registry, "_DEFAULT", list(registry._DEFAULT))


class Toy(nn.Linear):
    """A model family skisal knows nothing about."""

    def __init__(self) -> None:
        super().__init__(3, 2)


class ToyAdapter(LinearAdapter):
    pass


class OtherToyAdapter(ToyAdapter):
    pass


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


# -- matching --------------------------------------------------------------------------


def test_registration_by_type_matches_instances_and_subclasses():
    class SubToy(Toy):
        pass

    with pytest.raises(TypeError, match="got Toy"):
        resolve_adapter(Toy())
    register_adapter(Toy, ToyAdapter)
    first, second = resolve_adapter(Toy()), resolve_adapter(SubToy())
    assert type(first) is ToyAdapter and type(second) is ToyAdapter
    assert first is not second  # a new adapter per resolution


def test_a_tuple_registers_several_classes_at_once():
    class Other(nn.Module):
        pass

    register_adapter((Other, Toy), lambda: OtherToyAdapter())
    assert type(resolve_adapter(Toy())) is OtherToyAdapter
    assert type(resolve_adapter(Other())) is OtherToyAdapter


def test_a_class_path_matches_without_importing_its_module():
    module_name = "skisal_test_never_imported.models"
    register_adapter(f"{module_name}.Tagger", ToyAdapter)
    assert "skisal_test_never_imported" not in sys.modules
    with pytest.raises(TypeError, match="got Toy"):
        resolve_adapter(Toy())  # not a Tagger: still nothing imported
    assert "skisal_test_never_imported" not in sys.modules
    # A class of that name (its module and qualified name), and a subclass of it, match.
    tagger = type("Tagger", (Toy,), {"__module__": module_name})
    subclass = type("Sub", (tagger,), {"__module__": "elsewhere"})
    assert type(resolve_adapter(tagger())) is ToyAdapter
    assert type(resolve_adapter(subclass())) is ToyAdapter
    assert "skisal_test_never_imported" not in sys.modules


def test_a_class_path_through_a_re_export_matches_once_its_module_is_imported(monkeypatch):
    # Like "skactiveml.classifier.SkorchClassifier", defined in a private submodule.
    defined = type("Tagger", (Toy,), {"__module__": "skisal_test_pkg._private"})
    register_adapter("skisal_test_pkg.Tagger", ToyAdapter)
    with pytest.raises(TypeError, match="got Tagger"):
        resolve_adapter(defined())  # its public module was never imported
    public = types.ModuleType("skisal_test_pkg")
    public.Tagger = defined
    monkeypatch.setitem(sys.modules, "skisal_test_pkg", public)
    assert type(resolve_adapter(defined())) is ToyAdapter


def test_the_last_step_of_a_pipeline_decides():
    register_adapter(Toy, ToyAdapter)
    pipeline = Pipeline([("scale", StandardScaler()), ("toy", Toy())])
    assert type(resolve_adapter(pipeline)) is ToyAdapter
    net = NeuralNetClassifier(nn.Linear, module__in_features=4, module__out_features=2)
    assert type(resolve_adapter(Pipeline([("net", net)]))) is SkorchClassifierAdapter


# -- lazy adapters ---------------------------------------------------------------------


def test_an_adapter_string_is_imported_on_first_use_only(tmp_path, monkeypatch):
    (tmp_path / "skisal_test_adapters.py").write_text(
        "from skisal import SkorchClassifierAdapter\n\n\n"
        "class LazyAdapter(SkorchClassifierAdapter):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    register_adapter(Toy, "skisal_test_adapters:LazyAdapter")
    assert "skisal_test_adapters" not in sys.modules
    adapter = resolve_adapter(Toy())
    assert "skisal_test_adapters" in sys.modules
    assert type(adapter).__name__ == "LazyAdapter"
    assert type(adapter).__module__ == "skisal_test_adapters"
    monkeypatch.delitem(sys.modules, "skisal_test_adapters")


def test_an_adapter_string_that_cannot_be_imported_names_itself_and_the_fix():
    register_adapter(Toy, "skisal_test_missing_package:Adapter")
    with pytest.raises(ImportError, match=r"'skisal_test_missing_package:Adapter'.*install"):
        resolve_adapter(Toy())
    register_adapter(Toy, "skisal.adapters:NoSuchAdapter")
    with pytest.raises(ImportError, match=r"'skisal.adapters:NoSuchAdapter' cannot be imported"):
        resolve_adapter(Toy())
    register_adapter(Toy, "skisal.adapters:__all__")
    with pytest.raises(TypeError, match="not callable"):
        resolve_adapter(Toy())


# -- which registration wins -----------------------------------------------------------


def test_later_registrations_win():
    register_adapter(Toy, ToyAdapter)
    register_adapter(Toy, OtherToyAdapter)
    assert type(resolve_adapter(Toy())) is OtherToyAdapter
    register_adapter(nn.Linear, ToyAdapter)  # less specific, but later
    assert type(resolve_adapter(Toy())) is ToyAdapter


def test_a_user_registration_overrides_a_built_in_whatever_the_import_order():
    net = NeuralNetClassifier(nn.Linear, module__in_features=4, module__out_features=2)
    assert type(resolve_adapter(net)) is SkorchClassifierAdapter
    register_adapter(NeuralNetClassifier, lambda: SkorchClassifierAdapter(top_k=3))
    assert resolve_adapter(net).top_k == 3
    # A skisal module imported afterwards registers its built-ins below the user's.
    registry.register_adapter(NeuralNetClassifier, SkorchClassifierAdapter, default=True)
    assert resolve_adapter(net).top_k == 3


def test_an_explicit_adapter_is_returned_as_it_is():
    adapter = OtherToyAdapter()
    register_adapter(Toy, ToyAdapter)
    assert resolve_adapter(Toy(), adapter) is adapter


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("estimator_type", "error", "match"),
    [
        (5, TypeError, r"estimator_type must be a class, a dotted class path .* got a int \(5\)"),
        ((), TypeError, "got an empty tuple"),
        ((Toy, None), TypeError, r"got a NoneType \(None\)"),
        ("Toy", TypeError, "'Toy' .not a dotted class path with its module"),
        ("my.models:Toy", TypeError, "a class path has dots only: 'my.models.Toy'"),
    ],
)
def test_a_bad_estimator_type_is_refused_with_the_fix(estimator_type, error, match):
    with pytest.raises(error, match=match):
        register_adapter(estimator_type, ToyAdapter)
    assert registry._USER == []  # nothing registered


@pytest.mark.parametrize(
    ("adapter", "error", "match"),
    [
        (ToyAdapter(), TypeError, r"not an instance \(ToyAdapter\).*Pass ToyAdapter, or .*lambda"),
        ("skisal.adapters.ToyAdapter", ValueError, "'module:attribute' string such as"),
        ("a:b:c", ValueError, "one colon"),
        (5, TypeError, "adapter must be a ModelAdapter subclass, .* got a int"),
    ],
)
def test_a_bad_adapter_is_refused_with_the_fix(adapter, error, match):
    with pytest.raises(error, match=match):
        register_adapter(Toy, adapter)
    assert registry._USER == []


def test_a_factory_that_returns_no_adapter_is_named():
    register_adapter(Toy, lambda: "not an adapter")
    with pytest.raises(
        TypeError, match=r"registered for .*\.Toy .* returned a str, not a ModelAdapter"
    ):
        resolve_adapter(Toy())


def test_no_adapter_known_says_how_to_register_one():
    with pytest.raises(TypeError) as info:
        resolve_adapter(Toy())
    message = str(info.value)
    assert "got Toy" in message and "Registered: skorch.net.NeuralNet" in message
    # torchvision's detectors are registered by class (skisal.detection, imported above) and
    # by class path (skisal's root): each is named once
    with pytest.raises(TypeError) as info:
        resolve_adapter(Toy())
    registered = str(info.value).split("Registered: ")[1].split(". ")[0].split(", ")
    assert "torchvision.models.detection.fcos.FCOS" in registered
    assert len(registered) == len(set(registered)), registered
    assert "skisal.adapters.register_adapter(Toy, YourAdapter)" in message
    assert "adapter=YourAdapter()" in message


def test_an_adapter_class_instead_of_an_instance_is_refused_with_the_fix():
    net = NeuralNetClassifier(nn.Linear, module__in_features=4, module__out_features=2)
    with pytest.raises(TypeError, match=r"pass an instance: adapter=SkorchClassifierAdapter\(\)"):
        resolve_adapter(net, SkorchClassifierAdapter)
    with pytest.raises(TypeError, match="ModelAdapter instance, got str"):
        resolve_adapter(net, "skorch")


# -- what importing skisal does --------------------------------------------------------


def test_import_skisal_imports_neither_torchvision_nor_detection_nor_skactiveml():
    result = _run(
        "import sys, skisal\n"
        "print(sorted(m for m in ('torchvision', 'skisal.detection', 'skactiveml') "
        "if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_bare_torchvision_detector_resolves_after_import_skisal_alone():
    # skisal/__init__.py registers the detectors by class path: no torchvision import.
    code = (
        "import sys, skisal\n"
        "assert 'torchvision' not in sys.modules\n"
        "from torchvision.models.detection import fcos_resnet50_fpn\n"
        "from skisal import resolve_adapter\n"
        "module = fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3)\n"
        "assert 'skisal.detection' not in sys.modules\n"
        "adapter = resolve_adapter(module)\n"
        "print(type(adapter).__module__, type(adapter).__name__)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["skisal.detection.adapter", "DetectionAdapter"]


def test_detection_registers_its_estimator_and_the_torchvision_detectors():
    from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet

    from skisal.detection import DetectionAdapter, TorchvisionDetector, build_detector

    assert type(resolve_adapter(TorchvisionDetector("fcos_small"))) is DetectionAdapter
    for name in ("fcos_small", "retinanet_small", "fasterrcnn_small"):
        module = build_detector(name, num_classes=3)
        assert isinstance(module, FCOS | RetinaNet | FasterRCNN)
        assert type(resolve_adapter(module)) is DetectionAdapter
    # with the torchvision classes themselves (not only the class paths)
    registry._DEFAULT[:] = [r for r in registry._DEFAULT if not r.paths]
    assert type(resolve_adapter(build_detector("fcos_small", num_classes=3))) is DetectionAdapter


# -- the user guide's example ----------------------------------------------------------


def test_the_guides_custom_adapter_example_runs_and_resolves_its_adapter(capsys):
    namespace = runpy.run_path(str(SNIPPET), run_name="custom_adapter")
    assert "pool samples to label next:" in capsys.readouterr().out
    clf, strategy, idx = namespace["clf"], namespace["strategy"], namespace["idx"]
    assert type(resolve_adapter(clf)) is namespace["TorchMLPAdapter"]
    assert len(set(idx.tolist())) == 5
    # the registered adapter is the one that scored: the same scores as one passed explicitly
    explicit = InfluenceQueryStrategy(
        namespace["X_reference"],
        namespace["y_reference"],
        X_labeled=namespace["X_labeled"],
        y_labeled=namespace["y_labeled"],
        random_state=0,
        adapter=namespace["TorchMLPAdapter"](),
    )
    scores = explicit.influence(clf, namespace["X_pool"])
    np.testing.assert_array_equal(scores, strategy.influence(clf, namespace["X_pool"]))
    np.testing.assert_array_equal(np.sort(idx), np.sort(np.argsort(scores, kind="stable")[:5]))
