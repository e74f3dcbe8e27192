"""CuPy: ``cupy``, ``cupy.sum(a * b, axis=0)`` with the accumulation dtype made explicit."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from ._adapter import Adapter
from ._errors import UnsupportedDtypeError
from ._numpy import numpy_dtype, numpy_dtype_name
from ._semantics import Plan


def _cupy() -> Any:
    return importlib.import_module("cupy")


class CupyAdapter(Adapter):
    framework = "cupy"
    devices = ("cuda",)
    install_hint = "pip install cupy-cuda12x (or cupy-cuda13x, matching your CUDA driver)"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self.cupy = _cupy()

    @classmethod
    def distribution(cls) -> str:
        import importlib.metadata

        for dist in ("cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x", "cupy"):
            try:
                importlib.metadata.version(dist)
                return dist
            except importlib.metadata.PackageNotFoundError:
                continue
        return "cupy"

    @classmethod
    def _device_unavailable_reason(cls, device: str) -> str | None:
        cupy = _cupy()
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError when no driver is loaded
            return f"no CUDA device ({type(exc).__name__}: {exc})"
        return None if count > 0 else "no CUDA device"

    def unsupported_dtypes(self) -> frozenset[str]:
        return frozenset({"bfloat16"})

    def _unsupported_dtype_message(self, dtype: str) -> str:
        return f"cupy has no {dtype} arrays"

    def asarray(self, host: np.ndarray) -> Any:
        dtype = numpy_dtype_name(host.dtype)
        if dtype in self.unsupported_dtypes():
            raise UnsupportedDtypeError(self._unsupported_dtype_message(dtype))
        return self.cupy.asarray(host)

    def to_numpy(self, x: Any) -> np.ndarray:
        return self.cupy.asnumpy(x)

    def synchronize(self, *arrays: Any) -> None:
        self.cupy.cuda.get_current_stream().synchronize()

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self.cupy.ndarray)

    def dtype_name(self, x: Any) -> str:
        return numpy_dtype_name(x.dtype)

    def device_of(self, x: Any) -> str:
        return f"cuda:{x.device.id}"

    def _zeros(self, plan: Plan) -> Any:
        return self.cupy.zeros(plan.out_shape, dtype=numpy_dtype(plan.out_dtype))


class CupyEager(CupyAdapter):
    name = "cupy"
    formulation = "cupy.sum(a * b, axis=0, dtype=<accumulation dtype>)"

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        dtype = numpy_dtype(plan.out_dtype)
        product = a.astype(dtype, copy=False) * b.astype(dtype, copy=False)
        out = self.cupy.sum(product, axis=0, dtype=numpy_dtype(plan.acc_dtype))
        return out.astype(dtype, copy=False)
