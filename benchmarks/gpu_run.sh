#!/usr/bin/env bash
# One pass on a GPU machine whose Python already has the CUDA frameworks (torch,
# jax with CUDA, cupy) and no network: the GPU tests, the comparison report on the
# GPU in float32 and bfloat16 at GPU sizes, and the same report on the host's
# cores. Everything lands in one folder (at most 8 files: what a lent device
# machine brings back). Each step has a time limit inside an overall deadline;
# a step that fails or runs out of time is logged and the next one still runs.
#
#   bash benchmarks/gpu_run.sh [OUT_DIR]        (default: $OUT, else .asv/gpu-run-<host>-<time>)
#
# Environment:
#   PYTHON      the Python with the frameworks (default: python3)
#   DEADLINE_S  the whole pass's time limit in seconds (default 420)
#   WORKERS     pytest-xdist workers for the GPU tests when xdist is installed (default 12)
#   STEPS       which steps run, comma-separated (default tests,compare,auto,asv,host): a
#               device session of a few minutes can split the pass over two calls
#   ASV_KINDS   the asv step's benchmarks (default track,time: benchmarks/history.py --kinds)
#
# The asv step records the history grid's GPU cells of this commit in this Python
# (benchmarks/history.py --existing): asv is not on the GPU machine, so carry its
# wheels (.whl/, see .whl/README.txt) and put them on PYTHONPATH; without asv the
# step is skipped. Its results come back as OUT/asv-results.tgz for curate.py.
#
# Then, on the machine that keeps the repository: copy OUT_DIR/compare-*.json to
# docs/results/, `xbackend select --from ... --out xbackend/selection.json`, and
# regenerate the docs' tables (docs/gpu.md says how).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
PYTHON=${PYTHON:-python3}
OUT=$(realpath -m "${1:-${OUT:-.asv/gpu-run-$(hostname -s)-$(date -u +%Y%m%dT%H%M%SZ)}}")
mkdir -p "$OUT"
DEADLINE=${DEADLINE_S:-420}
START=$SECONDS
STATUS=0
export PYTHONUNBUFFERED=1
# JAX would otherwise take 75% of GPU memory at start, starving torch and CuPy in the same process.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

STEPS=",${STEPS:-tests,compare,auto,asv,host},"
left() { echo $((DEADLINE - (SECONDS - START))); }
wanted() { [[ "$STEPS" == *",$1,"* ]]; }

step() {  # step NAME LIMIT_S COMMAND...: run within min(LIMIT_S, time left), log to OUT/run.log
    local name=$1 limit=$2
    shift 2
    local remaining
    remaining=$(left)
    [ "$remaining" -lt "$limit" ] && limit=$remaining
    if [ "$limit" -lt 15 ]; then
        echo "== $name: skipped, ${remaining}s left" | tee -a "$OUT/run.log"
        STATUS=1
        return
    fi
    local began=$SECONDS
    echo "== $name (limit ${limit}s)"
    # SIGINT first, so pytest and Python write what they have before exiting.
    timeout -s INT -k 20 "$limit" "$@"
    local rc=$?
    echo "$name exit=$rc seconds=$((SECONDS - began))" | tee -a "$OUT/run.log"
    [ "$rc" = 0 ] || STATUS=1
}

# -- the package, installed offline (its pytest plugin is found by entry point) --------
{
    echo "host: $(hostname); started $(date -u +%FT%TZ); python: $(command -v "$PYTHON")"
    git rev-parse HEAD 2>/dev/null || echo "no .git here: the commit is the one the working tree was copied from"
    nvidia-smi || echo "no nvidia-smi"
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-build-isolation -e "$REPO" \
        || echo "pip install -e failed: tests will not find the pytest plugin by entry point"
    "$PYTHON" - <<'EOF'
import importlib.metadata as md
for name in ("numpy", "torch", "jax", "jaxlib", "cupy-cuda13x", "cupy-cuda12x", "triton", "pytest", "hypothesis",
             "pytest-xdist", "pytest-timeout", "xbackend"):
    try:
        print(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        pass
import torch
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device: {p.name}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.1f} GiB, "
          f"L2 {getattr(p, 'L2_cache_size', 0) / 2**20:.0f} MiB, CUDA {torch.version.cuda}")
import jax
for d in jax.devices():  # jax-pallas sizes its lanes by core_count (132 where JAX does not say)
    print(f"jax device: {d.device_kind}, core_count {getattr(d, 'core_count', None)}")
EOF
    "$PYTHON" -m xbackend list
} >"$OUT/run.log" 2>&1
tail -n 4 "$OUT/run.log"

# -- 1. every gpu-marked test ------------------------------------------------------------
PARALLEL=()
"$PYTHON" -c "import xdist" 2>/dev/null && PARALLEL=(-n "${WORKERS:-12}")
TIMEOUT_OPT=()
"$PYTHON" -c "import pytest_timeout" 2>/dev/null && TIMEOUT_OPT=(--timeout=120)
if wanted tests; then
    XBACKEND_EXAMPLES=${XBACKEND_EXAMPLES:-10} step gpu-tests 220 \
        "$PYTHON" -m pytest -m gpu "${PARALLEL[@]}" "${TIMEOUT_OPT[@]}" -p no:cacheprovider -q -rfEs --durations=10 \
        tests >"$OUT/gpu-tests.log" 2>&1
    tail -n 15 "$OUT/gpu-tests.log"
fi

GPU_STRATEGIES=torch-eager,torch-einsum,torch-blocked,torch-compile,torch-triton,jax-jit,jax-rows,jax-pallas,cupy,cupy-fused,cupy-raw
# -- 2. the comparison report on the GPU, one dtype per run (a run killed by its limit keeps the other) --
if wanted compare; then
    # The strategies mul_sum may pick (jax-sharded spreads over devices: one here);
    # the -auto adapters are measured in the next step, with the table these make.
    for dtype in float32 bfloat16; do
        step "compare-gpu-$dtype" 130 "$PYTHON" -m xbackend compare --quick --large --devices cuda,gpu \
            --adapters "$GPU_STRATEGIES" --dtypes "$dtype" --json "$OUT/compare-gpu-$dtype.json" >>"$OUT/run.log" 2>&1
    done
    # CuPy has no bfloat16: its 16-bit figures are float16.
    step compare-gpu-float16 60 "$PYTHON" -m xbackend compare --quick --large --devices cuda \
        --adapters cupy,cupy-fused,cupy-raw --dtypes float16 --json "$OUT/compare-gpu-float16.json" \
        >>"$OUT/run.log" 2>&1
    grep -E "^(==|  [a-z])|fastest|floor:" "$OUT/run.log" | tail -n 30
fi

# -- 2b. what mul_sum picks once the selection table holds these figures ----------------
# The GPU rows of the shipped table are made from the GPU reports (xbackend select).
# Where this pass measured them, the -auto adapters run with the table made from
# them, installed as this machine's tuned table (the dispatcher reads it first);
# otherwise with the shipped table, whose GPU rows come from the committed reports.
if wanted auto; then
    REPORTS=()
    for report in "$OUT"/compare-gpu-float32.json "$OUT"/compare-gpu-bfloat16.json "$OUT"/compare-gpu-float16.json; do
        [ -f "$report" ] && REPORTS+=(--from "$report")
    done
    TUNED=$("$PYTHON" -c "from xbackend.selection import tuned_table_path; print(tuned_table_path())")
    if [ ${#REPORTS[@]} -gt 0 ]; then
        mkdir -p "$(dirname "$TUNED")"
        step select-gpu 30 "$PYTHON" -m xbackend select "${REPORTS[@]}" --out "$TUNED" >>"$OUT/run.log" 2>&1
    else
        echo "== auto: no GPU report in this pass, the shipped table's GPU rows decide" | tee -a "$OUT/run.log"
    fi
    # The hand-written kernels as strategies, first: changed since the last pass
    # (torch-triton's rows per trip, cupy-raw's float16 unrolling) or new (jax-pallas),
    # so the table's GPU rows predate them. (CuPy has no bfloat16.)
    step compare-gpu-kernels 150 "$PYTHON" -m xbackend compare --quick --large --devices cuda,gpu \
        --adapters torch-triton,jax-pallas,cupy-raw --shapes square,tall-skinny,short-wide,column \
        --dtypes float32,bfloat16,float16 --json "$OUT/compare-gpu-kernels.json" >>"$OUT/run.log" 2>&1
    step compare-gpu-auto 210 "$PYTHON" -m xbackend compare --quick --large --devices cuda,gpu \
        --adapters torch-auto,jax-auto,cupy-auto --dtypes float32,bfloat16,float16 \
        --json "$OUT/compare-gpu-auto.json" >>"$OUT/run.log" 2>&1
    grep -E "^(==|  [a-z])|fastest|floor:" "$OUT/run.log" | tail -n 12
    rm -f "$TUNED"  # the history step measures with the shipped table, as every commit's results do
fi

# -- 4. the asv history grid's GPU cells of this commit ------------------------------------
if wanted asv; then
    # asv files results under a commit and reads its date from git: a device machine's
    # copy of the tree has no .git, so bring the history as a bundle
    # (git bundle create .gpu/repo.bundle HEAD) and unpack it here.
    # A device's copy may also carry a .git whose HEAD is another commit (seen on an
    # H200: the session's first commit under a later tree), and asv would file the
    # results under it. So the bundle decides: HEAD is pointed at its commit (the
    # files stay as copied; the index is rebuilt from it) after checking that the
    # tracked files are that commit's.
    if [ -f .gpu/repo.bundle ]; then
        git rev-parse --git-dir >/dev/null 2>&1 || git init -q
        # Fetched into a ref no branch checks out, and HEAD detached at it: git refuses to
        # fetch into the checked-out branch, which a second call on a warm machine would be.
        if git fetch -q --force .gpu/repo.bundle "+HEAD:refs/xbackend/bundle" \
            && git update-ref --no-deref HEAD refs/xbackend/bundle \
            && git reset -q HEAD && git diff --quiet -- xbackend benchmarks asv.conf.json setup.cfg pyproject.toml; then
            echo "asv commit: $(git rev-parse HEAD) (from .gpu/repo.bundle)" | tee -a "$OUT/run.log"
        else
            echo "== asv-history: skipped, the tree is not the bundle's commit $(git rev-parse refs/xbackend/bundle 2>/dev/null)" | tee -a "$OUT/run.log"
            STEPS=${STEPS/,asv,/,}
        fi
    fi
    if ! wanted asv; then
        :
    elif ! git rev-parse --verify -q HEAD >/dev/null 2>&1; then
        echo "== asv-history: skipped, no git history here (carry .gpu/repo.bundle)" | tee -a "$OUT/run.log"
    elif "$PYTHON" -c "import asv, asv_runner" 2>/dev/null; then
        "$PYTHON" benchmarks/asv_machine.py --frameworks >>"$OUT/run.log" 2>&1
        MACHINE=$(sed -n 's/^machine: //p' "$OUT/run.log" | tail -n 1)
        # One asv run per kind (track figures first), each saved as it ends: a run cut
        # by the limit keeps the kinds that finished.
        step asv-history 330 "$PYTHON" benchmarks/history.py --existing --devices cuda --machine "$MACHINE" \
            --kinds "${ASV_KINDS:-track,time}" >>"$OUT/run.log" 2>&1
        tar -czf "$OUT/asv-results.tgz" -C .asv/results . 2>>"$OUT/run.log"
        tail -n 5 "$OUT/run.log"
    else
        echo "== asv-history: skipped, asv is not importable (carry .whl/ and set PYTHONPATH)" | tee -a "$OUT/run.log"
    fi
fi

# -- 3. the same on the host's cores, with thread scaling: what mul_sum picks there ------
if wanted host; then
    step compare-host 110 "$PYTHON" -m xbackend compare --quick --devices cpu --scaling \
        --adapters numpy,numpy-auto,torch-eager,torch-auto,jax-jit,jax-auto --json "$OUT/compare-host.json" \
        >>"$OUT/run.log" 2>&1
fi

echo "== done in $((SECONDS - START))s (deadline ${DEADLINE}s); outputs in $OUT:"
ls -l "$OUT"
exit $STATUS
