"""Every (strategy, device) pair, lookup by name, and dispatch on the input's library.

Library detection never imports a framework: an array can only be a torch
tensor if torch is already in ``sys.modules`` (the array-api-compat approach).
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._adapter import Adapter, require
from ._cupy import CupyEager
from ._jax import JaxJit
from ._numpy import NumpyAdapter
from ._torch import TorchEager, TorchEinsum

STRATEGIES: dict[str, type[Adapter]] = {
    cls.name: cls for cls in (NumpyAdapter, TorchEager, TorchEinsum, JaxJit, CupyEager)
}

# The strategy ``mul_sum`` runs for each library's arrays.
DEFAULT_STRATEGY = {"numpy": "numpy", "torch": "torch-eager", "jax": "jax-jit", "cupy": "cupy"}

# (module that must be loaded, attribute path of its array type) per library.
_ARRAY_TYPES = {
    "torch": ("torch", "Tensor"),
    "jax": ("jax", "Array"),
    "cupy": ("cupy", "ndarray"),
}


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    framework: str
    device: str
    available: bool
    reason: str | None
    version: str | None
    formulation: str


def adapters() -> list[AdapterInfo]:
    """Every registered (strategy, device) pair, with whether it can run here and why not.

    Checking a device imports that framework.
    """
    return [
        AdapterInfo(
            name=cls.name,
            framework=cls.framework,
            device=device,
            available=(reason := cls.unavailable_reason(device)) is None,
            reason=reason,
            version=cls.framework_version(),
            formulation=cls.formulation,
        )
        for cls in STRATEGIES.values()
        for device in cls.devices
    ]


_instances: dict[tuple[str, str], Adapter] = {}


def get_adapter(name: str, device: str | None = None) -> Adapter:
    """The adapter for strategy ``name`` on ``device`` (default: the strategy's first device).

    Raises ``ValueError`` for an unknown name or device and ``AdapterUnavailable``
    (with the reason) when it cannot run here.
    """
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown adapter {name!r}; known: {', '.join(STRATEGIES)}") from None
    device = cls.devices[0] if device is None else device
    if device not in cls.devices:
        raise ValueError(f"adapter {name!r} runs on {', '.join(cls.devices)}, not {device!r}")
    key = (name, device)
    if key not in _instances:
        require(cls, device)
        _instances[key] = cls(device)
    return _instances[key]


@functools.cache
def _library_of_type(cls: type) -> str | None:
    if issubclass(cls, (np.ndarray, np.generic)):
        return "numpy"
    for library, (module, attr) in _ARRAY_TYPES.items():
        loaded = sys.modules.get(module)
        if loaded is not None and issubclass(cls, getattr(loaded, attr)):
            return library
    return None


def library_of(x: Any) -> str:
    """The array library of ``x``; ``TypeError`` for anything that is not an array."""
    library = _library_of_type(type(x))
    if library is None:
        raise TypeError(
            f"mul_sum takes NumPy, PyTorch, JAX or CuPy arrays, not {type(x).__module__}."
            f"{type(x).__qualname__}; wrap lists with numpy.asarray"
        )
    return library


def _device_kind(library: str, x: Any) -> str:
    if library == "numpy":
        return "cpu"
    if library == "torch":
        return x.device.type
    if library == "cupy":
        return "cuda"
    devices = x.devices()
    return next(iter(devices)).platform


def mul_sum(a: Any, b: Any) -> Any:
    """``sum(a * b, axis=0)`` on the inputs' own library and device.

    ``a`` and ``b`` are arrays of one library (NumPy, PyTorch, JAX or CuPy) on one
    device; the result is an array of that library on that device. The semantics
    (shapes, broadcasting, dtypes, errors) are the README's, shared by every adapter.
    """
    library_a, library_b = library_of(a), library_of(b)
    if library_a != library_b:
        raise TypeError(f"inputs come from two libraries: {library_a} and {library_b}")
    if isinstance(a, np.generic) or isinstance(b, np.generic):
        raise ValueError("mul_sum needs inputs of at least one dimension (dim 0 is reduced); got a 0-d scalar")
    device = _device_kind(library_a, a)
    name = DEFAULT_STRATEGY[library_a]
    if device not in STRATEGIES[name].devices:
        raise ValueError(f"no adapter for {library_a} arrays on {device}")
    return get_adapter(name, device).mul_sum(a, b)
