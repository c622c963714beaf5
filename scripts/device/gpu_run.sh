#!/usr/bin/env bash
# The one prepared script for a lent GPU machine (the device tool's `run`). Run from the
# repository root with the device tool's $OUT set:
#
#   scripts/device/gpu_run.sh [MINUTES]        (training time budget, default 5.5: with the
#                                               benchmark's 3 minutes at most, one 10-min call)
#
# 1. times the whole training loop of `small` and `full` at 128 px against a bf16 matrix product
#    (benchmarks/train_throughput.py; BENCH=0 skips it), into $OUT/throughput.json;
# 2. trains CONFIG (small) with the prompt's supervision (PROMPT_WEIGHT), bf16, fused AdamW and
#    degradation on the device, for MINUTES, writing the EMA weights, metrics and validation
#    scores to $OUT every SAVE_MINUTES (scripts/device/train_timed.py): by default it continues
#    the long run from long-run/ (below); INIT=default starts from the default weights instead.
#
# Data: the device machine sees only the repository, not ../shared: first, on the CPU,
# scripts/device/prepare_data.sh copies the training photos and a validation subset into
# .device/data (ignored by git; name `.device` in the run's carry). Back on the CPU,
# scripts/device/ship_back.sh DIR NAME exports the weights and applies the ship rule.
# The learning rate is LR at batch LR_REFERENCE_BATCH, scaled by sqrt(BATCH / that).
# BENCH_BATCHES=64,128,256 times those batch sizes first (an out-of-memory one is reported as
# such): the largest batch whose patches/s still grows is the BATCH of the next call.
# BENCH_DEGRADE=device,host also times the loop with numpy degrading in the loader workers.
# CONFIG=full trains `full` instead (its fp16 weights come back in four parts under 16 MiB).
# What comes back stays within the tool's eight files: throughput.json, CONFIG.log, and
# CONFIG_{metrics,scores}.jsonl beside the weights.
# tests/test_gpu_script.py runs this script on the CPU (DEVICE=cpu CONFIG=tiny STEPS=2).
set -euo pipefail
: "${OUT:?set OUT to the folder that comes back}"
minutes=${1:-5.5}
config=${CONFIG:-small}
device=${DEVICE:-cuda}
data=${DATA:-.device/data}
python=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
# Unless INIT is given, the GPU continues the long run (docs/training.md): from the committed
# hand-off's weights, with its task mix, rate (at its batch, scaled to BATCH) and prompt weight;
# back on the CPU, `scripts/long_run.sh adopt FILES_AT` makes what comes back the run's.
handoff_setting() {
  "$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["settings"][sys.argv[2]])' \
    long-run/state.json "$1"
}
if [ -z "${INIT+set}" ] && [ -f long-run/ema.safetensors ] \
    && [ "$config" = "$(handoff_setting config)" ]; then
  INIT=long-run/ema.safetensors
  TASKS=${TASKS:-$(handoff_setting tasks)}
  LR=${LR:-$(handoff_setting lr)}
  LR_REFERENCE_BATCH=${LR_REFERENCE_BATCH:-$(handoff_setting batch)}
  PROMPT_WEIGHT=${PROMPT_WEIGHT:-$(handoff_setting prompt_weight)}
  echo "continuing the long run from long-run/ (tasks $TASKS, lr $LR at batch $LR_REFERENCE_BATCH)"
fi
if [ ! -d "$data/train" ] || [ ! -d "$data/val" ]; then
  echo "no $data/train or $data/val: run scripts/device/prepare_data.sh and carry .device" >&2
  exit 2
fi
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
if [ "${BENCH:-1}" = 1 ]; then
  timeout "${BENCH_SECONDS:-180}" "$python" benchmarks/train_throughput.py --device "$device" \
    --configs "${BENCH_CONFIGS:-small,full}" --batches "${BENCH_BATCHES:-${BATCH:-64}}" \
    --steps "${BENCH_STEPS:-30}" --degrade "${BENCH_DEGRADE:-device}" \
    --warmup 5 --workers "${WORKERS:-8}" --json "$OUT/throughput.json" \
    || echo "throughput benchmark stopped (status $?)"
fi
if [ "$device" = cuda ] && [ "${CUDA_TESTS:-1}" = 1 ]; then  # beside the training
  timeout 300 "$python" -m pytest -q -p no:cacheprovider -o addopts="" -k cuda \
    tests/test_cuda.py tests/test_degrade_torch.py tests/test_gpu_script.py \
    > /tmp/cuda_tests.txt 2>&1 &
fi
extra=()
[ "${COMPILE:-0}" = 1 ] && extra+=(--compile)
[ "${CHANNELS_LAST:-0}" = 1 ] && extra+=(--channels-last)
"$python" scripts/device/train_timed.py --config "$config" --minutes "$minutes" \
  --steps "${STEPS:-10000000}" --batch "${BATCH:-64}" --patch "${PATCH:-128}" \
  --lr "${LR:-1e-4}" --lr-reference-batch "${LR_REFERENCE_BATCH:-8}" --warmup "${WARMUP:-100}" \
  --tasks "${TASKS:-five}" --prompt-weight "${PROMPT_WEIGHT:-0.1}" --init "${INIT-default}" \
  --data "$data/train" --val "$data/val" --out "$OUT" --device "$device" \
  --workers "${WORKERS:-8}" --save-minutes "${SAVE_MINUTES:-2}" --log-every "${LOG_EVERY:-50}" \
  ${extra[@]+"${extra[@]}"} 2>&1 | tee "$OUT/$config.log" | grep -v '"step"' || true
wait
[ -f /tmp/cuda_tests.txt ] && tail -n 4 /tmp/cuda_tests.txt
test -s "$OUT/${config}_scores.jsonl"  # the run saved and scored its weights at least once
tail -n 2 "$OUT/${config}_metrics.jsonl" "$OUT/${config}_scores.jsonl"
