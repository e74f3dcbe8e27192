"""Every (strategy, device) pair, lookup by name, and dispatch on the input's library.

Library detection never imports a framework: an array can only be a torch
tensor if torch is already in ``sys.modules`` (the array-api-compat approach).
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ._adapter import Adapter, require, unsupported_array
from ._array_api import ArrayApiAdapter
from ._cupy import CupyAdapter, CupyEager, CupyFused
from ._dask import DaskAdapter, DaskCluster
from ._jax import JaxJit, JaxNumpy, JaxRows, JaxSharded
from ._numpy import NumpyAdapter
from ._selection import Selected
from ._semantics import Plan
from ._torch import TorchAdapter, TorchBlocked, TorchCompile, TorchEager, TorchEinsum, TorchNumpy


def _auto(base: type[Adapter], library: str, default: str) -> type[Adapter]:
    """``<library>-auto``: ``xbackend.mul_sum`` on that library's arrays, with the library's plumbing."""
    attributes = {"name": f"{library}-auto", "default": default, "__doc__": Selected.__doc__}
    return type(f"{library.capitalize()}Auto", (Selected, base), attributes)


NumpyAuto = _auto(NumpyAdapter, "numpy", "numpy")
TorchAuto = _auto(TorchAdapter, "torch", "torch-eager")
JaxAuto = _auto(JaxJit, "jax", "jax-jit")
CupyAuto = _auto(CupyAdapter, "cupy", "cupy")

STRATEGIES: dict[str, type[Adapter]] = {
    cls.name: cls
    for cls in (
        NumpyAdapter, TorchEager, TorchEinsum, JaxJit, CupyEager,
        ArrayApiAdapter, DaskAdapter, DaskCluster, JaxSharded,
        TorchNumpy, TorchBlocked, TorchCompile, JaxRows, JaxNumpy, CupyFused,
        NumpyAuto, TorchAuto, JaxAuto, CupyAuto,
    )
}

# The strategy ``mul_sum`` runs for each library's arrays ("array-api": any
# other library that implements the array API standard).
DEFAULT_STRATEGY = {
    "numpy": "numpy", "torch": "torch-eager", "jax": "jax-jit", "cupy": "cupy",
    "dask": "dask", "array-api": "array-api",
}
# JAX arrays spread over several devices go to the strategy that keeps them there.
SHARDED_JAX_STRATEGY = "jax-sharded"

# (module that must be loaded, attribute path of its array type) per library.
_ARRAY_TYPES = {
    "torch": ("torch", "Tensor"),
    "jax": ("jax", "Array"),
    "cupy": ("cupy", "ndarray"),
    "dask": ("dask.array", "Array"),
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
    # Any other array API library: its arrays carry __array_namespace__, and its
    # package is already imported (the array exists), so checking imports nothing.
    if hasattr(cls, "__array_namespace__") and cls.__module__.split(".", 1)[0] in sys.modules:
        return "array-api"
    return None


def library_of(x: Any) -> str:
    """The array library of ``x``; ``TypeError`` for anything that is not an array.

    Masked and sparse arrays raise ``TypeError`` and dask arrays of unknown
    chunk sizes ``ValueError``, naming the fix (``_adapter.unsupported_array``).
    """
    problem = unsupported_array(x)
    if problem is not None:
        raise problem
    library = _library_of_type(type(x))
    if library is None:
        raise TypeError(
            f"mul_sum takes NumPy, PyTorch, JAX, CuPy, dask or array-API arrays, not {type(x).__module__}."
            f"{type(x).__qualname__}; wrap lists with numpy.asarray"
        )
    return library


def device_kind_of(library: str, x: Any) -> str:
    """The device kind ("cpu", "cuda", "gpu") of array ``x`` of ``library``."""
    if library in ("numpy", "dask", "array-api"):
        return "cpu"  # their adapters refuse, with the device named, data held elsewhere
    if library == "torch":
        return x.device.type
    if library == "cupy":
        return "cuda"
    devices = x.devices()
    return next(iter(devices)).platform


def is_sharded(x: Any) -> bool:
    """Whether JAX array ``x`` lives on several devices."""
    return len(x.devices()) > 1


def resolve_inputs(a: Any, b: Any) -> tuple[str, str, Plan]:
    """Library, device kind and plan of ``mul_sum(a, b)``; every input error is raised here, before work."""
    library_a, library_b = library_of(a), library_of(b)
    if library_a != library_b:
        raise TypeError(f"inputs come from two libraries: {library_a} and {library_b}")
    device = device_kind_of(library_a, a)
    default = SHARDED_JAX_STRATEGY if library_a == "jax" and is_sharded(a) else DEFAULT_STRATEGY[library_a]
    if device not in STRATEGIES[default].devices:
        raise ValueError(f"no adapter for {library_a} arrays on {device}")
    return library_a, device, get_adapter(default, device).plan(a, b)


# Kernels by input signature: what mul_sum runs without validating or choosing again.
_KERNELS: dict[tuple[Any, ...], Callable[[Any, Any], Any]] = {}
_MAX_KERNELS = 4096


def dispatch_key(a: Any, b: Any) -> tuple[Any, ...] | None:
    """The input signature ``mul_sum`` caches its kernel under; None for inputs it does not cache."""
    try:
        key = (type(a), type(b), a.shape, b.shape, a.dtype, b.dtype, a.device, b.device)
        if type(a) is not np.ndarray:  # NumPy has no layouts; skipping the lookup keeps tiny calls cheap
            # A torch sparse tensor must not reuse a dense tensor's kernel.
            key += (getattr(a, "layout", None), getattr(b, "layout", None))
        hash(key)
    except Exception:  # no .device (dask), unhashable parts, tracers: validated on every call
        return None
    return key


def clear_dispatch_cache() -> None:
    _KERNELS.clear()


def _kernel_for(a: Any, b: Any) -> Callable[[Any, Any], Any]:
    from ._selection import choose

    _, device, _ = resolve_inputs(a, b)  # validates against the library's default strategy
    adapter = get_adapter(choose(a, b).strategy, device)
    return adapter.kernel(a, b, adapter.plan(a, b))


def mul_sum(a: Any, b: Any) -> Any:
    """``sum(a * b, axis=0)`` on the inputs' own library and device, by the fastest known strategy.

    ``a`` and ``b`` are arrays of one library (NumPy, PyTorch, JAX, CuPy, dask.array,
    or any other array API library) on one device; the result is an array of that
    library on that device. dask arrays give a lazy dask result; JAX arrays sharded
    over several devices run on ``jax-sharded``. The semantics
    (shapes, broadcasting, dtypes, errors) are the README's, shared by every adapter.
    The strategy comes from the selection table (``xbackend.choose(a, b)`` says
    which and why); the first call per input signature (types, shapes, dtypes,
    devices) validates and chooses, later ones call the cached kernel directly.
    """
    key = dispatch_key(a, b)
    kernel = _KERNELS.get(key) if key is not None else None
    if kernel is None:
        kernel = _kernel_for(a, b)
        if key is not None:
            if len(_KERNELS) >= _MAX_KERNELS:
                _KERNELS.clear()
            _KERNELS[key] = kernel
    return kernel(a, b)
