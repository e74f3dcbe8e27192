"""The asv suite: `asv check`, a smoke run where every benchmark executes once, and a broken benchmark fails the run."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("asv", reason="asv is in the test extra: pip install -e '.[test]'")
# The suite itself imports asv_runner (asv's own benchmark runner) at module level.
pytest.importorskip("asv_runner", reason="asv_runner comes with asv: pip install -e '.[test]'")

from asv_support import (  # noqa: E402
    REPO,
    SMOKE_GPU_ONLY_PROBE,
    SMOKE_PROBES,
    make_workspace,
    saved_results,
    smoke_cpu_adapters,
    smoke_run,
)

sys.path.insert(0, str(REPO / "benchmarks"))
from benchmarks import common  # noqa: E402  (the suite's own package)
from xbackend.registry import adapters  # noqa: E402

BENCHMARKS = {
    "bench_mul_sum.TimeMulSum.time_mul_sum",
    "bench_mul_sum.MulSumMetrics.track_seconds",
    "bench_mul_sum.MulSumMetrics.track_gbps",
    "bench_mul_sum.MulSumMetrics.track_fraction_of_floor",
    "bench_mul_sum.MulSumMetrics.track_extra_memory",
    "bench_mul_sum.MulSumMetrics.track_compile_seconds",
}


def test_grid_names_match_the_package():
    from xbackend import measure
    from xbackend.registry import STRATEGIES

    # Every strategy is benchmarked or excluded with a reason.
    assert set(common.ADAPTERS) | set(common.NOT_BENCHMARKED) == set(STRATEGIES)
    assert not set(common.ADAPTERS) & set(common.NOT_BENCHMARKED)
    assert common.FULL_SHAPE_CLASSES == tuple(measure.SHAPE_CLASSES)
    assert common.SMOKE_SHAPES["latency"] == measure.SHAPE_CLASSES["latency"]
    # The smoke grid's small case must measure bandwidth, not latency.
    assert measure.bytes_moved(common.SMOKE_SHAPES["small"], "float32") > measure.LATENCY_BYTES


def test_full_grid_is_the_default(monkeypatch):
    monkeypatch.delenv(common.GRID_VARIABLE, raising=False)
    assert common.grid_params() == common.grid_params("full")
    assert [len(values) for values in common.grid_params()] == [len(common.ADAPTERS), 2, 5, 3]
    monkeypatch.setenv(common.GRID_VARIABLE, "tiny")
    with pytest.raises(ValueError, match="XBACKEND_ASV_GRID='tiny'"):
        common.grid_params()


@pytest.mark.parametrize("grid", ["full", "smoke"])
def test_asv_check(grid):
    run = make_workspace(grid=grid).asv("check", "--python=same", timeout=300)
    assert run.returncode == 0, run.output
    assert "No problems found" in run.output


def test_smoke_run_executes_every_benchmark():
    workspace, run = smoke_run()
    assert run.returncode == 0, run.output[-5000:]
    assert " failed" not in run.output, run.output[-5000:]
    results = saved_results(workspace)["results"]
    assert set(results) == BENCHMARKS
    for name, columns in results.items():
        values = [v for v in columns[0] if v is not None and not math.isnan(v)]
        assert values, f"{name} produced no value on this machine (every cell skipped or failed)"
        assert all(v >= 0 for v in values), f"{name}: {values}"


def test_smoke_run_records_the_cpu_cells():
    workspace, _ = smoke_run()
    results = saved_results(workspace)["results"]
    cells = common.grid_cells("smoke")
    gbps = dict(zip(cells, results["bench_mul_sum.MulSumMetrics.track_gbps"][0]))
    times = dict(zip(cells, results["bench_mul_sum.TimeMulSum.time_mul_sum"][0]))
    available = {info.name for info in adapters() if info.device == "cpu" and info.available}
    for adapter in set(smoke_cpu_adapters()) & available:
        assert 0 < times[(adapter, "cpu", "small", "float32")] < 1.0, adapter
        assert 0 < gbps[(adapter, "cpu", "small", "float32")] < 10_000, adapter
    for adapter in SMOKE_PROBES:
        assert 0 < times[(adapter, "cpu", "latency", "float32")] < 1.0
        # Impossible cells are skipped (null), not failed.
        assert _no_value(gbps[(adapter, "cuda", "small", "float32")])
    assert _no_value(times[(SMOKE_GPU_ONLY_PROBE, "cpu", "small", "float32")])
    assert _no_value(gbps[("numpy", "cpu", "latency", "float32")]), "a latency cell has no GB/s"


def _no_value(figure: float | None) -> bool:
    return figure is None or math.isnan(figure)


def test_a_broken_benchmark_fails_the_smoke_run(tmp_path: Path):
    suite = tmp_path / "benchmarks"
    shutil.copytree(REPO / "benchmarks" / "benchmarks", suite)
    (suite / "bench_broken.py").write_text("def time_broken():\n    raise RuntimeError('planted failure')\n")
    run = make_workspace(benchmark_dir=suite).asv(
        "run", "--python=same", "--quick", "--show-stderr", "--dry-run", "--bench", "broken", timeout=300
    )
    assert run.returncode != 0, run.output
    assert "planted failure" in run.output


def test_curate_refuses_smoke_results(tmp_path: Path):
    import subprocess

    workspace, run = smoke_run()
    assert run.returncode == 0, run.output[-3000:]
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "curate.py"),
            "ci-smoke",
            "--source",
            str(workspace.results),
            "--dest",
            str(tmp_path / "curated"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "reduced grid" in proc.stderr
    assert not (tmp_path / "curated").exists()


def _machine_module():
    sys.path.insert(0, str(REPO / "benchmarks"))
    import asv_machine

    return asv_machine


def test_machine_names_come_from_the_hardware():
    names = _machine_module().hardware_name
    xeon = {"cpu": "Intel(R) Xeon(R) Processor", "num_cpu": "2", "ram": str(24 * 2**30), "gpu": "none"}
    epyc = {**xeon, "cpu": "AMD EPYC 7B13 64-Core Processor"}
    assert names(xeon) == "cpu-intel-xeon-2c-24g"
    assert names(epyc) == "cpu-amd-epyc-7b13-64-core-2c-24g"
    assert names({**xeon, "num_cpu": "16", "gpu": "NVIDIA H200"}) == "cpu-intel-xeon-16c-24g-nvidia-h200"
    # Different hardware never shares a name, also behind a VM's generic model name.
    sapphire, ice = {**xeon, "cpu_id": "6.143"}, {**xeon, "cpu_id": "6.106"}
    assert names(sapphire) == "cpu-intel-xeon-f6m143-2c-24g"
    variants = [xeon, epyc, {**xeon, "ram": str(128 * 2**30)}, sapphire, ice]
    assert len({names(entry) for entry in variants}) == len(variants)


def test_cpu_id_reads_family_and_model():
    cpu_id = _machine_module().cpu_id
    cpuinfo = (
        "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 207\nmodel name\t: Intel(R) Xeon(R)\n"
    )
    assert cpu_id(cpuinfo) == "6.207"
    assert cpu_id("processor : 0\nBogoMIPS : 50.00\n") == "unknown"


def test_curate_refuses_results_of_other_hardware_under_a_curated_name(tmp_path: Path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import curate

    curated, new = tmp_path / "curated.json", tmp_path / "new.json"
    entry = {
        "machine": "cpu-2core",
        "arch": "x86_64",
        "cpu": "AMD EPYC",
        "num_cpu": "2",
        "ram": "25276502016",
        "gpu": "none",
    }
    curated.write_text(json.dumps(entry))
    new.write_text(json.dumps(entry | {"os": "another kernel"}))
    curate.check_same_hardware(new, curated)  # same hardware: accepted
    new.write_text(json.dumps(entry | {"cpu": "Intel(R) Xeon(R) Processor"}))
    with pytest.raises(
        curate.CurationError, match=r"other hardware.*cpu: 'AMD EPYC' curated, 'Intel\(R\) Xeon\(R\) Processor' new"
    ):
        curate.check_same_hardware(new, curated)
    curate.check_same_hardware(new, tmp_path / "absent.json")  # nothing curated yet: accepted


def _selected(regexes: list[str]) -> set[tuple[str, ...]]:
    """(benchmark, adapter, device, shape, dtype) of the full grid that asv's ``-b`` with ``regexes`` runs."""
    import itertools
    import re

    chosen = set()
    for benchmark in BENCHMARKS:
        for cell in itertools.product(*common.grid_params("full")):
            name = f"{benchmark}({', '.join(map(repr, cell))})"  # as asv names a parameter set
            if any(re.search(regex, name) for regex in regexes):
                chosen.add((benchmark.rsplit(".", 1)[1], *cell))
    return chosen


def test_history_selection_is_the_history_grid():
    chosen = _selected(common.history_benchmark_regexes(("cpu",)))
    on_cpu = set(common.HISTORY_ADAPTERS) - set(common.HISTORY_GPU_ONLY)
    history_cells = {(adapter, "cpu", shape, "float32") for adapter in on_cpu for shape in common.FULL_SHAPE_CLASSES}
    assert {c[1:] for c in chosen if c[0] == "time_mul_sum"} == history_cells
    assert {c[1:] for c in chosen if c[0] == "track_extra_memory"} == history_cells
    # No GB/s or floor asked of a latency cell, no compile time of a strategy that does not compile.
    assert {c[1:] for c in chosen if c[0] == "track_gbps"} == {c for c in history_cells if c[2] != "latency"}
    assert {c[1] for c in chosen if c[0] == "track_compile_seconds"} == set(common.HISTORY_COMPILING_ADAPTERS)
    # The kinds split the same selection: every benchmark in exactly one kind.
    by_kind = [_selected(common.history_benchmark_regexes(("cpu",), (kind,))) for kind in common.HISTORY_KINDS]
    assert set().union(*by_kind) == chosen and sum(map(len, by_kind)) == len(chosen)
    assert {c[0] for c in by_kind[common.HISTORY_KINDS.index("time")]} == {"time_mul_sum"}
    # 'numpy' must not select 'numpy-threads' or 'numpy-auto' by prefix.
    assert not {c for c in chosen if c[1] not in common.HISTORY_ADAPTERS}
    on_gpu = _selected(common.history_benchmark_regexes(common.DEVICES))
    assert {c[1:] for c in on_gpu if c[2] == "cpu"} == {c[1:] for c in chosen}
    # On the GPU: every history adapter that has one, and nothing else.
    gpu_adapters = {c[1] for c in on_gpu if c[2] == "cuda"}
    assert gpu_adapters == set(common.HISTORY_ADAPTERS) - set(common.HISTORY_CPU_ONLY)


def test_history_one_device_adapters_are_those_xbackend_lists_on_one_device():
    devices = {(info.name, info.device) for info in adapters()}
    without_gpu = {name for name in common.HISTORY_ADAPTERS if not {(name, "cuda"), (name, "gpu")} & devices}
    without_cpu = {name for name in common.HISTORY_ADAPTERS if (name, "cpu") not in devices}
    assert without_gpu == set(common.HISTORY_CPU_ONLY) and without_cpu == set(common.HISTORY_GPU_ONLY)


def test_measure_only_matches_cells_as_asv_b_does(monkeypatch):
    monkeypatch.setenv(common.MEASURE_ONLY_VARIABLE, common.history_regex(("cpu",)))
    assert common.measured(("numpy", "cpu", "square", "float32"))
    assert not common.measured(("numpy-threads", "cpu", "square", "float32"))
    assert not common.measured(("numpy", "cuda", "square", "float32"))
    assert not common.measured(("numpy", "cpu", "square", "bfloat16"))
    monkeypatch.setenv(common.MEASURE_ONLY_VARIABLE, "'cuda'")  # a bare parameter regex still works
    assert common.measured(("torch-eager", "cuda", "column", "float64"))
    assert not common.measured(("torch-eager", "cpu", "column", "float64"))


# What asv continuous 0.6.6 prints with --split when one cell got slower (abridged).
CONTINUOUS_OUTPUT = """
Benchmarks that have got worse:

| Change   | Before [1111aaaa]    | After [2222bbbb]    |   Ratio | Benchmark (Parameter)                                                            |
|----------|----------------------|---------------------|---------|----------------------------------------------------------------------------------|
| +        | 9.80±0.3ms           | 31.2±0.8ms          |    3.18 | bench_mul_sum.TimeMulSum.time_mul_sum('numpy', 'cpu', 'square', 'float32')      |

Benchmarks that have stayed the same:

| Change   | Before [1111aaaa]    | After [2222bbbb]    |   Ratio | Benchmark (Parameter)                                                            |
|----------|----------------------|---------------------|---------|----------------------------------------------------------------------------------|
|          | 31.5±2μs             | 18.1±1μs            |   ~0.57 | bench_mul_sum.TimeMulSum.time_mul_sum('numpy', 'cpu', 'latency', 'float32')     |

SOME BENCHMARKS HAVE CHANGED SIGNIFICANTLY.
PERFORMANCE DECREASED.
"""


def _gate_module():
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gate

    return gate


def test_gate_names_the_slower_cell_and_fails(monkeypatch, capsys, recorded):
    import subprocess

    gate = _gate_module()
    real_run = subprocess.run

    def fake_asv(command, **kwargs):
        if command[0] == "git":  # the commits are checked before asv starts
            return real_run(command, **kwargs)
        # asv continuous compares every result of the two commits: the latency group's run
        # shows (and exits 1 for) the square cell the bandwidth group recorded.
        return subprocess.CompletedProcess(command, 1, CONTINUOUS_OUTPUT, "")

    monkeypatch.setattr(gate.subprocess, "run", fake_asv)
    assert gate.main(["main", "HEAD", "--machine", "m1", "--adapters", "numpy", "--classes", "square,latency"]) == 1
    summary = capsys.readouterr().out.split("\ngate:", 1)[1]
    assert "bandwidth (square, tall-skinny, short-wide, column; 4 rounds): SLOWER by more than 1.25x" in summary
    assert "latency (latency; 8 rounds): no cell slower by more than 2.0x" in summary
    assert summary.count("time_mul_sum('numpy', 'cpu', 'square', 'float32')") == 1  # in its own group only
    assert "'latency'" not in summary  # the unchanged, noisy cell is not named


def test_gate_passes_quiet_runs_and_reports_asv_failures(monkeypatch, recorded):
    import subprocess

    gate = _gate_module()
    outcomes = iter([(0, "BENCHMARKS NOT SIGNIFICANTLY CHANGED."), (1, "asv: build failed")])
    real_run = subprocess.run
    monkeypatch.setattr(
        gate.subprocess,
        "run",
        lambda command, **kwargs: (
            real_run(command, **kwargs)
            if command[0] == "git"
            else subprocess.CompletedProcess(command, *next(outcomes), "")
        ),
    )
    assert gate.main(["main", "HEAD", "--machine", "m1"]) == 2  # latency group: asv exited 1 with no slower cell


def test_gate_commands_use_each_groups_factor_and_rounds():
    gate = _gate_module()
    latency = next(group for group in gate.GATE_GROUPS if "latency" in group.shape_classes)
    command = gate.continuous_command(latency, "main", "HEAD", ("numpy",), ("latency",), "m", [])
    assert command[command.index("--factor") + 1] == str(latency.factor)
    assert f"rounds={latency.rounds}" in command and command[-2:] == ["main", "HEAD"]
    # Every shape class is gated exactly once.
    gated = [c for group in gate.GATE_GROUPS for c in group.shape_classes]
    assert sorted(gated) == sorted(common.FULL_SHAPE_CLASSES)


# -- the tools refuse a user's mistake in one line, before asv starts ----------
def _tool(name: str):
    sys.path.insert(0, str(REPO / "benchmarks"))
    return __import__(name)


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    """A home whose ~/.asv-machine.json records machines 'm1' and 'm2'; asv must never run."""
    import subprocess

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".asv-machine.json").write_text(json.dumps({"m1": {"machine": "m1"}, "m2": {}, "version": 1}))
    real_run = subprocess.run

    def only_git(command, **kwargs):
        assert command[0] == "git", f"asv ran: {command}"
        return real_run(command, **kwargs)

    monkeypatch.setattr(subprocess, "run", only_git)
    return tmp_path


@pytest.mark.parametrize(
    ("tool", "argv", "message"),
    [
        ("history", ["--machine", "m1", "--rounds", "0"], "--rounds 0: at least 1"),
        ("history", ["--machine", "m1", "--rounds", "abc"], "invalid int value: 'abc'"),
        ("history", ["--machine", "m1", "--devices", "gpu"], "'gpu': give a comma-separated subset of cpu, cuda"),
        ("history", ["--machine", "m1", "--existing", "main^..main"], "give no commit range"),
        (
            "history",
            ["--machine", "m1", "--kinds", "track,speed"],
            "'track,speed': give a comma-separated subset of track, time",
        ),
        ("history", ["--machine", "m1", "--kinds", "track,track"], "'track,track': track named twice"),
        ("history", ["--machine", "m1", "--kinds", " , "], "' , ': give a comma-separated subset of track, time"),
        ("history", ["--machine", "m1", "--kinds", "Track"], "'Track': give a comma-separated subset"),
        ("history", ["--machine", "m1", "--devices", "cpu, cpu"], "'cpu, cpu': cpu named twice"),
        ("history", ["--machine", "m1", ""], "commit range '': give a git range"),
        ("history", ["--machine", "m1", "nosuch..main"], "commit range 'nosuch..main': fatal:"),
        ("history", ["--machine", "m1", "main..main"], "commit range 'main..main' holds no commit"),
        ("history", ["--machine", "a/b", "main^..main"], "machine name 'a/b'"),
        ("history", ["--machine", "", "main^..main"], "machine name ''"),
        ("history", ["--machine", "typo", "main^..main"], "--machine 'typo' is not recorded (recorded: m1, m2)"),
        ("history", ["main^..main"], "give --machine"),
        ("gate", ["", "HEAD", "--machine", "m1"], "BASE '' is not a commit"),
        ("gate", ["main", "nosuch", "--machine", "m1"], "HEAD 'nosuch' is not a commit"),
        ("gate", ["main", "HEAD", "--machine", "m1", "--adapters", "numpy,bogus"], "subset of numpy"),
        ("gate", ["main", "HEAD", "--machine", "m1", "--classes", ",,"], "--classes must be"),
        ("gate", ["main", "HEAD", "--machine", "m/1"], "machine name 'm/1'"),
        ("gate", ["main", "HEAD", "--machine", "typo"], "'typo' is not recorded"),
        ("gate_demo", ["--machine", "typo"], "'typo' is not recorded"),
        ("gate_demo", ["--machine", "m1", "--out", "."], "--out .: name a file, not a folder"),
        ("asv_machine", ["a/b"], "machine name 'a/b'"),
        ("asv_machine", [".."], "machine name '..'"),
    ],
)
def test_benchmark_tools_refuse_a_mistake_in_one_line_before_asv(tool, argv, message, recorded, capsys):
    with pytest.raises(SystemExit) as stop:
        _tool(tool).main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err.splitlines()[-1], err
    assert "Traceback" not in err


@pytest.mark.parametrize(("content", "message"), [("{garbled", "cannot read"), ("[1, 2]", "not asv's machine file")])
def test_a_damaged_machine_file_is_named(content, message, recorded, capsys):
    (recorded / ".asv-machine.json").write_text(content)
    for tool, argv in (("asv_machine", ["m1"]), ("history", ["--machine", "m1"]), ("gate", ["main", "HEAD"])):
        with pytest.raises(SystemExit) as stop:
            _tool(tool).main(argv)
        err = capsys.readouterr().err.splitlines()[-1]
        assert stop.value.code == 2 and str(recorded / ".asv-machine.json") in err and message in err, (tool, err)
    assert (recorded / ".asv-machine.json").read_text() == content  # not overwritten


def _asv_runs_recorded(monkeypatch, failing: str | None = None) -> list[list[str]]:
    """The asv commands history.py runs, recorded instead of run; those with ``failing`` in an argument fail."""
    import subprocess

    asked = []
    real_run = subprocess.run

    def fake(command, **kwargs):
        if command[0] == "git":
            return real_run(command, **kwargs)
        asked.append(command)
        failed = failing is not None and any(failing in arg for arg in command)
        return subprocess.CompletedProcess(command, 1 if failed else 0)

    monkeypatch.setattr(subprocess, "run", fake)
    return asked


def test_history_runs_asv_over_a_valid_range_of_a_recorded_machine(recorded, monkeypatch):
    asked = _asv_runs_recorded(monkeypatch)
    assert _tool("history").main(["--machine", "m1", "--devices", "cpu", "main^..main"]) == 0
    assert asked[0][-3:] == ["m1", "--skip-existing-commits", "main^..main"]
    assert len(asked) == 1  # a range is one asv run: a second would skip the commits the first recorded


def test_history_of_the_checked_out_commit_saves_each_kind_on_its_own(recorded, monkeypatch):
    history = _tool("history")
    asked = _asv_runs_recorded(monkeypatch, failing=r"\.(track_")  # the track kind fails
    assert history.main(["--machine", "m1", "--devices", "cpu", "--existing"]) == 1
    benchmarks = [[arg for flag, arg in zip(command, command[1:]) if flag == "-b"] for command in asked]
    assert len(asked) == 2 and all("--set-commit-hash" in command for command in asked)
    assert all(regex.startswith(r"\.track_") or regex.startswith(r"\.(track_") for regex in benchmarks[0])
    assert benchmarks[1] == [common.history_benchmark_regexes(("cpu",), ("time",))[0]]
    asked.clear()
    assert history.main(["--machine", "m1", "--devices", "cpu", "--existing", "--kinds", "time"]) == 0
    assert len(asked) == 1 and benchmarks[1][0] in asked[0]


def test_history_records_the_track_figures_first_whatever_the_order_of_kinds(recorded, monkeypatch):
    asked = _asv_runs_recorded(monkeypatch)
    assert _tool("history").main(["--machine", "m1", "--devices", "cpu", "--existing", "--kinds", " time, track"]) == 0
    benchmarks = [[arg for flag, arg in zip(command, command[1:]) if flag == "-b"] for command in asked]
    assert benchmarks == [common.history_benchmark_regexes(("cpu",), (kind,)) for kind in ("track", "time")]


@pytest.mark.parametrize(("devices", "kinds"), [(("cpu",), ()), ((), ("track",)), (("gpu",), ("time",))])
def test_history_regexes_refuse_an_empty_selection(devices, kinds):
    # No -b at all would make asv run the whole suite; an unknown device selects nothing.
    with pytest.raises(ValueError, match="give at least one of each"):
        common.history_benchmark_regexes(devices, kinds)


def _curate_source(tmp_path: Path, benchmarks: str, machine: str = '{"machine": "m1"}') -> Path:
    source = tmp_path / "results"
    (source / "m1").mkdir(parents=True)
    (source / "m1" / "machine.json").write_text(machine)
    (source / "benchmarks.json").write_text(benchmarks)
    return source


@pytest.mark.parametrize(
    ("benchmarks", "machine", "message"),
    [
        ("{garbled", "{}", "cannot read"),
        ("[1]", "{}", "is not a JSON object (found list)"),
        ('{"a": {}}', "{}", "a lack 'params'/'version'"),
        ("{}", "{bad", "m1/machine.json"),
    ],
)
def test_curate_names_a_damaged_results_file(benchmarks, machine, message, tmp_path, capsys):
    curate = _tool("curate")
    source = _curate_source(tmp_path, benchmarks, machine)
    assert curate.main(["m1", "--source", str(source), "--dest", str(tmp_path / "dest")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("curate: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "dest").exists()


def test_curate_refuses_a_missing_source_a_file_dest_and_a_path_as_machine(tmp_path, capsys):
    curate = _tool("curate")
    assert curate.main(["m1", "--source", str(tmp_path / "nope")]) == 1
    assert f"--source {tmp_path / 'nope'} is not a folder" in capsys.readouterr().err
    source = _curate_source(tmp_path, "{}")
    (tmp_path / "file").write_text("")
    assert curate.main(["m1", "--source", str(source), "--dest", str(tmp_path / "file")]) == 1
    assert "--dest" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        curate.main(["../results/m1", "--source", str(source), "--dest", str(tmp_path / "dest")])
    assert stop.value.code == 2 and "machine name '../results/m1'" in capsys.readouterr().err
