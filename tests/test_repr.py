"""The strategies' reprs show data parameters by shape and dtype, as text and as HTML."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from skisal import CoresetSampling, InfluenceQueryStrategy

X_REF = np.random.RandomState(0).rand(200, 64).astype(np.float32)
Y_REF = np.arange(200) % 10


def test_arrays_are_shown_by_shape_and_dtype_not_by_value():
    strategy = InfluenceQueryStrategy(X_REF, Y_REF, damping=0.1)
    text = repr(strategy)
    assert "X_reference=ndarray(shape=(200, 64), dtype=float32)" in text
    assert "y_reference=ndarray(shape=(200,), dtype=int64)" in text
    assert "damping=0.1" in text
    assert len(text) < 200 and f"{X_REF[0, 0]:.4f}"[:5] not in text
    assert repr(InfluenceQueryStrategy()) == "InfluenceQueryStrategy()"  # defaults stay hidden


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (torch.zeros(5, 3), "Tensor(shape=(5, 3), dtype=torch.float32)"),
        (pd.DataFrame(X_REF[:7, :2]), "DataFrame(shape=(7, 2))"),
        (list(X_REF[:12]), "list(len=12)"),
    ],
)
def test_tensors_frames_and_long_lists_are_summarised(value, shown):
    assert f"X_labeled={shown}" in repr(CoresetSampling(X_labeled=value))


def test_short_lists_and_scalars_are_shown_as_they_are():
    text = repr(InfluenceQueryStrategy(parameters=["out"], inverse_hvp="cg"))
    assert text == "InfluenceQueryStrategy(inverse_hvp='cg', parameters=['out'])"


def test_the_notebook_html_summarises_too_and_nothing_is_changed():
    strategy = InfluenceQueryStrategy(X_REF, Y_REF)
    bundle = strategy._repr_mimebundle_()
    assert "shape=(200, 64)" in bundle["text/html"]
    assert np.array2string(X_REF[0, :3], precision=3)[1:6] not in bundle["text/html"]
    assert bundle["text/plain"] == repr(strategy)
    assert strategy.X_reference is X_REF and strategy.get_params()["y_reference"] is Y_REF


def test_skactiveml_strategy_summarises_its_reference_set():
    pytest.importorskip("skactiveml")
    from skisal.skactiveml import InfluenceSampling

    text = repr(InfluenceSampling(X_REF, Y_REF))
    assert "X_reference=ndarray(shape=(200, 64), dtype=float32)" in text
