#!/usr/bin/env bash
# The README's quality table: measr (default weights, or $WEIGHTS) against the degraded input
# and the classical baselines on the validation data (../shared/data/val layout, or $VAL).
# Synthetic sets use measr's seeded degradations (seed 0); paired sets are used as they are.
# Usage: bash benchmarks/quality_val.sh [OUT_PREFIX]   (writes OUT_PREFIX.json/.csv/.txt)
# PASSES=N restores in that many passes (measr restore --passes; auto by default).
# QUALITY_LIMIT=N scores only the first N images of each set (default: all; on 2 CPU cores all
# of it takes over an hour).
set -euo pipefail
val=${VAL:-../shared/data/val}
out=${1:-docs/results/quality}
weights=${WEIGHTS:+--weights $WEIGHTS}
passes=${PASSES:+--passes $PASSES}
limit=${QUALITY_LIMIT:+--limit $QUALITY_LIMIT}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=PASSIVE
sets=()
for photos in mcmaster kodak24; do
  for spec in noise:15 noise:25 noise:50 rain haze lowlight; do
    sets+=(--set "$photos-${spec/:/}=$val/$photos/clean:$spec")
  done
done
sets+=(--set "gopro-like-blur=$val/deblur-gopro-like:blur")
sets+=(--set "camshake-blur=$val/deblur-camshake:blur")
sets+=(--set "its-haze=$val/dehaze-its-sample:haze")
# Damage that comes together (measr.degrade.COMPOSITES), beside the single kinds.
for photos in mcmaster kodak24; do
  for spec in lowlight+haze lowlight+rain haze+rain lowlight+haze+rain lowlight+noise:15 \
      blur+noise:15 haze+noise:15; do
    sets+=(--set "$photos-${spec/:/}=$val/$photos/clean:$spec")
  done
done
measr benchmark quality "${sets[@]}" $weights $limit $passes --methods input,measr,ffdnet,nlm,dcp,autogamma,stretch \
  --json "$out.json" --csv "$out.csv" --markdown "$out.md" | tee "$out.txt"
# CBM3D takes about 45 s per image: only the set the issue compares against, and by default
# only its first 6 images (CBM3D_LIMIT=18 for all of McMaster).
measr benchmark quality --set "mcmaster-noise25=$val/mcmaster/clean:noise:25" $weights \
  --limit "${CBM3D_LIMIT:-6}" \
  --methods input,measr,cbm3d,ffdnet --json "$out-cbm3d.json" --csv "$out-cbm3d.csv" \
  --markdown "$out-cbm3d.md" \
  | tee "$out-cbm3d.txt"
