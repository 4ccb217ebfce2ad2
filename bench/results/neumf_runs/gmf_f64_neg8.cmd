.venv/bin/python -m batch evaluate --data-dir /work/shared/data/ml-1m --protocol sampled --json --model gmf --factors 64 --batch-size 4096 --lr 0.002 --num-negatives 8 --epochs 12 --patience 2
