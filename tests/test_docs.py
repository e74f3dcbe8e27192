"""The docs: every measured figure is generated from a committed report, and the links resolve.

``xbackend docs`` rewrites the regions between ``<!-- generated: VIEW from
REPORT.json -->`` and ``<!-- end generated -->`` in README.md and docs/*.md;
here they are regenerated in memory and compared with the files.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from xbackend import report
from xbackend.cli import main

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
MARKDOWN = report.markdown_files(REPO)


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.mark.parametrize("path", MARKDOWN, ids=_name)
def test_generated_tables_match_the_committed_reports(path):
    text = path.read_text()
    assert report.regenerate_markdown(text, REPO, where=_name(path)) == text, (
        f"{_name(path)} is stale: run `xbackend docs`"
    )


def test_every_committed_report_feeds_a_generated_table():
    sources = {match["source"] for path in MARKDOWN for match in report.GENERATED_REGION.finditer(path.read_text())}
    committed = {_name(path) for path in RESULTS.glob("*.json")}
    assert committed and committed <= sources, f"reports no page shows: {sorted(committed - sources)}"


def test_no_result_table_is_copied_by_hand():
    # A table row with a time or a bandwidth belongs inside a generated region.
    figure = re.compile(r"\d(\.\d+)? ?(ms|us|GB/s)\b")
    # A page a benchmark script writes whole (its first line says which) is generated too.
    copied = [
        f"{_name(path)}: {line}"
        for path in MARKDOWN
        if not path.read_text().startswith("<!-- generated whole by benchmarks/")
        for line in report.GENERATED_REGION.sub("", path.read_text()).splitlines()
        if line.startswith("|") and figure.search(line)
    ]
    assert not copied, "\n".join(copied)


def test_readme_stays_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 150


# -- rendering, on a report whose every figure is known -------------------------
def _cell(
    adapter,
    framework,
    shape_class,
    shape,
    median_s,
    *,
    gbps=None,
    fraction=None,
    fastest=False,
    rivals=1,
    status="ok",
    error_ratio=0.25,
):
    return {
        "adapter": adapter,
        "device": "cpu",
        "framework": framework,
        "dtype": "float32",
        "shape_class": shape_class,
        "shape": shape,
        "status": status,
        "error": None if status == "ok" else "MemoryError: planted",
        "median_s": median_s,
        "gbps": gbps,
        "fraction_of_floor": fraction,
        "error_ratio": error_ratio,
        "error_failure": None,
        "fastest": fastest,
        "rivals": rivals,
    }


def _report(cells, floors=()):
    return {
        "schema": "xbackend.compare/1",
        "created_utc": "2030-01-02T03:04:05+00:00",
        "elapsed_s": 12.4,
        "options": {
            "quick": False,
            "shapes": {"square": [4096, 4096], "latency": [3, 4]},
            "dtypes": ["float32"],
            "budget": {"warmup_s": 0.5, "measure_s": 1.5, "min_repeats": 10, "max_repeats": 10000},
        },
        "machine": {
            "platform": "Linux-test",
            "python": "3.11.7",
            "cpu": "Test CPU",
            "cpus": 2,
            "memory_bytes": 8 * 2**30,
            "cpu_last_level_cache_bytes": 32 * 2**20,
        },
        "devices": {"torch:cpu": {"hardware": "Test CPU", "cache_bytes": 32 * 2**20}},
        "frameworks": {"xbackend": "0.1.0", "torch": "9.9", "cupy": None},
        "threads": {"requested": 2},
        "floors": list(floors),
        "cells": cells,
    }


SQUARE = [4096, 4096]


def test_cells_view_renders_each_figure_from_the_report():
    document = _report(
        [
            _cell("torch-eager", "torch", "square", SQUARE, 0.0296, gbps=4.53, fraction=0.2071),
            _cell("torch-blocked", "torch", "square", SQUARE, 0.0067, gbps=20.04, fraction=0.9246, fastest=True),
            _cell("torch-eager", "torch", "latency", [3, 4], 12.3e-6, fastest=True, error_ratio=0.5),
            _cell("torch-blocked", "torch", "latency", [3, 4], None, status="failed", error_ratio=None),
        ],
        floors=[{"shape_class": "square", "dtype": "float32", "hardware": "cpu", "memory": "torch", "gbps": 21.76}],
    )
    assert report.render_markdown_tables(document, "cells", source="docs/results/x.json") == "\n".join(
        [
            "From `docs/results/x.json`: `xbackend compare`, chosen shapes, float32, on Test CPU (2 CPUs, LLC 32 MiB, "
            "8 GiB RAM; Linux-test, Python 3.11.7); torch 9.9; threads fixed at 2; 0.5 s warm-up and 1.5 s of samples "
            "per cell; run took 12 s, 2030-01-02.",
            "",
            "float32; each cell: median time, GB/s, fraction of the floor (latency cells: median time); **bold**: the "
            "fastest strategy of its library and device for that shape, where it has several.",
            "",
            "| adapter | square 4096x4096 | latency 3x4 |",
            "|---|---|---|",
            # latency: torch-blocked failed, so torch-eager won against no rival (no bold)
            "| `torch-eager` | 29.6 ms, 4.53 GB/s, 0.21 | 12.3 us |",
            "| `torch-blocked` | **6.7 ms, 20 GB/s, 0.92** | failed |",
            "",
            "Floors (GB/s of the fastest read of the same bytes, per allocator): square: torch 21.8.",
            "Every cell's error was within the bound (worst 0.5 of it).",
            "",
        ]
    )


def test_fractions_view_names_a_result_out_of_the_bound():
    wrong = _cell("torch-eager", "torch", "square", SQUARE, 0.0296, gbps=4.53, fraction=0.2071, rivals=0) | {
        "error_failure": "planted: off by one row",
        "error_ratio": 3.0,
    }
    rendered = report.render_markdown_tables(_report([wrong]), "fractions")
    assert "| `torch-eager` | 0.21 WRONG |" in rendered
    assert "**Out of the error bound**: `torch-eager` square." in rendered
    assert rendered.startswith("Measured: `xbackend compare`")


def test_selection_view_chooses_the_lowest_median_and_shows_the_others():
    document = _report(
        [
            _cell("torch-eager", "torch", "square", SQUARE, 0.0296, gbps=4.53, fraction=0.2071, rivals=1),
            _cell("torch-blocked", "torch", "square", SQUARE, 0.0067, gbps=20.04, fraction=0.9246, fastest=True),
            _cell("torch-eager", "torch", "latency", [3, 4], 12.3e-6, fastest=True),
            _cell("torch-blocked", "torch", "latency", [3, 4], 40.1e-6),
        ]
    )
    rows = [
        line for line in report.render_markdown_tables(document, "selection").splitlines() if line.startswith("| torch")
    ]
    assert rows == [
        "| torch | cpu | float32 | square | `torch-blocked` | 0.92 | `torch-eager` 0.21 |",
        "| torch | cpu | float32 | latency | `torch-eager` | 12.3 us | `torch-blocked` 40.1 us |",
    ]


def test_fastest_view_is_one_row_per_library_with_each_class_winner():
    document = _report(
        [
            _cell("torch-eager", "torch", "square", SQUARE, 0.0296, gbps=4.53, fraction=0.2071),
            _cell("torch-blocked", "torch", "square", SQUARE, 0.0067, gbps=20.04, fraction=0.9246, fastest=True),
            _cell("torch-eager", "torch", "latency", [3, 4], 12.3e-6, fastest=True),
            _cell("torch-blocked", "torch", "latency", [3, 4], 40.1e-6),
            _cell("numpy", "numpy", "square", SQUARE, 0.0100, gbps=13.4, fraction=0.6166, fastest=True),
        ]
    )
    lines = report.render_markdown_tables(document, "fastest").splitlines()
    assert "| library | square 4096x4096 | latency 3x4 |" in lines
    assert [line for line in lines if line.startswith(("| numpy", "| torch"))] == [
        "| numpy@cpu | `numpy` 0.62 | - |",
        "| torch@cpu | `torch-blocked` 0.92 | `torch-eager` 12.3 us |",
    ]


def test_fastest_view_of_a_report_without_strategies_says_so():
    document = _report([_cell("torch-auto", "torch", "latency", [3, 4], 12.3e-6)])
    assert "No correct cell of a strategy" in report.render_markdown_tables(document, "fastest")


def test_unknown_view_is_refused():
    with pytest.raises(ValueError, match="unknown view 'bogus'"):
        report.render_markdown_tables(_report([]), "bogus")


# -- regions and the command ----------------------------------------------------
def _tree(tmp_path: Path, page: str) -> Path:
    (tmp_path / "docs" / "results").mkdir(parents=True)
    shutil.copy(RESULTS / "compare-cpu-jax4.json", tmp_path / "docs" / "results" / "r.json")
    (tmp_path / "README.md").write_text("# title\n")
    (tmp_path / "docs" / "page.md").write_text(page)
    return tmp_path / "docs" / "page.md"


REGION = "before\n<!-- generated: cells from docs/results/r.json -->\n{body}<!-- end generated -->\nafter\n"


def test_the_command_finds_a_stale_table_and_rewrites_it(tmp_path, capsys):
    page = _tree(tmp_path, REGION.format(body="| `jax-jit` | 1 ms, 999 GB/s, 9.99 |\n"))
    assert main(["docs", "--check", "--root", str(tmp_path)]) == 1
    assert "out of date: docs/page.md" in capsys.readouterr().out
    assert "999 GB/s" in page.read_text()  # --check writes nothing
    assert main(["docs", "--root", str(tmp_path)]) == 0
    text = page.read_text()
    document = json.loads((RESULTS / "compare-cpu-jax4.json").read_text())
    expected = report.render_markdown_tables(document, "cells", source="docs/results/r.json")
    assert text == REGION.format(body=expected)
    jit = next(c for c in document["cells"] if c["adapter"] == "jax-jit" and c["shape_class"] == "square")
    assert f"{jit['gbps']:.3g} GB/s" in text and "999 GB/s" not in text
    assert main(["docs", "--check", "--root", str(tmp_path)]) == 0


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ("<!-- generated: cells from docs/results/r.json -->\nno end\n", "has no '<!-- end generated -->'"),
        (REGION.format(body="").replace("cells", "bogus"), "docs/page.md: unknown view 'bogus'"),
        (REGION.format(body="").replace("r.json", "missing.json"), "docs/page.md: cannot read the report"),
    ],
)
def test_a_bad_region_is_named(tmp_path, page, message, capsys):
    _tree(tmp_path, page)
    with pytest.raises(ValueError, match=re.escape(message)):
        report.sync_markdown(tmp_path, check=True)
    assert main(["docs", "--check", "--root", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


# -- links -----------------------------------------------------------------------
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(path: Path) -> set[str]:
    # GitHub's heading slugs: lower case, punctuation dropped, spaces to hyphens.
    headings = re.findall(r"^#+ (.+)$", path.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("path", MARKDOWN, ids=_name)
def test_relative_links_resolve(path):
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, broken
