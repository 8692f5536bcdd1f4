#!/usr/bin/env bash
# Nsight Compute stall reasons + SASS opcode mix of the CUDA resample kernel variants (exploration).
# Usage on the GPU machine: bash scripts/prof_resample.sh VARIANT...   (see benchmarks/explore/resample_prof.py)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-$PWD/out}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
for v in "$@"; do
  export TRITON_CACHE_DIR=/tmp/tc-$v
  rm -rf "$TRITON_CACHE_DIR"
  python3 benchmarks/explore/resample_prof.py "$v" || continue
  for f in $(find "$TRITON_CACHE_DIR" -name '*kernel*.cubin'); do
    echo "== $v $(basename "$f")"
    cuobjdump -res-usage "$f" 2>/dev/null | grep -i "REG" | head -2
    cuobjdump -sass "$f" | grep -oE '^ +/\*[0-9a-f]{4}\*/ +(@!?U?P[0-9T]+ +)?[A-Z][A-Z0-9_]+' | awk '{print $NF}' \
      | sort | uniq -c | sort -rn | head -22 | tr '\n' ' '; echo
  done
  timeout 240 ncu --kernel-name regex:'_resample_kernel|_tma_kernel' --launch-skip 2 --launch-count 1 \
    --section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis --section Occupancy \
    --section MemoryWorkloadAnalysis python3 benchmarks/explore/resample_prof.py "$v" > "$OUT/ncu-$v.txt" 2>&1
  timeout 200 ncu --kernel-name regex:'_resample_kernel|_tma_kernel' --launch-skip 2 --launch-count 1 \
    --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,regex:sm__pipe_.*(tensor|gmma|fma|alu).*cycles_active\.avg\.pct_of_peak_sustained_active,regex:sm__inst_executed_pipe_.*\.sum$' \
    python3 benchmarks/explore/resample_prof.py "$v" > "$OUT/ncu-metrics-$v.txt" 2>&1
  grep -vE " 0$| 0(\.0+)?$|^==PROF" "$OUT/ncu-metrics-$v.txt" | grep -E "stalled|pipe" | sort -k3 -rn | head -30
  grep -E "Duration|Registers|Achieved Occupancy|Stall|stall|Issue Slots|Tensor|Pipe|Warp Cycles|Eligible|No Eligible|Throughput" "$OUT/ncu-$v.txt" | head -40
done
