"""JAX: ``jax-jit``, a jitted ``jnp.sum(a * b, axis=0)`` compiled once per input signature.

Multiply + reduce is not a ``dot_general``, so JAX's default TF32 matmul
precision on NVIDIA GPUs does not apply. With 64-bit mode off (JAX's default)
JAX silently turns float64/int64/complex128 into 32 bits; this adapter refuses
those dtypes instead, naming the switch that enables them.
"""

from __future__ import annotations

import functools
import importlib
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core import dtypes as _dtypes
from ..core.cache import LRUCache
from ..core.dtypes import numpy_dtype, numpy_dtype_name
from ..core.errors import UnsupportedDtypeError
from ..core.probes import HostTimer, MemoryUse, Timer, cpu_count, gpu_l2_cache_bytes
from ..core.semantics import Plan
from ..core.shapes import GPU_LANES_PER_SM, partial_row_groups
from .base import Adapter, Library
from .numpy import NumbaKernel, default_threads, threaded_mul_sum

# Compiled executables kept per JAX adapter (least recently used evicted). A small
# executable costs 1-2 MiB of host memory (jax-rows unrolls up to 64 rows), so 64
# keep a shape-churning caller within ~150 MiB (docs/shape-churn.md).
EXECUTABLE_CACHE_SIZE = 64
_NEEDS_X64 = frozenset({"float64", "int64", "complex128"})
_X64_HINT = (
    "JAX has 64-bit types disabled and would silently use 32 bits; enable them with "
    "jax.config.update('jax_enable_x64', True) or JAX_ENABLE_X64=1 before using JAX"
)


def _jax() -> Any:
    return importlib.import_module("jax")


def tracer_class() -> type | None:
    """JAX's tracer base class when JAX is loaded, else None (nothing is imported).

    Inside ``jax.jit``, ``grad``, ``vmap`` or ``shard_map`` a function sees
    tracers. ``isinstance(tracer, jax.Array)`` is True, but since JAX 0.8.2
    ``issubclass(type(tracer), jax.Array)`` is False, so a check by type needs
    this class too (array-api-compat does the same).
    """
    jax = sys.modules.get("jax")
    return getattr(getattr(jax, "core", None), "Tracer", None)


def is_tracer(x: Any) -> bool:
    """Whether ``x`` is a JAX tracer: abstract, with no buffer and no placement until the traced program runs."""
    tracer = tracer_class()
    return tracer is not None and isinstance(x, tracer)


def _batched_put(device: Any, shape: tuple[int, ...], dtype: np.dtype) -> Callable[[np.ndarray], Any]:
    """JAX's internal put of host arrays of this shape and dtype onto ``device`` (``ImportError`` on another JAX)."""
    from jax._src import core
    from jax._src.interpreters import pxla

    aval = core.ShapedArray(shape, dtype)
    sharding = _jax().sharding.SingleDeviceSharding(device)
    return lambda x: pxla.batched_device_put(aval, sharding, [x], [device])


@functools.cache
def _batched_put_works(device: Any, dtype: np.dtype) -> bool:
    """Whether the internal put holds a probe's bits and matches ``jax.device_put`` in type, aval and placement."""
    try:
        probe = np.random.default_rng(0).standard_normal((3, 5)).astype(dtype)
        out, expected = _batched_put(device, probe.shape, dtype)(probe), _jax().device_put(probe, device)
        return (
            type(out) is type(expected)
            and out.aval == expected.aval
            and out.sharding == expected.sharding
            and out.committed == expected.committed
            and np.asarray(out).tobytes() == probe.tobytes()
        )
    except Exception:  # another JAX's internals: the public call
        return False


# On the CPU, jax.device_put of a small host result runs ~40 us of Python per call,
# and np.asarray of a JAX array ~8 us; right after a streaming kernel has evicted the
# interpreter's caches, 470 and 110 us (measured on a 2-vCPU Xeon, jax 0.10): 15% of a
# 3 ms call. The C++ calls they end in are reached directly where this JAX has them,
# checked once per device and dtype against the public call.
@functools.lru_cache(maxsize=EXECUTABLE_CACHE_SIZE)
def result_put(device: Any, shape: tuple[int, ...], dtype: np.dtype) -> Callable[[np.ndarray], Any]:
    """``jax.device_put(x, device)`` for C-contiguous host arrays ``x`` of this shape and dtype."""
    public = functools.partial(_jax().device_put, device=device)
    if not _batched_put_works(device, dtype):
        return public
    internal = _batched_put(device, shape, dtype)

    def put(x: np.ndarray) -> Any:
        if x.dtype != dtype or x.shape != shape:  # the abstract value would misdescribe x
            return public(x)
        return internal(x)

    return put


def host_buffer(x: Any) -> np.ndarray:
    """A read-only NumPy view of the buffer of a CPU JAX array (``np.asarray(x)``, without its Python)."""
    view_of = getattr(x, "_single_device_array_to_np_array_did_copy", None)
    if view_of is None or not x.is_fully_replicated:  # jax's own condition for this call
        return np.asarray(x)
    view, _ = view_of()
    view.flags.writeable = False
    return view


def _sharding(x: Any) -> Any:
    """What keys a JAX array's placement in mul_sum's kernel cache: its sharding (device, memory kind,
    or the devices it spans), 0.1 us where ``x.device`` takes 0.57 (2-vCPU AMD EPYC VM).

    A tracer has none (AttributeError): traced calls are not keyed.
    """
    return x.sharding


def _concrete_mesh(sharding: Any) -> Any:
    """The mesh of devices ``sharding`` is laid out on, or None (no mesh, as a pmap's output, or an abstract one)."""
    mesh = getattr(sharding, "mesh", None)
    return mesh if isinstance(getattr(mesh, "devices", None), np.ndarray) else None


def _device_order(sharding: Any) -> tuple[Any, ...]:
    """The devices of ``sharding`` in the order a computation on them is compiled for (its mesh's, flattened)."""
    mesh = _concrete_mesh(sharding)
    if mesh is not None:
        return tuple(mesh.devices.flat)
    assigned = getattr(sharding, "_device_assignment", None)  # other shardings' order: no public name for it
    return tuple(assigned) if assigned is not None else tuple(sorted(sharding.device_set, key=lambda d: d.id))


def _explicit_axes(sharding: Any) -> bool:
    """Whether ``sharding``'s mesh has an explicit axis (``jax.sharding.AxisType.Explicit``)."""
    explicit = getattr(getattr(importlib.import_module("jax.sharding"), "AxisType", None), "Explicit", None)
    return explicit is not None and explicit in getattr(_concrete_mesh(sharding), "axis_types", ())


def platform_of(x: Any) -> str:
    """The platform ("cpu", "gpu", ...) of JAX array ``x``; for a tracer, the default backend's.

    A tracer has no ``devices()`` (it raises ``ConcretizationTypeError``): where
    the traced program runs is decided when it runs, on the default backend
    unless the caller placed it elsewhere.
    """
    if is_tracer(x):
        return _jax().default_backend()
    return next(iter(x.devices())).platform


def _mul_sum_kernel(a: Any, b: Any, *, full_shape: tuple[int, ...], out_dtype: Any, acc_dtype: Any) -> Any:
    jnp = importlib.import_module("jax.numpy")
    a = jnp.broadcast_to(a.astype(acc_dtype), full_shape)  # products in the plan's product_dtype
    b = jnp.broadcast_to(b.astype(acc_dtype), full_shape)
    return jnp.sum(a * b, axis=0, dtype=acc_dtype).astype(out_dtype)


def _rows_mul_sum_kernel(a: Any, b: Any, *, full_shape: tuple[int, ...], out_dtype: Any, acc_dtype: Any) -> Any:
    """``jax-rows``: the row products added one row after another, unrolled in the traced program.

    XLA fuses the N multiplies and adds into one element-wise loop over the K
    outputs that reads every row once: a streaming pass, where XLA:CPU's
    column reduction (``jnp.sum(..., axis=0)`` with small N and huge K) runs at
    a few percent of bandwidth. The program grows with N, so beyond
    ``MAX_UNROLLED_ROWS`` rows the rows are folded in groups of that many and
    the group sums reduced with ``jnp.sum``.
    """
    jnp = importlib.import_module("jax.numpy")
    a = jnp.broadcast_to(a.astype(acc_dtype), full_shape)  # products in the plan's product_dtype
    b = jnp.broadcast_to(b.astype(acc_dtype), full_shape)
    n = full_shape[0]
    if n > MAX_UNROLLED_ROWS:
        groups, rest = divmod(n, MAX_UNROLLED_ROWS)
        folded = _unrolled_rows(
            a[: groups * MAX_UNROLLED_ROWS].reshape(groups, MAX_UNROLLED_ROWS, *full_shape[1:]),
            b[: groups * MAX_UNROLLED_ROWS].reshape(groups, MAX_UNROLLED_ROWS, *full_shape[1:]),
            acc_dtype,
            axis=1,
        )
        total = jnp.sum(folded, axis=0, dtype=acc_dtype)
        if rest:
            total = total + _unrolled_rows(
                a[groups * MAX_UNROLLED_ROWS :], b[groups * MAX_UNROLLED_ROWS :], acc_dtype, axis=0
            )
        return total.astype(out_dtype)
    return _unrolled_rows(a, b, acc_dtype, axis=0).astype(out_dtype)


MAX_UNROLLED_ROWS = 64


def _unrolled_rows(a: Any, b: Any, acc_dtype: Any, *, axis: int) -> Any:
    # The inputs arrive in the accumulation dtype (the plan's product_dtype):
    # products and the running sum are formed in it.
    lax = importlib.import_module("jax.lax")
    total = None
    for i in range(a.shape[axis]):
        row = (lax.index_in_dim(a, i, axis, keepdims=False) * lax.index_in_dim(b, i, axis, keepdims=False)).astype(
            acc_dtype
        )
        total = row if total is None else total + row
    return total


def _sharded_mul_sum_kernel(
    a: Any, b: Any, *, full_shape: tuple[int, ...], out_dtype: Any, acc_dtype: Any, rows: Any
) -> Any:
    """``_mul_sum_kernel`` with dim 0 split over the mesh axis "rows" (``rows`` is that sharding)."""
    jax, jnp = _jax(), importlib.import_module("jax.numpy")
    a = jnp.broadcast_to(a.astype(acc_dtype), full_shape)  # products in the plan's product_dtype
    b = jnp.broadcast_to(b.astype(acc_dtype), full_shape)
    pad = -full_shape[0] % rows.mesh.size
    if pad:  # zero rows add exact zeros: even splits without changing the sum
        widths = [(0, pad)] + [(0, 0)] * (len(full_shape) - 1)
        a, b = jnp.pad(a, widths), jnp.pad(b, widths)
    a = jax.lax.with_sharding_constraint(a, rows)
    b = jax.lax.with_sharding_constraint(b, rows)
    # Each device sums its rows in acc_dtype; XLA all-reduces the partial sums, still in acc_dtype.
    return jnp.sum(a * b, axis=0, dtype=acc_dtype).astype(out_dtype)


def _pallas_mul_sum_kernel(
    a: Any,
    b: Any,
    *,
    full_shape: tuple[int, ...],
    out_dtype: Any,
    acc_dtype: Any,
    multiprocessors: int,
    interpret: bool = False,
) -> Any:
    """``jax-pallas``: the strided partial sums of a Pallas kernel, then their sum; ``_mul_sum_kernel`` where it cannot.

    The kernel reads both inputs as they lie, so only inputs of the full shape
    and the result's dtype take it (a broadcast or a mixed-precision pair would
    first be materialized by XLA), with N and K > 0 and 32-bit offsets enough.
    """
    k = math.prod(full_shape[1:])
    same = all(x.shape == full_shape and x.dtype == out_dtype for x in (a, b))
    if not same or k == 0 or full_shape[0] == 0:
        return _mul_sum_kernel(a, b, full_shape=full_shape, out_dtype=out_dtype, acc_dtype=acc_dtype)
    kernels = importlib.import_module("xbackend.backends.pallas_kernels")
    groups = partial_row_groups(full_shape[0], k, GPU_LANES_PER_SM * multiprocessors)
    if not kernels.fits(math.prod(full_shape), k * groups, np.dtype(out_dtype).itemsize):
        return _mul_sum_kernel(a, b, full_shape=full_shape, out_dtype=out_dtype, acc_dtype=acc_dtype)
    return kernels.mul_sum(
        a,
        b,
        full_shape=full_shape,
        out_dtype=out_dtype,
        acc_dtype=acc_dtype,
        groups=groups,
        interpret=interpret,
    )


class JaxAdapter(Adapter):
    """JAX's plumbing: arrays on one device of a platform, dtype and x64 rules, timing and the floor."""

    framework = "jax"
    devices = ("cpu", "gpu")
    install_hint = "pip install jax jaxlib (CPU) or pip install 'jax[cuda13]'"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self.jax = _jax()
        self.jnp = importlib.import_module("jax.numpy")
        self._devices = tuple(self.jax.devices(device))
        self._device = self._devices[0]
        # The last result stands for all earlier ones: a device runs its work in
        # dispatch order. Only one (small) output is held alive.
        self._last_result: Any = None
        self._floor: Callable[[Any, Any], Any] | None = None

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

    def unsupported_dtype_reason(self, dtype: str) -> str:
        return f"{self.name} cannot compute in {dtype}: {_X64_HINT}"

    def asarray(self, host: np.ndarray) -> Any:
        dtype = numpy_dtype_name(host.dtype)
        if dtype in self.unsupported_dtypes():
            raise UnsupportedDtypeError(f"cannot hold a {dtype} array in JAX: {_X64_HINT}")
        # Always a copy in JAX's own memory: on the CPU, device_put aliases a 64-byte
        # aligned host buffer (may_alias=False too, jax 0.10), which made the input
        # sets rotated past the cache one buffer, read from the cache.
        return self.jax.numpy.array(host, copy=True, device=self._placement(host.shape))

    def _placement(self, shape: tuple[int, ...]) -> Any:
        """Where ``asarray`` puts an array of ``shape``: a device or a sharding."""
        return self._device

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(self.jax.device_get(x))

    def synchronize(self, *arrays: Any) -> None:
        # JAX has no device-wide barrier: wait for the arrays this adapter returned.
        last, self._last_result = self._last_result, None
        self.jax.block_until_ready((last, *arrays))

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self.jax.Array)

    def host_view(self, x: Any) -> np.ndarray | None:
        # On the CPU a JAX array's buffer is host memory, viewed without a copy.
        return host_buffer(x) if self.device == "cpu" else None

    def dtype_name(self, x: Any) -> str:
        return numpy_dtype_name(np.dtype(x.dtype))

    def device_of(self, x: Any) -> str | None:
        if is_tracer(x):
            return None  # no placement while tracing
        devices = x.devices()
        if len(devices) != 1:
            raise ValueError(f"{self.name} takes arrays on one device; this input is sharded over {len(devices)}")
        (device,) = devices
        return f"{device.platform}:{device.id}"

    def _empty(self, a: Any, b: Any, plan: Plan) -> Any:
        if is_tracer(a) or is_tracer(b):  # summed as traced jnp: JAX places the zeros as any op of the inputs
            return self._kernel_for(plan, function=_mul_sum_kernel)(a, b)
        return self._zeros(plan, a)

    def _zeros(self, plan: Plan, like: Any) -> Any:
        return self._put(np.zeros(plan.out_shape, numpy_dtype(plan.out_dtype)), like)

    def _put(self, host: np.ndarray, like: Any) -> Any:
        """``host``, a result computed off XLA, placed as JAX places a result of input ``like``: on its device and
        memory kind, committed only where it is (several CPU devices under ``--xla_force_host_platform_device_count``,
        say); on a platform's one device, committed there by the fast put."""
        if len(self._devices) == 1:
            return result_put(self._device, host.shape, host.dtype)(host)
        return self.jax.device_put(host, like.sharding if like.committed else None)

    # -- measurement hooks --------------------------------------------------
    def timer(self) -> Timer:
        # JAX has no device events in its API; dispatch is asynchronous, so the
        # host clock stops only after block_until_ready.
        return HostTimer(
            self.synchronize, "host perf_counter around call + block_until_ready", asynchronous=self.device != "cpu"
        )

    def floor_kernels(self) -> dict[str, Callable[[Any, Any], Any]]:
        if self._floor is None:
            jnp = self.jnp
            self._floor = self.jax.jit(lambda u, v: jnp.dot(u.ravel(), v.ravel(), precision="highest"))
        return {"jax.jit(jnp.dot)": self._floor}

    def cache_bytes(self) -> int | None:
        return gpu_l2_cache_bytes() if self.device == "gpu" else super().cache_bytes()

    def device_description(self) -> str:
        if self.device == "cpu":
            return super().device_description()
        return str(self._device.device_kind)

    def thread_report(self) -> dict[str, Any]:
        return {
            "XLA:CPU": f"its own intra-op pool over all {cpu_count()} CPUs; ignores OMP_NUM_THREADS and --threads",
        }

    # The traced function; subclasses swap in another formulation of the same sum.
    kernel_function = staticmethod(_mul_sum_kernel)

    def _kernel_for(
        self, plan: Plan, function: Callable[..., Any] | None = None, **options: Any
    ) -> Callable[[Any, Any], Any]:
        return functools.partial(
            function or self.kernel_function,
            full_shape=plan.full_shape,
            out_dtype=numpy_dtype(plan.out_dtype),
            acc_dtype=numpy_dtype(plan.acc_dtype),
            **options,
        )

    def _traced(self, plan: Plan) -> Callable[[Any, Any], Any]:
        """The strategy's jnp formulation, inlined into the caller's trace (jit, grad, vmap, shard_map).

        A compiled executable takes concrete arrays only; the traced function
        composes with every transform, and the caller's jit compiles it.
        """
        return self._kernel_for(plan)


class JaxJit(JaxAdapter):
    """``jax-jit``: the sum traced once per signature and compiled ahead of time by XLA."""

    name = "jax-jit"
    formulation = "jax.jit(jnp.sum(a * b, axis=0, dtype=<accumulation dtype>)), AOT-compiled per signature"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self._executables: LRUCache[tuple[Any, ...], Callable[[Any, Any], Any]] = LRUCache(EXECUTABLE_CACHE_SIZE)

    def _executable(self, a: Any, b: Any, plan: Plan) -> tuple[Callable[[Any, Any], Any], float | None]:
        # Committed or not: JAX places the result of uncommitted inputs uncommitted.
        key = (a.shape, a.dtype, b.shape, b.dtype, a.sharding, b.sharding, a.committed, b.committed)
        cached = self._executables.get(key)
        if cached is not None:
            return cached, None
        start = time.perf_counter()
        # Compiled inside jax.disable_jit too, which refuses the AOT path: the
        # executable serves the calls made outside it (_calling).
        with self.jax.disable_jit(False):
            executable = self._jitted(plan, a).lower(a, b).compile()
        seconds = time.perf_counter() - start
        self._executables.put(key, executable)
        return executable, seconds

    def release_compiled(self) -> None:
        self._executables.clear()

    def _jitted(self, plan: Plan, like: Any) -> Any:
        """The jitted kernel for inputs placed as ``like``."""
        return self.jax.jit(self._kernel_for(plan))

    def _calling(self, executable: Callable[[Any, Any], Any], plan: Plan) -> Callable[[Any, Any], Any]:
        """``executable`` as mul_sum calls it: inside ``jax.disable_jit`` (where JAX refuses to run a compiled
        executable) the strategy's jnp formulation, op by op, as JAX runs a jitted function there."""
        config = self.jax.config

        def call(a: Any, b: Any) -> Any:
            try:
                return executable(a, b)
            except ValueError:  # a try costs nothing until it catches; a config read per call would
                if not config.jax_disable_jit:
                    raise
            return self._traced(plan)(a, b)

        return call

    def prepare(self, a: Any, b: Any) -> float | None:
        plan = self.plan(a, b)
        if plan.n == 0:
            return None
        return self._executable(a, b, plan)[1]

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        if is_tracer(a) or is_tracer(b):
            return self._traced(plan)(a, b)
        out = self._calling(self._executable(a, b, plan)[0], plan)(a, b)
        self._last_result = out
        return out

    def kernel(self, a: Any, b: Any, plan: Plan) -> Callable[[Any, Any], Any]:
        if plan.n > 0 and (is_tracer(a) or is_tracer(b)):
            # Cached under the tracer's type, apart from concrete arrays' executables.
            return self._traced(plan)
        # The compiled executable, in a frame that adds ~0.1 us to JAX's own call (~9 us).
        return self._calling(self._executable(a, b, plan)[0], plan) if plan.n > 0 else super().kernel(a, b, plan)

    def extra_memory(self, a: Any, b: Any) -> MemoryUse:
        plan = self.plan(a, b)
        if plan.n == 0:
            return MemoryUse(self.mul_sum(a, b), 0, "empty sum: nothing computed")
        executable = self._executable(a, b, plan)[0]
        out = self.mul_sum(a, b)
        analysis = executable.memory_analysis()
        if analysis is None:  # a backend without the analysis
            return self._extra_memory_fallback(lambda: self.mul_sum(a, b))
        # XLA's scratch beyond arguments and outputs, known at compile time.
        return MemoryUse(out, int(analysis.temp_size_in_bytes), "XLA compiled.memory_analysis().temp_size_in_bytes")


class JaxSharded(JaxJit):
    """``jax-jit``'s kernel over every local device of a platform, dim 0 sharded across them.

    ``asarray`` shards dim 0 over a one-axis mesh ("rows") of all
    ``jax.devices(device)``, so each device holds 1/D of the rows. JAX shards
    only evenly: an array whose dim 0 the device count does not divide (a
    broadcast size-1 dim 0 included) is replicated instead, and the compiled
    kernel pads the rows with zeros to a multiple of D and splits them there,
    so the work is still split, the memory is not. The partial sums stay in the
    accumulation dtype through XLA's cross-device all-reduce; the result is
    replicated on every device. On one device this is ``jax-jit`` with extra steps.
    """

    name = "jax-sharded"
    selectable = False
    formulation = (
        "jax.jit(jnp.sum(a * b, axis=0, dtype=<accumulation dtype>)) with dim 0 sharded over all local devices "
        "(jax.sharding mesh 'rows'); XLA all-reduces the partial sums"
    )

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self._sharding = importlib.import_module("jax.sharding")
        self.mesh = self._sharding.Mesh(np.array(self.jax.devices(device)), ("rows",))

    def _mesh_of(self, x: Any) -> Any:
        """The mesh "rows" over the devices of ``x`` in its sharding's order: XLA compiles for one order of the
        devices and refuses arguments placed in another."""
        order = _device_order(x.sharding)
        if order == tuple(self.mesh.devices.flat):
            return self.mesh
        return self._sharding.Mesh(np.array(order), ("rows",))

    def _placement(self, shape: tuple[int, ...]) -> Any:
        """Dim 0 split over the mesh where the devices divide it, else replicated there."""
        spec = ("rows",) if shape and shape[0] % self.mesh.size == 0 else ()
        return self._sharding.NamedSharding(self.mesh, self._sharding.PartitionSpec(*spec))

    def _result_sharding(self, like: Any) -> Any:
        """Where a result of inputs placed as ``like`` goes: replicated on their own mesh (a 2-D one too, so
        that it combines with JAX's arrays there) and in their memory kind."""
        mesh = _concrete_mesh(like.sharding)
        mesh = self._mesh_of(like) if mesh is None else mesh
        memory_kind = like.sharding.memory_kind
        return self._sharding.NamedSharding(mesh, self._sharding.PartitionSpec(), memory_kind=memory_kind)

    def _put(self, host: np.ndarray, like: Any) -> Any:
        return self.jax.device_put(host, self._result_sharding(like))

    def device_of(self, x: Any) -> str | None:
        if is_tracer(x):
            return None
        devices = sorted(x.devices(), key=lambda device: device.id)
        return f"{devices[0].platform}:" + ",".join(str(device.id) for device in devices)

    def plan(self, a: Any, b: Any) -> Plan:
        plan = super().plan(a, b)
        mesh_devices = set(self.mesh.devices.flat)
        for label, x in (("first", a), ("second", b)):
            if not is_tracer(x) and set(x.devices()) != mesh_devices:
                raise ValueError(
                    f"jax-sharded runs on all {self.mesh.size} {self.device} devices; the {label} input is on "
                    f"{self.device_of(x)}: place it with adapter.asarray, or jax.device_put it with a "
                    "NamedSharding over jax.devices()"
                )
        if not (is_tracer(a) or is_tracer(b)) and _device_order(a.sharding) != _device_order(b.sharding):
            orders = [[device.id for device in _device_order(x.sharding)] for x in (a, b)]
            raise ValueError(
                f"the inputs are sharded over the {self.device} devices in two orders (ids {orders[0]} and "
                f"{orders[1]}), and JAX computes on one: jax.device_put both onto shardings of one mesh"
            )
        return plan

    kernel_function = staticmethod(_sharded_mul_sum_kernel)

    def _traced(self, plan: Plan) -> Callable[[Any, Any], Any]:
        # A tracer has no placement to shard: inside the caller's jit, XLA's own
        # partitioner spreads jax-jit's formulation over however the caller sharded.
        return self._kernel_for(plan, function=_mul_sum_kernel)

    def _jitted(self, plan: Plan, like: Any) -> Any:
        out = self._result_sharding(like)
        if _explicit_axes(like.sharding):
            # Sharding in types: no constraint onto another mesh is allowed, and JAX
            # partitions jax-jit's formulation from the inputs' own shardings.
            return self.jax.jit(self._kernel_for(plan, function=_mul_sum_kernel), out_shardings=out)
        rows = self._sharding.NamedSharding(self._mesh_of(like), self._sharding.PartitionSpec("rows"))
        return self.jax.jit(self._kernel_for(plan, rows=rows), out_shardings=out)

    def device_description(self) -> str:
        return f"{self.mesh.size} x {super().device_description()} (jax.devices({self.device!r}))"


class JaxRows(JaxJit):
    """``jax-rows``: ``jax-jit`` with the row sum unrolled into one fused element-wise pass (see ``_rows_mul_sum_kernel``)."""

    name = "jax-rows"
    formulation = (
        "jax.jit(a[0]*b[0] + a[1]*b[1] + ...), rows unrolled (groups of 64 rows beyond 64, then jnp.sum), "
        "accumulated in <accumulation dtype>; AOT-compiled per signature"
    )

    kernel_function = staticmethod(_rows_mul_sum_kernel)

    def _traced(self, plan: Plan) -> Callable[[Any, Any], Any]:
        # Run op by op (an eager grad or vmap), the unrolled rows are hundreds of small ops, and
        # each row's slice is compiled on its own: the first eager grad of a 20000 x 1 input took
        # 9.4 s, and each later one 0.4 s. Jitted, the formulation is traced and compiled once per
        # signature (in JAX's own cache: a bounded one of ours recompiled every call of a cycle of
        # more shapes than it held), and inlined into a caller's jit. Under jax.disable_jit a jit
        # runs op by op too, so there jax-jit's formulation (one reduction) runs instead.
        jitted = functools.partial(
            _jitted_rows_kernel(),
            full_shape=plan.full_shape,
            out_dtype=numpy_dtype(plan.out_dtype),
            acc_dtype=numpy_dtype(plan.acc_dtype),
        )
        reduction = self._kernel_for(plan, function=_mul_sum_kernel)
        config = self.jax.config

        def traced(a: Any, b: Any) -> Any:
            return reduction(a, b) if config.jax_disable_jit else jitted(a, b)

        return traced


@functools.cache
def _jitted_rows_kernel() -> Callable[..., Any]:
    """``_rows_mul_sum_kernel`` under one ``jax.jit``, its plan static: made when JAX is first used, not imported."""
    return _jax().jit(_rows_mul_sum_kernel, static_argnames=("full_shape", "out_dtype", "acc_dtype"))


class JaxPallas(JaxJit):
    """``jax-pallas``: torch-triton's strided partial sums as a Pallas kernel, in one XLA executable (GPU only).

    ``jnp.sum(a * b, axis=0)`` is XLA's own reduction: jax-jit read 0.51-0.63 of
    the floor on an H200 in float32 (jax-auto, the faster of it and jax-rows per
    class, 0.72-0.84) where torch-triton's kernel read 0.85-0.94. Pallas
    lowers the same kernel to Triton (``pallas_kernels``), and the R x K partials'
    sum follows in the same compiled program: one call, compiled once per input
    signature. Products are rounded one by one (PTX ``mul.rn``, never fused into
    an add). Other layouts and dtype mixes, and calls inside the caller's
    ``jit``, ``grad`` or ``vmap`` (tracers), run ``jax-jit``'s formulation,
    which every transform differentiates and batches; XLA fuses it into the
    caller's program there. Real floating dtypes only.
    """

    name = "jax-pallas"
    devices = ("gpu",)
    formulation = (
        "Pallas kernel (lowered to Triton): lane l of L = K*R lanes sums a.flat[l::L] * b.flat[l::L] in the "
        "accumulation dtype, then jnp.sum of the R x K partials, one executable per signature; other layouts "
        "and traced calls (jit, grad, vmap): jax-jit's formulation"
    )
    kernel_function = staticmethod(_pallas_mul_sum_kernel)

    @classmethod
    def _device_unavailable_reason(cls, device: str) -> str | None:
        reason = super()._device_unavailable_reason(device)
        if reason is not None:
            return reason
        try:
            _jax().devices("cuda")
        except RuntimeError:  # a ROCm GPU: the kernel's products are PTX
            return "jax-pallas runs on NVIDIA GPUs only (its products are PTX mul.rn); use jax-jit"
        try:
            importlib.import_module("jax.experimental.pallas.triton")
        except ImportError as exc:  # a JAX without Pallas's Triton lowering
            return f"JAX's Pallas Triton lowering does not import: {exc}"
        return None

    def unsupported_dtypes(self) -> frozenset[str]:
        return super().unsupported_dtypes() | frozenset(_dtypes.INTEGERS + _dtypes.COMPLEX_FLOATS)

    def unsupported_dtype_reason(self, dtype: str) -> str:
        if dtype in _dtypes.INTEGERS + _dtypes.COMPLEX_FLOATS:
            return f"jax-pallas computes real floating dtypes only; use jax-jit for {dtype}"
        return super().unsupported_dtype_reason(dtype)

    def _jitted(self, plan: Plan, like: Any) -> Any:
        return self.jax.jit(self._kernel_for(plan, multiprocessors=_multiprocessors(self._device)))

    def _traced(self, plan: Plan) -> Callable[[Any, Any], Any]:
        # Reverse mode needs a transpose of the kernel, which Pallas calls lack (and the inline
        # PTX has no derivative rule): traced callers get XLA's formulation, which every transform takes.
        return self._kernel_for(plan, function=_mul_sum_kernel)


def _multiprocessors(device: Any) -> int:
    """Streaming multiprocessors of JAX GPU ``device``; that of the H100 and H200 (132) where JAX does not say."""
    return int(getattr(device, "core_count", 0) or 132)


class JaxNumpy(JaxAdapter):
    """``jax-numpy``: the numpy-threads strategy on zero-copy NumPy views of CPU JAX arrays.

    On the CPU a JAX array's buffer is host memory and ``np.asarray`` views it
    without a copy, so ``np.einsum``'s single streaming pass, in row (or column)
    blocks on every allowed core (``default_threads``: the affinity mask capped
    by ``OMP_NUM_THREADS``; ``fix_cpu_threads`` overrides it), replaces XLA:CPU's
    reduction, which is slow on short-wide and column shapes. Only the K-element
    result is copied back into JAX (``jax.device_put``). CPU only. A tracer has
    no buffer to view, so inside ``jax.jit``, ``grad`` or ``vmap`` it runs
    jax-jit's formulation, traced.
    """

    name = "jax-numpy"
    devices = ("cpu",)
    formulation = (
        "np.einsum('i...,i...->...') on zero-copy NumPy views of the JAX arrays in row (or column) blocks on "
        "every allowed core (the numpy-threads strategy), result device_put back"
    )
    # Its blocks run on xbackend's own pool, which the count bounds (XLA:CPU's does not run here).
    honours_cpu_threads = True
    # Set by fix_cpu_threads; None: default_threads().
    threads: int | None = None
    # The NumPy strategy run on the views (numpy-threads' or numpy-numba's).
    host_mul_sum = staticmethod(threaded_mul_sum)

    def fix_cpu_threads(self, threads: int) -> None:
        self.threads = threads

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        if is_tracer(a) or is_tracer(b):  # no buffer to view: jax-jit's formulation, traced
            return self._traced(plan)(a, b)
        threads = self.threads or default_threads()
        out = self._put(self.host_mul_sum(host_buffer(a), host_buffer(b), plan, threads), a)
        self._last_result = out
        return out

    def kernel(self, a: Any, b: Any, plan: Plan) -> Callable[[Any, Any], Any]:
        if plan.n > 0 and (is_tracer(a) or is_tracer(b)):
            return self._traced(plan)
        return Adapter.kernel(self, a, b, plan)


class JaxNumba(NumbaKernel, JaxNumpy):
    """``jax-numba``: numpy-numba's kernel on zero-copy NumPy views of CPU JAX arrays, as ``jax-numpy`` runs np.einsum."""

    name = "jax-numba"
    formulation = (
        "the numpy-numba strategy (its numba kernel per block) on "
        "zero-copy NumPy views of the JAX arrays on every allowed core, result device_put back"
    )


LIBRARY = Library(
    name="jax",
    strategies=(JaxJit, JaxRows, JaxPallas, JaxNumpy, JaxNumba, JaxSharded),
    default_strategy="jax-jit",
    devices={"cpu": "cpu", "gpu": "gpu"},
    device_kind=platform_of,
    # Tracers (inside jax.jit, grad, vmap) are JAX arrays too: see tracer_class.
    array_types=(("jax", "Array"), ("jax.core", "Tracer")),
    floor_strategy="jax-jit",
    distributions=("jax", "jaxlib", "numba"),
    # mul_sum's kernels of JAX arrays are compiled executables: no more than the adapters keep.
    kernel_cache_size=EXECUTABLE_CACHE_SIZE,
    # Latency-class inputs on the CPU need no per-shape compile: jax-numpy sums a zero-copy view.
    small_input_strategies={"cpu": "jax-numpy"},
    device_key=_sharding,
)
