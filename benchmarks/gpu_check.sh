#!/usr/bin/env bash
# The GPU check: run it on a machine with an NVIDIA GPU, then record what it prints in BENCHMARKS.md.
#
# In under 5 minutes on one GPU it:
#   1. trains a small supernet on CUDA (digits, 2 epochs, bf16/fp16 as the card allows) and searches 12
#      candidates with latency measured by ONNX Runtime's CUDA execution provider and energy by NVML
#      (profile local-cuda), exporting the Pareto front;
#   2. re-exports one front model with `hwnas export` (the checkpoint is read back from the run);
#   3. runs benchmark (g), training throughput, on the GPU at 32x32 and 224x224;
#   4. runs the tests marked gpu or nvml;
#   5. prints a summary in which every figure names how it was obtained.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (default OUT_DIR: benchmarks/out/gpu-check)
#
# Without a GPU it stops at once with one line and exit status 2.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
HWNAS=${HWNAS:-.venv/bin/hwnas}
OUT=${1:-benchmarks/out/gpu-check}
RUN=gpu-check-$(date +%Y%m%d-%H%M%S)

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: no CUDA GPU visible to torch here ($("$PY" -c 'import torch; print("torch", torch.__version__)' 2>/dev/null || echo 'torch missing')); run this on a machine with an NVIDIA GPU" >&2
    exit 2
fi
mkdir -p "$OUT"
LOG="$OUT/$RUN.log"
echo "gpu_check: writing the full output to $LOG"
{
    echo "## machine"; date -u +%Y-%m-%dT%H:%M:%SZ; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
    lscpu | head -15
    "$PY" -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers())'
} >"$LOG" 2>&1

echo "gpu_check: 1/4 search on CUDA (train on cuda, measure with local-cuda)"
"$HWNAS" search --device cuda --profile local-cuda --objectives error,latency_ms,energy_mj \
    --epochs 2 --trials 12 --out "$OUT" --name "$RUN" >>"$LOG" 2>&1

echo "gpu_check: 2/4 re-export one front model"
ID=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["models"][0]["id"])' "$OUT/$RUN/pareto.json")
"$HWNAS" export "$OUT/$RUN" --id "$ID" --out "$OUT/$RUN/reexported.onnx" >>"$LOG" 2>&1

echo "gpu_check: 3/4 training throughput (g) at 32x32 and 224x224"
"$PY" benchmarks/throughput.py --training --device cuda --image-size 32 --out "$OUT" >"$OUT/$RUN.g32.md" 2>>"$LOG"
"$PY" benchmarks/throughput.py --training --device cuda --image-size 224 --batch-size 64 --rounds 3 --steps 5 \
    --out "$OUT" >"$OUT/$RUN.g224.md" 2>>"$LOG"

echo "gpu_check: 4/4 tests marked gpu or nvml"
set +e
"$PY" -m pytest -q -m "gpu or nvml" tests >"$OUT/$RUN.pytest.txt" 2>&1
TESTS=$?
set -e

"$PY" benchmarks/gpu_check.py "$OUT/$RUN" --pytest "$OUT/$RUN.pytest.txt" --pytest-status "$TESTS" \
    --throughput "$OUT/$RUN.g32.md" "$OUT/$RUN.g224.md" | tee "$OUT/$RUN.summary.md"
exit "$TESTS"
