#!/usr/bin/env bash
# One prepared session on a lent GPU machine (see the device tool): `small` (continued from the
# shipped weights) trained for TRAIN_MINUTES (bf16 autocast) on the TRAIN_TASKS mix, EMA weights
# and metrics written to $OUT every two minutes, with the CUDA tests run beside the training.
# GPU_SPEED=1 first times the GPU (reference, fp32, bf16, fp16) and a 12 MP photo through
# `measr restore` on CUDA (done 2026-11-27, docs/performance.md); TRAIN_FULL=1 trains `full`
# from scratch beside `small`. Expects the data carried in .device/data (bsd400/ and a val/
# subset).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
minutes=${TRAIN_MINUTES:-7.5}
export TRAIN_TASKS=${TRAIN_TASKS:-five}
data=.device/data
# The CLI without installing (nothing can be fetched there); a file, so `timeout` can run it.
printf 'import sys\nfrom measr.cli.app import main\nsys.argv[0] = "measr"\nmain()\n' > /tmp/measr_cli.py
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ "${GPU_SPEED:-0}" = 1 ]; then
  timeout 70 python3 scripts/device/gpu_speed.py 45 2>&1 | tee "$OUT/gpu_speed.txt"
  python3 -c "import cv2; cv2.imwrite('/tmp/p12.png', cv2.resize(cv2.imread('$data/val/kodak24/clean/kodim01.png'), (4000, 3000), interpolation=cv2.INTER_CUBIC))"
  for flags in "" "--half"; do
    echo "measr restore 4000x3000 --device cuda $flags" | tee -a "$OUT/gpu_speed.txt"
    { time timeout 60 python3 /tmp/measr_cli.py restore /tmp/p12.png -o /tmp/o12.png --overwrite \
        --device cuda $flags; } 2>&1 \
      | tail -n 8 | tee -a "$OUT/gpu_speed.txt"
  done
fi
python3 scripts/device/train_timed.py small "$minutes" 64 2e-4 "$data" "$OUT" \
  weights/small-5task.safetensors > "$OUT/small.log" 2>&1 &
# `small` has the GPU alone by default (88 patches/s at batch 24 alone, against 42 beside
# `full`): 6.5 minutes of `full` from scratch ended behind `small` on every validation set
# (2026-11-27), and its 63 MB of fp16 weights exceed what one file from $OUT may be (16 MiB)
# and would push the repository past the device tool's 64 MiB working tree.
if [ "${TRAIN_FULL:-0}" = 1 ]; then
  python3 scripts/device/train_timed.py full "$minutes" 16 3e-4 "$data" "$OUT" > "$OUT/full.log" 2>&1 &
fi
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py -o addopts="" 2>&1 \
  | tail -n 5 | tee "$OUT/cuda_tests.txt"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
wait
tail -n 3 "$OUT"/*.log
