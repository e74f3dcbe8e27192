"""xbackend compare: the report's structure, a failing adapter cell, the atomic JSON write, the CLI."""

from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest

import xbackend
from xbackend import compare, report
from xbackend.backends.numpy import NumpyAdapter
from xbackend.cli import main
from xbackend.measure import Budget, CellResult
from xbackend.registry import STRATEGIES
from xbackend.selection import mark_fastest

TINY = Budget(warmup_s=0.0, measure_s=0.03, min_repeats=3, max_repeats=100)
SHAPES = {"small": (512, 128), "latency": (3, 4)}


class ExplodingAdapter(NumpyAdapter):
    """Fails on one shape only, as an adapter that runs out of memory on one cell would."""

    name = "test-exploding"
    formulation = "raises MemoryError on inputs of more than 16 rows"

    def _compute(self, a, b, plan):
        if plan.n > 16:
            raise MemoryError("planted: out of memory on this cell")
        return super()._compute(a, b, plan)


class NaiveNumpy(NumpyAdapter):
    name = "test-naive"
    formulation = "(a * b).sum(0)"

    def _compute(self, a, b, plan):
        return (a * b).sum(0)


@pytest.fixture(scope="module")
def document():
    # The planted adapters join the registry for this module only.
    with xbackend.registered(ExplodingAdapter), xbackend.registered(NaiveNumpy):
        options = compare.CompareOptions(
            pairs=[("numpy", "cpu"), (ExplodingAdapter.name, "cpu"), (NaiveNumpy.name, "cpu"), ("torch-eager", "cuda")],
            shapes=SHAPES,
            dtypes=("float32",),
            budget=TINY,
        )
        steps = []
        yield compare.run_compare(options, progress=lambda done, total, label: steps.append((done, total, label))) | {
            "_steps": steps
        }


def test_report_structure(document):
    for key in (
        "schema",
        "created_utc",
        "elapsed_s",
        "options",
        "machine",
        "devices",
        "frameworks",
        "threads",
        "skipped",
        "floors",
        "cells",
        "verdicts",
        "warnings",
    ):
        assert key in document, key
    assert document["schema"] == compare.SCHEMA
    assert document["frameworks"]["numpy"] == np.__version__
    assert document["machine"]["cpus"] >= 1
    assert "blas" in document["threads"]["numpy"]
    if not _has_cuda():  # an unavailable pair is listed as skipped, not run
        assert len(document["cells"]) == 3 * len(SHAPES)
        assert ("torch-eager", "cuda") in {(s["adapter"], s["device"]) for s in document["skipped"]}
    for cell in document["cells"]:
        assert set(cell) == set(CellResult.keys()) - {"samples_s"} | {"fastest", "rivals"}  # raw samples are opt-in
    json.dumps(document["cells"], allow_nan=False)  # every figure is JSON


def _has_cuda() -> bool:
    return STRATEGIES["torch-eager"].unavailable_reason("cuda") is None


def test_every_ok_cell_has_all_figures(document):
    ok = [c for c in document["cells"] if c["status"] == "ok"]
    assert {c["adapter"] for c in ok} == {"numpy", "test-naive", "test-exploding"}
    for cell in ok:
        assert cell["p20_s"] <= cell["median_s"] <= cell["p80_s"]
        assert cell["extra_memory_method"] and cell["extra_memory_bytes"] is not None
        assert cell["error_ratio"] <= 1 and cell["error_checked"]
        if cell["shape_class"] == "small":
            assert cell["gbps"] > 0 and cell["floor_gbps"] > 0 and cell["fraction_of_floor"] > 0
            assert cell["cache_kind"] in ("rotated", "cold", "unknown")
        else:
            assert cell["cache_kind"] == "latency" and cell["gbps"] is None
    naive = next(c for c in ok if c["adapter"] == "test-naive" and c["shape_class"] == "small")
    assert naive["extra_memory_bytes"] >= 512 * 128 * 4  # its N x K temporary


def test_a_failing_cell_is_reported_and_the_run_goes_on(document):
    exploding = {c["shape_class"]: c for c in document["cells"] if c["adapter"] == "test-exploding"}
    assert exploding["small"]["status"] == "failed"
    assert "MemoryError: planted" in exploding["small"]["error"]
    assert exploding["latency"]["status"] == "ok"  # the next cell of the same adapter ran
    assert any("test-exploding" in note and "MemoryError" in note for note in document["warnings"])
    table = report.format_table(document)
    assert "FAILED: MemoryError: planted" in table


def test_fastest_marks_and_verdicts(document):
    numpy_backend = [c for c in document["cells"] if c["framework"] == "numpy" and c["status"] == "ok"]
    for shape in SHAPES:
        group = [c for c in numpy_backend if c["shape_class"] == shape]
        winners = [c for c in group if c["fastest"]]
        assert len(winners) == 1
        fractions = [c["fraction_of_floor"] for c in group]
        if all(fractions):  # bandwidth cells: each timed beside the floor, the ratio ranks them
            assert winners[0]["fraction_of_floor"] == max(fractions)
        else:
            assert winners[0]["median_s"] == min(c["median_s"] for c in group)
    (verdict,) = [v for v in document["verdicts"] if v["backend"] == "numpy on cpu"]
    assert verdict["fastest"] in {"numpy", "test-naive", "test-exploding"}
    assert verdict["fastest"] in verdict["text"]
    assert all(factor["geomean"] >= 1 for factor in verdict["behind"].values())
    assert "test-exploding" in verdict["text"]  # its failed cell is named


def test_cells_are_marked_by_the_fraction_of_the_floor():
    # torch-numba timed in a slow spell (its floor, timed beside it, slow too) against
    # torch-compile timed later on a quicker machine: the fraction decides.
    def cell(adapter, median_s, fraction):
        return {
            "adapter": adapter,
            "framework": "torch",
            "device": "cpu",
            "shape_class": "short-wide",
            "dtype": "float32",
            "status": "ok",
            "median_s": median_s,
            "fraction_of_floor": fraction,
        }

    cells = [cell("torch-numba", 0.042, 0.89), cell("torch-compile", 0.0366, 0.41)]
    mark_fastest(cells)
    assert [(c["fastest"], c["rivals"]) for c in cells] == [(True, 1), (False, 1)]
    cells[0]["fraction_of_floor"] = None  # no ratio for one: the medians decide
    mark_fastest(cells)
    assert [c["fastest"] for c in cells] == [False, True]


def test_a_report_is_marked_again_when_rendered(document):
    # A report made under an older rule (or edited) is marked by today's when drawn or tabled.
    stale = copy.deepcopy(document)
    for cell in stale["cells"]:
        cell["fastest"] = False
    report.render_markdown_tables(stale)
    assert [c["fastest"] for c in stale["cells"]] == [c["fastest"] for c in document["cells"]]
    assert any(c["fastest"] for c in stale["cells"])


def test_floors_are_measured_once_per_shape_on_the_same_hardware(document):
    small = [f for f in document["floors"] if f["shape_class"] == "small"]
    assert len(small) == 1 and small[0]["hardware"] == "cpu" and small[0]["gbps"] > 0
    assert small[0]["bytes"] == 2 * 512 * 128 * 4
    for cell in document["cells"]:
        if cell["shape_class"] == "small" and cell["status"] == "ok":
            # The shared floor is the allocator figure; its kernel was timed again beside the
            # cell, and the fraction is a ratio to that (or to a strategy that beat it).
            assert cell["memory_floor_gbps"] == small[0]["gbps"]
            assert small[0]["method"] in cell["floor_method"]
            assert "timed in the cell's rounds" in cell["floor_method"]
            assert cell["fraction_of_floor"] == pytest.approx(cell["gbps"] / cell["floor_gbps"])
            assert cell["fraction_of_floor"] <= 1.0


def test_progress_reaches_the_end(document):
    steps = document["_steps"]
    assert steps[-1][:2] == (len(document["cells"]), len(document["cells"]))
    assert [done for done, _, _ in steps] == sorted(done for done, _, _ in steps)


def test_json_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    report.write_json_atomic(target, {"run": 1})
    assert json.loads(target.read_text()) == {"run": 1}

    def interrupted(fd):
        raise KeyboardInterrupt  # Ctrl-C after the new content is written, before the rename

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report.write_json_atomic(target, {"run": 2, "big": list(range(100_000))})
    assert json.loads(target.read_text()) == {"run": 1}  # the old file, whole
    assert os.listdir(tmp_path) == ["out.json"]  # no temporary left behind
    monkeypatch.undo()

    with pytest.raises(ValueError):  # NaN is refused before the disk is touched
        report.write_json_atomic(target, {"run": 3, "x": float("nan")})
    assert json.loads(target.read_text()) == {"run": 1}
    report.write_json_atomic(target, {"run": 4})
    assert json.loads(target.read_text()) == {"run": 4}


def test_plot_is_a_png(document, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "out.png"
    report.write_plot(path, document)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_compare_writes_json_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    json_path, png_path = tmp_path / "r.json", tmp_path / "r.png"
    code = main(
        [
            "compare",
            "--quick",
            "--adapters",
            "numpy",
            "--shapes",
            "256x64,latency",
            "--json",
            str(json_path),
            "--plot",
            str(png_path),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "256x64" in out and "verdicts:" in out and "numpy on cpu" in out
    written = json.loads(json_path.read_text())
    assert written["options"]["quick"] is True
    assert [c["shape_class"] for c in written["cells"]] == ["256x64", "latency"]
    assert all("samples_s" not in c for c in written["cells"])  # raw samples only with --samples
    assert png_path.stat().st_size > 0


def test_cli_compare_keeps_raw_samples_on_request(tmp_path):
    json_path = tmp_path / "r.json"
    assert (
        main(["compare", "--quick", "--adapters", "numpy", "--shapes", "256x64", "--json", str(json_path), "--samples"])
        == 0
    )
    (cell,) = json.loads(json_path.read_text())["cells"]
    assert len(cell["samples_s"]) == cell["repeats"] >= 5
    assert min(cell["samples_s"]) > 0
    assert float(np.median(cell["samples_s"])) == pytest.approx(cell["median_s"], rel=1e-12)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--shapes", "bogus"], "unknown shape 'bogus'"),
        (["--dtypes", "bool"], "bool"),
        (["--adapters", "nope"], "unknown adapter 'nope'"),
        (["--devices", "tpu"], "unknown device(s) tpu"),
    ],
)
def test_cli_compare_refuses_bad_options_before_work(argv, message, capsys):
    assert main(["compare", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_compare_reports_the_dispatch_overhead_of_auto_adapters(tmp_path, capsys):
    json_path = tmp_path / "r.json"
    assert (
        main(["compare", "--quick", "--adapters", "numpy-auto", "--shapes", "latency", "--json", str(json_path)]) == 0
    )
    out = capsys.readouterr().out
    (cell,) = json.loads(json_path.read_text())["cells"]
    assert cell["dispatch_overhead_p20_s"] <= cell["dispatch_overhead_s"] <= cell["dispatch_overhead_p80_s"]
    assert cell["dispatch_call_s"] > 0 and cell["plain_call_s"] > 0
    line = next(line for line in out.splitlines() if line.strip().startswith("numpy-auto") and "kernel" in line)
    assert report.format_seconds(cell["dispatch_overhead_s"]) in line and cell["plain_call"] in line
    assert "dispatch overhead" in out


def test_no_strategy_beats_the_floor_by_more_than_five_percent(document):
    # Done-when of issue 10: where a strategy outruns every floor kernel, it is the floor.
    fractions = [c["fraction_of_floor"] for c in document["cells"] if c["fraction_of_floor"] is not None]
    assert fractions and max(fractions) <= 1.05
    fastest = max((c for c in document["cells"] if c["gbps"] is not None), key=lambda c: c["gbps"])
    assert fastest["gbps"] <= fastest["floor_gbps"] * 1.05
