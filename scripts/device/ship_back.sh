#!/usr/bin/env bash
# Back on the CPU after scripts/device/gpu_run.sh: join the weights the device machine brought
# back (whole, or in .partNN pieces), then `measr export` them with the ship rule, scored on
# every validation photo against the current default (weights.txt; $MEASR_WEIGHTS_MANIFEST
# points elsewhere; the file goes to $WEIGHTS_DIR, default weights/).
#
#   scripts/device/ship_back.sh DIR NAME [VAL_ROOT] [CONFIG]
#     DIR: the device tool's files_at; NAME: the entry's name in weights.txt;
#     VAL_ROOT: default ../shared/data/val; CONFIG: default small.
# $MEASR and $PYTHON: see scripts/measr_command.sh.
set -euo pipefail
dir=$1 name=$2 val=${3:-../shared/data/val} config=${4:-small}
source "$(dirname "$0")/../measr_command.sh"  # $measr and $python
weights=$(bash "$(dirname "$0")/weights_back.sh" "$dir" "$config")
tasks=$("$python" -c 'import sys; from measr.weights import read_metadata
print(read_metadata(sys.argv[1]).get("train_tasks", "five"))' "$weights")
$measr export "$weights" --name "$name" --ship --val "$val" --tasks "$tasks" \
  --out-dir "${WEIGHTS_DIR:-weights}"
