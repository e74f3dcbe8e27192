"""A user's mistake on the command line: one line on stderr, exit 2, before anything is measured; work is never lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xbackend import compare, measure, report
from xbackend.cli import main

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--quick", "--adapters", "numpy,numpy-auto", "--shapes", "3x4,5x6"]


# Each test gets a private per-machine cache (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("own_cache")


@pytest.fixture
def no_measuring(monkeypatch):
    """Fails the test if a grid starts: every refusal must come before any measurement."""

    def refuse(*args, **kwargs):
        raise AssertionError("measured before refusing")

    monkeypatch.setattr(compare, "measure_grid", refuse)


def run(argv, capsys):
    """Exit status and stderr of ``xbackend argv`` in this process."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, capsys.readouterr().err


def assert_usage_error(code, err, command, *needles):
    assert code == 2, err
    assert err.startswith(f"xbackend {command}: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def report_with_cells(cells):
    return {"schema": "xbackend.compare/1", "cells": cells}


def good_cell(**changes):
    cell = {
        "adapter": "numpy",
        "device": "cpu",
        "dtype": "float32",
        "shape": [3, 4],
        "status": "ok",
        "error_ratio": 0.1,
        "median_s": 1e-6,
    }
    return cell | changes


BAD_SELECT_SOURCES = {
    "not JSON": ("{not json", "not JSON"),
    "an empty list": ("[]", "not an xbackend compare report"),
    "wrong schema": (json.dumps({"schema": "xbackend.selection/1"}), "not an xbackend compare report"),
    "cells not a list": (json.dumps(report_with_cells(5)), "'cells' is not a list"),
    "a cell not an object": (json.dumps(report_with_cells([5])), "'cells' is not a list"),
    "bad dtype": (json.dumps(report_with_cells([good_cell(dtype="nosuch")])), "'nosuch'"),
    "string shape": (json.dumps(report_with_cells([good_cell(shape="3x4")])), "shape '3x4'"),
    "string median": (json.dumps(report_with_cells([good_cell(median_s="fast")])), "median_s 'fast'"),
}


@pytest.mark.parametrize("case", BAD_SELECT_SOURCES)
def test_select_refuses_a_bad_source_in_one_line(tmp_path, capsys, case):
    text, needle = BAD_SELECT_SOURCES[case]
    source = tmp_path / "in.json"
    source.write_text(text)
    out = tmp_path / "table.json"
    code, err = run(["select", "--from", str(source), "--out", str(out)], capsys)
    assert_usage_error(code, err, "select", needle)
    assert str(source) in err and not out.exists()


def test_select_refuses_an_unreadable_source_and_an_unwritable_out(tmp_path, capsys):
    code, err = run(["select", "--from", str(tmp_path / "missing.json")], capsys)
    assert_usage_error(code, err, "select", "missing.json", "No such file")
    source = tmp_path / "ok.json"
    source.write_text(json.dumps(report_with_cells([good_cell()])))
    code, err = run(["select", "--from", str(source), "--out", "/proc/nope/x.json"], capsys)
    assert_usage_error(code, err, "select", "/proc/nope", "does not exist")
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, err = run(["select", "--from", str(source), "--out", str(blocker / "x.json")], capsys)
    assert_usage_error(code, err, "select", "is not a folder")
    code, err = run(["select", "--from", str(source), "--out", str(tmp_path / "t.json")], capsys)
    assert code == 0 and json.loads((tmp_path / "t.json").read_text())["entries"][0]["strategy"] == "numpy"


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--threads", "-1"], ["--threads", "'-1'", f"from 1 to {os.cpu_count()}"]),
        (["--threads", "0"], ["--threads"]),
        (["--threads", str((os.cpu_count() or 1) + 1)], ["--threads"]),
        (["--threads", "two"], ["--threads", "'two'"]),
        (["--shapes", "10000000000x10000000000"], ["10000000000x10000000000", "GiB", "limit", "available"]),
        (["--shapes", "0x4"], ["empty axis"]),
        (["--shapes", "3x-4"], ["empty axis"]),
        (["--shapes", "threexfour"], ["unknown shape"]),
        (["--dtypes", "nosuch"], ["'nosuch'"]),
        (["--dtypes", "bool"], ["'bool'"]),
        (["--adapters", "nosuch"], ["unknown adapter 'nosuch'"]),
        (["--devices", "tpu"], ["unknown device(s) tpu"]),
        (["--json", "/nonexistent/dir/x.json"], ["/nonexistent/dir does not exist"]),
        (["--plot", "/proc/nope/x.png"], ["/proc/nope does not exist"]),
        (["--json", "/"], ["is a folder"]),
    ],
)
def test_compare_refuses_bad_options_before_measuring(capsys, no_measuring, argv, needles):
    code, err = run(["compare", "--quick", "--adapters", "numpy", "--shapes", "3x4", *argv], capsys)
    assert_usage_error(code, err, "compare", *needles)


def test_compare_refuses_a_dtype_no_selected_adapter_computes(capsys, no_measuring):
    code, err = run(["compare", "--adapters", "torch-compile", "--dtypes", "complex64", "--shapes", "3x4"], capsys)
    assert_usage_error(code, err, "compare", "no selected adapter computes complex64", "torch-eager")


def test_tune_refuses_an_unusable_cache_folder_before_measuring(tmp_path, monkeypatch, capsys, no_measuring):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    code, err = run(["tune", "--libraries", "numpy", "--shapes", "3x4", "--quick"], capsys)
    assert_usage_error(code, err, "tune", "cannot create the folder")
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/xbackend-cache")
    code, err = run(["tune", "--libraries", "numpy", "--shapes", "3x4", "--quick"], capsys)
    assert_usage_error(code, err, "tune", "/proc/xbackend-cache")
    code, err = run(["tune", "--libraries", "nosuch"], capsys)
    assert_usage_error(code, err, "tune", "unknown library nosuch")
    code, err = run(["tune", "--threads", "-3"], capsys)
    assert_usage_error(code, err, "tune", "--threads")


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["compare", "--quick", "--adapters", ""], ["--adapters ''", "names no adapter"]),
        (["compare", "--quick", "--adapters", "numpy", "--devices", " "], ["--devices ' '", "names no device"]),
        (["compare", "--quick", "--adapters", "numpy", "--shapes", ""], ["--shapes ''", "names no shape"]),
        (["tune", "--quick", "--libraries", ""], ["--libraries ''", "names no library"]),
        (["tune", "--quick", "--libraries", "numpy", "--shapes", ","], ["--shapes ','", "names no shape"]),
        (["check", "--adapters", ","], ["--adapters ','", "names no adapter"]),
    ],
)
def test_a_list_option_given_blank_is_refused_not_read_as_all(capsys, monkeypatch, no_measuring, argv, needles):
    # Read as the default, a blank --libraries "$UNSET" tuned every library (2 minutes, found by the CLI fuzz).
    from xbackend.testing import sweep

    monkeypatch.setattr(sweep, "sweep_pairs", lambda *a, **k: pytest.fail("swept before refusing"))
    code, err = run(argv, capsys)
    assert_usage_error(code, err, argv[0], *needles)


def test_check_refuses_bool_before_the_sweep(capsys, monkeypatch):
    from xbackend.testing import sweep

    monkeypatch.setattr(sweep, "sweep_pairs", lambda *a, **k: pytest.fail("swept before refusing"))
    code, err = run(["check", "--adapters", "numpy", "--dtypes", "float32,bool"], capsys)
    assert_usage_error(code, err, "check", "'bool'", "integer dtype")
    code, err = run(["check", "--adapters", "numpy", "--dtypes", "int8"], capsys)
    assert_usage_error(code, err, "check", "the sweep covers")


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--library", "numpy", "--shape", "square,column"], ["one shape", "square, column"]),
        (["--library", "numpy", "--device", "cuda", "--shape", "square"], ["numpy has no device 'cuda'", "cpu"]),
        (["--library", "torch", "--device", "nosuch", "--shape", "square"], ["no device 'nosuch'", "cpu, cuda"]),
        (["--library", "numpy", "--shape", "square", "--dtype", "bool"], ["'bool'"]),
        (["--library", "cupy", "--device", "cuda", "--shape", "square"], ["cannot run on cuda here"]),
        (["--library", "nosuch", "--shape", "square"], ["invalid choice: 'nosuch'"]),
        # --trial allocates the inputs: a shape that cannot fit in memory is refused, not a MemoryError traceback
        (["--library", "numpy", "--shape", "100000000x100000", "--trial"], ["100000000x100000", "GiB", "smaller"]),
        (["--library", "numpy", "--shape", "nosuch", "--trial"], ["unknown shape 'nosuch'"]),
        (["--library", "numpy", "--shape", "", "--trial"], ["--shape '' names no shape"]),
    ],
)
def test_explain_refuses_what_cannot_run(capsys, argv, needles):
    pytest.importorskip("torch")
    from xbackend.registry import STRATEGIES

    if "cupy" in argv and STRATEGIES["cupy"].unavailable_reason("cuda") is None:
        pytest.skip("CuPy runs here")
    code, err = run(["explain", *argv], capsys)
    assert_usage_error(code, err, "explain", *needles)


def test_explain_jax_float64_without_x64_names_the_switch():
    pytest.importorskip("jax")
    env = os.environ | {"JAX_ENABLE_X64": "0", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "xbackend", "explain", "--library", "jax", "--dtype", "float64", "--shape", "square"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert_usage_error(done.returncode, done.stderr, "explain", "JAX_ENABLE_X64=1")
    assert done.stdout == ""


def test_a_usage_error_in_a_real_process_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "xbackend", "compare", "--threads", "-1", "--json", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert_usage_error(done.returncode, done.stderr, "compare", "--threads")
    assert list(tmp_path.iterdir()) == []


def test_an_internal_error_keeps_its_traceback(monkeypatch):
    monkeypatch.setattr(compare, "run_compare", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["compare", *QUICK])


# -- work is kept -----------------------------------------------------------------
def interrupt_after(monkeypatch, cells):
    """Ctrl-C as the grid starts its cell number ``cells`` (0-based)."""
    real, calls = measure.SharedInputs.measure, []

    def measure_or_interrupt(self, *args, **kwargs):
        if len(calls) == cells:
            raise KeyboardInterrupt
        calls.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(measure.SharedInputs, "measure", measure_or_interrupt)


def test_ctrl_c_keeps_the_cells_measured_so_far(tmp_path, monkeypatch, capsys):
    interrupt_after(monkeypatch, 3)
    target = tmp_path / "x.json"
    code, err = run(["compare", *QUICK, "--json", str(target)], capsys)
    partial = tmp_path / "x.partial.json"
    assert code == 130 and str(partial) in err and "interrupted" in err
    assert not target.exists()
    document = json.loads(partial.read_text())
    assert document["partial"] is True and document["schema"] == "xbackend.compare/1"
    cells = [(c["adapter"], c["shape"]) for c in document["cells"]]
    assert cells == [("numpy", [3, 4]), ("numpy-auto", [3, 4]), ("numpy", [5, 6])]
    assert all(c["status"] == "ok" and c["median_s"] > 0 for c in document["cells"])
    assert report.read_report(partial)["cells"]  # a compare report like any other
    # Tables made from it say it is partial; those of a whole run do not.
    assert report.PARTIAL_NOTE in report.render_markdown_tables(document, "fractions")
    assert report.PARTIAL_NOTE in report.format_table(document)
    assert report.PARTIAL_NOTE not in report.render_markdown_tables({**document, "partial": False}, "fractions")
    for view in report.MARKDOWN_VIEWS:  # stopped before its first cell: every view says so, and nothing else
        empty = report.render_markdown_tables({**document, "cells": []}, view)
        assert empty.endswith("\n\nNo cell was measured.\n") and report.PARTIAL_NOTE in empty, view


def test_a_failing_final_write_keeps_the_whole_report(tmp_path, monkeypatch, capsys):
    target = tmp_path / "x.json"
    real = report.write_json_atomic

    def fail_on_target(path, document):
        if Path(path) == target:
            raise OSError(28, "No space left on device")
        real(path, document)

    monkeypatch.setattr(report, "write_json_atomic", fail_on_target)
    code, err = run(["compare", *QUICK, "--json", str(target)], capsys)
    partial = tmp_path / "x.partial.json"
    assert code == 1 and "No space left on device" in err and str(partial) in err and "Traceback" not in err
    document = json.loads(partial.read_text())
    assert document["partial"] is False and len(document["cells"]) == 4


def test_tune_keeps_its_compare_report_when_interrupted_or_the_table_cannot_be_written(tmp_path, monkeypatch, capsys):
    target = tmp_path / "table.json"
    argv = ["tune", "--libraries", "numpy,torch", "--shapes", "3x4", "--quick", "--out", str(target)]
    from xbackend import selection

    def full_disk(table, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(compare, "write_table", full_disk)
    code, err = run(argv, capsys)
    partial = tmp_path / "table.partial.json"
    assert code == 1 and str(partial) in err and "no table written" in err
    assert json.loads(partial.read_text())["cells"] and not target.exists()
    partial.unlink()
    monkeypatch.setattr(compare, "write_table", selection.write_table)
    interrupt_after(monkeypatch, 1)
    code, err = run(argv, capsys)
    assert code == 130 and str(partial) in err and not target.exists()
    document = json.loads(partial.read_text())
    assert document["partial"] is True and len(document["cells"]) == 1
