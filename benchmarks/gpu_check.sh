#!/usr/bin/env bash
# One call on a lent GPU machine: the fast kernels' GPU parity tests, the 5-minute Lego benchmark,
# a profile of 20 training steps (where the step time goes), then each kernel per backend.
#
#   device run (carry ["bench_data"]):  bash benchmarks/gpu_check.sh
#
# Needs bench_data/lego: train/, test/ and transforms_{train,test}.json of nerf_synthetic/lego
# (52 MB; bench_data/ is git-ignored). MINUTES (default 5) sets the training budget; results and
# logs go to $OUT (the device tool's output folder) and benchmarks/results/ngp_lego_gpu.json,
# benchmarks/results/ngp_step_profile_gpu.json, benchmarks/results/kernels_gpu.json.
# Timeouts: 80 s tests + 400 s benchmark + 60 s profile + 60 s kernels = 600 s (run it with timeout_s 600).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/nerfkit-gpu-check}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
python -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.cuda.is_available()); \
import importlib.util as u; print('triton', u.find_spec('triton') is not None)" 2>&1 | tee -a "$OUT/gpu.txt"
if python -c "import pytest" 2>/dev/null; then
    # the GPU parity tests of the Triton kernels (march, composite, hash encoding) and the CUDA reference
    timeout 80 python -m pytest -q -p no:cacheprovider tests/test_march_rays.py tests/test_composite_packed.py \
        tests/test_hash_encode.py -k "(gpu or cuda) and not compiled" 2>&1 | tail -15 | tee "$OUT/parity.txt"
else
    echo "pytest missing: parity tests not run" | tee "$OUT/parity.txt"
fi
cd benchmarks
timeout "${BENCH_TIMEOUT:-400}" python bench_ngp_lego.py --data ../bench_data/lego --downscale 1 \
    --minutes "${MINUTES:-5}" --eval-at 15,60,180 --test-every 5 --name ngp_lego_gpu --quiet 2>&1 | tail -40 \
    | tee "$OUT/bench.txt"
cp results/ngp_lego_gpu.json "$OUT/" 2>/dev/null || true
timeout "${PROFILE_TIMEOUT:-60}" python profile_ngp_step.py --data ../bench_data/lego --downscale 1 --steps 300 \
    --window 20 --name ngp_step_profile_gpu 2>&1 | tail -60 > "$OUT/profile.txt"
cp results/ngp_step_profile_gpu.json "$OUT/" 2>/dev/null || true
timeout "${KERNELS_TIMEOUT:-60}" python bench_kernels_gpu.py 2>&1 | tail -80 > "$OUT/kernels.txt"
cp results/kernels_gpu.json "$OUT/" 2>/dev/null || true
