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
# (52 MB; bench_data/ is git-ignored). MINUTES (default 5) sets the training budget; DOWNSCALE
# (default 1) the image size (a CPU dry run of the whole script: MINUTES=0.3 DOWNSCALE=8; without
# a GPU the results are named *_dryrun, so the committed GPU results stay). Results and
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
    timeout -k 5 60 python -m pytest -q -p no:cacheprovider tests/test_march_rays.py tests/test_composite_packed.py \
        tests/test_hash_encode.py -k "(gpu or cuda) and not compiled" 2>&1 | tail -15 | tee "$OUT/parity.txt"
else
    echo "pytest missing: parity tests not run" | tee "$OUT/parity.txt"
fi
NAME=ngp_lego_gpu KNAME=kernels_gpu
if ! grep -q "cuda True" "$OUT/gpu.txt"; then  # no GPU: a dry run, kept apart from the committed results
    NAME=ngp_lego_gpu_dryrun KNAME=kernels_gpu_dryrun
fi
cd benchmarks
echo "benchmark: $(left) s left" | tee -a "$OUT/gpu.txt"
# SIGTERM asks the trainer to stop after its current step or evaluation; -k kills it 20 s later
timeout -k 20 "$(( $(left) - 35 ))" python bench_ngp_lego.py --data ../bench_data/lego --downscale "${DOWNSCALE:-1}" \
    --minutes "${MINUTES:-5}" --eval-at 15,60,180 --test-every 5 --profile-at 1000 --name "$NAME" --quiet \
    2>&1 | tail -60 | tee "$OUT/bench.txt"
fresh() { [ -f "$1" ] && [ "$1" -nt "$OUT/gpu.txt" ]; }  # written by this call, not the committed copy
if fresh "results/$NAME.json"; then cp "results/$NAME.json" "$OUT/"; else echo "benchmark did not finish" | tee -a "$OUT/bench.txt"; fi
if [ "$(left)" -gt 25 ]; then
    timeout -k 5 "$(( $(left) - 10 ))" python bench_kernels_gpu.py --name "$KNAME" 2>&1 | tail -80 > "$OUT/kernels.txt"
    if fresh "results/$KNAME.json"; then cp "results/$KNAME.json" "$OUT/"; fi
else
    echo "no time left for bench_kernels_gpu.py" | tee "$OUT/kernels.txt"
fi
echo "done after $SECONDS s" | tee -a "$OUT/gpu.txt"
