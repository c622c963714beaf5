#!/usr/bin/env bash
# The long run (docs/training.md, "The long run"): the one training run that goes on from one
# stretch of work to the next. Run from the repository root.
#
#   scripts/long_run.sh start     # go on in the background (nice): resume the run folder, or
#                                 # start a stretch there from long-run/ (a new machine)
#   scripts/long_run.sh status    # its last lines and validation
#   scripts/long_run.sh stop      # SIGTERM: it ends its step, checkpoints and stops
#   scripts/long_run.sh handoff   # long-run/ from the run folder's last checkpoint: commit it
#   scripts/long_run.sh adopt DIR # a lent GPU's stretch (gpu_run.sh's files in DIR) becomes the
#                                 # run's: long-run/ from its weights; the run folder moves aside
#   scripts/long_run.sh curve     # where each validation set is heading (long-run/curve.jsonl),
#                                 # into docs/results/long-run-curve.md and .png
#
# MEASR_LONG_RUN_DIR is the run folder, outside the work tree (default ../runs/long); its log
# is the folder's name + .log beside it. The training threads are the run's settings; the
# process waits passively (OMP_WAIT_POLICY) so that it yields the cores to the work beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
run_dir=${MEASR_LONG_RUN_DIR:-../runs/long}
handoff=long-run
log="$run_dir.log"
pid_file="$run_dir.pid"
source scripts/measr_command.sh  # $measr and $python

running() { [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2> /dev/null; }

case "${1:-}" in
  start)
    if running; then echo "already running (pid $(cat "$pid_file"))"; exit 0; fi
    if ! command -v "$measr" > /dev/null; then
      echo "no '$measr' command: activate the project's environment (README: Run the tests) or set MEASR" >&2
      exit 2
    fi
    mkdir -p "$(dirname "$run_dir")"
    # glibc's defaults, not measr's keep-freed-memory setting (measr/allocator.py): training
    # allocates differently sized activations every step, and the kept heap grew to 12 GB.
    MEASR_KEEP_FREED_MEMORY=0 OMP_WAIT_POLICY=PASSIVE nohup nice -n 10 "$measr" train --out "$run_dir" \
      --continue-from "$handoff" ${STOP_AFTER:+--stop-after "$STOP_AFTER"} >> "$log" 2>&1 &
    echo $! > "$pid_file"
    echo "started (pid $!), log $log"
    ;;
  status)
    running && echo "running (pid $(cat "$pid_file"))" || echo "not running"
    tail -n 3 "$log" 2> /dev/null || true
    grep val_psnr "$run_dir/metrics.jsonl" 2> /dev/null | tail -n 1 || true
    ;;
  stop)
    if ! running; then echo "not running"; exit 0; fi
    pid=$(cat "$pid_file")
    kill -TERM "$pid"
    while kill -0 "$pid" 2> /dev/null; do sleep 2; done
    echo "stopped; $(tail -n 1 "$log")"
    ;;
  adopt)
    if running; then echo "stop the run first: scripts/long_run.sh stop" >&2; exit 2; fi
    dir=${2:?adopt DIR: the folder gpu_run.sh filled}
    config=$("$python" -c 'import json; print(json.load(open("long-run/state.json"))["settings"]["config"])')
    weights=$(bash scripts/device/weights_back.sh "$dir" "$config")
    "$python" -m measr.training.long_run --adopt "$weights" "$handoff"
    # The next stretch starts from the adopted weights, not from the CPU's own branch.
    if [ -d "$run_dir" ]; then mv "$run_dir" "$run_dir-before-gpu-$(date +%Y%m%d-%H%M)"; fi
    ;;
  handoff)  # from the last checkpoint (every few minutes): the run may go on meanwhile
    "$python" -m measr.training.long_run "$run_dir" "$handoff"
    ;;
  curve)  # where each validation set is heading; extra options: python -m measr.training.curve -h
    shift
    "$python" -m measr.training.curve "$handoff" --markdown docs/results/long-run-curve.md \
      --png docs/results/long-run-curve.png "$@"
    ;;
  *)
    sed -n '2,18p' "$0" >&2
    exit 2
    ;;
esac
