#!/usr/bin/env bash
# One ML-1M accuracy run of the CLI: bench/run_accuracy.sh NAME [evaluate flags...]
# Writes bench/results/neumf_runs/NAME.cmd (the exact command) and NAME.json (its output); the log goes to
# NAME.log beside them (not committed). Summarise all runs with bench/collect_accuracy.py.
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
