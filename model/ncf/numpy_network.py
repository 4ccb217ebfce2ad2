"""Forward and hand-written backward pass of GMF / MLP / NeuMF in plain NumPy, plus the stable log loss.

The network works on gathered embedding rows (`Rows`), so embedding gradients come out per example and
the caller aggregates them per table row (see `model.ncf.numpy_sparse`). The rows come as views: the
engine gathers a user row `[GMF part | MLP part]` and an item row `[MLP part | GMF part]` side by side in
one block, so the GMF and MLP parts are column slices and the two MLP parts are adjacent: the MLP's
first layer multiplies that one (B, layers[0]) view by its kernel (BLAS takes strided rows as they are;
one product of depth 64 is ~10% faster than two of depth 32 and an add), the output layer applies its GMF
and MLP halves separately, and the row gradients are written into views the caller provides. Every
function keeps the dtype of its inputs (float32 in training, float64 in the gradient check). The passes
work in place where they can (ReLU, bias, masks), so a training step allocates few temporaries.
"""

from __future__ import annotations

import math
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
class Rows:
    """Embedding rows of a batch of B examples, or their gradients (None for a part the model lacks)."""

    gmf_user: np.ndarray | None  # (B, factors)
    gmf_item: np.ndarray | None  # (B, factors)
    mlp_user: np.ndarray | None  # (B, layers[0] // 2)
    mlp_item: np.ndarray | None  # (B, layers[0] // 2)
    mlp: np.ndarray | None = None  # (B, layers[0]): [mlp_user | mlp_item] as one view when the two are
    # adjacent in memory (the engine's gathered rows), for the first MLP layer; None: two products


@dataclass
class ForwardCache:
    """What the backward pass needs from a forward pass over a batch of B examples."""

    rows: Rows
    gmf: np.ndarray | None  # (B, factors) GMF output
    hidden: list[np.ndarray | None]  # MLP layer inputs h_1 .. h_{L-1} and the MLP output h_L, each (B,
    # width); h_0 is None (it is [rows.mlp_user | rows.mlp_item]), except without hidden layers
    masks: list[np.ndarray | None]  # per hidden layer: ReLU mask times dropout scale, (B, width); None
    # without dropout (the ReLU mask is then h_{k+1} > 0)


def _zeros(zeros: np.ndarray | None, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """A C-contiguous block of zeros of `shape`: the start of `zeros` when it is large enough, else new."""
    size = shape[0] * shape[1]
    if zeros is not None and zeros.size >= size and zeros.dtype == dtype:
        return zeros[:size].reshape(shape)
    return np.zeros(shape, dtype)


def _wide(a: np.ndarray, reps: int) -> np.ndarray:
    """C-contiguous (B, w) `a` seen as (B / reps, reps w): the same memory in fewer, longer rows."""
    return a.reshape(a.shape[0] // reps, reps * a.shape[1])


def _reps(batch: int, width: int) -> int:
    """Rows of width `width` to put side by side per long row (a divisor of `batch`, ~256 values long)."""
    return math.gcd(batch, max(1, 256 // max(width, 1)))


def _add_row(h: np.ndarray, row: np.ndarray) -> None:
    """h += row for C-contiguous (B, w) `h` and (w,) `row`, in place. NumPy runs the plain broadcast as
    one inner-loop call per row of h, which for w <= 32 costs more than the additions; here h is seen as
    rows of r w values and `row` repeated r times (r from `_reps`): ~2x faster for B = 2048."""
    reps = _reps(*h.shape)
    wide = _wide(h, reps)
    np.add(wide, row[None].repeat(reps, 0).ravel(), out=wide)


def _outer(column: np.ndarray, row: np.ndarray) -> np.ndarray:
    """column[:, None] * row, (B,) x (w,) -> new C-contiguous (B, w): each value of `column` repeated w
    times, times `row` repeated in long rows (see `_add_row`); ~2x faster than the broadcast product."""
    width = row.shape[0]
    out = column.repeat(width).reshape(-1, width)
    reps = _reps(*out.shape)
    wide = _wide(out, reps)
    np.multiply(wide, row[None].repeat(reps, 0).ravel(), out=wide)
    return out


def forward(
    config: NCFConfig,
    dense: Params,
    rows: Rows,
    dropout_rng: np.random.Generator | None = None,
    zeros: np.ndarray | None = None,
) -> tuple[np.ndarray, ForwardCache]:
    """Logits of a batch.

    Args:
        config: architecture.
        dense: the non-embedding parameters by name (see `dense_names`).
        rows: the gathered rows of users and items, by part (see `Rows`).
        dropout_rng: when given and `config.dropout > 0`, inverted dropout after each MLP hidden layer.
        zeros: optional read-only flat array of zeros of the rows' dtype, at least B * (widest hidden
            layer) long, for the ReLU (np.maximum against an array of zeros is ~3x faster than against
            the scalar 0, whose loop NumPy does not vectorise); allocated per call when missing.

    Returns:
        logits (B,) and the cache for `backward`.
    """
    f = gmf_width(config)
    w_out = dense["output/kernel"][:, 0]
    gmf, hidden, masks = None, [], []
    logits = None
    if uses_gmf(config):
        gmf = np.einsum("ij,ij->ij", rows.gmf_user, rows.gmf_item)  # the same products, ~30% faster on
        # these strided (B, f) views than the ufunc
        logits = gmf @ w_out[:f]
    if uses_mlp(config):
        half = config.layers[0] // 2
        joined = rows.mlp
        if joined is None and len(config.layers) == 1:
            joined = np.concatenate([rows.mlp_user, rows.mlp_item], axis=1)
        h = None if len(config.layers) > 1 else joined
        for k in range(len(config.layers) - 1):
            hidden.append(h)
            kernel = dense[f"mlp/dense_{k}/kernel"]
            if k:
                h = h @ kernel
            elif joined is not None:  # [user | item] @ kernel_0
                h = joined @ kernel
            else:  # [user | item] @ kernel_0, one side's half at a time
                h = rows.mlp_user @ kernel[:half]
                h += rows.mlp_item @ kernel[half:]
            _add_row(h, dense[f"mlp/dense_{k}/bias"])
            if dropout_rng is not None and config.dropout > 0:
                keep = dropout_rng.random(h.shape, dtype=h.dtype) >= config.dropout
                mask = ((h > 0) & keep).astype(h.dtype) * h.dtype.type(1.0 / (1.0 - config.dropout))
                h *= mask
                masks.append(mask)
            else:
                np.maximum(h, _zeros(zeros, h.shape, h.dtype), out=h)
                masks.append(None)
        hidden.append(h)
        mlp_logits = h @ w_out[f:]
        logits = mlp_logits if logits is None else np.add(logits, mlp_logits, out=logits)
    logits += dense["output/bias"][0]
    return logits, ForwardCache(rows, gmf, hidden, masks)


def backward(
    config: NCFConfig,
    dense: Params,
    cache: ForwardCache,
    dlogits: np.ndarray,
    out: Rows,
    dense_out: Params | None = None,
) -> Params:
    """Gradients of a loss given its gradient w.r.t. the logits.

    Args:
        dlogits: (B,) d loss / d logit.
        out: arrays (views are fine) that receive d loss / d (each part of the gathered rows).
        dense_out: arrays that receive the dense parameters' gradients, by name (e.g. views into one
            flat vector); fresh arrays when None.

    Returns:
        gradients of the dense parameters by name (`dense_out` when given).
    """
    batch = dlogits.shape[0]
    f = gmf_width(config)
    w_out = dense["output/kernel"][:, 0]
    grads = (
        dense_out if dense_out is not None else {name: np.empty_like(value) for name, value in dense.items()}
    )
    np.add.reduce(dlogits, keepdims=True, out=grads["output/bias"])
    kernel_grad = grads["output/kernel"][:, 0]
    if uses_gmf(config):
        np.matmul(dlogits, cache.gmf, out=kernel_grad[:f])
        dg = _outer(dlogits, w_out[:f])  # (B, f)
        np.multiply(dg, cache.rows.gmf_item, out=out.gmf_user)
        np.multiply(dg, cache.rows.gmf_user, out=out.gmf_item)
    if uses_mlp(config):
        np.matmul(dlogits, cache.hidden[-1], out=kernel_grad[f:])
        da = _outer(dlogits, w_out[f:])
        half = config.layers[0] // 2
        ones = np.empty(batch, dtype=dlogits.dtype)
        ones.fill(1)
        for k in reversed(range(len(config.layers) - 1)):
            mask = cache.masks[k]
            # da is a fresh array here (the product above, or the one below): the mask applies in place.
            da *= cache.hidden[k + 1] > 0 if mask is None else mask
            kernel, kernel_grad_k = dense[f"mlp/dense_{k}/kernel"], grads[f"mlp/dense_{k}/kernel"]
            if k:
                np.matmul(cache.hidden[k].T, da, out=kernel_grad_k)
            elif cache.rows.mlp is not None:
                np.matmul(cache.rows.mlp.T, da, out=kernel_grad_k)
            else:
                np.matmul(cache.rows.mlp_user.T, da, out=kernel_grad_k[:half])
                np.matmul(cache.rows.mlp_item.T, da, out=kernel_grad_k[half:])
            # a BLAS call: much faster than da.sum(axis=0)
            np.matmul(ones, da, out=grads[f"mlp/dense_{k}/bias"])
            if k:
                da = da @ kernel.T
        if len(config.layers) > 1:  # d input = da @ kernel_0.T, each side's half straight into its output
            np.matmul(da, kernel[:half].T, out=out.mlp_user)
            np.matmul(da, kernel[half:].T, out=out.mlp_item)
        else:  # no hidden layer: the input is the MLP output
            out.mlp_user[...], out.mlp_item[...] = da[:, :half], da[:, half:]
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
    e = np.abs(logits)
    np.negative(e, out=e)
    np.exp(e, out=e)  # exp(-|x|), in place: fewer temporaries than the formula as written
    loss = np.maximum(logits, 0)
    loss -= logits * labels
    loss += np.log1p(e)
    grad = np.where(logits >= 0, logits.dtype.type(1), e)  # sigmoid(x) = grad / (1 + e), computed stably
    grad /= e + 1
    grad -= labels
    grad /= logits.dtype.type(n)
    return float(loss.sum()) / n, grad
