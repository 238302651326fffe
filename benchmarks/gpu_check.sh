#!/usr/bin/env bash
# The GPU checks in one run (a fresh machine with a GPU, CuPy and pytest; PyTorch optional):
#   1. the GPU tests (parity with the reference, in-kernel noise statistics, determinism), and the
#      emulator and nvcc tests beside them;
#   2. the GPU benchmark (benchmarks/gpu_bench.py).
# Results go to $OUT when set (the device tool's output folder), else benchmarks/results/.
# Budget: under 5 minutes (tests ~1-2 min, benchmark ~2-3 min).
#     bash benchmarks/gpu_check.sh            # or: bash benchmarks/gpu_check.sh --quick
set -uo pipefail
cd "$(dirname "$0")/.."
dest=${OUT:-benchmarks/results}
mkdir -p "$dest"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{
  date -u
  nvidia-smi -L 2>&1 || echo "nvidia-smi not found"
  python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" 2>&1
} | tee "$dest/gpu_env.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$dest/gpu_tests.log"
tests_rc=${PIPESTATUS[0]}
timeout 240 python3 benchmarks/gpu_bench.py --out "$dest/gpu_bench" "$@" 2>&1 | tee "$dest/gpu_bench.log"
bench_rc=${PIPESTATUS[0]}
echo "gpu tests exit $tests_rc, gpu benchmark exit $bench_rc" | tee -a "$dest/gpu_env.txt"
exit $(( tests_rc != 0 || bench_rc != 0 ))
