#!/usr/bin/env bash
# One call on a lent GPU machine, under 8 minutes in all (TOTAL_SECONDS, default 470):
#   1. the fast kernels' GPU parity tests (at most 60 s);
#   2. the 5-minute lego 800x800 benchmark, profiling training steps 1000..1020 on the way
#      (device busy time, kernel launches and host syncs per step: "step_profile" in its JSON);
#   3. with the time left, every hot kernel per backend (Triton / torch.compile / reference).
#
#   device run (carry ["bench_data"], timeout_s 500):  bash benchmarks/gpu_check.sh
#
# Needs bench_data/lego: train/, test/ and transforms_{train,test}.json of nerf_synthetic/lego
# (52 MB; bench_data/ is git-ignored). MINUTES (default 5) sets the training budget. Results and
# logs go to $OUT (the device tool's output folder) and benchmarks/results/ngp_lego_gpu.json and
# benchmarks/results/kernels_gpu.json.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/nerfkit-gpu-check}"
TOTAL="${TOTAL_SECONDS:-470}"
mkdir -p "$OUT"
left() { echo $(( TOTAL - SECONDS )); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
python -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.cuda.is_available()); \
import importlib.util as u; print('triton', u.find_spec('triton') is not None)" 2>&1 | tee -a "$OUT/gpu.txt"
if python -c "import pytest" 2>/dev/null; then
    # the GPU parity tests of the Triton kernels (march, composite, hash encoding) and the CUDA reference
    timeout 60 python -m pytest -q -p no:cacheprovider tests/test_march_rays.py tests/test_composite_packed.py \
        tests/test_hash_encode.py -k "(gpu or cuda) and not compiled" 2>&1 | tail -15 | tee "$OUT/parity.txt"
else
    echo "pytest missing: parity tests not run" | tee "$OUT/parity.txt"
fi
cd benchmarks
echo "benchmark: $(left) s left" | tee -a "$OUT/gpu.txt"
timeout "$(( $(left) - 15 ))" python bench_ngp_lego.py --data ../bench_data/lego --downscale 1 \
    --minutes "${MINUTES:-5}" --eval-at 15,60,180 --test-every 5 --profile-at 1000 --name ngp_lego_gpu --quiet \
    2>&1 | tail -60 | tee "$OUT/bench.txt"
fresh() { [ -f "$1" ] && [ "$1" -nt "$OUT/gpu.txt" ]; }  # written by this call, not the committed copy
if fresh results/ngp_lego_gpu.json; then cp results/ngp_lego_gpu.json "$OUT/"; else echo "benchmark did not finish" | tee -a "$OUT/bench.txt"; fi
if [ "$(left)" -gt 25 ]; then
    timeout "$(( $(left) - 5 ))" python bench_kernels_gpu.py 2>&1 | tail -80 > "$OUT/kernels.txt"
    if fresh results/kernels_gpu.json; then cp results/kernels_gpu.json "$OUT/"; fi
else
    echo "no time left for bench_kernels_gpu.py" | tee "$OUT/kernels.txt"
fi
echo "done after $SECONDS s" | tee -a "$OUT/gpu.txt"
