"""Engine-neutral NumPy inference for GMF / MLP / NeuMF parameters (see `model.ncf.params`).

`score_pairs` scores arbitrary (user, item) pairs. `score_all_items` scores every item for a chunk of users
and exploits the model's structure: the GMF part is a matrix product (U * w_gmf) @ I^T, and the first MLP
layer splits into a user part and an item part, each computed once, so only the deeper MLP layers run per
(user, item) pair.
"""

from __future__ import annotations

import numpy as np

from model.ncf.config import NCFConfig
from model.ncf.params import Params, uses_gmf, uses_mlp


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function, same dtype as x."""
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


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


def logits_all_items(params: Params, config: NCFConfig, user_idx: np.ndarray) -> np.ndarray:
    """Logits of every item for each user: (c,) int -> (c, n_items) float32."""
    kernel = params["output/kernel"][:, 0]
    out = np.full((user_idx.shape[0], _n_items(params)), params["output/bias"][0], dtype=np.float32)
    offset = 0
    if uses_gmf(config):
        f = config.factors
        out += (params["gmf/user_embedding"][user_idx] * kernel[:f]) @ params["gmf/item_embedding"].T
        offset = f
    if uses_mlp(config):
        half = config.layers[0] // 2
        n_dense = _n_dense(params)
        if n_dense == 0:
            h_user = params["mlp/user_embedding"][user_idx]
            h_item = params["mlp/item_embedding"]
            w = kernel[offset:]
            out += (h_user @ w[:half])[:, None] + (h_item @ w[half:])[None, :]
            return out
        w0 = params["mlp/dense_0/kernel"]
        user_part = params["mlp/user_embedding"][user_idx] @ w0[:half]  # (c, layers[1])
        item_part = (
            params["mlp/item_embedding"] @ w0[half:] + params["mlp/dense_0/bias"]
        )  # (n_items, layers[1])
        h = np.maximum(user_part[:, None, :] + item_part[None, :, :], 0.0)  # (c, n_items, layers[1])
        h = h.reshape(-1, h.shape[-1])
        for k in range(1, n_dense):
            h = np.maximum(h @ params[f"mlp/dense_{k}/kernel"] + params[f"mlp/dense_{k}/bias"], 0.0)
        out += (h @ kernel[offset:]).reshape(out.shape)
    return out


def score_all_items(params: Params, config: NCFConfig, user_idx: np.ndarray) -> np.ndarray:
    """Predicted probabilities of every item for each user: (c,) int -> (c, n_items) float32."""
    return sigmoid(logits_all_items(params, config, user_idx))


def _n_items(params: Params) -> int:
    key = "gmf/item_embedding" if "gmf/item_embedding" in params else "mlp/item_embedding"
    return int(params[key].shape[0])
