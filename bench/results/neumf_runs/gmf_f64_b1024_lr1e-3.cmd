.venv/bin/python -m batch evaluate --data-dir /work/shared/data/ml-1m --protocol sampled --json --model gmf --factors 64 --batch-size 1024 --lr 0.001 --epochs 12 --patience 2
