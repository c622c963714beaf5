#!/usr/bin/env bash
# The path of the EMA weights scripts/device/gpu_run.sh brought back into DIR, whole or joined
# from its .partNN pieces (into a temporary folder); status 2 when there are neither.
#
#   scripts/device/weights_back.sh DIR CONFIG
set -euo pipefail
dir=$1 config=$2
weights=$dir/${config}_ema.safetensors
if [ ! -f "$weights" ]; then
  compgen -G "$weights.part*" > /dev/null || { echo "no $weights(.partNN) in $dir" >&2; exit 2; }
  joined=$(mktemp -d)/${config}_ema.safetensors
  cat "$weights".part* > "$joined"
  weights=$joined
fi
echo "$weights"
