"""The Keras engine under `MultiWorkerMirroredStrategy`: two real worker processes on localhost ports
(`TF_CONFIG`) train GMF on tiny data; both end with the same weights, and those equal (up to float
rounding) the weights one worker reaches on the same global batches, since each step's summed, 1/workers
scaled gradient is the global batch's mean gradient."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from batch.cluster import local_worker_envs

REPO = Path(__file__).resolve().parents[1]
WORKER = """
import sys
import numpy as np
from model.ncf.config import NCFConfig, TrainConfig
from model.ncf.keras_engine import KerasNCF
from model.ncf.params import init_params

out = sys.argv[1]
rng = np.random.default_rng(0)
n_users, n_items, m = 30, 40, 4096
users = rng.integers(0, n_users, m)
items = rng.integers(0, n_items, m)
labels = (rng.random(m) < 0.3).astype(np.float32)
config = NCFConfig(kind="gmf", factors=8)
model = KerasNCF(config, TrainConfig(learning_rate=0.01))
model.build(n_users, n_items, init_params(config, n_users, n_items, seed=0))
losses = [model.train_epoch(users, items, labels, 256) for _ in range(3)]
np.savez(out, losses=np.array(losses), **{k.replace("/", "__"): v for k, v in model.get_params().items()})
"""


def run_workers(tmp_path: Path, n: int) -> list[dict[str, np.ndarray]]:
    procs = []
    for rank, worker_env in enumerate(local_worker_envs(n, {**os.environ, "PYTHONPATH": str(REPO)})):
        out = tmp_path / f"worker{n}-{rank}.npz"
        procs.append((subprocess.Popen([sys.executable, "-c", WORKER, str(out)], env=worker_env), out))
    results = []
    for proc, out in procs:
        assert proc.wait(timeout=300) == 0
        with np.load(out) as npz:
            results.append({k: npz[k] for k in npz.files})
    return results


def test_two_workers_train_like_one_on_the_global_batch(tmp_path):
    (single,) = run_workers(tmp_path, 1)
    first, second = run_workers(tmp_path, 2)
    for name in single:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
        np.testing.assert_allclose(first[name], single[name], rtol=1e-4, atol=1e-5, err_msg=name)
    assert single["losses"][-1] < single["losses"][0]  # it trained
    assert not np.array_equal(single["gmf__user_embedding"], first["gmf__user_embedding"] * 0)
