#!/usr/bin/env bash
# Copy what scripts/device/gpu_run.sh reads into .device/data (ignored by git), since the device
# machine sees the repository but not ../shared. Everything that travels (the tracked files,
# 43 MB of them weights, and .device) must stay under 64 MiB, so this fills what is left of it
# (less a 2 MiB margin; BUDGET_BYTES overrides): first the validation subset, every set's first
# PER_SET photos (default 4; 1 pair of the 2 MB real-blur frames), then the long run's clean
# training photos, BSD400 and Sun-Hays 80 in turn, as many as fit. The ship rule is decided
# back on the CPU on every validation photo.
#
#   scripts/device/prepare_data.sh [SHARED_DATA]   (default ../shared/data)
set -euo pipefail
src=${1:-../shared/data}
dst=.device/data
per_set=${PER_SET:-4}
tracked=$(git ls-files -z | xargs -0 -r du -cb | tail -n 1 | cut -f1)
tracked=${tracked:-0}
budget=${BUDGET_BYTES:-$((64 * 1024 * 1024 - tracked - 2 * 1024 * 1024))}
rm -rf "$dst"
mkdir -p "$dst/train" "$dst/val"

used=0
# copy FILE TARGET_DIR: when it fits the budget (status 1 when it does not)
copy() {
  local size
  size=$(stat -c %s "$1")
  [ $((used + size)) -le "$budget" ] || return 1
  mkdir -p "$2"
  cp "$1" "$2/"
  used=$((used + size))
}

for set in "$src"/val/*/; do
  name=$(basename "$set")
  limit=$per_set
  [ "$name" = deblur-gopro-like ] && limit=1
  for side in clean degraded; do
    [ -d "$set/$side" ] || continue
    while IFS= read -r file; do
      copy "$file" "$dst/val/$name/$side" || { echo "the validation subset alone is over budget" >&2; exit 2; }
    done < <(find "$set/$side" -maxdepth 1 -type f | sort | head -n "$limit")
  done
done

# Training photos, the two collections in turn, until the next one does not fit.
interleaved() {  # the files under each folder, sorted, taken from each folder in turn
  python3 -c 'import itertools, pathlib, sys
lists = [sorted(str(p) for p in pathlib.Path(d).rglob("*") if p.is_file()) for d in sys.argv[1:]]
print("\n".join(f for group in itertools.zip_longest(*lists) for f in group if f))' "$@"
}
folders=()
for name in bsd400 sunhays80; do [ -d "$src/train/$name" ] && folders+=("$src/train/$name"); done
photos=0
while IFS= read -r file; do
  [ -n "$file" ] || continue
  relative=${file#"$src/train/"}
  copy "$file" "$dst/train/$(dirname "$relative")" || break
  photos=$((photos + 1))
done < <(interleaved "${folders[@]}")
echo "$photos training photos; $(du -sh "$dst" | cut -f1) in $dst (budget $((budget / 1024 / 1024)) MiB)"
