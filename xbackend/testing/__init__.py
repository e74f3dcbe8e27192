"""Testing helpers for any project that computes ``sum(a * b, axis=0)``: an exact oracle and N-aware bounds.

    from xbackend.testing import assert_mul_sum_close

``oracle`` holds the exact reference and the bound; ``sweep`` runs the
correctness sweep of ``xbackend check``; ``pytest_plugin`` parametrizes a test
over every registered adapter (the ``xbackend_adapter`` fixture).
"""

from .oracle import (
    BOUND_CONSTANT,
    Reference,
    Verdict,
    assert_mul_sum_close,
    check_against,
    check_mul_sum,
    error_bound,
    gamma,
    reference,
    to_host,
)

__all__ = [
    "BOUND_CONSTANT",
    "Reference",
    "Verdict",
    "assert_mul_sum_close",
    "check_against",
    "check_mul_sum",
    "error_bound",
    "gamma",
    "reference",
    "to_host",
]
