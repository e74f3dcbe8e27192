"""pytest plugin: run your own cross-framework tests once per xbackend adapter.

Installed with xbackend (entry point ``pytest11``). A test that asks for the
``xbackend_adapter`` fixture is parametrized over every registered
(adapter, device) pair::

    def test_mine(xbackend_adapter):
        a = xbackend_adapter.asarray(np.arange(6.0).reshape(3, 2))
        out = xbackend_adapter.mul_sum(a, a)
        assert_mul_sum_close(out, a, a)

Pairs that cannot run here are skipped with the reason; GPU pairs carry the
``gpu`` marker (select or deselect them with ``-m gpu`` / ``-m "not gpu"``).
Choose adapters with ``--xbackend=numpy,torch-eager`` or the environment
variable ``XBACKEND_ADAPTERS`` (names, or ``name@device`` for one device).

Frameworks are imported only to check availability, and only while collecting
a test that uses the fixture: pytest's startup never imports torch, JAX or CuPy.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import pytest

from ..backends.base import Adapter
from ..registry import STRATEGIES, get_adapter
from .sweep import select_pairs

ENV_VARIABLE = "XBACKEND_ADAPTERS"
GPU_MARKER = "gpu"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xbackend")
    group.addoption(
        "--xbackend",
        metavar="NAME[@DEVICE],...",
        default=None,
        help=(
            "adapters the xbackend_adapter fixture runs over, e.g. numpy,torch-eager@cpu "
            f"(default: ${ENV_VARIABLE}, else all of: {', '.join(STRATEGIES)})"
        ),
    )


_PAIRS = pytest.StashKey[list[tuple[str, str]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{GPU_MARKER}: needs an NVIDIA GPU (cuda / gpu adapter); skipped with the reason elsewhere",
    )
    # A misspelt name is a usage error at startup, not a collection error per test file.
    selection = config.getoption("xbackend") or os.environ.get(ENV_VARIABLE)
    try:
        config.stash[_PAIRS] = select_pairs(selection)
    except ValueError as exc:
        raise pytest.UsageError(f"--xbackend / ${ENV_VARIABLE}: {exc}") from None


@functools.cache
def _unavailable_reason(name: str, device: str) -> str | None:
    return STRATEGIES[name].unavailable_reason(device)


def _param(name: str, device: str) -> Any:
    marks = [pytest.mark.gpu] if device != "cpu" else []
    reason = _unavailable_reason(name, device)
    if reason is not None:
        marks.append(pytest.mark.skip(reason=f"{name} on {device} is unavailable: {reason}"))
    return pytest.param((name, device), id=f"{name}@{device}", marks=marks)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "xbackend_adapter" not in metafunc.fixturenames:
        return
    params = [_param(name, device) for name, device in metafunc.config.stash[_PAIRS]]
    metafunc.parametrize("xbackend_adapter", params, indirect=True)


@pytest.fixture
def xbackend_adapter(request: pytest.FixtureRequest) -> Adapter:
    """One available xbackend adapter (a parametrization per selected (adapter, device) pair)."""
    name, device = request.param
    return get_adapter(name, device)
