"""xbackend's pytest plugin, run on a user's own test file in a scratch directory."""

import pytest

import xbackend

PAIRS = [(info.name, info.device, info) for info in xbackend.adapters()]
ALL_IDS = {f"{name}@{device}" for name, device, _ in PAIRS}

USER_TESTS = """
import numpy as np
from xbackend.testing import assert_mul_sum_close

def test_user(xbackend_adapter):
    a = np.arange(12.0).reshape(4, 3) - 5
    x = xbackend_adapter.asarray(a)
    assert_mul_sum_close(xbackend_adapter.mul_sum(x, x), a, a)

def test_without_the_fixture():
    pass
"""


@pytest.fixture(autouse=True)
def no_outer_selection(monkeypatch):
    """The outer run's own XBACKEND_ADAPTERS must not leak into the runs under test."""
    monkeypatch.delenv("XBACKEND_ADAPTERS", raising=False)


def run(pytester, *args, subprocess=False):
    pytester.makepyfile(test_user=USER_TESTS)
    runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    return runner("-p", "no:cacheprovider", *args)


def collected_ids(result):
    return {
        line.split("[", 1)[1].rstrip("]") for line in result.outlines if line.startswith("test_user.py::test_user[")
    }


def test_one_parametrization_per_registered_adapter(pytester):
    result = run(pytester, "--collect-only", "-q")
    assert collected_ids(result) == ALL_IDS
    assert "test_user.py::test_without_the_fixture" in result.outlines


def test_option_selects_adapters_and_devices(pytester):
    result = run(pytester, "--collect-only", "-q", "--xbackend=numpy, torch-eager@cpu")
    assert collected_ids(result) == {"numpy@cpu", "torch-eager@cpu"}


def test_environment_variable_selects_adapters(pytester, monkeypatch):
    monkeypatch.setenv("XBACKEND_ADAPTERS", "jax-jit")
    result = run(pytester, "--collect-only", "-q")
    assert collected_ids(result) == {"jax-jit@cpu", "jax-jit@gpu"}


def test_option_overrides_environment_variable(pytester, monkeypatch):
    monkeypatch.setenv("XBACKEND_ADAPTERS", "jax-jit")
    result = run(pytester, "--collect-only", "-q", "--xbackend=numpy")
    assert collected_ids(result) == {"numpy@cpu"}


def test_unknown_adapter_is_a_usage_error_listing_the_known_ones(pytester):
    result = run(pytester, "--xbackend=numpy,tensorflow", subprocess=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown adapter 'tensorflow'; known: numpy@cpu, *"])


def test_unavailable_adapters_skip_with_their_reason_and_available_ones_run(pytester):
    result = run(pytester, "-rs")
    available = [info for _, _, info in PAIRS if info.available]
    unavailable = [info for _, _, info in PAIRS if not info.available]
    result.assert_outcomes(passed=len(available) + 1, skipped=len(unavailable))
    output = result.stdout.str()
    for info in unavailable:
        assert f"{info.name} on {info.device} is unavailable: {info.reason}" in output


def test_gpu_pairs_carry_the_gpu_marker(pytester):
    result = run(pytester, "--collect-only", "-q", "-m", "not gpu")
    assert collected_ids(result) == {f"{name}@{device}" for name, device, _ in PAIRS if device == "cpu"}
    result = run(pytester, "--collect-only", "-q", "-m", "gpu")
    assert collected_ids(result) == {f"{name}@{device}" for name, device, _ in PAIRS if device != "cpu"}
    assert any(line.startswith("@pytest.mark.gpu:") for line in run(pytester, "--markers").outlines)


def test_pytest_startup_imports_no_framework(pytester):
    pytester.makepyfile(
        test_imports="""
        import sys

        def test_no_framework_loaded():
            assert not {"torch", "jax", "cupy"} & set(sys.modules)
    """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_imports.py", "--xbackend=numpy")
    result.assert_outcomes(passed=1)
