"""Engine-neutral parameters of GMF / MLP / NeuMF: names, shapes, initialisation and pretraining fusion.

Both engines (Keras and NumPy) use exactly these names and shapes, so weights copy across in both
directions and save/load share one `.npz` layout:

    gmf/user_embedding   (n_users, factors)         gmf/item_embedding   (n_items, factors)
    mlp/user_embedding   (n_users, layers[0] // 2)  mlp/item_embedding   (n_items, layers[0] // 2)
    mlp/dense_{k}/kernel (layers[k], layers[k+1])   mlp/dense_{k}/bias   (layers[k+1],)
    output/kernel        (d, 1)                     output/bias          (1,)

d = factors (gmf), layers[-1] (mlp) or factors + layers[-1] (neumf, GMF part first). All float32.
"""

from __future__ import annotations

import numpy as np

from model.ncf.config import NCFConfig

Params = dict[str, np.ndarray]


def uses_gmf(config: NCFConfig) -> bool:
    return config.kind in ("gmf", "neumf")


def uses_mlp(config: NCFConfig) -> bool:
    return config.kind in ("mlp", "neumf")


def output_width(config: NCFConfig) -> int:
    return (config.factors if uses_gmf(config) else 0) + (config.layers[-1] if uses_mlp(config) else 0)


def param_shapes(config: NCFConfig, n_users: int, n_items: int) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every parameter, in a fixed order."""
    shapes: dict[str, tuple[int, ...]] = {}
    if uses_gmf(config):
        shapes["gmf/user_embedding"] = (n_users, config.factors)
        shapes["gmf/item_embedding"] = (n_items, config.factors)
    if uses_mlp(config):
        half = config.layers[0] // 2
        shapes["mlp/user_embedding"] = (n_users, half)
        shapes["mlp/item_embedding"] = (n_items, half)
        for k, (w_in, w_out) in enumerate(zip(config.layers[:-1], config.layers[1:], strict=True)):
            shapes[f"mlp/dense_{k}/kernel"] = (w_in, w_out)
            shapes[f"mlp/dense_{k}/bias"] = (w_out,)
    shapes["output/kernel"] = (output_width(config), 1)
    shapes["output/bias"] = (1,)
    return shapes


def init_params(config: NCFConfig, n_users: int, n_items: int, seed: int) -> Params:
    """Fresh parameters: embeddings ~ N(0, init_std), kernels Glorot-uniform, biases zero (float32)."""
    rng = np.random.default_rng(seed)
    params: Params = {}
    for name, shape in param_shapes(config, n_users, n_items).items():
        if name.endswith("embedding"):
            value = rng.normal(0.0, config.init_std, size=shape)
        elif name.endswith("kernel"):
            limit = np.sqrt(6.0 / (shape[0] + shape[1]))
            value = rng.uniform(-limit, limit, size=shape)
        else:
            value = np.zeros(shape)
        params[name] = value.astype(np.float32)
    return params


def check_params(params: Params, config: NCFConfig, n_users: int, n_items: int) -> None:
    """Raise ValueError unless `params` has exactly the expected names and shapes."""
    expected = param_shapes(config, n_users, n_items)
    if set(params) != set(expected):
        missing, extra = set(expected) - set(params), set(params) - set(expected)
        raise ValueError(f"parameter names differ: missing {missing}, extra {extra}")
    for name, shape in expected.items():
        if tuple(params[name].shape) != shape:
            raise ValueError(f"{name}: shape {params[name].shape}, expected {shape}")


def fuse_pretrained(gmf: Params, mlp: Params, alpha: float = 0.5) -> Params:
    """NeuMF parameters from a trained GMF and a trained MLP (He et al. 2017, section 3.4.1).

    Embeddings and MLP weights are copied; the output layer is [alpha * h_gmf ; (1 - alpha) * h_mlp] and
    the bias alpha * b_gmf + (1 - alpha) * b_mlp.
    """
    fused = {k: v.copy() for k, v in gmf.items() if k.startswith("gmf/")}
    fused.update({k: v.copy() for k, v in mlp.items() if k.startswith("mlp/")})
    fused["output/kernel"] = np.concatenate(
        [alpha * gmf["output/kernel"], (1.0 - alpha) * mlp["output/kernel"]], axis=0
    ).astype(np.float32)
    fused["output/bias"] = (alpha * gmf["output/bias"] + (1.0 - alpha) * mlp["output/bias"]).astype(
        np.float32
    )
    return fused
