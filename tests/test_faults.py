"""The suite fails on deliberately wrong adapters (see ``planted_faults.py``).

First the sweep of ``xbackend check`` on each planted adapter, then the
project's own property suite (tests/test_correctness.py) run by pytest against
each planted adapter through the plugin: the expected tests must fail, and only
those.
"""

import re
import shutil
from pathlib import Path

import pytest
from planted_faults import AccumulatesInInputDtype, ConjugatesFirstInput, DropsLastRow

import xbackend
from xbackend.testing.sweep import sweep

TESTS = Path(__file__).parent
ALL = {"float16", "bfloat16", "float32", "float64", "complex64", "complex128", "int32", "int64"}

# planted adapter -> the dtypes whose results it gets wrong
EXPECTED_FAILURES = {
    DropsLastRow: ALL,
    AccumulatesInInputDtype: {"float16", "bfloat16"},
    ConjugatesFirstInput: {"complex64", "complex128"},
}


@pytest.mark.parametrize("planted", EXPECTED_FAILURES, ids=lambda cls: cls.name)
def test_sweep_fails_exactly_where_the_adapter_is_wrong(planted):
    rows = sweep(planted("cpu"), sorted(ALL))
    failed = {row.dtype for row in rows if not row.passed}
    assert failed == EXPECTED_FAILURES[planted]
    assert all(row.skipped is None for row in rows)


CONFTEST = f"""
import os, sys
os.environ.setdefault("JAX_ENABLE_X64", "1")
sys.path.insert(0, {str(TESTS)!r})
import planted_faults
planted_faults.register()
"""


@pytest.mark.parametrize("planted", EXPECTED_FAILURES, ids=lambda cls: cls.name)
def test_property_suite_fails_on_planted_adapter(pytester, planted):
    pytester.makeconftest(CONFTEST)
    shutil.copy(TESTS / "test_correctness.py", pytester.path)
    result = pytester.runpytest_subprocess(
        "test_correctness.py",
        f"--xbackend={planted.name}",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rf",
        "-k",
        "matches_oracle or sweep_passes",
    )
    pattern = r"FAILED test_correctness\.py::(\w+)\[(?:(\w+)-)?" + re.escape(planted.name) + r"@cpu\]"
    failed = {(test, dtype or "") for test, dtype in re.findall(pattern, result.stdout.str())}
    expected_oracle = {("test_mul_sum_matches_oracle", dtype) for dtype in EXPECTED_FAILURES[planted]}
    assert {f for f in failed if f[0] == "test_mul_sum_matches_oracle"} == expected_oracle, result.stdout.str()
    assert ("test_sweep_passes", "") in failed
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_check_command_exits_1_on_a_planted_fault(capsys):
    from xbackend.cli import main

    with xbackend.registered(ConjugatesFirstInput):
        exit_code = main(["check", "--adapters", ConjugatesFirstInput.name, "--dtypes", "float32,complex64"])
    assert exit_code == 1
    out = capsys.readouterr().out
    assert re.search(r"^planted-conjugate +cpu +float32 .* pass$", out, re.M)
    assert re.search(r"^planted-conjugate +cpu +complex64 .* FAIL \(\d+\)$", out, re.M)
    assert "FAIL planted-conjugate@cpu complex64: " in out
