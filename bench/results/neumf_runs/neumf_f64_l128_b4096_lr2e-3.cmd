.venv/bin/python -m batch evaluate --data-dir /work/shared/data/ml-1m --protocol sampled --json --model neumf --factors 64 --layers 128,64,32 --batch-size 4096 --lr 0.002 --epochs 20 --patience 3
