"""``xbackend compare --load``: the option's checks, the workers' lifetime, the report's record, select's refusal.

The workers are observed from outside, through /proc: the children of this
process, their CPU time while cells are measured, and their absence afterwards.
Runs are tiny (numpy, 64 x 8, a 30 ms budget per cell).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xbackend import compare, report
from xbackend import selection as _selection
from xbackend.cli import main
from xbackend.core.probes import cpu_count
from xbackend.measure import Budget

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")

TINY = Budget(warmup_s=0.0, measure_s=0.03, min_repeats=3, max_repeats=100)
SHAPES = {"small": (64, 8)}


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, CPU ticks) of ``pid`` from /proc, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    return int(fields[1]), fields[0], int(fields[11]) + int(fields[12])


def _children() -> dict[int, int]:
    """This process's live children: pid -> CPU ticks so far."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[0] == os.getpid() and stat[1] != "Z":
            children[int(entry.name)] = stat[2]
    return children


def _options(load: int) -> compare.CompareOptions:
    return compare.CompareOptions(pairs=[("numpy", "cpu")], shapes=SHAPES, dtypes=("float32",), budget=TINY, load=load)


class Watcher:
    """A progress callback recording this process's children at every step of the run."""

    def __init__(self, fail_at: int | None = None, error: type[BaseException] = KeyboardInterrupt) -> None:
        self.seen: list[dict[int, int]] = []
        self.fail_at, self.error = fail_at, error

    def __call__(self, done: int, total: int, label: str) -> None:
        if len(self.seen) == 1:
            time.sleep(0.2)  # some CPU time for the workers to show between two looks
        self.seen.append(_children())
        if self.fail_at is not None and len(self.seen) > self.fail_at:
            raise self.error("planted")

    def workers(self) -> set[int]:
        return set().union(*self.seen)


@pytest.fixture(scope="module")
def loaded():
    watcher = Watcher()
    before = set(_children())
    document = compare.run_compare(_options(1), progress=watcher)
    return document, watcher, before


# -- the option -----------------------------------------------------------------
@pytest.mark.parametrize("bad", [-1, cpu_count() + 1, 1.5, True, "1", None])
def test_check_load_refuses_what_is_not_a_count_up_to_the_cpus(bad):
    with pytest.raises(ValueError, match=f"from 0 to {cpu_count()}, the CPUs this process may run on"):
        compare.check_load(bad)


def test_check_load_takes_zero_to_every_cpu():
    assert [compare.check_load(n) for n in (0, cpu_count())] == [0, cpu_count()]


def test_validate_refuses_a_load_above_the_cpus_before_any_work():
    with pytest.raises(ValueError, match=f"{cpu_count() + 1} is not a count"):
        compare.validate(_options(cpu_count() + 1))


@pytest.mark.parametrize(
    "value, words",
    [
        (str(cpu_count() + 1), [f"from 0 to {cpu_count()}", "CPUs"]),
        ("-1", ["-1 is not"]),
        ("two", ["'two'"]),
        ("1.5", ["'1.5'"]),
        ("", ["''"]),
    ],
)
def test_cli_refuses_a_bad_load_in_one_line(value, words, capsys, tmp_path):
    started = time.perf_counter()
    with pytest.raises(SystemExit) as stop:
        main(["compare", "--quick", "--adapters", "numpy", "--shapes", "3x4", "--load", value])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "--load" in err, err
    assert all(word in err for word in words), err
    assert time.perf_counter() - started < 5  # refused before anything was measured


# -- the workers ------------------------------------------------------------------
def test_workers_run_during_the_measurement_and_are_gone_after(loaded):
    document, watcher, before = loaded
    workers = watcher.workers() - before
    assert len(workers) == 1, watcher.seen
    (pid,) = workers
    steps = [seen[pid] for seen in watcher.seen if pid in seen]
    assert len(steps) == len(watcher.seen)  # running from the first cell to the last
    assert steps[-1] > steps[0], steps  # it took CPU time while cells were measured
    assert _stat(pid) is None  # stopped and reaped: not even a zombie
    assert document["options"]["load"] == 1 and not document["partial"]


def test_no_load_starts_no_process():
    watcher, before = Watcher(), set(_children())
    compare.run_compare(_options(0), progress=watcher)
    assert watcher.workers() <= before


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_workers_are_stopped_when_the_run_is_interrupted_or_fails(error):
    watcher, before = Watcher(fail_at=1, error=error), set(_children())
    with pytest.raises(compare.CompareInterrupted if error is KeyboardInterrupt else RuntimeError):
        compare.run_compare(_options(cpu_count()), progress=watcher)
    workers = watcher.workers() - before
    assert len(workers) == cpu_count()
    assert [_stat(pid) for pid in workers] == [None] * len(workers)


def test_a_worker_leaves_when_its_parent_is_killed():
    # The parent dies without running its cleanup (os._exit): the worker must notice and stop by itself.
    code = (
        "import os, sys\n"
        "from xbackend.compare import background_load\n"
        "with background_load(1) as pids:\n"
        "    print(pids[0], flush=True)\n"
        "    os._exit(0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=os.environ | {"PYTHONPATH": "."}
    )
    pid = int(done.stdout)
    deadline = time.monotonic() + 5
    while (stat := _stat(pid)) is not None and stat[1] != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stat is None or stat[1] == "Z", stat  # exited (a zombie until its new parent reaps it)


# -- the report --------------------------------------------------------------------
def test_the_report_records_the_load(loaded, tmp_path):
    document = loaded[0]
    path = tmp_path / "loaded.json"
    report.write_json_atomic(path, document)
    assert json.loads(path.read_text())["options"]["load"] == 1
    assert "background load: 1 busy process(es)" in report.format_table(document)
    assert "(`--load 1`)" in report.render_markdown_tables(document, "cells")


def test_an_unloaded_report_says_nothing_of_load(tmp_path):
    document = compare.run_compare(_options(0))
    assert document["options"]["load"] == 0
    assert "background load" not in report.format_table(document)
    assert "--load" not in report.render_markdown_tables(document, "cells")


# -- select ----------------------------------------------------------------------
def test_a_table_for_the_quiet_machine_refuses_a_loaded_report(loaded):
    with pytest.raises(ValueError, match=r"background load of 1 busy process\(es\) \(--load 1\).*pass --load 1"):
        _selection.build_table([loaded[0]], command="test")


def test_a_loaded_table_takes_reports_of_its_load_and_records_it(loaded):
    table = _selection.build_table([loaded[0]], command="test", load=1)
    assert table["load"] == 1
    assert [(e["library"], e["strategy"]) for e in table["entries"]] == [("numpy", "numpy")]
    unloaded = loaded[0] | {"options": loaded[0]["options"] | {"load": 0}}
    with pytest.raises(ValueError, match="without a background load, but this table is for --load 1"):
        _selection.build_table([loaded[0], unloaded], command="test", load=1)
    older = loaded[0] | {"options": {k: v for k, v in loaded[0]["options"].items() if k != "load"}}
    assert _selection.build_table([older], command="test")["load"] == 0  # reports from before --load: unloaded


def test_cli_select_refuses_a_loaded_report_unless_told_its_load(loaded, tmp_path, capsys):
    source, out = tmp_path / "loaded.json", tmp_path / "table.json"
    report.write_json_atomic(source, loaded[0])
    assert main(["select", "--from", str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(source) in err and "--load 1" in err, err
    assert not out.exists()
    assert main(["select", "--from", str(source), "--out", str(out), "--load", "1"]) == 0
    assert json.loads(out.read_text())["load"] == 1
