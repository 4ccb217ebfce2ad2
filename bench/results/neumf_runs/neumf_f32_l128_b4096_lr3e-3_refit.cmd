.venv/bin/python -m batch evaluate --data-dir /work/shared/data/ml-1m --protocol sampled --json --model neumf --factors 32 --layers 128,64,32 --batch-size 4096 --lr 0.003 --epochs 6 --patience 2
