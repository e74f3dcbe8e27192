"""Seeded inputs with their exact reference, made once for the consecutive tests that share them.

The exact reference (``xbackend.testing.reference``) of a few million products
takes 0.1-1 s, more than the sums under test. Tests parametrized over threads,
chunks or strategies on the same inputs (pytest runs those cases one after
another) check each result against one reference.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from xbackend.measure import host_inputs
from xbackend.testing import Reference, check_against, reference


@functools.lru_cache(maxsize=2)
def exact_case(
    shape: tuple[int, ...], dtype: str, seed: int, offset: complex = 0
) -> tuple[np.ndarray, np.ndarray, Reference]:
    """``host_inputs(shape, dtype, seed)``, each plus ``offset``, and their exact reference."""
    a, b = (x + np.asarray(offset, x.dtype) if offset else x for x in host_inputs(shape, dtype, seed=seed))
    for x in (a, b):
        x.flags.writeable = False  # shared by several tests: none may change them
    return a, b, reference(a, b)


def assert_close_to(out: Any, exact: Reference, bound: str = "rigorous") -> None:
    """``assert_mul_sum_close`` against a reference made once."""
    verdict = check_against(out, exact, bound)
    if verdict.failure is not None:
        raise AssertionError(verdict.failure)
