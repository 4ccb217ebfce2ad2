.venv/bin/python -m batch evaluate --data-dir /work/shared/data/ml-1m --model neumf --json
