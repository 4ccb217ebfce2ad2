"""Forward and hand-written backward pass of GMF / MLP / NeuMF in plain NumPy, plus the stable log loss.

The network works on gathered embedding rows, so embedding gradients come out per example and the caller
aggregates them per table row (see `model.ncf.numpy_sparse`). The user (and item) rows hold the GMF
embedding then the MLP embedding side by side, `[gmf (factors) | mlp (layers[0] // 2)]`, so one gather and
one scatter serve both parts. Every function keeps the dtype of its inputs (float32 in training, float64
in the gradient check). The passes work in place where they can (ReLU, bias, masks) and write the row
gradients into arrays the caller provides, so a training step allocates few temporaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.ncf.config import NCFConfig
from model.ncf.params import Params, uses_gmf, uses_mlp


def gmf_width(config: NCFConfig) -> int:
    """Columns of the GMF part at the start of a user/item row (0 without GMF)."""
    return config.factors if uses_gmf(config) else 0


def dense_names(config: NCFConfig) -> list[str]:
    """Names of the non-embedding parameters, in a fixed order."""
    names = []
    if uses_mlp(config):
        for k in range(len(config.layers) - 1):
            names += [f"mlp/dense_{k}/kernel", f"mlp/dense_{k}/bias"]
    return [*names, "output/kernel", "output/bias"]


@dataclass
class ForwardCache:
    """What the backward pass needs from a forward pass over a batch of B examples."""

    user_rows: np.ndarray  # (B, row width)
    item_rows: np.ndarray  # (B, row width)
    z: np.ndarray  # (B, d) input of the output layer
    hidden: list[np.ndarray]  # MLP layer inputs h_0 .. h_{L-1} and the MLP output h_L, each (B, width)
    masks: list[np.ndarray | None]  # per hidden layer: ReLU mask times dropout scale, (B, width); None
    # without dropout (the ReLU mask is then h_{k+1} > 0)


def forward(
    config: NCFConfig,
    dense: Params,
    user_rows: np.ndarray,
    item_rows: np.ndarray,
    dropout_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, ForwardCache]:
    """Logits of a batch.

    Args:
        config: architecture.
        dense: the non-embedding parameters by name (see `dense_names`).
        user_rows, item_rows: (B, gmf_width + mlp half-width) gathered user and item rows.
        dropout_rng: when given and `config.dropout > 0`, inverted dropout after each MLP hidden layer.

    Returns:
        logits (B,) and the cache for `backward`.
    """
    f = gmf_width(config)
    parts, hidden, masks = [], [], []
    if uses_gmf(config):
        parts.append(user_rows[:, :f] * item_rows[:, :f])
    if uses_mlp(config):
        h = np.concatenate([user_rows[:, f:], item_rows[:, f:]], axis=1)
        for k in range(len(config.layers) - 1):
            hidden.append(h)
            h = h @ dense[f"mlp/dense_{k}/kernel"]
            h += dense[f"mlp/dense_{k}/bias"]
            if dropout_rng is not None and config.dropout > 0:
                keep = dropout_rng.random(h.shape, dtype=h.dtype) >= config.dropout
                mask = ((h > 0) & keep).astype(h.dtype) * h.dtype.type(1.0 / (1.0 - config.dropout))
                h *= mask
                masks.append(mask)
            else:
                np.maximum(h, 0, out=h)
                masks.append(None)
        hidden.append(h)
        parts.append(h)
    z = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    logits = z @ dense["output/kernel"][:, 0]
    logits += dense["output/bias"][0]
    return logits, ForwardCache(user_rows, item_rows, z, hidden, masks)


def backward(
    config: NCFConfig,
    dense: Params,
    cache: ForwardCache,
    dlogits: np.ndarray,
    d_user: np.ndarray,
    d_item: np.ndarray,
) -> Params:
    """Gradients of a loss given its gradient w.r.t. the logits.

    Args:
        dlogits: (B,) d loss / d logit.
        d_user, d_item: (B, row width) arrays (views are fine) that receive d loss / d user_rows and
            d loss / d item_rows.

    Returns:
        gradients of the dense parameters by name.
    """
    batch = dlogits.shape[0]
    grads: Params = {
        "output/kernel": (cache.z.T @ dlogits)[:, None],
        "output/bias": np.sum(dlogits, keepdims=True),
    }
    dz = dlogits[:, None] * dense["output/kernel"][:, 0]
    f = gmf_width(config)
    if uses_gmf(config):
        dg = dz[:, :f]
        np.multiply(dg, cache.item_rows[:, :f], out=d_user[:, :f])
        np.multiply(dg, cache.user_rows[:, :f], out=d_item[:, :f])
    if uses_mlp(config):
        da = dz[:, f:]
        ones = np.ones(batch, dtype=dlogits.dtype)
        for k in reversed(range(len(config.layers) - 1)):
            mask = cache.masks[k]
            # da is a fresh array here (dz's slice, or the product below), so the mask applies in place.
            da *= cache.hidden[k + 1] > 0 if mask is None else mask
            grads[f"mlp/dense_{k}/kernel"] = cache.hidden[k].T @ da
            grads[f"mlp/dense_{k}/bias"] = ones @ da  # a BLAS call: much faster than da.sum(axis=0)
            da = da @ dense[f"mlp/dense_{k}/kernel"].T
        half = config.layers[0] // 2
        d_user[:, f:] = da[:, :half]
        d_item[:, f:] = da[:, half:]
    return grads


def log_loss_with_logits(
    logits: np.ndarray, labels: np.ndarray, batch_size: int | None = None
) -> tuple[float, np.ndarray]:
    """Binary cross-entropy of logits, computed stably, and its gradient w.r.t. the logits.

    loss_j = max(x, 0) - x y + log(1 + exp(-|x|)); d loss / d x_j = (sigmoid(x_j) - y_j) / n.

    Args:
        logits: (B,) float; labels: (B,) float in {0, 1}.
        batch_size: n, the size of the whole batch these B examples are part of (default B): the loss
            returned is sum_j loss_j / n, so the losses of the parts of a batch add up to its mean.
    """
    n = logits.shape[0] if batch_size is None else batch_size
    e = np.exp(-np.abs(logits))
    loss = np.maximum(logits, 0) - logits * labels + np.log1p(e)
    prob = np.where(logits >= 0, 1 / (1 + e), e / (1 + e))
    return float(loss.sum()) / n, (prob - labels) / logits.dtype.type(n)
