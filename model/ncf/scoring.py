"""Engine-neutral NumPy inference for GMF / MLP / NeuMF parameters (see `model.ncf.params`).

`score_pairs` scores arbitrary (user, item) pairs. `score_all_items` scores every item for a chunk of users
and exploits the model's structure:

- the GMF part is one matrix product (U * w_gmf) @ I^T;
- the first MLP layer splits into a user part U_mlp @ W0[:half] and an item part I_mlp @ W0[half:] + b0,
  each computed once, so only the ReLU of their sum and the deeper (narrower) layers run per pair;
- the per-pair layers run on small blocks of users whose activations stay in the CPU cache, in reused
  buffers, on one thread per core (BLAS limited to one thread inside each worker: the matrices are too
  skinny for BLAS threading to pay off, and oversubscribing a shared machine is slow).

Memory beyond the (c, n_items) float32 output: per worker, `block_users * n_items * (layers[1] + layers[2]
+ ...)` float32 (4 users x 3706 items x 56 widths = 3.3 MB for the default NeuMF), independent of c.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.special import expit
from threadpoolctl import threadpool_limits

from model.ncf.config import NCFConfig
from model.ncf.params import Params, uses_gmf, uses_mlp
from model.topn import available_cores

BLOCK_USERS = 4  # users per cache-resident block of per-pair MLP activations (measured best, bench/)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (one pass, scipy's expit), same dtype as x."""
    return expit(x)


def _n_dense(params: Params) -> int:
    return sum(1 for k in params if k.startswith("mlp/dense_") and k.endswith("/kernel"))


def logits_pairs(params: Params, config: NCFConfig, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
    """Logits of pairs: user_idx, item_idx (n,) int -> (n,) float32."""
    parts = []
    if uses_gmf(config):
        parts.append(params["gmf/user_embedding"][user_idx] * params["gmf/item_embedding"][item_idx])
    if uses_mlp(config):
        h = np.concatenate(
            [params["mlp/user_embedding"][user_idx], params["mlp/item_embedding"][item_idx]], axis=1
        )
        for k in range(_n_dense(params)):
            h = np.maximum(h @ params[f"mlp/dense_{k}/kernel"] + params[f"mlp/dense_{k}/bias"], 0.0)
        parts.append(h)
    z = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    return (z @ params["output/kernel"])[:, 0] + params["output/bias"][0]


def score_pairs(params: Params, config: NCFConfig, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
    """Predicted probabilities of pairs: (n,) int, (n,) int -> (n,) float32."""
    return sigmoid(logits_pairs(params, config, user_idx, item_idx).astype(np.float32))


class _DeepMLP:
    """The per-pair part of an MLP with at least one hidden layer, on blocks of users.

    With a_1 = u + v (u = user part, v = item part incl. bias), relu(a_1) = max(v, -u) + u, and the "+ u"
    is linear, so it moves past the next matrix product into a per-user constant: a_2 = max(v, -u) @ W_1 +
    (u @ W_1 + b_1). Repeating this, each layer costs one pass `max(x, -c_user)` and one matrix product per
    pair; every bias and shift is a per-user vector c, computed once per user.
    """

    def __init__(self, params: Params, config: NCFConfig, w_out: np.ndarray) -> None:
        half = config.layers[0] // 2
        n_dense = _n_dense(params)
        w0 = params["mlp/dense_0/kernel"].astype(np.float32)
        self.user_embedding = params["mlp/user_embedding"]
        self.w0_user = w0[:half]
        self.item_part = (params["mlp/item_embedding"] @ w0[half:] + params["mlp/dense_0/bias"]).astype(
            np.float32
        )
        self.kernels = [params[f"mlp/dense_{k}/kernel"].astype(np.float32) for k in range(1, n_dense)]
        self.biases = [params[f"mlp/dense_{k}/bias"].astype(np.float32) for k in range(1, n_dense)]
        self.w_out = w_out.astype(np.float32)
        self.widths = [self.item_part.shape[1], *(w.shape[1] for w in self.kernels)]

    def write(self, user_idx: np.ndarray, out: np.ndarray) -> None:
        """out (c, n_items) C-contiguous = MLP contribution of each user in user_idx (c,), block by block."""
        n_items = self.item_part.shape[0]
        # Per-user shifts c_k (c, width_k): c_1 = u, c_{k+1} = c_k @ W_k + b_k.
        shifts = [self.user_embedding[user_idx] @ self.w0_user]
        for kernel, bias in zip(self.kernels, self.biases, strict=True):
            shifts.append(shifts[-1] @ kernel + bias)
        user_const = (shifts[-1] @ self.w_out)[:, None]  # (c, 1)
        negated = [-c for c in shifts]
        buffers = [np.empty((BLOCK_USERS * n_items, w), dtype=np.float32) for w in self.widths]
        for start in range(0, user_idx.shape[0], BLOCK_USERS):
            b = min(BLOCK_USERS, user_idx.shape[0] - start)
            rows = b * n_items
            h = buffers[0][:rows]
            np.maximum(
                self.item_part[None, :, :],
                negated[0][start : start + b, None, :],
                out=h.reshape(b, n_items, -1),
            )
            for k, (kernel, buffer) in enumerate(zip(self.kernels, buffers[1:], strict=True)):
                nxt = buffer[:rows]
                np.matmul(h, kernel, out=nxt)
                view = nxt.reshape(b, n_items, -1)
                np.maximum(view, negated[k + 1][start : start + b, None, :], out=view)
                h = nxt
            block = out[start : start + b]
            np.matmul(h, self.w_out, out=block.reshape(-1))
            block += user_const[start : start + b]


class _Linear:
    """Everything of the logit that is bilinear in (user, item): GMF, the output bias and, for an MLP
    without hidden layers, its output layer; one matrix product of augmented factors [U | 1] @ [I | b]^T."""

    def __init__(self, params: Params, config: NCFConfig, kernel: np.ndarray, n_items: int) -> None:
        self.user_parts: list[tuple[np.ndarray, np.ndarray | None]] = []  # (embedding, column weights)
        item_cols = []
        item_const = np.full((n_items, 1), params["output/bias"][0], dtype=np.float32)
        offset = 0
        if uses_gmf(config):
            f = config.factors
            self.user_parts.append((params["gmf/user_embedding"], kernel[:f]))
            item_cols.append(params["gmf/item_embedding"])
            offset = f
        if uses_mlp(config) and _n_dense(params) == 0:
            half = config.layers[0] // 2
            w = kernel[offset:]
            self.user_parts.append((params["mlp/user_embedding"] @ w[:half, None], None))
            item_cols.append(np.ones((n_items, 1), dtype=np.float32))
            item_const += params["mlp/item_embedding"] @ w[half:, None]
        self.item_factors = np.hstack([*item_cols, item_const]).astype(np.float32)

    def add_to(self, user_idx: np.ndarray, out: np.ndarray) -> None:
        """out (c, n_items) += the bilinear part for user_idx (c,)."""
        cols = [emb[user_idx] * w if w is not None else emb[user_idx] for emb, w in self.user_parts]
        cols.append(np.ones((user_idx.shape[0], 1), dtype=np.float32))
        out += np.hstack(cols).astype(np.float32) @ self.item_factors.T


def logits_all_items(
    params: Params, config: NCFConfig, user_idx: np.ndarray, workers: int | None = None
) -> np.ndarray:
    """Logits of every item for each user: (c,) int -> (c, n_items) float32.

    Args:
        workers: threads over slices of users (default: one per available core).
    """
    user_idx = np.asarray(user_idx, dtype=np.int64)
    n_items = _n_items(params)
    kernel = params["output/kernel"][:, 0].astype(np.float32)
    linear = _Linear(params, config, kernel, n_items)
    deep = uses_mlp(config) and _n_dense(params) > 0
    mlp = _DeepMLP(params, config, kernel[config.factors if uses_gmf(config) else 0 :]) if deep else None
    out = np.empty((user_idx.shape[0], n_items), dtype=np.float32)

    def fill(rows: np.ndarray) -> None:
        users, block = user_idx[rows], out[rows[0] : rows[-1] + 1]
        if mlp is None:
            block.fill(0.0)
        else:
            mlp.write(users, block)
        linear.add_to(users, block)

    slices = [s for s in np.array_split(np.arange(user_idx.shape[0]), workers or available_cores()) if s.size]
    with threadpool_limits(limits=1, user_api="blas"):
        if len(slices) <= 1:
            for rows in slices:
                fill(rows)
        else:
            with ThreadPoolExecutor(max_workers=len(slices)) as pool:
                for future in [pool.submit(fill, rows) for rows in slices]:
                    future.result()
    return out


def score_all_items(params: Params, config: NCFConfig, user_idx: np.ndarray) -> np.ndarray:
    """Predicted probabilities of every item for each user: (c,) int -> (c, n_items) float32."""
    return sigmoid(logits_all_items(params, config, user_idx))


def _n_items(params: Params) -> int:
    key = "gmf/item_embedding" if "gmf/item_embedding" in params else "mlp/item_embedding"
    return int(params[key].shape[0])
