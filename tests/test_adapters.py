"""The adapter interface, dispatch, laziness and bad-input errors of every adapter."""

import functools
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import xbackend
from xbackend.core.dtypes import numpy_dtype
from xbackend.registry import STRATEGIES
from xbackend.testing import assert_mul_sum_close

INFOS = xbackend.adapters()
AVAILABLE = [(i.name, i.device) for i in INFOS if i.available]
ON_CPU = [pair for pair in AVAILABLE if pair[1] == "cpu"]


def adapter_params(pairs=None):
    params = []
    for info in INFOS:
        if pairs is not None and (info.name, info.device) not in pairs:
            continue
        marks = [] if info.available else [pytest.mark.skip(reason=info.reason)]
        if info.device != "cpu":
            marks.append(pytest.mark.gpu)
        params.append(pytest.param(info.name, info.device, id=f"{info.name}@{info.device}", marks=marks))
    return params


def random_array(rng, shape, dtype):
    if dtype.startswith(("int", "uint")):
        low = 0 if dtype.startswith("uint") else -50
        return rng.integers(low, 50, size=shape).astype(dtype)
    values = rng.standard_normal(shape)
    if dtype.startswith("complex"):
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(numpy_dtype(dtype))


def native_pair(adapter, a, b):
    return adapter.asarray(a), adapter.asarray(b)


# -- listing and lookup ------------------------------------------------------
def test_every_strategy_device_pair_is_listed():
    pairs = {(i.name, i.device) for i in INFOS}
    assert pairs == {
        ("numpy", "cpu"),
        ("numpy-threads", "cpu"),
        ("numpy-numba", "cpu"),
        ("torch-numba", "cpu"),
        ("jax-numba", "cpu"),
        ("torch-eager", "cpu"),
        ("torch-eager", "cuda"),
        ("torch-einsum", "cpu"),
        ("torch-einsum", "cuda"),
        ("jax-jit", "cpu"),
        ("jax-jit", "gpu"),
        ("cupy", "cuda"),
        ("array-api", "cpu"),
        ("dask", "cpu"),
        ("dask-cluster", "cpu"),
        ("jax-sharded", "cpu"),
        ("jax-sharded", "gpu"),
        ("torch-numpy", "cpu"),
        ("torch-blocked", "cpu"),
        ("torch-blocked", "cuda"),
        ("torch-compile", "cpu"),
        ("torch-compile", "cuda"),
        ("jax-rows", "cpu"),
        ("jax-rows", "gpu"),
        ("jax-pallas", "gpu"),
        ("jax-numpy", "cpu"),
        ("cupy-fused", "cuda"),
        ("cupy-raw", "cuda"),
        ("torch-triton", "cuda"),
        ("numpy-auto", "cpu"),
        ("torch-auto", "cpu"),
        ("torch-auto", "cuda"),
        ("jax-auto", "cpu"),
        ("jax-auto", "gpu"),
        ("cupy-auto", "cuda"),
    }
    for info in INFOS:
        assert info.available == (info.reason is None)


def test_cpu_frameworks_run_here():
    assert {("numpy", "cpu"), ("torch-eager", "cpu"), ("torch-einsum", "cpu"), ("jax-jit", "cpu")} <= set(AVAILABLE)


@pytest.mark.skipif(any(i.device != "cpu" and i.available for i in INFOS), reason="a GPU is present")
def test_gpu_adapters_say_why_they_are_unavailable():
    reasons = {(i.name, i.device): i.reason for i in INFOS if i.device != "cpu"}
    assert reasons[("torch-eager", "cuda")].startswith("no CUDA device")
    assert reasons[("jax-jit", "gpu")].startswith("no GPU backend for JAX")
    cupy_reason = reasons[("cupy", "cuda")]
    assert cupy_reason.startswith(("cupy is not installed: pip install cupy-cuda", "no CUDA device"))
    with pytest.raises(xbackend.AdapterUnavailable, match="cupy on cuda: "):
        xbackend.get_adapter("cupy")


def test_get_adapter_rejects_unknown_names_and_devices():
    with pytest.raises(
        ValueError, match="unknown adapter 'torch-magic'; known: numpy, numpy-threads, numpy-numba, torch-eager"
    ):
        xbackend.get_adapter("torch-magic")
    with pytest.raises(ValueError, match="adapter 'numpy' runs on cpu, not 'cuda'"):
        xbackend.get_adapter("numpy", device="cuda")


def test_get_adapter_returns_one_instance_per_pair():
    assert xbackend.get_adapter("numpy") is xbackend.get_adapter("numpy", device="cpu")


# -- the operation against the exact oracle ----------------------------------
SHAPES = [((7,), (7,)), ((33, 5), (33, 5)), ((1, 4), (9, 4)), ((6, 1, 3), (6, 2, 1)), ((200, 17), (200, 17))]
DTYPES = ["float16", "bfloat16", "float32", "float64", "complex64", "complex128", "int8", "uint8", "int32", "int64"]


@pytest.mark.parametrize(("name", "device"), adapter_params())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("a_shape", "b_shape"), SHAPES, ids=str)
def test_agrees_with_exact_oracle(name, device, dtype, a_shape, b_shape):
    adapter = xbackend.get_adapter(name, device)
    rng = np.random.default_rng(abs(hash((dtype, a_shape))) % 2**32)
    a, b = random_array(rng, a_shape, dtype), random_array(rng, b_shape, dtype)
    if dtype in adapter.unsupported_dtypes():
        with pytest.raises(xbackend.UnsupportedDtypeError):
            adapter.mul_sum(*native_pair(adapter, a, b))
        return
    x, y = native_pair(adapter, a, b)
    out = adapter.mul_sum(x, y)
    adapter.synchronize()
    assert adapter.device_of(out).split(":")[0] == device
    assert_mul_sum_close(out, a, b)


@pytest.mark.parametrize(("name", "device"), adapter_params())
def test_round_trip_keeps_dtype_and_values(name, device):
    adapter = xbackend.get_adapter(name, device)
    rng = np.random.default_rng(0)
    for dtype in DTYPES:
        if dtype in adapter.unsupported_dtypes():
            continue
        host = random_array(rng, (4, 3), dtype)
        back = adapter.to_numpy(adapter.asarray(host))
        assert back.dtype == host.dtype
        np.testing.assert_array_equal(back, host)


@pytest.mark.parametrize(("name", "device"), adapter_params())
def test_asarray_copies_a_read_only_array_without_a_warning(name, device):
    # A memory-mapped file or a broadcast view: torch.from_numpy warned that it was not writable.
    adapter = xbackend.get_adapter(name, device)
    for dtype in ("float32", "bfloat16"):
        if dtype in adapter.unsupported_dtypes():
            continue
        host = random_array(np.random.default_rng(2), (4, 3), dtype)
        host.flags.writeable = False
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            back = adapter.to_numpy(adapter.asarray(host))
        np.testing.assert_array_equal(back, host)


def aligned(host, alignment=4096):
    """A copy of ``host`` whose data starts on an ``alignment``-byte boundary (the buffers JAX aliases)."""
    raw = np.empty(host.nbytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    out = raw[start : start + host.nbytes].view(host.dtype).reshape(host.shape)
    out[...] = host
    return out


@pytest.mark.parametrize(("name", "device"), adapter_params(ON_CPU))
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_asarray_copies_even_an_aligned_host_buffer(name, device, dtype):
    # The measurement rotates input copies made by asarray past the cache: a copy that
    # aliases its host (device_put on a 64-byte aligned array did) is read from the cache.
    adapter = xbackend.get_adapter(name, device)
    if dtype in adapter.unsupported_dtypes():
        pytest.skip(f"{name} holds no {dtype}")
    host = aligned(random_array(np.random.default_rng(1), (256, 64), dtype))
    first, second = adapter.asarray(host), adapter.asarray(host)
    views = [adapter.host_view(first), adapter.host_view(second)]
    if any(view is None for view in views):
        pytest.skip(f"{name} arrays have no host view to compare buffers through")
    assert not np.shares_memory(views[0], host) and not np.shares_memory(views[1], host)
    assert not np.shares_memory(views[0], views[1])
    np.testing.assert_array_equal(views[0], host)


def _bits(x):
    return np.asarray(x).tobytes()


@pytest.mark.parametrize("shape", [(), (3,), (2, 5)])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "int32", "complex64"])
def test_jax_result_put_is_device_put(shape, dtype):
    # jax-numpy and jax-numba hand their host result to JAX through result_put, not jax.device_put.
    jax = pytest.importorskip("jax")
    from xbackend.backends.jax import result_put

    cpu = jax.devices("cpu")[0]
    host = random_array(np.random.default_rng(3), shape, dtype)
    out, expected = result_put(cpu, shape, host.dtype)(host), jax.device_put(host, cpu)
    assert type(out) is type(expected) and out.aval == expected.aval
    assert out.sharding == expected.sharding and out.committed == expected.committed
    assert _bits(out) == _bits(host)
    other = host.astype(np.float64 if dtype == "float32" else np.float32)  # not what it was made for
    assert _bits(result_put(cpu, shape, host.dtype)(other)) == _bits(jax.device_put(other, cpu))


def test_jax_result_put_checks_the_internal_call_it_uses(monkeypatch):
    # A JAX whose internal put misbehaves (here: negates) is caught by the one-time check:
    # result_put falls back to the public call.
    jax = pytest.importorskip("jax")
    from jax._src.interpreters import pxla

    from xbackend.backends.jax import _batched_put_works, result_put

    internal = pxla.batched_device_put
    monkeypatch.setattr(
        pxla,
        "batched_device_put",
        lambda aval, sharding, xs, devices: internal(aval, sharding, [-x for x in xs], devices),
    )
    result_put.cache_clear()
    _batched_put_works.cache_clear()
    try:
        cpu = jax.devices("cpu")[0]
        put = result_put(cpu, (7,), np.dtype(np.float32))
        assert isinstance(put, functools.partial) and put.func is jax.device_put
    finally:
        result_put.cache_clear()
        _batched_put_works.cache_clear()


def test_jax_host_buffer_is_a_read_only_view():
    jax = pytest.importorskip("jax")
    from xbackend.backends.jax import host_buffer

    for dtype in ("float32", "bfloat16"):
        x = jax.numpy.asarray(random_array(np.random.default_rng(5), (64, 3), dtype))
        view = host_buffer(x)
        assert np.shares_memory(view, np.asarray(x)) and not view.flags.writeable
        assert view.dtype == x.dtype and _bits(view) == _bits(x)


@pytest.mark.parametrize(("name", "device"), adapter_params())
def test_empty_reduction_gives_zeros(name, device):
    adapter = xbackend.get_adapter(name, device)
    for a_shape, b_shape in [((0, 3), (0, 3)), ((0, 2, 2), (1, 2, 2))]:
        x, y = native_pair(adapter, np.ones(a_shape, np.float32), np.ones(b_shape, np.float32))
        out = adapter.to_numpy(adapter.mul_sum(x, y))
        assert out.shape == a_shape[1:] and out.dtype == np.float32
        assert not out.any()


@pytest.mark.parametrize(("name", "device"), adapter_params())
def test_mixed_dtypes_promote(name, device):
    adapter = xbackend.get_adapter(name, device)
    rng = np.random.default_rng(1)
    cases = [("float16", "float32", "float32"), ("float16", "bfloat16", "float32"), ("int8", "uint8", "int16")]
    for da, db, expected in cases:
        if {da, db} & adapter.unsupported_dtypes():  # array-api-strict has no 16-bit floats
            continue
        a, b = random_array(rng, (20, 3), da), random_array(rng, (20, 3), db)
        out = adapter.to_numpy(adapter.mul_sum(*native_pair(adapter, a, b)))
        assert out.dtype == numpy_dtype(expected)
        assert_mul_sum_close(out, a, b)


@pytest.mark.parametrize(("name", "device"), adapter_params())
def test_layouts_give_the_contiguous_values(name, device):
    adapter = xbackend.get_adapter(name, device)
    rng = np.random.default_rng(2)
    base_a, base_b = random_array(rng, (24, 10), "float64"), random_array(rng, (24, 10), "float64")
    x, y = native_pair(adapter, base_a, base_b)
    # The summation order may follow the memory layout: values agree within the bound.
    assert_mul_sum_close(adapter.mul_sum(x, y), base_a, base_b)
    xt, yt = native_pair(adapter, np.ascontiguousarray(base_a.T), np.ascontiguousarray(base_b.T))
    assert_mul_sum_close(adapter.mul_sum(xt.T, yt.T), base_a, base_b)  # Fortran-ordered views
    assert_mul_sum_close(adapter.mul_sum(xt.T, y), base_a, base_b)  # one of each
    strided = adapter.mul_sum(x[::3, ::2], y[::3, ::2])
    assert_mul_sum_close(strided, base_a[::3, ::2], base_b[::3, ::2])


def test_complex_inputs_are_not_conjugated():
    a = np.array([1j, 2 + 1j], np.complex128)
    for name, device in ON_CPU:
        adapter = xbackend.get_adapter(name, device)
        if "complex128" in adapter.unsupported_dtypes():  # torch-compile: inductor has no complex codegen
            continue
        out = adapter.to_numpy(adapter.mul_sum(*native_pair(adapter, a, a)))
        assert out == (1j) ** 2 + (2 + 1j) ** 2  # -1 + (3 + 4j); conjugating would give 6


def test_integers_wrap_in_the_result_dtype():
    a = np.array([2**30, 2**30, 3], np.int32)
    b = np.array([2, 2, 1], np.int32)  # 2**32 + 3 wraps to 3 in int32
    for name, device in ON_CPU:
        adapter = xbackend.get_adapter(name, device)
        out = adapter.to_numpy(adapter.mul_sum(*native_pair(adapter, a, b)))
        assert out.dtype == np.int32 and out == 3, name


def test_half_precision_accumulates_beyond_float16():
    # Positive products: a float16 accumulator stalls once its spacing exceeds them.
    rng = np.random.default_rng(6)
    a, b = (rng.uniform(0.5, 1.0, size=(20_000, 3)).astype(np.float16) for _ in range(2))
    for name, device in ON_CPU:
        adapter = xbackend.get_adapter(name, device)
        if "float16" in adapter.unsupported_dtypes():  # array-api-strict has no 16-bit floats
            continue
        assert_mul_sum_close(adapter.mul_sum(*native_pair(adapter, a, b)), a, b)


# -- dispatch ----------------------------------------------------------------
def test_mul_sum_dispatches_numpy():
    rng = np.random.default_rng(3)
    a, b = random_array(rng, (50, 4), "float32"), random_array(rng, (50, 4), "float32")
    out = xbackend.mul_sum(a, b)
    assert isinstance(out, np.ndarray)
    assert_mul_sum_close(out, a, b)


def test_mul_sum_dispatches_torch_and_stays_on_device():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    a, b = random_array(rng, (50, 4), "float32"), random_array(rng, (50, 4), "float32")
    out = xbackend.mul_sum(torch.from_numpy(a), torch.from_numpy(b))
    assert isinstance(out, torch.Tensor) and out.device.type == "cpu"
    assert_mul_sum_close(out, a, b)


def test_mul_sum_dispatches_jax_and_stays_on_device():
    jax = pytest.importorskip("jax")
    rng = np.random.default_rng(5)
    a, b = random_array(rng, (50, 4), "float32"), random_array(rng, (50, 4), "float32")
    out = xbackend.mul_sum(jax.numpy.asarray(a), jax.numpy.asarray(b))
    assert isinstance(out, jax.Array) and next(iter(out.devices())).platform == "cpu"
    assert_mul_sum_close(out, a, b)


AUTO = [(i.name, i.device) for i in INFOS if i.name.endswith("-auto")]


@pytest.mark.parametrize(("name", "device"), adapter_params(AUTO))
def test_mul_sum_caches_its_kernel_on_every_library_and_device(name, device):
    # Found on an H200: CuPy's Device has no hash, so CuPy calls chose afresh every
    # time (1.8 ms a call against 0.12 ms for the kernel itself).
    from xbackend import dispatch

    adapter = xbackend.get_adapter(name, device)
    rng = np.random.default_rng(6)
    a, b = random_array(rng, (40, 24), "float32"), random_array(rng, (40, 24), "float32")
    x, y = native_pair(adapter, a, b)
    xbackend.clear_dispatch_cache()
    assert_mul_sum_close(xbackend.mul_sum(x, y), a, b)
    key = dispatch.dispatch_key(x, y)
    assert key is not None and dispatch._KERNELS.get(key) is not None
    assert_mul_sum_close(xbackend.mul_sum(x, y), a, b)  # the cached kernel


def test_an_unhashable_device_is_keyed_by_its_librarys_device_key(monkeypatch):
    from xbackend import dispatch
    from xbackend.backends import LIBRARIES

    class Device:  # as cupy.cuda.Device: equal by id, no __hash__
        def __init__(self, id):
            self.id = id

        def __eq__(self, other):
            return isinstance(other, Device) and self.id == other.id

    class Array:
        def __init__(self, device_id):
            self.shape, self.dtype, self.device = (4, 3), np.dtype("float32"), Device(device_id)

    monkeypatch.setattr(dispatch, "library_of", lambda x: "cupy")
    xbackend.clear_dispatch_cache()  # the device key is looked up once per array type
    key = dispatch.dispatch_key(Array(0), Array(0))
    assert key == (Array, Array, (4, 3), (4, 3), np.dtype("float32"), np.dtype("float32"), 0, 0, None, None)
    assert dispatch.dispatch_key(Array(1), Array(1)) != key  # another device, another kernel
    assert LIBRARIES["cupy"].device_key(Array(3)) == 3
    monkeypatch.setattr(dispatch, "library_of", lambda x: "numpy")  # a library without one: not cached
    xbackend.clear_dispatch_cache()
    unhashable = dispatch.dispatch_key(Array(0), Array(0))
    dispatch._KERNELS.put(unhashable, lambda a, b: None, 8)
    assert dispatch._KERNELS.get(unhashable) is None and len(dispatch._KERNELS) == 0
    xbackend.clear_dispatch_cache()


def test_a_jax_array_is_keyed_by_its_sharding_and_a_tracer_is_not():
    jax = pytest.importorskip("jax")
    from xbackend import dispatch

    x = jax.numpy.ones((3, 4))
    assert dispatch.dispatch_key(x, x)[6:8] == (x.sharding, x.sharding)
    keys = []

    def traced(v):
        keys.append(dispatch.dispatch_key(v, v))
        return xbackend.mul_sum(v, v)

    jax.jit(traced)(x), jax.vmap(traced)(x), jax.grad(lambda v: traced(v).sum())(x)
    assert keys == [None, None, None]


# -- bad input ---------------------------------------------------------------
@pytest.mark.parametrize(("name", "device"), adapter_params())
def test_bad_shapes_raise_value_error_naming_both(name, device):
    adapter = xbackend.get_adapter(name, device)
    cases = [
        ((3, 2), (3,), r"\(3, 2\).*\(3,\)"),
        ((3, 2), (4, 2), r"\(3, 2\) and \(4, 2\)"),
        ((3, 2), (3, 5), r"\(3, 2\) and \(3, 5\)"),
        ((), (), r"at least one dimension"),
    ]
    for a_shape, b_shape, message in cases:
        x, y = native_pair(adapter, np.full(a_shape, 1.5, np.float32), np.full(b_shape, 1.5, np.float32))
        with pytest.raises(ValueError, match=message):
            adapter.mul_sum(x, y)
        if (name, device) in (("numpy", "cpu"), ("torch-eager", "cpu"), ("jax-jit", "cpu")):
            with pytest.raises(ValueError, match=message):
                xbackend.mul_sum(x, y)


@pytest.mark.parametrize(("name", "device"), adapter_params())
def test_foreign_inputs_raise_type_error(name, device):
    adapter = xbackend.get_adapter(name, device)
    x = adapter.asarray(np.arange(6, dtype=np.float32).reshape(3, 2))
    for foreign in ([[1.0, 2.0]] * 3, "abc", np.array([["a", "b"]] * 3, dtype=object)):
        with pytest.raises(TypeError):
            adapter.mul_sum(x, foreign)
        with pytest.raises(TypeError):
            xbackend.mul_sum(x, foreign)


def test_non_numeric_numpy_arrays_raise_type_error():
    good = np.ones((3, 2))
    for bad in (np.array([["a", "b"]] * 3), np.array([[None, 1]] * 3, dtype=object), np.ones((3, 2), bool)):
        with pytest.raises(TypeError, match="numeric dtype"):
            xbackend.mul_sum(good, bad)


def test_non_arrays_raise_type_error():
    for bad in ([1.0, 2.0], "abc", 3.0, None):
        with pytest.raises(TypeError, match="mul_sum takes NumPy, PyTorch, JAX, CuPy, dask or array-API arrays"):
            xbackend.mul_sum(bad, np.ones(2))


def test_scalars_raise_value_error():
    with pytest.raises(ValueError, match="at least one dimension"):
        xbackend.mul_sum(np.float64(1.0), np.float64(2.0))


def test_two_libraries_raise_type_error_naming_both():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="two libraries: numpy and torch"):
        xbackend.mul_sum(np.ones(3), torch.ones(3))
    adapter = xbackend.get_adapter("torch-eager")
    with pytest.raises(TypeError, match="torch-eager takes torch arrays; the second input is numpy.ndarray"):
        adapter.mul_sum(torch.ones(3), np.ones(3))


def test_two_devices_raise_value_error():
    torch = pytest.importorskip("torch")
    on_cpu, on_meta = torch.ones(3, 2), torch.ones(3, 2, device="meta")
    with pytest.raises(ValueError, match="two devices: cpu and meta"):
        xbackend.mul_sum(on_cpu, on_meta)
    with pytest.raises(ValueError, match="never moved between devices"):
        xbackend.get_adapter("torch-einsum").mul_sum(on_meta, on_meta)


def test_errors_are_raised_before_work():
    torch = pytest.importorskip("torch")
    adapter = xbackend.get_adapter("torch-eager")
    calls = []
    adapter_cls = type(adapter)
    original = adapter_cls._compute
    adapter_cls._compute = lambda self, a, b, plan: calls.append(plan)  # type: ignore[method-assign]
    try:
        with pytest.raises(ValueError):
            adapter.mul_sum(torch.ones(3, 2), torch.ones(4, 2))
        with pytest.raises(TypeError):
            adapter.mul_sum(torch.ones(3, 2), torch.ones(3, 2, dtype=torch.int32))
    finally:
        adapter_cls._compute = original
    assert calls == []


# -- laziness and 64-bit refusal, in fresh interpreters ----------------------
def run_python(code, **env):
    import os

    environment = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"} | env
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=environment
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_xbackend_imports_no_framework():
    out = run_python(
        """
        import sys, numpy as np, xbackend
        frameworks = ("torch", "jax", "cupy", "dask", "distributed", "array_api_compat", "array_api_strict")
        print(sorted(m for m in frameworks if m in sys.modules))
        xbackend.mul_sum(np.ones((3, 2)) * 2, np.ones((3, 2)))
        print(sorted(m for m in frameworks if m in sys.modules))
        xbackend.get_adapter("torch-eager")
        print(sorted(m for m in frameworks if m in sys.modules))
        """
    )
    assert out.splitlines() == ["[]", "[]", "['torch']"]


def test_jax_without_x64_refuses_64_bit_dtypes():
    pytest.importorskip("jax")
    out = run_python(
        """
        import numpy as np, xbackend
        ad = xbackend.get_adapter("jax-jit")
        for dtype in ("float64", "int64", "complex128"):
            try:
                ad.asarray(np.ones(3, dtype))
            except xbackend.UnsupportedDtypeError as exc:
                print(type(exc).__mro__[1].__name__, "jax_enable_x64" in str(exc))
        """
    )
    assert out.splitlines() == ["TypeError True"] * 3


def test_torch_einsum_on_cuda_refuses_integers():
    # Made directly: the check needs no GPU, only the adapter's declared dtypes.
    pytest.importorskip("torch")
    from xbackend.backends.torch import TorchEinsum

    on_cuda, on_cpu = TorchEinsum("cuda"), TorchEinsum("cpu")
    assert {"int8", "int16", "int32", "int64", "uint8"} <= on_cuda.unsupported_dtypes()
    assert not on_cpu.unsupported_dtypes()
    assert "bmm, which has no integer kernel on CUDA; use torch-eager" in on_cuda.unsupported_dtype_reason("int32")


MANY_ROWS = 2**24 + 2**22  # past float32's 2**24: a single running sum stops growing


@functools.cache
def _many_rows_of_small_integers() -> tuple[np.ndarray, np.ndarray]:
    """MANY_ROWS x 4 float32 of 1s and 2s (read-only, made once: 3 s) and the exact column products, columns 0:2
    against 2:4."""
    rows = np.random.default_rng(11).integers(1, 3, (MANY_ROWS, 4), dtype=np.int8).astype(np.float32)
    rows.flags.writeable = False
    return rows, rows[:, :2].astype(np.float64).T @ rows[:, 2:].astype(np.float64)


@pytest.mark.parametrize(
    ("name", "device"),
    adapter_params(
        [
            (name, device)
            for name, device in ON_CPU
            if STRATEGIES[name].selectable and device not in STRATEGIES[name].serial_sum_devices
        ]
    ),
)
def test_what_mul_sum_may_choose_keeps_partial_sums_in_every_layout(name, device):
    # Inputs the *-numba kernels do not read directly (a column broadcast against rows,
    # a slice of columns) fell back to one np.einsum per thread: one float32 running sum per
    # output, 2.6% off at 2**25 rows of small integers. Partial sums keep these exact.
    adapter = xbackend.get_adapter(name, device)
    rows, exact = _many_rows_of_small_integers()
    x = adapter.asarray(rows)
    for label, got, want in [
        ("columns 0:2 against 2:4", adapter.mul_sum(x[:, :2], x[:, 2:]), np.diag(exact)),
        ("column 0 broadcast against 2:4", adapter.mul_sum(x[:, :1], x[:, 2:]), exact[0]),
    ]:
        relative = np.max(np.abs(adapter.to_numpy(got) - want) / want)
        assert relative < 1e-5, (label, adapter.to_numpy(got), want)
