"""JAX: ``jax-jit``, a jitted ``jnp.sum(a * b, axis=0)`` compiled once per input signature.

Multiply + reduce is not a ``dot_general``, so JAX's default TF32 matmul
precision on NVIDIA GPUs does not apply. With 64-bit mode off (JAX's default)
JAX silently turns float64/int64/complex128 into 32 bits; this adapter refuses
those dtypes instead, naming the switch that enables them.
"""

from __future__ import annotations

import functools
import importlib
import time
from typing import Any, Callable

import numpy as np

from ._adapter import Adapter
from ._errors import UnsupportedDtypeError
from ._numpy import numpy_dtype, numpy_dtype_name
from ._semantics import Plan

_NEEDS_X64 = frozenset({"float64", "int64", "complex128"})
_X64_HINT = (
    "JAX has 64-bit types disabled and would silently use 32 bits; enable them with "
    "jax.config.update('jax_enable_x64', True) or JAX_ENABLE_X64=1 before using JAX"
)


def _jax() -> Any:
    return importlib.import_module("jax")


def _mul_sum_kernel(a: Any, b: Any, *, full_shape: tuple[int, ...], out_dtype: Any, acc_dtype: Any) -> Any:
    jnp = importlib.import_module("jax.numpy")
    a = jnp.broadcast_to(a.astype(out_dtype), full_shape)
    b = jnp.broadcast_to(b.astype(out_dtype), full_shape)
    return jnp.sum(a * b, axis=0, dtype=acc_dtype).astype(out_dtype)


class JaxJit(Adapter):
    name = "jax-jit"
    framework = "jax"
    devices = ("cpu", "gpu")
    install_hint = "pip install jax jaxlib (CPU) or pip install 'jax[cuda13]'"
    formulation = "jax.jit(jnp.sum(a * b, axis=0, dtype=<accumulation dtype>)), AOT-compiled per signature"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self.jax = _jax()
        self.jnp = importlib.import_module("jax.numpy")
        self._device = self.jax.devices(device)[0]
        self._executables: dict[tuple[Any, ...], Callable[[Any, Any], Any]] = {}
        # The last result stands for all earlier ones: a device runs its work in
        # dispatch order. Only one (small) output is held alive.
        self._last_result: Any = None

    @classmethod
    def _device_unavailable_reason(cls, device: str) -> str | None:
        jax = _jax()
        try:
            jax.devices(device)
        except RuntimeError:
            return f"no {device.upper()} backend for JAX {jax.__version__} (platforms present: {jax.default_backend()}); install jax[cuda13] on a machine with an NVIDIA GPU"
        return None

    def unsupported_dtypes(self) -> frozenset[str]:
        return frozenset() if self.jax.config.jax_enable_x64 else _NEEDS_X64

    def _unsupported_dtype_message(self, dtype: str) -> str:
        return f"jax-jit cannot compute in {dtype}: {_X64_HINT}"

    def asarray(self, host: np.ndarray) -> Any:
        dtype = numpy_dtype_name(host.dtype)
        if dtype in self.unsupported_dtypes():
            raise UnsupportedDtypeError(f"cannot hold a {dtype} array in JAX: {_X64_HINT}")
        return self.jax.device_put(host, self._device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(self.jax.device_get(x))

    def synchronize(self, *arrays: Any) -> None:
        # JAX has no device-wide barrier: wait for the arrays this adapter returned.
        last, self._last_result = self._last_result, None
        self.jax.block_until_ready((last, *arrays))

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self.jax.Array)

    def dtype_name(self, x: Any) -> str:
        return numpy_dtype_name(np.dtype(x.dtype))

    def device_of(self, x: Any) -> str:
        devices = x.devices()
        if len(devices) != 1:
            raise ValueError(f"jax-jit takes arrays on one device; this input is sharded over {len(devices)}")
        (device,) = devices
        return f"{device.platform}:{device.id}"

    def _zeros(self, plan: Plan) -> Any:
        zeros = np.zeros(plan.out_shape, dtype=numpy_dtype(plan.out_dtype))
        return self.jax.device_put(zeros, self._device)

    def _executable(self, a: Any, b: Any, plan: Plan) -> tuple[Callable[[Any, Any], Any], float | None]:
        key = (a.shape, a.dtype, b.shape, b.dtype, a.sharding, b.sharding)
        if key in self._executables:
            return self._executables[key], None
        kernel = functools.partial(
            _mul_sum_kernel,
            full_shape=plan.full_shape,
            out_dtype=numpy_dtype(plan.out_dtype),
            acc_dtype=numpy_dtype(plan.acc_dtype),
        )
        start = time.perf_counter()
        executable = self.jax.jit(kernel).lower(a, b).compile()
        seconds = time.perf_counter() - start
        self._executables[key] = executable
        return executable, seconds

    def prepare(self, a: Any, b: Any) -> float | None:
        plan = self.plan(a, b)
        if plan.n == 0:
            return None
        return self._executable(a, b, plan)[1]

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        out = self._executable(a, b, plan)[0](a, b)
        self._last_result = out
        return out
