"""Pretraining for NeuMF (He et al. 2017, section 3.4.1), engine-neutral.

A GMF and an MLP with NeuMF's factors and layers are trained with the same engine and training
configuration, except for each tower's own batch size, schedule, negatives and epochs
(`TrainConfig.tower_config`), then fused with `fuse_pretrained` (`TrainConfig.pretrain_alpha` on the output
layer; the paper's is 0.5) into NeuMF's start.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from model.data.interactions import Interactions
from model.data.split import HeldOut
from model.ncf.config import TOWERS
from model.ncf.params import Params, fuse_pretrained

if TYPE_CHECKING:
    from model.ncf.base import NCFModel

logger = logging.getLogger(__name__)


def pretrained_neumf_params(
    model: NCFModel, train: Interactions, validation: HeldOut | None
) -> tuple[Params, dict[str, NCFModel]]:
    """Fused GMF + MLP parameters for `model` (a NeuMF of any engine) and the two trained models.

    Returns:
        (params named per `model.ncf.params` for NeuMF, {"gmf": trained GMF, "mlp": trained MLP}).
    """
    trained = {}
    for kind in TOWERS:
        logger.info("pretraining %s", kind)
        sub = type(model)(
            model.config.model_copy(update={"kind": kind}), model.train_config.tower_config(kind)
        )
        trained[kind] = sub.fit(train, validation)
    alpha = model.train_config.pretrain_alpha
    params = fuse_pretrained(trained["gmf"].get_params(), trained["mlp"].get_params(), alpha=alpha)
    return params, trained
