"""The published dashboard in a real browser: headless Chromium draws a graph for every CPU adapter.

Results of the smoke run (tests/asv_support.py) are published with
benchmarks/publish.py into a temporary folder, served by ``python -m
http.server`` on 127.0.0.1 and opened by Chromium once per benchmark with every
CPU adapter selected. The DOM (``--dump-dom``) must hold flot's canvas and a
legend entry per adapter, and each benchmark's graph file a figure per adapter;
on one graph, a screenshot per adapter with the legend hidden must show the
series colour inside the plot, i.e. a point was drawn for it.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("asv", reason="asv is in the test extra: pip install -e '.[test]'")
Image = pytest.importorskip("PIL.Image", reason="Pillow (with matplotlib) reads the screenshots")

from asv_support import REPO, smoke_run  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from benchmarks.common import ADAPTERS, grid_cells  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium); .ci/run installs it"
)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,900",
    "--virtual-time-budget=15000",
]
# What the dashboard must show for every CPU adapter (the "done" list).
GRAPHS = {
    "bench_mul_sum.TimeMulSum.time_mul_sum": "small",
    "bench_mul_sum.MulSumMetrics.track_gbps": "small",
    "bench_mul_sum.MulSumMetrics.track_fraction_of_floor": "small",
    "bench_mul_sum.MulSumMetrics.track_extra_memory": "small",
}
DRAWN_IN_A_BROWSER = "bench_mul_sum.TimeMulSum.time_mul_sum"
# Adapters that record no figure for a benchmark by design, and why: the graph has no point for them.
NO_FIGURE = {
    "bench_mul_sum.MulSumMetrics.track_extra_memory": {
        "dask-cluster": "its work runs in the cluster's worker processes, which no probe in this process sees",
    },
}
_LEGEND_ENTRY = re.compile(
    r'border:5px solid rgb\((\d+),\s*(\d+),\s*(\d+)\)[^<]*</div></div></td><td class="legendLabel">adapter-([\w-]+);'
)


def cpu_adapters() -> list[str]:
    import xbackend

    return [a.name for a in xbackend.adapters() if a.device == "cpu" and a.available and a.name in ADAPTERS]


@pytest.fixture(scope="module")
def site() -> Path:
    workspace, run = smoke_run()
    assert run.returncode == 0, run.output[-3000:]
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "publish.py"), "--config", str(workspace.config)],
        cwd=REPO,
        env=workspace.env,
        check=True,
        capture_output=True,
        text=True,
    )
    return workspace.html


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    from publish import served  # the server publish.py --screenshot draws from

    with served(site) as base:
        yield base


def graph_url(base: str, benchmark: str, adapters: list[str], shape: str, show_legend: bool) -> str:
    params = [("p-adapter", repr(a)) for a in adapters]
    params += [("p-device", "'cpu'"), ("p-shape", repr(shape)), ("p-dtype", "'float32'")]
    if not show_legend:
        params.append(("show-legend", "false"))
    return f"{base}index.html#{benchmark}?{urllib.parse.urlencode(params, quote_via=urllib.parse.quote)}"


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="xbackend-chromium-") as profile:
        return subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )


def series_colors(dom: str) -> dict[str, tuple[int, int, int]]:
    """Adapter -> the colour flot gave its series, from the legend."""
    return {m.group(4): tuple(int(c) for c in m.group(1, 2, 3)) for m in _LEGEND_ENTRY.finditer(dom)}


def plotted_pixels(screenshot: Path, color: tuple[int, int, int], tolerance: int = 30) -> int:
    """Pixels of ``color`` in the plot area (right of the parameter sidebar, below the navigation bar)."""
    import numpy as np

    with Image.open(screenshot) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)[60:, 200:]
    return int(np.all(np.abs(pixels - np.array(color)) <= tolerance, axis=-1).sum())


def drawn_adapters(benchmark: str) -> list[str]:
    """The CPU adapters whose point the graph must show (all but the documented ``NO_FIGURE`` ones)."""
    return [a for a in cpu_adapters() if a not in NO_FIGURE.get(benchmark, {})]


@pytest.mark.parametrize("benchmark", sorted(GRAPHS))
def test_graph_has_a_series_per_cpu_adapter(server: str, benchmark: str):
    adapters = drawn_adapters(benchmark)
    assert adapters, "no CPU adapter is available"
    dom = chromium("--dump-dom", graph_url(server, benchmark, adapters, GRAPHS[benchmark], show_legend=True)).stdout
    assert "failed to load" not in dom, "the page's scripts did not load (CDN files not localized?)"
    assert "No data for this combination" not in dom and "No graphs to load" not in dom
    assert 'class="flot-base"' in dom, "flot drew no canvas"
    colors = series_colors(dom)
    assert set(adapters) <= set(colors), f"legend shows {sorted(colors)}, expected {adapters}"


@pytest.mark.parametrize("benchmark", sorted(GRAPHS))
def test_graph_file_holds_a_figure_per_cpu_adapter(site: Path, benchmark: str):
    # What flot is given to draw, per adapter: a finite figure at the graph's cell.
    values = published_values(site, benchmark)
    missing = [a for a in drawn_adapters(benchmark) if not _finite(values[(a, "cpu", GRAPHS[benchmark], "float32")])]
    assert not missing, f"{benchmark}: no figure published for {missing}"


def published_values(site: Path, benchmark: str) -> dict[tuple[str, str, str, str], float | None]:
    """Each smoke cell's figure in ``benchmark``'s graph file (asv publish: ``[[revision, [value per cell]]]``)."""
    (path,) = [p for p in site.glob(f"graphs/**/{benchmark}.json") if "summary" not in p.parts]
    ((_, values),) = json.loads(path.read_text())
    return dict(zip(grid_cells("smoke"), values))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def test_graph_draws_each_cpu_adapter(server: str, tmp_path: Path):
    # One adapter per page: a single series is drawn in flot's first colour, and
    # a point hidden behind another adapter's equal value cannot pass unseen. One
    # graph: the drawing is the same for every benchmark (a browser per adapter
    # and graph took ~100 s), and each graph file's figures are checked above.
    benchmark = DRAWN_IN_A_BROWSER
    first_color = None
    for adapter in drawn_adapters(benchmark):
        url = graph_url(server, benchmark, [adapter], GRAPHS[benchmark], show_legend=True)
        if first_color is None:
            (first_color,) = series_colors(chromium("--dump-dom", url).stdout).values()
        shot = tmp_path / f"{adapter}.png"
        chromium(f"--screenshot={shot}", graph_url(server, benchmark, [adapter], GRAPHS[benchmark], show_legend=False))
        assert plotted_pixels(shot, first_color) >= 5, f"no point drawn for {adapter} ({shot})"
