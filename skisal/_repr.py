"""A scikit-learn ``repr`` that shows data parameters by shape and dtype, not by value.

The strategies take whole data sets as parameters (``X_reference``, ``X_labeled``), and
scikit-learn's ``repr`` prints every changed parameter with its value: a screenful of
numbers. :class:`SummarisedArraysRepr` prints those as ``array(shape=(200, 64),
dtype=float32)`` instead, in the text and the HTML (notebook) representations alike.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SummarisedArraysRepr", "summarise"]

#: Lists and tuples longer than this are summarised too (a list of images, of targets).
MAX_LISTED = 10


class _Summary:
    """Stands in for a data parameter in a repr."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def summarise(value: Any) -> Any:
    """``value`` itself, or a stand-in whose repr gives its kind, shape and dtype.

    Parameters
    ----------
    value : object
        A parameter's value.

    Returns
    -------
    object
        Arrays, tensors and pandas objects (anything with a ``shape``), and
        lists or tuples of more than 10 elements, as a short stand-in;
        anything else unchanged.

    Examples
    --------
    >>> from skisal._repr import summarise
    >>> summarise(np.zeros((200, 64), dtype=np.float32))
    ndarray(shape=(200, 64), dtype=float32)
    >>> summarise(torch.zeros(3, dtype=torch.int64))
    Tensor(shape=(3,), dtype=torch.int64)
    >>> summarise(list(range(50))), summarise(["fc2"])
    (list(len=50), ['fc2'])
    """
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, type):
        dtype = getattr(value, "dtype", None)
        described = f"shape={tuple(shape)}" + ("" if dtype is None else f", dtype={dtype}")
        return _Summary(f"{type(value).__name__}({described})")
    if isinstance(value, list | tuple) and len(value) > MAX_LISTED:
        return _Summary(f"{type(value).__name__}(len={len(value)})")
    return value


class SummarisedArraysRepr:
    """Mixin, before ``BaseEstimator``: data parameters shown by shape and dtype.

    scikit-learn's own repr machinery draws the result (changed parameters
    only, the same layout); it is given a view of the estimator whose data
    parameters are stand-ins from :func:`summarise`. The estimator itself is
    not touched.
    """

    def _summarised(self) -> Any:
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)  # shared values: nothing is copied
        for name, value in self.get_params(deep=False).items():
            view.__dict__[name] = summarise(value)
        return view

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        return super(SummarisedArraysRepr, self._summarised()).__repr__(N_CHAR_MAX)

    def _repr_html_inner(self) -> str:
        return super(SummarisedArraysRepr, self._summarised())._repr_html_inner()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return super(SummarisedArraysRepr, self._summarised())._repr_mimebundle_(**kwargs)
