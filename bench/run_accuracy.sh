#!/usr/bin/env bash
# One ML-1M accuracy run of the CLI: bench/run_accuracy.sh NAME [evaluate flags...]
# Writes bench/results/neumf_runs/NAME.cmd (the exact command), NAME.json (its output) and NAME.log (scratch,
# ignored by git); bench/collect_accuracy.py folds the run into bench/results/neumf_accuracy.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1
shift
out=bench/results/neumf_runs
data=${NCF_DATA_DIR:-/work/shared/data/ml-1m}
cmd=(.venv/bin/python -m batch evaluate --data-dir "$data" --protocol sampled --json "$@")
mkdir -p "$out"
echo "${cmd[*]}" > "$out/$name.cmd"
TF_CPP_MIN_LOG_LEVEL=2 "${cmd[@]}" > "$out/$name.json.tmp" 2> "$out/$name.log"
mv "$out/$name.json.tmp" "$out/$name.json"
