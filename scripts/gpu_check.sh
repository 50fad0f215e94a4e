#!/usr/bin/env bash
# Issue 14's GPU checks, as one prepared run for a session that is lent a CUDA machine (the `device` tool):
#
#     run(command="bash scripts/gpu_check.sh", timeout_s=540)
#
# About 5 minutes on an H100/H200-class GPU, in the machine's own python3 (it has torch, transformers, scipy and
# pytest; nothing is installed). Writes everything to $OUT/gpu_check.log (artifacts/ when OUT is unset):
#   1. the tests that run on CUDA (CUDA-graph replay against eager, bf16 detection, the sampling maths);
#   2. bench_batching at 1000 steps, audio-only guidance: one clip's real-time factor (target <= 0.15) and 8 clips
#      per forward aggregated (target >= 50x real time), with CUDA graphs, without them, and in bf16; then 2 clips
#      with emotion guidance;
#   3. bench_guidance: the emotion gradient's cost per guided step on the GPU.
# A dry run of the same commands on a CPU, a few steps each, checks the script itself:
#     PYTHON=.venv/backend/bin/python DEVICE=cpu STEPS=3 bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT:-artifacts}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-1000}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD

section() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

{
    section "machine"
    nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

    section "tests that run on CUDA"
    timeout 180 "$PY" -m pytest -q -p no:cacheprovider tests/backend/test_cuda_graphs.py \
        tests/backend/test_precision.py tests/backend/test_sampling.py -k "not reference"

    # Audio-only guidance (CFG) for the targets; emotion guidance separately, on 2 clips (its eager gradient is
    # launch-bound on a GPU and would make the 8-clip runs too long for one lease).
    section "1 and 8 clips per forward, fp32, CUDA graphs"
    timeout 150 "$PY" bench/bench_batching.py --device "$DEVICE" --steps "$STEPS" --clips 8 --batches 8 --repeats 1 \
        --no-emotion
    section "1 and 8 clips per forward, fp32, no CUDA graphs"
    EXPGEST_CUDA_GRAPHS=0 timeout 150 "$PY" bench/bench_batching.py --device "$DEVICE" --steps "$STEPS" --clips 8 \
        --batches 8 --repeats 1 --no-emotion
    section "1 and 8 clips per forward, bf16, CUDA graphs"
    timeout 150 "$PY" bench/bench_batching.py --device "$DEVICE" --steps "$STEPS" --clips 8 --batches 8 \
        --repeats 1 --no-emotion --precision bf16
    section "1 and 2 clips per forward with emotion guidance, fp32, CUDA graphs"
    timeout 150 "$PY" bench/bench_batching.py --device "$DEVICE" --steps "$STEPS" --clips 2 --batches 2 --repeats 1

    section "emotion guidance per step"
    timeout 60 "$PY" bench/bench_guidance.py --device "$DEVICE" --repeats 20
    section "end"
} 2>&1 | tee "$OUT_DIR/gpu_check.log"
