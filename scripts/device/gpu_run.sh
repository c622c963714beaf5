#!/usr/bin/env bash
# One prepared session on a lent GPU machine (see the device tool): CUDA tests, GPU speed, then
# `small` and `full` trained side by side for TRAIN_MINUTES each (bf16 autocast), EMA weights
# and metrics written to $OUT as they go. Expects the data carried in .device/data.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
minutes=${TRAIN_MINUTES:-6.5}
data=.device/data
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py -o addopts="" 2>&1 | tail -4
timeout 90 python3 scripts/device/gpu_speed.py 2>&1 | tee "$OUT/gpu_speed.txt"
python3 scripts/device/train_timed.py small "$minutes" 24 3e-4 "$data" "$OUT" > "$OUT/small.log" 2>&1 &
python3 scripts/device/train_timed.py full "$minutes" 8 2e-4 "$data" "$OUT" > "$OUT/full.log" 2>&1 &
sleep 90; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
wait
tail -n 3 "$OUT/small.log" "$OUT/full.log"
