"""The Python array API standard: ``array-api``, for any library that implements it.

``xp.sum(a * b, axis=0, dtype=<accumulation dtype>)`` in the inputs' own
namespace, found by ``array_api_compat.array_namespace`` (which also wraps
NumPy, PyTorch, CuPy and dask.array into standard namespaces), over sub-blocks
of rows whose sums are added. It is the standard's plain formulation: the
namespace decides how the product and the sum run; the sub-blocks keep its
products to one sub-block and its sums accurate where it adds rows one by one.
``xbackend.mul_sum`` sends it the arrays of array-API libraries it has no
dedicated strategy for (``array_api_strict`` among them).

The adapter runs where the data is, on the host CPU only: a device that is not
the CPU (array-api-strict's test devices ``device1`` / ``device2`` included) is
refused, never copied. ``asarray(host)`` makes ``array_api_strict`` arrays (the
standard's reference implementation, so the checks exercise nothing beyond the
standard); ``asarray(host, xp=namespace)`` makes them in another namespace.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any

import numpy as np

from ..core import dtypes as _dtypes
from ..core.dtypes import numpy_dtype_name
from ..core.errors import UnsupportedDtypeError
from ..core.semantics import Plan
from ..core.shapes import SUB_BLOCK_ELEMENTS, sub_block_rows
from .base import Adapter, Library, host_device

DEFAULT_NAMESPACE = "array_api_strict"
_HOST_DEVICE_NAMES = ("cpu", "CPU_DEVICE")  # NumPy/torch/dask spell it "cpu"; array-api-strict "CPU_DEVICE"


def _compat() -> Any:
    return importlib.import_module("array_api_compat")


def namespace_dtype(xp: ModuleType, name: str) -> Any | None:
    """The dtype object ``name`` of namespace ``xp``, or None where it has none."""
    return getattr(xp, name, None)


def device_name(device: Any) -> str:
    """An array-API device as xbackend names devices: "cpu" for the host, else the library's own name."""
    platform = getattr(device, "platform", None)  # JAX devices
    if platform is not None:
        return f"{platform}:{device.id}"
    text = str(device)
    if any(name in text for name in _HOST_DEVICE_NAMES) and "cuda" not in text.lower():
        return "cpu"
    return text


class ArrayApiAdapter(Adapter):
    name = "array-api"
    framework = "array_api_compat"
    devices = ("cpu",)
    install_hint = "pip install array-api-compat array-api-strict (or xbackend[scale])"
    formulation = (
        "xp.sum(a * b, axis=0, dtype=<accumulation dtype>) in the inputs' array-API namespace (array-api-compat), "
        f"by sub-blocks of {SUB_BLOCK_ELEMENTS} elements whose sums are added"
    )

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self.compat = _compat()
        self.default_namespace = importlib.import_module(DEFAULT_NAMESPACE)

    @classmethod
    def distribution(cls) -> str:
        return "array-api-compat"

    @classmethod
    def _device_unavailable_reason(cls, device: str) -> str | None:
        if importlib.util.find_spec(DEFAULT_NAMESPACE) is None:
            return f"{DEFAULT_NAMESPACE} (the default namespace of asarray) is not installed: {cls.install_hint}"
        return None

    def namespace(self, a: Any, b: Any) -> ModuleType:
        """The one array-API namespace of ``a`` and ``b``; ``TypeError`` when they come from two."""
        try:
            return self.compat.array_namespace(a, b)
        except TypeError as exc:
            raise TypeError(f"array-api takes two arrays of one namespace: {exc}") from None

    def unsupported_dtypes(self) -> frozenset[str]:
        return self._missing_dtypes(self.default_namespace)

    def unsupported_dtypes_for(self, a: Any, b: Any) -> frozenset[str]:
        # A namespace that lacks a dtype's name can still hold arrays of it (compat's
        # dask and NumPy namespaces have no float16 attribute): the inputs show it.
        return self._missing_dtypes(self.namespace(a, b)) - {self.dtype_name(a), self.dtype_name(b)}

    @staticmethod
    def _missing_dtypes(xp: ModuleType) -> frozenset[str]:
        return frozenset(name for name in _dtypes.SUPPORTED_DTYPES if namespace_dtype(xp, name) is None)

    def unsupported_dtype_reason(self, dtype: str) -> str:
        return (
            f"array-api cannot compute in {dtype}: the inputs' namespace has no {dtype} "
            "(the array API standard, and array-api-strict, have no 16-bit floats)"
        )

    # -- framework plumbing -------------------------------------------------
    def asarray(self, host: np.ndarray, xp: ModuleType | None = None) -> Any:
        """A copy of ``host`` in namespace ``xp`` (default: array_api_strict)."""
        xp = self.default_namespace if xp is None else xp
        dtype = numpy_dtype_name(host.dtype)
        if namespace_dtype(xp, dtype) is None:
            raise UnsupportedDtypeError(f"{xp.__name__} has no {dtype}: array-api cannot hold this array")
        return xp.asarray(np.array(host, copy=True))

    def to_numpy(self, x: Any) -> np.ndarray:
        try:  # DLPack is the standard's way out; lazy arrays (dask) have none
            return np.array(np.from_dlpack(x), copy=True)
        except (AttributeError, TypeError, BufferError, RuntimeError):
            return np.array(x, copy=True)

    def synchronize(self, *arrays: Any) -> None:
        # The standard has no barrier; a lazy array (dask) does its work when computed.
        for x in arrays:
            if self.compat.is_lazy_array(x):
                self.to_numpy(x)

    def is_native(self, x: Any) -> bool:
        return bool(self.compat.is_array_api_obj(x))

    def dtype_name(self, x: Any) -> str:
        # array_api_strict.float32, torch.float32, numpy's float32: the name after the last dot.
        return str(x.dtype).rsplit(".", 1)[-1]

    def device_of(self, x: Any) -> str:
        return device_name(self.compat.device(x))

    def mul_sum(self, a: Any, b: Any) -> Any:
        # No shortcut for N == 0: an empty sum is zeros in the inputs' own namespace.
        return self._compute(a, b, self.plan(a, b))

    def _zeros(self, plan: Plan, like: Any) -> Any:
        """Zeros in the default namespace (``mul_sum`` sums empty inputs in their own)."""
        xp = self.default_namespace
        return xp.zeros(plan.out_shape, dtype=namespace_dtype(xp, plan.out_dtype))

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        xp = self.namespace(a, b)
        inputs_dtypes = {self.dtype_name(x): x.dtype for x in (a, b)}
        out_dtype, acc_dtype = (
            inputs_dtypes[name] if namespace_dtype(xp, name) is None else namespace_dtype(xp, name)
            for name in (plan.out_dtype, plan.acc_dtype)
        )
        # copy=False: the standard's astype copies by default, even to the same dtype.
        # Products are formed in the accumulation dtype (the plan's product_dtype).
        a = xp.broadcast_to(xp.astype(a, acc_dtype, copy=False), plan.full_shape)
        b = xp.broadcast_to(xp.astype(b, acc_dtype, copy=False), plan.full_shape)
        # dtype= keeps integers from widening to the default integer and makes
        # 16-bit floats (where a namespace has them) accumulate in float32. By sub-blocks
        # of rows (core.shapes): a namespace that adds rows into one running sum per
        # output (NumPy's, array-api-strict's) keeps partial sums, and the products
        # stay one sub-block.
        # (The standard leaves slice stops past the end unspecified: each is clipped.)
        rows = sub_block_rows(plan.full_shape, copies=True)
        total = None
        for lo in range(0, max(plan.n, 1), rows):
            hi = min(lo + rows, plan.n)
            # keepdims: the sums stay arrays (NumPy's scalars, a 1-D input's sums, warn on
            # integer overflow where its arrays wrap silently, as one xp.sum would).
            part = xp.sum(a[lo:hi, ...] * b[lo:hi, ...], axis=0, dtype=acc_dtype, keepdims=True)
            with np.errstate(over="ignore", invalid="ignore"):  # the adds: as silent as one xp.sum's own
                total = part if total is None else total + part
        return xp.astype(total[0, ...], out_dtype, copy=False)


def _is_array_api_type(cls: type) -> bool:
    # Any other array API library: its arrays carry __array_namespace__, and its
    # package is already imported (the array exists), so checking imports nothing.
    return hasattr(cls, "__array_namespace__") and cls.__module__.split(".", 1)[0] in sys.modules


LIBRARY = Library(
    name="array-api",
    strategies=(ArrayApiAdapter,),
    default_strategy="array-api",
    devices={"cpu": "cpu"},
    device_kind=host_device,
    recognises=_is_array_api_type,
    selectable=False,
    distributions=("array-api-compat",),
)
