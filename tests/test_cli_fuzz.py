"""The CLI under random argument lists: exit 0, 1 or 2; a user's mistake (2) is one line, no traceback; nothing half-written.

Hypothesis draws argument lists for every subcommand from pools of good and bad
values. Measuring runs are kept tiny (numpy only, 3 x 4 or 64 x 8 shapes) so
that an accepted argument list finishes in about a second.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xbackend.cli import main

NUMBERS = st.sampled_from(["-1", "0", "1", "2", "abc", "1e9", "", "99999999999"])
SHAPES = st.sampled_from(["3x4", "64x8", "0x5", "abc", "3x4,64x8", "99999999999x99999999", "latency", "x"])
DTYPES = st.sampled_from(["float32", "float64", "bool", "nosuch", "float32,int32", "", "uint16"])
ADAPTERS = st.sampled_from(["numpy", "numpy@cpu", "numpy@cuda", "nosuch", "numpy,", "numpy-auto"])
PATHS = st.sampled_from(["out.json", "missing/dir/out.json", "/proc/nope/out.json", ".", "out.png"])

OPTIONS = {
    "check": {"--adapters": ADAPTERS, "--dtypes": DTYPES, "--seed": NUMBERS},
    "compare": {
        "--adapters": ADAPTERS,
        "--shapes": SHAPES,
        "--dtypes": DTYPES,
        "--threads": NUMBERS,
        "--seed": NUMBERS,
        "--json": PATHS,
        "--devices": st.sampled_from(["cpu", "cuda", "nosuch", ""]),
        "--load": NUMBERS,
    },
    "select": {"--from": PATHS, "--out": PATHS, "--load": NUMBERS},
    "tune": {"--libraries": st.sampled_from(["numpy", "nosuch", ""]), "--shapes": SHAPES, "--threads": NUMBERS},
    "explain": {
        "--library": st.sampled_from(["numpy", "torch", "jax", "nosuch"]),
        "--device": st.sampled_from(["cpu", "cuda", "gpu", "nosuch"]),
        "--shape": SHAPES,
        "--dtype": DTYPES,
    },
    "docs": {"--root": st.sampled_from([".", "/nonexistent", "/tmp"]), "--check": st.just(None)},
}
# Always added to measuring commands, so that no accepted list runs a large grid.
TINY = {
    "check": ["--adapters", "numpy", "--dtypes", "float32"],
    "compare": ["--quick", "--adapters", "numpy", "--shapes", "3x4"],
    "tune": ["--quick", "--libraries", "numpy", "--shapes", "3x4"],
}


@st.composite
def argument_lists(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(sorted(OPTIONS)))
    argv = [command, *TINY.get(command, [])]
    for flag, values in OPTIONS[command].items():
        if draw(st.booleans()):
            value = draw(values)
            argv += [flag] if value is None else [flag, value]
    return argv


def run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, err.getvalue()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=argument_lists())
def test_random_argument_lists(argv, tmp_path_factory, monkeypatch):
    folder: Path = tmp_path_factory.mktemp("cli")
    monkeypatch.chdir(folder)
    code, err = run(argv)
    assert code in (0, 1, 2), (argv, code, err)
    if code == 2:
        assert "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, (argv, err)
        assert err.startswith("xbackend"), (argv, err)
        written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        assert all(name.endswith(".partial.json") for name in written), (argv, written)


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--dtypes", "nosuch", "--adapters", "numpy"],
        ["check", "--seed", "-1", "--adapters", "numpy"],
        ["compare", "--seed", "-5", *TINY["compare"]],
        ["compare", "--threads", "-1", *TINY["compare"]],
        ["compare", "--json", "missing/dir/x.json", *TINY["compare"]],
        ["check", "--dtypes", "bool", "--adapters", "numpy"],
    ],
    ids=lambda argv: " ".join(argv[:3]),
)
def test_mistakes_found_by_a_bad_input_pass_exit_2_in_one_line(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run(argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (code, err)
