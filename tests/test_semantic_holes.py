"""The semantic holes of issue 11, closed on every adapter (``xbackend_adapter``: GPU pairs carry ``gpu``).

- W3: float16 / bfloat16 products are formed in float32 (exact there), so
  ``300*300 - 300*300`` is 0 on every adapter and through ``mul_sum`` in every
  shape class, not NaN or inf.
- W4: masked arrays (NumPy, dask, torch ``MaskedTensor``) raise ``TypeError`` naming ``.filled(0)``;
  sparse arrays (torch, scipy.sparse, jax BCOO) ``TypeError`` naming the
  densifying call.
- Dtypes outside the table (unsigned 16/32/64, float128, complex256, float8,
  quantized, complex32, bool) raise ``UnsupportedDtypeError``; NumPy scalars
  ``ValueError`` like 0-d arrays; dask arrays of unknown chunk sizes
  ``ValueError`` naming ``compute_chunk_sizes()``.
- Overflow of the accumulation dtype and signed zeros, as the oracle defines them.
"""

import importlib.util
import warnings

import ml_dtypes
import numpy as np
import pytest

import xbackend
from xbackend.testing import assert_mul_sum_close, check_mul_sum, reference

HALF = ["float16", "bfloat16"]
# Dtype names a NumPy array can carry that xbackend refuses.
REFUSED_HOST = {
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "float128": np.longdouble,
    "complex256": np.clongdouble,
    "float8_e4m3fn": ml_dtypes.float8_e4m3fn,
    "float8_e5m2": ml_dtypes.float8_e5m2,
    "bool": np.bool_,
}
REFUSED_TORCH = ["uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2", "complex32", "bool"]


def host_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def skip_unsupported(ad, dtype):
    if dtype in ad.unsupported_dtypes():
        pytest.skip(ad.unsupported_dtype_reason(dtype))


# -- W3: half-precision products in float32 ---------------------------------------


@pytest.mark.parametrize("dtype", HALF)
def test_half_products_that_overflow_half_cancel_exactly(xbackend_adapter, dtype):
    ad = xbackend_adapter
    skip_unsupported(ad, dtype)
    a = np.array([[300, 1.5], [300, 2]], host_dtype(dtype))
    b = np.array([[300, 1], [-300, 3]], host_dtype(dtype))
    out = ad.to_numpy(ad.mul_sum(ad.asarray(a), ad.asarray(b)))
    assert out.dtype == host_dtype(dtype)
    assert out.astype(np.float64).tolist() == [0.0, 7.5]


@pytest.mark.parametrize("dtype", HALF)
def test_half_products_in_float32_at_compiled_sizes(xbackend_adapter, dtype):
    """1 MiB of inputs: torch-compile compiles, the jax kernels and torch-blocked take their block paths."""
    ad = xbackend_adapter
    skip_unsupported(ad, dtype)
    rng = np.random.default_rng(11)
    a = rng.uniform(-300, 300, (1024, 256)).astype(host_dtype(dtype))
    a[1::2, 0] = a[0::2, 0]  # column 0: pairs of equal products of opposite sign, each beyond float16
    b = rng.uniform(-0.05, 0.05, (1024, 256)).astype(host_dtype(dtype))  # the sums fit float16
    b[0::2, 0], b[1::2, 0] = 300, -300
    out = ad.to_numpy(ad.mul_sum(ad.asarray(a), ad.asarray(b)))
    assert np.isfinite(out.astype(np.float64)).all()
    assert_mul_sum_close(out, a, b, bound="probabilistic")


def _shape_class_shapes():
    # latency, column, tall-skinny, short-wide, square (xbackend.classify)
    return {
        "latency": (4, 3),
        "column": (40_000, 1),
        "tall-skinny": (40_000, 4),
        "short-wide": (8, 8192),
        "square": (512, 512),
    }


def _libraries():
    libs = ["numpy"] + [name for name in ("torch", "jax") if importlib.util.find_spec(name)]
    return libs


def _to_library(library, host):
    if library == "numpy":
        return host
    adapter = xbackend.get_adapter({"torch": "torch-eager", "jax": "jax-jit"}[library], "cpu")
    return adapter.asarray(host)


@pytest.mark.parametrize("library", _libraries())
@pytest.mark.parametrize("shape_class", list(_shape_class_shapes()))
def test_mul_sum_forms_half_products_in_float32_in_every_shape_class(library, shape_class):
    shape = _shape_class_shapes()[shape_class]
    rng = np.random.default_rng(12)
    a = rng.uniform(-300, 300, shape).astype(np.float16)
    b = rng.uniform(-300, 300, shape).astype(np.float16)
    a[:2, 0], b[:2, 0] = 300, [300, -300]
    a[2:, 0] = 0  # column 0 is exactly 300*300 - 300*300
    x, y = _to_library(library, a), _to_library(library, b)
    assert xbackend.choose(x, y).shape_class == shape_class
    out = xbackend.mul_sum(x, y)
    host = np.asarray(out if library != "torch" else out.numpy())
    assert host.reshape(-1)[0] == 0
    assert_mul_sum_close(host, a, b, bound="probabilistic")


# -- W4: masked and sparse arrays ---------------------------------------------------

MASKED = np.ma.masked_array(np.arange(1.0, 7.0).reshape(3, 2), mask=[[0, 1], [0, 0], [1, 0]])


def dask_masked():
    da = pytest.importorskip("dask.array")
    data = da.from_array(np.arange(1.0, 7.0).reshape(3, 2), chunks=2)
    return da.ma.masked_array(data, mask=da.from_array(MASKED.mask, chunks=2))


def torch_masked():
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():  # MaskedTensor is a prototype and says so
        warnings.simplefilter("ignore")
        return torch.masked.masked_tensor(torch.from_numpy(MASKED.data), torch.from_numpy(~MASKED.mask))


def test_masked_arrays_are_refused_by_mul_sum_and_the_oracle():
    for x in (MASKED, dask_masked(), torch_masked()):
        with pytest.raises(TypeError, match=r"masked array.*filled\(0\).*np\.ma") as info:
            xbackend.mul_sum(x, x)
        assert not isinstance(info.value, xbackend.UnsupportedDtypeError)
        with pytest.raises(TypeError, match="masked array"):
            reference(x, x)
    with pytest.raises(TypeError, match="masked array"):
        check_mul_sum(np.zeros(2), MASKED, MASKED)


def test_masked_arrays_are_refused_by_every_adapter(xbackend_adapter):
    # torch's MaskedTensor too: torch-eager used to return a masked sum, torch-einsum and
    # torch-numpy failed inside the computation.
    for x in (MASKED, dask_masked(), torch_masked()):
        with pytest.raises(TypeError, match=r"first input.*masked array.*filled\(0\)"):
            xbackend_adapter.mul_sum(x, x)


def sparse_inputs():
    found = []
    if importlib.util.find_spec("scipy"):
        import scipy.sparse

        found.append(scipy.sparse.csr_array(np.eye(3, 2)))
    if importlib.util.find_spec("torch"):
        import torch

        dense = torch.eye(3, 2)
        found += [dense.to_sparse(), dense.to_sparse_csr()]
    if importlib.util.find_spec("jax"):
        from jax.experimental import sparse

        found.append(sparse.BCOO.fromdense(np.eye(3, 2, dtype=np.float32)))
    return found


def test_sparse_arrays_are_refused_by_mul_sum(xbackend_adapter):
    inputs = sparse_inputs()
    assert inputs
    for x in inputs:
        with pytest.raises(TypeError, match=r"sparse array.*densify") as info:
            xbackend.mul_sum(x, x)
        assert not isinstance(info.value, xbackend.UnsupportedDtypeError)
        with pytest.raises(TypeError, match=r"first input.*sparse array.*densify"):
            xbackend_adapter.mul_sum(x, x)


def test_nested_torch_tensors_are_refused_with_a_type_error():
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's "prototype stage" notice
        nested = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])
    with pytest.raises(TypeError, match=r"nested \(ragged\) tensor.*to_padded_tensor"):
        xbackend.mul_sum(nested, nested)
    with pytest.raises(TypeError, match=r"first input.*nested"):
        xbackend.get_adapter("torch-eager", "cpu").mul_sum(nested, nested)


def test_torch_sparse_does_not_reuse_a_dense_kernel():
    torch = pytest.importorskip("torch")
    dense = torch.eye(3, 2)
    xbackend.mul_sum(dense, dense)  # caches a kernel for this shape, dtype and device
    with pytest.raises(TypeError, match="sparse"):
        xbackend.mul_sum(dense.to_sparse(), dense.to_sparse())


# -- dtypes outside the table ---------------------------------------------------------


def refused_natives(ad):
    """(dtype name, native array) for every refused dtype this adapter's library can hold."""
    found = []
    for name, dtype in REFUSED_HOST.items():
        host = np.arange(1, 7).reshape(3, 2).astype(dtype)
        try:
            found.append((name, ad.asarray(host)))
        except Exception:  # noqa: BLE001 - the library cannot hold this dtype: nothing to refuse
            continue
    if ad.framework == "torch":
        torch = ad.torch
        base = torch.arange(1.0, 7.0, device=ad.device).reshape(3, 2)
        found += [
            (name, base.to(getattr(torch, name))) for name in REFUSED_TORCH if ad.device == "cpu" or name != "uint64"
        ]
        if ad.device == "cpu":
            found.append(("qint8", torch.quantize_per_tensor(base, 0.5, 0, torch.qint8)))
    return found


def test_refused_dtypes_raise_unsupported_dtype_error(xbackend_adapter):
    ad = xbackend_adapter
    natives = refused_natives(ad)
    assert natives
    for name, x in natives:
        with pytest.raises(xbackend.UnsupportedDtypeError, match=f"dtype '{name}'"):
            ad.mul_sum(x, x)
        with pytest.raises(xbackend.UnsupportedDtypeError, match=f"dtype '{name}'"):
            xbackend.mul_sum(x, x)


@pytest.mark.parametrize("shape_class", list(_shape_class_shapes()))
@pytest.mark.parametrize("dtype", ["uint16", "uint32", "uint64", "float128", "float8_e4m3fn"])
def test_refusal_does_not_depend_on_the_shape_class(dtype, shape_class):
    x = np.ones(_shape_class_shapes()[shape_class], REFUSED_HOST[dtype])
    with pytest.raises(xbackend.UnsupportedDtypeError, match="cast to"):
        xbackend.mul_sum(x, x)


# -- NumPy scalars and unknown dask chunks ---------------------------------------------


def test_numpy_scalars_are_0d_everywhere(xbackend_adapter):
    for scalar in (np.float32(1.0), np.int64(2)):
        with pytest.raises(ValueError, match="0-d"):
            xbackend.mul_sum(scalar, scalar)
        with pytest.raises(ValueError, match="0-d"):
            xbackend_adapter.mul_sum(scalar, scalar)


def test_dask_arrays_of_unknown_chunk_sizes_name_compute_chunk_sizes(xbackend_adapter):
    da = pytest.importorskip("dask.array")
    x = da.from_array(np.arange(1.0, 9.0).reshape(4, 2), chunks=2)
    unknown = x[x[:, 0] > 2]
    for call in (xbackend.mul_sum, xbackend_adapter.mul_sum):
        with pytest.raises(ValueError, match=r"compute_chunk_sizes\(\)"):
            call(unknown, unknown)
    known = unknown.compute_chunk_sizes()
    assert_mul_sum_close(xbackend.mul_sum(known, known), known.compute(), known.compute())


# -- overflow of the accumulation dtype, signed zeros ------------------------------------


@pytest.mark.parametrize(
    ("case", "dtype"), [("sum", "float32"), ("product", "float32"), ("product", "float64"), ("product", "complex128")]
)
def test_overflow_in_the_accumulation_dtype_is_accepted(xbackend_adapter, case, dtype):
    ad = xbackend_adapter
    skip_unsupported(ad, dtype)
    big = 1e20 if dtype == "float32" else 1e200
    if case == "sum":  # 3e38 + 3e38 overflows a float32 running sum left to right
        a, b = np.array([[3e38, 1], [3e38, 2], [-3e38, 3]], dtype), np.ones((3, 2), dtype)
    else:  # big * big overflows a product: inf - inf, or +-inf where a fused multiply-add keeps one
        a, b = np.array([[big, 1], [big, 2]], dtype), np.array([[big, 1], [-big, 1]], dtype)
    out = ad.to_numpy(ad.mul_sum(ad.asarray(a), ad.asarray(b)))
    assert out[1] == (6 if case == "sum" else 3)
    assert not np.isfinite(out[0]), out
    assert_mul_sum_close(out, a, b, bound="probabilistic")


@pytest.mark.parametrize(
    ("trailing", "order"), [((), "C"), ((1,), "C"), ((1, 1), "C"), ((3,), "F")], ids=["1-D", "Nx1", "Nx1x1", "NxK-F"]
)
@pytest.mark.parametrize("case", ["infinity", "overflow"])
def test_a_repeated_value_is_multiplied_into_every_product(xbackend_adapter, case, trailing, order):
    # A (1, ...) input against (N, ...): every product is formed and rounded, then summed.
    # Where its loop ran along dim 0 (a row of one element; a row against a Fortran-ordered
    # input), np.einsum summed a repeated value as value * sum(other): -inf * (rows of
    # both signs) gave -inf, not NaN, and 1e30 * 1e10 never overflowed.
    ad = xbackend_adapter
    rng = np.random.default_rng(5)
    b = rng.standard_normal((3_000, *trailing)).astype(np.float32) * (1e10 if case == "overflow" else 1)
    b = np.asarray(b, order=order)
    a = np.full((1, *trailing), -np.inf if case == "infinity" else 1e30, np.float32)
    for x, y in ((a, b), (b, a)):
        out = ad.to_numpy(ad.mul_sum(ad.asarray(x), ad.asarray(y)))
        assert out.shape == trailing and np.isnan(out).all(), f"{case}: {out}"


@pytest.mark.parametrize("shape", [(3_000, 1), (3_000, 3)])
def test_a_row_repeated_by_broadcast_to_after_a_cached_call(shape):
    # mul_sum caches one kernel per shape and dtype, whatever the strides: a row that
    # np.broadcast_to repeats, of the shape a plain call cached, must still sum to NaN.
    rng = np.random.default_rng(6)
    b = np.asfortranarray(rng.standard_normal(shape).astype(np.float32))
    xbackend.mul_sum(b, b)
    a = np.broadcast_to(np.full((1, shape[1]), -np.inf, np.float32), shape)
    assert np.isnan(xbackend.mul_sum(a, b)).all()
    assert np.isnan(xbackend.mul_sum(b, a)).all()


def test_oracle_accepts_overflow_only_where_the_accumulation_dtype_can_overflow():
    a, b = np.array([3e38, 3e38, -3e38], np.float32), np.ones(3, np.float32)
    for got, ok in ((np.inf, True), (3e38, True), (-np.inf, False), (np.nan, False)):
        assert (check_mul_sum(np.array(got, np.float32), a, b).failure is None) == ok, got
    a, b = np.array([1e20, 1e20], np.float32), np.array([1e20, -1e20], np.float32)
    for got in (np.inf, -np.inf, np.nan, 0.0):
        assert check_mul_sum(np.array(got, np.float32), a, b).failure is None, got
    a, b = np.array([1e19, 1e19], np.float32), np.array([1e19, -1e19], np.float32)  # 1e38 fits float32
    for got, ok in ((np.inf, False), (np.nan, False), (0.0, True)):
        assert (check_mul_sum(np.array(got, np.float32), a, b).failure is None) == ok, got
    # float16 products are formed in float32: they cannot overflow, so NaN is wrong.
    a, b = np.array([300, 300], np.float16), np.array([300, -300], np.float16)
    assert check_mul_sum(np.array(np.nan, np.float16), a, b).failure is not None
    assert check_mul_sum(np.array(0.0, np.float16), a, b).failure is None


def test_signs_of_zero_are_not_compared_and_the_empty_sum_is_positive_zero(xbackend_adapter):
    ad = xbackend_adapter
    a, b = np.array([[-0.0, 0.0]], np.float32), np.array([[1.0, -1.0]], np.float32)
    out = ad.to_numpy(ad.mul_sum(ad.asarray(a), ad.asarray(b)))
    assert out.tolist() == [0.0, 0.0]  # either sign
    for zero in (0.0, -0.0):
        assert check_mul_sum(np.array([zero, zero], np.float32), a, b).failure is None
    empty = np.zeros((0, 3), np.float32)
    result = ad.to_numpy(ad.mul_sum(ad.asarray(empty), ad.asarray(empty)))
    assert result.tolist() == [0.0] * 3 and not np.signbit(result).any()


@pytest.mark.parametrize("name", ["numpy", "numpy-threads", "array-api"])
def test_ieee_results_and_integer_wraps_stay_silent_under_the_callers_errstate(name):
    # The NumPy-based sums run by sub-blocks of rows and add their sums (core.shapes):
    # a row of -inf against rows of both signs must still be NaN, and int16 sums wrap,
    # without a warning or, under the caller's np.errstate(all="raise"), an error.
    # Found: the products of a repeated row were formed outside the quiet errstate, and
    # array-api added a 1-D input's sums as NumPy scalars, which warn on overflow.
    if name == "array-api":
        pytest.importorskip("array_api_strict")
    adapter = xbackend.get_adapter(name)
    rng = np.random.default_rng(8)
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=(3_000, 4))  # one sub-block
    row = np.full((1, 4), -np.inf, np.float32)
    # 30000 squares of +-1 in the first sub-block (2**18 elements) and 30000 after: the
    # sums of the two fit int16, their sum wraps.
    values = np.zeros(2**18 + 30_000, np.int16)
    for start, stop in [(0, 2**18), (2**18, values.size)]:
        values[rng.choice(np.arange(start, stop), 30_000, replace=False)] = rng.choice(
            np.array([-1, 1], np.int16), 30_000
        )
    wrapped = np.array(60_000).astype(np.int16)
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        if name != "array-api":  # its xp.sum is the namespace's own: NumPy's raises there, as it always did
            assert np.isnan(adapter.to_numpy(adapter.mul_sum(adapter.asarray(row), adapter.asarray(signs)))).all()
        # array-api: in NumPy's own namespace (array-api-strict's sums are 0-d arrays)
        native = adapter.asarray if name != "array-api" else np.asarray
        got = adapter.to_numpy(adapter.mul_sum(native(values), native(values)))
    assert got == wrapped
