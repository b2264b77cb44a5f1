#!/usr/bin/env bash
# One-shot GPU check of the fast training pipeline (issue 6), sized for a 10-minute slot on one GPU:
#   1. the throughput benchmark at full size (ResNet-50 at 224, RAF-DB-sized synthetic set, 3 rounds);
#   2. the CUDA smoke stages (fp32 equivalence, train + resume, sync count, torch.compile).
# Needs python3 with a CUDA build of torch, numpy, pyyaml, tqdm and opencv (no install: runs from src/).
#   OUT=gpu_results bash benchmarks/gpu_check.sh
# Then copy the figures of $OUT/throughput.log into benchmarks/RESULTS.md ("Training throughput → GPU").
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1
{ nvidia-smi; python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; } >"$OUT/env.txt" 2>&1
rc=0
timeout 330 python3 benchmarks/train_throughput.py --device cuda --repeats 3 --json-out "$OUT/throughput.json" \
  2>&1 | tee "$OUT/throughput.log" || rc=1
timeout 220 python3 benchmarks/cuda_smoke.py --json-out "$OUT/smoke.json" 2>&1 | tee "$OUT/smoke.log" || rc=1
echo "gpu_check: exit $rc (results in $OUT)"
exit $rc
