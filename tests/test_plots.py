"""The pictures of a compare report: the data they draw, the files they write, ``xbackend plot``, and the PNGs in docs.

The drawn data comes from pure functions (``report.fraction_matrix``,
``report.scaling_series``), checked here against the report's own cells; the
writers are checked to produce PNG files from a synthetic report and from every
committed report. Pixels are not tested: every PNG was looked at before it was committed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from xbackend import compare, report
from xbackend.cli import main

REPO = Path(__file__).resolve().parents[1]
COMMITTED = sorted((REPO / "docs" / "results").glob("*.json"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SHAPES = {"square": [64, 64], "column": [4096, 1], "latency": [3, 4]}


def _cell(adapter, framework, shape_class, fraction, *, status="ok", dtype="float32", device="cpu", **extra):
    latency = shape_class == "latency"
    return {
        "adapter": adapter,
        "framework": framework,
        "device": device,
        "shape_class": shape_class,
        "shape": SHAPES[shape_class],
        "dtype": dtype,
        "status": status,
        "cache_kind": "latency" if latency else "rotated",
        "fraction_of_floor": None if latency or status != "ok" else fraction,
        "median_s": 1.5e-5 if latency else 2e-3,
        "fastest": False,
        "rivals": 1,
        "error_failure": False,
    } | extra


def _synthetic() -> dict:
    """Two libraries, two dtypes; one cell missing, one unsupported, one failed; a scaling section with a failed point."""
    rng = np.random.default_rng(7)
    fractions = iter(rng.uniform(0.05, 1.0, size=32).round(3))
    cells = []
    for dtype in ("float32", "bfloat16"):
        for adapter, framework in (("numpy", "numpy"), ("numpy-auto", "numpy"), ("torch-eager", "torch")):
            for shape_class in SHAPES:
                if (adapter, shape_class, dtype) == ("numpy", "column", "bfloat16"):
                    continue  # not in the grid
                status = "ok"
                if (adapter, dtype) == ("torch-eager", "bfloat16") and shape_class == "square":
                    status = "unsupported"
                if (adapter, shape_class, dtype) == ("numpy-auto", "column", "float32"):
                    status = "failed"
                cells.append(_cell(adapter, framework, shape_class, float(next(fractions)), status=status, dtype=dtype))
    cells[0] |= {"fastest": True, "error_failure": True}
    points = [
        {
            "adapter": adapter,
            "threads": threads,
            "honours_threads": adapter != "jax-auto",
            "gbps": gbps,
            "floor_gbps": floor,
            "fraction_of_floor": gbps / floor,
            "floor_method": "np.dot",
            "error": None,
        }
        for adapter, threads, gbps, floor in (
            ("numpy-auto", 1, 8.0, 10.0),
            ("numpy-auto", 2, 15.0, 19.0),
            ("jax-auto", 1, 9.0, 10.0),
        )
    ]
    points.append(
        {"adapter": "jax-auto", "threads": 2, "honours_threads": False, "gbps": None, "floor_gbps": None}
        | {"fraction_of_floor": None, "floor_method": None, "error": "RuntimeError: planted"}
    )
    return {
        "schema": "xbackend.compare/1",
        "machine": {"cpu": "Test CPU", "cpus": 2},
        "devices": {"numpy:cpu": {"hardware": "Test CPU"}, "torch:cpu": {"hardware": "Test CPU"}},
        "cells": cells,
        "scaling": {
            "shape_class": "square",
            "shape": [64, 64],
            "dtype": "float32",
            "threads": [1, 2],
            "points": points,
        },
    }


def _expected_fraction(report_: dict, adapter: str, shape_class: str, dtype: str) -> float:
    """From the cells directly: the fraction of an ok cell, NaN for anything else."""
    for cell in report_["cells"]:
        if (cell["adapter"], cell["shape_class"], cell["dtype"]) == (adapter, shape_class, dtype):
            ok = cell["status"] == "ok" and cell["fraction_of_floor"] is not None
            return cell["fraction_of_floor"] if ok else math.nan
    return math.nan


def test_fraction_matrix_holds_the_cells_fractions_and_nan_for_the_rest():
    document = _synthetic()
    panel = report.fraction_matrix(document, "numpy", "cpu", "bfloat16")
    assert panel.strategies == ["numpy", "numpy-auto"]
    assert panel.shapes == ["square", "column"]  # latency has no floor
    by_key = {(c["adapter"], c["shape_class"], c["dtype"]): c for c in document["cells"]}
    assert panel.fractions[0, 0] == by_key["numpy", "square", "bfloat16"]["fraction_of_floor"]
    assert math.isnan(panel.fractions[0, 1])  # numpy column bfloat16 was not in the grid
    assert panel.fractions[1, 1] == by_key["numpy-auto", "column", "bfloat16"]["fraction_of_floor"]
    failed = report.fraction_matrix(document, "numpy", "cpu", "float32")
    assert math.isnan(failed.fractions[1, 1]) and not math.isnan(failed.fractions[1, 0])
    unsupported = report.fraction_matrix(document, "torch", "cpu", "bfloat16")
    assert unsupported.strategies == ["torch-eager"]
    assert math.isnan(unsupported.fractions[0, 0]) and not math.isnan(unsupported.fractions[0, 1])


def test_fraction_matrix_refuses_a_panel_the_report_does_not_have():
    with pytest.raises(ValueError, match="no float16 cells of numpy on cpu"):
        report.fraction_matrix(_synthetic(), "numpy", "cpu", "float16")
    with pytest.raises(ValueError, match="no float32 cells of cupy on cuda"):
        report.fraction_matrix(_synthetic(), "cupy", "cuda", "float32")


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_fraction_matrix_of_each_committed_report_equals_its_cells(path):
    document = report.read_report(path)
    groups, dtypes = report.panel_keys(document)
    checked = 0
    for library, device in groups:
        for dtype in dtypes:
            panel = report.fraction_matrix(document, library, device, dtype)
            for i, strategy in enumerate(panel.strategies):
                for j, shape_class in enumerate(panel.shapes):
                    expected = _expected_fraction(document, strategy, shape_class, dtype)
                    assert panel.fractions[i, j] == expected or (
                        math.isnan(expected) and math.isnan(panel.fractions[i, j])
                    )
                    checked += not math.isnan(expected)
    with_fraction = [c for c in document["cells"] if c["status"] == "ok" and c["fraction_of_floor"] is not None]
    assert checked == len(with_fraction) > 0  # every fraction of the report is in some panel, once


def test_scaling_series_follows_the_points_with_nan_for_a_failed_one():
    series = report.scaling_series(_synthetic())
    assert list(series) == ["numpy-auto", "jax-auto"]
    assert series["numpy-auto"] == {
        "threads": [1, 2],
        "gbps": [8.0, 15.0],
        "floor_gbps": [10.0, 19.0],
        "fraction": [0.8, 15.0 / 19.0],
    }
    assert series["jax-auto"]["gbps"][0] == 9.0 and math.isnan(series["jax-auto"]["gbps"][1])
    assert math.isnan(series["jax-auto"]["fraction"][1])
    with pytest.raises(ValueError, match="no thread-scaling section"):
        report.scaling_series({k: v for k, v in _synthetic().items() if k != "scaling"})


def test_scaling_markdown_view_lists_every_point():
    lines = report.MARKDOWN_VIEWS["scaling"](_synthetic())
    rows = [line for line in lines if line.startswith("| `")]
    assert rows[0] == "| `numpy-auto` | 1 | 8 | 10 | 0.80 | np.dot |"
    assert rows[1] == "| `numpy-auto` | 2 | 15 | 19 | 0.79 | np.dot |"
    assert rows[3].startswith("| `jax-auto` (ignores the count) | 2 | failed |") and "planted" in rows[3]
    assert len(rows) == 4
    with pytest.raises(ValueError, match="no thread-scaling section"):
        report.MARKDOWN_VIEWS["scaling"]({"cells": []})


def test_the_writers_make_pngs_from_a_synthetic_report(tmp_path):
    pytest.importorskip("matplotlib")
    report.write_plot(tmp_path / "heat.png", _synthetic())
    report.write_scaling_plot(tmp_path / "scaling.png", _synthetic())
    for name in ("heat.png", "scaling.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_the_writers_make_pngs_from_each_committed_report(path, tmp_path):
    pytest.importorskip("matplotlib")
    document = report.read_report(path)
    report.write_plot(tmp_path / "heat.png", document)
    assert (tmp_path / "heat.png").read_bytes()[:8] == PNG_MAGIC
    if "scaling" in document:
        report.write_scaling_plot(tmp_path / "scaling.png", document)
        assert (tmp_path / "scaling.png").read_bytes()[:8] == PNG_MAGIC


def test_cli_plot_draws_both_pictures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    source = tmp_path / "r.json"
    report.write_json_atomic(source, _synthetic())
    heat, scaling = tmp_path / "h.png", tmp_path / "s.png"
    assert main(["plot", str(source), "--heatmap", str(heat), "--scaling", str(scaling)]) == 0
    assert heat.read_bytes()[:8] == PNG_MAGIC and scaling.read_bytes()[:8] == PNG_MAGIC
    assert f"wrote {heat}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "nothing to draw"),
        (["--heatmap", "HEAT", "--scaling", "SCALING"], "no thread-scaling section"),
        (["--heatmap", "/proc/nope/x.png"], "/proc/nope does not exist"),
        (["--heatmap", ""], "--heatmap is empty"),
        (["--heatmap", "HEAT", "--scaling", "HEAT"], "both name"),
    ],
)
def test_cli_plot_refuses_before_drawing(argv, message, tmp_path, capsys):
    source = tmp_path / "r.json"
    report.write_json_atomic(source, {k: v for k, v in _synthetic().items() if k != "scaling"})
    argv = [str(tmp_path / a) if a in ("HEAT", "SCALING") else a for a in argv]
    assert main(["plot", str(source), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "HEAT").exists()  # the heatmap is not drawn when the scaling plot cannot be


def test_cli_compare_plot_with_scaling_writes_the_scaling_picture_too(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(compare, "run_compare", lambda options, progress=None: _synthetic())
    monkeypatch.setattr(report, "format_table", lambda document: "table")
    heat = tmp_path / "r.png"
    code = main(["compare", "--adapters", "numpy", "--shapes", "64x64", "--scaling", "--plot", str(heat)])
    assert code == 0
    assert heat.read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "r-scaling.png").read_bytes()[:8] == PNG_MAGIC


IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.png)\)")


def test_every_png_in_docs_is_shown_and_every_shown_png_exists():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    shown = {(page.parent / target).resolve() for page in pages for target in IMAGE.findall(page.read_text())}
    committed = {path.resolve() for path in (REPO / "docs").rglob("*.png")}
    assert shown, "no picture in the docs"
    assert not shown - committed, f"missing pictures: {sorted(map(str, shown - committed))}"
    assert not committed - shown, f"stale pictures nothing shows: {sorted(map(str, committed - shown))}"
    assert all(path.stat().st_size < 200_000 for path in committed)


def _broken(change) -> dict:
    document = _synthetic()
    change(document)
    return document


@pytest.mark.parametrize(
    ("document", "option", "message"),
    [
        (_broken(lambda d: d.update(cells={})), "--heatmap", "no cells to draw"),
        (_broken(lambda d: d["cells"].__setitem__(2, "cell")), "--heatmap", "cell 2 is not an object"),
        (
            _broken(lambda d: d["cells"][1].pop("framework")),
            "--heatmap",
            "cell 1 (numpy, column) has no text 'framework'",
        ),
        (
            _broken(lambda d: d["cells"][0].update(shape="64x64")),
            "--heatmap",
            "no list of sizes 'shape' (found '64x64')",
        ),
        (_broken(lambda d: d["cells"][0].update(fraction_of_floor="high")), "--heatmap", "'fraction_of_floor'"),
        (_broken(lambda d: d["cells"][0].update(rivals="two")), "--heatmap", "'rivals'"),
        (_broken(lambda d: d["cells"][2].update(median_s=None)), "--heatmap", "cell 2 (numpy, latency) ran but"),
        (_broken(lambda d: d.pop("machine")), "--heatmap", "'machine' has no 'cpu'"),
        (_broken(lambda d: d["scaling"].update(points=[])), "--scaling", "no 'points'"),
        (_broken(lambda d: d["scaling"].update(threads="1,2")), "--scaling", "'threads' (found '1,2')"),
        (_broken(lambda d: d["scaling"]["points"][1].pop("adapter")), "--scaling", "scaling point 1 has no text"),
        (_broken(lambda d: d["scaling"]["points"][0].update(gbps="fast")), "--scaling", "'gbps' (found 'fast')"),
    ],
)
def test_cli_plot_names_what_a_broken_report_lacks(document, option, message, tmp_path, capsys):
    """A hand-edited or damaged report is one line naming the bad field, exit 2, and no picture (was a traceback)."""
    source, picture = tmp_path / "r.json", tmp_path / "p.png"
    report.write_json_atomic(source, document)
    assert main(["plot", str(source), option, str(picture)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xbackend plot: ") and err.count("\n") == 1 and message in err, err
    assert not picture.exists()
