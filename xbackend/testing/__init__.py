"""Testing helpers for any project that computes ``sum(a * b, axis=0)``: an exact oracle and N-aware bounds.

    from xbackend.testing import assert_mul_sum_close

``oracle`` holds the exact reference and the two bounds (rigorous, and the
tighter probabilistic one); ``sweep`` runs the correctness sweep of
``xbackend check``; ``pytest_plugin`` parametrizes a test over every
registered adapter (the ``xbackend_adapter`` fixture).
"""

from .oracle import (
    BOUND_CONSTANT,
    BOUNDS,
    FAILURE_PROBABILITY,
    Component,
    Reference,
    Verdict,
    assert_mul_sum_close,
    check_against,
    check_mul_sum,
    error_bound,
    gamma,
    gamma_probabilistic,
    probabilistic_lambda,
    reference,
    to_host,
)

__all__ = [
    "BOUNDS",
    "BOUND_CONSTANT",
    "FAILURE_PROBABILITY",
    "Component",
    "Reference",
    "Verdict",
    "assert_mul_sum_close",
    "check_against",
    "check_mul_sum",
    "error_bound",
    "gamma",
    "gamma_probabilistic",
    "probabilistic_lambda",
    "reference",
    "to_host",
]
