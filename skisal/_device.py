"""Where a strategy computes: the device a user asks for, and the module on it.

The influence strategy and the baselines resolve ``device=`` the same way and
never move the user's module: a computation on another device works on a copy
(:func:`skisal.engine.model.module_on`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .engine.model import module_on
from .exceptions import InvalidParameterError

__all__ = ["check_device", "module_for"]


def check_device(device: Any, default: torch.device, name: str = "device") -> torch.device:
    """The torch device to compute on: ``device`` checked, or ``default``.

    ``"cuda"`` resolves to the current CUDA device (``cuda:0`` unless set), so
    that it compares equal to where a module already is.

    Parameters
    ----------
    device : str, torch.device or None
        The user's choice; None for ``default``.
    default : torch.device
        The module's own device.
    name : str, default="device"
        Argument name used in error messages.

    Returns
    -------
    torch.device
        With an index for CUDA.

    Raises
    ------
    ValueError
        If ``device`` names no torch device, or a device this machine lacks.

    Examples
    --------
    >>> import torch
    >>> check_device(None, torch.device("cpu"))
    device(type='cpu')
    >>> check_device("nonsense", torch.device("cpu"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    skisal.exceptions.InvalidParameterError: device must name a torch device ... got 'nonsense'.
    """
    if device is None:
        return default
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"{name} must name a torch device such as 'cpu' or 'cuda:0', got {device!r}."
        ) from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidParameterError(
                f"{name}={device!r}, but torch sees no CUDA device (no GPU, no driver, or a "
                "CPU-only build of torch): use device='cpu', or None for the module's device."
            )
        if resolved.index is None:
            resolved = torch.device("cuda", torch.cuda.current_device())
        elif resolved.index >= torch.cuda.device_count():
            raise InvalidParameterError(
                f"{name}={device!r}, but this machine has {torch.cuda.device_count()} CUDA "
                f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}."
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidParameterError(
            f"{name}={device!r}, but the MPS backend is not available here: use device='cpu'."
        )
    return resolved


def module_for(adapter: Any, estimator: Any, device: Any) -> tuple[nn.Module, torch.device]:
    """The estimator's network on the device to compute on, and that device.

    Parameters
    ----------
    adapter : ModelAdapter
        Gives the estimator's module and its device.
    estimator : object
        The user's fitted model.
    device : str, torch.device or None
        The strategy's ``device`` option; None for the module's own device.

    Returns
    -------
    module : torch.nn.Module
        The user's module when it is already there, else a copy moved there.
    device : torch.device
        The checked device (see :func:`check_device`).

    Examples
    --------
    >>> from skisal.adapters import SkorchClassifierAdapter
    >>> module, device = module_for(SkorchClassifierAdapter(), net, None)
    >>> module is net.module_, device
    (True, device(type='cpu'))
    """
    where = adapter.get_device(estimator)
    resolved = check_device(device, where)
    return module_on(adapter.get_module(estimator), resolved, where), resolved
