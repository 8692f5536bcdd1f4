#!/usr/bin/env bash
# GPU check: run on a lent GPU machine (no internet) from the repository root.
# Runs the GPU-marked tests and the benchmark suites on CUDA in one call and
# writes everything to $OUT (default ./out): gpu-tests.log, bench.log,
# results.tgz (benchmarks/results/*.json measured on this GPU), nvidia-smi.txt.
#
# Missing Python packages travel as wheels in .whl/ (see docs/GPU.md):
#   bash scripts/gpu_check.sh [--tests-only|--bench-only] [SUITE...]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-$PWD/out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
mode=all
case "${1:-}" in --tests-only) mode=tests; shift;; --bench-only) mode=bench; shift;; esac

if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >"$OUT/pip.log" 2>&1 \
    || { echo "wheel install failed"; tail -5 "$OUT/pip.log"; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 IRONWAVE_CACHE_DIR=/tmp/ironwave-cache

nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true
"$PY" - <<'PYEOF' | tee "$OUT/env.txt"
import torch, sys
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)
print("device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "NO CUDA")
PYEOF

rc=0
if [ "$mode" != bench ]; then
  echo "== GPU tests"
  timeout "${GPU_TEST_TIMEOUT:-300}" "$PY" -m pytest -m gpu -q -p no:cacheprovider -o addopts="--import-mode=importlib -ra" --timeout 240 ${GPU_TEST_PATHS:-tests} 2>&1 | tee "$OUT/gpu-tests.log"
  rc=${PIPESTATUS[0]}
fi
if [ "$mode" != tests ]; then
  echo "== benchmarks on cuda"
  rm -rf /tmp/bench-results && mkdir -p /tmp/bench-results
  timeout "${GPU_BENCH_TIMEOUT:-420}" "$PY" benchmarks/run.py --device cuda --out /tmp/bench-results "$@" 2>&1 | tee "$OUT/bench.log"
  tar -czf "$OUT/results.tgz" -C /tmp/bench-results . 2>/dev/null
fi
exit $rc
