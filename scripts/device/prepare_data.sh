#!/usr/bin/env bash
# Copy what scripts/device/gpu_run.sh reads into .device/data (ignored by git), since the device
# machine sees the repository but not ../shared. The working tree that travels is limited to
# 64 MiB: all 400 training photos (29 MB) go, and of the validation data every set but only its
# first PER_SET photos (default 6; 2 pairs of the 2 MB real-blur frames). The ship rule is
# decided back on the CPU on every validation photo.
#
#   scripts/device/prepare_data.sh [SHARED_DATA]   (default ../shared/data)
set -euo pipefail
src=${1:-../shared/data}
dst=.device/data
per_set=${PER_SET:-6}
rm -rf "$dst"
mkdir -p "$dst/train" "$dst/val"
cp -r "$src/train/bsd400" "$dst/train/"
for set in "$src"/val/*/; do
  name=$(basename "$set")
  limit=$per_set
  [ "$name" = deblur-gopro-like ] && limit=2
  for side in clean degraded; do
    [ -d "$set/$side" ] || continue
    mkdir -p "$dst/val/$name/$side"
    find "$set/$side" -maxdepth 1 -type f | sort | head -n "$limit" \
      | xargs -I{} cp {} "$dst/val/$name/$side/"
  done
done
du -sh "$dst"
