.venv/bin/python -m batch evaluate --data-dir /work/shared/data/ml-1m --protocol sampled --json --model gmf --factors 128 --batch-size 4096 --lr 0.002 --epochs 12 --patience 2
