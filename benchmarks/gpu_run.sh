#!/usr/bin/env bash
# One pass on a GPU machine whose Python already has the CUDA frameworks (torch,
# jax[cuda], cupy) and no network: the GPU tests, the comparison report on cuda,
# and the asv suite's cuda cells in that existing environment. Everything it
# writes goes to one folder (default .asv/gpu-run-<host>-<time>). Target: under
# 8 minutes on one H100; each step has its own time limit, and a step that fails
# or runs out of time is reported and the next one still runs.
#
#   bash benchmarks/gpu_run.sh [OUT_DIR]
#
# Environment:
#   PYTHON           the Python with the frameworks (default: python3)
#   XBACKEND_WHEELS  folder of wheels to install asv from when it is missing
#                    (default .asv/gpu-wheels). Make it on a machine with network:
#                    pip download --only-binary=:all: --python-version 3.12 \
#                      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
#                      --platform manylinux_2_28_x86_64 --dest .asv/gpu-wheels asv==0.6.6
#   MACHINE          asv machine name (default: gpu-<GPU model>, e.g. gpu-h100-80gb-hbm3)
#
# Afterwards, on the machine that keeps the dashboard:
#   python benchmarks/curate.py MACHINE --source OUT_DIR/asv-results
#   python benchmarks/publish.py
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PYTHON=${PYTHON:-python3}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$(realpath -m "${1:-.asv/gpu-run-$(hostname -s)-$STAMP}")
mkdir -p "$OUT"
START=$SECONDS
STATUS=0

step() {  # step NAME TIMEOUT_S COMMAND...: run, log to OUT/NAME.log, report time and exit status
    local name=$1 limit=$2
    shift 2
    local began=$SECONDS
    echo "== $name (limit ${limit}s)"
    timeout --kill-after=20 "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "   exit $rc after $((SECONDS - began))s; log: $OUT/$name.log"
    tail -n 3 "$OUT/$name.log" | sed 's/^/   | /'
    echo "$name exit=$rc seconds=$((SECONDS - began))" >>"$OUT/steps.txt"
    [ "$rc" = 0 ] || STATUS=1
}

# xbackend from this checkout, without installing it (asv passes ASV_PYTHONPATH
# on to its benchmark processes and drops PYTHONPATH).
SITE="$OUT/site"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PYTHON" -c "import asv" 2>/dev/null; then
    WHEELS=${XBACKEND_WHEELS:-$REPO/.asv/gpu-wheels}
    echo "== installing asv from $WHEELS into $SITE"
    "$PYTHON" -m pip install --quiet --no-index --find-links "$WHEELS" --target "$SITE" asv==0.6.6 \
        || { echo "asv is not installed and could not be installed from $WHEELS (see the header)"; exit 2; }
    export PYTHONPATH="$SITE:$PYTHONPATH"
fi
export ASV_PYTHONPATH="$PYTHONPATH"

{
    nvidia-smi || true
    "$PYTHON" -m xbackend list || true
} >"$OUT/machine.txt" 2>&1

GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
MACHINE=${MACHINE:-gpu-$(echo "${GPU_NAME:-unknown}" | tr '[:upper:] ' '[:lower:]-' | tr -cd 'a-z0-9-')}
export HOME_FOR_ASV="$OUT/home"
mkdir -p "$HOME_FOR_ASV"

# 1. The GPU tests: every test marked gpu (the xbackend pytest plugin marks the cuda/gpu adapters).
PLUGIN=()
"$PYTHON" -c "import importlib.metadata as m, sys; sys.exit(not any(e.name == 'xbackend' for e in m.entry_points(group='pytest11')))" \
    || PLUGIN=(-p xbackend.pytest_plugin)
step gpu-tests 150 "$PYTHON" -m pytest "${PLUGIN[@]}" -m gpu -q -p no:cacheprovider tests

# 2. The comparison report on the GPU (float32, every shape class, --quick budget).
step compare-cuda 120 "$PYTHON" -m xbackend compare --quick --devices cuda,gpu \
    --json "$OUT/compare-cuda.json" --plot "$OUT/compare-cuda.png"

# 3. The asv suite, cuda cells of the full grid, in this existing environment,
#    recorded for this commit (asv saves results of an existing environment only
#    with --set-commit-hash). Two runs, each saving what it measured: the track_
#    figures (one shared measurement with measure's quick budget;
#    XBACKEND_ASV_MEASURE_ONLY, the -b regex, keeps it off the CPU cells, which
#    -b cannot do for setup_cache), then the time_ cells (one round, short
#    sampling) in the time that is left.
"$PYTHON" "$REPO/benchmarks/asv_config.py" "$OUT/asv.conf.json" \
    results_dir="$OUT/asv-results" html_dir="$OUT/asv-html" env_dir="$OUT/asv-env" 'matrix={}'
HOME="$HOME_FOR_ASV" "$PYTHON" "$REPO/benchmarks/asv_machine.py" "$MACHINE" --frameworks >"$OUT/asv-machine.txt"
ASV_RUN=(env HOME="$HOME_FOR_ASV" XBACKEND_ASV_MEASURE_ONLY="'cuda'" XBACKEND_ASV_BUDGET=quick
    "$PYTHON" -m asv run --config "$OUT/asv.conf.json" -E "existing:$(command -v "$PYTHON")"
    --set-commit-hash "$(git rev-parse HEAD)" --machine "$MACHINE" --show-stderr --durations 10)
step asv-cuda-track 240 "${ASV_RUN[@]}" -b "MulSumMetrics.*'cuda'"
REMAINING=$((480 - (SECONDS - START) - 10))
[ "$REMAINING" -gt 60 ] || REMAINING=60
step asv-cuda-time "$REMAINING" "${ASV_RUN[@]}" -b "TimeMulSum.*'cuda'" \
    -a rounds=1 -a warmup_time=0.1 -a "repeat=(3, 30, 0.3)"

echo "== done in $((SECONDS - START))s (target < 480s); outputs in $OUT"
echo "   asv machine: $MACHINE; to publish: python benchmarks/curate.py $MACHINE --source $OUT/asv-results"
exit $STATUS
