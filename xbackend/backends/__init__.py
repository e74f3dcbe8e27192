"""Backends: one module per array library, each with its strategies and one ``Library`` record.

Every per-library fact lives in that library's record (``LIBRARY`` at the end
of its module): how its arrays are recognised, what its devices are called,
its default strategy, whether the selection table chooses among its
strategies, whose dot measures the floor, and which distributions carry its
version. Every table elsewhere (dispatch, selection, measurement, the CLI's
choices, asv's machine record) is derived from ``LIBRARIES``.

Recognising an array never imports a framework: an object can only be a torch
tensor if torch is already in ``sys.modules`` (the array-api-compat approach).
"""

from __future__ import annotations

import functools
from typing import Any

from . import array_api, cupy, dask, jax, numpy, torch
from .base import Adapter, Library, unsupported_array

# Order matters twice: detection tries the records in turn (NumPy first, the
# generic array-API record last), and ``floor_rank`` breaks ties between floors.
LIBRARIES: dict[str, Library] = {
    record.name: record
    for record in (numpy.LIBRARY, torch.LIBRARY, jax.LIBRARY, cupy.LIBRARY, dask.LIBRARY, array_api.LIBRARY)
}
SELECTABLE_LIBRARIES: tuple[str, ...] = tuple(name for name, record in LIBRARIES.items() if record.selectable)
# "cpu" or "gpu" for every device name any library uses (torch's and CuPy's
# "cuda" and JAX's "gpu" are the same hardware).
HARDWARE: dict[str, str] = {
    device: hardware for record in LIBRARIES.values() for device, hardware in record.devices.items()
}


def hardware(device: str) -> str:
    """``"cpu"`` or ``"gpu"``: the hardware behind a library's device name."""
    return HARDWARE.get(device, device)


@functools.cache
def _library_of_type(cls: type) -> str | None:
    for record in LIBRARIES.values():
        if record.owns_type(cls):
            return record.name
    return None


def library_of(x: Any) -> str:
    """The array library of ``x``; ``TypeError`` for anything that is not an array.

    Masked and sparse arrays raise ``TypeError`` and dask arrays of unknown
    chunk sizes ``ValueError``, naming the fix (``base.unsupported_array``).
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
    return LIBRARIES[library].device_kind(x)


def strategy_classes() -> list[type[Adapter]]:
    """Every strategy class the backends define, in the libraries' order."""
    return [cls for record in LIBRARIES.values() for cls in record.strategies]


__all__ = [
    "HARDWARE",
    "LIBRARIES",
    "SELECTABLE_LIBRARIES",
    "Adapter",
    "Library",
    "device_kind_of",
    "hardware",
    "library_of",
    "strategy_classes",
]
