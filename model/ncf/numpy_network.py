"""The GMF / MLP / NeuMF network in plain NumPy: forward pass, log loss and hand-written backward pass.

For a batch of B examples (user u, item i, label y), with f = `factors` and L = len(layers) - 1 hidden
layers, the MLP's dense layer k being `mlp/dense_{k}` (kernel W_k, bias b_k):

    GMF     g       = p_u * q_i                                (B, f)            p, q: GMF user / item rows
    MLP     h_0     = [p'_u | q'_i]                            (B, layers[0])    p', q': MLP user / item rows
            h_{k+1} = relu(h_k W_k + b_k) * d_k, k = 0 .. L-1  (B, layers[k+1])
    output  x       = g w_g + h_L w_h + b                      (B,) logits       [w_g | w_h]: output kernel
    loss            = 1/B sum_j max(x_j, 0) - x_j y_j + log(1 + exp(-|x_j|))    log loss of sigmoid(x)

or, under the softmax loss, over the n = B / G groups of G consecutive examples (a positive x_0, then its
negatives): loss = 1/n sum_groups log(sum_k exp(x_k)) - x_0, with dx_k = (softmax(x)_k - [k = 0]) / n.
GMF alone has no h_L term, MLP alone no g term; d_k is the inverted-dropout mask (0 or 1 / (1 - rate);
1 without dropout). The backward pass, from dx = d loss / dx = (sigmoid(x) - y) / B, (B,):

    dw_g = g^T dx    dw_h = h_L^T dx    db = sum_j dx_j
    dg   = dx w_g^T                     dp_u = dg * q_i    dq_i = dg * p_u
    da   = dx w_h^T, then for k = L-1 .. 0:
         dz   = da * 1[h_{k+1} > 0] * d_k
         dW_k = h_k^T dz    db_k = sum_j dz_j    da = dz W_k^T
    [dp'_u | dq'_i] = da                (da is now d loss / d h_0)

`forward`, `log_loss_with_logits` and `backward` below follow these lines in order. Embedding gradients
come out per example (one row of dp_u per example); the engine sums them per table row
(`model.ncf.numpy_sparse`) and adds the L2 penalty when set (`NumpyNCF._part`).

Memory layout. The network works on gathered embedding rows given as views (`Rows`): the engine gathers a
user row `[GMF part | MLP part]` and an item row `[MLP part | GMF part]` side by side in one block, so the
GMF and MLP parts are column slices and the two MLP parts are adjacent: h_0 = [p'_u | q'_i] is one
(B, layers[0]) view, and the first MLP layer is one product (BLAS takes strided rows as they are; one
product of depth 64 is ~10% faster than two of depth 32 and an add). The row gradients are written into
views the caller provides. Every function keeps the dtype of its inputs (float32 in training, float64 in
the gradient check). The passes work in place where they can (ReLU, bias, masks), so a training step
allocates few temporaries; bias adds, outer products and the ReLU use the faster, bit-identical forms of
`model.ncf.numpy_kernels`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.ncf.config import NCFConfig
from model.ncf.numpy_kernels import add_row, outer, relu
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

    gmf_user: np.ndarray | None  # (B, factors) p_u
    gmf_item: np.ndarray | None  # (B, factors) q_i
    mlp_user: np.ndarray | None  # (B, layers[0] // 2) p'_u
    mlp_item: np.ndarray | None  # (B, layers[0] // 2) q'_i
    mlp: np.ndarray | None = None  # (B, layers[0]) h_0 = [mlp_user | mlp_item] as one view (inputs only:
    # the engine gathers the two side by side)


@dataclass
class ForwardCache:
    """What the backward pass needs from a forward pass over a batch of B examples."""

    rows: Rows
    gmf: np.ndarray | None  # (B, factors) g
    hidden: list[np.ndarray | None]  # h_0 .. h_L, each (B, width); h_0 is None (it is rows.mlp), except
    # without hidden layers
    masks: list[np.ndarray | None]  # per hidden layer: 1[h_{k+1} > 0] * d_k, (B, width); None without
    # dropout (the ReLU mask is then h_{k+1} > 0)


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
        rows: the gathered rows of users and items, by part (see `Rows`; `rows.mlp` set for MLP / NeuMF).
        dropout_rng: when given and `config.dropout > 0`, inverted dropout after each MLP hidden layer.
        zeros: optional read-only flat array of zeros of the rows' dtype, at least B * (widest hidden
            layer) long, for the ReLU (`model.ncf.numpy_kernels.relu`).

    Returns:
        logits x (B,) and the cache for `backward`.
    """
    f = gmf_width(config)
    w_out = dense["output/kernel"][:, 0]  # [w_g | w_h]
    gmf, hidden, masks = None, [], []
    logits = None
    if uses_gmf(config):
        gmf = np.einsum("ij,ij->ij", rows.gmf_user, rows.gmf_item)  # g = p_u * q_i (einsum: the same
        # products, ~30% faster on these strided (B, f) views than the ufunc)
        logits = gmf @ w_out[:f]  # g w_g
    if uses_mlp(config):
        h = rows.mlp  # h_0
        for k in range(len(config.layers) - 1):
            hidden.append(None if k == 0 else h)
            h = h @ dense[f"mlp/dense_{k}/kernel"]  # a new array: h_k W_k
            add_row(h, dense[f"mlp/dense_{k}/bias"])  # + b_k
            if dropout_rng is not None and config.dropout > 0:
                keep = dropout_rng.random(h.shape, dtype=h.dtype) >= config.dropout
                mask = ((h > 0) & keep).astype(h.dtype) * h.dtype.type(1.0 / (1.0 - config.dropout))
                h *= mask  # relu(.) * d_k
                masks.append(mask)
            else:
                relu(h, zeros)
                masks.append(None)
        hidden.append(h)  # h_L
        mlp_logits = h @ w_out[f:]  # h_L w_h
        logits = mlp_logits if logits is None else np.add(logits, mlp_logits, out=logits)
    logits += dense["output/bias"][0]  # + b
    return logits, ForwardCache(rows, gmf, hidden, masks)


def log_loss_with_logits(
    logits: np.ndarray, labels: np.ndarray, batch_size: int | None = None
) -> tuple[float, np.ndarray]:
    """Binary cross-entropy of logits, computed stably, and its gradient w.r.t. the logits.

    loss_j = max(x, 0) - x y + log(1 + exp(-|x|)); d loss / d x_j = (sigmoid(x_j) - y_j) / n.

    Args:
        logits: (B,) float; labels: (B,) float in {0, 1}.
        batch_size: n, the size of the whole batch these B examples are part of (default B): the loss
            returned is sum_j loss_j / n, so the losses of the parts of a batch add up to its mean.

    Returns:
        (loss, dx (B,) of the logits' dtype).
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


def softmax_loss_with_logits(logits: np.ndarray, group: int, n_groups: int) -> tuple[float, np.ndarray]:
    """Softmax loss of groups of logits, computed stably, and its gradient w.r.t. the logits.

    For a group of g consecutive logits x (the positive first, then its negatives), with s = softmax(x):
    loss = log(sum_k exp(x_k)) - x_0; d loss / d x_k = (s_k - [k = 0]) / n.

    Args:
        logits: (B,) float, B a multiple of `group`.
        group: g, the rows of a group (1 + negatives per positive).
        n_groups: n, the groups of the whole batch these B / g groups are part of: the loss returned is
            the sum of the groups' losses / n, so the losses of the parts of a batch add up to its mean.

    Returns:
        (loss, dx (B,) of the logits' dtype).
    """
    x = logits.reshape(-1, group)
    top = x.max(axis=1, keepdims=True)
    e = np.exp(x - top)
    total = e.sum(axis=1, keepdims=True)
    loss = float(np.sum(np.log(total[:, 0]) + top[:, 0] - x[:, 0])) / n_groups
    e /= total  # s
    e[:, 0] -= 1
    e /= logits.dtype.type(n_groups)
    return loss, e.reshape(-1)


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
        dlogits: (B,) dx = d loss / d logit.
        out: arrays (views are fine) that receive d loss / d (each part of the gathered rows), (B, width)
            each (`out.mlp` is not used).
        dense_out: arrays that receive the dense parameters' gradients, by name (e.g. views into one
            flat vector); fresh arrays when None.

    Returns:
        gradients of the dense parameters by name (`dense_out` when given).
    """
    batch = dlogits.shape[0]
    f = gmf_width(config)
    w_out = dense["output/kernel"][:, 0]  # [w_g | w_h]
    grads = (
        dense_out if dense_out is not None else {name: np.empty_like(value) for name, value in dense.items()}
    )
    np.add.reduce(dlogits, keepdims=True, out=grads["output/bias"])  # db = sum_j dx_j
    kernel_grad = grads["output/kernel"][:, 0]  # [dw_g | dw_h]
    if uses_gmf(config):
        np.matmul(dlogits, cache.gmf, out=kernel_grad[:f])  # dw_g = g^T dx
        dg = outer(dlogits, w_out[:f])  # dg = dx w_g^T, (B, f)
        np.multiply(dg, cache.rows.gmf_item, out=out.gmf_user)  # dp_u = dg * q_i
        np.multiply(dg, cache.rows.gmf_user, out=out.gmf_item)  # dq_i = dg * p_u
    if uses_mlp(config):
        np.matmul(dlogits, cache.hidden[-1], out=kernel_grad[f:])  # dw_h = h_L^T dx
        da = outer(dlogits, w_out[f:])  # da = dx w_h^T, (B, layers[-1])
        half = config.layers[0] // 2
        ones = np.empty(batch, dtype=dlogits.dtype)
        ones.fill(1)
        for k in reversed(range(len(config.layers) - 1)):
            mask = cache.masks[k]
            # dz = da * 1[h_{k+1} > 0] * d_k, in place: da is a fresh array here (the product above, or
            # the one at the end of the loop)
            da *= cache.hidden[k + 1] > 0 if mask is None else mask
            kernel = dense[f"mlp/dense_{k}/kernel"]
            h_k = cache.rows.mlp if k == 0 else cache.hidden[k]
            np.matmul(h_k.T, da, out=grads[f"mlp/dense_{k}/kernel"])  # dW_k = h_k^T dz
            # db_k = sum_j dz_j, as the product 1^T dz (a BLAS call: much faster than da.sum(axis=0))
            np.matmul(ones, da, out=grads[f"mlp/dense_{k}/bias"])
            if k:
                da = da @ kernel.T  # da = dz W_k^T
        if len(config.layers) > 1:  # d h_0 = dz W_0^T, each side's half straight into its output
            np.matmul(da, kernel[:half].T, out=out.mlp_user)
            np.matmul(da, kernel[half:].T, out=out.mlp_item)
        else:  # no hidden layer: h_0 is the MLP output, da is d loss / d h_0
            out.mlp_user[...], out.mlp_item[...] = da[:, :half], da[:, half:]
    return grads
