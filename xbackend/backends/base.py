"""The adapter interface: one strategy for the dim-0 multiply-sum on one device.

A framework module (``_numpy``, ``_torch``, ``_jax``, ``_cupy``) subclasses
``Adapter`` once with the framework's plumbing (conversion, dtype names, device,
synchronization) and once more per strategy with ``_compute``. The framework is
imported when an adapter is created, never when ``xbackend`` is imported.
"""

from __future__ import annotations

import abc
import importlib.metadata
import importlib.util
import math
import sys
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..core.errors import AdapterUnavailable, UnsupportedDtypeError
from ..core.probes import HostTimer, MemoryUse, Timer, cpu_last_level_cache_bytes, cpu_model, rss_extra_memory
from ..core.semantics import Plan, plan_mul_sum


class Adapter(abc.ABC):
    """One (strategy, device) pair. Instances are made by ``xbackend.get_adapter``."""

    name: ClassVar[str]
    framework: ClassVar[str]  # the import name: "numpy", "torch", "jax", "cupy"
    devices: ClassVar[tuple[str, ...]]
    install_hint: ClassVar[str]
    formulation: ClassVar[str]  # what is computed, for people reading `xbackend list`
    # Whether ``xbackend.mul_sum`` may pick this strategy from the selection table
    # (not: multi-device and scale-out strategies, and the ``-auto`` adapters themselves).
    selectable: ClassVar[bool] = True
    # Whether a new input signature's first call compiles for seconds (torch-compile):
    # mul_sum's first-call trial leaves such strategies out unless asked (XBACKEND_AUTOTUNE=compile).
    compiles_for_seconds: ClassVar[bool] = False
    # Devices on which this strategy may sum an output in one running sum over all N rows
    # (torch-einsum: ATen's CPU matmul): its error grows with N and, in float32, the sum
    # stops growing near 2**24. mul_sum passes it over where rows are many
    # (core.shapes.MANY_ROWS_CLASSES), as the other strategies keep partial sums.
    serial_sum_devices: ClassVar[tuple[str, ...]] = ()

    def __init__(self, device: str) -> None:
        self.device = device

    def __repr__(self) -> str:
        return f"<xbackend adapter {self.name!r} on {self.device}>"

    # -- availability -------------------------------------------------------
    @classmethod
    def unavailable_reason(cls, device: str) -> str | None:
        """Why this adapter cannot run on ``device`` here, or None when it can."""
        if importlib.util.find_spec(cls.framework) is None:
            return f"{cls.framework} is not installed: {cls.install_hint}"
        try:
            return cls._device_unavailable_reason(device)
        except Exception as exc:  # a broken install must not break listing
            return f"{cls.framework} failed to initialise {device}: {exc}"

    @classmethod
    def _device_unavailable_reason(cls, device: str) -> str | None:
        return None

    @classmethod
    def framework_version(cls) -> str | None:
        try:
            return importlib.metadata.version(cls.distribution())
        except importlib.metadata.PackageNotFoundError:
            return None

    @classmethod
    def distribution(cls) -> str:
        return cls.framework

    # -- framework plumbing (one implementation per framework) --------------
    @abc.abstractmethod
    def asarray(self, host: np.ndarray) -> Any:
        """Copy a NumPy array to a native array on this adapter's device, dtype kept exactly.

        Always a new buffer, never a view of ``host``: the measurement rotates
        such copies past the cache.
        """

    @abc.abstractmethod
    def to_numpy(self, x: Any) -> np.ndarray:
        """Copy a native array to a NumPy array, dtype kept exactly."""

    @abc.abstractmethod
    def synchronize(self, *arrays: Any) -> None:
        """Block until this adapter's device work (and that producing ``arrays``) is done."""

    @abc.abstractmethod
    def is_native(self, x: Any) -> bool:
        """Whether ``x`` is an array of this adapter's framework."""

    @abc.abstractmethod
    def dtype_name(self, x: Any) -> str:
        """The dtype of native ``x`` as a name from ``xbackend._dtypes``."""

    @abc.abstractmethod
    def device_of(self, x: Any) -> str | None:
        """The device of native ``x`` as a full name ("cpu", "cuda:0", ...); None while it has none (a JAX tracer)."""

    @abc.abstractmethod
    def _zeros(self, plan: Plan, like: Any) -> Any:
        """The empty-sum result: zeros of ``plan.out_shape`` and ``plan.out_dtype``, on input ``like``'s device."""

    @abc.abstractmethod
    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        """The strategy itself, on inputs already validated against ``plan``."""

    def unsupported_dtypes(self) -> frozenset[str]:
        """Dtypes this strategy cannot compute on its device without losing precision."""
        return frozenset()

    def unsupported_dtypes_for(self, a: Any, b: Any) -> frozenset[str]:
        """``unsupported_dtypes`` for these inputs (the array-api adapter asks their namespace)."""
        return self.unsupported_dtypes()

    def device_kind(self, full_device: str) -> str:
        return full_device.split(":", 1)[0]

    # -- the operation ------------------------------------------------------
    def plan(self, a: Any, b: Any) -> Plan:
        """Check ``a`` and ``b`` against the shared semantics, before any work."""
        for label, x in (("first", a), ("second", b)):
            refuse_unsupported_array(x, label)
            if isinstance(x, np.generic):  # a NumPy scalar is 0-d, whichever adapter it meets
                raise ValueError(
                    f"mul_sum needs inputs of at least one dimension (dim 0 is reduced); the {label} "
                    f"input is a 0-d NumPy scalar ({_describe(x)})"
                )
            if not self.is_native(x):
                raise TypeError(
                    f"{self.name} takes {self.framework} arrays; the {label} input is "
                    f"{_describe(x)}: convert it with adapter.asarray, or call "
                    "xbackend.mul_sum to dispatch on the input's library"
                )
        # None: no placement yet (a JAX tracer); the traced program runs where its caller puts it.
        devices = [device for device in (self.device_of(a), self.device_of(b)) if device is not None]
        if len(devices) == 2 and devices[0] != devices[1]:
            raise ValueError(f"inputs are on two devices: {devices[0]} and {devices[1]}")
        if devices and self.device_kind(devices[0]) != self.device:
            raise ValueError(
                f"{self.name} on {self.device} was given inputs on {devices[0]}; "
                "inputs are never moved between devices behind your back"
            )
        plan = plan_mul_sum(a.shape, self.dtype_name(a), b.shape, self.dtype_name(b))
        if plan.out_dtype in self.unsupported_dtypes_for(a, b):
            raise UnsupportedDtypeError(self.unsupported_dtype_reason(plan.out_dtype))
        return plan

    def unsupported_dtype_reason(self, dtype: str) -> str:
        """Why ``dtype`` is in ``unsupported_dtypes()``: the message of the error and of test skips."""
        return f"{self.name} on {self.device} does not support {dtype}"

    def mul_sum(self, a: Any, b: Any) -> Any:
        """``sum(a * b, axis=0)`` with the shared semantics (see README)."""
        plan = self.plan(a, b)
        if plan.n == 0:
            return self._empty(a, b, plan)
        return self._compute(a, b, plan)

    def _empty(self, a: Any, b: Any, plan: Plan) -> Any:
        """The result of an empty sum (N = 0) of ``a`` and ``b``; torch keeps autograd's graph here."""
        return self._zeros(plan, a)

    def kernel(self, a: Any, b: Any, plan: Plan) -> Callable[[Any, Any], Any]:
        """A function computing ``mul_sum`` for any inputs with the shapes, dtypes and devices of ``a`` and ``b``.

        ``xbackend.mul_sum`` caches it per input signature and calls it without
        re-validating; a strategy returns its framework's function itself where
        it can, so that a tiny call pays no dispatch on top.
        """
        if plan.n == 0:
            return lambda x, y: self._empty(x, y, plan)
        return lambda x, y: self._compute(x, y, plan)

    def dispatch_pair(self, a: Any, b: Any) -> tuple[Callable[[Any, Any], Any], Callable[[Any, Any], Any], str] | None:
        """For an adapter that dispatches (``<library>-auto``): the dispatching call, the plain call it ends in on
        ``a`` and ``b``, and what that plain call is; None for a strategy, which dispatches nothing.

        ``xbackend.measure`` times the two in the same rounds: the difference is the dispatch overhead.
        """
        return None

    def choice(self, a: Any, b: Any) -> str | None:
        """For an adapter that dispatches (``<library>-auto``): the strategy it runs on ``a`` and ``b`` and why
        (``xbackend.explain``); None for a strategy."""
        return None

    def prepare(self, a: Any, b: Any) -> float | None:
        """Compile ahead of time for these inputs; seconds spent, or None if nothing compiles."""
        return None

    # -- measurement hooks (used by xbackend.measure) ------------------------
    # The defaults are right for a CPU; framework modules override them where
    # their framework has a better probe, and for their GPU devices.
    def timer(self) -> Timer:
        """How one call is timed: the host clock around the call and a synchronize."""
        return HostTimer(self.synchronize)

    def extra_memory(self, a: Any, b: Any) -> MemoryUse:
        """Compute ``mul_sum(a, b)`` once; the peak bytes it allocated beyond inputs and output."""
        return self._extra_memory_fallback(lambda: self.mul_sum(a, b))

    def _extra_memory_fallback(self, call: Callable[[], Any]) -> MemoryUse:
        if self.device == "cpu":
            # Not every array library has ``nbytes`` (array-api-strict): count via NumPy.
            return rss_extra_memory(call, lambda out: self.to_numpy(out).nbytes)
        return MemoryUse(call(), None, f"no memory probe for {self.framework} on {self.device}")

    def host_view(self, x: Any) -> np.ndarray | None:
        """A zero-copy NumPy view of native ``x`` when its memory is host memory, else None.

        The CPU floor reads the cell's own buffers through it: the same bytes in
        the same pages (NumPy asks for transparent huge pages for large arrays,
        torch's and XLA's CPU allocators do not).
        """
        return None

    def from_host_view(self, view: np.ndarray) -> Any | None:
        """A native array over the very buffer of host array ``view`` (no copy); None where that takes a copy.

        ``view`` may be another framework's buffer (``host_view``): the floor
        kernels of each library that can wrap it read the cell's own pages.
        """
        return None

    def floor_kernels(self) -> dict[str, Callable[[Any, Any], Any]]:
        """Streaming reads of the flattened native ``x`` and ``y`` (dots), by what they run: the floor's candidates.

        Each reads the same bytes as ``mul_sum`` and writes one number; the floor
        is the fastest of every library's candidates on the hardware (and of the
        strategies themselves, where one beats them all).
        """
        return {}

    def cache_bytes(self) -> int | None:
        """The last-level cache between this device and its memory (None when unknown)."""
        return cpu_last_level_cache_bytes() if self.device == "cpu" else None

    def device_description(self) -> str:
        """The hardware behind this adapter's device, for the report."""
        return cpu_model() if self.device == "cpu" else self.device

    # Whether ``fix_cpu_threads`` bounds every thread this adapter's calls and
    # floor kernels use (XLA:CPU has its own pool that ignores it): the thread
    # scaling of ``xbackend compare --scaling`` counts only such floors.
    honours_cpu_threads: ClassVar[bool] = False

    def fix_cpu_threads(self, threads: int) -> None:
        """Pin the framework's CPU thread pools to ``threads`` for the rest of the process."""

    def thread_report(self) -> dict[str, Any]:
        """The framework's CPU threading, as reported in ``xbackend compare``."""
        return {}

    def release_memory(self) -> None:
        """Return cached device memory to the system between measurements (allocator pools)."""

    def release_compiled(self) -> None:
        """Forget every compiled executable this adapter caches (``xbackend.clear_caches``); nothing by default."""


def _describe(x: Any) -> str:
    cls = type(x)
    return f"{cls.__module__}.{cls.__qualname__}"


def unsupported_array(x: Any) -> Exception | None:
    """Why ``x`` cannot be summed as a plain dense array, as the exception to raise; None when it can.

    The one place for these per-library facts (``Adapter.plan``,
    ``xbackend.mul_sum`` and ``xbackend.testing`` all ask it; no framework is
    imported): masked arrays (NumPy ``np.ma``, dask arrays of masked chunks
    and torch ``MaskedTensor``) would have their masks ignored, nested (ragged) torch tensors have no common
    shape, sparse arrays (torch sparse layouts,
    scipy.sparse, jax.experimental.sparse) have no dense buffer, and dask arrays
    with unknown chunk sizes have no shape to plan with.
    """
    module = type(x).__module__
    from_dask = module.startswith("dask.")
    masked_meta = from_dask and isinstance(getattr(x, "_meta", None), np.ma.MaskedArray)
    if isinstance(x, np.ma.MaskedArray) or masked_meta or module.startswith("torch.masked"):
        return TypeError(
            f"{_describe(x)} is a masked array: mul_sum would ignore its mask. Fill the masked entries "
            "first (x.filled(0) for NumPy, dask.array.ma.filled(x, 0) for dask, x.to_tensor(0) for a torch "
            "MaskedTensor), or use the np.ma functions (np.ma.sum(a * b, axis=0))"
        )
    if module == "torch" and getattr(x, "is_nested", False):
        return TypeError(
            f"{_describe(x)} is a nested (ragged) tensor: its rows have no common shape to sum over. "
            "Pad it first (x.to_padded_tensor(0)) or sum each component"
        )
    torch_sparse = module == "torch" and str(getattr(x, "layout", "torch.strided")) != "torch.strided"
    if torch_sparse or module.startswith(("scipy.sparse", "jax.experimental.sparse")):
        layout = f" (layout {x.layout})" if torch_sparse else ""
        return TypeError(
            f"{_describe(x)}{layout} is a sparse array; mul_sum takes dense arrays: densify it first "
            "(x.to_dense() for torch, x.toarray() for scipy.sparse, x.todense() for jax.experimental.sparse)"
        )
    if from_dask and any(isinstance(d, float) and math.isnan(d) for d in getattr(x, "shape", ())):
        return ValueError(
            f"a dask array of unknown chunk sizes (shape {x.shape}, e.g. after boolean indexing) cannot be "
            "planned: call x.compute_chunk_sizes() first"
        )
    return None


def refuse_unsupported_array(x: Any, label: str) -> None:
    """Raise ``unsupported_array(x)``, naming which input it is."""
    problem = unsupported_array(x)
    if problem is not None:
        raise type(problem)(f"the {label} input: {problem}")


def require(cls: type[Adapter], device: str) -> None:
    reason = cls.unavailable_reason(device)
    if reason is not None:
        raise AdapterUnavailable(f"{cls.name} on {device}: {reason}")


@dataclass(frozen=True)
class Library:
    """Everything xbackend knows about one array library, in one place (see ``xbackend.backends``).

    ``array_types`` are the (module, attribute) of its array classes, checked
    only once that module is in ``sys.modules`` (``recognises``: a rule of its
    own instead, for the generic array-API record); ``devices`` maps the library's
    device names to the hardware ("cpu" or "gpu"); ``floor_strategy`` names
    the strategy whose ``floor_dot`` reads bytes on that hardware (None: the
    library offers no floor kernel); ``distributions`` are the packages whose
    versions describe it. ``kernel_cache_size`` caps the kernels ``mul_sum``
    caches per array type of the library (least recently used evicted): a
    kernel may hold a compiled executable, so a library that compiles per shape
    keeps it as small as its own executable cache. ``small_input_strategies``
    names, per device, a strategy that serves latency-class inputs without a
    per-shape compile (the selection table is not consulted for those).
    ``device_key`` gives a hashable stand-in for an array's device where the
    library's device objects cannot be hashed (CuPy's) or take longer to get than
    another attribute that says as much (JAX's sharding): ``mul_sum`` keys its
    kernel cache by it, else by ``x.device``.
    """

    name: str
    strategies: tuple[type[Adapter], ...]
    default_strategy: str
    devices: dict[str, str]
    device_kind: Callable[[Any], str]
    array_types: tuple[tuple[str, str], ...] = ()
    recognises: Callable[[type], bool] | None = None
    selectable: bool = True
    floor_strategy: str | None = None
    distributions: tuple[str, ...] = ()
    kernel_cache_size: int = 1024
    # Per device: the strategy that serves latency-class inputs whatever the table says,
    # where the chosen one would compile per shape and this one needs no compile.
    small_input_strategies: dict[str, str] = field(default_factory=dict)
    device_key: Callable[[Any], Hashable] | None = None

    def owns_type(self, cls: type) -> bool:
        """Whether ``cls`` is this library's array type (never imports the library)."""
        if self.recognises is not None:
            return self.recognises(cls)
        for module, attribute in self.array_types:
            loaded = sys.modules.get(module)
            if loaded is not None and issubclass(cls, getattr(loaded, attribute)):
                return True
        return False


def host_device(x: Any) -> str:
    """The device kind of an array whose library computes on the host only (its adapters refuse others)."""
    return "cpu"
