#!/usr/bin/env bash
# The GPU checks in one run, for a lent GPU machine that already has CuPy (the wheel for its CUDA: see the
# README), pytest, and optionally PyTorch and pytest-timeout. It installs nothing (no pip): a second CuPy
# wheel beside the right one breaks `import cupy`, so it only reports which are installed.
#   1. gpu_env.txt: date, nvidia-smi, the installed cupy* distributions, cupy.show_config(), the CUDA
#      include folder NVRTC gets for mma.h. Stops here (exit 2) if CuPy sees no GPU.
#   2. The tests, CPU-only work left out (CI runs it): first the NVRTC tests (`-k nvrtc`: all five kernels
#      compile as CuPy compiles them, and without mma.h the -DDDPM_NO_TC fallback does), then the GPU
#      tests (`-m gpu`: parity with the reference on the device for both sampler and both training kernels,
#      both kinds of draws, batch 10,000 = several tiles per block, H = 256 with weights in global memory,
#      in-kernel noise statistics, determinism). `-k gpu` would not do: it matches the module's name.
#      JUnit XML and logs into the output folder; a per-test limit where pytest-timeout is installed.
#   3. The build report, appended to gpu_env.txt: for H = 16, 128, 256 the compile options, whether the
#      tensor-core kernels compiled, and each kernel's registers and local memory (num_regs,
#      local_size_bytes: spills) from CuPy's RawKernel attributes (the modules come from CuPy's cache).
#   4. The benchmark, benchmarks/gpu_bench.py (its rows are written as they are measured).
# Results go to $OUT when set (the device tool's output folder), else benchmarks/results/.
#
#     bash benchmarks/gpu_check.sh                 # everything
#     bash benchmarks/gpu_check.sh --quick         # arguments other than the two below go to gpu_bench.py
#     bash benchmarks/gpu_check.sh --tests-only    # or --bench-only: a rerun of one half
#
# Budget: every step runs under a hard limit, so the script ends within 7 minutes (420 s) whatever
# happens; expected about 3 minutes. Limits (expected):
#   1 environment    30 s  (~5 s)
#   2 NVRTC tests    60 s  (~5 s: measured on the 2-core development machine with cupy-cuda13x 14.2 and
#                           NVRTC 13.0: collection 1.5 s, six compiles to PTX 3 s)
#     GPU tests     150 s  (~60 s: 28 tests. CPU side measured on the development machine, 2 loaded
#                           cores: collection 1.5 s, the references 16-20 s (each computed once for both
#                           kernels), the Numba sampler's cold JIT and the KS test 4-5 s: 21-24 s in all.
#                           Device side estimated: four NVRTC + ptxas builds (H = 16, 32, 128, 256; nvcc
#                           takes 2-5 s each there), CUDA start-up, kernels of milliseconds); per test 90 s
#   3 build report   30 s  (~5 s: modules from CuPy's kernel cache)
#   4 benchmark     150 s  (~90 s, estimated; pass --quick for about a third)
# A lent machine's 15 device-minutes then hold its start, one full run and a rerun (--tests-only or
# --bench-only on the warm machine; compiled kernels stay cached). gpu_env.txt ends with each step's
# exit status and seconds, to set these limits from measurements after the first run.
set -uo pipefail
cd "$(dirname "$0")/.."
dest=${OUT:-benchmarks/results}
mkdir -p "$dest"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
env_txt="$dest/gpu_env.txt"
run_tests=1 run_bench=1 bench_args=()
for a in "$@"; do
  case "$a" in
    --tests-only) run_bench=0 ;;
    --bench-only) run_tests=0 ;;
    *) bench_args+=("$a") ;;
  esac
done
steps=()
step_done() {                      # step_done NAME RC START_SECONDS
  steps+=("$1: exit $2, $(( SECONDS - $3 )) s")
}
# a limit that pytest and gpu_bench.py notice: SIGINT first (pytest still writes its JUnit XML and summary,
# the benchmark keeps the rows it has written), SIGKILL 15 s later if Python is stuck in C (a CUDA sync)
limited() { timeout -s INT -k 15 "$@"; }

# 1. environment
t0=$SECONDS
{
  date -u
  nvidia-smi 2>&1 || echo "nvidia-smi not found"
  limited 30 python3 - <<'EOF' 2>&1
import importlib.metadata as md
names = sorted({d.metadata["Name"] for d in md.distributions() if (d.metadata["Name"] or "").lower().startswith("cupy")})
print("installed cupy distributions:", ", ".join(names) or "none")
if len(names) > 1:
    print("WARNING: more than one CuPy wheel is installed; they share the cupy package and break each other."
          " Keep only the one for this machine's CUDA (README, 'The GPU backend').")
import numpy
print("numpy", numpy.__version__)
try:
    import cupy
    print("cupy", cupy.__version__)
    cupy.show_config()
except Exception as e:                                   # reported, the status line below says what follows
    print("cupy import failed:", type(e).__name__, e)
from ddpm_fast import gpu
print("cuda include dirs (mma.h):", gpu.cuda_include_dirs() or "none found")
print("kernel source hash:", gpu.source_hash())
print("cupy backend:", gpu.gpu_status() or "ready")
EOF
} > "$env_txt"
env_rc=$?
step_done environment $env_rc $t0
cat "$env_txt"
if ! grep -q "^cupy backend: ready" "$env_txt"; then
  echo "gpu_check: the cupy backend cannot run here (see $env_txt); nothing else run" | tee -a "$env_txt"
  printf '%s\n' "${steps[@]}" >> "$env_txt"
  exit 2
fi

tests_rc=0 report_rc=0 bench_rc=0
if (( run_tests )); then
  # 2. tests: per-test limit where pytest-timeout is installed (the run still works without it)
  per_test=()
  if python3 -c "import pytest_timeout" 2>/dev/null; then
    per_test=(--timeout=90)
  else
    echo "pytest-timeout not installed: no per-test limit, only the step's" | tee -a "$env_txt"
  fi
  # -v: a line per test in the log as it ends, which survives a kill (the JUnit XML is written at the end)
  pytest_args=(-v -p no:cacheprovider -ra "${per_test[@]}")
  t0=$SECONDS
  limited 60 python3 -m pytest "${pytest_args[@]}" -k nvrtc --junitxml="$dest/gpu_tests_nvrtc.xml" \
    tests/test_gpu.py 2>&1 | tee "$dest/gpu_tests_nvrtc.log"
  nvrtc_rc=${PIPESTATUS[0]}
  step_done "NVRTC tests" $nvrtc_rc $t0
  t0=$SECONDS
  limited 150 python3 -m pytest "${pytest_args[@]}" -m gpu --junitxml="$dest/gpu_tests.xml" \
    tests/test_gpu.py 2>&1 | tee "$dest/gpu_tests.log"
  gpu_rc=${PIPESTATUS[0]}
  step_done "GPU tests" $gpu_rc $t0
  tests_rc=$(( nvrtc_rc != 0 || gpu_rc != 0 ))

  # 3. build report
  t0=$SECONDS
  echo "--- build (ddpm_fast.gpu.build_report)" >> "$env_txt"
  limited 30 python3 -c "from ddpm_fast import gpu; print(gpu.build_report((16, 128, 256)))" >> "$env_txt" 2>&1
  report_rc=$?
  step_done "build report" $report_rc $t0
fi

if (( run_bench )); then
  # 4. benchmark
  t0=$SECONDS
  limited 150 python3 benchmarks/gpu_bench.py --out "$dest/gpu_bench" "${bench_args[@]}" 2>&1 \
    | tee "$dest/gpu_bench.log"
  bench_rc=${PIPESTATUS[0]}
  step_done benchmark $bench_rc $t0
fi

{
  echo "--- steps (exit 124 or 137: stopped at its limit)"
  printf '%s\n' "${steps[@]}"
  echo "total: ${SECONDS} s"
} | tee -a "$env_txt"
exit $(( tests_rc != 0 || report_rc != 0 || bench_rc != 0 ))
